/* owlsync text rules: name shapes, the one cleaner of untrusted text and the one
 * UTC formatter, written once for every module that shows or names things. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "owlsync/text.h"

static bool is_alpha(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Whether s is 1 to TEXT_NAME_MAX letters, digits and '_': as an identifier,
 * not starting with a digit; as a name, '-' allowed too. */
static bool shaped(const char *s, bool ident)
{
    size_t n;

    if (s == NULL)
        return false;
    n = strnlen(s, TEXT_NAME_MAX + 1);
    if (n < 1 || n > TEXT_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool ok = is_alpha(s[i]) || s[i] == '_' || (is_digit(s[i]) && (i > 0 || !ident)) || (s[i] == '-' && !ident);
        if (!ok)
            return false;
    }
    return true;
}

bool text_is_ident(const char *s)
{
    return shaped(s, true);
}

bool text_is_name(const char *s)
{
    return shaped(s, false);
}

/* The length of the valid UTF-8 sequence at s (of at most n bytes) that is
 * not a C1 control character, or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0xc2 || s[0] > 0xf4)
        return 0;
    len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
    if (len > n)
        return 0;
    cp = s[0] & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    /* overlong forms, surrogates, past U+10FFFF, and C1 controls */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
        cp > 0x10ffff || (cp >= 0x80 && cp <= 0x9f))
        return 0;
    return len;
}

const char *text_clean(const char *s, size_t max, char *out, size_t outsz)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t n = strnlen((const char *)p, max), i = 0, o = 0;
    bool cut = p[n] != '\0';

    while (i < n) {
        char esc[4];
        const char *put = esc;
        size_t len, take = 1;
        unsigned char c = p[i];

        if (c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            len = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            esc[0] = (char)c;
            len = 1;
        } else if (c >= 0x80 && (take = utf8_len(p + i, n - i)) > 0) {
            put = (const char *)p + i;
            len = take;
        } else {
            take = 1;
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 0xf];
            len = 4;
        }
        if (o + len + 4 > outsz) { /* keep room for "..." and the NUL */
            cut = true;
            break;
        }
        memcpy(out + o, put, len);
        o += len;
        i += take;
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

const char *text_utc(int64_t usec, text_utc_style style, char *out, size_t outsz)
{
    int64_t secs = usec / 1000000, frac = usec % 1000000;
    time_t t;
    struct tm tm;

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    /* Not strftime's %Y: it does not zero-pad years before 1000, which would not parse back. */
    switch (style) {
    case TEXT_UTC_MICROS:
        snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)frac);
        break;
    case TEXT_UTC_COMPACT:
        snprintf(out, outsz, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        break;
    default:
        snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        break;
    }
    return out;
}

int64_t text_now_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The bytes of one character of UTF-8 text at s (1 for a byte that starts none). */
static size_t char_len(const char *s)
{
    unsigned char b = (unsigned char)s[0];
    size_t len = b < 0xc0 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;

    for (size_t i = 1; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            return 1;
    }
    return len;
}

bool text_like(const char *s, const char *pattern)
{
    const char *star = NULL, *resume = NULL;

    /* Greedy with one backtrack point: the last '%' seen is the only one that
     * ever needs to take more, so the work is at most |s| * |pattern|. */
    for (;;) {
        if (*pattern == '%') {
            while (*pattern == '%')
                pattern++;
            star = pattern;
            resume = s;
            continue;
        }
        if (*s == '\0') {
            if (*pattern == '\0')
                return true;
        } else if (*pattern == '_') {
            s += char_len(s);
            pattern++;
            continue;
        } else if (*pattern != '\0') {
            const char *lit = pattern;
            size_t len;
            if (*lit == '\\' && lit[1] != '\0')
                lit++;
            len = char_len(lit);
            if (strncmp(s, lit, len) == 0) {
                s += len;
                pattern = lit + len;
                continue;
            }
        }
        if (star == NULL || *resume == '\0')
            return false;
        resume += char_len(resume);
        s = resume;
        pattern = star;
    }
}

/* Just past the "]" that ends the bracket expression starting at s ("["), or
 * NULL when it has none (regcomp refuses such a regex). A "]" right after "["
 * or "[^" is a member; "[:", "[." and "[=" open names that end in ":]", ".]"
 * and "=]"; a backslash is an ordinary member. */
static const char *bracket_end(const char *s)
{
    const char *p = s + 1;

    if (*p == '^')
        p++;
    if (*p == ']')
        p++;
    while (*p != '\0' && *p != ']') {
        if (p[0] == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
            char close = p[1];
            const char *q = p + 2;
            while (*q != '\0' && !(q[0] == close && q[1] == ']'))
                q++;
            if (*q == '\0')
                return NULL;
            p = q + 2;
        } else {
            p++;
        }
    }
    return *p == ']' ? p + 1 : NULL;
}

text_ere text_ere_scan(const char *re)
{
    text_ere e = {false, true};
    size_t depth = 0;
    const char *p = re;

    while (*p != '\0') {
        if (*p == '\\') {
            if (p[1] >= '1' && p[1] <= '9')
                e.backref = true;
            if (p[1] == '\0')
                break;
            p += 2;
        } else if (*p == '[') {
            p = bracket_end(p);
            if (p == NULL) {
                e.balanced = false;
                return e;
            }
        } else {
            if (*p == '(')
                depth++;
            else if (*p == ')' && depth == 0)
                e.balanced = false;
            else if (*p == ')')
                depth--;
            p++;
        }
    }
    if (depth != 0)
        e.balanced = false;
    return e;
}

const char *text_count(uint64_t n, char *out, size_t outsz)
{
    char digits[24];
    size_t nd, len = 0;

    if (outsz == 0)
        return out;
    snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
    nd = strlen(digits);
    for (size_t i = 0; i < nd && len + 1 < outsz; i++) {
        if (i > 0 && (nd - i) % 3 == 0) {
            out[len++] = ',';
            if (len + 1 >= outsz)
                break;
        }
        out[len++] = digits[i];
    }
    out[len] = '\0';
    return out;
}
