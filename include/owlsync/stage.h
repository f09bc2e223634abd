/* owlsync stage: the import's writes to the target, in one transaction: rows
 * COPYed into a temporary staging table (or straight into the table), then
 * compared with the target's rows of the bundle's datasets and applied by
 * deletes, updates and inserts, and the sequences moved. Every statement of
 * an import but the ledger's is here. */
#ifndef OWLSYNC_STAGE_H
#define OWLSYNC_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/db.h"
#include "owlsync/error.h"

/* One bundle table as the target takes it. */
typedef struct stage_table {
    const char *schema, *table;
    unsigned no;               /* its staging table is pg_temp.owlsync_stage_NO */
    char *const *columns;      /* the bundle's columns, in its order */
    const bool *exact_eq;      /* per column: compared as it is, else as text */
    const bool *always;        /* per column: GENERATED ALWAYS AS IDENTITY */
    const bool *ref;           /* per column: a reference, staged but never written */
    size_t ncolumns;
    char *const *key;          /* the columns rows are matched by; none = no key */
    size_t nkey;
    const char *dataset_column; /* "" for a global table */
    const char *dataset_type;  /* its type, unmodified (format_type), for the scope's cast */
    char *const *scope;        /* the target's names of the bundle's datasets */
    size_t nscope;
    bool direct;               /* COPY writes the table itself */
    bool per_dataset;          /* counts per dataset, else one total under "" */
    bool changes_per_dataset;  /* the counts of rows written (inserted, updated,
                                * deleted, or COPYed when direct) per dataset
                                * even when per_dataset is off: grouping only
                                * the rows an import changes */
} stage_table;

/* Receives counts of rows: of one dataset ("" for a global table, or for a
 * total when the count is not per dataset). */
typedef int (*stage_count_fn)(void *ctx, const char *dataset, uint64_t n, owl_err *err);

/* Begins the import's transaction, with the lock timeout and the planner
 * settings the apply statements are written for. The search path stays the
 * role's own, for the target's triggers and functions: every name owlsync
 * writes is schema-qualified. */
int stage_begin(db_conn *c, int64_t lock_timeout, owl_err *err);

/* Checks now what was deferred to COMMIT (deferrable constraints), so that a
 * violation fails the import before its last steps, and a dry run too. */
int stage_check_deferred(db_conn *c, owl_err *err);

/* Whether the target holds no row of t's scope (*empty). */
int stage_scope_empty(db_conn *c, const stage_table *t, bool *empty, owl_err *err);

/* The same for n tables in one statement: empty[i] for ts[i]. */
int stage_scope_empty_many(db_conn *c, const stage_table *const *ts, size_t n, bool *empty, owl_err *err);

/* The rows the target holds in each table's scope (counts[i] for ts[i]), in
 * one statement: after a direct COPY into tables that held none there, the
 * rows it wrote that lie in scope. */
int stage_scope_counts(db_conn *c, const stage_table *const *ts, size_t n, uint64_t *counts, owl_err *err);

/* Creates t's staging table (ON COMMIT DROP), unless t->direct. */
int stage_create(db_conn *c, const stage_table *t, owl_err *err);

/* COPY into the staging table, or the table itself when t->direct: begin, put
 * rows (text format, whole or in pieces), then end. stage_copy_end with a
 * reason aborts the COPY; without, it finishes it and sets *rows. When the
 * target refused a character its encoding cannot hold, it returns -2 with
 * *rows the number of the row (err says which bytes). */
int stage_copy_begin(db_conn *c, const stage_table *t, owl_err *err);
int stage_copy_put(db_conn *c, const char *buf, size_t len, owl_err *err);
int stage_copy_end(db_conn *c, const char *abort_reason, uint64_t *rows, owl_err *err);

/* The rows COPY wrote (copied of them) that lie outside t's scope: a NULL
 * dataset, or one the bundle does not declare. Sets *outside to their number
 * and, for a staging table, example to the dataset of one of them. */
int stage_outside_scope(db_conn *c, const stage_table *t, uint64_t copied, uint64_t *outside, char *example,
                        size_t exlen, owl_err *err);

/* A key problem of the staged rows (or, when direct, of the rows now in scope):
 * a NULL in a key column, or two rows equal under the target's equality of
 * the key (its collations, 1.0 = 1.00). Returns 1 with what set ("a row with a
 * NULL in it: 'a', NULL" or "2 rows equal in it: 'a', 'b'"), 0 when none. */
int stage_key_problem(db_conn *c, const stage_table *t, char *what, size_t wlen, owl_err *err);

/* Translates the staged values of child's columns ccols, which reference
 * parent's pcols (n of each), from the source's to the target's: each staged
 * parent row gives its source values (staged) and those of the target row it
 * matches by key, in the parent's scope. Rows whose references (none NULL)
 * match no staged parent row are counted in *unresolved, one of them shown in
 * example (its key and references); nothing is translated then. */
int stage_translate(db_conn *c, const stage_table *child, const stage_table *parent, char *const *ccols,
                    char *const *pcols, size_t n, uint64_t *unresolved, char *example, size_t exlen, owl_err *err);

/* Statistics of the staging table's key columns, so the planner joins it by hash. */
int stage_analyze(db_conn *c, const stage_table *t, owl_err *err);

/* Counts the staged rows (or, when direct, the rows now in scope). */
int stage_count(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err);

/* Counts, in one join, the target's rows in scope that no staged row matches
 * by key (*to_delete) and the staged rows no such target row matches
 * (*to_insert). */
int stage_match(db_conn *c, const stage_table *t, uint64_t *to_delete, uint64_t *to_insert, owl_err *err);

/* Deletes the target's rows in scope that no staged row matches by key (all of
 * them without a key); counts them. */
int stage_delete(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err);

/* Updates the target's rows that a staged row matches by key and differs from
 * in some column; counts them. A GENERATED ALWAYS identity column keeps the
 * target's value (PostgreSQL updates it only to DEFAULT). */
int stage_update(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err);

/* Inserts the staged rows no target row matches by key (every staged row
 * without a key); counts them. The stage stays as it was (for an update after
 * it). Identity values travel as COPY writes them (OVERRIDING SYSTEM VALUE). */
int stage_insert(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err);

/* Moves sequence (an oid as text; name for messages) past the largest value
 * now in schema.table's column, when it is behind: 1 with *from and *to, 0
 * when it is not behind, -1 on error. With dry, only says what it would do
 * (setval is not transactional: a dry run must not call it). */
int stage_move_sequence(db_conn *c, const char *schema, const char *table, const char *column, const char *oid,
                        const char *name, bool dry, int64_t *from, int64_t *to, owl_err *err);

#endif
