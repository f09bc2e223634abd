/* Unit tests for agent/keys.c: key generation and files, token and key id format,
 * signatures and their failures, trust lists, BLAKE2b and randomness. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "owlsync/keys.h"
#include "unit.h"

static char tmpdir[64];

/* Joins the temp dir and a file name into a static buffer (one at a time). */
static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return p;
}

static int write_file(const char *path, mode_t mode, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

    if (fd < 0)
        return -1;
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    fchmod(fd, mode);
    return close(fd);
}

/* Reads a small file into buf (NUL-terminated); returns its length or -1. */
static ssize_t read_file(const char *path, char *buf, size_t max)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, max - 1);
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

static void remove_tmpdir(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
}

/* The key id computed independently: first 8 bytes of BLAKE2b-256(pk), hex. */
static void expected_id(const unsigned char *pk, char *id)
{
    unsigned char d[32];

    crypto_generichash(d, sizeof(d), pk, KEYS_PK_BYTES, NULL, 0);
    sodium_bin2hex(id, KEYS_ID_HEX_LEN + 1, d, 8);
}

static void test_keygen_files(void)
{
    keys_public pub;
    owl_err err;
    struct stat st;
    char buf[256], id[KEYS_ID_HEX_LEN + 1];
    unsigned char raw[64];
    size_t rawlen = 0;
    const char *tok;

    err_clear(&err);
    CHECK(keys_generate(tpath("a.key"), &pub, &err) == 0);
    CHECK(stat(tpath("a.key"), &st) == 0 && (st.st_mode & 07777) == 0600 && S_ISREG(st.st_mode));
    CHECK(stat(tpath("a.key.pub"), &st) == 0 && S_ISREG(st.st_mode));
    CHECK((st.st_mode & 022) == 0);

    /* token: prefix + base64 of the 32-byte key, nothing else */
    CHECK(strncmp(pub.token, KEYS_TOKEN_PREFIX, strlen(KEYS_TOKEN_PREFIX)) == 0);
    CHECK(strlen(pub.token) == strlen(KEYS_TOKEN_PREFIX) + 44);
    tok = pub.token + strlen(KEYS_TOKEN_PREFIX);
    CHECK(sodium_base642bin(raw, sizeof(raw), tok, strlen(tok), NULL, &rawlen, NULL,
                            sodium_base64_VARIANT_ORIGINAL) == 0);
    CHECK(rawlen == KEYS_PK_BYTES && memcmp(raw, pub.pk, KEYS_PK_BYTES) == 0);

    /* key id, computed here with libsodium */
    expected_id(pub.pk, id);
    CHECK_STR(pub.id, id);
    CHECK(strlen(pub.id) == KEYS_ID_HEX_LEN);

    /* PATH.pub: the token on one line */
    snprintf(buf, sizeof(buf), "%s\n", pub.token);
    {
        char got[256];
        CHECK(read_file(tpath("a.key.pub"), got, sizeof(got)) > 0);
        CHECK_STR(got, buf);
    }

    /* the secret file's public half is the same key */
    {
        keys_secret *sk = NULL;
        keys_public back;
        CHECK(keys_load_secret(tpath("a.key"), &sk, &err) == 0);
        if (sk != NULL) {
            keys_secret_public(sk, &back);
            CHECK(memcmp(back.pk, pub.pk, KEYS_PK_BYTES) == 0);
            CHECK_STR(back.id, pub.id);
            CHECK_STR(back.token, pub.token);
        }
        keys_secret_free(sk);
        keys_secret_free(NULL);
    }

    /* two keys differ */
    {
        keys_public other;
        CHECK(keys_generate(tpath("b.key"), &other, &err) == 0);
        CHECK(memcmp(other.pk, pub.pk, KEYS_PK_BYTES) != 0);
        CHECK(strcmp(other.id, pub.id) != 0);
    }
}

static void test_keygen_refuses_overwrite(void)
{
    keys_public pub;
    owl_err err;
    char before[512], after[512], want[512];

    /* the secret exists */
    CHECK(read_file(tpath("a.key"), before, sizeof(before)) > 0);
    err_clear(&err);
    CHECK(keys_generate(tpath("a.key"), &pub, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    snprintf(want, sizeof(want), "%s already exists\nHINT: keygen never overwrites a key; choose another path",
             tpath("a.key"));
    CHECK_STR(err.msg, want);
    CHECK(read_file(tpath("a.key"), after, sizeof(after)) > 0);
    CHECK_STR(after, before);

    /* only PATH.pub exists: still refused, and no secret is left behind */
    CHECK(write_file(tpath("c.key.pub"), 0644, "keep\n", 5) == 0);
    err_clear(&err);
    CHECK(keys_generate(tpath("c.key"), &pub, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    snprintf(want, sizeof(want), "%s already exists\nHINT: keygen never overwrites a key; choose another path",
             tpath("c.key.pub"));
    CHECK_STR(err.msg, want);
    CHECK(access(tpath("c.key"), F_OK) != 0);
    CHECK(read_file(tpath("c.key.pub"), after, sizeof(after)) == 5);
    CHECK_STR(after, "keep\n");

    /* a directory that does not exist: a runtime error naming the path */
    err_clear(&err);
    CHECK(keys_generate(tpath("nodir/x.key"), &pub, &err) == -1);
    CHECK(err.code == OWL_ERUNTIME);
    CHECK_CONTAINS(err.msg, "nodir/x.key");
}

static void test_load_secret_mode(void)
{
    static const int modes[] = {0640, 0604, 0660, 0644, 0601, 0610};
    keys_secret *sk = NULL;
    owl_err err;
    char want[64], hint[512];

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        CHECK(chmod(tpath("a.key"), (mode_t)modes[i]) == 0);
        err_clear(&err);
        sk = NULL;
        CHECK(keys_load_secret(tpath("a.key"), &sk, &err) == -1);
        CHECK(sk == NULL);
        CHECK(err.code == OWL_EUSAGE);
        snprintf(want, sizeof(want), "(mode %04o)", (unsigned)modes[i]);
        CHECK_CONTAINS(err.msg, want);
        CHECK_CONTAINS(err.msg, "accessible by group or others");
        snprintf(hint, sizeof(hint), "HINT: chmod 600 %s", tpath("a.key"));
        CHECK_CONTAINS(err.msg, hint);
        keys_secret_free(sk);
    }
    /* 0400 and 0600 are fine */
    CHECK(chmod(tpath("a.key"), 0400) == 0);
    CHECK(keys_load_secret(tpath("a.key"), &sk, &err) == 0);
    keys_secret_free(sk);
    sk = NULL;
    CHECK(chmod(tpath("a.key"), 0600) == 0);
    CHECK(keys_load_secret(tpath("a.key"), &sk, &err) == 0);
    keys_secret_free(sk);
}

/* Writes text as a 0600 secret file and checks that loading it fails with
 * OWL_EUSAGE and a message containing want. */
static void secret_rejected(const char *text, size_t len, const char *want)
{
    keys_secret *sk = NULL;
    owl_err err;

    unlink(tpath("bad.key"));
    CHECK(write_file(tpath("bad.key"), 0600, text, len) == 0);
    err_clear(&err);
    CHECK(keys_load_secret(tpath("bad.key"), &sk, &err) == -1);
    CHECK(sk == NULL);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, want);
    keys_secret_free(sk);
}

static void test_load_secret_garbage(void)
{
    char good[512], buf[2048];
    ssize_t n = read_file(tpath("a.key"), good, sizeof(good));
    keys_secret *sk = NULL;
    owl_err err;

    CHECK(n > 0);
    secret_rejected("", 0, "is not an owlsync secret key");
    secret_rejected("hello\n", 6, "is not an owlsync secret key");
    secret_rejected("owlsync-ed25519-secret:\n", 24, "is not an owlsync secret key");
    /* a 32-byte key where a 64-byte one belongs */
    secret_rejected("owlsync-ed25519-secret:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 68,
                    "is not an owlsync secret key");
    /* the real key cut short, and with a character broken */
    secret_rejected(good, (size_t)n - 10, "is not an owlsync secret key");
    memcpy(buf, good, (size_t)n);
    buf[30] = '*';
    secret_rejected(buf, (size_t)n, "is not an owlsync secret key");
    /* a public key file given as the secret: said so, even at its own 0644 */
    CHECK(read_file(tpath("a.key.pub"), buf, sizeof(buf)) > 0);
    secret_rejected(buf, strlen(buf), "is a public key, not a secret key\nHINT: name the secret key keygen wrote");
    err_clear(&err);
    CHECK(keys_load_secret(tpath("a.key.pub"), &sk, &err) == -1);
    CHECK(sk == NULL);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "a.key.pub is a public key, not a secret key");
    CHECK(strstr(err.msg, "chmod") == NULL);
    {
        keys_box_secret *bsk = NULL;
        err_clear(&err);
        CHECK(keys_box_load_secret(tpath("a.key.pub"), &bsk, &err) == -1);
        CHECK_CONTAINS(err.msg, "is a public key, not a secret key");
        keys_box_secret_free(bsk);
    }
    /* binary junk and an over-long file */
    memset(buf, 0xa5, sizeof(buf));
    secret_rejected(buf, 100, "is not an owlsync secret key");
    secret_rejected(buf, sizeof(buf), "too large");

    /* missing file, a directory */
    err_clear(&err);
    CHECK(keys_load_secret(tpath("missing.key"), &sk, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "missing.key");
    CHECK(mkdir(tpath("dir.key"), 0700) == 0);
    err_clear(&err);
    CHECK(keys_load_secret(tpath("dir.key"), &sk, &err) == -1);
    CHECK_CONTAINS(err.msg, "dir.key");
    CHECK(sk == NULL);

    /* the good key with CRLF line end still loads */
    memcpy(buf, good, (size_t)n - 1);
    memcpy(buf + n - 1, "\r\n", 2);
    unlink(tpath("crlf.key"));
    CHECK(write_file(tpath("crlf.key"), 0600, buf, (size_t)n + 1) == 0);
    CHECK(keys_load_secret(tpath("crlf.key"), &sk, &err) == 0);
    keys_secret_free(sk);
}

static void test_public_tokens(void)
{
    keys_public pub, a, b;
    keys_secret *sk = NULL;
    owl_err err;
    char tok[128];

    CHECK(keys_load_secret(tpath("a.key"), &sk, &err) == 0);
    if (sk == NULL)
        return;
    keys_secret_public(sk, &pub);
    keys_secret_free(sk);

    /* token and .pub path give the same key */
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    CHECK(keys_load_public(pub.token, &a, &err) == 0);
    CHECK(keys_load_public(tpath("a.key.pub"), &b, &err) == 0);
    CHECK(memcmp(a.pk, pub.pk, KEYS_PK_BYTES) == 0 && memcmp(b.pk, pub.pk, KEYS_PK_BYTES) == 0);
    CHECK_STR(a.id, pub.id);
    CHECK_STR(b.id, pub.id);
    CHECK_STR(a.token, pub.token);
    CHECK_STR(b.token, pub.token);
    CHECK(keys_parse_public(pub.token, &a, &err) == 0);

    /* malformed tokens */
    static const char *bad[] = {
        "",
        "owlsync-ed25519:",
        "owlsync-ed25519:AAAA",
        "owlsync-ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* no padding */
        "owlsync-ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",  /* non-canonical */
        "owlsync-ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "owlsync-ed448:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&err);
        if (keys_parse_public(bad[i], &a, &err) != -1 || err.code != OWL_EUSAGE) {
            printf("#   token accepted: \"%s\"\n", bad[i]);
            CHECK(0);
        }
        CHECK_CONTAINS(err.msg, "not an owlsync public key");
    }
    /* trailing whitespace or newline in a token */
    snprintf(tok, sizeof(tok), "%s ", pub.token);
    CHECK(keys_parse_public(tok, &a, &err) == -1);
    snprintf(tok, sizeof(tok), "%s\n", pub.token);
    CHECK(keys_parse_public(tok, &a, &err) == -1);
    CHECK(keys_load_public(tok, &a, &err) == -1);
    /* one character changed */
    snprintf(tok, sizeof(tok), "%s", pub.token);
    tok[20] = tok[20] == 'A' ? 'B' : 'A';
    CHECK(keys_parse_public(tok, &a, &err) == 0);
    CHECK(memcmp(a.pk, pub.pk, KEYS_PK_BYTES) != 0);

    /* a .pub file with junk, a missing one */
    CHECK(write_file(tpath("junk.pub"), 0644, "not a key\n", 10) == 0);
    err_clear(&err);
    CHECK(keys_load_public(tpath("junk.pub"), &a, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "junk.pub does not hold an owlsync public key");
    err_clear(&err);
    CHECK(keys_load_public(tpath("none.pub"), &a, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "none.pub");
    /* a .pub file with CRLF and a comment line after the token */
    snprintf(tok, sizeof(tok), "%s\r\n# comment\n", pub.token);
    CHECK(write_file(tpath("crlf.pub"), 0644, tok, strlen(tok)) == 0);
    CHECK(keys_load_public(tpath("crlf.pub"), &a, &err) == 0);
    CHECK_STR(a.id, pub.id);
}

static void load_pair(const char *path, keys_secret **sk, keys_public *pub)
{
    owl_err err;

    *sk = NULL;
    CHECK(keys_load_secret(path, sk, &err) == 0);
    if (*sk != NULL)
        keys_secret_public(*sk, pub);
}

static void test_sign_verify(void)
{
    static const char msg[] = "{\"format\":\"owlsync-bundle\",\"version\":1}\n";
    const size_t mlen = sizeof(msg) - 1;
    keys_secret *sk = NULL, *sk2 = NULL;
    keys_public pub, pub2;
    owl_err err;
    char sig[KEYS_SIGFILE_MAX], bad[KEYS_SIGFILE_MAX + 8], id[KEYS_ID_HEX_LEN + 1], want[256];
    unsigned char mcopy[sizeof(msg)];
    size_t siglen = 0;

    load_pair(tpath("a.key"), &sk, &pub);
    load_pair(tpath("b.key"), &sk2, &pub2);
    if (sk == NULL || sk2 == NULL)
        goto out;

    err_clear(&err);
    CHECK(keys_sign(sk, (const unsigned char *)msg, mlen, sig, &siglen, &err) == 0);
    /* "owlsync-ed25519-sig KEYID BASE64\n" */
    CHECK(siglen == strlen("owlsync-ed25519-sig ") + 16 + 1 + 88 + 1);
    CHECK(siglen == strlen(sig));
    CHECK(strncmp(sig, "owlsync-ed25519-sig ", 20) == 0);
    CHECK(strncmp(sig + 20, pub.id, 16) == 0);
    CHECK(sig[36] == ' ' && sig[siglen - 1] == '\n');
    {
        /* the signature is libsodium's detached Ed25519 signature */
        unsigned char raw[64];
        size_t rawlen = 0;
        CHECK(sodium_base642bin(raw, sizeof(raw), sig + 37, 88, NULL, &rawlen, NULL,
                                sodium_base64_VARIANT_ORIGINAL) == 0 && rawlen == 64);
        CHECK(crypto_sign_verify_detached(raw, (const unsigned char *)msg, mlen, pub.pk) == 0);
    }
    CHECK(keys_sig_key_id(sig, siglen, id, &err) == 0);
    CHECK_STR(id, pub.id);
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, sig, siglen, &err) == 0);

    /* empty message too */
    {
        char s0[KEYS_SIGFILE_MAX];
        size_t l0 = 0;
        CHECK(keys_sign(sk, (const unsigned char *)"", 0, s0, &l0, &err) == 0);
        CHECK(keys_verify(&pub, (const unsigned char *)"", 0, s0, l0, &err) == 0);
        CHECK(keys_verify(&pub, (const unsigned char *)"x", 1, s0, l0, &err) == -1);
    }

    /* a flipped bit at every message byte */
    for (size_t i = 0; i < mlen; i++) {
        memcpy(mcopy, msg, mlen);
        mcopy[i] ^= 0x01;
        err_clear(&err);
        if (keys_verify(&pub, mcopy, mlen, sig, siglen, &err) != -1 || err.code != OWL_EVERIFY) {
            printf("#   message flip at %zu verified\n", i);
            CHECK(0);
        }
    }
    memcpy(mcopy, msg, mlen);
    mcopy[3] ^= 0x20;
    err_clear(&err);
    CHECK(keys_verify(&pub, mcopy, mlen, sig, siglen, &err) == -1);
    snprintf(want, sizeof(want), "signature of manifest.json does not verify with key %s", pub.id);
    CHECK_STR(err.msg, want);
    /* shorter and longer message */
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen - 1, sig, siglen, &err) == -1);

    /* a flipped byte anywhere in the signature entry (two bit patterns) */
    for (int pass = 0; pass < 2; pass++) {
        unsigned char x = pass == 0 ? 0x01 : 0x80;
        for (size_t i = 0; i < siglen; i++) {
            memcpy(bad, sig, siglen);
            bad[i] = (char)(bad[i] ^ x);
            err_clear(&err);
            if (keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen, &err) != -1 ||
                err.code != OWL_EVERIFY) {
                printf("#   signature flip ^0x%02x at %zu verified\n", x, i);
                CHECK(0);
            }
        }
    }
    /* a non-ASCII byte in the base64 text is malformed (libsodium 1.0.18 alone would
     * read any byte >= 0x80 as '/') */
    for (size_t i = 37; i < siglen - 1; i++) {
        memcpy(bad, sig, siglen);
        bad[i] = (char)0xaf;
        err_clear(&err);
        CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen, &err) == -1);
        if (strcmp(err.msg, "manifest.sig is malformed") != 0) {
            printf("#   byte 0xaf at %zu: \"%s\"\n", i, err.msg);
            CHECK(0);
        }
    }
    /* a flipped bit of the raw signature, re-encoded so the entry stays well formed */
    {
        unsigned char raw[64];
        size_t rawlen = 0;
        char b64[100];
        CHECK(sodium_base642bin(raw, sizeof(raw), sig + 37, 88, NULL, &rawlen, NULL,
                                sodium_base64_VARIANT_ORIGINAL) == 0);
        for (size_t i = 0; i < 64; i += 7) {
            raw[i] ^= 0x04;
            sodium_bin2base64(b64, sizeof(b64), raw, 64, sodium_base64_VARIANT_ORIGINAL);
            raw[i] ^= 0x04;
            snprintf(bad, sizeof(bad), "owlsync-ed25519-sig %s %s\n", pub.id, b64);
            err_clear(&err);
            CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, strlen(bad), &err) == -1);
            CHECK(err.code == OWL_EVERIFY);
            snprintf(want, sizeof(want), "signature of manifest.json does not verify with key %s", pub.id);
            CHECK_STR(err.msg, want);
        }
    }

    /* wrong key: the message names both ids */
    err_clear(&err);
    CHECK(keys_verify(&pub2, (const unsigned char *)msg, mlen, sig, siglen, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
    snprintf(want, sizeof(want), "signed by key %s, but the key given is %s", pub.id, pub2.id);
    CHECK_STR(err.msg, want);
    CHECK_CONTAINS(err.msg, pub.id);
    CHECK_CONTAINS(err.msg, pub2.id);
    /* the other key's id pasted onto this key's signature */
    memcpy(bad, sig, siglen);
    memcpy(bad + 20, pub2.id, 16);
    err_clear(&err);
    CHECK(keys_verify(&pub2, (const unsigned char *)msg, mlen, bad, siglen, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
    snprintf(want, sizeof(want), "signature of manifest.json does not verify with key %s", pub2.id);
    CHECK_STR(err.msg, want);

    /* malformed entries */
    err_clear(&err);
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, sig, siglen - 1, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
    CHECK_STR(err.msg, "manifest.sig is malformed");
    CHECK(keys_sig_key_id(sig, siglen - 1, id, &err) == -1);
    for (size_t cut = 0; cut < siglen; cut += 5) {
        err_clear(&err);
        CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, sig, cut, &err) == -1);
        CHECK(err.code == OWL_EVERIFY);
    }
    memcpy(bad, sig, siglen);
    bad[siglen] = '\n';
    err_clear(&err);
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen + 1, &err) == -1);
    CHECK_STR(err.msg, "manifest.sig is malformed");
    bad[siglen] = 'A';
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen + 1, &err) == -1);
    CHECK(keys_sig_key_id(bad, siglen + 1, id, &err) == -1);
    /* bad hex in the key id: uppercase, non-hex */
    memcpy(bad, sig, siglen);
    bad[25] = 'G';
    err_clear(&err);
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen, &err) == -1);
    CHECK_STR(err.msg, "manifest.sig is malformed");
    CHECK(keys_sig_key_id(bad, siglen, id, &err) == -1);
    snprintf(bad, sizeof(bad), "%s", sig);
    for (size_t i = 20; i < 36; i++) {
        if (bad[i] >= 'a' && bad[i] <= 'f') {
            bad[i] = (char)(bad[i] - 'a' + 'A');
            break;
        }
    }
    if (strcmp(bad, sig) != 0) {
        CHECK(keys_sig_key_id(bad, siglen, id, &err) == -1);
        CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen, &err) == -1);
    }
    /* CRLF line end, no newline, NUL in the middle, missing prefix */
    memcpy(bad, sig, siglen);
    bad[siglen - 1] = '\r';
    bad[siglen] = '\n';
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen + 1, &err) == -1);
    memcpy(bad, sig, siglen);
    bad[50] = '\0';
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen, &err) == -1);
    memcpy(bad, "minisign-ed25519-sig", 20);
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, bad, siglen, &err) == -1);
    CHECK(keys_verify(&pub, (const unsigned char *)msg, mlen, "", 0, &err) == -1);
out:
    keys_secret_free(sk);
    keys_secret_free(sk2);
}

static void test_trust(void)
{
    keys_trust t = {NULL, 0, NULL, 0};
    keys_public pa, pb;
    keys_secret *sk = NULL;
    const keys_trusted *kt;
    owl_err err;

    load_pair(tpath("a.key"), &sk, &pa);
    keys_secret_free(sk);
    load_pair(tpath("b.key"), &sk, &pb);
    keys_secret_free(sk);

    CHECK(keys_trust_find(&t, pa.id) == NULL);
    CHECK(keys_trust_add(&t, "prod", pa.token, &err) == 0);
    CHECK(keys_trust_add(&t, "qa", tpath("b.key.pub"), &err) == 0);
    CHECK(keys_trust_add(&t, "", pa.token, &err) == 0);
    CHECK(t.n == 3);
    kt = keys_trust_find(&t, pa.id);
    CHECK(kt != NULL && strcmp(kt->environment, "prod") == 0 && strcmp(kt->key.token, pa.token) == 0);
    kt = keys_trust_find(&t, pb.id);
    CHECK(kt != NULL && strcmp(kt->environment, "qa") == 0 &&
          memcmp(kt->key.pk, pb.pk, KEYS_PK_BYTES) == 0);
    CHECK(keys_trust_find(&t, "0000000000000000") == NULL);
    CHECK(keys_trust_find(&t, "") == NULL);

    err_clear(&err);
    CHECK(keys_trust_add(&t, "prod", "owlsync-ed25519:AAAA", &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    err_clear(&err);
    CHECK(keys_trust_add(&t, "prod", tpath("nope.pub"), &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    CHECK(t.n == 3);

    keys_trust_free(&t);
    CHECK(t.n == 0 && t.v == NULL);
    keys_trust_free(&t);
}

/* The hex of BLAKE2b-256(buf), computed with libsodium directly. */
static void sodium_hex(const void *buf, size_t len, char *hex)
{
    unsigned char d[32];

    crypto_generichash(d, sizeof(d), buf, len, NULL, 0);
    sodium_bin2hex(hex, KEYS_HASH_HEX_LEN + 1, d, sizeof(d));
}

static void test_hash(void)
{
    keys_hash *h = keys_hash_new();
    char hex[KEYS_HASH_HEX_LEN + 1], want[KEYS_HASH_HEX_LEN + 1];
    unsigned char big[100000];

    CHECK(h != NULL);
    if (h == NULL)
        return;
    /* published BLAKE2b-256 vectors */
    keys_hash_final(h, hex);
    CHECK_STR(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    keys_hash_update(h, "abc", 3);
    keys_hash_final(h, hex);
    CHECK_STR(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    /* final resets: split updates give the same digest */
    keys_hash_update(h, "a", 1);
    keys_hash_update(h, "", 0);
    keys_hash_update(h, "bc", 2);
    keys_hash_final(h, hex);
    CHECK_STR(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(i * 131 + (i >> 8));
    for (size_t off = 0; off < sizeof(big);) {
        size_t step = 1 + (off * 7) % 4099;
        if (step > sizeof(big) - off)
            step = sizeof(big) - off;
        keys_hash_update(h, big + off, step);
        off += step;
    }
    keys_hash_final(h, hex);
    sodium_hex(big, sizeof(big), want);
    CHECK_STR(hex, want);
    CHECK(strlen(hex) == KEYS_HASH_HEX_LEN);
    keys_hash_free(h);
    keys_hash_free(NULL);
}

static void test_random_hex(void)
{
    char a[129], b[129];

    memset(a, 'x', sizeof(a));
    CHECK(keys_random_hex(a, 16) == 0);
    CHECK(strlen(a) == 32);
    CHECK(strspn(a, "0123456789abcdef") == 32);
    CHECK(keys_random_hex(b, 16) == 0);
    CHECK(strcmp(a, b) != 0);
    CHECK(keys_random_hex(a, 64) == 0);
    CHECK(strlen(a) == 128 && strspn(a, "0123456789abcdef") == 128);
    CHECK(keys_random_hex(a, 0) == 0);
    CHECK_STR(a, "");
    CHECK(keys_random_hex(a, 65) == -1);
    {
        /* every hex digit shows up over a few draws */
        int seen[16] = {0}, all = 1;
        for (int k = 0; k < 20; k++) {
            CHECK(keys_random_hex(a, 64) == 0);
            for (size_t i = 0; a[i] != '\0'; i++)
                seen[a[i] <= '9' ? a[i] - '0' : a[i] - 'a' + 10] = 1;
        }
        for (int i = 0; i < 16; i++)
            all = all && seen[i];
        CHECK(all);
    }
}

/* Encryption keys: their own files and tokens, never taken for signing keys
 * (nor the other way), refused when others can read them. */
static void test_box_keys(void)
{
    keys_box_public pub, again, parsed;
    keys_box_secret *sk = NULL;
    keys_secret *ssk = NULL;
    keys_public spub;
    char buf[512], want[KEYS_ID_HEX_LEN + 1];
    owl_err err;

    CHECK(keys_box_generate(tpath("enc"), &pub, &err) == 0);
    CHECK(strncmp(pub.token, "owlsync-x25519:", 15) == 0);
    expected_id(pub.pk, want);
    CHECK_STR(pub.id, want);
    CHECK(read_file(tpath("enc"), buf, sizeof(buf)) > 0);
    CHECK(strncmp(buf, "owlsync-x25519-secret:", 22) == 0);
    {
        struct stat st;
        CHECK(stat(tpath("enc"), &st) == 0 && (st.st_mode & 0777) == 0600);
    }
    CHECK(keys_box_generate(tpath("enc"), &pub, &err) < 0);
    CHECK_CONTAINS(err.msg, "already exists");
    CHECK(keys_box_load_secret(tpath("enc"), &sk, &err) == 0);
    keys_box_secret_public(sk, &again);
    CHECK_STR(again.id, pub.id);
    CHECK(memcmp(again.idraw, pub.idraw, KEYS_ID_BYTES) == 0);
    keys_box_secret_free(sk);
    sk = NULL;
    CHECK(keys_box_load_public(pub.token, &parsed, &err) == 0);
    CHECK_STR(parsed.id, pub.id);
    CHECK(keys_box_load_public(tpath("enc.pub"), &parsed, &err) == 0);
    CHECK_STR(parsed.id, pub.id);

    /* one kind is never the other */
    CHECK(keys_load_secret(tpath("enc"), &ssk, &err) < 0);
    CHECK_CONTAINS(err.msg, "enc is an encryption key, not a signing key");
    CHECK(keys_load_public(pub.token, &spub, &err) < 0);
    CHECK(keys_load_public(tpath("enc.pub"), &spub, &err) < 0);
    CHECK(keys_generate(tpath("sig"), &spub, &err) == 0);
    CHECK(keys_box_load_secret(tpath("sig"), &sk, &err) < 0);
    CHECK_CONTAINS(err.msg, "is a signing key, not an encryption key");
    CHECK(keys_box_load_public(spub.token, &parsed, &err) < 0);
    CHECK(keys_box_load_public(tpath("sig.pub"), &parsed, &err) < 0);

    /* mode */
    CHECK(chmod(tpath("enc"), 0640) == 0);
    CHECK(keys_box_load_secret(tpath("enc"), &sk, &err) < 0);
    CHECK_CONTAINS(err.msg, "accessible by group or others");
    CHECK(sk == NULL);

    /* a target's keyring holds its decryption keys */
    {
        keys_trust t = {NULL, 0, NULL, 0};
        CHECK(chmod(tpath("enc"), 0600) == 0);
        CHECK(keys_trust_add_decrypt(&t, tpath("enc"), &err) == 0 && t.ndec == 1);
        CHECK(keys_trust_add_decrypt(&t, tpath("sig"), &err) < 0 && t.ndec == 1);
        keys_trust_free(&t);
        CHECK(t.ndec == 0 && t.dec == NULL);
    }
}

int main(void)
{
    owl_err err;

    if (keys_init(&err) < 0) {
        printf("Bail out! %s\n", err.msg);
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/owlsync-test-keys.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    umask(022);
    RUN(test_keygen_files);
    RUN(test_keygen_refuses_overwrite);
    RUN(test_load_secret_mode);
    RUN(test_load_secret_garbage);
    RUN(test_public_tokens);
    RUN(test_sign_verify);
    RUN(test_trust);
    RUN(test_hash);
    RUN(test_random_hex);
    RUN(test_box_keys);
    remove_tmpdir();
    return UNIT_DONE();
}
