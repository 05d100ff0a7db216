/* A threshold from the upper tail of healthy scores: see vw_tail.h. */
#include "vw_tail.h"

#include <math.h>
#include <stddef.h>

/* The standard normal quantile at 1 - VW_TAIL_CONFIDENCE (0.10). */
#define NORMAL_QUANTILE (-1.2815516f)
/* Below this |gamma| the tail is the exponential one (in the fit's distribution function). */
#define GAMMA_ZERO 1e-6f

vw_status_t vw_tail_init(vw_tail_t *tail, float *top, uint16_t capacity)
{
    if (tail == NULL || top == NULL || capacity < VW_TAIL_MIN_EXCESSES + 1u) {
        return VW_ERR_ARG;
    }
    tail->top = top;
    tail->n = 0u;
    tail->capacity = capacity;
    tail->kept = 0u;
    return VW_OK;
}

vw_status_t vw_tail_add(vw_tail_t *tail, float score)
{
    if (tail == NULL) {
        return VW_ERR_ARG;
    }
    if (!isfinite(score) || tail->n == UINT32_MAX) {
        return VW_ERR_INPUT;
    }
    tail->n++;
    float *top = tail->top;
    uint16_t i = tail->kept;
    if (i < tail->capacity) { /* room: insert, moving the larger ones up */
        tail->kept++;
        for (; i > 0u && top[i - 1u] > score; i--) {
            top[i] = top[i - 1u];
        }
    } else if (score > top[0]) { /* full: the lowest goes, the smaller ones move down */
        for (i = 0u; i + 1u < tail->capacity && top[i + 1u] < score; i++) {
            top[i] = top[i + 1u];
        }
    } else {
        return VW_OK;
    }
    top[i] = score;
    return VW_OK;
}

/* The lowest score with at most floor(target n) above it; the lowest kept if not kept
 * (the conversion truncates: the floor of a product in [0, 2^32)). */
static float empirical(const vw_tail_t *tail, float target)
{
    uint32_t allowed = (uint32_t)(target * (float)tail->n);
    return allowed < tail->kept ? tail->top[tail->kept - 1u - allowed] : tail->top[0];
}

/* Distribution function of the generalised Pareto distribution (shape gamma, scale sigma). */
static float gpd_cdf(float y, float gamma, float sigma)
{
    if (fabsf(gamma) < GAMMA_ZERO) {
        return 1.0f - expf(-y / sigma);
    }
    float base = 1.0f + gamma * y / sigma;
    return base <= 0.0f ? 1.0f : 1.0f - expf(-logf(base) / gamma);
}

/* P(D > d) of the Kolmogorov-Smirnov statistic of k values, with Stephens' correction. */
static float ks_p(float d, uint16_t k)
{
    float root = sqrtf((float)k);
    float lambda = (root + 0.12f + 0.11f / root) * d;
    if (lambda < 0.2f) {
        return 1.0f;
    }
    float sum = 0.0f;
    float sign = 2.0f;
    for (unsigned j = 1u; j <= 100u; j++) {
        float term = sign * expf(-2.0f * (float)(j * j) * lambda * lambda);
        sum += term;
        if (fabsf(term) < 1e-7f * fabsf(sum)) {
            break;
        }
        sign = -sign;
    }
    return sum < 0.0f ? 0.0f : (sum > 1.0f ? 1.0f : sum);
}

/* The excesses: round(VW_TAIL_SHARE n) (0.10 n, in integers: the same for every n whose
 * share is below the capacity), at least VW_TAIL_MIN_EXCESSES, at most n / 2 and
 * capacity - 1. */
static uint16_t excesses(const vw_tail_t *tail)
{
    uint32_t n = tail->n;
    uint32_t k = n / 10u + (n % 10u >= 5u);
    if (k < VW_TAIL_MIN_EXCESSES) {
        k = VW_TAIL_MIN_EXCESSES;
    }
    if (k > n / 2u) {
        k = n / 2u;
    }
    return (uint16_t)(k < tail->capacity - 1u ? k : tail->capacity - 1u);
}

vw_status_t vw_tail_estimate(const vw_tail_t *tail, float target, vw_tail_estimate_t *out)
{
    if (tail == NULL || out == NULL || !(target > 0.0f && target < 1.0f)) {
        return VW_ERR_ARG;
    }
    if (tail->n == 0u) {
        return VW_ERR_STATE;
    }
    const uint16_t k = excesses(tail);
    vw_tail_estimate_t *e = out;
    *e = (vw_tail_estimate_t){empirical(tail, target), 0.0f, 0.0f, 0.0f, 0.0f, -1.0f,
                              tail->n, k, VW_TAIL_FEW};
    if (k < VW_TAIL_MIN_EXCESSES) {
        return VW_OK;
    }
    const float *y = tail->top + (tail->kept - k); /* the k largest, ascending */
    const float u = y[-1];
    e->u = u;
    e->method = VW_TAIL_FLAT;
    if (!(y[k - 1u] - u > 0.0f)) {
        return VW_OK;
    }
    float a = 0.0f, b = 0.0f;
    for (unsigned i = 0; i < k; i++) {
        float excess = y[i] - u;
        a += excess;
        b += (1.0f - ((float)i + 0.65f) / (float)k) * excess;
    }
    a /= (float)k;
    b /= (float)k;
    const float d = a - 2.0f * b;
    const float gamma = 2.0f - a / d;
    const float sigma = 2.0f * a * b / d;
    e->gamma = gamma;
    e->sigma = sigma;
    e->method = VW_TAIL_MISFIT;
    if (!(d > 0.0f) || !isfinite(gamma) || !(sigma > 0.0f) || !isfinite(sigma)) {
        return VW_OK;
    }
    float ks = 0.0f;
    float below_edge = 0.0f; /* i / k, the empirical distribution below y[i] */
    for (unsigned i = 0; i < k; i++) {
        float f = gpd_cdf(y[i] - u, gamma, sigma);
        float above_edge = (float)(i + 1u) / (float)k;
        ks = fmaxf(ks, fmaxf(above_edge - f, f - below_edge));
        below_edge = above_edge;
    }
    e->fit_p = ks_p(ks, k);
    if (e->fit_p < VW_TAIL_MIN_FIT_P) {
        return VW_OK;
    }
    /* chi2(1 - confidence, 2k) by Wilson and Hilferty's cube of a normal. */
    const float nu = 2.0f * (float)k;
    const float c = 2.0f / (9.0f * nu);
    const float cube = 1.0f - c + NORMAL_QUANTILE * sqrtf(c);
    const float bound = nu / (nu * cube * cube * cube);
    const float log_r = logf(target * (float)tail->n / (float)k); /* r = q n / k */
    float z;
    if (gamma <= 0.0f) {
        e->scale = a * bound;
        z = u - e->scale * log_r;
    } else {
        e->scale = sigma * bound;
        z = u + e->scale / gamma * (expf(-gamma * log_r) - 1.0f);
    }
    if (isfinite(z)) {
        e->threshold = z;
        e->method = VW_TAIL_POT;
    }
    return VW_OK;
}
