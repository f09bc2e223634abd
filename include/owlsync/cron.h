/* owlsync schedules: 5-field cron expressions (minute hour day-of-month month
 * day-of-week) parsed once, and the next fire time after a given moment, local time. */
#ifndef OWLSYNC_CRON_H
#define OWLSYNC_CRON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "owlsync/error.h"

typedef struct cron_expr {
    uint64_t minutes;   /* bit m set: minute m (0-59) */
    uint32_t hours;     /* bits 0-23 */
    uint32_t mdays;     /* bits 1-31 */
    uint16_t months;    /* bits 1-12 */
    uint8_t wdays;      /* bits 0-6, Sunday = 0 (7 is accepted as Sunday) */
    bool mday_any;      /* day-of-month was "*" (for the cron OR rule) */
    bool wday_any;      /* day-of-week was "*" */
} cron_expr;

/* Parses "M H DOM MON DOW": numbers, *, lists (a,b), ranges (a-b), steps (*\/n,
 * a-b/n, a/n), month names jan..dec and day names sun..sat (any case).
 * Errors are OWL_EUSAGE and name the field and the bad text. */
int cron_parse(const char *text, cron_expr *out, owl_err *err);

/* The first minute strictly after `after` that matches, in local time, as a
 * time_t. Classic cron day rule: when both day-of-month and day-of-week are
 * restricted, a day matching either one fires. Across DST: a local time that
 * does not exist (spring forward) fires at the first minute after the gap, once;
 * a local time that happens twice (fall back) fires once, at its first
 * occurrence. Returns -1 when nothing matches within 5 years (e.g. Feb 30). */
time_t cron_next(const cron_expr *e, time_t after);

#endif
