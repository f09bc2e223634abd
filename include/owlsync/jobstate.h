/* owlsync export job state: what an export job remembers between runs, in
 * STATE_DIR/export-JOB.state (the last sequence number taken, and the last
 * bundle each outbox received with its content digest), STATE_DIR/export-JOB.last
 * (how its last scheduled run ended), STATE_DIR/export-JOB.datasets (the
 * datasets it carried) and STATE_DIR/export-JOB.lock (held while it runs). The
 * one owner of these files: the exporter, the daemon and status read and write
 * them here. */
#ifndef OWLSYNC_JOBSTATE_H
#define OWLSYNC_JOBSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "owlsync/error.h"

#define JOBSTATE_DIGEST_LEN 64 /* hex */
#define JOBSTATE_MAX_OUTBOXES 1024

/* The last bundle an outbox received. */
typedef struct jobstate_outbox {
    char *path;                            /* the outbox, as the configuration names it */
    uint64_t sequence;                     /* that bundle's sequence number */
    char digest[JOBSTATE_DIGEST_LEN + 1];  /* its content digest */
} jobstate_outbox;

typedef struct jobstate {
    uint64_t sequence;                     /* the last one taken, saved before any bundle
                                            * carries it, never taken again; 0 = none yet */
    char digest[JOBSTATE_DIGEST_LEN + 1];  /* content digest of the last bundle published; "" = none */
    jobstate_outbox *outboxes;             /* what each outbox received, owned (jobstate_free) */
    size_t noutboxes;
    bool legacy;                           /* read from a file that predates outbox records:
                                            * every outbox counts as having received bundle
                                            * `sequence` of content `digest` (and is written so) */
} jobstate;

typedef struct jobstate_last {
    time_t finished;  /* when the last run ended; 0 = never */
    int exit_code;    /* its exit code; -1 = never */
    time_t success;   /* when a run last succeeded; 0 = never */
    time_t failure;   /* when a run last failed; 0 = never (or before this was kept) */
} jobstate_last;

/* Creates state_dir when missing and takes job's lock: *lockfd holds it until
 * closed. A lock another run holds is an error (OWL_ERUNTIME). */
int jobstate_lock(const char *state_dir, const char *job, int *lockfd, owl_err *err);

/* Reads job's state; a job that never ran reads as zero. Free with
 * jobstate_free (also after a failure: nothing is then held). */
int jobstate_read(const char *state_dir, const char *job, jobstate *st, owl_err *err);

/* Writes job's state durably (tmp, fsync, rename, fsync of state_dir): when it
 * returns 0 a crash cannot lose it. */
int jobstate_write(const char *state_dir, const char *job, const jobstate *st, owl_err *err);

/* Whether outbox received a bundle of the job, and which: its sequence and
 * content digest (pointing into st). */
bool jobstate_received(const jobstate *st, const char *outbox, uint64_t *sequence, const char **digest);

/* Records that outbox received bundle sequence of content digest (a copy of
 * outbox is kept). -1 (err set) when out of memory or past JOBSTATE_MAX_OUTBOXES. */
int jobstate_set_received(jobstate *st, const char *outbox, uint64_t sequence, const char *digest, owl_err *err);

/* Turns a legacy st into records: each of these outboxes received its last
 * bundle. A no-op for a state that has records. -1 (err set) as
 * jobstate_set_received. */
int jobstate_adopt(jobstate *st, char *const *outboxes, size_t n, owl_err *err);

/* The sequence number of the newest bundle any outbox received; 0 = none. */
uint64_t jobstate_last_received(const jobstate *st);

/* Frees what st holds and zeroes it; NULL and a zeroed st are no-ops. */
void jobstate_free(jobstate *st);

/* Reads how job's last scheduled run ended; never run reads as 0 / -1 / 0.
 * job NULL is the import agent (STATE_DIR/import.last): its last failed
 * import, kept so that the metric survives a restart. */
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
