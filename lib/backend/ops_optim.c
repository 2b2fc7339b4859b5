/* Checked wrappers of the optimizer ops (see backend.h): arguments are
 * validated here, once, so the backends' slots may assume them well formed. */
#include <math.h>

#include "backend/backend.h"
#include "backend/ops_check.h"
#include "core/error.h"

static dlv_status check_scalar(const char *op, const char *name, float v, int positive)
{
    if (!isfinite(v) || (positive && !(v > 0.0f)))
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s %g is not a finite value%s", op, name,
                         (double)v, positive ? " > 0" : "");
    return DLV_OK;
}

dlv_status dlv_adamw_update(dlv_backend *be, const dlv_adamw_args *a)
{
    static const char op[] = "adamw_update";
    NEED_BE(op, be);
    TRY(check_args_struct(op, a, a ? a->struct_size : 0, sizeof(dlv_adamw_args)));
    TRY(check_count(op, "n", a->n));
    TRY(check_scalar(op, "step_size", a->step_size, 0));
    TRY(check_scalar(op, "beta1", a->beta1, 0));
    TRY(check_scalar(op, "beta2", a->beta2, 0));
    TRY(check_scalar(op, "eps", a->eps, 1));
    TRY(check_scalar(op, "bc2_sqrt", a->bc2_sqrt, 1));
    TRY(check_scalar(op, "decay_mul", a->decay_mul, 0));
    TRY(check_scalar(op, "grad_scale", a->grad_scale, 0));
    size_t bytes;
    TRY(check_bytes(op, "params", a->n, 1, sizeof(float), &bytes));
    TRY(check_ptr(op, "params", a->params, bytes));
    TRY(check_ptr(op, "grads", a->grads, bytes));
    TRY(check_ptr(op, "m", a->m, bytes));
    TRY(check_ptr(op, "v", a->v, bytes));
    TRY(check_overlap(op, "params", a->params, bytes, "grads", a->grads, bytes, false));
    TRY(check_overlap(op, "params", a->params, bytes, "m", a->m, bytes, false));
    TRY(check_overlap(op, "params", a->params, bytes, "v", a->v, bytes, false));
    TRY(check_overlap(op, "m", a->m, bytes, "v", a->v, bytes, false));
    TRY(check_overlap(op, "m", a->m, bytes, "grads", a->grads, bytes, false));
    TRY(check_overlap(op, "v", a->v, bytes, "grads", a->grads, bytes, false));
    if (!DLV_BACKEND_HAS(be->ops, adamw_update)) return unsupported(op, be);
    return be->ops->adamw_update(be, a);
}

dlv_status dlv_sgd_update(dlv_backend *be, float *params, const float *grads, int64_t n,
                          float lr, float weight_decay, float grad_scale)
{
    static const char op[] = "sgd_update";
    NEED_BE(op, be);
    TRY(check_count(op, "n", n));
    TRY(check_scalar(op, "lr", lr, 0));
    TRY(check_scalar(op, "weight_decay", weight_decay, 0));
    TRY(check_scalar(op, "grad_scale", grad_scale, 0));
    size_t bytes;
    TRY(check_bytes(op, "params", n, 1, sizeof(float), &bytes));
    TRY(check_ptr(op, "params", params, bytes));
    TRY(check_ptr(op, "grads", grads, bytes));
    TRY(check_overlap(op, "params", params, bytes, "grads", grads, bytes, false));
    if (!DLV_BACKEND_HAS(be->ops, sgd_update)) return unsupported(op, be);
    return be->ops->sgd_update(be, params, grads, n, lr, weight_decay, grad_scale);
}

dlv_status dlv_sum_squares(dlv_backend *be, double *out, const float *x, int64_t n)
{
    static const char op[] = "sum_squares";
    NEED_BE(op, be);
    TRY(check_count(op, "n", n));
    size_t bytes;
    TRY(check_bytes(op, "x", n, 1, sizeof(float), &bytes));
    TRY(check_ptr(op, "out", out, sizeof(double)));
    TRY(check_ptr(op, "x", x, bytes));
    TRY(check_overlap(op, "out", out, sizeof(double), "x", x, bytes, false));
    if (!DLV_BACKEND_HAS(be->ops, sum_squares)) return unsupported(op, be);
    return be->ops->sum_squares(be, out, x, n);
}
