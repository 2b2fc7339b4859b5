/* Checked wrappers for the backward ops (training): every argument is
 * validated here, once, with an error naming the op and the argument, in the
 * same way as the forward wrappers (backend/ops.c). Gradient outputs never
 * overlap an input or each other, except dlogits of softmax_cross_entropy,
 * which may be the logits themselves. */
#include "backend/backend.h"
#include "backend/ops_check.h"
#include "core/error.h"

/* A gradient output must not overlap any input: the kernels read inputs
 * after writing gradients. */
static dlv_status check_disjoint(const char *op, const char *out_name, const void *out,
                                 size_t out_bytes, const char *in_name, const void *in,
                                 size_t in_bytes)
{
    return check_overlap(op, out_name, out, out_bytes, in_name, in, in_bytes, false);
}

/* A named tensor range, for the all-pairs overlap check below. */
typedef struct span {
    const char *name;
    const void *p;
    size_t bytes;
} span;

/* No gradient output may overlap an input or another gradient output. */
static dlv_status check_outputs_disjoint(const char *op, const span *outs, int n_out,
                                         const span *ins, int n_in)
{
    dlv_status st;
    for (int o = 0; o < n_out; o++) {
        for (int i = 0; i < n_in; i++)
            if ((st = check_disjoint(op, outs[o].name, outs[o].p, outs[o].bytes, ins[i].name,
                                     ins[i].p, ins[i].bytes)))
                return st;
        for (int q = o + 1; q < n_out; q++)
            if ((st = check_disjoint(op, outs[o].name, outs[o].p, outs[o].bytes, outs[q].name,
                                     outs[q].p, outs[q].bytes)))
                return st;
    }
    return DLV_OK;
}

/* ---- norms -------------------------------------------------------------- */

/* The shared checks of the two norm backwards: sizes, tensors, eps, the
 * parameter dtype and every overlap between the gradients and the inputs. */
static dlv_status check_norm_bw(const char *op, float *dinp, float *dweight, float *dbias,
                                const float *dout, const float *inp, const void *weight,
                                const char *dt_name, dlv_dtype dt, int64_t rows, int64_t cols,
                                float eps)
{
    TRY(check_count(op, "rows", rows));
    TRY(check_count(op, "cols", cols));
    TRY(check_eps(op, eps));
    size_t bytes, vec_bytes, w_bytes = 0;
    TRY(check_bytes(op, "inp", rows, cols, sizeof(float), &bytes));
    TRY(check_bytes(op, "dweight", cols, 1, sizeof(float), &vec_bytes));
    if (weight) {
        TRY(check_param_dtype(op, dt_name, dt));
        w_bytes = (size_t)cols * dlv_dtype_size(dt);
    }
    TRY(check_ptr(op, "dinp", dinp, bytes));
    TRY(check_ptr(op, "dout", dout, bytes));
    TRY(check_ptr(op, "inp", inp, bytes));
    const span outs[3] = {{"dinp", dinp, bytes}, {"dweight", dweight, vec_bytes},
                          {"dbias", dbias, vec_bytes}};
    const span ins[3] = {{"dout", dout, bytes}, {"inp", inp, bytes}, {"weight", weight, w_bytes}};
    return check_outputs_disjoint(op, outs, 3, ins, 3);
}

dlv_status dlv_rmsnorm_backward(dlv_backend *be, float *dinp, float *dweight, const float *dout,
                                const float *inp, const void *weight, dlv_dtype weight_dtype,
                                int64_t rows, int64_t cols, float eps)
{
    static const char op[] = "rmsnorm_backward";
    NEED_BE(op, be);
    TRY(check_norm_bw(op, dinp, dweight, NULL, dout, inp, weight, "weight_dtype", weight_dtype,
                      rows, cols, eps));
    if (!be->ops->rmsnorm_backward) return unsupported(op, be);
    return be->ops->rmsnorm_backward(be, dinp, dweight, dout, inp, weight, weight_dtype, rows,
                                     cols, eps);
}

dlv_status dlv_layernorm_backward(dlv_backend *be, float *dinp, float *dweight, float *dbias,
                                  const float *dout, const float *inp, const void *weight,
                                  dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps)
{
    static const char op[] = "layernorm_backward";
    NEED_BE(op, be);
    TRY(check_norm_bw(op, dinp, dweight, dbias, dout, inp, weight, "param_dtype", param_dtype,
                      rows, cols, eps));
    if (!be->ops->layernorm_backward) return unsupported(op, be);
    return be->ops->layernorm_backward(be, dinp, dweight, dbias, dout, inp, weight,
                                       param_dtype, rows, cols, eps);
}

dlv_status dlv_l2_normalize_backward(dlv_backend *be, float *dinp, const float *dout,
                                     const float *inp, int64_t rows, int64_t cols)
{
    static const char op[] = "l2_normalize_backward";
    NEED_BE(op, be);
    TRY(check_norm_bw(op, dinp, NULL, NULL, dout, inp, NULL, NULL, DLV_DTYPE_F32, rows, cols,
                      0.0f));
    if (!be->ops->l2_normalize_backward) return unsupported(op, be);
    return be->ops->l2_normalize_backward(be, dinp, dout, inp, rows, cols);
}

/* ---- rope --------------------------------------------------------------- */

dlv_status dlv_rope_backward(dlv_backend *be, float *dx, const int32_t *positions,
                             int64_t n_tokens, int64_t n_heads, int64_t head_dim, double theta)
{
    static const char op[] = "rope_backward";
    NEED_BE(op, be);
    size_t bytes, pos_bytes;
    TRY(check_rope_shape(op, "dx", n_tokens, n_heads, head_dim, theta, &bytes, &pos_bytes));
    TRY(check_ptr(op, "dx", dx, bytes));
    TRY(check_ptr(op, "positions", positions, pos_bytes));
    TRY(check_disjoint(op, "dx", dx, bytes, "positions", positions, pos_bytes));
    if (!be->ops->rope_backward) return unsupported(op, be);
    return be->ops->rope_backward(be, dx, positions, n_tokens, n_heads, head_dim, theta);
}

dlv_status dlv_rope_table_backward(dlv_backend *be, float *dx, const float *cos,
                                   const float *sin, int64_t n_tokens, int64_t n_heads,
                                   int64_t head_dim)
{
    static const char op[] = "rope_table_backward";
    NEED_BE(op, be);
    TRY(check_rope_table(op, "dx", dx, cos, sin, n_tokens, n_heads, head_dim));
    if (!DLV_BACKEND_HAS(be->ops, rope_table_backward)) return unsupported(op, be);
    return be->ops->rope_table_backward(be, dx, cos, sin, n_tokens, n_heads, head_dim);
}

/* ---- attention ---------------------------------------------------------- */

dlv_status dlv_attention_backward(dlv_backend *be, const dlv_attention_bw_args *a)
{
    static const char op[] = "attention_backward";
    NEED_BE(op, be);
    TRY(check_args_struct(op, a, a ? a->struct_size : 0, sizeof(dlv_attention_bw_args)));
    size_t q_bytes, kv_bytes, mask_bytes;
    TRY(check_attention_shape(op, a->batch, a->n_q, a->n_kv, a->n_heads, a->n_kv_heads,
                              a->head_dim, a->scale, a->causal, 2, &q_bytes, &kv_bytes,
                              &mask_bytes));
    TRY(check_ptr(op, "dq", a->dq, q_bytes));
    TRY(check_ptr(op, "dk", a->dk, kv_bytes));
    TRY(check_ptr(op, "dv", a->dv, kv_bytes));
    TRY(check_ptr(op, "dout", a->dout, q_bytes));
    TRY(check_ptr(op, "q", a->q, q_bytes));
    TRY(check_ptr(op, "k", a->k, kv_bytes));
    TRY(check_ptr(op, "v", a->v, kv_bytes));
    const span outs[3] = {{"dq", a->dq, q_bytes}, {"dk", a->dk, kv_bytes},
                          {"dv", a->dv, kv_bytes}};
    const span ins[5] = {{"dout", a->dout, q_bytes}, {"q", a->q, q_bytes},
                         {"k", a->k, kv_bytes}, {"v", a->v, kv_bytes},
                         {"key_mask", a->key_mask, mask_bytes}};
    TRY(check_outputs_disjoint(op, outs, 3, ins, 5));
    if (!be->ops->attention_backward) return unsupported(op, be);
    return be->ops->attention_backward(be, a);
}

/* ---- elementwise -------------------------------------------------------- */

dlv_status dlv_activation_backward(dlv_backend *be, dlv_op_act act, float *dinp,
                                   const float *dout, const float *inp, int64_t n)
{
    static const char op[] = "activation_backward";
    NEED_BE(op, be);
    if ((unsigned)act >= DLV_OP_ACT_COUNT)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %d is not a dlv_op_act", op, (int)act);
    TRY(check_count(op, "n", n));
    size_t bytes;
    TRY(check_bytes(op, "inp", n, 1, sizeof(float), &bytes));
    TRY(check_ptr(op, "dinp", dinp, bytes));
    TRY(check_ptr(op, "dout", dout, bytes));
    TRY(check_ptr(op, "inp", inp, bytes));
    TRY(check_disjoint(op, "dinp", dinp, bytes, "dout", dout, bytes));
    TRY(check_disjoint(op, "dinp", dinp, bytes, "inp", inp, bytes));
    if (!be->ops->activation_backward) {
        dlv_status st = unsupported(dlv_op_act_name(act), be);
        return dlv_error_prefix(st, "%s", op);
    }
    return be->ops->activation_backward(be, act, dinp, dout, inp, n);
}

dlv_status dlv_swiglu_backward(dlv_backend *be, float *dgate, float *dup, const float *dout,
                               const float *gate, const float *up, int64_t n)
{
    static const char op[] = "swiglu_backward";
    NEED_BE(op, be);
    TRY(check_count(op, "n", n));
    size_t bytes;
    TRY(check_bytes(op, "gate", n, 1, sizeof(float), &bytes));
    TRY(check_ptr(op, "dgate", dgate, bytes));
    TRY(check_ptr(op, "dup", dup, bytes));
    TRY(check_ptr(op, "dout", dout, bytes));
    TRY(check_ptr(op, "gate", gate, bytes));
    TRY(check_ptr(op, "up", up, bytes));
    const char *in_names[3] = {"dout", "gate", "up"};
    const void *ins[3] = {dout, gate, up};
    for (int i = 0; i < 3; i++) {
        TRY(check_disjoint(op, "dgate", dgate, bytes, in_names[i], ins[i], bytes));
        TRY(check_disjoint(op, "dup", dup, bytes, in_names[i], ins[i], bytes));
    }
    TRY(check_disjoint(op, "dgate", dgate, bytes, "dup", dup, bytes));
    if (!be->ops->swiglu_backward) return unsupported(op, be);
    return be->ops->swiglu_backward(be, dgate, dup, dout, gate, up, n);
}

dlv_status dlv_bias_backward(dlv_backend *be, float *dbias, const float *dout, int64_t rows,
                             int64_t cols)
{
    static const char op[] = "bias_backward";
    NEED_BE(op, be);
    TRY(check_count(op, "rows", rows));
    TRY(check_count(op, "cols", cols));
    size_t bytes, vec_bytes;
    TRY(check_bytes(op, "dout", rows, cols, sizeof(float), &bytes));
    TRY(check_bytes(op, "dbias", cols, 1, sizeof(float), &vec_bytes));
    TRY(check_ptr(op, "dbias", dbias, vec_bytes));
    TRY(check_ptr(op, "dout", dout, bytes));
    TRY(check_disjoint(op, "dbias", dbias, vec_bytes, "dout", dout, bytes));
    if (!be->ops->bias_backward) return unsupported(op, be);
    return be->ops->bias_backward(be, dbias, dout, rows, cols);
}

/* ---- embedding ---------------------------------------------------------- */

dlv_status dlv_embedding_backward(dlv_backend *be, float *dtable, const float *dout,
                                  const int32_t *ids, int64_t n_ids, int64_t vocab, int64_t dim)
{
    static const char op[] = "embedding_backward";
    NEED_BE(op, be);
    TRY(check_count(op, "n_ids", n_ids));
    TRY(check_count(op, "vocab", vocab));
    TRY(check_count(op, "dim", dim));
    size_t dout_bytes, table_bytes, id_bytes;
    TRY(check_bytes(op, "dout", n_ids, dim, sizeof(float), &dout_bytes));
    TRY(check_bytes(op, "dtable", vocab, dim, sizeof(float), &table_bytes));
    TRY(check_bytes(op, "ids", n_ids, 1, sizeof(int32_t), &id_bytes));
    TRY(check_ptr(op, "dout", dout, dout_bytes));
    TRY(check_ptr(op, "ids", ids, id_bytes));
    TRY(check_ptr(op, "dtable", dtable, n_ids > 0 ? table_bytes : 0));
    TRY(check_disjoint(op, "dtable", dtable, table_bytes, "dout", dout, dout_bytes));
    TRY(check_disjoint(op, "dtable", dtable, table_bytes, "ids", ids, id_bytes));
    if (!be->ops->embedding_backward) return unsupported(op, be);
    return be->ops->embedding_backward(be, dtable, dout, ids, n_ids, vocab, dim);
}

/* ---- loss --------------------------------------------------------------- */

dlv_status dlv_softmax_cross_entropy(dlv_backend *be, float *losses, float *dlogits,
                                     const float *logits, const int32_t *targets, int64_t n,
                                     int64_t vocab, float dscale)
{
    static const char op[] = "softmax_cross_entropy";
    NEED_BE(op, be);
    TRY(check_count(op, "n", n));
    TRY(check_count(op, "vocab", vocab));
    if (!isfinite(dscale))
        return dlv_error(DLV_E_INVALID_ARG, "%s: dscale %g is not finite", op, (double)dscale);
    size_t bytes, loss_bytes, t_bytes;
    TRY(check_bytes(op, "logits", n, vocab, sizeof(float), &bytes));
    TRY(check_bytes(op, "losses", n, 1, sizeof(float), &loss_bytes));
    TRY(check_bytes(op, "targets", n, 1, sizeof(int32_t), &t_bytes));
    TRY(check_ptr(op, "losses", losses, loss_bytes));
    TRY(check_ptr(op, "logits", logits, bytes));
    TRY(check_ptr(op, "targets", targets, t_bytes));
    TRY(check_disjoint(op, "losses", losses, loss_bytes, "logits", logits, bytes));
    TRY(check_disjoint(op, "losses", losses, loss_bytes, "targets", targets, t_bytes));
    if (dlogits) {
        TRY(check_overlap(op, "dlogits", dlogits, bytes, "logits", logits, bytes, true));
        TRY(check_disjoint(op, "dlogits", dlogits, bytes, "losses", losses, loss_bytes));
        TRY(check_disjoint(op, "dlogits", dlogits, bytes, "targets", targets, t_bytes));
    }
    if (!be->ops->softmax_cross_entropy) return unsupported(op, be);
    return be->ops->softmax_cross_entropy(be, losses, dlogits, logits, targets, n, vocab,
                                          dscale);
}
