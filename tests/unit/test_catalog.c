/* Unit tests for the pure part of agent/catalog.c: the order in which tables
 * are applied, parents before the children that reference them. */
#include <stdio.h>
#include <string.h>

#include "owlsync/catalog.h"
#include "unit.h"

/* The order as the names joined by spaces. */
static const char *ordered(const char *const *names, size_t n, const catalog_fk *fks, size_t nfks, bool *acyclic)
{
    static char out[256];
    size_t order[16], len = 0;

    *acyclic = catalog_parents_first(names, n, fks, nfks, order);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", i ? " " : "", names[order[i]]);
    return out;
}

static void test_parents_first(void)
{
    const char *names[] = {"alert_output", "owl_rule", "alert_cond", "owl_catalog"};
    catalog_fk fks[] = {
        {.child = "alert_output", .parent = "alert_cond"},
        {.child = "alert_cond", .parent = "owl_catalog"},
        {.child = "owl_rule", .parent = "owl_catalog"},
        {.child = "owl_rule", .parent = "not_in_the_bundle"},
        {.child = "owl_rule", .parent = "owl_rule"}, /* a table referencing itself waits for no one */
    };
    bool acyclic = false;

    CHECK_STR(ordered(names, 4, fks, 5, &acyclic), "owl_catalog owl_rule alert_cond alert_output");
    CHECK(acyclic);
    /* without foreign keys the order is kept */
    CHECK_STR(ordered(names, 4, NULL, 0, &acyclic), "alert_output owl_rule alert_cond owl_catalog");
    CHECK(acyclic);
}

static void test_cycle(void)
{
    const char *names[] = {"a", "b", "c", "d"};
    catalog_fk fks[] = {{.child = "a", .parent = "b"}, {.child = "b", .parent = "a"}, {.child = "c", .parent = "d"}};
    bool acyclic = true;

    /* d, then c; a and b wait for each other and follow in their own order */
    CHECK_STR(ordered(names, 4, fks, 3, &acyclic), "d c a b");
    CHECK(!acyclic);
}

static void narrower(const char *s, const char *t, const char *want)
{
    const char *got = catalog_narrower(s, t);

    if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0) {
        printf("#   %s -> %s: \"%s\", want \"%s\"\n", s, t, got ? got : "(none)", want ? want : "(none)");
        CHECK(0);
    }
}

static void test_narrower(void)
{
    /* what holds every value */
    narrower("integer", "bigint", NULL);
    narrower("real", "double precision", NULL);
    narrower("numeric(10,2)", "numeric(12,4)", NULL);
    narrower("numeric(10,2)", "numeric", NULL);
    narrower("character varying(10)", "text", NULL);
    narrower("character varying(10)", "character varying(10)", NULL);
    narrower("timestamp without time zone", "timestamp with time zone", NULL);
    narrower("text", "jsonb", NULL);
    narrower("integer[]", "bigint[]", NULL);
    narrower("public.mood", "public.mood", NULL);
    /* what does not */
    narrower("bigint", "integer", "may not fit (a smaller integer)");
    narrower("integer[]", "smallint[]", "may not fit (a smaller integer)");
    narrower("double precision", "real", "are rounded (fewer significant digits)");
    narrower("bigint", "double precision", "are rounded (fewer significant digits)");
    narrower("numeric", "numeric(10,2)", "are rounded (a smaller scale)");
    narrower("numeric(10,4)", "numeric(10,2)", "are rounded (a smaller scale)");
    narrower("numeric(12,2)", "numeric(10,2)", "may not fit (a smaller precision)");
    narrower("double precision", "numeric(30,10)", "are rounded (a smaller scale)");
    narrower("numeric(5,2)", "integer", "are rounded to whole numbers");
    narrower("bigint", "numeric(10,0)", "may not fit (a smaller precision)");
    narrower("text", "character varying(5)", "may be too long (a shorter character type)");
    narrower("character(10)", "character(5)", "may be too long (a shorter character type)");
    narrower("timestamp with time zone", "timestamp without time zone", "lose their time zone (timestamp without time zone)");
    narrower("timestamp(6) without time zone", "timestamp(3) without time zone", "are rounded (fewer fractional digits)");
    narrower("timestamp with time zone", "date", "lose their time of day (date)");
    narrower("time with time zone", "time without time zone", "lose their offset (time without time zone)");
    /* an array and a scalar: not owlsync's to judge */
    narrower("integer[]", "integer", NULL);
}

int main(void)
{
    RUN(test_narrower);
    RUN(test_parents_first);
    RUN(test_cycle);
    return UNIT_DONE();
}
