/* Host tests of the tail threshold. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vw_tail.h"
#include "vw_test.h"

static uint32_t rng_state = 12345u;

/* Uniform in (0, 1), from a 32-bit LCG: repeatable on every host. */
static float uniform(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return ((float)(rng_state >> 8) + 0.5f) / 16777216.0f;
}

/* A generalised Pareto variate (shape gamma, scale 1) by inversion. */
static float pareto(float gamma)
{
    float v = 1.0f - uniform();
    return gamma == 0.0f ? -logf(v) : (powf(v, -gamma) - 1.0f) / gamma;
}

static int ascending(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_keeps_the_largest_in_order(void)
{
    enum { CAP = 16, N = 500 };
    float top[CAP], all[N];
    vw_tail_t tail;
    VW_CHECK_EQ(vw_tail_init(&tail, top, CAP), VW_OK);
    for (int i = 0; i < N; i++) {
        all[i] = uniform() * 100.0f;
        VW_CHECK_EQ(vw_tail_add(&tail, all[i]), VW_OK);
        if (i == 5) { /* not full yet: everything so far, sorted */
            float first[6];
            memcpy(first, all, sizeof first);
            qsort(first, 6, sizeof(float), ascending);
            VW_CHECK(memcmp(first, top, sizeof first) == 0);
        }
    }
    qsort(all, N, sizeof(float), ascending);
    VW_CHECK_EQ(tail.n, N);
    VW_CHECK_EQ(tail.kept, CAP);
    VW_CHECK(memcmp(all + N - CAP, top, sizeof top) == 0);
}

/* The threshold of @p n variates of @p gamma for @p target, kept in @p capacity. */
static vw_tail_estimate_t estimate_of(uint32_t n, float gamma, uint16_t capacity, float target)
{
    static float top[4096];
    vw_tail_t tail;
    vw_tail_estimate_t e;
    memset(&e, 0, sizeof e);
    VW_CHECK_EQ(vw_tail_init(&tail, top, capacity), VW_OK);
    for (uint32_t i = 0; i < n; i++) {
        VW_CHECK_EQ(vw_tail_add(&tail, 1.0f + pareto(gamma)), VW_OK);
    }
    VW_CHECK_EQ(vw_tail_estimate(&tail, target, &e), VW_OK);
    return e;
}

static void test_an_exponential_tail(void)
{
    /* 20,000 scores, target 1e-3: the true quantile is 1 + ln(1000) = 7.91; the upper
       bound of the scale puts the threshold a little above, never below by much */
    vw_tail_estimate_t e = estimate_of(20000u, 0.0f, 2001u, 1e-3f);
    VW_CHECK_EQ(e.method, VW_TAIL_POT);
    VW_CHECK_EQ(e.k, 2000);
    VW_CHECK_EQ(e.n, 20000);
    VW_CHECK(fabsf(e.gamma) < 0.1f);
    VW_CHECK(e.scale >= e.sigma || e.gamma <= 0.0f);
    VW_CHECK(e.threshold > 7.6f && e.threshold < 8.6f);
    VW_CHECK(e.fit_p >= VW_TAIL_MIN_FIT_P);
}

static void test_a_heavy_tail(void)
{
    /* gamma 0.3: the quantile at 1e-4 is 1 + (1e-4^-0.3 - 1) / 0.3 = 50.2 */
    vw_tail_estimate_t e = estimate_of(40000u, 0.3f, 4001u, 1e-4f);
    VW_CHECK_EQ(e.method, VW_TAIL_POT);
    VW_CHECK(e.gamma > 0.2f && e.gamma < 0.4f);
    VW_CHECK(e.threshold > 40.0f && e.threshold < 80.0f);
}

static void test_a_bounded_tail_is_taken_as_exponential(void)
{
    /* gamma -0.4 has its end at 1 + 2.5 = 3.5; the threshold goes past it */
    vw_tail_estimate_t e = estimate_of(5000u, -0.4f, 501u, 1e-3f);
    VW_CHECK_EQ(e.method, VW_TAIL_POT);
    VW_CHECK(e.gamma < -0.2f);
    VW_CHECK(e.threshold > 3.5f);
}

static void test_a_device_sized_buffer(void)
{
    /* 3,600 windows kept in 32: k = 31, not 360 */
    vw_tail_estimate_t e = estimate_of(3600u, 0.0f, 32u, 1e-3f);
    VW_CHECK_EQ(e.k, 31);
    VW_CHECK_EQ(e.method, VW_TAIL_POT);
    VW_CHECK(e.threshold > 6.0f && e.threshold < 12.0f);
}

static void test_fallbacks(void)
{
    float top[32];
    vw_tail_t tail;
    vw_tail_estimate_t e;
    /* 15 scores: k would be 7, fewer than 10: the empirical quantile, the largest */
    VW_CHECK_EQ(vw_tail_init(&tail, top, 32u), VW_OK);
    for (int i = 0; i < 15; i++) {
        VW_CHECK_EQ(vw_tail_add(&tail, (float)i), VW_OK);
    }
    VW_CHECK_EQ(vw_tail_estimate(&tail, 0.01f, &e), VW_OK);
    VW_CHECK_EQ(e.method, VW_TAIL_FEW);
    VW_CHECK(e.threshold == 14.0f);
    VW_CHECK(e.fit_p < 0.0f);
    /* and at a target of 20 %: 3 scores may lie above */
    VW_CHECK_EQ(vw_tail_estimate(&tail, 0.2f, &e), VW_OK);
    VW_CHECK(e.threshold == 11.0f);

    /* the largest scores all equal */
    VW_CHECK_EQ(vw_tail_init(&tail, top, 32u), VW_OK);
    for (int i = 0; i < 200; i++) {
        VW_CHECK_EQ(vw_tail_add(&tail, 2.5f), VW_OK);
    }
    VW_CHECK_EQ(vw_tail_estimate(&tail, 0.001f, &e), VW_OK);
    VW_CHECK_EQ(e.method, VW_TAIL_FLAT);
    VW_CHECK(e.threshold == 2.5f);

    /* two clusters of excesses: no Pareto tail; the quantile lies below what is kept, so
       the threshold is the lowest kept score */
    VW_CHECK_EQ(vw_tail_init(&tail, top, 32u), VW_OK);
    for (int i = 0; i < 1000; i++) {
        float score = i < 984 ? uniform() : (i < 992 ? 5.0f : 50.0f) + uniform() * 0.01f;
        VW_CHECK_EQ(vw_tail_add(&tail, score), VW_OK);
    }
    VW_CHECK_EQ(vw_tail_estimate(&tail, 0.05f, &e), VW_OK);
    VW_CHECK_EQ(e.method, VW_TAIL_MISFIT);
    VW_CHECK(e.fit_p >= 0.0f && e.fit_p < VW_TAIL_MIN_FIT_P);
    VW_CHECK(e.threshold == top[0]);
}

static void test_refusals(void)
{
    float top[32];
    vw_tail_t tail;
    vw_tail_estimate_t e;
    VW_CHECK_EQ(vw_tail_init(&tail, top, VW_TAIL_MIN_EXCESSES), VW_ERR_ARG);
    VW_CHECK_EQ(vw_tail_init(NULL, top, 32u), VW_ERR_ARG);
    VW_CHECK_EQ(vw_tail_init(&tail, NULL, 32u), VW_ERR_ARG);
    VW_CHECK_EQ(vw_tail_init(&tail, top, 32u), VW_OK);
    VW_CHECK_EQ(vw_tail_estimate(&tail, 0.01f, &e), VW_ERR_STATE);
    VW_CHECK_EQ(vw_tail_add(&tail, NAN), VW_ERR_INPUT);
    VW_CHECK_EQ(vw_tail_add(&tail, INFINITY), VW_ERR_INPUT);
    VW_CHECK_EQ(tail.n, 0);
    VW_CHECK_EQ(vw_tail_add(&tail, 1.0f), VW_OK);
    VW_CHECK_EQ(vw_tail_estimate(&tail, 0.0f, &e), VW_ERR_ARG);
    VW_CHECK_EQ(vw_tail_estimate(&tail, 1.0f, &e), VW_ERR_ARG);
    VW_CHECK_EQ(vw_tail_estimate(&tail, NAN, &e), VW_ERR_ARG);
    VW_CHECK_EQ(vw_tail_estimate(&tail, 0.01f, NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_tail_estimate(&tail, 0.01f, &e), VW_OK);
    VW_CHECK(e.threshold == 1.0f);
}

int main(void)
{
    test_keeps_the_largest_in_order();
    test_an_exponential_tail();
    test_a_heavy_tail();
    test_a_bounded_tail_is_taken_as_exponential();
    test_a_device_sized_buffer();
    test_fallbacks();
    test_refusals();
    return vw_test_report("test_tail");
}
