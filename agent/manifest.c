/* owlsync bundle manifest: build, serialise and strictly parse manifest.json
 * (jansson). Nothing here trusts its input: every field is checked for type and shape. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "owlsync/manifest.h"
#include "owlsync/text.h"

manifest *manifest_new(void)
{
    manifest *m = calloc(1, sizeof(*m));

    if (m != NULL)
        m->version = MANIFEST_VERSION;
    return m;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void manifest_free(manifest *m)
{
    if (m == NULL)
        return;
    free(m->environment);
    free(m->job);
    free_strv(m->targets, m->ntargets);
    free(m->schema);
    free_strv(m->datasets, m->ndatasets);
    free(m->producer);
    for (size_t i = 0; i < m->ntables; i++) {
        manifest_table *t = &m->tables[i];
        free(t->name);
        free(t->file);
        free(t->dataset_column);
        for (size_t j = 0; j < t->ncolumns; j++) {
            free(t->columns[j].name);
            free(t->columns[j].type);
        }
        free(t->columns);
    }
    free(m->tables);
    free(m);
}

int manifest_set_string(char **field, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

static int strv_push(char ***v, size_t *n, const char *s)
{
    char **grown = realloc(*v, (*n + 1) * sizeof(**v));

    if (grown == NULL)
        return -1;
    *v = grown;
    grown[*n] = strdup(s);
    if (grown[*n] == NULL)
        return -1;
    (*n)++;
    return 0;
}

int manifest_add_target(manifest *m, const char *env)
{
    return strv_push(&m->targets, &m->ntargets, env);
}

int manifest_add_dataset(manifest *m, const char *name)
{
    return strv_push(&m->datasets, &m->ndatasets, name);
}

manifest_table *manifest_add_table(manifest *m, const char *name, const char *dataset_column)
{
    manifest_table *grown = realloc(m->tables, (m->ntables + 1) * sizeof(*grown));
    manifest_table *t;
    char file[MANIFEST_NAME_MAX + 16];

    if (grown == NULL)
        return NULL;
    m->tables = grown;
    t = &m->tables[m->ntables];
    memset(t, 0, sizeof(*t));
    m->ntables++;
    snprintf(file, sizeof(file), "data/%s.tsv", name);
    t->name = strdup(name);
    t->file = strdup(file);
    t->dataset_column = strdup(dataset_column);
    if (t->name == NULL || t->file == NULL || t->dataset_column == NULL)
        return NULL;
    return t;
}

int manifest_table_add_column(manifest_table *t, const char *name, const char *type)
{
    manifest_column *grown = realloc(t->columns, (t->ncolumns + 1) * sizeof(*grown));

    if (grown == NULL)
        return -1;
    t->columns = grown;
    grown[t->ncolumns].name = strdup(name);
    grown[t->ncolumns].type = strdup(type);
    grown[t->ncolumns].ref = false;
    t->ncolumns++;
    if (grown[t->ncolumns - 1].name == NULL || grown[t->ncolumns - 1].type == NULL)
        return -1;
    return 0;
}

/* Reads exactly n decimal digits at *p into *v. */
static int digits(const char **p, int n, int *v)
{
    int x = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        x = x * 10 + (c - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

int manifest_parse_time(const char *s, int64_t *usec)
{
    struct tm tm;
    int year, mon, day, hour, min, sec, frac = 0, fdigits = 0;
    const char *p = s;
    time_t t;

    if (digits(&p, 4, &year) < 0 || *p++ != '-' || digits(&p, 2, &mon) < 0 || *p++ != '-' ||
        digits(&p, 2, &day) < 0 || *p++ != 'T' || digits(&p, 2, &hour) < 0 || *p++ != ':' ||
        digits(&p, 2, &min) < 0 || *p++ != ':' || digits(&p, 2, &sec) < 0)
        return -1;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9' && fdigits < 6) {
            frac = frac * 10 + (*p - '0');
            fdigits++;
            p++;
        }
        if (fdigits == 0)
            return -1;
        for (int i = fdigits; i < 6; i++)
            frac *= 10;
    }
    if (*p++ != 'Z' || *p != '\0')
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -1;
    {
        /* timegm would quietly turn February 30 into March 2. */
        static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        if (day > mdays[mon - 1] + (mon == 2 && leap))
            return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *usec = (int64_t)t * 1000000 + frac;
    return 0;
}

static int valid_hex(const char *s, size_t len)
{
    if (strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

/* ---- serialise ---- */

static json_t *strv_json(char **v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *time_json(int64_t usec)
{
    char buf[40];

    return json_string(text_utc(usec, TEXT_UTC_MICROS, buf, sizeof(buf)));
}

bool manifest_has_refs(const manifest *m)
{
    for (size_t i = 0; i < m->ntables; i++) {
        for (size_t j = 0; j < m->tables[i].ncolumns; j++) {
            if (m->tables[i].columns[j].ref)
                return true;
        }
    }
    return false;
}

int manifest_serialize(const manifest *m, char **out, size_t *outlen, owl_err *err)
{
    json_t *root = json_object(), *tables = json_array();
    char *text = NULL;
    int rc = -1;

    if (root == NULL || tables == NULL)
        goto oom;
    json_object_set_new(root, "format", json_string(MANIFEST_FORMAT));
    json_object_set_new(root, "version", json_integer(manifest_has_refs(m) ? MANIFEST_VERSION_REFS : MANIFEST_VERSION));
    json_object_set_new(root, "bundle_id", json_string(m->bundle_id));
    json_object_set_new(root, "environment", json_string(m->environment));
    json_object_set_new(root, "job", json_string(m->job));
    json_object_set_new(root, "sequence", json_integer((json_int_t)m->sequence));
    json_object_set_new(root, "created_at", time_json(m->created_at));
    json_object_set_new(root, "snapshot_at", time_json(m->snapshot_at));
    json_object_set_new(root, "expires_at", time_json(m->expires_at));
    json_object_set_new(root, "targets", strv_json(m->targets, m->ntargets));
    json_object_set_new(root, "schema", json_string(m->schema));
    json_object_set_new(root, "datasets", strv_json(m->datasets, m->ndatasets));
    json_object_set_new(root, "key_id", json_string(m->key_id));
    json_object_set_new(root, "producer", json_string(m->producer ? m->producer : "owlsync"));
    json_object_set_new(root, "encoding", json_string(MANIFEST_ENCODING));
    for (size_t i = 0; i < m->ntables; i++) {
        const manifest_table *t = &m->tables[i];
        json_t *jt = json_object(), *cols = json_array();
        if (jt == NULL || cols == NULL)
            goto oom;
        json_object_set_new(jt, "name", json_string(t->name));
        json_object_set_new(jt, "file", json_string(t->file));
        for (size_t j = 0; j < t->ncolumns; j++) {
            json_t *c = json_object();
            json_object_set_new(c, "name", json_string(t->columns[j].name));
            json_object_set_new(c, "type", json_string(t->columns[j].type));
            if (t->columns[j].ref)
                json_object_set_new(c, "ref", json_true());
            json_array_append_new(cols, c);
        }
        json_object_set_new(jt, "columns", cols);
        json_object_set_new(jt, "dataset_column", json_string(t->dataset_column));
        json_object_set_new(jt, "rows", json_integer((json_int_t)t->rows));
        json_object_set_new(jt, "bytes", json_integer((json_int_t)t->bytes));
        json_object_set_new(jt, "blake2b", json_string(t->blake2b));
        json_array_append_new(tables, jt);
    }
    json_object_set_new(root, "tables", tables);
    tables = NULL;
    text = json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(1) | JSON_ENSURE_ASCII);
    if (text == NULL)
        goto oom;
    *outlen = strlen(text);
    {
        char *withnl = realloc(text, *outlen + 2);
        if (withnl == NULL)
            goto oom;
        text = withnl;
        text[(*outlen)++] = '\n';
        text[*outlen] = '\0';
    }
    if (*outlen > MANIFEST_MAX_BYTES) {
        err_set(err, OWL_EUSAGE, "manifest would be %zu bytes, over the %d-byte bound\nHINT: export fewer datasets per bundle",
                *outlen, MANIFEST_MAX_BYTES);
        goto out;
    }
    *out = text;
    text = NULL;
    rc = 0;
    goto out;
oom:
    err_set(err, OWL_ERUNTIME, "out of memory building the manifest");
out:
    free(text);
    json_decref(tables);
    json_decref(root);
    return rc;
}

/* ---- parse ---- */

/* A string member: required, at most max bytes. */
static int get_str(json_t *obj, const char *key, size_t max, const char **out, owl_err *err,
                   const char *where)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_string(v))
        return err_set(err, OWL_EVERIFY, "manifest: %s%s\"%s\" is missing or not a string", where,
                       *where ? " " : "", key);
    if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
        return err_set(err, OWL_EVERIFY, "manifest: %s%s\"%s\" is too long or holds a NUL", where,
                       *where ? " " : "", key);
    *out = json_string_value(v);
    return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t *out, owl_err *err, const char *where)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return err_set(err, OWL_EVERIFY, "manifest: %s%s\"%s\" is missing or not a non-negative integer",
                       where, *where ? " " : "", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_time(json_t *obj, const char *key, int64_t *out, owl_err *err)
{
    const char *s;

    if (get_str(obj, key, 40, &s, err, "") < 0)
        return -1;
    if (manifest_parse_time(s, out) < 0)
        return err_set(err, OWL_EVERIFY, "manifest: \"%s\" is not a UTC time", key);
    return 0;
}

static int get_strv(json_t *obj, const char *key, size_t maxn, size_t maxlen, char ***v, size_t *n,
                    bool (*valid)(const char *), owl_err *err)
{
    json_t *a = json_object_get(obj, key), *item;
    size_t i;

    if (!json_is_array(a))
        return err_set(err, OWL_EVERIFY, "manifest: \"%s\" is missing or not a list", key);
    if (json_array_size(a) > maxn)
        return err_set(err, OWL_EVERIFY, "manifest: \"%s\" has more than %zu items", key, maxn);
    json_array_foreach(a, i, item) {
        const char *s = json_string_value(item);
        if (s == NULL || json_string_length(item) > maxlen || strlen(s) != json_string_length(item) ||
            (valid != NULL && !valid(s)))
            return err_set(err, OWL_EVERIFY, "manifest: \"%s\" item %zu is not valid", key, i + 1);
        if (strv_push(v, n, s) < 0)
            return err_oom(err);
    }
    return 0;
}

static int parse_table(json_t *jt, manifest *m, size_t index, owl_err *err)
{
    const char *name, *file, *dscol, *hash, *cname, *ctype;
    char where[96], expect[MANIFEST_NAME_MAX + 16];
    json_t *cols, *c;
    manifest_table *t;
    size_t j;

    snprintf(where, sizeof(where), "table %zu", index + 1);
    if (!json_is_object(jt))
        return err_set(err, OWL_EVERIFY, "manifest: %s is not an object", where);
    if (get_str(jt, "name", MANIFEST_NAME_MAX, &name, err, where) < 0)
        return -1;
    if (!text_is_ident(name))
        return err_set(err, OWL_EVERIFY, "manifest: %s has an invalid name", where);
    if (manifest_find_table(m, name) != NULL)
        return err_set(err, OWL_EVERIFY, "manifest: table %s is listed twice", name);
    snprintf(where, sizeof(where), "table %s", name);
    if (get_str(jt, "file", MANIFEST_NAME_MAX + 16, &file, err, where) < 0 ||
        get_str(jt, "dataset_column", MANIFEST_NAME_MAX, &dscol, err, where) < 0 ||
        get_str(jt, "blake2b", 64, &hash, err, where) < 0)
        return -1;
    snprintf(expect, sizeof(expect), "data/%s.tsv", name);
    if (strcmp(file, expect) != 0) {
        char shown[4 * (MANIFEST_NAME_MAX + 16) + 8];
        return err_set(err, OWL_EVERIFY, "manifest: %s has file \"%s\", expected \"%s\"", where,
                       text_clean(file, MANIFEST_NAME_MAX + 16, shown, sizeof(shown)), expect);
    }
    if (*dscol != '\0' && !text_is_ident(dscol))
        return err_set(err, OWL_EVERIFY, "manifest: %s has an invalid dataset_column", where);
    if (!valid_hex(hash, 64))
        return err_set(err, OWL_EVERIFY, "manifest: %s has an invalid blake2b", where);
    t = manifest_add_table(m, name, dscol);
    if (t == NULL)
        return err_oom(err);
    memcpy(t->blake2b, hash, 65);
    if (get_uint(jt, "rows", &t->rows, err, where) < 0 || get_uint(jt, "bytes", &t->bytes, err, where) < 0)
        return -1;
    cols = json_object_get(jt, "columns");
    if (!json_is_array(cols) || json_array_size(cols) == 0 || json_array_size(cols) > MANIFEST_MAX_COLUMNS)
        return err_set(err, OWL_EVERIFY, "manifest: %s has no valid \"columns\" list", where);
    json_array_foreach(cols, j, c) {
        if (!json_is_object(c) || get_str(c, "name", MANIFEST_NAME_MAX, &cname, err, where) < 0 ||
            get_str(c, "type", MANIFEST_TEXT_MAX, &ctype, err, where) < 0)
            return err_set(err, OWL_EVERIFY, "manifest: %s column %zu is not valid", where, j + 1);
        if (!text_is_ident(cname))
            return err_set(err, OWL_EVERIFY, "manifest: %s column %zu has an invalid name", where, j + 1);
        for (size_t k = 0; k < t->ncolumns; k++) {
            if (strcmp(t->columns[k].name, cname) == 0)
                return err_set(err, OWL_EVERIFY, "manifest: %s lists column %s twice", where, cname);
        }
        if (manifest_table_add_column(t, cname, ctype) < 0)
            return err_oom(err);
        if (json_object_get(c, "ref") != NULL) {
            if (m->version < MANIFEST_VERSION_REFS || !json_is_true(json_object_get(c, "ref")) ||
                strcmp(cname, dscol) == 0)
                return err_set(err, OWL_EVERIFY, "manifest: %s column %s is not a valid reference", where, cname);
            t->columns[t->ncolumns - 1].ref = true;
        }
    }
    if (*dscol != '\0') {
        bool found = false;
        for (size_t k = 0; k < t->ncolumns; k++)
            found = found || strcmp(t->columns[k].name, dscol) == 0;
        if (!found)
            return err_set(err, OWL_EVERIFY, "manifest: %s dataset_column %s is not among its columns", where, dscol);
    }
    return 0;
}

static bool valid_dataset(const char *s)
{
    return *s != '\0';
}

int manifest_parse(const char *buf, size_t len, manifest **out, owl_err *err)
{
    json_error_t jerr;
    json_t *root = NULL, *tables, *jt;
    manifest *m = NULL;
    const char *s;
    uint64_t version = 0;
    size_t i;
    int rc = -1;

    *out = NULL;
    if (len > MANIFEST_MAX_BYTES)
        return err_set(err, OWL_EVERIFY, "manifest.json is %zu bytes, over the %d-byte bound", len,
                       MANIFEST_MAX_BYTES);
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* jansson quotes the input near the error: keep hostile bytes out of the message */
        for (char *p = jerr.text; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        }
        err_set(err, OWL_EVERIFY, "manifest.json is not valid JSON (line %d: %s)", jerr.line, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        err_set(err, OWL_EVERIFY, "manifest.json is not a JSON object");
        goto out;
    }
    m = manifest_new();
    if (m == NULL) {
        err_oom(err);
        goto out;
    }
    if (get_str(root, "format", 64, &s, err, "") < 0)
        goto out;
    if (strcmp(s, MANIFEST_FORMAT) != 0) {
        err_set(err, OWL_EVERIFY, "manifest: format is not \"%s\"", MANIFEST_FORMAT);
        goto out;
    }
    if (get_uint(root, "version", &version, err, "") < 0)
        goto out;
    if (version != MANIFEST_VERSION && version != MANIFEST_VERSION_REFS) {
        err_set(err, OWL_EVERIFY, "manifest: bundle format version %llu is not supported (this owlsync reads versions %d and %d)",
                (unsigned long long)version, MANIFEST_VERSION, MANIFEST_VERSION_REFS);
        goto out;
    }
    m->version = (int)version;
    if (get_str(root, "bundle_id", 32, &s, err, "") < 0)
        goto out;
    if (!valid_hex(s, 32)) {
        err_set(err, OWL_EVERIFY, "manifest: bundle_id is not 32 hex digits");
        goto out;
    }
    memcpy(m->bundle_id, s, 33);
    if (get_str(root, "environment", MANIFEST_NAME_MAX, &s, err, "") < 0)
        goto out;
    if (!text_is_name(s)) {
        err_set(err, OWL_EVERIFY, "manifest: environment is not a valid name");
        goto out;
    }
    if (manifest_set_string(&m->environment, s) < 0)
        goto oom;
    if (get_str(root, "job", MANIFEST_NAME_MAX, &s, err, "") < 0)
        goto out;
    if (!text_is_name(s)) {
        err_set(err, OWL_EVERIFY, "manifest: job is not a valid name");
        goto out;
    }
    if (manifest_set_string(&m->job, s) < 0)
        goto oom;
    if (get_uint(root, "sequence", &m->sequence, err, "") < 0 ||
        get_time(root, "created_at", &m->created_at, err) < 0 ||
        get_time(root, "snapshot_at", &m->snapshot_at, err) < 0 ||
        get_time(root, "expires_at", &m->expires_at, err) < 0)
        goto out;
    if (get_strv(root, "targets", 64, MANIFEST_NAME_MAX, &m->targets, &m->ntargets, text_is_name, err) < 0)
        goto out;
    if (get_str(root, "schema", MANIFEST_NAME_MAX, &s, err, "") < 0)
        goto out;
    if (!text_is_ident(s)) {
        err_set(err, OWL_EVERIFY, "manifest: schema is not a valid identifier");
        goto out;
    }
    if (manifest_set_string(&m->schema, s) < 0)
        goto oom;
    if (get_strv(root, "datasets", MANIFEST_MAX_DATASETS, MANIFEST_TEXT_MAX, &m->datasets, &m->ndatasets,
                 valid_dataset, err) < 0)
        goto out;
    if (get_str(root, "key_id", 16, &s, err, "") < 0)
        goto out;
    if (!valid_hex(s, 16)) {
        err_set(err, OWL_EVERIFY, "manifest: key_id is not 16 hex digits");
        goto out;
    }
    memcpy(m->key_id, s, 17);
    if (get_str(root, "producer", MANIFEST_TEXT_MAX, &s, err, "") < 0)
        goto out;
    if (manifest_set_string(&m->producer, s) < 0)
        goto oom;
    /* The data's encoding: UTF8 (bundles from before it was written are too:
     * every producer wrote UTF8 unless a session was set otherwise). */
    if (json_object_get(root, "encoding") != NULL) {
        if (get_str(root, "encoding", MANIFEST_NAME_MAX, &s, err, "") < 0)
            goto out;
        if (strcmp(s, MANIFEST_ENCODING) != 0) {
            char shown[4 * MANIFEST_NAME_MAX + 8];
            err_set(err, OWL_EVERIFY, "manifest: the data is in encoding \"%s\"; owlsync reads %s",
                    text_clean(s, MANIFEST_NAME_MAX, shown, sizeof(shown)), MANIFEST_ENCODING);
            goto out;
        }
    }
    tables = json_object_get(root, "tables");
    if (!json_is_array(tables) || json_array_size(tables) > MANIFEST_MAX_TABLES) {
        err_set(err, OWL_EVERIFY, "manifest: \"tables\" is missing, not a list, or longer than %d",
                MANIFEST_MAX_TABLES);
        goto out;
    }
    json_array_foreach(tables, i, jt) {
        if (parse_table(jt, m, i, err) < 0)
            goto out;
    }
    if (m->version == MANIFEST_VERSION_REFS && !manifest_has_refs(m)) {
        err_set(err, OWL_EVERIFY, "manifest: version %d but no column is a reference", MANIFEST_VERSION_REFS);
        goto out;
    }
    *out = m;
    m = NULL;
    rc = 0;
    goto out;
oom:
    err_oom(err);
out:
    manifest_free(m);
    json_decref(root);
    return rc;
}

const manifest_table *manifest_find_table(const manifest *m, const char *name)
{
    for (size_t i = 0; i < m->ntables; i++) {
        if (strcmp(m->tables[i].name, name) == 0)
            return &m->tables[i];
    }
    return NULL;
}

int manifest_inspect_json(const char *mbytes, size_t mlen, const char *file, int verified,
                          char **out, owl_err *err)
{
    json_error_t jerr;
    json_t *m = json_loadb(mbytes, mlen, JSON_REJECT_DUPLICATES, &jerr);
    json_t *root = json_object();

    *out = NULL;
    if (m == NULL || root == NULL) {
        json_decref(m);
        json_decref(root);
        return err_set(err, OWL_EVERIFY, "manifest.json is not valid JSON");
    }
    json_object_set_new(root, "file", json_string(file));
    json_object_set_new(root, "signature_verified", json_boolean(verified));
    json_object_set_new(root, "manifest", m);
    *out = json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(2));
    json_decref(root);
    if (*out == NULL)
        return err_oom(err);
    return 0;
}

const char *manifest_lib_version(void)
{
#if JANSSON_VERSION_HEX >= 0x020d00
    return jansson_version_str();
#else
    return JANSSON_VERSION;
#endif
}
