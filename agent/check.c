/* owlsync check: the checks of `owlsync check`, each reading what it needs
 * through the catalog, ledger and keys modules and changing nothing. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "owlsync/catalog.h"
#include "owlsync/check.h"
#include "owlsync/cron.h"
#include "owlsync/keys.h"
#include "owlsync/ledger.h"

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Schedules parse, outboxes are directories, trusted keys load, the inbox is a
 * directory. */
static int check_local(const cfg *c, FILE *out, owl_err *err)
{
    keys_trust trust = {NULL, 0};

    for (size_t i = 0; i < c->nexports; i++) {
        const cfg_export *ex = &c->exports[i];
        cron_expr ce;
        if (ex->schedule != NULL && cron_parse(ex->schedule, &ce, err) < 0)
            return err_prefix(err, "%s:%d: [export %s] schedule", c->path, ex->line, ex->name);
        for (size_t k = 0; k < ex->outbox.n; k++) {
            if (!is_dir(ex->outbox.v[k]))
                return err_set(err, OWL_ERUNTIME, "[export %s] outbox %s is not a directory", ex->name, ex->outbox.v[k]);
        }
    }
    if (!c->import.present)
        return 0;
    for (size_t i = 0; i < c->import.ntrusted; i++) {
        const cfg_trusted_key *k = &c->import.trusted[i];
        if (keys_trust_add(&trust, k->environment, k->key, err) < 0) {
            keys_trust_free(&trust);
            return err_prefix(err, "%s:%d: [import] trusted_key", c->path, k->line);
        }
    }
    fprintf(out, "ok: %zu trusted key(s)\n", trust.n);
    keys_trust_free(&trust);
    if (c->import.inbox != NULL && !is_dir(c->import.inbox))
        return err_set(err, OWL_ERUNTIME, "[import] inbox %s is not a directory", c->import.inbox);
    return 0;
}

/* Every job's signing key loads; every table exists with its columns and this
 * role may read it. */
static int check_source(const cfg *c, FILE *out, owl_err *err)
{
    db_conn *conn = NULL;
    int rc = -1;

    for (size_t i = 0; i < c->nexports; i++) {
        keys_secret *sk = NULL;
        if (c->exports[i].signing_key == NULL)
            return err_set(err, OWL_EUSAGE, "[export %s] has no signing_key", c->exports[i].name);
        if (keys_load_secret(c->exports[i].signing_key, &sk, err) < 0)
            return err_prefix(err, "[export %s] signing_key", c->exports[i].name);
        keys_secret_free(sk);
        fprintf(out, "ok: [export %s] signing key %s\n", c->exports[i].name, c->exports[i].signing_key);
    }
    if (db_open(c->conninfo, "the source database", &conn, err) < 0)
        return -1;
    fprintf(out, "ok: connected to the source database\n");
    for (size_t i = 0; i < c->ntables; i++) {
        const cfg_table *t = &c->tables[i];
        catalog_table ct;
        size_t travel = 0;
        bool exists, can;

        if (catalog_columns(conn, c->schema, t->name, &ct, err) < 0)
            goto out;
        if (ct.ncolumns == 0) {
            err_set(err, OWL_EUSAGE, "table %s.%s does not exist in the source database (or is not visible to this role)",
                    c->schema, t->name);
            goto out;
        }
        for (size_t g = 0; g < t->generated.n; g++) {
            if (catalog_find_column(&ct, t->generated.v[g]) == NULL) {
                err_set(err, OWL_EUSAGE, "[table %s] generated: column %s does not exist in %s.%s", t->name,
                        t->generated.v[g], c->schema, t->name);
                catalog_table_free(&ct);
                goto out;
            }
        }
        for (size_t k = 0; k < ct.ncolumns; k++)
            travel += !ct.columns[k].generated && !cfg_list_has(&t->generated, ct.columns[k].name);
        if (t->dataset_column[0] != '\0' &&
            (catalog_find_column(&ct, t->dataset_column) == NULL || cfg_list_has(&t->generated, t->dataset_column) ||
             catalog_find_column(&ct, t->dataset_column)->generated)) {
            err_set(err, OWL_EUSAGE, "[table %s] dataset_column: column %s does not exist in %s.%s", t->name,
                    t->dataset_column, c->schema, t->name);
            catalog_table_free(&ct);
            goto out;
        }
        catalog_table_free(&ct);
        if (catalog_table_privilege(conn, c->schema, t->name, "SELECT", &exists, &can, err) < 0)
            goto out;
        if (!can) {
            err_set(err, OWL_ERUNTIME, "permission denied: this role cannot SELECT from %s.%s\nHINT: sql/grants.sql shows the grants an exporting role needs",
                    c->schema, t->name);
            goto out;
        }
        fprintf(out, "ok: table %s.%s readable, %zu columns travel\n", c->schema, t->name, travel);
    }
    rc = 0;
out:
    db_close(conn);
    return rc;
}

/* The ledger exists or may be created; every table that may be imported
 * exists, this role may write it, and its configured key columns exist. */
static int check_target(const cfg *c, FILE *out, owl_err *err)
{
    db_conn *conn = NULL;
    bool present, can_create;
    int rc = -1;

    if (db_open(c->conninfo, "the target database", &conn, err) < 0)
        return -1;
    fprintf(out, "ok: connected to the target database\n");
    if (ledger_status(conn, &present, &can_create, err) < 0)
        goto out;
    if (!present && !can_create) {
        err_set(err, OWL_ERUNTIME, "the ledger (schema owlsync) does not exist and this role may not create it\nHINT: a DBA can create it with sql/ledger.sql");
        goto out;
    }
    fprintf(out, "ok: ledger %s\n", present ? "present" : "will be created on first import");
    for (size_t i = 0; i < c->ntables; i++) {
        const cfg_table *t = &c->tables[i];
        catalog_table ct;
        bool exists, can;

        if (c->import.tables.n > 0 && !cfg_list_has(&c->import.tables, t->name))
            continue;
        if (catalog_table_privilege(conn, c->schema, t->name, "SELECT, INSERT, UPDATE, DELETE", &exists, &can, err) < 0)
            goto out;
        if (!exists) {
            err_set(err, OWL_ERUNTIME, "table %s.%s does not exist in the target database", c->schema, t->name);
            goto out;
        }
        if (!can) {
            err_set(err, OWL_ERUNTIME, "permission denied: this role cannot SELECT, INSERT, UPDATE and DELETE on %s.%s\nHINT: sql/grants.sql shows the grants an importing role needs",
                    c->schema, t->name);
            goto out;
        }
        if (catalog_columns(conn, c->schema, t->name, &ct, err) < 0)
            goto out;
        for (size_t k = 0; k < t->key.n; k++) {
            if (catalog_find_column(&ct, t->key.v[k]) == NULL) {
                err_set(err, OWL_EUSAGE, "[table %s] key: column %s does not exist in %s.%s", t->name, t->key.v[k],
                        c->schema, t->name);
                catalog_table_free(&ct);
                goto out;
            }
        }
        catalog_table_free(&ct);
        fprintf(out, "ok: table %s.%s writable (mode %s)\n", c->schema, t->name, cfg_modes[t->mode].name);
    }
    rc = 0;
out:
    db_close(conn);
    return rc;
}

int check_run(const cfg *c, FILE *out, owl_err *err)
{
    if (check_local(c, out, err) < 0)
        return -1;
    if (c->nexports > 0 && check_source(c, out, err) < 0)
        return -1;
    if (c->import.present && check_target(c, out, err) < 0)
        return -1;
    return 0;
}
