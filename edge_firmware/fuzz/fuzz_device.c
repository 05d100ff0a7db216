/*
 * libFuzzer target: the device layer (vw_device.h) handling downlink messages (cmd,
 * ota/job, ota/chunk) while it scores windows, over an in-memory port: storage, a clock,
 * a wall clock, and a publish callback that reads back every payload it is handed.
 *
 * Input: three configuration bytes, then a script. An operation is a letter followed by
 * its argument bytes; any other byte is skipped, so a hand-written script may put spaces
 * and newlines between operations (seeds_device/). Missing bytes read as 0.
 *
 *   cfg0  bits 0-1 the model provisioned: a candidate of vw_fuzz_models.h (seeds.py):
 *                  factory (32 bands), odd (7), per-tensor (12), deep (4 bands, 16 layers);
 *                  all with the threshold 1.5; the harness gives odd and deep a threshold
 *                  ceiling of 64 (the others' is their threshold: see with_ceiling);
 *         bits 2-4 batch_windows - 1 (1..8);
 *         bits 5-6 features_every: 60, 0 (none), 1, 3 (so a printable byte picks one of
 *                  the last three: ' '..'?' none, '@'..'_' every window, '`'..'~' 1 in 3)
 *   cfg1  bits 0-1 calibrate_windows: 1, 2, 3, 24 (from 20 windows on, the tail rule
 *                  fits its tail: vw_tail.h);
 *         bits 2-3 calibrate_target: 0.5, 0.1, 0.01, 0.001;
 *         bits 4-5 batch_ms: 0 (only when full), 100, 1000, 10000;
 *         bits 6-7 anomaly (k of n, m, release): defaults, 1 of 1 and 1 at 1.0,
 *                  2 of 3 and 2 at 0.5, 32 of 32 and 255 at 1e-6
 *   cfg2  bits 0-2 ota_window - 1 (1..8);
 *         bit 3    the device's max_window 512 (the OTA's stays 256): the raw message of
 *                  a 256-sample window then fills less than the payload buffer;
 *         bit 4    trial_ms 0 (else 3000);
 *         bits 5-6 ota_timeout_ms: 1, 500 (' '..'?'), 5000 ('@'..'_'), 60000 ('`'..'~')
 *
 *   C text '\n'   vw_device_command with the bytes up to the next newline (or the end)
 *   J n:u8 bytes  vw_device_command with n bytes, any of them
 *   S text '\n'   vw_device_command of {"id":"s-N","t":T0,"cmd":"set_threshold",
 *                 "threshold":TEXT}: the threshold literal straight from the input
 *   O text '\n'   vw_device_ota_job with the bytes up to the next newline
 *   V cand flags  vw_device_ota_job of a signed job for candidate cand % 9 of
 *                 vw_fuzz_models.h (the first four can install; each of the others fails
 *                 one check of vw_ota); chunk size 64 << (flags & 3); rollback if
 *                 flags & 4; flags & 8 another job id for the same manifest; flags & 16
 *                 a signature with one bit flipped
 *   K sel flags   vw_device_ota_chunk answering chunk request sel % (requests the port
 *                 took and no chunk answered yet); flags & 1 one data byte flipped, & 2
 *                 another job's reference, & 4 sent twice, & 8 the request stays open
 *   Y n:u8        answer the open chunk requests in order, at most 8 * (n % 16 + 1)
 *   B n:u8 bytes  vw_device_ota_chunk with n bytes
 *   W shape amp extra [raw:16 if shape&7 == 4]
 *                 vw_device_window; shape&7 picks the samples: 0 a sine (shape>>3 cycles
 *                 per window, a little noise), 1 an impulse, 2 a sine with one special
 *                 value (NaN, +-inf, +-FLT_MAX, the least subnormal, -0, 1e30) at a
 *                 position from extra, 3 a constant, 4 four raw float32 bit patterns
 *                 repeated, 5 noise, 6 two sines, 7 a square wave; amp the amplitude,
 *                 2^((amp & 127) - 64), times 1.5 if amp & 128 ('@' is 1.0, '~' 2^62:
 *                 features overflow float32 beyond about 1e19)
 *   X n:u8        the last window again, n % 8 + 1 times
 *   P dt:u8       the clock (and a running wall clock) advance by (dt % 64) ms times 1,
 *                 100, 10^4 or 2^26 (dt / 64: the 32-bit clock wraps), then vw_device_poll
 *   T b:u8        the wall clock: b%4 = 0 unknown (0), 1 tiny (b/4 ms: windows stay
 *                 unsynced, replies are sent), 2 T0 + b/4 s (it runs), 3 UINT64_MAX - b/4
 *   F b:u8        the port's publish: b%4 = 0 takes all, 1 refuses all, 2 refuses every
 *                 other call, 3 refuses telemetry
 *   R b:u8        reboot: vw_ota_init and vw_device_init again, the clock back at 0;
 *                 b&1 the boot record's write is cut, (b>>3)%17 of its bytes landing
 *                 (the device must not come up); b&2 the device then counts its window
 *                 numbers from UINT32_MAX - (b>>2 & 1), reaching the new boot range that
 *                 4 billion windows open (a write to the private field: nothing else gets
 *                 there in a fuzz run)
 *   D b:u8        until the next reboot, record writes fail (the boot records' and the
 *                 calibration record's), (b>>1)%17 bytes landing
 *   A             vw_device_connected (the birth message)
 *   L cap:u8      vw_device_last_will into a buffer of cap % 32 bytes
 *
 * Downlink payloads are passed in heap blocks of exactly their length, and the device's
 * working memory is one block of exactly vw_device_required_bytes, so AddressSanitizer
 * reports any access past either. The port's signature check accepts the SHA-256 of the
 * signed text followed by its complement (vw_fuzz.h), so the harness signs the jobs
 * it makes. The harness reads three private fields of vw_device_t (threshold,
 * threshold_source, batch_len) and writes one (window, see R). It scores the windows of a
 * calibration itself (a DSP and an engine of its own on the live model) and runs its own
 * vw_tail_t over those scores: the calibrated threshold it expects is exact.
 * VW_FUZZ_TRACE=1 prints each operation, its status and every payload published (for
 * reading a reproducer).
 *
 * Invariants checked (a violation aborts, which the fuzzer reports as a crash):
 *   - every JSON payload handed to publish starts with '{' and vw_json_parse accepts it;
 *     its topic is one of the device's; storage writes stay inside the OTA region or
 *     inside the device's records (VW_DEVICE_STORAGE_BYTES), never across;
 *   - cmd/reply: an id vw_json_get_string reads and vw_model_id_valid accepts, the outcome
 *     done, refused or failed (with a detail unless done; done with a detail only as a
 *     calibration the ceiling capped), t the wall clock, a threshold exactly when done
 *     with set_threshold, calibrate or rollback, equal to the device's;
 *   - vw_device_command returns VW_OK, VW_ERR_JSON exactly when vw_json_parse refuses the
 *     payload, VW_ERR_MESSAGE exactly when it has no valid id, VW_ERR_STATE exactly when
 *     the wall clock is unknown, or the port's error; it answers with one reply carrying the
 *     command's id, unless it starts a calibration (answered after calibrate_windows scored
 *     windows) or an upload (answered with the next synced window, after the raw message);
 *     unanswered, it publishes nothing; a rollback that binds a model while a calibration
 *     runs first ends the calibration (below), then answers;
 *   - calibration: when its last window is scored, the threshold the tail rule gives for
 *     calibrate_target over the scores of its windows (as the harness computes them), at
 *     most the live model's ceiling (then detail "ceiling"); failed "no usable threshold"
 *     when that is not in (0, 1e12]; else the record
 *     (magic "VWC1", the threshold's bits, the model's CRC-32, the CRC-32 of those 12
 *     bytes) written at record_addr + 2 x 16: failed "storage" when the write fails (the
 *     bytes the port lets through land, the threshold is unchanged), else done with the
 *     threshold, which is then in force (source calibration), followed by a status
 *     message; with the wall clock unknown neither goes out, the rest happens all the
 *     same. A model bound while a calibration runs (an activation, a rollback) ends it:
 *     failed "the model changed", sent before anything else that
 *     call answers (unless the wall clock is unknown);
 *   - the calibration record in storage is, after every operation, exactly the bytes the
 *     harness expects (the device writes nothing else there);
 *   - the threshold is finite and > 0 after every operation, and it is the one the harness
 *     expects, with its source: whenever a model is bound (a boot, a fallback from a trial,
 *     an activation, a rollback), the calibrated one stored for it when the record is
 *     valid, carries the model's CRC-32 and a value in (0, its ceiling] (source
 *     calibration), else the model's own (source model); the command's number as a
 *     float32 after set_threshold done (source command); a calibration's, above;
 *   - vw_device_window returns VW_OK or VW_ERR_INPUT (always when a sample is not finite;
 *     then nothing is published or counted); VW_ERR_STORAGE only when the boot record
 *     cannot be written as the window numbers run out, which vw_device.h does not list;
 *   - sequence numbers: an event, a feature vector and a raw window carry the seq of their
 *     window (boot << 32 | window number) and t = wall clock - window duration; telemetry
 *     sends the readings of synced windows in order, each exactly once unless dropped
 *     (counted) or lost with a reboot, so seq increases across all telemetry, across
 *     reboots too; the readings not yet sent are the device's batch, and with a port that
 *     takes all, a poll leaves none batch_ms old; events alternate start, end from each
 *     boot; the raw window holds the samples as they were handed over;
 *   - every boot number is above the last one that came up, also after a cut record write;
 *   - ota/req: t the wall clock, the job of the message being handled (or of the download
 *     under way), a state of the contract, chunk requests inside the job's blob on its
 *     chunk boundaries; a new model runs only as the activation of the download under
 *     way (whose report is missing while the wall clock is unknown), with its threshold;
 *     vw_device_ota_job returns VW_OK, VW_ERR_JSON, VW_ERR_MESSAGE (no valid job id) or
 *     VW_ERR_STATE (wall clock unknown), exactly as the reader and the clock say, and
 *     answers a job with its state unless the job's model is the one on trial; an empty
 *     payload (the job withdrawn) is VW_OK, says nothing, and no chunk is asked for
 *     after it until a job comes (unless a model is on trial);
 *   - vw_device_connected: VW_ERR_STATE exactly when the wall clock is unknown, else one
 *     status message with the running model, the uptime, the threshold in force and its
 *     source ("model", "calibration" or "command"); the last will is {"state":"offline"},
 *     or VW_ERR_BUFFER below 19 bytes.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_chunk.h"
#include "vw_crc32.h"
#include "vw_device.h"
#include "vw_dsp.h"
#include "vw_engine.h"
#include "vw_json_reader.h"
#include "vw_model.h"
#include "vw_ota.h"
#include "vw_sha256.h"
#include "vw_tail.h"

#include "vw_fuzz.h"
#include "vw_fuzz_models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define SLOT_BYTES 8192u
#define SAMPLE_RATE_HZ 1600u
#define MAX_WINDOW 256u
#define MAX_FEATURES 40u
#define ENGINE_WORK_BYTES 4096u
#define STORAGE_MAX 20480u
#define N_PROVISION 4u    /* the first candidates of vw_fuzz_models.h: all fit the device */
#define N_CAND (sizeof vw_fuzz_blobs / sizeof vw_fuzz_blobs[0])
#define T0 UINT64_C(1764547200000) /* 2025-12-01T00:00:00Z */
#define PORT_REFUSED VW_ERR_STORAGE /* what publish returns when the port refuses */
#define MAX_OPS 192u
#define MAX_WINDOWS 256u  /* windows per input: bounds the time of one execution */
#define MAX_TEXT 1024u    /* longest downlink payload of C, S and O */
#define MAX_REQUESTS 64u  /* chunk requests the harness keeps */
#define MAX_JOBS 32u      /* jobs the harness made, by id */
#define MAX_CALL_REPLIES 4u
#define MAX_CALL_REPORTS 8u
#define CALIBRATION_MAGIC 0x31435756u /* "VWC1", little endian */
#define CALIBRATION_OFFSET (2u * VW_DEVICE_RECORD_BYTES) /* after the two boot records */
#define NO_USABLE "no usable threshold"
#define MODEL_CHANGED "the model changed"

/* Where the threshold in force comes from: vw_device_t.threshold_source, and the status. */
enum { SOURCE_MODEL, SOURCE_CALIBRATION, SOURCE_COMMAND };
static const char *const SOURCES[3] = {"model", "calibration", "command"};

/* VW_FUZZ_TRACE=1 prints each operation, its status and every payload. */
static int trace;

/* ---- input reader ---- */

/* The bytes up to the next newline (consumed, not included) or the end of the input. */
static size_t line(reader_t *r, const uint8_t **start)
{
    *start = r->data + r->pos;
    size_t n = 0;
    while (r->pos < r->len && r->data[r->pos] != '\n') {
        r->pos++;
        n++;
    }
    if (r->pos < r->len) {
        r->pos++;
    }
    return n < MAX_TEXT ? n : MAX_TEXT;
}

/* The next n bytes (fewer at the end of the input). */
static size_t bytes(reader_t *r, size_t n, const uint8_t **start)
{
    *start = r->data + r->pos;
    n = n < r->len - r->pos ? n : r->len - r->pos;
    r->pos += n;
    return n;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t le64(const uint8_t *p)
{
    return le32(p) | ((uint64_t)le32(p + 4) << 32);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4u; i++) {
        p[i] = (uint8_t)(v >> (8u * i));
    }
}

/* ---- the candidate models (vw_fuzz_models.h) and the provisioned storage ---- */

typedef struct {
    vw_model_t model; /* parsed from the blob */
    uint8_t sha256[VW_SHA256_DIGEST_BYTES];
} candidate_t;

/* The candidate blobs the harness provisions and sends: see with_ceiling. */
typedef struct {
    const uint8_t *data;
    uint32_t len;
} blob_t;

static blob_t blobs[N_CAND];
static candidate_t cands[N_CAND];
/* Storage after provisioning candidate i; each execution starts from a copy. */
static uint8_t images[N_PROVISION][STORAGE_MAX] __attribute__((aligned(4)));
static vw_ota_layout_t layout;
static uint32_t record_addr, storage_bytes;
static uint8_t engine_work[ENGINE_WORK_BYTES] __attribute__((aligned(4)));
/* The harness's own DSP and engine memory: the scores of a calibration's windows. */
static uint8_t oracle_engine_work[ENGINE_WORK_BYTES] __attribute__((aligned(4)));
static void *oracle_dsp_work;
static size_t oracle_dsp_bytes;

/*
 * Candidate @p i of vw_fuzz_models.h, but odd (1) and deep (3) with a threshold ceiling of
 * CEILING (header offset 56, the CRC-32 sealed again; 0 in the others: their threshold):
 * the random models score every window above their threshold (1.5), so only a higher
 * ceiling lets a calibration set a threshold of its own. The copy lives for the process.
 */
#define CEILING 64.0f
static blob_t with_ceiling(unsigned i)
{
    const uint32_t len = vw_fuzz_blobs[i].len;
    if (i != 1u && i != 3u) {
        return (blob_t){vw_fuzz_blobs[i].data, len};
    }
    static const uint8_t zero[4] = {0};
    uint8_t *blob = malloc(len); /* malloc's alignment: the 4 vw_model_parse needs */
    require(blob != NULL && len > VW_MODEL_HEADER_BYTES);
    memcpy(blob, vw_fuzz_blobs[i].data, len);
    const float ceiling = CEILING;
    uint32_t bits;
    memcpy(&bits, &ceiling, sizeof bits);
    require(le32(blob + 56) == 0u);
    put_le32(blob + 56, bits);
    uint32_t crc = vw_crc32_update(0u, blob, 12u); /* over the blob, its CRC field as 0 */
    crc = vw_crc32_update(crc, zero, sizeof zero);
    put_le32(blob + 12, vw_crc32_update(crc, blob + 16, len - 16u));
    return (blob_t){blob, len};
}

/* ---- the port ---- */

enum { FAULT_NONE, FAULT_ONCE, FAULT_ALWAYS };
enum { TAKE_ALL, REFUSE_ALL, REFUSE_ALTERNATE, REFUSE_TELEMETRY };

typedef struct {
    char id[VW_MODEL_MAX_ID + 1];
    char cmd[16];
    char outcome[16];
    char detail[128]; /* "" when it has none */
    int accepted;
    float threshold; /* when it has one */
} reply_t;

typedef struct {
    char state[16];
    char job[VW_MODEL_MAX_ID + 1];
} report_t;

/* What one device call published. */
typedef struct {
    unsigned publishes, telemetry, events, features, statuses, raws, ota_reqs;
    int raw_accepted;
    unsigned replies, reports;
    reply_t reply[MAX_CALL_REPLIES];
    report_t report[MAX_CALL_REPORTS];
    const char *job; /* the job every ota/req of this call is about; NULL: none may come */
    float status_threshold; /* of the last status message */
    char status_source[16];
} call_t;

typedef struct {
    uint8_t storage[STORAGE_MAX] __attribute__((aligned(4)));
    int device_call;           /* inside a vw_device_* call */
    int record_fault;          /* FAULT_*: writes to the boot records fail */
    uint32_t tear;             /* bytes of a failing record write that reach storage */
    uint32_t now;              /* ms since boot */
    uint64_t wall;             /* ms since the epoch, 0: unknown */
    int wall_runs;             /* the wall clock advances with the clock */
    int refuse;                /* REFUSE_* */
    uint32_t publish_calls;    /* for REFUSE_ALTERNATE */
    call_t call;
} port_state_t;

static port_state_t port_state;

/* ---- the device and what the harness knows it must hold ---- */

/* A reading the device holds: what the harness expects in telemetry. */
typedef struct {
    uint64_t seq, t;
    uint32_t now; /* the clock when its window was handed over */
} expected_t;

/* A job the harness made (V), by id: to check requests and answer them. */
typedef struct {
    char id[VW_MODEL_MAX_ID + 1];
    unsigned cand;
    uint32_t chunk_size, ref;
} job_t;

typedef struct {
    uint32_t offset, len;
    unsigned job; /* index in jobs */
} request_t;

typedef struct {
    vw_device_config_t config;
    vw_ota_config_t ota_config;
    vw_port_t port;
    void *work;                /* exactly vw_device_required_bytes */
    int up;                    /* the last vw_device_init returned VW_OK */
    uint32_t boot;             /* boot number in use */
    uint32_t last_boot;        /* the highest boot number that came up */
    uint32_t window;           /* number of the next window in this boot */
    float threshold;           /* the one the device must use */
    uint8_t source;            /* where it comes from: SOURCE_* */
    uint8_t record[VW_DEVICE_RECORD_BYTES]; /* the calibration record storage must hold */
    uint64_t pending_seq;      /* seq and t of the window being scored */
    uint64_t pending_t;
    int last_telemetry_set;
    uint64_t last_telemetry;   /* seq of the last reading the port took */
    expected_t batch[VW_DEVICE_MAX_BATCH + 1u]; /* readings held, oldest first */
    unsigned batch_len;
    uint32_t windows, unsynced;
    uint32_t unanswered, answered;
    int anomaly;               /* an anomaly is active */
    uint16_t calibrating;      /* windows left of the calibration, 0: none */
    char calibration_id[VW_MODEL_MAX_ID + 1];
    vw_tail_t tail;            /* the scores of the calibration's windows */
    float tail_top[VW_DEVICE_CALIBRATION_KEPT];
    char upload_id[VW_MODEL_MAX_ID + 1]; /* upload_raw waiting, "" for none */
    uint64_t uptime_ms;        /* as the device counts it across wraps of the clock */
    uint32_t uptime_at;
    char current_job[VW_MODEL_MAX_ID + 1]; /* the job last reported downloading */
    job_t jobs[MAX_JOBS];
    unsigned n_jobs;
    request_t requests[MAX_REQUESTS]; /* taken by the port, not answered yet */
    unsigned n_requests;
    float samples[MAX_WINDOW]; /* the last window made */
    const float *window_samples; /* the window being scored */
    int have_window;
    unsigned windows_run;      /* of this input: bounded by MAX_WINDOWS */
    unsigned ops;
} harness_t;

static harness_t h;
static vw_device_t dev;
static vw_ota_t ota;

static vw_status_t port_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    port_state_t *p = ctx;
    require(buf != NULL && addr <= storage_bytes && len <= storage_bytes - addr);
    memcpy(buf, p->storage + addr, len);
    return VW_OK;
}

static vw_status_t port_write(void *ctx, uint32_t addr, const void *data, uint32_t len)
{
    port_state_t *p = ctx;
    require(data != NULL && addr <= storage_bytes && len <= storage_bytes - addr);
    const int records = addr >= record_addr;
    require(records || (addr <= layout.end && len <= layout.end - addr));
    if (records && p->record_fault != FAULT_NONE) {
        memcpy(p->storage + addr, data, p->tear < len ? p->tear : len);
        if (p->record_fault == FAULT_ONCE) {
            p->record_fault = FAULT_NONE;
        }
        return VW_ERR_STORAGE;
    }
    memcpy(p->storage + addr, data, len);
    return VW_OK;
}

static const uint8_t *port_map(void *ctx, uint32_t addr, uint32_t len)
{
    port_state_t *p = ctx;
    require(addr <= layout.end && len <= layout.end - addr);
    return p->storage + addr;
}

static uint32_t port_now(void *ctx)
{
    return ((port_state_t *)ctx)->now;
}

static uint64_t port_wall(void *ctx)
{
    return ((port_state_t *)ctx)->wall;
}

/* The model the OTA state machine runs: the device must be scoring with it. */
static const vw_model_t *live_model(void)
{
    const vw_model_t *m = NULL;
    require(vw_ota_model(&ota, &m) == VW_OK && m != NULL);
    return m;
}

/* The score the live model gives @p samples, by a DSP and an engine of the harness's own;
   0 when they refuse the window. */
static int score_of(const float *samples, float *score)
{
    const vw_model_t *m = live_model();
    vw_dsp_t dsp;
    vw_engine_t engine;
    float features[MAX_FEATURES];
    require(vw_dsp_init(&dsp, &m->spec, oracle_dsp_work, oracle_dsp_bytes) == VW_OK);
    require(vw_engine_init(&engine, m, oracle_engine_work, sizeof oracle_engine_work) == VW_OK);
    return vw_dsp_features(&dsp, samples, features) == VW_OK &&
           vw_engine_infer(&engine, features, score) == VW_OK;
}

/* The calibration record of @p threshold for the model of CRC-32 @p crc. */
static void calibration_record(float threshold, uint32_t crc,
                               uint8_t out[VW_DEVICE_RECORD_BYTES])
{
    uint32_t bits;
    memcpy(&bits, &threshold, sizeof bits);
    put_le32(out, CALIBRATION_MAGIC);
    put_le32(out + 4, bits);
    put_le32(out + 8, crc);
    put_le32(out + 12, vw_crc32_update(0u, out, 12u));
}

/* Model @p m is bound: its threshold is the one calibrated for it when storage holds a
   valid record with its CRC-32 and a value in (0, its ceiling], else its own. */
static void bound(const vw_model_t *m)
{
    const uint8_t *rec = h.record;
    const uint32_t bits = le32(rec + 4);
    float calibrated;
    memcpy(&calibrated, &bits, sizeof calibrated);
    if (le32(rec) == CALIBRATION_MAGIC && le32(rec + 12) == vw_crc32_update(0u, rec, 12u) &&
        le32(rec + 8) == m->crc && calibrated > 0.0f && calibrated <= m->threshold_ceiling) {
        h.threshold = calibrated;
        h.source = SOURCE_CALIBRATION;
    } else {
        h.threshold = m->threshold;
        h.source = SOURCE_MODEL;
    }
}

/* The calibration record in storage is the one the harness expects. */
static void check_record(void)
{
    require(memcmp(port_state.storage + record_addr + CALIBRATION_OFFSET, h.record,
                   sizeof h.record) == 0);
}

static int find_job(const char *id)
{
    for (unsigned i = 0; i < h.n_jobs; i++) {
        if (strcmp(h.jobs[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- reading a payload back ---- */

/* The unsigned integers after each occurrence of @p key in text[0..len-1], in order. */
static size_t scan_uints(const char *text, size_t len, const char *key, uint64_t *out,
                         size_t max)
{
    const size_t klen = strlen(key);
    size_t n = 0;
    for (size_t i = 0; i + klen <= len; i++) {
        if (memcmp(text + i, key, klen) != 0) {
            continue;
        }
        size_t j = i + klen, digits = 0;
        uint64_t v = 0;
        for (; j < len && text[j] >= '0' && text[j] <= '9'; j++, digits++) {
            const unsigned d = (unsigned)(text[j] - '0');
            require(v <= (UINT64_MAX - d) / 10u);
            v = 10u * v + d;
        }
        require(digits > 0 && (digits == 1 || text[i + klen] != '0'));
        if (n < max) {
            out[n] = v;
        }
        n++;
        i = j - 1;
    }
    return n;
}

static void get_string(const vw_json_doc_t *doc, const char *key, char *out, size_t cap)
{
    require(vw_json_get_string(doc, key, out, cap, NULL, NULL) == VW_OK);
}

/* A float32 the device wrote, read back (nine digits: the same float, vw_json_writer.h). */
static float get_float(const vw_json_doc_t *doc, const char *key)
{
    double d = 0.0;
    require(vw_json_get_number(doc, key, &d, NULL) == VW_OK);
    require(fabs(d) <= FLT_MAX);
    return (float)d;
}

static void check_t(const char *text, size_t len, uint64_t expected)
{
    uint64_t t = 0;
    require(scan_uints(text, len, "\"t\":", &t, 1) == 1 && t == expected);
}

static void check_model(const vw_json_doc_t *doc)
{
    const vw_model_t *m = live_model();
    char id[VW_MODEL_MAX_ID + 1];
    int64_t version = -1;
    get_string(doc, "model_id", id, sizeof id);
    require(vw_json_get_int(doc, "model_version", 0, INT64_MAX, &version, NULL) == VW_OK);
    require(strcmp(id, m->id) == 0 && version == (int64_t)m->version);
}

static void check_reply(const vw_json_doc_t *doc, const char *text, size_t len, int accepted)
{
    call_t *c = &port_state.call;
    require(c->replies < MAX_CALL_REPLIES);
    reply_t *r = &c->reply[c->replies++];
    size_t id_len = 0;
    require(vw_json_get_string(doc, "id", r->id, sizeof r->id, &id_len, NULL) == VW_OK);
    require(vw_model_id_valid(r->id, id_len));
    get_string(doc, "outcome", r->outcome, sizeof r->outcome);
    const int done = strcmp(r->outcome, "done") == 0;
    require(done || strcmp(r->outcome, "refused") == 0 || strcmp(r->outcome, "failed") == 0);
    int found = 0;
    require(vw_json_get_string(doc, "cmd", r->cmd, sizeof r->cmd, NULL, &found) == VW_OK);
    if (!found) {
        r->cmd[0] = '\0';
    }
    check_t(text, len, port_state.wall);
    double threshold = 0.0;
    require(vw_json_get_number(doc, "threshold", &threshold, &found) == VW_OK);
    const int sets = strcmp(r->cmd, "set_threshold") == 0 || strcmp(r->cmd, "calibrate") == 0 ||
                     strcmp(r->cmd, "rollback") == 0;
    require(found == (done && sets));
    if (found) {
        r->threshold = get_float(doc, "threshold");
        require(r->threshold == dev.threshold && r->threshold > 0.0f);
    }
    require(vw_json_get_string(doc, "detail", r->detail, sizeof r->detail, NULL, &found) ==
            VW_OK);
    if (!found) {
        r->detail[0] = '\0';
    }
    /* Done with a detail only as a calibration the ceiling capped. */
    require(found == !done ||
            (done && strcmp(r->cmd, "calibrate") == 0 && strcmp(r->detail, "ceiling") == 0));
    r->accepted = accepted;
}

static void check_telemetry(const char *text, size_t len, int accepted)
{
    uint64_t seqs[VW_DEVICE_MAX_BATCH], ts[VW_DEVICE_MAX_BATCH];
    const size_t n = scan_uints(text, len, "\"seq\":", seqs, VW_DEVICE_MAX_BATCH);
    require(n >= 1 && n <= h.config.settings.batch_windows && n <= h.batch_len);
    require(scan_uints(text, len, "\"t\":", ts, VW_DEVICE_MAX_BATCH) == n);
    /* The oldest readings held, in order, none sent before. */
    for (size_t i = 0; i < n; i++) {
        require(seqs[i] == h.batch[i].seq && ts[i] == h.batch[i].t);
        require(!h.last_telemetry_set || seqs[i] > h.last_telemetry);
    }
    port_state.call.telemetry++;
    if (accepted) {
        h.last_telemetry = seqs[n - 1];
        h.last_telemetry_set = 1;
        memmove(h.batch, h.batch + n, (h.batch_len - n) * sizeof h.batch[0]);
        h.batch_len -= (unsigned)n;
    }
}

static void check_event(const vw_json_doc_t *doc, const char *text, size_t len)
{
    require(h.window_samples != NULL);
    uint64_t seq = 0;
    require(scan_uints(text, len, "\"seq\":", &seq, 1) == 1 && seq == h.pending_seq);
    check_t(text, len, h.pending_t);
    char kind[8];
    get_string(doc, "kind", kind, sizeof kind);
    /* The window's event: the harness toggles its state after the call. */
    require(strcmp(kind, h.anomaly ? "end" : "start") == 0);
    get_float(doc, "score");
    require(get_float(doc, "threshold") == dev.threshold);
    check_model(doc);
    port_state.call.events++;
}

static void check_features(const vw_json_doc_t *doc, const char *text, size_t len)
{
    require(h.window_samples != NULL);
    uint64_t seq = 0;
    require(scan_uints(text, len, "\"seq\":", &seq, 1) == 1 && seq == h.pending_seq);
    check_t(text, len, h.pending_t);
    char spec[VW_DSP_SPEC_ID_MAX + 1];
    get_string(doc, "spec", spec, sizeof spec);
    /* As many values as the model has features. */
    const char *x = NULL;
    for (size_t i = 0; i + 5 <= len && x == NULL; i++) {
        x = memcmp(text + i, "\"x\":[", 5) == 0 ? text + i + 5 : NULL;
    }
    require(x != NULL);
    size_t values = 1;
    for (; x < text + len && *x != ']'; x++) {
        values += *x == ',';
    }
    require(x < text + len && values == live_model()->n_features);
    port_state.call.features++;
}

static void check_status(const vw_json_doc_t *doc, const char *text, size_t len)
{
    char state[8], firmware[VW_DEVICE_FIRMWARE_MAX + 1];
    get_string(doc, "state", state, sizeof state);
    get_string(doc, "firmware", firmware, sizeof firmware);
    require(strcmp(state, "online") == 0 && strcmp(firmware, h.config.firmware) == 0);
    check_model(doc);
    int64_t uptime_s = -1;
    require(vw_json_get_int(doc, "uptime_s", 0, INT64_MAX, &uptime_s, NULL) == VW_OK);
    check_t(text, len, port_state.wall);
    /* The threshold in force and its source: the caller checks them against its own. */
    call_t *c = &port_state.call;
    c->status_threshold = get_float(doc, "threshold");
    require(c->status_threshold == dev.threshold);
    get_string(doc, "threshold_source", c->status_source, sizeof c->status_source);
    h.uptime_ms += (uint32_t)(port_state.now - h.uptime_at);
    h.uptime_at = port_state.now;
    require((uint64_t)uptime_s == h.uptime_ms / 1000u);
    port_state.call.statuses++;
}

static void check_ota_req(const vw_json_doc_t *doc, const char *text, size_t len, int accepted)
{
    call_t *c = &port_state.call;
    static const char *const states[] = {"downloading", "verifying", "installed",
                                         "activated",   "failed",    "rolled_back"};
    char job[VW_MODEL_MAX_ID + 1], kind[8];
    size_t job_len = 0;
    require(vw_json_get_string(doc, "job", job, sizeof job, &job_len, NULL) == VW_OK);
    require(vw_model_id_valid(job, job_len));
    require(c->job != NULL && strcmp(job, c->job) == 0);
    get_string(doc, "kind", kind, sizeof kind);
    check_t(text, len, port_state.wall);
    c->ota_reqs++;
    if (strcmp(kind, "state") == 0) {
        require(c->reports < MAX_CALL_REPORTS);
        report_t *r = &c->report[c->reports++];
        get_string(doc, "state", r->state, sizeof r->state);
        memcpy(r->job, job, sizeof job);
        int known = 0;
        for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
            known |= strcmp(r->state, states[i]) == 0;
        }
        require(known);
        char detail[257];
        int found = 0;
        require(vw_json_get_string(doc, "detail", detail, sizeof detail, NULL, &found) == VW_OK);
        if (strcmp(r->state, "downloading") == 0) {
            memcpy(h.current_job, job, sizeof job);
        }
        return;
    }
    require(strcmp(kind, "chunk") == 0);
    /* Only the download under way asks for chunks: a job the harness made and signed. */
    const int j = find_job(job);
    require(j >= 0 && strcmp(job, h.current_job) == 0);
    int64_t offset = -1, length = -1;
    require(vw_json_get_int(doc, "offset", 0, UINT32_MAX, &offset, NULL) == VW_OK);
    require(vw_json_get_int(doc, "length", 1, UINT32_MAX, &length, NULL) == VW_OK);
    const job_t *jb = &h.jobs[j];
    const uint32_t size = blobs[jb->cand].len;
    require(offset % jb->chunk_size == 0 && length <= (int64_t)jb->chunk_size);
    require(offset < (int64_t)size && length <= (int64_t)size - offset);
    if (accepted && h.n_requests < MAX_REQUESTS) {
        h.requests[h.n_requests++] = (request_t){(uint32_t)offset, (uint32_t)length,
                                                 (unsigned)j};
    }
}

/* The binary raw window answering upload_raw: the samples the window was handed. */
static void check_raw(const uint8_t *p, size_t len, int accepted)
{
    require(h.window_samples != NULL && h.upload_id[0] != '\0');
    const vw_model_t *m = live_model();
    uint32_t ref = 0;
    require(vw_chunk_job_ref(h.upload_id, strlen(h.upload_id), &ref) == VW_OK);
    require(len == 32u + 4u * (size_t)m->spec.window);
    require(p[0] == 'V' && p[1] == 'R' && p[2] == 1u && p[3] == 0u && le32(p + 4) == ref);
    require(le32(p + 8) == m->spec.sample_rate_hz && le32(p + 12) == m->spec.window);
    require(le64(p + 16) == h.pending_seq && le64(p + 24) == h.pending_t);
    for (uint16_t i = 0; i < m->spec.window; i++) {
        uint32_t bits;
        memcpy(&bits, &h.window_samples[i], sizeof bits);
        require(le32(p + 32u + 4u * i) == bits);
    }
    port_state.call.raws++;
    port_state.call.raw_accepted = accepted;
}

static vw_status_t port_publish(void *ctx, const char *suffix, const uint8_t *payload,
                                size_t len)
{
    port_state_t *p = ctx;
    require(p->device_call && suffix != NULL && payload != NULL);
    p->call.publishes++;
    const int accepted = p->refuse == TAKE_ALL ||
                         (p->refuse == REFUSE_ALTERNATE && (p->publish_calls & 1u) == 0u) ||
                         (p->refuse == REFUSE_TELEMETRY && strcmp(suffix, "telemetry") != 0);
    p->publish_calls++;
    const int binary = strcmp(suffix, "raw") == 0;
    if (trace && binary) {
        fprintf(stderr, "  %s%s [%zu bytes]\n", suffix, accepted ? "" : " (refused)", len);
    } else if (trace) {
        fprintf(stderr, "  %s%s %.*s\n", suffix, accepted ? "" : " (refused)", (int)len,
                (const char *)payload);
    }
    /* A copy of exactly its length: the reader must not look past it. */
    char *text = malloc(len > 0 ? len : 1);
    require(text != NULL);
    memcpy(text, payload, len);
    if (binary) {
        check_raw((const uint8_t *)text, len, accepted);
        free(text);
        return accepted ? VW_OK : PORT_REFUSED;
    }
    vw_json_doc_t doc;
    require(len > 0 && text[0] == '{');
    require(vw_json_parse(&doc, text, len, VW_JSON_DEFAULT_DEPTH) == VW_OK);
    if (strcmp(suffix, "cmd/reply") == 0) {
        check_reply(&doc, text, len, accepted);
    } else if (strcmp(suffix, "telemetry") == 0) {
        check_telemetry(text, len, accepted);
    } else if (strcmp(suffix, "event") == 0) {
        check_event(&doc, text, len);
    } else if (strcmp(suffix, "features") == 0) {
        check_features(&doc, text, len);
    } else if (strcmp(suffix, "ota/req") == 0) {
        check_ota_req(&doc, text, len, accepted);
    } else {
        require(strcmp(suffix, "status") == 0);
        check_status(&doc, text, len);
    }
    free(text);
    return accepted ? VW_OK : PORT_REFUSED;
}

/* A device call starts: ota/req messages may come about @p job (NULL: none may). */
static void begin_call(const char *job)
{
    memset(&port_state.call, 0, sizeof port_state.call);
    port_state.call.job = job;
    port_state.device_call = 1;
}

static void end_call(void)
{
    port_state.device_call = 0;
}

/*
 * The call bound a new model @p now (an activation, a rollback): a calibration under way
 * ends failed, its reply the call's first (none while the wall clock is unknown), and the
 * threshold is the model's (bound). Returns the replies that took.
 */
static unsigned model_changed(const vw_model_t *now)
{
    const call_t *c = &port_state.call;
    unsigned replies = 0;
    if (h.calibrating != 0 && port_state.wall != 0u) {
        const reply_t *r = &c->reply[0];
        require(c->replies >= 1 && strcmp(r->id, h.calibration_id) == 0);
        require(strcmp(r->cmd, "calibrate") == 0 && strcmp(r->outcome, "failed") == 0 &&
                strcmp(r->detail, MODEL_CHANGED) == 0);
        h.answered += (uint32_t)r->accepted;
        replies = 1;
    }
    h.calibrating = 0;
    bound(now);
    return replies;
}

/*
 * After a call that handled OTA (@p before: the model running before it): a new model runs
 * only as the activation of the download under way, with its threshold (bound); the report
 * of it may be missing (the wall clock unknown) or refused, never wrong; the only reply is
 * that of a calibration it ends. A download that ends (refused by verification, or a trial
 * confirmed by a poll) leaves the device without a current job.
 */
static void after_ota(const vw_model_t *before, int from_poll)
{
    const call_t *c = &port_state.call;
    const vw_model_t *now = live_model();
    unsigned replies = 0;
    if (now != before) {
        const int j = find_job(h.current_job);
        require(!from_poll && j >= 0);
        const vw_model_t *want = &cands[h.jobs[j].cand].model;
        require(strcmp(now->id, want->id) == 0 && now->version == want->version);
        require(now->crc == want->crc);
        replies = model_changed(now);
        h.n_requests = 0;
    }
    require(c->replies == replies);
    for (unsigned i = 0; i < c->reports; i++) {
        const report_t *r = &c->report[i];
        const int ends = (strcmp(r->state, "failed") == 0 && i > 0 &&
                          strcmp(c->report[i - 1].state, "verifying") == 0) ||
                         (from_poll && strcmp(r->state, "installed") == 0);
        if (strcmp(r->state, "activated") == 0) {
            require(now != before && strcmp(r->job, h.current_job) == 0);
        }
        if (ends) {
            require(strcmp(r->job, h.current_job) == 0);
            h.current_job[0] = '\0';
            h.n_requests = 0;
        }
    }
}

/* What holds between operations while the device is up. */
static void check_device(void)
{
    const vw_device_counters_t n = vw_device_counters(&dev);
    require(isfinite(dev.threshold) && dev.threshold > 0.0f && dev.threshold == h.threshold);
    require(dev.threshold_source == h.source);
    check_record();
    require(n.windows == h.windows && n.unsynced_windows == h.unsynced);
    require(n.commands_unanswered == h.unanswered && n.commands == h.answered);
    require(dev.batch_len == h.batch_len);
    require(vw_device_window_length(&dev) == live_model()->spec.window);
}

/* ---- operations ---- */

static void boot(uint8_t b)
{
    port_state.record_fault = b & 1u ? FAULT_ONCE : FAULT_NONE;
    port_state.tear = (uint32_t)(b >> 3) % (VW_DEVICE_RECORD_BYTES + 1u);
    port_state.now = 0;
    require(vw_ota_init(&ota, &h.port, &h.ota_config) == VW_OK);
    const size_t work_bytes = vw_device_required_bytes(&h.config);
    begin_call(NULL);
    const vw_status_t st = vw_device_init(&dev, &h.port, &h.config, &ota, h.work, work_bytes);
    end_call();
    if (trace) {
        fprintf(stderr, "boot: %s, boot %u\n", vw_status_name(st), (unsigned)dev.boot);
    }
    require(port_state.call.publishes == 0);
    h.up = st == VW_OK;
    if (b & 1u) {
        require(st == VW_ERR_STORAGE);
        return;
    }
    require(st == VW_OK);
    require(dev.boot > h.last_boot);
    h.boot = h.last_boot = dev.boot;
    h.window = 0;
    if (b & 2u) {
        h.window = dev.window = UINT32_MAX - ((b >> 2) & 1u);
    }
    bound(live_model());
    require(dev.threshold == h.threshold && dev.threshold_source == h.source);
    check_record();
    h.batch_len = 0;
    h.windows = h.unsynced = h.unanswered = h.answered = 0;
    h.anomaly = 0;
    h.calibrating = 0;
    h.upload_id[0] = '\0';
    h.uptime_ms = 0;
    h.uptime_at = 0;
    h.current_job[0] = '\0';
    h.n_requests = 0;
}

static void command(const uint8_t *text, size_t n)
{
    uint8_t *payload = malloc(n > 0 ? n : 1);
    require(payload != NULL);
    if (n > 0) {
        memcpy(payload, text, n);
    }
    /* What the reader makes of the command: the device must agree. */
    vw_json_doc_t doc;
    const int parsed = vw_json_parse(&doc, (const char *)payload, n, VW_JSON_DEFAULT_DEPTH) ==
                       VW_OK;
    char id[VW_MODEL_MAX_ID + 1] = "", cmd[16] = "";
    size_t id_len = 0;
    double threshold = 0.0;
    const int id_ok = parsed &&
                      vw_json_get_string(&doc, "id", id, sizeof id, &id_len, NULL) == VW_OK &&
                      vw_model_id_valid(id, id_len);
    const int has_threshold = parsed &&
                              vw_json_get_number(&doc, "threshold", &threshold, NULL) == VW_OK;
    if (parsed && vw_json_get_string(&doc, "cmd", cmd, sizeof cmd, NULL, NULL) != VW_OK) {
        cmd[0] = '\0';
    }
    const vw_model_t *model = live_model();

    begin_call(NULL);
    const vw_status_t st = vw_device_command(&dev, payload, n);
    end_call();
    const call_t *c = &port_state.call;
    if (trace) {
        fprintf(stderr, "command: %s\n", vw_status_name(st));
    }
    require(st == VW_OK || st == VW_ERR_JSON || st == VW_ERR_MESSAGE || st == VW_ERR_STATE ||
            st == PORT_REFUSED);
    require((st == VW_ERR_JSON) == !parsed);
    require((st == VW_ERR_MESSAGE) == (parsed && !id_ok));
    require(!id_ok || (st == VW_ERR_STATE) == (port_state.wall == 0u));
    require(c->publishes == c->replies);
    if (st == VW_ERR_JSON || st == VW_ERR_MESSAGE || st == VW_ERR_STATE) {
        require(c->publishes == 0);
        h.unanswered++;
    } else if (c->publishes == 0) {
        /* Only a calibration or an upload starts without an answer; it comes later. */
        require(st == VW_OK);
        if (strcmp(cmd, "calibrate") == 0) {
            require(h.calibrating == 0);
            h.calibrating = h.config.settings.calibrate_windows;
            memcpy(h.calibration_id, id, sizeof id);
            require(vw_tail_init(&h.tail, h.tail_top, VW_DEVICE_CALIBRATION_KEPT) == VW_OK);
        } else {
            require(strcmp(cmd, "upload_raw") == 0 && h.upload_id[0] == '\0');
            memcpy(h.upload_id, id, sizeof id);
        }
    } else {
        /* A rollback binds the previous model: a calibration under way ends first. */
        const vw_model_t *now = live_model();
        const unsigned first = now != model ? model_changed(now) : 0u;
        const reply_t *r = &c->reply[first];
        require(c->publishes == first + 1u && strcmp(r->id, id) == 0);
        require((st == VW_OK) == r->accepted);
        h.answered += (uint32_t)r->accepted;
        if (strcmp(r->outcome, "done") == 0) {
            require(strcmp(r->cmd, cmd) == 0);
            if (strcmp(cmd, "set_threshold") == 0) {
                /* The command's number, as a float32. */
                require(has_threshold && threshold > 0.0 && threshold <= 1e12);
                h.threshold = (float)threshold;
                h.source = SOURCE_COMMAND;
                require(r->threshold == h.threshold);
            } else {
                /* Back to the previous model, with its threshold (bound). */
                require(strcmp(cmd, "rollback") == 0);
                require(now != model && r->threshold == h.threshold);
                h.current_job[0] = '\0';
                h.n_requests = 0;
            }
        } else {
            require(live_model() == model);
        }
        if (strcmp(cmd, "calibrate") == 0 && h.calibrating != 0) {
            require(strcmp(r->outcome, "refused") == 0);
        }
        if (strcmp(cmd, "upload_raw") == 0 && h.upload_id[0] != '\0') {
            require(strcmp(r->outcome, "refused") == 0);
        }
    }
    free(payload);
}

static void set_threshold(const uint8_t *literal, size_t n)
{
    static const char head[] = "{\"id\":\"s-%u\",\"t\":1764547200000,\"cmd\":\"set_threshold\","
                               "\"threshold\":";
    char text[sizeof head + 16 + MAX_TEXT + 1];
    int k = snprintf(text, sizeof text, head, h.ops);
    require(k > 0 && (size_t)k < sizeof head + 16);
    memcpy(text + k, literal, n);
    text[(size_t)k + n] = '}';
    command((const uint8_t *)text, (size_t)k + n + 1);
}

static void ota_job(const uint8_t *text, size_t n)
{
    uint8_t *payload = malloc(n > 0 ? n : 1);
    require(payload != NULL);
    if (n > 0) {
        memcpy(payload, text, n);
    }
    vw_json_doc_t doc;
    const int parsed = vw_json_parse(&doc, (const char *)payload, n, VW_JSON_DEFAULT_DEPTH) ==
                       VW_OK;
    char job[VW_MODEL_MAX_ID + 1] = "";
    size_t job_len = 0;
    const int job_ok = parsed &&
                       vw_json_get_string(&doc, "job", job, sizeof job, &job_len, NULL) ==
                           VW_OK &&
                       vw_model_id_valid(job, job_len);

    const vw_model_t *model = live_model();
    begin_call(job);
    const vw_status_t st = vw_device_ota_job(&dev, payload, n);
    end_call();
    if (trace) {
        fprintf(stderr, "ota job: %s\n", vw_status_name(st));
    }
    const call_t *c = &port_state.call;
    if (n == 0) { /* the job withdrawn: nothing said, and no chunk asked for until a job */
        vw_ota_info_t info;
        require(st == VW_OK && c->publishes == 0 && vw_ota_info(&ota, &info) == VW_OK);
        if (info.state != VW_OTA_TRIAL) {
            h.current_job[0] = '\0';
        }
        after_ota(model, 0);
        free(payload);
        return;
    }
    require(st == VW_OK || st == VW_ERR_JSON || st == VW_ERR_MESSAGE || st == VW_ERR_STATE);
    require((st == VW_ERR_JSON) == !parsed);
    require((st == VW_ERR_MESSAGE) == (parsed && !job_ok));
    require(!job_ok || (st == VW_ERR_STATE) == (port_state.wall == 0u));
    require(c->publishes == c->ota_reqs + c->replies);
    if (st == VW_OK && c->reports == 0) {
        /* Unanswered only when its model is the one running on trial (reported once
           confirmed): the job's hash is the active slot's. */
        vw_ota_info_t info;
        char sha[2 * VW_SHA256_DIGEST_BYTES + 1], active[2 * VW_SHA256_DIGEST_BYTES + 1];
        require(vw_ota_info(&ota, &info) == VW_OK && info.state == VW_OTA_TRIAL);
        get_string(&doc, "sha256", sha, sizeof sha);
        for (size_t i = 0; i < VW_SHA256_DIGEST_BYTES; i++) {
            snprintf(active + 2 * i, 3, "%02x", info.slot[info.active_slot & 1u].sha256[i]);
        }
        require(strcmp(sha, active) == 0);
    }
    if (st != VW_OK) {
        require(c->publishes == 0);
    }
    after_ota(model, 0);
    free(payload);
}

static const char BASE64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t base64(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0u) |
                           (i + 2 < n ? in[i + 2] : 0u);
        out[o++] = BASE64[v >> 18];
        out[o++] = BASE64[(v >> 12) & 63u];
        out[o++] = i + 1 < n ? BASE64[(v >> 6) & 63u] : '=';
        out[o++] = i + 2 < n ? BASE64[v & 63u] : '=';
    }
    return o;
}

/* A signed job for a candidate blob (V). */
static void signed_job(uint8_t cand_sel, uint8_t flags)
{
    const unsigned cand = cand_sel % N_CAND;
    const candidate_t *c = &cands[cand];
    vw_ota_manifest_t m;
    memset(&m, 0, sizeof m);
    memcpy(m.model_id, c->model.id, sizeof m.model_id);
    m.model_version = c->model.version;
    m.size = blobs[cand].len;
    m.chunk_size = VW_OTA_MIN_CHUNK << (flags & 3u);
    m.rollback = (uint8_t)((flags >> 2) & 1u);
    memcpy(m.sha256, c->sha256, sizeof m.sha256);
    char signed_text[VW_OTA_SIGNED_TEXT_MAX];
    size_t signed_len = 0;
    require(vw_ota_signed_text(&m, signed_text, sizeof signed_text, &signed_len) == VW_OK);
    uint8_t signature[VW_OTA_SIGNATURE_BYTES];
    vw_fuzz_sign((const uint8_t *)signed_text, signed_len, signature);
    if (flags & 16u) {
        signature[flags % VW_OTA_SIGNATURE_BYTES] ^= 0x10u;
    }
    /* The id names the manifest: one id, one manifest, as the back end does. */
    job_t job;
    snprintf(job.id, sizeof job.id, "job-%u-%u-%u%s", cand, (unsigned)(flags & 3u),
             (unsigned)m.rollback, flags & 8u ? "-again" : "");
    job.cand = cand;
    job.chunk_size = m.chunk_size;
    require(vw_chunk_job_ref(job.id, strlen(job.id), &job.ref) == VW_OK);
    if (find_job(job.id) < 0 && h.n_jobs < MAX_JOBS) {
        h.jobs[h.n_jobs++] = job;
    }
    char hex[2 * VW_SHA256_DIGEST_BYTES + 1], sig[4 * ((VW_OTA_SIGNATURE_BYTES + 2) / 3) + 1];
    for (size_t i = 0; i < VW_SHA256_DIGEST_BYTES; i++) {
        snprintf(hex + 2 * i, 3, "%02x", c->sha256[i]);
    }
    sig[base64(signature, sizeof signature, sig)] = '\0';
    char text[512];
    const int n = snprintf(text, sizeof text,
                           "{\"job\":\"%s\",\"model_id\":\"%s\",\"model_version\":%u,"
                           "\"size\":%u,\"sha256\":\"%s\",\"chunk_size\":%u,"
                           "\"signature\":\"%s\"%s}",
                           job.id, m.model_id, (unsigned)m.model_version, (unsigned)m.size, hex,
                           (unsigned)m.chunk_size, sig, m.rollback ? ",\"rollback\":true" : "");
    require(n > 0 && (size_t)n < sizeof text);
    ota_job((const uint8_t *)text, (size_t)n);
}

static void ota_chunk(const uint8_t *payload, size_t n)
{
    uint8_t *copy = malloc(n > 0 ? n : 1);
    require(copy != NULL);
    if (n > 0) {
        memcpy(copy, payload, n);
    }
    const vw_model_t *model = live_model();
    begin_call(h.current_job);
    const vw_status_t st = vw_device_ota_chunk(&dev, copy, n);
    end_call();
    if (trace) {
        fprintf(stderr, "ota chunk: %s\n", vw_status_name(st));
    }
    const call_t *c = &port_state.call;
    require(st >= VW_OK && st <= VW_ERR_MESSAGE);
    require(c->publishes == c->ota_reqs + c->replies);
    if (st != VW_OK) {
        require(c->publishes == 0 && live_model() == model);
    }
    after_ota(model, 0);
    free(copy);
}

/* Answers open request k with the bytes of its job's blob (K). */
static void answer(unsigned k, uint8_t flags)
{
    const request_t rq = h.requests[k];
    if (!(flags & 8u)) {
        memmove(h.requests + k, h.requests + k + 1, (h.n_requests - k - 1) * sizeof rq);
        h.n_requests--;
    }
    const job_t *job = &h.jobs[rq.job];
    uint8_t *payload = malloc(VW_CHUNK_HEADER_BYTES + rq.len);
    require(payload != NULL);
    payload[0] = VW_CHUNK_MAGIC0;
    payload[1] = VW_CHUNK_MAGIC1;
    payload[2] = VW_CHUNK_VERSION;
    payload[3] = 0;
    put_le32(payload + 4, flags & 2u ? job->ref ^ 1u : job->ref);
    put_le32(payload + 8, rq.offset);
    put_le32(payload + 12, rq.len);
    memcpy(payload + VW_CHUNK_HEADER_BYTES, blobs[job->cand].data + rq.offset, rq.len);
    if (flags & 1u) {
        payload[VW_CHUNK_HEADER_BYTES + flags % rq.len] ^= 0x01u;
    }
    for (int times = flags & 4u ? 2 : 1; times > 0 && h.up; times--) {
        ota_chunk(payload, VW_CHUNK_HEADER_BYTES + rq.len);
    }
    free(payload);
}

static float amplitude(uint8_t b)
{
    return ldexpf(b & 128u ? 1.5f : 1.0f, (int)(b & 127u) - 64);
}

static uint32_t lcg(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state;
}

static void make_window(reader_t *r)
{
    static const float specials[8] = {NAN, INFINITY, -INFINITY, FLT_MAX,
                                      -FLT_MAX, FLT_TRUE_MIN, -0.0f, 1e30f};
    const uint8_t shape = u8(r), amp = u8(r), extra = u8(r);
    const float a = amplitude(amp), cycles = (float)(shape >> 3);
    const float two_pi = 6.28318530718f;
    const uint16_t n = MAX_WINDOW;
    float raw[4];
    uint32_t state = extra;
    if ((shape & 7u) == 4u) {
        for (int k = 0; k < 4; k++) {
            uint32_t bits = u8(r);
            bits |= (uint32_t)u8(r) << 8;
            bits |= (uint32_t)u8(r) << 16;
            bits |= (uint32_t)u8(r) << 24;
            memcpy(&raw[k], &bits, sizeof bits);
        }
    }
    for (uint16_t i = 0; i < n; i++) {
        const float phase = two_pi * cycles * (float)i / (float)n;
        float x = 0.0f;
        switch (shape & 7u) {
        case 0:
            x = a * sinf(phase) + a * 1e-3f * ((float)(lcg(&state) >> 8) / 16777216.0f - 0.5f);
            break;
        case 1:
            x = i == (uint16_t)(extra * n / 256u) ? a : 0.0f;
            break;
        case 2:
            x = i == (uint16_t)((extra >> 3) * n / 32u) ? specials[extra & 7u] : a * sinf(phase);
            break;
        case 3:
            x = shape & 8u ? -a : a;
            break;
        case 4:
            x = raw[i % 4u];
            break;
        case 5:
            x = a * ((float)(lcg(&state) >> 8) / 8388608.0f - 1.0f);
            break;
        case 6:
            x = a * sinf(phase) + amplitude(extra) * sinf(3.0f * phase + 1.0f);
            break;
        default:
            x = sinf(phase) < 0.0f ? -a : a;
            break;
        }
        h.samples[i] = x;
    }
    h.have_window = 1;
}

/* What the end of a calibration must give. */
typedef struct {
    const char *outcome; /* "done" or "failed" */
    const char *detail;  /* "" for none */
    float threshold;     /* when done */
} calibration_t;

/*
 * The calibration's last window was scored (@p fault and @p tear: the record writes as they
 * were when it was handed over): the threshold of the tail rule over the harness's scores,
 * at most the live model's ceiling, stored with the model's CRC-32, then in force. Updates
 * what storage must hold and the threshold the device must use.
 */
static calibration_t end_calibration(int fault, uint32_t tear)
{
    const vw_model_t *m = live_model();
    vw_tail_estimate_t e;
    require(vw_tail_estimate(&h.tail, h.config.settings.calibrate_target, &e) == VW_OK);
    if (trace) {
        fprintf(stderr, "calibration over %u windows: method %u, threshold %.9g\n",
                (unsigned)e.n, (unsigned)e.method, (double)e.threshold);
    }
    float threshold = e.threshold;
    const char *detail = "";
    if (threshold > m->threshold_ceiling) {
        threshold = m->threshold_ceiling;
        detail = "ceiling";
    }
    if (!(threshold > 0.0f && threshold <= 1e12f)) {
        return (calibration_t){"failed", NO_USABLE, 0.0f};
    }
    uint8_t rec[VW_DEVICE_RECORD_BYTES];
    calibration_record(threshold, m->crc, rec);
    if (fault != FAULT_NONE) { /* what the port let through lands; the threshold stays */
        memcpy(h.record, rec, tear < sizeof rec ? tear : sizeof rec);
        return (calibration_t){"failed", "storage", 0.0f};
    }
    memcpy(h.record, rec, sizeof rec);
    h.threshold = threshold;
    h.source = SOURCE_CALIBRATION;
    return (calibration_t){"done", detail, threshold};
}

/*
 * Checks the replies a window sent: the calibration's end (@p cal, NULL if it did not end
 * with this window) first, then its status message when done, the upload's answer.
 */
static void window_replies(const calibration_t *cal, int uploads)
{
    const call_t *c = &port_state.call;
    const int cal_reply = cal != NULL && port_state.wall != 0u;
    const int status = cal_reply && strcmp(cal->outcome, "done") == 0;
    require(c->replies == (unsigned)(cal_reply + uploads));
    require(c->raws == (unsigned)uploads);
    require(c->statuses == (unsigned)status);
    for (unsigned i = 0; i < c->replies; i++) {
        const reply_t *r = &c->reply[i];
        h.answered += (uint32_t)r->accepted;
        if (strcmp(r->cmd, "calibrate") == 0) {
            require(cal_reply && i == 0 && strcmp(r->id, h.calibration_id) == 0);
            require(strcmp(r->outcome, cal->outcome) == 0 && strcmp(r->detail, cal->detail) == 0);
            require(strcmp(r->outcome, "failed") == 0 || r->threshold == cal->threshold);
        } else {
            require(uploads && strcmp(r->cmd, "upload_raw") == 0);
            require(strcmp(r->id, h.upload_id) == 0);
            require(strcmp(r->outcome, c->raw_accepted ? "done" : "failed") == 0);
        }
    }
    if (status) { /* the new threshold in the retained status */
        require(c->status_threshold == h.threshold &&
                strcmp(c->status_source, SOURCES[SOURCE_CALIBRATION]) == 0);
    }
    if (uploads) {
        h.upload_id[0] = '\0';
    }
}

static void window(void)
{
    const vw_model_t *m = live_model();
    const uint16_t n = m->spec.window;
    if (h.windows_run >= MAX_WINDOWS) {
        return;
    }
    h.windows_run++;
    float *samples = malloc(n * sizeof(float));
    require(samples != NULL);
    memcpy(samples, h.samples, n * sizeof(float));
    int finite = 1;
    for (uint16_t i = 0; i < n; i++) {
        finite &= isfinite(samples[i]) != 0;
    }
    const vw_device_counters_t before = vw_device_counters(&dev);
    const uint64_t duration = (uint64_t)m->spec.window * 1000u / m->spec.sample_rate_hz;
    const int synced = port_state.wall > duration;
    h.pending_seq = ((uint64_t)h.boot << 32) | h.window;
    h.pending_t = port_state.wall - duration;
    h.window_samples = samples;
    /* The reading this window may add to the batch: known before the device sends it. */
    if (synced) {
        h.batch[h.batch_len++] = (expected_t){h.pending_seq, h.pending_t, port_state.now};
    }
    /* A calibration window: the harness scores it too. */
    float score = 0.0f;
    const int scored = h.calibrating != 0 && score_of(samples, &score) && isfinite(score);
    const int fault = port_state.record_fault;
    const uint32_t tear = port_state.tear;

    begin_call(NULL);
    const vw_status_t st = vw_device_window(&dev, samples);
    end_call();
    h.window_samples = NULL;
    const call_t *c = &port_state.call;
    const vw_device_counters_t after = vw_device_counters(&dev);
    if (trace) {
        fprintf(stderr, "window: %s\n", vw_status_name(st));
    }
    require(st == VW_OK || st == VW_ERR_INPUT ||
            (st == VW_ERR_STORAGE && h.window == UINT32_MAX &&
             port_state.record_fault == FAULT_ALWAYS));
    require(finite || st == VW_ERR_INPUT);
    if (st != VW_OK && synced) {
        h.batch_len--; /* no reading */
    }
    if (st == VW_ERR_INPUT) {
        require(c->publishes == 0 && memcmp(&before, &after, sizeof before) == 0);
        require(!scored); /* the device refuses only a window its model cannot score */
        free(samples);
        return;
    }
    /* Scored: one more calibration window, with the harness's score. */
    calibration_t cal = {"", "", 0.0f};
    int calibration_ends = 0;
    if (h.calibrating != 0) {
        require(scored && vw_tail_add(&h.tail, score) == VW_OK);
        calibration_ends = --h.calibrating == 0;
        if (calibration_ends) {
            cal = end_calibration(fault, tear);
        }
    }
    const int uploads = st == VW_OK && synced && h.upload_id[0] != '\0';
    window_replies(calibration_ends ? &cal : NULL, uploads);
    require(c->publishes == c->replies + c->statuses + c->raws + c->telemetry + c->events +
                                c->features);
    if (st == VW_ERR_STORAGE) {
        require(c->publishes == c->replies + c->statuses);
        free(samples);
        return;
    }
    require(after.windows == before.windows + 1u);
    h.windows++;
    if (after.events != before.events) {
        require(after.events == before.events + 1u);
        h.anomaly = !h.anomaly;
    }
    if (synced) {
        if (after.readings_dropped != before.readings_dropped) {
            require(after.readings_dropped == before.readings_dropped + 1u);
            /* The dropped reading is this window's: the newest. */
            require(h.batch_len > 0 && h.batch[h.batch_len - 1u].seq == h.pending_seq);
            h.batch_len--;
        }
    } else {
        h.unsynced++;
        require(c->publishes == c->replies + c->statuses);
    }
    if (h.window == UINT32_MAX) {
        /* The window numbers ran out: a new boot's range. */
        require(dev.boot > h.boot);
        h.boot = h.last_boot = dev.boot;
        h.window = 0;
    } else {
        h.window++;
    }
    free(samples);
}

static void poll(uint8_t dt_code)
{
    static const uint32_t units[4] = {1u, 100u, 10000u, 1u << 26};
    const uint32_t dt = (uint32_t)(dt_code % 64u) * units[dt_code / 64u];
    port_state.now += dt;
    if (port_state.wall_runs) {
        port_state.wall += dt;
    }
    const vw_model_t *model = live_model();
    begin_call(h.current_job);
    const vw_status_t st = vw_device_poll(&dev);
    end_call();
    if (trace) {
        fprintf(stderr, "poll +%u ms: %s\n", (unsigned)dt, vw_status_name(st));
    }
    const call_t *c = &port_state.call;
    require(st == VW_OK && c->publishes == c->telemetry + c->ota_reqs && c->telemetry <= 1);
    for (unsigned i = 0; i < c->reports; i++) {
        /* A poll only confirms a trial. */
        require(strcmp(c->report[i].state, "installed") == 0);
    }
    after_ota(model, 1);
    const uint32_t limit = h.config.settings.batch_ms;
    if (port_state.refuse == TAKE_ALL && h.batch_len > 0 && limit != 0u) {
        require((uint32_t)(port_state.now - h.batch[0].now) < limit);
    }
}

static void set_wall(uint8_t b)
{
    static const char *const names[4] = {"unknown", "tiny", "T0", "far"};
    const uint64_t v = b >> 2;
    const uint64_t walls[4] = {0u, v, T0 + 1000u * v, UINT64_MAX - v};
    port_state.wall = walls[b & 3u];
    port_state.wall_runs = (b & 3u) == 2u;
    if (trace) {
        fprintf(stderr, "wall clock %s\n", names[b & 3u]);
    }
}

static void connected(void)
{
    begin_call(NULL);
    const vw_status_t st = vw_device_connected(&dev);
    end_call();
    if (trace) {
        fprintf(stderr, "connected: %s\n", vw_status_name(st));
    }
    const call_t *c = &port_state.call;
    if (port_state.wall == 0u) {
        require(st == VW_ERR_STATE && c->publishes == 0);
    } else {
        require(c->publishes == 1 && c->statuses == 1);
        require(st == VW_OK || st == PORT_REFUSED);
        require(c->status_threshold == h.threshold &&
                strcmp(c->status_source, SOURCES[h.source]) == 0);
    }
}

static void last_will(uint8_t cap)
{
    static const char offline[] = "{\"state\":\"offline\"}";
    uint8_t *out = malloc(cap > 0 ? cap : 1);
    require(out != NULL);
    size_t len = 0;
    const vw_status_t st = vw_device_last_will(&dev, out, cap, &len);
    if (trace) {
        fprintf(stderr, "last will in %u bytes: %s\n", (unsigned)cap, vw_status_name(st));
    }
    if (cap >= sizeof offline - 1u) {
        require(st == VW_OK && len == sizeof offline - 1u && memcmp(out, offline, len) == 0);
    } else {
        require(st == VW_ERR_BUFFER);
    }
    free(out);
}

static void step(reader_t *r)
{
    const uint8_t op = u8(r);
    const uint8_t *text = NULL;
    size_t n = 0;
    h.ops++;
    /* Operations on the port, and the reboot, run whether or not the device is up. */
    switch (op) {
    case 'R':
        boot(u8(r));
        return;
    case 'D': {
        const uint8_t b = u8(r);
        port_state.record_fault = b & 1u ? FAULT_ALWAYS : FAULT_NONE;
        port_state.tear = (uint32_t)(b >> 1) % (VW_DEVICE_RECORD_BYTES + 1u);
        return;
    }
    case 'T':
        set_wall(u8(r));
        return;
    case 'F':
        port_state.refuse = u8(r) % 4u;
        return;
    default:
        break;
    }
    /* The others read their arguments, then run if the device is up. */
    uint8_t a0 = 0, a1 = 0;
    switch (op) {
    case 'C':
    case 'S':
    case 'O':
        n = line(r, &text);
        break;
    case 'J':
    case 'B':
        n = bytes(r, u8(r), &text);
        break;
    case 'V':
    case 'K':
        a0 = u8(r);
        a1 = u8(r);
        break;
    case 'W':
        make_window(r);
        break;
    case 'X':
    case 'Y':
    case 'P':
    case 'L':
        a0 = u8(r);
        break;
    case 'A':
        break;
    default:
        return; /* not an operation: a separator */
    }
    if (!h.up) {
        return;
    }
    switch (op) {
    case 'C':
    case 'J':
        command(text, n);
        break;
    case 'S':
        set_threshold(text, n);
        break;
    case 'O':
        ota_job(text, n);
        break;
    case 'B':
        ota_chunk(text, n);
        break;
    case 'V':
        signed_job(a0, a1);
        break;
    case 'K':
        if (h.n_requests > 0) {
            answer(a0 % h.n_requests, a1);
        }
        break;
    case 'Y':
        for (unsigned k = 0; k < 8u * (a0 % 16u + 1u) && h.n_requests > 0 && h.up; k++) {
            answer(0, 0);
        }
        break;
    case 'W':
        window();
        break;
    case 'X':
        for (unsigned k = 0; k < a0 % 8u + 1u && h.have_window; k++) {
            window();
        }
        break;
    case 'P':
        poll(a0);
        break;
    case 'A':
        connected();
        break;
    case 'L':
        last_will(a0 % 32u);
        break;
    default:
        break;
    }
    check_device();
}

/* ---- setup ---- */

static vw_ota_config_t ota_config(void)
{
    return (vw_ota_config_t){0u, SLOT_BYTES, SAMPLE_RATE_HZ, MAX_WINDOW, engine_work,
                             sizeof engine_work};
}

static vw_port_t make_port(void)
{
    return (vw_port_t){&port_state, port_now,     port_read, port_write, port_map,
                       vw_fuzz_verify, port_publish, port_wall};
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    trace = getenv("VW_FUZZ_TRACE") != NULL;
    const vw_ota_config_t oc = ota_config();
    require(vw_ota_layout(&oc, &layout) == VW_OK);
    record_addr = (layout.end + 3u) & ~3u;
    storage_bytes = record_addr + VW_DEVICE_STORAGE_BYTES;
    require(storage_bytes <= STORAGE_MAX && N_CAND >= N_PROVISION);
    oracle_dsp_bytes = vw_dsp_required_bytes(MAX_WINDOW);
    oracle_dsp_work = malloc(oracle_dsp_bytes);
    require(oracle_dsp_bytes > 0 && oracle_dsp_work != NULL);
    for (unsigned i = 0; i < N_CAND; i++) {
        blobs[i] = with_ceiling(i);
        require(vw_model_parse(&cands[i].model, blobs[i].data, blobs[i].len) == VW_OK);
        require(vw_sha256(blobs[i].data, blobs[i].len, cands[i].sha256) == VW_OK);
    }
    const vw_port_t port = make_port();
    for (unsigned i = 0; i < N_PROVISION; i++) {
        memset(port_state.storage, 0xFF, sizeof port_state.storage);
        require(vw_ota_init(&ota, &port, &oc) == VW_ERR_NO_MODEL);
        require(vw_ota_provision(&ota, blobs[i].data, blobs[i].len) == VW_OK);
        memcpy(images[i], port_state.storage, sizeof images[i]);
        const vw_model_t *m = &cands[i].model;
        require(m->spec.sample_rate_hz == SAMPLE_RATE_HZ && m->spec.window <= MAX_WINDOW &&
                m->n_features <= MAX_FEATURES && isfinite(m->threshold) && m->threshold > 0.0f);
        require(m->threshold_ceiling ==
                (blobs[i].data != vw_fuzz_blobs[i].data ? CEILING : m->threshold));
    }
    return 0;
}

static vw_device_config_t device_config(uint8_t cfg0, uint8_t cfg1, uint8_t cfg2)
{
    static const uint16_t features_every[4] = {60u, 0u, 1u, 3u};
    static const uint16_t calibrate_windows[4] = {1u, 2u, 3u, 24u};
    static const float targets[4] = {0.5f, 0.1f, 0.01f, 0.001f};
    static const uint32_t batch_ms[4] = {0u, 100u, 1000u, 10000u};
    static const uint32_t ota_timeouts[4] = {1u, 500u, 5000u, 60000u};
    const vw_anomaly_config_t anomalies[4] = {
        vw_anomaly_defaults(), {1u, 1u, 1u, 1.0f}, {2u, 3u, 2u, 0.5f}, {32u, 32u, 255u, 1e-6f}};
    vw_device_config_t c;
    memset(&c, 0, sizeof c);
    c.firmware = "0.9.0-fuzz";
    c.capabilities = "ota,raw";
    c.record_addr = record_addr;
    c.max_window = cfg2 & 8u ? 2u * MAX_WINDOW : MAX_WINDOW;
    c.max_features = MAX_FEATURES;
    c.engine_work = engine_work;
    c.engine_work_bytes = sizeof engine_work;
    c.settings = vw_device_defaults();
    c.settings.batch_windows = (uint16_t)(1u + ((cfg0 >> 2) & 7u));
    c.settings.features_every = features_every[(cfg0 >> 5) & 3u];
    c.settings.ota_window = (uint8_t)(1u + (cfg2 & 7u));
    c.settings.ota_timeout_ms = ota_timeouts[(cfg2 >> 5) & 3u];
    c.settings.trial_ms = cfg2 & 16u ? 0u : 3000u;
    c.settings.calibrate_windows = calibrate_windows[cfg1 & 3u];
    c.settings.calibrate_target = targets[(cfg1 >> 2) & 3u];
    c.settings.batch_ms = batch_ms[(cfg1 >> 4) & 3u];
    c.settings.anomaly = anomalies[cfg1 >> 6];
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader_t r = {data, size, 0};
    const uint8_t cfg0 = u8(&r);
    const uint8_t cfg1 = u8(&r);
    const uint8_t cfg2 = u8(&r);

    memset(&h, 0, sizeof h);
    memset(&port_state, 0, sizeof port_state);
    memcpy(port_state.storage, images[cfg0 & 3u], sizeof port_state.storage);
    memcpy(h.record, port_state.storage + record_addr + CALIBRATION_OFFSET, sizeof h.record);
    h.config = device_config(cfg0, cfg1, cfg2);
    h.ota_config = ota_config();
    h.port = make_port();
    const size_t work_bytes = vw_device_required_bytes(&h.config);
    require(work_bytes > 0);
    h.work = malloc(work_bytes);
    require(h.work != NULL);
    port_state.wall = T0;
    port_state.wall_runs = 1;

    boot(0);
    for (unsigned n = 0; n < MAX_OPS && r.pos < r.len; n++) {
        step(&r);
    }
    free(h.work);
    return 0;
}
