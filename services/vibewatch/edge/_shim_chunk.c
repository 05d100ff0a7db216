/* Binding glue for vw_chunk: a parsed chunk as plain numbers, so that ctypes mirrors no struct. */
#include <stddef.h>
#include <stdint.h>

#include "vw_chunk.h"

/* vw_chunk_parse; on VW_OK fields[] = {job_ref, offset, length} and *data_at is where the
 * data starts in the payload (always VW_CHUNK_HEADER_BYTES). Outputs untouched otherwise. */
int vwpy_chunk_parse(const uint8_t *payload, size_t len, uint32_t fields[3], size_t *data_at)
{
    vw_chunk_t chunk;
    if (fields == NULL || data_at == NULL) {
        return VW_ERR_ARG;
    }
    const vw_status_t st = vw_chunk_parse(payload, len, &chunk);
    if (st == VW_OK) {
        fields[0] = chunk.job_ref;
        fields[1] = chunk.offset;
        fields[2] = chunk.length;
        *data_at = (size_t)(chunk.data - payload);
    }
    return (int)st;
}
