/* owlsync exporter: one REPEATABLE READ, READ ONLY snapshot of the chosen datasets,
 * streamed with COPY TO into spool files, signed, packed and published atomically. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "owlsync/fileio.h"
#include "owlsync/copytext.h"
#include "owlsync/db.h"
#include "owlsync/exporter.h"
#include "owlsync/keys.h"
#include "owlsync/log.h"
#include "owlsync/manifest.h"
#include "owlsync/version.h"

#define SPOOL_BUF (256 * 1024)
#define STATE_MAX 4096

/* A part's rows on their way to the bundle: buffered, then written to an
 * anonymous file, compressed into one frame as they come when `framed` is
 * set (the bundle takes the frame as it is), else as they are. */
typedef struct spool {
    int fd;
    char *buf;
    size_t used;
    uint64_t bytes;           /* rows' bytes, unpacked */
    bool framed;              /* compress into a frame (a table read in one part) */
    bundle_compression comp;
    int level;
    bundle_frame *frame;      /* open while rows come */
    uint64_t zbytes;          /* the frame's bytes in the file, once ended */
} spool;

#define LANES (KEYS_ROW_DIGEST_LEN / 8)
/* A table of at least this many 8 kB blocks is read in parts, one per
 * connection, each the rows of every n-th dataset. */
#define PART_MIN_BLOCKS 512

typedef struct table_out {
    const cfg_table *cfg;
    manifest_table *mt;       /* owned by the manifest */
    int ds_field;             /* the dataset column's field in a row, or -1 */
    uint64_t lanes[LANES];    /* order-independent sum of row digests */
    size_t first, nparts;     /* its parts, in order, in the part array */
    uint64_t blocks;          /* its size when the parts were planned */
} table_out;

/* One COPY into one spool: a table's rows of all its datasets, or of a group. */
typedef struct part {
    table_out *t;
    const char *datasets_txt; /* the datasets it reads, as array text */
    spool sp;
    uint64_t rows;
    uint64_t lanes[LANES];
    keys_hash *h;             /* the table's file digest, when it is one part */
} part;

typedef struct progress {
    bool on;
    struct timespec start, last;
    uint64_t rows, bytes;
} progress;

/* Distinct dataset names: open addressing, FNV-1a. */
typedef struct name_set {
    char **slot;              /* cap entries; NULL is free */
    size_t cap, n;
} name_set;

/* The parts, shared by the threads that read them. */
typedef struct copy_run {
    const cfg *c;
    bundle_compression comp; /* of the frames the spools are written in */
    int level;
    const char *datasets_txt; /* every dataset, as array text (NULL: collect) */
    /* With one connection, the job's names and patterns select the rows in
     * the COPY itself and the datasets are collected from the rows read: no
     * scan of its own to find them first. */
    bool collect;
    cfg_list names;           /* the job's dataset names (each must match a row) */
    char *names_txt, *patterns_txt; /* array text; NULL when there is none */
    name_set found;
    char *last;               /* the raw dataset field of the last row */
    size_t lastlen, lastcap;
    char *groups[16];         /* every n-th dataset, n = ngroups, as array text */
    size_t ngroups;
    const char *snapshot;     /* exported snapshot the other connections take */
    part *parts;
    size_t nparts;
    size_t *order;            /* parts by size, largest first */
    pthread_mutex_t mu;       /* guards next, failed, err and prog */
    size_t next;
    bool failed;
    owl_err err;              /* the first failure */
    progress *prog;
} copy_run;

/* ---------------------------------------------------------------- files */

/* fsync of a directory can fail with EINVAL on CIFS: log it, never fail for it. */
static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || fsync(fd) < 0)
        log_warn("cannot fsync directory %s: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* An anonymous temporary file for spooling, removed when closed. */
static int open_spool_fd(owl_err *err)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    snprintf(path, sizeof(path), "%s/owlsync-spool-XXXXXX", dir);
    fd = mkstemp(path);
    if (fd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot create a spool file in %s: %s", dir, strerror(errno));
    unlink(path);
    return fd;
}

static int spool_open(spool *sp, owl_err *err)
{
    sp->buf = malloc(SPOOL_BUF);
    if (sp->buf == NULL)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    sp->fd = open_spool_fd(err);
    return sp->fd < 0 ? -1 : 0;
}

/* Writes len bytes to the spool's file: into its frame, or as they are. */
static int spool_out(spool *sp, const char *p, size_t len, owl_err *err)
{
    if (sp->framed) {
        if ((sp->frame == NULL && bundle_frame_open(sp->fd, sp->comp, sp->level, &sp->frame, err) < 0) ||
            bundle_frame_write(sp->frame, p, len, err) < 0)
            return err_prefix(err, "spool");
    } else if (fileio_write_all(sp->fd, p, len) < 0) {
        return err_set(err, OWL_ERUNTIME, "cannot write spool file: %s", strerror(errno));
    }
    return 0;
}

static int spool_flush(spool *sp, owl_err *err)
{
    if (sp->used > 0 && spool_out(sp, sp->buf, sp->used, err) < 0)
        return -1;
    sp->used = 0;
    return 0;
}

/* Writes what is buffered and ends the frame: the spool is complete. */
static int spool_finish(spool *sp, owl_err *err)
{
    bundle_frame *f;

    if (spool_flush(sp, err) < 0)
        return -1;
    f = sp->frame;
    sp->frame = NULL;
    if (f != NULL && bundle_frame_close(f, &sp->zbytes, err) < 0)
        return err_prefix(err, "spool");
    free(sp->buf); /* written: its buffer goes, whatever the number of parts */
    sp->buf = NULL;
    return 0;
}

static int spool_write(spool *sp, const char *p, size_t len, owl_err *err)
{
    if (len > SPOOL_BUF - sp->used) {
        if (spool_flush(sp, err) < 0)
            return -1;
        if (len >= SPOOL_BUF) {
            if (spool_out(sp, p, len, err) < 0)
                return -1;
            sp->bytes += len;
            return 0;
        }
    }
    memcpy(sp->buf + sp->used, p, len);
    sp->used += len;
    sp->bytes += len;
    return 0;
}

static void spool_close(spool *sp)
{
    bundle_frame_abort(sp->frame);
    sp->frame = NULL;
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = -1;
    free(sp->buf);
    sp->buf = NULL;
}

/* ---------------------------------------------------------------- state */

typedef struct job_state {
    uint64_t sequence;       /* last published */
    char digest[KEYS_HASH_HEX_LEN + 1]; /* content of the last published bundle */
} job_state;

static int state_path(const cfg *c, const char *job, const char *suffix, char *out, size_t len)
{
    return (size_t)snprintf(out, len, "%s/export-%s.%s", c->state_dir, job, suffix) >= len ? -1 : 0;
}

static int state_read(const char *path, job_state *st, owl_err *err)
{
    char buf[STATE_MAX];
    ssize_t n;
    int fd;
    char *line, *save = NULL;

    memset(st, 0, sizeof(*st));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return err_set(err, OWL_ERUNTIME, "cannot read %s: %s", path, strerror(errno));
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return err_set(err, OWL_ERUNTIME, "cannot read %s: %s", path, strerror(errno));
    buf[n] = '\0';
    for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "sequence ", 9) == 0) {
            char *end;
            errno = 0;
            st->sequence = strtoull(line + 9, &end, 10);
            if (errno != 0 || *end != '\0')
                return err_set(err, OWL_ERUNTIME, "%s is damaged (sequence)", path);
        } else if (strncmp(line, "digest ", 7) == 0 && strlen(line + 7) == KEYS_HASH_HEX_LEN) {
            memcpy(st->digest, line + 7, KEYS_HASH_HEX_LEN + 1);
        }
    }
    return 0;
}

/* Writes path atomically: tmp, fsync, rename, fsync the directory. */
static int write_file_atomic(const char *dir, const char *path, const char *text, owl_err *err)
{
    char tmp[4200];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot write %s: %s", tmp, strerror(errno));
    if (fileio_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        return err_set(err, OWL_ERUNTIME, "cannot write %s: %s", tmp, strerror(saved));
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int saved = errno;
        unlink(tmp);
        return err_set(err, OWL_ERUNTIME, "cannot rename %s: %s", tmp, strerror(saved));
    }
    fsync_dir(dir);
    return 0;
}

static int state_write(const cfg *c, const char *path, const job_state *st, owl_err *err)
{
    char text[256];

    snprintf(text, sizeof(text), "sequence %llu\ndigest %s\n", (unsigned long long)st->sequence, st->digest);
    return write_file_atomic(c->state_dir, path, text, err);
}

/* Makes state_dir when missing and takes the job's lock (held until lockfd closes). */
static int state_lock(const cfg *c, const char *job, int *lockfd, owl_err *err)
{
    char path[4096];

    if (mkdir(c->state_dir, 0750) < 0 && errno != EEXIST)
        return err_set(err, OWL_ERUNTIME, "cannot create state_dir %s: %s\nHINT: set [owlsync] state_dir to a directory owlsync may write",
                       c->state_dir, strerror(errno));
    if (state_path(c, job, "lock", path, sizeof(path)) < 0)
        return err_set(err, OWL_EUSAGE, "state_dir path too long");
    *lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (*lockfd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot open %s: %s\nHINT: set [owlsync] state_dir to a directory owlsync may write",
                       path, strerror(errno));
    if (flock(*lockfd, LOCK_EX | LOCK_NB) < 0)
        return err_set(err, OWL_ERUNTIME, "export job %s is already running (lock %s held)", job, path);
    return 0;
}

/* ---------------------------------------------------------------- postgres */

/* Reads the table's columns from the catalog and fills the manifest's list:
 * every live column but the configured `generated` ones and generated (stored)
 * columns. Checks the dataset column and the generated names exist. */
static int table_columns(PGconn *conn, const cfg *c, table_out *t, owl_err *err)
{
    const char *params[2] = {c->schema, t->cfg->name};
    PGresult *res;
    int rows;
    int rc = -1;
    bool have_ds = t->cfg->dataset_column[0] == '\0';

    res = db_exec(conn,
                  "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> ''"
                  "  FROM pg_catalog.pg_attribute a"
                  "  JOIN pg_catalog.pg_class r ON r.oid = a.attrelid"
                  "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                  " WHERE n.nspname = $1 AND r.relname = $2 AND r.relkind IN ('r', 'p')"
                  "   AND a.attnum > 0 AND NOT a.attisdropped"
                  " ORDER BY a.attnum",
                  2, params, PGRES_TUPLES_OK, err, "cannot read the source catalog");
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    if (rows == 0) {
        err_set(err, OWL_EUSAGE, "table %s.%s does not exist in the source database (or is not visible to this role)",
                c->schema, t->cfg->name);
        goto out;
    }
    for (size_t g = 0; g < t->cfg->generated.n; g++) {
        bool found = false;
        for (int i = 0; i < rows && !found; i++)
            found = strcmp(PQgetvalue(res, i, 0), t->cfg->generated.v[g]) == 0;
        if (!found) {
            err_set(err, OWL_EUSAGE, "[table %s] generated: column %s does not exist in %s.%s", t->cfg->name,
                    t->cfg->generated.v[g], c->schema, t->cfg->name);
            goto out;
        }
    }
    for (int i = 0; i < rows; i++) {
        const char *name = PQgetvalue(res, i, 0);
        if (strcmp(PQgetvalue(res, i, 2), "t") == 0 || cfg_list_has(&t->cfg->generated, name))
            continue;
        if (!manifest_valid_identifier(name)) {
            err_set(err, OWL_EUSAGE, "column \"%s\" of %s has a name owlsync cannot carry\nHINT: list it under generated to leave it out",
                    name, t->cfg->name);
            goto out;
        }
        if (strcmp(name, t->cfg->dataset_column) == 0)
            have_ds = true;
        if (manifest_table_add_column(t->mt, name, PQgetvalue(res, i, 1)) < 0) {
            err_set(err, OWL_ERUNTIME, "out of memory");
            goto out;
        }
    }
    if (!have_ds) {
        err_set(err, OWL_EUSAGE, "[table %s] dataset_column: column %s does not exist in %s.%s", t->cfg->name,
                t->cfg->dataset_column, c->schema, t->cfg->name);
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

/* Finds the datasets the job's names and patterns select, in every chosen table
 * with a dataset column; fills the manifest and the owlsync.datasets setting.
 * A name that matches nothing is an error, as is a selection of nothing. */
static uint64_t name_hash(const char *v, size_t len)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)v[i]) * 1099511628211ULL;
    return h;
}

static char **name_set_slot(const name_set *s, const char *v, size_t len)
{
    size_t i = (size_t)name_hash(v, len) & (s->cap - 1);

    while (s->slot[i] != NULL && !(strncmp(s->slot[i], v, len) == 0 && s->slot[i][len] == '\0'))
        i = (i + 1) & (s->cap - 1);
    return &s->slot[i];
}

static bool name_set_has(const name_set *s, const char *v)
{
    return s->cap > 0 && *name_set_slot(s, v, strlen(v)) != NULL;
}

static int name_set_add(name_set *s, const char *v, size_t len)
{
    char **at;

    if (2 * (s->n + 1) > s->cap) {
        name_set grown = {calloc(s->cap ? 2 * s->cap : 1024, sizeof(char *)), s->cap ? 2 * s->cap : 1024, s->n};
        if (grown.slot == NULL)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (s->slot[i] != NULL)
                *name_set_slot(&grown, s->slot[i], strlen(s->slot[i])) = s->slot[i];
        }
        free(s->slot);
        *s = grown;
    }
    at = name_set_slot(s, v, len);
    if (*at == NULL) {
        if ((*at = strndup(v, len)) == NULL)
            return -1;
        s->n++;
    }
    return 0;
}

static void name_set_free(name_set *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

/* Notes the dataset of one COPY row (with its newline) in run->found. Rows
 * come grouped by dataset as a rule: a repeat of the last one costs a compare. */
static int collect_dataset(copy_run *run, const table_out *t, const char *row, size_t len, owl_err *err)
{
    const char *f = row, *end = row + (len > 0 ? len - 1 : 0), *tab;
    size_t flen;

    for (int k = 0; k < t->ds_field; k++) {
        tab = memchr(f, '\t', (size_t)(end - f));
        if (tab == NULL)
            return err_set(err, OWL_ERUNTIME, "%s: a row with too few fields", t->cfg->name);
        f = tab + 1;
    }
    tab = memchr(f, '\t', (size_t)(end - f));
    flen = (size_t)((tab != NULL ? tab : end) - f);
    if (flen == run->lastlen && run->last != NULL && memcmp(f, run->last, flen) == 0)
        return 0;
    if (flen + 1 > run->lastcap) {
        char *grown = realloc(run->last, 2 * flen + 1);
        if (grown == NULL)
            return err_set(err, OWL_ERUNTIME, "out of memory");
        run->last = grown;
        run->lastcap = 2 * flen + 1;
    }
    memcpy(run->last, f, flen);
    run->lastlen = flen;
    if (copytext_is_null(f, flen))
        return 0; /* NULL matches no name and no pattern */
    if (memchr(f, '\\', flen) != NULL) {
        char *v = malloc(flen + 1);
        size_t vlen;
        int rc;
        if (v == NULL)
            return err_set(err, OWL_ERUNTIME, "out of memory");
        rc = copytext_unescape(f, flen, v, &vlen, err) < 0 ? -1 : name_set_add(&run->found, v, vlen);
        free(v);
        if (rc < 0)
            return err->code != OWL_OK ? -1 : err_set(err, OWL_ERUNTIME, "out of memory");
        return 0;
    }
    if (name_set_add(&run->found, f, flen) < 0)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    return 0;
}

/* The job's dataset names and its LIKE patterns (the items with a '%'). */
static int split_selection(const exporter_job *job, cfg_list *names, cfg_list *patterns)
{
    for (size_t i = 0; i < job->datasets->n; i++) {
        const char *d = job->datasets->v[i];
        /* cfg_list_split splits at commas; dataset names hold none (they came split). */
        if (cfg_list_split(strchr(d, '%') ? patterns : names, d) < 0)
            return -1;
    }
    return 0;
}

static int resolve_datasets(PGconn *conn, const cfg *c, const exporter_job *job, table_out *tabs, size_t ntabs,
                            manifest *m, owl_err *err)
{
    cfg_list names = {NULL, 0}, patterns = {NULL, 0}, found = {NULL, 0};
    char *names_txt = NULL, *pats_txt = NULL;
    db_sql q = {0};
    PGresult *res = NULL;
    int rc = -1, nglobal = 0;

    if (split_selection(job, &names, &patterns) < 0)
        goto oom;
    names_txt = db_array_text(names.v, names.n);
    pats_txt = db_array_text(patterns.v, patterns.n);
    if (names_txt == NULL || pats_txt == NULL)
        goto oom;
    if (db_set_local(conn, "owlsync.names", names_txt, err) < 0 || db_set_local(conn, "owlsync.patterns", pats_txt, err) < 0)
        goto out;

    /* Names are probed one by one (the dataset columns are indexed in any real
     * metastore); only patterns need a scan. Comparing every row with a long
     * list instead took seconds on a metastore of thousands of datasets. */
    for (size_t i = 0; i < ntabs; i++)
        nglobal += tabs[i].cfg->dataset_column[0] == '\0';
    if ((size_t)nglobal == ntabs) {
        /* Only global tables: they travel whole; datasets name nothing. */
        rc = 0;
        goto out;
    }
    db_sql_add(&q, "SELECT DISTINCT d FROM (SELECT n AS d"
                   " FROM pg_catalog.unnest(pg_catalog.current_setting('owlsync.names')::text[]) n WHERE false");
    for (size_t i = 0; i < ntabs; i++) {
        const char *dscol = tabs[i].cfg->dataset_column;
        if (dscol[0] == '\0')
            continue;
        db_sql_add(&q, " OR EXISTS (SELECT 1 FROM ");
        db_sql_qualified(&q, conn, c->schema, tabs[i].cfg->name);
        db_sql_add(&q, " x WHERE x.");
        db_sql_ident(&q, conn, dscol);
        db_sql_add(&q, "::text = n)");
    }
    for (size_t i = 0; i < ntabs && patterns.n > 0; i++) {
        const char *dscol = tabs[i].cfg->dataset_column;
        if (dscol[0] == '\0')
            continue;
        db_sql_add(&q, " UNION SELECT x.");
        db_sql_ident(&q, conn, dscol);
        db_sql_add(&q, "::text FROM ");
        db_sql_qualified(&q, conn, c->schema, tabs[i].cfg->name);
        db_sql_add(&q, " x WHERE x.");
        db_sql_ident(&q, conn, dscol);
        db_sql_add(&q, "::text LIKE ANY (pg_catalog.current_setting('owlsync.patterns')::text[])");
    }
    db_sql_add(&q, ") s ORDER BY d");
    if (q.failed)
        goto oom;
    res = db_exec(conn, q.s, 0, NULL, PGRES_TUPLES_OK, err, "cannot select the datasets");
    if (res == NULL)
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *d = PQgetvalue(res, i, 0);
        if (manifest_add_dataset(m, d) < 0)
            goto oom;
        found.v = m->datasets;
        found.n = m->ndatasets;
    }
    for (size_t i = 0; i < names.n; i++) {
        if (!cfg_list_has(&found, names.v[i])) {
            err_set(err, OWL_EUSAGE, "dataset %s matches no row in any chosen table", names.v[i]);
            goto out;
        }
    }
    if (m->ndatasets == 0) {
        err_set(err, OWL_EUSAGE, "the dataset patterns match no row in any chosen table");
        goto out;
    }
    rc = 0;
    goto out;
oom:
    err_set(err, OWL_ERUNTIME, "out of memory");
out:
    PQclear(res);
    db_sql_free(&q);
    free(names_txt);
    free(pats_txt);
    cfg_list_free(&names);
    cfg_list_free(&patterns);
    return rc;
}

/* One connection: the COPY selects the rows by the job's names and patterns
 * and the datasets are collected as the rows stream (collect_dataset). */
static int select_in_copy(const exporter_job *job, const table_out *tabs, size_t ntabs, copy_run *run, owl_err *err)
{
    cfg_list patterns = {NULL, 0};
    int rc = -1;

    for (size_t i = 0; i < ntabs; i++)
        run->collect = run->collect || tabs[i].ds_field >= 0;
    if (!run->collect)
        return 0; /* only global tables: they travel whole; datasets name nothing */
    if (split_selection(job, &run->names, &patterns) < 0 ||
        (run->names.n > 0 && (run->names_txt = db_array_text(run->names.v, run->names.n)) == NULL) ||
        (patterns.n > 0 && (run->patterns_txt = db_array_text(patterns.v, patterns.n)) == NULL))
        err_set(err, OWL_ERUNTIME, "out of memory");
    else
        rc = 0;
    cfg_list_free(&patterns);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The collected datasets into the manifest, in byte order. A name that
 * matched no row is an error, as is a selection of nothing. */
static int finish_datasets(copy_run *run, manifest *m, owl_err *err)
{
    char **v = NULL;
    size_t n = 0;
    int rc = -1;

    if (!run->collect)
        return 0;
    for (size_t i = 0; i < run->names.n; i++) {
        if (!name_set_has(&run->found, run->names.v[i])) {
            err_set(err, OWL_EUSAGE, "dataset %s matches no row in any chosen table", run->names.v[i]);
            goto out;
        }
    }
    if (run->found.n == 0) {
        err_set(err, OWL_EUSAGE, "the dataset patterns match no row in any chosen table");
        goto out;
    }
    v = malloc(run->found.n * sizeof(char *));
    if (v == NULL)
        goto oom;
    for (size_t i = 0; i < run->found.cap; i++) {
        if (run->found.slot[i] != NULL)
            v[n++] = run->found.slot[i];
    }
    qsort(v, n, sizeof(char *), cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (manifest_add_dataset(m, v[i]) < 0)
            goto oom;
    }
    rc = 0;
    goto out;
oom:
    err_set(err, OWL_ERUNTIME, "out of memory");
out:
    free(v);
    return rc;
}

static double elapsed(const struct timespec *from, const struct timespec *to)
{
    return (double)(to->tv_sec - from->tv_sec) + (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

static void progress_show(progress *p, const char *table, bool final)
{
    struct timespec now;
    double secs;

    if (!p->on)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!final && elapsed(&p->last, &now) < 0.25)
        return;
    p->last = now;
    secs = elapsed(&p->start, &now);
    fprintf(stderr, "\r\033[Kexport %-20s %10llu rows %9.1f MB %7.1f MB/s", table, (unsigned long long)p->rows,
            (double)p->bytes / 1e6, secs > 0 ? (double)p->bytes / 1e6 / secs : 0.0);
    if (final)
        fputc('\n', stderr);
}

/* Adds rows and bytes to the progress; answers whether another part failed. */
static bool run_note(copy_run *run, const char *table, uint64_t rows, uint64_t bytes)
{
    bool failed;

    pthread_mutex_lock(&run->mu);
    run->prog->rows += rows;
    run->prog->bytes += bytes;
    progress_show(run->prog, table, false);
    failed = run->failed;
    pthread_mutex_unlock(&run->mu);
    return failed;
}

/* Streams the part's selected rows with COPY ... TO STDOUT into its spool,
 * summing per-row digests (for skip_unchanged) and, for a table read in one
 * part, hashing the bytes. */
static int copy_part(PGconn *conn, copy_run *run, part *p, owl_err *err)
{
    const table_out *t = p->t;
    db_sql q = {0};
    PGresult *res = NULL;
    char *row = NULL;
    uint64_t rows = 0, bytes = 0;
    int n, rc = -1;

    db_sql_add(&q, "COPY (SELECT ");
    for (size_t i = 0; i < t->mt->ncolumns; i++) {
        if (i > 0)
            db_sql_add(&q, ", ");
        db_sql_ident(&q, conn, t->mt->columns[i].name);
    }
    db_sql_add(&q, " FROM ");
    db_sql_qualified(&q, conn, run->c->schema, t->cfg->name);
    /* Constant arrays: the planner hashes a list and scans once, where a list
     * it cannot see led it to one index scan per dataset. COPY takes no
     * parameters, so the lists go in as escaped literals. */
    if (t->cfg->dataset_column[0] != '\0' && !run->collect) {
        db_sql_add(&q, " WHERE ");
        db_sql_ident(&q, conn, t->cfg->dataset_column);
        db_sql_add(&q, " = ANY (");
        db_sql_literal(&q, conn, p->datasets_txt);
        db_sql_add(&q, "::text[])");
    } else if (t->cfg->dataset_column[0] != '\0') {
        db_sql_add(&q, " WHERE ");
        if (run->names_txt != NULL) {
            db_sql_ident(&q, conn, t->cfg->dataset_column);
            db_sql_add(&q, "::text = ANY (");
            db_sql_literal(&q, conn, run->names_txt);
            db_sql_add(&q, "::text[])");
        }
        if (run->names_txt != NULL && run->patterns_txt != NULL)
            db_sql_add(&q, " OR ");
        if (run->patterns_txt != NULL) {
            db_sql_ident(&q, conn, t->cfg->dataset_column);
            db_sql_add(&q, "::text LIKE ANY (");
            db_sql_literal(&q, conn, run->patterns_txt);
            db_sql_add(&q, "::text[])");
        }
    }
    db_sql_add(&q, ") TO STDOUT");
    if (q.failed)
        goto oom;
    res = PQexec(conn, q.s);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        db_fail(conn, res, err, "cannot read table");
        err_prefix(err, "%s.%s", run->c->schema, t->cfg->name);
        goto out;
    }
    PQclear(res);
    res = NULL;
    while ((n = PQgetCopyData(conn, &row, 0)) > 0) {
        unsigned char d[KEYS_ROW_DIGEST_LEN];
        keys_row_digest(row, (size_t)n, d);
        for (size_t k = 0; k < LANES; k++) {
            uint64_t lane;
            memcpy(&lane, d + 8 * k, 8);
            p->lanes[k] += lane;
        }
        if (p->h != NULL)
            keys_hash_update(p->h, row, (size_t)n);
        if (run->collect && t->ds_field >= 0 && collect_dataset(run, t, row, (size_t)n, err) < 0)
            goto out;
        if (spool_write(&p->sp, row, (size_t)n, err) < 0)
            goto out;
        PQfreemem(row);
        row = NULL;
        p->rows++;
        rows++;
        bytes += (uint64_t)n;
        if (rows == 4096) {
            if (run_note(run, t->cfg->name, rows, bytes)) {
                err_set(err, OWL_ERUNTIME, "stopped: another part failed");
                goto out;
            }
            rows = bytes = 0;
        }
    }
    run_note(run, t->cfg->name, rows, bytes);
    if (n == -2) {
        db_fail(conn, NULL, err, "cannot read table");
        err_prefix(err, "%s.%s", run->c->schema, t->cfg->name);
        goto out;
    }
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_fail(conn, res, err, "cannot read table");
        err_prefix(err, "%s.%s", run->c->schema, t->cfg->name);
        goto out;
    }
    if (spool_finish(&p->sp, err) < 0)
        goto out;
    rc = 0;
    goto out;
oom:
    err_set(err, OWL_ERUNTIME, "out of memory");
out:
    if (row != NULL)
        PQfreemem(row);
    PQclear(res);
    /* Stopped inside the COPY, the connection cannot be drained (it answers
     * COPY_OUT for ever): it is closed by the caller, which fails anyway. */
    while (rc < 0 && (res = PQgetResult(conn)) != NULL) {
        bool copying = PQresultStatus(res) == PGRES_COPY_OUT;
        PQclear(res);
        if (copying)
            break;
    }
    db_sql_free(&q);
    return rc;
}

/* Takes parts, largest first, until none is left or one failed. */
static void run_parts(copy_run *run, PGconn *conn)
{
    for (;;) {
        owl_err e;
        part *p;

        pthread_mutex_lock(&run->mu);
        p = run->failed || run->next == run->nparts ? NULL : &run->parts[run->order[run->next++]];
        pthread_mutex_unlock(&run->mu);
        if (p == NULL)
            return;
        err_clear(&e);
        if (spool_open(&p->sp, &e) < 0 || copy_part(conn, run, p, &e) < 0) {
            pthread_mutex_lock(&run->mu);
            if (!run->failed) {
                run->failed = true;
                run->err = e;
            }
            pthread_mutex_unlock(&run->mu);
            return;
        }
    }
}

/* A further reader: its own connection in the exported snapshot. */
static void *copy_worker(void *arg)
{
    copy_run *run = arg;
    PGconn *conn = NULL;
    owl_err e;
    db_sql q = {0};

    err_clear(&e);
    if (db_connect(run->c->conninfo, "the source database", &conn, &e) == 0) {
        db_sql_add(&q, "SET TRANSACTION SNAPSHOT ");
        db_sql_literal(&q, conn, run->snapshot);
        if (q.failed)
            err_set(&e, OWL_ERUNTIME, "out of memory");
        else if (db_command(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL, &e,
                            "cannot start the export transaction") == 0 &&
                 db_command(conn, q.s, 0, NULL, &e, "cannot take the export snapshot") == 0)
            run_parts(run, conn);
        db_sql_free(&q);
    }
    if (e.code != OWL_OK) {
        pthread_mutex_lock(&run->mu);
        if (!run->failed) {
            run->failed = true;
            run->err = e;
        }
        pthread_mutex_unlock(&run->mu);
    }
    if (conn != NULL)
        PQfinish(conn);
    return NULL;
}

/* Reads every part: on conn, and on up to parallel - 1 more connections that
 * take the snapshot conn exported (NULL: conn alone). */
static int copy_all(copy_run *run, PGconn *conn, int parallel, owl_err *err)
{
    pthread_t tid[16];
    int nthreads = 0;

    if (pthread_mutex_init(&run->mu, NULL) != 0)
        return err_set(err, OWL_ERUNTIME, "cannot create a mutex");
    for (int i = 1; run->snapshot != NULL && i < parallel && (size_t)i < run->nparts && i <= 16; i++) {
        if (pthread_create(&tid[nthreads], NULL, copy_worker, run) != 0)
            break; /* fewer readers, same result */
        nthreads++;
    }
    run_parts(run, conn);
    for (int i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&run->mu);
    if (run->failed) {
        *err = run->err;
        return -1;
    }
    return 0;
}

/* Sizes the tables and cuts each large one with a dataset column into parts,
 * one per reader, each reading every n-th dataset: the same scans (by index
 * where the selection is small), spread over the connections. */
static int plan_parts(PGconn *conn, const cfg *c, const manifest *m, table_out *tabs, size_t ntabs, int parallel,
                      copy_run *run, owl_err *err)
{
    size_t total = 0;

    run->ngroups = m->ndatasets < (size_t)parallel ? m->ndatasets : (size_t)parallel;
    if (run->ngroups > 16)
        run->ngroups = 16;
    for (size_t i = 0; i < ntabs; i++) {
        tabs[i].nparts = 1;
        tabs[i].blocks = 0;
        if (run->ngroups > 1 && tabs[i].cfg->dataset_column[0] != '\0') {
            const char *params[2] = {c->schema, tabs[i].cfg->name};
            PGresult *r = db_exec(conn,
                                  "SELECT pg_catalog.pg_relation_size(r.oid)"
                                  "       / pg_catalog.current_setting('block_size')::int8"
                                  "  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                                  " WHERE n.nspname = $1 AND r.relname = $2",
                                  2, params, PGRES_TUPLES_OK, err, "cannot size the table");
            if (r == NULL)
                return err_prefix(err, "%s.%s", c->schema, tabs[i].cfg->name);
            if (PQntuples(r) == 1)
                tabs[i].blocks = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
            if (tabs[i].blocks >= PART_MIN_BLOCKS)
                tabs[i].nparts = run->ngroups;
        }
        total += tabs[i].nparts;
    }
    if (total > ntabs) {
        char **names = calloc(m->ndatasets / run->ngroups + 1, sizeof(char *));
        if (names == NULL)
            return err_set(err, OWL_ERUNTIME, "out of memory");
        for (size_t g = 0; g < run->ngroups; g++) {
            size_t n = 0;
            for (size_t d = g; d < m->ndatasets; d += run->ngroups)
                names[n++] = m->datasets[d];
            run->groups[g] = db_array_text(names, n);
            if (run->groups[g] == NULL) {
                free(names);
                return err_set(err, OWL_ERUNTIME, "out of memory");
            }
        }
        free(names);
    }
    run->parts = calloc(total, sizeof(part));
    run->order = calloc(total, sizeof(size_t));
    if (run->parts == NULL || run->order == NULL)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    run->nparts = total;
    for (size_t i = 0, at = 0; i < ntabs; i++) {
        tabs[i].first = at;
        for (size_t k = 0; k < tabs[i].nparts; k++, at++) {
            part *p = &run->parts[at];
            p->t = &tabs[i];
            p->sp.fd = -1;
            /* A table read in one part is compressed as it streams; the parts
             * of one read in several are hashed in order afterwards, so they
             * stay as they are and are compressed into the bundle. */
            p->sp.framed = tabs[i].nparts == 1;
            p->sp.comp = run->comp;
            p->sp.level = run->level;
            p->datasets_txt = tabs[i].nparts > 1 ? run->groups[k] : run->datasets_txt;
            if (tabs[i].nparts == 1 && (p->h = keys_hash_new()) == NULL)
                return err_set(err, OWL_ERUNTIME, "out of memory");
            run->order[at] = at;
        }
    }
    /* largest first: the readers finish together */
    for (size_t i = 1; i < total; i++) {
        size_t v = run->order[i], j = i;
        uint64_t size = run->parts[v].t->blocks / run->parts[v].t->nparts;
        while (j > 0 && run->parts[run->order[j - 1]].t->blocks / run->parts[run->order[j - 1]].t->nparts < size) {
            run->order[j] = run->order[j - 1];
            j--;
        }
        run->order[j] = v;
    }
    return 0;
}

/* Sums the parts into their tables: rows, bytes, row digests, and the digest
 * of the table's file (read back from the spools of a table read in parts). */
static int finish_tables(copy_run *run, table_out *tabs, size_t ntabs, owl_err *err)
{
    char *buf = NULL;

    for (size_t i = 0; i < ntabs; i++) {
        table_out *t = &tabs[i];
        part *first = &run->parts[t->first];
        keys_hash *h = first->h;

        t->mt->rows = 0;
        t->mt->bytes = 0;
        for (size_t k = 0; k < t->nparts; k++) {
            part *p = &run->parts[t->first + k];
            t->mt->rows += p->rows;
            t->mt->bytes += p->sp.bytes;
            for (size_t l = 0; l < LANES; l++)
                t->lanes[l] += p->lanes[l];
        }
        if (h == NULL) {
            if (buf == NULL && (buf = malloc(SPOOL_BUF)) == NULL)
                return err_set(err, OWL_ERUNTIME, "out of memory");
            if ((h = keys_hash_new()) == NULL) {
                free(buf);
                return err_set(err, OWL_ERUNTIME, "out of memory");
            }
            for (size_t k = 0; k < t->nparts; k++) {
                const part *p = &run->parts[t->first + k];
                for (uint64_t off = 0; off < p->sp.bytes;) {
                    size_t want = p->sp.bytes - off < SPOOL_BUF ? (size_t)(p->sp.bytes - off) : SPOOL_BUF;
                    ssize_t got = pread(p->sp.fd, buf, want, (off_t)off);
                    if (got <= 0) {
                        keys_hash_free(h);
                        free(buf);
                        return err_set(err, OWL_ERUNTIME, "cannot read spool: %s",
                                       got < 0 ? strerror(errno) : "short file");
                    }
                    keys_hash_update(h, buf, (size_t)got);
                    off += (uint64_t)got;
                }
            }
        }
        keys_hash_final(h, t->mt->blake2b);
        if (h != first->h)
            keys_hash_free(h);
    }
    free(buf);
    return 0;
}

static void parts_free(copy_run *run)
{
    for (size_t i = 0; i < run->nparts; i++) {
        spool_close(&run->parts[i].sp);
        keys_hash_free(run->parts[i].h);
    }
    free(run->parts);
    free(run->order);
    for (size_t g = 0; g < run->ngroups; g++)
        free(run->groups[g]);
    cfg_list_free(&run->names);
    free(run->names_txt);
    free(run->patterns_txt);
    free(run->last);
    name_set_free(&run->found);
}

/* The content digest skip_unchanged compares: what the bundle says, not when. */
static void content_digest(const manifest *m, const table_out *tabs, size_t ntabs, char *hex)
{
    keys_hash *h = keys_hash_new();
    char num[64];

    if (h == NULL) {
        hex[0] = '\0';
        return;
    }
    keys_hash_update(h, m->schema, strlen(m->schema) + 1);
    for (size_t i = 0; i < m->ndatasets; i++)
        keys_hash_update(h, m->datasets[i], strlen(m->datasets[i]) + 1);
    keys_hash_update(h, "|", 1);
    for (size_t i = 0; i < m->ntargets; i++)
        keys_hash_update(h, m->targets[i], strlen(m->targets[i]) + 1);
    for (size_t i = 0; i < ntabs; i++) {
        const manifest_table *t = tabs[i].mt;
        keys_hash_update(h, t->name, strlen(t->name) + 1);
        keys_hash_update(h, t->dataset_column, strlen(t->dataset_column) + 1);
        for (size_t j = 0; j < t->ncolumns; j++) {
            keys_hash_update(h, t->columns[j].name, strlen(t->columns[j].name) + 1);
            keys_hash_update(h, t->columns[j].type, strlen(t->columns[j].type) + 1);
        }
        snprintf(num, sizeof(num), "%llu/%llu", (unsigned long long)t->rows, (unsigned long long)t->bytes);
        keys_hash_update(h, num, strlen(num) + 1);
        keys_hash_update(h, tabs[i].lanes, sizeof(tabs[i].lanes));
    }
    keys_hash_final(h, hex);
    keys_hash_free(h);
}

/* ---------------------------------------------------------------- publish */

/* Copies the finished bundle into dir as a hidden temporary file, fsyncs it and
 * renames it into place, then fsyncs the directory. Leaves nothing on failure. */
static int publish_one(int bundle_fd, const char *dir, const char *name, char **path_out, owl_err *err)
{
    char tmp[4200], final[4200], buf[64 * 1024];
    int fd = -1;
    ssize_t n;

    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot write to outbox %s: %s", dir, strerror(errno));
    if (lseek(bundle_fd, 0, SEEK_SET) < 0)
        goto fail;
    while ((n = read(bundle_fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || fileio_write_all(fd, buf, (size_t)n) < 0)
            goto fail;
    }
    if (fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, final) < 0)
        goto fail;
    fsync_dir(dir);
    *path_out = strdup(final);
    return 0;
fail:
    err_set(err, OWL_ERUNTIME, "cannot write bundle into outbox %s: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

/* Removes hidden temporary files a killed run of this job left in an outbox. */
static void clean_stale(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t plen = strlen(prefix);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' && strncmp(e->d_name + 1, prefix, plen) == 0 && len > 9 &&
            strcmp(e->d_name + len - 9, ".owlb.tmp") == 0) {
            if (unlinkat(dirfd(d), e->d_name, 0) == 0)
                log_info("removed stale temporary file %s/%s", dir, e->d_name);
        }
    }
    closedir(d);
}

static int check_outbox(const char *dir, owl_err *err)
{
    struct stat st;

    if (stat(dir, &st) < 0)
        return err_set(err, OWL_ERUNTIME, "outbox %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(err, OWL_EUSAGE, "outbox %s is not a directory", dir);
    if (access(dir, W_OK | X_OK) < 0)
        return err_set(err, OWL_ERUNTIME, "outbox %s is not writable: %s", dir, strerror(errno));
    return 0;
}

static int64_t now_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Writes manifest, signature and spooled data into a new anonymous bundle file. */
static int build_bundle(const exporter_job *job, const keys_secret *sk, manifest *m, const table_out *tabs,
                        size_t ntabs, const copy_run *run, int *bundle_fd, owl_err *err)
{
    bundle_writer *w = NULL;
    char *mjson = NULL;
    size_t mlen = 0, siglen = 0;
    char sig[KEYS_SIGFILE_MAX];
    int fd, rc = -1;

    fd = open_spool_fd(err);
    if (fd < 0)
        return -1;
    if (manifest_serialize(m, &mjson, &mlen, err) < 0 ||
        keys_sign(sk, (const unsigned char *)mjson, mlen, sig, &siglen, err) < 0 ||
        bundle_writer_open(fd, job->compression, job->compression_level, m->created_at / 1000000, &w, err) < 0 ||
        bundle_writer_add(w, "manifest.json", mjson, mlen, err) < 0 ||
        bundle_writer_add(w, "manifest.sig", sig, siglen, err) < 0)
        goto out;
    for (size_t i = 0; i < ntabs; i++) {
        if (bundle_writer_begin(w, tabs[i].mt->file, tabs[i].mt->bytes, err) < 0)
            goto out;
        for (size_t k = 0; k < tabs[i].nparts; k++) {
            const part *p = &run->parts[tabs[i].first + k];
            if (lseek(p->sp.fd, 0, SEEK_SET) < 0) {
                err_set(err, OWL_ERUNTIME, "cannot rewind spool: %s", strerror(errno));
                goto out;
            }
            if ((p->sp.framed ? bundle_writer_copy_frames(w, tabs[i].mt->file, p->sp.fd, p->sp.zbytes, p->sp.bytes, err)
                              : bundle_writer_copy_fd(w, tabs[i].mt->file, p->sp.fd, p->sp.bytes, err)) < 0)
                goto out;
        }
    }
    rc = bundle_writer_close(w, err);
    w = NULL;
    if (rc == 0) {
        *bundle_fd = fd;
        fd = -1;
    }
out:
    bundle_writer_abort(w);
    if (fd >= 0)
        close(fd);
    free(mjson);
    return rc;
}

void exporter_job_init(exporter_job *job, const cfg_export *ex)
{
    memset(job, 0, sizeof(*job));
    job->name = ex->name;
    job->datasets = &ex->datasets;
    job->tables = &ex->tables;
    job->outboxes = &ex->outbox;
    job->signing_key = ex->signing_key;
    switch (ex->compression) {
    case CFG_COMP_GZIP:
        job->compression = BUNDLE_GZIP;
        break;
    case CFG_COMP_NONE:
        job->compression = BUNDLE_NONE;
        break;
    default:
        job->compression = BUNDLE_ZSTD;
        break;
    }
    job->compression_level = ex->compression_level;
    job->parallel = ex->parallel;
    job->skip_unchanged = ex->skip_unchanged;
    job->valid_for = ex->valid_for;
    job->targets = &ex->targets;
}

int exporter_run(const cfg *c, const exporter_job *job, exporter_result *res, owl_err *err)
{
    keys_secret *sk = NULL;
    keys_public pub;
    PGconn *conn = NULL;
    PGresult *pr = NULL;
    manifest *m = NULL;
    table_out *tabs = NULL;
    size_t ntabs = 0;
    copy_run run;
    char *snapshot = NULL;
    int parallel = job->parallel > 1 ? job->parallel : 1;
    job_state st;
    char statefile[4096], digest[KEYS_HASH_HEX_LEN + 1], name[512], stamp[32], prefix[160];
    int lockfd = -1, bundle_fd = -1, rc = -1;
    char *datasets_txt = NULL;
    progress prog;
    struct tm tm;
    time_t secs;

    memset(res, 0, sizeof(*res));
    memset(&run, 0, sizeof(run));
    memset(&prog, 0, sizeof(prog));
    prog.on = job->progress;
    clock_gettime(CLOCK_MONOTONIC, &prog.start);
    prog.last = prog.start;

    /* Everything that can be checked without the database, first. */
    if (job->outboxes->n == 0) {
        err_set(err, OWL_EUSAGE, "export job %s has no outbox\nHINT: set outbox in [export %s] or give -o DIR", job->name,
                job->name);
        goto out;
    }
    /* Stop now only when no outbox is usable: with several, a bad one must not
     * lose the others (it fails again, and is reported, when publishing). */
    {
        size_t usable = 0;
        owl_err first, one;

        err_clear(&first);
        for (size_t i = 0; i < job->outboxes->n; i++) {
            err_clear(&one);
            if (check_outbox(job->outboxes->v[i], &one) == 0)
                usable++;
            else if (first.code == 0)
                first = one;
        }
        if (usable == 0) {
            *err = first;
            goto out;
        }
    }
    if (job->signing_key == NULL) {
        err_set(err, OWL_EUSAGE, "export job %s has no signing_key\nHINT: set signing_key in its [export] section", job->name);
        goto out;
    }
    if (keys_load_secret(job->signing_key, &sk, err) < 0)
        goto out;
    keys_secret_public(sk, &pub);
    if (state_lock(c, job->name, &lockfd, err) < 0)
        goto out;
    if (state_path(c, job->name, "state", statefile, sizeof(statefile)) < 0 || state_read(statefile, &st, err) < 0)
        goto out;
    snprintf(prefix, sizeof(prefix), "%s_%s_", c->environment, job->name);
    for (size_t i = 0; i < job->outboxes->n; i++)
        clean_stale(job->outboxes->v[i], prefix);

    /* The chosen tables, in config order. */
    tabs = calloc(c->ntables, sizeof(*tabs));
    m = manifest_new();
    if (tabs == NULL || m == NULL)
        goto oom;
    for (size_t i = 0; i < c->ntables; i++) {
        if (job->tables->n > 0 && !cfg_list_has(job->tables, c->tables[i].name))
            continue;
        tabs[ntabs].cfg = &c->tables[i];
        ntabs++;
    }
    for (size_t i = 0; i < job->tables->n; i++) {
        if (cfg_find_table(c, job->tables->v[i]) == NULL) {
            err_set(err, OWL_EUSAGE, "table %s is not configured\nHINT: add a [table %s] section", job->tables->v[i],
                    job->tables->v[i]);
            goto out;
        }
    }
    if (ntabs == 0) {
        err_set(err, OWL_EUSAGE, "no table to export");
        goto out;
    }

    if (db_connect(c->conninfo, "the source database", &conn, err) < 0)
        goto out;
    /* One snapshot for every table: the bundle is consistent. */
    pr = db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL, PGRES_COMMAND_OK, err,
                 "cannot start the export transaction");
    if (pr == NULL)
        goto out;
    PQclear(pr);
    if (parallel > 1) {
        /* The other connections read in this very snapshot. */
        pr = db_exec(conn, "SELECT pg_catalog.pg_export_snapshot()", 0, NULL, PGRES_TUPLES_OK, err,
                     "cannot export the snapshot");
        if (pr == NULL)
            goto out;
        snapshot = strdup(PQgetvalue(pr, 0, 0));
        PQclear(pr);
        if (snapshot == NULL)
            goto oom;
    }
    pr = db_exec(conn, "SELECT (extract(epoch FROM transaction_timestamp()) * 1000000)::int8", 0, NULL,
                 PGRES_TUPLES_OK, err, "cannot read the snapshot time");
    if (pr == NULL)
        goto out;
    {
        char *end;
        m->snapshot_at = strtoll(PQgetvalue(pr, 0, 0), &end, 10);
    }
    PQclear(pr);
    pr = NULL;

    for (size_t i = 0; i < ntabs; i++) {
        if (manifest_add_table(m, tabs[i].cfg->name, tabs[i].cfg->dataset_column) == NULL)
            goto oom;
    }
    /* Pointers into m->tables only now: adding tables may move the array. */
    for (size_t i = 0; i < ntabs; i++) {
        tabs[i].mt = &m->tables[i];
        if (table_columns(conn, c, &tabs[i], err) < 0)
            goto out;
        tabs[i].ds_field = -1;
        for (size_t j = 0; j < tabs[i].mt->ncolumns && tabs[i].cfg->dataset_column[0] != '\0'; j++) {
            if (strcmp(tabs[i].mt->columns[j].name, tabs[i].cfg->dataset_column) == 0)
                tabs[i].ds_field = (int)j;
        }
    }
    if (parallel > 1) {
        /* the datasets first: the parts read every n-th of them */
        if (resolve_datasets(conn, c, job, tabs, ntabs, m, err) < 0)
            goto out;
        datasets_txt = db_array_text(m->datasets, m->ndatasets);
        if (datasets_txt == NULL)
            goto oom;
    } else if (select_in_copy(job, tabs, ntabs, &run, err) < 0) {
        goto out;
    }
    run.c = c;
    run.comp = job->compression;
    run.level = job->compression_level;
    run.datasets_txt = datasets_txt;
    run.snapshot = snapshot;
    run.prog = &prog;
    if (plan_parts(conn, c, m, tabs, ntabs, parallel, &run, err) < 0 || copy_all(&run, conn, parallel, err) < 0 ||
        finish_tables(&run, tabs, ntabs, err) < 0 || finish_datasets(&run, m, err) < 0)
        goto out;
    for (size_t i = 0; i < ntabs; i++)
        res->rows += tabs[i].mt->rows;
    progress_show(&prog, "done", true);
    pr = PQexec(conn, "COMMIT");
    PQclear(pr);
    pr = NULL;
    PQfinish(conn);
    conn = NULL;

    /* The manifest. */
    if (manifest_set_string(&m->environment, c->environment) < 0 || manifest_set_string(&m->job, job->name) < 0 ||
        manifest_set_string(&m->schema, c->schema) < 0 || manifest_set_string(&m->producer, "owlsync " OWLSYNC_VERSION) < 0)
        goto oom;
    for (size_t i = 0; i < job->targets->n; i++) {
        if (manifest_add_target(m, job->targets->v[i]) < 0)
            goto oom;
    }
    content_digest(m, tabs, ntabs, digest);
    if (job->skip_unchanged && st.sequence > 0 && strcmp(digest, st.digest) == 0) {
        log_info("export job %s: unchanged since bundle %llu; nothing published", job->name,
                 (unsigned long long)st.sequence);
        res->unchanged = true;
        res->sequence = st.sequence;
        rc = 0;
        goto out;
    }
    m->sequence = st.sequence + 1;
    m->created_at = now_usec();
    m->expires_at = m->created_at + job->valid_for * 1000000;
    if (keys_random_hex(m->bundle_id, 16) < 0)
        goto oom;
    memcpy(m->key_id, pub.id, sizeof(m->key_id));
    secs = (time_t)(m->created_at / 1000000);
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(name, sizeof(name), "%s_%s_%s_%06llu%s", c->environment, job->name, stamp,
             (unsigned long long)m->sequence, BUNDLE_SUFFIX);
    if (build_bundle(job, sk, m, tabs, ntabs, &run, &bundle_fd, err) < 0)
        goto out;

    /* Publish to every outbox; one failing does not stop the others. */
    res->paths = calloc(job->outboxes->n, sizeof(char *));
    if (res->paths == NULL)
        goto oom;
    {
        owl_err one;
        err_clear(&one);
        for (size_t i = 0; i < job->outboxes->n; i++) {
            if (publish_one(bundle_fd, job->outboxes->v[i], name, &res->paths[res->npaths], &one) == 0) {
                res->npaths++;
            } else {
                log_error("%s", one.msg);
                res->failed_outboxes++;
                *err = one;
            }
        }
    }
    res->sequence = m->sequence;
    if (res->npaths > 0) {
        st.sequence = m->sequence;
        memcpy(st.digest, digest, sizeof(st.digest));
        if (state_write(c, statefile, &st, err) < 0)
            goto out;
    }
    if (res->failed_outboxes > 0) {
        if (res->npaths > 0)
            err_prefix(err, "bundle %llu published to %zu of %zu outboxes", (unsigned long long)m->sequence,
                       res->npaths, job->outboxes->n);
        goto out;
    }
    rc = 0;
    goto out;
oom:
    err_set(err, OWL_ERUNTIME, "out of memory");
out:
    if (prog.on && rc < 0)
        fputc('\n', stderr);
    PQclear(pr);
    if (conn != NULL)
        PQfinish(conn);
    free(datasets_txt);
    parts_free(&run);
    free(snapshot);
    free(tabs);
    manifest_free(m);
    keys_secret_free(sk);
    if (bundle_fd >= 0)
        close(bundle_fd);
    if (lockfd >= 0)
        close(lockfd);
    return rc;
}

void exporter_result_free(exporter_result *res)
{
    for (size_t i = 0; i < res->npaths; i++)
        free(res->paths[i]);
    free(res->paths);
    res->paths = NULL;
    res->npaths = 0;
}

int exporter_check(const cfg *c, FILE *out, owl_err *err)
{
    PGconn *conn = NULL;
    manifest *m = manifest_new();
    int rc = -1;

    if (m == NULL)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    for (size_t i = 0; i < c->nexports; i++) {
        keys_secret *sk = NULL;
        if (c->exports[i].signing_key == NULL) {
            err_set(err, OWL_EUSAGE, "[export %s] has no signing_key", c->exports[i].name);
            goto out;
        }
        if (keys_load_secret(c->exports[i].signing_key, &sk, err) < 0) {
            err_prefix(err, "[export %s] signing_key", c->exports[i].name);
            goto out;
        }
        keys_secret_free(sk);
        fprintf(out, "ok: [export %s] signing key %s\n", c->exports[i].name, c->exports[i].signing_key);
    }
    if (db_connect(c->conninfo, "the source database", &conn, err) < 0)
        goto out;
    fprintf(out, "ok: connected to the source database\n");
    for (size_t i = 0; i < c->ntables; i++) {
        table_out t;
        memset(&t, 0, sizeof(t));
        t.cfg = &c->tables[i];
        t.mt = manifest_add_table(m, c->tables[i].name, c->tables[i].dataset_column);
        if (t.mt == NULL) {
            err_set(err, OWL_ERUNTIME, "out of memory");
            goto out;
        }
        if (table_columns(conn, c, &t, err) < 0)
            goto out;
        {
            const char *params[2] = {c->schema, t.cfg->name};
            PGresult *res = db_exec(conn,
                                    "SELECT pg_catalog.has_table_privilege(pg_catalog.format('%I.%I', $1::text, $2::text), 'SELECT')",
                                    2, params, PGRES_TUPLES_OK, err, "cannot check privileges");
            bool can = res != NULL && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
            PQclear(res);
            if (res == NULL)
                goto out;
            if (!can) {
                err_set(err, OWL_ERUNTIME, "permission denied: this role cannot SELECT from %s.%s\nHINT: sql/grants.sql shows the grants an exporting role needs",
                        c->schema, t.cfg->name);
                goto out;
            }
        }
        fprintf(out, "ok: table %s.%s readable, %zu columns travel\n", c->schema, t.cfg->name, t.mt->ncolumns);
        manifest_free(m);
        m = manifest_new();
        if (m == NULL) {
            err_set(err, OWL_ERUNTIME, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    manifest_free(m);
    if (conn != NULL)
        PQfinish(conn);
    return rc;
}
