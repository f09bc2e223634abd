/* owlsync export: runs an [export JOB] section, or an ad hoc export of the datasets
 * given with -d, and prints the path of each bundle published. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/cmd.h"
#include "owlsync/exporter.h"
#include "owlsync/log.h"

static const char export_usage[] =
    "usage: owlsync [-c FILE] export [-j JOB] [-d DS[,DS...]] [-t TABLE[,TABLE...]] [-o DIR] [--force] [--quiet]\n"
    "\n"
    "Reads the chosen datasets of the source metastore in one consistent snapshot\n"
    "and publishes a signed bundle into each outbox; prints each bundle's path.\n"
    "\n"
    "  -j, --job JOB        run the [export JOB] section of the config\n"
    "  -d, --datasets LIST  dataset names or LIKE patterns (an item with %);\n"
    "                       without -j: an ad hoc export of these (job \"adhoc\")\n"
    "  -t, --tables LIST    only these [table] sections (default: the job's, or all)\n"
    "  -o, --outbox DIR     write here instead of the job's outbox lines (the job's\n"
    "                       state keeps no record of it: only its sequence advances)\n"
    "  -f, --force          publish to every outbox even when skip_unchanged finds\n"
    "                       the content unchanged\n"
    "  -q, --quiet          no progress on stderr\n"
    "\n"
    "An ad hoc export takes signing_key, encrypt_to, compression,\n"
    "compression_level, valid_for, parallel and (without -o) the outbox lines\n"
    "from the first [export] section. A job with encrypt_to lines publishes\n"
    "encrypted bundles (signed, then encrypted to each key listed).\n"
    "With skip_unchanged (jobs only), an outbox gets no bundle when the last one\n"
    "it received had the same content (an outbox that missed a bundle, or that\n"
    "is new to the job, gets one on the next run). Progress (rows, bytes, rate) goes\n"
    "to stderr when it is a terminal.\n";

static const struct option export_opts[] = {
    {"job", required_argument, NULL, 'j'},
    {"datasets", required_argument, NULL, 'd'},
    {"tables", required_argument, NULL, 't'},
    {"outbox", required_argument, NULL, 'o'},
    {"force", no_argument, NULL, 'f'},
    {"quiet", no_argument, NULL, 'q'},
    {NULL, 0, NULL, 0},
};
static const cmd_def export_def = {"export", export_usage, "j:d:t:o:fq", export_opts, 0, 0, "no arguments"};

typedef struct export_args {
    const char *job;
    cfg_list datasets, tables, outbox;
    bool quiet, force;
} export_args;

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    export_args *a = ctx;
    int rc = 0;

    if (opt == 'j')
        a->job = arg;
    else if (opt == 'd')
        rc = cfg_list_split(&a->datasets, arg);
    else if (opt == 't')
        rc = cfg_list_split(&a->tables, arg);
    else if (opt == 'o')
        rc = cfg_list_split(&a->outbox, arg);
    else if (opt == 'q')
        a->quiet = true;
    else if (opt == 'f')
        a->force = true;
    return rc < 0 ? err_oom(err) : 0;
}

/* The job to run: the named [export] section, or an ad hoc one that takes
 * its signing key, compression, validity and parallel (and without -o its
 * outboxes) from the first [export] section. */
static int make_job(const cfg *c, export_args *a, exporter_job *job, owl_err *err)
{
    if (cmd_export_job(c, a->job, "adhoc", job, err) < 0)
        return -1;
    if (a->datasets.n > 0)
        job->datasets = &a->datasets;
    if (a->tables.n > 0)
        job->tables = &a->tables;
    if (a->outbox.n > 0)
        job->outboxes = &a->outbox;
    /* -o DIR takes a sequence number of the job (none is ever used twice) and
     * changes nothing else of its state */
    job->remember = a->outbox.n == 0;
    job->force = a->force;
    job->progress = !a->quiet && isatty(STDERR_FILENO);
    return 0;
}

int cmd_export(int argc, char **argv, const cmd_ctx *ctx)
{
    export_args a;
    exporter_result res = {0};
    exporter_job job;
    cfg *c = NULL;
    owl_err err;
    char **args;
    int nargs, rc;

    memset(&a, 0, sizeof(a));
    rc = cmd_parse(&export_def, argc, argv, on_opt, &a, &args, &nargs, &err);
    if (rc > 0)
        goto out;
    if (rc == 0 && a.job == NULL && a.datasets.n == 0)
        rc = err_set(&err, OWL_EUSAGE, "export needs -j JOB or -d DATASETS\nHINT: owlsync export --help");
    if (rc < 0 || cmd_load_config(ctx, &c, &err) < 0 || make_job(c, &a, &job, &err) < 0) {
        rc = -1;
        goto out;
    }
    cmd_log_begin("export", c, "job %s", job.name);
    rc = exporter_run(c, &job, &res, &err);
    for (size_t i = 0; i < res.npaths; i++)
        printf("%s\n", res.paths[i]);
    fflush(stdout);
    if (rc == 0 && res.unchanged)
        cmd_log_end("export", "job %s unchanged", job.name);
    else if (rc == 0)
        cmd_log_end("export", "job %s, bundle %llu, %llu rows", job.name, (unsigned long long)res.sequence,
                    (unsigned long long)res.rows);
out:
    exporter_result_free(&res);
    cfg_list_free(&a.datasets);
    cfg_list_free(&a.tables);
    cfg_list_free(&a.outbox);
    cfg_free(c);
    return rc < 0 ? cmd_report("export", &err) : 0;
}
