/* owlsync database layer: connections and transactions for everyone, and for
 * the SQL-owning modules the helpers that run statements and build SQL text
 * from fixed text, quoted identifiers and escaped lists only. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "owlsync/log.h"

/* Cancel handles of the open connections, for db_cancel_all from a signal
 * handler (PQcancel is async-signal-safe). Slots change with SIGTERM, SIGINT
 * and SIGHUP blocked, so the handler never sees one half freed. */
#define CANCEL_SLOTS 8
static PGcancel *volatile cancel_slot[CANCEL_SLOTS];
static volatile sig_atomic_t cancel_requested;

static void cancel_slots_lock(sigset_t *old)
{
    sigset_t block;

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, old);
}

static void cancel_register(db_conn *c)
{
    sigset_t old;

    cancel_slots_lock(&old);
    for (int i = 0; i < CANCEL_SLOTS; i++) {
        if (cancel_slot[i] == NULL) {
            c->cancel = PQgetCancel(c->pg);
            cancel_slot[i] = c->cancel;
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void cancel_unregister(db_conn *c)
{
    sigset_t old;

    if (c->cancel == NULL)
        return;
    cancel_slots_lock(&old);
    for (int i = 0; i < CANCEL_SLOTS; i++) {
        if (cancel_slot[i] == c->cancel)
            cancel_slot[i] = NULL;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    PQfreeCancel(c->cancel);
    c->cancel = NULL;
}

void db_cancel_all(void)
{
    char errbuf[256];

    cancel_requested = 1;
    for (int i = 0; i < CANCEL_SLOTS; i++) {
        PGcancel *pc = cancel_slot[i];
        if (pc != NULL)
            (void)PQcancel(pc, errbuf, sizeof(errbuf));
    }
}

void db_cancel_reset(void)
{
    cancel_requested = 0;
}

/* After db_cancel_all, no new statement starts: it would only wait again. */
static int cancelled(owl_err *err, const char *what)
{
    if (!cancel_requested)
        return 0;
    return err_set(err, OWL_ERUNTIME, "%s: interrupted (stopping)", what);
}

/* What every connection pins after connecting, as pg_dump does, so that the
 * text COPY writes and reads is the same whatever the role, database, server,
 * environment (PGDATESTYLE, PGTZ, PGCLIENTENCODING, PGOPTIONS) or conninfo
 * options say: UTF-8, ISO dates read year first, intervals in the postgres
 * style, floats with every digit, instants in UTC, bytea in hex, money in the
 * C locale, xml as content, standard strings. */
#define DB_PINNED_SETTINGS                                                                                             \
    "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"                        \
    " SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET lc_monetary = 'C';"              \
    " SET xmloption = 'content'; SET standard_conforming_strings = 'on'"

/* The exit class of a server error, by its SQLSTATE: what a retry may fix
 * (the connection, a lock or serialization conflict, resources, the server
 * shutting down, an internal error) is OWL_ERUNTIME; what it cannot (a value
 * the target refuses, a missing column or table, a privilege, a constraint, a
 * trigger's exception) is OWL_EUSAGE. No SQLSTATE: the connection. */
static int sqlstate_class(const char *state)
{
    static const char *const runtime[] = {"08", "40", "53", "55", "57", "58", "XX", "F0", "HV", "25", NULL};

    if (state == NULL || strlen(state) != 5)
        return OWL_ERUNTIME;
    for (size_t i = 0; runtime[i] != NULL; i++) {
        if (strncmp(state, runtime[i], 2) == 0)
            return OWL_ERUNTIME;
    }
    return OWL_EUSAGE;
}

/* Appends src (up to its first newline) to out, after sep, within outsz. */
static void add_part(char *out, size_t outsz, const char *sep, const char *src)
{
    size_t len = strlen(out), n = strcspn(src, "\n");

    if (len + strlen(sep) + n + 1 > outsz)
        n = outsz > len + strlen(sep) + 1 ? outsz - len - strlen(sep) - 1 : 0;
    if (n > 0)
        snprintf(out + len, outsz - len, "%s%.*s", sep, (int)n, src);
}

int db_fail(db_conn *c, const PGresult *res, owl_err *err, const char *what)
{
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
    const char *context = res != NULL ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char line[OWL_ERR_MAX] = "";

    if (primary == NULL) {
        /* no result, or no fields: libpq's own message (a lost connection) */
        const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;
        if ((msg == NULL || *msg == '\0') && c != NULL && c->pg != NULL)
            msg = PQerrorMessage(c->pg);
        if (msg == NULL || *msg == '\0')
            msg = "unknown error";
        if (strncmp(msg, "ERROR:  ", 8) == 0 || strncmp(msg, "FATAL:  ", 8) == 0)
            msg += 8;
        add_part(line, sizeof(line), "", msg);
    } else {
        /* the server's words whole: what, then which row, column or key */
        add_part(line, sizeof(line), "", primary);
        if (detail != NULL)
            add_part(line, sizeof(line), "; ", detail);
        if (context != NULL)
            add_part(line, sizeof(line), "; ", context);
    }
    err_set(err, state != NULL || primary != NULL ? sqlstate_class(state) : OWL_ERUNTIME, "%s: %s", what, line);
    if (hint != NULL)
        err_hint(err, "%s", hint);
    return -1;
}

/* What the server says outside a statement's result (a trigger's NOTICE or
 * WARNING, the FATAL of a session it ends) goes to the log at its level,
 * never as a raw line on stderr. */
static void on_notice(void *arg, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    (void)arg;
    if (sev == NULL)
        sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
    if (sev == NULL)
        sev = "NOTICE";
    if (msg == NULL)
        msg = PQresultErrorMessage(res);
    if (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0 || strcmp(sev, "ERROR") == 0)
        log_error("the database server: %s: %s", sev, msg);
    else if (strcmp(sev, "WARNING") == 0)
        log_warn("the database server: %s: %s", sev, msg);
    else
        log_debug("the database server: %s: %s", sev, msg);
}

int db_open(const char *conninfo, const char *what, db_conn **out, owl_err *err)
{
    db_conn *c = calloc(1, sizeof(*c));
    char buf[128];
    PGresult *res;

    *out = NULL;
    if (c == NULL)
        return err_oom(err);
    c->pg = PQconnectdb(conninfo);
    if (c->pg == NULL) {
        free(c);
        return err_oom(err);
    }
    PQsetNoticeReceiver(c->pg, on_notice, NULL);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        snprintf(buf, sizeof(buf), "cannot connect to %s", what);
        db_fail(c, NULL, err, buf);
        err->code = OWL_ERUNTIME;
        db_close(c);
        return -1;
    }
    res = PQexec(c->pg, DB_PINNED_SETTINGS);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(buf, sizeof(buf), "cannot set up the session on %s", what);
        db_fail(c, res, err, buf);
        PQclear(res);
        db_close(c);
        return -1;
    }
    PQclear(res);
    cancel_register(c);
    *out = c;
    return 0;
}

void db_close(db_conn *c)
{
    if (c == NULL)
        return;
    cancel_unregister(c);
    if (c->copy_row != NULL)
        PQfreemem(c->copy_row);
    if (c->pg != NULL)
        PQfinish(c->pg);
    free(c->prepared);
    free(c);
}

bool db_alive(const db_conn *c)
{
    return c != NULL && c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK;
}

bool db_in_transaction(const db_conn *c)
{
    return c != NULL && c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE &&
           PQtransactionStatus(c->pg) != PQTRANS_UNKNOWN;
}

bool db_reusable(db_conn *c)
{
    if (c == NULL || c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK)
        return false;
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE || c->copy_row != NULL)
        return false;
    if (PQconsumeInput(c->pg) == 0)
        return false; /* the server went away */
    return PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

void db_keep(db_conn *c)
{
    if (c != NULL)
        c->kept = true;
}

PGresult *db_query_named(db_conn *c, const char *name, const char *sql, int n, const char *const *params,
                         owl_err *err, const char *what)
{
    PGresult *res;
    bool ready = false;

    if (!c->kept)
        return db_query(c, sql, n, params, err, what);
    if (cancelled(err, what) < 0)
        return NULL;
    for (size_t i = 0; i < c->nprepared && !ready; i++)
        ready = strcmp(c->prepared[i], name) == 0;
    if (!ready) {
        const char **grown = realloc(c->prepared, (c->nprepared + 1) * sizeof(*grown));
        if (grown == NULL) {
            err_oom(err);
            return NULL;
        }
        c->prepared = grown;
        res = PQprepare(c->pg, name, sql, n, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            db_fail(c, res, err, what);
            PQclear(res);
            return NULL;
        }
        PQclear(res);
        c->prepared[c->nprepared++] = name;
    }
    res = PQexecPrepared(c->pg, name, n, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_fail(c, res, err, what);
        PQclear(res);
        return NULL;
    }
    return res;
}

int db_commit(db_conn *c, const char *what, owl_err *err)
{
    return db_command(c, "COMMIT", 0, NULL, err, what);
}

void db_rollback(db_conn *c)
{
    if (db_in_transaction(c))
        PQclear(PQexec(c->pg, "ROLLBACK"));
}

PGresult *db_query(db_conn *c, const char *sql, int n, const char *const *params, owl_err *err,
                   const char *what)
{
    PGresult *res;

    if (cancelled(err, what) < 0)
        return NULL;
    res = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_fail(c, res, err, what);
        PQclear(res);
        return NULL;
    }
    return res;
}

int db_command(db_conn *c, const char *sql, int n, const char *const *params, owl_err *err, const char *what)
{
    PGresult *res;
    int rc = 0;

    if (cancelled(err, what) < 0)
        return -1;
    res = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = db_fail(c, res, err, what);
    PQclear(res);
    return rc;
}

int db_begin(db_conn *c, const char *then, owl_err *err, const char *what)
{
    char sql[1024];

    /* On a kept connection, what an earlier transaction may have changed of
     * the session (a trigger's SET) is pinned again, in the same round trip. */
    if (snprintf(sql, sizeof(sql), "BEGIN;%s%s %s", c->kept ? " " : "", c->kept ? DB_PINNED_SETTINGS ";" : "",
                 then) >= (int)sizeof(sql))
        return err_set(err, OWL_ERUNTIME, "%s: statement too long", what);
    return db_script(c, sql, err, what);
}

int db_script(db_conn *c, const char *sql, owl_err *err, const char *what)
{
    PGresult *res;
    int rc = 0;

    if (cancelled(err, what) < 0)
        return -1;
    res = PQexec(c->pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = db_fail(c, res, err, what);
    PQclear(res);
    return rc;
}

char *db_text_array(const char *const *v, size_t n)
{
    owl_buf b = OWL_BUF_INIT(DB_SQL_MAX);
    int rc = buf_adds(&b, "{");

    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = buf_adds(&b, i ? ",\"" : "\"");
        for (const char *p = v[i]; *p != '\0' && rc == 0; p++)
            rc = (*p == '"' || *p == '\\' ? buf_adds(&b, "\\") : 0) < 0 ? -1 : buf_add(&b, p, 1);
        if (rc == 0)
            rc = buf_adds(&b, "\"");
    }
    if (rc == 0)
        rc = buf_adds(&b, "}");
    if (rc < 0) {
        buf_free(&b);
        return NULL;
    }
    return b.p;
}

char *db_u64_array(const uint64_t *v, size_t n, size_t stride)
{
    owl_buf b = OWL_BUF_INIT(DB_SQL_MAX);
    int rc = buf_adds(&b, "{");

    for (size_t i = 0; i < n && rc == 0; i++) {
        char num[32];
        uint64_t x;
        memcpy(&x, (const char *)v + i * stride, sizeof(x));
        snprintf(num, sizeof(num), "%s%llu", i ? "," : "", (unsigned long long)x);
        rc = buf_adds(&b, num);
    }
    if (rc == 0)
        rc = buf_adds(&b, "}");
    if (rc < 0) {
        buf_free(&b);
        return NULL;
    }
    return b.p;
}

const char *db_sqlstate(const PGresult *res)
{
    const char *s = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    return s != NULL ? s : "";
}

uint64_t db_u64(const PGresult *res, int row, int col)
{
    return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

void db_sql_add(db_sql *q, const char *text)
{
    if (!q->failed && buf_adds(&q->b, text) < 0)
        q->failed = true;
}

/* Appends a string libpq allocated, and frees it; NULL marks q failed. */
static void add_escaped(db_sql *q, char *quoted)
{
    if (quoted == NULL) {
        q->failed = true;
        return;
    }
    db_sql_add(q, quoted);
    PQfreemem(quoted);
}

void db_sql_ident(db_sql *q, db_conn *c, const char *name)
{
    if (!q->failed)
        add_escaped(q, PQescapeIdentifier(c->pg, name, strlen(name)));
}

void db_sql_qualified(db_sql *q, db_conn *c, const char *schema, const char *table)
{
    db_sql_ident(q, c, schema);
    db_sql_add(q, ".");
    db_sql_ident(q, c, table);
}

void db_sql_idents(db_sql *q, db_conn *c, char *const *names, size_t n, const char *prefix)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            db_sql_add(q, ", ");
        if (prefix != NULL)
            db_sql_add(q, prefix);
        db_sql_ident(q, c, names[i]);
    }
}

void db_sql_num(db_sql *q, unsigned long long n)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", n);
    db_sql_add(q, buf);
}

void db_sql_list(db_sql *q, db_conn *c, char *const *v, size_t n)
{
    owl_buf text = OWL_BUF_INIT(DB_SQL_MAX / 2);
    bool ok = buf_adds(&text, "{") == 0;

    /* array input text: each element double-quoted, '"' and '\\' escaped */
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ok = ok && buf_adds(&text, ",") == 0;
        ok = ok && buf_adds(&text, "\"") == 0;
        for (const char *s = v[i]; *s != '\0'; s++) {
            if (*s == '"' || *s == '\\')
                ok = ok && buf_adds(&text, "\\") == 0;
            ok = ok && buf_add(&text, s, 1) == 0;
        }
        ok = ok && buf_adds(&text, "\"") == 0;
    }
    ok = ok && buf_adds(&text, "}") == 0;
    if (!ok)
        q->failed = true;
    else if (!q->failed)
        add_escaped(q, PQescapeLiteral(c->pg, text.p, text.len));
    db_sql_add(q, "::pg_catalog.text[]");
    buf_free(&text);
}

void db_sql_dataset(db_sql *q, db_conn *c, const char *alias, const char *column, const char *type,
                    const char **cast)
{
    bool text = type == NULL || strcmp(type, "text") == 0 || strcmp(type, "character varying") == 0;

    db_sql_add(q, alias);
    db_sql_ident(q, c, column);
    *cast = "";
    if (!text && strcmp(type, "character") == 0)
        *cast = "::pg_catalog.bpchar[]";
    else if (!text)
        db_sql_add(q, "::pg_catalog.text");
}

void db_sql_free(db_sql *q)
{
    buf_free(&q->b);
    q->failed = false;
}

int db_sql_command(db_conn *c, db_sql *q, int n, const char *const *params, owl_err *err, const char *what)
{
    int rc;

    if (q->failed) {
        db_sql_free(q);
        return err_set(err, OWL_ERUNTIME, "out of memory building SQL");
    }
    rc = db_command(c, q->b.p, n, params, err, what);
    db_sql_free(q);
    return rc;
}

PGresult *db_sql_query(db_conn *c, db_sql *q, int n, const char *const *params, owl_err *err,
                       const char *what)
{
    PGresult *res;

    if (q->failed) {
        db_sql_free(q);
        err_set(err, OWL_ERUNTIME, "out of memory building SQL");
        return NULL;
    }
    res = db_query(c, q->b.p, n, params, err, what);
    db_sql_free(q);
    return res;
}

void db_lib_version(char *buf, size_t size)
{
    int v = PQlibVersion();

    /* 10 and later: major * 10000 + minor; before: major * 10000 + minor * 100 + patch */
    if (v >= 100000)
        snprintf(buf, size, "libpq %d.%d", v / 10000, v % 10000);
    else
        snprintf(buf, size, "libpq %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
}
