/* Per-call device scratch of the CUDA module's ops (the matmul tiles, the
 * attention backward's row statistics): stream-ordered, from the device's
 * default memory pool (cudaMallocAsync on the instance's stream, freed with
 * cudaFreeAsync once the work using it is queued), so neither the
 * allocation nor the free waits for the device. On a device without memory
 * pools it falls back to cudaMalloc, and the free then waits for the stream
 * first. Every size is bounded by the op (never a whole converted copy of a
 * weight). */
#ifndef DLV_BACKEND_CUDA_SCRATCH_H
#define DLV_BACKEND_CUDA_SCRATCH_H

#include <stddef.h>

#include "backend/cuda/cuda_internal.h"

typedef struct dlv_cuda_scratch {
    void *ptr;
    int pooled; /* from cudaMallocAsync (else cudaMalloc) */
} dlv_cuda_scratch;

/* s->ptr: at least `bytes` (> 0) bytes of device memory, 256-byte aligned.
 * DLV_E_NOMEM naming `what` when the device is out of memory. */
static inline dlv_status dlv_cuda_scratch_alloc(const cuda_backend *cu, size_t bytes,
                                                const char *what, dlv_cuda_scratch *s)
{
    s->ptr = NULL;
    s->pooled = 1;
    if (bytes == 0) bytes = 256;
    cudaError_t err = cudaMallocAsync(&s->ptr, bytes, cu->stream);
    if (err == cudaErrorNotSupported) {
        (void)cudaGetLastError(); /* not sticky: clear it for dlv_cuda_launched */
        s->pooled = 0;
        err = cudaMalloc(&s->ptr, bytes);
    }
    if (err == cudaSuccess) return DLV_OK;
    (void)cudaGetLastError();
    s->ptr = NULL;
    if (err == cudaErrorMemoryAllocation)
        return cu->host->error(DLV_E_NOMEM, "%s: %zu bytes of device scratch on device %d: %s",
                               what, bytes, cu->base.device, cudaGetErrorString(err));
    return dlv_cuda_fail(cu->host, err, what);
}

/* Gives s back (a no-op for an empty one) after the work queued so far on
 * the instance's stream. */
static inline dlv_status dlv_cuda_scratch_free(const cuda_backend *cu, dlv_cuda_scratch *s)
{
    if (!s->ptr) return DLV_OK;
    cudaError_t err;
    if (s->pooled) {
        err = cudaFreeAsync(s->ptr, cu->stream);
    } else {
        err = cudaStreamSynchronize(cu->stream);
        cudaError_t e2 = cudaFree(s->ptr);
        if (err == cudaSuccess) err = e2;
    }
    s->ptr = NULL;
    if (err == cudaSuccess) return DLV_OK;
    (void)cudaGetLastError();
    return dlv_cuda_fail(cu->host, err, "freeing device scratch");
}

#endif
