/**
 * @file vw_ota.h
 * @brief Over-the-air model updates: two model slots (A/B), verified before activation,
 *        safe against power failure at any point.
 *
 * The OTA region of the port's storage (docs/ota-slots.md has the full design):
 *
 *   base + 0      metadata record 0 (VW_OTA_META_BYTES)
 *   base + 256    metadata record 1
 *   base + 512    chunk bitmap: one bit per chunk of the download in progress
 *   slot A        slot_bytes, at a multiple of VW_OTA_SLOT_ALIGN from base
 *   slot B        slot_bytes, likewise
 *
 * vw_ota_layout() gives the addresses. The two metadata records carry a
 * sequence number and a CRC-32 and are written alternately, so one valid
 * record survives a write cut off at any byte; the newest valid one is the
 * device's state. Chunks are written into the inactive slot and marked in
 * the bitmap only after their data is written, so a reset resumes from what
 * storage holds.
 *
 * States (vw_ota_state_t) and the calls that move between them:
 *
 *   NO_MODEL    --vw_ota_provision-->  IDLE
 *   IDLE        --vw_ota_begin------>  DOWNLOADING
 *   DOWNLOADING --vw_ota_begin------>  DOWNLOADING  (same manifest: resume; other: restart)
 *   DOWNLOADING --vw_ota_chunk------>  DOWNLOADING
 *   DOWNLOADING --vw_ota_finish----->  TRIAL        (verified and activated)
 *                                 or   IDLE         (refused: the current model stays)
 *   TRIAL       --vw_ota_confirm---->  IDLE
 *   TRIAL       --reset, vw_ota_init->  IDLE        (fell back to the previous slot)
 *   IDLE, TRIAL --vw_ota_rollback--->  IDLE        (the previous slot, on command)
 *
 * A refused call (signature, downgrade, range, ...) changes nothing. A call
 * that returns VW_ERR_STORAGE may have left storage half-way: the caller
 * resets and calls vw_ota_init again, which finds a consistent state.
 *
 * Nothing here allocates; vw_ota_t is caller-owned. The port is copied at
 * init; its storage_read, storage_write, storage_map and verify_signature
 * are used (clock and publish are not). Single-threaded: no call may run
 * while another is in progress, and no inference may run during
 * vw_ota_finish / vw_ota_provision, which borrow the engine working memory.
 */
#ifndef VW_OTA_H
#define VW_OTA_H

#include <stddef.h>
#include <stdint.h>

#include "vw_model.h"
#include "vw_port.h"
#include "vw_sha256.h"
#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VW_OTA_META_BYTES 256u   /**< size of one metadata record */
#define VW_OTA_SLOT_ALIGN 256u   /**< slots start at multiples of this from the base */
#define VW_OTA_MIN_CHUNK 64u     /**< smallest chunk size a manifest may ask for */
#define VW_OTA_MAX_CHUNK 65536u  /**< largest chunk size */
#define VW_OTA_SIGNATURE_BYTES 64u
/** Longest signed manifest text, including the rollback line (no NUL). */
#define VW_OTA_SIGNED_TEXT_MAX 192u

/** Where the OTA region lives and what the device can run. */
typedef struct vw_ota_config {
    uint32_t storage_base;   /**< first address of the OTA region, multiple of 4 */
    uint32_t slot_bytes;     /**< capacity of each slot: multiple of 4, 64..VW_MODEL_MAX_BYTES */
    uint32_t sample_rate_hz; /**< the sensor's rate; a model must use exactly this, 1..1e6 */
    uint16_t max_window;     /**< largest window the DSP memory allows, 256..4096 */
    void *engine_work;       /**< engine working memory, 4-byte aligned (golden-vector runs) */
    size_t engine_work_bytes; /**< its size: a model needing more is refused (VW_ERR_SPEC) */
} vw_ota_config_t;

/** Addresses of the OTA region (absolute storage addresses). */
typedef struct vw_ota_layout {
    uint32_t meta[2];      /**< the two metadata records */
    uint32_t bitmap;       /**< chunk bitmap */
    uint32_t bitmap_bytes; /**< ceil(ceil(slot_bytes / VW_OTA_MIN_CHUNK) / 8) */
    uint32_t slot[2];      /**< slot A, slot B */
    uint32_t end;          /**< one past the last byte of slot B */
} vw_ota_layout_t;

/**
 * The signed manifest of a model blob (the ota/job message). The signature
 * covers the ASCII text (vw_ota_signed_text)
 *   "vw-model-v1\n{model_id}\n{model_version}\n{size}\n{sha256 hex}\n"
 * followed by "rollback\n" when @c rollback is 1; integers in decimal, the
 * hash in lowercase hex. chunk_size is a transport parameter, not signed.
 */
typedef struct vw_ota_manifest {
    char model_id[VW_MODEL_MAX_ID + 1]; /**< 1..64 chars of [A-Za-z0-9._-], NUL-terminated */
    uint8_t rollback;                   /**< 1: may install a version not above the active one */
    uint32_t model_version;             /**< must equal the blob's version */
    uint32_t size;                      /**< blob bytes, 1..slot_bytes */
    uint32_t chunk_size;                /**< VW_OTA_MIN_CHUNK..VW_OTA_MAX_CHUNK */
    uint8_t sha256[VW_SHA256_DIGEST_BYTES]; /**< SHA-256 of the blob */
} vw_ota_manifest_t;

/** Where the device is (see the diagram above). */
typedef enum vw_ota_state {
    VW_OTA_NO_MODEL = 0,    /**< no slot holds a bootable model: only provisioning */
    VW_OTA_IDLE = 1,        /**< running a confirmed model */
    VW_OTA_DOWNLOADING = 2, /**< receiving chunks into the inactive slot */
    VW_OTA_TRIAL = 3        /**< a new model is active but not yet confirmed */
} vw_ota_state_t;

/** What a slot holds, as persisted in the metadata. */
typedef enum vw_ota_slot_state {
    VW_OTA_SLOT_EMPTY = 0,   /**< nothing, or a download being written */
    VW_OTA_SLOT_VALID = 1,   /**< a verified model (active, or the standby/previous one) */
    VW_OTA_SLOT_INVALID = 2  /**< a model that failed verification, at boot, or its trial */
} vw_ota_slot_state_t;

/** Outcome of the last install, as persisted (reported on ota/req). */
typedef enum vw_ota_event {
    VW_OTA_EVENT_NONE = 0,
    VW_OTA_EVENT_ACTIVATED = 1,   /**< verified and activated, on trial */
    VW_OTA_EVENT_CONFIRMED = 2,   /**< trial confirmed */
    VW_OTA_EVENT_FAILED = 3,      /**< refused by finish; last_status says why */
    VW_OTA_EVENT_ROLLED_BACK = 4  /**< unconfirmed trial, or a slot that no longer loads */
} vw_ota_event_t;

/** The persisted part of one slot. */
typedef struct vw_ota_slot_info {
    uint8_t state;                          /**< vw_ota_slot_state_t */
    uint32_t version;                       /**< model version (when VALID or INVALID) */
    uint32_t size;                          /**< blob bytes */
    uint8_t sha256[VW_SHA256_DIGEST_BYTES]; /**< SHA-256 of the blob */
} vw_ota_slot_info_t;

/** The device state held by the newest metadata record, decoded. */
typedef struct vw_ota_meta {
    uint32_t seq;             /**< incremented by every metadata write */
    uint8_t active;           /**< 0: slot A, 1: slot B */
    uint8_t trial;            /**< 1: the active slot is unconfirmed, the other is the fallback */
    uint8_t downloading;      /**< 1: @c download is being written into slot 1 - active */
    uint8_t last_event;       /**< vw_ota_event_t */
    uint8_t last_status;      /**< vw_status_t that refused the last install, else 0 */
    vw_ota_slot_info_t slot[2];
    vw_ota_manifest_t download; /**< valid when @c downloading */
} vw_ota_meta_t;

/** Caller-owned OTA state; fields are private to vw_ota.c (read them via vw_ota_info). */
typedef struct vw_ota {
    /* The fields the code uses most come first, where Thumb-2's 16-bit loads and stores
     * reach them (byte fields in the first 32 bytes, words in 128). */
    vw_ota_layout_t layout;
    uint8_t ready;            /**< 1 once vw_ota_init accepted the port and config */
    uint8_t have_meta;        /**< 0: no valid record in storage */
    uint8_t meta_index;       /**< which record area holds @c meta */
    uint8_t state;            /**< vw_ota_state_t */
    uint32_t received;        /**< chunks of the download marked in the bitmap */
    uint32_t first_missing;   /**< no chunk below this index is missing */
    vw_ota_config_t config;
    vw_port_t port;
    vw_ota_meta_t meta;       /**< the newest persisted record */
    vw_model_t models[2];     /**< parsed model of each slot; models[meta.active] is live */
} vw_ota_t;

/** A snapshot for status reports. */
typedef struct vw_ota_info {
    uint8_t state;               /**< vw_ota_state_t */
    uint8_t active_slot;         /**< 0 (A) or 1 (B); meaningless in VW_OTA_NO_MODEL */
    uint8_t last_event;          /**< vw_ota_event_t */
    uint8_t last_status;         /**< vw_status_t of the last refused install */
    vw_ota_slot_info_t slot[2];  /**< persisted slot states */
    uint32_t seq;                /**< metadata sequence number (0: none yet) */
    uint32_t received_chunks;    /**< download progress (DOWNLOADING only) */
    uint32_t total_chunks;
    vw_ota_manifest_t download;  /**< the manifest being downloaded (DOWNLOADING only) */
} vw_ota_info_t;

/**
 * @brief Compute the OTA region's addresses for @p config.
 * @return VW_OK, or VW_ERR_ARG if a pointer is NULL, storage_base is not a
 *         multiple of 4, slot_bytes is out of range or the region passes 2^32.
 */
vw_status_t vw_ota_layout(const vw_ota_config_t *config, vw_ota_layout_t *layout);

/**
 * @brief Boot: read the metadata, pick the slot, load and give back its model.
 *
 * An unconfirmed trial falls back to the previous slot; a slot whose blob no
 * longer parses or fits the device falls back to the other valid slot. Either
 * change is persisted before returning. A download in progress is restored
 * (DOWNLOADING): chunks are accepted again right away.
 * @param port   copied; storage_read/write/map and verify_signature must be set
 * @param config copied; engine_work must outlive @p ota
 * @return VW_OK (vw_ota_model gives the model); VW_ERR_NO_MODEL (no bootable
 *         slot: @p ota is ready for vw_ota_provision only); VW_ERR_ARG (NULL,
 *         a missing port callback, a config out of range); VW_ERR_STORAGE.
 *         After VW_ERR_ARG or VW_ERR_STORAGE every other call returns
 *         VW_ERR_STATE (or VW_ERR_NO_MODEL) until an init succeeds.
 */
vw_status_t vw_ota_init(vw_ota_t *ota, const vw_port_t *port, const vw_ota_config_t *config);

/**
 * @brief Install the factory model into slot A of a device with no bootable model.
 *
 * The blob is written to slot A, read back, hashed, parsed, checked against the
 * device and its golden vectors run (as vw_ota_finish does), then the metadata
 * names it the confirmed active model. No signature: provisioning is a factory step.
 * @param blob @p len bytes (any alignment)
 * @return VW_OK (state IDLE); VW_ERR_STATE if a model is already bootable;
 *         VW_ERR_ARG; VW_ERR_TOO_LARGE; a parse error; VW_ERR_SPEC; VW_ERR_GOLDEN;
 *         VW_ERR_STORAGE.
 */
vw_status_t vw_ota_provision(vw_ota_t *ota, const uint8_t *blob, uint32_t len);

/**
 * @brief The live model (pointing into storage_map memory).
 *
 * It changes after vw_ota_finish activates a new one: an engine bound to the
 * previous pointer must be bound again.
 * @return VW_OK, VW_ERR_ARG, or VW_ERR_NO_MODEL.
 */
vw_status_t vw_ota_model(const vw_ota_t *ota, const vw_model_t **model);

/**
 * @brief The exact text the manifest's signature covers.
 * @param text     output, @p capacity bytes (VW_OTA_SIGNED_TEXT_MAX suffice); not NUL-terminated
 * @param text_len output: bytes written
 * @return VW_OK; VW_ERR_ARG (NULL, a malformed manifest: id, size 0, rollback > 1,
 *         chunk size out of range); VW_ERR_BUFFER.
 */
vw_status_t vw_ota_signed_text(const vw_ota_manifest_t *manifest, char *text, size_t capacity,
                               size_t *text_len);

/**
 * @brief Start (or resume) downloading a signed manifest's blob into the inactive slot.
 *
 * Checks, in this order: the manifest is well formed (VW_ERR_ARG), the
 * signature over vw_ota_signed_text (VW_ERR_SIGNATURE), the version is above
 * the active model's unless the manifest says rollback (VW_ERR_DOWNGRADE),
 * the size fits a slot (VW_ERR_TOO_LARGE). Then, if the same manifest
 * (every field, chunk size included) is already downloading, nothing is
 * written and the download resumes; otherwise the chunk bitmap is cleared
 * and the metadata records the new download (the inactive slot becomes EMPTY).
 * @param signature VW_OTA_SIGNATURE_BYTES bytes (Ed25519, checked by the port)
 * @return VW_OK (DOWNLOADING), the errors above, VW_ERR_STATE (NO_MODEL or
 *         TRIAL: confirm the trial first), VW_ERR_STORAGE.
 */
vw_status_t vw_ota_begin(vw_ota_t *ota, const vw_ota_manifest_t *manifest,
                         const uint8_t signature[VW_OTA_SIGNATURE_BYTES]);

/**
 * @brief Store one chunk of the blob.
 *
 * @p offset must be a multiple of the manifest's chunk size and below its size;
 * @p len is the chunk size, or what is left of the blob for the last chunk.
 * Chunks may come in any order; a chunk already stored is ignored (its bytes
 * are not compared: the hash in vw_ota_finish is the judge).
 * @return VW_OK; VW_ERR_STATE (not DOWNLOADING); VW_ERR_ARG (NULL);
 *         VW_ERR_RANGE (offset or length wrong); VW_ERR_STORAGE.
 */
vw_status_t vw_ota_chunk(vw_ota_t *ota, uint32_t offset, const uint8_t *data, uint32_t len);

/**
 * @brief The first chunk not yet stored: the one to request next.
 * @param offset output: its offset (the blob size when every chunk is stored)
 * @param len    output: its length, 0 when every chunk is stored
 * @return VW_OK, VW_ERR_ARG, VW_ERR_STATE (not DOWNLOADING), VW_ERR_STORAGE.
 */
vw_status_t vw_ota_next_missing(vw_ota_t *ota, uint32_t *offset, uint32_t *len);

/**
 * @brief The first chunk not yet stored at or after byte @p from (rounded up to a chunk):
 *        what to request next when the chunks before it are already asked for.
 * @param offset output: its offset (the blob size when none is missing from there on)
 * @param len    output: its length, 0 when none is missing from there on
 * @return as vw_ota_next_missing.
 */
vw_status_t vw_ota_missing_from(vw_ota_t *ota, uint32_t from, uint32_t *offset, uint32_t *len);

/**
 * @brief Verify the downloaded blob and activate it on trial.
 *
 * Reads the blob back through storage_read and checks its SHA-256
 * (VW_ERR_HASH), parses it from storage_map memory (the vw_model_parse
 * errors), requires its id, version and size to equal the manifest's
 * (VW_ERR_FORMAT), its feature spec and working memory to fit the device
 * (VW_ERR_SPEC), and at least one golden vector, all reproduced exactly
 * (VW_ERR_GOLDEN). On success one metadata write makes the new slot active
 * on trial (TRIAL). On a refusal the download ends, the slot is marked
 * INVALID with the reason in last_status, the current model stays (IDLE),
 * and the refusal is returned.
 * @return VW_OK, the refusals above, VW_ERR_STATE (not DOWNLOADING),
 *         VW_ERR_INCOMPLETE (chunks missing; nothing changes), VW_ERR_STORAGE.
 */
vw_status_t vw_ota_finish(vw_ota_t *ota);

/**
 * @brief Keep the model on trial: the previous slot stops being the fallback.
 * @return VW_OK (IDLE), VW_ERR_ARG, VW_ERR_STATE (not TRIAL), VW_ERR_STORAGE.
 */
vw_status_t vw_ota_confirm(vw_ota_t *ota);

/**
 * @brief Go back to the previous model: the other slot's valid model becomes the active
 *        one, the current model is marked INVALID (so that its job is not installed
 *        again) and the last event is ROLLED_BACK. On trial, this ends the trial now.
 *
 * One metadata write: a power cut leaves either the old or the new state.
 * @return VW_OK (IDLE; vw_ota_model gives the previous model); VW_ERR_ARG;
 *         VW_ERR_STATE (NO_MODEL or DOWNLOADING: the other slot is being written);
 *         VW_ERR_NO_MODEL (the other slot holds no valid model, or it no longer loads);
 *         VW_ERR_STORAGE.
 */
vw_status_t vw_ota_rollback(vw_ota_t *ota);

/**
 * @brief Snapshot of the state for status reports.
 * @return VW_OK or VW_ERR_ARG.
 */
vw_status_t vw_ota_info(const vw_ota_t *ota, vw_ota_info_t *info);

#ifdef __cplusplus
}
#endif
#endif /* VW_OTA_H */
