/* owlsync inbox: settles, claims and retires bundle files dropped into a shared
 * directory whose writers are untrusted; every name is checked, no link is followed. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "owlsync/fileio.h"
#include "owlsync/inbox.h"
#include "owlsync/log.h"
#include "owlsync/text.h"

#define BUNDLE_SUFFIX ".owlb"
#define BUNDLE_SUFFIX_LEN (sizeof(BUNDLE_SUFFIX) - 1)
/* Longest accepted bundle name: leaves room within NAME_MAX (255) for what we
 * derive from it: ".NNN" collision suffixes, ".reason", a leading '.' and ".tmp". */
#define NAME_LEN_MAX 230
#define ENTRIES_MAX (INBOX_MAX_FILES * 10) /* directory entries read per scan */
#define REASON_MAX 4096                    /* bytes of reason text kept */
#define COUNT_MAX 1000000                  /* counts saturate here */
#define SHOWN_MAX 80 /* bytes of an untrusted name shown in a message */

/* What the settle table remembers of a file: it is settled once the same
 * (inode, size, mtime) has been seen for settle_time seconds. */
typedef struct settle_entry {
    char *name;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
    time_t first; /* when this (inode, size, mtime) was first seen */
    bool skip;    /* cannot be claimed (not ours to move): passed over until it changes */
} settle_entry;

struct inbox {
    char *dir;
    char *processed_dir; /* NULL: delete after success */
    char *quarantine_dir;
    int dirfd;
    int workfd;
    int processedfd; /* -1 when processed_dir is NULL */
    int quarantinefd;
    int settle_time;
    uint64_t max_size;
    const volatile sig_atomic_t *stop;
    settle_entry *table; /* sorted by name, at most INBOX_MAX_FILES */
    size_t ntable;
    DIR *scan;           /* the inbox read a part at a time, across scans */
    bool warned_full, warned_work_full, warned_entries;
};

/* A directory entry that passed the name and type checks. */
typedef struct candidate {
    char *name;
    struct stat st;
} candidate;

/* Whether name may be a bundle: not hidden, ends in ".owlb", at most
 * NAME_LEN_MAX bytes, and no '/' or control characters (names are untrusted). */
static bool name_ok(const char *name)
{
    size_t len = strnlen(name, NAME_LEN_MAX + 1);

    if (len <= BUNDLE_SUFFIX_LEN || len > NAME_LEN_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c < 0x20 || c == 0x7f)
            return false;
    }
    return strcmp(name + len - BUNDLE_SUFFIX_LEN, BUNDLE_SUFFIX) == 0;
}

/* Copies path without trailing slashes (so that O_NOFOLLOW sees the last name). */
static char *path_dup(const char *path)
{
    size_t len = strlen(path);
    char *s;

    while (len > 1 && path[len - 1] == '/')
        len--;
    s = malloc(len + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, path, len);
    s[len] = '\0';
    return s;
}

/* Returns "a/b" or "a/b/c" (c may be NULL) in new memory, or NULL. */
static char *path_join(const char *a, const char *b, const char *c)
{
    size_t size = strlen(a) + strlen(b) + (c ? strlen(c) + 1 : 0) + 2;
    char *s = malloc(size);

    if (s == NULL)
        return NULL;
    if (c != NULL)
        snprintf(s, size, "%s/%s/%s", a, b, c);
    else
        snprintf(s, size, "%s/%s", a, b);
    return s;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Creates directory path (relative to at) when missing and opens it, refusing a
 * symbolic link as the last component. */
static int open_dir_create(int at, const char *path, const char *shown, int *fdp, owl_err *err)
{
    int fd;

    if (mkdirat(at, path, 0750) < 0 && errno != EEXIST)
        return err_set(err, OWL_ERUNTIME, "cannot create directory %s: %s", shown, strerror(errno));
    fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR)
            return err_set(err, OWL_EUSAGE,
                           "%s is not a directory\nHINT: give the real path of a directory, not a symbolic link",
                           shown);
        return err_set(err, OWL_ERUNTIME, "cannot open directory %s: %s", shown, strerror(errno));
    }
    *fdp = fd;
    return 0;
}

/* The name of path within the inbox when it is directly under it ("INBOX/x"),
 * else NULL. */
static const char *leaf_in_inbox(const inbox *ib, const char *path)
{
    size_t n = strlen(ib->dir);

    if (strncmp(path, ib->dir, n) != 0 || path[n] != '/' || path[n + 1] == '\0' || strchr(path + n + 1, '/') != NULL)
        return NULL;
    return path + n + 1;
}

/* Opens directory name of the inbox (creating it when missing). The inbox is
 * writable by others: what stands there instead of a directory (a symbolic
 * link, a FIFO, a file) is moved aside under a hidden name, loudly, and a
 * directory made in its place, so that nobody can stop the agent or steer
 * its files elsewhere. A directory of another owner is used, with a warning
 * (every file in it is opened by descriptor and checked). */
static int open_inbox_dir(inbox *ib, const char *name, const char *shown, int *fdp, owl_err *err)
{
    char aside[NAME_MAX + 1];
    struct stat st;
    int fd;

    for (int attempt = 0;; attempt++) {
        if (mkdirat(ib->dirfd, name, 0750) < 0 && errno != EEXIST)
            return err_set(err, OWL_ERUNTIME, "cannot create directory %s: %s", shown, strerror(errno));
        fd = openat(ib->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0)
            break;
        if ((errno != ELOOP && errno != ENOTDIR) || attempt > 0)
            return err_set(err, OWL_ERUNTIME, "cannot open directory %s: %s", shown, strerror(errno));
        snprintf(aside, sizeof(aside), ".%s.planted-%lld-%ld", name[0] == '.' ? name + 1 : name,
                 (long long)time(NULL), (long)getpid());
        if (renameat(ib->dirfd, name, ib->dirfd, aside) < 0)
            return err_set(err, OWL_ERUNTIME, "%s is not a directory, and cannot be moved aside: %s", shown,
                           strerror(errno));
        log_error("%s was not a directory (a symbolic link or another file, planted in the inbox): moved aside "
                  "to %s/%s, and a directory made in its place",
                  shown, ib->dir, aside);
    }
    if (fstat(fd, &st) == 0 && st.st_uid != geteuid())
        log_warn("%s belongs to uid %ld, not to this agent (uid %ld): check who made it", shown, (long)st.st_uid,
                 (long)geteuid());
    *fdp = fd;
    return 0;
}

/* Opens a processed or quarantine directory: one directly under the inbox
 * as the inbox's own, any other as configured (a symbolic link refused). */
static int open_side_dir(inbox *ib, const char *path, int *fdp, owl_err *err)
{
    const char *leaf = leaf_in_inbox(ib, path);

    if (leaf != NULL && strcmp(leaf, ".") != 0 && strcmp(leaf, "..") != 0)
        return open_inbox_dir(ib, leaf, path, fdp, err);
    return open_dir_create(AT_FDCWD, path, path, fdp, err);
}

/* Refuses a processed or quarantine directory that is the inbox or .work itself:
 * files moved there would be taken again. */
static int check_distinct(const inbox *ib, int fd, const char *shown, owl_err *err)
{
    struct stat d, in, work;

    if (fstat(fd, &d) < 0 || fstat(ib->dirfd, &in) < 0 || fstat(ib->workfd, &work) < 0)
        return err_set(err, OWL_ERUNTIME, "cannot stat %s: %s", shown, strerror(errno));
    if (same_file(&d, &in) || same_file(&d, &work))
        return err_set(err, OWL_EUSAGE,
                       "%s is the inbox itself\nHINT: processed_dir and quarantine_dir must be other directories",
                       shown);
    return 0;
}

int inbox_open(const inbox_config *ic, inbox **out, owl_err *err)
{
    inbox *ib = NULL;
    char *shown = NULL;
    int result = -1;

    *out = NULL;
    if (ic == NULL || ic->dir == NULL || ic->dir[0] == '\0')
        return err_set(err, OWL_EUSAGE, "no inbox directory configured");
    ib = calloc(1, sizeof(*ib));
    if (ib == NULL)
        return err_oom(err);
    ib->dirfd = ib->workfd = ib->processedfd = ib->quarantinefd = -1;
    ib->settle_time = ic->settle_time < 0 ? 0 : ic->settle_time;
    ib->max_size = ic->max_size > 0 ? ic->max_size : UINT64_MAX;
    ib->stop = ic->stop;
    ib->dir = path_dup(ic->dir);
    if (ic->processed_dir != NULL)
        ib->processed_dir = path_dup(ic->processed_dir);
    if (ic->quarantine_dir != NULL)
        ib->quarantine_dir = path_dup(ic->quarantine_dir);
    else if (ib->dir != NULL)
        ib->quarantine_dir = path_join(ib->dir, "quarantine", NULL);
    if (ib->dir == NULL || ib->quarantine_dir == NULL ||
        (ic->processed_dir != NULL && ib->processed_dir == NULL)) {
        err_oom(err);
        goto out;
    }

    ib->dirfd = open(ib->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ib->dirfd < 0) {
        err_set(err, errno == ENOENT || errno == ENOTDIR ? OWL_EUSAGE : OWL_ERUNTIME,
                "cannot open inbox %s: %s", ib->dir, strerror(errno));
        goto out;
    }
    shown = path_join(ib->dir, INBOX_WORK, NULL);
    if (shown == NULL) {
        err_oom(err);
        goto out;
    }
    if (open_inbox_dir(ib, INBOX_WORK, shown, &ib->workfd, err) < 0)
        goto out;
    if (ib->processed_dir != NULL && (open_side_dir(ib, ib->processed_dir, &ib->processedfd, err) < 0 ||
                                      check_distinct(ib, ib->processedfd, ib->processed_dir, err) < 0))
        goto out;
    if (open_side_dir(ib, ib->quarantine_dir, &ib->quarantinefd, err) < 0 ||
        check_distinct(ib, ib->quarantinefd, ib->quarantine_dir, err) < 0)
        goto out;
    *out = ib;
    ib = NULL;
    result = 0;
out:
    free(shown);
    inbox_close(ib);
    return result;
}

void inbox_close(inbox *ib)
{
    if (ib == NULL)
        return;
    for (size_t i = 0; i < ib->ntable; i++)
        free(ib->table[i].name);
    free(ib->table);
    if (ib->scan != NULL)
        closedir(ib->scan);
    if (ib->quarantinefd >= 0)
        close(ib->quarantinefd);
    if (ib->processedfd >= 0)
        close(ib->processedfd);
    if (ib->workfd >= 0)
        close(ib->workfd);
    if (ib->dirfd >= 0)
        close(ib->dirfd);
    free(ib->quarantine_dir);
    free(ib->processed_dir);
    free(ib->dir);
    free(ib);
}

void inbox_files_free(inbox_file *files, size_t n)
{
    if (files == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(files[i].name);
    free(files);
}

static void candidates_free(candidate *c, size_t n)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(c[i].name);
    free(c);
}

/* Opens a stream of its own (own offset) on the directory dfd. */
static DIR *dir_stream(int dfd)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;

    if (fd < 0)
        return NULL;
    d = fdopendir(fd);
    if (d == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return d;
}

/* Lists the regular files of dfd whose names pass name_ok: at most
 * INBOX_MAX_FILES of them, reading at most ENTRIES_MAX entries; *full tells
 * whether a bound cut the listing short. *out is the caller's (candidates_free). */
static int list_candidates(int dfd, const char *what, candidate **out, size_t *n, bool *full,
                           owl_err *err)
{
    candidate *c = NULL;
    size_t nc = 0, cap = 0, entries = 0;
    DIR *d = dir_stream(dfd);
    int result = -1;

    *out = NULL;
    *n = 0;
    *full = false;
    if (d == NULL)
        return err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", what, strerror(errno));
    for (;;) {
        struct dirent *de;
        struct stat st;

        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", what, strerror(errno));
                goto out;
            }
            break;
        }
        if (++entries > ENTRIES_MAX || nc >= INBOX_MAX_FILES) {
            *full = true;
            break;
        }
        if (!name_ok(de->d_name))
            continue;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                log_debug("cannot stat %s/%s: %s", what, de->d_name, strerror(errno));
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if (nc == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            candidate *grown;
            if (ncap > INBOX_MAX_FILES)
                ncap = INBOX_MAX_FILES;
            grown = realloc(c, ncap * sizeof(*c));
            if (grown == NULL) {
                err_oom(err);
                goto out;
            }
            c = grown;
            cap = ncap;
        }
        c[nc].name = strdup(de->d_name);
        if (c[nc].name == NULL) {
            err_oom(err);
            goto out;
        }
        c[nc].st = st;
        nc++;
    }
    *out = c;
    *n = nc;
    c = NULL;
    result = 0;
out:
    candidates_free(c, nc);
    closedir(d);
    return result;
}

/* Logs once when a listing hits its bound, and once when it no longer does. */
static void note_full(bool *warned, bool full, const char *what)
{
    if (full && !*warned)
        log_warn("%s holds more than %d bundle files (or %d entries); the rest wait for a later scan",
                 what, INBOX_MAX_FILES, ENTRIES_MAX);
    else if (!full && *warned)
        log_info("%s: every bundle file is looked at again", what);
    *warned = full;
}

static int candidate_by_name(const void *a, const void *b)
{
    return strcmp(((const candidate *)a)->name, ((const candidate *)b)->name);
}

static int entry_find(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const settle_entry *)elem)->name);
}

/* Oldest first, then by name, so the order does not depend on readdir. */
static int file_order(const void *a, const void *b)
{
    const inbox_file *x = a, *y = b;

    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Reads on in the inbox from where the last scan stopped: at most ENTRIES_MAX
 * entries, so that however many other entries it holds, every bundle file
 * is reached within a few scans (the next scan starts over once the end is
 * reached). Adds to *c (capacity *cap) the candidates found, at most room of
 * them; *full tells that room ran out. */
static int discover(inbox *ib, size_t room, candidate **c, size_t *nc, size_t *cap, bool *full, owl_err *err)
{
    size_t entries = 0;

    *full = false;
    if (ib->scan == NULL) {
        ib->scan = dir_stream(ib->dirfd);
        if (ib->scan == NULL)
            return err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", ib->dir, strerror(errno));
    }
    for (;;) {
        struct dirent *de;
        struct stat st;

        if (*nc >= room) {
            *full = true;
            return 0;
        }
        if (entries++ >= ENTRIES_MAX) {
            if (!ib->warned_entries)
                log_info("%s holds more than %d entries: it is read a part at a time", ib->dir, ENTRIES_MAX);
            ib->warned_entries = true;
            return 0;
        }
        errno = 0;
        de = readdir(ib->scan);
        if (de == NULL) {
            int saved = errno;
            closedir(ib->scan); /* the next scan reads it afresh from the start */
            ib->scan = NULL;
            if (saved != 0)
                return err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", ib->dir, strerror(saved));
            return 0;
        }
        if (!name_ok(de->d_name))
            continue;
        if (fstatat(ib->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (*nc == *cap) {
            size_t ncap = *cap ? *cap * 2 : 64;
            candidate *grown = realloc(*c, ncap * sizeof(**c));
            if (grown == NULL)
                return err_oom(err);
            *c = grown;
            *cap = ncap;
        }
        (*c)[*nc].name = strdup(de->d_name);
        if ((*c)[*nc].name == NULL)
            return err_oom(err);
        (*c)[*nc].st = st;
        (*nc)++;
    }
}

int inbox_scan(inbox *ib, time_t now, inbox_file **files, size_t *n, size_t *unsettled, owl_err *err)
{
    candidate *c = NULL;
    size_t nc = 0, cap = 0, nout = 0, nwait = 0, nt = 0;
    settle_entry *table = NULL;
    inbox_file *out = NULL;
    bool full = false;
    int result = -1;

    *files = NULL;
    *n = 0;
    *unsettled = 0;
    /* The files already known are looked at again by name, whichever part
     * of the directory this scan reads; gone or changed type, they drop out. */
    for (size_t i = 0; i < ib->ntable; i++) {
        struct stat st;
        if (fstatat(ib->dirfd, ib->table[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (nc == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            candidate *grown = realloc(c, ncap * sizeof(*c));
            if (grown == NULL) {
                err_oom(err);
                goto out;
            }
            c = grown;
            cap = ncap;
        }
        c[nc].name = strdup(ib->table[i].name);
        if (c[nc].name == NULL) {
            err_oom(err);
            goto out;
        }
        c[nc].st = st;
        nc++;
    }
    if (discover(ib, INBOX_MAX_FILES, &c, &nc, &cap, &full, err) < 0)
        goto out;
    note_full(&ib->warned_full, full, ib->dir);
    if (nc > 1)
        qsort(c, nc, sizeof(*c), candidate_by_name);
    table = calloc(nc ? nc : 1, sizeof(*table));
    out = calloc(nc ? nc : 1, sizeof(*out));
    if (table == NULL || out == NULL) {
        err_oom(err);
        goto out;
    }
    for (size_t i = 0; i < nc; i++) {
        const settle_entry *old = NULL;
        settle_entry *e;
        const struct stat *st = &c[i].st;

        if (nt > 0 && strcmp(c[i].name, table[nt - 1].name) == 0)
            continue; /* known, and met again in this part of the directory */
        e = &table[nt++];
        if (ib->ntable > 0)
            old = bsearch(c[i].name, ib->table, ib->ntable, sizeof(*ib->table), entry_find);
        e->name = c[i].name;
        c[i].name = NULL;
        e->dev = st->st_dev;
        e->ino = st->st_ino;
        e->size = st->st_size;
        e->mtim = st->st_mtim;
        e->first = now;
        /* a clock stepped back must not hold a file for longer than settle_time */
        if (old != NULL && old->dev == e->dev && old->ino == e->ino && old->size == e->size &&
            old->mtim.tv_sec == e->mtim.tv_sec && old->mtim.tv_nsec == e->mtim.tv_nsec &&
            old->first < now) {
            e->first = old->first;
            e->skip = old->skip;
        }
        if (e->skip)
            continue;
        if (ib->settle_time > 0 && now - e->first < (time_t)ib->settle_time) {
            nwait++;
            continue;
        }
        out[nout].name = strdup(e->name);
        if (out[nout].name == NULL) {
            err_oom(err);
            goto out;
        }
        out[nout].size = e->size;
        out[nout].mtime = e->mtim.tv_sec;
        nout++;
    }
    /* the new table holds exactly the files known now: vanished ones drop out */
    for (size_t i = 0; i < ib->ntable; i++)
        free(ib->table[i].name);
    free(ib->table);
    ib->table = table;
    ib->ntable = nt;
    table = NULL;
    qsort(out, nout, sizeof(*out), file_order);
    *files = out;
    *n = nout;
    *unsettled = nwait;
    out = NULL;
    result = 0;
out:
    if (table != NULL) {
        for (size_t i = 0; i < nt; i++)
            free(table[i].name);
        free(table);
    }
    inbox_files_free(out, nout);
    candidates_free(c, nc);
    return result;
}

/* Opens dfd/name (a regular file, no link followed) and takes an exclusive
 * non-blocking flock. Returns 1 with *fdp open and locked; 0 when the file
 * vanished, is not a regular file, or someone else holds the lock; -1 with errno
 * on failure. */
static int lock_file(int dfd, const char *name, int *fdp)
{
    const int flags = O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    struct stat before, opened, after;
    int fd, rc, saved, fl;

    *fdp = -1;
    if (fstatat(dfd, name, &before, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISREG(before.st_mode))
        return 0;
    /* O_NONBLOCK: a fifo swapped in after the stat must not hang us */
    fd = openat(dfd, name, O_RDONLY | flags);
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? 0 : -1;
    if (fstat(fd, &opened) < 0)
        goto fail;
    if (!S_ISREG(opened.st_mode) || !same_file(&before, &opened))
        goto busy;
    rc = flock(fd, LOCK_EX | LOCK_NB);
    if (rc < 0 && errno == EBADF) {
        /* NFS emulates flock with POSIX locks, and an exclusive one needs a
         * descriptor open for writing */
        int wfd = openat(dfd, name, O_RDWR | flags);
        if (wfd < 0)
            goto fail;
        close(fd);
        fd = wfd;
        if (fstat(fd, &opened) < 0)
            goto fail;
        if (!S_ISREG(opened.st_mode) || !same_file(&before, &opened))
            goto busy;
        rc = flock(fd, LOCK_EX | LOCK_NB);
    }
    if (rc < 0) {
        if (errno == EWOULDBLOCK)
            goto busy;
        goto fail;
    }
    /* Another agent may have finished with the file and moved it away between
     * our open and our lock: only the file still at that name is ours. */
    if (fstatat(dfd, name, &after, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            goto busy;
        goto fail;
    }
    if (!same_file(&opened, &after))
        goto busy;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        goto fail;
    *fdp = fd;
    return 1;
busy:
    close(fd);
    return 0;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int inbox_orphans(inbox *ib, inbox_file **files, size_t *n, owl_err *err)
{
    candidate *c = NULL;
    inbox_file *out = NULL;
    size_t nc = 0, nout = 0;
    bool full;
    char *what = path_join(ib->dir, INBOX_WORK, NULL);
    int result = -1;

    *files = NULL;
    *n = 0;
    if (what == NULL)
        return err_oom(err);
    if (list_candidates(ib->workfd, what, &c, &nc, &full, err) < 0)
        goto out;
    note_full(&ib->warned_work_full, full, what);
    out = calloc(nc ? nc : 1, sizeof(*out));
    if (out == NULL) {
        err_oom(err);
        goto out;
    }
    for (size_t i = 0; i < nc; i++) {
        int fd;
        int rc = lock_file(ib->workfd, c[i].name, &fd);

        if (rc < 0)
            log_warn("cannot lock %s/%s: %s", what, c[i].name, strerror(errno));
        if (rc <= 0)
            continue;
        close(fd); /* nobody held it: an orphan; the lock goes with the descriptor */
        out[nout].name = c[i].name;
        out[nout].size = c[i].st.st_size;
        out[nout].mtime = c[i].st.st_mtim.tv_sec;
        c[i].name = NULL;
        nout++;
    }
    qsort(out, nout, sizeof(*out), file_order);
    *files = out;
    *n = nout;
    out = NULL;
    result = 0;
out:
    inbox_files_free(out, nout);
    candidates_free(c, nc);
    free(what);
    return result;
}

/* Claims name by renaming it into .work/: 1 when moved, 0 when it is gone or
 * not ours to take, -1 on error. */
static int claim_rename(inbox *ib, const char *name, owl_err *err)
{
    struct stat before;
    int saved;

    if (fstatat(ib->dirfd, name, &before, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return err_set(err, OWL_ERUNTIME, "cannot stat %s/%s: %s", ib->dir, name, strerror(errno));
    }
    if (!S_ISREG(before.st_mode))
        return 0;
    if (fileio_rename_noreplace(ib->dirfd, name, ib->workfd, name) == 0)
        return 1;
    if (errno == ENOENT)
        return 0; /* another agent took it first */
    if (errno == EPERM || errno == EACCES) {
        /* a sticky inbox, another user's file: reported once, then passed
         * over until it changes */
        settle_entry *e = ib->ntable > 0 ? bsearch(name, ib->table, ib->ntable, sizeof(*ib->table), entry_find) : NULL;
        char shown[4 * SHOWN_MAX + 8];
        const char *why = strerror(errno);
        if (e != NULL && e->skip)
            return 0;
        if (e != NULL)
            e->skip = true;
        log_warn("%s/%s: cannot be moved into %s/ (%s; the file belongs to uid %ld): passed over until it changes",
                 ib->dir, text_clean(name, SHOWN_MAX, shown, sizeof(shown)), INBOX_WORK, why,
                 (long)before.st_uid);
        return 0;
    }
    if (errno == EEXIST) {
        log_warn("%s/%s: a file of that name is already in %s/; left in the inbox for now",
                 ib->dir, name, INBOX_WORK);
        return 0;
    }
    saved = errno;
    if (fileio_renamed_anyway(ib->dirfd, name, ib->workfd, name, &before)) {
        log_info("%s/%s: rename into %s/ reported \"%s\" but happened", ib->dir, name, INBOX_WORK,
                 strerror(saved));
        return 1;
    }
    return err_set(err, OWL_ERUNTIME, "cannot move %s/%s into %s/: %s", ib->dir, name, INBOX_WORK,
                   strerror(saved));
}

int inbox_claim_file(inbox *ib, const char *name, bool from_work, inbox_claim *claim, owl_err *err)
{
    char shown[4 * SHOWN_MAX + 8];
    int fd = -1, rc;

    claim->name = NULL;
    claim->path = NULL;
    claim->fd = -1;
    if (name == NULL || !name_ok(name)) {
        text_clean(name, SHOWN_MAX, shown, sizeof(shown));
        return err_set(err, OWL_EUSAGE,
                       "refusing inbox file name \"%s\"\nHINT: a bundle is named *.owlb, at most %d bytes, not hidden, without control characters",
                       shown, NAME_LEN_MAX);
    }
    if (!from_work) {
        rc = claim_rename(ib, name, err);
        if (rc <= 0)
            return rc;
    }
    rc = lock_file(ib->workfd, name, &fd);
    if (rc < 0)
        return err_set(err, OWL_ERUNTIME, "cannot lock %s/%s/%s: %s", ib->dir, INBOX_WORK, name,
                       strerror(errno));
    if (rc == 0)
        return 0;
    claim->name = strdup(name);
    claim->path = path_join(ib->dir, INBOX_WORK, name);
    if (claim->name == NULL || claim->path == NULL) {
        close(fd);
        free(claim->name);
        free(claim->path);
        claim->name = claim->path = NULL;
        return err_oom(err);
    }
    claim->fd = fd;
    return 1;
}

void inbox_release(inbox_claim *claim)
{
    if (claim == NULL)
        return;
    if (claim->fd >= 0)
        close(claim->fd);
    free(claim->name);
    free(claim->path);
    claim->fd = -1;
    claim->name = NULL;
    claim->path = NULL;
}

/* Checks that .work/NAME is still the file whose lock we hold; fills *st. */
static int still_ours(const inbox *ib, const inbox_claim *claim, struct stat *st, owl_err *err)
{
    struct stat at;

    if (claim->fd < 0 || claim->name == NULL)
        return err_set(err, OWL_ERUNTIME, "no claimed file");
    if (fstat(claim->fd, st) < 0)
        return err_set(err, OWL_ERUNTIME, "cannot stat %s: %s", claim->path, strerror(errno));
    if (fstatat(ib->workfd, claim->name, &at, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return err_set(err, OWL_ERUNTIME, "%s is gone", claim->path);
        return err_set(err, OWL_ERUNTIME, "cannot stat %s: %s", claim->path, strerror(errno));
    }
    if (!same_file(st, &at))
        return err_set(err, OWL_ERUNTIME, "%s was replaced while we worked on it", claim->path);
    return 0;
}

/* The target is on another filesystem: copies the claimed file into dfd
 * durably under a free name, then removes it from .work/. A file over the
 * size bound is not copied: with keep_big false it is removed (1: what was
 * refused for its size is not worth its size in another place), else an error. */
static int copy_across(inbox *ib, const inbox_claim *claim, int dfd, const char *dir, bool keep_big, char *final,
                       size_t finalsz, owl_err *err)
{
    struct stat st;

    if (!keep_big && fstat(claim->fd, &st) == 0 && (uint64_t)st.st_size > ib->max_size) {
        snprintf(final, finalsz, "%s", claim->name);
        if (unlinkat(ib->workfd, claim->name, 0) < 0 && errno != ENOENT)
            return err_set(err, OWL_ERUNTIME, "cannot remove %s: %s", claim->path, strerror(errno));
        return 1;
    }
    if (fileio_copy_atomic_bounded(dfd, dir, claim->name, claim->fd, ib->max_size, ib->stop, 0640, FILEIO_UNIQUE,
                                   final, finalsz, err) < 0)
        return -1;
    if (unlinkat(ib->workfd, claim->name, 0) < 0 && errno != ENOENT)
        return err_set(err, OWL_ERUNTIME, "copied %s to %s but cannot remove it: %s", claim->path, dir,
                       strerror(errno));
    return 0;
}

/* Moves the claimed file from .work/ into dfd (dir names it in messages) under a
 * name not yet taken there, written to final; fsyncs both directories. */
static int retire(inbox *ib, const inbox_claim *claim, int dfd, const char *dir, bool keep_big, char *final,
                  size_t finalsz, owl_err *err)
{
    struct stat st;

    if (still_ours(ib, claim, &st, err) < 0)
        return -1;
    if (fileio_move_unique(ib->workfd, claim->name, dfd, claim->name, &st, final, finalsz) < 0) {
        if (errno == EXDEV)
            return copy_across(ib, claim, dfd, dir, keep_big, final, finalsz, err);
        return err_set(err, OWL_ERUNTIME, "cannot move %s into %s: %s", claim->path, dir,
                       strerror(errno));
    }
    if (fileio_sync_dir(dfd, dir, err) < 0)
        return -1;
    return fileio_sync_dir(ib->workfd, claim->path, err);
}

int inbox_prune_processed(inbox *ib, time_t now, int64_t keep, size_t max_entries, size_t max_removed,
                          size_t *removed, owl_err *err)
{
    size_t entries = 0;
    bool cut = false;
    DIR *d;
    int result = -1;

    *removed = 0;
    if (ib->processedfd < 0 || keep <= 0)
        return 0;
    d = dir_stream(ib->processedfd);
    if (d == NULL)
        return err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", ib->processed_dir, strerror(errno));
    for (;;) {
        struct dirent *de;
        struct stat st;

        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", ib->processed_dir, strerror(errno));
                goto out;
            }
            break;
        }
        if (++entries > max_entries || *removed >= max_removed) {
            cut = true; /* bounded work: the rest on a later call */
            break;
        }
        if (!name_ok(de->d_name) || fstatat(ib->processedfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode) || st.st_mtime > now || now - st.st_mtime <= keep)
            continue;
        if (unlinkat(ib->processedfd, de->d_name, 0) < 0) {
            if (errno != ENOENT)
                log_warn("cannot remove %s/%s: %s", ib->processed_dir, de->d_name, strerror(errno));
            continue;
        }
        (*removed)++;
    }
    result = cut ? 1 : 0;
out:
    closedir(d);
    return result;
}

int inbox_done(inbox *ib, inbox_claim *claim, owl_err *err)
{
    char final[NAME_MAX + 1];
    struct stat st;
    int result = -1;

    if (ib->processedfd >= 0) {
        result = retire(ib, claim, ib->processedfd, ib->processed_dir, true, final, sizeof(final), err);
        /* its mtime becomes the time it was processed: processed_keep counts from it */
        if (result == 0)
            (void)futimens(claim->fd, NULL);
    } else if (still_ours(ib, claim, &st, err) == 0) {
        if (unlinkat(ib->workfd, claim->name, 0) < 0)
            err_set(err, OWL_ERUNTIME, "cannot remove %s: %s", claim->path, strerror(errno));
        else
            result = fileio_sync_dir(ib->workfd, claim->path, err);
    }
    inbox_release(claim);
    return result;
}

/* Writes quarantine/FINAL.reason, durably: the reason (one line, cleaned),
 * the time, the exit code and the file's name as it came. */
static int write_reason(inbox *ib, const char *final, const char *name, int code, const char *reason,
                        owl_err *err)
{
    char target[NAME_MAX + 1], stamp[TEXT_UTC_MAX];
    const size_t cleaned = 4 * REASON_MAX + 8, textsz = cleaned + 4 * NAME_MAX + 128;
    char *escaped = malloc(cleaned), *text = malloc(textsz), *shown = malloc(4 * NAME_MAX + 8);
    int len, result = -1;

    if (escaped == NULL || text == NULL || shown == NULL) {
        err_oom(err);
        goto out;
    }
    if (snprintf(target, sizeof(target), "%s.reason", final) >= (int)sizeof(target)) {
        err_set(err, OWL_ERUNTIME, "%s/%s: name too long for a .reason file", ib->quarantine_dir, final);
        goto out;
    }
    text_utc(text_now_usec(), TEXT_UTC_SECONDS, stamp, sizeof(stamp));
    len = snprintf(text, textsz, "reason: %s\ntime: %s\nexit_code: %d\nfile: %s\n",
                   text_clean(reason, REASON_MAX, escaped, cleaned), stamp, code,
                   text_clean(name, NAME_MAX, shown, 4 * NAME_MAX + 8));
    if (len < 0 || (size_t)len >= textsz) {
        err_set(err, OWL_ERUNTIME, "reason text too long");
        goto out;
    }
    result = fileio_write_atomic(ib->quarantinefd, ib->quarantine_dir, target, text, (size_t)len, 0640,
                                 FILEIO_REPLACE, NULL, 0, err);
out:
    free(shown);
    free(text);
    free(escaped);
    return result;
}

int inbox_quarantine(inbox *ib, inbox_claim *claim, int code, const char *reason, owl_err *err)
{
    char final[NAME_MAX + 1];
    int result = retire(ib, claim, ib->quarantinefd, ib->quarantine_dir, false, final, sizeof(final), err);

    if (result == 1) {
        /* too big to copy to another file system: the reason says so */
        char *why = malloc(REASON_MAX + 256);
        if (why == NULL) {
            result = err_oom(err);
        } else {
            snprintf(why, REASON_MAX + 256, "%.*s; the file was removed, not kept: it is larger than "
                     "max_bundle_size, and %s is on another file system than the inbox",
                     REASON_MAX, reason, ib->quarantine_dir);
            result = write_reason(ib, final, claim->name, code, why, err);
            free(why);
        }
    } else if (result == 0) {
        result = write_reason(ib, final, claim->name, code, reason, err);
        /* no reason (a full disk): back into .work/, to be quarantined again
         * when it is retried, never left in the quarantine without one */
        if (result < 0 && fileio_rename_noreplace(ib->quarantinefd, final, ib->workfd, claim->name) == 0) {
            owl_err ignored;
            (void)fileio_sync_dir(ib->workfd, claim->path, &ignored);
        }
    }
    inbox_release(claim);
    return result;
}

/* The inbox name of a quarantined file: name, or name without the ".N" (1 to
 * 999) that a clash in the quarantine added after ".owlb". */
static void inbox_name_of(const char *name, char *out, size_t outsz)
{
    const char *dot = strrchr(name, '.');
    size_t digits = dot != NULL ? strspn(dot + 1, "0123456789") : 0;

    snprintf(out, outsz, "%s", name);
    if (dot != NULL && digits >= 1 && digits <= 3 && dot[1 + digits] == '\0' && dot[1] != '0' &&
        (size_t)(dot - name) < outsz)
        out[dot - name] = '\0';
}

/* Opens the directory that path names a file in (its last '/' ends it). */
static int open_parent(const char *path, const char **leaf, owl_err *err)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd;

    *leaf = slash + 1;
    dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (dir == NULL)
        return err_oom(err);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        err_set(err, OWL_EUSAGE, "cannot open directory %s: %s", dir, strerror(errno));
    free(dir);
    return fd;
}

int inbox_requeue(inbox *ib, const char *file, char *final, size_t finalsz, owl_err *err)
{
    char base[NAME_MAX + 1], reason[NAME_MAX + 1], shown[4 * SHOWN_MAX + 8];
    const char *name = file;
    struct stat st, qst, pst;
    int saved;

    if (strchr(file, '/') != NULL) {
        /* a path: only a file of the quarantine itself */
        int pfd = open_parent(file, &name, err);
        if (pfd < 0)
            return -1;
        if (fstat(pfd, &pst) < 0 || fstat(ib->quarantinefd, &qst) < 0 || !same_file(&pst, &qst)) {
            close(pfd);
            return err_set(err, OWL_EUSAGE, "%s is not in the quarantine %s\nHINT: give a file of %s, by its name "
                           "or its path", text_clean(file, SHOWN_MAX, shown, sizeof(shown)), ib->quarantine_dir,
                           ib->quarantine_dir);
        }
        close(pfd);
    }
    text_clean(name, SHOWN_MAX, shown, sizeof(shown));
    inbox_name_of(name, base, sizeof(base));
    if (name[0] == '\0' || !name_ok(base))
        return err_set(err, OWL_EUSAGE, "\"%s\" is not the name of a bundle file\nHINT: a bundle is named *.owlb "
                       "(in the quarantine also *.owlb.N), not hidden, without control characters", shown);
    if (fstatat(ib->quarantinefd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return err_set(err, OWL_EUSAGE, "%s is not in the quarantine %s", shown, ib->quarantine_dir);
        return err_set(err, OWL_ERUNTIME, "cannot stat %s/%s: %s", ib->quarantine_dir, shown, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return err_set(err, OWL_EUSAGE, "%s/%s is not a regular file", ib->quarantine_dir, shown);
    if (fileio_rename_noreplace(ib->quarantinefd, name, ib->dirfd, base) < 0) {
        saved = errno;
        if (saved == EEXIST)
            return err_set(err, OWL_EUSAGE, "%s/%s already exists; %s left in the quarantine\nHINT: wait until "
                           "the inbox's file is imported, or move the quarantined one in under another name",
                           ib->dir, base, shown);
        if (saved == EXDEV)
            return err_set(err, OWL_EUSAGE, "%s is on another file system than the inbox %s: it cannot be moved "
                           "back atomically\nHINT: copy it into the inbox under a hidden name, rename it, then "
                           "remove it and its .reason from the quarantine", ib->quarantine_dir, ib->dir);
        if (!fileio_renamed_anyway(ib->quarantinefd, name, ib->dirfd, base, &st))
            return err_set(err, OWL_ERUNTIME, "cannot move %s/%s into %s: %s", ib->quarantine_dir, shown, ib->dir,
                           strerror(saved));
    }
    snprintf(final, finalsz, "%s", base);
    if (fileio_sync_dir(ib->dirfd, ib->dir, err) < 0)
        return -1;
    if ((size_t)snprintf(reason, sizeof(reason), "%s.reason", name) < sizeof(reason) &&
        unlinkat(ib->quarantinefd, reason, 0) < 0 && errno != ENOENT)
        return err_set(err, OWL_ERUNTIME, "moved %s into %s, but cannot remove %s/%s.reason: %s", shown, ib->dir,
                       ib->quarantine_dir, shown, strerror(errno));
    return fileio_sync_dir(ib->quarantinefd, ib->quarantine_dir, err);
}

/* Whether name is a quarantined file: not hidden, not a .reason file. */
static bool quarantined_name(const char *name)
{
    size_t len = strlen(name);

    return name[0] != '.' && !(len >= 7 && strcmp(name + len - 7, ".reason") == 0);
}

/* The reason in dfd/NAME.reason (its first line, after "reason: "), or a
 * note that there is none. */
static char *read_reason(int dfd, const char *name)
{
    char file[NAME_MAX + 1], buf[REASON_MAX * 4 + 64], shown[REASON_MAX * 4 + 64];
    const char *why = "(no reason file)";
    size_t len;
    owl_err err;
    int rc = (size_t)snprintf(file, sizeof(file), "%s.reason", name) < sizeof(file)
                 ? fileio_read_small(dfd, file, buf, sizeof(buf) - 1, &len, &err)
                 : 1;

    if (rc == 0) {
        buf[strcspn(buf, "\n")] = '\0';
        why = strncmp(buf, "reason: ", 8) == 0 ? buf + 8 : buf;
        /* anyone who can write to the inbox can write a .reason file there */
        why = text_clean(why, REASON_MAX * 4, shown, sizeof(shown));
    } else if (rc < 0) {
        /* one too large (not owlsync's), a FIFO, a link, one this user may not read */
        snprintf(buf, sizeof(buf), "(its reason file cannot be shown: %s)", err.msg);
        why = text_clean(buf, REASON_MAX * 4, shown, sizeof(shown));
    }
    return strdup(why);
}

static int cmp_entries(const void *a, const void *b)
{
    return strcmp(((const inbox_entry *)a)->name, ((const inbox_entry *)b)->name);
}

static void entries_free(inbox_entry *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].name);
        free(v[i].reason);
    }
    free(v);
}

/* What a listing of one directory gathers. */
typedef enum { LIST_INBOX, LIST_WORK, LIST_QUARANTINE } list_kind;

typedef struct list_out {
    inbox_entry *v;
    size_t n, count, max;
    size_t settling; /* counted */
} list_out;

/* Adds an entry (name cleaned, reason copied) to o when there is room; counts it. */
static int list_add(list_out *o, const char *name, const char *reason, const struct stat *st, bool settling,
                    owl_err *err)
{
    char clean[4 * NAME_MAX + 8];
    inbox_entry *e;

    o->count++;
    o->settling += settling;
    if (o->n >= o->max)
        return 0;
    e = &o->v[o->n];
    memset(e, 0, sizeof(*e));
    e->name = strdup(text_clean(name, NAME_MAX, clean, sizeof(clean)));
    e->reason = reason != NULL ? strdup(reason) : NULL;
    if (e->name == NULL || (reason != NULL && e->reason == NULL)) {
        free(e->name);
        free(e->reason);
        return err_oom(err);
    }
    if (st != NULL) {
        e->size = st->st_size;
        e->mtime = st->st_mtim.tv_sec;
    }
    e->settling = settling;
    o->n++;
    return 0;
}

/* Why the inbox's scan passes over entry name (lstat'ed into st), or NULL
 * when it takes it. skip1 and skip2 are the names of the inbox's own
 * directories (processed/, quarantine/), not reported. */
static const char *ignored_why(const char *name, const struct stat *st, const char *skip1, const char *skip2)
{
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, INBOX_WORK) == 0 ||
        (skip1 != NULL && strcmp(name, skip1) == 0 && S_ISDIR(st->st_mode)) ||
        (skip2 != NULL && strcmp(name, skip2) == 0 && S_ISDIR(st->st_mode)))
        return "";
    if (name[0] == '.')
        return "hidden (a name starting with '.', as a file still being written has)";
    if (S_ISLNK(st->st_mode))
        return "a symbolic link (never followed)";
    if (!S_ISREG(st->st_mode))
        return S_ISDIR(st->st_mode) ? "a directory" : "not a regular file";
    if (!name_ok(name)) {
        size_t len = strlen(name);
        if (len < BUNDLE_SUFFIX_LEN || strcmp(name + len - BUNDLE_SUFFIX_LEN, BUNDLE_SUFFIX) != 0)
            return "not named *" BUNDLE_SUFFIX;
        return "a name too long or with control characters";
    }
    return NULL;
}

/* Lists at/path of one kind: bundles waiting (and what is ignored, into
 * ign), files in .work/, or quarantined files with their reasons. Counts
 * every one (up to COUNT_MAX entries read) and lists at most o->max of each,
 * by name. A missing directory is empty when missing_ok. */
static int list_dir(int at, const char *path, int oflags, const char *shown, list_kind kind, bool missing_ok,
                    const inbox_config *ic, time_t now, list_out *o, list_out *ign, owl_err *err)
{
    int fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | oflags);
    const char *skip1 = NULL, *skip2 = NULL;
    size_t entries = 0;
    DIR *d;
    int result = -1;

    if (fd < 0) {
        if (errno == ENOENT && missing_ok)
            return 0;
        return err_set(err, OWL_ERUNTIME, "cannot open directory %s: %s", shown, strerror(errno));
    }
    d = fdopendir(fd);
    if (d == NULL) {
        err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", shown, strerror(errno));
        close(fd);
        return -1;
    }
    if (kind == LIST_INBOX && ic != NULL) {
        /* processed/ and quarantine/ directly under the inbox are its own */
        size_t n = strlen(path);
        if (ic->processed_dir != NULL && strncmp(ic->processed_dir, path, n) == 0 && ic->processed_dir[n] == '/')
            skip1 = ic->processed_dir + n + 1;
        if (ic->quarantine_dir != NULL && strncmp(ic->quarantine_dir, path, n) == 0 && ic->quarantine_dir[n] == '/')
            skip2 = ic->quarantine_dir + n + 1;
        else if (ic->quarantine_dir == NULL)
            skip2 = "quarantine";
    }
    while (entries++ < COUNT_MAX) {
        struct dirent *de;
        struct stat st;
        const char *why;

        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", shown, strerror(errno));
                goto out;
            }
            break;
        }
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (kind == LIST_QUARANTINE) {
            if (!quarantined_name(de->d_name) || !S_ISREG(st.st_mode))
                continue;
            {
                char *reason = read_reason(dirfd(d), de->d_name);
                int rc = reason != NULL ? list_add(o, de->d_name, reason, &st, false, err) : err_oom(err);
                free(reason);
                if (rc < 0)
                    goto out;
            }
            continue;
        }
        if (kind == LIST_INBOX) {
            why = ignored_why(de->d_name, &st, skip1, skip2);
            if (why != NULL) {
                if (why[0] != '\0' && list_add(ign, de->d_name, why, &st, false, err) < 0)
                    goto out;
                continue;
            }
        } else if (!name_ok(de->d_name) || !S_ISREG(st.st_mode)) {
            continue;
        }
        {
            bool settling = kind == LIST_INBOX && ic != NULL && ic->settle_time > 0 &&
                            st.st_mtim.tv_sec > now - ic->settle_time;
            if (list_add(o, de->d_name, NULL, &st, settling, err) < 0)
                goto out;
        }
    }
    result = 0;
out:
    closedir(d);
    return result;
}

/* Allocates room for max entries; sorts what was listed. */
static int out_init(list_out *o, size_t max, owl_err *err)
{
    memset(o, 0, sizeof(*o));
    o->max = max;
    o->v = calloc(max ? max : 1, sizeof(*o->v));
    return o->v == NULL ? err_oom(err) : 0;
}

static void out_take(list_out *o, inbox_entry **v, size_t *n, size_t *count)
{
    qsort(o->v, o->n, sizeof(*o->v), cmp_entries);
    *v = o->v;
    *n = o->n;
    *count = o->count;
    o->v = NULL;
}

int inbox_list(const inbox_config *ic, size_t max, inbox_listing *l, owl_err *err)
{
    char *work = NULL, *quarantine = NULL;
    list_out wait, ign, wk, q;
    time_t now = time(NULL);
    int result = -1;

    memset(l, 0, sizeof(*l));
    memset(&wait, 0, sizeof(wait));
    memset(&ign, 0, sizeof(ign));
    memset(&wk, 0, sizeof(wk));
    memset(&q, 0, sizeof(q));
    if (ic == NULL || ic->dir == NULL || ic->dir[0] == '\0')
        return err_set(err, OWL_EUSAGE, "no inbox directory configured");
    work = path_join(ic->dir, INBOX_WORK, NULL);
    quarantine = ic->quarantine_dir ? path_dup(ic->quarantine_dir) : path_join(ic->dir, "quarantine", NULL);
    if (work == NULL || quarantine == NULL) {
        err_oom(err);
        goto out;
    }
    if (out_init(&wait, max, err) < 0 || out_init(&ign, max, err) < 0 || out_init(&wk, max, err) < 0 ||
        out_init(&q, max, err) < 0)
        goto out;
    if (list_dir(AT_FDCWD, ic->dir, 0, ic->dir, LIST_INBOX, false, ic, now, &wait, &ign, err) < 0 ||
        list_dir(AT_FDCWD, work, O_NOFOLLOW, work, LIST_WORK, true, ic, now, &wk, NULL, err) < 0 ||
        list_dir(AT_FDCWD, quarantine, O_NOFOLLOW, quarantine, LIST_QUARANTINE, true, ic, now, &q, NULL, err) < 0)
        goto out;
    l->settling_count = wait.settling;
    out_take(&wait, &l->waiting, &l->nwaiting, &l->waiting_count);
    out_take(&ign, &l->ignored, &l->nignored, &l->ignored_count);
    out_take(&wk, &l->working, &l->nworking, &l->working_count);
    out_take(&q, &l->quarantined, &l->nquarantined, &l->quarantined_count);
    result = 0;
out:
    entries_free(wait.v, wait.n);
    entries_free(ign.v, ign.n);
    entries_free(wk.v, wk.n);
    entries_free(q.v, q.n);
    if (result < 0)
        inbox_listing_free(l);
    free(quarantine);
    free(work);
    return result;
}

void inbox_listing_free(inbox_listing *l)
{
    entries_free(l->waiting, l->nwaiting);
    entries_free(l->working, l->nworking);
    entries_free(l->quarantined, l->nquarantined);
    entries_free(l->ignored, l->nignored);
    memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------ retry state */

#define RETRY_HEADER "owlsync-retries 1\n"
#define RETRY_LINE_MAX (NAME_LEN_MAX + 3 * 24 + 4 * INBOX_RETRY_ERROR_MAX + 16)
#define RETRY_FILE_MAX (sizeof(RETRY_HEADER) + (size_t)INBOX_RETRIES_MAX * RETRY_LINE_MAX)
#define RETRY_SHOWN_MAX (4 * INBOX_RETRY_ERROR_MAX + 4) /* bytes of a cleaned error, as written */

static char *state_path(const char *state_dir)
{
    return path_join(state_dir, INBOX_RETRY_FILE, NULL);
}

/* Formats r[0..n) as a retry state file into buf (cap bytes); its length. */
static size_t retries_format(const inbox_retry *r, size_t n, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "%s", RETRY_HEADER);

    for (size_t i = 0; i < n && i < INBOX_RETRIES_MAX; i++) {
        char shown[4 * INBOX_RETRY_ERROR_MAX + 8];
        int w;
        if (!name_ok(r[i].name))
            continue;
        w = snprintf(buf + len, cap - len, "%s\t%u\t%lld\t%lld\t%s\n", r[i].name, r[i].attempts,
                     (long long)r[i].next_try, (long long)r[i].last_try,
                     text_clean(r[i].error ? r[i].error : "", INBOX_RETRY_ERROR_MAX, shown, sizeof(shown)));
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
    return len;
}

int inbox_retries_write(const char *state_dir, const inbox_retry *r, size_t n, owl_err *err)
{
    char *buf = malloc(RETRY_FILE_MAX), *path = state_path(state_dir);
    int result = -1;

    if (buf == NULL || path == NULL) {
        err_oom(err);
        goto out;
    }
    result = fileio_write_path(path, buf, retries_format(r, n, buf, RETRY_FILE_MAX), 0640, FILEIO_REPLACE, err);
out:
    free(path);
    free(buf);
    return result;
}

void inbox_retries_free(inbox_retry *r, size_t n)
{
    for (size_t i = 0; r != NULL && i < n; i++) {
        free(r[i].name);
        free(r[i].error);
        free(r[i].agent);
    }
    free(r);
}

/* A number field of a retry line; false when it is not one. */
static bool retry_number(const char *s, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    return end != s && *end == '\0' && errno == 0 && *out >= 0;
}

/* Called with each well-formed line of a retry state file (its fields in
 * r, borrowed: the callee copies what it keeps); -1 stops the parse. */
typedef int (*retry_line_fn)(const inbox_retry *r, void *ctx, owl_err *err);

/* Parses the retry state file in buf (NUL-terminated, modified): checks
 * its header, then calls fn with each well-formed line, at most
 * INBOX_RETRIES_MAX of them; malformed lines are skipped. */
static int retries_parse(char *buf, const char *shown, retry_line_fn fn, void *ctx, owl_err *err)
{
    char *line, *next;
    size_t n = 0;

    if (strncmp(buf, RETRY_HEADER, strlen(RETRY_HEADER)) != 0)
        return err_set(err, OWL_ERUNTIME, "%s is not a retry state file", shown);
    for (line = buf + strlen(RETRY_HEADER); *line != '\0' && n < INBOX_RETRIES_MAX; line = next) {
        char *f[5];
        long long attempts, next_try, last_try;
        size_t k = 0;
        inbox_retry r;

        next = strchr(line, '\n');
        if (next == NULL)
            break; /* a line without its end is not whole */
        *next++ = '\0';
        f[k++] = line;
        for (char *p = line; *p != '\0' && k < 5; p++) {
            if (*p == '\t') {
                *p = '\0';
                f[k++] = p + 1;
            }
        }
        if (k != 5 || !name_ok(f[0]) || !retry_number(f[1], &attempts) || attempts > UINT32_MAX ||
            !retry_number(f[2], &next_try) || !retry_number(f[3], &last_try))
            continue;
        memset(&r, 0, sizeof(r));
        r.name = f[0];
        r.error = f[4];
        r.attempts = (unsigned)attempts;
        r.next_try = (time_t)next_try;
        r.last_try = (time_t)last_try;
        if (fn(&r, ctx, err) < 0)
            return -1;
        n++;
    }
    return 0;
}

/* The lines of the state_dir file, gathered into an array. */
typedef struct retry_list {
    inbox_retry *v;
    size_t n;
} retry_list;

static int retry_append(const inbox_retry *in, void *ctx, owl_err *err)
{
    retry_list *l = ctx;
    inbox_retry *r = &l->v[l->n];

    r->name = strdup(in->name);
    r->error = strdup(in->error);
    l->n++; /* freed with the rest, whole or not */
    if (r->name == NULL || r->error == NULL)
        return err_oom(err);
    for (char *p = r->error; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?'; /* written cleaned; a hand edit may not be */
    }
    r->attempts = in->attempts;
    r->next_try = in->next_try;
    r->last_try = in->last_try;
    return 0;
}

int inbox_retries_read(const char *state_dir, inbox_retry **out, size_t *nout, owl_err *err)
{
    char *buf = malloc(RETRY_FILE_MAX + 1), *path = state_path(state_dir);
    retry_list l = {NULL, 0};
    size_t len = 0;
    int result = -1, rc;

    *out = NULL;
    *nout = 0;
    if (buf == NULL || path == NULL) {
        err_oom(err);
        goto out;
    }
    {
        int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            result = errno == ENOENT ? 0 : err_set(err, OWL_ERUNTIME, "cannot open %s: %s", state_dir, strerror(errno));
            goto out;
        }
        rc = fileio_read_small(dfd, INBOX_RETRY_FILE, buf, RETRY_FILE_MAX, &len, err);
        close(dfd);
    }
    if (rc != 0) {
        result = rc > 0 ? 0 : -1;
        goto out;
    }
    l.v = calloc(INBOX_RETRIES_MAX, sizeof(*l.v));
    if (l.v == NULL) {
        err_oom(err);
        goto out;
    }
    if (retries_parse(buf, path, retry_append, &l, err) < 0)
        goto out;
    *out = l.v;
    *nout = l.n;
    l.v = NULL;
    result = 0;
out:
    inbox_retries_free(l.v, l.n);
    free(path);
    free(buf);
    return result;
}

/* ------------------------------------------------- retry state, shared */

void inbox_agent_id(const char *state_dir, char *out, size_t outsz)
{
    char host[256] = "", *abs = state_dir != NULL ? realpath(state_dir, NULL) : NULL;
    const char *dir = abs != NULL ? abs : state_dir != NULL ? state_dir : "";
    uint32_t h = 2166136261u;
    size_t len;

    if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    len = strnlen(host, INBOX_AGENT_HOST_MAX);
    host[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            host[i] = '_';
    }
    for (const unsigned char *p = (const unsigned char *)dir; *p != '\0'; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    snprintf(out, outsz, "%s-%08x", host, (unsigned)h);
    free(abs);
}

/* Whether name is an agent's shared retry file, .retries.AGENT with an id
 * inbox_agent_id could have made; the id goes to *agent. */
static bool shared_retry_name(const char *name, const char **agent)
{
    const size_t plen = strlen(INBOX_RETRY_SHARED);
    size_t len;

    if (strncmp(name, INBOX_RETRY_SHARED, plen) != 0)
        return false;
    *agent = name + plen;
    len = strnlen(*agent, INBOX_AGENT_ID_MAX);
    if (len == 0 || len >= INBOX_AGENT_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)(*agent)[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

int inbox_retries_publish(inbox *ib, const char *agent, const inbox_retry *r, size_t n, owl_err *err)
{
    char name[NAME_MAX + 1], *buf = NULL, *shown = path_join(ib->dir, INBOX_WORK, NULL);
    const char *check;
    int result = -1;

    if (shown == NULL)
        return err_oom(err);
    if ((size_t)snprintf(name, sizeof(name), "%s%s", INBOX_RETRY_SHARED, agent) >= sizeof(name) ||
        !shared_retry_name(name, &check)) {
        err_set(err, OWL_EUSAGE, "cannot publish retry state: bad agent id");
        goto out;
    }
    if (n == 0) {
        if (unlinkat(ib->workfd, name, 0) < 0 && errno != ENOENT) {
            err_set(err, OWL_ERUNTIME, "cannot remove %s/%s: %s", shown, name, strerror(errno));
            goto out;
        }
        result = 0;
        goto out;
    }
    buf = malloc(RETRY_FILE_MAX);
    if (buf == NULL) {
        err_oom(err);
        goto out;
    }
    /* 0644: agents on other hosts, maybe under other users, read it */
    result = fileio_write_atomic(ib->workfd, shown, name, buf, retries_format(r, n, buf, RETRY_FILE_MAX), 0644,
                                 FILEIO_REPLACE, NULL, 0, err);
out:
    free(buf);
    free(shown);
    return result;
}

/* What the lines of one shared file go into. */
typedef struct shared_ctx {
    inbox_retry_slot slot;
    void *ctx;
    inbox_retry *found;
    size_t nfound;
    const char *agent;
    time_t written;
} shared_ctx;

/* Whether text_clean would leave s as it is but for doubling its
 * backslashes: text an agent wrote cleaned, not to be escaped twice. */
static bool written_clean(const char *s, const char *cleaned)
{
    for (; *s != '\0'; s++, cleaned++) {
        if (*cleaned != *s || (*s == '\\' && *++cleaned != '\\'))
            return false;
    }
    return *cleaned == '\0';
}

static int shared_keep(const inbox_retry *in, void *ctx, owl_err *err)
{
    shared_ctx *s = ctx;
    char name[4 * NAME_MAX + 8], error[4 * RETRY_SHOWN_MAX + 8];
    inbox_retry *r, next;
    long i;

    /* anyone who can write to the inbox can write these */
    text_clean(in->name, NAME_MAX, name, sizeof(name));
    i = s->slot(name, s->ctx);
    if (i < 0 || (size_t)i >= s->nfound)
        return 0;
    r = &s->found[i];
    if (r->name != NULL && in->last_try <= r->last_try)
        return 0;
    next = *in;
    next.name = strdup(name);
    /* written cleaned by an agent; other text (a hand edit, a planted file) is cleaned here */
    text_clean(in->error, RETRY_SHOWN_MAX, error, sizeof(error));
    next.error = strdup(written_clean(in->error, error) ? in->error : error);
    next.agent = strdup(s->agent);
    next.written = s->written;
    if (next.name == NULL || next.error == NULL || next.agent == NULL) {
        free(next.name);
        free(next.error);
        free(next.agent);
        return err_oom(err);
    }
    free(r->name);
    free(r->error);
    free(r->agent);
    *r = next;
    return 0;
}

/* Notes a shared file passed over: counted, the first reason kept. */
static void shared_skip(inbox_retries_seen *seen, const char *msg)
{
    if (seen->skipped++ == 0) {
        size_t len = strnlen(msg, sizeof(seen->first_error) - 1);
        memcpy(seen->first_error, msg, len);
        seen->first_error[len] = '\0';
    }
}

int inbox_retries_shared(const char *dir, inbox_retry_slot slot, void *ctx, inbox_retry *found, size_t nfound,
                         inbox_retries_seen *seen, owl_err *err)
{
    char *work = path_join(dir, INBOX_WORK, NULL), *buf = NULL;
    size_t entries = 0;
    DIR *d = NULL;
    int fd = -1, result = -1;

    memset(seen, 0, sizeof(*seen));
    if (work == NULL)
        return err_oom(err);
    fd = open(work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        result = errno == ENOENT ? 0 : err_set(err, OWL_ERUNTIME, "cannot open directory %s: %s", work, strerror(errno));
        goto out;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", work, strerror(errno));
        close(fd);
        goto out;
    }
    buf = malloc(RETRY_FILE_MAX + 1);
    if (buf == NULL) {
        err_oom(err);
        goto out;
    }
    while (entries++ < COUNT_MAX) {
        char shown[PATH_MAX];
        const char *agent;
        struct dirent *de;
        struct stat st;
        shared_ctx s;
        owl_err ferr;
        size_t len;
        int rc;

        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                err_set(err, OWL_ERUNTIME, "cannot read directory %s: %s", work, strerror(errno));
                goto out;
            }
            break;
        }
        if (!shared_retry_name(de->d_name, &agent))
            continue;
        snprintf(shown, sizeof(shown), "%s/%s", work, de->d_name);
        if (seen->files >= INBOX_AGENTS_MAX) {
            char msg[PATH_MAX + 64];
            snprintf(msg, sizeof(msg), "%s: more than %d agents' retry files; not read", shown, INBOX_AGENTS_MAX);
            shared_skip(seen, msg);
            continue;
        }
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* gone since */
        rc = fileio_read_small(dirfd(d), de->d_name, buf, RETRY_FILE_MAX, &len, &ferr);
        if (rc > 0)
            continue;
        if (rc == 0) {
            s = (shared_ctx){slot, ctx, found, nfound, agent, st.st_mtim.tv_sec};
            rc = retries_parse(buf, shown, shared_keep, &s, &ferr);
        }
        if (rc < 0) {
            char msg[OWL_ERR_MAX + PATH_MAX];
            if (strcmp(ferr.msg, "out of memory") == 0) {
                *err = ferr;
                goto out;
            }
            if (strncmp(ferr.msg, "cannot read ", 12) == 0) /* fileio names the file alone */
                snprintf(msg, sizeof(msg), "cannot read %s/%s", work, ferr.msg + 12);
            else
                snprintf(msg, sizeof(msg), "%s", ferr.msg);
            shared_skip(seen, msg);
            continue;
        }
        seen->files++;
    }
    result = 0;
out:
    if (d != NULL)
        closedir(d);
    free(buf);
    free(work);
    return result;
}

bool inbox_is_local(const char *dir)
{
    /* filesystems whose other clients write behind inotify's back */
    static const uint32_t remote[] = {
        0x6969,     /* NFS */
        0x517B,     /* SMB */
        0xFE534D42, /* SMB2 */
        0xFF534D42, /* CIFS */
        0x65735546, /* FUSE (sshfs, virtiofs, …) */
        0x00C36400, /* Ceph */
        0x01021997, /* 9P */
        0x5346414F, /* AFS */
        0x6B414653, /* kAFS */
        0x73757245, /* Coda */
        0x564C,     /* NCP */
        0x7461636F, /* OCFS2 */
        0x01161970, /* GFS2 */
        0x0BD00BD0, /* Lustre */
        0x47504653, /* GPFS */
    };
    struct statfs sf;

    if (dir == NULL || statfs(dir, &sf) < 0)
        return false; /* unknown: poll, to be safe */
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        if ((uint32_t)sf.f_type == remote[i])
            return false;
    }
    return true;
}
