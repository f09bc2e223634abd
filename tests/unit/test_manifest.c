/* Unit tests for agent/manifest.c: building, serialising and strictly parsing
 * manifest.json, time stamps, and the inspect document. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "owlsync/manifest.h"
#include "unit.h"

#define HASH_A "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
#define HASH_B "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"

/* A manifest with every field set, two tables (one global). */
static manifest *sample(void)
{
    manifest *m = manifest_new();
    manifest_table *t;

    if (m == NULL)
        return NULL;
    memcpy(m->bundle_id, "0123456789abcdef0123456789abcdef", 33);
    memcpy(m->key_id, "89abcdef01234567", 17);
    if (manifest_set_string(&m->environment, "prod") < 0 || manifest_set_string(&m->job, "nightly-1") < 0 ||
        manifest_set_string(&m->schema, "public") < 0 ||
        manifest_set_string(&m->producer, "owlsync 0.1.0") < 0 || manifest_add_target(m, "qa") < 0 ||
        manifest_add_target(m, "uat_2") < 0 || manifest_add_dataset(m, "public.ds_1") < 0 ||
        manifest_add_dataset(m, "ds \"quoted\" \xc3\xa9t\xc3\xa9\t\\") < 0)
        goto fail;
    m->sequence = 42;
    m->created_at = INT64_C(1700000000123456);
    m->snapshot_at = INT64_C(1699999999000001);
    m->expires_at = INT64_C(1700604800999999);
    t = manifest_add_table(m, "owl_rule", "dataset");
    if (t == NULL || manifest_table_add_column(t, "dataset", "text") < 0 ||
        manifest_table_add_column(t, "rule_nm", "character varying(255)") < 0 ||
        manifest_table_add_column(t, "score", "numeric(10,2)") < 0)
        goto fail;
    t->rows = 3;
    t->bytes = 12345;
    memcpy(t->blake2b, HASH_A, 65);
    t = manifest_add_table(m, "global_settings", "");
    if (t == NULL || manifest_table_add_column(t, "k", "text") < 0 || manifest_table_add_column(t, "v", "jsonb") < 0)
        goto fail;
    t->rows = 0;
    t->bytes = 0;
    memcpy(t->blake2b, HASH_B, 65);
    return m;
fail:
    manifest_free(m);
    return NULL;
}

/* Whether two manifests are equal in every field; prints the first difference. */
static int same_manifest(const manifest *a, const manifest *b)
{
#define DIFF(what)                              \
    do {                                        \
        printf("#   differs: %s\n", what);       \
        return 0;                               \
    } while (0)
    if (a->version != b->version)
        DIFF("version");
    if (strcmp(a->bundle_id, b->bundle_id) != 0)
        DIFF("bundle_id");
    if (strcmp(a->environment, b->environment) != 0)
        DIFF("environment");
    if (strcmp(a->job, b->job) != 0)
        DIFF("job");
    if (a->sequence != b->sequence)
        DIFF("sequence");
    if (a->created_at != b->created_at || a->snapshot_at != b->snapshot_at || a->expires_at != b->expires_at)
        DIFF("times");
    if (a->ntargets != b->ntargets)
        DIFF("ntargets");
    for (size_t i = 0; i < a->ntargets; i++)
        if (strcmp(a->targets[i], b->targets[i]) != 0)
            DIFF("targets");
    if (strcmp(a->schema, b->schema) != 0)
        DIFF("schema");
    if (a->ndatasets != b->ndatasets)
        DIFF("ndatasets");
    for (size_t i = 0; i < a->ndatasets; i++)
        if (strcmp(a->datasets[i], b->datasets[i]) != 0)
            DIFF("datasets");
    if (strcmp(a->key_id, b->key_id) != 0)
        DIFF("key_id");
    if (strcmp(a->producer, b->producer) != 0)
        DIFF("producer");
    if (a->ntables != b->ntables)
        DIFF("ntables");
    for (size_t i = 0; i < a->ntables; i++) {
        const manifest_table *x = &a->tables[i], *y = &b->tables[i];
        if (strcmp(x->name, y->name) != 0 || strcmp(x->file, y->file) != 0 ||
            strcmp(x->dataset_column, y->dataset_column) != 0 || x->rows != y->rows || x->bytes != y->bytes ||
            strcmp(x->blake2b, y->blake2b) != 0 || x->ncolumns != y->ncolumns)
            DIFF("table");
        for (size_t j = 0; j < x->ncolumns; j++)
            if (strcmp(x->columns[j].name, y->columns[j].name) != 0 ||
                strcmp(x->columns[j].type, y->columns[j].type) != 0)
                DIFF("column");
    }
    return 1;
#undef DIFF
}

static void test_round_trip(void)
{
    manifest *m = sample(), *back = NULL;
    char *text = NULL, *text2 = NULL;
    size_t len = 0, len2 = 0;
    owl_err err;

    CHECK(m != NULL);
    if (m == NULL)
        return;
    err_clear(&err);
    CHECK(manifest_serialize(m, &text, &len, &err) == 0);
    if (text == NULL)
        goto out;
    CHECK(len == strlen(text));
    CHECK(len > 0 && text[len - 1] == '\n');
    /* fixed key order, format first; ASCII only */
    CHECK(strncmp(text, "{", 1) == 0);
    CHECK(strstr(text, "\"format\"") != NULL && strstr(text, "\"format\"") < strstr(text, "\"version\""));
    CHECK(strstr(text, "\"version\"") < strstr(text, "\"bundle_id\""));
    CHECK(strstr(text, "\"key_id\"") < strstr(text, "\"tables\""));
    CHECK_CONTAINS(text, "\"owlsync-bundle\"");
    CHECK_CONTAINS(text, "\"2023-11-14T22:13:20.123456Z\"");
    for (size_t i = 0; i < len; i++)
        CHECK((unsigned char)text[i] < 0x80);

    CHECK(manifest_parse(text, len, &back, &err) == 0);
    CHECK(back != NULL);
    if (back != NULL) {
        CHECK(same_manifest(m, back));
        CHECK_STR(back->datasets[1], "ds \"quoted\" \xc3\xa9t\xc3\xa9\t\\");
        CHECK_STR(back->tables[1].dataset_column, "");
        CHECK_STR(back->tables[0].file, "data/owl_rule.tsv");
        CHECK(manifest_find_table(back, "global_settings") == &back->tables[1]);
        CHECK(manifest_find_table(back, "nope") == NULL);
        /* the same bytes again */
        CHECK(manifest_serialize(back, &text2, &len2, &err) == 0);
        CHECK(text2 != NULL && len2 == len && memcmp(text, text2, len) == 0);
    }
    /* no trailing newline is fine too (JSON is JSON) */
    {
        manifest *m3 = NULL;
        CHECK(manifest_parse(text, len - 1, &m3, &err) == 0);
        manifest_free(m3);
    }
out:
    free(text);
    free(text2);
    manifest_free(m);
    manifest_free(back);
    manifest_free(NULL);
}

static void test_empty_lists(void)
{
    manifest *m = manifest_new(), *back = NULL;
    char *text = NULL;
    size_t len = 0;
    owl_err err;

    if (m == NULL)
        return;
    memcpy(m->bundle_id, "ffffffffffffffffffffffffffffffff", 33);
    memcpy(m->key_id, "0000000000000000", 17);
    manifest_set_string(&m->environment, "e");
    manifest_set_string(&m->job, "j");
    manifest_set_string(&m->schema, "s");
    CHECK(manifest_serialize(m, &text, &len, &err) == 0);
    CHECK(text != NULL && manifest_parse(text, len, &back, &err) == 0);
    CHECK(back != NULL && back->ntables == 0 && back->ntargets == 0 && back->ndatasets == 0);
    CHECK(back != NULL && back->created_at == 0);
    /* producer defaults */
    CHECK(back != NULL && strcmp(back->producer, "owlsync") == 0);
    free(text);
    manifest_free(m);
    manifest_free(back);
}

/* Formats usec and checks the text, then parses it back. */
static void time_is(int64_t usec, const char *want)
{
    char buf[TEXT_UTC_MAX];
    int64_t back = 0;

    text_utc(usec, TEXT_UTC_MICROS, buf, sizeof(buf));
    CHECK_STR(buf, want);
    if (manifest_parse_time(buf, &back) != 0 || back != usec) {
        printf("#   %s parsed back as %lld, not %lld\n", buf, (long long)back, (long long)usec);
        CHECK(0);
    }
}

static void test_times(void)
{
    int64_t v = 0;

    time_is(0, "1970-01-01T00:00:00.000000Z");
    time_is(1, "1970-01-01T00:00:00.000001Z");
    time_is(INT64_C(1700000000123456), "2023-11-14T22:13:20.123456Z");
    time_is(INT64_C(951782400000000), "2000-02-29T00:00:00.000000Z");
    time_is(-1, "1969-12-31T23:59:59.999999Z");
    time_is(-1000000, "1969-12-31T23:59:59.000000Z");
    time_is(-999999, "1969-12-31T23:59:59.000001Z");
    time_is(INT64_C(-2208988800000000), "1900-01-01T00:00:00.000000Z");
    time_is(INT64_C(-2208988799500000), "1900-01-01T00:00:00.500000Z");
    time_is(INT64_C(253402300799999999), "9999-12-31T23:59:59.999999Z");
    time_is(INT64_C(-62135596800000000), "0001-01-01T00:00:00.000000Z");

    /* fraction optional, 1 to 6 digits */
    CHECK(manifest_parse_time("2023-11-14T22:13:20Z", &v) == 0 && v == INT64_C(1700000000000000));
    CHECK(manifest_parse_time("2023-11-14T22:13:20.1Z", &v) == 0 && v == INT64_C(1700000000100000));
    CHECK(manifest_parse_time("2023-11-14T22:13:20.000123Z", &v) == 0 && v == INT64_C(1700000000000123));
    CHECK(manifest_parse_time("1969-12-31T23:59:59.5Z", &v) == 0 && v == -500000);

    static const char *bad[] = {
        "",
        "2023",
        "2023-11-14",
        "2023-11-14T22:13:20",
        "2023-11-14T22:13:20.",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20.1234567Z",
        "2023-11-14 22:13:20Z",
        "2023-11-14t22:13:20Z",
        "2023-11-14T22:13:20z",
        "2023-11-14T22:13:20+00:00",
        "2023-11-14T22:13:20Z ",
        " 2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20ZZ",
        "2023-1-14T22:13:20Z",
        "23-11-14T22:13:20Z",
        "+2023-11-14T22:13:20Z",
        "-2023-11-14T22:13:20Z",
        "2023-13-14T22:13:20Z",
        "2023-00-14T22:13:20Z",
        "2023-11-00T22:13:20Z",
        "2023-11-32T22:13:20Z",
        "2023-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2023-04-31T00:00:00Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:60:00Z",
        "2023-11-14T22:13:61Z",
        "2023-11-14T22:13:2aZ",
        "2023-11-14T22:13:20.12a4Z",
        "2023-11-14T22:13:20.-1Z",
        "2023\xef\xbc\x8d" "11-14T22:13:20Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (manifest_parse_time(bad[i], &v) != -1) {
            printf("#   time accepted: \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
    CHECK(manifest_parse_time("2024-02-29T00:00:00Z", &v) == 0);
    CHECK(manifest_parse_time("2000-02-29T00:00:00Z", &v) == 0);
}

/* ---- strict parsing ---- */

/* The sample's JSON as a jansson object, for a test to damage. */
static json_t *sample_json(void)
{
    manifest *m = sample();
    char *text = NULL;
    size_t len = 0;
    owl_err err;
    json_t *j = NULL;

    if (m != NULL && manifest_serialize(m, &text, &len, &err) == 0)
        j = json_loadb(text, len, 0, NULL);
    free(text);
    manifest_free(m);
    return j;
}

static json_t *table0(json_t *root)
{
    return json_array_get(json_object_get(root, "tables"), 0);
}

static json_t *column0(json_t *root)
{
    return json_array_get(json_object_get(table0(root), "columns"), 0);
}

/* Whether a message is one line without control characters (UTF-8 passes). */
static int one_line(const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    }
    return 1;
}

/* Parses bytes expecting failure with OWL_EVERIFY and a message containing want;
 * line is the caller's, for the report. */
static void bytes_rejected(int line, const char *buf, size_t len, const char *want)
{
    manifest *m = (manifest *)&m; /* not NULL: parse must reset it */
    owl_err err;

    err_clear(&err);
    if (manifest_parse(buf, len, &m, &err) != -1 || err.code != OWL_EVERIFY || m != NULL ||
        strstr(err.msg, want) == NULL || !one_line(err.msg)) {
        printf("#   line %d: want failure with \"%s\", got code %d \"%s\"\n", line, want, err.code, err.msg);
        CHECK(0);
        if (m != (manifest *)&m)
            manifest_free(m);
    }
}

/* Serialises j (consumed) and checks that parsing it fails as bytes_rejected does. */
static void json_rejected(int line, json_t *j, const char *want)
{
    char *text;

    if (j == NULL) {
        printf("#   line %d: no JSON to test\n", line);
        CHECK(0);
        return;
    }
    text = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(j);
    if (text == NULL) {
        CHECK(0);
        return;
    }
    bytes_rejected(line, text, strlen(text), want);
    free(text);
}

/* Sets key of the object at (root, where) to v and expects rejection. */
#define REJECT_SET(where, key, v, want)                        \
    do {                                                       \
        json_t *r_ = sample_json();                            \
        json_object_set_new(where(r_), key, v);                \
        json_rejected(__LINE__, r_, want);                     \
    } while (0)

#define REJECT_DEL(where, key, want)                           \
    do {                                                       \
        json_t *r_ = sample_json();                            \
        json_object_del(where(r_), key);                       \
        json_rejected(__LINE__, r_, want);                     \
    } while (0)

static json_t *top(json_t *root)
{
    return root;
}

static void test_parse_not_a_manifest(void)
{
    bytes_rejected(__LINE__, "", 0, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{", 1, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{}x", 3, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{} {}", 5, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "\xff\xfe{}", 4, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{\"a\":\"\\u0000\"}", 14, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{\"a\":1}\0junk", 12, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "[]", 2, "manifest.json is not a JSON object");
    bytes_rejected(__LINE__, "[{}]", 4, "manifest.json is not a JSON object");
    /* jansson quotes the text near an error: hostile bytes there stay out of the message */
    bytes_rejected(__LINE__, "{\"a\":\x1b[2J}", 10, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{\"a\":\"x\ny\"}", 12, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{\"a\":tru\x07e}", 12, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{\"a\":\"\xff\xfe\"}", 10, "manifest.json is not valid JSON");
    /* jansson itself wants an object or array at the top */
    bytes_rejected(__LINE__, "\"owlsync-bundle\"", 16, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "1", 1, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "null", 4, "manifest.json is not valid JSON");
    bytes_rejected(__LINE__, "{}", 2, "manifest: \"format\" is missing or not a string");
    /* a bigger integer than JSON numbers in jansson hold */
    bytes_rejected(__LINE__, "{\"format\":\"owlsync-bundle\",\"version\":99999999999999999999}", 57,
                   "manifest.json is not valid JSON");
}

/* The data's encoding is recorded; a reader takes UTF8, or none (older bundles). */
static void test_encoding(void)
{
    json_t *j = sample_json();
    manifest *m = NULL;
    owl_err err = {0};
    char *text;

    CHECK(j != NULL && json_is_string(json_object_get(j, "encoding")));
    CHECK_STR(json_string_value(json_object_get(j, "encoding")), "UTF8");
    REJECT_SET(top, "encoding", json_string("LATIN1"), "manifest: the data is in encoding \"LATIN1\"; owlsync reads UTF8");
    REJECT_SET(top, "encoding", json_integer(8), "manifest: \"encoding\" is missing or not a string");
    /* without the field: UTF8, as every producer wrote */
    json_object_del(j, "encoding");
    text = json_dumps(j, JSON_COMPACT);
    CHECK(text != NULL && manifest_parse(text, strlen(text), &m, &err) == 0);
    manifest_free(m);
    free(text);
    json_decref(j);
}

static void test_parse_format_version(void)
{
    REJECT_SET(top, "format", json_string("owlsync-bundle2"), "manifest: format is not \"owlsync-bundle\"");
    REJECT_SET(top, "format", json_string(""), "manifest: format is not \"owlsync-bundle\"");
    REJECT_SET(top, "format", json_integer(1), "manifest: \"format\" is missing or not a string");
    REJECT_SET(top, "version", json_integer(3),
               "manifest: bundle format version 3 is not supported (this owlsync reads versions 1 and 2)");
    REJECT_SET(top, "version", json_integer(0), "version 0 is not supported");
    REJECT_SET(top, "version", json_integer(-1), "manifest: \"version\" is missing or not a non-negative integer");
    REJECT_SET(top, "version", json_string("1"), "manifest: \"version\" is missing or not a non-negative integer");
    REJECT_SET(top, "version", json_real(1.0), "manifest: \"version\" is missing or not a non-negative integer");
    REJECT_SET(top, "version", json_true(), "\"version\" is missing or not a non-negative integer");
}

static json_t *column2(json_t *root)
{
    return json_array_get(json_object_get(table0(root), "columns"), 2);
}

/* References: columns carried to translate foreign keys, never written; a
 * manifest with one is version 2, and says so. */
static void test_refs(void)
{
    manifest *m = sample(), *back = NULL;
    char *text = NULL;
    size_t len = 0;
    owl_err err;

    CHECK(m != NULL);
    if (m == NULL)
        return;
    err_clear(&err);
    CHECK(!manifest_has_refs(m));
    CHECK(manifest_serialize(m, &text, &len, &err) == 0);
    CHECK(text != NULL && strstr(text, "\"version\": 1,") != NULL && strstr(text, "\"ref\"") == NULL);
    free(text);
    m->tables[0].columns[2].ref = true;
    CHECK(manifest_has_refs(m));
    CHECK(manifest_serialize(m, &text, &len, &err) == 0);
    CHECK(text != NULL && strstr(text, "\"version\": 2,") != NULL);
    CHECK(text != NULL && manifest_parse(text, len, &back, &err) == 0);
    CHECK(back != NULL && back->version == 2 && back->tables[0].columns[2].ref && !back->tables[0].columns[1].ref);
    free(text);
    manifest_free(back);
    manifest_free(m);

    /* a reference in a version-1 manifest, a reference that is not true, the dataset column as one */
    REJECT_SET(column2, "ref", json_true(), "manifest: table owl_rule column score is not a valid reference");
    {
        json_t *r = sample_json();
        json_object_set_new(r, "version", json_integer(2));
        json_object_set_new(column2(r), "ref", json_false());
        json_rejected(__LINE__, r, "column score is not a valid reference");
        r = sample_json();
        json_object_set_new(r, "version", json_integer(2));
        json_object_set_new(column0(r), "ref", json_true());
        json_rejected(__LINE__, r, "column dataset is not a valid reference");
        r = sample_json(); /* version 2 says there are references */
        json_object_set_new(r, "version", json_integer(2));
        json_rejected(__LINE__, r, "manifest: version 2 but no column is a reference");
    }
}

static void test_parse_missing_fields(void)
{
    static const char *keys[] = {"format", "version", "bundle_id", "environment", "job", "sequence",
                                 "created_at", "snapshot_at", "expires_at", "targets", "schema",
                                 "datasets", "key_id", "producer", "tables"};
    static const char *tkeys[] = {"name", "file", "columns", "dataset_column", "rows", "bytes", "blake2b"};
    char want[128];

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(want, sizeof(want), "\"%s\" is missing", keys[i]);
        REJECT_DEL(top, keys[i], want);
        /* null is not the value either */
        REJECT_SET(top, keys[i], json_null(), want);
    }
    for (size_t i = 0; i < sizeof(tkeys) / sizeof(tkeys[0]); i++) {
        if (strcmp(tkeys[i], "columns") == 0)
            snprintf(want, sizeof(want), "has no valid \"columns\" list");
        else
            snprintf(want, sizeof(want), "\"%s\" is missing", tkeys[i]);
        REJECT_DEL(table0, tkeys[i], want);
    }
    REJECT_DEL(column0, "name", "manifest: table owl_rule column 1 is not valid");
    REJECT_DEL(column0, "type", "manifest: table owl_rule column 1 is not valid");
}

static void test_parse_wrong_types(void)
{
    /* strings given as numbers, lists, objects */
    static const char *strs[] = {"bundle_id", "environment", "job", "created_at", "snapshot_at",
                                 "expires_at", "schema", "key_id", "producer"};
    char want[128];

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        snprintf(want, sizeof(want), "manifest: \"%s\" is missing or not a string", strs[i]);
        REJECT_SET(top, strs[i], json_integer(7), want);
        REJECT_SET(top, strs[i], json_array(), want);
        REJECT_SET(top, strs[i], json_object(), want);
    }
    REJECT_SET(top, "sequence", json_string("42"), "manifest: \"sequence\" is missing or not a non-negative integer");
    REJECT_SET(top, "sequence", json_real(4.5), "\"sequence\" is missing or not a non-negative integer");
    REJECT_SET(top, "sequence", json_integer(-1), "\"sequence\" is missing or not a non-negative integer");
    REJECT_SET(top, "targets", json_string("qa"), "manifest: \"targets\" is missing or not a list");
    REJECT_SET(top, "targets", json_object(), "manifest: \"targets\" is missing or not a list");
    REJECT_SET(top, "targets", json_pack("[i]", 1), "manifest: \"targets\" item 1 is not valid");
    REJECT_SET(top, "targets", json_pack("[s,s]", "qa", "q/a"), "manifest: \"targets\" item 2 is not valid");
    REJECT_SET(top, "datasets", json_string("ds"), "manifest: \"datasets\" is missing or not a list");
    REJECT_SET(top, "datasets", json_pack("[s,n]", "a"), "manifest: \"datasets\" item 2 is not valid");
    REJECT_SET(top, "datasets", json_pack("[s]", ""), "manifest: \"datasets\" item 1 is not valid");
    REJECT_SET(top, "tables", json_object(), "manifest: \"tables\" is missing, not a list, or longer than 256");
    REJECT_SET(top, "tables", json_pack("[i]", 3), "manifest: table 1 is not an object");
    REJECT_SET(top, "tables", json_pack("[[]]"), "manifest: table 1 is not an object");

    REJECT_SET(table0, "name", json_integer(1), "manifest: table 1 \"name\" is missing or not a string");
    REJECT_SET(table0, "file", json_null(), "manifest: table owl_rule \"file\" is missing or not a string");
    REJECT_SET(table0, "dataset_column", json_false(), "\"dataset_column\" is missing or not a string");
    REJECT_SET(table0, "blake2b", json_integer(0), "\"blake2b\" is missing or not a string");
    REJECT_SET(table0, "rows", json_string("3"), "manifest: table owl_rule \"rows\" is missing or not a non-negative integer");
    REJECT_SET(table0, "bytes", json_real(1.0), "manifest: table owl_rule \"bytes\" is missing or not a non-negative integer");
    REJECT_SET(table0, "columns", json_object(), "manifest: table owl_rule has no valid \"columns\" list");
    REJECT_SET(table0, "columns", json_array(), "manifest: table owl_rule has no valid \"columns\" list");
    REJECT_SET(table0, "columns", json_pack("[s]", "dataset"), "manifest: table owl_rule column 1 is not valid");
    REJECT_SET(column0, "name", json_integer(1), "manifest: table owl_rule column 1 is not valid");
    REJECT_SET(column0, "type", json_array(), "manifest: table owl_rule column 1 is not valid");
}

static void test_parse_shapes(void)
{
    char big[2048];

    /* bundle_id: exactly 32 lowercase hex digits */
    REJECT_SET(top, "bundle_id", json_string("0123456789abcdef0123456789abcde"), "manifest: bundle_id is not 32 hex digits");
    REJECT_SET(top, "bundle_id", json_string("0123456789abcdef0123456789abcdeg"), "manifest: bundle_id is not 32 hex digits");
    REJECT_SET(top, "bundle_id", json_string("0123456789ABCDEF0123456789abcdef"), "manifest: bundle_id is not 32 hex digits");
    REJECT_SET(top, "bundle_id", json_string(""), "manifest: bundle_id is not 32 hex digits");
    REJECT_SET(top, "bundle_id", json_string("0123456789abcdef0123456789abcdef0"), "\"bundle_id\" is too long");
    REJECT_SET(top, "bundle_id", json_string("../../../../../../../../etc/pass"), "manifest: bundle_id is not 32 hex digits");
    /* key_id: 16 hex digits */
    REJECT_SET(top, "key_id", json_string("89abcdef0123456"), "manifest: key_id is not 16 hex digits");
    REJECT_SET(top, "key_id", json_string("89abcdef0123456X"), "manifest: key_id is not 16 hex digits");
    /* names that end up in file names */
    REJECT_SET(top, "environment", json_string("prod/x"), "manifest: environment is not a valid name");
    REJECT_SET(top, "environment", json_string(".."), "manifest: environment is not a valid name");
    REJECT_SET(top, "environment", json_string(""), "manifest: environment is not a valid name");
    REJECT_SET(top, "environment", json_string("pr od"), "manifest: environment is not a valid name");
    REJECT_SET(top, "environment", json_string("prod\n"), "manifest: environment is not a valid name");
    memset(big, 'a', 64);
    big[64] = '\0';
    REJECT_SET(top, "environment", json_string(big), "manifest: \"environment\" is too long");
    REJECT_SET(top, "job", json_string("a/b"), "manifest: job is not a valid name");
    REJECT_SET(top, "job", json_string("..\\x"), "manifest: job is not a valid name");
    REJECT_SET(top, "schema", json_string("public; drop table x"), "manifest: schema is not a valid identifier");
    REJECT_SET(top, "schema", json_string("\"public\""), "manifest: schema is not a valid identifier");
    /* times */
    REJECT_SET(top, "created_at", json_string("yesterday"), "manifest: \"created_at\" is not a UTC time");
    REJECT_SET(top, "snapshot_at", json_string("2023-11-14T22:13:20"), "manifest: \"snapshot_at\" is not a UTC time");
    REJECT_SET(top, "expires_at", json_string("2023-02-30T00:00:00Z"), "manifest: \"expires_at\" is not a UTC time");
    memset(big, '1', 41);
    big[41] = '\0';
    REJECT_SET(top, "created_at", json_string(big), "manifest: \"created_at\" is too long");
    /* producer and dataset lengths are bounded */
    memset(big, 'p', 1025);
    big[1025] = '\0';
    REJECT_SET(top, "producer", json_string(big), "manifest: \"producer\" is too long");
    REJECT_SET(top, "datasets", json_pack("[s]", big), "manifest: \"datasets\" item 1 is not valid");

    /* tables */
    REJECT_SET(table0, "name", json_string("../x"), "manifest: table 1 has an invalid name");
    REJECT_SET(table0, "name", json_string("owl rule"), "manifest: table 1 has an invalid name");
    REJECT_SET(table0, "name", json_string(""), "manifest: table 1 has an invalid name");
    REJECT_SET(table0, "file", json_string("data/other.tsv"),
               "manifest: table owl_rule has file \"data/other.tsv\", expected \"data/owl_rule.tsv\"");
    REJECT_SET(table0, "file", json_string("../owl_rule.tsv"), "expected \"data/owl_rule.tsv\"");
    REJECT_SET(table0, "file", json_string("data/../owl_rule.tsv"), "expected \"data/owl_rule.tsv\"");
    REJECT_SET(table0, "file", json_string("/data/owl_rule.tsv"), "expected \"data/owl_rule.tsv\"");
    REJECT_SET(table0, "file", json_string("data/owl_rule.tsv/"), "expected \"data/owl_rule.tsv\"");
    REJECT_SET(table0, "file", json_string("data/owl_rule.csv"), "expected \"data/owl_rule.tsv\"");
    /* hostile text is not pasted into the one-line message */
    REJECT_SET(table0, "file", json_string("data/\x1b[2J\n\r\x7f\xc3\xa9.tsv"),
               "manifest: table owl_rule has file \"data/\\x1b[2J\\n\\r\\x7f\xc3\xa9.tsv\", expected \"data/owl_rule.tsv\"");
    REJECT_SET(table0, "dataset_column", json_string("nope"),
               "manifest: table owl_rule dataset_column nope is not among its columns");
    REJECT_SET(table0, "dataset_column", json_string("data set"), "manifest: table owl_rule has an invalid dataset_column");
    REJECT_SET(table0, "blake2b", json_string(HASH_A "0"), "manifest: table owl_rule \"blake2b\" is too long");
    REJECT_SET(table0, "blake2b",
               json_string("0E5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"),
               "manifest: table owl_rule has an invalid blake2b");
    REJECT_SET(table0, "blake2b", json_string("abc"), "manifest: table owl_rule has an invalid blake2b");
    REJECT_SET(table0, "rows", json_integer(-1), "manifest: table owl_rule \"rows\" is missing or not a non-negative integer");
    REJECT_SET(table0, "bytes", json_integer(-5), "manifest: table owl_rule \"bytes\" is missing or not a non-negative integer");
    REJECT_SET(column0, "name", json_string("a;b"), "manifest: table owl_rule column 1 has an invalid name");
    memset(big, 't', 1025);
    big[1025] = '\0';
    REJECT_SET(column0, "type", json_string(big), "manifest: table owl_rule column 1 is not valid");
    {
        /* duplicate column */
        json_t *r = sample_json();
        json_t *cols = json_object_get(table0(r), "columns");
        json_array_append_new(cols, json_pack("{s:s,s:s}", "name", "score", "type", "int"));
        json_rejected(__LINE__, r, "manifest: table owl_rule lists column score twice");
    }
    {
        /* duplicate table */
        json_t *r = sample_json();
        json_t *tables = json_object_get(r, "tables");
        json_array_append(tables, json_array_get(tables, 0));
        json_rejected(__LINE__, r, "manifest: table owl_rule is listed twice");
    }
    {
        /* more than MANIFEST_MAX_TABLES tables */
        json_t *r = sample_json();
        json_t *tables = json_object_get(r, "tables");
        json_t *t0 = json_deep_copy(json_array_get(tables, 1));
        json_array_clear(tables);
        for (int i = 0; i <= MANIFEST_MAX_TABLES; i++) {
            char name[32], file[48];
            json_t *t = json_deep_copy(t0);
            snprintf(name, sizeof(name), "t%d", i);
            snprintf(file, sizeof(file), "data/t%d.tsv", i);
            json_object_set_new(t, "name", json_string(name));
            json_object_set_new(t, "file", json_string(file));
            json_array_append_new(tables, t);
        }
        json_decref(t0);
        json_rejected(__LINE__, r, "manifest: \"tables\" is missing, not a list, or longer than 256");
    }
    {
        /* exactly MANIFEST_MAX_TABLES is fine */
        json_t *r = sample_json();
        json_t *tables = json_object_get(r, "tables");
        json_t *t0 = json_deep_copy(json_array_get(tables, 1));
        manifest *m = NULL;
        owl_err err;
        char *text;
        json_array_clear(tables);
        for (int i = 0; i < MANIFEST_MAX_TABLES; i++) {
            char name[32], file[48];
            json_t *t = json_deep_copy(t0);
            snprintf(name, sizeof(name), "t%d", i);
            snprintf(file, sizeof(file), "data/t%d.tsv", i);
            json_object_set_new(t, "name", json_string(name));
            json_object_set_new(t, "file", json_string(file));
            json_array_append_new(tables, t);
        }
        json_decref(t0);
        text = json_dumps(r, JSON_COMPACT);
        json_decref(r);
        CHECK(text != NULL && manifest_parse(text, strlen(text), &m, &err) == 0);
        CHECK(m != NULL && m->ntables == MANIFEST_MAX_TABLES);
        manifest_free(m);
        free(text);
    }
}

static void test_parse_bounds_and_duplicates(void)
{
    char *text = NULL, *big = NULL;
    size_t len = 0;
    manifest *sm = sample(), *m = NULL;
    owl_err err;
    char want[128];

    if (sm == NULL || manifest_serialize(sm, &text, &len, &err) != 0) {
        CHECK(0);
        goto out;
    }
    /* over MANIFEST_MAX_BYTES: refused on size alone, even when valid JSON */
    big = malloc(MANIFEST_MAX_BYTES + 2);
    if (big == NULL)
        goto out;
    memcpy(big, text, len - 2); /* without the final "}\n" */
    {
        size_t pos = len - 2;
        const char *pad = ",\"padding\":\"";
        memcpy(big + pos, pad, strlen(pad));
        pos += strlen(pad);
        memset(big + pos, 'x', MANIFEST_MAX_BYTES + 1 - pos - 2);
        memcpy(big + MANIFEST_MAX_BYTES + 1 - 2, "\"}", 2);
    }
    snprintf(want, sizeof(want), "manifest.json is %d bytes, over the %d-byte bound", MANIFEST_MAX_BYTES + 1,
             MANIFEST_MAX_BYTES);
    bytes_rejected(__LINE__, big, MANIFEST_MAX_BYTES + 1, want);
    /* one byte less is parsed (unknown fields are ignored) */
    memcpy(big + MANIFEST_MAX_BYTES - 2, "\"}", 2);
    CHECK(manifest_parse(big, MANIFEST_MAX_BYTES, &m, &err) == 0);
    CHECK(m != NULL && m->ntables == 2);
    manifest_free(m);
    m = NULL;

    /* duplicate keys, at the top and inside a table */
    {
        char *dup = malloc(len + 64);
        if (dup != NULL) {
            snprintf(dup, len + 64, "{\"environment\": \"qa\",%s", text + 1);
            bytes_rejected(__LINE__, dup, strlen(dup), "manifest.json is not valid JSON");
            bytes_rejected(__LINE__, dup, strlen(dup), "duplicate");
            snprintf(dup, len + 64, "{\"version\": 1,%s", text + 1);
            bytes_rejected(__LINE__, dup, strlen(dup), "duplicate");
            free(dup);
        }
        dup = malloc(len + 64);
        if (dup != NULL) {
            const char *p = strstr(text, "\"name\"");
            size_t head = (size_t)(p - text);
            memcpy(dup, text, head);
            snprintf(dup + head, len + 64 - head, "\"rows\": 9, %s", p);
            bytes_rejected(__LINE__, dup, strlen(dup), "duplicate");
            free(dup);
        }
    }
    /* unknown fields are ignored */
    {
        json_t *r = sample_json();
        char *t2;
        json_object_set_new(r, "future_field", json_pack("{s:[i,i]}", "x", 1, 2));
        json_object_set_new(table0(r), "future_too", json_true());
        t2 = json_dumps(r, JSON_COMPACT);
        json_decref(r);
        CHECK(t2 != NULL && manifest_parse(t2, strlen(t2), &m, &err) == 0);
        CHECK(m != NULL && same_manifest(sm, m));
        manifest_free(m);
        m = NULL;
        free(t2);
    }
    /* a manifest the serializer would make too big is refused there */
    {
        manifest *huge = sample();
        char *out = NULL;
        size_t outlen = 0;
        char name[1024];
        memset(name, 'd', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        for (int i = 0; huge != NULL && i < 4200; i++)
            manifest_add_dataset(huge, name);
        err_clear(&err);
        CHECK(huge != NULL && manifest_serialize(huge, &out, &outlen, &err) == -1);
        CHECK(out == NULL);
        CHECK_CONTAINS(err.msg, "over the 4194304-byte bound");
        manifest_free(huge);
    }
out:
    free(big);
    free(text);
    manifest_free(sm);
}

static void test_inspect_json(void)
{
    manifest *m = sample();
    char *text = NULL, *out = NULL;
    size_t len = 0;
    owl_err err;
    json_t *doc;

    if (m == NULL || manifest_serialize(m, &text, &len, &err) != 0) {
        CHECK(0);
        goto out;
    }
    CHECK(manifest_inspect_json(text, len, "/in/prod_nightly_20231114T221320Z_000042.owlb", 1, &out, &err) == 0);
    CHECK_CONTAINS(out, "\"file\": \"/in/prod_nightly_20231114T221320Z_000042.owlb\"");
    CHECK_CONTAINS(out, "\"signature_verified\": true");
    CHECK_CONTAINS(out, "\"manifest\": {");
    CHECK_CONTAINS(out, "\"bundle_id\": \"0123456789abcdef0123456789abcdef\"");
    doc = out != NULL ? json_loads(out, 0, NULL) : NULL;
    CHECK(doc != NULL);
    if (doc != NULL) {
        json_t *mj = json_object_get(doc, "manifest");
        CHECK(json_is_true(json_object_get(doc, "signature_verified")));
        CHECK_STR(json_string_value(json_object_get(mj, "environment")), "prod");
        CHECK(json_integer_value(json_object_get(mj, "sequence")) == 42);
        CHECK(json_array_size(json_object_get(mj, "tables")) == 2);
        json_decref(doc);
    }
    free(out);
    out = NULL;
    CHECK(manifest_inspect_json(text, len, "x.owlb", 0, &out, &err) == 0);
    CHECK_CONTAINS(out, "\"signature_verified\": false");
    free(out);
    out = NULL;
    /* a file name with quotes and control characters is escaped, not pasted */
    CHECK(manifest_inspect_json(text, len, "a\"b\n.owlb", 0, &out, &err) == 0);
    CHECK_CONTAINS(out, "\"file\": \"a\\\"b\\n.owlb\"");
    free(out);
    out = NULL;
    err_clear(&err);
    CHECK(manifest_inspect_json("{nope", 5, "x.owlb", 0, &out, &err) == -1);
    CHECK(out == NULL);
    CHECK(err.code == OWL_EVERIFY);
    CHECK_CONTAINS(err.msg, "manifest.json is not valid JSON");
out:
    free(out);
    free(text);
    manifest_free(m);
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_empty_lists);
    RUN(test_times);
    RUN(test_parse_not_a_manifest);
    RUN(test_parse_format_version);
    RUN(test_refs);
    RUN(test_parse_missing_fields);
    RUN(test_parse_wrong_types);
    RUN(test_parse_shapes);
    RUN(test_encoding);
    RUN(test_parse_bounds_and_duplicates);
    RUN(test_inspect_json);
    return UNIT_DONE();
}
