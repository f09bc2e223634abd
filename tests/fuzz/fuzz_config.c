/* Fuzz harness of agent/config.c: the input is an owlsync.ini. It is read by
 * cfg_load from a file (a memory file, by its /proc/self/fd path) and by
 * cfg_load_string (see below for which when); the two must agree. A config that
 * loads is used as the program uses one: its rewrite rules compiled
 * (rewrite_compile), each export's schedule parsed (cron_parse), tables and
 * exports looked up by name. Properties: an error is a usage error (2) that
 * names the file; what loads has an environment, a table for every name an
 * export or the import lists, and levels and ranges within their bounds. */
#include "fuzz.h"
#include "owlsync/config.h"
#include "owlsync/cron.h"
#include "owlsync/rewrite.h"

static int memfd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    memfd = fuzz_memfd();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
    return 0;
}

static void use_config(const cfg *c)
{
    rewrite_set *rs = NULL;
    owl_err err;

    if (c->environment == NULL || c->environment[0] == '\0' || c->ntables == 0)
        fuzz_fail("a config loaded without an environment or tables");
    for (size_t i = 0; i < c->ntables; i++) {
        if (cfg_find_table(c, c->tables[i].name) == NULL || c->tables[i].mode >= CFG_MODE_COUNT)
            fuzz_fail("table %s is not found by its name, or has mode %d", c->tables[i].name, (int)c->tables[i].mode);
    }
    for (size_t i = 0; i < c->nexports; i++) {
        const cfg_export *e = &c->exports[i];
        cron_expr ce;
        if (cfg_find_export(c, e->name) == NULL)
            fuzz_fail("export %s is not found by its name", e->name);
        if (e->datasets.n == 0 || e->parallel < 1 || e->parallel > 16 || e->valid_for <= 0)
            fuzz_fail("export %s loaded with no datasets, parallel %d or valid_for %lld", e->name, e->parallel,
                      (long long)e->valid_for);
        for (size_t k = 0; k < e->tables.n; k++) {
            if (cfg_find_table(c, e->tables.v[k]) == NULL)
                fuzz_fail("export %s lists table %s, which is not configured", e->name, e->tables.v[k]);
        }
        if (e->schedule != NULL) {
            err_clear(&err);
            if (cron_parse(e->schedule, &ce, &err) < 0 && err.code != OWL_EUSAGE)
                fuzz_fail("cron_parse failed with code %d", err.code);
        }
    }
    for (size_t k = 0; k < c->import.tables.n; k++) {
        if (cfg_find_table(c, c->import.tables.v[k]) == NULL)
            fuzz_fail("[import] lists table %s, which is not configured", c->import.tables.v[k]);
    }
    if (c->import.poll_interval < 1 || c->import.max_bundle_size == 0 || c->import.max_unpacked_size == 0 ||
        (c->import.inbox != NULL && c->import.quarantine_dir == NULL))
        fuzz_fail("[import] loaded with poll_interval %d, a zero size, or an inbox without quarantine_dir",
                  c->import.poll_interval);
    err_clear(&err);
    if (rewrite_compile(c, &rs, &err) < 0)
        fuzz_fail("the rewrite rules of a loaded config do not compile: %s", err.msg);
    if (rewrite_rule_count(rs) != c->nrewrites)
        fuzz_fail("%zu rules compiled of %zu", rewrite_rule_count(rs), c->nrewrites);
    rewrite_set_free(rs);
}

/* Loads the input through cfg_load, from the memory file. */
static int load_file(const uint8_t *data, size_t size, cfg **c, owl_err *err)
{
    int rc;

    fuzz_memfd_set(memfd, data, size);
    err_clear(err);
    rc = cfg_load(path, c, err);
    if (rc < 0 && (*c != NULL || (err->code != OWL_EUSAGE && err->code != OWL_ERUNTIME) ||
                   strncmp(err->msg, path, strlen(path)) != 0))
        fuzz_fail("cfg_load failed with code %d and message \"%s\"", err->code, err->msg);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cfg *c = NULL, *c2 = NULL;
    owl_err err, err2;
    uint64_t h = 0;
    int rc, rc2;
    char *text;

    /* cfg_load_string reads the text; cfg_load (whose 1 MiB buffer costs the
     * sanitizers a new mapping each time) reads one input in eight again, and
     * they must agree. Only cfg_load reads a text with a NUL byte, one in eight
     * of those too. */
    for (size_t i = 0; i < size; i++)
        h = h * 31 + data[i];
    if (memchr(data, '\0', size) != NULL) {
        if (h % 8 == 0 && load_file(data, size, &c, &err) == 0)
            use_config(c);
        cfg_free(c);
        return 0;
    }
    text = malloc(size + 1);
    if (text == NULL)
        fuzz_setup_failed("malloc", "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    err_clear(&err);
    rc = cfg_load_string(path, text, &c, &err);
    if (rc < 0 && (c != NULL || (err.code != OWL_EUSAGE && err.code != OWL_ERUNTIME) ||
                   strncmp(err.msg, path, strlen(path)) != 0))
        fuzz_fail("cfg_load_string failed with code %d and message \"%s\"", err.code, err.msg);
    if (rc == 0)
        use_config(c);
    if (h % 8 == 0) {
        rc2 = load_file(data, size, &c2, &err2);
        if (rc2 != rc || (rc < 0 && strcmp(err.msg, err2.msg) != 0))
            fuzz_fail("cfg_load and cfg_load_string disagree: \"%s\" and \"%s\"", rc2 < 0 ? err2.msg : "loaded",
                      rc < 0 ? err.msg : "loaded");
        cfg_free(c2);
    }
    cfg_free(c);
    free(text);
    return 0;
}
