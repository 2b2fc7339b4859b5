/* The embedding lookup (token ids to rows of a F32/BF16/F16 table, widened
 * exactly) and its backward (a scatter-add into the f32 table gradient).
 *
 * Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks
 * it against the CPU where one exists.
 *
 * The ids were range-checked before the launch (kernels_index.cu), so every
 * table access is inside [0, vocab * dim). */
#include "backend/cuda/cuda_device.cuh"
#include "backend/cuda/cuda_kernels_embed.h"

using namespace dlv_cuk;

namespace {

/* One block per token (grid-stride over tokens), the row's columns over the
 * threads: reads and writes of a row are contiguous. */
__global__ void __launch_bounds__(kBlock)
    embedding_kernel(float *out, const void *table, int dt, const int32_t *ids, int64_t n_ids,
                     int64_t dim)
{
    for (int64_t t = blockIdx.x; t < n_ids; t += gridDim.x) {
        const int64_t base = (int64_t)ids[t] * dim;
        float *o = out + t * dim;
        for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) o[c] = ld_param(table, dt, base + c);
    }
}

/* A deterministic alternative (each column summed over the tokens in order,
 * as the CPU) serialises n_ids dependent updates per column; atomics keep
 * the backward as parallel as the lookup. */
__global__ void __launch_bounds__(kBlock)
    embedding_bw_kernel(float *dtable, const float *dout, const int32_t *ids, int64_t n_ids,
                        int64_t dim)
{
    for (int64_t t = blockIdx.x; t < n_ids; t += gridDim.x) {
        float *dst = dtable + (int64_t)ids[t] * dim;
        const float *src = dout + t * dim;
        for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) atomicAdd(dst + c, src[c]);
    }
}

} // namespace

extern "C" cudaError_t dlv_cuk_embedding(cudaStream_t s, float *out, const void *table,
                                         dlv_cuk_dtype dt, const int32_t *ids, int64_t n_ids,
                                         int64_t dim)
{
    embedding_kernel<<<grid_for(n_ids, 1), kBlock, 0, s>>>(out, table, (int)dt, ids, n_ids, dim);
    return cudaGetLastError();
}

extern "C" cudaError_t dlv_cuk_embedding_backward(cudaStream_t s, float *dtable,
                                                  const float *dout, const int32_t *ids,
                                                  int64_t n_ids, int64_t dim)
{
    embedding_bw_kernel<<<grid_for(n_ids, 1), kBlock, 0, s>>>(dtable, dout, ids, n_ids, dim);
    return cudaGetLastError();
}
