/*
 * Inlining choices made for code size, internal to the core's sources.
 *
 * At -Os GCC inlines a static function or not by its own estimate. Where the Cortex-M4
 * code of the firmware core (bar in benchmarks/edge.py) measures smaller the other way,
 * the function says so:
 *   VW_INLINE   always inlined: the call and its register moves cost more than the body
 *   VW_OUTLINE  never inlined: the body would otherwise be copied into each caller
 * Neither changes what a function computes; other compilers see plain static functions.
 */
#ifndef VW_INLINE_H
#define VW_INLINE_H

#if defined(__GNUC__)
#define VW_INLINE static inline __attribute__((always_inline))
#define VW_OUTLINE static __attribute__((noinline))
#else
#define VW_INLINE static inline
#define VW_OUTLINE static
#endif

#endif /* VW_INLINE_H */
