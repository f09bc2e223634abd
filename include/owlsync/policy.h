/* owlsync policy: what a target refuses on the verified manifest alone, before
 * the database is touched (exit 4): an expired bundle, one meant for other
 * environments, one that carries a table the target does not allow. Pure. */
#ifndef OWLSYNC_POLICY_H
#define OWLSYNC_POLICY_H

#include <stdint.h>

#include "owlsync/config.h"
#include "owlsync/error.h"
#include "owlsync/manifest.h"

/* Checks m against c's policy at time now (microseconds since the epoch);
 * OWL_EPOLICY with the reason when refused. */
int policy_check(const cfg *c, const manifest *m, int64_t now, owl_err *err);

#endif
