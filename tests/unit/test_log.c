/* Unit tests for agent/log.c: one event is one line, no control character of a
 * message (a value a server quoted from a bundle) reaches the terminal, the
 * journal gets sd-daemon priorities and no timestamp, JSON lines parse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "owlsync/log.h"
#include "unit.h"

/* Logs msg (as "%s") at level with stderr sent to a pipe; returns what was
 * written, in a static buffer. */
static const char *logged_at(log_level level, const char *msg)
{
    static char buf[4096];
    int fds[2], saved;
    ssize_t n;

    buf[0] = '\0';
    if (pipe(fds) < 0)
        return buf;
    saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    log_set_level(LOG_DEBUG);
    log_msg(level, "%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

static const char *logged(const char *msg)
{
    return logged_at(LOG_ERROR, msg);
}

static void test_text_has_timestamp(void)
{
    const char *s;

    log_set_journal(false);
    s = logged_at(LOG_INFO, "hello");
    CHECK(strlen(s) == strlen("2026-11-25T12:00:00Z info  hello\n"));
    CHECK(s[4] == '-' && s[10] == 'T' && s[19] == 'Z');
    CHECK_CONTAINS(s, "Z info  hello\n");
}

static void test_journal_priorities(void)
{
    log_set_journal(true);
    CHECK_STR(logged_at(LOG_ERROR, "broken"), "<3>error broken\n");
    CHECK_STR(logged_at(LOG_WARN, "careful"), "<4>warn  careful\n");
    CHECK_STR(logged_at(LOG_INFO, "fine"), "<6>info  fine\n");
    CHECK_STR(logged_at(LOG_DEBUG, "detail\nHINT: more"), "<7>debug detail HINT: more\n");
    log_set_journal(false);
}

/* JOURNAL_STREAM names the journal's socket by device and inode: only when
 * stderr is that very file are lines written for the journal. */
static void test_detect_journal(void)
{
    struct stat st;
    char value[64];
    int fds[2], saved;

    CHECK(pipe(fds) == 0);
    saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    CHECK(fstat(STDERR_FILENO, &st) == 0);
    unsetenv("JOURNAL_STREAM");
    CHECK(!log_detect_journal());
    snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    CHECK(log_detect_journal());
    snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", value, 1);
    CHECK(!log_detect_journal()); /* another file: stderr was redirected */
    setenv("JOURNAL_STREAM", "garbage", 1);
    CHECK(!log_detect_journal());
    snprintf(value, sizeof(value), "%llu:%llux", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    CHECK(!log_detect_journal());
    unsetenv("JOURNAL_STREAM");
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[0]);
    close(fds[1]);
    log_set_journal(false);
}

/* Each JSON line is one object with time, level and message, whatever the
 * message holds (quotes, backslashes, bytes that are not UTF-8). */
static void test_json_lines(void)
{
    const char *s;
    json_error_t je;
    json_t *o;

    log_set_format(LOG_FORMAT_JSON);
    s = logged_at(LOG_WARN, "a \"quoted\" C:\\path\nHINT: next, caf\xc3\xa9 \xff\x01");
    CHECK(strchr(s, '\n') == s + strlen(s) - 1);
    o = json_loads(s, 0, &je);
    CHECK(o != NULL);
    if (o != NULL) {
        CHECK(json_object_size(o) == 3);
        CHECK_STR(json_string_value(json_object_get(o, "level")), "warn");
        CHECK_STR(json_string_value(json_object_get(o, "message")),
                  "a \"quoted\" C:\\path HINT: next, caf\xc3\xa9 ??");
        CHECK(json_string_value(json_object_get(o, "time")) != NULL &&
              strlen(json_string_value(json_object_get(o, "time"))) == strlen("2026-11-25T12:00:00.123456Z"));
        json_decref(o);
    }
    log_set_journal(true);
    s = logged_at(LOG_ERROR, "x");
    CHECK(strncmp(s, "<3>{\"time\":\"", 12) == 0);
    log_set_journal(false);
    /* a message longer than a line is cut, and the line still parses */
    {
        static char big[5000];
        memset(big, '"', sizeof(big) - 1);
        s = logged_at(LOG_INFO, big);
        o = json_loads(s, 0, &je);
        CHECK(o != NULL);
        json_decref(o);
    }
    log_set_format(LOG_FORMAT_TEXT);
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
    RUN(test_text_has_timestamp);
    RUN(test_journal_priorities);
    RUN(test_detect_journal);
    RUN(test_json_lines);
    RUN(test_no_control_characters);
    return UNIT_DONE();
}
