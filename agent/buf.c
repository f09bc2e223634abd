/* owlsync bounded buffer: one growable buffer with a hard bound, for SQL text,
 * rows being assembled and values being rewritten. */
#include <stdlib.h>
#include <string.h>

#include "owlsync/buf.h"

int buf_full(const owl_buf *b, size_t n)
{
    return n > b->max || b->len > b->max - n;
}

int buf_reserve(owl_buf *b, size_t n)
{
    if (buf_full(b, n))
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap < 256 ? 256 : b->cap;
        char *grown;
        while (cap < b->len + n + 1)
            cap = cap > ((size_t)-1) / 2 ? b->len + n + 1 : cap * 2;
        grown = realloc(b->p, cap);
        if (grown == NULL)
            return -1;
        b->p = grown;
        b->cap = cap;
    }
    return 0;
}

int buf_add(owl_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int buf_adds(owl_buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

void buf_clear(owl_buf *b)
{
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

void buf_free(owl_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
