/*
 * The Cortex-M4 test image. Every check prints one line and the run ends with a tally:
 *   vw-m4: calibration nops-<n>: pass instructions=<n>    the counting method, on n NOPs
 *   vw-m4: kernel block4: pass cases=<k>                  vw_kernel_rows on host sums
 *   vw-m4: model <name>: pass golden=<g> instructions=<i> infer=<j> macs=<m> ram=<b>
 *   vw-m4: model <name>: fail status=<vw_status_name, or count-overflow>
 *   vw-m4: replay <name>: pass ...                        the device replay (vw_m4_device.c)
 *   vw-m4: <p> passed, <f> failed
 * A model passes when it parses, binds an engine and reproduces all its golden vectors
 * (at least one). instructions: one vw_engine_run on the first golden input (int8 in,
 * reconstruction and score out); infer: one vw_engine_infer, the device's per-window
 * call (float features in, quantised with the model's folded normalisation, score out),
 * on features that quantise back to that input. Both include the call itself (a few
 * instructions). QEMU exits with status 0 only if nothing failed.
 */
#include <stddef.h>
#include <stdint.h>

#include "vw_engine.h"
#include "vw_kernel.h"
#include "vw_m4.h"
#include "vw_model.h"
#include "vw_status.h"

/* Engine working memory: 3 * VW_MODEL_MAX_DIM int16 is the most any model needs. */
static uint32_t work[3u * VW_MODEL_MAX_DIM / 2u];
static vw_model_t model;
static vw_engine_t engine;
static int8_t output[VW_MODEL_MAX_DIM];
static float features[VW_MODEL_MAX_DIM];

#define VW_M4_CALIBRATE(n)                                                                 \
    do {                                                                                   \
        uint32_t base = vw_m4_empty_region();                                              \
        vw_m4_ticks_restart();                                                             \
        uint32_t t0 = VW_M4_TICKS();                                                       \
        __asm__ volatile(".rept " #n "\n\tnop\n\t.endr");                                  \
        uint32_t t1 = VW_M4_TICKS();                                                       \
        uint32_t counted = vw_m4_instructions(t0, t1) - base;                              \
        vw_m4_verdict("calibration", "nops-" #n, counted == (n));                          \
        vw_m4_field("instructions", counted);                                              \
        vw_m4_line_end(vw_m4_out);                                                         \
    } while (0)

static void check_kernel(void)
{
    uint32_t bad = UINT32_MAX;
    for (uint32_t i = 0; i < vw_m4_kernel_case_count && bad == UINT32_MAX; i++) {
        const vw_m4_kernel_case_t *c = &vw_m4_kernel_cases[i];
        int32_t acc[4];
        vw_kernel_rows(c->w, c->x, c->n_groups, 1u, acc);
        for (uint32_t r = 0; r < 4u; r++) {
            if (acc[r] != c->acc[r]) {
                bad = i;
            }
        }
    }
    vw_m4_verdict("kernel", "block4", bad == UINT32_MAX && vw_m4_kernel_case_count > 0u);
    if (bad == UINT32_MAX) {
        vw_m4_field("cases", vw_m4_kernel_case_count);
    } else {
        vw_m4_field("case", bad);
    }
    vw_m4_line_end(vw_m4_out);
}

static void check_model(const vw_m4_model_t *m)
{
    vw_status_t st = vw_model_parse(&model, m->blob, m->bytes);
    if (st == VW_OK) {
        st = vw_engine_init(&engine, &model, work, sizeof work);
    }
    if (st == VW_OK) {
        st = model.golden_count > 0u ? vw_engine_check_golden(&engine) : VW_ERR_GOLDEN;
    }
    uint32_t run_count = 0, infer_count = 0;
    if (st == VW_OK) {
        const int8_t *input = (const int8_t *)model.golden;
        float score;
        uint32_t base = vw_m4_empty_region();
        vw_m4_ticks_restart();
        uint32_t t0 = VW_M4_TICKS();
        st = vw_engine_run(&engine, input, output, &score);
        uint32_t t1 = VW_M4_TICKS();
        run_count = vw_m4_region(base, t0, t1);
        /* q = round(x * mul + add) gives back the input for x = (q - add) / mul */
        for (uint32_t i = 0; i < model.n_features; i++) {
            features[i] = ((float)input[i] - model.in_add[i]) / model.in_mul[i];
        }
        vw_m4_ticks_restart();
        t0 = VW_M4_TICKS();
        vw_status_t infer_st = vw_engine_infer(&engine, features, &score);
        t1 = VW_M4_TICKS();
        infer_count = vw_m4_region(base, t0, t1);
        st = st != VW_OK ? st : infer_st;
    }
    int counted = run_count != UINT32_MAX && infer_count != UINT32_MAX;
    vw_m4_verdict("model", m->name, st == VW_OK && counted);
    if (st != VW_OK) {
        vw_m4_status(st);
    } else if (!counted) {
        vw_m4_line_str(vw_m4_out, " status=count-overflow");
    } else {
        vw_m4_field("golden", model.golden_count);
        vw_m4_field("instructions", run_count);
        vw_m4_field("infer", infer_count);
        vw_m4_field("macs", model.macs);
        vw_m4_field("ram", (uint32_t)vw_engine_required_bytes(&model));
    }
    vw_m4_line_end(vw_m4_out);
}

int main(void)
{
    VW_M4_CALIBRATE(1);
    VW_M4_CALIBRATE(37);
    VW_M4_CALIBRATE(1000);
    check_kernel();
    for (uint32_t i = 0; i < vw_m4_model_count; i++) {
        check_model(&vw_m4_models[i]);
    }
    if (vw_m4_replay != NULL) {
        vw_m4_device_replay(vw_m4_replay);
    }
    return vw_m4_tally() ? 0 : 1;
}
