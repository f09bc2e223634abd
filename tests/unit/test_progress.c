/* Unit tests for agent/progress.c: the progress line as a person at a terminal
 * sees it, with percentage and time left when the total is known. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "owlsync/progress.h"
#include "unit.h"

static const char *fmt(char *out, bool rows_known, uint64_t rows, uint64_t bytes, uint64_t total, double secs)
{
    return progress_format(out, PROGRESS_LINE_MAX, "import", "owl_rule", rows_known, rows, bytes, total, secs);
}

static void test_unknown_total(void)
{
    char out[PROGRESS_LINE_MAX];

    /* the export's line: rows, bytes and rate, no percentage, no time left */
    CHECK_STR(progress_format(out, sizeof(out), "export", "owl_rule", true, 1234, 5000000, 0, 2.0),
              "export owl_rule                   1234 rows       5.0 MB     2.5 MB/s");
    CHECK_STR(fmt(out, false, 0, 5000000, 0, 2.0), "import owl_rule                   5.0 MB     2.5 MB/s");
    CHECK(strchr(fmt(out, false, 0, 5000000, 0, 2.0), '%') == NULL);
    CHECK(strstr(out, "ETA") == NULL);
    /* no time passed yet: no rate, and nothing divided by zero */
    CHECK_STR(fmt(out, false, 0, 0, 0, 0.0), "import owl_rule                   0.0 MB     0.0 MB/s");
}

static void test_percentage_and_eta(void)
{
    char out[PROGRESS_LINE_MAX];

    /* a quarter in 10 s: 30 s left */
    CHECK_STR(fmt(out, false, 0, 25000000, 100000000, 10.0),
              "import owl_rule                  25.0 of 100.0 MB  25%     2.5 MB/s  ETA 0:30");
    /* minutes and hours */
    CHECK_CONTAINS(fmt(out, false, 0, 1000000, 100000000, 10.0), "   1% ");
    CHECK_CONTAINS(out, "ETA 16:30");
    CHECK_CONTAINS(fmt(out, false, 0, 1000000, 1000000000, 10.0), "ETA 2:46:30");
    /* a day and more is shown as the most the clock holds */
    CHECK_CONTAINS(fmt(out, false, 0, 1, 1000000000000, 10.0), "ETA 99:59:59");
    CHECK_CONTAINS(out, "   0% ");
    /* 99% until the last byte, then 100% and no time left */
    CHECK_CONTAINS(fmt(out, false, 0, 999999, 1000000, 1.0), "  99% ");
    CHECK_CONTAINS(out, "ETA 0:00");
    CHECK_STR(fmt(out, false, 0, 1000000, 1000000, 1.0),
              "import owl_rule                   1.0 of 1.0 MB 100%     1.0 MB/s");
    /* more than the total (never from a verified bundle): still 100% */
    CHECK_CONTAINS(fmt(out, false, 0, 2000000, 1000000, 1.0), " 100% ");
    CHECK(strstr(out, "ETA") == NULL);
    /* nothing came yet: no time left to tell */
    CHECK_STR(fmt(out, false, 0, 0, 1000000, 0.5), "import owl_rule                   0.0 of 1.0 MB   0%     0.0 MB/s");
    /* rows too, when known */
    CHECK_CONTAINS(fmt(out, true, 0, 500000, 1000000, 1.0), "0 rows       0.5 of 1.0 MB  50%");
}

static void test_bounded(void)
{
    char out[PROGRESS_LINE_MAX], small[24], longname[300];

    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    /* the line ends where the buffer does, terminated */
    progress_format(small, sizeof(small), "import", "owl_rule", false, 0, 1, 2, 1.0);
    CHECK(strlen(small) < sizeof(small));
    progress_format(out, sizeof(out), "import", longname, true, UINT64_MAX, UINT64_MAX - 1, UINT64_MAX, 1e-9);
    CHECK(strlen(out) < sizeof(out));
    progress_format(small, 1, "import", "x", false, 0, 0, 0, 0.0);
    CHECK_STR(small, "");
}

int main(void)
{
    RUN(test_unknown_total);
    RUN(test_percentage_and_eta);
    RUN(test_bounded);
    return UNIT_DONE();
}
