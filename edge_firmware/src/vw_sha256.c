/*
 * SHA-256 as specified in FIPS 180-4 (sections 4.1.2, 4.2.2, 5.1.1, 5.3.3, 6.2).
 * Message words are read big-endian byte by byte, so the code is independent
 * of the host's byte order and of the data's alignment.
 *
 * Written for size rather than speed: every byte, the padding included, enters the
 * block buffer one at a time, and a full buffer is compressed.
 */
#include "vw_sha256.h"

#include <string.h>

/* A context that final() has finished: block_len is never this between init and final. */
#define VW_SHA256_FINISHED UINT32_MAX

/* K: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t vw_sha256_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u,
    0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu,
    0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u,
    0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u,
    0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static uint32_t vw_rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32u - n));
}

/* One application of the compression function to ctx->block (FIPS 180-4 6.2.2). */
static void vw_sha256_block(vw_sha256_t *ctx)
{
    uint32_t w[64];
    for (unsigned t = 0; t < 16; t++) {
        const uint8_t *p = ctx->block + 4u * t;
        w[t] = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
               (uint32_t)p[3];
    }
    for (unsigned t = 16; t < 64; t++) {
        uint32_t s0 = vw_rotr(w[t - 15], 7) ^ vw_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = vw_rotr(w[t - 2], 17) ^ vw_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = s1 + w[t - 7] + s0 + w[t - 16];
    }
    uint32_t *h = ctx->h;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    uint32_t e = h[4], f = h[5], g = h[6], k = h[7];
    for (unsigned t = 0; t < 64; t++) {
        uint32_t big_s1 = vw_rotr(e, 6) ^ vw_rotr(e, 11) ^ vw_rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = k + big_s1 + ch + vw_sha256_k[t] + w[t];
        uint32_t big_s0 = vw_rotr(a, 2) ^ vw_rotr(a, 13) ^ vw_rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = big_s0 + maj;
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

/* Append one byte to the message block, compressing the block when it is full. */
static void vw_sha256_byte(vw_sha256_t *ctx, uint8_t byte)
{
    ctx->block[ctx->block_len++] = byte;
    if (ctx->block_len == VW_SHA256_BLOCK_BYTES) {
        vw_sha256_block(ctx);
        ctx->block_len = 0;
    }
}

vw_status_t vw_sha256_init(vw_sha256_t *ctx)
{
    /* H(0): the first 32 bits of the fractional parts of the square roots of the first 8 primes. */
    static const uint32_t h0[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    if (ctx == NULL) {
        return VW_ERR_ARG;
    }
    memset(ctx, 0, sizeof *ctx);
    memcpy(ctx->h, h0, sizeof h0);
    return VW_OK;
}

vw_status_t vw_sha256_update(vw_sha256_t *ctx, const void *data, size_t len)
{
    if (ctx == NULL || (data == NULL && len != 0) || ctx->block_len >= VW_SHA256_BLOCK_BYTES ||
        (uint64_t)len > VW_SHA256_MAX_BYTES - ctx->total_bytes) {
        return VW_ERR_ARG;
    }
    ctx->total_bytes += len;
    for (const uint8_t *p = data; len > 0; len--) {
        vw_sha256_byte(ctx, *p++);
    }
    return VW_OK;
}

vw_status_t vw_sha256_final(vw_sha256_t *ctx, uint8_t digest[VW_SHA256_DIGEST_BYTES])
{
    if (ctx == NULL || digest == NULL || ctx->block_len >= VW_SHA256_BLOCK_BYTES) {
        return VW_ERR_ARG;
    }
    /* Padding (5.1.1): a 1 bit, zeros up to 56 bytes mod 64, the 64-bit bit length. */
    uint64_t bits = ctx->total_bytes * 8u;
    vw_sha256_byte(ctx, 0x80u);
    while (ctx->block_len != VW_SHA256_BLOCK_BYTES - 8u) {
        vw_sha256_byte(ctx, 0);
    }
    for (unsigned i = 0; i < 8; i++, bits <<= 8) {
        vw_sha256_byte(ctx, (uint8_t)(bits >> 56));
    }
    for (unsigned i = 0; i < VW_SHA256_DIGEST_BYTES; i++) {
        digest[i] = (uint8_t)(ctx->h[i / 4u] >> (24u - 8u * (i % 4u)));
    }
    ctx->block_len = VW_SHA256_FINISHED;
    return VW_OK;
}

vw_status_t vw_sha256(const void *data, size_t len, uint8_t digest[VW_SHA256_DIGEST_BYTES])
{
    vw_sha256_t ctx;
    (void)vw_sha256_init(&ctx); /* cannot fail: ctx is not NULL */
    vw_status_t status = vw_sha256_update(&ctx, data, len);
    return status == VW_OK ? vw_sha256_final(&ctx, digest) : status;
}
