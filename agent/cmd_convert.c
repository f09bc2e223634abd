/* owlsync convert: turns a payload of the vendor's Export API (a JSON list of
 * its dump() INSERT statements) into a signed bundle, and prints its path. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "owlsync/cmd.h"
#include "owlsync/convert.h"
#include "owlsync/log.h"

static const char convert_usage[] =
    "usage: owlsync [-c FILE] convert --from-vendor-json PAYLOAD [-j JOB | -o DIR]\n"
    "\n"
    "Reads a payload of the vendor's Export API (/v2/get-export, /v2/get-exports,\n"
    "/v2/db-export: a JSON list of INSERT statements written by its dump()\n"
    "function) and publishes its rows as a signed bundle; prints the bundle's\n"
    "path. The statements are read as data, never run: only\n"
    "  INSERT INTO schema.table(column, ...) VALUES ('value' or E'value' or NULL, ...);\n"
    "is accepted, for configured tables; anything else is refused (exit 2) with\n"
    "the statement and byte, and nothing is written.\n"
    "\n"
    "  --from-vendor-json PAYLOAD  the payload file; - reads standard input\n"
    "  -j, --job JOB        sign and publish as the [export JOB] section does\n"
    "                       (its key, outboxes, tables, compression, valid_for,\n"
    "                       targets); default: the first [export] section's key,\n"
    "                       outboxes, compression and valid_for, job name \"convert\"\n"
    "  -o, --outbox DIR     write here instead of the outbox lines\n"
    "\n"
    "The datasets are those of the rows' dataset column; columns listed as\n"
    "generated are left out. The bundle's snapshot time is the payload file's\n"
    "modification time (standard input: now).\n";

static const struct option convert_opts[] = {
    {"from-vendor-json", required_argument, NULL, 'f'},
    {"job", required_argument, NULL, 'j'},
    {"outbox", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
};
static const cmd_def convert_def = {"convert", convert_usage, "j:o:", convert_opts, 0, 0, "no arguments"};

typedef struct convert_args {
    const char *payload;
    const char *job;
    cfg_list outbox;
} convert_args;

static int on_opt(void *ctx, int opt, const char *arg, owl_err *err)
{
    convert_args *a = ctx;

    if (opt == 'f')
        a->payload = arg;
    else if (opt == 'j')
        a->job = arg;
    else if (opt == 'o' && cfg_list_split(&a->outbox, arg) < 0)
        return err_oom(err);
    return 0;
}

/* The job whose key, outboxes and bundle settings the conversion takes; it
 * never changes what the job's state remembers but its sequence number. */
static int make_job(const cfg *c, const convert_args *a, exporter_job *job, owl_err *err)
{
    static const cfg_list none = {NULL, 0};

    if (a->job == NULL && c->nexports == 0)
        return err_set(err, OWL_EUSAGE,
                       "convert signs with an [export] section's signing_key, and %s has none\n"
                       "HINT: add an [export JOB] section with signing_key (and outbox), or give -j JOB",
                       c->path);
    if (cmd_export_job(c, a->job, "convert", job, err) < 0)
        return -1;
    if (a->outbox.n > 0)
        job->outboxes = &a->outbox;
    job->datasets = &none;
    job->skip_unchanged = false;
    job->remember = false;
    job->progress = false;
    return 0;
}

int cmd_convert(int argc, char **argv, const cmd_ctx *ctx)
{
    convert_args a;
    exporter_result res = {0};
    exporter_job job;
    cfg *c = NULL;
    owl_err err;
    char **args;
    int nargs, rc, fd = -1;

    memset(&a, 0, sizeof(a));
    rc = cmd_parse(&convert_def, argc, argv, on_opt, &a, &args, &nargs, &err);
    if (rc > 0)
        goto out;
    if (rc == 0 && a.payload == NULL)
        rc = err_set(&err, OWL_EUSAGE, "convert needs --from-vendor-json PAYLOAD\nHINT: owlsync convert --help");
    if (rc < 0 || cmd_load_config(ctx, &c, &err) < 0 || make_job(c, &a, &job, &err) < 0) {
        rc = -1;
        goto out;
    }
    if (strcmp(a.payload, "-") == 0) {
        fd = STDIN_FILENO;
    } else if ((fd = open(a.payload, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = err_set(&err, errno == ENOENT || errno == EACCES ? OWL_EUSAGE : OWL_ERUNTIME, "cannot open %s: %s",
                     a.payload, strerror(errno));
        goto out;
    }
    cmd_log_begin("convert", c, "payload %s, job %s", strcmp(a.payload, "-") == 0 ? "(stdin)" : a.payload, job.name);
    rc = convert_run(c, &job, fd, strcmp(a.payload, "-") == 0 ? "the payload (stdin)" : a.payload, &res, &err);
    for (size_t i = 0; i < res.npaths; i++)
        printf("%s\n", res.paths[i]);
    fflush(stdout);
    if (rc == 0)
        cmd_log_end("convert", "job %s, bundle %llu, %llu rows", job.name, (unsigned long long)res.sequence,
                    (unsigned long long)res.rows);
out:
    if (fd > STDIN_FILENO)
        close(fd);
    exporter_result_free(&res);
    cfg_list_free(&a.outbox);
    cfg_free(c);
    return rc < 0 ? cmd_report("convert", &err) : 0;
}
