/* owlsync check: tests a host's configuration against what it points at,
 * without changing anything: schedules, keys, directories, the database, its
 * tables, columns, keys, privileges, the ledger, datasets and rewrites. */
#ifndef OWLSYNC_CHECK_H
#define OWLSYNC_CHECK_H

#include <stdio.h>

#include "owlsync/config.h"
#include "owlsync/error.h"

/* Runs every check c calls for (all of them, but those needing a database
 * that could not be reached), printing one line per check to out: "ok: ...",
 * "warning: ..." or "FAIL: ..." (a hint indented on the next line). Returns 0
 * when none failed; else -1 with *failed of them and err the first failure. */
int check_run(const cfg *c, FILE *out, size_t *failed, owl_err *err);

#endif
