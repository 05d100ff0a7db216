#include "vw_status.h"

const char *vw_status_name(vw_status_t status)
{
    switch (status) {
    case VW_OK: return "ok";
    case VW_ERR_ARG: return "arg";
    case VW_ERR_BUFFER: return "buffer";
    case VW_ERR_ALIGN: return "align";
    case VW_ERR_MAGIC: return "magic";
    case VW_ERR_VERSION: return "version";
    case VW_ERR_TRUNCATED: return "truncated";
    case VW_ERR_CRC: return "crc";
    case VW_ERR_FORMAT: return "format";
    case VW_ERR_UNSUPPORTED: return "unsupported";
    case VW_ERR_INPUT: return "input";
    case VW_ERR_GOLDEN: return "golden";
    case VW_ERR_SIGNATURE: return "signature";
    case VW_ERR_DOWNGRADE: return "downgrade";
    case VW_ERR_HASH: return "hash";
    case VW_ERR_SPEC: return "spec";
    case VW_ERR_STATE: return "state";
    case VW_ERR_RANGE: return "range";
    case VW_ERR_STORAGE: return "storage";
    case VW_ERR_TOO_LARGE: return "too_large";
    case VW_ERR_INCOMPLETE: return "incomplete";
    case VW_ERR_NO_MODEL: return "no_model";
    case VW_ERR_JSON: return "json";
    case VW_ERR_MESSAGE: return "message";
    }
    return "unknown";
}
