/* owlsync keygen: makes an Ed25519 key pair, the secret half mode 0600, and prints
 * the public key token that target environments list as trusted_key. */
#include <getopt.h>
#include <stdio.h>

#include "owlsync/cmd.h"

static const char keygen_usage[] =
    "usage: owlsync keygen -o PATH\n"
    "\n"
    "Makes an Ed25519 key pair for signing bundles: PATH holds the secret key\n"
    "(mode 0600) and PATH.pub the public key. Neither is ever overwritten.\n"
    "Prints the public key token and its key id; give the token to each target\n"
    "environment as `trusted_key = ENVIRONMENT TOKEN` in its [import] section.\n";

int cmd_keygen(int argc, char **argv, const cmd_ctx *ctx)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    keys_public pub;
    owl_err err;
    int opt;

    while ((opt = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            path = optarg;
            break;
        case 'h':
            fputs(keygen_usage, stdout);
            return 0;
        default:
            err_set(&err, OWL_EUSAGE, "bad option %s\nHINT: owlsync keygen --help", argv[optind - 1]);
            return cmd_report("keygen", &err);
        }
    }
    if (path == NULL || optind != argc) {
        err_set(&err, OWL_EUSAGE, "keygen takes -o PATH and nothing else\nHINT: owlsync keygen --help");
        return cmd_report("keygen", &err);
    }
    if (keys_generate(path, &pub, &err) < 0)
        return cmd_report("keygen", &err);
    printf("%s\n", pub.token);
    fprintf(stderr, "owlsync keygen: wrote %s (secret, mode 0600) and %s.pub; key id %s\n", path, path, pub.id);
    return 0;
}
