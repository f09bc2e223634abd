/* owlsync progress: the one progress line of a long export or import. */
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
    p->verb = verb;
    p->rows = p->bytes = 0;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    p->last = p->start;
}

double progress_seconds(const progress *p)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return elapsed(&p->start, &now);
}

static void draw(progress *p, const char *what, bool final)
{
    struct timespec now;
    double secs, mb;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!final && elapsed(&p->last, &now) < 0.25)
        return;
    p->last = now;
    secs = elapsed(&p->start, &now);
    mb = (double)p->bytes / 1e6;
    if (p->rows_known)
        fprintf(stderr, "\r\033[K%s %-20s %10llu rows %9.1f MB %7.1f MB/s", p->verb, what,
                (unsigned long long)p->rows, mb, secs > 0 ? mb / secs : 0.0);
    else
        fprintf(stderr, "\r\033[K%s %-20s %9.1f MB %7.1f MB/s", p->verb, what, mb, secs > 0 ? mb / secs : 0.0);
    if (final)
        fputc('\n', stderr);
}

void progress_add(progress *p, const char *what, uint64_t rows, uint64_t bytes)
{
    if (!p->on)
        return;
    p->rows += rows;
    p->bytes += bytes;
    draw(p, what, false);
}

void progress_done(progress *p, const char *what)
{
    if (p->on)
        draw(p, what, true);
}

void progress_clear(const progress *p)
{
    if (p->on)
        fputs("\r\033[K", stderr);
}
