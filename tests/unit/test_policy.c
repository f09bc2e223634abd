/* Unit tests for agent/policy.c: the refusals a target makes on a verified
 * manifest before it touches its database (exit 4). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "owlsync/policy.h"
#include "unit.h"

#define NOW INT64_C(1800000000000000)

static cfg *load(const char *text)
{
    cfg *c = NULL;
    owl_err err = {0};

    if (cfg_load_string("t.ini", text, &c, &err) < 0)
        printf("#   %s\n", err.msg);
    CHECK(c != NULL);
    return c;
}

static manifest *bundle(const char *table)
{
    manifest *m = manifest_new();

    CHECK(m != NULL && manifest_add_table(m, table, "dataset") != NULL);
    if (m != NULL)
        m->expires_at = NOW + 1;
    return m;
}

static void refused(const cfg *c, const manifest *m, int64_t now, const char *want)
{
    owl_err err = {0};

    CHECK(policy_check(c, m, now, &err) == -1);
    CHECK(err.code == OWL_EPOLICY);
    CHECK_CONTAINS(err.msg, want);
}

static void test_expiry(void)
{
    cfg *c = load("[owlsync]\nenvironment = qa\n[table owl_rule]\n");
    manifest *m = bundle("owl_rule");
    owl_err err = {0};

    if (c == NULL || m == NULL)
        return;
    CHECK(policy_check(c, m, NOW, &err) == 0);
    CHECK(policy_check(c, m, NOW + 1, &err) == 0);
    refused(c, m, NOW + 2, "bundle expired at 2027-01-15T08:00:00.000001Z");
    manifest_free(m);
    cfg_free(c);
}

static void test_targets(void)
{
    cfg *c = load("[owlsync]\nenvironment = qa\n[table owl_rule]\n");
    manifest *m = bundle("owl_rule");
    owl_err err = {0};

    if (c == NULL || m == NULL)
        return;
    CHECK(manifest_add_target(m, "uat") == 0);
    refused(c, m, NOW, "bundle is meant for uat, not for this environment (qa)");
    CHECK(manifest_add_target(m, "prod") == 0);
    refused(c, m, NOW, "bundle is meant for uat and others, not for this environment (qa)");
    CHECK(manifest_add_target(m, "qa") == 0);
    CHECK(policy_check(c, m, NOW, &err) == 0);
    manifest_free(m);
    cfg_free(c);
}

static void test_tables(void)
{
    cfg *c = load("[owlsync]\nenvironment = qa\n[table owl_rule]\n[table job_schedule]\n");
    cfg *only = load("[owlsync]\nenvironment = qa\n[table owl_rule]\n[table job_schedule]\n"
                     "[import]\ntables = job_schedule\n");
    manifest *m = bundle("owl_rule"), *other = bundle("alert_cond");
    owl_err err = {0};

    if (c == NULL || only == NULL || m == NULL || other == NULL)
        return;
    CHECK(policy_check(c, m, NOW, &err) == 0);
    refused(c, other, NOW, "bundle carries table alert_cond, which this environment does not allow");
    /* [import] tables narrows what the [table] sections allow */
    refused(only, m, NOW, "bundle carries table owl_rule");
    manifest_free(m);
    manifest_free(other);
    cfg_free(c);
    cfg_free(only);
}

int main(void)
{
    RUN(test_expiry);
    RUN(test_targets);
    RUN(test_tables);
    return UNIT_DONE();
}
