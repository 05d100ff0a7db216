/**
 * @file vw_status.h
 * @brief Status codes returned by every vibewatch firmware function.
 *
 * No function aborts or asserts on bad input: each returns a status, and
 * VW_OK (zero) is the only success value. The numeric values are part of the
 * Python binding's contract; append new codes, never renumber, and append
 * their names to the string in vw_status.c.
 */
#ifndef VW_STATUS_H
#define VW_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vw_status {
    VW_OK = 0,
    VW_ERR_ARG = 1,           /**< NULL pointer or parameter out of its documented range */
    VW_ERR_BUFFER = 2,        /**< caller-owned buffer too small (ask *_required_bytes) */
    VW_ERR_ALIGN = 3,         /**< buffer or blob not 4-byte aligned */
    VW_ERR_MAGIC = 4,         /**< blob does not start with the .vwm magic */
    VW_ERR_VERSION = 5,       /**< unknown .vwm format version */
    VW_ERR_TRUNCATED = 6,     /**< a length or offset points past the end of the data */
    VW_ERR_CRC = 7,           /**< CRC-32 of the blob does not match its header */
    VW_ERR_FORMAT = 8,        /**< a field is inconsistent (dims, band edges, quantisation) */
    VW_ERR_UNSUPPORTED = 9,   /**< valid but beyond this build's limits (layers, dims) */
    VW_ERR_INPUT = 10,        /**< non-finite sample or feature */
    VW_ERR_GOLDEN = 11,       /**< golden vectors not reproduced exactly */
    VW_ERR_SIGNATURE = 12,    /**< manifest signature rejected by the port */
    VW_ERR_DOWNGRADE = 13,    /**< version not higher than installed, no signed rollback */
    VW_ERR_HASH = 14,         /**< SHA-256 of the received blob differs from the manifest */
    VW_ERR_SPEC = 15,         /**< model's feature spec or needs do not fit this device */
    VW_ERR_STATE = 16,        /**< call not allowed in the current OTA state */
    VW_ERR_RANGE = 17,        /**< chunk offset/length outside the blob or misaligned */
    VW_ERR_STORAGE = 18,      /**< the port's storage failed */
    VW_ERR_TOO_LARGE = 19,    /**< blob larger than a model slot */
    VW_ERR_INCOMPLETE = 20,   /**< not every chunk has been received yet */
    VW_ERR_NO_MODEL = 21,     /**< no slot holds a valid model */
    VW_ERR_JSON = 22,         /**< payload is not JSON the device reads (syntax, depth, size) */
    VW_ERR_MESSAGE = 23       /**< JSON that breaks the wire contract (field, type, range) */
} vw_status_t;

/** @brief Short stable name of a status ("ok", "crc", ...); never NULL. */
const char *vw_status_name(vw_status_t status);

#ifdef __cplusplus
}
#endif
#endif /* VW_STATUS_H */
