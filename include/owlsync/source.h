/* owlsync source: reading the metastore for an export, in one REPEATABLE READ,
 * READ ONLY snapshot that other connections may join: which datasets a job's
 * names and patterns select, and each table's rows streamed with COPY TO. */
#ifndef OWLSYNC_SOURCE_H
#define OWLSYNC_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/db.h"
#include "owlsync/error.h"

/* Begins the snapshot. With share, exports it: *snapshot_id (malloc'd, the
 * caller's) is what source_join takes. *snapshot_at is the transaction's
 * timestamp in microseconds since the epoch. */
int source_begin(db_conn *c, bool share, char **snapshot_id, int64_t *snapshot_at, owl_err *err);

/* Begins a transaction on another connection in the snapshot of source_begin. */
int source_join(db_conn *c, const char *snapshot_id, owl_err *err);

/* Ends the snapshot (nothing was written: its outcome does not matter). */
void source_end(db_conn *c);

/* A table that holds datasets: its name and dataset column. */
typedef struct source_table {
    const char *name;
    const char *dataset_column;
} source_table;

/* The distinct values of the tables' dataset columns that equal one of names
 * or are LIKE one of patterns, in byte order; *out (n strings) is the caller's,
 * each string and the array freed with free. */
int source_find_datasets(db_conn *c, const char *schema, const source_table *tables, size_t ntables,
                         char *const *names, size_t nnames, char *const *patterns, size_t npatterns, char ***out,
                         size_t *n, owl_err *err);

/* The rows of one table to read: every row of a table without a dataset
 * column; else those whose dataset is one of datasets, or (when datasets is
 * NULL) equals one of names or is LIKE one of patterns. */
typedef struct source_select {
    const char *schema, *table;
    bool only;                  /* not the rows of tables that inherit from it */
    char *const *columns;
    size_t ncolumns;
    const char *dataset_column; /* "" = every row */
    const char *dataset_type;   /* its type, unmodified, for the cast of datasets */
    char *const *datasets;      /* exact names, or NULL */
    size_t ndatasets;
    char *const *names, *const *patterns;
    size_t nnames, npatterns;
} source_select;

/* Starts COPY (SELECT columns FROM table WHERE selection) TO STDOUT. */
int source_copy_begin(db_conn *c, const source_select *s, owl_err *err);

/* The next row, with its newline: 1 with *row (valid until the next call), 0
 * when the COPY has ended well, -1 on error. */
int source_copy_next(db_conn *c, const char **row, size_t *len, owl_err *err);

/* After a COPY that was not read to its end: the connection cannot be used
 * again (it answers COPY_OUT for ever); the caller closes it. */
void source_copy_abandon(db_conn *c);

#endif
