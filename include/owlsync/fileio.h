/* owlsync file helpers: small POSIX I/O loops that several modules need,
 * written once. */
#ifndef OWLSYNC_FILEIO_H
#define OWLSYNC_FILEIO_H

#include <stddef.h>

/* Writes all len bytes of buf to fd, retrying short writes and EINTR.
 * Returns 0, or -1 with errno set by the failing write. */
int fileio_write_all(int fd, const void *buf, size_t len);

#endif
