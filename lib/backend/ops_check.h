/* Argument checks shared by the checked wrappers of the compute ops
 * (backend/ops.c) and the backward ops (backend/ops_backward.c). Internal:
 * static inline so that each wrapper file stays self-contained. Every check
 * records a message naming the op and the argument (core/error.h). */
#ifndef DLV_BACKEND_OPS_CHECK_H
#define DLV_BACKEND_OPS_CHECK_H

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/error.h"

static inline const char *dlv_op_act_name(dlv_op_act act)
{
    switch (act) {
    case DLV_OP_ACT_QUICK_GELU: return "quick_gelu";
    case DLV_OP_ACT_GELU: return "gelu";
    case DLV_OP_ACT_GELU_TANH: return "gelu_tanh";
    case DLV_OP_ACT_SILU: return "silu";
    case DLV_OP_ACT_RELU: return "relu";
    default: return "?";
    }
}

static inline dlv_status unsupported(const char *op, const dlv_backend *be)
{
    return dlv_error(DLV_E_UNSUPPORTED, "%s: op %s is not implemented on backend %s", op, op,
                     be->ops->name);
}

static inline dlv_status check_count(const char *op, const char *name, int64_t v)
{
    if (v < 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s = %lld is negative", op, name,
                         (long long)v);
    return DLV_OK;
}

/* *out = a * b * elem_size bytes, rejected where it cannot be addressed.
 * a and b are already known to be >= 0. */
static inline dlv_status check_bytes(const char *op, const char *what, int64_t a, int64_t b,
                                     size_t elem_size, size_t *out)
{
    *out = 0;
    int64_t limit = (int64_t)(PTRDIFF_MAX / (ptrdiff_t)elem_size);
    if ((a != 0 && b > limit / a))
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s of %lld x %lld elements is too large",
                         op, what, (long long)a, (long long)b);
    *out = (size_t)(a * b) * elem_size;
    return DLV_OK;
}

static inline dlv_status check_ptr(const char *op, const char *name, const void *p,
                                   size_t bytes)
{
    if (!p && bytes > 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s is NULL for a %zu-byte tensor", op, name,
                         bytes);
    return DLV_OK;
}

static inline dlv_status check_param_dtype(const char *op, const char *name, dlv_dtype dt)
{
    if ((unsigned)dt >= DLV_DTYPE_COUNT)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s %d is not a dtype", op, name, (int)dt);
    if (!dlv_dtype_is_float(dt))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %s %s is not supported (F32, BF16 or F16)",
                         op, name, dlv_dtype_name(dt));
    return DLV_OK;
}

/* Outputs may equal an input exactly where the op says so; any other
 * overlap would read values already overwritten. Compared as integers: the
 * pointers may belong to different objects. */
static inline dlv_status check_overlap(const char *op, const char *out_name, const void *out,
                                       size_t out_bytes, const char *in_name, const void *in,
                                       size_t in_bytes, bool may_alias)
{
    if (!out || !in || out_bytes == 0 || in_bytes == 0) return DLV_OK;
    uintptr_t o = (uintptr_t)out, i = (uintptr_t)in;
    if (may_alias && o == i && out_bytes == in_bytes) return DLV_OK;
    if (o < i + in_bytes && i < o + out_bytes)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s overlaps %s%s", op, out_name, in_name,
                         may_alias ? " (only the very same tensor may be passed)" : "");
    return DLV_OK;
}

static inline dlv_status check_eps(const char *op, float eps)
{
    if (!(eps >= 0.0f) || isinf(eps))
        return dlv_error(DLV_E_INVALID_ARG, "%s: eps %g is not a finite value >= 0", op,
                         (double)eps);
    return DLV_OK;
}

static inline dlv_status check_blas_dim(const char *op, const char *name, int64_t v)
{
    if (v > INT_MAX)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %s = %lld exceeds INT_MAX (BLAS limit)", op,
                         name, (long long)v);
    return DLV_OK;
}

#define TRY(expr)                                                                          \
    do {                                                                                   \
        dlv_status st_ = (expr);                                                           \
        if (st_ != DLV_OK) return st_;                                                     \
    } while (0)

#define NEED_BE(op, be)                                                                    \
    do {                                                                                   \
        if (!(be)) return dlv_error(DLV_E_INVALID_ARG, "%s: backend is NULL", op);         \
    } while (0)

/* The args struct of an op that takes one: not NULL, and of this build's
 * size (a caller compiled against another layout is refused). */
static inline dlv_status check_args_struct(const char *op, const void *args, size_t struct_size,
                                           size_t expected)
{
    if (!args) return dlv_error(DLV_E_INVALID_ARG, "%s: args is NULL", op);
    if (struct_size != expected)
        return dlv_error(DLV_E_INVALID_ARG, "%s: struct_size %zu, expected %zu", op,
                         struct_size, expected);
    return DLV_OK;
}

/* The shape rules of dlv_attention and dlv_attention_backward (struct
 * fields shared by both args structs): counts >= 0, heads > 0 with n_heads
 * a multiple of n_kv_heads, causal 0/1, a finite scale, BLAS-sized
 * dimensions and n_scratch [n_q, n_kv] f32 matrices addressable. Gives the
 * byte sizes of a q-shaped, a kv-shaped and a key-mask tensor. */
static inline dlv_status check_attention_shape(const char *op, int64_t batch, int64_t n_q,
                                               int64_t n_kv, int64_t n_heads,
                                               int64_t n_kv_heads, int64_t head_dim,
                                               float scale, int causal, int64_t n_scratch,
                                               size_t *q_bytes, size_t *kv_bytes,
                                               size_t *mask_bytes)
{
    *q_bytes = *kv_bytes = *mask_bytes = 0;
    dlv_status st;
    if ((st = check_count(op, "batch", batch)) || (st = check_count(op, "n_q", n_q)) ||
        (st = check_count(op, "n_kv", n_kv)))
        return st;
    if (n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0)
        return dlv_error(DLV_E_INVALID_ARG,
                         "%s: n_heads %lld, n_kv_heads %lld and head_dim %lld must be > 0", op,
                         (long long)n_heads, (long long)n_kv_heads, (long long)head_dim);
    if (n_heads % n_kv_heads != 0)
        return dlv_error(DLV_E_INVALID_ARG,
                         "%s: n_heads %lld is not a multiple of n_kv_heads %lld", op,
                         (long long)n_heads, (long long)n_kv_heads);
    if (causal != 0 && causal != 1)
        return dlv_error(DLV_E_INVALID_ARG, "%s: causal %d is not 0 or 1", op, causal);
    if (!isfinite(scale))
        return dlv_error(DLV_E_INVALID_ARG, "%s: scale %g is not finite", op, (double)scale);
    size_t q_row, kv_row, tmp;
    if ((st = check_bytes(op, "a query row", n_heads, head_dim, sizeof(float), &q_row)) ||
        (st = check_bytes(op, "a key row", n_kv_heads, head_dim, sizeof(float), &kv_row)))
        return st;
    const int64_t ldq = (int64_t)(q_row / sizeof(float)), ldk = (int64_t)(kv_row / sizeof(float));
    if ((st = check_blas_dim(op, "n_q", n_q)) || (st = check_blas_dim(op, "n_kv", n_kv)) ||
        (st = check_blas_dim(op, "n_heads * head_dim", ldq)) ||
        (st = check_bytes(op, "the scores", n_q, n_scratch * n_kv, sizeof(float), &tmp)) ||
        (st = check_bytes(op, "q", batch, n_q, sizeof(float), &tmp)) ||
        (st = check_bytes(op, "q", batch * n_q, ldq, sizeof(float), q_bytes)) ||
        (st = check_bytes(op, "k", batch, n_kv, sizeof(float), &tmp)) ||
        (st = check_bytes(op, "k", batch * n_kv, ldk, sizeof(float), kv_bytes)))
        return st;
    *mask_bytes = (size_t)(batch * n_kv);
    return DLV_OK;
}

/* What every rotary op requires: counts >= 0, head_dim positive and even. */
static inline dlv_status check_rope_heads(const char *op, int64_t n_tokens, int64_t n_heads,
                                          int64_t head_dim)
{
    dlv_status st;
    if ((st = check_count(op, "n_tokens", n_tokens)) || (st = check_count(op, "n_heads", n_heads)))
        return st;
    if (head_dim <= 0 || head_dim % 2 != 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: head_dim %lld is not a positive even number",
                         op, (long long)head_dim);
    return DLV_OK;
}

/* The shape rules of dlv_rope and dlv_rope_backward: bytes of x
 * [n_tokens, n_heads * head_dim] and of positions [n_tokens]. */
static inline dlv_status check_rope_shape(const char *op, const char *x_name, int64_t n_tokens,
                                          int64_t n_heads, int64_t head_dim, double theta,
                                          size_t *x_bytes, size_t *pos_bytes)
{
    *x_bytes = *pos_bytes = 0;
    dlv_status st;
    if ((st = check_rope_heads(op, n_tokens, n_heads, head_dim))) return st;
    if (!(theta > 0.0) || !isfinite(theta) || !isfinite((float)theta))
        return dlv_error(DLV_E_INVALID_ARG, "%s: theta %g is not a finite value > 0", op, theta);
    size_t row_bytes;
    if ((st = check_bytes(op, "a token row", n_heads, head_dim, sizeof(float), &row_bytes)) ||
        (st = check_bytes(op, x_name, n_tokens, (int64_t)(row_bytes / sizeof(float)),
                          sizeof(float), x_bytes)))
        return st;
    return check_bytes(op, "positions", n_tokens, 1, sizeof(int32_t), pos_bytes);
}

/* The rules of dlv_rope_table and dlv_rope_table_backward: counts >= 0,
 * head_dim positive and even, x [n_tokens, n_heads * head_dim] and the
 * tables [n_tokens, head_dim / 2] addressable and not NULL when non-empty,
 * and x (rotated in place) disjoint from both tables: a kernel that wrote
 * x before reading a later table entry would read a rotated value. */
static inline dlv_status check_rope_table(const char *op, const char *x_name, const float *x,
                                          const float *cos, const float *sin, int64_t n_tokens,
                                          int64_t n_heads, int64_t head_dim)
{
    dlv_status st;
    if ((st = check_rope_heads(op, n_tokens, n_heads, head_dim))) return st;
    size_t row_bytes, x_bytes, table_bytes;
    if ((st = check_bytes(op, "a token row", n_heads, head_dim, sizeof(float), &row_bytes)) ||
        (st = check_bytes(op, x_name, n_tokens, (int64_t)(row_bytes / sizeof(float)),
                          sizeof(float), &x_bytes)) ||
        (st = check_bytes(op, "cos", n_tokens, head_dim / 2, sizeof(float), &table_bytes)))
        return st;
    if ((st = check_ptr(op, x_name, x, x_bytes)) || (st = check_ptr(op, "cos", cos, table_bytes)) ||
        (st = check_ptr(op, "sin", sin, table_bytes)) ||
        (st = check_overlap(op, x_name, x, x_bytes, "cos", cos, table_bytes, false)))
        return st;
    return check_overlap(op, x_name, x, x_bytes, "sin", sin, table_bytes, false);
}

#endif
