/* The CPU backend: host memory and OpenBLAS. Buffers are ordinary host
 * allocations, so "device pointers" are host pointers and every op is
 * synchronous. The wrappers in backend/buffer.c and backend/matmul.c have
 * validated all arguments before a slot here is called. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/error.h"

/* Cache-line alignment, which is also what AVX-512 loads like. */
#define CPU_ALIGN ((size_t)64)

typedef struct cpu_backend {
    dlv_backend base; /* first: the registry sees a dlv_backend */
    /* Threads for the library's own worker pool (not yet written). OpenBLAS's
     * thread count is deliberately NOT set from here: openblas_set_num_threads
     * is process-global, so one session asking for 2 threads would silently
     * change every other session (and the host application's own BLAS use).
     * OpenBLAS keeps whatever the process configured (OPENBLAS_NUM_THREADS). */
    int n_threads;
    char desc[256];
} cpu_backend;

static void cpu_destroy(dlv_backend *be)
{
    free(be);
}

static const char *cpu_describe(const dlv_backend *be)
{
    /* The backend header is the first member, so this is the inverse of
     * &cpu->base. */
    const cpu_backend *cpu = (const cpu_backend *)be;
    return cpu->desc;
}

static dlv_status cpu_buffer_alloc(dlv_backend *be, size_t size, dlv_buffer *out)
{
    (void)be;
    /* aligned_alloc needs a multiple of the alignment; a zero-byte buffer
     * still gets one block so that its ptr is unique and non-NULL. */
    if (size > SIZE_MAX - (CPU_ALIGN - 1))
        return dlv_error_nomem("cpu buffer", size);
    size_t rounded = size == 0 ? CPU_ALIGN : (size + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    void *p = aligned_alloc(CPU_ALIGN, rounded);
    if (!p) return dlv_error_nomem("cpu buffer", rounded);
    out->ptr = p;
    return DLV_OK;
}

static void cpu_buffer_free(dlv_backend *be, dlv_buffer *buf)
{
    (void)be;
    free(buf->ptr);
}

static dlv_status cpu_upload(dlv_backend *be, dlv_buffer *dst, size_t offset,
                             const void *src, size_t size)
{
    (void)be;
    memcpy((char *)dst->ptr + offset, src, size);
    return DLV_OK;
}

static dlv_status cpu_download(dlv_backend *be, void *dst, const dlv_buffer *src,
                               size_t offset, size_t size)
{
    (void)be;
    memcpy(dst, (const char *)src->ptr + offset, size);
    return DLV_OK;
}

static dlv_status cpu_memset_zero(dlv_backend *be, dlv_buffer *buf, size_t offset, size_t size)
{
    (void)be;
    memset((char *)buf->ptr + offset, 0, size);
    return DLV_OK;
}

static dlv_status cpu_synchronize(dlv_backend *be)
{
    (void)be;
    return DLV_OK;
}

/* C = beta * C over the m x n block, leaving the ldc padding alone; beta == 0
 * stores zeros so that NaN in an unset C does not survive. */
static void scale_c(float *c, int64_t m, int64_t n, int64_t ldc, float beta)
{
    for (int64_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f)
            memset(row, 0, (size_t)n * sizeof *row);
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++) row[j] *= beta;
    }
}

static dlv_status cpu_matmul(dlv_backend *be, const dlv_matmul_args *a)
{
    (void)be;
    if (a->m == 0 || a->n == 0) return DLV_OK;
    /* BLAS would accept k == 0 with lda >= 1, but A and B may then be NULL,
     * which is not something to hand to an optimised kernel. */
    if (a->k == 0) {
        scale_c(a->c, a->m, a->n, a->ldc, a->beta);
        return DLV_OK;
    }
    /* The wrapper bounded every dimension to INT_MAX. */
    cblas_sgemm(CblasRowMajor, a->trans_a == DLV_TRANS ? CblasTrans : CblasNoTrans,
                a->trans_b == DLV_TRANS ? CblasTrans : CblasNoTrans, (blasint)a->m,
                (blasint)a->n, (blasint)a->k, a->alpha, (const float *)a->a, (blasint)a->lda,
                (const float *)a->b, (blasint)a->ldb, a->beta, a->c, (blasint)a->ldc);
    return DLV_OK;
}

static const dlv_backend_ops cpu_ops = {
    .version = DLV_BACKEND_OPS_VERSION,
    .size = sizeof(dlv_backend_ops),
    .name = "cpu",
    .destroy = cpu_destroy,
    .describe = cpu_describe,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .memset_zero = cpu_memset_zero,
    .synchronize = cpu_synchronize,
    .matmul = cpu_matmul,
};

dlv_status dlv_cpu_backend_create(const dlv_backend_config *cfg, dlv_backend **out)
{
    int n_threads = cfg->n_threads;
    if (n_threads < 0)
        return dlv_error(DLV_E_INVALID_ARG, "n_threads %d is negative", n_threads);
    if (n_threads == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = online > 0 && online <= 4096 ? (int)online : 1;
    }
    cpu_backend *cpu = calloc(1, sizeof *cpu);
    if (!cpu) return dlv_error_nomem("cpu backend", sizeof *cpu);
    cpu->base.ops = &cpu_ops;
    cpu->base.device = 0;
    cpu->n_threads = n_threads;
    /* openblas_get_config() already begins with "OpenBLAS <version>". */
    snprintf(cpu->desc, sizeof cpu->desc, "cpu (%s, %d thread%s)", openblas_get_config(),
             n_threads, n_threads == 1 ? "" : "s");
    *out = &cpu->base;
    return DLV_OK;
}
