/* JSON writer of the device's payloads: see vw_json_writer.h. */
#include "vw_json_writer.h"

#include <string.h>

/* ------------------------------------------------------------------ buffer */

static void fail(vw_jsonw_t *w, vw_status_t status)
{
    if (w->status == VW_OK) {
        w->status = status;
    }
}

static void put(vw_jsonw_t *w, const char *text, size_t n)
{
    if (w->status != VW_OK) {
        return;
    }
    if (n > w->cap - w->len) {
        fail(w, VW_ERR_BUFFER);
        return;
    }
    memcpy(w->buf + w->len, text, n);
    w->len += n;
}

static void putc_(vw_jsonw_t *w, char c) { put(w, &c, 1); }

/* Comma before a value (or a key) unless it is the first in its container. */
static void value_prefix(vw_jsonw_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth == 0) {
        if (w->len != 0) {
            fail(w, VW_ERR_ARG); /* a second top-level value */
        }
        return;
    }
    uint32_t bit = 1u << w->depth;
    if (w->objects & bit) {
        fail(w, VW_ERR_ARG); /* a value in an object needs its key first */
        return;
    }
    if (w->nonempty & bit) {
        putc_(w, ',');
    }
    w->nonempty |= bit;
}

void vw_jsonw_init(vw_jsonw_t *w, char *buf, size_t cap)
{
    if (w == NULL) {
        return;
    }
    memset(w, 0, sizeof *w);
    w->buf = buf;
    w->cap = buf == NULL ? 0 : cap;
    w->status = (buf == NULL && cap != 0) ? VW_ERR_ARG : VW_OK;
}

static void begin(vw_jsonw_t *w, char open, int object)
{
    if (w == NULL) {
        return;
    }
    value_prefix(w);
    if (w->depth >= VW_JSONW_MAX_DEPTH) {
        fail(w, VW_ERR_ARG);
        return;
    }
    putc_(w, open);
    w->depth++;
    uint32_t bit = 1u << w->depth;
    w->nonempty &= ~bit;
    w->objects = object ? (w->objects | bit) : (w->objects & ~bit);
}

static void end(vw_jsonw_t *w, char close, int object)
{
    if (w == NULL) {
        return;
    }
    uint32_t bit = 1u << w->depth;
    if (w->depth == 0 || w->after_key || ((w->objects & bit) != 0) != (object != 0)) {
        fail(w, VW_ERR_ARG);
        return;
    }
    putc_(w, close);
    w->depth--;
}

void vw_jsonw_object_begin(vw_jsonw_t *w) { begin(w, '{', 1); }
void vw_jsonw_object_end(vw_jsonw_t *w) { end(w, '}', 1); }
void vw_jsonw_array_begin(vw_jsonw_t *w) { begin(w, '[', 0); }
void vw_jsonw_array_end(vw_jsonw_t *w) { end(w, ']', 0); }

/* ----------------------------------------------------------------- strings */

static void put_string(vw_jsonw_t *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    putc_(w, '"');
    size_t run = 0; /* bytes that need no escape, written in one go */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            fail(w, VW_ERR_ARG);
            return;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        put(w, s + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(w, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(w, esc, 6);
        }
    }
    put(w, s + len - run, run);
    putc_(w, '"');
}

void vw_jsonw_key(vw_jsonw_t *w, const char *key)
{
    if (w == NULL) {
        return;
    }
    if (key == NULL || w->after_key || w->depth == 0 || !(w->objects & (1u << w->depth))) {
        fail(w, VW_ERR_ARG);
        return;
    }
    uint32_t bit = 1u << w->depth;
    if (w->nonempty & bit) {
        putc_(w, ',');
    }
    w->nonempty |= bit;
    put_string(w, key, strlen(key));
    putc_(w, ':');
    w->after_key = 1;
}

void vw_jsonw_string(vw_jsonw_t *w, const char *s, size_t len)
{
    if (w == NULL) {
        return;
    }
    if (s == NULL && len != 0) {
        fail(w, VW_ERR_ARG);
        return;
    }
    value_prefix(w);
    put_string(w, s == NULL ? "" : s, len);
}

void vw_jsonw_cstring(vw_jsonw_t *w, const char *s)
{
    if (s == NULL) {
        if (w != NULL) {
            fail(w, VW_ERR_ARG);
        }
        return;
    }
    vw_jsonw_string(w, s, strlen(s));
}

/* ----------------------------------------------------------------- numbers */

/* Decimal digits of v, right-aligned ending at end; returns the first. */
static char *digits_u64(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    return end;
}

void vw_jsonw_uint(vw_jsonw_t *w, uint64_t v)
{
    if (w == NULL) {
        return;
    }
    char text[20];
    char *first = digits_u64(v, text + sizeof text);
    value_prefix(w);
    put(w, first, (size_t)(text + sizeof text - first));
}

void vw_jsonw_int(vw_jsonw_t *w, int64_t v)
{
    if (w == NULL) {
        return;
    }
    char text[21];
    uint64_t magnitude = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
    char *first = digits_u64(magnitude, text + sizeof text);
    if (v < 0) {
        *--first = '-';
    }
    value_prefix(w);
    put(w, first, (size_t)(text + sizeof text - first));
}

void vw_jsonw_bool(vw_jsonw_t *w, int v)
{
    if (w == NULL) {
        return;
    }
    value_prefix(w);
    if (v) {
        put(w, "true", 4);
    } else {
        put(w, "false", 5);
    }
}

/*
 * Exact decimal digits of a float32 with small unsigned big integers: the value is
 * m * 2^e exactly (m < 2^24, -149 <= e <= 104); scaled by powers of ten it becomes
 * the fraction num/den with a quotient of nine digits, which is rounded half to even
 * on the remainder. 256 bits hold every intermediate (the largest, m * 10^53 for the
 * smallest subnormal, takes about 200).
 */
#define BN_WORDS 8

typedef struct {
    uint32_t w[BN_WORDS]; /* little endian */
} bn_t;

static void bn_set(bn_t *a, uint32_t v)
{
    memset(a, 0, sizeof *a);
    a->w[0] = v;
}

static void bn_mul_small(bn_t *a, uint32_t k)
{
    uint64_t carry = 0;
    for (int i = 0; i < BN_WORDS; i++) {
        uint64_t t = (uint64_t)a->w[i] * k + carry;
        a->w[i] = (uint32_t)t;
        carry = t >> 32;
    }
}

static void bn_pow10(bn_t *a, int n)
{
    for (; n >= 9; n -= 9) {
        bn_mul_small(a, 1000000000u);
    }
    for (; n > 0; n--) {
        bn_mul_small(a, 10u);
    }
}

static void bn_shl(bn_t *out, const bn_t *a, int n)
{
    int words = n / 32, bits = n % 32;
    for (int i = BN_WORDS - 1; i >= 0; i--) {
        uint32_t hi = i - words >= 0 ? a->w[i - words] : 0;
        uint32_t lo = i - words - 1 >= 0 ? a->w[i - words - 1] : 0;
        out->w[i] = bits ? (hi << bits) | (lo >> (32 - bits)) : hi;
    }
}

static int bn_cmp(const bn_t *a, const bn_t *b)
{
    for (int i = BN_WORDS - 1; i >= 0; i--) {
        if (a->w[i] != b->w[i]) {
            return a->w[i] < b->w[i] ? -1 : 1;
        }
    }
    return 0;
}

static void bn_sub(bn_t *a, const bn_t *b) /* a >= b */
{
    uint64_t borrow = 0;
    for (int i = 0; i < BN_WORDS; i++) {
        uint64_t t = (uint64_t)a->w[i] - b->w[i] - borrow;
        a->w[i] = (uint32_t)t;
        borrow = (t >> 32) & 1u;
    }
}

/* Nine digits q (10^8 <= q < 10^9) and p with |v| ~ q * 10^p; v finite and non-zero. */
static void float_digits(uint32_t bits, uint32_t *q_out, int *p_out)
{
    uint32_t field = (bits >> 23) & 0xffu;
    uint32_t m = bits & 0x7fffffu;
    int e = -149;
    if (field != 0) {
        m |= 0x800000u;
        e = (int)field - 150;
    }
    int bitlen = 0;
    for (uint32_t t = m; t != 0; t >>= 1) {
        bitlen++;
    }
    /* floor(log10(2) * (e + bitlen - 1)), within one of the leading digit's exponent */
    int log2v = e + bitlen - 1;
    int k = log2v >= 0 ? (log2v * 30103) / 100000 : -((-log2v * 30103 + 99999) / 100000);
    int p = k - 8;
    bn_t num, den, limit, t;
    bn_set(&num, m);
    bn_set(&den, 1);
    if (e >= 0) {
        bn_shl(&num, &num, e);
    } else {
        bn_shl(&den, &den, -e);
    }
    if (p >= 0) {
        bn_pow10(&den, p);
    } else {
        bn_pow10(&num, -p);
    }
    for (;;) { /* bring num/den into [10^8, 10^9) */
        limit = den;
        bn_mul_small(&limit, 1000000000u);
        if (bn_cmp(&num, &limit) >= 0) {
            bn_mul_small(&den, 10u);
            p++;
            continue;
        }
        limit = den;
        bn_mul_small(&limit, 100000000u);
        if (bn_cmp(&num, &limit) < 0) {
            bn_mul_small(&num, 10u);
            p--;
            continue;
        }
        break;
    }
    uint32_t q = 0;
    for (int bit = 29; bit >= 0; bit--) {
        bn_shl(&t, &den, bit);
        if (bn_cmp(&num, &t) >= 0) {
            bn_sub(&num, &t);
            q |= 1u << bit;
        }
    }
    bn_shl(&t, &num, 1); /* twice the remainder against the divisor: round half to even */
    int c = bn_cmp(&t, &den);
    if (c > 0 || (c == 0 && (q & 1u))) {
        q++;
        if (q == 1000000000u) {
            q = 100000000u;
            p++;
        }
    }
    *q_out = q;
    *p_out = p;
}

size_t vw_jsonw_format_float(float v, char *out)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (((bits >> 23) & 0xffu) == 0xffu) {
        return 0;
    }
    char *o = out;
    if (bits >> 31) {
        *o++ = '-';
    }
    if ((bits & 0x7fffffffu) == 0) {
        memcpy(o, "0.0", 3);
        return (size_t)(o + 3 - out);
    }
    uint32_t q;
    int p;
    float_digits(bits, &q, &p);
    char d[9];
    int nd = 9;
    digits_u64(q, d + 9);
    while (nd > 1 && d[nd - 1] == '0') {
        nd--;
    }
    int lead = p + 8; /* decimal exponent of the first digit */
    if (lead >= -5 && lead < 9) {
        if (lead < 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = -1; i > lead; i--) {
                *o++ = '0';
            }
            memcpy(o, d, (size_t)nd);
            o += nd;
        } else {
            for (int i = 0; i <= lead; i++) {
                *o++ = i < nd ? d[i] : '0';
            }
            *o++ = '.';
            if (nd > lead + 1) {
                memcpy(o, d + lead + 1, (size_t)(nd - lead - 1));
                o += nd - lead - 1;
            } else {
                *o++ = '0';
            }
        }
        return (size_t)(o - out);
    }
    *o++ = d[0];
    if (nd > 1) {
        *o++ = '.';
        memcpy(o, d + 1, (size_t)(nd - 1));
        o += nd - 1;
    }
    *o++ = 'e';
    if (lead < 0) {
        *o++ = '-';
        lead = -lead;
    }
    char exp[3];
    char *first = digits_u64((uint64_t)lead, exp + sizeof exp);
    memcpy(o, first, (size_t)(exp + sizeof exp - first));
    o += exp + sizeof exp - first;
    return (size_t)(o - out);
}

void vw_jsonw_float(vw_jsonw_t *w, float v)
{
    if (w == NULL) {
        return;
    }
    char text[VW_JSONW_FLOAT_MAX];
    size_t n = vw_jsonw_format_float(v, text);
    if (n == 0) {
        fail(w, VW_ERR_INPUT);
        return;
    }
    value_prefix(w);
    put(w, text, n);
}

vw_status_t vw_jsonw_finish(const vw_jsonw_t *w, size_t *len)
{
    if (w == NULL) {
        return VW_ERR_ARG;
    }
    if (w->status != VW_OK) {
        return w->status;
    }
    if (w->depth != 0 || w->after_key || w->len == 0) {
        return VW_ERR_ARG;
    }
    if (len != NULL) {
        *len = w->len;
    }
    return VW_OK;
}
