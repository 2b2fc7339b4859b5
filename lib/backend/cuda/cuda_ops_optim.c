/* The CUDA backend's optimizer slots and its device-to-device copy
 * (cuda_ops_rows.h). The sum of squares is written to device memory (the
 * trainer gathers one double per parameter range and downloads them once),
 * as dlv_sum_squares specifies; nothing here waits for the device. */
#include "backend/cuda/cuda_kernels_optim.h"
#include "backend/cuda/cuda_ops_rows.h"
#include "backend/cuda/cuda_ops_util.h"

_Static_assert(DLV_CUK_SUM_SQUARES_BLOCK == DLV_SUM_SQUARES_BLOCK,
               "the cuda sum of squares uses the CPU's blocks");

dlv_status dlv_cuda_adamw_update(dlv_backend *be, const dlv_adamw_args *a)
{
    const cuda_backend *cu = as_cuda(be);
    if (a->n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_adamw(cu->stream, a->params, a->m, a->v, a->grads, a->n,
                                             a->step_size, a->beta1, a->beta2, a->eps,
                                             a->bc2_sqrt, a->decay_mul, a->grad_scale),
                           "adamw_update");
}

dlv_status dlv_cuda_sgd_update(dlv_backend *be, float *params, const float *grads, int64_t n,
                               float lr, float weight_decay, float grad_scale)
{
    const cuda_backend *cu = as_cuda(be);
    if (n == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_sgd(cu->stream, params, grads, n, lr, weight_decay,
                                           grad_scale),
                           "sgd_update");
}

dlv_status dlv_cuda_sum_squares(dlv_backend *be, double *out, const float *x, int64_t n)
{
    static const char op[] = "sum_squares";
    const cuda_backend *cu = as_cuda(be);
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    if (n == 0) /* 0.0 is all zero bits */
        return dlv_cuda_queued(cu, cudaMemsetAsync(out, 0, sizeof *out, cu->stream), op);
    dlv_cuda_scratch sc = {0};
    st = dlv_cuda_scratch_alloc(cu, dlv_cuk_sum_squares_scratch_bytes(n), op, &sc);
    if (st != DLV_OK) return st;
    cudaError_t err = dlv_cuk_sum_squares(cu->stream, out, x, n, sc.ptr);
    return dlv_cuda_queued_free(cu, err, &sc, op);
}

/* Queued on this instance's stream like the ops, so it is ordered after
 * the work that wrote src here. (Buffers of another instance on the same
 * device are allowed by dlv_buffer_copy; work of that instance's stream is
 * not waited for, which is why model weights are uploaded synchronously.) */
dlv_status dlv_cuda_copy(dlv_backend *be, dlv_buffer *dst, size_t dst_offset,
                         const dlv_buffer *src, size_t src_offset, size_t size)
{
    const cuda_backend *cu = as_cuda(be);
    if (size == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    cudaError_t err = cudaMemcpyAsync((char *)dst->ptr + dst_offset,
                                      (const char *)src->ptr + src_offset, size,
                                      cudaMemcpyDeviceToDevice, cu->stream);
    return dlv_cuda_queued(cu, err, "cudaMemcpyAsync (device to device)");
}
