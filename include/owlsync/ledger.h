/* owlsync ledger: the schema owlsync in the target database that records every
 * imported bundle in the import's own transaction, the last snapshot applied
 * per (environment, dataset), the locks that serialize importers, and what
 * status reads back. Every statement on the ledger is here. */
#ifndef OWLSYNC_LEDGER_H
#define OWLSYNC_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/db.h"
#include "owlsync/error.h"

/* Creates the ledger (sql/ledger.sql) when one of its tables is missing. */
int ledger_ensure(db_conn *c, owl_err *err);

/* Whether the ledger exists, and whether this role may create it (for check). */
int ledger_status(db_conn *c, bool *present, bool *can_create, owl_err *err);

/* Takes the transaction advisory lock that serializes importers. */
int ledger_lock(db_conn *c, owl_err *err);

/* Whether bundle_id is recorded: 1 from environment with key_id (imported
 * before), 2 from another environment or key (other says which: a bundle
 * reusing another's id), 0 no, -1 error. */
int ledger_has_bundle(db_conn *c, const char *bundle_id, const char *environment, const char *key_id, char *other,
                      size_t olen, owl_err *err);

/* Finds a (dataset, table) of datasets and tables (dataset tables: a global
 * table is not checked) whose recorded snapshot for environment is newer than
 * snapshot_at (microseconds): 1 with what ("dataset D, table T") and that
 * snapshot's time in when (TEXT_UTC_MICROS), 0 when there is none, -1 on
 * error. */
int ledger_newer_snapshot(db_conn *c, const char *environment, char *const *datasets, size_t ndatasets,
                          char *const *tables, size_t ntables, int64_t snapshot_at, char *what, size_t wlen,
                          char *when, size_t wnlen, owl_err *err);

/* One imported bundle, as recorded. */
typedef struct ledger_entry {
    const char *bundle_id, *environment, *job, *key_id, *file_name;
    uint64_t sequence, rows_total;
    int64_t snapshot_at, created_at; /* microseconds since the epoch */
    char *const *datasets;
    size_t ndatasets;
    char *const *tables;  /* the bundle's dataset tables */
    size_t ntables;
} ledger_entry;

typedef struct ledger_counts {
    uint64_t rows, inserted, updated, deleted, unchanged;
} ledger_counts;

/* Records the bundle and the snapshot it applied for each of its datasets and
 * each (dataset, table). */
int ledger_record_bundle(db_conn *c, const ledger_entry *e, owl_err *err);

/* Records one table's counts. */
int ledger_record_table(db_conn *c, const char *bundle_id, const char *table, const ledger_counts *n,
                        owl_err *err);

/* Records the values one rewrite rule changed in one table. */
int ledger_record_rewrite(db_conn *c, const char *bundle_id, const char *rule, const char *table,
                          uint64_t changed, owl_err *err);

/* One row of the ledger, for status. */
typedef struct ledger_row {
    char *file_name, *bundle_id, *environment, *job, *datasets, *imported_at;
    uint64_t sequence, rows;
} ledger_row;

/* The last limit imports, newest first, and the time of the newest (0 when
 * none), in microseconds. A database without a ledger gives no rows. Free
 * *rows with ledger_rows_free. */
int ledger_recent(db_conn *c, int limit, ledger_row **rows, size_t *n, int64_t *last_import, owl_err *err);
void ledger_rows_free(ledger_row *rows, size_t n);

/* The claim lock: a session advisory lock, on a connection of its own, that one
 * agent holds while it picks files from a shared inbox and imports them, so
 * bundles go in snapshot order whichever agent takes them. ledger_claim_try
 * returns 1 when taken, 0 when another agent holds it, -1 when the database
 * cannot be reached (*claim is made on first use and kept). */
typedef struct ledger_claim ledger_claim;
int ledger_claim_try(const char *conninfo, ledger_claim **claim, owl_err *err);
void ledger_claim_release(ledger_claim *claim);
void ledger_claim_free(ledger_claim *claim);

#endif
