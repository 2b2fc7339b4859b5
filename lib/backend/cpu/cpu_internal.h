/* Shared between the CPU backend's files: the instance, its worker pool and
 * the op slots. Not part of the backend interface (backend/backend.h). */
#ifndef DLV_BACKEND_CPU_INTERNAL_H
#define DLV_BACKEND_CPU_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "backend/backend.h"

/* The worker threads that split a range of independent items (rows,
 * tokens, heads) between themselves and the calling thread.
 *
 * With oneDNN (cpu_threads_omp.c) the pool is an OpenMP team of the
 * backend's n_threads, and oneDNN's GEMMs run on that same team: one set of
 * threads for every op. With OpenBLAS (cpu_threads.c) it is our own pthread
 * pool; BLAS is called from the calling thread outside any pool run, so
 * OpenBLAS's threads and ours never compute at the same time, and idle
 * workers sleep on a condition variable. */
typedef struct dlv_cpu_pool dlv_cpu_pool;

/* Processes items [begin, end). Must not fail: every input was validated
 * before the run. */
typedef void (*dlv_cpu_task_fn)(void *ctx, int64_t begin, int64_t end);

/* n_threads >= 1 counts the calling thread: n_threads - 1 workers start. */
dlv_status dlv_cpu_pool_create(int n_threads, dlv_cpu_pool **out);
void dlv_cpu_pool_destroy(dlv_cpu_pool *pool);
/* Runs fn over [0, n) in contiguous chunks of at least `grain` items (so
 * small jobs stay on the calling thread) and returns when all are done.
 * Safe to call from several threads at once. */
void dlv_cpu_pool_run(dlv_cpu_pool *pool, int64_t n, int64_t grain, dlv_cpu_task_fn fn,
                      void *ctx);
/* The threads a run (and, in the oneDNN build, a GEMM) may use now:
 * n_threads, or 1 in a process forked from the one the pool was made in
 * (cpu_threads_omp.c says why). */
int dlv_cpu_pool_threads(const dlv_cpu_pool *pool);

/* The GEMM provider's per-instance state (cpu_gemm.c). */
typedef struct dlv_cpu_gemm_ctx dlv_cpu_gemm_ctx;
dlv_status dlv_cpu_gemm_ctx_create(dlv_cpu_gemm_ctx **out);
void dlv_cpu_gemm_ctx_destroy(dlv_cpu_gemm_ctx *ctx);
/* "oneDNN 2.6.3" or OpenBLAS's configuration string, for describe(). */
void dlv_cpu_gemm_provider(char *buf, size_t cap);

/* Large blocks a backend instance keeps after their buffer is freed, to hand
 * back to the next allocation of the same size (cpu_backend.c): a forward
 * pass allocates the same activation buffers every call, and fresh pages
 * cost a fault and a kernel memset each (measured: 5-9% of a batch-8
 * forward). */
#define DLV_CPU_CACHE_SLOTS 32
#define DLV_CPU_CACHE_MIN ((size_t)1 << 16)       /* smaller blocks: malloc's own bins */
#define DLV_CPU_CACHE_MAX_BYTES ((size_t)1 << 29) /* 512 MiB kept at most */
typedef struct dlv_cpu_block_cache {
    pthread_mutex_t mu;
    void *ptr[DLV_CPU_CACHE_SLOTS];
    size_t size[DLV_CPU_CACHE_SLOTS];
    int n;
    size_t bytes;
} dlv_cpu_block_cache;

/* Scratch for one op call from the block cache (cpu_backend.c): the
 * matmul's rounded activations and weight tiles come back every call with
 * the same sizes. NULL when out of memory; give it back with the same
 * size. */
void *dlv_cpu_scratch_take(dlv_backend *be, size_t bytes);
void dlv_cpu_scratch_give(dlv_backend *be, void *p, size_t bytes);

typedef struct dlv_cpu_backend {
    dlv_backend base; /* first: the registry sees a dlv_backend */
    /* The oneDNN build runs its GEMMs on n_threads (cpu_gemm.c). In the
     * OpenBLAS build, OpenBLAS's thread count is deliberately NOT set here:
     * openblas_set_num_threads is process-global, so one session asking for
     * 2 threads would silently change every other session (and the host
     * application's own BLAS use). OpenBLAS keeps whatever the process
     * configured (OPENBLAS_NUM_THREADS). */
    int n_threads;
    /* F32 (exact) or BF16 (matmul inputs rounded to bf16, f32 accumulation;
     * docs/backends.md "Compute dtype"). */
    dlv_dtype compute;
    dlv_cpu_pool *pool;
    dlv_cpu_gemm_ctx *gemm;
    dlv_cpu_block_cache cache;
    char desc[256];
} dlv_cpu_backend;

static inline dlv_cpu_pool *dlv_cpu_pool_of(dlv_backend *be)
{
    /* The backend header is the first member. */
    return ((dlv_cpu_backend *)be)->pool;
}

/* One GEMM on the build's provider (cpu_gemm.c): C[m,n] = alpha op(A) op(B)
 * + beta C, row-major, as dlv_matmul_args says; A and B both of dtype dt
 * (F32 or BF16, aligned for it), C f32. Every product of the CPU backend
 * goes through here. */
typedef struct dlv_cpu_gemm_args {
    int trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const void *a; int64_t lda;
    const void *b; int64_t ldb;
    dlv_dtype dt;
    float *c; int64_t ldc;
} dlv_cpu_gemm_args;
dlv_status dlv_cpu_gemm(dlv_backend *be, const dlv_cpu_gemm_args *g);
/* The same for f32 operands in BLAS's argument order (attention's
 * products). */
dlv_status dlv_cpu_sgemm(dlv_backend *be, int trans_a, int trans_b, int64_t m, int64_t n,
                         int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                         int64_t ldb, float beta, float *c, int64_t ldc);

/* Checks of index arguments inside the ops (cpu_index_check.c): the
 * wrappers cannot read device memory. Messages name the op and the index. */
dlv_status dlv_cpu_check_ids(const char *op, const int32_t *ids, int64_t n, int64_t vocab);
dlv_status dlv_cpu_check_positions(const char *op, const int32_t *positions, int64_t n);
dlv_status dlv_cpu_check_targets(const char *op, const int32_t *targets, int64_t n,
                                 int64_t vocab);

/* Marks a hot static function to be compiled for AVX-512, AVX2 and the
 * baseline, the copy for the running CPU picked at load time (gcc and
 * clang; elsewhere one baseline copy). Keep such functions static: clang
 * resolves the clones only inside their own translation unit. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define DLV_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef DLV_CPU_CLONES
#define DLV_CPU_CLONES
#endif

/* Widens n elements of an F32/BF16/F16 parameter at any alignment. */
void dlv_cpu_widen(float *dst, const void *src, dlv_dtype dt, int64_t n);
/* Rounds n elements of an F32/BF16/F16 value at any alignment to bf16
 * (round to nearest even, as PyTorch's .to(torch.bfloat16)). */
void dlv_cpu_to_bf16(uint16_t *dst, const void *src, dlv_dtype dt, int64_t n);

dlv_status dlv_cpu_matmul(dlv_backend *be, const dlv_matmul_args *a);
dlv_status dlv_cpu_add(dlv_backend *be, float *out, const float *a, const void *b,
                       dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols);
dlv_status dlv_cpu_layernorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                             const void *bias, dlv_dtype param_dtype, int64_t rows,
                             int64_t cols, float eps);
dlv_status dlv_cpu_rmsnorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                           dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps);
dlv_status dlv_cpu_add_layernorm(dlv_backend *be, float *sum, float *out, const float *a,
                                 const float *b, const void *weight, const void *bias,
                                 dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps);
dlv_status dlv_cpu_add_rmsnorm(dlv_backend *be, float *sum, float *out, const float *a,
                               const float *b, const void *weight, dlv_dtype weight_dtype,
                               int64_t rows, int64_t cols, float eps);
dlv_status dlv_cpu_l2_normalize(dlv_backend *be, float *out, const float *inp, int64_t rows,
                                int64_t cols);
dlv_status dlv_cpu_rope(dlv_backend *be, float *x, const int32_t *positions, int64_t n_tokens,
                        int64_t n_heads, int64_t head_dim, double theta);
/* cpu_rope_table.c */
dlv_status dlv_cpu_rope_table(dlv_backend *be, float *x, const float *cos_tab,
                              const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                              int64_t head_dim);
/* The fused (flash-style) attention forward (cpu_flash.c). */
dlv_status dlv_cpu_attention(dlv_backend *be, const dlv_attention_args *args);
/* Row statistics of the normalisations (cpu_norm.c), accumulated in double
 * and rounded to f32 once; the backward passes recompute them with these
 * very functions, so they differentiate what the forward evaluated.
 * dlv_cpu_norm_grain: rows per pool chunk for rows of `cols` values. */
float dlv_cpu_rms_rstd(const float *x, int64_t n, float eps);
void dlv_cpu_layernorm_stats(const float *x, int64_t n, float eps, float *mean, float *rstd);
float dlv_cpu_l2_norm(const float *x, int64_t n);
int64_t dlv_cpu_norm_grain(int64_t cols);

dlv_status dlv_cpu_activation(dlv_backend *be, dlv_op_act act, float *out,
                              const float *inp, int64_t n);
dlv_status dlv_cpu_swiglu(dlv_backend *be, float *out, const float *gate, const float *up,
                          int64_t n);
dlv_status dlv_cpu_embedding(dlv_backend *be, float *out, const void *table,
                             dlv_dtype table_dtype, const int32_t *ids, int64_t n_ids,
                             int64_t vocab, int64_t dim);
dlv_status dlv_cpu_adamw_update(dlv_backend *be, const dlv_adamw_args *args);
dlv_status dlv_cpu_sgd_update(dlv_backend *be, float *params, const float *grads, int64_t n,
                              float lr, float weight_decay, float grad_scale);
dlv_status dlv_cpu_sum_squares(dlv_backend *be, double *out, const float *x, int64_t n);
dlv_status dlv_cpu_im2col_patches(dlv_backend *be, float *out, const float *pixels, int64_t c,
                                  int64_t h, int64_t w, int64_t patch);

#endif
