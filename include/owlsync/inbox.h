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
    char *agent;    /* read from .work/: the agent that wrote it (else NULL) */
    time_t written; /* read from .work/: when that agent last wrote its list */
} inbox_retry;

int inbox_retries_write(const char *state_dir, const inbox_retry *r, size_t n, owl_err *err);

/* Reads the retry state; a missing file reads as none. Malformed lines are
 * skipped. Free *r with inbox_retries_free. */
int inbox_retries_read(const char *state_dir, inbox_retry **r, size_t *n, owl_err *err);
void inbox_retries_free(inbox_retry *r, size_t n);

/* Agents sharing one inbox each publish their retry state there too, so that
 * `status` on any host shows every agent's retries: INBOX/.work/.retries.AGENT
 * (mode 0644, the format above; hidden, so no scan takes it for a bundle).
 * AGENT is the agent's id, inbox_agent_id: "HOST-XXXXXXXX", the host name
 * (letters, digits, '.', '_' and '-' kept, others as '_', at most
 * INBOX_AGENT_HOST_MAX bytes) and 8 hex digits of a hash (32-bit FNV-1a) of
 * the absolute state_dir, stable across restarts. */
#define INBOX_RETRY_SHARED ".retries."
#define INBOX_AGENT_HOST_MAX 64
#define INBOX_AGENT_ID_MAX (INBOX_AGENT_HOST_MAX + 10) /* with the NUL */
#define INBOX_AGENTS_MAX 64 /* .retries.* files status reads; more are counted */

/* The id of the agent whose state_dir this is, into out (INBOX_AGENT_ID_MAX bytes). */
void inbox_agent_id(const char *state_dir, char *out, size_t outsz);

/* Publishes r[0..n) as .work/.retries.AGENT (atomically), or removes that
 * file when n is 0. */
int inbox_retries_publish(inbox *ib, const char *agent, const inbox_retry *r, size_t n, owl_err *err);

/* What inbox_retries_shared read. */
typedef struct inbox_retries_seen {
    size_t files;        /* .retries.* files read */
    size_t skipped;      /* passed over: unreadable, too large, not a retry state, past INBOX_AGENTS_MAX */
    char first_error[OWL_ERR_MAX]; /* why the first was skipped */
} inbox_retries_seen;

/* Which of the caller's files name (a bundle name, cleaned for a terminal)
 * is: its index in found, or -1 to pass the entry over. */
typedef long (*inbox_retry_slot)(const char *name, void *ctx);

/* Reads every agent's .work/.retries.* file in the inbox dir (at most
 * INBOX_AGENTS_MAX, each a regular file of bounded size, no link followed)
 * and, for each well-formed entry slot maps to an index i < nfound, keeps in
 * found[i] the newest one (latest last_try; on a tie the one already there),
 * its name and error cleaned for a terminal and its agent and written set.
 * found starts zeroed or filled by the caller (entries the caller allocated,
 * freed with inbox_retries_free). A file that cannot be read is skipped and
 * counted in *seen; -1 only when .work/ cannot be read (missing: none). */
int inbox_retries_shared(const char *dir, inbox_retry_slot slot, void *ctx, inbox_retry *found, size_t nfound,
                         inbox_retries_seen *seen, owl_err *err);

/* Whether dir is on a local filesystem (inotify sees every write there). */
bool inbox_is_local(const char *dir);

#endif
