/* Fuzz harness of agent/envelope.c, encrypted bundles (format version 2). The
 * first byte picks what the rest is:
 *   even: an encrypted bundle file as it lies in an inbox: its header parsed
 *         (envelope_parse_header's contract), opened with the harness's
 *         decryption key and read to the end, and opened as a bundle;
 *   odd:  the bundle inside: the harness encrypts it to its key, and then
 *         reading it back gives exactly those bytes; the bundle reader says of
 *         the encrypted file what it says of the plain one (same code, same
 *         message); a changed byte (picked by the input) or a cut is refused.
 * The decryption key is fixed (32 bytes of FUZZ_KEY_SEED_BYTE + 1) and guards
 * nothing. */
#include "fuzz.h"
#include "owlsync/bundle.h"
#include "owlsync/envelope.h"

static int encfd = -1, plainfd = -1;
static keys_trust trust;
static keys_box_public pub;
static const bundle_limits limits = {UINT64_C(1) << 20, UINT64_C(16) << 20};

/* Loads the fixed decryption key through keys_box_load_secret. */
static void load_box_key(void)
{
    const char *tmp = getenv("TMPDIR");
    unsigned char sk[crypto_box_SECRETKEYBYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_box_SECRETKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];
    char dir[4096], path[4200], text[200];
    owl_err err;
    size_t len;
    int fd;

    snprintf(dir, sizeof(dir), "%s/owlsync-fuzz.XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        fuzz_setup_failed("mkdtemp", strerror(errno));
    snprintf(path, sizeof(path), "%s/fuzz.enc", dir);
    memset(sk, FUZZ_KEY_SEED_BYTE + 1, sizeof(sk));
    sodium_bin2base64(b64, sizeof(b64), sk, sizeof(sk), sodium_base64_VARIANT_ORIGINAL);
    len = (size_t)snprintf(text, sizeof(text), "owlsync-x25519-secret:%s\n", b64);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) < 0)
        fuzz_setup_failed("the decryption key", strerror(errno));
    err_clear(&err);
    if (keys_trust_add_decrypt(&trust, path, &err) < 0)
        fuzz_setup_failed("the decryption key", err.msg);
    keys_box_secret_public(trust.dec[0], &pub);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    keys_secret *sk = NULL;
    keys_public pk;
    owl_err err;

    (void)argc;
    (void)argv;
    err_clear(&err);
    if (keys_init(&err) < 0)
        fuzz_setup_failed("keys_init", err.msg);
    encfd = fuzz_memfd();
    plainfd = fuzz_memfd();
    fuzz_load_key(&sk, &pk);
    keys_secret_free(sk);
    if (keys_trust_add(&trust, FUZZ_KEY_ENVIRONMENT, pk.token, &err) < 0)
        fuzz_setup_failed("keys_trust_add", err.msg);
    load_box_key();
    return 0;
}

/* Reads the inner bundle of encfd (size bytes) whole into out (may be NULL);
 * 0, or -1 with err (a verification or I/O error, and nothing else). */
static int read_inner(uint64_t size, unsigned char *out, size_t *outlen, owl_err *err)
{
    envelope_reader *e = NULL;
    unsigned char buf[65536];
    uint64_t pos = 0;
    int rc = -1;

    err_clear(err);
    if (envelope_open(encfd, size, trust.dec, trust.ndec, &e, err) < 0)
        goto out;
    for (;;) {
        ssize_t n = envelope_pread(e, buf, sizeof(buf), pos, err);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        if ((size_t)n > sizeof(buf) || pos + (uint64_t)n > envelope_size(e))
            fuzz_fail("envelope_pread returned %zd bytes at %llu of %llu", n, (unsigned long long)pos,
                      (unsigned long long)envelope_size(e));
        if (out != NULL)
            memcpy(out + pos, buf, (size_t)n);
        pos += (uint64_t)n;
    }
    if (pos != envelope_size(e))
        fuzz_fail("the inner bundle ended at %llu of %llu bytes", (unsigned long long)pos,
                  (unsigned long long)envelope_size(e));
    if (outlen != NULL)
        *outlen = (size_t)pos;
    rc = 0;
out:
    envelope_close(e);
    if (rc < 0 && (err->msg[0] == '\0' || (err->code != OWL_EVERIFY && err->code != OWL_ERUNTIME)))
        fuzz_fail("refused with code %d, message \"%s\"", err->code, err->msg);
    return rc;
}

/* Opens fd as a bundle and reads all of it; the outcome in err (code 0: it verified). */
static void open_bundle(int fd, owl_err *err)
{
    bundle_reader *r = NULL;
    int dfd = dup(fd);

    if (dfd < 0)
        fuzz_setup_failed("dup", strerror(errno));
    err_clear(err);
    if (bundle_open_fd(dfd, "fuzz.owlb", &limits, &trust, &r, err) == 0 && bundle_verify_rest(r, err) == 0)
        err_clear(err);
    bundle_close(r);
}

static void raw_envelope(const uint8_t *data, size_t size)
{
    envelope_header h;
    owl_err err;
    int rc;

    err_clear(&err);
    rc = envelope_parse_header(data, size, &h, &err);
    if (rc == 0 && (h.len > size || h.len > ENVELOPE_HEADER_MAX || h.nrecipients == 0 ||
                    h.nrecipients > ENVELOPE_MAX_RECIPIENTS || h.len != ENVELOPE_HEADER_BYTES(h.nrecipients)))
        fuzz_fail("a parsed header of %zu bytes, %zu recipients, from %zu bytes", h.len, h.nrecipients, size);
    if (rc == 1 && (h.len <= size || h.len > ENVELOPE_HEADER_MAX))
        fuzz_fail("a header asks for %zu bytes of %zu", h.len, size);
    if (rc < 0 && (err.code != OWL_EVERIFY || err.msg[0] == '\0'))
        fuzz_fail("header refused with code %d", err.code);
    fuzz_memfd_set(encfd, data, size);
    if (envelope_detect(data, size))
        (void)read_inner(size, NULL, NULL, &err);
    open_bundle(encfd, &err);
    fuzz_note("as a file: %s", err.code ? err.msg : "verified");
}

static void sealed_inner(const uint8_t *data, size_t size)
{
    unsigned char *got = malloc(size + 1), *env;
    size_t gotlen = 0, elen = 0, at;
    owl_err err, plain_err, enc_err;

    if (got == NULL)
        fuzz_setup_failed("malloc", "out of memory");
    fuzz_memfd_set(plainfd, data, size);
    if (lseek(plainfd, 0, SEEK_SET) < 0)
        fuzz_setup_failed("lseek", strerror(errno));
    fuzz_memfd_reset(encfd);
    err_clear(&err);
    if (envelope_encrypt_fd(plainfd, encfd, &pub, 1, &err) < 0)
        fuzz_fail("cannot encrypt %zu bytes: %s", size, err.msg);
    env = fuzz_memfd_get(encfd, &elen);
    if (elen != ENVELOPE_HEADER_BYTES(1) + size + (size / ENVELOPE_CHUNK + 1) * KEYS_STREAM_ABYTES)
        fuzz_fail("%zu bytes encrypted to %zu", size, elen);
    if (read_inner(elen, got, &gotlen, &err) < 0)
        fuzz_fail("what was encrypted does not decrypt: %s", err.msg);
    if (gotlen != size || memcmp(got, data, size) != 0)
        fuzz_fail("%zu bytes decrypted to other %zu bytes", size, gotlen);

    /* The bundle reader cannot tell the two apart, but by the key */
    open_bundle(plainfd, &plain_err);
    open_bundle(encfd, &enc_err);
    if (envelope_detect(data, size)) {
        /* an envelope in an envelope: refused as such, whatever the inner one says */
        if (enc_err.code != OWL_EVERIFY || strcmp(enc_err.msg, "bundle is encrypted more than once") != 0)
            fuzz_fail("a bundle encrypted twice: %d \"%s\"", enc_err.code, enc_err.msg);
    } else if (plain_err.code != enc_err.code || strcmp(plain_err.msg, enc_err.msg) != 0)
        fuzz_fail("plain: %d \"%s\"; encrypted: %d \"%s\"", plain_err.code, plain_err.msg, enc_err.code, enc_err.msg);
    fuzz_note("inner: %s", plain_err.code ? plain_err.msg : "verified");

    /* One changed bit anywhere, picked by the input, and a cut: refused */
    at = size > 0 ? ((size_t)data[size - 1] * 7919u + size) % elen : elen / 2;
    env[at] ^= (unsigned char)(1u << (size % 8));
    fuzz_memfd_set(encfd, env, elen);
    if (read_inner(elen, NULL, NULL, &err) == 0)
        fuzz_fail("a bit flipped at %zu of %zu was not noticed", at, elen);
    env[at] ^= (unsigned char)(1u << (size % 8));
    fuzz_memfd_set(encfd, env, elen - 1 - at % 40);
    if (read_inner(elen - 1 - at % 40, NULL, NULL, &err) == 0)
        fuzz_fail("a cut of %zu bytes was not noticed", 1 + at % 40);
    free(env);
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        sealed_inner(data + 1, size - 1);
    else
        raw_envelope(data + 1, size - 1);
    return 0;
}
