/* owlsync policy: the refusals a target makes on a verified manifest before it
 * connects to its database. */
#include <string.h>

#include "owlsync/policy.h"
#include "owlsync/text.h"

int policy_check(const cfg *c, const manifest *m, int64_t now, owl_err *err)
{
    char when[TEXT_UTC_MAX];

    if (now > m->expires_at)
        return err_set(err, OWL_EPOLICY, "bundle expired at %s", text_utc(m->expires_at, TEXT_UTC_MICROS, when, sizeof(when)));
    /* A bundle from the future would hold back every later one of its
     * datasets for as long: its source's clock is wrong. */
    {
        int64_t ahead = (m->created_at > m->snapshot_at ? m->created_at : m->snapshot_at) - now;
        if (ahead > c->import.max_clock_skew * 1000000)
            return err_set(err, OWL_EPOLICY,
                           "bundle was made at %s, %lld s ahead of this host's clock (max_clock_skew is %lld s)\nHINT: check the clocks of the source database and of the exporting host",
                           text_utc(m->created_at > m->snapshot_at ? m->created_at : m->snapshot_at, TEXT_UTC_MICROS,
                                    when, sizeof(when)),
                           (long long)(ahead / 1000000), (long long)c->import.max_clock_skew);
    }
    if (m->ntargets > 0) {
        bool named = false;
        for (size_t i = 0; i < m->ntargets && !named; i++)
            named = strcmp(m->targets[i], c->environment) == 0;
        if (!named)
            return err_set(err, OWL_EPOLICY, "bundle is meant for %s%s, not for this environment (%s)", m->targets[0],
                           m->ntargets > 1 ? " and others" : "", c->environment);
    }
    for (size_t i = 0; i < m->ntables; i++) {
        const manifest_table *mt = &m->tables[i];
        const cfg_table *ct = cfg_find_table(c, mt->name);
        bool allowed = ct != NULL && (c->import.tables.n == 0 || cfg_list_has(&c->import.tables, mt->name));
        if (!allowed)
            return err_set(err, OWL_EPOLICY, "bundle carries table %s, which this environment does not allow\nHINT: [import] tables and the [table] sections list what may be imported", mt->name);
        /* The target decides which rows a bundle speaks for: its dataset column. */
        if (strcmp(mt->dataset_column, ct->dataset_column) != 0)
            return err_set(err, OWL_EPOLICY,
                           "bundle table %s is scoped by dataset column \"%s\", but this environment's [table %s] says \"%s\"\nHINT: both sides' [table] sections must agree on dataset_column",
                           mt->name, mt->dataset_column, mt->name, ct->dataset_column);
        for (size_t j = 0; j < mt->ncolumns; j++) {
            /* A reference carries the source's values of a column the target
             * assigns itself, never written: it must be one. */
            if (mt->columns[j].ref && !cfg_list_has(&ct->generated, mt->columns[j].name))
                return err_set(err, OWL_EPOLICY,
                               "bundle table %s carries column %s as a reference, but this environment's [table %s] does not list it as generated\nHINT: both sides list the columns each database assigns itself under generated",
                               mt->name, mt->columns[j].name, mt->name);
            if (!mt->columns[j].ref && cfg_list_has(&ct->generated, mt->columns[j].name))
                return err_set(err, OWL_EPOLICY,
                               "bundle table %s carries column %s, which this environment's [table %s] lists as generated\nHINT: the source lists it under generated too, so that it does not travel",
                               mt->name, mt->columns[j].name, mt->name);
        }
    }
    return 0;
}
