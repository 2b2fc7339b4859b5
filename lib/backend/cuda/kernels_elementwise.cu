/* Elementwise kernels: add (residuals, biases, position embeddings), the
 * activations and SwiGLU with their backward passes, and the patch
 * unfolding of the vision tower (im2col).
 *
 * Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks
 * it against the CPU where one exists.
 *
 * Every formula is the CPU's f32 expression (cpu/cpu_act.c,
 * cpu/cpu_backward.c), written in the same order with the same constants
 * (the double products of the CPU's M_* constants rounded to f32 once).
 * nvcc's expf/erff/tanhf (no fast-math) are within 2 ulp of glibc's, which
 * the tests' tolerance covers. Each thread reads an element and writes the
 * same element, so the in-place uses the wrappers allow (out == inp, out ==
 * gate or up, out == a) are safe. Grid-stride loops over int64 indices. */
#include "backend/cuda/cuda_device.cuh"
#include "backend/cuda/cuda_kernels_elementwise.h"

using namespace dlv_cuk;

namespace {

/* The CPU's (float)M_SQRT1_2, (float)(M_SQRT2 * M_2_SQRTPI * 0.5) and
 * (float)(M_2_SQRTPI * M_SQRT1_2 * 0.5), from glibc's digits. */
constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double k2SqrtPi = 1.12837916709551257390;
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr float kGeluAlpha = (float)kSqrt1_2;
constexpr float kGeluTanhBeta = (float)(kSqrt2 * k2SqrtPi * 0.5);
constexpr float kGeluPdfBeta = (float)(k2SqrtPi * kSqrt1_2 * 0.5);
constexpr float kGeluTanhKappa = 0.044715f;

__device__ __forceinline__ float silu(float x)
{
    return x / (1.0f + expf(-x));
}

template <int kAct>
__device__ __forceinline__ float act_one(float x)
{
    if (kAct == DLV_CUK_QUICK_GELU) return x * (1.0f / (1.0f + expf(-(1.702f * x))));
    if (kAct == DLV_CUK_GELU) return x * 0.5f * (1.0f + erff(x * kGeluAlpha));
    if (kAct == DLV_CUK_GELU_TANH) {
        const float inner = kGeluTanhBeta * (x + kGeluTanhKappa * x * x * x);
        return 0.5f * x * (1.0f + tanhf(inner));
    }
    if (kAct == DLV_CUK_RELU) return x < 0.0f ? 0.0f : x; /* NaN kept, as torch.relu */
    return silu(x);
}

/* act'(x) as ATen's backward kernels compute it (cpu_backward.c's act_grad);
 * relu is handled by its select in the kernel. */
template <int kAct>
__device__ __forceinline__ float act_grad(float x)
{
    if (kAct == DLV_CUK_QUICK_GELU) {
        const float s = 1.0f / (1.0f + expf(-(1.702f * x)));
        return s + x * (1.702f * (s * (1.0f - s)));
    }
    if (kAct == DLV_CUK_GELU) {
        const float cdf = 0.5f * (1.0f + erff(x * kGeluAlpha));
        const float pdf = kGeluPdfBeta * expf(x * x * -0.5f);
        return cdf + x * pdf;
    }
    if (kAct == DLV_CUK_GELU_TANH) {
        const float x_sq = x * x, x_cube = x_sq * x;
        const float inner = kGeluTanhBeta * (x + kGeluTanhKappa * x_cube);
        const float t = tanhf(inner);
        const float left = 0.5f * x, right = 1.0f + t;
        const float left_d = 0.5f * right;
        const float right_d = 1.0f - t * t;
        const float inner_d = kGeluTanhBeta * (1.0f + 3.0f * kGeluTanhKappa * x_sq);
        return left_d + left * right_d * inner_d;
    }
    /* silu_backward */
    const float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

template <int kAct>
__global__ void __launch_bounds__(kBlock) act_kernel(float *out, const float *inp, int64_t n)
{
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) out[i] = act_one<kAct>(inp[i]);
}

template <int kAct>
__global__ void __launch_bounds__(kBlock)
    act_bw_kernel(float *dinp, const float *dout, const float *inp, int64_t n)
{
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) {
        if (kAct == DLV_CUK_RELU) {
            /* threshold_backward: a select, not a product (inf * 0 is not 0);
             * a NaN input passes the gradient on, as in torch. */
            if (!(inp[i] <= 0.0f)) dinp[i] += dout[i];
        } else {
            dinp[i] += dout[i] * act_grad<kAct>(inp[i]);
        }
    }
}

__global__ void __launch_bounds__(kBlock)
    swiglu_kernel(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) out[i] = silu(gate[i]) * up[i];
}

/* out = silu(gate) * up: dup += dout * silu(gate) (the forward's f32 silu),
 * dgate += silu_backward(dout * up, gate). */
__global__ void __launch_bounds__(kBlock)
    swiglu_bw_kernel(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, int64_t n)
{
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) {
        const float x = gate[i], g = dout[i];
        const float s = 1.0f / (1.0f + expf(-x));
        const float sl = x / (1.0f + expf(-x));
        const float dy = g * up[i];
        dgate[i] += dy * s * (1.0f + x * (1.0f - s));
        dup[i] += g * sl;
    }
}

__global__ void __launch_bounds__(kBlock)
    add_kernel(float *out, const float *a, const void *b, int dt, int broadcast, int64_t n,
               int64_t cols)
{
    for (int64_t i = gs_begin(); i < n; i += gs_stride())
        out[i] = a[i] + ld_param(b, dt, broadcast ? i % cols : i);
}

/* One output element per iteration: row r = py * n_px + px, column
 * (ci * p + ky) * p + kx holds pixels[ci, py * p + ky, px * p + kx].
 * Consecutive threads write consecutive columns, which read runs of p
 * consecutive pixels. */
__global__ void __launch_bounds__(kBlock)
    im2col_kernel(float *out, const float *pixels, int64_t h, int64_t w, int64_t p,
                  int64_t n_px, int64_t row_len, int64_t n)
{
    const int64_t pp = p * p;
    for (int64_t i = gs_begin(); i < n; i += gs_stride()) {
        const int64_t r = i / row_len, col = i % row_len;
        const int64_t py = r / n_px, px = r % n_px;
        const int64_t ci = col / pp, rem = col % pp;
        const int64_t ky = rem / p, kx = rem % p;
        out[i] = pixels[(ci * h + py * p + ky) * w + px * p + kx];
    }
}

unsigned elem_grid(int64_t n)
{
    return grid_for(n, kBlock);
}

} // namespace

extern "C" cudaError_t dlv_cuk_add(cudaStream_t s, float *out, const float *a, const void *b,
                                   dlv_cuk_dtype dt, int broadcast_b, int64_t rows,
                                   int64_t cols)
{
    const int64_t n = rows * cols;
    add_kernel<<<elem_grid(n), kBlock, 0, s>>>(out, a, b, (int)dt, broadcast_b, n, cols);
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_activation(cudaStream_t s, dlv_cuk_act act, float *out,
                                          const float *inp, int64_t n)
{
    const unsigned g = elem_grid(n);
    switch (act) {
    case DLV_CUK_QUICK_GELU: act_kernel<DLV_CUK_QUICK_GELU><<<g, kBlock, 0, s>>>(out, inp, n); break;
    case DLV_CUK_GELU: act_kernel<DLV_CUK_GELU><<<g, kBlock, 0, s>>>(out, inp, n); break;
    case DLV_CUK_GELU_TANH: act_kernel<DLV_CUK_GELU_TANH><<<g, kBlock, 0, s>>>(out, inp, n); break;
    case DLV_CUK_SILU: act_kernel<DLV_CUK_SILU><<<g, kBlock, 0, s>>>(out, inp, n); break;
    case DLV_CUK_RELU: act_kernel<DLV_CUK_RELU><<<g, kBlock, 0, s>>>(out, inp, n); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_activation_backward(cudaStream_t s, dlv_cuk_act act, float *dinp,
                                                   const float *dout, const float *inp,
                                                   int64_t n)
{
    const unsigned g = elem_grid(n);
    switch (act) {
    case DLV_CUK_QUICK_GELU:
        act_bw_kernel<DLV_CUK_QUICK_GELU><<<g, kBlock, 0, s>>>(dinp, dout, inp, n);
        break;
    case DLV_CUK_GELU: act_bw_kernel<DLV_CUK_GELU><<<g, kBlock, 0, s>>>(dinp, dout, inp, n); break;
    case DLV_CUK_GELU_TANH:
        act_bw_kernel<DLV_CUK_GELU_TANH><<<g, kBlock, 0, s>>>(dinp, dout, inp, n);
        break;
    case DLV_CUK_SILU: act_bw_kernel<DLV_CUK_SILU><<<g, kBlock, 0, s>>>(dinp, dout, inp, n); break;
    case DLV_CUK_RELU: act_bw_kernel<DLV_CUK_RELU><<<g, kBlock, 0, s>>>(dinp, dout, inp, n); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_swiglu(cudaStream_t s, float *out, const float *gate,
                                      const float *up, int64_t n)
{
    swiglu_kernel<<<elem_grid(n), kBlock, 0, s>>>(out, gate, up, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_swiglu_backward(cudaStream_t s, float *dgate, float *dup,
                                               const float *dout, const float *gate,
                                               const float *up, int64_t n)
{
    swiglu_bw_kernel<<<elem_grid(n), kBlock, 0, s>>>(dgate, dup, dout, gate, up, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_im2col_patches(cudaStream_t s, float *out, const float *pixels,
                                              int64_t c, int64_t h, int64_t w, int64_t patch)
{
    const int64_t n_px = w / patch, n_py = h / patch;
    const int64_t row_len = c * patch * patch;
    const int64_t n = n_py * n_px * row_len;
    im2col_kernel<<<elem_grid(n), kBlock, 0, s>>>(out, pixels, h, w, patch, n_px, row_len, n);
    return cudaGetLastError();
}
