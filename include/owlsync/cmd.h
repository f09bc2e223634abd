/* owlsync commands: one function per command of DESIGN.md 3.1, called by main with
 * the command's own arguments. Each returns the process exit code. */
#ifndef OWLSYNC_CMD_H
#define OWLSYNC_CMD_H

#include <stdbool.h>

#include "owlsync/bundle.h"
#include "owlsync/config.h"
#include "owlsync/error.h"
#include "owlsync/keys.h"

typedef struct cmd_ctx {
    const char *config_path; /* -c, else $OWLSYNC_CONFIG, else the default path */
    bool config_given;       /* -c or $OWLSYNC_CONFIG named it */
} cmd_ctx;

#define CMD_DEFAULT_CONFIG "/etc/owlsync/owlsync.ini"

int cmd_keygen(int argc, char **argv, const cmd_ctx *ctx);
int cmd_verify(int argc, char **argv, const cmd_ctx *ctx);
int cmd_inspect(int argc, char **argv, const cmd_ctx *ctx);
int cmd_export(int argc, char **argv, const cmd_ctx *ctx);
int cmd_import(int argc, char **argv, const cmd_ctx *ctx);
int cmd_daemon(int argc, char **argv, const cmd_ctx *ctx);
int cmd_status(int argc, char **argv, const cmd_ctx *ctx);
int cmd_check(int argc, char **argv, const cmd_ctx *ctx);

/* Prints "owlsync COMMAND: MESSAGE" on stderr and returns err->code. */
int cmd_report(const char *command, const owl_err *err);

/* Loads the config named by ctx, logging at its level. */
int cmd_load_config(const cmd_ctx *ctx, cfg **out, owl_err *err);

/* Fills trust from [import] trusted_key lines; errors name the config line. */
int cmd_load_trust(const cfg *c, keys_trust *trust, owl_err *err);

/* Bundle limits from [import], or the defaults when c is NULL. */
void cmd_limits(const cfg *c, bundle_limits *lim);

/* Whether s asks for help (-h or --help). */
bool cmd_wants_help(int argc, char **argv);

#endif
