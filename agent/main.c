/* owlsync entry point: reads the global options, resolves the config path, and
 * dispatches to the command. Only main exits. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "owlsync/cmd.h"
#include "owlsync/keys.h"
#include "owlsync/log.h"

static const char usage_text[] =
    "usage: owlsync [-c FILE] COMMAND [OPTIONS]\n"
    "\n"
    "Promotes data-quality definitions of chosen datasets between PostgreSQL\n"
    "metastores as signed, compressed bundle files.\n"
    "\n"
    "commands:\n"
    "  keygen -o PATH            make an Ed25519 key pair: PATH (secret, 0600) and PATH.pub\n"
    "  export [-j JOB] [-d DS,..] [-t TABLE,..] [-o DIR] [--force]\n"
    "                            write a signed bundle of the chosen datasets\n"
    "  verify [-k PUBFILE] BUNDLE\n"
    "                            check a bundle's signature, hashes and limits\n"
    "  inspect [--json] [--all-datasets] BUNDLE\n"
    "                            show what a bundle holds (signature not checked)\n"
    "  import [--dry-run] [--json] [--all-datasets] [--allow-rollback] BUNDLE\n"
    "                            verify and apply a bundle in one transaction\n"
    "  daemon                    run scheduled exports and watch the import inbox\n"
    "  status [--json]           recent imports, inbox backlog, quarantine, jobs\n"
    "  retry FILE...             put quarantined bundles back into the inbox\n"
    "  check [--json] [BUNDLE...]\n"
    "                            config valid, databases reachable, tables and keys usable\n"
    "  convert --from-vendor-json PAYLOAD [-j JOB | -o DIR]\n"
    "                            a payload of the vendor's Export API into a signed bundle\n"
    "\n"
    "options:\n"
    "  -c FILE        config file (default: $OWLSYNC_CONFIG, else " CMD_DEFAULT_CONFIG ");\n"
    "                 also accepted after the command, among its operands\n"
    "  -h, --help     this help; COMMAND --help for a command's own\n"
    "  -V, --version  print the version, its source and the library versions\n"
    "\n"
    "exit codes: 0 done, 1 runtime failure (retrying may help), 2 usage or\n"
    "configuration error, 3 bundle failed verification, 4 bundle refused by policy\n";

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv, const cmd_ctx *ctx);
} command;

static const command commands[] = {
    {"keygen", cmd_keygen},
    {"export", cmd_export},
    {"verify", cmd_verify},
    {"import", cmd_import},
    {"daemon", cmd_daemon},
    {"status", cmd_status},
    {"retry", cmd_retry},
    {"check", cmd_check},
    {"inspect", cmd_inspect},
    {"convert", cmd_convert},
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    cmd_ctx ctx = {CMD_DEFAULT_CONFIG, false};
    const char *env;
    owl_err err;
    int opt;

    log_detect_journal();
    env = getenv("OWLSYNC_CONFIG");
    if (env != NULL && *env != '\0') {
        ctx.config_path = env;
        ctx.config_given = true;
    }
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            ctx.config_path = optarg;
            ctx.config_given = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'V':
            return cmd_version();
        default:
            fprintf(stderr, "owlsync: unknown option %s\nHINT: owlsync --help lists the options\n",
                    argv[optind - 1]);
            return OWL_EUSAGE;
        }
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return OWL_EUSAGE;
    }
    cmd_set_context(&ctx);
    if (keys_init(&err) < 0)
        return cmd_report("owlsync", &err);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[optind], commands[i].name) == 0) {
            char **sub = argv + optind;
            int subc = argc - optind;
            optind = 1;
            return commands[i].run(subc, sub, &ctx);
        }
    }
    fprintf(stderr, "owlsync: unknown command \"%s\"\nHINT: owlsync --help lists the commands\n", argv[optind]);
    return OWL_EUSAGE;
}
