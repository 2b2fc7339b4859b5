/* The optimizer ops on the CPU (see backend.h). Every element is updated
 * independently, so any split over threads gives the same bits; the sum of
 * squares uses fixed blocks for the same reason. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

#define GRAIN 16384

static void adamw_rows(void *ctx, int64_t begin, int64_t end)
{
    const dlv_adamw_args *a = ctx;
    const float b1 = a->beta1, b2 = a->beta2;
    for (int64_t i = begin; i < end; i++) {
        /* PyTorch's AdamW (foreach=False), in float as it computes. */
        const float g = a->grads[i] * a->grad_scale;
        a->params[i] *= a->decay_mul;
        a->m[i] = b1 * a->m[i] + (1.0f - b1) * g;
        a->v[i] = b2 * a->v[i] + (1.0f - b2) * g * g;
        const float denom = sqrtf(a->v[i]) / a->bc2_sqrt + a->eps;
        a->params[i] -= a->step_size * (a->m[i] / denom);
    }
}

dlv_status dlv_cpu_adamw_update(dlv_backend *be, const dlv_adamw_args *args)
{
    dlv_adamw_args a = *args;
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), a.n, GRAIN, adamw_rows, &a);
    return DLV_OK;
}

typedef struct sgd_job {
    float *params;
    const float *grads;
    float lr, wd, scale;
} sgd_job;

static void sgd_rows(void *ctx, int64_t begin, int64_t end)
{
    const sgd_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        float g = j->grads[i] * j->scale;
        if (j->wd != 0.0f) g += j->wd * j->params[i];
        j->params[i] -= j->lr * g;
    }
}

dlv_status dlv_cpu_sgd_update(dlv_backend *be, float *params, const float *grads, int64_t n,
                              float lr, float weight_decay, float grad_scale)
{
    sgd_job j = {params, grads, lr, weight_decay, grad_scale};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n, GRAIN, sgd_rows, &j);
    return DLV_OK;
}

typedef struct sumsq_job {
    const float *x;
    int64_t n;
    double *block_sums;
} sumsq_job;

static void sumsq_blocks(void *ctx, int64_t begin, int64_t end)
{
    const sumsq_job *j = ctx;
    for (int64_t b = begin; b < end; b++) {
        const int64_t lo = b * DLV_SUM_SQUARES_BLOCK;
        const int64_t hi = lo + DLV_SUM_SQUARES_BLOCK < j->n ? lo + DLV_SUM_SQUARES_BLOCK : j->n;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++) s += (double)j->x[i] * (double)j->x[i];
        j->block_sums[b] = s;
    }
}

dlv_status dlv_cpu_sum_squares(dlv_backend *be, double *out, const float *x, int64_t n)
{
    const int64_t n_blocks = (n + DLV_SUM_SQUARES_BLOCK - 1) / DLV_SUM_SQUARES_BLOCK;
    double *sums = malloc((size_t)(n_blocks > 0 ? n_blocks : 1) * sizeof *sums);
    if (!sums) return dlv_error_nomem("sum_squares blocks", (size_t)n_blocks * sizeof(double));
    sumsq_job j = {x, n, sums};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n_blocks, 4, sumsq_blocks, &j);
    double s = 0.0;
    for (int64_t b = 0; b < n_blocks; b++) s += sums[b];
    free(sums);
    *out = s;
    return DLV_OK;
}
