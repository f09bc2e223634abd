/* owlsync verify: checks a bundle completely (signature, key binding, every
 * hash, limits, layout), as an import would before writing anything. */
#include <stdio.h>
#include <unistd.h>

#include "owlsync/cmd.h"

static const char verify_usage[] =
    "usage: owlsync [-c FILE] verify [-k PUBFILE] [-K KEYFILE] BUNDLE\n"
    "\n"
    "Checks a bundle as an import would before writing anything: the archive's\n"
    "format and layout, the size limits, the Ed25519 signature of its manifest,\n"
    "that the signing key is trusted for the bundle's environment, and the BLAKE2b\n"
    "hash of every data entry. Trusted keys come from -k (a .pub file or an\n"
    "owlsync-ed25519: token; any environment) or from the config's [import]\n"
    "trusted_key lines. An encrypted bundle is decrypted with -K (an encryption\n"
    "secret key file, mode 0600) or the config's [import] decrypt_key lines; one\n"
    "made for other keys fails, naming the key ids it was made for.\n"
    "Exit 0 when it holds, 3 (with the reason) when it does not.\n";

static const struct option verify_opts[] = {
    {"key", required_argument, NULL, 'k'}, {"decrypt-key", required_argument, NULL, 'K'}, {NULL, 0, NULL, 0}};
static const cmd_def verify_def = {"verify", verify_usage, "k:K:", verify_opts, 1, 1, "one BUNDLE"};

typedef struct verify_args {
    const char *key;
    const char *decrypt_key;
} verify_args;

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    verify_args *a = ctx;

    (void)err;
    if (opt == 'k')
        a->key = arg;
    else if (opt == 'K')
        a->decrypt_key = arg;
    return 0;
}

int cmd_verify(int argc, char **argv, const cmd_ctx *ctx)
{
    verify_args a = {NULL, NULL};
    const char *keyarg, *path, *dec;
    keys_trust trust = {NULL, 0, NULL, 0};
    bundle_reader *r = NULL;
    bundle_limits lim;
    const manifest *m;
    cfg *c = NULL;
    owl_err err;
    uint64_t rows = 0;
    char **args;
    int nargs, rc;

    rc = cmd_parse(&verify_def, argc, argv, on_opt, &a, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("verify", &err);
    keyarg = a.key;
    path = args[0];
    rc = -1;
    /* The config is read when it was named, or when no key was given and the
     * default one exists. */
    if ((ctx->config_given || (keyarg == NULL && access(ctx->config_path, F_OK) == 0)) &&
        cmd_load_config(ctx, &c, &err) < 0)
        goto out;
    if (keyarg != NULL) {
        /* A key given by hand is trusted for whatever environment it signed for. */
        keys_public pub;
        if (keys_load_public(keyarg, &pub, &err) < 0 || keys_trust_add(&trust, "", pub.token, &err) < 0)
            goto out;
    } else if (c != NULL && cmd_load_trust(c, &trust, &err) < 0) {
        goto out;
    }
    if (keyarg != NULL && c != NULL) {
        /* -k replaces the trusted keys, not the config's decryption keys */
        for (size_t i = 0; i < c->import.decrypt_key.n; i++) {
            if (keys_trust_add_decrypt(&trust, c->import.decrypt_key.v[i], &err) < 0) {
                err_prefix(&err, "%s: [import] decrypt_key", c->path);
                goto out;
            }
        }
    }
    if (a.decrypt_key != NULL && keys_trust_add_decrypt(&trust, a.decrypt_key, &err) < 0)
        goto out;
    if (trust.n == 0) {
        err_set(&err, OWL_EUSAGE, "no trusted key to verify with\nHINT: give -k PUBFILE, or a config whose [import] section has trusted_key lines");
        goto out;
    }
    cmd_limits(c, &lim);
    if (bundle_open(path, &lim, &trust, &r, &err) < 0 || bundle_verify_rest(r, &err) < 0) {
        err_prefix(&err, "%s", path);
        goto out;
    }
    m = bundle_manifest(r);
    for (size_t i = 0; i < m->ntables; i++)
        rows += m->tables[i].rows;
    dec = bundle_decrypted_with(r);
    printf("%s: ok, %s%s%ssigned by key %s for environment %s; %zu tables, %llu rows\n", path,
           dec != NULL ? "encrypted (opened with key " : "", dec != NULL ? dec : "", dec != NULL ? "), " : "",
           bundle_signer(r)->key.id, m->environment, m->ntables, (unsigned long long)rows);
    rc = 0;
out:
    bundle_close(r);
    keys_trust_free(&trust);
    cfg_free(c);
    return rc < 0 ? cmd_report("verify", &err) : 0;
}
