/* Binding glue for vibewatch.edge.device: the device configuration from plain arguments
   (no struct layout on the Python side), and the counters as an array. */
#include <stddef.h>
#include <stdint.h>

#include "vw_device.h"

size_t vwpy_device_sizeof(void);
void vwpy_device_config(vw_device_config_t *config, const char *firmware, const char *capabilities,
                        uint32_t record_addr, uint16_t max_window, uint16_t max_features,
                        void *engine_work, size_t engine_work_bytes, const uint32_t settings[10],
                        float release_ratio, float calibrate_target);
size_t vwpy_device_config_sizeof(void);
void vwpy_device_counters(const vw_device_t *dev, uint32_t out[10]);

size_t vwpy_device_sizeof(void) { return sizeof(vw_device_t); }
size_t vwpy_device_config_sizeof(void) { return sizeof(vw_device_config_t); }

/* settings: k, n, m, batch_windows, batch_ms, features_every, calibrate_windows, ota_window,
   ota_timeout_ms, trial_ms. */
void vwpy_device_config(vw_device_config_t *config, const char *firmware, const char *capabilities,
                        uint32_t record_addr, uint16_t max_window, uint16_t max_features,
                        void *engine_work, size_t engine_work_bytes, const uint32_t settings[10],
                        float release_ratio, float calibrate_target)
{
    config->firmware = firmware;
    config->capabilities = capabilities;
    config->record_addr = record_addr;
    config->max_window = max_window;
    config->max_features = max_features;
    config->engine_work = engine_work;
    config->engine_work_bytes = engine_work_bytes;
    config->settings.anomaly.k = (uint8_t)(settings[0] > 255u ? 0u : settings[0]);
    config->settings.anomaly.n = (uint8_t)(settings[1] > 255u ? 0u : settings[1]);
    config->settings.anomaly.m = (uint8_t)(settings[2] > 255u ? 0u : settings[2]);
    config->settings.anomaly.release_ratio = release_ratio;
    config->settings.batch_windows = (uint16_t)(settings[3] > 65535u ? 0u : settings[3]);
    config->settings.batch_ms = settings[4];
    config->settings.features_every = (uint16_t)(settings[5] > 65535u ? 0u : settings[5]);
    config->settings.calibrate_windows = (uint16_t)(settings[6] > 65535u ? 0u : settings[6]);
    config->settings.calibrate_target = calibrate_target;
    config->settings.ota_window = (uint8_t)(settings[7] > 255u ? 0u : settings[7]);
    config->settings.ota_timeout_ms = settings[8];
    config->settings.trial_ms = settings[9];
}

void vwpy_device_counters(const vw_device_t *dev, uint32_t out[10])
{
    const vw_device_counters_t c = vw_device_counters(dev);
    out[0] = c.windows;
    out[1] = c.events;
    out[2] = c.published;
    out[3] = c.publish_failures;
    out[4] = c.readings_dropped;
    out[5] = c.unsynced_windows;
    out[6] = c.commands;
    out[7] = c.commands_unanswered;
    out[8] = c.chunk_requests;
    out[9] = c.chunks_ignored;
}
