/* Unit tests for agent/buf.c: the bounded buffer grows to its maximum and no
 * further, and a refused append leaves it as it was. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "owlsync/buf.h"
#include "unit.h"

static void test_grow_and_bound(void)
{
    owl_buf b = OWL_BUF_INIT(1000);
    char chunk[300];

    memset(chunk, 'x', sizeof(chunk));
    CHECK(b.p == NULL && b.len == 0);
    CHECK(buf_adds(&b, "") == 0);
    CHECK(b.p != NULL && b.len == 0 && b.p[0] == '\0');
    for (int i = 0; i < 3; i++)
        CHECK(buf_add(&b, chunk, sizeof(chunk)) == 0);
    CHECK(b.len == 900);
    CHECK(b.p[900] == '\0');
    /* 100 more fit exactly; one more byte does not, and changes nothing */
    CHECK(buf_full(&b, 100) == 0);
    CHECK(buf_full(&b, 101) != 0);
    CHECK(buf_add(&b, chunk, 101) == -1);
    CHECK(b.len == 900 && b.p[900] == '\0');
    CHECK(buf_add(&b, chunk, 100) == 0);
    CHECK(b.len == 1000);
    CHECK(buf_adds(&b, "y") == -1);
    CHECK(buf_full(&b, SIZE_MAX) != 0);
    buf_clear(&b);
    CHECK(b.len == 0 && b.p[0] == '\0' && b.cap > 0);
    CHECK(buf_adds(&b, "abc") == 0);
    CHECK_STR(b.p, "abc");
    buf_free(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0 && b.max == 1000);
    buf_free(&b);
}

static void test_zero_max(void)
{
    owl_buf b = OWL_BUF_INIT(0);

    CHECK(buf_add(&b, "", 0) == 0);
    CHECK(buf_add(&b, "a", 1) == -1);
    buf_free(&b);
}

int main(void)
{
    RUN(test_grow_and_bound);
    RUN(test_zero_max);
    return UNIT_DONE();
}
