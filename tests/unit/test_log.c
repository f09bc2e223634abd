/* Unit tests for agent/log.c: one event is one line, and no control character
 * of a message (a value a server quoted from a bundle) reaches the terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/log.h"
#include "unit.h"

/* Logs msg (as "%s") at error level with stderr sent to a pipe; returns what
 * was written, in a static buffer. */
static const char *logged(const char *msg)
{
    static char buf[4096];
    int fds[2], saved;
    ssize_t n;

    buf[0] = '\0';
    if (pipe(fds) < 0)
        return buf;
    saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    log_set_level(LOG_ERROR);
    log_error("%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

static void test_one_line(void)
{
    const char *s = logged("first\nHINT: second\rthird");

    CHECK_CONTAINS(s, "first HINT: second third\n");
    CHECK(strchr(s, '\n') == s + strlen(s) - 1);
}

static void test_no_control_characters(void)
{
    const char *s = logged("value \"\033[2J\033]0;owned\007\" refused\177, caf\xc3\xa9");

    for (const char *p = s; *p != '\0' && p[1] != '\0'; p++)
        CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    CHECK_CONTAINS(s, "value \"?[2J?]0;owned?\" refused?, caf\xc3\xa9\n");
}

int main(void)
{
    RUN(test_one_line);
    RUN(test_no_control_characters);
    return UNIT_DONE();
}
