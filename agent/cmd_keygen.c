/* owlsync keygen: makes an Ed25519 key pair, the secret half mode 0600, and prints
 * the public key token that target environments list as trusted_key. */
#include <stdio.h>

#include "owlsync/cmd.h"

static const char keygen_usage[] =
    "usage: owlsync keygen -o PATH\n"
    "\n"
    "Makes an Ed25519 key pair for signing bundles: PATH holds the secret key\n"
    "(mode 0600) and PATH.pub the public key. Neither is ever overwritten.\n"
    "Prints the public key token and its key id; give the token to each target\n"
    "environment as `trusted_key = ENVIRONMENT TOKEN` in its [import] section.\n";

static const struct option keygen_opts[] = {{"output", required_argument, NULL, 'o'}, {NULL, 0, NULL, 0}};
static const cmd_def keygen_def = {"keygen", keygen_usage, "o:", keygen_opts, 0, 0, "-o PATH and nothing else"};

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    (void)err;
    if (opt == 'o')
        *(const char **)ctx = arg;
    return 0;
}

int cmd_keygen(int argc, char **argv, const cmd_ctx *ctx)
{
    const char *path = NULL;
    keys_public pub;
    char **args;
    int nargs, rc;
    owl_err err;

    (void)ctx;
    rc = cmd_parse(&keygen_def, argc, argv, on_opt, &path, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("keygen", &err);
    if (path == NULL) {
        err_set(&err, OWL_EUSAGE, "keygen takes -o PATH and nothing else\nHINT: owlsync keygen --help");
        return cmd_report("keygen", &err);
    }
    if (keys_generate(path, &pub, &err) < 0)
        return cmd_report("keygen", &err);
    printf("%s\n", pub.token);
    fprintf(stderr, "owlsync keygen: wrote %s (secret, mode 0600) and %s.pub; key id %s\n", path, path, pub.id);
    return 0;
}
