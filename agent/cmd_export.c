/* owlsync export: runs an [export JOB] section, or an ad hoc export of the datasets
 * given with -d, and prints the path of each bundle published. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/cmd.h"
#include "owlsync/exporter.h"
#include "owlsync/log.h"

static const char export_usage[] =
    "usage: owlsync [-c FILE] export [-j JOB] [-d DS[,DS...]] [-t TABLE[,TABLE...]] [-o DIR] [--quiet]\n"
    "\n"
    "Reads the chosen datasets of the source metastore in one consistent snapshot\n"
    "and publishes a signed bundle into each outbox; prints each bundle's path.\n"
    "\n"
    "  -j, --job JOB        run the [export JOB] section of the config\n"
    "  -d, --datasets LIST  dataset names or LIKE patterns (an item with %);\n"
    "                       without -j: an ad hoc export of these (job \"adhoc\")\n"
    "  -t, --tables LIST    only these [table] sections (default: the job's, or all)\n"
    "  -o, --outbox DIR     write here instead of the job's outbox lines\n"
    "  -q, --quiet          no progress on stderr\n"
    "\n"
    "An ad hoc export takes signing_key, compression, compression_level,\n"
    "valid_for, parallel and (without -o) the outbox lines from the first\n"
    "[export] section.\n"
    "With skip_unchanged (jobs only), nothing is published when\n"
    "the content equals the job's last bundle. Progress (rows, bytes, rate) goes\n"
    "to stderr when it is a terminal.\n";

int cmd_export(int argc, char **argv, const cmd_ctx *ctx)
{
    static const struct option opts[] = {
        {"job", required_argument, NULL, 'j'},
        {"datasets", required_argument, NULL, 'd'},
        {"tables", required_argument, NULL, 't'},
        {"outbox", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *jobname = NULL;
    cfg_list datasets = {NULL, 0}, tables = {NULL, 0}, outbox = {NULL, 0}, none = {NULL, 0};
    const cfg_export *ex = NULL;
    exporter_result res = {0};
    exporter_job job;
    bool quiet = false;
    cfg *c = NULL;
    owl_err err;
    int opt, rc;

    err_clear(&err);
    while ((opt = getopt_long(argc, argv, ":j:d:t:o:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            jobname = optarg;
            break;
        case 'd':
            cfg_list_split(&datasets, optarg);
            break;
        case 't':
            cfg_list_split(&tables, optarg);
            break;
        case 'o':
            cfg_list_split(&outbox, optarg);
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            fputs(export_usage, stdout);
            return 0;
        default:
            err_set(&err, OWL_EUSAGE, "bad option %s\nHINT: owlsync export --help", argv[optind - 1]);
            goto fail;
        }
    }
    if (optind != argc) {
        err_set(&err, OWL_EUSAGE, "unexpected argument %s\nHINT: owlsync export --help", argv[optind]);
        goto fail;
    }
    if (jobname == NULL && datasets.n == 0) {
        err_set(&err, OWL_EUSAGE, "export needs -j JOB or -d DATASETS\nHINT: owlsync export --help");
        goto fail;
    }
    if (cmd_load_config(ctx, &c, &err) < 0)
        goto fail;
    if (jobname != NULL) {
        ex = cfg_find_export(c, jobname);
        if (ex == NULL) {
            err_set(&err, OWL_EUSAGE, "no [export %s] section in %s", jobname, c->path);
            goto fail;
        }
    } else if (c->nexports > 0) {
        ex = &c->exports[0];
    }
    if (ex != NULL) {
        exporter_job_init(&job, ex);
    } else {
        memset(&job, 0, sizeof(job));
        job.compression = BUNDLE_ZSTD;
        job.compression_level = 3;
        job.valid_for = 7 * 86400;
        job.parallel = 1;
    }
    if (jobname == NULL) {
        /* ad hoc: what the person asked for, nothing of a job's own */
        job.name = "adhoc";
        job.tables = &none;
        job.targets = &none;
        job.skip_unchanged = false;
        job.outboxes = &none;
    }
    if (datasets.n > 0)
        job.datasets = &datasets;
    if (tables.n > 0)
        job.tables = &tables;
    if (outbox.n > 0)
        job.outboxes = &outbox;
    else if (jobname == NULL && ex != NULL)
        job.outboxes = &ex->outbox;
    job.progress = !quiet && isatty(STDERR_FILENO);
    log_info("export begin: job %s, config %s", job.name, c->path);

    rc = exporter_run(c, &job, &res, &err);
    for (size_t i = 0; i < res.npaths; i++)
        printf("%s\n", res.paths[i]);
    fflush(stdout);
    if (rc < 0)
        goto fail;
    if (res.unchanged)
        log_info("export end: job %s unchanged", job.name);
    else
        log_info("export end: job %s, bundle %llu, %llu rows", job.name, (unsigned long long)res.sequence,
                 (unsigned long long)res.rows);
    exporter_result_free(&res);
    cfg_list_free(&datasets);
    cfg_list_free(&tables);
    cfg_list_free(&outbox);
    cfg_free(c);
    return 0;
fail:
    rc = cmd_report("export", &err);
    exporter_result_free(&res);
    cfg_list_free(&datasets);
    cfg_list_free(&tables);
    cfg_list_free(&outbox);
    cfg_free(c);
    return rc;
}
