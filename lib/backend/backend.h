/* The compute backend interface. Model code is written once against this
 * vtable; each backend (CPU: OpenBLAS + threads, CUDA: cuBLAS + kernels)
 * fills it. Like sqlite3_io_methods, the table starts with its version and
 * size and new slots are only appended, so code compiled against an older
 * table keeps working: callers check DLV_BACKEND_HAS(ops, slot) before using
 * a slot added after version 1.
 *
 * Device memory is owned through dlv_buffer; ops take device pointers
 * obtained from dlv_buffer_ptr (host pointers on the CPU backend). */
#ifndef DLV_BACKEND_BACKEND_H
#define DLV_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "disclvlm.h"

#define DLV_BACKEND_OPS_VERSION 1

typedef struct dlv_backend dlv_backend;

typedef struct dlv_buffer {
    void *ptr;            /* device address */
    size_t size;          /* bytes */
    dlv_backend *owner;
} dlv_buffer;

typedef enum dlv_transpose { DLV_NO_TRANS = 0, DLV_TRANS = 1 } dlv_transpose;

/* C[m,n] = alpha * op(A)[m,k] . op(B)[k,n] + beta * C, row-major, with
 * leading dimensions in elements. a_dtype / b_dtype name how A and B are
 * stored (F32 now; BF16/F16 weights come with the forward pass); C is F32. */
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

typedef struct dlv_backend_config {
    int device;           /* device ordinal for device backends */
    int n_threads;        /* CPU worker threads; 0 = online CPUs */
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

/* Thin checked wrappers: validate arguments, then dispatch. */
dlv_status dlv_buffer_alloc(dlv_backend *be, size_t size, dlv_buffer *out);
void dlv_buffer_free(dlv_buffer *buf);
dlv_status dlv_buffer_upload(dlv_buffer *dst, size_t offset, const void *src,
                             size_t size);
dlv_status dlv_buffer_download(void *dst, const dlv_buffer *src, size_t offset,
                               size_t size);
dlv_status dlv_matmul(dlv_backend *be, const dlv_matmul_args *args);

/* Backend constructors, used by the registry only. */
dlv_status dlv_cpu_backend_create(const dlv_backend_config *cfg, dlv_backend **out);
#ifdef DLV_HAVE_CUDA
dlv_status dlv_cuda_backend_create(const dlv_backend_config *cfg, dlv_backend **out);
#endif

#endif
