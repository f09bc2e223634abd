/* owlsync check: tests a host's configuration against what it points at,
 * without changing anything: schedules, keys, directories, the database, its
 * tables, columns, keys, privileges and the ledger. */
#ifndef OWLSYNC_CHECK_H
#define OWLSYNC_CHECK_H

#include <stdio.h>

#include "owlsync/config.h"
#include "owlsync/error.h"

/* Runs every check c calls for, printing one "ok: ..." line per check passed
 * to out; stops at the first that fails, with err saying what and where. */
int check_run(const cfg *c, FILE *out, owl_err *err);

#endif
