/* owlsync exporter: reads chosen datasets of the source metastore in one
 * consistent snapshot and publishes a signed bundle into each outbox. */
#ifndef OWLSYNC_EXPORTER_H
#define OWLSYNC_EXPORTER_H

#include <stdbool.h>
#include <stdint.h>

#include "owlsync/bundle.h"
#include "owlsync/config.h"
#include "owlsync/error.h"

typedef struct exporter_job {
    const char *name;            /* job name; goes into the bundle's file name */
    const cfg_list *datasets;    /* names or LIKE patterns (an item with '%') */
    const cfg_list *tables;      /* [table] names; empty = every configured table */
    const cfg_list *outboxes;    /* at least one directory */
    const char *signing_key;     /* secret key path */
    const cfg_trusted_key *encrypt_to; /* recipients' encryption keys (nencrypt_to); none:
                                  * the bundle is not encrypted */
    size_t nencrypt_to;
    int bundle_mode;             /* the published bundles' mode (bundle_mode) */
    bundle_compression compression;
    int compression_level;
    bool skip_unchanged;
    bool force;                  /* export --force: every outbox gets a bundle, whatever
                                  * skip_unchanged says */
    int64_t valid_for;           /* seconds */
    const cfg_list *targets;     /* may be empty */
    int parallel;                /* source connections on one snapshot, 1..16 */
    bool progress;               /* rows, bytes, rate on stderr */
    bool remember;               /* outboxes are the job's own: what each receives, and the
                                  * datasets carried, are saved (false for -o DIR, which takes
                                  * a sequence number and changes nothing else) */
} exporter_job;

typedef struct exporter_result {
    char **paths;        /* published bundle paths, owned by the result */
    size_t npaths;
    bool unchanged;      /* skip_unchanged: every outbox holds this content; nothing published */
    uint64_t sequence;   /* the bundle's sequence number (unchanged: the last one received) */
    uint64_t rows;       /* rows exported, all tables */
    int failed_outboxes; /* outboxes that could not take the bundle */
} exporter_result;

#define EXPORTER_LANES 2 /* 64-bit lanes of a row digest sum */

/* One table of a bundle about to be published: its columns, and what its rows
 * came to (spooled by whoever read them). */
typedef struct exporter_table {
    const char *name;
    const char *dataset_column;  /* "" = a global table */
    char *const *columns;        /* in order */
    char *const *types;          /* each column's type (format_type text, or "unknown") */
    size_t ncolumns;
    size_t nrefs;                /* its last nrefs columns are references (manifest version 2) */
    uint64_t rows, bytes;
    uint64_t lanes[EXPORTER_LANES]; /* order-independent sum of the rows' digests (skip_unchanged) */
    char blake2b[65];            /* hex digest of the table's COPY text */
} exporter_table;

/* Writes table i's rows into the bundle as the data of entry (its header first). */
typedef int (*exporter_write_fn)(void *ctx, size_t i, bundle_writer *w, const char *entry, owl_err *err);

/* Rows read, ready to be published: what the manifest says of them, and how
 * to write them. */
typedef struct exporter_rows {
    const char *schema;          /* the source's schema */
    int64_t snapshot_at;         /* microseconds since the epoch */
    const exporter_table *tables;
    size_t ntables;
    char *const *datasets;       /* in byte order */
    size_t ndatasets;
    exporter_write_fn write;
    void *ctx;
} exporter_rows;

/* Fills job from an [export] section (progress off, remember on); the caller may override. */
void exporter_job_init(exporter_job *job, const cfg_export *ex);

/* Runs one export. Returns 0 when the bundle was published to every outbox
 * that was to get it (or none was); -1 with err set otherwise, also when some
 * outboxes got it (their paths are in res). The sequence number is saved in
 * state_dir before the bundle is published (a crash skips it, never reuses
 * it); no partial *.owlb is ever visible in an outbox and no file there is
 * ever replaced. With skip_unchanged, an outbox gets the bundle when the last
 * bundle it received (that the job knows of) had other content. */
int exporter_run(const cfg *c, const exporter_job *job, exporter_result *res, owl_err *err);

/* Publishes rows read elsewhere (owlsync convert) as job's bundle, by the
 * same stages as exporter_run after its reading: the job's lock and state,
 * the manifest, the sequence number saved first, signing, packing, publishing
 * into each outbox (and, with job->remember, what each received). The
 * datasets are the ones given; job->datasets is not used, nor are the
 * datasets the job carried saved. */
int exporter_publish(const cfg *c, const exporter_job *job, const exporter_rows *rows, exporter_result *res,
                     owl_err *err);

void exporter_result_free(exporter_result *res);

#endif
