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
    if (m->ntargets > 0) {
        bool named = false;
        for (size_t i = 0; i < m->ntargets && !named; i++)
            named = strcmp(m->targets[i], c->environment) == 0;
        if (!named)
            return err_set(err, OWL_EPOLICY, "bundle is meant for %s%s, not for this environment (%s)", m->targets[0],
                           m->ntargets > 1 ? " and others" : "", c->environment);
    }
    for (size_t i = 0; i < m->ntables; i++) {
        const char *t = m->tables[i].name;
        bool allowed = c->import.tables.n > 0 ? cfg_list_has(&c->import.tables, t) : cfg_find_table(c, t) != NULL;
        if (!allowed)
            return err_set(err, OWL_EPOLICY, "bundle carries table %s, which this environment does not allow\nHINT: [import] tables and the [table] sections list what may be imported", t);
    }
    return 0;
}
