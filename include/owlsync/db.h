/* owlsync database layer shared by the exporter and importer: connecting, running
 * parameterised statements, one-line errors, and SQL text built only from quoted
 * identifiers. The only header besides those two modules that includes libpq. */
#ifndef OWLSYNC_DB_H
#define OWLSYNC_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "owlsync/error.h"

/* Connects with conninfo; on failure err says "cannot connect to WHAT: reason". */
int db_connect(const char *conninfo, const char *what, PGconn **out, owl_err *err);

/* Sets err (OWL_ERUNTIME) to "WHAT: first line of the server's message"; -1. */
int db_fail(PGconn *conn, const PGresult *res, owl_err *err, const char *what);

/* Runs sql with text parameters; returns the result when its status is want,
 * else NULL with err set (the result cleared). Caller PQclears the result. */
PGresult *db_exec(PGconn *conn, const char *sql, int n, const char *const *params, ExecStatusType want,
                  owl_err *err, const char *what);

/* Runs a command that returns no rows; 0 or -1. */
int db_command(PGconn *conn, const char *sql, int n, const char *const *params, owl_err *err, const char *what);

/* The SQLSTATE of a failed result, or "" */
const char *db_sqlstate(const PGresult *res);

/* Formats n strings as PostgreSQL array input text {"a","b"}; malloc'd, NULL on OOM. */
char *db_array_text(char *const *v, size_t n);

/* Sets a transaction-local setting from a bound parameter: the way lists reach
 * COPY, which takes no parameters, without being pasted into SQL. */
int db_set_local(PGconn *conn, const char *name, const char *value, owl_err *err);

/* A growing SQL text. Only fixed text and quoted identifiers go in. */
typedef struct db_sql {
    char *s;
    size_t len, cap;
    bool failed; /* an allocation or quoting failed; s is not to be run */
} db_sql;

void db_sql_add(db_sql *q, const char *text);
/* Appends PQescapeIdentifier(name). */
void db_sql_ident(db_sql *q, PGconn *conn, const char *name);
/* Appends "schema"."table". */
void db_sql_qualified(db_sql *q, PGconn *conn, const char *schema, const char *table);
/* Appends PQescapeLiteral(text): for values where COPY cannot take parameters. */
void db_sql_literal(db_sql *q, PGconn *conn, const char *text);
/* Appends a decimal number (used for generated names such as stage_3). */
void db_sql_num(db_sql *q, unsigned long long n);
void db_sql_free(db_sql *q);

#endif
