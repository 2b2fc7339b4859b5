/* Helpers of the CUDA module's op files; see cuda_ops_util.h. */
#include <stdint.h>

#include "backend/cuda/cuda_kernels_index.h"
#include "backend/cuda/cuda_ops_util.h"

dlv_status dlv_cuda_op_begin(const cuda_backend *cu)
{
    dlv_status st = dlv_cuda_bind_device(cu);
    if (st == DLV_OK) (void)cudaGetLastError();
    return st;
}

dlv_status dlv_cuda_queued(const cuda_backend *cu, cudaError_t err, const char *what)
{
    return err == cudaSuccess ? DLV_OK : dlv_cuda_fail(cu->host, err, what);
}

dlv_status dlv_cuda_queued_free(const cuda_backend *cu, cudaError_t err, dlv_cuda_scratch *sc,
                                const char *what)
{
    const dlv_status freed = dlv_cuda_scratch_free(cu, sc);
    const dlv_status st = dlv_cuda_queued(cu, err, what);
    return st != DLV_OK ? st : freed;
}

dlv_status dlv_cuda_check_index(const cuda_backend *cu, const char *op, dlv_cuda_index_kind kind,
                                const int32_t *idx, int64_t n, int64_t vocab)
{
    if (n == 0) return DLV_OK;
    int64_t lo = 0, hi = vocab;
    if (kind == DLV_CUDA_INDEX_POSITIONS) hi = INT64_MAX;
    if (kind == DLV_CUDA_INDEX_TARGETS) lo = -1;

    dlv_cuda_scratch sc = {0};
    dlv_status st = dlv_cuda_scratch_alloc(cu, sizeof(unsigned long long), op, &sc);
    if (st != DLV_OK) return st;
    unsigned long long *d_first = sc.ptr;
    unsigned long long first = ~0ull;
    /* ~0ull: every byte 0xff. */
    cudaError_t err = cudaMemsetAsync(d_first, 0xff, sizeof *d_first, cu->stream);
    if (err == cudaSuccess) err = dlv_cuk_first_bad_index(cu->stream, idx, n, lo, hi, d_first);
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(&first, d_first, sizeof first, cudaMemcpyDeviceToHost, cu->stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(cu->stream);
    if (err != cudaSuccess) {
        (void)dlv_cuda_scratch_free(cu, &sc);
        return dlv_cuda_fail(cu->host, err, op);
    }
    st = dlv_cuda_scratch_free(cu, &sc);
    if (st != DLV_OK || first == ~0ull) return st;

    /* The error path only: fetch the offending value for the message. */
    const long long t = (long long)first;
    int32_t v = 0;
    err = cudaMemcpyAsync(&v, idx + t, sizeof v, cudaMemcpyDeviceToHost, cu->stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(cu->stream);
    if (err != cudaSuccess) return dlv_cuda_fail(cu->host, err, op);
    switch (kind) {
    case DLV_CUDA_INDEX_IDS:
        return cu->host->error(DLV_E_INVALID_ARG,
                               "%s: token id %d at position %lld is outside the vocabulary "
                               "[0, %lld)", op, (int)v, t, (long long)vocab);
    case DLV_CUDA_INDEX_POSITIONS:
        return cu->host->error(DLV_E_INVALID_ARG, "%s: positions[%lld] = %d is negative", op, t,
                               (int)v);
    default:
        return cu->host->error(DLV_E_INVALID_ARG,
                               "%s: target %d of row %lld is neither -1 (ignored) nor in "
                               "[0, %lld)", op, (int)v, t, (long long)vocab);
    }
}
