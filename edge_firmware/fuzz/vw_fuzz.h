/*
 * What the libFuzzer targets share: invariants that abort with their file and line, the
 * reader of the fuzz input, and the test signature of the OTA and device targets.
 */
#ifndef VW_FUZZ_H
#define VW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_ota.h"
#include "vw_sha256.h"

/* An invariant: on violation, name it and abort (the fuzzer keeps the input). */
#define require(condition) \
    ((condition) ? (void)0 : vw_fuzz_violated(__FILE__, __LINE__, #condition))

static inline void vw_fuzz_violated(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
    abort();
}

/* The fuzz input, read from the front; missing bytes read as 0. */
typedef struct {
    const uint8_t *data;
    size_t len, pos;
} reader_t;

static inline uint8_t u8(reader_t *r)
{
    return r->pos < r->len ? r->data[r->pos++] : 0u;
}

/*
 * The fuzz port's signature scheme, not Ed25519: the SHA-256 of the signed text followed
 * by its complement. It is deterministic, so a harness signs the manifests it makes up,
 * while a signature taken from the fuzz input is (almost) always refused.
 */
static inline void vw_fuzz_sign(const uint8_t *msg, size_t len,
                                uint8_t signature[VW_OTA_SIGNATURE_BYTES])
{
    require(vw_sha256(msg, len, signature) == VW_OK);
    for (size_t i = 0; i < 32u; i++) {
        signature[32u + i] = (uint8_t)~signature[i];
    }
}

/* The port's verify_signature over vw_fuzz_sign. */
static inline int vw_fuzz_verify(void *ctx, const uint8_t *msg, size_t len,
                                 const uint8_t signature[VW_OTA_SIGNATURE_BYTES])
{
    (void)ctx;
    require(msg != NULL && signature != NULL);
    uint8_t expected[VW_OTA_SIGNATURE_BYTES];
    vw_fuzz_sign(msg, len, expected);
    return memcmp(expected, signature, sizeof expected) == 0;
}

#endif /* VW_FUZZ_H */
