/* Anomaly debounce and hysteresis: see vw_anomaly.h. */
#include "vw_anomaly.h"

#include <math.h>
#include <stddef.h>

vw_anomaly_config_t vw_anomaly_defaults(void)
{
    vw_anomaly_config_t config = {3u, 5u, 5u, 0.8f};
    return config;
}

vw_status_t vw_anomaly_check(const vw_anomaly_config_t *config)
{
    if (config == NULL) {
        return VW_ERR_ARG;
    }
    if (config->n < 1u || config->n > VW_ANOMALY_MAX_N || config->k < 1u || config->k > config->n ||
        config->m < 1u || !(config->release_ratio > 0.0f && config->release_ratio <= 1.0f)) {
        return VW_ERR_RANGE;
    }
    return VW_OK;
}

vw_status_t vw_anomaly_init(vw_anomaly_t *state, const vw_anomaly_config_t *config)
{
    if (state == NULL) {
        return VW_ERR_ARG;
    }
    vw_status_t status = vw_anomaly_check(config);
    if (status != VW_OK) {
        return status;
    }
    state->config = *config;
    state->history = 0u;
    state->above = 0u;
    state->below = 0u;
    state->active = 0u;
    return VW_OK;
}

vw_status_t vw_anomaly_update(vw_anomaly_t *state, float score, float threshold,
                              vw_anomaly_event_t *event)
{
    if (state == NULL || event == NULL) {
        return VW_ERR_ARG;
    }
    if (!isfinite(score) || !isfinite(threshold) || !(threshold > 0.0f)) {
        return VW_ERR_INPUT;
    }
    *event = VW_ANOMALY_NONE;
    const vw_anomaly_config_t *c = &state->config;
    if (state->active) {
        if (score >= c->release_ratio * threshold) {
            state->below = 0u;
        } else if (++state->below >= c->m) {
            state->active = 0u;
            state->below = 0u;
            state->history = 0u;
            state->above = 0u;
            *event = VW_ANOMALY_END;
        }
        return VW_OK;
    }
    const uint32_t leaving = (state->history >> (c->n - 1u)) & 1u; /* no longer in the last n */
    const uint32_t high = score >= threshold;
    state->history = (state->history << 1) | high;
    state->above = (uint8_t)(state->above + high - leaving);
    if (state->above >= c->k) {
        state->active = 1u;
        state->below = 0u;
        *event = VW_ANOMALY_START;
    }
    return VW_OK;
}
