/* Unit tests for agent/vendor.c: the JSON list walker over chunks of any size,
 * and the grammar of the vendor's dump() statements, accepted and refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "owlsync/vendor.h"
#include "unit.h"

/* ---------------------------------------------------------------- walker */

typedef struct got {
    char items[8][64];
    size_t lens[8];
    uint64_t offsets[8];
    size_t n;
} got;

static int collect(void *ctx, const char *s, size_t len, uint64_t index, uint64_t offset, owl_err *err)
{
    got *g = ctx;

    (void)err;
    if (g->n < 8 && len < 64 && index == g->n) {
        memcpy(g->items[g->n], s, len);
        g->items[g->n][len] = '\0';
        g->lens[g->n] = len;
        g->offsets[g->n] = offset;
    }
    g->n++;
    return 0;
}

/* Walks text in chunks of chunk bytes; returns 0 or -1 (err set). */
static int walk(const char *text, size_t chunk, size_t max, got *g, owl_err *err)
{
    vendor_array a;
    size_t len = strlen(text);
    int rc = 0;

    memset(g, 0, sizeof(*g));
    err_clear(err);
    vendor_array_init(&a, max);
    for (size_t i = 0; rc == 0 && i < len; i += chunk)
        rc = vendor_array_feed(&a, text + i, len - i < chunk ? len - i : chunk, collect, g, err);
    if (rc == 0)
        rc = vendor_array_end(&a, err);
    vendor_array_free(&a);
    return rc;
}

static void test_walk_strings(void)
{
    const char *text = " [\"a\", \"b\\\"c\\\\\" ,\n\"\\u00e9\\ud83e\\udd89\\n\"] \n";
    owl_err err;
    got g;

    for (size_t chunk = 1; chunk <= strlen(text); chunk++) {
        CHECK(walk(text, chunk, 1024, &g, &err) == 0);
        CHECK(g.n == 3);
        CHECK_STR(g.items[0], "a");
        CHECK_STR(g.items[1], "b\"c\\");
        CHECK_STR(g.items[2], "\xc3\xa9\xf0\x9f\xa6\x89\n");
        CHECK(g.offsets[0] == 2 && g.offsets[1] == 7);
    }
    CHECK(walk("[]", 1, 16, &g, &err) == 0 && g.n == 0);
    CHECK(walk("\xef\xbb\xbf[\"a\"]", 1, 16, &g, &err) == 0 && g.n == 1); /* a byte order mark */
    CHECK(walk("\xef\xbb[]", 1, 16, &g, &err) < 0);
    CHECK(walk(" \xef\xbb\xbf[]", 1, 16, &g, &err) < 0);
}

static void test_walk_refused(void)
{
    owl_err err;
    got g;

    CHECK(walk("", 4, 64, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "no JSON list");
    CHECK(err.code == OWL_EUSAGE);
    CHECK(walk("{\"a\": 1}", 4, 64, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "payload byte 1: expected '['");
    CHECK(walk("[\"a\" \"b\"]", 3, 64, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "payload byte 6: expected ',' or ']'");
    CHECK(walk("[\"a\",]", 3, 64, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "payload byte 6: expected a string");
    CHECK(walk("[1]", 3, 64, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "expected a string");
    CHECK(walk("[\"a\"] x", 3, 64, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "payload byte 7: text after the end of the list");
    CHECK(walk("[\"a\"][]", 3, 64, &g, &err) < 0);
    CHECK(walk("[\"a\"", 3, 64, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "ends inside its list");
    CHECK(walk("[\"abc", 3, 64, &g, &err) < 0);
    CHECK(walk("[\"a\\u0000b\"]", 3, 64, &g, &err) < 0); /* NUL: jansson refuses it */
    CHECK_CONTAINS(err.msg, "payload item 1 (byte 2) is not a valid JSON string");
    CHECK(walk("[\"\\ud83e\"]", 3, 64, &g, &err) < 0); /* a lone surrogate */
    CHECK(walk("[\"a\tb\"]", 3, 64, &g, &err) < 0);    /* a raw control character */
    CHECK(walk("[\"\xff\"]", 3, 64, &g, &err) < 0);    /* not UTF-8 */
    CHECK(walk("[\"\\x41\"]", 3, 64, &g, &err) < 0);   /* no such escape */
    CHECK(walk("[\"0123456789\"]", 3, 8, &g, &err) < 0);
    CHECK_CONTAINS(err.msg, "payload item 1 (byte 2) is longer than 8 bytes");
}

/* ---------------------------------------------------------------- statements */

static int parse(const char *s, vendor_insert *ins, size_t *pos, owl_err *err)
{
    err_clear(err);
    return vendor_parse(s, strlen(s), ins, pos, err);
}

/* The COPY field of value k of ins, NUL-terminated (static buffer). */
static const char *field(const vendor_insert *ins, size_t k)
{
    static char out[256];
    owl_buf b = OWL_BUF_INIT(200);

    out[0] = '\0';
    if (vendor_value_copytext(&ins->values[k], &b) == 0 && b.p != NULL)
        memcpy(out, b.p, b.len + 1);
    else if (b.p == NULL)
        out[0] = '\0';
    buf_free(&b);
    return out;
}

static const char *decoded(const vendor_insert *ins, size_t k)
{
    static char out[256];
    owl_buf b = OWL_BUF_INIT(200);

    out[0] = '\0';
    if (vendor_value_decode(&ins->values[k], &b) == 0 && b.p != NULL)
        memcpy(out, b.p, b.len + 1);
    buf_free(&b);
    return out;
}

static void test_parse_dump_shape(void)
{
    /* as the vendor's dump() writes them: quote_ident, quote_literal, NULL */
    const char *s = "INSERT INTO public.owl_rule(dataset, rule_nm, \"Odd \"\"Col\"\"\", x, y, z) VALUES "
                    "('public.o''hara', E'a\\\\b''c\\\\\\\\N', NULL, '', 'tab\there\nnl', 'x; DROP TABLE t; --');";
    vendor_insert ins;
    owl_err err;
    size_t pos;

    memset(&ins, 0, sizeof(ins));
    CHECK(parse(s, &ins, &pos, &err) == 0);
    CHECK_STR(ins.schema, "public");
    CHECK_STR(ins.table, "owl_rule");
    CHECK(ins.ncolumns == 6);
    CHECK_STR(ins.columns[2], "Odd \"Col\"");
    CHECK(ins.values[0].kind == VENDOR_PLAIN);
    CHECK_STR(decoded(&ins, 0), "public.o'hara");
    CHECK_STR(field(&ins, 0), "public.o'hara");
    CHECK(ins.values[1].kind == VENDOR_ESCAPED);
    CHECK_STR(decoded(&ins, 1), "a\\b'c\\\\N");
    CHECK_STR(field(&ins, 1), "a\\\\b'c\\\\\\\\N");
    CHECK(ins.values[2].kind == VENDOR_NULL);
    CHECK_STR(field(&ins, 2), "\\N");
    CHECK(ins.values[3].kind == VENDOR_PLAIN);
    CHECK_STR(field(&ins, 3), "");
    CHECK_STR(field(&ins, 4), "tab\\there\\nnl");
    CHECK_STR(decoded(&ins, 5), "x; DROP TABLE t; --");

    /* the real function's "," without a space, and a quoted schema */
    CHECK(parse("INSERT INTO \"Tenant 1\".t(a,b) VALUES ('1',NULL);", &ins, &pos, &err) == 0);
    CHECK_STR(ins.schema, "Tenant 1");
    CHECK(ins.ncolumns == 2);
    vendor_insert_free(&ins);
}

/* Checks that s is refused at byte at with a message holding what. */
static void refused(const char *s, size_t at, const char *what)
{
    vendor_insert ins;
    owl_err err;
    size_t pos = 999;

    memset(&ins, 0, sizeof(ins));
    if (parse(s, &ins, &pos, &err) == 0) {
        printf("#   accepted: %s\n", s);
        unit_failed_checks++;
    } else {
        if (pos != at)
            printf("#   %s: at %zu, expected %zu (%s)\n", s, pos, at, err.msg);
        CHECK(pos == at);
        CHECK(err.code == OWL_EUSAGE);
        CHECK_CONTAINS(err.msg, what);
    }
    vendor_insert_free(&ins);
}

static void test_parse_refused(void)
{
    refused("", 0, "not an INSERT");
    refused("insert into s.t(a) VALUES ('1');", 0, "not an INSERT");
    refused("DELETE FROM s.t;", 0, "not an INSERT");
    refused("INSERT INTO t(a) VALUES ('1');", 13, "expected '.'");
    refused("INSERT INTO s.T(a) VALUES ('1');", 14, "expected the table");
    refused("INSERT INTO s.t (a) VALUES ('1');", 15, "expected '('");
    refused("INSERT INTO s.t() VALUES ('1');", 16, "expected a column");
    refused("INSERT INTO s.t(\"\") VALUES ('1');", 16, "an empty quoted identifier");
    refused("INSERT INTO s.t(\"a) VALUES ('1');", 16, "without its closing quote");
    refused("INSERT INTO s.t(a)  VALUES ('1');", 17, "VALUES");
    refused("INSERT INTO s.t(a) VALUES ('1', '2');", 32, "more values than the 1 columns");
    refused("INSERT INTO s.t(a, b) VALUES ('1');", 33, "1 values for 2 columns");
    refused("INSERT INTO s.t(a) VALUES ('1')", 30, "expected ',' or \");\"");
    refused("INSERT INTO s.t(a) VALUES ('1'); DROP TABLE s.t;", 32, "text after the statement's end");
    refused("INSERT INTO s.t(a) VALUES ('1');\n", 32, "text after");
    refused("INSERT INTO s.t(a) VALUES ('1'); -- c", 32, "text after");
    refused("INSERT INTO s.t(a) VALUES ('1'::text);", 30, "expected ','");
    refused("INSERT INTO s.t(a) VALUES (lower('X'));", 27, "expected a quoted value or NULL");
    refused("INSERT INTO s.t(a) VALUES (1);", 27, "expected a quoted value");
    refused("INSERT INTO s.t(a) VALUES (null);", 27, "expected a quoted value");
    refused("INSERT INTO s.t(a) VALUES (/* c */ '1');", 27, "expected a quoted value");
    refused("INSERT INTO s.t(a) VALUES ('it's');", 31, "expected ','");
    refused("INSERT INTO s.t(a) VALUES ('1);", 27, "without its closing quote");
    refused("INSERT INTO s.t(a) VALUES ('a\\b');", 29, "a backslash in a '...' value");
    refused("INSERT INTO s.t(a) VALUES (E'a\\b');", 30, "not doubled");
    refused("INSERT INTO s.t(a) VALUES (E'a\\');", 30, "not doubled");
    refused("INSERT INTO s.t(a) VALUES ('1'), ('2');", 30, "expected ','");
    refused("INSERT INTO s.t(a) SELECT 1;", 17, "VALUES");
    refused("INSERT INTO s.t(a) VALUES ('1') RETURNING a;", 30, "expected ','");
    refused("INSERT INTO s.t(a) VALUES ('1') ON CONFLICT DO NOTHING;", 30, "expected ','");
    refused("INSERT INTO s.abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234(a) VALUES ('1');", 14,
            "longer than 63 bytes");
    {
        const char nul[] = "INSERT INTO s.t(a) VALUES ('a\0b');";
        vendor_insert ins;
        owl_err err;
        size_t pos;
        memset(&ins, 0, sizeof(ins));
        err_clear(&err);
        CHECK(vendor_parse(nul, sizeof(nul) - 1, &ins, &pos, &err) < 0);
        CHECK(pos == 29);
        CHECK_CONTAINS(err.msg, "NUL");
        vendor_insert_free(&ins);
    }
}

static void test_parse_columns_bound(void)
{
    owl_buf b = OWL_BUF_INIT(1 << 20);
    vendor_insert ins;
    owl_err err;
    size_t pos;

    memset(&ins, 0, sizeof(ins));
    buf_adds(&b, "INSERT INTO s.t(c");
    for (int i = 1; i < 1601; i++)
        buf_adds(&b, ", c");
    buf_adds(&b, ") VALUES (NULL);");
    err_clear(&err);
    CHECK(vendor_parse(b.p, b.len, &ins, &pos, &err) < 0);
    CHECK_CONTAINS(err.msg, "more than 1600 columns");
    buf_free(&b);
    vendor_insert_free(&ins);
}

int main(void)
{
    RUN(test_walk_strings);
    RUN(test_walk_refused);
    RUN(test_parse_dump_shape);
    RUN(test_parse_refused);
    RUN(test_parse_columns_bound);
    return UNIT_DONE();
}
