/* owlsync database layer: libpq calls shared by exporter and importer, and the
 * SQL builder that admits only fixed text and quoted identifiers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "owlsync/db.h"

/* The first line of a libpq message, without the "ERROR:  " prefix. */
static void first_line(const char *msg, char *buf, size_t len)
{
    size_t n = 0;

    if (msg == NULL || *msg == '\0')
        msg = "unknown error";
    if (strncmp(msg, "ERROR:  ", 8) == 0)
        msg += 8;
    else if (strncmp(msg, "FATAL:  ", 8) == 0)
        msg += 8;
    while (msg[n] != '\0' && msg[n] != '\n' && n + 1 < len) {
        buf[n] = msg[n];
        n++;
    }
    buf[n] = '\0';
}

int db_fail(PGconn *conn, const PGresult *res, owl_err *err, const char *what)
{
    char line[700];
    const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;

    if (msg == NULL || *msg == '\0')
        msg = PQerrorMessage(conn);
    first_line(msg, line, sizeof(line));
    return err_set(err, OWL_ERUNTIME, "%s: %s", what, line);
}

int db_connect(const char *conninfo, const char *what, PGconn **out, owl_err *err)
{
    PGconn *conn = PQconnectdb(conninfo);
    char buf[128];

    if (conn == NULL)
        return err_set(err, OWL_ERUNTIME, "out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(buf, sizeof(buf), "cannot connect to %s", what);
        db_fail(conn, NULL, err, buf);
        PQfinish(conn);
        *out = NULL;
        return -1;
    }
    *out = conn;
    return 0;
}

PGresult *db_exec(PGconn *conn, const char *sql, int n, const char *const *params, ExecStatusType want,
                  owl_err *err, const char *what)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != want) {
        db_fail(conn, res, err, what);
        PQclear(res);
        return NULL;
    }
    return res;
}

int db_command(PGconn *conn, const char *sql, int n, const char *const *params, owl_err *err, const char *what)
{
    PGresult *res = db_exec(conn, sql, n, params, PGRES_COMMAND_OK, err, what);

    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

const char *db_sqlstate(const PGresult *res)
{
    const char *s = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    return s != NULL ? s : "";
}

char *db_array_text(char *const *v, size_t n)
{
    size_t cap = 3;
    char *out, *p;

    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(v[i]) + 3;
    out = malloc(cap);
    if (out == NULL)
        return NULL;
    p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        *p++ = '"';
        for (const char *s = v[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                *p++ = '\\';
            *p++ = *s;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

int db_set_local(PGconn *conn, const char *name, const char *value, owl_err *err)
{
    const char *params[2] = {name, value};
    PGresult *res = db_exec(conn, "SELECT pg_catalog.set_config($1, $2, true)", 2, params, PGRES_TUPLES_OK, err,
                            "cannot pass a list to the database");

    PQclear(res);
    return res == NULL ? -1 : 0;
}

void db_sql_add(db_sql *q, const char *text)
{
    size_t n = strlen(text);

    if (q->failed)
        return;
    if (q->len + n + 1 > q->cap) {
        size_t cap = (q->len + n + 1) * 2;
        char *grown = realloc(q->s, cap < 256 ? 256 : cap);
        if (grown == NULL) {
            q->failed = true;
            return;
        }
        q->s = grown;
        q->cap = cap < 256 ? 256 : cap;
    }
    memcpy(q->s + q->len, text, n + 1);
    q->len += n;
}

void db_sql_ident(db_sql *q, PGconn *conn, const char *name)
{
    char *quoted;

    if (q->failed)
        return;
    quoted = PQescapeIdentifier(conn, name, strlen(name));
    if (quoted == NULL) {
        q->failed = true;
        return;
    }
    db_sql_add(q, quoted);
    PQfreemem(quoted);
}

void db_sql_literal(db_sql *q, PGconn *conn, const char *text)
{
    char *quoted;

    if (q->failed)
        return;
    quoted = PQescapeLiteral(conn, text, strlen(text));
    if (quoted == NULL) {
        q->failed = true;
        return;
    }
    db_sql_add(q, quoted);
    PQfreemem(quoted);
}

void db_sql_qualified(db_sql *q, PGconn *conn, const char *schema, const char *table)
{
    db_sql_ident(q, conn, schema);
    db_sql_add(q, ".");
    db_sql_ident(q, conn, table);
}

void db_sql_num(db_sql *q, unsigned long long n)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", n);
    db_sql_add(q, buf);
}

void db_sql_free(db_sql *q)
{
    free(q->s);
    q->s = NULL;
    q->len = q->cap = 0;
    q->failed = false;
}
