/* Helpers to bind typed weight views (model/llava/llava_weights.h, model/clip/clip.h)
 * over a tensor per weight-table entry: looked up by canonical name once,
 * when a view is made (model load, trainer set-up), never in a forward. */
#ifndef DLV_MODEL_WEIGHTS_BIND_H
#define DLV_MODEL_WEIGHTS_BIND_H

#include <stddef.h>
#include <stdint.h>

#include "backend/tensor.h"
#include "model/config.h"
#include "model/nn/encoder.h"
#include "model/nn/linear.h"
#include "model/nn/qwen2vl_vit.h"
#include "model/nn/vit.h"
#include "model/weights.h"

typedef struct dlv_binder {
    const dlv_weights *table;
    const dlv_tensor *tensors;   /* [table->n] */
} dlv_binder;

/* The tensor of (part, name); absent when the table has none. */
dlv_tensor dlv_bind_get(const dlv_binder *b, dlv_weight_part part, const char *name);
/* "<base>.weight" and "<base>.bias" (each possibly absent). */
dlv_linear dlv_bind_linear(const dlv_binder *b, dlv_weight_part part, const char *base);
dlv_layernorm_w dlv_bind_layernorm(const dlv_binder *b, dlv_weight_part part,
                                   const char *base);
/* The layers of a CLIP-style encoder under "<prefix>encoder.layers.<l>."
 * (layer_norm1/2, self_attn.{q,k,v,out}_proj, mlp.fc1/fc2) into
 * layers[0 .. n_layers). */
void dlv_bind_encoder(const dlv_binder *b, dlv_weight_part part, const char *prefix,
                      int64_t n_layers, dlv_encoder_layer_w *layers);
/* DLV_E_UNSUPPORTED unless a LayerNorm's weight and bias share a dtype (the
 * ops read both with one dtype; a checkpoint could store them apart).
 * label and name go into the message. */
dlv_status dlv_bind_check_layernorm(const dlv_layernorm_w *ln, const char *label,
                                    const char *name);
/* Checks every LayerNorm of a vision tower (dlv_bind_check_layernorm). */
dlv_status dlv_bind_check_vit(const dlv_vit_w *v, const char *label);
/* Checks the LayerNorms of encoder layers [0, n). */
dlv_status dlv_bind_check_encoder(const dlv_encoder_layer_w *layers, int64_t n,
                                  const char *label, const char *prefix);

/* Checks the LayerNorms of a Qwen2-VL tower (visual.blocks.<l>.norm1/2,
 * visual.merger.ln_q). */
dlv_status dlv_bind_check_qwen2vl_vit(const dlv_qwen2vl_vit_w *v, const char *label);

/* A CLIP / SigLIP vision tower under "vision_model." (v->layers allocated
 * by the caller with v->n_layers entries). */
void dlv_bind_vit(const dlv_binder *b, dlv_weight_part part, const dlv_vision_config *vc,
                  dlv_vit_w *v);

#endif
