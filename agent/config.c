/* owlsync configuration: reads the INI file of DESIGN.md 3.2 through inih into a
 * typed, validated struct cfg; every error names the file, line, section and key. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "owlsync/config.h"
#include "owlsync/keys.h"
#include "owlsync/log.h"
#include "owlsync/text.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the key table ---------------------------------------------------------- */

typedef enum {
    S_OWLSYNC = 0,
    S_DATABASE,
    S_TABLE,
    S_EXPORT,
    S_IMPORT,
    S_REWRITE,
    S_COUNT
} sect_kind;

static const struct {
    const char *word;
    bool named; /* [word NAME] rather than [word] */
} sect_kinds[S_COUNT] = {
    [S_OWLSYNC] = {"owlsync", false}, [S_DATABASE] = {"database", false},
    [S_TABLE] = {"table", true},      [S_EXPORT] = {"export", true},
    [S_IMPORT] = {"import", false},   [S_REWRITE] = {"rewrite", true},
};

typedef enum {
    T_TEXT,       /* any text, empty allowed */
    T_REQTEXT,    /* non-empty text */
    T_OPTTEXT,    /* text; empty = not set (NULL) */
    T_ENVNAME,    /* [A-Za-z0-9_-]{1,63} */
    T_IDENT,      /* [A-Za-z_][A-Za-z0-9_]{0,62} */
    T_IDENT_OPT,  /* an identifier or empty */
    T_LIST_ANY,   /* comma-separated list of any non-empty items */
    T_LIST_IDENT, /* ... of identifiers */
    T_LIST_ENV,   /* ... of environment names */
    T_LIST_COL,   /* ... of TABLE.COLUMN, TABLE.* or *.COLUMN */
    T_SIZE,       /* uint64_t bytes */
    T_DURATION,   /* int64_t seconds */
    T_BOOL,       /* bool */
    T_INT,        /* int within [min, max] */
    T_LEVEL,      /* compression_level: an int checked against compression later */
    T_ENUM,       /* int index into words */
    T_LOGLEVEL,   /* int, a log_level */
    T_TRUSTED,    /* "ENVIRONMENT KEY", appended to import.trusted */
    T_RECIPIENT,  /* "ENVIRONMENT KEY [KEY...]", appended to the export's encrypt_to */
    T_MODE        /* int, a file mode in octal: read and write for the owner, at
                   * most read and write for group and others, no other bit */
} val_type;

enum {
    F_REPEAT = 1,   /* each line adds a value */
    F_REQUIRED = 2, /* the section needs it */
    F_POSITIVE = 4, /* zero is not allowed (sizes, durations) */
    F_CONT = 8,     /* a text value that indented lines continue, joined as they are */
    F_CONT_SPACE = 16 /* a text value that indented lines continue, joined with one space */
};

typedef struct key_desc {
    sect_kind sect;
    const char *name;
    val_type type;
    size_t off;   /* offset of the value in the section's struct */
    int flags;
    int min, max; /* T_INT range */
    const char *const *words; /* T_ENUM names, in the enum's order, NULL-terminated */
} key_desc;

const cfg_mode_info cfg_modes[CFG_MODE_COUNT] = {
    [CFG_MODE_REPLACE] = {"replace", false, true, true, true},
    [CFG_MODE_UPSERT] = {"upsert", true, false, true, true},
    [CFG_MODE_INSERT] = {"insert", true, false, false, true},
};

static const char *const mode_words[] = {"replace", "upsert", "insert", NULL};
_Static_assert(sizeof(mode_words) / sizeof(mode_words[0]) == CFG_MODE_COUNT + 1, "a word per mode");
static const char *const comp_words[] = {"zstd", "gzip", "none", NULL};
static const char *const match_words[] = {"exact", "substring", "regex", NULL};
static const char *const watch_words[] = {"auto", "inotify", "poll", NULL};
static const char *const level_words[] = {"error", "warn", "info", "debug", NULL};
static const char *const format_words[] = {"text", "json", NULL};

/* Enum values are stored through an int pointer. */
_Static_assert(sizeof(cfg_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(cfg_compression) == sizeof(int), "enum size");
_Static_assert(sizeof(cfg_match) == sizeof(int), "enum size");
_Static_assert(sizeof(cfg_watch) == sizeof(int), "enum size");

#define K(sect, name, type, strct, field, flags)                                     \
    { sect, name, type, offsetof(strct, field), flags, 0, 0, NULL }
#define KI(sect, name, strct, field, lo, hi)                                         \
    { sect, name, T_INT, offsetof(strct, field), 0, lo, hi, NULL }
#define KE(sect, name, strct, field, words)                                          \
    { sect, name, T_ENUM, offsetof(strct, field), 0, 0, 0, words }

static const key_desc keys[] = {
    K(S_OWLSYNC, "environment", T_ENVNAME, cfg, environment, F_REQUIRED),
    K(S_OWLSYNC, "state_dir", T_REQTEXT, cfg, state_dir, F_CONT),
    K(S_OWLSYNC, "log_level", T_LOGLEVEL, cfg, log_level, 0),
    K(S_OWLSYNC, "metrics_file", T_OPTTEXT, cfg, metrics_file, F_CONT),
    K(S_OWLSYNC, "metrics_mode", T_MODE, cfg, metrics_mode, 0),
    KE(S_OWLSYNC, "log_format", cfg, log_format, format_words),

    K(S_DATABASE, "conninfo", T_TEXT, cfg, conninfo, F_CONT_SPACE),
    K(S_DATABASE, "schema", T_IDENT, cfg, schema, 0),

    K(S_TABLE, "dataset_column", T_IDENT_OPT, cfg_table, dataset_column, 0),
    K(S_TABLE, "key", T_LIST_IDENT, cfg_table, key, 0),
    K(S_TABLE, "generated", T_LIST_IDENT, cfg_table, generated, 0),
    KE(S_TABLE, "mode", cfg_table, mode, mode_words),

    K(S_EXPORT, "datasets", T_LIST_ANY, cfg_export, datasets, F_REQUIRED),
    K(S_EXPORT, "tables", T_LIST_IDENT, cfg_export, tables, 0),
    K(S_EXPORT, "outbox", T_LIST_ANY, cfg_export, outbox, F_REPEAT),
    K(S_EXPORT, "signing_key", T_OPTTEXT, cfg_export, signing_key, F_CONT),
    K(S_EXPORT, "schedule", T_OPTTEXT, cfg_export, schedule, 0),
    KE(S_EXPORT, "compression", cfg_export, compression, comp_words),
    K(S_EXPORT, "compression_level", T_LEVEL, cfg_export, compression_level, 0),
    K(S_EXPORT, "skip_unchanged", T_BOOL, cfg_export, skip_unchanged, 0),
    K(S_EXPORT, "valid_for", T_DURATION, cfg_export, valid_for, F_POSITIVE),
    K(S_EXPORT, "targets", T_LIST_ENV, cfg_export, targets, 0),
    KI(S_EXPORT, "parallel", cfg_export, parallel, 1, 16),
    K(S_EXPORT, "encrypt_to", T_RECIPIENT, cfg_export, encrypt_to, F_REPEAT),
    K(S_EXPORT, "bundle_mode", T_MODE, cfg_export, bundle_mode, 0),

    K(S_IMPORT, "inbox", T_OPTTEXT, cfg_import, inbox, F_CONT),
    K(S_IMPORT, "processed_dir", T_OPTTEXT, cfg_import, processed_dir, F_CONT),
    K(S_IMPORT, "quarantine_dir", T_OPTTEXT, cfg_import, quarantine_dir, F_CONT),
    K(S_IMPORT, "trusted_key", T_TRUSTED, cfg_import, trusted, F_REPEAT),
    K(S_IMPORT, "tables", T_LIST_IDENT, cfg_import, tables, 0),
    K(S_IMPORT, "decrypt_key", T_LIST_ANY, cfg_import, decrypt_key, F_REPEAT),
    K(S_IMPORT, "require_encryption", T_BOOL, cfg_import, require_encryption, 0),
    KE(S_IMPORT, "watch", cfg_import, watch, watch_words),
    KI(S_IMPORT, "poll_interval", cfg_import, poll_interval, 1, 3600),
    KI(S_IMPORT, "settle_time", cfg_import, settle_time, 0, 3600),
    K(S_IMPORT, "max_bundle_size", T_SIZE, cfg_import, max_bundle_size, F_POSITIVE),
    K(S_IMPORT, "max_unpacked_size", T_SIZE, cfg_import, max_unpacked_size, F_POSITIVE),
    K(S_IMPORT, "processed_keep", T_DURATION, cfg_import, processed_keep, 0),
    K(S_IMPORT, "max_staleness", T_DURATION, cfg_import, max_staleness, 0),
    K(S_IMPORT, "max_clock_skew", T_DURATION, cfg_import, max_clock_skew, 0),
    K(S_IMPORT, "lock_timeout", T_DURATION, cfg_import, lock_timeout, F_POSITIVE),
    K(S_IMPORT, "max_regex_value", T_SIZE, cfg_import, max_regex_value, F_POSITIVE),
    K(S_IMPORT, "max_regex_time", T_DURATION, cfg_import, max_regex_time, F_POSITIVE),
    KI(S_IMPORT, "max_json_values", cfg_import, max_json_values, 1, INT_MAX),

    K(S_REWRITE, "columns", T_LIST_COL, cfg_rewrite, columns, F_REQUIRED),
    KE(S_REWRITE, "match", cfg_rewrite, match, match_words),
    K(S_REWRITE, "from", T_REQTEXT, cfg_rewrite, from, F_REQUIRED | F_CONT),
    K(S_REWRITE, "to", T_TEXT, cfg_rewrite, to, F_REQUIRED | F_CONT),
};

#define NKEYS ((int)ARRAY_LEN(keys))

/* ---- parser state ----------------------------------------------------------- */

/* One section of the file, in file order. */
typedef struct sect_state {
    sect_kind kind;
    size_t index;      /* into tables, exports or rewrites */
    int line;          /* of the header */
    int key_line[ARRAY_LEN(keys)]; /* first line of each key; 0 = not given */
    char *level_text;  /* compression_level as written, checked at the end */
} sect_state;

typedef struct parse_ctx {
    cfg *c;
    owl_err *err;
    const char *name;  /* the file's name, for messages */
    const char *text;
    size_t len;
    size_t pos;
    int line;          /* line last handed to inih */
    bool failed;       /* err is set; stop */
    bool cont;         /* that line continues the previous key's value */
    bool have_key;     /* a key line was seen since the last header (inih's prev_name) */
    sect_state *sects;
    size_t nsects;
    long cur;          /* index into sects of the current section; -1 = none yet */
} parse_ctx;

/* ---- small helpers ---------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

/* Returns arr (of n elements of size sz) reallocated to n + 1 elements, the new
 * last one zeroed; NULL (arr untouched) when out of memory. */
static void *grow(void *arr, size_t n, size_t sz)
{
    char *p = realloc(arr, (n + 1) * sz);

    if (p != NULL)
        memset(p + n * sz, 0, sz);
    return p;
}

/* "A, B or C" for the words of an enum. */
static void words_text(const char *const *words, char *buf, size_t size)
{
    size_t n = 0, used = 0;

    while (words[n] != NULL)
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");
        int w = snprintf(buf + used, size - used, "%s%s", sep, words[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* Whether s is an optional '-' and then only digits. */
static bool is_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
    }
    return true;
}

/* Parses an integer written as is_number() allows, within [min, max]. */
static bool int_in_range(const char *s, long long min, long long max, int *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

/* ---- public parsers --------------------------------------------------------- */

/* Reads leading decimal digits of s into *v (no sign, no blanks); sets *rest to
 * what follows. Returns -1 when there are none or on overflow. */
static int parse_digits(const char *s, uint64_t *v, const char **rest)
{
    char *end;
    unsigned long long n;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    *v = (uint64_t)n;
    *rest = end;
    return 0;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "KMGT";
    const char *rest;
    uint64_t v, mult = 1;

    if (s == NULL || parse_digits(s, &v, &rest) != 0)
        return -1;
    if (*rest != '\0') {
        const char *u = strchr(units, toupper((unsigned char)*rest));
        if (u != NULL) {
            for (const char *p = units; p <= u; p++)
                mult *= 1024;
            rest++;
            if ((rest[0] == 'i' || rest[0] == 'I') && (rest[1] == 'B' || rest[1] == 'b'))
                rest += 2;
            else if (rest[0] == 'B' || rest[0] == 'b')
                rest++;
        } else if (*rest == 'B' || *rest == 'b') {
            rest++;
        }
        if (*rest != '\0')
            return -1;
    }
    if (v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

int cfg_parse_duration(const char *s, int64_t *out)
{
    const char *rest;
    uint64_t v, mult;

    if (s == NULL || parse_digits(s, &v, &rest) != 0)
        return -1;
    switch (*rest) {
    case '\0':
    case 's':
        mult = 1;
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    case 'w':
        mult = 7 * 86400;
        break;
    default:
        return -1;
    }
    if (*rest != '\0' && rest[1] != '\0')
        return -1;
    if (v > (uint64_t)INT64_MAX / mult)
        return -1;
    *out = (int64_t)(v * mult);
    return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    if (s == NULL)
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int cfg_list_split(cfg_list *list, const char *s)
{
    while (s != NULL && *s != '\0') {
        const char *comma = strchr(s, ',');
        const char *end = comma != NULL ? comma : s + strlen(s);
        const char *b = s, *e = end;

        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (e > b) {
            char *item = strndup(b, (size_t)(e - b));
            char **v;
            if (item == NULL)
                return -1;
            v = realloc(list->v, (list->n + 1) * sizeof(*v));
            if (v == NULL) {
                free(item);
                return -1;
            }
            list->v = v;
            list->v[list->n++] = item;
        }
        s = comma != NULL ? comma + 1 : NULL;
    }
    return 0;
}

bool cfg_list_has(const cfg_list *list, const char *s)
{
    for (size_t i = 0; i < list->n; i++) {
        if (strcmp(list->v[i], s) == 0)
            return true;
    }
    return false;
}

void cfg_list_free(cfg_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        free(list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

/* ---- lookups and freeing ---------------------------------------------------- */

const cfg_table *cfg_find_table(const cfg *c, const char *name)
{
    for (size_t i = 0; c != NULL && i < c->ntables; i++) {
        if (strcmp(c->tables[i].name, name) == 0)
            return &c->tables[i];
    }
    return NULL;
}

int cfg_mode_by_name(const char *name)
{
    for (int i = 0; i < CFG_MODE_COUNT; i++) {
        if (strcmp(cfg_modes[i].name, name) == 0)
            return i;
    }
    return -1;
}

const cfg_export *cfg_find_export(const cfg *c, const char *name)
{
    for (size_t i = 0; c != NULL && i < c->nexports; i++) {
        if (strcmp(c->exports[i].name, name) == 0)
            return &c->exports[i];
    }
    return NULL;
}

void cfg_free(cfg *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->ntables; i++) {
        cfg_table *t = &c->tables[i];
        free(t->name);
        free(t->dataset_column);
        cfg_list_free(&t->key);
        cfg_list_free(&t->generated);
    }
    free(c->tables);
    for (size_t i = 0; i < c->nexports; i++) {
        cfg_export *e = &c->exports[i];
        free(e->name);
        cfg_list_free(&e->datasets);
        cfg_list_free(&e->tables);
        cfg_list_free(&e->outbox);
        free(e->signing_key);
        free(e->schedule);
        cfg_list_free(&e->targets);
        for (size_t k = 0; k < e->nencrypt_to; k++) {
            free(e->encrypt_to[k].environment);
            free(e->encrypt_to[k].key);
        }
        free(e->encrypt_to);
    }
    free(c->exports);
    free(c->import.inbox);
    free(c->import.processed_dir);
    free(c->import.quarantine_dir);
    for (size_t i = 0; i < c->import.ntrusted; i++) {
        free(c->import.trusted[i].environment);
        free(c->import.trusted[i].key);
    }
    free(c->import.trusted);
    cfg_list_free(&c->import.tables);
    cfg_list_free(&c->import.decrypt_key);
    for (size_t i = 0; i < c->nrewrites; i++) {
        cfg_rewrite *r = &c->rewrites[i];
        free(r->name);
        cfg_list_free(&r->columns);
        free(r->from);
        free(r->to);
    }
    free(c->rewrites);
    free(c->path);
    free(c->environment);
    free(c->state_dir);
    free(c->metrics_file);
    free(c->conninfo);
    free(c->schema);
    free(c);
}

/* ---- messages --------------------------------------------------------------- */

static const char *sect_name(const parse_ctx *p, const sect_state *st)
{
    switch (st->kind) {
    case S_TABLE:
        return p->c->tables[st->index].name;
    case S_EXPORT:
        return p->c->exports[st->index].name;
    case S_REWRITE:
        return p->c->rewrites[st->index].name;
    default:
        return NULL;
    }
}

/* "[export prod]" */
static void sect_title(const parse_ctx *p, const sect_state *st, char *buf, size_t size)
{
    const char *name = sect_name(p, st);

    if (name != NULL)
        snprintf(buf, size, "[%s %s]", sect_kinds[st->kind].word, name);
    else
        snprintf(buf, size, "[%s]", sect_kinds[st->kind].word);
}

/* Sets "PATH:LINE: MSG" (or "PATH: MSG" when line is 0); returns -1. */
static int at_line(parse_ctx *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int at_line(parse_ctx *p, int line, const char *fmt, ...)
{
    char msg[OWL_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->failed = true;
    if (line > 0)
        return err_set(p->err, OWL_EUSAGE, "%s:%d: %s", p->name, line, msg);
    return err_set(p->err, OWL_EUSAGE, "%s: %s", p->name, msg);
}

/* Sets "PATH:LINE: [SECTION] KEY: MSG"; returns -1. */
static int key_error(parse_ctx *p, const sect_state *st, int line, const char *key,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int key_error(parse_ctx *p, const sect_state *st, int line, const char *key,
                     const char *fmt, ...)
{
    char title[CFG_MAX_LINE + 16];
    char msg[OWL_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sect_title(p, st, title, sizeof(title));
    return at_line(p, line, "%s %s: %s", title, key, msg);
}

static int fail_oom(parse_ctx *p)
{
    p->failed = true;
    return err_oom(p->err);
}

/* ---- sections --------------------------------------------------------------- */

static void *sect_base(parse_ctx *p, const sect_state *st)
{
    switch (st->kind) {
    case S_TABLE:
        return &p->c->tables[st->index];
    case S_EXPORT:
        return &p->c->exports[st->index];
    case S_IMPORT:
        return &p->c->import;
    case S_REWRITE:
        return &p->c->rewrites[st->index];
    default:
        return p->c;
    }
}

/* Adds the struct of a new [table], [export] or [rewrite] with its defaults. */
static int new_named(parse_ctx *p, sect_kind kind, const char *name, int line,
                     size_t *index)
{
    cfg *c = p->c;

    if (kind == S_TABLE) {
        cfg_table *t = grow(c->tables, c->ntables, sizeof(*t));
        if (t == NULL)
            return fail_oom(p);
        c->tables = t;
        *index = c->ntables++;
        t = &c->tables[*index];
        t->line = line;
        t->mode = CFG_MODE_REPLACE;
        t->name = xstrdup(name);
        t->dataset_column = xstrdup("dataset");
        if (t->name == NULL || t->dataset_column == NULL)
            return fail_oom(p);
    } else if (kind == S_EXPORT) {
        cfg_export *e = grow(c->exports, c->nexports, sizeof(*e));
        if (e == NULL)
            return fail_oom(p);
        c->exports = e;
        *index = c->nexports++;
        e = &c->exports[*index];
        e->line = line;
        e->compression = CFG_COMP_ZSTD;
        e->compression_level = 3;
        e->skip_unchanged = true;
        e->valid_for = 7 * 86400;
        e->parallel = 1;
        e->bundle_mode = CFG_DEFAULT_FILE_MODE;
        e->name = xstrdup(name);
        if (e->name == NULL)
            return fail_oom(p);
    } else {
        cfg_rewrite *r = grow(c->rewrites, c->nrewrites, sizeof(*r));
        if (r == NULL)
            return fail_oom(p);
        c->rewrites = r;
        *index = c->nrewrites++;
        r = &c->rewrites[*index];
        r->line = line;
        r->match = CFG_MATCH_EXACT;
        r->name = xstrdup(name);
        if (r->name == NULL)
            return fail_oom(p);
    }
    return 0;
}

/* Opens the section whose header text (between [ and ]) is inner. */
static int begin_section(parse_ctx *p, char *inner)
{
    char *word, *name, *e;
    int kind = -1;
    sect_state *st;
    size_t index = 0;

    while (isspace((unsigned char)*inner))
        inner++;
    e = inner + strlen(inner);
    while (e > inner && isspace((unsigned char)e[-1]))
        *--e = '\0';
    word = inner;
    name = word;
    while (*name != '\0' && !isspace((unsigned char)*name))
        name++;
    if (*name != '\0') {
        *name++ = '\0';
        while (isspace((unsigned char)*name))
            name++;
    }
    for (int k = 0; k < S_COUNT; k++) {
        if (strcmp(word, sect_kinds[k].word) == 0)
            kind = k;
    }
    if (kind < 0) {
        return at_line(p, p->line,
                       "unknown section [%s%s%s]\nHINT: sections are [owlsync], "
                       "[database], [table NAME], [export JOB], [import] and "
                       "[rewrite NAME]",
                       word, *name ? " " : "", name);
    }
    if (sect_kinds[kind].named && *name == '\0') {
        return at_line(p, p->line, "section [%s] needs a name: [%s %s]", word, word,
                       kind == S_EXPORT ? "JOB" : "NAME");
    }
    if (!sect_kinds[kind].named && *name != '\0')
        return at_line(p, p->line, "section [%s] takes no name (got [%s %s])", word,
                       word, name);
    if (kind == S_TABLE && !text_is_ident(name))
        return at_line(p, p->line, "invalid table name \"%s\" (" TEXT_IDENT_RULE ")", name);
    if (kind == S_EXPORT && !text_is_name(name))
        return at_line(p, p->line, "invalid export job name \"%s\" (" TEXT_NAME_RULE ")", name);
    for (size_t i = 0; i < p->nsects; i++) {
        const sect_state *o = &p->sects[i];
        const char *oname = sect_name(p, o);
        if (o->kind == (sect_kind)kind &&
            (oname == NULL || strcmp(oname, name) == 0)) {
            return at_line(p, p->line, "duplicate section [%s%s%s] (first at line %d)",
                           word, *name ? " " : "", name, o->line);
        }
    }
    if (sect_kinds[kind].named &&
        new_named(p, (sect_kind)kind, name, p->line, &index) != 0)
        return -1;
    if (kind == S_IMPORT)
        p->c->import.present = true;
    st = grow(p->sects, p->nsects, sizeof(*st));
    if (st == NULL)
        return fail_oom(p);
    p->sects = st;
    st = &p->sects[p->nsects++];
    st->kind = (sect_kind)kind;
    st->index = index;
    st->line = p->line;
    p->cur = (long)(p->nsects - 1);
    return 0;
}

static const key_desc *find_key(sect_kind kind, const char *name, int *idx)
{
    for (int i = 0; i < NKEYS; i++) {
        if (keys[i].sect == kind && strcmp(keys[i].name, name) == 0) {
            *idx = i;
            return &keys[i];
        }
    }
    return NULL;
}

static bool is_list(val_type t)
{
    return t == T_LIST_ANY || t == T_LIST_IDENT || t == T_LIST_ENV || t == T_LIST_COL;
}

/* ---- the reader: what inih's ini_parse_stream reads ------------------------- */

/* inih's find_chars_or_comment: the first of chars, or an inline ';' comment that
 * follows whitespace, or the end. */
static char *find_chars_or_comment(char *s, const char *chars)
{
    bool was_space = false;

    while (*s && (chars == NULL || strchr(chars, *s) == NULL) &&
           !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s) != 0;
        s++;
    }
    return s;
}

/* Classifies a line exactly as inih will (comment, continuation, header, key) so
 * that the handler knows about continuations and headers open sections. */
static int classify(parse_ctx *p, const char *line)
{
    char buf[CFG_MAX_LINE + 1];
    char *start, *end;

    snprintf(buf, sizeof(buf), "%s", line);
    end = buf + strlen(buf);
    while (end > buf && isspace((unsigned char)end[-1]))
        *--end = '\0';
    start = buf;
    while (isspace((unsigned char)*start))
        start++;
    p->cont = false;
    if (*start == '\0' || *start == ';' || *start == '#')
        return 0;
    if (p->have_key && start > buf) {
        p->cont = true;
        return 0;
    }
    if (*start == '[') {
        end = find_chars_or_comment(start + 1, "]");
        if (*end != ']')
            return at_line(p, p->line, "syntax error: section header without \"]\"");
        *end = '\0';
        p->have_key = false;
        return begin_section(p, start + 1);
    }
    end = find_chars_or_comment(start, "=:");
    if (*end != '=' && *end != ':')
        return at_line(p, p->line,
                       "syntax error: expected \"key = value\" or \"[section]\"");
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    if (end == start)
        return at_line(p, p->line, "syntax error: no key before \"%c\"", *end);
    p->have_key = true;
    return 0;
}

/* The hint for a line over the limit (n bytes at s), by what the line is: a
 * comment, a continuation, or a key whose value may continue. */
static const char *long_line_hint(const parse_ctx *p, const char *s, size_t n)
{
    char name[64];
    size_t i = 0, k;
    int idx;
    const key_desc *kd;

    while (i < n && isspace((unsigned char)s[i]))
        i++;
    if (i > 0 && p->have_key)
        return "\nHINT: split the value over more indented lines";
    if (i < n && s[i] == '[')
        return "";
    for (k = 0; i + k < n && k < sizeof(name) - 1 && s[i + k] != '=' && s[i + k] != ':'; k++)
        name[k] = s[i + k];
    while (k > 0 && isspace((unsigned char)name[k - 1]))
        k--;
    name[k] = '\0';
    if (p->cur < 0 || (kd = find_key(p->sects[p->cur].kind, name, &idx)) == NULL)
        return "";
    if (is_list(kd->type))
        return "\nHINT: continue the list on indented lines";
    if (kd->flags & F_CONT_SPACE)
        return "\nHINT: continue the value on indented lines (joined with a space)";
    if (kd->flags & F_CONT)
        return "\nHINT: continue the value on indented lines (joined as they are, without a space)";
    return "";
}

/* Whether the n bytes at s are a comment line (";" or "#" after blanks). */
static bool is_comment(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && isspace((unsigned char)s[i]))
        i++;
    return i < n && (s[i] == ';' || s[i] == '#');
}

/* fgets-like: copies the next line of the in-memory file into str. Refuses a line
 * longer than CFG_MAX_LINE rather than letting inih split it. */
static char *read_line(char *str, int num, void *stream)
{
    parse_ctx *p = stream;
    const char *s, *nl;
    size_t n, limit = CFG_MAX_LINE;

    if (p->failed || p->pos >= p->len)
        return NULL;
    s = p->text + p->pos;
    nl = memchr(s, '\n', p->len - p->pos);
    n = nl != NULL ? (size_t)(nl - s) : p->len - p->pos;
    p->pos += n + (nl != NULL ? 1 : 0);
    p->line++;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (num <= 0)
        return NULL;
    if ((size_t)num - 1 < limit)
        limit = (size_t)num - 1;
    if (n > limit && is_comment(s, n)) {
        n = limit; /* a comment says nothing to the parser: any length will do */
    } else if (n > limit) {
        at_line(p, p->line, "line too long (over %zu characters)%s", limit, long_line_hint(p, s, n));
        return NULL;
    }
    if (memchr(s, '\0', n) != NULL) {
        at_line(p, p->line, "nul byte in line");
        return NULL;
    }
    memcpy(str, s, n);
    str[n] = '\0';
    if (classify(p, str) != 0)
        return NULL;
    return str;
}

/* ---- the handler: one key = value (or a continuation line) ------------------- */

/* Whether spec is TABLE.COLUMN, TABLE.* or *.COLUMN. */
static bool is_colspec(const char *spec)
{
    char buf[CFG_MAX_LINE + 1];
    char *dot;

    if (strlen(spec) >= sizeof(buf))
        return false;
    snprintf(buf, sizeof(buf), "%s", spec);
    dot = strchr(buf, '.');
    if (dot == NULL)
        return false;
    *dot = '\0';
    if (strcmp(buf, "*") == 0)
        return text_is_ident(dot + 1);
    return text_is_ident(buf) && (strcmp(dot + 1, "*") == 0 || text_is_ident(dot + 1));
}

static int set_list(parse_ctx *p, const sect_state *st, const key_desc *kd,
                    cfg_list *list, const char *value)
{
    size_t first = list->n;

    if (cfg_list_split(list, value) != 0)
        return fail_oom(p);
    for (size_t i = first; i < list->n; i++) {
        const char *item = list->v[i];
        if (kd->type == T_LIST_IDENT && !text_is_ident(item))
            return key_error(p, st, p->line, kd->name,
                             "invalid name \"%s\" (" TEXT_IDENT_RULE ")", item);
        if (kd->type == T_LIST_ENV && !text_is_name(item))
            return key_error(p, st, p->line, kd->name,
                             "invalid environment name \"%s\" (" TEXT_NAME_RULE ")", item);
        if (kd->type == T_LIST_COL && !is_colspec(item))
            return key_error(p, st, p->line, kd->name,
                             "invalid column \"%s\" (use TABLE.COLUMN, TABLE.* or "
                             "*.COLUMN)",
                             item);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(list->v[j], item) == 0)
                return key_error(p, st, p->line, kd->name, "\"%s\" is listed twice",
                                 item);
        }
    }
    return 0;
}

static int set_text(parse_ctx *p, char **slot, const char *value)
{
    char *s = NULL;

    if (value != NULL) {
        s = strdup(value);
        if (s == NULL)
            return fail_oom(p);
    }
    free(*slot);
    *slot = s;
    return 0;
}

/* trusted_key = ENVIRONMENT KEY */
static int add_trusted(parse_ctx *p, const sect_state *st, const key_desc *kd,
                       const char *value)
{
    const char *env = value, *env_end, *key, *key_end, *rest;
    cfg_import *im = &p->c->import;
    cfg_trusted_key *tk;
    char *envs;

    env_end = env;
    while (*env_end != '\0' && !isspace((unsigned char)*env_end))
        env_end++;
    key = env_end;
    while (isspace((unsigned char)*key))
        key++;
    key_end = key;
    while (*key_end != '\0' && !isspace((unsigned char)*key_end))
        key_end++;
    rest = key_end;
    while (isspace((unsigned char)*rest))
        rest++;
    if (env_end == env || key_end == key || *rest != '\0')
        return key_error(p, st, p->line, kd->name,
                         "expected \"ENVIRONMENT KEY\", got \"%s\"", value);
    envs = strndup(env, (size_t)(env_end - env));
    if (envs == NULL)
        return fail_oom(p);
    if (!text_is_name(envs)) {
        key_error(p, st, p->line, kd->name,
                  "invalid environment name \"%s\" (" TEXT_NAME_RULE ")", envs);
        free(envs);
        return -1;
    }
    tk = grow(im->trusted, im->ntrusted, sizeof(*tk));
    if (tk == NULL) {
        free(envs);
        return fail_oom(p);
    }
    im->trusted = tk;
    tk = &im->trusted[im->ntrusted++];
    tk->environment = envs;
    tk->line = p->line;
    tk->key = strndup(key, (size_t)(key_end - key));
    if (tk->key == NULL)
        return fail_oom(p);
    return 0;
}

/* encrypt_to = ENVIRONMENT KEY [KEY...]: each key a recipient of the job's
 * bundles, named for the environment that holds its secret half. */
static int add_recipients(parse_ctx *p, const sect_state *st, const key_desc *kd, cfg_export *ex,
                          const char *value)
{
    const char *env = value, *env_end, *key;
    char *envs;
    size_t nkeys = 0;

    env_end = env;
    while (*env_end != '\0' && !isspace((unsigned char)*env_end))
        env_end++;
    envs = strndup(env, (size_t)(env_end - env));
    if (envs == NULL)
        return fail_oom(p);
    if (!text_is_name(envs)) {
        key_error(p, st, p->line, kd->name, "invalid environment name \"%s\" (" TEXT_NAME_RULE ")", envs);
        free(envs);
        return -1;
    }
    for (key = env_end;;) {
        const char *key_end;
        cfg_trusted_key *tk;

        while (isspace((unsigned char)*key))
            key++;
        if (*key == '\0')
            break;
        key_end = key;
        while (*key_end != '\0' && !isspace((unsigned char)*key_end))
            key_end++;
        tk = grow(ex->encrypt_to, ex->nencrypt_to, sizeof(*tk));
        if (tk == NULL) {
            free(envs);
            return fail_oom(p);
        }
        ex->encrypt_to = tk;
        tk = &ex->encrypt_to[ex->nencrypt_to++];
        tk->line = p->line;
        tk->environment = strdup(envs);
        tk->key = strndup(key, (size_t)(key_end - key));
        if (tk->environment == NULL || tk->key == NULL) {
            free(envs);
            return fail_oom(p);
        }
        nkeys++;
        key = key_end;
    }
    free(envs);
    if (nkeys == 0)
        return key_error(p, st, p->line, kd->name, "expected \"ENVIRONMENT KEY [KEY...]\", got \"%s\"", value);
    if (ex->nencrypt_to > CFG_MAX_RECIPIENTS)
        return key_error(p, st, p->line, kd->name, "more than %d keys: a bundle is encrypted to at most %d",
                         CFG_MAX_RECIPIENTS, CFG_MAX_RECIPIENTS);
    return 0;
}

/* Parses value by the key's type and stores it in the section's struct. */
static int set_value(parse_ctx *p, sect_state *st, const key_desc *kd, const char *value)
{
    char *slot = (char *)sect_base(p, st) + kd->off;
    char words[160];

    switch (kd->type) {
    case T_TEXT:
        return set_text(p, (char **)slot, value);
    case T_REQTEXT:
        if (*value == '\0')
            return key_error(p, st, p->line, kd->name, "must not be empty");
        return set_text(p, (char **)slot, value);
    case T_OPTTEXT:
        return set_text(p, (char **)slot, *value ? value : NULL);
    case T_ENVNAME:
        if (!text_is_name(value))
            return key_error(p, st, p->line, kd->name,
                             "invalid name \"%s\" (" TEXT_NAME_RULE ")", value);
        return set_text(p, (char **)slot, value);
    case T_IDENT:
    case T_IDENT_OPT:
        if (!(kd->type == T_IDENT_OPT && *value == '\0') && !text_is_ident(value))
            return key_error(p, st, p->line, kd->name,
                             "invalid name \"%s\" (" TEXT_IDENT_RULE ")", value);
        return set_text(p, (char **)slot, value);
    case T_LIST_ANY:
    case T_LIST_IDENT:
    case T_LIST_ENV:
    case T_LIST_COL:
        return set_list(p, st, kd, (cfg_list *)(void *)slot, value);
    case T_SIZE: {
        uint64_t v;
        if (cfg_parse_size(value, &v) != 0)
            return key_error(p, st, p->line, kd->name, "invalid size \"%s\"", value);
        if (v == 0 && (kd->flags & F_POSITIVE))
            return key_error(p, st, p->line, kd->name, "must be greater than 0");
        *(uint64_t *)(void *)slot = v;
        return 0;
    }
    case T_DURATION: {
        int64_t v;
        if (cfg_parse_duration(value, &v) != 0)
            return key_error(p, st, p->line, kd->name, "invalid duration \"%s\"",
                             value);
        if (v == 0 && (kd->flags & F_POSITIVE))
            return key_error(p, st, p->line, kd->name, "must be greater than 0");
        *(int64_t *)(void *)slot = v;
        return 0;
    }
    case T_MODE: {
        char *end;
        long v;
        errno = 0;
        v = value[0] == '0' ? strtol(value, &end, 8) : -1;
        if (v < 0 || errno != 0 || *end != '\0' || strlen(value) > 4 || (v & ~0666L) != 0 || (v & 0600) != 0600)
            return key_error(p, st, p->line, kd->name,
                             "invalid file mode \"%s\" (octal with a leading 0, 0600 to 0666: read and write for "
                             "the owner, read or write for group and others, e.g. 0640)",
                             value);
        *(int *)(void *)slot = (int)v;
        return 0;
    }
    case T_BOOL:
        if (cfg_parse_bool(value, (bool *)slot) != 0)
            return key_error(p, st, p->line, kd->name,
                             "invalid boolean \"%s\" (expected true or false)", value);
        return 0;
    case T_INT: {
        int v;
        if (!is_number(value))
            return key_error(p, st, p->line, kd->name, "invalid number \"%s\"", value);
        if (!int_in_range(value, kd->min, kd->max, &v))
            return key_error(p, st, p->line, kd->name, "%s is out of range (%d..%d)",
                             value, kd->min, kd->max);
        *(int *)(void *)slot = v;
        return 0;
    }
    case T_LEVEL:
        if (!is_number(value))
            return key_error(p, st, p->line, kd->name, "invalid number \"%s\"", value);
        st->level_text = strdup(value);
        if (st->level_text == NULL)
            return fail_oom(p);
        return 0;
    case T_ENUM:
        for (int i = 0; kd->words[i] != NULL; i++) {
            if (strcmp(value, kd->words[i]) == 0) {
                *(int *)(void *)slot = i;
                return 0;
            }
        }
        words_text(kd->words, words, sizeof(words));
        return key_error(p, st, p->line, kd->name, "invalid value \"%s\" (expected %s)",
                         value, words);
    case T_LOGLEVEL: {
        log_level lv;
        if (log_parse_level(value, &lv) != 0) {
            words_text(level_words, words, sizeof(words));
            return key_error(p, st, p->line, kd->name,
                             "invalid value \"%s\" (expected %s)", value, words);
        }
        *(int *)(void *)slot = (int)lv;
        return 0;
    }
    case T_TRUSTED:
        return add_trusted(p, st, kd, value);
    case T_RECIPIENT:
        return add_recipients(p, st, kd, (cfg_export *)(void *)sect_base(p, st), value);
    }
    return 0;
}

/* Whether an indented line reads "KEY = ..." for a key of the section: the
 * person meant a key, but inih continues the previous one with it. */
static bool looks_like_key(sect_kind kind, const char *line)
{
    const char *end = find_chars_or_comment((char *)(uintptr_t)line, "=:");
    char name[64];
    size_t n;
    int idx;

    if (*end != '=' && *end != ':')
        return false;
    while (end > line && isspace((unsigned char)end[-1]))
        end--;
    n = (size_t)(end - line);
    if (n == 0 || n >= sizeof(name))
        return false;
    memcpy(name, line, n);
    name[n] = '\0';
    return find_key(kind, name, &idx) != NULL;
}

/* A continuation line of a text value: joined to it as it is (paths,
 * patterns) or with one space (conninfo's keyword=value pairs). */
static int append_text(parse_ctx *p, const sect_state *st, const key_desc *kd, char **slot, const char *more)
{
    const char *sep = (kd->flags & F_CONT_SPACE) && *slot != NULL && **slot != '\0' ? " " : "";
    size_t have = *slot != NULL ? strlen(*slot) : 0;
    size_t len = have + strlen(sep) + strlen(more);
    char *s;

    if (*more == '\0')
        return 0;
    if (len > CFG_MAX_VALUE)
        return key_error(p, st, p->line, kd->name, "value longer than %d characters", CFG_MAX_VALUE);
    s = malloc(len + 1);
    if (s == NULL)
        return fail_oom(p);
    snprintf(s, len + 1, "%s%s%s", *slot != NULL ? *slot : "", sep, more);
    free(*slot);
    *slot = s;
    return 0;
}

static int handle_key(parse_ctx *p, const char *name, const char *value)
{
    sect_state *st;
    const key_desc *kd;
    int idx;

    if (p->cur < 0)
        return at_line(p, p->line,
                       "%s: key before any section\nHINT: start with [owlsync]", name);
    st = &p->sects[p->cur];
    kd = find_key(st->kind, name, &idx);
    if (kd == NULL)
        return key_error(p, st, p->line, name, "unknown key");
    if (p->cont) {
        char buf[CFG_MAX_LINE + 1];
        char *end;

        /* Debian's inih r55 keeps " ; comment" on continuation lines: cut it here,
         * as it does on key lines. */
        snprintf(buf, sizeof(buf), "%s", value);
        end = find_chars_or_comment(buf, NULL);
        *end = '\0';
        while (end > buf && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (looks_like_key(st->kind, buf))
            return key_error(p, st, p->line, name,
                             "indented line \"%s\" continues this key's value\n"
                             "HINT: indented lines continue the previous key; start each key at the "
                             "beginning of its line",
                             buf);
        if (kd->flags & (F_CONT | F_CONT_SPACE))
            return append_text(p, st, kd, (char **)(void *)((char *)sect_base(p, st) + kd->off), buf);
        if (!is_list(kd->type))
            return key_error(p, st, p->line, name,
                             "continuation line (indented) for a key that takes one line\n"
                             "HINT: indented lines continue the previous key; start each key at the "
                             "beginning of its line");
        return set_value(p, st, kd, buf);
    }
    if (st->key_line[idx] != 0) {
        if (!(kd->flags & F_REPEAT))
            return key_error(p, st, p->line, name, "given twice (first at line %d)",
                             st->key_line[idx]);
    } else {
        st->key_line[idx] = p->line;
    }
    return set_value(p, st, kd, value);
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *p = user;

    if (p->failed)
        return 0;
    return handle_key(p, name, value) == 0;
}

/* ---- after the last line: defaults, required keys, cross-checks -------------- */

/* The vendor's tables, as the stand-in metastore (sql/metastore.sql) has them:
 * surrogate ids the target assigns itself, rows matched by their natural key,
 * which holds the dataset column. */
static int add_default_tables(parse_ctx *p)
{
    static const struct {
        const char *name;
        const char *dataset_column;
        const char *key;
    } defaults[] = {
        {"rule_repo", "", "rule_nm"},
        {"owl_catalog", "dataset", "dataset"},
        {"owl_rule", "dataset", "dataset, rule_nm"},
        {"alert_cond", "dataset", "dataset, alert_nm"},
        {"owl_check_repo", "dataset", "dataset"},
        {"job_schedule", "dataset", "dataset"},
        {"alert_output", "dataset", "dataset, alert_nm, run_id"},
    };
    cfg *c = p->c;

    for (size_t i = 0; i < ARRAY_LEN(defaults); i++) {
        cfg_table *t = grow(c->tables, c->ntables, sizeof(*t));
        if (t == NULL)
            return fail_oom(p);
        c->tables = t;
        t = &c->tables[c->ntables++];
        t->name = xstrdup(defaults[i].name);
        t->dataset_column = xstrdup(defaults[i].dataset_column);
        if (t->name == NULL || t->dataset_column == NULL || cfg_list_split(&t->generated, "id") < 0 ||
            cfg_list_split(&t->key, defaults[i].key) < 0)
            return fail_oom(p);
        t->mode = defaults[i].dataset_column[0] == '\0' ? CFG_MODE_UPSERT : CFG_MODE_REPLACE;
    }
    c->tables_defaulted = true;
    return 0;
}

static int key_index(sect_kind kind, const char *name)
{
    int idx = -1;

    find_key(kind, name, &idx);
    return idx;
}

/* Why name is not a table: "no [table NAME] section" or, when the built-in set is
 * in use, "not in the default table set". */
static const char *not_configured(const cfg *c, const char *name, char *buf, size_t size)
{
    if (c->tables_defaulted)
        return "not in the default table set";
    snprintf(buf, size, "no [table %s] section", name);
    return buf;
}

/* Every name of list must be a configured table. */
static int check_tables(parse_ctx *p, const sect_state *st, const char *key,
                        const cfg_list *list)
{
    int line = st->key_line[key_index(st->kind, key)];
    char why[128];

    for (size_t i = 0; i < list->n; i++) {
        if (cfg_find_table(p->c, list->v[i]) == NULL)
            return key_error(p, st, line, key, "\"%s\" is not a configured table (%s)",
                             list->v[i],
                             not_configured(p->c, list->v[i], why, sizeof(why)));
    }
    return 0;
}

static int finish_export(parse_ctx *p, const sect_state *st)
{
    cfg_export *e = &p->c->exports[st->index];
    static const char *const comp_names[] = {"zstd", "gzip", "none"};
    int lo = 1, hi = e->compression == CFG_COMP_GZIP ? 9 : 19;

    if (e->schedule != NULL) {
        int fields = 0;
        for (const char *s = e->schedule; *s != '\0';) {
            while (isspace((unsigned char)*s))
                s++;
            if (*s == '\0')
                break;
            fields++;
            while (*s != '\0' && !isspace((unsigned char)*s))
                s++;
        }
        if (fields != 5)
            return key_error(p, st, st->key_line[key_index(S_EXPORT, "schedule")],
                             "schedule",
                             "expected 5 fields (minute hour day month weekday), got %d",
                             fields);
    }
    if (e->compression == CFG_COMP_NONE) {
        e->compression_level = 0;
    } else if (st->level_text != NULL) {
        if (!int_in_range(st->level_text, lo, hi, &e->compression_level))
            return key_error(p, st,
                             st->key_line[key_index(S_EXPORT, "compression_level")],
                             "compression_level", "%s is out of range for %s (%d..%d)",
                             st->level_text, comp_names[e->compression], lo, hi);
    }
    return check_tables(p, st, "tables", &e->tables);
}

/* INBOX/leaf, without doubling a trailing slash. */
static char *under_inbox(const char *inbox, const char *leaf)
{
    size_t n = strlen(inbox), size;
    char *s;

    while (n > 1 && inbox[n - 1] == '/')
        n--;
    size = n + 1 + strlen(leaf) + 1;
    s = malloc(size);
    if (s != NULL)
        snprintf(s, size, "%.*s/%s", (int)n, inbox, leaf);
    return s;
}

static int finish_import(parse_ctx *p, const sect_state *st)
{
    cfg_import *im = &p->c->import;

    if (im->processed_dir != NULL && strcmp(im->processed_dir, "none") == 0) {
        free(im->processed_dir);
        im->processed_dir = NULL;
    } else if (im->processed_dir == NULL && im->inbox != NULL) {
        im->processed_dir = under_inbox(im->inbox, "processed");
        if (im->processed_dir == NULL)
            return fail_oom(p);
    }
    if (im->quarantine_dir == NULL && im->inbox != NULL) {
        im->quarantine_dir = under_inbox(im->inbox, "quarantine");
        if (im->quarantine_dir == NULL)
            return fail_oom(p);
    }
    if (im->require_encryption && im->decrypt_key.n == 0)
        return key_error(p, st, st->line, "require_encryption",
                         "is true, but no decrypt_key is set: no bundle could be imported\nHINT: owlsync keygen --encryption -o PATH, then decrypt_key = PATH");
    return check_tables(p, st, "tables", &im->tables);
}

static int finish_rewrite(parse_ctx *p, const sect_state *st)
{
    cfg_rewrite *r = &p->c->rewrites[st->index];
    int line = st->key_line[key_index(S_REWRITE, "columns")];

    for (size_t i = 0; i < r->columns.n; i++) {
        const char *spec = r->columns.v[i];
        const char *dot = strchr(spec, '.');
        char table[TEXT_NAME_MAX + 1];
        char why[128];

        if (dot == NULL || (size_t)(dot - spec) > TEXT_NAME_MAX)
            continue; /* checked when read */
        snprintf(table, sizeof(table), "%.*s", (int)(dot - spec), spec);
        if (strcmp(table, "*") != 0 && cfg_find_table(p->c, table) == NULL)
            return key_error(p, st, line, "columns",
                             "\"%s\": \"%s\" is not a configured table (%s)", spec, table,
                             not_configured(p->c, table, why, sizeof(why)));
    }
    if (r->match == CFG_MATCH_REGEX) {
        regex_t re;
        int rc = regcomp(&re, r->from, REG_EXTENDED);
        if (rc != 0) {
            char text[256];
            regerror(rc, &re, text, sizeof(text));
            return key_error(p, st, st->key_line[key_index(S_REWRITE, "from")], "from",
                             "invalid regex \"%s\": %s", r->from, text);
        }
        regfree(&re);
        if (text_ere_scan(r->from).backref)
            return key_error(p, st, st->key_line[key_index(S_REWRITE, "from")], "from",
                             "\"%s\" has a back-reference (\\1 to \\9), which POSIX extended "
                             "regexes do not have and whose matching time can grow exponentially",
                             r->from);
    }
    return 0;
}

static int finish(parse_ctx *p)
{
    const sect_state *owl = NULL;

    for (size_t i = 0; i < p->nsects; i++) {
        if (p->sects[i].kind == S_OWLSYNC)
            owl = &p->sects[i];
    }
    if (owl == NULL)
        return at_line(p, 0, "[owlsync] section is required (with environment = NAME)");
    if (p->c->ntables == 0 && add_default_tables(p) != 0)
        return -1;
    for (size_t i = 0; i < p->nsects; i++) {
        sect_state *st = &p->sects[i];

        for (int k = 0; k < NKEYS; k++) {
            const cfg_list *list;

            if (keys[k].sect != st->kind || !(keys[k].flags & F_REQUIRED))
                continue;
            if (st->key_line[k] == 0) {
                char title[CFG_MAX_LINE + 16];
                sect_title(p, st, title, sizeof(title));
                return at_line(p, st->line, "%s %s is required", title, keys[k].name);
            }
            list = (const cfg_list *)(void *)((char *)sect_base(p, st) + keys[k].off);
            if (is_list(keys[k].type) && list->n == 0)
                return key_error(p, st, st->key_line[k], keys[k].name,
                                 "must not be empty");
        }
        if (st->kind == S_TABLE) {
            cfg_table *t = &p->c->tables[st->index];
            if (st->key_line[key_index(S_TABLE, "mode")] == 0)
                t->mode = t->dataset_column[0] == '\0' ? CFG_MODE_UPSERT
                                                        : CFG_MODE_REPLACE;
        } else if (st->kind == S_EXPORT && finish_export(p, st) != 0) {
            return -1;
        } else if (st->kind == S_IMPORT && finish_import(p, st) != 0) {
            return -1;
        } else if (st->kind == S_REWRITE && finish_rewrite(p, st) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- entry points ----------------------------------------------------------- */

static cfg *cfg_new(const char *name)
{
    cfg *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->log_level = LOG_INFO;
    c->metrics_mode = CFG_DEFAULT_FILE_MODE;
    c->import.watch = CFG_WATCH_AUTO;
    c->import.poll_interval = 5;
    c->import.settle_time = 2;
    c->import.max_clock_skew = CFG_DEFAULT_MAX_CLOCK_SKEW;
    c->import.lock_timeout = CFG_DEFAULT_LOCK_TIMEOUT;
    c->import.max_bundle_size = CFG_DEFAULT_MAX_BUNDLE_SIZE;
    c->import.max_unpacked_size = CFG_DEFAULT_MAX_UNPACKED_SIZE;
    c->import.max_regex_value = CFG_DEFAULT_MAX_REGEX_VALUE;
    c->import.max_regex_time = CFG_DEFAULT_MAX_REGEX_TIME;
    c->import.max_json_values = CFG_DEFAULT_MAX_JSON_VALUES;
    c->path = xstrdup(name);
    c->state_dir = xstrdup("/var/lib/owlsync");
    c->conninfo = xstrdup("");
    c->schema = xstrdup("public");
    if (c->path == NULL || c->state_dir == NULL || c->conninfo == NULL ||
        c->schema == NULL) {
        cfg_free(c);
        return NULL;
    }
    return c;
}

/* Parses len bytes of text (no NUL terminator needed). */
static int load_buffer(const char *name, const char *text, size_t len, cfg **out,
                       owl_err *err)
{
    parse_ctx p;
    int rc, result = -1;

    *out = NULL;
    memset(&p, 0, sizeof(p));
    p.cur = -1;
    p.err = err;
    p.name = name;
    if (len > CFG_MAX_FILE) {
        err_set(err, OWL_EUSAGE, "%s: file too large (over %d bytes)", name,
                CFG_MAX_FILE);
        goto out;
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    p.text = text;
    p.len = len;
    p.c = cfg_new(name);
    if (p.c == NULL) {
        err_oom(err);
        goto out;
    }
    rc = ini_parse_stream(read_line, &p, on_key, &p);
    if (p.failed)
        goto out;
    if (rc > 0) {
        err_set(err, OWL_EUSAGE, "%s:%d: syntax error", name, rc);
        goto out;
    }
    if (rc < 0) {
        err_set(err, OWL_ERUNTIME, "%s: cannot parse (inih error %d)", name, rc);
        goto out;
    }
    if (finish(&p) != 0)
        goto out;
    *out = p.c;
    p.c = NULL;
    result = 0;
out:
    for (size_t i = 0; i < p.nsects; i++)
        free(p.sects[i].level_text);
    free(p.sects);
    cfg_free(p.c);
    return result;
}

int cfg_load_string(const char *name, const char *text, cfg **out, owl_err *err)
{
    return load_buffer(name, text, strlen(text), out, err);
}

/* ---- relative paths: against the config file's directory ------------------- */

/* Replaces *slot, a relative path, by dir/path; absolute, empty and NULL stay. */
static int resolve_one(char **slot, const char *dir, owl_err *err)
{
    size_t len;
    char *s;

    if (*slot == NULL || **slot == '\0' || **slot == '/')
        return 0;
    len = strlen(dir) + 1 + strlen(*slot);
    s = malloc(len + 1);
    if (s == NULL)
        return err_oom(err);
    snprintf(s, len + 1, "%s/%s", dir, *slot);
    free(*slot);
    *slot = s;
    return 0;
}

/* A key given as a file (not a token) is a path to resolve. */
static int resolve_key(char **slot, const char *dir, owl_err *err)
{
    if (strncmp(*slot, KEYS_TOKEN_PREFIX, sizeof(KEYS_TOKEN_PREFIX) - 1) == 0 ||
        strncmp(*slot, KEYS_BOX_TOKEN_PREFIX, sizeof(KEYS_BOX_TOKEN_PREFIX) - 1) == 0)
        return 0;
    return resolve_one(slot, dir, err);
}

static int resolve_list(cfg_list *l, const char *dir, owl_err *err)
{
    for (size_t i = 0; i < l->n; i++) {
        if (resolve_one(&l->v[i], dir, err) < 0)
            return -1;
    }
    return 0;
}

/* Every path of the config, when relative, is taken against the directory
 * of the file (made absolute), not the working directory. */
static int resolve_paths(cfg *c, const char *path, owl_err *err)
{
    char *copy = strdup(path), *slash, *dir = NULL;
    cfg_import *im = &c->import;
    int rc = -1;

    if (copy == NULL)
        return err_oom(err);
    slash = strrchr(copy, '/');
    if (slash == NULL)
        dir = realpath(".", NULL);
    else if (slash == copy)
        dir = strdup("/");
    else {
        *slash = '\0';
        dir = realpath(copy, NULL);
    }
    if (dir == NULL) {
        err_set(err, OWL_EUSAGE, "%s: cannot resolve its directory: %s", path, strerror(errno));
        goto out;
    }
    if (strcmp(dir, "/") == 0)
        dir[0] = '\0'; /* "/x", not "//x" */
    if (resolve_one(&c->state_dir, dir, err) < 0 || resolve_one(&c->metrics_file, dir, err) < 0 ||
        resolve_one(&im->inbox, dir, err) < 0 || resolve_one(&im->processed_dir, dir, err) < 0 ||
        resolve_one(&im->quarantine_dir, dir, err) < 0 || resolve_list(&im->decrypt_key, dir, err) < 0)
        goto out;
    for (size_t i = 0; i < im->ntrusted; i++) {
        if (resolve_key(&im->trusted[i].key, dir, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < c->nexports; i++) {
        cfg_export *ex = &c->exports[i];
        if (resolve_list(&ex->outbox, dir, err) < 0 || resolve_one(&ex->signing_key, dir, err) < 0)
            goto out;
        for (size_t k = 0; k < ex->nencrypt_to; k++) {
            if (resolve_key(&ex->encrypt_to[k].key, dir, err) < 0)
                goto out;
        }
    }
    rc = 0;
out:
    free(dir);
    free(copy);
    return rc;
}

int cfg_load(const char *path, cfg **out, owl_err *err)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0;
    int result = -1;

    *out = NULL;
    {
        /* O_NONBLOCK and a regular file only: a FIFO is refused, not waited on */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        struct stat st;
        if (fd < 0) {
            err_set(err, OWL_EUSAGE, "%s: cannot open: %s", path, strerror(errno));
            goto out;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (f = fdopen(fd, "rb")) == NULL) {
            close(fd);
            err_set(err, OWL_EUSAGE, "%s: not a regular file", path);
            goto out;
        }
    }
    buf = malloc((size_t)CFG_MAX_FILE + 1);
    if (buf == NULL) {
        err_oom(err);
        goto out;
    }
    len = fread(buf, 1, (size_t)CFG_MAX_FILE + 1, f);
    if (ferror(f)) {
        err_set(err, OWL_EUSAGE, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (len > CFG_MAX_FILE) {
        err_set(err, OWL_EUSAGE, "%s: file too large (over %d bytes)", path,
                CFG_MAX_FILE);
        goto out;
    }
    result = load_buffer(path, buf, len, out, err);
    if (result == 0 && resolve_paths(*out, path, err) < 0) {
        cfg_free(*out);
        *out = NULL;
        result = -1;
    }
out:
    free(buf);
    if (f != NULL)
        fclose(f);
    return result;
}

const char *config_lib_version(void)
{
#ifdef OWLSYNC_INIH_VERSION
    return OWLSYNC_INIH_VERSION;
#else
    return "unknown";
#endif
}
