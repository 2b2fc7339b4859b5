/* A view of a model's weights for training: each weight of the model's table
 * (model/weights.h) is read either from the checkpoint (memory-mapped, any
 * dtype) or from a trainable f32 copy, and has a gradient buffer (f32, same
 * shape) when it is trained. Forward and backward code read every weight
 * through a view, so one code path serves frozen and trained weights, and
 * frozen weights never get a gradient buffer (they may stay bf16). */
#ifndef DLV_TRAIN_WVIEW_H
#define DLV_TRAIN_WVIEW_H

#include <stddef.h>

#include "io/safetensors.h"
#include "model/weights.h"

typedef struct dlv_wview {
    const dlv_weights *weights;        /* the model's table (dlv_model_weights) */
    /* [weights->n] or NULL: a non-NULL entry replaces the checkpoint's
     * tensor (an F32 trainable copy; name and shape as the original). */
    const dlv_st_tensor *const *value;
    /* [weights->n] or NULL: the gradient buffer of a trained weight (f32,
     * n_elements floats, accumulated into with +=), NULL for a frozen one. */
    float *const *grad;
} dlv_wview;

/* The index of (part, canonical) in the table, or -1. */
ptrdiff_t dlv_wview_index(const dlv_wview *v, dlv_weight_part part, const char *canonical);

/* The tensor to read for (part, canonical), NULL if the model has none
 * (an optional weight); *grad (if grad is non-NULL) receives its gradient
 * buffer or NULL when it is frozen. */
const dlv_st_tensor *dlv_wview_get(const dlv_wview *v, dlv_weight_part part,
                                   const char *canonical, float **grad);

/* The plain view of a model: every weight from the checkpoint, none
 * trained. */
dlv_wview dlv_wview_frozen(const dlv_weights *w);

#endif
