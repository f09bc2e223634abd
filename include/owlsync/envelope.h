/* owlsync envelope: bundle format version 2, a version-1 bundle encrypted to
 * one or more recipients' X25519 keys (README, "Bundle format"). Written from a
 * finished version-1 bundle; read in fixed chunks with flat memory. */
#ifndef OWLSYNC_ENVELOPE_H
#define OWLSYNC_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "owlsync/error.h"
#include "owlsync/keys.h"

/* The layout: a header, then the chunks of the encrypted version-1 bundle.
 *   magic "OWLSYNC-ENC" and a NUL (12 bytes), version (1 byte, 2), the number
 *   of recipients N (1 byte, 1..ENVELOPE_MAX_RECIPIENTS), then per recipient
 *   its key id (8 bytes) and the file key sealed to it (80 bytes), then the
 *   crypto_secretstream header (24 bytes).
 * Chunks: every one but the last holds ENVELOPE_CHUNK bytes of the inner
 * bundle (tag MESSAGE), the last fewer, maybe none (tag FINAL); encryption
 * adds KEYS_STREAM_ABYTES to each. The header is the additional data of the
 * first chunk, so no byte of it can change unnoticed; nothing follows the
 * last chunk. The file's size alone tells how many chunks there are. */
#define ENVELOPE_MAGIC "OWLSYNC-ENC"
#define ENVELOPE_MAGIC_BYTES 12
#define ENVELOPE_VERSION 2
#define ENVELOPE_MAX_RECIPIENTS 64
#define ENVELOPE_CHUNK (64 * 1024)
#define ENVELOPE_FIXED_BYTES (ENVELOPE_MAGIC_BYTES + 2)
#define ENVELOPE_RECIPIENT_BYTES (KEYS_ID_BYTES + KEYS_SEALED_BYTES)
#define ENVELOPE_HEADER_BYTES(n)                                                                                       \
    (ENVELOPE_FIXED_BYTES + (size_t)(n)*ENVELOPE_RECIPIENT_BYTES + KEYS_STREAM_HEADER_BYTES)
#define ENVELOPE_HEADER_MAX ENVELOPE_HEADER_BYTES(ENVELOPE_MAX_RECIPIENTS)

/* Whether the n bytes at p begin with the envelope's magic. */
bool envelope_detect(const void *p, size_t n);

/* What a header says, parsed strictly. */
typedef struct envelope_header {
    size_t len; /* bytes of the header */
    size_t nrecipients;
    unsigned char ids[ENVELOPE_MAX_RECIPIENTS][KEYS_ID_BYTES];
    char idhex[ENVELOPE_MAX_RECIPIENTS][KEYS_ID_HEX_LEN + 1];
    const unsigned char *sealed[ENVELOPE_MAX_RECIPIENTS]; /* into the bytes parsed */
    const unsigned char *stream_header;                   /* idem */
} envelope_header;

/* Parses the len bytes at p as a header. Returns 0 when p holds a whole
 * header (h->len of its bytes), 1 when it needs h->len bytes in all (set
 * after the first ENVELOPE_FIXED_BYTES), -1 (OWL_EVERIFY) when it is not a
 * valid header. Never reads past len. */
int envelope_parse_header(const unsigned char *p, size_t len, envelope_header *h, owl_err *err);

/* Reads the header at fd's start (at most ENVELOPE_HEADER_MAX bytes, fd of
 * size bytes) into h; hbuf (ENVELOPE_HEADER_MAX bytes) holds its bytes. */
int envelope_read_header(int fd, uint64_t size, unsigned char *hbuf, envelope_header *h, owl_err *err);

/* Encrypts the bytes of in from its current offset to its end into out at its
 * current offset, to each of the n recipients (duplicates once). */
int envelope_encrypt_fd(int in, int out, const keys_box_public *recipients, size_t n, owl_err *err);

/* ---- reader ---- */

typedef struct envelope_reader envelope_reader;

/* Opens the envelope in fd (size bytes; fd stays the caller's) with the first
 * of dec (ndec keys) it was made for. OWL_EVERIFY when it is not a valid
 * envelope, or was made for none of the keys: the message names the key ids
 * it was made for. *out is the caller's: envelope_close. */
int envelope_open(int fd, uint64_t size, keys_box_secret *const *dec, size_t ndec, envelope_reader **out, owl_err *err);

/* The bytes of the inner bundle (known from the file's size). */
uint64_t envelope_size(const envelope_reader *e);

/* The id of the key that opened it. */
const char *envelope_key_id(const envelope_reader *e);

/* Reads up to len bytes of the inner bundle at pos, decrypting (and
 * authenticating) chunk by chunk; reading from an earlier place starts the
 * stream again. Returns the count, 0 at the end (after the last chunk was
 * authenticated as the last, with nothing after it), -1 (OWL_EVERIFY, or
 * OWL_ERUNTIME for I/O) at the first chunk that does not authenticate. */
ssize_t envelope_pread(envelope_reader *e, void *buf, size_t len, uint64_t pos, owl_err *err);

/* Wipes and frees; NULL is a no-op. */
void envelope_close(envelope_reader *e);

#endif
