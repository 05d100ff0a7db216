/* Semihosting console and exit, line formatting, checks, and SysTick instruction counting. */
#include "vw_m4.h"

/* Semihosting operations (Arm semihosting specification) and exit reasons. */
#define VW_M4_SYS_WRITE0 0x04u
#define VW_M4_SYS_EXIT 0x18u
#define VW_M4_ADP_APPLICATION_EXIT 0x20026u
#define VW_M4_ADP_RUNTIME_ERROR 0x20023u

static void semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

void vw_m4_write(const char *text)
{
    semihost(VW_M4_SYS_WRITE0, text);
}

void vw_m4_exit(int ok)
{
    /* On 32-bit targets SYS_EXIT takes the reason itself, not a parameter block. */
    uint32_t reason = ok ? VW_M4_ADP_APPLICATION_EXIT : VW_M4_ADP_RUNTIME_ERROR;
    semihost(VW_M4_SYS_EXIT, (const void *)(uintptr_t)reason);
    for (;;) {
    }
}

void vw_m4_line_str(vw_m4_line_t *line, const char *text)
{
    while (*text != '\0' && line->len + 2u < sizeof line->text) {
        line->text[line->len++] = *text++;
    }
}

void vw_m4_line_u32(vw_m4_line_t *line, uint32_t value)
{
    char digits[11];
    uint32_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    while (n > 0u && line->len + 2u < sizeof line->text) {
        line->text[line->len++] = digits[--n];
    }
}

void vw_m4_line_end(vw_m4_line_t *line)
{
    line->text[line->len++] = '\n';
    line->text[line->len] = '\0';
    vw_m4_write(line->text);
    line->len = 0;
}

static vw_m4_line_t out;
static uint32_t passed, failed;

vw_m4_line_t *const vw_m4_out = &out;

void vw_m4_verdict(const char *check, const char *name, int ok)
{
    vw_m4_line_str(&out, "vw-m4: ");
    vw_m4_line_str(&out, check);
    vw_m4_line_str(&out, " ");
    vw_m4_line_str(&out, name);
    vw_m4_line_str(&out, ok ? ": pass" : ": fail");
    if (ok) {
        passed++;
    } else {
        failed++;
    }
}

void vw_m4_field(const char *key, uint32_t value)
{
    vw_m4_line_str(&out, " ");
    vw_m4_line_str(&out, key);
    vw_m4_line_str(&out, "=");
    vw_m4_line_u32(&out, value);
}

void vw_m4_status(vw_status_t status)
{
    vw_m4_line_str(&out, " status=");
    vw_m4_line_str(&out, vw_status_name(status));
}

int vw_m4_tally(void)
{
    vw_m4_line_str(&out, "vw-m4: ");
    vw_m4_line_u32(&out, passed);
    vw_m4_line_str(&out, " passed, ");
    vw_m4_line_u32(&out, failed);
    vw_m4_line_str(&out, " failed");
    vw_m4_line_end(&out);
    return failed == 0u;
}

void vw_m4_ticks_init(void)
{
    VW_M4_SYST_RVR = 0xFFFFFFu;
    VW_M4_SYST_CVR = 0u;
    VW_M4_SYST_CSR = 5u; /* ENABLE, CLKSOURCE = processor clock, no interrupt */
}

void vw_m4_ticks_restart(void)
{
    VW_M4_SYST_CVR = 0u; /* clears the counter and COUNTFLAG; reload on the next tick */
    while (VW_M4_SYST_CVR == 0u) {
    }
    (void)VW_M4_SYST_CSR;
}

uint32_t vw_m4_instructions(uint32_t start_ticks, uint32_t end_ticks)
{
    if ((VW_M4_SYST_CSR & VW_M4_SYST_COUNTFLAG) != 0u) {
        return UINT32_MAX;
    }
    uint32_t ns = (start_ticks - end_ticks) * VW_M4_NS_PER_TICK;
    return (ns + (1u << (VW_M4_ICOUNT_SHIFT - 1))) >> VW_M4_ICOUNT_SHIFT;
}

uint32_t vw_m4_empty_region(void)
{
    vw_m4_ticks_restart();
    uint32_t t0 = VW_M4_TICKS();
    uint32_t t1 = VW_M4_TICKS();
    return vw_m4_instructions(t0, t1);
}

uint32_t vw_m4_region(uint32_t base, uint32_t start_ticks, uint32_t end_ticks)
{
    uint32_t counted = vw_m4_instructions(start_ticks, end_ticks);
    return counted == UINT32_MAX ? UINT32_MAX : counted - base;
}
