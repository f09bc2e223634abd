/* owlsync source: the export's snapshot, its dataset selection and COPY TO
 * streams; every statement the exporter sends is here. */
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "owlsync/source.h"

/* A reader's session: row-level security off, so that a policy that would
 * hide rows fails the export instead of leaving them out (as pg_dump does);
 * only pg_catalog on the search path, so the catalog names every other type
 * with its schema; then the snapshot's transaction. */
static int begin_reading(db_conn *c, owl_err *err)
{
    if (db_command(c, "SET row_security = off", 0, NULL, err, "cannot set up the export session") < 0 ||
        db_command(c, "SET search_path = pg_catalog", 0, NULL, err, "cannot set up the export session") < 0)
        return -1;
    return db_command(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL, err,
                      "cannot start the export transaction");
}

int source_begin(db_conn *c, bool share, char **snapshot_id, int64_t *snapshot_at, owl_err *err)
{
    PGresult *res;

    *snapshot_id = NULL;
    /* One snapshot for every table: the bundle is consistent. */
    if (begin_reading(c, err) < 0)
        return -1;
    if (share) {
        /* The other connections read in this very snapshot. */
        res = db_query(c, "SELECT pg_catalog.pg_export_snapshot()", 0, NULL, err, "cannot export the snapshot");
        if (res == NULL)
            return -1;
        *snapshot_id = strdup(PQgetvalue(res, 0, 0));
        PQclear(res);
        if (*snapshot_id == NULL)
            return err_oom(err);
    }
    res = db_query(c, "SELECT (extract(epoch FROM pg_catalog.transaction_timestamp()) * 1000000)::int8", 0, NULL,
                   err, "cannot read the snapshot time");
    if (res == NULL) {
        free(*snapshot_id);
        *snapshot_id = NULL;
        return -1;
    }
    *snapshot_at = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

int source_join(db_conn *c, const char *snapshot_id, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    char *lit;

    if (begin_reading(c, err) < 0)
        return -1;
    /* SET TRANSACTION takes no parameters: the id goes in escaped. */
    db_sql_add(&q, "SET TRANSACTION SNAPSHOT ");
    lit = PQescapeLiteral(c->pg, snapshot_id, strlen(snapshot_id));
    if (lit == NULL)
        q.failed = true;
    else
        db_sql_add(&q, lit);
    PQfreemem(lit);
    return db_sql_command(c, &q, 0, NULL, err, "cannot take the export snapshot");
}

void source_end(db_conn *c)
{
    if (db_in_transaction(c))
        PQclear(PQexec(c->pg, "COMMIT"));
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int source_find_datasets(db_conn *c, const char *schema, const source_table *tables, size_t ntables,
                         char *const *names, size_t nnames, char *const *patterns, size_t npatterns, char ***out,
                         size_t *n, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    PGresult *res;
    char **v;
    int rows;

    *out = NULL;
    *n = 0;
    /* Names are probed one by one (the dataset columns are indexed in any real
     * metastore); only patterns need a scan. Comparing every row with a long
     * list instead took seconds on a metastore of thousands of datasets. */
    db_sql_add(&q, "SELECT DISTINCT d FROM (SELECT n AS d FROM pg_catalog.unnest(");
    db_sql_list(&q, c, names, nnames);
    db_sql_add(&q, ") n WHERE false");
    for (size_t i = 0; i < ntables; i++) {
        db_sql_add(&q, " OR EXISTS (SELECT 1 FROM ");
        db_sql_qualified(&q, c, schema, tables[i].name);
        db_sql_add(&q, " x WHERE x.");
        db_sql_ident(&q, c, tables[i].dataset_column);
        db_sql_add(&q, "::pg_catalog.text = n)");
    }
    for (size_t i = 0; i < ntables && npatterns > 0; i++) {
        db_sql_add(&q, " UNION SELECT x.");
        db_sql_ident(&q, c, tables[i].dataset_column);
        db_sql_add(&q, "::pg_catalog.text FROM ");
        db_sql_qualified(&q, c, schema, tables[i].name);
        db_sql_add(&q, " x WHERE x.");
        db_sql_ident(&q, c, tables[i].dataset_column);
        db_sql_add(&q, "::pg_catalog.text LIKE ANY (");
        db_sql_list(&q, c, patterns, npatterns);
        db_sql_add(&q, ")");
    }
    db_sql_add(&q, ") s WHERE d IS NOT NULL");
    res = db_sql_query(c, &q, 0, NULL, err, "cannot select the datasets");
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    v = calloc(rows > 0 ? (size_t)rows : 1, sizeof(char *));
    if (v == NULL) {
        PQclear(res);
        return err_oom(err);
    }
    for (int i = 0; i < rows; i++) {
        v[i] = strdup(PQgetvalue(res, i, 0));
        if (v[i] == NULL) {
            for (int k = 0; k < i; k++)
                free(v[k]);
            free(v);
            PQclear(res);
            return err_oom(err);
        }
    }
    PQclear(res);
    qsort(v, (size_t)rows, sizeof(char *), cmp_names); /* byte order, whatever the collation */
    *out = v;
    *n = (size_t)rows;
    return 0;
}

int source_copy_begin(db_conn *c, const source_select *s, owl_err *err)
{
    db_sql q = DB_SQL_INIT;
    PGresult *res;
    const char *dscol = s->dataset_column;

    db_sql_add(&q, "COPY (SELECT ");
    db_sql_idents(&q, c, s->columns, s->ncolumns, NULL);
    db_sql_add(&q, s->only ? " FROM ONLY " : " FROM ");
    db_sql_qualified(&q, c, s->schema, s->table);
    /* Constant arrays: the planner hashes a list and scans once, where a list
     * it cannot see led it to one index scan per dataset. */
    if (dscol[0] != '\0' && s->datasets != NULL) {
        const char *cast;
        db_sql_add(&q, " WHERE ");
        db_sql_dataset(&q, c, "", dscol, s->dataset_type, &cast);
        db_sql_add(&q, " = ANY (");
        db_sql_list(&q, c, s->datasets, s->ndatasets);
        db_sql_add(&q, cast);
        db_sql_add(&q, ")");
    } else if (dscol[0] != '\0') {
        db_sql_add(&q, " WHERE false");
        if (s->nnames > 0) {
            db_sql_add(&q, " OR ");
            db_sql_ident(&q, c, dscol);
            db_sql_add(&q, "::pg_catalog.text = ANY (");
            db_sql_list(&q, c, s->names, s->nnames);
            db_sql_add(&q, ")");
        }
        if (s->npatterns > 0) {
            db_sql_add(&q, " OR ");
            db_sql_ident(&q, c, dscol);
            db_sql_add(&q, "::pg_catalog.text LIKE ANY (");
            db_sql_list(&q, c, s->patterns, s->npatterns);
            db_sql_add(&q, ")");
        }
    }
    db_sql_add(&q, ") TO STDOUT");
    if (q.failed) {
        db_sql_free(&q);
        return err_set(err, OWL_ERUNTIME, "out of memory building SQL");
    }
    res = PQexec(c->pg, q.b.p);
    db_sql_free(&q);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        db_fail(c, res, err, "cannot read table");
        PQclear(res);
        return err_prefix(err, "%s.%s", s->schema, s->table);
    }
    PQclear(res);
    return 0;
}

int source_copy_next(db_conn *c, const char **row, size_t *len, owl_err *err)
{
    PGresult *res;
    int n;

    if (c->copy_row != NULL) {
        PQfreemem(c->copy_row);
        c->copy_row = NULL;
    }
    n = PQgetCopyData(c->pg, &c->copy_row, 0);
    if (n > 0) {
        *row = c->copy_row;
        *len = (size_t)n;
        return 1;
    }
    if (n == -2)
        return db_fail(c, NULL, err, "cannot read table");
    res = PQgetResult(c->pg);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_fail(c, res, err, "cannot read table");
        PQclear(res);
        return -1;
    }
    PQclear(res);
    while ((res = PQgetResult(c->pg)) != NULL)
        PQclear(res);
    return 0;
}

void source_copy_abandon(db_conn *c)
{
    PGresult *res;

    if (c->copy_row != NULL) {
        PQfreemem(c->copy_row);
        c->copy_row = NULL;
    }
    /* Stopped inside the COPY, the connection cannot be drained (it answers
     * COPY_OUT for ever): it is closed by the caller, which fails anyway. */
    while ((res = PQgetResult(c->pg)) != NULL) {
        bool copying = PQresultStatus(res) == PGRES_COPY_OUT;
        PQclear(res);
        if (copying)
            break;
    }
}
