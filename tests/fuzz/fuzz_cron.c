/* Fuzz harness of agent/cron.c: the input is a schedule, as an [export]
 * section's schedule key holds it. cron_parse reads it; a schedule that
 * parses gets cron_next from three moments in a time zone, all picked by a
 * hash of the input: one anywhere in 2020-2025 and two around the zone's clock
 * changes of 2024. Zones with DST changes at 02:00, at midnight (Havana)
 * and by 30 minutes (Lord Howe) are among them. Properties: the next fire time
 * is after the moment; nothing fires between them (from one second before it,
 * the next fire time is the same); and at it the local clock matches the
 * schedule on a whole minute, or has just jumped forward over a gap. */
#include <time.h>

#include "fuzz.h"
#include "owlsync/cron.h"

static const struct {
    const char *tz;
    time_t spring, fall; /* its clock changes of 2024 */
} zones[] = {
    {"UTC", 1711846800, 1729990800},                 /* Berlin's, for a zone without */
    {"Europe/Berlin", 1711846800, 1729990800},       /* 2024-03-31 and 2024-10-27 01:00 UTC */
    {"America/New_York", 1710054000, 1730613600},    /* 2024-03-10 07:00, 2024-11-03 06:00 UTC */
    {"America/Havana", 1710046800, 1730610000},      /* at midnight local */
    {"Australia/Lord_Howe", 1712415600, 1728142200}, /* by 30 minutes */
    {"Pacific/Chatham", 1712412000, 1727532000},     /* +12:45 and +13:45 */
    {"Asia/Kolkata", 1711846800, 1729990800},        /* +05:30, no DST */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * UINT64_C(1099511628211);
    return h;
}

static bool local_matches(const cron_expr *e, time_t t)
{
    struct tm tm;
    bool dom, dow;

    if (localtime_r(&t, &tm) == NULL)
        fuzz_fail("localtime_r(%lld) failed", (long long)t);
    if (tm.tm_sec != 0 || !(e->minutes >> tm.tm_min & 1u) || !(e->hours >> tm.tm_hour & 1u) ||
        !(e->months >> (tm.tm_mon + 1) & 1u))
        return false;
    dom = (e->mdays >> tm.tm_mday & 1u) != 0;
    dow = (e->wdays >> tm.tm_wday & 1u) != 0;
    return e->mday_any || e->wday_any ? dom && dow : dom || dow;
}

/* Whether the local clock jumps forward at t (reads more than one second
 * later than it did one second before). */
static bool after_gap(time_t t)
{
    struct tm a, b;
    time_t before = t - 1;

    if (localtime_r(&before, &a) == NULL || localtime_r(&t, &b) == NULL)
        return false;
    return timegm(&b) - timegm(&a) > 1;
}

static void check_next(const cron_expr *e, const char *text, time_t after)
{
    time_t next = cron_next(e, after), again;

    if (next == (time_t)-1)
        return; /* nothing within 5 years (Feb 30), or a clock it cannot read */
    if (next <= after)
        fuzz_fail("\"%s\" after %lld fires at %lld, not after it", text, (long long)after, (long long)next);
    again = cron_next(e, next - 1);
    if (again != next)
        fuzz_fail("\"%s\" after %lld fires at %lld, but after %lld at %lld", text, (long long)after, (long long)next,
                  (long long)(next - 1), (long long)again);
    if (!local_matches(e, next) && !after_gap(next))
        fuzz_fail("\"%s\" after %lld fires at %lld (TZ %s), whose local time does not match", text, (long long)after,
                  (long long)next, getenv("TZ"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[512];
    cron_expr e;
    owl_err err;
    uint64_t h = fnv1a(data, size);
    size_t z = (size_t)(h % (sizeof(zones) / sizeof(zones[0])));

    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    err_clear(&err);
    if (cron_parse(text, &e, &err) < 0) {
        if (err.code != OWL_EUSAGE || err.msg[0] == '\0')
            fuzz_fail("cron_parse failed with code %d, message \"%s\"", err.code, err.msg);
        return 0;
    }
    if (e.minutes == 0 || e.hours == 0 || e.mdays == 0 || e.months == 0 || e.wdays == 0 || e.minutes >> 60 != 0 ||
        e.hours >> 24 != 0 || (e.mdays & 1u) != 0 || (e.months & 1u) != 0 || e.months >> 13 != 0 || e.wdays >> 7 != 0)
        fuzz_fail("\"%s\" parses to bits out of their fields' ranges", text);
    if (setenv("TZ", zones[z].tz, 1) < 0)
        fuzz_setup_failed("setenv", strerror(errno));
    tzset();
    check_next(&e, text, (time_t)(1577836800 + (int64_t)(h >> 8) % (6 * 365 * 86400))); /* 2020-01-01 on */
    check_next(&e, text, zones[z].spring - 5400 + (time_t)((h >> 40) % 7200)); /* 90 minutes before to 30 after */
    check_next(&e, text, zones[z].fall - 5400 + (time_t)((h >> 48) % 7200));
    return 0;
}
