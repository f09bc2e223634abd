/* owlsync logging to stderr with timestamps and levels.
 * A message is formatted whole and written with one call so lines never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/log.h"
#include "owlsync/text.h"

static log_level current_level = LOG_WARN;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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

void log_msg(log_level level, const char *fmt, ...)
{
    char line[2048];
    size_t len;
    va_list ap;

    if (level > current_level)
        return;
    text_utc(text_now_usec(), TEXT_UTC_SECONDS, line, sizeof(line));
    len = strlen(line);
    len += (size_t)snprintf(line + len, sizeof(line) - len, " %-5s ", level_names[level]);
    va_start(ap, fmt);
    vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);
    len = strlen(line);
    /* One event, one line: a message's "\nHINT: ..." continues on the same
     * line; and no other control character (a value a server quoted from a
     * bundle, say) reaches the terminal or the journal as it is. */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch == '\n' || ch == '\r')
            line[i] = ' ';
        else if (ch < 0x20 || ch == 0x7f)
            line[i] = '?';
    }
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere left to report a failed write to stderr */
    }
}
