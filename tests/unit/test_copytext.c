/* Unit tests for agent/copytext.c: row splitting, NULL marker, unescape and escape,
 * checked against bytes captured from a real PostgreSQL 15 server. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "owlsync/copytext.h"
#include "unit.h"

#define MAXF 16

/* Splits a NUL-terminated row; returns the split result. */
static int split(const char *row, copytext_field *f, size_t max, size_t *n, owl_err *err)
{
    err_clear(err);
    return copytext_split(row, strlen(row), f, max, n, err);
}

/* Whether field f holds exactly the bytes of s. */
static int field_is(const copytext_field *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

/* Unescapes raw[0..len) into a heap buffer of exactly len bytes (so ASan sees any
 * overrun); returns the buffer, NUL-terminated copy in *val, or NULL on error. */
static char *unesc_n(const char *raw, size_t len, size_t *outlen, owl_err *err)
{
    char *out = malloc(len > 0 ? len : 1);
    char *val;

    err_clear(err);
    if (out == NULL || copytext_unescape(raw, len, out, outlen, err) != 0) {
        free(out);
        return NULL;
    }
    val = malloc(*outlen + 1);
    if (val != NULL) {
        memcpy(val, out, *outlen);
        val[*outlen] = '\0';
    }
    free(out);
    return val;
}

/* Unescapes a NUL-terminated raw field and compares with the expected value of
 * explen bytes; expect == NULL means an error is expected. */
static int unesc_is(const char *raw, const char *expect, size_t explen)
{
    owl_err err;
    size_t outlen = 0;
    char *val = unesc_n(raw, strlen(raw), &outlen, &err);
    int ok;

    if (expect == NULL) {
        ok = val == NULL && err.code == OWL_EVERIFY;
    } else {
        ok = val != NULL && outlen == explen && memcmp(val, expect, explen) == 0;
        if (!ok)
            printf("#   unescape \"%s\": %s\n", raw, val == NULL ? err.msg : "wrong bytes");
    }
    free(val);
    return ok;
}

/* Whether the raw field unescapes to the NUL-terminated value v. */
static int unesc_is_n(const char *raw, size_t len, const char *v)
{
    owl_err err;
    size_t outlen = 0;
    char *val = unesc_n(raw, len, &outlen, &err);
    int ok = val != NULL && outlen == strlen(v) && memcmp(val, v, outlen) == 0;

    free(val);
    return ok;
}

#define UNESC(raw, expect) CHECK(unesc_is((raw), (expect), sizeof(expect) - 1))
#define UNESC_FAILS(raw) CHECK(unesc_is((raw), NULL, 0))

/* Escapes val[0..len) into a heap buffer of exactly 2 * len bytes; returns a
 * NUL-terminated copy (caller frees) and its length in *outlen. */
static char *esc_n(const char *val, size_t len, size_t *outlen)
{
    char *out = malloc(len > 0 ? 2 * len : 1);
    char *res;

    if (out == NULL)
        return NULL;
    *outlen = copytext_escape(val, len, out);
    res = malloc(*outlen + 1);
    if (res != NULL) {
        memcpy(res, out, *outlen);
        res[*outlen] = '\0';
    }
    free(out);
    return res;
}

static int esc_is(const char *val, size_t len, const char *expect, size_t explen)
{
    size_t outlen = 0;
    char *res = esc_n(val, len, &outlen);
    int ok = res != NULL && outlen == explen && memcmp(res, expect, explen) == 0;

    if (!ok)
        printf("#   escape gave \"%s\"\n", res != NULL ? res : "(null)");
    free(res);
    return ok;
}

#define ESC(val, expect) CHECK(esc_is((val), sizeof(val) - 1, (expect), sizeof(expect) - 1))

/* Whether unescape(escape(v)) == v and the escaped text is one non-NULL field. */
static int round_trips(const unsigned char *v, size_t len)
{
    size_t elen = 0;
    size_t ulen = 0;
    size_t n = 0;
    copytext_field f[2];
    owl_err err;
    char *e = esc_n((const char *)v, len, &elen);
    char *u = NULL;
    int ok = 0;

    if (e == NULL || elen > 2 * len)
        goto out;
    if (memchr(e, '\t', elen) != NULL || memchr(e, '\n', elen) != NULL ||
        memchr(e, '\r', elen) != NULL || copytext_is_null(e, elen))
        goto out;
    if (copytext_split(e, elen, f, 2, &n, &err) != 0 || n != 1 || f[0].len != elen)
        goto out;
    u = unesc_n(e, elen, &ulen, &err);
    ok = u != NULL && ulen == len && memcmp(u, v, len) == 0;
out:
    free(u);
    free(e);
    return ok;
}

static void test_split_plain(void)
{
    copytext_field f[MAXF];
    size_t n = 99;
    owl_err err;
    const char *row = "id\tname\t42";

    CHECK(split(row, f, MAXF, &n, &err) == 0);
    CHECK(n == 3);
    CHECK(field_is(&f[0], "id"));
    CHECK(field_is(&f[1], "name"));
    CHECK(field_is(&f[2], "42"));
    /* fields point into the row: nothing is copied */
    CHECK(f[0].p == row && f[1].p == row + 3 && f[2].p == row + 8);
}

static void test_split_empty_fields(void)
{
    copytext_field f[MAXF];
    size_t n = 0;
    owl_err err;

    /* an empty row is one empty field (a one-column table's empty string) */
    CHECK(split("", f, MAXF, &n, &err) == 0);
    CHECK(n == 1 && f[0].len == 0);
    CHECK(split("\t", f, MAXF, &n, &err) == 0);
    CHECK(n == 2 && f[0].len == 0 && f[1].len == 0);
    CHECK(split("\t\t", f, MAXF, &n, &err) == 0);
    CHECK(n == 3 && f[0].len == 0 && f[1].len == 0 && f[2].len == 0);
    CHECK(split("\ta", f, MAXF, &n, &err) == 0);
    CHECK(n == 2 && field_is(&f[0], "") && field_is(&f[1], "a"));
    CHECK(split("a\t", f, MAXF, &n, &err) == 0);
    CHECK(n == 2 && field_is(&f[0], "a") && field_is(&f[1], ""));
    CHECK(split("a\t\tb", f, MAXF, &n, &err) == 0);
    CHECK(n == 3 && field_is(&f[0], "a") && field_is(&f[1], "") && field_is(&f[2], "b"));
    CHECK(split("\\N\t\t\\N", f, MAXF, &n, &err) == 0);
    CHECK(n == 3 && copytext_is_null(f[0].p, f[0].len) && f[1].len == 0 &&
          copytext_is_null(f[2].p, f[2].len));
}

static void test_split_max_fields(void)
{
    copytext_field f[3];
    size_t n = 7;
    owl_err err;

    CHECK(split("a\tb\tc", f, 3, &n, &err) == 0);
    CHECK(n == 3);
    n = 7;
    CHECK(split("a\tb\tc", f, 2, &n, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
    CHECK_STR(err.msg, "copy row has more than 2 fields");
    CHECK(n == 0);
    CHECK(split("a\t", f, 1, &n, &err) == -1);
    CHECK_STR(err.msg, "copy row has more than 1 fields");
    CHECK(split("\t\t\t", f, 3, &n, &err) == -1);
    /* zero columns: like PostgreSQL, only an empty row fits, with no fields */
    CHECK(split("", f, 0, &n, &err) == 0);
    CHECK(n == 0);
    CHECK(split("x", f, 0, &n, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
}

static void test_split_escaped_tab(void)
{
    copytext_field f[MAXF];
    size_t n = 0;
    owl_err err;

    /* PostgreSQL 15 reads "a\<TAB>b<TAB>c" as two fields, "a<TAB>b" and "c"
     * (COPY t FROM STDIN gave 610962|63): a backslash makes the tab data. */
    CHECK(split("a\\\tb\tc", f, MAXF, &n, &err) == 0);
    CHECK(n == 2 && field_is(&f[0], "a\\\tb") && field_is(&f[1], "c"));
    UNESC("a\\\tb", "a\tb");
    /* "a\\<TAB>b": the backslashes pair up, the tab splits (server: 615c|62) */
    CHECK(split("a\\\\\tb", f, MAXF, &n, &err) == 0);
    CHECK(n == 2 && field_is(&f[0], "a\\\\") && field_is(&f[1], "b"));
    UNESC("a\\\\", "a\\");
    /* three backslashes: one pair, then an escaped tab */
    CHECK(split("a\\\\\\\tb", f, MAXF, &n, &err) == 0);
    CHECK(n == 1 && field_is(&f[0], "a\\\\\\\tb"));
    /* a field that starts with an escaped tab, and one that ends with one */
    CHECK(split("x\t\\\ty\t\\\t", f, MAXF, &n, &err) == 0);
    CHECK(n == 3 && field_is(&f[0], "x") && field_is(&f[1], "\\\ty") &&
          field_is(&f[2], "\\\t"));
    /* a backslash run never reaches back into the previous field */
    CHECK(split("\\\\\t\\\tz", f, MAXF, &n, &err) == 0);
    CHECK(n == 2 && field_is(&f[0], "\\\\") && field_is(&f[1], "\\\tz"));
    /* escaped tabs do not count against max */
    CHECK(split("a\\\tb\\\tc", f, 1, &n, &err) == 0);
    CHECK(n == 1);
}

static void test_is_null(void)
{
    CHECK(copytext_is_null("\\N", 2));
    CHECK(!copytext_is_null("\\\\N", 3)); /* escaped backslash + N: the text "\N" */
    CHECK(!copytext_is_null("N", 1));
    CHECK(!copytext_is_null("\\n", 2));
    CHECK(!copytext_is_null("\\N ", 3));
    CHECK(!copytext_is_null("x\\N", 3));
    CHECK(!copytext_is_null("", 0));
    CHECK(!copytext_is_null("\\", 1));
    /* as data (not NULL) the raw text \\N unescapes to the two bytes \N */
    UNESC("\\\\N", "\\N");
    UNESC("N", "N");
    /* \N inside a longer field is just an escaped 'N' */
    UNESC("a\\Nb", "aNb");
}

static void test_unescape_simple(void)
{
    UNESC("", "");
    UNESC("plain text", "plain text");
    UNESC("\\b", "\b");
    UNESC("\\f", "\f");
    UNESC("\\n", "\n");
    UNESC("\\r", "\r");
    UNESC("\\t", "\t");
    UNESC("\\v", "\v");
    UNESC("\\\\", "\\");
    UNESC("a\\tb\\nc\\\\d", "a\tb\nc\\d");
    UNESC("\\b\\f\\n\\r\\t\\v\\\\", "\b\f\n\r\t\v\\");
    /* any other byte after a backslash is itself (server: \a\q\" -> 617122,
     * \' -> 27, "\ " -> 20). "\." is '.' here as in CopyReadAttributesText,
     * though PostgreSQL's line reader never lets it through: it ends the data
     * or fails with "end-of-copy marker corrupt" */
    UNESC("\\a\\q\\\"", "aq\"");
    UNESC("\\'", "'");
    UNESC("\\ ", " ");
    UNESC("\\.", ".");
    UNESC("\\N\\N", "NN");
    UNESC("\\8\\9", "89");
    UNESC("\\\303\251", "\303\251");
    /* backslash + newline is a newline (server: "ab\<LF>" -> 61620a) */
    UNESC("ab\\\n", "ab\n");
    /* raw control and non-ASCII bytes pass as they are */
    UNESC("\001\033[0m\177caf\303\251", "\001\033[0m\177caf\303\251");
}

static void test_unescape_octal(void)
{
    /* each checked with COPY t FROM STDIN on PostgreSQL 15 */
    UNESC("\\101", "A");
    UNESC("\\1019", "A9");  /* at most three digits */
    UNESC("\\1018", "A8");
    UNESC("\\1017", "A7");  /* a fourth octal digit is data too */
    UNESC("\\8", "8");      /* 8 is no octal digit: literal */
    UNESC("\\18", "\0018"); /* one digit, then data */
    UNESC("\\12", "\n");
    UNESC("\\012", "\n");
    UNESC("\\7", "\a");
    UNESC("\\1", "\001");
    UNESC("\\01", "\001");
    UNESC("\\001", "\001");
    UNESC("\\177", "\177");
    UNESC("\\303\\251", "\303\251"); /* é as two octal escapes: c3a9 */
    UNESC("\\377", "\377");          /* high bits kept (the server then rejects invalid UTF-8) */
    UNESC("\\777", "\377");          /* 0777 & 0377 */
    UNESC("\\501", "A");             /* 0501 & 0377 = 0101 */
    UNESC("x\\101y", "xAy");
    /* NUL results: "invalid byte sequence for encoding "UTF8": 0x00" on the server */
    UNESC_FAILS("\\0");
    UNESC_FAILS("\\00");
    UNESC_FAILS("\\000");
    UNESC_FAILS("\\0001");
    UNESC_FAILS("\\400"); /* 0400 & 0377 == 0 */
    UNESC_FAILS("abc\\0");
}

static void test_unescape_hex(void)
{
    /* server: \x41 -> 41, \x4 -> 04, \xg -> 7867, \x -> 78, \x414 -> 4134 */
    UNESC("\\x41", "A");
    UNESC("\\x4", "\004");
    UNESC("\\x4g", "\004g");
    UNESC("\\xg", "xg");
    UNESC("\\x", "x");
    UNESC("a\\x", "ax");
    UNESC("\\x414", "A4");
    UNESC("\\x7e", "~");
    UNESC("\\x7E", "~");
    UNESC("\\xfF", "\377");
    UNESC("\\xc3\\xa9", "\303\251");
    UNESC("\\X41", "X41"); /* only a lowercase x starts a hex escape */
    UNESC_FAILS("\\x0");
    UNESC_FAILS("\\x00");
    UNESC_FAILS("\\x000");
}

static void test_unescape_errors(void)
{
    owl_err err;
    size_t outlen = 99;
    char out[16];

    err_clear(&err);
    CHECK(copytext_unescape("ab\\", 3, out, &outlen, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
    CHECK_STR(err.msg, "copy value ends in a lone backslash");
    UNESC_FAILS("\\");
    UNESC_FAILS("\\\\\\");
    UNESC("\\\\", "\\");

    err_clear(&err);
    CHECK(copytext_unescape("ab\\0", 4, out, &outlen, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
    CHECK_STR(err.msg, "copy value escape at byte 2 makes a NUL byte, which text cannot hold");

    err_clear(&err);
    CHECK(copytext_unescape("a\\x00", 5, out, &outlen, &err) == -1);
    CHECK_CONTAINS(err.msg, "at byte 1 makes a NUL byte");

    /* a raw NUL byte is no more valid text than an escaped one */
    err_clear(&err);
    CHECK(copytext_unescape("abc\0def", 7, out, &outlen, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
    CHECK_STR(err.msg, "copy value has a NUL byte at byte 3, which text cannot hold");
    err_clear(&err);
    CHECK(copytext_unescape("0123456789\0", 11, out, &outlen, &err) == -1);
    CHECK_CONTAINS(err.msg, "at byte 10");

    /* the length stops the scan: bytes after len are never read */
    CHECK(copytext_unescape("ab\\n", 2, out, &outlen, &err) == 0);
    CHECK(outlen == 2 && memcmp(out, "ab", 2) == 0);
}

static void test_escape_each(void)
{
    ESC("", "");
    ESC("plain", "plain");
    ESC("\b", "\\b");
    ESC("\f", "\\f");
    ESC("\n", "\\n");
    ESC("\r", "\\r");
    ESC("\t", "\\t");
    ESC("\v", "\\v");
    ESC("\\", "\\\\");
    ESC("\\N", "\\\\N");
    ESC("a\tb\nc\\d\r\n", "a\\tb\\nc\\\\d\\r\\n");
    /* other control characters, DEL and non-ASCII go out as they are */
    ESC("\001\a\033\037\177", "\001\a\033\037\177");
    ESC("caf\303\251 \360\237\246\211", "caf\303\251 \360\237\246\211");
    ESC("it's \"quoted\"", "it's \"quoted\"");
}

static void test_escape_every_position(void)
{
    /* a special byte at each position of a long value: the 8-byte fast path
     * must hand over to the byte loop without losing or doubling bytes */
    static const char specials[] = "\b\f\n\r\t\v\\";
    char val[40];
    char expect[41];

    for (size_t s = 0; s < sizeof(specials) - 1; s++) {
        for (size_t pos = 0; pos < sizeof(val); pos++) {
            for (size_t len = pos + 1; len <= sizeof(val); len += 3) {
                size_t e = 0;

                for (size_t i = 0; i < len; i++) {
                    val[i] = (char)('a' + (i % 26));
                    if (i == pos) {
                        val[i] = specials[s];
                        expect[e++] = '\\';
                        expect[e++] = "bfnrtv\\"[s];
                    } else {
                        expect[e++] = val[i];
                    }
                }
                CHECK(esc_is(val, len, expect, e));
            }
        }
    }
}

static void test_escape_matches_server(void)
{
    /* psql -c "COPY (SELECT string_agg(chr(i), '' ORDER BY i)
     *              FROM generate_series(1,127) i) TO STDOUT"   (PostgreSQL 15.18),
     * without the final newline */
    static const char server1[] =
        "\001\002\003\004\005\006\007\\b\\t\\n\\v\\f\\r\016\017\020\021\022\023\024"
        "\025\026\027\030\031\032\033\034\035\036\037 !\"#$%&'()*+,-./0123456789:;<=>"
        "?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\177";
    /* COPY (SELECT E'it''s "q"\\N\ttab\nnl\rcr', '\N', NULL, '',
     *   E'caf\u00e9 \u65e5\u672c \U0001F989', E'\x7f\x01\x1b[0m') TO STDOUT */
    static const char server2[] =
        "it's \"q\"\\\\N\\ttab\\nnl\\rcr\011\\\\N\011\\N\011\011caf\303\251 "
        "\346\227\245\346\234\254 \360\237\246\211\011\177\001\033[0m";
    /* COPY (SELECT E'\\', E'\\\\', E'a\\', E'\\t', E'\\x41', E'\\101',
     *   E'\x08\x0c\x0b', E'\u2028 \u00a0 \ufeff') TO STDOUT */
    static const char server3[] =
        "\\\\\011\\\\\\\\\011a\\\\\011\\\\t\011\\\\x41\011\\\\101\011\\b\\f\\v\011"
        "\342\200\250 \302\240 \357\273\277";
    static const char *const values2[] = {
        "it's \"q\"\\N\ttab\nnl\rcr", "\\N", NULL, "", "caf\303\251 \346\227\245\346\234\254 \360\237\246\211",
        "\177\001\033[0m",
    };
    static const char *const values3[] = {
        "\\", "\\\\", "a\\", "\\t", "\\x41", "\\101", "\b\f\v", "\342\200\250 \302\240 \357\273\277",
    };
    char all[128];
    char row[512];
    size_t r;
    size_t n = 0;
    copytext_field f[MAXF];
    owl_err err;

    for (int i = 1; i <= 127; i++)
        all[i - 1] = (char)i;
    CHECK(esc_is(all, 127, server1, sizeof(server1) - 1));

    /* build the row as the exporter would: escape, tab, \N for NULL */
    r = 0;
    for (size_t i = 0; i < sizeof(values2) / sizeof(values2[0]); i++) {
        if (i > 0)
            row[r++] = '\t';
        if (values2[i] == NULL) {
            memcpy(row + r, "\\N", 2);
            r += 2;
        } else {
            r += copytext_escape(values2[i], strlen(values2[i]), row + r);
        }
    }
    CHECK(r == sizeof(server2) - 1 && memcmp(row, server2, r) == 0);

    r = 0;
    for (size_t i = 0; i < sizeof(values3) / sizeof(values3[0]); i++) {
        if (i > 0)
            row[r++] = '\t';
        r += copytext_escape(values3[i], strlen(values3[i]), row + r);
    }
    CHECK(r == sizeof(server3) - 1 && memcmp(row, server3, r) == 0);

    /* and the server's rows read back to the values */
    CHECK(copytext_split(server2, sizeof(server2) - 1, f, MAXF, &n, &err) == 0);
    CHECK(n == 6);
    for (size_t i = 0; i < n && i < 6; i++) {
        if (values2[i] == NULL) {
            CHECK(copytext_is_null(f[i].p, f[i].len));
        } else {
            CHECK(!copytext_is_null(f[i].p, f[i].len));
            CHECK(unesc_is_n(f[i].p, f[i].len, values2[i]));
        }
    }
}

static void test_round_trip_escaped(void)
{
    /* escape(unescape(x)) == x for text as COPY TO writes it */
    static const char *const raws[] = {
        "it's \"q\"",  "a\\tb",          "line\\nbreak",   "cr\\r\\nlf",
        "\\\\",        "back\\\\slash",  "\\\\N",          "caf\303\251 \360\237\246\211",
        "\001\033\177", "\\b\\f\\v",     "",               "x",
    };

    for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
        owl_err err;
        size_t ulen = 0;
        size_t elen = 0;
        char *u = unesc_n(raws[i], strlen(raws[i]), &ulen, &err);
        char *e = u != NULL ? esc_n(u, ulen, &elen) : NULL;

        CHECK(e != NULL && elen == strlen(raws[i]) && memcmp(e, raws[i], elen) == 0);
        free(e);
        free(u);
    }
    /* escapes COPY TO never writes come back in its own form */
    UNESC("\\101\\x42\\q", "ABq");
    CHECK(esc_is("\n", 1, "\\n", 2));
    UNESC("\\012", "\n");
}

static void test_property_bytes(void)
{
    unsigned char v[3];
    int bad = 0;

    for (int a = 1; a <= 255; a++) {
        v[0] = (unsigned char)a;
        if (!round_trips(v, 1))
            bad++;
        for (int b = 1; b <= 255; b++) {
            v[1] = (unsigned char)b;
            if (!round_trips(v, 2))
                bad++;
        }
        v[0] = 'a';
        v[1] = (unsigned char)a;
        v[2] = 'z';
        if (!round_trips(v, 3))
            bad++;
    }
    CHECK(bad == 0);
}

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rng(void)
{
    /* xorshift64: deterministic, so a failure reproduces */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static unsigned char random_byte(void)
{
    static const unsigned char hot[] = {'\\', '\t', '\n', '\r', '\b', '\f', '\v',
                                        'N',  'x',  '0',  '7',  0xc3, 0xa9, 1};
    uint64_t r = rng();

    if (r % 3 == 0)
        return hot[(r >> 8) % sizeof(hot)];
    return (unsigned char)(1 + (r >> 16) % 255);
}

static void test_property_random(void)
{
    unsigned char v[320];
    int bad = 0;

    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rng() % sizeof(v));

        for (size_t i = 0; i < len; i++)
            v[i] = random_byte();
        if (!round_trips(v, len))
            bad++;
    }
    CHECK(bad == 0);
}

static void test_property_rows(void)
{
    /* random rows of random values: escape and join, then split and unescape */
    enum { COLS = 6, VLEN = 40 };
    unsigned char vals[COLS][VLEN];
    size_t lens[COLS];
    char row[COLS * (2 * VLEN + 1)];
    copytext_field f[COLS];
    int bad = 0;

    for (int iter = 0; iter < 5000; iter++) {
        size_t cols = 1 + (size_t)(rng() % COLS);
        size_t r = 0;
        size_t n = 0;
        owl_err err;

        for (size_t c = 0; c < cols; c++) {
            lens[c] = (size_t)(rng() % VLEN);
            for (size_t i = 0; i < lens[c]; i++)
                vals[c][i] = random_byte();
            if (c > 0)
                row[r++] = '\t';
            r += copytext_escape((const char *)vals[c], lens[c], row + r);
        }
        if (copytext_split(row, r, f, COLS, &n, &err) != 0 || n != cols) {
            bad++;
            continue;
        }
        for (size_t c = 0; c < cols; c++) {
            char out[VLEN];
            size_t olen = 0;

            if (copytext_unescape(f[c].p, f[c].len, out, &olen, &err) != 0 ||
                olen != lens[c] || memcmp(out, vals[c], olen) != 0)
                bad++;
        }
        if (cols > 1 && copytext_split(row, r, f, cols - 1, &n, &err) != -1)
            bad++;
    }
    CHECK(bad == 0);
}

/* ---- rows out of a stream ---- */

typedef struct rows_seen {
    char all[512]; /* the rows, each ended by '|' */
    size_t len;
    uint64_t last;
    bool order_ok;
} rows_seen;

static int take_row(void *ctx, const char *row, size_t len, uint64_t rowno, owl_err *err)
{
    rows_seen *r = ctx;

    (void)err;
    r->order_ok = r->order_ok && rowno == r->last + 1;
    r->last = rowno;
    if (r->len + len + 1 < sizeof(r->all)) {
        memcpy(r->all + r->len, row, len);
        r->len += len;
        r->all[r->len++] = '|';
        r->all[r->len] = '\0';
    }
    return 0;
}

static void test_rows_stream(void)
{
    /* a row over two chunks, an escaped newline that is data, an even run of
     * backslashes before a real row end, an empty row, a last row without newline */
    static const char text[] = "1\ta\n2\tb\\\nstill b\n3\tc\\\\\n\n4\td";
    static const char want[] = "1\ta|2\tb\\\nstill b|3\tc\\\\||4\td|";
    const size_t len = sizeof(text) - 1;

    for (size_t chunk = 1; chunk <= len; chunk++) {
        copytext_rows s;
        rows_seen seen = {{0}, 0, 0, true};
        owl_err err = {0};
        int rc = 0;

        copytext_rows_init(&s, 64, "data/t.tsv");
        for (size_t off = 0; off < len && rc == 0; off += chunk)
            rc = copytext_rows_feed(&s, text + off, off + chunk <= len ? chunk : len - off, take_row, &seen, &err);
        if (rc == 0)
            rc = copytext_rows_end(&s, take_row, &seen, &err);
        copytext_rows_free(&s);
        if (rc != 0 || strcmp(seen.all, want) != 0 || !seen.order_ok || seen.last != 5) {
            printf("#   chunks of %zu: rc %d, rows \"%s\" (%llu): %s\n", chunk, rc, seen.all,
                   (unsigned long long)seen.last, err.msg);
            CHECK(0);
            break;
        }
    }
}

static void test_rows_bound(void)
{
    copytext_rows s;
    rows_seen seen = {{0}, 0, 0, true};
    owl_err err = {0};
    char row[20];

    /* 8 bytes and a newline fit a bound of 8; 9 do not, whole or in pieces */
    memset(row, 'x', sizeof(row));
    row[8] = '\n';
    copytext_rows_init(&s, 8, "data/t.tsv");
    CHECK(copytext_rows_feed(&s, row, 9, take_row, &seen, &err) == 0);
    CHECK(seen.last == 1);
    row[8] = 'x';
    row[9] = '\n';
    CHECK(copytext_rows_feed(&s, row, 10, take_row, &seen, &err) == -1);
    CHECK(err.code == OWL_EUSAGE); /* a limit of owlsync's, not a bundle tampered with */
    CHECK_STR(err.msg, "data/t.tsv row 2 is longer than 8 bytes");
    copytext_rows_free(&s);
    copytext_rows_init(&s, 8, "data/t.tsv");
    err = (owl_err){0};
    CHECK(copytext_rows_feed(&s, row, 5, take_row, &seen, &err) == 0);
    CHECK(copytext_rows_feed(&s, row + 5, 5, take_row, &seen, &err) == -1);
    CHECK_STR(err.msg, "data/t.tsv row 1 is longer than 8 bytes");
    copytext_rows_free(&s);
}

/* A last row without its newline keeps the same bound: 8 bytes fit a bound of
 * 8, 9 do not (the buffer's room for a newline is not room for a ninth byte). */
static void test_rows_bound_last_row(void)
{
    copytext_rows s;
    rows_seen seen = {{0}, 0, 0, true};
    owl_err err = {0};
    const char row[] = "xxxxxxxxx";

    copytext_rows_init(&s, 8, "data/t.tsv");
    CHECK(copytext_rows_feed(&s, row, 8, take_row, &seen, &err) == 0);
    CHECK(copytext_rows_end(&s, take_row, &seen, &err) == 0);
    CHECK(seen.last == 1);
    copytext_rows_free(&s);
    for (size_t split = 0; split <= 9; split++) {
        seen = (rows_seen){{0}, 0, 0, true};
        err = (owl_err){0};
        copytext_rows_init(&s, 8, "data/t.tsv");
        CHECK(copytext_rows_feed(&s, row, split, take_row, &seen, &err) == 0);
        CHECK(copytext_rows_feed(&s, row + split, 9 - split, take_row, &seen, &err) == 0);
        CHECK(copytext_rows_end(&s, take_row, &seen, &err) == -1);
        CHECK(seen.last == 0);
        CHECK(err.code == OWL_EUSAGE);
        CHECK_STR(err.msg, "data/t.tsv row 1 is longer than 8 bytes");
        copytext_rows_free(&s);
    }
}

int main(void)
{
    RUN(test_split_plain);
    RUN(test_split_empty_fields);
    RUN(test_split_max_fields);
    RUN(test_split_escaped_tab);
    RUN(test_is_null);
    RUN(test_unescape_simple);
    RUN(test_unescape_octal);
    RUN(test_unescape_hex);
    RUN(test_unescape_errors);
    RUN(test_escape_each);
    RUN(test_escape_every_position);
    RUN(test_escape_matches_server);
    RUN(test_round_trip_escaped);
    RUN(test_property_bytes);
    RUN(test_property_random);
    RUN(test_property_rows);
    RUN(test_rows_stream);
    RUN(test_rows_bound);
    RUN(test_rows_bound_last_row);
    return UNIT_DONE();
}
