/* Fuzz harness of agent/inbox.c's shared retry state: the input is an
 * agent's .work/.retries.AGENT file, as anyone who can write to the inbox
 * can plant it. inbox_retries_shared reads it beside a list an agent wrote;
 * properties: it never fails for what a file holds, keeps only files asked
 * about with the newest try of each, and what it keeps is text a terminal and
 * JSON take as it is (no control character, valid UTF-8, bounded). */
#include <ftw.h>

#include <jansson.h>

#include "fuzz.h"
#include "owlsync/inbox.h"

static char dir[64];
static inbox *ib;

/* The files status would ask about: the bundles in .work/. */
static const char *const names[] = {"a.owlb", "prod_nightly_20261125T020000Z_000042.owlb", "x\\\\y.owlb", NULL};
#define NNAMES (sizeof(names) / sizeof(names[0]) - 1)

static long slot_of(const char *name, void *ctx)
{
    (void)ctx;
    for (long i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], name) == 0)
            return i;
    }
    return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    inbox_close(ib);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    inbox_config ic = {0};
    inbox_retry mine[1] = {{"a.owlb", 2, 1800000100, 1800000050, "lock timeout", NULL, 0}};
    char quarantine[96];
    owl_err err;

    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "%s/owlsync-fuzz-retries-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (strlen(dir) >= sizeof(dir) - 1 || mkdtemp(dir) == NULL)
        fuzz_setup_failed("mkdtemp", strerror(errno));
    snprintf(quarantine, sizeof(quarantine), "%s/quarantine", dir);
    ic.dir = dir;
    ic.quarantine_dir = quarantine;
    if (inbox_open(&ic, &ib, &err) < 0)
        fuzz_setup_failed("inbox_open", err.msg);
    atexit(cleanup);
    /* another agent's list, read beside the input */
    if (inbox_retries_publish(ib, "other-00000001", mine, 1, &err) < 0)
        fuzz_setup_failed("inbox_retries_publish", err.msg);
    return 0;
}

/* Whether s is text text_clean passes as it is: no C0, DEL or C1 control
 * character, valid UTF-8 (jansson refuses anything else). */
static bool shown_as_is(const char *s)
{
    json_t *j;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            return false;
    }
    j = json_string(s);
    json_decref(j);
    return j != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    inbox_retry found[NNAMES];
    inbox_retries_seen seen;
    owl_err err;
    int fd;

    snprintf(path, sizeof(path), "%s/.work/.retries.fuzz-00000002", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fuzz_setup_failed("open", strerror(errno));
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            fuzz_setup_failed("write", n < 0 ? strerror(errno) : "wrote nothing");
        done += (size_t)n;
    }
    close(fd);
    memset(found, 0, sizeof(found));
    err_clear(&err);
    if (inbox_retries_shared(dir, slot_of, NULL, found, NNAMES, &seen, &err) < 0)
        fuzz_fail("inbox_retries_shared failed: %s", err.msg);
    if (seen.files + seen.skipped != 2 || seen.files < 1)
        fuzz_fail("%zu files read and %zu skipped, of 2", seen.files, seen.skipped);
    if (found[0].name == NULL || found[0].last_try < 1800000050)
        fuzz_fail("the other agent's newer try of a.owlb was lost");
    for (size_t i = 0; i < NNAMES; i++) {
        const inbox_retry *r = &found[i];
        if (r->name == NULL)
            continue;
        if (strcmp(r->name, names[i]) != 0)
            fuzz_fail("entry of \"%s\" kept in the slot of \"%s\"", r->name, names[i]);
        if (r->agent == NULL || (strcmp(r->agent, "other-00000001") != 0 && strcmp(r->agent, "fuzz-00000002") != 0))
            fuzz_fail("entry of \"%s\" without its agent", r->name);
        if (r->error == NULL || !shown_as_is(r->error) || strlen(r->error) > 4 * (4 * INBOX_RETRY_ERROR_MAX + 4) + 8)
            fuzz_fail("error of \"%s\" not cleaned or not bounded", r->name);
    }
    for (size_t i = 0; i < NNAMES; i++) {
        free(found[i].name);
        free(found[i].error);
        free(found[i].agent);
    }
    return 0;
}
