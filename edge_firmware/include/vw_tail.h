/**
 * @file vw_tail.h
 * @brief A score threshold for a false-alarm target from the upper tail of healthy scores.
 *
 * One rule, used by the training job on its calibration scores and by a device on its
 * own healthy windows (the `calibrate` command): peaks over threshold, as SPOT does
 * (Siffer et al., KDD 2017).
 *
 * Of the @c n scores seen, the @c k largest (@c k = 10 % of @c n, at least
 * VW_TAIL_MIN_EXCESSES, at most n / 2 and the kept capacity - 1) lie above an initial
 * threshold @c u, the next score down. Their excesses over @c u are fitted with a
 * generalised Pareto distribution (shape gamma, scale sigma) by probability-weighted
 * moments (Hosking and Wallis, Technometrics 1987): a closed form, no iteration, and
 * reliable for the few dozen excesses a device keeps. With a = mean excess and
 * b = mean of (1 - p_i) y_(i) over the ascending excesses y_(i), p_i = (i - 0.35) / k:
 *
 *     gamma = 2 - a / (a - 2 b)      sigma = 2 a b / (a - 2 b)
 *
 * The score exceeded with probability @c q is then, with r = q n / k,
 *
 *     z = u + s / gamma * (r ^ -gamma - 1)    (gamma > 0)
 *     z = u + s * ln(1 / r)                   (gamma <= 0: the exponential tail)
 *
 * where @c s is the scale's one-sided upper confidence bound at VW_TAIL_CONFIDENCE,
 * 2 k sigma / chi2(1 - VW_TAIL_CONFIDENCE, 2 k) (for the exponential tail sigma is the
 * mean excess, its maximum-likelihood estimate), so that a threshold set on few windows
 * is higher, not luckier; a fitted gamma < 0 (a tail with an end, placed too low by a few
 * dozen excesses) is taken as 0.
 *
 * When the fit is poor (fewer than VW_TAIL_MIN_EXCESSES excesses, all excesses 0, or the
 * Kolmogorov-Smirnov test rejects the fitted distribution below VW_TAIL_MIN_FIT_P) the
 * threshold falls back to the empirical quantile: the lowest score with at most
 * floor(q n) scores above it, or the lowest kept score when that one was not kept.
 *
 * Bounded memory: only the largest @c capacity scores are kept, in caller-owned memory,
 * sorted ascending; each new score costs at most @c capacity moves. Float arithmetic,
 * no heap.
 */
#ifndef VW_TAIL_H
#define VW_TAIL_H

#include <stdint.h>

#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VW_TAIL_MIN_EXCESSES 10u /**< fewest excesses a tail is fitted to */
#define VW_TAIL_SHARE 0.10f      /**< share of the scores the initial threshold leaves above */
#define VW_TAIL_CONFIDENCE 0.90f /**< one-sided confidence of the scale's upper bound */
#define VW_TAIL_MIN_FIT_P 0.05f  /**< below this Kolmogorov-Smirnov p-value a fit is rejected */

/** How a threshold was found. */
typedef enum vw_tail_method {
    VW_TAIL_POT = 0,      /**< from the fitted tail */
    VW_TAIL_FEW = 1,      /**< empirical: fewer than VW_TAIL_MIN_EXCESSES excesses */
    VW_TAIL_FLAT = 2,     /**< empirical: the largest scores are all equal */
    VW_TAIL_MISFIT = 3    /**< empirical: the fit is rejected (or not finite) */
} vw_tail_method_t;

/** The largest scores seen so far; its fields are private. */
typedef struct vw_tail {
    float *top;        /**< the kept scores, ascending */
    uint32_t n;        /**< scores seen */
    uint16_t capacity; /**< most scores kept */
    uint16_t kept;     /**< scores kept, min(n, capacity) */
} vw_tail_t;

/** A threshold and the fit it came from. */
typedef struct vw_tail_estimate {
    float threshold; /**< the score threshold */
    float u;         /**< the initial threshold */
    float gamma;     /**< the fitted shape (before a negative one is taken as 0) */
    float sigma;     /**< the fitted scale (the exponential tail's: the mean excess) */
    float scale;     /**< the scale the threshold used: sigma's upper confidence bound */
    float fit_p;     /**< the Kolmogorov-Smirnov p-value of the fit; -1: not fitted */
    uint32_t n;      /**< scores seen */
    uint16_t k;      /**< excesses over u */
    uint8_t method;  /**< a vw_tail_method_t */
} vw_tail_estimate_t;

/**
 * @brief Start with no scores.
 * @param top      memory for @p capacity floats
 * @param capacity at least VW_TAIL_MIN_EXCESSES + 1
 * @return VW_OK, VW_ERR_ARG (NULL, or a capacity below that)
 */
vw_status_t vw_tail_init(vw_tail_t *tail, float *top, uint16_t capacity);

/**
 * @brief Take one score.
 * @return VW_OK; VW_ERR_ARG for NULL; VW_ERR_INPUT for a score that is not finite, or
 *         when UINT32_MAX scores were taken already (the tail is unchanged).
 */
vw_status_t vw_tail_add(vw_tail_t *tail, float score);

/**
 * @brief The threshold that healthy scores like those taken exceed with probability
 *        @p target (see the file documentation).
 * @return VW_OK; VW_ERR_ARG for NULL or a target outside (0, 1); VW_ERR_STATE when no
 *         score was taken.
 */
vw_status_t vw_tail_estimate(const vw_tail_t *tail, float target, vw_tail_estimate_t *out);

#ifdef __cplusplus
}
#endif
#endif /* VW_TAIL_H */
