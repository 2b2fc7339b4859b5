/* The thread-local last error: the one piece of mutable state outside the
 * caller's handles. Messages are truncated to the buffer, never overflowed.
 * No exported symbols: the public accessors are api/error_api.c, so the
 * command-line tool compiles this file for its own modules (tools/) without
 * clashing with the library's copy, which stays hidden inside it. */
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

const char *dlv_error_message(void) { return last_error; }

void dlv_error_clear(void) { last_error[0] = '\0'; }
