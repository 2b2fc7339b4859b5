/* The CUDA backend's backward slots (training) and the loss
 * (cuda_ops_rows.h). Gradients are accumulated (+=) into caller-zeroed
 * buffers, except softmax_cross_entropy's dlogits, which is set, as the
 * wrappers specify. The parameter gradients of the norms and of a bias are
 * column sums over rows, computed by a two-stage reduction through stream-
 * ordered scratch (kernels_norm.cu), not atomics. */
#include "backend/cuda/cuda_kernels_elementwise.h"
#include "backend/cuda/cuda_kernels_embed.h"
#include "backend/cuda/cuda_kernels_loss.h"
#include "backend/cuda/cuda_kernels_norm.h"
#include "backend/cuda/cuda_ops_rows.h"
#include "backend/cuda/cuda_ops_util.h"

dlv_status dlv_cuda_rmsnorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                     const float *dout, const float *inp, const void *weight,
                                     dlv_dtype weight_dtype, int64_t rows, int64_t cols,
                                     float eps)
{
    static const char op[] = "rmsnorm_backward";
    const cuda_backend *cu = as_cuda(be);
    if (rows == 0 || cols == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    dlv_cuda_scratch sc = {0};
    if (dweight) {
        st = dlv_cuda_scratch_alloc(cu, dlv_cuk_norm_bw_scratch_bytes(rows, cols), op, &sc);
        if (st != DLV_OK) return st;
    }
    cudaError_t err = dlv_cuk_rmsnorm_backward(cu->stream, dinp, dweight, dout, inp, weight,
                                               dlv_cuda_param_dtype(weight_dtype), rows, cols,
                                               eps, sc.ptr);
    return dlv_cuda_queued_free(cu, err, &sc, op);
}

dlv_status dlv_cuda_layernorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                       float *dbias, const float *dout, const float *inp,
                                       const void *weight, dlv_dtype param_dtype, int64_t rows,
                                       int64_t cols, float eps)
{
    static const char op[] = "layernorm_backward";
    const cuda_backend *cu = as_cuda(be);
    if (rows == 0 || cols == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    dlv_cuda_scratch sc = {0};
    if (dweight || dbias) {
        st = dlv_cuda_scratch_alloc(cu, dlv_cuk_norm_bw_scratch_bytes(rows, cols), op, &sc);
        if (st != DLV_OK) return st;
    }
    cudaError_t err = dlv_cuk_layernorm_backward(cu->stream, dinp, dweight, dbias, dout, inp,
                                                 weight, dlv_cuda_param_dtype(param_dtype),
                                                 rows, cols, eps, sc.ptr);
    return dlv_cuda_queued_free(cu, err, &sc, op);
}

dlv_status dlv_cuda_l2_normalize_backward(dlv_backend *be, float *dinp, const float *dout,
                                          const float *inp, int64_t rows, int64_t cols)
{
    const cuda_backend *cu = as_cuda(be);
    if (rows == 0 || cols == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_l2_normalize_backward(cu->stream, dinp, dout, inp, rows,
                                                             cols),
                           "l2_normalize_backward");
}

dlv_status dlv_cuda_bias_backward(dlv_backend *be, float *dbias, const float *dout,
                                  int64_t rows, int64_t cols)
{
    static const char op[] = "bias_backward";
    const cuda_backend *cu = as_cuda(be);
    if (rows == 0 || cols == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    dlv_cuda_scratch sc = {0};
    st = dlv_cuda_scratch_alloc(cu, dlv_cuk_norm_bw_scratch_bytes(rows, cols), op, &sc);
    if (st != DLV_OK) return st;
    cudaError_t err = dlv_cuk_bias_backward(cu->stream, dbias, dout, rows, cols, sc.ptr);
    return dlv_cuda_queued_free(cu, err, &sc, op);
}

dlv_status dlv_cuda_activation_backward(dlv_backend *be, dlv_op_act act, float *dinp,
                                        const float *dout, const float *inp, int64_t n)
{
    const cuda_backend *cu = as_cuda(be);
    if (n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_activation_backward(cu->stream, (dlv_cuk_act)act, dinp,
                                                           dout, inp, n),
                           "activation_backward");
}

dlv_status dlv_cuda_swiglu_backward(dlv_backend *be, float *dgate, float *dup,
                                    const float *dout, const float *gate, const float *up,
                                    int64_t n)
{
    const cuda_backend *cu = as_cuda(be);
    if (n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_swiglu_backward(cu->stream, dgate, dup, dout, gate, up, n),
                           "swiglu_backward");
}

dlv_status dlv_cuda_embedding_backward(dlv_backend *be, float *dtable, const float *dout,
                                       const int32_t *ids, int64_t n_ids, int64_t vocab,
                                       int64_t dim)
{
    static const char op[] = "embedding_backward";
    const cuda_backend *cu = as_cuda(be);
    if (n_ids == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    st = dlv_cuda_check_index(cu, op, DLV_CUDA_INDEX_IDS, ids, n_ids, vocab);
    if (st != DLV_OK || dim == 0) return st;
    return dlv_cuda_queued(cu, dlv_cuk_embedding_backward(cu->stream, dtable, dout, ids, n_ids,
                                                          dim),
                           op);
}

dlv_status dlv_cuda_softmax_cross_entropy(dlv_backend *be, float *losses, float *dlogits,
                                          const float *logits, const int32_t *targets,
                                          int64_t n, int64_t vocab, float dscale)
{
    static const char op[] = "softmax_cross_entropy";
    const cuda_backend *cu = as_cuda(be);
    if (n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    /* -1 is an ignored row (loss 0, a zero dlogits row); anything else
     * outside [0, vocab) is an error, as on the CPU. */
    st = dlv_cuda_check_index(cu, op, DLV_CUDA_INDEX_TARGETS, targets, n, vocab);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_softmax_cross_entropy(cu->stream, losses, dlogits, logits,
                                                             targets, n, vocab, dscale),
                           op);
}
