/* A ViT tower's embeddings and encoder (CLIPVisionTransformer /
 * SiglipVisionTransformer up to the encoder's output), forward and backward
 * on device tensors:
 *   patches = im2col(pixels)                 [n * P, C * p * p]
 *   x0      = [class] + patches W^T (+ b) + position embeddings
 *             (CLIP: a class token first; SigLIP: a patch bias, no class)
 *   x       = pre_layrnorm(x0)               (CLIP; SigLIP: x = x0)
 *   layers  the encoder (model/nn/encoder.h), per image GEMMs
 * post_layernorm and heads are the model kind's (LLaVA never reads them). */
#ifndef DLV_MODEL_NN_VIT_H
#define DLV_MODEL_NN_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"
#include "model/nn/encoder.h"
#include "model/nn/linear.h"

typedef struct dlv_vit_w {
    dlv_linear patch;           /* [D, C * p * p] (+ bias [D]: SigLIP) */
    dlv_tensor class_emb;       /* [D]: CLIP; absent for SigLIP */
    dlv_tensor pos_emb;         /* [S, D] */
    dlv_layernorm_w pre_ln;     /* CLIP's pre_layrnorm; absent for SigLIP */
    int64_t n_layers;           /* layers the table holds (some may be absent) */
    dlv_encoder_layer_w *layers;
    dlv_layernorm_w post_ln;    /* absent when pruned */
} dlv_vit_w;

typedef struct dlv_vit_dims {
    int64_t channels, image_size, patch;
    dlv_encoder_dims enc;
} dlv_vit_dims;

/* Sequence length: patches (+ 1 with a class token). */
int64_t dlv_vit_seq_len(const dlv_vit_dims *d, const dlv_vit_w *w);

typedef struct dlv_vit_tape dlv_vit_tape;

/* Runs the embeddings and layers [0, n_run) on pixels [n, C, H, W]
 * (device) and writes the hidden states after n_run layers to out
 * [n * S, D] (device). tape: NULL keeps nothing; otherwise what the
 * backward needs for the stages from `from` up: from = -1 the embeddings
 * and every layer, from = l in [0, n_run] layers l .. n_run - 1 only (n_run:
 * nothing). trace (device, optional) [n_run + 1, n * S, D]: hidden_states
 * as HF returns them (after pre_layrnorm, then each layer's output). */
dlv_status dlv_vit_forward(dlv_backend *be, const dlv_vit_dims *d, const dlv_vit_w *w,
                           int64_t n_run, const float *pixels, int64_t n, int64_t from,
                           int recompute, dlv_vit_tape **tape, float *out, float *trace);

/* Accumulates the gradients of the weights gw marks present for dout
 * [n * S, D] (device), down to the forward's stop. */
dlv_status dlv_vit_backward(dlv_backend *be, const dlv_vit_w *w, const dlv_vit_w *gw,
                            dlv_vit_tape *tape, const float *dout);

void dlv_vit_tape_free(dlv_vit_tape *t);
size_t dlv_vit_tape_bytes(const dlv_vit_tape *t);

#endif
