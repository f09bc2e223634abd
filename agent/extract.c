/* owlsync extract: reads an export's tables with COPY TO in one snapshot, on
 * one connection or several, into spools, counting, digesting and hashing the
 * rows as they stream. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/buf.h"
#include "owlsync/catalog.h"
#include "owlsync/copytext.h"
#include "owlsync/extract.h"
#include "owlsync/keys.h"
#include "owlsync/source.h"
#include "owlsync/spool.h"

#define MAX_READERS 16
/* A table of at least this many 8 kB blocks is read in parts, one per
 * connection, each the rows of every n-th dataset. */
#define PART_MIN_BLOCKS 512
#define READ_CHUNK (256 * 1024)

_Static_assert(KEYS_ROW_DIGEST_LEN == 8 * EXTRACT_LANES, "lanes of a row digest");

/* One COPY into one spool: a table's rows of all its datasets, or of a group. */
typedef struct part {
    extract_table *t;
    char *const *datasets;    /* the group it reads, or NULL (the job's selection) */
    size_t ndatasets;
    spool sp;
    uint64_t rows;
    uint64_t lanes[EXTRACT_LANES];
    keys_hash *h;             /* the table's file digest, when it is one part */
} part;

/* Distinct dataset names: open addressing, FNV-1a. */
typedef struct name_set {
    char **slot;              /* cap entries; NULL is free */
    size_t cap, n;
} name_set;

struct extract {
    const extract_opts *o;
    extract_table *tabs;
    size_t ntabs;
    size_t *first, *nparts;   /* per table: its parts in the part array */
    uint64_t *blocks;         /* per table: its size when the parts were planned */
    /* With one connection the COPY selects by the job's names and patterns and
     * the datasets are collected from the rows read: no scan of its own. */
    bool collect;
    name_set found;
    owl_buf last;             /* the raw dataset field of the last row */
    char **groups[MAX_READERS]; /* every n-th dataset, n = ngroups */
    size_t ngroup[MAX_READERS], ngroups;
    part *parts;
    size_t nparts_all;
    size_t *order;            /* parts by size, largest first */
    pthread_mutex_t mu;       /* guards next, failed, err and the progress */
    size_t next;
    bool failed;
    owl_err err;              /* the first failure */
};

/* ---------------------------------------------------------------- datasets */

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

/* Notes the dataset of one COPY row (with its newline). Rows come grouped by
 * dataset as a rule: a repeat of the last one costs a compare. */
static int collect_dataset(extract *x, const extract_table *t, const char *row, size_t len, owl_err *err)
{
    const char *f = row, *end = row + (len > 0 ? len - 1 : 0), *tab;
    size_t flen;

    for (int k = 0; k < t->ds_field; k++) {
        tab = memchr(f, '\t', (size_t)(end - f));
        if (tab == NULL)
            return err_set(err, OWL_ERUNTIME, "%s: a row with too few fields", t->name);
        f = tab + 1;
    }
    tab = memchr(f, '\t', (size_t)(end - f));
    flen = (size_t)((tab != NULL ? tab : end) - f);
    if (flen == x->last.len && x->last.p != NULL && memcmp(f, x->last.p, flen) == 0)
        return 0;
    buf_clear(&x->last);
    if (buf_add(&x->last, f, flen) < 0)
        return err_oom(err);
    if (copytext_is_null(f, flen))
        return 0; /* NULL matches no name and no pattern */
    if (memchr(f, '\\', flen) != NULL) {
        char *v = malloc(flen + 1);
        size_t vlen;
        int rc;
        if (v == NULL)
            return err_oom(err);
        rc = copytext_unescape(f, flen, v, &vlen, err) < 0 ? -1 : name_set_add(&x->found, v, vlen);
        free(v);
        if (rc < 0)
            return err->code != OWL_OK ? -1 : err_oom(err);
        return 0;
    }
    if (name_set_add(&x->found, f, flen) < 0)
        return err_oom(err);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The collected datasets, in byte order (the caller judges whether the names
 * and patterns found what they should). */
static int finish_datasets(extract *x, char ***out, size_t *n, owl_err *err)
{
    char **v;

    v = malloc((x->found.n ? x->found.n : 1) * sizeof(char *));
    if (v == NULL)
        return err_oom(err);
    for (size_t i = 0; i < x->found.cap; i++) {
        if (x->found.slot[i] != NULL) {
            v[(*n)++] = x->found.slot[i];
            x->found.slot[i] = NULL; /* now the caller's */
        }
    }
    x->found.n = 0;
    qsort(v, *n, sizeof(char *), cmp_names);
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------- reading */

/* Adds rows and bytes to the progress; answers whether another part failed. */
static bool note(extract *x, const char *table, uint64_t rows, uint64_t bytes)
{
    bool failed;

    pthread_mutex_lock(&x->mu);
    progress_add(x->o->prog, table, rows, bytes);
    failed = x->failed;
    pthread_mutex_unlock(&x->mu);
    return failed;
}

/* Streams the part's selected rows into its spool, summing per-row digests
 * (for skip_unchanged) and, for a table read in one part, hashing the bytes. */
static int copy_part(db_conn *conn, extract *x, part *p, owl_err *err)
{
    const extract_table *t = p->t;
    source_select sel = {.schema = x->o->schema,
                         .table = t->name,
                         .only = t->only,
                         .columns = t->columns,
                         .ncolumns = t->ncolumns,
                         .dataset_column = t->dataset_column,
                         .dataset_type = t->dataset_type,
                         .datasets = p->datasets,
                         .ndatasets = p->ndatasets,
                         .names = x->o->names,
                         .patterns = x->o->patterns,
                         .nnames = x->o->nnames,
                         .npatterns = x->o->npatterns};
    uint64_t rows = 0, bytes = 0;
    const char *row;
    size_t n;
    int got;

    if (source_copy_begin(conn, &sel, err) < 0)
        return -1;
    while ((got = source_copy_next(conn, &row, &n, err)) > 0) {
        unsigned char d[KEYS_ROW_DIGEST_LEN];
        if (n > COPYTEXT_MAX_ROW + 1) { /* and its newline */
            source_copy_abandon(conn);
            return err_set(err, OWL_EUSAGE, "%s.%s row %llu is %zu bytes: owlsync carries rows of at most %d bytes",
                           x->o->schema, t->name, (unsigned long long)p->rows + 1, n - 1, COPYTEXT_MAX_ROW);
        }
        keys_row_digest(row, n, d);
        for (size_t k = 0; k < EXTRACT_LANES; k++) {
            uint64_t lane;
            memcpy(&lane, d + 8 * k, 8);
            p->lanes[k] += lane;
        }
        if (p->h != NULL)
            keys_hash_update(p->h, row, n);
        if ((x->collect && t->ds_field >= 0 && collect_dataset(x, t, row, n, err) < 0) ||
            spool_write(&p->sp, row, n, err) < 0) {
            source_copy_abandon(conn);
            return -1;
        }
        p->rows++;
        rows++;
        bytes += n;
        if (rows == 4096) {
            if (note(x, t->name, rows, bytes)) {
                source_copy_abandon(conn);
                return err_set(err, OWL_ERUNTIME, "stopped: another part failed");
            }
            rows = bytes = 0;
        }
    }
    note(x, t->name, rows, bytes);
    if (got < 0)
        return err_prefix(err, "%s.%s", x->o->schema, t->name);
    return spool_finish(&p->sp, err);
}

static void fail_run(extract *x, const owl_err *e)
{
    pthread_mutex_lock(&x->mu);
    if (!x->failed) {
        x->failed = true;
        x->err = *e;
    }
    pthread_mutex_unlock(&x->mu);
}

/* Takes parts, largest first, until none is left or one failed. */
static void run_parts(extract *x, db_conn *conn)
{
    for (;;) {
        owl_err e;
        part *p;

        pthread_mutex_lock(&x->mu);
        p = x->failed || x->next == x->nparts_all ? NULL : &x->parts[x->order[x->next++]];
        pthread_mutex_unlock(&x->mu);
        if (p == NULL)
            return;
        err_clear(&e);
        if (spool_open(&p->sp, &e) < 0 || copy_part(conn, x, p, &e) < 0) {
            fail_run(x, &e);
            return;
        }
    }
}

/* A further reader: its own connection in the exported snapshot. */
static void *worker(void *arg)
{
    extract *x = arg;
    db_conn *conn = NULL;
    owl_err e;

    err_clear(&e);
    if (db_open(x->o->conninfo, "the source database", &conn, &e) == 0 &&
        source_join(conn, x->o->snapshot_id, &e) == 0)
        run_parts(x, conn);
    if (e.code != OWL_OK)
        fail_run(x, &e);
    db_close(conn);
    return NULL;
}

/* Reads every part: on conn, and on up to parallel - 1 more connections. */
static int copy_all(extract *x, db_conn *conn, owl_err *err)
{
    pthread_t tid[MAX_READERS];
    int nthreads = 0;

    for (int i = 1; x->o->snapshot_id != NULL && i < x->o->parallel && (size_t)i < x->nparts_all &&
                    i < MAX_READERS;
         i++) {
        if (pthread_create(&tid[nthreads], NULL, worker, x) != 0)
            break; /* fewer readers, same result */
        nthreads++;
    }
    run_parts(x, conn);
    for (int i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    if (x->failed) {
        *err = x->err;
        return -1;
    }
    return 0;
}

/* Sizes the tables and cuts each large one with a dataset column into parts,
 * one per reader, each reading every n-th dataset: the same scans (by index
 * where the selection is small), spread over the connections. */
static int plan_parts(db_conn *conn, extract *x, owl_err *err)
{
    const extract_opts *o = x->o;
    size_t total = 0;

    x->ngroups = o->snapshot_id == NULL ? 1 : o->ndatasets < (size_t)o->parallel ? o->ndatasets : (size_t)o->parallel;
    if (x->ngroups > MAX_READERS)
        x->ngroups = MAX_READERS;
    for (size_t i = 0; i < x->ntabs; i++) {
        x->nparts[i] = 1;
        if (x->ngroups > 1 && x->tabs[i].dataset_column[0] != '\0') {
            if (catalog_table_blocks(conn, o->schema, x->tabs[i].name, &x->blocks[i], err) < 0)
                return err_prefix(err, "%s.%s", o->schema, x->tabs[i].name);
            if (x->blocks[i] >= PART_MIN_BLOCKS)
                x->nparts[i] = x->ngroups;
        }
        total += x->nparts[i];
    }
    if (total > x->ntabs) {
        for (size_t g = 0; g < x->ngroups; g++) {
            x->groups[g] = calloc(o->ndatasets / x->ngroups + 1, sizeof(char *));
            if (x->groups[g] == NULL)
                return err_oom(err);
            for (size_t d = g; d < o->ndatasets; d += x->ngroups)
                x->groups[g][x->ngroup[g]++] = o->datasets[d];
        }
    }
    x->parts = calloc(total, sizeof(part));
    x->order = calloc(total, sizeof(size_t));
    if (x->parts == NULL || x->order == NULL)
        return err_oom(err);
    x->nparts_all = total;
    for (size_t i = 0, at = 0; i < x->ntabs; i++) {
        x->first[i] = at;
        for (size_t k = 0; k < x->nparts[i]; k++, at++) {
            part *p = &x->parts[at];
            p->t = &x->tabs[i];
            /* A table read in one part is compressed as it streams; the parts
             * of one read in several are hashed in order afterwards, so they
             * stay as they are and are compressed into the bundle. */
            spool_init(&p->sp, x->nparts[i] == 1, o->comp, o->level);
            if (x->nparts[i] > 1) {
                p->datasets = x->groups[k];
                p->ndatasets = x->ngroup[k];
            } else if (o->snapshot_id != NULL) {
                p->datasets = o->datasets;
                p->ndatasets = o->ndatasets;
            }
            if (x->nparts[i] == 1 && (p->h = keys_hash_new()) == NULL)
                return err_oom(err);
            x->order[at] = at;
        }
    }
    /* largest first: the readers finish together */
    for (size_t i = 1; i < total; i++) {
        size_t v = x->order[i], j = i;
        size_t tv = (size_t)(x->parts[v].t - x->tabs);
        uint64_t size = x->blocks[tv] / x->nparts[tv];
        while (j > 0) {
            size_t tj = (size_t)(x->parts[x->order[j - 1]].t - x->tabs);
            if (x->blocks[tj] / x->nparts[tj] >= size)
                break;
            x->order[j] = x->order[j - 1];
            j--;
        }
        x->order[j] = v;
    }
    return 0;
}

/* Sums the parts into their tables: rows, bytes, row digests, and the digest
 * of the table's file (read back from the spools of a table read in parts). */
static int finish_tables(extract *x, owl_err *err)
{
    char *buf = NULL;
    int rc = -1;

    for (size_t i = 0; i < x->ntabs; i++) {
        extract_table *t = &x->tabs[i];
        keys_hash *h = x->parts[x->first[i]].h, *own = NULL;

        t->rows = t->bytes = 0;
        memset(t->lanes, 0, sizeof(t->lanes));
        for (size_t k = 0; k < x->nparts[i]; k++) {
            const part *p = &x->parts[x->first[i] + k];
            t->rows += p->rows;
            t->bytes += p->sp.bytes;
            for (size_t l = 0; l < EXTRACT_LANES; l++)
                t->lanes[l] += p->lanes[l];
        }
        if (h == NULL) {
            if ((buf == NULL && (buf = malloc(READ_CHUNK)) == NULL) || (own = h = keys_hash_new()) == NULL) {
                err_oom(err);
                goto out;
            }
            for (size_t k = 0; k < x->nparts[i]; k++) {
                const part *p = &x->parts[x->first[i] + k];
                for (uint64_t off = 0; off < p->sp.bytes;) {
                    size_t want = p->sp.bytes - off < READ_CHUNK ? (size_t)(p->sp.bytes - off) : READ_CHUNK;
                    ssize_t got = pread(p->sp.fd, buf, want, (off_t)off);
                    if (got <= 0) {
                        keys_hash_free(own);
                        err_set(err, OWL_ERUNTIME, "cannot read spool: %s", got < 0 ? strerror(errno) : "short file");
                        goto out;
                    }
                    keys_hash_update(h, buf, (size_t)got);
                    off += (uint64_t)got;
                }
            }
        }
        keys_hash_final(h, t->blake2b);
        keys_hash_free(own);
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

int extract_run(db_conn *conn, extract_table *tabs, size_t ntabs, const extract_opts *opts, extract **out,
                char ***datasets, size_t *ndatasets, owl_err *err)
{
    extract *x = calloc(1, sizeof(*x));
    int rc = -1;

    *out = NULL;
    *datasets = NULL;
    *ndatasets = 0;
    if (x == NULL)
        return err_oom(err);
    x->o = opts;
    x->tabs = tabs;
    x->ntabs = ntabs;
    x->last = (owl_buf)OWL_BUF_INIT(SIZE_MAX / 2);
    for (size_t i = 0; i < ntabs; i++)
        x->collect = x->collect || (opts->snapshot_id == NULL && tabs[i].ds_field >= 0);
    x->first = calloc(ntabs ? ntabs : 1, sizeof(size_t));
    x->nparts = calloc(ntabs ? ntabs : 1, sizeof(size_t));
    x->blocks = calloc(ntabs ? ntabs : 1, sizeof(uint64_t));
    if (x->first == NULL || x->nparts == NULL || x->blocks == NULL) {
        free(x->first);
        free(x->nparts);
        free(x->blocks);
        free(x);
        return err_oom(err);
    }
    if (pthread_mutex_init(&x->mu, NULL) != 0) {
        free(x->first);
        free(x->nparts);
        free(x->blocks);
        free(x);
        return err_set(err, OWL_ERUNTIME, "cannot create a mutex");
    }
    *out = x;
    if (plan_parts(conn, x, err) < 0 || copy_all(x, conn, err) < 0 || finish_tables(x, err) < 0)
        goto out;
    if (x->collect && finish_datasets(x, datasets, ndatasets, err) < 0)
        goto out;
    rc = 0;
out:
    return rc;
}

int extract_write_table(extract *x, size_t i, bundle_writer *w, const char *entry, owl_err *err)
{
    if (bundle_writer_begin(w, entry, x->tabs[i].bytes, err) < 0)
        return -1;
    for (size_t k = 0; k < x->nparts[i]; k++) {
        const part *p = &x->parts[x->first[i] + k];
        if (lseek(p->sp.fd, 0, SEEK_SET) < 0)
            return err_set(err, OWL_ERUNTIME, "cannot rewind spool: %s", strerror(errno));
        if ((p->sp.framed ? bundle_writer_copy_frames(w, entry, p->sp.fd, p->sp.zbytes, p->sp.bytes, err)
                          : bundle_writer_copy_fd(w, entry, p->sp.fd, p->sp.bytes, err)) < 0)
            return -1;
    }
    return 0;
}

void extract_free(extract *x)
{
    if (x == NULL)
        return;
    for (size_t i = 0; i < x->nparts_all; i++) {
        spool_close(&x->parts[i].sp);
        keys_hash_free(x->parts[i].h);
    }
    free(x->parts);
    free(x->order);
    for (size_t g = 0; g < x->ngroups; g++)
        free(x->groups[g]);
    free(x->first);
    free(x->nparts);
    free(x->blocks);
    buf_free(&x->last);
    name_set_free(&x->found);
    pthread_mutex_destroy(&x->mu);
    free(x);
}
