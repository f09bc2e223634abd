/* owlsync status: the recent imports in the target's ledger, what waits in the
 * inbox and its .work/ directory, the quarantine with reasons, staleness, and
 * each export job's last and next run; each from the module that owns it. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "owlsync/cmd.h"
#include "owlsync/cron.h"
#include "owlsync/db.h"
#include "owlsync/inbox.h"
#include "owlsync/jobstate.h"
#include "owlsync/ledger.h"
#include "owlsync/text.h"

#define STATUS_IMPORTS 10   /* ledger rows shown */
#define STATUS_SHOWN 50     /* files shown per state in text; the rest are counted */
#define STATUS_LISTED 1000  /* files listed per inbox directory in --json (all are counted) */
#define STATUS_DATASETS 5   /* dataset names of an import shown in text; --json has all */

static const char status_usage[] =
    "usage: owlsync [-c FILE] status [--json]\n"
    "\n"
    "Shows the last imports recorded in the target's ledger, every file in the\n"
    "inbox, its .work/ directory and the quarantine with its state (settling,\n"
    "waiting, in progress, retrying with its attempts, last error and next try,\n"
    "quarantined with its reason), the inbox entries no import takes and why,\n"
    "the export jobs with their last and next run, and whether no bundle was\n"
    "imported for longer than max_staleness. In text, at most 50 files of each\n"
    "state are named; --json lists up to 1000 and counts all.\n";

static const struct option status_opts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};
static const cmd_def status_def = {"status", status_usage, "", status_opts, 0, 0, "no arguments but --json"};

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    (void)arg;
    (void)err;
    if (opt == 'J')
        *(bool *)ctx = true;
    return 0;
}

/* An ISO 8601 UTC time as JSON, or null for none (t <= 0). */
static json_t *json_time(time_t t)
{
    char buf[TEXT_UTC_MAX];

    if (t <= 0)
        return json_null();
    return json_string(text_utc((int64_t)t * 1000000, TEXT_UTC_SECONDS, buf, sizeof(buf)));
}

/* The first STATUS_DATASETS names (untrusted text, cleaned), then how many more. */
static void print_datasets(char *const *v, size_t n)
{
    for (size_t i = 0; i < n && i < STATUS_DATASETS; i++) {
        char clean[4 * MANIFEST_TEXT_MAX + 8];
        printf("%s%s", i > 0 ? ", " : "", text_clean(v[i], MANIFEST_TEXT_MAX, clean, sizeof(clean)));
    }
    if (n > STATUS_DATASETS)
        printf(" … and %zu more", n - STATUS_DATASETS);
}

/* The ledger's last imports; a failure is reported and status goes on. */
static int show_imports(const cfg *c, bool json, json_t *root, int64_t *last)
{
    json_t *imports = json_array();
    ledger_row *rows = NULL;
    size_t n = 0;
    db_conn *conn = NULL;
    owl_err err;
    int rc = 0;

    if (db_open(c->conninfo, "the target database", &conn, &err) < 0 ||
        ledger_recent(conn, STATUS_IMPORTS, &rows, &n, last, &err) < 0) {
        json_object_set_new(root, "ledger_error", json_string(err.msg));
        if (!json)
            printf("ledger: %s\n", err.msg);
        rc = OWL_ERUNTIME;
    }
    db_close(conn);
    if (!json)
        printf("last imports (newest first):\n");
    for (size_t i = 0; i < n; i++) {
        const ledger_row *r = &rows[i];
        json_t *ds = json_array();
        for (size_t d = 0; d < r->ndatasets; d++)
            json_array_append_new(ds, json_string(r->datasets[d]));
        json_array_append_new(imports, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:I, s:s}", "imported_at",
                                                 r->imported_at, "file", r->file_name, "bundle_id", r->bundle_id,
                                                 "environment", r->environment, "sequence", (json_int_t)r->sequence,
                                                 "dataset_count", (json_int_t)json_array_size(ds), "datasets", ds,
                                                 "rows", (json_int_t)r->rows, "job", r->job));
        if (!json) {
            printf("  %s  %s  (%s/%s #%llu, %llu rows; ", r->imported_at, r->file_name, r->environment, r->job,
                   (unsigned long long)r->sequence, (unsigned long long)r->rows);
            print_datasets(r->datasets, r->ndatasets);
            printf(")\n");
        }
    }
    if (!json && n == 0)
        printf("  none\n");
    json_object_set_new(root, "imports", imports);
    ledger_rows_free(rows, n);
    return rc;
}

/* The retry state the daemon keeps for name (cleaned as the listing's
 * names are), or NULL. */
static const inbox_retry *retry_of(const inbox_retry *r, size_t n, const char *name)
{
    char clean[4 * NAME_MAX + 8];

    for (size_t i = 0; i < n; i++) {
        if (strcmp(text_clean(r[i].name, NAME_MAX, clean, sizeof(clean)), name) == 0)
            return &r[i];
    }
    return NULL;
}

/* One file's line of text and its JSON object. */
typedef struct file_view {
    const char *state; /* settling, waiting, in_progress, retrying, quarantined, ignored */
    const inbox_entry *e;
    const inbox_retry *retry;
} file_view;

static json_t *file_json(const file_view *v, const char *dir)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "file", v->e->name, "dir", dir, "state", v->state);

    if (strcmp(v->state, "ignored") != 0 || v->e->size > 0)
        json_object_set_new(o, "size", json_integer((json_int_t)v->e->size));
    json_object_set_new(o, "mtime", json_time(v->e->mtime));
    if (v->retry != NULL) {
        json_object_set_new(o, "attempts", json_integer((json_int_t)v->retry->attempts));
        json_object_set_new(o, "last_try", json_time(v->retry->last_try));
        json_object_set_new(o, "next_try", json_time(v->retry->next_try));
        json_object_set_new(o, "last_error", json_string(v->retry->error));
    }
    if (v->e->reason != NULL)
        json_object_set_new(o, "reason", json_string(v->e->reason));
    return o;
}

static void file_text(const file_view *v)
{
    char next[TEXT_UTC_MAX];

    if (v->retry != NULL) {
        text_utc((int64_t)v->retry->next_try * 1000000, TEXT_UTC_SECONDS, next, sizeof(next));
        printf("  retrying    %s: %u failed attempt%s, next try %s; last error: %s\n", v->e->name,
               v->retry->attempts, v->retry->attempts == 1 ? "" : "s", next, v->retry->error);
    } else if (v->e->reason != NULL) {
        printf("  %-11s %s: %s\n", v->state, v->e->name, v->e->reason);
    } else {
        printf("  %-11s %s\n", strcmp(v->state, "in_progress") == 0 ? "in progress" : v->state, v->e->name);
    }
}

/* Prints the "… and N more" of a state whose files were not all shown. */
static void more_text(size_t shown, size_t count, const char *state)
{
    if (count > shown)
        printf("  … and %zu more %s\n", count - shown, state);
}

/* The inbox, .work/ and the quarantine, every file with its state, from one
 * listing and the daemon's retry state. */
static int show_inbox(const cfg *c, bool json, json_t *root)
{
    inbox_config ic = {c->import.inbox, c->import.processed_dir, c->import.quarantine_dir, c->import.settle_time, 0,
                       NULL};
    json_t *quarantine = json_array(), *files = json_array();
    char work[PATH_MAX];
    inbox_retry *retries = NULL;
    size_t nretries = 0, retrying = 0, shown;
    inbox_listing l;
    owl_err err;
    int rc = 0;

    if (c->import.inbox == NULL) {
        /* an import-only host that imports by hand: nothing to list */
        if (!json)
            printf("inbox: none configured\n");
        json_object_set_new(root, "inbox", json_pack("{s:n, s:i, s:i, s:i, s:i, s:i, s:i}", "dir", "waiting", 0,
                                                     "settling", 0, "working", 0, "retrying", 0, "quarantined", 0,
                                                     "ignored", 0));
        json_object_set_new(root, "files", files);
        json_object_set_new(root, "quarantine", quarantine);
        return 0;
    }
    snprintf(work, sizeof(work), "%s/%s", c->import.inbox, INBOX_WORK);
    if (inbox_retries_read(c->state_dir, &retries, &nretries, &err) < 0) {
        if (!json)
            printf("retry state: %s\n", err.msg);
        json_object_set_new(root, "retry_state_error", json_string(err.msg));
    }
    if (inbox_list(&ic, STATUS_LISTED, &l, &err) < 0) {
        if (!json)
            printf("inbox: %s\n", err.msg);
        json_object_set_new(root, "inbox_error", json_string(err.msg));
        rc = OWL_ERUNTIME;
    }
    for (size_t i = 0; i < l.nworking; i++)
        retrying += retry_of(retries, nretries, l.working[i].name) != NULL;
    if (!json)
        printf("inbox %s: %zu waiting, %zu in .work/, %zu quarantined, %zu ignored\n", c->import.inbox,
               l.waiting_count, l.working_count, l.quarantined_count, l.ignored_count);

    /* waiting: settled ones first, then those still settling */
    for (int pass = 0; pass < 2; pass++) {
        const char *state = pass == 0 ? "waiting" : "settling";
        size_t count = pass == 0 ? l.waiting_count - l.settling_count : l.settling_count;
        shown = 0;
        for (size_t i = 0; i < l.nwaiting; i++) {
            file_view v = {state, &l.waiting[i], NULL};
            if (l.waiting[i].settling != (pass == 1))
                continue;
            json_array_append_new(files, file_json(&v, c->import.inbox));
            if (!json && shown < STATUS_SHOWN) {
                file_text(&v);
                shown++;
            }
        }
        if (!json)
            more_text(shown, count, state);
    }
    /* .work/: being imported (or left by a crash, tried first), or backing off */
    for (int pass = 0; pass < 2; pass++) {
        const char *state = pass == 0 ? "in_progress" : "retrying";
        size_t count = pass == 0 ? l.working_count - retrying : retrying;
        shown = 0;
        for (size_t i = 0; i < l.nworking; i++) {
            file_view v = {state, &l.working[i], retry_of(retries, nretries, l.working[i].name)};
            if ((v.retry != NULL) != (pass == 1))
                continue;
            json_array_append_new(files, file_json(&v, work));
            if (!json && shown < STATUS_SHOWN) {
                file_text(&v);
                shown++;
            }
        }
        if (!json)
            more_text(shown, count, pass == 0 ? "in progress" : "retrying");
    }
    shown = 0;
    for (size_t i = 0; i < l.nquarantined; i++) {
        file_view v = {"quarantined", &l.quarantined[i], NULL};
        json_array_append_new(quarantine,
                              json_pack("{s:s, s:s}", "file", l.quarantined[i].name, "reason", l.quarantined[i].reason));
        json_array_append_new(files, file_json(&v, c->import.quarantine_dir));
        if (!json && shown < STATUS_SHOWN) {
            file_text(&v);
            shown++;
        }
    }
    if (!json)
        more_text(shown, l.quarantined_count, "quarantined");
    shown = 0;
    for (size_t i = 0; i < l.nignored; i++) {
        file_view v = {"ignored", &l.ignored[i], NULL};
        json_array_append_new(files, file_json(&v, c->import.inbox));
        if (!json && shown < STATUS_SHOWN) {
            file_text(&v);
            shown++;
        }
    }
    if (!json)
        more_text(shown, l.ignored_count, "ignored");
    json_object_set_new(root, "inbox",
                        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "dir", c->import.inbox, "waiting",
                                  (json_int_t)l.waiting_count, "settling", (json_int_t)l.settling_count, "working",
                                  (json_int_t)l.working_count, "retrying", (json_int_t)retrying, "quarantined",
                                  (json_int_t)l.quarantined_count, "ignored", (json_int_t)l.ignored_count,
                                  "files_complete",
                                  l.nwaiting == l.waiting_count && l.nworking == l.working_count &&
                                      l.nquarantined == l.quarantined_count && l.nignored == l.ignored_count));
    json_object_set_new(root, "files", files);
    json_object_set_new(root, "quarantine", quarantine);
    inbox_listing_free(&l);
    inbox_retries_free(retries, nretries);
    return rc;
}

/* Each export job: its last bundle, its last run and its next. */
static int show_jobs(const cfg *c, bool json, json_t *root, time_t now)
{
    json_t *jobs = json_array();
    int rc = 0;

    if (!json && c->nexports > 0)
        printf("export jobs:\n");
    for (size_t i = 0; i < c->nexports; i++) {
        const cfg_export *ex = &c->exports[i];
        char finished[TEXT_UTC_MAX] = "-", next[64] = "on demand";
        time_t next_t = 0;
        uint64_t seq;
        jobstate st;
        jobstate_last last;
        owl_err err;
        json_t *o;

        if (ex->schedule != NULL) {
            cron_expr ce;
            if (cron_parse(ex->schedule, &ce, &err) == 0) {
                struct tm tm;
                next_t = cron_next(&ce, now);
                localtime_r(&next_t, &tm);
                strftime(next, sizeof(next), "%Y-%m-%d %H:%M %Z", &tm);
            } else {
                snprintf(next, sizeof(next), "invalid schedule");
            }
        }
        if (jobstate_read(c->state_dir, ex->name, &st, &err) < 0 ||
            jobstate_read_last(c->state_dir, ex->name, &last, &err) < 0) {
            if (!json)
                printf("  %s: %s\n", ex->name, err.msg);
            json_array_append_new(jobs, json_pack("{s:s, s:s}", "job", ex->name, "error", err.msg));
            rc = OWL_ERUNTIME;
            jobstate_free(&st);
            continue;
        }
        seq = jobstate_last_received(&st);
        jobstate_free(&st);
        if (last.exit_code >= 0 && last.finished > 0)
            text_utc((int64_t)last.finished * 1000000, TEXT_UTC_SECONDS, finished, sizeof(finished));
        o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "job", ex->name, "schedule",
                      ex->schedule ? json_string(ex->schedule) : json_null(), "last_sequence",
                      seq > 0 ? json_integer((json_int_t)seq) : json_null(), "last_run",
                      json_time(last.exit_code >= 0 ? last.finished : 0), "last_exit",
                      last.exit_code >= 0 ? json_integer(last.exit_code) : json_null(), "last_success",
                      json_time(last.success), "next_run", json_time(next_t));
        json_array_append_new(jobs, o);
        if (!json) {
            printf("  %-16s last bundle #", ex->name);
            if (seq > 0)
                printf("%llu", (unsigned long long)seq);
            else
                printf("-");
            printf(", last run %s", finished);
            if (last.exit_code >= 0)
                printf(" exit %d", last.exit_code);
            printf(", next %s\n", next);
        }
    }
    json_object_set_new(root, "jobs", jobs);
    return rc;
}

int cmd_status(int argc, char **argv, const cmd_ctx *ctx)
{
    json_t *root = json_object();
    bool json = false, stale = false;
    int64_t last = 0;
    time_t now = time(NULL);
    cfg *c = NULL;
    owl_err err;
    char **args;
    int nargs, rc;

    rc = cmd_parse(&status_def, argc, argv, on_opt, &json, &args, &nargs, &err);
    if (rc != 0) {
        json_decref(root);
        return rc > 0 ? 0 : cmd_report("status", &err);
    }
    if (cmd_load_config(ctx, &c, &err) < 0) {
        json_decref(root);
        return cmd_report("status", &err);
    }
    json_object_set_new(root, "environment", json_string(c->environment));
    if (c->import.present) {
        int r1 = show_imports(c, json, root, &last), r2;
        if (c->import.max_staleness > 0 && last > 0 && now - last / 1000000 > c->import.max_staleness)
            stale = true;
        r2 = show_inbox(c, json, root);
        rc = r1 != 0 ? r1 : r2;
        if (stale && !json)
            printf("WARNING: no bundle imported for longer than max_staleness (%lld s)\n",
                   (long long)c->import.max_staleness);
    } else {
        json_object_set_new(root, "imports", json_array());
        json_object_set_new(root, "inbox", json_pack("{s:n, s:i, s:i, s:i, s:i, s:i, s:i}", "dir", "waiting", 0,
                                                     "settling", 0, "working", 0, "retrying", 0, "quarantined", 0,
                                                     "ignored", 0));
        json_object_set_new(root, "files", json_array());
        json_object_set_new(root, "quarantine", json_array());
    }
    json_object_set_new(root, "stale", json_boolean(stale));
    if (show_jobs(c, json, root, now) != 0 && rc == 0)
        rc = OWL_ERUNTIME;
    if (json) {
        char *text = json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(2));
        if (text != NULL)
            printf("%s\n", text);
        free(text);
    }
    json_decref(root);
    cfg_free(c);
    return rc;
}
