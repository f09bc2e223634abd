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
        {"alert_output", "alert_cond"},
        {"alert_cond", "owl_catalog"},
        {"owl_rule", "owl_catalog"},
        {"owl_rule", "not_in_the_bundle"},
    };
    bool acyclic = false;

    CHECK_STR(ordered(names, 4, fks, 4, &acyclic), "owl_catalog owl_rule alert_cond alert_output");
    CHECK(acyclic);
    /* without foreign keys the order is kept */
    CHECK_STR(ordered(names, 4, NULL, 0, &acyclic), "alert_output owl_rule alert_cond owl_catalog");
    CHECK(acyclic);
}

static void test_cycle(void)
{
    const char *names[] = {"a", "b", "c", "d"};
    catalog_fk fks[] = {{"a", "b"}, {"b", "a"}, {"c", "d"}};
    bool acyclic = true;

    /* d, then c; a and b wait for each other and follow in their own order */
    CHECK_STR(ordered(names, 4, fks, 3, &acyclic), "d c a b");
    CHECK(!acyclic);
}

int main(void)
{
    RUN(test_parents_first);
    RUN(test_cycle);
    return UNIT_DONE();
}
