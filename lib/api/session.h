/* Internal view of a session. */
#ifndef DLV_API_SESSION_H
#define DLV_API_SESSION_H

#include <stdatomic.h>

#include "api/options.h"
#include "backend/backend.h"

struct dlv_session {
    dlv_model *model;
    dlv_backend *backend;       /* this session's compute stream */
    dlv_session_options opts;
    atomic_int cancel_requested;
    uint64_t step;              /* optimizer steps done */
};

/* DLV_E_CANCELLED (and clears the request) if dlv_session_cancel was called;
 * long loops call this between units of work. */
dlv_status dlv_session_check_cancel(dlv_session *s, const char *where);

/* The embedding length of the session's model. */
size_t dlv_session_embed_dim(const dlv_session *s);

#endif
