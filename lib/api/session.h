/* Internal view of a session. */
#ifndef DLV_API_SESSION_H
#define DLV_API_SESSION_H

#include <stdatomic.h>

#include "api/options.h"
#include "backend/backend.h"
#include "model/adapter.h"

struct dlv_session {
    dlv_model *model;
    dlv_backend *backend;       /* this session's compute stream */
    dlv_session_options opts;
    atomic_int cancel_requested;
    uint64_t step;              /* optimizer steps done */
    dlv_adapter *adapter;       /* loaded by dlv_adapter_load (or exported from the
                                 * trainer); NULL: none */
    dlv_adapter *defaults;      /* the model's default prompts, made on first use */
    struct dlv_trainer *trainer; /* after dlv_train_begin; NULL otherwise */
    dlv_comm *comm;             /* dlv_session_set_comm: data-parallel training */
    /* The model kind's encode view of the session's adapter (model/kind.h),
     * made on first use; dlv_session_drop_view discards it when the
     * adapter changes. A training session encodes with the trainer's. */
    void *view;
};

/* The session's adapter: the trainer's current state when training (it is
 * downloaded into s->adapter), else the loaded one, else the model's
 * defaults (made on first use; DLV_E_UNSUPPORTED when the model has no
 * tokenizer to tokenize its default prompts). */
dlv_status dlv_session_adapter(dlv_session *s, const dlv_adapter **out);

/* What the model kind's encoders read now (the trainer's view, or the view
 * of the session's adapter, made on first use). */
dlv_status dlv_session_view(dlv_session *s, const void **out);
/* Forgets the encode view (after the adapter changed). */
void dlv_session_drop_view(dlv_session *s);

/* DLV_E_CANCELLED (and clears the request) if dlv_session_cancel was called;
 * long loops call this between units of work. */
dlv_status dlv_session_check_cancel(dlv_session *s, const char *where);

/* The embedding length of the session's model. */
size_t dlv_session_embed_dim(const dlv_session *s);

#endif
