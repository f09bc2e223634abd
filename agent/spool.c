/* owlsync spool: anonymous temporary files that hold an export's rows until
 * the bundle is built, compressed while the rows stream when asked. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/fileio.h"
#include "owlsync/spool.h"

#define SPOOL_BUF (256 * 1024)

int spool_tmpfile(owl_err *err)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    if ((size_t)snprintf(path, sizeof(path), "%s/owlsync-spool-XXXXXX", dir) >= sizeof(path))
        return err_set(err, OWL_EUSAGE, "TMPDIR is too long: %s", dir);
    fd = mkstemp(path);
    if (fd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot create a spool file in %s: %s", dir, strerror(errno));
    unlink(path);
    return fd;
}

void spool_init(spool *sp, bool framed, bundle_compression comp, int level)
{
    memset(sp, 0, sizeof(*sp));
    sp->fd = -1;
    sp->framed = framed;
    sp->comp = comp;
    sp->level = level;
}

int spool_open(spool *sp, owl_err *err)
{
    sp->buf = malloc(SPOOL_BUF);
    if (sp->buf == NULL)
        return err_oom(err);
    sp->fd = spool_tmpfile(err);
    return sp->fd < 0 ? -1 : 0;
}

/* Writes len bytes to the spool's file: into its frame, or as they are. */
static int spool_out(spool *sp, const char *p, size_t len, owl_err *err)
{
    if (sp->framed) {
        if ((sp->frame == NULL && bundle_frame_open(sp->fd, sp->comp, sp->level, &sp->frame, err) < 0) ||
            bundle_frame_write(sp->frame, p, len, err) < 0)
            return err_prefix(err, "spool");
    } else if (fileio_write_all(sp->fd, p, len) < 0) {
        return err_set(err, OWL_ERUNTIME, "cannot write spool file: %s", strerror(errno));
    }
    return 0;
}

static int spool_flush(spool *sp, owl_err *err)
{
    if (sp->used > 0 && spool_out(sp, sp->buf, sp->used, err) < 0)
        return -1;
    sp->used = 0;
    return 0;
}

int spool_write(spool *sp, const char *p, size_t len, owl_err *err)
{
    if (len > SPOOL_BUF - sp->used) {
        if (spool_flush(sp, err) < 0)
            return -1;
        if (len >= SPOOL_BUF) {
            if (spool_out(sp, p, len, err) < 0)
                return -1;
            sp->bytes += len;
            return 0;
        }
    }
    memcpy(sp->buf + sp->used, p, len);
    sp->used += len;
    sp->bytes += len;
    return 0;
}

int spool_finish(spool *sp, owl_err *err)
{
    bundle_frame *f;

    if (spool_flush(sp, err) < 0)
        return -1;
    f = sp->frame;
    sp->frame = NULL;
    if (f != NULL && bundle_frame_close(f, &sp->zbytes, err) < 0)
        return err_prefix(err, "spool");
    free(sp->buf); /* written: its buffer goes, whatever the number of parts */
    sp->buf = NULL;
    return 0;
}

void spool_close(spool *sp)
{
    bundle_frame_abort(sp->frame);
    sp->frame = NULL;
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = -1;
    free(sp->buf);
    sp->buf = NULL;
}
