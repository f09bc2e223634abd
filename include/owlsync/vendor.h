/* owlsync vendor payloads: the JSON list of INSERT statements the vendor's
 * Export API answers with, walked one string at a time over a bounded buffer,
 * and each statement read by the strict grammar of its dump() function. Pure:
 * nothing here runs, or pastes into SQL, what it reads. */
#ifndef OWLSYNC_VENDOR_H
#define OWLSYNC_VENDOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/buf.h"
#include "owlsync/error.h"
#include "owlsync/text.h"

#define VENDOR_MAX_COLUMNS 1600 /* PostgreSQL's own column limit */

/* ---- the JSON array ---- */

/* Receives each string of the array, decoded (UTF-8, no NUL byte), with its
 * index (from 0) and the payload offset of its opening quote. */
typedef int (*vendor_string_fn)(void *ctx, const char *s, size_t len, uint64_t index, uint64_t offset, owl_err *err);

typedef struct vendor_array {
    int state;       /* where the walker is: before '[', in the array, in a string, after ']' */
    bool escaped;    /* in a string: the last byte was an unpaired backslash */
    owl_buf elem;    /* the string being read, as JSON text, quotes included */
    uint64_t offset; /* payload bytes walked */
    uint64_t start;  /* offset of the current string's opening quote */
    uint64_t index;  /* strings handed out */
    uint64_t bom;    /* bytes of a UTF-8 byte order mark read before the list */
} vendor_array;

/* Starts a walk whose strings take at most max bytes as JSON text. */
void vendor_array_init(vendor_array *a, size_t max);

/* Walks len more bytes of the payload, handing each whole string to fn. The
 * payload must be one JSON array of strings, whitespace around (and a UTF-8
 * byte order mark before it, which is skipped): anything else
 * is OWL_EUSAGE naming the byte offset; an error of fn stops the walk. Each
 * string is decoded by jansson (escapes, \u surrogate pairs, UTF-8 checked).
 * Messages count bytes from 1. */
int vendor_array_feed(vendor_array *a, const char *buf, size_t len, vendor_string_fn fn, void *ctx, owl_err *err);

/* Ends the walk: the array must be closed (OWL_EUSAGE otherwise). */
int vendor_array_end(vendor_array *a, owl_err *err);

void vendor_array_free(vendor_array *a);

/* ---- one statement ---- */

typedef enum { VENDOR_NULL = 0, VENDOR_PLAIN, VENDOR_ESCAPED } vendor_value_kind;

/* A value as the statement writes it: NULL, '...' or E'...'. */
typedef struct vendor_value {
    vendor_value_kind kind;
    const char *p; /* the literal's text between its quotes, still doubled */
    size_t len;
} vendor_value;

typedef struct vendor_insert {
    char schema[TEXT_NAME_MAX + 1]; /* identifiers, as quote_ident undoes to */
    char table[TEXT_NAME_MAX + 1];
    char (*columns)[TEXT_NAME_MAX + 1]; /* ncolumns of them */
    vendor_value *values;               /* ncolumns of them, pointing into the statement */
    size_t ncolumns;
    size_t cap;
} vendor_insert;

/* Reads one statement of exactly the shape the vendor's dump() writes:
 *   INSERT INTO schema.table(col, ...) VALUES (value, ...);
 * identifiers as quote_ident writes them (lowercase [a-z_][a-z0-9_]* bare,
 * any other name in double quotes, "" for a quote), values as quote_literal
 * writes them ('...' with '' for a quote; E'...' with \\ for a backslash, when
 * the value holds one) or NULL; ", " or "," between items. Anything else, or
 * a value count other than the column count, is OWL_EUSAGE with *pos the
 * offending byte's offset (from 0; messages say *pos + 1). ins is reused across calls (its values
 * point into s); vendor_insert_free frees it. */
int vendor_parse(const char *s, size_t len, vendor_insert *ins, size_t *pos, owl_err *err);

void vendor_insert_free(vendor_insert *ins);

/* The value, with quote_literal's doubling undone, appended to out. */
int vendor_value_decode(const vendor_value *v, owl_buf *out);

/* The value as one field of a COPY text row (\N for NULL) appended to out. */
int vendor_value_copytext(const vendor_value *v, owl_buf *out);

#endif
