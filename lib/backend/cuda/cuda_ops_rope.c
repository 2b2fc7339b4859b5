/* RoPE and its backward on the CUDA backend. The frequencies are computed
 * here, on the host, by the CPU's very expression (cpu/cpu_rope.c:
 * 1 / powf((float)theta, (float)(2i) / (float)d), torch's f32 arithmetic)
 * with the same libm, so the kernel's f32 angles have the CPU's bits: at
 * position 4095 one ulp of inv_freq moves an angle by ~2e-4 rad, more than
 * the tests' tolerance, so a device powf (2 ulp) would not do. They travel
 * as a kernel argument (no copy, no wait) up to head_dim 1024, else through
 * a device scratch. */
#include <math.h>
#include <stdlib.h>

#include "backend/cuda/cuda_kernels_rope.h"
#include "backend/cuda/cuda_ops_rows.h"
#include "backend/cuda/cuda_ops_util.h"

static void rope_inv_freq(float *inv_freq, int64_t head_dim, double theta)
{
    const float base = (float)theta;
    for (int64_t i = 0; i < head_dim / 2; i++) {
        const float e = (float)(2 * i) / (float)head_dim;
        inv_freq[i] = 1.0f / powf(base, e);
    }
}

/* head_dim / 2 > DLV_CUK_ROPE_MAX_HALF: the frequencies through device
 * memory. The host array is freed only after the copy has completed (a
 * copy from pageable memory may still be reading it when cudaMemcpyAsync
 * returns). */
static dlv_status rope_large(const cuda_backend *cu, const char *op, float *x,
                             const int32_t *positions, int64_t n_tokens, int64_t n_heads,
                             int64_t head_dim, double theta, float sin_sign)
{
    const size_t bytes = (size_t)(head_dim / 2) * sizeof(float);
    float *host = malloc(bytes);
    if (!host)
        return cu->host->error(DLV_E_NOMEM, "%s: out of memory allocating %zu bytes of "
                               "frequencies", op, bytes);
    rope_inv_freq(host, head_dim, theta);
    dlv_cuda_scratch sc = {0};
    dlv_status st = dlv_cuda_scratch_alloc(cu, bytes, op, &sc);
    if (st != DLV_OK) {
        free(host);
        return st;
    }
    cudaError_t err = cudaMemcpyAsync(sc.ptr, host, bytes, cudaMemcpyHostToDevice, cu->stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(cu->stream);
    free(host);
    if (err == cudaSuccess)
        err = dlv_cuk_rope(cu->stream, x, positions, n_tokens, n_heads, head_dim, NULL, sc.ptr,
                           sin_sign);
    return dlv_cuda_queued_free(cu, err, &sc, op);
}

/* sin_sign 1: the forward; -1: the backward (R^T, the sine negated). */
static dlv_status rope_run(dlv_backend *be, const char *op, float *x, const int32_t *positions,
                           int64_t n_tokens, int64_t n_heads, int64_t head_dim, double theta,
                           float sin_sign)
{
    const cuda_backend *cu = as_cuda(be);
    if (n_tokens == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    /* As the CPU: the positions are checked even when n_heads is 0. */
    st = dlv_cuda_check_index(cu, op, DLV_CUDA_INDEX_POSITIONS, positions, n_tokens, 0);
    if (st != DLV_OK || n_heads == 0) return st;
    if (head_dim / 2 > DLV_CUK_ROPE_MAX_HALF)
        return rope_large(cu, op, x, positions, n_tokens, n_heads, head_dim, theta, sin_sign);
    float inv_freq[DLV_CUK_ROPE_MAX_HALF];
    rope_inv_freq(inv_freq, head_dim, theta);
    return dlv_cuda_queued(cu, dlv_cuk_rope(cu->stream, x, positions, n_tokens, n_heads,
                                            head_dim, inv_freq, NULL, sin_sign),
                           op);
}

dlv_status dlv_cuda_rope(dlv_backend *be, float *x, const int32_t *positions, int64_t n_tokens,
                         int64_t n_heads, int64_t head_dim, double theta)
{
    return rope_run(be, "rope", x, positions, n_tokens, n_heads, head_dim, theta, 1.0f);
}

dlv_status dlv_cuda_rope_backward(dlv_backend *be, float *dx, const int32_t *positions,
                                  int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                                  double theta)
{
    return rope_run(be, "rope_backward", dx, positions, n_tokens, n_heads, head_dim, theta,
                    -1.0f);
}

/* The table-driven rotation: nothing to compute on the host and no index
 * to check (the tables are values), so it only queues the kernel. */
static dlv_status rope_table_run(dlv_backend *be, const char *op, float *x, const float *cos_tab,
                                 const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                                 int64_t head_dim, float sin_sign)
{
    const cuda_backend *cu = as_cuda(be);
    if (n_tokens == 0 || n_heads == 0) return DLV_OK;
    dlv_status st = dlv_cuda_op_begin(cu);
    if (st != DLV_OK) return st;
    return dlv_cuda_queued(cu, dlv_cuk_rope_table(cu->stream, x, cos_tab, sin_tab, n_tokens,
                                                  n_heads, head_dim, sin_sign),
                           op);
}

dlv_status dlv_cuda_rope_table(dlv_backend *be, float *x, const float *cos_tab,
                               const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                               int64_t head_dim)
{
    return rope_table_run(be, "rope_table", x, cos_tab, sin_tab, n_tokens, n_heads, head_dim,
                          1.0f);
}

dlv_status dlv_cuda_rope_table_backward(dlv_backend *be, float *dx, const float *cos_tab,
                                        const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                                        int64_t head_dim)
{
    return rope_table_run(be, "rope_table_backward", dx, cos_tab, sin_tab, n_tokens, n_heads,
                          head_dim, -1.0f);
}
