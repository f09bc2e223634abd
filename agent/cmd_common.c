/* owlsync command scaffold: option parsing and usage, error reporting, the
 * begin and end log lines, config loading, trusted keys and bundle limits,
 * shared by every command. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "owlsync/cmd.h"
#include "owlsync/log.h"
#include "owlsync/manifest.h"
#include "owlsync/text.h"

#define MAX_OPTS 16

/* main's context, where a -c FILE after the command goes */
static cmd_ctx *global_ctx;

void cmd_set_context(cmd_ctx *ctx)
{
    global_ctx = ctx;
}

int cmd_parse(const cmd_def *def, int argc, char **argv, cmd_opt_fn fn, void *ctx, char ***args, int *nargs,
              owl_err *err)
{
    struct option opts[MAX_OPTS + 3];
    char shortopts[64];
    size_t n = 0;
    int opt;

    for (; def->longopts != NULL && def->longopts[n].name != NULL && n < MAX_OPTS; n++)
        opts[n] = def->longopts[n];
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[n++] = (struct option){"config", required_argument, NULL, 'c'};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    snprintf(shortopts, sizeof(shortopts), ":%shc:", def->shortopts != NULL ? def->shortopts : "");
    optind = 0; /* 0, not 1: glibc then reads the ordering of this optstring afresh (permuting:
                 * options after operands count), not that of main's "+" */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(def->usage, stdout);
            return 1;
        }
        if (opt == '?' || opt == ':')
            return err_set(err, OWL_EUSAGE, "%s %s\nHINT: owlsync %s --help",
                           opt == ':' ? "option needs an argument:" : "bad option", argv[optind - 1], def->name);
        if (opt == 'c') {
            if (global_ctx != NULL) {
                global_ctx->config_path = optarg;
                global_ctx->config_given = true;
            }
            continue;
        }
        if (fn != NULL && fn(ctx, opt, optarg, err) < 0)
            return -1;
    }
    *args = argv + optind;
    *nargs = argc - optind;
    if (*nargs < def->min_args || *nargs > def->max_args)
        return err_set(err, OWL_EUSAGE, "%s takes %s\nHINT: owlsync %s --help", def->name, def->operands, def->name);
    return 0;
}

int cmd_report(const char *command, const owl_err *err)
{
    char text[sizeof(err->msg) + 64];

    snprintf(text, sizeof(text), "owlsync %s: %s", command, err->msg[0] ? err->msg : "failed");
    log_final(text);
    return err->code != 0 ? err->code : OWL_ERUNTIME;
}

void cmd_log_begin(const char *command, const cfg *c, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    log_info("%s begin: %s, config %s", command, what, c->path);
}

void cmd_log_end(const char *command, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    log_info("%s end: %s", command, what);
}

int cmd_load_config(const cmd_ctx *ctx, cfg **out, owl_err *err)
{
    if (cfg_load(ctx->config_path, out, err) < 0)
        return -1;
    log_set_level((log_level)(*out)->log_level);
    log_set_format((log_format)(*out)->log_format);
    return 0;
}

int cmd_load_trust(const cfg *c, keys_trust *trust, owl_err *err)
{
    for (size_t i = 0; i < c->import.ntrusted; i++) {
        const cfg_trusted_key *k = &c->import.trusted[i];
        if (keys_trust_add(trust, k->environment, k->key, err) < 0)
            return err_prefix(err, "%s:%d: [import] trusted_key", c->path, k->line);
    }
    for (size_t i = 0; i < c->import.decrypt_key.n; i++) {
        if (keys_trust_add_decrypt(trust, c->import.decrypt_key.v[i], err) < 0)
            return err_prefix(err, "%s: [import] decrypt_key", c->path);
    }
    return 0;
}

int cmd_export_job(const cfg *c, const char *name, const char *adhoc, exporter_job *job, owl_err *err)
{
    static const cfg_list none = {NULL, 0};
    const cfg_export *ex = NULL;

    if (name != NULL) {
        ex = cfg_find_export(c, name);
        if (ex == NULL)
            return err_set(err, OWL_EUSAGE, "no [export %s] section in %s", name, c->path);
    } else if (c->nexports > 0) {
        ex = &c->exports[0];
    }
    if (ex != NULL) {
        exporter_job_init(job, ex);
    } else {
        memset(job, 0, sizeof(*job));
        job->compression = BUNDLE_ZSTD;
        job->compression_level = 3;
        job->valid_for = 7 * 86400;
        job->parallel = 1;
        job->bundle_mode = CFG_DEFAULT_FILE_MODE;
        job->remember = true;
    }
    if (name == NULL) {
        /* ad hoc: what the person asked for, nothing of a job's own */
        job->name = adhoc;
        job->tables = &none;
        job->targets = &none;
        job->skip_unchanged = false;
        job->outboxes = ex != NULL ? &ex->outbox : &none;
    }
    return 0;
}

void cmd_print_names(char *const *v, size_t n, bool all, const char *none_text, const char *hint)
{
    size_t shown = all || n <= CMD_NAMES_SHOWN ? n : CMD_NAMES_SHOWN;

    if (n == 0) {
        fputs(none_text, stdout);
        return;
    }
    for (size_t i = 0; i < shown; i++) {
        char clean[4 * MANIFEST_TEXT_MAX + 8];
        /* a dataset name may hold any character: none reaches the terminal raw */
        printf("%s%s", i ? ", " : "", text_clean(v[i], MANIFEST_TEXT_MAX, clean, sizeof(clean)));
    }
    if (shown < n) {
        char count[TEXT_COUNT_MAX];
        printf(", … and %s more%s%s%s", text_count((uint64_t)(n - shown), count, sizeof(count)), hint ? " (" : "",
               hint ? hint : "", hint ? ")" : "");
    }
}

void cmd_limits(const cfg *c, bundle_limits *lim)
{
    lim->max_bundle_size = c != NULL ? c->import.max_bundle_size : CFG_DEFAULT_MAX_BUNDLE_SIZE;
    lim->max_unpacked_size = c != NULL ? c->import.max_unpacked_size : CFG_DEFAULT_MAX_UNPACKED_SIZE;
}

void cmd_print_json(json_t *root)
{
    char *text = root != NULL ? json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(2)) : NULL;

    printf("%s\n", text != NULL ? text : "{}");
    free(text);
    json_decref(root);
}

void cmd_print_json_error(const char *key, const char *value, const owl_err *err)
{
    json_t *root = json_object();

    json_object_set_new(root, key, json_string(value));
    json_object_set_new(root, "status", json_string("failed"));
    json_object_set_new(root, "exit_code", json_integer(err->code != 0 ? err->code : OWL_ERUNTIME));
    json_object_set_new(root, "error", json_string(err->msg[0] ? err->msg : "failed"));
    cmd_print_json(root);
}
