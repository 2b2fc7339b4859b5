/* CPU GEMM: OpenBLAS sgemm. BF16/F16 weights (and F32 ones at an address
 * not aligned for float, as a memory-mapped file may give) are widened to
 * f32 a block of output columns at a time into a per-call scratch tile, and
 * each tile is one sgemm into its columns of C. The scratch is bounded
 * (TILE_FLOATS, or one column of k values if that is larger), never a whole
 * f32 copy of the weight. */
#include <cblas.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

/* 4 MiB of f32: big enough that sgemm runs at full speed on each tile
 * (>= 256 columns for k <= 4096), small enough to stay in L2/L3. */
#define TILE_FLOATS ((int64_t)1 << 20)

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

typedef struct widen_job {
    float *tile;
    const unsigned char *b;
    dlv_dtype dt;
    size_t es;
    int64_t ldb, src_col, row_len, tile_ld;
} widen_job;

/* Tile row r (row_len values) comes from B's stored row
 * (first_row + r), columns [src_col, src_col + row_len). */
static void widen_rows(void *ctx, int64_t begin, int64_t end)
{
    const widen_job *j = ctx;
    for (int64_t r = begin; r < end; r++)
        dlv_cpu_widen(j->tile + r * j->tile_ld,
                      j->b + ((size_t)r * (size_t)j->ldb + (size_t)j->src_col) * j->es, j->dt,
                      j->row_len);
}

static dlv_status matmul_widened(dlv_backend *be, const dlv_matmul_args *a)
{
    int tb = a->trans_b == DLV_TRANS;
    int64_t nb = TILE_FLOATS / a->k;
    if (nb >= 64) nb -= nb % 64;
    if (nb < 1) nb = 1;
    if (nb > a->n) nb = a->n;
    size_t bytes = (size_t)nb * (size_t)a->k * sizeof(float);
    float *tile = malloc(bytes);
    if (!tile) return dlv_error_nomem("matmul weight tile", bytes);
    size_t es = dlv_dtype_size(a->b_dtype);
    const unsigned char *b = a->b;
    CBLAS_TRANSPOSE ta = a->trans_a == DLV_TRANS ? CblasTrans : CblasNoTrans;

    for (int64_t j0 = 0; j0 < a->n; j0 += nb) {
        int64_t jn = a->n - j0 < nb ? a->n - j0 : nb;
        widen_job job = {.tile = tile, .dt = a->b_dtype, .es = es, .ldb = a->ldb};
        int64_t rows;
        if (tb) { /* B stored n x k: output columns are whole stored rows */
            job.b = b + (size_t)j0 * (size_t)a->ldb * es;
            job.src_col = 0;
            job.row_len = a->k;
            job.tile_ld = a->k;
            rows = jn;
        } else { /* B stored k x n: a column block of every stored row */
            job.b = b;
            job.src_col = j0;
            job.row_len = jn;
            job.tile_ld = jn;
            rows = a->k;
        }
        /* Widening runs on our pool, sgemm on OpenBLAS's threads, one after
         * the other: never both at once. */
        int64_t grain = 16384 / job.row_len + 1;
        dlv_cpu_pool_run(dlv_cpu_pool_of(be), rows, grain, widen_rows, &job);
        cblas_sgemm(CblasRowMajor, ta, tb ? CblasTrans : CblasNoTrans, (blasint)a->m,
                    (blasint)jn, (blasint)a->k, a->alpha, (const float *)a->a, (blasint)a->lda,
                    tile, (blasint)job.tile_ld, a->beta, a->c + j0, (blasint)a->ldc);
    }
    free(tile);
    return DLV_OK;
}

dlv_status dlv_cpu_matmul(dlv_backend *be, const dlv_matmul_args *a)
{
    if (a->m == 0 || a->n == 0) return DLV_OK;
    /* BLAS would accept k == 0 with lda >= 1, but A and B may then be NULL,
     * which is not something to hand to an optimised kernel. */
    if (a->k == 0) {
        scale_c(a->c, a->m, a->n, a->ldc, a->beta);
        return DLV_OK;
    }
    if (a->b_dtype != DLV_DTYPE_F32 || (uintptr_t)a->b % alignof(float) != 0)
        return matmul_widened(be, a);
    /* The wrapper bounded every dimension to INT_MAX. */
    cblas_sgemm(CblasRowMajor, a->trans_a == DLV_TRANS ? CblasTrans : CblasNoTrans,
                a->trans_b == DLV_TRANS ? CblasTrans : CblasNoTrans, (blasint)a->m,
                (blasint)a->n, (blasint)a->k, a->alpha, (const float *)a->a, (blasint)a->lda,
                (const float *)a->b, (blasint)a->ldb, a->beta, a->c, (blasint)a->ldc);
    return DLV_OK;
}
