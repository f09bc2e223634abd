/* owlsync importer: verifies a bundle, checks policy, and applies every table in
 * one transaction with its ledger row, or nothing at all. */
#ifndef OWLSYNC_IMPORTER_H
#define OWLSYNC_IMPORTER_H

#include <stdbool.h>
#include <stdint.h>

#include "owlsync/bundle.h"
#include "owlsync/config.h"
#include "owlsync/db.h"
#include "owlsync/error.h"
#include "owlsync/keys.h"
#include "owlsync/rewrite.h"

typedef struct importer_opts {
    bool dry_run;         /* do everything, report, then roll back */
    bool allow_rollback;  /* apply a bundle older than what the target holds */
    bool progress;        /* bytes and rate on stderr */
    bool per_dataset;     /* counts per dataset too (importer_table.datasets), not
                           * only per table: memory that grows with the datasets */
    bool changed_datasets; /* the inserted, updated and deleted counts per dataset
                           * (unchanged then 0): which datasets an import
                           * changes, grouping only the rows it writes */
    bool by_fd;           /* read the bundle through fd (a claimed file), the
                           * path only names it: never opened again by path */
    int fd;
    db_conn *conn;        /* an open connection to the target to use and leave
                           * open (the daemon's, kept between imports), or NULL
                           * to open one for this import */
} importer_opts;

typedef struct importer_counts {
    uint64_t inserted, updated, deleted, unchanged;
} importer_counts;

typedef struct importer_dataset {
    char *dataset;        /* "" for a global table */
    importer_counts n;
} importer_dataset;

typedef struct importer_table {
    char *name;
    const char *mode;     /* "replace", "replace (delete, insert)", "upsert", "insert" */
    uint64_t rows;        /* rows in the bundle */
    importer_counts n;    /* totals */
    importer_dataset *datasets; /* sorted by name (byte order); only with per_dataset
                                 * or changed_datasets */
    size_t ndatasets, capdatasets;
    uint64_t *rewritten;  /* values each rule changed here (nrules entries), or NULL */
    bool *covered;        /* whether each rule applies to a column of this table */
} importer_table;

/* IMPORT_SUPERSEDED: the target holds newer data of every (dataset, table) of
 * the bundle (res->superseded says what); nothing was applied. */
typedef enum { IMPORT_APPLIED = 0, IMPORT_ALREADY, IMPORT_DRY_RUN, IMPORT_SUPERSEDED } importer_status;

/* A sequence moved past the largest value imported (or, in a dry run, that
 * would be). */
typedef struct importer_sequence {
    char *name;
    int64_t from, to;
} importer_sequence;

typedef struct importer_result {
    importer_status status;
    char bundle_id[33];
    char *environment, *job;
    uint64_t sequence;
    size_t ndatasets;
    importer_table *tables;
    size_t ntables;
    const char **rules;   /* rewrite rule names (nrules), owned by the rewrite set */
    size_t nrules;
    char **warnings;      /* target columns that may not hold the source's values */
    size_t nwarnings;
    importer_sequence *sequences;
    size_t nsequences;
    char superseded[1024];  /* IMPORT_SUPERSEDED: what the target holds, for messages */
    double seconds;
} importer_result;

/* Imports the bundle at path into the database of c. trust holds the keys bound
 * to their environments; rewrites (may be NULL) are the compiled [rewrite]
 * rules. Errors: OWL_EVERIFY (bundle), OWL_EPOLICY (refused),
 * OWL_ERUNTIME (database, I/O), OWL_EUSAGE (config vs target mismatch). On any
 * error nothing is written. res is filled on success; free with importer_result_free. */
int importer_run(const cfg *c, const keys_trust *trust, const rewrite_set *rewrites, const char *path,
                 const importer_opts *opts, importer_result *res, owl_err *err);

void importer_result_free(importer_result *res);

#endif
