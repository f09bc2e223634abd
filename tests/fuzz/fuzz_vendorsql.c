/* Fuzz harness of agent/vendor.c: the input is read twice, as one statement
 * and as a payload (the JSON list of statements) walked in one piece and in
 * chunks of a size the input picks, each string it yields parsed as a
 * statement. Properties: a statement that parses has as many values as
 * columns; each value, quoted again as quote_literal quotes it, is the text it
 * was read from (less an E with no backslash to need it), and its COPY field
 * unescapes to the value; both walks of a payload yield the same strings and
 * the same outcome. */
#include "fuzz.h"
#include "owlsync/copytext.h"
#include "owlsync/vendor.h"

#define MAX_STRINGS 256

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

/* quote_literal's text of value (between the quotes): ' and \ doubled. */
static void requote(const char *v, size_t len, owl_buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if ((v[i] == '\'' || v[i] == '\\') && buf_add(out, &v[i], 1) < 0)
            fuzz_setup_failed("requote", "out of memory");
        if (buf_add(out, &v[i], 1) < 0)
            fuzz_setup_failed("requote", "out of memory");
    }
}

static void check_value(const vendor_value *v, size_t k)
{
    owl_buf dec = OWL_BUF_INIT(SIZE_MAX / 4), again = OWL_BUF_INIT(SIZE_MAX / 4), field = OWL_BUF_INIT(SIZE_MAX / 4);
    owl_err err;
    char *un;
    size_t unlen;

    if (vendor_value_decode(v, &dec) < 0 || vendor_value_copytext(v, &field) < 0)
        fuzz_setup_failed("value", "out of memory");
    if (v->kind == VENDOR_NULL) {
        if (dec.len != 0 || !copytext_is_null(field.p, field.len))
            fuzz_fail("value %zu: NULL decodes to %zu bytes, or its field is not \\N", k, dec.len);
        goto out;
    }
    if (memchr(dec.p != NULL ? dec.p : "", '\0', dec.len) != NULL)
        fuzz_fail("value %zu decodes to a NUL byte", k);
    if (v->kind == VENDOR_PLAIN && dec.len > 0 && memchr(dec.p, '\\', dec.len) != NULL)
        fuzz_fail("value %zu: a '...' value decodes to a backslash", k);
    requote(dec.p != NULL ? dec.p : "", dec.len, &again);
    if (again.len != v->len || (v->len > 0 && memcmp(again.p, v->p, v->len) != 0))
        fuzz_fail("value %zu: quoted again it is %zu bytes, read from %zu", k, again.len, v->len);
    if (field.len > 0 && (memchr(field.p, '\t', field.len) != NULL || memchr(field.p, '\n', field.len) != NULL))
        fuzz_fail("value %zu: its COPY field holds a tab or newline", k);
    un = malloc(field.len + 1);
    if (un == NULL)
        fuzz_setup_failed("value", "out of memory");
    err_clear(&err);
    if (copytext_unescape(field.p != NULL ? field.p : "", field.len, un, &unlen, &err) < 0)
        fuzz_fail("value %zu: its COPY field does not unescape: %s", k, err.msg);
    if (unlen != dec.len || (unlen > 0 && memcmp(un, dec.p, unlen) != 0))
        fuzz_fail("value %zu: its COPY field unescapes to other bytes", k);
    free(un);
out:
    buf_free(&dec);
    buf_free(&again);
    buf_free(&field);
}

static void check_statement(const char *s, size_t len)
{
    vendor_insert ins;
    owl_err err;
    size_t pos = 0;

    memset(&ins, 0, sizeof(ins));
    err_clear(&err);
    if (vendor_parse(s, len, &ins, &pos, &err) == 0) {
        if (ins.ncolumns == 0 || ins.schema[0] == '\0' || ins.table[0] == '\0')
            fuzz_fail("a statement parsed without a schema, table or column");
        for (size_t k = 0; k < ins.ncolumns; k++) {
            if (ins.columns[k][0] == '\0' || strlen(ins.columns[k]) > TEXT_NAME_MAX)
                fuzz_fail("column %zu has no name, or a name too long", k);
            check_value(&ins.values[k], k);
        }
    } else {
        if (err.code != OWL_EUSAGE || pos > len)
            fuzz_fail("refused with code %d at byte %zu of %zu: %s", err.code, pos, len, err.msg);
        fuzz_note("refused at byte %zu: %s", pos + 1, err.msg);
    }
    vendor_insert_free(&ins);
}

/* The strings of one walk. */
typedef struct walked {
    size_t n;
    uint64_t hash;
} walked;

static int on_string(void *ctx, const char *s, size_t len, uint64_t index, uint64_t offset, owl_err *err)
{
    walked *w = ctx;

    if (index != w->n)
        fuzz_fail("string %llu comes as number %zu", (unsigned long long)index, w->n);
    w->n++;
    w->hash = w->hash * 1099511628211ULL ^ len;
    for (size_t i = 0; i < len; i++)
        w->hash = (w->hash ^ (unsigned char)s[i]) * 1099511628211ULL;
    if (w->n <= MAX_STRINGS)
        check_statement(s, len);
    return 0;
}

static int walk(const uint8_t *data, size_t size, size_t chunk, walked *w, owl_err *err)
{
    vendor_array a;
    int rc = 0;

    memset(w, 0, sizeof(*w));
    err_clear(err);
    vendor_array_init(&a, 1 << 20);
    for (size_t off = 0; rc == 0 && off < size;) {
        size_t k = chunk == 0 || chunk > size - off ? size - off : chunk;
        rc = vendor_array_feed(&a, (const char *)data + off, k, on_string, w, err);
        off += k;
    }
    if (rc == 0)
        rc = vendor_array_end(&a, err);
    vendor_array_free(&a);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    walked one, two;
    owl_err e1, e2;
    int r1, r2;

    check_statement((const char *)data, size);
    r1 = walk(data, size, 0, &one, &e1);
    r2 = walk(data, size, size > 0 ? (size_t)data[size - 1] % 17 + 1 : 1, &two, &e2);
    if (r1 != r2 || one.n != two.n || one.hash != two.hash)
        fuzz_fail("walked whole and in chunks, the payload gives %d/%zu and %d/%zu", r1, one.n, r2, two.n);
    if (r1 < 0 && (e1.code != OWL_EUSAGE || strcmp(e1.msg, e2.msg) != 0))
        fuzz_fail("walked whole and in chunks, the payload is refused differently: %s / %s", e1.msg, e2.msg);
    return 0;
}
