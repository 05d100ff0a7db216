/**
 * @file vw_json_reader.h
 * @brief Reads the JSON payloads the device receives (cmd, ota/job): a strict RFC 8259
 *        validator, then typed lookups of the fields of the top-level object.
 *
 * Typical use:
 *
 *     vw_json_doc_t doc;
 *     char id[VW_MODEL_MAX_ID + 1];
 *     int64_t t;
 *     double threshold;
 *     int has_threshold;
 *     status = vw_json_parse(&doc, payload, len, VW_JSON_DEFAULT_DEPTH);
 *     if (status == VW_OK) status = vw_json_get_string(&doc, "id", id, sizeof id, NULL, NULL);
 *     if (status == VW_OK) status = vw_json_get_int(&doc, "t", 0, INT64_MAX, &t, NULL);
 *     if (status == VW_OK) status = vw_json_get_number(&doc, "threshold", &threshold,
 *                                                      &has_threshold);
 *
 * vw_json_parse() checks the whole payload once; nothing is copied and nothing is
 * allocated: the document refers to the caller's bytes, which must stay unchanged
 * while it is used. The payload is not NUL-terminated; no byte outside
 * buf[0 .. len-1] is ever read, whatever the bytes are. The caller bounds the size
 * (its buffer, the protocol's max_payload_bytes) and the nesting depth.
 *
 * What is accepted is RFC 8259 JSON with no extension: no comments, no trailing
 * commas, no NaN/Infinity, no leading zeros, no single quotes, no byte order mark;
 * whitespace is space, tab, LF and CR only; strings are valid UTF-8 (no overlong
 * forms, no surrogates, nothing above U+10FFFF) with no raw control character
 * (below 0x20), and a \\u escape of a surrogate must be a high-low pair. The top
 * level must be an object. Nesting is checked with a bit stack, without recursion.
 *
 * The getters look a key up among the members of the top-level object (nested
 * members are never matched; unknown members of any type are skipped). Keys are
 * compared after unescaping, so "\\u0061" is the key "a". The field of a getter is
 * either required or optional, chosen by its @c found argument:
 *   - found == NULL: the field is required; absent, it is VW_ERR_MESSAGE;
 *   - found != NULL: *found is 1 when the field is present, 0 when it is absent
 *     (then VW_OK and the output is not written).
 * A present field of the wrong JSON type (null, a string for a number, `1.0` or
 * `true` for an integer, ...) or out of range is VW_ERR_MESSAGE, as is a key asked
 * for that occurs more than once in the top-level object: the protocol says senders
 * never repeat a key, and the device refuses the message rather than choose one of
 * the values (repeats of keys nobody asks for are harmless and not looked for).
 *
 * Each getter walks the payload once, checking it again as vw_json_parse() did: O(payload
 * length), no state kept.
 */
#ifndef VW_JSON_READER_H
#define VW_JSON_READER_H

#include <stddef.h>
#include <stdint.h>

#include "vw_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Deepest nesting vw_json_parse() can check (the top-level object is depth 1). */
#define VW_JSON_MAX_DEPTH 32u
/** The depth the device uses for downlink messages: room for unknown nested fields. */
#define VW_JSON_DEFAULT_DEPTH 16u

/** A validated payload; fields are private (NULL buf: not parsed). */
typedef struct vw_json_doc {
    const char *buf;    /**< the caller's payload */
    size_t len;         /**< its length in bytes */
    unsigned max_depth; /**< the nesting it was checked with */
} vw_json_doc_t;

/**
 * @brief Validate a payload (the rules in the file comment) and make it a document.
 * @param doc       output; on failure it is marked not parsed, and every getter then returns
 *                  VW_ERR_ARG
 * @param buf       @p len bytes, any alignment, not NUL-terminated; may be NULL only if len is 0
 * @param len       payload length in bytes
 * @param max_depth deepest nesting allowed, 1..VW_JSON_MAX_DEPTH (1: no nested object or array)
 * @return VW_OK; VW_ERR_ARG (@p doc NULL, @p buf NULL with len > 0, @p max_depth out of
 *         range); VW_ERR_JSON (not JSON by the rules above, nested deeper than
 *         @p max_depth, or a top level that is not an object).
 */
vw_status_t vw_json_parse(vw_json_doc_t *doc, const char *buf, size_t len, unsigned max_depth);

/**
 * @brief Read a string member, unescaped, as NUL-terminated UTF-8.
 * @param doc      a document vw_json_parse() accepted
 * @param key      NUL-terminated key (UTF-8)
 * @param out      @p out_size bytes (output): the string and a NUL; "" on VW_ERR_MESSAGE
 * @param out_size 1.. bytes; the longest string read is out_size - 1 bytes of UTF-8
 * @param out_len  the string's length in bytes, without the NUL (output, may be NULL)
 * @param found    see the file comment (output, may be NULL: required)
 * @return VW_OK; VW_ERR_ARG (NULL doc, key or out, out_size 0, doc not parsed);
 *         VW_ERR_MESSAGE (absent and required, not a string, longer than out_size - 1
 *         bytes, holds \\u0000, key repeated).
 */
vw_status_t vw_json_get_string(const vw_json_doc_t *doc, const char *key, char *out,
                               size_t out_size, size_t *out_len, int *found);

/**
 * @brief Read an integer member: a JSON integer (no fraction, no exponent) in [min, max].
 * @param doc   a document vw_json_parse() accepted
 * @param key   NUL-terminated key
 * @param min   smallest value accepted
 * @param max   largest value accepted, >= min
 * @param out   the value (output)
 * @param found see the file comment (output, may be NULL: required)
 * @return VW_OK; VW_ERR_ARG (NULL doc, key or out, min > max, doc not parsed);
 *         VW_ERR_MESSAGE (absent and required, not a JSON integer, outside [min, max]
 *         including beyond int64_t, a literal of 10^8 characters or more, key repeated).
 */
vw_status_t vw_json_get_int(const vw_json_doc_t *doc, const char *key, int64_t min,
                            int64_t max, int64_t *out, int *found);

/**
 * @brief Read a number member (integer or not) as the nearest double.
 *
 * The conversion is done here with integer arithmetic (no strtod: it depends on the
 * locale, newlib's allocates, and doubles are software on a Cortex-M4): the first 19
 * significant digits are scaled by the decimal exponent exactly, with the big integers
 * of vw_bignum.h on the stack (about 230 bytes; on a Cortex-M4, 2,000 to 5,000
 * instructions for values such as 0.8125 or 1e-07, 27,000 to 48,000 at the extremes of
 * the exponent range), and rounded once, to nearest, ties to even, subnormals included.
 * So every number of up to 19 significant digits -- every double as JSON encoders
 * print it (at most 17), such as 0.8125, 1e-07 or 0.30000000000000004 -- reads as
 * exactly the nearest double.
 * Digits past the 19th count only as "not zero" (a sticky bit): still correctly rounded
 * unless the number lies within 1e-19 (relative) of the midpoint between two doubles,
 * where it reads as one of the two. A magnitude that underflows reads as (signed) zero.
 * @param doc   a document vw_json_parse() accepted
 * @param key   NUL-terminated key
 * @param out   the value, finite (output)
 * @param found see the file comment (output, may be NULL: required)
 * @return VW_OK; VW_ERR_ARG (NULL doc, key or out, doc not parsed); VW_ERR_MESSAGE
 *         (absent and required, not a number, beyond the largest double such as
 *         1e999, a literal of 10^8 characters or more, key repeated).
 */
vw_status_t vw_json_get_number(const vw_json_doc_t *doc, const char *key, double *out,
                               int *found);

/**
 * @brief Read a boolean member (`true` or `false`; never a number or a string).
 * @param doc   a document vw_json_parse() accepted
 * @param key   NUL-terminated key
 * @param out   1 for true, 0 for false (output)
 * @param found see the file comment (output, may be NULL: required)
 * @return VW_OK; VW_ERR_ARG (NULL doc, key or out, doc not parsed); VW_ERR_MESSAGE
 *         (absent and required, not a boolean, key repeated).
 */
vw_status_t vw_json_get_bool(const vw_json_doc_t *doc, const char *key, int *out, int *found);

#ifdef __cplusplus
}
#endif
#endif /* VW_JSON_READER_H */
