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
    state->below = 0u;
    state->active = 0u;
    return VW_OK;
}

static unsigned popcount32(uint32_t v)
{
    unsigned count = 0;
    for (; v != 0u; v &= v - 1u) {
        count++;
    }
    return count;
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
        if (score < c->release_ratio * threshold) {
            if (++state->below >= c->m) {
                state->active = 0u;
                state->below = 0u;
                state->history = 0u;
                            *event = VW_ANOMALY_END;
            }
        } else {
            state->below = 0u;
        }
        return VW_OK;
    }
    uint32_t mask = c->n >= 32u ? 0xffffffffu : (1u << c->n) - 1u;
    state->history = ((state->history << 1) | (score >= threshold ? 1u : 0u)) & mask;
    if (popcount32(state->history) >= c->k) {
        state->active = 1u;
        state->below = 0u;
        *event = VW_ANOMALY_START;
    }
    return VW_OK;
}

int vw_anomaly_active(const vw_anomaly_t *state)
{
    return state != NULL && state->active;
}
