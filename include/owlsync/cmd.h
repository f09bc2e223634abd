/* owlsync commands: one function per command of DESIGN.md 3.1, one command per
 * file (agent/cmd_NAME.c), called by main with the command's own arguments,
 * and the scaffold they share: options and usage, config and trusted keys,
 * the begin and end log lines, the one-line error report. Each returns the
 * process exit code. */
#ifndef OWLSYNC_CMD_H
#define OWLSYNC_CMD_H

#include <getopt.h>
#include <stdbool.h>

#include <jansson.h>

#include "owlsync/bundle.h"
#include "owlsync/config.h"
#include "owlsync/error.h"
#include "owlsync/exporter.h"
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
int cmd_retry(int argc, char **argv, const cmd_ctx *ctx);
int cmd_check(int argc, char **argv, const cmd_ctx *ctx);
int cmd_convert(int argc, char **argv, const cmd_ctx *ctx);

/* owlsync --version: prints the version, the source's git description and the
 * versions of the libraries in use on stdout. */
int cmd_version(void);

/* A command's face: its name, --help text, and options. */
typedef struct cmd_def {
    const char *name;
    const char *usage;              /* printed by --help; its first line after a usage error */
    const char *shortopts;          /* getopt letters of its options (h is added) */
    const struct option *longopts;  /* ends with {0}; --help is added */
    int min_args, max_args;         /* operands after the options */
    const char *operands;           /* what they are, for a message: "one BUNDLE", "no arguments" */
} cmd_def;

/* Receives each option (its getopt value and argument); -1 with err refuses it. */
typedef int (*cmd_opt_fn)(void *ctx, int opt, const char *arg, owl_err *err);

/* Parses argv (argv[0] is the command's name) by def, handing each option to
 * fn (NULL for a command without options); -c FILE is the global option,
 * taken into the registered context. Returns 0 with *args and *nargs the operands; 1 when --help asked for
 * the usage (printed on stdout); -1 (OWL_EUSAGE, with a hint) on an unknown
 * option, a missing argument or a wrong number of operands. */
int cmd_parse(const cmd_def *def, int argc, char **argv, cmd_opt_fn fn, void *ctx, char ***args, int *nargs,
              owl_err *err);

/* Registers main's context: cmd_parse stores a -c FILE (--config FILE) given
 * after the command in it, as if given before. */
void cmd_set_context(cmd_ctx *ctx);

/* Prints "owlsync COMMAND: MESSAGE" on stderr and returns err->code. */
int cmd_report(const char *command, const owl_err *err);

/* Logs "COMMAND begin: WHAT, config PATH" (info). */
void cmd_log_begin(const char *command, const cfg *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Logs "COMMAND end: WHAT" (info). */
void cmd_log_end(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Loads the config named by ctx, logging at its level. */
int cmd_load_config(const cmd_ctx *ctx, cfg **out, owl_err *err);

/* Fills trust from [import] trusted_key lines (errors name the config line)
 * and decrypt_key files. */
int cmd_load_trust(const cfg *c, keys_trust *trust, owl_err *err);

/* The job an export or convert runs: the [export NAME] section, or without
 * a name an ad hoc job called adhoc that takes the first [export] section's
 * key, outboxes and bundle settings (defaults when there is none) but none
 * of its datasets' tables, targets or skip_unchanged. Callers then apply
 * their options. */
int cmd_export_job(const cfg *c, const char *name, const char *adhoc, exporter_job *job, owl_err *err);

#define CMD_NAMES_SHOWN 10 /* names of a long list that text output shows */

/* Prints n names on stdout joined by ", " (untrusted text, cleaned), or
 * none_text when there are none: all of them when all, else the first
 * CMD_NAMES_SHOWN and then "… and N more (HINT)", so that a line stays short
 * however many there are. --json output is where the whole list goes. */
void cmd_print_names(char *const *v, size_t n, bool all, const char *none_text, const char *hint);

/* Bundle limits from [import], or the defaults when c is NULL. */
void cmd_limits(const cfg *c, bundle_limits *lim);

/* Prints root as indented JSON (keys in their order) and a newline on
 * stdout, then releases it. */
void cmd_print_json(json_t *root);

/* A --json command that failed before it had a report: one object on stdout
 * (for a script that reads only stdout), {KEY: value, "status": "failed",
 * "exit_code": N, "error": MESSAGE}; cmd_report says it on stderr as well. */
void cmd_print_json_error(const char *key, const char *value, const owl_err *err);

#endif
