/* Fuzz harness of agent/copytext.c: the input is COPY text, as a bundle's
 * data/TABLE.tsv holds it. It is cut into rows by copytext_rows_feed, in one
 * piece and again in chunks of a size the input picks (the rows must come out
 * the same), and every row is split into fields and each field unescaped.
 * Properties: a value unescapes from its escaped form to itself, the escaped
 * form holds no tab, newline or carriage return, escaped values joined by tabs
 * split back into as many fields, and a field is NULL only when it is \N. */
#include "fuzz.h"
#include "owlsync/copytext.h"

#define MAX_FIELDS 64
#define MAX_ROWS 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

/* The rows of one pass: where each starts in a copy of its bytes. */
typedef struct rows {
    size_t n;
    uint64_t last_no;
    char *bytes[MAX_ROWS];
    size_t len[MAX_ROWS];
} rows;

static int collect(void *ctx, const char *row, size_t len, uint64_t rowno, owl_err *err)
{
    rows *r = ctx;

    if (rowno != r->last_no + 1)
        fuzz_fail("row %llu follows row %llu", (unsigned long long)rowno, (unsigned long long)r->last_no);
    r->last_no = rowno;
    if (r->n == MAX_ROWS)
        return 0;
    r->bytes[r->n] = malloc(len + 1);
    if (r->bytes[r->n] == NULL)
        return err_oom(err);
    memcpy(r->bytes[r->n], row, len);
    r->len[r->n] = len;
    r->n++;
    return 0;
}

static void rows_free(rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->bytes[i]);
}

/* Feeds buf in pieces of chunk bytes (0: all at once). */
static int feed(const uint8_t *buf, size_t len, size_t chunk, size_t max, rows *out, owl_err *err)
{
    copytext_rows s;
    int rc = 0;

    copytext_rows_init(&s, max, "data/fuzz.tsv");
    for (size_t off = 0; rc == 0 && off < len;) {
        size_t k = chunk == 0 || chunk > len - off ? len - off : chunk;
        rc = copytext_rows_feed(&s, (const char *)buf + off, k, collect, out, err);
        off += k;
    }
    if (rc == 0)
        rc = copytext_rows_end(&s, collect, out, err);
    copytext_rows_free(&s);
    return rc;
}

/* One field: unescaped, escaped again, unescaped again to the same value. */
static void check_field(const char *raw, size_t len, char *val, char *esc, char *back)
{
    size_t vlen, elen, blen;
    owl_err err;

    if (copytext_is_null(raw, len) != (len == 2 && memcmp(raw, "\\N", 2) == 0))
        fuzz_fail("copytext_is_null is wrong on a field of %zu bytes", len);
    if (copytext_is_null(raw, len))
        return;
    err_clear(&err);
    if (copytext_unescape(raw, len, val, &vlen, &err) < 0) {
        if (err.code != OWL_EVERIFY)
            fuzz_fail("copytext_unescape failed with code %d", err.code);
        return;
    }
    if (vlen > len)
        fuzz_fail("a field of %zu bytes unescapes to %zu", len, vlen);
    if (memchr(val, '\0', vlen) != NULL)
        fuzz_fail("an unescaped value holds a NUL byte");
    elen = copytext_escape(val, vlen, esc);
    if (elen > 2 * vlen || memchr(esc, '\t', elen) != NULL || memchr(esc, '\n', elen) != NULL ||
        memchr(esc, '\r', elen) != NULL)
        fuzz_fail("an escaped value of %zu bytes is %zu bytes, or holds a tab, newline or CR", vlen, elen);
    if (copytext_unescape(esc, elen, back, &blen, &err) < 0)
        fuzz_fail("an escaped value does not unescape: %s", err.msg);
    if (blen != vlen || memcmp(back, val, vlen) != 0)
        fuzz_fail("a value of %zu bytes does not survive escape and unescape", vlen);
}

/* Splits a row, checks each field, and joins the escaped values again: the
 * join splits into as many fields. */
static void check_row(const char *row, size_t len)
{
    copytext_field f[MAX_FIELDS], f2[MAX_FIELDS];
    size_t n = 0, n2 = 0, jlen = 0;
    char *val = malloc(len + 1), *esc = malloc(2 * len + 1), *back = malloc(2 * len + 1);
    char *join = malloc(2 * len + MAX_FIELDS + 1);
    owl_err err;

    if (val == NULL || esc == NULL || back == NULL || join == NULL)
        fuzz_setup_failed("malloc", "out of memory");
    err_clear(&err);
    if (copytext_split(row, len, f, MAX_FIELDS, &n, &err) < 0)
        goto out;
    if (n == 0 || n > MAX_FIELDS)
        fuzz_fail("a row splits into %zu fields", n);
    for (size_t i = 0; i < n; i++) {
        size_t vlen;
        if (f[i].p < row || f[i].p + f[i].len > row + len)
            fuzz_fail("field %zu lies outside its row", i);
        check_field(f[i].p, f[i].len, val, esc, back);
        if (i > 0)
            join[jlen++] = '\t';
        if (copytext_is_null(f[i].p, f[i].len)) {
            memcpy(join + jlen, "\\N", 2);
            jlen += 2;
        } else if (copytext_unescape(f[i].p, f[i].len, val, &vlen, &err) == 0) {
            jlen += copytext_escape(val, vlen, join + jlen);
        } else {
            goto out; /* a row whose value PostgreSQL would refuse */
        }
    }
    if (copytext_split(join, jlen, f2, MAX_FIELDS, &n2, &err) < 0 || n2 != n)
        fuzz_fail("a row of %zu fields, escaped again, splits into %zu", n, n2);
out:
    free(val);
    free(esc);
    free(back);
    free(join);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rows whole, chunked;
    size_t chunk = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
    size_t max = size > 1 && data[1] % 2 == 0 ? 64 : 1 << 20;
    owl_err err1, err2;
    int rc1, rc2;

    memset(&whole, 0, sizeof(whole));
    memset(&chunked, 0, sizeof(chunked));
    err_clear(&err1);
    err_clear(&err2);
    rc1 = feed(data, size, 0, max, &whole, &err1);
    rc2 = feed(data, size, chunk, max, &chunked, &err2);
    if (rc1 != rc2)
        fuzz_fail("fed whole the rows %s, in chunks of %zu they %s", rc1 == 0 ? "pass" : err1.msg, chunk,
                  rc2 == 0 ? "pass" : err2.msg);
    if (whole.n != chunked.n)
        fuzz_fail("%zu rows fed whole, %zu in chunks of %zu", whole.n, chunked.n, chunk);
    for (size_t i = 0; i < whole.n; i++) {
        if (whole.len[i] != chunked.len[i] || memcmp(whole.bytes[i], chunked.bytes[i], whole.len[i]) != 0)
            fuzz_fail("row %zu differs fed whole and in chunks of %zu", i + 1, chunk);
        if (whole.len[i] > max)
            fuzz_fail("row %zu is %zu bytes, over the bound of %zu", i + 1, whole.len[i], max);
        check_row(whole.bytes[i], whole.len[i]);
    }
    rows_free(&whole);
    rows_free(&chunked);
    return 0;
}
