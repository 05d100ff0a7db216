/*
 * libFuzzer target: the OTA slot state machine (vw_ota.h) over in-memory storage
 * that loses power on command.
 *
 * Input: two configuration bytes, then a script of operations, each an opcode
 * byte (taken modulo OP_COUNT) followed by its arguments. Missing bytes read as 0.
 *
 *   cfg0  bits 0-1 storage fill before boot (0x00, 0xFF, 0x5A, pseudo-random);
 *         bits 2-3 slot size (5120, 8192, 12288, 16384 bytes);
 *         bit 4    engine work memory 256 bytes (else 4096): bigger models are VW_ERR_SPEC;
 *         bit 5    DSP max window 4096 (else 256)
 *   cfg1  storage base = 4 * (cfg1 & 63): slots are not at round addresses
 *
 * The candidates are the blobs of vw_fuzz_models.h (seeds.py): the factory model, updates
 * that install, and updates that each fail one check (no golden vector, other sample
 * rate, longer window, wrong golden output, larger than some slots).
 *
 *   OP_PROVISION  cand flags [pos:u16 xor:u8 if flags&1] [len:u16 if flags&2]
 *                 vw_ota_provision with candidate blob cand, a byte patched, its length
 *                 replaced, or (flags&4) passed at an odd address
 *   OP_BEGIN      cand flags chunksel [sig:64 if flags&2] [sha:32 if flags&4]
 *                 [size:u32 if flags&8] [version:u32 if flags&16] [idlen:u8 id if flags&32]
 *                 [pos:u16 xor:u8 if flags&64] [chunk:u32 if flags&128]
 *                 a manifest of candidate cand: rollback = flags&1; chunk size
 *                 64 << (chunksel % 8), 65536 when that is 7, unless given raw; every field
 *                 true unless replaced; the signature is correct (see below) unless
 *                 replaced; a patch changes the bytes sent and, unless the hash is
 *                 given raw, the hash covers the patched bytes (so the blob fails
 *                 its own CRC after the hash check passed)
 *   OP_CHUNK      k flags [skew:u8 if flags&1] [len:u16 if flags&2] [pos:u16 if flags&4]
 *                 chunk k (modulo chunks + 1) of the current download, its offset
 *                 skewed, its length replaced or one byte of it flipped
 *   OP_CHUNK_ALL  mode   every chunk: even mode asks vw_ota_next_missing each time,
 *                        odd mode sends them last to first
 *   OP_FINISH, OP_CONFIRM
 *   OP_REBOOT            reset and vw_ota_init again
 *   OP_POWER_CUT  n:u8 torn:u16   power fails during the n-th storage write from now:
 *                 only its first (torn % (len + 1)) bytes reach storage, every later
 *                 write fails, and the device reboots after the call that was running
 *   OP_CORRUPT    addr:u32 xor:u8 seal:u8  flip bits of one byte of the OTA region while
 *                 the device is off, then boot; seal & 1 recomputes the CRC of a
 *                 metadata record so that its fields are judged, not its CRC
 *   OP_NEXT_MISSING      query the next chunk to request
 *   OP_READ_FAULT n:u8   the n-th storage read from now fails (VW_ERR_STORAGE), once;
 *                        a call that then returns VW_ERR_STORAGE is followed by a reboot
 *
 * Signatures: the fuzz port accepts a signature iff its first 32 bytes are the
 * SHA-256 of the signed text and the last 32 their complement. This stands in for
 * the port's Ed25519 check (which vw_ota only calls): it is deterministic, so the
 * harness can sign manifests it makes up, and a signature taken from the input
 * almost never passes, so both sides of the check are reached.
 *
 * Invariants (a violation aborts, which the fuzzer reports as a crash):
 *   - vw_ota touches storage only inside its region (vw_ota_layout), maps 4-aligned;
 *   - a refused call that "changes nothing" writes nothing and leaves vw_ota_info as
 *     it was; states follow the diagram of vw_ota.h after each successful call;
 *   - no call returns VW_OK after a storage write failed under it;
 *   - the signed text fits VW_OTA_SIGNED_TEXT_MAX, and a buffer one byte short is refused;
 *   - begin succeeds only with a valid signature, a size that fits, and a version
 *     above the active one unless the manifest says rollback; resuming the same
 *     manifest writes nothing;
 *   - finish succeeds only when the new active slot holds exactly the manifest's bytes
 *     (SHA-256), parses, fits the device and reproduces at least one golden vector;
 *   - after every boot with the factory model provisioned and no storage byte flipped
 *     by OP_CORRUPT, a model boots, it is byte-for-byte one of the candidates, it is
 *     the one expected (the confirmed model, or the fallback of an unconfirmed trial;
 *     after a power cut or failed read during confirm or provision, also the model
 *     that call was installing), and it fits the device and reproduces its golden
 *     vectors;
 *     a reboot rolls an unconfirmed trial back and says so (last_event);
 *     a download in progress survives a clean reboot with the same chunks received;
 *   - whenever init reports a model (even after corruption), its slot parses in place.
 */
#include <sanitizer/asan_interface.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_crc32.h"
#include "vw_engine.h"
#include "vw_model.h"
#include "vw_ota.h"
#include "vw_sha256.h"

#include "vw_fuzz.h"
#include "vw_fuzz_models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    OP_PROVISION,
    OP_BEGIN,
    OP_CHUNK,
    OP_CHUNK_ALL,
    OP_FINISH,
    OP_CONFIRM,
    OP_REBOOT,
    OP_POWER_CUT,
    OP_CORRUPT,
    OP_NEXT_MISSING,
    OP_READ_FAULT,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "provision", "begin", "chunk", "chunk-all", "finish",
    "confirm", "reboot", "power-cut", "corrupt", "next-missing", "read-fault",
};

/* VW_FUZZ_TRACE=1 prints each operation and boot with its status (for reading a reproducer). */
static int trace;

#define N_CAND (sizeof vw_fuzz_blobs / sizeof vw_fuzz_blobs[0])
#define MAX_SLOT 16384u
#define MAX_STORAGE (3u * MAX_SLOT)
#define MAX_OPS 48u
#define SAMPLE_RATE_HZ 1600u

/* ---- input reader ---- */

static uint16_t u16(reader_t *r)
{
    uint16_t lo = u8(r);
    return (uint16_t)(lo | (uint16_t)(u8(r) << 8));
}

static uint32_t u32(reader_t *r)
{
    uint32_t lo = u16(r);
    return lo | ((uint32_t)u16(r) << 16);
}

/* ---- storage that loses power on command ---- */

typedef struct {
    uint8_t *mem;
    uint32_t lo, hi;  /* the OTA region: any access outside it is a bug */
    uint32_t writes;  /* completed writes since the counter was cleared */
    int32_t cut_in;   /* writes still to complete before the cut; -1: none armed */
    uint16_t torn;    /* selects how much of the cut write lands */
    int dead;         /* power is gone: every write fails until the reboot */
    int32_t read_fault_in; /* reads still to succeed before one fails; -1: none armed */
    int read_faulted; /* a read failed during the current call */
} flash_t;

static void require_inside(const flash_t *f, uint32_t addr, uint32_t len)
{
    require(addr >= f->lo && addr <= f->hi && len <= f->hi - addr);
}

/* One more access against an armed fault: 1 if this is the one that fails (it disarms). */
static int fault_fires(int32_t *armed)
{
    if (*armed > 0) {
        (*armed)--;
        return 0;
    }
    if (*armed == 0) {
        *armed = -1;
        return 1;
    }
    return 0;
}

static vw_status_t flash_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    flash_t *f = ctx;
    require(buf != NULL || len == 0);
    require_inside(f, addr, len);
    if (fault_fires(&f->read_fault_in)) {
        f->read_faulted = 1;
        return VW_ERR_STORAGE;
    }
    if (len > 0) {
        memcpy(buf, f->mem + addr, len);
    }
    return VW_OK;
}

static vw_status_t flash_write(void *ctx, uint32_t addr, const void *data, uint32_t len)
{
    flash_t *f = ctx;
    require(data != NULL || len == 0);
    require_inside(f, addr, len);
    if (f->dead) {
        return VW_ERR_STORAGE;
    }
    if (fault_fires(&f->cut_in)) {
        uint32_t landed = f->torn % (len + 1u);
        if (landed > 0) {
            memcpy(f->mem + addr, data, landed);
        }
        f->dead = 1;
        return VW_ERR_STORAGE;
    }
    if (len > 0) {
        memcpy(f->mem + addr, data, len);
    }
    f->writes++;
    return VW_OK;
}

static const uint8_t *flash_map(void *ctx, uint32_t addr, uint32_t len)
{
    flash_t *f = ctx;
    require_inside(f, addr, len);
    require(((uintptr_t)(f->mem + addr) & 3u) == 0 || len == 0);
    return f->mem + addr;
}

static uint32_t no_clock(void *ctx)
{
    (void)ctx;
    return 0;
}

static vw_status_t no_publish(void *ctx, const char *suffix, const uint8_t *payload, size_t len)
{
    (void)ctx;
    (void)suffix;
    (void)payload;
    (void)len;
    return VW_OK;
}

/* ---- the candidate blobs (seeds.py) ---- */

typedef struct {
    int parses;
    int golden_ok;      /* parses, and reproduces its golden vectors */
    uint32_t version;
    uint32_t sample_rate_hz;
    uint16_t window;
    size_t work_bytes;  /* engine working memory */
    char id[VW_MODEL_MAX_ID + 1];
} candidate_t;

static candidate_t cands[N_CAND];
static uint8_t check_work[8192] __attribute__((aligned(4)));

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    trace = getenv("VW_FUZZ_TRACE") != NULL;
    for (size_t i = 0; i < N_CAND; i++) {
        candidate_t *c = &cands[i];
        vw_model_t m;
        vw_engine_t engine;
        c->parses = vw_model_parse(&m, vw_fuzz_blobs[i].data, vw_fuzz_blobs[i].len) == VW_OK;
        c->golden_ok = c->parses &&
                       vw_engine_init(&engine, &m, check_work, sizeof check_work) == VW_OK &&
                       vw_engine_check_golden(&engine) == VW_OK;
        c->version = m.version;
        c->sample_rate_hz = m.spec.sample_rate_hz;
        c->window = m.spec.window;
        c->work_bytes = vw_engine_required_bytes(&m);
        memcpy(c->id, m.id, sizeof m.id);
    }
    return 0;
}

/* ---- the device under test and what the harness knows it must hold ---- */

#define NONE (-1)

typedef struct {
    flash_t flash;
    vw_port_t port;
    vw_ota_config_t config;
    vw_ota_layout_t layout;
    vw_ota_t ota;
    int booted;        /* init returned VW_OK or VW_ERR_NO_MODEL */
    /* the download the harness is sending */
    vw_ota_manifest_t manifest;
    int have_manifest;
    vw_ota_manifest_t attempt; /* the manifest of the last begin (its bytes: scratch) */
    /* ground truth while no byte was flipped */
    int provisioned;   /* a model was provisioned: a model must always boot */
    int corrupted;     /* OP_CORRUPT ran: only the weak invariants hold */
    int active;        /* candidate that is live, NONE if unknown */
    int trial;         /* 1: active is on trial, fallback takes over at reset */
    int fallback;
    int pending;       /* candidate a call cut by power may have made live, NONE if none */
} device_t;

static device_t dev;
/* Storage; the bytes past the OTA region are poisoned, so ASan reports any access there. */
static uint8_t storage[MAX_STORAGE] __attribute__((aligned(4)));
/* The bytes of the download being sent, and of the one being prepared or provisioned. */
static uint8_t image[MAX_SLOT + VW_OTA_MAX_CHUNK];
static uint8_t scratch[MAX_SLOT + 4u];

static int find_candidate(const vw_model_t *m)
{
    for (size_t i = 0; i < N_CAND; i++) {
        if (cands[i].parses && cands[i].version == m->version &&
            strcmp(cands[i].id, m->id) == 0 && vw_fuzz_blobs[i].len == m->blob_bytes) {
            return (int)i;
        }
    }
    return NONE;
}

static vw_ota_info_t info_of(void)
{
    vw_ota_info_t info;
    memset(&info, 0, sizeof info);
    require(vw_ota_info(&dev.ota, &info) == VW_OK);
    require(info.state <= VW_OTA_TRIAL);
    require(info.state == VW_OTA_NO_MODEL || info.active_slot <= 1u);
    require(info.received_chunks <= info.total_chunks);
    return info;
}

static int same_manifest(const vw_ota_manifest_t *a, const vw_ota_manifest_t *b)
{
    return strncmp(a->model_id, b->model_id, sizeof a->model_id) == 0 &&
           a->rollback == b->rollback &&
           a->model_version == b->model_version && a->size == b->size &&
           a->chunk_size == b->chunk_size && memcmp(a->sha256, b->sha256, 32) == 0;
}

static int same_info(const vw_ota_info_t *a, const vw_ota_info_t *b)
{
    for (int s = 0; s < 2; s++) {
        if (a->slot[s].state != b->slot[s].state || a->slot[s].version != b->slot[s].version ||
            a->slot[s].size != b->slot[s].size ||
            memcmp(a->slot[s].sha256, b->slot[s].sha256, 32) != 0) {
            return 0;
        }
    }
    return a->state == b->state && a->active_slot == b->active_slot &&
           a->last_event == b->last_event && a->last_status == b->last_status &&
           a->seq == b->seq && a->received_chunks == b->received_chunks &&
           a->total_chunks == b->total_chunks &&
           (a->state != VW_OTA_DOWNLOADING || same_manifest(&a->download, &b->download));
}

/* The bytes of the live model in storage; parses them in place into *m. */
static const uint8_t *live_blob(const vw_ota_info_t *info, vw_model_t *m)
{
    const vw_model_t *live = NULL;
    require(vw_ota_model(&dev.ota, &live) == VW_OK && live != NULL);
    const uint8_t *blob = flash_map(&dev.flash, dev.layout.slot[info->active_slot],
                                    live->blob_bytes);
    require(vw_model_parse(m, blob, live->blob_bytes) == VW_OK);
    require(m->version == live->version && strcmp(m->id, live->id) == 0);
    return blob;
}

/* What finish and provision check before a model goes live. */
static void require_fit(const vw_model_t *m)
{
    vw_engine_t engine;
    require(m->spec.sample_rate_hz == dev.config.sample_rate_hz &&
            m->spec.window <= dev.config.max_window &&
            vw_engine_required_bytes(m) <= dev.config.engine_work_bytes);
    require(vw_engine_init(&engine, m, check_work, sizeof check_work) == VW_OK);
    require(vw_engine_check_golden(&engine) == VW_OK);
}

/*
 * The live model is candidate c byte for byte, so it parses and it reproduces its
 * golden vectors (both checked once in LLVMFuzzerInitialize), and it fits the device.
 */
static int live_candidate(const vw_ota_info_t *info)
{
    const vw_model_t *live = NULL;
    require(vw_ota_model(&dev.ota, &live) == VW_OK && live != NULL);
    const uint8_t *blob = flash_map(&dev.flash, dev.layout.slot[info->active_slot],
                                    live->blob_bytes);
    int c = find_candidate(live);
    require(c != NONE && cands[c].golden_ok);
    require(memcmp(blob, vw_fuzz_blobs[c].data, live->blob_bytes) == 0);
    require(cands[c].sample_rate_hz == dev.config.sample_rate_hz &&
            cands[c].window <= dev.config.max_window &&
            cands[c].work_bytes <= dev.config.engine_work_bytes);
    return c;
}

static uint32_t active_version(void)
{
    const vw_model_t *live = NULL;
    return vw_ota_model(&dev.ota, &live) == VW_OK ? live->version : 0u;
}

/*
 * Reset and boot (again while an armed power cut hits vw_ota_init itself), then check
 * what booted. Without flipped bytes, the live model is the one the harness expects:
 * the confirmed model, or the fallback of an unconfirmed trial, or dev.pending when a
 * power cut hit the call that might have made it live.
 */
static void boot(void)
{
    vw_ota_info_t before;
    int had_info = dev.booted;
    if (had_info) {
        before = info_of();
    }
    int clean = !dev.flash.dead && !dev.flash.read_faulted;
    vw_status_t st;
    do {
        dev.flash.dead = 0;
        dev.flash.read_faulted = 0;
        memset(&dev.ota, 0xA5, sizeof dev.ota);
        st = vw_ota_init(&dev.ota, &dev.port, &dev.config);
        require(st == VW_OK || st == VW_ERR_NO_MODEL ||
                (st == VW_ERR_STORAGE && (dev.flash.dead || dev.flash.read_faulted)));
        clean = clean && st != VW_ERR_STORAGE;
    } while (st == VW_ERR_STORAGE);
    dev.booted = 1;
    vw_ota_info_t info = info_of();
    if (trace) {
        fprintf(stderr, "  boot: %s, state %u, active slot %u, v%u\n", vw_status_name(st),
                info.state, info.active_slot, active_version());
    }
    int pending = dev.pending;
    dev.pending = NONE;
    const vw_model_t *live = NULL;
    if (st == VW_ERR_NO_MODEL) {
        require(info.state == VW_OTA_NO_MODEL);
        require(vw_ota_model(&dev.ota, &live) == VW_ERR_NO_MODEL);
        require(!dev.provisioned || dev.corrupted);
        return;
    }
    require(info.state == VW_OTA_IDLE || info.state == VW_OTA_DOWNLOADING);
    if (dev.corrupted) {
        vw_model_t m;
        (void)live_blob(&info, &m);
        return;
    }
    int c = live_candidate(&info);
    int expected = !dev.provisioned ? NONE : dev.trial ? dev.fallback : dev.active;
    require(c == expected || c == pending);
    if (clean && dev.trial) {
        require(info.last_event == VW_OTA_EVENT_ROLLED_BACK);
    }
    if (clean && had_info && before.state == VW_OTA_DOWNLOADING) {
        require(info.state == VW_OTA_DOWNLOADING);
        require(same_manifest(&info.download, &before.download));
        require(info.received_chunks == before.received_chunks);
    }
    dev.provisioned = 1;
    dev.active = c;
    dev.trial = 0;
    dev.fallback = NONE;
}

/* ---- operations ---- */

/* Fill buf with the first size bytes of candidate c (zeros past its end), one byte patched. */
static void make_image(uint8_t *buf, size_t cap, size_t c, uint32_t size, const uint8_t *patch)
{
    uint32_t n = vw_fuzz_blobs[c].len < size ? vw_fuzz_blobs[c].len : size;
    n = n < MAX_SLOT ? n : MAX_SLOT;
    memcpy(buf, vw_fuzz_blobs[c].data, n);
    memset(buf + n, 0, cap - n);
    if (patch != NULL) {
        buf[(patch[0] | (uint32_t)patch[1] << 8) % MAX_SLOT] ^= patch[2];
    }
}

static const uint8_t *read_patch(reader_t *r, int present, uint8_t patch[3])
{
    if (!present) {
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        patch[i] = u8(r);
    }
    return patch;
}

static vw_status_t op_provision(reader_t *r)
{
    size_t c = u8(r) % N_CAND;
    uint8_t flags = u8(r);
    uint8_t patch[3];
    const uint8_t *p = read_patch(r, flags & 1, patch);
    uint32_t len = flags & 2 ? u16(r) : vw_fuzz_blobs[c].len;
    len = len < MAX_SLOT ? len : MAX_SLOT;
    /* Bit 2 hands the blob over at an odd address: provision takes any alignment. */
    uint32_t skew = flags & 4 ? 1u : 0u;
    make_image(scratch + skew, MAX_SLOT, c, len, p);
    dev.pending = (int)c;
    vw_status_t st = vw_ota_provision(&dev.ota, scratch + skew, len);
    if (st == VW_OK) {
        vw_ota_info_t info = info_of();
        require(info.state == VW_OTA_IDLE);
        if (!dev.corrupted) {
            dev.provisioned = 1;
            dev.active = live_candidate(&info);
            dev.trial = 0;
        }
    }
    return st;
}

/* After a begin that failed on storage: if the device downloads it anyway, send its bytes. */
static void adopt_download(void)
{
    vw_ota_info_t info = info_of();
    if (info.state == VW_OTA_DOWNLOADING && same_manifest(&info.download, &dev.attempt)) {
        uint32_t n = dev.attempt.size;
        require(n <= MAX_SLOT);
        memcpy(image, scratch, n);
        memset(image + n, 0, sizeof image - n);
        dev.manifest = dev.attempt;
        dev.have_manifest = 1;
    }
}

static vw_status_t op_begin(reader_t *r)
{
    size_t c = u8(r) % N_CAND;
    uint8_t flags = u8(r);
    uint8_t chunksel = u8(r);
    vw_ota_manifest_t m;
    memset(&m, 0, sizeof m);
    memcpy(m.model_id, cands[c].id, sizeof m.model_id);
    m.rollback = flags & 1;
    m.model_version = cands[c].version;
    m.size = vw_fuzz_blobs[c].len;
    m.chunk_size = chunksel % 8u == 7u ? VW_OTA_MAX_CHUNK : VW_OTA_MIN_CHUNK << (chunksel % 8u);

    uint8_t signature[VW_OTA_SIGNATURE_BYTES];
    int raw_sig = flags & 2;
    for (size_t i = 0; raw_sig && i < sizeof signature; i++) {
        signature[i] = u8(r);
    }
    int raw_sha = flags & 4;
    for (size_t i = 0; raw_sha && i < sizeof m.sha256; i++) {
        m.sha256[i] = u8(r);
    }
    if (flags & 8) {
        m.size = u32(r);
    }
    if (flags & 16) {
        m.model_version = u32(r);
    }
    if (flags & 32) {
        uint8_t n = u8(r) % (VW_MODEL_MAX_ID + 2u); /* 65: one too long */
        memset(m.model_id, 0, sizeof m.model_id);
        for (size_t i = 0; i < n && i < VW_MODEL_MAX_ID; i++) {
            m.model_id[i] = (char)u8(r);
        }
        if (n > VW_MODEL_MAX_ID) {
            m.model_id[VW_MODEL_MAX_ID] = 'x'; /* no terminator inside the field */
        }
    }
    uint8_t patch[3];
    const uint8_t *p = read_patch(r, flags & 64, patch);
    if (flags & 128) {
        m.chunk_size = u32(r);
    }
    uint32_t n = m.size < MAX_SLOT ? m.size : MAX_SLOT;
    make_image(scratch, sizeof scratch, c, n, p);
    if (!raw_sha) {
        require(vw_sha256(scratch, n, m.sha256) == VW_OK);
    }
    char text[VW_OTA_SIGNED_TEXT_MAX];
    size_t text_len = 0;
    int text_ok = vw_ota_signed_text(&m, text, sizeof text, &text_len) == VW_OK;
    require(!text_ok || (text_len > 0 && text_len <= sizeof text));
    if (text_ok) {
        /* One byte short: refused, and nothing written past the buffer (ASan). */
        char *short_text = malloc(text_len - 1u);
        size_t short_len = 0;
        require(short_text != NULL);
        require(vw_ota_signed_text(&m, short_text, text_len - 1u, &short_len) == VW_ERR_BUFFER);
        free(short_text);
    }
    if (!raw_sig) {
        vw_fuzz_sign((const uint8_t *)text, text_ok ? text_len : 0u, signature);
    }

    dev.attempt = m;
    vw_ota_info_t before = info_of();
    uint32_t version = active_version();
    int resume = before.state == VW_OTA_DOWNLOADING && same_manifest(&before.download, &m);
    dev.flash.writes = 0;
    vw_status_t st = vw_ota_begin(&dev.ota, &m, signature);
    if (st == VW_OK) {
        require(before.state == VW_OTA_IDLE || before.state == VW_OTA_DOWNLOADING);
        require(text_ok && vw_fuzz_verify(NULL, (const uint8_t *)text, text_len, signature));
        require(m.rollback || m.model_version > version);
        require(m.size >= 1 && m.size <= dev.config.slot_bytes);
        require(!resume || dev.flash.writes == 0);
        vw_ota_info_t after = info_of();
        require(after.state == VW_OTA_DOWNLOADING && same_manifest(&after.download, &m));
        require(after.total_chunks == (m.size + m.chunk_size - 1u) / m.chunk_size);
        adopt_download();
    }
    return st;
}

static vw_status_t op_chunk(reader_t *r)
{
    uint8_t k = u8(r);
    uint8_t flags = u8(r);
    /* Chunks of what the device downloads (after a power cut, maybe not what was sent last). */
    vw_ota_info_t before = info_of();
    const vw_ota_manifest_t *m = before.state == VW_OTA_DOWNLOADING ? &before.download
                                 : dev.have_manifest                ? &dev.manifest
                                                                    : NULL;
    if (m == NULL) {
        return vw_ota_chunk(&dev.ota, 0, image, VW_OTA_MIN_CHUNK);
    }
    uint32_t chunks = (m->size + m->chunk_size - 1u) / m->chunk_size;
    uint32_t offset = (uint32_t)(k % (chunks + 1u)) * m->chunk_size;
    if (flags & 1) {
        offset += (uint32_t)(int8_t)u8(r);
    }
    uint32_t len = offset < m->size ? m->size - offset : 0u;
    len = len < m->chunk_size ? len : m->chunk_size;
    if (flags & 2) {
        len = u16(r);
    }
    uint8_t *at = image + (offset < MAX_SLOT ? offset : MAX_SLOT);
    uint16_t flip = flags & 4 ? u16(r) : 0;
    if (len > sizeof image - (size_t)(at - image)) {
        len = (uint32_t)(sizeof image - (size_t)(at - image));
    }
    if ((flags & 4) && len > 0) {
        at[flip % len] ^= 0x80u;
    }
    vw_status_t st = vw_ota_chunk(&dev.ota, offset, at, len);
    if ((flags & 4) && len > 0) {
        at[flip % len] ^= 0x80u;
    }
    if (st == VW_OK) {
        vw_ota_info_t after = info_of();
        require(before.state == VW_OTA_DOWNLOADING && after.state == VW_OTA_DOWNLOADING);
        require(offset % m->chunk_size == 0 && offset < m->size);
        require(len == (m->size - offset < m->chunk_size ? m->size - offset : m->chunk_size));
        require(after.received_chunks == before.received_chunks ||
                after.received_chunks == before.received_chunks + 1u);
    }
    return st;
}

static vw_status_t send_chunk(uint32_t offset)
{
    const vw_ota_manifest_t *m = &dev.manifest;
    uint32_t len = m->size - offset < m->chunk_size ? m->size - offset : m->chunk_size;
    require(offset < MAX_SLOT && len <= sizeof image - offset);
    return vw_ota_chunk(&dev.ota, offset, image + offset, len);
}

static vw_status_t op_chunk_all(reader_t *r)
{
    uint8_t mode = u8(r);
    vw_ota_info_t info = info_of();
    if (!dev.have_manifest || info.state != VW_OTA_DOWNLOADING ||
        !same_manifest(&info.download, &dev.manifest)) {
        return VW_ERR_STATE;
    }
    const vw_ota_manifest_t *m = &dev.manifest;
    uint32_t chunks = (m->size + m->chunk_size - 1u) / m->chunk_size;
    vw_status_t st = VW_OK;
    if (mode & 1) {
        for (uint32_t i = chunks; i-- > 0 && st == VW_OK;) {
            st = send_chunk(i * m->chunk_size);
        }
        require(st == VW_OK || dev.flash.dead || dev.flash.read_faulted);
        return st;
    }
    for (uint32_t i = 0; i <= chunks; i++) {
        uint32_t offset = 0, len = 0;
        st = vw_ota_next_missing(&dev.ota, &offset, &len);
        if (st != VW_OK || len == 0) {
            require(st != VW_OK || info_of().received_chunks == chunks);
            return st;
        }
        require(offset % m->chunk_size == 0 && offset < m->size && len <= m->chunk_size);
        st = send_chunk(offset);
        require(st == VW_OK || dev.flash.dead || dev.flash.read_faulted);
        if (st != VW_OK) {
            return st;
        }
    }
    abort(); /* next_missing kept asking for chunks that were stored */
}

static vw_status_t op_finish(void)
{
    vw_ota_info_t before = info_of();
    vw_status_t st = vw_ota_finish(&dev.ota);
    vw_ota_info_t after = info_of();
    if (st == VW_OK) {
        require(before.state == VW_OTA_DOWNLOADING && after.state == VW_OTA_TRIAL);
        require(after.active_slot != before.active_slot);
        vw_model_t m;
        const uint8_t *blob = live_blob(&after, &m);
        const vw_ota_manifest_t *man = &before.download;
        uint8_t digest[VW_SHA256_DIGEST_BYTES];
        require(m.blob_bytes == man->size && m.version == man->model_version &&
                strcmp(m.id, man->model_id) == 0);
        require(vw_sha256(blob, m.blob_bytes, digest) == VW_OK);
        require(memcmp(digest, man->sha256, sizeof digest) == 0);
        require(m.golden_count >= 1);
        require_fit(&m);
        if (!dev.corrupted) {
            int c = find_candidate(&m);
            require(c != NONE);
            dev.fallback = dev.active;
            dev.active = c;
            dev.trial = 1;
        }
        dev.have_manifest = 0;
    } else if (st == VW_ERR_HASH || st == VW_ERR_FORMAT || st == VW_ERR_SPEC ||
               st == VW_ERR_GOLDEN || st == VW_ERR_CRC || st == VW_ERR_MAGIC ||
               st == VW_ERR_VERSION || st == VW_ERR_TRUNCATED || st == VW_ERR_UNSUPPORTED) {
        require(after.state == VW_OTA_IDLE && after.active_slot == before.active_slot);
        dev.have_manifest = 0;
    }
    return st;
}

static vw_status_t op_confirm(void)
{
    vw_status_t st = vw_ota_confirm(&dev.ota);
    if (st == VW_OK) {
        require(info_of().state == VW_OTA_IDLE);
        dev.trial = 0;
        dev.fallback = NONE;
    }
    return st;
}

/*
 * A byte flips while the device is off (retention loss, a stray write): it boots on it.
 * With seal & 1, a flipped metadata record gets its CRC-32 recomputed (docs/ota-slots.md:
 * bytes 252..255 over 0..251), so hostile but intact records reach the field checks.
 */
static void op_corrupt(reader_t *r)
{
    uint32_t at = u32(r) % (dev.flash.hi - dev.flash.lo);
    uint8_t x = u8(r);
    uint8_t seal = u8(r);
    dev.flash.mem[dev.flash.lo + at] ^= (uint8_t)(x | 1u);
    if ((seal & 1u) && at < 2u * VW_OTA_META_BYTES) {
        uint8_t *rec = dev.flash.mem + dev.layout.meta[at / VW_OTA_META_BYTES];
        uint32_t crc = vw_crc32_update(0, rec, VW_OTA_META_BYTES - 4u);
        for (unsigned i = 0; i < 4u; i++) {
            rec[VW_OTA_META_BYTES - 4u + i] = (uint8_t)(crc >> (8u * i));
        }
    }
    dev.corrupted = 1;
    boot();
}

static vw_status_t op_next_missing(void)
{
    uint32_t offset = 0, len = 0;
    vw_status_t st = vw_ota_next_missing(&dev.ota, &offset, &len);
    if (st == VW_OK) {
        vw_ota_info_t info = info_of();
        require(info.state == VW_OTA_DOWNLOADING);
        const vw_ota_manifest_t *m = &info.download;
        if (len == 0) {
            require(info.received_chunks == info.total_chunks);
        } else {
            require(offset % m->chunk_size == 0 && offset < m->size);
            require(len == (m->size - offset < m->chunk_size ? m->size - offset : m->chunk_size));
        }
    }
    return st;
}

/* Statuses after which a call must have changed nothing at all. */
static int changes_nothing(uint8_t op, vw_status_t st)
{
    switch (op) {
    case OP_PROVISION:
        return st == VW_ERR_STATE || st == VW_ERR_ARG || st == VW_ERR_TOO_LARGE;
    case OP_BEGIN:
        return st == VW_ERR_ARG || st == VW_ERR_SIGNATURE || st == VW_ERR_DOWNGRADE ||
               st == VW_ERR_TOO_LARGE || st == VW_ERR_STATE;
    case OP_CHUNK:
    case OP_CHUNK_ALL:
        return st == VW_ERR_STATE || st == VW_ERR_RANGE || st == VW_ERR_ARG;
    case OP_FINISH:
        return st == VW_ERR_STATE || st == VW_ERR_INCOMPLETE;
    default:
        return st == VW_ERR_STATE || op == OP_NEXT_MISSING;
    }
}

static void step(reader_t *r)
{
    uint8_t op = u8(r) % OP_COUNT;
    if (trace && (op == OP_REBOOT || op == OP_POWER_CUT || op == OP_CORRUPT ||
                  op == OP_READ_FAULT)) {
        fprintf(stderr, "%s\n", op_names[op]);
    }
    if (op == OP_REBOOT) {
        boot();
        return;
    }
    if (op == OP_POWER_CUT) {
        dev.flash.cut_in = u8(r);
        dev.flash.torn = u16(r);
        return;
    }
    if (op == OP_CORRUPT) {
        op_corrupt(r);
        return;
    }
    if (op == OP_READ_FAULT) {
        dev.flash.read_fault_in = u8(r);
        return;
    }
    dev.flash.read_faulted = 0;
    dev.pending = op == OP_CONFIRM && dev.trial ? dev.active : NONE;
    vw_ota_info_t before = info_of();
    dev.flash.writes = 0;
    vw_status_t st = VW_ERR_ARG;
    switch (op) {
    case OP_PROVISION: st = op_provision(r); break;
    case OP_BEGIN: st = op_begin(r); break;
    case OP_CHUNK: st = op_chunk(r); break;
    case OP_CHUNK_ALL: st = op_chunk_all(r); break;
    case OP_FINISH: st = op_finish(); break;
    case OP_CONFIRM: st = op_confirm(); break;
    default: st = op_next_missing(); break;
    }
    require(st >= VW_OK && st <= VW_ERR_NO_MODEL);
    if (trace) {
        fprintf(stderr, "%s: %s%s\n", op_names[op], vw_status_name(st),
                dev.flash.dead ? " (power cut)" : "");
    }
    require(!dev.flash.dead || st != VW_OK);
    require(st != VW_ERR_STORAGE || dev.flash.dead || dev.flash.read_faulted);
    if (st == VW_ERR_STORAGE) {
        boot();
        if (op == OP_BEGIN) {
            adopt_download();
        }
        return;
    }
    if (changes_nothing(op, st)) {
        vw_ota_info_t after = info_of();
        require(dev.flash.writes == 0 && same_info(&before, &after));
    }
}

static const uint32_t slot_sizes[4] = {5120u, 8192u, 12288u, MAX_SLOT};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader_t r = {data, size, 0};
    uint8_t cfg0 = u8(&r);
    uint8_t cfg1 = u8(&r);

    memset(&dev, 0, sizeof dev);
    dev.active = dev.fallback = dev.pending = NONE;
    dev.flash.cut_in = dev.flash.read_fault_in = -1;
    dev.config.storage_base = 4u * (cfg1 & 63u);
    dev.config.slot_bytes = slot_sizes[(cfg0 >> 2) & 3u];
    dev.config.sample_rate_hz = SAMPLE_RATE_HZ;
    dev.config.max_window = cfg0 & 32u ? 4096u : 256u;
    dev.config.engine_work_bytes = cfg0 & 16u ? 256u : 4096u;
    require(vw_ota_layout(&dev.config, &dev.layout) == VW_OK);
    require(dev.layout.end > dev.config.storage_base && dev.layout.end <= MAX_STORAGE);

    dev.flash.mem = storage;
    ASAN_POISON_MEMORY_REGION(storage + dev.layout.end, MAX_STORAGE - dev.layout.end);
    dev.config.engine_work = malloc(dev.config.engine_work_bytes);
    require(dev.config.engine_work != NULL);
    static const uint8_t fills[3] = {0x00, 0xFF, 0x5A};
    if ((cfg0 & 3u) < 3u) {
        memset(storage, fills[cfg0 & 3u], dev.layout.end);
    }
    for (uint32_t i = 0; (cfg0 & 3u) == 3u && i < dev.layout.end; i++) {
        storage[i] = (uint8_t)(i * 2654435761u >> 24);
    }
    dev.flash.lo = dev.config.storage_base;
    dev.flash.hi = dev.layout.end;
    dev.port = (vw_port_t){&dev.flash, no_clock, flash_read, flash_write, flash_map,
                           vw_fuzz_verify, no_publish, NULL};

    boot();
    require(info_of().state == VW_OTA_NO_MODEL);
    for (unsigned n = 0; n < MAX_OPS && r.pos < r.len; n++) {
        step(&r);
    }
    boot();
    free(dev.config.engine_work);
    ASAN_UNPOISON_MEMORY_REGION(storage, MAX_STORAGE);
    return 0;
}
