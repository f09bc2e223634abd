/* owlsync stage: the import's statements on the target's tables, from the
 * staging COPY to the sequences, each behind a named function. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "owlsync/stage.h"

/* BEGIN, and what may wait for the end of the transaction does (a row moved
 * to a new parent before its old one goes, values swapped between rows): one
 * round trip of fixed text. */
static int begin_deferred(db_conn *c, owl_err *err)
{
    return db_begin(c, "SET CONSTRAINTS ALL DEFERRED", err, "cannot begin");
}

int stage_begin(db_conn *c, int64_t lock_timeout, owl_err *err)
{
    char ms[32];
    const char *params[1] = {ms};
    PGresult *res;

    snprintf(ms, sizeof(ms), "%lld", (long long)lock_timeout * 1000);
    if (begin_deferred(c, err) < 0)
        return -1;
    /* Each setting for this transaction only, all in one statement.
     * Stage and target are joined on the key: by hash, in memory (a merge
     * join sorts both sides, the stage has no index, and spills). owlsync's
     * own statements say what they do: a server NOTICE (a temporary table
     * not there to drop) is not for the terminal. */
    res = db_query(c,
                   "SELECT pg_catalog.set_config('lock_timeout', $1, true),"
                   " pg_catalog.set_config('default_statistics_target', '10', true),"
                   " pg_catalog.set_config('temp_buffers', '64MB', true),"
                   " pg_catalog.set_config('work_mem', '64MB', true),"
                   " pg_catalog.set_config('enable_mergejoin', 'off', true),"
                   " pg_catalog.set_config('client_min_messages', 'warning', true)",
                   1, params, err, "cannot set up the import's transaction");
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

int stage_check_deferred(db_conn *c, owl_err *err)
{
    return db_command(c, "SET CONSTRAINTS ALL IMMEDIATE", 0, NULL, err, "rows rejected by a deferred constraint");
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
static void count_x(db_sql *q, bool per_dataset)
{
    if (per_dataset)
        db_sql_add(q, ") SELECT ds, pg_catalog.count(*) FROM x GROUP BY ds ORDER BY ds COLLATE \"C\"");
    else
        db_sql_add(q, ") SELECT '', pg_catalog.count(*) FROM x");
}

/* Whether the rows an import writes to t are counted per dataset. */
static bool changes_grouped(const stage_table *t)
{
    return t->per_dataset || t->changes_per_dataset;
}

/* Closes a RETURNING CTE with its count. */
static void returning_ds(db_sql *q, db_conn *c, const stage_table *t, const char *alias)
{
    db_sql_add(q, " RETURNING ");
    ds_column(q, c, t, alias);
    count_x(q, changes_grouped(t));
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

/* One statement answering, for each of n tables, head + "FROM table t WHERE
 * scope" + ")" as column i: a row of n values. */
static PGresult *scope_query(db_conn *c, const stage_table *const *ts, size_t n, const char *head, owl_err *err,
                             const char *what)
{
    db_sql q = DB_SQL_INIT;

    db_sql_add(&q, "SELECT ");
    for (size_t i = 0; i < n; i++) {
        db_sql_add(&q, i ? ", " : "");
        db_sql_add(&q, head);
        db_sql_qualified(&q, c, ts[i]->schema, ts[i]->table);
        db_sql_add(&q, " t WHERE ");
        scope(&q, c, ts[i]);
        db_sql_add(&q, ")");
    }
    return db_sql_query(c, &q, 0, NULL, err, what);
}

int stage_scope_empty_many(db_conn *c, const stage_table *const *ts, size_t n, bool *empty, owl_err *err)
{
    PGresult *res;

    if (n == 0)
        return 0;
    res = scope_query(c, ts, n, "NOT EXISTS (SELECT 1 FROM ", err, "cannot look at the target's rows");
    if (res == NULL)
        return n == 1 ? err_prefix(err, "%s", ts[0]->table) : -1;
    for (size_t i = 0; i < n; i++)
        empty[i] = strcmp(PQgetvalue(res, 0, (int)i), "t") == 0;
    PQclear(res);
    return 0;
}

int stage_scope_empty(db_conn *c, const stage_table *t, bool *empty, owl_err *err)
{
    return stage_scope_empty_many(c, &t, 1, empty, err);
}

int stage_scope_counts(db_conn *c, const stage_table *const *ts, size_t n, uint64_t *counts, owl_err *err)
{
    PGresult *res;

    if (n == 0)
        return 0;
    res = scope_query(c, ts, n, "(SELECT pg_catalog.count(*) FROM ", err, "cannot check the rows' datasets");
    if (res == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        counts[i] = db_u64(res, 0, (int)i);
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

int stage_outside_scope(db_conn *c, const stage_table *t, uint64_t copied, uint64_t *outside, char *example,
                        size_t exlen, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    PGresult *res;

    *outside = 0;
    example[0] = '\0';
    if (t->dataset_column[0] == '\0')
        return 0;
    if (t->direct) {
        /* the target held no row in scope: all it holds there now was copied */
        db_sql_add(&q, "SELECT pg_catalog.count(*) FROM ");
        db_sql_qualified(&q, c, t->schema, t->table);
        db_sql_add(&q, " t WHERE ");
        scope(&q, c, t);
    } else {
        db_sql_add(&q, "SELECT pg_catalog.count(*), pg_catalog.min(");
        db_sql_ident(&q, c, t->dataset_column);
        db_sql_add(&q, "::pg_catalog.text) FROM ");
        stage_name(&q, t);
        db_sql_add(&q, " t WHERE NOT COALESCE(");
        scope(&q, c, t);
        db_sql_add(&q, ", false)");
    }
    res = db_sql_query(c, &q, 0, NULL, err, "cannot check the rows' datasets");
    if (res == NULL)
        return err_prefix(err, "%s", t->table);
    if (t->direct) {
        uint64_t in = db_u64(res, 0, 0);
        *outside = copied > in ? copied - in : 0;
    } else {
        *outside = db_u64(res, 0, 0);
        snprintf(example, exlen, "%s", PQgetisnull(res, 0, 1) ? "(NULL)" : PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return 0;
}

int stage_key_problem(db_conn *c, const stage_table *t, char *what, size_t wlen, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    PGresult *res;
    int found;

    if (t->nkey == 0)
        return 0;
    /* One pass: a group of rows equal under the target's equality of the key
     * (its collations, 1.0 = 1.00), or holding a NULL in it (a row that
     * matches nothing and would be added again each time). */
    db_sql_add(&q, "SELECT ");
    for (size_t i = 0; i < t->nkey; i++) {
        db_sql_add(&q, i > 0 ? " || ', ' || " : "");
        db_sql_add(&q, "pg_catalog.quote_nullable(pg_catalog.min(s.");
        db_sql_ident(&q, c, t->key[i]);
        db_sql_add(&q, "::pg_catalog.text COLLATE pg_catalog.\"C\"))");
    }
    db_sql_add(&q, ", pg_catalog.count(*), pg_catalog.bool_or(false");
    for (size_t i = 0; i < t->nkey; i++) {
        db_sql_add(&q, " OR s.");
        db_sql_ident(&q, c, t->key[i]);
        db_sql_add(&q, " IS NULL");
    }
    db_sql_add(&q, ") AS nulls FROM ");
    if (t->direct) {
        db_sql_add(&q, "(SELECT * FROM ");
        db_sql_qualified(&q, c, t->schema, t->table);
        db_sql_add(&q, " t WHERE ");
        scope(&q, c, t);
        db_sql_add(&q, ") s");
    } else {
        stage_name(&q, t);
        db_sql_add(&q, " s");
    }
    db_sql_add(&q, " GROUP BY ");
    db_sql_idents(&q, c, t->key, t->nkey, "s.");
    db_sql_add(&q, " HAVING pg_catalog.count(*) > 1 OR pg_catalog.bool_or(false");
    for (size_t i = 0; i < t->nkey; i++) {
        db_sql_add(&q, " OR s.");
        db_sql_ident(&q, c, t->key[i]);
        db_sql_add(&q, " IS NULL");
    }
    db_sql_add(&q, ") LIMIT 1");
    res = db_sql_query(c, &q, 0, NULL, err, "cannot check the key");
    if (res == NULL)
        return err_prefix(err, "%s", t->table);
    found = PQntuples(res) > 0;
    if (found && strcmp(PQgetvalue(res, 0, 2), "t") == 0)
        snprintf(what, wlen, "a row with a NULL in it (%s), which would match no row and be added again each time",
                 PQgetvalue(res, 0, 0));
    else if (found)
        snprintf(what, wlen, "%s rows equal in it under the target's equality (%s)", PQgetvalue(res, 0, 1),
                 PQgetvalue(res, 0, 0));
    PQclear(res);
    return found;
}

/* "(SELECT s.p1 AS s1, ..., t.p1 AS t1, ... FROM parent's stage s JOIN the
 * parent t ON key AND scope) m": the parent's source values and target's. */
static void ref_map(db_sql *q, db_conn *c, const stage_table *parent, char *const *pcols, size_t n)
{
    db_sql_add(q, "(SELECT ");
    for (size_t k = 0; k < n; k++) {
        db_sql_add(q, k > 0 ? ", s." : "s.");
        db_sql_ident(q, c, pcols[k]);
        db_sql_add(q, " AS s");
        db_sql_num(q, k);
        db_sql_add(q, ", t.");
        db_sql_ident(q, c, pcols[k]);
        db_sql_add(q, " AS t");
        db_sql_num(q, k);
    }
    db_sql_add(q, " FROM ");
    stage_name(q, parent);
    db_sql_add(q, " s JOIN ");
    db_sql_qualified(q, c, parent->schema, parent->table);
    db_sql_add(q, " t ON ");
    key_match(q, c, parent);
    db_sql_add(q, " AND ");
    scope(q, c, parent);
    db_sql_add(q, ") m");
}

/* "c.c1 = m.s1 AND ..." */
static void ref_match(db_sql *q, db_conn *c, char *const *ccols, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        db_sql_add(q, k > 0 ? " AND c." : "c.");
        db_sql_ident(q, c, ccols[k]);
        db_sql_add(q, " = m.s");
        db_sql_num(q, k);
    }
}

int stage_translate(db_conn *c, const stage_table *child, const stage_table *parent, char *const *ccols,
                    char *const *pcols, size_t n, uint64_t *unresolved, char *example, size_t exlen, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    PGresult *res;

    *unresolved = 0;
    example[0] = '\0';
    /* references no staged parent row holds (a NULL anywhere: no reference) */
    db_sql_add(&q, "SELECT pg_catalog.count(*), pg_catalog.min((");
    for (size_t i = 0; i < child->nkey; i++) {
        db_sql_add(&q, i > 0 ? " || ', ' || " : "");
        db_sql_add(&q, "pg_catalog.quote_nullable(c.");
        db_sql_ident(&q, c, child->key[i]);
        db_sql_add(&q, "::pg_catalog.text)");
    }
    db_sql_add(&q, child->nkey > 0 ? " || ' -> ' || " : "");
    for (size_t k = 0; k < n; k++) {
        db_sql_add(&q, k > 0 ? " || ', ' || " : "");
        db_sql_add(&q, "pg_catalog.quote_nullable(c.");
        db_sql_ident(&q, c, ccols[k]);
        db_sql_add(&q, "::pg_catalog.text)");
    }
    db_sql_add(&q, ") COLLATE pg_catalog.\"C\") FROM ");
    stage_name(&q, child);
    db_sql_add(&q, " c WHERE true");
    for (size_t k = 0; k < n; k++) {
        db_sql_add(&q, " AND c.");
        db_sql_ident(&q, c, ccols[k]);
        db_sql_add(&q, " IS NOT NULL");
    }
    db_sql_add(&q, " AND NOT EXISTS (SELECT 1 FROM ");
    ref_map(&q, c, parent, pcols, n);
    db_sql_add(&q, " WHERE ");
    ref_match(&q, c, ccols, n);
    db_sql_add(&q, ")");
    res = db_sql_query(c, &q, 0, NULL, err, "cannot resolve references");
    if (res == NULL)
        return err_prefix(err, "%s", child->table);
    *unresolved = db_u64(res, 0, 0);
    if (*unresolved > 0)
        snprintf(example, exlen, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    if (*unresolved > 0)
        return 0;
    db_sql_add(&q, "UPDATE ");
    stage_name(&q, child);
    db_sql_add(&q, " c SET ");
    for (size_t k = 0; k < n; k++) {
        db_sql_add(&q, k > 0 ? ", " : "");
        db_sql_ident(&q, c, ccols[k]);
        db_sql_add(&q, " = m.t");
        db_sql_num(&q, k);
    }
    db_sql_add(&q, " FROM ");
    ref_map(&q, c, parent, pcols, n);
    db_sql_add(&q, " WHERE ");
    ref_match(&q, c, ccols, n);
    if (db_sql_command(c, &q, 0, NULL, err, "cannot translate references") < 0)
        return err_prefix(err, "%s", child->table);
    return 0;
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
    count_x(&q, t->direct ? changes_grouped(t) : t->per_dataset);
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

/* A unique or exclusion constraint checked row by row refused a value that
 * another row of the bundle gives up in the same import (a swap). */
static int swap_hint(owl_err *err)
{
    if (strstr(err->msg, "violates unique constraint") != NULL ||
        strstr(err->msg, "violates exclusion constraint") != NULL)
        err_hint(err, "when rows of the bundle swap or pass on such a value, make the constraint DEFERRABLE: "
                      "owlsync defers every deferrable constraint to COMMIT");
    return -1;
}

int stage_update(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    size_t nset = 0;

    db_sql_add(&q, "WITH x AS (UPDATE ");
    db_sql_qualified(&q, c, t->schema, t->table);
    db_sql_add(&q, " t SET ");
    /* Key columns too: "=" may match texts that differ (1.0, 1.00; a
     * case-insensitive collation), and the bundle's text is what lands. */
    for (size_t j = 0; j < t->ncolumns; j++) {
        if (t->always[j] || t->ref[j])
            continue;
        if (nset++ > 0)
            db_sql_add(&q, ", ");
        db_sql_ident(&q, c, t->columns[j]);
        db_sql_add(&q, " = s.");
        db_sql_ident(&q, c, t->columns[j]);
    }
    if (nset == 0) {
        db_sql_free(&q);
        return 0; /* nothing that may be written */
    }
    db_sql_add(&q, " FROM ");
    stage_name(&q, t);
    db_sql_add(&q, " s WHERE ");
    key_match(&q, c, t);
    db_sql_add(&q, " AND ");
    scope(&q, c, t); /* never a row of a dataset the bundle does not speak for */
    /* A change is a change to the byte (1.0 vs 1.00): columns whose "=" is
     * identity are compared as they are, the others as text. */
    db_sql_add(&q, " AND (false");
    for (size_t j = 0; j < t->ncolumns; j++) {
        const char *as = t->exact_eq[j] ? "" : "::pg_catalog.text";
        if (t->always[j] || t->ref[j])
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
    if (run_counted(c, &q, t, fn, ctx, err, "cannot update rows") < 0)
        return swap_hint(err);
    return 0;
}

/* The columns an insert writes: every staged one but the references. */
static void written(db_sql *q, db_conn *c, const stage_table *t, const char *alias)
{
    size_t n = 0;

    for (size_t j = 0; j < t->ncolumns; j++) {
        if (t->ref[j])
            continue;
        if (n++ > 0)
            db_sql_add(q, ", ");
        if (alias != NULL)
            db_sql_add(q, alias);
        db_sql_ident(q, c, t->columns[j]);
    }
}

/* "pg_temp.owlsync_new_NO": the staged rows new to the target. */
static void new_name(db_sql *q, const stage_table *t)
{
    db_sql_add(q, "pg_temp.owlsync_new_");
    db_sql_num(q, t->no);
}

int stage_insert(db_conn *c, const stage_table *t, stage_count_fn fn, void *ctx, owl_err *err)
{
    db_sql q = DB_SQL_INIT;

    /* The rows new to the target go into a table of their own first, so that
     * the INSERT reads nothing of the table it writes (an anti-join inside the
     * INSERT scanned the rows it had just added, quadratically, when the
     * table's statistics said it was empty), and the stage stays whole for
     * the update that follows. */
    if (t->nkey > 0) {
        db_sql_add(&q, "DROP TABLE IF EXISTS ");
        new_name(&q, t);
        if (db_sql_command(c, &q, 0, NULL, err, "cannot compare staged rows") < 0)
            return err_prefix(err, "%s", t->table);
        db_sql_add(&q, "CREATE TEMP TABLE ");
        new_name(&q, t);
        db_sql_add(&q, " ON COMMIT DROP AS SELECT s.* FROM ");
        stage_name(&q, t);
        db_sql_add(&q, " s WHERE NOT EXISTS (SELECT 1 FROM ");
        db_sql_qualified(&q, c, t->schema, t->table);
        db_sql_add(&q, " t WHERE ");
        key_match(&q, c, t);
        db_sql_add(&q, " AND ");
        scope(&q, c, t);
        db_sql_add(&q, ")");
        if (db_sql_command(c, &q, 0, NULL, err, "cannot compare staged rows") < 0)
            return err_prefix(err, "%s", t->table);
    }
    db_sql_add(&q, "WITH x AS (INSERT INTO ");
    db_sql_qualified(&q, c, t->schema, t->table);
    db_sql_add(&q, " (");
    written(&q, c, t, NULL);
    db_sql_add(&q, ")");
    for (size_t j = 0; j < t->ncolumns; j++) {
        if (t->always[j] && !t->ref[j]) {
            db_sql_add(&q, " OVERRIDING SYSTEM VALUE");
            break;
        }
    }
    db_sql_add(&q, " SELECT ");
    written(&q, c, t, "s.");
    db_sql_add(&q, " FROM ");
    if (t->nkey > 0)
        new_name(&q, t);
    else
        stage_name(&q, t);
    db_sql_add(&q, " s");
    returning_ds(&q, c, t, "");
    if (run_counted(c, &q, t, fn, ctx, err, "cannot insert rows") < 0)
        return swap_hint(err);
    return 0;
}

int stage_move_sequence(db_conn *c, const char *schema, const char *table, const char *column, const char *oid,
                        const char *name, bool dry, int64_t *from, int64_t *to, owl_err *err)
{
    const char *params[1] = {oid};
    db_sql q = DB_SQL_INIT;
    PGresult *res;
    int moved;

    /* setval is not transactional: it runs only when it is meant, as the
     * import's last step; a dry run only reads what it would do */
    db_sql_add(&q, dry ? "SELECT l, m" : "SELECT l, pg_catalog.setval($1::pg_catalog.oid::pg_catalog.regclass, m)");
    db_sql_add(&q, " FROM (SELECT pg_catalog.max(");
    db_sql_ident(&q, c, column);
    db_sql_add(&q, ")::pg_catalog.int8 AS m, COALESCE(pg_catalog.pg_sequence_last_value("
                   "$1::pg_catalog.oid::pg_catalog.regclass), 0) AS l FROM ");
    db_sql_qualified(&q, c, schema, table);
    db_sql_add(&q, ") x WHERE m IS NOT NULL AND m > l");
    res = db_sql_query(c, &q, 1, params, err, "cannot move a sequence");
    if (res == NULL)
        return err_prefix(err, "%s.%s (sequence %s)", table, column, name);
    moved = PQntuples(res) > 0;
    if (moved) {
        *from = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *to = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return moved;
}
