/*
 * A/B model slots (vw_ota.h; the design and the power-failure argument are in
 * docs/ota-slots.md).
 *
 * Every byte read from storage is untrusted: a metadata record is used only
 * if it is exactly the record this code writes for the state it describes
 * (which covers its magic, sizes, CRC and unused bytes) and every field is in
 * range, bitmap bits only for chunk indices below the manifest's chunk count,
 * and blobs only through vw_model_parse.
 */
#include "vw_ota.h"

#include <stddef.h>
#include <string.h>

#include "vw_crc32.h"
#include "vw_engine.h"
#include "vw_inline.h"

#define META_CRC_AT (VW_OTA_META_BYTES - 4u)
#define META_ID_LEN_AT 121u /* download: the id's length, then its bytes (64) at META_ID_AT */
#define META_ID_AT 156u
#define IO_PIECE 256u /* bytes per storage access when hashing, clearing, scanning */

/* The calls' states, as a mask for check_call(). */
#define IN(state) (1u << (state))

static uint32_t min32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

VW_INLINE vw_status_t rd(const vw_ota_t *o, uint32_t addr, void *buf, uint32_t len)
{
    return o->port.storage_read(o->port.ctx, addr, buf, len) == VW_OK ? VW_OK : VW_ERR_STORAGE;
}

static vw_status_t wr(const vw_ota_t *o, uint32_t addr, const void *data, uint32_t len)
{
    return o->port.storage_write(o->port.ctx, addr, data, len) == VW_OK ? VW_OK : VW_ERR_STORAGE;
}

/*
 * The preamble of the calls: VW_ERR_ARG for a NULL @p o or when @p args_ok is 0,
 * VW_ERR_STATE unless vw_ota_init succeeded and the state is one of @p states.
 */
static vw_status_t check_call(const vw_ota_t *o, int args_ok, unsigned states)
{
    if (o == NULL || !args_ok) {
        return VW_ERR_ARG;
    }
    return o->ready && ((states >> o->state) & 1u) ? VW_OK : VW_ERR_STATE;
}

/* ---- manifests ---------------------------------------------------------- */

/* Length of a well-formed model id in @p id (NUL within @p cap), or 0. */
static size_t id_length(const char *id, size_t cap)
{
    const char *end = memchr(id, '\0', cap);
    return end != NULL && vw_model_id_valid(id, (size_t)(end - id)) ? (size_t)(end - id) : 0u;
}

/* A well-formed manifest of a blob of at most @p max_size bytes. */
static int manifest_ok(const vw_ota_manifest_t *m, uint32_t max_size)
{
    return id_length(m->model_id, sizeof m->model_id) != 0 && m->rollback <= 1u &&
           m->size != 0 && m->size <= max_size && m->chunk_size >= VW_OTA_MIN_CHUNK &&
           m->chunk_size <= VW_OTA_MAX_CHUNK;
}

static int same_manifest(const vw_ota_manifest_t *a, const vw_ota_manifest_t *b)
{
    return strcmp(a->model_id, b->model_id) == 0 && a->rollback == b->rollback &&
           a->model_version == b->model_version && a->size == b->size &&
           a->chunk_size == b->chunk_size && memcmp(a->sha256, b->sha256, sizeof a->sha256) == 0;
}

VW_OUTLINE uint32_t chunk_count(const vw_ota_manifest_t *m)
{
    return (m->size + m->chunk_size - 1u) / m->chunk_size; /* no overflow: size <= 16 MiB */
}

VW_OUTLINE char *put_text(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* @p v in @p base (lowercase digits), at least @p width digits. Returns the end. */
static char *put_number(char *p, uint32_t v, uint32_t base, unsigned width)
{
    unsigned n = 1;
    for (uint32_t rest = v / base; rest != 0; rest /= base) {
        n++;
    }
    n = n < width ? width : n;
    for (char *q = p + n; q > p; v /= base) {
        *--q = "0123456789abcdef"[v % base];
    }
    return p + n;
}

/* The signed text of a well-formed manifest (at most VW_OTA_SIGNED_TEXT_MAX bytes); its length. */
static size_t signed_text(const vw_ota_manifest_t *m, char *text)
{
    char *p = put_text(text, "vw-model-v1\n", 12);
    p = put_text(p, m->model_id, strlen(m->model_id));
    *p++ = '\n';
    p = put_number(p, m->model_version, 10, 1);
    *p++ = '\n';
    p = put_number(p, m->size, 10, 1);
    *p++ = '\n';
    for (size_t i = 0; i < VW_SHA256_DIGEST_BYTES; i++) {
        p = put_number(p, m->sha256[i], 16, 2);
    }
    *p++ = '\n';
    if (m->rollback) {
        p = put_text(p, "rollback\n", 9);
    }
    return (size_t)(p - text);
}

vw_status_t vw_ota_signed_text(const vw_ota_manifest_t *manifest, char *text, size_t capacity,
                               size_t *text_len)
{
    char buf[VW_OTA_SIGNED_TEXT_MAX];
    if (manifest == NULL || text == NULL || text_len == NULL ||
        !manifest_ok(manifest, VW_MODEL_MAX_BYTES)) {
        return VW_ERR_ARG;
    }
    size_t n = signed_text(manifest, buf);
    if (n > capacity) {
        return VW_ERR_BUFFER;
    }
    memcpy(text, buf, n);
    *text_len = n;
    return VW_OK;
}

/* ---- metadata records --------------------------------------------------- */

/* No download in progress. */
static void end_download(vw_ota_meta_t *m)
{
    m->downloading = 0;
    memset(&m->download, 0, sizeof m->download);
}

/* Magic "VWOT", format version 1, record size 256 (u16 little-endian each). */
static const uint8_t meta_header[8] = {'V', 'W', 'O', 'T', 1, 0,
                                       VW_OTA_META_BYTES & 0xffu, VW_OTA_META_BYTES >> 8};

/*
 * Where the fields of vw_ota_meta_t are in a record (docs/ota-slots.md), copied as they
 * are in memory: a uint32_t is little-endian in the record as in memory on every target
 * of the core (the model blob's headers are read in place likewise, vw_model.c). Fields
 * that follow each other with no gap both in the struct and in the record are one span
 * (checked below); the padding between fields is never copied. The download's id and
 * its length are written apart (encode_meta), the CRC last.
 */
typedef struct {
    uint8_t at_meta, at_record, bytes;
} meta_field_t;

#define FIELD(member, at_record, bytes) {offsetof(vw_ota_meta_t, member), at_record, bytes}
/* a slot's state, then its version, size and SHA-256 */
#define SLOT_FIELDS(i, at) FIELD(slot[i].state, at, 1), FIELD(slot[i].version, (at) + 4u, 40)

static const meta_field_t meta_fields[] = {
    FIELD(seq, 8, 9), /* seq, active, trial, downloading, last_event, last_status */
    SLOT_FIELDS(0, 20),
    SLOT_FIELDS(1, 64),
    FIELD(download.model_version, 108, 12), /* model_version, size, chunk_size */
    FIELD(download.rollback, 120, 1),
    FIELD(download.sha256, 124, 32),
};

#define FOLLOWS(type, a, b) (offsetof(type, b) == offsetof(type, a) + sizeof(((type *)0)->a))
_Static_assert(FOLLOWS(vw_ota_meta_t, seq, active) && FOLLOWS(vw_ota_meta_t, active, trial) &&
                   FOLLOWS(vw_ota_meta_t, trial, downloading) &&
                   FOLLOWS(vw_ota_meta_t, downloading, last_event) &&
                   FOLLOWS(vw_ota_meta_t, last_event, last_status),
               "seq to last_status is one span of 9 bytes");
_Static_assert(FOLLOWS(vw_ota_slot_info_t, version, size) &&
                   FOLLOWS(vw_ota_slot_info_t, size, sha256),
               "a slot's version, size and SHA-256 are one span of 40 bytes");
_Static_assert(FOLLOWS(vw_ota_manifest_t, model_version, size) &&
                   FOLLOWS(vw_ota_manifest_t, size, chunk_size),
               "the download's version, size and chunk size are one span of 12 bytes");
_Static_assert(sizeof(vw_ota_meta_t) <= UINT8_MAX, "field offsets are stored in a uint8_t");

/* The record of @p m (whose download fields are zero unless it is downloading). */
static void encode_meta(const vw_ota_meta_t *m, uint8_t rec[VW_OTA_META_BYTES])
{
    memset(rec, 0, VW_OTA_META_BYTES);
    memcpy(rec, meta_header, sizeof meta_header);
    for (size_t i = 0; i < sizeof meta_fields / sizeof meta_fields[0]; i++) {
        const meta_field_t *f = &meta_fields[i];
        memcpy(rec + f->at_record, (const uint8_t *)m + f->at_meta, f->bytes);
    }
    size_t id_len = strlen(m->download.model_id);
    rec[META_ID_LEN_AT] = (uint8_t)id_len;
    memcpy(rec + META_ID_AT, m->download.model_id, id_len);
    const uint32_t crc = vw_crc32_update(0, rec, META_CRC_AT);
    memcpy(rec + META_CRC_AT, &crc, sizeof crc);
}

/* 1 if @p rec is the record of a state (into @p m) whose every field is in range for @p cfg. */
static int decode_meta(const uint8_t rec[VW_OTA_META_BYTES], const vw_ota_config_t *cfg,
                       vw_ota_meta_t *m)
{
    uint8_t again[VW_OTA_META_BYTES];
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < sizeof meta_fields / sizeof meta_fields[0]; i++) {
        const meta_field_t *f = &meta_fields[i];
        memcpy((uint8_t *)m + f->at_meta, rec + f->at_record, f->bytes);
    }
    memcpy(m->download.model_id, rec + META_ID_AT, VW_MODEL_MAX_ID);
    if (!m->downloading) {
        end_download(m);
    }
    /* Written back, the fields must give the same bytes: the magic, sizes and CRC are
     * right, unused bytes are zero, the id's length is its length. */
    encode_meta(m, again);
    if (memcmp(rec, again, VW_OTA_META_BYTES) != 0) {
        return 0;
    }
    /* trial + downloading > 1: either is above 1, or both are set */
    if (m->active > 1u || m->trial + m->downloading > 1 ||
        m->last_event > VW_OTA_EVENT_ROLLED_BACK) {
        return 0;
    }
    for (unsigned i = 0; i < 2; i++) {
        const vw_ota_slot_info_t *s = &m->slot[i];
        if (s->state > VW_OTA_SLOT_INVALID || s->size > cfg->slot_bytes ||
            (s->state == VW_OTA_SLOT_VALID && s->size == 0) ||
            (m->trial && s->state != VW_OTA_SLOT_VALID)) {
            return 0;
        }
    }
    return !m->downloading || (manifest_ok(&m->download, cfg->slot_bytes) &&
                               m->slot[1u - m->active].state == VW_OTA_SLOT_EMPTY);
}

/* Persist @p next as the newest record (in the area that does not hold the current one),
 * then enter @p state. Without a record yet, meta and meta_index are still zero from
 * vw_ota_init: the first record is number 1, in area 0. */
static vw_status_t write_meta(vw_ota_t *o, vw_ota_meta_t *next, uint8_t state)
{
    uint8_t rec[VW_OTA_META_BYTES];
    uint8_t index = (uint8_t)(o->meta_index ^ o->have_meta);
    next->seq = o->meta.seq + 1u;
    encode_meta(next, rec);
    vw_status_t st = wr(o, o->layout.meta[index], rec, VW_OTA_META_BYTES);
    if (st == VW_OK) {
        o->meta = *next;
        o->meta_index = index;
        o->have_meta = 1;
        o->state = state;
    }
    return st;
}

/* Load the newest valid record, if any (have_meta stays 0 otherwise). */
static vw_status_t read_meta(vw_ota_t *o)
{
    uint8_t rec[VW_OTA_META_BYTES];
    vw_ota_meta_t m;
    for (uint8_t i = 0; i < 2u; i++) {
        vw_status_t st = rd(o, o->layout.meta[i], rec, VW_OTA_META_BYTES);
        if (st != VW_OK) {
            return st;
        }
        /* Sequence numbers compare modulo 2^32, so they may wrap. */
        if (decode_meta(rec, &o->config, &m) &&
            (!o->have_meta || (int32_t)(m.seq - o->meta.seq) > 0)) {
            o->meta = m;
            o->meta_index = i;
            o->have_meta = 1;
        }
    }
    return VW_OK;
}

/* ---- the chunk bitmap --------------------------------------------------- */

static vw_status_t bitmap_clear(const vw_ota_t *o, uint32_t chunks)
{
    uint8_t zero[IO_PIECE];
    uint32_t bytes = (chunks + 7u) / 8u;
    memset(zero, 0, sizeof zero);
    for (uint32_t at = 0; at < bytes; at += IO_PIECE) {
        vw_status_t st = wr(o, o->layout.bitmap + at, zero, min32(IO_PIECE, bytes - at));
        if (st != VW_OK) {
            return st;
        }
    }
    return VW_OK;
}

/*
 * Scan the bits of chunks from..n-1 of the download: *missing is the first clear one
 * (n if none); with @p count_all the scan goes to the end and *marked counts the set bits.
 */
static vw_status_t bitmap_scan(const vw_ota_t *o, uint32_t from, int count_all,
                               uint32_t *missing, uint32_t *marked)
{
    uint8_t buf[IO_PIECE];
    uint32_t n = chunk_count(&o->meta.download);
    uint32_t base = 0, len = 0; /* buf holds bitmap bytes base..base+len-1 */
    *missing = n;
    *marked = 0;
    for (uint32_t i = from; i < n; i++) {
        uint32_t byte = i / 8u;
        if (byte - base >= len) {
            base = byte;
            len = min32(IO_PIECE, (n + 7u) / 8u - byte);
            vw_status_t st = rd(o, o->layout.bitmap + base, buf, len);
            if (st != VW_OK) {
                return st;
            }
        }
        if ((buf[byte - base] >> (i % 8u)) & 1u) {
            (*marked)++;
        } else if (*missing == n) {
            *missing = i;
            if (!count_all) {
                break;
            }
        }
    }
    return VW_OK;
}

/* ---- slots and models --------------------------------------------------- */

VW_INLINE vw_status_t hash_slot(const vw_ota_t *o, unsigned slot, uint32_t size,
                                uint8_t digest[VW_SHA256_DIGEST_BYTES])
{
    uint8_t buf[IO_PIECE];
    vw_sha256_t sha;
    vw_status_t st = vw_sha256_init(&sha);
    for (uint32_t at = 0; st == VW_OK && at < size; at += IO_PIECE) {
        uint32_t len = min32(IO_PIECE, size - at);
        st = rd(o, o->layout.slot[slot] + at, buf, len);
        if (st == VW_OK) {
            st = vw_sha256_update(&sha, buf, len);
        }
    }
    return st == VW_OK ? vw_sha256_final(&sha, digest) : st;
}

/*
 * Parse the @p size bytes of @p slot in place into models[slot]; it must be a whole
 * blob, of @p version and @p id unless they are NULL, and fit the device.
 */
static vw_status_t parse_slot(vw_ota_t *o, unsigned slot, uint32_t size, const uint32_t *version,
                              const char *id)
{
    const vw_ota_config_t *cfg = &o->config;
    const vw_model_t *m = &o->models[slot];
    const uint8_t *blob = o->port.storage_map(o->port.ctx, o->layout.slot[slot], size);
    if (blob == NULL) {
        return VW_ERR_STORAGE;
    }
    vw_status_t st = vw_model_parse(&o->models[slot], blob, size);
    if (st != VW_OK) {
        return st;
    }
    if (m->blob_bytes != size || (version != NULL && m->version != *version) ||
        (id != NULL && strcmp(m->id, id) != 0)) {
        return VW_ERR_FORMAT; /* bytes after the blob's own end, or not the model expected */
    }
    if (m->spec.sample_rate_hz != cfg->sample_rate_hz || m->spec.window > cfg->max_window ||
        vw_engine_required_bytes(m) > cfg->engine_work_bytes) {
        return VW_ERR_SPEC;
    }
    return VW_OK;
}

/*
 * The whole check of a blob written into @p slot: hash (against @p manifest, or
 * just computed into @p sha when NULL), parse, manifest fields, device fit, golden.
 */
static vw_status_t verify_slot(vw_ota_t *o, unsigned slot, uint32_t size,
                               const vw_ota_manifest_t *manifest,
                               uint8_t sha[VW_SHA256_DIGEST_BYTES])
{
    const vw_model_t *m = &o->models[slot];
    vw_engine_t engine;
    vw_status_t st = hash_slot(o, slot, size, sha);
    if (st != VW_OK) {
        return st;
    }
    if (manifest != NULL && memcmp(sha, manifest->sha256, VW_SHA256_DIGEST_BYTES) != 0) {
        return VW_ERR_HASH;
    }
    st = parse_slot(o, slot, size, manifest != NULL ? &manifest->model_version : NULL,
                    manifest != NULL ? manifest->model_id : NULL);
    if (st == VW_OK && m->golden_count == 0) {
        st = VW_ERR_GOLDEN; /* a model that proves nothing is not activated */
    }
    if (st == VW_OK) {
        st = vw_engine_init(&engine, m, o->config.engine_work, o->config.engine_work_bytes);
    }
    return st == VW_OK ? vw_engine_check_golden(&engine) : st;
}

/* Can @p slot be booted: marked valid, parses, matches its record, fits the device. */
static vw_status_t load_slot(vw_ota_t *o, unsigned slot)
{
    const vw_ota_slot_info_t *s = &o->meta.slot[slot];
    if (s->state != VW_OTA_SLOT_VALID) {
        return VW_ERR_NO_MODEL;
    }
    return parse_slot(o, slot, s->size, &s->version, NULL);
}

/* Back to the other slot: the slot left is marked invalid, the last event is ROLLED_BACK. */
VW_OUTLINE void fall_back(vw_ota_meta_t *next)
{
    next->slot[next->active].state = VW_OTA_SLOT_INVALID;
    next->active ^= 1u;
    next->trial = 0;
    next->last_event = VW_OTA_EVENT_ROLLED_BACK;
    end_download(next);
}

/* ---- the public calls --------------------------------------------------- */

/* @p v rounded up to a multiple of VW_OTA_SLOT_ALIGN. */
static uint32_t round_up(uint32_t v)
{
    return (v + VW_OTA_SLOT_ALIGN - 1u) / VW_OTA_SLOT_ALIGN * VW_OTA_SLOT_ALIGN;
}

vw_status_t vw_ota_layout(const vw_ota_config_t *config, vw_ota_layout_t *layout)
{
    if (config == NULL || layout == NULL || config->storage_base % 4u != 0 ||
        config->slot_bytes % 4u != 0 || config->slot_bytes < VW_OTA_MIN_CHUNK ||
        config->slot_bytes > VW_MODEL_MAX_BYTES) {
        return VW_ERR_ARG;
    }
    uint32_t base = config->storage_base;
    uint32_t chunks = (config->slot_bytes + VW_OTA_MIN_CHUNK - 1u) / VW_OTA_MIN_CHUNK;
    uint32_t bitmap_bytes = (chunks + 7u) / 8u;
    uint32_t slot0 = round_up(2u * VW_OTA_META_BYTES + bitmap_bytes);
    uint32_t slot1 = slot0 + round_up(config->slot_bytes);
    if (slot1 + config->slot_bytes > UINT32_MAX - base) {
        return VW_ERR_ARG;
    }
    layout->meta[0] = base;
    layout->meta[1] = base + VW_OTA_META_BYTES;
    layout->bitmap = base + 2u * VW_OTA_META_BYTES;
    layout->bitmap_bytes = bitmap_bytes;
    layout->slot[0] = base + slot0;
    layout->slot[1] = base + slot1;
    layout->end = base + slot1 + config->slot_bytes;
    return VW_OK;
}

/* The boot procedure of vw_ota_init, on a struct holding the port and config. */
VW_INLINE vw_status_t boot(vw_ota_t *o)
{
    vw_status_t st = read_meta(o);
    if (st != VW_OK || !o->have_meta) {
        return st != VW_OK ? st : VW_ERR_NO_MODEL;
    }
    vw_ota_meta_t next = o->meta;
    /* A trial not confirmed before this boot gives way to the previous slot. */
    unsigned chosen = next.active ^ next.trial;
    st = load_slot(o, chosen);
    if (st != VW_OK && st != VW_ERR_STORAGE) {
        next.slot[chosen].state = VW_OTA_SLOT_INVALID; /* the active slot, or a valid fallback */
        chosen ^= 1u;
        st = load_slot(o, chosen);
        st = st == VW_OK || st == VW_ERR_STORAGE ? st : VW_ERR_NO_MODEL;
    }
    if (st != VW_OK) {
        return st;
    }
    if (chosen != next.active) {
        fall_back(&next);
    }
    if (o->meta.trial || chosen != o->meta.active) {
        next.trial = 0;
        st = write_meta(o, &next, VW_OTA_IDLE);
        if (st != VW_OK) {
            return st;
        }
    }
    o->state = VW_OTA_IDLE;
    if (o->meta.downloading) {
        st = bitmap_scan(o, 0, 1, &o->first_missing, &o->received);
        o->state = VW_OTA_DOWNLOADING;
    }
    return st;
}

vw_status_t vw_ota_init(vw_ota_t *ota, const vw_port_t *port, const vw_ota_config_t *config)
{
    if (ota == NULL) {
        return VW_ERR_ARG;
    }
    memset(ota, 0, sizeof *ota);
    if (port == NULL || config == NULL || port->storage_read == NULL ||
        port->storage_write == NULL || port->storage_map == NULL ||
        port->verify_signature == NULL || config->sample_rate_hz == 0 ||
        config->sample_rate_hz > VW_DSP_MAX_RATE_HZ || config->max_window < VW_DSP_MIN_WINDOW ||
        config->max_window > VW_DSP_MAX_WINDOW || config->engine_work == NULL ||
        config->engine_work_bytes == 0 || vw_ota_layout(config, &ota->layout) != VW_OK) {
        return VW_ERR_ARG;
    }
    ota->port = *port;
    ota->config = *config;
    ota->state = VW_OTA_NO_MODEL;
    vw_status_t st = boot(ota);
    /* After a storage error nothing is known: provisioning could overwrite a good model. */
    ota->ready = (uint8_t)(st == VW_OK || st == VW_ERR_NO_MODEL);
    return st;
}

vw_status_t vw_ota_provision(vw_ota_t *ota, const uint8_t *blob, uint32_t len)
{
    vw_ota_meta_t next;
    vw_status_t st = check_call(ota, blob != NULL && len != 0, IN(VW_OTA_NO_MODEL));
    if (st != VW_OK) {
        return st;
    }
    if (len > ota->config.slot_bytes) {
        return VW_ERR_TOO_LARGE;
    }
    memset(&next, 0, sizeof next);
    st = wr(ota, ota->layout.slot[0], blob, len);
    if (st == VW_OK) {
        st = verify_slot(ota, 0, len, NULL, next.slot[0].sha256);
    }
    if (st != VW_OK) {
        return st;
    }
    next.slot[0].state = VW_OTA_SLOT_VALID;
    next.slot[0].version = ota->models[0].version;
    next.slot[0].size = len;
    return write_meta(ota, &next, VW_OTA_IDLE);
}

vw_status_t vw_ota_model(const vw_ota_t *ota, const vw_model_t **model)
{
    if (ota == NULL || model == NULL) {
        return VW_ERR_ARG;
    }
    if (!ota->ready || ota->state == VW_OTA_NO_MODEL) {
        return VW_ERR_NO_MODEL;
    }
    *model = &ota->models[ota->meta.active];
    return VW_OK;
}

vw_status_t vw_ota_begin(vw_ota_t *ota, const vw_ota_manifest_t *manifest,
                         const uint8_t signature[VW_OTA_SIGNATURE_BYTES])
{
    char text[VW_OTA_SIGNED_TEXT_MAX];
    vw_status_t st = check_call(ota, manifest != NULL && signature != NULL,
                                IN(VW_OTA_IDLE) | IN(VW_OTA_DOWNLOADING));
    if (st != VW_OK) {
        return st;
    }
    size_t text_len;
    if (vw_ota_signed_text(manifest, text, sizeof text, &text_len) != VW_OK) {
        return VW_ERR_ARG; /* a malformed manifest */
    }
    if (ota->port.verify_signature(ota->port.ctx, (const uint8_t *)text, text_len, signature) !=
        1) {
        return VW_ERR_SIGNATURE;
    }
    if (!manifest->rollback &&
        manifest->model_version <= ota->meta.slot[ota->meta.active].version) {
        return VW_ERR_DOWNGRADE;
    }
    if (manifest->size > ota->config.slot_bytes) {
        return VW_ERR_TOO_LARGE;
    }
    if (ota->state == VW_OTA_DOWNLOADING && same_manifest(&ota->meta.download, manifest)) {
        return VW_OK; /* resume: the bitmap says what is already there */
    }
    /* Clear the marks first: until the record below lands, they belong to no download. */
    st = bitmap_clear(ota, chunk_count(manifest));
    if (st != VW_OK) {
        return st;
    }
    vw_ota_meta_t next = ota->meta;
    next.download = *manifest;
    next.downloading = 1;
    memset(&next.slot[1u - next.active], 0, sizeof next.slot[0]);
    st = write_meta(ota, &next, VW_OTA_DOWNLOADING);
    if (st == VW_OK) {
        ota->received = 0;
        ota->first_missing = 0;
    }
    return st;
}

vw_status_t vw_ota_chunk(vw_ota_t *ota, uint32_t offset, const uint8_t *data, uint32_t len)
{
    vw_status_t st = check_call(ota, data != NULL, IN(VW_OTA_DOWNLOADING));
    if (st != VW_OK) {
        return st;
    }
    const vw_ota_manifest_t *m = &ota->meta.download;
    if (offset >= m->size || offset % m->chunk_size != 0 ||
        len != min32(m->chunk_size, m->size - offset)) {
        return VW_ERR_RANGE;
    }
    uint32_t index = offset / m->chunk_size;
    uint32_t mark_at = ota->layout.bitmap + index / 8u;
    const unsigned bit = 1u << (index % 8u);
    uint8_t marks = 0;
    st = rd(ota, mark_at, &marks, 1);
    if (st != VW_OK || (marks & bit) != 0) {
        return st; /* a duplicate changes nothing */
    }
    /* Data first, mark second: a mark always stands for a completely written chunk. */
    st = wr(ota, ota->layout.slot[1u - ota->meta.active] + offset, data, len);
    if (st == VW_OK) {
        marks |= bit;
        st = wr(ota, mark_at, &marks, 1);
    }
    if (st == VW_OK) {
        ota->received++;
    }
    return st;
}

vw_status_t vw_ota_missing_from(vw_ota_t *ota, uint32_t from, uint32_t *offset, uint32_t *len)
{
    vw_status_t st = check_call(ota, offset != NULL && len != NULL, IN(VW_OTA_DOWNLOADING));
    if (st != VW_OK) {
        return st;
    }
    const vw_ota_manifest_t *m = &ota->meta.download;
    /* chunks before first_missing are all stored: start the scan at the later of the two */
    uint32_t start = from / m->chunk_size + (from % m->chunk_size != 0u);
    if (start < ota->first_missing) {
        start = ota->first_missing;
    }
    uint32_t missing = 0, marked = 0;
    st = bitmap_scan(ota, start, 0, &missing, &marked);
    if (st != VW_OK) {
        return st;
    }
    if (start == ota->first_missing) {
        ota->first_missing = missing;
    }
    /* none missing: missing is the chunk count, the offset the size and the length 0 */
    *offset = min32(missing * m->chunk_size, m->size);
    *len = min32(m->chunk_size, m->size - *offset);
    return VW_OK;
}

vw_status_t vw_ota_next_missing(vw_ota_t *ota, uint32_t *offset, uint32_t *len)
{
    return vw_ota_missing_from(ota, 0u, offset, len);
}

vw_status_t vw_ota_finish(vw_ota_t *ota)
{
    uint32_t offset = 0, len = 0;
    vw_status_t st = vw_ota_next_missing(ota, &offset, &len);
    if (st != VW_OK) {
        return st;
    }
    if (len != 0) {
        return VW_ERR_INCOMPLETE;
    }
    const vw_ota_manifest_t *m = &ota->meta.download;
    unsigned target = 1u - ota->meta.active;
    vw_ota_meta_t next = ota->meta;
    vw_ota_slot_info_t *s = &next.slot[target];
    st = verify_slot(ota, target, m->size, m, s->sha256);
    if (st == VW_ERR_STORAGE) {
        return st; /* nothing learnt about the blob: the download stays as it is */
    }
    s->state = st == VW_OK ? VW_OTA_SLOT_VALID : VW_OTA_SLOT_INVALID;
    s->version = m->model_version;
    s->size = m->size;
    memcpy(s->sha256, m->sha256, VW_SHA256_DIGEST_BYTES);
    end_download(&next);
    next.last_status = (uint8_t)st;
    next.last_event = VW_OTA_EVENT_FAILED;
    if (st == VW_OK) {
        next.active = (uint8_t)target;
        next.trial = 1;
        next.last_event = VW_OTA_EVENT_ACTIVATED;
    }
    vw_status_t written = write_meta(ota, &next, st == VW_OK ? VW_OTA_TRIAL : VW_OTA_IDLE);
    return written != VW_OK ? written : st;
}

vw_status_t vw_ota_confirm(vw_ota_t *ota)
{
    vw_status_t st = check_call(ota, 1, IN(VW_OTA_TRIAL));
    if (st != VW_OK) {
        return st;
    }
    vw_ota_meta_t next = ota->meta;
    next.trial = 0;
    next.last_event = VW_OTA_EVENT_CONFIRMED;
    return write_meta(ota, &next, VW_OTA_IDLE);
}

vw_status_t vw_ota_rollback(vw_ota_t *ota)
{
    vw_status_t st = check_call(ota, 1, IN(VW_OTA_IDLE) | IN(VW_OTA_TRIAL));
    if (st != VW_OK) {
        return st;
    }
    st = load_slot(ota, 1u - ota->meta.active);
    if (st != VW_OK) {
        return st == VW_ERR_STORAGE ? st : VW_ERR_NO_MODEL;
    }
    vw_ota_meta_t next = ota->meta;
    fall_back(&next);
    return write_meta(ota, &next, VW_OTA_IDLE);
}

vw_status_t vw_ota_info(const vw_ota_t *ota, vw_ota_info_t *info)
{
    if (ota == NULL || info == NULL) {
        return VW_ERR_ARG;
    }
    memset(info, 0, sizeof *info);
    if (!ota->ready) {
        return VW_OK;
    }
    info->state = ota->state;
    info->active_slot = ota->meta.active;
    info->last_event = ota->meta.last_event;
    info->last_status = ota->meta.last_status;
    memcpy(info->slot, ota->meta.slot, sizeof info->slot);
    info->seq = ota->meta.seq; /* 0 without a record: meta is as vw_ota_init zeroed it */
    if (ota->state == VW_OTA_DOWNLOADING) {
        info->received_chunks = ota->received;
        info->total_chunks = chunk_count(&ota->meta.download);
        info->download = ota->meta.download;
    }
    return VW_OK;
}
