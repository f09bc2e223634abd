/* owlsync keys: Ed25519 key generation, loading, signing and verifying, X25519
 * keys and bundle encryption (crypto_box_seal, crypto_secretstream), and
 * BLAKE2b-256 hashing, all on libsodium. The only module that includes it. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "owlsync/fileio.h"
#include "owlsync/keys.h"

#define SECRET_PREFIX "owlsync-ed25519-secret:"
#define BOX_SECRET_PREFIX "owlsync-x25519-secret:"
#define SIG_PREFIX "owlsync-ed25519-sig "
#define KEYFILE_MAX 1024

struct keys_secret {
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
};

struct keys_box_secret {
    unsigned char sk[crypto_box_SECRETKEYBYTES];
};

struct keys_stream {
    unsigned char key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_state st;
};

_Static_assert(KEYS_SEALED_BYTES == crypto_box_SEALBYTES + crypto_secretstream_xchacha20poly1305_KEYBYTES,
               "a sealed file key");
_Static_assert(KEYS_STREAM_HEADER_BYTES == crypto_secretstream_xchacha20poly1305_HEADERBYTES, "stream header");
_Static_assert(KEYS_STREAM_ABYTES == crypto_secretstream_xchacha20poly1305_ABYTES, "chunk overhead");
_Static_assert(KEYS_PK_BYTES == crypto_box_PUBLICKEYBYTES, "X25519 public key");

struct keys_hash {
    crypto_generichash_state st;
};

int keys_init(owl_err *err)
{
    if (sodium_init() < 0)
        return err_set(err, OWL_ERUNTIME, "libsodium could not be initialised");
    return 0;
}

/* Fills id (KEYS_ID_HEX_LEN + 1) and token (KEYS_TOKEN_MAX) of a public key
 * of the kind prefix names. */
static void token_fill(const unsigned char *pk, const char *prefix, char *id, char *token)
{
    unsigned char digest[32];
    char b64[sodium_base64_ENCODED_LEN(KEYS_PK_BYTES, sodium_base64_VARIANT_ORIGINAL)];

    crypto_generichash(digest, sizeof(digest), pk, KEYS_PK_BYTES, NULL, 0);
    sodium_bin2hex(id, KEYS_ID_HEX_LEN + 1, digest, KEYS_ID_BYTES);
    sodium_bin2base64(b64, sizeof(b64), pk, KEYS_PK_BYTES, sodium_base64_VARIANT_ORIGINAL);
    snprintf(token, KEYS_TOKEN_MAX, "%s%s", prefix, b64);
}

/* Fills pub->id and pub->token from pub->pk. */
static void public_fill(keys_public *pub)
{
    token_fill(pub->pk, KEYS_TOKEN_PREFIX, pub->id, pub->token);
}

static void box_public_fill(keys_box_public *pub)
{
    unsigned char digest[32];

    token_fill(pub->pk, KEYS_BOX_TOKEN_PREFIX, pub->id, pub->token);
    crypto_generichash(digest, sizeof(digest), pub->pk, KEYS_PK_BYTES, NULL, 0);
    memcpy(pub->idraw, digest, KEYS_ID_BYTES);
}

void keys_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}

void keys_id_hex(const unsigned char raw[KEYS_ID_BYTES], char *hex)
{
    sodium_bin2hex(hex, KEYS_ID_HEX_LEN + 1, raw, KEYS_ID_BYTES);
}

/* Publishes a key file durably, never replacing one (keygen never overwrites). */
static int write_new_file(const char *path, mode_t mode, const char *text, size_t len, owl_err *err)
{
    if (fileio_write_path(path, text, len, mode, FILEIO_NOREPLACE, err) < 0) {
        if (err->code == OWL_EUSAGE) /* it exists */
            return err_set(err, OWL_EUSAGE, "%s already exists\nHINT: keygen never overwrites a key; choose another path", path);
        return -1;
    }
    return 0;
}

/* Writes a new key pair: path holds prefix + base64 of the secret's sklen
 * bytes (mode 0600), path.pub the token; refuses to overwrite either. */
static int write_key_pair(const char *path, const char *prefix, const unsigned char *sk, size_t sklen,
                          const char *token, owl_err *err)
{
    char pubpath[4096];
    char *text = NULL;
    const size_t plen = strlen(prefix);
    size_t textcap = plen + sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES, sodium_base64_VARIANT_ORIGINAL) + 2;
    char publine[KEYS_TOKEN_MAX + 2];
    struct stat st;
    size_t len;
    int rc = -1;

    if ((size_t)snprintf(pubpath, sizeof(pubpath), "%s.pub", path) >= sizeof(pubpath))
        return err_set(err, OWL_EUSAGE, "key path too long: %s", path);
    if (stat(path, &st) == 0)
        return err_set(err, OWL_EUSAGE, "%s already exists\nHINT: keygen never overwrites a key; choose another path", path);
    if (stat(pubpath, &st) == 0)
        return err_set(err, OWL_EUSAGE, "%s already exists\nHINT: keygen never overwrites a key; choose another path", pubpath);
    text = sodium_malloc(textcap);
    if (text == NULL)
        return err_oom(err);
    memcpy(text, prefix, plen);
    sodium_bin2base64(text + plen, textcap - plen - 1, sk, sklen, sodium_base64_VARIANT_ORIGINAL);
    len = strlen(text);
    text[len++] = '\n';
    if (write_new_file(path, 0600, text, len, err) < 0)
        goto out;
    len = (size_t)snprintf(publine, sizeof(publine), "%s\n", token);
    if (write_new_file(pubpath, 0644, publine, len, err) < 0) {
        unlink(path);
        goto out;
    }
    rc = 0;
out:
    sodium_free(text);
    return rc;
}

int keys_generate(const char *path, keys_public *pub, owl_err *err)
{
    keys_secret *sk = sodium_malloc(sizeof(*sk));
    keys_public made;
    int rc;

    if (sk == NULL)
        return err_oom(err);
    crypto_sign_keypair(made.pk, sk->sk);
    public_fill(&made);
    rc = write_key_pair(path, SECRET_PREFIX, sk->sk, sizeof(sk->sk), made.token, err);
    sodium_free(sk);
    if (rc == 0)
        *pub = made;
    return rc;
}

int keys_box_generate(const char *path, keys_box_public *pub, owl_err *err)
{
    keys_box_secret *sk = sodium_malloc(sizeof(*sk));
    keys_box_public made;
    int rc;

    if (sk == NULL)
        return err_oom(err);
    crypto_box_keypair(made.pk, sk->sk);
    box_public_fill(&made);
    rc = write_key_pair(path, BOX_SECRET_PREFIX, sk->sk, sizeof(sk->sk), made.token, err);
    sodium_free(sk);
    if (rc == 0)
        *pub = made;
    return rc;
}

/* Reads at most max - 1 bytes of a small file into buf (NUL-terminated). */
static int read_small_file(const char *path, char *buf, size_t max, size_t *len, struct stat *st,
                           owl_err *err)
{
    /* O_NONBLOCK: a FIFO in the key's place is refused below, never waited on */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    size_t used = 0;

    if (fd < 0 && errno == ELOOP)
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return err_set(err, OWL_EUSAGE, "cannot open key file %s: %s", path, strerror(errno));
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return err_set(err, OWL_EUSAGE, "key file %s is not a regular file", path);
    }
    for (;;) {
        ssize_t n = read(fd, buf + used, max - 1 - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            close(fd);
            return err_set(err, OWL_EUSAGE, "cannot read key file %s: %s", path, strerror(saved));
        }
        if (n == 0)
            break;
        used += (size_t)n;
        if (used == max - 1) {
            close(fd);
            return err_set(err, OWL_EUSAGE, "key file %s is too large to be a key", path);
        }
    }
    close(fd);
    buf[used] = '\0';
    *len = used;
    return 0;
}

/* Length of the first line of s, without trailing newline or carriage return. */
static size_t first_line_len(const char *s, size_t len)
{
    size_t n = 0;

    while (n < len && s[n] != '\n' && s[n] != '\r')
        n++;
    return n;
}

/* Whether the len bytes at s begin with prefix. */
static bool starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    return len >= n && memcmp(s, prefix, n) == 0;
}

/* Reads a secret key file of the kind prefix names into sk (sklen bytes, in
 * sodium_malloc memory the caller owns). Refuses a file that group or others
 * can access. */
static int load_secret_file(const char *path, const char *prefix, unsigned char *sk, size_t sklen, owl_err *err)
{
    char *buf = sodium_malloc(KEYFILE_MAX);
    struct stat st;
    size_t len = 0, binlen = 0, line;
    const size_t plen = strlen(prefix);
    int rc = -1;

    if (buf == NULL)
        return err_oom(err);
    if (read_small_file(path, buf, KEYFILE_MAX, &len, &st, err) < 0)
        goto out;
    if (starts_with(buf, len, KEYS_TOKEN_PREFIX) || starts_with(buf, len, KEYS_BOX_TOKEN_PREFIX)) {
        /* a public key is no secret: say what it is before any mode check */
        err_set(err, OWL_EUSAGE, "%s is a public key, not a secret key\nHINT: name the secret key keygen wrote "
                "(the same path without .pub)", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        err_set(err, OWL_EUSAGE,
                "secret key %s is accessible by group or others (mode %04o)\nHINT: chmod 600 %s",
                path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    line = first_line_len(buf, len);
    if (line <= plen || memcmp(buf, prefix, plen) != 0 ||
        sodium_base642bin(sk, sklen, buf + plen, line - plen, NULL, &binlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        binlen != sklen) {
        if (strcmp(prefix, SECRET_PREFIX) == 0 && line > sizeof(BOX_SECRET_PREFIX) - 1 &&
            memcmp(buf, BOX_SECRET_PREFIX, sizeof(BOX_SECRET_PREFIX) - 1) == 0)
            err_set(err, OWL_EUSAGE, "%s is an encryption key, not a signing key", path);
        else if (strcmp(prefix, BOX_SECRET_PREFIX) == 0 && line > sizeof(SECRET_PREFIX) - 1 &&
                 memcmp(buf, SECRET_PREFIX, sizeof(SECRET_PREFIX) - 1) == 0)
            err_set(err, OWL_EUSAGE, "%s is a signing key, not an encryption key\nHINT: owlsync keygen --encryption -o PATH makes one",
                    path);
        else
            err_set(err, OWL_EUSAGE, "%s is not an owlsync %s key", path,
                    strcmp(prefix, SECRET_PREFIX) == 0 ? "secret" : "encryption secret");
        goto out;
    }
    rc = 0;
out:
    sodium_free(buf);
    return rc;
}

int keys_load_secret(const char *path, keys_secret **out, owl_err *err)
{
    keys_secret *sk = sodium_malloc(sizeof(*sk));

    *out = NULL;
    if (sk == NULL)
        return err_oom(err);
    if (load_secret_file(path, SECRET_PREFIX, sk->sk, sizeof(sk->sk), err) < 0) {
        sodium_free(sk);
        return -1;
    }
    *out = sk;
    return 0;
}

int keys_box_load_secret(const char *path, keys_box_secret **out, owl_err *err)
{
    keys_box_secret *sk = sodium_malloc(sizeof(*sk));

    *out = NULL;
    if (sk == NULL)
        return err_oom(err);
    if (load_secret_file(path, BOX_SECRET_PREFIX, sk->sk, sizeof(sk->sk), err) < 0) {
        sodium_free(sk);
        return -1;
    }
    *out = sk;
    return 0;
}

void keys_box_secret_free(keys_box_secret *sk)
{
    if (sk != NULL)
        sodium_free(sk);
}

void keys_box_secret_public(const keys_box_secret *sk, keys_box_public *pub)
{
    crypto_scalarmult_base(pub->pk, sk->sk);
    box_public_fill(pub);
}

void keys_secret_free(keys_secret *sk)
{
    if (sk != NULL)
        sodium_free(sk);
}

void keys_secret_public(const keys_secret *sk, keys_public *pub)
{
    crypto_sign_ed25519_sk_to_pk(pub->pk, sk->sk);
    public_fill(pub);
}

int keys_parse_public(const char *token, keys_public *pub, owl_err *err)
{
    const size_t plen = sizeof(KEYS_TOKEN_PREFIX) - 1;
    size_t len = strlen(token), binlen = 0;

    if (len <= plen || len >= KEYS_TOKEN_MAX || strncmp(token, KEYS_TOKEN_PREFIX, plen) != 0 ||
        sodium_base642bin(pub->pk, sizeof(pub->pk), token + plen, len - plen, NULL, &binlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        binlen != KEYS_PK_BYTES)
        return err_set(err, OWL_EUSAGE, "not an owlsync public key: \"%.*s\"", 100, token);
    public_fill(pub);
    if (strcmp(pub->token, token) != 0)
        return err_set(err, OWL_EUSAGE, "not an owlsync public key: \"%.*s\"", 100, token);
    return 0;
}

int keys_load_public(const char *text, keys_public *pub, owl_err *err)
{
    char buf[KEYFILE_MAX];
    struct stat st;
    size_t len = 0;

    if (strncmp(text, KEYS_TOKEN_PREFIX, sizeof(KEYS_TOKEN_PREFIX) - 1) == 0)
        return keys_parse_public(text, pub, err);
    if (read_small_file(text, buf, sizeof(buf), &len, &st, err) < 0)
        return -1;
    buf[first_line_len(buf, len)] = '\0';
    if (keys_parse_public(buf, pub, err) < 0)
        return err_set(err, OWL_EUSAGE, "%s does not hold an owlsync public key", text);
    return 0;
}

static int box_parse_public(const char *token, keys_box_public *pub, owl_err *err)
{
    const size_t plen = sizeof(KEYS_BOX_TOKEN_PREFIX) - 1;
    size_t len = strlen(token), binlen = 0;

    if (len <= plen || len >= KEYS_TOKEN_MAX || strncmp(token, KEYS_BOX_TOKEN_PREFIX, plen) != 0 ||
        sodium_base642bin(pub->pk, sizeof(pub->pk), token + plen, len - plen, NULL, &binlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        binlen != KEYS_PK_BYTES)
        return err_set(err, OWL_EUSAGE, "not an owlsync encryption public key: \"%.*s\"", 100, token);
    box_public_fill(pub);
    if (strcmp(pub->token, token) != 0)
        return err_set(err, OWL_EUSAGE, "not an owlsync encryption public key: \"%.*s\"", 100, token);
    return 0;
}

int keys_box_load_public(const char *text, keys_box_public *pub, owl_err *err)
{
    char buf[KEYFILE_MAX];
    struct stat st;
    size_t len = 0;

    if (strncmp(text, KEYS_BOX_TOKEN_PREFIX, sizeof(KEYS_BOX_TOKEN_PREFIX) - 1) == 0)
        return box_parse_public(text, pub, err);
    if (strncmp(text, KEYS_TOKEN_PREFIX, sizeof(KEYS_TOKEN_PREFIX) - 1) == 0)
        return err_set(err, OWL_EUSAGE, "a signing key is no encryption key\nHINT: owlsync keygen --encryption -o PATH makes one");
    if (read_small_file(text, buf, sizeof(buf), &len, &st, err) < 0)
        return -1;
    buf[first_line_len(buf, len)] = '\0';
    if (box_parse_public(buf, pub, err) < 0)
        return err_set(err, OWL_EUSAGE, "%s does not hold an owlsync encryption public key", text);
    return 0;
}

int keys_sign(const keys_secret *sk, const unsigned char *msg, size_t len, char *out,
              size_t *outlen, owl_err *err)
{
    unsigned char sig[crypto_sign_BYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    keys_public pub;
    int n;

    keys_secret_public(sk, &pub);
    crypto_sign_detached(sig, NULL, msg, len, sk->sk);
    /* Check the signature with the public half before it leaves, as minisign does. */
    if (crypto_sign_verify_detached(sig, msg, len, pub.pk) != 0)
        return err_set(err, OWL_ERUNTIME, "signature does not verify with its own key");
    sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(out, KEYS_SIGFILE_MAX, "%s%s %s\n", SIG_PREFIX, pub.id, b64);
    if (n < 0 || (size_t)n >= KEYS_SIGFILE_MAX)
        return err_set(err, OWL_ERUNTIME, "signature entry too long");
    *outlen = (size_t)n;
    return 0;
}

/* Splits a signature entry into key id and raw signature; strict about format. */
static int sig_parse(const char *s, size_t len, char *id, unsigned char *sig, owl_err *err)
{
    const size_t plen = sizeof(SIG_PREFIX) - 1;
    const size_t b64len = sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL) - 1;
    size_t binlen = 0;

    if (len != plen + KEYS_ID_HEX_LEN + 1 + b64len + 1 || memcmp(s, SIG_PREFIX, plen) != 0 ||
        s[plen + KEYS_ID_HEX_LEN] != ' ' || s[len - 1] != '\n')
        return err_set(err, OWL_EVERIFY, "manifest.sig is malformed");
    for (size_t i = 0; i < KEYS_ID_HEX_LEN; i++) {
        char c = s[plen + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return err_set(err, OWL_EVERIFY, "manifest.sig is malformed");
        id[i] = c;
    }
    id[KEYS_ID_HEX_LEN] = '\0';
    if (sig != NULL) {
        char canon[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];

        if (sodium_base642bin(sig, crypto_sign_BYTES, s + plen + KEYS_ID_HEX_LEN + 1, b64len, NULL,
                              &binlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            binlen != crypto_sign_BYTES)
            return err_set(err, OWL_EVERIFY, "manifest.sig is malformed");
        /* libsodium 1.0.18 decodes any byte >= 0x80 as '/': accept only the canonical
         * text, so that no byte of manifest.sig can change unnoticed. */
        sodium_bin2base64(canon, sizeof(canon), sig, crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL);
        if (memcmp(canon, s + plen + KEYS_ID_HEX_LEN + 1, b64len) != 0)
            return err_set(err, OWL_EVERIFY, "manifest.sig is malformed");
    }
    return 0;
}

int keys_sig_key_id(const char *sig, size_t siglen, char *id, owl_err *err)
{
    return sig_parse(sig, siglen, id, NULL, err);
}

int keys_verify(const keys_public *pub, const unsigned char *msg, size_t len, const char *sig,
                size_t siglen, owl_err *err)
{
    unsigned char raw[crypto_sign_BYTES];
    char id[KEYS_ID_HEX_LEN + 1];

    if (sig_parse(sig, siglen, id, raw, err) < 0)
        return -1;
    if (strcmp(id, pub->id) != 0)
        return err_set(err, OWL_EVERIFY, "signed by key %s, but the key given is %s", id, pub->id);
    if (crypto_sign_verify_detached(raw, msg, len, pub->pk) != 0)
        return err_set(err, OWL_EVERIFY, "signature of manifest.json does not verify with key %s",
                       pub->id);
    return 0;
}

int keys_trust_add(keys_trust *t, const char *environment, const char *key_text, owl_err *err)
{
    keys_trusted *grown;
    keys_public pub;

    if (keys_load_public(key_text, &pub, err) < 0)
        return -1;
    grown = realloc(t->v, (t->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return err_oom(err);
    t->v = grown;
    t->v[t->n].environment = strdup(environment);
    if (t->v[t->n].environment == NULL)
        return err_oom(err);
    t->v[t->n].key = pub;
    t->n++;
    return 0;
}

int keys_trust_add_decrypt(keys_trust *t, const char *path, owl_err *err)
{
    keys_box_secret **grown = realloc(t->dec, (t->ndec + 1) * sizeof(*grown));

    if (grown == NULL)
        return err_oom(err);
    t->dec = grown;
    if (keys_box_load_secret(path, &t->dec[t->ndec], err) < 0)
        return -1;
    t->ndec++;
    return 0;
}

const keys_trusted *keys_trust_find(const keys_trust *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].key.id, id) == 0)
            return &t->v[i];
    }
    return NULL;
}

void keys_trust_free(keys_trust *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].environment);
    free(t->v);
    t->v = NULL;
    t->n = 0;
    for (size_t i = 0; i < t->ndec; i++)
        keys_box_secret_free(t->dec[i]);
    free(t->dec);
    t->dec = NULL;
    t->ndec = 0;
}

/* ---- bundle encryption ---- */

int keys_stream_push_new(unsigned char header[KEYS_STREAM_HEADER_BYTES], keys_stream **out, owl_err *err)
{
    keys_stream *s = sodium_malloc(sizeof(*s));

    *out = NULL;
    if (s == NULL)
        return err_oom(err);
    crypto_secretstream_xchacha20poly1305_keygen(s->key);
    crypto_secretstream_xchacha20poly1305_init_push(&s->st, s->header, s->key);
    memcpy(header, s->header, sizeof(s->header));
    *out = s;
    return 0;
}

void keys_stream_seal(const keys_stream *s, const keys_box_public *pub, unsigned char sealed[KEYS_SEALED_BYTES])
{
    crypto_box_seal(sealed, s->key, sizeof(s->key), pub->pk);
}

void keys_stream_push(keys_stream *s, const unsigned char *m, size_t mlen, const unsigned char *ad, size_t adlen,
                      bool final, unsigned char *c)
{
    crypto_secretstream_xchacha20poly1305_push(&s->st, c, NULL, m, mlen, ad, adlen,
                                               final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                                     : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
}

int keys_stream_pull_new(const keys_box_secret *sk, const unsigned char sealed[KEYS_SEALED_BYTES],
                         const unsigned char header[KEYS_STREAM_HEADER_BYTES], keys_stream **out, owl_err *err)
{
    keys_stream *s = sodium_malloc(sizeof(*s));
    keys_box_public pub;

    *out = NULL;
    if (s == NULL)
        return err_oom(err);
    keys_box_secret_public(sk, &pub);
    if (crypto_box_seal_open(s->key, sealed, KEYS_SEALED_BYTES, pub.pk, sk->sk) != 0) {
        sodium_free(s);
        return err_set(err, OWL_EVERIFY, "the file key sealed to key %s does not open (damaged)", pub.id);
    }
    memcpy(s->header, header, sizeof(s->header));
    if (crypto_secretstream_xchacha20poly1305_init_pull(&s->st, s->header, s->key) != 0) {
        sodium_free(s);
        return err_set(err, OWL_EVERIFY, "the encrypted stream's header is invalid");
    }
    *out = s;
    return 0;
}

void keys_stream_rewind(keys_stream *s)
{
    (void)crypto_secretstream_xchacha20poly1305_init_pull(&s->st, s->header, s->key);
}

int keys_stream_pull(keys_stream *s, const unsigned char *c, size_t clen, const unsigned char *ad, size_t adlen,
                     unsigned char *m, bool *final)
{
    unsigned char tag = 0;

    if (clen < KEYS_STREAM_ABYTES ||
        crypto_secretstream_xchacha20poly1305_pull(&s->st, m, NULL, &tag, c, clen, ad, adlen) != 0)
        return -1;
    if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE &&
        tag != crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        return -1;
    *final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    return 0;
}

void keys_stream_free(keys_stream *s)
{
    if (s != NULL)
        sodium_free(s);
}

keys_hash *keys_hash_new(void)
{
    keys_hash *h = NULL;

    /* crypto_generichash_state wants 64-byte alignment. */
    if (posix_memalign((void **)&h, 64, sizeof(*h)) != 0)
        return NULL;
    crypto_generichash_init(&h->st, NULL, 0, KEYS_HASH_BYTES);
    return h;
}

void keys_hash_update(keys_hash *h, const void *buf, size_t len)
{
    crypto_generichash_update(&h->st, buf, len);
}

void keys_hash_final(keys_hash *h, char *hex)
{
    unsigned char digest[KEYS_HASH_BYTES];

    crypto_generichash_final(&h->st, digest, sizeof(digest));
    sodium_bin2hex(hex, KEYS_HASH_HEX_LEN + 1, digest, sizeof(digest));
    crypto_generichash_init(&h->st, NULL, 0, KEYS_HASH_BYTES);
}

void keys_hash_free(keys_hash *h)
{
    free(h);
}

void keys_row_digest(const void *buf, size_t len, unsigned char out[KEYS_ROW_DIGEST_LEN])
{
    static const unsigned char key[crypto_shorthash_siphashx24_KEYBYTES] = "owlsync row sum";

    crypto_shorthash_siphashx24(out, buf, len, key);
}

int keys_random_hex(char *hex, size_t nbytes)
{
    unsigned char buf[64];

    if (nbytes > sizeof(buf))
        return -1;
    randombytes_buf(buf, nbytes);
    sodium_bin2hex(hex, 2 * nbytes + 1, buf, nbytes);
    return 0;
}

const char *keys_lib_version(void)
{
    return sodium_version_string();
}
