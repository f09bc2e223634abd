/* owlsync durable files: every file owlsync publishes (bundles into outboxes,
 * state, metrics, .reason files, keys, files retired from the inbox) goes
 * through here: a hidden temporary file, fsync, rename, fsync of the
 * directory; and the small I/O loops several modules need, written once. */
#ifndef OWLSYNC_FILEIO_H
#define OWLSYNC_FILEIO_H

#include <stdbool.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "owlsync/error.h"

/* Writes all len bytes of buf to fd, retrying short writes and EINTR.
 * Returns 0, or -1 with errno set by the failing write. */
int fileio_write_all(int fd, const void *buf, size_t len);

/* fsyncs the directory dfd (shown names it in messages). CIFS answers EINVAL:
 * that is logged once per process and is not an error. */
int fileio_sync_dir(int dfd, const char *shown, owl_err *err);

/* What the final rename does when the name is taken. */
typedef enum {
    FILEIO_REPLACE,   /* replace the file there */
    FILEIO_NOREPLACE, /* never replace: fail with "... already exists" (OWL_EUSAGE); where the
                       * file system lacks RENAME_NOREPLACE, link(2) then unlink the tmp name */
    FILEIO_UNIQUE     /* take the first free name of NAME, NAME.1 ... NAME.999 */
} fileio_mode;

/* The name a file being published is written under first: ".NAME.tmp". */
int fileio_tmp_name(const char *name, char *out, size_t outsz);

/* Publishes len bytes of buf as dfd/name, durably: writes ".NAME.tmp" (a stale
 * one is removed first) with mode, fsyncs it, renames it by how, and fsyncs
 * the directory. final (NULL or finalsz bytes) receives the name used. On
 * failure nothing is left behind, and err names dir_shown/name and the step
 * that failed ("cannot write DIR/NAME (fsync): reason", OWL_ERUNTIME). */
int fileio_write_atomic(int dfd, const char *dir_shown, const char *name, const void *buf, size_t len,
                        mode_t mode, fileio_mode how, char *final, size_t finalsz, owl_err *err);

/* The same with the bytes of src_fd, read from offset 0 to its end; holes in
 * it stay holes. */
int fileio_copy_atomic(int dfd, const char *dir_shown, const char *name, int src_fd, mode_t mode,
                       fileio_mode how, char *final, size_t finalsz, owl_err *err);

/* fileio_copy_atomic of at most max bytes (a larger file fails before a byte
 * is written, errno EFBIG in the message), that gives up as soon as *stop
 * (may be NULL) is set ("Interrupted system call"), leaving nothing behind. */
int fileio_copy_atomic_bounded(int dfd, const char *dir_shown, const char *name, int src_fd, uint64_t max,
                               const volatile sig_atomic_t *stop, mode_t mode, fileio_mode how, char *final,
                               size_t finalsz, owl_err *err);

/* fileio_write_atomic for a path: its directory is opened (no link followed
 * for the last name) and closed. */
int fileio_write_path(const char *path, const void *buf, size_t len, mode_t mode, fileio_mode how,
                      owl_err *err);

/* Renames sfd/sname to dfd/dname, never replacing a file there (EEXIST). Where
 * the filesystem lacks RENAME_NOREPLACE (NFS, CIFS) it looks first: racy, but
 * the callers keep agents apart by locks as well. -1 with errno. */
int fileio_rename_noreplace(int sfd, const char *sname, int dfd, const char *dname);

/* Gives dfd/tmp a second name dfd/name with link(2), which never replaces a
 * file, then removes tmp; a link reported failed that happened anyway (the
 * name is the file expect describes) counts as done. FILEIO_NOREPLACE's way
 * where RENAME_NOREPLACE is missing. -1 with errno (EEXIST: name is taken). */
int fileio_link_noreplace(int dfd, const char *tmp, const char *name, const struct stat *expect);

/* Whether a rename reported failed happened anyway (an NFS reply lost and the
 * retried request answered with an error): the source is gone and the target
 * is the very file expect describes. */
bool fileio_renamed_anyway(int sfd, const char *sname, int dfd, const char *dname, const struct stat *expect);

/* Moves sfd/sname into dfd as base, or base.1 ... base.999 when taken, never
 * replacing a file; the name used goes to final. A rename reported failed that
 * happened anyway (an NFS reply lost) is seen as done: the source is gone and
 * the target is the file expect describes. -1 with errno. */
int fileio_move_unique(int sfd, const char *sname, int dfd, const char *base, const struct stat *expect,
                       char *final, size_t finalsz);

/* Reads the whole of a small file dfd/name (no link followed, a regular file
 * of at most max bytes) into buf (max + 1 bytes), NUL-terminated; sets *len.
 * Returns 0, 1 when the file does not exist, -1 (err set) otherwise. */
int fileio_read_small(int dfd, const char *name, char *buf, size_t max, size_t *len, owl_err *err);

/* The same into a buffer of the file's size (*buf, the caller's to free). */
int fileio_read_alloc(int dfd, const char *name, size_t max, char **buf, size_t *len, owl_err *err);

#endif
