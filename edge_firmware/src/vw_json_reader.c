/* Strict, bounded JSON reader of the device's downlink payloads: see vw_json_reader.h.
 *
 * Positions are offsets into the payload. Every scanner takes the payload's end and
 * checks it before each read, so a byte past the end is never touched. The scanners
 * of vw_json_parse return the offset after what they scanned, or 0 when it is not
 * valid (no valid token ends at offset 0). The getters walk a payload that was
 * validated, with simpler scanners that are still bounded by the end. */
#include "vw_json_reader.h"

#include <string.h>

#include "vw_bignum.h"

/* ------------------------------------------------------------------ scanners */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static size_t skip_ws(const char *s, size_t p, size_t end)
{
    while (p < end && is_ws(s[p])) {
        p++;
    }
    return p;
}

static size_t skip_digits(const char *s, size_t p, size_t end)
{
    while (p < end && is_digit(s[p])) {
        p++;
    }
    return p;
}

/* The four hex digits at s[p..p+3] as a number, or -1. */
static long hex4(const char *s, size_t p, size_t end)
{
    long v = 0;
    if (p >= end || end - p < 4) {
        return -1;
    }
    for (size_t i = p; i < p + 4; i++) {
        const char c = s[i];
        const char l = (char)(c | 0x20);
        if (is_digit(c)) {
            v = v * 16 + (c - '0');
        } else if (l >= 'a' && l <= 'f') {
            v = v * 16 + (l - 'a' + 10);
        } else {
            return -1;
        }
    }
    return v;
}

/* A string at s[p] == '"': escapes, UTF-8 (RFC 3629: no overlong form, no surrogate,
 * nothing above U+10FFFF) and no control character. */
static size_t scan_string(const char *s, size_t p, size_t end)
{
    p++;
    while (p < end) {
        const unsigned char c = (unsigned char)s[p];
        if (c == '"') {
            return p + 1;
        }
        if (c < 0x20) {
            return 0;
        }
        if (c == '\\') {
            if (end - p < 2) {
                return 0;
            }
            const char e = s[p + 1];
            if (e == 'u') {
                const long u = hex4(s, p + 2, end);
                p += 6;
                if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF)) {
                    return 0; /* not hex, or a low surrogate first */
                }
                if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate: its low half follows */
                    if (end - p < 2 || s[p] != '\\' || s[p + 1] != 'u') {
                        return 0;
                    }
                    const long low = hex4(s, p + 2, end);
                    if (low < 0xDC00 || low > 0xDFFF) {
                        return 0;
                    }
                    p += 6;
                }
            } else if (e != '\0' && memchr("\"\\/bfnrt", e, 8) != NULL) {
                p += 2;
            } else {
                return 0;
            }
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        /* A lead byte, the number of continuation bytes, and the range of the first one. */
        size_t more;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80; /* E0 80..9F: overlong */
            hi = c == 0xED ? 0x9F : 0xBF; /* ED A0..BF: surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            lo = c == 0xF0 ? 0x90 : 0x80; /* F0 80..8F: overlong */
            hi = c == 0xF4 ? 0x8F : 0xBF; /* F4 90..: above U+10FFFF */
        } else {
            return 0; /* continuation byte, C0/C1 (overlong), F5..FF */
        }
        if (end - p <= more) {
            return 0;
        }
        for (size_t i = 1; i <= more; i++) {
            const unsigned char t = (unsigned char)s[p + i];
            if (t < lo || t > hi) {
                return 0;
            }
            lo = 0x80;
            hi = 0xBF;
        }
        p += more + 1;
    }
    return 0;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at s[p], which is '-' or a digit. */
static size_t scan_number(const char *s, size_t p, size_t end)
{
    size_t q;
    if (s[p] == '-') {
        p++;
    }
    if (p < end && s[p] == '0') {
        p++;
    } else {
        q = skip_digits(s, p, end);
        if (q == p) {
            return 0;
        }
        p = q;
    }
    if (p < end && s[p] == '.') {
        q = skip_digits(s, p + 1, end);
        if (q == p + 1) {
            return 0;
        }
        p = q;
    }
    if (p < end && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < end && (s[p] == '+' || s[p] == '-')) {
            p++;
        }
        q = skip_digits(s, p, end);
        if (q == p) {
            return 0;
        }
        p = q;
    }
    return p;
}

/* A string, number, true, false or null at s[p] (p < end). */
static size_t scan_scalar(const char *s, size_t p, size_t end)
{
    static const char *const words[3] = {"true", "false", "null"};
    const char c = s[p];
    if (c == '"') {
        return scan_string(s, p, end);
    }
    if (c == '-' || is_digit(c)) {
        return scan_number(s, p, end);
    }
    for (unsigned i = 0; i < 3; i++) {
        const size_t n = strlen(words[i]);
        if (end - p >= n && memcmp(s + p, words[i], n) == 0) {
            return p + n;
        }
    }
    return 0;
}

/* A member's key and its colon, whitespace before each: the offset after the colon. */
static size_t scan_key(const char *s, size_t p, size_t end)
{
    p = skip_ws(s, p, end);
    if (p >= end || s[p] != '"') {
        return 0;
    }
    p = scan_string(s, p, end);
    if (p == 0) {
        return 0;
    }
    p = skip_ws(s, p, end);
    if (p >= end || s[p] != ':') {
        return 0;
    }
    return p + 1;
}

/* One value at s[p] (whitespace before it allowed), containers nested at most max_depth
 * deep (1..32), checked without recursion: a bit stack says which containers are objects. */
static size_t scan_value(const char *s, size_t p, size_t end, unsigned max_depth)
{
    uint32_t objects = 0; /* bit d: the container at depth d + 1 is an object */
    unsigned depth = 0;
    for (;;) {
        /* At a value. */
        p = skip_ws(s, p, end);
        if (p >= end) {
            return 0;
        }
        const char open = s[p];
        if (open == '{' || open == '[') {
            if (depth == max_depth) {
                return 0;
            }
            objects = open == '{' ? objects | (1u << depth) : objects & ~(1u << depth);
            depth++;
            p = skip_ws(s, p + 1, end);
            if (p < end && s[p] == (open == '{' ? '}' : ']')) {
                p++;
                depth--; /* empty: the value is complete */
            } else {
                if (open == '{') {
                    p = scan_key(s, p, end);
                    if (p == 0) {
                        return 0;
                    }
                }
                continue;
            }
        } else {
            p = scan_scalar(s, p, end);
            if (p == 0) {
                return 0;
            }
        }
        /* After a value: close containers until a comma starts the next value. */
        for (;;) {
            if (depth == 0) {
                return p;
            }
            p = skip_ws(s, p, end);
            if (p >= end) {
                return 0;
            }
            const int in_object = (int)((objects >> (depth - 1)) & 1u);
            const char c = s[p++];
            if (c == ',') {
                if (in_object) {
                    p = scan_key(s, p, end);
                    if (p == 0) {
                        return 0;
                    }
                }
                break;
            }
            if (c != (in_object ? '}' : ']')) {
                return 0;
            }
            depth--;
        }
    }
}

vw_status_t vw_json_parse(vw_json_doc_t *doc, const char *buf, size_t len, unsigned max_depth)
{
    if (doc == NULL) {
        return VW_ERR_ARG;
    }
    memset(doc, 0, sizeof *doc);
    if ((buf == NULL && len != 0) || max_depth < 1 || max_depth > VW_JSON_MAX_DEPTH) {
        return VW_ERR_ARG;
    }
    const size_t p = skip_ws(buf, 0, len);
    if (p >= len || buf[p] != '{') {
        return VW_ERR_JSON; /* empty, or a top level that is not an object */
    }
    const size_t q = scan_value(buf, p, len, max_depth);
    if (q == 0 || skip_ws(buf, q, len) != len) {
        return VW_ERR_JSON; /* invalid, or something after the top-level object */
    }
    doc->buf = buf;
    doc->len = len;
    doc->first = skip_ws(buf, p + 1, len);
    return VW_OK;
}

/* ------------------------------------------------------------------ lookups */

/* The getters walk a validated document with the same scanners, which cannot fail
 * there; if one does (a payload changed after vw_json_parse, against the contract),
 * the walk stops, and nothing is read out of bounds either way. */

/* The unit of a validated string at s[*p] (a byte, or an escape) as 1..4 bytes of UTF-8. */
static size_t string_unit(const char *s, size_t *p, size_t end, unsigned char out[4])
{
    const size_t at = *p;
    if (s[at] != '\\' || end - at < 2) {
        out[0] = (unsigned char)s[at];
        *p = at + 1;
        return 1;
    }
    const char e = s[at + 1];
    if (e != 'u') {
        const char *const in = "bfnrt", *const as = "\b\f\n\r\t";
        const char *const hit = memchr(in, e, 5);
        out[0] = (unsigned char)(hit != NULL ? as[hit - in] : e);
        *p = at + 2;
        return 1;
    }
    uint32_t u = (uint32_t)hex4(s, at + 2, end);
    *p = at + 6;
    if (u >= 0xD800 && u <= 0xDBFF) {
        u = 0x10000 + ((u - 0xD800) << 10) + ((uint32_t)hex4(s, at + 8, end) - 0xDC00);
        *p = at + 12;
    }
    if (u < 0x80) {
        out[0] = (unsigned char)u;
        return 1;
    }
    size_t n = u < 0x800 ? 2 : u < 0x10000 ? 3 : 4;
    static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = n - 1; i > 0; i--) {
        out[i] = (unsigned char)(0x80 | (u & 0x3F));
        u >>= 6;
    }
    out[0] = (unsigned char)(lead[n] | u);
    return n;
}

/* Whether the (validated) string at s[p] == '"' is @p key once unescaped. */
static int key_equals(const char *s, size_t p, size_t end, const char *key)
{
    unsigned char u[4];
    for (p++; p < end && s[p] != '"';) {
        const size_t n = string_unit(s, &p, end, u);
        for (size_t i = 0; i < n; i++, key++) {
            if (*key == '\0' || (unsigned char)*key != u[i]) {
                return 0;
            }
        }
    }
    return *key == '\0';
}

/* Where the value of top-level member @p key starts: *at = 0 when absent (and optional). */
static vw_status_t find(const vw_json_doc_t *doc, const char *key, size_t *at, int *found)
{
    if (doc == NULL || doc->buf == NULL || key == NULL) {
        return VW_ERR_ARG;
    }
    const char *const s = doc->buf;
    const size_t end = doc->len;
    size_t p = doc->first;
    *at = 0;
    while (p < end && s[p] == '"') {
        const size_t name = p;
        p = scan_key(s, p, end);
        if (p == 0) {
            break;
        }
        p = skip_ws(s, p, end);
        if (key_equals(s, name, end, key)) {
            if (*at != 0) {
                return VW_ERR_MESSAGE; /* the key is repeated */
            }
            *at = p;
        }
        p = scan_value(s, p, end, VW_JSON_MAX_DEPTH);
        if (p == 0) {
            break;
        }
        p = skip_ws(s, p, end);
        if (p >= end || s[p] != ',') {
            break;
        }
        p = skip_ws(s, p + 1, end);
    }
    if (found != NULL) {
        *found = *at != 0;
    } else if (*at == 0) {
        return VW_ERR_MESSAGE; /* required */
    }
    return VW_OK;
}

vw_status_t vw_json_get_string(const vw_json_doc_t *doc, const char *key, char *out,
                               size_t out_size, size_t *out_len, int *found)
{
    size_t p, n = 0;
    if (out == NULL || out_size == 0) {
        return VW_ERR_ARG;
    }
    vw_status_t status = find(doc, key, &p, found);
    if (status != VW_OK || p == 0) {
        if (status == VW_ERR_MESSAGE) {
            out[0] = '\0';
        }
        return status;
    }
    const char *const s = doc->buf;
    const size_t end = doc->len;
    unsigned char u[4];
    if (s[p] != '"') {
        out[0] = '\0';
        return VW_ERR_MESSAGE;
    }
    for (p++; p < end && s[p] != '"';) {
        const size_t k = string_unit(s, &p, end, u);
        for (size_t i = 0; i < k; i++) {
            if (u[i] == 0 || n + 1 >= out_size) {
                out[0] = '\0'; /* \u0000, or longer than the caller's buffer */
                return VW_ERR_MESSAGE;
            }
            out[n++] = (char)u[i];
        }
    }
    out[n] = '\0';
    if (out_len != NULL) {
        *out_len = n;
    }
    return VW_OK;
}

vw_status_t vw_json_get_bool(const vw_json_doc_t *doc, const char *key, int *out, int *found)
{
    size_t p;
    if (out == NULL) {
        return VW_ERR_ARG;
    }
    vw_status_t status = find(doc, key, &p, found);
    if (status != VW_OK || p == 0) {
        return status;
    }
    if (doc->buf[p] != 't' && doc->buf[p] != 'f') {
        return VW_ERR_MESSAGE;
    }
    *out = doc->buf[p] == 't';
    return VW_OK;
}

/* ------------------------------------------------------------------ numbers */

/* A number member is read as w * 10^e10 (+ a little more when sticky): its first 19
 * significant digits, and the decimal exponent of the last of them. Beyond
 * [MIN_EXP10, MAX_EXP10] the value is zero or too large whatever the digits are; a
 * literal of MAX_LITERAL characters or more is refused: below that, the digit counts
 * cannot overflow, and the exponent, capped above them, still tells zero and overflow
 * apart. */
#define MAX_EXP10 VW_BIGNUM_MAX_E5
#define MIN_EXP10 VW_BIGNUM_MIN_E5
#define MAX_LITERAL 100000000

typedef struct decimal {
    uint64_t w;     /* its first 19 significant digits */
    int32_t e10;    /* the decimal exponent of w's last digit */
    int sticky;     /* a digit after the 19th is not zero */
    int neg;        /* a minus sign */
    int integer;    /* no fraction, no exponent */
} decimal_t;

/* find(), then the number there: VW_ERR_MESSAGE when it is not a number or too long;
 * *at = 0 when the member is absent (and optional). */
static vw_status_t find_decimal(const vw_json_doc_t *doc, const char *key, size_t *at,
                                int *found, decimal_t *d)
{
    vw_status_t status = find(doc, key, at, found);
    if (status != VW_OK || *at == 0) {
        return status;
    }
    const char *const s = doc->buf;
    size_t p = *at, end = doc->len;
    uint64_t w = 0;
    int32_t e10 = 0;
    unsigned kept = 0;
    int frac = 0, sticky = 0, exp_neg = 0;
    if (end - p > MAX_LITERAL) {
        end = p + MAX_LITERAL;
    }
    d->neg = s[p] == '-';
    p += (size_t)d->neg;
    if (p >= end || !is_digit(s[p])) {
        return VW_ERR_MESSAGE;
    }
    for (; p < end && (is_digit(s[p]) || s[p] == '.'); p++) {
        if (s[p] == '.') {
            frac = 1;
        } else if (kept < 19) {
            w = w * 10u + (unsigned)(s[p] - '0');
            kept += w != 0;
            e10 -= frac;
        } else {
            e10 += !frac;
            sticky |= s[p] != '0';
        }
    }
    d->integer = !frac;
    if (p < end && (s[p] | 0x20) == 'e') {
        int32_t exp = 0;
        d->integer = 0;
        if (++p < end && (s[p] == '-' || s[p] == '+')) {
            exp_neg = s[p++] == '-';
        }
        for (; p < end && is_digit(s[p]); p++) {
            if (exp < MAX_LITERAL) { /* beyond this: zero or too large anyway */
                exp = exp * 10 + (s[p] - '0');
            }
        }
        e10 += exp_neg ? -exp : exp;
    }
    d->w = w;
    d->e10 = e10;
    d->sticky = sticky;
    return p - *at < MAX_LITERAL ? VW_OK : VW_ERR_MESSAGE;
}

vw_status_t vw_json_get_int(const vw_json_doc_t *doc, const char *key, int64_t min,
                            int64_t max, int64_t *out, int *found)
{
    size_t p;
    decimal_t d;
    if (out == NULL || min > max) {
        return VW_ERR_ARG;
    }
    vw_status_t status = find_decimal(doc, key, &p, found, &d);
    if (status != VW_OK || p == 0) {
        return status;
    }
    /* An integer of more than 19 digits (e10 > 0) is beyond int64 anyway. */
    if (!d.integer || d.e10 != 0 || d.w > (uint64_t)INT64_MAX + (uint64_t)d.neg) {
        return VW_ERR_MESSAGE;
    }
    const int64_t v = !d.neg ? (int64_t)d.w : d.w == 0 ? 0 : -(int64_t)(d.w - 1u) - 1;
    if (v < min || v > max) {
        return VW_ERR_MESSAGE;
    }
    *out = v;
    return VW_OK;
}

/* Decimal to double, correctly rounded: w * 10^e10 is w * 5^e10 * 2^e10, whose 64
 * leading bits (and a sticky bit) vw_bignum_pow5 gives exactly; then one rounding to
 * nearest, ties to even, subnormals included. */
vw_status_t vw_json_get_number(const vw_json_doc_t *doc, const char *key, double *out,
                               int *found)
{
    size_t p;
    decimal_t d;
    uint64_t m = 0;
    int32_t e = 0;
    if (out == NULL) {
        return VW_ERR_ARG;
    }
    vw_status_t status = find_decimal(doc, key, &p, found, &d);
    if (status != VW_OK || p == 0) {
        return status;
    }
    uint64_t bits = (uint64_t)d.neg << 63; /* 0, -0, or an underflow */
    if (d.w != 0 && d.e10 > MAX_EXP10) {
        return VW_ERR_MESSAGE; /* beyond the largest double */
    }
    if (d.w != 0 && d.e10 >= MIN_EXP10) {
        (void)vw_bignum_pow5(d.w, d.e10, &m, &e);
        m |= (uint64_t)d.sticky; /* below the rounding bit: only breaks ties */
        e += d.e10;              /* exponent of m's leading bit */
        int32_t cut = 11;        /* bits of m below the 53 of a normal double */
        if (e < -1022) {         /* subnormal: fewer bits */
            cut += -1022 - e;
            e = -1022;
        }
        uint64_t mant = cut > 64 ? 0u : vw_bignum_round(m, (unsigned)cut);
        if (mant >> 53) { /* rounded up to the next power of two */
            mant >>= 1;
            e++;
        }
        const uint64_t biased = (mant >> 52) ? (uint64_t)(e + 1023) : 0u;
        if (biased >= 2047u) {
            return VW_ERR_MESSAGE; /* beyond the largest double */
        }
        bits |= (biased << 52) | (mant & 0xFFFFFFFFFFFFFu);
    }
    memcpy(out, &bits, sizeof bits);
    return VW_OK;
}
