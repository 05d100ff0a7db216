/**
 * @file vw_anomaly.h
 * @brief When a sequence of window scores is an anomaly: debounce and hysteresis.
 *
 * A device must not report an anomaly for one noisy window, nor end one and start
 * it again for every window that dips below the threshold. So:
 *
 *  - an anomaly **starts** when at least @c k of the last @c n windows scored at or
 *    above the threshold (the window that completes the count is the start);
 *  - it **ends** after @c m consecutive windows scored below the release level,
 *    @c release_ratio times the threshold (release_ratio <= 1: a lower level, so a
 *    score hovering at the threshold does not end it); a window at or above the
 *    release level restarts that count;
 *  - after an end, the count of windows above the threshold starts afresh.
 *
 * The threshold is passed with every window, so a changed threshold (a command, a
 * new model) applies from the next window on. The release level follows it.
 * Pure logic: no I/O, no clock, a few bytes of caller-owned state.
 */
#ifndef VW_ANOMALY_H
#define VW_ANOMALY_H

#include <stdint.h>

#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest @c n: the history is one bit per window in a 32-bit word. */
#define VW_ANOMALY_MAX_N 32u

/** Debounce and hysteresis settings (device settings; see vw_anomaly_defaults). */
typedef struct vw_anomaly_config {
    uint8_t k;           /**< windows at or above the threshold that start an anomaly, 1..n */
    uint8_t n;           /**< of the last n windows, 1..VW_ANOMALY_MAX_N */
    uint8_t m;           /**< consecutive windows below the release level that end it, >= 1 */
    float release_ratio; /**< release level / threshold, in (0, 1] */
} vw_anomaly_config_t;

/** What one window did. */
typedef enum vw_anomaly_event {
    VW_ANOMALY_NONE = 0,  /**< no change */
    VW_ANOMALY_START = 1, /**< this window started an anomaly */
    VW_ANOMALY_END = 2    /**< this window ended the anomaly */
} vw_anomaly_event_t;

/** State of the detector; its fields are private. */
typedef struct vw_anomaly {
    vw_anomaly_config_t config;
    uint32_t history; /**< bit i: the window i windows ago was at or above the threshold */
    uint8_t above;    /**< how many of bits 0 .. n - 1 of history are set */
    uint8_t below;    /**< consecutive windows below the release level (during an anomaly) */
    uint8_t active;   /**< 1 while an anomaly is open */
} vw_anomaly_t;

/** @brief The defaults: 3 of the last 5 windows start an anomaly, 5 below 0.8 x threshold end it. */
vw_anomaly_config_t vw_anomaly_defaults(void);

/**
 * @brief Check @p config against its ranges.
 * @return VW_OK, VW_ERR_ARG (NULL) or VW_ERR_RANGE (a field outside its range).
 */
vw_status_t vw_anomaly_check(const vw_anomaly_config_t *config);

/**
 * @brief Start with no anomaly and an empty history.
 * @return as vw_anomaly_check; @p state is untouched unless VW_OK.
 */
vw_status_t vw_anomaly_init(vw_anomaly_t *state, const vw_anomaly_config_t *config);

/**
 * @brief Take the score of the next window.
 * @param state     detector (input/output)
 * @param score     the window's anomaly score, finite
 * @param threshold the threshold in force, finite and > 0
 * @param event     what this window did (output)
 * @return VW_OK; VW_ERR_ARG for NULL; VW_ERR_INPUT for a non-finite score or a
 *         threshold that is not a finite positive number (the state is unchanged).
 */
vw_status_t vw_anomaly_update(vw_anomaly_t *state, float score, float threshold,
                              vw_anomaly_event_t *event);

#ifdef __cplusplus
}
#endif
#endif /* VW_ANOMALY_H */
