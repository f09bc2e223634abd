/* owlsync durable files: tmp, fsync, rename, fsync of the directory, each
 * failure naming its step, for every file owlsync publishes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/fileio.h"
#include "owlsync/log.h"

#define COPY_CHUNK (64 * 1024)
#define UNIQUE_TRIES 1000 /* name, name.1 ... name.999 */

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

int fileio_sync_dir(int dfd, const char *shown, owl_err *err)
{
    static bool warned;

    if (fsync(dfd) == 0)
        return 0;
    if (errno == EINVAL) {
        if (!warned)
            log_warn("cannot fsync directory %s: %s (CIFS does not support it); carrying on", shown,
                     strerror(errno));
        warned = true;
        return 0;
    }
    return err_set(err, OWL_ERUNTIME, "cannot fsync directory %s: %s", shown, strerror(errno));
}

int fileio_tmp_name(const char *name, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, ".%s.tmp", name);

    if (n < 0 || (size_t)n >= outsz || n > NAME_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int fileio_rename_noreplace(int sfd, const char *sname, int dfd, const char *dname)
{
    struct stat st;

    if (renameat2(sfd, sname, dfd, dname, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (fstatat(dfd, dname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        errno = EEXIST;
        return -1;
    }
    if (errno != ENOENT)
        return -1;
    return renameat(sfd, sname, dfd, dname);
}

/* Whether dfd/name is the very file expect describes. */
static bool is_file(int dfd, const char *name, const struct stat *expect)
{
    struct stat st;

    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == expect->st_dev &&
           st.st_ino == expect->st_ino;
}

bool fileio_renamed_anyway(int sfd, const char *sname, int dfd, const char *dname, const struct stat *expect)
{
    struct stat st;

    if (fstatat(sfd, sname, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
        return false;
    return is_file(dfd, dname, expect);
}

int fileio_move_unique(int sfd, const char *sname, int dfd, const char *base, const struct stat *expect,
                       char *final, size_t finalsz)
{
    for (int i = 0; i < UNIQUE_TRIES; i++) {
        int len, saved;

        if (i == 0)
            len = snprintf(final, finalsz, "%s", base);
        else
            len = snprintf(final, finalsz, "%s.%d", base, i);
        if (len < 0 || (size_t)len >= finalsz) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (fileio_rename_noreplace(sfd, sname, dfd, final) == 0)
            return 0;
        if (errno == EEXIST)
            continue;
        saved = errno;
        if (fileio_renamed_anyway(sfd, sname, dfd, final, expect))
            return 0;
        errno = saved;
        return -1;
    }
    errno = EEXIST;
    return -1;
}

int fileio_link_noreplace(int dfd, const char *tmp, const char *name, const struct stat *expect)
{
    int saved;

    if (linkat(dfd, tmp, dfd, name, 0) < 0) {
        saved = errno;
        if (!is_file(dfd, name, expect)) {
            errno = saved;
            return -1;
        }
    }
    /* A failure here leaves a second, hidden name of the published file;
     * the next run of its job removes it. */
    unlinkat(dfd, tmp, 0);
    return 0;
}

/* Gives dfd/tmp (expect describes it) the name dfd/name, never replacing a
 * file there: renameat2(RENAME_NOREPLACE); where the file system lacks it
 * (NFS, CIFS: EINVAL), link(2), which refuses an existing name on every file
 * system; where hard links are refused too (some CIFS servers), a look, then
 * rename. A call reported failed that happened anyway (an NFS reply lost, the
 * retried request answered EEXIST) counts as done. -1 with errno. */
static int place_noreplace(int dfd, const char *tmp, const char *name, const struct stat *expect)
{
    int saved;

    if (renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == 0)
        return 0;
    saved = errno;
    if (saved != EINVAL && saved != ENOSYS) {
        if (fileio_renamed_anyway(dfd, tmp, dfd, name, expect))
            return 0;
        errno = saved;
        return -1;
    }
    if (fileio_link_noreplace(dfd, tmp, name, expect) == 0)
        return 0;
    saved = errno;
    if (saved != EPERM && saved != EOPNOTSUPP && saved != ENOSYS && saved != EMLINK) {
        errno = saved;
        return -1;
    }
    if (fileio_rename_noreplace(dfd, tmp, dfd, name) == 0)
        return 0;
    saved = errno;
    if (fileio_renamed_anyway(dfd, tmp, dfd, name, expect))
        return 0;
    errno = saved;
    return -1;
}

/* Creates dfd/tmp exclusively, no link followed (a stale one is removed first). */
static int create_tmp(int dfd, const char *tmp, mode_t mode)
{
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dfd, tmp, flags, mode);

    if (fd < 0 && errno == EEXIST) {
        if (unlinkat(dfd, tmp, 0) == 0)
            fd = openat(dfd, tmp, flags, mode);
        else
            errno = EEXIST; /* what is in the way, not why it stayed */
    }
    return fd;
}

/* Copies src_fd from offset 0 to its end into fd (a new, empty file): at
 * most max bytes (EFBIG before anything is written), holes left holes
 * (SEEK_DATA), and EINTR as soon as *stop is set. */
static int copy_fd(int src_fd, int fd, uint64_t max, const volatile sig_atomic_t *stop)
{
    struct stat st;
    char *buf;
    off_t off = 0, end;
    int rc = -1;

    if (fstat(src_fd, &st) < 0)
        return -1;
    if ((uint64_t)st.st_size > max) {
        errno = EFBIG;
        return -1;
    }
    end = st.st_size;
    buf = malloc(COPY_CHUNK);
    if (buf == NULL)
        return -1;
    while (off < end) {
        off_t data = lseek(src_fd, off, SEEK_DATA);
        ssize_t got;
        if (stop != NULL && *stop) {
            errno = EINTR;
            goto out;
        }
        if (data < 0 && errno == ENXIO)
            break; /* a hole to the end */
        if (data < 0 && errno != EINVAL)
            goto out;
        if (data > off)
            off = data; /* else: no SEEK_DATA here; every byte is copied */
        got = pread(src_fd, buf, COPY_CHUNK, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            goto out;
        if (got == 0)
            break; /* it shrank: what is there is copied */
        for (ssize_t done = 0; done < got;) {
            ssize_t w = pwrite(fd, buf + done, (size_t)(got - done), off + done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                goto out;
            done += w;
        }
        off += got;
    }
    rc = ftruncate(fd, off > end ? off : end); /* a hole at the end is a length */
out:
    free(buf);
    return rc;
}

/* The publishing steps around the bytes: buf when src_fd < 0, else src_fd
 * (within max bytes, stopped by *stop). */
static int publish(int dfd, const char *dir_shown, const char *name, const void *buf, size_t len, int src_fd,
                   uint64_t max, const volatile sig_atomic_t *stop, mode_t mode, fileio_mode how, char *final,
                   size_t finalsz, owl_err *err)
{
    char tmp[NAME_MAX + 1], used[NAME_MAX + 1];
    const char *step = "name";
    struct stat st;
    int fd = -1, saved;

    if (final == NULL) {
        final = used;
        finalsz = sizeof(used);
    }
    if (fileio_tmp_name(name, tmp, sizeof(tmp)) < 0)
        goto fail;
    step = "create";
    fd = create_tmp(dfd, tmp, mode);
    if (fd < 0)
        goto fail;
    step = "write";
    if (fchmod(fd, mode) < 0 ||
        (src_fd < 0 ? fileio_write_all(fd, buf, len) : copy_fd(src_fd, fd, max, stop)) < 0)
        goto fail_tmp;
    step = "fsync";
    if (fsync(fd) < 0 || fstat(fd, &st) < 0)
        goto fail_tmp;
    step = "close";
    if (close(fd) < 0) {
        fd = -1;
        goto fail_tmp;
    }
    fd = -1;
    step = "rename";
    if (how == FILEIO_UNIQUE) {
        if (fileio_move_unique(dfd, tmp, dfd, name, &st, final, finalsz) < 0)
            goto fail_tmp;
    } else {
        if ((size_t)snprintf(final, finalsz, "%s", name) >= finalsz) {
            errno = ENAMETOOLONG;
            goto fail_tmp;
        }
        if (how == FILEIO_NOREPLACE ? place_noreplace(dfd, tmp, name, &st) < 0 : renameat(dfd, tmp, dfd, name) < 0) {
            if (errno == EEXIST && how == FILEIO_NOREPLACE) {
                unlinkat(dfd, tmp, 0);
                return err_set(err, OWL_EUSAGE, "%s/%s already exists", dir_shown, name);
            }
            goto fail_tmp;
        }
    }
    return fileio_sync_dir(dfd, dir_shown, err);
fail_tmp:
    saved = errno;
    if (fd >= 0)
        close(fd);
    unlinkat(dfd, tmp, 0);
    errno = saved;
fail:
    return err_set(err, OWL_ERUNTIME, "cannot write %s/%s (%s): %s", dir_shown, name, step, strerror(errno));
}

int fileio_write_atomic(int dfd, const char *dir_shown, const char *name, const void *buf, size_t len,
                        mode_t mode, fileio_mode how, char *final, size_t finalsz, owl_err *err)
{
    return publish(dfd, dir_shown, name, buf, len, -1, 0, NULL, mode, how, final, finalsz, err);
}

int fileio_copy_atomic(int dfd, const char *dir_shown, const char *name, int src_fd, mode_t mode,
                       fileio_mode how, char *final, size_t finalsz, owl_err *err)
{
    return publish(dfd, dir_shown, name, NULL, 0, src_fd, UINT64_MAX, NULL, mode, how, final, finalsz, err);
}

int fileio_copy_atomic_bounded(int dfd, const char *dir_shown, const char *name, int src_fd, uint64_t max,
                               const volatile sig_atomic_t *stop, mode_t mode, fileio_mode how, char *final,
                               size_t finalsz, owl_err *err)
{
    return publish(dfd, dir_shown, name, NULL, 0, src_fd, max, stop, mode, how, final, finalsz, err);
}

int fileio_write_path(const char *path, const void *buf, size_t len, mode_t mode, fileio_mode how,
                      owl_err *err)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    int dfd, rc;

    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if ((size_t)(slash - path) >= sizeof(dir)) {
        return err_set(err, OWL_EUSAGE, "path too long: %s", path);
    } else {
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    }
    if (slash != NULL && slash[1] == '\0')
        return err_set(err, OWL_EUSAGE, "%s names a directory, not a file", path);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot write %s (open directory): %s", path, strerror(errno));
    rc = fileio_write_atomic(dfd, dir, slash != NULL ? slash + 1 : path, buf, len, mode, how, NULL, 0, err);
    close(dfd);
    return rc;
}

/* Opens dfd/name for reading: no link followed, a regular file of at most max
 * bytes. 1 when it does not exist. */
static int open_small(int dfd, const char *name, size_t max, int *fd, size_t *size, owl_err *err)
{
    struct stat st;

    *fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT)
            return 1;
        return err_set(err, OWL_ERUNTIME, "cannot read %s: %s", name, strerror(errno));
    }
    if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        close(*fd);
        *fd = -1;
        return err_set(err, OWL_ERUNTIME, "cannot read %s: not a regular file of at most %zu bytes", name, max);
    }
    *size = (size_t)st.st_size;
    return 0;
}

/* Reads fd into buf, at most max bytes, NUL-terminated; closes fd. */
static int read_all(int fd, const char *name, char *buf, size_t max, size_t *len, owl_err *err)
{
    size_t used = 0;

    for (;;) {
        ssize_t n = read(fd, buf + used, max - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            close(fd);
            return err_set(err, OWL_ERUNTIME, "cannot read %s: %s", name, strerror(saved));
        }
        used += (size_t)n;
        if (n == 0 || used == max)
            break;
    }
    close(fd);
    buf[used] = '\0';
    *len = used;
    return 0;
}

int fileio_read_small(int dfd, const char *name, char *buf, size_t max, size_t *len, owl_err *err)
{
    size_t size;
    int fd, rc;

    *len = 0;
    buf[0] = '\0';
    rc = open_small(dfd, name, max, &fd, &size, err);
    if (rc != 0)
        return rc;
    return read_all(fd, name, buf, max, len, err);
}

int fileio_read_alloc(int dfd, const char *name, size_t max, char **buf, size_t *len, owl_err *err)
{
    size_t size;
    int fd, rc;

    *buf = NULL;
    *len = 0;
    rc = open_small(dfd, name, max, &fd, &size, err);
    if (rc != 0)
        return rc;
    *buf = malloc(size + 1);
    if (*buf == NULL) {
        close(fd);
        return err_oom(err);
    }
    /* the file may have grown since: what is read stays within its size then */
    if (read_all(fd, name, *buf, size, len, err) < 0) {
        free(*buf);
        *buf = NULL;
        return -1;
    }
    return 0;
}
