/* owlsync check: the checks of `owlsync check`, each reading what it needs
 * through the catalog, ledger and keys modules and changing nothing. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/bundle.h"
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
    keys_trust trust = {NULL, 0, NULL, 0};

    for (size_t i = 0; i < c->nexports; i++) {
        const cfg_export *ex = &c->exports[i];
        cron_expr ce;
        if (ex->schedule != NULL && cron_parse(ex->schedule, &ce, err) < 0)
            return err_prefix(err, "%s:%d: [export %s] schedule", c->path, ex->line, ex->name);
        for (size_t k = 0; k < ex->outbox.n; k++) {
            if (!is_dir(ex->outbox.v[k]))
                return err_set(err, OWL_ERUNTIME, "[export %s] outbox %s is not a directory", ex->name, ex->outbox.v[k]);
        }
        for (size_t k = 0; k < ex->nencrypt_to; k++) {
            keys_box_public pub;
            if (keys_box_load_public(ex->encrypt_to[k].key, &pub, err) < 0)
                return err_prefix(err, "%s:%d: [export %s] encrypt_to", c->path, ex->encrypt_to[k].line, ex->name);
            fprintf(out, "ok: [export %s] encrypts to %s key %s\n", ex->name, ex->encrypt_to[k].environment, pub.id);
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
    for (size_t i = 0; i < c->import.decrypt_key.n; i++) {
        keys_box_public pub;
        if (keys_trust_add_decrypt(&trust, c->import.decrypt_key.v[i], err) < 0) {
            keys_trust_free(&trust);
            return err_prefix(err, "%s: [import] decrypt_key", c->path);
        }
        keys_box_secret_public(trust.dec[trust.ndec - 1], &pub);
        fprintf(out, "ok: decryption key %s (key id %s)\n", c->import.decrypt_key.v[i], pub.id);
    }
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

#define NEWEST_SCAN_MAX 100000 /* directory entries looked at for the newest bundle */

/* The newest regular *.owlb file of dir (by mtime) into best, when newer than *when. */
static void newest_in(const char *dir, char *best, size_t size, struct timespec *when)
{
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    struct dirent *e;
    size_t seen = 0;

    while (d != NULL && (e = readdir(d)) != NULL && ++seen < NEWEST_SCAN_MAX) {
        size_t len = strlen(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".owlb") != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (st.st_mtim.tv_sec > when->tv_sec ||
            (st.st_mtim.tv_sec == when->tv_sec && st.st_mtim.tv_nsec > when->tv_nsec)) {
            *when = st.st_mtim;
            snprintf(best, size, "%s/%s", dir, e->d_name);
        }
    }
    if (d != NULL)
        closedir(d);
}

/* The columns of the newest bundle at hand (in the inbox or processed/),
 * against the target's: a column the target lacks fails, as its import would;
 * one that may not hold the source's values is a warning. */
static int check_columns(const cfg *c, db_conn *conn, FILE *out, owl_err *err)
{
    char path[PATH_MAX] = "";
    struct timespec when = {0, 0};
    keys_trust trust = {NULL, 0, NULL, 0};
    bundle_limits lim = {c->import.max_bundle_size, c->import.max_unpacked_size};
    bundle_reader *r = NULL;
    const manifest *m;
    size_t warnings = 0;
    owl_err berr;
    int rc = -1;

    newest_in(c->import.inbox, path, sizeof(path), &when);
    newest_in(c->import.processed_dir, path, sizeof(path), &when);
    if (path[0] == '\0') {
        fprintf(out, "ok: no bundle at hand to compare column types with\n");
        return 0;
    }
    for (size_t i = 0; i < c->import.ntrusted; i++) {
        if (keys_trust_add(&trust, c->import.trusted[i].environment, c->import.trusted[i].key, &berr) < 0)
            break;
    }
    for (size_t i = 0; i < c->import.decrypt_key.n; i++) {
        if (keys_trust_add_decrypt(&trust, c->import.decrypt_key.v[i], &berr) < 0)
            break;
    }
    if (bundle_open(path, &lim, &trust, &r, &berr) < 0) {
        fprintf(out, "warning: cannot compare column types with %s: %s\n", path, berr.msg);
        rc = 0;
        goto out;
    }
    m = bundle_manifest(r);
    for (size_t i = 0; i < m->ntables; i++) {
        const manifest_table *mt = &m->tables[i];
        catalog_table ct;
        if (cfg_find_table(c, mt->name) == NULL)
            continue;
        if (catalog_columns(conn, c->schema, mt->name, &ct, err) < 0)
            goto out;
        for (size_t j = 0; j < mt->ncolumns && ct.ncolumns > 0; j++) {
            const catalog_column *col = catalog_find_column(&ct, mt->columns[j].name);
            const char *lost = col != NULL ? catalog_narrower(mt->columns[j].type, col->type) : NULL;
            if (col == NULL) {
                err_set(err, OWL_EUSAGE, "bundle column %s.%s (of %s) does not exist in the target table %s.%s",
                        mt->name, mt->columns[j].name, path, c->schema, mt->name);
                catalog_table_free(&ct);
                goto out;
            }
            if (lost != NULL) {
                fprintf(out, "warning: %s.%s: the source's %s values %s in the target's %s\n", mt->name,
                        mt->columns[j].name, mt->columns[j].type, lost, col->type);
                warnings++;
            }
        }
        catalog_table_free(&ct);
    }
    fprintf(out, "ok: the columns of %s fit the target%s\n", path, warnings > 0 ? " (see the warnings)" : "");
    rc = 0;
out:
    bundle_close(r);
    keys_trust_free(&trust);
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
    if (check_columns(c, conn, out, err) < 0)
        goto out;
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
