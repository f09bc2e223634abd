/* owlsync check: tests a host's configuration against what it points at,
 * without changing anything: schedules, keys, directories, the database, its
 * tables, columns, keys, privileges, the ledger, datasets, rewrites and the
 * columns of bundles (those at hand, or those named). */
#ifndef OWLSYNC_CHECK_H
#define OWLSYNC_CHECK_H

#include <stdio.h>

#include "owlsync/config.h"
#include "owlsync/error.h"

typedef enum check_status { CHECK_OK, CHECK_WARNING, CHECK_FAIL } check_status;

/* One check's outcome. message and hint share one allocation (the item's). */
typedef struct check_item {
    check_status status;
    char *message; /* lowercase, one line */
    char *hint;    /* what to do, or NULL */
    int code;      /* a failure's exit code; 0 for ok and warning */
} check_item;

/* The record of a run: every check in the order run. */
typedef struct check_report {
    check_item *items;
    size_t n, cap;
    size_t failed, warnings;
    owl_err first; /* the first failure (code 0 while none) */
    FILE *out;     /* when not NULL, each item is printed there as it is made */
} check_report;

/* Runs every check c calls for (all of them, but those needing a database
 * that could not be reached), recording each in rep (which the caller zeroes,
 * setting rep->out to see the lines as they come), the first being the config
 * itself. With nbundles > 0 (bundles are checked on a config with an
 * [import] section only: the caller refuses them on another), the named bundles are verified completely and checked against the target
 * (policy, then every table's columns) instead of the bundles at hand.
 * Returns 0 when none failed; else -1 with err the first failure. On no
 * memory for the record the run still counts and reports the failure. */
int check_run(const cfg *c, char *const *bundles, size_t nbundles, check_report *rep, owl_err *err);

/* Prints one item as text: "ok: ...", "warning: ..." or "FAIL: ...", a hint
 * indented on the next line. */
void check_item_print(const check_item *item, FILE *out);

/* The name of a status in --json: "ok", "warning", "fail". */
const char *check_status_name(check_status s);

/* Frees the items of rep (not rep). */
void check_report_free(check_report *rep);

#endif
