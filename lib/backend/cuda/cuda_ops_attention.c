/* The CUDA backend's fused attention, forward and backward
 * (kernels_attention.cu describes the kernels): f32 throughout, as the
 * CPU's cpu_flash.c / cpu_flash_bw.c compute it, with nothing of size
 * n_q x n_kv in memory. head_dim up to DLV_CUK_ATTN_MAX_HEAD_DIM (256, every
 * LLaVA / CLIP model); a larger one is DLV_E_UNSUPPORTED naming it. The
 * backward keeps each query row's softmax maximum, sum and dO . O in a
 * small stream-ordered scratch (3 floats per row and head), and adds into
 * dq, dk and dv (+=) in a fixed order, without atomics.
 *
 * Status: compiled, not yet run on a GPU; tests/backend/test_ops_backends.c
 * checks both against the CPU (masks, causal with n_q != n_kv, GQA). */
#include <cuda_runtime_api.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_kernels_attention.h"
#include "backend/cuda/cuda_ops_attention.h"
#include "backend/cuda/cuda_ops_util.h"

static dlv_status check_head_dim(const cuda_backend *cu, const char *op, int64_t head_dim)
{
    if (head_dim > DLV_CUK_ATTN_MAX_HEAD_DIM)
        return cu->host->error(DLV_E_UNSUPPORTED,
                               "%s: head_dim %lld is not supported on backend cuda (at most %d)",
                               op, (long long)head_dim, DLV_CUK_ATTN_MAX_HEAD_DIM);
    return DLV_OK;
}

dlv_status dlv_cuda_attention(dlv_backend *be, const dlv_attention_args *a)
{
    cuda_backend *cu = as_cuda(be);
    dlv_status st = check_head_dim(cu, "attention", a->head_dim);
    if (st != DLV_OK) return st;
    /* No query row: nothing to write. */
    if (a->batch == 0 || a->n_q == 0) return DLV_OK;
    if ((st = dlv_cuda_op_begin(cu)) != DLV_OK) return st;
    if (a->n_kv == 0) {
        /* No key at all: every row gets zeros (documented); k and v may be
         * NULL. out is contiguous [batch * n_q, n_heads * head_dim]. */
        size_t bytes = (size_t)(a->batch * a->n_q) * (size_t)(a->n_heads * a->head_dim) *
                       sizeof(float);
        return dlv_cuda_queued(cu, cudaMemsetAsync(a->out, 0, bytes, cu->stream),
                               "attention: cudaMemsetAsync");
    }
    dlv_cuk_attn k = {.out = a->out, .q = a->q, .k = a->k, .v = a->v,
                      .key_mask = a->key_mask, .batch = a->batch, .n_q = a->n_q,
                      .n_kv = a->n_kv, .n_heads = a->n_heads, .n_kv_heads = a->n_kv_heads,
                      .head_dim = a->head_dim, .scale = a->scale, .causal = a->causal};
    return dlv_cuda_queued(cu, dlv_cuk_attention_forward(cu->stream, &k), "attention kernel");
}

dlv_status dlv_cuda_attention_backward(dlv_backend *be, const dlv_attention_bw_args *a)
{
    cuda_backend *cu = as_cuda(be);
    dlv_status st = check_head_dim(cu, "attention_backward", a->head_dim);
    if (st != DLV_OK) return st;
    /* No keys or no queries: the output was constant (zeros), no gradient. */
    if (a->batch == 0 || a->n_q == 0 || a->n_kv == 0) return DLV_OK;
    if ((st = dlv_cuda_op_begin(cu)) != DLV_OK) return st;
    /* batch * n_q * n_heads * head_dim floats are addressable (the
     * wrapper checked), so rows fits; 3 floats a row might not, in theory. */
    const size_t rows = (size_t)a->batch * (size_t)a->n_heads * (size_t)a->n_q;
    if (rows > SIZE_MAX / (3 * sizeof(float)))
        return cu->host->error(DLV_E_NOMEM, "attention_backward: %zu query rows are too many",
                               rows);
    dlv_cuda_scratch stats;
    st = dlv_cuda_scratch_alloc(cu, 3 * rows * sizeof(float), "attention_backward row statistics",
                                &stats);
    if (st != DLV_OK) return st;
    dlv_cuk_attn k = {.dq = a->dq, .dk = a->dk, .dv = a->dv, .dout = a->dout, .q = a->q,
                      .k = a->k, .v = a->v, .key_mask = a->key_mask, .row_stats = stats.ptr,
                      .batch = a->batch, .n_q = a->n_q, .n_kv = a->n_kv,
                      .n_heads = a->n_heads, .n_kv_heads = a->n_kv_heads,
                      .head_dim = a->head_dim, .scale = a->scale, .causal = a->causal};
    return dlv_cuda_queued_free(cu, dlv_cuk_attention_backward(cu->stream, &k), &stats,
                                "attention_backward kernels");
}
