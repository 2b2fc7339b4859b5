/* The trainer core (docs/training.md): one for every model kind
 * (train/kind.h). The trainable set lives in flat device buffers
 * (parameters, gradients, Adam moments) laid out by the kind; a step is
 * GradCache-style:
 *   (1) the L2-normalised embeddings of the whole batch, both sides, without
 *       tapes, in micro-batches;
 *   (2) the contrastive loss and its gradient w.r.t. those embeddings, on
 *       the host (the only data that comes back: n x dim floats per side);
 *   (3) micro-batches again with tapes, back-propagating that gradient (and
 *       the kind's own losses: LLaVA's next-token loss);
 *   (4) the gradient norm, clipping and the optimizer update as backend ops.
 * Per step only inputs go to the device and only scalars and the
 * embeddings come back. */
#ifndef DLV_TRAIN_TRAINER_H
#define DLV_TRAIN_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"
#include "disclvlm.h"
#include "model/adapter.h"
#include "train/optim.h"

enum {
    DLV_TRAIN_SOFT = 1u << 0,
    DLV_TRAIN_LORA = 1u << 1,
    DLV_TRAIN_LOGIT_SCALE = 1u << 2,
    DLV_TRAIN_PROJECTOR = 1u << 3,
    DLV_TRAIN_LLM = 1u << 4,
    DLV_TRAIN_VISION = 1u << 5,
};
#define DLV_TRAIN_DEFAULT_SETS (DLV_TRAIN_SOFT | DLV_TRAIN_LORA | DLV_TRAIN_LOGIT_SCALE)

typedef struct dlv_train_config {
    unsigned sets;
    dlv_optim_config optim;
    int64_t lora_rank;
    double lora_alpha;
    unsigned lora_targets;      /* bit mask over dlv_lora_module */
    double ntp_weight;          /* 0: no next-token loss */
    int contrastive;            /* 0: no contrastive loss */
    uint64_t seed;
    int64_t micro_batch;        /* 0: the whole batch at once */
    int recompute;              /* activation recomputation per layer */
    int cache_features;         /* cache frozen image features by file */
    int truncate;               /* cut captions that do not fit the positions: the
                                 * session's option, not saved in checkpoints */
} dlv_train_config;

void dlv_train_config_defaults(dlv_train_config *c);

/* One example: an image, its short caption, an optional long caption. */
typedef struct dlv_train_example {
    const dlv_image *image;
    const char *caption;
    const char *long_caption;   /* NULL: no next-token loss for it */
} dlv_train_example;

typedef struct dlv_trainer dlv_trainer;

/* Whether saving a checkpoint into ckpt_dir and the model into model_dir
 * (either NULL: not asked) would be allowed (dlv_dir_save_check). */
dlv_status dlv_trainer_check_outputs(const dlv_trainer *t, const char *ckpt_dir,
                                     const char *model_dir);

/* Sets the trainer's truncation (the session's option) after new or load. */
void dlv_trainer_set_truncate(dlv_trainer *t, int truncate);

/* A trainer for model m (its kind picked from the model) computing on be,
 * starting from adapter `from` (kinds with adapters; may be NULL: the
 * model's defaults). */
dlv_status dlv_trainer_new(const dlv_model *m, dlv_backend *be, const dlv_train_config *cfg,
                           const dlv_adapter *from, dlv_trainer **out);
void dlv_trainer_free(dlv_trainer *t);

/* One optimizer step on n examples. stats fields as dlv_train_stats. */
dlv_status dlv_trainer_step(dlv_trainer *t, const dlv_train_example *ex, size_t n,
                            dlv_train_stats *stats);

int64_t dlv_trainer_steps(const dlv_trainer *t);

/* The logit scale being trained (log of 1/temperature). */
dlv_status dlv_trainer_logit_scale(dlv_trainer *t, float *out);

/* The trainer's current adapter (downloaded), written into *out
 * (replacing it); DLV_E_UNSUPPORTED for kinds without adapters. */
dlv_status dlv_trainer_export(dlv_trainer *t, dlv_adapter *out);

/* Checkpoints: the kind's files (LLaVA: the adapter) plus
 * train_state.safetensors (parameters, Adam moments, step, RNG state,
 * config), the directory replaced atomically. */
dlv_status dlv_trainer_save(dlv_trainer *t, const char *dir);
/* Restores a trainer saved by dlv_trainer_save; the following steps are
 * bit-identical to the uninterrupted run's. */
dlv_status dlv_trainer_load(const dlv_model *m, dlv_backend *be, const char *dir,
                            dlv_trainer **out);
/* Data-parallel steps over comm (NULL: one process): each step's examples
 * are this rank's share of the global batch; the contrastive loss and the
 * kind's own loss are those of the global batch and the gradients are
 * summed over the ranks (docs/training.md "Distributed"). A trainer loaded
 * from a checkpoint refuses a comm of another world size. */
dlv_status dlv_trainer_set_comm(dlv_trainer *t, dlv_comm *comm);

/* A Hugging Face model directory with the trained weights (dtype NULL:
 * each tensor's own; "f32", "bf16", "f16"). */
dlv_status dlv_trainer_save_model(dlv_trainer *t, const char *dir, const char *dtype);

/* What encoding on a training session reads: the weights as they are being
 * trained, one tensor per weight-table entry (the model's own where not
 * trained), and for LLaVA the adapter's device state (model/llava/llava.h's
 * dlv_llava_params). */
const dlv_tensor *dlv_trainer_tensors(const dlv_trainer *t);
const void *dlv_trainer_encode_view(const dlv_trainer *t);

#endif
