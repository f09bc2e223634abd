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
#define STATUS_LISTED 1000  /* files listed per inbox directory (all are counted) */

static const char status_usage[] =
    "usage: owlsync [-c FILE] status [--json]\n"
    "\n"
    "Shows the last imports recorded in the target's ledger, the files waiting in\n"
    "the inbox and in its .work/ directory, the quarantined files with their\n"
    "reasons, the export jobs with their last and next run, and whether no bundle\n"
    "was imported for longer than max_staleness.\n";

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
        json_array_append_new(imports, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s}", "imported_at",
                                                 r->imported_at, "file", r->file_name, "bundle_id", r->bundle_id,
                                                 "environment", r->environment, "sequence", (json_int_t)r->sequence,
                                                 "datasets", r->datasets, "rows", (json_int_t)r->rows, "job", r->job));
        if (!json)
            printf("  %s  %s  (%s/%s #%llu, %llu rows; %s)\n", r->imported_at, r->file_name, r->environment, r->job,
                   (unsigned long long)r->sequence, (unsigned long long)r->rows, r->datasets);
    }
    if (!json && n == 0)
        printf("  none\n");
    json_object_set_new(root, "imports", imports);
    ledger_rows_free(rows, n);
    return rc;
}

/* The inbox, .work/ and the quarantine: each count and its list from one listing. */
static int show_inbox(const cfg *c, bool json, json_t *root)
{
    inbox_config ic = {c->import.inbox, c->import.processed_dir, c->import.quarantine_dir, c->import.settle_time, 0,
                       NULL};
    json_t *quarantine = json_array();
    inbox_listing l;
    owl_err err;
    int rc = 0;

    if (c->import.inbox == NULL) {
        /* an import-only host: bundles come by owlsync import, nothing to list */
        if (!json)
            printf("inbox: none (no inbox in [import])\n");
        json_object_set_new(root, "inbox", json_pack("{s:n, s:i, s:i, s:i}", "dir", "waiting", 0, "working", 0,
                                                     "quarantined", 0));
        json_object_set_new(root, "quarantine", quarantine);
        return 0;
    }
    if (inbox_list(&ic, STATUS_LISTED, &l, &err) < 0) {
        if (!json)
            printf("inbox: %s\n", err.msg);
        rc = OWL_ERUNTIME;
    }
    if (!json)
        printf("inbox %s: %zu waiting, %zu in .work/, %zu quarantined\n", c->import.inbox ? c->import.inbox : "(none)",
               l.waiting_count, l.working_count, l.quarantined_count);
    for (size_t i = 0; i < l.nquarantined; i++) {
        json_array_append_new(quarantine,
                              json_pack("{s:s, s:s}", "file", l.quarantined[i].name, "reason", l.quarantined[i].reason));
        if (!json)
            printf("  quarantined %s: %s\n", l.quarantined[i].name, l.quarantined[i].reason);
    }
    if (!json && l.quarantined_count > l.nquarantined)
        printf("  and %zu more quarantined\n", l.quarantined_count - l.nquarantined);
    json_object_set_new(root, "inbox", json_pack("{s:s?, s:I, s:I, s:I}", "dir", c->import.inbox, "waiting",
                                                 (json_int_t)l.waiting_count, "working", (json_int_t)l.working_count,
                                                 "quarantined", (json_int_t)l.quarantined_count));
    json_object_set_new(root, "quarantine", quarantine);
    inbox_listing_free(&l);
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
        char seq[32] = "", finished[TEXT_UTC_MAX] = "", exitc[16] = "", next[32] = "on demand";
        jobstate st;
        jobstate_last last;
        owl_err err;

        if (ex->schedule != NULL) {
            cron_expr ce;
            if (cron_parse(ex->schedule, &ce, &err) == 0) {
                time_t t = cron_next(&ce, now);
                struct tm tm;
                localtime_r(&t, &tm);
                strftime(next, sizeof(next), "%Y-%m-%d %H:%M %Z", &tm);
            } else {
                snprintf(next, sizeof(next), "invalid schedule");
            }
        }
        if (jobstate_read(c->state_dir, ex->name, &st, &err) < 0 ||
            jobstate_read_last(c->state_dir, ex->name, &last, &err) < 0) {
            if (!json)
                printf("  %s: %s\n", ex->name, err.msg);
            rc = OWL_ERUNTIME;
            jobstate_free(&st);
            continue;
        }
        if (jobstate_last_received(&st) > 0)
            snprintf(seq, sizeof(seq), "%llu", (unsigned long long)jobstate_last_received(&st));
        jobstate_free(&st);
        if (last.exit_code >= 0) {
            if (last.finished > 0)
                text_utc((int64_t)last.finished * 1000000, TEXT_UTC_SECONDS, finished, sizeof(finished));
            else
                snprintf(finished, sizeof(finished), "never");
            snprintf(exitc, sizeof(exitc), "%d", last.exit_code);
        }
        json_array_append_new(jobs, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "job", ex->name, "schedule",
                                              ex->schedule ? ex->schedule : "", "last_sequence", seq, "last_run",
                                              finished, "last_exit", exitc, "next_run", next));
        if (!json)
            printf("  %-16s last bundle #%s, last run %s%s%s, next %s\n", ex->name, seq[0] ? seq : "-",
                   finished[0] ? finished : "-", exitc[0] ? " exit " : "", exitc, next);
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
        json_object_set_new(root, "inbox", json_pack("{s:n, s:i, s:i, s:i}", "dir", "waiting", 0, "working", 0,
                                                     "quarantined", 0));
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
