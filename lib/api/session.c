/* Sessions: a compute backend instance and (later) workspace, adapters and
 * optimizer state on top of a shared, immutable model. */
#include "api/session.h"

#include <stdlib.h>

#include "core/error.h"
#include "model/kind.h"
#include "model/model.h"
#include "train/trainer.h"

DLV_API dlv_status dlv_session_new(dlv_model *model, const dlv_session_options *opts,
                                   dlv_session **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_session_new: out is NULL");
    *out = NULL;
    if (!model) return dlv_error(DLV_E_INVALID_ARG, "dlv_session_new: model is NULL");
    dlv_session *s = calloc(1, sizeof *s);
    if (!s) return dlv_error_nomem("session", sizeof *s);
    s->model = model;
    if (opts)
        s->opts = *opts;
    else
        dlv_session_options_defaults(&s->opts);
    atomic_init(&s->cancel_requested, 0);

    /* The session computes on the backend the model's weights live on, with
     * its own instance (its own stream and thread count). */
    const dlv_backend *mbe = dlv_model_backend(model);
    dlv_backend_config cfg = {.device = mbe ? mbe->device : 0, .n_threads = s->opts.n_threads,
                              .compute = s->opts.compute_bf16 ? DLV_DTYPE_BF16 : DLV_DTYPE_F32};
    dlv_status st = dlv_backend_create(mbe ? mbe->ops->name : "cpu", &cfg, &s->backend);
    if (st != DLV_OK) {
        free(s);
        return dlv_error_prefix(st, "dlv_session_new");
    }
    *out = s;
    return DLV_OK;
}

DLV_API void dlv_session_free(dlv_session *session)
{
    if (!session) return;
    dlv_trainer_free(session->trainer);
    dlv_session_drop_view(session);
    if (session->adapter) dlv_adapter_release(session->adapter);
    if (session->defaults) dlv_adapter_release(session->defaults);
    free(session->adapter);
    free(session->defaults);
    dlv_backend_destroy(session->backend);
    free(session);
}

DLV_API dlv_status dlv_session_cancel(dlv_session *session)
{
    if (!session) return dlv_error(DLV_E_INVALID_ARG, "dlv_session_cancel: session is NULL");
    atomic_store(&session->cancel_requested, 1);
    return DLV_OK;
}

dlv_status dlv_session_check_cancel(dlv_session *s, const char *where)
{
    if (atomic_exchange(&s->cancel_requested, 0))
        return dlv_error(DLV_E_CANCELLED, "%s: cancelled by dlv_session_cancel", where);
    return DLV_OK;
}

size_t dlv_session_embed_dim(const dlv_session *s)
{
    size_t dim = 0;
    if (dlv_model_embed_dim(s->model, &dim) != DLV_OK) return 0;
    return dim;
}

dlv_status dlv_session_adapter(dlv_session *s, const dlv_adapter **out)
{
    if (s->trainer && dlv_model_kind_of(s->model)->has_adapters) {
        if (!s->adapter) {
            s->adapter = calloc(1, sizeof *s->adapter);
            if (!s->adapter) return dlv_error_nomem("adapter", sizeof *s->adapter);
        }
        dlv_status st = dlv_trainer_export(s->trainer, s->adapter);
        if (st) return st;
    }
    if (s->adapter) {
        *out = s->adapter;
        return DLV_OK;
    }
    if (!s->defaults) {
        dlv_adapter *a = calloc(1, sizeof *a);
        if (!a) return dlv_error_nomem("default adapter", sizeof *a);
        dlv_status st = dlv_adapter_init_default(s->model, a);
        if (st) {
            free(a);
            return st;
        }
        s->defaults = a;
    }
    *out = s->defaults;
    return DLV_OK;
}

void dlv_session_drop_view(dlv_session *s)
{
    if (s->view) dlv_model_kind_of(s->model)->view_free(s->view);
    s->view = NULL;
}

dlv_status dlv_session_view(dlv_session *s, const void **out)
{
    if (s->trainer) {
        *out = dlv_trainer_encode_view(s->trainer);
        return DLV_OK;
    }
    const dlv_model_kind *kind = dlv_model_kind_of(s->model);
    if (!s->view) {
        const dlv_adapter *a = NULL;
        dlv_status st = kind->has_adapters ? dlv_session_adapter(s, &a) : DLV_OK;
        if (!st) st = kind->view_new(s->model, s->backend, a, &s->view);
        if (st) return st;
    }
    *out = s->view;
    return DLV_OK;
}
