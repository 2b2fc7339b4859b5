/* Launchers of the row normalisations and their backward passes
 * (kernels_norm.cu): LayerNorm, RMSNorm (each optionally fused with the
 * residual add before it), L2 normalisation, and the column sums of the
 * parameter gradients (norm weights, biases).
 *
 * Each queues its kernels on stream s and returns at once with
 * cudaGetLastError(). The semantics are the checked wrappers' (backend.h),
 * the arithmetic the CPU kernels' (cpu/cpu_norm.c, cpu/cpu_norm_bw.c): row
 * statistics in double, rounded to f32 once, then the same f32 expressions.
 * Callers handle rows == 0 or cols == 0 (nothing is launched for them). */
#ifndef DLV_BACKEND_CUDA_KERNELS_NORM_H
#define DLV_BACKEND_CUDA_KERNELS_NORM_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* out = layernorm(x) (layer != 0) or rmsnorm(x), x = inp, or with res
 * non-NULL x = sum = inp + res (the fused residual add; sum may be inp).
 * weight and bias (layernorm only) are dt, either may be NULL. out may be
 * inp when res is NULL. */
cudaError_t dlv_cuk_norm_forward(cudaStream_t s, int layer, float *out, const float *inp,
                                 const float *res, float *sum, const void *weight,
                                 const void *bias, dlv_cuk_dtype dt, int64_t rows, int64_t cols,
                                 float eps);

/* out = x / max(||x||_2, 1e-12) per row; out may be inp. */
cudaError_t dlv_cuk_l2_normalize(cudaStream_t s, float *out, const float *inp, int64_t rows,
                                 int64_t cols);

/* Bytes of device scratch the backward launchers below need for rows x
 * cols (per-row statistics and the partial column sums). */
size_t dlv_cuk_norm_bw_scratch_bytes(int64_t rows, int64_t cols);

/* dinp += d rmsnorm / d inp . dout; dweight (f32, or NULL) += column sums.
 * scratch: dlv_cuk_norm_bw_scratch_bytes(rows, cols) bytes of device
 * memory, 8-byte aligned, free for the kernels' lifetime on s. */
cudaError_t dlv_cuk_rmsnorm_backward(cudaStream_t s, float *dinp, float *dweight,
                                     const float *dout, const float *inp, const void *weight,
                                     dlv_cuk_dtype dt, int64_t rows, int64_t cols, float eps,
                                     void *scratch);

/* The same for LayerNorm; dweight, dbias f32 or NULL. */
cudaError_t dlv_cuk_layernorm_backward(cudaStream_t s, float *dinp, float *dweight,
                                       float *dbias, const float *dout, const float *inp,
                                       const void *weight, dlv_cuk_dtype dt, int64_t rows,
                                       int64_t cols, float eps, void *scratch);

/* dinp += the backward of dlv_l2_normalize (with its 1e-12 clamp). */
cudaError_t dlv_cuk_l2_normalize_backward(cudaStream_t s, float *dinp, const float *dout,
                                          const float *inp, int64_t rows, int64_t cols);

/* dbias[c] += sum_r dout[r, c]; scratch as for the norm backwards. */
cudaError_t dlv_cuk_bias_backward(cudaStream_t s, float *dbias, const float *dout, int64_t rows,
                                  int64_t cols, void *scratch);

DLV_CUK_END_DECLS

#endif
