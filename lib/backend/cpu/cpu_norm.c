/* Row normalisations: LayerNorm, RMSNorm, L2. Each row's statistic is
 * accumulated in double and rounded to f32 once (the correctly rounded value
 * that PyTorch's f32 reductions approximate), then the row is transformed
 * with the same f32 operations, in the same order, as the PyTorch module. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

typedef struct norm_job {
    float *out;
    const float *inp;
    /* Fused residual (add_layernorm, add_rmsnorm): each row of sum is
     * first inp + res, then normalised; NULL otherwise. */
    const float *res;
    float *sum;
    const float *weight; /* widened, or NULL */
    const float *bias;   /* widened, or NULL */
    int64_t cols;
    float eps;
} norm_job;

int64_t dlv_cpu_norm_grain(int64_t cols)
{
    return 16384 / (cols > 0 ? cols : 1) + 1;
}

/* Sums of x - shift and of (x - shift)^2 in double. Four partial sums break
 * the dependency chain of one accumulator (a 4x speed-up); in double the
 * changed summation order is far below f32 resolution. */
static void row_sums(const float *x, int64_t n, double shift, double *sum, double *sum_sq)
{
    double s[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) {
            double d = (double)x[i + l] - shift;
            s[l] += d;
            q[l] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - shift;
        s[0] += d;
        q[0] += d * d;
    }
    *sum = (s[0] + s[1]) + (s[2] + s[3]);
    *sum_sq = (q[0] + q[1]) + (q[2] + q[3]);
}

/* HF LlamaRMSNorm: variance = x.pow(2).mean(-1), then rsqrt(variance + eps). */
float dlv_cpu_rms_rstd(const float *x, int64_t n, float eps)
{
    double sum, ss;
    row_sums(x, n, 0.0, &sum, &ss);
    const float mean_sq = (float)(ss / (double)n);
    return 1.0f / sqrtf(mean_sq + eps);
}

/* torch.nn.LayerNorm: the mean, then the biased variance about it (a second
 * pass, without cancellation). */
void dlv_cpu_layernorm_stats(const float *x, int64_t n, float eps, float *mean, float *rstd)
{
    double sum, ss;
    row_sums(x, n, 0.0, &sum, &ss);
    const double mean_d = sum / (double)n;
    row_sums(x, n, mean_d, &sum, &ss);
    *mean = (float)mean_d;
    const float var = (float)(ss / (double)n);
    *rstd = 1.0f / sqrtf(var + eps);
}

float dlv_cpu_l2_norm(const float *x, int64_t n)
{
    double sum, ss;
    row_sums(x, n, 0.0, &sum, &ss);
    return (float)sqrt(ss);
}

/* weight and bias widened into one block: [weight | bias]. */
static dlv_status widen_params(const void *weight, const void *bias, dlv_dtype dt,
                               int64_t cols, float **block, norm_job *j)
{
    *block = NULL;
    if (!weight && !bias) return DLV_OK;
    size_t bytes = 2 * (size_t)cols * sizeof(float);
    float *p = malloc(bytes ? bytes : 1);
    if (!p) return dlv_error_nomem("norm parameters", bytes);
    if (weight) {
        dlv_cpu_widen(p, weight, dt, cols);
        j->weight = p;
    }
    if (bias) {
        dlv_cpu_widen(p + cols, bias, dt, cols);
        j->bias = p + cols;
    }
    *block = p;
    return DLV_OK;
}

/* Widens the parameters, runs fn over the rows on the pool, frees. */
static dlv_status run_rows(dlv_backend *be, norm_job *j, const void *weight, const void *bias,
                           dlv_dtype dt, int64_t rows, dlv_cpu_task_fn fn)
{
    if (rows == 0 || j->cols == 0) return DLV_OK;
    float *block;
    dlv_status st = widen_params(weight, bias, dt, j->cols, &block, j);
    if (st != DLV_OK) return st;
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), rows, dlv_cpu_norm_grain(j->cols), fn, j);
    free(block);
    return DLV_OK;
}

/* Row r of the norm's input: inp's, or with a fused residual sum's row,
 * computed here (the f32 a + b of dlv_add, so the bits are the same) while
 * it is in cache for the statistics and the transform that follow. */
static const float *row_input(const norm_job *j, int64_t r)
{
    const int64_t n = j->cols;
    const float *x = j->inp + r * n;
    if (!j->res) return x;
    const float *b = j->res + r * n;
    float *s = j->sum + r * n;
    for (int64_t c = 0; c < n; c++) s[c] = x[c] + b[c];
    return s;
}

static void layernorm_rows(void *ctx, int64_t begin, int64_t end)
{
    const norm_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = row_input(j, r);
        float *o = j->out + r * n;
        float mean, rstd;
        dlv_cpu_layernorm_stats(x, n, j->eps, &mean, &rstd);
        for (int64_t c = 0; c < n; c++) {
            float y = (x[c] - mean) * rstd;
            if (j->weight) y *= j->weight[c];
            if (j->bias) y += j->bias[c];
            o[c] = y;
        }
    }
}

dlv_status dlv_cpu_layernorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                             const void *bias, dlv_dtype param_dtype, int64_t rows,
                             int64_t cols, float eps)
{
    norm_job j = {.out = out, .inp = inp, .cols = cols, .eps = eps};
    return run_rows(be, &j, weight, bias, param_dtype, rows, layernorm_rows);
}

static void rmsnorm_rows(void *ctx, int64_t begin, int64_t end)
{
    const norm_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = row_input(j, r);
        float *o = j->out + r * n;
        /* HF: x * torch.rsqrt(variance + eps); weight * that. */
        const float rs = dlv_cpu_rms_rstd(x, n, j->eps);
        for (int64_t c = 0; c < n; c++) {
            float y = x[c] * rs;
            o[c] = j->weight ? j->weight[c] * y : y;
        }
    }
}

dlv_status dlv_cpu_rmsnorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                           dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps)
{
    norm_job j = {.out = out, .inp = inp, .cols = cols, .eps = eps};
    return run_rows(be, &j, weight, NULL, weight_dtype, rows, rmsnorm_rows);
}

dlv_status dlv_cpu_add_layernorm(dlv_backend *be, float *sum, float *out, const float *a,
                                 const float *b, const void *weight, const void *bias,
                                 dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps)
{
    norm_job j = {.out = out, .inp = a, .res = b, .sum = sum, .cols = cols, .eps = eps};
    return run_rows(be, &j, weight, bias, param_dtype, rows, layernorm_rows);
}

dlv_status dlv_cpu_add_rmsnorm(dlv_backend *be, float *sum, float *out, const float *a,
                               const float *b, const void *weight, dlv_dtype weight_dtype,
                               int64_t rows, int64_t cols, float eps)
{
    norm_job j = {.out = out, .inp = a, .res = b, .sum = sum, .cols = cols, .eps = eps};
    return run_rows(be, &j, weight, NULL, weight_dtype, rows, rmsnorm_rows);
}

static void l2_rows(void *ctx, int64_t begin, int64_t end)
{
    const norm_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->inp + r * n;
        float *o = j->out + r * n;
        /* F.normalize: x / norm.clamp_min(1e-12). */
        const float norm = dlv_cpu_l2_norm(x, n);
        float denom = norm > 1e-12f ? norm : 1e-12f;
        for (int64_t c = 0; c < n; c++) o[c] = x[c] / denom;
    }
}

dlv_status dlv_cpu_l2_normalize(dlv_backend *be, float *out, const float *inp, int64_t rows,
                                int64_t cols)
{
    norm_job j = {.out = out, .inp = inp, .cols = cols};
    return run_rows(be, &j, NULL, NULL, DLV_DTYPE_F32, rows, l2_rows);
}
