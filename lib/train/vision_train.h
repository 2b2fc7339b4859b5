/* The training pass of the vision tower + projector: a forward that matches
 * model/vision_tower.c (dlv_vision_features) and saves what its backward
 * needs, and the backward, which accumulates (+=) the gradient of every
 * vision / projector weight the view marks trained (dlv_wview_get's grad):
 *
 *   embeddings   patch_embedding.weight (dW += dY^T patches), .bias (SigLIP),
 *                class_embedding (CLIP), position_embedding.weight,
 *                pre_layrnorm.weight / .bias (CLIP)
 *   layers       layer_norm1/2, self_attn.{q,k,v,out}_proj, mlp.fc1/fc2
 *                (weights and biases) of the layers that run
 *   projector    linear_1, linear_2 (weights, and biases when present)
 *
 * There is no gradient w.r.t. the pixels. Every weight is read through the
 * view (a trained one usually as an f32 copy); activations are f32, host
 * memory (CPU backend only, as the inference forward).
 *
 * Only what the backward needs is saved: the backward stops at the lowest
 * stage (embeddings, layer l, projector) that holds a trained weight, and the
 * forward saves nothing below it. With nothing trained the backward is a
 * no-op. */
#ifndef DLV_TRAIN_VISION_TRAIN_H
#define DLV_TRAIN_VISION_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "train/wview.h"

/* Saved activations of one forward (owns backend buffers). */
typedef struct dlv_vision_tape dlv_vision_tape;

/* Runs the tower + projector on n_images images.
 *   pixels    [n_images, channels, image_size, image_size] f32
 *   features  [n_images, F, T] f32 (F = dlv_vision_n_tokens, T = text
 *             hidden): the same values as dlv_vision_features (same ops in
 *             the same order; equal bit for bit for a frozen view)
 *   tape      receives the saved activations for the backward (free with
 *             dlv_vision_tape_free); NULL runs the forward only.
 * Equivalent to dlv_vision_train_forward_ex with recompute = 0. */
dlv_status dlv_vision_train_forward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                    const float *pixels, int64_t n_images,
                                    dlv_vision_tape **tape, float *features);

/* recompute = 0 keeps every encoder layer's internal activations (per
 * image and layer about (8 D + I) S floats); recompute = 1 keeps only each
 * layer's input (D S floats) and the backward re-runs the layer's forward
 * before differentiating it (one more forward pass of the tower). The
 * gradients are the same either way, bit for bit. */
dlv_status dlv_vision_train_forward_ex(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                       const float *pixels, int64_t n_images, int recompute,
                                       dlv_vision_tape **tape, float *features);

/* Accumulates the weight gradients for dL/dfeatures = dfeatures ([n_images,
 * F, T], the forward's n_images) into the view's grad buffers. wv must be the
 * forward's view (same values; its grad buffers may be swapped). The tape
 * stays valid (the backward may run again, e.g. with another dfeatures). */
dlv_status dlv_vision_train_backward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                     dlv_vision_tape *tape, const float *dfeatures);

/* The bytes of backend memory the tape holds (0 for NULL). */
size_t dlv_vision_tape_bytes(const dlv_vision_tape *t);

/* Accepts NULL. */
void dlv_vision_tape_free(dlv_vision_tape *t);

#endif
