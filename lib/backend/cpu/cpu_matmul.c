/* CPU GEMM (the matmul op): prepares the operands for the provider
 * (cpu_gemm.c) in the session's compute dtype.
 *
 * f32 (exact): BF16/F16 weights (and F32 ones at an address not aligned for
 * float, as a memory-mapped file may give) are widened to f32 a block of
 * output columns at a time into a per-call scratch tile, and each tile is
 * one GEMM into its columns of C.
 * bf16: A (the activations) is rounded to bf16 once; BF16 weights are used
 * where they lie, others are rounded to bf16 tile by tile as above; the
 * provider accumulates in f32. This is what PyTorch's bf16 autocast
 * computes for a Linear.
 *
 * Either way the scratch is bounded (TILE_ELEMS, or one column of k values
 * if that is larger), never a whole converted copy of the weight. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

/* 16 MiB of f32 (8 MiB of bf16): wide enough that oneDNN blocks each tile's
 * GEMM well (>= 1024 columns for k <= 4096). Measured on the realistic-width
 * bench (f32 compute, bf16 weights, batch 8): 2^20 elements 267 / 188
 * GFLOP/s (images / texts), 2^22 321 / 224, 2^23 328 / 134; smaller tiles
 * were slower still. */
#define TILE_ELEMS ((int64_t)1 << 22)

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

/* Converts rows [begin, end) of a stored matrix (row_len values from
 * column src_col of each) into a dense tile of dtype to (F32 or BF16). */
typedef struct convert_job {
    void *tile;
    dlv_dtype to;
    const unsigned char *src;
    dlv_dtype dt;
    size_t es;
    int64_t ld, src_col, row_len, tile_ld;
} convert_job;

static void convert_rows(void *ctx, int64_t begin, int64_t end)
{
    const convert_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        const unsigned char *row =
            j->src + ((size_t)r * (size_t)j->ld + (size_t)j->src_col) * j->es;
        if (j->to == DLV_DTYPE_BF16)
            dlv_cpu_to_bf16((uint16_t *)j->tile + r * j->tile_ld, row, j->dt, j->row_len);
        else
            dlv_cpu_widen((float *)j->tile + r * j->tile_ld, row, j->dt, j->row_len);
    }
}

static void convert(dlv_backend *be, convert_job *job, int64_t rows)
{
    /* Conversion runs on the pool, the GEMM after it: never both at once. */
    int64_t grain = 16384 / job->row_len + 1;
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), rows, grain, convert_rows, job);
}

/* B converted to `to` a block of output columns at a time; A is already in
 * `to` (ga carries it). */
static dlv_status matmul_tiled(dlv_backend *be, const dlv_matmul_args *a, dlv_cpu_gemm_args ga,
                               dlv_dtype to)
{
    int tb = a->trans_b == DLV_TRANS;
    int64_t nb = TILE_ELEMS / a->k;
    if (nb >= 64) nb -= nb % 64;
    if (nb < 1) nb = 1;
    if (nb > a->n) nb = a->n;
    size_t bytes = (size_t)nb * (size_t)a->k * dlv_dtype_size(to);
    void *tile = dlv_cpu_scratch_take(be, bytes);
    if (!tile) return dlv_error_nomem("matmul weight tile", bytes);
    size_t es = dlv_dtype_size(a->b_dtype);
    const unsigned char *b = a->b;
    dlv_status st = DLV_OK;
    for (int64_t j0 = 0; j0 < a->n && st == DLV_OK; j0 += nb) {
        int64_t jn = a->n - j0 < nb ? a->n - j0 : nb;
        convert_job job = {.tile = tile, .to = to, .dt = a->b_dtype, .es = es, .ld = a->ldb};
        int64_t rows;
        if (tb) { /* B stored n x k: output columns are whole stored rows */
            job.src = b + (size_t)j0 * (size_t)a->ldb * es;
            job.src_col = 0;
            job.row_len = a->k;
            job.tile_ld = a->k;
            rows = jn;
        } else { /* B stored k x n: a column block of every stored row */
            job.src = b;
            job.src_col = j0;
            job.row_len = jn;
            job.tile_ld = jn;
            rows = a->k;
        }
        convert(be, &job, rows);
        dlv_cpu_gemm_args g = ga;
        g.n = jn;
        g.b = tile;
        g.ldb = job.tile_ld;
        g.c = a->c + j0;
        st = dlv_cpu_gemm(be, &g);
    }
    dlv_cpu_scratch_give(be, tile, bytes);
    return st;
}

static dlv_status matmul_bf16(dlv_backend *be, const dlv_matmul_args *a, dlv_cpu_gemm_args g)
{
    /* A as stored (k x m when transposed), rounded once into a dense copy. */
    int64_t rows = a->trans_a == DLV_TRANS ? a->k : a->m;
    int64_t cols = a->trans_a == DLV_TRANS ? a->m : a->k;
    size_t bytes = (size_t)rows * (size_t)cols * sizeof(uint16_t);
    uint16_t *a16 = dlv_cpu_scratch_take(be, bytes);
    if (!a16) return dlv_error_nomem("matmul: bf16 activations", bytes);
    convert_job job = {.tile = a16, .to = DLV_DTYPE_BF16, .src = a->a, .dt = DLV_DTYPE_F32,
                       .es = sizeof(float), .ld = a->lda, .src_col = 0, .row_len = cols,
                       .tile_ld = cols};
    convert(be, &job, rows);
    g.a = a16;
    g.lda = cols;
    g.dt = DLV_DTYPE_BF16;
    dlv_status st;
    if (a->b_dtype == DLV_DTYPE_BF16 && (uintptr_t)a->b % alignof(uint16_t) == 0)
        st = dlv_cpu_gemm(be, &g); /* the weights as they lie */
    else
        st = matmul_tiled(be, a, g, DLV_DTYPE_BF16);
    dlv_cpu_scratch_give(be, a16, bytes);
    return st;
}

dlv_status dlv_cpu_matmul(dlv_backend *be, const dlv_matmul_args *a)
{
    if (a->m == 0 || a->n == 0) return DLV_OK;
    /* A kernel would accept k == 0 with lda >= 1, but A and B may then be
     * NULL, which is not something to hand to an optimised kernel. */
    if (a->k == 0) {
        scale_c(a->c, a->m, a->n, a->ldc, a->beta);
        return DLV_OK;
    }
    dlv_cpu_gemm_args g = {.trans_a = a->trans_a == DLV_TRANS, .trans_b = a->trans_b == DLV_TRANS,
                           .m = a->m, .n = a->n, .k = a->k, .alpha = a->alpha, .beta = a->beta,
                           .a = a->a, .lda = a->lda, .b = a->b, .ldb = a->ldb,
                           .dt = DLV_DTYPE_F32, .c = a->c, .ldc = a->ldc};
    if (((dlv_cpu_backend *)be)->compute == DLV_DTYPE_BF16) return matmul_bf16(be, a, g);
    if (a->b_dtype != DLV_DTYPE_F32 || (uintptr_t)a->b % alignof(float) != 0)
        return matmul_tiled(be, a, g, DLV_DTYPE_F32);
    return dlv_cpu_gemm(be, &g);
}
