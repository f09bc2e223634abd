/* Fuzz harness of agent/bundle.c's reader past the signature: the input
 * describes a bundle's content, and the harness builds it with the project's
 * own writer (bundle_writer_*, bundle_frame_*), signs its manifest with the
 * fixed test key (keys_sign), and reads it back through the whole reader and
 * verify path (bundle_open_fd with the key trusted for prod, then
 * bundle_verify_rest). So every input reaches what only a validly signed
 * bundle reaches: manifest_parse of signed bytes, the key's binding to the
 * environment, data entries against the manifest (names, order, sizes,
 * hashes), the tar framing checks and the end of the archive.
 *
 * The input:
 *   byte 0       flags: bits 0-1 compression (0 zstd, 1 gzip, 2 and 3 none);
 *                bit 2 fix the manifest up: each table's bytes, rows and
 *                blake2b set from the entry named by its "file", key_id set
 *                to the test key's (as tests/tools/resign does)
 *   then         manifest.json's bytes, up to the first "\n@@"
 *   then, each   "\n@@" NAME "\n" CONTENT: an entry after manifest.json and
 *                manifest.sig, in order (NAME data/owl_rule.tsv, say); two
 *                names are not entries: "!patch", whose CONTENT is 5-byte
 *                records (offset, 4 bytes little-endian, and a byte) written
 *                into the unpacked tar archive (at or past its end: appended),
 *                and "!cut", whose first two bytes (little-endian) are a count
 *                of bytes cut from the archive's end.
 *
 * A property is checked too: a bundle built from a manifest that parses, is
 * fixed up and names exactly the entries given, in order, untouched by
 * patches, must verify. The reader may refuse nothing the writer makes. */
#include <jansson.h>

#include "fuzz.h"
#include "owlsync/bundle.h"
#include "owlsync/manifest.h"

#define MAX_ENTRIES 16
#define MAX_NAME 256
#define SEP "\n@@"

static int tarfd = -1, outfd = -1;
static keys_secret *sk;
static keys_public pk;
static keys_trust trust;
static const bundle_limits limits = {UINT64_C(4) << 20, UINT64_C(16) << 20};

typedef struct entry {
    char name[MAX_NAME + 1];
    const uint8_t *data;
    size_t len;
} entry;

typedef struct input {
    unsigned flags;
    const uint8_t *manifest;
    size_t mlen;
    entry e[MAX_ENTRIES];
    size_t n;
    const uint8_t *patch; /* 5-byte records */
    size_t npatch;
    size_t cut;
} input;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    owl_err err;

    err_clear(&err);
    if (keys_init(&err) < 0)
        fuzz_setup_failed("keys_init", err.msg);
    tarfd = fuzz_memfd();
    outfd = fuzz_memfd();
    fuzz_load_key(&sk, &pk);
    if (keys_trust_add(&trust, FUZZ_KEY_ENVIRONMENT, pk.token, &err) < 0)
        fuzz_setup_failed("keys_trust_add", err.msg);
    return 0;
}

static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end)
{
    const void *hit = memmem(p, (size_t)(end - p), SEP, sizeof(SEP) - 1);

    return hit != NULL ? hit : end;
}

/* Splits the input; -1 for one that describes no bundle. */
static int split_input(const uint8_t *data, size_t size, input *in)
{
    const uint8_t *end = data + size, *p, *next;

    memset(in, 0, sizeof(*in));
    if (size < 1)
        return -1;
    in->flags = data[0];
    in->manifest = data + 1;
    p = find_sep(in->manifest, end);
    in->mlen = (size_t)(p - in->manifest);
    while (p < end) {
        const uint8_t *name = p + sizeof(SEP) - 1, *nl;
        size_t namelen;
        nl = memchr(name, '\n', (size_t)(end - name));
        if (nl == NULL)
            return -1;
        namelen = (size_t)(nl - name);
        next = find_sep(nl + 1, end);
        if (namelen == 6 && memcmp(name, "!patch", 6) == 0) {
            in->patch = nl + 1;
            in->npatch = (size_t)(next - (nl + 1)) / 5;
        } else if (namelen == 4 && memcmp(name, "!cut", 4) == 0) {
            if (next - (nl + 1) >= 2)
                in->cut = (size_t)nl[1] | (size_t)nl[2] << 8;
        } else {
            entry *e;
            if (in->n == MAX_ENTRIES || namelen > MAX_NAME || memchr(name, '\0', namelen) != NULL)
                return -1;
            e = &in->e[in->n++];
            memcpy(e->name, name, namelen);
            e->name[namelen] = '\0';
            e->data = nl + 1;
            e->len = (size_t)(next - (nl + 1));
        }
        p = next;
    }
    return 0;
}

/* The manifest with each table's bytes, rows and hash taken from its entry
 * and the test key's id, as compact JSON (malloc'd); NULL when it is no JSON
 * object with a list of tables. */
static char *fix_up(const input *in)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)in->manifest, in->mlen, 0, &jerr), *tables, *t;
    char *out = NULL;
    size_t i;

    if (root == NULL || !json_is_object(root) || !json_is_array(tables = json_object_get(root, "tables"))) {
        json_decref(root);
        return NULL;
    }
    json_object_set_new(root, "key_id", json_string(pk.id));
    json_array_foreach(tables, i, t) {
        const char *file = json_string_value(json_object_get(t, "file"));
        for (size_t k = 0; file != NULL && json_is_object(t) && k < in->n; k++) {
            char hex[KEYS_HASH_HEX_LEN + 1];
            keys_hash *h;
            size_t rows = 0;
            if (strcmp(in->e[k].name, file) != 0)
                continue;
            h = keys_hash_new();
            if (h == NULL)
                fuzz_setup_failed("keys_hash_new", "out of memory");
            keys_hash_update(h, in->e[k].data, in->e[k].len);
            keys_hash_final(h, hex);
            keys_hash_free(h);
            for (size_t j = 0; j < in->e[k].len; j++)
                rows += in->e[k].data[j] == '\n';
            json_object_set_new(t, "rows", json_integer((json_int_t)rows));
            json_object_set_new(t, "bytes", json_integer((json_int_t)in->e[k].len));
            json_object_set_new(t, "blake2b", json_string(hex));
            break;
        }
    }
    out = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(root);
    return out;
}

/* Writes the uncompressed archive into tarfd with the project's writer; -1
 * when the writer refuses an entry (a name tar cannot hold, say). */
static int write_tar(const input *in, const char *mbytes, size_t mlen, const char *sig, size_t siglen)
{
    bundle_writer *w = NULL;
    owl_err err;

    err_clear(&err);
    fuzz_memfd_reset(tarfd);
    if (bundle_writer_open(tarfd, BUNDLE_NONE, 0, 1700000000, &w, &err) < 0)
        fuzz_setup_failed("bundle_writer_open", err.msg);
    if (bundle_writer_add(w, "manifest.json", mbytes, mlen, &err) < 0 ||
        bundle_writer_add(w, "manifest.sig", sig, siglen, &err) < 0)
        goto fail;
    for (size_t i = 0; i < in->n; i++) {
        if (bundle_writer_add(w, in->e[i].name, in->e[i].data, in->e[i].len, &err) < 0)
            goto fail;
    }
    return bundle_writer_close(w, &err);
fail:
    bundle_writer_abort(w);
    return -1;
}

/* The archive, patched and cut as the input says, into outfd: compressed
 * with the project's frame writer, or as it is. */
static void write_bundle(const input *in, bundle_compression comp)
{
    size_t len, cap;
    unsigned char *tar = fuzz_memfd_get(tarfd, &len);
    owl_err err;

    cap = len;
    for (size_t i = 0; i < in->npatch; i++) {
        const uint8_t *r = in->patch + 5 * i;
        size_t off = ((size_t)r[0] | (size_t)r[1] << 8 | (size_t)r[2] << 16 | (size_t)r[3] << 24) % (cap + 1024);
        if (off >= len) {
            unsigned char *grown = realloc(tar, off + 1);
            if (grown == NULL)
                fuzz_setup_failed("realloc", "out of memory");
            tar = grown;
            memset(tar + len, 0, off + 1 - len);
            len = off + 1;
        }
        tar[off] = r[4];
    }
    len = in->cut < len ? len - in->cut : 0;
    fuzz_memfd_reset(outfd);
    err_clear(&err);
    if (comp == BUNDLE_NONE) {
        fuzz_memfd_set(outfd, tar, len);
    } else {
        bundle_frame *f = NULL;
        if (bundle_frame_open(outfd, comp, 1, &f, &err) < 0 || bundle_frame_write(f, tar, len, &err) < 0 ||
            bundle_frame_close(f, NULL, &err) < 0)
            fuzz_setup_failed("bundle_frame", err.msg);
    }
    free(tar);
}

/* Whether the bundle is one the reader must take: a manifest that parses,
 * for prod, fixed up, whose tables are exactly the entries, in order; no
 * patch, no cut, within the limits. */
static bool must_verify(const input *in, const char *mbytes, size_t mlen)
{
    manifest *m = NULL;
    owl_err err;
    bool ok;

    if (!(in->flags & 4) || in->npatch > 0 || in->cut > 0 || manifest_parse(mbytes, mlen, &m, &err) < 0)
        return false;
    ok = strcmp(m->environment, FUZZ_KEY_ENVIRONMENT) == 0 && m->ntables == in->n;
    for (size_t i = 0; ok && i < m->ntables; i++)
        ok = strcmp(m->tables[i].file, in->e[i].name) == 0;
    manifest_free(m);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const bundle_compression comps[4] = {BUNDLE_ZSTD, BUNDLE_GZIP, BUNDLE_NONE, BUNDLE_NONE};
    char *fixed = NULL, sig[KEYS_SIGFILE_MAX];
    const char *mbytes;
    size_t mlen, siglen = 0;
    bundle_reader *r = NULL;
    owl_err err;
    input in;
    int rc;

    if (split_input(data, size, &in) < 0)
        return 0;
    mbytes = (const char *)in.manifest;
    mlen = in.mlen;
    if ((in.flags & 4) && (fixed = fix_up(&in)) != NULL) {
        mbytes = fixed;
        mlen = strlen(fixed);
    }
    err_clear(&err);
    if (keys_sign(sk, (const unsigned char *)mbytes, mlen, sig, &siglen, &err) < 0)
        fuzz_setup_failed("keys_sign", err.msg);
    if (write_tar(&in, mbytes, mlen, sig, siglen) < 0) {
        fuzz_note("the writer refuses these entries");
        free(fixed);
        return 0;
    }
    write_bundle(&in, comps[in.flags & 3]);

    rc = bundle_open_fd(dup(outfd), "fuzz.owlb", &limits, &trust, &r, &err);
    if (rc == 0)
        rc = bundle_verify_rest(r, &err);
    fuzz_note("%s", rc == 0 ? "verified" : err.msg);
    if (rc < 0 && (err.msg[0] == '\0' || (err.code != OWL_EVERIFY && err.code != OWL_ERUNTIME)))
        fuzz_fail("the reader failed with code %d, message \"%s\"", err.code, err.msg);
    if (rc < 0 && must_verify(&in, mbytes, mlen))
        fuzz_fail("a bundle the writer made from a valid manifest and its entries does not verify: %s", err.msg);
    bundle_close(r);
    free(fixed);
    return 0;
}
