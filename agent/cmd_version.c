/* owlsync --version: the release, the source it was built from, and the
 * libraries this process runs with (for bug reports and upgrade checks). */
#include <stdio.h>

#include "owlsync/bundle.h"
#include "owlsync/cmd.h"
#include "owlsync/config.h"
#include "owlsync/db.h"
#include "owlsync/keys.h"
#include "owlsync/manifest.h"
#include "owlsync/version.h"

int cmd_version(void)
{
    char libpq[64];

    db_lib_version(libpq, sizeof(libpq));
    /* the first line stays "owlsync X.Y.Z": scripts compare it */
    printf("owlsync %s\n", OWLSYNC_VERSION);
    printf("commit %s\n", OWLSYNC_COMMIT);
    printf("%s\n", libpq);
    printf("%s\n", bundle_lib_version());
    printf("libsodium %s\n", keys_lib_version());
    printf("jansson %s\n", manifest_lib_version());
    printf("inih r%s (built with; inih cannot tell at run time)\n", config_lib_version());
    return fflush(stdout) == 0 ? 0 : OWL_ERUNTIME;
}
