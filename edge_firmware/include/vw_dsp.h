/**
 * @file vw_dsp.h
 * @brief Vibration features of one window of accelerometer samples.
 *
 * For a window of N samples (N a power of two, 256..4096):
 *  1. remove the mean;
 *  2. RMS, peak (max |x|), crest factor (peak / RMS) and kurtosis
 *     (mean(x^4) / mean(x^2)^2, not excess) of the mean-removed samples;
 *     crest and kurtosis are 0 for a constant window; and the kurtosis of the
 *     first difference d[i] = x[i] - x[i-1], i = 1..N-1, about its mean (0 when
 *     d is constant). The difference is a high-pass filter (gain 2 sin(pi f / fs)):
 *     its kurtosis sees the short impacts of a bearing defect, which ring the
 *     structure at high frequency, through the shaft's far larger low-frequency
 *     vibration that dominates the plain kurtosis;
 *  3. periodic Hann window w[n] = 0.5 - 0.5 cos(2 pi n / N);
 *  4. real FFT X[k], k = 0..N/2, and power P[k] = |X[k]|^2 / N^2;
 *  5. band b covers FFT bins [bins[b], bins[b+1]) and its feature is
 *     log10(sum of P over the band + 1e-12).
 *
 * The feature vector is
 * [band_0 .. band_{B-1}, rms, peak, crest, kurtosis, diff_kurtosis]:
 * B + VW_DSP_N_STATS floats. Arithmetic is float32. The statistics and the
 * band powers agree with a float64 reference to 1e-4 relative, except bands
 * far below the window's average bin, which carry float32 FFT rounding noise
 * (about log2(N) epsilons of the spectrum's rms per bin).
 */
#ifndef VW_DSP_H
#define VW_DSP_H

#include <stddef.h>
#include <stdint.h>

#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VW_DSP_MIN_WINDOW 256u
#define VW_DSP_MAX_WINDOW 4096u
#define VW_DSP_MAX_BANDS 1024u
#define VW_DSP_MAX_RATE_HZ 1000000u
#define VW_DSP_N_STATS 5u
/** The statistics after the bands, in order, as the feature-spec id names them. */
#define VW_DSP_STAT_NAMES "rms,peak,crest,kurtosis,diff_kurtosis"

/** The feature spec: what a model expects from the DSP. */
typedef struct vw_feature_spec {
    uint32_t sample_rate_hz; /**< sensor sample rate, 1..VW_DSP_MAX_RATE_HZ */
    uint16_t window;         /**< samples per window: power of two, 256..4096 */
    uint16_t n_bands;        /**< number of bands, 1..VW_DSP_MAX_BANDS (one band may be one bin) */
    /** n_bands + 1 strictly increasing FFT bin edges, last one <= window/2 + 1. */
    const uint16_t *band_bins;
} vw_feature_spec_t;

/** DSP state; fill with vw_dsp_init, then call vw_dsp_features per window. */
typedef struct vw_dsp {
    vw_feature_spec_t spec;
    float *work;      /**< window + 2 floats: samples, then the spectrum in place */
    float *cos_table; /**< window/4 + 1 floats: cos(2 pi k / window) */
} vw_dsp_t;

/**
 * The rule of vw_feature_spec_t that a spec breaks. The values are part of the
 * Python binding's contract (vibewatch.edge.spec words the messages): append
 * new values, never renumber.
 */
typedef enum vw_spec_fault {
    VW_SPEC_FAULT_NONE = 0,    /**< the spec is valid */
    VW_SPEC_FAULT_RATE = 1,    /**< sample_rate_hz outside 1..VW_DSP_MAX_RATE_HZ */
    VW_SPEC_FAULT_WINDOW = 2,  /**< window not a power of two in VW_DSP_MIN_WINDOW..MAX_WINDOW */
    VW_SPEC_FAULT_BANDS = 3,   /**< n_bands outside 1..VW_DSP_MAX_BANDS */
    VW_SPEC_FAULT_ORDER = 4,   /**< band edges not strictly increasing */
    VW_SPEC_FAULT_NYQUIST = 5  /**< last band edge above window / 2 + 1 */
} vw_spec_fault_t;

/**
 * @brief Validate a feature spec: the one statement of the rule.
 * @param spec  the spec (input); spec->band_bins holds spec->n_bands + 1 edges
 *              when n_bands is in range (only then are they read)
 * @param fault where to say which rule is broken, the first in the order of
 *              vw_spec_fault_t (output, may be NULL); VW_SPEC_FAULT_NONE when valid
 * @return VW_OK, VW_ERR_ARG (spec or band_bins NULL) or VW_ERR_FORMAT.
 */
vw_status_t vw_dsp_check_spec_fault(const vw_feature_spec_t *spec, vw_spec_fault_t *fault);

/** @brief Validate a feature spec: vw_dsp_check_spec_fault without the fault. */
vw_status_t vw_dsp_check_spec(const vw_feature_spec_t *spec);

/** Longest feature-spec id (vw_dsp_spec_id), without the terminating NUL. */
#define VW_DSP_SPEC_ID_MAX 40u

/**
 * @brief The feature-spec id devices send with their feature vectors (`features.spec`).
 *
 * `fs-{sample_rate_hz}-{window}-{n_bands}-{h}`, where h is the first 8 lowercase hex
 * digits of the SHA-256 of the band edges written in decimal and joined by commas,
 * then ";" and VW_DSP_STAT_NAMES ("0,3,7,...;rms,peak,..."): the id names every
 * column of the vector, so vectors of another DSP never pass as this one's. The one
 * definition of the id; the back end asks this function.
 * @param spec a valid spec (input)
 * @param id   VW_DSP_SPEC_ID_MAX + 1 bytes (output, NUL-terminated)
 * @return VW_OK, VW_ERR_ARG or VW_ERR_FORMAT (as vw_dsp_check_spec).
 */
vw_status_t vw_dsp_spec_id(const vw_feature_spec_t *spec, char id[VW_DSP_SPEC_ID_MAX + 1]);

/** @brief Bytes of working memory vw_dsp_init needs for @p window samples (0 if invalid). */
size_t vw_dsp_required_bytes(uint16_t window);

/**
 * @brief Prepare the DSP for @p spec using caller-owned @p work (4-byte aligned).
 * @param spec copied; spec->band_bins must outlive the vw_dsp_t.
 * @return VW_OK, VW_ERR_ARG, VW_ERR_FORMAT, VW_ERR_ALIGN or VW_ERR_BUFFER.
 */
vw_status_t vw_dsp_init(vw_dsp_t *dsp, const vw_feature_spec_t *spec, void *work,
                        size_t work_bytes);

/**
 * @brief Features of one window.
 * @param samples  spec.window samples (input, unchanged)
 * @param features spec.n_bands + VW_DSP_N_STATS floats (output)
 * @return VW_OK, VW_ERR_ARG, or VW_ERR_INPUT if a sample is not finite or a
 *         feature overflows float32 (samples beyond about 1e19).
 */
vw_status_t vw_dsp_features(vw_dsp_t *dsp, const float *samples, float *features);

/*
 * The DSP's own sine and logarithm, in place of the C library's (whose last bits differ
 * between libraries): float32 +, -, *, / and bit operations only, so every IEEE 754
 * build computes the same bits. Exposed for their unit tests.
 */

/** @brief sin x for |x| <= pi/2, within 2 ulp (the cosine table is read from it). */
float vw_dsp_sin(float x);

/**
 * @brief log10 x for a positive normal x (FLT_MIN..FLT_MAX), within 0.84 ulp.
 * +inf and NaN are returned unchanged; zero, subnormal and negative x are outside the
 * domain (the band energies are at least 1e-12).
 */
float vw_dsp_log10(float x);

#ifdef __cplusplus
}
#endif
#endif /* VW_DSP_H */
