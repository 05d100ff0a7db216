#include "vw_engine.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "vw_kernel.h"

/* Largest padded output width of the hidden layers (all but the last); 0 if none. */
static uint32_t hidden_pad(const vw_model_t *m)
{
    uint32_t pad = 0;
    for (uint32_t i = 0; i + 1u < m->n_layers; i++) {
        if (m->layers[i].out_pad > pad) {
            pad = m->layers[i].out_pad;
        }
    }
    return pad;
}

size_t vw_engine_required_bytes(const vw_model_t *model)
{
    if (model == NULL || model->n_layers == 0) {
        return 0;
    }
    return sizeof(int16_t) * ((size_t)model->layers[0].in_pad + 2u * hidden_pad(model));
}

vw_status_t vw_engine_init(vw_engine_t *engine, const vw_model_t *model, void *work,
                           size_t work_bytes)
{
    if (engine == NULL || model == NULL || work == NULL || model->n_layers == 0) {
        return VW_ERR_ARG;
    }
    if (((uintptr_t)work & 3u) != 0) {
        return VW_ERR_ALIGN;
    }
    const size_t need = vw_engine_required_bytes(model);
    if (work_bytes < need) {
        return VW_ERR_BUFFER;
    }
    const size_t in_pad = model->layers[0].in_pad;
    engine->model = model;
    engine->input = (int16_t *)work;
    engine->ping = engine->input + in_pad;
    engine->pong = engine->ping + (need / sizeof(int16_t) - in_pad) / 2u; /* ping, pong alike */
    return VW_OK;
}

/* The requantisation runs once per output: inline it even at -Os (GCC and Clang); what
 * rarely runs stays out of the loops. */
#if defined(__GNUC__)
#define VW_HOT_INLINE inline __attribute__((always_inline))
#define VW_NOINLINE __attribute__((noinline))
#else
#define VW_HOT_INLINE inline
#define VW_NOINLINE
#endif

/* Memory position of input c in a pair-interleaved buffer (vw_kernel.h). */
static VW_HOT_INLINE uint32_t interleaved(uint32_t c)
{
    return c ^ (((c ^ (c >> 1)) & 1u) * 3u); /* bits 0 and 1 swapped */
}

/* Values 0..3 of a whole group into their interleaved places (0, 2, 1, 3). */
static VW_HOT_INLINE void put_group(int16_t *dst, int32_t v0, int32_t v1, int32_t v2, int32_t v3)
{
    dst[0] = (int16_t)v0;
    dst[1] = (int16_t)v2;
    dst[2] = (int16_t)v1;
    dst[3] = (int16_t)v3;
}

/* TFLite's fixed-point requantisation, the "double rounding" variant of
 * MultiplyByQuantizedMultiplier, exactly, with no 64-bit division or shift and no branch:
 * - x = acc * 2^left for left = max(shift, 0) (in int32, wrapping as TFLite's x * (1 << left));
 * - gemmlowp's SaturatingRoundingDoublingHighMul(x, mult) is
 *   (x*mult + (x*mult >= 0 ? 2^30 : 1 - 2^30)) / 2^31 truncated towards zero, which is
 *   floor((x*mult + 2^30) / 2^31) for either sign; its saturating case (both operands
 *   INT32_MIN) cannot occur, since vw_model_parse admits only mult in {0} u [2^30, 2^31);
 * - RoundingDivideByPOT(h, n) for n = max(-shift, 0) rounds half away from zero:
 *   (h + 2^(n-1) - [h < 0]) >> n for n > 0, h for n = 0; both are
 *   (h + ((2^n - [h < 0]) >> 1)) >> n. That sum cannot overflow: for n > 0,
 *   |h| <= |acc| < 2^30 (VW_MODEL_MAX_BIAS) and the rounding term is at most 2^30.
 * (>> of a negative value is arithmetic on every target we build.) */
static VW_HOT_INLINE int32_t requantize(int32_t acc, int32_t mult, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = left - shift;
    const int64_t p = (int64_t)(int32_t)((uint32_t)acc << left) * mult;
    const int32_t high = (int32_t)((p >> 31) + ((p >> 30) & 1)); /* floor((p + 2^30) / 2^31) */
    const uint32_t round = ((1u << right) - (uint32_t)(high < 0)) >> 1;
    return (high + (int32_t)round) >> right;
}

/* Float arithmetic must be done in float, not in a wider type, for the same bits everywhere. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#error "vw_engine needs FLT_EVAL_METHOD == 0 (float arithmetic in float)"
#endif

static VW_HOT_INLINE int32_t clamp(int32_t y, int32_t lo, int32_t hi)
{
    return y < lo ? lo : y > hi ? hi : y;
}

/* quantize_one for t = x * mul + add outside (-2^22, 2^22): the end of [-128, 127] on t's side,
 * -128 for NaN. t is not finite when x is not, which sets *bad. Rare, so kept out of line. */
static VW_NOINLINE int32_t quantize_far(float x, float t, int *bad)
{
    if (!(x - x == 0.0f)) { /* NaN and +-Inf give NaN */
        *bad = 1;
    }
    return t > 0.0f ? 127 : -128;
}

/* clamp(round_half_even(x * mul + add), -128, 127) in float32. Inside (-2^22, 2^22), adding and
 * subtracting 1.5 * 2^23 rounds to the nearest integer, ties to even (IEEE's default mode), in
 * two float operations, and the clamp is an integer one; x is then finite. */
static VW_HOT_INLINE int32_t quantize_one(float x, float mul, float add, int *bad)
{
    float t = x * mul;
    t = t + add;
    if (fabsf(t) < 4194304.0f) {
        t = t + 12582912.0f;
        t = t - 12582912.0f;
        const int32_t q = (int32_t)t;
        return q < -128 ? -128 : q > 127 ? 127 : q;
    }
    return quantize_far(x, t, bad);
}

/* Quantise every feature into the engine's input buffer (interleaved, zero point removed;
 * padding keeps its zeros); VW_ERR_INPUT if a feature is not finite. */
static vw_status_t quantize_all(const vw_engine_t *engine, const float *features)
{
    const vw_model_t *m = engine->model;
    const float *mul = m->in_mul, *add = m->in_add;
    const uint32_t n = m->n_features;
    const int32_t zp = m->in_zero_point;
    int16_t *in16 = engine->input;
    int bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        in16[interleaved(i)] = (int16_t)(quantize_one(features[i], mul[i], add[i], &bad) - zp);
    }
    return bad ? VW_ERR_INPUT : VW_OK;
}

vw_status_t vw_engine_quantize(const vw_engine_t *engine, const float *features, int8_t *q)
{
    if (engine == NULL || engine->model == NULL || features == NULL || q == NULL) {
        return VW_ERR_ARG;
    }
    const vw_model_t *m = engine->model;
    vw_status_t st = quantize_all(engine, features);
    for (uint32_t i = 0; i < m->n_features; i++) {
        q[i] = (int8_t)(engine->input[interleaved(i)] + m->in_zero_point);
    }
    return st;
}

/* Outputs per kernel call: 4 blocks of 4 rows. */
#define CHUNK 16u

/* Outputs c0 .. c0 + CHUNK - 1 of layer l (fewer at its end) into v: the kernel's sums,
 * requantised, clamped and with the zero point removed, which is what the next layer reads
 * and what the score needs (the last layer's zero point is the model's output zero point).
 * Returns how many outputs are real; those of the last group of 4 past them are 0. */
static uint32_t chunk(const vw_layer_t *l, const int16_t *x, uint32_t c0, int32_t v[CHUNK])
{
    const uint32_t groups = l->in_pad / 4u;
    const uint32_t padded = l->out_pad - c0 < CHUNK ? l->out_pad - c0 : CHUNK;
    const uint32_t rows = l->out_dim - c0 < CHUNK ? l->out_dim - c0 : CHUNK;
    vw_kernel_rows(l->weights + (size_t)c0 * 4u * groups, x, groups, padded / 4u, v);
    const int32_t *bias = l->bias + c0;
    const int32_t lo = l->act_min - l->out_zero_point;
    const int32_t hi = l->act_max - l->out_zero_point;
    int32_t *y = v, *const end = v + rows; /* rows >= 1 */
    if (l->per_channel) {
        const int32_t *mult = l->mult + c0;
        const int8_t *shift = l->shift + c0;
        do {
            *y = clamp(requantize(*y + *bias++, *mult++, *shift++), lo, hi);
        } while (++y != end);
    } else {
        const int32_t mult = l->mult[0];
        const int32_t shift = l->shift[0];
        do {
            *y = clamp(requantize(*y + *bias++, mult, shift), lo, hi);
        } while (++y != end);
    }
    if (rows < padded) { /* a partial last group of 4 */
        memset(end, 0, (padded - rows) * sizeof *end);
    }
    return rows;
}

/* A hidden layer: x -> y, both interleaved with the zero point removed; padding outputs 0. */
static void run_hidden(const vw_layer_t *l, const int16_t *x, int16_t *y)
{
    for (uint32_t c0 = 0; c0 < l->out_dim; c0 += CHUNK) {
        int32_t v[CHUNK];
        uint32_t rows = chunk(l, x, c0, v);
        int16_t *out = y + c0; /* c0 is a multiple of 4: interleave within the chunk */
        for (uint32_t r = 0; r < rows; r += 4u) {
            put_group(out + r, v[r], v[r + 1u], v[r + 2u], v[r + 3u]);
        }
    }
}

/* (out_scale * y - in_scale * q)^2: one term of the score, zero points removed. */
static VW_HOT_INLINE float squared_error(float out_scale, int32_t y, float in_scale, int16_t q)
{
    float d = out_scale * (float)y;
    d = d - in_scale * (float)q;
    return d * d;
}

/* The last layer, folded into the sum of squared differences (and output, if not NULL),
 * in feature order, two outputs at a time. An odd count's last pair takes the first
 * padding output, 0, which meets the input's padding, 0: it adds +0. */
static float run_last(const vw_layer_t *l, const int16_t *x, const vw_model_t *m,
                      const int16_t *input, int8_t *output)
{
    const float out_scale = m->out_scale, in_scale = m->in_scale;
    float sum = 0.0f;
    for (uint32_t c0 = 0; c0 < l->out_dim; c0 += CHUNK) {
        int32_t v[CHUNK];
        uint32_t rows = chunk(l, x, c0, v);
        const int16_t *in = input + c0; /* output c0 + r meets in[interleaved(r)] */
        for (uint32_t r = 0; r < rows; r += 2u) {
            const uint32_t j = r - ((r >> 1) & 1u); /* interleaved(r): r is even */
            sum = sum + squared_error(out_scale, v[r], in_scale, in[j]);
            sum = sum + squared_error(out_scale, v[r + 1u], in_scale, in[j + 2u]);
        }
        if (output != NULL) {
            for (uint32_t k = 0; k < rows; k++) {
                output[c0 + k] = (int8_t)(v[k] + l->out_zero_point);
            }
        }
    }
    return sum;
}

/* All layers over engine->input; the last one folds into the score. */
static void run_layers(vw_engine_t *engine, int8_t *output, float *score)
{
    const vw_model_t *m = engine->model;
    /* The input's padding is 0, which run_last relies on: written on every run, since the
       working memory holds nothing from one run to the next (an OTA verification runs
       another model in the device's engine memory between two windows). */
    for (uint32_t i = m->n_features; (i & 3u) != 0u; i++) { /* up to in_pad, a multiple of 4 */
        engine->input[interleaved(i)] = 0;
    }
    const int16_t *x = engine->input;
    int16_t *bufs[2] = {engine->ping, engine->pong};
    uint32_t last = m->n_layers - 1u;
    for (uint32_t i = 0; i < last; i++) {
        run_hidden(&m->layers[i], x, bufs[i & 1u]);
        x = bufs[i & 1u];
    }
    float sum = run_last(&m->layers[last], x, m, engine->input, output);
    if (score != NULL) {
        *score = sum / (float)m->n_features;
    }
}

vw_status_t vw_engine_run(vw_engine_t *engine, const int8_t *input, int8_t *output, float *score)
{
    if (engine == NULL || engine->model == NULL || input == NULL) {
        return VW_ERR_ARG;
    }
    const vw_model_t *m = engine->model;
    int16_t *in16 = engine->input;
    const uint32_t n = m->n_features;
    const int32_t zp = m->in_zero_point;
    for (uint32_t i = 0; i < n; i++) {
        in16[interleaved(i)] = (int16_t)(input[i] - zp);
    }
    run_layers(engine, output, score);
    return VW_OK;
}

vw_status_t vw_engine_infer(vw_engine_t *engine, const float *features, float *score)
{
    if (engine == NULL || engine->model == NULL || features == NULL) {
        return VW_ERR_ARG;
    }
    vw_status_t st = quantize_all(engine, features);
    if (st == VW_OK) {
        run_layers(engine, NULL, score);
    }
    return st;
}

vw_status_t vw_engine_check_golden(vw_engine_t *engine)
{
    if (engine == NULL || engine->model == NULL) {
        return VW_ERR_ARG;
    }
    const vw_model_t *m = engine->model;
    size_t n = m->n_features;
    size_t rec = vw_model_golden_record_bytes(m);
    int8_t out[VW_DSP_MAX_BANDS + VW_DSP_N_STATS];
    for (size_t g = 0; g < m->golden_count; g++) {
        const uint8_t *r = m->golden + g * rec;
        const int8_t *in = (const int8_t *)r;
        const int8_t *expected = (const int8_t *)(r + (rec - 4u) / 2u);
        float score;
        vw_status_t st = vw_engine_run(engine, in, out, &score);
        if (st != VW_OK) {
            return st;
        }
        if (memcmp(out, expected, n) != 0 || memcmp(&score, r + rec - 4u, sizeof score) != 0) {
            return VW_ERR_GOLDEN;
        }
    }
    return VW_OK;
}
