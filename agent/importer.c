/* owlsync importer: verify, refuse by policy, stage every table with COPY, then
 * apply by mode in foreign-key order with a ledger row, in ONE transaction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "owlsync/db.h"
#include "owlsync/importer.h"
#include "owlsync/log.h"
#include "owlsync/manifest.h"

#define COPY_CHUNK (256 * 1024)
#define LOCK_TIMEOUT "60s"
/* Transaction advisory lock that serialises importers: "owls", 1. */
#define IMPORT_LOCK_SQL "SELECT pg_catalog.pg_advisory_xact_lock(1870164851, 1)"

static const char ledger_sql[] =
#include "ledger_sql.h"
    ;

typedef struct column_info {
    char *name;
    bool in_bundle;
} column_info;

/* What the importer knows of one bundle table in the target. */
typedef struct table_plan {
    const manifest_table *mt;
    const cfg_table *ct;
    cfg_mode mode;
    bool keyed;             /* a usable key: match rows by it */
    cfg_list key;           /* its columns */
    const char **serial_cols; /* bundle columns with a sequence behind them */
    size_t nserial;
    unsigned stage_no;
    importer_table *out;
    const rewrite_set *rs;  /* the compiled rules, or NULL */
    rewrite_table *rw;      /* NULL when no rule applies to this table */
    char *scope;            /* the target's dataset names, rewritten, as array text */
    bool direct;            /* the target had none of its rows: COPY went straight in */
    bool per_dataset;       /* count per dataset too, not only per table */
    bool *eq_exact;         /* per bundle column: "=" holds only for the same bytes */
    bool matched;           /* to_delete and to_insert were counted */
    uint64_t to_delete;     /* target rows in scope no bundle row matches */
    uint64_t to_insert;     /* bundle rows no target row in scope matches */
} table_plan;

typedef struct progress {
    bool on;
    struct timespec start, last;
    uint64_t bytes;
} progress;

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static int64_t now_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ policy */

/* Checks made on the verified manifest alone, before the database is touched. */
static int check_policy(const cfg *c, const manifest *m, owl_err *err)
{
    char when[40];

    if (now_usec() > m->expires_at) {
        manifest_format_time(m->expires_at, when, sizeof(when));
        return err_set(err, OWL_EPOLICY, "bundle expired at %s", when);
    }
    if (m->ntargets > 0) {
        bool named = false;
        for (size_t i = 0; i < m->ntargets && !named; i++)
            named = strcmp(m->targets[i], c->environment) == 0;
        if (!named)
            return err_set(err, OWL_EPOLICY, "bundle is meant for %s%s, not for this environment (%s)", m->targets[0],
                           m->ntargets > 1 ? " and others" : "", c->environment);
    }
    for (size_t i = 0; i < m->ntables; i++) {
        const char *t = m->tables[i].name;
        bool allowed = c->import.tables.n > 0 ? cfg_list_has(&c->import.tables, t) : cfg_find_table(c, t) != NULL;
        if (!allowed)
            return err_set(err, OWL_EPOLICY, "bundle carries table %s, which this environment does not allow\nHINT: [import] tables and the [table] sections list what may be imported", t);
    }
    return 0;
}

/* ------------------------------------------------------------------ catalog */

/* Reads the target's columns of one table and checks the bundle's against them. */
static int plan_columns(PGconn *conn, const cfg *c, table_plan *p, owl_err *err)
{
    const char *params[2] = {c->schema, p->mt->name};
    PGresult *res;
    int rows, rc = -1;

    /* Column 3: whether two values of the column are equal ("=") only when
     * their text is the same, so that a change can be found without turning
     * both rows into text: types whose equality is identity, with a
     * deterministic collation.  Not numeric (1.0 = 1.00), float (0 = -0),
     * jsonb, interval, bpchar (trailing blanks), json (no "="), domains. */
    res = db_exec(conn,
                  "SELECT a.attname, pg_catalog.pg_get_serial_sequence(pg_catalog.quote_ident(n.nspname) || '.' ||"
                  "       pg_catalog.quote_ident(r.relname), a.attname) IS NOT NULL,"
                  "       a.atttypid IN ('pg_catalog.bool'::pg_catalog.regtype, 'pg_catalog.bytea'::pg_catalog.regtype,"
                  "         'pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,"
                  "         'pg_catalog.int8'::pg_catalog.regtype, 'pg_catalog.text'::pg_catalog.regtype,"
                  "         'pg_catalog.varchar'::pg_catalog.regtype, 'pg_catalog.date'::pg_catalog.regtype,"
                  "         'pg_catalog.timestamp'::pg_catalog.regtype, 'pg_catalog.timestamptz'::pg_catalog.regtype,"
                  "         'pg_catalog.uuid'::pg_catalog.regtype, 'pg_catalog._bool'::pg_catalog.regtype,"
                  "         'pg_catalog._int2'::pg_catalog.regtype, 'pg_catalog._int4'::pg_catalog.regtype,"
                  "         'pg_catalog._int8'::pg_catalog.regtype, 'pg_catalog._text'::pg_catalog.regtype,"
                  "         'pg_catalog._varchar'::pg_catalog.regtype, 'pg_catalog._date'::pg_catalog.regtype,"
                  "         'pg_catalog._timestamp'::pg_catalog.regtype, 'pg_catalog._timestamptz'::pg_catalog.regtype,"
                  "         'pg_catalog._uuid'::pg_catalog.regtype)"
                  "   AND (a.attcollation = 0 OR EXISTS (SELECT 1 FROM pg_catalog.pg_collation k"
                  "                                    WHERE k.oid = a.attcollation AND k.collisdeterministic))"
                  "  FROM pg_catalog.pg_attribute a"
                  "  JOIN pg_catalog.pg_class r ON r.oid = a.attrelid"
                  "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                  " WHERE n.nspname = $1 AND r.relname = $2 AND r.relkind IN ('r', 'p')"
                  "   AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                  2, params, PGRES_TUPLES_OK, err, "cannot read the target catalog");
    if (res == NULL)
        return -1;
    p->eq_exact = calloc(p->mt->ncolumns ? p->mt->ncolumns : 1, sizeof(bool));
    if (p->eq_exact == NULL)
        goto oom;
    rows = PQntuples(res);
    if (rows == 0) {
        err_set(err, OWL_ERUNTIME, "table %s.%s does not exist in the target database", c->schema, p->mt->name);
        goto out;
    }
    for (size_t j = 0; j < p->mt->ncolumns; j++) {
        const char *col = p->mt->columns[j].name;
        int found = -1;
        for (int i = 0; i < rows && found < 0; i++) {
            if (strcmp(PQgetvalue(res, i, 0), col) == 0)
                found = i;
        }
        if (found < 0) {
            err_set(err, OWL_ERUNTIME, "bundle column %s.%s does not exist in the target table %s.%s", p->mt->name, col,
                    c->schema, p->mt->name);
            goto out;
        }
        p->eq_exact[j] = strcmp(PQgetvalue(res, found, 2), "t") == 0;
        if (strcmp(PQgetvalue(res, found, 1), "t") == 0) {
            const char **grown = realloc(p->serial_cols, (p->nserial + 1) * sizeof(char *));
            if (grown == NULL)
                goto oom;
            p->serial_cols = grown;
            p->serial_cols[p->nserial++] = col;
        }
    }
    rc = 0;
    goto out;
oom:
    err_set(err, OWL_ERUNTIME, "out of memory");
out:
    PQclear(res);
    return rc;
}

static bool bundle_has_column(const manifest_table *mt, const char *name)
{
    for (size_t j = 0; j < mt->ncolumns; j++) {
        if (strcmp(mt->columns[j].name, name) == 0)
            return true;
    }
    return false;
}

/* Picks the key rows are matched by: the configured key, else the primary key,
 * else a unique index on NOT NULL columns, whose columns all travel in the
 * bundle (none generated by the target). */
static int plan_key(PGconn *conn, const cfg *c, table_plan *p, owl_err *err)
{
    const char *params[2] = {c->schema, p->mt->name};
    PGresult *res;
    bool usable = true;

    if (p->ct->key.n > 0) {
        for (size_t i = 0; i < p->ct->key.n; i++) {
            if (!bundle_has_column(p->mt, p->ct->key.v[i]))
                return err_set(err, OWL_EUSAGE, "[table %s] key: column %s is not in the bundle", p->mt->name,
                               p->ct->key.v[i]);
            if (cfg_list_split(&p->key, p->ct->key.v[i]) < 0)
                return err_set(err, OWL_ERUNTIME, "out of memory");
        }
        p->keyed = true;
        return 0;
    }
    /* The primary key, else a unique NOT NULL index, whose columns all travel
     * in the bundle and none of which the target generates. */
    res = db_exec(conn,
                  "SELECT i.indexrelid, a.attname, i.indisprimary OR a.attnotnull FROM pg_catalog.pg_index i"
                  "  JOIN pg_catalog.pg_class r ON r.oid = i.indrelid"
                  "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                  "  JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum = ANY (i.indkey)"
                  " WHERE n.nspname = $1 AND r.relname = $2 AND i.indisunique AND i.indisvalid"
                  "   AND i.indpred IS NULL AND i.indexprs IS NULL"
                  " ORDER BY i.indisprimary DESC, i.indexrelid, a.attnum",
                  2, params, PGRES_TUPLES_OK, err, "cannot read the target catalog");
    if (res == NULL)
        return -1;
    usable = false;
    for (int i = 0; i < PQntuples(res) && !usable;) {
        const char *idx = PQgetvalue(res, i, 0);
        bool ok = true;
        int j = i;
        for (; j < PQntuples(res) && strcmp(PQgetvalue(res, j, 0), idx) == 0; j++) {
            const char *col = PQgetvalue(res, j, 1);
            if (!bundle_has_column(p->mt, col) || cfg_list_has(&p->ct->generated, col) ||
                strcmp(PQgetvalue(res, j, 2), "t") != 0 || cfg_list_split(&p->key, col) < 0)
                ok = false;
        }
        if (ok)
            usable = true;
        else
            cfg_list_free(&p->key);
        i = j;
    }
    PQclear(res);
    p->keyed = usable;
    if (!usable && p->mode != CFG_MODE_REPLACE)
        return err_set(err, OWL_EUSAGE, "table %s has no usable key for mode %s\nHINT: set key = COLUMNS in [table %s]",
                       p->mt->name, p->mode == CFG_MODE_UPSERT ? "upsert" : "insert", p->mt->name);
    return 0;
}

/* Orders plans so that a table comes after every table it references. */
/* The target's foreign keys between tables of its schema: (child, parent) rows. */
static PGresult *load_fks(PGconn *conn, const cfg *c, owl_err *err)
{
    const char *params[1] = {c->schema};

    return db_exec(conn,
                   "SELECT ch.relname, pa.relname FROM pg_catalog.pg_constraint k"
                   "  JOIN pg_catalog.pg_class ch ON ch.oid = k.conrelid"
                   "  JOIN pg_catalog.pg_class pa ON pa.oid = k.confrelid"
                   "  JOIN pg_catalog.pg_namespace n ON n.oid = ch.relnamespace"
                   " WHERE k.contype = 'f' AND n.nspname = $1 AND k.conrelid <> k.confrelid",
                   1, params, PGRES_TUPLES_OK, err, "cannot read the target's foreign keys");
}

static int plan_order(const PGresult *res, table_plan *plans, size_t n, owl_err *err)
{
    bool *placed = NULL;
    table_plan *sorted = NULL;
    size_t done = 0;
    int rc = -1;

    placed = calloc(n, sizeof(bool));
    sorted = calloc(n, sizeof(*sorted));
    if (placed == NULL || sorted == NULL) {
        err_set(err, OWL_ERUNTIME, "out of memory");
        goto out;
    }
    while (done < n) {
        bool progressed = false;
        for (size_t i = 0; i < n; i++) {
            bool ready = !placed[i];
            for (int r = 0; ready && r < PQntuples(res); r++) {
                if (strcmp(PQgetvalue(res, r, 0), plans[i].mt->name) != 0)
                    continue;
                /* plans[i] references PQgetvalue(r, 1): wait for it if it is unplaced */
                for (size_t j = 0; j < n; j++) {
                    if (!placed[j] && j != i && strcmp(plans[j].mt->name, PQgetvalue(res, r, 1)) == 0)
                        ready = false;
                }
            }
            if (ready) {
                sorted[done++] = plans[i];
                placed[i] = true;
                progressed = true;
            }
        }
        if (!progressed) {
            log_warn("foreign keys among the bundle's tables form a cycle; applying the rest in bundle order");
            for (size_t i = 0; i < n; i++) {
                if (!placed[i]) {
                    sorted[done++] = plans[i];
                    placed[i] = true;
                }
            }
        }
    }
    memcpy(plans, sorted, n * sizeof(*plans));
    rc = 0;
out:
    free(placed);
    free(sorted);
    return rc;
}

/* ------------------------------------------------------------------ staging */

static void stage_name(db_sql *q, const table_plan *p)
{
    db_sql_add(q, "pg_temp.owlsync_stage_");
    db_sql_num(q, p->stage_no);
}

static void column_list(db_sql *q, PGconn *conn, const manifest_table *mt, const char *prefix)
{
    for (size_t j = 0; j < mt->ncolumns; j++) {
        if (j > 0)
            db_sql_add(q, ", ");
        if (prefix != NULL)
            db_sql_add(q, prefix);
        db_sql_ident(q, conn, mt->columns[j].name);
    }
}

static int run_sql(PGconn *conn, db_sql *q, owl_err *err, const char *what)
{
    int rc;

    if (q->failed) {
        db_sql_free(q);
        return err_set(err, OWL_ERUNTIME, "out of memory building SQL");
    }
    rc = db_command(conn, q->s, 0, NULL, err, what);
    db_sql_free(q);
    return rc;
}

static void show_progress(progress *prog, const char *table)
{
    if (prog->on && seconds_since(&prog->last) > 0.25) {
        clock_gettime(CLOCK_MONOTONIC, &prog->last);
        fprintf(stderr, "\r\033[Kimport %-20s %9.1f MB %7.1f MB/s", table, (double)prog->bytes / 1e6,
                (double)prog->bytes / 1e6 / seconds_since(&prog->start));
    }
}

/* The entry's bytes go to COPY as they are: no rule applies to this table. */
static ssize_t copy_raw(PGconn *conn, bundle_reader *r, table_plan *p, char *buf, progress *prog, owl_err *err)
{
    ssize_t n;

    while ((n = bundle_read(r, buf, COPY_CHUNK, err)) > 0) {
        if (PQputCopyData(conn, buf, (int)n) != 1)
            return db_fail(conn, NULL, err, "cannot send rows");
        prog->bytes += (uint64_t)n;
        show_progress(prog, p->mt->name);
    }
    return n;
}

/* A row assembled across reads, and a batch of rewritten rows for COPY. */
typedef struct rowbuf {
    char *p;
    size_t len, cap;
} rowbuf;

static int rowbuf_add(rowbuf *b, const char *p, size_t n)
{
    if (n > REWRITE_MAX_ROW || b->len > REWRITE_MAX_ROW + COPY_CHUNK - n)
        return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->len + n > 2 * b->cap ? b->len + n : 2 * b->cap;
        char *grown = realloc(b->p, cap);
        if (grown == NULL)
            return -1;
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Whether the newline at the end of b is data: preceded by an odd run of
 * backslashes, as PostgreSQL's COPY reads it. */
static bool newline_escaped(const rowbuf *b)
{
    size_t k = 0;

    while (k + 1 < b->len && b->p[b->len - 2 - k] == '\\')
        k++;
    return k % 2 == 1;
}

/* Sends one complete row (without newline) through the table's rules. */
static int send_row(PGconn *conn, table_plan *p, rowbuf *row, rowbuf *batch, uint64_t rowno, owl_err *err)
{
    const char *out;
    size_t outlen;

    if (rewrite_row(p->rw, row->p, row->len, rowno, &out, &outlen, err) < 0)
        return -1;
    if (rowbuf_add(batch, out, outlen) < 0 || rowbuf_add(batch, "\n", 1) < 0)
        return err_set(err, OWL_EVERIFY, "%s row %llu is too long", p->mt->file, (unsigned long long)rowno);
    if (batch->len >= COPY_CHUNK) {
        if (PQputCopyData(conn, batch->p, (int)batch->len) != 1)
            return db_fail(conn, NULL, err, "cannot send rows");
        batch->len = 0;
    }
    return 0;
}

/* Splits the entry into rows, rewrites each, and sends them to COPY in batches. */
static ssize_t copy_rewritten(PGconn *conn, bundle_reader *r, table_plan *p, char *buf, progress *prog,
                              owl_err *err)
{
    rowbuf row = {NULL, 0, 0}, batch = {NULL, 0, 0};
    uint64_t rowno = 0;
    ssize_t n, rc = -1;

    while ((n = bundle_read(r, buf, COPY_CHUNK, err)) > 0) {
        const char *s = buf, *end = buf + n;
        while (s < end) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            size_t take = nl != NULL ? (size_t)(nl - s) + 1 : (size_t)(end - s);
            if (rowbuf_add(&row, s, take) < 0) {
                err_set(err, OWL_EVERIFY, "%s row %llu is longer than %d bytes", p->mt->file,
                        (unsigned long long)rowno + 1, REWRITE_MAX_ROW);
                goto out;
            }
            s += take;
            if (nl == NULL || newline_escaped(&row))
                continue;
            row.len--; /* the newline */
            if (send_row(conn, p, &row, &batch, ++rowno, err) < 0)
                goto out;
            row.len = 0;
        }
        prog->bytes += (uint64_t)n;
        show_progress(prog, p->mt->name);
    }
    if (n < 0)
        goto out;
    if (row.len > 0 && send_row(conn, p, &row, &batch, ++rowno, err) < 0)
        goto out;
    if (batch.len > 0 && PQputCopyData(conn, batch.p, (int)batch.len) != 1) {
        db_fail(conn, NULL, err, "cannot send rows");
        goto out;
    }
    rc = 0;
out:
    free(row.p);
    free(batch.p);
    return rc;
}

/* After COPY refused rewritten rows: name the rules that changed this table. */
static void rewrite_hint(const table_plan *p, owl_err *err)
{
    char names[512] = "";
    size_t len = 0;

    for (size_t i = 0; i < rewrite_rule_count(p->rs); i++) {
        if (rewrite_table_changed(p->rw, i) > 0 && len < sizeof(names) - 80)
            len += (size_t)snprintf(names + len, sizeof(names) - len, "%s[rewrite %s]", len ? ", " : "",
                                    rewrite_rule_name(p->rs, i));
    }
    if (len > 0 && strlen(err->msg) + len + 64 < sizeof(err->msg)) {
        strncat(err->msg, "\nHINT: these rules changed its values and may have broken one: ",
                sizeof(err->msg) - strlen(err->msg) - 1);
        strncat(err->msg, names, sizeof(err->msg) - strlen(err->msg) - 1);
    }
}

/* Streams one data entry of the bundle into its staging table with COPY. The
 * entry's hash is checked before COPY ends, so a mismatch aborts it. */
static int stage_table(PGconn *conn, const cfg *c, bundle_reader *r, table_plan *p, progress *prog, owl_err *err)
{
    db_sql q = {0};
    PGresult *res = NULL;
    char *buf = NULL;
    ssize_t n;
    int rc = -1;

    if (!p->direct) {
        db_sql_add(&q, "CREATE TEMP TABLE ");
        stage_name(&q, p);
        db_sql_add(&q, " ON COMMIT DROP AS SELECT ");
        column_list(&q, conn, p->mt, NULL);
        db_sql_add(&q, " FROM ");
        db_sql_qualified(&q, conn, c->schema, p->mt->name);
        db_sql_add(&q, " WITH NO DATA");
        if (run_sql(conn, &q, err, "cannot create a staging table") < 0)
            return -1;
    }

    db_sql_add(&q, "COPY ");
    if (p->direct)
        db_sql_qualified(&q, conn, c->schema, p->mt->name);
    else
        stage_name(&q, p);
    db_sql_add(&q, " (");
    column_list(&q, conn, p->mt, NULL);
    db_sql_add(&q, ") FROM STDIN");
    if (q.failed)
        goto oom;
    res = PQexec(conn, q.s);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        db_fail(conn, res, err, "cannot start COPY");
        goto out;
    }
    PQclear(res);
    res = NULL;
    buf = malloc(COPY_CHUNK);
    if (buf == NULL)
        goto oom;
    if (p->rw != NULL)
        n = copy_rewritten(conn, r, p, buf, prog, err);
    else
        n = copy_raw(conn, r, p, buf, prog, err);
    if (n < 0) {
        PQputCopyEnd(conn, "owlsync stopped the copy");
        goto out;
    }
    if (PQputCopyEnd(conn, NULL) != 1) {
        db_fail(conn, NULL, err, "cannot finish COPY");
        goto out;
    }
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_fail(conn, res, err, "rows rejected by the target");
        err_prefix(err, "%s", p->mt->name);
        if (p->rw != NULL)
            rewrite_hint(p, err);
        goto out;
    }
    {
        char *end;
        unsigned long long staged = strtoull(PQcmdTuples(res), &end, 10);
        if (staged != p->mt->rows) {
            err_set(err, OWL_EVERIFY, "%s holds %llu rows, but the manifest says %llu", p->mt->file, staged,
                    (unsigned long long)p->mt->rows);
            goto out;
        }
    }
    PQclear(res);
    res = NULL;
    db_sql_free(&q);
    /* Statistics of the columns rows are matched by, so the planner joins the
     * stage by hash rather than by loop when it is large. Only those columns,
     * sampled lightly: analyzing every column cost more than the COPY. */
    if (p->keyed && !p->direct) {
        db_sql_add(&q, "ANALYZE ");
        stage_name(&q, p);
        db_sql_add(&q, " (");
        for (size_t i = 0; i < p->key.n; i++) {
            if (i > 0)
                db_sql_add(&q, ", ");
            db_sql_ident(&q, conn, p->key.v[i]);
        }
        db_sql_add(&q, ")");
        if (run_sql(conn, &q, err, "cannot analyze a staging table") < 0)
            goto out;
    }
    rc = 0;
    goto out;
oom:
    err_set(err, OWL_ERUNTIME, "out of memory");
out:
    free(buf);
    PQclear(res);
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
    db_sql_free(&q);
    return rc;
}

/* ------------------------------------------------------------------ apply */

typedef enum { COUNT_INSERTED, COUNT_UPDATED, COUNT_DELETED, COUNT_STAGED } count_kind;

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

/* Runs a statement that answers (dataset, count) rows and adds them to the
 * counts: of the table, and of each dataset when per_dataset. */
static int run_counted(PGconn *conn, db_sql *q, importer_table *t, bool per_dataset, count_kind kind, owl_err *err,
                       const char *what)
{
    PGresult *res;
    int rc = -1;

    if (q->failed) {
        db_sql_free(q);
        return err_set(err, OWL_ERUNTIME, "out of memory building SQL");
    }
    res = db_exec(conn, q->s, 0, NULL, PGRES_TUPLES_OK, err, what);
    db_sql_free(q);
    if (res == NULL)
        return err_prefix(err, "%s", t->name);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *ds = PQgetisnull(res, i, 0) ? "" : PQgetvalue(res, i, 0);
        uint64_t n = strtoull(PQgetvalue(res, i, 1), NULL, 10);
        importer_counts unused = {0}, *k = &unused;
        if (per_dataset) {
            importer_dataset *d = dataset_slot(t, ds);
            if (d == NULL) {
                err_set(err, OWL_ERUNTIME, "out of memory");
                goto out;
            }
            k = &d->n;
        }
        switch (kind) {
        case COUNT_INSERTED:
            k->inserted += n;
            t->n.inserted += n;
            break;
        case COUNT_UPDATED:
            k->updated += n;
            t->n.updated += n;
            break;
        case COUNT_DELETED:
            k->deleted += n;
            t->n.deleted += n;
            break;
        case COUNT_STAGED:
            k->unchanged += n; /* less inserted and updated, at the end */
            t->n.unchanged += n;
            break;
        }
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

/* "alias.dataset_column::text AS ds", or "''::text AS ds" for a global table. */
static void ds_column(db_sql *q, PGconn *conn, const table_plan *p, const char *alias)
{
    if (p->mt->dataset_column[0] != '\0') {
        db_sql_add(q, alias);
        db_sql_ident(q, conn, p->mt->dataset_column);
        db_sql_add(q, "::text");
    } else {
        db_sql_add(q, "''::text");
    }
    db_sql_add(q, " AS ds");
}

/* Closes "WITH x AS (… ds …)" with the count of its rows: per dataset in byte
 * order when the report wants them (a bundle may hold tens of thousands), else
 * one total, so that memory does not grow with the datasets. */
static void count_x(db_sql *q, const table_plan *p)
{
    if (p->per_dataset)
        db_sql_add(q, ") SELECT ds, pg_catalog.count(*) FROM x GROUP BY ds ORDER BY ds COLLATE \"C\"");
    else
        db_sql_add(q, ") SELECT '', pg_catalog.count(*) FROM x");
}

/* Closes a RETURNING CTE with its count. */
static void returning_ds(db_sql *q, PGconn *conn, const table_plan *p, const char *alias)
{
    db_sql_add(q, " RETURNING ");
    ds_column(q, conn, p, alias);
    count_x(q, p);
}

/* "t.k1 = s.k1 AND t.k2 = s.k2" */
static void key_match(db_sql *q, PGconn *conn, const table_plan *p)
{
    for (size_t i = 0; i < p->key.n; i++) {
        if (i > 0)
            db_sql_add(q, " AND ");
        db_sql_add(q, "t.");
        db_sql_ident(q, conn, p->key.v[i]);
        db_sql_add(q, " = s.");
        db_sql_ident(q, conn, p->key.v[i]);
    }
}

/* The target's rows the bundle speaks for: its datasets, or all of a global table. */
static void scope(db_sql *q, PGconn *conn, const table_plan *p)
{
    if (p->mt->dataset_column[0] == '\0') {
        db_sql_add(q, "true");
        return;
    }
    db_sql_add(q, "t.");
    db_sql_ident(q, conn, p->mt->dataset_column);
    db_sql_add(q, " IN (SELECT pg_catalog.unnest(pg_catalog.current_setting('owlsync.scope')::text[]))");
}

static int count_staged(PGconn *conn, table_plan *p, owl_err *err)
{
    db_sql q = {0};

    if (!p->per_dataset) {
        p->out->n.unchanged += p->mt->rows; /* staged, checked by stage_table */
        return 0;
    }

    db_sql_add(&q, "WITH x AS (SELECT ");
    ds_column(&q, conn, p, "");
    db_sql_add(&q, " FROM ");
    stage_name(&q, p);
    count_x(&q, p);
    return run_counted(conn, &q, p->out, p->per_dataset, COUNT_STAGED, err, "cannot count staged rows");
}

/* Counts, in one join, the target's rows in scope that no staged row matches
 * (what replace deletes) and the staged rows no such target row matches (at
 * least what is inserted), so that a re-import of the same keys runs neither
 * the anti-join DELETE nor the stage prune.  Needs owlsync.scope set. */
static int count_matches(PGconn *conn, const cfg *c, table_plan *p, owl_err *err)
{
    db_sql q = {0};
    PGresult *res;

    db_sql_add(&q, "SELECT pg_catalog.count(*) FILTER (WHERE s.present IS NULL),"
                   " pg_catalog.count(*) FILTER (WHERE t.present IS NULL) FROM (SELECT true AS present");
    for (size_t i = 0; i < p->key.n; i++) {
        db_sql_add(&q, ", t.");
        db_sql_ident(&q, conn, p->key.v[i]);
    }
    db_sql_add(&q, " FROM ");
    db_sql_qualified(&q, conn, c->schema, p->mt->name);
    db_sql_add(&q, " t WHERE ");
    scope(&q, conn, p);
    db_sql_add(&q, ") t FULL JOIN (SELECT true AS present");
    for (size_t i = 0; i < p->key.n; i++) {
        db_sql_add(&q, ", s.");
        db_sql_ident(&q, conn, p->key.v[i]);
    }
    db_sql_add(&q, " FROM ");
    stage_name(&q, p);
    db_sql_add(&q, " s) s ON ");
    key_match(&q, conn, p);
    if (q.failed) {
        db_sql_free(&q);
        return err_set(err, OWL_ERUNTIME, "out of memory building SQL");
    }
    res = db_exec(conn, q.s, 0, NULL, PGRES_TUPLES_OK, err, "cannot match staged rows");
    db_sql_free(&q);
    if (res == NULL)
        return err_prefix(err, "%s", p->mt->name);
    p->to_delete = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    p->to_insert = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    p->matched = true;
    PQclear(res);
    return 0;
}

static int apply_delete(PGconn *conn, const cfg *c, table_plan *p, owl_err *err)
{
    db_sql q = {0};

    db_sql_add(&q, "WITH x AS (DELETE FROM ");
    db_sql_qualified(&q, conn, c->schema, p->mt->name);
    db_sql_add(&q, " t WHERE ");
    scope(&q, conn, p);
    if (p->keyed) {
        db_sql_add(&q, " AND NOT EXISTS (SELECT 1 FROM ");
        stage_name(&q, p);
        db_sql_add(&q, " s WHERE ");
        key_match(&q, conn, p);
        db_sql_add(&q, ")");
    }
    returning_ds(&q, conn, p, "t.");
    return run_counted(conn, &q, p->out, p->per_dataset, COUNT_DELETED, err, "cannot delete rows");
}

static int apply_update(PGconn *conn, const cfg *c, table_plan *p, owl_err *err)
{
    db_sql q = {0};
    size_t nset = 0;

    db_sql_add(&q, "WITH x AS (UPDATE ");
    db_sql_qualified(&q, conn, c->schema, p->mt->name);
    db_sql_add(&q, " t SET ");
    for (size_t j = 0; j < p->mt->ncolumns; j++) {
        const char *col = p->mt->columns[j].name;
        if (cfg_list_has(&p->key, col))
            continue;
        if (nset++ > 0)
            db_sql_add(&q, ", ");
        db_sql_ident(&q, conn, col);
        db_sql_add(&q, " = s.");
        db_sql_ident(&q, conn, col);
    }
    if (nset == 0) {
        db_sql_free(&q);
        return 0; /* every column is key: nothing can change */
    }
    db_sql_add(&q, " FROM ");
    stage_name(&q, p);
    db_sql_add(&q, " s WHERE ");
    key_match(&q, conn, p);
    /* A change is a change to the byte (1.0 vs 1.00): columns whose "=" is
     * identity are compared as they are, the others as text. */
    db_sql_add(&q, " AND (");
    for (size_t j = 0; j < p->mt->ncolumns; j++) {
        const char *col = p->mt->columns[j].name;
        const char *as = p->eq_exact[j] ? "" : "::text";
        if (j > 0)
            db_sql_add(&q, " OR ");
        db_sql_add(&q, "t.");
        db_sql_ident(&q, conn, col);
        db_sql_add(&q, as);
        db_sql_add(&q, " IS DISTINCT FROM s.");
        db_sql_ident(&q, conn, col);
        db_sql_add(&q, as);
    }
    db_sql_add(&q, ")");
    returning_ds(&q, conn, p, "t.");
    return run_counted(conn, &q, p->out, p->per_dataset, COUNT_UPDATED, err, "cannot update rows");
}

static int apply_insert(PGconn *conn, const cfg *c, table_plan *p, owl_err *err)
{
    db_sql q = {0};

    if (p->matched && p->to_insert == 0)
        return 0; /* every staged row matched a target row: nothing is new */
    /* The stage keeps only rows new to the target; the INSERT then reads
     * nothing of the table it writes (an anti-join inside the INSERT scanned
     * the rows it had just added, quadratically, when the table's statistics
     * said it was empty). The stage is not read again after this. */
    if (p->keyed) {
        db_sql_add(&q, "DELETE FROM ");
        stage_name(&q, p);
        db_sql_add(&q, " s WHERE EXISTS (SELECT 1 FROM ");
        db_sql_qualified(&q, conn, c->schema, p->mt->name);
        db_sql_add(&q, " t WHERE ");
        key_match(&q, conn, p);
        db_sql_add(&q, ")");
        if (run_sql(conn, &q, err, "cannot compare staged rows") < 0)
            return err_prefix(err, "%s", p->mt->name);
    }

    db_sql_add(&q, "WITH x AS (INSERT INTO ");
    db_sql_qualified(&q, conn, c->schema, p->mt->name);
    db_sql_add(&q, " (");
    column_list(&q, conn, p->mt, NULL);
    db_sql_add(&q, ") SELECT ");
    column_list(&q, conn, p->mt, "s.");
    db_sql_add(&q, " FROM ");
    stage_name(&q, p);
    db_sql_add(&q, " s");
    returning_ds(&q, conn, p, "");
    return run_counted(conn, &q, p->out, p->per_dataset, COUNT_INSERTED, err, "cannot insert rows");
}

/* Moves each serial/identity sequence past the largest value now in its column. */
static int bump_sequences(PGconn *conn, const cfg *c, table_plan *p, owl_err *err)
{
    for (size_t i = 0; i < p->nserial; i++) {
        db_sql q = {0};
        char *qual = NULL;
        PGresult *res;
        const char *params[2];

        db_sql_qualified(&q, conn, c->schema, p->mt->name);
        if (q.failed) {
            db_sql_free(&q);
            return err_set(err, OWL_ERUNTIME, "out of memory");
        }
        qual = q.s;
        q.s = NULL;
        q.len = q.cap = 0;
        db_sql_add(&q, "SELECT pg_catalog.setval(seq, m) FROM (SELECT pg_catalog.pg_get_serial_sequence($1, $2) AS seq) s,"
                       " (SELECT pg_catalog.max(");
        db_sql_ident(&q, conn, p->serial_cols[i]);
        db_sql_add(&q, ")::int8 AS m FROM ");
        db_sql_qualified(&q, conn, c->schema, p->mt->name);
        db_sql_add(&q, ") x WHERE m IS NOT NULL AND m > COALESCE(pg_catalog.pg_sequence_last_value(seq::regclass), 0)");
        params[0] = qual;
        params[1] = p->serial_cols[i];
        res = q.failed ? NULL : db_exec(conn, q.s, 2, params, PGRES_TUPLES_OK, err, "cannot move a sequence");
        db_sql_free(&q);
        free(qual);
        if (res == NULL)
            return err_prefix(err, "%s.%s", p->mt->name, p->serial_cols[i]);
        PQclear(res);
    }
    return 0;
}

/* ------------------------------------------------------------------ ledger */

static int ensure_ledger(PGconn *conn, owl_err *err)
{
    PGresult *res = db_exec(conn,
                            "SELECT pg_catalog.to_regclass('owlsync.bundles') IS NOT NULL"
                            " AND pg_catalog.to_regclass('owlsync.bundle_tables') IS NOT NULL"
                            " AND pg_catalog.to_regclass('owlsync.datasets') IS NOT NULL"
                            " AND pg_catalog.to_regclass('owlsync.bundle_rewrites') IS NOT NULL",
                            0, NULL, PGRES_TUPLES_OK, err, "cannot look for the ledger");
    bool present;

    if (res == NULL)
        return -1;
    present = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (present)
        return 0;
    log_info("creating the owlsync ledger schema");
    res = PQexec(conn, ledger_sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_fail(conn, res, err, "cannot create the ledger (schema owlsync)");
        PQclear(res);
        return err_prefix(err, "%s", "ledger");
    }
    PQclear(res);
    return 0;
}

static int write_ledger(PGconn *conn, const manifest *m, const char *path, table_plan *plans, size_t n, owl_err *err)
{
    char seq[32], rows[32], snap[40], created[40];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char *datasets = db_array_text(m->datasets, m->ndatasets);
    uint64_t total = 0;
    int rc = -1;

    if (datasets == NULL)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    for (size_t i = 0; i < n; i++)
        total += plans[i].mt->rows;
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)m->sequence);
    snprintf(rows, sizeof(rows), "%llu", (unsigned long long)total);
    manifest_format_time(m->snapshot_at, snap, sizeof(snap));
    manifest_format_time(m->created_at, created, sizeof(created));
    {
        const char *p[9] = {m->bundle_id, m->environment, m->job, seq, snap, created, m->key_id, base, datasets};
        const char *params[10];
        memcpy(params, p, sizeof(p));
        params[9] = rows;
        if (db_command(conn,
                       "INSERT INTO owlsync.bundles (bundle_id, environment, job, sequence, snapshot_at, created_at,"
                       " key_id, file_name, datasets, rows_total) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                       10, params, err, "cannot write the ledger") < 0)
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const importer_table *t = plans[i].out;
        char v[5][32];
        const char *params[7];
        snprintf(v[0], 32, "%llu", (unsigned long long)t->rows);
        snprintf(v[1], 32, "%llu", (unsigned long long)t->n.inserted);
        snprintf(v[2], 32, "%llu", (unsigned long long)t->n.updated);
        snprintf(v[3], 32, "%llu", (unsigned long long)t->n.deleted);
        snprintf(v[4], 32, "%llu", (unsigned long long)t->n.unchanged);
        params[0] = m->bundle_id;
        params[1] = t->name;
        for (int k = 0; k < 5; k++)
            params[2 + k] = v[k];
        if (db_command(conn,
                       "INSERT INTO owlsync.bundle_tables (bundle_id, table_name, rows, inserted, updated, deleted,"
                       " unchanged) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                       7, params, err, "cannot write the ledger") < 0)
            goto out;
    }
    {
        const char *params[4] = {m->environment, datasets, snap, m->bundle_id};
        if (db_command(conn,
                       "INSERT INTO owlsync.datasets AS d (environment, dataset, snapshot_at, bundle_id)"
                       " SELECT $1, x, $3, $4 FROM pg_catalog.unnest($2::text[]) x"
                       " ON CONFLICT (environment, dataset) DO UPDATE"
                       " SET snapshot_at = EXCLUDED.snapshot_at, bundle_id = EXCLUDED.bundle_id, imported_at = now()",
                       4, params, err, "cannot write the ledger") < 0)
            goto out;
    }
    rc = 0;
out:
    free(datasets);
    return rc;
}

/* 1 when the bundle is in the ledger already, 0 when not, -1 on error. */
static int already_imported(PGconn *conn, const manifest *m, owl_err *err)
{
    const char *params[1] = {m->bundle_id};
    PGresult *res = db_exec(conn, "SELECT 1 FROM owlsync.bundles WHERE bundle_id = $1", 1, params, PGRES_TUPLES_OK,
                            err, "cannot read the ledger");
    int found;

    if (res == NULL)
        return -1;
    found = PQntuples(res) > 0;
    PQclear(res);
    return found;
}

/* Refuses a bundle older than what the target holds for one of its datasets. */
static int check_rollback(PGconn *conn, const manifest *m, bool allow, owl_err *err)
{
    char snap[40], have[40];
    char *datasets = db_array_text(m->datasets, m->ndatasets);
    const char *params[3];
    PGresult *res;
    int rc = -1;

    if (datasets == NULL)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    manifest_format_time(m->snapshot_at, snap, sizeof(snap));
    params[0] = m->environment;
    params[1] = datasets;
    params[2] = snap;
    res = db_exec(conn,
                  "SELECT dataset, pg_catalog.to_char(snapshot_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                  "  FROM owlsync.datasets"
                  " WHERE environment = $1 AND dataset = ANY ($2::text[]) AND snapshot_at > $3::timestamptz"
                  " ORDER BY snapshot_at DESC LIMIT 1",
                  3, params, PGRES_TUPLES_OK, err, "cannot read the ledger");
    free(datasets);
    if (res == NULL)
        return -1;
    if (PQntuples(res) > 0) {
        snprintf(have, sizeof(have), "%s", PQgetvalue(res, 0, 1));
        if (!allow) {
            err_set(err, OWL_EPOLICY,
                    "bundle is older than what this database holds: dataset %.200s was imported from a snapshot of %s, "
                    "this bundle's snapshot is %s\nHINT: --allow-rollback applies it anyway",
                    PQgetvalue(res, 0, 0), have, snap);
            goto out;
        }
        log_warn("applying an older bundle (--allow-rollback): dataset %s holds a snapshot of %s, this one is %s",
                 PQgetvalue(res, 0, 0), have, snap);
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------------ rewrites */

/* Gives each table the rules that apply to it; tables with none pay nothing. */
static int plan_rewrites(const manifest *m, const rewrite_set *rs, table_plan *plans, size_t n, importer_result *res,
                         owl_err *err)
{
    size_t nrules = rs != NULL ? rewrite_rule_count(rs) : 0;

    if (nrules == 0)
        return 0;
    res->rules = calloc(nrules, sizeof(char *));
    if (res->rules == NULL)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    res->nrules = nrules;
    for (size_t i = 0; i < nrules; i++)
        res->rules[i] = rewrite_rule_name(rs, i);
    for (size_t i = 0; i < n; i++) {
        importer_table *t = plans[i].out;
        if (rewrite_table_new(rs, &m->tables[i], &plans[i].rw, err) < 0)
            return -1;
        t->rewritten = calloc(nrules, sizeof(uint64_t));
        t->covered = calloc(nrules, sizeof(bool));
        if (t->rewritten == NULL || t->covered == NULL)
            return err_set(err, OWL_ERUNTIME, "out of memory");
        for (size_t k = 0; k < nrules; k++)
            t->covered[k] = rewrite_table_covers(plans[i].rw, k);
        if (!rewrite_table_active(plans[i].rw)) {
            rewrite_table_free(plans[i].rw);
            plans[i].rw = NULL;
        }
    }
    return 0;
}

/* The target's names of the bundle's datasets for one table: rules on its
 * dataset column (a tenant prefix, say) apply to the scope as to the rows. */
static int plan_scope(const manifest *m, table_plan *p, owl_err *err)
{
    char **names;
    int rc = -1;

    if (p->scope != NULL)
        return 0;
    names = calloc(m->ndatasets ? m->ndatasets : 1, sizeof(char *));

    if (names == NULL)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    for (size_t i = 0; i < m->ndatasets; i++) {
        if (p->rw != NULL && p->mt->dataset_column[0] != '\0') {
            if (rewrite_value(p->rw, p->mt->dataset_column, m->datasets[i], &names[i], err) < 0)
                goto out;
        } else if ((names[i] = strdup(m->datasets[i])) == NULL) {
            err_set(err, OWL_ERUNTIME, "out of memory");
            goto out;
        }
    }
    p->scope = db_array_text(names, m->ndatasets);
    rc = p->scope != NULL ? 0 : err_set(err, OWL_ERUNTIME, "out of memory");
out:
    for (size_t i = 0; i < m->ndatasets; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Copies each table's counts into the result and warns of rules that changed
 * nothing although the bundle carries their columns: usually a stale rule. */
static void report_rewrites(importer_result *res, const table_plan *plans, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; plans[i].rw != NULL && k < res->nrules; k++)
            plans[i].out->rewritten[k] = rewrite_table_changed(plans[i].rw, k);
    }
    for (size_t k = 0; k < res->nrules; k++) {
        bool covered = false;
        uint64_t changed = 0;
        for (size_t i = 0; i < n; i++) {
            covered = covered || plans[i].out->covered[k];
            changed += plans[i].out->rewritten[k];
        }
        if (covered && changed == 0)
            log_warn("[rewrite %s] changed nothing in this bundle, which carries its columns: is it stale?",
                     res->rules[k]);
    }
}

static int write_rewrites(PGconn *conn, const manifest *m, const importer_result *res, owl_err *err)
{
    for (size_t i = 0; i < res->ntables; i++) {
        const importer_table *t = &res->tables[i];
        for (size_t k = 0; k < res->nrules; k++) {
            char num[32];
            const char *params[4] = {m->bundle_id, res->rules[k], t->name, num};
            if (!t->covered[k])
                continue;
            snprintf(num, sizeof(num), "%llu", (unsigned long long)t->rewritten[k]);
            if (db_command(conn,
                           "INSERT INTO owlsync.bundle_rewrites (bundle_id, rule_name, table_name, changed)"
                           " VALUES ($1, $2, $3, $4)",
                           4, params, err, "cannot write the ledger") < 0)
                return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ straight in */

/* Whether a table may skip its staging table: the target holds none of the
 * rows the bundle speaks for (a first promotion), so every row is new and
 * COPY can write the table itself. Its parents within the bundle must have
 * gone in the same way, before it, or their rows would not be there yet. */
static int plan_direct(PGconn *conn, const cfg *c, const manifest *m, const PGresult *fks, table_plan *plans,
                       size_t i, owl_err *err)
{
    table_plan *p = &plans[i];
    db_sql q = {0};
    PGresult *res;
    bool empty;

    p->direct = false;
    for (int r = 0; r < PQntuples(fks); r++) {
        if (strcmp(PQgetvalue(fks, r, 0), p->mt->name) != 0)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(plans[j].mt->name, PQgetvalue(fks, r, 1)) == 0 && !plans[j].direct)
                return 0;
        }
        for (size_t j = i + 1; j < m->ntables; j++) {
            if (strcmp(plans[j].mt->name, PQgetvalue(fks, r, 1)) == 0)
                return 0;
        }
    }
    if (plan_scope(m, p, err) < 0 || db_set_local(conn, "owlsync.scope", p->scope, err) < 0)
        return -1;
    db_sql_add(&q, "SELECT NOT EXISTS (SELECT 1 FROM ");
    db_sql_qualified(&q, conn, c->schema, p->mt->name);
    db_sql_add(&q, " t WHERE ");
    scope(&q, conn, p);
    db_sql_add(&q, ")");
    if (q.failed) {
        db_sql_free(&q);
        return err_set(err, OWL_ERUNTIME, "out of memory building SQL");
    }
    res = db_exec(conn, q.s, 0, NULL, PGRES_TUPLES_OK, err, "cannot look at the target's rows");
    db_sql_free(&q);
    if (res == NULL)
        return err_prefix(err, "%s", p->mt->name);
    empty = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    p->direct = empty;
    return 0;
}

/* After a straight COPY: every row of the scope is new. */
static int count_direct(PGconn *conn, const cfg *c, table_plan *p, owl_err *err)
{
    db_sql q = {0};

    if (!p->per_dataset) {
        /* The target held none of the table's rows in scope: all it holds
         * there now is what the COPY put in. */
        p->out->n.inserted = p->mt->rows;
        return 0;
    }
    if (db_set_local(conn, "owlsync.scope", p->scope, err) < 0)
        return -1;
    db_sql_add(&q, "WITH x AS (SELECT ");
    ds_column(&q, conn, p, "t.");
    db_sql_add(&q, " FROM ");
    db_sql_qualified(&q, conn, c->schema, p->mt->name);
    db_sql_add(&q, " t WHERE ");
    scope(&q, conn, p);
    count_x(&q, p);
    return run_counted(conn, &q, p->out, true, COUNT_INSERTED, err, "cannot count inserted rows");
}

/* ------------------------------------------------------------------ run */

static const char *mode_name(const table_plan *p)
{
    switch (p->mode) {
    case CFG_MODE_UPSERT:
        return "upsert";
    case CFG_MODE_INSERT:
        return "insert";
    default:
        return p->keyed ? "replace" : "replace (delete, insert)";
    }
}

static void plans_free(table_plan *plans, size_t n)
{
    for (size_t i = 0; plans != NULL && i < n; i++) {
        cfg_list_free(&plans[i].key);
        free((void *)plans[i].serial_cols);
        rewrite_table_free(plans[i].rw);
        free(plans[i].scope);
        free(plans[i].eq_exact);
    }
    free(plans);
}

int importer_run(const cfg *c, const keys_trust *trust, const rewrite_set *rewrites, const char *path,
                 const importer_opts *opts, importer_result *res, owl_err *err)
{
    bundle_reader *r = NULL;
    bundle_limits lim = {c->import.max_bundle_size, c->import.max_unpacked_size};
    const manifest *m;
    PGconn *conn = NULL;
    table_plan *plans = NULL;
    const manifest_table *mt;
    PGresult *fks = NULL;
    bool deleted_any = false;
    progress prog;
    size_t n = 0;
    int rc = -1, got;

    memset(res, 0, sizeof(*res));
    memset(&prog, 0, sizeof(prog));
    prog.on = opts->progress;
    clock_gettime(CLOCK_MONOTONIC, &prog.start);
    prog.last = prog.start;
    if (!c->import.present) {
        lim.max_bundle_size = 1ULL << 30;
        lim.max_unpacked_size = 8ULL << 30;
    }

    /* Verify: nothing of the bundle is believed before its signature holds. */
    if (bundle_open(path, &lim, trust, &r, err) < 0)
        goto out;
    m = bundle_manifest(r);
    memcpy(res->bundle_id, m->bundle_id, sizeof(res->bundle_id));
    res->environment = strdup(m->environment);
    res->job = strdup(m->job);
    res->sequence = m->sequence;
    res->ndatasets = m->ndatasets;
    if (check_policy(c, m, err) < 0)
        goto out;

    plans = calloc(m->ntables, sizeof(*plans));
    res->tables = calloc(m->ntables, sizeof(*res->tables));
    if (plans == NULL || res->tables == NULL || res->environment == NULL || res->job == NULL)
        goto oom;
    res->ntables = m->ntables;
    for (size_t i = 0; i < m->ntables; i++) {
        plans[i].mt = &m->tables[i];
        plans[i].ct = cfg_find_table(c, m->tables[i].name);
        plans[i].mode = plans[i].ct->mode;
        plans[i].stage_no = (unsigned)i;
        plans[i].rs = rewrites;
        plans[i].out = &res->tables[i];
        plans[i].per_dataset = opts->per_dataset;
        res->tables[i].name = strdup(m->tables[i].name);
        res->tables[i].rows = m->tables[i].rows;
        if (res->tables[i].name == NULL)
            goto oom;
    }
    n = m->ntables;
    if (plan_rewrites(m, rewrites, plans, n, res, err) < 0)
        goto out;

    if (db_connect(c->conninfo, "the target database", &conn, err) < 0)
        goto out;
    if (db_command(conn, "BEGIN", 0, NULL, err, "cannot begin") < 0 ||
        db_command(conn, "SET LOCAL lock_timeout = '" LOCK_TIMEOUT "'", 0, NULL, err, "cannot set lock_timeout") < 0 ||
        db_command(conn, "SET LOCAL search_path = pg_catalog, pg_temp", 0, NULL, err, "cannot set search_path") < 0 ||
        db_command(conn, "SET LOCAL default_statistics_target = 10", 0, NULL, err, "cannot set statistics") < 0 ||
        db_command(conn, "SET LOCAL temp_buffers = '64MB'", 0, NULL, err, "cannot set temp_buffers") < 0 ||
        /* Stage and target are joined on the key: by hash, in memory.  A
         * merge join sorts both sides (the stage has no index) and spills. */
        db_command(conn, "SET LOCAL work_mem = '64MB'", 0, NULL, err, "cannot set work_mem") < 0 ||
        db_command(conn, "SET LOCAL enable_mergejoin = off", 0, NULL, err, "cannot set enable_mergejoin") < 0)
        goto out;
    {
        PGresult *lr = db_exec(conn, IMPORT_LOCK_SQL, 0, NULL, PGRES_TUPLES_OK, err, "cannot take the import lock");
        if (lr == NULL)
            goto out;
        PQclear(lr);
    }
    if (ensure_ledger(conn, err) < 0)
        goto out;
    got = already_imported(conn, m, err);
    if (got < 0)
        goto out;
    if (got > 0) {
        res->status = IMPORT_ALREADY;
        rc = 0;
        goto out;
    }
    if (check_rollback(conn, m, opts->allow_rollback, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (plan_columns(conn, c, &plans[i], err) < 0 || plan_key(conn, c, &plans[i], err) < 0)
            goto out;
        plans[i].out->mode = mode_name(&plans[i]);
    }

    /* Stage every table, in the bundle's order (the order of its entries);
     * a table the target has none of the bundle's rows of goes straight in. */
    fks = load_fks(conn, c, err);
    if (fks == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        got = bundle_next_table(r, &mt, err);
        if (got <= 0) {
            if (got == 0)
                err_set(err, OWL_EVERIFY, "bundle ends before table %s", plans[i].mt->name);
            goto out;
        }
        if (plan_direct(conn, c, m, fks, plans, i, err) < 0 || stage_table(conn, c, r, &plans[i], &prog, err) < 0)
            goto out;
        if (plans[i].direct && (count_direct(conn, c, &plans[i], err) < 0 || bump_sequences(conn, c, &plans[i], err) < 0))
            goto out;
    }
    if (bundle_next_table(r, &mt, err) != 0) /* the end, and the layout check */
        goto out;
    if (prog.on)
        fprintf(stderr, "\r\033[K");

    /* Apply: deletes children first, then updates and inserts parents first. */
    if (plan_order(fks, plans, n, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (!plans[i].direct && count_staged(conn, &plans[i], err) < 0)
            goto out;
    }
    for (size_t i = n; i-- > 0;) {
        bool replace = plans[i].mode == CFG_MODE_REPLACE;
        if (plans[i].direct || (!replace && !plans[i].keyed))
            continue;
        if (plan_scope(m, &plans[i], err) < 0 || db_set_local(conn, "owlsync.scope", plans[i].scope, err) < 0 ||
            (plans[i].keyed && count_matches(conn, c, &plans[i], err) < 0))
            goto out;
        if (replace && (!plans[i].matched || plans[i].to_delete > 0)) {
            if (apply_delete(conn, c, &plans[i], err) < 0)
                goto out;
            deleted_any = deleted_any || plans[i].out->n.deleted > 0;
        }
        free(plans[i].scope);
        plans[i].scope = NULL;
    }
    /* A delete may cascade to rows of another table after its count: then
     * its staged rows are compared with the target once more. */
    for (size_t i = 0; deleted_any && i < n; i++)
        plans[i].matched = false;
    for (size_t i = 0; i < n; i++) {
        if (plans[i].direct)
            continue;
        if (plans[i].keyed && plans[i].mode != CFG_MODE_INSERT && apply_update(conn, c, &plans[i], err) < 0)
            goto out;
        if (apply_insert(conn, c, &plans[i], err) < 0 || bump_sequences(conn, c, &plans[i], err) < 0)
            goto out;
    }
    /* unchanged = staged - inserted - updated, per dataset and in total */
    for (size_t i = 0; i < n; i++) {
        importer_table *t = plans[i].out;
        uint64_t moved = t->n.inserted + t->n.updated;
        t->n.unchanged = t->n.unchanged > moved ? t->n.unchanged - moved : 0;
        for (size_t d = 0; d < t->ndatasets; d++) {
            importer_counts *k = &t->datasets[d].n;
            moved = k->inserted + k->updated;
            k->unchanged = k->unchanged > moved ? k->unchanged - moved : 0;
        }
    }
    report_rewrites(res, plans, n);
    if (write_ledger(conn, m, path, plans, n, err) < 0 || write_rewrites(conn, m, res, err) < 0)
        goto out;
    if (opts->dry_run) {
        res->status = IMPORT_DRY_RUN;
        rc = 0;
        goto out; /* the rollback below undoes everything */
    }
    if (db_command(conn, "COMMIT", 0, NULL, err, "cannot commit the import") < 0)
        goto out;
    res->status = IMPORT_APPLIED;
    rc = 0;
    goto out;
oom:
    err_set(err, OWL_ERUNTIME, "out of memory");
out:
    if (conn != NULL) {
        if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
            PGresult *rb = PQexec(conn, "ROLLBACK");
            PQclear(rb);
        }
        PQfinish(conn);
    }
    res->seconds = seconds_since(&prog.start);
    PQclear(fks);
    plans_free(plans, n);
    bundle_close(r);
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
    free(res->environment);
    free(res->job);
    memset(res, 0, sizeof(*res));
}

/* ------------------------------------------------------------------ claim lock, ledger for status */

struct importer_lock {
    PGconn *conn;
};

#define CLAIM_LOCK_TRY "SELECT pg_catalog.pg_try_advisory_lock(1870164851, 2)"
#define CLAIM_UNLOCK "SELECT pg_catalog.pg_advisory_unlock(1870164851, 2)"

int importer_claim_lock(const cfg *c, importer_lock **lock, owl_err *err)
{
    importer_lock *l = *lock;
    PGresult *res;
    int got;

    if (l == NULL) {
        l = calloc(1, sizeof(*l));
        if (l == NULL)
            return err_set(err, OWL_ERUNTIME, "out of memory");
        *lock = l;
    }
    if (l->conn != NULL && PQstatus(l->conn) != CONNECTION_OK) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
    if (l->conn == NULL && db_connect(c->conninfo, "the target database", &l->conn, err) < 0)
        return -1;
    res = db_exec(l->conn, CLAIM_LOCK_TRY, 0, NULL, PGRES_TUPLES_OK, err, "cannot take the claim lock");
    if (res == NULL) {
        PQfinish(l->conn);
        l->conn = NULL;
        return -1;
    }
    got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return got;
}

void importer_claim_unlock(importer_lock *lock)
{
    PGresult *res;

    if (lock == NULL || lock->conn == NULL)
        return;
    res = PQexec(lock->conn, CLAIM_UNLOCK);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* a broken connection drops the lock with it */
        PQfinish(lock->conn);
        lock->conn = NULL;
    }
    PQclear(res);
}

void importer_lock_free(importer_lock *lock)
{
    if (lock == NULL)
        return;
    if (lock->conn != NULL)
        PQfinish(lock->conn);
    free(lock);
}

static char *dup_value(const PGresult *res, int row, int col)
{
    return strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

int importer_ledger(const cfg *c, int limit, importer_ledger_row **rows, size_t *n, int64_t *last_import,
                    owl_err *err)
{
    PGconn *conn = NULL;
    PGresult *res = NULL;
    char lim[16];
    const char *params[1] = {lim};
    int rc = -1;

    *rows = NULL;
    *n = 0;
    *last_import = 0;
    if (db_connect(c->conninfo, "the target database", &conn, err) < 0)
        return -1;
    res = db_exec(conn, "SELECT pg_catalog.to_regclass('owlsync.bundles') IS NOT NULL", 0, NULL, PGRES_TUPLES_OK, err,
                  "cannot look for the ledger");
    if (res == NULL)
        goto out;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        rc = 0;
        goto out;
    }
    PQclear(res);
    snprintf(lim, sizeof(lim), "%d", limit);
    res = db_exec(conn,
                  "SELECT file_name, bundle_id, environment, job, sequence, pg_catalog.array_to_string(datasets, ', '),"
                  "       rows_total, pg_catalog.to_char(imported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                  "       (extract(epoch FROM imported_at) * 1000000)::int8"
                  "  FROM owlsync.bundles ORDER BY imported_at DESC LIMIT $1::int",
                  1, params, PGRES_TUPLES_OK, err, "cannot read the ledger");
    if (res == NULL)
        goto out;
    *rows = calloc((size_t)PQntuples(res) + 1, sizeof(**rows));
    if (*rows == NULL) {
        err_set(err, OWL_ERUNTIME, "out of memory");
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        importer_ledger_row *r = &(*rows)[i];
        r->file_name = dup_value(res, i, 0);
        r->bundle_id = dup_value(res, i, 1);
        r->environment = dup_value(res, i, 2);
        r->job = dup_value(res, i, 3);
        r->sequence = strtoull(PQgetvalue(res, i, 4), NULL, 10);
        r->datasets = dup_value(res, i, 5);
        r->rows = strtoull(PQgetvalue(res, i, 6), NULL, 10);
        r->imported_at = dup_value(res, i, 7);
        if (i == 0)
            *last_import = strtoll(PQgetvalue(res, i, 8), NULL, 10);
        (*n)++;
    }
    rc = 0;
out:
    PQclear(res);
    PQfinish(conn);
    return rc;
}

void importer_ledger_free(importer_ledger_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].file_name);
        free(rows[i].bundle_id);
        free(rows[i].environment);
        free(rows[i].job);
        free(rows[i].datasets);
        free(rows[i].imported_at);
    }
    free(rows);
}

int importer_check(const cfg *c, FILE *out, owl_err *err)
{
    PGconn *conn = NULL;
    PGresult *res = NULL;
    int rc = -1;

    if (db_connect(c->conninfo, "the target database", &conn, err) < 0)
        return -1;
    fprintf(out, "ok: connected to the target database\n");
    res = db_exec(conn,
                  "SELECT pg_catalog.to_regclass('owlsync.bundles') IS NOT NULL,"
                  " pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')",
                  0, NULL, PGRES_TUPLES_OK, err, "cannot look for the ledger");
    if (res == NULL)
        goto out;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0 && strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        err_set(err, OWL_ERUNTIME, "the ledger (schema owlsync) does not exist and this role may not create it\nHINT: a DBA can create it with sql/ledger.sql");
        goto out;
    }
    fprintf(out, "ok: ledger %s\n", strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? "present" : "will be created on first import");
    PQclear(res);
    res = NULL;
    for (size_t i = 0; i < c->ntables; i++) {
        const cfg_table *t = &c->tables[i];
        const char *params[2] = {c->schema, t->name};
        if (c->import.tables.n > 0 && !cfg_list_has(&c->import.tables, t->name))
            continue;
        res = db_exec(conn,
                      "SELECT pg_catalog.has_table_privilege(r.oid, 'SELECT, INSERT, UPDATE, DELETE')"
                      "  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                      " WHERE n.nspname = $1 AND r.relname = $2 AND r.relkind IN ('r', 'p')",
                      2, params, PGRES_TUPLES_OK, err, "cannot read the target catalog");
        if (res == NULL)
            goto out;
        if (PQntuples(res) == 0) {
            err_set(err, OWL_ERUNTIME, "table %s.%s does not exist in the target database", c->schema, t->name);
            goto out;
        }
        if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
            err_set(err, OWL_ERUNTIME, "permission denied: this role cannot SELECT, INSERT, UPDATE and DELETE on %s.%s\nHINT: sql/grants.sql shows the grants an importing role needs",
                    c->schema, t->name);
            goto out;
        }
        PQclear(res);
        res = NULL;
        for (size_t k = 0; k < t->key.n; k++) {
            const char *kp[3] = {c->schema, t->name, t->key.v[k]};
            res = db_exec(conn,
                          "SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r ON r.oid = a.attrelid"
                          "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                          " WHERE n.nspname = $1 AND r.relname = $2 AND a.attname = $3 AND NOT a.attisdropped",
                          3, kp, PGRES_TUPLES_OK, err, "cannot read the target catalog");
            if (res == NULL)
                goto out;
            if (PQntuples(res) == 0) {
                err_set(err, OWL_EUSAGE, "[table %s] key: column %s does not exist in %s.%s", t->name, t->key.v[k],
                        c->schema, t->name);
                goto out;
            }
            PQclear(res);
            res = NULL;
        }
        fprintf(out, "ok: table %s.%s writable (mode %s)\n", c->schema, t->name,
                t->mode == CFG_MODE_UPSERT ? "upsert" : t->mode == CFG_MODE_INSERT ? "insert" : "replace");
    }
    rc = 0;
out:
    PQclear(res);
    PQfinish(conn);
    return rc;
}
