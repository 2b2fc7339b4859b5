/* The CUDA backend: device memory, one stream per instance, cuBLAS bound to
 * that stream. Plain C against the runtime and cuBLAS C APIs, so no nvcc is
 * needed for it. Built into the module libdisclvlm-cuda.so, which the
 * library loads on demand (backend/cuda_module.h): errors are recorded
 * through the host table the library passes in, never through the
 * library's own (hidden) functions.
 *
 * Every op has a CUDA implementation (cuda_ops_*.c over kernels_*.cu), but
 * none has yet run on a GPU: they were compiled here (no GPU) and the
 * attention and matmul code was run through a CPU emulation of the kernels.
 * Until tests/device/check.sh has passed on a GPU, a backend offers only
 * memory, copies and matmul (cuda_ops_base) unless the environment has
 * DLV_CUDA_EXPERIMENTAL=1 (cuda_ops_all): an op the default table lacks is
 * DLV_E_UNSUPPORTED "op X is not implemented on backend cuda" rather than a
 * number nobody has checked. */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_ops_attention.h"
#include "backend/cuda/cuda_ops_matmul.h"
#include "backend/cuda/cuda_ops_rows.h"

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

/* The slots both tables have. */
#define CUDA_BASE_SLOTS                                                                    \
    .version = DLV_BACKEND_OPS_VERSION, .size = sizeof(dlv_backend_ops), .name = "cuda",   \
    .destroy = cuda_destroy, .describe = cuda_describe, .buffer_alloc = cuda_buffer_alloc, \
    .buffer_free = cuda_buffer_free, .upload = cuda_upload, .download = cuda_download,     \
    .memset_zero = cuda_memset_zero, .synchronize = cuda_synchronize,                      \
    .matmul = dlv_cuda_matmul, .copy = dlv_cuda_copy

static const dlv_backend_ops cuda_ops_base = {CUDA_BASE_SLOTS};

static const dlv_backend_ops cuda_ops_all = {
    CUDA_BASE_SLOTS,
    .attention = dlv_cuda_attention,
    .attention_backward = dlv_cuda_attention_backward,
    .add = dlv_cuda_add,
    .layernorm = dlv_cuda_layernorm,
    .rmsnorm = dlv_cuda_rmsnorm,
    .rope = dlv_cuda_rope,
    .activation = dlv_cuda_activation,
    .swiglu = dlv_cuda_swiglu,
    .embedding = dlv_cuda_embedding,
    .im2col_patches = dlv_cuda_im2col_patches,
    .l2_normalize = dlv_cuda_l2_normalize,
    .rmsnorm_backward = dlv_cuda_rmsnorm_backward,
    .layernorm_backward = dlv_cuda_layernorm_backward,
    .rope_backward = dlv_cuda_rope_backward,
    .activation_backward = dlv_cuda_activation_backward,
    .swiglu_backward = dlv_cuda_swiglu_backward,
    .embedding_backward = dlv_cuda_embedding_backward,
    .bias_backward = dlv_cuda_bias_backward,
    .l2_normalize_backward = dlv_cuda_l2_normalize_backward,
    .softmax_cross_entropy = dlv_cuda_softmax_cross_entropy,
    .adamw_update = dlv_cuda_adamw_update,
    .sgd_update = dlv_cuda_sgd_update,
    .sum_squares = dlv_cuda_sum_squares,
    .add_layernorm = dlv_cuda_add_layernorm,
    .add_rmsnorm = dlv_cuda_add_rmsnorm,
    .rope_table = dlv_cuda_rope_table,
    .rope_table_backward = dlv_cuda_rope_table_backward,
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

    const char *exp_env = getenv("DLV_CUDA_EXPERIMENTAL");
    const int experimental = exp_env && strcmp(exp_env, "1") == 0;
    if (cfg->compute != DLV_DTYPE_F32 && (cfg->compute != DLV_DTYPE_BF16 || !experimental))
        return host->error(DLV_E_UNSUPPORTED, "compute dtype %s: the cuda backend computes in f32 "
                           "(bf16 only with DLV_CUDA_EXPERIMENTAL=1: not yet run on a GPU)",
                           host->dtype_name(cfg->compute));
    cuda_backend *cu = calloc(1, sizeof *cu);
    if (!cu)
        return host->error(DLV_E_NOMEM, "out of memory allocating %zu bytes for the cuda backend",
                           sizeof *cu);
    cu->base.ops = experimental ? &cuda_ops_all : &cuda_ops_base;
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
