/*
 * Cortex-M4/M7 kernel (vw_kernel.h) on the DSP extension; replaces src/vw_kernel.c.
 *
 * One group (4 inputs x 4 rows, 16 multiply-accumulates) is 18 instructions:
 *   LDRD  the 4 interleaved inputs: X02 = (x0, x2), X13 = (x1, x3) as halfword pairs
 *   LDM   the 4 weight words, one per row: W = (w0, w1, w2, w3) as bytes
 *   per row: SXTB16 W gives (w0, w2), SXTB16 W ROR 8 gives (w1, w3), and two SMLAD
 *   add w0*x0 + w2*x2 and w1*x1 + w3*x3 to the row's sum.
 * The groups run three to a loop iteration: 2 loop instructions per 48 MACs (four to an
 * iteration would save about 3,000 instructions of an MLPerf-sized inference, 0.8 %, for
 * 72 more bytes of code; the firmware core's code budget is the tighter one). The
 * n_groups % 3 leftovers do not run apart: the first pass enters the loop's body at its
 * group 3 ceil(n_groups / 3) - n_groups (Duff's device), by ADD PC of that many times a
 * group's 72 bytes, so the first iteration runs the leftovers (or all three) and
 * ceil(n_groups / 3) iterations run them all. Both numbers are worked out once a call.
 *
 * Registers: r0 weights, r1 inputs, r2 iterations left, r3-r6 the four sums, r7-r10 the
 * weight words, r11/r12 the input pairs, lr the sign-extended (w0, w2) of the row.
 * The input base, the iterations, the blocks left and the entry's offset live on the
 * stack between blocks; the acc pointer (the fifth argument, on the stack) advances by
 * 16 bytes a block. One call
 * per 4 blocks instead of one per block saves the call and register saves of 3 in 4.
 * Weights must be 4-byte aligned (LDM faults otherwise); the blob format
 * guarantees it, since every section of a .vwm blob is padded to 4 bytes.
 *
 * The sums wrap modulo 2^32 exactly like the portable kernel's int32 arithmetic for
 * every in-range model (|sum| < 2^31); SMLAD only sets the Q flag on overflow.
 */
#include "vw_kernel.h"

/* The body is one basic asm statement, so the parameters are only read through registers. */
#define VW_IN_REGISTER __attribute__((unused))

__attribute__((naked)) void vw_kernel_rows(const int8_t *w VW_IN_REGISTER,
                                           const int16_t *x VW_IN_REGISTER,
                                           uint32_t n_groups VW_IN_REGISTER,
                                           uint32_t n_blocks VW_IN_REGISTER,
                                           int32_t *acc VW_IN_REGISTER)
{
    __asm__(
        "    .macro vw_row sum, word\n"
        "    sxtb16 lr, \\word\n"
        "    smlad  \\sum, lr, r11, \\sum\n"
        "    sxtb16 \\word, \\word, ror #8\n"
        "    smlad  \\sum, \\word, r12, \\sum\n"
        "    .endm\n"
        "    .macro vw_group\n"
        "    ldrd   r11, r12, [r1], #8\n"
        "    ldm    r0!, {r7, r8, r9, r10}\n"
        "    vw_row r3, r7\n"
        "    vw_row r4, r8\n"
        "    vw_row r5, r9\n"
        "    vw_row r6, r10\n"
        "    .endm\n"
        "    push   {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n"
        "    adds   r8, r2, #2\n"
        "    movs   r7, #3\n"
        "    udiv   r8, r8, r7\n" /* iterations: ceil(n_groups / 3) */
        "    mul    r7, r7, r8\n"
        "    subs   r7, r7, r2\n" /* groups to skip: 3 iterations - n_groups */
        "    add    r7, r7, r7, lsl #3\n"
        "    lsls   r7, r7, #3\n" /* times 72, the bytes of a group */
        "    mov    r2, r8\n"
        "    push   {r1, r2, r3, r7}\n" /* [sp] x, [sp+4] iterations, [sp+8] blocks left */
        "0:  ldrd   r1, r2, [sp]\n" /* [sp+12] the entry's offset; acc pointer: [sp+52] */
        "    ldr    r7, [sp, #12]\n"
        "    movs   r3, #0\n"
        "    movs   r4, #0\n"
        "    movs   r5, #0\n"
        "    movs   r6, #0\n"
        "    add    pc, r7\n" /* to 3: plus r7 (the PC reads 4 bytes ahead) */
        "    nop\n"
        "3:  .rept  3\n"
        "    vw_group\n"
        "    .endr\n"
        "4:  subs   r2, r2, #1\n"
        "    bne    3b\n"
        "    .if    4b - 3b != 3 * 72\n"
        "    .error \"a group is not 72 bytes\"\n"
        "    .endif\n"
        "    ldr    r7, [sp, #52]\n"
        "    stm    r7!, {r3, r4, r5, r6}\n"
        "    str    r7, [sp, #52]\n"
        "    ldr    r7, [sp, #8]\n"
        "    subs   r7, r7, #1\n"
        "    str    r7, [sp, #8]\n"
        "    bne    0b\n"
        "    add    sp, sp, #16\n"
        "    pop    {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n"
        "    .purgem vw_group\n"
        "    .purgem vw_row\n");
}
