/* owlsync daemon: runs the scheduled export jobs and the inbox watcher in the
 * foreground until SIGTERM or SIGINT (agent/daemon.c). */
#include <stdio.h>

#include "owlsync/cmd.h"
#include "owlsync/daemon.h"
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

static const cmd_def daemon_def = {"daemon", daemon_usage, "", NULL, 0, 0, "no arguments"};

int cmd_daemon(int argc, char **argv, const cmd_ctx *ctx)
{
    owl_err err;
    cfg *c = NULL;
    char **args;
    int nargs, rc;

    rc = cmd_parse(&daemon_def, argc, argv, NULL, NULL, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("daemon", &err);
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
