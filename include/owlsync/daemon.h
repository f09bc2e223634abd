/* owlsync daemon: runs the scheduled export jobs and watches the import inbox,
 * in the foreground, until SIGTERM or SIGINT; SIGHUP reloads the config. */
#ifndef OWLSYNC_DAEMON_H
#define OWLSYNC_DAEMON_H

#include "owlsync/error.h"

/* Runs until asked to stop; returns 0 after a clean stop, -1 when it cannot
 * start (config, inbox, schedules). */
int daemon_run(const char *config_path, owl_err *err);

#endif
