/* Unit tests for agent/text.c: the name rules config and manifest share, the one
 * cleaner of untrusted text, and the UTC formatter. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "owlsync/text.h"
#include "unit.h"

static void test_identifiers(void)
{
    char long63[64], long64[65];

    memset(long63, 'a', 63);
    long63[63] = '\0';
    memset(long64, 'a', 64);
    long64[64] = '\0';
    CHECK(text_is_ident("owl_rule"));
    CHECK(text_is_ident("_x9"));
    CHECK(text_is_ident("A"));
    CHECK(text_is_ident(long63));
    CHECK(!text_is_ident(long64));
    CHECK(!text_is_ident(""));
    CHECK(!text_is_ident(NULL));
    CHECK(!text_is_ident("9x"));
    CHECK(!text_is_ident("../x"));
    CHECK(!text_is_ident("a-b"));
    CHECK(!text_is_ident("a b"));
    CHECK(!text_is_ident("a\"b"));
    CHECK(!text_is_ident("\xc3\xa9"));
}

static void test_names(void)
{
    char long63[64], long64[65];

    memset(long63, '-', 63);
    long63[63] = '\0';
    memset(long64, 'x', 64);
    long64[64] = '\0';
    CHECK(text_is_name("prod"));
    CHECK(text_is_name("qa-2_eu"));
    CHECK(text_is_name("9"));
    CHECK(text_is_name(long63));
    CHECK(!text_is_name(long64));
    CHECK(!text_is_name(""));
    CHECK(!text_is_name(NULL));
    CHECK(!text_is_name("a.b"));
    CHECK(!text_is_name("a/b"));
    CHECK(!text_is_name("a b"));
    CHECK(!text_is_name("\xc3\xa9"));
}

static void clean_is(const char *in, size_t max, size_t outsz, const char *want)
{
    char out[256];

    CHECK(outsz <= sizeof(out));
    memset(out, 'Z', sizeof(out));
    CHECK(text_clean(in, max, out, outsz) == out);
    CHECK_STR(out, want);
    CHECK(strlen(out) < outsz);
}

static void test_clean(void)
{
    clean_is("plain text", 100, 64, "plain text");
    clean_is(NULL, 100, 64, "");
    clean_is("", 100, 64, "");
    /* controls, a backslash, DEL and the terminal's escape become escapes */
    clean_is("a\nb\rc\td\\e\x7f f\x1b[2J", 100, 64, "a\\nb\\rc\\td\\\\e\\x7f f\\x1b[2J");
    /* valid UTF-8 passes; invalid bytes, overlong forms, surrogates and C1 controls do not */
    clean_is("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\xa6\x89", 100, 64, "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\xa6\x89");
    clean_is("\xc3", 100, 64, "\\xc3");
    clean_is("\xc0\xaf", 100, 64, "\\xc0\\xaf");
    clean_is("\xe0\x80\xaf", 100, 64, "\\xe0\\x80\\xaf");
    clean_is("\xed\xa0\x80", 100, 64, "\\xed\\xa0\\x80");
    clean_is("\xc2\x9b" "31m", 100, 64, "\\xc2\\x9b31m");
    clean_is("\xf4\x90\x80\x80", 100, 64, "\\xf4\\x90\\x80\\x80");
    /* cut by max, and by the room in out: "..." says so */
    clean_is("abcdefghij", 4, 64, "abcd...");
    clean_is("abcdefghij", 10, 64, "abcdefghij");
    clean_is("abcdefghij", 100, 8, "abcd...");
    clean_is("\n\n\n\n", 100, 8, "\\n\\n...");
    /* a UTF-8 sequence cut by max is not passed half */
    clean_is("\xc3\xa9", 1, 64, "\\xc3...");
}

static void utc_is(int64_t usec, text_utc_style style, const char *want)
{
    char out[TEXT_UTC_MAX];

    CHECK_STR(text_utc(usec, style, out, sizeof(out)), want);
}

static void test_utc(void)
{
    utc_is(0, TEXT_UTC_SECONDS, "1970-01-01T00:00:00Z");
    utc_is(0, TEXT_UTC_MICROS, "1970-01-01T00:00:00.000000Z");
    utc_is(0, TEXT_UTC_COMPACT, "19700101T000000Z");
    utc_is(INT64_C(1700000000123456), TEXT_UTC_SECONDS, "2023-11-14T22:13:20Z");
    utc_is(INT64_C(1700000000123456), TEXT_UTC_MICROS, "2023-11-14T22:13:20.123456Z");
    utc_is(INT64_C(1700000000123456), TEXT_UTC_COMPACT, "20231114T221320Z");
    /* before the epoch, the fraction counts forward from the second before */
    utc_is(-1, TEXT_UTC_MICROS, "1969-12-31T23:59:59.999999Z");
    /* years before 1000 keep four digits, so they parse back */
    utc_is(INT64_C(-59011459200000000), TEXT_UTC_SECONDS, "0100-01-01T00:00:00Z");
    CHECK(text_now_usec() > INT64_C(1700000000000000));
}

/* LIKE as PostgreSQL reads it (the same answers as SELECT s LIKE p). */
static void test_like(void)
{
    CHECK(text_like("public.ds_1", "public.ds_1"));
    CHECK(!text_like("public.ds_1", "public.ds_2"));
    CHECK(text_like("public.ds_1", "public.ds_%"));
    CHECK(text_like("public.ds_", "public.ds_%"));  /* % takes nothing */
    CHECK(!text_like("public.ds", "public.ds_%"));  /* _ takes one */
    CHECK(text_like("public.ds_12", "%ds%2"));
    CHECK(!text_like("public.ds_12", "%ds%3"));
    CHECK(text_like("abcabd", "%abd"));            /* backtracks into the % */
    CHECK(text_like("", "%"));
    CHECK(text_like("", "%%"));
    CHECK(!text_like("", "_"));
    CHECK(!text_like("a", ""));
    CHECK(text_like("a_b", "a\\_b"));               /* an escaped _ is itself */
    CHECK(!text_like("axb", "a\\_b"));
    CHECK(text_like("50%", "50\\%"));
    CHECK(!text_like("500", "50\\%"));
    CHECK(text_like("d\xc3\xa9j\xc3\xa0", "d_j_"));   /* _ is a character, not a byte */
    CHECK(!text_like("d\xc3\xa9j\xc3\xa0", "d__j__"));
    CHECK(text_like("x.a.b.c", "x%.%.%"));
    CHECK(!text_like("x.a", "x%.%.%"));
    CHECK(text_like("ds", "DS") == false);          /* case matters */
}

/* Regexes as glibc's regcomp reads them (REG_EXTENDED). */
static void ere_is(const char *re, bool backref, bool balanced)
{
    text_ere e = text_ere_scan(re);

    if (e.backref != backref || e.balanced != balanced) {
        printf("#   %s: backref %d balanced %d\n", re, e.backref, e.balanced);
        CHECK(0);
    }
}

static void test_ere_scan(void)
{
    ere_is("^prod-agent-([0-9]+)$", false, true);
    ere_is("(.*)\\1-prod", true, true);
    ere_is("(a)(b)\\2", true, true);
    ere_is("a\\0b", false, true);    /* \0 is no back-reference */
    ere_is("a\\\\1", false, true);   /* an escaped backslash, then 1 */
    ere_is("[\\1]", false, true);    /* a backslash in brackets is a member */
    ere_is("[]\\1)]x", false, true); /* "]" first is a member, so is ")" */
    ere_is("[^]\\1]x", false, true);
    ere_is("[[:digit:]\\1]+", false, true);
    ere_is("[[:digit:]]\\1", true, true);
    ere_is("[[.].]]\\1", true, true); /* "]" as a collating element */
    ere_is("a\\(b", false, true);     /* an escaped parenthesis is a character */
    ere_is("a)|b", false, false);     /* glibc: ")" unmatched is a character */
    ere_is("(a))", false, false);
    ere_is("((a)", false, false);
    ere_is("[a", false, false);
    ere_is("a\\", false, true);
    ere_is("", false, true);
}

static void test_count(void)
{
    char out[TEXT_COUNT_MAX], small[4];

    CHECK_STR(text_count(0, out, sizeof(out)), "0");
    CHECK_STR(text_count(999, out, sizeof(out)), "999");
    CHECK_STR(text_count(1000, out, sizeof(out)), "1,000");
    CHECK_STR(text_count(29990, out, sizeof(out)), "29,990");
    CHECK_STR(text_count(100000, out, sizeof(out)), "100,000");
    CHECK_STR(text_count(1234567, out, sizeof(out)), "1,234,567");
    CHECK_STR(text_count(UINT64_MAX, out, sizeof(out)), "18,446,744,073,709,551,615");
    /* a short buffer holds what fits, terminated */
    CHECK_STR(text_count(1234567, small, sizeof(small)), "1,2");
    CHECK_STR(text_count(1234, small, 1), "");
}

int main(void)
{
    RUN(test_identifiers);
    RUN(test_names);
    RUN(test_clean);
    RUN(test_utc);
    RUN(test_like);
    RUN(test_ere_scan);
    RUN(test_count);
    return UNIT_DONE();
}
