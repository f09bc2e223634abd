/* owlsync fuzz harnesses: what they share. The libFuzzer entry points, a
 * memory file to hand bytes to code that reads a file, the fixed test key the
 * signed-bundle harness and the seed corpus sign with, and a way to fail that
 * libFuzzer reports as a crash (a broken property, not a sanitizer's find). */
#ifndef OWLSYNC_FUZZ_H
#define OWLSYNC_FUZZ_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "owlsync/error.h"
#include "owlsync/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The byte the fixed test key's 32-byte seed is made of. The key signs the
 * seed corpus's bundles (tests/fuzz/make-corpus.sh exports with it) and every
 * bundle the signed-bundle harness builds; it guards nothing. */
#define FUZZ_KEY_SEED_BYTE 0x5a
#define FUZZ_KEY_ENVIRONMENT "prod"

/* A property of the code under test does not hold: report and abort, which
 * libFuzzer records as a crash with the input that caused it. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void fuzz_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("owlsync fuzz: property failed: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* With OWLSYNC_FUZZ_VERBOSE set, says what the code under test answered
 * (run a harness on one input to see why it is refused). */
__attribute__((format(printf, 1, 2))) static inline void fuzz_note(const char *fmt, ...)
{
    static int verbose = -1;
    va_list ap;

    if (verbose < 0)
        verbose = getenv("OWLSYNC_FUZZ_VERBOSE") != NULL;
    if (!verbose)
        return;
    fputs("owlsync fuzz: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The harness itself cannot start (no memory file, no key): not a finding. */
__attribute__((noreturn)) static inline void fuzz_setup_failed(const char *what, const char *why)
{
    fprintf(stderr, "owlsync fuzz: setup failed: %s: %s\n", what, why);
    exit(2);
}

/* A file in memory, for code that reads a file by descriptor or by path. */
static inline int fuzz_memfd(void)
{
    int fd = memfd_create("owlsync-fuzz", MFD_CLOEXEC);

    if (fd < 0)
        fuzz_setup_failed("memfd_create", strerror(errno));
    return fd;
}

/* Makes the memory file hold exactly len bytes of buf. */
static inline void fuzz_memfd_set(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    size_t done = 0;

    if (ftruncate(fd, 0) < 0)
        fuzz_setup_failed("ftruncate", strerror(errno));
    while (done < len) {
        ssize_t n = pwrite(fd, p + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fuzz_setup_failed("pwrite", n < 0 ? strerror(errno) : "wrote nothing");
        done += (size_t)n;
    }
}

/* Empties the memory file and moves its offset to the start, for a writer. */
static inline void fuzz_memfd_reset(int fd)
{
    if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        fuzz_setup_failed("ftruncate", strerror(errno));
}

/* The memory file's bytes, malloc'd; *len is their count. */
static inline unsigned char *fuzz_memfd_get(int fd, size_t *len)
{
    struct stat st;
    unsigned char *buf;

    if (fstat(fd, &st) < 0)
        fuzz_setup_failed("fstat", strerror(errno));
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        fuzz_setup_failed("malloc", "out of memory");
    if (pread(fd, buf, (size_t)st.st_size, 0) != (ssize_t)st.st_size)
        fuzz_setup_failed("pread", strerror(errno));
    *len = (size_t)st.st_size;
    return buf;
}

/* Writes the fixed test key as an owlsync secret key file (mode 0600) at path,
 * refusing to replace a file, and its public token to path.pub; 0 or -1. */
static inline int fuzz_write_key(const char *path)
{
    unsigned char seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    char text[200], b64[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];
    char pubpath[4096];
    size_t len;
    int fd, rc = -1;

    if (sodium_init() < 0)
        return -1;
    memset(seed, FUZZ_KEY_SEED_BYTE, sizeof(seed));
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_bin2base64(b64, sizeof(b64), sk, sizeof(sk), sodium_base64_VARIANT_ORIGINAL);
    len = (size_t)snprintf(text, sizeof(text), "owlsync-ed25519-secret:%s\n", b64);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        rc = write(fd, text, len) == (ssize_t)len ? 0 : -1;
        if (close(fd) < 0)
            rc = -1;
    }
    sodium_memzero(sk, sizeof(sk));
    if (rc < 0 || (size_t)snprintf(pubpath, sizeof(pubpath), "%s.pub", path) >= sizeof(pubpath))
        return -1;
    sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
    len = (size_t)snprintf(text, sizeof(text), "%s%s\n", KEYS_TOKEN_PREFIX, b64);
    fd = open(pubpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    rc = write(fd, text, len) == (ssize_t)len ? 0 : -1;
    if (close(fd) < 0)
        rc = -1;
    return rc;
}

/* Loads the fixed test key through keys_load_secret, from a key file written
 * to a fresh temporary directory and removed again. */
static inline void fuzz_load_key(keys_secret **sk, keys_public *pk)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096], path[4200], pub[4300];
    owl_err err;

    snprintf(dir, sizeof(dir), "%s/owlsync-fuzz.XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        fuzz_setup_failed("mkdtemp", strerror(errno));
    snprintf(path, sizeof(path), "%s/fuzz.key", dir);
    snprintf(pub, sizeof(pub), "%s.pub", path);
    err_clear(&err);
    if (fuzz_write_key(path) < 0)
        err_set(&err, OWL_ERUNTIME, "cannot write %s", path);
    else if (keys_load_secret(path, sk, &err) == 0)
        keys_secret_public(*sk, pk);
    unlink(path);
    unlink(pub);
    rmdir(dir);
    if (err.code != 0)
        fuzz_setup_failed("the test key", err.msg);
}

#endif
