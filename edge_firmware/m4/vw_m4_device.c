/*
 * The device replay of the test image: the replay's model is provisioned into storage
 * in RAM, vw_ota and vw_device boot on it as on a device, then the recorded steps run
 * (windows, commands, polls, the connection), each with the clocks the replay gives.
 * Lines, in this order for every step:
 *   vw-m4: publish <suffix> <payload>   every payload the device published, in order:
 *                                       bytes 0x21..0x7e but `\` as they are, others \xHH
 *   vw-m4: window <i> instructions=<n> published=<k>
 *                                       one vw_device_window on window i (features,
 *                                       inference, anomaly state, batching, the messages
 *                                       that fall due and the port's callbacks), the call
 *                                       included; k: payloads it published
 * and at the end the check:
 *   vw-m4: replay <name>: pass steps=<s> windows=<w> published=<p> ram=<b> device=<d>
 *          ota=<o> work=<k> engine=<e>
 *   vw-m4: replay <name>: fail step=<i, or boot> status=<vw_status_name>
 * ram = device + ota + work + engine: what one device needs besides the model (read in
 * place from storage) and the window of samples (the caller's): sizeof(vw_device_t),
 * sizeof(vw_ota_t), vw_device_required_bytes for the replay's configuration with the
 * default settings, and the engine memory of the model. The OTA bitmap and metadata
 * records live in storage; vw_ota keeps the decoded metadata in its vw_ota_t.
 */
#include <string.h>

#include "vw_device.h"
#include "vw_engine.h"
#include "vw_m4.h"
#include "vw_ota.h"

/* Room for the replay's storage, engine and device memory, and published payloads. */
#define FLASH_BYTES (160u * 1024u)
#define ENGINE_BYTES 8192u
#define WORK_BYTES (64u * 1024u)
#define LOG_BYTES (16u * 1024u)
#define LOG_ENTRIES 16u

static uint32_t flash[FLASH_BYTES / 4u]; /* the device's storage: OTA region, device records */
static uint32_t storage_bytes;
static uint32_t engine_work[ENGINE_BYTES / 4u];
static uint32_t device_work[WORK_BYTES / 4u];
static vw_ota_t ota;
static vw_device_t device;

/* The clocks the port gives, set by each step. */
static uint32_t clock_now;
static uint64_t clock_wall;

/* What the device published during the current step. */
static uint8_t log_bytes[LOG_BYTES];
static struct {
    const char *suffix;
    uint32_t offset, len;
} log_entries[LOG_ENTRIES];
static uint32_t log_used, log_count, log_lost;
static uint32_t published;

/* One line: "vw-m4: publish ", the suffix, a space, the payload four bytes a byte at most. */
static char print_line[32u + 4u * LOG_BYTES];

static uint32_t now_ms(void *ctx)
{
    (void)ctx;
    return clock_now;
}

static uint64_t time_ms(void *ctx)
{
    (void)ctx;
    return clock_wall;
}

static int in_storage(uint32_t addr, uint32_t len)
{
    return addr <= storage_bytes && len <= storage_bytes - addr;
}

static vw_status_t storage_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    (void)ctx;
    if (!in_storage(addr, len)) {
        return VW_ERR_STORAGE;
    }
    memcpy(buf, (const uint8_t *)flash + addr, len);
    return VW_OK;
}

static vw_status_t storage_write(void *ctx, uint32_t addr, const void *data, uint32_t len)
{
    (void)ctx;
    if (!in_storage(addr, len)) {
        return VW_ERR_STORAGE;
    }
    memcpy((uint8_t *)flash + addr, data, len);
    return VW_OK;
}

static const uint8_t *storage_map(void *ctx, uint32_t addr, uint32_t len)
{
    (void)ctx;
    return in_storage(addr, len) ? (const uint8_t *)flash + addr : NULL;
}

/* The replay installs nothing over the air: no signature is valid. */
static int verify_signature(void *ctx, const uint8_t *msg, size_t msg_len,
                            const uint8_t signature[64])
{
    (void)ctx;
    (void)msg;
    (void)msg_len;
    (void)signature;
    return 0;
}

/* Kept, and printed once the step is over: printing is not the device's work. */
static vw_status_t publish(void *ctx, const char *suffix, const uint8_t *payload, size_t len)
{
    (void)ctx;
    if (log_count == LOG_ENTRIES || len > LOG_BYTES - log_used) {
        log_lost++;
        return VW_OK; /* taken, as on the host; the check fails */
    }
    memcpy(log_bytes + log_used, payload, len);
    log_entries[log_count].suffix = suffix; /* the device's constant strings */
    log_entries[log_count].offset = log_used;
    log_entries[log_count].len = (uint32_t)len;
    log_used += (uint32_t)len;
    log_count++;
    return VW_OK;
}

static char *append(char *o, const char *text)
{
    while (*text != '\0') {
        *o++ = *text++;
    }
    return o;
}

static void print_log(void)
{
    static const char hex[] = "0123456789abcdef";
    for (uint32_t i = 0; i < log_count; i++) {
        char *o = append(print_line, "vw-m4: publish ");
        o = append(o, log_entries[i].suffix);
        *o++ = ' ';
        const uint8_t *p = log_bytes + log_entries[i].offset;
        for (uint32_t k = 0; k < log_entries[i].len; k++) {
            const uint8_t c = p[k];
            if (c > 0x20u && c < 0x7fu && c != '\\') {
                *o++ = (char)c;
            } else {
                *o++ = '\\';
                *o++ = 'x';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15u];
            }
        }
        *o++ = '\n';
        *o = '\0';
        vw_m4_write(print_line);
    }
    published += log_count;
    log_count = 0;
    log_used = 0;
}

static const vw_port_t port = {
    NULL, now_ms, storage_read, storage_write, storage_map, verify_signature, publish, time_ms,
};

/* Storage erased, the model provisioned into slot A, then a boot: vw_ota, vw_device. */
static vw_status_t boot(const vw_m4_replay_t *r, vw_device_config_t *config)
{
    const vw_ota_config_t ota_config = {
        0u, r->slot_bytes, r->sample_rate_hz, r->max_window, engine_work, r->engine_work_bytes,
    };
    vw_ota_layout_t layout;
    vw_status_t st = vw_ota_layout(&ota_config, &layout);
    if (st != VW_OK) {
        return st;
    }
    if (layout.end > FLASH_BYTES - VW_DEVICE_STORAGE_BYTES ||
        r->engine_work_bytes > ENGINE_BYTES) {
        return VW_ERR_TOO_LARGE;
    }
    storage_bytes = layout.end + VW_DEVICE_STORAGE_BYTES;
    memset(flash, 0xFF, storage_bytes);
    memset(&ota, 0, sizeof ota);
    st = vw_ota_init(&ota, &port, &ota_config);
    if (st == VW_ERR_NO_MODEL) {
        st = vw_ota_provision(&ota, r->blob, r->blob_bytes);
    }
    if (st == VW_OK) {
        memset(&ota, 0, sizeof ota); /* a power cycle: RAM is fresh, storage stays */
        st = vw_ota_init(&ota, &port, &ota_config);
    }
    if (st != VW_OK) {
        return st;
    }
    config->firmware = r->firmware;
    config->capabilities = r->capabilities;
    config->record_addr = layout.end;
    config->max_window = r->max_window;
    config->max_features = r->max_features;
    config->engine_work = engine_work;
    config->engine_work_bytes = r->engine_work_bytes;
    config->settings = r->settings;
    const size_t need = vw_device_required_bytes(config);
    if (need == 0u) {
        return VW_ERR_ARG;
    }
    if (need > sizeof device_work) {
        return VW_ERR_TOO_LARGE;
    }
    return vw_device_init(&device, &port, config, &ota, device_work, need);
}

static vw_status_t run_step(const vw_m4_replay_t *r, uint32_t i)
{
    const vw_m4_step_t *step = &r->steps[i];
    clock_now = step->now_ms;
    clock_wall = step->wall_ms;
    vw_status_t st = VW_ERR_ARG;
    uint32_t counted = 0;
    if (step->kind == VW_M4_CONNECTED) {
        st = vw_device_connected(&device);
    } else if (step->kind == VW_M4_WINDOW && step->index < r->n_windows) {
        const float *samples = r->samples + (size_t)step->index * r->window;
        const uint32_t base = vw_m4_empty_region();
        vw_m4_ticks_restart();
        const uint32_t t0 = VW_M4_TICKS();
        st = vw_device_window(&device, samples);
        const uint32_t t1 = VW_M4_TICKS();
        counted = vw_m4_region(base, t0, t1);
    } else if (step->kind == VW_M4_COMMAND && step->index < r->n_commands) {
        const vw_m4_bytes_t *c = &r->commands[step->index];
        st = vw_device_command(&device, c->data, c->len);
    } else if (step->kind == VW_M4_POLL) {
        st = vw_device_poll(&device);
    }
    const uint32_t count = log_count;
    print_log();
    if (step->kind == VW_M4_WINDOW) {
        vw_m4_line_str(vw_m4_out, "vw-m4: window ");
        vw_m4_line_u32(vw_m4_out, step->index);
        vw_m4_field("instructions", counted);
        vw_m4_field("published", count);
        vw_m4_line_end(vw_m4_out);
    }
    if (st == VW_OK && (counted == UINT32_MAX || log_lost != 0u)) {
        st = VW_ERR_BUFFER; /* the count wrapped, or the log overflowed */
    }
    return st;
}

void vw_m4_device_replay(const vw_m4_replay_t *r)
{
    vw_device_config_t config;
    clock_now = r->boot_now_ms;
    clock_wall = r->boot_wall_ms;
    vw_status_t st = boot(r, &config);
    const int booted = st == VW_OK;
    uint32_t i = 0;
    while (st == VW_OK && i < r->n_steps) {
        st = run_step(r, i);
        i += st == VW_OK;
    }
    const vw_model_t *model = NULL;
    if (st == VW_OK) {
        st = vw_ota_model(&ota, &model);
    }
    vw_m4_verdict("replay", r->name, st == VW_OK);
    if (st != VW_OK) {
        if (booted) {
            vw_m4_field("step", i);
        } else {
            vw_m4_line_str(vw_m4_out, " step=boot");
        }
        vw_m4_status(st);
        vw_m4_line_end(vw_m4_out);
        return;
    }
    config.settings = vw_device_defaults();
    const uint32_t work = (uint32_t)vw_device_required_bytes(&config);
    const uint32_t engine = (uint32_t)vw_engine_required_bytes(model);
    const uint32_t windows = vw_device_counters(&device).windows;
    vw_m4_field("steps", r->n_steps);
    vw_m4_field("windows", windows);
    vw_m4_field("published", published);
    vw_m4_field("ram", (uint32_t)(sizeof device + sizeof ota) + work + engine);
    vw_m4_field("device", (uint32_t)sizeof device);
    vw_m4_field("ota", (uint32_t)sizeof ota);
    vw_m4_field("work", work);
    vw_m4_field("engine", engine);
    vw_m4_line_end(vw_m4_out);
}
