/*
 * The device layer on an in-memory port: boot count and sequence numbers across
 * reboots (also with the boot record's write cut off), the birth message and last
 * will, telemetry batching by count and by age, anomaly events, feature vectors,
 * windows before the wall clock is known, and a port that refuses to publish.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_chunk.h"
#include "vw_device.h"
#include "vw_json_writer.h"
#include "vw_ota.h"
#include "vw_test.h"

#define SLOT_BYTES 1024u
#define STORAGE_BYTES 4096u
#define RATE 8000u
#define RECORD_ADDR 3072u /* after the OTA region of two 1 KiB slots */
#define T0 1764547200000u  /* 2025-12-01T00:00:00Z */
#define WINDOW_MS 32u      /* 256 samples at 8 kHz */
#define LOW 0.6f           /* amplitudes (g) of windows the test model scores low... */
#define HIGH 10.0f         /* ...and high */

#include "vw_test_port.h"

/* ---- the port: storage of vw_test_port.h, a clock, captured messages ------ */

typedef struct {
    mem_port_t mem; /* first: the storage callbacks take the same pointer */
    uint32_t now;   /* ms since boot */
    uint64_t wall;  /* ms since the epoch, 0: unknown */
    int refuse;     /* publish fails */
    int count;      /* messages taken */
    char suffix[16][16];
    char payload[16][2048];
    size_t length[16];
} dev_port_t;

static uint32_t clock_now(void *ctx) { return ((dev_port_t *)ctx)->now; }
static uint64_t clock_wall(void *ctx) { return ((dev_port_t *)ctx)->wall; }

static vw_status_t capture(void *ctx, const char *suffix, const uint8_t *payload, size_t len)
{
    dev_port_t *p = ctx;
    if (p->refuse || len >= sizeof p->payload[0]) {
        return VW_ERR_STORAGE;
    }
    int i = p->count++ % 16;
    snprintf(p->suffix[i], sizeof p->suffix[i], "%s", suffix);
    p->length[i] = len;
    memcpy(p->payload[i], payload, len);
    p->payload[i][len] = '\0';
    return VW_OK;
}

static vw_port_t device_port(dev_port_t *p)
{
    vw_port_t port = {p,       clock_now, mem_read, mem_write, mem_map, mem_verify,
                      capture, clock_wall};
    return port;
}

/* ---- a provisioned device ------------------------------------------------- */

static uint32_t blob[128];
static uint32_t blob_len;
static dev_port_t port_state;
static vw_ota_t ota;
static vw_device_t dev;
static uint32_t work[8192];

static vw_device_config_t device_config(void)
{
    vw_device_config_t c;
    memset(&c, 0, sizeof c);
    c.firmware = "1.2.0";
    c.capabilities = "ota,raw";
    c.record_addr = RECORD_ADDR;
    c.max_window = 1024;
    c.max_features = 40;
    c.engine_work = engine_work;
    c.engine_work_bytes = sizeof engine_work;
    c.settings = vw_device_defaults();
    c.settings.batch_windows = 3;
    c.settings.batch_ms = 1000;
    c.settings.features_every = 4;
    return c;
}

/* Power on: OTA boot, then the device; the clock restarts, storage stays. */
static vw_status_t power_on(const vw_device_config_t *c)
{
    vw_port_t port = device_port(&port_state);
    vw_ota_config_t oc = {0, SLOT_BYTES, RATE, 1024, engine_work, sizeof engine_work};
    port_state.mem.dead = 0;
    port_state.mem.writes = 0;
    port_state.mem.cut_at = 0;
    port_state.now = 0;
    port_state.count = 0;
    if (vw_ota_init(&ota, &port, &oc) != VW_OK) {
        return VW_ERR_NO_MODEL;
    }
    return vw_device_init(&dev, &port, c, &ota, work, sizeof work);
}

static void factory_fresh(void)
{
    memset(&port_state, 0, sizeof port_state);
    port_state.mem.key = "test-key";
    port_state.wall = T0;
    vw_port_t port = device_port(&port_state);
    vw_ota_config_t oc = {0, SLOT_BYTES, RATE, 1024, engine_work, sizeof engine_work};
    memset(bytes_of(&port_state.mem), 0xff, STORAGE_BYTES);
    VW_CHECK_EQ(vw_ota_init(&ota, &port, &oc), VW_ERR_NO_MODEL);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)blob, blob_len), VW_OK);
}

/* A window of a sine of amplitude a in g (in the model's band) over a little noise. */
static float samples[256];

static const float *window_of(float a)
{
    uint32_t state = 7u;
    for (int i = 0; i < 256; i++) {
        state = state * 1664525u + 1013904223u;
        float noise = ((float)(state >> 8) / 16777216.0f - 0.5f) * 0.01f;
        samples[i] = a * sinf(2.0f * 3.14159265f * 5.0f * (float)i / 256.0f) + noise;
    }
    return samples;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static const char *last(void) { return port_state.payload[(port_state.count - 1) % 16]; }
/* The message before the last @p back ones. */
static const char *recent(int back) { return port_state.payload[(port_state.count - 1 - back) % 16]; }
static const char *last_suffix(void) { return port_state.suffix[(port_state.count - 1) % 16]; }

/* The score the model gives a window, from an engine and DSP of the test's own. */
static float score_of(const float *x)
{
    static uint32_t dsp_work[1024];
    static uint32_t eng_work[256];
    vw_model_t m;
    vw_engine_t e;
    vw_dsp_t d;
    float f[1 + VW_DSP_N_STATS], score = -1.0f;
    if (vw_model_parse(&m, (const uint8_t *)blob, blob_len) == VW_OK &&
        vw_engine_init(&e, &m, eng_work, sizeof eng_work) == VW_OK &&
        vw_dsp_init(&d, &m.spec, dsp_work, sizeof dsp_work) == VW_OK &&
        vw_dsp_features(&d, x, f) == VW_OK) {
        vw_engine_infer(&e, f, &score);
    }
    return score;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_scores_of_the_test_windows(void)
{
    /* the windows the tests feed: high ones at or above the threshold (1.0), low ones
       below the release level (0.8) */
    VW_CHECK(score_of(window_of(HIGH)) >= 1.0f);
    VW_CHECK(score_of(window_of(LOW)) < 0.8f);
}

static void test_birth_message_and_last_will(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    VW_CHECK_EQ(power_on(&c), VW_OK);
    VW_CHECK_EQ(vw_device_window_length(&dev), 256);
    port_state.now = 3600500u;
    VW_CHECK_EQ(vw_device_connected(&dev), VW_OK);
    VW_CHECK(strcmp(last_suffix(), "status") == 0);
    char want[512];
    uint8_t sha[32];
    vw_sha256(blob, blob_len, sha);
    char hex[65];
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    }
    snprintf(want, sizeof want,
             "{\"state\":\"online\",\"t\":%llu,\"firmware\":\"1.2.0\",\"model_id\":\"fan\","
             "\"model_version\":1,\"model_sha256\":\"%s\",\"capabilities\":[\"ota\",\"raw\"],"
             "\"slots\":{\"a\":\"active\",\"b\":\"empty\"},\"uptime_s\":3600,\"threshold\":1.0,"
             "\"threshold_source\":\"model\"}",
             (unsigned long long)T0, hex);
    VW_CHECK(strcmp(last(), want) == 0);
    uint8_t will[32];
    size_t len = 0;
    VW_CHECK_EQ(vw_device_last_will(&dev, will, sizeof will, &len), VW_OK);
    VW_CHECK(len == 19 && memcmp(will, "{\"state\":\"offline\"}", len) == 0);
    VW_CHECK_EQ(vw_device_last_will(&dev, will, 10, &len), VW_ERR_BUFFER);
    port_state.wall = 0; /* no wall clock: no birth message */
    VW_CHECK_EQ(vw_device_connected(&dev), VW_ERR_STATE);
}

/* The seq and t of reading i of the last telemetry message. */
static int reading(int i, unsigned long long *seq, unsigned long long *t)
{
    const char *p = last();
    for (int k = 0; k <= i; k++) {
        p = strstr(p + 1, "{\"seq\":");
        if (p == NULL) {
            return 0;
        }
    }
    return sscanf(p, "{\"seq\":%llu,\"t\":%llu,", seq, t) == 2;
}

static void test_telemetry_batches_and_sequence_numbers(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    c.settings.features_every = 0;
    VW_CHECK_EQ(power_on(&c), VW_OK);
    for (int i = 0; i < 3; i++) {
        port_state.wall = T0 + 1000u * (unsigned)i;
        VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK);
        VW_CHECK_EQ(port_state.count, i < 2 ? 0 : 1); /* sent when the third arrives */
    }
    VW_CHECK(strcmp(last_suffix(), "telemetry") == 0);
    VW_CHECK(strncmp(last(), "{\"readings\":[{\"seq\":4294967296,\"t\":", 35) == 0);
    unsigned long long seq, t;
    for (int i = 0; i < 3; i++) {
        VW_CHECK(reading(i, &seq, &t));
        VW_CHECK(seq == (1ull << 32) + (unsigned)i); /* boot 1, windows 0, 1, 2 */
        VW_CHECK(t == T0 + 1000u * (unsigned)i - WINDOW_MS);
    }
    VW_CHECK(!reading(3, &seq, &t));
    VW_CHECK(strstr(last(), "\"score\":") && strstr(last(), "\"kurtosis\":"));

    /* a partial batch leaves once its first reading is batch_ms old */
    port_state.now = 5000u;
    VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK);
    port_state.now = 5999u;
    VW_CHECK_EQ(vw_device_poll(&dev), VW_OK);
    VW_CHECK_EQ(port_state.count, 1);
    port_state.now = 6000u;
    VW_CHECK_EQ(vw_device_poll(&dev), VW_OK);
    VW_CHECK_EQ(port_state.count, 2);
    VW_CHECK(reading(0, &seq, &t) && seq == (1ull << 32) + 3u && !reading(1, &seq, &t));

    /* a reboot takes the next boot number: no sequence number is used twice */
    VW_CHECK_EQ(power_on(&c), VW_OK);
    for (int i = 0; i < 3; i++) {
        VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK);
    }
    VW_CHECK(reading(0, &seq, &t) && seq == (2ull << 32));
    VW_CHECK_EQ(vw_device_counters(&dev).windows, 3);
}

static void test_a_cut_boot_record_never_reuses_a_range(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    VW_CHECK_EQ(power_on(&c), VW_OK); /* boot 1 */
    VW_CHECK_EQ(power_on(&c), VW_OK); /* boot 2 */
    for (uint32_t tear = 0; tear < VW_DEVICE_RECORD_BYTES; tear++) {
        vw_port_t port = device_port(&port_state);
        vw_ota_config_t oc = {0, SLOT_BYTES, RATE, 1024, engine_work, sizeof engine_work};
        port_state.mem.dead = 0;
        port_state.mem.writes = 0;
        VW_CHECK_EQ(vw_ota_init(&ota, &port, &oc), VW_OK);
        port_state.mem.cut_at = port_state.mem.writes + 1; /* the boot record's write */
        port_state.mem.tear = tear;
        VW_CHECK_EQ(vw_device_init(&dev, &port, &c, &ota, work, sizeof work), VW_ERR_STORAGE);
    }
    /* the device never ran with a torn count: the next boot is 3 (or later), not 2 */
    VW_CHECK_EQ(power_on(&c), VW_OK);
    VW_CHECK(dev.boot >= 3u);
}

static void test_events_and_features(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    c.settings.batch_windows = 100;
    VW_CHECK_EQ(power_on(&c), VW_OK);
    int starts = 0, ends = 0, vectors = 0;
    const float amplitudes[] = {LOW, HIGH, HIGH, HIGH, LOW, LOW, LOW, LOW, LOW};
    for (size_t i = 0; i < sizeof amplitudes / sizeof amplitudes[0]; i++) {
        int before = port_state.count;
        VW_CHECK_EQ(vw_device_window(&dev, window_of(amplitudes[i])), VW_OK);
        for (int k = before; k < port_state.count; k++) {
            const char *s = port_state.suffix[k % 16], *p = port_state.payload[k % 16];
            if (strcmp(s, "event") == 0) {
                unsigned long long seq = 0;
                sscanf(p, "{\"seq\":%llu,", &seq);
                if (strstr(p, "\"kind\":\"start\"")) {
                    starts++;
                    VW_CHECK(i == 3 && seq == (1ull << 32) + 3u); /* third high window */
                } else {
                    ends++;
                    VW_CHECK(i == 8 && strstr(p, "\"kind\":\"end\"")); /* fifth low one */
                }
                VW_CHECK(strstr(p, "\"threshold\":1.0,\"model_id\":\"fan\",\"model_version\":1}"));
            } else if (strcmp(s, "features") == 0) {
                vectors++;
                VW_CHECK(i % 4 == 0); /* one in every four windows */
                VW_CHECK(strncmp(p, "{\"spec\":\"fs-8000-256-1-", 23) == 0);
                VW_CHECK(strstr(p, "\"x\":[") != NULL);
            }
        }
    }
    VW_CHECK_EQ(starts, 1);
    VW_CHECK_EQ(ends, 1);
    VW_CHECK_EQ(vectors, 3);
    VW_CHECK_EQ(vw_device_counters(&dev).events, 2);
}

static void test_unsynced_clock_and_refused_publishes(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    c.settings.features_every = 0;
    VW_CHECK_EQ(power_on(&c), VW_OK);
    port_state.wall = 0;
    for (int i = 0; i < 5; i++) {
        VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK);
    }
    VW_CHECK_EQ(port_state.count, 0);
    VW_CHECK_EQ(vw_device_counters(&dev).unsynced_windows, 5);
    port_state.wall = T0;
    port_state.refuse = 1; /* the batch is kept, then readings are dropped */
    for (int i = 0; i < 5; i++) {
        VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK);
    }
    vw_device_counters_t n = vw_device_counters(&dev);
    VW_CHECK_EQ(n.readings_dropped, 2);
    VW_CHECK_EQ(n.publish_failures, 3);
    port_state.refuse = 0;
    VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK); /* sent again, then kept */
    unsigned long long seq, t;
    VW_CHECK(reading(0, &seq, &t) && seq == (1ull << 32) + 5u);
    VW_CHECK(reading(2, &seq, &t) && seq == (1ull << 32) + 7u);
    /* a window with a non-finite sample takes no sequence number */
    float bad[256];
    memcpy(bad, window_of(LOW), sizeof bad);
    bad[17] = NAN;
    VW_CHECK_EQ(vw_device_window(&dev, bad), VW_ERR_INPUT);
    VW_CHECK_EQ(vw_device_counters(&dev).windows, 11);
}

static vw_status_t command(const char *json)
{
    return vw_device_command(&dev, (const uint8_t *)json, strlen(json));
}

#define CHECK_REPLY(want)                                                            \
    do {                                                                             \
        VW_CHECK(strcmp(last_suffix(), "cmd/reply") == 0);                           \
        if (strcmp(last(), want) != 0) {                                             \
            fprintf(stderr, "%s:%d: reply %s, want %s\n", __FILE__, __LINE__, last(), want); \
        }                                                                            \
        VW_CHECK(strcmp(last(), want) == 0);                                         \
    } while (0)

static void test_commands(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    c.settings.features_every = 0;
    c.settings.batch_windows = 100;
    c.settings.calibrate_windows = 3;
    VW_CHECK_EQ(power_on(&c), VW_OK);
    VW_CHECK_EQ(command("{\"id\":\"c-1\",\"t\":1764547200000,\"cmd\":\"set_threshold\","
                        "\"threshold\":2.5}"),
                VW_OK);
    CHECK_REPLY("{\"id\":\"c-1\",\"t\":1764547200000,\"cmd\":\"set_threshold\","
                "\"outcome\":\"done\",\"threshold\":2.5}");
    VW_CHECK(dev.threshold == 2.5f);
    VW_CHECK_EQ(command("{\"id\":\"c-2\",\"t\":1764547200000,\"cmd\":\"set_threshold\","
                        "\"threshold\":0}"),
                VW_OK);
    CHECK_REPLY("{\"id\":\"c-2\",\"t\":1764547200000,\"cmd\":\"set_threshold\","
                "\"outcome\":\"refused\",\"detail\":\"threshold: missing or not in (0, 1e12]\"}");
    VW_CHECK(dev.threshold == 2.5f);

    /* calibrate: three windows, too few for a tail fit: the threshold is the empirical
       quantile, their highest score; the reply, then the status with the new threshold */
    VW_CHECK_EQ(command("{\"cmd\":\"calibrate\",\"id\":\"cal\",\"t\":1764547200000,"
                        "\"extra\":{\"nested\":[1,2]}}"),
                VW_OK);
    int before = port_state.count;
    VW_CHECK_EQ(command("{\"id\":\"cal-2\",\"t\":1764547200000,\"cmd\":\"calibrate\"}"), VW_OK);
    CHECK_REPLY("{\"id\":\"cal-2\",\"t\":1764547200000,\"cmd\":\"calibrate\","
                "\"outcome\":\"refused\",\"detail\":\"calibrating\"}");
    float highest = 0.0f;
    const float amplitudes[] = {LOW, 0.3f, LOW};
    for (int i = 0; i < 3; i++) {
        float score = score_of(window_of(amplitudes[i]));
        highest = score > highest ? score : highest;
        VW_CHECK_EQ(vw_device_window(&dev, window_of(amplitudes[i])), VW_OK);
        VW_CHECK_EQ(port_state.count, before + 1 + 2 * (i == 2)); /* reply, status */
    }
    char want[256], text[VW_JSONW_FLOAT_MAX + 1];
    text[vw_jsonw_format_float(highest, text)] = '\0';
    snprintf(want, sizeof want,
             "{\"id\":\"cal\",\"t\":1764547200000,\"cmd\":\"calibrate\",\"outcome\":\"done\","
             "\"threshold\":%s}",
             text);
    VW_CHECK(strcmp(recent(1), want) == 0);
    VW_CHECK(strcmp(last_suffix(), "status") == 0);
    VW_CHECK(strstr(last(), "\"threshold_source\":\"calibration\"}") != NULL);
    VW_CHECK(dev.threshold == highest && highest < 1.0f);

    /* it is stored with the model's identity: a reboot keeps it */
    VW_CHECK_EQ(power_on(&c), VW_OK);
    VW_CHECK(dev.threshold == highest);
    VW_CHECK_EQ(vw_device_connected(&dev), VW_OK);
    VW_CHECK(strstr(last(), "\"threshold_source\":\"calibration\"}") != NULL);

    /* a calibration never raises the threshold past the model's ceiling (here its own
       threshold, 1.0): scores above it give the ceiling, said in the detail */
    VW_CHECK_EQ(command("{\"id\":\"cal-3\",\"t\":1764547200000,\"cmd\":\"calibrate\"}"), VW_OK);
    for (int i = 0; i < 3; i++) {
        VW_CHECK_EQ(vw_device_window(&dev, window_of(HIGH)), VW_OK);
    }
    VW_CHECK(score_of(window_of(HIGH)) > 1.0f);
    VW_CHECK(strstr(last(), "\"kind\":\"start\"") != NULL); /* after the reply and status */
    VW_CHECK(strcmp(recent(2),
                    "{\"id\":\"cal-3\",\"t\":1764547200000,\"cmd\":\"calibrate\","
                    "\"outcome\":\"done\",\"detail\":\"ceiling\",\"threshold\":1.0}") == 0);
    VW_CHECK(dev.threshold == 1.0f);

    /* storage that refuses the record: failed, the threshold unchanged */
    VW_CHECK_EQ(command("{\"id\":\"cal-4\",\"t\":1764547200000,\"cmd\":\"calibrate\"}"), VW_OK);
    for (int i = 0; i < 3; i++) {
        port_state.mem.dead = i == 2;
        VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK);
    }
    port_state.mem.dead = 0;
    CHECK_REPLY("{\"id\":\"cal-4\",\"t\":1764547200000,\"cmd\":\"calibrate\","
                "\"outcome\":\"failed\",\"detail\":\"storage\"}");
    VW_CHECK(dev.threshold == 1.0f);
    VW_CHECK_EQ(power_on(&c), VW_OK); /* the record of cal-3 */
    VW_CHECK(dev.threshold == 1.0f);

    /* upload_raw: the next window's samples on raw, then the reply */
    VW_CHECK_EQ(command("{\"id\":\"r\",\"t\":1764547200000,\"cmd\":\"upload_raw\"}"), VW_OK);
    VW_CHECK_EQ(command("{\"id\":\"r2\",\"t\":1764547200000,\"cmd\":\"upload_raw\"}"), VW_OK);
    CHECK_REPLY("{\"id\":\"r2\",\"t\":1764547200000,\"cmd\":\"upload_raw\","
                "\"outcome\":\"refused\",\"detail\":\"an upload is in progress\"}");
    before = port_state.count;
    VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK);
    VW_CHECK_EQ(port_state.count, before + 2);
    int raw = (port_state.count - 2) % 16;
    VW_CHECK(strcmp(port_state.suffix[raw], "raw") == 0);
    VW_CHECK_EQ(port_state.length[raw], 32 + 4 * 256);
    const uint8_t *h = (const uint8_t *)port_state.payload[raw];
    uint32_t ref = 0;
    vw_chunk_job_ref("r", 1, &ref);
    VW_CHECK(h[0] == 'V' && h[1] == 'R' && h[2] == 1 && h[3] == 0);
    VW_CHECK(le32(h + 4) == ref && le32(h + 8) == RATE && le32(h + 12) == 256);
    VW_CHECK(le32(h + 16) == dev.window - 1u && le32(h + 20) == dev.boot);
    VW_CHECK(le32(h + 24) + ((uint64_t)le32(h + 28) << 32) == T0 - WINDOW_MS);
    VW_CHECK(memcmp(h + 32, samples, 4 * 256) == 0); /* float32, little endian */
    CHECK_REPLY("{\"id\":\"r\",\"t\":1764547200000,\"cmd\":\"upload_raw\","
                "\"outcome\":\"done\"}");
    VW_CHECK_EQ(command("{\"id\":\"x\",\"t\":1764547200000,\"cmd\":\"reboot\"}"), VW_OK);
    CHECK_REPLY("{\"id\":\"x\",\"t\":1764547200000,\"outcome\":\"refused\","
                "\"detail\":\"unknown command reboot\"}");
    VW_CHECK_EQ(command("{\"id\":\"x\",\"t\":1764547200000,\"cmd\":\"\\u00e9t\u00e9\"}"), VW_OK);
    CHECK_REPLY("{\"id\":\"x\",\"t\":1764547200000,\"outcome\":\"refused\","
                "\"detail\":\"unknown command\"}");
    VW_CHECK_EQ(command("{\"id\":\"y\",\"t\":12,\"cmd\":\"calibrate\"}"), VW_OK);
    CHECK_REPLY("{\"id\":\"y\",\"t\":1764547200000,\"outcome\":\"refused\","
                "\"detail\":\"t: missing or not a time in ms since 2020\"}");

    /* nothing to answer to: not JSON, no id, an id off the pattern, a repeated id */
    int answered = port_state.count;
    VW_CHECK_EQ(command("{\"id\":\"z\",\"t\":1764547200000,\"cmd\":\"calibrate\""), VW_ERR_JSON);
    VW_CHECK_EQ(command("{\"t\":1764547200000,\"cmd\":\"calibrate\"}"), VW_ERR_MESSAGE);
    VW_CHECK_EQ(command("{\"id\":\"a b\",\"cmd\":\"calibrate\"}"), VW_ERR_MESSAGE);
    VW_CHECK_EQ(command("{\"id\":\"a\",\"id\":\"b\",\"cmd\":\"calibrate\"}"), VW_ERR_MESSAGE);
    VW_CHECK_EQ(vw_device_command(&dev, NULL, 0), VW_ERR_JSON);
    port_state.wall = 0;
    VW_CHECK_EQ(command("{\"id\":\"w\",\"t\":1764547200000,\"cmd\":\"calibrate\"}"), VW_ERR_STATE);
    port_state.wall = T0;
    VW_CHECK_EQ(port_state.count, answered);
    VW_CHECK_EQ(vw_device_counters(&dev).commands_unanswered, 6);
    VW_CHECK_EQ(vw_device_counters(&dev).commands, 5); /* since the last power on */
}

/* ---- over the air ------------------------------------------------------------ */

static uint32_t blob_v2[128];
static uint32_t blob_v2_len;

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0u) |
                     (i + 2 < n ? in[i + 2] : 0u);
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63u];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63u] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63u] : '=';
    }
    out[o] = '\0';
}

/* The ota/job payload of version 2, signed with the port's test key (or another). */
static const char *job_json(const char *key)
{
    static char json[512];
    uint8_t sha[32], sig[64];
    vw_sha256(blob_v2, blob_v2_len, sha);
    char hex[65], sig64[89], text[VW_OTA_SIGNED_TEXT_MAX];
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    }
    vw_ota_manifest_t m;
    memset(&m, 0, sizeof m);
    memcpy(m.model_id, "fan", 4);
    m.model_version = 2;
    m.size = blob_v2_len;
    m.chunk_size = 64;
    memcpy(m.sha256, sha, 32);
    size_t len = 0;
    vw_ota_signed_text(&m, text, sizeof text, &len);
    test_sign(key, (const uint8_t *)text, len, sig);
    base64(sig, 64, sig64);
    snprintf(json, sizeof json,
             "{\"job\":\"j-2\",\"model_id\":\"fan\",\"model_version\":2,\"size\":%u,"
             "\"sha256\":\"%s\",\"chunk_size\":64,\"signature\":\"%s\"}",
             (unsigned)blob_v2_len, hex, sig64);
    return json;
}

static vw_status_t job(const char *key)
{
    const char *json = job_json(key);
    return vw_device_ota_job(&dev, (const uint8_t *)json, strlen(json));
}

/* Send the chunk at @p offset of version 2 (job j-2). */
static vw_status_t chunk_at(uint32_t offset)
{
    uint8_t payload[VW_CHUNK_HEADER_BYTES + 64];
    uint32_t ref = 0, len = blob_v2_len - offset < 64u ? blob_v2_len - offset : 64u;
    vw_chunk_job_ref("j-2", 3, &ref);
    const uint32_t fields[3] = {ref, offset, len};
    payload[0] = VW_CHUNK_MAGIC0;
    payload[1] = VW_CHUNK_MAGIC1;
    payload[2] = VW_CHUNK_VERSION;
    payload[3] = 0;
    for (int f = 0; f < 3; f++) {
        for (int b = 0; b < 4; b++) {
            payload[4 + 4 * f + b] = (uint8_t)(fields[f] >> (8 * b));
        }
    }
    memcpy(payload + VW_CHUNK_HEADER_BYTES, (const uint8_t *)blob_v2 + offset, len);
    return vw_device_ota_chunk(&dev, payload, VW_CHUNK_HEADER_BYTES + len);
}

/* Offsets of the chunk requests among the last @p n messages; the count. */
static int requested(int n, uint32_t *offsets)
{
    int found = 0;
    for (int k = port_state.count - n; k < port_state.count; k++) {
        const char *p = port_state.payload[k % 16];
        static const char key[] = "\"kind\":\"chunk\",\"offset\":";
        const char *o = strstr(p, key);
        if (strcmp(port_state.suffix[k % 16], "ota/req") == 0 && o != NULL) {
            offsets[found++] = (uint32_t)strtoul(o + sizeof key - 1, NULL, 10);
        }
    }
    return found;
}

static int reported(const char *state)
{
    char want[64];
    snprintf(want, sizeof want, "\"kind\":\"state\",\"state\":\"%s\"", state);
    for (int k = 0; k < port_state.count && k < 16; k++) {
        if (strstr(port_state.payload[(port_state.count - 1 - k) % 16], want) != NULL) {
            return 1;
        }
    }
    return 0;
}

static void test_ota_download_trial_and_rollback(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    c.settings.ota_window = 2;
    c.settings.ota_timeout_ms = 100;
    c.settings.trial_ms = 1000;
    VW_CHECK_EQ(power_on(&c), VW_OK);
    VW_CHECK_EQ(job("other-key"), VW_OK); /* a forged job: refused, reported */
    VW_CHECK(strstr(last(), "\"state\":\"failed\",\"detail\":\"signature\"") != NULL);

    int before = port_state.count;
    VW_CHECK_EQ(job("test-key"), VW_OK);
    uint32_t asked[16];
    VW_CHECK_EQ(requested(port_state.count - before, asked), 2); /* the window */
    VW_CHECK(asked[0] == 0u && asked[1] == 64u);
    VW_CHECK_EQ(chunk_at(64), VW_OK); /* out of order, then twice */
    VW_CHECK_EQ(chunk_at(64), VW_OK);
    VW_CHECK_EQ(chunk_at(99), VW_ERR_RANGE); /* not a chunk boundary: refused by vw_ota */

    /* a reset mid-download: the job comes again and only missing chunks are asked for */
    VW_CHECK_EQ(power_on(&c), VW_OK);
    before = port_state.count;
    VW_CHECK_EQ(job("test-key"), VW_OK);
    int n = requested(port_state.count - before, asked);
    VW_CHECK_EQ(n, 2);
    VW_CHECK(asked[0] == 0u && asked[1] == 128u); /* 64 is stored */

    /* request 0 is lost: after the timeout it is asked for again */
    port_state.now += 100;
    before = port_state.count;
    VW_CHECK_EQ(vw_device_poll(&dev), VW_OK);
    VW_CHECK_EQ(requested(port_state.count - before, asked), 2);
    VW_CHECK(asked[0] == 0u);
    for (int guard = 0; guard < 64 && !reported("activated"); guard++) {
        before = port_state.count;
        for (uint32_t offset = 0; offset < blob_v2_len; offset += 64) {
            chunk_at(offset); /* every chunk, in order; stored ones are ignored by vw_ota */
        }
    }
    VW_CHECK(reported("verifying") && reported("activated"));
    VW_CHECK_EQ(dev.model->version, 2);

    /* a reset before the trial ends: back to version 1, reported when the job comes again */
    VW_CHECK_EQ(power_on(&c), VW_OK);
    VW_CHECK_EQ(dev.model->version, 1);
    VW_CHECK_EQ(job("test-key"), VW_OK);
    VW_CHECK(strstr(last(), "\"state\":\"rolled_back\"") != NULL);
    VW_CHECK_EQ(chunk_at(0), VW_ERR_STATE);
}

static void test_ota_trial_confirmed(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    c.settings.ota_window = 8;
    c.settings.trial_ms = 1000;
    VW_CHECK_EQ(power_on(&c), VW_OK);
    VW_CHECK_EQ(job("test-key"), VW_OK);
    for (uint32_t offset = 0; offset < blob_v2_len; offset += 64) {
        VW_CHECK_EQ(chunk_at(offset), VW_OK);
    }
    VW_CHECK(reported("activated"));
    port_state.now += 999;
    VW_CHECK_EQ(vw_device_poll(&dev), VW_OK);
    VW_CHECK(!reported("installed"));
    port_state.now += 1;
    VW_CHECK_EQ(vw_device_poll(&dev), VW_OK);
    VW_CHECK(strstr(last(), "\"state\":\"installed\"") != NULL);
    VW_CHECK_EQ(power_on(&c), VW_OK); /* confirmed: a reset keeps it */
    VW_CHECK_EQ(dev.model->version, 2);
    VW_CHECK_EQ(job("test-key"), VW_OK);
    VW_CHECK(strstr(last(), "\"state\":\"installed\"") != NULL);

    /* the rollback command: back to version 1, kept across a reset, not reinstalled */
    VW_CHECK_EQ(command("{\"id\":\"rb\",\"t\":1764547200000,\"cmd\":\"rollback\"}"), VW_OK);
    CHECK_REPLY("{\"id\":\"rb\",\"t\":1764547200000,\"cmd\":\"rollback\",\"outcome\":\"done\","
                "\"threshold\":1.0}");
    VW_CHECK_EQ(dev.model->version, 1);
    VW_CHECK_EQ(power_on(&c), VW_OK);
    VW_CHECK_EQ(dev.model->version, 1);
    VW_CHECK_EQ(job("test-key"), VW_OK);
    VW_CHECK(strstr(last(), "\"state\":\"rolled_back\"") != NULL);
    VW_CHECK_EQ(command("{\"id\":\"rb2\",\"t\":1764547200000,\"cmd\":\"rollback\"}"), VW_OK);
    CHECK_REPLY("{\"id\":\"rb2\",\"t\":1764547200000,\"cmd\":\"rollback\","
                "\"outcome\":\"refused\",\"detail\":\"no previous model to go back to\"}");
}

/* The device keeps to the bytes vw_device_required_bytes names, whether its memory starts
   8-aligned or only 4-aligned: a raw upload fills the payload buffer to its last byte. */
static void test_memory_stays_inside_what_it_asked_for(void)
{
    for (size_t offset = 0; offset <= 4; offset += 4) {
        factory_fresh();
        vw_device_config_t c = device_config();
        c.max_window = 256; /* the model's: the raw message is the biggest payload */
        vw_port_t port = device_port(&port_state);
        size_t need = vw_device_required_bytes(&c);
        VW_CHECK(need > 0 && need + offset + 16 <= sizeof work);
        memset(work, 0xa5, sizeof work);
        uint8_t *start = (uint8_t *)work + offset;
        VW_CHECK_EQ(vw_device_init(&dev, &port, &c, &ota, start, need), VW_OK);
        VW_CHECK_EQ(command("{\"id\":\"r\",\"t\":1764547200000,\"cmd\":\"upload_raw\"}"), VW_OK);
        int before = port_state.count;
        for (int i = 0; i < 4; i++) { /* the raw window, a batch of telemetry, features */
            VW_CHECK_EQ(vw_device_window(&dev, window_of(LOW)), VW_OK);
        }
        int raw = 0;
        for (int i = before; i < port_state.count; i++) {
            raw += strcmp(port_state.suffix[i % 16], "raw") == 0;
        }
        VW_CHECK_EQ(raw, 1);
        int intact = 1;
        for (size_t i = 0; i < offset; i++) {
            intact &= ((uint8_t *)work)[i] == 0xa5;
        }
        for (size_t i = 0; i < 16; i++) {
            intact &= start[need + i] == 0xa5;
        }
        VW_CHECK(intact);
    }
}

static void test_refusals(void)
{
    factory_fresh();
    vw_device_config_t c = device_config();
    vw_port_t port = device_port(&port_state);
    VW_CHECK_EQ(vw_device_init(&dev, &port, &c, &ota, work, 16), VW_ERR_BUFFER);
    VW_CHECK_EQ(vw_device_init(&dev, &port, &c, &ota, (uint8_t *)work + 1, 1000), VW_ERR_ALIGN);
    vw_device_config_t bad = c;
    bad.firmware = "1.2 beta";
    VW_CHECK_EQ(vw_device_init(&dev, &port, &bad, &ota, work, sizeof work), VW_ERR_ARG);
    bad.firmware = "1.2\"beta"; /* the status message writes no escapes */
    VW_CHECK_EQ(vw_device_init(&dev, &port, &bad, &ota, work, sizeof work), VW_ERR_ARG);
    bad = c;
    bad.capabilities = "ota,,raw";
    VW_CHECK_EQ(vw_device_required_bytes(&bad), 0);
    bad = c;
    bad.settings.batch_windows = VW_DEVICE_MAX_BATCH + 1;
    VW_CHECK_EQ(vw_device_required_bytes(&bad), 0);
    bad = c;
    bad.max_features = 4; /* the model has 5 */
    VW_CHECK_EQ(vw_device_init(&dev, &port, &bad, &ota, work, sizeof work), VW_ERR_SPEC);
    vw_port_t no_clock = port;
    no_clock.time_ms = NULL;
    VW_CHECK_EQ(vw_device_init(&dev, &no_clock, &c, &ota, work, sizeof work), VW_ERR_ARG);
    VW_CHECK(vw_device_required_bytes(&c) <= sizeof work);
}

int main(void)
{
    blob_len = build_blob(blob, 1, RATE, GOLDEN_RIGHT);
    VW_CHECK(blob_len > 0);
    test_scores_of_the_test_windows();
    test_birth_message_and_last_will();
    test_telemetry_batches_and_sequence_numbers();
    test_a_cut_boot_record_never_reuses_a_range();
    test_events_and_features();
    test_unsynced_clock_and_refused_publishes();
    test_commands();
    blob_v2_len = build_blob(blob_v2, 2, RATE, GOLDEN_RIGHT);
    VW_CHECK(blob_v2_len > 0);
    test_ota_download_trial_and_rollback();
    test_ota_trial_confirmed();
    test_memory_stays_inside_what_it_asked_for();
    test_refusals();
    return vw_test_report("test_device");
}
