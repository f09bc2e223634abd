/* owlsync unit-test harness: a tiny TAP producer. Each TEST is one "ok"/"not ok"
 * line; CHECK records a failure with file and line and keeps the test going. */
#ifndef OWLSYNC_UNIT_H
#define OWLSYNC_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failed_checks;
static int unit_tests_run;
static int unit_tests_failed;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            unit_failed_checks++;                                                     \
        }                                                                             \
    } while (0)

#define CHECK_STR(a, b)                                                               \
    do {                                                                              \
        const char *unit_a_ = (a), *unit_b_ = (b);                                    \
        if (unit_a_ == NULL || unit_b_ == NULL || strcmp(unit_a_, unit_b_) != 0) {    \
            printf("#   %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,               \
                   unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)");       \
            unit_failed_checks++;                                                     \
        }                                                                             \
    } while (0)

/* Whether haystack contains needle; reports both when not. */
#define CHECK_CONTAINS(hay, needle)                                                   \
    do {                                                                              \
        const char *unit_h_ = (hay), *unit_n_ = (needle);                             \
        if (unit_h_ == NULL || strstr(unit_h_, unit_n_) == NULL) {                    \
            printf("#   %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
                   unit_h_ ? unit_h_ : "(null)", unit_n_);                            \
            unit_failed_checks++;                                                     \
        }                                                                             \
    } while (0)

#define RUN(fn)                                                                       \
    do {                                                                              \
        int unit_before_ = unit_failed_checks;                                        \
        fn();                                                                         \
        unit_tests_run++;                                                             \
        if (unit_failed_checks != unit_before_) {                                     \
            unit_tests_failed++;                                                      \
            printf("not ok %d - %s\n", unit_tests_run, #fn);                          \
        } else {                                                                      \
            printf("ok %d - %s\n", unit_tests_run, #fn);                              \
        }                                                                             \
        fflush(stdout);                                                               \
    } while (0)

/* Ends main: prints the TAP plan and returns the exit status. */
#define UNIT_DONE() (printf("1..%d\n", unit_tests_run), unit_tests_failed ? 1 : 0)

#endif
