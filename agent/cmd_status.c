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
#define STATUS_OVERDUE 600  /* seconds past a retry's next try that mark it overdue */

static const char status_usage[] =
    "usage: owlsync [-c FILE] status [--json]\n"
    "\n"
    "Shows the last imports recorded in the target's ledger, every file in the\n"
    "inbox, its .work/ directory and the quarantine with its state (settling,\n"
    "waiting, in progress, retrying with its attempts, last error and next try\n"
    "and, when another agent sharing the inbox retries it, that agent's name;\n"
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
        printf(rc != 0 ? "  unknown: the ledger cannot be read\n" : "  none\n");
    json_object_set_new(root, "imports", imports);
    ledger_rows_free(rows, n);
    return rc;
}

/* Where name (cleaned, as the listing's names are) is among the listing's
 * files in .work/ (sorted by name), or -1: only they may be retrying. */
static long working_slot(const char *name, void *ctx)
{
    const inbox_listing *l = ctx;
    size_t lo = 0, hi = l->nworking;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, l->working[mid].name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* Puts this agent's own retry state (from its state_dir) into found, by the
 * listing's files in .work/: the newest entry of a file wins. */
static int own_retries(inbox_listing *l, const inbox_retry *r, size_t n, inbox_retry *found, owl_err *err)
{
    char clean[4 * NAME_MAX + 8];

    for (size_t i = 0; i < n; i++) {
        long k = working_slot(text_clean(r[i].name, NAME_MAX, clean, sizeof(clean)), l);
        inbox_retry next = r[i];
        if (k < 0 || (found[k].name != NULL && r[i].last_try <= found[k].last_try))
            continue;
        next.name = strdup(clean);
        next.error = strdup(r[i].error);
        next.agent = NULL;
        next.written = 0;
        if (next.name == NULL || next.error == NULL) {
            free(next.name);
            free(next.error);
            return err_oom(err);
        }
        free(found[k].name);
        free(found[k].error);
        free(found[k].agent);
        found[k] = next;
    }
    return 0;
}

/* One file's line of text and its JSON object. */
typedef struct file_view {
    const char *state; /* settling, waiting, in_progress, retrying, quarantined, ignored */
    const inbox_entry *e;
    const inbox_retry *retry;
    const char *self;  /* this agent's id: its own retries name no agent in text */
    time_t now;
} file_view;

/* Whether a retry is overdue: its next try long past, so the agent that
 * wrote it may be gone (a daemon retries at least every 300 s). */
static bool retry_overdue(const file_view *v)
{
    return v->retry->next_try > 0 && v->now - v->retry->next_try > STATUS_OVERDUE;
}

static const char *retry_agent(const file_view *v)
{
    return v->retry->agent != NULL ? v->retry->agent : v->self;
}

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
        json_object_set_new(o, "agent", json_string(retry_agent(v)));
        json_object_set_new(o, "agent_state_written", json_time(v->retry->written));
        json_object_set_new(o, "overdue", json_boolean(retry_overdue(v)));
    }
    if (v->e->reason != NULL)
        json_object_set_new(o, "reason", json_string(v->e->reason));
    return o;
}

static void file_text(const file_view *v)
{
    char next[TEXT_UTC_MAX];

    if (v->retry != NULL) {
        const char *agent = retry_agent(v);
        bool other = strcmp(agent, v->self) != 0;
        text_utc((int64_t)v->retry->next_try * 1000000, TEXT_UTC_SECONDS, next, sizeof(next));
        printf("  retrying    %s%s%s: %u failed attempt%s, next try %s; last error: %s%s%s%s\n", v->e->name,
               other ? " on " : "", other ? agent : "", v->retry->attempts, v->retry->attempts == 1 ? "" : "s",
               next, v->retry->error, retry_overdue(v) ? " (overdue: is " : "",
               retry_overdue(v) ? (other ? agent : "this agent's daemon") : "",
               retry_overdue(v) ? " still running?)" : "");
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
    char work[PATH_MAX], self[INBOX_AGENT_ID_MAX];
    inbox_retry *retries = NULL, *found = NULL;
    size_t nretries = 0, retrying = 0, shown;
    inbox_retries_seen seen;
    inbox_listing l;
    owl_err err;
    time_t now = time(NULL);
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
    /* the retries of every agent sharing the inbox, ours from state_dir too:
     * only those of files still in .work/, the newest try of each */
    inbox_agent_id(c->state_dir, self, sizeof(self));
    memset(&seen, 0, sizeof(seen));
    found = calloc(l.nworking + 1, sizeof(*found));
    if (found == NULL || own_retries(&l, retries, nretries, found, &err) < 0 ||
        inbox_retries_shared(c->import.inbox, working_slot, &l, found, l.nworking, &seen, &err) < 0) {
        if (found == NULL)
            err_oom(&err);
        if (!json)
            printf("retry state: %s\n", err.msg);
        json_object_set_new(root, "agents_retry_state_error", json_string(err.msg));
    }
    if (seen.skipped > 0 && !json)
        printf("retry state: %zu agent file%s in .work/ not read: %s\n", seen.skipped, seen.skipped == 1 ? "" : "s",
               seen.first_error);
    json_object_set_new(root, "agents_retry_files",
                        json_pack("{s:I, s:I, s:o}", "read", (json_int_t)seen.files, "skipped",
                                  (json_int_t)seen.skipped, "first_error",
                                  seen.skipped > 0 ? json_string(seen.first_error) : json_null()));
    for (size_t i = 0; found != NULL && i < l.nworking; i++)
        retrying += found[i].name != NULL;
    if (!json && rc != 0)
        printf("inbox %s: unknown: it could not be read (see above)\n", c->import.inbox);
    else if (!json)
        printf("inbox %s: %zu waiting, %zu settling, %zu in .work/, %zu quarantined, %zu ignored\n",
               c->import.inbox, l.waiting_count - l.settling_count, l.settling_count, l.working_count,
               l.quarantined_count, l.ignored_count);

    /* waiting: settled ones first, then those still settling */
    for (int pass = 0; pass < 2; pass++) {
        const char *state = pass == 0 ? "waiting" : "settling";
        size_t count = pass == 0 ? l.waiting_count - l.settling_count : l.settling_count;
        shown = 0;
        for (size_t i = 0; i < l.nwaiting; i++) {
            file_view v = {state, &l.waiting[i], NULL, self, now};
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
            file_view v = {state, &l.working[i], found != NULL && found[i].name != NULL ? &found[i] : NULL, self,
                           now};
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
        file_view v = {"quarantined", &l.quarantined[i], NULL, self, now};
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
        file_view v = {"ignored", &l.ignored[i], NULL, self, now};
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
                                  (json_int_t)(l.waiting_count - l.settling_count), "settling", (json_int_t)l.settling_count, "working",
                                  (json_int_t)l.working_count, "retrying", (json_int_t)retrying, "quarantined",
                                  (json_int_t)l.quarantined_count, "ignored", (json_int_t)l.ignored_count,
                                  "files_complete",
                                  rc == 0 && l.nwaiting == l.waiting_count && l.nworking == l.working_count &&
                                      l.nquarantined == l.quarantined_count && l.nignored == l.ignored_count));
    json_object_set_new(root, "files", files);
    json_object_set_new(root, "quarantine", quarantine);
    inbox_retries_free(found, l.nworking);
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
    /* unknown (null) when the ledger could not be read */
    json_object_set_new(root, "stale",
                        c->import.present && json_object_get(root, "ledger_error") != NULL ? json_null()
                                                                                            : json_boolean(stale));
    if (show_jobs(c, json, root, now) != 0 && rc == 0)
        rc = OWL_ERUNTIME;
    if (json)
        cmd_print_json(root);
    else
        json_decref(root);
    cfg_free(c);
    return rc;
}
