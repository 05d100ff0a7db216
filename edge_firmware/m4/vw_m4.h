/**
 * @file vw_m4.h
 * @brief The Cortex-M4 test image for QEMU mps2-an386: console, exit, instruction counts,
 *        and the data the build generates (services/vibewatch/edge/m4.py).
 */
#ifndef VW_M4_H
#define VW_M4_H

#include <stdint.h>

#include "vw_device.h"
#include "vw_status.h"

/** Semihosting: write a NUL-terminated string to the host's console. */
void vw_m4_write(const char *text);

/** Semihosting: end the emulation; QEMU exits with status 0 if @p ok, 1 otherwise. */
__attribute__((noreturn)) void vw_m4_exit(int ok);

/** A line of console output, built piecewise and written by vw_m4_line_end. */
typedef struct vw_m4_line {
    char text[160];
    uint32_t len;
} vw_m4_line_t;

void vw_m4_line_str(vw_m4_line_t *line, const char *text);
void vw_m4_line_u32(vw_m4_line_t *line, uint32_t value);
/** Append a newline, write the line and empty it. */
void vw_m4_line_end(vw_m4_line_t *line);

/*
 * Checks: each one line, "vw-m4: <check> <name>: pass|fail" and its fields, written by
 * vw_m4_line_end(vw_m4_out) once the fields are added; vw_m4_tally() ends the report.
 */
extern vw_m4_line_t *const vw_m4_out;
/** Start a check's line and count it. */
void vw_m4_verdict(const char *check, const char *name, int ok);
/** Append " key=value". */
void vw_m4_field(const char *key, uint32_t value);
/** Append " status=<vw_status_name>". */
void vw_m4_status(vw_status_t status);
/** Write "vw-m4: <p> passed, <f> failed"; 1 if nothing failed. */
int vw_m4_tally(void);

/*
 * Instruction counts. QEMU runs the image with `-icount shift=VW_M4_ICOUNT_SHIFT`: every
 * instruction advances virtual time by 2^shift ns, and SysTick, clocked by the 25 MHz
 * SYSCLK, counts one tick per 40 ns of it. With shift 7 an instruction is 3.2 ticks,
 * so round(ticks * 40 / 128) is the exact instruction count of a region (the error of
 * the two tick readings is below one tick, 0.3125 instructions).
 */
#ifndef VW_M4_ICOUNT_SHIFT
#error "VW_M4_ICOUNT_SHIFT must match qemu's -icount shift"
#endif
#define VW_M4_NS_PER_TICK 40u

#define VW_M4_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define VW_M4_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define VW_M4_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define VW_M4_SYST_COUNTFLAG (1u << 16)

/** Start SysTick counting down from 2^24 - 1 on the processor clock, no interrupt. */
void vw_m4_ticks_init(void);

/**
 * Reload the counter to 2^24 - 1 and clear its wrap flag: a region measured after
 * this may span up to 2^24 ticks (about 5.2 million instructions).
 */
void vw_m4_ticks_restart(void);

/** Instructions between two counter readings; 0xFFFFFFFF if the counter wrapped. */
uint32_t vw_m4_instructions(uint32_t start_ticks, uint32_t end_ticks);

/** Instructions of two back-to-back counter readings, taken off every measured region. */
uint32_t vw_m4_empty_region(void);

/** Instructions between two readings less @p base; 0xFFFFFFFF if the counter wrapped. */
uint32_t vw_m4_region(uint32_t base, uint32_t start_ticks, uint32_t end_ticks);

/** Read the counter (an inline load, so a measured region holds nothing else). */
#define VW_M4_TICKS() (VW_M4_SYST_CVR)

/** One model of the image: a .vwm blob, 4-byte aligned. */
typedef struct vw_m4_model {
    const char *name;
    const uint8_t *blob;
    uint32_t bytes;
} vw_m4_model_t;

/** One check of vw_kernel_rows (one block) with sums computed on the host. */
typedef struct vw_m4_kernel_case {
    const int8_t *w;   /**< 16 * n_groups, 4-byte aligned */
    const int16_t *x;  /**< 4 * n_groups, 4-byte aligned */
    uint32_t n_groups;
    int32_t acc[4];
} vw_m4_kernel_case_t;

/** What a device replay step does (vw_m4_device.c). */
typedef enum vw_m4_step_kind {
    VW_M4_CONNECTED = 0, /**< vw_device_connected */
    VW_M4_WINDOW = 1,    /**< vw_device_window on window `index` */
    VW_M4_COMMAND = 2,   /**< vw_device_command with command `index` */
    VW_M4_POLL = 3       /**< vw_device_poll */
} vw_m4_step_kind_t;

/** One step of a device replay, with both clocks as the port gives them during it. */
typedef struct vw_m4_step {
    uint32_t kind;    /**< vw_m4_step_kind_t */
    uint32_t index;   /**< the window or the command */
    uint32_t now_ms;  /**< the port's now_ms (since boot) */
    uint64_t wall_ms; /**< the port's time_ms (wall clock) */
} vw_m4_step_t;

/** A payload of bytes. */
typedef struct vw_m4_bytes {
    const uint8_t *data;
    uint32_t len;
} vw_m4_bytes_t;

/**
 * A device replay: a model provisioned into storage in RAM, vw_ota and vw_device booted
 * on it, then recorded windows, commands and polls, each published payload printed.
 */
typedef struct vw_m4_replay {
    const char *name;
    const uint8_t *blob; /**< the model provisioned, 4-byte aligned */
    uint32_t blob_bytes;
    uint32_t slot_bytes;        /**< vw_ota_config_t */
    uint32_t sample_rate_hz;    /**< vw_ota_config_t */
    uint16_t max_window;        /**< vw_ota_config_t and vw_device_config_t */
    uint16_t max_features;      /**< vw_device_config_t */
    uint32_t engine_work_bytes; /**< shared by vw_ota and vw_device */
    const char *firmware;
    const char *capabilities;
    vw_device_settings_t settings;
    uint32_t boot_now_ms;   /**< the clocks while the device boots */
    uint64_t boot_wall_ms;
    const float *samples;   /**< n_windows windows of `window` samples */
    uint32_t window;
    uint32_t n_windows;
    const vw_m4_bytes_t *commands;
    uint32_t n_commands;
    const vw_m4_step_t *steps;
    uint32_t n_steps;
} vw_m4_replay_t;

/** Run the replay (one check line, and a line per window and per published payload). */
void vw_m4_device_replay(const vw_m4_replay_t *replay);

/* Generated at build time (vw_m4_data.c in the build directory). */
extern const vw_m4_model_t vw_m4_models[];
extern const uint32_t vw_m4_model_count;
extern const vw_m4_kernel_case_t vw_m4_kernel_cases[];
extern const uint32_t vw_m4_kernel_case_count;
/** NULL when the image has no device replay. */
extern const vw_m4_replay_t *const vw_m4_replay;

#endif /* VW_M4_H */
