/* owlsync check: the checks of `owlsync check`, each reading what it needs
 * through the catalog, ledger and keys modules and changing nothing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/bundle.h"
#include "owlsync/catalog.h"
#include "owlsync/check.h"
#include "owlsync/cron.h"
#include "owlsync/importer.h"
#include "owlsync/keys.h"
#include "owlsync/ledger.h"
#include "owlsync/policy.h"
#include "owlsync/rewrite.h"
#include "owlsync/source.h"
#include "owlsync/text.h"

/* One run of the checks: every check runs (those that need a database it
 * could not reach excepted), each recorded as one item in rep; the first
 * failure is what check_run reports. */
typedef struct chk {
    const cfg *c;
    check_report *rep;
    char *const *bundles; /* named on the command line: these replace the bundles at hand */
    size_t nbundles;
    bool nomem; /* an item could not be recorded */
} chk;

#define CHECK_ITEMS_MAX 1000000 /* items one run records */

/* Records one item (printing it to rep->out when set): its text formatted,
 * a "\nHINT: " in it split off as the hint. */
static void add(chk *k, check_status status, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void add(chk *k, check_status status, int code, const char *fmt, va_list ap)
{
    check_report *rep = k->rep;
    check_item item = {status, NULL, NULL, code};
    va_list cp;
    char *hint;
    int len;

    rep->warnings += status == CHECK_WARNING;
    rep->failed += status == CHECK_FAIL;
    va_copy(cp, ap);
    len = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (len < 0 || rep->n >= CHECK_ITEMS_MAX || (item.message = malloc((size_t)len + 1)) == NULL) {
        k->nomem = true;
        return;
    }
    vsnprintf(item.message, (size_t)len + 1, fmt, ap);
    if ((hint = strstr(item.message, "\nHINT: ")) != NULL) {
        *hint = '\0';
        item.hint = hint + strlen("\nHINT: ");
    }
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? 2 * rep->cap : 32;
        check_item *v = realloc(rep->items, cap * sizeof(*v));
        if (v == NULL) {
            free(item.message);
            k->nomem = true;
            return;
        }
        rep->items = v;
        rep->cap = cap;
    }
    rep->items[rep->n++] = item;
    if (rep->out != NULL)
        check_item_print(&item, rep->out);
}

static void ok(chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(chk *k, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add(k, CHECK_OK, 0, fmt, ap);
    va_end(ap);
}

static void warn(chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(chk *k, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add(k, CHECK_WARNING, 0, fmt, ap);
    va_end(ap);
}

static void fail_v(chk *k, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_v(chk *k, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add(k, CHECK_FAIL, code, fmt, ap);
    va_end(ap);
}

/* Records e (its hint apart) as a failure and keeps the first failure. */
static void fail(chk *k, const owl_err *e)
{
    int code = e->code != 0 ? e->code : OWL_ERUNTIME;

    if (k->rep->failed == 0) {
        k->rep->first = *e;
        k->rep->first.code = code;
    }
    fail_v(k, code, "%s", e->msg);
}

void check_item_print(const check_item *item, FILE *out)
{
    static const char *const label[] = {"ok", "warning", "FAIL"};

    fprintf(out, "%s: %s\n", label[item->status], item->message);
    if (item->hint != NULL)
        fprintf(out, "      HINT: %s\n", item->hint);
}

const char *check_status_name(check_status s)
{
    static const char *const name[] = {"ok", "warning", "fail"};

    return name[s];
}

void check_report_free(check_report *rep)
{
    for (size_t i = 0; i < rep->n; i++)
        free(rep->items[i].message);
    free(rep->items);
    rep->items = NULL;
    rep->n = rep->cap = 0;
}

/* ------------------------------------------------------------------ local */

/* Whether a file can be made and removed in directory path (a hidden name,
 * which no inbox scan takes). */
static int can_write_in(const char *path, owl_err *err)
{
    char probe[PATH_MAX];
    int fd;

    if (snprintf(probe, sizeof(probe), "%s/.owlsync-check.%ld", path, (long)getpid()) >= (int)sizeof(probe))
        return err_set(err, OWL_EUSAGE, "path too long: %s", path);
    fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(err, OWL_ERUNTIME, "%s is not writable: %s", path, strerror(errno));
    close(fd);
    if (unlink(probe) < 0)
        return err_set(err, OWL_ERUNTIME, "cannot remove %s: %s", probe, strerror(errno));
    return 0;
}

/* The directory path is in: "." for a bare name, "/" for one at the root. */
static void parent_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        snprintf(out, size, ".");
    else
        snprintf(out, size, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

/* A directory owlsync writes in: one that exists and takes a new file; or,
 * with create, a missing one whose parent takes it (owlsync makes it on
 * first use). *made says which. */
static int dir_writable(const char *path, bool create, bool *made, owl_err *err)
{
    char parent[PATH_MAX];
    struct stat st;

    *made = false;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return err_set(err, OWL_EUSAGE, "%s is not a directory", path);
        return can_write_in(path, err);
    }
    if (errno != ENOENT || !create)
        return err_set(err, OWL_ERUNTIME, "%s is not a directory: %s", path, strerror(errno));
    parent_of(path, parent, sizeof(parent));
    if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode))
        return err_set(err, OWL_ERUNTIME, "%s does not exist, nor does its parent directory %s", path, parent);
    *made = true;
    if (can_write_in(parent, err) < 0)
        return err_prefix(err, "%s does not exist and cannot be created", path);
    return 0;
}

/* One directory check line: ok, or FAIL prefixed with what it is. */
static void check_dir(chk *k, const char *what, const char *path, bool create)
{
    owl_err e;
    bool made;

    if (dir_writable(path, create, &made, &e) < 0) {
        err_prefix(&e, "%s", what);
        fail(k, &e);
    } else {
        ok(k, "%s %s %s", what, path, made ? "will be created (its parent is writable)" : "writable");
    }
}

/* Schedules parse; outboxes, state_dir, the metrics file's directory, the
 * inbox and its processed and quarantine directories take files; trusted and
 * encryption keys load. */
static void check_local(chk *k)
{
    const cfg *c = k->c;
    keys_trust trust = {NULL, 0, NULL, 0};
    owl_err e;

    for (size_t i = 0; i < c->nexports; i++) {
        const cfg_export *ex = &c->exports[i];
        char what[256];
        cron_expr ce;
        if (ex->schedule != NULL && cron_parse(ex->schedule, &ce, &e) < 0) {
            err_prefix(&e, "%s:%d: [export %s] schedule", c->path, ex->line, ex->name);
            fail(k, &e);
        }
        snprintf(what, sizeof(what), "[export %s] outbox", ex->name);
        for (size_t o = 0; o < ex->outbox.n; o++)
            check_dir(k, what, ex->outbox.v[o], false);
        for (size_t r = 0; r < ex->nencrypt_to; r++) {
            keys_box_public pub;
            if (keys_box_load_public(ex->encrypt_to[r].key, &pub, &e) < 0) {
                err_prefix(&e, "%s:%d: [export %s] encrypt_to", c->path, ex->encrypt_to[r].line, ex->name);
                fail(k, &e);
            } else {
                ok(k, "[export %s] encrypts to %s key %s", ex->name, ex->encrypt_to[r].environment, pub.id);
            }
        }
    }
    /* exports keep their sequence numbers there; the daemon its retries and
     * last failed import */
    if (c->nexports > 0 || (c->import.present && c->import.inbox != NULL))
        check_dir(k, "state_dir", c->state_dir, true);
    if (c->metrics_file != NULL) {
        char dir[PATH_MAX];
        bool made;
        parent_of(c->metrics_file, dir, sizeof(dir));
        if (dir_writable(dir, false, &made, &e) < 0) {
            err_prefix(&e, "metrics_file %s: its directory", c->metrics_file);
            fail(k, &e);
        } else {
            ok(k, "metrics_file %s: its directory is writable", c->metrics_file);
        }
    }
    if (!c->import.present)
        return;
    for (size_t i = 0; i < c->import.ntrusted; i++) {
        const cfg_trusted_key *t = &c->import.trusted[i];
        if (keys_trust_add(&trust, t->environment, t->key, &e) < 0) {
            err_prefix(&e, "%s:%d: [import] trusted_key", c->path, t->line);
            fail(k, &e);
        }
    }
    ok(k, "%zu trusted key(s)", trust.n);
    for (size_t i = 0; i < c->import.decrypt_key.n; i++) {
        keys_box_public pub;
        if (keys_trust_add_decrypt(&trust, c->import.decrypt_key.v[i], &e) < 0) {
            err_prefix(&e, "%s: [import] decrypt_key", c->path);
            fail(k, &e);
            continue;
        }
        keys_box_secret_public(trust.dec[trust.ndec - 1], &pub);
        ok(k, "decryption key %s (key id %s)", c->import.decrypt_key.v[i], pub.id);
    }
    keys_trust_free(&trust);
    if (c->import.inbox != NULL) {
        check_dir(k, "[import] inbox", c->import.inbox, false);
        if (c->import.processed_dir != NULL)
            check_dir(k, "[import] processed_dir", c->import.processed_dir, true);
        if (c->import.quarantine_dir != NULL)
            check_dir(k, "[import] quarantine_dir", c->import.quarantine_dir, true);
    }
}

/* ------------------------------------------------------------------ source */

/* One table of the source: it exists with its configured columns, and this
 * role may read it. */
static void check_source_table(chk *k, db_conn *conn, const cfg_table *t)
{
    const cfg *c = k->c;
    catalog_table ct;
    size_t travel = 0;
    char lacking[128];
    bool exists;
    owl_err e;

    if (catalog_columns(conn, c->schema, t->name, &ct, &e) < 0) {
        fail(k, &e);
        return;
    }
    if (ct.ncolumns == 0) {
        err_set(&e, OWL_EUSAGE, "table %s.%s does not exist in the source database (or is not visible to this role)",
                c->schema, t->name);
        goto out;
    }
    for (size_t g = 0; g < t->generated.n; g++) {
        if (catalog_find_column(&ct, t->generated.v[g]) == NULL) {
            err_set(&e, OWL_EUSAGE, "[table %s] generated: column %s does not exist in %s.%s", t->name,
                    t->generated.v[g], c->schema, t->name);
            goto out;
        }
    }
    for (size_t j = 0; j < ct.ncolumns; j++)
        travel += !ct.columns[j].generated && !cfg_list_has(&t->generated, ct.columns[j].name);
    if (t->dataset_column[0] != '\0' &&
        (catalog_find_column(&ct, t->dataset_column) == NULL || cfg_list_has(&t->generated, t->dataset_column) ||
         catalog_find_column(&ct, t->dataset_column)->generated)) {
        err_set(&e, OWL_EUSAGE, "[table %s] dataset_column: column %s does not exist in %s.%s", t->name,
                t->dataset_column, c->schema, t->name);
        goto out;
    }
    if (catalog_table_lacks(conn, c->schema, t->name, "SELECT", &exists, lacking, sizeof(lacking), &e) < 0)
        goto out;
    if (lacking[0] != '\0') {
        err_set(&e, OWL_EUSAGE, "permission denied: this role cannot SELECT from %s.%s\nHINT: sql/grants.sql shows the grants an exporting role needs",
                c->schema, t->name);
        goto out;
    }
    ok(k, "table %s.%s readable, %zu columns travel", c->schema, t->name, travel);
    catalog_table_free(&ct);
    return;
out:
    catalog_table_free(&ct);
    fail(k, &e);
}

/* Each name and pattern of each export job chooses at least one dataset of
 * the source (in the job's tables that hold datasets): one that chooses none
 * is a typo or a dataset gone. */
static void check_datasets(chk *k, db_conn *conn, const cfg_export *ex)
{
    const cfg *c = k->c;
    source_table *st = calloc(c->ntables ? c->ntables : 1, sizeof(*st));
    size_t n = 0, total = 0;
    bool bad = false;
    owl_err e;

    if (st == NULL) {
        err_oom(&e);
        fail(k, &e);
        return;
    }
    for (size_t i = 0; i < c->ntables; i++) {
        const cfg_table *t = &c->tables[i];
        if (t->dataset_column[0] != '\0' && (ex->tables.n == 0 || cfg_list_has(&ex->tables, t->name)))
            st[n++] = (source_table){t->name, t->dataset_column};
    }
    for (size_t i = 0; n > 0 && i < ex->datasets.n; i++) {
        char *const *one = &ex->datasets.v[i];
        bool pattern = strchr(*one, '%') != NULL;
        char **found = NULL;
        size_t nfound = 0;
        if (source_find_datasets(conn, c->schema, st, n, pattern ? NULL : one, pattern ? 0 : 1, pattern ? one : NULL,
                                 pattern ? 1 : 0, &found, &nfound, &e) < 0) {
            fail(k, &e);
            bad = true;
            break;
        }
        for (size_t f = 0; f < nfound; f++)
            free(found[f]);
        free(found);
        total += nfound;
        if (nfound == 0) {
            err_set(&e, OWL_EUSAGE, "%s:%d: [export %s] datasets: %s %s matches no dataset of %s in the source database",
                    c->path, ex->line, ex->name, pattern ? "pattern" : "name", *one, c->schema);
            err_hint(&e, "dataset names are the values of each table's dataset_column; LIKE patterns use %% and _");
            fail(k, &e);
            bad = true;
        }
    }
    if (!bad && n > 0)
        ok(k, "[export %s] datasets: each of %zu name(s) and pattern(s) matches (%zu match(es) in all)", ex->name,
           ex->datasets.n, total);
    free(st);
}

/* Every job's signing key loads; every table exists with its columns and this
 * role may read it; every job's datasets choose something. */
static void check_source(chk *k)
{
    const cfg *c = k->c;
    db_conn *conn = NULL;
    owl_err e;

    for (size_t i = 0; i < c->nexports; i++) {
        keys_secret *sk = NULL;
        if (c->exports[i].signing_key == NULL) {
            err_set(&e, OWL_EUSAGE, "[export %s] has no signing_key", c->exports[i].name);
            fail(k, &e);
        } else if (keys_load_secret(c->exports[i].signing_key, &sk, &e) < 0) {
            err_prefix(&e, "[export %s] signing_key", c->exports[i].name);
            fail(k, &e);
        } else {
            keys_secret_free(sk);
            ok(k, "[export %s] signing key %s", c->exports[i].name, c->exports[i].signing_key);
        }
    }
    if (db_open(c->conninfo, "the source database", &conn, &e) < 0) {
        fail(k, &e);
        return;
    }
    ok(k, "connected to the source database");
    for (size_t i = 0; i < c->ntables; i++)
        check_source_table(k, conn, &c->tables[i]);
    for (size_t i = 0; i < c->nexports; i++)
        check_datasets(k, conn, &c->exports[i]);
    db_close(conn);
}

/* ------------------------------------------------------------------ target */

#define NEWEST_SCAN_MAX 100000 /* directory entries looked at for bundles */
#define BUNDLES_COMPARED 16    /* newest bundles at hand read for their columns */

typedef struct at_hand {
    char path[PATH_MAX];
    struct timespec when;
    bool quarantined;
} at_hand;

/* The newest regular *.owlb files of dir (by mtime) into v (the newest first,
 * at most BUNDLES_COMPARED, *n of them); quarantined: dir is the quarantine. */
static void newest_in(const char *dir, bool quarantined, at_hand *v, size_t *n)
{
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    struct dirent *e;
    size_t seen = 0;

    while (d != NULL && (e = readdir(d)) != NULL && ++seen < NEWEST_SCAN_MAX) {
        size_t len = strlen(e->d_name), at;
        struct stat st;
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".owlb") != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        for (at = *n; at > 0; at--) {
            const struct timespec *w = &v[at - 1].when;
            if (w->tv_sec > st.st_mtim.tv_sec || (w->tv_sec == st.st_mtim.tv_sec && w->tv_nsec >= st.st_mtim.tv_nsec))
                break;
        }
        if (at >= BUNDLES_COMPARED)
            continue;
        if (*n < BUNDLES_COMPARED)
            (*n)++;
        memmove(&v[at + 1], &v[at], (*n - 1 - at) * sizeof(*v));
        snprintf(v[at].path, sizeof(v[at].path), "%s/%s", dir, e->d_name);
        v[at].when = st.st_mtim;
        v[at].quarantined = quarantined;
    }
    if (d != NULL)
        closedir(d);
}

/* The trusted and decryption keys of [import], as far as they load (those
 * that do not are check_local's failures). */
static void load_trust(const cfg *c, keys_trust *trust)
{
    owl_err e;

    for (size_t i = 0; i < c->import.ntrusted; i++) {
        if (keys_trust_add(trust, c->import.trusted[i].environment, c->import.trusted[i].key, &e) < 0)
            break;
    }
    for (size_t i = 0; i < c->import.decrypt_key.n; i++) {
        if (keys_trust_add_decrypt(trust, c->import.decrypt_key.v[i], &e) < 0)
            break;
    }
}

/* The columns of one table in a bundle against the target's: a column the
 * target lacks fails, as its import would; one that may not hold the
 * source's values is a warning. */
static void compare_table(chk *k, const char *path, const manifest_table *mt, const catalog_table *ct)
{
    size_t warnings = 0;
    owl_err e;

    for (size_t j = 0; j < mt->ncolumns; j++) {
        const catalog_column *col = catalog_find_column(ct, mt->columns[j].name);
        const char *lost = col != NULL ? catalog_narrower(mt->columns[j].type, col->type) : NULL;
        if (col == NULL) {
            err_set(&e, OWL_EUSAGE, "bundle column %s.%s (of %s) does not exist in the target table %s.%s", mt->name,
                    mt->columns[j].name, path, k->c->schema, mt->name);
            fail(k, &e);
            return;
        }
        if (lost != NULL) {
            warn(k, "%s.%s: the source's %s values %s in the target's %s", mt->name, mt->columns[j].name,
                 mt->columns[j].type, lost, col->type);
            warnings++;
        }
    }
    ok(k, "the columns of %s in %s fit the target%s", mt->name, path, warnings > 0 ? " (see the warnings)" : "");
}

/* The columns the source exports, as the newest bundles at hand (in the inbox,
 * processed/ or the quarantine, where a bundle whose columns the target
 * lacks waits) carry them, against the target's, table by table: each
 * importable table from the newest bundle that carries it. A quarantined
 * file that does not verify is passed over: it is there for that. */
static void check_columns(chk *k, const catalog_table *cats, const bool *importable)
{
    const cfg *c = k->c;
    at_hand *v = calloc(BUNDLES_COMPARED + 1, sizeof(*v));
    bool *done = calloc(c->ntables ? c->ntables : 1, sizeof(bool));
    keys_trust trust = {NULL, 0, NULL, 0};
    bundle_limits lim = {c->import.max_bundle_size, c->import.max_unpacked_size};
    size_t n = 0, left = 0;
    owl_err e;

    if (v == NULL || done == NULL) {
        err_oom(&e);
        fail(k, &e);
        goto out;
    }
    newest_in(c->import.inbox, false, v, &n);
    newest_in(c->import.processed_dir, false, v, &n);
    newest_in(c->import.quarantine_dir, true, v, &n);
    if (n == 0) {
        ok(k, "no bundle at hand to compare the source's columns with");
        goto out;
    }
    load_trust(c, &trust);
    for (size_t i = 0; i < c->ntables; i++)
        left += importable[i] && cats[i].ncolumns > 0;
    for (size_t b = 0; b < n && left > 0; b++) {
        bundle_reader *r = NULL;
        const manifest *m;
        if (bundle_open(v[b].path, &lim, &trust, &r, &e) < 0) {
            if (!v[b].quarantined)
                warn(k, "cannot compare columns with %s: %s", v[b].path, e.msg);
            continue;
        }
        m = bundle_manifest(r);
        for (size_t i = 0; i < m->ntables; i++) {
            for (size_t t = 0; t < c->ntables; t++) {
                if (done[t] || !importable[t] || cats[t].ncolumns == 0 ||
                    strcmp(c->tables[t].name, m->tables[i].name) != 0)
                    continue;
                compare_table(k, v[b].path, &m->tables[i], &cats[t]);
                done[t] = true;
                left--;
            }
        }
        bundle_close(r);
    }
    if (left > 0)
        ok(k, "%zu table(s) in no bundle at hand: their columns are compared on import", left);
out:
    keys_trust_free(&trust);
    free(done);
    free(v);
}

/* The import of the bundle at path, as a dry run (every statement, then a
 * rollback: nothing is kept, no sequence moves): what the columns alone
 * cannot tell, a value the target's type, constraint or trigger refuses. */
static void try_import(chk *k, const char *path, const keys_trust *trust)
{
    importer_opts opts = {.dry_run = true};
    importer_result res;
    rewrite_set *rs = NULL;
    uint64_t changed = 0;
    owl_err e;

    memset(&res, 0, sizeof(res));
    if (rewrite_compile(k->c, &rs, &e) < 0 || importer_run(k->c, trust, rs, path, &opts, &res, &e) < 0) {
        err_prefix(&e, "%s: a dry run of its import fails", path);
        fail(k, &e);
    } else if (res.status == IMPORT_ALREADY) {
        ok(k, "%s: already imported", path);
    } else if (res.status == IMPORT_SUPERSEDED) {
        ok(k, "%s: a dry run of its import passes: superseded, nothing would be applied", path);
    } else {
        for (size_t i = 0; i < res.ntables; i++)
            changed += res.tables[i].n.inserted + res.tables[i].n.updated + res.tables[i].n.deleted;
        ok(k, "%s: a dry run of its import passes (%llu row(s) would change), rolled back", path,
           (unsigned long long)changed);
    }
    importer_result_free(&res);
    rewrite_set_free(rs);
}

/* Each bundle named: verified completely (signature, trusted key, every
 * hash, limits) as an import would, then the policy an import applies to
 * it, then the columns of every table it carries against the target's, and
 * when all that passed a dry run of its import (when the target was
 * reached). */
static void check_named(chk *k, const catalog_table *cats, const bool *importable, bool reached)
{
    const cfg *c = k->c;
    keys_trust trust = {NULL, 0, NULL, 0};
    bundle_limits lim = {c->import.max_bundle_size, c->import.max_unpacked_size};
    owl_err e;

    load_trust(c, &trust);
    for (size_t b = 0; b < k->nbundles; b++) {
        const char *path = k->bundles[b];
        size_t failed = k->rep->failed;
        bundle_reader *r = NULL;
        const manifest *m;
        if (bundle_open(path, &lim, &trust, &r, &e) < 0 || bundle_verify_rest(r, &e) < 0) {
            err_prefix(&e, "%s", path);
            fail(k, &e);
            bundle_close(r);
            continue;
        }
        m = bundle_manifest(r);
        ok(k, "%s: verified, bundle %llu of %s/%s (%zu table(s)), signed by key %s", path,
           (unsigned long long)m->sequence, m->environment, m->job, m->ntables, m->key_id);
        if (policy_check(c, m, text_now_usec(), &e) < 0) {
            err_prefix(&e, "%s", path);
            fail(k, &e);
        }
        if (!reached)
            ok(k, "%s: its columns are not compared: the target database was not reached", path);
        for (size_t i = 0; reached && i < m->ntables; i++) {
            const cfg_table *t = cfg_find_table(c, m->tables[i].name);
            size_t at = t != NULL ? (size_t)(t - c->tables) : 0;
            /* a table the policy refuses was named above; one whose target
             * table failed its own check has nothing to compare with */
            if (t != NULL && importable[at] && cats[at].ncolumns > 0)
                compare_table(k, path, &m->tables[i], &cats[at]);
        }
        bundle_close(r);
        if (reached && k->rep->failed == failed)
            try_import(k, path, &trust);
    }
    keys_trust_free(&trust);
}

/* The ledger: whole and granted as the import uses it, or missing and this
 * role may create it. */
static void check_ledger(chk *k, db_conn *conn)
{
    ledger_access a;
    owl_err e;

    if (ledger_access_of(conn, &a, &e) < 0) {
        fail(k, &e);
        return;
    }
    if (!a.complete && !a.can_create) {
        err_set(&e, OWL_EUSAGE, "the ledger lacks %s, and role %s may not create it in database %s", a.missing,
                a.role, a.database);
        ledger_hint(&a, &e);
        fail(k, &e);
        return;
    }
    if (a.lacking[0] != '\0') {
        err_set(&e, OWL_EUSAGE, "permission denied: role %s lacks %s (the ledger)", a.role, a.lacking);
        err_hint(&e, "sql/grants.sql grants the import role what it needs on the ledger");
        fail(k, &e);
        return;
    }
    if (!a.complete)
        ok(k, "ledger lacks %s: role %s will create it on first import", a.missing, a.role);
    else
        ok(k, "ledger present, role %s may read and write it as an import does", a.role);
}

/* What an import of table t needs: the table with its key columns, the
 * privileges its mode uses, and those on the sequences behind its columns. */
static void check_target_table(chk *k, db_conn *conn, const cfg_table *t, catalog_table *ct)
{
    const cfg *c = k->c;
    const cfg_mode_info *mode = &cfg_modes[t->mode];
    char privs[64], lacking[256], seqs[512] = "";
    bool exists;
    owl_err e;

    snprintf(privs, sizeof(privs), "SELECT%s%s%s", mode->inserts ? ",INSERT" : "", mode->updates ? ",UPDATE" : "",
             mode->deletes ? ",DELETE" : "");
    if (catalog_table_lacks(conn, c->schema, t->name, privs, &exists, lacking, sizeof(lacking), &e) < 0) {
        fail(k, &e);
        return;
    }
    if (!exists) {
        err_set(&e, OWL_ERUNTIME, "table %s.%s does not exist in the target database", c->schema, t->name);
        fail(k, &e);
        return;
    }
    if (lacking[0] != '\0') {
        err_set(&e, OWL_EUSAGE, "permission denied: this role lacks %s on %s.%s (mode %s)\nHINT: sql/grants.sql shows the grants an importing role needs",
                lacking, c->schema, t->name, mode->name);
        fail(k, &e);
        return;
    }
    if (catalog_columns(conn, c->schema, t->name, ct, &e) < 0) {
        fail(k, &e);
        return;
    }
    for (size_t j = 0; j < t->key.n; j++) {
        if (catalog_find_column(ct, t->key.v[j]) == NULL) {
            err_set(&e, OWL_EUSAGE, "[table %s] key: column %s does not exist in %s.%s", t->name, t->key.v[j],
                    c->schema, t->name);
            fail(k, &e);
            return;
        }
    }
    /* A column the target assigns calls nextval (USAGE); explicit values move
     * the sequence past them (setval: UPDATE; reading it: SELECT or USAGE). */
    for (size_t j = 0; j < ct->ncolumns; j++) {
        const catalog_column *col = &ct->columns[j];
        bool assigned = cfg_list_has(&t->generated, col->name);
        for (size_t s = 0; s < col->nsequences && (assigned || col->serial) && !col->generated; s++) {
            char lack[64];
            if (catalog_sequence_lacks(conn, col->sequences[s].oid, assigned ? "USAGE" : "UPDATE,SELECT|USAGE", lack,
                                       sizeof(lack), &e) < 0) {
                fail(k, &e);
                return;
            }
            if (lack[0] != '\0')
                snprintf(seqs + strlen(seqs), sizeof(seqs) - strlen(seqs), "%s%s on sequence %s",
                         seqs[0] != '\0' ? ", " : "", lack, col->sequences[s].name);
        }
    }
    if (seqs[0] != '\0') {
        err_set(&e, OWL_EUSAGE, "permission denied: this role lacks %s (of %s.%s)\nHINT: sql/grants.sql shows the grants an importing role needs",
                seqs, c->schema, t->name);
        fail(k, &e);
        return;
    }
    ok(k, "table %s.%s writable (mode %s)", c->schema, t->name, mode->name);
}

/* Every [rewrite] column names a column of the target. */
static void check_rewrites(chk *k, const catalog_table *cats)
{
    const cfg *c = k->c;
    rewrite_columns *rc = calloc(c->ntables ? c->ntables : 1, sizeof(*rc));
    const char **names = NULL;
    size_t total = 0, at = 0;
    owl_err e;

    if (c->nrewrites == 0) {
        free(rc);
        return;
    }
    for (size_t i = 0; i < c->ntables; i++)
        total += cats[i].ncolumns;
    names = calloc(total ? total : 1, sizeof(*names));
    if (rc == NULL || names == NULL) {
        err_oom(&e);
        fail(k, &e);
        goto out;
    }
    for (size_t i = 0; i < c->ntables; i++) {
        rc[i] = (rewrite_columns){c->tables[i].name, &names[at], cats[i].ncolumns};
        for (size_t j = 0; j < cats[i].ncolumns; j++)
            names[at++] = cats[i].columns[j].name;
    }
    if (rewrite_bind(c, rc, c->ntables, false, &e) < 0)
        fail(k, &e);
    else
        ok(k, "%zu [rewrite] rule(s): every column named exists in the target", c->nrewrites);
out:
    free(names);
    free(rc);
}

/* The role's session (TEMP for staging tables, USAGE on the schema), the
 * ledger, every table that may be imported, the rewrites' columns, and the
 * columns of the bundles named, or else of the bundles at hand. */
static void check_target(chk *k)
{
    const cfg *c = k->c;
    catalog_table *cats = calloc(c->ntables ? c->ntables : 1, sizeof(*cats));
    bool *importable = calloc(c->ntables ? c->ntables : 1, sizeof(bool));
    db_conn *conn = NULL;
    bool temp, usage, reached = false;
    owl_err e;

    if (cats == NULL || importable == NULL) {
        err_oom(&e);
        fail(k, &e);
        goto out;
    }
    for (size_t i = 0; i < c->ntables; i++)
        importable[i] = c->import.tables.n == 0 || cfg_list_has(&c->import.tables, c->tables[i].name);
    if (db_open(c->conninfo, "the target database", &conn, &e) < 0) {
        fail(k, &e);
        goto compare;
    }
    ok(k, "connected to the target database");
    if (catalog_session_access(conn, c->schema, &temp, &usage, &e) < 0) {
        fail(k, &e);
        goto compare;
    }
    reached = true;
    if (!usage) {
        err_set(&e, OWL_EUSAGE, "permission denied: this role lacks USAGE on schema %s (or it does not exist)",
                c->schema);
        fail(k, &e);
    }
    if (!temp) {
        err_set(&e, OWL_EUSAGE, "permission denied: this role lacks TEMP on the database: an import stages rows in temporary tables\nHINT: GRANT TEMPORARY ON DATABASE ... TO the import role (sql/grants.sql)");
        fail(k, &e);
    }
    if (usage && temp)
        ok(k, "USAGE on schema %s, TEMP on the database", c->schema);
    check_ledger(k, conn);
    for (size_t i = 0; i < c->ntables; i++) {
        const cfg_table *t = &c->tables[i];
        if (importable[i])
            check_target_table(k, conn, t, &cats[i]);
        else if (c->nrewrites > 0 && catalog_columns(conn, c->schema, t->name, &cats[i], &e) < 0)
            fail(k, &e);
    }
    check_rewrites(k, cats);
compare:
    if (k->nbundles > 0)
        check_named(k, cats, importable, reached);
    else if (reached)
        check_columns(k, cats, importable);
out:
    for (size_t i = 0; cats != NULL && i < c->ntables; i++)
        catalog_table_free(&cats[i]);
    free(cats);
    free(importable);
    db_close(conn);
}

int check_run(const cfg *c, char *const *bundles, size_t nbundles, check_report *rep, owl_err *err)
{
    chk k;

    memset(&k, 0, sizeof(k));
    k.c = c;
    k.rep = rep;
    k.bundles = bundles;
    k.nbundles = nbundles;
    ok(&k, "config %s (environment %s)", c->path, c->environment);
    check_local(&k);
    if (c->nexports > 0)
        check_source(&k);
    if (c->import.present)
        check_target(&k);
    if (k.nomem) {
        owl_err e;
        err_oom(&e);
        if (rep->failed++ == 0)
            rep->first = e;
    }
    if (rep->failed == 0)
        return 0;
    *err = rep->first;
    return -1;
}
