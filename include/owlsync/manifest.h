/* owlsync bundle manifest: the signed JSON description of a bundle (DESIGN.md 3.4),
 * built by the exporter, serialised to exact bytes, and parsed strictly on import. */
#ifndef OWLSYNC_MANIFEST_H
#define OWLSYNC_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/error.h"
#include "owlsync/text.h"

#define MANIFEST_FORMAT "owlsync-bundle"
#define MANIFEST_VERSION 1      /* written when no column is a reference */
#define MANIFEST_VERSION_REFS 2 /* written when one is; read: 1 and 2 */
#define MANIFEST_ENCODING "UTF8" /* the encoding of the data (client_encoding of the export) */
#define MANIFEST_MAX_BYTES (4 * 1024 * 1024) /* bound on manifest.json */
#define MANIFEST_MAX_TABLES 256
#define MANIFEST_MAX_COLUMNS 1600            /* PostgreSQL's own column limit */
#define MANIFEST_MAX_DATASETS 100000
#define MANIFEST_NAME_MAX TEXT_NAME_MAX       /* identifiers, as in PostgreSQL */
#define MANIFEST_TEXT_MAX 1024               /* dataset names, types, other text */

typedef struct manifest_column {
    char *name;
    char *type;       /* format_type() text, e.g. "text", "jsonb", "numeric(10,2)" */
    bool ref;         /* a reference: the source's values of a column the target
                       * assigns itself, carried (never written) so that the
                       * columns referencing it can be translated; version 2 */
} manifest_column;

typedef struct manifest_table {
    char *name;
    char *file;           /* "data/NAME.tsv" */
    manifest_column *columns;
    size_t ncolumns;
    char *dataset_column; /* "" for a global table */
    uint64_t rows;
    uint64_t bytes;
    char blake2b[65];     /* hex */
} manifest_table;

typedef struct manifest {
    int version;
    char bundle_id[33];   /* 128-bit hex */
    char *environment;
    char *job;
    uint64_t sequence;
    int64_t created_at;   /* microseconds since the epoch, UTC */
    int64_t snapshot_at;
    int64_t expires_at;
    char **targets;       /* environments allowed to import; none = any */
    size_t ntargets;
    char *schema;
    char **datasets;      /* dataset names actually exported */
    size_t ndatasets;
    char key_id[17];
    char *producer;       /* "owlsync X.Y.Z" */
    manifest_table *tables;
    size_t ntables;
} manifest;

/* A new, empty manifest owned by the caller (free with manifest_free). */
manifest *manifest_new(void);
void manifest_free(manifest *m);

/* Appends helpers: copy the strings given. Return -1 on allocation failure. */
int manifest_add_target(manifest *m, const char *env);
int manifest_add_dataset(manifest *m, const char *name);
manifest_table *manifest_add_table(manifest *m, const char *name, const char *dataset_column);
int manifest_table_add_column(manifest_table *t, const char *name, const char *type);
int manifest_set_string(char **field, const char *value);

/* Serialises m to JSON bytes (compact, keys in a fixed order, newline at end).
 * *out is malloc'd and owned by the caller. */
/* Whether a column of m is a reference (the bundle is then version 2). */
bool manifest_has_refs(const manifest *m);

int manifest_serialize(const manifest *m, char **out, size_t *outlen, owl_err *err);

/* Parses and validates manifest bytes strictly: format, version, every required
 * field and its type, identifier shapes, file names, counts and lengths.
 * Unknown fields are ignored (forward compatibility). Errors are OWL_EVERIFY. */
int manifest_parse(const char *buf, size_t len, manifest **out, owl_err *err);

/* Parses a time as the manifest writes it, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
 * (text_utc's TEXT_UTC_MICROS; fraction optional, 1-6 digits); -1 on error. */
int manifest_parse_time(const char *s, int64_t *usec);

/* A JSON document for scripts: {"file": FILE, "signature_verified": BOOL,
 * "manifest": the manifest as signed}. *out is malloc'd, owned by the caller. */
int manifest_inspect_json(const char *mbytes, size_t mlen, const char *file, int verified,
                          char **out, owl_err *err);

/* The table called name, or NULL. */
const manifest_table *manifest_find_table(const manifest *m, const char *name);

/* The version of the jansson this process runs with (the one built against
 * before jansson 2.13, which cannot tell); a static string. */
const char *manifest_lib_version(void);

#endif
