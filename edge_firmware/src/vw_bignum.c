/* Exact scaling by powers of five: see vw_bignum.h.
 *
 * w * 5^e5 is the quotient a / d of two big integers: a = w * 5^e5 and d = 1 when
 * e5 >= 0, a = w and d = 5^-e5 when e5 < 0. Long division gives its 64 leading bits.
 * Bounds: w < 2^64 and 5^310 < 2^720 make a at most 784 bits; 5^343 < 2^797 makes d
 * at most 797 bits, and a, kept below 2d, at most 798: 25 words of 32 bits.
 *
 * Both numbers are little-endian arrays of 32-bit words, handled over the same count of
 * n words: as many as the longer one has; the words above those in use are zero. */
#include "vw_bignum.h"

#include "vw_inline.h"

#define WORDS 27u

/* x *= k over n words (the bounds above say it fits): the word count after. */
static unsigned mul(uint32_t *x, unsigned n, uint32_t k)
{
    uint64_t carry = 0;
    for (unsigned i = 0; i < n; i++) {
        carry += (uint64_t)x[i] * k;
        x[i] = (uint32_t)carry;
        carry >>= 32;
    }
    x[n] = (uint32_t)carry;
    return n + (carry != 0);
}

/* The number of bits of x (not zero). */
VW_INLINE int32_t bit_length(const uint32_t *x, unsigned n)
{
    while (x[n - 1u] == 0) {
        n--;
    }
    int32_t len = 32 * (int32_t)(n - 1u);
    for (uint32_t top = x[n - 1u]; top != 0; top >>= 1) {
        len++;
    }
    return len;
}

/* Whether a < b. */
static int less(const uint32_t *a, const uint32_t *b, unsigned n)
{
    while (n-- > 0) {
        if (a[n] != b[n]) {
            return a[n] < b[n];
        }
    }
    return 0;
}

int vw_bignum_pow5(uint64_t w, int32_t e5, uint64_t *m, int32_t *e2)
{
    uint32_t words[2][WORDS] = {{0}};
    uint32_t *const a = words[0], *const d = words[1];
    uint64_t bits = 0;
    unsigned n = w >> 32 != 0 ? 2u : 1u;
    if (w == 0 || e5 < VW_BIGNUM_MIN_E5 || e5 > VW_BIGNUM_MAX_E5) {
        return 0;
    }
    a[0] = (uint32_t)w;
    a[1] = (uint32_t)(w >> 32);
    d[0] = 1u;
    /* 5^13 is the largest power of five in 32 bits */
    for (int32_t i = e5 < 0 ? -e5 : e5; i > 0; i -= 13) {
        uint32_t k = 1u;
        for (int32_t j = i < 13 ? i : 13; j > 0; j--) {
            k *= 5u;
        }
        n = mul(e5 < 0 ? d : a, n, k);
    }
    /* Bring a into (d / 2, 2d): double the shorter, up to 31 times at once, until both
     * have the same length. */
    int32_t shift = bit_length(d, n) - bit_length(a, n); /* a doubled more than d */
    uint32_t *const shorter = shift > 0 ? a : d;
    for (int32_t gap = shift > 0 ? shift : -shift; gap > 0; gap -= 31) {
        n = mul(shorter, n, 1u << (gap < 31 ? gap : 31));
    }
    /* Quotient bits until the first one set reaches bit 63: 64 bits, or 65 when a < d
     * (a first 0, and a doubled once more). a stays below 2d, so doubling it fits; once
     * a is zero, every bit left is zero. */
    uint32_t rest = 1; /* not zero while a is not: a only changes to zero where a -= d */
    for (shift -= 64; (bits >> 63) == 0; shift++) { /* shift: plus the bits past 64 */
        bits <<= 1;
        if (rest == 0) {
            continue;
        }
        if (!less(a, d, n)) { /* a -= d */
            uint32_t borrow = 0;
            rest = 0;
            for (unsigned k = 0; k < n; k++) {
                const uint64_t diff = (uint64_t)a[k] - d[k] - borrow;
                a[k] = (uint32_t)diff;
                borrow = (uint32_t)(diff >> 63);
                rest |= a[k];
            }
            bits |= 1u;
        }
        n = mul(a, n, 2u);
    }
    *m = bits | (uint64_t)(rest != 0); /* the sticky bit: a remainder */
    *e2 = -shift;
    return 1;
}

uint64_t vw_bignum_round(uint64_t m, unsigned cut)
{
    const uint64_t q = (m >> 1) >> (cut - 1u); /* cut may be 64 */
    const uint64_t rest = m << (64u - cut), half = UINT64_C(1) << 63;
    /* above half, or exactly half and q odd (ties to even); bit 0 of half is clear */
    return q + (uint64_t)((rest | (q & 1u)) > half);
}
