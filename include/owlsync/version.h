/* owlsync version: the release number comes from the VERSION file and the
 * source's git description from git or a release tarball's COMMIT file, both
 * written by the Makefile into BUILD/version_gen.h. */
#ifndef OWLSYNC_VERSION_H
#define OWLSYNC_VERSION_H

#include "version_gen.h" /* OWLSYNC_VERSION "X.Y.Z", OWLSYNC_COMMIT (git describe, or "unknown") */

#endif
