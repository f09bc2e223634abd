/* owlsync error convention: functions return 0 on success or -1 on failure and
 * fill a caller-owned owl_err with an exit code and a one-line lowercase message.
 *
 * Out of memory is reported, never fatal: an allocation that fails makes its
 * function fail with OWL_ERUNTIME "out of memory" (err_oom) like any other
 * runtime failure, and the caller's cleanup runs as on every error path.
 * Nothing aborts or exits (only main exits). A function that cannot report,
 * such as an appending builder, marks its object failed (db_sql.failed, an
 * owl_buf append that returns -1), and the one who uses the object reports it. */
#ifndef OWLSYNC_ERROR_H
#define OWLSYNC_ERROR_H

/* Exit codes of the command-line contract (DESIGN.md 3.1). */
enum {
    OWL_OK = 0,      /* done */
    OWL_ERUNTIME = 1, /* database, I/O: retrying may help */
    OWL_EUSAGE = 2,   /* usage or configuration error */
    OWL_EVERIFY = 3,  /* bundle failed verification */
    OWL_EPOLICY = 4   /* bundle refused by policy */
};

#define OWL_ERR_MAX 1024

typedef struct owl_err {
    int code;              /* one of the codes above; 0 while no error */
    char msg[OWL_ERR_MAX]; /* lowercase, no final period; an optional "\nHINT: ..." */
} owl_err;

/* Sets *err (when err is not NULL) and returns -1, so callers can write
 * `return err_set(err, OWL_EUSAGE, "bad %s", x);`. */
int err_set(owl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* err_set(err, OWL_ERUNTIME, "out of memory"); returns -1. */
int err_oom(owl_err *err);

/* Prefixes the existing message with "WHAT: " (keeps the code); returns -1. */
int err_prefix(owl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends "\nHINT: ..." to the message when it has room for all of it
 * (a message never ends in half a hint); returns -1. */
int err_hint(owl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears *err. */
void err_clear(owl_err *err);

#endif
