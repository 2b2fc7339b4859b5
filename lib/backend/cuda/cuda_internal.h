/* Shared by the CUDA module's C files (cuda_backend.c and the op files):
 * the backend instance and the error helpers. Everything here is hidden in
 * the module (only dlv_cuda_module_get is exported). Errors are recorded
 * through the host table (backend/cuda_module.h), never through the
 * library's own functions, which the module does not link.
 *
 * Kernels live in .cu files with extern "C" launchers declared in their own
 * C headers (cuda_kernels_*.h); each launcher queues work on the given
 * stream and returns at once; the op files check launches with
 * dlv_cuda_launched. */
#ifndef DLV_BACKEND_CUDA_INTERNAL_H
#define DLV_BACKEND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend/backend.h"
#include "backend/cuda_module.h"

typedef struct cuda_backend {
    dlv_backend base; /* first: the registry sees a dlv_backend */
    const dlv_cuda_host *host;
    cudaStream_t stream;
    cublasHandle_t blas;
    dlv_dtype compute; /* the session's compute dtype (dlv_backend_config.compute) */
    char desc[256];
} cuda_backend;

static inline cuda_backend *as_cuda(dlv_backend *be)
{
    return (cuda_backend *)be;
}

/* DLV_E_BACKEND "what: <CUDA error string> (<name>)" / "what: <cuBLAS status>". */
dlv_status dlv_cuda_fail(const dlv_cuda_host *h, cudaError_t err, const char *what);
dlv_status dlv_cuda_blas_fail(const dlv_cuda_host *h, cublasStatus_t st, const char *what);
/* After queuing kernels: DLV_OK, or the launch error (cudaGetLastError). */
dlv_status dlv_cuda_launched(const cuda_backend *cu, const char *what);
/* Makes the instance's device current for this host thread. */
dlv_status dlv_cuda_bind_device(const cuda_backend *cu);

#endif
