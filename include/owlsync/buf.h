/* owlsync bounded buffer: a growable byte buffer whose largest size is fixed
 * when it is made, so that nothing read from outside can grow it without end. */
#ifndef OWLSYNC_BUF_H
#define OWLSYNC_BUF_H

#include <stddef.h>

typedef struct owl_buf {
    char *p;      /* the bytes, NUL-terminated past len once anything was added */
    size_t len;
    size_t cap;
    size_t max;   /* len never passes this */
} owl_buf;

/* An empty buffer that holds at most max bytes; nothing is allocated yet. */
#define OWL_BUF_INIT(max) {NULL, 0, 0, (max)}

/* Appends n bytes of p. Returns 0, or -1 (b unchanged) when len would pass max
 * or memory runs out: buf_full tells which. */
int buf_add(owl_buf *b, const void *p, size_t n);

/* Makes room for n more bytes after len (and the NUL), for a caller that writes
 * into p + len itself and then moves len. -1 past max or out of memory. */
int buf_reserve(owl_buf *b, size_t n);

/* Appends a NUL-terminated string. */
int buf_adds(owl_buf *b, const char *s);

/* Whether adding n more bytes would pass max. */
int buf_full(const owl_buf *b, size_t n);

/* Empties b, keeping its memory. */
void buf_clear(owl_buf *b);

/* Frees b's memory and empties it; max stays. */
void buf_free(owl_buf *b);

#endif
