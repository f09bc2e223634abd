/* owlsync bundle files (DESIGN.md 3.4): a tar archive, zstd/gzip/uncompressed,
 * holding manifest.json, manifest.sig and data/TABLE.tsv, written and read here. */
#ifndef OWLSYNC_BUNDLE_H
#define OWLSYNC_BUNDLE_H

#include <stdint.h>
#include <sys/types.h>

#include "owlsync/error.h"
#include "owlsync/keys.h"
#include "owlsync/manifest.h"

#define BUNDLE_SUFFIX ".owlb"
#define BUNDLE_MAX_RECIPIENTS 64 /* = ENVELOPE_MAX_RECIPIENTS */

typedef enum { BUNDLE_ZSTD = 0, BUNDLE_GZIP, BUNDLE_NONE } bundle_compression;

/* ---- compressed frames ---- */

/* A bundle's compressed stream may be several zstd frames (gzip members) one
 * after another, which every zstd (gzip) reader takes as one stream. A frame
 * written ahead, while a table's rows stream in, later goes into the bundle
 * as it is (bundle_writer_copy_frames): no byte is compressed twice. */
typedef struct bundle_frame bundle_frame;

/* Starts one frame of comp at level, written to fd from its current offset as
 * the compressor fills (the caller owns fd). BUNDLE_NONE writes the bytes as
 * they are. */
int bundle_frame_open(int fd, bundle_compression comp, int level, bundle_frame **out, owl_err *err);

/* Compresses len bytes of buf into the frame. */
int bundle_frame_write(bundle_frame *f, const void *buf, size_t len, owl_err *err);

/* Ends the frame, sets *written (when not NULL) to the bytes it wrote to fd,
 * and frees f (also on error). */
int bundle_frame_close(bundle_frame *f, uint64_t *written, owl_err *err);

/* Frees f without writing the rest of the frame to fd; NULL is a no-op. */
void bundle_frame_abort(bundle_frame *f);

/* ---- writer ---- */

typedef struct bundle_writer bundle_writer;

/* Starts an archive written to fd from its current offset (the caller owns and
 * closes fd). level is the compressor's level (ignored for BUNDLE_NONE). */
int bundle_writer_open(int fd, bundle_compression comp, int level, int64_t mtime,
                       bundle_writer **out, owl_err *err);

/* Adds a regular file entry from memory. */
int bundle_writer_add(bundle_writer *w, const char *name, const void *buf, size_t len, owl_err *err);

/* Adds a regular file entry of exactly size bytes read from fd's current offset. */
int bundle_writer_add_fd(bundle_writer *w, const char *name, int fd, uint64_t size, owl_err *err);

/* The same in parts: the header of an entry of size bytes, then its data as
 * len bytes of fd from its current offset, as often as needed; the lens must
 * add up to size. */
int bundle_writer_begin(bundle_writer *w, const char *name, uint64_t size, owl_err *err);
int bundle_writer_copy_fd(bundle_writer *w, const char *name, int fd, uint64_t len, owl_err *err);

/* The same for data compressed ahead: zlen bytes of fd from its current
 * offset, whole frames of the writer's compression (bundle_frame_open) that
 * unpack to len bytes of the entry, copied as they are. */
int bundle_writer_copy_frames(bundle_writer *w, const char *name, int fd, uint64_t zlen, uint64_t len,
                              owl_err *err);

/* Finishes the archive and frees w (also on error). */
int bundle_writer_close(bundle_writer *w, owl_err *err);

/* Frees w without finishing; NULL is a no-op. */
void bundle_writer_abort(bundle_writer *w);

/* ---- reader ---- */

typedef struct bundle_limits {
    uint64_t max_bundle_size;   /* compressed bytes on disk */
    uint64_t max_unpacked_size; /* bytes of all entries together */
} bundle_limits;

typedef struct bundle_reader bundle_reader;

/* An encrypted bundle (format version 2, see envelope.h) is read through its
 * envelope, opened with the first of trust->dec it was made for (none: the
 * bundle is refused, OWL_EVERIFY, naming the key ids it was made for), with
 * the same limits and order: max_bundle_size bounds the encrypted file.
 *
 * Opens a bundle and reads its first two entries, manifest.json and
 * manifest.sig, then: looks the signing key up in trust, verifies the signature
 * over the manifest's exact bytes, parses the manifest, and checks that the key
 * is trusted for the manifest's environment. With trust == NULL no signature is
 * checked (inspect); bundle_verified() then says so. Nothing from a data entry
 * has been read when this returns. Errors are OWL_EVERIFY (I/O: OWL_ERUNTIME). */
int bundle_open(const char *path, const bundle_limits *limits, const keys_trust *trust,
                bundle_reader **out, owl_err *err);

/* The same through fd (the reader's: closed by bundle_close, or here on
 * failure), read from its start; path only names it in messages. A file
 * claimed by descriptor is read through it, never opened again by path. */
int bundle_open_fd(int fd, const char *path, const bundle_limits *limits, const keys_trust *trust,
                   bundle_reader **out, owl_err *err);

/* As bundle_open with trust == NULL (no signature checked), decrypting an
 * encrypted bundle with dec's decryption keys (dec may be NULL): inspect. */
int bundle_open_unverified(const char *path, const bundle_limits *limits, const keys_trust *dec,
                           bundle_reader **out, owl_err *err);

/* Whether the file at path is an encrypted bundle: 1 and the key ids it was
 * made for in ids (ENVELOPE_MAX_RECIPIENTS of them at most) and *n; 0 when it
 * is not encrypted; -1 when its envelope's header is not valid. Reads only
 * the header. */
int bundle_recipients(const char *path, char (*ids)[KEYS_ID_HEX_LEN + 1], size_t *n, owl_err *err);

/* The id of the key that decrypted the bundle, or NULL when it is not encrypted. */
const char *bundle_decrypted_with(const bundle_reader *r);

const manifest *bundle_manifest(const bundle_reader *r);

/* The exact bytes of manifest.json (valid until bundle_close). */
const char *bundle_manifest_bytes(const bundle_reader *r, size_t *len);

/* Whether the signature was checked, and the trusted entry that signed it. */
const keys_trusted *bundle_signer(const bundle_reader *r);

/* Moves to the next data entry, which must be the next table of the manifest.
 * Returns 1 and sets *table, or 0 when every table has been read and the archive
 * ends as it must (no extra entries, nothing hidden in padding), or -1. */
int bundle_next_table(bundle_reader *r, const manifest_table **table, owl_err *err);

/* Reads up to len bytes of the current table's data. Returns the count, 0 at the
 * entry's end (after its size and BLAKE2b hash matched the manifest), or -1 at the
 * first mismatch or error. */
ssize_t bundle_read(bundle_reader *r, void *buf, size_t len, owl_err *err);

/* Reads every remaining data entry, checking hashes, and then the archive's end:
 * what `verify` does after bundle_open. */
int bundle_verify_rest(bundle_reader *r, owl_err *err);

/* Closes and frees; NULL is a no-op. */
void bundle_close(bundle_reader *r);

/* The libarchive this process runs with and the compression libraries it was
 * built with ("libarchive 3.6.2 zlib/... libzstd/..."); a static string. */
const char *bundle_lib_version(void);

#endif
