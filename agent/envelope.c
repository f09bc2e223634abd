/* owlsync envelope: encrypted bundles (format version 2), a version-1 bundle
 * sealed to its recipients with libsodium's constructions (through keys). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/envelope.h"
#include "owlsync/fileio.h"

#define CIPHER_CHUNK (ENVELOPE_CHUNK + KEYS_STREAM_ABYTES)

_Static_assert(sizeof(ENVELOPE_MAGIC) == ENVELOPE_MAGIC_BYTES, "the magic and its NUL");

struct envelope_reader {
    int fd;        /* the caller's */
    uint64_t size; /* of the file */
    unsigned char hbuf[ENVELOPE_HEADER_MAX];
    envelope_header h;
    char key_id[KEYS_ID_HEX_LEN + 1];
    keys_stream *stream;
    uint64_t nchunks;
    size_t last_len; /* inner bytes of the last chunk */
    uint64_t inner;  /* inner bytes in all */
    uint64_t cur;    /* the chunk in plain, when have */
    bool have;
    size_t plain_len;
    unsigned char cipher[CIPHER_CHUNK];
    unsigned char plain[ENVELOPE_CHUNK];
};

bool envelope_detect(const void *p, size_t n)
{
    return n >= ENVELOPE_MAGIC_BYTES && memcmp(p, ENVELOPE_MAGIC, ENVELOPE_MAGIC_BYTES) == 0;
}

int envelope_parse_header(const unsigned char *p, size_t len, envelope_header *h, owl_err *err)
{
    size_t off = ENVELOPE_FIXED_BYTES;

    memset(h, 0, sizeof(*h));
    h->len = ENVELOPE_FIXED_BYTES;
    if (len < ENVELOPE_MAGIC_BYTES) {
        if (memcmp(p, ENVELOPE_MAGIC, len) != 0)
            return err_set(err, OWL_EVERIFY, "not an encrypted bundle");
        return 1;
    }
    if (!envelope_detect(p, len))
        return err_set(err, OWL_EVERIFY, "not an encrypted bundle");
    if (len < ENVELOPE_FIXED_BYTES)
        return 1;
    if (p[ENVELOPE_MAGIC_BYTES] != ENVELOPE_VERSION)
        return err_set(err, OWL_EVERIFY,
                       "encrypted bundle of format version %u, not %d\nHINT: a newer owlsync may read it",
                       (unsigned)p[ENVELOPE_MAGIC_BYTES], ENVELOPE_VERSION);
    h->nrecipients = p[ENVELOPE_MAGIC_BYTES + 1];
    if (h->nrecipients == 0 || h->nrecipients > ENVELOPE_MAX_RECIPIENTS)
        return err_set(err, OWL_EVERIFY, "encrypted bundle has %zu recipients (1 to %d are allowed)", h->nrecipients,
                       ENVELOPE_MAX_RECIPIENTS);
    h->len = ENVELOPE_HEADER_BYTES(h->nrecipients);
    if (len < h->len)
        return 1;
    for (size_t i = 0; i < h->nrecipients; i++) {
        memcpy(h->ids[i], p + off, KEYS_ID_BYTES);
        keys_id_hex(h->ids[i], h->idhex[i]);
        h->sealed[i] = p + off + KEYS_ID_BYTES;
        off += ENVELOPE_RECIPIENT_BYTES;
    }
    h->stream_header = p + off;
    return 0;
}

/* Reads exactly len bytes of fd at off; a short file is OWL_EVERIFY. */
static int read_at(int fd, void *buf, size_t len, uint64_t off, const char *what, owl_err *err)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_set(err, OWL_ERUNTIME, "cannot read the encrypted bundle (%s): %s", what, strerror(errno));
        if (n == 0)
            return err_set(err, OWL_EVERIFY, "encrypted bundle is truncated (%s)", what);
        got += (size_t)n;
    }
    return 0;
}

int envelope_read_header(int fd, uint64_t size, unsigned char *hbuf, envelope_header *h, owl_err *err)
{
    size_t have = 0;

    /* The fixed part first: it bounds the rest before anything more is read. */
    for (;;) {
        int rc = envelope_parse_header(hbuf, have, h, err);
        if (rc <= 0)
            return rc;
        if (h->len > size)
            return err_set(err, OWL_EVERIFY, "encrypted bundle is truncated (header)");
        if (read_at(fd, hbuf + have, h->len - have, have, "header", err) < 0)
            return -1;
        have = h->len;
    }
}

/* ---- writer ---- */

/* Reads up to len bytes of fd (fewer only at its end). */
static ssize_t read_full(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int envelope_encrypt_fd(int in, int out, const keys_box_public *recipients, size_t n, owl_err *err)
{
    unsigned char hdr[ENVELOPE_HEADER_MAX];
    unsigned char *plain = NULL, *cipher = NULL;
    keys_stream *s = NULL;
    const keys_box_public *uniq[ENVELOPE_MAX_RECIPIENTS];
    size_t nuniq = 0, hlen, off = ENVELOPE_FIXED_BYTES;
    bool first = true;
    int rc = -1;

    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < nuniq && !seen; k++)
            seen = memcmp(uniq[k]->pk, recipients[i].pk, KEYS_PK_BYTES) == 0;
        if (seen)
            continue;
        if (nuniq == ENVELOPE_MAX_RECIPIENTS)
            return err_set(err, OWL_EUSAGE, "a bundle is encrypted to at most %d keys", ENVELOPE_MAX_RECIPIENTS);
        uniq[nuniq++] = &recipients[i];
    }
    if (nuniq == 0)
        return err_set(err, OWL_EUSAGE, "no key to encrypt to");
    hlen = ENVELOPE_HEADER_BYTES(nuniq);
    plain = malloc(ENVELOPE_CHUNK);
    cipher = malloc(CIPHER_CHUNK);
    if (plain == NULL || cipher == NULL) {
        err_oom(err);
        goto out;
    }
    memcpy(hdr, ENVELOPE_MAGIC, ENVELOPE_MAGIC_BYTES);
    hdr[ENVELOPE_MAGIC_BYTES] = ENVELOPE_VERSION;
    hdr[ENVELOPE_MAGIC_BYTES + 1] = (unsigned char)nuniq;
    if (keys_stream_push_new(hdr + hlen - KEYS_STREAM_HEADER_BYTES, &s, err) < 0)
        goto out;
    for (size_t i = 0; i < nuniq; i++) {
        memcpy(hdr + off, uniq[i]->idraw, KEYS_ID_BYTES);
        keys_stream_seal(s, uniq[i], hdr + off + KEYS_ID_BYTES);
        off += ENVELOPE_RECIPIENT_BYTES;
    }
    if (fileio_write_all(out, hdr, hlen) < 0) {
        err_set(err, OWL_ERUNTIME, "cannot write the encrypted bundle: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t got = read_full(in, plain, ENVELOPE_CHUNK);
        bool final;
        if (got < 0) {
            err_set(err, OWL_ERUNTIME, "cannot read the bundle to encrypt: %s", strerror(errno));
            goto out;
        }
        /* A full chunk is never the last: the last holds fewer bytes (maybe none). */
        final = (size_t)got < ENVELOPE_CHUNK;
        keys_stream_push(s, plain, (size_t)got, first ? hdr : NULL, first ? hlen : 0, final, cipher);
        first = false;
        if (fileio_write_all(out, cipher, (size_t)got + KEYS_STREAM_ABYTES) < 0) {
            err_set(err, OWL_ERUNTIME, "cannot write the encrypted bundle: %s", strerror(errno));
            goto out;
        }
        if (final)
            break;
    }
    rc = 0;
out:
    keys_stream_free(s);
    if (plain != NULL)
        keys_wipe(plain, ENVELOPE_CHUNK);
    free(plain);
    free(cipher);
    return rc;
}

/* ---- reader ---- */

/* "a, b and c" of the header's key ids, into buf. */
static const char *id_list(const envelope_header *h, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < h->nrecipients && used < size; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == h->nrecipients ? " and " : ", ");
        int w = snprintf(buf + used, size - used, "%s%s", sep, h->idhex[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

int envelope_open(int fd, uint64_t size, keys_box_secret *const *dec, size_t ndec, envelope_reader **out, owl_err *err)
{
    envelope_reader *e = calloc(1, sizeof(*e));
    char ids[ENVELOPE_MAX_RECIPIENTS * (KEYS_ID_HEX_LEN + 5) + 1];
    uint64_t body, nfull, rem;
    long found = -1;
    size_t k = 0;

    *out = NULL;
    if (e == NULL)
        return err_oom(err);
    e->fd = fd;
    e->size = size;
    if (envelope_read_header(fd, size, e->hbuf, &e->h, err) < 0)
        goto fail;
    /* The file's size tells the chunks: full ones, then a shorter last one. */
    body = size - e->h.len;
    nfull = body / CIPHER_CHUNK;
    rem = body % CIPHER_CHUNK;
    if (rem < KEYS_STREAM_ABYTES) {
        err_set(err, OWL_EVERIFY, "encrypted bundle is truncated (%llu bytes cannot end in a whole last chunk)",
                (unsigned long long)size);
        goto fail;
    }
    e->nchunks = nfull + 1;
    e->last_len = (size_t)(rem - KEYS_STREAM_ABYTES);
    e->inner = nfull * ENVELOPE_CHUNK + e->last_len;
    for (k = 0; k < ndec && found < 0; k++) {
        keys_box_public pub;
        keys_box_secret_public(dec[k], &pub);
        for (size_t i = 0; i < e->h.nrecipients && found < 0; i++) {
            if (strcmp(e->h.idhex[i], pub.id) == 0) {
                found = (long)i;
                memcpy(e->key_id, pub.id, sizeof(e->key_id));
            }
        }
    }
    if (found < 0) {
        id_list(&e->h, ids, sizeof(ids));
        if (ndec == 0)
            err_set(err, OWL_EVERIFY,
                    "bundle is encrypted for key%s %s, and no decryption key is configured\nHINT: set decrypt_key in "
                    "the [import] section",
                    e->h.nrecipients > 1 ? "s" : "", ids);
        else
            err_set(err, OWL_EVERIFY, "bundle is encrypted for key%s %s, not for this environment's decryption key%s",
                    e->h.nrecipients > 1 ? "s" : "", ids, ndec > 1 ? "s" : "");
        goto fail;
    }
    if (keys_stream_pull_new(dec[k - 1], e->h.sealed[found], e->h.stream_header, &e->stream, err) < 0)
        goto fail;
    *out = e;
    return 0;
fail:
    envelope_close(e);
    return -1;
}

uint64_t envelope_size(const envelope_reader *e)
{
    return e->inner;
}

const char *envelope_key_id(const envelope_reader *e)
{
    return e->key_id;
}

/* Decrypts the next chunk (e->cur + 1, or the first) into plain. */
static int next_chunk(envelope_reader *e, owl_err *err)
{
    uint64_t i = e->have ? e->cur + 1 : 0;
    bool last = i + 1 == e->nchunks, final = false;
    size_t len = last ? e->last_len : ENVELOPE_CHUNK;
    unsigned char probe;

    if (i >= e->nchunks)
        return err_set(err, OWL_ERUNTIME, "read past the encrypted bundle's end");
    if (read_at(e->fd, e->cipher, len + KEYS_STREAM_ABYTES, e->h.len + i * CIPHER_CHUNK, "chunk", err) < 0)
        return -1;
    e->have = false;
    if (keys_stream_pull(e->stream, e->cipher, len + KEYS_STREAM_ABYTES, i == 0 ? e->hbuf : NULL, i == 0 ? e->h.len : 0,
                         e->plain, &final) < 0) {
        if (i == 0)
            return err_set(err, OWL_EVERIFY,
                           "encrypted bundle does not authenticate: its header or first chunk was changed");
        return err_set(err, OWL_EVERIFY, "encrypted bundle does not authenticate at chunk %llu (damaged or truncated)",
                       (unsigned long long)i);
    }
    if (final != last)
        return err_set(err, OWL_EVERIFY, "encrypted bundle %s at chunk %llu", last ? "is truncated" : "ends early",
                       (unsigned long long)i);
    if (last) {
        /* The file must end here (it may have grown since it was measured). */
        ssize_t n;
        do
            n = pread(e->fd, &probe, 1, (off_t)e->size);
        while (n < 0 && errno == EINTR);
        if (n != 0)
            return err_set(err, OWL_EVERIFY, "encrypted bundle has data after its last chunk");
    }
    e->cur = i;
    e->have = true;
    e->plain_len = len;
    return 0;
}

ssize_t envelope_pread(envelope_reader *e, void *buf, size_t len, uint64_t pos, owl_err *err)
{
    uint64_t want, off;
    size_t n;

    if (pos > e->inner)
        return 0;
    want = pos / ENVELOPE_CHUNK;
    if (want >= e->nchunks)
        want = e->nchunks - 1; /* the end of a full last-but-one chunk: the empty last one */
    if (e->have && want < e->cur) {
        keys_stream_rewind(e->stream);
        e->have = false;
    }
    while (!e->have || e->cur < want) {
        if (next_chunk(e, err) < 0) {
            /* no partial state survives an error: the next read starts again */
            keys_stream_rewind(e->stream);
            e->have = false;
            return -1;
        }
    }
    off = pos - want * ENVELOPE_CHUNK;
    if (off >= e->plain_len)
        return 0; /* only the last chunk is short: the end, authenticated */
    n = e->plain_len - (size_t)off < len ? e->plain_len - (size_t)off : len;
    memcpy(buf, e->plain + off, n);
    return (ssize_t)n;
}

void envelope_close(envelope_reader *e)
{
    if (e == NULL)
        return;
    keys_stream_free(e->stream);
    /* what was read of the inner bundle is as secret as the file key */
    keys_wipe(e->plain, sizeof(e->plain));
    free(e);
}
