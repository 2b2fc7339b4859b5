/* Launchers of the optimizer ops (kernels_optim.cu): AdamW and SGD steps
 * and the sum of squares behind gradient-norm clipping. n > 0 unless
 * stated. */
#ifndef DLV_BACKEND_CUDA_KERNELS_OPTIM_H
#define DLV_BACKEND_CUDA_KERNELS_OPTIM_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* One AdamW step (dlv_adamw_args, backend.h) in f32, elementwise. */
cudaError_t dlv_cuk_adamw(cudaStream_t s, float *params, float *m, float *v,
                          const float *grads, int64_t n, float step_size, float beta1,
                          float beta2, float eps, float bc2_sqrt, float decay_mul,
                          float grad_scale);

/* params[i] -= lr * (grads[i] * grad_scale + weight_decay * params[i]). */
cudaError_t dlv_cuk_sgd(cudaStream_t s, float *params, const float *grads, int64_t n, float lr,
                        float weight_decay, float grad_scale);

/* Bytes of device scratch dlv_cuk_sum_squares needs for n elements (one
 * double per block of DLV_CUK_SUM_SQUARES_BLOCK). */
#define DLV_CUK_SUM_SQUARES_BLOCK 4096
size_t dlv_cuk_sum_squares_scratch_bytes(int64_t n);

/* *out (device memory, one double) = sum of x[i]^2 in double: per block of
 * DLV_CUK_SUM_SQUARES_BLOCK elements (the CPU's blocks), then the block
 * sums, each in a fixed order, so the result is reproducible. scratch:
 * dlv_cuk_sum_squares_scratch_bytes(n) bytes, 8-byte aligned. */
cudaError_t dlv_cuk_sum_squares(cudaStream_t s, double *out, const float *x, int64_t n,
                                void *scratch);

DLV_CUK_END_DECLS

#endif
