/* Backward of the row normalisations (RMSNorm, LayerNorm, L2) and of a bias
 * add. Each row's statistics are recomputed exactly as cpu_norm.c computes
 * them (double sums rounded to f32 once), so the backward differentiates the
 * very function the forward evaluated. Per-row sums of the backward are in
 * double too.
 *
 * Threads: the input gradient is row-parallel; the parameter gradients
 * (column sums over rows) run in a second pass split by columns, each column
 * summed over the rows in order in double and added once. No thread writes
 * another's data, and every value is independent of the split: results are
 * bit-identical for any thread count. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_backward.h"
#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

typedef struct norm_bw_job {
    float *dinp, *dweight, *dbias;
    const float *dout, *inp;
    const float *weight; /* widened, or NULL (1) */
    float *mean, *rstd;  /* [rows] per-row statistics (mean NULL for RMSNorm) */
    double *acc_w, *acc_b; /* [cols] column sums of the second pass */
    int64_t rows, cols;
    float eps;
} norm_bw_job;

static dlv_status widen_weight(const void *weight, dlv_dtype dt, int64_t cols, float **out)
{
    *out = NULL;
    if (!weight) return DLV_OK;
    size_t bytes = (size_t)cols * sizeof(float);
    float *p = malloc(bytes ? bytes : 1);
    if (!p) return dlv_error_nomem("norm backward: widened weight", bytes);
    dlv_cpu_widen(p, weight, dt, cols);
    *out = p;
    return DLV_OK;
}

/* ---- RMSNorm ------------------------------------------------------------ */

/* y = x * rs (rs = 1 / sqrt(mean(x^2) + eps)), out = w * y:
 * dy = dout * w, dx += rs * (dy - y * mean(dy . y)). */
static void rmsnorm_bw_rows(void *ctx, int64_t begin, int64_t end)
{
    const norm_bw_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->inp + r * n, *g = j->dout + r * n;
        float *dx = j->dinp + r * n;
        const float rs = dlv_cpu_rms_rstd(x, n, j->eps);
        j->rstd[r] = rs;
        double dot = 0.0;
        for (int64_t c = 0; c < n; c++) {
            float dy = j->weight ? g[c] * j->weight[c] : g[c];
            dot += (double)dy * (double)(x[c] * rs);
        }
        float m = (float)(dot / (double)n);
        for (int64_t c = 0; c < n; c++) {
            float dy = j->weight ? g[c] * j->weight[c] : g[c];
            float y = x[c] * rs;
            dx[c] += rs * (dy - y * m);
        }
    }
}

/* dweight[c] += sum_r dout[r, c] * y[r, c], columns [begin, end). */
static void rmsnorm_bw_cols(void *ctx, int64_t begin, int64_t end)
{
    const norm_bw_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t c = begin; c < end; c++) j->acc_w[c] = 0.0;
    for (int64_t r = 0; r < j->rows; r++) {
        const float *x = j->inp + r * n, *g = j->dout + r * n;
        float rs = j->rstd[r];
        for (int64_t c = begin; c < end; c++) j->acc_w[c] += (double)g[c] * (double)(x[c] * rs);
    }
    for (int64_t c = begin; c < end; c++) j->dweight[c] += (float)j->acc_w[c];
}

/* Scratch for the statistics and column sums: one block. */
static dlv_status alloc_scratch(norm_bw_job *j, int stats, void **block)
{
    size_t stat_bytes = (size_t)j->rows * sizeof(float);
    size_t acc_bytes = (size_t)j->cols * sizeof(double);
    size_t bytes = 2 * acc_bytes + (size_t)stats * stat_bytes;
    char *p = malloc(bytes ? bytes : 1);
    *block = p;
    if (!p) return dlv_error_nomem("norm backward scratch", bytes);
    j->acc_w = (double *)p;
    j->acc_b = (double *)(p + acc_bytes);
    if (stats >= 1) j->rstd = (float *)(p + 2 * acc_bytes);
    if (stats >= 2) j->mean = (float *)(p + 2 * acc_bytes + stat_bytes);
    return DLV_OK;
}

/* Widens the weight, allocates the scratch (`stats` per-row statistics),
 * runs rows_fn over the rows, then cols_fn (if any) over the columns, frees. */
static dlv_status run_bw(dlv_backend *be, norm_bw_job *j, const void *weight, dlv_dtype dt,
                         int stats, dlv_cpu_task_fn rows_fn, dlv_cpu_task_fn cols_fn)
{
    if (j->rows == 0 || j->cols == 0) return DLV_OK;
    float *w;
    void *block = NULL;
    dlv_status st = widen_weight(weight, dt, j->cols, &w);
    if (!st) st = alloc_scratch(j, stats, &block);
    if (!st) {
        j->weight = w;
        dlv_cpu_pool *pool = dlv_cpu_pool_of(be);
        if (rows_fn) dlv_cpu_pool_run(pool, j->rows, dlv_cpu_norm_grain(j->cols), rows_fn, j);
        if (cols_fn) dlv_cpu_pool_run(pool, j->cols, dlv_cpu_norm_grain(j->rows), cols_fn, j);
    }
    free(block);
    free(w);
    return st;
}

dlv_status dlv_cpu_rmsnorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                    const float *dout, const float *inp, const void *weight,
                                    dlv_dtype weight_dtype, int64_t rows, int64_t cols,
                                    float eps)
{
    norm_bw_job j = {.dinp = dinp, .dweight = dweight, .dout = dout, .inp = inp,
                     .rows = rows, .cols = cols, .eps = eps};
    return run_bw(be, &j, weight, weight_dtype, 1, rmsnorm_bw_rows,
                  dweight ? rmsnorm_bw_cols : NULL);
}

/* ---- LayerNorm ---------------------------------------------------------- */

/* xhat = (x - mean) * rstd, out = w * xhat + b: dxhat = dout * w,
 * dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat . xhat)). */
static void layernorm_bw_rows(void *ctx, int64_t begin, int64_t end)
{
    const norm_bw_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->inp + r * n, *g = j->dout + r * n;
        float *dx = j->dinp + r * n;
        float mean, rstd;
        dlv_cpu_layernorm_stats(x, n, j->eps, &mean, &rstd);
        j->mean[r] = mean;
        j->rstd[r] = rstd;
        double s1 = 0.0, s2 = 0.0;
        for (int64_t c = 0; c < n; c++) {
            float dxh = j->weight ? g[c] * j->weight[c] : g[c];
            float xh = (x[c] - mean) * rstd;
            s1 += (double)dxh;
            s2 += (double)dxh * (double)xh;
        }
        float m1 = (float)(s1 / (double)n), m2 = (float)(s2 / (double)n);
        for (int64_t c = 0; c < n; c++) {
            float dxh = j->weight ? g[c] * j->weight[c] : g[c];
            float xh = (x[c] - mean) * rstd;
            dx[c] += rstd * (dxh - m1 - xh * m2);
        }
    }
}

/* dweight[c] += sum_r dout * xhat, dbias[c] += sum_r dout. */
static void layernorm_bw_cols(void *ctx, int64_t begin, int64_t end)
{
    const norm_bw_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t c = begin; c < end; c++) j->acc_w[c] = j->acc_b[c] = 0.0;
    for (int64_t r = 0; r < j->rows; r++) {
        const float *x = j->inp + r * n, *g = j->dout + r * n;
        float mean = j->mean[r], rstd = j->rstd[r];
        if (j->dweight)
            for (int64_t c = begin; c < end; c++)
                j->acc_w[c] += (double)g[c] * (double)((x[c] - mean) * rstd);
        if (j->dbias)
            for (int64_t c = begin; c < end; c++) j->acc_b[c] += (double)g[c];
    }
    for (int64_t c = begin; c < end; c++) {
        if (j->dweight) j->dweight[c] += (float)j->acc_w[c];
        if (j->dbias) j->dbias[c] += (float)j->acc_b[c];
    }
}

dlv_status dlv_cpu_layernorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                      float *dbias, const float *dout, const float *inp,
                                      const void *weight, dlv_dtype param_dtype, int64_t rows,
                                      int64_t cols, float eps)
{
    norm_bw_job j = {.dinp = dinp, .dweight = dweight, .dbias = dbias, .dout = dout,
                     .inp = inp, .rows = rows, .cols = cols, .eps = eps};
    return run_bw(be, &j, weight, param_dtype, 2, layernorm_bw_rows,
                  dweight || dbias ? layernorm_bw_cols : NULL);
}

/* ---- L2 normalize ------------------------------------------------------- */

/* y = x / d, d = max(||x||, 1e-12): dx += (dout - y (y . dout)) / d where the
 * norm is not clamped; where it is (clamp_min passes no gradient to the
 * norm), dx += dout / 1e-12, as torch's autograd gives. */
static void l2_bw_rows(void *ctx, int64_t begin, int64_t end)
{
    const norm_bw_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->inp + r * n, *g = j->dout + r * n;
        float *dx = j->dinp + r * n;
        const float norm = dlv_cpu_l2_norm(x, n);
        if (norm >= 1e-12f) {
            double dot = 0.0;
            for (int64_t c = 0; c < n; c++) dot += (double)x[c] * (double)g[c];
            float yg = (float)(dot / (double)norm);
            for (int64_t c = 0; c < n; c++) {
                float y = x[c] / norm;
                dx[c] += (g[c] - y * yg) / norm;
            }
        } else {
            for (int64_t c = 0; c < n; c++) dx[c] += g[c] / 1e-12f;
        }
    }
}

dlv_status dlv_cpu_l2_normalize_backward(dlv_backend *be, float *dinp, const float *dout,
                                         const float *inp, int64_t rows, int64_t cols)
{
    norm_bw_job j = {.dinp = dinp, .dout = dout, .inp = inp, .rows = rows, .cols = cols};
    return run_bw(be, &j, NULL, DLV_DTYPE_F32, 0, l2_bw_rows, NULL);
}

/* ---- bias --------------------------------------------------------------- */

static void bias_bw_cols(void *ctx, int64_t begin, int64_t end)
{
    const norm_bw_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t c = begin; c < end; c++) j->acc_b[c] = 0.0;
    for (int64_t r = 0; r < j->rows; r++) {
        const float *g = j->dout + r * n;
        for (int64_t c = begin; c < end; c++) j->acc_b[c] += (double)g[c];
    }
    for (int64_t c = begin; c < end; c++) j->dbias[c] += (float)j->acc_b[c];
}

dlv_status dlv_cpu_bias_backward(dlv_backend *be, float *dbias, const float *dout,
                                 int64_t rows, int64_t cols)
{
    norm_bw_job j = {.dbias = dbias, .dout = dout, .rows = rows, .cols = cols};
    return run_bw(be, &j, NULL, DLV_DTYPE_F32, 0, NULL, bias_bw_cols);
}
