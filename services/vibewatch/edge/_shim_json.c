/* Binding glue for the JSON reader (vw_json_reader.h): the size of a document, which the
   Python side allocates as opaque memory; the reader's own functions are called directly. */
#include <stddef.h>

#include "vw_json_reader.h"

size_t vwpy_json_doc_bytes(void);

size_t vwpy_json_doc_bytes(void) { return sizeof(vw_json_doc_t); }
