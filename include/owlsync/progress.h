/* owlsync progress: one line on stderr, redrawn at most four times a second,
 * with rows, bytes and rate of a long export or import, for a person watching
 * at a terminal. Off, it costs a branch. */
#ifndef OWLSYNC_PROGRESS_H
#define OWLSYNC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct progress {
    bool on;
    bool rows_known;       /* the line shows rows as well as bytes */
    const char *verb;      /* "export", "import" */
    struct timespec start, last;
    uint64_t rows, bytes;
} progress;

/* Starts the clock; on says whether anything is shown. */
void progress_init(progress *p, bool on, const char *verb, bool rows_known);

/* Adds to the counts and redraws the line for what (a table) when due. */
void progress_add(progress *p, const char *what, uint64_t rows, uint64_t bytes);

/* Draws the final line and ends it. */
void progress_done(progress *p, const char *what);

/* Erases the line (when what follows prints on its own). */
void progress_clear(const progress *p);

/* Seconds since progress_init. */
double progress_seconds(const progress *p);

#endif
