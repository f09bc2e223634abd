/* owlsync COPY text format: split rows at tabs, unescape fields and escape values
 * exactly as PostgreSQL's CopyReadAttributesText and CopyAttributeOutText do. */
#include <stdint.h>
#include <string.h>

#include "owlsync/copytext.h"

/* Word-at-a-time tests (8 bytes per step), exact for "is there any such byte". */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
#define HAS_ZERO(x) (((x) - ONES) & ~(x) & HIGHS)
#define HAS_LESS(x, n) (((x) - ONES * (n)) & ~(x) & HIGHS) /* n <= 128 */
#define HAS_BYTE(x, b) HAS_ZERO((x) ^ (ONES * (b)))

/* What COPY TO writes after a backslash for each byte, or 0 for "as it is". */
static const char escape_table[256] = {
    ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
    ['\t'] = 't', ['\v'] = 'v', ['\\'] = '\\',
};

static uint64_t load8(const unsigned char *p)
{
    uint64_t w;

    memcpy(&w, p, sizeof(w));
    return w;
}

int copytext_split(const char *row, size_t len, copytext_field *fields, size_t max,
                   size_t *n, owl_err *err)
{
    const char *end = row + len;
    const char *start = row;
    const char *scan = row;
    size_t count = 0;

    *n = 0;
    /* PostgreSQL reads an empty line of a zero-column table as no fields at all. */
    if (max == 0) {
        if (len != 0)
            return err_set(err, OWL_EVERIFY, "copy row has more than 0 fields");
        return 0;
    }
    for (;;) {
        const char *tab = scan < end ? memchr(scan, '\t', (size_t)(end - scan)) : NULL;

        if (tab != NULL) {
            /* A tab after an odd run of backslashes is escaped data, not a
             * delimiter: PostgreSQL takes the byte after a backslash literally. */
            const char *b = tab;

            while (b > start && b[-1] == '\\')
                b--;
            if (((size_t)(tab - b) & 1u) != 0) {
                scan = tab + 1;
                continue;
            }
        }
        if (count == max)
            return err_set(err, OWL_EVERIFY, "copy row has more than %zu fields", max);
        fields[count].p = start;
        fields[count].len = (size_t)((tab != NULL ? tab : end) - start);
        count++;
        if (tab == NULL)
            break;
        start = tab + 1;
        scan = start;
    }
    *n = count;
    return 0;
}

bool copytext_is_null(const char *raw, size_t len)
{
    return len == 2 && raw[0] == '\\' && raw[1] == 'N';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of the leading run of s[0..n) holding neither a backslash nor a NUL. */
static size_t plain_run(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (n - i >= 8) {
        uint64_t w = load8(s + i);

        if (HAS_ZERO(w) || HAS_BYTE(w, '\\'))
            break;
        i += 8;
    }
    while (i < n && s[i] != '\\' && s[i] != '\0')
        i++;
    return i;
}

int copytext_unescape(const char *raw, size_t len, char *out, size_t *outlen, owl_err *err)
{
    const unsigned char *s = (const unsigned char *)raw;
    size_t i = 0;
    size_t o = 0;

    *outlen = 0;
    while (i < len) {
        size_t run = plain_run(s + i, len - i);
        size_t at;
        unsigned int val;
        unsigned char c;

        if (run > 0) {
            memcpy(out + o, s + i, run);
            o += run;
            i += run;
        }
        if (i == len)
            break;
        at = i;
        if (s[i] == '\0')
            return err_set(err, OWL_EVERIFY,
                           "copy value has a NUL byte at byte %zu, which text cannot hold",
                           at);
        /* s[i] is a backslash */
        if (++i == len)
            return err_set(err, OWL_EVERIFY, "copy value ends in a lone backslash");
        c = s[i++];
        switch (c) {
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
            /* up to three octal digits; like PostgreSQL, keep the low 8 bits */
            val = (unsigned int)(c - '0');
            if (i < len && s[i] >= '0' && s[i] <= '7') {
                val = (val << 3) + (unsigned int)(s[i++] - '0');
                if (i < len && s[i] >= '0' && s[i] <= '7')
                    val = (val << 3) + (unsigned int)(s[i++] - '0');
            }
            c = (unsigned char)(val & 0xffu);
            break;
        case 'x':
            /* up to two hex digits; with none, "\x" is a literal 'x' */
            if (i < len && hex_value(s[i]) >= 0) {
                val = (unsigned int)hex_value(s[i++]);
                if (i < len && hex_value(s[i]) >= 0)
                    val = (val << 4) + (unsigned int)hex_value(s[i++]);
                c = (unsigned char)val;
            }
            break;
        case 'b':
            c = '\b';
            break;
        case 'f':
            c = '\f';
            break;
        case 'n':
            c = '\n';
            break;
        case 'r':
            c = '\r';
            break;
        case 't':
            c = '\t';
            break;
        case 'v':
            c = '\v';
            break;
        default:
            break; /* any other byte after a backslash stands for itself */
        }
        if (c == '\0')
            return err_set(err, OWL_EVERIFY,
                           "copy value escape at byte %zu makes a NUL byte, which text "
                           "cannot hold",
                           at);
        out[o++] = (char)c;
    }
    *outlen = o;
    return 0;
}

size_t copytext_escape(const char *val, size_t len, char *out)
{
    const unsigned char *s = (const unsigned char *)val;
    size_t i = 0;
    size_t done = 0; /* s[done..i) is pending, to be copied as it is */
    size_t o = 0;

    if (len == 0)
        return 0;
    while (i < len) {
        size_t stop;

        /* Skip 8 bytes at a time while none is a control character or a
         * backslash: the common case for names, numbers and JSON. */
        if (len - i >= 8) {
            uint64_t w = load8(s + i);

            if (!HAS_LESS(w, 0x20) && !HAS_BYTE(w, '\\')) {
                i += 8;
                continue;
            }
            stop = i + 8;
        } else {
            stop = len;
        }
        for (; i < stop; i++) {
            char e = escape_table[s[i]];

            if (e == 0)
                continue;
            memcpy(out + o, s + done, i - done);
            o += i - done;
            out[o++] = '\\';
            out[o++] = e;
            done = i + 1;
        }
    }
    memcpy(out + o, s + done, len - done);
    return o + (len - done);
}

void copytext_rows_init(copytext_rows *s, size_t max, const char *what)
{
    s->row = (owl_buf)OWL_BUF_INIT(max + 1); /* and its newline */
    s->rowno = 0;
    s->what = what;
}

/* Whether the newline that ends row[0..len) is data: preceded by an odd run
 * of backslashes. */
static bool newline_escaped(const char *row, size_t len)
{
    size_t k = 0;

    while (k + 1 < len && row[len - 2 - k] == '\\')
        k++;
    return k % 2 == 1;
}

static int too_long(const copytext_rows *s, owl_err *err)
{
    return err_set(err, OWL_EUSAGE, "%s row %llu is longer than %zu bytes", s->what,
                   (unsigned long long)s->rowno + 1, s->row.max - 1);
}

int copytext_rows_feed(copytext_rows *s, const char *buf, size_t len, copytext_row_fn fn, void *ctx,
                       owl_err *err)
{
    const char *p = buf, *end = buf + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);

        if (s->row.len == 0 && nl != NULL && !newline_escaped(p, take)) {
            /* a whole row in this chunk: no copy */
            if (take > s->row.max)
                return too_long(s, err);
            if (fn(ctx, p, take - 1, ++s->rowno, err) < 0)
                return -1;
            p += take;
            continue;
        }
        if (buf_add(&s->row, p, take) < 0)
            return buf_full(&s->row, take) ? too_long(s, err) : err_oom(err);
        p += take;
        if (nl == NULL || newline_escaped(s->row.p, s->row.len))
            continue;
        if (fn(ctx, s->row.p, s->row.len - 1, ++s->rowno, err) < 0)
            return -1;
        buf_clear(&s->row);
    }
    return 0;
}

int copytext_rows_end(copytext_rows *s, copytext_row_fn fn, void *ctx, owl_err *err)
{
    int rc = 0;

    /* The buffer holds max + 1 bytes, a row and its newline: a last row
     * without one must not use the newline's room. */
    if (s->row.len > s->row.max - 1)
        rc = too_long(s, err);
    else if (s->row.len > 0)
        rc = fn(ctx, s->row.p, s->row.len, ++s->rowno, err);
    buf_clear(&s->row);
    return rc;
}

void copytext_rows_free(copytext_rows *s)
{
    buf_free(&s->row);
}
