/* Training batches, options and steps (docs/training.md). */
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "api/train_options.h"
#include "core/array.h"
#include "core/error.h"
#include "core/fs.h"
#include "model/adapter.h"
#include "model/kind.h"
#include "model/model.h"
#include "train/trainer.h"

typedef struct batch_item {
    const dlv_image *image;  /* borrowed */
    char *caption;
    char *long_caption;      /* NULL for none */
} batch_item;

struct dlv_batch {
    batch_item *items;
    size_t n, cap;
};

DLV_API dlv_status dlv_batch_new(dlv_batch **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_batch_new: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return dlv_error_nomem("batch", sizeof **out);
    return DLV_OK;
}

DLV_API void dlv_batch_free(dlv_batch *batch)
{
    if (!batch) return;
    for (size_t i = 0; i < batch->n; i++) {
        free(batch->items[i].caption);
        free(batch->items[i].long_caption);
    }
    free(batch->items);
    free(batch);
}

DLV_API dlv_status dlv_batch_add(dlv_batch *batch, const dlv_image *image, const char *caption,
                                 const char *long_caption)
{
    if (!batch || !image || !caption)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_batch_add: batch, image and caption must not be NULL");
    if (batch->n == batch->cap) {
        batch_item *items = dlv_array_grow(batch->items, &batch->cap, sizeof *items, 16,
                                           "batch items");
        if (!items) return DLV_E_NOMEM;
        batch->items = items;
    }
    batch_item it = {.image = image, .caption = strdup(caption), .long_caption = NULL};
    if (long_caption) it.long_caption = strdup(long_caption);
    if (!it.caption || (long_caption && !it.long_caption)) {
        free(it.caption);
        free(it.long_caption);
        return dlv_error_nomem("batch captions", strlen(caption) + 1);
    }
    batch->items[batch->n++] = it;
    return DLV_OK;
}

/* The session's trainer: training starts from its adapter (kinds with
 * adapters) or from the model's own weights. */
DLV_API dlv_status dlv_train_begin(dlv_session *session, const dlv_train_options *opts)
{
    if (!session) return dlv_error(DLV_E_INVALID_ARG, "dlv_train_begin: session is NULL");
    dlv_train_config cfg;
    if (opts) cfg = opts->cfg;
    else dlv_train_config_defaults(&cfg);
    if (cfg.optim.schedule == DLV_SCHED_COSINE && cfg.optim.total_steps <= cfg.optim.warmup)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_train_begin: the cosine schedule needs "
                         "total_steps (%lld) > warmup (%lld)", (long long)cfg.optim.total_steps,
                         (long long)cfg.optim.warmup);
    const dlv_adapter *a = NULL;
    dlv_status st = dlv_model_kind_of(session->model)->has_adapters
                        ? dlv_session_adapter(session, &a) : DLV_OK;
    dlv_trainer *t = NULL;
    if (!st) st = dlv_trainer_new(session->model, session->backend, &cfg, a, &t);
    if (!st) st = dlv_trainer_set_comm(t, session->comm);
    if (st) {
        dlv_trainer_free(t);
        return dlv_error_prefix(st, "dlv_train_begin");
    }
    dlv_trainer_set_truncate(t, session->opts.truncate);
    dlv_trainer_free(session->trainer);
    session->trainer = t;
    return DLV_OK;
}

DLV_API dlv_status dlv_train_step(dlv_session *session, const dlv_batch *batch,
                                  dlv_train_stats *stats)
{
    if (!session || !batch || !stats)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_train_step: NULL argument");
    if (stats->struct_size < offsetof(dlv_train_stats, loss) + sizeof stats->loss)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_train_step: stats->struct_size (%zu) is not set; use "
                         "DLV_TRAIN_STATS_INIT", stats->struct_size);
    if (batch->n == 0) return dlv_error(DLV_E_INVALID_ARG, "dlv_train_step: the batch is empty");
    dlv_status st;
    if (!session->trainer && (st = dlv_train_begin(session, NULL)))
        return dlv_error_prefix(st, "dlv_train_step");
    if ((st = dlv_session_check_cancel(session, "dlv_train_step"))) return st;
    dlv_train_example *ex = malloc(batch->n * sizeof *ex);
    if (!ex) return dlv_error_nomem("batch", batch->n * sizeof *ex);
    for (size_t i = 0; i < batch->n; i++)
        ex[i] = (dlv_train_example){batch->items[i].image, batch->items[i].caption,
                                    batch->items[i].long_caption};
    st = dlv_trainer_step(session->trainer, ex, batch->n, stats);
    free(ex);
    return st ? dlv_error_prefix(st, "dlv_train_step") : DLV_OK;
}

DLV_API dlv_status dlv_session_set_comm(dlv_session *session, dlv_comm *comm)
{
    if (!session) return dlv_error(DLV_E_INVALID_ARG, "dlv_session_set_comm: session is NULL");
    if (session->trainer) {
        dlv_status st = dlv_trainer_set_comm(session->trainer, comm);
        if (st) return dlv_error_prefix(st, "dlv_session_set_comm");
    }
    session->comm = comm;
    return DLV_OK;
}

DLV_API dlv_status dlv_train_checkpoint_save(dlv_session *session, const char *dir)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_train_checkpoint_save: NULL argument");
    dlv_status st;
    if (!session->trainer && (st = dlv_train_begin(session, NULL)))
        return dlv_error_prefix(st, "dlv_train_checkpoint_save");
    st = dlv_trainer_save(session->trainer, dir);
    return st ? dlv_error_prefix(st, "dlv_train_checkpoint_save") : DLV_OK;
}

DLV_API dlv_status dlv_train_checkpoint_load(dlv_session *session, const char *dir)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_train_checkpoint_load: NULL argument");
    dlv_trainer *t = NULL;
    dlv_status st = dlv_trainer_load(session->model, session->backend, dir, &t);
    if (!st) st = dlv_trainer_set_comm(t, session->comm);
    if (st) {
        dlv_trainer_free(t);
        return dlv_error_prefix(st, "dlv_train_checkpoint_load");
    }
    dlv_trainer_set_truncate(t, session->opts.truncate);
    dlv_trainer_free(session->trainer);
    session->trainer = t;
    return DLV_OK;
}

DLV_API dlv_status dlv_train_check_outputs(dlv_session *session, const char *adapter_dir,
                                          const char *checkpoint_dir, const char *model_dir)
{
    static const char fn[] = "dlv_train_check_outputs";
    if (!session) return dlv_error(DLV_E_INVALID_ARG, "%s: session is NULL", fn);
    if ((checkpoint_dir || model_dir) && !session->trainer)
        return dlv_error(DLV_E_INVALID_ARG, "%s: the session is not training (call "
                         "dlv_train_begin or dlv_train_checkpoint_load first)", fn);
    dlv_status st = DLV_OK;
    /* A model without adapters saves none: nothing to check. */
    if (adapter_dir && dlv_model_kind_of(session->model)->has_adapters)
        st = dlv_dir_save_check(adapter_dir, dlv_adapter_files);
    if (!st && session->trainer)
        st = dlv_trainer_check_outputs(session->trainer, checkpoint_dir, model_dir);
    return st ? dlv_error_prefix(st, "%s", fn) : DLV_OK;
}

DLV_API dlv_status dlv_train_save_model(dlv_session *session, const char *dir, const char *dtype)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_train_save_model: NULL argument");
    dlv_status st;
    if (!session->trainer && (st = dlv_train_begin(session, NULL)))
        return dlv_error_prefix(st, "dlv_train_save_model");
    st = dlv_trainer_save_model(session->trainer, dir, dtype);
    return st ? dlv_error_prefix(st, "dlv_train_save_model") : DLV_OK;
}
