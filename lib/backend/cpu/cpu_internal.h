/* Shared between the CPU backend's files: the instance, its worker pool and
 * the op slots. Not part of the backend interface (backend/backend.h). */
#ifndef DLV_BACKEND_CPU_INTERNAL_H
#define DLV_BACKEND_CPU_INTERNAL_H

#include <stdint.h>

#include "backend/backend.h"

/* A fixed set of worker threads that split a range of independent items
 * (rows, tokens, heads) between themselves and the calling thread.
 *
 * Oversubscription rule: the pool only ever runs our own loops. BLAS is
 * called from the calling thread outside any pool run, so OpenBLAS's threads
 * and ours never compute at the same time; idle workers sleep on a condition
 * variable. */
typedef struct dlv_cpu_pool dlv_cpu_pool;

/* Processes items [begin, end). Must not fail: every input was validated
 * before the run. */
typedef void (*dlv_cpu_task_fn)(void *ctx, int64_t begin, int64_t end);

/* n_threads >= 1 counts the calling thread: n_threads - 1 workers start. */
dlv_status dlv_cpu_pool_create(int n_threads, dlv_cpu_pool **out);
void dlv_cpu_pool_destroy(dlv_cpu_pool *pool);
/* Runs fn over [0, n) in contiguous chunks of at least `grain` items (so
 * small jobs stay on the calling thread) and returns when all are done.
 * Concurrent callers are serialised. */
void dlv_cpu_pool_run(dlv_cpu_pool *pool, int64_t n, int64_t grain, dlv_cpu_task_fn fn,
                      void *ctx);

typedef struct dlv_cpu_backend {
    dlv_backend base; /* first: the registry sees a dlv_backend */
    /* OpenBLAS's thread count is deliberately NOT set from here:
     * openblas_set_num_threads is process-global, so one session asking for
     * 2 threads would silently change every other session (and the host
     * application's own BLAS use). OpenBLAS keeps whatever the process
     * configured (OPENBLAS_NUM_THREADS). */
    int n_threads;
    dlv_cpu_pool *pool;
    char desc[256];
} dlv_cpu_backend;

static inline dlv_cpu_pool *dlv_cpu_pool_of(dlv_backend *be)
{
    /* The backend header is the first member. */
    return ((dlv_cpu_backend *)be)->pool;
}

/* Checks of index arguments inside the ops (cpu_index_check.c): the
 * wrappers cannot read device memory. Messages name the op and the index. */
dlv_status dlv_cpu_check_ids(const char *op, const int32_t *ids, int64_t n, int64_t vocab);
dlv_status dlv_cpu_check_positions(const char *op, const int32_t *positions, int64_t n);
dlv_status dlv_cpu_check_targets(const char *op, const int32_t *targets, int64_t n,
                                 int64_t vocab);

/* Widens n elements of an F32/BF16/F16 parameter at any alignment. */
void dlv_cpu_widen(float *dst, const void *src, dlv_dtype dt, int64_t n);

dlv_status dlv_cpu_matmul(dlv_backend *be, const dlv_matmul_args *a);
dlv_status dlv_cpu_add(dlv_backend *be, float *out, const float *a, const void *b,
                       dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols);
dlv_status dlv_cpu_layernorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                             const void *bias, dlv_dtype param_dtype, int64_t rows,
                             int64_t cols, float eps);
dlv_status dlv_cpu_rmsnorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                           dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps);
dlv_status dlv_cpu_l2_normalize(dlv_backend *be, float *out, const float *inp, int64_t rows,
                                int64_t cols);
dlv_status dlv_cpu_rope(dlv_backend *be, float *x, const int32_t *positions, int64_t n_tokens,
                        int64_t n_heads, int64_t head_dim, double theta);
dlv_status dlv_cpu_attention(dlv_backend *be, const dlv_attention_args *args);
/* Row statistics of the normalisations (cpu_norm.c), accumulated in double
 * and rounded to f32 once; the backward passes recompute them with these
 * very functions, so they differentiate what the forward evaluated.
 * dlv_cpu_norm_grain: rows per pool chunk for rows of `cols` values. */
float dlv_cpu_rms_rstd(const float *x, int64_t n, float eps);
void dlv_cpu_layernorm_stats(const float *x, int64_t n, float eps, float *mean, float *rstd);
float dlv_cpu_l2_norm(const float *x, int64_t n);
int64_t dlv_cpu_norm_grain(int64_t cols);

/* The masked softmax of attention score rows [begin, end) of s, in place
 * (a pool job; cpu_attention.c). The backward recomputes P with this very
 * function, so it differentiates exactly what the forward evaluated. */
typedef struct dlv_cpu_softmax_job {
    float *s;               /* [n_q, n_kv] scores, replaced by probabilities */
    const uint8_t *mask;    /* [n_kv] or NULL */
    int64_t n_kv;
    int64_t causal_offset;  /* key j allowed for j <= i + offset */
    int causal;
} dlv_cpu_softmax_job;
void dlv_cpu_softmax_rows(void *ctx, int64_t begin, int64_t end);
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
