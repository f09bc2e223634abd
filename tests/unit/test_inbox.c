/* Unit tests for agent/inbox.c: what a scan ignores, settling by a given clock,
 * claims between two agents, orphans, done, quarantine, counts and hostile names. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "owlsync/inbox.h"
#include "unit.h"

static char tmpdir[64];
static int serial;

/* One fresh inbox directory per test: DIR/inbox-N, its path in a static buffer. */
static const char *fresh_inbox(void)
{
    static char buf[128];

    snprintf(buf, sizeof(buf), "%s/inbox-%d", tmpdir, ++serial);
    if (mkdir(buf, 0750) < 0)
        printf("# mkdir %s: %s\n", buf, strerror(errno));
    return buf;
}

/* "dir/name" in one of a few rotating static buffers. */
static const char *at(const char *dir, const char *name)
{
    static char buf[4][640];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
    return p;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t len = strlen(text);

    if (fd < 0)
        return -1;
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    return close(fd);
}

/* The whole (small) file in a static buffer, or "(missing)". */
static const char *read_file(const char *path)
{
    static char buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t n;

    if (fd < 0)
        return "(missing)";
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* Opens an inbox on dir with the default processed/ and quarantine/ inside it. */
static inbox *open_inbox(const char *dir, int settle, bool keep_processed)
{
    char processed[256], quarantine[256];
    inbox_config ic = {0};
    inbox *ib = NULL;
    owl_err err = {0};

    snprintf(processed, sizeof(processed), "%s/processed", dir);
    snprintf(quarantine, sizeof(quarantine), "%s/quarantine", dir);
    ic.dir = dir;
    ic.processed_dir = keep_processed ? processed : NULL;
    ic.quarantine_dir = quarantine;
    ic.settle_time = settle;
    if (inbox_open(&ic, &ib, &err) != 0) {
        printf("#   inbox_open %s: %s\n", dir, err.msg);
        CHECK(0);
    }
    return ib;
}

/* Scans and returns the number of settled files; names joined by ',' in *names. */
static size_t scan(inbox *ib, time_t now, size_t *unsettled, char *names, size_t namesz)
{
    inbox_file *files = NULL;
    size_t n = 0, u = 0;
    owl_err err = {0};

    names[0] = '\0';
    if (inbox_scan(ib, now, &files, &n, &u, &err) != 0) {
        printf("#   inbox_scan: %s\n", err.msg);
        CHECK(0);
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names);
        snprintf(names + len, namesz - len, "%s%s", i ? "," : "", files[i].name);
    }
    inbox_files_free(files, n);
    if (unsettled != NULL)
        *unsettled = u;
    return n;
}

/* The orphans' names joined by ','. */
static const char *orphans(inbox *ib)
{
    static char names[1024];
    inbox_file *files = NULL;
    size_t n = 0;
    owl_err err = {0};

    names[0] = '\0';
    if (inbox_orphans(ib, &files, &n, &err) != 0) {
        printf("#   inbox_orphans: %s\n", err.msg);
        CHECK(0);
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names);
        snprintf(names + len, sizeof(names) - len, "%s%s", i ? "," : "", files[i].name);
    }
    inbox_files_free(files, n);
    return names;
}

static void test_open_creates_dirs(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    struct stat st;

    CHECK(ib != NULL);
    CHECK(stat(at(dir, ".work"), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK((st.st_mode & 0027) == 0); /* 0750 before the umask */
    CHECK(stat(at(dir, "processed"), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(stat(at(dir, "quarantine"), &st) == 0 && S_ISDIR(st.st_mode));
    inbox_close(ib);
    /* a second open finds them in place */
    ib = open_inbox(dir, 0, true);
    CHECK(ib != NULL);
    inbox_close(ib);
    inbox_close(NULL);
}

static void test_open_errors(void)
{
    const char *dir = fresh_inbox();
    inbox_config ic = {0};
    inbox *ib = NULL;
    owl_err err = {0};

    CHECK(inbox_open(&ic, &ib, &err) == -1);
    CHECK_STR(err.msg, "no inbox directory configured");
    CHECK(err.code == OWL_EUSAGE);

    ic.dir = at(dir, "missing");
    CHECK(inbox_open(&ic, &ib, &err) == -1);
    CHECK(ib == NULL);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "cannot open inbox ");
    CHECK_CONTAINS(err.msg, "/missing: No such file or directory");

    /* .work and quarantine planted as a symlink and a FIFO by someone who can
     * write the inbox: moved aside, real directories made in their place */
    CHECK(mkdir(at(dir, "elsewhere"), 0750) == 0);
    CHECK(symlink("elsewhere", at(dir, ".work")) == 0);
    CHECK(mkfifo(at(dir, "quarantine"), 0600) == 0);
    ic.dir = dir;
    CHECK(inbox_open(&ic, &ib, &err) == 0);
    inbox_close(ib);
    ib = NULL;
    {
        struct stat st;
        CHECK(lstat(at(dir, ".work"), &st) == 0 && S_ISDIR(st.st_mode));
        CHECK(lstat(at(dir, "quarantine"), &st) == 0 && S_ISDIR(st.st_mode));
        CHECK(exists(at(dir, "elsewhere")));
    }
    /* a processed_dir configured elsewhere as a link is the configuration's
     * mistake: refused */
    {
        char linked[640];
        snprintf(linked, sizeof(linked), "%s/../linked-%d", dir, (int)getpid());
        CHECK(symlink(dir, linked) == 0);
        ic.processed_dir = linked;
        CHECK(inbox_open(&ic, &ib, &err) == -1);
        CHECK(err.code == OWL_EUSAGE);
        CHECK_CONTAINS(err.msg, "is not a directory\nHINT: give the real path of a directory, not a symbolic link");
        CHECK(unlink(linked) == 0);
        ic.processed_dir = NULL;
    }

    /* a processed_dir that is the inbox would feed bundles back in */
    ic.processed_dir = dir;
    CHECK(inbox_open(&ic, &ib, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "is the inbox itself");
    ic.processed_dir = NULL;

    /* quarantine_dir NULL: INBOX/quarantine */
    CHECK(inbox_open(&ic, &ib, &err) == 0);
    CHECK(exists(at(dir, "quarantine")));
    inbox_close(ib);
}

static void test_scan_ignores(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    char names[1024];
    size_t unsettled = 9;

    CHECK(write_file(at(dir, "a.owlb"), "bundle") == 0);
    CHECK(write_file(at(dir, ".hidden.owlb"), "x") == 0);
    CHECK(write_file(at(dir, "notes.txt"), "x") == 0);
    CHECK(write_file(at(dir, "b.owlb.part"), "x") == 0);
    CHECK(write_file(at(dir, ".owlb"), "x") == 0);
    CHECK(write_file(at(dir, "c.OWLB"), "x") == 0);
    CHECK(mkdir(at(dir, "dir.owlb"), 0750) == 0);
    CHECK(symlink("a.owlb", at(dir, "link.owlb")) == 0);
    CHECK(symlink("/etc/passwd", at(dir, "passwd.owlb")) == 0);
    CHECK(symlink("nowhere", at(dir, "dangling.owlb")) == 0);
    CHECK(mkfifo(at(dir, "fifo.owlb"), 0600) == 0);
    CHECK(scan(ib, 1000, &unsettled, names, sizeof(names)) == 1);
    CHECK_STR(names, "a.owlb");
    CHECK(unsettled == 0);

    /* nor can any of them be claimed */
    {
        inbox_claim claim;
        owl_err err = {0};
        CHECK(inbox_claim_file(ib, "link.owlb", false, &claim, &err) == 0);
        CHECK(inbox_claim_file(ib, "fifo.owlb", false, &claim, &err) == 0);
        CHECK(inbox_claim_file(ib, "dir.owlb", false, &claim, &err) == 0);
        CHECK(exists(at(dir, "link.owlb")) && exists(at(dir, "fifo.owlb")));
        CHECK(claim.fd == -1 && claim.name == NULL && claim.path == NULL);
    }
    inbox_close(ib);
}

static void test_scan_order(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    struct timespec times[2] = {{0, 0}, {0, 0}};
    char names[1024];

    CHECK(write_file(at(dir, "z.owlb"), "1") == 0);
    CHECK(write_file(at(dir, "b.owlb"), "2") == 0);
    CHECK(write_file(at(dir, "a.owlb"), "3") == 0);
    times[0].tv_sec = times[1].tv_sec = 1000000;
    CHECK(utimensat(AT_FDCWD, at(dir, "z.owlb"), times, 0) == 0);
    times[0].tv_sec = times[1].tv_sec = 2000000;
    CHECK(utimensat(AT_FDCWD, at(dir, "a.owlb"), times, 0) == 0);
    CHECK(utimensat(AT_FDCWD, at(dir, "b.owlb"), times, 0) == 0);
    /* oldest first, then by name */
    CHECK(scan(ib, 1000, NULL, names, sizeof(names)) == 3);
    CHECK_STR(names, "z.owlb,a.owlb,b.owlb");
    inbox_close(ib);
}

static void test_settle(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 2, true);
    struct timespec times[2] = {{5000, 0}, {5000, 0}};
    char names[1024];
    size_t unsettled = 0;

    CHECK(write_file(at(dir, "a.owlb"), "part") == 0);
    CHECK(scan(ib, 1000, &unsettled, names, sizeof(names)) == 0);
    CHECK(unsettled == 1);
    CHECK(scan(ib, 1001, &unsettled, names, sizeof(names)) == 0);
    CHECK(unsettled == 1);
    CHECK(scan(ib, 1002, &unsettled, names, sizeof(names)) == 1);
    CHECK_STR(names, "a.owlb");
    CHECK(unsettled == 0);

    /* grows: seen anew */
    CHECK(write_file(at(dir, "a.owlb"), "part and more") == 0);
    CHECK(scan(ib, 1003, &unsettled, names, sizeof(names)) == 0);
    CHECK(unsettled == 1);
    CHECK(scan(ib, 1005, &unsettled, names, sizeof(names)) == 1);

    /* same size, other mtime: seen anew */
    CHECK(utimensat(AT_FDCWD, at(dir, "a.owlb"), times, 0) == 0);
    CHECK(scan(ib, 1006, &unsettled, names, sizeof(names)) == 0);
    CHECK(unsettled == 1);
    CHECK(scan(ib, 1008, &unsettled, names, sizeof(names)) == 1);

    /* replaced by another file of the same size and mtime: seen anew */
    CHECK(write_file(at(dir, "b.tmp"), "part and more") == 0);
    CHECK(utimensat(AT_FDCWD, at(dir, "b.tmp"), times, 0) == 0);
    CHECK(rename(at(dir, "b.tmp"), at(dir, "a.owlb")) == 0);
    CHECK(scan(ib, 1009, &unsettled, names, sizeof(names)) == 0);
    CHECK(unsettled == 1);

    /* a clock stepped back restarts the wait from the new now, no longer */
    CHECK(scan(ib, 900, &unsettled, names, sizeof(names)) == 0);
    CHECK(scan(ib, 902, &unsettled, names, sizeof(names)) == 1);

    /* a vanished file drops out; when it comes back it waits again */
    CHECK(rename(at(dir, "a.owlb"), at(dir, "a.away")) == 0);
    CHECK(scan(ib, 903, &unsettled, names, sizeof(names)) == 0);
    CHECK(unsettled == 0);
    CHECK(rename(at(dir, "a.away"), at(dir, "a.owlb")) == 0);
    CHECK(scan(ib, 904, &unsettled, names, sizeof(names)) == 0);
    CHECK(unsettled == 1);
    inbox_close(ib);

    /* settle_time 0: settled at first sight */
    ib = open_inbox(dir, 0, true);
    CHECK(scan(ib, 1, &unsettled, names, sizeof(names)) == 1);
    CHECK(unsettled == 0);
    inbox_close(ib);
}

static void test_claim(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_claim claim, again;
    owl_err err = {0};
    char names[1024];
    char buf[16];

    CHECK(write_file(at(dir, "a.owlb"), "bundle") == 0);
    CHECK(inbox_claim_file(ib, "a.owlb", false, &claim, &err) == 1);
    CHECK_STR(claim.name, "a.owlb");
    CHECK_STR(claim.path, at(dir, ".work/a.owlb"));
    CHECK(claim.fd >= 0);
    CHECK(!exists(at(dir, "a.owlb")));
    CHECK(exists(at(dir, ".work/a.owlb")));
    /* the descriptor reads the bundle, in blocking mode */
    CHECK(read(claim.fd, buf, sizeof(buf)) == 6 && memcmp(buf, "bundle", 6) == 0);
    CHECK((fcntl(claim.fd, F_GETFL) & O_NONBLOCK) == 0);
    /* a claimed file is no longer a candidate */
    CHECK(scan(ib, 1000, NULL, names, sizeof(names)) == 0);

    /* claimed already, or never there: 0 */
    CHECK(inbox_claim_file(ib, "a.owlb", false, &again, &err) == 0);
    CHECK(inbox_claim_file(ib, "nothing.owlb", false, &again, &err) == 0);
    /* the one claimed from .work by anyone else while we hold it: 0 */
    CHECK(inbox_claim_file(ib, "a.owlb", true, &again, &err) == 0);

    /* a file of the same name arriving while the first is in .work stays put */
    CHECK(write_file(at(dir, "a.owlb"), "second") == 0);
    CHECK(inbox_claim_file(ib, "a.owlb", false, &again, &err) == 0);
    CHECK(exists(at(dir, "a.owlb")));
    CHECK_STR(read_file(at(dir, ".work/a.owlb")), "bundle");

    inbox_release(&claim);
    CHECK(claim.fd == -1 && claim.name == NULL && claim.path == NULL);
    inbox_release(&claim); /* twice is harmless */
    CHECK(exists(at(dir, ".work/a.owlb")));
    inbox_close(ib);
}

static void test_two_agents(void)
{
    const char *dir = fresh_inbox();
    inbox *one = open_inbox(dir, 0, true);
    inbox *two = open_inbox(dir, 0, true);
    inbox_claim c1, c2;
    owl_err err = {0};
    char names[1024];
    int got1, got2;

    CHECK(write_file(at(dir, "a.owlb"), "bundle") == 0);
    CHECK(scan(one, 1000, NULL, names, sizeof(names)) == 1);
    CHECK(scan(two, 1000, NULL, names, sizeof(names)) == 1);
    got1 = inbox_claim_file(one, "a.owlb", false, &c1, &err);
    got2 = inbox_claim_file(two, "a.owlb", false, &c2, &err);
    CHECK(got1 == 1);
    CHECK(got2 == 0);
    CHECK(c2.fd == -1);
    inbox_release(&c1);

    /* one agent moved a file into .work but has not locked it yet: whoever
     * locks first has it, the other gets 0 */
    CHECK(write_file(at(dir, ".work/b.owlb"), "bundle") == 0);
    got2 = inbox_claim_file(two, "b.owlb", true, &c2, &err);
    CHECK(got2 == 1);
    CHECK(inbox_claim_file(one, "b.owlb", true, &c1, &err) == 0);

    /* and once the winner is done with it, it is not taken a second time */
    CHECK(inbox_done(two, &c2, &err) == 0);
    CHECK(inbox_claim_file(one, "b.owlb", true, &c2, &err) == 0);
    CHECK(exists(at(dir, "processed/b.owlb")));

    inbox_close(two);
    inbox_close(one);
}

static void test_orphans(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_claim claim, other;
    owl_err err = {0};

    CHECK_STR(orphans(ib), "");
    CHECK(write_file(at(dir, "a.owlb"), "bundle") == 0);
    CHECK(inbox_claim_file(ib, "a.owlb", false, &claim, &err) == 1);
    CHECK(write_file(at(dir, ".work/b.owlb"), "left by a crash") == 0);
    CHECK(write_file(at(dir, ".work/.c.owlb"), "x") == 0);
    CHECK(write_file(at(dir, ".work/d.txt"), "x") == 0);
    CHECK(symlink("b.owlb", at(dir, ".work/e.owlb")) == 0);
    CHECK(mkfifo(at(dir, ".work/f.owlb"), 0600) == 0);
    /* a is locked: not an orphan */
    CHECK_STR(orphans(ib), "b.owlb");
    /* looking did not leave b locked */
    CHECK(inbox_claim_file(ib, "b.owlb", true, &other, &err) == 1);
    CHECK_STR(orphans(ib), "");
    inbox_release(&other);
    inbox_release(&claim);
    CHECK_CONTAINS(orphans(ib), "a.owlb");
    CHECK_CONTAINS(orphans(ib), "b.owlb");
    /* from_work never touches a symlink or fifo */
    CHECK(inbox_claim_file(ib, "e.owlb", true, &other, &err) == 0);
    CHECK(inbox_claim_file(ib, "f.owlb", true, &other, &err) == 0);
    inbox_close(ib);
}

static void test_done(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_claim claim;
    owl_err err = {0};
    const char *texts[] = {"first", "second", "third"};

    for (int i = 0; i < 3; i++) {
        CHECK(write_file(at(dir, "a.owlb"), texts[i]) == 0);
        CHECK(inbox_claim_file(ib, "a.owlb", false, &claim, &err) == 1);
        CHECK(inbox_done(ib, &claim, &err) == 0);
        CHECK(claim.fd == -1 && claim.name == NULL && claim.path == NULL);
    }
    CHECK(!exists(at(dir, ".work/a.owlb")));
    /* never overwritten: later ones get a suffix */
    CHECK_STR(read_file(at(dir, "processed/a.owlb")), "first");
    CHECK_STR(read_file(at(dir, "processed/a.owlb.1")), "second");
    CHECK_STR(read_file(at(dir, "processed/a.owlb.2")), "third");
    /* processed/ inside the inbox is a directory: scans pass it by */
    CHECK_STR(orphans(ib), "");
    inbox_close(ib);

    /* processed_dir NULL: deleted */
    ib = open_inbox(dir, 0, false);
    CHECK(write_file(at(dir, "b.owlb"), "x") == 0);
    CHECK(inbox_claim_file(ib, "b.owlb", false, &claim, &err) == 1);
    CHECK(inbox_done(ib, &claim, &err) == 0);
    CHECK(!exists(at(dir, ".work/b.owlb")));
    CHECK(!exists(at(dir, "processed/b.owlb")));
    CHECK(!exists(at(dir, "b.owlb")));
    inbox_close(ib);
}

static void test_done_replaced(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_claim claim;
    owl_err err = {0};

    CHECK(write_file(at(dir, "a.owlb"), "verified") == 0);
    CHECK(inbox_claim_file(ib, "a.owlb", false, &claim, &err) == 1);
    /* someone swaps the file under .work while we work on it */
    CHECK(write_file(at(dir, "x.tmp"), "swapped") == 0);
    CHECK(rename(at(dir, "x.tmp"), at(dir, ".work/a.owlb")) == 0);
    CHECK(inbox_done(ib, &claim, &err) == -1);
    CHECK(err.code == OWL_ERUNTIME);
    CHECK_CONTAINS(err.msg, "/.work/a.owlb was replaced while we worked on it");
    CHECK(claim.fd == -1);
    CHECK(!exists(at(dir, "processed/a.owlb")));
    inbox_close(ib);
}

#define REASON1 "reason: signature does not verify\\nHINT: check trusted_key\ntime: 20"
#define REASON2 "reason: table \"x\\ry\" \\\\ not allowed\\x1b[31m\ntime: 20"

static void test_quarantine(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_claim claim;
    owl_err err = {0};
    const char *text;

    CHECK(write_file(at(dir, "a.owlb"), "bad") == 0);
    CHECK(inbox_claim_file(ib, "a.owlb", false, &claim, &err) == 1);
    CHECK(inbox_quarantine(ib, &claim, 3, "signature does not verify\nHINT: check trusted_key", &err) == 0);
    CHECK(claim.fd == -1 && claim.name == NULL);
    CHECK(!exists(at(dir, ".work/a.owlb")));
    CHECK_STR(read_file(at(dir, "quarantine/a.owlb")), "bad");
    text = read_file(at(dir, "quarantine/a.owlb.reason"));
    CHECK(strncmp(text, REASON1, strlen(REASON1)) == 0);
    CHECK_CONTAINS(text, "Z\nexit_code: 3\nfile: a.owlb\n");
    CHECK(strlen(text) == strlen("reason: signature does not verify\\nHINT: check trusted_key\n"
                                 "time: 2026-11-25T12:00:00Z\nexit_code: 3\nfile: a.owlb\n"));
    CHECK(!exists(at(dir, "quarantine/.a.owlb.reason.tmp")));

    /* the same name again: a suffix, and its own .reason; hostile text escaped */
    CHECK(write_file(at(dir, "a.owlb"), "worse") == 0);
    CHECK(inbox_claim_file(ib, "a.owlb", false, &claim, &err) == 1);
    CHECK(inbox_quarantine(ib, &claim, 4, "table \"x\ry\" \\ not allowed\x1b[31m", &err) == 0);
    CHECK_STR(read_file(at(dir, "quarantine/a.owlb.1")), "worse");
    text = read_file(at(dir, "quarantine/a.owlb.1.reason"));
    CHECK(strncmp(text, REASON2, strlen(REASON2)) == 0);
    CHECK_CONTAINS(text, "exit_code: 4\nfile: a.owlb\n");
    CHECK_CONTAINS(read_file(at(dir, "quarantine/a.owlb.reason")), "exit_code: 3\n");
    inbox_close(ib);
}

static void test_counts(void)
{
    const char *dir = fresh_inbox();
    inbox_config ic = {0};
    inbox *ib;
    inbox_claim claim;
    owl_err err = {0};
    inbox_listing l;

    /* before the agent ever ran: no .work/, no quarantine/ */
    CHECK(write_file(at(dir, "a.owlb"), "1") == 0);
    ic.dir = dir;
    CHECK(inbox_list(&ic, 100, &l, &err) == 0);
    CHECK(l.waiting_count == 1 && l.working_count == 0 && l.quarantined_count == 0);
    CHECK(l.nwaiting == 1 && l.nworking == 0 && l.nquarantined == 0);
    CHECK(l.nwaiting == 1 && strcmp(l.waiting[0].name, "a.owlb") == 0);
    inbox_listing_free(&l);

    ib = open_inbox(dir, 60, true);
    CHECK(write_file(at(dir, "b.owlb"), "2") == 0);
    CHECK(write_file(at(dir, "c.owlb"), "3") == 0);
    CHECK(write_file(at(dir, "junk.txt"), "x") == 0);
    CHECK(write_file(at(dir, ".d.owlb"), "x") == 0);
    CHECK(inbox_claim_file(ib, "b.owlb", false, &claim, &err) == 1);
    inbox_release(&claim);
    CHECK(inbox_claim_file(ib, "c.owlb", false, &claim, &err) == 1);
    CHECK(inbox_quarantine(ib, &claim, 3, "bad", &err) == 0);
    /* the same name quarantined again lands as c.owlb.1: counted and listed */
    CHECK(write_file(at(dir, "c.owlb"), "4") == 0);
    CHECK(inbox_claim_file(ib, "c.owlb", false, &claim, &err) == 1);
    CHECK(inbox_quarantine(ib, &claim, 4, "worse", &err) == 0);
    /* a file someone left in quarantine/ by hand has no reason file */
    CHECK(write_file(at(dir, "quarantine/e.owlb"), "5") == 0);
    /* and one whose reason file is far larger than any owlsync writes */
    CHECK(write_file(at(dir, "quarantine/f.owlb"), "6") == 0);
    {
        FILE *f = fopen(at(dir, "quarantine/f.owlb.reason"), "w");
        CHECK(f != NULL);
        for (int i = 0; f != NULL && i < 100000; i++)
            fputc('x', f);
        if (f != NULL)
            fclose(f);
    }
    ic.quarantine_dir = at(dir, "quarantine");
    CHECK(inbox_list(&ic, 100, &l, &err) == 0);
    CHECK(l.waiting_count == 1); /* a.owlb, settled or not */
    CHECK(l.working_count == 1); /* b.owlb */
    CHECK(l.quarantined_count == 4); /* c.owlb, c.owlb.1, e.owlb, f.owlb, not the .reason files */
    CHECK(l.nquarantined == l.quarantined_count);
    if (l.nquarantined == 4) {
        CHECK_STR(l.quarantined[0].name, "c.owlb");
        CHECK_STR(l.quarantined[0].reason, "bad");
        CHECK_STR(l.quarantined[1].name, "c.owlb.1");
        CHECK_STR(l.quarantined[1].reason, "worse");
        CHECK_STR(l.quarantined[2].name, "e.owlb");
        CHECK_STR(l.quarantined[2].reason, "(no reason file)");
        CHECK(strncmp(l.quarantined[3].reason, "(its reason file cannot be shown: ", 34) == 0);
    }
    CHECK(l.nworking == 1 && strcmp(l.working[0].name, "b.owlb") == 0);
    inbox_listing_free(&l);
    /* lists are bounded; counts are not */
    CHECK(inbox_list(&ic, 1, &l, &err) == 0);
    CHECK(l.quarantined_count == 4 && l.nquarantined == 1);
    inbox_listing_free(&l);
    inbox_close(ib);

    ic.dir = at(dir, "missing");
    CHECK(inbox_list(&ic, 100, &l, &err) == -1);
    CHECK_CONTAINS(err.msg, "cannot open directory ");
}

static void test_hostile_names(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_claim claim;
    owl_err err = {0};
    char names[1024];
    char longname[300];
    size_t unsettled = 9;

    memset(longname, 'a', sizeof(longname));
    memcpy(longname + 245, ".owlb", 6); /* 250 bytes: the filesystem takes it */
    CHECK(write_file(at(dir, "evil\n.owlb"), "x") == 0);
    CHECK(write_file(at(dir, "bell\a.owlb"), "x") == 0);
    CHECK(write_file(at(dir, longname), "x") == 0);
    CHECK(write_file(at(dir, "ok.owlb"), "x") == 0);
    CHECK(scan(ib, 1000, &unsettled, names, sizeof(names)) == 1);
    CHECK_STR(names, "ok.owlb");
    CHECK(unsettled == 0);

    CHECK(inbox_claim_file(ib, "evil\n.owlb", false, &claim, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_STR(err.msg, "refusing inbox file name \"evil\\n.owlb\"\nHINT: a bundle is named *.owlb, at most 230 bytes, not hidden, without control characters");
    CHECK(exists(at(dir, "evil\n.owlb")));

    CHECK(inbox_claim_file(ib, longname, false, &claim, &err) == -1);
    CHECK_CONTAINS(err.msg, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");

    memset(longname, 'b', sizeof(longname));
    memcpy(longname + sizeof(longname) - 6, ".owlb", 6); /* 299 bytes: longer than NAME_MAX */
    CHECK(inbox_claim_file(ib, longname, false, &claim, &err) == -1);

    /* nothing may lead out of the inbox or into its hidden parts */
    CHECK(write_file(at(tmpdir, "outside.owlb"), "x") == 0);
    CHECK(inbox_claim_file(ib, "../outside.owlb", false, &claim, &err) == -1);
    CHECK(inbox_claim_file(ib, "/etc/x.owlb", false, &claim, &err) == -1);
    CHECK(inbox_claim_file(ib, ".work/x.owlb", false, &claim, &err) == -1);
    CHECK(inbox_claim_file(ib, ".x.owlb", false, &claim, &err) == -1);
    CHECK(inbox_claim_file(ib, "", false, &claim, &err) == -1);
    CHECK(inbox_claim_file(ib, ".owlb", false, &claim, &err) == -1);
    CHECK(exists(at(tmpdir, "outside.owlb")));
    CHECK(claim.fd == -1 && claim.name == NULL);
    inbox_close(ib);
}

/* A flood of files: one scan looks at INBOX_MAX_FILES of them, no more. */
static void test_scan_bound(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_file *files = NULL;
    size_t n = 0, unsettled = 0;
    owl_err err = {0};
    char name[32];

    for (int i = 0; i < INBOX_MAX_FILES + 5; i++) {
        int fd;
        snprintf(name, sizeof(name), "f%05d.owlb", i);
        fd = open(at(dir, name), O_WRONLY | O_CREAT, 0644);
        CHECK(fd >= 0);
        close(fd);
    }
    CHECK(inbox_scan(ib, 1000, &files, &n, &unsettled, &err) == 0);
    CHECK(n == INBOX_MAX_FILES);
    inbox_files_free(files, n);
    inbox_close(ib);
}

/* Whether s holds a control character (C0 or DEL). */
static bool has_control(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

/* Names and reason files in quarantine/ come from whoever can write to the
 * inbox: listed without a control character a terminal would act on. */
static void test_list_sanitised(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_config ic = {0};
    inbox_listing l;
    owl_err err = {0};

    inbox_close(ib);
    CHECK(write_file(at(dir, "quarantine/x\033[2J\033]0;owned\007.owlb"), "x") == 0);
    CHECK(write_file(at(dir, "quarantine/x\033[2J\033]0;owned\007.owlb.reason"),
                     "reason: ok\033[1A\rsignature verified\n") == 0);
    ic.dir = dir;
    CHECK(inbox_list(&ic, 100, &l, &err) == 0);
    CHECK(l.nquarantined == 1);
    if (l.nquarantined == 1) {
        CHECK(!has_control(l.quarantined[0].name));
        CHECK(!has_control(l.quarantined[0].reason));
        CHECK(strstr(l.quarantined[0].reason, "\\x1b[1A") != NULL);
    }
    inbox_listing_free(&l);
}

/* However many other entries the inbox holds, every bundle file is reached
 * within a few scans: each scan reads on from where the last one stopped. */
static void test_scan_many_entries(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    bool seen[20] = {false};
    size_t nseen = 0;
    char name[32];
    int fd;

    /* three times what one scan reads, junk and bundles mixed in readdir order */
    for (int i = 0; i < 300000; i++) {
        snprintf(name, sizeof(name), ".junk%06d", i);
        fd = open(at(dir, name), O_WRONLY | O_CREAT, 0644);
        CHECK(fd >= 0);
        close(fd);
        if (i % 15000 == 7000) {
            snprintf(name, sizeof(name), "b%02d.owlb", i / 15000);
            CHECK(write_file(at(dir, name), "x") == 0);
        }
    }
    for (int pass = 0; pass < 5 && nseen < 20; pass++) {
        inbox_file *files = NULL;
        size_t n = 0, unsettled = 0;
        owl_err err = {0};
        CHECK(inbox_scan(ib, 1000 + pass, &files, &n, &unsettled, &err) == 0);
        for (size_t i = 0; i < n; i++) {
            int k = (int)strtol(files[i].name + 1, NULL, 10);
            if (k >= 0 && k < 20 && !seen[k]) {
                seen[k] = true;
                nseen++;
            }
        }
        inbox_files_free(files, n);
    }
    if (nseen != 20)
        printf("#   %zu of 20 bundles seen in 5 scans\n", nseen);
    CHECK(nseen == 20);
    inbox_close(ib);
}

/* A file another user owns in a sticky inbox (here: an immutable one) cannot
 * be claimed: passed over, not an error, until it changes. */
static void test_unclaimable(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_file *files = NULL;
    size_t n = 0, unsettled = 0;
    inbox_claim claim;
    owl_err err = {0};
    char cmd[768];

    CHECK(write_file(at(dir, "a.owlb"), "x") == 0);
    snprintf(cmd, sizeof(cmd), "chattr +i '%s' 2>/dev/null", at(dir, "a.owlb"));
    if (system(cmd) != 0) {
        printf("# skipped: chattr +i does not work here\n");
        inbox_close(ib);
        return;
    }
    CHECK(inbox_scan(ib, 1000, &files, &n, &unsettled, &err) == 0);
    CHECK(n == 1);
    inbox_files_free(files, n);
    CHECK(inbox_claim_file(ib, "a.owlb", false, &claim, &err) == 0);
    CHECK(inbox_scan(ib, 1001, &files, &n, &unsettled, &err) == 0);
    CHECK(n == 0); /* passed over */
    inbox_files_free(files, n);
    snprintf(cmd, sizeof(cmd), "chattr -i '%s'", at(dir, "a.owlb"));
    CHECK(system(cmd) == 0);
    CHECK(write_file(at(dir, "a.owlb"), "changed") == 0);
    CHECK(inbox_scan(ib, 1002, &files, &n, &unsettled, &err) == 0);
    CHECK(n == 1); /* changed: looked at again */
    inbox_files_free(files, n);
    inbox_close(ib);
}

/* Opens an inbox whose quarantine_dir and processed_dir are on /dev/shm (another
 * file system), moves bounded by max_size and stopped by *stop. NULL: none. */
static inbox *open_across(const char *dir, char *other, uint64_t max_size, const volatile sig_atomic_t *stop)
{
    char processed[160], quarantine[160];
    struct stat a, b;
    inbox_config ic = {0};
    inbox *ib = NULL;
    owl_err err = {0};

    if (mkdtemp(other) == NULL || stat(other, &a) < 0 || stat(dir, &b) < 0 || a.st_dev == b.st_dev)
        return NULL;
    snprintf(processed, sizeof(processed), "%s/processed", other);
    snprintf(quarantine, sizeof(quarantine), "%s/quarantine", other);
    ic.dir = dir;
    ic.processed_dir = processed;
    ic.quarantine_dir = quarantine;
    ic.max_size = max_size;
    ic.stop = stop;
    CHECK(inbox_open(&ic, &ib, &err) == 0);
    return ib;
}

static void remove_tree(const char *path);

/* A move to another file system keeps holes, refuses to copy more than the
 * bound (a file quarantined for its size is removed, its reason kept), and
 * gives up at once when asked to stop, leaving the file claimed. */
static void test_across_bounded(void)
{
    const char *dir = fresh_inbox();
    char other[] = "/dev/shm/owlsync-inbox-XXXXXX";
    static volatile sig_atomic_t stop;
    inbox *ib = open_across(dir, other, 64 << 20, &stop);
    inbox_claim claim;
    owl_err err = {0};
    struct stat st;
    int fd;

    if (ib == NULL) {
        printf("# skipped: no second filesystem at /dev/shm\n");
        return;
    }
    /* 32 MiB, all hole but one byte at the end: copied sparse */
    fd = open(at(dir, "sparse.owlb"), O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0 && pwrite(fd, "z", 1, (32 << 20) - 1) == 1);
    close(fd);
    CHECK(inbox_claim_file(ib, "sparse.owlb", false, &claim, &err) == 1);
    CHECK(inbox_done(ib, &claim, &err) == 0);
    CHECK(stat(at(other, "processed/sparse.owlb"), &st) == 0);
    CHECK(st.st_size == 32 << 20);
    CHECK(st.st_blocks * 512 < 1 << 20);

    /* 2 GiB sparse, over the bound: not copied, removed, the reason says so */
    fd = open(at(dir, "big.owlb"), O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)2 << 30) == 0);
    close(fd);
    CHECK(inbox_claim_file(ib, "big.owlb", false, &claim, &err) == 1);
    CHECK(inbox_quarantine(ib, &claim, 3, "bundle is larger than max_bundle_size", &err) == 0);
    CHECK(!exists(at(other, "quarantine/big.owlb")));
    CHECK(!exists(at(dir, ".work/big.owlb")));
    CHECK(strstr(read_file(at(other, "quarantine/big.owlb.reason")), "removed, not kept") != NULL);

    /* asked to stop: nothing copied, nothing left behind, the file still claimed in .work/ */
    CHECK(write_file(at(dir, "c.owlb"), "some bytes") == 0);
    CHECK(inbox_claim_file(ib, "c.owlb", false, &claim, &err) == 1);
    stop = 1;
    CHECK(inbox_quarantine(ib, &claim, 3, "bad", &err) == -1);
    stop = 0;
    CHECK(strstr(err.msg, "nterrupted") != NULL);
    CHECK(!exists(at(other, "quarantine/c.owlb")));
    CHECK(!exists(at(other, "quarantine/.c.owlb.tmp")));
    CHECK(exists(at(dir, ".work/c.owlb")));
    inbox_close(ib);
    remove_tree(other);
}

/* processed_dir on another filesystem: the bundle is copied, then removed. */
static void test_done_across_filesystems(void)
{
    const char *dir = fresh_inbox();
    char other[] = "/dev/shm/owlsync-inbox-XXXXXX";
    char processed[128];
    struct stat a, b;
    inbox_config ic = {0};
    inbox *ib = NULL;
    inbox_claim claim;
    owl_err err = {0};

    if (mkdtemp(other) == NULL || stat(other, &a) < 0 || stat(dir, &b) < 0 || a.st_dev == b.st_dev) {
        printf("# skipped: no second filesystem at /dev/shm\n");
        if (other[strlen(other) - 1] != 'X')
            rmdir(other);
        return;
    }
    snprintf(processed, sizeof(processed), "%s/processed", other);
    ic.dir = dir;
    ic.processed_dir = processed;
    CHECK(inbox_open(&ic, &ib, &err) == 0);
    CHECK(write_file(at(dir, "a.owlb"), "carried over") == 0);
    CHECK(write_file(at(processed, "a.owlb"), "older") == 0);
    CHECK(inbox_claim_file(ib, "a.owlb", false, &claim, &err) == 1);
    CHECK(inbox_done(ib, &claim, &err) == 0);
    CHECK_STR(read_file(at(processed, "a.owlb.1")), "carried over");
    CHECK_STR(read_file(at(processed, "a.owlb")), "older");
    CHECK(!exists(at(processed, ".a.owlb.tmp")));
    CHECK(!exists(at(dir, ".work/a.owlb")));
    inbox_close(ib);
    unlink(at(processed, "a.owlb"));
    unlink(at(processed, "a.owlb.1"));
    rmdir(processed);
    rmdir(other);
}

static void test_is_local(void)
{
    CHECK(inbox_is_local(tmpdir));
    CHECK(!inbox_is_local(at(tmpdir, "missing")));
    CHECK(!inbox_is_local(NULL));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The entries a scan passes over are listed with why; the inbox's own
 * directories are not; a file changed less than settle_time ago is settling. */
static void test_list_ignored(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, true);
    inbox_config ic = {0};
    inbox_listing l;
    owl_err err = {0};
    struct timespec times[2] = {{0, UTIME_OMIT}, {0, 0}};
    char processed[640];

    inbox_close(ib);
    CHECK(write_file(at(dir, "old.owlb"), "1") == 0);
    times[1].tv_sec = time(NULL) - 3600;
    CHECK(utimensat(AT_FDCWD, at(dir, "old.owlb"), times, 0) == 0);
    CHECK(write_file(at(dir, "new.owlb"), "2") == 0);
    CHECK(write_file(at(dir, "notes.txt"), "x") == 0);
    CHECK(write_file(at(dir, ".tmp.owlb"), "x") == 0);
    CHECK(symlink("old.owlb", at(dir, "link.owlb")) == 0);
    CHECK(mkdir(at(dir, "sub.owlb"), 0700) == 0);
    CHECK(mkfifo(at(dir, "pipe.owlb"), 0600) == 0);
    ic.dir = dir;
    snprintf(processed, sizeof(processed), "%s", at(dir, "processed"));
    ic.processed_dir = processed;
    ic.settle_time = 60;
    CHECK(inbox_list(&ic, 100, &l, &err) == 0);
    CHECK(l.waiting_count == 2 && l.settling_count == 1);
    if (l.nwaiting == 2) {
        CHECK_STR(l.waiting[0].name, "new.owlb");
        CHECK(l.waiting[0].settling && l.waiting[0].size == 1);
        CHECK_STR(l.waiting[1].name, "old.owlb");
        CHECK(!l.waiting[1].settling);
    }
    CHECK(l.ignored_count == 5 && l.nignored == 5);
    if (l.nignored == 5) {
        CHECK_STR(l.ignored[0].name, ".tmp.owlb");
        CHECK_CONTAINS(l.ignored[0].reason, "hidden");
        CHECK_STR(l.ignored[1].name, "link.owlb");
        CHECK_STR(l.ignored[1].reason, "a symbolic link (never followed)");
        CHECK_STR(l.ignored[2].name, "notes.txt");
        CHECK_STR(l.ignored[2].reason, "not named *.owlb");
        CHECK_STR(l.ignored[3].name, "pipe.owlb");
        CHECK_STR(l.ignored[3].reason, "not a regular file");
        CHECK_STR(l.ignored[4].name, "sub.owlb");
        CHECK_STR(l.ignored[4].reason, "a directory");
    }
    inbox_listing_free(&l);
    /* bounded like the others */
    CHECK(inbox_list(&ic, 2, &l, &err) == 0);
    CHECK(l.ignored_count == 5 && l.nignored == 2);
    inbox_listing_free(&l);
}

/* The daemon's retry state: written whole, read back; a line that does not
 * parse (a hand edit, a name no bundle has) is skipped, not fatal. */
static void test_retries_file(void)
{
    const char *dir = fresh_inbox();
    inbox_retry w[2] = {{"a.owlb", 3, 1800000000, 1799999990, "lock timeout\nHINT: x\t", NULL, 0},
                        {"b.owlb", 1, 1800000005, 1800000000, NULL, NULL, 0}};
    inbox_retry *r = NULL;
    size_t n = 9;
    owl_err err = {0};
    FILE *f;

    CHECK(inbox_retries_read(dir, &r, &n, &err) == 0); /* none yet */
    CHECK(n == 0);
    inbox_retries_free(r, n);
    CHECK(inbox_retries_write(dir, w, 2, &err) == 0);
    CHECK(inbox_retries_read(dir, &r, &n, &err) == 0);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_STR(r[0].name, "a.owlb");
        CHECK(r[0].attempts == 3 && r[0].next_try == 1800000000 && r[0].last_try == 1799999990);
        CHECK_STR(r[0].error, "lock timeout\\nHINT: x\\t");
        CHECK_STR(r[1].name, "b.owlb");
        CHECK_STR(r[1].error, "");
    }
    inbox_retries_free(r, n);
    f = fopen(at(dir, INBOX_RETRY_FILE), "a");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("c.owlb\tx\t1\t1\terr\n.hidden\t1\t1\t1\terr\nd.owlb\t1\t1\ne.owlb\t1\t1\t1\ta\033[2Jb\r\n", f);
        fclose(f);
    }
    CHECK(inbox_retries_read(dir, &r, &n, &err) == 0);
    CHECK(n == 3);
    if (n == 3)
        CHECK_STR(r[2].error, "a?[2Jb?");
    inbox_retries_free(r, n);
    CHECK(write_file(at(dir, INBOX_RETRY_FILE), "something else\n") == 0);
    CHECK(inbox_retries_read(dir, &r, &n, &err) == -1);
    CHECK_CONTAINS(err.msg, "is not a retry state file");
}

/* The agent id: the host name and a hash of the absolute state_dir, the
 * same for the same state_dir however it is spelled. */
static void test_agent_id(void)
{
    const char *dir = fresh_inbox();
    char a[INBOX_AGENT_ID_MAX], b[INBOX_AGENT_ID_MAX], c[INBOX_AGENT_ID_MAX], host[256] = "";
    size_t len;

    inbox_agent_id(dir, a, sizeof(a));
    inbox_agent_id(at(dir, "."), b, sizeof(b));
    inbox_agent_id(at(dir, "processed"), c, sizeof(c));
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    len = strlen(a);
    CHECK(len > 9 && a[len - 9] == '-' && strspn(a + len - 8, "0123456789abcdef") == 8);
    gethostname(host, sizeof(host) - 1);
    if (strlen(host) <= INBOX_AGENT_HOST_MAX &&
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(host))
        CHECK(strncmp(a, host, strlen(host)) == 0 && len == strlen(host) + 9);
}

/* A slot function over a fixed list of names: their index. */
static long slot_of(const char *name, void *ctx)
{
    const char *const *names = ctx;

    for (long i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], name) == 0)
            return i;
    }
    return -1;
}

/* Each agent publishes its retries in .work/.retries.AGENT (0644), removed
 * when it has none; every agent's file is read, the newest try of each file
 * asked about kept, with the agent that made it. */
static void test_retries_shared(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, false);
    const char *names[] = {"a.owlb", "b.owlb", "c.owlb", NULL};
    inbox_retry ra[2] = {{"a.owlb", 2, 1800000100, 1800000050, "lock timeout", NULL, 0},
                         {"gone.owlb", 1, 1800000100, 1800000050, "x", NULL, 0}};
    inbox_retry rb[2] = {{"a.owlb", 5, 1800000200, 1800000150, "server \033[2Jdown", NULL, 0},
                         {"b.owlb", 1, 1800000000, 1799999990, "disk full", NULL, 0}};
    inbox_retry found[3];
    inbox_retries_seen seen;
    owl_err err = {0};
    struct stat st;

    if (ib == NULL)
        return;
    memset(found, 0, sizeof(found));
    CHECK(inbox_retries_shared(dir, slot_of, (void *)names, found, 3, &seen, &err) == 0); /* none yet */
    CHECK(seen.files == 0 && seen.skipped == 0 && found[0].name == NULL);
    CHECK(inbox_retries_publish(ib, "hosta-0000000a", ra, 2, &err) == 0);
    CHECK(inbox_retries_publish(ib, "hostb-0000000b", rb, 2, &err) == 0);
    CHECK(lstat(at(dir, ".work/.retries.hosta-0000000a"), &st) == 0 && (st.st_mode & 07777) == 0644);
    CHECK_STR(read_file(at(dir, ".work/.retries.hosta-0000000a")),
              "owlsync-retries 1\na.owlb\t2\t1800000100\t1800000050\tlock timeout\n"
              "gone.owlb\t1\t1800000100\t1800000050\tx\n");
    CHECK(inbox_retries_publish(ib, "bad/agent", ra, 2, &err) == -1);
    CHECK(inbox_retries_publish(ib, "", ra, 2, &err) == -1);
    /* no scan takes them for bundles, no listing shows them */
    {
        inbox_file *o = NULL;
        size_t no = 9;
        CHECK(inbox_orphans(ib, &o, &no, &err) == 0 && no == 0);
        inbox_files_free(o, no);
    }
    CHECK(inbox_retries_shared(dir, slot_of, (void *)names, found, 3, &seen, &err) == 0);
    CHECK(seen.files == 2 && seen.skipped == 0);
    CHECK_STR(found[0].name, "a.owlb");
    CHECK(found[0].attempts == 5 && found[0].last_try == 1800000150 && found[0].next_try == 1800000200);
    CHECK_STR(found[0].agent, "hostb-0000000b");
    CHECK_STR(found[0].error, "server \\x1b[2Jdown"); /* cleaned once, when written */
    CHECK(found[0].written > 0);
    CHECK_STR(found[1].agent, "hostb-0000000b");
    CHECK_STR(found[1].error, "disk full");
    CHECK(found[2].name == NULL);
    /* what the caller put there first stays unless something is newer */
    for (size_t i = 0; i < 3; i++) {
        free(found[i].name);
        free(found[i].error);
        free(found[i].agent);
    }
    memset(found, 0, sizeof(found));
    found[1].name = strdup("b.owlb");
    found[1].error = strdup("mine");
    found[1].last_try = 1799999990;
    CHECK(inbox_retries_shared(dir, slot_of, (void *)names, found, 3, &seen, &err) == 0);
    CHECK_STR(found[1].error, "mine");
    CHECK(found[1].agent == NULL);
    for (size_t i = 0; i < 3; i++) {
        free(found[i].name);
        free(found[i].error);
        free(found[i].agent);
    }
    /* an agent with nothing to retry removes its file */
    CHECK(inbox_retries_publish(ib, "hostb-0000000b", NULL, 0, &err) == 0);
    CHECK(!exists(at(dir, ".work/.retries.hostb-0000000b")));
    CHECK(inbox_retries_publish(ib, "hostb-0000000b", NULL, 0, &err) == 0);
    CHECK(exists(at(dir, ".work/.retries.hosta-0000000a")));
    inbox_close(ib);
}

/* Anyone who can write to the inbox can write .retries.* files: too large,
 * binary, a FIFO, a link, bad lines, too many of them; each is skipped or
 * bounded, none hangs or fails the read, and what parses is cleaned. */
static void test_retries_shared_hostile(void)
{
    const char *dir = fresh_inbox();
    inbox *ib = open_inbox(dir, 0, false);
    const char *names[] = {"a.owlb", NULL};
    inbox_retry found[1];
    inbox_retries_seen seen;
    owl_err err = {0};
    char name[64];
    FILE *f;

    if (ib == NULL)
        return;
    memset(found, 0, sizeof(found));
    /* larger than any list an agent writes */
    f = fopen(at(dir, ".work/.retries.huge"), "w");
    if (f != NULL) {
        fputs("owlsync-retries 1\n", f);
        for (int i = 0; i < 100000; i++)
            fputs("a.owlb\t9\t1900000000\t1900000000\thuge\n", f);
        fclose(f);
    }
    CHECK(mkfifo(at(dir, ".work/.retries.fifo"), 0644) == 0);
    CHECK(symlink(at(dir, ".work/.retries.good"), at(dir, ".work/.retries.link")) == 0);
    CHECK(write_file(at(dir, ".work/.retries.binary"), "\x7f" "ELF\x01\x02\x03\xff\xfe") == 0);
    CHECK(write_file(at(dir, ".work/.retries.nul"),
                     "owlsync-retries 1\na.owlb\t7\t1\t1880000000\tbefore\0after\n") == 0);
    CHECK(write_file(at(dir, ".work/.retries.bad name"), "owlsync-retries 1\na.owlb\t8\t1\t1890000000\tx\n") == 0);
    CHECK(write_file(at(dir, ".work/.retries.good"),
                     "owlsync-retries 1\n"
                     "a.owlb\t-1\t1\t1870000000\tnegative\n"
                     "a.owlb\t1\t1\n"
                     "../a.owlb\t1\t1\t1870000000\tpath\n"
                     "a.owlb\t99999999999\t1\t1870000000\ttoo many\n"
                     "a.owlb\t3\t1860000100\t1860000000\t\xc3\x28 \xe2\x80\xae \033]0;x\a\n"
                     "a.owlb\t4\t1\t1870000000\tno end of line") == 0);
    CHECK(inbox_retries_shared(dir, slot_of, (void *)names, found, 1, &seen, &err) == 0);
    CHECK(seen.files == 2); /* good and nul */
    CHECK(seen.skipped == 4);
    CHECK_CONTAINS(seen.first_error, dir);
    CHECK_STR(found[0].agent, "good");
    CHECK(found[0].attempts == 3);
    CHECK_STR(found[0].error, "\\xc3( \xe2\x80\xae \\x1b]0;x\\x07");
    free(found[0].name);
    free(found[0].error);
    free(found[0].agent);
    memset(found, 0, sizeof(found));
    /* more agents' files than are read: counted, not read */
    for (int i = 0; i < INBOX_AGENTS_MAX + 10; i++) {
        snprintf(name, sizeof(name), ".work/.retries.many%d", i);
        CHECK(write_file(at(dir, name), "owlsync-retries 1\n") == 0);
    }
    CHECK(inbox_retries_shared(dir, slot_of, (void *)names, found, 1, &seen, &err) == 0);
    CHECK(seen.files == INBOX_AGENTS_MAX);
    CHECK(seen.skipped == 4 + 2 + 10);
    free(found[0].name);
    free(found[0].error);
    free(found[0].agent);
    inbox_close(ib);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/owlsync-inbox-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_open_creates_dirs);
    RUN(test_open_errors);
    RUN(test_scan_ignores);
    RUN(test_scan_order);
    RUN(test_settle);
    RUN(test_claim);
    RUN(test_two_agents);
    RUN(test_orphans);
    RUN(test_done);
    RUN(test_done_replaced);
    RUN(test_quarantine);
    RUN(test_counts);
    RUN(test_hostile_names);
    RUN(test_scan_bound);
    RUN(test_list_sanitised);
    RUN(test_scan_many_entries);
    RUN(test_unclaimable);
    RUN(test_across_bounded);
    RUN(test_done_across_filesystems);
    RUN(test_is_local);
    RUN(test_list_ignored);
    RUN(test_retries_file);
    RUN(test_agent_id);
    RUN(test_retries_shared);
    RUN(test_retries_shared_hostile);
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return UNIT_DONE();
}
