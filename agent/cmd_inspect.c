/* owlsync inspect: shows what a bundle's manifest says, for a person or a
 * script, without checking its signature (verify does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "owlsync/cmd.h"
#include "owlsync/text.h"

static const char inspect_usage[] =
    "usage: owlsync [-c FILE] inspect [--json] [--all-datasets] BUNDLE\n"
    "\n"
    "Shows a bundle's environment, job, sequence, times, key id, targets, datasets\n"
    "and per-table rows and bytes. Of a long dataset list the first 10 names are\n"
    "shown, then how many more; --all-datasets shows every one, as --json does.\n"
    "The signature is NOT checked: use `owlsync verify` before trusting what it\n"
    "shows. --json prints the manifest for scripts, wrapped as {\"file\",\n"
    "\"signature_verified\", \"manifest\"}.\n"
    "An encrypted bundle is decrypted with the decrypt_key lines of the config\n"
    "named by -c or $OWLSYNC_CONFIG; without one of its keys, inspect shows\n"
    "only that it is encrypted and the key ids it was made for ({\"file\",\n"
    "\"encrypted\", \"recipients\"} with --json).\n";

static const struct option inspect_opts[] = {
    {"json", no_argument, NULL, 'J'}, {"all-datasets", no_argument, NULL, 'A'}, {NULL, 0, NULL, 0}};

typedef struct inspect_args {
    bool json;
    bool all_datasets;
} inspect_args;
static const cmd_def inspect_def = {"inspect", inspect_usage, "", inspect_opts, 1, 1, "one BUNDLE"};

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    inspect_args *a = ctx;

    (void)arg;
    (void)err;
    if (opt == 'J')
        a->json = true;
    else if (opt == 'A')
        a->all_datasets = true;
    return 0;
}

static void print_time(const char *label, int64_t t)
{
    char buf[TEXT_UTC_MAX];

    printf("%-12s %s\n", label, text_utc(t, TEXT_UTC_MICROS, buf, sizeof(buf)));
}

static void print_text(const char *path, const manifest *m, bool all_datasets)
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
    cmd_print_names(m->targets, m->ntargets, true, "any environment", NULL);
    printf("\n%-12s %s\n", "schema", m->schema);
    printf("%-12s %s\n", "key id", m->key_id);
    printf("%-12s %s\n", "producer", text_clean(m->producer, MANIFEST_TEXT_MAX, shown, sizeof(shown)));
    printf("%-12s %zu: ", "datasets", m->ndatasets);
    cmd_print_names(m->datasets, m->ndatasets, all_datasets, "(none)", "--all-datasets lists them");
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

/* What inspect shows of a bundle it cannot decrypt: its recipients. */
static void print_recipients(const char *path, char (*ids)[KEYS_ID_HEX_LEN + 1], size_t n, bool json)
{
    char shown[4 * MANIFEST_TEXT_MAX + 8];

    if (json) {
        json_t *root = json_object(), *list = json_array();
        for (size_t i = 0; list != NULL && i < n; i++)
            json_array_append_new(list, json_string(ids[i]));
        json_object_set_new(root, "file", json_string(path));
        json_object_set_new(root, "encrypted", json_true());
        json_object_set_new(root, "recipients", list);
        cmd_print_json(root);
        return;
    }
    printf("%-12s %s\n", "bundle", text_clean(path, MANIFEST_TEXT_MAX, shown, sizeof(shown)));
    printf("%-12s %s\n", "encrypted", "yes (bundle format version 2); no decryption key of its recipients at hand");
    printf("%-12s ", "recipients");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", ids[i]);
    printf("\n");
}

int cmd_inspect(int argc, char **argv, const cmd_ctx *ctx)
{
    bundle_reader *r = NULL;
    bundle_limits lim;
    keys_trust dec = {NULL, 0, NULL, 0};
    char ids[BUNDLE_MAX_RECIPIENTS][KEYS_ID_HEX_LEN + 1];
    size_t nids = 0;
    inspect_args a = {false, false};
    char *out = NULL;
    cfg *c = NULL;
    owl_err err;
    char **args;
    int nargs, rc, enc;

    rc = cmd_parse(&inspect_def, argc, argv, on_opt, &a, &args, &nargs, &err);
    if (rc != 0)
        return rc > 0 ? 0 : cmd_report("inspect", &err);
    rc = -1;
    enc = bundle_recipients(args[0], ids, &nids, &err);
    if (enc < 0) {
        err_prefix(&err, "%s", args[0]);
        goto done;
    }
    if (enc > 0 && ctx->config_given) {
        if (cmd_load_config(ctx, &c, &err) < 0)
            goto done;
        for (size_t i = 0; i < c->import.decrypt_key.n; i++) {
            if (keys_trust_add_decrypt(&dec, c->import.decrypt_key.v[i], &err) < 0) {
                err_prefix(&err, "%s: [import] decrypt_key", c->path);
                goto done;
            }
        }
    }
    if (enc > 0) {
        /* only a key it was made for opens it: otherwise its recipients are all there is to show */
        bool mine = false;
        for (size_t k = 0; k < dec.ndec && !mine; k++) {
            keys_box_public pub;
            keys_box_secret_public(dec.dec[k], &pub);
            for (size_t i = 0; i < nids && !mine; i++)
                mine = strcmp(ids[i], pub.id) == 0;
        }
        if (!mine) {
            print_recipients(args[0], ids, nids, a.json);
            rc = 0;
            goto done;
        }
    }
    cmd_limits(c, &lim);
    if (bundle_open_unverified(args[0], &lim, &dec, &r, &err) < 0) {
        err_prefix(&err, "%s", args[0]);
        goto done;
    }
    if (a.json) {
        size_t mlen;
        const char *mbytes = bundle_manifest_bytes(r, &mlen);
        if (manifest_inspect_json(mbytes, mlen, args[0], 0, &out, &err) < 0)
            goto done;
        printf("%s\n", out);
    } else {
        print_text(args[0], bundle_manifest(r), a.all_datasets);
    }
    rc = 0;
done:
    free(out);
    bundle_close(r);
    keys_trust_free(&dec);
    cfg_free(c);
    return rc < 0 ? cmd_report("inspect", &err) : 0;
}
