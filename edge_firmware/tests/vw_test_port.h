/*
 * What the device tests share: an in-memory port (storage with power cuts, a test
 * signature) and a small model blob. The test signature is SHA-256("test-key" || text)
 * followed by 32 zero bytes; real Ed25519 is exercised from Python.
 * A test program defines STORAGE_BYTES before including this file.
 */
#ifndef VW_TEST_PORT_H
#define VW_TEST_PORT_H

#include <string.h>

#include "vw_crc32.h"
#include "vw_engine.h"
#include "vw_model.h"
#include "vw_port.h"
#include "vw_sha256.h"

/* ---- the in-memory port ------------------------------------------------- */

typedef struct {
    uint32_t mem[STORAGE_BYTES / 4]; /* word array: 4-byte aligned for storage_map */
    long writes;                     /* storage writes attempted since power-on */
    long cut_at;                     /* power fails during this write (1-based), 0: never */
    uint32_t tear;                   /* bytes of the cut write that reach storage */
    int dead;                        /* power is off: every access fails */
    const char *key;                 /* what the signature check accepts */
} mem_port_t;

static uint8_t *bytes_of(mem_port_t *p)
{
    return (uint8_t *)p->mem;
}

static vw_status_t mem_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    mem_port_t *p = ctx;
    if (p->dead || addr > STORAGE_BYTES || len > STORAGE_BYTES - addr) {
        return VW_ERR_STORAGE;
    }
    memcpy(buf, bytes_of(p) + addr, len);
    return VW_OK;
}

static vw_status_t mem_write(void *ctx, uint32_t addr, const void *data, uint32_t len)
{
    mem_port_t *p = ctx;
    if (p->dead || addr > STORAGE_BYTES || len > STORAGE_BYTES - addr) {
        return VW_ERR_STORAGE;
    }
    if (++p->writes == p->cut_at) {
        memcpy(bytes_of(p) + addr, data, p->tear < len ? p->tear : len);
        p->dead = 1;
        return VW_ERR_STORAGE;
    }
    memcpy(bytes_of(p) + addr, data, len);
    return VW_OK;
}

static const uint8_t *mem_map(void *ctx, uint32_t addr, uint32_t len)
{
    mem_port_t *p = ctx;
    if (p->dead || addr > STORAGE_BYTES || len > STORAGE_BYTES - addr) {
        return NULL;
    }
    return bytes_of(p) + addr;
}

static void test_sign(const char *key, const uint8_t *msg, size_t len, uint8_t sig[64])
{
    vw_sha256_t sha;
    memset(sig, 0, 64);
    vw_sha256_init(&sha);
    vw_sha256_update(&sha, key, strlen(key));
    vw_sha256_update(&sha, msg, len);
    vw_sha256_final(&sha, sig);
}

static int mem_verify(void *ctx, const uint8_t *msg, size_t len, const uint8_t signature[64])
{
    mem_port_t *p = ctx;
    uint8_t want[64];
    test_sign(p->key, msg, len, want);
    return memcmp(want, signature, 64) == 0;
}


static uint32_t engine_work[256];

/* ---- model blobs -------------------------------------------------------- */

enum { GOLDEN_NONE, GOLDEN_RIGHT, GOLDEN_WRONG };

typedef struct {
    uint8_t *p;
} out_t;

static void emit(out_t *o, uint32_t value, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++) {
        *o->p++ = (uint8_t)(value >> (8u * i));
    }
}

static void emit_f32(out_t *o, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    emit(o, bits, 4);
}

static void seal(uint8_t *b, uint32_t total)
{
    memset(b + 12, 0, 4);
    uint32_t crc = vw_crc32_update(0, b, total);
    out_t o = {b + 12};
    emit(&o, crc, 4);
}

/*
 * A 5-feature model (1 band + 4 statistics) with one 5 -> 5 layer of weights
 * 3 on the diagonal, and two golden vectors whose outputs the engine computes.
 */
static uint32_t build_blob(uint32_t *words, uint32_t version, uint32_t rate, int golden)
{
    enum { NF = 1 + VW_DSP_N_STATS, PAD = 8 };
    uint8_t *b = (uint8_t *)words;
    uint16_t golden_count = golden == GOLDEN_NONE ? 0u : 2u;
    memset(b, 0, 512);
    out_t o = {b};
    memcpy(o.p, VW_MODEL_MAGIC, 4);
    o.p += 4;
    emit(&o, VW_MODEL_FORMAT_VERSION, 2);
    emit(&o, VW_MODEL_HEADER_BYTES, 2);
    o.p += 8; /* total size and CRC: sealed below */
    emit(&o, version, 4);
    emit(&o, rate, 4);
    emit(&o, 256, 2);  /* window */
    emit(&o, 1, 2);    /* bands */
    emit(&o, NF, 2);   /* features */
    emit(&o, 1, 2);    /* layers */
    emit_f32(&o, 0.125f);
    emit(&o, 0, 4);
    emit_f32(&o, 0.125f);
    emit(&o, 0, 4);
    emit_f32(&o, 1.0f); /* threshold */
    emit(&o, golden_count, 2);
    emit(&o, 3, 1); /* id length */
    o.p = b + VW_MODEL_HEADER_BYTES;
    memcpy(o.p, "fan", 3);
    o.p += 4;
    emit(&o, 2, 2);
    emit(&o, 9, 2); /* band bins [2, 9) */
    for (int i = 0; i < 2 * NF; i++) {
        emit_f32(&o, i < NF ? 8.0f : 0.0f); /* input mul, then add */
    }
    emit(&o, NF, 2);
    emit(&o, NF, 2);
    emit(&o, (uint8_t)-128, 1);
    emit(&o, 127, 1);
    o.p += 10; /* per-tensor, reserved, output zero point 0, reserved */
    for (int c = 0; c < NF; c++) {
        o.p[(c / 4) * 32 + (c / 4) * 16 + (c % 4) * 4 + c % 4] = 3; /* 4x4 blocks */
    }
    o.p += PAD * PAD + 4 * PAD; /* weights, zero bias */
    emit(&o, 1u << 30, 4);      /* multiplier 0.5, shift 0 */
    o.p += 4;
    uint8_t *records = o.p;
    for (int g = 0; g < golden_count; g++) {
        for (int i = 0; i < NF; i++) {
            o.p[i] = (uint8_t)(int8_t)(g * 40 - 20 + 7 * i);
        }
        o.p += 2 * PAD + 4;
    }
    uint32_t total = (uint32_t)(o.p - b);
    out_t size_at = {b + 8};
    emit(&size_at, total, 4);
    seal(b, total);

    vw_model_t m;
    vw_engine_t e;
    if (vw_model_parse(&m, b, total) != VW_OK ||
        vw_engine_init(&e, &m, engine_work, sizeof engine_work) != VW_OK) {
        return 0;
    }
    for (int g = 0; g < golden_count; g++) {
        uint8_t *r = records + g * (2 * PAD + 4);
        float score = 0.0f;
        vw_engine_run(&e, (const int8_t *)r, (int8_t *)(r + PAD), &score);
        memcpy(r + 2 * PAD, &score, 4);
        if (golden == GOLDEN_WRONG && g == 1) {
            r[PAD + 2] ^= 1u;
        }
    }
    seal(b, total);
    return total;
}

#endif
