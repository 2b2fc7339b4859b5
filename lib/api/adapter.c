/* Adapter directories on a session (docs/adapter-format.md). */
#include <math.h>
#include <stdlib.h>

#include "api/session.h"
#include "core/error.h"
#include "model/clip_model.h"
#include "model/model.h"
#include "train/clip_trainer.h"
#include "train/wview.h"
#include "train/trainer.h"

DLV_API dlv_status dlv_adapter_load(dlv_session *session, const char *dir)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_adapter_load: NULL argument");
    if (dlv_model_clip(session->model))
        return dlv_error(DLV_E_UNSUPPORTED, "dlv_adapter_load: %s: adapters apply to LLaVA "
                         "models, not to a CLIPModel", dir);
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
    return DLV_OK;
}

DLV_API dlv_status dlv_adapter_save(dlv_session *session, const char *dir)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_adapter_save: NULL argument");
    if (dlv_model_clip(session->model))
        return dlv_error(DLV_E_UNSUPPORTED, "dlv_adapter_save: %s: a CLIPModel has no adapter "
                         "(dlv_train_save_model writes the trained model)", dir);
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
    return DLV_OK;
}

DLV_API dlv_status dlv_session_logit_scale(const dlv_session *session, float *out)
{
    if (!session || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_session_logit_scale: NULL argument");
    double ls = session->adapter ? (double)session->adapter->logit_scale : DLV_DEFAULT_LOGIT_SCALE;
    if (dlv_model_clip(session->model)) {
        /* A CLIPModel's own learned scale (the trained one while training),
         * as CLIPModel.forward's logits use it. */
        const dlv_wview *wv = session->clip_trainer ? dlv_clip_trainer_view(session->clip_trainer)
                                                    : NULL;
        const dlv_st_tensor *t =
            wv ? dlv_wview_get(wv, DLV_PART_PROJECTOR, "logit_scale", NULL)
               : dlv_weights_get(dlv_model_weights(session->model), DLV_PART_PROJECTOR,
                                 "logit_scale");
        float v = 0;
        if (t && dlv_st_read_f32(t, 0, 1, &v) == DLV_OK) ls = v;
    }
    *out = (float)exp(ls);
    return DLV_OK;
}
