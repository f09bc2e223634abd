/* owlsync importer: the import pipeline, stage by stage: verify the bundle and
 * its policy, begin the one transaction (locked, with the ledger), plan each
 * table from the target's catalog, stage its rows with COPY (rewritten as they
 * stream), apply them by mode in foreign-key order, record the ledger, commit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "owlsync/catalog.h"
#include "owlsync/copytext.h"
#include "owlsync/importer.h"
#include "owlsync/ledger.h"
#include "owlsync/log.h"
#include "owlsync/manifest.h"
#include "owlsync/policy.h"
#include "owlsync/progress.h"
#include "owlsync/stage.h"
#include "owlsync/text.h"

#define COPY_CHUNK (256 * 1024)

/* What the importer knows of one bundle table in the target. */
typedef struct table_plan {
    const manifest_table *mt;
    const cfg_table *ct;
    const cfg_mode_info *mode;
    catalog_table cat;      /* the target's columns */
    catalog_table_keys tk;  /* the target's unique keys */
    char **columns;         /* the bundle's column names (into mt) */
    bool *exact_eq;         /* per bundle column */
    char **key;             /* the key rows are matched by (owned), or none */
    size_t nkey;
    bool key_enforced;      /* the target keeps the key unique and without NULLs */
    bool *always;           /* per bundle column: GENERATED ALWAYS AS IDENTITY */
    bool *ref;              /* per bundle column: a reference (the source's values, never written) */
    bool has_refs;
    size_t *trans;          /* foreign keys (into x->fks) whose values follow their parents */
    size_t ntrans;
    const catalog_column **sequenced; /* bundle columns with sequences behind them (into cat) */
    size_t nsequenced;
    char **scope;           /* the target's names of the bundle's datasets, or NULL */
    size_t nscope;
    stage_table st;
    importer_table *out;
    rewrite_table *rw;      /* NULL when no rule applies to this table */
    bool may_direct;        /* nothing of its own keeps it from a direct COPY */
    bool scope_empty;       /* the target held no row in its scope (may_direct only) */
    uint64_t copied;        /* rows a direct COPY wrote */
    bool matched;           /* to_delete and to_insert were counted */
    uint64_t to_delete;     /* target rows in scope no bundle row matches */
    uint64_t to_insert;     /* bundle rows no target row in scope matches */
} table_plan;

/* One import in progress: what each stage leaves for the next. */
typedef struct import_run {
    const cfg *c;
    const keys_trust *trust;
    const rewrite_set *rs;
    const char *path;
    const importer_opts *opts;
    importer_result *res;
    bundle_reader *r;
    const manifest *m;
    db_conn *conn;
    bool own_conn;              /* opened here, closed at the end */
    table_plan *plans;
    size_t n;
    catalog_fk *fks;
    size_t nfks;
    char **dstables;            /* the bundle's dataset tables (names into m) */
    size_t ndstables;
    progress prog;
} import_run;

/* ------------------------------------------------------------------ verify */

/* Gives each table the rules that apply to it; tables with none pay nothing. */
static int plan_rewrites(import_run *x, owl_err *err)
{
    importer_result *res = x->res;
    size_t nrules = x->rs != NULL ? rewrite_rule_count(x->rs) : 0;

    if (nrules == 0)
        return 0;
    res->rules = calloc(nrules, sizeof(char *));
    if (res->rules == NULL)
        return err_oom(err);
    res->nrules = nrules;
    for (size_t i = 0; i < nrules; i++)
        res->rules[i] = rewrite_rule_name(x->rs, i);
    for (size_t i = 0; i < x->n; i++) {
        table_plan *p = &x->plans[i];
        if (rewrite_table_new(x->rs, p->mt, &p->rw, err) < 0)
            return -1;
        p->out->rewritten = calloc(nrules, sizeof(uint64_t));
        p->out->covered = calloc(nrules, sizeof(bool));
        if (p->out->rewritten == NULL || p->out->covered == NULL)
            return err_oom(err);
        for (size_t k = 0; k < nrules; k++)
            p->out->covered[k] = rewrite_table_covers(p->rw, k);
        if (!rewrite_table_active(p->rw)) {
            rewrite_table_free(p->rw);
            p->rw = NULL;
        }
    }
    return 0;
}

/* Opens the bundle: by path, or through a descriptor of its own on the
 * claimed file. */
static int open_bundle(const import_run *x, bundle_reader **r, owl_err *err)
{
    bundle_limits lim = {x->c->import.max_bundle_size, x->c->import.max_unpacked_size};
    int fd;

    if (!x->opts->by_fd)
        return bundle_open(x->path, &lim, x->trust, r, err);
    fd = fcntl(x->opts->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return err_set(err, OWL_ERUNTIME, "cannot read %s: %s", x->path, strerror(errno));
    return bundle_open_fd(fd, x->path, &lim, x->trust, r, err);
}

/* Reads every data entry of whole to check its hash, as bundle_verify_rest
 * does, with the progress line ("verifying", percentage of the unpacked
 * bytes) when one is shown: a person at a terminal sees the first of the two
 * passes move too. Without one, it is bundle_verify_rest. */
static int verify_entries(import_run *x, bundle_reader *whole, owl_err *err)
{
    const manifest *m = bundle_manifest(whole);
    const manifest_table *t;
    uint64_t total = 0;
    char *buf;
    ssize_t n = 0;
    int rc;

    if (!x->prog.on)
        return bundle_verify_rest(whole, err);
    if ((buf = malloc(COPY_CHUNK)) == NULL)
        return err_oom(err);
    for (size_t i = 0; i < m->ntables; i++)
        total += m->tables[i].bytes;
    progress_total(&x->prog, total);
    while ((rc = bundle_next_table(whole, &t, err)) > 0) {
        while ((n = bundle_read(whole, buf, COPY_CHUNK, err)) > 0)
            progress_add(&x->prog, "verifying", 0, (uint64_t)n);
        if (n < 0)
            break;
    }
    free(buf);
    return n < 0 ? -1 : rc;
}

/* Opens and verifies the bundle, checks policy, and sets up a plan per table. */
static int im_verify(import_run *x, owl_err *err)
{
    importer_result *res = x->res;
    const manifest *m;

    /* Verify: nothing of the bundle is believed before its signature holds,
     * and no byte of a data entry is parsed (rewritten, sent to COPY) before
     * the whole entry matched its hash: one reading pass over everything
     * first. So a copy with other data under a signed manifest is never
     * taken for a bundle imported before, either. */
    if (open_bundle(x, &x->r, err) < 0)
        return -1;
    if (x->c->import.require_encryption && bundle_decrypted_with(x->r) == NULL)
        return err_set(err, OWL_EPOLICY,
                       "bundle is not encrypted, and this environment requires encryption\nHINT: require_encryption = true in the [import] section; the exporting job needs encrypt_to lines");
    {
        bundle_reader *whole = NULL;
        int rc = open_bundle(x, &whole, err) < 0 ? -1 : verify_entries(x, whole, err);
        bundle_close(whole);
        if (rc < 0)
            return -1;
    }
    m = x->m = bundle_manifest(x->r);
    memcpy(res->bundle_id, m->bundle_id, sizeof(res->bundle_id));
    res->environment = strdup(m->environment);
    res->job = strdup(m->job);
    res->sequence = m->sequence;
    res->ndatasets = m->ndatasets;
    if (res->environment == NULL || res->job == NULL)
        return err_oom(err);
    if (policy_check(x->c, m, text_now_usec(), err) < 0)
        return -1;
    x->plans = calloc(m->ntables ? m->ntables : 1, sizeof(*x->plans));
    res->tables = calloc(m->ntables ? m->ntables : 1, sizeof(*res->tables));
    if (x->plans == NULL || res->tables == NULL)
        return err_oom(err);
    x->n = res->ntables = m->ntables;
    for (size_t i = 0; i < m->ntables; i++) {
        table_plan *p = &x->plans[i];
        p->mt = &m->tables[i];
        p->ct = cfg_find_table(x->c, p->mt->name);
        p->mode = &cfg_modes[p->ct->mode];
        p->out = &res->tables[i];
        p->out->name = strdup(p->mt->name);
        p->out->rows = p->mt->rows;
        if (p->out->name == NULL)
            return err_oom(err);
    }
    return plan_rewrites(x, err);
}

/* ------------------------------------------------------------------ begin */

/* Connects, begins the transaction under the import lock, makes sure of the
 * ledger. Returns 1 when the bundle was imported before, 2 when it is
 * superseded: nothing to do. */
static int im_begin(import_run *x, owl_err *err)
{
    const manifest *m = x->m;
    char what[1024], snap[TEXT_UTC_MAX], other[256], shown[512];
    int got;

    x->dstables = calloc(m->ntables ? m->ntables : 1, sizeof(char *));
    if (x->dstables == NULL)
        return err_oom(err);
    for (size_t i = 0; i < m->ntables; i++) {
        if (m->tables[i].dataset_column[0] != '\0')
            x->dstables[x->ndstables++] = m->tables[i].name;
    }
    if (x->opts->conn != NULL) {
        x->conn = x->opts->conn; /* kept by the caller: only the transaction is ours */
    } else {
        if (db_open(x->c->conninfo, "the target database", &x->conn, err) < 0)
            return -1;
        x->own_conn = true;
    }
    if (stage_begin(x->conn, x->c->import.lock_timeout, err) < 0 ||
        ledger_lock(x->conn, err) < 0 || ledger_ensure(x->conn, err) < 0)
        return -1;
    /* The same bundle is the same id from the same environment and key: an id
     * is readable by anyone with access to the share, and a bundle of another
     * source reusing it must not turn the real one into a no-op. */
    got = ledger_has_bundle(x->conn, m->bundle_id, m->environment, m->key_id, other, sizeof(other), err);
    if (got == 2) {
        log_warn("bundle %s of %s (key %s) reuses the id of a bundle imported from %s: refused", m->bundle_id,
                 m->environment, m->key_id, other);
        return err_set(err, OWL_EPOLICY, "bundle id %s was imported before from %s, not from environment %s with key %s",
                       m->bundle_id, other, m->environment, m->key_id);
    }
    if (got != 0)
        return got;
    /* A bundle older than what the target holds for every one of its
     * datasets' tables is superseded: it came late, and there is nothing to
     * do. Older for some of them only, it would roll those back. */
    {
        ledger_bundle_ref b = {m->environment, m->job, m->sequence, m->snapshot_at,
                               m->datasets, m->ndatasets, x->dstables, x->ndstables};
        ledger_order o;
        if (ledger_order_of(x->conn, &b, &o, err) < 0)
            return -1;
        if (o.disagree > 0)
            log_warn("bundle %llu of %s/%s: its sequence and its snapshot time (%s) disagree with bundle %llu "
                     "imported before; the source's clock stepped back, or its job state was reset: taken as newer",
                     (unsigned long long)m->sequence, m->environment, m->job,
                     text_utc(m->snapshot_at, TEXT_UTC_MICROS, snap, sizeof(snap)), (unsigned long long)o.sequence);
        if (o.newer == 0)
            return 0;
        text_utc(m->snapshot_at, TEXT_UTC_MICROS, snap, sizeof(snap));
        text_clean(o.what, 300, shown, sizeof(shown));
        snprintf(what, sizeof(what), "%s was imported from bundle %llu of job %s, a snapshot of %s; this bundle is %llu, a snapshot of %s",
                 shown, (unsigned long long)o.sequence, o.job, o.when, (unsigned long long)m->sequence, snap);
        if (x->opts->allow_rollback) {
            log_warn("applying an older bundle (--allow-rollback): %s", what);
            return 0;
        }
        if (o.newer == o.pairs) {
            snprintf(x->res->superseded, sizeof(x->res->superseded), "%s", what);
            return 2;
        }
        return err_set(err, OWL_EPOLICY,
                       "bundle is older than what this database holds for %llu of its %llu (dataset, table) pairs: %s"
                       "\nHINT: --allow-rollback applies it anyway",
                       (unsigned long long)o.newer, (unsigned long long)o.pairs, what);
    }
}

/* ------------------------------------------------------------------ plan */

/* Whether the bundle carries column name of mt as data (written to the target). */
static bool bundle_has_column(const manifest_table *mt, const char *name)
{
    for (size_t j = 0; j < mt->ncolumns; j++) {
        if (strcmp(mt->columns[j].name, name) == 0)
            return !mt->columns[j].ref;
    }
    return false;
}

/* The column of mt called name, or NULL. */
static const manifest_column *bundle_column(const manifest_table *mt, const char *name)
{
    for (size_t j = 0; j < mt->ncolumns; j++) {
        if (strcmp(mt->columns[j].name, name) == 0)
            return &mt->columns[j];
    }
    return NULL;
}

/* Notes a target column that may not hold every value of the source's. */
static int warn_narrower(import_run *x, const manifest_table *mt, const manifest_column *src, const catalog_column *tgt,
                         owl_err *err)
{
    importer_result *res = x->res;
    const char *lost = catalog_narrower(src->type, tgt->type);
    char text[512], **grown;

    if (lost == NULL)
        return 0;
    snprintf(text, sizeof(text), "%s.%s: the source's %s values %s in the target's %s", mt->name, src->name,
             src->type, lost, tgt->type);
    log_warn("%s", text);
    grown = realloc(res->warnings, (res->nwarnings + 1) * sizeof(char *));
    if (grown == NULL)
        return err_oom(err);
    res->warnings = grown;
    if ((res->warnings[res->nwarnings] = strdup(text)) == NULL)
        return err_oom(err);
    res->nwarnings++;
    return 0;
}

/* The target's columns of one table, checked against the bundle's. */
static int plan_columns(import_run *x, table_plan *p, owl_err *err)
{
    const char *schema = x->c->schema;
    const manifest_table *mt = p->mt;

    if (p->cat.ncolumns == 0)
        return err_set(err, OWL_EUSAGE, "table %s.%s does not exist in the target database", schema, mt->name);
    p->columns = calloc(mt->ncolumns ? mt->ncolumns : 1, sizeof(char *));
    p->exact_eq = calloc(mt->ncolumns ? mt->ncolumns : 1, sizeof(bool));
    p->always = calloc(mt->ncolumns ? mt->ncolumns : 1, sizeof(bool));
    p->sequenced = calloc(mt->ncolumns ? mt->ncolumns : 1, sizeof(*p->sequenced));
    p->ref = calloc(mt->ncolumns ? mt->ncolumns : 1, sizeof(bool));
    if (p->columns == NULL || p->exact_eq == NULL || p->always == NULL || p->sequenced == NULL || p->ref == NULL)
        return err_oom(err);
    for (size_t j = 0; j < mt->ncolumns; j++) {
        const catalog_column *col = catalog_find_column(&p->cat, mt->columns[j].name);
        if (col == NULL)
            return err_set(err, OWL_EUSAGE, "bundle column %s.%s does not exist in the target table %s.%s", mt->name,
                           mt->columns[j].name, schema, mt->name);
        p->columns[j] = mt->columns[j].name;
        p->exact_eq[j] = col->exact_eq;
        p->always[j] = col->identity == 'a';
        p->ref[j] = mt->columns[j].ref;
        p->has_refs = p->has_refs || p->ref[j];
        if (p->ref[j])
            continue; /* staged to translate references, never written */
        if (warn_narrower(x, mt, &mt->columns[j], col, err) < 0)
            return -1;
        if (col->nsequences > 0)
            p->sequenced[p->nsequenced++] = col;
    }
    return 0;
}

static int set_key(table_plan *p, char *const *cols, size_t n, owl_err *err)
{
    p->key = calloc(n, sizeof(char *));
    if (p->key == NULL)
        return err_oom(err);
    for (size_t i = 0; i < n; i++) {
        p->key[i] = strdup(cols[i]);
        if (p->key[i] == NULL)
            return err_oom(err);
        p->nkey++;
    }
    return 0;
}

/* Whether the target itself keeps p's key unique and free of NULLs: a unique
 * index on some of its columns, every one NOT NULL. */
static bool key_enforced(const table_plan *p, const catalog_key *keys, size_t nkeys)
{
    for (size_t i = 0; i < p->nkey; i++) {
        const catalog_column *col = catalog_find_column(&p->cat, p->key[i]);
        if (col == NULL || !col->not_null)
            return false;
    }
    for (size_t k = 0; k < nkeys; k++) {
        bool within = keys[k].immediate; /* a deferrable one checks nothing while COPY writes */
        for (size_t i = 0; within && i < keys[k].ncolumns; i++)
            within = cfg_list_has(&(cfg_list){p->key, p->nkey}, keys[k].columns[i]);
        if (within)
            return true;
    }
    return false;
}

/* Picks the key rows are matched by: the configured key, else the primary key,
 * else a unique index on NOT NULL columns, whose columns all travel in the
 * bundle (none generated by the target). A dataset table's key holds its
 * dataset column (added when it lacks it), so that a match never reaches a
 * row of another dataset. */
static int plan_key(import_run *x, table_plan *p, owl_err *err)
{
    const char *dscol = p->mt->dataset_column;
    const catalog_key *keys = p->tk.keys;
    size_t nkeys = p->tk.nkeys;
    int rc = 0;

    for (size_t i = 0; i < p->ct->key.n; i++) {
        if (!bundle_has_column(p->mt, p->ct->key.v[i]))
            return err_set(err, OWL_EUSAGE, "[table %s] key: column %s is not in the bundle", p->mt->name,
                           p->ct->key.v[i]);
    }
    if (p->ct->key.n > 0)
        rc = set_key(p, p->ct->key.v, p->ct->key.n, err);
    for (size_t k = 0; k < nkeys && p->nkey == 0 && rc == 0; k++) {
        bool ok = keys[k].not_null;
        for (size_t i = 0; ok && i < keys[k].ncolumns; i++)
            ok = bundle_has_column(p->mt, keys[k].columns[i]) && !cfg_list_has(&p->ct->generated, keys[k].columns[i]);
        if (ok)
            rc = set_key(p, keys[k].columns, keys[k].ncolumns, err);
    }
    if (rc == 0 && p->nkey > 0 && dscol[0] != '\0' && !cfg_list_has(&(cfg_list){p->key, p->nkey}, dscol)) {
        char **grown = realloc(p->key, (p->nkey + 1) * sizeof(char *));
        if (grown == NULL || (grown[p->nkey] = strdup(dscol)) == NULL) {
            if (grown != NULL)
                p->key = grown;
            rc = err_oom(err);
        } else {
            p->key = grown;
            p->nkey++;
            log_debug("%s: key completed with its dataset column %s", p->mt->name, dscol);
        }
    }
    if (rc == 0)
        p->key_enforced = key_enforced(p, keys, nkeys);
    if (rc == 0 && p->nkey == 0 && p->mode->needs_key)
        return err_set(err, OWL_EUSAGE, "table %s has no usable key for mode %s\nHINT: set key = COLUMNS in [table %s]",
                       p->mt->name, p->mode->name, p->mt->name);
    return rc;
}

/* The target's names of the bundle's datasets for one table: rules on its
 * dataset column (a tenant prefix, say) apply to the scope as to the rows. */
static int plan_scope(import_run *x, table_plan *p, owl_err *err)
{
    const manifest *m = x->m;

    if (p->scope != NULL)
        return 0;
    p->scope = calloc(m->ndatasets ? m->ndatasets : 1, sizeof(char *));
    if (p->scope == NULL)
        return err_oom(err);
    for (size_t i = 0; i < m->ndatasets; i++) {
        if (p->rw != NULL && p->mt->dataset_column[0] != '\0') {
            if (rewrite_value(p->rw, p->mt->dataset_column, m->datasets[i], &p->scope[i], err) < 0)
                return -1;
        } else if ((p->scope[i] = strdup(m->datasets[i])) == NULL) {
            return err_oom(err);
        }
        p->nscope++;
    }
    p->st.scope = p->scope;
    p->st.nscope = p->nscope;
    return 0;
}

static void drop_scope(table_plan *p)
{
    for (size_t i = 0; i < p->nscope; i++)
        free(p->scope[i]);
    free(p->scope);
    p->scope = NULL;
    p->nscope = 0;
    p->st.scope = NULL;
    p->st.nscope = 0;
}

static table_plan *plan_of(import_run *x, const char *table)
{
    for (size_t i = 0; i < x->n; i++) {
        if (strcmp(x->plans[i].mt->name, table) == 0)
            return &x->plans[i];
    }
    return NULL;
}

static bool travels_all(const manifest_table *mt, char *const *columns, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!bundle_has_column(mt, columns[k]))
            return false;
    }
    return true;
}

/* Every reference the bundle carries is read by a foreign key of this
 * database that follows it: the source had one, and without it here the
 * child's values would land as the source's ids. */
static int refs_read(import_run *x, owl_err *err)
{
    for (size_t i = 0; i < x->n; i++) {
        const table_plan *p = &x->plans[i];
        for (size_t j = 0; j < p->mt->ncolumns; j++) {
            bool read = false;
            if (!p->ref[j])
                continue;
            for (size_t c = 0; c < x->n && !read; c++) {
                for (size_t k = 0; k < x->plans[c].ntrans && !read; k++) {
                    const catalog_fk *fk = &x->fks[x->plans[c].trans[k]];
                    for (size_t m = 0; m < fk->ncolumns && !read; m++)
                        read = strcmp(fk->parent, p->mt->name) == 0 &&
                               strcmp(fk->parent_columns[m], p->mt->columns[j].name) == 0;
                }
            }
            if (!read)
                return err_set(err, OWL_EUSAGE,
                               "the bundle carries %s.%s as a reference (the source has a foreign key to it), but "
                               "no foreign key of this database follows it: the referencing values would land as "
                               "the source's ids\nHINT: give this database the source's foreign keys",
                               p->mt->name, p->mt->columns[j].name);
        }
    }
    return 0;
}

/* Which foreign keys among the bundle's tables carry values that must follow
 * their parents: the child's columns travel, the parent's referenced columns
 * are ones the target assigns itself (references in the bundle). A reference
 * to a column the bundle does not carry at all, of a table it does, would
 * land pointing at whatever row holds the source's value: refused. */
static int plan_refs(import_run *x, owl_err *err)
{
    for (size_t f = 0; f < x->nfks; f++) {
        const catalog_fk *fk = &x->fks[f];
        table_plan *child = plan_of(x, fk->child), *parent = plan_of(x, fk->parent);
        bool travels = false, follows = false;
        const char *missing = NULL;
        size_t *grown;

        travels = child != NULL && travels_all(child->mt, fk->child_columns, fk->ncolumns);
        if (travels && parent == NULL) {
            /* the parent stays behind: its ids must be the same on both sides */
            const cfg_table *pc = cfg_find_table(x->c, fk->parent);
            for (size_t k = 0; pc != NULL && k < fk->ncolumns; k++) {
                if (cfg_list_has(&pc->generated, fk->parent_columns[k]))
                    return err_set(err, OWL_EUSAGE,
                                   "foreign key %s of %s references %s.%s, which this database assigns itself, "
                                   "but the bundle does not carry %s: its values would point at other rows "
                                   "here\nHINT: export %s together with %s",
                                   fk->name, fk->child, fk->parent, fk->parent_columns[k], fk->parent, fk->parent,
                                   fk->child);
            }
        }
        if (!travels || parent == NULL)
            continue; /* not between the bundle's tables, or nothing of the child's side travels */
        for (size_t k = 0; k < fk->ncolumns; k++) {
            const manifest_column *col = bundle_column(parent->mt, fk->parent_columns[k]);
            if (col == NULL)
                missing = fk->parent_columns[k];
            else
                follows = follows || col->ref;
        }
        if (missing != NULL)
            return err_set(err, OWL_EUSAGE,
                           "foreign key %s of %s references %s.%s, which the bundle does not carry: its values would "
                           "point at other rows in this database\nHINT: the source needs the same foreign key (its "
                           "values then travel as references), or %s.%s must travel",
                           fk->name, fk->child, fk->parent, missing, fk->parent, missing);
        if (!follows)
            continue; /* the referenced values travel as they are */
        if (child == parent)
            return err_set(err, OWL_EUSAGE,
                           "foreign key %s of %s references its own table's %s, which this database assigns itself: "
                           "owlsync cannot make such references follow their rows\nHINT: let the column travel "
                           "(remove it from generated on both sides)",
                           fk->name, fk->child, fk->parent_columns[0]);
        if (parent->nkey == 0)
            return err_set(err, OWL_EUSAGE,
                           "foreign key %s of %s references %s, whose rows have no key to be matched by, so its "
                           "references cannot follow them\nHINT: set key = COLUMNS in [table %s]",
                           fk->name, fk->child, fk->parent, fk->parent);
        grown = realloc(child->trans, (child->ntrans + 1) * sizeof(size_t));
        if (grown == NULL)
            return err_oom(err);
        child->trans = grown;
        child->trans[child->ntrans++] = f;
    }
    return refs_read(x, err);
}

/* What the target's catalog says of the bundle's tables, read for all of
 * them at once: a few statements, however many tables. */
static int read_catalog(import_run *x, owl_err *err)
{
    const char **names = calloc(x->n ? x->n : 1, sizeof(char *));
    catalog_table *cats = calloc(x->n ? x->n : 1, sizeof(*cats));
    catalog_table_keys *tks = calloc(x->n ? x->n : 1, sizeof(*tks));
    int rc = -1;

    if (names == NULL || cats == NULL || tks == NULL) {
        err_oom(err);
        goto out;
    }
    for (size_t i = 0; i < x->n; i++)
        names[i] = x->plans[i].mt->name;
    if (catalog_tables(x->conn, x->c->schema, names, x->n, cats, err) < 0)
        goto out;
    if (catalog_unique_keys_of(x->conn, x->c->schema, names, x->n, tks, err) < 0) {
        for (size_t i = 0; i < x->n; i++)
            catalog_table_free(&cats[i]);
        goto out;
    }
    for (size_t i = 0; i < x->n; i++) {
        x->plans[i].cat = cats[i];
        x->plans[i].tk = tks[i];
    }
    rc = 0;
out:
    free(names);
    free(cats);
    free(tks);
    return rc;
}

/* Every TABLE.COLUMN and *.COLUMN of the [rewrite] rules names a column, of
 * the target's table or of the bundle's: a typo would let values through
 * unrewritten. Tables the bundle lacks are looked up in the target only when
 * a rule needs them. Refused (OWL_EUSAGE) before anything is written. */
static int bind_rewrites(import_run *x, owl_err *err)
{
    const cfg *c = x->c;
    rewrite_columns *rc = NULL;
    const char **names = NULL, **others = NULL;
    catalog_table *more = NULL;
    size_t total = 0, at = 0, nrc = 0, nothers = 0;
    int got = -1;

    if (c->nrewrites == 0)
        return 0;
    others = calloc(c->ntables + 1, sizeof(*others));
    more = calloc(c->ntables + 1, sizeof(*more));
    rc = calloc(x->n + c->ntables + 1, sizeof(*rc));
    if (others == NULL || more == NULL || rc == NULL) {
        err_oom(err);
        goto out;
    }
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < x->n; i++)
            total += x->plans[i].cat.ncolumns + x->plans[i].mt->ncolumns;
        for (size_t i = 0; i < nothers; i++)
            total += more[i].ncolumns;
        free(names);
        names = calloc(total + 1, sizeof(*names));
        if (names == NULL) {
            err_oom(err);
            goto out;
        }
        at = nrc = 0;
        for (size_t i = 0; i < x->n; i++) {
            const table_plan *p = &x->plans[i];
            rc[nrc++] = (rewrite_columns){p->mt->name, &names[at], p->cat.ncolumns + p->mt->ncolumns};
            for (size_t j = 0; j < p->cat.ncolumns; j++)
                names[at++] = p->cat.columns[j].name;
            for (size_t j = 0; j < p->mt->ncolumns; j++)
                names[at++] = p->mt->columns[j].name;
        }
        for (size_t i = 0; i < nothers; i++) {
            rc[nrc++] = (rewrite_columns){others[i], &names[at], more[i].ncolumns};
            for (size_t j = 0; j < more[i].ncolumns; j++)
                names[at++] = more[i].columns[j].name;
        }
        got = rewrite_bind(c, rc, nrc, pass == 0, err);
        if (got != 1)
            break;
        /* undecided: the configured tables the bundle lacks, from the target */
        for (size_t t = 0; t < c->ntables; t++) {
            bool carried = false;
            for (size_t i = 0; i < x->n && !carried; i++)
                carried = strcmp(x->plans[i].mt->name, c->tables[t].name) == 0;
            if (!carried)
                others[nothers++] = c->tables[t].name;
        }
        if (nothers > 0 && catalog_tables(x->conn, c->schema, others, nothers, more, err) < 0) {
            got = -1;
            break;
        }
        total = 0;
    }
out:
    for (size_t i = 0; more != NULL && i < nothers; i++)
        catalog_table_free(&more[i]);
    free(more);
    free(others);
    free(names);
    free(rc);
    return got < 0 ? -1 : 0;
}

static int im_plan(import_run *x, owl_err *err)
{
    if (read_catalog(x, err) < 0)
        return -1;
    if (bind_rewrites(x, err) < 0)
        return -1;
    for (size_t i = 0; i < x->n; i++) {
        table_plan *p = &x->plans[i];
        if (plan_columns(x, p, err) < 0 || plan_key(x, p, err) < 0)
            return -1;
        p->out->mode = p->mode == &cfg_modes[CFG_MODE_REPLACE] && p->nkey == 0 ? "replace (delete, insert)"
                                                                               : p->mode->name;
        p->st = (stage_table){.schema = x->c->schema,
                              .table = p->mt->name,
                              .no = (unsigned)i,
                              .columns = p->columns,
                              .exact_eq = p->exact_eq,
                              .always = p->always,
                              .ref = p->ref,
                              .ncolumns = p->mt->ncolumns,
                              .key = p->key,
                              .nkey = p->nkey,
                              .dataset_column = p->mt->dataset_column,
                              .per_dataset = x->opts->per_dataset,
                              .changes_per_dataset = x->opts->changed_datasets};
        if (p->mt->dataset_column[0] != '\0') {
            const catalog_column *ds = catalog_find_column(&p->cat, p->mt->dataset_column);
            p->st.dataset_type = ds != NULL ? ds->base_type : NULL;
        }
    }
    if (catalog_foreign_keys(x->conn, x->c->schema, &x->fks, &x->nfks, err) < 0)
        return -1;
    return plan_refs(x, err);
}

/* ------------------------------------------------------------------ counts */

typedef enum { COUNT_INSERTED, COUNT_UPDATED, COUNT_DELETED, COUNT_STAGED } count_kind;

typedef struct count_ctx {
    importer_table *t;
    count_kind kind;
    bool per_dataset;
} count_ctx;

/* The counts of one dataset in a table: the array is kept sorted by name and
 * searched by halves, since a bundle may carry tens of thousands of datasets. */
static importer_dataset *dataset_slot(importer_table *t, const char *ds)
{
    size_t lo = 0, hi = t->ndatasets;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(t->datasets[mid].dataset, ds);
        if (cmp == 0)
            return &t->datasets[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (t->ndatasets == t->capdatasets) {
        size_t cap = t->capdatasets ? 2 * t->capdatasets : 64;
        importer_dataset *grown = realloc(t->datasets, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        t->datasets = grown;
        t->capdatasets = cap;
    }
    memmove(&t->datasets[lo + 1], &t->datasets[lo], (t->ndatasets - lo) * sizeof(*t->datasets));
    memset(&t->datasets[lo], 0, sizeof(*t->datasets));
    t->datasets[lo].dataset = strdup(ds);
    if (t->datasets[lo].dataset == NULL) {
        memmove(&t->datasets[lo], &t->datasets[lo + 1], (t->ndatasets - lo) * sizeof(*t->datasets));
        return NULL;
    }
    t->ndatasets++;
    return &t->datasets[lo];
}

static void add_count(importer_counts *k, count_kind kind, uint64_t n)
{
    uint64_t *slot = kind == COUNT_INSERTED ? &k->inserted
                     : kind == COUNT_UPDATED ? &k->updated
                     : kind == COUNT_DELETED ? &k->deleted
                                             : &k->unchanged; /* staged: less inserted and updated at the end */
    *slot += n;
}

static int on_count(void *ctx, const char *dataset, uint64_t n, owl_err *err)
{
    count_ctx *cc = ctx;

    add_count(&cc->t->n, cc->kind, n);
    if (cc->per_dataset) {
        importer_dataset *d = dataset_slot(cc->t, dataset);
        if (d == NULL)
            return err_oom(err);
        add_count(&d->n, cc->kind, n);
    }
    return 0;
}

/* Counts of kind into p's table: per dataset as the stage counts them (the
 * staged rows only with per_dataset, the rows written with either). */
static count_ctx counter(table_plan *p, count_kind kind)
{
    bool grouped = kind == COUNT_STAGED ? p->st.per_dataset : p->st.per_dataset || p->st.changes_per_dataset;

    return (count_ctx){p->out, kind, grouped};
}

/* Moves every sequence behind a travelling column past its largest value, or
 * in a dry run says what it would do; each move goes into the result. */
static int move_sequences(import_run *x, table_plan *p, owl_err *err)
{
    importer_result *res = x->res;

    for (size_t i = 0; i < p->nsequenced; i++) {
        const catalog_column *col = p->sequenced[i];
        for (size_t k = 0; k < col->nsequences; k++) {
            int64_t from = 0, to = 0;
            importer_sequence *grown;
            int got = stage_move_sequence(x->conn, x->c->schema, p->mt->name, col->name, col->sequences[k].oid,
                                          col->sequences[k].name, x->opts->dry_run, &from, &to, err);
            if (got <= 0) {
                if (got < 0)
                    return -1;
                continue;
            }
            grown = realloc(res->sequences, (res->nsequences + 1) * sizeof(*grown));
            if (grown == NULL)
                return err_oom(err);
            res->sequences = grown;
            grown[res->nsequences] = (importer_sequence){strdup(col->sequences[k].name), from, to};
            if (grown[res->nsequences++].name == NULL)
                return err_oom(err);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ stage */

static int put_rows(void *ctx, const char *buf, size_t len, owl_err *err)
{
    return stage_copy_put(ctx, buf, len, err);
}

/* Streams one data entry of the bundle into COPY: as it is when no rule applies,
 * else row by row through the rules. The entry's hash is checked before COPY
 * ends, so a mismatch aborts it. */
static int copy_rows(import_run *x, table_plan *p, owl_err *err)
{
    rewrite_stream *rs = NULL;
    char *buf = malloc(COPY_CHUNK);
    ssize_t n;
    int rc = -1;

    if (buf == NULL) {
        err_oom(err);
        goto out;
    }
    if (p->rw != NULL && rewrite_stream_new(p->rw, p->mt->file, put_rows, x->conn, &rs, err) < 0)
        goto out;
    while ((n = bundle_read(x->r, buf, COPY_CHUNK, err)) > 0) {
        if ((rs == NULL ? stage_copy_put(x->conn, buf, (size_t)n, err) : rewrite_stream_feed(rs, buf, (size_t)n, err)) < 0)
            goto out;
        progress_add(&x->prog, p->mt->name, 0, (uint64_t)n);
    }
    if (n < 0 || (rs != NULL && rewrite_stream_end(rs, err) < 0))
        goto out;
    rc = 0;
out:
    rewrite_stream_free(rs);
    free(buf);
    return rc;
}

/* Finds the column of a row that holds the bytes want, and its key's values. */
typedef struct find_ctx {
    uint64_t rowno;
    const unsigned char *want;
    size_t wlen;
    const table_plan *p;
    long column;      /* found: its index; -1 not yet */
    bool seen;        /* the row was read */
    char key[256];    /* "k1 = v1, k2 = v2", values cleaned for a message */
} find_ctx;

static int find_bytes(void *ctx, const char *row, size_t len, uint64_t rowno, owl_err *err)
{
    find_ctx *f = ctx;
    const manifest_table *mt = f->p->mt;
    copytext_field *v = calloc(mt->ncolumns, sizeof(*v));
    size_t n = 0, used = 0;

    if (rowno != f->rowno) {
        free(v);
        return 0;
    }
    f->seen = true;
    if (v != NULL && copytext_split(row, len, v, mt->ncolumns, &n, err) == 0) {
        for (size_t k = 0; k < n; k++) {
            char *val = malloc(v[k].len + 1);
            size_t vlen = 0;
            if (val == NULL || copytext_unescape(v[k].p, v[k].len, val, &vlen, err) < 0) {
                free(val);
                continue;
            }
            val[vlen] = '\0';
            if (f->column < 0 && memmem(val, vlen, f->want, f->wlen) != NULL)
                f->column = (long)k;
            for (size_t i = 0; i < f->p->nkey && used + 16 < sizeof(f->key); i++) {
                char shown[4 * 64 + 8];
                if (strcmp(f->p->key[i], mt->columns[k].name) == 0)
                    used += (size_t)snprintf(f->key + used, sizeof(f->key) - used, "%s%s = %s", used ? ", " : "",
                                             mt->columns[k].name, text_clean(val, 64, shown, sizeof(shown)));
            }
            free(val);
        }
    }
    free(v);
    return -1; /* found the row: stop reading */
}

/* The target refused a character its encoding cannot hold, in row rowno of
 * p's entry: reads the entry again to name the column, for an error no retry
 * can fix (exit 2). err holds the server's words with the bytes. */
static int name_untranslatable(import_run *x, table_plan *p, uint64_t rowno, owl_err *err)
{
    unsigned char want[8];
    find_ctx f = {rowno, want, 0, p, -1, false, ""};
    const char *hex = strstr(err->msg, "byte sequence ");
    bundle_reader *r = NULL;
    const manifest_table *mt;
    copytext_rows rows;
    owl_err e2;
    char *buf = malloc(COPY_CHUNK);
    ssize_t n;

    for (hex = hex != NULL ? hex + 14 : NULL; hex != NULL && strncmp(hex, "0x", 2) == 0 && f.wlen < sizeof(want);) {
        char *end;
        want[f.wlen++] = (unsigned char)strtoul(hex + 2, &end, 16);
        hex = *end == ' ' ? end + 1 : NULL;
    }
    copytext_rows_init(&rows, COPYTEXT_MAX_ROW, p->mt->file);
    if (buf != NULL && f.wlen > 0 && open_bundle(x, &r, &e2) == 0) {
        while (bundle_next_table(r, &mt, &e2) > 0 && strcmp(mt->name, p->mt->name) != 0) {
        }
        while (!f.seen && (n = bundle_read(r, buf, COPY_CHUNK, &e2)) > 0)
            copytext_rows_feed(&rows, buf, (size_t)n, find_bytes, &f, &e2);
        if (!f.seen)
            copytext_rows_end(&rows, find_bytes, &f, &e2);
    }
    copytext_rows_free(&rows);
    bundle_close(r);
    free(buf);
    err_prefix(err, "%s row %llu%s%s%s%s%s: a character the target database's encoding cannot hold", p->mt->name,
               (unsigned long long)rowno, f.key[0] ? " (" : "", f.key, f.key[0] ? ")" : "",
               f.column >= 0 ? " column " : "", f.column >= 0 ? p->mt->columns[f.column].name : "");
    err->code = OWL_EUSAGE;
    return -1;
}

/* Whether a table may skip its staging table: the target holds none of the
 * rows the bundle speaks for (a first promotion), so every row is new and
 * COPY can write the table itself. Its parents within the bundle must have
 * gone in the same way, before it, or their rows would not be there yet. */
static int plan_direct(import_run *x, size_t i, owl_err *err)
{
    table_plan *p = &x->plans[i];

    p->st.direct = false;
    if (!p->may_direct)
        return 0;
    for (size_t f = 0; f < x->nfks; f++) {
        if (strcmp(x->fks[f].child, p->mt->name) != 0 || strcmp(x->fks[f].parent, p->mt->name) == 0)
            continue;
        for (size_t j = 0; j < x->n; j++) {
            if (strcmp(x->plans[j].mt->name, x->fks[f].parent) == 0 && (j > i || !x->plans[j].st.direct))
                return 0;
        }
    }
    p->st.direct = p->scope_empty;
    return plan_scope(x, p, err);
}

/* Which tables may skip their staging table, and whether the target holds
 * rows in their scopes, for all of them in one statement before any is
 * staged (staging writes no table that could change the answer: a direct
 * COPY goes only into tables without triggers or rules, the rest into
 * temporary tables). COPY into the table itself would bypass its rules and
 * triggers (or, with row-level security, be refused): such a table is
 * staged, so that the first import and the next do the same; references
 * are staged, to translate or be translated. */
static int plan_directs(import_run *x, owl_err *err)
{
    const stage_table **ts = calloc(x->n ? x->n : 1, sizeof(*ts));
    bool *empty = calloc(x->n ? x->n : 1, sizeof(bool));
    size_t *which = calloc(x->n ? x->n : 1, sizeof(size_t));
    size_t n = 0;
    int rc = -1;

    if (ts == NULL || empty == NULL || which == NULL) {
        err_oom(err);
        goto out;
    }
    for (size_t i = 0; i < x->n; i++) {
        table_plan *p = &x->plans[i];
        p->may_direct = !(p->cat.row_security || p->cat.insert_triggers || p->cat.rules) && !p->has_refs &&
                        p->ntrans == 0;
        if (!p->may_direct)
            continue;
        if (plan_scope(x, p, err) < 0)
            goto out;
        ts[n] = &p->st;
        which[n++] = i;
    }
    if (stage_scope_empty_many(x->conn, ts, n, empty, err) < 0)
        goto out;
    for (size_t k = 0; k < n; k++)
        x->plans[which[k]].scope_empty = empty[k];
    rc = 0;
out:
    free(ts);
    free(empty);
    free(which);
    return rc;
}

/* The rows each direct COPY wrote lie in its table's scope: the target held
 * none there before, so all it holds there now must be what COPY wrote. One
 * statement for all the tables, once they are staged. */
static int check_directs(import_run *x, owl_err *err)
{
    const stage_table **ts = calloc(x->n ? x->n : 1, sizeof(*ts));
    uint64_t *in = calloc(x->n ? x->n : 1, sizeof(uint64_t));
    size_t *which = calloc(x->n ? x->n : 1, sizeof(size_t));
    size_t n = 0;
    int rc = -1;

    if (ts == NULL || in == NULL || which == NULL) {
        err_oom(err);
        goto out;
    }
    for (size_t i = 0; i < x->n; i++) {
        table_plan *p = &x->plans[i];
        if (!p->st.direct || p->mt->dataset_column[0] == '\0')
            continue;
        ts[n] = &p->st;
        which[n++] = i;
    }
    if (stage_scope_counts(x->conn, ts, n, in, err) < 0)
        goto out;
    for (size_t k = 0; k < n; k++) {
        const table_plan *p = &x->plans[which[k]];
        if (p->copied > in[k]) {
            err_set(err, OWL_EPOLICY, "bundle table %s holds %llu rows of datasets the bundle does not declare",
                    p->mt->name, (unsigned long long)(p->copied - in[k]));
            goto out;
        }
    }
    for (size_t i = 0; i < x->n; i++) {
        if (x->plans[i].st.direct)
            drop_scope(&x->plans[i]);
    }
    rc = 0;
out:
    free(ts);
    free(in);
    free(which);
    return rc;
}

/* What a bundle may not hold, whatever its signature: rows of a dataset it
 * does not declare (refused by policy, 4), and rows its key cannot tell apart
 * or match (refused as a value the target cannot take, 2). */
static int check_staged(import_run *x, table_plan *p, uint64_t staged, owl_err *err)
{
    char example[MANIFEST_TEXT_MAX + 1], shown[512], what[1024];
    uint64_t outside = 0;
    int got;

    if (plan_scope(x, p, err) < 0)
        return -1;
    /* a direct COPY's rows are counted with the other tables' (check_directs) */
    if (!p->st.direct && stage_outside_scope(x->conn, &p->st, staged, &outside, example, sizeof(example), err) < 0)
        return -1;
    if (outside > 0)
        return err_set(err, OWL_EPOLICY, "bundle table %s holds %llu rows of datasets the bundle does not declare%s%s%s",
                       p->mt->name, (unsigned long long)outside, example[0] ? " (one: " : "",
                       example[0] ? text_clean(example, 64, shown, sizeof(shown)) : "", example[0] ? ")" : "");
    if (p->st.direct && p->key_enforced)
        return 0; /* the target's unique index and NOT NULLs said so as the rows went in */
    got = stage_key_problem(x->conn, &p->st, what, sizeof(what), err);
    if (got < 0)
        return -1;
    if (got > 0) {
        char key[512];
        size_t used = 0;
        key[0] = '\0';
        for (size_t i = 0; i < p->nkey && used < sizeof(key) - 1; i++) {
            used += (size_t)snprintf(key + used, sizeof(key) - used, "%s%s", i ? ", " : "", p->key[i]);
            used = used < sizeof(key) - 1 ? used : sizeof(key) - 1;
        }
        return err_set(err, OWL_EUSAGE, "%s: key (%s) holds %s", p->mt->name, key,
                       text_clean(what, 400, shown, sizeof(shown)));
    }
    return 0;
}

/* Stages one table: into its staging table, or straight in when it may. */
static int stage_one(import_run *x, size_t i, owl_err *err)
{
    table_plan *p = &x->plans[i];
    uint64_t staged = 0;
    int got;

    if (plan_direct(x, i, err) < 0 || stage_create(x->conn, &p->st, err) < 0 ||
        stage_copy_begin(x->conn, &p->st, err) < 0)
        return -1;
    if (copy_rows(x, p, err) < 0) {
        stage_copy_end(x->conn, "owlsync stopped the copy", NULL, NULL);
        return -1;
    }
    got = stage_copy_end(x->conn, NULL, &staged, err);
    if (got == -2)
        return name_untranslatable(x, p, staged, err);
    if (got < 0) {
        char names[512];
        err_prefix(err, "%s", p->mt->name);
        if (p->rw != NULL)
            rewrite_table_changed_names(p->rw, names, sizeof(names));
        if (p->rw != NULL && names[0] != '\0')
            err_hint(err, "these rules changed its values and may have broken one: %s", names);
        return -1;
    }
    if (staged != p->mt->rows)
        return err_set(err, OWL_EVERIFY, "%s holds %llu rows, but the manifest says %llu", p->mt->file,
                       (unsigned long long)staged, (unsigned long long)p->mt->rows);
    if (check_staged(x, p, staged, err) < 0 || stage_analyze(x->conn, &p->st, err) < 0)
        return -1;
    if (p->st.direct) {
        /* The target held none of the table's rows in scope: all it holds
         * there now is what the COPY put in. */
        count_ctx cc = counter(p, COUNT_INSERTED);
        if (!cc.per_dataset)
            p->out->n.inserted = p->mt->rows;
        else if (stage_count(x->conn, &p->st, on_count, &cc, err) < 0)
            return -1;
        p->copied = staged;
    }
    return 0;
}

/* Stages every table, in the bundle's order (the order of its entries). */
static int im_stage(import_run *x, owl_err *err)
{
    const manifest_table *mt;
    uint64_t total = 0;
    int got;

    if (plan_directs(x, err) < 0)
        return -1;
    for (size_t i = 0; i < x->n; i++)
        total += x->plans[i].mt->bytes;
    progress_total(&x->prog, total);
    for (size_t i = 0; i < x->n; i++) {
        got = bundle_next_table(x->r, &mt, err);
        if (got <= 0)
            return got == 0 ? err_set(err, OWL_EVERIFY, "bundle ends before table %s", x->plans[i].mt->name) : -1;
        if (stage_one(x, i, err) < 0)
            return -1;
    }
    if (bundle_next_table(x->r, &mt, err) != 0) /* the end, and the layout check */
        return -1;
    if (check_directs(x, err) < 0)
        return -1;
    progress_show(&x->prog, "applying"); /* until the report replaces it */
    return 0;
}

/* ------------------------------------------------------------------ apply */

/* Orders the plans so that a table comes after every table it references. */
static int plan_order(import_run *x, owl_err *err)
{
    const char **names = calloc(x->n ? x->n : 1, sizeof(char *));
    size_t *order = calloc(x->n ? x->n : 1, sizeof(size_t));
    table_plan *sorted = calloc(x->n ? x->n : 1, sizeof(*sorted));
    int rc = -1;

    if (names == NULL || order == NULL || sorted == NULL) {
        err_oom(err);
        goto out;
    }
    for (size_t i = 0; i < x->n; i++)
        names[i] = x->plans[i].mt->name;
    if (!catalog_parents_first(names, x->n, x->fks, x->nfks, order))
        log_warn("foreign keys among the bundle's tables form a cycle; applying the rest in bundle order");
    for (size_t i = 0; i < x->n; i++)
        sorted[i] = x->plans[order[i]];
    memcpy(x->plans, sorted, x->n * sizeof(*x->plans));
    rc = 0;
out:
    free(names);
    free(order);
    free(sorted);
    return rc;
}

/* Points the staged rows' references at the target's rows of their parents
 * (applied by now: parents come first), matched by the parents' keys. */
static int translate_refs(import_run *x, table_plan *p, owl_err *err)
{
    for (size_t k = 0; k < p->ntrans; k++) {
        const catalog_fk *fk = &x->fks[p->trans[k]];
        table_plan *parent = plan_of(x, fk->parent);
        char example[512], shown[512];
        uint64_t unresolved = 0;

        if (plan_scope(x, parent, err) < 0 ||
            stage_translate(x->conn, &p->st, &parent->st, fk->child_columns, fk->parent_columns, fk->ncolumns,
                            &unresolved, example, sizeof(example), err) < 0)
            return -1;
        if (unresolved > 0)
            return err_set(err, OWL_EUSAGE,
                           "%s: %llu rows reference %s rows the bundle does not hold (foreign key %s), so they "
                           "cannot follow them here; one: %s",
                           p->mt->name, (unsigned long long)unresolved, fk->parent, fk->name,
                           text_clean(example, 300, shown, sizeof(shown)));
    }
    return 0;
}

/* Whether a foreign key of this database references table (its own included). */
static bool referenced(const import_run *x, const char *table)
{
    for (size_t f = 0; f < x->nfks; f++) {
        if (strcmp(x->fks[f].parent, table) == 0)
            return true;
    }
    return false;
}

/* Inserts the staged rows new to the target and updates the changed ones. A
 * table no foreign key references loses its rows the bundle no longer holds
 * first, so that a row whose key changed (or that moved to another dataset)
 * leaves its unique values to its successor. */
static int apply_rows(import_run *x, table_plan *p, owl_err *err)
{
    count_ctx up = counter(p, COUNT_UPDATED), in = counter(p, COUNT_INSERTED), del = counter(p, COUNT_DELETED);

    if (p->nkey > 0) {
        if (stage_match(x->conn, &p->st, &p->to_delete, &p->to_insert, err) < 0)
            return -1;
        p->matched = true;
        if (p->mode->deletes && p->to_delete > 0 && !referenced(x, p->mt->name)) {
            if (stage_delete(x->conn, &p->st, on_count, &del, err) < 0)
                return -1;
            p->to_delete = 0; /* done */
        }
    }
    /* every staged row matched a target row: nothing is new */
    if (!(p->matched && p->to_insert == 0) && stage_insert(x->conn, &p->st, on_count, &in, err) < 0)
        return -1;
    if (p->nkey > 0 && p->mode->updates && stage_update(x->conn, &p->st, on_count, &up, err) < 0)
        return -1;
    return 0;
}

/* Whether a table the bundle keeps rows of references one that lost rows: a
 * cascade (ON DELETE CASCADE, SET NULL, SET DEFAULT) may have reached them. */
static bool cascade_reach(const import_run *x, const table_plan *p)
{
    for (size_t f = 0; f < x->nfks; f++) {
        if (strcmp(x->fks[f].child, p->mt->name) != 0)
            continue;
        for (size_t j = 0; j < x->n; j++) {
            if (strcmp(x->plans[j].mt->name, x->fks[f].parent) == 0 && x->plans[j].out->n.deleted > 0)
                return true;
        }
    }
    return false;
}

/* Inserts and updates parents first, then deletes children first, so that a
 * row moved to a new parent (or under a new row of its own table) finds it,
 * and a parent goes only after its children left it; what may wait for the
 * end (deferrable constraints) does, and is checked before the sequences move
 * last. A table without a key is emptied of the bundle's datasets before its
 * rows go in again, one no foreign key references loses its old rows before
 * the new ones go in. */
static int im_apply(import_run *x, owl_err *err)
{
    if (plan_order(x, err) < 0)
        return -1;
    for (size_t i = x->n; i-- > 0;) {
        table_plan *p = &x->plans[i];
        count_ctx staged = counter(p, COUNT_STAGED), del = counter(p, COUNT_DELETED);
        if (p->st.direct)
            continue;
        if (!staged.per_dataset)
            p->out->n.unchanged += p->mt->rows; /* staged, checked when staged */
        else if (stage_count(x->conn, &p->st, on_count, &staged, err) < 0)
            return -1;
        if (plan_scope(x, p, err) < 0)
            return -1;
        if (p->nkey == 0 && p->mode->deletes && stage_delete(x->conn, &p->st, on_count, &del, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < x->n; i++) {
        table_plan *p = &x->plans[i];
        if (!p->st.direct && (translate_refs(x, p, err) < 0 || apply_rows(x, p, err) < 0))
            return -1;
    }
    for (size_t i = x->n; i-- > 0;) {
        table_plan *p = &x->plans[i];
        count_ctx del = counter(p, COUNT_DELETED);
        if (!p->st.direct && p->nkey > 0 && p->mode->deletes && p->to_delete > 0 &&
            stage_delete(x->conn, &p->st, on_count, &del, err) < 0)
            return -1;
    }
    /* A delete that cascaded into rows the bundle keeps (a foreign key the
     * source lacks): they are written again. */
    for (size_t i = 0; i < x->n; i++) {
        table_plan *p = &x->plans[i];
        if (!p->st.direct && p->nkey > 0 && cascade_reach(x, p)) {
            p->matched = false;
            if (apply_rows(x, p, err) < 0)
                return -1;
        }
    }
    /* What was deferred is checked now, before anything that cannot be undone
     * (sequences) and in a dry run too. */
    if (stage_check_deferred(x->conn, err) < 0)
        return -1;
    for (size_t i = 0; i < x->n; i++) {
        drop_scope(&x->plans[i]);
        if (move_sequences(x, &x->plans[i], err) < 0)
            return -1;
    }
    /* unchanged = staged - inserted - updated, per dataset and in total */
    for (size_t i = 0; i < x->n; i++) {
        importer_table *t = x->plans[i].out;
        uint64_t moved = t->n.inserted + t->n.updated;
        t->n.unchanged = t->n.unchanged > moved ? t->n.unchanged - moved : 0;
        for (size_t d = 0; d < t->ndatasets; d++) {
            importer_counts *k = &t->datasets[d].n;
            moved = k->inserted + k->updated;
            k->unchanged = k->unchanged > moved ? k->unchanged - moved : 0;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ ledger */

/* Copies each table's rewrite counts into the result and warns of rules that
 * changed nothing although the bundle carries their columns: usually stale. */
static void report_rewrites(import_run *x)
{
    importer_result *res = x->res;

    for (size_t i = 0; i < x->n; i++) {
        for (size_t k = 0; x->plans[i].rw != NULL && k < res->nrules; k++)
            x->plans[i].out->rewritten[k] = rewrite_table_changed(x->plans[i].rw, k);
    }
    for (size_t k = 0; k < res->nrules; k++) {
        bool covered = false;
        uint64_t changed = 0;
        for (size_t i = 0; i < x->n; i++) {
            covered = covered || x->plans[i].out->covered[k];
            changed += x->plans[i].out->rewritten[k];
        }
        if (covered && changed == 0)
            log_warn("[rewrite %s] changed nothing in this bundle, which carries its columns: is it stale?",
                     res->rules[k]);
    }
}

static int im_ledger(import_run *x, owl_err *err)
{
    const manifest *m = x->m;
    const importer_result *res = x->res;
    const char *base = strrchr(x->path, '/') ? strrchr(x->path, '/') + 1 : x->path;
    ledger_entry e = {m->bundle_id, m->environment, m->job, m->key_id, base, m->sequence, 0,
                      m->snapshot_at, m->created_at, m->datasets, m->ndatasets, x->dstables, x->ndstables};

    report_rewrites(x);
    for (size_t i = 0; i < m->ntables; i++)
        e.rows_total += m->tables[i].rows;
    if (ledger_record_bundle(x->conn, &e, err) < 0)
        return -1;
    {
        ledger_counts *counts = calloc(x->n ? x->n : 1, sizeof(*counts));
        ledger_rewrite *rw = calloc(res->ntables * res->nrules + 1, sizeof(*rw));
        size_t nrw = 0;
        int rc = -1;
        if (counts == NULL || rw == NULL) {
            err_oom(err);
        } else {
            for (size_t i = 0; i < x->n; i++) {
                const importer_table *t = x->plans[i].out;
                counts[i] = (ledger_counts){t->name, t->rows, t->n.inserted, t->n.updated, t->n.deleted, t->n.unchanged};
            }
            for (size_t i = 0; i < res->ntables; i++) {
                for (size_t k = 0; k < res->nrules; k++) {
                    if (res->tables[i].covered[k])
                        rw[nrw++] = (ledger_rewrite){res->rules[k], res->tables[i].name, res->tables[i].rewritten[k]};
                }
            }
            if (ledger_record_tables(x->conn, m->bundle_id, counts, x->n, err) == 0 &&
                ledger_record_rewrites(x->conn, m->bundle_id, rw, nrw, err) == 0)
                rc = 0;
        }
        free(counts);
        free(rw);
        return rc;
    }
}

/* ------------------------------------------------------------------ run */

static void run_free(import_run *x)
{
    if (x->conn != NULL) {
        db_rollback(x->conn);
        if (x->own_conn)
            db_close(x->conn);
    }
    for (size_t i = 0; x->plans != NULL && i < x->n; i++) {
        table_plan *p = &x->plans[i];
        catalog_table_free(&p->cat);
        catalog_keys_free(p->tk.keys, p->tk.nkeys);
        free(p->columns);
        free(p->exact_eq);
        for (size_t k = 0; k < p->nkey; k++)
            free(p->key[k]);
        free(p->key);
        free(p->always);
        free(p->ref);
        free(p->trans);
        free(p->sequenced);
        drop_scope(p);
        rewrite_table_free(p->rw);
    }
    free(x->plans);
    free(x->dstables);
    catalog_fks_free(x->fks, x->nfks);
    bundle_close(x->r);
}

int importer_run(const cfg *c, const keys_trust *trust, const rewrite_set *rewrites, const char *path,
                 const importer_opts *opts, importer_result *res, owl_err *err)
{
    import_run x;
    int rc = -1, got;

    memset(res, 0, sizeof(*res));
    memset(&x, 0, sizeof(x));
    x.c = c;
    x.trust = trust;
    x.rs = rewrites;
    x.path = path;
    x.opts = opts;
    x.res = res;
    progress_init(&x.prog, opts->progress, "import", false);
    if (im_verify(&x, err) < 0)
        goto out;
    got = im_begin(&x, err);
    if (got < 0)
        goto out;
    if (got > 0) {
        res->status = got == 2 ? IMPORT_SUPERSEDED : IMPORT_ALREADY;
        rc = 0;
        goto out;
    }
    if (im_plan(&x, err) < 0 || im_stage(&x, err) < 0 || im_apply(&x, err) < 0 || im_ledger(&x, err) < 0)
        goto out;
    if (opts->dry_run) {
        res->status = IMPORT_DRY_RUN; /* the rollback below undoes everything */
    } else {
        if (db_commit(x.conn, "cannot commit the import", err) < 0)
            goto out;
        res->status = IMPORT_APPLIED;
    }
    rc = 0;
out:
    progress_clear(&x.prog);
    res->seconds = progress_seconds(&x.prog);
    run_free(&x);
    return rc;
}

void importer_result_free(importer_result *res)
{
    for (size_t i = 0; i < res->ntables; i++) {
        for (size_t d = 0; d < res->tables[i].ndatasets; d++)
            free(res->tables[i].datasets[d].dataset);
        free(res->tables[i].datasets);
        free(res->tables[i].name);
        free(res->tables[i].rewritten);
        free(res->tables[i].covered);
    }
    free(res->tables);
    free((void *)res->rules);
    for (size_t i = 0; i < res->nwarnings; i++)
        free(res->warnings[i]);
    free(res->warnings);
    for (size_t i = 0; i < res->nsequences; i++)
        free(res->sequences[i].name);
    free(res->sequences);
    free(res->environment);
    free(res->job);
    memset(res, 0, sizeof(*res));
}
