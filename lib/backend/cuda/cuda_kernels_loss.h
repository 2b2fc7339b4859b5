/* Launcher of the softmax cross-entropy (kernels_loss.cu). The targets have
 * been checked (-1 or in [0, vocab)) by the caller before this is queued;
 * n > 0. */
#ifndef DLV_BACKEND_CUDA_KERNELS_LOSS_H
#define DLV_BACKEND_CUDA_KERNELS_LOSS_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* Per row i of logits [n, vocab]: losses[i] = logsumexp - logits[i, t]
 * (t = targets[i]; -1: loss 0), and when dlogits is non-NULL (it may be
 * logits) it is SET to dscale * (softmax - onehot(t)), a zero row for an
 * ignored target. vocab may be 0 only if every target is -1. */
cudaError_t dlv_cuk_softmax_cross_entropy(cudaStream_t s, float *losses, float *dlogits,
                                          const float *logits, const int32_t *targets,
                                          int64_t n, int64_t vocab, float dscale);

DLV_CUK_END_DECLS

#endif
