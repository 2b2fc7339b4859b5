/* The CUDA backend: device memory, one stream per instance, cuBLAS bound to
 * that stream. Plain C against the runtime and cuBLAS C APIs, so no nvcc is
 * needed for it. Built into the module libdisclvlm-cuda.so, which the
 * library loads on demand (backend/cuda_module.h): errors are recorded
 * through the host table the library passes in, never through the
 * library's own (hidden) functions.
 *
 * The compute ops (norms, RoPE, attention, ...) are not written for CUDA
 * yet: their slots stay NULL, which the registry allows and the checked
 * wrappers report as DLV_E_UNSUPPORTED "op X is not implemented on backend
 * cuda". matmul likewise takes only F32 weights here for now.
 *
 * Status: compiled with -Werror and exercised here only up to "no CUDA
 * device" (the build machine has no GPU). The ops below were compiled but
 * not yet run on a GPU; tests/backend/test_backend_ops.c runs all of them
 * against the reference on any machine that has one. */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cuda/cuda_internal.h"

/* cudaMalloc already aligns to 256 bytes; rounding sizes up keeps a
 * zero-byte buffer distinct and non-NULL. */
#define CUDA_ALIGN ((size_t)256)

dlv_status dlv_cuda_fail(const dlv_cuda_host *h, cudaError_t err, const char *what)
{
    return h->error(DLV_E_BACKEND, "%s: %s (%s)", what, cudaGetErrorString(err),
                    cudaGetErrorName(err));
}

dlv_status dlv_cuda_blas_fail(const dlv_cuda_host *h, cublasStatus_t st, const char *what)
{
    return h->error(DLV_E_BACKEND, "%s: %s", what, cublasGetStatusString(st));
}

dlv_status dlv_cuda_launched(const cuda_backend *cu, const char *what)
{
    cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? DLV_OK : dlv_cuda_fail(cu->host, err, what);
}

/* The runtime's current device is per host thread, and an instance may be
 * used from a thread that last worked on another device. */
dlv_status dlv_cuda_bind_device(const cuda_backend *cu)
{
    cudaError_t err = cudaSetDevice(cu->base.device);
    return err == cudaSuccess ? DLV_OK : dlv_cuda_fail(cu->host, err, "cudaSetDevice");
}

static void cuda_destroy(dlv_backend *be)
{
    cuda_backend *cu = as_cuda(be);
    /* Teardown errors (a lost device) leave nothing more to free. */
    (void)cudaSetDevice(cu->base.device);
    if (cu->blas) (void)cublasDestroy(cu->blas);
    if (cu->stream) (void)cudaStreamDestroy(cu->stream);
    free(cu);
}

static const char *cuda_describe(const dlv_backend *be)
{
    const cuda_backend *cu = (const cuda_backend *)be;
    return cu->desc;
}

static dlv_status cuda_buffer_alloc(dlv_backend *be, size_t size, dlv_buffer *out)
{
    cuda_backend *cu = as_cuda(be);
    dlv_status st = dlv_cuda_bind_device(cu);
    if (st != DLV_OK) return st;
    if (size > SIZE_MAX - (CUDA_ALIGN - 1))
        return cu->host->error(DLV_E_NOMEM, "cudaMalloc: %zu bytes is too large", size);
    size_t rounded = size == 0 ? CUDA_ALIGN : (size + CUDA_ALIGN - 1) / CUDA_ALIGN * CUDA_ALIGN;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, rounded);
    if (err == cudaErrorMemoryAllocation)
        return cu->host->error(DLV_E_NOMEM, "cudaMalloc of %zu bytes on device %d: %s", rounded,
                         cu->base.device, cudaGetErrorString(err));
    if (err != cudaSuccess) return dlv_cuda_fail(cu->host, err, "cudaMalloc");
    out->ptr = p;
    return DLV_OK;
}

static void cuda_buffer_free(dlv_backend *be, dlv_buffer *buf)
{
    cuda_backend *cu = as_cuda(be);
    (void)cudaSetDevice(cu->base.device);
    /* cudaFree synchronises with the device, so queued work using the
     * buffer finishes first. */
    (void)cudaFree(buf->ptr);
}

static dlv_status stream_sync(cuda_backend *cu, const char *what)
{
    cudaError_t err = cudaStreamSynchronize(cu->stream);
    return err == cudaSuccess ? DLV_OK : dlv_cuda_fail(cu->host, err, what);
}

/* Host memory may be pageable and reused as soon as we return, so copies
 * wait for the stream. */
static dlv_status cuda_upload(dlv_backend *be, dlv_buffer *dst, size_t offset,
                              const void *src, size_t size)
{
    cuda_backend *cu = as_cuda(be);
    dlv_status st = dlv_cuda_bind_device(cu);
    if (st != DLV_OK) return st;
    cudaError_t err = cudaMemcpyAsync((char *)dst->ptr + offset, src, size,
                                      cudaMemcpyHostToDevice, cu->stream);
    if (err != cudaSuccess) return dlv_cuda_fail(cu->host, err, "cudaMemcpyAsync (upload)");
    return stream_sync(cu, "upload: cudaStreamSynchronize");
}

static dlv_status cuda_download(dlv_backend *be, void *dst, const dlv_buffer *src,
                                size_t offset, size_t size)
{
    cuda_backend *cu = as_cuda(be);
    dlv_status st = dlv_cuda_bind_device(cu);
    if (st != DLV_OK) return st;
    cudaError_t err = cudaMemcpyAsync(dst, (const char *)src->ptr + offset, size,
                                      cudaMemcpyDeviceToHost, cu->stream);
    if (err != cudaSuccess) return dlv_cuda_fail(cu->host, err, "cudaMemcpyAsync (download)");
    return stream_sync(cu, "download: cudaStreamSynchronize");
}

static dlv_status cuda_memset_zero(dlv_backend *be, dlv_buffer *buf, size_t offset, size_t size)
{
    cuda_backend *cu = as_cuda(be);
    dlv_status st = dlv_cuda_bind_device(cu);
    if (st != DLV_OK) return st;
    cudaError_t err = cudaMemsetAsync((char *)buf->ptr + offset, 0, size, cu->stream);
    return err == cudaSuccess ? DLV_OK : dlv_cuda_fail(cu->host, err, "cudaMemsetAsync");
}

static dlv_status cuda_synchronize(dlv_backend *be)
{
    cuda_backend *cu = as_cuda(be);
    dlv_status st = dlv_cuda_bind_device(cu);
    if (st != DLV_OK) return st;
    return stream_sync(cu, "cudaStreamSynchronize");
}

/* k == 0: C = beta * C on the m x n block only (the ldc padding is left
 * alone). Seen column-major, row-major C is an n x m matrix with leading
 * dimension ldc. */
static dlv_status scale_c(cuda_backend *cu, const dlv_matmul_args *a)
{
    if (a->beta == 0.0f) {
        cudaError_t err = cudaMemset2DAsync(a->c, (size_t)a->ldc * sizeof(float), 0,
                                            (size_t)a->n * sizeof(float), (size_t)a->m,
                                            cu->stream);
        return err == cudaSuccess ? DLV_OK : dlv_cuda_fail(cu->host, err, "cudaMemset2DAsync");
    }
    if (a->beta == 1.0f) return DLV_OK;
    /* k == 0 is degenerate, so plain scal calls are fast enough: one over
     * the whole block when its rows are contiguous and it fits an int, else
     * one per row (the ldc padding must stay untouched). */
    cublasStatus_t bs = CUBLAS_STATUS_SUCCESS;
    if (a->ldc == a->n && a->m <= INT_MAX / a->n) {
        bs = cublasSscal(cu->blas, (int)(a->m * a->n), &a->beta, a->c, 1);
    } else {
        for (int64_t i = 0; i < a->m && bs == CUBLAS_STATUS_SUCCESS; i++)
            bs = cublasSscal(cu->blas, (int)a->n, &a->beta, a->c + i * a->ldc, 1);
    }
    return bs == CUBLAS_STATUS_SUCCESS ? DLV_OK : dlv_cuda_blas_fail(cu->host, bs, "cublasSscal");
}

/* cuBLAS is column-major. A row-major matrix with leading dimension ld is
 * the column-major transpose with the same ld, so row-major C = op(A) op(B)
 * is column-major C^T = op(B)^T op(A)^T: swap the operands (B first), swap
 * m and n, and keep each operand's own transpose flag (row-major B stored
 * k x n is column-major B^T already, i.e. op N; stored n x k it needs op T).
 * The leading-dimension rules then match BLAS's exactly, which the wrapper
 * has checked. */
static dlv_status cuda_matmul(dlv_backend *be, const dlv_matmul_args *a)
{
    cuda_backend *cu = as_cuda(be);
    if (a->b_dtype != DLV_DTYPE_F32)
        return cu->host->error(DLV_E_UNSUPPORTED,
                         "dlv_matmul: b_dtype %s is not implemented on backend cuda (only F32)",
                         cu->host->dtype_name(a->b_dtype));
    if (a->m == 0 || a->n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_bind_device(cu);
    if (st != DLV_OK) return st;
    if (a->k == 0) return scale_c(cu, a);
    cublasOperation_t op_b = a->trans_b == DLV_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_a = a->trans_a == DLV_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t bs = cublasSgemm(cu->blas, op_b, op_a, (int)a->n, (int)a->m, (int)a->k,
                                    &a->alpha, (const float *)a->b, (int)a->ldb,
                                    (const float *)a->a, (int)a->lda, &a->beta, a->c,
                                    (int)a->ldc);
    return bs == CUBLAS_STATUS_SUCCESS ? DLV_OK : dlv_cuda_blas_fail(cu->host, bs, "cublasSgemm");
}

static const dlv_backend_ops cuda_ops = {
    .version = DLV_BACKEND_OPS_VERSION,
    .size = sizeof(dlv_backend_ops),
    .name = "cuda",
    .destroy = cuda_destroy,
    .describe = cuda_describe,
    .buffer_alloc = cuda_buffer_alloc,
    .buffer_free = cuda_buffer_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .memset_zero = cuda_memset_zero,
    .synchronize = cuda_synchronize,
    .matmul = cuda_matmul,
};

static dlv_status cuda_device_count(const dlv_cuda_host *host, int *out)
{
    *out = 0;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess)
        return host->error(DLV_E_BACKEND, "no CUDA device found (cudaGetDeviceCount: %s)",
                         cudaGetErrorString(err));
    if (n <= 0)
        return host->error(DLV_E_BACKEND,
                           "no CUDA device found (cudaGetDeviceCount: 0 devices)");
    *out = n;
    return DLV_OK;
}

static void describe_device(cuda_backend *cu)
{
    struct cudaDeviceProp prop;
    int rt = 0, blas_ver = 0;
    (void)cudaRuntimeGetVersion(&rt);
    (void)cublasGetVersion(cu->blas, &blas_ver);
    if (cudaGetDeviceProperties(&prop, cu->base.device) == cudaSuccess)
        snprintf(cu->desc, sizeof cu->desc,
                 "cuda:%d (%.100s, sm_%d%d, %.1f GiB, CUDA runtime %d, cuBLAS %d)", cu->base.device,
                 prop.name, prop.major, prop.minor,
                 (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), rt, blas_ver);
    else
        snprintf(cu->desc, sizeof cu->desc, "cuda:%d", cu->base.device);
}

static dlv_status cuda_create(const dlv_cuda_host *host, const dlv_backend_config *cfg,
                              dlv_backend **out)
{
    int n = 0;
    dlv_status st = cuda_device_count(host, &n);
    if (st != DLV_OK) return st;
    if (cfg->device < 0 || cfg->device >= n)
        return host->error(DLV_E_BACKEND, "device ordinal %d is out of range (%d CUDA device%s)",
                         cfg->device, n, n == 1 ? "" : "s");

    if (cfg->compute != DLV_DTYPE_F32)
        return host->error(DLV_E_UNSUPPORTED, "compute dtype %s: the cuda backend computes in f32 "
                         "only so far", host->dtype_name(cfg->compute));
    cuda_backend *cu = calloc(1, sizeof *cu);
    if (!cu)
        return host->error(DLV_E_NOMEM, "out of memory allocating %zu bytes for the cuda backend",
                           sizeof *cu);
    cu->base.ops = &cuda_ops;
    cu->base.device = cfg->device;
    cu->compute = cfg->compute;
    cu->host = host;

    cudaError_t err = cudaSetDevice(cfg->device);
    if (err != cudaSuccess) {
        st = dlv_cuda_fail(cu->host, err, "cudaSetDevice");
        goto fail;
    }
    /* Non-blocking: no implicit synchronisation with the legacy default
     * stream other code in the process may use. */
    err = cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        cu->stream = NULL;
        st = dlv_cuda_fail(cu->host, err, "cudaStreamCreateWithFlags");
        goto fail;
    }
    cublasStatus_t bs = cublasCreate(&cu->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        cu->blas = NULL;
        st = dlv_cuda_blas_fail(cu->host, bs, "cublasCreate");
        goto fail;
    }
    bs = cublasSetStream(cu->blas, cu->stream);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        st = dlv_cuda_blas_fail(cu->host, bs, "cublasSetStream");
        goto fail;
    }
    /* alpha/beta live in host memory (our args struct). Default math mode:
     * full FP32, no TF32 down-conversion, so results match the CPU. */
    bs = cublasSetPointerMode(cu->blas, CUBLAS_POINTER_MODE_HOST);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetMathMode(cu->blas, CUBLAS_DEFAULT_MATH);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        st = dlv_cuda_blas_fail(cu->host, bs, "cublasSetPointerMode/cublasSetMathMode");
        goto fail;
    }
    describe_device(cu);
    *out = &cu->base;
    return DLV_OK;

fail:
    cuda_destroy(&cu->base);
    return st;
}

static const dlv_cuda_module module_table = {
    .abi = DLV_CUDA_MODULE_ABI,
    .size = sizeof(dlv_cuda_module),
    .lib_version = DLV_VERSION_STRING_BUILD,
    .ops_version = DLV_BACKEND_OPS_VERSION,
    .ops_size = sizeof(dlv_backend_ops),
    .device_count = cuda_device_count,
    .create = cuda_create,
};

/* The module's one exported symbol (backend/cuda_module.h). */
__attribute__((visibility("default"))) const dlv_cuda_module *dlv_cuda_module_get(void);
const dlv_cuda_module *dlv_cuda_module_get(void)
{
    return &module_table;
}
