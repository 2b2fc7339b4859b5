/* nn.Linear (+ LoRA) forward and backward (see linear.h). */
#include "model/nn/linear.h"

#include "core/error.h"

/* C = alpha op(A) op(B) + beta C, A f32 [.. lda], B any float dtype. */
static dlv_status mm(dlv_backend *be, dlv_transpose ta, dlv_transpose tb, int64_t m, int64_t n,
                     int64_t k, float alpha, const float *a, int64_t lda, const void *b,
                     dlv_dtype b_dtype, int64_t ldb, float beta, float *c, int64_t ldc)
{
    dlv_matmul_args args = {
        .struct_size = sizeof args,
        .trans_a = ta, .trans_b = tb,
        .m = m, .n = n, .k = k,
        .alpha = alpha, .beta = beta,
        .a = a, .a_dtype = DLV_DTYPE_F32, .lda = lda,
        .b = b, .b_dtype = b_dtype, .ldb = ldb,
        .c = c, .ldc = ldc,
    };
    return dlv_matmul(be, &args);
}

dlv_status dlv_linear_forward(dlv_backend *be, float *y, const float *x, int64_t rows,
                              const dlv_linear *w, const dlv_lora_pair *lora, float *lora_tmp)
{
    const int64_t in = dlv_linear_in(w), out = dlv_linear_out(w);
    dlv_status st = mm(be, DLV_NO_TRANS, DLV_TRANS, rows, out, in, 1.0f, x, in,
                       dlv_tensor_data(&w->w), w->w.dtype, in, 0.0f, y, out);
    if (st) return dlv_error_prefix(st, "linear [%lld, %lld]", (long long)out, (long long)in);
    if (dlv_tensor_present(&w->b) &&
        (st = dlv_add_bias(be, y, dlv_tensor_data(&w->b), w->b.dtype, rows, out)))
        return dlv_error_prefix(st, "linear bias");
    if (lora && lora->a) {
        /* PEFT: result + lora_B(lora_A(x)) * scaling. */
        if ((st = mm(be, DLV_NO_TRANS, DLV_TRANS, rows, lora->rank, in, 1.0f, x, in, lora->a,
                     DLV_DTYPE_F32, in, 0.0f, lora_tmp, lora->rank)) ||
            (st = mm(be, DLV_NO_TRANS, DLV_TRANS, rows, out, lora->rank, lora->scale, lora_tmp,
                     lora->rank, lora->b, DLV_DTYPE_F32, lora->rank, 1.0f, y, out)))
            return dlv_error_prefix(st, "linear (LoRA)");
    }
    return DLV_OK;
}

dlv_status dlv_linear_backward(dlv_backend *be, float *dx, float dx_beta, const float *dy,
                               const float *x, int64_t rows, const dlv_linear *w,
                               const dlv_linear *gw, const dlv_lora_pair *lora,
                               const dlv_lora_pair_grad *glora, float *tmp, float *tmp2)
{
    const int64_t in = dlv_linear_in(w), out = dlv_linear_out(w);
    dlv_status st = DLV_OK;
    if (gw && dlv_tensor_present(&gw->w) &&
        (st = mm(be, DLV_TRANS, DLV_NO_TRANS, out, in, rows, 1.0f, dy, out, x, DLV_DTYPE_F32,
                 in, 1.0f, dlv_tensor_f32(&gw->w), in)))
        return dlv_error_prefix(st, "linear backward (dW)");
    if (gw && dlv_tensor_present(&w->b) && dlv_tensor_present(&gw->b) &&
        (st = dlv_bias_backward(be, dlv_tensor_f32(&gw->b), dy, rows, out)))
        return dlv_error_prefix(st, "linear backward (db)");
    if (dx && (st = mm(be, DLV_NO_TRANS, DLV_NO_TRANS, rows, in, out, 1.0f, dy, out,
                       dlv_tensor_data(&w->w), w->w.dtype, in, dx_beta, dx, in)))
        return dlv_error_prefix(st, "linear backward (dx)");
    if (!lora || !lora->a || (!dx && !glora)) return DLV_OK;
    const int64_t r = lora->rank;
    /* tmp2 = dy B [rows, r] */
    if ((st = mm(be, DLV_NO_TRANS, DLV_NO_TRANS, rows, r, out, 1.0f, dy, out, lora->b,
                 DLV_DTYPE_F32, r, 0.0f, tmp2, r)))
        goto fail;
    if (glora) {
        /* tmp = x A^T [rows, r] (recomputed); dB += s dy^T tmp; dA += s tmp2^T x */
        if ((st = mm(be, DLV_NO_TRANS, DLV_TRANS, rows, r, in, 1.0f, x, in, lora->a,
                     DLV_DTYPE_F32, in, 0.0f, tmp, r)) ||
            (st = mm(be, DLV_TRANS, DLV_NO_TRANS, out, r, rows, lora->scale, dy, out, tmp,
                     DLV_DTYPE_F32, r, 1.0f, glora->b, r)) ||
            (st = mm(be, DLV_TRANS, DLV_NO_TRANS, r, in, rows, lora->scale, tmp2, r, x,
                     DLV_DTYPE_F32, in, 1.0f, glora->a, in)))
            goto fail;
    }
    /* dx += s tmp2 A */
    if (dx && (st = mm(be, DLV_NO_TRANS, DLV_NO_TRANS, rows, in, r, lora->scale, tmp2, r,
                       lora->a, DLV_DTYPE_F32, in, 1.0f, dx, in)))
        goto fail;
    return DLV_OK;
fail:
    return dlv_error_prefix(st, "linear backward (LoRA)");
}
