/* The device layer: windows in, uplink messages out (contract in vw_device.h). */
#include "vw_device.h"

#include <string.h>

#include "vw_crc32.h"
#include "vw_inline.h"
#include "vw_json_reader.h"
#include "vw_json_writer.h"

#define RECORD_MAGIC 0x31445756u      /* "VWD1", little endian: a boot record */
#define CALIBRATION_MAGIC 0x31435756u /* "VWC1": the calibration record */
#define CALIBRATION_RECORD 2u         /* its index, after the two boot records */

/* Longest JSON of one reading in a telemetry message, its comma included. */
#define READING_JSON_MAX 179u
/* Bytes of the raw window message's header (docs/protocol: raw). */
#define RAW_HEADER_BYTES 32u
/* Longest status message without its capability list. */
#define STATUS_JSON_MAX 460u

/* By slot state; a valid slot that is not the active one is on standby. */
static const char *const SLOT_NAMES[] = {"empty", "active", "invalid", "standby"};

vw_device_settings_t vw_device_defaults(void)
{
    vw_device_settings_t settings;
    settings.anomaly = vw_anomaly_defaults();
    settings.batch_windows = 10u;
    settings.batch_ms = 10000u;
    settings.features_every = 60u;
    settings.calibrate_windows = 600u;
    settings.calibrate_target = 0.001f;
    settings.ota_window = 4u;
    settings.ota_timeout_ms = 5000u;
    settings.trial_ms = 600000u;
    return settings;
}

/* ------------------------------------------------------------ configuration */

static int printable(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= max || s[n] <= ' ' || s[n] > '~' || s[n] == '"' || s[n] == '\\') {
            return 0;
        }
    }
    return n > 0;
}

static int capability_list(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return 1;
    }
    if (strlen(s) > VW_DEVICE_CAPABILITIES_MAX) {
        return 0;
    }
    for (;; s++) { /* s: at a name, then at the comma or NUL after it */
        const size_t n = strcspn(s, ",");
        if (!vw_model_id_valid(s, n)) {
            return 0;
        }
        s += n;
        if (*s == '\0') {
            return 1;
        }
    }
}

static int config_ok(const vw_device_config_t *c)
{
    const vw_device_settings_t *s = &c->settings;
    return c->firmware != NULL && printable(c->firmware, VW_DEVICE_FIRMWARE_MAX) &&
           capability_list(c->capabilities) && c->record_addr % 4u == 0u &&
           c->record_addr <= UINT32_MAX - VW_DEVICE_STORAGE_BYTES &&
           vw_dsp_required_bytes(c->max_window) != 0 && c->max_features >= 1u &&
           c->max_features <= VW_DSP_MAX_BANDS + VW_DSP_N_STATS && c->engine_work != NULL &&
           vw_anomaly_check(&s->anomaly) == VW_OK && s->batch_windows >= 1u &&
           s->batch_windows <= VW_DEVICE_MAX_BATCH && s->calibrate_windows >= 1u &&
           s->calibrate_target > 0.0f && s->calibrate_target <= 0.5f && s->ota_window >= 1u &&
           s->ota_window <= VW_DEVICE_OTA_WINDOW_MAX && s->ota_timeout_ms >= 1u;
}

static size_t align4(size_t n) { return (n + 3u) & ~(size_t)3u; }

/* Readings hold 64-bit fields: their array starts 8-byte aligned in 4-aligned memory. */
#define READINGS_SLACK 4u

static size_t payload_bytes(const vw_device_config_t *c)
{
    size_t telemetry = 16u + (size_t)c->settings.batch_windows * READING_JSON_MAX;
    size_t features = 125u + (size_t)c->max_features * (VW_JSONW_FLOAT_MAX + 1u);
    size_t caps = c->capabilities == NULL ? 0u : strlen(c->capabilities);
    size_t status = STATUS_JSON_MAX + 3u * caps;
    size_t raw = RAW_HEADER_BYTES + 4u * (size_t)c->max_window;
    size_t most = telemetry > features ? telemetry : features;
    most = most > raw ? most : raw;
    return align4(most > status ? most : status);
}

size_t vw_device_required_bytes(const vw_device_config_t *config)
{
    if (config == NULL || !config_ok(config)) {
        return 0;
    }
    return align4(vw_dsp_required_bytes(config->max_window)) +
           align4((size_t)config->max_features * sizeof(float)) +
           READINGS_SLACK + (size_t)config->settings.batch_windows * sizeof(vw_device_reading_t) +
           payload_bytes(config);
}

/* ----------------------------------------------------------------- records */

/*
 * A record is its magic, two words, and the CRC-32 of those 12 bytes, each word
 * little-endian: copied as it is in memory, as on every target of the core (vw_model.c
 * reads the blob's headers in place likewise).
 */
static vw_status_t record_write(vw_device_t *dev, uint32_t index, uint32_t magic, uint32_t a,
                                uint32_t b)
{
    uint32_t rec[VW_DEVICE_RECORD_BYTES / 4u] = {magic, a, b};
    rec[3] = vw_crc32_update(0u, (const uint8_t *)rec, 12u);
    uint32_t addr = dev->config.record_addr + index * VW_DEVICE_RECORD_BYTES;
    return dev->port.storage_write(dev->port.ctx, addr, (const uint8_t *)rec, sizeof rec) ==
                   VW_OK
               ? VW_OK
               : VW_ERR_STORAGE;
}

/* Record @p index's two words; *valid says whether it holds a record of @p magic. */
VW_INLINE vw_status_t record_read(vw_device_t *dev, uint32_t index, uint32_t magic,
                                 uint32_t words[2], int *valid)
{
    uint32_t rec[VW_DEVICE_RECORD_BYTES / 4u];
    uint32_t addr = dev->config.record_addr + index * VW_DEVICE_RECORD_BYTES;
    if (dev->port.storage_read(dev->port.ctx, addr, (uint8_t *)rec, sizeof rec) != VW_OK) {
        return VW_ERR_STORAGE;
    }
    *valid = rec[0] == magic && rec[3] == vw_crc32_update(0u, (const uint8_t *)rec, 12u);
    words[0] = rec[1];
    words[1] = rec[2];
    return VW_OK;
}

/* The next boot number, written durably before it is used. */
static vw_status_t count_boot(vw_device_t *dev)
{
    uint32_t newest = 0;
    for (uint32_t i = 0; i < 2u; i++) {
        uint32_t words[2];
        int valid;
        if (record_read(dev, i, RECORD_MAGIC, words, &valid) != VW_OK) {
            return VW_ERR_STORAGE;
        }
        if (valid && words[0] > newest) {
            newest = words[0];
        }
    }
    if (newest == UINT32_MAX) {
        return VW_ERR_STORAGE; /* four billion boots: the count cannot go on */
    }
    uint32_t boot = newest + 1u;
    if (record_write(dev, boot % 2u, RECORD_MAGIC, boot, 0u) != VW_OK) {
        return VW_ERR_STORAGE;
    }
    dev->boot = boot;
    dev->window = 0;
    return VW_OK;
}

/* ------------------------------------------------------------------- model */

/* A command's outcome, as its reply names it. */
enum outcome { REFUSED, FAILED, DONE, DONE_THRESHOLD /* done, with the threshold in force */ };

static vw_status_t reply(vw_device_t *dev, const char *id, const char *cmd, enum outcome outcome,
                         const char *detail);

/* The active model's threshold: its own, or the one calibrated for it. */
static vw_status_t load_threshold(vw_device_t *dev)
{
    const vw_model_t *model = dev->model;
    dev->threshold = model->threshold;
    dev->threshold_source = 0u;
    uint32_t words[2];
    int valid;
    vw_status_t status = record_read(dev, CALIBRATION_RECORD, CALIBRATION_MAGIC, words, &valid);
    float calibrated;
    memcpy(&calibrated, &words[0], sizeof calibrated);
    if (status == VW_OK && valid && words[1] == model->crc && calibrated > 0.0f &&
        calibrated <= model->threshold_ceiling) {
        dev->threshold = calibrated;
        dev->threshold_source = 1u;
    }
    return status;
}

static vw_status_t bind_model(vw_device_t *dev)
{
    const vw_model_t *model;
    vw_status_t status = vw_ota_model(dev->ota, &model);
    if (status != VW_OK) {
        return status;
    }
    if (model->spec.window > dev->config.max_window ||
        model->n_features > dev->config.max_features) {
        return VW_ERR_SPEC;
    }
    status = vw_engine_init(&dev->engine, model, dev->config.engine_work,
                            dev->config.engine_work_bytes);
    if (status == VW_ERR_BUFFER) {
        return VW_ERR_SPEC;
    }
    if (status != VW_OK) {
        return status;
    }
    status = vw_dsp_init(&dev->dsp, &model->spec, dev->dsp_work,
                         vw_dsp_required_bytes(dev->config.max_window));
    if (status == VW_OK) {
        status = vw_dsp_spec_id(&model->spec, dev->spec_id);
    }
    if (status != VW_OK) {
        return status;
    }
    dev->model = model;
    if (dev->calibrating != 0u) { /* its scores are the previous model's */
        dev->calibrating = 0u;
        reply(dev, dev->calibration_id, "calibrate", FAILED,
              "the model changed");
    }
    return load_threshold(dev);
}

vw_status_t vw_device_init(vw_device_t *dev, const vw_port_t *port,
                           const vw_device_config_t *config, vw_ota_t *ota, void *work,
                           size_t work_bytes)
{
    const size_t required = vw_device_required_bytes(config); /* 0: no valid config */
    if (dev == NULL || port == NULL || ota == NULL || work == NULL || port->now_ms == NULL ||
        port->storage_read == NULL || port->storage_write == NULL || port->publish == NULL ||
        port->time_ms == NULL || required == 0u) {
        return VW_ERR_ARG;
    }
    if (((uintptr_t)work & 3u) != 0u || ((uintptr_t)config->engine_work & 3u) != 0u) {
        return VW_ERR_ALIGN;
    }
    if (work_bytes < required) {
        return VW_ERR_BUFFER;
    }
    memset(dev, 0, sizeof *dev);
    dev->port = *port;
    memcpy(&dev->config, config, sizeof dev->config);
    dev->ota = ota;
    uint8_t *p = work;
    dev->dsp_work = p;
    p += align4(vw_dsp_required_bytes(config->max_window));
    dev->features = (float *)(void *)p;
    p += align4((size_t)config->max_features * sizeof(float));
    const size_t slack = ((uintptr_t)p & 7u) != 0u ? READINGS_SLACK : 0u;
    dev->batch = (vw_device_reading_t *)(void *)(p + slack);
    dev->payload_cap = payload_bytes(config);
    dev->payload = (char *)work + required - dev->payload_cap; /* the last part */
    vw_status_t status = vw_anomaly_init(&dev->anomaly, &config->settings.anomaly);
    if (status == VW_OK) {
        status = bind_model(dev);
    }
    if (status == VW_OK) {
        status = count_boot(dev);
    }
    dev->last_now = dev->port.now_ms(dev->port.ctx);
    return status;
}

uint16_t vw_device_window_length(const vw_device_t *dev)
{
    return dev == NULL || dev->model == NULL ? 0u : dev->model->spec.window;
}

/* ----------------------------------------------------------------- publish */

static vw_status_t send(vw_device_t *dev, const char *suffix, const vw_jsonw_t *w)
{
    size_t len;
    vw_status_t status = vw_jsonw_finish(w, &len);
    if (status == VW_OK) {
        status = dev->port.publish(dev->port.ctx, suffix, (const uint8_t *)dev->payload, len);
    }
    if (status == VW_OK) {
        dev->counters.published++;
    } else {
        dev->counters.publish_failures++;
    }
    return status;
}

/* Milliseconds since boot, in 64 bits across the wraps of the port's 32-bit clock. */
static uint64_t uptime(vw_device_t *dev)
{
    uint32_t now = dev->port.now_ms(dev->port.ctx);
    dev->uptime_ms += (uint32_t)(now - dev->last_now);
    dev->last_now = now;
    return dev->uptime_ms;
}

vw_status_t vw_device_last_will(const vw_device_t *dev, uint8_t *out, size_t cap, size_t *len)
{
    if (dev == NULL || out == NULL || len == NULL) {
        return VW_ERR_ARG;
    }
    vw_jsonw_t w;
    vw_jsonw_init(&w, (char *)out, cap);
    vw_jsonw_put(&w, "{\"state\":\"offline\"}");
    return vw_jsonw_finish(&w, len);
}

vw_status_t vw_device_connected(vw_device_t *dev)
{
    if (dev == NULL || dev->model == NULL) {
        return VW_ERR_ARG;
    }
    uint64_t now = dev->port.time_ms(dev->port.ctx);
    if (now == 0u) {
        return VW_ERR_STATE;
    }
    vw_ota_info_t info;
    vw_status_t status = vw_ota_info(dev->ota, &info);
    if (status != VW_OK) {
        return status;
    }
    /* vw_ota_info: active_slot is 0 or 1, a slot's state one of the three (vw_ota.c
     * uses no record that says otherwise) */
    const vw_ota_slot_info_t *active = &info.slot[info.active_slot];
    vw_jsonw_t w;
    vw_jsonw_init(&w, dev->payload, dev->payload_cap);
    vw_jsonw_put(&w,
                 "{\"state\":\"online\",\"t\":%u,\"firmware\":%s,\"model_id\":%s,"
                 "\"model_version\":%u,\"model_sha256\":%x",
                 now, dev->config.firmware, dev->model->id, (uint64_t)dev->model->version,
                 active->sha256, (size_t)VW_SHA256_DIGEST_BYTES);
    const char *caps = dev->config.capabilities;
    if (caps != NULL && caps[0] != '\0') {
        const char *item = ",\"capabilities\":[%S"; /* then ",%S" for the others */
        for (;; caps++) { /* caps: at a name, then at the comma or NUL after it */
            const size_t n = strcspn(caps, ",");
            vw_jsonw_put(&w, item, caps, n);
            caps += n;
            if (*caps == '\0') {
                break;
            }
            item = ",%S";
        }
        vw_jsonw_put(&w, "]");
    }
    const char *names[2];
    for (unsigned i = 0; i < 2u; i++) {
        unsigned state = info.slot[i].state;
        if (state == VW_OTA_SLOT_VALID && i != info.active_slot) {
            state = 3u; /* standby */
        }
        names[i] = SLOT_NAMES[state];
    }
    static const char *const SOURCES[] = {"model", "calibration", "command"};
    vw_jsonw_put(&w,
                 ",\"slots\":{\"a\":%s,\"b\":%s},\"uptime_s\":%u,\"threshold\":%f,"
                 "\"threshold_source\":%s}",
                 names[0], names[1], uptime(dev) / 1000u, &dev->threshold,
                 SOURCES[dev->threshold_source]);
    return send(dev, "status", &w);
}

/* --------------------------------------------------------------- telemetry */

/* The batch's readings (at least one: the callers check) in one telemetry message. */
static void flush(vw_device_t *dev)
{
    vw_jsonw_t w;
    vw_jsonw_init(&w, dev->payload, dev->payload_cap);
    vw_jsonw_put(&w, "{\"readings\":[");
    for (unsigned i = 0; i < dev->batch_len; i++) {
        const vw_device_reading_t *r = &dev->batch[i];
        static const char reading[] = ",{\"seq\":%u,\"t\":%u,\"score\":%f,\"rms\":%f,"
                                      "\"peak\":%f,\"crest\":%f,\"kurtosis\":%f}";
        vw_jsonw_put(&w, i == 0u ? reading + 1 : reading, r->seq, r->t, &r->score, &r->rms,
                     &r->peak, &r->crest, &r->kurtosis);
    }
    vw_jsonw_put(&w, "]}");
    if (send(dev, "telemetry", &w) == VW_OK) {
        dev->batch_len = 0;
    }
}

static void publish_event(vw_device_t *dev, uint64_t seq, uint64_t t, int start, float score)
{
    vw_jsonw_t w;
    vw_jsonw_init(&w, dev->payload, dev->payload_cap);
    vw_jsonw_put(&w,
                 "{\"seq\":%u,\"t\":%u,\"kind\":%s,\"score\":%f,\"threshold\":%f,"
                 "\"model_id\":%s,\"model_version\":%u}",
                 seq, t, start ? "start" : "end", &score, &dev->threshold,
                 dev->model->id, (uint64_t)dev->model->version);
    send(dev, "event", &w);
}

static void publish_features(vw_device_t *dev, uint64_t seq, uint64_t t)
{
    vw_jsonw_t w;
    vw_jsonw_init(&w, dev->payload, dev->payload_cap);
    vw_jsonw_put(&w, "{\"spec\":%s,\"vectors\":[{\"seq\":%u,\"t\":%u,\"x\":[", dev->spec_id,
                 seq, t);
    for (unsigned i = 0; i < dev->model->n_features; i++) {
        vw_jsonw_put(&w, i == 0u ? "%f" : ",%f", &dev->features[i]);
    }
    vw_jsonw_put(&w, "]}]}");
    send(dev, "features", &w);
}

/* ---------------------------------------------------------------- commands */

static void clear_requests(vw_device_t *dev);

/* The wire contract's earliest time: 2020-01-01T00:00:00Z. */
#define MIN_TIME_MS INT64_C(1577836800000)

/* The reply to command @p id: its outcome, with the threshold when DONE_THRESHOLD. */
static vw_status_t reply(vw_device_t *dev, const char *id, const char *cmd, enum outcome outcome,
                         const char *detail)
{
    static const char *const OUTCOMES[] = {"refused", "failed", "done", "done"};
    uint64_t now = dev->port.time_ms(dev->port.ctx);
    if (now == 0u) {
        return VW_ERR_STATE;
    }
    vw_jsonw_t w;
    vw_jsonw_init(&w, dev->payload, dev->payload_cap);
    vw_jsonw_put(&w, "{\"id\":%s,\"t\":%u", id, now);
    if (cmd != NULL) {
        vw_jsonw_put(&w, ",\"cmd\":%s", cmd);
    }
    vw_jsonw_put(&w, ",\"outcome\":%s", OUTCOMES[outcome]);
    if (detail != NULL) {
        vw_jsonw_put(&w, ",\"detail\":%s", detail);
    }
    if (outcome == DONE_THRESHOLD) {
        vw_jsonw_put(&w, ",\"threshold\":%f", &dev->threshold);
    }
    vw_jsonw_put(&w, "}");
    vw_status_t status = send(dev, "cmd/reply", &w);
    if (status == VW_OK) {
        dev->counters.commands++;
    }
    return status;
}

/*
 * A downlink message's JSON and its identifier (@p key: "id" of a command, "job" of an
 * OTA job), a well-formed id: else VW_ERR_JSON or VW_ERR_MESSAGE, and nothing can be
 * answered; nor while the wall clock is unknown (VW_ERR_STATE).
 */
static vw_status_t open_message(const vw_device_t *dev, const uint8_t *payload, size_t len,
                                const char *key, vw_json_doc_t *doc,
                                char id[VW_MODEL_MAX_ID + 1], size_t *id_len)
{
    if (dev == NULL || (payload == NULL && len != 0u) || dev->model == NULL) {
        return VW_ERR_ARG;
    }
    vw_status_t status = vw_json_parse(doc, (const char *)payload, len, VW_JSON_DEFAULT_DEPTH);
    if (status == VW_OK) {
        status = vw_json_get_string(doc, key, id, VW_MODEL_MAX_ID + 1, id_len, NULL);
    }
    if (status == VW_OK && !vw_model_id_valid(id, *id_len)) {
        status = VW_ERR_MESSAGE;
    }
    if (status == VW_OK && dev->port.time_ms(dev->port.ctx) == 0u) {
        status = VW_ERR_STATE;
    }
    return status;
}

vw_status_t vw_device_command(vw_device_t *dev, const uint8_t *payload, size_t len)
{
    vw_json_doc_t doc;
    char id[VW_MODEL_MAX_ID + 1];
    size_t id_len = 0;
    vw_status_t status = open_message(dev, payload, len, "id", &doc, id, &id_len);
    if (status != VW_OK) {
        if (status != VW_ERR_ARG) {
            dev->counters.commands_unanswered++;
        }
        return status;
    }
    int64_t t;
    if (vw_json_get_int(&doc, "t", MIN_TIME_MS, INT64_MAX, &t, NULL) != VW_OK) {
        return reply(dev, id, NULL, REFUSED, "t: missing or not a time in ms since 2020");
    }
    char cmd[16];
    if (vw_json_get_string(&doc, "cmd", cmd, sizeof cmd, NULL, NULL) != VW_OK) {
        return reply(dev, id, NULL, REFUSED, "cmd: missing or not a command name");
    }
    if (strcmp(cmd, "set_threshold") == 0) {
        double threshold;
        if (vw_json_get_number(&doc, "threshold", &threshold, NULL) != VW_OK ||
            !(threshold <= 1e12 && (float)threshold > 0.0f)) { /* so threshold > 0 too */
            return reply(dev, id, cmd, REFUSED, "threshold: missing or not in (0, 1e12]");
        }
        dev->threshold = (float)threshold;
        dev->threshold_source = 2u;
        return reply(dev, id, cmd, DONE_THRESHOLD, NULL);
    }
    if (strcmp(cmd, "calibrate") == 0) {
        if (dev->calibrating != 0u) {
            return reply(dev, id, cmd, REFUSED, "calibrating");
        }
        memcpy(dev->calibration_id, id, id_len + 1u);
        dev->calibrating = dev->config.settings.calibrate_windows;
        vw_tail_init(&dev->calibration, dev->calibration_top, VW_DEVICE_CALIBRATION_KEPT);
        return VW_OK; /* answered when the last window is scored */
    }
    if (strcmp(cmd, "rollback") == 0) {
        status = vw_ota_rollback(dev->ota);
        if (status == VW_OK) {
            status = bind_model(dev);
            dev->on_trial = 0u;
            dev->job[0] = '\0';
            clear_requests(dev);
            return status == VW_OK ? reply(dev, id, cmd, DONE_THRESHOLD, NULL)
                                   : reply(dev, id, cmd, FAILED, vw_status_name(status));
        }
        if (status == VW_ERR_STORAGE) {
            return reply(dev, id, cmd, FAILED, vw_status_name(status));
        }
        return reply(dev, id, cmd, REFUSED,
                      status == VW_ERR_NO_MODEL ? "no previous model to go back to"
                                                : "a download is in progress");
    }
    if (strcmp(cmd, "upload_raw") == 0) {
        if (dev->upload_id[0] != '\0') {
            return reply(dev, id, cmd, REFUSED, "an upload is in progress");
        }
        memcpy(dev->upload_id, id, id_len + 1u);
        return VW_OK; /* answered once the next window is published */
    }
    char detail[sizeof "unknown command" + sizeof cmd];
    memcpy(detail, "unknown command", sizeof "unknown command");
    size_t n = strlen(cmd);
    if (vw_model_id_valid(cmd, n)) { /* named back only when it is plain ASCII */
        detail[15] = ' ';
        memcpy(detail + 16u, cmd, n + 1u);
    }
    return reply(dev, id, NULL, REFUSED, detail);
}

/* One more calibration window; the last one sets the threshold and answers. */
static void calibrate(vw_device_t *dev, float score)
{
    if (dev->calibrating == 0u) {
        return;
    }
    vw_tail_add(&dev->calibration, score); /* finite: the anomaly state took it */
    if (--dev->calibrating != 0u) {
        return;
    }
    vw_tail_estimate_t e;
    e.threshold = 0.0f; /* kept if there is no estimate: vw_tail_estimate writes on VW_OK only */
    vw_tail_estimate(&dev->calibration, dev->config.settings.calibrate_target, &e);
    float threshold = e.threshold;
    const char *detail = NULL;
    if (threshold > dev->model->threshold_ceiling) {
        threshold = dev->model->threshold_ceiling;
        detail = "ceiling";
    }
    const char *failure = NULL;
    uint32_t bits;
    memcpy(&bits, &threshold, sizeof bits);
    if (!(threshold > 0.0f && threshold <= 1e12f)) {
        failure = "no usable threshold";
    } else if (record_write(dev, CALIBRATION_RECORD, CALIBRATION_MAGIC, bits, dev->model->crc) !=
               VW_OK) {
        failure = "storage";
    }
    if (failure != NULL) {
        reply(dev, dev->calibration_id, "calibrate", FAILED, failure);
        return;
    }
    dev->threshold = threshold;
    dev->threshold_source = 1u;
    reply(dev, dev->calibration_id, "calibrate", DONE_THRESHOLD, detail);
    vw_device_connected(dev); /* the new threshold in the retained status */
}

/* The raw window for the waiting upload_raw command, then its reply. */
static void upload(vw_device_t *dev, const float *samples, uint64_t seq, uint64_t t)
{
    const vw_feature_spec_t *spec = &dev->model->spec;
    /* the header's words (magic "VR", format version 1), then the samples: little-endian,
     * copied as they are in memory like the records; the payload is 4-aligned */
    uint32_t *p = (uint32_t *)(void *)dev->payload;
    p[0] = 0x00015256u;
    p[1] = 0u;
    vw_chunk_job_ref(dev->upload_id, strlen(dev->upload_id), &p[1]);
    p[2] = spec->sample_rate_hz;
    p[3] = spec->window;
    p[4] = (uint32_t)seq;
    p[5] = (uint32_t)(seq >> 32);
    p[6] = (uint32_t)t;
    p[7] = (uint32_t)(t >> 32);
    const size_t bytes = 4u * (RAW_HEADER_BYTES / 4u + (size_t)spec->window);
    memcpy(p + RAW_HEADER_BYTES / 4u, samples, bytes - RAW_HEADER_BYTES);
    vw_status_t status = dev->port.publish(dev->port.ctx, "raw", (const uint8_t *)p, bytes);
    if (status == VW_OK) {
        dev->counters.published++;
        reply(dev, dev->upload_id, "upload_raw", DONE, NULL);
    } else {
        dev->counters.publish_failures++;
        reply(dev, dev->upload_id, "upload_raw", FAILED, "the window could not be published");
    }
    dev->upload_id[0] = '\0';
}

vw_status_t vw_device_window(vw_device_t *dev, const float *samples)
{
    if (dev == NULL || samples == NULL || dev->model == NULL) {
        return VW_ERR_ARG;
    }
    vw_status_t status = vw_dsp_features(&dev->dsp, samples, dev->features);
    float score = 0.0f;
    if (status == VW_OK) {
        status = vw_engine_infer(&dev->engine, dev->features, &score);
    }
    vw_anomaly_event_t event = VW_ANOMALY_NONE;
    if (status == VW_OK) {
        status = vw_anomaly_update(&dev->anomaly, score, dev->threshold, &event);
    }
    if (status != VW_OK) {
        return status;
    }
    calibrate(dev, score);
    uint32_t number = dev->window; /* of this window since boot */
    uint64_t seq = ((uint64_t)dev->boot << 32) | number;
    if (number == UINT32_MAX) { /* four billion windows: start a new boot's range */
        if (count_boot(dev) != VW_OK) {
            return VW_ERR_STORAGE;
        }
    } else {
        dev->window++;
    }
    dev->counters.windows++;
    if (event != VW_ANOMALY_NONE) {
        dev->counters.events++;
    }
    uint64_t wall = dev->port.time_ms(dev->port.ctx);
    const vw_feature_spec_t *spec = &dev->model->spec;
    uint32_t duration = (uint32_t)spec->window * 1000u / spec->sample_rate_hz; /* < 2^23 */
    if (wall <= duration) {
        dev->counters.unsynced_windows++;
        return VW_OK;
    }
    uint64_t t = wall - duration;
    if (dev->upload_id[0] != '\0') {
        upload(dev, samples, seq, t);
    }
    if (event != VW_ANOMALY_NONE) {
        publish_event(dev, seq, t, event == VW_ANOMALY_START, score);
    }
    uint16_t every = dev->config.settings.features_every;
    if (every != 0u && number % every == 0u) {
        publish_features(dev, seq, t);
    }
    if (dev->batch_len == dev->config.settings.batch_windows) {
        flush(dev); /* a batch the port refused before */
    }
    if (dev->batch_len == dev->config.settings.batch_windows) {
        dev->counters.readings_dropped++;
        return VW_OK;
    }
    if (dev->batch_len == 0u) {
        dev->batch_started = dev->port.now_ms(dev->port.ctx);
    }
    const float *stats = dev->features + spec->n_bands;
    vw_device_reading_t *r = &dev->batch[dev->batch_len++];
    r->seq = seq;
    r->t = t;
    r->score = score;
    r->rms = stats[0];
    r->peak = stats[1];
    r->crest = stats[2];
    r->kurtosis = stats[3];
    if (dev->batch_len == dev->config.settings.batch_windows) {
        flush(dev);
    }
    return VW_OK;
}

static void ota_poll(vw_device_t *dev);

vw_status_t vw_device_poll(vw_device_t *dev)
{
    if (dev == NULL || dev->model == NULL) {
        return VW_ERR_ARG;
    }
    ota_poll(dev);
    uint32_t age = dev->port.now_ms(dev->port.ctx) - dev->batch_started;
    uint32_t limit = dev->config.settings.batch_ms;
    if (dev->batch_len != 0u && limit != 0u && age >= limit) {
        flush(dev);
    }
    return VW_OK;
}

vw_device_counters_t vw_device_counters(const vw_device_t *dev)
{
    vw_device_counters_t counters = {0};
    if (dev != NULL) {
        counters = dev->counters;
    }
    return counters;
}

/* --------------------------------------------------------------------- OTA */

/* An ota/req message: a state report (state != NULL) or a chunk request. */
static vw_status_t ota_req(vw_device_t *dev, const char *job, const char *state, const char *detail,
                           uint32_t offset, uint32_t len)
{
    uint64_t now = dev->port.time_ms(dev->port.ctx);
    if (now == 0u) {
        return VW_ERR_STATE;
    }
    vw_jsonw_t w;
    vw_jsonw_init(&w, dev->payload, dev->payload_cap);
    vw_jsonw_put(&w, "{\"t\":%u,\"job\":%s,\"kind\":", now, job);
    if (state != NULL) {
        vw_jsonw_put(&w, "\"state\",\"state\":%s", state);
        if (detail != NULL) {
            vw_jsonw_put(&w, ",\"detail\":%s", detail);
        }
    } else {
        vw_jsonw_put(&w, "\"chunk\",\"offset\":%u,\"length\":%u", (uint64_t)offset,
                     (uint64_t)len);
        dev->counters.chunk_requests++;
    }
    vw_jsonw_put(&w, "}");
    return send(dev, "ota/req", &w);
}

static void report(vw_device_t *dev, const char *job, const char *state, const char *detail)
{
    ota_req(dev, job, state, detail, 0u, 0u);
}

static int hex_digest(const char *hex, size_t len, uint8_t out[VW_SHA256_DIGEST_BYTES])
{
    if (len != 2u * VW_SHA256_DIGEST_BYTES) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = hex[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (v < 0) {
            return 0;
        }
        out[i / 2u] = (uint8_t)(i % 2u ? out[i / 2u] | v : v << 4);
    }
    return 1;
}

/* Padded standard base64 of exactly @p n bytes into out; 0 if it is anything else. */
static int base64_exact(const char *text, size_t len, uint8_t *out, size_t n)
{
    if (len != 4u * ((n + 2u) / 3u)) {
        return 0;
    }
    uint32_t acc = 0;
    size_t bits = 0, o = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '+'              ? 62
                : ch == '/'              ? 63
                                         : -1;
        if (ch == '=' && i + 2u >= len) {
            pad++;
            continue;
        }
        if (v < 0 || pad != 0u) {
            return 0;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6u;
        if (bits >= 8u) {
            bits -= 8u;
            if (o == n) {
                return 0;
            }
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* the unused low bits of the last character must be zero: one text per value */
    return o == n && pad == (3u - n % 3u) % 3u && (acc & ((1u << bits) - 1u)) == 0u;
}

static void clear_requests(vw_device_t *dev)
{
    memset(dev->requests, 0, sizeof dev->requests);
}

static vw_status_t finish(vw_device_t *dev);

/* Ask for missing chunks until the window is full; verify when none is missing. */
static vw_status_t request_more(vw_device_t *dev)
{
    const unsigned window = dev->config.settings.ota_window;
    for (unsigned slot = 0; slot < window; slot++) {
        if (dev->requests[slot].len != 0u) {
            continue;
        }
        uint32_t offset, len;
        vw_status_t status = vw_ota_missing_from(dev->ota, dev->cursor, &offset, &len);
        if (status != VW_OK) {
            return status;
        }
        if (len == 0u) {
            break; /* asked for everything from the cursor on */
        }
        dev->cursor = offset + len;
        vw_device_request_t *r = &dev->requests[slot];
        r->offset = offset;
        r->len = len;
        r->sent_at = dev->port.now_ms(dev->port.ctx);
        ota_req(dev, dev->job, NULL, NULL, offset, len);
    }
    for (unsigned slot = 0; slot < window; slot++) {
        if (dev->requests[slot].len != 0u) {
            return VW_OK;
        }
    }
    uint32_t offset, len; /* nothing outstanding: complete, or requests were lost */
    vw_status_t status = vw_ota_next_missing(dev->ota, &offset, &len);
    if (status != VW_OK) {
        return status;
    }
    if (len != 0u) {
        dev->cursor = 0; /* ask again for what is still missing */
        return request_more(dev);
    }
    return finish(dev);
}

static vw_status_t finish(vw_device_t *dev)
{
    report(dev, dev->job, "verifying", NULL);
    vw_status_t status = vw_ota_finish(dev->ota);
    clear_requests(dev);
    if (status == VW_ERR_STORAGE) {
        return status;
    }
    if (status != VW_OK) {
        report(dev, dev->job, "failed", vw_status_name(status));
        dev->job[0] = '\0';
        return VW_OK;
    }
    status = bind_model(dev);
    if (status != VW_OK) { /* cannot happen for a model vw_ota_finish accepted */
        report(dev, dev->job, "failed", vw_status_name(status));
        return status;
    }
    dev->on_trial = 1u;
    dev->trial_started = dev->port.now_ms(dev->port.ctx);
    report(dev, dev->job, "activated", NULL);
    return VW_OK;
}

vw_status_t vw_device_ota_job(vw_device_t *dev, const uint8_t *payload, size_t len)
{
    if (len == 0u && dev != NULL) {
        /* the retained job was withdrawn: ask for no more chunks (kept ones stay) */
        if (!dev->on_trial) {
            dev->job[0] = '\0';
            clear_requests(dev);
        }
        return VW_OK;
    }
    vw_json_doc_t doc;
    char job[VW_MODEL_MAX_ID + 1];
    size_t job_len = 0;
    vw_status_t status = open_message(dev, payload, len, "job", &doc, job, &job_len);
    if (status != VW_OK) {
        return status;
    }
    vw_ota_manifest_t m;
    memset(&m, 0, sizeof m);
    char sha[2u * VW_SHA256_DIGEST_BYTES + 1u];
    char signature_text[96];
    uint8_t signature[VW_OTA_SIGNATURE_BYTES];
    size_t id_len = 0, sha_len = 0, sig_len = 0;
    int64_t version, size, chunk_size;
    int rollback = 0, has_rollback = 0;
    if (vw_json_get_string(&doc, "model_id", m.model_id, sizeof m.model_id, &id_len, NULL) != VW_OK ||
        !vw_model_id_valid(m.model_id, id_len) ||
        vw_json_get_int(&doc, "model_version", 0, UINT32_MAX, &version, NULL) != VW_OK ||
        vw_json_get_int(&doc, "size", 1, VW_MODEL_MAX_BYTES, &size, NULL) != VW_OK ||
        vw_json_get_int(&doc, "chunk_size", VW_OTA_MIN_CHUNK, VW_OTA_MAX_CHUNK, &chunk_size,
                        NULL) != VW_OK ||
        vw_json_get_string(&doc, "sha256", sha, sizeof sha, &sha_len, NULL) != VW_OK ||
        !hex_digest(sha, sha_len, m.sha256) ||
        vw_json_get_string(&doc, "signature", signature_text, sizeof signature_text, &sig_len,
                           NULL) != VW_OK ||
        !base64_exact(signature_text, sig_len, signature, sizeof signature) ||
        vw_json_get_bool(&doc, "rollback", &rollback, &has_rollback) != VW_OK) {
        report(dev, job, "failed", "not a job the contract allows");
        return VW_OK;
    }
    m.model_version = (uint32_t)version;
    m.size = (uint32_t)size;
    m.chunk_size = (uint32_t)chunk_size;
    m.rollback = (uint8_t)(has_rollback && rollback);

    vw_ota_info_t info;
    status = vw_ota_info(dev->ota, &info);
    if (status != VW_OK) {
        return status;
    }
    const vw_ota_slot_info_t *active = &info.slot[info.active_slot]; /* 0 or 1 */
    const vw_ota_slot_info_t *other = &info.slot[info.active_slot ^ 1u];
    if (active->state == VW_OTA_SLOT_VALID && memcmp(active->sha256, m.sha256, sizeof m.sha256) == 0) {
        /* the job's model runs: on trial (reported when confirmed), or installed */
        if (!dev->on_trial) {
            report(dev, job, "installed", NULL);
        }
        return VW_OK;
    }
    if (other->state == VW_OTA_SLOT_INVALID && memcmp(other->sha256, m.sha256, sizeof m.sha256) == 0) {
        /* this model failed here before: say so again, do not try it again */
        if (info.last_event == VW_OTA_EVENT_ROLLED_BACK) {
            report(dev, job, "rolled_back", "the model did not complete its trial");
        } else {
            report(dev, job, "failed", vw_status_name((vw_status_t)info.last_status));
        }
        return VW_OK;
    }
    if (info.state == VW_OTA_TRIAL) {
        report(dev, job, "failed", "another model is on trial");
        return VW_OK;
    }
    status = vw_ota_begin(dev->ota, &m, signature);
    if (status == VW_ERR_STORAGE) {
        return status;
    }
    if (status != VW_OK) {
        report(dev, job, "failed", vw_status_name(status));
        return VW_OK;
    }
    int same = strcmp(dev->job, job) == 0;
    memcpy(dev->job, job, job_len + 1u);
    vw_chunk_job_ref(job, job_len, &dev->job_ref);
    if (!same) {
        clear_requests(dev);
        dev->cursor = 0;
    }
    report(dev, job, "downloading", NULL);
    return request_more(dev);
}

vw_status_t vw_device_ota_chunk(vw_device_t *dev, const uint8_t *payload, size_t len)
{
    if (dev == NULL || (payload == NULL && len != 0u) || dev->model == NULL) {
        return VW_ERR_ARG;
    }
    vw_chunk_t chunk;
    vw_status_t status = vw_chunk_parse(payload, len, &chunk);
    if (status == VW_OK && (dev->job[0] == '\0' || dev->on_trial || chunk.job_ref != dev->job_ref)) {
        status = VW_ERR_STATE;
    }
    if (status == VW_OK) {
        status = vw_ota_chunk(dev->ota, chunk.offset, chunk.data, chunk.length);
    }
    if (status != VW_OK) {
        dev->counters.chunks_ignored++;
        return status;
    }
    for (unsigned slot = 0; slot < VW_DEVICE_OTA_WINDOW_MAX; slot++) {
        if (dev->requests[slot].len != 0u && dev->requests[slot].offset == chunk.offset) {
            dev->requests[slot].len = 0;
        }
    }
    return request_more(dev);
}

/* Requests that waited too long are sent again; a trial that lasted is confirmed. */
static void ota_poll(vw_device_t *dev)
{
    uint32_t now = dev->port.now_ms(dev->port.ctx);
    if (dev->on_trial) {
        if (now - dev->trial_started >= dev->config.settings.trial_ms &&
            vw_ota_confirm(dev->ota) == VW_OK) {
            dev->on_trial = 0u;
            report(dev, dev->job, "installed", NULL);
            dev->job[0] = '\0';
        }
        return;
    }
    if (dev->job[0] == '\0') {
        return;
    }
    for (unsigned slot = 0; slot < dev->config.settings.ota_window; slot++) {
        vw_device_request_t *r = &dev->requests[slot];
        if (r->len != 0u && now - r->sent_at >= dev->config.settings.ota_timeout_ms) {
            r->sent_at = now;
            ota_req(dev, dev->job, NULL, NULL, r->offset, r->len);
        }
    }
}
