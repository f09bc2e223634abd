/* owlsync environment rewrites: the [rewrite NAME] rules of the target's config,
 * compiled once and applied in file order to the values of a bundle's rows. */
#ifndef OWLSYNC_REWRITE_H
#define OWLSYNC_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/config.h"
#include "owlsync/copytext.h"
#include "owlsync/error.h"
#include "owlsync/manifest.h"

#define REWRITE_MAX_ROW COPYTEXT_MAX_ROW /* bound on one row, escaped or not */

typedef struct rewrite_set rewrite_set;
typedef struct rewrite_table rewrite_table;

/* Compiles every [rewrite] section of c (regexes once), with the bounds of its
 * [import] section (max_regex_value, max_regex_time, max_json_values). *out is
 * owned by the caller (rewrite_set_free). A set with no rules is valid and
 * costs nothing. A set and its tables are used by one thread at a time (a
 * regex search keeps its groups in the rule). */
int rewrite_compile(const cfg *c, rewrite_set **out, owl_err *err);
void rewrite_set_free(rewrite_set *s);

size_t rewrite_rule_count(const rewrite_set *s);
const char *rewrite_rule_name(const rewrite_set *s, size_t rule);

/* The rules that apply to each column of one bundle table: TABLE.COLUMN,
 * TABLE.* (every text-like column: text, varchar, char, name, citext, json,
 * jsonb and their arrays) and *.COLUMN. *out is owned by the caller (rewrite_table_free). */
int rewrite_table_new(const rewrite_set *s, const manifest_table *mt, rewrite_table **out, owl_err *err);
void rewrite_table_free(rewrite_table *t);

/* Whether any rule applies to a column of this table. */
bool rewrite_table_active(const rewrite_table *t);

/* Whether rule applies to some column of this table. */
bool rewrite_table_covers(const rewrite_table *t, size_t rule);

/* Values rule changed in this table so far. */
uint64_t rewrite_table_changed(const rewrite_table *t, size_t rule);

/* Rewrites one COPY text row (without its newline). *out points into t's buffer,
 * valid until the next call. rowno (1-based) is for messages. A value of a json
 * or jsonb column that was valid JSON and is not after the rules is an error
 * (OWL_EUSAGE) naming the rule that broke it, the table, column and row; so is
 * a value past one of the set's bounds. Each rule's work on a value is bounded
 * (see rewrite_compile). */
int rewrite_row(rewrite_table *t, const char *row, size_t len, uint64_t rowno, const char **out, size_t *outlen,
                owl_err *err);

/* Rewrites one plain value of column col (e.g. a dataset name, to find the
 * target's rows of a dataset) without counting it. *out is malloc'd. */
int rewrite_value(rewrite_table *t, const char *col, const char *val, char **out, owl_err *err);

/* "[rewrite a], [rewrite b]": the rules that changed a value of t so far (for
 * a hint when the target refuses rewritten rows), or "" when none did. */
void rewrite_table_changed_names(const rewrite_table *t, char *out, size_t size);

/* The columns of one table a rule may name: the target's, and those a
 * bundle carries of it (names may repeat). */
typedef struct rewrite_columns {
    const char *table;
    const char *const *names;
    size_t n;
} rewrite_columns;

/* Binds every TABLE.COLUMN and *.COLUMN entry of c's [rewrite] rules to the
 * columns of tables (n of them): an entry naming no column (of its table, or
 * for *.COLUMN of any) is OWL_EUSAGE naming the rule and the entry, with the
 * nearest column as a hint when one is an obvious typo. With partial, tables
 * are not all the configured tables: an entry of a table not among them, or
 * *.COLUMN not found, is left undecided. Returns 0 when all are bound, 1 when
 * some are undecided, -1 on the first that binds to nothing. Pure. */
int rewrite_bind(const cfg *c, const rewrite_columns *tables, size_t n, bool partial, owl_err *err);

/* A table's rows rewritten as they stream: COPY text in chunks of any size
 * (rows split anywhere), whole rewritten rows out to sink in batches of at
 * least REWRITE_BATCH bytes (the last one smaller). Row numbers in messages
 * count from the stream's start; what names it ("data/owl_rule.tsv"). */
#define REWRITE_BATCH (256 * 1024)
typedef int (*rewrite_sink_fn)(void *ctx, const char *buf, size_t len, owl_err *err);
typedef struct rewrite_stream rewrite_stream;

int rewrite_stream_new(rewrite_table *t, const char *what, rewrite_sink_fn sink, void *ctx, rewrite_stream **out,
                       owl_err *err);
int rewrite_stream_feed(rewrite_stream *s, const char *buf, size_t len, owl_err *err);
/* Rewrites a last row without its newline and hands out the last batch. */
int rewrite_stream_end(rewrite_stream *s, owl_err *err);
void rewrite_stream_free(rewrite_stream *s);

#endif
