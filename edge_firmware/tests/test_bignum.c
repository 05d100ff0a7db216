/* Host tests of the exact scaling by powers of five (the JSON reader and writer test
 * the conversions built on it against strtod and strtof). */
#include <stdint.h>

#include "vw_bignum.h"
#include "vw_test.h"

static void test_exact_powers(void)
{
    uint64_t m = 0;
    int32_t e2 = 0;
    /* 3 * 5^3 = 375 = 101110111b: 9 bits, exponent 8, nothing below */
    VW_CHECK_EQ(vw_bignum_pow5(3u, 3, &m, &e2), 1);
    VW_CHECK(m == UINT64_C(375) << 55 && e2 == 8);
    /* 5^27 needs 63 bits: still exact */
    VW_CHECK_EQ(vw_bignum_pow5(1u, 27, &m, &e2), 1);
    VW_CHECK(m == UINT64_C(7450580596923828125) << 1 && e2 == 62);
    /* the largest w: 64 bits, exact */
    VW_CHECK_EQ(vw_bignum_pow5(UINT64_MAX, 0, &m, &e2), 1);
    VW_CHECK(m == UINT64_MAX && e2 == 63);
    /* 2^-3 * 5^-3 * 1000 = 1: a fraction that comes out exact */
    VW_CHECK_EQ(vw_bignum_pow5(1000u, -3, &m, &e2), 1);
    VW_CHECK(m == UINT64_C(1) << 63 && e2 == 3);
}

static void test_fractions_carry_a_sticky_bit(void)
{
    uint64_t m = 0;
    int32_t e2 = 0;
    /* 1/5 = 0.00110011...b: the pattern 0xCCCC... from the first set bit, and the
     * remainder below the 64 bits sets bit 0 */
    VW_CHECK_EQ(vw_bignum_pow5(1u, -1, &m, &e2), 1);
    VW_CHECK(m == UINT64_C(0xCCCCCCCCCCCCCCCD) && e2 == -3);
    /* the smallest and the largest power taken */
    VW_CHECK_EQ(vw_bignum_pow5(1u, VW_BIGNUM_MIN_E5, &m, &e2), 1);
    VW_CHECK(m >> 63 == 1u && e2 == -797);
    VW_CHECK_EQ(vw_bignum_pow5(UINT64_MAX, VW_BIGNUM_MAX_E5, &m, &e2), 1);
    VW_CHECK(m >> 63 == 1u && e2 == 783);
}

static void test_refused(void)
{
    uint64_t m = 7u;
    int32_t e2 = 7;
    VW_CHECK_EQ(vw_bignum_pow5(0u, 1, &m, &e2), 0);
    VW_CHECK_EQ(vw_bignum_pow5(1u, VW_BIGNUM_MIN_E5 - 1, &m, &e2), 0);
    VW_CHECK_EQ(vw_bignum_pow5(1u, VW_BIGNUM_MAX_E5 + 1, &m, &e2), 0);
    VW_CHECK(m == 7u && e2 == 7);
}

static void test_rounding(void)
{
    VW_CHECK(vw_bignum_round(0x14u, 3) == 2u);  /* 2.5 -> 2 (even) */
    VW_CHECK(vw_bignum_round(0x1Cu, 3) == 4u);  /* 3.5 -> 4 (even) */
    VW_CHECK(vw_bignum_round(0x15u, 3) == 3u);  /* 2.625 -> 3 */
    VW_CHECK(vw_bignum_round(0x13u, 3) == 2u);  /* 2.375 -> 2 */
    VW_CHECK(vw_bignum_round(3u, 1) == 2u);     /* 1.5 -> 2 */
    VW_CHECK(vw_bignum_round(UINT64_C(1) << 63, 64) == 0u);       /* exactly half: 0 */
    VW_CHECK(vw_bignum_round((UINT64_C(1) << 63) | 1u, 64) == 1u); /* above half: 1 */
    VW_CHECK(vw_bignum_round(UINT64_MAX, 1) == UINT64_C(1) << 63); /* carries up */
}

int main(void)
{
    test_exact_powers();
    test_fractions_carry_a_sticky_bit();
    test_refused();
    test_rounding();
    return vw_test_report("test_bignum");
}
