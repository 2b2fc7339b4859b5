/* The error functions of the library's internal modules that the eval
 * commands compile into the tool (lib/eval, lib/data, lib/core/sha256.c,
 * lib/core/fs.c: dlv_eval_sources in lib/meson.build). libdisclvlm.so keeps
 * its own lib/core/error.c hidden, so these do not clash with it: messages
 * from the compiled-in modules land here, read with eval_last_error(),
 * while messages from public API calls stay with dlv_last_error(). Same
 * semantics as lib/core/error.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "eval_cli.h"

#define EVAL_ERROR_CAP 1024

static _Thread_local char last[EVAL_ERROR_CAP];

dlv_status dlv_error(dlv_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last, sizeof last, fmt, ap);
    va_end(ap);
    return status;
}

dlv_status dlv_error_prefix(dlv_status status, const char *fmt, ...)
{
    char buf[EVAL_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : ((size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    const char *parts[2] = {": ", last};
    for (int p = 0; p < 2; p++) {
        size_t len = strlen(parts[p]);
        size_t room = sizeof buf - 1 - used;
        if (len > room) len = room;
        memcpy(buf + used, parts[p], len);
        used += len;
    }
    buf[used] = '\0';
    memcpy(last, buf, used + 1);
    return status;
}

dlv_status dlv_error_nomem(const char *what, size_t n_bytes)
{
    return dlv_error(DLV_E_NOMEM, "out of memory allocating %zu bytes for %s", n_bytes, what);
}

const char *eval_last_error(void) { return last; }
