/* fuzzkey: writes the fixed test key of the fuzz harnesses (fuzz.h) as an
 * owlsync key pair, PATH (secret, 0600) and PATH.pub, loads it back through
 * agent/keys.c, and prints its public token. tests/fuzz/make-corpus.sh signs
 * the seed corpus's bundles with it, so that the bundle harnesses can verify
 * them with the key they hold.
 *
 * usage: fuzzkey PATH */
#include "fuzz.h"

int main(int argc, char **argv)
{
    keys_secret *sk = NULL;
    keys_public pk;
    owl_err err;

    if (argc != 2) {
        fprintf(stderr, "usage: fuzzkey PATH\n");
        return 2;
    }
    err_clear(&err);
    if (keys_init(&err) < 0 || fuzz_write_key(argv[1]) < 0) {
        fprintf(stderr, "fuzzkey: cannot write %s (or %s.pub): %s\n", argv[1], argv[1],
                err.msg[0] != '\0' ? err.msg : strerror(errno));
        return 1;
    }
    if (keys_load_secret(argv[1], &sk, &err) < 0) {
        fprintf(stderr, "fuzzkey: %s\n", err.msg);
        return 1;
    }
    keys_secret_public(sk, &pk);
    keys_secret_free(sk);
    printf("%s\n", pk.token);
    return 0;
}
