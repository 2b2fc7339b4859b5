/* The compute backend interface. Model code is written once against this
 * vtable; each backend (CPU: OpenBLAS + threads, CUDA: cuBLAS + kernels)
 * fills it. Like sqlite3_io_methods, the table starts with its version and
 * size and new slots are only appended, so code compiled against an older
 * table keeps working: callers check DLV_BACKEND_HAS(ops, slot) before using
 * a slot added after version 1.
 *
 * Device memory is owned through dlv_buffer; ops take device pointers
 * obtained from dlv_buffer_ptr (host pointers on the CPU backend).
 *
 * Call through the checked wrappers below (dlv_buffer_*, dlv_matmul, ...):
 * they validate every argument once, so the backends' slots may assume
 * well-formed input (ranges inside the buffer, m/n/k and leading dimensions
 * consistent, F32 operands). */
#ifndef DLV_BACKEND_BACKEND_H
#define DLV_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "disclvlm.h"
#include "dlv_build_config.h" /* DLV_HAVE_CUDA */

#define DLV_BACKEND_OPS_VERSION 1

typedef struct dlv_backend dlv_backend;

/* A zero-initialised dlv_buffer is "no buffer": dlv_buffer_free accepts it.
 * Zero-byte buffers are allowed (an empty tensor needs no special case); they
 * still get a distinct non-NULL ptr, so ptr != NULL means "allocated". */
typedef struct dlv_buffer {
    void *ptr;            /* device address */
    size_t size;          /* bytes, as requested */
    dlv_backend *owner;
} dlv_buffer;

typedef enum dlv_transpose { DLV_NO_TRANS = 0, DLV_TRANS = 1 } dlv_transpose;

/* C[m,n] = alpha * op(A)[m,k] . op(B)[k,n] + beta * C, row-major, with
 * leading dimensions in elements. a_dtype / b_dtype name how A and B are
 * stored (F32 now; BF16/F16 weights come with the forward pass); C is F32.
 *
 * As in BLAS: A is stored m x k (k x m when trans_a), so lda >= max(1, k)
 * (max(1, m)); B is stored k x n (n x k when trans_b), so ldb >= max(1, n)
 * (max(1, k)); ldc >= max(1, n). m, n, k and the leading dimensions must be
 * <= INT_MAX (cblas and cuBLAS take int). m == 0 or n == 0 is a no-op;
 * k == 0 gives C = beta * C. beta == 0 means C is not read, so NaN in an
 * uninitialised C does not propagate. Columns of C past n (the ldc padding)
 * are never written. A pointer may be NULL only if its matrix is empty. */
typedef struct dlv_matmul_args {
    size_t struct_size;   /* sizeof(dlv_matmul_args) */
    dlv_transpose trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const void *a; dlv_dtype a_dtype; int64_t lda;
    const void *b; dlv_dtype b_dtype; int64_t ldb;
    float *c; int64_t ldc;
} dlv_matmul_args;

typedef struct dlv_backend_ops {
    uint32_t version;     /* DLV_BACKEND_OPS_VERSION the table was built for */
    uint32_t size;        /* sizeof the table it was built with */
    const char *name;     /* "cpu", "cuda" */

    void (*destroy)(dlv_backend *be);
    /* A human description: "cpu (OpenBLAS 0.3.21, 2 threads)", "cuda: H100". */
    const char *(*describe)(const dlv_backend *be);

    dlv_status (*buffer_alloc)(dlv_backend *be, size_t size, dlv_buffer *out);
    void (*buffer_free)(dlv_backend *be, dlv_buffer *buf);
    dlv_status (*upload)(dlv_backend *be, dlv_buffer *dst, size_t offset,
                         const void *src, size_t size);
    dlv_status (*download)(dlv_backend *be, void *dst, const dlv_buffer *src,
                           size_t offset, size_t size);
    dlv_status (*memset_zero)(dlv_backend *be, dlv_buffer *buf, size_t offset,
                              size_t size);
    /* Waits for all queued work. */
    dlv_status (*synchronize)(dlv_backend *be);

    dlv_status (*matmul)(dlv_backend *be, const dlv_matmul_args *args);
    /* Version 1 ends here. Append new ops below and bump the version. */
} dlv_backend_ops;

/* Every backend instance starts with this header. */
struct dlv_backend {
    const dlv_backend_ops *ops;
    int device;           /* the ordinal it was created for (0 on the CPU) */
};

#define DLV_BACKEND_HAS(ops_, slot_)                                           \
    ((ops_)->size >= offsetof(dlv_backend_ops, slot_) + sizeof((ops_)->slot_) && \
     (ops_)->slot_ != NULL)

/* NULL means all defaults (device 0, n_threads 0). */
typedef struct dlv_backend_config {
    int device;           /* device ordinal for device backends; the CPU ignores it */
    int n_threads;        /* CPU worker threads; 0 = online CPUs, < 0 invalid */
} dlv_backend_config;

/* The registry. name: "cpu", "cuda" or "auto". DLV_E_BACKEND with a clear
 * message where the backend is unknown, not built, or has no device. */
dlv_status dlv_backend_create(const char *name, const dlv_backend_config *cfg,
                              dlv_backend **out);
void dlv_backend_destroy(dlv_backend *be);
/* 1 if the named backend is compiled into this build. */
int dlv_backend_built(const char *name);
/* Comma-separated names of the backends compiled in ("cpu" or "cpu,cuda"). */
const char *dlv_backend_list(void);

/* The backend's describe() text; "" for NULL. */
const char *dlv_backend_describe(const dlv_backend *be);
dlv_status dlv_backend_synchronize(dlv_backend *be);

/* Thin checked wrappers: validate arguments, then dispatch. Ranges are
 * [offset, offset + size) in bytes and must lie inside the buffer; size 0 is
 * allowed at any offset <= buf->size. On failure *out of dlv_buffer_alloc is
 * zeroed. */
dlv_status dlv_buffer_alloc(dlv_backend *be, size_t size, dlv_buffer *out);
/* Accepts NULL and a zero-initialised buffer; zeroes *buf, so a second call
 * is a no-op. */
void dlv_buffer_free(dlv_buffer *buf);
dlv_status dlv_buffer_upload(dlv_buffer *dst, size_t offset, const void *src,
                             size_t size);
dlv_status dlv_buffer_download(void *dst, const dlv_buffer *src, size_t offset,
                               size_t size);
dlv_status dlv_buffer_zero(dlv_buffer *buf, size_t offset, size_t size);
/* The device address of buf (NULL for NULL or an unallocated buffer). */
void *dlv_buffer_ptr(const dlv_buffer *buf);
/* args->struct_size must be sizeof(dlv_matmul_args). */
dlv_status dlv_matmul(dlv_backend *be, const dlv_matmul_args *args);

/* Backend constructors, used by the registry only. */
dlv_status dlv_cpu_backend_create(const dlv_backend_config *cfg, dlv_backend **out);
#ifdef DLV_HAVE_CUDA
dlv_status dlv_cuda_backend_create(const dlv_backend_config *cfg, dlv_backend **out);
/* The number of CUDA devices; DLV_E_BACKEND with the CUDA error string where
 * the runtime reports none (no driver, no device). */
dlv_status dlv_cuda_device_count(int *out);
#endif

#endif
