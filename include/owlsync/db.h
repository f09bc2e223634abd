/* owlsync database connections: open, transactions and close, behind an opaque
 * handle. Every SQL statement lives in the modules that own the database
 * (catalog, source, stage, ledger), which alone see libpq (agent/db_internal.h);
 * the pipelines above them orchestrate typed results. */
#ifndef OWLSYNC_DB_H
#define OWLSYNC_DB_H

#include <stdbool.h>
#include <stddef.h>

#include "owlsync/error.h"

typedef struct db_conn db_conn;

/* Connects with conninfo; what names the database in messages ("the source
 * database"). On failure err says "cannot connect to WHAT: reason" (OWL_ERUNTIME).
 * *out is the caller's: db_close. */
int db_open(const char *conninfo, const char *what, db_conn **out, owl_err *err);

/* Closes the connection (rolling back what is open); NULL is a no-op. */
void db_close(db_conn *c);

/* Whether the connection is still up. */
bool db_alive(const db_conn *c);

/* Whether a transaction is open (or failed and not yet rolled back). */
bool db_in_transaction(const db_conn *c);

/* Whether a connection kept between uses (the daemon's) can take the next
 * one: open, outside any transaction, and not closed by the server meanwhile
 * (what arrived is read without a round trip: a restarted server's goodbye). */
bool db_reusable(db_conn *c);

/* Marks a connection as kept for many imports: the statements every import
 * runs are prepared on it once. */
void db_keep(db_conn *c);

/* COMMIT; on failure err says "WHAT: what the server said". */
int db_commit(db_conn *c, const char *what, owl_err *err);

/* From a signal handler: asks the server to cancel what every open connection
 * is running, and makes every later statement fail at once (OWL_ERUNTIME,
 * "interrupted") until db_cancel_reset. */
void db_cancel_all(void);
void db_cancel_reset(void);

/* ROLLBACK when a transaction is open; errors are ignored (the connection is
 * closed after it anyway when it is broken). */
void db_rollback(db_conn *c);

/* Writes "libpq X.Y", the version of the libpq this process runs with, into buf. */
void db_lib_version(char *buf, size_t size);

#endif
