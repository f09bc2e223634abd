/* Unit tests for agent/bundle.c: real bundles written and read in-process, then
 * hostile ones (flipped bytes, truncation, crafted archives, bombs), each refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>

#include "owlsync/bundle.h"
#include "owlsync/envelope.h"
#include "owlsync/keys.h"
#include "owlsync/manifest.h"
#include "unit.h"

#define MIB (1024 * 1024)

static char tmpdir[64];
static keys_secret *sk1, *sk2;
static keys_public pk1, pk2;
static unsigned bundle_counter;
static keys_trust trust_prod; /* key 1 for environment prod */
static const bundle_limits roomy = {UINT64_C(1) << 30, UINT64_C(1) << 32};

/* A table's name and bytes. */
typedef struct tdata {
    const char *name;
    const void *data;
    size_t len;
} tdata;

/* A signed manifest: its exact bytes and manifest.sig. */
typedef struct signed_manifest {
    char *mbytes;
    size_t mlen;
    char sig[KEYS_SIGFILE_MAX];
    size_t siglen;
} signed_manifest;

static const char rows_a[] = "1\tds_1\n2\tds_1\n3\tds_2\n";
static const char rows_b[] = "10\tds_1\n11\t\\N\n";

static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return p;
}

static int write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = 0;

    if (fd < 0)
        return -1;
    if (len > 0 && write(fd, buf, len) != (ssize_t)len)
        rc = -1;
    if (close(fd) < 0)
        rc = -1;
    return rc;
}

/* Reads a whole file into a malloc'd buffer. */
static unsigned char *read_file(const char *path, size_t *len)
{
    struct stat st;
    unsigned char *buf;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *len = 0;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || (buf = malloc((size_t)st.st_size + 1)) == NULL) {
        close(fd);
        return NULL;
    }
    if (read(fd, buf, (size_t)st.st_size) != (ssize_t)st.st_size) {
        free(buf);
        close(fd);
        return NULL;
    }
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static void hash_hex(const void *buf, size_t len, char *hex)
{
    keys_hash *h = keys_hash_new();

    keys_hash_update(h, buf, len);
    keys_hash_final(h, hex);
    keys_hash_free(h);
}

/* Writes a secret key file made from a fixed seed (so that signatures, and with
 * them whole bundles, are the same on every run) and loads it. */
static int seeded_key(const char *path, unsigned char seedbyte, keys_secret **sk, keys_public *pk)
{
    unsigned char seed[crypto_sign_SEEDBYTES], pub[crypto_sign_PUBLICKEYBYTES], sec[crypto_sign_SECRETKEYBYTES];
    char text[200];
    owl_err err;
    size_t len;
    int fd;

    memset(seed, seedbyte, sizeof(seed));
    crypto_sign_seed_keypair(pub, sec, seed);
    memcpy(text, "owlsync-ed25519-secret:", 23);
    sodium_bin2base64(text + 23, sizeof(text) - 24, sec, sizeof(sec), sodium_base64_VARIANT_ORIGINAL);
    len = strlen(text);
    text[len++] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (keys_load_secret(path, sk, &err) < 0) {
        printf("#   %s\n", err.msg);
        return -1;
    }
    keys_secret_public(*sk, pk);
    return memcmp(pk->pk, pub, sizeof(pub)) == 0 ? 0 : -1;
}

/* A manifest for env describing the tables, key id of pub. */
static manifest *make_manifest(const char *env, const keys_public *pub, const tdata *t, size_t n)
{
    manifest *m = manifest_new();

    if (m == NULL)
        goto fail;
    /* Deterministic, so that every run writes the same sample bundles. */
    snprintf(m->bundle_id, sizeof(m->bundle_id), "0123456789abcdef%016x", ++bundle_counter);
    memcpy(m->key_id, pub->id, sizeof(m->key_id));
    if (manifest_set_string(&m->environment, env) < 0 || manifest_set_string(&m->job, "nightly") < 0 ||
        manifest_set_string(&m->schema, "public") < 0 || manifest_set_string(&m->producer, "owlsync test") < 0 ||
        manifest_add_dataset(m, "ds_1") < 0)
        goto fail;
    m->sequence = 7;
    m->created_at = INT64_C(1700000000000000);
    m->snapshot_at = INT64_C(1699999999000000);
    m->expires_at = INT64_C(1700604800000000);
    for (size_t i = 0; i < n; i++) {
        manifest_table *mt = manifest_add_table(m, t[i].name, "dataset");
        const char *p = t[i].data;
        if (mt == NULL || manifest_table_add_column(mt, "id", "integer") < 0 ||
            manifest_table_add_column(mt, "dataset", "text") < 0)
            goto fail;
        mt->bytes = t[i].len;
        for (size_t k = 0; k < t[i].len; k++)
            mt->rows += p[k] == '\n';
        hash_hex(t[i].data, t[i].len, mt->blake2b);
    }
    return m;
fail:
    manifest_free(m);
    return NULL;
}

/* Serialises and signs m with sk into *sm. */
static int sign_manifest(const manifest *m, const keys_secret *sk, signed_manifest *sm)
{
    owl_err err;

    memset(sm, 0, sizeof(*sm));
    if (manifest_serialize(m, &sm->mbytes, &sm->mlen, &err) < 0 ||
        keys_sign(sk, (const unsigned char *)sm->mbytes, sm->mlen, sm->sig, &sm->siglen, &err) < 0) {
        printf("#   sign_manifest: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Builds and signs the manifest for the tables in one step. */
static int make_signed(const char *env, const keys_secret *sk, const keys_public *pub, const tdata *t,
                       size_t n, signed_manifest *sm)
{
    manifest *m = make_manifest(env, pub, t, n);
    int rc = m != NULL ? sign_manifest(m, sk, sm) : -1;

    manifest_free(m);
    return rc;
}

/* Writes a bundle with bundle_writer_*: manifest, signature, then the tables. */
static int write_bundle(const char *path, bundle_compression comp, const signed_manifest *sm, const tdata *t,
                        size_t n)
{
    bundle_writer *w = NULL;
    owl_err err;
    char name[128];
    int rc = -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    err_clear(&err);
    if (fd < 0)
        return -1;
    if (bundle_writer_open(fd, comp, 3, 1700000000, &w, &err) < 0)
        goto out;
    if (bundle_writer_add(w, "manifest.json", sm->mbytes, sm->mlen, &err) < 0 ||
        bundle_writer_add(w, "manifest.sig", sm->sig, sm->siglen, &err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "data/%s.tsv", t[i].name);
        if (bundle_writer_add(w, name, t[i].data, t[i].len, &err) < 0)
            goto out;
    }
    rc = bundle_writer_close(w, &err);
    w = NULL;
out:
    if (rc < 0)
        printf("#   write_bundle %s: %s\n", path, err.msg);
    bundle_writer_abort(w);
    close(fd);
    return rc;
}

/* The whole job for key 1: manifest, sign, write. */
static int build_bundle(const char *path, bundle_compression comp, const char *env, const tdata *t, size_t n)
{
    signed_manifest sm;
    int rc = -1;

    if (make_signed(env, sk1, &pk1, t, n, &sm) == 0)
        rc = write_bundle(path, comp, &sm, t, n);
    free(sm.mbytes);
    return rc;
}

/* Opens path and reads every table, checking the bytes against t; returns 0 when
 * the whole bundle reads and matches. */
static int read_all(const char *path, const bundle_limits *lim, const keys_trust *trust, const tdata *t,
                    size_t n, size_t bufsize, owl_err *err)
{
    bundle_reader *r = NULL;
    const manifest_table *mt;
    unsigned char *buf = malloc(bufsize), *got = NULL;
    int rc = -1, more;
    size_t i = 0;

    err_clear(err);
    if (buf == NULL || bundle_open(path, lim, trust, &r, err) < 0)
        goto out;
    while ((more = bundle_next_table(r, &mt, err)) > 0) {
        size_t used = 0;
        ssize_t k;
        if (i >= n || strcmp(mt->name, t[i].name) != 0) {
            err_set(err, -1, "unexpected table %s", mt->name);
            goto out;
        }
        free(got);
        got = malloc(t[i].len + 1);
        if (got == NULL)
            goto out;
        while ((k = bundle_read(r, buf, bufsize, err)) > 0) {
            if (used + (size_t)k > t[i].len) {
                err_set(err, -1, "table %s longer than written", mt->name);
                goto out;
            }
            memcpy(got + used, buf, (size_t)k);
            used += (size_t)k;
        }
        if (k < 0)
            goto out;
        if (used != t[i].len || memcmp(got, t[i].data, used) != 0) {
            err_set(err, -1, "table %s differs from what was written", mt->name);
            goto out;
        }
        i++;
    }
    if (more < 0)
        goto out;
    if (i != n) {
        err_set(err, -1, "only %zu of %zu tables", i, n);
        goto out;
    }
    /* the end stays the end */
    if (bundle_next_table(r, &mt, err) != 0 || mt != NULL) {
        err_set(err, -1, "bundle_next_table after the end did not return 0");
        goto out;
    }
    rc = 0;
out:
    bundle_close(r);
    free(buf);
    free(got);
    return rc;
}

/* Opens and fully verifies path; 0 when it passes, else -1 with *err set. */
static int open_verify(const char *path, const bundle_limits *lim, const keys_trust *trust, owl_err *err)
{
    bundle_reader *r = NULL;
    int rc;

    err_clear(err);
    rc = bundle_open(path, lim, trust, &r, err);
    if (rc == 0)
        rc = bundle_verify_rest(r, err);
    bundle_close(r);
    return rc;
}

/* Whether a message is one printable line (a "\nHINT: " line aside). */
static int printable_line(const char *msg)
{
    for (const char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' && strncmp(p + 1, "HINT: ", 6) == 0)
            continue;
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            return 0;
    }
    return 1;
}

/* Expects open + verify of path to fail with code and a message containing want. */
static void refused_at(int line, const char *path, const bundle_limits *lim, const keys_trust *trust, int code,
                       const char *want)
{
    owl_err err;

    if (open_verify(path, lim, trust, &err) != -1 || err.code != code || strstr(err.msg, want) == NULL ||
        !printable_line(err.msg)) {
        printf("#   line %d: want code %d and \"%s\", got %d \"%s\"\n", line, code, want, err.code, err.msg);
        unit_failed_checks++;
    }
}

#define REFUSED(path, want) refused_at(__LINE__, path, &roomy, &trust_prod, OWL_EVERIFY, want)

/* ---- hand-made archives ---- */

enum { FMT_USTAR, FMT_PAX, FMT_GNUTAR, FMT_V7, FMT_ZIP, FMT_CPIO, FMT_CPIO_NEWC };

/* One archive entry; type 0 = regular file, 'h' = hard link to link. */
typedef struct ent {
    const char *name;
    int type;
    const char *link;
    const void *data;
    size_t len;
} ent;

#define ARCH_CAP (4 * MIB)

/* Writes entries in the given format, uncompressed, into a malloc'd buffer. */
static unsigned char *arch_mem(int fmt, const ent *e, size_t n, size_t *outlen)
{
    struct archive *a = archive_write_new();
    unsigned char *buf = malloc(ARCH_CAP);
    size_t used = 0;
    int r;

    *outlen = 0;
    if (a == NULL || buf == NULL)
        goto fail;
    switch (fmt) {
    case FMT_USTAR: r = archive_write_set_format_ustar(a); break;
    case FMT_PAX: r = archive_write_set_format_pax(a); break;
    case FMT_GNUTAR: r = archive_write_set_format_gnutar(a); break;
    case FMT_V7: r = archive_write_set_format_v7tar(a); break;
    case FMT_ZIP: r = archive_write_set_format_zip(a); break;
    case FMT_CPIO: r = archive_write_set_format_cpio(a); break;
    default: r = archive_write_set_format_cpio_newc(a); break;
    }
    if (r != ARCHIVE_OK || archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open_memory(a, buf, ARCH_CAP, &used) != ARCHIVE_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].name);
        archive_entry_set_mtime(ae, 1700000000, fmt == FMT_PAX ? 123456789 : 0);
        archive_entry_set_perm(ae, 0644);
        if (e[i].type == 'h') {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, e[i].link);
            archive_entry_set_size(ae, 0);
        } else if (e[i].type == AE_IFLNK) {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e[i].link);
            archive_entry_set_size(ae, 0);
        } else if (e[i].type != 0 && e[i].type != AE_IFREG) {
            archive_entry_set_filetype(ae, (unsigned)e[i].type);
            archive_entry_set_rdev(ae, makedev(1, 3));
            archive_entry_set_size(ae, 0);
        } else {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_size(ae, (la_int64_t)e[i].len);
        }
        r = archive_write_header(a, ae);
        archive_entry_free(ae);
        if (r != ARCHIVE_OK)
            goto fail;
        if ((e[i].type == 0 || e[i].type == AE_IFREG) && e[i].len > 0 &&
            archive_write_data(a, e[i].data, e[i].len) != (la_ssize_t)e[i].len)
            goto fail;
    }
    if (archive_write_close(a) != ARCHIVE_OK)
        goto fail;
    archive_write_free(a);
    *outlen = used;
    return buf;
fail:
    printf("#   arch_mem: %s\n", a ? archive_error_string(a) : "out of memory");
    archive_write_free(a);
    free(buf);
    return NULL;
}

enum { FILT_ZSTD, FILT_GZIP, FILT_XZ, FILT_BZIP2 };

/* Compresses bytes with one filter (libarchive's raw format); malloc'd result. */
static unsigned char *compress_mem(const void *in, size_t len, int filt, size_t *outlen)
{
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    size_t cap = len / 2 + 65536, used = 0;
    unsigned char *buf = malloc(cap);
    int r;

    *outlen = 0;
    if (a == NULL || ae == NULL || buf == NULL)
        goto fail;
    switch (filt) {
    case FILT_ZSTD: r = archive_write_add_filter_zstd(a); break;
    case FILT_GZIP: r = archive_write_add_filter_gzip(a); break;
    case FILT_XZ: r = archive_write_add_filter_xz(a); break;
    default: r = archive_write_add_filter_bzip2(a); break;
    }
    if (r != ARCHIVE_OK || archive_write_set_format_raw(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open_memory(a, buf, cap, &used) != ARCHIVE_OK)
        goto fail;
    archive_entry_set_pathname(ae, "x");
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_size(ae, (la_int64_t)len);
    if (archive_write_header(a, ae) != ARCHIVE_OK || archive_write_data(a, in, len) != (la_ssize_t)len ||
        archive_write_close(a) != ARCHIVE_OK)
        goto fail;
    archive_write_free(a);
    archive_entry_free(ae);
    *outlen = used;
    return buf;
fail:
    printf("#   compress_mem: %s\n", a ? archive_error_string(a) : "out of memory");
    archive_write_free(a);
    archive_entry_free(ae);
    free(buf);
    return NULL;
}

/* Writes the entries as an archive file, compressed with filt (-1 = none). */
static int arch_file(const char *path, int fmt, int filt, const ent *e, size_t n)
{
    size_t len = 0, clen = 0;
    unsigned char *tar = arch_mem(fmt, e, n, &len), *c = NULL;
    int rc = -1;

    if (tar == NULL)
        return -1;
    if (filt < 0) {
        rc = write_file(path, tar, len);
    } else {
        c = compress_mem(tar, len, filt, &clen);
        if (c != NULL)
            rc = write_file(path, c, clen);
    }
    free(tar);
    free(c);
    return rc;
}

/* Rewrites a ustar header's size field and checksum in place. */
static void tar_fix_checksum(unsigned char *h)
{
    unsigned sum = 0;
    char f[16];

    memset(h + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf(f, sizeof(f), "%06o", sum);
    memcpy(h + 148, f, 7); /* six digits and NUL; the space stays */
}

static void tar_set_size(unsigned char *h, uint64_t size)
{
    char f[16];

    snprintf(f, sizeof(f), "%011llo", (unsigned long long)size);
    memcpy(h + 124, f, 12);
    tar_fix_checksum(h);
}

/* ================================ tests ================================ */

static const bundle_compression comps[] = {BUNDLE_ZSTD, BUNDLE_GZIP, BUNDLE_NONE};
static const char *const comp_names[] = {"zstd", "gzip", "none"};

#define BIG_LEN 300000

/* Four tables: small, empty, large (big, BIG_LEN bytes that compress
 * poorly, filled here) and small again. */
static void four_tables(tdata t[4], unsigned char *big)
{
    for (size_t i = 0; i < BIG_LEN; i++)
        big[i] = (unsigned char)((i * 2654435761u) >> 13);
    t[0] = (tdata){"owl_rule", rows_a, strlen(rows_a)};
    t[1] = (tdata){"empty_table", "", 0};
    t[2] = (tdata){"big_one", big, BIG_LEN};
    t[3] = (tdata){"job_schedule", rows_b, strlen(rows_b)};
}

static void test_round_trip(void)
{
    unsigned char *big = malloc(BIG_LEN);
    owl_err err;
    tdata t[4];

    if (big == NULL)
        return;
    four_tables(t, big);
    for (size_t c = 0; c < 3; c++) {
        char name[64];
        snprintf(name, sizeof(name), "rt.%s.owlb", comp_names[c]);
        CHECK(build_bundle(tpath(name), comps[c], "prod", t, 4) == 0);
        /* small, odd and large read buffers */
        if (read_all(tpath(name), &roomy, &trust_prod, t, 4, 1, &err) != 0 ||
            read_all(tpath(name), &roomy, &trust_prod, t, 4, 1000, &err) != 0 ||
            read_all(tpath(name), &roomy, &trust_prod, t, 4, 1 << 20, &err) != 0) {
            printf("#   %s: %s\n", comp_names[c], err.msg);
            CHECK(0);
        }
        /* inspect: no trust, nothing checked but the hashes */
        CHECK(read_all(tpath(name), &roomy, NULL, t, 4, 4096, &err) == 0);
        CHECK(open_verify(tpath(name), &roomy, &trust_prod, &err) == 0);
    }
    /* the file's first bytes say what it is */
    {
        size_t len = 0;
        unsigned char *z = read_file(tpath("rt.zstd.owlb"), &len);
        CHECK(z != NULL && len > 4 && memcmp(z, "\x28\xb5\x2f\xfd", 4) == 0);
        free(z);
        z = read_file(tpath("rt.gzip.owlb"), &len);
        CHECK(z != NULL && len > 10 && z[0] == 0x1f && z[1] == 0x8b);
        /* no time stamp in the gzip header */
        CHECK(z != NULL && len > 10 && memcmp(z + 4, "\0\0\0\0", 4) == 0);
        free(z);
        z = read_file(tpath("rt.none.owlb"), &len);
        CHECK(z != NULL && len > 512 && memcmp(z, "manifest.json", 14) == 0 &&
              memcmp(z + 257, "ustar\0" "00", 8) == 0);
        /* nothing after the two end-of-archive blocks */
        CHECK(z != NULL && len % 512 == 0 && len >= 1024);
        for (size_t i = len >= 1024 ? len - 1024 : 0; z != NULL && i < len; i++)
            CHECK(z[i] == 0);
        free(z);
    }
    free(big);
}

/* Writes a bundle whose tables were compressed ahead, each into frames of its
 * own (cut at `cut` bytes, so most tables span two), and assembled with
 * bundle_writer_copy_frames, as the exporter does. */
static int write_framed(const char *path, bundle_compression comp, const signed_manifest *sm, const tdata *t,
                        size_t n, size_t cut)
{
    bundle_writer *w = NULL;
    bundle_frame *f = NULL;
    owl_err err;
    char name[128];
    int rc = -1, fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int sfd = open(tpath("frames.spool"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    err_clear(&err);
    if (fd < 0 || sfd < 0)
        goto out;
    if (bundle_writer_open(fd, comp, 3, 1700000000, &w, &err) < 0 ||
        bundle_writer_add(w, "manifest.json", sm->mbytes, sm->mlen, &err) < 0 ||
        bundle_writer_add(w, "manifest.sig", sm->sig, sm->siglen, &err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const char *data = t[i].data;
        uint64_t zlen = 0, part = 0;
        if (ftruncate(sfd, 0) < 0 || lseek(sfd, 0, SEEK_SET) < 0)
            goto out;
        /* an empty table has no frame at all */
        for (size_t off = 0; off < t[i].len; off += cut) {
            size_t k = t[i].len - off < cut ? t[i].len - off : cut;
            if (bundle_frame_open(sfd, comp, 3, &f, &err) < 0 || bundle_frame_write(f, data + off, k / 2, &err) < 0 ||
                bundle_frame_write(f, data + off + k / 2, k - k / 2, &err) < 0)
                goto out;
            rc = bundle_frame_close(f, &part, &err);
            f = NULL;
            if (rc < 0)
                goto out;
            rc = -1;
            zlen += part;
        }
        if (lseek(sfd, 0, SEEK_SET) < 0)
            goto out;
        snprintf(name, sizeof(name), "data/%s.tsv", t[i].name);
        if (bundle_writer_begin(w, name, t[i].len, &err) < 0 ||
            bundle_writer_copy_frames(w, name, sfd, zlen, t[i].len, &err) < 0)
            goto out;
    }
    rc = bundle_writer_close(w, &err);
    w = NULL;
out:
    if (rc < 0)
        printf("#   write_framed %s: %s\n", path, err.msg);
    bundle_frame_abort(f);
    bundle_writer_abort(w);
    if (fd >= 0)
        close(fd);
    if (sfd >= 0)
        close(sfd);
    return rc;
}

/* Counts the zstd frame magic numbers or gzip member headers in a file. */
static size_t count_frames(const unsigned char *z, size_t len, bundle_compression comp)
{
    size_t n = 0;

    for (size_t i = 0; i + 4 <= len; i++) {
        if (comp == BUNDLE_ZSTD ? memcmp(z + i, "\x28\xb5\x2f\xfd", 4) == 0 : memcmp(z + i, "\x1f\x8b\x08\x00", 4) == 0)
            n++;
    }
    return n;
}

static void test_frames(void)
{
    unsigned char *big = malloc(BIG_LEN);
    signed_manifest sm = {0};
    owl_err err;
    tdata t[4];

    if (big == NULL)
        return;
    four_tables(t, big);
    CHECK(make_signed("prod", sk1, &pk1, t, 4, &sm) == 0);
    for (size_t c = 0; c < 3 && sm.mbytes != NULL; c++) {
        char framed[64], plain[64];
        size_t flen = 0, plen = 0;
        unsigned char *fz, *pz;

        snprintf(framed, sizeof(framed), "frames.%s.owlb", comp_names[c]);
        snprintf(plain, sizeof(plain), "plain.%s.owlb", comp_names[c]);
        CHECK(write_framed(tpath(framed), comps[c], &sm, t, 4, 100000) == 0);
        CHECK(write_bundle(tpath(plain), comps[c], &sm, t, 4) == 0);
        /* every table reads back as written, the layout check passes */
        if (read_all(tpath(framed), &roomy, &trust_prod, t, 4, 1000, &err) != 0) {
            printf("#   %s: %s\n", comp_names[c], err.msg);
            CHECK(0);
        }
        CHECK(open_verify(tpath(framed), &roomy, &trust_prod, &err) == 0);
        fz = read_file(tpath(framed), &flen);
        pz = read_file(tpath(plain), &plen);
        CHECK(fz != NULL && pz != NULL);
        if (comps[c] == BUNDLE_NONE) {
            /* without compression, frames are the bytes themselves */
            CHECK(flen == plen && fz != NULL && pz != NULL && memcmp(fz, pz, flen) == 0);
        } else if (fz != NULL && pz != NULL) {
            /* the header frame, owl_rule, the frame between, big_one in 3,
             * the frame between, job_schedule, the end: 9 (the empty table
             * has none); the plain writer's stream is one */
            size_t nf = count_frames(fz, flen, comps[c]);
            printf("# %s: %zu frames framed, %zu plain\n", comp_names[c], nf, count_frames(pz, plen, comps[c]));
            CHECK(nf == 9);
            CHECK(count_frames(pz, plen, comps[c]) == 1);
        }
        free(fz);
        free(pz);
    }
    /* copy_frames takes only what the entry has room for */
    {
        bundle_writer *w = NULL;
        int fd = open(tpath("frames.bad.owlb"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int zfd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0 && zfd >= 0);
        CHECK(bundle_writer_open(fd, BUNDLE_ZSTD, 3, 0, &w, &err) == 0);
        CHECK(bundle_writer_begin(w, "data/x.tsv", 10, &err) == 0);
        err_clear(&err);
        CHECK(bundle_writer_copy_frames(w, "data/x.tsv", zfd, 5, 11, &err) == -1);
        CHECK_STR(err.msg, "cannot write bundle (data/x.tsv): more data than its size");
        err_clear(&err);
        CHECK(bundle_writer_copy_frames(w, "data/x.tsv", zfd, 0, 10, &err) == -1);
        CHECK_STR(err.msg, "cannot write bundle (data/x.tsv): no frame holds its data");
        err_clear(&err);
        CHECK(bundle_writer_close(w, &err) == -1);
        CHECK_STR(err.msg, "cannot write bundle: an entry lacks 10 bytes");
        /* ustar's size field holds 11 octal digits: 8 GiB is one byte too many */
        CHECK(bundle_writer_open(fd, BUNDLE_ZSTD, 3, 0, &w, &err) == 0);
        err_clear(&err);
        CHECK(bundle_writer_begin(w, "data/x.tsv", UINT64_C(8) << 30, &err) == -1);
        CHECK(err.code == OWL_EUSAGE);
        CHECK_STR(err.msg, "data/x.tsv would be 8589934592 bytes: a bundle entry holds less than 8 GiB\n"
                           "HINT: split the datasets over several export jobs");
        CHECK(bundle_writer_begin(w, "data/x.tsv", (UINT64_C(8) << 30) - 1, &err) == 0);
        bundle_writer_abort(w);
        if (fd >= 0)
            close(fd);
        if (zfd >= 0)
            close(zfd);
    }
    free(sm.mbytes);
    free(big);
}

/* The archive the writer assembles is byte for byte what libarchive's own
 * ustar writer makes of the same entries: headers, padding, two end blocks. */
static void test_writer_layout(void)
{
    static const char manifest_text[] = "{\"x\":1}";
    static const char sig_text[] = "sig";
    tdata t[] = {{"data/a.tsv", rows_a, strlen(rows_a)}, {"data/empty.tsv", "", 0}, {"data/b.tsv", rows_b, strlen(rows_b)}};
    struct archive *a = archive_write_new();
    unsigned char *mine = NULL, *theirs = NULL;
    size_t mlen = 0, tlen = 0;
    bundle_writer *w = NULL;
    owl_err err;
    int fd = open(tpath("layout.mine"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    err_clear(&err);
    CHECK(fd >= 0 && a != NULL);
    if (fd < 0 || a == NULL)
        goto out;
    CHECK(bundle_writer_open(fd, BUNDLE_NONE, 0, 1700000000, &w, &err) == 0);
    CHECK(bundle_writer_add(w, "manifest.json", manifest_text, strlen(manifest_text), &err) == 0);
    CHECK(bundle_writer_add(w, "manifest.sig", sig_text, strlen(sig_text), &err) == 0);
    for (size_t i = 0; i < 3; i++)
        CHECK(bundle_writer_add(w, t[i].name, t[i].data, t[i].len, &err) == 0);
    CHECK(bundle_writer_close(w, &err) == 0);
    close(fd);

    CHECK(archive_write_set_format_ustar(a) == ARCHIVE_OK);
    CHECK(archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK);
    CHECK(archive_write_open_filename(a, tpath("layout.theirs")) == ARCHIVE_OK);
    {
        tdata all[] = {{"manifest.json", manifest_text, strlen(manifest_text)},
                       {"manifest.sig", sig_text, strlen(sig_text)}, t[0], t[1], t[2]};
        for (size_t i = 0; i < 5; i++) {
            struct archive_entry *e = archive_entry_new();
            archive_entry_set_pathname(e, all[i].name);
            archive_entry_set_size(e, (la_int64_t)all[i].len);
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_mtime(e, 1700000000, 0);
            CHECK(archive_write_header(a, e) == ARCHIVE_OK);
            if (all[i].len > 0)
                CHECK(archive_write_data(a, all[i].data, all[i].len) == (la_ssize_t)all[i].len);
            archive_entry_free(e);
        }
    }
    CHECK(archive_write_close(a) == ARCHIVE_OK);
    mine = read_file(tpath("layout.mine"), &mlen);
    theirs = read_file(tpath("layout.theirs"), &tlen);
    CHECK(mine != NULL && theirs != NULL && mlen == tlen && mlen % 512 == 0);
    CHECK(mine != NULL && theirs != NULL && mlen == tlen && memcmp(mine, theirs, mlen) == 0);
out:
    archive_write_free(a);
    free(mine);
    free(theirs);
}

static void test_open_details(void)
{
    tdata t[] = {{"owl_rule", rows_a, strlen(rows_a)}};
    bundle_reader *r = NULL;
    const manifest *m;
    const keys_trusted *who;
    const manifest_table *mt;
    signed_manifest sm;
    size_t len = 0;
    const char *mb;
    owl_err err;
    char buf[64];

    CHECK(make_signed("prod", sk1, &pk1, t, 1, &sm) == 0);
    CHECK(write_bundle(tpath("d.owlb"), BUNDLE_ZSTD, &sm, t, 1) == 0);

    CHECK(bundle_open(tpath("d.owlb"), &roomy, &trust_prod, &r, &err) == 0);
    if (r == NULL) {
        free(sm.mbytes);
        return;
    }
    m = bundle_manifest(r);
    CHECK_STR(m->environment, "prod");
    CHECK_STR(m->key_id, pk1.id);
    CHECK(m->ntables == 1 && m->tables[0].bytes == strlen(rows_a) && m->tables[0].rows == 3);
    mb = bundle_manifest_bytes(r, &len);
    CHECK(mb != NULL && len == sm.mlen && memcmp(mb, sm.mbytes, len) == 0);
    {
        manifest *again = NULL;
        CHECK(manifest_parse(mb, len, &again, &err) == 0);
        CHECK(again != NULL && strcmp(again->bundle_id, m->bundle_id) == 0);
        manifest_free(again);
    }
    who = bundle_signer(r);
    CHECK(who != NULL && strcmp(who->environment, "prod") == 0 && strcmp(who->key.id, pk1.id) == 0);
    /* reading outside an entry is a caller's error */
    err_clear(&err);
    CHECK(bundle_read(r, buf, sizeof(buf), &err) == -1);
    CHECK(err.code == OWL_ERUNTIME);
    CHECK(bundle_next_table(r, &mt, &err) == 1);
    CHECK(mt != NULL && strcmp(mt->file, "data/owl_rule.tsv") == 0);
    CHECK(bundle_next_table(r, &mt, &err) == 0);
    CHECK(mt == NULL);
    CHECK(bundle_next_table(r, &mt, &err) == 0);
    bundle_close(r);
    bundle_close(NULL);
    free(sm.mbytes);

    /* without trust: opened, not verified */
    r = NULL;
    CHECK(bundle_open(tpath("d.owlb"), &roomy, NULL, &r, &err) == 0);
    CHECK(r != NULL && bundle_signer(r) == NULL);
    CHECK(r != NULL && bundle_verify_rest(r, &err) == 0);
    bundle_close(r);

    /* a bundle with no tables at all */
    CHECK(build_bundle(tpath("none.owlb"), BUNDLE_GZIP, "prod", NULL, 0) == 0);
    CHECK(read_all(tpath("none.owlb"), &roomy, &trust_prod, NULL, 0, 100, &err) == 0);
}

static void test_not_files(void)
{
    owl_err err;

    CHECK(write_file(tpath("empty.owlb"), "", 0) == 0);
    REFUSED(tpath("empty.owlb"), "bundle is empty");
    CHECK(symlink(tpath("d.owlb"), tpath("link.owlb")) == 0);
    REFUSED(tpath("link.owlb"), "is a symbolic link");
    CHECK(mkdir(tpath("dir.owlb"), 0755) == 0);
    REFUSED(tpath("dir.owlb"), "is not a regular file");
    CHECK(open_verify(tpath("missing.owlb"), &roomy, &trust_prod, &err) == -1);
    CHECK(err.code == OWL_ERUNTIME);
    CHECK_CONTAINS(err.msg, "missing.owlb");
    CHECK(write_file(tpath("text.owlb"), "hello, world\n", 13) == 0);
    REFUSED(tpath("text.owlb"), "bundle is damaged or not a bundle");
    {
        unsigned char zeros[10240];
        memset(zeros, 0, sizeof(zeros));
        CHECK(write_file(tpath("zeros.owlb"), zeros, sizeof(zeros)) == 0);
        REFUSED(tpath("zeros.owlb"), "manifest.json");
    }
}

/* The unpacked (decompressed) stream of a file, as libarchive's decoders give it;
 * malloc'd, or NULL when it does not decode. */
static unsigned char *unpack(const char *path, size_t *len)
{
    struct archive *a = archive_read_new();
    struct archive_entry *ae;
    size_t cap = 1 << 16, used = 0;
    unsigned char *buf = malloc(cap);
    la_ssize_t n;

    *len = 0;
    if (a == NULL || buf == NULL)
        goto fail;
    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    if (archive_read_open_filename(a, path, 16384) != ARCHIVE_OK || archive_read_next_header(a, &ae) != ARCHIVE_OK)
        goto fail;
    for (;;) {
        if (used == cap) {
            unsigned char *grown = cap < 64 * MIB ? realloc(buf, cap * 2) : NULL;
            if (grown == NULL)
                goto fail;
            buf = grown;
            cap *= 2;
        }
        n = archive_read_data(a, buf + used, cap - used);
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        used += (size_t)n;
    }
    archive_read_free(a);
    *len = used;
    return buf;
fail:
    archive_read_free(a);
    free(buf);
    return NULL;
}

/* Flips each byte of the file src with x and checks that every variant is
 * refused with OWL_EVERIFY and a one-line message. A variant that passes is a
 * failure unless it unpacks to exactly the original's bytes (the flip changed only
 * the compressed representation: nothing that any reader checks can see it); those
 * offsets are listed. Returns the number of failures. */
static int flip_every_offset(const char *label, const char *src, unsigned char x)
{
    size_t len = 0, ulen = 0, flen = 0;
    unsigned char *orig = read_file(src, &len), *uorig = unpack(src, &ulen), *u;
    const char *path = tpath("flip.owlb");
    char same[4096];
    size_t nsame = 0, slen = 0;
    int failures = 0, fd = -1;
    owl_err err;

    same[0] = '\0';
    if (orig == NULL || uorig == NULL || write_file(path, orig, len) < 0 ||
        (fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
        failures = 1;
        goto out;
    }
    for (size_t off = 0; off < len; off++) {
        unsigned char b = (unsigned char)(orig[off] ^ x);
        if (pwrite(fd, &b, 1, (off_t)off) != 1) {
            failures++;
            break;
        }
        if (open_verify(path, &roomy, &trust_prod, &err) == 0) {
            u = unpack(path, &flen);
            if (u != NULL && flen == ulen && memcmp(u, uorig, ulen) == 0) {
                nsame++;
                if (slen < sizeof(same) - 16)
                    slen += (size_t)snprintf(same + slen, sizeof(same) - slen, " %zu", off);
            } else {
                printf("#   %s: flip ^0x%02x at offset %zu (of %zu) passed verification\n", label, x, off, len);
                failures++;
            }
            free(u);
        } else if (err.code != OWL_EVERIFY || err.msg[0] == '\0' || !printable_line(err.msg)) {
            printf("#   %s: flip ^0x%02x at offset %zu: code %d \"%s\"\n", label, x, off, err.code, err.msg);
            failures++;
        }
        b = orig[off];
        if (pwrite(fd, &b, 1, (off_t)off) != 1) {
            failures++;
            break;
        }
    }
    printf("# %s ^0x%02x: %zu bytes, %zu flips refused, %zu left the unpacked stream identical:%s\n", label, x,
           len, len - nsame - (size_t)failures, nsame, same);
out:
    if (fd >= 0)
        close(fd);
    free(orig);
    free(uorig);
    return failures;
}

static const tdata small_tables[] = {{"owl_rule", rows_a, sizeof(rows_a) - 1}};

/* Every offset gets one flip (^0x01) in each sample; the gzip sample, cheap to
 * open, gets two more patterns. (Under ASan a zstd open costs a few ms: the
 * decoder's window is a fresh large allocation each time.) */
static void test_flip_none(void)
{
    CHECK(build_bundle(tpath("small.none.owlb"), BUNDLE_NONE, "prod", small_tables, 1) == 0);
    CHECK(flip_every_offset("none", tpath("small.none.owlb"), 0x01) == 0);
}

static void test_flip_zstd(void)
{
    CHECK(build_bundle(tpath("small.zstd.owlb"), BUNDLE_ZSTD, "prod", small_tables, 1) == 0);
    CHECK(flip_every_offset("zstd", tpath("small.zstd.owlb"), 0x01) == 0);
}

static void test_flip_gzip(void)
{
    CHECK(build_bundle(tpath("small.gzip.owlb"), BUNDLE_GZIP, "prod", small_tables, 1) == 0);
    CHECK(flip_every_offset("gzip", tpath("small.gzip.owlb"), 0x01) == 0);
    CHECK(flip_every_offset("gzip", tpath("small.gzip.owlb"), 0x80) == 0);
    CHECK(flip_every_offset("gzip", tpath("small.gzip.owlb"), 0xff) == 0);
}

/* Single-byte changes the ^0x01 pass above cannot make: other spellings of a tar
 * header's checksum (which the checksum does not cover) and of its end-of-field
 * bytes, other values in padding. Each header of the uncompressed sample. */
static void test_flip_header_fields(void)
{
    size_t len = 0;
    unsigned char *orig = read_file(tpath("small.none.owlb"), &len), *c = orig ? malloc(len) : NULL;
    static const struct {
        int at;                 /* offset in the header */
        unsigned char from, to; /* when the byte is from, make it to (from 0xff: any) */
    } change[] = {
        {148, '0', ' '}, {148, '0', '\t'}, {148, '0', '\0'}, {149, '0', ' '}, {153, 0xff, ' '},
        {154, 0xff, ' '}, {154, 0xff, 'x'}, {155, 0xff, '\0'}, {155, 0xff, '\n'},
        {107, 0xff, ' '}, {135, 0xff, ' '},  /* end of mode and size fields */
    };
    owl_err err;

    if (c == NULL) {
        CHECK(0);
        free(orig);
        return;
    }
    for (int hdr = 0; hdr < 3; hdr++) {
        size_t h = 0;
        for (int i = 0; i < hdr; i++) {
            char f[13];
            memcpy(f, orig + h + 124, 12);
            f[12] = '\0';
            h += 512 + (strtoull(f, NULL, 8) + 511) / 512 * 512;
        }
        for (size_t k = 0; k < sizeof(change) / sizeof(change[0]); k++) {
            unsigned char was = orig[h + (size_t)change[k].at];
            if (change[k].from != 0xff && was != change[k].from)
                continue;
            if (was == change[k].to)
                continue;
            memcpy(c, orig, len);
            c[h + (size_t)change[k].at] = change[k].to;
            CHECK(write_file(tpath("hdr.owlb"), c, len) == 0);
            if (open_verify(tpath("hdr.owlb"), &roomy, &trust_prod, &err) != -1 || err.code != OWL_EVERIFY) {
                printf("#   header %d byte %d: 0x%02x -> 0x%02x passed verification\n", hdr, change[k].at, was,
                       change[k].to);
                CHECK(0);
            }
        }
    }
    free(orig);
    free(c);
}

/* Shorter prefixes of src are refused: every length near the start and the end
 * and around each 512-byte boundary, and every 11th in between. */
static void truncated_everywhere(const char *src)
{
    size_t len = 0, tried = 0;
    unsigned char *orig = read_file(src, &len);
    const char *path = tpath("cut.owlb");
    owl_err err;

    CHECK(orig != NULL);
    for (size_t cut = 0; orig != NULL && cut < len; cut++) {
        if (!(cut < 32 || len - cut <= 32 || cut % 512 < 2 || cut % 512 > 510 || cut % 11 == 0))
            continue;
        tried++;
        if (write_file(path, orig, cut) < 0) {
            CHECK(0);
            break;
        }
        if (open_verify(path, &roomy, &trust_prod, &err) != -1 || err.code != OWL_EVERIFY ||
            !printable_line(err.msg)) {
            printf("#   %s cut to %zu bytes: code %d \"%s\"\n", src, cut, err.code, err.msg);
            CHECK(0);
        }
        if (cut == 0)
            CHECK_STR(err.msg, "bundle is empty");
    }
    printf("# %zu cuts of %s refused\n", tried, src);
    free(orig);
}

static void test_truncated(void)
{
    truncated_everywhere(tpath("small.none.owlb"));
    truncated_everywhere(tpath("small.zstd.owlb"));
    truncated_everywhere(tpath("small.gzip.owlb"));
    REFUSED(tpath("cut.owlb"), "bundle"); /* the last cut, one byte short */
}

/* src with tail appended is refused. */
static void appended_refused(int line, const char *src, const void *tail, size_t tlen)
{
    size_t len = 0;
    unsigned char *orig = read_file(src, &len), *buf = orig ? malloc(len + tlen) : NULL;

    if (buf == NULL) {
        CHECK(0);
    } else {
        memcpy(buf, orig, len);
        memcpy(buf + len, tail, tlen);
        CHECK(write_file(tpath("tail.owlb"), buf, len + tlen) == 0);
        refused_at(line, tpath("tail.owlb"), &roomy, &trust_prod, OWL_EVERIFY, "bundle");
    }
    free(orig);
    free(buf);
}

static void test_appended(void)
{
    unsigned char zeros[10240];
    size_t zlen = 0, glen = 0;
    unsigned char *zframe, *gmember;

    memset(zeros, 0, sizeof(zeros));
    zframe = compress_mem(zeros, 1024, FILT_ZSTD, &zlen);
    gmember = compress_mem(zeros, 1024, FILT_GZIP, &glen);
    CHECK(zframe != NULL && gmember != NULL);
    for (int i = 0; i < 3; i++) {
        const char *src = tpath(i == 0 ? "small.none.owlb" : i == 1 ? "small.zstd.owlb" : "small.gzip.owlb");
        appended_refused(__LINE__, src, "x", 1);
        appended_refused(__LINE__, src, zeros, 1);
        appended_refused(__LINE__, src, zeros, 512);
        appended_refused(__LINE__, src, zeros, sizeof(zeros));
        appended_refused(__LINE__, src, "\x1f\x8b", 2);
        if (zframe != NULL)
            appended_refused(__LINE__, src, zframe, zlen);
        if (gmember != NULL)
            appended_refused(__LINE__, src, gmember, glen);
    }
    free(zframe);
    free(gmember);
}

/* Encrypts the file at in into out for pub (envelope format version 2). */
static int seal_file(const char *in, const char *out, const keys_box_public *pub)
{
    int ifd = open(in, O_RDONLY | O_CLOEXEC), ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    owl_err err;
    int rc = -1;

    if (ifd >= 0 && ofd >= 0)
        rc = envelope_encrypt_fd(ifd, ofd, pub, 1, &err);
    if (ifd >= 0)
        close(ifd);
    if (ofd >= 0 && close(ofd) < 0)
        rc = -1;
    return rc;
}

/* An encrypted bundle reads as its version-1 bundle does, with the same
 * checks, through every compression and read size; without the key it is
 * refused naming the key it was made for; inspect's way opens it unverified. */
static void test_encrypted(void)
{
    unsigned char *big = malloc(BIG_LEN);
    keys_box_public bpub;
    keys_trust t = {NULL, 0, NULL, 0};
    bundle_reader *r = NULL;
    owl_err err;
    char want[256], ids[BUNDLE_MAX_RECIPIENTS][KEYS_ID_HEX_LEN + 1];
    size_t nids = 0;
    tdata tb[4];

    if (big == NULL)
        return;
    four_tables(tb, big);
    CHECK(keys_box_generate(tpath("enc.key"), &bpub, &err) == 0);
    CHECK(keys_trust_add(&t, "prod", pk1.token, &err) == 0);
    CHECK(keys_trust_add_decrypt(&t, tpath("enc.key"), &err) == 0);
    for (size_t c = 0; c < 3; c++) {
        char name[64], sealed[64];
        snprintf(name, sizeof(name), "enc.%s.owlb", comp_names[c]);
        snprintf(sealed, sizeof(sealed), "enc.%s.sealed.owlb", comp_names[c]);
        CHECK(build_bundle(tpath(name), comps[c], "prod", tb, 4) == 0);
        CHECK(seal_file(tpath(name), tpath(sealed), &bpub) == 0);
        /* no decryption key: refused, naming the key it is for */
        snprintf(want, sizeof(want), "bundle is encrypted for key %s, and no decryption key is configured", bpub.id);
        refused_at(__LINE__, tpath(sealed), &roomy, &trust_prod, OWL_EVERIFY, want);
        if (read_all(tpath(sealed), &roomy, &t, tb, 4, 1, &err) != 0 ||
            read_all(tpath(sealed), &roomy, &t, tb, 4, 1000, &err) != 0 ||
            read_all(tpath(sealed), &roomy, &t, tb, 4, 1 << 20, &err) != 0) {
            printf("#   %s: %s\n", comp_names[c], err.msg);
            CHECK(0);
        }
        CHECK(bundle_open(tpath(sealed), &roomy, &t, &r, &err) == 0);
        CHECK(r != NULL && bundle_decrypted_with(r) != NULL && strcmp(bundle_decrypted_with(r), bpub.id) == 0);
        bundle_close(r);
        r = NULL;
        CHECK(bundle_open(tpath(name), &roomy, &t, &r, &err) == 0);
        CHECK(r != NULL && bundle_decrypted_with(r) == NULL);
        bundle_close(r);
        r = NULL;
        /* the file's recipients, and its manifest without a signature check */
        CHECK(bundle_recipients(tpath(sealed), ids, &nids, &err) == 1 && nids == 1 && strcmp(ids[0], bpub.id) == 0);
        CHECK(bundle_recipients(tpath(name), ids, &nids, &err) == 0 && nids == 0);
        CHECK(bundle_open_unverified(tpath(sealed), &roomy, &t, &r, &err) == 0);
        CHECK(r != NULL && bundle_signer(r) == NULL && strcmp(bundle_manifest(r)->environment, "prod") == 0);
        bundle_close(r);
        r = NULL;
        CHECK(bundle_open_unverified(tpath(sealed), &roomy, NULL, &r, &err) == -1 && err.code == OWL_EVERIFY);
        /* the limits hold for the encrypted file */
        {
            bundle_limits small = {1024, UINT64_C(1) << 32};
            refused_at(__LINE__, tpath(sealed), &small, &t, OWL_EVERIFY, "over max_bundle_size");
        }
    }
    keys_trust_free(&t);
    free(big);
}

static void test_trust(void)
{
    keys_trust t = {NULL, 0, NULL, 0};
    tdata tb[] = {{"owl_rule", rows_a, sizeof(rows_a) - 1}};
    const char *prod = tpath("trust.prod.owlb"), *qa = tpath("trust.qa.owlb");
    bundle_reader *r = NULL;
    owl_err err;
    char want[256];

    CHECK(build_bundle(prod, BUNDLE_ZSTD, "prod", tb, 1) == 0);
    CHECK(build_bundle(qa, BUNDLE_ZSTD, "qa", tb, 1) == 0);

    /* nobody trusted, or only another key */
    snprintf(want, sizeof(want), "bundle is signed by key %s, which is not trusted", pk1.id);
    refused_at(__LINE__, prod, &roomy, &t, OWL_EVERIFY, want);
    CHECK(keys_trust_add(&t, "prod", pk2.token, &err) == 0);
    refused_at(__LINE__, prod, &roomy, &t, OWL_EVERIFY, want);
    keys_trust_free(&t);

    /* trusted only for qa */
    CHECK(keys_trust_add(&t, "qa", pk1.token, &err) == 0);
    snprintf(want, sizeof(want), "bundle from environment prod is signed by key %s, which is trusted only for qa",
             pk1.id);
    refused_at(__LINE__, prod, &roomy, &t, OWL_EVERIFY, want);
    CHECK(open_verify(qa, &roomy, &t, &err) == 0);
    /* listed for both: either works, and the binding found is the bundle's */
    CHECK(keys_trust_add(&t, "prod", pk1.token, &err) == 0);
    CHECK(open_verify(prod, &roomy, &t, &err) == 0);
    CHECK(open_verify(qa, &roomy, &t, &err) == 0);
    CHECK(bundle_open(prod, &roomy, &t, &r, &err) == 0);
    CHECK(r != NULL && bundle_signer(r) != NULL && strcmp(bundle_signer(r)->environment, "prod") == 0);
    bundle_close(r);
    r = NULL;
    CHECK(bundle_open(qa, &roomy, &t, &r, &err) == 0);
    CHECK(r != NULL && bundle_signer(r) != NULL && strcmp(bundle_signer(r)->environment, "qa") == 0);
    bundle_close(r);
    r = NULL;
    keys_trust_free(&t);

    /* "" = any environment (a key given by hand to verify) */
    CHECK(keys_trust_add(&t, "", pk1.token, &err) == 0);
    CHECK(open_verify(prod, &roomy, &t, &err) == 0);
    CHECK(open_verify(qa, &roomy, &t, &err) == 0);
    keys_trust_free(&t);

    /* signed by key 2, which is trusted only for qa; key 1 for prod */
    {
        signed_manifest sm;
        CHECK(keys_trust_add(&t, "prod", pk1.token, &err) == 0);
        CHECK(keys_trust_add(&t, "qa", pk2.token, &err) == 0);
        CHECK(make_signed("prod", sk2, &pk2, tb, 1, &sm) == 0);
        CHECK(write_bundle(tpath("k2.owlb"), BUNDLE_NONE, &sm, tb, 1) == 0);
        snprintf(want, sizeof(want),
                 "bundle from environment prod is signed by key %s, which is trusted only for qa", pk2.id);
        refused_at(__LINE__, tpath("k2.owlb"), &roomy, &t, OWL_EVERIFY, want);
        free(sm.mbytes);
        keys_trust_free(&t);
    }
    /* the manifest names key 2 but key 1 signed it */
    {
        manifest *m = make_manifest("prod", &pk2, tb, 1);
        signed_manifest sm;
        CHECK(m != NULL && sign_manifest(m, sk1, &sm) == 0);
        CHECK(write_bundle(tpath("mixed.owlb"), BUNDLE_NONE, &sm, tb, 1) == 0);
        snprintf(want, sizeof(want), "manifest names key %s but is signed by key %s", pk2.id, pk1.id);
        REFUSED(tpath("mixed.owlb"), want);
        manifest_free(m);
        free(sm.mbytes);
    }
    /* a signature of other bytes; garbage signatures; signed garbage */
    {
        signed_manifest a, b;
        CHECK(make_signed("prod", sk1, &pk1, tb, 1, &a) == 0);
        CHECK(make_signed("prod", sk1, &pk1, tb, 1, &b) == 0); /* another bundle_id */
        memcpy(a.sig, b.sig, sizeof(a.sig));
        CHECK(write_bundle(tpath("othersig.owlb"), BUNDLE_NONE, &a, tb, 1) == 0);
        snprintf(want, sizeof(want), "signature of manifest.json does not verify with key %s", pk1.id);
        REFUSED(tpath("othersig.owlb"), want);
        memcpy(a.sig, "hello\n", 7);
        a.siglen = 6;
        CHECK(write_bundle(tpath("badsig.owlb"), BUNDLE_NONE, &a, tb, 1) == 0);
        REFUSED(tpath("badsig.owlb"), "manifest.sig is malformed");
        a.siglen = 0;
        CHECK(write_bundle(tpath("nosig.owlb"), BUNDLE_NONE, &a, tb, 1) == 0);
        REFUSED(tpath("nosig.owlb"), "manifest.sig is malformed");
        free(a.mbytes);
        a.mbytes = strdup("not json\n");
        a.mlen = strlen(a.mbytes);
        CHECK(keys_sign(sk1, (const unsigned char *)a.mbytes, a.mlen, a.sig, &a.siglen, &err) == 0);
        CHECK(write_bundle(tpath("signedjunk.owlb"), BUNDLE_NONE, &a, tb, 1) == 0);
        REFUSED(tpath("signedjunk.owlb"), "manifest.json is not valid JSON");
        a.mlen = 0;
        CHECK(keys_sign(sk1, (const unsigned char *)a.mbytes, 0, a.sig, &a.siglen, &err) == 0);
        CHECK(write_bundle(tpath("signedempty.owlb"), BUNDLE_NONE, &a, tb, 1) == 0);
        REFUSED(tpath("signedempty.owlb"), "manifest.json is not valid JSON");
        free(a.mbytes);
        free(b.mbytes);
    }
}

/* Entries of a good bundle for key 1 and the tables. */
typedef struct parts {
    signed_manifest sm;
    ent m, s, d[4];
} parts;

static int make_parts(parts *p, const tdata *t, size_t n)
{
    static char names[4][80];

    memset(p, 0, sizeof(*p));
    if (make_signed("prod", sk1, &pk1, t, n, &p->sm) < 0)
        return -1;
    p->m = (ent){"manifest.json", 0, NULL, p->sm.mbytes, p->sm.mlen};
    p->s = (ent){"manifest.sig", 0, NULL, p->sm.sig, p->sm.siglen};
    for (size_t i = 0; i < n && i < 4; i++) {
        snprintf(names[i], sizeof(names[i]), "data/%s.tsv", t[i].name);
        p->d[i] = (ent){names[i], 0, NULL, t[i].data, t[i].len};
    }
    return 0;
}

/* Writes entries (ustar, filt) and expects refusal naming want. */
static void arch_refused(int line, int fmt, int filt, const ent *e, size_t n, const char *want)
{
    if (arch_file(tpath("arch.owlb"), fmt, filt, e, n) < 0) {
        printf("#   line %d: could not write the archive\n", line);
        unit_failed_checks++;
        return;
    }
    refused_at(line, tpath("arch.owlb"), &roomy, &trust_prod, OWL_EVERIFY, want);
}

static void test_entries(void)
{
    tdata t2[] = {{"owl_rule", rows_a, sizeof(rows_a) - 1}, {"job_schedule", rows_b, sizeof(rows_b) - 1}};
    parts p;
    owl_err err;

    if (make_parts(&p, t2, 2) < 0) {
        CHECK(0);
        return;
    }
    ent M = p.m, S = p.s, A = p.d[0], B = p.d[1];
    ent X = {"extra.txt", 0, NULL, "x\n", 2};

    /* the hand-made writer makes good bundles when told to (else the rest means nothing) */
    {
        ent e[] = {M, S, A, B};
        CHECK(arch_file(tpath("arch.owlb"), FMT_USTAR, -1, e, 4) == 0);
        CHECK(read_all(tpath("arch.owlb"), &roomy, &trust_prod, t2, 2, 4096, &err) == 0);
        CHECK(arch_file(tpath("arch.owlb"), FMT_USTAR, FILT_ZSTD, e, 4) == 0);
        CHECK(read_all(tpath("arch.owlb"), &roomy, &trust_prod, t2, 2, 4096, &err) == 0);
        CHECK(arch_file(tpath("arch.owlb"), FMT_USTAR, FILT_GZIP, e, 4) == 0);
        CHECK(read_all(tpath("arch.owlb"), &roomy, &trust_prod, t2, 2, 4096, &err) == 0);
    }
    /* missing entries */
    {
        ent e1[] = {M, A, B};
        ent e2[] = {S, A, B};
        ent e3[] = {M, S, A};
        ent e4[] = {M, S};
        ent e5[] = {M};
        ent e6[] = {M, S, B};
        arch_refused(__LINE__, FMT_USTAR, -1, e1, 3, "bundle entry \"data/owl_rule.tsv\" found where manifest.sig was expected");
        arch_refused(__LINE__, FMT_USTAR, -1, e2, 3, "bundle entry \"manifest.sig\" found where manifest.json was expected");
        arch_refused(__LINE__, FMT_USTAR, -1, e3, 3, "bundle ends before its entry data/job_schedule.tsv");
        arch_refused(__LINE__, FMT_USTAR, -1, e4, 2, "bundle ends before its entry data/owl_rule.tsv");
        arch_refused(__LINE__, FMT_USTAR, -1, e5, 1, "bundle ends before its entry manifest.sig");
        arch_refused(__LINE__, FMT_USTAR, FILT_ZSTD, e6, 3,
                     "bundle entry \"data/job_schedule.tsv\" found where data/owl_rule.tsv was expected");
        arch_refused(__LINE__, FMT_USTAR, -1, NULL, 0, "bundle ends before its entry manifest.json");
    }
    /* extra and reordered entries */
    {
        ent e1[] = {M, S, A, B, X};
        ent e2[] = {M, S, A, B, B};
        ent e3[] = {M, S, B, A};
        ent e4[] = {S, M, A, B};
        ent e5[] = {M, M, S, A, B};
        ent e6[] = {M, S, X, A, B};
        arch_refused(__LINE__, FMT_USTAR, -1, e1, 5, "bundle has an unexpected extra entry \"extra.txt\"");
        arch_refused(__LINE__, FMT_USTAR, FILT_GZIP, e2, 5, "bundle has an unexpected extra entry \"data/job_schedule.tsv\"");
        arch_refused(__LINE__, FMT_USTAR, -1, e3, 4,
                     "bundle entry \"data/job_schedule.tsv\" found where data/owl_rule.tsv was expected");
        arch_refused(__LINE__, FMT_USTAR, -1, e4, 4, "bundle entry \"manifest.sig\" found where manifest.json was expected");
        arch_refused(__LINE__, FMT_USTAR, -1, e5, 5, "bundle entry \"manifest.json\" found where manifest.sig was expected");
        arch_refused(__LINE__, FMT_USTAR, -1, e6, 5, "bundle entry \"extra.txt\" found where data/owl_rule.tsv was expected");
    }
    /* names that climb out, are absolute, or only look right */
    {
        static const char *bad[] = {"../x", "/etc/x", "data/../../x", "./data/owl_rule.tsv", "data//owl_rule.tsv",
                                    "/data/owl_rule.tsv", "data/owl_rule.tsv/", "DATA/owl_rule.tsv",
                                    "data/owl_rule.tsv\\", "data\\owl_rule.tsv", "data/../data/owl_rule.tsv"};
        char want[256];
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            ent d = A;
            d.name = bad[i];
            ent e[] = {M, S, d, B};
            char shown[64];
            size_t o = 0;
            for (const char *c = bad[i]; *c != '\0'; c++) { /* a backslash is shown escaped */
                if (*c == '\\')
                    shown[o++] = '\\';
                shown[o++] = *c;
            }
            shown[o] = '\0';
            snprintf(want, sizeof(want), "bundle entry \"%s\" found where data/owl_rule.tsv was expected", shown);
            arch_refused(__LINE__, FMT_USTAR, -1, e, 4, want);
        }
        for (size_t i = 0; i < 3; i++) {
            ent m = M;
            m.name = i == 0 ? "../manifest.json" : i == 1 ? "/manifest.json" : "./manifest.json";
            ent e[] = {m, S, A, B};
            arch_refused(__LINE__, FMT_USTAR, -1, e, 4, "found where manifest.json was expected");
        }
        /* a name with control characters is not pasted into the message */
        {
            ent d = A;
            d.name = "data/\x1b[31mowl\rrule\n.tsv";
            ent e[] = {M, S, d, B};
            arch_refused(__LINE__, FMT_USTAR, -1, e, 4, "found where data/owl_rule.tsv was expected");
            ent e2[] = {M, S, A, B, d};
            arch_refused(__LINE__, FMT_USTAR, -1, e2, 5, "bundle has an unexpected extra entry");
        }
    }
    /* links and special files under the right names */
    {
        ent sym = {"data/owl_rule.tsv", AE_IFLNK, "/etc/passwd", NULL, 0};
        ent hard = {"data/owl_rule.tsv", 'h', "manifest.json", NULL, 0};
        ent chr = {"data/owl_rule.tsv", AE_IFCHR, NULL, NULL, 0};
        ent blk = {"data/owl_rule.tsv", AE_IFBLK, NULL, NULL, 0};
        ent fifo = {"data/owl_rule.tsv", AE_IFIFO, NULL, NULL, 0};
        ent dir = {"data/owl_rule.tsv", AE_IFDIR, NULL, NULL, 0};
        ent msym = {"manifest.json", AE_IFLNK, "/etc/passwd", NULL, 0};
        ent shard = {"manifest.sig", 'h', "manifest.json", NULL, 0};
        ent ddir = {"data/", AE_IFDIR, NULL, NULL, 0};
        const char *want = "bundle entry data/owl_rule.tsv is not a regular file";
        ent e1[] = {M, S, sym, B};
        ent e2[] = {M, S, hard, B};
        ent e3[] = {M, S, chr, B};
        ent e4[] = {M, S, blk, B};
        ent e5[] = {M, S, fifo, B};
        ent e6[] = {M, S, dir, B};
        ent e7[] = {msym, S, A, B};
        ent e8[] = {M, shard, A, B};
        ent e9[] = {M, S, ddir, A, B};
        arch_refused(__LINE__, FMT_USTAR, -1, e1, 4, want);
        arch_refused(__LINE__, FMT_USTAR, -1, e2, 4, want);
        arch_refused(__LINE__, FMT_USTAR, FILT_ZSTD, e3, 4, want);
        arch_refused(__LINE__, FMT_USTAR, -1, e4, 4, want);
        arch_refused(__LINE__, FMT_USTAR, -1, e5, 4, want);
        arch_refused(__LINE__, FMT_USTAR, -1, e6, 4, "data/owl_rule.tsv");
        arch_refused(__LINE__, FMT_USTAR, -1, e7, 4, "bundle entry manifest.json is not a regular file");
        arch_refused(__LINE__, FMT_USTAR, -1, e8, 4, "bundle entry manifest.sig is not a regular file");
        arch_refused(__LINE__, FMT_USTAR, -1, e9, 5, "bundle entry \"data/\" found where data/owl_rule.tsv was expected");
    }
    /* other archive formats, and other or doubled compression */
    {
        ent e[] = {M, S, A, B};
        unsigned char *tar, *once, *twice;
        size_t len = 0, l1 = 0, l2 = 0;

        arch_refused(__LINE__, FMT_ZIP, -1, e, 4, "bundle is damaged or not a bundle");
        arch_refused(__LINE__, FMT_ZIP, FILT_ZSTD, e, 4, "bundle is damaged or not a bundle");
        arch_refused(__LINE__, FMT_CPIO, -1, e, 4, "bundle is damaged or not a bundle");
        arch_refused(__LINE__, FMT_CPIO_NEWC, FILT_GZIP, e, 4, "bundle is damaged or not a bundle");
        arch_refused(__LINE__, FMT_PAX, -1, e, 4, "bundle is not a POSIX ustar archive");
        arch_refused(__LINE__, FMT_PAX, FILT_ZSTD, e, 4, "bundle is not a POSIX ustar archive");
        arch_refused(__LINE__, FMT_GNUTAR, -1, e, 4, "bundle is not a POSIX ustar archive");
        arch_refused(__LINE__, FMT_V7, -1, e, 4, "bundle is not a POSIX ustar archive");
        arch_refused(__LINE__, FMT_USTAR, FILT_XZ, e, 4, "bundle uses an unsupported compression (xz)");
        arch_refused(__LINE__, FMT_USTAR, FILT_BZIP2, e, 4, "bundle uses an unsupported compression (bzip2)");

        tar = arch_mem(FMT_USTAR, e, 4, &len);
        once = tar ? compress_mem(tar, len, FILT_ZSTD, &l1) : NULL;
        twice = once ? compress_mem(once, l1, FILT_GZIP, &l2) : NULL;
        CHECK(twice != NULL && write_file(tpath("double.owlb"), twice, l2) == 0);
        REFUSED(tpath("double.owlb"), "bundle is compressed more than once");
        free(twice);
        twice = once ? compress_mem(once, l1, FILT_ZSTD, &l2) : NULL;
        CHECK(twice != NULL && write_file(tpath("double.owlb"), twice, l2) == 0);
        REFUSED(tpath("double.owlb"), "bundle is compressed more than once");
        free(twice);
        free(once);
        once = tar ? compress_mem(tar, len, FILT_GZIP, &l1) : NULL;
        twice = once ? compress_mem(once, l1, FILT_GZIP, &l2) : NULL;
        CHECK(twice != NULL && write_file(tpath("double.owlb"), twice, l2) == 0);
        REFUSED(tpath("double.owlb"), "bundle is compressed more than once");
        free(twice);
        free(once);
        free(tar);
    }
    free(p.sm.mbytes);
}

/* The offset of the index-th header of an uncompressed ustar buffer. */
static size_t tar_header(const unsigned char *tar, size_t len, int index)
{
    size_t off = 0;

    for (int i = 0; i < index && off + 512 <= len; i++) {
        char f[13];
        memcpy(f, tar + off + 124, 12);
        f[12] = '\0';
        off += 512 + (strtoull(f, NULL, 8) + 511) / 512 * 512;
    }
    return off;
}

/* Writes tar (maybe compressed) to path. */
static int write_tar(const char *path, const unsigned char *tar, size_t len, int filt)
{
    size_t clen = 0;
    unsigned char *c;
    int rc;

    if (filt < 0)
        return write_file(path, tar, len);
    c = compress_mem(tar, len, filt, &clen);
    rc = c != NULL ? write_file(path, c, clen) : -1;
    free(c);
    return rc;
}

static void test_sizes(void)
{
    tdata t1[] = {{"owl_rule", rows_a, sizeof(rows_a) - 1}};
    parts p;
    unsigned char *tar = NULL;
    size_t len = 0;
    char want[256];
    owl_err err;

    if (make_parts(&p, t1, 1) < 0) {
        CHECK(0);
        return;
    }
    ent M = p.m, S = p.s, A = p.d[0];
    ent e[] = {M, S, A};
    tar = arch_mem(FMT_USTAR, e, 3, &len);
    if (tar == NULL) {
        CHECK(0);
        goto out;
    }

    /* header claims: manifest.json of 8 GiB and of one byte over the bound */
    for (int filt = -1; filt <= FILT_ZSTD; filt++) {
        unsigned char *c = malloc(len);
        if (c == NULL)
            break;
        memcpy(c, tar, len);
        tar_set_size(c, UINT64_C(8589934591));
        CHECK(write_tar(tpath("size.owlb"), c, len, filt) == 0);
        snprintf(want, sizeof(want), "bundle entry manifest.json is 8589934591 bytes, over its bound of %d",
                 MANIFEST_MAX_BYTES);
        REFUSED(tpath("size.owlb"), want);
        tar_set_size(c, MANIFEST_MAX_BYTES + 1);
        CHECK(write_tar(tpath("size.owlb"), c, len, filt) == 0);
        snprintf(want, sizeof(want), "bundle entry manifest.json is %d bytes, over its bound of %d",
                 MANIFEST_MAX_BYTES + 1, MANIFEST_MAX_BYTES);
        REFUSED(tpath("size.owlb"), want);
        /* manifest.sig claims 8 GiB */
        memcpy(c, tar, len);
        tar_set_size(c + tar_header(c, len, 1), UINT64_C(8589934591));
        CHECK(write_tar(tpath("size.owlb"), c, len, filt) == 0);
        REFUSED(tpath("size.owlb"), "bundle entry manifest.sig is 8589934591 bytes, over its bound of 255");
        /* the data entry claims 8 GiB */
        memcpy(c, tar, len);
        tar_set_size(c + tar_header(c, len, 2), UINT64_C(8589934591));
        CHECK(write_tar(tpath("size.owlb"), c, len, filt) == 0);
        refused_at(__LINE__, tpath("size.owlb"), &(bundle_limits){UINT64_C(1) << 30, UINT64_C(1) << 40}, &trust_prod,
                   OWL_EVERIFY, "bundle entry data/owl_rule.tsv is 8589934591 bytes, but the manifest says 21");
        REFUSED(tpath("size.owlb"), "bundle unpacks to more than max_unpacked_size (4294967296 bytes)");
        refused_at(__LINE__, tpath("size.owlb"), &(bundle_limits){UINT64_C(1) << 30, MIB}, &trust_prod, OWL_EVERIFY,
                   "bundle unpacks to more than max_unpacked_size (1048576 bytes)");
        free(c);
    }
    /* a real manifest.sig of 256 bytes: the signature line and padding */
    {
        char sig[256];
        memset(sig, ' ', sizeof(sig));
        memcpy(sig, p.sm.sig, p.sm.siglen);
        ent s = {"manifest.sig", 0, NULL, sig, sizeof(sig)};
        ent e2[] = {M, s, A};
        arch_refused(__LINE__, FMT_USTAR, FILT_ZSTD, e2, 3, "bundle entry manifest.sig is 256 bytes, over its bound of 255");
        s.len = 255;
        ent e3[] = {M, s, A};
        arch_refused(__LINE__, FMT_USTAR, -1, e3, 3, "manifest.sig is malformed");
    }
    /* data entry longer or shorter than the manifest says; same size, other bytes */
    {
        char more[64], diff[64];
        snprintf(more, sizeof(more), "%s4\tds_3\n", rows_a);
        ent a1 = {"data/owl_rule.tsv", 0, NULL, more, strlen(more)};
        ent e1[] = {M, S, a1};
        snprintf(want, sizeof(want), "bundle entry data/owl_rule.tsv is %zu bytes, but the manifest says %zu",
                 strlen(more), sizeof(rows_a) - 1);
        arch_refused(__LINE__, FMT_USTAR, -1, e1, 3, want);
        ent a2 = {"data/owl_rule.tsv", 0, NULL, rows_a, sizeof(rows_a) - 2};
        ent e2[] = {M, S, a2};
        snprintf(want, sizeof(want), "bundle entry data/owl_rule.tsv is %zu bytes, but the manifest says %zu",
                 sizeof(rows_a) - 2, sizeof(rows_a) - 1);
        arch_refused(__LINE__, FMT_USTAR, FILT_GZIP, e2, 3, want);
        memcpy(diff, rows_a, sizeof(rows_a));
        diff[0] = '9';
        ent a3 = {"data/owl_rule.tsv", 0, NULL, diff, sizeof(rows_a) - 1};
        ent e3[] = {M, S, a3};
        arch_refused(__LINE__, FMT_USTAR, FILT_ZSTD, e3, 3,
                     "bundle entry data/owl_rule.tsv does not match its hash in the manifest");
    }
    /* bytes hidden in tar padding, an empty block slipped in, a block after the end */
    {
        unsigned char *c = malloc(len + 1024);
        size_t pad = 512 + p.sm.mlen;
        if (c != NULL && pad % 512 != 0) {
            memcpy(c, tar, len);
            c[pad] = 'x';
            CHECK(write_tar(tpath("pad.owlb"), c, len, -1) == 0);
            snprintf(want, sizeof(want), "at offset %zu", pad);
            REFUSED(tpath("pad.owlb"), want);
            CHECK(write_tar(tpath("pad.owlb"), c, len, FILT_ZSTD) == 0);
            REFUSED(tpath("pad.owlb"), want);
            /* data padding, last byte */
            memcpy(c, tar, len);
            c[tar_header(c, len, 3) - 1] = 1;
            CHECK(write_tar(tpath("pad.owlb"), c, len, FILT_GZIP) == 0);
            snprintf(want, sizeof(want), "at offset %zu", tar_header(c, len, 3) - 1);
            REFUSED(tpath("pad.owlb"), want);
            /* in the end-of-archive blocks */
            memcpy(c, tar, len);
            c[len - 1] = 1;
            CHECK(write_tar(tpath("pad.owlb"), c, len, -1) == 0);
            snprintf(want, sizeof(want), "at offset %zu", len - 1);
            REFUSED(tpath("pad.owlb"), want);
            memcpy(c, tar, len);
            c[len - 1024] = 1;
            CHECK(write_tar(tpath("pad.owlb"), c, len, -1) == 0);
            REFUSED(tpath("pad.owlb"), "bundle");
            /* a zero block between manifest.sig and the data entry */
            {
                size_t h = tar_header(tar, len, 2);
                memcpy(c, tar, h);
                memset(c + h, 0, 512);
                memcpy(c + h + 512, tar + h, len - h);
                CHECK(write_tar(tpath("pad.owlb"), c, len + 512, FILT_ZSTD) == 0);
                REFUSED(tpath("pad.owlb"), "bundle");
            }
            /* a junk block after the end */
            memcpy(c, tar, len);
            memset(c + len, 'j', 512);
            CHECK(write_tar(tpath("pad.owlb"), c, len + 512, FILT_ZSTD) == 0);
            REFUSED(tpath("pad.owlb"), "bundle has data after the end of its archive");
        } else {
            CHECK(0);
        }
        free(c);
    }
    /* limits: exactly the unpacked size passes, a byte less does not */
    {
        uint64_t total = p.sm.mlen + p.sm.siglen + sizeof(rows_a) - 1;
        bundle_limits lim = {UINT64_C(1) << 30, total};
        CHECK(write_tar(tpath("lim.owlb"), tar, len, FILT_ZSTD) == 0);
        CHECK(open_verify(tpath("lim.owlb"), &lim, &trust_prod, &err) == 0);
        lim.max_unpacked_size = total - 1;
        refused_at(__LINE__, tpath("lim.owlb"), &lim, &trust_prod, OWL_EVERIFY,
                   "bundle unpacks to more than max_unpacked_size");
        /* even the manifest counts */
        lim.max_unpacked_size = p.sm.mlen - 1;
        refused_at(__LINE__, tpath("lim.owlb"), &lim, &trust_prod, OWL_EVERIFY,
                   "bundle unpacks to more than max_unpacked_size");
        /* max_bundle_size: the file's own size passes, a byte less does not */
        {
            struct stat st;
            CHECK(stat(tpath("lim.owlb"), &st) == 0);
            lim.max_unpacked_size = UINT64_C(1) << 30;
            lim.max_bundle_size = (uint64_t)st.st_size;
            CHECK(open_verify(tpath("lim.owlb"), &lim, &trust_prod, &err) == 0);
            lim.max_bundle_size = (uint64_t)st.st_size - 1;
            snprintf(want, sizeof(want), "bundle is %lld bytes, over max_bundle_size (%lld bytes)",
                     (long long)st.st_size, (long long)st.st_size - 1);
            refused_at(__LINE__, tpath("lim.owlb"), &lim, &trust_prod, OWL_EVERIFY, want);
            lim.max_bundle_size = 0;
            refused_at(__LINE__, tpath("lim.owlb"), &lim, &trust_prod, OWL_EVERIFY, "over max_bundle_size");
        }
    }
out:
    free(tar);
    free(p.sm.mbytes);
}

/* A table of n zero bytes written from /dev/zero: the decompression bomb. */
static void test_bomb(void)
{
    const size_t n = 64 * MIB;
    unsigned char *zeros = calloc(1, 1 << 20);
    manifest *m = NULL;
    signed_manifest sm = {0};
    bundle_writer *w = NULL;
    bundle_reader *r = NULL;
    const manifest_table *mt;
    tdata t = {"owl_rule", zeros, 1 << 20};
    struct stat st;
    owl_err err;
    keys_hash *h = keys_hash_new();
    int fd = -1, zfd = -1;

    if (zeros == NULL || h == NULL)
        goto out;
    m = make_manifest("prod", &pk1, &t, 1);
    if (m == NULL)
        goto out;
    for (size_t i = 0; i < n / (1 << 20); i++)
        keys_hash_update(h, zeros, 1 << 20);
    keys_hash_final(h, m->tables[0].blake2b);
    m->tables[0].bytes = n;
    m->tables[0].rows = 0;
    CHECK(sign_manifest(m, sk1, &sm) == 0);
    fd = open(tpath("bomb.owlb"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    zfd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && zfd >= 0);
    if (fd < 0 || zfd < 0 || sm.mbytes == NULL)
        goto out;
    CHECK(bundle_writer_open(fd, BUNDLE_ZSTD, 3, 0, &w, &err) == 0);
    CHECK(bundle_writer_add(w, "manifest.json", sm.mbytes, sm.mlen, &err) == 0);
    CHECK(bundle_writer_add(w, "manifest.sig", sm.sig, sm.siglen, &err) == 0);
    CHECK(bundle_writer_add_fd(w, "data/owl_rule.tsv", zfd, n, &err) == 0);
    CHECK(bundle_writer_close(w, &err) == 0);
    CHECK(fstat(fd, &st) == 0);
    printf("# %zu MiB of zeros in a %lld-byte bundle\n", n / MIB, (long long)st.st_size);
    CHECK(st.st_size < 64 * 1024);

    /* refused at the entry's header, before any of it is unpacked */
    {
        bundle_limits lim = {UINT64_C(1) << 30, MIB};
        CHECK(bundle_open(tpath("bomb.owlb"), &lim, &trust_prod, &r, &err) == 0);
        err_clear(&err);
        CHECK(r != NULL && bundle_next_table(r, &mt, &err) == -1);
        CHECK(err.code == OWL_EVERIFY);
        CHECK_STR(err.msg, "bundle unpacks to more than max_unpacked_size (1048576 bytes)");
        bundle_close(r);
        r = NULL;
        refused_at(__LINE__, tpath("bomb.owlb"), &lim, &trust_prod, OWL_EVERIFY,
                   "bundle unpacks to more than max_unpacked_size (1048576 bytes)");
        /* compressed size is no help to the limit */
        lim.max_bundle_size = (uint64_t)st.st_size;
        refused_at(__LINE__, tpath("bomb.owlb"), &lim, &trust_prod, OWL_EVERIFY,
                   "bundle unpacks to more than max_unpacked_size");
    }
    /* with room, it is a good bundle */
    {
        bundle_limits lim = {UINT64_C(1) << 30, 65 * MIB};
        CHECK(open_verify(tpath("bomb.owlb"), &lim, &trust_prod, &err) == 0);
    }
    /* zeros hidden after the end of the archive, inside the compressed stream */
    {
        size_t len = 0, clen = 0;
        unsigned char *tar = read_file(tpath("small.none.owlb"), &len), *big = NULL, *c = NULL;
        if (tar != NULL)
            big = calloc(1, len + n);
        if (big != NULL) {
            memcpy(big, tar, len);
            c = compress_mem(big, len + n, FILT_ZSTD, &clen);
        }
        CHECK(c != NULL && write_file(tpath("bomb2.owlb"), c, clen) == 0);
        REFUSED(tpath("bomb2.owlb"), "bundle has data after the end of its archive");
        free(c);
        c = big != NULL ? compress_mem(big, len + n, FILT_GZIP, &clen) : NULL;
        CHECK(c != NULL && write_file(tpath("bomb2.owlb"), c, clen) == 0);
        REFUSED(tpath("bomb2.owlb"), "bundle has data after the end of its archive");
        free(c);
        free(big);
        free(tar);
    }
out:
    if (fd >= 0)
        close(fd);
    if (zfd >= 0)
        close(zfd);
    keys_hash_free(h);
    manifest_free(m);
    free(sm.mbytes);
    free(zeros);
}

/* One ustar header block: name, type flag, size; checksum set. */
static void ustar_block(unsigned char *h, const char *name, char type, uint64_t size)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    tar_set_size(h, size);
    memcpy(h + 136, "00000000000", 12);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    tar_fix_checksum(h);
}

/* A reader decompresses with exactly the filter the file begins with, once:
 * what that yields is read as a tar archive or refused, never bid on for
 * another filter; and the unpacked bytes it works through are bounded by the
 * manifest, before it and after, whatever the compressed bytes are. */
static void test_bounded_reading(void)
{
    tdata t1[] = {{"owl_rule", rows_a, sizeof(rows_a) - 1}};
    parts p;
    unsigned char *tar = NULL, *junk = NULL, *big = NULL;
    size_t len = 0;
    const size_t name_len = 64 * MIB;

    if (make_parts(&p, t1, 1) < 0) {
        CHECK(0);
        return;
    }
    ent e[] = {p.m, p.s, p.d[0]};
    tar = arch_mem(FMT_USTAR, e, 3, &len);
    /* a gzip stream that unpacks to a gzip header naming a file whose name is
     * 64 MiB without its NUL, itself gzipped: a reader that bids for filters
     * on unpacked bytes scans that name into memory */
    big = malloc(name_len + 10);
    if (tar == NULL || big == NULL) {
        CHECK(0);
        goto out;
    }
    memcpy(big, "\x1f\x8b\x08\x08\0\0\0\0\0\x03", 10);
    memset(big + 10, 'A', name_len);
    for (int outer = FILT_ZSTD; outer <= FILT_GZIP; outer++) {
        size_t l1 = 0, l2 = 0;
        unsigned char *once = compress_mem(big, name_len + 10, FILT_GZIP, &l1);
        unsigned char *twice = once != NULL ? compress_mem(once, l1, outer, &l2) : NULL;
        CHECK(twice != NULL && write_file(tpath("nested.owlb"), twice, l2) == 0);
        REFUSED(tpath("nested.owlb"), outer == FILT_GZIP ? "bundle is compressed more than once (gzip inside gzip)"
                                                         : "bundle is compressed more than once (gzip inside zstd)");
        free(once);
        free(twice);
    }

    /* special tar headers before the manifest (each of up to 1 MiB, which
     * libarchive reads whole): refused once they pass the manifest's bound */
    {
        const size_t each = 1024 * 1024 - 512, count = 8;
        size_t jlen = count * (512 + each) + len, off = 0;
        junk = calloc(1, jlen);
        if (junk == NULL) {
            CHECK(0);
            goto out;
        }
        for (size_t i = 0; i < count; i++) {
            ustar_block(junk + off, "pax_global_header", 'g', each);
            memset(junk + off + 512, '\n', each);
            off += 512 + each;
        }
        memcpy(junk + off, tar, len);
        for (int filt = -1; filt <= FILT_GZIP; filt++) {
            char want[160];
            CHECK(write_tar(tpath("special.owlb"), junk, jlen, filt) == 0);
            snprintf(want, sizeof(want), "bundle unpacks to more than %d bytes before the end of its signature",
                     2 * 512 + MANIFEST_MAX_BYTES + 512 + 2 * 65536);
            REFUSED(tpath("special.owlb"), want);
        }
        free(junk);
        junk = NULL;
    }

    /* after the manifest: a special header of 1 MiB before the data entry */
    {
        size_t at = tar_header(tar, len, 2), jlen = len + 512 + MIB;
        junk = calloc(1, jlen);
        if (junk == NULL) {
            CHECK(0);
            goto out;
        }
        memcpy(junk, tar, at);
        ustar_block(junk + at, "pax_global_header", 'g', MIB);
        memset(junk + at + 512, '\n', MIB);
        memcpy(junk + at + 512 + MIB, tar + at, len - at);
        for (int filt = -1; filt <= FILT_GZIP; filt++) {
            CHECK(write_tar(tpath("special.owlb"), junk, jlen, filt) == 0);
            REFUSED(tpath("special.owlb"), "bytes its manifest describes (data/owl_rule.tsv)");
        }
    }
out:
    free(junk);
    free(big);
    free(tar);
    free(p.sm.mbytes);
}

/* A caller that stops reading an entry early still gets its hash checked. */
static void test_early_stop(void)
{
    tdata good[] = {{"owl_rule", rows_a, sizeof(rows_a) - 1}, {"job_schedule", rows_b, sizeof(rows_b) - 1}};
    char diff[sizeof(rows_a)];
    tdata bad[] = {{"owl_rule", diff, sizeof(rows_a) - 1}, {"job_schedule", rows_b, sizeof(rows_b) - 1}};
    bundle_reader *r = NULL;
    const manifest_table *mt;
    signed_manifest sm;
    owl_err err;
    char buf[5];

    memcpy(diff, rows_a, sizeof(rows_a));
    diff[sizeof(rows_a) - 3] = 'X';
    CHECK(build_bundle(tpath("early.owlb"), BUNDLE_ZSTD, "prod", good, 2) == 0);
    /* the manifest describes good[], the entries hold bad[] */
    CHECK(make_signed("prod", sk1, &pk1, good, 2, &sm) == 0);
    CHECK(write_bundle(tpath("early.bad.owlb"), BUNDLE_ZSTD, &sm, bad, 2) == 0);
    free(sm.mbytes);

    /* good: read 5 bytes of the first table, skip the second entirely */
    CHECK(bundle_open(tpath("early.owlb"), &roomy, &trust_prod, &r, &err) == 0);
    CHECK(r != NULL && bundle_next_table(r, &mt, &err) == 1);
    CHECK(r != NULL && bundle_read(r, buf, sizeof(buf), &err) == 5);
    CHECK(r != NULL && bundle_next_table(r, &mt, &err) == 1);
    CHECK(mt != NULL && strcmp(mt->name, "job_schedule") == 0);
    CHECK(r != NULL && bundle_next_table(r, &mt, &err) == 0);
    bundle_close(r);
    r = NULL;

    /* bad: the change is after the bytes read, and still found */
    CHECK(bundle_open(tpath("early.bad.owlb"), &roomy, &trust_prod, &r, &err) == 0);
    CHECK(r != NULL && bundle_next_table(r, &mt, &err) == 1);
    CHECK(r != NULL && bundle_read(r, buf, sizeof(buf), &err) == 5);
    err_clear(&err);
    CHECK(r != NULL && bundle_next_table(r, &mt, &err) == -1);
    CHECK(err.code == OWL_EVERIFY);
    CHECK_STR(err.msg, "bundle entry data/owl_rule.tsv does not match its hash in the manifest");
    bundle_close(r);
    r = NULL;

    /* bad, not read at all before bundle_next_table / bundle_verify_rest */
    CHECK(bundle_open(tpath("early.bad.owlb"), &roomy, &trust_prod, &r, &err) == 0);
    CHECK(r != NULL && bundle_next_table(r, &mt, &err) == 1);
    err_clear(&err);
    CHECK(r != NULL && bundle_next_table(r, &mt, &err) == -1);
    CHECK_STR(err.msg, "bundle entry data/owl_rule.tsv does not match its hash in the manifest");
    bundle_close(r);
    r = NULL;
    CHECK(bundle_open(tpath("early.bad.owlb"), &roomy, &trust_prod, &r, &err) == 0);
    CHECK(r != NULL && bundle_next_table(r, &mt, &err) == 1);
    CHECK(r != NULL && bundle_read(r, buf, 1, &err) == 1);
    err_clear(&err);
    CHECK(r != NULL && bundle_verify_rest(r, &err) == -1);
    CHECK_STR(err.msg, "bundle entry data/owl_rule.tsv does not match its hash in the manifest");
    bundle_close(r);
    r = NULL;
    /* reading to the end reports it at the end */
    {
        ssize_t n;
        size_t total = 0;
        CHECK(bundle_open(tpath("early.bad.owlb"), &roomy, &trust_prod, &r, &err) == 0);
        CHECK(r != NULL && bundle_next_table(r, &mt, &err) == 1);
        while (r != NULL && (n = bundle_read(r, buf, sizeof(buf), &err)) > 0)
            total += (size_t)n;
        CHECK(total == sizeof(rows_a) - 1);
        CHECK_STR(err.msg, "bundle entry data/owl_rule.tsv does not match its hash in the manifest");
        bundle_close(r);
    }
}

int main(void)
{
    owl_err err;

    if (keys_init(&err) < 0) {
        printf("Bail out! %s\n", err.msg);
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/owlsync-test-bundle.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    if (seeded_key(tpath("k1.key"), 1, &sk1, &pk1) < 0 || seeded_key(tpath("k2.key"), 2, &sk2, &pk2) < 0 ||
        keys_trust_add(&trust_prod, "prod", pk1.token, &err) < 0) {
        printf("Bail out! cannot make the test keys\n");
        return 1;
    }
    RUN(test_round_trip);
    RUN(test_frames);
    RUN(test_writer_layout);
    RUN(test_open_details);
    RUN(test_not_files);
    RUN(test_flip_none);
    RUN(test_flip_zstd);
    RUN(test_flip_gzip);
    RUN(test_flip_header_fields);
    RUN(test_truncated);
    RUN(test_appended);
    RUN(test_trust);
    RUN(test_encrypted);
    RUN(test_entries);
    RUN(test_sizes);
    RUN(test_bomb);
    RUN(test_bounded_reading);
    RUN(test_early_stop);

    keys_trust_free(&trust_prod);
    keys_secret_free(sk1);
    keys_secret_free(sk2);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (getenv("OWLSYNC_TEST_KEEP") != NULL)
            printf("# kept %s\n", tmpdir);
        else if (system(cmd) != 0)
            printf("# could not remove %s\n", tmpdir);
    }
    return UNIT_DONE();
}
