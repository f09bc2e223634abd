/* owlsync exporter: the export pipeline, stage by stage: check what needs no
 * database, take the job's lock and state, read the chosen tables in one
 * snapshot (extract), write the manifest, choose the outboxes and save the
 * sequence number, sign and pack the bundle, publish it into each outbox,
 * save what each received. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/catalog.h"
#include "owlsync/envelope.h"
#include "owlsync/exporter.h"
#include "owlsync/extract.h"
#include "owlsync/fileio.h"
#include "owlsync/jobstate.h"
#include "owlsync/keys.h"
#include "owlsync/log.h"
#include "owlsync/manifest.h"
#include "owlsync/source.h"
#include "owlsync/spool.h"
#include "owlsync/text.h"
#include "owlsync/version.h"

_Static_assert(EXPORTER_LANES == EXTRACT_LANES, "lanes of a row digest sum");

/* Far more than a job ever uses, and few enough that no sum overflows. */
#define SEQUENCE_MAX UINT64_C(999999999999999)

/* One export in progress: what each stage leaves for the next. */
typedef struct export_run {
    const cfg *c;
    const exporter_job *job;
    exporter_result *res;
    keys_secret *sk;
    keys_public pub;
    keys_box_public *recipients; /* encrypt_to's keys, or none */
    size_t nrecipients;
    int lockfd;
    jobstate st;
    const cfg_table **tcfg;     /* the chosen tables, in config order */
    extract_table *tabs;
    catalog_table *cols;        /* each table's catalog, which tabs[i].columns point into */
    char ***colnames;
    size_t *nrefs;              /* per table: its last columns that are references */
    size_t ntabs;
    cfg_list names, patterns;   /* the job's dataset names and LIKE patterns */
    char **datasets;            /* the datasets exported, in byte order */
    size_t ndatasets;
    jobstate_dataset *known;    /* the datasets the job carried before */
    size_t nknown;
    char **gone;                /* those of them with no rows any more, which travel empty (sorted) */
    size_t ngone;
    db_conn *conn;
    char *snapshot_id;          /* shared with further readers when parallel */
    int64_t snapshot_at;
    extract *x;
    exporter_table *etabs;      /* the tables read, as the publishing stages see them */
    char ***types;              /* per table: its columns' types, pointing into cols */
    exporter_rows own;          /* the rows read from the database */
    const exporter_rows *rows;  /* the rows to publish: own, or a caller's */
    manifest *m;
    progress prog;
    char digest[KEYS_HASH_HEX_LEN + 1];
    char name[512];             /* the bundle's file name */
    int bundle_fd;
    bool *deliver;              /* per outbox: it is to get this run's bundle */
    bool *delivered;            /* per outbox: it got it */
    size_t ndeliver;            /* how many are to get it */
} export_run;

void exporter_job_init(exporter_job *job, const cfg_export *ex)
{
    static const bundle_compression comps[] = {[CFG_COMP_ZSTD] = BUNDLE_ZSTD, [CFG_COMP_GZIP] = BUNDLE_GZIP,
                                               [CFG_COMP_NONE] = BUNDLE_NONE};

    memset(job, 0, sizeof(*job));
    job->name = ex->name;
    job->datasets = &ex->datasets;
    job->tables = &ex->tables;
    job->outboxes = &ex->outbox;
    job->signing_key = ex->signing_key;
    job->compression = comps[ex->compression];
    job->compression_level = ex->compression_level;
    job->parallel = ex->parallel;
    job->skip_unchanged = ex->skip_unchanged;
    job->valid_for = ex->valid_for;
    job->targets = &ex->targets;
    job->encrypt_to = ex->encrypt_to;
    job->nencrypt_to = ex->nencrypt_to;
    job->bundle_mode = ex->bundle_mode;
    job->remember = true;
}

/* ---------------------------------------------------------------- check */

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

/* Whether s starts with the time and sequence of a bundle name:
 * "YYYYMMDDTHHMMSSZ_" and a digit (so that job j's files are not job j_x's). */
static bool at_stamp(const char *s)
{
    static const char form[] = "ddddddddTddddddZ_d";

    for (size_t i = 0; form[i] != '\0'; i++) {
        if (form[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != form[i])
            return false;
    }
    return true;
}

/* Removes hidden temporary files a killed run of this job left in an outbox
 * (a second name of a published bundle, when the crash came between link(2)
 * and unlink: removing it leaves the bundle as it is). */
static void clean_stale(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t plen = strlen(prefix);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' && strncmp(e->d_name + 1, prefix, plen) == 0 && len > plen + 9 &&
            at_stamp(e->d_name + 1 + plen) && strcmp(e->d_name + len - 9, ".owlb.tmp") == 0) {
            if (unlinkat(dirfd(d), e->d_name, 0) == 0)
                log_info("removed stale temporary file %s/%s", dir, e->d_name);
        }
    }
    closedir(d);
}

/* Everything that can be checked without the database, first; then the job's
 * lock and state. */
static int ex_check(export_run *r, owl_err *err)
{
    const exporter_job *job = r->job;
    size_t usable = 0;
    owl_err first, one;
    char prefix[160];

    if (job->outboxes->n == 0)
        return err_set(err, OWL_EUSAGE, "export job %s has no outbox\nHINT: set outbox in [export %s] or give -o DIR",
                       job->name, job->name);
    /* Stop now only when no outbox is usable: with several, a bad one must not
     * lose the others (it fails again, and is reported, when publishing). */
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
        return -1;
    }
    if (job->signing_key == NULL)
        return err_set(err, OWL_EUSAGE, "export job %s has no signing_key\nHINT: set signing_key in its [export] section",
                       job->name);
    if (keys_load_secret(job->signing_key, &r->sk, err) < 0)
        return -1;
    keys_secret_public(r->sk, &r->pub);
    if (job->nencrypt_to > 0) {
        r->recipients = calloc(job->nencrypt_to, sizeof(*r->recipients));
        if (r->recipients == NULL)
            return err_oom(err);
        for (size_t i = 0; i < job->nencrypt_to; i++) {
            if (keys_box_load_public(job->encrypt_to[i].key, &r->recipients[i], err) < 0)
                return err_prefix(err, "export job %s: encrypt_to %s (line %d)", job->name,
                                  job->encrypt_to[i].environment, job->encrypt_to[i].line);
        }
        r->nrecipients = job->nencrypt_to;
    }
    if (jobstate_lock(r->c->state_dir, job->name, &r->lockfd, err) < 0 ||
        jobstate_read(r->c->state_dir, job->name, &r->st, err) < 0 ||
        (job->remember && jobstate_adopt(&r->st, job->outboxes->v, job->outboxes->n, err) < 0) ||
        jobstate_read_datasets(r->c->state_dir, job->name, &r->known, &r->nknown, err) < 0)
        return -1;
    snprintf(prefix, sizeof(prefix), "%s_%s_", r->c->environment, job->name);
    for (size_t i = 0; i < job->outboxes->n; i++)
        clean_stale(job->outboxes->v[i], prefix);
    return 0;
}

/* The chosen tables, in config order, and the job's names and patterns. */
static int ex_tables(export_run *r, owl_err *err)
{
    const cfg *c = r->c;

    for (size_t i = 0; i < r->job->tables->n; i++) {
        if (cfg_find_table(c, r->job->tables->v[i]) == NULL)
            return err_set(err, OWL_EUSAGE, "table %s is not configured\nHINT: add a [table %s] section",
                           r->job->tables->v[i], r->job->tables->v[i]);
    }
    r->tcfg = calloc(c->ntables ? c->ntables : 1, sizeof(*r->tcfg));
    r->tabs = calloc(c->ntables ? c->ntables : 1, sizeof(*r->tabs));
    r->cols = calloc(c->ntables ? c->ntables : 1, sizeof(*r->cols));
    r->colnames = calloc(c->ntables ? c->ntables : 1, sizeof(*r->colnames));
    r->nrefs = calloc(c->ntables ? c->ntables : 1, sizeof(*r->nrefs));
    if (r->tcfg == NULL || r->tabs == NULL || r->cols == NULL || r->colnames == NULL || r->nrefs == NULL)
        return err_oom(err);
    for (size_t i = 0; i < c->ntables; i++) {
        if (r->job->tables->n > 0 && !cfg_list_has(r->job->tables, c->tables[i].name))
            continue;
        r->tcfg[r->ntabs++] = &c->tables[i];
    }
    if (r->ntabs == 0)
        return err_set(err, OWL_EUSAGE, "no table to export");
    for (size_t i = 0; i < r->job->datasets->n; i++) {
        const char *d = r->job->datasets->v[i];
        size_t len = strlen(d), escapes = 0;
        while (escapes < len && d[len - 1 - escapes] == '\\')
            escapes++;
        if (strchr(d, '%') != NULL && escapes % 2 == 1)
            return err_set(err, OWL_EUSAGE, "dataset pattern %s ends with an escape character (\\)", d);
        /* cfg_list_split splits at commas; dataset names hold none (they came split). */
        if (cfg_list_split(strchr(d, '%') ? &r->patterns : &r->names, d) < 0)
            return err_oom(err);
    }
    return 0;
}

/* The columns that travel: every live column but the configured generated
 * ones and generated (stored) columns. Checks the dataset column and the
 * generated names exist. */
static int table_columns(export_run *r, size_t i, owl_err *err)
{
    const cfg_table *tc = r->tcfg[i];
    const catalog_table *ct = &r->cols[i];
    extract_table *t = &r->tabs[i];
    const char *schema = r->c->schema;

    if (catalog_columns(r->conn, schema, tc->name, &r->cols[i], err) < 0)
        return -1;
    if (ct->ncolumns == 0)
        return err_set(err, OWL_EUSAGE, "table %s.%s does not exist in the source database (or is not visible to this role)",
                       schema, tc->name);
    for (size_t g = 0; g < tc->generated.n; g++) {
        if (catalog_find_column(ct, tc->generated.v[g]) == NULL)
            return err_set(err, OWL_EUSAGE, "[table %s] generated: column %s does not exist in %s.%s", tc->name,
                           tc->generated.v[g], schema, tc->name);
    }
    r->colnames[i] = calloc(ct->ncolumns, sizeof(char *));
    if (r->colnames[i] == NULL)
        return err_oom(err);
    t->name = tc->name;
    t->dataset_column = tc->dataset_column;
    t->only = ct->kind == 'r'; /* a partitioned table is read with its partitions */
    t->columns = r->colnames[i];
    t->ds_field = -1;
    for (size_t k = 0; k < ct->ncolumns; k++) {
        const catalog_column *col = &ct->columns[k];
        if (col->generated || cfg_list_has(&tc->generated, col->name))
            continue;
        if (!text_is_ident(col->name))
            return err_set(err, OWL_EUSAGE, "column \"%s\" of %s has a name owlsync cannot carry\nHINT: list it under generated to leave it out",
                           col->name, tc->name);
        if (strcmp(col->name, tc->dataset_column) == 0) {
            t->ds_field = (int)t->ncolumns;
            t->dataset_type = col->base_type;
        }
        r->colnames[i][t->ncolumns++] = col->name;
    }
    if (tc->dataset_column[0] != '\0' && t->ds_field < 0)
        return err_set(err, OWL_EUSAGE, "[table %s] dataset_column: column %s does not exist in %s.%s", tc->name,
                       tc->dataset_column, schema, tc->name);
    return 0;
}

static bool travels(const extract_table *t, size_t upto, const char *name)
{
    for (size_t k = 0; k < upto; k++) {
        if (strcmp(t->columns[k], name) == 0)
            return true;
    }
    return false;
}

/* The table among the chosen ones called name, or -1. */
static long chosen_table(const export_run *r, const char *name)
{
    for (size_t i = 0; i < r->ntabs; i++) {
        if (strcmp(r->tabs[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

/* Adds to each table, as references, its columns left to the target (listed
 * as generated) that a foreign key of another chosen table references, with
 * every column of it travelling: their source values go along (never
 * written), so that the target can point each child at its own row. */
static int add_refs(export_run *r, owl_err *err)
{
    catalog_fk *fks = NULL;
    size_t nfks = 0;

    if (catalog_foreign_keys(r->conn, r->c->schema, &fks, &nfks, err) < 0)
        return -1;
    for (size_t f = 0; f < nfks; f++) {
        long ci = chosen_table(r, fks[f].child), pi = chosen_table(r, fks[f].parent);
        extract_table *pt;
        bool ok = ci >= 0 && pi >= 0;
        if (!ok)
            continue;
        pt = &r->tabs[pi];
        for (size_t k = 0; ok && k < fks[f].ncolumns; k++)
            ok = travels(&r->tabs[ci], r->tabs[ci].ncolumns - r->nrefs[ci], fks[f].child_columns[k]);
        for (size_t k = 0; ok && k < fks[f].ncolumns; k++) {
            const catalog_column *col = catalog_find_column(&r->cols[pi], fks[f].parent_columns[k]);
            const char *name = fks[f].parent_columns[k];
            if (col == NULL || col->generated || !cfg_list_has(&r->tcfg[pi]->generated, name) ||
                travels(pt, pt->ncolumns, name))
                continue;
            r->colnames[pi][pt->ncolumns++] = col->name;
            r->nrefs[pi]++;
        }
    }
    catalog_fks_free(fks, nfks);
    return 0;
}

/* ---------------------------------------------------------------- read */

/* Connects and begins the snapshot; reads the tables' columns. */
static int ex_snapshot(export_run *r, owl_err *err)
{
    bool share = r->job->parallel > 1;

    if (db_open(r->c->conninfo, "the source database", &r->conn, err) < 0 ||
        source_begin(r->conn, share, &r->snapshot_id, &r->snapshot_at, err) < 0)
        return -1;
    for (size_t i = 0; i < r->ntabs; i++) {
        if (table_columns(r, i, err) < 0)
            return -1;
    }
    return add_refs(r, err);
}

/* With several connections the datasets are found first, so that the parts
 * can read every n-th of them. */
static int find_datasets(export_run *r, owl_err *err)
{
    source_table *st = calloc(r->ntabs, sizeof(*st));
    size_t n = 0;
    int rc = -1;

    if (st == NULL)
        return err_oom(err);
    for (size_t i = 0; i < r->ntabs; i++) {
        if (r->tabs[i].dataset_column[0] != '\0')
            st[n++] = (source_table){r->tabs[i].name, r->tabs[i].dataset_column};
    }
    if (n == 0) {
        rc = 0; /* only global tables: they travel whole; datasets name nothing */
        goto out;
    }
    if (source_find_datasets(r->conn, r->c->schema, st, n, r->names.v, r->names.n, r->patterns.v, r->patterns.n,
                             &r->datasets, &r->ndatasets, err) < 0)
        goto out;
    rc = 0;
out:
    free(st);
    return rc;
}

#define GONE_KEPT_USEC (INT64_C(30) * 86400 * 1000000) /* how long a deleted dataset travels, at least */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether the job's names or patterns choose dataset d. */
static bool chosen(const export_run *r, const char *d)
{
    if (cfg_list_has(&r->names, d))
        return true;
    for (size_t i = 0; i < r->patterns.n; i++) {
        if (text_like(d, r->patterns.v[i]))
            return true;
    }
    return false;
}

static bool in_sorted(char *const *v, size_t n, const char *d)
{
    return n > 0 && bsearch(&d, v, n, sizeof(char *), cmp_names) != NULL;
}

/* Adds to the datasets found those the job carried before that its names or
 * patterns still choose but that have no rows any more: deleted at the
 * source, they travel empty, so that replace removes them at the target, for
 * as long as bundles stay valid and 30 days at least after they were last
 * seen. Then a name that chooses nothing, never seen, is an error (a typo), as
 * is a selection of nothing. */
static int settle_datasets(export_run *r, owl_err *err)
{
    int64_t now = text_now_usec();
    int64_t vf = (int64_t)r->job->valid_for; /* seconds; clamped, so that no sum overflows */
    int64_t keep = vf > INT64_MAX / 4 / 1000000 ? INT64_MAX / 4 : vf * 1000000;
    keep = keep > GONE_KEPT_USEC ? keep : GONE_KEPT_USEC;
    size_t nfound = r->ndatasets, w = 0;
    bool any_dataset_table = false;
    char **grown;

    for (size_t i = 0; i < r->ntabs; i++)
        any_dataset_table = any_dataset_table || r->tabs[i].dataset_column[0] != '\0';
    if (!any_dataset_table)
        return 0; /* only global tables: they travel whole; datasets name nothing */
    r->gone = calloc(r->nknown ? r->nknown : 1, sizeof(char *));
    if (r->gone == NULL)
        return err_oom(err);
    for (size_t k = 0; k < r->nknown; k++) {
        const jobstate_dataset *d = &r->known[k];
        char seen[TEXT_UTC_MAX], shown[256];
        /* a time ahead of the clock (a clock set back) counts as now */
        if ((d->seen < now && now - d->seen > keep) || in_sorted(r->datasets, nfound, d->name) ||
            !chosen(r, d->name))
            continue;
        if ((r->gone[r->ngone] = strdup(d->name)) == NULL)
            return err_oom(err);
        r->ngone++;
        log_info("dataset %s has no rows any more (last seen %s): it travels empty, so that replace removes it",
                 text_clean(d->name, 200, shown, sizeof(shown)), text_utc(d->seen, TEXT_UTC_SECONDS, seen, sizeof(seen)));
    }
    qsort(r->gone, r->ngone, sizeof(char *), cmp_names);
    for (size_t g = 0; g < r->ngone; g++) { /* the file lists each once; a damaged one may not */
        if (w > 0 && strcmp(r->gone[g], r->gone[w - 1]) == 0)
            free(r->gone[g]);
        else
            r->gone[w++] = r->gone[g];
    }
    r->ngone = w;
    grown = realloc(r->datasets, (nfound + r->ngone ? nfound + r->ngone : 1) * sizeof(char *));
    if (grown == NULL)
        return err_oom(err);
    r->datasets = grown;
    for (size_t g = 0; g < r->ngone; g++) {
        if ((r->datasets[nfound + g] = strdup(r->gone[g])) == NULL)
            return err_oom(err);
        r->ndatasets++;
    }
    qsort(r->datasets, r->ndatasets, sizeof(char *), cmp_names);
    for (size_t i = 0; i < r->names.n; i++) {
        if (!in_sorted(r->datasets, r->ndatasets, r->names.v[i]))
            return err_set(err, OWL_EUSAGE, "dataset %s matches no row in any chosen table", r->names.v[i]);
    }
    if (r->ndatasets == 0)
        return err_set(err, OWL_EUSAGE, "the dataset patterns match no row in any chosen table");
    return 0;
}

/* Remembers the datasets this run carried: when each was last seen with rows
 * (now, or as before for one that travels empty). */
static int save_datasets(export_run *r, owl_err *err)
{
    int64_t now = text_now_usec();
    jobstate_dataset *v = calloc(r->ndatasets ? r->ndatasets : 1, sizeof(*v));
    bool *emitted;
    size_t n = 0;
    int rc;

    if (v == NULL)
        return err_oom(err);
    for (size_t i = 0; i < r->ndatasets; i++) {
        if (!in_sorted(r->gone, r->ngone, r->datasets[i]))
            v[n++] = (jobstate_dataset){r->datasets[i], now};
    }
    emitted = calloc(r->ngone ? r->ngone : 1, sizeof(bool));
    if (emitted == NULL) {
        free(v);
        return err_oom(err);
    }
    for (size_t k = 0; k < r->nknown; k++) {
        char *const *at = r->ngone > 0 ? bsearch(&r->known[k].name, r->gone, r->ngone, sizeof(char *), cmp_names) : NULL;
        if (at != NULL && !emitted[at - r->gone]) {
            emitted[at - r->gone] = true; /* once each, whatever a damaged file repeats */
            v[n++] = (jobstate_dataset){r->known[k].name, r->known[k].seen < now ? r->known[k].seen : now};
        }
    }
    free(emitted);
    rc = jobstate_write_datasets(r->c->state_dir, r->job->name, v, n, err);
    free(v);
    return rc;
}

static int write_extracted(void *ctx, size_t i, bundle_writer *w, const char *entry, owl_err *err)
{
    return extract_write_table(ctx, i, w, entry, err);
}

/* The tables read, as the publishing stages take them. */
static int ex_rows(export_run *r, owl_err *err)
{
    r->etabs = calloc(r->ntabs ? r->ntabs : 1, sizeof(*r->etabs));
    r->types = calloc(r->ntabs ? r->ntabs : 1, sizeof(*r->types));
    if (r->etabs == NULL || r->types == NULL)
        return err_oom(err);
    for (size_t i = 0; i < r->ntabs; i++) {
        const extract_table *t = &r->tabs[i];
        exporter_table *et = &r->etabs[i];
        r->types[i] = calloc(t->ncolumns ? t->ncolumns : 1, sizeof(char *));
        if (r->types[i] == NULL)
            return err_oom(err);
        for (size_t k = 0; k < t->ncolumns; k++)
            r->types[i][k] = catalog_find_column(&r->cols[i], t->columns[k])->type;
        et->name = t->name;
        et->dataset_column = t->dataset_column;
        et->columns = t->columns;
        et->types = r->types[i];
        et->ncolumns = t->ncolumns;
        et->nrefs = r->nrefs[i];
        et->rows = t->rows;
        et->bytes = t->bytes;
        memcpy(et->lanes, t->lanes, sizeof(et->lanes));
        memcpy(et->blake2b, t->blake2b, sizeof(et->blake2b));
    }
    r->own = (exporter_rows){.schema = r->c->schema,
                             .snapshot_at = r->snapshot_at,
                             .tables = r->etabs,
                             .ntables = r->ntabs,
                             .datasets = r->datasets,
                             .ndatasets = r->ndatasets,
                             .write = write_extracted,
                             .ctx = r->x};
    r->rows = &r->own;
    return 0;
}

static int ex_read(export_run *r, owl_err *err)
{
    extract_opts o;

    if (r->snapshot_id != NULL && find_datasets(r, err) < 0)
        return -1;
    memset(&o, 0, sizeof(o));
    o.conninfo = r->c->conninfo;
    o.schema = r->c->schema;
    o.snapshot_id = r->snapshot_id;
    o.parallel = r->job->parallel > 1 ? r->job->parallel : 1;
    o.names = r->names.v;
    o.nnames = r->names.n;
    o.patterns = r->patterns.v;
    o.npatterns = r->patterns.n;
    o.datasets = r->datasets;
    o.ndatasets = r->ndatasets;
    o.comp = r->job->compression;
    o.level = r->job->compression_level;
    o.prog = &r->prog;
    if (r->snapshot_id == NULL) {
        if (extract_run(r->conn, r->tabs, r->ntabs, &o, &r->x, &r->datasets, &r->ndatasets, err) < 0)
            return -1;
    } else {
        char **none = NULL;
        size_t nnone = 0;
        if (extract_run(r->conn, r->tabs, r->ntabs, &o, &r->x, &none, &nnone, err) < 0)
            return -1;
    }
    if (settle_datasets(r, err) < 0)
        return -1;
    for (size_t i = 0; i < r->ntabs; i++)
        r->res->rows += r->tabs[i].rows;
    progress_done(&r->prog, "done");
    source_end(r->conn);
    db_close(r->conn);
    r->conn = NULL;
    return ex_rows(r, err);
}

/* ---------------------------------------------------------------- bundle */

/* The content digest skip_unchanged compares: what the bundle says, not when. */
static int content_digest(export_run *r, owl_err *err)
{
    const manifest *m = r->m;
    keys_hash *h = keys_hash_new();
    char num[64];

    if (h == NULL)
        return err_oom(err);
    keys_hash_update(h, m->schema, strlen(m->schema) + 1);
    for (size_t i = 0; i < m->ndatasets; i++)
        keys_hash_update(h, m->datasets[i], strlen(m->datasets[i]) + 1);
    keys_hash_update(h, "|", 1);
    for (size_t i = 0; i < m->ntargets; i++)
        keys_hash_update(h, m->targets[i], strlen(m->targets[i]) + 1);
    for (size_t i = 0; i < r->rows->ntables; i++) {
        const manifest_table *t = &m->tables[i];
        keys_hash_update(h, t->name, strlen(t->name) + 1);
        keys_hash_update(h, t->dataset_column, strlen(t->dataset_column) + 1);
        for (size_t j = 0; j < t->ncolumns; j++) {
            keys_hash_update(h, t->columns[j].name, strlen(t->columns[j].name) + 1);
            keys_hash_update(h, t->columns[j].type, strlen(t->columns[j].type) + 1);
            if (t->columns[j].ref)
                keys_hash_update(h, "ref", 4);
        }
        snprintf(num, sizeof(num), "%llu/%llu", (unsigned long long)t->rows, (unsigned long long)t->bytes);
        keys_hash_update(h, num, strlen(num) + 1);
        keys_hash_update(h, r->rows->tables[i].lanes, sizeof(r->rows->tables[i].lanes));
    }
    keys_hash_final(h, r->digest);
    keys_hash_free(h);
    return 0;
}

/* Which outboxes get this run's bundle: every one (always with force), or
 * with skip_unchanged those whose last bundle (as the job's state knows) had other content or
 * that never received one. Sets *last to the newest bundle of this content
 * that any outbox holds. */
static int choose_outboxes(export_run *r, uint64_t *last, owl_err *err)
{
    const cfg_list *out = r->job->outboxes;

    *last = 0;
    r->deliver = calloc(out->n, sizeof(bool));
    r->delivered = calloc(out->n, sizeof(bool));
    if (r->deliver == NULL || r->delivered == NULL)
        return err_oom(err);
    for (size_t i = 0; i < out->n; i++) {
        const char *digest;
        uint64_t seq;
        /* a state of before outbox records knows nothing of a -o DIR */
        bool known = r->job->remember || !r->st.legacy;
        bool same = known && jobstate_received(&r->st, out->v[i], &seq, &digest) && strcmp(digest, r->digest) == 0;
        r->deliver[i] = r->job->force || !r->job->skip_unchanged || !same;
        if (same && seq > *last)
            *last = seq;
        if (r->deliver[i])
            r->ndeliver++;
    }
    return 0;
}

/* Takes the job's next sequence number and saves it, durably, before any
 * bundle carries it: a run that dies after publishing can never make the next
 * one publish the same number with other content (a number may be skipped). A
 * state_dir that cannot take the write stops the run with nothing published. */
static int reserve_sequence(export_run *r, owl_err *err)
{
    uint64_t next = r->st.sequence + 1;

    if (next > SEQUENCE_MAX)
        return err_set(err, OWL_ERUNTIME, "export job %s has used every sequence number (%s/export-%s.state)",
                       r->job->name, r->c->state_dir, r->job->name);
    r->st.sequence = next;
    if (jobstate_write(r->c->state_dir, r->job->name, &r->st, err) < 0) {
        err_prefix(err, "nothing published: sequence number %llu of export job %s could not be saved first",
                   (unsigned long long)next, r->job->name);
        return err_hint(err, "make room in state_dir %s, or set [owlsync] state_dir to a directory owlsync may write",
                        r->c->state_dir);
    }
    return 0;
}

/* Fills the manifest from what was read, chooses the outboxes, and takes the
 * sequence number. Returns 1 when skip_unchanged finds every outbox holding
 * this content already: nothing is to be published. */
static int ex_manifest(export_run *r, owl_err *err)
{
    const cfg *c = r->c;
    manifest *m = manifest_new();
    char stamp[TEXT_UTC_MAX];
    uint64_t last;

    r->m = m;
    if (m == NULL || manifest_set_string(&m->environment, c->environment) < 0 ||
        manifest_set_string(&m->job, r->job->name) < 0 || manifest_set_string(&m->schema, r->rows->schema) < 0 ||
        manifest_set_string(&m->producer, "owlsync " OWLSYNC_VERSION) < 0)
        return err_oom(err);
    m->snapshot_at = r->rows->snapshot_at;
    for (size_t i = 0; i < r->job->targets->n; i++) {
        if (manifest_add_target(m, r->job->targets->v[i]) < 0)
            return err_oom(err);
    }
    for (size_t i = 0; i < r->rows->ndatasets; i++) {
        if (manifest_add_dataset(m, r->rows->datasets[i]) < 0)
            return err_oom(err);
    }
    for (size_t i = 0; i < r->rows->ntables; i++) {
        const exporter_table *t = &r->rows->tables[i];
        manifest_table *mt = manifest_add_table(m, t->name, t->dataset_column);
        if (mt == NULL)
            return err_oom(err);
        for (size_t k = 0; k < t->ncolumns; k++) {
            if (manifest_table_add_column(mt, t->columns[k], t->types[k]) < 0)
                return err_oom(err);
            mt->columns[k].ref = k >= t->ncolumns - t->nrefs;
        }
        mt->rows = t->rows;
        mt->bytes = t->bytes;
        memcpy(mt->blake2b, t->blake2b, sizeof(mt->blake2b));
    }
    if (content_digest(r, err) < 0 || choose_outboxes(r, &last, err) < 0)
        return -1;
    if (r->ndeliver == 0) {
        log_info("export job %s: unchanged since bundle %llu; nothing published", r->job->name,
                 (unsigned long long)last);
        r->res->unchanged = true;
        r->res->sequence = last;
        return r->job->remember && r->rows == &r->own && save_datasets(r, err) < 0 ? -1 : 1;
    }
    if (r->job->force && r->job->skip_unchanged && last > 0)
        log_info("export job %s: --force: every outbox gets this run's bundle", r->job->name);
    for (size_t i = 0; r->job->skip_unchanged && !r->job->force && last > 0 && i < r->job->outboxes->n; i++) {
        if (r->deliver[i])
            log_info("export job %s: outbox %s has not received bundle %llu or its content: it gets it now",
                     r->job->name, r->job->outboxes->v[i], (unsigned long long)last);
    }
    if (reserve_sequence(r, err) < 0)
        return -1;
    m->sequence = r->st.sequence;
    m->created_at = text_now_usec();
    m->expires_at = m->created_at + r->job->valid_for * 1000000;
    if (keys_random_hex(m->bundle_id, 16) < 0)
        return err_oom(err);
    memcpy(m->key_id, r->pub.id, sizeof(m->key_id));
    snprintf(r->name, sizeof(r->name), "%s_%s_%s_%06llu%s", c->environment, r->job->name,
             text_utc(m->created_at, TEXT_UTC_COMPACT, stamp, sizeof(stamp)), (unsigned long long)m->sequence,
             BUNDLE_SUFFIX);
    return 0;
}

/* Writes manifest, signature and the spooled rows into a new anonymous file. */
static int ex_build(export_run *r, owl_err *err)
{
    const exporter_job *job = r->job;
    bundle_writer *w = NULL;
    char *mjson = NULL;
    size_t mlen = 0, siglen = 0;
    char sig[KEYS_SIGFILE_MAX];
    int fd, rc = -1;

    fd = spool_tmpfile(err);
    if (fd < 0)
        return -1;
    if (manifest_serialize(r->m, &mjson, &mlen, err) < 0 ||
        keys_sign(r->sk, (const unsigned char *)mjson, mlen, sig, &siglen, err) < 0 ||
        bundle_writer_open(fd, job->compression, job->compression_level, r->m->created_at / 1000000, &w, err) < 0 ||
        bundle_writer_add(w, "manifest.json", mjson, mlen, err) < 0 ||
        bundle_writer_add(w, "manifest.sig", sig, siglen, err) < 0)
        goto out;
    for (size_t i = 0; i < r->rows->ntables; i++) {
        if (r->rows->write(r->rows->ctx, i, w, r->m->tables[i].file, err) < 0)
            goto out;
    }
    rc = bundle_writer_close(w, err);
    w = NULL;
    /* Signed, then encrypted: the version-1 bundle, signature and all, goes
     * into the envelope whole. */
    if (rc == 0 && r->nrecipients > 0) {
        int enc = -1;
        rc = -1;
        if (lseek(fd, 0, SEEK_SET) < 0) {
            err_set(err, OWL_ERUNTIME, "cannot read the bundle back to encrypt it: %s", strerror(errno));
            goto out;
        }
        enc = spool_tmpfile(err);
        if (enc < 0)
            goto out;
        if (envelope_encrypt_fd(fd, enc, r->recipients, r->nrecipients, err) < 0) {
            close(enc);
            goto out;
        }
        close(fd);
        fd = enc;
        rc = 0;
    }
    if (rc == 0) {
        r->bundle_fd = fd;
        fd = -1;
    }
out:
    bundle_writer_abort(w);
    if (fd >= 0)
        close(fd);
    free(mjson);
    return rc;
}

/* Copies the bundle into one outbox, durably, under its name, never replacing
 * a file there. seen holds the outboxes published to so far (dev, ino): one
 * directory named twice gets the bundle once. */
static int publish_one(export_run *r, const char *dir, struct stat *seen, size_t nseen, struct stat *st,
                       char **path_out, owl_err *err)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool again = false;
    char path[4200];
    int rc = 0;

    if (dfd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot write to outbox %s: %s", dir, strerror(errno));
    if (fstat(dfd, st) < 0)
        rc = err_set(err, OWL_ERUNTIME, "cannot write to outbox %s: %s", dir, strerror(errno));
    for (size_t i = 0; rc == 0 && i < nseen; i++)
        again = again || (seen[i].st_dev == st->st_dev && seen[i].st_ino == st->st_ino);
    if (rc == 0 && !again)
        rc = fileio_copy_atomic(dfd, dir, r->name, r->bundle_fd, (mode_t)r->job->bundle_mode, FILEIO_NOREPLACE, NULL, 0, err);
    close(dfd);
    if (rc < 0 && err->code == OWL_EUSAGE) /* the name is taken: fileio's only usage error */
        return err_set(err, OWL_ERUNTIME,
                       "%s/%s already exists: sequence number %llu of export job %s was published before, and is "
                       "left as it is\nHINT: was %s/export-%s.state deleted or restored from a copy? the next run "
                       "takes the next number",
                       dir, r->name, (unsigned long long)r->m->sequence, r->job->name, r->c->state_dir, r->job->name);
    if (rc < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dir, r->name);
    *path_out = strdup(path);
    return *path_out != NULL ? 0 : err_oom(err);
}

/* Publishes to every outbox chosen; one failing does not stop the others. */
static int ex_publish(export_run *r, owl_err *err)
{
    exporter_result *res = r->res;
    size_t n = r->job->outboxes->n, nseen = 0;
    struct stat *seen = calloc(n, sizeof(*seen));
    owl_err one;

    res->paths = calloc(n, sizeof(char *));
    if (res->paths == NULL || seen == NULL) {
        free(seen);
        return err_oom(err);
    }
    res->sequence = r->m->sequence;
    for (size_t i = 0; i < n; i++) {
        if (!r->deliver[i])
            continue;
        err_clear(&one);
        if (publish_one(r, r->job->outboxes->v[i], seen, nseen, &seen[nseen], &res->paths[res->npaths], &one) == 0) {
            res->npaths++;
            nseen++;
            r->delivered[i] = true;
        } else {
            log_error("%s", one.msg);
            res->failed_outboxes++;
            *err = one;
        }
    }
    free(seen);
    return 0;
}

/* Once the bundle reached an outbox: saves what each of the job's outboxes
 * received (this bundle, or what it had before), and the datasets carried. A
 * failure leaves the sequence number taken and the outboxes as not having
 * received the bundle: the next run publishes its content again, under a new
 * number. */
static int ex_save(export_run *r, owl_err *err)
{
    const cfg_list *out = r->job->outboxes;
    jobstate next;
    int rc = -1;

    memset(&next, 0, sizeof(next));
    next.sequence = r->st.sequence;
    memcpy(next.digest, r->digest, sizeof(next.digest));
    for (size_t i = 0; i < out->n; i++) {
        const char *digest;
        uint64_t seq;
        if (r->delivered[i]) {
            if (jobstate_set_received(&next, out->v[i], r->m->sequence, r->digest, err) < 0)
                goto out;
        } else if (jobstate_received(&r->st, out->v[i], &seq, &digest)) {
            if (jobstate_set_received(&next, out->v[i], seq, digest, err) < 0)
                goto out;
        }
    }
    if (jobstate_write(r->c->state_dir, r->job->name, &next, err) == 0)
        rc = r->rows == &r->own ? save_datasets(r, err) : 0;
out:
    jobstate_free(&next);
    if (rc < 0)
        err_prefix(err, "bundle %llu published but not recorded (the next run publishes its content again, under "
                   "a new number)",
                   (unsigned long long)r->m->sequence);
    return rc;
}

/* The run's outcome: 0 when every chosen outbox got the bundle. */
static int ex_outcome(export_run *r, owl_err *err)
{
    if (r->res->failed_outboxes == 0)
        return 0;
    if (r->res->npaths > 0)
        err_prefix(err, "bundle %llu published to %zu of %zu outboxes", (unsigned long long)r->m->sequence,
                   r->res->npaths, r->ndeliver);
    return -1;
}

/* ---------------------------------------------------------------- run */

static void run_free(export_run *r)
{
    if (r->conn != NULL) {
        source_end(r->conn);
        db_close(r->conn);
    }
    extract_free(r->x);
    for (size_t i = 0; r->cols != NULL && i < r->ntabs; i++)
        catalog_table_free(&r->cols[i]);
    for (size_t i = 0; r->colnames != NULL && i < r->ntabs; i++)
        free(r->colnames[i]);
    for (size_t i = 0; r->types != NULL && i < r->ntabs; i++)
        free(r->types[i]);
    free(r->types);
    free(r->etabs);
    free(r->colnames);
    free(r->nrefs);
    free(r->cols);
    free(r->tabs);
    free(r->tcfg);
    for (size_t i = 0; i < r->ndatasets; i++)
        free(r->datasets[i]);
    free(r->datasets);
    for (size_t i = 0; i < r->ngone; i++)
        free(r->gone[i]);
    free(r->gone);
    jobstate_datasets_free(r->known, r->nknown);
    jobstate_free(&r->st);
    free(r->deliver);
    free(r->delivered);
    cfg_list_free(&r->names);
    cfg_list_free(&r->patterns);
    free(r->snapshot_id);
    manifest_free(r->m);
    keys_secret_free(r->sk);
    free(r->recipients);
    if (r->bundle_fd >= 0)
        close(r->bundle_fd);
    if (r->lockfd >= 0)
        close(r->lockfd);
}

/* From the rows read to the outboxes: manifest, sequence number, bundle,
 * publishing, and what each outbox received. */
static int ex_finish(export_run *r, owl_err *err)
{
    int got = ex_manifest(r, err);

    if (got != 0)
        return got > 0 ? 0 : -1;
    if (ex_build(r, err) < 0 || ex_publish(r, err) < 0)
        return -1;
    if (r->job->remember && r->res->npaths > 0) {
        owl_err saved;
        err_clear(&saved);
        if (ex_save(r, &saved) < 0) {
            *err = saved; /* the more urgent: it says what the next run does */
            return -1;
        }
    }
    return ex_outcome(r, err);
}

int exporter_run(const cfg *c, const exporter_job *job, exporter_result *res, owl_err *err)
{
    export_run r;
    int rc = -1;

    memset(res, 0, sizeof(*res));
    memset(&r, 0, sizeof(r));
    r.c = c;
    r.job = job;
    r.res = res;
    r.lockfd = r.bundle_fd = -1;
    progress_init(&r.prog, job->progress, "export", true);
    if (ex_check(&r, err) < 0 || ex_tables(&r, err) < 0 || ex_snapshot(&r, err) < 0 || ex_read(&r, err) < 0)
        goto out;
    rc = ex_finish(&r, err);
out:
    if (r.prog.on && rc < 0)
        fputc('\n', stderr);
    run_free(&r);
    return rc;
}

int exporter_publish(const cfg *c, const exporter_job *job, const exporter_rows *rows, exporter_result *res,
                     owl_err *err)
{
    export_run r;
    int rc = -1;

    memset(res, 0, sizeof(*res));
    memset(&r, 0, sizeof(r));
    r.c = c;
    r.job = job;
    r.res = res;
    r.rows = rows;
    r.lockfd = r.bundle_fd = -1;
    for (size_t i = 0; i < rows->ntables; i++)
        res->rows += rows->tables[i].rows;
    if (ex_check(&r, err) == 0)
        rc = ex_finish(&r, err);
    run_free(&r);
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
