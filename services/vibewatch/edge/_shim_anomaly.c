/* Binding glue for vibewatch.edge.anomaly: the anomaly state as opaque memory, its settings
   from plain arguments (no struct layout on the Python side), and many windows in one call. */
#include <stddef.h>
#include <stdint.h>

#include "vw_anomaly.h"

size_t vwpy_anomaly_sizeof(void);
vw_status_t vwpy_anomaly_init(vw_anomaly_t *state, uint32_t k, uint32_t n, uint32_t m,
                              float release_ratio);
vw_status_t vwpy_anomaly_run(vw_anomaly_t *state, const float *scores, size_t count,
                             float threshold, int8_t *events, size_t *failed);

size_t vwpy_anomaly_sizeof(void) { return sizeof(vw_anomaly_t); }

/* vw_anomaly_init with k, n, m given as plain integers (beyond 255: refused as out of range). */
vw_status_t vwpy_anomaly_init(vw_anomaly_t *state, uint32_t k, uint32_t n, uint32_t m,
                              float release_ratio)
{
    const vw_anomaly_config_t config = {(uint8_t)(k > 255u ? 0u : k), (uint8_t)(n > 255u ? 0u : n),
                                        (uint8_t)(m > 255u ? 0u : m), release_ratio};
    return vw_anomaly_init(state, &config);
}

/* vw_anomaly_update over scores[0 .. count - 1] at one threshold; events[i] is what window i
   did (vw_anomaly_event_t). On a refused score, *failed is its index. */
vw_status_t vwpy_anomaly_run(vw_anomaly_t *state, const float *scores, size_t count,
                             float threshold, int8_t *events, size_t *failed)
{
    for (size_t i = 0; i < count; i++) {
        vw_anomaly_event_t event = VW_ANOMALY_NONE;
        const vw_status_t status = vw_anomaly_update(state, scores[i], threshold, &event);
        if (status != VW_OK) {
            *failed = i;
            return status;
        }
        events[i] = (int8_t)event;
    }
    return VW_OK;
}
