/* owlsync progress: one line on stderr, redrawn at most four times a second,
 * with rows, bytes and rate of a long export or import (and, when the total is
 * known, percentage and time left), for a person watching at a terminal. Off,
 * it costs a branch. */
#ifndef OWLSYNC_PROGRESS_H
#define OWLSYNC_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct progress {
    bool on;
    bool rows_known;       /* the line shows rows as well as bytes */
    bool drawn;            /* a line is on the terminal */
    const char *verb;      /* "export", "import" */
    struct timespec start, last;
    struct timespec from;  /* the counting began (rate and time left) */
    uint64_t rows, bytes;
    uint64_t total;        /* bytes expected in all, or 0: unknown */
} progress;

/* Starts the clock; on says whether anything is shown. */
void progress_init(progress *p, bool on, const char *verb, bool rows_known);

/* Sets the bytes expected in all (0: unknown), for percentage and time left,
 * and starts counting them now: rate and time left are of what follows. */
void progress_total(progress *p, uint64_t total);

/* Adds to the counts and redraws the line for what (a table): at once the
 * first time, then at most four times a second. */
void progress_add(progress *p, const char *what, uint64_t rows, uint64_t bytes);

/* Draws the line for what now, leaving it on the terminal until the next
 * draw or progress_clear (a stage that has no counts of its own). */
void progress_show(progress *p, const char *what);

/* Draws the final line and ends it. */
void progress_done(progress *p, const char *what);

/* Erases the line, if one is drawn (when what follows prints on its own). */
void progress_clear(progress *p);

/* Seconds since progress_init. */
double progress_seconds(const progress *p);

#define PROGRESS_LINE_MAX 160

/* Formats the line (without "\r" or the erase) into out (outsz bytes, at least
 * 1): verb, what, rows when rows_known, bytes, "of TOTAL" and the percentage
 * when total > 0, the rate after secs seconds, and the time left ("ETA M:SS",
 * "ETA H:MM:SS") while bytes < total and some bytes came. Pure. Returns out. */
const char *progress_format(char *out, size_t outsz, const char *verb, const char *what, bool rows_known,
                            uint64_t rows, uint64_t bytes, uint64_t total, double secs);

#endif
