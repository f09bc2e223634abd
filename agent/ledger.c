/* owlsync ledger: the target's record of imports, its locks, and what status
 * reads back; each statement behind a named function. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db_internal.h"
#include "owlsync/ledger.h"
#include "owlsync/log.h"
#include "owlsync/text.h"

static const char ledger_sql[] =
#include "ledger_sql.h"
    ;

/* Locks of owlsync: "owls", then 1 for the import transaction, 2 for a claim. */
#define LOCK_IMPORT "SELECT pg_catalog.pg_advisory_xact_lock(1870164851, 1)"
#define LOCK_CLAIM_TRY "SELECT pg_catalog.pg_try_advisory_lock(1870164851, 2)"
#define LOCK_CLAIM_RELEASE "SELECT pg_catalog.pg_advisory_unlock(1870164851, 2)"

static bool first_is_true(const PGresult *res, int col)
{
    return PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, col), "t") == 0;
}

#ifndef OWLSYNC_SQLDIR
#define OWLSYNC_SQLDIR "/usr/share/owlsync/sql"
#endif

/* What the import does to each ledger table (ledger_has_bundle and
 * ledger_order_of read, ledger_record_* write; ON CONFLICT DO UPDATE needs
 * SELECT too), in one statement that needs no privilege on the ledger: the
 * catalog and has_*_privilege only. Columns: schema exists, tables missing,
 * the newest column present, may create what is missing, privileges lacking,
 * role, database. */
static const char ledger_access_sql[] =
    "WITH need (t, privs, ord) AS (VALUES ('bundles', 'SELECT,INSERT', 1), ('bundle_tables', 'INSERT', 2),"
    "  ('datasets', 'SELECT,INSERT,UPDATE', 3), ('dataset_tables', 'SELECT,INSERT,UPDATE', 4),"
    "  ('bundle_rewrites', 'INSERT', 5)),"
    " ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'owlsync'),"
    " rel AS (SELECT need.*, c.oid AS relid FROM need LEFT JOIN pg_catalog.pg_class c"
    "  ON c.relname = need.t AND c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p'))"
    " SELECT EXISTS (SELECT FROM ns),"
    "  (SELECT pg_catalog.string_agg('owlsync.' || t, ', ' ORDER BY ord) FROM rel WHERE relid IS NULL),"
    "  EXISTS (SELECT FROM rel JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.relid"
    "   WHERE rel.t = 'dataset_tables' AND a.attname = 'sequence' AND NOT a.attisdropped),"
    "  CASE WHEN EXISTS (SELECT FROM ns) THEN pg_catalog.has_schema_privilege((SELECT oid FROM ns), 'CREATE')"
    "   ELSE pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE') END,"
    "  pg_catalog.concat_ws(', ',"
    "   CASE WHEN EXISTS (SELECT FROM ns) AND NOT pg_catalog.has_schema_privilege((SELECT oid FROM ns), 'USAGE')"
    "    THEN 'USAGE on schema owlsync' END,"
    "   (SELECT pg_catalog.string_agg(p || ' on owlsync.' || t, ', ' ORDER BY ord, p)"
    "     FROM rel, pg_catalog.unnest(pg_catalog.string_to_array(privs, ',')) p"
    "    WHERE relid IS NOT NULL AND NOT pg_catalog.has_table_privilege(relid, p))),"
    "  current_user, pg_catalog.current_database()";

int ledger_access_of(db_conn *c, ledger_access *a, owl_err *err)
{
    PGresult *res = db_query(c, ledger_access_sql, 0, NULL, err, "cannot look for the ledger");
    bool newest;

    memset(a, 0, sizeof(*a));
    if (res == NULL)
        return -1;
    a->schema = first_is_true(res, 0);
    newest = first_is_true(res, 2);
    a->can_create = first_is_true(res, 3);
    if (!a->schema)
        snprintf(a->missing, sizeof(a->missing), "schema owlsync");
    else if (!PQgetisnull(res, 0, 1))
        snprintf(a->missing, sizeof(a->missing), "%s", PQgetvalue(res, 0, 1));
    else if (!newest)
        snprintf(a->missing, sizeof(a->missing), "column owlsync.dataset_tables.sequence");
    a->complete = a->missing[0] == '\0';
    snprintf(a->lacking, sizeof(a->lacking), "%s", PQgetvalue(res, 0, 4));
    snprintf(a->role, sizeof(a->role), "%s", PQgetvalue(res, 0, 5));
    snprintf(a->database, sizeof(a->database), "%s", PQgetvalue(res, 0, 6));
    PQclear(res);
    return 0;
}

void ledger_hint(const ledger_access *a, owl_err *err)
{
    err_hint(err,
             "a DBA creates the ledger with: psql -X -v ON_ERROR_STOP=1 -d %s -f %s/ledger.sql, and grants role %s "
             "what sql/grants.sql grants the import role",
             a->database, OWLSYNC_SQLDIR, a->role);
}

int ledger_ensure(db_conn *c, owl_err *err)
{
    ledger_access a;
    PGresult *res;

    /* The whole ledger found is used as it is: no DDL, so an importer with
     * nothing but its DML grants on the ledger needs no CREATE privilege. */
    if (ledger_access_of(c, &a, err) < 0)
        return -1;
    if (a.complete)
        return 0;
    if (!a.can_create) {
        err_set(err, OWL_EUSAGE, "the ledger lacks %s, and role %s may not create it in database %s", a.missing,
                a.role, a.database);
        ledger_hint(&a, err);
        return -1;
    }
    log_info("creating the owlsync ledger (%s missing)", a.missing);
    res = PQexec(c->pg, ledger_sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_fail(c, res, err, "cannot create the ledger (schema owlsync)");
        PQclear(res);
        err_prefix(err, "ledger lacks %s", a.missing);
        ledger_hint(&a, err);
        return -1;
    }
    PQclear(res);
    return 0;
}

int ledger_lock(db_conn *c, owl_err *err)
{
    PGresult *res = db_query(c, LOCK_IMPORT, 0, NULL, err, "cannot take the import lock");

    PQclear(res);
    return res == NULL ? -1 : 0;
}

int ledger_has_bundle(db_conn *c, const char *bundle_id, const char *environment, const char *key_id, char *other,
                      size_t olen, owl_err *err)
{
    const char *params[1] = {bundle_id};
    PGresult *res = db_query(c, "SELECT environment, key_id FROM owlsync.bundles WHERE bundle_id = $1", 1, params, err,
                             "cannot read the ledger");
    int found;

    if (res == NULL)
        return -1;
    found = PQntuples(res) > 0;
    if (found && (strcmp(PQgetvalue(res, 0, 0), environment) != 0 || strcmp(PQgetvalue(res, 0, 1), key_id) != 0)) {
        snprintf(other, olen, "environment %s, key %s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        found = 2;
    }
    PQclear(res);
    return found;
}

int ledger_order_of(db_conn *c, const ledger_bundle_ref *b, ledger_order *o, owl_err *err)
{
    char snap[TEXT_UTC_MAX], seq[32];
    const char *params[4] = {b->environment, snap, b->job, seq};
    db_sql q = DB_SQL_INIT;
    PGresult *res;

    memset(o, 0, sizeof(*o));
    o->pairs = (uint64_t)b->ndatasets * b->ntables;
    if (o->pairs == 0)
        return 0;
    text_utc(b->snapshot_at, TEXT_UTC_MICROS, snap, sizeof(snap));
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)b->sequence);
    db_sql_add(&q, "WITH h AS (SELECT dataset, table_name, snapshot_at AS s, job AS j, sequence AS n,"
                   " CASE WHEN job = $3 AND sequence IS NOT NULL"
                   "  THEN sequence >= $4::pg_catalog.int8 AND snapshot_at >= $2::pg_catalog.timestamptz"
                   "  ELSE snapshot_at > $2::pg_catalog.timestamptz END AS newer,"
                   " job = $3 AND sequence IS NOT NULL"
                   "  AND (sequence > $4::pg_catalog.int8) <> (snapshot_at > $2::pg_catalog.timestamptz) AS disagree"
                   " FROM owlsync.dataset_tables WHERE environment = $1 AND dataset = ANY (");
    db_sql_list(&q, c, b->datasets, b->ndatasets);
    db_sql_add(&q, ") AND table_name = ANY (");
    db_sql_list(&q, c, b->tables, b->ntables);
    db_sql_add(&q, ")), t AS (SELECT 'dataset ' || dataset || ', table ' || table_name AS w,"
                   " pg_catalog.to_char(s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ws, j, n"
                   " FROM h WHERE newer ORDER BY s DESC, n DESC NULLS LAST, w LIMIT 1)"
                   " SELECT (SELECT pg_catalog.count(*) FROM h WHERE newer),"
                   " (SELECT pg_catalog.count(*) FROM h WHERE disagree), t.w, t.ws, t.j, t.n"
                   " FROM (SELECT 1) one LEFT JOIN t ON true");
    res = db_sql_query(c, &q, 4, params, err, "cannot read the ledger");
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1) {
        o->newer = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        o->disagree = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
        snprintf(o->what, sizeof(o->what), "%s", PQgetvalue(res, 0, 2));
        snprintf(o->when, sizeof(o->when), "%s", PQgetvalue(res, 0, 3));
        snprintf(o->job, sizeof(o->job), "%s", PQgetvalue(res, 0, 4));
        o->sequence = strtoull(PQgetvalue(res, 0, 5), NULL, 10);
    }
    PQclear(res);
    return 0;
}

int ledger_record_bundle(db_conn *c, const ledger_entry *e, owl_err *err)
{
    char seq[32], rows[32], snap[TEXT_UTC_MAX], created[TEXT_UTC_MAX];
    const char *params[9] = {e->bundle_id, e->environment, e->job, seq, snap, created, e->key_id, e->file_name, rows};
    db_sql q = DB_SQL_INIT;

    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)e->sequence);
    snprintf(rows, sizeof(rows), "%llu", (unsigned long long)e->rows_total);
    text_utc(e->snapshot_at, TEXT_UTC_MICROS, snap, sizeof(snap));
    text_utc(e->created_at, TEXT_UTC_MICROS, created, sizeof(created));
    db_sql_add(&q, "INSERT INTO owlsync.bundles (bundle_id, environment, job, sequence, snapshot_at, created_at,"
                   " key_id, file_name, rows_total, datasets) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, ");
    db_sql_list(&q, c, e->datasets, e->ndatasets);
    db_sql_add(&q, ")");
    if (db_sql_command(c, &q, 9, params, err, "cannot write the ledger") < 0)
        return -1;
    db_sql_add(&q, "INSERT INTO owlsync.datasets AS d (environment, dataset, snapshot_at, bundle_id)"
                   " SELECT $1, x, $2, $3 FROM pg_catalog.unnest(");
    db_sql_list(&q, c, e->datasets, e->ndatasets);
    db_sql_add(&q, ") x ON CONFLICT (environment, dataset) DO UPDATE"
                   " SET snapshot_at = EXCLUDED.snapshot_at, bundle_id = EXCLUDED.bundle_id, imported_at = pg_catalog.now()");
    params[0] = e->environment;
    params[1] = snap;
    params[2] = e->bundle_id;
    if (db_sql_command(c, &q, 3, params, err, "cannot write the ledger") < 0)
        return -1;
    params[3] = e->job;
    params[4] = seq;
    db_sql_add(&q, "INSERT INTO owlsync.dataset_tables AS d (environment, dataset, table_name, snapshot_at, bundle_id,"
                   " job, sequence)"
                   " SELECT $1, x, y, $2::pg_catalog.timestamptz, $3, $4, $5::pg_catalog.int8 FROM pg_catalog.unnest(");
    db_sql_list(&q, c, e->datasets, e->ndatasets);
    db_sql_add(&q, ") x, pg_catalog.unnest(");
    db_sql_list(&q, c, e->tables, e->ntables);
    db_sql_add(&q, ") y ON CONFLICT (environment, dataset, table_name) DO UPDATE"
                   " SET snapshot_at = EXCLUDED.snapshot_at, bundle_id = EXCLUDED.bundle_id, job = EXCLUDED.job,"
                   " sequence = EXCLUDED.sequence, imported_at = pg_catalog.now()");
    return db_sql_command(c, &q, 5, params, err, "cannot write the ledger");
}

int ledger_record_tables(db_conn *c, const char *bundle_id, const ledger_counts *v, size_t n, owl_err *err)
{
    const char **names = calloc(n ? n : 1, sizeof(char *));
    char *a[6] = {NULL};
    const char *params[7];
    int rc = -1;

    for (size_t i = 0; names != NULL && i < n; i++)
        names[i] = v[i].table;
    if (names != NULL && n > 0) {
        a[0] = db_text_array(names, n);
        a[1] = db_u64_array(&v[0].rows, n, sizeof(*v));
        a[2] = db_u64_array(&v[0].inserted, n, sizeof(*v));
        a[3] = db_u64_array(&v[0].updated, n, sizeof(*v));
        a[4] = db_u64_array(&v[0].deleted, n, sizeof(*v));
        a[5] = db_u64_array(&v[0].unchanged, n, sizeof(*v));
    }
    if (n == 0) {
        rc = 0;
    } else if (names == NULL || a[0] == NULL || a[1] == NULL || a[2] == NULL || a[3] == NULL || a[4] == NULL ||
               a[5] == NULL) {
        rc = err_oom(err);
    } else {
        params[0] = bundle_id;
        for (int i = 0; i < 6; i++)
            params[i + 1] = a[i];
        rc = db_command(c,
                        "INSERT INTO owlsync.bundle_tables (bundle_id, table_name, rows, inserted, updated, deleted,"
                        " unchanged) SELECT $1, * FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]),"
                        " pg_catalog.unnest($3::pg_catalog.int8[]), pg_catalog.unnest($4::pg_catalog.int8[]),"
                        " pg_catalog.unnest($5::pg_catalog.int8[]), pg_catalog.unnest($6::pg_catalog.int8[]),"
                        " pg_catalog.unnest($7::pg_catalog.int8[]))",
                        7, params, err, "cannot write the ledger");
    }
    for (int i = 0; i < 6; i++)
        free(a[i]);
    free(names);
    return rc;
}

int ledger_record_rewrites(db_conn *c, const char *bundle_id, const ledger_rewrite *v, size_t n, owl_err *err)
{
    const char **rules = calloc(n ? n : 1, sizeof(char *)), **tables = calloc(n ? n : 1, sizeof(char *));
    char *a[3] = {NULL};
    const char *params[4];
    int rc = -1;

    for (size_t i = 0; rules != NULL && tables != NULL && i < n; i++) {
        rules[i] = v[i].rule;
        tables[i] = v[i].table;
    }
    if (rules != NULL && tables != NULL && n > 0) {
        a[0] = db_text_array(rules, n);
        a[1] = db_text_array(tables, n);
        a[2] = db_u64_array(&v[0].changed, n, sizeof(*v));
    }
    if (n == 0) {
        rc = 0;
    } else if (a[0] == NULL || a[1] == NULL || a[2] == NULL) {
        rc = err_oom(err);
    } else {
        params[0] = bundle_id;
        for (int i = 0; i < 3; i++)
            params[i + 1] = a[i];
        rc = db_command(c,
                        "INSERT INTO owlsync.bundle_rewrites (bundle_id, rule_name, table_name, changed)"
                        " SELECT $1, * FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]),"
                        " pg_catalog.unnest($3::pg_catalog.text[]), pg_catalog.unnest($4::pg_catalog.int8[]))",
                        4, params, err, "cannot write the ledger");
    }
    for (int i = 0; i < 3; i++)
        free(a[i]);
    free(rules);
    free(tables);
    return rc;
}

static char *dup_value(const PGresult *res, int row, int col)
{
    return strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

/* The names of a JSON array of strings (array_to_json of the ledger's
 * datasets, which a comma-joined list could not keep apart) into r. */
static int parse_datasets(const char *text, ledger_row *r, owl_err *err)
{
    json_error_t jerr;
    json_t *a = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;

    if (!json_is_array(a)) {
        json_decref(a);
        return json_is_null(a) || text[0] == '\0' ? 0 : err_set(err, OWL_ERUNTIME, "the ledger's datasets: %s", jerr.text);
    }
    r->datasets = calloc(json_array_size(a) + 1, sizeof(*r->datasets));
    if (r->datasets == NULL) {
        json_decref(a);
        return err_oom(err);
    }
    for (size_t i = 0; i < json_array_size(a) && rc == 0; i++) {
        const char *name = json_string_value(json_array_get(a, i));
        if (name != NULL && (r->datasets[r->ndatasets] = strdup(name)) == NULL)
            rc = err_oom(err);
        else if (name != NULL)
            r->ndatasets++;
    }
    json_decref(a);
    return rc;
}

int ledger_recent(db_conn *c, int limit, ledger_row **rows, size_t *n, int64_t *last_import, owl_err *err)
{
    char lim[16];
    const char *params[1] = {lim};
    PGresult *res;
    int rc = -1;

    *rows = NULL;
    *n = 0;
    *last_import = 0;
    res = db_query(c, "SELECT pg_catalog.to_regclass('owlsync.bundles') IS NOT NULL", 0, NULL, err,
                   "cannot look for the ledger");
    if (res == NULL)
        return -1;
    if (!first_is_true(res, 0)) {
        PQclear(res);
        return 0;
    }
    PQclear(res);
    snprintf(lim, sizeof(lim), "%d", limit);
    res = db_query(c,
                   "SELECT file_name, bundle_id, environment, job, sequence, pg_catalog.array_to_json(datasets)::pg_catalog.text,"
                   "       rows_total, pg_catalog.to_char(imported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                   "       (extract(epoch FROM imported_at) * 1000000)::pg_catalog.int8"
                   "  FROM owlsync.bundles ORDER BY imported_at DESC LIMIT $1::pg_catalog.int4",
                   1, params, err, "cannot read the ledger");
    if (res == NULL)
        return -1;
    *rows = calloc((size_t)PQntuples(res) + 1, sizeof(**rows));
    if (*rows == NULL) {
        err_oom(err);
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        ledger_row *r = &(*rows)[i];
        r->file_name = dup_value(res, i, 0);
        r->bundle_id = dup_value(res, i, 1);
        r->environment = dup_value(res, i, 2);
        r->job = dup_value(res, i, 3);
        r->sequence = db_u64(res, i, 4);
        r->rows = db_u64(res, i, 6);
        r->imported_at = dup_value(res, i, 7);
        (*n)++;
        if (r->file_name == NULL || r->bundle_id == NULL || r->environment == NULL || r->job == NULL ||
            r->imported_at == NULL) {
            err_oom(err);
            goto out;
        }
        if (parse_datasets(PQgetisnull(res, i, 5) ? "" : PQgetvalue(res, i, 5), r, err) < 0)
            goto out;
        if (i == 0)
            *last_import = strtoll(PQgetvalue(res, i, 8), NULL, 10);
    }
    rc = 0;
out:
    PQclear(res);
    return rc;
}

void ledger_rows_free(ledger_row *rows, size_t n)
{
    for (size_t i = 0; rows != NULL && i < n; i++) {
        free(rows[i].file_name);
        free(rows[i].bundle_id);
        free(rows[i].environment);
        free(rows[i].job);
        for (size_t d = 0; d < rows[i].ndatasets; d++)
            free(rows[i].datasets[d]);
        free(rows[i].datasets);
        free(rows[i].imported_at);
    }
    free(rows);
}

struct ledger_claim {
    db_conn *conn;
};

int ledger_claim_try(const char *conninfo, ledger_claim **claim, owl_err *err)
{
    ledger_claim *l = *claim;
    PGresult *res = NULL;
    int got;

    if (l == NULL) {
        l = calloc(1, sizeof(*l));
        if (l == NULL)
            return err_oom(err);
        *claim = l;
    }
    /* A connection kept from the last claim that the server closed since (a
     * restart) is let go without a round trip; one that dies on the query is
     * replaced once at once, not left to the caller's backoff. */
    for (int attempt = 0; res == NULL && attempt < 2; attempt++) {
        bool fresh = false;
        if (l->conn != NULL && !db_reusable(l->conn)) {
            db_close(l->conn);
            l->conn = NULL;
        }
        if (l->conn == NULL) {
            if (db_open(conninfo, "the target database", &l->conn, err) < 0)
                return -1;
            fresh = true;
        }
        res = db_query(l->conn, LOCK_CLAIM_TRY, 0, NULL, err, "cannot take the claim lock");
        if (res == NULL) {
            db_close(l->conn);
            l->conn = NULL;
            if (fresh || err->code != OWL_ERUNTIME)
                return -1;
        }
    }
    if (res == NULL)
        return -1;
    got = first_is_true(res, 0);
    PQclear(res);
    return got;
}

void ledger_claim_release(ledger_claim *claim)
{
    PGresult *res;

    if (claim == NULL || claim->conn == NULL)
        return;
    res = PQexec(claim->conn->pg, LOCK_CLAIM_RELEASE);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* a broken connection drops the lock with it */
        db_close(claim->conn);
        claim->conn = NULL;
    }
    PQclear(res);
}

void ledger_claim_free(ledger_claim *claim)
{
    if (claim == NULL)
        return;
    db_close(claim->conn);
    free(claim);
}
