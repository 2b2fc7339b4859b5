/* Device-side helpers shared by the module's kernel files (.cu only, C++):
 * launch geometry, parameter loads at any alignment with exact widening,
 * and deterministic block reductions.
 *
 * Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks
 * the kernels that use it against the CPU where one exists. */
#ifndef DLV_BACKEND_CUDA_DEVICE_CUH
#define DLV_BACKEND_CUDA_DEVICE_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/cuda_kernels_common.h"

namespace dlv_cuk {

/* Threads per block of every kernel here: a multiple of the warp size (the
 * reductions below assume it). */
constexpr int kBlock = 256;

/* Blocks of a grid-stride launch: enough to fill any current GPU, never
 * more than the items need, and within gridDim.x's limit (2^31 - 1) however
 * large the tensor: the loops stride over the rest. */
inline unsigned grid_for(int64_t items, int64_t per_block)
{
    const int64_t cap = 65535LL * 16;
    int64_t blocks = (items + per_block - 1) / per_block;
    if (blocks > cap) blocks = cap;
    if (blocks < 1) blocks = 1;
    return (unsigned)blocks;
}

/* First index and stride of a grid-stride loop over items, in int64: a
 * tensor may hold more than 2^31 elements. */
__device__ __forceinline__ int64_t gs_begin()
{
    return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t gs_stride()
{
    return (int64_t)gridDim.x * blockDim.x;
}

/* Little-endian loads at any byte alignment: checkpoint parameters may sit
 * at odd offsets (backend.h), and a misaligned 2- or 4-byte load faults on
 * the GPU. The alignment test is the same for every element of a tensor
 * (its elements are multiples of the size apart), so warps do not diverge. */
__device__ __forceinline__ uint32_t ld_u16(const unsigned char *p)
{
    if (((uintptr_t)p & 1u) == 0) return *reinterpret_cast<const unsigned short *>(p);
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

__device__ __forceinline__ uint32_t ld_u32(const unsigned char *p)
{
    if (((uintptr_t)p & 3u) == 0) return *reinterpret_cast<const uint32_t *>(p);
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* f16 bits to f32, exactly as the CPU's dlv_f16_to_f32 (core/dtype.c):
 * the same value as __half2float for every number, and NaN payloads kept
 * bit for bit (embedding lookups are compared byte for byte). */
__device__ __forceinline__ float f16_bits_to_f32(uint32_t h)
{
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu)
        bits = sign | 0x7f800000u | (man << 13); /* Inf / NaN */
    else if (exp != 0)
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    else if (man == 0)
        bits = sign;
    else /* subnormal: man * 2^-24, exact in f32 */
        bits = sign | __float_as_uint(__uint2float_rn(man) * 5.9604644775390625e-8f);
    return __uint_as_float(bits);
}

/* Element i of a parameter tensor stored as dt, widened exactly to f32. */
__device__ __forceinline__ float ld_param(const void *base, int dt, int64_t i)
{
    const unsigned char *p = static_cast<const unsigned char *>(base);
    if (dt == DLV_CUK_BF16) return __uint_as_float(ld_u16(p + 2 * i) << 16);
    if (dt == DLV_CUK_F16) return f16_bits_to_f32(ld_u16(p + 2 * i));
    return __uint_as_float(ld_u32(p + 4 * i));
}

/* Butterfly (xor) reductions: every lane ends with the same value, and the
 * order of the additions is fixed, so results are reproducible run to run.
 * IEEE addition is commutative, so lanes that pair the same two partial
 * sums from either side get identical bits. */
template <typename T>
__device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Maximum that lets NaN through from either side, so that a NaN anywhere
 * in the row reaches the result (fmaxf would drop it). */
__device__ __forceinline__ float max_nan(float a, float b)
{
    return (a > b || a != a) ? a : b;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The sum of v over the block, returned to every thread. scratch: 32
 * shared elements. Ends with a barrier, so the next call may reuse scratch
 * and every thread has finished reading what it read before the call. */
template <typename T>
__device__ T block_sum(T v, T *scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T t = lane < n_warps ? scratch[lane] : T(0);
    t = warp_sum(t);
    __syncthreads();
    return t;
}

/* Two sums at once (one barrier pair instead of two). */
template <typename T>
__device__ void block_sum2(T &a, T &b, T *scratch /* 64 */)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = (blockDim.x + 31) >> 5;
    a = warp_sum(a);
    b = warp_sum(b);
    if (lane == 0) {
        scratch[warp] = a;
        scratch[32 + warp] = b;
    }
    __syncthreads();
    T ta = lane < n_warps ? scratch[lane] : T(0);
    T tb = lane < n_warps ? scratch[32 + lane] : T(0);
    a = warp_sum(ta);
    b = warp_sum(tb);
    __syncthreads();
}

__device__ inline float block_max(float v, float *scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < n_warps ? scratch[lane] : -__int_as_float(0x7f800000); /* -inf */
    t = warp_max(t);
    __syncthreads();
    return t;
}

} // namespace dlv_cuk

#endif
