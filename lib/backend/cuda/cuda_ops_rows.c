/* The CUDA backend's forward compute slots (cuda_ops_rows.h): each maps its
 * arguments onto a kernel launcher (cuda_kernels_*.h) and queues it on the
 * instance's stream. Empty tensors launch nothing (their pointers may be
 * NULL), as the CPU's early returns. */
#include "backend/cuda/cuda_kernels_elementwise.h"
#include "backend/cuda/cuda_kernels_embed.h"
#include "backend/cuda/cuda_kernels_norm.h"
#include "backend/cuda/cuda_ops_rows.h"
#include "backend/cuda/cuda_ops_util.h"

/* The launchers take dlv_op_act's values unchanged. */
_Static_assert((int)DLV_CUK_QUICK_GELU == (int)DLV_OP_ACT_QUICK_GELU &&
                   (int)DLV_CUK_GELU == (int)DLV_OP_ACT_GELU &&
                   (int)DLV_CUK_GELU_TANH == (int)DLV_OP_ACT_GELU_TANH &&
                   (int)DLV_CUK_SILU == (int)DLV_OP_ACT_SILU &&
                   (int)DLV_CUK_RELU == (int)DLV_OP_ACT_RELU,
               "dlv_cuk_act must follow dlv_op_act");

dlv_status dlv_cuda_add(dlv_backend *be, float *out, const float *a, const void *b,
                        dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols)
{
    const cuda_backend *cu = as_cuda(be);
    if (rows == 0 || cols == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_add(cu->stream, out, a, b, dlv_cuda_param_dtype(b_dtype),
                                           broadcast_b, rows, cols),
                           "add");
}

/* The four norms share one launcher: layer (LayerNorm or RMSNorm), and a
 * residual (res, sum) for the fused add_* forms. */
static dlv_status norm(dlv_backend *be, const char *op, int layer, float *out, const float *inp,
                       const float *res, float *sum, const void *weight, const void *bias,
                       dlv_dtype dt, int64_t rows, int64_t cols, float eps)
{
    const cuda_backend *cu = as_cuda(be);
    if (rows == 0 || cols == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_norm_forward(cu->stream, layer, out, inp, res, sum, weight,
                                                    bias, dlv_cuda_param_dtype(dt), rows, cols,
                                                    eps),
                           op);
}

dlv_status dlv_cuda_layernorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                              const void *bias, dlv_dtype param_dtype, int64_t rows,
                              int64_t cols, float eps)
{
    return norm(be, "layernorm", 1, out, inp, NULL, NULL, weight, bias, param_dtype, rows, cols,
                eps);
}

dlv_status dlv_cuda_rmsnorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                            dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps)
{
    return norm(be, "rmsnorm", 0, out, inp, NULL, NULL, weight, NULL, weight_dtype, rows, cols,
                eps);
}

dlv_status dlv_cuda_add_layernorm(dlv_backend *be, float *sum, float *out, const float *a,
                                  const float *b, const void *weight, const void *bias,
                                  dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps)
{
    return norm(be, "add_layernorm", 1, out, a, b, sum, weight, bias, param_dtype, rows, cols,
                eps);
}

dlv_status dlv_cuda_add_rmsnorm(dlv_backend *be, float *sum, float *out, const float *a,
                                const float *b, const void *weight, dlv_dtype weight_dtype,
                                int64_t rows, int64_t cols, float eps)
{
    return norm(be, "add_rmsnorm", 0, out, a, b, sum, weight, NULL, weight_dtype, rows, cols,
                eps);
}

dlv_status dlv_cuda_l2_normalize(dlv_backend *be, float *out, const float *inp, int64_t rows,
                                 int64_t cols)
{
    const cuda_backend *cu = as_cuda(be);
    if (rows == 0 || cols == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_l2_normalize(cu->stream, out, inp, rows, cols),
                           "l2_normalize");
}

dlv_status dlv_cuda_activation(dlv_backend *be, dlv_op_act act, float *out, const float *inp,
                               int64_t n)
{
    const cuda_backend *cu = as_cuda(be);
    if (n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_activation(cu->stream, (dlv_cuk_act)act, out, inp, n),
                           "activation");
}

dlv_status dlv_cuda_swiglu(dlv_backend *be, float *out, const float *gate, const float *up,
                           int64_t n)
{
    const cuda_backend *cu = as_cuda(be);
    if (n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_swiglu(cu->stream, out, gate, up, n), "swiglu");
}

dlv_status dlv_cuda_embedding(dlv_backend *be, float *out, const void *table,
                              dlv_dtype table_dtype, const int32_t *ids, int64_t n_ids,
                              int64_t vocab, int64_t dim)
{
    const cuda_backend *cu = as_cuda(be);
    if (n_ids == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    /* As the CPU: the ids are checked even when dim is 0. */
    st = dlv_cuda_check_index(cu, "embedding", DLV_CUDA_INDEX_IDS, ids, n_ids, vocab);
    if (st != DLV_OK || dim == 0) return st;
    return dlv_cuda_queued(cu, dlv_cuk_embedding(cu->stream, out, table,
                                                 dlv_cuda_param_dtype(table_dtype), ids, n_ids,
                                                 dim),
                           "embedding");
}

dlv_status dlv_cuda_im2col_patches(dlv_backend *be, float *out, const float *pixels, int64_t c,
                                   int64_t h, int64_t w, int64_t patch)
{
    const cuda_backend *cu = as_cuda(be);
    if (c == 0 || h / patch == 0 || w / patch == 0) return DLV_OK; /* out may be NULL */
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_im2col_patches(cu->stream, out, pixels, c, h, w, patch),
                           "im2col_patches");
}
