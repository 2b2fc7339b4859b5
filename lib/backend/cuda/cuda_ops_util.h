/* Helpers of the CUDA module's op files (cuda_ops_*.c): the start of an op,
 * launch results as dlv_status, the dtype codes of the kernel launchers, and
 * the device-side check of index arguments. (Per-call device scratch:
 * cuda_scratch.h.)
 * Errors go through the host table (dlv_cuda_fail, cu->host->error), never
 * through the library, which the module does not link. */
#ifndef DLV_BACKEND_CUDA_OPS_UTIL_H
#define DLV_BACKEND_CUDA_OPS_UTIL_H

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_kernels_common.h"
#include "backend/cuda/cuda_scratch.h"

/* The launchers' code for a parameter dtype. The wrappers admit F32, BF16
 * and F16 where a parameter is given; with no parameter (NULL weight and
 * bias) the dtype is unchecked and unused, so anything else maps to F32. */
static inline dlv_cuk_dtype dlv_cuda_param_dtype(dlv_dtype dt)
{
    switch (dt) {
    case DLV_DTYPE_BF16: return DLV_CUK_BF16;
    case DLV_DTYPE_F16: return DLV_CUK_F16;
    default: return DLV_CUK_F32;
    }
}

/* The start of every op: makes the instance's device current for this
 * thread (dlv_cuda_bind_device) and clears a stale error of an earlier
 * failed runtime call (an out-of-memory cudaMalloc that the caller
 * handled), which the launchers' cudaGetLastError would otherwise report
 * as this op's failure. Sticky errors (a faulted context) cannot be
 * cleared and are still reported. */
dlv_status dlv_cuda_op_begin(const cuda_backend *cu);

/* DLV_OK, or DLV_E_BACKEND "what: <CUDA error>" for a launcher's result. */
dlv_status dlv_cuda_queued(const cuda_backend *cu, cudaError_t err, const char *what);

/* The end of an op that used scratch: gives sc back (after the work queued
 * with it) and returns the launch's result, or else the free's. */
dlv_status dlv_cuda_queued_free(const cuda_backend *cu, cudaError_t err, dlv_cuda_scratch *sc,
                                const char *what);

/* What an index argument is, for its range and its error message (the
 * CPU's, cpu/cpu_index_check.c). */
typedef enum dlv_cuda_index_kind {
    DLV_CUDA_INDEX_IDS,       /* token ids in [0, vocab) */
    DLV_CUDA_INDEX_POSITIONS, /* RoPE positions >= 0 */
    DLV_CUDA_INDEX_TARGETS,   /* loss targets: -1 (ignored) or in [0, vocab) */
} dlv_cuda_index_kind;

/* Checks idx[0, n) (device memory) on the device and waits for the answer:
 * DLV_OK, or DLV_E_INVALID_ARG naming op, the first bad index and its
 * position, before anything of the op is queued, so a bad index leaves the
 * outputs untouched as the op contracts promise. The wait synchronises the
 * stream: the price of reporting the error from the op itself (the
 * wrappers cannot read device memory). vocab is unused for positions. */
dlv_status dlv_cuda_check_index(const cuda_backend *cu, const char *op, dlv_cuda_index_kind kind,
                                const int32_t *idx, int64_t n, int64_t vocab);

#endif
