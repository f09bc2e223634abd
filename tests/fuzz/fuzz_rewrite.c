/* Fuzz harness of agent/rewrite.c: the input is COPY text rows of table
 * owl_check_repo, as a bundle's data/owl_check_repo.tsv holds them, and the
 * rules are fixed: the [rewrite] sections of owlsync.ini.example (substring,
 * regex with groups, a jsonb column) and a few that reach further (empty regex
 * matches, anchors, unmatched groups and backslashes in "to", a rule that can
 * break JSON, a TABLE.* and a *.COLUMN rule). Each row goes through
 * rewrite_row, then the whole input through rewrite_stream in chunks of a size
 * the input picks. Properties: a rewritten row has the table's columns; a
 * column no rule covers, and every NULL, comes out as it went in; every value
 * a rule changed still unescapes; the stream's output, errors and counts are
 * the rows' own. */
#include "fuzz.h"
#include "owlsync/config.h"
#include "owlsync/copytext.h"
#include "owlsync/manifest.h"
#include "owlsync/rewrite.h"

static const char config_text[] = "[owlsync]\n"
                                  "environment = qa\n"
                                  "[table owl_check_repo]\n"
                                  "key = dataset\n"
                                  "generated = id\n"
                                  "[rewrite connection]\n"
                                  "columns = owl_check_repo.conn_name, owl_check_repo.cmd_line\n"
                                  "match = substring\n"
                                  "from = prod_pg\n"
                                  "to = qa_pg\n"
                                  "[rewrite agents]\n"
                                  "columns = owl_check_repo.agent_name, owl_check_repo.cmd_line\n"
                                  "match = regex\n"
                                  "from = prod-agent-([0-9]+)\n"
                                  "to = qa-agent-\\1\n"
                                  "[rewrite database hosts]\n"
                                  "columns = owl_check_repo.conn_url\n"
                                  "match = substring\n"
                                  "from = //prod-db\n"
                                  "to = //qa-db\n"
                                  "[rewrite spark memory]\n"
                                  "columns = owl_check_repo.spark_conf\n"
                                  "match = substring\n"
                                  "from = --executor-memory 4g\n"
                                  "to = --executor-memory 2g\n"
                                  "[rewrite environment variable]\n"
                                  "columns = owl_check_repo.env_vars\n"
                                  "match = substring\n"
                                  "from = \"ENV\": \"prod\"\n"
                                  "to = \"ENV\": \"qa\"\n"
                                  "[rewrite json breaker]\n"
                                  "columns = owl_check_repo.env_vars\n"
                                  "match = regex\n"
                                  "from = \"(prod)([a-z]*)\n"
                                  "to = \\2\\1\n"
                                  "[rewrite empty matches]\n"
                                  "columns = owl_check_repo.spark_master, owl_check_repo.query\n"
                                  "match = regex\n"
                                  "from = x*\n"
                                  "to = <\\0>\n"
                                  "[rewrite anchored]\n"
                                  "columns = owl_check_repo.lib_path, owl_check_repo.cmd_line\n"
                                  "match = regex\n"
                                  "from = ^/opt/prod(/.*)?$\n"
                                  "to = /opt/qa\\1\n"
                                  "[rewrite groups and backslashes]\n"
                                  "columns = owl_check_repo.query, owl_check_repo.conn_url\n"
                                  "match = regex\n"
                                  "from = (a)(b)?|(\\\\)\n"
                                  "to = \\\\\\2\\1\\3\\9\n"
                                  "[rewrite every text column]\n"
                                  "columns = owl_check_repo.*\n"
                                  "match = exact\n"
                                  "from = prod\n"
                                  "to = qa\n"
                                  "[rewrite user everywhere]\n"
                                  "columns = *.user_nm\n"
                                  "match = exact\n"
                                  "from = svc_owl_prod\n"
                                  "to = svc_owl_qa\n";

/* owl_check_repo as owlsync exports it from sql/metastore.sql (id is
 * generated: it does not travel). */
static const char *const columns[][2] = {
    {"dataset", "text"},
    {"conn_name", "text"},
    {"conn_url", "text"},
    {"agent_name", "text"},
    {"cmd_line", "text"},
    {"spark_conf", "text"},
    {"spark_master", "text"},
    {"env_vars", "jsonb"},
    {"lib_path", "text"},
    {"query", "text"},
    {"is_active", "boolean"},
    {"user_nm", "text"},
    {"updt_ts", "timestamp with time zone"},
};
#define NCOLS (sizeof(columns) / sizeof(columns[0]))

static cfg *conf;
static rewrite_set *rules;
static manifest *man;
static const manifest_table *mt;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    manifest_table *t;
    owl_err err;

    err_clear(&err);
    if (cfg_load_string("fuzz.ini", config_text, &conf, &err) < 0 || rewrite_compile(conf, &rules, &err) < 0)
        fuzz_setup_failed("the rewrite rules", err.msg);
    man = manifest_new();
    if (man == NULL || (t = manifest_add_table(man, "owl_check_repo", "dataset")) == NULL)
        fuzz_setup_failed("manifest", "out of memory");
    for (size_t i = 0; i < NCOLS; i++) {
        if (manifest_table_add_column(t, columns[i][0], columns[i][1]) < 0)
            fuzz_setup_failed("manifest", "out of memory");
    }
    mt = t;
    return 0;
}

/* What the rows give through rewrite_row one by one. */
typedef struct expect {
    rewrite_table *t;
    owl_buf out;
    int rc;
    owl_err err;
} expect;

/* Whether a rule covers the column: "owl_check_repo.*" covers every text-like
 * column, and the others name text columns too. */
static bool column_ruled(size_t col)
{
    return strcmp(columns[col][1], "text") == 0 || strcmp(columns[col][1], "jsonb") == 0;
}

static void check_output(const char *row, size_t len, const char *out, size_t outlen)
{
    copytext_field in[NCOLS + 1], got[NCOLS + 1];
    size_t n = 0, n2 = 0;
    owl_err err;
    char *val = malloc(outlen + 1);

    if (val == NULL)
        fuzz_setup_failed("malloc", "out of memory");
    if (copytext_split(row, len, in, NCOLS + 1, &n, &err) < 0 || n != NCOLS)
        fuzz_fail("a row of %zu fields was rewritten", n);
    if (copytext_split(out, outlen, got, NCOLS + 1, &n2, &err) < 0 || n2 != NCOLS)
        fuzz_fail("a row of %zu fields is rewritten to one of %zu", n, n2);
    for (size_t j = 0; j < NCOLS; j++) {
        size_t vlen;
        bool same = in[j].len == got[j].len && memcmp(in[j].p, got[j].p, in[j].len) == 0;
        if ((copytext_is_null(in[j].p, in[j].len) || !column_ruled(j)) && !same)
            fuzz_fail("column %s changed, but it is NULL or no rule covers it", columns[j][0]);
        if (same || copytext_is_null(got[j].p, got[j].len))
            continue;
        if (got[j].len > outlen || copytext_unescape(got[j].p, got[j].len, val, &vlen, &err) < 0)
            fuzz_fail("column %s is rewritten to a value that does not unescape: %s", columns[j][0], err.msg);
    }
    free(val);
}

static int each_row(void *ctx, const char *row, size_t len, uint64_t rowno, owl_err *err)
{
    expect *x = ctx;
    const char *out;
    size_t outlen;

    if (rewrite_row(x->t, row, len, rowno, &out, &outlen, err) < 0)
        return -1;
    check_output(row, len, out, outlen);
    if (buf_add(&x->out, out, outlen) < 0 || buf_add(&x->out, "\n", 1) < 0)
        fuzz_setup_failed("buf_add", "out of memory");
    return 0;
}

static int sink(void *ctx, const char *buf, size_t len, owl_err *err)
{
    owl_buf *b = ctx;

    if (buf_add(b, buf, len) < 0)
        fuzz_setup_failed("buf_add", "out of memory");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    expect x;
    copytext_rows rows;
    rewrite_table *t2 = NULL;
    rewrite_stream *s = NULL;
    owl_buf got = OWL_BUF_INIT(SIZE_MAX / 2);
    owl_err err;
    size_t chunk = size > 0 ? (size_t)data[size - 1] % 13 + 1 : 1;
    int rc = 0;

    memset(&x, 0, sizeof(x));
    x.out = (owl_buf)OWL_BUF_INIT(SIZE_MAX / 2);
    err_clear(&x.err);
    err_clear(&err);
    if (rewrite_table_new(rules, mt, &x.t, &err) < 0 || rewrite_table_new(rules, mt, &t2, &err) < 0)
        fuzz_setup_failed("rewrite_table_new", err.msg);

    /* Row by row. */
    copytext_rows_init(&rows, REWRITE_MAX_ROW, "data/owl_check_repo.tsv");
    x.rc = copytext_rows_feed(&rows, in, size, each_row, &x, &x.err);
    if (x.rc == 0)
        x.rc = copytext_rows_end(&rows, each_row, &x, &x.err);
    copytext_rows_free(&rows);
    if (x.rc < 0 && x.err.code != OWL_EVERIFY && x.err.code != OWL_EUSAGE)
        fuzz_fail("rewrite_row failed with code %d: %s", x.err.code, x.err.msg);

    /* As a stream, in chunks. */
    if (rewrite_stream_new(t2, "data/owl_check_repo.tsv", sink, &got, &s, &err) < 0)
        fuzz_setup_failed("rewrite_stream_new", err.msg);
    for (size_t off = 0; rc == 0 && off < size; off += chunk)
        rc = rewrite_stream_feed(s, in + off, chunk < size - off ? chunk : size - off, &err);
    if (rc == 0)
        rc = rewrite_stream_end(s, &err);
    rewrite_stream_free(s);
    if ((rc < 0) != (x.rc < 0))
        fuzz_fail("row by row: %s; as a stream: %s", x.rc < 0 ? x.err.msg : "ok", rc < 0 ? err.msg : "ok");
    if (rc < 0 && strcmp(err.msg, x.err.msg) != 0)
        fuzz_fail("row by row: %s; as a stream: %s", x.err.msg, err.msg);
    if (rc == 0 && (got.len != x.out.len || (got.len > 0 && memcmp(got.p, x.out.p, got.len) != 0)))
        fuzz_fail("the stream's output differs from the rows'");
    for (size_t i = 0; i < rewrite_rule_count(rules); i++) {
        if (rewrite_table_changed(x.t, i) != rewrite_table_changed(t2, i))
            fuzz_fail("rule %s changed %llu values row by row, %llu as a stream", rewrite_rule_name(rules, i),
                      (unsigned long long)rewrite_table_changed(x.t, i),
                      (unsigned long long)rewrite_table_changed(t2, i));
    }

    /* A plain value (a dataset name, say) through the rules of a column. */
    if (size > 0 && memchr(data, '\0', size) == NULL) {
        char *v = NULL, *text = malloc(size + 1);
        if (text == NULL)
            fuzz_setup_failed("malloc", "out of memory");
        memcpy(text, data, size);
        text[size] = '\0';
        if (rewrite_value(x.t, columns[data[0] % NCOLS][0], text, &v, &err) == 0 && v == NULL)
            fuzz_fail("rewrite_value succeeded without a value");
        free(v);
        free(text);
    }

    buf_free(&got);
    buf_free(&x.out);
    rewrite_table_free(x.t);
    rewrite_table_free(t2);
    return 0;
}
