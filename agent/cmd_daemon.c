/* owlsync daemon and status: run the scheduled exports and the inbox watcher in
 * the foreground, and report what the ledger, the inbox and the jobs say. */
#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "owlsync/cmd.h"
#include "owlsync/cron.h"
#include "owlsync/daemon.h"
#include "owlsync/exporter.h"
#include "owlsync/importer.h"
#include "owlsync/inbox.h"
#include "owlsync/log.h"

static const char daemon_usage[] =
    "usage: owlsync [-c FILE] daemon\n"
    "\n"
    "Runs in the foreground until SIGTERM or SIGINT: every [export] section with a\n"
    "schedule runs at its times (5-field cron, local time; a run still going when\n"
    "the next time comes is not started twice), and when the config has an\n"
    "[import] section the inbox is watched: settled *.owlb files are claimed,\n"
    "imported oldest snapshot first, and moved to processed/ or, when they fail\n"
    "verification or policy, to quarantine/ with a NAME.reason file. A database\n"
    "that is down is retried with backoff; nothing is quarantined for it.\n"
    "SIGHUP reloads the config (kept as it was when the new one is invalid).\n"
    "Logs go to stderr with timestamps and levels.\n";

static const char check_usage[] =
    "usage: owlsync [-c FILE] check\n"
    "\n"
    "Checks the config and what it points at, without changing anything: the\n"
    "schedules parse, signing keys load and are private, trusted keys parse, the\n"
    "inbox and outboxes are directories, the database is reachable, every table\n"
    "exists with its columns and keys, and the role may read (export) or write\n"
    "(import) it. Prints one line per check; exits 0 when all pass.\n";

static const char status_usage[] =
    "usage: owlsync [-c FILE] status [--json]\n"
    "\n"
    "Shows the last imports recorded in the target's ledger, the files waiting in\n"
    "the inbox and in its .work/ directory, the quarantined files with their\n"
    "reasons, the export jobs with their last and next run, and whether no bundle\n"
    "was imported for longer than max_staleness.\n";

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int cmd_daemon(int argc, char **argv, const cmd_ctx *ctx)
{
    owl_err err;
    cfg *c = NULL;

    if (cmd_wants_help(argc, argv)) {
        fputs(daemon_usage, stdout);
        return 0;
    }
    if (argc != 1) {
        err_set(&err, OWL_EUSAGE, "daemon takes no arguments\nHINT: owlsync daemon --help");
        return cmd_report("daemon", &err);
    }
    /* Load once here only for the log level the daemon starts with. */
    if (cmd_load_config(ctx, &c, &err) < 0)
        return cmd_report("daemon", &err);
    if (log_get_level() < LOG_INFO && c->log_level >= LOG_INFO)
        log_set_level(LOG_INFO);
    cfg_free(c);
    if (daemon_run(ctx->config_path, &err) < 0)
        return cmd_report("daemon", &err);
    return 0;
}

int cmd_check(int argc, char **argv, const cmd_ctx *ctx)
{
    keys_trust trust = {NULL, 0};
    cfg *c = NULL;
    owl_err err;
    int rc;

    if (cmd_wants_help(argc, argv)) {
        fputs(check_usage, stdout);
        return 0;
    }
    if (argc != 1) {
        err_set(&err, OWL_EUSAGE, "check takes no arguments");
        return cmd_report("check", &err);
    }
    if (cmd_load_config(ctx, &c, &err) < 0)
        goto fail;
    printf("ok: config %s (environment %s)\n", c->path, c->environment);
    for (size_t i = 0; i < c->nexports; i++) {
        const cfg_export *ex = &c->exports[i];
        cron_expr ce;
        if (ex->schedule != NULL && cron_parse(ex->schedule, &ce, &err) < 0) {
            err_prefix(&err, "%s:%d: [export %s] schedule", c->path, ex->line, ex->name);
            goto fail;
        }
        for (size_t k = 0; k < ex->outbox.n; k++) {
            if (!is_dir(ex->outbox.v[k])) {
                err_set(&err, OWL_ERUNTIME, "[export %s] outbox %s is not a directory", ex->name, ex->outbox.v[k]);
                goto fail;
            }
        }
    }
    if (c->import.present) {
        if (cmd_load_trust(c, &trust, &err) < 0)
            goto fail;
        printf("ok: %zu trusted key(s)\n", trust.n);
        if (c->import.inbox != NULL && !is_dir(c->import.inbox)) {
            err_set(&err, OWL_ERUNTIME, "[import] inbox %s is not a directory", c->import.inbox);
            goto fail;
        }
    }
    if (c->nexports > 0 && exporter_check(c, stdout, &err) < 0)
        goto fail;
    if (c->import.present && importer_check(c, stdout, &err) < 0)
        goto fail;
    printf("all checks passed\n");
    keys_trust_free(&trust);
    cfg_free(c);
    return 0;
fail:
    fflush(stdout);
    rc = cmd_report("check", &err);
    keys_trust_free(&trust);
    cfg_free(c);
    return rc;
}

/* First line of a NAME.reason file, after "reason: ". */
static void read_reason(const char *dir, const char *name, char *out, size_t len)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(out, len, "(no reason file)");
    snprintf(path, sizeof(path), "%s/%s.reason", dir, name);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)len, f) != NULL) {
        out[strcspn(out, "\n")] = '\0';
        if (strncmp(out, "reason: ", 8) == 0)
            memmove(out, out + 8, strlen(out + 8) + 1);
    }
    fclose(f);
}

/* Reads "KEY VALUE" from a small state file; value "" when missing. */
static void read_state(const char *path, const char *key, char *out, size_t len)
{
    char line[256];
    size_t klen = strlen(key);
    FILE *f = fopen(path, "r");

    out[0] = '\0';
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, len, "%s", line + klen + 1);
            break;
        }
    }
    fclose(f);
}

int cmd_status(int argc, char **argv, const cmd_ctx *ctx)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    json_t *root = json_object(), *imports = json_array(), *quarantine = json_array(), *jobs = json_array();
    importer_ledger_row *rows = NULL;
    size_t nrows = 0, waiting = 0, working = 0, quarantined = 0;
    int64_t last = 0;
    bool json = false, stale = false;
    cfg *c = NULL;
    owl_err err;
    int opt, rc = 0;
    time_t now = time(NULL);

    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'J':
            json = true;
            break;
        case 'h':
            fputs(status_usage, stdout);
            json_decref(root);
            json_decref(imports);
            json_decref(quarantine);
            json_decref(jobs);
            return 0;
        default:
            err_set(&err, OWL_EUSAGE, "bad option %s\nHINT: owlsync status --help", argv[optind - 1]);
            goto fail;
        }
    }
    if (optind != argc) {
        err_set(&err, OWL_EUSAGE, "status takes no arguments but --json");
        goto fail;
    }
    if (cmd_load_config(ctx, &c, &err) < 0)
        goto fail;
    json_object_set_new(root, "environment", json_string(c->environment));

    if (c->import.present) {
        inbox_config ic = {c->import.inbox, c->import.processed_dir, c->import.quarantine_dir, c->import.settle_time};
        owl_err lerr;
        if (importer_ledger(c, 10, &rows, &nrows, &last, &lerr) < 0) {
            json_object_set_new(root, "ledger_error", json_string(lerr.msg));
            if (!json)
                printf("ledger: %s\n", lerr.msg);
            rc = OWL_ERUNTIME;
        }
        if (!json)
            printf("last imports (newest first):\n");
        for (size_t i = 0; i < nrows; i++) {
            json_array_append_new(imports,
                                  json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s}", "imported_at", rows[i].imported_at,
                                            "file", rows[i].file_name, "bundle_id", rows[i].bundle_id, "environment",
                                            rows[i].environment, "sequence", (json_int_t)rows[i].sequence, "datasets",
                                            rows[i].datasets, "rows", (json_int_t)rows[i].rows, "job", rows[i].job));
            if (!json)
                printf("  %s  %s  (%s/%s #%llu, %llu rows; %s)\n", rows[i].imported_at, rows[i].file_name,
                       rows[i].environment, rows[i].job, (unsigned long long)rows[i].sequence,
                       (unsigned long long)rows[i].rows, rows[i].datasets);
        }
        if (!json && nrows == 0)
            printf("  none\n");
        if (c->import.max_staleness > 0 && last > 0 && now - last / 1000000 > c->import.max_staleness)
            stale = true;
        if (inbox_counts(&ic, &waiting, &working, &quarantined, &lerr) < 0) {
            if (!json)
                printf("inbox: %s\n", lerr.msg);
            rc = OWL_ERUNTIME;
        }
        if (!json)
            printf("inbox %s: %zu waiting, %zu in .work/, %zu quarantined\n", c->import.inbox, waiting, working,
                   quarantined);
        if (c->import.quarantine_dir != NULL) {
            DIR *dir = opendir(c->import.quarantine_dir);
            struct dirent *e;
            while (dir != NULL && (e = readdir(dir)) != NULL) {
                size_t len = strlen(e->d_name);
                char reason[512];
                if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 5, ".owlb") != 0)
                    continue;
                read_reason(c->import.quarantine_dir, e->d_name, reason, sizeof(reason));
                json_array_append_new(quarantine, json_pack("{s:s, s:s}", "file", e->d_name, "reason", reason));
                if (!json)
                    printf("  quarantined %s: %s\n", e->d_name, reason);
            }
            if (dir != NULL)
                closedir(dir);
        }
        if (stale && !json)
            printf("WARNING: no bundle imported for longer than max_staleness (%lld s)\n",
                   (long long)c->import.max_staleness);
    }
    if (!json && c->nexports > 0)
        printf("export jobs:\n");
    for (size_t i = 0; i < c->nexports; i++) {
        const cfg_export *ex = &c->exports[i];
        char path[PATH_MAX], seq[64], finished[64], exitc[16], next[32] = "on demand";
        if (ex->schedule != NULL) {
            cron_expr ce;
            owl_err cerr;
            if (cron_parse(ex->schedule, &ce, &cerr) == 0) {
                time_t t = cron_next(&ce, now);
                struct tm tm;
                localtime_r(&t, &tm);
                strftime(next, sizeof(next), "%Y-%m-%d %H:%M %Z", &tm);
            } else {
                snprintf(next, sizeof(next), "invalid schedule");
            }
        }
        snprintf(path, sizeof(path), "%s/export-%s.state", c->state_dir, ex->name);
        read_state(path, "sequence", seq, sizeof(seq));
        snprintf(path, sizeof(path), "%s/export-%s.last", c->state_dir, ex->name);
        read_state(path, "finished", finished, sizeof(finished));
        read_state(path, "exit", exitc, sizeof(exitc));
        json_array_append_new(jobs, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "job", ex->name, "schedule",
                                              ex->schedule ? ex->schedule : "", "last_sequence", seq, "last_run",
                                              finished, "last_exit", exitc, "next_run", next));
        if (!json)
            printf("  %-16s last bundle #%s, last run %s%s%s, next %s\n", ex->name, seq[0] ? seq : "-",
                   finished[0] ? finished : "-", exitc[0] ? " exit " : "", exitc, next);
    }
    if (json) {
        char *text;
        json_object_set_new(root, "imports", imports);
        json_object_set_new(root, "inbox", json_pack("{s:s?, s:I, s:I, s:I}", "dir", c->import.inbox, "waiting",
                                                     (json_int_t)waiting, "working", (json_int_t)working,
                                                     "quarantined", (json_int_t)quarantined));
        json_object_set_new(root, "quarantine", quarantine);
        json_object_set_new(root, "stale", json_boolean(stale));
        json_object_set_new(root, "jobs", jobs);
        imports = quarantine = jobs = NULL;
        text = json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(2));
        if (text != NULL)
            printf("%s\n", text);
        free(text);
    }
    json_decref(root);
    json_decref(imports);
    json_decref(quarantine);
    json_decref(jobs);
    importer_ledger_free(rows, nrows);
    cfg_free(c);
    return rc;
fail:
    json_decref(root);
    json_decref(imports);
    json_decref(quarantine);
    json_decref(jobs);
    cfg_free(c);
    return cmd_report("status", &err);
}
