/* Unit tests of the cron module: every syntax, exact error messages, next fire
 * times in UTC, and the DST rules in Europe/Berlin, America/New_York, Lord Howe. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "owlsync/cron.h"
#include "unit.h"

#define BIT(n) (UINT64_C(1) << (n))

static void use_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

/* The instant of a UTC calendar time. */
static time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return timegm(&tm);
}

/* Parses text, recording a failure (and printing why) if it does not parse. */
static cron_expr parse_ok(const char *text)
{
    cron_expr e;
    owl_err err = {0};

    memset(&e, 0, sizeof(e));
    if (cron_parse(text, &e, &err) != 0) {
        printf("#   \"%s\": unexpected error: %s\n", text, err.msg);
        CHECK(0);
    }
    return e;
}

/* The next fire time of text after `after` in the current TZ, formatted as local
 * "YYYY-MM-DD HH:MM:SS ZONE", or "none" when cron_next returns -1. */
static const char *next_local(const char *text, time_t after)
{
    static char buf[64];
    cron_expr e = parse_ok(text);
    time_t t = cron_next(&e, after);
    struct tm tm;

    if (t == -1)
        return "none";
    if (localtime_r(&t, &tm) == NULL ||
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
        return "(unformattable)";
    return buf;
}

static time_t next_at(const char *text, time_t after)
{
    cron_expr e = parse_ok(text);
    return cron_next(&e, after);
}

/* Parsing text fails with OWL_EUSAGE, says exactly want, and leaves *out alone. */
#define EXPECT_ERR(text_, want_)                                                     \
    do {                                                                             \
        cron_expr e_, before_;                                                       \
        owl_err err_ = {0};                                                          \
        memset(&e_, 0xa5, sizeof(e_));                                               \
        before_ = e_;                                                                \
        CHECK(cron_parse((text_), &e_, &err_) == -1);                                \
        CHECK(err_.code == OWL_EUSAGE);                                              \
        CHECK_STR(err_.msg, (want_));                                                \
        CHECK(memcmp(&e_, &before_, sizeof(e_)) == 0);                               \
    } while (0)

/* ---- parsing ------------------------------------------------------------------ */

static void test_parse_star(void)
{
    cron_expr e = parse_ok("* * * * *");

    CHECK(e.minutes == BIT(60) - 1);
    CHECK(e.hours == (uint32_t)(BIT(24) - 1));
    CHECK(e.mdays == (uint32_t)(BIT(32) - 2));
    CHECK(e.months == (uint16_t)(BIT(13) - 2));
    CHECK(e.wdays == 0x7f);
    CHECK(e.mday_any);
    CHECK(e.wday_any);
}

static void test_parse_numbers(void)
{
    cron_expr e = parse_ok("5 4 3 2 1");

    CHECK(e.minutes == BIT(5));
    CHECK(e.hours == BIT(4));
    CHECK(e.mdays == BIT(3));
    CHECK(e.months == BIT(2));
    CHECK(e.wdays == BIT(1));
    CHECK(!e.mday_any);
    CHECK(!e.wday_any);

    e = parse_ok("59 23 31 12 6");
    CHECK(e.minutes == BIT(59));
    CHECK(e.hours == BIT(23));
    CHECK(e.mdays == BIT(31));
    CHECK(e.months == BIT(12));
    CHECK(e.wdays == BIT(6));

    e = parse_ok("0 0 1 1 0");
    CHECK(e.minutes == BIT(0));
    CHECK(e.mdays == BIT(1));
    CHECK(e.months == BIT(1));
    CHECK(e.wdays == BIT(0));

    /* Leading zeros and any whitespace around and between fields. */
    e = parse_ok("  \t07\t\t08  09 010 00 \n");
    CHECK(e.minutes == BIT(7));
    CHECK(e.hours == BIT(8));
    CHECK(e.mdays == BIT(9));
    CHECK(e.months == BIT(10));
    CHECK(e.wdays == BIT(0));
}

static void test_parse_ranges_steps(void)
{
    cron_expr e = parse_ok("*/15 */6 1-31/10 */3 1-5");

    CHECK(e.minutes == (BIT(0) | BIT(15) | BIT(30) | BIT(45)));
    CHECK(e.hours == (BIT(0) | BIT(6) | BIT(12) | BIT(18)));
    CHECK(e.mdays == (BIT(1) | BIT(11) | BIT(21) | BIT(31)));
    CHECK(e.months == (BIT(1) | BIT(4) | BIT(7) | BIT(10)));
    CHECK(e.wdays == 0x3e);
    /* A stepped star is a restriction, not "*": only the literal "*" is. */
    CHECK(!e.mday_any);
    CHECK(e.mdays != 0);

    e = parse_ok("10-20/5 9-17 * * *");
    CHECK(e.minutes == (BIT(10) | BIT(15) | BIT(20)));
    CHECK(e.hours == ((BIT(18) - 1) & ~(BIT(9) - 1)));

    /* a/n runs from a to the field's maximum. */
    e = parse_ok("50/3 20/2 25/3 10/1 3/2");
    CHECK(e.minutes == (BIT(50) | BIT(53) | BIT(56) | BIT(59)));
    CHECK(e.hours == (BIT(20) | BIT(22)));
    CHECK(e.mdays == (BIT(25) | BIT(28) | BIT(31)));
    CHECK(e.months == (BIT(10) | BIT(11) | BIT(12)));
    CHECK(e.wdays == (BIT(3) | BIT(5) | BIT(0))); /* 3, 5, 7 = Sunday */

    /* A one-value range and a step larger than the range. */
    e = parse_ok("7-7 3-4/10 * * *");
    CHECK(e.minutes == BIT(7));
    CHECK(e.hours == BIT(3));

    e = parse_ok("*/59 */23 */31 */12 */7");
    CHECK(e.minutes == (BIT(0) | BIT(59)));
    CHECK(e.hours == (BIT(0) | BIT(23)));
    CHECK(e.mdays == BIT(1));
    CHECK(e.months == BIT(1));
    CHECK(e.wdays == BIT(0)); /* 0 and 7 */
}

static void test_parse_names(void)
{
    cron_expr e = parse_ok("0 0 * jan,Feb,MAR mon-FRI");

    CHECK(e.months == (BIT(1) | BIT(2) | BIT(3)));
    CHECK(e.wdays == 0x3e);
    CHECK(!e.wday_any);

    e = parse_ok("0 0 * * SUN");
    CHECK(e.wdays == BIT(0));
    e = parse_ok("0 0 * * sat,sun");
    CHECK(e.wdays == (BIT(6) | BIT(0)));
    e = parse_ok("0 0 * * sun-sat");
    CHECK(e.wdays == 0x7f);
    e = parse_ok("0 0 * * Tue-thu/2");
    CHECK(e.wdays == (BIT(2) | BIT(4)));
    e = parse_ok("0 0 * apr-jun,Dec *");
    CHECK(e.months == (BIT(4) | BIT(5) | BIT(6) | BIT(12)));
    e = parse_ok("0 0 * jan-dec/4 *");
    CHECK(e.months == (BIT(1) | BIT(5) | BIT(9)));
    e = parse_ok("0 0 * 1-mar,nov-12 wed-5");
    CHECK(e.months == (BIT(1) | BIT(2) | BIT(3) | BIT(11) | BIT(12)));
    CHECK(e.wdays == (BIT(3) | BIT(4) | BIT(5)));
}

static void test_parse_sunday_seven(void)
{
    cron_expr e = parse_ok("0 0 * * 7");

    CHECK(e.wdays == BIT(0));
    e = parse_ok("0 0 * * 0,7");
    CHECK(e.wdays == BIT(0));
    e = parse_ok("0 0 * * 5-7");
    CHECK(e.wdays == (BIT(5) | BIT(6) | BIT(0)));
    e = parse_ok("0 0 * * fri-7");
    CHECK(e.wdays == (BIT(5) | BIT(6) | BIT(0)));
    e = parse_ok("0 0 * * 1-7");
    CHECK(e.wdays == 0x7f);
}

static void test_parse_lists(void)
{
    cron_expr e = parse_ok("0,5-10/5,*/20,59 1,2-3,22/1 1,15-16,30-31/1 jan,6-7,dec "
                           "0,mon-wed,fri/7,7");

    CHECK(e.minutes == (BIT(0) | BIT(5) | BIT(10) | BIT(20) | BIT(40) | BIT(59)));
    CHECK(e.hours == (BIT(1) | BIT(2) | BIT(3) | BIT(22) | BIT(23)));
    CHECK(e.mdays == (BIT(1) | BIT(15) | BIT(16) | BIT(30) | BIT(31)));
    CHECK(e.months == (BIT(1) | BIT(6) | BIT(7) | BIT(12)));
    CHECK(e.wdays == (BIT(0) | BIT(1) | BIT(2) | BIT(3) | BIT(5)));
    CHECK(!e.mday_any);
    CHECK(!e.wday_any);

    /* A star inside a list covers everything but is not the bare "*". */
    e = parse_ok("* * *,1 * 1,*");
    CHECK(e.mdays == (uint32_t)(BIT(32) - 2));
    CHECK(e.wdays == 0x7f);
    CHECK(!e.mday_any);
    CHECK(!e.wday_any);
}

static void test_parse_field_count(void)
{
    EXPECT_ERR("", "expected 5 fields (minute hour day month weekday), got 0");
    EXPECT_ERR(" \t\n", "expected 5 fields (minute hour day month weekday), got 0");
    EXPECT_ERR(NULL, "expected 5 fields (minute hour day month weekday), got 0");
    EXPECT_ERR("* * * *", "expected 5 fields (minute hour day month weekday), got 4");
    EXPECT_ERR("* * * * * *", "expected 5 fields (minute hour day month weekday), got 6");
    EXPECT_ERR("@daily", "expected 5 fields (minute hour day month weekday), got 1");
}

static void test_parse_range_errors(void)
{
    EXPECT_ERR("60 * * * *", "minute field \"60\": 60 is out of range (0-59)");
    EXPECT_ERR("1,60 * * * *", "minute field \"1,60\": 60 is out of range (0-59)");
    EXPECT_ERR("0 24 * * *", "hour field \"24\": 24 is out of range (0-23)");
    EXPECT_ERR("0 0 0 * *", "day-of-month field \"0\": 0 is out of range (1-31)");
    EXPECT_ERR("0 0 32 * *", "day-of-month field \"32\": 32 is out of range (1-31)");
    EXPECT_ERR("0 0 * 0 *", "month field \"0\": 0 is out of range (1-12)");
    EXPECT_ERR("0 0 * 13 *", "month field \"13\": 13 is out of range (1-12)");
    EXPECT_ERR("0 0 * * 8", "day-of-week field \"8\": 8 is out of range (0-7)");
    EXPECT_ERR("0-60 * * * *", "minute field \"0-60\": 60 is out of range (0-59)");
    EXPECT_ERR("99999999999999999999 * * * *",
               "minute field \"99999999999999999999\": 99999999999999999999 is out of "
               "range (0-59)");
}

static void test_parse_step_errors(void)
{
    EXPECT_ERR("*/0 * * * *", "minute field \"*/0\": step 0 is out of range (1-59)");
    EXPECT_ERR("1-5/0 * * * *", "minute field \"1-5/0\": step 0 is out of range (1-59)");
    EXPECT_ERR("*/60 * * * *", "minute field \"*/60\": step 60 is out of range (1-59)");
    EXPECT_ERR("0 */24 * * *", "hour field \"*/24\": step 24 is out of range (1-23)");
    EXPECT_ERR("0 0 * * */8", "day-of-week field \"*/8\": step 8 is out of range (1-7)");
    EXPECT_ERR("*/ * * * *", "minute field \"*/\": step is missing after \"/\"");
    EXPECT_ERR("*/x * * * *", "minute field \"*/x\": step \"x\" is not a number");
    EXPECT_ERR("0 0 * */feb *", "month field \"*/feb\": step \"feb\" is not a number");
    EXPECT_ERR("*/5/2 * * * *", "minute field \"*/5/2\": unexpected \"/2\"");
}

static void test_parse_syntax_errors(void)
{
    EXPECT_ERR("5-1 * * * *", "minute field \"5-1\": range \"5-1\" is reversed");
    EXPECT_ERR("0,30-10 * * * *", "minute field \"0,30-10\": range \"30-10\" is reversed");
    EXPECT_ERR("0 0 * * fri-mon", "day-of-week field \"fri-mon\": range \"fri-mon\" is reversed");
    EXPECT_ERR("0 0 * dec-jan *", "month field \"dec-jan\": range \"dec-jan\" is reversed");
    EXPECT_ERR("5- * * * *", "minute field \"5-\": range \"5-\" has no end");
    EXPECT_ERR("1-2-3 * * * *", "minute field \"1-2-3\": unexpected \"-3\"");
    EXPECT_ERR("-5 * * * *", "minute field \"-5\": unexpected \"-5\"");
    EXPECT_ERR("*-5 * * * *", "minute field \"*-5\": unexpected \"-5\"");
    EXPECT_ERR("? * * * *", "minute field \"?\": unexpected \"?\"");
    EXPECT_ERR("0 0 L * *", "day-of-month field \"L\": \"L\" is not a number");
    EXPECT_ERR("5x * * * *", "minute field \"5x\": unexpected \"x\"");
    EXPECT_ERR("abc * * * *", "minute field \"abc\": \"abc\" is not a number");
    EXPECT_ERR("0 mon * * *", "hour field \"mon\": \"mon\" is not a number");
    EXPECT_ERR("0 0 jan * *", "day-of-month field \"jan\": \"jan\" is not a number");
}

static void test_parse_name_errors(void)
{
    EXPECT_ERR("0 0 * foo *", "month field \"foo\": unknown name \"foo\" (use 1-12 or jan..dec)");
    EXPECT_ERR("0 0 * january *",
               "month field \"january\": unknown name \"january\" (use 1-12 or jan..dec)");
    EXPECT_ERR("0 0 * * monday",
               "day-of-week field \"monday\": unknown name \"monday\" (use 0-7 or sun..sat)");
    EXPECT_ERR("0 0 * * mon-fry",
               "day-of-week field \"mon-fry\": unknown name \"fry\" (use 0-7 or sun..sat)");
    EXPECT_ERR("0 0 * * jan",
               "day-of-week field \"jan\": unknown name \"jan\" (use 0-7 or sun..sat)");
    EXPECT_ERR("0 0 * mon *", "month field \"mon\": unknown name \"mon\" (use 1-12 or jan..dec)");
}

static void test_parse_empty_items(void)
{
    EXPECT_ERR("1,,2 * * * *", "minute field \"1,,2\": empty list item");
    EXPECT_ERR("1, * * * *", "minute field \"1,\": empty list item");
    EXPECT_ERR("0 ,1 * * *", "hour field \",1\": empty list item");
    EXPECT_ERR("0 0 , * *", "day-of-month field \",\": empty list item");
}

static void test_parse_long_field(void)
{
    char text[600];
    size_t len = 0;
    owl_err err = {0};
    cron_expr e;

    /* 250 items of "1,", then a bad one: the message quotes a bounded prefix. */
    for (int i = 0; i < 250; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "1,");
    snprintf(text + len, sizeof(text) - len, "61 * * * *");
    CHECK(cron_parse(text, &e, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    CHECK(strlen(err.msg) < 200);
    CHECK_CONTAINS(err.msg, "minute field \"1,1,1,");
    CHECK_CONTAINS(err.msg, "\": 61 is out of range (0-59)");

    /* A long but valid list is fine. */
    len = 0;
    for (int i = 0; i < 60; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, i == 0 ? "%d" : ",%d", i);
    snprintf(text + len, sizeof(text) - len, " * * * *");
    e = parse_ok(text);
    CHECK(e.minutes == BIT(60) - 1);
}

/* ---- next fire time, UTC ------------------------------------------------------ */

static void test_next_every_minute(void)
{
    use_tz("UTC");
    CHECK_STR(next_local("* * * * *", utc(2026, 1, 1, 0, 0)), "2026-01-01 00:01:00 UTC");
    CHECK_STR(next_local("* * * * *", utc(2026, 1, 1, 0, 0) + 30), "2026-01-01 00:01:00 UTC");
    CHECK_STR(next_local("* * * * *", utc(2026, 1, 1, 0, 1) - 1), "2026-01-01 00:01:00 UTC");
    CHECK_STR(next_local("* * * * *", utc(2026, 12, 31, 23, 59)), "2027-01-01 00:00:00 UTC");
    CHECK(next_at("* * * * *", utc(2026, 5, 5, 5, 5)) == utc(2026, 5, 5, 5, 6));
}

static void test_next_daily(void)
{
    use_tz("UTC");
    CHECK_STR(next_local("0 2 * * *", utc(2026, 1, 1, 1, 59)), "2026-01-01 02:00:00 UTC");
    CHECK_STR(next_local("0 2 * * *", utc(2026, 1, 1, 2, 0)), "2026-01-02 02:00:00 UTC");
    CHECK_STR(next_local("0 2 * * *", utc(2026, 1, 1, 2, 0) - 1), "2026-01-01 02:00:00 UTC");
    CHECK_STR(next_local("0 2 * * *", utc(2026, 1, 31, 23, 0)), "2026-02-01 02:00:00 UTC");
    CHECK_STR(next_local("59 23 31 12 *", utc(2026, 12, 31, 23, 59)), "2027-12-31 23:59:00 UTC");
}

static void test_next_steps(void)
{
    use_tz("UTC");
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 3, 1, 10, 7)), "2026-03-01 10:15:00 UTC");
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 3, 1, 10, 15)), "2026-03-01 10:30:00 UTC");
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 3, 1, 10, 45)), "2026-03-01 11:00:00 UTC");
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 2, 28, 23, 50)), "2026-03-01 00:00:00 UTC");
    CHECK_STR(next_local("0 */6 * * *", utc(2026, 3, 1, 18, 0)), "2026-03-02 00:00:00 UTC");
    CHECK_STR(next_local("30 9-17/4 * * *", utc(2026, 3, 1, 13, 30)), "2026-03-01 17:30:00 UTC");
    CHECK_STR(next_local("30 9-17/4 * * *", utc(2026, 3, 1, 17, 30)), "2026-03-02 09:30:00 UTC");
}

static void test_next_weekdays(void)
{
    use_tz("UTC");
    /* 2026-01-01 is a Thursday. */
    CHECK_STR(next_local("0 9 * * 1-5", utc(2026, 1, 1, 9, 0)), "2026-01-02 09:00:00 UTC");
    CHECK_STR(next_local("0 9 * * 1-5", utc(2026, 1, 2, 9, 0)), "2026-01-05 09:00:00 UTC");
    CHECK_STR(next_local("0 9 * * mon-fri", utc(2026, 1, 3, 12, 0)), "2026-01-05 09:00:00 UTC");
    CHECK_STR(next_local("0 0 * * 7", utc(2026, 1, 1, 0, 0)), "2026-01-04 00:00:00 UTC");
    CHECK_STR(next_local("0 0 * * 0", utc(2026, 1, 1, 0, 0)), "2026-01-04 00:00:00 UTC");
    CHECK_STR(next_local("0 0 * * sun", utc(2026, 1, 4, 0, 0)), "2026-01-11 00:00:00 UTC");
    CHECK_STR(next_local("0 0 * * sat", utc(2026, 1, 1, 0, 0)), "2026-01-03 00:00:00 UTC");
}

static void test_next_month_days(void)
{
    use_tz("UTC");
    CHECK_STR(next_local("0 0 1 * *", utc(2026, 1, 15, 0, 0)), "2026-02-01 00:00:00 UTC");
    CHECK_STR(next_local("0 0 1 * *", utc(2026, 12, 31, 0, 0)), "2027-01-01 00:00:00 UTC");
    CHECK_STR(next_local("0 0 1 * *", utc(2026, 2, 1, 0, 0)), "2026-03-01 00:00:00 UTC");
    /* The 31st skips months without one. */
    CHECK_STR(next_local("0 0 31 * *", utc(2026, 1, 31, 0, 0)), "2026-03-31 00:00:00 UTC");
    CHECK_STR(next_local("0 0 31 * *", utc(2026, 3, 31, 0, 0)), "2026-05-31 00:00:00 UTC");
    CHECK_STR(next_local("0 12 15 jun,dec *", utc(2026, 6, 15, 12, 0)), "2026-12-15 12:00:00 UTC");
    CHECK_STR(next_local("0 0 1 1 *", utc(2026, 1, 1, 0, 0)), "2027-01-01 00:00:00 UTC");
}

static void test_next_leap_day(void)
{
    use_tz("UTC");
    CHECK_STR(next_local("0 0 29 2 *", utc(2026, 3, 1, 0, 0)), "2028-02-29 00:00:00 UTC");
    CHECK_STR(next_local("0 0 29 2 *", utc(2028, 2, 29, 0, 0)), "2032-02-29 00:00:00 UTC");
    CHECK_STR(next_local("0 0 29 feb *", utc(2024, 2, 28, 23, 59)), "2024-02-29 00:00:00 UTC");
    /* 2100 is not a leap year: 2096 to 2104 is more than the 5-year horizon. */
    CHECK_STR(next_local("0 0 29 2 *", utc(2096, 3, 1, 0, 0)), "none");
    CHECK_STR(next_local("0 0 29 2 *", utc(2099, 3, 1, 0, 0)), "2104-02-29 00:00:00 UTC");
}

static void test_next_dom_or_dow(void)
{
    use_tz("UTC");
    /* Both restricted: the 13th OR any Friday. 2026-01-02 is a Friday. */
    CHECK_STR(next_local("0 0 13 * 5", utc(2026, 1, 1, 0, 0)), "2026-01-02 00:00:00 UTC");
    CHECK_STR(next_local("0 0 13 * 5", utc(2026, 1, 10, 0, 0)), "2026-01-13 00:00:00 UTC");
    CHECK_STR(next_local("0 0 13 * 5", utc(2026, 1, 13, 0, 0)), "2026-01-16 00:00:00 UTC");
    /* Only one restricted: that one alone decides. */
    CHECK_STR(next_local("0 0 13 * *", utc(2026, 1, 1, 0, 0)), "2026-01-13 00:00:00 UTC");
    CHECK_STR(next_local("0 0 * * 5", utc(2026, 1, 10, 0, 0)), "2026-01-16 00:00:00 UTC");
    /* Month still restricts both: the 1st or a Monday, in March only. */
    CHECK_STR(next_local("0 0 1 3 mon", utc(2026, 1, 1, 0, 0)), "2026-03-01 00:00:00 UTC");
    CHECK_STR(next_local("0 0 1 3 mon", utc(2026, 3, 1, 0, 0)), "2026-03-02 00:00:00 UTC");
    CHECK_STR(next_local("0 0 1 3 mon", utc(2026, 3, 30, 0, 0)), "2027-03-01 00:00:00 UTC");
    /* "*" in day-of-week with a restricted day-of-month: not OR. */
    CHECK_STR(next_local("0 0 30 * *", utc(2026, 2, 1, 0, 0)), "2026-03-30 00:00:00 UTC");
}

static void test_next_never(void)
{
    cron_expr e;

    use_tz("UTC");
    CHECK_STR(next_local("0 0 30 2 *", utc(2026, 1, 1, 0, 0)), "none");
    CHECK(next_at("0 0 30 2 *", utc(2026, 1, 1, 0, 0)) == -1);
    CHECK(next_at("0 0 31 4,6,9,11 *", utc(2026, 1, 1, 0, 0)) == -1);
    /* With a weekday, Feb 30 no longer matters: any Monday in February fires. */
    CHECK_STR(next_local("0 0 30 2 1", utc(2026, 1, 1, 0, 0)), "2026-02-02 00:00:00 UTC");
    CHECK(cron_next(NULL, 0) == -1);
    e = parse_ok("* * * * *");
    CHECK(next_at("* * * * *", 0) == 60);
    CHECK(cron_next(&e, -1) == 0);
    CHECK(cron_next(&e, -61) == -60);
}

static void test_next_speed(void)
{
    cron_expr never = parse_ok("0 0 30 2 *");
    cron_expr often = parse_ok("* * * * *");
    clock_t start;
    double per_call_ms;
    time_t t = utc(2026, 1, 1, 0, 0);

    /* The worst case scans the whole 5-year horizon. */
    use_tz("Europe/Berlin");
    start = clock();
    for (int i = 0; i < 1000; i++)
        CHECK(cron_next(&never, t + i * 3600) == -1);
    per_call_ms = (double)(clock() - start) * 1000.0 / CLOCKS_PER_SEC / 1000;
    printf("# cron_next over 5 years without a match: %.4f ms per call\n", per_call_ms);
    CHECK(per_call_ms < 1.0);

    start = clock();
    for (int i = 0; i < 1000; i++)
        t = cron_next(&often, t);
    per_call_ms = (double)(clock() - start) * 1000.0 / CLOCKS_PER_SEC / 1000;
    printf("# cron_next every minute in Europe/Berlin: %.4f ms per call\n", per_call_ms);
    CHECK(per_call_ms < 1.0);
    CHECK(t == utc(2026, 1, 1, 0, 0) + 1000 * 60);
    use_tz("UTC");
}

/* ---- next fire time across DST ---------------------------------------------------- */

/* Europe/Berlin 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC). */
static void test_dst_berlin_spring(void)
{
    use_tz("Europe/Berlin");
    /* 02:30 does not exist that day: it fires at 03:00, once, then as usual. */
    CHECK_STR(next_local("30 2 * * *", utc(2026, 3, 28, 12, 0)), "2026-03-29 03:00:00 CEST");
    CHECK(next_at("30 2 * * *", utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0));
    CHECK_STR(next_local("30 2 * * *", utc(2026, 3, 29, 1, 0)), "2026-03-30 02:30:00 CEST");
    CHECK_STR(next_local("0 2 * * *", utc(2026, 3, 28, 12, 0)), "2026-03-29 03:00:00 CEST");
    CHECK_STR(next_local("0 3 * * *", utc(2026, 3, 28, 12, 0)), "2026-03-29 03:00:00 CEST");
    /* The day before, nothing changes. */
    CHECK_STR(next_local("30 2 * * *", utc(2026, 3, 27, 12, 0)), "2026-03-28 02:30:00 CET");
    /* Every 15 minutes: 01:45 CET, then 03:00 CEST once (02:00..02:45 and 03:00
     * collapse into it), then 03:15 CEST. */
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 3, 29, 0, 30)), "2026-03-29 01:45:00 CET");
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 3, 29, 0, 45)), "2026-03-29 03:00:00 CEST");
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 3, 29, 1, 0)), "2026-03-29 03:15:00 CEST");
    CHECK_STR(next_local("* * * * *", utc(2026, 3, 29, 0, 59)), "2026-03-29 03:00:00 CEST");
    CHECK_STR(next_local("* * * * *", utc(2026, 3, 29, 1, 0)), "2026-03-29 03:01:00 CEST");
    /* Hourly: 01:00 CET, 03:00 CEST (the missing 02:00 adds nothing). */
    CHECK_STR(next_local("0 * * * *", utc(2026, 3, 29, 0, 0)), "2026-03-29 03:00:00 CEST");
    CHECK_STR(next_local("0 * * * *", utc(2026, 3, 29, 1, 0)), "2026-03-29 04:00:00 CEST");
}

/* Europe/Berlin 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC), so
 * 02:00..02:59 happens twice. */
static void test_dst_berlin_fall(void)
{
    use_tz("Europe/Berlin");
    /* 02:30 fires once, at its first occurrence (CEST), not again in CET. */
    CHECK_STR(next_local("30 2 * * *", utc(2026, 10, 24, 12, 0)), "2026-10-25 02:30:00 CEST");
    CHECK(next_at("30 2 * * *", utc(2026, 10, 24, 12, 0)) == utc(2026, 10, 25, 0, 30));
    CHECK_STR(next_local("30 2 * * *", utc(2026, 10, 25, 0, 30)), "2026-10-26 02:30:00 CET");
    /* Started during the second pass, before its 02:30: still not again that day. */
    CHECK_STR(next_local("30 2 * * *", utc(2026, 10, 25, 1, 10)), "2026-10-26 02:30:00 CET");
    CHECK_STR(next_local("0 3 * * *", utc(2026, 10, 24, 12, 0)), "2026-10-25 03:00:00 CET");
    /* Every 15 minutes: through the first pass, then silent in the repeated hour
     * (each wall-clock minute fires once), resuming at 03:00 CET. */
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 10, 25, 0, 30)), "2026-10-25 02:45:00 CEST");
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 10, 25, 0, 45)), "2026-10-25 03:00:00 CET");
    CHECK(next_at("*/15 * * * *", utc(2026, 10, 25, 0, 45)) == utc(2026, 10, 25, 2, 0));
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 10, 25, 1, 10)), "2026-10-25 03:00:00 CET");
    CHECK_STR(next_local("* * * * *", utc(2026, 10, 25, 0, 58)), "2026-10-25 02:59:00 CEST");
    CHECK_STR(next_local("* * * * *", utc(2026, 10, 25, 0, 59)), "2026-10-25 03:00:00 CET");
    CHECK_STR(next_local("0 * * * *", utc(2026, 10, 25, 0, 0)), "2026-10-25 03:00:00 CET");
    CHECK_STR(next_local("0 * * * *", utc(2026, 10, 24, 23, 30)), "2026-10-25 02:00:00 CEST");
}

/* America/New_York 2026: 02:00 EST becomes 03:00 EDT on 03-08 (07:00 UTC);
 * 02:00 EDT becomes 01:00 EST on 11-01 (06:00 UTC), repeating 01:00..01:59. */
static void test_dst_new_york(void)
{
    use_tz("America/New_York");
    CHECK_STR(next_local("30 2 * * *", utc(2026, 3, 7, 12, 0)), "2026-03-08 03:00:00 EDT");
    CHECK(next_at("30 2 * * *", utc(2026, 3, 7, 12, 0)) == utc(2026, 3, 8, 7, 0));
    CHECK_STR(next_local("30 2 * * *", utc(2026, 3, 8, 7, 0)), "2026-03-09 02:30:00 EDT");
    CHECK_STR(next_local("0 9 * * 1-5", utc(2026, 3, 6, 15, 0)), "2026-03-09 09:00:00 EDT");

    CHECK_STR(next_local("30 1 * * *", utc(2026, 10, 31, 12, 0)), "2026-11-01 01:30:00 EDT");
    CHECK(next_at("30 1 * * *", utc(2026, 10, 31, 12, 0)) == utc(2026, 11, 1, 5, 30));
    CHECK_STR(next_local("30 1 * * *", utc(2026, 11, 1, 5, 30)), "2026-11-02 01:30:00 EST");
    CHECK_STR(next_local("0 2 * * *", utc(2026, 10, 31, 12, 0)), "2026-11-01 02:00:00 EST");
    CHECK(next_at("0 2 * * *", utc(2026, 10, 31, 12, 0)) == utc(2026, 11, 1, 7, 0));
    CHECK_STR(next_local("*/15 * * * *", utc(2026, 11, 1, 5, 45)), "2026-11-01 02:00:00 EST");
}

/* Australia/Lord_Howe moves by 30 minutes: 02:00 becomes 02:30 on 2026-10-04,
 * and 02:00 becomes 01:30 on 2026-04-05. */
static void test_dst_half_hour(void)
{
    use_tz("Australia/Lord_Howe");
    CHECK_STR(next_local("15 2 * * *", utc(2026, 10, 3, 0, 0)), "2026-10-04 02:30:00 +11");
    CHECK_STR(next_local("30 2 * * *", utc(2026, 10, 3, 0, 0)), "2026-10-04 02:30:00 +11");
    CHECK(next_at("15 2 * * *", utc(2026, 10, 3, 0, 0)) == utc(2026, 10, 3, 15, 30));
    CHECK_STR(next_local("45 1 * * *", utc(2026, 4, 4, 0, 0)), "2026-04-05 01:45:00 +11");
    CHECK_STR(next_local("45 1 * * *", utc(2026, 4, 4, 14, 45)), "2026-04-06 01:45:00 +1030");
    use_tz("UTC");
}

int main(void)
{
    RUN(test_parse_star);
    RUN(test_parse_numbers);
    RUN(test_parse_ranges_steps);
    RUN(test_parse_names);
    RUN(test_parse_sunday_seven);
    RUN(test_parse_lists);
    RUN(test_parse_field_count);
    RUN(test_parse_range_errors);
    RUN(test_parse_step_errors);
    RUN(test_parse_syntax_errors);
    RUN(test_parse_name_errors);
    RUN(test_parse_empty_items);
    RUN(test_parse_long_field);
    RUN(test_next_every_minute);
    RUN(test_next_daily);
    RUN(test_next_steps);
    RUN(test_next_weekdays);
    RUN(test_next_month_days);
    RUN(test_next_leap_day);
    RUN(test_next_dom_or_dow);
    RUN(test_next_never);
    RUN(test_next_speed);
    RUN(test_dst_berlin_spring);
    RUN(test_dst_berlin_fall);
    RUN(test_dst_new_york);
    RUN(test_dst_half_hour);
    return UNIT_DONE();
}
