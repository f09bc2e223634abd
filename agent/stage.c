/* owlsync stage: the import's statements on the target's tables, from the
 * staging COPY to the sequences, each behind a named function. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "owlsync/stage.h"

#define LOCK_TIMEOUT "60s"

int stage_begin(db_conn *c, owl_err *err)
{
    if (db_command(c, "BEGIN", 0, NULL, err, "cannot begin") < 0 ||
        db_command(c, "SET LOCAL lock_timeout = '" LOCK_TIMEOUT "'", 0, NULL, err, "cannot set lock_timeout") < 0 ||
        db_command(c, "SET LOCAL default_statistics_target = 10", 0, NULL, err, "cannot set statistics") < 0 ||
        db_command(c, "SET LOCAL temp_buffers = '64MB'", 0, NULL, err, "cannot set temp_buffers") < 0 ||
        /* Stage and target are joined on the key: by hash, in memory. A merge
         * join sorts both sides (the stage has no index) and spills. */
        db_command(c, "SET LOCAL work_mem = '64MB'", 0, NULL, err, "cannot set work_mem") < 0 ||
        db_command(c, "SET LOCAL enable_mergejoin = off", 0, NULL, err, "cannot set enable_mergejoin") < 0)
        return -1;
    return 0;
}

static void stage_name(db_sql *q, const stage_table *t)
{
    db_sql_add(q, "pg_temp.owlsync_stage_");
    db_sql_num(q, t->no);
}

/* The target's rows the bundle speaks for: its datasets, or all of a global table. */
static void scope(db_sql *q, db_conn *c, const stage_table *t)
{
    if (t->dataset_column[0] == '\0') {
        db_sql_add(q, "true");
        return;
    }
    const char *cast;

    db_sql_dataset(q, c, "t.", t->dataset_column, t->dataset_type, &cast);
    db_sql_add(q, " IN (SELECT pg_catalog.unnest(");
    db_sql_list(q, c, t->scope, t->nscope);
    db_sql_add(q, cast);
    db_sql_add(q, "))");
}

/* "t.k1 = s.k1 AND t.k2 = s.k2" */
static void key_match(db_sql *q, db_conn *c, const stage_table *t)
{
    for (size_t i = 0; i < t->nkey; i++) {
        if (i > 0)
            db_sql_add(q, " AND ");
        db_sql_add(q, "t.");
        db_sql_ident(q, c, t->key[i]);
        db_sql_add(q, " = s.");
        db_sql_ident(q, c, t->key[i]);
    }
}

/* "alias.dataset_column::text AS ds", or "''::text AS ds" for a global table. */
static void ds_column(db_sql *q, db_conn *c, const stage_table *t, const char *alias)
{
    if (t->dataset_column[0] != '\0') {
        db_sql_add(q, alias);
        db_sql_ident(q, c, t->dataset_column);
        db_sql_add(q, "::pg_catalog.text");
    } else {
        db_sql_add(q, "''::pg_catalog.text");
    }
    db_sql_add(q, " AS ds");
}

/* Closes "WITH x AS (… ds …)" with the count of its rows: per dataset in byte
 * order when the report wants them (a bundle may hold tens of thousands), else
 * one total, so that memory does not grow with the datasets. */
static void count_x(db_sql *q, const stage_table *t)
{
    if (t->per_dataset)
        db_sql_add(q, ") SELECT ds, pg_catalog.count(*) FROM x GROUP BY ds ORDER BY ds COLLATE \"C\"");
    else
        db_sql_add(q, ") SELECT '', pg_catalog.count(*) FROM x");
}

/* Closes a RETURNING CTE with its count. */
static void returning_ds(db_sql *q, db_conn *c, const stage_table *t, const char *alias)
{
    db_sql_add(q, " RETURNING ");
    ds_column(q, c, t, alias);
    count_x(q, t);
}

/* Runs q, which answers (dataset, count) rows, and hands them to fn. */
static int run_counted(db_conn *c, db_sql *q, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err,
                       const char *what)
{
    PGresult *res = db_sql_query(c, q, 0, NULL, err, what);
    int rc = 0;

    if (res == NULL)
        return err_prefix(err, "%s", t->table);
    for (int i = 0; i < PQntuples(res) && rc == 0; i++)
        rc = fn(ctx, PQgetisnull(res, i, 0) ? "" : PQgetvalue(res, i, 0), db_u64(res, i, 1), err);
    PQclear(res);
    return rc;
}

int stage_scope_empty(db_conn *c, const stage_table *t, bool *empty, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    PGresult *res;

    db_sql_add(&q, "SELECT NOT EXISTS (SELECT 1 FROM ");
    db_sql_qualified(&q, c, t->schema, t->table);
    db_sql_add(&q, " t WHERE ");
    scope(&q, c, t);
    db_sql_add(&q, ")");
    res = db_sql_query(c, &q, 0, NULL, err, "cannot look at the target's rows");
    if (res == NULL)
        return err_prefix(err, "%s", t->table);
    *empty = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

int stage_create(db_conn *c, const stage_table *t, owl_err *err)
{
    db_sql q = DB_SQL_INIT;

    if (t->direct)
        return 0;
    db_sql_add(&q, "CREATE TEMP TABLE ");
    stage_name(&q, t);
    db_sql_add(&q, " ON COMMIT DROP AS SELECT ");
    db_sql_idents(&q, c, t->columns, t->ncolumns, NULL);
    db_sql_add(&q, " FROM ");
    db_sql_qualified(&q, c, t->schema, t->table);
    db_sql_add(&q, " WITH NO DATA");
    return db_sql_command(c, &q, 0, NULL, err, "cannot create a staging table");
}

int stage_copy_begin(db_conn *c, const stage_table *t, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    PGresult *res;

    db_sql_add(&q, "COPY ");
    if (t->direct)
        db_sql_qualified(&q, c, t->schema, t->table);
    else
        stage_name(&q, t);
    db_sql_add(&q, " (");
    db_sql_idents(&q, c, t->columns, t->ncolumns, NULL);
    db_sql_add(&q, ") FROM STDIN");
    if (q.failed) {
        db_sql_free(&q);
        return err_set(err, OWL_ERUNTIME, "out of memory building SQL");
    }
    res = PQexec(c->pg, q.b.p);
    db_sql_free(&q);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        db_fail(c, res, err, "cannot start COPY");
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

int stage_copy_put(db_conn *c, const char *buf, size_t len, owl_err *err)
{
    while (len > 0) {
        int n = len > (1 << 30) ? (1 << 30) : (int)len;
        if (PQputCopyData(c->pg, buf, n) != 1)
            return db_fail(c, NULL, err, "cannot send rows");
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* "...; COPY owlsync_stage_3, line 5, column x: ..." reads "...; row 5, column
 * x: ...": the row of the bundle's table, without the staging table's name. */
static void context_as_row(owl_err *err)
{
    char *copy = strstr(err->msg, "; COPY "), *line;

    if (copy == NULL || (line = strstr(copy, ", line ")) == NULL)
        return;
    memcpy(copy + 2, "row ", 4);
    memmove(copy + 6, line + 7, strlen(line + 7) + 1);
}

int stage_copy_end(db_conn *c, const char *abort_reason, uint64_t *rows, owl_err *err)
{
    PGresult *res;
    int rc = -1;

    if (abort_reason != NULL) {
        PQputCopyEnd(c->pg, abort_reason);
    } else if (PQputCopyEnd(c->pg, NULL) != 1) {
        db_fail(c, NULL, err, "cannot finish COPY");
    } else {
        res = PQgetResult(c->pg);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *context = PQresultErrorField(res, PG_DIAG_CONTEXT);
            const char *line = context != NULL ? strstr(context, ", line ") : NULL;
            db_fail(c, res, err, "rows rejected by the target");
            context_as_row(err);
            if (strcmp(db_sqlstate(res), "22P05") == 0 && line != NULL) {
                *rows = strtoull(line + 7, NULL, 10);
                rc = -2;
            }
        } else {
            *rows = strtoull(PQcmdTuples(res), NULL, 10);
            rc = 0;
        }
        PQclear(res);
    }
    while ((res = PQgetResult(c->pg)) != NULL)
        PQclear(res);
    return rc;
}

int stage_analyze(db_conn *c, const stage_table *t, owl_err *err)
{
    db_sql q = DB_SQL_INIT;

    /* Only the key columns, sampled lightly: analyzing every column cost more
     * than the COPY. */
    if (t->direct || t->nkey == 0)
        return 0;
    db_sql_add(&q, "ANALYZE ");
    stage_name(&q, t);
    db_sql_add(&q, " (");
    db_sql_idents(&q, c, t->key, t->nkey, NULL);
    db_sql_add(&q, ")");
    return db_sql_command(c, &q, 0, NULL, err, "cannot analyze a staging table");
}

int stage_count(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err)
{
    db_sql q = DB_SQL_INIT;

    db_sql_add(&q, "WITH x AS (SELECT ");
    if (t->direct) {
        ds_column(&q, c, t, "t.");
        db_sql_add(&q, " FROM ");
        db_sql_qualified(&q, c, t->schema, t->table);
        db_sql_add(&q, " t WHERE ");
        scope(&q, c, t);
    } else {
        ds_column(&q, c, t, "");
        db_sql_add(&q, " FROM ");
        stage_name(&q, t);
    }
    count_x(&q, t);
    return run_counted(c, &q, t, fn, ctx, err, "cannot count rows");
}

int stage_match(db_conn *c, const stage_table *t, uint64_t *to_delete, uint64_t *to_insert, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    PGresult *res;

    db_sql_add(&q, "SELECT pg_catalog.count(*) FILTER (WHERE s.present IS NULL),"
                   " pg_catalog.count(*) FILTER (WHERE t.present IS NULL) FROM (SELECT true AS present, ");
    db_sql_idents(&q, c, t->key, t->nkey, "t.");
    db_sql_add(&q, " FROM ");
    db_sql_qualified(&q, c, t->schema, t->table);
    db_sql_add(&q, " t WHERE ");
    scope(&q, c, t);
    db_sql_add(&q, ") t FULL JOIN (SELECT true AS present, ");
    db_sql_idents(&q, c, t->key, t->nkey, "s.");
    db_sql_add(&q, " FROM ");
    stage_name(&q, t);
    db_sql_add(&q, " s) s ON ");
    key_match(&q, c, t);
    res = db_sql_query(c, &q, 0, NULL, err, "cannot match staged rows");
    if (res == NULL)
        return err_prefix(err, "%s", t->table);
    *to_delete = db_u64(res, 0, 0);
    *to_insert = db_u64(res, 0, 1);
    PQclear(res);
    return 0;
}

int stage_delete(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err)
{
    db_sql q = DB_SQL_INIT;

    db_sql_add(&q, "WITH x AS (DELETE FROM ");
    db_sql_qualified(&q, c, t->schema, t->table);
    db_sql_add(&q, " t WHERE ");
    scope(&q, c, t);
    if (t->nkey > 0) {
        db_sql_add(&q, " AND NOT EXISTS (SELECT 1 FROM ");
        stage_name(&q, t);
        db_sql_add(&q, " s WHERE ");
        key_match(&q, c, t);
        db_sql_add(&q, ")");
    }
    returning_ds(&q, c, t, "t.");
    return run_counted(c, &q, t, fn, ctx, err, "cannot delete rows");
}

static bool is_key(const stage_table *t, const char *col)
{
    for (size_t i = 0; i < t->nkey; i++) {
        if (strcmp(t->key[i], col) == 0)
            return true;
    }
    return false;
}

int stage_update(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    size_t nset = 0;

    db_sql_add(&q, "WITH x AS (UPDATE ");
    db_sql_qualified(&q, c, t->schema, t->table);
    db_sql_add(&q, " t SET ");
    for (size_t j = 0; j < t->ncolumns; j++) {
        if (is_key(t, t->columns[j]) || t->always[j])
            continue;
        if (nset++ > 0)
            db_sql_add(&q, ", ");
        db_sql_ident(&q, c, t->columns[j]);
        db_sql_add(&q, " = s.");
        db_sql_ident(&q, c, t->columns[j]);
    }
    if (nset == 0) {
        db_sql_free(&q);
        return 0; /* every column is key: nothing can change */
    }
    db_sql_add(&q, " FROM ");
    stage_name(&q, t);
    db_sql_add(&q, " s WHERE ");
    key_match(&q, c, t);
    /* A change is a change to the byte (1.0 vs 1.00): columns whose "=" is
     * identity are compared as they are, the others as text. */
    db_sql_add(&q, " AND (false");
    for (size_t j = 0; j < t->ncolumns; j++) {
        const char *as = t->exact_eq[j] ? "" : "::pg_catalog.text";
        if (t->always[j])
            continue;
        db_sql_add(&q, " OR ");
        db_sql_add(&q, "t.");
        db_sql_ident(&q, c, t->columns[j]);
        db_sql_add(&q, as);
        db_sql_add(&q, " IS DISTINCT FROM s.");
        db_sql_ident(&q, c, t->columns[j]);
        db_sql_add(&q, as);
    }
    db_sql_add(&q, ")");
    returning_ds(&q, c, t, "t.");
    return run_counted(c, &q, t, fn, ctx, err, "cannot update rows");
}

int stage_insert(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err)
{
    db_sql q = DB_SQL_INIT;

    /* The stage keeps only rows new to the target; the INSERT then reads
     * nothing of the table it writes (an anti-join inside the INSERT scanned
     * the rows it had just added, quadratically, when the table's statistics
     * said it was empty). */
    if (t->nkey > 0) {
        db_sql_add(&q, "DELETE FROM ");
        stage_name(&q, t);
        db_sql_add(&q, " s WHERE EXISTS (SELECT 1 FROM ");
        db_sql_qualified(&q, c, t->schema, t->table);
        db_sql_add(&q, " t WHERE ");
        key_match(&q, c, t);
        db_sql_add(&q, ")");
        if (db_sql_command(c, &q, 0, NULL, err, "cannot compare staged rows") < 0)
            return err_prefix(err, "%s", t->table);
    }
    db_sql_add(&q, "WITH x AS (INSERT INTO ");
    db_sql_qualified(&q, c, t->schema, t->table);
    db_sql_add(&q, " (");
    db_sql_idents(&q, c, t->columns, t->ncolumns, NULL);
    db_sql_add(&q, ")");
    for (size_t j = 0; j < t->ncolumns; j++) {
        if (t->always[j]) {
            db_sql_add(&q, " OVERRIDING SYSTEM VALUE");
            break;
        }
    }
    db_sql_add(&q, " SELECT ");
    db_sql_idents(&q, c, t->columns, t->ncolumns, "s.");
    db_sql_add(&q, " FROM ");
    stage_name(&q, t);
    db_sql_add(&q, " s");
    returning_ds(&q, c, t, "");
    return run_counted(c, &q, t, fn, ctx, err, "cannot insert rows");
}

int stage_move_sequence(db_conn *c, const char *schema, const char *table, const char *column, const char *oid,
                        const char *name, owl_err *err)
{
    const char *params[1] = {oid};
    db_sql q = DB_SQL_INIT;
    PGresult *res;

    db_sql_add(&q, "SELECT pg_catalog.setval($1::pg_catalog.oid::pg_catalog.regclass, m) FROM (SELECT pg_catalog.max(");
    db_sql_ident(&q, c, column);
    db_sql_add(&q, ")::pg_catalog.int8 AS m FROM ");
    db_sql_qualified(&q, c, schema, table);
    db_sql_add(&q, ") x WHERE m IS NOT NULL AND m > COALESCE(pg_catalog.pg_sequence_last_value("
                   "$1::pg_catalog.oid::pg_catalog.regclass), 0)");
    res = db_sql_query(c, &q, 1, params, err, "cannot move a sequence");
    if (res == NULL)
        return err_prefix(err, "%s.%s (sequence %s)", table, column, name);
    PQclear(res);
    return 0;
}
