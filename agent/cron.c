/* owlsync schedules: parses 5-field cron expressions into bit sets and finds the
 * next local fire time, walking calendar days and resolving wall clock across DST. */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "owlsync/cron.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* How far cron_next looks: 5 years of calendar days, leap days included. */
#define HORIZON_DAYS (5 * 366)

/* Longest piece of the schedule quoted back in an error message. */
#define QUOTE_MAX 64

/* Numbers are read up to this value; anything longer is out of range anyway. */
#define NUMBER_CAP 1000

#define SECS_PER_DAY INT64_C(86400)

/* ---- parsing ---------------------------------------------------------------- */

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

typedef struct field_spec {
    const char *name;         /* as it appears in messages */
    int min, max;             /* accepted values (day-of-week allows 7 = Sunday) */
    const char *const *names; /* names[i] is value first_name + i; NULL: numbers only */
    size_t name_count;
    int first_name;
    const char *name_hint; /* shown when a name is unknown */
} field_spec;

static const field_spec specs[5] = {
    {"minute", 0, 59, NULL, 0, 0, NULL},
    {"hour", 0, 23, NULL, 0, 0, NULL},
    {"day-of-month", 1, 31, NULL, 0, 0, NULL},
    {"month", 1, 12, month_names, ARRAY_LEN(month_names), 1, "use 1-12 or jan..dec"},
    {"day-of-week", 0, 7, day_names, ARRAY_LEN(day_names), 0, "use 0-7 or sun..sat"},
};

/* One field being parsed: its spec and its whole text, for messages. */
typedef struct field_ctx {
    const field_spec *spec;
    const char *text;
    size_t len;
} field_ctx;

static int quote_len(size_t len)
{
    return len > QUOTE_MAX ? QUOTE_MAX : (int)len;
}

/* Fails with OWL_EUSAGE and `FIELD field "TEXT": DETAIL`. */
static int field_error(const field_ctx *f, owl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int field_error(const field_ctx *f, owl_err *err, const char *fmt, ...)
{
    char detail[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return err_set(err, OWL_EUSAGE, "%s field \"%.*s\": %s", f->spec->name,
                   quote_len(f->len), f->text, detail);
}

/* Length and start of [s, e) for "%.*s", bounded for messages. */
#define QUOTE(s, e) quote_len((size_t)((e) - (s))), (s)

/* Reads one value (a number or, where the field has them, a name) at *pp, which
 * stops before `end`; advances *pp. */
static int parse_value(const field_ctx *f, const char **pp, const char *end, int *out,
                       owl_err *err)
{
    const char *p = *pp;
    const char *start = p;

    if (p < end && isdigit((unsigned char)*p)) {
        int v = 0;
        while (p < end && isdigit((unsigned char)*p)) {
            if (v < NUMBER_CAP)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (v < f->spec->min || v > f->spec->max)
            return field_error(f, err, "%.*s is out of range (%d-%d)", QUOTE(start, p),
                               f->spec->min, f->spec->max);
        *out = v;
        *pp = p;
        return 0;
    }
    if (p < end && isalpha((unsigned char)*p)) {
        while (p < end && isalpha((unsigned char)*p))
            p++;
        if (f->spec->names == NULL)
            return field_error(f, err, "\"%.*s\" is not a number", QUOTE(start, p));
        for (size_t i = 0; i < f->spec->name_count; i++) {
            if ((size_t)(p - start) == 3 && strncasecmp(start, f->spec->names[i], 3) == 0) {
                *out = f->spec->first_name + (int)i;
                *pp = p;
                return 0;
            }
        }
        return field_error(f, err, "unknown name \"%.*s\" (%s)", QUOTE(start, p),
                           f->spec->name_hint);
    }
    if (p == end)
        return field_error(f, err, "a value is missing");
    return field_error(f, err, "unexpected \"%.*s\"", QUOTE(p, end));
}

/* Parses one list item in [p, end) — *, a, a-b, each optionally /step — into *bits. */
static int parse_item(const field_ctx *f, const char *p, const char *end, uint64_t *bits,
                      owl_err *err)
{
    const field_spec *s = f->spec;
    const char *item = p;
    int lo, hi, step = 1;
    bool ranged = false; /* "*" or a-b: an "a/n" without either runs to the maximum */

    if (p == end)
        return field_error(f, err, "empty list item");
    if (*p == '*') {
        lo = s->min;
        hi = s->max;
        ranged = true;
        p++;
    } else {
        if (parse_value(f, &p, end, &lo, err) != 0)
            return -1;
        hi = lo;
        if (p < end && *p == '-') {
            p++;
            if (p == end)
                return field_error(f, err, "range \"%.*s\" has no end", QUOTE(item, p));
            if (parse_value(f, &p, end, &hi, err) != 0)
                return -1;
            ranged = true;
            if (hi < lo)
                return field_error(f, err, "range \"%.*s\" is reversed", QUOTE(item, p));
        }
    }
    if (p < end && *p == '/') {
        const char *step_start = ++p;
        int v = 0;
        if (p == end)
            return field_error(f, err, "step is missing after \"/\"");
        if (!isdigit((unsigned char)*p))
            return field_error(f, err, "step \"%.*s\" is not a number",
                               QUOTE(step_start, end));
        while (p < end && isdigit((unsigned char)*p)) {
            if (v < NUMBER_CAP)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (v < 1 || v > s->max)
            return field_error(f, err, "step %.*s is out of range (1-%d)",
                               QUOTE(step_start, p), s->max);
        step = v;
        if (!ranged)
            hi = s->max;
    }
    if (p < end)
        return field_error(f, err, "unexpected \"%.*s\"", QUOTE(p, end));
    for (int v = lo; v <= hi; v += step)
        *bits |= UINT64_C(1) << v;
    return 0;
}

/* Parses one whitespace-free field: a comma-separated list of items. */
static int parse_field(const field_ctx *f, uint64_t *bits, owl_err *err)
{
    const char *p = f->text;
    const char *end = f->text + f->len;

    *bits = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma != NULL ? comma : end;
        if (parse_item(f, p, item_end, bits, err) != 0)
            return -1;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int cron_parse(const char *text, cron_expr *out, owl_err *err)
{
    const char *start[5] = {NULL};
    size_t len[5] = {0};
    uint64_t bits[5];
    int fields = 0;
    cron_expr e;

    for (const char *s = text != NULL ? text : ""; *s != '\0';) {
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0')
            break;
        const char *word = s;
        while (*s != '\0' && !isspace((unsigned char)*s))
            s++;
        if (fields < 5) {
            start[fields] = word;
            len[fields] = (size_t)(s - word);
        }
        if (fields < 1000) /* only printed; keeps the count from overflowing */
            fields++;
    }
    if (fields != 5)
        return err_set(err, OWL_EUSAGE,
                       "expected 5 fields (minute hour day month weekday), got %d", fields);
    for (size_t i = 0; i < ARRAY_LEN(specs); i++) {
        field_ctx f = {&specs[i], start[i], len[i]};
        if (parse_field(&f, &bits[i], err) != 0)
            return -1;
    }
    memset(&e, 0, sizeof(e));
    e.minutes = bits[0];
    e.hours = (uint32_t)bits[1];
    e.mdays = (uint32_t)bits[2];
    e.months = (uint16_t)bits[3];
    /* 7 is another name for Sunday. */
    e.wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f);
    e.mday_any = len[2] == 1 && start[2][0] == '*';
    e.wday_any = len[4] == 1 && start[4][0] == '*';
    *out = e;
    return 0;
}

/* ---- calendar arithmetic ------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday; day 0 (1970-01-01) was a Thursday. */
static int weekday(int64_t days)
{
    int64_t w = (days + 4) % 7;
    return (int)(w < 0 ? w + 7 : w);
}

/* ---- local time ----------------------------------------------------------------- */

/* The local wall clock at t, as seconds since 1970-01-01 00:00 on that clock
 * ("naive" seconds, no zone). False when localtime_r cannot represent t. */
static bool wall_at(int64_t t, int64_t *wall)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if ((int64_t)tt != t || localtime_r(&tt, &tm) == NULL)
        return false;
    *wall = days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) *
                SECS_PER_DAY +
            tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return true;
}

/* The first instant at which the local clock reads `wall` or later: the earlier
 * instant when the wall time happens twice (fall back), the end of the gap when it
 * does not happen at all (spring forward). Offsets stay within a day of UTC, and a
 * zone changes offset at most once in two days, so the offsets a day either side
 * (and at wall itself) are the only ones that can apply. */
static bool resolve_wall(int64_t wall, int64_t *out)
{
    const int64_t probes[3] = {wall - SECS_PER_DAY, wall, wall + SECS_PER_DAY};
    bool found = false;
    int64_t best = 0;

    for (size_t i = 0; i < ARRAY_LEN(probes); i++) {
        int64_t w, t, check;
        if (!wall_at(probes[i], &w))
            return false;
        t = wall - (w - probes[i]); /* wall minus this probe's UTC offset */
        if (!wall_at(t, &check))
            return false;
        if (check == wall && (!found || t < best)) {
            best = t;
            found = true;
        }
    }
    if (found) {
        *out = best;
        return true;
    }
    /* A gap: the clock jumps over wall between these two instants. Bisect for the
     * first instant whose clock reads wall or later. */
    int64_t lo = wall - 2 * SECS_PER_DAY; /* clock < wall */
    int64_t hi = wall + 2 * SECS_PER_DAY; /* clock > wall */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2, w;
        if (!wall_at(mid, &w))
            return false;
        if (w >= wall)
            hi = mid;
        else
            lo = mid;
    }
    *out = hi;
    return true;
}

static bool day_matches(const cron_expr *e, int month, int mday, int wday)
{
    bool dom, dow;

    if (!(e->months >> month & 1u))
        return false;
    dom = (e->mdays >> mday & 1u) != 0;
    dow = (e->wdays >> wday & 1u) != 0;
    /* Classic cron: with both restricted, either one is enough. */
    if (e->mday_any || e->wday_any)
        return dom && dow;
    return dom || dow;
}

time_t cron_next(const cron_expr *e, time_t after)
{
    int64_t after_wall, day, y;
    int start_minute; /* of the day, on the first day only */

    if (e == NULL)
        return -1;
    /* As mktime would: pick up a changed TZ or /etc/localtime. */
    tzset();
    if (!wall_at((int64_t)after, &after_wall))
        return -1;
    day = after_wall >= 0 ? after_wall / SECS_PER_DAY
                          : -((-after_wall + SECS_PER_DAY - 1) / SECS_PER_DAY);
    start_minute = (int)((after_wall - day * SECS_PER_DAY) / 60);
    /* Wall times before after's own clock reading resolve to instants at or before
     * it (resolution is monotonic), so the first day starts at that minute; later
     * wall times can still resolve to <= after in a repeated hour, hence the check. */
    for (int i = 0; i <= HORIZON_DAYS; i++, day++, start_minute = 0) {
        int m, d;
        civil_from_days(day, &y, &m, &d);
        if (!day_matches(e, m, d, weekday(day)))
            continue;
        for (int h = start_minute / 60; h < 24; h++) {
            if (!(e->hours >> h & 1u))
                continue;
            int first = h == start_minute / 60 ? start_minute % 60 : 0;
            for (int min = first; min < 60; min++) {
                int64_t t;
                if (!(e->minutes >> min & 1u))
                    continue;
                if (!resolve_wall(day * SECS_PER_DAY + h * 3600 + min * 60, &t))
                    return -1;
                if (t > (int64_t)after)
                    return (time_t)t;
            }
        }
    }
    return -1;
}
