/* owlsync progress: the one progress line of a long export or import, with
 * percentage and time left when the total is known. */
#include <stdio.h>

#include "owlsync/progress.h"

static double elapsed(const struct timespec *from, const struct timespec *to)
{
    return (double)(to->tv_sec - from->tv_sec) + (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

void progress_init(progress *p, bool on, const char *verb, bool rows_known)
{
    p->on = on;
    p->rows_known = rows_known;
    p->drawn = false;
    p->verb = verb;
    p->rows = p->bytes = p->total = 0;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    p->last = p->from = p->start;
}

void progress_total(progress *p, uint64_t total)
{
    p->total = total;
    p->rows = p->bytes = 0;
    clock_gettime(CLOCK_MONOTONIC, &p->from);
}

double progress_seconds(const progress *p)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return elapsed(&p->start, &now);
}

/* "M:SS" or "H:MM:SS" of a whole number of seconds, at most 99:59:59. */
static void clock_text(char *out, size_t outsz, double secs)
{
    unsigned long s = secs >= 359999.0 ? 359999UL : secs > 0 ? (unsigned long)(secs + 0.5) : 0UL;

    if (s >= 3600)
        snprintf(out, outsz, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, outsz, "%lu:%02lu", s / 60, s % 60);
}

const char *progress_format(char *out, size_t outsz, const char *verb, const char *what, bool rows_known,
                            uint64_t rows, uint64_t bytes, uint64_t total, double secs)
{
    double mb = (double)bytes / 1e6, rate = secs > 0 ? (double)bytes / secs : 0.0;
    size_t len = 0;
    int n;

    if (outsz == 0)
        return out;
    out[0] = '\0';
#define PUT(...)                                                                                                       \
    do {                                                                                                               \
        n = snprintf(out + len, outsz - len, __VA_ARGS__);                                                             \
        if (n < 0 || (size_t)n >= outsz - len)                                                                         \
            return out;                                                                                                \
        len += (size_t)n;                                                                                              \
    } while (0)
    PUT("%s %-20s", verb, what);
    if (rows_known)
        PUT(" %10llu rows", (unsigned long long)rows);
    if (total > 0) {
        /* 99% until the last byte: 100% says it is all there */
        unsigned pct = 100;
        if (bytes < total) {
            pct = (unsigned)((double)bytes * 100.0 / (double)total);
            pct = pct > 99 ? 99 : pct;
        }
        PUT(" %9.1f of %.1f MB %3u%%", mb, (double)total / 1e6, pct);
    } else {
        PUT(" %9.1f MB", mb);
    }
    PUT(" %7.1f MB/s", rate / 1e6);
    if (total > 0 && bytes < total && bytes > 0 && rate > 0) {
        char eta[24];
        clock_text(eta, sizeof(eta), (double)(total - bytes) / rate);
        PUT("  ETA %s", eta);
    }
#undef PUT
    return out;
}

static void draw(progress *p, const char *what, bool force, bool final)
{
    char line[PROGRESS_LINE_MAX];
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!force && p->drawn && elapsed(&p->last, &now) < 0.25)
        return;
    p->last = now;
    progress_format(line, sizeof(line), p->verb, what, p->rows_known, p->rows, p->bytes, p->total,
                    elapsed(&p->from, &now));
    fprintf(stderr, "\r\033[K%s", line);
    p->drawn = !final;
    if (final)
        fputc('\n', stderr);
}

void progress_add(progress *p, const char *what, uint64_t rows, uint64_t bytes)
{
    if (!p->on)
        return;
    p->rows += rows;
    p->bytes += bytes;
    draw(p, what, false, false);
}

void progress_show(progress *p, const char *what)
{
    if (p->on)
        draw(p, what, true, false);
}

void progress_done(progress *p, const char *what)
{
    if (p->on)
        draw(p, what, true, true);
}

void progress_clear(progress *p)
{
    if (p->on && p->drawn)
        fputs("\r\033[K", stderr);
    p->drawn = false;
}
