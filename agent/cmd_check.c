/* owlsync check: tests a host's configuration against what it points at,
 * without changing anything (agent/check.c), one line per check. */
#include <stdio.h>

#include "owlsync/check.h"
#include "owlsync/cmd.h"

static const char check_usage[] =
    "usage: owlsync [-c FILE] check\n"
    "\n"
    "Checks the config and what it points at, without changing anything: the\n"
    "schedules parse, signing keys load and are private, trusted keys parse, the\n"
    "inbox and outboxes are directories, the database is reachable, every table\n"
    "exists with its columns and keys, and the role may read (export) or write\n"
    "(import) it. Prints one line per check; exits 0 when all pass.\n";

static const cmd_def check_def = {"check", check_usage, "", NULL, 0, 0, "no arguments"};

int cmd_check(int argc, char **argv, const cmd_ctx *ctx)
{
    cfg *c = NULL;
    owl_err err;
    char **args;
    int nargs, rc;

    rc = cmd_parse(&check_def, argc, argv, NULL, NULL, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("check", &err);
    rc = -1;
    if (cmd_load_config(ctx, &c, &err) < 0)
        goto out;
    printf("ok: config %s (environment %s)\n", c->path, c->environment);
    if (check_run(c, stdout, &err) < 0)
        goto out;
    printf("all checks passed\n");
    rc = 0;
out:
    fflush(stdout);
    cfg_free(c);
    return rc < 0 ? cmd_report("check", &err) : 0;
}
