/* owlsync environment rewrites: exact, substring and POSIX ERE rules applied to
 * unescaped COPY values, in config order, then escaped back; counts per rule. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "owlsync/buf.h"
#include "owlsync/copytext.h"
#include "owlsync/rewrite.h"
#include "owlsync/text.h"

typedef struct rule {
    const cfg_rewrite *cfg;
    regex_t re;
    regex_t any;              /* "^.*(FROM)", no groups: whether FROM matches at all */
    struct re_registers regs; /* re_search's groups (malloc'd by glibc, freed with the rule) */
    bool compiled, has_any;
    bool dense; /* a match may start at most bytes (glibc's fastmap says) */
    size_t fromlen, tolen;
} rw_rule;

/* A regex search costs up to (starts tried) x (bytes scanned from each): glibc
 * tries each start in turn, and for a pattern such as "(.*)-prod" scans to
 * the end from each, so a value the rule does not match (most values) cost
 * quadratic time, half an hour for 1 MB; and no call into glibc can be
 * stopped. So a search over n bytes is one regexec call while n * n is at most
 * REGEX_QUICK (up to 512 bytes). A longer one first asks, in one pass, whether
 * FROM matches further on at all (r->any): at once when most bytes may start a
 * match, as for "(.*)-prod"; else once the next REGEX_NEAR starts or so (where
 * the next match of a value with many is) and the next REGEX_STEPS of work
 * have found none. The search goes on a call over at most REGEX_STEPS of work
 * at a time (tens of milliseconds), reading the clock between calls. */
#define REGEX_QUICK ((size_t)1 << 18)
#define REGEX_NEAR 16
#define REGEX_STEPS ((size_t)1 << 24)

/* The work of one regex rule on one value: the time it may take. */
typedef struct regex_work {
    bool timed;     /* the value is long enough to be timed at all */
    unsigned calls; /* times the clock was asked about */
    struct timespec start;
    int64_t limit; /* seconds */
} regex_work;

/* Outcomes of apply_rule. */
typedef enum {
    RW_OK = 0,
    RW_TOO_LONG, /* the result would pass REWRITE_MAX_ROW (or memory ran out) */
    RW_TOO_SLOW, /* a regex rule took more than max_regex_time */
    RW_NO_MEMORY /* regexec ran out of memory */
} rw_status;

struct rewrite_set {
    rw_rule *rules;
    size_t n;
    size_t max_regex_value; /* [import] max_regex_value, at most REWRITE_MAX_ROW */
    int64_t max_regex_time; /* [import] max_regex_time, seconds */
    size_t max_json_values; /* [import] max_json_values */
};

typedef struct column_rules {
    size_t *rules;   /* indexes into the set, in config order */
    size_t n;
    bool json;       /* json or jsonb: results must stay valid JSON */
} column_rules;

struct rewrite_table {
    const rewrite_set *set;
    const manifest_table *mt;
    column_rules *cols;
    uint64_t *changed;    /* per rule */
    bool *covers;         /* per rule */
    bool active;
    copytext_field *fields;
    owl_buf out, val, work, tmp; /* each of at most REWRITE_MAX_ROW bytes */
};

/* Compiles r->any, "^.*(FROM)" without groups: anchored, so glibc tries one
 * start, and without groups it stops at the first match's end, in one pass.
 * It can tell exactly whether FROM matches at or after a point only where
 * every byte is a character ("." takes any byte in the C locale owlsync runs
 * in) and FROM's parentheses pair up (a ")" of FROM would close ours); elsewhere
 * the rule goes without it. -1 out of memory. */
static int compile_any(rw_rule *r)
{
    size_t n = strlen(r->cfg->from) + 6;
    char *text;
    int rc;

    if (MB_CUR_MAX != 1 || !text_ere_scan(r->cfg->from).balanced)
        return 0;
    text = malloc(n);
    if (text == NULL)
        return -1;
    snprintf(text, n, "^.*(%s)", r->cfg->from);
    rc = regcomp(&r->any, text, REG_EXTENDED | REG_NOSUB);
    free(text);
    if (rc == REG_ESPACE)
        return -1;
    r->has_any = rc == 0;
    return 0;
}

/* Whether a match of r may start at most bytes: regcomp leaves in fastmap the
 * bytes a match can start with (re_search skips the others), and can_be_null
 * when an empty match can start anywhere. */
static bool starts_anywhere(const rw_rule *r)
{
    size_t n = 0;

    if (r->re.fastmap == NULL || r->re.can_be_null)
        return true;
    for (size_t c = 0; c < 256; c++)
        n += r->re.fastmap[c] != 0;
    return n >= 128;
}

int rewrite_compile(const cfg *c, rewrite_set **out, owl_err *err)
{
    rewrite_set *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (s == NULL)
        return err_oom(err);
    s->rules = calloc(c->nrewrites ? c->nrewrites : 1, sizeof(rw_rule));
    if (s->rules == NULL) {
        free(s);
        return err_oom(err);
    }
    s->max_regex_value =
        c->import.max_regex_value < REWRITE_MAX_ROW ? (size_t)c->import.max_regex_value : REWRITE_MAX_ROW;
    s->max_regex_time = c->import.max_regex_time;
    s->max_json_values = c->import.max_json_values > 0 ? (size_t)c->import.max_json_values : 1;
    for (size_t i = 0; i < c->nrewrites; i++) {
        rw_rule *r = &s->rules[i];
        r->cfg = &c->rewrites[i];
        r->fromlen = strlen(r->cfg->from);
        r->tolen = strlen(r->cfg->to);
        s->n++;
        if (r->cfg->match == CFG_MATCH_REGEX) {
            int rc;
            if (text_ere_scan(r->cfg->from).backref) {
                rewrite_set_free(s);
                return err_set(err, OWL_EUSAGE, "%s:%d: [rewrite %s] from: back-references are not supported", c->path,
                               c->rewrites[i].line, c->rewrites[i].name);
            }
            rc = regcomp(&r->re, r->cfg->from, REG_EXTENDED);
            if (rc != 0) {
                char msg[256];
                regerror(rc, &r->re, msg, sizeof(msg));
                rewrite_set_free(s);
                return err_set(err, OWL_EUSAGE, "%s:%d: [rewrite %s] from: invalid regex: %s", c->path,
                               c->rewrites[i].line, c->rewrites[i].name, msg);
            }
            r->compiled = true;
            r->dense = starts_anywhere(r);
            if (compile_any(r) < 0) {
                rewrite_set_free(s);
                return err_oom(err);
            }
        }
    }
    *out = s;
    return 0;
}

void rewrite_set_free(rewrite_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (s->rules[i].compiled)
            regfree(&s->rules[i].re);
        if (s->rules[i].has_any)
            regfree(&s->rules[i].any);
        free(s->rules[i].regs.start);
        free(s->rules[i].regs.end);
    }
    free(s->rules);
    free(s);
}

size_t rewrite_rule_count(const rewrite_set *s)
{
    return s->n;
}

const char *rewrite_rule_name(const rewrite_set *s, size_t i)
{
    return s->rules[i].cfg->name;
}

/* text, varchar, char, json, jsonb, and arrays of them. */
static bool texty_type(const char *type)
{
    static const char *const prefixes[] = {"text", "character varying", "character", "json", "jsonb", "name",
                                           "citext"};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(type, prefixes[i], n) == 0 && (type[n] == '\0' || type[n] == '(' || type[n] == '['))
            return true;
    }
    return false;
}

/* Whether spec (TABLE.COLUMN, TABLE.* or *.COLUMN) names this column. */
static bool spec_matches(const char *spec, const char *table, const manifest_column *col)
{
    const char *dot = strchr(spec, '.');
    size_t tlen;

    if (dot == NULL || col->ref)
        return false; /* a reference is never written: no rule applies to it */
    tlen = (size_t)(dot - spec);
    if (!(tlen == 1 && spec[0] == '*') && !(strlen(table) == tlen && strncmp(spec, table, tlen) == 0))
        return false;
    if (strcmp(dot + 1, "*") == 0)
        return !(tlen == 1 && spec[0] == '*') && texty_type(col->type);
    return strcmp(dot + 1, col->name) == 0;
}

int rewrite_table_new(const rewrite_set *s, const manifest_table *mt, rewrite_table **out, owl_err *err)
{
    rewrite_table *t = calloc(1, sizeof(*t));

    *out = NULL;
    if (t == NULL)
        return err_oom(err);
    t->set = s;
    t->mt = mt;
    t->out.max = t->val.max = t->work.max = t->tmp.max = REWRITE_MAX_ROW;
    t->cols = calloc(mt->ncolumns, sizeof(*t->cols));
    t->changed = calloc(s->n ? s->n : 1, sizeof(uint64_t));
    t->covers = calloc(s->n ? s->n : 1, sizeof(bool));
    t->fields = calloc(mt->ncolumns + 1, sizeof(copytext_field));
    if (t->cols == NULL || t->changed == NULL || t->covers == NULL || t->fields == NULL)
        goto oom;
    for (size_t j = 0; j < mt->ncolumns; j++) {
        column_rules *cr = &t->cols[j];
        cr->json = strcmp(mt->columns[j].type, "json") == 0 || strcmp(mt->columns[j].type, "jsonb") == 0;
        for (size_t i = 0; i < s->n; i++) {
            const cfg_list *cols = &s->rules[i].cfg->columns;
            bool hit = false;
            for (size_t k = 0; k < cols->n && !hit; k++)
                hit = spec_matches(cols->v[k], mt->name, &mt->columns[j]);
            if (!hit)
                continue;
            size_t *grown = realloc(cr->rules, (cr->n + 1) * sizeof(size_t));
            if (grown == NULL)
                goto oom;
            cr->rules = grown;
            cr->rules[cr->n++] = i;
            t->covers[i] = true;
            t->active = true;
        }
    }
    *out = t;
    return 0;
oom:
    rewrite_table_free(t);
    return err_oom(err);
}

void rewrite_table_free(rewrite_table *t)
{
    if (t == NULL)
        return;
    for (size_t j = 0; t->cols != NULL && j < t->mt->ncolumns; j++)
        free(t->cols[j].rules);
    free(t->cols);
    free(t->changed);
    free(t->covers);
    free(t->fields);
    buf_free(&t->out);
    buf_free(&t->val);
    buf_free(&t->work);
    buf_free(&t->tmp);
    free(t);
}

bool rewrite_table_active(const rewrite_table *t)
{
    return t->active;
}

bool rewrite_table_covers(const rewrite_table *t, size_t rule)
{
    return t->covers[rule];
}

uint64_t rewrite_table_changed(const rewrite_table *t, size_t rule)
{
    return t->changed[rule];
}

/* Appends "to" with \0-\9 replaced by the matched groups of src. */
static int add_replacement(owl_buf *b, const char *to, const char *src, const regmatch_t *m)
{
    for (const char *p = to; *p != '\0'; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '9') {
            const regmatch_t *g = &m[p[1] - '0'];
            if (g->rm_so >= 0 && buf_add(b, src + g->rm_so, (size_t)(g->rm_eo - g->rm_so)) < 0)
                return -1;
            p++;
        } else if (p[0] == '\\' && p[1] == '\\') {
            if (buf_add(b, "\\", 1) < 0)
                return -1;
            p++;
        } else if (buf_add(b, p, 1) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Starts w's clock for a value of len bytes. A value a search covers in one
 * quick call is not timed: its at most len + 1 calls cost a fraction of a
 * second in all. */
static void regex_work_start(regex_work *w, int64_t limit, size_t len)
{
    w->timed = (len + 1) * (len + 1) > REGEX_QUICK;
    w->limit = limit;
    w->calls = 0;
    if (w->timed)
        clock_gettime(CLOCK_MONOTONIC, &w->start);
}

/* Whether the rule has worked on the value for longer than its limit. The
 * clock is read after each costly call, else every 8th time: between matches
 * close together it would cost as much as the search. */
static bool regex_work_over(regex_work *w, bool costly)
{
    struct timespec now;
    int64_t ns;

    if (!w->timed || (w->calls++ % 8 != 0 && !costly))
        return false;
    clock_gettime(CLOCK_MONOTONIC, &now);
    ns = (int64_t)(now.tv_sec - w->start.tv_sec) * 1000000000 + (now.tv_nsec - w->start.tv_nsec);
    return ns >= w->limit * 1000000000;
}

/* Whether r matches at or after in + from, in one pass: 0 yes, REG_NOMATCH,
 * or another regexec error. The byte before from is not looked at, so FROM
 * sees from as a value's start: give from one byte early for the context of
 * "\B" or "\<" there (a match at that byte is only a needless search). */
static int regex_any(const rw_rule *r, const char *in, size_t len, size_t from)
{
    regmatch_t whole = {0, (regoff_t)(len - from)};

    return regexec(&r->any, in + from, 1, &whole, REG_STARTEND);
}

/* The leftmost-longest match of r in in[0..len) that starts at or after off,
 * into m (offsets from in): 0, REG_NOMATCH, -1 when the rule is out of time
 * (w), or another regexec error. The search starts at off, not at in: a
 * value's matches cost one pass, not one pass each (REG_STARTEND also saves
 * regexec a strlen per call). The byte before off is context, as for sed's
 * s///g: "^" does not match at off > 0, nor "\<" inside a word. */
static int regex_find(rw_rule *r, const char *in, size_t len, size_t off, regmatch_t *m, regex_work *w)
{
    size_t at = off, left = len - off + 1; /* starts to try, and the most each scans */
    size_t most = REGEX_STEPS / left > 1 ? REGEX_STEPS / left : 1;
    size_t k = REGEX_QUICK / left > REGEX_NEAR ? REGEX_QUICK / left : REGEX_NEAR;
    bool asked = !r->has_any;

    if (left * left <= REGEX_QUICK) {
        m[0].rm_so = (regoff_t)off;
        m[0].rm_eo = (regoff_t)len;
        return regexec(&r->re, in, 10, m, REG_STARTEND);
    }
    if (!asked && r->dense) {
        int rc = regex_any(r, in, len, off > 0 ? off - 1 : 0);
        if (rc != 0)
            return rc;
        asked = true;
    }
    for (bool near = true;; near = false) {
        /* re_search: regexec underneath, on the same compiled regex, but
         * trying only the starts at .. at + k - 1 */
        regoff_t got;
        if (k > most)
            k = most;
        if (k > left)
            k = left;
        got = re_search(&r->re, in, (regoff_t)len, (regoff_t)at, (regoff_t)(k - 1), &r->regs);
        if (got >= 0) {
            for (size_t i = 0; i < 10; i++) {
                bool set = i < r->regs.num_regs;
                m[i].rm_so = set ? r->regs.start[i] : -1;
                m[i].rm_eo = set ? r->regs.end[i] : -1;
            }
            return 0;
        }
        if (got != -1)
            return REG_ESPACE;
        if (k >= left)
            return REG_NOMATCH;
        at += k;
        left -= k;
        if (regex_work_over(w, true))
            return -1;
        if (!asked && !near) {
            int rc = regex_any(r, in, len, at - 1);
            if (rc != 0)
                return rc;
            asked = true;
        }
        k = most;
    }
}

/* Applies one rule to in (len bytes) into out; *hit when changed. Exact and
 * substring rules cost one pass; a regex rule is given limit seconds. */
static rw_status apply_rule(rw_rule *r, const char *in, size_t len, int64_t limit, owl_buf *out, bool *hit)
{
    out->len = 0;
    *hit = false;
    switch (r->cfg->match) {
    case CFG_MATCH_EXACT:
        if (len == r->fromlen && memcmp(in, r->cfg->from, len) == 0) {
            *hit = len != r->tolen || memcmp(in, r->cfg->to, len) != 0;
            return buf_add(out, r->cfg->to, r->tolen) < 0 ? RW_TOO_LONG : RW_OK;
        }
        return buf_add(out, in, len) < 0 ? RW_TOO_LONG : RW_OK;
    case CFG_MATCH_SUBSTRING: {
        const char *p = in, *end = in + len, *f;
        while (r->fromlen > 0 && (f = memmem(p, (size_t)(end - p), r->cfg->from, r->fromlen)) != NULL) {
            if (buf_add(out, p, (size_t)(f - p)) < 0 || buf_add(out, r->cfg->to, r->tolen) < 0)
                return RW_TOO_LONG;
            p = f + r->fromlen;
            *hit = true;
        }
        if (buf_add(out, p, (size_t)(end - p)) < 0)
            return RW_TOO_LONG;
        if (*hit)
            *hit = out->len != len || memcmp(out->p, in, len) != 0;
        return RW_OK;
    }
    case CFG_MATCH_REGEX: {
        regmatch_t m[10];
        size_t off = 0;           /* in[off..len) is still to scan */
        bool after_match = false; /* off is just past a non-empty match */
        regex_work w;
        int rc = 0;
        regex_work_start(&w, limit, len);
        while (off <= len && (rc = regex_find(r, in, len, off, m, &w)) == 0) {
            size_t so = (size_t)m[0].rm_so, eo = (size_t)m[0].rm_eo;
            if (after_match && so == off && eo == off) {
                /* an empty match right after a match is none (as sed has it:
                 * ".*" on "v" gives one replacement, not two) */
                if (off >= len)
                    break;
                if (buf_add(out, in + off, 1) < 0)
                    return RW_TOO_LONG;
                off++;
                after_match = false;
                continue;
            }
            if (buf_add(out, in + off, so - off) < 0 || add_replacement(out, r->cfg->to, in, m) < 0)
                return RW_TOO_LONG;
            if (eo == so) {
                /* an empty match: keep one character and move on */
                if (eo >= len) {
                    off = len; /* all of the value is out (e.g. "$") */
                    break;
                }
                if (buf_add(out, in + eo, 1) < 0)
                    return RW_TOO_LONG;
                off = eo + 1;
                after_match = false;
            } else {
                off = eo;
                after_match = true;
            }
            if (regex_work_over(&w, false))
                return RW_TOO_SLOW;
        }
        if (rc == -1)
            return RW_TOO_SLOW;
        if (rc != 0 && rc != REG_NOMATCH)
            return RW_NO_MEMORY; /* REG_ESPACE: the one error regexec has for a regex that compiled */
        if (off < len && buf_add(out, in + off, len - off) < 0)
            return RW_TOO_LONG;
        if (out->p == NULL && buf_add(out, "", 0) < 0)
            return RW_TOO_LONG;
        *hit = out->len != len || memcmp(out->p, in, len) != 0;
        return RW_OK;
    }
    }
    return RW_TOO_LONG;
}

/* At least the number of JSON values (and object keys) jansson would make of
 * s: one, and one per "[", "{", "," or ":" outside strings. Counts up to
 * max + 1 and stops. */
static size_t json_values(const char *s, size_t len, size_t max)
{
    size_t n = 1;
    bool in_string = false;

    for (size_t i = 0; i < len && n <= max; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{' || c == ',' || c == ':') {
            n++;
        }
    }
    return n;
}

typedef enum { JSON_VALID, JSON_INVALID, JSON_TOO_BIG } json_verdict;

/* Whether s is one JSON document. jansson builds the whole tree to say so,
 * some 100 bytes for each value: a value with more than max values is not
 * parsed (JSON_TOO_BIG). jansson's own depth limit bounds its recursion. */
static json_verdict json_check(const char *s, size_t len, size_t max)
{
    json_error_t e;
    json_t *j;

    if (json_values(s, len, max) > max)
        return JSON_TOO_BIG;
    j = json_loadb(s, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &e);
    if (j == NULL)
        return JSON_INVALID;
    json_decref(j);
    return JSON_VALID;
}

/* Where a value is, for messages: "owl_rule.rule_value in row 3", or for
 * rewrite_value (row 0) "owl_rule.dataset in the manifest's datasets". */
static const char *value_where(const rewrite_table *t, size_t col, uint64_t rowno, char *buf, size_t size)
{
    if (rowno == 0)
        snprintf(buf, size, "%s.%s in the manifest's datasets", t->mt->name, t->mt->columns[col].name);
    else
        snprintf(buf, size, "%s.%s in row %llu", t->mt->name, t->mt->columns[col].name, (unsigned long long)rowno);
    return buf;
}

/* Applies rule r to t->val into t->work, within the bounds of a regex rule:
 * max_regex_value on the value, max_regex_time on the work (OWL_EUSAGE: the
 * same bundle would fail the same way every time). */
static int run_rule(rewrite_table *t, size_t col, rw_rule *r, bool *hit, uint64_t rowno, owl_err *err)
{
    char where[2 * TEXT_NAME_MAX + 64];

    if (r->cfg->match == CFG_MATCH_REGEX && t->val.len > t->set->max_regex_value)
        return err_set(err, OWL_EUSAGE,
                       "rewrite [rewrite %s] on %s: the value is %zu bytes, more than max_regex_value (%zu) lets "
                       "a regex rule take\nHINT: raise max_regex_value in [import] if values this long are expected",
                       r->cfg->name, value_where(t, col, rowno, where, sizeof(where)), t->val.len,
                       t->set->max_regex_value);
    switch (apply_rule(r, t->val.p, t->val.len, t->set->max_regex_time, &t->work, hit)) {
    case RW_OK:
        return 0;
    case RW_TOO_LONG:
        return err_set(err, OWL_EUSAGE, "rewrite [rewrite %s] makes a value of %s.%s longer than %d bytes",
                       r->cfg->name, t->mt->name, t->mt->columns[col].name, REWRITE_MAX_ROW);
    case RW_TOO_SLOW:
        return err_set(err, OWL_EUSAGE,
                       "rewrite [rewrite %s] on %s: matching took more than max_regex_time (%llds)\nHINT: a "
                       "pattern such as (.*)-prod(.*) scans on from every start; anchor it (^, $), narrow .* "
                       "(to [^/]*, say), or raise max_regex_time in [import]",
                       r->cfg->name, value_where(t, col, rowno, where, sizeof(where)),
                       (long long)t->set->max_regex_time);
    case RW_NO_MEMORY:
        break;
    }
    return err_oom(err);
}

static int json_too_big(const rewrite_table *t, size_t col, const rw_rule *r, uint64_t rowno, owl_err *err)
{
    char where[2 * TEXT_NAME_MAX + 64];

    return err_set(err, OWL_EUSAGE,
                   "rewrite [rewrite %s] on %s: the value holds more than max_json_values (%zu) JSON values, "
                   "more than owlsync checks after a rewrite\nHINT: raise max_json_values in [import] if values "
                   "this large are expected",
                   r->cfg->name, value_where(t, col, rowno, where, sizeof(where)), t->set->max_json_values);
}

/* The rules of a json or jsonb column made t->val, which is not JSON, out of
 * t->tmp, which is: names the first rule whose result is not, running the
 * rules again from the first that changed the value (the ones before did
 * not). The error path only: each rule's result is parsed. */
static int json_breaker(rewrite_table *t, size_t col, size_t first, uint64_t rowno, owl_err *err)
{
    const column_rules *cr = &t->cols[col];
    const rw_rule *broke = &t->set->rules[cr->rules[first]]; /* should the rules now keep it JSON */

    t->val.len = 0;
    if (buf_add(&t->val, t->tmp.p, t->tmp.len) < 0)
        return err_oom(err);
    for (size_t i = first; i < cr->n; i++) {
        rw_rule *r = &t->set->rules[cr->rules[i]];
        bool hit = false;
        json_verdict v;
        if (run_rule(t, col, r, &hit, rowno, err) < 0)
            return -1;
        if (!hit)
            continue;
        owl_buf tmp = t->val;
        t->val = t->work;
        t->work = tmp;
        v = json_check(t->val.p, t->val.len, t->set->max_json_values);
        if (v == JSON_TOO_BIG)
            return json_too_big(t, col, r, rowno, err);
        if (v == JSON_INVALID) {
            broke = r;
            break;
        }
    }
    return err_set(err, OWL_EUSAGE, "rewrite [rewrite %s] breaks %s.%s in row %llu: the value is no longer valid JSON",
                   broke->cfg->name, t->mt->name, t->mt->columns[col].name, (unsigned long long)rowno);
}

/* Runs the column's rules over t->val (the unescaped value); the result ends in
 * t->val. Counts into t->changed when count. *changed when any rule changed it.
 * A json or jsonb value that was JSON must still be: it is parsed once, after
 * the rules, and only when one changed it (the value as it came waits in
 * t->tmp); the rule that broke it is looked for only then. */
static int apply_rules(rewrite_table *t, size_t col, bool count, bool *changed, uint64_t rowno, owl_err *err)
{
    const column_rules *cr = &t->cols[col];
    size_t first = SIZE_MAX; /* the first rule that changed a json value */

    *changed = false;
    for (size_t i = 0; i < cr->n; i++) {
        rw_rule *r = &t->set->rules[cr->rules[i]];
        bool hit = false;
        if (run_rule(t, col, r, &hit, rowno, err) < 0)
            return -1;
        if (!hit)
            continue;
        /* the result becomes the value for the next rule; the first change of
         * a json value keeps the value as it came in t->tmp */
        owl_buf tmp = t->val;
        t->val = t->work;
        if (cr->json && first == SIZE_MAX) {
            t->work = t->tmp;
            t->tmp = tmp;
            first = i;
        } else {
            t->work = tmp;
        }
        *changed = true;
        if (count)
            t->changed[cr->rules[i]]++;
    }
    if (first == SIZE_MAX)
        return 0;
    switch (json_check(t->val.p, t->val.len, t->set->max_json_values)) {
    case JSON_VALID:
        return 0;
    case JSON_TOO_BIG:
        return json_too_big(t, col, &t->set->rules[cr->rules[first]], rowno, err);
    case JSON_INVALID:
        break;
    }
    switch (json_check(t->tmp.p, t->tmp.len, t->set->max_json_values)) {
    case JSON_VALID:
        return json_breaker(t, col, first, rowno, err);
    case JSON_TOO_BIG:
        return json_too_big(t, col, &t->set->rules[cr->rules[first]], rowno, err);
    case JSON_INVALID:
        break;
    }
    return 0; /* it was not JSON as it came either: the target judges it, as before */
}

int rewrite_row(rewrite_table *t, const char *row, size_t len, uint64_t rowno, const char **out, size_t *outlen,
                owl_err *err)
{
    size_t n = 0;

    t->out.len = 0;
    if (copytext_split(row, len, t->fields, t->mt->ncolumns + 1, &n, err) < 0 || n != t->mt->ncolumns)
        return err_set(err, OWL_EVERIFY, "%s row %llu has %zu fields, the manifest lists %zu columns", t->mt->file,
                       (unsigned long long)rowno, n, t->mt->ncolumns);
    for (size_t j = 0; j < n; j++) {
        const copytext_field *f = &t->fields[j];
        bool changed = false;

        if (j > 0 && buf_add(&t->out, "\t", 1) < 0)
            goto too_long;
        if (t->cols[j].n > 0 && !copytext_is_null(f->p, f->len)) {
            t->val.len = 0; /* before the reserve, which counts what the buffer holds */
            if (buf_reserve(&t->val, f->len) < 0)
                goto too_long;
            if (copytext_unescape(f->p, f->len, t->val.p, &t->val.len, err) < 0)
                return err_prefix(err, "%s row %llu column %s", t->mt->file, (unsigned long long)rowno,
                                  t->mt->columns[j].name);
            t->val.p[t->val.len] = '\0';
            if (apply_rules(t, j, true, &changed, rowno, err) < 0)
                return -1;
        }
        if (!changed) {
            if (buf_add(&t->out, f->p, f->len) < 0)
                goto too_long;
            continue;
        }
        if (t->val.len > REWRITE_MAX_ROW / 2 || buf_reserve(&t->out, 2 * t->val.len) < 0)
            goto too_long;
        t->out.len += copytext_escape(t->val.p, t->val.len, t->out.p + t->out.len);
    }
    *out = t->out.p != NULL ? t->out.p : "";
    *outlen = t->out.len;
    return 0;
too_long:
    return err_set(err, OWL_EUSAGE, "%s row %llu is longer than %d bytes after rewriting", t->mt->file,
                   (unsigned long long)rowno, REWRITE_MAX_ROW);
}

int rewrite_value(rewrite_table *t, const char *col, const char *val, char **out, owl_err *err)
{
    bool changed = false;

    *out = NULL;
    for (size_t j = 0; j < t->mt->ncolumns; j++) {
        if (strcmp(t->mt->columns[j].name, col) != 0)
            continue;
        t->val.len = 0;
        if (buf_add(&t->val, val, strlen(val)) < 0)
            return err_oom(err);
        if (t->cols[j].n > 0 && apply_rules(t, j, false, &changed, 0, err) < 0)
            return -1;
        *out = strdup(t->val.p);
        return *out == NULL ? err_oom(err) : 0;
    }
    *out = strdup(val);
    return *out == NULL ? err_oom(err) : 0;
}

void rewrite_table_changed_names(const rewrite_table *t, char *out, size_t size)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < t->set->n && len + 80 < size; i++) {
        if (t->changed[i] > 0)
            len += (size_t)snprintf(out + len, size - len, "%s[rewrite %s]", len ? ", " : "", t->set->rules[i].cfg->name);
    }
}

struct rewrite_stream {
    rewrite_table *t;
    copytext_rows rows;
    owl_buf batch;
    rewrite_sink_fn sink;
    void *ctx;
};

int rewrite_stream_new(rewrite_table *t, const char *what, rewrite_sink_fn sink, void *ctx, rewrite_stream **out,
                       owl_err *err)
{
    rewrite_stream *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (s == NULL)
        return err_oom(err);
    s->t = t;
    s->sink = sink;
    s->ctx = ctx;
    s->batch = (owl_buf)OWL_BUF_INIT(REWRITE_MAX_ROW + REWRITE_BATCH);
    copytext_rows_init(&s->rows, REWRITE_MAX_ROW, what);
    *out = s;
    return 0;
}

/* One row through the rules, into the batch; a full batch goes to the sink. */
static int stream_row(void *ctx, const char *row, size_t len, uint64_t rowno, owl_err *err)
{
    rewrite_stream *s = ctx;
    const char *out;
    size_t outlen;

    if (rewrite_row(s->t, row, len, rowno, &out, &outlen, err) < 0)
        return -1;
    if (buf_add(&s->batch, out, outlen) < 0 || buf_add(&s->batch, "\n", 1) < 0)
        return err_set(err, OWL_EUSAGE, "%s row %llu is too long", s->rows.what, (unsigned long long)rowno);
    if (s->batch.len >= REWRITE_BATCH) {
        if (s->sink(s->ctx, s->batch.p, s->batch.len, err) < 0)
            return -1;
        buf_clear(&s->batch);
    }
    return 0;
}

int rewrite_stream_feed(rewrite_stream *s, const char *buf, size_t len, owl_err *err)
{
    return copytext_rows_feed(&s->rows, buf, len, stream_row, s, err);
}

int rewrite_stream_end(rewrite_stream *s, owl_err *err)
{
    if (copytext_rows_end(&s->rows, stream_row, s, err) < 0)
        return -1;
    if (s->batch.len > 0 && s->sink(s->ctx, s->batch.p, s->batch.len, err) < 0)
        return -1;
    buf_clear(&s->batch);
    return 0;
}

void rewrite_stream_free(rewrite_stream *s)
{
    if (s == NULL)
        return;
    copytext_rows_free(&s->rows);
    buf_free(&s->batch);
    free(s);
}

/* ------------------------------------------------------------------ binding */

/* The edit distance of two names (each at most TEXT_NAME_MAX bytes used). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strnlen(a, TEXT_NAME_MAX), lb = strnlen(b, TEXT_NAME_MAX);
    size_t row[TEXT_NAME_MAX + 1];

    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Whether table (or, for "*", any of tables) has column col; *table_known
 * whether table is among them; the column nearest col (an obvious typo:
 * within a third of its length) into near. */
static bool find_column(const rewrite_columns *tables, size_t n, const char *table, const char *col,
                        bool *table_known, char *near, size_t nearsize)
{
    size_t best = strlen(col) / 3 + 1;

    *table_known = false;
    for (size_t i = 0; i < n; i++) {
        const rewrite_columns *t = &tables[i];
        if (strcmp(table, "*") != 0 && strcmp(table, t->table) != 0)
            continue;
        *table_known = true;
        for (size_t k = 0; k < t->n; k++) {
            size_t d;
            if (strcmp(t->names[k], col) == 0)
                return true;
            d = distance(t->names[k], col);
            if (d < best) {
                best = d;
                snprintf(near, nearsize, "%s.%s", t->table, t->names[k]);
            }
        }
    }
    return false;
}

int rewrite_bind(const cfg *c, const rewrite_columns *tables, size_t n, bool partial, owl_err *err)
{
    int undecided = 0;

    for (size_t i = 0; i < c->nrewrites; i++) {
        const cfg_rewrite *r = &c->rewrites[i];
        for (size_t k = 0; k < r->columns.n; k++) {
            const char *spec = r->columns.v[k], *dot = strchr(spec, '.');
            char table[TEXT_NAME_MAX + 1], near[2 * TEXT_NAME_MAX + 2] = "";
            bool known;
            if (dot == NULL || strcmp(dot + 1, "*") == 0 || (size_t)(dot - spec) > TEXT_NAME_MAX)
                continue; /* TABLE.*: its table is checked with the config */
            snprintf(table, sizeof(table), "%.*s", (int)(dot - spec), spec);
            if (find_column(tables, n, table, dot + 1, &known, near, sizeof(near)))
                continue;
            if (partial && (!known || strcmp(table, "*") == 0)) {
                undecided = 1;
                continue;
            }
            if (strcmp(table, "*") == 0)
                err_set(err, OWL_EUSAGE, "%s:%d: [rewrite %s] columns: %s matches no column of any configured table",
                        c->path, r->line, r->name, spec);
            else
                err_set(err, OWL_EUSAGE, "%s:%d: [rewrite %s] columns: %s matches no column of table %s", c->path,
                        r->line, r->name, spec, table);
            if (near[0] != '\0')
                err_hint(err, "did you mean %s%s?", strcmp(table, "*") == 0 ? "*." : "",
                         strcmp(table, "*") == 0 ? strchr(near, '.') + 1 : near);
            return -1;
        }
    }
    return undecided;
}
