/* owlsync file helpers: the write loop every module that writes files uses,
 * so short writes and interrupted calls are handled in one place. */
#include <errno.h>
#include <unistd.h>

#include "owlsync/fileio.h"

int fileio_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
