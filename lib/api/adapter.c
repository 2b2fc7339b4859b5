/* Adapter directories on a session (docs/adapter-format.md). */
#include <math.h>
#include <stdlib.h>

#include "api/session.h"
#include "core/error.h"
#include "model/kind.h"
#include "model/model.h"
#include "train/trainer.h"

DLV_API dlv_status dlv_adapter_load(dlv_session *session, const char *dir)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_adapter_load: NULL argument");
    if (!dlv_model_kind_of(session->model)->has_adapters)
        return dlv_error(DLV_E_UNSUPPORTED, "dlv_adapter_load: %s: adapters do not apply to a "
                         "'%s' model", dir, dlv_model_kind_name(session->model));
    dlv_adapter *a = calloc(1, sizeof *a);
    if (!a) return dlv_error_nomem("adapter", sizeof *a);
    dlv_status st = dlv_adapter_read(session->model, dir, a);
    if (st) {
        free(a);
        return dlv_error_prefix(st, "dlv_adapter_load");
    }
    if (session->adapter) {
        dlv_adapter_release(session->adapter);
        free(session->adapter);
    }
    session->adapter = a;
    /* Training restarts from the loaded adapter (dlv_train_step begins a
     * new trainer). */
    dlv_trainer_free(session->trainer);
    session->trainer = NULL;
    dlv_session_drop_view(session);
    return DLV_OK;
}

DLV_API dlv_status dlv_adapter_save(dlv_session *session, const char *dir)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_adapter_save: NULL argument");
    if (!dlv_model_kind_of(session->model)->has_adapters)
        return dlv_error(DLV_E_UNSUPPORTED, "dlv_adapter_save: %s: a '%s' model has no adapter "
                         "(dlv_train_save_model writes the trained model)", dir,
                         dlv_model_kind_name(session->model));
    const dlv_adapter *a;
    dlv_status st = dlv_session_adapter(session, &a);
    if (!st) st = dlv_adapter_write(session->model, a, dir);
    return st ? dlv_error_prefix(st, "dlv_adapter_save") : DLV_OK;
}

DLV_API dlv_status dlv_adapter_clear(dlv_session *session)
{
    if (!session) return dlv_error(DLV_E_INVALID_ARG, "dlv_adapter_clear: session is NULL");
    if (session->adapter) {
        dlv_adapter_release(session->adapter);
        free(session->adapter);
        session->adapter = NULL;
    }
    dlv_trainer_free(session->trainer);
    session->trainer = NULL;
    dlv_session_drop_view(session);
    return DLV_OK;
}

DLV_API dlv_status dlv_session_logit_scale(const dlv_session *session, float *out)
{
    if (!session || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_session_logit_scale: NULL argument");
    float ls = (float)DLV_DEFAULT_LOGIT_SCALE;
    dlv_status st = DLV_OK;
    const dlv_model_kind *kind = dlv_model_kind_of(session->model);
    /* The trained scale while training; else the adapter's, or a model's
     * own (a CLIPModel's, as CLIPModel.forward's logits use it). */
    if (session->trainer) st = dlv_trainer_logit_scale(session->trainer, &ls);
    else if (kind->has_adapters && session->adapter) ls = session->adapter->logit_scale;
    else if (kind->model_logit_scale) st = kind->model_logit_scale(session->model, &ls);
    if (st) return dlv_error_prefix(st, "dlv_session_logit_scale");
    *out = (float)exp((double)ls);
    return DLV_OK;
}
