/* owlsync vendor payloads: walks the JSON list of the vendor's Export API one
 * string at a time (jansson decodes each), and reads each INSERT statement by
 * the grammar of exactly what the vendor's dump() writes. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "owlsync/copytext.h"
#include "owlsync/vendor.h"

/* ---------------------------------------------------------------- the JSON array */

enum { ST_BEFORE = 0, ST_FIRST, ST_ELEM, ST_NEXT, ST_STRING, ST_AFTER };

void vendor_array_init(vendor_array *a, size_t max)
{
    memset(a, 0, sizeof(*a));
    a->elem = (owl_buf)OWL_BUF_INIT(max);
}

void vendor_array_free(vendor_array *a)
{
    buf_free(&a->elem);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The string just read, decoded by jansson and handed to fn. */
static int hand_out(vendor_array *a, vendor_string_fn fn, void *ctx, owl_err *err)
{
    json_error_t jerr;
    json_t *j = json_loadb(a->elem.p, a->elem.len, JSON_DECODE_ANY, &jerr);
    int rc;

    if (j == NULL || !json_is_string(j)) {
        json_decref(j);
        return err_set(err, OWL_EUSAGE, "payload item %llu (byte %llu) is not a valid JSON string: %s",
                       (unsigned long long)a->index + 1, (unsigned long long)a->start + 1,
                       j == NULL ? jerr.text : "not a string");
    }
    rc = fn(ctx, json_string_value(j), json_string_length(j), a->index, a->start, err);
    json_decref(j);
    a->index++;
    buf_clear(&a->elem);
    return rc;
}

static int walk_error(const vendor_array *a, const char *what, owl_err *err)
{
    return err_set(err, OWL_EUSAGE,
                   "payload byte %llu: %s\nHINT: a payload is the vendor's JSON list of INSERT statements",
                   (unsigned long long)a->offset + 1, what);
}

/* Reads string bytes from buf[*i] on, up to its closing quote or the end of buf. */
static int in_string(vendor_array *a, const char *buf, size_t len, size_t *i, bool *closed, owl_err *err)
{
    size_t at = *i;

    *closed = false;
    while (at < len) {
        char c = buf[at++];
        if (a->escaped)
            a->escaped = false;
        else if (c == '\\')
            a->escaped = true;
        else if (c == '"') {
            *closed = true;
            break;
        }
    }
    if (buf_add(&a->elem, buf + *i, at - *i) < 0) {
        if (buf_full(&a->elem, at - *i))
            return err_set(err, OWL_EUSAGE, "payload item %llu (byte %llu) is longer than %zu bytes",
                           (unsigned long long)a->index + 1, (unsigned long long)a->start + 1, a->elem.max);
        return err_oom(err);
    }
    a->offset += at - *i;
    *i = at;
    return 0;
}

int vendor_array_feed(vendor_array *a, const char *buf, size_t len, vendor_string_fn fn, void *ctx, owl_err *err)
{
    size_t i = 0;

    while (i < len) {
        char c = buf[i];
        if (a->state == ST_STRING) {
            bool closed;
            if (in_string(a, buf, len, &i, &closed, err) < 0)
                return -1;
            if (closed) {
                a->state = ST_NEXT;
                if (hand_out(a, fn, ctx, err) < 0)
                    return -1;
            }
            continue;
        }
        if (!is_ws(c)) {
            switch (a->state) {
            case ST_BEFORE:
                if (a->offset < 3 && c == "\xef\xbb\xbf"[a->offset] && a->bom == a->offset) {
                    a->bom++; /* a UTF-8 byte order mark, as some editors save */
                    break;
                }
                if (a->bom > 0 && a->bom < 3)
                    return walk_error(a, "a byte order mark cut short", err);
                if (c != '[')
                    return walk_error(a, "expected '[' (a JSON list)", err);
                a->state = ST_FIRST;
                break;
            case ST_FIRST:
            case ST_ELEM:
                if (c == ']' && a->state == ST_FIRST) {
                    a->state = ST_AFTER;
                    break;
                }
                if (c != '"')
                    return walk_error(a, "expected a string (an INSERT statement)", err);
                if (buf_add(&a->elem, "\"", 1) < 0)
                    return err_oom(err);
                a->state = ST_STRING;
                a->escaped = false;
                a->start = a->offset;
                break;
            case ST_NEXT:
                if (c == ',')
                    a->state = ST_ELEM;
                else if (c == ']')
                    a->state = ST_AFTER;
                else
                    return walk_error(a, "expected ',' or ']'", err);
                break;
            default:
                return walk_error(a, "text after the end of the list", err);
            }
        }
        a->offset++;
        i++;
    }
    return 0;
}

int vendor_array_end(vendor_array *a, owl_err *err)
{
    if (a->state != ST_AFTER)
        return walk_error(
            a, a->state == ST_BEFORE ? "no JSON list (the payload is empty)" : "the payload ends inside its list", err);
    return 0;
}

/* ---------------------------------------------------------------- one statement */

typedef struct parser {
    const char *s;
    size_t len, i;
    size_t *pos;
    owl_err *err;
} parser;

static int fail_at(parser *p, size_t at, const char *what)
{
    *p->pos = at;
    return err_set(p->err, OWL_EUSAGE, "%s", what);
}

static bool take(parser *p, const char *lit)
{
    size_t n = strlen(lit);

    if (p->len - p->i < n || memcmp(p->s + p->i, lit, n) != 0)
        return false;
    p->i += n;
    return true;
}

/* A list separator: "," or ", ". */
static bool take_sep(parser *p)
{
    if (!take(p, ","))
        return false;
    take(p, " ");
    return true;
}

static bool bare_first(char c)
{
    return (c >= 'a' && c <= 'z') || c == '_';
}

static bool bare_next(char c)
{
    return bare_first(c) || (c >= '0' && c <= '9');
}

/* An identifier as quote_ident writes it, into out. */
static int ident(parser *p, char out[TEXT_NAME_MAX + 1], const char *what)
{
    size_t start = p->i, n = 0;
    char msg[96];

    if (p->i < p->len && p->s[p->i] == '"') {
        p->i++;
        for (;;) {
            char c;
            if (p->i >= p->len)
                return fail_at(p, start, "a quoted identifier without its closing quote");
            c = p->s[p->i];
            if (c == '\0')
                return fail_at(p, p->i, "a NUL byte in an identifier");
            if (c == '"') {
                if (p->i + 1 < p->len && p->s[p->i + 1] == '"')
                    p->i++;
                else
                    break;
            }
            if (n == TEXT_NAME_MAX)
                return fail_at(p, start, "an identifier longer than 63 bytes");
            out[n++] = c;
            p->i++;
        }
        p->i++;
        if (n == 0)
            return fail_at(p, start, "an empty quoted identifier");
    } else {
        if (p->i >= p->len || !bare_first(p->s[p->i])) {
            snprintf(msg, sizeof(msg), "expected %s (an identifier)", what);
            return fail_at(p, p->i, msg);
        }
        while (p->i < p->len && bare_next(p->s[p->i])) {
            if (n == TEXT_NAME_MAX)
                return fail_at(p, start, "an identifier longer than 63 bytes");
            out[n++] = p->s[p->i++];
        }
    }
    out[n] = '\0';
    return 0;
}

/* A value as quote_literal writes it, or NULL. */
static int value(parser *p, vendor_value *v)
{
    size_t start = p->i;

    memset(v, 0, sizeof(*v));
    if (take(p, "NULL")) {
        v->kind = VENDOR_NULL;
        return 0;
    }
    if (take(p, "E'"))
        v->kind = VENDOR_ESCAPED;
    else if (take(p, "'"))
        v->kind = VENDOR_PLAIN;
    else
        return fail_at(p, p->i, "expected a quoted value or NULL");
    v->p = p->s + p->i;
    for (;;) {
        char c;
        if (p->i >= p->len)
            return fail_at(p, start, "a value without its closing quote");
        c = p->s[p->i];
        if (c == '\0')
            return fail_at(p, p->i, "a NUL byte in a value");
        if (c == '\'') {
            if (p->i + 1 < p->len && p->s[p->i + 1] == '\'') {
                p->i += 2;
                continue;
            }
            break;
        }
        if (c == '\\') {
            if (v->kind == VENDOR_PLAIN)
                return fail_at(p, p->i, "a backslash in a '...' value (quote_literal writes E'...' for those)");
            if (p->i + 1 >= p->len || p->s[p->i + 1] != '\\')
                return fail_at(p, p->i, "a backslash not doubled in an E'...' value");
            p->i += 2;
            continue;
        }
        p->i++;
    }
    v->len = (size_t)(p->s + p->i - v->p);
    p->i++;
    return 0;
}

static int grow(vendor_insert *ins, owl_err *err)
{
    size_t cap = ins->cap ? 2 * ins->cap : 32;
    void *c, *v;

    if (cap > VENDOR_MAX_COLUMNS)
        cap = VENDOR_MAX_COLUMNS;
    c = realloc(ins->columns, cap * sizeof(*ins->columns));
    if (c == NULL)
        return err_oom(err);
    ins->columns = c;
    v = realloc(ins->values, cap * sizeof(*ins->values));
    if (v == NULL)
        return err_oom(err);
    ins->values = v;
    ins->cap = cap;
    return 0;
}

int vendor_parse(const char *s, size_t len, vendor_insert *ins, size_t *pos, owl_err *err)
{
    parser p = {s, len, 0, pos, err};
    size_t nvalues = 0;
    char msg[128];

    *pos = 0;
    ins->ncolumns = 0;
    if (!take(&p, "INSERT INTO "))
        return fail_at(&p, 0, "not an INSERT statement of the vendor's dump() (expected \"INSERT INTO \")");
    if (ident(&p, ins->schema, "the schema") < 0)
        return -1;
    if (!take(&p, "."))
        return fail_at(&p, p.i, "expected '.' after the schema");
    if (ident(&p, ins->table, "the table") < 0)
        return -1;
    if (!take(&p, "("))
        return fail_at(&p, p.i, "expected '(' and the column list after the table");
    do {
        if (ins->ncolumns == ins->cap) {
            if (ins->cap == VENDOR_MAX_COLUMNS)
                return fail_at(&p, p.i, "more than 1600 columns");
            if (grow(ins, err) < 0)
                return -1;
        }
        if (ident(&p, ins->columns[ins->ncolumns], "a column") < 0)
            return -1;
        ins->ncolumns++;
    } while (take_sep(&p));
    if (!take(&p, ") VALUES ("))
        return fail_at(&p, p.i, "expected ',' or \") VALUES (\"");
    do {
        size_t at = p.i;
        if (nvalues == ins->ncolumns) {
            snprintf(msg, sizeof(msg), "more values than the %zu columns", ins->ncolumns);
            return fail_at(&p, at, msg);
        }
        if (value(&p, &ins->values[nvalues]) < 0)
            return -1;
        nvalues++;
    } while (take_sep(&p));
    if (p.i < p.len && p.s[p.i] == ')' && nvalues < ins->ncolumns) {
        snprintf(msg, sizeof(msg), "%zu values for %zu columns", nvalues, ins->ncolumns);
        return fail_at(&p, p.i, msg);
    }
    if (!take(&p, ");"))
        return fail_at(&p, p.i, "expected ',' or \");\"");
    if (p.i != p.len)
        return fail_at(&p, p.i, "text after the statement's end");
    return 0;
}

void vendor_insert_free(vendor_insert *ins)
{
    free(ins->columns);
    free(ins->values);
    memset(ins, 0, sizeof(*ins));
}

/* ---------------------------------------------------------------- values */

/* Walks v's text with quote_literal's doubling undone: each run of bytes as
 * they are goes to fn. */
typedef int (*run_fn)(owl_buf *out, const char *p, size_t n);

static int undouble(const vendor_value *v, owl_buf *out, run_fn fn)
{
    size_t start = 0;

    for (size_t i = 0; i < v->len; i++) {
        char c = v->p[i];
        if (c == '\'' || (c == '\\' && v->kind == VENDOR_ESCAPED)) {
            /* the first of a pair (vendor_parse checked it is one) stands for it */
            if (fn(out, v->p + start, i + 1 - start) < 0)
                return -1;
            i++;
            start = i + 1;
        }
    }
    return fn(out, v->p + start, v->len - start);
}

static int add_plain(owl_buf *out, const char *p, size_t n)
{
    return buf_add(out, p, n);
}

/* Escapes n bytes of p onto out, a piece at a time, each taking the room its
 * escaped form needs: a value fits when its escaped form does. */
static int add_escaped(owl_buf *out, const char *p, size_t n)
{
    while (n > 0) {
        size_t k = n < 65536 ? n : 65536, need = k;
        for (size_t i = 0; i < k; i++) {
            unsigned char c = (unsigned char)p[i];
            need += c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t' || c == '\v';
        }
        if (buf_reserve(out, need) < 0)
            return -1;
        out->len += copytext_escape(p, k, out->p + out->len);
        out->p[out->len] = '\0';
        p += k;
        n -= k;
    }
    return 0;
}

int vendor_value_decode(const vendor_value *v, owl_buf *out)
{
    return v->kind == VENDOR_NULL ? 0 : undouble(v, out, add_plain);
}

int vendor_value_copytext(const vendor_value *v, owl_buf *out)
{
    return v->kind == VENDOR_NULL ? buf_add(out, "\\N", 2) : undouble(v, out, add_escaped);
}
