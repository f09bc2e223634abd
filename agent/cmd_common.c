/* owlsync command helpers shared by every command: error reporting, config
 * loading, the trusted-key list and bundle limits. */
#include <stdio.h>
#include <string.h>

#include "owlsync/cmd.h"
#include "owlsync/log.h"

int cmd_report(const char *command, const owl_err *err)
{
    fprintf(stderr, "owlsync %s: %s\n", command, err->msg[0] ? err->msg : "failed");
    return err->code != 0 ? err->code : OWL_ERUNTIME;
}

int cmd_load_config(const cmd_ctx *ctx, cfg **out, owl_err *err)
{
    if (cfg_load(ctx->config_path, out, err) < 0)
        return -1;
    log_set_level((log_level)(*out)->log_level);
    return 0;
}

int cmd_load_trust(const cfg *c, keys_trust *trust, owl_err *err)
{
    for (size_t i = 0; i < c->import.ntrusted; i++) {
        const cfg_trusted_key *k = &c->import.trusted[i];
        if (keys_trust_add(trust, k->environment, k->key, err) < 0)
            return err_prefix(err, "%s:%d: [import] trusted_key", c->path, k->line);
    }
    return 0;
}

void cmd_limits(const cfg *c, bundle_limits *lim)
{
    uint64_t bundle = 1ULL << 30, unpacked = 8ULL << 30;

    if (c != NULL && c->import.present) {
        bundle = c->import.max_bundle_size;
        unpacked = c->import.max_unpacked_size;
    }
    lim->max_bundle_size = bundle;
    lim->max_unpacked_size = unpacked;
}

bool cmd_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}
