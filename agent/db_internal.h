/* owlsync database layer, inside: libpq, the connection handle, running
 * statements, and SQL text built only from fixed text, quoted identifiers and
 * escaped lists. Included by the modules that own SQL (db, catalog, source,
 * stage, ledger) and by nothing else: pipelines and commands see db.h only. */
#ifndef OWLSYNC_DB_INTERNAL_H
#define OWLSYNC_DB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "owlsync/buf.h"
#include "owlsync/db.h"
#include "owlsync/error.h"

struct db_conn {
    PGconn *pg;
    PGcancel *cancel; /* registered for db_cancel_all */
    char *copy_row;   /* the row source_copy_next handed out last (PQfreemem) */
    bool kept;        /* kept for many uses: db_query_named prepares */
    const char **prepared; /* names of the statements prepared on it (static text) */
    size_t nprepared;
};

/* Sets err (OWL_ERUNTIME) to "WHAT: first line of the server's message"; -1. */
int db_fail(db_conn *c, const PGresult *res, owl_err *err, const char *what);

/* Runs sql with text parameters and returns its rows (PGRES_TUPLES_OK), or
 * NULL with err set (the result cleared). The caller PQclears the result. */
PGresult *db_query(db_conn *c, const char *sql, int n, const char *const *params, owl_err *err,
                   const char *what);

/* db_query for a statement run on every import, under a name of static
 * text: on a kept connection (db_keep) it is prepared once, so that the
 * server plans it once rather than every time (what catalog queries cost
 * most); elsewhere it is db_query. */
PGresult *db_query_named(db_conn *c, const char *name, const char *sql, int n, const char *const *params,
                         owl_err *err, const char *what);

/* Runs a statement that returns no rows; 0 or -1. */
int db_command(db_conn *c, const char *sql, int n, const char *const *params, owl_err *err, const char *what);

/* Runs fixed SQL text of several statements without parameters or rows in
 * one round trip (the simple protocol); 0 or -1. */
int db_script(db_conn *c, const char *sql, owl_err *err, const char *what);

/* BEGIN, then the fixed statements then, in one round trip; on a kept
 * connection the session's pinned settings are set again inside it. */
int db_begin(db_conn *c, const char *then, owl_err *err, const char *what);

/* A text[] parameter's text, '{"a","b"}': each value quoted, its quotes and
 * backslashes escaped (values reach the server as a parameter, never as SQL
 * text). malloc'd; NULL when memory runs out. */
char *db_text_array(const char *const *v, size_t n);

/* A bigint[] parameter's text, '{1,2}', of n numbers stride bytes apart
 * (a field of an array of structs). malloc'd; NULL when memory runs out. */
char *db_u64_array(const uint64_t *v, size_t n, size_t stride);

/* The SQLSTATE of a failed result, or "". */
const char *db_sqlstate(const PGresult *res);

/* An unsigned number from a result's text ("" and garbage read as 0). */
uint64_t db_u64(const PGresult *res, int row, int col);

/* SQL text. Only fixed text, quoted identifiers, decimal numbers and escaped
 * lists go in; a failed append (memory, bound) marks it failed and nothing of
 * it is run. */
#define DB_SQL_MAX ((size_t)1 << 30) /* PostgreSQL's own bound on a statement */
typedef struct db_sql {
    owl_buf b;
    bool failed;
} db_sql;
#define DB_SQL_INIT {OWL_BUF_INIT(DB_SQL_MAX), false}

void db_sql_add(db_sql *q, const char *text);
/* PQescapeIdentifier(name). */
void db_sql_ident(db_sql *q, db_conn *c, const char *name);
/* "schema"."table" */
void db_sql_qualified(db_sql *q, db_conn *c, const char *schema, const char *table);
/* ", "-separated quoted identifiers, each after prefix (e.g. "s.") when not NULL. */
void db_sql_idents(db_sql *q, db_conn *c, char *const *names, size_t n, const char *prefix);
void db_sql_num(db_sql *q, unsigned long long n);
/* A list of values, the one way lists reach SQL: an escaped text[] literal,
 * '{"a","b"}'::pg_catalog.text[] (PQescapeLiteral). COPY takes no parameters,
 * and the planner sees the values, which a parameter or a setting hides. */
void db_sql_list(db_sql *q, db_conn *c, char *const *v, size_t n);
void db_sql_free(db_sql *q);

/* A dataset column (alias may be "" or "t.") of type (format_type, unmodified)
 * as compared with names in a text list: as it is for text and varchar, as
 * char(n) compares (trailing blanks aside) for character, as its text
 * (canonical, as COPY writes it) for every other type. Appends the column
 * and sets *cast to what follows the list ("" or "::pg_catalog.bpchar[]"). */
void db_sql_dataset(db_sql *q, db_conn *c, const char *alias, const char *column, const char *type,
                    const char **cast);

/* Runs q (a statement without rows, with n text parameters) and frees it; 0 or -1. */
int db_sql_command(db_conn *c, db_sql *q, int n, const char *const *params, owl_err *err, const char *what);

/* Runs q, frees it, and returns its rows as db_query does. */
PGresult *db_sql_query(db_conn *c, db_sql *q, int n, const char *const *params, owl_err *err,
                       const char *what);

#endif
