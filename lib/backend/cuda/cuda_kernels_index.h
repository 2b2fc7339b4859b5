/* Launcher of the range check of index arguments (kernels_index.cu): token
 * ids, RoPE positions and loss targets are device memory, so the checked
 * wrappers cannot read them and the op checks them on the device before
 * writing anything (docs/backends.md, "Conventions"). */
#ifndef DLV_BACKEND_CUDA_KERNELS_INDEX_H
#define DLV_BACKEND_CUDA_KERNELS_INDEX_H

#include "backend/cuda/cuda_kernels_common.h"

DLV_CUK_BEGIN_DECLS

/* *first_bad (device memory, one unsigned long long, which the caller sets
 * to ~0ull first) becomes the smallest t < n with idx[t] outside [lo, hi),
 * and stays ~0ull if there is none. The minimum, whatever the order the
 * threads run in: the message names the first bad index, as the CPU's
 * sequential check does. n > 0. */
cudaError_t dlv_cuk_first_bad_index(cudaStream_t s, const int32_t *idx, int64_t n, int64_t lo,
                                    int64_t hi, unsigned long long *first_bad);

DLV_CUK_END_DECLS

#endif
