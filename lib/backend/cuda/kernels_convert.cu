/* Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks it
 * against the CPU where one exists.
 *
 * Conversion of a block of a stored matrix into a dense tile (the matmul
 * op's weight and activation tiles, cuda_ops_matmul.c): F32, BF16 or F16
 * in, F32 (exact widening) or BF16 (round to nearest even) out. The source
 * may sit at any byte address (a sub-tensor of a memory-mapped checkpoint
 * uploaded as is): when it is not aligned to its element size, each element
 * is assembled from its bytes (little-endian, as every CUDA device is).
 * Conversions are bit for bit those of the CPU (core/dtype.c,
 * backend/cpu/cpu_misc.c), so a tile holds exactly what the CPU's does. */
#include <cstdint>

#include "backend/cuda/cuda_kernels_convert.h"

namespace {

__device__ __forceinline__ float bits_f32(uint32_t u)
{
    return __uint_as_float(u);
}

/* dlv_f16_to_f32: exact, subnormals included. */
__device__ __forceinline__ float f16_to_f32(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (man << 13); /* Inf / NaN */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        float v = (float)man * bits_f32(0x33800000u); /* man * 2^-24, exact */
        bits = sign | __float_as_uint(v);
    }
    return bits_f32(bits);
}

/* dlv_f32_to_bf16: round to nearest even; NaN stays a (quiet) NaN. */
__device__ __forceinline__ uint16_t f32_to_bf16(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* The raw bits of element idx of a source in type SRC (4 or 2 bytes). */
template <int BYTES, bool ALIGNED>
__device__ __forceinline__ uint32_t load_bits(const unsigned char *base, int64_t idx)
{
    if (ALIGNED) {
        if (BYTES == 4) return reinterpret_cast<const uint32_t *>(base)[idx];
        return reinterpret_cast<const uint16_t *>(base)[idx];
    }
    const unsigned char *p = base + idx * BYTES;
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
    if (BYTES == 4) u |= ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    return u;
}

template <dlv_cuk_dtype SRC>
__device__ __forceinline__ float to_f32(uint32_t bits)
{
    if (SRC == DLV_CUK_F32) return bits_f32(bits);
    if (SRC == DLV_CUK_BF16) return bits_f32(bits << 16);
    return f16_to_f32(bits);
}

/* Rows over blockIdx.y, columns over blockIdx.x / threadIdx.x, both
 * grid-stride (any size fits the grid limits). */
template <dlv_cuk_dtype SRC, dlv_cuk_dtype DST, bool ALIGNED>
__global__ void convert_2d(void *dst, int64_t dst_ld, const unsigned char *src, int64_t src_ld,
                           int64_t rows, int64_t cols)
{
    constexpr int BYTES = SRC == DLV_CUK_F32 ? 4 : 2;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols;
             c += (int64_t)gridDim.x * blockDim.x) {
            uint32_t bits = load_bits<BYTES, ALIGNED>(src, r * src_ld + c);
            if (DST == DLV_CUK_F32) {
                static_cast<float *>(dst)[r * dst_ld + c] = to_f32<SRC>(bits);
            } else if (SRC == DLV_CUK_BF16) { /* bf16 to bf16: the bits as they are */
                static_cast<uint16_t *>(dst)[r * dst_ld + c] = (uint16_t)bits;
            } else {
                static_cast<uint16_t *>(dst)[r * dst_ld + c] = f32_to_bf16(to_f32<SRC>(bits));
            }
        }
    }
}

template <dlv_cuk_dtype SRC, dlv_cuk_dtype DST>
void launch(cudaStream_t s, dim3 grid, dim3 block, void *dst, int64_t dst_ld,
            const unsigned char *src, int64_t src_ld, int64_t rows, int64_t cols, bool aligned)
{
    if (aligned)
        convert_2d<SRC, DST, true><<<grid, block, 0, s>>>(dst, dst_ld, src, src_ld, rows, cols);
    else
        convert_2d<SRC, DST, false><<<grid, block, 0, s>>>(dst, dst_ld, src, src_ld, rows, cols);
}

template <dlv_cuk_dtype DST>
cudaError_t launch_src(cudaStream_t s, dim3 grid, dim3 block, void *dst, int64_t dst_ld,
                       const unsigned char *src, dlv_cuk_dtype src_type, int64_t src_ld,
                       int64_t rows, int64_t cols, bool aligned)
{
    switch (src_type) {
    case DLV_CUK_F32:
        launch<DLV_CUK_F32, DST>(s, grid, block, dst, dst_ld, src, src_ld, rows, cols, aligned);
        break;
    case DLV_CUK_BF16:
        launch<DLV_CUK_BF16, DST>(s, grid, block, dst, dst_ld, src, src_ld, rows, cols, aligned);
        break;
    case DLV_CUK_F16:
        launch<DLV_CUK_F16, DST>(s, grid, block, dst, dst_ld, src, src_ld, rows, cols, aligned);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t dlv_cuk_convert_2d(cudaStream_t s, void *dst, dlv_cuk_dtype dst_type,
                                          int64_t dst_ld, const void *src, dlv_cuk_dtype src_type,
                                          int64_t src_ld, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    const int threads = 256;
    int64_t gx = (cols + threads - 1) / threads;
    if (gx > 1024) gx = 1024;
    int64_t gy = rows < 65535 ? rows : 65535;
    dim3 grid((unsigned)gx, (unsigned)gy), block(threads);
    const unsigned char *p = static_cast<const unsigned char *>(src);
    const size_t es = src_type == DLV_CUK_F32 ? 4 : 2;
    const bool aligned = reinterpret_cast<uintptr_t>(src) % es == 0;
    if (dst_type == DLV_CUK_F32)
        return launch_src<DLV_CUK_F32>(s, grid, block, dst, dst_ld, p, src_type, src_ld, rows,
                                       cols, aligned);
    if (dst_type == DLV_CUK_BF16)
        return launch_src<DLV_CUK_BF16>(s, grid, block, dst, dst_ld, p, src_type, src_ld, rows,
                                        cols, aligned);
    return cudaErrorInvalidValue;
}
