/* Unit tests for agent/jobstate.c: an export job's state, last run and lock in
 * state_dir, written durably, read back, and refused when damaged. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/jobstate.h"
#include "unit.h"

static char base[64];

static const char *at(const char *name)
{
    static char path[256];

    snprintf(path, sizeof(path), "%s/%s", base, name);
    return path;
}

static void put(const char *name, const char *text)
{
    FILE *f = fopen(at(name), "w");

    CHECK(f != NULL);
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_state_round_trip(void)
{
    const char *dir = at("state"); /* made by the first write */
    jobstate st, back;
    owl_err err = {0};

    CHECK(jobstate_read(dir, "nightly", &st, &err) == 0); /* never run: zero */
    CHECK(st.sequence == 0 && st.digest[0] == '\0');
    st.sequence = 42;
    memset(st.digest, 'a', JOBSTATE_DIGEST_LEN);
    st.digest[JOBSTATE_DIGEST_LEN] = '\0';
    CHECK(jobstate_write(dir, "nightly", &st, &err) == 0);
    CHECK(jobstate_read(dir, "nightly", &back, &err) == 0);
    CHECK(back.sequence == 42);
    CHECK_STR(back.digest, st.digest);
    CHECK(access(at("state/.export-nightly.state.tmp"), F_OK) != 0);
    /* jobs do not see each other's state */
    CHECK(jobstate_read(dir, "other", &back, &err) == 0 && back.sequence == 0);
}

static void test_state_damaged(void)
{
    jobstate st;
    owl_err err = {0};

    put("state/export-bad.state", "sequence 12x\ndigest abc\n");
    CHECK(jobstate_read(at("state"), "bad", &st, &err) == -1);
    CHECK_CONTAINS(err.msg, "export-bad.state is damaged (sequence)");
    put("state/export-bad.state", "sequence -1\n");
    CHECK(jobstate_read(at("state"), "bad", &st, &err) == -1);
    /* a digest of the wrong length is no digest: the next run publishes */
    put("state/export-short.state", "sequence 3\ndigest abc\n");
    CHECK(jobstate_read(at("state"), "short", &st, &err) == 0);
    CHECK(st.sequence == 3 && st.digest[0] == '\0');
    /* a name that is not a job name reaches no file */
    CHECK(jobstate_read(at("state"), "../x", &st, &err) == -1);
}

#define DIG1 "1111111111111111111111111111111111111111111111111111111111111111"
static const char D1[] = DIG1;
static const char D2[] = "2222222222222222222222222222222222222222222222222222222222222222";

/* What each outbox received: any path (spaces, tabs, newlines, backslashes)
 * comes back as it went; the sequence taken is kept apart from them. */
static void test_outboxes_round_trip(void)
{
    char dir[256];
    const char *odd = "/mnt/with space\tab\\ and\nnew line";
    jobstate st, back;
    const char *digest = NULL;
    uint64_t seq = 0;
    owl_err err = {0};

    snprintf(dir, sizeof(dir), "%s", at("state"));
    memset(&st, 0, sizeof(st));
    st.sequence = 9; /* taken, published nowhere yet */
    memcpy(st.digest, D2, sizeof(st.digest));
    CHECK(jobstate_set_received(&st, "/mnt/a", 7, D1, &err) == 0);
    CHECK(jobstate_set_received(&st, odd, 8, D2, &err) == 0);
    CHECK(jobstate_set_received(&st, "/mnt/a", 8, D2, &err) == 0); /* replaces its record */
    CHECK(st.noutboxes == 2);
    CHECK(jobstate_set_received(&st, "/mnt/b", 8, "short", &err) == -1);
    CHECK(jobstate_write(dir, "ob", &st, &err) == 0);
    CHECK(jobstate_read(dir, "ob", &back, &err) == 0);
    CHECK(back.sequence == 9 && !back.legacy && back.noutboxes == 2);
    CHECK_STR(back.digest, D2);
    CHECK(jobstate_received(&back, odd, &seq, &digest) && seq == 8);
    CHECK_STR(digest, D2);
    CHECK(jobstate_received(&back, "/mnt/a", &seq, &digest) && seq == 8);
    CHECK(!jobstate_received(&back, "/mnt/b", &seq, &digest));
    CHECK(jobstate_last_received(&back) == 8);
    jobstate_free(&back);
    CHECK(back.outboxes == NULL && back.noutboxes == 0);
    jobstate_free(&st);
    jobstate_free(NULL);
}

/* A file of owlsync before outbox records: every outbox counts as having
 * received its bundle; kept so by a run that records nothing (-o), turned
 * into records by one that does. */
static void test_state_legacy(void)
{
    char dir[256], *outs[] = {"/mnt/a", "/mnt/b"};
    jobstate st;
    const char *digest = NULL;
    uint64_t seq = 0;
    owl_err err = {0};
    char text[256];

    snprintf(dir, sizeof(dir), "%s", at("state"));
    snprintf(text, sizeof(text), "sequence 5\ndigest %s\n", D1);
    put("state/export-old.state", text);
    CHECK(jobstate_read(dir, "old", &st, &err) == 0);
    CHECK(st.legacy && st.sequence == 5 && st.noutboxes == 0);
    CHECK(jobstate_received(&st, "/anywhere", &seq, &digest) && seq == 5);
    CHECK_STR(digest, D1);
    CHECK(jobstate_last_received(&st) == 5);
    /* a run with -o takes number 6: the file stays as it was otherwise */
    st.sequence = 6;
    CHECK(jobstate_write(dir, "old", &st, &err) == 0);
    jobstate_free(&st);
    CHECK(jobstate_read(dir, "old", &st, &err) == 0);
    CHECK(st.legacy && st.sequence == 6);
    CHECK(jobstate_adopt(&st, outs, 2, &err) == 0);
    CHECK(!st.legacy && st.noutboxes == 2 && st.sequence == 6);
    CHECK(jobstate_received(&st, "/mnt/b", &seq, &digest) && seq == 6);
    CHECK(!jobstate_received(&st, "/mnt/c", &seq, &digest));
    jobstate_free(&st);
    /* a job that never published has nothing to adopt */
    put("state/export-old.state", "sequence 0\ndigest \n");
    CHECK(jobstate_read(dir, "old", &st, &err) == 0 && jobstate_adopt(&st, outs, 2, &err) == 0);
    CHECK(st.noutboxes == 0 && !jobstate_received(&st, "/mnt/a", &seq, &digest));
    jobstate_free(&st);
}

static void test_outboxes_damaged(void)
{
    char dir[256], text[512];
    const char *bad[] = {
        "outbox 3 " DIG1 "\n",         /* no path */
        "outbox x " DIG1 " /mnt/a\n",  /* no number */
        "outbox 3 abc /mnt/a\n",       /* no digest */
        "what is this\n",
        "outbox 3 " DIG1 " /mnt/a",     /* no end */
    };
    jobstate st;
    owl_err err = {0};

    snprintf(dir, sizeof(dir), "%s", at("state"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "owlsync-state 2\nsequence 3\ndigest \n%s", bad[i]);
        put("state/export-dmg.state", text);
        CHECK(jobstate_read(dir, "dmg", &st, &err) == -1);
        CHECK_CONTAINS(err.msg, "export-dmg.state is damaged");
        CHECK(st.outboxes == NULL && st.noutboxes == 0);
    }
    put("state/export-dmg.state", "owlsync-state 2\ndigest \n");
    CHECK(jobstate_read(dir, "dmg", &st, &err) == -1);
    CHECK_CONTAINS(err.msg, "damaged (sequence)");
}

static void test_last_round_trip(void)
{
    jobstate_last l = {1700000000, 3, 1690000000, 1700000000}, back;
    owl_err err = {0};

    CHECK(jobstate_read_last(at("state"), "nightly", &back, &err) == 0);
    CHECK(back.finished == 0 && back.exit_code == -1 && back.success == 0 && back.failure == 0);
    CHECK(jobstate_write_last(at("state"), "nightly", &l, &err) == 0);
    CHECK(jobstate_read_last(at("state"), "nightly", &back, &err) == 0);
    CHECK(back.finished == 1700000000 && back.exit_code == 3 && back.success == 1690000000);
    CHECK(back.failure == 1700000000);
    l.success = 0;
    CHECK(jobstate_write_last(at("state"), "nightly", &l, &err) == 0);
    CHECK(jobstate_read_last(at("state"), "nightly", &back, &err) == 0);
    CHECK(back.success == 0);
    /* a file written before failures were kept reads as no failure */
    {
        FILE *f = fopen(at("state/export-old.last"), "w");
        CHECK(f != NULL);
        if (f != NULL) {
            fputs("finished 2026-01-02T03:04:05Z\nexit 1\nsuccess never\n", f);
            fclose(f);
        }
        CHECK(jobstate_read_last(at("state"), "old", &back, &err) == 0);
        CHECK(back.exit_code == 1 && back.finished > 0 && back.failure == 0);
    }
}

/* The import agent's last failure (job NULL): STATE_DIR/import.last, apart
 * from every export job's files. */
static void test_import_last(void)
{
    jobstate_last l = {1700000100, 1, 1700000000, 1700000100}, back;
    struct stat st;
    owl_err err = {0};

    CHECK(jobstate_read_last(at("istate"), NULL, &back, &err) == 0);
    CHECK(back.failure == 0 && back.exit_code == -1);
    CHECK(jobstate_write_last(at("istate"), NULL, &l, &err) == 0);
    CHECK(stat(at("istate/import.last"), &st) == 0);
    CHECK(jobstate_read_last(at("istate"), NULL, &back, &err) == 0);
    CHECK(back.failure == 1700000100 && back.success == 1700000000 && back.exit_code == 1);
    CHECK(jobstate_read_last(at("istate"), "import", &back, &err) == 0);
    CHECK(back.failure == 0); /* a job named "import" has files of its own */
}

/* The datasets a job carried: any name (tabs, newlines, backslashes, UTF-8)
 * comes back as it went, with its time; a damaged file is an error. */
static void test_datasets(void)
{
    char dir[256];
    jobstate_dataset v[3] = {{"public.ds_1", INT64_C(1700000000000001)},
                             {"tab\there\nnew line \\ back \xc3\xa9", INT64_C(0)},
                             {"x", INT64_C(9223372036854775807)}};
    jobstate_dataset *back = NULL;
    size_t n = 99;
    owl_err err = {0};

    snprintf(dir, sizeof(dir), "%s", at("state")); /* at() reuses its buffer */
    CHECK(jobstate_read_datasets(dir, "ds", &back, &n, &err) == 0); /* never run: none */
    CHECK(back == NULL && n == 0);
    CHECK(jobstate_write_datasets(dir, "ds", v, 3, &err) == 0);
    CHECK(jobstate_read_datasets(dir, "ds", &back, &n, &err) == 0);
    CHECK(n == 3);
    for (size_t i = 0; i < 3 && i < n; i++) {
        CHECK_STR(back[i].name, v[i].name);
        CHECK(back[i].seen == v[i].seen);
    }
    jobstate_datasets_free(back, n);
    /* none at all reads back as none */
    CHECK(jobstate_write_datasets(dir, "ds", v, 0, &err) == 0);
    CHECK(jobstate_read_datasets(dir, "ds", &back, &n, &err) == 0 && n == 0);
    jobstate_datasets_free(back, n);

    put("state/export-dsbad.datasets", "something else\n");
    CHECK(jobstate_read_datasets(dir, "dsbad", &back, &n, &err) == -1 && back == NULL && n == 0);
    CHECK_CONTAINS(err.msg, "export-dsbad.datasets is damaged (its first line)");
    put("state/export-dsbad.datasets", "owlsync-datasets 1\n12\tok\nnot a time\tx\n");
    CHECK(jobstate_read_datasets(dir, "dsbad", &back, &n, &err) == -1 && back == NULL);
    CHECK_CONTAINS(err.msg, "(line 3)");
    put("state/export-dsbad.datasets", "owlsync-datasets 1\n12\tno end");
    CHECK(jobstate_read_datasets(dir, "dsbad", &back, &n, &err) == -1);
    CHECK_CONTAINS(err.msg, "its end");
    put("state/export-dsbad.datasets", "owlsync-datasets 1\n-12\tx\n");
    CHECK(jobstate_read_datasets(dir, "dsbad", &back, &n, &err) == -1);
    CHECK_CONTAINS(err.msg, "a bad time");
    put("state/export-dsbad.datasets", "owlsync-datasets 1\n12\t\n");
    CHECK(jobstate_read_datasets(dir, "dsbad", &back, &n, &err) == -1);
    CHECK_CONTAINS(err.msg, "a bad name");
}

static void test_lock(void)
{
    int a = -1, b = -1;
    owl_err err = {0};

    CHECK(jobstate_lock(at("fresh/dir"), "nightly", &a, &err) == -1); /* the parent is missing */
    CHECK_CONTAINS(err.msg, "cannot create state_dir");
    CHECK_CONTAINS(err.msg, "HINT: set [owlsync] state_dir");
    CHECK(jobstate_lock(at("state"), "nightly", &a, &err) == 0);
    CHECK(jobstate_lock(at("state"), "nightly", &b, &err) == -1);
    CHECK(err.code == OWL_ERUNTIME);
    CHECK_CONTAINS(err.msg, "export job nightly is already running");
    if (b >= 0)
        close(b);
    close(a);
    CHECK(jobstate_lock(at("state"), "nightly", &b, &err) == 0); /* released with its descriptor */
    close(b);
}

int main(void)
{
    snprintf(base, sizeof(base), "/tmp/owlsync-test-jobstate.XXXXXX");
    if (mkdtemp(base) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_state_round_trip);
    RUN(test_state_damaged);
    RUN(test_outboxes_round_trip);
    RUN(test_state_legacy);
    RUN(test_outboxes_damaged);
    RUN(test_last_round_trip);
    RUN(test_import_last);
    RUN(test_datasets);
    RUN(test_lock);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", base);
    }
    return UNIT_DONE();
}
