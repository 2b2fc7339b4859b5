/* What the CUDA module's C files and its kernel files (.cu, compiled by
 * nvcc as C++) share: the dtype codes the launchers take and the extern "C"
 * bracket of the launcher headers (cuda_kernels_*.h). Plain C11, so the op
 * files compile with the project's strict warnings; nothing from the
 * library's own headers, which the .cu files do not include. */
#ifndef DLV_BACKEND_CUDA_KERNELS_COMMON_H
#define DLV_BACKEND_CUDA_KERNELS_COMMON_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
#define DLV_CUK_BEGIN_DECLS extern "C" {
#define DLV_CUK_END_DECLS }
#else
#define DLV_CUK_BEGIN_DECLS
#define DLV_CUK_END_DECLS
#endif

/* How a parameter (norm weight, bias, embedding table, add's b) is stored.
 * The op files map dlv_dtype onto these (the wrappers admit only these
 * three); the kernels read 2-byte values at any alignment and widen them
 * exactly: bf16 is the top half of an f32, f16 goes through its bits. */
typedef enum dlv_cuk_dtype {
    DLV_CUK_F32 = 0,
    DLV_CUK_BF16 = 1,
    DLV_CUK_F16 = 2,
} dlv_cuk_dtype;

/* The activations of dlv_op_act, in the same order (backend.h). */
typedef enum dlv_cuk_act {
    DLV_CUK_QUICK_GELU = 0,
    DLV_CUK_GELU = 1,
    DLV_CUK_GELU_TANH = 2,
    DLV_CUK_SILU = 3,
    DLV_CUK_RELU = 4,
} dlv_cuk_act;

#endif
