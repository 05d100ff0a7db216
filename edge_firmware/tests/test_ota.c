/*
 * OTA slots on an in-memory port: the state machine, every refusal, and a
 * power cut (clean or tearing the write) at every storage write of an install.
 * The port and the model blobs are vw_test_port.h's; real Ed25519 is exercised
 * from Python (tests/unit/test_edge_ota.py).
 */
#include <string.h>

#include "vw_ota.h"
#include "vw_test.h"

#define SLOT_BYTES 1024u
#define STORAGE_BYTES 4096u
#define RATE 8000u
#define CHUNK 64u

#include "vw_test_port.h"

static vw_port_t port_of(mem_port_t *p)
{
    vw_port_t port = {p, NULL, mem_read, mem_write, mem_map, mem_verify, NULL, NULL};
    return port;
}

static vw_ota_config_t config(void)
{
    vw_ota_config_t c = {0, SLOT_BYTES, RATE, 1024, engine_work, sizeof engine_work};
    return c;
}

/* Power on: a fresh vw_ota_t over what storage holds. */
static vw_status_t boot(vw_ota_t *ota, mem_port_t *p)
{
    vw_port_t port = port_of(p);
    vw_ota_config_t c = config();
    p->dead = 0;
    p->writes = 0;
    p->cut_at = 0;
    return vw_ota_init(ota, &port, &c);
}

static vw_ota_manifest_t manifest_for(const uint8_t *blob, uint32_t size, uint32_t version)
{
    vw_ota_manifest_t m;
    memset(&m, 0, sizeof m);
    memcpy(m.model_id, "fan", 4);
    m.model_version = version;
    m.size = size;
    m.chunk_size = CHUNK;
    vw_sha256(blob, size, m.sha256);
    return m;
}

static void sign(const vw_ota_manifest_t *m, const char *key, uint8_t sig[64])
{
    char text[VW_OTA_SIGNED_TEXT_MAX];
    size_t len = 0;
    vw_ota_signed_text(m, text, sizeof text, &len);
    test_sign(key, (const uint8_t *)text, len, sig);
}

static uint32_t active_version(const vw_ota_t *ota)
{
    const vw_model_t *m = NULL;
    return vw_ota_model(ota, &m) == VW_OK ? m->version : 0u;
}

/* Signed begin, every missing chunk, finish: the status of the first failing step. */
static vw_status_t install(vw_ota_t *ota, const uint8_t *blob, const vw_ota_manifest_t *m)
{
    uint8_t sig[64];
    uint32_t offset = 0, len = 0;
    sign(m, "test-key", sig);
    vw_status_t st = vw_ota_begin(ota, m, sig);
    while (st == VW_OK && (st = vw_ota_next_missing(ota, &offset, &len)) == VW_OK && len != 0) {
        st = vw_ota_chunk(ota, offset, blob + offset, len);
    }
    return st == VW_OK ? vw_ota_finish(ota) : st;
}

static uint32_t v1[128], v2[128], v3[128];
static uint32_t v1_len, v2_len, v3_len;

/* A device provisioned with v1, just booted. */
static void provisioned(vw_ota_t *ota, mem_port_t *p)
{
    memset(p, 0, sizeof *p);
    p->key = "test-key";
    VW_CHECK_EQ(boot(ota, p), VW_ERR_NO_MODEL);
    VW_CHECK_EQ(vw_ota_provision(ota, (const uint8_t *)v1, v1_len), VW_OK);
    VW_CHECK_EQ(boot(ota, p), VW_OK);
}

static uint8_t ota_state(const vw_ota_t *ota)
{
    vw_ota_info_t info;
    return vw_ota_info(ota, &info) == VW_OK ? info.state : 0xffu;
}

/* ---- tests -------------------------------------------------------------- */

static void test_layout_and_text(void)
{
    vw_ota_config_t c = config();
    vw_ota_layout_t l;
    VW_CHECK_EQ(vw_ota_layout(&c, &l), VW_OK);
    VW_CHECK_EQ(l.meta[1], VW_OTA_META_BYTES);
    VW_CHECK_EQ(l.bitmap, 2 * VW_OTA_META_BYTES);
    VW_CHECK_EQ(l.bitmap_bytes, 2);
    VW_CHECK_EQ(l.slot[0], 768);
    VW_CHECK_EQ(l.slot[1], 768 + SLOT_BYTES);
    VW_CHECK(l.end <= STORAGE_BYTES);
    c.slot_bytes = 1022;
    VW_CHECK_EQ(vw_ota_layout(&c, &l), VW_ERR_ARG);
    c.slot_bytes = VW_MODEL_MAX_BYTES;
    c.storage_base = UINT32_MAX - 1003u;
    VW_CHECK_EQ(vw_ota_layout(&c, &l), VW_ERR_ARG);

    vw_ota_manifest_t m;
    memset(&m, 0, sizeof m);
    memcpy(m.model_id, "pump-7", 7);
    m.model_version = 42;
    m.size = 4096;
    m.chunk_size = 512;
    m.sha256[0] = 0xab;
    m.sha256[31] = 0x0f;
    char text[VW_OTA_SIGNED_TEXT_MAX];
    size_t len = 0;
    const char *want = "vw-model-v1\npump-7\n42\n4096\nab00000000000000000000000000000000000000"
                       "00000000000000000000000f\n";
    VW_CHECK_EQ(vw_ota_signed_text(&m, text, sizeof text, &len), VW_OK);
    VW_CHECK(len == strlen(want) && memcmp(text, want, len) == 0);
    m.rollback = 1;
    VW_CHECK_EQ(vw_ota_signed_text(&m, text, sizeof text, &len), VW_OK);
    VW_CHECK(len == strlen(want) + 9 && memcmp(text + len - 9, "rollback\n", 9) == 0);
    VW_CHECK_EQ(vw_ota_signed_text(&m, text, 20, &len), VW_ERR_BUFFER);
    VW_CHECK_EQ(vw_ota_signed_text(&m, text, strlen(want) + 8, &len), VW_ERR_BUFFER);
    VW_CHECK_EQ(vw_ota_signed_text(&m, text, strlen(want) + 9, &len), VW_OK);
    m.rollback = 0;
    m.model_version = 0;
    m.size = 1;
    const char *zero = "vw-model-v1\npump-7\n0\n1\nab00000000000000000000000000000000000000"
                       "00000000000000000000000f\n";
    VW_CHECK_EQ(vw_ota_signed_text(&m, text, sizeof text, &len), VW_OK);
    VW_CHECK(len == strlen(zero) && memcmp(text, zero, len) == 0);
    /* The longest manifest fits VW_OTA_SIGNED_TEXT_MAX. */
    memset(m.model_id, 'x', VW_MODEL_MAX_ID);
    m.model_version = UINT32_MAX;
    m.size = VW_MODEL_MAX_BYTES;
    VW_CHECK_EQ(vw_ota_signed_text(&m, text, sizeof text, &len), VW_OK);
    m.model_id[3] = '/';
    VW_CHECK_EQ(vw_ota_signed_text(&m, text, sizeof text, &len), VW_ERR_ARG);
}

static void test_provision(void)
{
    static mem_port_t p;
    vw_ota_t ota;
    vw_ota_info_t info;
    const vw_model_t *model = NULL;
    uint8_t sig[64] = {0};
    vw_ota_manifest_t m = manifest_for((const uint8_t *)v2, v2_len, 2);

    memset(&p, 0, sizeof p);
    p.key = "test-key";
    VW_CHECK_EQ(boot(&ota, &p), VW_ERR_NO_MODEL);
    VW_CHECK_EQ(vw_ota_model(&ota, &model), VW_ERR_NO_MODEL);
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_ERR_STATE);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)v1, SLOT_BYTES + 4), VW_ERR_TOO_LARGE);
    static uint32_t bad[128];
    uint32_t bad_len = build_blob(bad, 1, RATE, GOLDEN_WRONG);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)bad, bad_len), VW_ERR_GOLDEN);
    bad_len = build_blob(bad, 1, RATE, GOLDEN_NONE);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)bad, bad_len), VW_ERR_GOLDEN);
    bad_len = build_blob(bad, 1, RATE / 2, GOLDEN_RIGHT);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)bad, bad_len), VW_ERR_SPEC);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)v1, v1_len - 4), VW_ERR_TRUNCATED);
    VW_CHECK_EQ(boot(&ota, &p), VW_ERR_NO_MODEL); /* refusals persisted nothing */

    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)v1, v1_len), VW_OK);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)v1, v1_len), VW_ERR_STATE);
    VW_CHECK_EQ(active_version(&ota), 1);
    VW_CHECK_EQ(boot(&ota, &p), VW_OK);
    VW_CHECK_EQ(vw_ota_model(&ota, &model), VW_OK);
    VW_CHECK(strcmp(model->id, "fan") == 0 && model->version == 1);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.state, VW_OTA_IDLE);
    VW_CHECK_EQ(info.active_slot, 0);
    VW_CHECK_EQ(info.slot[0].state, VW_OTA_SLOT_VALID);
    VW_CHECK_EQ(info.slot[1].state, VW_OTA_SLOT_EMPTY);
    uint8_t digest[32];
    vw_sha256(v1, v1_len, digest);
    VW_CHECK(memcmp(info.slot[0].sha256, digest, 32) == 0);
}

static void test_begin_refusals(void)
{
    static mem_port_t p;
    vw_ota_t ota;
    uint8_t sig[64];
    vw_ota_manifest_t m = manifest_for((const uint8_t *)v2, v2_len, 2);
    provisioned(&ota, &p);

    sign(&m, "other-key", sig);
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_ERR_SIGNATURE);
    sign(&m, "test-key", sig);
    m.model_version = 3; /* signed text no longer matches */
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_ERR_SIGNATURE);
    m.model_version = 1;
    sign(&m, "test-key", sig);
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_ERR_DOWNGRADE);
    m.size = SLOT_BYTES + 4;
    m.model_version = 9;
    sign(&m, "test-key", sig);
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_ERR_TOO_LARGE);
    m.chunk_size = 16;
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_ERR_ARG);
    m.chunk_size = CHUNK;
    m.rollback = 2;
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_ERR_ARG);
    VW_CHECK_EQ(vw_ota_begin(&ota, NULL, sig), VW_ERR_ARG);
    VW_CHECK_EQ(p.writes, 0); /* refusals write nothing */

    uint32_t offset = 0, len = 0;
    VW_CHECK_EQ(vw_ota_chunk(&ota, 0, (const uint8_t *)v2, CHUNK), VW_ERR_STATE);
    VW_CHECK_EQ(vw_ota_next_missing(&ota, &offset, &len), VW_ERR_STATE);
    VW_CHECK_EQ(vw_ota_finish(&ota), VW_ERR_STATE);
    VW_CHECK_EQ(vw_ota_confirm(&ota), VW_ERR_STATE);

    /* A signed rollback manifest may install an older (or the same) version. */
    vw_ota_manifest_t r = manifest_for((const uint8_t *)v1, v1_len, 1);
    r.rollback = 1;
    VW_CHECK_EQ(install(&ota, (const uint8_t *)v1, &r), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 1);
    VW_CHECK_EQ(vw_ota_confirm(&ota), VW_OK);
}

static void test_chunks_and_resume(void)
{
    static mem_port_t p;
    vw_ota_t ota;
    vw_ota_info_t info;
    uint8_t sig[64];
    uint32_t offset = 0, len = 0;
    const uint8_t *blob = (const uint8_t *)v2;
    vw_ota_manifest_t m = manifest_for(blob, v2_len, 2);
    uint32_t n = (v2_len + CHUNK - 1) / CHUNK;
    provisioned(&ota, &p);
    sign(&m, "test-key", sig);
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_OK);

    /* Range checks. */
    VW_CHECK_EQ(vw_ota_chunk(&ota, 1, blob + 1, CHUNK), VW_ERR_RANGE);
    VW_CHECK_EQ(vw_ota_chunk(&ota, 0, blob, CHUNK - 1), VW_ERR_RANGE);
    VW_CHECK_EQ(vw_ota_chunk(&ota, n * CHUNK, blob, CHUNK), VW_ERR_RANGE);
    VW_CHECK_EQ(vw_ota_chunk(&ota, (n - 1) * CHUNK, blob + (n - 1) * CHUNK, CHUNK),
                v2_len % CHUNK ? VW_ERR_RANGE : VW_OK);
    VW_CHECK_EQ(vw_ota_chunk(&ota, 0, NULL, CHUNK), VW_ERR_ARG);

    /* The last chunk first, then chunk 1 twice. */
    uint32_t last = (n - 1) * CHUNK;
    VW_CHECK_EQ(vw_ota_chunk(&ota, last, blob + last, v2_len - last), VW_OK);
    VW_CHECK_EQ(vw_ota_chunk(&ota, CHUNK, blob + CHUNK, CHUNK), VW_OK);
    long writes = p.writes;
    VW_CHECK_EQ(vw_ota_chunk(&ota, CHUNK, blob + CHUNK, CHUNK), VW_OK);
    VW_CHECK_EQ(p.writes, writes); /* a duplicate writes nothing */
    VW_CHECK_EQ(vw_ota_next_missing(&ota, &offset, &len), VW_OK);
    VW_CHECK_EQ(offset, 0);
    VW_CHECK_EQ(len, CHUNK);
    VW_CHECK_EQ(vw_ota_finish(&ota), VW_ERR_INCOMPLETE);

    /* Reset: the download is restored from storage, with its progress. */
    VW_CHECK_EQ(boot(&ota, &p), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 1);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.state, VW_OTA_DOWNLOADING);
    VW_CHECK_EQ(info.received_chunks, 2);
    VW_CHECK_EQ(info.total_chunks, n);
    VW_CHECK_EQ(info.download.model_version, 2);
    /* The same manifest resumes without a write; chunks 0 and 2.. remain. */
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_OK);
    VW_CHECK_EQ(p.writes, 0);
    VW_CHECK_EQ(vw_ota_next_missing(&ota, &offset, &len), VW_OK);
    VW_CHECK_EQ(offset, 0);
    VW_CHECK_EQ(vw_ota_chunk(&ota, 0, blob, CHUNK), VW_OK);
    VW_CHECK_EQ(vw_ota_next_missing(&ota, &offset, &len), VW_OK);
    VW_CHECK_EQ(offset, 2 * CHUNK);

    /* A different manifest (v3) restarts from nothing. */
    vw_ota_manifest_t m3 = manifest_for((const uint8_t *)v3, v3_len, 3);
    sign(&m3, "test-key", sig);
    VW_CHECK_EQ(vw_ota_begin(&ota, &m3, sig), VW_OK);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.received_chunks, 0);
    VW_CHECK_EQ(vw_ota_next_missing(&ota, &offset, &len), VW_OK);
    VW_CHECK_EQ(offset, 0);
    /* Chunks in reverse order. */
    for (uint32_t i = (v3_len + CHUNK - 1) / CHUNK; i-- > 0;) {
        uint32_t at = i * CHUNK;
        uint32_t size = v3_len - at < CHUNK ? v3_len - at : CHUNK;
        VW_CHECK_EQ(vw_ota_chunk(&ota, at, (const uint8_t *)v3 + at, size), VW_OK);
    }
    VW_CHECK_EQ(vw_ota_next_missing(&ota, &offset, &len), VW_OK);
    VW_CHECK_EQ(len, 0);
    VW_CHECK_EQ(vw_ota_finish(&ota), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 3);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.state, VW_OTA_TRIAL);
    VW_CHECK_EQ(info.last_event, VW_OTA_EVENT_ACTIVATED);
    /* No new install while on trial. */
    VW_CHECK_EQ(vw_ota_begin(&ota, &m, sig), VW_ERR_STATE);
    VW_CHECK_EQ(vw_ota_confirm(&ota), VW_OK);
    VW_CHECK_EQ(vw_ota_confirm(&ota), VW_ERR_STATE);
    VW_CHECK_EQ(boot(&ota, &p), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 3);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.active_slot, 1);
    VW_CHECK_EQ(info.slot[0].state, VW_OTA_SLOT_VALID); /* v1 on standby */
    VW_CHECK_EQ(info.last_event, VW_OTA_EVENT_CONFIRMED);
    /* The next install goes into slot A. */
    static uint32_t v4[128];
    uint32_t v4_len = build_blob(v4, 4, RATE, GOLDEN_RIGHT);
    m = manifest_for((const uint8_t *)v4, v4_len, 4);
    VW_CHECK_EQ(install(&ota, (const uint8_t *)v4, &m), VW_OK);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.active_slot, 0);
}

static void test_trial_falls_back(void)
{
    static mem_port_t p;
    vw_ota_t ota;
    vw_ota_info_t info;
    vw_ota_manifest_t m = manifest_for((const uint8_t *)v2, v2_len, 2);
    provisioned(&ota, &p);
    VW_CHECK_EQ(install(&ota, (const uint8_t *)v2, &m), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 2);
    VW_CHECK_EQ(boot(&ota, &p), VW_OK); /* reset before confirm */
    VW_CHECK_EQ(active_version(&ota), 1);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.state, VW_OTA_IDLE);
    VW_CHECK_EQ(info.active_slot, 0);
    VW_CHECK_EQ(info.slot[1].state, VW_OTA_SLOT_INVALID);
    VW_CHECK_EQ(info.last_event, VW_OTA_EVENT_ROLLED_BACK);
    VW_CHECK_EQ(vw_ota_confirm(&ota), VW_ERR_STATE);
    VW_CHECK_EQ(boot(&ota, &p), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 1);
    VW_CHECK_EQ(p.writes, 0); /* settled: a second boot writes nothing */
}

static void check_refused(const uint8_t *blob, vw_ota_manifest_t m, vw_status_t want)
{
    static mem_port_t p;
    vw_ota_t ota;
    vw_ota_info_t info;
    provisioned(&ota, &p);
    VW_CHECK_EQ(install(&ota, blob, &m), want);
    VW_CHECK_EQ(active_version(&ota), 1);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.state, VW_OTA_IDLE);
    VW_CHECK_EQ(info.slot[1].state, VW_OTA_SLOT_INVALID);
    VW_CHECK_EQ(info.last_event, VW_OTA_EVENT_FAILED);
    VW_CHECK_EQ(info.last_status, want);
    VW_CHECK_EQ(boot(&ota, &p), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 1);
}

static void test_finish_refusals(void)
{
    static uint32_t blob[128];
    uint8_t *b = (uint8_t *)blob;
    vw_ota_manifest_t m = manifest_for((const uint8_t *)v2, v2_len, 2);

    memcpy(blob, v2, v2_len);
    b[100] ^= 0x10; /* the manifest still has v2's hash */
    check_refused(b, m, VW_ERR_HASH);

    m = manifest_for((const uint8_t *)v2, v2_len - 8, 2); /* signed, but cut short */
    check_refused((const uint8_t *)v2, m, VW_ERR_TRUNCATED);

    m = manifest_for((const uint8_t *)v2, v2_len, 5); /* blob says 2 */
    check_refused((const uint8_t *)v2, m, VW_ERR_FORMAT);

    uint32_t len = build_blob(blob, 2, RATE * 2, GOLDEN_RIGHT);
    check_refused(b, manifest_for(b, len, 2), VW_ERR_SPEC);

    len = build_blob(blob, 2, RATE, GOLDEN_WRONG);
    check_refused(b, manifest_for(b, len, 2), VW_ERR_GOLDEN);

    memcpy(blob, v2, v2_len);
    b[0] = 'X';
    check_refused(b, manifest_for(b, v2_len, 2), VW_ERR_MAGIC);
}

/* Power fails during write k (0..tear bytes of it land): the device boots v1 or v2. */
static void test_power_cuts(void)
{
    static mem_port_t base, p;
    vw_ota_t ota;
    vw_ota_manifest_t m = manifest_for((const uint8_t *)v2, v2_len, 2);
    provisioned(&ota, &base);

    /* Writes of a whole install + confirm, uninterrupted. */
    p = base;
    VW_CHECK_EQ(boot(&ota, &p), VW_OK);
    VW_CHECK_EQ(install(&ota, (const uint8_t *)v2, &m), VW_OK);
    VW_CHECK_EQ(vw_ota_confirm(&ota), VW_OK);
    long total = p.writes;
    VW_CHECK(total >= 2 * (long)((v2_len + CHUNK - 1) / CHUNK) + 3);

    static const uint32_t tears[] = {0, 1, 13, 255, 100000};
    int all_bootable = 1, all_completed = 1, saw_v1 = 0, saw_v2 = 0;
    for (long k = 1; k <= total; k++) {
        for (size_t t = 0; t < sizeof tears / sizeof tears[0]; t++) {
            p = base;
            VW_CHECK_EQ(boot(&ota, &p), VW_OK);
            p.cut_at = k;
            p.tear = tears[t];
            vw_status_t st = install(&ota, (const uint8_t *)v2, &m);
            if (st == VW_OK) {
                st = vw_ota_confirm(&ota);
            }
            all_bootable &= st == VW_ERR_STORAGE;
            /* Power comes back. */
            st = boot(&ota, &p);
            uint32_t v = active_version(&ota);
            all_bootable &= st == VW_OK && (v == 1 || v == 2);
            saw_v1 |= v == 1;
            saw_v2 |= v == 2;
            /* And the install completes from there (v2 after a boot is confirmed). */
            st = VW_OK;
            if (v == 1) {
                st = install(&ota, (const uint8_t *)v2, &m);
                if (st == VW_OK) {
                    st = vw_ota_confirm(&ota);
                }
            }
            all_completed &= st == VW_OK && boot(&ota, &p) == VW_OK && active_version(&ota) == 2;
        }
    }
    VW_CHECK(all_bootable);
    VW_CHECK(all_completed);
    VW_CHECK(saw_v1 && saw_v2);
}

/* Damaged metadata or bitmap never crashes and never boots a bad model. */
static void test_damaged_storage(void)
{
    static mem_port_t base, p;
    vw_ota_t ota;
    vw_ota_info_t info;
    vw_ota_manifest_t m = manifest_for((const uint8_t *)v2, v2_len, 2);
    provisioned(&ota, &base);
    VW_CHECK_EQ(install(&ota, (const uint8_t *)v2, &m), VW_OK);
    VW_CHECK_EQ(vw_ota_confirm(&ota), VW_OK);
    vw_ota_layout_t l;
    vw_ota_config_t c = config();
    vw_ota_layout(&c, &l);

    /* Every single-byte change of either record: boots v1 or v2, or nothing bootable. */
    int ok = 1;
    for (uint32_t at = 0; at < 2 * VW_OTA_META_BYTES; at++) {
        p = base;
        bytes_of(&p)[l.meta[0] + at] ^= 0x5a;
        vw_status_t st = boot(&ota, &p);
        uint32_t v = active_version(&ota);
        ok &= (st == VW_OK && (v == 1 || v == 2)) || st == VW_ERR_NO_MODEL;
    }
    VW_CHECK(ok);

    /* Well-sealed records of a download in progress, with fields changed. */
    static mem_port_t mid;
    uint8_t sig[64];
    vw_ota_manifest_t m3 = manifest_for((const uint8_t *)v3, v3_len, 3);
    sign(&m3, "test-key", sig);
    mid = base;
    VW_CHECK_EQ(boot(&ota, &mid), VW_OK);
    VW_CHECK_EQ(vw_ota_begin(&ota, &m3, sig), VW_OK);
    VW_CHECK_EQ(vw_ota_chunk(&ota, CHUNK, (const uint8_t *)v3 + CHUNK, CHUNK), VW_OK);
    VW_CHECK_EQ(boot(&ota, &mid), VW_OK);
    VW_CHECK_EQ(ota_state(&ota), VW_OTA_DOWNLOADING);
    uint32_t newest = l.meta[ota.meta_index];
    static const uint32_t fields[] = {12, 13, 14, 15, 20, 28, 64, 72, 108, 112, 116, 120, 121, 124};
    ok = 1;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        for (unsigned value = 1; value < 256; value += 37) {
            p = mid;
            uint8_t *rec = bytes_of(&p) + newest;
            rec[fields[f]] = (uint8_t)(rec[fields[f]] + value);
            out_t crc_at = {rec + VW_OTA_META_BYTES - 4};
            emit(&crc_at, vw_crc32_update(0, rec, VW_OTA_META_BYTES - 4), 4);
            vw_status_t st = boot(&ota, &p);
            ok &= (st == VW_OK && active_version(&ota) >= 1) || st == VW_ERR_NO_MODEL;
            uint32_t offset = 0, len = 0;
            if (ota_state(&ota) == VW_OTA_DOWNLOADING) {
                ok &= vw_ota_next_missing(&ota, &offset, &len) == VW_OK;
                ok &= vw_ota_finish(&ota) != VW_OK;
            }
        }
    }
    VW_CHECK(ok);

    /* A sealed record with a byte no field uses set, or download fields without a download,
     * is not one the device writes: boot takes the older record (the trial of v2, which
     * falls back to v1). */
    VW_CHECK_EQ(boot(&ota, &base), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 2);
    uint32_t confirmed = l.meta[ota.meta_index];
    static const uint32_t unused[] = {17, 19, 21, 23, 67, 122, 123, 220, 251, 108, 120, 124, 156};
    ok = 1;
    for (size_t u = 0; u < sizeof unused / sizeof unused[0]; u++) {
        p = base;
        uint8_t *rec = bytes_of(&p) + confirmed;
        rec[unused[u]] = 1;
        out_t crc_at = {rec + VW_OTA_META_BYTES - 4};
        emit(&crc_at, vw_crc32_update(0, rec, VW_OTA_META_BYTES - 4), 4);
        ok &= boot(&ota, &p) == VW_OK && active_version(&ota) == 1;
    }
    VW_CHECK(ok);

    /* Both records gone: nothing bootable, provisioning possible again. */
    p = base;
    memset(bytes_of(&p) + l.meta[0], 0xff, 2 * VW_OTA_META_BYTES);
    VW_CHECK_EQ(boot(&ota, &p), VW_ERR_NO_MODEL);

    /* A bitmap full of marks: finish finds the hash wrong and keeps v2. */
    p = mid;
    VW_CHECK_EQ(boot(&ota, &p), VW_OK);
    memset(bytes_of(&p) + l.bitmap, 0xff, l.bitmap_bytes);
    VW_CHECK_EQ(vw_ota_finish(&ota), VW_ERR_HASH);
    VW_CHECK_EQ(active_version(&ota), 2);

    /* The active slot damaged: boot falls back to the standby slot (v1). */
    p = base;
    bytes_of(&p)[l.slot[1] + 80] ^= 1;
    VW_CHECK_EQ(boot(&ota, &p), VW_OK);
    VW_CHECK_EQ(active_version(&ota), 1);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.slot[1].state, VW_OTA_SLOT_INVALID);
    VW_CHECK_EQ(info.last_event, VW_OTA_EVENT_ROLLED_BACK);
    /* Both slots damaged: no model. */
    bytes_of(&p)[l.slot[0] + 80] ^= 1;
    VW_CHECK_EQ(boot(&ota, &p), VW_ERR_NO_MODEL);
}

static void test_arguments(void)
{
    static mem_port_t p;
    vw_ota_t ota;
    vw_port_t port = port_of(&p);
    vw_ota_config_t c = config();
    vw_ota_info_t info;
    memset(&p, 0, sizeof p);
    VW_CHECK_EQ(vw_ota_init(NULL, &port, &c), VW_ERR_ARG);
    port.verify_signature = NULL;
    VW_CHECK_EQ(vw_ota_init(&ota, &port, &c), VW_ERR_ARG);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)v1, v1_len), VW_ERR_STATE);
    VW_CHECK_EQ(vw_ota_info(&ota, &info), VW_OK);
    VW_CHECK_EQ(info.state, VW_OTA_NO_MODEL);
    port = port_of(&p);
    c.max_window = 128;
    VW_CHECK_EQ(vw_ota_init(&ota, &port, &c), VW_ERR_ARG);
    c = config();
    c.engine_work = NULL;
    VW_CHECK_EQ(vw_ota_init(&ota, &port, &c), VW_ERR_ARG);
    /* Storage that cannot be read: nothing is allowed, not even provisioning. */
    c = config();
    p.dead = 1;
    VW_CHECK_EQ(vw_ota_init(&ota, &port, &c), VW_ERR_STORAGE);
    VW_CHECK_EQ(vw_ota_provision(&ota, (const uint8_t *)v1, v1_len), VW_ERR_STATE);
    VW_CHECK_EQ(vw_ota_info(NULL, &info), VW_ERR_ARG);
    VW_CHECK_EQ(vw_ota_confirm(NULL), VW_ERR_ARG);
    VW_CHECK_EQ(vw_ota_finish(NULL), VW_ERR_ARG);
}

int main(void)
{
    v1_len = build_blob(v1, 1, RATE, GOLDEN_RIGHT);
    v2_len = build_blob(v2, 2, RATE, GOLDEN_RIGHT);
    v3_len = build_blob(v3, 3, RATE, GOLDEN_RIGHT);
    VW_CHECK(v1_len > 3 * CHUNK && v1_len % CHUNK != 0);
    test_layout_and_text();
    test_provision();
    test_begin_refusals();
    test_chunks_and_resume();
    test_trial_falls_back();
    test_finish_refusals();
    test_power_cuts();
    test_damaged_storage();
    test_arguments();
    return vw_test_report("test_ota");
}
