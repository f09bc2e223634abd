/* Fuzz harness of agent/manifest.c: the input is manifest.json as a bundle
 * carries it. It goes through manifest_parse (the strict reader every bundle's
 * signed manifest meets) and manifest_inspect_json (owlsync inspect --json),
 * and its first line through manifest_parse_time. A manifest that parses must
 * serialise, parse again, and serialise to the same bytes; a time that parses
 * must come back the same through text_utc. */
#include "fuzz.h"
#include "owlsync/manifest.h"
#include "owlsync/text.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

/* manifest_parse_time on the input's first line; a time it accepts must be
 * written by text_utc as one it reads back to the same microsecond. */
static void check_time(const uint8_t *data, size_t size)
{
    char text[64], again[TEXT_UTC_MAX];
    int64_t usec, usec2;
    size_t n = 0;

    while (n < size && n < sizeof(text) - 1 && data[n] != '\n')
        n++;
    memcpy(text, data, n);
    text[n] = '\0';
    if (manifest_parse_time(text, &usec) < 0)
        return;
    text_utc(usec, TEXT_UTC_MICROS, again, sizeof(again));
    if (manifest_parse_time(again, &usec2) < 0 || usec2 != usec)
        fuzz_fail("time \"%s\" is %lld us, written as \"%s\", read back as %lld", text, (long long)usec, again,
                  (long long)usec2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    manifest *m = NULL, *m2 = NULL;
    char *out = NULL, *out2 = NULL, *json = NULL;
    size_t outlen = 0, outlen2 = 0;
    owl_err err;

    check_time(data, size);

    err_clear(&err);
    if (manifest_inspect_json(buf, size, "fuzz.owlb", 0, &json, &err) == 0)
        free(json);
    else if (err.code != OWL_EVERIFY && err.code != OWL_ERUNTIME)
        fuzz_fail("manifest_inspect_json failed with code %d: %s", err.code, err.msg);

    err_clear(&err);
    if (manifest_parse(buf, size, &m, &err) < 0) {
        if (m != NULL || err.msg[0] == '\0' || (err.code != OWL_EVERIFY && err.code != OWL_ERUNTIME))
            fuzz_fail("manifest_parse failed with code %d, message \"%s\"", err.code, err.msg);
        return 0;
    }

    /* Every table is found by its name, and the version says whether a
     * column is a reference. */
    for (size_t i = 0; i < m->ntables; i++) {
        if (manifest_find_table(m, m->tables[i].name) != &m->tables[i])
            fuzz_fail("manifest_find_table(%s) is not table %zu", m->tables[i].name, i);
    }
    if (manifest_has_refs(m) != (m->version == MANIFEST_VERSION_REFS))
        fuzz_fail("version %d, but references: %d", m->version, (int)manifest_has_refs(m));

    /* What parses serialises, and the serialisation is a fixed point. */
    err_clear(&err);
    if (manifest_serialize(m, &out, &outlen, &err) < 0) {
        if (err.code != OWL_EUSAGE) /* only: over MANIFEST_MAX_BYTES once escaped */
            fuzz_fail("a parsed manifest does not serialise: %s", err.msg);
        manifest_free(m);
        return 0;
    }
    if (manifest_parse(out, outlen, &m2, &err) < 0)
        fuzz_fail("a serialised manifest does not parse: %s", err.msg);
    if (manifest_serialize(m2, &out2, &outlen2, &err) < 0)
        fuzz_fail("a manifest parsed from a serialised one does not serialise: %s", err.msg);
    if (outlen != outlen2 || memcmp(out, out2, outlen) != 0)
        fuzz_fail("serialise(parse(serialise(m))) differs from serialise(m)");
    if (m2->ntables != m->ntables || m2->ndatasets != m->ndatasets || m2->ntargets != m->ntargets ||
        m2->created_at != m->created_at || m2->snapshot_at != m->snapshot_at || m2->expires_at != m->expires_at ||
        m2->sequence != m->sequence)
        fuzz_fail("a manifest changed through serialise and parse");

    free(out);
    free(out2);
    manifest_free(m);
    manifest_free(m2);
    return 0;
}
