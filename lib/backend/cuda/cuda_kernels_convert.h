/* Launchers of the conversion kernels (kernels_convert.cu), for the matmul
 * op (cuda_ops_matmul.c): a block of a stored matrix (F32, BF16 or F16, at
 * any byte alignment) into a dense, aligned tile of f32 or bf16. Each
 * launcher queues its kernel on stream s and returns cudaGetLastError()
 * (cudaSuccess when queued). */
#ifndef DLV_BACKEND_CUDA_KERNELS_CONVERT_H
#define DLV_BACKEND_CUDA_KERNELS_CONVERT_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* dst[r * dst_ld + c] = convert(src[r * src_ld + c]) for r < rows, c < cols.
 * src: elements of src_type from any byte address (read byte by byte when
 * it is not aligned to the element size; src_ld in elements). dst_type:
 * DLV_CUK_F32 (exact widening) or DLV_CUK_BF16 (round to nearest even, NaN
 * kept a quiet NaN, as the CPU's dlv_f32_to_bf16; F16 goes through f32,
 * BF16 is copied as is); dst aligned to its element. rows or cols <= 0
 * launches nothing; another dst_type is cudaErrorInvalidValue. */
cudaError_t dlv_cuk_convert_2d(cudaStream_t s, void *dst, dlv_cuk_dtype dst_type, int64_t dst_ld,
                               const void *src, dlv_cuk_dtype src_type, int64_t src_ld,
                               int64_t rows, int64_t cols);

DLV_CUK_END_DECLS

#endif
