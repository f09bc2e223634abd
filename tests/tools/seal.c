/* seal: encrypts any file, a bundle or a hostile one, into an encrypted
 * bundle (format version 2) for the given encryption public keys, as an
 * export job with encrypt_to does: so that tests can check that what a
 * plaintext bundle is refused for, its encrypted copy is refused for too.
 *
 * usage: seal IN OUT PUBKEY...   (PUBKEY: an owlsync-x25519: token or .pub file) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "owlsync/envelope.h"
#include "owlsync/keys.h"

int main(int argc, char **argv)
{
    keys_box_public pub[ENVELOPE_MAX_RECIPIENTS + 1];
    size_t n = 0;
    owl_err err;
    int in, out;

    if (argc < 4 || argc - 3 > ENVELOPE_MAX_RECIPIENTS + 1) {
        fprintf(stderr, "usage: seal IN OUT PUBKEY...\n");
        return 2;
    }
    if (keys_init(&err) < 0) {
        fprintf(stderr, "seal: %s\n", err.msg);
        return 1;
    }
    for (int i = 3; i < argc; i++) {
        if (keys_box_load_public(argv[i], &pub[n++], &err) < 0) {
            fprintf(stderr, "seal: %s\n", err.msg);
            return 1;
        }
    }
    in = open(argv[1], O_RDONLY | O_CLOEXEC);
    out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in < 0 || out < 0) {
        perror("seal");
        return 1;
    }
    if (envelope_encrypt_fd(in, out, pub, n, &err) < 0) {
        fprintf(stderr, "seal: %s\n", err.msg);
        return 1;
    }
    close(in);
    return close(out) < 0 ? 1 : 0;
}
