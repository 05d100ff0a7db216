/* Host unit tests of vw_crc32, vw_model and vw_engine on a blob built here, byte by byte. */
#include <math.h>
#include <string.h>

#include "vw_crc32.h"
#include "vw_engine.h"
#include "vw_model.h"
#include "vw_test.h"

#define N (2 + (int)VW_DSP_N_STATS) /* 2 bands and the statistics: odd, so a pad input */

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        *p++ = (uint8_t)(v >> (8 * i));
    }
    return p;
}

static uint8_t *putf(uint8_t *p, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return put32(p, bits);
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    *p++ = (uint8_t)v;
    *p++ = (uint8_t)(v >> 8);
    return p;
}

/* The requantisation of the one layer: per-tensor (mult[0], shift[0]) or per-channel. */
typedef struct {
    uint8_t per_channel;
    int32_t mult[8];
    int8_t shift[8];
    int32_t bias[8];
} requant_t;

/* One layer N -> N (padded 8 x 8), weights 2 on the diagonal, requantised by q. */
static size_t build_with(uint32_t *storage, const requant_t *q)
{
    uint8_t *b = (uint8_t *)storage;
    memset(b, 0, 1024);
    uint8_t *p = b;
    memcpy(p, VW_MODEL_MAGIC, 4);
    p = put16(p + 4, 1);
    p = put16(p, 64);
    p += 8; /* total and CRC, below */
    p = put32(p, 3);       /* model version */
    p = put32(p, 16000);   /* sample rate */
    p = put16(p, 256);     /* window */
    p = put16(p, 2);       /* bands */
    p = put16(p, N);       /* features */
    p = put16(p, 1);       /* layers */
    p = putf(p, 0.5f);     /* input scale */
    p = put32(p, (uint32_t)-2);
    p = putf(p, 0.25f);    /* output scale */
    p = put32(p, 1);
    p = putf(p, 2.0f);     /* threshold */
    p = put16(p, 0);       /* golden */
    *p++ = 1;              /* id length */
    p = b + 64;
    *p = 'm';
    p += 4;
    p = put16(p, 1);
    p = put16(p, 5);
    p = put16(p, 9);       /* band bins [1, 5), [5, 9) */
    p += 2;                /* to 4 bytes */
    for (int i = 0; i < N; i++) {
        p = putf(p, 2.0f); /* mul */
    }
    for (int i = 0; i < N; i++) {
        p = putf(p, -2.0f); /* add */
    }
    p = put16(p, N);
    p = put16(p, N);
    *p++ = (uint8_t)-128;
    *p++ = 127;
    *p++ = q->per_channel;
    *p++ = 0;
    p = put32(p, 1); /* output zero point */
    p = put32(p, 0);
    /* 8x8 padded weights in 4x4 blocks: w[c][j] = (c == j) ? 2 : 0 */
    for (int c = 0; c < N; c++) {
        int blk = c / 4, r = c % 4, g = c / 4, k = c % 4;
        p[blk * 32 + g * 16 + r * 4 + k] = 2;
    }
    p += 64;
    for (int c = 0; c < 8; c++) {
        p = put32(p, (uint32_t)q->bias[c]);
    }
    int n_q = q->per_channel ? 8 : 1;
    for (int c = 0; c < n_q; c++) {
        p = put32(p, (uint32_t)q->mult[c]);
    }
    for (int c = 0; c < n_q; c++) {
        p[c] = (uint8_t)q->shift[c];
    }
    p += q->per_channel ? 8 : 4;
    size_t total = (size_t)(p - b);
    put32(b + 8, (uint32_t)total);
    put32(b + 12, vw_crc32_update(0, b, total));
    return total;
}

/* Bias 4c, multiplier 0.5, shift 0: y = round(acc / 2). */
static size_t build(uint32_t *storage)
{
    requant_t q = {0, {1 << 30}, {0}, {0, 4, 8, 12, 16, 20, 24}};
    return build_with(storage, &q);
}

/* TFLite's MultiplyByQuantizedMultiplier as its reference code writes it. */
static int32_t tflite_requantize(int32_t acc, int32_t mult, int shift)
{
    int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    int64_t ab = (int64_t)(int32_t)((uint32_t)acc << left) * mult;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    int32_t high = (int32_t)((ab + nudge) / ((int64_t)1 << 31));
    int32_t mask = (int32_t)(((int64_t)1 << right) - 1);
    int32_t remainder = high & mask, threshold = (mask >> 1) + (high < 0);
    return (high >> right) + (remainder > threshold);
}

/* Every output against tflite_requantize, for random multipliers, every shift from -31
 * to 30, biases up to the bound, per-tensor and per-channel. */
static void test_requantization(void)
{
    static uint32_t blob[256];
    uint32_t seed = 1u;
    int mismatches = 0;
    for (int trial = 0; trial < 2000; trial++) {
        requant_t q;
        memset(&q, 0, sizeof q);
        q.per_channel = (uint8_t)(trial & 1);
        for (int c = 0; c < 8; c++) {
            seed = seed * 1664525u + 1013904223u;
            q.mult[c] = (seed & 7u) == 0 ? 0 : (int32_t)((1u << 30) | (seed >> 2));
            q.shift[c] = (int8_t)((int)((seed >> 8) % 62u) - 31);
            const uint32_t span = 2u * VW_MODEL_MAX_BIAS + 1u;
            int32_t bias = (int32_t)((seed >> 3) % span) - VW_MODEL_MAX_BIAS;
            q.bias[c] = c >= N ? 0 : (trial & 2) ? bias >> ((seed >> 20) % 31u) : bias;
        }
        size_t len = build_with(blob, &q);
        vw_model_t m;
        vw_engine_t e;
        uint32_t work[16];
        if (vw_model_parse(&m, (const uint8_t *)blob, len) != VW_OK ||
            vw_engine_init(&e, &m, work, sizeof work) != VW_OK) {
            VW_CHECK(0);
            return;
        }
        int8_t in[N], out[N];
        for (int c = 0; c < N; c++) {
            seed = seed * 1664525u + 1013904223u;
            in[c] = (int8_t)(seed >> 24);
        }
        VW_CHECK_EQ(vw_engine_run(&e, in, out, NULL), VW_OK);
        for (int c = 0; c < N; c++) {
            int k = q.per_channel ? c : 0;
            int32_t acc = q.bias[c] + 2 * (in[c] + 2); /* input zero point -2 */
            int32_t y = tflite_requantize(acc, q.mult[k], q.shift[k]) + 1;
            y = y < -128 ? -128 : y > 127 ? 127 : y;
            if (out[c] != y && mismatches++ < 5) {
                fprintf(stderr, "acc %d mult %d shift %d: %d, want %d\n", (int)acc,
                        (int)q.mult[k], q.shift[k], out[c], (int)y);
            }
        }
    }
    VW_CHECK_EQ(mismatches, 0);
}

/* q = clamp(round_half_even(x * 2 - 2), -128, 127), also far outside int8 and for values
 * that are not finite; a non-finite feature is refused, a finite one never is. */
static void test_quantization(vw_engine_t *e)
{
    static const struct {
        float x;
        int8_t q;
    } cases[] = {
        {1.25f, 0},          {1.75f, 2},          {0.75f, 0},          {0.25f, -2},
        {-0.0f, -2},         {64.25f, 126},       {64.75f, 127},       {65.0f, 127},
        {-62.25f, -126},     {-62.75f, -128},     {-100.0f, -128},     {2097153.0f, 127},
        {-2097151.0f, -128}, {2097152.5f, 127},   {1e30f, 127},        {-1e30f, -128},
        {3e38f, 127},        {-3e38f, -128},      {1e-40f, -2},        {0.5f + 0x1p-23f, -1},
    };
    const size_t n_cases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n_cases; i++) {
        float features[N];
        int8_t q[N];
        for (size_t k = 0; k < N; k++) {
            features[k] = cases[(i + k) % n_cases].x;
        }
        VW_CHECK_EQ(vw_engine_quantize(e, features, q), VW_OK);
        for (size_t k = 0; k < N; k++) {
            VW_CHECK_EQ(q[k], cases[(i + k) % n_cases].q);
        }
    }
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        for (size_t at = 0; at < N; at++) {
            float features[N] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
            features[at] = bad[i];
            int8_t q[N];
            float score;
            VW_CHECK_EQ(vw_engine_quantize(e, features, q), VW_ERR_INPUT);
            VW_CHECK_EQ(q[at], i == 1 ? 127 : -128);
            VW_CHECK_EQ(vw_engine_infer(e, features, &score), VW_ERR_INPUT);
        }
    }
}

int main(void)
{
    VW_CHECK_EQ(vw_crc32_update(0, (const uint8_t *)"123456789", 9), 0xCBF43926u);
    VW_CHECK_EQ(vw_crc32_update(vw_crc32_update(0, (const uint8_t *)"1234", 4),
                                (const uint8_t *)"56789", 5),
                0xCBF43926u);

    static uint32_t blob[256];
    size_t len = build(blob);
    const uint8_t *bytes = (const uint8_t *)blob;
    vw_model_t m;
    VW_CHECK_EQ(vw_model_parse(&m, bytes, len), VW_OK);
    VW_CHECK_EQ(m.n_layers, 1);
    VW_CHECK_EQ(m.macs, N * N);
    VW_CHECK_EQ(m.max_pad, 8);
    VW_CHECK(strcmp(m.id, "m") == 0);
    VW_CHECK_EQ(vw_model_parse(NULL, bytes, len), VW_ERR_ARG);
    VW_CHECK_EQ(vw_model_parse(&m, bytes + 1, len - 1), VW_ERR_ALIGN);
    for (size_t cut = 0; cut < len; cut++) {
        VW_CHECK(vw_model_parse(&m, bytes, cut) == VW_ERR_TRUNCATED);
    }
    for (size_t at = 16; at < len; at++) {
        ((uint8_t *)blob)[at] ^= 0x40;
        VW_CHECK(vw_model_parse(&m, bytes, len) == VW_ERR_CRC);
        ((uint8_t *)blob)[at] ^= 0x40;
    }

    VW_CHECK_EQ(vw_model_parse(&m, bytes, len), VW_OK);
    vw_engine_t e;
    uint32_t work[16];
    VW_CHECK_EQ(vw_engine_required_bytes(&m), 2 * 8); /* input only: no hidden layer */
    VW_CHECK_EQ(vw_engine_init(&e, &m, work, 8), VW_ERR_BUFFER);
    VW_CHECK_EQ(vw_engine_init(&e, &m, (uint8_t *)work + 2, 32), VW_ERR_ALIGN);
    VW_CHECK_EQ(vw_engine_init(&e, &m, work, sizeof work), VW_OK);

    /* y_c = round((2 (x_c + 2) + 4c) / 2) + 1 = x_c + 2c + 3, clamped */
    const int8_t in[N] = {-2, 0, 10, 120, -128, 30, -50};
    int8_t out[N];
    float score = -1.0f;
    VW_CHECK_EQ(vw_engine_run(&e, in, out, &score), VW_OK);
    const int8_t want[N] = {1, 5, 17, 127, -117, 43, -35};
    VW_CHECK(memcmp(out, want, N) == 0);
    float sum = 0.0f;
    for (int c = 0; c < N; c++) {
        float d = 0.25f * (float)(want[c] - 1) - 0.5f * (float)(in[c] + 2);
        sum = sum + d * d;
    }
    VW_CHECK(score == sum / (float)N);

    /* x * 2 - 2, rounded half to even: 0.5, -0.5, 2.5, 198, -202, 4, -3.5 */
    float features[N] = {1.25f, 0.75f, 2.25f, 100.0f, -100.0f, 3.0f, -0.75f};
    int8_t q[N];
    VW_CHECK_EQ(vw_engine_quantize(&e, features, q), VW_OK);
    const int8_t want_q[N] = {0, 0, 2, 127, -128, 4, -4};
    VW_CHECK(memcmp(q, want_q, N) == 0);
    float infer_score;
    VW_CHECK_EQ(vw_engine_infer(&e, features, &infer_score), VW_OK);
    VW_CHECK_EQ(vw_engine_run(&e, q, NULL, &score), VW_OK);
    VW_CHECK(infer_score == score);
    features[2] = NAN;
    VW_CHECK_EQ(vw_engine_quantize(&e, features, q), VW_ERR_INPUT);
    features[2] = INFINITY;
    VW_CHECK_EQ(vw_engine_infer(&e, features, &score), VW_ERR_INPUT);
    VW_CHECK_EQ(vw_engine_check_golden(&e), VW_OK); /* no golden vectors: nothing to miss */

    /* The working memory holds nothing between runs: another engine may have used it. */
    features[2] = 2.25f;
    VW_CHECK_EQ(vw_engine_infer(&e, features, &score), VW_OK);
    memset(work, 0x5a, sizeof work);
    VW_CHECK_EQ(vw_engine_infer(&e, features, &infer_score), VW_OK);
    VW_CHECK(infer_score == score);
    memset(work, 0xa5, sizeof work);
    VW_CHECK_EQ(vw_engine_run(&e, in, out, &score), VW_OK);
    VW_CHECK(memcmp(out, want, N) == 0);
    test_quantization(&e);
    test_requantization();
    return vw_test_report("test_engine");
}
