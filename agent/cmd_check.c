/* owlsync check: tests a host's configuration against what it points at,
 * without changing anything (agent/check.c), one line per check. */
#include <stdio.h>

#include "owlsync/check.h"
#include "owlsync/cmd.h"

static const char check_usage[] =
    "usage: owlsync [-c FILE] check\n"
    "\n"
    "Checks the config and what it points at, without changing anything: the\n"
    "schedules parse, signing keys load and are private, trusted keys parse; the\n"
    "outboxes, state_dir, the metrics file's directory, the inbox and its\n"
    "processed and quarantine directories take files; the database is reachable;\n"
    "every table exists with its columns and keys, and the role holds exactly\n"
    "the privileges an export or import uses (tables, sequences, TEMP, the\n"
    "ledger); each job's dataset names and patterns choose a dataset; each\n"
    "[rewrite] column exists; the columns of the bundles at hand fit the target.\n"
    "Prints one line per check (ok, warning, FAIL) and runs them all; exits 0\n"
    "when none failed, else with the first failure's exit code.\n";

static const cmd_def check_def = {"check", check_usage, "", NULL, 0, 0, "no arguments"};

int cmd_check(int argc, char **argv, const cmd_ctx *ctx)
{
    cfg *c = NULL;
    owl_err err;
    char **args;
    size_t failed;
    int nargs, rc;

    rc = cmd_parse(&check_def, argc, argv, NULL, NULL, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("check", &err);
    rc = -1;
    if (cmd_load_config(ctx, &c, &err) < 0)
        goto out;
    printf("ok: config %s (environment %s)\n", c->path, c->environment);
    if (check_run(c, stdout, &failed, &err) < 0) {
        printf("%zu check(s) failed\n", failed);
        goto out;
    }
    printf("all checks passed\n");
    rc = 0;
out:
    fflush(stdout);
    cfg_free(c);
    return rc < 0 ? cmd_report("check", &err) : 0;
}
