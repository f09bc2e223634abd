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

/* Creates the ledger (sql/ledger.sql) when part of it is missing; a whole
 * ledger is used without any DDL (no CREATE privilege needed). A part missing
 * that this role may not create is OWL_EUSAGE, naming it, with the command a
 * DBA runs as a hint. */
int ledger_ensure(db_conn *c, owl_err *err);

/* What this role finds of the ledger and may do with it: what the import
 * needs, read from the catalog alone (for check and for ledger_ensure). */
typedef struct ledger_access {
    bool schema;        /* schema owlsync exists */
    bool complete;      /* every table and column this owlsync uses exists */
    bool can_create;    /* the role may create what is missing (CREATE on the
                           database, or on schema owlsync when it exists) */
    char missing[256];  /* "schema owlsync", "owlsync.bundles, ...", or "" */
    char lacking[512];  /* privileges the import needs and the role lacks on
                           what exists ("INSERT on owlsync.bundles, ..."), or "" */
    char role[64], database[64];
} ledger_access;
int ledger_access_of(db_conn *c, ledger_access *a, owl_err *err);

/* Appends to err the hint that says how a DBA makes the ledger for a's role. */
void ledger_hint(const ledger_access *a, owl_err *err);

/* Takes the transaction advisory lock that serializes importers. */
int ledger_lock(db_conn *c, owl_err *err);

/* Whether bundle_id is recorded: 1 from environment with key_id (imported
 * before), 2 from another environment or key (other says which: a bundle
 * reusing another's id), 0 no, -1 error. */
int ledger_has_bundle(db_conn *c, const char *bundle_id, const char *environment, const char *key_id, char *other,
                      size_t olen, owl_err *err);

/* Where a bundle stands against what the target holds, per (dataset, table)
 * of its dataset tables (a global table is not checked). What the target
 * holds for a pair is newer than the bundle when it came from the same job
 * with a sequence at least the bundle's and a snapshot at least as late, or,
 * from another job (or a ledger older than sequences per pair), from a later
 * snapshot. So a source clock stepped back does not make its new bundles
 * look old, nor a job whose sequence restarted (its state lost) look new. */
typedef struct ledger_order {
    uint64_t pairs;          /* (dataset, table) pairs of the bundle */
    uint64_t newer;          /* of them, held newer by the target */
    uint64_t disagree;       /* same job, sequence and snapshot time disagree */
    char what[2 * 256 + 64]; /* "dataset D, table T" of the newest held, when newer > 0 */
    char when[40];           /* its snapshot time (TEXT_UTC_MICROS) */
    char job[64];            /* its job and sequence */
    uint64_t sequence;
} ledger_order;

typedef struct ledger_bundle_ref {
    const char *environment, *job;
    uint64_t sequence;
    int64_t snapshot_at; /* microseconds since the epoch */
    char *const *datasets;
    size_t ndatasets;
    char *const *tables; /* the bundle's dataset tables */
    size_t ntables;
} ledger_bundle_ref;

int ledger_order_of(db_conn *c, const ledger_bundle_ref *b, ledger_order *o, owl_err *err);

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
    const char *table;
    uint64_t rows, inserted, updated, deleted, unchanged;
} ledger_counts;

/* Records the bundle and the snapshot it applied for each of its datasets and
 * each (dataset, table). */
int ledger_record_bundle(db_conn *c, const ledger_entry *e, owl_err *err);

/* Records each table's counts (n of them), in one statement. */
int ledger_record_tables(db_conn *c, const char *bundle_id, const ledger_counts *v, size_t n, owl_err *err);

/* The values one rewrite rule changed in one table. */
typedef struct ledger_rewrite {
    const char *rule, *table;
    uint64_t changed;
} ledger_rewrite;

/* Records what each rule changed in each table (n of them), in one statement. */
int ledger_record_rewrites(db_conn *c, const char *bundle_id, const ledger_rewrite *v, size_t n, owl_err *err);

/* One row of the ledger, for status. */
typedef struct ledger_row {
    char *file_name, *bundle_id, *environment, *job, *imported_at;
    char **datasets;      /* the bundle's dataset names, exactly (any text) */
    size_t ndatasets;
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
