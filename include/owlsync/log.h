/* owlsync logging: one line per event on stderr. At a terminal or in a file:
 * a UTC timestamp and level; when stderr is the journal (systemd's
 * JOURNAL_STREAM names it): an sd-daemon "<N>" priority prefix and no
 * timestamp of our own; with log_format = json: one JSON object per line. */
#ifndef OWLSYNC_LOG_H
#define OWLSYNC_LOG_H

#include <stdbool.h>

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level;
typedef enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 } log_format;

/* Sets the threshold; messages above it are dropped. Default LOG_WARN. */
void log_set_level(log_level level);
log_level log_get_level(void);

/* Parses "error" | "warn" | "info" | "debug"; returns -1 for anything else. */
int log_parse_level(const char *s, log_level *out);

/* Sets the line format (default LOG_FORMAT_TEXT). */
void log_set_format(log_format format);

/* Looks whether stderr is the journal: JOURNAL_STREAM ("DEV:INODE", set by
 * systemd) matches the device and inode of descriptor 2. Called once at start;
 * the result holds until the next call or log_set_journal. Returns it. */
bool log_detect_journal(void);
void log_set_journal(bool journal);

/* Writes one line to stderr when level passes:
 *   text:            "2026-11-25T12:00:00Z LEVEL message"
 *   text, journal:   "<P>LEVEL message"  (P: 3 error, 4 warn, 6 info, 7 debug)
 *   json:            {"time":"2026-11-25T12:00:00.123456Z","level":"info","message":"..."}
 *   json, journal:   "<P>" then the object. */
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the one final error of a command (text that may hold a "\nHINT: "
 * line), whatever the level: as it is at a terminal or in a file; each line
 * with the error priority "<3>" when stderr is the journal; as one object of
 * level error with log_format = json. */
void log_final(const char *text);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
