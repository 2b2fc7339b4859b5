/* Rotary position embedding (HF's rotate-half layout) and its backward,
 * which is the same rotation with the sine negated (cpu/cpu_rope.c).
 *
 * Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks
 * it against the CPU where one exists.
 *
 * The angle is the CPU's f32 product (float)position * inv_freq[i], with
 * inv_freq computed on the host by the same expression and library as the
 * CPU's, so the angles are bit-identical; sincosf (no fast-math: full range
 * reduction) is then within 2 ulp of glibc's. One thread per (token, pair
 * i): it computes the angle once and rotates pair (i, i + d/2) of every
 * head of the token. */
#include "backend/cuda/cuda_device.cuh"
#include "backend/cuda/cuda_kernels_rope.h"

using namespace dlv_cuk;

namespace {

struct RopeFreqs {
    float v[DLV_CUK_ROPE_MAX_HALF];
};

__global__ void __launch_bounds__(kBlock)
    rope_kernel(float *x, const int32_t *positions, int64_t n_tokens, int64_t n_heads,
                int64_t d, const RopeFreqs freqs, const float *freq_dev, float sin_sign)
{
    const int64_t half = d / 2, items = n_tokens * half;
    for (int64_t it = gs_begin(); it < items; it += gs_stride()) {
        const int64_t t = it / half, i = it % half;
        const float inv = freq_dev ? freq_dev[i] : freqs.v[i];
        const float a = (float)positions[t] * inv;
        float sn, cs;
        sincosf(a, &sn, &cs);
        const float sv = sin_sign * sn;
        float *row = x + t * n_heads * d;
        for (int64_t h = 0; h < n_heads; h++) {
            float *xh = row + h * d;
            const float x1 = xh[i], x2 = xh[i + half];
            /* q * cos + rotate_half(q) * sin, rotate_half = cat(-x2, x1) */
            xh[i] = x1 * cs + (-x2) * sv;
            xh[i + half] = x2 * cs + x1 * sv;
        }
    }
}

/* The table-driven rotation (cpu/cpu_rope_table.c): the same per-(token,
 * pair) work with the angle's cosine and sine read from the tables instead
 * of computed, so it matches the CPU exactly (no sincosf involved). */
__global__ void __launch_bounds__(kBlock)
    rope_table_kernel(float *x, const float *cos_tab, const float *sin_tab, int64_t n_tokens,
                      int64_t n_heads, int64_t d, float sin_sign)
{
    const int64_t half = d / 2, items = n_tokens * half;
    for (int64_t it = gs_begin(); it < items; it += gs_stride()) {
        const int64_t t = it / half;
        const float cs = cos_tab[it], sv = sin_sign * sin_tab[it];
        float *row = x + t * n_heads * d;
        const int64_t i = it % half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *xh = row + h * d;
            const float x1 = xh[i], x2 = xh[i + half];
            /* Written as two roundings each (no fma), as the CPU's f32
             * expression: -fmad=false is not set module-wide, so the
             * intrinsics spell the products and the sum out. */
            xh[i] = __fadd_rn(__fmul_rn(x1, cs), __fmul_rn(-x2, sv));
            xh[i + half] = __fadd_rn(__fmul_rn(x2, cs), __fmul_rn(x1, sv));
        }
    }
}

} // namespace

extern "C" cudaError_t dlv_cuk_rope_table(cudaStream_t s, float *x, const float *cos_tab,
                                          const float *sin_tab, int64_t n_tokens,
                                          int64_t n_heads, int64_t head_dim, float sin_sign)
{
    rope_table_kernel<<<grid_for(n_tokens * (head_dim / 2), kBlock), kBlock, 0, s>>>(
        x, cos_tab, sin_tab, n_tokens, n_heads, head_dim, sin_sign);
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_rope(cudaStream_t s, float *x, const int32_t *positions,
                                    int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                                    const float *inv_freq_host, const float *inv_freq_dev,
                                    float sin_sign)
{
    const int64_t half = head_dim / 2;
    RopeFreqs f = {};
    if (!inv_freq_dev) {
        if (!inv_freq_host || half > DLV_CUK_ROPE_MAX_HALF) return cudaErrorInvalidValue;
        for (int64_t i = 0; i < half; i++) f.v[i] = inv_freq_host[i];
    }
    rope_kernel<<<grid_for(n_tokens * half, kBlock), kBlock, 0, s>>>(
        x, positions, n_tokens, n_heads, head_dim, f, inv_freq_dev, sin_sign);
    return cudaGetLastError();
}
