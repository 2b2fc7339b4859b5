/* Internal error reporting: every failing path records a message in the
 * thread-local last-error buffer and returns its status in one expression:
 *     return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': ...", path, name);
 */
#ifndef DLV_CORE_ERROR_H
#define DLV_CORE_ERROR_H

#include "disclvlm.h"

#if defined(__GNUC__)
#define DLV_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define DLV_PRINTF(fmt_idx, arg_idx)
#endif

/* Records a formatted message for status and returns status. */
dlv_status dlv_error(dlv_status status, const char *fmt, ...) DLV_PRINTF(2, 3);

/* Prepends "prefix: " to the current message (adding context on the way up)
 * and returns status unchanged. */
dlv_status dlv_error_prefix(dlv_status status, const char *fmt, ...) DLV_PRINTF(2, 3);

/* The message for an allocation failure of n bytes, as DLV_E_NOMEM. */
dlv_status dlv_error_nomem(const char *what, size_t n_bytes);

/* The current thread's message (dlv_last_error reads it) and clearing it. */
const char *dlv_error_message(void);
void dlv_error_clear(void);

#endif
