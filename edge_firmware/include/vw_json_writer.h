/**
 * @file vw_json_writer.h
 * @brief Writes the JSON payloads the device publishes, into a caller-owned buffer.
 *
 * A payload is written from templates: the text of a template is the JSON's structure,
 * copied as it is, and each conversion in it is replaced by the next argument, written
 * as a JSON value:
 *
 *     %s  const char *: a NUL-terminated string
 *     %S  const char *, size_t: a string of that many bytes
 *     %x  const uint8_t *, size_t: that many bytes as a string of lowercase hex
 *     %u  uint64_t (cast narrower integers): decimal
 *     %f  const float *: the float32 value it points to
 *
 *     vw_jsonw_t w;
 *     vw_jsonw_init(&w, buf, sizeof buf);
 *     vw_jsonw_put(&w, "{\"seq\":%u,\"score\":%f", seq, &score);
 *     vw_jsonw_put(&w, "}");
 *     status = vw_jsonw_finish(&w, &len);
 *
 * The writer never writes past the buffer's end. Errors are sticky: the first one (the
 * buffer too small, a non-finite float, a string the device must not send, an unknown
 * conversion) is kept, later calls do nothing, and vw_jsonw_finish() returns it; so a
 * message is built with plain calls and checked once. The templates are the caller's:
 * the device's are fixed texts its tests read back with a JSON parser.
 *
 * Strings are printable ASCII (0x20..0x7e) but `"` and `\`: the device only ever sends
 * ids, version strings and fixed texts, none of which needs an escape, so the writer
 * writes none; a string with any other byte is refused (VW_ERR_ARG).
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

/** Longest text a float is written as (`-0.0000123456789`), without a terminator. */
#define VW_JSONW_FLOAT_MAX 16

/** A writer; its fields are private. */
typedef struct vw_jsonw {
    char *buf;          /**< the caller's buffer */
    size_t cap;         /**< its size in bytes */
    size_t len;         /**< bytes written so far */
    vw_status_t status; /**< first error, VW_OK while none */
} vw_jsonw_t;

/**
 * @brief Start writing into @p buf.
 * @param w   writer (output)
 * @param buf caller-owned memory of @p cap bytes; may be NULL only when cap is 0
 * @param cap its size; the payload is not NUL-terminated
 */
void vw_jsonw_init(vw_jsonw_t *w, char *buf, size_t cap);

/**
 * @brief Append @p template_ with its conversions (see the file comment) replaced by the
 *        arguments that follow.
 */
void vw_jsonw_put(vw_jsonw_t *w, const char *template_, ...);

/**
 * @brief Format a finite float32 as the writer writes it.
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
 *         non-finite float; VW_ERR_ARG for a refused string, a NULL argument or an
 *         unknown conversion.
 */
vw_status_t vw_jsonw_finish(const vw_jsonw_t *w, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* VW_JSON_WRITER_H */
