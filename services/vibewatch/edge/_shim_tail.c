/* Binding glue for vibewatch.edge.tail: the tail rule over an array of scores in one call,
   its estimate as plain arrays (no struct layout on the Python side). */
#include <stddef.h>
#include <stdint.h>

#include "vw_tail.h"

void vwpy_tail_constants(float constants[4]);
vw_status_t vwpy_tail_estimate(const float *scores, uint32_t n, uint16_t capacity, float *top,
                               float target, float values[6], uint32_t meta[3]);

/* The rule's constants: fewest excesses, tail share, confidence, least fit p-value. */
void vwpy_tail_constants(float constants[4])
{
    constants[0] = (float)VW_TAIL_MIN_EXCESSES;
    constants[1] = VW_TAIL_SHARE;
    constants[2] = VW_TAIL_CONFIDENCE;
    constants[3] = VW_TAIL_MIN_FIT_P;
}

/* Take scores[0 .. n - 1] into a tail kept in top[capacity], then estimate for target.
   values: threshold, u, gamma, sigma, scale, fit_p; meta: n, k, method. On a refused
   score, meta[0] is its index. */
vw_status_t vwpy_tail_estimate(const float *scores, uint32_t n, uint16_t capacity, float *top,
                               float target, float values[6], uint32_t meta[3])
{
    vw_tail_t tail;
    vw_status_t status = vw_tail_init(&tail, top, capacity);
    for (uint32_t i = 0; status == VW_OK && i < n; i++) {
        status = vw_tail_add(&tail, scores[i]);
        meta[0] = i;
    }
    if (status != VW_OK) {
        return status;
    }
    vw_tail_estimate_t e;
    status = vw_tail_estimate(&tail, target, &e);
    if (status == VW_OK) {
        values[0] = e.threshold;
        values[1] = e.u;
        values[2] = e.gamma;
        values[3] = e.sigma;
        values[4] = e.scale;
        values[5] = e.fit_p;
        meta[0] = e.n;
        meta[1] = e.k;
        meta[2] = e.method;
    }
    return status;
}
