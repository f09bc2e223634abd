/* Unit tests of agent/rewrite.c: the [rewrite NAME] rules of a target's config
 * applied to COPY text rows (DESIGN.md 3.2, issue 5). */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "owlsync/config.h"
#include "owlsync/manifest.h"
#include "owlsync/rewrite.h"
#include "unit.h"

#define MAX_TABLES 4

/* One config, its compiled rules, a manifest and the rewrite tables made for it. */
typedef struct fx {
    cfg *c;
    rewrite_set *s;
    manifest *m;
    rewrite_table *t[MAX_TABLES];
    size_t nt;
    owl_err err;
    char *out; /* the last rewritten row, NUL-terminated */
    size_t outlen;
} fx;

/* The config around the rules: the tables rules may name. */
static const char cfg_head[] = "[owlsync]\n"
                               "environment = qa\n"
                               "[table owl_check_repo]\n"
                               "[table job_schedule]\n"
                               "[table alert_cond]\n"
                               "[table owl_rule]\n";

/* Loads cfg_head + rules and compiles them; false (with a message) on failure. */
static bool fx_init(fx *f, const char *rules)
{
    char text[8192];

    memset(f, 0, sizeof(*f));
    snprintf(text, sizeof(text), "%s%s", cfg_head, rules);
    if (cfg_load_string("test.ini", text, &f->c, &f->err) < 0) {
        printf("#   cfg_load_string: %s\n", f->err.msg);
        return false;
    }
    f->m = manifest_new();
    if (f->m == NULL)
        return false;
    return true;
}

/* Compiles the rules of f->c (after a test has edited them, if it wants). */
static bool fx_compile(fx *f)
{
    if (rewrite_compile(f->c, &f->s, &f->err) < 0) {
        printf("#   rewrite_compile: %s\n", f->err.msg);
        return false;
    }
    return true;
}

/* A manifest table NAME with columns "col:type;col:type…" (';' because types
 * such as numeric(10,2) hold commas) and its rewrite table; NULL on failure. */
static rewrite_table *fx_table(fx *f, const char *name, const char *cols)
{
    manifest_table *mt;
    char spec[1024], *save = NULL, *item;

    if (f->nt >= MAX_TABLES)
        return NULL;
    /* The manifest's tables array may move when it grows: one table per
     * manifest keeps every manifest_table pointer stable. */
    if (f->m->ntables > 0)
        return NULL;
    mt = manifest_add_table(f->m, name, "dataset");
    if (mt == NULL)
        return NULL;
    snprintf(spec, sizeof(spec), "%s", cols);
    for (item = strtok_r(spec, ";", &save); item != NULL; item = strtok_r(NULL, ";", &save)) {
        char *colon = strchr(item, ':');
        if (colon == NULL)
            return NULL;
        *colon = '\0';
        if (manifest_table_add_column(mt, item, colon + 1) < 0)
            return NULL;
    }
    if (rewrite_table_new(f->s, mt, &f->t[f->nt], &f->err) < 0) {
        printf("#   rewrite_table_new: %s\n", f->err.msg);
        return NULL;
    }
    return f->t[f->nt++];
}

/* A second manifest, for one more table: keeps tables apart in tests with two. */
static rewrite_table *fx_table2(fx *f, manifest **m2, const char *name, const char *cols)
{
    manifest *keep = f->m;
    rewrite_table *t;

    *m2 = manifest_new();
    if (*m2 == NULL)
        return NULL;
    f->m = *m2;
    t = fx_table(f, name, cols);
    f->m = keep;
    return t;
}

/* Rewrites row (row number rowno) with t; the result, or NULL on error (f->err). */
static const char *fx_row_n(fx *f, rewrite_table *t, const char *row, uint64_t rowno)
{
    const char *out = NULL;
    size_t outlen = 0;

    free(f->out);
    f->out = NULL;
    err_clear(&f->err);
    if (rewrite_row(t, row, strlen(row), rowno, &out, &outlen, &f->err) < 0)
        return NULL;
    f->out = malloc(outlen + 1);
    if (f->out == NULL)
        return NULL;
    memcpy(f->out, out, outlen);
    f->out[outlen] = '\0';
    f->outlen = outlen;
    return f->out;
}

static const char *fx_row(fx *f, rewrite_table *t, const char *row)
{
    return fx_row_n(f, t, row, 1);
}

static void fx_free(fx *f)
{
    for (size_t i = 0; i < f->nt; i++)
        rewrite_table_free(f->t[i]);
    rewrite_set_free(f->s);
    manifest_free(f->m);
    cfg_free(f->c);
    free(f->out);
    memset(f, 0, sizeof(*f));
}

/* The index of the rule called name, or SIZE_MAX. */
static size_t rule_no(const fx *f, const char *name)
{
    for (size_t i = 0; i < rewrite_rule_count(f->s); i++) {
        if (strcmp(rewrite_rule_name(f->s, i), name) == 0)
            return i;
    }
    return SIZE_MAX;
}

static uint64_t changed(const fx *f, const rewrite_table *t, const char *rule)
{
    size_t i = rule_no(f, rule);
    return i == SIZE_MAX ? UINT64_MAX : rewrite_table_changed(t, i);
}

static bool covers(const fx *f, const rewrite_table *t, const char *rule)
{
    size_t i = rule_no(f, rule);
    return i != SIZE_MAX && rewrite_table_covers(t, i);
}

/* Replaces a loaded rule's from or to (before fx_compile) with text an INI
 * line cannot hold: a tab or a newline. */
static void set_text(char **field, const char *text)
{
    free(*field);
    *field = strdup(text);
}

/* ------------------------------------------------------------------ match kinds */

static void test_exact_whole_value(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite conn]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto = qa_pg\n") ||
        !fx_compile(&f)) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK(rewrite_rule_count(f.s) == 1);
    CHECK_STR(rewrite_rule_name(f.s, 0), "conn");
    t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text;conn_url:text");
    CHECK(t != NULL);
    if (t == NULL) {
        fx_free(&f);
        return;
    }
    CHECK(rewrite_table_active(t));
    CHECK_STR(fx_row(&f, t, "public.ds_1\tprod_pg\tjdbc:postgresql://prod_pg/x"),
              "public.ds_1\tqa_pg\tjdbc:postgresql://prod_pg/x");
    /* only a whole value matches */
    CHECK_STR(fx_row(&f, t, "public.ds_10\tprod_pg_hist\tx"), "public.ds_10\tprod_pg_hist\tx");
    CHECK_STR(fx_row(&f, t, "d\txprod_pg\tx"), "d\txprod_pg\tx");
    CHECK_STR(fx_row(&f, t, "d\tprod_pg \tx"), "d\tprod_pg \tx");
    CHECK_STR(fx_row(&f, t, "d\tPROD_PG\tx"), "d\tPROD_PG\tx");
    CHECK_STR(fx_row(&f, t, "d\t\tx"), "d\t\tx");
    CHECK_STR(fx_row(&f, t, "d\tprod_pg\t"), "d\tqa_pg\t");
    CHECK(changed(&f, t, "conn") == 2);
    fx_free(&f);
}

static void test_exact_to_empty(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite blank]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto =\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* an empty string, not NULL */
    CHECK_STR(fx_row(&f, t, "d\tprod_pg"), "d\t");
    CHECK(changed(&f, t, "blank") == 1);
    fx_free(&f);
}

static void test_substring_every_occurrence(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite hosts]\ncolumns = owl_check_repo.conn_url\nmatch = substring\n"
                     "from = prod-db\nto = qa-db\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_url:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\tjdbc:postgresql://prod-db1.example.com:5432/sales?sslmode=require"),
              "d\tjdbc:postgresql://qa-db1.example.com:5432/sales?sslmode=require");
    CHECK_STR(fx_row(&f, t, "d\tprod-db1,prod-db2,prod-dbprod-db"), "d\tqa-db1,qa-db2,qa-dbqa-db");
    CHECK_STR(fx_row(&f, t, "d\tprod-d"), "d\tprod-d");
    CHECK_STR(fx_row(&f, t, "d\t"), "d\t");
    /* a count of values changed, not of occurrences */
    CHECK(changed(&f, t, "hosts") == 2);
    fx_free(&f);
}

static void test_substring_overlapping_and_growing(void)
{
    fx f;
    rewrite_table *t;

    /* "aa" in "aaaaa": left to right, no overlap; "to" holding "from" does not loop */
    if (!fx_init(&f, "[rewrite aa]\ncolumns = owl_rule.rule_value\nmatch = substring\nfrom = aa\nto = aaXaa\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\taaaaa"), "d\taaXaaaaXaaa");
    CHECK(changed(&f, t, "aa") == 1);
    fx_free(&f);
}

static void test_substring_same_text_not_counted(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite same]\ncolumns = owl_rule.rule_value\nmatch = substring\nfrom = x\nto = x\n"
                     "[rewrite same_exact]\ncolumns = owl_rule.rule_nm\nfrom = x\nto = x\n"
                     "[rewrite same_regex]\ncolumns = owl_rule.dataset\nmatch = regex\nfrom = (x)\nto = \\1\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* a rule whose result equals the value changed nothing */
    CHECK_STR(fx_row(&f, t, "x\tx\txx"), "x\tx\txx");
    CHECK(changed(&f, t, "same") == 0);
    CHECK(changed(&f, t, "same_exact") == 0);
    CHECK(changed(&f, t, "same_regex") == 0);
    CHECK(covers(&f, t, "same") && covers(&f, t, "same_exact") && covers(&f, t, "same_regex"));
    fx_free(&f);
}

static void test_regex_groups(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite agents]\ncolumns = job_schedule.agent\nmatch = regex\n"
                     "from = ^prod-agent-([0-9]+)$\nto = qa-agent-\\1\n"
                     "[rewrite whole]\ncolumns = job_schedule.run_as\nmatch = regex\n"
                     "from = svc_[a-z]+_prod\nto = <\\0>\n"
                     "[rewrite swap]\ncolumns = job_schedule.cron\nmatch = regex\n"
                     "from = ([0-9]+) ([0-9]+)\nto = \\2 \\1\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "job_schedule", "dataset:text;cron:text;agent:text;run_as:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\t5 1 * * *\tprod-agent-2\tsvc_owl_prod"),
              "d\t1 5 * * *\tqa-agent-2\t<svc_owl_prod>");
    /* anchored: no partial match */
    CHECK_STR(fx_row(&f, t, "d\t* * * * *\tprod-agent-2b\tx svc_owl_prod y"),
              "d\t* * * * *\tprod-agent-2b\tx <svc_owl_prod> y");
    CHECK_STR(fx_row(&f, t, "d\t10 20 30 40\tprod-agent-123\tsvc_a_prod,svc_b_prod"),
              "d\t20 10 40 30\tqa-agent-123\t<svc_a_prod>,<svc_b_prod>");
    CHECK(changed(&f, t, "agents") == 2);
    CHECK(changed(&f, t, "whole") == 3);
    CHECK(changed(&f, t, "swap") == 2);
    fx_free(&f);
}

static void test_regex_every_match(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite digits]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = [0-9]+\nto = <\\0>\n"
                     "[rewrite caret]\ncolumns = owl_rule.rule_nm\nmatch = regex\nfrom = ^r\nto = R\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\trule_r\ta1b22c333d"), "d\tRule_r\ta<1>b<22>c<333>d");
    /* ^ matches only at the start of the value, not after an earlier match */
    CHECK_STR(fx_row(&f, t, "d\trrr\t42"), "d\tRrr\t<42>");
    CHECK_STR(fx_row(&f, t, "d\tx\tno digits"), "d\tx\tno digits");
    CHECK(changed(&f, t, "digits") == 2);
    CHECK(changed(&f, t, "caret") == 2);
    fx_free(&f);
}

static void test_regex_group_unmatched_and_backslash(void)
{
    fx f;
    rewrite_table *t;

    /* \2 of a group that did not take part is empty; \9 past the groups is
     * empty; \\ is one backslash; a backslash before anything else stays */
    if (!fx_init(&f, "[rewrite opt]\ncolumns = owl_rule.rule_value\nmatch = regex\n"
                     "from = a(x)?(y)?b\nto = [\\1|\\2|\\9]\\\\\\q\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(f.c->rewrites[0].to, "[\\1|\\2|\\9]\\\\\\q");
    /* value ab -> [||]\\q: "\\" in "to" is one backslash, escaped back as \\ */
    CHECK_STR(fx_row(&f, t, "d\tab ayb"), "d\t[||]\\\\\\\\q [|y|]\\\\\\\\q");
    fx_free(&f);
}

static void test_regex_empty_matches(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite star]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = x*\nto = -\n"
                     "[rewrite end]\ncolumns = owl_rule.rule_nm\nmatch = regex\nfrom = $\nto = !\n"
                     "[rewrite start]\ncolumns = owl_rule.dataset\nmatch = regex\nfrom = ^\nto = qa.\n"
                     "[rewrite empty]\ncolumns = owl_rule.filter_query\nmatch = regex\nfrom = ^$\nto = true\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text;filter_query:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* an empty match is replaced once where it is and the scan moves on */
    CHECK_STR(fx_row(&f, t, "ds\tr1\tabc\t"), "qa.ds\tr1!\t-a-b-c-\ttrue");
    CHECK_STR(fx_row(&f, t, "ds\trule_1\tab\tx"), "qa.ds\trule_1!\t-a-b-\tx");
    CHECK_STR(fx_row(&f, t, "\t\t\t"), "qa.\t!\t-\ttrue");
    CHECK(changed(&f, t, "star") == 3);
    CHECK(changed(&f, t, "end") == 3);
    CHECK(changed(&f, t, "start") == 3);
    CHECK(changed(&f, t, "empty") == 2);
    fx_free(&f);
}

static void test_regex_empty_match_after_match(void)
{
    fx f;
    rewrite_table *t;

    /* As sed has it: an empty match right after a match is no match, so ".*"
     * replaces a whole value once, and "x*" on "axxb" gives "-a-b-". */
    if (!fx_init(&f, "[rewrite all]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = .*\nto = <\\0>\n"
                     "[rewrite star]\ncolumns = owl_rule.rule_nm\nmatch = regex\nfrom = x*\nto = -\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\taxxb\tprod_pg"), "d\t-a-b-\t<prod_pg>");
    CHECK_STR(fx_row(&f, t, "d\txx\t"), "d\t-\t<>");
    CHECK_STR(fx_row(&f, t, "d\txaxx\tv"), "d\t-a-\t<v>");
    fx_free(&f);
}

static void test_regex_matches_in_one_pass(void)
{
    fx f;
    rewrite_table *t;
    size_t n = 4u * 1024 * 1024; /* matches: "1a" n times */
    char *row = malloc(4 + 2 * n + 1), *want = malloc(4 + 4 * n + 1);
    const char *out = NULL;
    size_t outlen = 0;

    /* Each match is found from where the last one ended: millions of matches
     * in one value cost one pass over it, not one pass each (which took
     * minutes). The byte before is context, as for sed's s///g: "\<" does not
     * match inside a word after a match. */
    if (row == NULL || want == NULL ||
        !fx_init(&f, "[rewrite digits]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = [0-9]\nto = <\\0>\n"
                     "[rewrite word]\ncolumns = owl_rule.rule_nm\nmatch = regex\nfrom = \\<a\nto = b\n")) {
        CHECK(0);
        free(row);
        free(want);
        fx_free(&f);
        return;
    }
    f.c->import.max_regex_value = 2 * n + 1; /* the default is 1M */
    if (!fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text")) == NULL) {
        CHECK(0);
        free(row);
        free(want);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\taa a\tx"), "d\tba b\tx");
    memcpy(row, "d\tx\t", 4);
    memcpy(want, "d\tx\t", 4);
    for (size_t i = 0; i < n; i++) {
        memcpy(row + 4 + 2 * i, "1a", 2);
        memcpy(want + 4 + 4 * i, "<1>a", 4);
    }
    CHECK(rewrite_row(t, row, 4 + 2 * n, 1, &out, &outlen, &f.err) == 0);
    CHECK(outlen == 4 + 4 * n && out != NULL && memcmp(out, want, outlen) == 0);
    CHECK(changed(&f, t, "digits") == 1);
    free(row);
    free(want);
    fx_free(&f);
}

/* A string of n bytes: the pieces, each repeated as asked ("x", 300, "aa", 1,
 * NULL), in a buffer the caller frees. */
static char *repeat(const char *piece, ...)
{
    va_list ap;
    size_t len = 0, n;
    char *s, *p;
    const char *q;

    va_start(ap, piece);
    for (q = piece; q != NULL; q = va_arg(ap, const char *)) {
        n = va_arg(ap, size_t);
        len += strlen(q) * n;
    }
    va_end(ap);
    s = malloc(len + 1);
    if (s == NULL)
        return NULL;
    p = s;
    va_start(ap, piece);
    for (q = piece; q != NULL; q = va_arg(ap, const char *)) {
        n = va_arg(ap, size_t);
        for (size_t i = 0; i < n; i++) {
            memcpy(p, q, strlen(q));
            p += strlen(q);
        }
    }
    va_end(ap);
    *p = '\0';
    return s;
}

static void test_regex_no_match_in_one_pass(void)
{
    fx f;
    rewrite_table *t;
    char *row, *want;

    /* "(.*)-prod" is tried from every start of a value it does not match, and
     * from each it scans to the end: 1 MB took half an hour. A first pass
     * asks whether it matches at all. What it finds is as before, context
     * ("\B": not at a word's edge) included. */
    if (!fx_init(&f, "[rewrite greedy]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = (.*)-prod\nto = \\1-qa\n"
                     "[rewrite hosts]\ncolumns = owl_rule.filter_query\nmatch = regex\nfrom = ([a-z]+)-prod([.]|$)\n"
                     "to = \\1-qa\\2\n"
                     "[rewrite inner]\ncolumns = owl_rule.rule_nm\nmatch = regex\nfrom = \\Ba\nto = Y\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text;filter_query:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    row = repeat("d\t", (size_t)1, "x", (size_t)300, "aa\t", (size_t)1, "a", (size_t)1024 * 1024, "\t", (size_t)1,
                 "db-prod.example ", (size_t)1000, "db-prodx db-prod", (size_t)1, NULL);
    want = repeat("d\t", (size_t)1, "x", (size_t)300, "YY\t", (size_t)1, "a", (size_t)1024 * 1024, "\t", (size_t)1,
                  "db-qa.example ", (size_t)1000, "db-prodx db-qa", (size_t)1, NULL);
    CHECK(row != NULL && want != NULL && fx_row(&f, t, row) != NULL);
    CHECK(f.out != NULL && want != NULL && strcmp(f.out, want) == 0);
    CHECK(changed(&f, t, "greedy") == 0);
    CHECK(changed(&f, t, "hosts") == 1);
    CHECK(changed(&f, t, "inner") == 1);
    free(row);
    free(want);
    /* one match at the end: found, from the value's start */
    row = repeat("d\tr\t", (size_t)1, "ab", (size_t)200000, "-prod\tq", (size_t)1, NULL);
    want = repeat("d\tr\t", (size_t)1, "ab", (size_t)200000, "-qa\tq", (size_t)1, NULL);
    CHECK(row != NULL && want != NULL && fx_row(&f, t, row) != NULL);
    CHECK(f.out != NULL && want != NULL && strcmp(f.out, want) == 0);
    CHECK(changed(&f, t, "greedy") == 1);
    free(row);
    free(want);
    fx_free(&f);
}

static void test_regex_long_values_as_short_ones(void)
{
    fx f;
    rewrite_table *t;
    char *row, *want;

    /* Values of many kilobytes are searched in parts (a first pass, then
     * calls over a bounded number of starts): what a rule finds is what one
     * regexec over the value finds, at every point of it. */
    if (!fx_init(&f, "[rewrite star]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = x*\nto = -\n"
                     "[rewrite ends]\ncolumns = owl_rule.rule_nm\nmatch = regex\nfrom = ^|$\nto = |\n"
                     "[rewrite groups]\ncolumns = owl_rule.filter_query\nmatch = regex\nfrom = ([0-9]+)-prod\n"
                     "to = \\1-qa\n"
                     "[rewrite dense]\ncolumns = owl_rule.dataset\nmatch = regex\nfrom = [^,]*-prod\nto = X\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text;filter_query:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    row = repeat("a", (size_t)3000, ",b-prod", (size_t)3, "\t", (size_t)1, "n", (size_t)9000, "\t", (size_t)1, "ab",
                 (size_t)6000, "\t", (size_t)1, "12-prod ", (size_t)20, "y", (size_t)5000, "345-prod", (size_t)1, NULL);
    want = repeat("a", (size_t)3000, ",X", (size_t)3, "\t|", (size_t)1, "n", (size_t)9000, "|\t", (size_t)1, "-a-b",
                  (size_t)6000, "-\t", (size_t)1, "12-qa ", (size_t)20, "y", (size_t)5000, "345-qa", (size_t)1, NULL);
    CHECK(row != NULL && want != NULL && fx_row(&f, t, row) != NULL);
    CHECK(f.out != NULL && want != NULL && strcmp(f.out, want) == 0);
    CHECK(changed(&f, t, "star") == 1 && changed(&f, t, "ends") == 1 && changed(&f, t, "groups") == 1 &&
          changed(&f, t, "dense") == 1);
    free(row);
    free(want);
    fx_free(&f);
}

static void test_regex_value_bound(void)
{
    fx f;
    rewrite_table *t;
    char *out = NULL;

    /* A regex rule takes values of at most max_regex_value bytes (default
     * 1M): glibc's regexec keeps some 8 bytes of state per byte it scans for
     * the groups. A longer value is an error that names the rule, table,
     * column and row, not a value left as it was. Other rules take any. */
    if (!fx_init(&f, "[rewrite grow]\ncolumns = owl_rule.rule_value\nmatch = substring\nfrom = !\nto = !!\n"
                     "[rewrite host]\ncolumns = owl_rule.rule_value, owl_rule.dataset\nmatch = regex\n"
                     "from = prod-([a-z]+)\nto = qa-\\1\n"
                     "[rewrite sub]\ncolumns = owl_rule.rule_nm\nmatch = substring\nfrom = x\nto = y\n")) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK(f.c->import.max_regex_value == 1024 * 1024);
    CHECK(f.c->import.max_regex_time == 10);
    f.c->import.max_regex_value = 16;
    if (!fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\txxxxxxxxxxxxxxxxxxxx\t012345-prod-db!"), "d\tyyyyyyyyyyyyyyyyyyyy\t012345-qa-db!!");
    CHECK(fx_row_n(&f, t, "d\tx\t0123456-prod-db!!", 4) == NULL);
    CHECK(f.err.code == OWL_EUSAGE);
    CHECK_STR(f.err.msg, "rewrite [rewrite host] on owl_rule.rule_value in row 4: the value is 19 bytes, more than "
                         "max_regex_value (16) lets a regex rule take\n"
                         "HINT: raise max_regex_value in [import] if values this long are expected");
    CHECK(fx_row_n(&f, t, "d\tx\t0123456789abcdefg", 5) == NULL);
    CHECK_CONTAINS(f.err.msg, "in row 5: the value is 17 bytes");
    err_clear(&f.err);
    CHECK(rewrite_value(t, "dataset", "public.prod-abcdefghij", &out, &f.err) < 0);
    CHECK_STR(f.err.msg, "rewrite [rewrite host] on owl_rule.dataset in the manifest's datasets: the value is 22 "
                         "bytes, more than max_regex_value (16) lets a regex rule take\n"
                         "HINT: raise max_regex_value in [import] if values this long are expected");
    free(out);
    fx_free(&f);
}

static void test_regex_time_bound(void)
{
    fx f;
    rewrite_table *t;
    char *row;
    const char *out = NULL;
    size_t outlen = 0;

    /* Some searches are quadratic whatever is done: here every start of a
     * run of letters scans on to the "_prodx" that fails it, and the match is
     * at the end (the first pass finds it). A regex rule works on one value
     * for at most max_regex_time (default 10 s); this would take minutes. */
    if (!fx_init(&f, "[rewrite hosts]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = ([a-z]+)_prod([.]|$)\n"
                     "to = \\1_qa\\2\n")) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    f.c->import.max_regex_time = 1;
    if (!fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\tdb_prod.example db_prodx db_prod"), "d\tdb_qa.example db_prodx db_qa");
    row = repeat("d\t", (size_t)1, "a", (size_t)512 * 1024, "_prodx b_prod", (size_t)1, NULL);
    CHECK(row != NULL && rewrite_row(t, row, strlen(row), 9, &out, &outlen, &f.err) < 0);
    CHECK(f.err.code == OWL_EUSAGE);
    CHECK_STR(f.err.msg, "rewrite [rewrite hosts] on owl_rule.rule_value in row 9: matching took more than "
                         "max_regex_time (1s)\n"
                         "HINT: a pattern such as (.*)-prod(.*) scans on from every start; anchor it (^, $), "
                         "narrow .* (to [^/]*, say), or raise max_regex_time in [import]");
    free(row);
    fx_free(&f);
}

/* ------------------------------------------------------------------ escapes */

static void test_copy_escapes_round_trip(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite p]\ncolumns = owl_rule.rule_value, owl_rule.filter_query\nmatch = substring\n"
                     "from = prod\nto = qa\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "owl_rule", "dataset:text;rule_value:text;filter_query:text;rule_nm:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* value "x<TAB>prod<NL>y\z<CR>": unescaped, matched, escaped back exactly */
    CHECK_STR(fx_row(&f, t, "d\tx\\tprod\\ny\\\\z\\r\tplain\tr"), "d\tx\\tqa\\ny\\\\z\\r\tplain\tr");
    CHECK(changed(&f, t, "p") == 1);
    /* a match across escapes: "pr\od" and "\x70\162od" are "prod" once unescaped */
    CHECK_STR(fx_row(&f, t, "d\tpr\\od\t\\x70\\162od\tr"), "d\tqa\tqa\tr");
    CHECK(changed(&f, t, "p") == 3);
    /* a field no rule changes keeps its raw bytes, even a non-canonical escape */
    CHECK_STR(fx_row(&f, t, "d\t\\x41\\101\t\\N\t\\x41prod"), "d\t\\x41\\101\t\\N\t\\x41prod");
    /* "\N" as data (escaped backslash) is a value; the rules see a backslash */
    CHECK_STR(fx_row(&f, t, "d\t\\\\Nprod\t\\\\.\tr"), "d\t\\\\Nqa\t\\\\.\tr");
    fx_free(&f);
}

static void test_from_with_backslash_quotes_unicode(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite win]\ncolumns = owl_check_repo.lib_path\nmatch = substring\n"
                     "from = C:\\owl\\\nto = /opt/owl/\n"
                     "[rewrite quotes]\ncolumns = owl_check_repo.cmd_line\nmatch = substring\n"
                     "from = -cxn \"prod_pg\" 'x'\nto = -cxn \"qa_pg\" 'y'\n"
                     "[rewrite uni]\ncolumns = owl_check_repo.agent_name\nmatch = substring\n"
                     "from = 日本\nto = 🦉é\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "owl_check_repo", "dataset:text;lib_path:text;cmd_line:text;agent_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(f.c->rewrites[0].from, "C:\\owl\\");
    /* value C:\owl\drivers\postgres, as COPY writes it */
    CHECK_STR(fx_row(&f, t, "d\tC:\\\\owl\\\\drivers\\\\postgres\t-q x -cxn \"prod_pg\" 'x' -v\tagent 日本 日本"),
              "d\t/opt/owl/drivers\\\\postgres\t-q x -cxn \"qa_pg\" 'y' -v\tagent 🦉é 🦉é");
    CHECK(changed(&f, t, "win") == 1);
    CHECK(changed(&f, t, "quotes") == 1);
    CHECK(changed(&f, t, "uni") == 1);
    /* unicode escaped as COPY octal bytes matches too: 日 is e6 97 a5 */
    CHECK_STR(fx_row(&f, t, "d\tx\ty\t\\346\\227\\245本"), "d\tx\ty\t🦉é");
    fx_free(&f);
}

static void test_to_with_backslash_and_quotes(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite bs]\ncolumns = owl_check_repo.lib_path\nfrom = /opt/owl\nto = D:\\owl\\lib\n"
                     "[rewrite q]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto = it's \"qa\" \\N\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;lib_path:text;conn_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* backslashes in the result are doubled, quotes are data; "\N" in a value
     * comes out as \\N, never as the NULL marker */
    CHECK_STR(fx_row(&f, t, "d\t/opt/owl\tprod_pg"), "d\tD:\\\\owl\\\\lib\tit's \"qa\" \\\\N");
    fx_free(&f);
}

static void test_from_to_with_tab_and_newline(void)
{
    fx f;
    rewrite_table *t;

    /* An INI line cannot hold a tab or a newline: set them in the loaded rules. */
    if (!fx_init(&f, "[rewrite ctl]\ncolumns = owl_rule.rule_value\nmatch = substring\nfrom = X\nto = Y\n"
                     "[rewrite ctl_exact]\ncolumns = owl_rule.rule_nm\nfrom = X\nto = Y\n"
                     "[rewrite ctl_regex]\ncolumns = owl_rule.filter_query\nmatch = regex\nfrom = X\nto = Y\n")) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    set_text(&f.c->rewrites[0].from, "a\tb\nc\\");
    set_text(&f.c->rewrites[0].to, "\r\n\t\"'é\\");
    set_text(&f.c->rewrites[1].from, "key\twith tab");
    set_text(&f.c->rewrites[1].to, "key\nwith newline");
    set_text(&f.c->rewrites[2].from, "([a-z]+)\t([a-z]+)");
    set_text(&f.c->rewrites[2].to, "\\2\n\\1");
    if (!fx_compile(&f) ||
        (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text;filter_query:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\tkey\\twith tab\t<a\\tb\\nc\\\\>\tone\\ttwo"),
              "d\tkey\\nwith newline\t<\\r\\n\\t\"'é\\\\>\ttwo\\none");
    CHECK(changed(&f, t, "ctl") == 1);
    CHECK(changed(&f, t, "ctl_exact") == 1);
    CHECK(changed(&f, t, "ctl_regex") == 1);
    /* the raw (escaped) text "a\tb" is not the value a<TAB>b's match */
    CHECK_STR(fx_row(&f, t, "d\tkey\\\\twith tab\ta\\\\tb\\\\nc\\\\\tone two"),
              "d\tkey\\\\twith tab\ta\\\\tb\\\\nc\\\\\tone two");
    CHECK(changed(&f, t, "ctl") == 1);
    fx_free(&f);
}

/* ------------------------------------------------------------------ NULL */

static void test_null_never_rewritten(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite all]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = .*\nto = X\n"
                     "[rewrite n]\ncolumns = owl_rule.rule_nm\nfrom = \\N\nto = was-backslash-n\n"
                     "[rewrite sub]\ncolumns = owl_rule.filter_query\nmatch = substring\nfrom = N\nto = M\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text;rule_value:text;filter_query:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\t\\N\t\\N\t\\N"), "d\t\\N\t\\N\t\\N");
    CHECK(changed(&f, t, "all") == 0);
    CHECK(changed(&f, t, "n") == 0);
    CHECK(changed(&f, t, "sub") == 0);
    /* the two characters \N as data are a value, and rules see them */
    CHECK_STR(fx_row(&f, t, "d\t\\\\N\tv\t\\\\N"), "d\twas-backslash-n\tX\t\\\\M");
    CHECK(changed(&f, t, "all") == 1);
    CHECK(changed(&f, t, "n") == 1);
    CHECK(changed(&f, t, "sub") == 1);
    fx_free(&f);
}

/* ------------------------------------------------------------------ order */

static void test_chained_rules_in_file_order(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite first]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto = stage_pg\n"
                     "[rewrite second]\ncolumns = owl_check_repo.conn_name\nmatch = substring\n"
                     "from = stage\nto = qa\n"
                     "[rewrite third]\ncolumns = owl_check_repo.conn_name\nmatch = regex\n"
                     "from = ^(qa)_(pg)$\nto = \\2-\\1\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\tprod_pg"), "d\tpg-qa");
    CHECK_STR(fx_row(&f, t, "d\tstage_pg"), "d\tpg-qa");
    CHECK_STR(fx_row(&f, t, "d\tstage_x"), "d\tqa_x");
    CHECK(changed(&f, t, "first") == 1);
    CHECK(changed(&f, t, "second") == 3);
    CHECK(changed(&f, t, "third") == 2);
    fx_free(&f);

    /* the same rules in the other order: each sees only what came before it */
    if (!fx_init(&f, "[rewrite third]\ncolumns = owl_check_repo.conn_name\nmatch = regex\n"
                     "from = ^(qa)_(pg)$\nto = \\2-\\1\n"
                     "[rewrite second]\ncolumns = owl_check_repo.conn_name\nmatch = substring\n"
                     "from = stage\nto = qa\n"
                     "[rewrite first]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto = stage_pg\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(rewrite_rule_name(f.s, 0), "third");
    CHECK_STR(fx_row(&f, t, "d\tprod_pg"), "d\tstage_pg");
    CHECK_STR(fx_row(&f, t, "d\tstage_pg"), "d\tqa_pg");
    CHECK(changed(&f, t, "first") == 1);
    CHECK(changed(&f, t, "second") == 1);
    CHECK(changed(&f, t, "third") == 0);
    fx_free(&f);
}

static void test_rule_undone_by_later_rule_counts_both(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite there]\ncolumns = owl_check_repo.conn_name\nfrom = a\nto = b\n"
                     "[rewrite back]\ncolumns = owl_check_repo.conn_name\nfrom = b\nto = a\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\ta"), "d\ta");
    CHECK(changed(&f, t, "there") == 1);
    CHECK(changed(&f, t, "back") == 1);
    fx_free(&f);
}

/* ------------------------------------------------------------------ scope */

static void test_table_column_specs(void)
{
    fx f;
    rewrite_table *t;
    const char *cols = "id:bigint;dataset:text;cron:character varying(20);agent:text;run_as:character(12);"
                       "tags:text[];params:jsonb;doc:json;n:integer;ok:boolean;ts:timestamp with time zone;"
                       "num:numeric(10,2);img:bytea;names:character varying[]";

    if (!fx_init(&f, "[rewrite star]\ncolumns = job_schedule.*\nmatch = regex\nfrom = 1\nto = 9\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "job_schedule", cols)) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* TABLE.* is every text-like column: text, varchar, char, their arrays,
     * json and jsonb; never bigint, integer, boolean, timestamps, numeric, bytea */
    CHECK_STR(fx_row(&f, t,
                     "1\tds1\t1 1 * * *\ta1\tsvc1\t{a1,b1}\t{\"k1\": 1}\t[1]\t11\tt\t2021-01-01 00:00:01+00\t1.10"
                     "\t\\\\x01\t{x1}"),
              "1\tds9\t9 9 * * *\ta9\tsvc9\t{a9,b9}\t{\"k9\": 9}\t[9]\t11\tt\t2021-01-01 00:00:01+00\t1.10"
              "\t\\\\x01\t{x9}");
    CHECK(changed(&f, t, "star") == 8);
    fx_free(&f);
}

static void test_star_column_spec(void)
{
    fx f;
    rewrite_table *a, *b;
    manifest *m2 = NULL;

    if (!fx_init(&f, "[rewrite tenant]\ncolumns = *.dataset\nmatch = substring\nfrom = public.\nto = qa.\n") ||
        !fx_compile(&f) || (a = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text")) == NULL ||
        (b = fx_table2(&f, &m2, "alert_cond", "alert_nm:text;dataset:text;recipients:text[]")) == NULL) {
        CHECK(0);
        manifest_free(m2);
        fx_free(&f);
        return;
    }
    CHECK(rewrite_table_active(a) && rewrite_table_active(b));
    CHECK_STR(fx_row(&f, a, "public.ds_1\tpublic.rule"), "qa.ds_1\tpublic.rule");
    CHECK_STR(fx_row(&f, b, "public.a\tpublic.ds_2\t{public.x}"), "public.a\tqa.ds_2\t{public.x}");
    CHECK(changed(&f, a, "tenant") == 1);
    CHECK(changed(&f, b, "tenant") == 1);
    /* a table without the column: not covered */
    rewrite_table_free(b);
    f.t[1] = NULL;
    f.nt = 1;
    manifest_free(m2);
    m2 = NULL;
    b = fx_table2(&f, &m2, "job_schedule", "ds:text;agent:text");
    CHECK(b != NULL);
    if (b != NULL) {
        CHECK(!rewrite_table_active(b));
        CHECK(!covers(&f, b, "tenant"));
        CHECK_STR(fx_row(&f, b, "public.ds_1\tpublic.a"), "public.ds_1\tpublic.a");
    }
    fx_free(&f);
    manifest_free(m2);
}

static void test_rule_scoped_to_one_table(void)
{
    fx f;
    rewrite_table *a, *b;
    manifest *m2 = NULL;

    if (!fx_init(&f, "[rewrite agent]\ncolumns = job_schedule.agent\nfrom = prod-agent-1\nto = qa-agent-1\n"
                     "[rewrite all]\ncolumns = owl_check_repo.*\nmatch = substring\nfrom = prod\nto = qa\n") ||
        !fx_compile(&f) || (a = fx_table(&f, "job_schedule", "dataset:text;agent:text;run_as:text")) == NULL ||
        (b = fx_table2(&f, &m2, "alert_cond", "dataset:text;agent:text;message:text")) == NULL) {
        CHECK(0);
        manifest_free(m2);
        fx_free(&f);
        return;
    }
    CHECK(rewrite_table_active(a));
    CHECK(covers(&f, a, "agent") && !covers(&f, a, "all"));
    /* alert_cond has a column called agent too; the rule names job_schedule only */
    CHECK(!rewrite_table_active(b));
    CHECK(!covers(&f, b, "agent") && !covers(&f, b, "all"));
    CHECK_STR(fx_row(&f, a, "prod\tprod-agent-1\tsvc_owl_prod"), "prod\tqa-agent-1\tsvc_owl_prod");
    CHECK_STR(fx_row(&f, b, "prod\tprod-agent-1\tprod"), "prod\tprod-agent-1\tprod");
    CHECK(changed(&f, a, "agent") == 1);
    CHECK(changed(&f, b, "agent") == 0);
    CHECK(changed(&f, a, "all") == 0);
    fx_free(&f);
    manifest_free(m2);
}

static void test_counts_and_covers(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite conn]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto = qa_pg\n"
                     "[rewrite hosts]\ncolumns = owl_check_repo.conn_url, owl_check_repo.cmd_line\n"
                     "match = substring\nfrom = prod-db\nto = qa-db\n"
                     "[rewrite stale]\ncolumns = owl_check_repo.conn_name\nfrom = nothing\nto = x\n"
                     "[rewrite elsewhere]\ncolumns = job_schedule.agent\nfrom = a\nto = b\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text;conn_url:text;cmd_line:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK(rewrite_rule_count(f.s) == 4);
    CHECK(covers(&f, t, "conn") && covers(&f, t, "hosts") && covers(&f, t, "stale"));
    CHECK(!covers(&f, t, "elsewhere"));
    for (int i = 1; i <= 10; i++) {
        char row[256];
        snprintf(row, sizeof(row), "public.ds_%d\t%s\tjdbc:postgresql://prod-db%d.example.com/x\t%s", i,
                 i % 10 == 0 ? "prod_pg_hist" : "prod_pg", i % 3 + 1, i % 2 ? "-h prod-db1 -h prod-db2" : "\\N");
        CHECK(fx_row_n(&f, t, row, (uint64_t)i) != NULL);
    }
    CHECK(changed(&f, t, "conn") == 9);
    /* values changed: 10 URLs and 5 command lines (two hosts in each count once) */
    CHECK(changed(&f, t, "hosts") == 15);
    CHECK(changed(&f, t, "stale") == 0);
    CHECK(changed(&f, t, "elsewhere") == 0);
    fx_free(&f);
}

/* ------------------------------------------------------------------ json */

static void test_jsonb_broken_is_an_error(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite env]\ncolumns = owl_check_repo.env_vars\nmatch = substring\nfrom = prod\nto = qa\n"
                     "[rewrite quote]\ncolumns = owl_check_repo.env_vars\nmatch = substring\n"
                     "from = \"ENV\"\nto = 'ENV'\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;env_vars:jsonb;conn_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* a rewrite that keeps the value valid JSON passes */
    CHECK_STR(fx_row_n(&f, t, "d\t{\"HOST\": \"prod-db1\", \"QUOTE\": \"\\\\\"\"}\tx", 1),
              "d\t{\"HOST\": \"qa-db1\", \"QUOTE\": \"\\\\\"\"}\tx");
    CHECK(changed(&f, t, "env") == 1);
    /* one that breaks it names the rule, table, column and row */
    CHECK(fx_row_n(&f, t, "d\t{\"ENV\": \"prod\"}\tx", 7) == NULL);
    CHECK(f.err.code == OWL_EUSAGE);
    CHECK_STR(f.err.msg,
              "rewrite [rewrite quote] breaks owl_check_repo.env_vars in row 7: the value is no longer valid JSON");
    fx_free(&f);
}

static void test_json_scalar_and_array_values(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite s]\ncolumns = alert_cond.params, alert_cond.doc\nmatch = regex\n"
                     "from = prod\nto = qa\n"
                     "[rewrite break]\ncolumns = alert_cond.doc\nmatch = exact\nfrom = \"qa\"\nto = qa\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "alert_cond", "dataset:text;params:jsonb;doc:json")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* JSON scalars and arrays are JSON documents too */
    CHECK_STR(fx_row(&f, t, "d\t\"prod\"\t[\"prod\", null, 1.5]"), "d\t\"qa\"\t[\"qa\", null, 1.5]");
    CHECK_STR(fx_row(&f, t, "d\tnull\t{\"a\": \"x prod é\\\\u00e9\"}"), "d\tnull\t{\"a\": \"x qa é\\\\u00e9\"}");
    /* a json column (not only jsonb) is checked: the string "prod" becomes the bare word qa */
    CHECK(fx_row_n(&f, t, "d\t1\t\"prod\"", 3) == NULL);
    CHECK_STR(f.err.msg, "rewrite [rewrite break] breaks alert_cond.doc in row 3: the value is no longer valid JSON");
    fx_free(&f);
}

static void test_json_checked_once_after_the_rules(void)
{
    fx f;
    rewrite_table *t;

    /* A json value is checked once, after all the rules, and only when one
     * changed it: what must be valid JSON is what is written. A rule that
     * breaks it is named even when a later one changes it again; one whose
     * break a later rule mends is no error. */
    if (!fx_init(&f, "[rewrite unquote]\ncolumns = alert_cond.params\nmatch = substring\nfrom = \"prod\"\nto = prod\n"
                     "[rewrite more]\ncolumns = alert_cond.params\nmatch = substring\nfrom = db\nto = DB\n"
                     "[rewrite mend]\ncolumns = alert_cond.doc\nmatch = regex\nfrom = ^prod$\nto = \"qa\"\n")) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* the second rule covers doc too */
    set_text(&f.c->rewrites[0].columns.v[0], "alert_cond.*");
    if (!fx_compile(&f) || (t = fx_table(&f, "alert_cond", "dataset:text;params:jsonb;doc:json")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\t{\"h\": \"db1\"}\t\"prod\""), "d\t{\"h\": \"DB1\"}\t\"qa\"");
    CHECK(fx_row_n(&f, t, "d\t{\"h\": \"prod\", \"db\": 1}\tnull", 6) == NULL);
    CHECK_STR(f.err.msg, "rewrite [rewrite unquote] breaks alert_cond.params in row 6: the value is no longer valid "
                         "JSON");
    /* a value jansson does not take as it came (here: deeper than it goes) is
     * not checked: the target judges it, as before */
    {
        char *row = repeat("d\t", (size_t)1, "[", (size_t)3000, "\"prod\"", (size_t)1, "]", (size_t)3000, "\tnull",
                           (size_t)1, NULL);
        CHECK(row != NULL && fx_row(&f, t, row) != NULL);
        free(row);
    }
    fx_free(&f);
}

static void test_json_values_bound(void)
{
    fx f;
    rewrite_table *t;
    char *row;

    /* jansson builds the whole tree of a value to check it, some 100 bytes a
     * JSON value: 1.4 GB and 18 s for this 22 MB one, parsed before and after
     * the rule. A value the rules changed that holds more than max_json_values
     * (default 1000000) is an error naming the rule, table, column and row,
     * found by counting, not parsing. */
    if (!fx_init(&f, "[rewrite env]\ncolumns = owl_check_repo.env_vars\nmatch = substring\nfrom = \"prod\"\n"
                     "to = \"qa\"\n")) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK(f.c->import.max_json_values == 1000000);
    if (!fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;env_vars:jsonb")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    row = repeat("d\t[", (size_t)1, "{\"a\":{}},", (size_t)2500000, "\"prod\"]", (size_t)1, NULL);
    CHECK(row != NULL && fx_row_n(&f, t, row, 12) == NULL);
    CHECK(f.err.code == OWL_EUSAGE);
    CHECK_STR(f.err.msg, "rewrite [rewrite env] on owl_check_repo.env_vars in row 12: the value holds more than "
                         "max_json_values (1000000) JSON values, more than owlsync checks after a rewrite\n"
                         "HINT: raise max_json_values in [import] if values this large are expected");
    free(row);
    /* the same value untouched by the rules is not checked at all */
    row = repeat("d\t[", (size_t)1, "{\"a\":{}},", (size_t)2500000, "\"dev\"]", (size_t)1, NULL);
    CHECK(row != NULL && fx_row(&f, t, row) != NULL);
    free(row);
    fx_free(&f);

    /* values and keys count (here 9: "{", ":", ",", ":", "[", ",", ",", ":"
     * and the first); what is inside strings does not */
    if (!fx_init(&f, "[rewrite env]\ncolumns = owl_check_repo.env_vars\nmatch = substring\nfrom = \"prod\"\n"
                     "to = \"qa\"\n")) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    f.c->import.max_json_values = 9;
    if (!fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;env_vars:jsonb")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\t{\"a\": \"prod\", \"b\": [1, 2], \"c\": \"[{,:\\\\\\\\\\\\\"\"}"),
              "d\t{\"a\": \"qa\", \"b\": [1, 2], \"c\": \"[{,:\\\\\\\\\\\\\"\"}");
    CHECK(fx_row_n(&f, t, "d\t{\"a\": \"prod\", \"b\": [1, 2, 3, 4, 5]}", 2) == NULL);
    CHECK_CONTAINS(f.err.msg, "in row 2: the value holds more than max_json_values (9) JSON values");
    fx_free(&f);
}

static void test_text_column_may_hold_anything(void)
{
    fx f;
    rewrite_table *t;

    /* Only json and jsonb values are checked: a text value may look like broken JSON. */
    if (!fx_init(&f, "[rewrite q]\ncolumns = owl_rule.rule_value\nmatch = substring\nfrom = \"\nto = {\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK_STR(fx_row(&f, t, "d\t{\"a\": 1}"), "d\t{{a{: 1}");
    fx_free(&f);
}

/* ------------------------------------------------------------------ values, rows */

static void test_rewrite_value_for_scope(void)
{
    fx f;
    rewrite_table *t;
    char *out = NULL;

    if (!fx_init(&f, "[rewrite tenant]\ncolumns = *.dataset\nmatch = regex\nfrom = ^public\\.\nto = qa_\n"
                     "[rewrite suffix]\ncolumns = owl_rule.dataset\nmatch = substring\nfrom = ds\nto = set\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_nm:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK(rewrite_value(t, "dataset", "public.ds_1", &out, &f.err) == 0);
    CHECK_STR(out, "qa_set_1");
    free(out);
    /* a quote, a tab: plain values, no COPY escaping either way */
    CHECK(rewrite_value(t, "dataset", "public.o'hara\tx\\", &out, &f.err) == 0);
    CHECK_STR(out, "qa_o'hara\tx\\");
    free(out);
    /* a column no rule names, and a column the table lacks: the value as it is */
    CHECK(rewrite_value(t, "rule_nm", "public.ds_1", &out, &f.err) == 0);
    CHECK_STR(out, "public.ds_1");
    free(out);
    CHECK(rewrite_value(t, "no_such_column", "public.ds_1", &out, &f.err) == 0);
    CHECK_STR(out, "public.ds_1");
    free(out);
    CHECK(rewrite_value(t, "dataset", "", &out, &f.err) == 0);
    CHECK_STR(out, "");
    free(out);
    /* not counted: counts are for the bundle's rows */
    CHECK(changed(&f, t, "tenant") == 0);
    CHECK(changed(&f, t, "suffix") == 0);
    /* the value and the row agree */
    CHECK_STR(fx_row(&f, t, "public.ds_1\tr"), "qa_set_1\tr");
    fx_free(&f);
}

static void test_wrong_field_count(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite conn]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto = qa_pg\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text;conn_url:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK(fx_row_n(&f, t, "d\tprod_pg", 5) == NULL);
    CHECK(f.err.code == OWL_EVERIFY);
    CHECK_STR(f.err.msg, "data/owl_check_repo.tsv row 5 has 2 fields, the manifest lists 3 columns");
    CHECK(fx_row_n(&f, t, "d\tprod_pg\tx\ty", 6) == NULL);
    CHECK(f.err.code == OWL_EVERIFY);
    CHECK_STR(f.err.msg, "data/owl_check_repo.tsv row 6 has 4 fields, the manifest lists 3 columns");
    CHECK(fx_row_n(&f, t, "d\tprod_pg\tx\ty\tz\tw", 8) == NULL);
    CHECK(f.err.code == OWL_EVERIFY);
    CHECK_CONTAINS(f.err.msg, "data/owl_check_repo.tsv row 8 has ");
    CHECK(fx_row_n(&f, t, "", 9) == NULL);
    CHECK_CONTAINS(f.err.msg, "row 9 has 1 fields");
    /* nothing was counted for the rows refused */
    CHECK(changed(&f, t, "conn") == 0);
    /* an escaped tab is not a field separator */
    CHECK_STR(fx_row(&f, t, "d\\tx\tprod_pg\tx"), "d\\tx\tqa_pg\tx");
    fx_free(&f);
}

static void test_bad_escape_is_an_error(void)
{
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite conn]\ncolumns = owl_check_repo.conn_name\nmatch = substring\nfrom = a\nto = b\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* a trailing lone backslash, and an escape for a NUL byte */
    CHECK(fx_row_n(&f, t, "d\tabc\\", 4) == NULL);
    CHECK(f.err.code == OWL_EVERIFY);
    CHECK_CONTAINS(f.err.msg, "data/owl_check_repo.tsv row 4 column conn_name");
    CHECK(fx_row_n(&f, t, "d\ta\\000", 5) == NULL);
    CHECK_CONTAINS(f.err.msg, "row 5 column conn_name");
    fx_free(&f);
}

static void test_no_applicable_rule(void)
{
    fx f;
    rewrite_table *t;
    const char *row = "public.ds_1\tprod_pg\t\\N\ta\\tb";

    if (!fx_init(&f, "[rewrite conn]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto = qa_pg\n") ||
        !fx_compile(&f) ||
        (t = fx_table(&f, "job_schedule", "dataset:text;conn_name:text;agent:text;cron:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK(!rewrite_table_active(t));
    CHECK(!covers(&f, t, "conn"));
    /* still safe to call: the row comes back as it is */
    CHECK_STR(fx_row(&f, t, row), row);
    CHECK(changed(&f, t, "conn") == 0);
    fx_free(&f);
}

static void test_no_rules_at_all(void)
{
    fx f;
    rewrite_table *t;
    char *out = NULL;

    if (!fx_init(&f, "") || !fx_compile(&f) ||
        (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    CHECK(rewrite_rule_count(f.s) == 0);
    CHECK(!rewrite_table_active(t));
    CHECK_STR(fx_row(&f, t, "d\tprod_pg"), "d\tprod_pg");
    CHECK(rewrite_value(t, "dataset", "public.ds_1", &out, &f.err) == 0);
    CHECK_STR(out, "public.ds_1");
    free(out);
    fx_free(&f);
}

static void test_buffers_reused_across_rows(void)
{
    fx f;
    rewrite_table *t;
    char big[1001];

    if (!fx_init(&f, "[rewrite grow]\ncolumns = owl_rule.rule_value\nmatch = substring\nfrom = a\nto = \\\\\\\\\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_value:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    /* "to" is four backslashes: each "a" grows to eight bytes of COPY text */
    memset(big, 'a', 1000);
    big[1000] = '\0';
    {
        char row[1100];
        const char *out;
        snprintf(row, sizeof(row), "d\t%s", big);
        out = fx_row(&f, t, row);
        CHECK(out != NULL);
        CHECK(f.outlen == 2 + 8000);
        CHECK(out != NULL && strspn(out + 2, "\\") == 8000);
    }
    /* a short row after a long one is not polluted by it */
    CHECK_STR(fx_row(&f, t, "d\tbab"), "d\tb\\\\\\\\\\\\\\\\b");
    CHECK_STR(fx_row(&f, t, "d\t"), "d\t");
    CHECK_STR(fx_row(&f, t, "d\tb"), "d\tb");
    fx_free(&f);
}

static void test_large_values_one_after_another(void)
{
    fx f;
    rewrite_table *t;
    size_t big = 33u * 1024 * 1024, next = 32u * 1024 * 1024;
    char *row = malloc(2 + big + 1);
    const char *out = NULL;
    size_t outlen = 0;

    /* Each value is under REWRITE_MAX_ROW; the two together are not: the bound
     * is on one row, not on what an earlier row left in the buffers. */
    if (row == NULL || !fx_init(&f, "[rewrite p]\ncolumns = owl_rule.rule_value\nmatch = substring\n"
                                    "from = prod\nto = qa\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_rule", "dataset:text;rule_value:text")) == NULL) {
        CHECK(0);
        free(row);
        fx_free(&f);
        return;
    }
    memcpy(row, "d\t", 2);
    memset(row + 2, 'x', big);
    CHECK(rewrite_row(t, row, 2 + big, 1, &out, &outlen, &f.err) == 0);
    CHECK(outlen == 2 + big);
    memcpy(row + 2, "prod", 4);
    CHECK(rewrite_row(t, row, 2 + next, 2, &out, &outlen, &f.err) == 0);
    CHECK(outlen == 2 + next - 2);
    CHECK(out != NULL && memcmp(out, "d\tqaxx", 6) == 0);
    CHECK(changed(&f, t, "p") == 1);
    free(row);
    fx_free(&f);
}

/* ------------------------------------------------------------------ config */

static void test_config_errors(void)
{
    cfg *c = NULL;
    owl_err err;
    char text[1024];

    /* an invalid regex is a config error naming the section */
    snprintf(text, sizeof(text),
             "%s[rewrite bad_re]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = ([a-\nto = x\n", cfg_head);
    err_clear(&err);
    CHECK(cfg_load_string("test.ini", text, &c, &err) < 0);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "[rewrite bad_re]");
    CHECK_CONTAINS(err.msg, "test.ini:");
    cfg_free(c);
    c = NULL;
    /* a column spec that names no configured table */
    snprintf(text, sizeof(text), "%s[rewrite nowhere]\ncolumns = no_such_table.x\nfrom = a\nto = b\n", cfg_head);
    err_clear(&err);
    CHECK(cfg_load_string("test.ini", text, &c, &err) < 0);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "[rewrite nowhere]");
    CHECK_CONTAINS(err.msg, "no_such_table");
    cfg_free(c);
    c = NULL;
    /* an unknown match kind */
    snprintf(text, sizeof(text), "%s[rewrite kind]\ncolumns = owl_rule.x\nmatch = glob\nfrom = a\nto = b\n", cfg_head);
    err_clear(&err);
    CHECK(cfg_load_string("test.ini", text, &c, &err) < 0);
    CHECK_CONTAINS(err.msg, "[rewrite kind]");
    cfg_free(c);
    c = NULL;
    /* a back-reference in from: a GNU extension whose matching time grows
     * exponentially ("(.*)(.*)\2\1-prod" takes minutes on a 1 KB value); in
     * to, \1 stays the group */
    snprintf(text, sizeof(text),
             "%s[rewrite twice]\ncolumns = owl_rule.x\nmatch = regex\nfrom = (.*)\\1-prod\nto = \\1\n", cfg_head);
    err_clear(&err);
    CHECK(cfg_load_string("test.ini", text, &c, &err) < 0);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_STR(err.msg, "test.ini:10: [rewrite twice] from: \"(.*)\\1-prod\" has a back-reference (\\1 to \\9), "
                       "which POSIX extended regexes do not have and whose matching time can grow exponentially");
    cfg_free(c);
    c = NULL;
    /* a substring rule may hold the same text: it is no regex */
    snprintf(text, sizeof(text), "%s[rewrite lit]\ncolumns = owl_rule.x\nmatch = substring\nfrom = (.*)\\1\nto = x\n",
             cfg_head);
    err_clear(&err);
    CHECK(cfg_load_string("test.ini", text, &c, &err) == 0);
    cfg_free(c);
}

static void test_compile_rejects_invalid_regex(void)
{
    fx f;

    /* the config checks regexes when it loads; rewrite_compile does again for
     * a cfg changed after loading */
    if (!fx_init(&f, "[rewrite later]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = x\nto = y\n")) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    set_text(&f.c->rewrites[0].from, "(unclosed");
    err_clear(&f.err);
    CHECK(rewrite_compile(f.c, &f.s, &f.err) < 0);
    CHECK(f.s == NULL);
    CHECK(f.err.code == OWL_EUSAGE);
    CHECK_CONTAINS(f.err.msg, "[rewrite later] from: invalid regex");
    fx_free(&f);

    if (!fx_init(&f, "[rewrite later]\ncolumns = owl_rule.rule_value\nmatch = regex\nfrom = x\nto = y\n")) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    set_text(&f.c->rewrites[0].from, "(a)\\1");
    err_clear(&f.err);
    CHECK(rewrite_compile(f.c, &f.s, &f.err) < 0);
    CHECK(f.s == NULL);
    CHECK(f.err.code == OWL_EUSAGE);
    CHECK_CONTAINS(f.err.msg, "[rewrite later] from: back-references are not supported");
    fx_free(&f);
}

/* ---- streams ---- */

typedef struct sink {
    char out[64 * 1024];
    size_t len;
    int batches;
} sink;

static int to_sink(void *ctx, const char *buf, size_t len, owl_err *err)
{
    sink *s = ctx;

    (void)err;
    if (s->len + len < sizeof(s->out)) {
        memcpy(s->out + s->len, buf, len);
        s->len += len;
        s->out[s->len] = '\0';
    }
    s->batches++;
    return 0;
}

/* Rows fed in chunks of any size come out rewritten, whole, in order; the
 * rules that changed something are named for a hint. */
static void test_stream(void)
{
    static const char in[] = "public.ds_1\tprod_pg\tx\npublic.ds_2\tother\ty\npublic.ds_3\tprod_pg\tz";
    static const char want[] = "public.ds_1\tqa_pg\tx\npublic.ds_2\tother\ty\npublic.ds_3\tqa_pg\tz\n";
    const size_t len = sizeof(in) - 1;
    char names[128];
    fx f;
    rewrite_table *t;

    if (!fx_init(&f, "[rewrite conn]\ncolumns = owl_check_repo.conn_name\nfrom = prod_pg\nto = qa_pg\n"
                     "[rewrite idle]\ncolumns = owl_check_repo.conn_name\nfrom = never\nto = seen\n") ||
        !fx_compile(&f) || (t = fx_table(&f, "owl_check_repo", "dataset:text;conn_name:text;note:text")) == NULL) {
        CHECK(0);
        fx_free(&f);
        return;
    }
    rewrite_table_changed_names(t, names, sizeof(names));
    CHECK_STR(names, "");
    for (size_t chunk = 1; chunk <= len; chunk++) {
        rewrite_stream *rs = NULL;
        sink out = {{0}, 0, 0};
        owl_err err = {0};
        int rc = rewrite_stream_new(t, "data/owl_check_repo.tsv", to_sink, &out, &rs, &err);

        for (size_t off = 0; off < len && rc == 0; off += chunk)
            rc = rewrite_stream_feed(rs, in + off, off + chunk <= len ? chunk : len - off, &err);
        if (rc == 0)
            rc = rewrite_stream_end(rs, &err);
        rewrite_stream_free(rs);
        if (rc != 0 || strcmp(out.out, want) != 0 || out.batches != 1) {
            printf("#   chunks of %zu: rc %d, %d batches, \"%s\": %s\n", chunk, rc, out.batches, out.out, err.msg);
            CHECK(0);
            break;
        }
    }
    rewrite_table_changed_names(t, names, sizeof(names));
    CHECK_STR(names, "[rewrite conn]");
    /* a row the rules refuse stops the stream with the row's number */
    {
        rewrite_stream *rs = NULL;
        sink out = {{0}, 0, 0};
        owl_err err = {0};
        CHECK(rewrite_stream_new(t, "data/owl_check_repo.tsv", to_sink, &out, &rs, &err) == 0);
        CHECK(rewrite_stream_feed(rs, "a\tb\tc\nonly two\tfields\n", 24, &err) == -1);
        CHECK_CONTAINS(err.msg, "data/owl_check_repo.tsv row 2 has 2 fields");
        rewrite_stream_free(rs);
    }
    fx_free(&f);
}

/* rewrite_bind: each TABLE.COLUMN and *.COLUMN names a column; a typo is an
 * error naming the rule, the entry and the nearest column; partial leaves
 * what other tables might bind undecided. */
static void test_bind_columns(void)
{
    static const char *const repo[] = {"dataset", "conn_name", "conn_url"};
    static const char *const sched[] = {"dataset", "agent", "run_as"};
    const rewrite_columns both[] = {{"owl_check_repo", repo, 3}, {"job_schedule", sched, 3}};
    fx f;

    if (!fx_init(&f, "[rewrite conn]\ncolumns = owl_check_repo.conn_name, *.agent, job_schedule.*\nfrom = a\nto = b\n")) {
        CHECK(0);
        return;
    }
    CHECK(rewrite_bind(f.c, both, 2, false, &f.err) == 0);
    /* *.agent is not in owl_check_repo: undecided with that table alone */
    CHECK(rewrite_bind(f.c, both, 1, true, &f.err) == 1);
    CHECK(rewrite_bind(f.c, both, 1, false, &f.err) == -1);
    CHECK(f.err.code == OWL_EUSAGE);
    CHECK_STR(f.err.msg, "test.ini:7: [rewrite conn] columns: *.agent matches no column of any configured table");
    fx_free(&f);

    if (!fx_init(&f, "[rewrite conn]\ncolumns = owl_check_repo.conn_nam\nfrom = a\nto = b\n")) {
        CHECK(0);
        return;
    }
    CHECK(rewrite_bind(f.c, both, 2, true, &f.err) == -1);
    CHECK_STR(f.err.msg, "test.ini:7: [rewrite conn] columns: owl_check_repo.conn_nam matches no column of table "
                         "owl_check_repo\nHINT: did you mean owl_check_repo.conn_name?");
    /* a table not among those given is left undecided */
    CHECK(rewrite_bind(f.c, &both[1], 1, true, &f.err) == 1);
    fx_free(&f);

    /* no obvious typo: no hint */
    if (!fx_init(&f, "[rewrite x]\ncolumns = *.zzzzzz\nfrom = a\nto = b\n")) {
        CHECK(0);
        return;
    }
    CHECK(rewrite_bind(f.c, both, 2, false, &f.err) == -1);
    CHECK_STR(f.err.msg, "test.ini:7: [rewrite x] columns: *.zzzzzz matches no column of any configured table");
    fx_free(&f);
}

int main(void)
{
    RUN(test_exact_whole_value);
    RUN(test_stream);
    RUN(test_exact_to_empty);
    RUN(test_substring_every_occurrence);
    RUN(test_substring_overlapping_and_growing);
    RUN(test_substring_same_text_not_counted);
    RUN(test_regex_groups);
    RUN(test_regex_every_match);
    RUN(test_regex_group_unmatched_and_backslash);
    RUN(test_regex_empty_matches);
    RUN(test_regex_empty_match_after_match);
    RUN(test_regex_matches_in_one_pass);
    RUN(test_regex_no_match_in_one_pass);
    RUN(test_regex_long_values_as_short_ones);
    RUN(test_regex_value_bound);
    RUN(test_regex_time_bound);
    RUN(test_copy_escapes_round_trip);
    RUN(test_from_with_backslash_quotes_unicode);
    RUN(test_to_with_backslash_and_quotes);
    RUN(test_from_to_with_tab_and_newline);
    RUN(test_null_never_rewritten);
    RUN(test_chained_rules_in_file_order);
    RUN(test_rule_undone_by_later_rule_counts_both);
    RUN(test_table_column_specs);
    RUN(test_bind_columns);
    RUN(test_star_column_spec);
    RUN(test_rule_scoped_to_one_table);
    RUN(test_counts_and_covers);
    RUN(test_jsonb_broken_is_an_error);
    RUN(test_json_scalar_and_array_values);
    RUN(test_json_checked_once_after_the_rules);
    RUN(test_json_values_bound);
    RUN(test_text_column_may_hold_anything);
    RUN(test_rewrite_value_for_scope);
    RUN(test_wrong_field_count);
    RUN(test_bad_escape_is_an_error);
    RUN(test_no_applicable_rule);
    RUN(test_no_rules_at_all);
    RUN(test_buffers_reused_across_rows);
    RUN(test_large_values_one_after_another);
    RUN(test_config_errors);
    RUN(test_compile_rejects_invalid_regex);
    return UNIT_DONE();
}
