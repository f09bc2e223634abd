/* owlsync spool: an export's rows on their way to the bundle, in an anonymous
 * temporary file (TMPDIR), buffered, and compressed into one frame of the
 * bundle's compression as they come when asked (the bundle then takes the
 * frame as it is), else kept as they are. */
#ifndef OWLSYNC_SPOOL_H
#define OWLSYNC_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/bundle.h"
#include "owlsync/error.h"

typedef struct spool {
    int fd;                   /* -1 until spool_open */
    char *buf;
    size_t used;
    uint64_t bytes;           /* rows' bytes, unpacked */
    bool framed;              /* compress into a frame */
    bundle_compression comp;
    int level;
    bundle_frame *frame;      /* open while rows come */
    uint64_t zbytes;          /* the frame's bytes in the file, once ended */
} spool;

/* An anonymous temporary file in TMPDIR (else /tmp), removed when closed. */
int spool_tmpfile(owl_err *err);

/* Sets sp up for rows: framed (in comp at level) or as they are. */
void spool_init(spool *sp, bool framed, bundle_compression comp, int level);

/* Makes the file and the buffer. */
int spool_open(spool *sp, owl_err *err);

/* Adds len bytes of rows. */
int spool_write(spool *sp, const char *p, size_t len, owl_err *err);

/* Writes what is buffered and ends the frame: the spool is complete, its
 * buffer freed; sp->bytes and sp->zbytes are final. */
int spool_finish(spool *sp, owl_err *err);

/* Closes the file and frees everything (also after a failure). */
void spool_close(spool *sp);

#endif
