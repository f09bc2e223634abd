/* owlsync export job state: the .state, .last, .datasets and .lock files of
 * each export job in state_dir, and the import agent's import.last, read and
 * written in one place. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/buf.h"
#include "owlsync/copytext.h"
#include "owlsync/fileio.h"
#include "owlsync/jobstate.h"
#include "owlsync/manifest.h"
#include "owlsync/text.h"

#define STATE_MAX 4096 /* the .last file */
#define STATE_HEAD "owlsync-state 2\n"
#define STATE_MAX_BYTES (1024u * 1024)
#define DATASETS_HEAD "owlsync-datasets 1\n"
#define DATASETS_MAX_BYTES (16u * 1024 * 1024)
#define STATE_HINT "\nHINT: set [owlsync] state_dir to a directory owlsync may write"

/* export-JOB.SUFFIX, or import.SUFFIX for the import agent (job NULL). */
static int file_name(const char *job, const char *suffix, char *out, size_t size, owl_err *err)
{
    if (job == NULL) {
        snprintf(out, size, "import.%s", suffix);
        return 0;
    }
    if (!text_is_name(job))
        return err_set(err, OWL_EUSAGE, "invalid export job name");
    snprintf(out, size, "export-%s.%s", job, suffix);
    return 0;
}

/* Opens state_dir (creating it when missing). */
static int open_dir(const char *state_dir, bool create, int *dfd, owl_err *err)
{
    if (create && mkdir(state_dir, 0750) < 0 && errno != EEXIST)
        return err_set(err, OWL_ERUNTIME, "cannot create state_dir %s: %s" STATE_HINT, state_dir, strerror(errno));
    *dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dfd < 0) {
        if (!create && errno == ENOENT)
            return 1;
        return err_set(err, OWL_ERUNTIME, "cannot open state_dir %s: %s" STATE_HINT, state_dir, strerror(errno));
    }
    return 0;
}

int jobstate_lock(const char *state_dir, const char *job, int *lockfd, owl_err *err)
{
    char name[128];
    int dfd;

    *lockfd = -1;
    if (file_name(job, "lock", name, sizeof(name), err) < 0 || open_dir(state_dir, true, &dfd, err) != 0)
        return -1;
    *lockfd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
    close(dfd);
    if (*lockfd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot open %s/%s: %s" STATE_HINT, state_dir, name, strerror(errno));
    if (flock(*lockfd, LOCK_EX | LOCK_NB) < 0)
        return err_set(err, OWL_ERUNTIME, "export job %s is already running (lock %s/%s held)", job, state_dir, name);
    return 0;
}

/* Reads job's FILE into buf; 1 when it (or state_dir) does not exist. */
static int read_file(const char *state_dir, const char *job, const char *suffix, char *buf, owl_err *err)
{
    char name[128];
    size_t len;
    int dfd, rc;

    if (file_name(job, suffix, name, sizeof(name), err) < 0)
        return -1;
    rc = open_dir(state_dir, false, &dfd, err);
    if (rc != 0)
        return rc;
    rc = fileio_read_small(dfd, name, buf, STATE_MAX - 1, &len, err);
    close(dfd);
    if (rc < 0)
        err_prefix(err, "%s", state_dir);
    return rc;
}

/* The value of "KEY VALUE" in text, or NULL; the line ends are cut in place. */
static const char *value_of(char *text, const char *key)
{
    size_t klen = strlen(key);

    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return line + klen + 1;
        line = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

/* Writes len bytes of text as job's FILE, durably. */
static int write_file(const char *state_dir, const char *job, const char *suffix, const char *text, size_t len,
                      owl_err *err)
{
    char name[128];
    int dfd, rc;

    if (file_name(job, suffix, name, sizeof(name), err) < 0 || open_dir(state_dir, true, &dfd, err) != 0)
        return -1;
    rc = fileio_write_atomic(dfd, state_dir, name, text, len, 0640, FILEIO_REPLACE, NULL, 0, err);
    close(dfd);
    return rc;
}

void jobstate_free(jobstate *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->noutboxes; i++)
        free(st->outboxes[i].path);
    free(st->outboxes);
    memset(st, 0, sizeof(*st));
}

static bool is_digest(const char *v, size_t len)
{
    if (len != JOBSTATE_DIGEST_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
            return false;
    }
    return true;
}

/* A sequence number: decimal digits only. */
static int parse_sequence(const char *v, uint64_t *out)
{
    char *end;

    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    *out = strtoull(v, &end, 10);
    return errno != 0 || (*end != '\0' && *end != ' ') ? -1 : 0;
}

/* The file of owlsync before outboxes were remembered: "sequence N", "digest D". */
static int read_legacy(char *text, const char *state_dir, const char *job, jobstate *st, owl_err *err)
{
    char copy[STATE_MAX];
    const char *v;

    if (strlen(text) >= sizeof(copy))
        return err_set(err, OWL_ERUNTIME, "%s/export-%s.state is damaged (its size)", state_dir, job);
    memcpy(copy, text, strlen(text) + 1);
    st->legacy = true;
    v = value_of(text, "sequence");
    if (v != NULL && (parse_sequence(v, &st->sequence) < 0 || strchr(v, ' ') != NULL))
        return err_set(err, OWL_ERUNTIME, "%s/export-%s.state is damaged (sequence)", state_dir, job);
    v = value_of(copy, "digest");
    if (v != NULL && strlen(v) == JOBSTATE_DIGEST_LEN)
        memcpy(st->digest, v, JOBSTATE_DIGEST_LEN + 1);
    return 0;
}

/* One line "outbox SEQ DIGEST PATH" (PATH escaped as COPY text), after "outbox ". */
static int parse_outbox(jobstate *st, char *v, owl_err *err)
{
    char *sp1 = strchr(v, ' '), *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL, *path;
    size_t plen;
    uint64_t seq;
    int rc;

    if (sp2 == NULL || parse_sequence(v, &seq) < 0 || !is_digest(sp1 + 1, (size_t)(sp2 - sp1 - 1)))
        return err_set(err, OWL_ERUNTIME, "a bad outbox record");
    *sp2 = '\0';
    path = malloc(strlen(sp2 + 1) + 1);
    if (path == NULL)
        return err_oom(err);
    if (copytext_unescape(sp2 + 1, strlen(sp2 + 1), path, &plen, err) < 0) {
        free(path);
        return -1;
    }
    path[plen] = '\0';
    if (plen == 0 || strlen(path) != plen) {
        free(path);
        return err_set(err, OWL_ERUNTIME, "a bad outbox path");
    }
    rc = jobstate_set_received(st, path, seq, sp1 + 1, err);
    free(path);
    return rc;
}

/* The file since outbox records: STATE_HEAD, "sequence N", "digest D" (may be
 * empty), then one "outbox SEQ DIGEST PATH" line each. */
static int read_v2(char *text, size_t len, const char *state_dir, const char *job, jobstate *st, owl_err *err)
{
    bool have_seq = false;
    size_t lineno = 1;
    char *nl;

    for (char *line = text + strlen(STATE_HEAD); line < text + len; line = nl + 1) {
        lineno++;
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (nl == NULL)
            return err_set(err, OWL_ERUNTIME, "%s/export-%s.state is damaged (its end)", state_dir, job);
        *nl = '\0';
        if (strncmp(line, "sequence ", 9) == 0 && !have_seq && parse_sequence(line + 9, &st->sequence) == 0 &&
            strchr(line + 9, ' ') == NULL) {
            have_seq = true;
        } else if (strncmp(line, "digest ", 7) == 0 && (line[7] == '\0' || is_digest(line + 7, strlen(line + 7)))) {
            memcpy(st->digest, line + 7, strlen(line + 7) + 1);
        } else if (strncmp(line, "outbox ", 7) == 0) {
            if (parse_outbox(st, line + 7, err) < 0)
                return err_prefix(err, "%s/export-%s.state is damaged (line %zu)", state_dir, job, lineno);
        } else {
            return err_set(err, OWL_ERUNTIME, "%s/export-%s.state is damaged (line %zu)", state_dir, job, lineno);
        }
    }
    if (!have_seq)
        return err_set(err, OWL_ERUNTIME, "%s/export-%s.state is damaged (sequence)", state_dir, job);
    return 0;
}

int jobstate_read(const char *state_dir, const char *job, jobstate *st, owl_err *err)
{
    char name[128], *text = NULL;
    size_t len;
    int dfd, rc;

    memset(st, 0, sizeof(*st));
    if (file_name(job, "state", name, sizeof(name), err) < 0)
        return -1;
    rc = open_dir(state_dir, false, &dfd, err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    rc = fileio_read_alloc(dfd, name, STATE_MAX_BYTES, &text, &len, err);
    close(dfd);
    if (rc != 0)
        return rc < 0 ? err_prefix(err, "%s", state_dir) : 0;
    if (strlen(text) != len)
        rc = err_set(err, OWL_ERUNTIME, "%s/%s is damaged (a NUL byte)", state_dir, name);
    else if (strncmp(text, STATE_HEAD, strlen(STATE_HEAD)) == 0)
        rc = read_v2(text, len, state_dir, job, st, err);
    else
        rc = read_legacy(text, state_dir, job, st, err);
    free(text);
    if (rc < 0)
        jobstate_free(st);
    return rc;
}

int jobstate_write(const char *state_dir, const char *job, const jobstate *st, owl_err *err)
{
    owl_buf b = OWL_BUF_INIT(STATE_MAX_BYTES);
    char line[128], name[128];
    int rc = -1;

    if (file_name(job, "state", name, sizeof(name), err) < 0)
        return -1;
    if (st->legacy) {
        /* what the job knows of its outboxes is only this: keep it so */
        snprintf(line, sizeof(line), "sequence %llu\ndigest %s\n", (unsigned long long)st->sequence, st->digest);
        return write_file(state_dir, job, "state", line, strlen(line), err);
    }
    snprintf(line, sizeof(line), "%ssequence %llu\ndigest %s\n", STATE_HEAD, (unsigned long long)st->sequence,
             st->digest);
    if (buf_adds(&b, line) < 0)
        goto full;
    for (size_t i = 0; i < st->noutboxes; i++) {
        const jobstate_outbox *o = &st->outboxes[i];
        size_t len = strlen(o->path);
        snprintf(line, sizeof(line), "outbox %llu %s ", (unsigned long long)o->sequence, o->digest);
        if (buf_adds(&b, line) < 0 || buf_reserve(&b, 2 * len + 1) < 0)
            goto full;
        b.len += copytext_escape(o->path, len, b.p + b.len);
        if (buf_add(&b, "\n", 1) < 0)
            goto full;
    }
    rc = write_file(state_dir, job, "state", b.p, b.len, err);
    goto out;
full:
    err_set(err, OWL_ERUNTIME, "%s/%s: %s", state_dir, name,
            buf_full(&b, 1) ? "the job's state would pass its size limit" : "out of memory");
out:
    buf_free(&b);
    return rc;
}

/* The index of outbox's record in st, or st->noutboxes. */
static size_t find_outbox(const jobstate *st, const char *outbox)
{
    size_t i = 0;

    while (i < st->noutboxes && strcmp(st->outboxes[i].path, outbox) != 0)
        i++;
    return i;
}

bool jobstate_received(const jobstate *st, const char *outbox, uint64_t *sequence, const char **digest)
{
    size_t i;

    if (st->legacy) {
        if (st->sequence == 0 || st->digest[0] == '\0')
            return false;
        *sequence = st->sequence;
        *digest = st->digest;
        return true;
    }
    i = find_outbox(st, outbox);
    if (i == st->noutboxes)
        return false;
    *sequence = st->outboxes[i].sequence;
    *digest = st->outboxes[i].digest;
    return true;
}

int jobstate_set_received(jobstate *st, const char *outbox, uint64_t sequence, const char *digest, owl_err *err)
{
    size_t i = find_outbox(st, outbox);
    jobstate_outbox *o, *grown;

    if (!is_digest(digest, strlen(digest)))
        return err_set(err, OWL_ERUNTIME, "a bad content digest");
    if (i < st->noutboxes) {
        o = &st->outboxes[i];
    } else {
        if (st->noutboxes >= JOBSTATE_MAX_OUTBOXES)
            return err_set(err, OWL_ERUNTIME, "more than %d outboxes", JOBSTATE_MAX_OUTBOXES);
        grown = realloc(st->outboxes, (st->noutboxes + 1) * sizeof(*grown));
        if (grown == NULL)
            return err_oom(err);
        st->outboxes = grown;
        o = &grown[st->noutboxes];
        o->path = strdup(outbox);
        if (o->path == NULL)
            return err_oom(err);
        st->noutboxes++;
    }
    o->sequence = sequence;
    memcpy(o->digest, digest, JOBSTATE_DIGEST_LEN + 1);
    return 0;
}

int jobstate_adopt(jobstate *st, char *const *outboxes, size_t n, owl_err *err)
{
    uint64_t seq = st->sequence;
    bool any = st->legacy && st->sequence > 0 && st->digest[0] != '\0';

    if (!st->legacy)
        return 0;
    st->legacy = false;
    for (size_t i = 0; any && i < n; i++) {
        if (jobstate_set_received(st, outboxes[i], seq, st->digest, err) < 0)
            return -1;
    }
    return 0;
}

uint64_t jobstate_last_received(const jobstate *st)
{
    uint64_t last = 0;

    if (st->legacy)
        return st->digest[0] != '\0' ? st->sequence : 0;
    for (size_t i = 0; i < st->noutboxes; i++)
        last = st->outboxes[i].sequence > last ? st->outboxes[i].sequence : last;
    return last;
}

/* "never", or the time as text_utc writes it. */
static void time_text(time_t t, char *buf, size_t size)
{
    if (t <= 0)
        snprintf(buf, size, "never");
    else
        text_utc((int64_t)t * 1000000, TEXT_UTC_SECONDS, buf, size);
}

static time_t time_value(const char *v)
{
    int64_t usec;

    if (v == NULL || manifest_parse_time(v, &usec) < 0)
        return 0;
    return (time_t)(usec / 1000000);
}

int jobstate_read_last(const char *state_dir, const char *job, jobstate_last *l, owl_err *err)
{
    char buf[STATE_MAX], b2[STATE_MAX], b3[STATE_MAX], b4[STATE_MAX];
    const char *v;
    int rc;

    l->finished = 0;
    l->exit_code = -1;
    l->success = 0;
    l->failure = 0;
    rc = read_file(state_dir, job, "last", buf, err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    memcpy(b2, buf, sizeof(b2));
    memcpy(b3, buf, sizeof(b3));
    memcpy(b4, buf, sizeof(b4));
    l->finished = time_value(value_of(buf, "finished"));
    v = value_of(b2, "exit");
    if (v != NULL) {
        char *end;
        long x = strtol(v, &end, 10);
        if (*end == '\0' && end != v && x >= -1 && x <= 255)
            l->exit_code = (int)x;
    }
    l->success = time_value(value_of(b3, "success"));
    l->failure = time_value(value_of(b4, "failure"));
    return 0;
}

int jobstate_write_last(const char *state_dir, const char *job, const jobstate_last *l, owl_err *err)
{
    char text[256], fin[TEXT_UTC_MAX], ok[TEXT_UTC_MAX], failed[TEXT_UTC_MAX];

    time_text(l->finished, fin, sizeof(fin));
    time_text(l->success, ok, sizeof(ok));
    time_text(l->failure, failed, sizeof(failed));
    snprintf(text, sizeof(text), "finished %s\nexit %d\nsuccess %s\nfailure %s\n", fin, l->exit_code, ok, failed);
    return write_file(state_dir, job, "last", text, strlen(text), err);
}

void jobstate_datasets_free(jobstate_dataset *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i].name);
    free(v);
}

/* One line "SEEN\tNAME" (NAME escaped as COPY text) into d. */
static int parse_dataset(char *line, size_t len, jobstate_dataset *d, owl_err *err)
{
    char *tab = memchr(line, '\t', len), *end;
    size_t nlen;

    if (tab == NULL)
        return err_set(err, OWL_ERUNTIME, "no tab");
    *tab = '\0';
    errno = 0;
    d->seen = strtoll(line, &end, 10);
    if (errno != 0 || *end != '\0' || end == line || d->seen < 0)
        return err_set(err, OWL_ERUNTIME, "a bad time");
    d->name = malloc((size_t)(line + len - tab));
    if (d->name == NULL)
        return err_oom(err);
    if (copytext_unescape(tab + 1, (size_t)(line + len - tab - 1), d->name, &nlen, err) < 0)
        return -1;
    d->name[nlen] = '\0';
    if (strlen(d->name) != nlen || nlen == 0 || nlen > MANIFEST_TEXT_MAX)
        return err_set(err, OWL_ERUNTIME, "a bad name");
    return 0;
}

int jobstate_read_datasets(const char *state_dir, const char *job, jobstate_dataset **v, size_t *n, owl_err *err)
{
    char name[128], *text = NULL, *line, *nl;
    size_t len, cap = 0;
    int dfd, rc;

    *v = NULL;
    *n = 0;
    if (file_name(job, "datasets", name, sizeof(name), err) < 0)
        return -1;
    rc = open_dir(state_dir, false, &dfd, err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    rc = fileio_read_alloc(dfd, name, DATASETS_MAX_BYTES, &text, &len, err);
    close(dfd);
    if (rc != 0)
        return rc < 0 ? err_prefix(err, "%s", state_dir) : 0;
    rc = -1;
    if (strncmp(text, DATASETS_HEAD, strlen(DATASETS_HEAD)) != 0) {
        err_set(err, OWL_ERUNTIME, "%s/%s is damaged (its first line)", state_dir, name);
        goto out;
    }
    for (line = text + strlen(DATASETS_HEAD); line < text + len; line = nl + 1) {
        jobstate_dataset *grown;
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (nl == NULL || *n >= MANIFEST_MAX_DATASETS) {
            err_set(err, OWL_ERUNTIME, "%s/%s is damaged (%s)", state_dir, name, nl == NULL ? "its end" : "too long");
            goto out;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            grown = realloc(*v, cap * sizeof(*grown));
            if (grown == NULL) {
                err_oom(err);
                goto out;
            }
            *v = grown;
        }
        memset(&(*v)[*n], 0, sizeof(**v));
        (*n)++;
        if (parse_dataset(line, (size_t)(nl - line), &(*v)[*n - 1], err) < 0) {
            err_prefix(err, "%s/%s is damaged (line %zu)", state_dir, name, *n + 1);
            goto out;
        }
    }
    rc = 0;
out:
    free(text);
    if (rc < 0) {
        jobstate_datasets_free(*v, *n);
        *v = NULL;
        *n = 0;
    }
    return rc;
}

int jobstate_write_datasets(const char *state_dir, const char *job, const jobstate_dataset *v, size_t n,
                            owl_err *err)
{
    owl_buf b = OWL_BUF_INIT(DATASETS_MAX_BYTES);
    char name[128], num[32];
    int dfd, rc = -1;

    if (file_name(job, "datasets", name, sizeof(name), err) < 0)
        return -1;
    if (buf_adds(&b, DATASETS_HEAD) < 0)
        goto full;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i].name);
        snprintf(num, sizeof(num), "%lld\t", (long long)v[i].seen);
        if (buf_adds(&b, num) < 0 || buf_reserve(&b, 2 * len + 1) < 0)
            goto full;
        b.len += copytext_escape(v[i].name, len, b.p + b.len);
        if (buf_add(&b, "\n", 1) < 0)
            goto full;
    }
    if (open_dir(state_dir, true, &dfd, err) != 0)
        goto out;
    rc = fileio_write_atomic(dfd, state_dir, name, b.p, b.len, 0640, FILEIO_REPLACE, NULL, 0, err);
    close(dfd);
    goto out;
full:
    err_set(err, OWL_ERUNTIME, "%s/%s: %s", state_dir, name,
            buf_full(&b, 1) ? "the job's datasets would pass its size limit" : "out of memory");
out:
    buf_free(&b);
    return rc;
}
