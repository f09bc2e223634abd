/* owlsync export job state: what an export job remembers between runs, in
 * STATE_DIR/export-JOB.state (the last bundle published and its content
 * digest), STATE_DIR/export-JOB.last (how its last scheduled run ended) and
 * STATE_DIR/export-JOB.lock (held while it runs). The one owner of these
 * files: the exporter, the daemon and status read and write them here. */
#ifndef OWLSYNC_JOBSTATE_H
#define OWLSYNC_JOBSTATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "owlsync/error.h"

#define JOBSTATE_DIGEST_LEN 64 /* hex */

typedef struct jobstate {
    uint64_t sequence;                      /* last published; 0 = none yet */
    char digest[JOBSTATE_DIGEST_LEN + 1];   /* its content digest; "" = none */
} jobstate;

typedef struct jobstate_last {
    time_t finished;  /* when the last run ended; 0 = never */
    int exit_code;    /* its exit code; -1 = never */
    time_t success;   /* when a run last succeeded; 0 = never */
} jobstate_last;

/* Creates state_dir when missing and takes job's lock: *lockfd holds it until
 * closed. A lock another run holds is an error (OWL_ERUNTIME). */
int jobstate_lock(const char *state_dir, const char *job, int *lockfd, owl_err *err);

/* Reads job's state; a job that never published reads as zero. */
int jobstate_read(const char *state_dir, const char *job, jobstate *st, owl_err *err);

/* Writes job's state durably. */
int jobstate_write(const char *state_dir, const char *job, const jobstate *st, owl_err *err);

/* Reads how job's last scheduled run ended; never run reads as 0 / -1 / 0. */
int jobstate_read_last(const char *state_dir, const char *job, jobstate_last *l, owl_err *err);

/* Writes it durably. */
int jobstate_write_last(const char *state_dir, const char *job, const jobstate_last *l, owl_err *err);

/* A dataset an export job carried, and when it was last seen with rows. */
typedef struct jobstate_dataset {
    char *name;
    int64_t seen; /* microseconds since the epoch */
} jobstate_dataset;

/* The datasets job carried, from STATE_DIR/export-JOB.datasets (none when it
 * never ran), in the file's order. Free with jobstate_datasets_free. */
int jobstate_read_datasets(const char *state_dir, const char *job, jobstate_dataset **v, size_t *n, owl_err *err);

/* Writes them durably (names may hold any byte but NUL). */
int jobstate_write_datasets(const char *state_dir, const char *job, const jobstate_dataset *v, size_t n,
                            owl_err *err);
void jobstate_datasets_free(jobstate_dataset *v, size_t n);

#endif
