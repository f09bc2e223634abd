/* owlsync inbox: finds settled bundle files in a watched directory (often a shared
 * NFS/SMB mount), claims each by an atomic rename into INBOX/.work/, and moves it
 * to processed/ or quarantine/ (with a NAME.reason file) when it is done. */
#ifndef OWLSYNC_INBOX_H
#define OWLSYNC_INBOX_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "owlsync/error.h"

#define INBOX_WORK ".work"
#define INBOX_MAX_FILES 10000 /* files looked at per scan; more wait for the next */

typedef struct inbox_config {
    const char *dir;            /* the inbox */
    const char *processed_dir;  /* NULL = delete after a successful import */
    const char *quarantine_dir;
    int settle_time;            /* seconds a file's size and mtime must stay unchanged */
    uint64_t max_size;          /* bytes a move to another file system copies at most; 0 = no bound */
    const volatile sig_atomic_t *stop; /* NULL, or set when a copy must give up (SIGTERM) */
} inbox_config;

typedef struct inbox inbox;

/* A file ready to be claimed: its name in the inbox (no directory part). */
typedef struct inbox_file {
    char *name;
    off_t size;
    time_t mtime;
} inbox_file;

/* Opens the inbox: checks the directory, creates .work/, processed/ and
 * quarantine/ when missing (mode 0750). The paths are copied. */
int inbox_open(const inbox_config *ic, inbox **out, owl_err *err);
void inbox_close(inbox *ib);

/* Scans the inbox. A candidate is a regular file named *.owlb, not hidden,
 * not a symlink. Fills *files with the candidates that are settled: seen with
 * the same size and mtime at least settle_time seconds ago (now is the clock
 * to judge by). *unsettled counts those still changing or seen for the first
 * time (the caller rescans sooner while it is non-zero). *files is owned by the
 * caller: free with inbox_files_free. */
int inbox_scan(inbox *ib, time_t now, inbox_file **files, size_t *n, size_t *unsettled, owl_err *err);

/* Names of files in .work/ that nobody is working on (no lock held on them):
 * left by a crash, to be retried first. Same ownership as inbox_scan. */
int inbox_orphans(inbox *ib, inbox_file **files, size_t *n, owl_err *err);

void inbox_files_free(inbox_file *files, size_t n);

/* A claimed file: its path in .work/ and the lock held on it. */
typedef struct inbox_claim {
    char *name;      /* file name */
    char *path;      /* INBOX/.work/NAME */
    int fd;          /* open, with an exclusive flock while we work on it */
} inbox_claim;

/* Claims name: renames INBOX/NAME to INBOX/.work/NAME (atomic; on NFS a rename
 * reported failed may have happened, so the result is checked), opens it and
 * takes an exclusive non-blocking flock. Returns 1 when claimed, 0 when another
 * agent has it (or it vanished), -1 on error. With from_work the file is
 * already in .work/ (an orphan): only the lock is taken. */
int inbox_claim_file(inbox *ib, const char *name, bool from_work, inbox_claim *claim, owl_err *err);

/* Success: moves the claimed file to processed_dir (its mtime set to now) or
 * deletes it, and unlocks. */
int inbox_done(inbox *ib, inbox_claim *claim, owl_err *err);

/* processed_keep: removes the bundles of processed_dir (regular *.owlb files,
 * not hidden) whose mtime (set when processed) is more than keep seconds
 * before now. Reads at most max_entries entries and removes at most
 * max_removed files (*removed says how many): returns 1 when a bound cut
 * the work short (the rest on a later call), 0 when done, -1 on error.
 * No-op without a processed_dir or with keep <= 0. */
int inbox_prune_processed(inbox *ib, time_t now, int64_t keep, size_t max_entries, size_t max_removed,
                          size_t *removed, owl_err *err);

/* Verification or policy failure: moves the file to quarantine_dir and writes
 * NAME.reason beside it (the reason, the time, the exit code). */
int inbox_quarantine(inbox *ib, inbox_claim *claim, int code, const char *reason, owl_err *err);

/* Puts a quarantined file back into the inbox, for `owlsync retry`: file is a
 * name in the quarantine or a path to a file there. Renames it (atomically,
 * never replacing a file) to its name in the inbox, without the ".N" a name
 * clash in the quarantine added, then removes its .reason file. The inbox
 * name goes to final. Errors: OWL_EUSAGE for a file not in the quarantine, a
 * name that is no bundle's, a name taken in the inbox or a quarantine on
 * another file system; OWL_ERUNTIME for a failed system call. */
int inbox_requeue(inbox *ib, const char *file, char *final, size_t finalsz, owl_err *err);

/* Transient failure: leaves the file in .work/ for a retry and unlocks it. */
void inbox_release(inbox_claim *claim);

/* What the inbox holds, for status: the candidates waiting (settling while
 * their mtime is less than settle_time ago), the files in .work/, the
 * quarantined files (every regular file of the quarantine but the hidden and
 * .reason ones) with their reasons, and the inbox entries no scan takes, with
 * why (hidden, a symbolic link, not a regular file, not named *.owlb). Each
 * list is counted whole and holds at most max entries, by name; names and
 * reasons are cleaned for a terminal. */
typedef struct inbox_entry {
    char *name;
    char *reason;          /* quarantined: the first line of NAME.reason; ignored: why */
    off_t size;            /* regular files */
    time_t mtime;
    bool settling;         /* waiting: changed less than settle_time ago */
} inbox_entry;

typedef struct inbox_listing {
    inbox_entry *waiting, *working, *quarantined, *ignored;
    size_t nwaiting, nworking, nquarantined, nignored;                          /* listed */
    size_t waiting_count, working_count, quarantined_count, ignored_count;      /* counted */
    size_t settling_count; /* of waiting_count */
} inbox_listing;

int inbox_list(const inbox_config *ic, size_t max, inbox_listing *l, owl_err *err);
void inbox_listing_free(inbox_listing *l);

/* The retry state of files in .work/: the daemon rewrites STATE_DIR/INBOX_RETRY_FILE
 * (atomically, mode 0640) whenever it changes, for `status` to read. One line
 * a file, at most INBOX_RETRIES_MAX of them, after the header line
 * "owlsync-retries 1": NAME TAB ATTEMPTS TAB NEXT_TRY TAB LAST_TRY TAB ERROR
 * (times in seconds since the epoch; the error cleaned, at most
 * INBOX_RETRY_ERROR_MAX bytes of it). */
#define INBOX_RETRY_FILE "inbox-retries"
#define INBOX_RETRIES_MAX 1000
#define INBOX_RETRY_ERROR_MAX 300

typedef struct inbox_retry {
    char *name;
    unsigned attempts;
    time_t next_try, last_try;
    char *error;
} inbox_retry;

int inbox_retries_write(const char *state_dir, const inbox_retry *r, size_t n, owl_err *err);

/* Reads the retry state; a missing file reads as none. Malformed lines are
 * skipped. Free *r with inbox_retries_free. */
int inbox_retries_read(const char *state_dir, inbox_retry **r, size_t *n, owl_err *err);
void inbox_retries_free(inbox_retry *r, size_t n);

/* Whether dir is on a local filesystem (inotify sees every write there). */
bool inbox_is_local(const char *dir);

#endif
