/* owlsync bundle files: writing and strictly reading the signed tar archive with
 * libarchive, the only module that includes it. Memory stays flat: data streams. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "owlsync/bundle.h"
#include "owlsync/envelope.h"
#include "owlsync/fileio.h"
#include "owlsync/text.h"

#define IO_CHUNK (64 * 1024)
#define TAR_BLOCK 512
#define TAR_SIZE_MAX UINT64_C(077777777777) /* 11 octal digits: 8 GiB - 1 */
#define MANIFEST_ENTRY "manifest.json"
#define SIG_ENTRY "manifest.sig"

_Static_assert(BUNDLE_MAX_RECIPIENTS == ENVELOPE_MAX_RECIPIENTS, "one bound on recipients");

static uint64_t round_block(uint64_t n)
{
    return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

/* ================================ writer ================================ */

/* A bundle's compressed stream is a run of zstd frames (gzip members), which
 * every zstd (gzip) reader takes as one stream: a table's rows can then be
 * compressed while they stream from the database, into a frame of their own,
 * and the bundle assembled around the frames without compressing twice. */
struct bundle_frame {
    struct archive *a; /* raw format through the filter; NULL for BUNDLE_NONE */
    int fd;
    uint64_t written;  /* bytes written to fd */
    bool discard;      /* aborted: what the compressor still writes goes nowhere */
};

static la_ssize_t frame_write_cb(struct archive *a, void *data, const void *buf, size_t len)
{
    bundle_frame *f = data;

    if (f->discard)
        return (la_ssize_t)len;
    if (fileio_write_all(f->fd, buf, len) < 0) {
        archive_set_error(a, errno, "%s", strerror(errno));
        return -1;
    }
    f->written += len;
    return (la_ssize_t)len;
}

static int frame_fail(bundle_frame *f, owl_err *err, const char *what)
{
    const char *msg = f->a != NULL ? archive_error_string(f->a) : strerror(errno);

    return err_set(err, OWL_ERUNTIME, "cannot write bundle (%s): %s", what, msg ? msg : "unknown error");
}

int bundle_frame_open(int fd, bundle_compression comp, int level, bundle_frame **out, owl_err *err)
{
    bundle_frame *f = calloc(1, sizeof(*f));
    struct archive_entry *e = NULL;
    char opt[32];
    int r;

    *out = NULL;
    if (f == NULL)
        return err_oom(err);
    f->fd = fd;
    if (comp == BUNDLE_NONE) {
        *out = f;
        return 0;
    }
    f->a = archive_write_new();
    e = archive_entry_new();
    if (f->a == NULL || e == NULL) {
        archive_entry_free(e);
        bundle_frame_abort(f);
        return err_oom(err);
    }
    snprintf(opt, sizeof(opt), "%d", level);
    r = archive_write_set_format_raw(f->a);
    if (r == ARCHIVE_OK)
        r = comp == BUNDLE_GZIP ? archive_write_add_filter_gzip(f->a) : archive_write_add_filter_zstd(f->a);
    if (r == ARCHIVE_OK)
        r = archive_write_set_filter_option(f->a, NULL, "compression-level", opt);
    /* No timestamp in a gzip header (an older libarchive may not know the option). */
    if (r == ARCHIVE_OK && comp == BUNDLE_GZIP)
        (void)archive_write_set_filter_option(f->a, "gzip", "timestamp", NULL);
    /* Unblocked: the frame ends where its compressed bytes end, unpadded. */
    if (r == ARCHIVE_OK)
        r = archive_write_set_bytes_per_block(f->a, 0);
    if (r == ARCHIVE_OK)
        r = archive_write_open(f->a, f, NULL, frame_write_cb, NULL);
    if (r == ARCHIVE_OK) {
        archive_entry_set_pathname(e, "frame");
        archive_entry_set_filetype(e, AE_IFREG);
        r = archive_write_header(f->a, e);
    }
    archive_entry_free(e);
    if (r != ARCHIVE_OK) {
        frame_fail(f, err, "open");
        bundle_frame_abort(f);
        return -1;
    }
    *out = f;
    return 0;
}

int bundle_frame_write(bundle_frame *f, const void *buf, size_t len, owl_err *err)
{
    if (len == 0)
        return 0;
    if (f->a == NULL) {
        if (fileio_write_all(f->fd, buf, len) < 0)
            return frame_fail(f, err, "data");
        f->written += len;
        return 0;
    }
    if (archive_write_data(f->a, buf, len) != (la_ssize_t)len)
        return frame_fail(f, err, "data");
    return 0;
}

int bundle_frame_close(bundle_frame *f, uint64_t *written, owl_err *err)
{
    int rc = 0;

    if (f->a != NULL && archive_write_close(f->a) != ARCHIVE_OK)
        rc = frame_fail(f, err, "end of frame");
    if (written != NULL)
        *written = f->written;
    if (f->a != NULL)
        archive_write_free(f->a);
    free(f);
    return rc;
}

void bundle_frame_abort(bundle_frame *f)
{
    if (f == NULL)
        return;
    if (f->a != NULL) {
        /* Closed, not failed: libarchive frees its writer's state only on
         * close. What the compressor still writes is thrown away. */
        f->discard = true;
        (void)archive_write_close(f->a);
        archive_write_free(f->a);
    }
    free(f);
}

struct bundle_writer {
    int fd;
    bundle_compression comp;
    int level;
    int64_t mtime;
    bundle_frame *frame; /* the frame being written; opened when bytes come */
    bool entry;          /* an entry has begun */
    uint64_t left;       /* bytes of the current entry's data still to come */
    uint64_t pad;        /* zero bytes that end its data in the archive */
    char buf[IO_CHUNK];
};

int bundle_writer_open(int fd, bundle_compression comp, int level, int64_t mtime,
                       bundle_writer **out, owl_err *err)
{
    bundle_writer *w = calloc(1, sizeof(*w));

    *out = NULL;
    if (w == NULL)
        return err_oom(err);
    w->fd = fd;
    w->comp = comp;
    w->level = level;
    w->mtime = mtime;
    *out = w;
    return 0;
}

/* Bytes of the archive, into the current frame. */
static int writer_bytes(bundle_writer *w, const void *p, size_t n, owl_err *err)
{
    if (w->frame == NULL && bundle_frame_open(w->fd, w->comp, w->level, &w->frame, err) < 0)
        return -1;
    return bundle_frame_write(w->frame, p, n, err);
}

static int writer_zeros(bundle_writer *w, uint64_t n, owl_err *err)
{
    static const char zeros[TAR_BLOCK];

    while (n > 0) {
        size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
        if (writer_bytes(w, zeros, k, err) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* Where libarchive's ustar writer puts the archive of one empty file: its
 * header is the first block, the end-of-archive blocks follow. */
typedef struct header_sink {
    unsigned char *p;
    size_t len;
} header_sink;

static la_ssize_t header_write_cb(struct archive *a, void *data, const void *buf, size_t len)
{
    header_sink *s = data;
    size_t k = len < TAR_BLOCK - s->len ? len : TAR_BLOCK - s->len;

    memcpy(s->p + s->len, buf, k);
    s->len += k;
    return (la_ssize_t)len;
}

/* The ustar header block of a regular file of size bytes, as libarchive's
 * writer makes it. libarchive is asked for the header of an empty file (so
 * that it writes no data of its own), then the size goes into the size field
 * as libarchive writes it (11 octal digits and a space) and the checksum is
 * computed again (6 octal digits, NUL, space). A unit test holds the result
 * to libarchive's own archive of the same entries. */
static int tar_header(const char *name, uint64_t size, int64_t mtime, unsigned char *hdr, owl_err *err)
{
    struct archive *a = NULL;
    struct archive_entry *e = NULL;
    header_sink sink = {hdr, 0};
    char field[16];
    unsigned sum = 0;
    int r = ARCHIVE_FATAL;

    if (size > TAR_SIZE_MAX)
        return err_set(err, OWL_EUSAGE,
                       "%s would be %llu bytes: a bundle entry holds less than 8 GiB\nHINT: split the datasets over several export jobs",
                       name, (unsigned long long)size);
    a = archive_write_new();
    e = archive_entry_new();
    if (a != NULL && e != NULL) {
        archive_entry_set_pathname(e, name);
        archive_entry_set_size(e, 0);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, (time_t)mtime, 0);
        r = archive_write_set_format_ustar(a);
        if (r == ARCHIVE_OK)
            r = archive_write_set_bytes_per_block(a, 0);
        if (r == ARCHIVE_OK)
            r = archive_write_open(a, &sink, NULL, header_write_cb, NULL);
        if (r == ARCHIVE_OK)
            r = archive_write_header(a, e);
        if (r == ARCHIVE_OK)
            r = archive_write_close(a);
        if (r != ARCHIVE_OK)
            err_set(err, OWL_ERUNTIME, "cannot write bundle (%s): %s", name,
                    archive_error_string(a) ? archive_error_string(a) : "unknown error");
    } else {
        err_oom(err);
    }
    archive_entry_free(e);
    archive_write_free(a);
    if (r != ARCHIVE_OK)
        return -1;
    if (sink.len != TAR_BLOCK)
        return err_set(err, OWL_ERUNTIME, "cannot write bundle (%s): a header of %zu bytes", name, sink.len);
    snprintf(field, sizeof(field), "%011llo ", (unsigned long long)size);
    memcpy(hdr + 124, field, 12);
    memset(hdr + 148, ' ', 8);
    for (size_t i = 0; i < TAR_BLOCK; i++)
        sum += hdr[i];
    snprintf(field, sizeof(field), "%06o", sum);
    memcpy(hdr + 148, field, 6);
    hdr[154] = '\0';
    hdr[155] = ' ';
    return 0;
}

/* Ends the entry before (its padding), then writes the header of the next. */
static int writer_header(bundle_writer *w, const char *name, uint64_t size, owl_err *err)
{
    unsigned char hdr[TAR_BLOCK];

    if (w->entry && w->left > 0)
        return err_set(err, OWL_ERUNTIME, "cannot write bundle: an entry lacks %llu bytes", (unsigned long long)w->left);
    if (tar_header(name, size, w->mtime, hdr, err) < 0 || writer_zeros(w, w->pad, err) < 0 ||
        writer_bytes(w, hdr, sizeof(hdr), err) < 0)
        return -1;
    w->entry = true;
    w->left = size;
    w->pad = round_block(size) - size;
    return 0;
}

static int writer_data(bundle_writer *w, const char *name, const void *buf, size_t len, owl_err *err)
{
    if (len > w->left)
        return err_set(err, OWL_ERUNTIME, "cannot write bundle (%s): more data than its size", name);
    w->left -= len;
    return writer_bytes(w, buf, len, err);
}

int bundle_writer_add(bundle_writer *w, const char *name, const void *buf, size_t len, owl_err *err)
{
    if (writer_header(w, name, len, err) < 0)
        return -1;
    return writer_data(w, name, buf, len, err);
}

int bundle_writer_begin(bundle_writer *w, const char *name, uint64_t size, owl_err *err)
{
    return writer_header(w, name, size, err);
}

int bundle_writer_add_fd(bundle_writer *w, const char *name, int fd, uint64_t size, owl_err *err)
{
    if (writer_header(w, name, size, err) < 0)
        return -1;
    return bundle_writer_copy_fd(w, name, fd, size, err);
}

/* Reads exactly len bytes of fd into w->buf chunks and hands each to fn. */
static int writer_read_fd(bundle_writer *w, const char *name, int fd, uint64_t len,
                          int (*fn)(bundle_writer *, const char *, size_t, owl_err *), owl_err *err)
{
    uint64_t left = len;

    while (left > 0) {
        size_t want = left < sizeof(w->buf) ? (size_t)left : sizeof(w->buf);
        ssize_t n = read(fd, w->buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_set(err, OWL_ERUNTIME, "cannot read spool for %s: %s", name, strerror(errno));
        if (n == 0)
            return err_set(err, OWL_ERUNTIME, "spool for %s ended early", name);
        if (fn(w, name, (size_t)n, err) < 0)
            return -1;
        left -= (uint64_t)n;
    }
    return 0;
}

static int copy_chunk_data(bundle_writer *w, const char *name, size_t n, owl_err *err)
{
    return writer_data(w, name, w->buf, n, err);
}

static int copy_chunk_raw(bundle_writer *w, const char *name, size_t n, owl_err *err)
{
    if (fileio_write_all(w->fd, w->buf, n) < 0)
        return err_set(err, OWL_ERUNTIME, "cannot write bundle (%s): %s", name, strerror(errno));
    return 0;
}

int bundle_writer_copy_fd(bundle_writer *w, const char *name, int fd, uint64_t len, owl_err *err)
{
    return writer_read_fd(w, name, fd, len, copy_chunk_data, err);
}

int bundle_writer_copy_frames(bundle_writer *w, const char *name, int fd, uint64_t zlen, uint64_t len, owl_err *err)
{
    if (len > w->left)
        return err_set(err, OWL_ERUNTIME, "cannot write bundle (%s): more data than its size", name);
    if (zlen == 0 && len > 0)
        return err_set(err, OWL_ERUNTIME, "cannot write bundle (%s): no frame holds its data", name);
    /* The frames begin where a frame ends (none, for no data). */
    if (zlen > 0 && w->frame != NULL) {
        bundle_frame *f = w->frame;
        w->frame = NULL;
        if (bundle_frame_close(f, NULL, err) < 0)
            return -1;
    }
    w->left -= len;
    return writer_read_fd(w, name, fd, zlen, copy_chunk_raw, err);
}

int bundle_writer_close(bundle_writer *w, owl_err *err)
{
    int rc = -1;

    if (w->entry && w->left > 0)
        err_set(err, OWL_ERUNTIME, "cannot write bundle: an entry lacks %llu bytes", (unsigned long long)w->left);
    /* The last entry's padding, then the two zero blocks that end a tar
     * archive; nothing after them. */
    else if (writer_zeros(w, w->pad + 2 * TAR_BLOCK, err) == 0) {
        bundle_frame *f = w->frame;
        w->frame = NULL;
        rc = bundle_frame_close(f, NULL, err);
    }
    bundle_writer_abort(w);
    return rc;
}

void bundle_writer_abort(bundle_writer *w)
{
    if (w == NULL)
        return;
    bundle_frame_abort(w->frame);
    free(w);
}

/* ================================ reader ================================ */

typedef struct zero_range {
    uint64_t from, to; /* bytes of the unpacked stream that must lie in [value, hi] */
    unsigned char value, hi;
} zero_range;

struct bundle_reader {
    char *path;
    int fd;
    envelope_reader *env;    /* an encrypted bundle (version 2): what is read
                              * below is the version-1 bundle inside */
    bool src_failed;         /* the envelope refused a chunk: src_err says why */
    owl_err src_err;
    uint64_t file_size;      /* of the (inner) version-1 bundle */
    off_t pos;               /* where the next read starts: every read is a pread,
                              * so readers of one open file (dup'ed from one
                              * claim) never move each other's place */
    bundle_compression comp; /* decided from the file's first bytes */
    struct archive *z;     /* the one decompressor (raw format); NULL for BUNDLE_NONE */
    struct archive *a;     /* the tar reader (ustar, no filter) over unpacked bytes */
    bundle_limits lim;
    uint64_t raw_read;     /* compressed bytes handed to the decompressor by this pass */
    bool raw_over;         /* the file grew past max_bundle_size */
    uint64_t fed;          /* unpacked bytes handed to the tar reader */
    uint64_t fed_max;      /* its bound: what the manifest says, once it is read */
    bool fed_over;         /* the unpacked stream went past fed_max */
    unsigned char head[6]; /* its first bytes, to name what is not a tar archive */
    size_t nhead;
    uint64_t unpacked;     /* entry bytes declared so far */
    uint64_t expect_pos;   /* where the next header must start in the unpacked stream */
    zero_range *zeros;     /* padding after each entry and the end-of-archive blocks */
    size_t nzeros;
    char *mbytes;          /* manifest.json, exactly */
    size_t mlen;
    char sig[KEYS_SIGFILE_MAX];
    size_t siglen;
    manifest *m;
    const keys_trusted *signer;
    size_t next_table;
    const manifest_table *cur; /* the data entry being read, or NULL */
    uint64_t cur_read;
    keys_hash *hash;
    bool ended;            /* bundle_next_table returned 0 */
    unsigned char raw[IO_CHUNK];
    unsigned char unpacked_buf[IO_CHUNK]; /* what the decompressor hands the tar reader */
    char scratch[IO_CHUNK]; /* unpacked bytes of the layout pass */
};

/* Compressed formats told by their first bytes: the two a bundle may have,
 * and others that get a message of their own. */
static const struct {
    const char *name;
    unsigned char magic[6];
    size_t len;
} magics[] = {
    {"gzip", {0x1f, 0x8b}, 2},                {"zstd", {0x28, 0xb5, 0x2f, 0xfd}, 4},
    {"xz", {0xfd, '7', 'z', 'X', 'Z', 0}, 6}, {"bzip2", {'B', 'Z', 'h'}, 3},
    {"lz4", {0x04, 0x22, 0x4d, 0x18}, 4},     {"lzip", {'L', 'Z', 'I', 'P'}, 4},
    {"compress (.Z)", {0x1f, 0x9d}, 2},       {"lzma", {0x5d, 0, 0}, 3},
};

/* The compressed format the n bytes at p begin with, or NULL. */
static const char *magic_name(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
        if (n >= magics[i].len && memcmp(p, magics[i].magic, magics[i].len) == 0)
            return magics[i].name;
    }
    return NULL;
}

/* Reads up to len bytes of the version-1 bundle at pos: the file's own, or
 * decrypted from its envelope. -1 with r->src_err set. */
static ssize_t src_pread(bundle_reader *r, void *buf, size_t len, off_t pos)
{
    ssize_t n;

    if (r->env != NULL) {
        n = envelope_pread(r->env, buf, len, (uint64_t)pos, &r->src_err);
        if (n < 0)
            r->src_failed = true;
        return n;
    }
    for (;;) {
        n = pread(r->fd, buf, len, pos);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n < 0)
        err_set(&r->src_err, OWL_ERUNTIME, "read error: %s", strerror(errno));
    return n;
}

/* Compressed bytes from the file, for the decompressor, within max_bundle_size. */
static la_ssize_t raw_read(bundle_reader *r, struct archive *a, const void **buf)
{
    ssize_t n;

    n = src_pread(r, r->raw, sizeof(r->raw), r->pos);
    if (n > 0)
        r->pos += n;
    if (n < 0) {
        archive_set_error(a, EIO, "%s", r->src_err.msg);
        return -1;
    }
    r->raw_read += (uint64_t)n;
    if (r->raw_read > r->lim.max_bundle_size) {
        r->raw_over = true;
        archive_set_error(a, EFBIG, "bundle is larger than max_bundle_size");
        return -1;
    }
    *buf = r->raw;
    return n;
}

static la_ssize_t raw_read_cb(struct archive *a, void *data, const void **buf)
{
    return raw_read(data, a, buf);
}

/* Unpacked bytes for the tar reader: from the decompressor, or the file itself
 * when it is not compressed, never more than fed_max in all. However the
 * compressed bytes are made, the work done for them is bounded by what the
 * manifest says the archive holds (before the manifest, by its own bound). */
static la_ssize_t unpacked_read_cb(struct archive *a, void *data, const void **buf)
{
    bundle_reader *r = data;
    la_ssize_t n;

    if (r->z != NULL) {
        n = archive_read_data(r->z, r->unpacked_buf, sizeof(r->unpacked_buf));
        if (n < 0) {
            const char *msg = archive_error_string(r->z);
            archive_set_error(a, archive_errno(r->z), "%s", msg ? msg : "decompression failed");
            return -1;
        }
        *buf = r->unpacked_buf;
    } else {
        n = raw_read(r, a, buf);
        if (n < 0)
            return -1;
    }
    if (r->fed > r->fed_max || (uint64_t)n > r->fed_max - r->fed) {
        r->fed_over = true;
        archive_set_error(a, EFBIG, "bundle unpacks to more than its manifest describes");
        return -1;
    }
    if (r->fed == 0 && n > 0) {
        r->nhead = (size_t)n < sizeof(r->head) ? (size_t)n : sizeof(r->head);
        memcpy(r->head, *buf, r->nhead);
    }
    r->fed += (uint64_t)n;
    return n;
}

/* Fails with the archive's own message, or the limit that was hit. */
static int damaged(bundle_reader *r, owl_err *err, const char *where)
{
    const char *msg = archive_error_string(r->a);

    if (r->src_failed) {
        *err = r->src_err;
        return -1;
    }
    if (r->raw_over)
        return err_set(err, OWL_EVERIFY, "bundle is larger than max_bundle_size (%llu bytes)",
                       (unsigned long long)r->lim.max_bundle_size);
    if (r->z != NULL && magic_name(r->head, r->nhead) != NULL)
        return err_set(err, OWL_EVERIFY, "bundle is compressed more than once (%s inside %s)",
                       magic_name(r->head, r->nhead), r->comp == BUNDLE_GZIP ? "gzip" : "zstd");
    if (r->fed_over && r->m == NULL)
        return err_set(err, OWL_EVERIFY,
                       "bundle unpacks to more than %llu bytes before the end of its signature (%s)",
                       (unsigned long long)r->fed_max, where);
    if (r->fed_over)
        return err_set(err, OWL_EVERIFY, "bundle unpacks to more than the %llu bytes its manifest describes (%s)",
                       (unsigned long long)r->fed_max, where);
    return err_set(err, OWL_EVERIFY, "bundle is damaged or not a bundle (%s): %s", where,
                   msg ? msg : "unknown archive error");
}

/* The compression of the bundle, told by its first bytes: zstd, gzip, or none
 * (then it must be a ustar archive). */
static int detect_compression(bundle_reader *r, owl_err *err)
{
    unsigned char head[6] = {0};
    ssize_t n = src_pread(r, head, sizeof(head), 0);
    const char *name;

    if (n < 0 && r->src_failed) {
        *err = r->src_err;
        return -1;
    }
    if (n < 0)
        return err_set(err, OWL_ERUNTIME, "cannot read %s: %s", r->path, r->src_err.msg);
    name = magic_name(head, (size_t)n);
    if (name == NULL)
        r->comp = BUNDLE_NONE;
    else if (strcmp(name, "gzip") == 0)
        r->comp = BUNDLE_GZIP;
    else if (strcmp(name, "zstd") == 0)
        r->comp = BUNDLE_ZSTD;
    else
        return err_set(err, OWL_EVERIFY, "bundle uses an unsupported compression (%s)\nHINT: a bundle is zstd, gzip or uncompressed",
                       name);
    return 0;
}

/* The decompressor of one pass over the file from its start: exactly the one
 * filter the first bytes named, with no bidding (a filter's output is never
 * looked at for another filter: a gzip stream that unpacks to itself is just
 * bytes that are not a tar archive). NULL for an uncompressed bundle. */
static int open_decompressor(bundle_reader *r, struct archive **out, owl_err *err)
{
    struct archive *z;

    *out = NULL;
    if (r->comp == BUNDLE_NONE)
        return 0;
    r->pos = 0;
    r->raw_read = 0;
    z = archive_read_new();
    if (z == NULL)
        return err_oom(err);
    if (archive_read_support_format_raw(z) != ARCHIVE_OK ||
        archive_read_append_filter(z, r->comp == BUNDLE_GZIP ? ARCHIVE_FILTER_GZIP : ARCHIVE_FILTER_ZSTD) != ARCHIVE_OK ||
        archive_read_open(z, r, NULL, raw_read_cb, NULL) != ARCHIVE_OK) {
        const char *msg = archive_error_string(z);
        if (r->src_failed)
            *err = r->src_err;
        else if (r->raw_over)
            err_set(err, OWL_EVERIFY, "bundle is larger than max_bundle_size (%llu bytes)",
                    (unsigned long long)r->lim.max_bundle_size);
        else
            err_set(err, OWL_EVERIFY, "bundle is damaged or not a bundle (opening): %s",
                    msg ? msg : "unknown archive error");
        archive_read_free(z);
        return -1;
    }
    {
        struct archive_entry *e;
        if (archive_read_next_header(z, &e) != ARCHIVE_OK) {
            const char *msg = archive_error_string(z);
            if (r->src_failed)
                *err = r->src_err;
            else
                err_set(err, OWL_EVERIFY, "bundle is damaged or not a bundle (opening): %s",
                        msg ? msg : "unknown archive error");
            archive_read_free(z);
            return -1;
        }
    }
    *out = z;
    return 0;
}

static int push_range(bundle_reader *r, uint64_t from, uint64_t to, unsigned char value, unsigned char hi,
                      owl_err *err)
{
    zero_range *grown;

    if (from == to)
        return 0;
    grown = realloc(r->zeros, (r->nzeros + 1) * sizeof(*grown));
    if (grown == NULL)
        return err_oom(err);
    r->zeros = grown;
    r->zeros[r->nzeros].from = from;
    r->zeros[r->nzeros].to = to;
    r->zeros[r->nzeros].value = value;
    r->zeros[r->nzeros].hi = hi;
    r->nzeros++;
    return 0;
}

static int push_zero(bundle_reader *r, uint64_t from, uint64_t to, unsigned char value, owl_err *err)
{
    return push_range(r, from, to, value, value, err);
}

/* Reads the next header, which must be a plain regular file called want of at most
 * max bytes. A NULL want means the archive must end here. Sets *size. */
static int next_entry(bundle_reader *r, const char *want, uint64_t max, uint64_t *size, owl_err *err)
{
    struct archive_entry *e = NULL;
    const char *name;
    char shown[4 * 200 + 8];
    la_int64_t pos;
    int rc = archive_read_next_header(r->a, &e);

    if (rc == ARCHIVE_EOF) {
        if (want == NULL)
            return 0;
        return err_set(err, OWL_EVERIFY, "bundle ends before its entry %s (truncated or incomplete)", want);
    }
    if (rc != ARCHIVE_OK)
        return damaged(r, err, want ? want : "end of archive");
    if (archive_format(r->a) != ARCHIVE_FORMAT_TAR_USTAR)
        return err_set(err, OWL_EVERIFY, "bundle is not a POSIX ustar archive (%s)", archive_format_name(r->a));
    name = archive_entry_pathname(e);
    if (name == NULL)
        name = "";
    if (want == NULL)
        return err_set(err, OWL_EVERIFY, "bundle has an unexpected extra entry \"%s\"",
                       text_clean(name, 200, shown, sizeof(shown)));
    if (strcmp(name, want) != 0)
        return err_set(err, OWL_EVERIFY, "bundle entry \"%s\" found where %s was expected",
                       text_clean(name, 200, shown, sizeof(shown)), want);
    if (archive_entry_hardlink(e) != NULL || archive_entry_symlink(e) != NULL ||
        archive_entry_filetype(e) != AE_IFREG || archive_entry_sparse_count(e) > 0)
        return err_set(err, OWL_EVERIFY, "bundle entry %s is not a regular file", want);
    if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
        return err_set(err, OWL_EVERIFY, "bundle entry %s has no size", want);
    *size = (uint64_t)archive_entry_size(e);
    if (*size > max)
        return err_set(err, OWL_EVERIFY, "bundle entry %s is %llu bytes, over its bound of %llu", want,
                       (unsigned long long)*size, (unsigned long long)max);
    if (*size > r->lim.max_unpacked_size - r->unpacked)
        return err_set(err, OWL_EVERIFY, "bundle unpacks to more than max_unpacked_size (%llu bytes)",
                       (unsigned long long)r->lim.max_unpacked_size);
    r->unpacked += *size;
    /* The layout is exactly header, data, zero padding: nothing may hide between. */
    pos = archive_read_header_position(r->a);
    if (pos < 0 || (uint64_t)pos != r->expect_pos)
        return err_set(err, OWL_EVERIFY, "bundle has unexpected data before entry %s", want);
    /* The checksum field is six octal digits, NUL and space, as written: libarchive
     * would accept leading spaces and other terminators, and the checksum does not
     * cover its own field. */
    if (push_range(r, r->expect_pos + 148, r->expect_pos + 154, '0', '7', err) < 0 ||
        push_zero(r, r->expect_pos + 154, r->expect_pos + 155, 0, err) < 0 ||
        push_zero(r, r->expect_pos + 155, r->expect_pos + 156, ' ', err) < 0 ||
        push_zero(r, r->expect_pos + TAR_BLOCK + *size, r->expect_pos + TAR_BLOCK + round_block(*size), 0, err) < 0)
        return -1;
    r->expect_pos += TAR_BLOCK + round_block(*size);
    return 1;
}

/* The bytes of the whole unpacked archive the manifest describes: what is read
 * so far, then a header and padded data per table, then the two zero blocks
 * that end it. Saturates rather than wraps. */
static uint64_t archive_total(const bundle_reader *r)
{
    uint64_t total = r->expect_pos;

    for (size_t i = 0; i < r->m->ntables; i++) {
        uint64_t entry = r->m->tables[i].bytes > UINT64_MAX - 2 * TAR_BLOCK
                             ? UINT64_MAX
                             : TAR_BLOCK + round_block(r->m->tables[i].bytes);
        total = entry > UINT64_MAX - total ? UINT64_MAX : total + entry;
    }
    return total > UINT64_MAX - 2 * TAR_BLOCK ? UINT64_MAX : total + 2 * TAR_BLOCK;
}

/* Reads the whole current entry (size bytes) into a new buffer. */
static int read_small(bundle_reader *r, const char *what, uint64_t size, char **out, owl_err *err)
{
    char *buf = malloc((size_t)size + 1);
    size_t got = 0;

    if (buf == NULL)
        return err_oom(err);
    while (got < size) {
        la_ssize_t n = archive_read_data(r->a, buf + got, (size_t)size - got);
        if (n < 0) {
            free(buf);
            return damaged(r, err, what);
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got != size) {
        free(buf);
        return err_set(err, OWL_EVERIFY, "bundle entry %s is truncated", what);
    }
    buf[got] = '\0';
    *out = buf;
    return 0;
}

int bundle_open(const char *path, const bundle_limits *limits, const keys_trust *trust,
                bundle_reader **out, owl_err *err)
{
    /* O_NONBLOCK: a FIFO named like a bundle must not hang the reader (it is
     * refused below as not a regular file) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

    *out = NULL;
    if (fd < 0)
        return err_set(err, errno == ELOOP ? OWL_EVERIFY : OWL_ERUNTIME, "cannot open %s: %s", path,
                       errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    return bundle_open_fd(fd, path, limits, trust, out, err);
}

/* Opens the envelope of an encrypted bundle (the file starts with its magic)
 * with the decryption keys of dec: what is read from then on is the
 * version-1 bundle inside, as large as r->file_size. */
static int open_envelope(bundle_reader *r, const keys_trust *dec, owl_err *err)
{
    unsigned char head[ENVELOPE_MAGIC_BYTES];
    ssize_t n = src_pread(r, head, sizeof(head), 0);

    if (n < 0) {
        *err = r->src_err;
        return -1;
    }
    if (!envelope_detect(head, (size_t)n))
        return 0;
    if (envelope_open(r->fd, r->file_size, dec != NULL ? dec->dec : NULL, dec != NULL ? dec->ndec : 0, &r->env,
                      err) < 0)
        return -1;
    r->file_size = envelope_size(r->env);
    if (r->file_size == 0)
        return err_set(err, OWL_EVERIFY, "bundle is empty");
    n = src_pread(r, head, sizeof(head), 0);
    if (n < 0) {
        *err = r->src_err;
        return -1;
    }
    if (envelope_detect(head, (size_t)n))
        return err_set(err, OWL_EVERIFY, "bundle is encrypted more than once");
    return 0;
}

/* bundle_open_fd, decrypting with dec's keys (dec may differ from trust:
 * inspect decrypts without checking the signature). */
static int open_fd(int fd, const char *path, const bundle_limits *limits, const keys_trust *trust,
                   const keys_trust *dec, bundle_reader **out, owl_err *err)
{
    bundle_reader *r = calloc(1, sizeof(*r));
    struct stat st;
    uint64_t size = 0;
    char *sigbuf = NULL;
    char keyid[KEYS_ID_HEX_LEN + 1];
    const keys_trusted *kt = NULL;

    *out = NULL;
    if (r == NULL) {
        close(fd);
        return err_oom(err);
    }
    r->fd = fd;
    r->lim = *limits;
    r->path = strdup(path);
    if (r->path == NULL) {
        err_oom(err);
        goto fail;
    }
    r->pos = 0;
    if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        err_set(err, OWL_EVERIFY, "%s is not a regular file", path);
        goto fail;
    }
    if (st.st_size == 0) {
        err_set(err, OWL_EVERIFY, "bundle is empty");
        goto fail;
    }
    if ((uint64_t)st.st_size > r->lim.max_bundle_size) {
        err_set(err, OWL_EVERIFY, "bundle is %lld bytes, over max_bundle_size (%llu bytes)",
                (long long)st.st_size, (unsigned long long)r->lim.max_bundle_size);
        goto fail;
    }
    r->file_size = (uint64_t)st.st_size;
    if (open_envelope(r, dec, err) < 0)
        goto fail;
    /* Until the manifest is read, the unpacked stream may hold no more than
     * the largest manifest and signature entries (and one chunk read ahead). */
    r->fed_max = 2 * TAR_BLOCK + round_block(MANIFEST_MAX_BYTES) + round_block(KEYS_SIGFILE_MAX) + 2 * IO_CHUNK;
    if (detect_compression(r, err) < 0 || open_decompressor(r, &r->z, err) < 0)
        goto fail;
    if (r->z == NULL)
        r->pos = 0; /* uncompressed: the tar reader reads the file from its start */
    r->a = archive_read_new();
    if (r->a == NULL) {
        err_oom(err);
        goto fail;
    }
    if (archive_read_support_format_tar(r->a) != ARCHIVE_OK ||
        archive_read_open(r->a, r, NULL, unpacked_read_cb, NULL) != ARCHIVE_OK) {
        damaged(r, err, "opening");
        goto fail;
    }
    if (next_entry(r, MANIFEST_ENTRY, MANIFEST_MAX_BYTES, &size, err) < 0 ||
        read_small(r, MANIFEST_ENTRY, size, &r->mbytes, err) < 0)
        goto fail;
    r->mlen = (size_t)size;
    if (next_entry(r, SIG_ENTRY, KEYS_SIGFILE_MAX - 1, &size, err) < 0 ||
        read_small(r, SIG_ENTRY, size, &sigbuf, err) < 0)
        goto fail;
    memcpy(r->sig, sigbuf, (size_t)size);
    r->siglen = (size_t)size;
    free(sigbuf);
    sigbuf = NULL;

    /* Verify before anything of the manifest is believed: key id, then signature. */
    if (trust != NULL) {
        if (keys_sig_key_id(r->sig, r->siglen, keyid, err) < 0)
            goto fail;
        kt = keys_trust_find(trust, keyid);
        if (kt == NULL) {
            err_set(err, OWL_EVERIFY, "bundle is signed by key %s, which is not trusted", keyid);
            goto fail;
        }
        if (keys_verify(&kt->key, (const unsigned char *)r->mbytes, r->mlen, r->sig, r->siglen, err) < 0)
            goto fail;
    }
    if (manifest_parse(r->mbytes, r->mlen, &r->m, err) < 0)
        goto fail;
    if (kt != NULL) {
        if (strcmp(r->m->key_id, kt->key.id) != 0) {
            err_set(err, OWL_EVERIFY, "manifest names key %s but is signed by key %s", r->m->key_id, kt->key.id);
            goto fail;
        }
        /* The same key may be listed for several environments: find its binding. */
        const keys_trusted *bound = NULL;
        for (size_t i = 0; i < trust->n && bound == NULL; i++) {
            const keys_trusted *k = &trust->v[i];
            if (strcmp(k->key.id, kt->key.id) == 0 &&
                (k->environment[0] == '\0' || strcmp(k->environment, r->m->environment) == 0))
                bound = k;
        }
        if (bound == NULL) {
            err_set(err, OWL_EVERIFY,
                    "bundle from environment %s is signed by key %s, which is trusted only for %s",
                    r->m->environment, kt->key.id, kt->environment);
            goto fail;
        }
        kt = bound;
        r->signer = kt;
    }
    r->fed_max = archive_total(r);
    r->hash = keys_hash_new();
    if (r->hash == NULL) {
        err_oom(err);
        goto fail;
    }
    *out = r;
    return 0;
fail:
    free(sigbuf);
    bundle_close(r);
    return -1;
}

int bundle_open_fd(int fd, const char *path, const bundle_limits *limits, const keys_trust *trust,
                   bundle_reader **out, owl_err *err)
{
    return open_fd(fd, path, limits, trust, trust, out, err);
}

int bundle_open_unverified(const char *path, const bundle_limits *limits, const keys_trust *dec,
                           bundle_reader **out, owl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

    *out = NULL;
    if (fd < 0)
        return err_set(err, errno == ELOOP ? OWL_EVERIFY : OWL_ERUNTIME, "cannot open %s: %s", path,
                       errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    return open_fd(fd, path, limits, NULL, dec, out, err);
}

int bundle_recipients(const char *path, char (*ids)[KEYS_ID_HEX_LEN + 1], size_t *n, owl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    unsigned char hbuf[ENVELOPE_HEADER_MAX], head[ENVELOPE_MAGIC_BYTES];
    envelope_header h;
    struct stat st;
    ssize_t got;
    int rc = -1;

    *n = 0;
    if (fd < 0)
        return err_set(err, errno == ELOOP ? OWL_EVERIFY : OWL_ERUNTIME, "cannot open %s: %s", path,
                       errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        err_set(err, OWL_EVERIFY, "%s is not a regular file", path);
        goto out;
    }
    do
        got = pread(fd, head, sizeof(head), 0);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        err_set(err, OWL_ERUNTIME, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (!envelope_detect(head, (size_t)got)) {
        rc = 0;
        goto out;
    }
    if (envelope_read_header(fd, (uint64_t)st.st_size, hbuf, &h, err) < 0)
        goto out;
    for (size_t i = 0; i < h.nrecipients; i++)
        memcpy(ids[i], h.idhex[i], sizeof(ids[i]));
    *n = h.nrecipients;
    rc = 1;
out:
    close(fd);
    return rc;
}

const char *bundle_decrypted_with(const bundle_reader *r)
{
    return r->env != NULL ? envelope_key_id(r->env) : NULL;
}

const manifest *bundle_manifest(const bundle_reader *r)
{
    return r->m;
}

const char *bundle_manifest_bytes(const bundle_reader *r, size_t *len)
{
    *len = r->mlen;
    return r->mbytes;
}

const keys_trusted *bundle_signer(const bundle_reader *r)
{
    return r->signer;
}

/* Second pass over the unpacked stream: its length must be exactly what the
 * headers describe, and every padding byte zero, so no byte of the file goes
 * unchecked. Headers carry tar checksums; data carry BLAKE2b hashes. */
static int check_layout(bundle_reader *r, owl_err *err)
{
    struct archive *z = NULL;
    uint64_t off = 0, total;
    size_t zi = 0;
    char *zero_check = r->scratch;
    int rc = -1;

    if (push_zero(r, r->expect_pos, r->expect_pos + 2 * TAR_BLOCK, 0, err) < 0)
        return -1;
    total = r->expect_pos + 2 * TAR_BLOCK;
    /* The tar reader is done: this pass reads the unpacked bytes themselves. */
    archive_read_free(r->a);
    r->a = NULL;
    archive_read_free(r->z);
    r->z = NULL;
    if (open_decompressor(r, &z, err) < 0)
        return -1;
    if (z == NULL)
        r->pos = 0;
    for (;;) {
        la_ssize_t n;
        if (z != NULL) {
            n = archive_read_data(z, zero_check, sizeof(r->scratch));
        } else {
            n = src_pread(r, zero_check, sizeof(r->scratch), r->pos);
            if (n > 0)
                r->pos += n;
        }
        if (n < 0 && r->src_failed) {
            *err = r->src_err;
            goto out;
        }
        if (n < 0) {
            const char *msg = z != NULL ? archive_error_string(z) : r->src_err.msg;
            err_set(err, OWL_EVERIFY, "bundle is damaged or not a bundle (end of archive): %s",
                    msg ? msg : "unknown archive error");
            goto out;
        }
        if (n == 0)
            break;
        if (off + (uint64_t)n > total) {
            err_set(err, OWL_EVERIFY, "bundle has data after the end of its archive");
            goto out;
        }
        for (; zi < r->nzeros && r->zeros[zi].from < off + (uint64_t)n; zi++) {
            uint64_t from = r->zeros[zi].from > off ? r->zeros[zi].from : off;
            uint64_t to = r->zeros[zi].to < off + (uint64_t)n ? r->zeros[zi].to : off + (uint64_t)n;
            for (uint64_t i = from; i < to; i++) {
                unsigned char c = (unsigned char)zero_check[i - off];
                if (c < r->zeros[zi].value || c > r->zeros[zi].hi) {
                    err_set(err, OWL_EVERIFY, "bundle has an unexpected byte in tar framing at offset %llu",
                            (unsigned long long)i);
                    goto out;
                }
            }
            if (r->zeros[zi].to > off + (uint64_t)n)
                break; /* the range goes on in the next chunk */
        }
        off += (uint64_t)n;
    }
    if (off != total) {
        err_set(err, OWL_EVERIFY, "bundle is truncated (unpacked %llu of %llu bytes)",
                (unsigned long long)off, (unsigned long long)total);
        goto out;
    }
    /* Nor may anything follow the compressed stream: libarchive's gzip reader
     * quietly stops at bytes that do not begin another gzip member. */
    if (z != NULL) {
        la_int64_t used = archive_filter_bytes(z, archive_filter_count(z) - 1);
        if (used < 0 || (uint64_t)used != r->file_size) {
            err_set(err, OWL_EVERIFY, "bundle has data after the end of its compressed stream");
            goto out;
        }
    }
    rc = 0;
out:
    archive_read_free(z);
    return rc;
}

int bundle_next_table(bundle_reader *r, const manifest_table **table, owl_err *err)
{
    uint64_t size = 0;
    int rc;

    *table = NULL;
    if (r->ended)
        return 0;
    if (r->cur != NULL) {
        /* The caller stopped early: read the rest so its hash is still checked. */
        char buf[4096];
        ssize_t n;
        while ((n = bundle_read(r, buf, sizeof(buf), err)) > 0) {
        }
        if (n < 0)
            return -1;
    }
    if (r->next_table == r->m->ntables) {
        rc = next_entry(r, NULL, 0, &size, err);
        if (rc != 0)
            return -1;
        if (check_layout(r, err) < 0)
            return -1;
        r->ended = true;
        return 0;
    }
    r->cur = &r->m->tables[r->next_table];
    if (next_entry(r, r->cur->file, UINT64_MAX, &size, err) <= 0) {
        r->cur = NULL;
        return -1;
    }
    if (size != r->cur->bytes) {
        err_set(err, OWL_EVERIFY, "bundle entry %s is %llu bytes, but the manifest says %llu",
                r->cur->file, (unsigned long long)size, (unsigned long long)r->cur->bytes);
        r->cur = NULL;
        return -1;
    }
    r->next_table++;
    r->cur_read = 0;
    *table = r->cur;
    return 1;
}

ssize_t bundle_read(bundle_reader *r, void *buf, size_t len, owl_err *err)
{
    la_ssize_t n;
    char hex[KEYS_HASH_HEX_LEN + 1];

    if (r->cur == NULL)
        return err_set(err, OWL_ERUNTIME, "bundle_read outside a data entry");
    n = archive_read_data(r->a, buf, len);
    if (n < 0) {
        damaged(r, err, r->cur->file);
        r->cur = NULL;
        return -1;
    }
    if (n > 0) {
        r->cur_read += (uint64_t)n;
        keys_hash_update(r->hash, buf, (size_t)n);
        return n;
    }
    keys_hash_final(r->hash, hex);
    if (r->cur_read != r->cur->bytes) {
        err_set(err, OWL_EVERIFY, "bundle entry %s is truncated", r->cur->file);
        r->cur = NULL;
        return -1;
    }
    if (strcmp(hex, r->cur->blake2b) != 0) {
        err_set(err, OWL_EVERIFY, "bundle entry %s does not match its hash in the manifest", r->cur->file);
        r->cur = NULL;
        return -1;
    }
    r->cur = NULL;
    return 0;
}

int bundle_verify_rest(bundle_reader *r, owl_err *err)
{
    const manifest_table *t;
    int rc;

    while ((rc = bundle_next_table(r, &t, err)) > 0) {
        char buf[IO_CHUNK];
        ssize_t n;
        while ((n = bundle_read(r, buf, sizeof(buf), err)) > 0) {
        }
        if (n < 0)
            return -1;
    }
    return rc;
}

void bundle_close(bundle_reader *r)
{
    if (r == NULL)
        return;
    if (r->a != NULL)
        archive_read_free(r->a);
    if (r->z != NULL)
        archive_read_free(r->z);
    envelope_close(r->env);
    if (r->fd >= 0)
        close(r->fd);
    keys_hash_free(r->hash);
    manifest_free(r->m);
    free(r->mbytes);
    free(r->zeros);
    free(r->path);
    free(r);
}

const char *bundle_lib_version(void)
{
    return archive_version_details();
}
