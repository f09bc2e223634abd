/* owlsync keys: Ed25519 key pairs, signatures and BLAKE2b hashing (libsodium).
 * Secret keys live in sodium_malloc memory and are wiped when freed. */
#ifndef OWLSYNC_KEYS_H
#define OWLSYNC_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "owlsync/error.h"

#define KEYS_TOKEN_PREFIX "owlsync-ed25519:"
#define KEYS_PK_BYTES 32
#define KEYS_SIG_BYTES 64
#define KEYS_ID_HEX_LEN 16      /* 8 bytes of BLAKE2b-256(pk) in hex */
#define KEYS_TOKEN_MAX 80       /* prefix + base64 of 32 bytes + NUL, rounded up */
#define KEYS_HASH_BYTES 32      /* BLAKE2b-256 */
#define KEYS_HASH_HEX_LEN 64
#define KEYS_SIGFILE_MAX 256    /* bound on a manifest.sig entry */

typedef struct keys_public {
    unsigned char pk[KEYS_PK_BYTES];
    char id[KEYS_ID_HEX_LEN + 1];   /* key id, lowercase hex */
    char token[KEYS_TOKEN_MAX];     /* "owlsync-ed25519:BASE64" */
} keys_public;

typedef struct keys_secret keys_secret; /* opaque; sodium_malloc'd */

/* Makes a new key pair: writes path (secret, mode 0600) and path.pub (the public
 * token on one line), refusing to overwrite either. Fills *pub. */
int keys_generate(const char *path, keys_public *pub, owl_err *err);

/* Loads a secret key file. Refuses a file that group or others can access, as ssh
 * does. *out is owned by the caller: free with keys_secret_free. */
int keys_load_secret(const char *path, keys_secret **out, owl_err *err);

/* Wipes and frees; NULL is a no-op. */
void keys_secret_free(keys_secret *sk);

/* The public half of a secret key. */
void keys_secret_public(const keys_secret *sk, keys_public *pub);

/* Parses an "owlsync-ed25519:BASE64" token (OWL_EUSAGE on error). */
int keys_parse_public(const char *token, keys_public *pub, owl_err *err);

/* Parses a token, or when text does not start with the token prefix, reads the
 * .pub file it names (first line). */
int keys_load_public(const char *text, keys_public *pub, owl_err *err);

/* Signs msg and formats the signature entry "owlsync-ed25519-sig KEYID BASE64\n"
 * into out (at least KEYS_SIGFILE_MAX bytes); sets *outlen. The signature is
 * checked against the public key before returning. */
int keys_sign(const keys_secret *sk, const unsigned char *msg, size_t len, char *out,
              size_t *outlen, owl_err *err);

/* Reads the key id out of a signature entry (strictly formatted), into
 * id (KEYS_ID_HEX_LEN + 1 bytes). OWL_EVERIFY when malformed. */
int keys_sig_key_id(const char *sig, size_t siglen, char *id, owl_err *err);

/* Verifies a signature entry over msg with pub; OWL_EVERIFY when it does not hold
 * (wrong key id, bad signature, malformed entry). */
int keys_verify(const keys_public *pub, const unsigned char *msg, size_t len,
                const char *sig, size_t siglen, owl_err *err);

/* A list of trusted public keys, each bound to the environment it may sign for. */
typedef struct keys_trusted {
    char *environment;
    keys_public key;
} keys_trusted;

typedef struct keys_trust {
    keys_trusted *v;
    size_t n;
} keys_trust;

/* Adds a key (token or .pub path) for environment ("" = any environment, for
 * keys given by hand to verify); OWL_EUSAGE on a bad key. */
int keys_trust_add(keys_trust *t, const char *environment, const char *key_text, owl_err *err);

/* The first entry with this key id, or NULL. */
const keys_trusted *keys_trust_find(const keys_trust *t, const char *id);

void keys_trust_free(keys_trust *t);

/* Streaming BLAKE2b-256. */
typedef struct keys_hash keys_hash;

keys_hash *keys_hash_new(void);
void keys_hash_update(keys_hash *h, const void *buf, size_t len);
/* Writes the lowercase hex digest (KEYS_HASH_HEX_LEN + 1 bytes) and resets h. */
void keys_hash_final(keys_hash *h, char *hex);
void keys_hash_free(keys_hash *h);

/* A row's 128-bit digest (SipHash-2-4 under a fixed, public key), for telling
 * whether an export's rows changed since the last one: fast on short rows,
 * and no security boundary (bundles are checked with BLAKE2b and Ed25519). */
#define KEYS_ROW_DIGEST_LEN 16
void keys_row_digest(const void *buf, size_t len, unsigned char out[KEYS_ROW_DIGEST_LEN]);

/* Fills hex (2 * nbytes + 1) with nbytes of cryptographic randomness in hex. */
int keys_random_hex(char *hex, size_t nbytes);

/* Must be called once before any other function of this module. */
int keys_init(owl_err *err);

/* The version of the libsodium this process runs with; a static string. */
const char *keys_lib_version(void);

#endif
