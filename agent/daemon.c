/* owlsync daemon: one event loop for scheduled export jobs (run in child
 * processes) and the import inbox (scanned every poll_interval, woken early by
 * inotify), with signals handled by flags only, and a Prometheus metrics file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "owlsync/buf.h"
#include "owlsync/bundle.h"
#include "owlsync/config.h"
#include "owlsync/cron.h"
#include "owlsync/daemon.h"
#include "owlsync/db.h"
#include "owlsync/exporter.h"
#include "owlsync/fileio.h"
#include "owlsync/importer.h"
#include "owlsync/inbox.h"
#include "owlsync/jobstate.h"
#include "owlsync/keys.h"
#include "owlsync/ledger.h"
#include "owlsync/log.h"
#include "owlsync/rewrite.h"
#include "owlsync/text.h"
#include "owlsync/version.h"

#define RETRY_FIRST 5    /* seconds before the first retry of a transient failure */
#define RETRY_MAX 300    /* backoff cap */
#define STOP_GRACE 20    /* seconds export children get after SIGTERM */
#define TARGET_IDLE 60   /* seconds the connection for imports is kept unused */
#define PRUNE_INTERVAL 60   /* seconds between looks at processed_dir for processed_keep */
#define PRUNE_ENTRIES 10000 /* directory entries one look reads at most */
#define PRUNE_REMOVED 1000  /* files one look removes at most */

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
    db_cancel_all(); /* a statement waiting on a lock must not hold up the stop */
}

/* Seconds on a clock that never steps: every timer of the loop but the
 * schedules (which are wall-clock times by nature) runs on it. */
static time_t mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void on_hup(int sig)
{
    (void)sig;
    reload_requested = 1;
}

typedef struct job_rt {
    char *name;
    cron_expr cron;
    time_t next;
    pid_t pid;          /* running child, or 0 */
    time_t started;
    struct timespec started_mono;
    time_t last_run;    /* when the last run ended */
    int last_rc;        /* its exit code, -1 before any */
    time_t last_success;
    time_t last_failure;
    int statfd;         /* read end of the running child's pipe for its figures, or -1 */
    double last_duration;   /* seconds the last run took */
    double duration_total;  /* seconds of every run since the daemon started */
    unsigned long long bytes_total; /* bytes of the bundles published since the daemon started */
    time_t retry_at;    /* monotonic: a failed run is tried again then (0: none) */
    int retry_delay;
} job_rt;

typedef struct retry {
    char *name;
    time_t when;        /* monotonic */
    int delay;
    unsigned attempts;  /* failed tries so far */
    time_t last_try;    /* wall clock, for status */
    time_t next_try;    /* wall clock, for status */
    char *error;        /* the last failure */
} retry;

typedef struct metrics {
    unsigned long long imported, superseded, rejected_verify, rejected_policy, rejected_mismatch, failed_transient,
        rows, retried;
    time_t last_import;       /* last success (ledger at start, then ours) */
    time_t last_import_failure; /* last failed import (STATE_DIR/import.last), 0: none */
    double import_seconds, import_last_seconds;
    unsigned long long import_bytes;
    size_t backlog;
    bool stale;
    bool target_down;         /* the last try to reach the target failed */
} metrics;

typedef struct daemon_state {
    const char *config_path;
    cfg *c;
    keys_trust trust;
    rewrite_set *rs;
    inbox *ib;
    job_rt *jobs;
    size_t njobs;
    int ifd;                  /* inotify, or -1 */
    time_t next_scan;         /* monotonic, as every retry time */
    retry *retries;
    size_t nretries;
    ledger_claim *lock;
    db_conn *target;          /* kept between imports, closed when idle */
    time_t target_used;       /* monotonic */
    int lock_delay;           /* backoff while the claim lock cannot be had (database down) */
    metrics m;
    time_t stale_logged;
    time_t next_prune;        /* monotonic: processed_keep looks at processed_dir then */
} daemon_state;

/* ------------------------------------------------------------------ config */

typedef struct loaded {
    cfg *c;
    keys_trust trust;
    rewrite_set *rs;
    job_rt *jobs;
    size_t njobs;
} loaded;

static void loaded_free(loaded *l)
{
    for (size_t i = 0; i < l->njobs; i++) {
        free(l->jobs[i].name);
        if (l->jobs[i].statfd >= 0)
            close(l->jobs[i].statfd);
    }
    free(l->jobs);
    rewrite_set_free(l->rs);
    keys_trust_free(&l->trust);
    cfg_free(l->c);
    memset(l, 0, sizeof(*l));
}

/* Loads and checks everything a config implies, so a reload either takes whole
 * or leaves the running one alone. */
static int load_all(const char *path, loaded *l, owl_err *err)
{
    time_t now = time(NULL);

    memset(l, 0, sizeof(*l));
    if (cfg_load(path, &l->c, err) < 0)
        return -1;
    if (l->c->import.present) {
        if (l->c->import.inbox == NULL) {
            err_set(err, OWL_EUSAGE, "%s: [import] inbox is required for the daemon", path);
            goto fail;
        }
        for (size_t i = 0; i < l->c->import.ntrusted; i++) {
            const cfg_trusted_key *k = &l->c->import.trusted[i];
            if (keys_trust_add(&l->trust, k->environment, k->key, err) < 0) {
                err_prefix(err, "%s:%d: [import] trusted_key", path, k->line);
                goto fail;
            }
        }
        if (l->trust.n == 0) {
            err_set(err, OWL_EUSAGE, "%s: [import] has no trusted_key: nothing could be imported", path);
            goto fail;
        }
        for (size_t i = 0; i < l->c->import.decrypt_key.n; i++) {
            if (keys_trust_add_decrypt(&l->trust, l->c->import.decrypt_key.v[i], err) < 0) {
                err_prefix(err, "%s: [import] decrypt_key", path);
                goto fail;
            }
        }
    }
    if (rewrite_compile(l->c, &l->rs, err) < 0)
        goto fail;
    l->jobs = calloc(l->c->nexports + 1, sizeof(job_rt));
    if (l->jobs == NULL) {
        err_oom(err);
        goto fail;
    }
    for (size_t i = 0; i < l->c->nexports; i++) {
        const cfg_export *ex = &l->c->exports[i];
        job_rt *j;
        if (ex->schedule == NULL)
            continue;
        j = &l->jobs[l->njobs];
        if (cron_parse(ex->schedule, &j->cron, err) < 0) {
            err_prefix(err, "%s:%d: [export %s] schedule", path, ex->line, ex->name);
            goto fail;
        }
        j->name = strdup(ex->name);
        if (j->name == NULL) {
            err_oom(err);
            goto fail;
        }
        j->next = cron_next(&j->cron, now);
        j->last_rc = -1;
        j->statfd = -1;
        {
            /* the metrics of a restarted daemon go on from the last runs */
            jobstate_last last;
            owl_err lerr;
            if (jobstate_read_last(l->c->state_dir, ex->name, &last, &lerr) == 0) {
                j->last_run = last.finished;
                j->last_rc = last.exit_code;
                j->last_success = last.success;
                j->last_failure = last.failure;
            }
        }
        l->njobs++;
    }
    if (!l->c->import.present && l->njobs == 0) {
        err_set(err, OWL_EUSAGE, "%s: nothing for the daemon to do\nHINT: give an [export] section a schedule, or add an [import] section with an inbox", path);
        goto fail;
    }
    return 0;
fail:
    loaded_free(l);
    return -1;
}

/* Seconds from t0 (CLOCK_MONOTONIC) to now. */
static double seconds_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ------------------------------------------------------------------ metrics */

static void fmt_time(time_t t, char *buf, size_t len)
{
    if (t <= 0)
        snprintf(buf, len, "never");
    else
        text_utc((int64_t)t * 1000000, TEXT_UTC_SECONDS, buf, len);
}

/* Appends printf-style text to b; a failure marks b full (nothing is written). */
static void addf(owl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void addf(owl_buf *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || buf_add(b, line, (size_t)n) < 0)
        b->max = 0; /* failed: too much or no memory */
}

/* Rewrites metrics_file durably (tmp, fsync, rename, fsync of its directory). */
static void write_metrics(daemon_state *d)
{
    owl_buf b = OWL_BUF_INIT(1 << 20);
    owl_err err;

    if (d->c->metrics_file == NULL)
        return;
    addf(&b, "# HELP owlsync_build_info The version and source of this owlsync.\n"
             "# TYPE owlsync_build_info gauge\n"
             "owlsync_build_info{version=\"%s\",commit=\"%s\"} 1\n",
         OWLSYNC_VERSION, OWLSYNC_COMMIT);
    addf(&b, "# HELP owlsync_bundles_imported_total Bundles imported by this agent.\n"
             "# TYPE owlsync_bundles_imported_total counter\n"
             "owlsync_bundles_imported_total %llu\n",
         d->m.imported);
    addf(&b, "# HELP owlsync_bundles_superseded_total Bundles not applied: the target held newer data of all their datasets.\n"
             "# TYPE owlsync_bundles_superseded_total counter\n"
             "owlsync_bundles_superseded_total %llu\n",
         d->m.superseded);
    addf(&b, "# HELP owlsync_bundles_rejected_total Bundles quarantined, by reason.\n"
             "# TYPE owlsync_bundles_rejected_total counter\n"
             "owlsync_bundles_rejected_total{reason=\"verification\"} %llu\n"
             "owlsync_bundles_rejected_total{reason=\"policy\"} %llu\n"
             "owlsync_bundles_rejected_total{reason=\"mismatch\"} %llu\n",
         d->m.rejected_verify, d->m.rejected_policy, d->m.rejected_mismatch);
    addf(&b, "# HELP owlsync_import_failures_total Imports that failed transiently and will be retried.\n"
             "# TYPE owlsync_import_failures_total counter\n"
             "owlsync_import_failures_total %llu\n",
         d->m.failed_transient);
    addf(&b, "# HELP owlsync_import_retries_total Retries scheduled for files in .work/ after a failure that may pass.\n"
             "# TYPE owlsync_import_retries_total counter\n"
             "owlsync_import_retries_total %llu\n",
         d->m.retried);
    addf(&b, "# HELP owlsync_rows_applied_total Rows in the bundles imported.\n"
             "# TYPE owlsync_rows_applied_total counter\n"
             "owlsync_rows_applied_total %llu\n",
         d->m.rows);
    addf(&b, "# HELP owlsync_import_bytes_total Bytes of the bundle files imported.\n"
             "# TYPE owlsync_import_bytes_total counter\n"
             "owlsync_import_bytes_total %llu\n",
         d->m.import_bytes);
    addf(&b, "# HELP owlsync_import_duration_seconds_total Seconds spent importing, every outcome.\n"
             "# TYPE owlsync_import_duration_seconds_total counter\n"
             "owlsync_import_duration_seconds_total %.3f\n"
             "# HELP owlsync_import_last_duration_seconds Seconds the last import took.\n"
             "# TYPE owlsync_import_last_duration_seconds gauge\n"
             "owlsync_import_last_duration_seconds %.3f\n",
         d->m.import_seconds, d->m.import_last_seconds);
    if (d->ib != NULL) {
        addf(&b, "# HELP owlsync_inbox_backlog Bundle files waiting in the inbox.\n"
                 "# TYPE owlsync_inbox_backlog gauge\n"
                 "owlsync_inbox_backlog %zu\n",
             d->m.backlog);
        addf(&b, "# HELP owlsync_inbox_last_success_timestamp_seconds Time of the last successful import.\n"
                 "# TYPE owlsync_inbox_last_success_timestamp_seconds gauge\n"
                 "owlsync_inbox_last_success_timestamp_seconds %lld\n",
             (long long)d->m.last_import);
        addf(&b, "# HELP owlsync_inbox_last_failure_timestamp_seconds Time of the last import that failed (quarantined or to be retried), 0 if none.\n"
                 "# TYPE owlsync_inbox_last_failure_timestamp_seconds gauge\n"
                 "owlsync_inbox_last_failure_timestamp_seconds %lld\n",
             (long long)d->m.last_import_failure);
        addf(&b, "# HELP owlsync_target_down 1 when the last try to reach the target database (to import what waits) failed.\n"
                 "# TYPE owlsync_target_down gauge\n"
                 "owlsync_target_down %d\n",
             d->m.target_down ? 1 : 0);
        addf(&b, "# HELP owlsync_stale 1 when no bundle was imported for longer than max_staleness.\n"
                 "# TYPE owlsync_stale gauge\n"
                 "owlsync_stale %d\n",
             d->m.stale ? 1 : 0);
    }
    if (d->njobs > 0)
        addf(&b, "# HELP owlsync_export_last_success_timestamp_seconds Time of each job's last successful run.\n"
                 "# TYPE owlsync_export_last_success_timestamp_seconds gauge\n");
    for (size_t i = 0; i < d->njobs; i++)
        addf(&b, "owlsync_export_last_success_timestamp_seconds{job=\"%s\"} %lld\n", d->jobs[i].name,
             (long long)d->jobs[i].last_success);
    if (d->njobs > 0)
        addf(&b, "# HELP owlsync_export_last_failure_timestamp_seconds Time of each job's last failed run.\n"
                 "# TYPE owlsync_export_last_failure_timestamp_seconds gauge\n");
    for (size_t i = 0; i < d->njobs; i++)
        addf(&b, "owlsync_export_last_failure_timestamp_seconds{job=\"%s\"} %lld\n", d->jobs[i].name,
             (long long)d->jobs[i].last_failure);
    if (d->njobs > 0)
        addf(&b, "# HELP owlsync_export_last_duration_seconds Seconds each job's last run took.\n"
                 "# TYPE owlsync_export_last_duration_seconds gauge\n");
    for (size_t i = 0; i < d->njobs; i++)
        addf(&b, "owlsync_export_last_duration_seconds{job=\"%s\"} %.3f\n", d->jobs[i].name,
             d->jobs[i].last_duration);
    if (d->njobs > 0)
        addf(&b, "# HELP owlsync_export_duration_seconds_total Seconds each job ran since the daemon started.\n"
                 "# TYPE owlsync_export_duration_seconds_total counter\n");
    for (size_t i = 0; i < d->njobs; i++)
        addf(&b, "owlsync_export_duration_seconds_total{job=\"%s\"} %.3f\n", d->jobs[i].name,
             d->jobs[i].duration_total);
    if (d->njobs > 0)
        addf(&b, "# HELP owlsync_export_bytes_total Bytes of the bundles each job published since the daemon started.\n"
                 "# TYPE owlsync_export_bytes_total counter\n");
    for (size_t i = 0; i < d->njobs; i++)
        addf(&b, "owlsync_export_bytes_total{job=\"%s\"} %llu\n", d->jobs[i].name, d->jobs[i].bytes_total);
    if (b.max == 0)
        log_warn("cannot write metrics file %s: out of memory", d->c->metrics_file);
    else if (fileio_write_path(d->c->metrics_file, b.p, b.len, (mode_t)d->c->metrics_mode, FILEIO_REPLACE, &err) < 0)
        log_warn("%s", err.msg);
    buf_free(&b);
}

/* The owlsync_target_down gauge, written when it changes. */
static void set_target_down(daemon_state *d, bool down)
{
    if (d->m.target_down == down)
        return;
    d->m.target_down = down;
    write_metrics(d);
}

/* ------------------------------------------------------------------ exports */

/* Records how the job's last run ended, for `owlsync status`. */
static void write_job_last(const cfg *c, const job_rt *j)
{
    jobstate_last l = {j->last_run, j->last_rc, j->last_success, j->last_failure};
    owl_err err;

    if (jobstate_write_last(c->state_dir, j->name, &l, &err) < 0)
        log_warn("export job %s: %s", j->name, err.msg);
}

/* Runs one export job in a child process, so a long export never holds up the
 * inbox, and a job still running is never started twice. */
static void start_job(daemon_state *d, job_rt *j)
{
    const cfg_export *ex = cfg_find_export(d->c, j->name);
    int fds[2] = {-1, -1};
    pid_t pid;

    if (ex == NULL)
        return;
    if (j->pid > 0) {
        log_warn("export job %s: still running since its last start (pid %d); not started again", j->name, (int)j->pid);
        return;
    }
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        fds[0] = fds[1] = -1; /* the run goes on without its byte count */
    pid = fork();
    if (pid < 0) {
        log_error("export job %s: cannot fork: %s", j->name, strerror(errno));
        if (fds[0] >= 0) {
            close(fds[0]);
            close(fds[1]);
        }
        return;
    }
    if (pid == 0) {
        exporter_job job;
        exporter_result res;
        owl_err err;
        int rc;

        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_IGN);
        err_clear(&err);
        exporter_job_init(&job, ex);
        rc = exporter_run(d->c, &job, &res, &err);
        for (size_t i = 0; i < res.npaths; i++)
            log_info("export job %s: published %s", j->name, res.paths[i]);
        if (rc < 0)
            log_error("export job %s: %s", j->name, err.msg);
        else if (res.unchanged)
            log_info("export job %s: unchanged; nothing published", j->name);
        if (fds[1] >= 0) {
            /* the bundle's size, for the parent's metrics (one bundle, in every outbox) */
            struct stat st;
            char line[32];
            int len = snprintf(line, sizeof(line), "%lld\n",
                               rc == 0 && res.npaths > 0 && stat(res.paths[0], &st) == 0 ? (long long)st.st_size : 0LL);
            if (write(fds[1], line, (size_t)len) < 0) {
                /* the parent counts no bytes for this run */
            }
        }
        fflush(stderr);
        _exit(rc < 0 ? (err.code ? err.code : 1) : 0);
    }
    if (fds[1] >= 0)
        close(fds[1]);
    if (j->statfd >= 0)
        close(j->statfd);
    j->statfd = fds[0];
    j->pid = pid;
    j->started = time(NULL);
    clock_gettime(CLOCK_MONOTONIC, &j->started_mono);
    log_info("export job %s: started (pid %d)", j->name, (int)pid);
}

static void reap_children(daemon_state *d)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < d->njobs; i++) {
            job_rt *j = &d->jobs[i];
            if (j->pid != pid)
                continue;
            j->pid = 0;
            j->last_run = time(NULL);
            j->last_rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            j->last_duration = seconds_since(&j->started_mono);
            j->duration_total += j->last_duration;
            if (j->statfd >= 0) {
                char line[32];
                ssize_t got = read(j->statfd, line, sizeof(line) - 1);
                if (got > 0) {
                    char *end;
                    unsigned long long v;
                    line[got] = '\0';
                    v = strtoull(line, &end, 10);
                    if (*end == '\n')
                        j->bytes_total += v;
                }
                close(j->statfd);
                j->statfd = -1;
            }
            if (j->last_rc != 0)
                j->last_failure = j->last_run;
            if (j->last_rc == 0) {
                j->last_success = j->last_run;
                j->retry_at = 0;
                j->retry_delay = 0;
            } else if (j->last_rc == OWL_EUSAGE || stop_requested) {
                /* a configuration no retry can fix waits for its next schedule */
                j->retry_at = 0;
                log_warn("export job %s: failed (exit %d); next try at its next scheduled time", j->name, j->last_rc);
            } else {
                j->retry_delay = j->retry_delay == 0 ? RETRY_FIRST
                                 : j->retry_delay * 2 > RETRY_MAX ? RETRY_MAX
                                                                   : j->retry_delay * 2;
                j->retry_at = mono_now() + j->retry_delay;
                log_warn("export job %s: failed (exit %d); will retry in %d s", j->name, j->last_rc, j->retry_delay);
            }
            write_job_last(d->c, j);
            write_metrics(d);
        }
    }
}

static void run_due_jobs(daemon_state *d, time_t now, time_t mono)
{
    for (size_t i = 0; i < d->njobs; i++) {
        job_rt *j = &d->jobs[i];
        if (j->next >= 0 && now >= j->next) {
            start_job(d, j);
            j->next = cron_next(&j->cron, now);
            j->retry_at = 0; /* the schedule's run is the retry */
        } else if (j->retry_at > 0 && mono >= j->retry_at && j->pid == 0) {
            j->retry_at = 0;
            log_info("export job %s: retrying after its failed run", j->name);
            start_job(d, j);
        }
    }
}

/* ------------------------------------------------------------------ inbox */

static retry *find_retry(daemon_state *d, const char *name)
{
    for (size_t i = 0; i < d->nretries; i++) {
        if (strcmp(d->retries[i].name, name) == 0)
            return &d->retries[i];
    }
    return NULL;
}

static void retry_free(retry *r)
{
    free(r->name);
    free(r->error);
}

/* Rewrites the retry state file in state_dir, and this agent's copy in the
 * inbox's .work/ that `owlsync status` reads on every host sharing it (see
 * inbox_retries_write, inbox_retries_publish); a failure is logged, nothing
 * else depends on them. */
static void persist_retries(daemon_state *d)
{
    char agent[INBOX_AGENT_ID_MAX];
    inbox_retry *v;
    owl_err err;

    if (d->ib == NULL || d->c->state_dir == NULL)
        return;
    v = calloc(d->nretries + 1, sizeof(*v));
    if (v == NULL)
        return;
    for (size_t i = 0; i < d->nretries; i++) {
        v[i].name = d->retries[i].name;
        v[i].attempts = d->retries[i].attempts;
        v[i].next_try = d->retries[i].next_try;
        v[i].last_try = d->retries[i].last_try;
        v[i].error = d->retries[i].error;
    }
    if (mkdir(d->c->state_dir, 0750) < 0 && errno != EEXIST)
        log_warn("cannot create state_dir %s: %s", d->c->state_dir, strerror(errno));
    else if (inbox_retries_write(d->c->state_dir, v, d->nretries, &err) < 0)
        log_warn("%s", err.msg);
    inbox_agent_id(d->c->state_dir, agent, sizeof(agent));
    if (inbox_retries_publish(d->ib, agent, v, d->nretries, &err) < 0)
        log_warn("%s", err.msg);
    free(v);
}

static void drop_retry(daemon_state *d, const char *name)
{
    for (size_t i = 0; i < d->nretries; i++) {
        if (strcmp(d->retries[i].name, name) == 0) {
            retry_free(&d->retries[i]);
            d->retries[i] = d->retries[--d->nretries];
            persist_retries(d);
            return;
        }
    }
}

/* Schedules the next try of name (in .work/) after a failure that may pass
 * (why), backing off: 5 s, then twice as long each time, up to 300 s. */
static void schedule_retry(daemon_state *d, const char *name, time_t now, const char *why)
{
    retry *r = find_retry(d, name);

    if (r == NULL) {
        retry *grown = realloc(d->retries, (d->nretries + 1) * sizeof(*grown));
        if (grown == NULL)
            return;
        d->retries = grown;
        r = &d->retries[d->nretries];
        memset(r, 0, sizeof(*r));
        r->name = strdup(name);
        if (r->name == NULL)
            return;
        r->delay = RETRY_FIRST;
        d->nretries++;
    } else {
        r->delay = r->delay * 2 > RETRY_MAX ? RETRY_MAX : r->delay * 2;
    }
    r->when = now + r->delay;
    r->attempts++;
    r->last_try = time(NULL);
    r->next_try = r->last_try + r->delay;
    free(r->error);
    r->error = strndup(why, INBOX_RETRY_ERROR_MAX);
    d->m.retried++;
    persist_retries(d); /* before the log line that says so: status agrees with the log */
    log_warn("%s: will retry in %d s", name, r->delay);
}

/* The connection kept for imports: the one of the last import while the
 * server kept it, else a new one. */
static int target_conn(daemon_state *d, bool *fresh, owl_err *err)
{
    *fresh = false;
    if (d->target != NULL && !db_reusable(d->target)) {
        log_info("the connection kept to the target database was closed; opening another");
        db_close(d->target);
        d->target = NULL;
    }
    if (d->target == NULL) {
        if (db_open(d->c->conninfo, "the target database", &d->target, err) < 0)
            return -1;
        db_keep(d->target);
        *fresh = true;
    }
    d->target_used = mono_now();
    return 0;
}

static void drop_target(daemon_state *d)
{
    db_close(d->target);
    d->target = NULL;
}

/* Imports through the kept connection. One the server closed since its last
 * use (a restart, an idle timeout) fails the first statement: the import is
 * tried once more at once on a new connection, not left to the backoff. */
static int import_with_kept(daemon_state *d, inbox_claim *cl, importer_opts *opts, importer_result *res,
                            owl_err *err)
{
    bool fresh;
    int rc;

    for (int attempt = 0;; attempt++) {
        if (target_conn(d, &fresh, err) < 0)
            return -1;
        opts->conn = d->target;
        rc = importer_run(d->c, &d->trust, d->rs, cl->path, opts, res, err);
        opts->conn = NULL;
        if (db_reusable(d->target))
            return rc;
        drop_target(d); /* what is left of it cannot take the next import */
        if (rc == 0 || fresh || attempt > 0 || err->code != OWL_ERUNTIME || stop_requested)
            return rc;
        log_info("%s: the connection kept to the target database was lost (%s); trying again on a new one",
                 cl->name, err->msg);
        importer_result_free(res);
        err_clear(err);
    }
}

/* Keeps when an import last failed in STATE_DIR/import.last, so that the
 * metric survives a restart; only on a failure, which spares every good
 * import a durable write. A failure to write it is logged, nothing more. */
static void import_failed(daemon_state *d, int code)
{
    jobstate_last l = {time(NULL), code, d->m.last_import, time(NULL)};
    owl_err err;

    d->m.last_import_failure = l.failure;
    if (jobstate_write_last(d->c->state_dir, NULL, &l, &err) < 0)
        log_warn("%s", err.msg);
}

/* Imports one claimed file and disposes of it by the outcome. */
static void import_claimed(daemon_state *d, inbox_claim *cl)
{
    importer_opts opts = {0};
    importer_result res;
    owl_err err, err2;
    char name[NAME_MAX + 1]; /* the claim's name is freed with the claim */
    time_t now;
    int rc;

    struct timespec t0;
    struct stat st;
    off_t size = fstat(cl->fd, &st) == 0 ? st.st_size : 0;

    snprintf(name, sizeof(name), "%s", cl->name);
    err_clear(&err);
    memset(&res, 0, sizeof(res));
    log_info("%s: importing", cl->name);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* through the claim's descriptor: .work/ may have been swapped for a link
     * to anything since it was opened */
    opts.by_fd = true;
    opts.fd = cl->fd;
    rc = import_with_kept(d, cl, &opts, &res, &err);
    d->m.import_last_seconds = seconds_since(&t0);
    d->m.import_seconds += d->m.import_last_seconds;
    if (rc == 0) {
        uint64_t rows = 0;
        for (size_t i = 0; i < res.ntables; i++)
            rows += res.tables[i].rows;
        if (res.status == IMPORT_ALREADY) {
            log_info("%s: already imported (bundle %s)", cl->name, res.bundle_id);
        } else if (res.status == IMPORT_SUPERSEDED) {
            /* it came late: what it holds was overtaken, nothing is wrong with it */
            log_warn("%s: superseded, not applied: %s", cl->name, res.superseded);
            d->m.superseded++;
        } else {
            log_info("%s: imported bundle %llu of %s/%s, %llu rows", cl->name, (unsigned long long)res.sequence,
                     res.environment, res.job, (unsigned long long)rows);
            d->m.imported++;
            d->m.rows += rows;
            d->m.import_bytes += (unsigned long long)size;
        }
        if (res.status != IMPORT_SUPERSEDED)
            d->m.last_import = time(NULL);
        drop_retry(d, cl->name);
        if (inbox_done(d->ib, cl, &err2) < 0) {
            log_error("%s", err2.msg);
            schedule_retry(d, name, mono_now(), err2.msg); /* it stays in .work/ */
        }
    } else if (err.code == OWL_EVERIFY || err.code == OWL_EPOLICY || err.code == OWL_EUSAGE) {
        /* No retry can fix these: a bundle that fails verification or policy,
         * or one the target's schema or configuration cannot take (it waits in
         * the quarantine, with its reason, until someone fixes the cause). */
        log_error("%s: %s; quarantined", cl->name, err.msg);
        if (err.code == OWL_EVERIFY)
            d->m.rejected_verify++;
        else if (err.code == OWL_EPOLICY)
            d->m.rejected_policy++;
        else
            d->m.rejected_mismatch++;
        import_failed(d, err.code);
        drop_retry(d, cl->name);
        if (inbox_quarantine(d->ib, cl, err.code, err.msg, &err2) < 0) {
            log_error("%s", err2.msg);
            schedule_retry(d, name, mono_now(), err2.msg); /* it stays in .work/ */
        }
    } else {
        now = mono_now();
        log_error("%s: %s", cl->name, err.msg);
        d->m.failed_transient++;
        import_failed(d, err.code);
        schedule_retry(d, cl->name, now, err.msg); /* before the release frees cl->name */
        inbox_release(cl);
    }
    importer_result_free(&res);
}

typedef struct candidate {
    inbox_file f;
    int64_t snapshot;
    bool from_work;
} candidate;

static int by_snapshot(const void *a, const void *b)
{
    const candidate *x = a, *y = b;

    if (x->from_work != y->from_work)
        return x->from_work ? -1 : 1; /* crash leftovers first */
    if (x->snapshot != y->snapshot)
        return x->snapshot < y->snapshot ? -1 : 1;
    return strcmp(x->f.name, y->f.name);
}

/* The snapshot time of a bundle, only to order the queue. Its manifest is
 * parsed only once its signature is checked with the trusted keys, so an
 * unsigned one costs a bounded read and a hash; a file that does not verify
 * sorts last, and the import refuses it after the good ones. */
static int64_t peek_snapshot(const daemon_state *d, const char *dir, const char *name)
{
    char path[PATH_MAX];
    bundle_limits lim = {d->c->import.max_bundle_size, d->c->import.max_unpacked_size};
    bundle_reader *r = NULL;
    owl_err err;
    int64_t t = INT64_MAX;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (bundle_open(path, &lim, &d->trust, &r, &err) == 0)
        t = bundle_manifest(r)->snapshot_at;
    bundle_close(r);
    return t;
}

/* Retries are for files in .work/: forget those no longer there. */
static void prune_retries(daemon_state *d, const inbox_file *orphans, size_t norphans)
{
    bool pruned = false;

    for (size_t i = 0; i < d->nretries;) {
        bool present = false;
        for (size_t k = 0; k < norphans && !present; k++)
            present = strcmp(orphans[k].name, d->retries[i].name) == 0;
        if (present) {
            i++;
        } else {
            retry_free(&d->retries[i]);
            d->retries[i] = d->retries[--d->nretries];
            pruned = true;
        }
    }
    if (pruned)
        persist_retries(d);
}

/* How many files of .work/ are due for a try (not backing off); the next
 * scan comes no later than the first retry that is not. */
static size_t due_orphans(daemon_state *d, const inbox_file *orphans, size_t norphans, time_t now)
{
    size_t due = 0;

    for (size_t i = 0; i < norphans; i++) {
        const retry *r = find_retry(d, orphans[i].name);
        if (r == NULL || now >= r->when)
            due++;
        else if (r->when < d->next_scan)
            d->next_scan = r->when; /* retry when due, not at the next poll */
    }
    return due;
}

static void process_inbox(daemon_state *d, time_t now)
{
    inbox_file *files = NULL, *orphans = NULL;
    size_t nfiles = 0, norphans = 0, unsettled = 0, ncand = 0, waiting;
    candidate *cand = NULL;
    char workdir[PATH_MAX];
    owl_err err;
    int locked;

    if (inbox_scan(d->ib, now, &files, &nfiles, &unsettled, &err) < 0) {
        log_error("%s", err.msg);
        d->next_scan = now + d->c->import.poll_interval;
        return;
    }
    if (inbox_orphans(d->ib, &orphans, &norphans, &err) < 0)
        log_error("%s", err.msg);
    if (d->m.backlog != nfiles + unsettled + norphans) {
        d->m.backlog = nfiles + unsettled + norphans;
        write_metrics(d); /* the gauge must not keep a count from before the last batch */
    }
    /* While a file is still settling, look again every second. */
    d->next_scan = now + (unsettled > 0 ? 1 : d->c->import.poll_interval);

    prune_retries(d, orphans, norphans);
    waiting = nfiles + due_orphans(d, orphans, norphans, now);
    if (waiting == 0)
        goto out;

    /* One agent at a time picks and imports, so bundles go in snapshot order. */
    locked = ledger_claim_try(d->c->conninfo, &d->lock, &err);
    if (locked < 0) {
        if (d->lock_delay == 0)
            d->lock_delay = RETRY_FIRST;
        else
            d->lock_delay = d->lock_delay * 2 > RETRY_MAX ? RETRY_MAX : d->lock_delay * 2;
        log_warn("%s; %zu bundle(s) wait; will retry in %d s", err.msg, waiting, d->lock_delay);
        d->next_scan = now + d->lock_delay;
        set_target_down(d, true);
        goto out;
    }
    d->lock_delay = 0;
    set_target_down(d, false);
    if (locked == 0) {
        d->next_scan = now + 1;
        goto out;
    }
    /* Holding the claim: what another agent left in .work/ when it died
     * (it let go of the claim by dying) goes before anything newer. */
    inbox_files_free(orphans, norphans);
    orphans = NULL;
    norphans = 0;
    if (inbox_orphans(d->ib, &orphans, &norphans, &err) < 0)
        log_error("%s", err.msg);
    cand = calloc(nfiles + norphans + 1, sizeof(*cand));
    if (cand == NULL) {
        ledger_claim_release(d->lock);
        goto out;
    }
    snprintf(workdir, sizeof(workdir), "%s/%s", d->c->import.inbox, INBOX_WORK);
    for (size_t i = 0; i < norphans; i++) {
        retry *r = find_retry(d, orphans[i].name);
        if (r != NULL && now < r->when)
            continue; /* backing off */
        if (r == NULL)
            log_warn("%s: left in %s by an interrupted run; retrying it first", orphans[i].name, INBOX_WORK);
        cand[ncand].f = orphans[i];
        cand[ncand].from_work = true;
        cand[ncand].snapshot = peek_snapshot(d, workdir, orphans[i].name);
        ncand++;
    }
    for (size_t i = 0; i < nfiles; i++) {
        cand[ncand].f = files[i];
        cand[ncand].snapshot = peek_snapshot(d, d->c->import.inbox, files[i].name);
        ncand++;
    }
    qsort(cand, ncand, sizeof(*cand), by_snapshot);
    for (size_t i = 0; i < ncand && !stop_requested; i++) {
        inbox_claim cl;
        int got = inbox_claim_file(d->ib, cand[i].f.name, cand[i].from_work, &cl, &err);
        if (got < 0) {
            log_error("%s", err.msg);
            continue;
        }
        if (got == 0)
            continue; /* another agent has it */
        import_claimed(d, &cl);
        write_metrics(d);
    }
    ledger_claim_release(d->lock);
    d->next_scan = now; /* look again at once: more may have come meanwhile */
out:
    free(cand);
    inbox_files_free(files, nfiles);
    inbox_files_free(orphans, norphans);
}

/* processed_keep: removes what processed_dir has kept long enough, a bounded
 * amount at a time: once a minute, or at the next turn while there is more. */
static void prune_processed(daemon_state *d, time_t now, time_t mono)
{
    size_t removed = 0;
    owl_err err;
    int rc;

    rc = inbox_prune_processed(d->ib, now, d->c->import.processed_keep, PRUNE_ENTRIES, PRUNE_REMOVED, &removed,
                               &err);
    if (rc < 0)
        log_error("processed_keep: %s", err.msg);
    if (removed > 0)
        log_info("processed_keep: removed %zu bundle(s) processed more than %lld s ago from %s", removed,
                 (long long)d->c->import.processed_keep, d->c->import.processed_dir);
    d->next_prune = mono + (rc == 1 ? 1 : PRUNE_INTERVAL);
}

static void check_staleness(daemon_state *d, time_t now)
{
    int64_t limit = d->c->import.max_staleness;
    bool stale;

    if (!d->c->import.present || limit <= 0)
        return;
    stale = d->m.last_import > 0 ? now - d->m.last_import > limit : false;
    if (stale && (d->stale_logged == 0 || now - d->stale_logged >= 3600)) {
        char when[TEXT_UTC_MAX];
        fmt_time(d->m.last_import, when, sizeof(when));
        log_warn("no bundle imported since %s, longer than max_staleness (%lld s): is the sync still running?", when,
                 (long long)limit);
        d->stale_logged = now;
    }
    if (!stale)
        d->stale_logged = 0;
    if (stale != d->m.stale) {
        d->m.stale = stale;
        write_metrics(d);
    }
}

/* ------------------------------------------------------------------ setup */

/* Opens the inbox c names, and its inotify watch (*ifdp, or -1 to poll). */
static int open_inbox(const cfg *c, inbox **ibp, int *ifdp, owl_err *err)
{
    inbox_config ic;
    cfg_watch watch = c->import.watch;
    int ifd = -1;

    ic.dir = c->import.inbox;
    ic.processed_dir = c->import.processed_dir;
    ic.quarantine_dir = c->import.quarantine_dir;
    ic.settle_time = c->import.settle_time;
    ic.max_size = c->import.max_bundle_size;
    ic.stop = &stop_requested;
    if (inbox_open(&ic, ibp, err) < 0)
        return -1;
    if (watch == CFG_WATCH_AUTO)
        watch = inbox_is_local(ic.dir) ? CFG_WATCH_INOTIFY : CFG_WATCH_POLL;
    if (watch == CFG_WATCH_INOTIFY) {
        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0 || inotify_add_watch(ifd, ic.dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB) < 0) {
            log_warn("inotify unavailable for %s (%s); polling every %d s", ic.dir, strerror(errno),
                     c->import.poll_interval);
            if (ifd >= 0)
                close(ifd);
            ifd = -1;
        }
    }
    *ifdp = ifd;
    log_info("watching inbox %s (%s, rescanned every %d s, settle %d s)", ic.dir, ifd >= 0 ? "inotify" : "poll",
             c->import.poll_interval, c->import.settle_time);
    return 0;
}

static void close_inbox(daemon_state *d)
{
    if (d->ifd >= 0)
        close(d->ifd);
    d->ifd = -1;
    inbox_close(d->ib);
    d->ib = NULL;
}

static void adopt(daemon_state *d, loaded *l)
{
    /* keep the running children and history of jobs that still exist */
    for (size_t i = 0; i < l->njobs; i++) {
        for (size_t k = 0; k < d->njobs; k++) {
            if (strcmp(l->jobs[i].name, d->jobs[k].name) == 0) {
                l->jobs[i].pid = d->jobs[k].pid;
                l->jobs[i].last_run = d->jobs[k].last_run;
                l->jobs[i].last_rc = d->jobs[k].last_rc;
                l->jobs[i].last_success = d->jobs[k].last_success;
                l->jobs[i].last_failure = d->jobs[k].last_failure;
                l->jobs[i].last_duration = d->jobs[k].last_duration;
                l->jobs[i].duration_total = d->jobs[k].duration_total;
                l->jobs[i].bytes_total = d->jobs[k].bytes_total;
                l->jobs[i].started_mono = d->jobs[k].started_mono;
                l->jobs[i].statfd = d->jobs[k].statfd;
                d->jobs[k].statfd = -1;
                l->jobs[i].retry_at = d->jobs[k].retry_at;
                l->jobs[i].retry_delay = d->jobs[k].retry_delay;
            }
        }
    }
    {
        loaded old = {d->c, d->trust, d->rs, d->jobs, d->njobs};
        loaded_free(&old);
    }
    d->c = l->c;
    d->trust = l->trust;
    d->rs = l->rs;
    d->jobs = l->jobs;
    d->njobs = l->njobs;
    memset(l, 0, sizeof(*l));
    log_set_level((log_level)d->c->log_level);
    log_set_format((log_format)d->c->log_format);
}

static void reload(daemon_state *d)
{
    loaded l;
    owl_err err;

    inbox *ib = NULL;
    int ifd = -1;

    reload_requested = 0;
    if (load_all(d->config_path, &l, &err) < 0) {
        log_error("reload refused, still running on the previous config: %s", err.msg);
        return;
    }
    /* the new inbox must open before the old one is let go */
    if (l.c->import.present && open_inbox(l.c, &ib, &ifd, &err) < 0) {
        log_error("reload refused, still running on the previous config: %s", err.msg);
        loaded_free(&l);
        return;
    }
    close_inbox(d);
    drop_target(d); /* the new config may name another database */
    adopt(d, &l);
    d->ib = ib;
    d->ifd = ifd;
    d->next_scan = 0;
    log_info("config reloaded from %s", d->config_path);
}

static void log_start(const daemon_state *d)
{
    log_info("owlsync daemon started: environment %s, config %s, %zu scheduled job(s)%s", d->c->environment,
             d->config_path, d->njobs, d->c->import.present ? ", inbox on" : "");
    for (size_t i = 0; i < d->njobs; i++) {
        char when[TEXT_UTC_MAX];
        fmt_time(d->jobs[i].next, when, sizeof(when));
        log_info("export job %s: next run %s", d->jobs[i].name, when);
    }
}

static void stop_children(daemon_state *d)
{
    time_t deadline = mono_now() + STOP_GRACE;
    bool any;

    for (size_t i = 0; i < d->njobs; i++) {
        if (d->jobs[i].pid > 0)
            kill(d->jobs[i].pid, SIGTERM);
    }
    do {
        any = false;
        reap_children(d);
        for (size_t i = 0; i < d->njobs; i++)
            any = any || d->jobs[i].pid > 0;
        if (any)
            usleep(100000);
    } while (any && mono_now() < deadline);
}

int daemon_run(const char *config_path, owl_err *err)
{
    daemon_state d;
    loaded l;
    struct sigaction sa;
    int rc = -1;

    memset(&d, 0, sizeof(d));
    d.ifd = -1;
    d.config_path = config_path;
    if (load_all(config_path, &l, err) < 0)
        return -1;
    adopt(&d, &l);
    if (d.c->import.present && open_inbox(d.c, &d.ib, &d.ifd, err) < 0)
        goto out;
    persist_retries(&d); /* none yet: what a former run left in .work/ is tried first */
    if (d.c->import.present) {
        jobstate_last failed;
        owl_err ferr;
        if (jobstate_read_last(d.c->state_dir, NULL, &failed, &ferr) == 0)
            d.m.last_import_failure = failed.failure;
        else
            log_warn("%s", ferr.msg);
    }
    if (d.c->import.present) {
        ledger_row *rows = NULL;
        size_t n = 0;
        int64_t last = 0;
        db_conn *conn = NULL;
        owl_err lerr;
        if (db_open(d.c->conninfo, "the target database", &conn, &lerr) == 0 &&
            ledger_recent(conn, 1, &rows, &n, &last, &lerr) == 0)
            d.m.last_import = (time_t)(last / 1000000);
        else
            log_warn("%s", lerr.msg);
        db_close(conn);
        ledger_rows_free(rows, n);
        if (d.m.last_import == 0)
            d.m.last_import = time(NULL); /* staleness counts from our start */
    }

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_start(&d);
    write_metrics(&d);

    while (!stop_requested) {
        struct pollfd pfd = {d.ifd, POLLIN, 0};
        time_t now, mono;

        if (reload_requested)
            reload(&d);
        reap_children(&d);
        now = time(NULL);
        mono = mono_now();
        run_due_jobs(&d, now, mono);
        if (d.ib != NULL && mono >= d.next_scan)
            process_inbox(&d, mono);
        if (d.ib != NULL && d.c->import.processed_keep > 0 && mono >= d.next_prune && !stop_requested)
            prune_processed(&d, now, mono);
        check_staleness(&d, now);
        if (d.target != NULL && mono - d.target_used >= TARGET_IDLE)
            drop_target(&d); /* nothing came for a while: let the server have it back */
        if (stop_requested)
            break;
        if (poll(&pfd, d.ifd >= 0 ? 1 : 0, 1000) > 0 && (pfd.revents & POLLIN)) {
            char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            while (read(d.ifd, evbuf, sizeof(evbuf)) > 0) {
            }
            d.next_scan = 0; /* something happened: scan now */
        }
    }
    log_info("stopping: %s", "no new work is taken");
    stop_children(&d);
    write_metrics(&d);
    log_info("owlsync daemon stopped");
    rc = 0;
out:
    close_inbox(&d);
    drop_target(&d);
    ledger_claim_free(d.lock);
    for (size_t i = 0; i < d.nretries; i++)
        retry_free(&d.retries[i]);
    free(d.retries);
    {
        loaded old = {d.c, d.trust, d.rs, d.jobs, d.njobs};
        loaded_free(&old);
    }
    return rc;
}
