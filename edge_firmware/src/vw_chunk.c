/*
 * The ota/chunk payload (vw_chunk.h; the format is in docs/protocol/README.md).
 *
 * Every byte of the payload is untrusted: the header is read byte by byte (no
 * unaligned loads), and the data pointer is handed out only once the length
 * field has been found to equal the bytes that follow.
 */
#include "vw_chunk.h"

#include "vw_sha256.h"

#define AT_MAGIC 0u
#define AT_VERSION 2u
#define AT_RESERVED 3u
#define AT_JOB_REF 4u
#define AT_OFFSET 8u
#define AT_LENGTH 12u

/* Always inlined: where unaligned loads are allowed (Cortex-M4) it is one instruction. */
static inline __attribute__((always_inline)) uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

vw_status_t vw_chunk_parse(const uint8_t *payload, size_t len, vw_chunk_t *out)
{
    if (payload == NULL || out == NULL) {
        return VW_ERR_ARG;
    }
    if (len > VW_CHUNK_MAX_PAYLOAD) {
        return VW_ERR_TOO_LARGE;
    }
    if (len < VW_CHUNK_HEADER_BYTES) {
        return VW_ERR_TRUNCATED;
    }
    if (payload[AT_MAGIC] != VW_CHUNK_MAGIC0 || payload[AT_MAGIC + 1u] != VW_CHUNK_MAGIC1) {
        return VW_ERR_MAGIC;
    }
    if (payload[AT_VERSION] != VW_CHUNK_VERSION) {
        return VW_ERR_VERSION;
    }
    if (payload[AT_RESERVED] != 0u) {
        return VW_ERR_FORMAT;
    }
    /* len <= VW_CHUNK_MAX_PAYLOAD, so follows fits in 32 bits and compares exactly. */
    const uint32_t follows = (uint32_t)(len - VW_CHUNK_HEADER_BYTES);
    const uint32_t length = get32(payload + AT_LENGTH);
    if (length > follows) {
        return VW_ERR_TRUNCATED;
    }
    if (length < follows) {
        return VW_ERR_FORMAT;
    }
    const uint32_t offset = get32(payload + AT_OFFSET);
    /* length <= VW_CHUNK_MAX_DATA here, and offset < VW_CHUNK_MAX_END is checked before
     * the sum is formed, so offset + length cannot wrap. */
    if (length == 0u || offset >= VW_CHUNK_MAX_END || length > VW_CHUNK_MAX_END - offset) {
        return VW_ERR_RANGE;
    }
    out->job_ref = get32(payload + AT_JOB_REF);
    out->offset = offset;
    out->length = length;
    out->data = payload + VW_CHUNK_HEADER_BYTES;
    return VW_OK;
}

vw_status_t vw_chunk_job_ref(const char *job, size_t len, uint32_t *ref)
{
    uint8_t digest[VW_SHA256_DIGEST_BYTES];
    if (job == NULL || ref == NULL || len == 0u || len > VW_MODEL_MAX_ID) {
        return VW_ERR_ARG;
    }
    const vw_status_t st = vw_sha256(job, len, digest);
    if (st != VW_OK) {
        return st;
    }
    *ref = get32(digest);
    return VW_OK;
}
