/* Exact scaling by powers of five: see vw_bignum.h.
 *
 * w * 5^e5 is the quotient a / d of two big integers: a = w * 5^e5 and d = 1 when
 * e5 >= 0, a = w and d = 5^-e5 when e5 < 0. Long division gives its 64 leading bits.
 * Bounds: w < 2^64 and 5^310 < 2^720 make a at most 784 bits; 5^343 < 2^797 makes d
 * at most 797 bits, and a, kept below 2d, at most 798: 25 words of 32 bits. */
#include "vw_bignum.h"

#define WORDS 27u

typedef struct big {
    uint32_t w[WORDS]; /* little endian */
    unsigned n;        /* words in use; w[n - 1] != 0 */
} big_t;

/* b *= k (the bounds above say it fits). */
static void mul(big_t *b, uint32_t k)
{
    uint64_t carry = 0;
    for (unsigned i = 0; i < b->n; i++) {
        carry += (uint64_t)b->w[i] * k;
        b->w[i] = (uint32_t)carry;
        carry >>= 32;
    }
    if (carry != 0) {
        b->w[b->n++] = (uint32_t)carry;
    }
}

static int32_t bit_length(const big_t *b)
{
    int32_t len = 32 * (int32_t)(b->n - 1u);
    for (uint32_t top = b->w[b->n - 1u]; top != 0; top >>= 1) {
        len++;
    }
    return len;
}

static int cmp(const big_t *a, const big_t *b)
{
    if (a->n != b->n) {
        return a->n < b->n ? -1 : 1;
    }
    for (unsigned i = a->n; i-- > 0;) {
        if (a->w[i] != b->w[i]) {
            return a->w[i] < b->w[i] ? -1 : 1;
        }
    }
    return 0;
}

/* a -= b, for a >= b. */
static void sub(big_t *a, const big_t *b)
{
    uint32_t borrow = 0;
    for (unsigned i = 0; i < a->n; i++) {
        const uint64_t diff = (uint64_t)a->w[i] - (i < b->n ? b->w[i] : 0u) - borrow;
        a->w[i] = (uint32_t)diff;
        borrow = (uint32_t)(diff >> 63);
    }
    while (a->n > 0 && a->w[a->n - 1] == 0) {
        a->n--;
    }
}

int vw_bignum_pow5(uint64_t w, int32_t e5, uint64_t *m, int32_t *e2)
{
    big_t a, d;
    uint64_t bits = 0;
    if (w == 0 || e5 < VW_BIGNUM_MIN_E5 || e5 > VW_BIGNUM_MAX_E5) {
        return 0;
    }
    a.w[0] = (uint32_t)w;
    a.w[1] = (uint32_t)(w >> 32);
    a.n = a.w[1] != 0 ? 2u : 1u;
    d.w[0] = 1u;
    d.n = 1u;
    /* 5^13 is the largest power of five in 32 bits */
    for (int32_t i = e5 < 0 ? -e5 : e5; i > 0; i -= 13) {
        uint32_t k = 1u;
        for (int32_t j = i < 13 ? i : 13; j > 0; j--) {
            k *= 5u;
        }
        mul(e5 < 0 ? &d : &a, k);
    }
    /* Bring a into [d, 2d): double the shorter, up to 31 times at once, until both have
     * the same length, then a once more if it is below d. */
    int32_t shift = 0; /* a has been doubled this many times more than d */
    for (int32_t gap; (gap = bit_length(&d) - bit_length(&a)) != 0;) {
        const int32_t step = gap > 31 ? 31 : gap < -31 ? -31 : gap;
        mul(step > 0 ? &a : &d, 1u << (step > 0 ? step : -step));
        shift += step;
    }
    if (cmp(&a, &d) < 0) {
        mul(&a, 2u);
        shift++;
    }
    /* 64 quotient bits, the first one set; a stays below 2d, so doubling it fits. */
    for (unsigned i = 0; i < 64; i++) {
        bits <<= 1;
        if (cmp(&a, &d) >= 0) {
            sub(&a, &d);
            bits |= 1u;
        }
        mul(&a, 2u);
    }
    *m = bits | (uint64_t)(a.n != 0);
    *e2 = -shift;
    return 1;
}

uint64_t vw_bignum_round(uint64_t m, unsigned cut)
{
    const uint64_t q = (m >> 1) >> (cut - 1u); /* cut may be 64 */
    const uint64_t rest = m << (64u - cut), half = UINT64_C(1) << 63;
    return q + (uint64_t)(rest > half || (rest == half && (q & 1u)));
}
