/**
 * @file vw_port.h
 * @brief The only thing a board implements: clock, storage, signature check, publish.
 *
 * A port is a struct of function pointers plus an opaque context, so one
 * program can run several devices (the simulator and the tests do).
 *
 * Storage is one byte-addressed region of persistent memory (flash behind a
 * translation layer, FRAM, EEPROM). A write either completes or is cut off by
 * a power failure, after which any prefix of it may have reached storage;
 * the OTA code (vw_ota.h) stays bootable under exactly that model.
 */
#ifndef VW_PORT_H
#define VW_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vw_port {
    void *ctx; /**< passed back to every callback */

    /** Milliseconds since boot (monotonic, wraps at 2^32). */
    uint32_t (*now_ms)(void *ctx);

    /** Read @p len bytes at @p addr into @p buf. VW_OK or VW_ERR_STORAGE. */
    vw_status_t (*storage_read)(void *ctx, uint32_t addr, void *buf, uint32_t len);

    /** Write @p len bytes at @p addr, durable on return. VW_OK or VW_ERR_STORAGE. */
    vw_status_t (*storage_write)(void *ctx, uint32_t addr, const void *data, uint32_t len);

    /**
     * Memory-mapped, 4-byte aligned read-only view of @p len bytes at @p addr
     * (execute-in-place flash), or NULL if the range cannot be mapped.
     * The engine runs models straight from this view: no copy in RAM.
     */
    const uint8_t *(*storage_map)(void *ctx, uint32_t addr, uint32_t len);

    /**
     * Ed25519 check of a 64-byte @p signature over @p msg with the fleet's
     * model-signing public key. Returns 1 if valid, 0 otherwise.
     */
    int (*verify_signature)(void *ctx, const uint8_t *msg, size_t msg_len,
                            const uint8_t signature[64]);

    /**
     * Publish @p len bytes on the device's topic @p suffix ("event", "ota/req") at
     * QoS 1, with the retain flag for "status" (docs/protocol/ says which topics are
     * retained). VW_OK once the message is handed to the MQTT client; an error when
     * it cannot be (not connected, queue full): the caller keeps what it can.
     */
    vw_status_t (*publish)(void *ctx, const char *suffix, const uint8_t *payload, size_t len);

    /** Wall-clock time in milliseconds since the Unix epoch (UTC); 0 while unknown. */
    uint64_t (*time_ms)(void *ctx);
} vw_port_t;

#ifdef __cplusplus
}
#endif
#endif /* VW_PORT_H */
