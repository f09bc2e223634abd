/* owlsync verify and inspect: check a bundle completely (signature, every hash,
 * limits, layout), or show what it holds for a person or a script. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/cmd.h"
#include "owlsync/log.h"

static const char verify_usage[] =
    "usage: owlsync [-c FILE] verify [-k PUBFILE] BUNDLE\n"
    "\n"
    "Checks a bundle as an import would before writing anything: the archive's\n"
    "format and layout, the size limits, the Ed25519 signature of its manifest,\n"
    "that the signing key is trusted for the bundle's environment, and the BLAKE2b\n"
    "hash of every data entry. Trusted keys come from -k (a .pub file or an\n"
    "owlsync-ed25519: token; any environment) or from the config's [import]\n"
    "trusted_key lines. Exit 0 when it holds, 3 (with the reason) when it does not.\n";

static const char inspect_usage[] =
    "usage: owlsync inspect [--json] BUNDLE\n"
    "\n"
    "Shows a bundle's environment, job, sequence, times, key id, targets, datasets\n"
    "and per-table rows and bytes. The signature is NOT checked: use\n"
    "`owlsync verify` before trusting what it shows. --json prints the manifest\n"
    "for scripts, wrapped as {\"file\", \"signature_verified\", \"manifest\"}.\n";

int cmd_verify(int argc, char **argv, const cmd_ctx *ctx)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *keyarg = NULL, *path;
    keys_trust trust = {NULL, 0};
    bundle_reader *r = NULL;
    bundle_limits lim;
    cfg *c = NULL;
    owl_err err;
    uint64_t rows = 0;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, ":k:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'k':
            keyarg = optarg;
            break;
        case 'h':
            fputs(verify_usage, stdout);
            return 0;
        default:
            err_set(&err, OWL_EUSAGE, "bad option %s\nHINT: owlsync verify --help", argv[optind - 1]);
            return cmd_report("verify", &err);
        }
    }
    if (optind != argc - 1) {
        err_set(&err, OWL_EUSAGE, "verify takes one BUNDLE\nHINT: owlsync verify --help");
        return cmd_report("verify", &err);
    }
    path = argv[optind];
    if (keyarg == NULL || ctx->config_given) {
        if (keyarg != NULL || access(ctx->config_path, F_OK) == 0 || ctx->config_given) {
            if (cmd_load_config(ctx, &c, &err) < 0)
                goto fail;
        }
    }
    if (keyarg != NULL) {
        /* A key given by hand is trusted for whatever environment it signed for. */
        keys_public pub;
        if (keys_load_public(keyarg, &pub, &err) < 0)
            goto fail;
        if (keys_trust_add(&trust, "", pub.token, &err) < 0)
            goto fail;
    } else if (c != NULL) {
        if (cmd_load_trust(c, &trust, &err) < 0)
            goto fail;
    }
    if (trust.n == 0) {
        err_set(&err, OWL_EUSAGE, "no trusted key to verify with\nHINT: give -k PUBFILE, or a config whose [import] section has trusted_key lines");
        goto fail;
    }
    cmd_limits(c, &lim);
    if (bundle_open(path, &lim, &trust, &r, &err) < 0 || bundle_verify_rest(r, &err) < 0) {
        err_prefix(&err, "%s", path);
        goto fail;
    }
    for (size_t i = 0; i < bundle_manifest(r)->ntables; i++)
        rows += bundle_manifest(r)->tables[i].rows;
    printf("%s: ok, signed by key %s for environment %s; %zu tables, %llu rows\n", path,
           bundle_signer(r)->key.id, bundle_manifest(r)->environment, bundle_manifest(r)->ntables,
           (unsigned long long)rows);
    bundle_close(r);
    keys_trust_free(&trust);
    cfg_free(c);
    return 0;
fail:
    rc = cmd_report("verify", &err);
    bundle_close(r);
    keys_trust_free(&trust);
    cfg_free(c);
    return rc;
}

/* Prints a list of strings joined by ", ", or none_text when empty. */
static void print_list(char **v, size_t n, const char *none_text)
{
    if (n == 0) {
        fputs(none_text, stdout);
        return;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", v[i]);
}

static void print_time(const char *label, int64_t t)
{
    char buf[40];

    manifest_format_time(t, buf, sizeof(buf));
    printf("%-12s %s\n", label, buf);
}

int cmd_inspect(int argc, char **argv, const cmd_ctx *ctx)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bundle_reader *r = NULL;
    bundle_limits lim;
    const manifest *m;
    bool json = false;
    owl_err err;
    int opt;

    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'J':
            json = true;
            break;
        case 'h':
            fputs(inspect_usage, stdout);
            return 0;
        default:
            err_set(&err, OWL_EUSAGE, "bad option %s\nHINT: owlsync inspect --help", argv[optind - 1]);
            return cmd_report("inspect", &err);
        }
    }
    if (optind != argc - 1) {
        err_set(&err, OWL_EUSAGE, "inspect takes one BUNDLE\nHINT: owlsync inspect --help");
        return cmd_report("inspect", &err);
    }
    cmd_limits(NULL, &lim);
    if (bundle_open(argv[optind], &lim, NULL, &r, &err) < 0) {
        err_prefix(&err, "%s", argv[optind]);
        return cmd_report("inspect", &err);
    }
    m = bundle_manifest(r);
    if (json) {
        size_t mlen;
        const char *mbytes = bundle_manifest_bytes(r, &mlen);
        char *out = NULL;
        if (manifest_inspect_json(mbytes, mlen, argv[optind], 0, &out, &err) < 0) {
            bundle_close(r);
            return cmd_report("inspect", &err);
        }
        printf("%s\n", out);
        free(out);
        bundle_close(r);
        return 0;
    }
    printf("%-12s %s\n", "bundle", argv[optind]);
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
    printf("%-12s %s\n", "producer", m->producer);
    printf("%-12s %zu: ", "datasets", m->ndatasets);
    print_list(m->datasets, m->ndatasets, "(none)");
    printf("\n%-12s %zu\n", "tables", m->ntables);
    printf("  %-24s %12s %14s  %s\n", "TABLE", "ROWS", "BYTES", "COLUMNS");
    for (size_t i = 0; i < m->ntables; i++) {
        const manifest_table *t = &m->tables[i];
        printf("  %-24s %12llu %14llu  %zu%s\n", t->name, (unsigned long long)t->rows,
               (unsigned long long)t->bytes, t->ncolumns, t->dataset_column[0] ? "" : " (global)");
    }
    bundle_close(r);
    return 0;
}
