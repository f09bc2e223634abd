/* owlsync import: applies one bundle file to the target database, all or nothing,
 * and reports per table (and with --dry-run per dataset that changes) what changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "owlsync/cmd.h"
#include "owlsync/importer.h"
#include "owlsync/log.h"
#include "owlsync/manifest.h"
#include "owlsync/text.h"

static const char import_usage[] =
    "usage: owlsync [-c FILE] import [--dry-run] [--json] [--all-datasets] [--allow-rollback] BUNDLE\n"
    "\n"
    "Verifies BUNDLE (signature, key trusted for its environment, hashes, limits),\n"
    "checks policy (expiry, targets, allowed tables, rollback), then applies every\n"
    "table in one transaction together with a ledger row. Any failure rolls back\n"
    "everything. Importing the same bundle again says \"already imported\" (exit 0).\n"
    "The report has a row per table and, under it, the datasets that change (the\n"
    "first 20 of each table; a dataset's UNCHANGED shows - except in a dry run).\n"
    "\n"
    "  --dry-run         do all of it, report, then roll back\n"
    "  --json            print the report as JSON (every dataset of every table;\n"
    "                    on failure: file, status \"failed\", exit_code, error)\n"
    "  --all-datasets    report every dataset of every table, changed or not\n"
    "  --allow-rollback  apply a bundle older than what the database holds\n"
    "\n"
    "exit codes: 0 imported or already imported, 1 runtime failure, 2 usage or\n"
    "configuration error, 3 bundle failed verification, 4 refused by policy\n";

static void add_counts(json_t *obj, const importer_counts *n)
{
    json_object_set_new(obj, "inserted", json_integer((json_int_t)n->inserted));
    json_object_set_new(obj, "updated", json_integer((json_int_t)n->updated));
    json_object_set_new(obj, "deleted", json_integer((json_int_t)n->deleted));
    json_object_set_new(obj, "unchanged", json_integer((json_int_t)n->unchanged));
}

static const char *status_name(importer_status s)
{
    return s == IMPORT_ALREADY ? "already_imported"
           : s == IMPORT_SUPERSEDED ? "superseded"
           : s == IMPORT_DRY_RUN ? "dry_run"
                                 : "imported";
}

static void print_json(const char *path, const importer_result *res)
{
    json_t *root = json_object(), *tables = json_array();

    json_object_set_new(root, "file", json_string(path));
    json_object_set_new(root, "status", json_string(status_name(res->status)));
    json_object_set_new(root, "bundle_id", json_string(res->bundle_id));
    json_object_set_new(root, "environment", json_string(res->environment ? res->environment : ""));
    json_object_set_new(root, "job", json_string(res->job ? res->job : ""));
    json_object_set_new(root, "sequence", json_integer((json_int_t)res->sequence));
    if (res->status == IMPORT_SUPERSEDED)
        json_object_set_new(root, "superseded_by", json_string(res->superseded));
    for (size_t i = 0; res->status != IMPORT_ALREADY && res->status != IMPORT_SUPERSEDED && i < res->ntables; i++) {
        const importer_table *t = &res->tables[i];
        json_t *jt = json_pack("{s:s, s:s, s:I}", "name", t->name, "mode", t->mode ? t->mode : "", "rows",
                               (json_int_t)t->rows);
        json_t *ds = json_array();
        add_counts(jt, &t->n);
        for (size_t d = 0; d < t->ndatasets; d++) {
            json_t *jd = json_pack("{s:s}", "dataset", t->datasets[d].dataset);
            add_counts(jd, &t->datasets[d].n);
            json_array_append_new(ds, jd);
        }
        json_object_set_new(jt, "datasets", ds);
        if (res->nrules > 0) {
            json_t *rw = json_object();
            for (size_t k = 0; k < res->nrules; k++) {
                if (t->covered[k])
                    json_object_set_new(rw, res->rules[k], json_integer((json_int_t)t->rewritten[k]));
            }
            json_object_set_new(jt, "rewrites", rw);
        }
        json_array_append_new(tables, jt);
    }
    json_object_set_new(root, "tables", tables);
    if (res->status != IMPORT_ALREADY && res->status != IMPORT_SUPERSEDED) {
        /* every rule, with what it changed in all (0 when nothing, or when the
         * bundle carries none of its columns) and per table it covers */
        json_t *rules = json_array();
        for (size_t k = 0; k < res->nrules; k++) {
            json_t *per = json_object();
            uint64_t total = 0;
            for (size_t i = 0; i < res->ntables; i++) {
                if (!res->tables[i].covered[k])
                    continue;
                total += res->tables[i].rewritten[k];
                json_object_set_new(per, res->tables[i].name, json_integer((json_int_t)res->tables[i].rewritten[k]));
            }
            json_array_append_new(rules, json_pack("{s:s, s:I, s:o}", "rule", res->rules[k], "changed",
                                                   (json_int_t)total, "tables", per));
        }
        json_object_set_new(root, "rewrites", rules);
    }
    {
        json_t *sq = json_array();
        for (size_t i = 0; i < res->nsequences; i++)
            json_array_append_new(sq, json_pack("{s:s, s:I, s:I}", "name", res->sequences[i].name, "from",
                                                (json_int_t)res->sequences[i].from, "to",
                                                (json_int_t)res->sequences[i].to));
        json_object_set_new(root, "sequences", sq);
    }
    {
        json_t *w = json_array();
        for (size_t i = 0; i < res->nwarnings; i++)
            json_array_append_new(w, json_string(res->warnings[i]));
        json_object_set_new(root, "warnings", w);
    }
    cmd_print_json(root);
}

/* Datasets of a table that a report shows at most, of those that change. */
#define REPORT_DATASETS_SHOWN 20

/* A row of counts; unchanged false leaves that count out ("-"): a plain
 * import does not count its unchanged rows per dataset. */
static void print_counts_row(const char *indent, const char *name, const importer_counts *n, bool unchanged)
{
    char left[24];

    if (unchanged)
        snprintf(left, sizeof(left), "%llu", (unsigned long long)n->unchanged);
    else
        snprintf(left, sizeof(left), "-");
    printf("  %s%-*s %10llu %10llu %10llu %10s\n", indent, 28 - (int)strlen(indent), name,
           (unsigned long long)n->inserted, (unsigned long long)n->updated, (unsigned long long)n->deleted, left);
}

static bool changes(const importer_counts *n)
{
    return n->inserted > 0 || n->updated > 0 || n->deleted > 0;
}

/* One dataset's row under its table: the name (untrusted text, cleaned) in
 * full, on a line of its own when it is longer than the column. */
static void print_dataset_row(const importer_dataset *d, bool unchanged)
{
    char clean[4 * MANIFEST_TEXT_MAX + 8];

    text_clean(d->dataset[0] ? d->dataset : "(all)", MANIFEST_TEXT_MAX, clean, sizeof(clean));
    if (strlen(clean) > 26) {
        printf("    %s\n", clean);
        clean[0] = '\0';
    }
    print_counts_row("  ", clean, &d->n, unchanged);
}

/* The datasets of a table: every one when all, else those that change, at
 * most REPORT_DATASETS_SHOWN and then how many more. The table's own row
 * already says what a global table ("" only) does. */
static void print_datasets(const importer_table *t, bool all, bool unchanged)
{
    size_t shown = 0, more = 0;

    for (size_t d = 0; d < t->ndatasets; d++) {
        const importer_dataset *ds = &t->datasets[d];
        if (!all && (!changes(&ds->n) || ds->dataset[0] == '\0'))
            continue;
        if (!all && shown == REPORT_DATASETS_SHOWN) {
            more++;
            continue;
        }
        print_dataset_row(ds, unchanged);
        shown++;
    }
    if (more > 0) {
        char count[TEXT_COUNT_MAX];
        printf("    … and %s more datasets change here (--all-datasets lists every dataset)\n",
               text_count(more, count, sizeof(count)));
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* How many distinct datasets change in some table (0 when the counts are not
 * per dataset, or on no memory: the line is then left out). */
static size_t changed_datasets(const importer_result *res)
{
    const char **names;
    size_t n = 0, distinct = 0, cap = 0;

    for (size_t i = 0; i < res->ntables; i++)
        cap += res->tables[i].ndatasets;
    if (cap == 0 || (names = malloc(cap * sizeof(*names))) == NULL)
        return 0;
    for (size_t i = 0; i < res->ntables; i++) {
        for (size_t d = 0; d < res->tables[i].ndatasets; d++) {
            const importer_dataset *ds = &res->tables[i].datasets[d];
            if (ds->dataset[0] != '\0' && changes(&ds->n))
                names[n++] = ds->dataset;
        }
    }
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || strcmp(names[i - 1], names[i]) != 0;
    free(names);
    return distinct;
}

/* The report for a person: a row per table, under it the datasets that
 * change (every dataset with all), and how many datasets change; per_dataset
 * when their unchanged rows were counted too. */
static void print_text(const char *path, const importer_result *res, bool all, bool per_dataset)
{
    if (res->status == IMPORT_ALREADY) {
        printf("%s: already imported (bundle %s, %s/%s sequence %llu); nothing to do\n", path, res->bundle_id,
               res->environment, res->job, (unsigned long long)res->sequence);
        return;
    }
    if (res->status == IMPORT_SUPERSEDED) {
        printf("%s: superseded (bundle %s, %s/%s sequence %llu): the database holds newer data of all its datasets "
               "and tables; nothing applied\n  %s\n",
               path, res->bundle_id, res->environment, res->job, (unsigned long long)res->sequence, res->superseded);
        return;
    }
    printf("%s: %s bundle %llu of %s/%s (%zu datasets) in %.2f s\n", path,
           res->status == IMPORT_DRY_RUN ? "dry run of" : "imported", (unsigned long long)res->sequence,
           res->environment, res->job, res->ndatasets, res->seconds);
    printf("  %-28s %10s %10s %10s %10s\n", "TABLE", "INSERTED", "UPDATED", "DELETED", "UNCHANGED");
    for (size_t i = 0; i < res->ntables; i++) {
        const importer_table *t = &res->tables[i];
        print_counts_row("", t->name, &t->n, true);
        print_datasets(t, all, per_dataset);
    }
    {
        char changed[TEXT_COUNT_MAX], total[TEXT_COUNT_MAX];
        printf("  %s of %s datasets %s\n", text_count(changed_datasets(res), changed, sizeof(changed)),
               text_count(res->ndatasets, total, sizeof(total)),
               res->status == IMPORT_DRY_RUN ? "would change" : "changed");
    }
    for (size_t k = 0; k < res->nrules; k++) {
        bool any = false;
        for (size_t i = 0; i < res->ntables; i++) {
            if (!res->tables[i].covered[k])
                continue;
            if (!any)
                printf("  [rewrite %s] changed:", res->rules[k]);
            printf(" %s %llu", res->tables[i].name, (unsigned long long)res->tables[i].rewritten[k]);
            any = true;
        }
        if (any)
            printf("\n");
        else
            printf("  [rewrite %s] changed 0: none of its columns is in this bundle\n", res->rules[k]);
    }
    for (size_t i = 0; i < res->nsequences; i++)
        printf("  sequence %s %s %lld to %lld\n", res->sequences[i].name,
               res->status == IMPORT_DRY_RUN ? "would move from" : "moved from", (long long)res->sequences[i].from,
               (long long)res->sequences[i].to);
    for (size_t i = 0; i < res->nwarnings; i++)
        printf("warning: %s\n", res->warnings[i]);
    if (res->status == IMPORT_DRY_RUN)
        printf("dry run: rolled back, nothing was written (no sequence moved)\n");
}

static const struct option import_opts[] = {
    {"dry-run", no_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'J'},
    {"allow-rollback", no_argument, NULL, 'R'},
    {"all-datasets", no_argument, NULL, 'A'},
    {NULL, 0, NULL, 0},
};
static const cmd_def import_def = {"import", import_usage, "", import_opts, 1, 1, "one BUNDLE"};

typedef struct import_args {
    importer_opts io;
    bool json;
    bool all_datasets;
} import_args;

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    import_args *a = ctx;

    (void)arg;
    (void)err;
    if (opt == 'n')
        a->io.dry_run = true;
    else if (opt == 'J')
        a->json = true;
    else if (opt == 'R')
        a->io.allow_rollback = true;
    else if (opt == 'A')
        a->all_datasets = true;
    return 0;
}

int cmd_import(int argc, char **argv, const cmd_ctx *ctx)
{
    import_args a;
    importer_result res;
    keys_trust trust = {NULL, 0, NULL, 0};
    rewrite_set *rs = NULL;
    cfg *c = NULL;
    owl_err err;
    char **args;
    int nargs, rc;

    memset(&a, 0, sizeof(a));
    memset(&res, 0, sizeof(res));
    rc = cmd_parse(&import_def, argc, argv, on_opt, &a, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("import", &err);
    rc = -1;
    if (cmd_load_config(ctx, &c, &err) < 0 || cmd_load_trust(c, &trust, &err) < 0 ||
        rewrite_compile(c, &rs, &err) < 0)
        goto out;
    if (trust.n == 0) {
        err_set(&err, OWL_EUSAGE, "no trusted key in %s\nHINT: add trusted_key = ENVIRONMENT KEY to its [import] section",
                c->path);
        goto out;
    }
    a.io.progress = isatty(STDERR_FILENO) && !a.json;
    /* the reports that name every dataset's counts; a plain import counts
     * per dataset only the rows it writes, for the datasets that change,
     * which spares it a grouped count of every staged row */
    a.io.per_dataset = a.json || a.io.dry_run || a.all_datasets;
    a.io.changed_datasets = true;
    cmd_log_begin("import", c, "%s%s", args[0], a.io.dry_run ? ", dry run" : "");
    if (importer_run(c, &trust, rs, args[0], &a.io, &res, &err) < 0) {
        err_prefix(&err, "%s", args[0]);
        goto out;
    }
    if (a.json)
        print_json(args[0], &res);
    else
        print_text(args[0], &res, a.all_datasets, a.io.per_dataset);
    cmd_log_end("import", "%s %s", args[0], status_name(res.status));
    rc = 0;
out:
    importer_result_free(&res);
    rewrite_set_free(rs);
    keys_trust_free(&trust);
    cfg_free(c);
    if (rc < 0 && a.json) {
        cmd_print_json_error("file", args[0], &err);
        fflush(stdout);
    }
    return rc < 0 ? cmd_report("import", &err) : 0;
}
