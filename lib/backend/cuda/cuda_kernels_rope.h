/* Launcher of rotary position embedding and its backward (kernels_rope.cu).
 * The positions have been checked (>= 0) by the caller before this is
 * queued; n_tokens > 0, n_heads > 0, head_dim even and > 0. */
#ifndef DLV_BACKEND_CUDA_KERNELS_ROPE_H
#define DLV_BACKEND_CUDA_KERNELS_ROPE_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* The frequencies a launch can take by value, as a kernel argument: up to
 * head_dim 1024. Beyond that the caller uploads them (inv_freq_dev). */
#define DLV_CUK_ROPE_MAX_HALF 512

/* In place on x [n_tokens, n_heads * head_dim]: HF's rotate-half rotation
 * by the angles positions[t] * inv_freq[i] (f32), sin_sign 1 (forward) or
 * -1 (the backward, R^T). The frequencies are computed by the caller on the
 * host exactly as the CPU computes them (1 / powf(theta, 2i / d) in f32), so
 * the angles have the CPU's bits: at position 4095 an ulp of inv_freq moves
 * the angle by ~2e-4 rad. inv_freq_dev: NULL to pass inv_freq_host (half =
 * head_dim / 2 <= DLV_CUK_ROPE_MAX_HALF values) by value, else the same
 * values in device memory (any half). */
cudaError_t dlv_cuk_rope(cudaStream_t s, float *x, const int32_t *positions, int64_t n_tokens,
                         int64_t n_heads, int64_t head_dim, const float *inv_freq_host,
                         const float *inv_freq_dev, float sin_sign);

/* In place on x [n_tokens, n_heads * head_dim]: the same rotation by the
 * per-token tables cos_tab, sin_tab [n_tokens, head_dim / 2] (device
 * memory, f32; the model builds the angles: M-RoPE, 2-D vision RoPE),
 * sin_sign 1 (forward) or -1 (backward, R^T). */
cudaError_t dlv_cuk_rope_table(cudaStream_t s, float *x, const float *cos_tab,
                               const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                               int64_t head_dim, float sin_sign);

DLV_CUK_END_DECLS

#endif
