/* owlsync keys: Ed25519 key pairs and signatures, X25519 encryption key pairs
 * and the encryption of bundles to them, BLAKE2b hashing (libsodium). Secret
 * keys live in sodium_malloc memory and are wiped when freed. */
#ifndef OWLSYNC_KEYS_H
#define OWLSYNC_KEYS_H

#include <stdbool.h>
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

typedef struct keys_box_secret keys_box_secret; /* an X25519 secret key; see below */

/* A target's keys: the public keys it trusts to sign, and the secret keys it
 * decrypts bundles with (none: encrypted bundles cannot be opened). */
typedef struct keys_trust {
    keys_trusted *v;
    size_t n;
    keys_box_secret **dec;
    size_t ndec;
} keys_trust;

/* Adds a key (token or .pub path) for environment ("" = any environment, for
 * keys given by hand to verify); OWL_EUSAGE on a bad key. */
int keys_trust_add(keys_trust *t, const char *environment, const char *key_text, owl_err *err);

/* Loads the encryption secret key file at path into t->dec (keys_box_load_secret). */
int keys_trust_add_decrypt(keys_trust *t, const char *path, owl_err *err);

/* The first entry with this key id, or NULL. */
const keys_trusted *keys_trust_find(const keys_trust *t, const char *id);

void keys_trust_free(keys_trust *t);

/* ---- encryption keys (X25519) and bundle encryption ----
 * A key pair of its own, never the signing key: the public key is the token
 * "owlsync-x25519:" + base64 of the 32-byte key, its key id the first 8 bytes
 * of BLAKE2b-256 of the key in hex; the secret file holds
 * "owlsync-x25519-secret:BASE64". Neither kind of file or token is taken for
 * the other. */
#define KEYS_BOX_TOKEN_PREFIX "owlsync-x25519:"
#define KEYS_ID_BYTES 8           /* a key id, raw */
#define KEYS_SEALED_BYTES 80      /* a file key sealed to one recipient (crypto_box_seal) */
#define KEYS_STREAM_HEADER_BYTES 24 /* crypto_secretstream_xchacha20poly1305 header */
#define KEYS_STREAM_ABYTES 17     /* what each encrypted chunk adds */

typedef struct keys_box_public {
    unsigned char pk[KEYS_PK_BYTES];
    unsigned char idraw[KEYS_ID_BYTES]; /* the key id's bytes */
    char id[KEYS_ID_HEX_LEN + 1];
    char token[KEYS_TOKEN_MAX];   /* "owlsync-x25519:BASE64" */
} keys_box_public;

/* As keys_generate, for an encryption key pair. */
int keys_box_generate(const char *path, keys_box_public *pub, owl_err *err);

/* As keys_load_secret, for an encryption secret key (mode 0600 or stricter). */
int keys_box_load_secret(const char *path, keys_box_secret **out, owl_err *err);

/* Wipes and frees; NULL is a no-op. */
void keys_box_secret_free(keys_box_secret *sk);

/* The public half of an encryption secret key. */
void keys_box_secret_public(const keys_box_secret *sk, keys_box_public *pub);

/* Parses an "owlsync-x25519:BASE64" token, or reads the .pub file text names
 * (first line) when it does not start with the prefix (OWL_EUSAGE on error). */
int keys_box_load_public(const char *text, keys_box_public *pub, owl_err *err);

/* Writes the lowercase hex key id (KEYS_ID_HEX_LEN + 1 bytes) of a raw one. */
void keys_id_hex(const unsigned char raw[KEYS_ID_BYTES], char *hex);

/* Zeroes len bytes at p in a way the compiler does not remove (sodium_memzero). */
void keys_wipe(void *p, size_t len);

/* One encrypted stream (crypto_secretstream_xchacha20poly1305) under a random
 * 32-byte file key, which is sealed (crypto_box_seal) to each recipient. The
 * key and the stream state live in sodium_malloc memory, wiped when freed. */
typedef struct keys_stream keys_stream;

/* A new stream to write: a fresh file key; writes the stream header. */
int keys_stream_push_new(unsigned char header[KEYS_STREAM_HEADER_BYTES], keys_stream **out, owl_err *err);

/* Seals the stream's file key to pub. */
void keys_stream_seal(const keys_stream *s, const keys_box_public *pub, unsigned char sealed[KEYS_SEALED_BYTES]);

/* Encrypts mlen bytes of m into c (mlen + KEYS_STREAM_ABYTES bytes), with ad
 * (may be NULL) authenticated too; final tags the stream's last chunk. */
void keys_stream_push(keys_stream *s, const unsigned char *m, size_t mlen, const unsigned char *ad, size_t adlen,
                      bool final, unsigned char *c);

/* A stream to read: opens the file key sealed to sk. OWL_EVERIFY when it does
 * not open (sealed to another key, or damaged). */
int keys_stream_pull_new(const keys_box_secret *sk, const unsigned char sealed[KEYS_SEALED_BYTES],
                         const unsigned char header[KEYS_STREAM_HEADER_BYTES], keys_stream **out, owl_err *err);

/* Starts reading the stream again from its first chunk. */
void keys_stream_rewind(keys_stream *s);

/* Decrypts clen bytes of c (at least KEYS_STREAM_ABYTES) into m (clen -
 * KEYS_STREAM_ABYTES bytes) and sets *final. -1 when the chunk does not
 * authenticate (with this ad, in this place of the stream). */
int keys_stream_pull(keys_stream *s, const unsigned char *c, size_t clen, const unsigned char *ad, size_t adlen,
                     unsigned char *m, bool *final);

/* Wipes and frees; NULL is a no-op. */
void keys_stream_free(keys_stream *s);

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
