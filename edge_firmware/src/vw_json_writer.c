/* JSON writer of the device's payloads: see vw_json_writer.h. */
#include "vw_json_writer.h"

#include <stdarg.h>
#include <string.h>

#include "vw_bignum.h"
#include "vw_inline.h"

/* ------------------------------------------------------------------ buffer */

/* Every error is kept only if it is the first: after it, nothing the writer does is
 * seen (vw_jsonw_finish returns the error), so the code below need not stop early. */
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

void vw_jsonw_init(vw_jsonw_t *w, char *buf, size_t cap)
{
    if (w == NULL) {
        return;
    }
    w->buf = buf;
    w->cap = buf == NULL ? 0 : cap;
    w->len = 0;
    w->status = (buf == NULL && cap != 0) ? VW_ERR_ARG : VW_OK;
}

/* ----------------------------------------------------------------- strings */

static const char HEX[] = "0123456789abcdef";

/* A string value: printable ASCII but `"` and `\`, which need no escapes; else refused. */
static void put_string(vw_jsonw_t *w, const char *s, size_t len)
{
    if (s == NULL) {
        fail(w, VW_ERR_ARG);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\') {
            fail(w, VW_ERR_ARG);
            return;
        }
    }
    put(w, "\"", 1);
    put(w, s, len);
    put(w, "\"", 1);
}

/* A string value of the bytes in lowercase hex. */
static void put_hex(vw_jsonw_t *w, const uint8_t *bytes, size_t n)
{
    if (bytes == NULL && n != 0) {
        fail(w, VW_ERR_ARG);
        return;
    }
    put(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        const char pair[2] = {HEX[bytes[i] >> 4], HEX[bytes[i] & 15u]};
        put(w, pair, 2);
    }
    put(w, "\"", 1);
}

/* ----------------------------------------------------------------- numbers */

/* Decimal digits of v, right-aligned ending at end; returns the first. */
VW_OUTLINE char *digits_u64(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    return end;
}

/*
 * Nine digits q (10^8 <= q < 10^9) and p with |v| = q * 10^p rounded to nine digits
 * (half to even); v finite and non-zero. v is m * 2^e exactly (m < 2^24,
 * -149 <= e <= 104), so v / 10^p = m * 5^-p * 2^(e - p): vw_bignum_pow5 gives its
 * leading bits f exactly (with a sticky bit), v / 10^p = f * 2^-cut, rounded to q. The
 * first guess of p leaves nine digits before the point, or ten: with ten, or nine that
 * round up to ten (q = 10^9), q is computed again for p + 1.
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
    uint64_t q;
    for (;; p++) {
        uint64_t f;
        int32_t e2;
        (void)vw_bignum_pow5(m, -p, &f, &e2);
        q = vw_bignum_round(f, (unsigned)(63 - (e2 + e - p))); /* cut: bits below the units */
        if (q < 1000000000u) {
            break;
        }
    }
    *p_out = p;
    return (uint32_t)q;
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

/* ---------------------------------------------------------------- template */

void vw_jsonw_put(vw_jsonw_t *w, const char *template_, ...)
{
    if (w == NULL) {
        return;
    }
    if (template_ == NULL) {
        fail(w, VW_ERR_ARG);
        return;
    }
    va_list ap;
    va_start(ap, template_);
    const char *run = template_; /* text copied as it is, up to the next conversion */
    for (const char *c = template_; *c != '\0'; c++) {
        if (*c != '%') {
            continue;
        }
        put(w, run, (size_t)(c - run));
        run = c + 2;
        char text[21]; /* a uint64_t's digits, or a float's text */
        const char *first;
        size_t n;
        switch (*++c) {
        case 's':
        case 'S':
            first = va_arg(ap, const char *);
            n = *c == 'S' ? va_arg(ap, size_t) : first == NULL ? 0u : strlen(first);
            put_string(w, first, n);
            break;
        case 'x':
            first = (const char *)va_arg(ap, const uint8_t *);
            n = va_arg(ap, size_t);
            put_hex(w, (const uint8_t *)first, n);
            break;
        case 'u':
            first = digits_u64(va_arg(ap, uint64_t), text + sizeof text);
            put(w, first, (size_t)(text + sizeof text - first));
            break;
        case 'f':
            n = vw_jsonw_format_float(*va_arg(ap, const float *), text);
            if (n == 0) {
                fail(w, VW_ERR_INPUT);
            }
            put(w, text, n);
            break;
        default: /* an unknown conversion, or the template ends after its '%' */
            fail(w, VW_ERR_ARG);
            va_end(ap);
            return;
        }
    }
    put(w, run, strlen(run));
    va_end(ap);
}

vw_status_t vw_jsonw_finish(const vw_jsonw_t *w, size_t *len)
{
    if (w == NULL) {
        return VW_ERR_ARG;
    }
    if (w->status == VW_OK && len != NULL) {
        *len = w->len;
    }
    return w->status;
}
