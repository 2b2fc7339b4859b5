/* The CUDA backend's matmul op: cuBLAS, with B (the weights) in F32, BF16
 * or F16 at any alignment, in the instance's compute dtype (as the CPU's
 * cpu_matmul.c):
 *
 * f32 (exact): cublasSgemm in CUBLAS_DEFAULT_MATH (set at creation: no
 * TF32). F32 weights aligned for float are used where they lie; BF16/F16
 * weights (and F32 ones at an address not aligned for float) are widened
 * exactly to f32 a block of output columns at a time into a bounded device
 * scratch tile (kernels_convert.cu), one GEMM per tile into its columns of
 * C. A misaligned A (never seen from the library's own code) is copied the
 * same way, a block of rows at a time.
 * bf16: A is rounded to bf16 (round to nearest even) into scratch, a block
 * of rows at a time; BF16 weights aligned for bf16 are used where they lie,
 * others are rounded to bf16 tile by tile; cublasGemmEx with CUDA_R_16BF
 * inputs, CUDA_R_32F output and CUBLAS_COMPUTE_32F (f32 accumulation),
 * which is PyTorch's bf16 autocast for a Linear.
 *
 * The scratch is bounded (B_TILE_ELEMS + A_TILE_ELEMS, or one column of k
 * values each if larger), never a whole converted copy of a weight, and
 * comes from the stream-ordered pool (cuda_scratch.h).
 *
 * Status: compiled, not yet run on a GPU; tests/backend/test_ops_backends.c
 * checks f32 mode against the CPU on every dtype, transpose and padding. */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <limits.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_kernels_convert.h"
#include "backend/cuda/cuda_ops_matmul.h"
#include "backend/cuda/cuda_ops_util.h"

/* Output columns per converted weight tile: 2^22 elements (16 MiB of f32),
 * as the CPU's tiles; wide enough for cuBLAS to run each tile's GEMM well. */
#define B_TILE_ELEMS ((int64_t)1 << 22)
/* Rows of A per converted activation block: 2^25 elements (128 MiB of f32,
 * 64 MiB of bf16), so that usually all of A is converted once. */
#define A_TILE_ELEMS ((int64_t)1 << 25)

/* k == 0: C = beta * C on the m x n block only (the ldc padding is left
 * alone). Seen column-major, row-major C is an n x m matrix with leading
 * dimension ldc. */
static dlv_status scale_c(cuda_backend *cu, const dlv_matmul_args *a)
{
    if (a->beta == 0.0f) {
        cudaError_t err = cudaMemset2DAsync(a->c, (size_t)a->ldc * sizeof(float), 0,
                                            (size_t)a->n * sizeof(float), (size_t)a->m,
                                            cu->stream);
        return err == cudaSuccess ? DLV_OK : dlv_cuda_fail(cu->host, err, "cudaMemset2DAsync");
    }
    if (a->beta == 1.0f) return DLV_OK;
    /* k == 0 is degenerate, so plain scal calls are fast enough: one over
     * the whole block when its rows are contiguous and it fits an int, else
     * one per row (the ldc padding must stay untouched). */
    cublasStatus_t bs = CUBLAS_STATUS_SUCCESS;
    if (a->ldc == a->n && a->m <= INT_MAX / a->n) {
        bs = cublasSscal(cu->blas, (int)(a->m * a->n), &a->beta, a->c, 1);
    } else {
        for (int64_t i = 0; i < a->m && bs == CUBLAS_STATUS_SUCCESS; i++)
            bs = cublasSscal(cu->blas, (int)a->n, &a->beta, a->c + i * a->ldc, 1);
    }
    return bs == CUBLAS_STATUS_SUCCESS ? DLV_OK : dlv_cuda_blas_fail(cu->host, bs, "cublasSscal");
}

static int is_aligned(const void *p, size_t n)
{
    return (uintptr_t)p % n == 0;
}

/* One GEMM in the column-major view (see dlv_cuda_matmul): C^T[n, m] =
 * op(B)^T op(A)^T, operands of the compute dtype, C f32. */
typedef struct gemm_call {
    cublasOperation_t op_b, op_a;
    int64_t n, m, k;
    const void *b;
    int64_t ldb;
    const void *a;
    int64_t lda;
    float *c;
    int64_t ldc;
} gemm_call;

static dlv_status gemm(cuda_backend *cu, int bf16, const dlv_matmul_args *args, const gemm_call *g)
{
    cublasStatus_t bs;
    if (bf16) {
        bs = cublasGemmEx(cu->blas, g->op_b, g->op_a, (int)g->n, (int)g->m, (int)g->k,
                          &args->alpha, g->b, CUDA_R_16BF, (int)g->ldb, g->a, CUDA_R_16BF,
                          (int)g->lda, &args->beta, g->c, CUDA_R_32F, (int)g->ldc,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        return bs == CUBLAS_STATUS_SUCCESS ? DLV_OK
                                           : dlv_cuda_blas_fail(cu->host, bs, "cublasGemmEx (bf16)");
    }
    bs = cublasSgemm(cu->blas, g->op_b, g->op_a, (int)g->n, (int)g->m, (int)g->k, &args->alpha,
                     (const float *)g->b, (int)g->ldb, (const float *)g->a, (int)g->lda,
                     &args->beta, g->c, (int)g->ldc);
    return bs == CUBLAS_STATUS_SUCCESS ? DLV_OK : dlv_cuda_blas_fail(cu->host, bs, "cublasSgemm");
}

/* Rows (or columns) per tile of at most `elems` elements of k values each:
 * a multiple of `round` when at least that, never 0, at most `total`. */
static int64_t block_of(int64_t elems, int64_t k, int64_t total, int64_t round)
{
    int64_t nb = elems / k;
    if (nb >= round) nb -= nb % round;
    if (nb < 1) nb = 1;
    return nb < total ? nb : total;
}

static size_t round256(size_t v)
{
    return (v + 255) / 256 * 256;
}

/* The product with A and/or B converted into scratch tiles: for each block
 * of rows of C (all of them unless A is converted), A's block converted
 * once; for each block of columns (all of them unless B is converted), B's
 * block converted, then one GEMM into that block of C. */
static dlv_status matmul_tiled(cuda_backend *cu, const dlv_matmul_args *a, int bf16, int conv_a,
                               int conv_b)
{
    const int ta = a->trans_a == DLV_TRANS, tb = a->trans_b == DLV_TRANS;
    const dlv_cuk_dtype to = bf16 ? DLV_CUK_BF16 : DLV_CUK_F32;
    const size_t ts = bf16 ? 2 : 4;
    const int64_t mb = conv_a ? block_of(A_TILE_ELEMS, a->k, a->m, 64) : a->m;
    const int64_t nb = conv_b ? block_of(B_TILE_ELEMS, a->k, a->n, 64) : a->n;
    const size_t a_bytes = conv_a ? round256((size_t)mb * (size_t)a->k * ts) : 0;
    const size_t b_bytes = conv_b ? (size_t)nb * (size_t)a->k * ts : 0;
    dlv_cuda_scratch scratch;
    dlv_status st = dlv_cuda_scratch_alloc(cu, a_bytes + b_bytes, "matmul tiles", &scratch);
    if (st != DLV_OK) return st;
    unsigned char *a_tile = scratch.ptr, *b_tile = a_tile + a_bytes;

    const size_t bes = a->b_dtype == DLV_DTYPE_F32 ? 4 : 2;
    const unsigned char *asrc = a->a, *bsrc = a->b;
    gemm_call g = {.op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                   .op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                   .k = a->k,
                   .ldc = a->ldc};
    for (int64_t i0 = 0; i0 < a->m && st == DLV_OK; i0 += mb) {
        const int64_t im = a->m - i0 < mb ? a->m - i0 : mb;
        /* Rows i0.. of op(A): stored rows (A m x k) or columns (A^T stored k x m). */
        const unsigned char *ablk = asrc + (size_t)(ta ? i0 : i0 * a->lda) * sizeof(float);
        if (conv_a) {
            g.lda = ta ? im : a->k;
            cudaError_t err = dlv_cuk_convert_2d(cu->stream, a_tile, to, g.lda, ablk, DLV_CUK_F32,
                                                 a->lda, ta ? a->k : im, ta ? im : a->k);
            st = dlv_cuda_queued(cu, err, "matmul: converting A");
            g.a = a_tile;
        } else {
            g.a = ablk;
            g.lda = a->lda;
        }
        g.m = im;
        for (int64_t j0 = 0; j0 < a->n && st == DLV_OK; j0 += nb) {
            const int64_t jn = a->n - j0 < nb ? a->n - j0 : nb;
            /* Output columns j0..: stored rows of B^T (n x k) or a column
             * block of every stored row of B (k x n). */
            const unsigned char *bblk = bsrc + (size_t)(tb ? j0 * a->ldb : j0) * bes;
            if (conv_b) {
                g.ldb = tb ? a->k : jn;
                cudaError_t err = dlv_cuk_convert_2d(cu->stream, b_tile, to, g.ldb, bblk,
                                                     dlv_cuda_param_dtype(a->b_dtype), a->ldb,
                                                     tb ? jn : a->k, tb ? a->k : jn);
                st = dlv_cuda_queued(cu, err, "matmul: converting B");
                g.b = b_tile;
            } else {
                g.b = bblk;
                g.ldb = a->ldb;
            }
            if (st != DLV_OK) break;
            g.n = jn;
            g.c = a->c + i0 * a->ldc + j0;
            st = gemm(cu, bf16, a, &g);
        }
    }
    dlv_status fst = dlv_cuda_scratch_free(cu, &scratch);
    return st != DLV_OK ? st : fst;
}

/* cuBLAS is column-major. A row-major matrix with leading dimension ld is
 * the column-major transpose with the same ld, so row-major C = op(A) op(B)
 * is column-major C^T = op(B)^T op(A)^T: swap the operands (B first), swap
 * m and n, and keep each operand's own transpose flag (row-major B stored
 * k x n is column-major B^T already, i.e. op N; stored n x k it needs op T).
 * The leading-dimension rules then match BLAS's exactly, which the wrapper
 * has checked; a converted tile is dense (its leading dimension is its
 * stored row length). beta == 0: cuBLAS does not read C. */
dlv_status dlv_cuda_matmul(dlv_backend *be, const dlv_matmul_args *a)
{
    cuda_backend *cu = as_cuda(be);
    if (a->m == 0 || a->n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    if (a->k == 0) return scale_c(cu, a);
    const int bf16 = cu->compute == DLV_DTYPE_BF16;
    const int conv_a = bf16 || !is_aligned(a->a, sizeof(float));
    const int conv_b = bf16 ? !(a->b_dtype == DLV_DTYPE_BF16 && is_aligned(a->b, 2))
                            : !(a->b_dtype == DLV_DTYPE_F32 && is_aligned(a->b, sizeof(float)));
    if (conv_a || conv_b) return matmul_tiled(cu, a, bf16, conv_a, conv_b);
    gemm_call g = {.op_b = a->trans_b == DLV_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N,
                   .op_a = a->trans_a == DLV_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N,
                   .n = a->n, .m = a->m, .k = a->k,
                   .b = a->b, .ldb = a->ldb, .a = a->a, .lda = a->lda,
                   .c = a->c, .ldc = a->ldc};
    return gemm(cu, 0, a, &g);
}
