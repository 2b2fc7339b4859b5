/* Training state and the training step (docs/training.md). The trainable
 * set's parameters, gradients and Adam moments each live in one flat f32
 * buffer laid out as
 *   [image_prompt | text_prompt | logit_scale | LoRA (dlv_lora layout)]
 * and the step is GradCache-style: (1) embed the whole batch without
 * gradients, (2) take the contrastive loss and its gradient with respect to
 * the embeddings, (3) re-run micro-batches with gradients (the next-token
 * loss rides on the image sequences' forward), (4) clip and update. */
#ifndef DLV_TRAIN_TRAINER_H
#define DLV_TRAIN_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
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
} dlv_train_config;

void dlv_train_config_defaults(dlv_train_config *c);

/* One example: an image, its short caption, an optional long caption. */
typedef struct dlv_train_example {
    const dlv_image *image;
    const char *caption;
    const char *long_caption;   /* NULL: no next-token loss for it */
} dlv_train_example;

typedef struct dlv_trainer dlv_trainer;

/* A trainer for model m starting from adapter `from` (its prompts, soft
 * prompts, logit scale and LoRA; missing parts are initialised: soft
 * prompts = the instruction's token embeddings, LoRA A as PEFT (uniform in
 * +-1/sqrt(in)) from the seed, B = 0). */
dlv_status dlv_trainer_new(const dlv_model *m, dlv_backend *be, const dlv_train_config *cfg,
                           const dlv_adapter *from, dlv_trainer **out);
void dlv_trainer_free(dlv_trainer *t);

/* One optimizer step on n examples. stats fields as dlv_train_stats. */
dlv_status dlv_trainer_step(dlv_trainer *t, dlv_backend *be, const dlv_train_example *ex,
                            size_t n, dlv_train_stats *stats);

/* The trainer's current adapter, written into *out (replacing it). */
dlv_status dlv_trainer_export(const dlv_trainer *t, dlv_adapter *out);

/* Checkpoints: the adapter files plus train_state.safetensors (moments,
 * step, RNG state, config), each file atomic. */
dlv_status dlv_trainer_save(const dlv_trainer *t, const char *dir);
/* Restores a trainer saved by dlv_trainer_save (its config replaces cfg's
 * optimizer state fields; the result continues bit-identically). */
dlv_status dlv_trainer_load(const dlv_model *m, dlv_backend *be, const char *dir,
                            dlv_trainer **out);

int64_t dlv_trainer_steps(const dlv_trainer *t);

/* The trainer's view of the model's weights when it trains some of them
 * (projector, llm or vision sets): every forward (encoding included) must
 * read the weights through it. NULL when only adapters are trained. */
struct dlv_wview;

/* Writes a Hugging Face model directory: the model's config, preprocessor
 * and tokenizer files, and model.safetensors with every checkpoint tensor,
 * the trained ones from the trainer. dtype NULL keeps each tensor's dtype;
 * "f32", "bf16" or "f16" converts every float tensor (and sets
 * torch_dtype in config.json). Atomic as a directory. */
dlv_status dlv_trainer_save_model(const dlv_trainer *t, const char *dir, const char *dtype);
const struct dlv_wview *dlv_trainer_view(const dlv_trainer *t);

#endif
