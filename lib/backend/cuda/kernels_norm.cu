/* Row normalisations on the GPU: LayerNorm, RMSNorm (optionally fused with
 * the residual add before them), L2, their backward passes and the column
 * sums of the parameter gradients.
 *
 * Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks
 * it against the CPU where one exists.
 *
 * Mirrors cpu/cpu_norm.c and cpu/cpu_norm_bw.c: one block per row (grid-
 * stride over rows), each row statistic accumulated in double and rounded
 * to f32 once, then the module's own f32 expression per element. The
 * reductions have a fixed order (block_sum), so results are reproducible,
 * and differ from the CPU's sequential double sums only far below f32
 * resolution. Every thread visits the same columns (c = tid, tid + block,
 * ...) in every pass of a row, so a value it wrote in one pass (the fused
 * residual sum) is the one it reads in the next, and an in-place output
 * overwrites only elements that thread alone has read.
 *
 * Parameter gradients (dweight, dbias: sums over rows) are not atomics:
 * each (column tile, chunk of rows) block writes its partial double sums to
 * scratch, and a second kernel adds each column's chunks in order, so the
 * result does not depend on scheduling. */
#include "backend/cuda/cuda_device.cuh"
#include "backend/cuda/cuda_kernels_norm.h"

using namespace dlv_cuk;

namespace {

/* ---- forward ------------------------------------------------------------ */

struct NormFwd {
    float *out;
    const float *inp;
    const float *res; /* fused residual, or NULL */
    float *sum;       /* inp + res when res is set (may be inp) */
    const void *weight, *bias;
    int dt;
    int64_t rows, cols;
    float eps;
};

/* torch.nn.LayerNorm's statistics of one row, shared by the forward and the
 * backward (which recomputes them): the mean, then the biased variance
 * about it in a second pass (no cancellation), both summed in double in
 * the block's fixed order; rstd = 1 / sqrt(var + eps). */
static __device__ void layer_stats(const float *x, int64_t n, float eps, double *red, float *mean,
                            float *rstd)
{
    double s1 = 0.0;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) s1 += (double)x[c];
    const double mean_d = block_sum(s1, red) / (double)n;
    double s2 = 0.0;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
        const double d = (double)x[c] - mean_d;
        s2 += d * d;
    }
    const float var = (float)(block_sum(s2, red) / (double)n);
    *mean = (float)mean_d;
    *rstd = 1.0f / sqrtf(var + eps);
}

/* HF LlamaRMSNorm's scale of one row, rsqrt(mean(x^2) + eps), the sum in
 * double in the block's fixed order; shared by the forward and the backward. */
static __device__ float rms_scale(const float *x, int64_t n, float eps, double *red)
{
    double ss = 0.0;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
        const double d = (double)x[c];
        ss += d * d;
    }
    const float mean_sq = (float)(block_sum(ss, red) / (double)n);
    return 1.0f / sqrtf(mean_sq + eps);
}

template <bool kLayer>
__global__ void __launch_bounds__(kBlock) norm_forward_kernel(NormFwd a)
{
    __shared__ double red[32];
    const int64_t n = a.cols;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const float *x = a.inp + r * n;
        if (a.res) {
            /* sum = a + b in f32, the bits of dlv_add; then the norm reads
             * sum, written above by this same thread. */
            const float *b = a.res + r * n;
            float *s = a.sum + r * n;
            for (int64_t c = threadIdx.x; c < n; c += blockDim.x) s[c] = x[c] + b[c];
            x = s;
        }
        float *o = a.out + r * n;
        if (kLayer) {
            /* torch.nn.LayerNorm: the mean, then the biased variance about
             * it (a second pass, without cancellation). */
            float mean, rstd;
            layer_stats(x, n, a.eps, red, &mean, &rstd);
            for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
                float y = (x[c] - mean) * rstd;
                if (a.weight) y *= ld_param(a.weight, a.dt, c);
                if (a.bias) y += ld_param(a.bias, a.dt, c);
                o[c] = y;
            }
        } else {
            /* HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then weight * it. */
            const float rs = rms_scale(x, n, a.eps, red);
            for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
                const float y = x[c] * rs;
                o[c] = a.weight ? ld_param(a.weight, a.dt, c) * y : y;
            }
        }
    }
}

__global__ void __launch_bounds__(kBlock)
    l2_forward_kernel(float *out, const float *inp, int64_t rows, int64_t n)
{
    __shared__ double red[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *x = inp + r * n;
        float *o = out + r * n;
        double ss = 0.0;
        for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
            const double d = (double)x[c];
            ss += d * d;
        }
        /* F.normalize: x / norm.clamp_min(1e-12). */
        const float norm = (float)sqrt(block_sum(ss, red));
        const float denom = norm > 1e-12f ? norm : 1e-12f;
        for (int64_t c = threadIdx.x; c < n; c += blockDim.x) o[c] = x[c] / denom;
    }
}

/* ---- backward: input gradients, one block per row ----------------------- */

enum BwKind { kRms = 0, kLayerNorm = 1, kL2 = 2 };

struct NormBw {
    float *dinp;
    const float *dout, *inp;
    const void *weight; /* NULL: 1 */
    int dt;
    int64_t rows, cols;
    float eps;
    float *mean_out, *rstd_out; /* per-row statistics for the column sums, or NULL */
};

template <int kKind>
__global__ void __launch_bounds__(kBlock) norm_backward_kernel(NormBw a)
{
    __shared__ double red[64];
    const int64_t n = a.cols;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const float *x = a.inp + r * n, *g = a.dout + r * n;
        float *dx = a.dinp + r * n;
        if (kKind == kRms) {
            /* y = x * rs, out = w * y: dy = dout * w,
             * dx += rs * (dy - y * mean(dy . y)). */
            const float rs = rms_scale(x, n, a.eps, red);
            if (a.rstd_out && threadIdx.x == 0) a.rstd_out[r] = rs;
            double dot = 0.0;
            for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
                const float dy = a.weight ? g[c] * ld_param(a.weight, a.dt, c) : g[c];
                dot += (double)dy * (double)(x[c] * rs);
            }
            const float m = (float)(block_sum(dot, red) / (double)n);
            for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
                const float dy = a.weight ? g[c] * ld_param(a.weight, a.dt, c) : g[c];
                const float y = x[c] * rs;
                dx[c] += rs * (dy - y * m);
            }
        } else if (kKind == kLayerNorm) {
            /* xhat = (x - mean) * rstd, out = w * xhat + b: dxhat = dout * w,
             * dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat . xhat)). */
            float mean, rstd;
            layer_stats(x, n, a.eps, red, &mean, &rstd);
            if (threadIdx.x == 0) {
                if (a.mean_out) a.mean_out[r] = mean;
                if (a.rstd_out) a.rstd_out[r] = rstd;
            }
            double t1 = 0.0, t2 = 0.0;
            for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
                const float dxh = a.weight ? g[c] * ld_param(a.weight, a.dt, c) : g[c];
                const float xh = (x[c] - mean) * rstd;
                t1 += (double)dxh;
                t2 += (double)dxh * (double)xh;
            }
            block_sum2(t1, t2, red);
            const float m1 = (float)(t1 / (double)n), m2 = (float)(t2 / (double)n);
            for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
                const float dxh = a.weight ? g[c] * ld_param(a.weight, a.dt, c) : g[c];
                const float xh = (x[c] - mean) * rstd;
                dx[c] += rstd * (dxh - m1 - xh * m2);
            }
        } else {
            /* y = x / d, d = max(||x||, 1e-12): dx += (dout - y (y . dout)) / d
             * where the norm is not clamped; where it is, clamp_min passes no
             * gradient to the norm: dx += dout / 1e-12. The test differs
             * from the forward's (>= here, > there), as on the CPU. */
            double ss = 0.0;
            for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
                const double d = (double)x[c];
                ss += d * d;
            }
            const float norm = (float)sqrt(block_sum(ss, red));
            if (norm >= 1e-12f) { /* the same for the whole block */
                double dot = 0.0;
                for (int64_t c = threadIdx.x; c < n; c += blockDim.x)
                    dot += (double)x[c] * (double)g[c];
                const float yg = (float)(block_sum(dot, red) / (double)norm);
                for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
                    const float y = x[c] / norm;
                    dx[c] += (g[c] - y * yg) / norm;
                }
            } else {
                for (int64_t c = threadIdx.x; c < n; c += blockDim.x) dx[c] += g[c] / 1e-12f;
            }
        }
    }
}

/* ---- backward: parameter gradients (column sums over rows) -------------- */

/* Rows are cut into at most kMaxChunks chunks of at least kChunkRows rows;
 * a block (kTileCols columns x kTileRows row lanes) sums one chunk of a
 * column tile. */
constexpr int kTileCols = 32, kTileRows = 8;
constexpr int64_t kChunkRows = 128, kMaxChunks = 1024;

struct Chunks {
    int64_t n, rows; /* chunk count (<= kMaxChunks, so a valid gridDim.y), rows per chunk */
};

Chunks chunks_for(int64_t rows)
{
    int64_t n = (rows + kChunkRows - 1) / kChunkRows;
    if (n > kMaxChunks) n = kMaxChunks;
    if (n < 1) n = 1;
    Chunks ch;
    ch.rows = (rows + n - 1) / n;
    if (ch.rows < 1) ch.rows = 1;
    ch.n = (rows + ch.rows - 1) / ch.rows;
    if (ch.n < 1) ch.n = 1;
    return ch;
}

/* The scratch layout: partial sums of the weight term and of the bias term
 * ([chunks][cols] doubles each), then the per-row mean and rstd (floats). */
struct Scratch {
    double *pw, *pb;
    float *mean, *rstd;
};

Scratch scratch_at(void *base, int64_t rows, int64_t cols)
{
    Scratch s = {NULL, NULL, NULL, NULL};
    if (!base) return s; /* no parameter gradient: no scratch */
    const Chunks ch = chunks_for(rows);
    const size_t part = (size_t)ch.n * (size_t)cols;
    s.pw = static_cast<double *>(base);
    s.pb = s.pw + part;
    s.mean = reinterpret_cast<float *>(s.pb + part);
    s.rstd = s.mean + rows;
    return s;
}

/* Partial column sums of one chunk of rows: pw += dout * xhat with xhat =
 * (x - mean) * rstd (LayerNorm) or x * rstd (RMSNorm, mean NULL), pb +=
 * dout; either NULL when not wanted. Each (column, row lane) thread sums its
 * rows in order, then lane 0 adds the lanes in order: a fixed order. */
__global__ void __launch_bounds__(kTileCols * kTileRows)
    colsum_partial_kernel(const float *g, const float *x, const float *mean,
                          const float *rstd, int64_t rows, int64_t cols, int64_t chunk_rows,
                          double *pw, double *pb)
{
    __shared__ double sw[kTileRows][kTileCols], sb[kTileRows][kTileCols];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t j = blockIdx.y;
    const int64_t r0 = j * chunk_rows;
    const int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    for (int64_t tile = blockIdx.x; tile * kTileCols < cols; tile += gridDim.x) {
        const int64_t c = tile * kTileCols + tx;
        double aw = 0.0, ab = 0.0;
        if (c < cols) {
            for (int64_t r = r0 + ty; r < r1; r += kTileRows) {
                const float gv = g[r * cols + c];
                if (pw) {
                    const float xv = x[r * cols + c];
                    const float xh = mean ? (xv - mean[r]) * rstd[r] : xv * rstd[r];
                    aw += (double)gv * (double)xh;
                }
                if (pb) ab += (double)gv;
            }
        }
        sw[ty][tx] = aw;
        sb[ty][tx] = ab;
        __syncthreads();
        if (ty == 0 && c < cols) {
            double tw = 0.0, tb = 0.0;
            for (int k = 0; k < kTileRows; k++) {
                tw += sw[k][tx];
                tb += sb[k][tx];
            }
            if (pw) pw[j * cols + c] = tw;
            if (pb) pb[j * cols + c] = tb;
        }
        __syncthreads();
    }
}

/* dst[c] += the chunks' partial sums of column c, added in chunk order and
 * rounded to f32 once (the CPU's dweight[c] += (float)acc). */
__global__ void __launch_bounds__(kBlock)
    colsum_final_kernel(const double *part, int64_t n_chunks, int64_t cols, float *dst)
{
    for (int64_t c = gs_begin(); c < cols; c += gs_stride()) {
        double s = 0.0;
        for (int64_t j = 0; j < n_chunks; j++) s += part[j * cols + c];
        dst[c] += (float)s;
    }
}

/* Queues the column sums: dw += sum dout * xhat (when dw), db += sum dout
 * (when db). mean/rstd: the row kernel's statistics (mean NULL: RMSNorm). */
cudaError_t column_sums(cudaStream_t s, float *dw, float *db, const float *g, const float *x,
                        const float *mean, const float *rstd, int64_t rows, int64_t cols,
                        Scratch sc)
{
    const Chunks ch = chunks_for(rows);
    dim3 block(kTileCols, kTileRows);
    dim3 grid(grid_for(cols, kTileCols), (unsigned)ch.n);
    colsum_partial_kernel<<<grid, block, 0, s>>>(g, x, mean, rstd, rows, cols, ch.rows,
                                                 dw ? sc.pw : NULL, db ? sc.pb : NULL);
    const unsigned fgrid = grid_for(cols, kBlock);
    if (dw) colsum_final_kernel<<<fgrid, kBlock, 0, s>>>(sc.pw, ch.n, cols, dw);
    if (db) colsum_final_kernel<<<fgrid, kBlock, 0, s>>>(sc.pb, ch.n, cols, db);
    return cudaGetLastError();
}

unsigned row_grid(int64_t rows)
{
    return grid_for(rows, 1);
}

} // namespace

/* ---- launchers ---------------------------------------------------------- */

extern "C" cudaError_t dlv_cuk_norm_forward(cudaStream_t s, int layer, float *out,
                                            const float *inp, const float *res, float *sum,
                                            const void *weight, const void *bias,
                                            dlv_cuk_dtype dt, int64_t rows, int64_t cols,
                                            float eps)
{
    NormFwd a;
    a.out = out;
    a.inp = inp;
    a.res = res;
    a.sum = sum;
    a.weight = weight;
    a.bias = layer ? bias : NULL;
    a.dt = (int)dt;
    a.rows = rows;
    a.cols = cols;
    a.eps = eps;
    if (layer)
        norm_forward_kernel<true><<<row_grid(rows), kBlock, 0, s>>>(a);
    else
        norm_forward_kernel<false><<<row_grid(rows), kBlock, 0, s>>>(a);
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_l2_normalize(cudaStream_t s, float *out, const float *inp,
                                            int64_t rows, int64_t cols)
{
    l2_forward_kernel<<<row_grid(rows), kBlock, 0, s>>>(out, inp, rows, cols);
    return cudaGetLastError();
}

extern "C" size_t dlv_cuk_norm_bw_scratch_bytes(int64_t rows, int64_t cols)
{
    const Chunks ch = chunks_for(rows);
    return 2 * (size_t)ch.n * (size_t)cols * sizeof(double) +
           2 * (size_t)rows * sizeof(float);
}

static NormBw bw_args(float *dinp, const float *dout, const float *inp, const void *weight,
                      dlv_cuk_dtype dt, int64_t rows, int64_t cols, float eps)
{
    NormBw a;
    a.dinp = dinp;
    a.dout = dout;
    a.inp = inp;
    a.weight = weight;
    a.dt = (int)dt;
    a.rows = rows;
    a.cols = cols;
    a.eps = eps;
    a.mean_out = NULL;
    a.rstd_out = NULL;
    return a;
}

extern "C" cudaError_t dlv_cuk_rmsnorm_backward(cudaStream_t s, float *dinp, float *dweight,
                                                const float *dout, const float *inp,
                                                const void *weight, dlv_cuk_dtype dt,
                                                int64_t rows, int64_t cols, float eps,
                                                void *scratch)
{
    const Scratch sc = scratch_at(scratch, rows, cols);
    NormBw a = bw_args(dinp, dout, inp, weight, dt, rows, cols, eps);
    if (dweight) a.rstd_out = sc.rstd;
    norm_backward_kernel<kRms><<<row_grid(rows), kBlock, 0, s>>>(a);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess || !dweight) return err;
    return column_sums(s, dweight, NULL, dout, inp, NULL, sc.rstd, rows, cols, sc);
}

extern "C" cudaError_t dlv_cuk_layernorm_backward(cudaStream_t s, float *dinp, float *dweight,
                                                  float *dbias, const float *dout,
                                                  const float *inp, const void *weight,
                                                  dlv_cuk_dtype dt, int64_t rows, int64_t cols,
                                                  float eps, void *scratch)
{
    const Scratch sc = scratch_at(scratch, rows, cols);
    NormBw a = bw_args(dinp, dout, inp, weight, dt, rows, cols, eps);
    if (dweight) {
        a.mean_out = sc.mean;
        a.rstd_out = sc.rstd;
    }
    norm_backward_kernel<kLayerNorm><<<row_grid(rows), kBlock, 0, s>>>(a);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess || (!dweight && !dbias)) return err;
    return column_sums(s, dweight, dbias, dout, inp, sc.mean, sc.rstd, rows, cols, sc);
}

extern "C" cudaError_t dlv_cuk_l2_normalize_backward(cudaStream_t s, float *dinp,
                                                     const float *dout, const float *inp,
                                                     int64_t rows, int64_t cols)
{
    NormBw a = bw_args(dinp, dout, inp, NULL, DLV_CUK_F32, rows, cols, 0.0f);
    norm_backward_kernel<kL2><<<row_grid(rows), kBlock, 0, s>>>(a);
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_bias_backward(cudaStream_t s, float *dbias, const float *dout,
                                             int64_t rows, int64_t cols, void *scratch)
{
    const Scratch sc = scratch_at(scratch, rows, cols);
    return column_sums(s, NULL, dbias, dout, NULL, NULL, NULL, rows, cols, sc);
}
