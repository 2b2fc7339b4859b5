/* Contrastive training of a CLIPModel (docs/training.md, "CLIPModel"): CLIP's
 * symmetric InfoNCE with its learnable logit_scale over the two towers'
 * weights, projections and logit_scale; dispatched from api/train.c for
 * CLIPModel sessions. Every trained weight is an f32 copy in one flat buffer
 * (parameters, gradients and both Adam moments alike), read by every forward
 * through the trainer's weight view. */
#ifndef DLV_TRAIN_CLIP_TRAINER_H
#define DLV_TRAIN_CLIP_TRAINER_H

#include <stddef.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "train/trainer.h"
#include "train/wview.h"

typedef struct dlv_clip_trainer dlv_clip_trainer;

/* cfg->sets: the defaults (soft,lora,logit_scale) train everything; else
 * "vision" = vision_model.* + visual_projection, "llm" = text_model.* +
 * text_projection, "projector" = both projections, "logit_scale"; "soft" and
 * "lora" are DLV_E_UNSUPPORTED, as are contrastive 0, micro_batch,
 * recompute and cache_features (the next-token loss does not apply: long
 * captions are ignored). */
dlv_status dlv_clip_trainer_new(const dlv_model *m, dlv_backend *be, const dlv_train_config *cfg,
                                dlv_clip_trainer **out);
void dlv_clip_trainer_free(dlv_clip_trainer *t);

dlv_status dlv_clip_trainer_step(dlv_clip_trainer *t, dlv_backend *be,
                                 const dlv_train_example *ex, size_t n,
                                 dlv_train_stats *stats);

const dlv_wview *dlv_clip_trainer_view(const dlv_clip_trainer *t);

/* A Hugging Face CLIPModel directory: config.json (torch_dtype updated when
 * dtype is forced), preprocessor and tokenizer files copied,
 * model.safetensors with every checkpoint tensor, the trained ones from the
 * trainer. dtype as dlv_train_save_model. */
dlv_status dlv_clip_trainer_save_model(const dlv_clip_trainer *t, const char *dir,
                                       const char *dtype);

#endif
