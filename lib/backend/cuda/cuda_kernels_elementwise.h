/* Launchers of the elementwise kernels (kernels_elementwise.cu): add,
 * the activations and SwiGLU with their backward passes, and the patch
 * unfolding (im2col). Each queues its kernel on stream s and returns
 * cudaGetLastError(); callers launch nothing for an empty tensor. The
 * formulas are the CPU's (cpu/cpu_act.c, cpu/cpu_backward.c,
 * cpu/cpu_misc.c) in f32. */
#ifndef DLV_BACKEND_CUDA_KERNELS_ELEMENTWISE_H
#define DLV_BACKEND_CUDA_KERNELS_ELEMENTWISE_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* out[r, c] = a[r, c] + b[c] (broadcast_b) or + b[r, c]; b stored as dt.
 * out may be a. */
cudaError_t dlv_cuk_add(cudaStream_t s, float *out, const float *a, const void *b,
                        dlv_cuk_dtype dt, int broadcast_b, int64_t rows, int64_t cols);

/* out[i] = act(inp[i]); out may be inp. */
cudaError_t dlv_cuk_activation(cudaStream_t s, dlv_cuk_act act, float *out, const float *inp,
                               int64_t n);

/* dinp[i] += dout[i] * act'(inp[i]) (relu: a select, as the CPU). */
cudaError_t dlv_cuk_activation_backward(cudaStream_t s, dlv_cuk_act act, float *dinp,
                                        const float *dout, const float *inp, int64_t n);

/* out[i] = silu(gate[i]) * up[i]; out may be gate or up. */
cudaError_t dlv_cuk_swiglu(cudaStream_t s, float *out, const float *gate, const float *up,
                           int64_t n);

/* dgate += dout * up * silu'(gate), dup += dout * silu(gate). */
cudaError_t dlv_cuk_swiglu_backward(cudaStream_t s, float *dgate, float *dup,
                                    const float *dout, const float *gate, const float *up,
                                    int64_t n);

/* pixels [c, h, w] to out [(h/patch) * (w/patch), c * patch * patch]
 * (dlv_im2col_patches); callers ensure at least one patch and c > 0. */
cudaError_t dlv_cuk_im2col_patches(cudaStream_t s, float *out, const float *pixels, int64_t c,
                                   int64_t h, int64_t w, int64_t patch);

DLV_CUK_END_DECLS

#endif
