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
    dlv_adapter *adapter;       /* loaded by dlv_adapter_load; NULL: none */
    dlv_adapter *defaults;      /* the model's default prompts, made on first use */
    struct dlv_trainer *trainer; /* after dlv_train_begin; NULL otherwise */
    /* CLIPModel sessions train with their own trainer (train/clip_trainer.h)
     * instead of `trainer`; NULL otherwise. */
    struct dlv_clip_trainer *clip_trainer;
};

/* The adapter encoding uses: the loaded one, else the model's defaults
 * (made on first use; DLV_E_UNSUPPORTED when the model has no tokenizer to
 * tokenize its default prompts). */
dlv_status dlv_session_adapter(dlv_session *s, const dlv_adapter **out);

/* DLV_E_CANCELLED (and clears the request) if dlv_session_cancel was called;
 * long loops call this between units of work. */
dlv_status dlv_session_check_cancel(dlv_session *s, const char *where);

/* The embedding length of the session's model. */
size_t dlv_session_embed_dim(const dlv_session *s);

#endif
