/* LLaVA's image pathway on device tensors: the vision tower up to the
 * selected layer (hidden_states[vision_feature_layer]), the selection
 * ("default" drops each image's first token, "full" keeps all) and the
 * projector linear_2(act(linear_1(x))), forward and backward. Every GEMM
 * runs per image, so an image's features do not depend on its batch
 * companions, bit for bit. */
#ifndef DLV_MODEL_LLAVA_LLAVA_VISION_H
#define DLV_MODEL_LLAVA_LLAVA_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/llava/llava_weights.h"

typedef struct dlv_llava_vision_tape dlv_llava_vision_tape;

/* Optional device outputs for tests: hidden_states [run + 1, n S, D] and
 * the selected rows [n F, D] (each may be NULL). */
typedef struct dlv_llava_vision_trace {
    float *hidden_states;
    float *selected;
} dlv_llava_vision_trace;

/* pixels [n, C, H, W] (device) -> features [n F, T] (device). tape: NULL
 * keeps nothing; otherwise what the backward needs for the projector and
 * the tower stages from `from` up (-1: the embeddings and every layer; l:
 * layers l ..; vision_run or more: the projector only). */
dlv_status dlv_llava_vision_forward(dlv_backend *be, const dlv_llava_dims *d,
                                    const dlv_llava_w *w, const float *pixels, int64_t n,
                                    int64_t from, int recompute, dlv_llava_vision_tape **tape,
                                    float *features, const dlv_llava_vision_trace *trace);

/* The projector alone, from the selected tower rows selected [n F, D]
 * (device; as dlv_llava_vision_forward's trace gives them) -> features [n F,
 * T]: for a frozen tower, whose rows need not be computed again. The tape's
 * backward stops at the projector. */
dlv_status dlv_llava_projector_forward(dlv_backend *be, const dlv_llava_dims *d,
                                       const dlv_llava_w *w, const float *selected, int64_t n,
                                       dlv_llava_vision_tape **tape, float *features);

/* Accumulates the gradients gw marks present (projector and tower) for
 * dfeatures [n F, T] (device). w must be the forward's. */
dlv_status dlv_llava_vision_backward(dlv_backend *be, const dlv_llava_w *w, const dlv_llava_w *gw,
                                     dlv_llava_vision_tape *tape, const float *dfeatures);

void dlv_llava_vision_tape_free(dlv_llava_vision_tape *t);
size_t dlv_llava_vision_tape_bytes(const dlv_llava_vision_tape *t);

#endif
