/**
 * @file vw_bignum.h
 * @brief Exact scaling by powers of five with big integers on the stack: the one
 *        big-integer routine of the JSON writer (float32 to nine decimal digits) and
 *        the JSON reader (decimal to double).
 *
 * A decimal value w * 10^e is w * 5^e * 2^e: the power of two only moves the binary
 * exponent, so both conversions come down to the leading bits of w * 5^e, which may
 * be a fraction (e < 0). vw_bignum_pow5() gives 64 of them exactly, with a sticky bit
 * for everything below, and vw_bignum_round() rounds them at any bit. No floating-point
 * arithmetic (software on a Cortex-M4, and it would differ between builds), no heap.
 */
#ifndef VW_BIGNUM_H
#define VW_BIGNUM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Smallest power of five vw_bignum_pow5() takes: 10^-343 is below half the least double. */
#define VW_BIGNUM_MIN_E5 (-343)
/** Largest power of five: 10^310 is beyond the largest double whatever the digits. */
#define VW_BIGNUM_MAX_E5 310

/**
 * @brief The 64 leading bits of w * 5^e5, rounded toward zero, with a sticky bit.
 *
 * Long division of two big integers (w * 5^e5, or w over 5^-e5) of at most 27 words of
 * 32 bits: about 230 bytes of stack. Time grows with |e5|: on a Cortex-M4 1,300 to
 * 8,500 instructions for |e5| up to 30, 31,000 to 40,000 at the ends of the range.
 * @param w  > 0
 * @param e5 VW_BIGNUM_MIN_E5..VW_BIGNUM_MAX_E5
 * @param m  output: the bits, bit 63 set; bit 0 is also set when anything below the
 *           64 bits is not zero, so that m rounds like the exact value at any bit above it
 * @param e2 output: the exponent of the first bit: w * 5^e5 = m * 2^(*e2 - 63), bits
 *           below bit 0 aside
 * @return 1; 0 for w == 0 or e5 out of range (outputs unchanged)
 */
int vw_bignum_pow5(uint64_t w, int32_t e5, uint64_t *m, int32_t *e2);

/**
 * @brief m / 2^cut rounded to nearest, ties to even.
 * @param m   the bits (from vw_bignum_pow5: its sticky bit keeps the rounding exact)
 * @param cut bits dropped, 1..64
 */
uint64_t vw_bignum_round(uint64_t m, unsigned cut);

#ifdef __cplusplus
}
#endif
#endif /* VW_BIGNUM_H */
