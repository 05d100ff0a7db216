/*
 * libFuzzer target: the .vwm blob parser, and the engine on every blob it accepts.
 *
 * Input: one mode byte, then the blob.
 *   mode bit 0: overwrite the header's total size (offset 8) with the blob length
 *               rounded down to a multiple of 4;
 *   mode bit 1: recompute the CRC-32 (offset 12) after that.
 * A random blob almost never carries a valid CRC; with bit 1 set the fuzzer gets
 * past the CRC check and exercises every field check behind it, and the engine
 * then runs on hostile but well-formed blobs.
 *
 * The blob is copied into a heap buffer of exactly its length (malloc is 4-byte
 * aligned), so AddressSanitizer reports any read past its end; the engine's
 * working memory is likewise exactly vw_engine_required_bytes.
 *
 * Invariants checked (a violation aborts, which the fuzzer reports as a crash):
 *   - a status is one of vw_status.h's; an accepted blob is no longer than the data
 *     and its model fits the limits;
 *   - parsing the same bytes without the trailing slack gives the same result;
 *   - the engine binds with exactly the memory it asks for and runs every input;
 *   - scores are never negative (they may be +Inf or NaN for extreme scales), and
 *     quantising refuses exactly the feature vectors inference refuses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_crc32.h"
#include "vw_engine.h"
#include "vw_model.h"

#include "vw_fuzz.h"

#define MODE_FIX_SIZE 0x01u
#define MODE_FIX_CRC 0x02u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void fix_header(uint8_t *blob, size_t len, uint8_t mode)
{
    if (len < VW_MODEL_HEADER_BYTES) {
        return;
    }
    if (mode & MODE_FIX_SIZE) {
        put32(blob + 8, (uint32_t)(len & ~(size_t)3u));
    }
    if (mode & MODE_FIX_CRC) {
        uint32_t total = (uint32_t)blob[8] | ((uint32_t)blob[9] << 8) |
                         ((uint32_t)blob[10] << 16) | ((uint32_t)blob[11] << 24);
        size_t n = total < len ? total : len;
        put32(blob + 12, 0);
        put32(blob + 12, vw_crc32_update(0, blob, n));
    }
}

/* The engine on a parsed model: golden vectors, one derived int8 input, one derived float input. */
static void exercise_engine(const vw_model_t *model, const uint8_t *blob, size_t len, uint8_t mode)
{
    size_t need = vw_engine_required_bytes(model);
    require(need > 0);
    void *work = malloc(need);
    require(work != NULL);
    vw_engine_t engine;
    require(vw_engine_init(&engine, model, work, need) == VW_OK);

    vw_status_t st = vw_engine_check_golden(&engine);
    require(st == VW_OK || st == VW_ERR_GOLDEN);

    int8_t input[VW_DSP_MAX_BANDS + VW_DSP_N_STATS];
    int8_t output[VW_DSP_MAX_BANDS + VW_DSP_N_STATS];
    float features[VW_DSP_MAX_BANDS + VW_DSP_N_STATS];
    for (size_t i = 0; i < model->n_features; i++) {
        size_t at = (i * 131u + mode) % len;
        input[i] = (int8_t)(blob[at] ^ (uint8_t)(i * 37u));
        uint32_t bits = (uint32_t)blob[at] << 24 | (uint32_t)blob[(at + 1u) % len] << 16 |
                        (uint32_t)blob[(at + 2u) % len] << 8 | (uint32_t)(i * 97u + mode);
        memcpy(&features[i], &bits, sizeof bits);
    }
    float score = -1.0f;
    require(vw_engine_run(&engine, input, output, &score) == VW_OK);
    require(!(score < 0.0f));

    score = -1.0f;
    st = vw_engine_infer(&engine, features, &score);
    require(st == VW_OK || st == VW_ERR_INPUT);
    require(st != VW_OK || !(score < 0.0f));
    require(vw_engine_quantize(&engine, features, input) == st);
    free(work);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t mode = data[0];
    size_t len = size - 1u;
    uint8_t *blob = malloc(len > 0 ? len : 1u);
    require(blob != NULL);
    memcpy(blob, data + 1, len);
    fix_header(blob, len, mode);

    vw_model_t model;
    vw_status_t st = vw_model_parse(&model, blob, len);
    require(st >= VW_OK && st <= VW_ERR_NO_MODEL);
    if (st == VW_OK) {
        require(model.blob_bytes <= len && model.blob_bytes >= VW_MODEL_HEADER_BYTES);
        require(model.n_layers >= 1 && model.n_layers <= VW_MODEL_MAX_LAYERS);
        require(model.n_features == model.spec.n_bands + VW_DSP_N_STATS);
        vw_model_t again;
        require(vw_model_parse(&again, blob, model.blob_bytes) == VW_OK);
        require(again.macs == model.macs && again.max_pad == model.max_pad);
        exercise_engine(&model, blob, len, mode);
    }
    free(blob);
    return 0;
}
