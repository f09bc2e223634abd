/* Fuzz harness of agent/bundle.c's reader: the input is a whole bundle file,
 * as it lies in an inbox. It is opened from a memory file twice: without a
 * trust list (as owlsync inspect does: no signature checked, so every byte
 * after the manifest is reached) and with the fixed test key trusted for
 * environment prod (as import and verify do; the seed bundles are signed with
 * it). Each time: manifest, its bytes and inspect JSON, then every table read
 * in chunks of a size the input picks, hashes and the archive's end checked. */
#include "fuzz.h"
#include "owlsync/bundle.h"
#include "owlsync/manifest.h"

static int memfd = -1;
static keys_trust trust;
static const bundle_limits limits = {UINT64_C(1) << 20, UINT64_C(16) << 20};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    keys_secret *sk = NULL;
    keys_public pk;
    owl_err err;

    err_clear(&err);
    if (keys_init(&err) < 0)
        fuzz_setup_failed("keys_init", err.msg);
    memfd = fuzz_memfd();
    fuzz_load_key(&sk, &pk);
    keys_secret_free(sk);
    if (keys_trust_add(&trust, FUZZ_KEY_ENVIRONMENT, pk.token, &err) < 0)
        fuzz_setup_failed("keys_trust_add", err.msg);
    return 0;
}

/* Opens the memory file's bundle and reads all of it; 0 when it verified. */
static int read_bundle(const keys_trust *t, size_t chunk, bool stop_early)
{
    bundle_reader *r = NULL;
    const manifest_table *mt;
    const manifest *m;
    const char *mbytes;
    char *json = NULL;
    size_t mlen, tables = 0;
    owl_err err;
    int fd = dup(memfd), more, rc = -1;
    char buf[4096];

    if (fd < 0)
        fuzz_setup_failed("dup", strerror(errno));
    err_clear(&err);
    if (bundle_open_fd(fd, "fuzz.owlb", &limits, t, &r, &err) < 0) {
        fuzz_note("%s: %s", t != NULL ? "verify" : "inspect", err.msg);
        if (r != NULL || err.msg[0] == '\0' || (err.code != OWL_EVERIFY && err.code != OWL_ERUNTIME))
            fuzz_fail("bundle_open_fd failed with code %d, message \"%s\"", err.code, err.msg);
        return -1;
    }
    m = bundle_manifest(r);
    mbytes = bundle_manifest_bytes(r, &mlen);
    if (m == NULL || mbytes == NULL)
        fuzz_fail("an open bundle has no manifest");
    if ((t == NULL) != (bundle_signer(r) == NULL))
        fuzz_fail("signer %p with trust %p", (const void *)bundle_signer(r), (const void *)t);
    if (manifest_inspect_json(mbytes, mlen, "fuzz.owlb", t != NULL, &json, &err) < 0)
        fuzz_fail("manifest_inspect_json fails on a manifest that parsed: %s", err.msg);
    free(json);
    while ((more = bundle_next_table(r, &mt, &err)) > 0) {
        ssize_t n;
        uint64_t got = 0;
        if (mt != &m->tables[tables])
            fuzz_fail("table %zu is not the manifest's table %zu", tables, tables);
        tables++;
        if (stop_early && tables % 2 == 1)
            continue; /* bundle_next_table reads (and checks) the rest itself */
        while ((n = bundle_read(r, buf, chunk, &err)) > 0)
            got += (uint64_t)n;
        if (n < 0) {
            more = -1;
            break;
        }
        if (got != mt->bytes)
            fuzz_fail("table %s read as %llu bytes, the manifest says %llu", mt->name, (unsigned long long)got,
                      (unsigned long long)mt->bytes);
    }
    fuzz_note("%s: %s", t != NULL ? "verify" : "inspect", more == 0 ? "read" : err.msg);
    if (more == 0) {
        if (tables != m->ntables)
            fuzz_fail("bundle ended after %zu of %zu tables", tables, m->ntables);
        rc = 0;
    }
    bundle_close(r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The input's length picks how tables are read, so a bundle is read in
     * every way over the run while each input is read the same way each time. */
    static const size_t chunks[] = {4096, 1, 7, 512, 1000};
    size_t chunk = chunks[size % (sizeof(chunks) / sizeof(chunks[0]))];
    bool stop_early = (size / 5) % 3 == 0;

    fuzz_memfd_set(memfd, data, size);
    if (read_bundle(NULL, chunk, stop_early) == 0)
        read_bundle(&trust, chunk, !stop_early);
    return 0;
}
