/**
 * @file vw_json_writer.h
 * @brief Writes the JSON payloads the device publishes, into a caller-owned buffer.
 *
 * A writer appends compact JSON (no spaces) to a fixed buffer and never writes past
 * its end. Errors are sticky: the first one (buffer too small, a non-finite number,
 * a string the device must not send, containers nested too deep or closed too often)
 * is kept, later calls do nothing, and vw_jsonw_finish() returns it. So a message is
 * built with plain calls and checked once:
 *
 *     vw_jsonw_t w;
 *     vw_jsonw_init(&w, buf, sizeof buf);
 *     vw_jsonw_object_begin(&w);
 *     vw_jsonw_key(&w, "seq");  vw_jsonw_uint(&w, seq);
 *     vw_jsonw_key(&w, "score"); vw_jsonw_float(&w, score);
 *     vw_jsonw_object_end(&w);
 *     status = vw_jsonw_finish(&w, &len);
 *
 * Commas and colons are placed by the writer. Strings are ASCII: the device only
 * ever sends ids, version strings and fixed texts; `"`, `\` and control characters
 * are escaped, a byte of 0x80 or above is refused (VW_ERR_ARG).
 *
 * Floats are float32 values written with 9 significant digits, correctly rounded
 * (round half to even) from their exact binary value, so that every value reads back
 * as the same float32 (in Python: numpy.float32(float(text)) == value), and the text
 * is the same on every build (integer arithmetic only, with the big integers of
 * vw_bignum.h that the reader uses too: host and Cortex-M4 agree byte for byte).
 * Trailing zeros are dropped; plain notation for 1e-5 <= |x| < 1e9 (`0.8125`,
 * `1234.5`, `3.0`), exponent notation beyond (`1.5e-7`, `2.5e12`); a float always has
 * a `.` or an `e`, so it never reads back as an integer.
 */
#ifndef VW_JSON_WRITER_H
#define VW_JSON_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Deepest nesting of objects and arrays a writer handles. */
#define VW_JSONW_MAX_DEPTH 31

/** Longest text vw_jsonw_float() writes (`-0.0000123456789`), without a terminator. */
#define VW_JSONW_FLOAT_MAX 16

/** A writer; its fields are private. */
typedef struct vw_jsonw {
    char *buf;          /**< the caller's buffer */
    size_t cap;         /**< its size in bytes */
    size_t len;         /**< bytes written so far */
    uint32_t nonempty;  /**< bit d: the container at depth d already holds a value */
    uint32_t objects;   /**< bit d: the container at depth d is an object */
    uint8_t depth;      /**< open containers */
    uint8_t after_key;  /**< a key was written: the next value takes no comma */
    vw_status_t status; /**< first error, VW_OK while none */
} vw_jsonw_t;

/**
 * @brief Start writing into @p buf.
 * @param w   writer (output)
 * @param buf caller-owned memory of @p cap bytes; may be NULL only when cap is 0
 * @param cap its size; the payload is not NUL-terminated
 */
void vw_jsonw_init(vw_jsonw_t *w, char *buf, size_t cap);

/** @brief Open an object (`{`) as the next value. */
void vw_jsonw_object_begin(vw_jsonw_t *w);
/** @brief Close the innermost object (`}`). */
void vw_jsonw_object_end(vw_jsonw_t *w);
/** @brief Open an array (`[`) as the next value. */
void vw_jsonw_array_begin(vw_jsonw_t *w);
/** @brief Close the innermost array (`]`). */
void vw_jsonw_array_end(vw_jsonw_t *w);

/** @brief Write an object key (NUL-terminated ASCII) and its colon. */
void vw_jsonw_key(vw_jsonw_t *w, const char *key);

/**
 * @brief Write a string value.
 * @param s   @p len bytes of ASCII (NUL bytes allowed: written as \\u0000)
 * @param len its length
 */
void vw_jsonw_string(vw_jsonw_t *w, const char *s, size_t len);

/** @brief Write a NUL-terminated ASCII string value. */
void vw_jsonw_cstring(vw_jsonw_t *w, const char *s);

/** @brief Write a signed integer value (any int64_t). */
void vw_jsonw_int(vw_jsonw_t *w, int64_t v);

/** @brief Write an unsigned integer value (any uint64_t). */
void vw_jsonw_uint(vw_jsonw_t *w, uint64_t v);

/** @brief Write a float32 value (see the file comment); NaN and infinities: VW_ERR_INPUT. */
void vw_jsonw_float(vw_jsonw_t *w, float v);

/** @brief Write `true` (v != 0) or `false`. */
void vw_jsonw_bool(vw_jsonw_t *w, int v);

/**
 * @brief Format a finite float32 as vw_jsonw_float() writes it.
 * @param v   the value
 * @param out at least VW_JSONW_FLOAT_MAX bytes (output, not NUL-terminated)
 * @return bytes written; 0 when @p v is NaN or infinite
 */
size_t vw_jsonw_format_float(float v, char *out);

/**
 * @brief The result: the first error, or VW_OK and the payload's length.
 * @param w   writer
 * @param len payload length in bytes (output, may be NULL); set only on VW_OK
 * @return VW_OK; VW_ERR_BUFFER if the payload did not fit; VW_ERR_INPUT for a
 *         non-finite float; VW_ERR_ARG for a refused string, a NULL argument, nesting
 *         beyond VW_JSONW_MAX_DEPTH, a container closed that was not open, a key
 *         outside an object, or a container left open.
 */
vw_status_t vw_jsonw_finish(const vw_jsonw_t *w, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* VW_JSON_WRITER_H */
