/* Unit tests for agent/fileio.c: files published durably (tmp, fsync, rename,
 * fsync of the directory) replace, refuse or take a free name as asked, leave
 * nothing behind on failure, and name the step that failed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "owlsync/fileio.h"
#include "unit.h"

static char dir[64];

static const char *at(const char *name)
{
    static char path[4][256];
    static int k;

    k = (k + 1) % 4;
    snprintf(path[k], sizeof(path[k]), "%s/%s", dir, name);
    return path[k];
}

static char *slurp(const char *name)
{
    static char buf[256];
    int fd = open(at(name), O_RDONLY);
    ssize_t n;

    if (fd < 0)
        return NULL;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

static bool exists(const char *name)
{
    struct stat st;

    return lstat(at(name), &st) == 0;
}

static int mode_of(const char *name)
{
    struct stat st;

    return stat(at(name), &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static void test_write_modes(void)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    char final[64];
    owl_err err = {0};

    CHECK(dfd >= 0);
    CHECK(fileio_write_atomic(dfd, dir, "a", "one", 3, 0640, FILEIO_REPLACE, final, sizeof(final), &err) == 0);
    CHECK_STR(final, "a");
    CHECK_STR(slurp("a"), "one");
    CHECK(mode_of("a") == 0640);
    CHECK(!exists(".a.tmp"));
    CHECK(fileio_write_atomic(dfd, dir, "a", "two", 3, 0600, FILEIO_REPLACE, NULL, 0, &err) == 0);
    CHECK_STR(slurp("a"), "two");
    CHECK(mode_of("a") == 0600);
    /* NOREPLACE: refused, the file as it was, no temporary file left */
    CHECK(fileio_write_atomic(dfd, dir, "a", "three", 5, 0600, FILEIO_NOREPLACE, NULL, 0, &err) == -1);
    CHECK(err.code == OWL_EUSAGE);
    CHECK_CONTAINS(err.msg, "/a already exists");
    CHECK_STR(slurp("a"), "two");
    CHECK(!exists(".a.tmp"));
    /* UNIQUE: a, then a.1, a.2 */
    CHECK(fileio_write_atomic(dfd, dir, "a", "u1", 2, 0644, FILEIO_UNIQUE, final, sizeof(final), &err) == 0);
    CHECK_STR(final, "a.1");
    CHECK(fileio_write_atomic(dfd, dir, "a", "u2", 2, 0644, FILEIO_UNIQUE, final, sizeof(final), &err) == 0);
    CHECK_STR(final, "a.2");
    CHECK_STR(slurp("a.1"), "u1");
    CHECK_STR(slurp("a.2"), "u2");
    CHECK_STR(slurp("a"), "two");
    /* a stale temporary file of a crash is replaced, not a reason to fail */
    CHECK(fileio_write_atomic(dfd, dir, ".b.tmp", "stale", 5, 0644, FILEIO_REPLACE, NULL, 0, &err) == 0);
    CHECK(fileio_write_atomic(dfd, dir, "b", "fresh", 5, 0644, FILEIO_REPLACE, NULL, 0, &err) == 0);
    CHECK_STR(slurp("b"), "fresh");
    CHECK(!exists(".b.tmp"));
    /* a symbolic link at the temporary name is not followed */
    CHECK(symlink("/etc/passwd", at(".c.tmp")) == 0);
    CHECK(fileio_write_atomic(dfd, dir, "c", "safe", 4, 0644, FILEIO_REPLACE, NULL, 0, &err) == 0);
    CHECK_STR(slurp("c"), "safe");
    CHECK(!exists(".c.tmp"));
    close(dfd);
}

static void test_copy(void)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY), src = open(at("a"), O_RDONLY);
    owl_err err = {0};

    CHECK(dfd >= 0 && src >= 0);
    CHECK(lseek(src, 2, SEEK_SET) == 2); /* copied from its start whatever the offset */
    CHECK(fileio_copy_atomic(dfd, dir, "copy", src, 0644, FILEIO_REPLACE, NULL, 0, &err) == 0);
    CHECK_STR(slurp("copy"), "two");
    close(src);
    close(dfd);
}

static void test_failures_name_the_step(void)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    owl_err err = {0};

    /* a directory in the way of the temporary file: even root cannot create it */
    CHECK(mkdir(at(".x.tmp"), 0700) == 0);
    CHECK(fileio_write_atomic(dfd, dir, "x", "x", 1, 0644, FILEIO_REPLACE, NULL, 0, &err) == -1);
    CHECK(err.code == OWL_ERUNTIME);
    CHECK_CONTAINS(err.msg, "/x (create): File exists");
    CHECK(!exists("x"));
    rmdir(at(".x.tmp"));
    /* a directory at the final name: the rename fails, the temporary file goes */
    CHECK(mkdir(at("y"), 0700) == 0);
    CHECK(fileio_write_atomic(dfd, dir, "y", "y", 1, 0644, FILEIO_REPLACE, NULL, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "/y (rename): Is a directory");
    CHECK(!exists(".y.tmp"));
    rmdir(at("y"));
    CHECK(fileio_write_path("/nonexistent-owlsync-dir/x", "x", 1, 0644, FILEIO_REPLACE, &err) == -1);
    CHECK_CONTAINS(err.msg, "cannot write /nonexistent-owlsync-dir/x (open directory)");
    close(dfd);
}

static void test_write_path(void)
{
    owl_err err = {0};

    CHECK(fileio_write_path(at("p"), "path", 4, 0644, FILEIO_REPLACE, &err) == 0);
    CHECK_STR(slurp("p"), "path");
    CHECK(fileio_write_path(at("sub/"), "x", 1, 0644, FILEIO_REPLACE, &err) == -1);
    CHECK_CONTAINS(err.msg, "names a directory");
}

static void test_read_small(void)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    char buf[8];
    size_t len = 9;
    owl_err err = {0};

    CHECK(fileio_read_small(dfd, "missing", buf, sizeof(buf) - 1, &len, &err) == 1);
    CHECK(len == 0);
    CHECK(fileio_read_small(dfd, "a", buf, sizeof(buf) - 1, &len, &err) == 0);
    CHECK_STR(buf, "two");
    CHECK(len == 3);
    CHECK(fileio_write_path(at("big"), "0123456789", 10, 0644, FILEIO_REPLACE, &err) == 0);
    CHECK(fileio_read_small(dfd, "big", buf, sizeof(buf) - 1, &len, &err) == -1);
    CHECK_CONTAINS(err.msg, "not a regular file of at most 7 bytes");
    CHECK(symlink("a", at("link")) == 0);
    CHECK(fileio_read_small(dfd, "link", buf, sizeof(buf) - 1, &len, &err) == -1);
    CHECK(mkfifo(at("fifo"), 0600) == 0);
    CHECK(fileio_read_small(dfd, "fifo", buf, sizeof(buf) - 1, &len, &err) == -1);
    close(dfd);
}

/* The same, into a buffer of the file's own size. */
static void test_read_alloc(void)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    char *buf = (char *)&buf;
    size_t len = 9;
    owl_err err = {0};

    CHECK(fileio_read_alloc(dfd, "missing", 100, &buf, &len, &err) == 1);
    CHECK(buf == NULL && len == 0);
    CHECK(fileio_write_path(at("ten"), "0123456789", 10, 0644, FILEIO_REPLACE, &err) == 0);
    CHECK(fileio_read_alloc(dfd, "ten", 10, &buf, &len, &err) == 0);
    CHECK(buf != NULL && len == 10 && strcmp(buf, "0123456789") == 0);
    free(buf);
    CHECK(fileio_read_alloc(dfd, "ten", 9, &buf, &len, &err) == -1);
    CHECK(buf == NULL);
    CHECK_CONTAINS(err.msg, "not a regular file of at most 9 bytes");
    CHECK(symlink("ten", at("link10")) == 0);
    CHECK(fileio_read_alloc(dfd, "link10", 100, &buf, &len, &err) == -1 && buf == NULL);
    close(dfd);
}

static void test_rename_noreplace(void)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    struct stat st;
    char final[64];

    CHECK(fileio_rename_noreplace(dfd, "copy", dfd, "b") == -1 && errno == EEXIST);
    CHECK(fileio_rename_noreplace(dfd, "copy", dfd, "moved") == 0);
    CHECK(stat(at("moved"), &st) == 0);
    CHECK(fileio_move_unique(dfd, "moved", dfd, "b", &st, final, sizeof(final)) == 0);
    CHECK_STR(final, "b.1");
    CHECK_STR(slurp("b"), "fresh");
    close(dfd);
}

/* link(2) in place of RENAME_NOREPLACE: never replaces; a link that happened
 * though reported failed (a lost NFS reply) counts as done. */
static void test_link_noreplace(void)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    struct stat st, other;

    CHECK(dfd >= 0);
    CHECK(fileio_write_atomic(dfd, dir, ".l.tmp", "mine", 4, 0644, FILEIO_REPLACE, NULL, 0, NULL) == 0);
    CHECK(fileio_write_atomic(dfd, dir, "taken", "theirs", 6, 0644, FILEIO_REPLACE, NULL, 0, NULL) == 0);
    CHECK(stat(at(".l.tmp"), &st) == 0 && stat(at("taken"), &other) == 0);
    /* a taken name: EEXIST, both files as they were */
    CHECK(fileio_link_noreplace(dfd, ".l.tmp", "taken", &st) == -1 && errno == EEXIST);
    CHECK_STR(slurp("taken"), "theirs");
    CHECK_STR(slurp(".l.tmp"), "mine");
    /* a free name: linked, the tmp name gone */
    CHECK(fileio_link_noreplace(dfd, ".l.tmp", "l", &st) == 0);
    CHECK_STR(slurp("l"), "mine");
    CHECK(!exists(".l.tmp"));
    /* the link made, its reply lost: the retried link finds the name taken by the very file */
    CHECK(link(at("l"), at(".l.tmp")) == 0);
    CHECK(fileio_link_noreplace(dfd, ".l.tmp", "l", &st) == 0);
    CHECK(!exists(".l.tmp"));
    CHECK(stat(at("l"), &other) == 0 && other.st_ino == st.st_ino && other.st_nlink == 1);
    close(dfd);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/owlsync-test-fileio.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_write_modes);
    RUN(test_copy);
    RUN(test_failures_name_the_step);
    RUN(test_write_path);
    RUN(test_read_small);
    RUN(test_read_alloc);
    RUN(test_rename_noreplace);
    RUN(test_link_noreplace);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", dir);
    }
    return UNIT_DONE();
}
