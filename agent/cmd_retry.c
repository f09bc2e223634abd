/* owlsync retry: puts quarantined bundles back into the inbox (agent/inbox.c
 * inbox_requeue), for the daemon to import once more, and removes their reasons. */
#include <limits.h>
#include <stdio.h>

#include "owlsync/cmd.h"
#include "owlsync/inbox.h"
#include "owlsync/log.h"

static const char retry_usage[] =
    "usage: owlsync [-c FILE] retry FILE...\n"
    "\n"
    "Moves each quarantined FILE (a name in the quarantine, or a path to a file\n"
    "there) back into the inbox by an atomic rename, never replacing a file there,\n"
    "and removes its .reason file; the daemon then imports it like any new bundle.\n"
    "A name the quarantine gave a clash (NAME.owlb.1) goes back as NAME.owlb.\n"
    "Fix the cause first: a bundle that fails again is quarantined again.\n";

static const cmd_def retry_def = {"retry", retry_usage, "", NULL, 1, INT_MAX, "one or more FILE"};

int cmd_retry(int argc, char **argv, const cmd_ctx *ctx)
{
    inbox_config ic = {0};
    inbox *ib = NULL;
    cfg *c = NULL;
    owl_err err;
    char **args;
    int nargs, rc;

    rc = cmd_parse(&retry_def, argc, argv, NULL, NULL, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("retry", &err);
    if (cmd_load_config(ctx, &c, &err) < 0)
        return cmd_report("retry", &err);
    if (!c->import.present || c->import.inbox == NULL) {
        err_set(&err, OWL_EUSAGE, "%s has no inbox\nHINT: set inbox in its [import] section", c->path);
        cfg_free(c);
        return cmd_report("retry", &err);
    }
    ic.dir = c->import.inbox;
    ic.processed_dir = c->import.processed_dir;
    ic.quarantine_dir = c->import.quarantine_dir;
    if (inbox_open(&ic, &ib, &err) < 0) {
        cfg_free(c);
        return cmd_report("retry", &err);
    }
    rc = 0;
    for (int i = 0; i < nargs; i++) {
        char final[NAME_MAX + 1];
        if (inbox_requeue(ib, args[i], final, sizeof(final), &err) < 0) {
            int code = cmd_report("retry", &err);
            if (rc == 0)
                rc = code;
            continue;
        }
        log_info("retry: %s moved back into the inbox as %s", args[i], final);
        printf("requeued %s/%s\n", c->import.inbox, final);
    }
    inbox_close(ib);
    cfg_free(c);
    return fflush(stdout) == 0 || rc != 0 ? rc : OWL_ERUNTIME;
}
