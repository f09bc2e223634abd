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

/* Which of names (n of them) row's first column names, or n. */
static size_t row_table(const PGresult *res, int row, const char *const *names, size_t n)
{
    const char *t = PQgetvalue(res, row, 0);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], t) == 0)
            return i;
    }
    return n;
}

/* What each table does to rows written to it: its kind, row-level security,
 * its own enabled triggers on INSERT, rewrite rules. */
static int table_traits(db_conn *c, const char *const *params, const char *const *names, size_t n,
                        catalog_table *outs, owl_err *err)
{
    PGresult *res = db_query_named(c, "owlsync_traits",
                             "SELECT r.relname, r.relkind, r.relrowsecurity, EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g"
                             "         WHERE g.tgrelid = r.oid AND NOT g.tgisinternal AND g.tgenabled <> 'D'"
                             "           AND (g.tgtype::pg_catalog.int4 & 4) <> 0), r.relhasrules"
                             "  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                             " WHERE n.nspname = $1 AND r.relname::pg_catalog.text = ANY ($2::pg_catalog.text[])",
                             2, params, err, "cannot read the catalog");

    if (res == NULL)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        size_t t = row_table(res, i, names, n);
        if (t == n)
            continue;
        outs[t].kind = PQgetvalue(res, i, 1)[0];
        outs[t].row_security = is_true(res, i, 2);
        outs[t].insert_triggers = is_true(res, i, 3);
        outs[t].rules = is_true(res, i, 4);
    }
    PQclear(res);
    return 0;
}

/* The sequences each column takes its values from: owned by it (serial,
 * identity) or called by its default. */
static int column_sequences(db_conn *c, const char *const *params, const char *const *names, size_t n,
                            catalog_table *outs, owl_err *err)
{
    PGresult *res = db_query_named(c, "owlsync_sequences",
                             "SELECT r.relname, a.attname, s.oid::pg_catalog.text, s.oid::pg_catalog.regclass::pg_catalog.text"
                             "  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                             "  JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped"
                             "  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
                             "   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = r.oid"
                             "   AND d.refobjsubid = a.attnum AND d.deptype IN ('a', 'i')"
                             "  JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
                             " WHERE n.nspname = $1 AND r.relname::pg_catalog.text = ANY ($2::pg_catalog.text[])"
                             " UNION "
                             "SELECT r.relname, a.attname, s.oid::pg_catalog.text, s.oid::pg_catalog.regclass::pg_catalog.text"
                             "  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                             "  JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped"
                             "  JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum"
                             "  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass"
                             "   AND d.objid = ad.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
                             "  JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'"
                             " WHERE n.nspname = $1 AND r.relname::pg_catalog.text = ANY ($2::pg_catalog.text[])"
                             " ORDER BY 1, 2, 3",
                             2, params, err, "cannot read the catalog");

    if (res == NULL)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        size_t t = row_table(res, i, names, n);
        catalog_column *col = NULL;
        catalog_sequence *grown;
        for (size_t k = 0; t < n && k < outs[t].ncolumns && col == NULL; k++) {
            if (strcmp(outs[t].columns[k].name, PQgetvalue(res, i, 1)) == 0)
                col = &outs[t].columns[k];
        }
        if (col == NULL)
            continue;
        grown = realloc(col->sequences, (col->nsequences + 1) * sizeof(*grown));
        if (grown == NULL) {
            PQclear(res);
            return err_oom(err);
        }
        col->sequences = grown;
        grown[col->nsequences].oid = dup_value(res, i, 2);
        grown[col->nsequences].name = dup_value(res, i, 3);
        col->nsequences++;
        if (grown[col->nsequences - 1].oid == NULL || grown[col->nsequences - 1].name == NULL) {
            PQclear(res);
            return err_oom(err);
        }
    }
    PQclear(res);
    return 0;
}

int catalog_tables(db_conn *c, const char *schema, const char *const *names, size_t n, catalog_table *outs,
                   owl_err *err)
{
    char *list = db_text_array(names, n);
    const char *params[2] = {schema, list};
    PGresult *res = NULL;
    int rows, rc = -1;

    memset(outs, 0, n * sizeof(*outs));
    if (list == NULL) {
        err_oom(err);
        goto out;
    }
    /* exact_eq: types whose equality is identity of the text, with a
     * deterministic collation. */
    res = db_query_named(c, "owlsync_columns",
                   "SELECT r.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attgenerated <> '',"
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
                   "       a.attnotnull, a.attidentity, pg_catalog.format_type(a.atttypid, NULL)"
                   "  FROM pg_catalog.pg_attribute a"
                   "  JOIN pg_catalog.pg_class r ON r.oid = a.attrelid"
                   "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                   " WHERE n.nspname = $1 AND r.relname::pg_catalog.text = ANY ($2::pg_catalog.text[])"
                   "   AND r.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY r.relname, a.attnum",
                   2, params, err, "cannot read the catalog");
    if (res == NULL)
        goto out;
    rows = PQntuples(res);
    for (int i = 0; i < rows;) {
        size_t t = row_table(res, i, names, n);
        int j = i;
        catalog_table *out;
        while (j < rows && strcmp(PQgetvalue(res, j, 0), PQgetvalue(res, i, 0)) == 0)
            j++;
        if (t == n || outs[t].columns != NULL) {
            i = j; /* not asked for (or asked twice: the first takes it) */
            continue;
        }
        out = &outs[t];
        out->columns = calloc((size_t)(j - i), sizeof(*out->columns));
        if (out->columns == NULL) {
            err_oom(err);
            goto out;
        }
        for (; i < j; i++) {
            catalog_column *col = &out->columns[out->ncolumns++];
            col->name = dup_value(res, i, 1);
            col->type = dup_value(res, i, 2);
            col->generated = is_true(res, i, 3);
            col->serial = is_true(res, i, 4);
            col->exact_eq = is_true(res, i, 5);
            col->not_null = is_true(res, i, 6);
            col->identity = PQgetvalue(res, i, 7)[0];
            col->base_type = dup_value(res, i, 8);
            if (col->name == NULL || col->type == NULL || col->base_type == NULL) {
                err_oom(err);
                goto out;
            }
        }
    }
    if (rows > 0 && (table_traits(c, params, names, n, outs, err) < 0 ||
                     column_sequences(c, params, names, n, outs, err) < 0))
        goto out;
    rc = 0;
out:
    PQclear(res);
    free(list);
    for (size_t i = 0; rc < 0 && i < n; i++)
        catalog_table_free(&outs[i]);
    return rc;
}

int catalog_columns(db_conn *c, const char *schema, const char *table, catalog_table *out, owl_err *err)
{
    return catalog_tables(c, schema, &table, 1, out, err);
}

void catalog_table_free(catalog_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncolumns; i++) {
        free(t->columns[i].name);
        free(t->columns[i].type);
        free(t->columns[i].base_type);
        for (size_t k = 0; k < t->columns[i].nsequences; k++) {
            free(t->columns[i].sequences[k].oid);
            free(t->columns[i].sequences[k].name);
        }
        free(t->columns[i].sequences);
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

int catalog_unique_keys_of(db_conn *c, const char *schema, const char *const *names, size_t n,
                           catalog_table_keys *outs, owl_err *err)
{
    char *list = db_text_array(names, n);
    const char *params[2] = {schema, list};
    PGresult *res = NULL;
    int rows, rc = -1;

    memset(outs, 0, n * sizeof(*outs));
    if (list == NULL)
        goto oom;
    res = db_query_named(c, "owlsync_keys",
                   "SELECT r.relname, i.indexrelid, a.attname, i.indisprimary, i.indisprimary OR a.attnotnull,"
                   "       i.indimmediate"
                   "  FROM pg_catalog.pg_index i"
                   "  JOIN pg_catalog.pg_class r ON r.oid = i.indrelid"
                   "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                   "  JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum = ANY (i.indkey)"
                   " WHERE n.nspname = $1 AND r.relname::pg_catalog.text = ANY ($2::pg_catalog.text[])"
                   "   AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL"
                   " ORDER BY r.relname, i.indisprimary DESC, i.indexrelid,"
                   "          pg_catalog.array_position(i.indkey::int2[], a.attnum)",
                   2, params, err, "cannot read the catalog");
    if (res == NULL)
        goto out;
    rows = PQntuples(res);
    for (int i = 0; i < rows;) {
        size_t t = row_table(res, i, names, n);
        const char *idx = PQgetvalue(res, i, 1);
        catalog_table_keys *tk;
        catalog_key *k;
        int j = i;
        for (; j < rows && strcmp(PQgetvalue(res, j, 1), idx) == 0; j++) {
        }
        if (t == n) {
            i = j;
            continue;
        }
        tk = &outs[t];
        if (tk->keys == NULL && (tk->keys = calloc((size_t)rows, sizeof(*tk->keys))) == NULL)
            goto oom;
        k = &tk->keys[tk->nkeys++];
        k->primary = is_true(res, i, 3);
        k->immediate = is_true(res, i, 5);
        k->not_null = true;
        k->columns = calloc((size_t)(j - i), sizeof(char *));
        if (k->columns == NULL)
            goto oom;
        for (; i < j; i++) {
            k->columns[k->ncolumns] = dup_value(res, i, 2);
            if (k->columns[k->ncolumns++] == NULL)
                goto oom;
            k->not_null = k->not_null && is_true(res, i, 4);
        }
    }
    rc = 0;
    goto out;
oom:
    err_oom(err);
out:
    PQclear(res);
    free(list);
    for (size_t i = 0; rc < 0 && i < n; i++) {
        catalog_keys_free(outs[i].keys, outs[i].nkeys);
        outs[i].keys = NULL;
        outs[i].nkeys = 0;
    }
    return rc;
}

int catalog_unique_keys(db_conn *c, const char *schema, const char *table, catalog_key **keys, size_t *n,
                        owl_err *err)
{
    catalog_table_keys tk;

    *keys = NULL;
    *n = 0;
    if (catalog_unique_keys_of(c, schema, &table, 1, &tk, err) < 0)
        return -1;
    *keys = tk.keys;
    *n = tk.nkeys;
    return 0;
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
    size_t nv = 0;

    *fks = NULL;
    *n = 0;
    /* one row per column pair, in key order */
    res = db_query_named(c, "owlsync_fks",
                   "SELECT k.oid, k.conname, ch.relname, pa.relname, ca.attname, pc.attname"
                   "  FROM pg_catalog.pg_constraint k"
                   "  JOIN pg_catalog.pg_class ch ON ch.oid = k.conrelid"
                   "  JOIN pg_catalog.pg_class pa ON pa.oid = k.confrelid"
                   "  JOIN pg_catalog.pg_namespace n ON n.oid = ch.relnamespace"
                   "  CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(k.conkey), pg_catalog.unnest(k.confkey))"
                   "       WITH ORDINALITY AS u(ck, pk, o)"
                   "  JOIN pg_catalog.pg_attribute ca ON ca.attrelid = k.conrelid AND ca.attnum = u.ck"
                   "  JOIN pg_catalog.pg_attribute pc ON pc.attrelid = k.confrelid AND pc.attnum = u.pk"
                   " WHERE k.contype = 'f' AND n.nspname = $1 AND pa.relnamespace = ch.relnamespace"
                   " ORDER BY k.oid, u.o",
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
        catalog_fk *f;
        char **cc, **pc;
        if (i == 0 || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)) != 0) {
            f = &v[nv++];
            f->name = dup_value(res, i, 1);
            f->child = dup_value(res, i, 2);
            f->parent = dup_value(res, i, 3);
            if (f->name == NULL || f->child == NULL || f->parent == NULL)
                goto oom;
        }
        f = &v[nv - 1];
        cc = realloc(f->child_columns, (f->ncolumns + 1) * sizeof(char *));
        if (cc == NULL)
            goto oom;
        f->child_columns = cc;
        pc = realloc(f->parent_columns, (f->ncolumns + 1) * sizeof(char *));
        if (pc == NULL)
            goto oom;
        f->parent_columns = pc;
        cc[f->ncolumns] = dup_value(res, i, 4);
        pc[f->ncolumns] = dup_value(res, i, 5);
        f->ncolumns++;
        if (cc[f->ncolumns - 1] == NULL || pc[f->ncolumns - 1] == NULL)
            goto oom;
    }
    PQclear(res);
    *fks = v;
    *n = nv;
    return 0;
oom:
    catalog_fks_free(v, nv);
    PQclear(res);
    return err_oom(err);
}

void catalog_fks_free(catalog_fk *fks, size_t n)
{
    for (size_t i = 0; fks != NULL && i < n; i++) {
        free(fks[i].name);
        free(fks[i].child);
        free(fks[i].parent);
        for (size_t k = 0; k < fks[i].ncolumns; k++) {
            free(fks[i].child_columns[k]);
            free(fks[i].parent_columns[k]);
        }
        free(fks[i].child_columns);
        free(fks[i].parent_columns);
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

/* A type of format_type() text, parsed as far as the narrowing rules need. */
typedef struct type_shape {
    enum { T_OTHER, T_INT, T_FLOAT, T_NUMERIC, T_CHAR, T_TIMESTAMP, T_TIMESTAMPTZ, T_DATE, T_TIME, T_TIMETZ } kind;
    int size;       /* bytes of an integer or float */
    int precision;  /* numeric precision, char length, time precision; -1 = none given */
    int scale;      /* numeric scale; -1 = none given */
} type_shape;

/* Reads "(a)" or "(a,b)" at p into a and b; -1 for what is not there. */
static void modifiers(const char *p, int *a, int *b)
{
    char *end;

    *a = *b = -1;
    if (p == NULL || *p != '(')
        return;
    *a = (int)strtol(p + 1, &end, 10);
    if (*end == ',')
        *b = (int)strtol(end + 1, &end, 10);
}

static type_shape shape_of(const char *t)
{
    static const struct {
        const char *prefix;
        int kind, size;
    } kinds[] = {
        {"smallint", T_INT, 2},          {"integer", T_INT, 4},         {"bigint", T_INT, 8},
        {"real", T_FLOAT, 4},            {"double precision", T_FLOAT, 8}, {"numeric", T_NUMERIC, 0},
        {"character varying", T_CHAR, 0}, {"character", T_CHAR, 0},     {"text", T_CHAR, 0},
        {"date", T_DATE, 0},             {"timestamp", T_TIMESTAMP, 0}, {"time", T_TIME, 0},
    };
    type_shape sh = {T_OTHER, 0, -1, -1};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(t, kinds[i].prefix, n) != 0 || (t[n] != '\0' && t[n] != '(' && t[n] != ' ' && t[n] != '['))
            continue;
        sh.kind = kinds[i].kind;
        sh.size = kinds[i].size;
        modifiers(t[n] == '(' ? t + n : NULL, &sh.precision, &sh.scale);
        if (strstr(t + n, "with time zone") != NULL)
            sh.kind = sh.kind == T_TIMESTAMP ? T_TIMESTAMPTZ : T_TIMETZ;
        if (sh.kind == T_NUMERIC && sh.precision >= 0 && sh.scale < 0)
            sh.scale = 0;
        return sh;
    }
    return sh;
}

const char *catalog_narrower(const char *source, const char *target)
{
    size_t sl = strlen(source), tl = strlen(target);
    type_shape s, t;

    /* arrays: their elements */
    if ((sl > 2 && strcmp(source + sl - 2, "[]") == 0) != (tl > 2 && strcmp(target + tl - 2, "[]") == 0))
        return NULL;
    s = shape_of(source);
    t = shape_of(target);
    if (s.kind == T_OTHER || t.kind == T_OTHER)
        return NULL;
    switch (t.kind) {
    case T_INT:
        if ((s.kind == T_INT && t.size < s.size))
            return "may not fit (a smaller integer)";
        if (s.kind == T_FLOAT || (s.kind == T_NUMERIC && s.scale != 0))
            return "are rounded to whole numbers";
        if (s.kind == T_NUMERIC)
            return "may not fit (an integer)";
        return NULL;
    case T_FLOAT:
        if ((s.kind == T_FLOAT && t.size < s.size) || s.kind == T_NUMERIC || (s.kind == T_INT && s.size >= t.size))
            return "are rounded (fewer significant digits)";
        return NULL;
    case T_NUMERIC:
        if (t.precision < 0)
            return NULL;
        if (s.kind == T_FLOAT || (s.kind == T_NUMERIC && (s.scale < 0 || t.scale < s.scale)))
            return "are rounded (a smaller scale)";
        if (s.kind == T_NUMERIC && t.precision - t.scale < s.precision - s.scale)
            return "may not fit (a smaller precision)";
        if (s.kind == T_INT && t.precision - t.scale < (s.size == 2 ? 5 : s.size == 4 ? 10 : 19))
            return "may not fit (a smaller precision)";
        return NULL;
    case T_CHAR:
        if (s.kind == T_CHAR && t.precision >= 0 && (s.precision < 0 || t.precision < s.precision))
            return "may be too long (a shorter character type)";
        return NULL;
    case T_TIMESTAMP:
        if (s.kind == T_TIMESTAMPTZ)
            return "lose their time zone (timestamp without time zone)";
        if (s.kind == T_TIMESTAMP && t.precision >= 0 && (s.precision < 0 || t.precision < s.precision))
            return "are rounded (fewer fractional digits)";
        return NULL;
    case T_TIMESTAMPTZ:
        if ((s.kind == T_TIMESTAMPTZ || s.kind == T_TIMESTAMP) && t.precision >= 0 &&
            (s.precision < 0 || t.precision < s.precision))
            return "are rounded (fewer fractional digits)";
        return NULL;
    case T_DATE:
        return s.kind == T_TIMESTAMP || s.kind == T_TIMESTAMPTZ ? "lose their time of day (date)" : NULL;
    case T_TIME:
        if (s.kind == T_TIMETZ)
            return "lose their offset (time without time zone)";
        if (s.kind == T_TIME && t.precision >= 0 && (s.precision < 0 || t.precision < s.precision))
            return "are rounded (fewer fractional digits)";
        return NULL;
    default:
        return NULL;
    }
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

/* The labels of privs ("A,B|C": B or C will do) that a has_*_privilege
 * query (its first parameter, the object; its second, the privilege) finds
 * lacking, joined with ", " into lacking. */
static int lacks(db_conn *c, const char *has, const char *object, const char *privs, char *lacking, size_t size,
                 owl_err *err)
{
    const char *params[2] = {object, privs};
    db_sql q = DB_SQL_INIT;
    PGresult *res;

    db_sql_add(&q, "SELECT pg_catalog.string_agg(pg_catalog.replace(p, '|', ' or '), ', ' ORDER BY o)"
                   " FROM pg_catalog.unnest(pg_catalog.string_to_array($2, ',')) WITH ORDINALITY x (p, o)"
                   " WHERE NOT ");
    db_sql_add(&q, has);
    db_sql_add(&q, "($1::pg_catalog.oid, pg_catalog.replace(p, '|', ', '))");
    res = db_sql_query(c, &q, 2, params, err, "cannot read the catalog");
    if (res == NULL)
        return -1;
    snprintf(lacking, size, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

int catalog_table_lacks(db_conn *c, const char *schema, const char *table, const char *privs, bool *exists,
                        char *lacking, size_t size, owl_err *err)
{
    const char *params[2] = {schema, table};
    PGresult *res = db_query(c,
                             "SELECT r.oid FROM pg_catalog.pg_class r"
                             "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
                             " WHERE n.nspname = $1 AND r.relname = $2 AND r.relkind IN ('r', 'p')",
                             2, params, err, "cannot read the catalog");
    char oid[32];

    lacking[0] = '\0';
    if (res == NULL)
        return -1;
    *exists = PQntuples(res) > 0;
    snprintf(oid, sizeof(oid), "%s", *exists ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    if (!*exists)
        return 0;
    return lacks(c, "pg_catalog.has_table_privilege", oid, privs, lacking, size, err);
}

int catalog_sequence_lacks(db_conn *c, const char *oid, const char *privs, char *lacking, size_t size, owl_err *err)
{
    return lacks(c, "pg_catalog.has_sequence_privilege", oid, privs, lacking, size, err);
}

int catalog_session_access(db_conn *c, const char *schema, bool *temp, bool *usage, owl_err *err)
{
    const char *params[1] = {schema};
    PGresult *res = db_query(c,
                             "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMP'),"
                             " COALESCE((SELECT pg_catalog.has_schema_privilege(oid, 'USAGE')"
                             "  FROM pg_catalog.pg_namespace WHERE nspname = $1), false)",
                             1, params, err, "cannot read the catalog");

    if (res == NULL)
        return -1;
    *temp = is_true(res, 0, 0);
    *usage = is_true(res, 0, 1);
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
