/* owlsync COPY text format: split a row into fields, unescape a field to its value
 * and escape a value back, byte for byte as PostgreSQL's COPY ... TEXT does. */
#ifndef OWLSYNC_COPYTEXT_H
#define OWLSYNC_COPYTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/buf.h"
#include "owlsync/error.h"

/* The longest row owlsync carries, the exporter and the importer alike (the
 * rewrite rules hold a row in memory). */
#define COPYTEXT_MAX_ROW (64 * 1024 * 1024)

typedef struct copytext_field {
    const char *p; /* start of the field's raw (still escaped) text inside the row */
    size_t len;    /* its length in bytes */
} copytext_field;

/* Splits one row (its bytes without the trailing newline) at tab characters into
 * at most max fields. Sets *n to the count. Returns -1 (OWL_EVERIFY) when the row
 * has more than max fields. Fields point into row; nothing is copied. */
int copytext_split(const char *row, size_t len, copytext_field *fields, size_t max,
                   size_t *n, owl_err *err);

/* Whether a raw field is the NULL marker \N. */
bool copytext_is_null(const char *raw, size_t len);

/* Unescapes a raw (non-NULL) field into out, which must hold at least len bytes;
 * sets *outlen. Handles \b \f \n \r \t \v \\, octal \ooo (1-3 digits), hex \xhh
 * (1-2 digits) and a backslash before any other character (that character).
 * Returns -1 (OWL_EVERIFY) for a trailing lone backslash or an escape that
 * produces a NUL byte, which PostgreSQL text cannot hold. */
int copytext_unescape(const char *raw, size_t len, char *out, size_t *outlen, owl_err *err);

/* Escapes a value as COPY TO writes it (tab delimiter): backslash, and the control
 * characters \b \f \n \r \t \v become two-character escapes; every other byte is
 * written as it is. out must hold at least 2 * len bytes. Returns the length. */
size_t copytext_escape(const char *val, size_t len, char *out);

/* Rows out of a stream of COPY text that comes in chunks of any size: each
 * whole row (without its newline) goes to fn, with its number (from 1). A
 * newline after an odd run of backslashes is data, as COPY reads it. */
typedef int (*copytext_row_fn)(void *ctx, const char *row, size_t len, uint64_t rowno, owl_err *err);

typedef struct copytext_rows {
    owl_buf row;          /* a row begun in an earlier chunk */
    uint64_t rowno;       /* rows handed out so far */
    const char *what;     /* names the stream in messages ("data/owl_rule.tsv") */
} copytext_rows;

/* Starts a stream whose rows hold at most max bytes. */
void copytext_rows_init(copytext_rows *s, size_t max, const char *what);

/* Feeds len bytes. A row longer than max is an error (OWL_EUSAGE, "WHAT row
 * N is longer than MAX bytes"); an error of fn stops the feeding. */
int copytext_rows_feed(copytext_rows *s, const char *buf, size_t len, copytext_row_fn fn, void *ctx,
                       owl_err *err);

/* Ends the stream: a last row without its newline goes to fn. */
int copytext_rows_end(copytext_rows *s, copytext_row_fn fn, void *ctx, owl_err *err);

void copytext_rows_free(copytext_rows *s);

#endif
