/* Unit tests of the config module: defaults, value types, names, sections, long
 * and continued lines, cross-checks and exact error messages (DESIGN.md 3.2). */
#include <errno.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/config.h"
#include "owlsync/log.h"
#include "unit.h"

/* Two lines every valid file needs; the lines of a test's own text start at 3. */
#define HEAD "[owlsync]\nenvironment = prod\n"

/* Loads text as "t.ini"; on failure prints the message and records a failure. */
static cfg *load(const char *text)
{
    cfg *c = NULL;
    owl_err err = {0};

    if (cfg_load_string("t.ini", text, &c, &err) != 0) {
        printf("#   unexpected error: %s\n", err.msg);
        CHECK(c == NULL);
        CHECK(0);
        return NULL;
    }
    CHECK(c != NULL);
    return c;
}

/* Loading text fails with OWL_EUSAGE, leaves *out NULL, and says exactly msg. */
#define EXPECT_ERR(text_, want_)                                                        \
    do {                                                                             \
        cfg dummy_;                                                                  \
        cfg *c_ = &dummy_;                                                           \
        owl_err e_ = {0};                                                            \
        CHECK(cfg_load_string("t.ini", (text_), &c_, &e_) == -1);                     \
        CHECK(c_ == NULL);                                                           \
        CHECK(e_.code == OWL_EUSAGE);                                                \
        CHECK_STR(e_.msg, (want_));                                                    \
    } while (0)

#define WRITE_LIT(s) write_temp((s), sizeof(s) - 1)

/* Writes text to a new temporary file; returns its path (static buffer). */
static const char *write_temp(const char *text, size_t len)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/owlsync-test-config-XXXXXX");
    fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return "/nonexistent";
    CHECK(write(fd, text, len) == (ssize_t)len);
    close(fd);
    return path;
}

/* ---- parsers ---------------------------------------------------------------- */

static void test_parse_size(void)
{
    uint64_t v = 0;

    CHECK(cfg_parse_size("1024", &v) == 0 && v == 1024);
    CHECK(cfg_parse_size("0", &v) == 0 && v == 0);
    CHECK(cfg_parse_size("10K", &v) == 0 && v == 10240);
    CHECK(cfg_parse_size("512M", &v) == 0 && v == 512ULL << 20);
    CHECK(cfg_parse_size("1G", &v) == 0 && v == 1ULL << 30);
    CHECK(cfg_parse_size("2T", &v) == 0 && v == 2ULL << 40);
    CHECK(cfg_parse_size("1g", &v) == 0 && v == 1ULL << 30);
    CHECK(cfg_parse_size("1KB", &v) == 0 && v == 1024);
    CHECK(cfg_parse_size("1KiB", &v) == 0 && v == 1024);
    CHECK(cfg_parse_size("3MiB", &v) == 0 && v == 3ULL << 20);
    CHECK(cfg_parse_size("100B", &v) == 0 && v == 100);
    CHECK(cfg_parse_size("18446744073709551615", &v) == 0 && v == UINT64_MAX);
    CHECK(cfg_parse_size("16777215T", &v) == 0 && v == 16777215ULL << 40);

    CHECK(cfg_parse_size("", &v) == -1);
    CHECK(cfg_parse_size("G", &v) == -1);
    CHECK(cfg_parse_size("12X", &v) == -1);
    CHECK(cfg_parse_size("-1", &v) == -1);
    CHECK(cfg_parse_size("-1G", &v) == -1);
    CHECK(cfg_parse_size("+1", &v) == -1);
    CHECK(cfg_parse_size(" 1", &v) == -1);
    CHECK(cfg_parse_size("1 G", &v) == -1);
    CHECK(cfg_parse_size("1.5G", &v) == -1);
    CHECK(cfg_parse_size("1GG", &v) == -1);
    CHECK(cfg_parse_size("1KiBB", &v) == -1);
    CHECK(cfg_parse_size("1iB", &v) == -1);
    CHECK(cfg_parse_size("0x10", &v) == -1);
    CHECK(cfg_parse_size("18446744073709551616", &v) == -1);
    CHECK(cfg_parse_size("16777216T", &v) == -1);
    CHECK(cfg_parse_size("17179869184G", &v) == -1);
    CHECK(cfg_parse_size(NULL, &v) == -1);
}

static void test_parse_duration(void)
{
    int64_t v = 0;

    CHECK(cfg_parse_duration("30", &v) == 0 && v == 30);
    CHECK(cfg_parse_duration("0", &v) == 0 && v == 0);
    CHECK(cfg_parse_duration("30s", &v) == 0 && v == 30);
    CHECK(cfg_parse_duration("5m", &v) == 0 && v == 300);
    CHECK(cfg_parse_duration("36h", &v) == 0 && v == 36 * 3600);
    CHECK(cfg_parse_duration("7d", &v) == 0 && v == 7 * 86400);
    CHECK(cfg_parse_duration("2w", &v) == 0 && v == 14 * 86400);
    CHECK(cfg_parse_duration("9223372036854775807", &v) == 0 && v == INT64_MAX);
    CHECK(cfg_parse_duration("15250284452471w", &v) == 0 &&
          v == 15250284452471LL * 604800);

    CHECK(cfg_parse_duration("", &v) == -1);
    CHECK(cfg_parse_duration("s", &v) == -1);
    CHECK(cfg_parse_duration("5x", &v) == -1);
    CHECK(cfg_parse_duration("5ms", &v) == -1);
    CHECK(cfg_parse_duration("5 s", &v) == -1);
    CHECK(cfg_parse_duration("-5", &v) == -1);
    CHECK(cfg_parse_duration("+5", &v) == -1);
    CHECK(cfg_parse_duration("1.5h", &v) == -1);
    CHECK(cfg_parse_duration("9223372036854775808", &v) == -1);
    CHECK(cfg_parse_duration("15250284452472w", &v) == -1);
    CHECK(cfg_parse_duration("99999999999999999999", &v) == -1);
    CHECK(cfg_parse_duration(NULL, &v) == -1);
}

static void test_parse_bool(void)
{
    bool b = false;

    CHECK(cfg_parse_bool("true", &b) == 0 && b);
    CHECK(cfg_parse_bool("false", &b) == 0 && !b);
    CHECK(cfg_parse_bool("YES", &b) == 0 && b);
    CHECK(cfg_parse_bool("no", &b) == 0 && !b);
    CHECK(cfg_parse_bool("On", &b) == 0 && b);
    CHECK(cfg_parse_bool("off", &b) == 0 && !b);
    CHECK(cfg_parse_bool("1", &b) == 0 && b);
    CHECK(cfg_parse_bool("0", &b) == 0 && !b);
    CHECK(cfg_parse_bool("", &b) == -1);
    CHECK(cfg_parse_bool("maybe", &b) == -1);
    CHECK(cfg_parse_bool("2", &b) == -1);
    CHECK(cfg_parse_bool("truee", &b) == -1);
}

static void test_list_split(void)
{
    cfg_list l = {0};

    CHECK(cfg_list_split(&l, " a, b ,,c , ") == 0);
    CHECK(l.n == 3);
    if (l.n == 3) {
        CHECK_STR(l.v[0], "a");
        CHECK_STR(l.v[1], "b");
        CHECK_STR(l.v[2], "c");
    }
    CHECK(cfg_list_split(&l, "") == 0);
    CHECK(cfg_list_split(&l, " , ,") == 0);
    CHECK(l.n == 3);
    CHECK(cfg_list_split(&l, "d e") == 0);
    CHECK(l.n == 4);
    if (l.n == 4)
        CHECK_STR(l.v[3], "d e");
    CHECK(cfg_list_has(&l, "b"));
    CHECK(cfg_list_has(&l, "d e"));
    CHECK(!cfg_list_has(&l, "d"));
    cfg_list_free(&l);
    CHECK(l.n == 0 && l.v == NULL);
    cfg_list_free(&l);
    cfg_list_free(NULL);
    CHECK(!cfg_list_has(&l, "a"));
}

/* ---- defaults --------------------------------------------------------------- */

static void test_defaults(void)
{
    static const char *const names[] = {"rule_repo",      "owl_catalog",  "owl_rule",
                                         "alert_cond",     "owl_check_repo",
                                         "job_schedule",   "alert_output"};
    /* natural keys, each holding the dataset column of its table */
    static const char *const keys[][3] = {{"rule_nm"}, {"dataset"}, {"dataset", "rule_nm"},
                                          {"dataset", "alert_nm"}, {"dataset"}, {"dataset"},
                                          {"dataset", "alert_nm", "run_id"}};
    cfg *c = load(HEAD);

    if (c == NULL)
        return;
    CHECK_STR(c->path, "t.ini");
    CHECK_STR(c->environment, "prod");
    CHECK_STR(c->state_dir, "/var/lib/owlsync");
    CHECK(c->log_level == LOG_INFO);
    CHECK(c->log_format == LOG_FORMAT_TEXT);
    CHECK(c->metrics_file == NULL);
    CHECK_STR(c->conninfo, "");
    CHECK_STR(c->schema, "public");
    CHECK(c->nexports == 0 && c->exports == NULL);
    CHECK(c->nrewrites == 0 && c->rewrites == NULL);

    CHECK(c->tables_defaulted);
    CHECK(c->ntables == 7);
    for (size_t i = 0; i < 7 && i < c->ntables; i++) {
        const cfg_table *t = &c->tables[i];
        CHECK_STR(t->name, names[i]);
        CHECK_STR(t->dataset_column, i == 0 ? "" : "dataset");
        CHECK(t->mode == (i == 0 ? CFG_MODE_UPSERT : CFG_MODE_REPLACE));
        /* the surrogate id is the target's own: it never travels */
        CHECK(t->generated.n == 1 && strcmp(t->generated.v[0], "id") == 0);
        for (size_t k = 0; k < 3; k++) {
            CHECK((keys[i][k] == NULL) == (k >= t->key.n));
            if (keys[i][k] != NULL && k < t->key.n)
                CHECK_STR(t->key.v[k], keys[i][k]);
        }
        CHECK(cfg_find_table(c, names[i]) == t);
    }

    CHECK(!c->import.present);
    CHECK(c->import.inbox == NULL);
    CHECK(c->import.processed_dir == NULL);
    CHECK(c->import.quarantine_dir == NULL);
    CHECK(c->import.ntrusted == 0);
    CHECK(c->import.tables.n == 0);
    CHECK(c->import.watch == CFG_WATCH_AUTO);
    CHECK(c->import.poll_interval == 5);
    CHECK(c->import.settle_time == 2);
    CHECK(c->import.max_bundle_size == 1ULL << 30);
    CHECK(c->import.max_unpacked_size == 8ULL << 30);
    CHECK(c->import.max_staleness == 0);
    CHECK(c->import.max_regex_value == 1ULL << 20);
    CHECK(c->import.max_regex_time == 10);
    CHECK(c->import.max_json_values == 1000000);
    CHECK(cfg_find_table(c, "nope") == NULL);
    CHECK(cfg_find_export(c, "nope") == NULL);
    cfg_free(c);
    cfg_free(NULL);
}

static void test_export_defaults(void)
{
    cfg *c = load(HEAD "[export nightly]\ndatasets = ds1\n");
    const cfg_export *e;

    if (c == NULL)
        return;
    CHECK(c->nexports == 1);
    e = cfg_find_export(c, "nightly");
    CHECK(e == &c->exports[0]);
    if (e != NULL) {
        CHECK_STR(e->name, "nightly");
        CHECK(e->line == 3);
        CHECK(e->datasets.n == 1);
        CHECK(e->tables.n == 0);
        CHECK(e->outbox.n == 0);
        CHECK(e->signing_key == NULL);
        CHECK(e->schedule == NULL);
        CHECK(e->compression == CFG_COMP_ZSTD);
        CHECK(e->compression_level == 3);
        CHECK(e->skip_unchanged);
        CHECK(e->valid_for == 7 * 86400);
        CHECK(e->parallel == 1);
        CHECK(e->targets.n == 0);
    }
    cfg_free(c);
}

static void test_import_defaults(void)
{
    cfg *c = load(HEAD "[import]\ninbox = /mnt/in/\n");

    if (c != NULL) {
        CHECK(c->import.present);
        CHECK_STR(c->import.inbox, "/mnt/in/");
        CHECK_STR(c->import.processed_dir, "/mnt/in/processed");
        CHECK_STR(c->import.quarantine_dir, "/mnt/in/quarantine");
        CHECK(c->import.processed_keep == 0); /* kept forever */
    }
    cfg_free(c);

    c = load(HEAD "[import]\ninbox = /in\nprocessed_keep = 30d\n");
    if (c != NULL)
        CHECK(c->import.processed_keep == 30 * 86400);
    cfg_free(c);
    EXPECT_ERR(HEAD "[import]\nprocessed_keep = soon\n",
               "t.ini:4: [import] processed_keep: invalid duration \"soon\"");

    c = load(HEAD "[import]\ninbox = /in\nprocessed_dir = none\nquarantine_dir = /q\n");
    if (c != NULL) {
        CHECK(c->import.processed_dir == NULL);
        CHECK_STR(c->import.quarantine_dir, "/q");
    }
    cfg_free(c);

    /* An empty value means the default. */
    c = load(HEAD "[import]\ninbox = /in\nprocessed_dir =\nquarantine_dir =\n");
    if (c != NULL) {
        CHECK_STR(c->import.processed_dir, "/in/processed");
        CHECK_STR(c->import.quarantine_dir, "/in/quarantine");
    }
    cfg_free(c);

    c = load(HEAD "[import]\n");
    if (c != NULL) {
        CHECK(c->import.present);
        CHECK(c->import.inbox == NULL);
        CHECK(c->import.processed_dir == NULL);
        CHECK(c->import.quarantine_dir == NULL);
    }
    cfg_free(c);
}

static void test_table_modes(void)
{
    cfg *c = load(HEAD "[table t1]\n"
                       "[table global]\ndataset_column =\n"
                       "[table g2]\ndataset_column =\nmode = replace\n"
                       "[table t3]\ndataset_column = ds\nkey = ds, name\n"
                       "generated = id\nmode = insert\n");

    if (c == NULL)
        return;
    CHECK(!c->tables_defaulted);
    CHECK(c->ntables == 4);
    if (c->ntables == 4) {
        CHECK_STR(c->tables[0].name, "t1");
        CHECK(c->tables[0].line == 3);
        CHECK_STR(c->tables[0].dataset_column, "dataset");
        CHECK(c->tables[0].mode == CFG_MODE_REPLACE);
        CHECK_STR(c->tables[1].dataset_column, "");
        CHECK(c->tables[1].mode == CFG_MODE_UPSERT);
        CHECK(c->tables[2].mode == CFG_MODE_REPLACE);
        CHECK(c->tables[2].line == 6);
        CHECK_STR(c->tables[3].dataset_column, "ds");
        CHECK(c->tables[3].key.n == 2);
        CHECK(cfg_list_has(&c->tables[3].key, "name"));
        CHECK(c->tables[3].generated.n == 1);
        CHECK(c->tables[3].mode == CFG_MODE_INSERT);
    }
    CHECK(cfg_find_table(c, "rule_repo") == NULL);
    cfg_free(c);
}

/* The mode table is what the words of the mode key name, and says what each does. */
static void test_mode_table(void)
{
    static const char *const names[] = {"replace", "upsert", "insert"};

    for (int i = 0; i < CFG_MODE_COUNT; i++) {
        char text[256];
        cfg *c;
        CHECK_STR(cfg_modes[i].name, names[i]);
        CHECK(cfg_mode_by_name(names[i]) == i);
        CHECK(cfg_modes[i].inserts);
        snprintf(text, sizeof(text), HEAD "[table t]\nmode = %s\nkey = dataset\n", names[i]);
        c = load(text);
        CHECK(c != NULL && c->tables[0].mode == (cfg_mode)i);
        cfg_free(c);
    }
    CHECK(cfg_mode_by_name("merge") == -1);
    CHECK(!cfg_modes[CFG_MODE_REPLACE].needs_key && cfg_modes[CFG_MODE_REPLACE].deletes &&
          cfg_modes[CFG_MODE_REPLACE].updates);
    CHECK(cfg_modes[CFG_MODE_UPSERT].needs_key && !cfg_modes[CFG_MODE_UPSERT].deletes &&
          cfg_modes[CFG_MODE_UPSERT].updates);
    CHECK(cfg_modes[CFG_MODE_INSERT].needs_key && !cfg_modes[CFG_MODE_INSERT].deletes &&
          !cfg_modes[CFG_MODE_INSERT].updates);
}

/* ---- values ----------------------------------------------------------------- */

static void test_all_values(void)
{
    cfg *c = load("[owlsync]\n"
                  "environment = dev-1_a\n"
                  "state_dir = /srv/owl\n"
                  "log_level = debug\n"
                  "log_format = json\n"
                  "metrics_file = /m.prom\n"
                  "[database]\n"
                  "conninfo = host=/run/postgresql dbname=owl\n"
                  "schema = tenant_1\n"
                  "[table owl_rule]\n"
                  "[export e]\n"
                  "datasets = a, b%\n"
                  "tables = owl_rule\n"
                  "signing_key = /k\n"
                  "schedule = 0 2 * * *\n"
                  "compression = gzip\n"
                  "compression_level = 9\n"
                  "skip_unchanged = no\n"
                  "valid_for = 2w\n"
                  "targets = qa, uat\n"
                  "parallel = 4\n"
                  "[import]\n"
                  "tables = owl_rule\n"
                  "watch = poll\n"
                  "poll_interval = 3600\n"
                  "settle_time = 0\n"
                  "max_bundle_size = 512M\n"
                  "max_unpacked_size = 2TiB\n"
                  "max_staleness = 36h\n"
                  "max_regex_value = 4M\n"
                  "max_regex_time = 2m\n"
                  "max_json_values = 50000\n"
                  "[rewrite r]\n"
                  "columns = owl_rule.conn, *.host\n"
                  "match = substring\n"
                  "from = a\n"
                  "to =\n");

    if (c == NULL)
        return;
    CHECK_STR(c->environment, "dev-1_a");
    CHECK_STR(c->state_dir, "/srv/owl");
    CHECK(c->log_level == LOG_DEBUG);
    CHECK(c->log_format == LOG_FORMAT_JSON);
    CHECK_STR(c->metrics_file, "/m.prom");
    CHECK_STR(c->conninfo, "host=/run/postgresql dbname=owl");
    CHECK_STR(c->schema, "tenant_1");
    CHECK(c->nexports == 1);
    if (c->nexports == 1) {
        const cfg_export *e = &c->exports[0];
        CHECK(e->datasets.n == 2 && cfg_list_has(&e->datasets, "b%"));
        CHECK(e->tables.n == 1);
        CHECK_STR(e->signing_key, "/k");
        CHECK_STR(e->schedule, "0 2 * * *");
        CHECK(e->compression == CFG_COMP_GZIP);
        CHECK(e->compression_level == 9);
        CHECK(!e->skip_unchanged);
        CHECK(e->valid_for == 14 * 86400);
        CHECK(e->targets.n == 2 && cfg_list_has(&e->targets, "uat"));
        CHECK(e->parallel == 4);
    }
    CHECK(c->import.tables.n == 1);
    CHECK(c->import.watch == CFG_WATCH_POLL);
    CHECK(c->import.poll_interval == 3600);
    CHECK(c->import.settle_time == 0);
    CHECK(c->import.max_bundle_size == 512ULL << 20);
    CHECK(c->import.max_unpacked_size == 2ULL << 40);
    CHECK(c->import.max_staleness == 36 * 3600);
    CHECK(c->import.max_regex_value == 4ULL << 20);
    CHECK(c->import.max_regex_time == 120);
    CHECK(c->import.max_json_values == 50000);
    CHECK(c->nrewrites == 1);
    if (c->nrewrites == 1) {
        CHECK_STR(c->rewrites[0].name, "r");
        CHECK(c->rewrites[0].line == 33);
        CHECK(c->rewrites[0].columns.n == 2);
        CHECK(c->rewrites[0].match == CFG_MATCH_SUBSTRING);
        CHECK_STR(c->rewrites[0].from, "a");
        CHECK_STR(c->rewrites[0].to, "");
    }
    cfg_free(c);
}

static void test_enums(void)
{
    cfg *c;

    c = load(HEAD "log_level = error\n[table t]\nmode = upsert\n[import]\nwatch = inotify\n"
                  "[rewrite r]\ncolumns = t.*\nmatch = regex\nfrom = ^a(b)$\nto = \\1\n");
    if (c != NULL) {
        CHECK(c->log_level == LOG_ERROR);
        CHECK(c->tables[0].mode == CFG_MODE_UPSERT);
        CHECK(c->import.watch == CFG_WATCH_INOTIFY);
        CHECK(c->rewrites[0].match == CFG_MATCH_REGEX);
        CHECK_STR(c->rewrites[0].to, "\\1");
    }
    cfg_free(c);
    c = load(HEAD "log_level = warn\n[export e]\ndatasets = d\ncompression = none\n"
                  "compression_level = 99\n");
    if (c != NULL) {
        CHECK(c->log_level == LOG_WARN);
        CHECK(c->exports[0].compression == CFG_COMP_NONE);
        CHECK(c->exports[0].compression_level == 0);
    }
    cfg_free(c);
    c = load(HEAD "[export e]\ndatasets = d\ncompression_level = 19\n");
    if (c != NULL)
        CHECK(c->exports[0].compression_level == 19);
    cfg_free(c);

    EXPECT_ERR(HEAD "log_level = loud\n",
               "t.ini:3: [owlsync] log_level: invalid value \"loud\" (expected error, "
               "warn, info or debug)");
    EXPECT_ERR(HEAD "[table t]\nmode = merge\n",
               "t.ini:4: [table t] mode: invalid value \"merge\" (expected replace, "
               "upsert or insert)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\ncompression = lz4\n",
               "t.ini:5: [export e] compression: invalid value \"lz4\" (expected zstd, "
               "gzip or none)");
    EXPECT_ERR(HEAD "[import]\nwatch = fanotify\n",
               "t.ini:4: [import] watch: invalid value \"fanotify\" (expected auto, "
               "inotify or poll)");
    EXPECT_ERR(HEAD "[rewrite r]\ncolumns = a.b\nmatch = glob\nfrom = x\nto = y\n",
               "t.ini:5: [rewrite r] match: invalid value \"glob\" (expected exact, "
               "substring or regex)");
    EXPECT_ERR(HEAD "[import]\nwatch = Poll\n",
               "t.ini:4: [import] watch: invalid value \"Poll\" (expected auto, "
               "inotify or poll)");
}

static void test_value_errors(void)
{
    EXPECT_ERR(HEAD "[import]\nmax_bundle_size = 12X\n",
               "t.ini:4: [import] max_bundle_size: invalid size \"12X\"");
    EXPECT_ERR(HEAD "[import]\nmax_unpacked_size = -1G\n",
               "t.ini:4: [import] max_unpacked_size: invalid size \"-1G\"");
    EXPECT_ERR(HEAD "[import]\nmax_unpacked_size = 99999999999999999999\n",
               "t.ini:4: [import] max_unpacked_size: invalid size "
               "\"99999999999999999999\"");
    EXPECT_ERR(HEAD "[import]\nmax_bundle_size = 0\n",
               "t.ini:4: [import] max_bundle_size: must be greater than 0");
    EXPECT_ERR(HEAD "[import]\nmax_bundle_size =\n",
               "t.ini:4: [import] max_bundle_size: invalid size \"\"");
    EXPECT_ERR(HEAD "[import]\nmax_regex_value = 0\n", "t.ini:4: [import] max_regex_value: must be greater than 0");
    EXPECT_ERR(HEAD "[import]\nmax_regex_time = 0\n", "t.ini:4: [import] max_regex_time: must be greater than 0");
    EXPECT_ERR(HEAD "[import]\nmax_json_values = 0\n",
               "t.ini:4: [import] max_json_values: 0 is out of range (1..2147483647)");
    EXPECT_ERR(HEAD "[import]\nmax_staleness = 5x\n",
               "t.ini:4: [import] max_staleness: invalid duration \"5x\"");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nvalid_for = -7d\n",
               "t.ini:5: [export e] valid_for: invalid duration \"-7d\"");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nvalid_for = 0\n",
               "t.ini:5: [export e] valid_for: must be greater than 0");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nskip_unchanged = maybe\n",
               "t.ini:5: [export e] skip_unchanged: invalid boolean \"maybe\" (expected "
               "true or false)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nparallel = 0\n",
               "t.ini:5: [export e] parallel: 0 is out of range (1..16)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nparallel = 17\n",
               "t.ini:5: [export e] parallel: 17 is out of range (1..16)");
    EXPECT_ERR(HEAD "[import]\npoll_interval = 0\n",
               "t.ini:4: [import] poll_interval: 0 is out of range (1..3600)");
    EXPECT_ERR(HEAD "[import]\npoll_interval = 3601\n",
               "t.ini:4: [import] poll_interval: 3601 is out of range (1..3600)");
    EXPECT_ERR(HEAD "[import]\npoll_interval = 5s\n",
               "t.ini:4: [import] poll_interval: invalid number \"5s\"");
    EXPECT_ERR(HEAD "[import]\npoll_interval = +5\n",
               "t.ini:4: [import] poll_interval: invalid number \"+5\"");
    EXPECT_ERR(HEAD "[import]\nsettle_time = -1\n",
               "t.ini:4: [import] settle_time: -1 is out of range (0..3600)");
    EXPECT_ERR(HEAD "[import]\nsettle_time = 99999999999999999999999\n",
               "t.ini:4: [import] settle_time: 99999999999999999999999 is out of range "
               "(0..3600)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\ncompression_level = 20\n",
               "t.ini:5: [export e] compression_level: 20 is out of range for zstd "
               "(1..19)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\ncompression_level = 0\n",
               "t.ini:5: [export e] compression_level: 0 is out of range for zstd "
               "(1..19)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\ncompression_level = 10\ncompression = gzip\n",
               "t.ini:5: [export e] compression_level: 10 is out of range for gzip "
               "(1..9)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\ncompression_level = high\n",
               "t.ini:5: [export e] compression_level: invalid number \"high\"");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nschedule = 0 2 * *\n",
               "t.ini:5: [export e] schedule: expected 5 fields (minute hour day month "
               "weekday), got 4");
    EXPECT_ERR(HEAD "state_dir =\n", "t.ini:3: [owlsync] state_dir: must not be empty");
}

static void test_names(void)
{
    cfg *c;

    EXPECT_ERR("[owlsync]\nenvironment = pr od\n",
               "t.ini:2: [owlsync] environment: invalid name \"pr od\" (1 to 63 letters, "
               "digits, _ or -)");
    EXPECT_ERR("[owlsync]\nenvironment = prod/x\n",
               "t.ini:2: [owlsync] environment: invalid name \"prod/x\" (1 to 63 letters, "
               "digits, _ or -)");
    EXPECT_ERR("[owlsync]\nenvironment =\n",
               "t.ini:2: [owlsync] environment: invalid name \"\" (1 to 63 letters, "
               "digits, _ or -)");
    EXPECT_ERR("[owlsync]\nenvironment = "
               "a234567890123456789012345678901234567890123456789012345678901234\n",
               "t.ini:2: [owlsync] environment: invalid name "
               "\"a234567890123456789012345678901234567890123456789012345678901234\" "
               "(1 to 63 letters, digits, _ or -)");
    c = load("[owlsync]\nenvironment = "
             "a23456789012345678901234567890123456789012345678901234567890123\n");
    cfg_free(c);
    EXPECT_ERR(HEAD "[export ../x]\ndatasets = d\n",
               "t.ini:3: invalid export job name \"../x\" (1 to 63 letters, digits, _ "
               "or -)");
    EXPECT_ERR(HEAD "[table 1abc]\n",
               "t.ini:3: invalid table name \"1abc\" (a letter or _, then up to 62 "
               "letters, digits or _)");
    EXPECT_ERR(HEAD "[table owl-rule]\n",
               "t.ini:3: invalid table name \"owl-rule\" (a letter or _, then up to 62 "
               "letters, digits or _)");
    c = load(HEAD "[table _t9]\n[table "
                  "a23456789012345678901234567890123456789012345678901234567890123]\n");
    if (c != NULL)
        CHECK(c->ntables == 2);
    cfg_free(c);
    EXPECT_ERR(HEAD "[table "
                    "a234567890123456789012345678901234567890123456789012345678901234]\n",
               "t.ini:3: invalid table name "
               "\"a234567890123456789012345678901234567890123456789012345678901234\" "
               "(a letter or _, then up to 62 letters, digits or _)");
    EXPECT_ERR(HEAD "[database]\nschema = my-schema\n",
               "t.ini:4: [database] schema: invalid name \"my-schema\" (a letter or _, "
               "then up to 62 letters, digits or _)");
    EXPECT_ERR(HEAD "[table t]\ndataset_column = ds name\n",
               "t.ini:4: [table t] dataset_column: invalid name \"ds name\" (a letter or "
               "_, then up to 62 letters, digits or _)");
    EXPECT_ERR(HEAD "[table t]\nkey = id, 2x\n",
               "t.ini:4: [table t] key: invalid name \"2x\" (a letter or _, then up to 62 "
               "letters, digits or _)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\ntargets = qa, u a\n",
               "t.ini:5: [export e] targets: invalid environment name \"u a\" (1 to 63 "
               "letters, digits, _ or -)");
    /* A rewrite name is any non-empty text. */
    c = load(HEAD "[rewrite spark master / dev]\ncolumns = *.x\nfrom = a\nto = b\n");
    if (c != NULL && c->nrewrites == 1)
        CHECK_STR(c->rewrites[0].name, "spark master / dev");
    cfg_free(c);
}

/* ---- sections and keys ------------------------------------------------------ */

static void test_sections(void)
{
    cfg *c;

    EXPECT_ERR(HEAD "[exports prod]\n",
               "t.ini:3: unknown section [exports prod]\nHINT: sections are [owlsync], "
               "[database], [table NAME], [export JOB], [import] and [rewrite NAME]");
    EXPECT_ERR(HEAD "[Owlsync]\n",
               "t.ini:3: unknown section [Owlsync]\nHINT: sections are [owlsync], "
               "[database], [table NAME], [export JOB], [import] and [rewrite NAME]");
    EXPECT_ERR(HEAD "[table]\n", "t.ini:3: section [table] needs a name: [table NAME]");
    EXPECT_ERR(HEAD "[export]\n", "t.ini:3: section [export] needs a name: [export JOB]");
    EXPECT_ERR(HEAD "[rewrite  ]\n",
               "t.ini:3: section [rewrite] needs a name: [rewrite NAME]");
    EXPECT_ERR(HEAD "[import inbox]\n",
               "t.ini:3: section [import] takes no name (got [import inbox])");
    EXPECT_ERR(HEAD "[table a]\n[table b]\n[table a]\n",
               "t.ini:5: duplicate section [table a] (first at line 3)");
    EXPECT_ERR(HEAD "[database]\n[owlsync]\n",
               "t.ini:4: duplicate section [owlsync] (first at line 1)");
    EXPECT_ERR(HEAD "[import]\n\n[import]\n",
               "t.ini:5: duplicate section [import] (first at line 3)");
    EXPECT_ERR(HEAD "[rewrite x]\ncolumns = *.a\nfrom = a\nto = b\n[rewrite x]\n",
               "t.ini:7: duplicate section [rewrite x] (first at line 3)");
    EXPECT_ERR("environment = prod\n[owlsync]\n",
               "t.ini:1: environment: key before any section\nHINT: start with [owlsync]");
    EXPECT_ERR(HEAD "[table t\n", "t.ini:3: syntax error: section header without \"]\"");
    EXPECT_ERR(HEAD "[table t ; x]\n",
               "t.ini:3: syntax error: section header without \"]\"");
    EXPECT_ERR(HEAD "state_dir /x\n",
               "t.ini:3: syntax error: expected \"key = value\" or \"[section]\"");
    EXPECT_ERR("", "t.ini: [owlsync] section is required (with environment = NAME)");
    EXPECT_ERR("[database]\nschema = s\n",
               "t.ini: [owlsync] section is required (with environment = NAME)");
    EXPECT_ERR("; hello\n\n[owlsync]\nstate_dir = /x\n",
               "t.ini:3: [owlsync] environment is required");

    /* Blanks inside the brackets, comments, CRLF, ':' as separator. */
    c = load("# comment\r\n; another\r\n[ owlsync ]  ; trailing\r\nenvironment: qa\r\n"
             "\r\n[  table   t1  ]\r\n");
    if (c != NULL) {
        CHECK_STR(c->environment, "qa");
        CHECK(c->ntables == 1 && strcmp(c->tables[0].name, "t1") == 0);
        CHECK(c->tables[0].line == 6);
    }
    cfg_free(c);
}

static void test_keys(void)
{
    cfg *c;

    EXPECT_ERR(HEAD "[import]\ninbx = /in\n", "t.ini:4: [import] inbx: unknown key");
    EXPECT_ERR(HEAD "Environment = x\n", "t.ini:3: [owlsync] Environment: unknown key");
    EXPECT_ERR(HEAD "[database]\nenvironment = x\n",
               "t.ini:4: [database] environment: unknown key");
    EXPECT_ERR(HEAD "[table t]\ntables = x\n", "t.ini:4: [table t] tables: unknown key");
    EXPECT_ERR(HEAD "= x\n", "t.ini:3: syntax error: no key before \"=\"");
    EXPECT_ERR(HEAD ": x\n", "t.ini:3: syntax error: no key before \":\"");
    EXPECT_ERR(HEAD "[import]\nwatch = poll\n; x\nwatch = auto\n",
               "t.ini:6: [import] watch: given twice (first at line 4)");
    EXPECT_ERR("[owlsync]\nenvironment = a\nenvironment = a\n",
               "t.ini:3: [owlsync] environment: given twice (first at line 2)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = a\ndatasets = b\n",
               "t.ini:5: [export e] datasets: given twice (first at line 4)");
    EXPECT_ERR(HEAD "[table t]\nmode = replace\nmode = replace\n",
               "t.ini:5: [table t] mode: given twice (first at line 4)");
    /* The same key in two different sections is fine. */
    c = load(HEAD "[table a]\nmode = insert\n[table b]\nmode = insert\n");
    cfg_free(c);
    /* Inline comments need a blank before ';'. */
    c = load(HEAD "[database]\nconninfo = dbname=owl;x ; the comment\n");
    if (c != NULL)
        CHECK_STR(c->conninfo, "dbname=owl;x");
    cfg_free(c);
}

static void test_long_line(void)
{
    char text[600];
    char line[300];
    cfg *c;

    /* 250 characters: an error, never truncated. */
    memset(line, 'a', 250);
    line[250] = '\0';
    memcpy(line, "datasets = ", 11);
    snprintf(text, sizeof(text), HEAD "[export e]\n%s\n", line);
    EXPECT_ERR(text, "t.ini:4: line too long (over 199 characters)\n"
                     "HINT: continue the list on indented lines");

    /* 199 characters is the longest accepted, 200 too many. */
    line[199] = '\0';
    snprintf(text, sizeof(text), HEAD "[export e]\n%s\n", line);
    c = load(text);
    if (c != NULL && c->nexports == 1 && c->exports[0].datasets.n == 1)
        CHECK(strlen(c->exports[0].datasets.v[0]) == 199 - 11);
    cfg_free(c);
    /* A CR before the newline does not count. */
    snprintf(text, sizeof(text), HEAD "[export e]\r\n%s\r\n", line);
    c = load(text);
    cfg_free(c);
    memset(line, 'a', 250);
    memcpy(line, "datasets = ", 11);
    line[200] = '\0';
    snprintf(text, sizeof(text), HEAD "[export e]\n%s", line);
    EXPECT_ERR(text, "t.ini:4: line too long (over 199 characters)\n"
                     "HINT: continue the list on indented lines");
    /* A long comment line is read as a comment, whatever its length (it is
     * never split into a line inih would parse). */
    memset(line, 'a', 250);
    line[0] = ';';
    memcpy(line + 230, "[broken = 1", 11); /* past the limit: never a line of its own */
    line[241] = '\0';
    snprintf(text, sizeof(text), "%s\n" HEAD, line);
    c = load(text);
    CHECK(c != NULL);
    cfg_free(c);
    memset(line, '#', 250);
    memcpy(line, "   # ", 5);
    line[250] = '\0';
    snprintf(text, sizeof(text), "%s\n" HEAD, line);
    c = load(text);
    CHECK(c != NULL);
    cfg_free(c);
    /* A key whose value cannot continue gets no hint that it can; a text
     * value, a continuation line and a conninfo get the one that applies. */
    memset(line, '1', 250);
    memcpy(line, "parallel = ", 11);
    line[250] = '\0';
    snprintf(text, sizeof(text), HEAD "[export e]\n%s\n", line);
    EXPECT_ERR(text, "t.ini:4: line too long (over 199 characters)");
    memset(line, 'a', 250);
    memcpy(line, "inbox = /", 9);
    snprintf(text, sizeof(text), HEAD "[import]\n%s\n", line);
    EXPECT_ERR(text, "t.ini:4: line too long (over 199 characters)\n"
                     "HINT: continue the value on indented lines (joined as they are, without a space)");
    memcpy(line, "conninfo =", 10);
    snprintf(text, sizeof(text), HEAD "[database]\n%s\n", line);
    EXPECT_ERR(text, "t.ini:4: line too long (over 199 characters)\n"
                     "HINT: continue the value on indented lines (joined with a space)");
    memcpy(line, "  a", 3);
    snprintf(text, sizeof(text), HEAD "[import]\ninbox = /x\n%s\n", line);
    EXPECT_ERR(text, "t.ini:5: line too long (over 199 characters)\n"
                     "HINT: split the value over more indented lines");
}

static void test_continuation(void)
{
    cfg *c = load(HEAD "[table owl_rule]\n[table job_schedule]\n"
                       "[export e]\n"
                       "datasets = a, b,   ; first two\n"
                       "    c\n"
                       "\n"
                       "    ; a comment line does not end the list\n"
                       "\td, e ; and two more\n"
                       "tables =\n"
                       "    owl_rule,\n"
                       "    job_schedule\n"
                       "schedule = 0 2 * * *\n"
                       "[rewrite r]\n"
                       "columns = owl_rule.a,\n"
                       "  job_schedule.*\n"
                       "from = x\nto = y\n");

    if (c != NULL && c->nexports == 1) {
        const cfg_export *e = &c->exports[0];
        CHECK(e->datasets.n == 5);
        if (e->datasets.n == 5) {
            CHECK_STR(e->datasets.v[0], "a");
            CHECK_STR(e->datasets.v[2], "c");
            CHECK_STR(e->datasets.v[3], "d");
            CHECK_STR(e->datasets.v[4], "e");
        }
        CHECK(e->tables.n == 2);
        CHECK_STR(e->schedule, "0 2 * * *");
        CHECK(c->rewrites[0].columns.n == 2);
    }
    cfg_free(c);

    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nschedule = 0 2\n  * * *\n",
               "t.ini:6: [export e] schedule: continuation line (indented) for a key that takes one line\n"
               "HINT: indented lines continue the previous key; start each key at the beginning of its line");
    EXPECT_ERR(HEAD "[import]\ntrusted_key = prod owlsync-ed25519:AAAA\n  /x.pub\n",
               "t.ini:5: [import] trusted_key: continuation line (indented) for a key that takes one line\n"
               "HINT: indented lines continue the previous key; start each key at the beginning of its line");
    EXPECT_ERR(HEAD "[export e]\ndatasets = a\n  b, a\n",
               "t.ini:5: [export e] datasets: \"a\" is listed twice");
    EXPECT_ERR(HEAD "[table t]\nkey = a,\n  b c\n",
               "t.ini:5: [table t] key: invalid name \"b c\" (a letter or _, then up to 62 "
               "letters, digits or _)");
    /* An indented key right after a header is a key, not a continuation. */
    c = load(HEAD "[import]\n  inbox = /in\nwatch = poll\n");
    if (c != NULL) {
        CHECK_STR(c->import.inbox, "/in");
        CHECK(c->import.watch == CFG_WATCH_POLL);
    }
    cfg_free(c);
    /* An indented key after a key line: inih continues the previous key with
     * it, and the error says so. */
    EXPECT_ERR(HEAD "[import]\ninbox = /in\n  watch = poll\n",
               "t.ini:5: [import] inbox: indented line \"watch = poll\" continues this key's value\n"
               "HINT: indented lines continue the previous key; start each key at the beginning of its line");
    EXPECT_ERR(HEAD "[export e]\ndatasets = a,\n  b\n  outbox = /o\n",
               "t.ini:6: [export e] datasets: indented line \"outbox = /o\" continues this key's value\n"
               "HINT: indented lines continue the previous key; start each key at the beginning of its line");
    /* Long text values continue: paths and patterns joined as they are,
     * conninfo with a space; a comment and a blank line between are skipped. */
    c = load(HEAD "[database]\nconninfo = host=/tmp port=5432\n  dbname=owl ; the metastore\n\n"
                  "  user=owl_import\n"
                  "[import]\ninbox = /srv/owlsync/\n  very/long/\n  inbox\n"
                  "[rewrite r]\ncolumns = owl_check_repo.conn_name\nmatch = regex\nfrom = ^(prod|\n  production)_pg$\n"
                  "to = qa_\n  pg\n");
    if (c != NULL) {
        CHECK_STR(c->conninfo, "host=/tmp port=5432 dbname=owl user=owl_import");
        CHECK_STR(c->import.inbox, "/srv/owlsync/very/long/inbox");
        if (c->nrewrites == 1) {
            CHECK_STR(c->rewrites[0].from, "^(prod|production)_pg$");
            CHECK_STR(c->rewrites[0].to, "qa_pg");
        }
    }
    cfg_free(c);
    /* a value over CFG_MAX_VALUE */
    {
        static char big[CFG_MAX_VALUE + 4096];
        size_t n = (size_t)snprintf(big, sizeof(big), HEAD "[import]\ninbox = /x\n");
        while (n + 200 < sizeof(big)) {
            memset(big + n, 'a', 150);
            big[n] = ' ';
            big[n + 149] = '\n';
            n += 150;
        }
        big[n] = '\0';
        EXPECT_ERR(big, "t.ini:32: [import] inbox: value longer than 4096 characters");
    }
}

static void test_repeatable(void)
{
    cfg *c = load(HEAD "[export e]\ndatasets = d\n"
                       "outbox = /a\n"
                       "outbox = /b, /c\n"
                       "  /d\n"
                       "[import]\n"
                       "trusted_key = dev owlsync-ed25519:AAAA=\n"
                       "trusted_key = qa   /etc/owlsync/qa.pub   ; file\n"
                       "trusted_key = dev /etc/owlsync/dev2.pub\n");

    if (c == NULL)
        return;
    CHECK(c->exports[0].outbox.n == 4);
    if (c->exports[0].outbox.n == 4) {
        CHECK_STR(c->exports[0].outbox.v[0], "/a");
        CHECK_STR(c->exports[0].outbox.v[3], "/d");
    }
    CHECK(c->import.ntrusted == 3);
    if (c->import.ntrusted == 3) {
        CHECK_STR(c->import.trusted[0].environment, "dev");
        CHECK_STR(c->import.trusted[0].key, "owlsync-ed25519:AAAA=");
        CHECK(c->import.trusted[0].line == 9);
        CHECK_STR(c->import.trusted[1].environment, "qa");
        CHECK_STR(c->import.trusted[1].key, "/etc/owlsync/qa.pub");
        CHECK(c->import.trusted[1].line == 10);
        CHECK_STR(c->import.trusted[2].key, "/etc/owlsync/dev2.pub");
    }
    cfg_free(c);

    EXPECT_ERR(HEAD "[export e]\ndatasets = d\noutbox = /a\noutbox = /a\n",
               "t.ini:6: [export e] outbox: \"/a\" is listed twice");
    EXPECT_ERR(HEAD "[import]\ntrusted_key = owlsync-ed25519:AAAA\n",
               "t.ini:4: [import] trusted_key: expected \"ENVIRONMENT KEY\", got "
               "\"owlsync-ed25519:AAAA\"");
    EXPECT_ERR(HEAD "[import]\ntrusted_key = dev /a b\n",
               "t.ini:4: [import] trusted_key: expected \"ENVIRONMENT KEY\", got "
               "\"dev /a b\"");
    EXPECT_ERR(HEAD "[import]\ntrusted_key =\n",
               "t.ini:4: [import] trusted_key: expected \"ENVIRONMENT KEY\", got \"\"");
    EXPECT_ERR(HEAD "[import]\ntrusted_key = de.v /a\n",
               "t.ini:4: [import] trusted_key: invalid environment name \"de.v\" (1 to 63 "
               "letters, digits, _ or -)");
}

/* encrypt_to (export), decrypt_key and require_encryption (import). */
static void test_encryption_keys(void)
{
    cfg *c = load(HEAD "[export e]\ndatasets = d\n"
                       "encrypt_to = qa owlsync-x25519:AAAA= /etc/owlsync/qa2.pub\n"
                       "encrypt_to = uat   /etc/owlsync/uat.pub   ; file\n"
                       "[export f]\ndatasets = d\n"
                       "[import]\n"
                       "trusted_key = dev /etc/owlsync/dev.pub\n"
                       "decrypt_key = /etc/owlsync/prod.enc\n"
                       "decrypt_key = /etc/owlsync/old.enc\n"
                       "require_encryption = true\n");

    if (c == NULL)
        return;
    CHECK(c->exports[0].nencrypt_to == 3);
    if (c->exports[0].nencrypt_to == 3) {
        CHECK_STR(c->exports[0].encrypt_to[0].environment, "qa");
        CHECK_STR(c->exports[0].encrypt_to[0].key, "owlsync-x25519:AAAA=");
        CHECK(c->exports[0].encrypt_to[0].line == 5);
        CHECK_STR(c->exports[0].encrypt_to[1].environment, "qa");
        CHECK_STR(c->exports[0].encrypt_to[1].key, "/etc/owlsync/qa2.pub");
        CHECK_STR(c->exports[0].encrypt_to[2].environment, "uat");
        CHECK_STR(c->exports[0].encrypt_to[2].key, "/etc/owlsync/uat.pub");
        CHECK(c->exports[0].encrypt_to[2].line == 6);
    }
    CHECK(c->exports[1].nencrypt_to == 0);
    CHECK(c->import.decrypt_key.n == 2);
    if (c->import.decrypt_key.n == 2)
        CHECK_STR(c->import.decrypt_key.v[1], "/etc/owlsync/old.enc");
    CHECK(c->import.require_encryption);
    cfg_free(c);

    c = load(HEAD "[import]\n");
    if (c != NULL) {
        CHECK(!c->import.require_encryption); /* the default */
        CHECK(c->import.decrypt_key.n == 0);
        cfg_free(c);
    }
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nencrypt_to = qa\n",
               "t.ini:5: [export e] encrypt_to: expected \"ENVIRONMENT KEY [KEY...]\", got \"qa\"");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nencrypt_to = q.a /k.pub\n",
               "t.ini:5: [export e] encrypt_to: invalid environment name \"q.a\" (1 to 63 "
               "letters, digits, _ or -)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\nencrypt_to = qa /k.pub\n  /k2.pub\n",
               "t.ini:6: [export e] encrypt_to: continuation line (indented) for a key that takes one line\n"
               "HINT: indented lines continue the previous key; start each key at the beginning of its line");
    EXPECT_ERR(HEAD "[import]\nrequire_encryption = true\n",
               "t.ini:3: [import] require_encryption: is true, but no decrypt_key is set: no bundle could be "
               "imported\nHINT: owlsync keygen --encryption -o PATH, then decrypt_key = PATH");
    EXPECT_ERR(HEAD "[import]\nrequire_encryption = maybe\n",
               "t.ini:4: [import] require_encryption: invalid boolean \"maybe\" (expected true or false)");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\ndecrypt_key = /k\n", "t.ini:5: [export e] decrypt_key: unknown key");
    {
        /* at most 64 keys in all */
        char text[8192];
        size_t used = (size_t)snprintf(text, sizeof(text), HEAD "[export e]\ndatasets = d\n");
        for (int i = 0; i < 22; i++)
            used += (size_t)snprintf(text + used, sizeof(text) - used, "encrypt_to = qa /a%d /b%d /c%d\n", i, i, i);
        EXPECT_ERR(text, "t.ini:26: [export e] encrypt_to: more than 64 keys: a bundle is encrypted to at most 64");
    }
}

/* ---- cross-checks ----------------------------------------------------------- */

static void test_cross_checks(void)
{
    cfg *c;

    EXPECT_ERR(HEAD "[export e]\n",
               "t.ini:3: [export e] datasets is required");
    EXPECT_ERR(HEAD "[export e]\ndatasets =\n",
               "t.ini:4: [export e] datasets: must not be empty");
    EXPECT_ERR(HEAD "[export e]\ndatasets = d\ntables = owl_rule, owl_rules\n",
               "t.ini:5: [export e] tables: \"owl_rules\" is not a configured table (not "
               "in the default table set)");
    EXPECT_ERR(HEAD "[table a]\n[export e]\ndatasets = d\ntables = a,\n  b\n",
               "t.ini:6: [export e] tables: \"b\" is not a configured table (no [table b] "
               "section)");
    /* Sections may come in any order: a table defined after the export is known. */
    c = load(HEAD "[export e]\ndatasets = d\ntables = b\n[import]\ntables = b\n"
                  "[table b]\n");
    cfg_free(c);
    EXPECT_ERR(HEAD "[import]\ntables = rule_repo, nope\n",
               "t.ini:4: [import] tables: \"nope\" is not a configured table (not in the "
               "default table set)");
    EXPECT_ERR(HEAD "[import]\ntables = a, a\n[table a]\n",
               "t.ini:4: [import] tables: \"a\" is listed twice");

    EXPECT_ERR(HEAD "[rewrite r]\nfrom = a\nto = b\n",
               "t.ini:3: [rewrite r] columns is required");
    EXPECT_ERR(HEAD "[rewrite r]\ncolumns = *.a\nto = b\n",
               "t.ini:3: [rewrite r] from is required");
    EXPECT_ERR(HEAD "[rewrite r]\ncolumns = *.a\nfrom = a\n",
               "t.ini:3: [rewrite r] to is required");
    EXPECT_ERR(HEAD "[rewrite r]\ncolumns = *.a\nfrom =\nto = b\n",
               "t.ini:5: [rewrite r] from: must not be empty");
    EXPECT_ERR(HEAD "[rewrite r]\ncolumns =\nfrom = a\nto = b\n",
               "t.ini:4: [rewrite r] columns: must not be empty");
    EXPECT_ERR(HEAD "[rewrite r]\ncolumns = owl_rule.conn, nope.conn\nfrom = a\nto = b\n",
               "t.ini:4: [rewrite r] columns: \"nope.conn\": \"nope\" is not a configured "
               "table (not in the default table set)");
    EXPECT_ERR(HEAD "[table t]\n[rewrite r]\ncolumns = t.*, u.*\nfrom = a\nto = b\n",
               "t.ini:5: [rewrite r] columns: \"u.*\": \"u\" is not a configured table (no "
               "[table u] section)");
    static const char *const bad_specs[] = {"conn", "*.*", ".conn", "t.", "t.a.b",
                                            "t.a b", "1t.a"};
    for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
        char text[200], msg[300];
        snprintf(text, sizeof(text), HEAD "[rewrite r]\ncolumns = %s\nfrom = a\nto = b\n",
                 bad_specs[i]);
        snprintf(msg, sizeof(msg),
                 "t.ini:4: [rewrite r] columns: invalid column \"%s\" (use TABLE.COLUMN, "
                 "TABLE.* or *.COLUMN)",
                 bad_specs[i]);
        EXPECT_ERR(text, msg);
    }
}

static void test_regex(void)
{
    char want[OWL_ERR_MAX], text[256];
    regex_t re;
    int rc;
    cfg *c;

    rc = regcomp(&re, "a(b", REG_EXTENDED);
    CHECK(rc != 0);
    regerror(rc, &re, text, sizeof(text));
    snprintf(want, sizeof(want), "t.ini:6: [rewrite r] from: invalid regex \"a(b\": %s",
             text);
    EXPECT_ERR(HEAD "[rewrite r]\ncolumns = *.a\nmatch = regex\nfrom = a(b\nto = b\n", want);

    /* The same text is fine when not a regex, and a good regex loads. */
    c = load(HEAD "[rewrite r]\ncolumns = *.a\nmatch = substring\nfrom = a(b\nto = b\n");
    cfg_free(c);
    c = load(HEAD "[rewrite r]\ncolumns = *.a\nmatch = regex\nfrom = ^(dev|qa)-([0-9]+)$\n"
                  "to = prod-\\2\n");
    if (c != NULL)
        CHECK_STR(c->rewrites[0].from, "^(dev|qa)-([0-9]+)$");
    cfg_free(c);
}

/* ---- files ------------------------------------------------------------------ */

static void test_files(void)
{
    const char *path;
    char want[512];
    cfg *c = NULL;
    owl_err err = {0};
    char *big;

    CHECK(cfg_load("/nonexistent/owlsync.ini", &c, &err) == -1);
    CHECK(c == NULL);
    CHECK(err.code == OWL_EUSAGE);
    snprintf(want, sizeof(want), "/nonexistent/owlsync.ini: cannot open: %s",
             strerror(ENOENT));
    CHECK_STR(err.msg, want);

    err_clear(&err);
    CHECK(cfg_load("/tmp", &c, &err) == -1);
    CHECK_STR(err.msg, "/tmp: not a regular file"); /* nor a FIFO: never waited on */

    /* A real file, with a UTF-8 byte-order mark. */
    path = WRITE_LIT("\xEF\xBB\xBF[owlsync]\nenvironment = qa\n");
    CHECK(cfg_load(path, &c, &err) == 0);
    if (c != NULL) {
        CHECK_STR(c->path, path);
        CHECK_STR(c->environment, "qa");
    }
    cfg_free(c);
    c = NULL;
    unlink(path);

    /* Messages name the file's path. */
    path = WRITE_LIT(HEAD "[import]\nmax_bundle_size = 12X\n");
    CHECK(cfg_load(path, &c, &err) == -1);
    snprintf(want, sizeof(want), "%s:4: [import] max_bundle_size: invalid size \"12X\"",
             path);
    CHECK_STR(err.msg, want);
    unlink(path);

    /* A NUL byte. */
    path = WRITE_LIT("[owlsync]\nenvironment = q\0a\n");
    CHECK(cfg_load(path, &c, &err) == -1);
    snprintf(want, sizeof(want), "%s:2: nul byte in line", path);
    CHECK_STR(err.msg, want);
    unlink(path);

    /* Larger than CFG_MAX_FILE: refused whole. */
    big = malloc(CFG_MAX_FILE + 2);
    CHECK(big != NULL);
    if (big == NULL)
        return;
    memset(big, '\n', CFG_MAX_FILE + 1);
    memcpy(big, HEAD, strlen(HEAD));
    big[CFG_MAX_FILE + 1] = '\0';
    path = write_temp(big, CFG_MAX_FILE + 1);
    CHECK(cfg_load(path, &c, &err) == -1);
    snprintf(want, sizeof(want), "%s: file too large (over %d bytes)", path, CFG_MAX_FILE);
    CHECK_STR(err.msg, want);
    CHECK(cfg_load_string("big.ini", big, &c, &err) == -1);
    CHECK_STR(err.msg, "big.ini: file too large (over 1048576 bytes)");
    unlink(path);
    /* Exactly CFG_MAX_FILE is fine. */
    path = write_temp(big, CFG_MAX_FILE);
    CHECK(cfg_load(path, &c, &err) == 0);
    cfg_free(c);
    unlink(path);
    free(big);
}

static void test_example(void)
{
    const char *path = "owlsync.ini.example";
    cfg *c = NULL;
    owl_err err = {0};
    const cfg_export *e;

    if (access(path, R_OK) != 0)
        path = "../../owlsync.ini.example";
    if (cfg_load(path, &c, &err) != 0) {
        printf("#   %s\n", err.msg);
        CHECK(0);
        return;
    }
    CHECK_STR(c->environment, "prod");
    CHECK(!c->tables_defaulted);
    CHECK(c->ntables == 7);
    CHECK(c->nexports == 2);
    e = cfg_find_export(c, "nightly");
    CHECK(e != NULL);
    if (e != NULL) {
        CHECK(e->datasets.n == 3);
        CHECK(e->outbox.n == 2);
        CHECK(e->tables.n == 6);
        CHECK(e->targets.n == 2);
    }
    CHECK(c->import.present);
    CHECK(c->import.ntrusted == 2);
    CHECK(c->nrewrites == 6);
    if (c->nrewrites == 6)
        CHECK(c->rewrites[1].match == CFG_MATCH_REGEX);
    cfg_free(c);
}

int main(void)
{
    RUN(test_parse_size);
    RUN(test_parse_duration);
    RUN(test_parse_bool);
    RUN(test_list_split);
    RUN(test_defaults);
    RUN(test_export_defaults);
    RUN(test_import_defaults);
    RUN(test_table_modes);
    RUN(test_mode_table);
    RUN(test_all_values);
    RUN(test_enums);
    RUN(test_value_errors);
    RUN(test_names);
    RUN(test_sections);
    RUN(test_keys);
    RUN(test_long_line);
    RUN(test_continuation);
    RUN(test_repeatable);
    RUN(test_encryption_keys);
    RUN(test_cross_checks);
    RUN(test_regex);
    RUN(test_files);
    RUN(test_example);
    return UNIT_DONE();
}
