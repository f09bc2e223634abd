/* owlsync convert: reads a vendor payload statement by statement into one
 * spool per table (COPY text, compressed as it streams, hashed and digested),
 * collects the rows' datasets, and hands it all to the exporter to publish. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/buf.h"
#include "owlsync/convert.h"
#include "owlsync/copytext.h"
#include "owlsync/keys.h"
#include "owlsync/manifest.h"
#include "owlsync/spool.h"
#include "owlsync/text.h"
#include "owlsync/vendor.h"

#define READ_CHUNK (256 * 1024)
/* The JSON text of one statement: its row, escaped for JSON, may be longer
 * than the row; the row itself is bounded by COPYTEXT_MAX_ROW. */
#define MAX_STATEMENT_JSON ((size_t)2 * COPYTEXT_MAX_ROW)

/* One configured table, and what the payload held of it. */
typedef struct conv_table {
    const cfg_table *tc;
    bool used;
    uint64_t first;                    /* the statement that fixed its column list (from 1) */
    char (*incols)[TEXT_NAME_MAX + 1]; /* the statements' column list */
    size_t nin;
    bool *keep;     /* per statement column: it travels (not generated) */
    char **columns; /* those that travel, pointing into incols */
    char **types;
    size_t ncolumns;
    long ds_field; /* the dataset column in the statements' list, or -1 */
    spool sp;
    keys_hash *h;
    uint64_t rows;
    uint64_t lanes[EXPORTER_LANES];
} conv_table;

/* One conversion in progress. */
typedef struct conv {
    const cfg *c;
    const exporter_job *job;
    const char *what;
    conv_table *t;
    size_t nt;
    vendor_insert ins;
    owl_buf row, ds;
    char schema[TEXT_NAME_MAX + 1];
    char **datasets; /* names seen, compacted (sorted, unique) now and then */
    size_t ndatasets, ncompact;
    uint64_t statements, unpacked;
    exporter_table *et; /* the tables that travel, in config order */
    size_t *eti;        /* their indexes in t */
    size_t net;
} conv;

/* ---------------------------------------------------------------- datasets */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the names seen and drops repeats. */
static void compact(conv *cv)
{
    size_t w = 0;

    qsort(cv->datasets, cv->ndatasets, sizeof(char *), cmp_names);
    for (size_t i = 0; i < cv->ndatasets; i++) {
        if (w > 0 && strcmp(cv->datasets[i], cv->datasets[w - 1]) == 0)
            free(cv->datasets[i]);
        else
            cv->datasets[w++] = cv->datasets[i];
    }
    cv->ndatasets = cv->ncompact = w;
}

/* Notes a row's dataset. Rows come grouped by dataset as a rule: a repeat of
 * the last one costs a compare; the list is compacted before it grows past
 * what the manifest may hold. */
static int add_dataset(conv *cv, const char *name, owl_err *err)
{
    char **grown;

    if (cv->ndatasets > 0 && strcmp(cv->datasets[cv->ndatasets - 1], name) == 0)
        return 0;
    if (cv->ncompact > 0 && bsearch(&name, cv->datasets, cv->ncompact, sizeof(char *), cmp_names) != NULL)
        return 0;
    if (cv->ndatasets == 2 * MANIFEST_MAX_DATASETS) {
        compact(cv);
        if (cv->ndatasets > MANIFEST_MAX_DATASETS)
            return err_set(err, OWL_EUSAGE, "%s: more than %d datasets", cv->what, MANIFEST_MAX_DATASETS);
    }
    if (cv->datasets == NULL) {
        cv->datasets = malloc(2 * MANIFEST_MAX_DATASETS * sizeof(char *));
        if (cv->datasets == NULL)
            return err_oom(err);
    }
    grown = cv->datasets;
    if ((grown[cv->ndatasets] = strdup(name)) == NULL)
        return err_oom(err);
    cv->ndatasets++;
    return 0;
}

/* ---------------------------------------------------------------- statements */

/* Sets err for statement n (from 1), which began at payload byte off, with
 * hint (NULL: the statement shape). */
static int refuse(const conv *cv, uint64_t n, uint64_t off, const char *hint, owl_err *err)
{
    err_prefix(err, "%s: statement %llu (payload byte %llu)", cv->what, (unsigned long long)n,
               (unsigned long long)off + 1);
    if (err->code != OWL_EUSAGE)
        return -1;
    if (hint != NULL)
        return err_hint(err, "%s%snothing was written", hint, *hint ? "; " : "");
    return err_hint(err, "owlsync convert takes only the vendor's dump() statements, "
                         "INSERT INTO schema.table(column, ...) VALUES ('value' or NULL, ...); nothing was written");
}

static conv_table *find_table(conv *cv, const char *name)
{
    for (size_t i = 0; i < cv->nt; i++) {
        if (strcmp(cv->t[i].tc->name, name) == 0)
            return &cv->t[i];
    }
    return NULL;
}

/* The first statement of a table fixes its columns: named as owlsync carries
 * names, once each, the dataset column among them, generated ones left out. */
static int first_of_table(conv *cv, conv_table *t, uint64_t n, owl_err *err)
{
    const vendor_insert *ins = &cv->ins;
    char shown[4 * TEXT_NAME_MAX + 8];

    t->nin = ins->ncolumns;
    t->incols = calloc(t->nin, sizeof(*t->incols));
    t->keep = calloc(t->nin, sizeof(bool));
    t->columns = calloc(t->nin, sizeof(char *));
    t->types = calloc(t->nin, sizeof(char *));
    if (t->incols == NULL || t->keep == NULL || t->columns == NULL || t->types == NULL)
        return err_oom(err);
    t->ds_field = -1;
    for (size_t k = 0; k < t->nin; k++) {
        const char *col = ins->columns[k];
        if (!text_is_ident(col))
            return err_set(err, OWL_EUSAGE, "column \"%s\" of %s has a name owlsync cannot carry",
                           text_clean(col, TEXT_NAME_MAX, shown, sizeof(shown)), t->tc->name);
        for (size_t j = 0; j < k; j++) {
            if (strcmp(t->incols[j], col) == 0)
                return err_set(err, OWL_EUSAGE, "column %s of %s is named twice", col, t->tc->name);
        }
        memcpy(t->incols[k], col, TEXT_NAME_MAX + 1);
        if (strcmp(col, t->tc->dataset_column) == 0)
            t->ds_field = (long)k;
        if (cfg_list_has(&t->tc->generated, col))
            continue;
        t->keep[k] = true;
        t->columns[t->ncolumns] = t->incols[k];
        t->types[t->ncolumns++] = (char *)CONVERT_TYPE;
    }
    if (t->tc->dataset_column[0] != '\0' && t->ds_field < 0)
        return err_set(err, OWL_EUSAGE, "%s has no column %s, its [table] dataset_column", t->tc->name,
                       t->tc->dataset_column);
    if (t->ncolumns == 0)
        return err_set(err, OWL_EUSAGE, "%s: every column named is one the target assigns itself (generated)",
                       t->tc->name);
    spool_init(&t->sp, true, cv->job->compression, cv->job->compression_level);
    if (spool_open(&t->sp, err) < 0)
        return -1;
    if ((t->h = keys_hash_new()) == NULL)
        return err_oom(err);
    t->used = true;
    t->first = n;
    return 0;
}

/* The statement's values as one COPY row of t, and its dataset. */
static int make_row(conv *cv, conv_table *t, owl_err *err)
{
    const vendor_insert *ins = &cv->ins;
    bool first = true;
    int rc = 0;

    buf_clear(&cv->row);
    errno = 0; /* a buffer that cannot grow is ENOMEM; one at its bound, not */
    for (size_t k = 0; rc == 0 && k < ins->ncolumns; k++) {
        if (!t->keep[k])
            continue;
        if (!first)
            rc = buf_add(&cv->row, "\t", 1);
        first = false;
        if (rc == 0)
            rc = vendor_value_copytext(&ins->values[k], &cv->row);
    }
    if (rc == 0)
        rc = buf_add(&cv->row, "\n", 1);
    if (rc < 0)
        return errno == ENOMEM ? err_oom(err)
                               : err_set(err, OWL_EUSAGE, "its row is longer than %d bytes", COPYTEXT_MAX_ROW);
    if (t->ds_field < 0)
        return 0;
    buf_clear(&cv->ds);
    if (ins->values[t->ds_field].kind == VENDOR_NULL)
        return err_set(err, OWL_EUSAGE, "its dataset column %s is NULL", t->tc->dataset_column);
    if (vendor_value_decode(&ins->values[t->ds_field], &cv->ds) < 0)
        return errno == ENOMEM
                   ? err_oom(err)
                   : err_set(err, OWL_EUSAGE, "its dataset name is longer than %d bytes", MANIFEST_TEXT_MAX);
    if (cv->ds.len == 0)
        return err_set(err, OWL_EUSAGE, "its dataset name is empty");
    return add_dataset(cv, cv->ds.p, err);
}

/* Whether the statement lists the same columns as t's first one. */
static bool same_columns(const conv_table *t, const vendor_insert *ins)
{
    if (ins->ncolumns != t->nin)
        return false;
    for (size_t k = 0; k < t->nin; k++) {
        if (strcmp(ins->columns[k], t->incols[k]) != 0)
            return false;
    }
    return true;
}

static int on_statement(void *ctx, const char *s, size_t len, uint64_t index, uint64_t offset, owl_err *err)
{
    conv *cv = ctx;
    uint64_t n = index + 1;
    char shown[4 * TEXT_NAME_MAX + 8];
    unsigned char d[KEYS_ROW_DIGEST_LEN];
    conv_table *t;
    size_t pos;

    cv->statements = n;
    if (vendor_parse(s, len, &cv->ins, &pos, err) < 0) {
        err_prefix(err, "byte %zu", pos + 1);
        return refuse(cv, n, offset, NULL, err);
    }
    if (cv->schema[0] == '\0') {
        if (!text_is_ident(cv->ins.schema)) {
            err_set(err, OWL_EUSAGE, "schema \"%s\" is not a name owlsync carries",
                    text_clean(cv->ins.schema, TEXT_NAME_MAX, shown, sizeof(shown)));
            return refuse(cv, n, offset, "", err);
        }
        memcpy(cv->schema, cv->ins.schema, sizeof(cv->schema));
    } else if (strcmp(cv->schema, cv->ins.schema) != 0) {
        err_set(err, OWL_EUSAGE, "schema \"%s\" is not %s, the schema of statement 1",
                text_clean(cv->ins.schema, TEXT_NAME_MAX, shown, sizeof(shown)), cv->schema);
        return refuse(cv, n, offset, "", err);
    }
    t = find_table(cv, cv->ins.table);
    if (t == NULL) {
        err_set(err, OWL_EUSAGE, "table \"%s\" is not among the tables this conversion carries",
                text_clean(cv->ins.table, TEXT_NAME_MAX, shown, sizeof(shown)));
        return refuse(cv, n, offset, "only configured tables travel (the job's tables, with -j)", err);
    }
    if (!t->used) {
        if (first_of_table(cv, t, n, err) < 0)
            return refuse(cv, n, offset, "", err);
    } else if (!same_columns(t, &cv->ins)) {
        err_set(err, OWL_EUSAGE, "its column list differs from that of statement %llu, the first of %s",
                (unsigned long long)t->first, t->tc->name);
        return refuse(cv, n, offset, "", err);
    }
    if (make_row(cv, t, err) < 0)
        return refuse(cv, n, offset, "", err);
    if (cv->row.len > cv->c->import.max_unpacked_size - cv->unpacked) {
        err_set(err, OWL_EUSAGE, "the rows come to more than [import] max_unpacked_size (%llu bytes)",
                (unsigned long long)cv->c->import.max_unpacked_size);
        return refuse(cv, n, offset, "", err);
    }
    cv->unpacked += cv->row.len;
    keys_row_digest(cv->row.p, cv->row.len, d);
    for (size_t k = 0; k < EXPORTER_LANES; k++) {
        uint64_t lane;
        memcpy(&lane, d + 8 * k, 8);
        t->lanes[k] += lane;
    }
    keys_hash_update(t->h, cv->row.p, cv->row.len);
    if (spool_write(&t->sp, cv->row.p, cv->row.len, err) < 0)
        return -1;
    t->rows++;
    return 0;
}

/* ---------------------------------------------------------------- reading */

/* Reads the whole payload through the walker, bounded by max_bundle_size. */
static int read_payload(conv *cv, int fd, owl_err *err)
{
    uint64_t max = cv->c->import.max_bundle_size, total = 0;
    vendor_array a;
    char *buf = malloc(READ_CHUNK);
    struct stat st;
    int rc = -1;

    vendor_array_init(&a, MAX_STATEMENT_JSON);
    if (buf == NULL) {
        err_oom(err);
        goto out;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        err_set(err, OWL_EUSAGE,
                "%s is %llu bytes, more than [import] max_bundle_size (%llu bytes); nothing was written", cv->what,
                (unsigned long long)st.st_size, (unsigned long long)max);
        goto out;
    }
    for (;;) {
        ssize_t got = read(fd, buf, READ_CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            err_set(err, errno == EISDIR ? OWL_EUSAGE : OWL_ERUNTIME, "cannot read %s: %s", cv->what, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        total += (uint64_t)got;
        if (total > max) {
            err_set(err, OWL_EUSAGE, "%s is more than [import] max_bundle_size (%llu bytes); nothing was written",
                    cv->what, (unsigned long long)max);
            goto out;
        }
        if (vendor_array_feed(&a, buf, (size_t)got, on_statement, cv, err) < 0)
            goto out;
    }
    if (vendor_array_end(&a, err) < 0)
        goto out;
    if (cv->statements == 0) {
        err_set(err, OWL_EUSAGE, "%s holds no statement: nothing to convert", cv->what);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0 && err->code == OWL_EUSAGE && strncmp(err->msg, cv->what, strlen(cv->what)) != 0)
        err_prefix(err, "%s", cv->what);
    vendor_array_free(&a);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- publishing */

static int write_table(void *ctx, size_t i, bundle_writer *w, const char *entry, owl_err *err)
{
    conv *cv = ctx;
    const conv_table *t = &cv->t[cv->eti[i]];

    if (bundle_writer_begin(w, entry, t->sp.bytes, err) < 0)
        return -1;
    if (lseek(t->sp.fd, 0, SEEK_SET) < 0)
        return err_set(err, OWL_ERUNTIME, "cannot rewind spool: %s", strerror(errno));
    return bundle_writer_copy_frames(w, entry, t->sp.fd, t->sp.zbytes, t->sp.bytes, err);
}

/* The tables the payload held, in config order, as the exporter takes them. */
static int finish(conv *cv, owl_err *err)
{
    cv->et = calloc(cv->nt ? cv->nt : 1, sizeof(*cv->et));
    cv->eti = calloc(cv->nt ? cv->nt : 1, sizeof(size_t));
    if (cv->et == NULL || cv->eti == NULL)
        return err_oom(err);
    for (size_t i = 0; i < cv->nt; i++) {
        conv_table *t = &cv->t[i];
        exporter_table *et = &cv->et[cv->net];
        if (!t->used)
            continue;
        if (spool_finish(&t->sp, err) < 0)
            return -1;
        keys_hash_final(t->h, et->blake2b);
        et->name = t->tc->name;
        et->dataset_column = t->tc->dataset_column;
        et->columns = t->columns;
        et->types = t->types;
        et->ncolumns = t->ncolumns;
        et->rows = t->rows;
        et->bytes = t->sp.bytes;
        memcpy(et->lanes, t->lanes, sizeof(et->lanes));
        cv->eti[cv->net++] = i;
    }
    compact(cv);
    if (cv->ndatasets > MANIFEST_MAX_DATASETS)
        return err_set(err, OWL_EUSAGE, "%s: more than %d datasets", cv->what, MANIFEST_MAX_DATASETS);
    return 0;
}

static void conv_free(conv *cv)
{
    for (size_t i = 0; cv->t != NULL && i < cv->nt; i++) {
        conv_table *t = &cv->t[i];
        spool_close(&t->sp);
        keys_hash_free(t->h);
        free(t->incols);
        free(t->keep);
        free(t->columns);
        free(t->types);
    }
    free(cv->t);
    for (size_t i = 0; i < cv->ndatasets; i++)
        free(cv->datasets[i]);
    free(cv->datasets);
    free(cv->et);
    free(cv->eti);
    vendor_insert_free(&cv->ins);
    buf_free(&cv->row);
    buf_free(&cv->ds);
}

int convert_run(const cfg *c, const exporter_job *job, int fd, const char *what, exporter_result *res, owl_err *err)
{
    exporter_rows rows;
    struct stat st;
    conv cv;
    int rc = -1;

    memset(res, 0, sizeof(*res));
    memset(&cv, 0, sizeof(cv));
    cv.c = c;
    cv.job = job;
    cv.what = what;
    cv.row = (owl_buf)OWL_BUF_INIT((size_t)COPYTEXT_MAX_ROW + 1);
    cv.ds = (owl_buf)OWL_BUF_INIT(MANIFEST_TEXT_MAX);
    cv.t = calloc(c->ntables ? c->ntables : 1, sizeof(*cv.t));
    if (cv.t == NULL) {
        err_oom(err);
        goto out;
    }
    for (size_t i = 0; i < job->tables->n; i++) {
        if (cfg_find_table(c, job->tables->v[i]) == NULL) {
            err_set(err, OWL_EUSAGE, "table %s is not configured\nHINT: add a [table %s] section", job->tables->v[i],
                    job->tables->v[i]);
            goto out;
        }
    }
    for (size_t i = 0; i < c->ntables; i++) {
        if (job->tables->n > 0 && !cfg_list_has(job->tables, c->tables[i].name))
            continue;
        cv.t[cv.nt].tc = &c->tables[i];
        spool_init(&cv.t[cv.nt].sp, true, job->compression, job->compression_level);
        cv.nt++;
    }
    if (read_payload(&cv, fd, err) < 0 || finish(&cv, err) < 0)
        goto out;
    memset(&rows, 0, sizeof(rows));
    rows.schema = cv.schema;
    rows.snapshot_at = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                           ? (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000
                           : text_now_usec();
    rows.tables = cv.et;
    rows.ntables = cv.net;
    rows.datasets = cv.datasets;
    rows.ndatasets = cv.ndatasets;
    rows.write = write_table;
    rows.ctx = &cv;
    rc = exporter_publish(c, job, &rows, res, err);
out:
    conv_free(&cv);
    return rc;
}
