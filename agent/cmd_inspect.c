/* owlsync inspect: shows what a bundle's manifest says, for a person or a
 * script, without checking its signature (verify does). */
#include <stdio.h>
#include <stdlib.h>

#include "owlsync/cmd.h"
#include "owlsync/text.h"

static const char inspect_usage[] =
    "usage: owlsync inspect [--json] BUNDLE\n"
    "\n"
    "Shows a bundle's environment, job, sequence, times, key id, targets, datasets\n"
    "and per-table rows and bytes. The signature is NOT checked: use\n"
    "`owlsync verify` before trusting what it shows. --json prints the manifest\n"
    "for scripts, wrapped as {\"file\", \"signature_verified\", \"manifest\"}.\n";

static const struct option inspect_opts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};
static const cmd_def inspect_def = {"inspect", inspect_usage, "", inspect_opts, 1, 1, "one BUNDLE"};

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    (void)arg;
    (void)err;
    if (opt == 'J')
        *(bool *)ctx = true;
    return 0;
}

/* Prints a list of strings joined by ", ", or none_text when empty. */
static void print_list(char **v, size_t n, const char *none_text)
{
    if (n == 0) {
        fputs(none_text, stdout);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char shown[4 * MANIFEST_TEXT_MAX + 8];
        /* a dataset name may hold any character: none reaches the terminal raw */
        printf("%s%s", i ? ", " : "", text_clean(v[i], MANIFEST_TEXT_MAX, shown, sizeof(shown)));
    }
}

static void print_time(const char *label, int64_t t)
{
    char buf[TEXT_UTC_MAX];

    printf("%-12s %s\n", label, text_utc(t, TEXT_UTC_MICROS, buf, sizeof(buf)));
}

static void print_text(const char *path, const manifest *m)
{
    char shown[4 * MANIFEST_TEXT_MAX + 8];

    printf("%-12s %s\n", "bundle", text_clean(path, MANIFEST_TEXT_MAX, shown, sizeof(shown)));
    printf("%-12s %s\n", "signature", "not checked (run owlsync verify)");
    printf("%-12s %s\n", "bundle id", m->bundle_id);
    printf("%-12s %s\n", "environment", m->environment);
    printf("%-12s %s\n", "job", m->job);
    printf("%-12s %llu\n", "sequence", (unsigned long long)m->sequence);
    print_time("created", m->created_at);
    print_time("snapshot", m->snapshot_at);
    print_time("expires", m->expires_at);
    printf("%-12s ", "targets");
    print_list(m->targets, m->ntargets, "any environment");
    printf("\n%-12s %s\n", "schema", m->schema);
    printf("%-12s %s\n", "key id", m->key_id);
    printf("%-12s %s\n", "producer", text_clean(m->producer, MANIFEST_TEXT_MAX, shown, sizeof(shown)));
    printf("%-12s %zu: ", "datasets", m->ndatasets);
    print_list(m->datasets, m->ndatasets, "(none)");
    printf("\n%-12s %zu\n", "tables", m->ntables);
    printf("  %-24s %12s %14s  %s\n", "TABLE", "ROWS", "BYTES", "COLUMNS");
    for (size_t i = 0; i < m->ntables; i++) {
        const manifest_table *t = &m->tables[i];
        size_t refs = 0;
        for (size_t j = 0; j < t->ncolumns; j++)
            refs += t->columns[j].ref;
        printf("  %-24s %12llu %14llu  %zu%s", t->name, (unsigned long long)t->rows, (unsigned long long)t->bytes,
               t->ncolumns, t->dataset_column[0] ? "" : " (global)");
        if (refs > 0)
            printf(" (%zu of them %s)", refs, refs == 1 ? "a reference" : "references");
        printf("\n");
    }
}

int cmd_inspect(int argc, char **argv, const cmd_ctx *ctx)
{
    bundle_reader *r = NULL;
    bundle_limits lim;
    bool json = false;
    char *out = NULL;
    owl_err err;
    char **args;
    int nargs, rc;

    (void)ctx;
    rc = cmd_parse(&inspect_def, argc, argv, on_opt, &json, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("inspect", &err);
    rc = -1;
    cmd_limits(NULL, &lim);
    if (bundle_open(args[0], &lim, NULL, &r, &err) < 0) {
        err_prefix(&err, "%s", args[0]);
        goto done;
    }
    if (json) {
        size_t mlen;
        const char *mbytes = bundle_manifest_bytes(r, &mlen);
        if (manifest_inspect_json(mbytes, mlen, args[0], 0, &out, &err) < 0)
            goto done;
        printf("%s\n", out);
    } else {
        print_text(args[0], bundle_manifest(r));
    }
    rc = 0;
done:
    free(out);
    bundle_close(r);
    return rc < 0 ? cmd_report("inspect", &err) : 0;
}
