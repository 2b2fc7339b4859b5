/* Launchers of the fused attention kernels (kernels_attention.cu), for the
 * attention ops (cuda_ops_attention.c). Plain C; each launcher queues its
 * kernels on stream s and returns the first launch error (cudaSuccess when
 * everything is queued). Semantics: dlv_attention_args and
 * dlv_attention_bw_args (backend/backend.h); shapes already validated. */
#ifndef DLV_BACKEND_CUDA_KERNELS_ATTENTION_H
#define DLV_BACKEND_CUDA_KERNELS_ATTENTION_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* The largest head_dim the kernels take (each lane of a warp keeps
 * head_dim / 32 output values in registers). */
#define DLV_CUK_ATTN_MAX_HEAD_DIM 256

/* The arguments of both directions; the pointers a direction does not use
 * are NULL. */
typedef struct dlv_cuk_attn {
    float *out;                     /* forward: [batch, n_q, n_heads * head_dim] */
    float *dq, *dk, *dv;            /* backward: accumulated (+=) */
    const float *dout;              /* backward */
    const float *q, *k, *v;
    const uint8_t *key_mask;        /* [batch, n_kv] or NULL */
    /* Backward: scratch of 3 * batch * n_heads * n_q floats for the rows'
     * softmax maximum, sum and D = dO . O. */
    float *row_stats;
    int64_t batch, n_q, n_kv, n_heads, n_kv_heads, head_dim;
    float scale;
    int causal;
} dlv_cuk_attn;

/* out = softmax(scale q k^T, masked) v. Needs batch, n_q, n_heads > 0 and
 * 0 < head_dim <= DLV_CUK_ATTN_MAX_HEAD_DIM; n_kv may be 0 (zeros). */
cudaError_t dlv_cuk_attention_forward(cudaStream_t s, const dlv_cuk_attn *a);
/* dq, dk, dv += the gradients for dout. Needs batch, n_q, n_kv, n_heads > 0
 * and 0 < head_dim <= DLV_CUK_ATTN_MAX_HEAD_DIM, and a->row_stats. */
cudaError_t dlv_cuk_attention_backward(cudaStream_t s, const dlv_cuk_attn *a);

DLV_CUK_END_DECLS

#endif
