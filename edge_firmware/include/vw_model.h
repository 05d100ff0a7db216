/**
 * @file vw_model.h
 * @brief Parse and validate a .vwm model blob (format version 1).
 *
 * The blob is little-endian, 4-byte aligned, and read in place (from flash):
 * the parsed vw_model_t points into it. Every length and offset is checked
 * against the blob size before it is used, and every derived value (band
 * edges, dims, activation ranges, shifts) against its valid range, so a
 * corrupted, truncated, oversized or hostile blob yields an error status.
 *
 * Layout (docs/vwm-format.md has the byte-level table):
 *
 *   header (64 bytes)
 *     0  char[4]  magic "VWM1"
 *     4  u16      format version (1)
 *     6  u16      header size (64)
 *     8  u32      total size of the blob in bytes
 *    12  u32      CRC-32 (IEEE 802.3) of the whole blob with these 4 bytes as zero
 *    16  u32      model version
 *    20  u32      sample rate (Hz)
 *    24  u16      window         26 u16  number of bands
 *    28  u16      n_features     30 u16  number of layers
 *    32  f32      input scale    36 i32  input zero point
 *    40  f32      output scale   44 i32  output zero point
 *    48  f32      score threshold
 *    52  u16      golden count   54 u8   model id length   55 u8 reserved (0)
 *    56  f32      threshold ceiling: the highest threshold a device may set itself
 *                 (`calibrate`); 0: the score threshold; else >= the score threshold
 *    60  u32      reserved (0)
 *   model id       (id length bytes, [A-Za-z0-9._-], padded to 4)
 *   band bin edges (u16[n_bands + 1], padded to 4)
 *   input affine   (f32 mul[n_features], f32 add[n_features]):
 *                  q = clamp(round_half_even(x * mul + add), -128, 127), in float32
 *                  (per-feature normalisation folded into input quantisation)
 *   layers, each:
 *     16-byte header: u16 in_dim, u16 out_dim, i8 act_min, i8 act_max,
 *                     u8 per_channel, u8 reserved, i32 output zero point,
 *                     u32 reserved
 *     weights  int8[out_pad * in_pad], pad = dim rounded up to 4, in 4x4
 *              blocks: for each block of 4 rows, for each group of 4 inputs,
 *              16 bytes = 4 rows x 4 inputs (row-major); padding is zero
 *     bias     int32[out_pad], |bias| <= VW_MODEL_MAX_BIAS
 *     mult     int32[n_q], n_q = per_channel ? out_pad : 1
 *     shift    int8[n_q], padded to 4
 *   golden vectors (golden count of them):
 *     int8 input[n_features] padded to 4, int8 output[n_features] padded
 *     to 4, f32 score
 *
 * n_features = n_bands + VW_DSP_N_STATS. Layer 0 takes n_features inputs,
 * each layer's in_dim is the previous out_dim, the last out_dim is
 * n_features. A layer's input zero point is the previous layer's output
 * zero point (layer 0: the model's input zero point); the last layer's
 * output zero point equals the model's output zero point.
 */
#ifndef VW_MODEL_H
#define VW_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vw_dsp.h"
#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VW_MODEL_MAGIC "VWM1"
#define VW_MODEL_FORMAT_VERSION 1u
#define VW_MODEL_HEADER_BYTES 64u
#define VW_MODEL_MAX_LAYERS 16u
#define VW_MODEL_MAX_DIM 2048u
#define VW_MODEL_MAX_ID 64u
#define VW_MODEL_MAX_GOLDEN 64u
#define VW_MODEL_MAX_BYTES (16u * 1024u * 1024u)
/** Largest |bias|: 2^30 - 2^27, so that |bias + sum| < 2^30 for every layer. */
#define VW_MODEL_MAX_BIAS ((1 << 30) - (1 << 27))

/** One int8 fully connected layer, pointing into the blob. */
typedef struct vw_layer {
    uint16_t in_dim, out_dim;
    uint16_t in_pad, out_pad;   /**< dims rounded up to a multiple of 4 */
    int8_t act_min, act_max;    /**< fused activation range (ReLU: [zp, 127]) */
    uint8_t per_channel;        /**< 1: one multiplier/shift per output */
    int32_t in_zero_point;
    int32_t out_zero_point;
    const int8_t *weights;      /**< out_pad * in_pad, 4x4 blocked */
    const int32_t *bias;        /**< out_pad */
    const int32_t *mult;        /**< per_channel ? out_pad : 1, in [2^30, 2^31) or 0 */
    const int8_t *shift;        /**< per_channel ? out_pad : 1, in [-31, 30] */
} vw_layer_t;

/** A parsed model; all pointers point into the blob. */
typedef struct vw_model {
    /* The scalars first, where Thumb-2's 16-bit loads reach them (halfwords in the first 64
     * bytes, words in 128); the id and the layers after them. */
    vw_feature_spec_t spec;
    uint32_t version;
    uint32_t blob_bytes;
    uint16_t n_features;
    uint16_t n_layers;
    uint16_t max_pad;             /**< largest in_pad/out_pad of any layer */
    uint16_t golden_count;
    float in_scale, out_scale;
    int32_t in_zero_point, out_zero_point;
    float threshold;
    float threshold_ceiling;      /**< highest threshold a device may calibrate to */
    uint32_t crc;                 /**< the blob's CRC-32 (header offset 12): its identity */
    const float *in_mul, *in_add; /**< n_features each */
    const uint8_t *golden;        /**< golden_count records, see the layout */
    uint32_t macs;                /**< multiply-accumulates per inference (unpadded) */
    char id[VW_MODEL_MAX_ID + 1]; /**< NUL-terminated copy */
    vw_layer_t layers[VW_MODEL_MAX_LAYERS];
} vw_model_t;

/**
 * @brief Parse and fully validate a blob, including its CRC.
 * @param blob  4-byte aligned, @p len bytes; must outlive @p model
 * @return VW_OK, VW_ERR_ARG, VW_ERR_ALIGN, VW_ERR_MAGIC, VW_ERR_VERSION,
 *         VW_ERR_TRUNCATED, VW_ERR_CRC, VW_ERR_FORMAT or VW_ERR_UNSUPPORTED.
 */
vw_status_t vw_model_parse(vw_model_t *model, const uint8_t *blob, size_t len);

/**
 * @brief Whether @p len bytes at @p id are an id of the wire contract: 1..VW_MODEL_MAX_ID
 *        characters of [A-Za-z0-9._-] (model, feature-spec, job, command and capability ids).
 */
int vw_model_id_valid(const char *id, size_t len);

/** @brief Byte size of one golden record of @p model. */
size_t vw_model_golden_record_bytes(const vw_model_t *model);

#ifdef __cplusplus
}
#endif
#endif /* VW_MODEL_H */
