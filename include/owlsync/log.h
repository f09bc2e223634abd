/* owlsync logging: one line per event on stderr, with a UTC timestamp and level,
 * so that journald and a person at a terminal both read it well. */
#ifndef OWLSYNC_LOG_H
#define OWLSYNC_LOG_H

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level;

/* Sets the threshold; messages above it are dropped. Default LOG_WARN. */
void log_set_level(log_level level);
log_level log_get_level(void);

/* Parses "error" | "warn" | "info" | "debug"; returns -1 for anything else. */
int log_parse_level(const char *s, log_level *out);

/* Writes "2026-11-25T12:00:00Z LEVEL message" to stderr when level passes. */
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
