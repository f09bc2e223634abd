/* owlsync catalog: the pg_catalog queries about the metastore's tables, each
 * behind a named function that returns typed results. */
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "owlsync/catalog.h"

static char *dup_value(const PGresult *res, int row, int col)
{
    return strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static bool is_true(const PGresult *res, int row, int col)
{
    return strcmp(PQgetvalue(res, row, col), "t") == 0;
}

int catalog_columns(db_conn *c, const char *schema, const char *table, catalog_table *out, owl_err *err)
{
    const char *params[2] = {schema, table};
    PGresult *res;
    int rows;

    memset(out, 0, sizeof(*out));
    /* exact_eq: types whose equality is identity of the text, with a
     * deterministic collation. */
    res = db_query(c,
                   "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attgenerated <> '',"
                   "       pg_catalog.pg_get_serial_sequence(pg_catalog.quote_ident(n.nspname) || '.' ||"
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
                   "                                    WHERE k.oid = a.attcollation AND k.collisdeterministic)),"
                   "       a.attnotnull"
                   "  FROM pg_catalog.pg_attribute a"
                   "  JOIN pg_catalog.pg_class r ON r.oid = a.attrelid"
                   "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                   " WHERE n.nspname = $1 AND r.relname = $2 AND r.relkind IN ('r', 'p')"
                   "   AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                   2, params, err, "cannot read the catalog");
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    out->columns = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*out->columns));
    if (out->columns == NULL) {
        PQclear(res);
        return err_oom(err);
    }
    for (int i = 0; i < rows; i++) {
        catalog_column *col = &out->columns[i];
        col->name = dup_value(res, i, 0);
        col->type = dup_value(res, i, 1);
        col->generated = is_true(res, i, 2);
        col->serial = is_true(res, i, 3);
        col->exact_eq = is_true(res, i, 4);
        col->not_null = is_true(res, i, 5);
        out->ncolumns++;
        if (col->name == NULL || col->type == NULL) {
            PQclear(res);
            catalog_table_free(out);
            return err_oom(err);
        }
    }
    PQclear(res);
    return 0;
}

void catalog_table_free(catalog_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncolumns; i++) {
        free(t->columns[i].name);
        free(t->columns[i].type);
    }
    free(t->columns);
    memset(t, 0, sizeof(*t));
}

const catalog_column *catalog_find_column(const catalog_table *t, const char *name)
{
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (strcmp(t->columns[i].name, name) == 0)
            return &t->columns[i];
    }
    return NULL;
}

int catalog_unique_keys(db_conn *c, const char *schema, const char *table, catalog_key **keys, size_t *n,
                        owl_err *err)
{
    const char *params[2] = {schema, table};
    PGresult *res;
    catalog_key *v = NULL;
    size_t nv = 0;
    int rows, rc = -1;

    *keys = NULL;
    *n = 0;
    res = db_query(c,
                   "SELECT i.indexrelid, a.attname, i.indisprimary, i.indisprimary OR a.attnotnull"
                   "  FROM pg_catalog.pg_index i"
                   "  JOIN pg_catalog.pg_class r ON r.oid = i.indrelid"
                   "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                   "  JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum = ANY (i.indkey)"
                   " WHERE n.nspname = $1 AND r.relname = $2 AND i.indisunique AND i.indisvalid"
                   "   AND i.indpred IS NULL AND i.indexprs IS NULL"
                   " ORDER BY i.indisprimary DESC, i.indexrelid, pg_catalog.array_position(i.indkey::int2[], a.attnum)",
                   2, params, err, "cannot read the catalog");
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    v = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*v));
    if (v == NULL)
        goto oom;
    for (int i = 0; i < rows;) {
        const char *idx = PQgetvalue(res, i, 0);
        catalog_key *k = &v[nv++];
        int j = i;
        k->primary = is_true(res, i, 2);
        k->not_null = true;
        for (; j < rows && strcmp(PQgetvalue(res, j, 0), idx) == 0; j++)
            k->ncolumns++;
        k->columns = calloc(k->ncolumns, sizeof(char *));
        if (k->columns == NULL)
            goto oom;
        for (size_t m = 0; m < k->ncolumns; m++, i++) {
            k->columns[m] = dup_value(res, i, 1);
            if (k->columns[m] == NULL)
                goto oom;
            k->not_null = k->not_null && is_true(res, i, 3);
        }
    }
    *keys = v;
    *n = nv;
    v = NULL;
    rc = 0;
    goto out;
oom:
    err_oom(err);
out:
    catalog_keys_free(v, nv);
    PQclear(res);
    return rc;
}

void catalog_keys_free(catalog_key *keys, size_t n)
{
    for (size_t i = 0; keys != NULL && i < n; i++) {
        for (size_t j = 0; keys[i].columns != NULL && j < keys[i].ncolumns; j++)
            free(keys[i].columns[j]);
        free(keys[i].columns);
    }
    free(keys);
}

int catalog_foreign_keys(db_conn *c, const char *schema, catalog_fk **fks, size_t *n, owl_err *err)
{
    const char *params[1] = {schema};
    PGresult *res;
    catalog_fk *v;
    int rows;

    *fks = NULL;
    *n = 0;
    res = db_query(c,
                   "SELECT ch.relname, pa.relname FROM pg_catalog.pg_constraint k"
                   "  JOIN pg_catalog.pg_class ch ON ch.oid = k.conrelid"
                   "  JOIN pg_catalog.pg_class pa ON pa.oid = k.confrelid"
                   "  JOIN pg_catalog.pg_namespace n ON n.oid = ch.relnamespace"
                   " WHERE k.contype = 'f' AND n.nspname = $1 AND k.conrelid <> k.confrelid",
                   1, params, err, "cannot read the foreign keys");
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    v = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*v));
    if (v == NULL) {
        PQclear(res);
        return err_oom(err);
    }
    for (int i = 0; i < rows; i++) {
        v[i].child = dup_value(res, i, 0);
        v[i].parent = dup_value(res, i, 1);
        if (v[i].child == NULL || v[i].parent == NULL) {
            catalog_fks_free(v, (size_t)i + 1);
            PQclear(res);
            return err_oom(err);
        }
    }
    PQclear(res);
    *fks = v;
    *n = (size_t)rows;
    return 0;
}

void catalog_fks_free(catalog_fk *fks, size_t n)
{
    for (size_t i = 0; fks != NULL && i < n; i++) {
        free(fks[i].child);
        free(fks[i].parent);
    }
    free(fks);
}

bool catalog_parents_first(const char *const *names, size_t n, const catalog_fk *fks, size_t nfks, size_t *order)
{
    bool *placed = calloc(n ? n : 1, sizeof(bool));
    bool acyclic = true;
    size_t done = 0;

    if (placed == NULL) { /* no memory to sort: the given order */
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        return true;
    }
    while (done < n) {
        bool progressed = false;
        for (size_t i = 0; i < n; i++) {
            bool ready = !placed[i];
            for (size_t f = 0; ready && f < nfks; f++) {
                if (strcmp(fks[f].child, names[i]) != 0)
                    continue;
                /* names[i] references a parent: it waits for it if it is unplaced */
                for (size_t j = 0; j < n; j++) {
                    if (!placed[j] && j != i && strcmp(names[j], fks[f].parent) == 0)
                        ready = false;
                }
            }
            if (ready) {
                order[done++] = i;
                placed[i] = true;
                progressed = true;
            }
        }
        if (!progressed) {
            acyclic = false;
            for (size_t i = 0; i < n; i++) {
                if (!placed[i]) {
                    order[done++] = i;
                    placed[i] = true;
                }
            }
        }
    }
    free(placed);
    return acyclic;
}

int catalog_table_privilege(db_conn *c, const char *schema, const char *table, const char *privs, bool *exists,
                            bool *granted, owl_err *err)
{
    const char *params[3] = {schema, table, privs};
    PGresult *res = db_query(c,
                             "SELECT pg_catalog.has_table_privilege(r.oid, $3)"
                             "  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                             " WHERE n.nspname = $1 AND r.relname = $2 AND r.relkind IN ('r', 'p')",
                             3, params, err, "cannot read the catalog");

    if (res == NULL)
        return -1;
    *exists = PQntuples(res) > 0;
    *granted = *exists && is_true(res, 0, 0);
    PQclear(res);
    return 0;
}

int catalog_table_blocks(db_conn *c, const char *schema, const char *table, uint64_t *blocks, owl_err *err)
{
    const char *params[2] = {schema, table};
    PGresult *res = db_query(c,
                             "SELECT pg_catalog.pg_relation_size(r.oid)"
                             "       / pg_catalog.current_setting('block_size')::int8"
                             "  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                             " WHERE n.nspname = $1 AND r.relname = $2",
                             2, params, err, "cannot size the table");

    if (res == NULL)
        return -1;
    *blocks = PQntuples(res) == 1 ? db_u64(res, 0, 0) : 0;
    PQclear(res);
    return 0;
}
