/* Unit tests for agent/envelope.c: encrypted bundles (format version 2) made
 * and read back, and every way a changed, cut or foreign one is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/envelope.h"
#include "owlsync/keys.h"
#include "unit.h"

static char tmpdir[64];
static keys_box_secret *ska, *skb, *skc;
static keys_box_public pka, pkb, pkc;

static int memfile(const void *p, size_t len)
{
    int fd = memfd_create("envelope-test", MFD_CLOEXEC);

    if (fd < 0)
        return -1;
    if (len > 0 && write(fd, p, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* Reads all of fd into a new buffer. */
static unsigned char *slurp(int fd, size_t *len)
{
    struct stat st;
    unsigned char *p;

    if (fstat(fd, &st) < 0)
        return NULL;
    p = malloc((size_t)st.st_size + 1);
    if (p == NULL || pread(fd, p, (size_t)st.st_size, 0) != st.st_size) {
        free(p);
        return NULL;
    }
    *len = (size_t)st.st_size;
    return p;
}

/* Encrypts len bytes of plain to the n keys; returns the envelope's bytes. */
static unsigned char *seal(const unsigned char *plain, size_t len, const keys_box_public *to, size_t n, size_t *outlen)
{
    int in = memfile(plain, len), out = memfile(NULL, 0);
    unsigned char *p = NULL;
    owl_err err;

    if (in >= 0 && out >= 0 && envelope_encrypt_fd(in, out, to, n, &err) == 0)
        p = slurp(out, outlen);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return p;
}

/* Opens the envelope's bytes with the keys and reads the inner bundle whole,
 * the way the bundle reader does (64 KiB at a time, from 0). Returns 0 and
 * fills got (when not NULL) or -1 with err. */
static int unseal(const unsigned char *env, size_t len, keys_box_secret *const *dec, size_t ndec, unsigned char *got,
                  size_t *gotlen, owl_err *err)
{
    int fd = memfile(env, len);
    envelope_reader *e = NULL;
    unsigned char buf[65536];
    uint64_t pos = 0;
    int rc = -1;

    if (fd < 0)
        return err_set(err, OWL_ERUNTIME, "memfd");
    if (envelope_open(fd, len, dec, ndec, &e, err) < 0)
        goto out;
    for (;;) {
        ssize_t n = envelope_pread(e, buf, sizeof(buf), pos, err);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        if (got != NULL)
            memcpy(got + pos, buf, (size_t)n);
        pos += (uint64_t)n;
    }
    if (pos != envelope_size(e)) {
        err_set(err, OWL_ERUNTIME, "read %llu of %llu", (unsigned long long)pos, (unsigned long long)envelope_size(e));
        goto out;
    }
    if (gotlen != NULL)
        *gotlen = (size_t)pos;
    rc = 0;
out:
    envelope_close(e);
    close(fd);
    return rc;
}

static unsigned char *random_bytes(size_t len)
{
    unsigned char *p = malloc(len ? len : 1);

    for (size_t i = 0; p != NULL && i < len; i++)
        p[i] = (unsigned char)(rand() & 0xff);
    return p;
}

static void test_round_trip(void)
{
    static const size_t sizes[] = {0,
                                   1,
                                   511,
                                   ENVELOPE_CHUNK - 1,
                                   ENVELOPE_CHUNK,
                                   ENVELOPE_CHUNK + 1,
                                   2 * ENVELOPE_CHUNK,
                                   3 * ENVELOPE_CHUNK + 777};
    keys_box_secret *mine[] = {skb};

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t len = sizes[s], elen = 0, glen = 0;
        unsigned char *plain = random_bytes(len);
        keys_box_public to[] = {pka, pkb};
        unsigned char *env = seal(plain, len, to, 2, &elen);
        unsigned char *got = malloc(len + 1);
        owl_err err;

        CHECK(env != NULL);
        if (env == NULL)
            continue;
        /* header, then full chunks, then a shorter last one */
        CHECK(elen == ENVELOPE_HEADER_BYTES(2) + len + (len / ENVELOPE_CHUNK + 1) * KEYS_STREAM_ABYTES);
        CHECK(envelope_detect(env, elen));
        /* the plain bytes are nowhere in it */
        if (len >= 64)
            CHECK(memmem(env, elen, plain, 64) == NULL);
        CHECK(unseal(env, elen, &ska, 1, got, &glen, &err) == 0);
        CHECK(glen == len && memcmp(got, plain, len) == 0);
        CHECK(unseal(env, elen, mine, 1, got, &glen, &err) == 0);
        CHECK(glen == len && memcmp(got, plain, len) == 0);
        free(plain);
        free(env);
        free(got);
    }
}

/* Reading again from an earlier place starts the stream again. */
static void test_reread(void)
{
    size_t len = 3 * ENVELOPE_CHUNK + 10, elen = 0;
    unsigned char *plain = random_bytes(len);
    unsigned char *env = seal(plain, len, &pka, 1, &elen);
    int fd = memfile(env, elen);
    envelope_reader *e = NULL;
    unsigned char buf[100];
    owl_err err;

    CHECK(envelope_open(fd, elen, &ska, 1, &e, &err) == 0);
    CHECK_STR(envelope_key_id(e), pka.id);
    CHECK(envelope_size(e) == len);
    CHECK(envelope_pread(e, buf, 6, 0, &err) == 6 && memcmp(buf, plain, 6) == 0);
    CHECK(envelope_pread(e, buf, 100, 2 * ENVELOPE_CHUNK + 5, &err) == 100 &&
          memcmp(buf, plain + 2 * ENVELOPE_CHUNK + 5, 100) == 0);
    CHECK(envelope_pread(e, buf, 100, 7, &err) == 100 && memcmp(buf, plain + 7, 100) == 0);
    CHECK(envelope_pread(e, buf, 100, len - 4, &err) == 4 && memcmp(buf, plain + len - 4, 4) == 0);
    CHECK(envelope_pread(e, buf, 100, len, &err) == 0);
    envelope_close(e);
    close(fd);
    free(plain);
    free(env);
}

static void test_wrong_key(void)
{
    size_t len = 1000, elen = 0;
    unsigned char *plain = random_bytes(len);
    keys_box_public to[] = {pka, pkb};
    unsigned char *env = seal(plain, len, to, 2, &elen);
    char want[128];
    owl_err err;

    CHECK(unseal(env, elen, &skc, 1, NULL, NULL, &err) < 0);
    CHECK(err.code == OWL_EVERIFY);
    snprintf(want, sizeof(want), "bundle is encrypted for keys %s and %s, not for this environment's decryption key",
             pka.id, pkb.id);
    CHECK_STR(err.msg, want);
    CHECK(unseal(env, elen, NULL, 0, NULL, NULL, &err) < 0);
    CHECK(err.code == OWL_EVERIFY);
    CHECK_CONTAINS(err.msg, "no decryption key is configured");
    CHECK_CONTAINS(err.msg, pka.id);
    free(plain);
    free(env);
}

/* Every length short of the whole is refused, at open or while reading. */
static void test_truncated(void)
{
    size_t len = 2 * ENVELOPE_CHUNK + 300, elen = 0;
    unsigned char *plain = random_bytes(len);
    unsigned char *env = seal(plain, len, &pka, 1, &elen);
    size_t hl = ENVELOPE_HEADER_BYTES(1);
    owl_err err;
    int bad = 0;

    for (size_t cut = 0; cut < elen; cut += (cut < hl + 64 || cut > elen - 64) ? 1 : 997) {
        if (unseal(env, cut, &ska, 1, NULL, NULL, &err) == 0 || err.code != OWL_EVERIFY) {
            printf("#   truncated to %zu bytes: not refused\n", cut);
            bad++;
        }
    }
    /* at each chunk's end exactly */
    for (size_t k = 1; k <= 2; k++) {
        size_t cut = hl + k * (ENVELOPE_CHUNK + KEYS_STREAM_ABYTES);
        CHECK(unseal(env, cut, &ska, 1, NULL, NULL, &err) < 0 && err.code == OWL_EVERIFY);
    }
    CHECK(bad == 0);
    CHECK(unseal(env, elen, &ska, 1, NULL, NULL, &err) == 0);
    free(plain);
    free(env);
}

static void test_appended(void)
{
    size_t len = 5000, elen = 0;
    unsigned char *plain = random_bytes(len);
    unsigned char *env = seal(plain, len, &pka, 1, &elen);
    unsigned char *more = malloc(elen + ENVELOPE_CHUNK + 40);
    owl_err err;

    memcpy(more, env, elen);
    memset(more + elen, 0, ENVELOPE_CHUNK + 40);
    CHECK(unseal(more, elen + 1, &ska, 1, NULL, NULL, &err) < 0 && err.code == OWL_EVERIFY);
    CHECK(unseal(more, elen + ENVELOPE_CHUNK + KEYS_STREAM_ABYTES, &ska, 1, NULL, NULL, &err) < 0 &&
          err.code == OWL_EVERIFY);
    free(more);
    free(plain);
    free(env);
}

/* A flipped bit anywhere in the header, and at sampled places of the body. */
static void test_flipped(void)
{
    size_t len = 2 * ENVELOPE_CHUNK + 300, elen = 0;
    unsigned char *plain = random_bytes(len);
    keys_box_public to[] = {pkb, pka, pkc};
    unsigned char *env = seal(plain, len, to, 3, &elen);
    size_t hl = ENVELOPE_HEADER_BYTES(3);
    owl_err err;
    int bad = 0;

    for (size_t i = 0; i < elen; i += i < hl + 64 ? 1 : 331) {
        for (unsigned bit = 0; bit < 8; bit += i < hl ? 1 : 3) {
            env[i] ^= (unsigned char)(1u << bit);
            if (unseal(env, elen, &ska, 1, NULL, NULL, &err) == 0 || err.code != OWL_EVERIFY) {
                printf("#   byte %zu bit %u flipped: not refused\n", i, bit);
                bad++;
            }
            env[i] ^= (unsigned char)(1u << bit);
        }
    }
    /* the last bytes too (the last chunk's tag) */
    for (size_t i = elen - 20; i < elen; i++) {
        env[i] ^= 0x80;
        if (unseal(env, elen, &ska, 1, NULL, NULL, &err) == 0)
            bad++;
        env[i] ^= 0x80;
    }
    CHECK(bad == 0);
    CHECK(unseal(env, elen, &ska, 1, NULL, NULL, &err) == 0);
    free(plain);
    free(env);
}

/* The recipients list is authenticated: dropping, swapping or replacing a
 * recipient that is not ours is noticed all the same. */
static void test_recipients_tampered(void)
{
    size_t len = 3000, elen = 0, elen2 = 0;
    unsigned char *plain = random_bytes(len);
    keys_box_public to[] = {pka, pkb};
    unsigned char *env = seal(plain, len, to, 2, &elen);
    unsigned char *other = seal(plain, len, &pkc, 1, &elen2);
    unsigned char *cut = malloc(elen);
    size_t r0 = ENVELOPE_FIXED_BYTES, r1 = r0 + ENVELOPE_RECIPIENT_BYTES;
    unsigned char tmp[ENVELOPE_RECIPIENT_BYTES];
    owl_err err;

    /* b's entry dropped, the count made 1: a reads a well-formed header */
    memcpy(cut, env, r1);
    cut[ENVELOPE_MAGIC_BYTES + 1] = 1;
    memcpy(cut + r1, env + r1 + ENVELOPE_RECIPIENT_BYTES, elen - r1 - ENVELOPE_RECIPIENT_BYTES);
    CHECK(unseal(cut, elen - ENVELOPE_RECIPIENT_BYTES, &ska, 1, NULL, NULL, &err) < 0 && err.code == OWL_EVERIFY);
    CHECK_CONTAINS(err.msg, "header or first chunk was changed");
    /* the two entries swapped */
    memcpy(tmp, env + r0, sizeof(tmp));
    memcpy(env + r0, env + r1, sizeof(tmp));
    memcpy(env + r1, tmp, sizeof(tmp));
    CHECK(unseal(env, elen, &ska, 1, NULL, NULL, &err) < 0 && err.code == OWL_EVERIFY);
    memcpy(env + r1, env + r0, sizeof(tmp));
    memcpy(env + r0, tmp, sizeof(tmp));
    CHECK(unseal(env, elen, &ska, 1, NULL, NULL, &err) == 0);
    /* b's entry replaced by c's entry of another bundle */
    memcpy(tmp, env + r1, sizeof(tmp));
    memcpy(env + r1, other + r0, sizeof(tmp));
    CHECK(unseal(env, elen, &ska, 1, NULL, NULL, &err) < 0 && err.code == OWL_EVERIFY);
    CHECK(unseal(env, elen, &skc, 1, NULL, NULL, &err) < 0 && err.code == OWL_EVERIFY);
    memcpy(env + r1, tmp, sizeof(tmp));
    /* a's sealed key in another bundle's body: that bundle's stream needs its own key */
    CHECK(unseal(env, elen, &ska, 1, NULL, NULL, &err) == 0);
    free(cut);
    free(other);
    free(plain);
    free(env);
}

static void test_header_bounds(void)
{
    unsigned char h[ENVELOPE_HEADER_MAX + ENVELOPE_RECIPIENT_BYTES + 64];
    envelope_header eh;
    owl_err err;

    memset(h, 0, sizeof(h));
    memcpy(h, ENVELOPE_MAGIC, ENVELOPE_MAGIC_BYTES);
    h[ENVELOPE_MAGIC_BYTES] = ENVELOPE_VERSION;
    h[ENVELOPE_MAGIC_BYTES + 1] = ENVELOPE_MAX_RECIPIENTS + 1;
    CHECK(envelope_parse_header(h, sizeof(h), &eh, &err) < 0);
    CHECK_STR(err.msg, "encrypted bundle has 65 recipients (1 to 64 are allowed)");
    h[ENVELOPE_MAGIC_BYTES + 1] = 0;
    CHECK(envelope_parse_header(h, sizeof(h), &eh, &err) < 0);
    h[ENVELOPE_MAGIC_BYTES + 1] = ENVELOPE_MAX_RECIPIENTS;
    CHECK(envelope_parse_header(h, sizeof(h), &eh, &err) == 0 && eh.len == ENVELOPE_HEADER_MAX);
    CHECK(envelope_parse_header(h, 5, &eh, &err) == 1);
    CHECK(envelope_parse_header(h, ENVELOPE_FIXED_BYTES, &eh, &err) == 1 && eh.len == ENVELOPE_HEADER_MAX);
    CHECK(envelope_parse_header(h, ENVELOPE_HEADER_MAX - 1, &eh, &err) == 1);
    h[ENVELOPE_MAGIC_BYTES] = 3;
    CHECK(envelope_parse_header(h, sizeof(h), &eh, &err) < 0);
    CHECK_CONTAINS(err.msg, "format version 3");
    h[0] = 'o';
    CHECK(envelope_parse_header(h, sizeof(h), &eh, &err) < 0);
    CHECK(!envelope_detect(h, sizeof(h)));

    /* the writer's bound */
    {
        keys_box_public many[ENVELOPE_MAX_RECIPIENTS + 1];
        int in = memfile("x", 1), out = memfile(NULL, 0);
        for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++) {
            many[i] = pka;
            many[i].pk[0] = (unsigned char)i;
        }
        CHECK(envelope_encrypt_fd(in, out, many, ENVELOPE_MAX_RECIPIENTS + 1, &err) < 0);
        CHECK_CONTAINS(err.msg, "at most 64 keys");
        close(in);
        close(out);
    }
}

/* A key listed twice is sealed to once. */
static void test_duplicates(void)
{
    size_t elen = 0;
    keys_box_public to[] = {pka, pka, pkb};
    unsigned char *env = seal((const unsigned char *)"abc", 3, to, 3, &elen);

    CHECK(env != NULL && env[ENVELOPE_MAGIC_BYTES + 1] == 2);
    free(env);
}

static int make_key(const char *name, keys_box_secret **sk, keys_box_public *pk)
{
    char path[256];
    owl_err err;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    if (keys_box_generate(path, pk, &err) < 0 || keys_box_load_secret(path, sk, &err) < 0) {
        printf("Bail out! %s\n", err.msg);
        return -1;
    }
    return 0;
}

int main(void)
{
    owl_err err;
    char cmd[128];

    if (keys_init(&err) < 0) {
        printf("Bail out! %s\n", err.msg);
        return 1;
    }
    srand(20);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/owlsync-test-envelope.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    if (make_key("a", &ska, &pka) < 0 || make_key("b", &skb, &pkb) < 0 || make_key("c", &skc, &pkc) < 0)
        return 1;
    RUN(test_round_trip);
    RUN(test_reread);
    RUN(test_wrong_key);
    RUN(test_truncated);
    RUN(test_appended);
    RUN(test_flipped);
    RUN(test_recipients_tampered);
    RUN(test_header_bounds);
    RUN(test_duplicates);
    keys_box_secret_free(ska);
    keys_box_secret_free(skb);
    keys_box_secret_free(skc);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (strncmp(tmpdir, "/tmp/owlsync-test-", 18) == 0 && system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return UNIT_DONE();
}
