/* owlsync keygen: makes an Ed25519 signing key pair (or with --encryption an
 * X25519 encryption key pair), the secret half mode 0600, and prints the public
 * key token that other environments list (trusted_key, encrypt_to). */
#include <stdbool.h>
#include <stdio.h>

#include "owlsync/cmd.h"

static const char keygen_usage[] =
    "usage: owlsync keygen [--encryption] -o PATH\n"
    "\n"
    "Makes an Ed25519 key pair for signing bundles: PATH holds the secret key\n"
    "(mode 0600) and PATH.pub the public key. Neither is ever overwritten.\n"
    "Prints the public key token and its key id; give the token to each target\n"
    "environment as `trusted_key = ENVIRONMENT TOKEN` in its [import] section.\n"
    "\n"
    "With --encryption (-e), makes an X25519 key pair for receiving encrypted\n"
    "bundles instead: the target keeps PATH as `decrypt_key = PATH` in its\n"
    "[import] section, and each exporting environment lists the public token as\n"
    "`encrypt_to = ENVIRONMENT TOKEN` in its [export] jobs. An encryption key\n"
    "never signs, and a signing key never decrypts.\n";

static const struct option keygen_opts[] = {
    {"output", required_argument, NULL, 'o'}, {"encryption", no_argument, NULL, 'e'}, {NULL, 0, NULL, 0}};
static const cmd_def keygen_def = {"keygen", keygen_usage, "o:e", keygen_opts, 0, 0, "[--encryption] -o PATH and nothing else"};

typedef struct keygen_args {
    const char *path;
    bool encryption;
} keygen_args;

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    keygen_args *a = ctx;

    (void)err;
    if (opt == 'o')
        a->path = arg;
    else if (opt == 'e')
        a->encryption = true;
    return 0;
}

int cmd_keygen(int argc, char **argv, const cmd_ctx *ctx)
{
    keygen_args a = {NULL, false};
    keys_public pub;
    keys_box_public bpub;
    char **args;
    int nargs, rc;
    owl_err err;

    (void)ctx;
    rc = cmd_parse(&keygen_def, argc, argv, on_opt, &a, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("keygen", &err);
    if (a.path == NULL) {
        err_set(&err, OWL_EUSAGE, "keygen takes [--encryption] -o PATH and nothing else\nHINT: owlsync keygen --help");
        return cmd_report("keygen", &err);
    }
    if (a.encryption) {
        if (keys_box_generate(a.path, &bpub, &err) < 0)
            return cmd_report("keygen", &err);
        printf("%s\n", bpub.token);
        fprintf(stderr, "owlsync keygen: wrote %s (encryption secret key, mode 0600) and %s.pub; key id %s\n", a.path,
                a.path, bpub.id);
        return 0;
    }
    if (keys_generate(a.path, &pub, &err) < 0)
        return cmd_report("keygen", &err);
    printf("%s\n", pub.token);
    fprintf(stderr, "owlsync keygen: wrote %s (secret, mode 0600) and %s.pub; key id %s\n", a.path, a.path, pub.id);
    return 0;
}
