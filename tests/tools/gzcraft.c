/* gzcraft: writes hostile gzip files for the tests of owlsync's bundle reader,
 * which must decompress a bundle once, with the one filter its first bytes
 * name, and never bid for another filter on what that filter produced.
 *
 * usage: gzcraft quine OUT
 *        gzcraft name-bomb BYTES OUT
 *
 * quine: a gzip file that decompresses to itself.
 * name-bomb: a gzip stream that decompresses to a gzip header whose file name
 * runs on for BYTES bytes without its terminating NUL (written directly as
 * deflate copies, so it is BYTES / 2000 bytes long): a reader that bids for a
 * filter on the decompressed bytes reads the whole name into memory.
 *
 * The construction is the well-known one of self-reproducing Lempel-Ziv
 * programs: two operations, "literal n" (the next n bytes of the program are
 * output) and "repeat n" (the last n bytes of output are output again), in a
 * sequence whose output is the program itself, with the gzip header as a
 * prefix and its trailer as a suffix. In deflate, "literal n" is a stored
 * block (5 bytes at a byte boundary) and "repeat n" a fixed-Huffman block of
 * two copies at distance n that ends on a byte boundary. The trailer's CRC-32
 * appears twice in the file, and the CRC of the file must be that same value:
 * CRC-32 is affine over GF(2), so the fixed point is solved as a 32x32 linear
 * system. The program checks its own output by running the two operations
 * over it before writing it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE 512

typedef struct buf {
    unsigned char b[MAX_FILE];
    size_t len;
} buf;

static void put(buf *f, const void *p, size_t n)
{
    if (f->len + n > MAX_FILE) {
        fprintf(stderr, "gzcraft: file too long\n");
        exit(1);
    }
    memcpy(f->b + f->len, p, n);
    f->len += n;
}

/* ---- deflate bits, least significant first ---- */

typedef struct bits {
    unsigned char b[16];
    size_t nbits;
} bits;

static void put_bits(bits *w, uint32_t v, int n)
{
    for (int i = 0; i < n; i++, w->nbits++) {
        if ((v >> i) & 1)
            w->b[w->nbits / 8] |= (unsigned char)(1u << (w->nbits % 8));
    }
}

/* A Huffman code goes most significant bit first. */
static void put_huff(bits *w, uint32_t code, int len)
{
    for (int i = len - 1; i >= 0; i--, w->nbits++) {
        if ((code >> i) & 1)
            w->b[w->nbits / 8] |= (unsigned char)(1u << (w->nbits % 8));
    }
}

/* The fixed code of a length symbol 256..285. */
static void put_lsym(bits *w, int sym)
{
    if (sym < 280)
        put_huff(w, (uint32_t)(sym - 256), 7);
    else
        put_huff(w, (uint32_t)(0xc0 + sym - 280), 8);
}

static const int len_base[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                               35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const int len_extra[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const int dist_base[] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193};
static const int dist_extra[] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6};

static void put_copy(bits *w, int len, int dist)
{
    int l = 28, d = 15;

    while (len_base[l] > len)
        l--;
    put_lsym(w, 257 + l);
    put_bits(w, (uint32_t)(len - len_base[l]), len_extra[l]);
    while (dist_base[d] > dist)
        d--;
    put_huff(w, (uint32_t)d, 5);
    put_bits(w, (uint32_t)(dist - dist_base[d]), dist_extra[d]);
}

static int copy_bits(int len, int dist)
{
    bits w;

    memset(&w, 0, sizeof(w));
    put_copy(&w, len, dist);
    return (int)w.nbits;
}

/* "literal n": a stored block at a byte boundary. */
static void op_literal(buf *f, unsigned n)
{
    unsigned char b[5] = {0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8),
                          (unsigned char)(~n & 0xff), (unsigned char)((~n >> 8) & 0xff)};
    put(f, b, sizeof(b));
}

/* "repeat n": a fixed block of two copies at distance n, followed by an empty
 * fixed block when that is what ends it on a byte boundary (and always when
 * final, the empty block then being the final one). Returns its size, or 0
 * when no split of n ends on a byte boundary within want bytes (0 = any). */
static size_t op_repeat(buf *f, int n, int final, size_t want)
{
    for (int empty = final; empty <= 1; empty++) {
        for (int a = 3; a <= n - 3; a++) {
            int total = 3 + copy_bits(a, n) + copy_bits(n - a, n) + 7 + (empty ? 10 : 0);
            bits w;
            if (total % 8 != 0 || (want != 0 && (size_t)total / 8 != want))
                continue;
            memset(&w, 0, sizeof(w));
            put_bits(&w, (!empty && final) ? 1 : 0, 1);
            put_bits(&w, 1, 2); /* fixed Huffman */
            put_copy(&w, a, n);
            put_copy(&w, n - a, n);
            put_lsym(&w, 256);
            if (empty) {
                put_bits(&w, final ? 1 : 0, 1);
                put_bits(&w, 1, 2);
                put_lsym(&w, 256);
            }
            if (f != NULL)
                put(f, w.b, w.nbits / 8);
            return w.nbits / 8;
        }
    }
    return 0;
}

/* ---- CRC-32 (gzip's) ---- */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;

    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- the program ---- */

typedef struct layout {
    buf f;
    size_t crc_at[2];  /* where the CRC field of the trailer appears */
} layout;

/* Builds header, stream and trailer with the trailer's CRC field = crc. */
static void build(layout *l, const char *name, uint32_t crc)
{
    buf P, A, B, C, E, F, Z, J, K, S;
    buf *f = &l->f;
    size_t plen;
    unsigned char hdr[10] = {0x1f, 0x8b, 8, 0x08 /* FNAME */, 0, 0, 0, 0, 0, 3};

    memset(l, 0, sizeof(*l));
    memset(&P, 0, sizeof(P));
    put(&P, hdr, sizeof(hdr));
    put(&P, name, strlen(name) + 1);
    plen = P.len;
    memset(&A, 0, sizeof(A));
    op_literal(&A, (unsigned)(plen + 5));
    memset(&B, 0, sizeof(B));
    if (op_repeat(&B, (int)(plen + 5), 0, 5) != 5) {
        fprintf(stderr, "gzcraft: no 5-byte repeat of %zu\n", plen + 5);
        exit(1);
    }
    memset(&C, 0, sizeof(C));
    op_literal(&C, 5);             /* literal of one op; D is the same bytes */
    memset(&E, 0, sizeof(E));
    op_literal(&E, 20);            /* literal of four ops; G is the same bytes */
    memset(&F, 0, sizeof(F));
    if (op_repeat(&F, 20, 0, 5) != 5) {
        fprintf(stderr, "gzcraft: no 5-byte repeat of 20\n");
        exit(1);
    }
    memset(&Z, 0, sizeof(Z));
    op_literal(&Z, 0);
    memset(&K, 0, sizeof(K));
    {
        /* the last repeat covers itself and the trailer: find a size n - 8 it
         * encodes to */
        size_t k = 0;
        for (int n = 9; n < 200 && k == 0; n++) {
            size_t got = op_repeat(NULL, n, 1, (size_t)(n - 8));
            if (got == (size_t)(n - 8))
                k = op_repeat(&K, n, 1, got);
        }
        if (k == 0) {
            fprintf(stderr, "gzcraft: no final repeat\n");
            exit(1);
        }
    }
    memset(&J, 0, sizeof(J));
    op_literal(&J, (unsigned)(K.len + 8));
    memset(&S, 0, sizeof(S));
    S.len = 8;
    put_le32(S.b, crc);

#define PUT(x) put(f, (x).b, (x).len)
    PUT(P);
    PUT(A); PUT(P); PUT(A);                      /* P A */
    PUT(B);                                      /* repeat P A */
    PUT(C); PUT(B);                              /* B */
    PUT(C); PUT(C);                              /* C (as D) */
    PUT(E); PUT(B); PUT(C); PUT(C); PUT(E);      /* B D C E */
    PUT(F);                                      /* repeat B D C E */
    PUT(E); PUT(F); PUT(E); PUT(F); PUT(E);      /* F G F G */
    PUT(F);                                      /* repeat F G F G */
    PUT(E); PUT(F); PUT(Z); PUT(Z); PUT(J);      /* F Z Z J */
    PUT(F);                                      /* repeat F Z Z J */
    PUT(Z); PUT(Z);
    PUT(J);
    l->crc_at[0] = f->len + K.len;
    PUT(K); PUT(S);                              /* K S */
    PUT(K);                                      /* repeat K S */
    l->crc_at[1] = f->len;
    PUT(S);                                      /* the trailer */
#undef PUT
    put_le32(f->b + l->crc_at[0] + 4, (uint32_t)f->len);
    put_le32(f->b + l->crc_at[1] + 4, (uint32_t)f->len);
}

/* M(c) = crc32(file with c in the CRC fields) xor c; solves M(c) = 0. */
static int solve(const char *name, uint32_t *out)
{
    layout l;
    uint32_t m0, col[32], rhs;
    int pivot_of[32];

    build(&l, name, 0);
    m0 = crc32_of(l.f.b, l.f.len);
    for (int i = 0; i < 32; i++) {
        uint32_t c = 1u << i;
        build(&l, name, c);
        col[i] = (crc32_of(l.f.b, l.f.len) ^ c) ^ m0; /* the linear part */
    }
    /* Gaussian elimination over GF(2): find c with sum of col[i] for set bits = m0. */
    {
        uint32_t rows[32]; /* row r: bit i = bit r of col[i]; bit 32 in rhs */
        uint32_t r_rhs = 0;
        int rank = 0;
        for (int r = 0; r < 32; r++) {
            rows[r] = 0;
            for (int i = 0; i < 32; i++)
                rows[r] |= ((col[i] >> r) & 1u) << i;
        }
        rhs = m0;
        for (int i = 0; i < 32; i++)
            pivot_of[i] = -1;
        for (int i = 0; i < 32 && rank < 32; i++) {
            int sel = -1;
            for (int r = rank; r < 32; r++) {
                if ((rows[r] >> i) & 1) {
                    sel = r;
                    break;
                }
            }
            if (sel < 0)
                continue;
            {
                uint32_t t = rows[sel];
                int b1 = (int)((rhs >> sel) & 1), b2 = (int)((rhs >> rank) & 1);
                rows[sel] = rows[rank];
                rows[rank] = t;
                rhs = (rhs & ~((1u << sel) | (1u << rank))) | ((uint32_t)b2 << sel) | ((uint32_t)b1 << rank);
            }
            for (int r = 0; r < 32; r++) {
                if (r != rank && ((rows[r] >> i) & 1)) {
                    rows[r] ^= rows[rank];
                    if ((rhs >> rank) & 1)
                        rhs ^= 1u << r;
                }
            }
            pivot_of[i] = rank;
            rank++;
        }
        for (int r = rank; r < 32; r++) {
            if ((rhs >> r) & 1)
                return -1; /* no solution for this header */
        }
        r_rhs = 0;
        for (int i = 0; i < 32; i++) {
            if (pivot_of[i] >= 0 && ((rhs >> pivot_of[i]) & 1))
                r_rhs |= 1u << i;
        }
        *out = r_rhs;
    }
    return 0;
}

/* A small inflate of what build() writes (stored and fixed-Huffman blocks),
 * run over the deflate stream after the plen bytes of gzip header: the output
 * must be the whole file, header and trailer included. */
typedef struct reader {
    const unsigned char *p;
    size_t len, bit;
} reader;

static int get_bit(reader *r)
{
    int b;

    if (r->bit / 8 >= r->len)
        return -1;
    b = (r->p[r->bit / 8] >> (r->bit % 8)) & 1;
    r->bit++;
    return b;
}

static long get_bits(reader *r, int n)
{
    long v = 0;

    for (int i = 0; i < n; i++) {
        int b = get_bit(r);
        if (b < 0)
            return -1;
        v |= (long)b << i;
    }
    return v;
}

static long get_huff(reader *r, int n, long v)
{
    for (int i = 0; i < n; i++) {
        int b = get_bit(r);
        if (b < 0)
            return -1;
        v = (v << 1) | b;
    }
    return v;
}

/* The next literal/length symbol of the fixed code, or -1. */
static int get_lsym(reader *r)
{
    long v = get_huff(r, 7, 0);

    if (v < 0)
        return -1;
    if (v <= 0x17)
        return 256 + (int)v;
    v = get_huff(r, 1, v);
    if (v >= 0x30 && v <= 0xbf)
        return (int)(v - 0x30);
    if (v >= 0xc0 && v <= 0xc7)
        return 280 + (int)(v - 0xc0);
    v = get_huff(r, 1, v);
    if (v >= 0x190 && v <= 0x1ff)
        return 144 + (int)(v - 0x190);
    return -1;
}

static int self_check(const layout *l, size_t plen)
{
    unsigned char out[MAX_FILE];
    size_t o = 0;
    reader r = {l->f.b + plen, l->f.len - plen, 0};
    int final = 0;

    while (!final) {
        long type;
        final = get_bit(&r);
        type = get_bits(&r, 2);
        if (final < 0 || type < 0)
            return -1;
        if (type == 0) {
            long n, nn;
            r.bit = (r.bit + 7) / 8 * 8;
            n = get_bits(&r, 16);
            nn = get_bits(&r, 16);
            if (n < 0 || nn < 0 || (n ^ nn) != 0xffff || r.bit / 8 + (size_t)n > r.len || o + (size_t)n > MAX_FILE)
                return -1;
            memcpy(out + o, r.p + r.bit / 8, (size_t)n);
            o += (size_t)n;
            r.bit += 8 * (size_t)n;
        } else if (type == 1) {
            for (;;) {
                int sym = get_lsym(&r);
                long len, dist, d;
                if (sym < 0)
                    return -1;
                if (sym < 256) {
                    if (o >= MAX_FILE)
                        return -1;
                    out[o++] = (unsigned char)sym;
                    continue;
                }
                if (sym == 256)
                    break;
                len = get_bits(&r, len_extra[sym - 257]);
                d = get_huff(&r, 5, 0);
                if (len < 0 || d < 0 || d > 15)
                    return -1;
                len += len_base[sym - 257];
                dist = get_bits(&r, dist_extra[d]);
                if (dist < 0)
                    return -1;
                dist += dist_base[d];
                if ((size_t)dist > o || o + (size_t)len > MAX_FILE)
                    return -1;
                for (long i = 0; i < len; i++, o++)
                    out[o] = out[o - (size_t)dist];
            }
        } else {
            return -1;
        }
    }
    /* the 8-byte trailer follows the last block, byte-aligned */
    if (plen + (r.bit + 7) / 8 + 8 != l->f.len || o != l->f.len)
        return -1;
    return memcmp(out, l->f.b, o) == 0 ? 0 : -1;
}

/* ---- the name bomb: streamed to a file ---- */

typedef struct bitfile {
    FILE *fp;
    uint64_t acc;
    int nacc;
} bitfile;

static int bf_bits(bitfile *b, uint32_t v, int n)
{
    for (int i = 0; i < n; i++) {
        b->acc |= (uint64_t)((v >> i) & 1u) << b->nacc;
        if (++b->nacc == 8) {
            if (putc((int)(b->acc & 0xff), b->fp) == EOF)
                return -1;
            b->acc = 0;
            b->nacc = 0;
        }
    }
    return 0;
}

static int bf_huff(bitfile *b, uint32_t code, int len)
{
    for (int i = len - 1; i >= 0; i--) {
        if (bf_bits(b, (code >> i) & 1u, 1) < 0)
            return -1;
    }
    return 0;
}

static int name_bomb(uint64_t bytes, const char *path)
{
    static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    static const unsigned char inner[10] = {0x1f, 0x8b, 8, 0x08 /* FNAME */, 0, 0, 0, 0, 0, 3};
    bitfile b = {fopen(path, "wb"), 0, 0};
    uint64_t left = bytes;
    int rc = 0;

    if (b.fp == NULL || bytes < 16) {
        perror(path);
        return 1;
    }
    fwrite(hdr, 1, sizeof(hdr), b.fp);
    rc |= bf_bits(&b, 1, 1); /* final */
    rc |= bf_bits(&b, 1, 2); /* fixed Huffman */
    for (size_t i = 0; i < sizeof(inner); i++)
        rc |= bf_huff(&b, inner[i] < 144 ? 0x30u + inner[i] : 0x190u + inner[i] - 144, inner[i] < 144 ? 8 : 9);
    rc |= bf_huff(&b, 0x30u + 'A', 8);
    left--;
    while (rc == 0 && left >= 258) {
        rc |= bf_huff(&b, 0xc5, 8); /* length 258 */
        rc |= bf_huff(&b, 0, 5);    /* distance 1 */
        left -= 258;
    }
    while (rc == 0 && left > 0) {
        rc |= bf_huff(&b, 0x30u + 'A', 8);
        left--;
    }
    rc |= bf_huff(&b, 0, 7); /* end of block */
    rc |= bf_bits(&b, 0, 7); /* to the byte boundary */
    {
        unsigned char trailer[8];
        put_le32(trailer, 0); /* never reached: no reader gets to the end of the name */
        put_le32(trailer + 4, (uint32_t)(bytes + sizeof(inner)));
        if (fwrite(trailer, 1, sizeof(trailer), b.fp) != sizeof(trailer))
            rc = -1;
    }
    if (fclose(b.fp) != 0 || rc != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

static int quine(const char *path)
{
    const char *names[] = {"q", "qu", "qui", "quin"};
    layout l;
    uint32_t crc = 0;
    FILE *fp;
    size_t k;

    for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (solve(names[k], &crc) == 0)
            break;
    }
    if (k == sizeof(names) / sizeof(names[0])) {
        fprintf(stderr, "gzcraft: no CRC fixed point\n");
        return 1;
    }
    build(&l, names[k], crc);
    if (crc32_of(l.f.b, l.f.len) != crc || self_check(&l, 10 + strlen(names[k]) + 1) < 0) {
        fprintf(stderr, "gzcraft: the file does not reproduce itself\n");
        return 1;
    }
    fp = fopen(path, "wb");
    if (fp == NULL || fwrite(l.f.b, 1, l.f.len, fp) != l.f.len || fclose(fp) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "quine") == 0)
        return quine(argv[2]);
    if (argc == 4 && strcmp(argv[1], "name-bomb") == 0) {
        char *end;
        unsigned long long n = strtoull(argv[2], &end, 10);
        if (*end == '\0' && n > 0)
            return name_bomb(n, argv[3]);
    }
    fprintf(stderr, "usage: gzcraft quine OUT | gzcraft name-bomb BYTES OUT\n");
    return 2;
}
