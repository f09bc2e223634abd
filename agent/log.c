/* owlsync logging to stderr: text with timestamps and levels, sd-daemon priority
 * prefixes under the journal, or JSON lines. A message is formatted whole and
 * written with one call so lines never interleave. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/log.h"
#include "owlsync/text.h"

#define LINE_MAX_BYTES 2048

static log_level current_level = LOG_WARN;
static log_format current_format = LOG_FORMAT_TEXT;
static bool to_journal;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* sd-daemon(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const char level_priority[] = {'3', '4', '6', '7'};

void log_set_level(log_level level)
{
    current_level = level;
}

log_level log_get_level(void)
{
    return current_level;
}

int log_parse_level(const char *s, log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_set_format(log_format format)
{
    current_format = format;
}

void log_set_journal(bool journal)
{
    to_journal = journal;
}

bool log_detect_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    uintmax_t dev, ino;
    struct stat st;
    char *end;

    to_journal = false;
    if (env == NULL || *env == '\0' || fstat(STDERR_FILENO, &st) < 0)
        return false;
    dev = strtoumax(env, &end, 10);
    if (end == env || *end != ':')
        return false;
    env = end + 1;
    ino = strtoumax(env, &end, 10);
    if (end == env || *end != '\0')
        return false;
    to_journal = dev == (uintmax_t)st.st_dev && ino == (uintmax_t)st.st_ino;
    return to_journal;
}

/* One event, one line: a message's "\nHINT: ..." continues on the same line;
 * and no other control character (a value a server quoted from a bundle, say)
 * reaches the terminal or the journal as it is. */
static void clean(char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\n' || ch == '\r')
            *s = ' ';
        else if (ch < 0x20 || ch == 0x7f)
            *s = '?';
    }
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) || (s[0] == 0xf0 && s[1] < 0x90) ||
        (s[0] == 0xf4 && s[1] > 0x8f))
        return 0; /* overlong, a surrogate, or beyond U+10FFFF */
    return n;
}

/* Appends s to line (at *len, within size) as the inside of a JSON string: '"'
 * and '\\' escaped, a byte that is not UTF-8 as '?' (s holds no control
 * characters any more). */
static void json_escape(char *line, size_t size, size_t *len, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        size_t n = utf8_len(p);
        if (*len + (n ? n : 1) + 2 >= size)
            break;
        if (n == 0) {
            line[(*len)++] = '?';
            p++;
            continue;
        }
        if (*p == '"' || *p == '\\')
            line[(*len)++] = '\\';
        memcpy(line + *len, p, n);
        *len += n;
        p += n;
    }
    line[*len] = '\0';
}

void log_msg(log_level level, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES], msg[LINE_MAX_BYTES - 128], stamp[TEXT_UTC_MAX];
    size_t len = 0;
    va_list ap;

    if (level > current_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clean(msg);
    if (to_journal) {
        line[len++] = '<';
        line[len++] = level_priority[level];
        line[len++] = '>';
    }
    line[len] = '\0';
    if (current_format == LOG_FORMAT_JSON) {
        text_utc(text_now_usec(), TEXT_UTC_MICROS, stamp, sizeof(stamp));
        len += (size_t)snprintf(line + len, sizeof(line) - len, "{\"time\":\"%s\",\"level\":\"%s\",\"message\":\"",
                                stamp, level_names[level]);
        json_escape(line, sizeof(line) - 3, &len, msg);
        line[len++] = '"';
        line[len++] = '}';
    } else {
        if (!to_journal) {
            text_utc(text_now_usec(), TEXT_UTC_SECONDS, stamp, sizeof(stamp));
            len += (size_t)snprintf(line + len, sizeof(line) - len, "%s ", stamp);
        }
        snprintf(line + len, sizeof(line) - len, "%-5s %s", level_names[level], msg);
        len = strlen(line);
        if (len > sizeof(line) - 2)
            len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere left to report a failed write to stderr */
    }
}

void log_final(const char *text)
{
    if (current_format == LOG_FORMAT_JSON) {
        log_msg(LOG_ERROR, "%s", text);
        return;
    }
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
        if ((to_journal && write(STDERR_FILENO, "<3>", 3) < 0) || write(STDERR_FILENO, line, len) < 0 ||
            write(STDERR_FILENO, "\n", 1) < 0)
            return; /* nowhere left to report a failed write to stderr */
        line = nl != NULL ? nl + 1 : NULL;
    }
}
