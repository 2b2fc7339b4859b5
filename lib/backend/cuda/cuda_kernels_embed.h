/* Launchers of the embedding lookup and its backward (kernels_embed.cu).
 * The ids have been checked against [0, vocab) by the caller
 * (dlv_cuk_first_bad_index) before these are queued; n_ids > 0, dim > 0. */
#ifndef DLV_BACKEND_CUDA_KERNELS_EMBED_H
#define DLV_BACKEND_CUDA_KERNELS_EMBED_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* out[t, :] = table[ids[t], :] widened exactly to f32; table [vocab, dim]
 * stored as dt, at any alignment. */
cudaError_t dlv_cuk_embedding(cudaStream_t s, float *out, const void *table, dlv_cuk_dtype dt,
                              const int32_t *ids, int64_t n_ids, int64_t dim);

/* dtable[ids[t], :] += dout[t, :] (f32), by atomicAdd: repeated ids add up
 * in an unspecified order (within the tests' f32 tolerance of the CPU's
 * token order). */
cudaError_t dlv_cuk_embedding_backward(cudaStream_t s, float *dtable, const float *dout,
                                       const int32_t *ids, int64_t n_ids, int64_t dim);

DLV_CUK_END_DECLS

#endif
