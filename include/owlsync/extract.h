/* owlsync extract: an export's reading of its tables' rows, in one snapshot, on
 * one connection or on several that join it (each large table split by dataset
 * over them), into spools: a table read in one part is compressed into a frame
 * of its own while it streams. Counts rows and bytes, sums per-row digests (for
 * skip_unchanged) and takes each table's BLAKE2b, and collects the datasets the
 * rows name. */
#ifndef OWLSYNC_EXTRACT_H
#define OWLSYNC_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/bundle.h"
#include "owlsync/db.h"
#include "owlsync/error.h"
#include "owlsync/progress.h"

#define EXTRACT_LANES 2 /* 64-bit lanes of a row digest */

/* One table to read, and what reading it found. */
typedef struct extract_table {
    const char *name;
    const char *dataset_column;  /* "" = the whole table */
    const char *dataset_type;    /* its type, unmodified (format_type) */
    bool only;                   /* an ordinary table: not the rows of its children */
    char *const *columns;        /* the columns to read, in order */
    size_t ncolumns;
    int ds_field;                /* the dataset column's index in columns, or -1 */
    /* filled by extract_run */
    uint64_t rows, bytes;
    uint64_t lanes[EXTRACT_LANES]; /* order-independent sum of the rows' digests */
    char blake2b[65];            /* hex digest of the table's COPY text */
} extract_table;

typedef struct extract_opts {
    const char *conninfo;        /* for the further connections */
    const char *schema;
    const char *snapshot_id;     /* the snapshot they join; NULL = one connection */
    int parallel;                /* connections at most, 1..16 */
    char *const *names;          /* the job's dataset names and LIKE patterns */
    size_t nnames;
    char *const *patterns;
    size_t npatterns;
    char *const *datasets;       /* with several connections: the datasets found */
    size_t ndatasets;
    bundle_compression comp;     /* of the bundle, so frames go in as they are */
    int level;
    progress *prog;              /* shared with the caller; may be off */
} extract_opts;

typedef struct extract extract;

/* Reads every table on conn (in a snapshot begun with source_begin) and, when
 * opts->snapshot_id is set, on up to parallel - 1 more connections. With one
 * connection the rows are selected by names and patterns and the datasets are
 * collected as they stream: *datasets (sorted, the caller's: free each and the
 * array) then lists them, none when nothing matched. *out is the caller's:
 * extract_free. */
int extract_run(db_conn *conn, extract_table *tabs, size_t ntabs, const extract_opts *opts, extract **out,
                char ***datasets, size_t *ndatasets, owl_err *err);

/* Writes table i's rows into the bundle as the data of its entry (the entry's
 * header written first): frames as they are, or parts compressed now. */
int extract_write_table(extract *x, size_t i, bundle_writer *w, const char *entry, owl_err *err);

/* Frees the spools and everything; NULL is a no-op. */
void extract_free(extract *x);

#endif
