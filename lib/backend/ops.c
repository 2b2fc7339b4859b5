/* Checked wrappers for the compute ops: every argument is validated here,
 * once, with an error naming the op and the argument, so that the backends'
 * slots may assume well-formed input. A backend without a slot reports
 * DLV_E_UNSUPPORTED instead of being called through NULL. */
#include <limits.h>
#include <math.h>
#include <stdbool.h>

#include "backend/backend.h"
#include "backend/ops_check.h"
#include "core/error.h"

/* ---- add ---------------------------------------------------------------- */

dlv_status dlv_add(dlv_backend *be, float *out, const float *a, const void *b,
                   dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols)
{
    static const char op[] = "add";
    NEED_BE(op, be);
    TRY(check_count(op, "rows", rows));
    TRY(check_count(op, "cols", cols));
    TRY(check_param_dtype(op, "b_dtype", b_dtype));
    if (broadcast_b != 0 && broadcast_b != 1)
        return dlv_error(DLV_E_INVALID_ARG, "%s: broadcast_b %d is not 0 or 1", op, broadcast_b);
    size_t bytes, b_bytes;
    TRY(check_bytes(op, "out", rows, cols, sizeof(float), &bytes));
    TRY(check_bytes(op, "b", broadcast_b ? 1 : rows, cols, dlv_dtype_size(b_dtype), &b_bytes));
    if (broadcast_b && rows == 0) b_bytes = 0;
    TRY(check_ptr(op, "out", out, bytes));
    TRY(check_ptr(op, "a", a, bytes));
    TRY(check_ptr(op, "b", b, b_bytes));
    TRY(check_overlap(op, "out", out, bytes, "a", a, bytes, true));
    TRY(check_overlap(op, "out", out, bytes, "b", b, b_bytes, false));
    if (!be->ops->add) return unsupported(op, be);
    return be->ops->add(be, out, a, b, b_dtype, broadcast_b, rows, cols);
}

dlv_status dlv_add_bias(dlv_backend *be, float *x, const void *bias, dlv_dtype bias_dtype,
                        int64_t rows, int64_t cols)
{
    dlv_status st = dlv_add(be, x, x, bias, bias_dtype, 1, rows, cols);
    return st == DLV_OK ? st : dlv_error_prefix(st, "add_bias");
}

/* ---- norms -------------------------------------------------------------- */

static dlv_status check_rows(const char *op, float *out, const float *inp, int64_t rows,
                             int64_t cols, size_t *bytes)
{
    TRY(check_count(op, "rows", rows));
    TRY(check_count(op, "cols", cols));
    TRY(check_bytes(op, "inp", rows, cols, sizeof(float), bytes));
    TRY(check_ptr(op, "out", out, *bytes));
    TRY(check_ptr(op, "inp", inp, *bytes));
    return check_overlap(op, "out", out, *bytes, "inp", inp, *bytes, true);
}

static dlv_status check_vec_param(const char *op, const char *name, const void *p,
                                  dlv_dtype dt, int64_t cols, const float *out,
                                  size_t out_bytes)
{
    if (!p) return DLV_OK; /* optional */
    size_t bytes = (size_t)cols * dlv_dtype_size(dt);
    return check_overlap(op, "out", out, out_bytes, name, p, bytes, false);
}

/* A norm's optional weight and bias (rmsnorm: bias NULL): their dtype
 * (argument dt_name) once either is given, neither overlapping out. */
static dlv_status check_norm_params(const char *op, const char *dt_name, const void *weight,
                                    const void *bias, dlv_dtype dt, int64_t cols,
                                    const float *out, size_t out_bytes)
{
    if (!weight && !bias) return DLV_OK;
    TRY(check_param_dtype(op, dt_name, dt));
    TRY(check_vec_param(op, "weight", weight, dt, cols, out, out_bytes));
    return check_vec_param(op, "bias", bias, dt, cols, out, out_bytes);
}

dlv_status dlv_layernorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                         const void *bias, dlv_dtype param_dtype, int64_t rows, int64_t cols,
                         float eps)
{
    static const char op[] = "layernorm";
    NEED_BE(op, be);
    size_t bytes;
    TRY(check_rows(op, out, inp, rows, cols, &bytes));
    TRY(check_eps(op, eps));
    TRY(check_norm_params(op, "param_dtype", weight, bias, param_dtype, cols, out, bytes));
    if (!be->ops->layernorm) return unsupported(op, be);
    return be->ops->layernorm(be, out, inp, weight, bias, param_dtype, rows, cols, eps);
}

dlv_status dlv_rmsnorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                       dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps)
{
    static const char op[] = "rmsnorm";
    NEED_BE(op, be);
    size_t bytes;
    TRY(check_rows(op, out, inp, rows, cols, &bytes));
    TRY(check_eps(op, eps));
    TRY(check_norm_params(op, "weight_dtype", weight, NULL, weight_dtype, cols, out, bytes));
    if (!be->ops->rmsnorm) return unsupported(op, be);
    return be->ops->rmsnorm(be, out, inp, weight, weight_dtype, rows, cols, eps);
}

/* The checks of dlv_add (sum = a + b, sum may be a) and of the norm (out
 * from sum, never overlapping sum, a or b). */
static dlv_status check_add_norm(const char *op, float *sum, float *out, const float *a,
                                 const float *b, int64_t rows, int64_t cols, float eps,
                                 size_t *bytes)
{
    TRY(check_count(op, "rows", rows));
    TRY(check_count(op, "cols", cols));
    TRY(check_eps(op, eps));
    TRY(check_bytes(op, "sum", rows, cols, sizeof(float), bytes));
    TRY(check_ptr(op, "sum", sum, *bytes));
    TRY(check_ptr(op, "out", out, *bytes));
    TRY(check_ptr(op, "a", a, *bytes));
    TRY(check_ptr(op, "b", b, *bytes));
    TRY(check_overlap(op, "sum", sum, *bytes, "a", a, *bytes, true));
    TRY(check_overlap(op, "sum", sum, *bytes, "b", b, *bytes, false));
    TRY(check_overlap(op, "out", out, *bytes, "sum", sum, *bytes, false));
    TRY(check_overlap(op, "out", out, *bytes, "a", a, *bytes, false));
    return check_overlap(op, "out", out, *bytes, "b", b, *bytes, false);
}

dlv_status dlv_add_layernorm(dlv_backend *be, float *sum, float *out, const float *a,
                             const float *b, const void *weight, const void *bias,
                             dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps)
{
    static const char op[] = "add_layernorm";
    NEED_BE(op, be);
    size_t bytes;
    TRY(check_add_norm(op, sum, out, a, b, rows, cols, eps, &bytes));
    TRY(check_norm_params(op, "param_dtype", weight, bias, param_dtype, cols, out, bytes));
    if (!DLV_BACKEND_HAS(be->ops, add_layernorm)) {
        TRY(dlv_add(be, sum, a, b, DLV_DTYPE_F32, 0, rows, cols));
        return dlv_layernorm(be, out, sum, weight, bias, param_dtype, rows, cols, eps);
    }
    return be->ops->add_layernorm(be, sum, out, a, b, weight, bias, param_dtype, rows, cols,
                                  eps);
}

dlv_status dlv_add_rmsnorm(dlv_backend *be, float *sum, float *out, const float *a,
                           const float *b, const void *weight, dlv_dtype weight_dtype,
                           int64_t rows, int64_t cols, float eps)
{
    static const char op[] = "add_rmsnorm";
    NEED_BE(op, be);
    size_t bytes;
    TRY(check_add_norm(op, sum, out, a, b, rows, cols, eps, &bytes));
    TRY(check_norm_params(op, "weight_dtype", weight, NULL, weight_dtype, cols, out, bytes));
    if (!DLV_BACKEND_HAS(be->ops, add_rmsnorm)) {
        TRY(dlv_add(be, sum, a, b, DLV_DTYPE_F32, 0, rows, cols));
        return dlv_rmsnorm(be, out, sum, weight, weight_dtype, rows, cols, eps);
    }
    return be->ops->add_rmsnorm(be, sum, out, a, b, weight, weight_dtype, rows, cols, eps);
}

dlv_status dlv_l2_normalize(dlv_backend *be, float *out, const float *inp, int64_t rows,
                            int64_t cols)
{
    static const char op[] = "l2_normalize";
    NEED_BE(op, be);
    size_t bytes;
    TRY(check_rows(op, out, inp, rows, cols, &bytes));
    if (!be->ops->l2_normalize) return unsupported(op, be);
    return be->ops->l2_normalize(be, out, inp, rows, cols);
}

/* ---- rope --------------------------------------------------------------- */

dlv_status dlv_rope(dlv_backend *be, float *x, const int32_t *positions, int64_t n_tokens,
                    int64_t n_heads, int64_t head_dim, double theta)
{
    static const char op[] = "rope";
    NEED_BE(op, be);
    size_t bytes, pos_bytes;
    TRY(check_rope_shape(op, "x", n_tokens, n_heads, head_dim, theta, &bytes, &pos_bytes));
    TRY(check_ptr(op, "x", x, bytes));
    TRY(check_ptr(op, "positions", positions, pos_bytes));
    if (!be->ops->rope) return unsupported(op, be);
    return be->ops->rope(be, x, positions, n_tokens, n_heads, head_dim, theta);
}

dlv_status dlv_rope_table(dlv_backend *be, float *x, const float *cos, const float *sin,
                          int64_t n_tokens, int64_t n_heads, int64_t head_dim)
{
    static const char op[] = "rope_table";
    NEED_BE(op, be);
    TRY(check_rope_table(op, "x", x, cos, sin, n_tokens, n_heads, head_dim));
    if (!DLV_BACKEND_HAS(be->ops, rope_table)) return unsupported(op, be);
    return be->ops->rope_table(be, x, cos, sin, n_tokens, n_heads, head_dim);
}

/* ---- attention ---------------------------------------------------------- */

dlv_status dlv_attention(dlv_backend *be, const dlv_attention_args *a)
{
    static const char op[] = "attention";
    NEED_BE(op, be);
    TRY(check_args_struct(op, a, a ? a->struct_size : 0, sizeof(dlv_attention_args)));
    size_t q_bytes, kv_bytes, mask_bytes;
    TRY(check_attention_shape(op, a->batch, a->n_q, a->n_kv, a->n_heads, a->n_kv_heads,
                              a->head_dim, a->scale, a->causal, 1, &q_bytes, &kv_bytes,
                              &mask_bytes));
    TRY(check_ptr(op, "out", a->out, q_bytes));
    TRY(check_ptr(op, "q", a->q, q_bytes));
    TRY(check_ptr(op, "k", a->k, kv_bytes));
    TRY(check_ptr(op, "v", a->v, kv_bytes));
    TRY(check_overlap(op, "out", a->out, q_bytes, "q", a->q, q_bytes, false));
    TRY(check_overlap(op, "out", a->out, q_bytes, "k", a->k, kv_bytes, false));
    TRY(check_overlap(op, "out", a->out, q_bytes, "v", a->v, kv_bytes, false));
    TRY(check_overlap(op, "out", a->out, q_bytes, "key_mask", a->key_mask, mask_bytes, false));
    if (!be->ops->attention) return unsupported(op, be);
    return be->ops->attention(be, a);
}

/* ---- activations -------------------------------------------------------- */

dlv_status dlv_activation(dlv_backend *be, dlv_op_act act, float *out, const float *inp,
                          int64_t n)
{
    static const char op[] = "activation";
    NEED_BE(op, be);
    if ((unsigned)act >= DLV_OP_ACT_COUNT)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %d is not a dlv_op_act", op, (int)act);
    TRY(check_count(op, "n", n));
    size_t bytes;
    TRY(check_bytes(op, "inp", n, 1, sizeof(float), &bytes));
    TRY(check_ptr(op, "out", out, bytes));
    TRY(check_ptr(op, "inp", inp, bytes));
    TRY(check_overlap(op, "out", out, bytes, "inp", inp, bytes, true));
    if (!be->ops->activation) return unsupported(dlv_op_act_name(act), be);
    return be->ops->activation(be, act, out, inp, n);
}

dlv_status dlv_swiglu(dlv_backend *be, float *out, const float *gate, const float *up, int64_t n)
{
    static const char op[] = "swiglu";
    NEED_BE(op, be);
    TRY(check_count(op, "n", n));
    size_t bytes;
    TRY(check_bytes(op, "gate", n, 1, sizeof(float), &bytes));
    TRY(check_ptr(op, "out", out, bytes));
    TRY(check_ptr(op, "gate", gate, bytes));
    TRY(check_ptr(op, "up", up, bytes));
    TRY(check_overlap(op, "out", out, bytes, "gate", gate, bytes, true));
    TRY(check_overlap(op, "out", out, bytes, "up", up, bytes, true));
    if (!be->ops->swiglu) return unsupported(op, be);
    return be->ops->swiglu(be, out, gate, up, n);
}

/* ---- embedding and patches ---------------------------------------------- */

dlv_status dlv_embedding(dlv_backend *be, float *out, const void *table, dlv_dtype table_dtype,
                         const int32_t *ids, int64_t n_ids, int64_t vocab, int64_t dim)
{
    static const char op[] = "embedding";
    NEED_BE(op, be);
    TRY(check_count(op, "n_ids", n_ids));
    TRY(check_count(op, "vocab", vocab));
    TRY(check_count(op, "dim", dim));
    TRY(check_param_dtype(op, "table_dtype", table_dtype));
    size_t out_bytes, table_bytes, id_bytes;
    TRY(check_bytes(op, "out", n_ids, dim, sizeof(float), &out_bytes));
    TRY(check_bytes(op, "table", vocab, dim, dlv_dtype_size(table_dtype), &table_bytes));
    TRY(check_bytes(op, "ids", n_ids, 1, sizeof(int32_t), &id_bytes));
    TRY(check_ptr(op, "out", out, out_bytes));
    TRY(check_ptr(op, "ids", ids, id_bytes));
    /* ids are device memory: the backend checks them against vocab inside
     * the op, before writing anything (docs/backends.md). */
    TRY(check_ptr(op, "table", table, n_ids > 0 ? table_bytes : 0));
    TRY(check_overlap(op, "out", out, out_bytes, "table", table, table_bytes, false));
    if (!be->ops->embedding) return unsupported(op, be);
    return be->ops->embedding(be, out, table, table_dtype, ids, n_ids, vocab, dim);
}

dlv_status dlv_im2col_patches(dlv_backend *be, float *out, const float *pixels, int64_t c,
                              int64_t h, int64_t w, int64_t patch)
{
    static const char op[] = "im2col_patches";
    NEED_BE(op, be);
    TRY(check_count(op, "c", c));
    TRY(check_count(op, "h", h));
    TRY(check_count(op, "w", w));
    if (patch <= 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: patch %lld is not > 0", op, (long long)patch);
    size_t plane, in_bytes, patch_area, row, out_bytes;
    TRY(check_bytes(op, "pixels", h, w, sizeof(float), &plane));
    TRY(check_bytes(op, "pixels", c, (int64_t)(plane / sizeof(float)), sizeof(float),
                    &in_bytes));
    TRY(check_bytes(op, "a patch", patch, patch, sizeof(float), &patch_area));
    TRY(check_bytes(op, "a patch row", c, (int64_t)(patch_area / sizeof(float)), sizeof(float),
                    &row));
    int64_t n_patches = (h / patch) * (w / patch); /* <= h * w: no overflow */
    TRY(check_bytes(op, "out", n_patches, (int64_t)(row / sizeof(float)), sizeof(float),
                    &out_bytes));
    TRY(check_ptr(op, "out", out, out_bytes));
    TRY(check_ptr(op, "pixels", pixels, out_bytes > 0 ? in_bytes : 0));
    TRY(check_overlap(op, "out", out, out_bytes, "pixels", pixels, in_bytes, false));
    if (!be->ops->im2col_patches) return unsupported(op, be);
    return be->ops->im2col_patches(be, out, pixels, c, h, w, patch);
}
