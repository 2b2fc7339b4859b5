/* nn.Linear with an optional PEFT LoRA pair, forward and backward, on the
 * backend ops. Every network block uses these (decoder, encoder, projector,
 * embeddings' patch projection, CLIP's projections, the LM head).
 *
 *   y = x W^T (+ b) (+ scale (x A^T) B^T)
 *   dx (+)= dy W + scale (dy B) A,   dW += dy^T x,   db += colsum(dy),
 *   dB += scale dy^T (x A^T),        dA += scale (dy B)^T x
 *
 * All pointers are device memory; weights are device tensors of any float
 * dtype (widened exactly by matmul), LoRA and gradients f32. */
#ifndef DLV_MODEL_NN_LINEAR_H
#define DLV_MODEL_NN_LINEAR_H

#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"

/* W [out, in] and an optional bias [out] (b absent). */
typedef struct dlv_linear {
    dlv_tensor w, b;
} dlv_linear;

/* A LoRA pair on one module: A [rank, in], B [out, rank] (f32 device
 * memory); a NULL: none. */
typedef struct dlv_lora_pair {
    const float *a, *b;
    int64_t rank;
    float scale;
} dlv_lora_pair;

/* The gradients of a LoRA pair (f32, accumulated); NULL: not wanted. */
typedef struct dlv_lora_pair_grad {
    float *a, *b;
} dlv_lora_pair_grad;

static inline int64_t dlv_linear_in(const dlv_linear *l) { return l->w.shape[l->w.ndim - 1]; }
static inline int64_t dlv_linear_out(const dlv_linear *l)
{
    return dlv_tensor_nelem(&l->w) / dlv_linear_in(l);
}

/* y [rows, out] = x [rows, in] W^T (+ b) (+ LoRA). lora may be NULL;
 * lora_tmp [rows, rank] scratch when lora->a is set. */
dlv_status dlv_linear_forward(dlv_backend *be, float *y, const float *x, int64_t rows,
                              const dlv_linear *w, const dlv_lora_pair *lora, float *lora_tmp);

/* The backward of dlv_linear_forward for dy [rows, out] and its input x.
 * dx (may be NULL: not wanted) = dy W (+ LoRA) + dx_beta * dx. gw: the
 * gradients of W and b (each absent: frozen; gw NULL: all frozen), added
 * into. lora / glora as in the forward (glora NULL: A and B frozen);
 * tmp, tmp2 [rows, rank] scratch when lora->a is set. */
dlv_status dlv_linear_backward(dlv_backend *be, float *dx, float dx_beta, const float *dy,
                               const float *x, int64_t rows, const dlv_linear *w,
                               const dlv_linear *gw, const dlv_lora_pair *lora,
                               const dlv_lora_pair_grad *glora, float *tmp, float *tmp2);

#endif
