/* The public error accessors over core/error.c's thread-local message. */
#include "core/error.h"

DLV_API const char *dlv_last_error(void) { return dlv_error_message(); }

DLV_API void dlv_clear_error(void) { dlv_error_clear(); }

DLV_API const char *dlv_status_str(dlv_status status)
{
    switch (status) {
    case DLV_OK: return "ok";
    case DLV_E_INVALID_ARG: return "invalid argument";
    case DLV_E_IO: return "input/output error";
    case DLV_E_FORMAT: return "malformed input";
    case DLV_E_UNSUPPORTED: return "unsupported";
    case DLV_E_NOMEM: return "out of memory";
    case DLV_E_BACKEND: return "backend error";
    case DLV_E_NOT_IMPLEMENTED: return "not implemented";
    case DLV_E_NUMERIC: return "numeric error (NaN or Inf)";
    case DLV_E_CANCELLED: return "cancelled";
    case DLV_E_BUFFER_TOO_SMALL: return "buffer too small";
    }
    return "unknown status";
}
