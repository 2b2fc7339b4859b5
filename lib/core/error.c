/* The thread-local last error: the one piece of mutable state outside the
 * caller's handles. Messages are truncated to the buffer, never overflowed. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DLV_ERROR_CAP 1024

static _Thread_local char last_error[DLV_ERROR_CAP];

dlv_status dlv_error(dlv_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

dlv_status dlv_error_prefix(dlv_status status, const char *fmt, ...)
{
    /* Build "prefix: old" in a scratch buffer, truncating at the capacity. */
    char buf[DLV_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : ((size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    const char *parts[2] = {": ", last_error};
    for (int p = 0; p < 2; p++) {
        size_t len = strlen(parts[p]);
        size_t room = sizeof buf - 1 - used;
        if (len > room) len = room;
        memcpy(buf + used, parts[p], len);
        used += len;
    }
    buf[used] = '\0';
    memcpy(last_error, buf, used + 1);
    return status;
}

dlv_status dlv_error_nomem(const char *what, size_t n_bytes)
{
    return dlv_error(DLV_E_NOMEM, "out of memory allocating %zu bytes for %s",
                     n_bytes, what);
}

DLV_API const char *dlv_last_error(void) { return last_error; }

DLV_API void dlv_clear_error(void) { last_error[0] = '\0'; }

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
