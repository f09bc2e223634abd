/* owlsync configuration: the INI file of DESIGN.md 3.2 parsed (with inih) into a
 * typed, validated, read-only structure. Errors name the file, line and key. */
#ifndef OWLSYNC_CONFIG_H
#define OWLSYNC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/error.h"

/* Longest line (without its newline) that Debian's inih reads whole. */
#define CFG_MAX_LINE 199
/* Longest value of a key that continues on indented lines (conninfo, paths,
 * rewrite from and to), its lines joined. */
#define CFG_MAX_VALUE 4096
/* Most encrypt_to keys of one export job (a bundle's recipients). */
#define CFG_MAX_RECIPIENTS 64
/* Largest config file read. */
#define CFG_MAX_FILE (1024 * 1024)
/* [export] bundle_mode and [owlsync] metrics_mode when not set: readable by
 * other users (a reader of the share, node_exporter) whatever the umask. */
#define CFG_DEFAULT_FILE_MODE 0644
/* [import] max_bundle_size and max_unpacked_size when not set (and for inspect). */
#define CFG_DEFAULT_MAX_BUNDLE_SIZE ((uint64_t)1 << 30)
#define CFG_DEFAULT_MAX_UNPACKED_SIZE ((uint64_t)8 << 30)
/* [import] max_clock_skew and lock_timeout when not set, in seconds. */
#define CFG_DEFAULT_MAX_CLOCK_SKEW 300
#define CFG_DEFAULT_LOCK_TIMEOUT 60
/* [import] max_regex_value and max_regex_time when not set. */
#define CFG_DEFAULT_MAX_REGEX_VALUE ((uint64_t)1 << 20)
#define CFG_DEFAULT_MAX_REGEX_TIME 10
/* [import] max_json_values when not set. */
#define CFG_DEFAULT_MAX_JSON_VALUES 1000000

typedef struct cfg_list {
    char **v;  /* n strings, each owned by the list */
    size_t n;
} cfg_list;

typedef enum { CFG_MODE_REPLACE = 0, CFG_MODE_UPSERT, CFG_MODE_INSERT, CFG_MODE_COUNT } cfg_mode;

/* What each table mode does on import: the one table config, apply, check and
 * the reports consult. */
typedef struct cfg_mode_info {
    const char *name;
    bool needs_key;   /* refused for a table without a usable key */
    bool deletes;     /* removes the target's rows of the bundle's datasets it lacks */
    bool updates;     /* changes the rows whose values differ */
    bool inserts;     /* adds the rows new to the target */
} cfg_mode_info;

extern const cfg_mode_info cfg_modes[CFG_MODE_COUNT];
typedef enum { CFG_COMP_ZSTD = 0, CFG_COMP_GZIP, CFG_COMP_NONE } cfg_compression;
typedef enum { CFG_MATCH_EXACT = 0, CFG_MATCH_SUBSTRING, CFG_MATCH_REGEX } cfg_match;
typedef enum { CFG_WATCH_AUTO = 0, CFG_WATCH_INOTIFY, CFG_WATCH_POLL } cfg_watch;

typedef struct cfg_table {
    char *name;
    char *dataset_column; /* "" = a global table (the whole table travels) */
    cfg_list key;         /* conflict key; empty = the primary key */
    cfg_list generated;   /* columns the target assigns itself; not exported */
    cfg_mode mode;        /* resolved: given, else replace, or upsert for a global table */
    int line;             /* line of the section header */
} cfg_table;

/* An environment's name and a key: trusted_key (a signing public key the
 * environment signs with) or encrypt_to (an encryption public key of it). */
typedef struct cfg_trusted_key {
    char *environment;
    char *key;            /* a token ("owlsync-ed25519:…", "owlsync-x25519:…") or a .pub path */
    int line;
} cfg_trusted_key;

typedef struct cfg_export {
    char *name;
    cfg_list datasets;    /* names or LIKE patterns; at least one */
    cfg_list tables;      /* empty = every configured table */
    cfg_list outbox;      /* directories; repeatable key */
    char *signing_key;    /* path, or NULL */
    char *schedule;       /* 5-field cron text, or NULL = on demand only */
    cfg_compression compression;
    int compression_level; /* default 3; zstd 1..19, gzip 1..9 */
    bool skip_unchanged;   /* default true */
    int64_t valid_for;     /* seconds; default 7 days */
    cfg_list targets;      /* environments allowed to import; empty = any */
    int parallel;          /* source connections on one snapshot; default 1 */
    cfg_trusted_key *encrypt_to; /* nencrypt_to recipients; none = not encrypted */
    size_t nencrypt_to;
    int bundle_mode;       /* the published bundles' mode, whatever the umask */
    int line;
} cfg_export;

typedef struct cfg_import {
    bool present;          /* an [import] section exists */
    char *inbox;           /* NULL when not set */
    char *processed_dir;   /* resolved: default INBOX/processed; NULL = "none" (delete) */
    char *quarantine_dir;  /* resolved: default INBOX/quarantine */
    cfg_trusted_key *trusted; /* ntrusted entries */
    size_t ntrusted;
    cfg_list tables;       /* allow-list; empty = every configured table */
    cfg_list decrypt_key;  /* encryption secret key files; repeatable */
    bool require_encryption; /* plaintext bundles refused by policy; default false */
    cfg_watch watch;
    int poll_interval;     /* seconds, default 5 */
    int settle_time;       /* seconds, default 2 */
    uint64_t max_bundle_size;   /* bytes, default 1G */
    uint64_t max_unpacked_size; /* bytes, default 8G */
    int64_t processed_keep;     /* seconds a processed bundle is kept; 0 = forever */
    int64_t max_staleness;      /* seconds; 0 = not set */
    int64_t max_clock_skew;     /* seconds a bundle's times may run ahead of ours */
    int64_t lock_timeout;       /* seconds an import waits for a lock */
    uint64_t max_regex_value;   /* bytes, default 1M: the longest value a regex rule takes */
    int64_t max_regex_time;     /* seconds, default 10: the longest a regex rule works on one value */
    int max_json_values;        /* default 1000000: the most JSON values of a rewritten value checked */
} cfg_import;

typedef struct cfg_rewrite {
    char *name;
    cfg_list columns;      /* TABLE.COLUMN, TABLE.* or *.COLUMN */
    cfg_match match;
    char *from;
    char *to;
    int line;
} cfg_rewrite;

typedef struct cfg {
    char *path;            /* the file read */
    /* [owlsync] */
    char *environment;     /* required */
    char *state_dir;       /* default /var/lib/owlsync */
    int log_level;         /* a log_level value; default info */
    int log_format;        /* a log_format value; default text */
    char *metrics_file;    /* NULL when not set */
    int metrics_mode;      /* its mode, whatever the umask */
    /* [database] */
    char *conninfo;        /* default "" (libpq defaults) */
    char *schema;          /* default "public" */
    cfg_table *tables;     /* in file order; when the file has no [table] section,
                              the vendor's default set (see cfg_load) */
    size_t ntables;
    bool tables_defaulted; /* true when tables came from the built-in default set */
    cfg_export *exports;
    size_t nexports;
    cfg_import import;
    cfg_rewrite *rewrites; /* in file order */
    size_t nrewrites;
} cfg;

/* Reads and validates the INI file at path. On success *out is a new cfg owned by
 * the caller (free with cfg_free). On failure returns -1 with err->code
 * OWL_EUSAGE and a message "PATH:LINE: ..." naming the section and key. */
int cfg_load(const char *path, cfg **out, owl_err *err);

/* Same as cfg_load but reads from a string; name is used in messages. */
int cfg_load_string(const char *name, const char *text, cfg **out, owl_err *err);

/* Frees everything; cfg_free(NULL) is a no-op. */
void cfg_free(cfg *c);

/* The [table] section named name, or NULL. */
const cfg_table *cfg_find_table(const cfg *c, const char *name);

/* The mode called name, or -1. */
int cfg_mode_by_name(const char *name);

/* The [export] section named name, or NULL. */
const cfg_export *cfg_find_export(const cfg *c, const char *name);

/* Parses a size: digits with an optional K, M, G or T suffix (powers of 1024,
 * optional trailing "B" or "iB"). Returns -1 on anything else or overflow. */
int cfg_parse_size(const char *s, uint64_t *out);

/* Parses a duration: digits with s, m, h, d or w (a bare number is seconds).
 * Returns -1 on anything else or overflow. */
int cfg_parse_duration(const char *s, int64_t *out);

/* Parses true/false/yes/no/on/off/1/0 (case-insensitive). */
int cfg_parse_bool(const char *s, bool *out);

/* Splits a comma-separated list, trimming blanks and dropping empty items,
 * appending the items to *list. Returns -1 on allocation failure. */
int cfg_list_split(cfg_list *list, const char *s);

/* Whether s is in the list. */
bool cfg_list_has(const cfg_list *list, const char *s);

void cfg_list_free(cfg_list *list);

/* The inih release owlsync was built against ("55"; inih has no way to tell
 * at run time); a static string. */
const char *config_lib_version(void);

#endif
