/* owlsync check: tests a host's configuration against what it points at,
 * without changing anything (agent/check.c), one line per check or --json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "owlsync/check.h"
#include "owlsync/cmd.h"
#include "owlsync/text.h"

#define CHECK_BUNDLES_MAX 1000 /* bundles one check names */

static const char check_usage[] =
    "usage: owlsync [-c FILE] check [--json] [BUNDLE...]\n"
    "\n"
    "Checks the config and what it points at, without changing anything: the\n"
    "schedules parse, signing keys load and are private, trusted keys parse; the\n"
    "outboxes, state_dir, the metrics file's directory, the inbox and its\n"
    "processed and quarantine directories take files; the database is reachable;\n"
    "every table exists with its columns and keys, and the role holds exactly\n"
    "the privileges an export or import uses (tables, sequences, TEMP, the\n"
    "ledger); each job's dataset names and patterns choose a dataset; each\n"
    "[rewrite] column exists; the columns of the newest bundles at hand (inbox,\n"
    "processed, quarantine) fit the target.\n"
    "Prints one line per check (ok, warning, FAIL) and runs them all; exits 0\n"
    "when none failed, else with the first failure's exit code.\n"
    "\n"
    "  BUNDLE  on an import host: verify each bundle named as an import would\n"
    "          (signature, trusted key, hashes, limits), apply the import's\n"
    "          policy to it, and compare the columns of every table it carries\n"
    "          with the target's, instead of the bundles at hand; then try its\n"
    "          import as a dry run (rolled back): a bundle tested before it\n"
    "          goes into the inbox\n"
    "  --json  print one JSON object: config, environment, ok, failed,\n"
    "          warnings, and checks (each: status ok, warning or fail, message,\n"
    "          hint when there is one, code when it failed)\n";

static const struct option check_opts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};
static const cmd_def check_def = {"check", check_usage, "", check_opts, 0, CHECK_BUNDLES_MAX,
                                  "at most 1000 BUNDLE arguments"};

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    (void)arg;
    (void)err;
    if (opt == 'J')
        *(bool *)ctx = true;
    return 0;
}

/* s as a JSON string: as it is when it is UTF-8, else with its other bytes
 * escaped as text output shows them. */
static json_t *json_text(const char *s)
{
    size_t size = 4 * strlen(s) + 8;
    json_t *j = json_string(s);
    char *clean;

    if (j != NULL || (clean = malloc(size)) == NULL)
        return j;
    j = json_string(text_clean(s, size, clean, size));
    free(clean);
    return j;
}

/* The whole report as one JSON object on stdout. */
static void print_json(const cfg *c, const check_report *rep)
{
    json_t *root = json_object(), *checks = json_array();

    json_object_set_new(root, "config", json_text(c->path));
    json_object_set_new(root, "environment", json_text(c->environment));
    json_object_set_new(root, "ok", json_boolean(rep->failed == 0));
    json_object_set_new(root, "failed", json_integer((json_int_t)rep->failed));
    json_object_set_new(root, "warnings", json_integer((json_int_t)rep->warnings));
    for (size_t i = 0; i < rep->n; i++) {
        const check_item *it = &rep->items[i];
        json_t *o = json_object();
        json_object_set_new(o, "status", json_string(check_status_name(it->status)));
        json_object_set_new(o, "message", json_text(it->message));
        if (it->hint != NULL)
            json_object_set_new(o, "hint", json_text(it->hint));
        if (it->status == CHECK_FAIL)
            json_object_set_new(o, "code", json_integer(it->code));
        json_array_append_new(checks, o);
    }
    json_object_set_new(root, "checks", checks);
    cmd_print_json(root);
}

int cmd_check(int argc, char **argv, const cmd_ctx *ctx)
{
    check_report rep;
    cfg *c = NULL;
    owl_err err;
    char **args;
    bool json = false, ran = false;
    int nargs, rc;

    memset(&rep, 0, sizeof(rep));
    rc = cmd_parse(&check_def, argc, argv, on_opt, &json, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("check", &err);
    rc = -1;
    if (cmd_load_config(ctx, &c, &err) < 0)
        goto out;
    if (nargs > 0 && !c->import.present) {
        err_set(&err, OWL_EUSAGE, "%s has no [import] section: a bundle is checked against the target of an import\nHINT: run check BUNDLE with the config of the host that imports it",
                c->path);
        goto out;
    }
    rep.out = json ? NULL : stdout;
    ran = true;
    if (check_run(c, args, (size_t)nargs, &rep, &err) < 0) {
        if (json)
            print_json(c, &rep);
        else
            printf("%zu check(s) failed\n", rep.failed);
        goto out;
    }
    if (json)
        print_json(c, &rep);
    else
        printf("all checks passed\n");
    rc = 0;
out:
    if (rc < 0 && json && !ran)
        cmd_print_json_error("config", c != NULL ? c->path : ctx->config_path, &err);
    fflush(stdout);
    check_report_free(&rep);
    cfg_free(c);
    return rc < 0 ? cmd_report("check", &err) : 0;
}
