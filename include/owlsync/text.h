/* owlsync text rules: the shapes of names (config and manifest agree on them),
 * one cleaner for untrusted text bound for a terminal, a log or a file, and one
 * UTC time formatter. Pure: no I/O, no allocation. */
#ifndef OWLSYNC_TEXT_H
#define OWLSYNC_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TEXT_NAME_MAX 63 /* longest identifier or name, as in PostgreSQL */

#define TEXT_IDENT_RULE "a letter or _, then up to 62 letters, digits or _"
#define TEXT_NAME_RULE "1 to 63 letters, digits, _ or -"

/* Table, schema and column names: [A-Za-z_][A-Za-z0-9_]{0,62}. */
bool text_is_ident(const char *s);

/* Environment and job names, which go into file names: [A-Za-z0-9_-]{1,63}. */
bool text_is_name(const char *s);

/* Copies at most max bytes of untrusted text s into out (outsz bytes, at least
 * 8) as one line a terminal shows as it is: a backslash, control characters
 * (C0, DEL and the C1 range) and bytes that are not UTF-8 become escapes (\\,
 * \n, \r, \t, \xNN); valid UTF-8 passes. When s is longer than max or out is
 * full, the copy ends in "...". Returns out. */
const char *text_clean(const char *s, size_t max, char *out, size_t outsz);

typedef enum {
    TEXT_UTC_SECONDS, /* 2026-11-25T12:00:00Z */
    TEXT_UTC_MICROS,  /* 2026-11-25T12:00:00.123456Z (the manifest's times) */
    TEXT_UTC_COMPACT  /* 20261125T120000Z (bundle file names) */
} text_utc_style;

#define TEXT_UTC_MAX 40 /* room for any of the styles, any year */

/* Formats usec microseconds since the epoch, in UTC, into out (at least
 * TEXT_UTC_MAX bytes); years are written with four digits. Returns out. */
const char *text_utc(int64_t usec, text_utc_style style, char *out, size_t outsz);

/* Whether s matches pattern as PostgreSQL's LIKE does with a deterministic
 * collation: '%' any run of characters, '_' one character (of UTF-8), '\'
 * takes the next character as it is; anything else matches itself. */
bool text_like(const char *s, const char *pattern);

/* How glibc's regcomp reads a POSIX extended regex, as far as [rewrite] rules
 * need to know: whether it holds a back-reference (\1 to \9 outside a bracket
 * expression, a GNU extension whose matching time can grow exponentially with
 * the text), and whether its parentheses pair up (glibc takes an unmatched ")"
 * as an ordinary character). */
typedef struct text_ere {
    bool backref;
    bool balanced;
} text_ere;

text_ere text_ere_scan(const char *re);

#define TEXT_COUNT_MAX 28 /* room for any uint64_t with separators */

/* Writes n in decimal with a comma between groups of three digits ("29,990")
 * into out (outsz bytes, TEXT_COUNT_MAX for any n), as counts are shown to a
 * person. Returns out. */
const char *text_count(uint64_t n, char *out, size_t outsz);

/* The wall clock in microseconds since the epoch. */
int64_t text_now_usec(void);

#endif
