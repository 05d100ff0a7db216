/* Strict, bounded JSON reader of the device's downlink payloads: see vw_json_reader.h.
 *
 * One walker, walk(), both checks a whole payload (vw_json_parse) and finds a member of
 * its top-level object (the getters, which walk the payload again): a getter reads
 * nothing the validator has not checked the same way. Positions are offsets into the
 * payload. Every scanner takes the payload's end and checks it before each read, so a
 * byte past the end is never touched; scanners return the offset after what they
 * scanned, or 0 when it is not valid (no valid token ends at offset 0). */
#include "vw_json_reader.h"

#include <string.h>

#include "vw_bignum.h"

/* A number literal of MAX_LITERAL characters or more is refused by the getters: below
 * that, its digit counts cannot overflow, and its exponent, capped above them, still
 * tells zero and overflow apart. */
#define MAX_LITERAL 100000000

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Skips whitespace from *p: the byte there, or 0 at the end (where a NUL byte is never
 * valid either). */
static char next(const char *s, size_t *p, size_t end)
{
    while (*p < end && (s[*p] == ' ' || s[*p] == '\t' || s[*p] == '\n' || s[*p] == '\r')) {
        ++*p;
    }
    return *p < end ? s[*p] : '\0';
}

/* ------------------------------------------------------------------ strings */

/* Where the unescaped bytes of a string go, one at a time: into out, compared with key,
 * or, with no text_t at all, nowhere. A NUL, a byte past the first cap - 1, or a byte
 * unlike the key's refuses the string: n is then cap, and stays so. */
typedef struct text {
    char *out;       /* NULL: not written */
    const char *key; /* NULL: not compared */
    size_t cap;      /* >= 1 */
    size_t n;        /* bytes so far */
} text_t;

static void put(text_t *t, unsigned c)
{
    if (c == 0 || t->n >= t->cap - 1u || (t->key != NULL && (unsigned char)t->key[t->n] != c)) {
        t->n = t->cap;
        return;
    }
    if (t->out != NULL) {
        t->out[t->n] = (char)c;
    }
    t->n++;
}

/* The continuation bytes of code point u in UTF-8 (its shortest form). */
__attribute__((noinline)) static unsigned utf8_more(uint32_t u)
{
    return (unsigned)(u >= 0x80) + (u >= 0x800) + (u >= 0x10000);
}

/* The escape \uXXXX at s[p] (p <= end) as a number, or NOT_U: another escape, not four
 * hex digits, or cut short. */
#define NOT_U UINT32_MAX
static uint32_t u_escape(const char *s, size_t p, size_t end)
{
    uint32_t v = 0;
    if (end - p < 6 || s[p] != '\\' || s[p + 1] != 'u') {
        return NOT_U;
    }
    for (size_t i = p + 2; i < p + 6; i++) {
        const char c = s[i], l = (char)(c | 0x20);
        unsigned x = (unsigned char)c - '0';
        if (x > 9) {
            x = (unsigned char)l - 'a';
            if (x > 5) {
                return NOT_U;
            }
            x += 10;
        }
        v = v * 16u + x;
    }
    return v;
}

/* A string at s[p] == '"': escapes, of a surrogate only as a high-low pair; UTF-8 in its
 * shortest form, with no surrogate and nothing above U+10FFFF (RFC 3629); no control
 * character. Each character, unescaped, is put to t (may be NULL) as UTF-8 again. */
static size_t scan_string(const char *s, size_t p, size_t end, text_t *t)
{
    /* The letters of the other escapes, then the characters they stand for. */
    static const char escapes[16] = {'"', '\\', '/', 'b',  'f',  'n',  'r',  't',
                                     '"', '\\', '/', '\b', '\f', '\n', '\r', '\t'};
    static const unsigned char lead[4] = {0x00, 0xC0, 0xE0, 0xF0};
    for (p++; p < end;) {
        const unsigned char c = (unsigned char)s[p];
        uint32_t u = c;
        if (c == '"') {
            return p + 1;
        }
        if (c == '\\') {
            u = u_escape(s, p, end);
            if (u != NOT_U) {
                p += 6;
                const uint32_t low = u >= 0xD800 && u <= 0xDBFF ? u_escape(s, p, end) : NOT_U;
                if (low >= 0xDC00 && low <= 0xDFFF) { /* a surrogate pair */
                    u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                    p += 6;
                }
            } else {
                const char *const hit = end - p >= 2 ? memchr(escapes, s[p + 1], 8) : NULL;
                if (hit == NULL) {
                    return 0;
                }
                u = (unsigned char)hit[8];
                p += 2;
            }
        } else if (c < 0x80) {
            if (c < 0x20) {
                return 0; /* a control character */
            }
            p++;
        } else {
            /* A lead byte 110xxxxx, 1110xxxx or 11110xxx, and 10xxxxxx bytes after it. */
            if (c < 0xC0 || c >= 0xF8) {
                return 0;
            }
            const unsigned more = 1u + (c >= 0xE0) + (c >= 0xF0);
            if (end - p <= more) {
                return 0;
            }
            u &= 0x7Fu >> more; /* the lead's x bits (the bit above them is 0) */
            for (unsigned i = 1; i <= more; i++) {
                const unsigned char b = (unsigned char)s[p + i];
                if ((b & 0xC0) != 0x80) {
                    return 0;
                }
                u = u << 6 | (b & 0x3Fu);
            }
            if (utf8_more(u) != more) {
                return 0; /* overlong */
            }
            p += more + 1;
        }
        if ((u >= 0xD800 && u <= 0xDFFF) || u > 0x10FFFF) {
            return 0; /* a surrogate (an escaped one not in a pair), or too big */
        }
        if (t != NULL) { /* u as UTF-8 again */
            unsigned more = utf8_more(u);
            put(t, lead[more] | (u >> (6u * more)));
            while (more-- > 0) {
                put(t, 0x80u | ((u >> (6u * more)) & 0x3Fu));
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ numbers */

/* A number read as w * 10^e10 (a little more when sticky): its first 19 significant
 * digits, and the decimal exponent of the last of them. */
typedef struct decimal {
    uint64_t w;
    int32_t e10;
    unsigned sticky;  /* a digit after the 19th is not zero */
    unsigned neg;     /* a minus sign */
    unsigned integer; /* no fraction, no exponent */
} decimal_t;

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at s[p] (p < end), read into *d; 0 when
 * there is no valid number there. d->e10 is 0 for a literal of MAX_LITERAL characters or
 * more, which the getters refuse. */
static size_t scan_number(const char *s, size_t p, size_t end, decimal_t *d)
{
    const size_t start = p;
    const unsigned neg = s[p] == '-';
    uint64_t w = 0;
    size_t digits = 0;       /* of the part being read */
    size_t up = 0, down = 0; /* digits past the 19th before the point, kept ones after it */
    uint32_t exp = 0;
    unsigned kept = 0, sticky = 0;
    int frac = 0, exp_sign = 0; /* exp_sign: 0 without an exponent, else 1 or -1 */
    p += (size_t)neg;
    if (end - p >= 2 && s[p] == '0' && is_digit(s[p + 1])) {
        return 0; /* a leading zero */
    }
    for (; p < end; p++) {
        const char c = s[p];
        if (c == '.' && !frac && digits != 0) {
            frac = 1;
            digits = 0;
            continue;
        }
        if (!is_digit(c)) {
            break;
        }
        digits++;
        if (kept < 19) {
            w = w * 10u + (unsigned)(c - '0');
            kept += w != 0;
            down += (size_t)frac;
        } else {
            up += (size_t)!frac;
            sticky |= c != '0';
        }
    }
    if (digits == 0) {
        return 0; /* no digit, or none after the point */
    }
    if (p < end && (s[p] | 0x20) == 'e') {
        exp_sign = 1;
        if (++p < end && (s[p] == '-' || s[p] == '+')) {
            exp_sign = s[p++] == '-' ? -1 : 1;
        }
        for (digits = 0; p < end && is_digit(s[p]); p++, digits++) {
            if (exp < MAX_LITERAL) { /* beyond this: zero or too large anyway */
                exp = exp * 10u + (unsigned)(s[p] - '0');
            }
        }
        if (digits == 0) {
            return 0;
        }
    }
    d->w = w;
    d->e10 = 0;
    if (p - start < MAX_LITERAL) { /* then none of these overflows */
        d->e10 = (int32_t)up - (int32_t)down + exp_sign * (int32_t)exp;
    }
    d->sticky = sticky;
    d->neg = neg;
    d->integer = !frac && !exp_sign;
    return p;
}

/* ------------------------------------------------------------------ the walker */

/* A string, number, true, false or null at s[p] (p < end). */
static size_t scan_scalar(const char *s, size_t p, size_t end)
{
    decimal_t d;
    const char c = s[p];
    if (c == '"') {
        return scan_string(s, p, end, NULL);
    }
    const char *word = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : NULL;
    if (word == NULL) {
        return scan_number(s, p, end, &d);
    }
    while (*word != '\0' && p < end && s[p] == *word) {
        p++;
        word++;
    }
    return *word == '\0' ? p : 0;
}

/* Checks the whole payload of doc (the rules of vw_json_reader.h, nesting at most
 * doc->max_depth deep, 1..32) without recursion: a bit stack says which of the open
 * containers are objects. With a key, *at is where the value of the top-level member of
 * that name starts (0: there is none). VW_OK; VW_ERR_JSON (not valid); VW_ERR_MESSAGE (the
 * key is there twice). */
static vw_status_t walk(const vw_json_doc_t *doc, const char *key, size_t *at)
{
    const char *const s = doc->buf;
    const size_t end = doc->len;
    uint32_t objects = 0; /* bit 0: the innermost open container is an object; bit 1: the
                             one around it, ... */
    unsigned depth = 0;
    size_t p = 0;
    *at = 0;
    if (next(s, &p, end) != '{') {
        return VW_ERR_JSON; /* empty, or a top level that is not an object */
    }
    for (;;) {
        /* At a value; in an object, at the member's key first. */
        int matched = 0;
        if (objects & 1u) {
            const int top = depth == 1 && key != NULL;
            text_t name = {NULL, key, SIZE_MAX, 0};
            if (next(s, &p, end) != '"' || (p = scan_string(s, p, end, top ? &name : NULL)) == 0 ||
                next(s, &p, end) != ':') {
                return VW_ERR_JSON;
            }
            p++;
            matched = top && name.n != name.cap && key[name.n] == '\0';
        }
        const char c = next(s, &p, end);
        if (matched) {
            if (*at != 0) {
                return VW_ERR_MESSAGE; /* the key is repeated */
            }
            *at = p;
        }
        if (c == '{' || c == '[') {
            if (depth == doc->max_depth) {
                return VW_ERR_JSON;
            }
            depth++;
            objects = objects << 1 | (c == '{');
            p++;
            if (next(s, &p, end) != c + 2) { /* '}' or ']' */
                continue; /* not empty: at its first member or element */
            }
        } else if (c == '\0' || (p = scan_scalar(s, p, end)) == 0) {
            return VW_ERR_JSON;
        }
        /* After a value: close containers until a comma starts the next value. */
        for (;;) {
            const char after = next(s, &p, end);
            if (depth == 0) {
                return p == end ? VW_OK : VW_ERR_JSON; /* something after the top level */
            }
            p++;
            if (after == ',') {
                break;
            }
            if (after != ((objects & 1u) ? '}' : ']')) {
                return VW_ERR_JSON; /* a wrong or missing bracket, or the end */
            }
            depth--;
            objects >>= 1;
        }
    }
}

vw_status_t vw_json_parse(vw_json_doc_t *doc, const char *buf, size_t len, unsigned max_depth)
{
    size_t at;
    if (doc == NULL) {
        return VW_ERR_ARG;
    }
    doc->buf = buf;
    doc->len = len;
    doc->max_depth = max_depth;
    vw_status_t status = VW_ERR_ARG;
    if ((buf != NULL || len == 0) && max_depth >= 1 && max_depth <= VW_JSON_MAX_DEPTH) {
        status = walk(doc, NULL, &at);
    }
    if (status != VW_OK) {
        doc->buf = NULL; /* not parsed: the getters refuse it */
    }
    return status;
}

/* ------------------------------------------------------------------ getters */

/* Where the value of top-level member @p key starts: *at = 0 when absent (and optional).
 * VW_ERR_ARG for a NULL doc, key or out (the getter's output), or a doc not parsed. A
 * walk that fails (only if the payload changed after vw_json_parse, against the
 * contract) is VW_ERR_MESSAGE too. */
static vw_status_t find(const vw_json_doc_t *doc, const char *key, const void *out, size_t *at,
                        int *found)
{
    if (doc == NULL || doc->buf == NULL || key == NULL || out == NULL) {
        return VW_ERR_ARG;
    }
    if (walk(doc, key, at) != VW_OK) {
        return VW_ERR_MESSAGE; /* the key is repeated (or the payload changed) */
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
    size_t at;
    if (out_size == 0) {
        return VW_ERR_ARG;
    }
    vw_status_t status = find(doc, key, out, &at, found);
    if (status == VW_OK && at != 0) {
        text_t value = {out, NULL, out_size, 0};
        if (doc->buf[at] != '"' || scan_string(doc->buf, at, doc->len, &value) == 0 ||
            value.n == out_size) {
            status = VW_ERR_MESSAGE; /* not a string, \u0000, longer than the buffer */
        } else {
            out[value.n] = '\0';
            if (out_len != NULL) {
                *out_len = value.n;
            }
        }
    }
    if (status == VW_ERR_MESSAGE) {
        out[0] = '\0';
    }
    return status;
}

vw_status_t vw_json_get_bool(const vw_json_doc_t *doc, const char *key, int *out, int *found)
{
    size_t at;
    vw_status_t status = find(doc, key, out, &at, found);
    if (status != VW_OK || at == 0) {
        return status;
    }
    const char c = doc->buf[at];
    if (c != 't' && c != 'f') {
        return VW_ERR_MESSAGE;
    }
    *out = c == 't';
    return VW_OK;
}

/* find(), then the number there: VW_ERR_MESSAGE when it is not a number or its literal
 * is too long; *at = 0 when the member is absent (and optional). */
static vw_status_t find_number(const vw_json_doc_t *doc, const char *key, const void *out,
                               size_t *at, int *found, decimal_t *d)
{
    vw_status_t status = find(doc, key, out, at, found);
    if (status != VW_OK || *at == 0) {
        return status;
    }
    const size_t q = scan_number(doc->buf, *at, doc->len, d);
    return q != 0 && q - *at < MAX_LITERAL ? VW_OK : VW_ERR_MESSAGE;
}

vw_status_t vw_json_get_int(const vw_json_doc_t *doc, const char *key, int64_t min,
                            int64_t max, int64_t *out, int *found)
{
    size_t at;
    decimal_t d;
    int64_t v;
    if (min > max) {
        return VW_ERR_ARG;
    }
    vw_status_t status = find_number(doc, key, out, &at, found, &d);
    if (status != VW_OK || at == 0) {
        return status;
    }
    /* An integer of more than 19 digits (e10 > 0) is beyond int64 anyway. */
    if (!d.integer || d.e10 != 0 || d.w > (uint64_t)INT64_MAX + (uint64_t)d.neg) {
        return VW_ERR_MESSAGE;
    }
    const uint64_t bits = d.neg ? 0u - d.w : d.w; /* two's complement */
    memcpy(&v, &bits, sizeof v);
    if (v < min || v > max) {
        return VW_ERR_MESSAGE;
    }
    *out = v;
    return VW_OK;
}

/* Decimal to double, correctly rounded: w * 10^e10 is w * 5^e10 * 2^e10, whose 64
 * leading bits (and a sticky bit) vw_bignum_pow5 gives exactly; then one rounding to
 * nearest, ties to even, subnormals included. The rounded significand is added to the
 * biased exponent field less one, so that its leading bit makes up the one, and a
 * carry out of it (rounding up to a power of two, or a subnormal up to the smallest
 * normal) moves the exponent up. */
vw_status_t vw_json_get_number(const vw_json_doc_t *doc, const char *key, double *out,
                               int *found)
{
    size_t at;
    decimal_t d;
    uint64_t m, bits = 0;
    int32_t e;
    vw_status_t status = find_number(doc, key, out, &at, found, &d);
    if (status != VW_OK || at == 0) {
        return status;
    }
    if (vw_bignum_pow5(d.w, d.e10, &m, &e)) {
        /* The value is m * 2^(e + e10 - 63): the exponent field of its leading bit, less
         * one, and the bits of m below the 53 of a normal double (more if subnormal). */
        int32_t field = e + d.e10 + 1022, cut = 11;
        if (field < 0) {
            cut -= field;
            field = 0;
        }
        if (cut <= 64) { /* else below half the least subnormal: zero */
            /* the sticky digits are below the rounding bit: they only break ties */
            bits = ((uint64_t)field << 52) + vw_bignum_round(m | (uint64_t)d.sticky, (unsigned)cut);
        }
        if (bits >= UINT64_C(0x7FF) << 52) {
            return VW_ERR_MESSAGE; /* beyond the largest double */
        }
    } else if (d.w != 0 && d.e10 > 0) {
        return VW_ERR_MESSAGE; /* beyond the largest double, whatever the digits */
    }
    bits |= (uint64_t)d.neg << 63; /* 0, -0, or an underflow when nothing else */
    memcpy(out, &bits, sizeof bits);
    return VW_OK;
}
