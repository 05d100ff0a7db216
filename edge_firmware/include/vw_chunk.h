/**
 * @file vw_chunk.h
 * @brief The ota/chunk payload (back end -> device): a 16-byte header, then the raw bytes.
 *
 * Layout, version 1 (docs/protocol/README.md, "ota/chunk"; integers little endian):
 *
 *   byte  0..1   magic 'V' 'C' (0x56 0x43)
 *   byte  2      format version, 1
 *   byte  3      reserved, 0
 *   byte  4..7   job reference: the first 4 bytes of SHA-256(job id) (vw_chunk_job_ref)
 *   byte  8..11  offset of the data in the blob, 0..VW_CHUNK_MAX_END-1
 *   byte 12..15  length of the data, 1..VW_CHUNK_MAX_DATA; exactly the bytes that follow
 *   byte 16..    the data
 *
 * and offset + length <= VW_CHUNK_MAX_END: a chunk lies inside the largest blob a
 * job may carry. The Python encoder is vibewatch.protocol.OtaChunk; the two are
 * held together by tests/unit/test_edge_chunk.py.
 *
 * The job reference ties a chunk to the ota/job it belongs to without repeating
 * the job id. The device computes the reference of its current job once, when
 * the job arrives, and drops every chunk whose job_ref differs: a late chunk of
 * a job that was replaced must never be written into the new download. (A chunk
 * that slipped through anyway, with 2^-32 odds, would still fail the blob's
 * SHA-256 check in vw_ota_finish.)
 *
 * Pure functions: no state, no allocation, any alignment of the payload.
 */
#ifndef VW_CHUNK_H
#define VW_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "vw_model.h"
#include "vw_ota.h"
#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VW_CHUNK_MAGIC0 0x56u       /**< 'V' */
#define VW_CHUNK_MAGIC1 0x43u       /**< 'C' */
#define VW_CHUNK_VERSION 1u         /**< the only format version this build reads */
#define VW_CHUNK_HEADER_BYTES 16u   /**< bytes before the data */
#define VW_CHUNK_MAX_DATA VW_OTA_MAX_CHUNK /**< most data bytes in one chunk (65536) */
/** Longest valid payload: header plus the largest chunk (65552 bytes). */
#define VW_CHUNK_MAX_PAYLOAD (VW_CHUNK_HEADER_BYTES + VW_CHUNK_MAX_DATA)
/** offset + length never passes this: the largest blob a job may carry (16 MiB). */
#define VW_CHUNK_MAX_END VW_MODEL_MAX_BYTES

/** A parsed chunk. @c data points into the payload given to vw_chunk_parse (no copy). */
typedef struct vw_chunk {
    uint32_t job_ref;    /**< reference of the job (compare with vw_chunk_job_ref) */
    uint32_t offset;     /**< position of the data in the blob, 0..VW_CHUNK_MAX_END-1 */
    uint32_t length;     /**< data bytes, 1..VW_CHUNK_MAX_DATA; offset + length <= VW_CHUNK_MAX_END */
    const uint8_t *data; /**< payload + VW_CHUNK_HEADER_BYTES; valid while the payload is */
} vw_chunk_t;

/**
 * @brief Check an ota/chunk payload and describe it.
 *
 * Checks, in this order (the first failure is returned, the same order as the
 * Python decoder's): the size (VW_ERR_TOO_LARGE above VW_CHUNK_MAX_PAYLOAD),
 * a whole header (VW_ERR_TRUNCATED), the magic (VW_ERR_MAGIC), the version
 * (VW_ERR_VERSION), the reserved byte (VW_ERR_FORMAT), the length field
 * against the bytes that follow (VW_ERR_TRUNCATED when fewer follow,
 * VW_ERR_FORMAT when more do), then the ranges (VW_ERR_RANGE: no data, offset
 * at or past VW_CHUNK_MAX_END, offset + length past it).
 * Whether the offset and length fit the job's blob and chunk size is
 * vw_ota_chunk's business; whether the chunk belongs to the job is the
 * caller's (compare @c job_ref).
 * @param payload the MQTT payload, @p len bytes, any alignment
 * @param out     output; written only on VW_OK
 * @return VW_OK; VW_ERR_ARG (@p payload or @p out NULL); the refusals above.
 */
vw_status_t vw_chunk_parse(const uint8_t *payload, size_t len, vw_chunk_t *out);

/**
 * @brief The reference of a job: its first 4 SHA-256 bytes, read little endian.
 *
 * The job id is the one of the ota/job message, as received (1..VW_MODEL_MAX_ID
 * characters of [A-Za-z0-9._-], checked when that message was read); it is
 * hashed as it is, without a NUL. A device computes it once per job.
 * @param job characters of the job id, @p len of them (no NUL needed)
 * @param ref output: the reference
 * @return VW_OK; VW_ERR_ARG (NULL, or @p len outside 1..VW_MODEL_MAX_ID).
 */
vw_status_t vw_chunk_job_ref(const char *job, size_t len, uint32_t *ref);

#ifdef __cplusplus
}
#endif
#endif /* VW_CHUNK_H */
