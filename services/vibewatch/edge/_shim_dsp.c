/* Binding glue for vibewatch.edge.dsp: the DSP state as opaque memory, a spec from plain
   arguments (no struct layout on the Python side), and a batch of windows in one call. */
#include <stddef.h>
#include <stdint.h>

#include "vw_dsp.h"

size_t vwpy_dsp_struct_bytes(void);
void vwpy_dsp_limits(uint32_t limits[6]);
vw_status_t vwpy_dsp_check_spec(uint32_t sample_rate_hz, uint16_t window, uint16_t n_bands,
                                const uint16_t *band_bins, int *fault);
vw_status_t vwpy_dsp_spec_id(uint32_t sample_rate_hz, uint16_t window, uint16_t n_bands,
                             const uint16_t *band_bins, char *id);
vw_status_t vwpy_dsp_init(vw_dsp_t *dsp, uint32_t sample_rate_hz, uint16_t window,
                          uint16_t n_bands, const uint16_t *band_bins, void *work,
                          size_t work_bytes);
vw_status_t vwpy_dsp_features_batch(vw_dsp_t *dsp, const float *samples, size_t n,
                                    float *features, size_t *failed);

size_t vwpy_dsp_struct_bytes(void) { return sizeof(vw_dsp_t); }

/* The DSP's limits: min window, max window, max bands, max sample rate, statistics,
   longest spec id. */
void vwpy_dsp_limits(uint32_t limits[6])
{
    limits[0] = VW_DSP_MIN_WINDOW;
    limits[1] = VW_DSP_MAX_WINDOW;
    limits[2] = VW_DSP_MAX_BANDS;
    limits[3] = VW_DSP_MAX_RATE_HZ;
    limits[4] = VW_DSP_N_STATS;
    limits[5] = VW_DSP_SPEC_ID_MAX;
}

/* The statistics' names, comma-separated (VW_DSP_STAT_NAMES). */
const char *vwpy_dsp_stat_names(void) { return VW_DSP_STAT_NAMES; }

/* vw_dsp_check_spec_fault of a spec given as plain arguments; *fault as an int. */
vw_status_t vwpy_dsp_check_spec(uint32_t sample_rate_hz, uint16_t window, uint16_t n_bands,
                                const uint16_t *band_bins, int *fault)
{
    const vw_feature_spec_t spec = {sample_rate_hz, window, n_bands, band_bins};
    vw_spec_fault_t found = VW_SPEC_FAULT_NONE;
    const vw_status_t status = vw_dsp_check_spec_fault(&spec, &found);
    *fault = (int)found;
    return status;
}

/* vw_dsp_spec_id of a spec given as plain arguments; id holds VW_DSP_SPEC_ID_MAX + 1 bytes. */
vw_status_t vwpy_dsp_spec_id(uint32_t sample_rate_hz, uint16_t window, uint16_t n_bands,
                             const uint16_t *band_bins, char *id)
{
    const vw_feature_spec_t spec = {sample_rate_hz, window, n_bands, band_bins};
    return vw_dsp_spec_id(&spec, id);
}

vw_status_t vwpy_dsp_init(vw_dsp_t *dsp, uint32_t sample_rate_hz, uint16_t window,
                          uint16_t n_bands, const uint16_t *band_bins, void *work,
                          size_t work_bytes)
{
    const vw_feature_spec_t spec = {sample_rate_hz, window, n_bands, band_bins};
    return vw_dsp_init(dsp, &spec, work, work_bytes);
}

/* Features of n consecutive windows; on an error, *failed is the index of the window. */
vw_status_t vwpy_dsp_features_batch(vw_dsp_t *dsp, const float *samples, size_t n,
                                    float *features, size_t *failed)
{
    const size_t window = dsp->spec.window, width = dsp->spec.n_bands + VW_DSP_N_STATS;
    for (size_t i = 0; i < n; i++) {
        const vw_status_t status = vw_dsp_features(dsp, samples + i * window, features + i * width);
        if (status != VW_OK) {
            *failed = i;
            return status;
        }
    }
    return VW_OK;
}
