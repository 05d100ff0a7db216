/* JSON writer of the device's payloads: see vw_json_writer.h. */
#include "vw_json_writer.h"

#include <string.h>

#include "vw_bignum.h"

/* ------------------------------------------------------------------ buffer */

/* Every error is kept only if it is the first: after it, nothing the writer does is
 * seen (vw_jsonw_finish returns the error), so the calls below need not stop early. */
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

/* Whether the innermost container is an object (never at depth 0). */
static int in_object(const vw_jsonw_t *w) { return (int)((w->objects >> w->depth) & 1u); }

/* The comma before a key or an array value, unless it is the first in its container. */
static void comma(vw_jsonw_t *w)
{
    const uint32_t bit = 1u << w->depth;
    if (w->nonempty & bit) {
        putc_(w, ',');
    }
    w->nonempty |= bit;
}

/* Before a value: after its key; alone at the top level; or as an array's element. */
static void value_prefix(vw_jsonw_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
    } else if (w->depth == 0 ? w->len != 0 : in_object(w)) {
        fail(w, VW_ERR_ARG); /* a second top-level value, or a value in an object without key */
    } else if (w->depth != 0) {
        comma(w);
    }
}

/* A value's text (a number or a literal). */
static void put_value(vw_jsonw_t *w, const char *text, size_t n)
{
    value_prefix(w);
    put(w, text, n);
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

/* Open (`{`, `[`) or close (`}`, `]`) a container: bit 1 of the character says which,
 * bit 5 whether it is an object. */
static void container(vw_jsonw_t *w, char c)
{
    if (w == NULL) {
        return;
    }
    const uint32_t object = (c & 0x20) != 0;
    if (c & 2) {
        value_prefix(w);
        if (w->depth >= VW_JSONW_MAX_DEPTH) {
            fail(w, VW_ERR_ARG);
            return;
        }
        putc_(w, c);
        w->depth++;
        const uint32_t bit = 1u << w->depth;
        w->nonempty &= ~bit;
        w->objects = (w->objects & ~bit) | (object << w->depth);
        return;
    }
    if (w->depth == 0 || w->after_key || (uint32_t)in_object(w) != object) {
        fail(w, VW_ERR_ARG);
        return;
    }
    putc_(w, c);
    w->depth--;
}

void vw_jsonw_object_begin(vw_jsonw_t *w) { container(w, '{'); }
void vw_jsonw_object_end(vw_jsonw_t *w) { container(w, '}'); }
void vw_jsonw_array_begin(vw_jsonw_t *w) { container(w, '['); }
void vw_jsonw_array_end(vw_jsonw_t *w) { container(w, ']'); }

/* ----------------------------------------------------------------- strings */

static void put_string(vw_jsonw_t *w, const char *s, size_t len)
{
    putc_(w, '"');
    size_t run = 0; /* bytes that need no escape, written in one go */
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)s[i];
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
        /* \" and \\, or \u00XX for a control character */
        const unsigned lo = c & 15u;
        const char esc[6] = {'\\', c < 0x20 ? 'u' : (char)c, '0', '0', (char)('0' + (c >> 4)),
                             (char)(lo < 10u ? '0' + lo : 'a' - 10u + lo)};
        put(w, esc, c < 0x20 ? 6u : 2u);
    }
    put(w, s + len - run, run);
    putc_(w, '"');
}

void vw_jsonw_key(vw_jsonw_t *w, const char *key)
{
    if (w == NULL) {
        return;
    }
    if (key == NULL || w->after_key || !in_object(w)) {
        fail(w, VW_ERR_ARG);
        return;
    }
    comma(w);
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

/* One copy of a helper with several callers: code size counts more than a call here. */
#if defined(__GNUC__)
#define VW_NOINLINE __attribute__((noinline))
#else
#define VW_NOINLINE
#endif

/* Decimal digits of v, right-aligned ending at end; returns the first. */
static VW_NOINLINE char *digits_u64(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    return end;
}

/* An integer value: its magnitude, with a minus sign when neg. */
static VW_NOINLINE void put_integer(vw_jsonw_t *w, uint64_t magnitude, int neg)
{
    if (w == NULL) {
        return;
    }
    char text[21];
    char *first = digits_u64(magnitude, text + sizeof text);
    if (neg) {
        *--first = '-';
    }
    put_value(w, first, (size_t)(text + sizeof text - first));
}

void vw_jsonw_uint(vw_jsonw_t *w, uint64_t v) { put_integer(w, v, 0); }

void vw_jsonw_int(vw_jsonw_t *w, int64_t v)
{
    put_integer(w, v < 0 ? 0u - (uint64_t)v : (uint64_t)v, v < 0);
}

void vw_jsonw_bool(vw_jsonw_t *w, int v)
{
    if (w != NULL) {
        put_value(w, v ? "true" : "false", v ? 4u : 5u);
    }
}

/*
 * Nine digits q (10^8 <= q < 10^9) and p with |v| = q * 10^p rounded to nine digits
 * (half to even); v finite and non-zero. v is m * 2^e exactly (m < 2^24,
 * -149 <= e <= 104), so v / 10^p = m * 5^-p * 2^(e - p): vw_bignum_pow5 gives its
 * leading bits f exactly (with a sticky bit), v / 10^p = f * 2^-cut. The first guess
 * of p leaves nine digits before the point, or ten: then the value is divided by ten
 * in 64 bits rather than computed again.
 */
static uint32_t float_digits(uint32_t bits, int *p_out)
{
    uint32_t field = (bits >> 23) & 0xffu;
    uint32_t m = bits & 0x7fffffu;
    int e = -149;
    if (field != 0) {
        m |= 0x800000u;
        e = (int)field - 150;
    }
    int log2v = e - 1; /* floor(log2(v)) */
    for (uint32_t t = m; t != 0; t >>= 1) {
        log2v++;
    }
    /* floor(log10(2) * log2v): the leading digit's exponent, or one less (never more:
     * the tests hold both ends of every binade) */
    int p = (log2v * 30103 + 4500000) / 100000 - 45 - 8;
    uint64_t f;
    int32_t e2;
    (void)vw_bignum_pow5(m, -p, &f, &e2);
    unsigned cut = (unsigned)(63 - (e2 + e - p)); /* bits below the units */
    if ((f >> cut) >= 1000000000u) {
        /* f / 10 = (f / 2) / 5: the bit shifted out and the remainder go to the sticky
         * bit, which the division must not see (it is not a bit of the value) */
        const uint64_t half = f >> 1;
        f = half / 5u | (uint64_t)((f & 1u) != 0 || half % 5u != 0);
        p++;
    }
    uint32_t q = (uint32_t)vw_bignum_round(f, cut);
    if (q == 1000000000u) {
        q = 100000000u;
        p++;
    }
    *p_out = p;
    return q;
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
    int p;
    char d[9];
    int nd = 9;
    digits_u64(float_digits(bits, &p), d + 9);
    while (d[nd - 1] == '0') {
        nd--;
    }
    const int lead = p + 8; /* decimal exponent of the first digit */
    const int plain = lead >= -5 && lead < 9;
    /* Digits from decimal position `from` down to `to`, the point after position 0;
     * plain notation shows at least one digit after the point, "0" if need be. */
    const int first = plain ? lead : 0;
    int to = first - nd + 1;
    if (plain && to > -1) {
        to = -1;
    }
    for (int i = first < 0 ? 0 : first; i >= to; i--) {
        const int k = first - i;
        *o++ = k >= 0 && k < nd ? d[k] : '0';
        if (i == 0 && to < 0) {
            *o++ = '.';
        }
    }
    if (!plain) {
        *o++ = 'e';
        if (lead < 0) {
            *o++ = '-';
        }
        const int a = lead < 0 ? -lead : lead;
        if (a >= 10) {
            *o++ = (char)('0' + a / 10);
        }
        *o++ = (char)('0' + a % 10);
    }
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
    put_value(w, text, n);
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
