/* The optimizer ops (cpu/cpu_optim.c): AdamW and SGD steps, elementwise in
 * f32 with PyTorch's expressions, and the sum of squares (double) that the
 * trainer's gradient-norm clipping reads.
 *
 * Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks
 * it against the CPU where one exists. */
#include "backend/cuda/cuda_device.cuh"
#include "backend/cuda/cuda_kernels_optim.h"

using namespace dlv_cuk;

namespace {

struct AdamW {
    float *params, *m, *v;
    const float *grads;
    int64_t n;
    float step_size, beta1, beta2, eps, bc2_sqrt, decay_mul, grad_scale;
};

/* PyTorch's single-tensor AdamW (foreach=False) in float, as the CPU. */
__global__ void __launch_bounds__(kBlock) adamw_kernel(AdamW a)
{
    const float b1 = a.beta1, b2 = a.beta2;
    for (int64_t i = gs_begin(); i < a.n; i += gs_stride()) {
        const float g = a.grads[i] * a.grad_scale;
        const float p = a.params[i] * a.decay_mul;
        const float m = b1 * a.m[i] + (1.0f - b1) * g;
        const float v = b2 * a.v[i] + (1.0f - b2) * g * g;
        const float denom = sqrtf(v) / a.bc2_sqrt + a.eps;
        a.m[i] = m;
        a.v[i] = v;
        a.params[i] = p - a.step_size * (m / denom);
    }
}

__global__ void __launch_bounds__(kBlock)
    sgd_kernel(float *params, const float *grads, int64_t n, float lr, float wd, float scale)
{
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) {
        float g = grads[i] * scale;
        if (wd != 0.0f) g += wd * params[i];
        params[i] -= lr * g;
    }
}

/* Block b of DLV_CUK_SUM_SQUARES_BLOCK elements -> sums[b], one CUDA block
 * per block of elements (grid-stride over them). */
__global__ void __launch_bounds__(kBlock)
    sumsq_blocks_kernel(const float *x, int64_t n, int64_t n_blocks, double *sums)
{
    __shared__ double red[32];
    for (int64_t b = blockIdx.x; b < n_blocks; b += gridDim.x) {
        const int64_t lo = b * DLV_CUK_SUM_SQUARES_BLOCK;
        const int64_t hi = lo + DLV_CUK_SUM_SQUARES_BLOCK < n ? lo + DLV_CUK_SUM_SQUARES_BLOCK : n;
        double s = 0.0;
        for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
            const double d = (double)x[i];
            s += d * d;
        }
        s = block_sum(s, red);
        if (threadIdx.x == 0) sums[b] = s;
    }
}

/* out = the sum of the block sums: one block, thread k adding blocks k,
 * k + blockDim, ... in order, then the fixed tree. */
__global__ void __launch_bounds__(1024)
    sumsq_final_kernel(const double *sums, int64_t n_blocks, double *out)
{
    __shared__ double red[32];
    double s = 0.0;
    for (int64_t b = threadIdx.x; b < n_blocks; b += blockDim.x) s += sums[b];
    s = block_sum(s, red);
    if (threadIdx.x == 0) *out = s;
}

int64_t sumsq_n_blocks(int64_t n)
{
    return (n + DLV_CUK_SUM_SQUARES_BLOCK - 1) / DLV_CUK_SUM_SQUARES_BLOCK;
}

} // namespace

extern "C" cudaError_t dlv_cuk_adamw(cudaStream_t s, float *params, float *m, float *v,
                                     const float *grads, int64_t n, float step_size,
                                     float beta1, float beta2, float eps, float bc2_sqrt,
                                     float decay_mul, float grad_scale)
{
    AdamW a;
    a.params = params;
    a.m = m;
    a.v = v;
    a.grads = grads;
    a.n = n;
    a.step_size = step_size;
    a.beta1 = beta1;
    a.beta2 = beta2;
    a.eps = eps;
    a.bc2_sqrt = bc2_sqrt;
    a.decay_mul = decay_mul;
    a.grad_scale = grad_scale;
    adamw_kernel<<<grid_for(n, kBlock), kBlock, 0, s>>>(a);
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_sgd(cudaStream_t s, float *params, const float *grads, int64_t n,
                                   float lr, float weight_decay, float grad_scale)
{
    sgd_kernel<<<grid_for(n, kBlock), kBlock, 0, s>>>(params, grads, n, lr, weight_decay,
                                                      grad_scale);
    return cudaGetLastError();
}

extern "C" size_t dlv_cuk_sum_squares_scratch_bytes(int64_t n)
{
    const int64_t nb = sumsq_n_blocks(n);
    return (size_t)(nb > 0 ? nb : 1) * sizeof(double);
}

extern "C" cudaError_t dlv_cuk_sum_squares(cudaStream_t s, double *out, const float *x,
                                           int64_t n, void *scratch)
{
    const int64_t nb = sumsq_n_blocks(n);
    double *sums = static_cast<double *>(scratch);
    sumsq_blocks_kernel<<<grid_for(nb, 1), kBlock, 0, s>>>(x, n, nb, sums);
    sumsq_final_kernel<<<1, 1024, 0, s>>>(sums, nb, out);
    return cudaGetLastError();
}
