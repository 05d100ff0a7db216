/**
 * @file vw_engine.h
 * @brief Int8 autoencoder inference and the anomaly score.
 *
 * Fully connected layers compute, for each output c,
 *   acc = bias[c] + sum_j (x[j] - in_zp) * w[c][j]
 *   y   = clamp(MultiplyByQuantizedMultiplier(acc, mult, shift) + out_zp,
 *               act_min, act_max)
 * exactly as TFLite Micro's reference FULLY_CONNECTED kernel does (double
 * rounding: saturating rounding doubling high multiply, then rounding
 * divide by a power of two), so every output byte equals the interpreter's.
 *
 * The score is the mean squared reconstruction error in the normalised
 * feature space, in float32, summed in feature order:
 *   d_i = out_scale * (y_i - out_zp) - in_scale * (q_i - in_zp)
 *   score = (sum_i d_i * d_i) / n_features
 *
 * Working memory (vw_engine_required_bytes): the quantised input, kept for
 * the score, and one ping-pong buffer for the hidden layers, both as int16
 * with the zero point removed (the form the multiply-accumulate kernel
 * reads). The last layer's outputs are folded into the score as they are
 * produced and never stored.
 */
#ifndef VW_ENGINE_H
#define VW_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "vw_model.h"
#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vw_engine {
    const vw_model_t *model;
    int16_t *input;  /**< max_pad: quantised input minus its zero point */
    int16_t *ping;   /**< max_pad */
    int16_t *pong;   /**< max_pad */
} vw_engine_t;

/** @brief Bytes of working memory for @p model (0 if model is NULL). */
size_t vw_engine_required_bytes(const vw_model_t *model);

/**
 * @brief Bind an engine to a parsed model and caller-owned, 4-byte aligned memory.
 *
 * The memory holds nothing from one run to the next: between runs, other engines may use
 * it (the device shares it with the OTA state machine's golden-vector checks).
 * @return VW_OK, VW_ERR_ARG, VW_ERR_ALIGN or VW_ERR_BUFFER.
 */
vw_status_t vw_engine_init(vw_engine_t *engine, const vw_model_t *model, void *work,
                           size_t work_bytes);

/**
 * @brief Quantise features with the model's folded normalisation:
 *        q = clamp(round_half_even(x * mul + add), -128, 127) in float32.
 * It quantises into the engine's working memory, as vw_engine_infer does, and reads q
 * back from there.
 * @param features n_features floats (input)
 * @param q        n_features int8 (output)
 * @return VW_OK, VW_ERR_ARG, or VW_ERR_INPUT if a feature is not finite (q is then
 *         written but meaningless).
 */
vw_status_t vw_engine_quantize(const vw_engine_t *engine, const float *features, int8_t *q);

/**
 * @brief Run the autoencoder on a quantised input.
 * @param input  n_features int8 (input)
 * @param output n_features int8 reconstruction (output), or NULL
 * @param score  anomaly score (output), or NULL
 * @return VW_OK or VW_ERR_ARG.
 */
vw_status_t vw_engine_run(vw_engine_t *engine, const int8_t *input, int8_t *output, float *score);

/**
 * @brief Quantise, run, score: the per-window call on the device.
 * @return VW_OK, VW_ERR_ARG or VW_ERR_INPUT.
 */
vw_status_t vw_engine_infer(vw_engine_t *engine, const float *features, float *score);

/**
 * @brief Run every golden vector of the model and compare bytes and score bits.
 *
 * Needs VW_DSP_MAX_BANDS + VW_DSP_N_STATS bytes of stack for one reconstruction
 * (it runs once per OTA install, not per window).
 * @return VW_OK, VW_ERR_GOLDEN on the first difference, VW_ERR_ARG.
 */
vw_status_t vw_engine_check_golden(vw_engine_t *engine);

#ifdef __cplusplus
}
#endif
#endif /* VW_ENGINE_H */
