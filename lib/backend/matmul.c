/* The checked matmul wrapper. Validation follows BLAS's xerbla rules for a
 * row-major GEMM, but reports a dlv_status naming the argument instead of
 * printing and carrying on, and bounds everything to what cblas and cuBLAS
 * (int dimensions) can address. */
#include <limits.h>
#include <stdbool.h>

#include "backend/backend.h"
#include "core/error.h"

/* A holds activations (F32); B holds weights, which checkpoints store as
 * F32, BF16 or F16. */
static dlv_status check_dtype(const char *what, dlv_dtype dt, int weights)
{
    if ((unsigned)dt >= DLV_DTYPE_COUNT)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: %s %d is not a dtype", what, (int)dt);
    if (weights && !dlv_dtype_is_float(dt))
        return dlv_error(DLV_E_UNSUPPORTED,
                         "dlv_matmul: %s %s is not supported (F32, BF16 or F16)", what,
                         dlv_dtype_name(dt));
    if (!weights && dt != DLV_DTYPE_F32)
        return dlv_error(DLV_E_UNSUPPORTED, "dlv_matmul: %s %s is not supported (only F32)",
                         what, dlv_dtype_name(dt));
    return DLV_OK;
}

static dlv_status check_dim(const char *what, int64_t v)
{
    if (v < 0) return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: %s = %lld is negative", what, (long long)v);
    if (v > INT_MAX)
        return dlv_error(DLV_E_UNSUPPORTED, "dlv_matmul: %s = %lld exceeds INT_MAX (BLAS limit)",
                         what, (long long)v);
    return DLV_OK;
}

/* A row-major matrix stored rows x cols with leading dimension ld: ld must
 * cover a row, and a non-empty matrix needs storage. */
static dlv_status check_matrix(const char *name, const char *ld_name, const void *p,
                               int64_t rows, int64_t cols, int64_t ld)
{
    int64_t min_ld = cols > 1 ? cols : 1;
    if (ld < min_ld)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_matmul: %s = %lld is less than max(1, %lld) for %s stored %lld x %lld",
                         ld_name, (long long)ld, (long long)cols, name, (long long)rows,
                         (long long)cols);
    if (ld > INT_MAX)
        return dlv_error(DLV_E_UNSUPPORTED, "dlv_matmul: %s = %lld exceeds INT_MAX (BLAS limit)",
                         ld_name, (long long)ld);
    if (!p && rows > 0 && cols > 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: %s is NULL for a %lld x %lld matrix",
                         name, (long long)rows, (long long)cols);
    /* With every factor <= INT_MAX the extent fits in int64; its byte count
     * must also be addressable. */
    if (rows > 0 && ((rows - 1) * ld + cols) > (int64_t)(PTRDIFF_MAX / (ptrdiff_t)sizeof(float)))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: %s spans more bytes than can be addressed",
                         name);
    return DLV_OK;
}

static dlv_status check_args(const dlv_matmul_args *a)
{
    if (a->struct_size != sizeof(dlv_matmul_args))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: struct_size %zu, expected %zu",
                         a->struct_size, sizeof(dlv_matmul_args));
    if (a->trans_a != DLV_NO_TRANS && a->trans_a != DLV_TRANS)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: trans_a %d is not a dlv_transpose",
                         (int)a->trans_a);
    if (a->trans_b != DLV_NO_TRANS && a->trans_b != DLV_TRANS)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: trans_b %d is not a dlv_transpose",
                         (int)a->trans_b);
    dlv_status st;
    if ((st = check_dim("m", a->m)) != DLV_OK) return st;
    if ((st = check_dim("n", a->n)) != DLV_OK) return st;
    if ((st = check_dim("k", a->k)) != DLV_OK) return st;
    if ((st = check_dtype("a_dtype", a->a_dtype, 0)) != DLV_OK) return st;
    if ((st = check_dtype("b_dtype", a->b_dtype, 1)) != DLV_OK) return st;

    bool ta = a->trans_a == DLV_TRANS, tb = a->trans_b == DLV_TRANS;
    if ((st = check_matrix(ta ? "A (transposed)" : "A", "lda", a->a, ta ? a->k : a->m,
                           ta ? a->m : a->k, a->lda)) != DLV_OK)
        return st;
    if ((st = check_matrix(tb ? "B (transposed)" : "B", "ldb", a->b, tb ? a->n : a->k,
                           tb ? a->k : a->n, a->ldb)) != DLV_OK)
        return st;
    return check_matrix("C", "ldc", a->c, a->m, a->n, a->ldc);
}

dlv_status dlv_matmul(dlv_backend *be, const dlv_matmul_args *args)
{
    if (!be) return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: backend is NULL");
    if (!args) return dlv_error(DLV_E_INVALID_ARG, "dlv_matmul: args is NULL");
    dlv_status st = check_args(args);
    if (st != DLV_OK) return st;
    return be->ops->matmul(be, args);
}
