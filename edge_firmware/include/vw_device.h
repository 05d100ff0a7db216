/**
 * @file vw_device.h
 * @brief The device: windows in, the wire contract's uplink messages out.
 *
 * One vw_device_t is one vibration sensor: it turns each window of samples into
 * features (vw_dsp), a score (vw_engine, the active model of vw_ota), an anomaly
 * state (vw_anomaly) and the messages of docs/protocol/, published through the
 * port:
 *
 *  - `status` (retained) on vw_device_connected(), and again when a calibration sets
 *    the threshold: firmware, model id, version and SHA-256, capabilities, slot states,
 *    uptime, the threshold in force and where it comes from (`model`, `calibration` or
 *    `command`); vw_device_last_will() gives the `offline` payload the port registers
 *    as the connection's last will;
 *  - `event` when an anomaly starts or ends (score, threshold, model);
 *  - `telemetry`: the readings (score, rms, peak, crest, kurtosis) of
 *    settings.batch_windows windows in one message, or fewer once the first of them
 *    is settings.batch_ms old (vw_device_poll());
 *  - `features`: the feature vector of one window in every settings.features_every,
 *    with the feature-spec id (vw_dsp_spec_id): the retraining data.
 *
 * Sequence numbers never repeat, not even across reboots: a window's `seq` is
 * (boot << 32) + the window's number since boot, where boot is a counter kept in
 * two alternating records at config.record_addr, incremented and written durably
 * at every vw_device_init (a write cut off by a power failure leaves the other
 * record, and the device never ran with the new count).
 *
 * Times `t` are the port's wall clock (time_ms) at the start of the window: the
 * clock when the window is handed over, minus the window's duration. Until the
 * wall clock is known (time_ms gives 0), windows are scored and move the anomaly
 * state, but publish nothing (counted in unsynced_windows).
 *
 * Commands (`cmd`, vw_device_command) are answered on `cmd/reply` with their outcome:
 *  - `set_threshold`: the threshold in force from the next window on (until a reboot or
 *    a new model, which bring the model's threshold back); done, with the threshold;
 *  - `calibrate`: the device learns its own baseline. It scores the next
 *    settings.calibrate_windows windows, keeping the VW_DEVICE_CALIBRATION_KEPT highest
 *    scores, and sets its threshold by the tail rule (vw_tail.h) for the per-window
 *    false-alarm target settings.calibrate_target, at most the model's threshold
 *    ceiling (vw_model_t.threshold_ceiling: a package that does not allow more lets a
 *    device lower its threshold, never raise it). The threshold is written to storage
 *    with the identity (CRC-32) of the model it is for: it stays across reboots, comes
 *    back with that model after a rollback to it, and a new model starts from its own
 *    threshold. The reply (done, with the threshold; detail `ceiling` when the ceiling
 *    capped it) goes out when the last window is scored, then a new `status`; failed
 *    when storage refuses the write (the threshold is unchanged), or when the model
 *    changes before the calibration ends. There is one calibration record: a write cut
 *    off by a power failure (or one the port reports failed after it landed) leaves no
 *    calibration or the new one for the next boot, never a corrupt threshold (the
 *    record's CRC is checked);
 *  - `rollback`: back to the previous valid model (vw_ota_rollback), done with the
 *    threshold now in force; refused when there is none or a download is in progress;
 *  - `upload_raw`: the samples of the next window go out on `raw` (binary: a 32-byte
 *    header with the command's reference, sample rate, count, seq and t, then the
 *    samples as float32 little endian), then the reply (done); refused while another
 *    upload waits. Windows before the wall clock is known do not count.
 * A command that cannot be read as JSON, or has no valid `id`, is not answered (there
 * is nothing to answer to) and counted in commands_unanswered.
 *
 * Over the air (`ota/job`, `ota/chunk`; reports and chunk requests on `ota/req`):
 *  - vw_device_ota_job() takes the signed job (the retained message arrives again at
 *    every connect): it starts or resumes the download through vw_ota_begin, which
 *    checks the signature and the version, and reports `downloading`; a job for the
 *    model already running is `installed`; one whose model failed before (refused, or
 *    rolled back after its trial) is reported again as `failed` / `rolled_back` and
 *    not downloaded again; a refused job is `failed` with the reason in `detail`.
 *  - The device asks for the chunks it lacks itself: up to settings.ota_window
 *    requests outstanding, each asked again after settings.ota_timeout_ms without
 *    its chunk (vw_device_poll); after a reset the download resumes from what storage
 *    holds once the job arrives again.
 *  - An empty `ota/job` payload (the retained job withdrawn, as an aborted rollout
 *    does) ends the download: no chunk is asked for any more; what storage holds
 *    stays, and the job resumes from it if it comes again. On trial it changes nothing.
 *  - vw_device_ota_chunk() stores a chunk of the current job (others are ignored);
 *    with the last one the blob is verified (`verifying`) and activated on trial
 *    (`activated`); the new model scores the next window. After settings.trial_ms
 *    of running without a reset, the trial is confirmed (`installed`); a reset
 *    before that falls back to the previous model, reported as `rolled_back`.
 *
 * A message the port cannot take (publish fails) is kept when it is the telemetry
 * batch, and sent again with the next window or poll; while it waits and the batch
 * is full, new readings are dropped and counted. Events and feature vectors that
 * cannot be published are counted as failures.
 *
 * No heap: the caller owns the vw_device_t and its working memory
 * (vw_device_required_bytes). Single-threaded, like vw_ota.
 */
#ifndef VW_DEVICE_H
#define VW_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "vw_anomaly.h"
#include "vw_chunk.h"
#include "vw_dsp.h"
#include "vw_engine.h"
#include "vw_model.h"
#include "vw_ota.h"
#include "vw_port.h"
#include "vw_status.h"
#include "vw_tail.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VW_DEVICE_MAX_BATCH 100u        /**< most readings in one telemetry message */
#define VW_DEVICE_FIRMWARE_MAX 32u      /**< longest firmware version string */
#define VW_DEVICE_CAPABILITIES_MAX 128u /**< longest capability list, "ota,raw" */
#define VW_DEVICE_RECORD_BYTES 16u      /**< one record: two boot records, a calibration */
/** Storage the device's records take at config.record_addr: two boot records, then the
 *  calibration record. */
#define VW_DEVICE_STORAGE_BYTES (3u * VW_DEVICE_RECORD_BYTES)
#define VW_DEVICE_CALIBRATION_KEPT 32u  /**< highest scores a calibration keeps */
#define VW_DEVICE_OTA_WINDOW_MAX 8u     /**< most chunk requests outstanding */

/** What the device does per window (device settings; see vw_device_defaults). */
typedef struct vw_device_settings {
    vw_anomaly_config_t anomaly; /**< debounce and hysteresis of events */
    uint16_t batch_windows;      /**< readings per telemetry message, 1..VW_DEVICE_MAX_BATCH */
    uint32_t batch_ms;           /**< send a batch once its first reading is this old (port
                                      now_ms); 0: only when full */
    uint16_t features_every;     /**< one feature vector in every so many windows; 0: none */
    uint16_t calibrate_windows;  /**< windows a `calibrate` command scores, >= 1 */
    float calibrate_target;      /**< per-window false-alarm target of a calibrated
                                      threshold, in (0, 0.5] */
    uint8_t ota_window;          /**< chunk requests outstanding, 1..VW_DEVICE_OTA_WINDOW_MAX */
    uint32_t ota_timeout_ms;     /**< a chunk request is sent again after this, >= 1 */
    uint32_t trial_ms;           /**< a new model runs this long before it is confirmed */
} vw_device_settings_t;

/** What the device is: fixed at build or provisioning time. */
typedef struct vw_device_config {
    const char *firmware;     /**< 1..VW_DEVICE_FIRMWARE_MAX printable ASCII characters, no
                                   space, `"` or `\`; must outlive the device */
    const char *capabilities; /**< comma-separated names of [A-Za-z0-9._-] ("ota,raw"), at
                                   most VW_DEVICE_CAPABILITIES_MAX characters; NULL or "" for
                                   none; must outlive the device */
    uint32_t record_addr;     /**< storage address of the device's records
                                   (VW_DEVICE_STORAGE_BYTES), a multiple of 4, outside the
                                   OTA region */
    uint16_t max_window;      /**< largest window of a model (as vw_ota_config_t's) */
    uint16_t max_features;    /**< largest feature vector of a model, 1..VW_DSP_MAX_BANDS +
                                   VW_DSP_N_STATS */
    void *engine_work;        /**< engine memory, 4-byte aligned: the OTA config's, which the
                                   device shares (no inference runs during an install) */
    size_t engine_work_bytes; /**< its size */
    vw_device_settings_t settings;
} vw_device_config_t;

/** Counters since vw_device_init. */
typedef struct vw_device_counters {
    uint32_t windows;          /**< windows scored */
    uint32_t events;           /**< anomaly starts and ends */
    uint32_t published;        /**< messages the port took */
    uint32_t publish_failures; /**< messages the port refused */
    uint32_t readings_dropped; /**< readings lost because the batch could not be sent */
    uint32_t unsynced_windows; /**< windows scored before the wall clock was known */
    uint32_t commands;         /**< commands answered */
    uint32_t commands_unanswered; /**< commands without a readable id: not answered */
    uint32_t chunk_requests;   /**< chunk requests sent, repeats included */
    uint32_t chunks_ignored;   /**< chunks of no current job, or that vw_ota refused */
} vw_device_counters_t;

/** A chunk request waiting for its chunk. */
typedef struct vw_device_request {
    uint32_t offset;
    uint32_t len;     /**< 0: the entry is free */
    uint32_t sent_at; /**< now_ms when it was last sent */
} vw_device_request_t;

/** One reading of the telemetry batch. */
typedef struct vw_device_reading {
    uint64_t seq;
    uint64_t t;
    float score, rms, peak, crest, kurtosis;
} vw_device_reading_t;

/** A device; its fields are private. */
typedef struct vw_device {
    /* The fields the code uses most come first, where Thumb-2's 16-bit loads and stores
     * reach them (byte fields in the first 32 bytes, halfwords in 64, words in 128). */
    float threshold;
    uint8_t threshold_source; /**< 0 the model, 1 a calibration, 2 a command */
    uint8_t on_trial;         /**< the job's model runs on trial since trial_started */
    uint16_t batch_len;
    uint16_t calibrating;     /**< windows left of a calibration, 0: none */
    uint32_t last_now;
    uint32_t batch_started;
    uint32_t cursor;          /**< chunks before this offset have been asked for */
    vw_device_reading_t *batch;
    float *features;
    vw_device_counters_t counters;
    vw_port_t port;
    const vw_model_t *model;
    vw_ota_t *ota;
    char *payload;
    size_t payload_cap;
    vw_device_request_t requests[VW_DEVICE_OTA_WINDOW_MAX];
    vw_device_config_t config;
    vw_anomaly_t anomaly;
    vw_engine_t engine;
    vw_dsp_t dsp;
    char spec_id[VW_DSP_SPEC_ID_MAX + 1];
    uint32_t boot;
    uint32_t window;
    uint64_t uptime_ms;
    void *dsp_work;
    vw_tail_t calibration;
    float calibration_top[VW_DEVICE_CALIBRATION_KEPT];
    char calibration_id[VW_MODEL_MAX_ID + 1];
    char upload_id[VW_MODEL_MAX_ID + 1]; /**< the upload_raw command waiting; "" for none */
    char job[VW_MODEL_MAX_ID + 1]; /**< the job being downloaded or on trial; "" for none */
    uint32_t job_ref;              /**< its vw_chunk_job_ref */
    uint32_t trial_started;
} vw_device_t;

/**
 * @brief The default settings: anomaly defaults, 10 windows or 10 s a batch, features every
 *        60 windows, calibration over 600 windows for a false-alarm target of 0.1 %, 4 chunk
 *        requests outstanding, asked again after 5 s, a trial of 10 minutes.
 */
vw_device_settings_t vw_device_defaults(void);

/**
 * @brief Bytes of working memory a device with @p config needs (4-byte aligned).
 * @return the size; 0 when @p config is NULL or out of range.
 */
size_t vw_device_required_bytes(const vw_device_config_t *config);

/**
 * @brief Boot the device: count the boot, bind the active model of @p ota.
 * @param dev    device (output)
 * @param port   copied; now_ms, storage_read, storage_write, publish and time_ms must be set
 * @param config copied; its strings and engine_work must outlive the device
 * @param ota    initialised by vw_ota_init with a model; must outlive the device
 * @param work   vw_device_required_bytes(config) bytes, 4-byte aligned
 * @return VW_OK; VW_ERR_ARG (NULL, a missing callback, a config out of range);
 *         VW_ERR_ALIGN; VW_ERR_BUFFER; VW_ERR_NO_MODEL; VW_ERR_SPEC (the model needs a
 *         larger window, feature vector or engine memory than configured);
 *         VW_ERR_STORAGE (the boot record could not be written: nothing was published).
 */
vw_status_t vw_device_init(vw_device_t *dev, const vw_port_t *port,
                           const vw_device_config_t *config, vw_ota_t *ota, void *work,
                           size_t work_bytes);

/** @brief Samples per window of the active model (0 for NULL). */
uint16_t vw_device_window_length(const vw_device_t *dev);

/**
 * @brief The last-will payload (`{"state":"offline"}`) the port registers on `status`.
 * @param out  @p cap bytes (output, not NUL-terminated); 20 suffice
 * @param len  payload length (output)
 * @return VW_OK, VW_ERR_ARG or VW_ERR_BUFFER.
 */
vw_status_t vw_device_last_will(const vw_device_t *dev, uint8_t *out, size_t cap, size_t *len);

/**
 * @brief The connection is up: publish the birth message (`status`, retained).
 * @return VW_OK; the port's error if it refused; VW_ERR_STATE before the wall clock is known.
 */
vw_status_t vw_device_connected(vw_device_t *dev);

/**
 * @brief One window of samples: score it, update the anomaly state, publish.
 * @param samples vw_device_window_length(dev) samples in g (input, unchanged)
 * @return VW_OK (also when a message could not be published: see the counters);
 *         VW_ERR_ARG; VW_ERR_INPUT (a sample is not finite: the window is skipped and
 *         takes no sequence number).
 */
vw_status_t vw_device_window(vw_device_t *dev, const float *samples);

/**
 * @brief A `cmd` message arrived: carry it out and answer on `cmd/reply`.
 * @param payload @p len bytes of the message (not NUL-terminated)
 * @return VW_OK when answered (whatever the outcome; a calibration answers later);
 *         VW_ERR_ARG; VW_ERR_JSON or VW_ERR_MESSAGE for a payload without a readable id
 *         (not answered); VW_ERR_STATE before the wall clock is known (not answered);
 *         the port's error if it refused the reply.
 */
vw_status_t vw_device_command(vw_device_t *dev, const uint8_t *payload, size_t len);

/**
 * @brief An `ota/job` message arrived (see the file comment).
 * @return VW_OK when handled (also when the job is refused and reported `failed`, and
 *         for an empty payload, a withdrawn job);
 *         VW_ERR_ARG; VW_ERR_JSON or VW_ERR_MESSAGE for a payload that is not a job
 *         (not answered: a job without an id cannot be reported on); VW_ERR_STATE
 *         before the wall clock is known (the retained job comes again).
 */
vw_status_t vw_device_ota_job(vw_device_t *dev, const uint8_t *payload, size_t len);

/**
 * @brief An `ota/chunk` message arrived: store it if it belongs to the current job.
 * @return VW_OK when stored (and the next requests sent, or the blob verified);
 *         VW_ERR_ARG; the vw_chunk_parse status for a malformed chunk; VW_ERR_STATE
 *         for a chunk of no current job; the vw_ota_chunk status if it refused it.
 */
vw_status_t vw_device_ota_chunk(vw_device_t *dev, const uint8_t *payload, size_t len);

/**
 * @brief Time passes: send the telemetry batch if its first reading is batch_ms old, ask
 *        again for chunks that did not come, confirm a trial that has lasted trial_ms.
 * @return VW_OK or VW_ERR_ARG.
 */
vw_status_t vw_device_poll(vw_device_t *dev);

/** @brief The counters (zeroes for NULL). */
vw_device_counters_t vw_device_counters(const vw_device_t *dev);

#ifdef __cplusplus
}
#endif
#endif /* VW_DEVICE_H */
