/* The range check of index arguments (ids, positions, targets) on the
 * device; the op files read its one-word answer back and, for a bad index,
 * fail with the CPU's message (cpu/cpu_index_check.c) before launching the
 * op itself.
 *
 * Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks
 * it against the CPU where one exists. */
#include "backend/cuda/cuda_device.cuh"
#include "backend/cuda/cuda_kernels_index.h"

using namespace dlv_cuk;

namespace {

/* atomicMin of positions: the result is the smallest bad position whatever
 * the schedule. A thread that has found one stops (later positions of its
 * own stride cannot be smaller). */
__global__ void __launch_bounds__(kBlock)
    first_bad_kernel(const int32_t *idx, int64_t n, int64_t lo, int64_t hi,
                     unsigned long long *first_bad)
{
    for (int64_t t = gs_begin(); t < n; t += gs_stride()) {
        const int64_t v = idx[t];
        if (v < lo || v >= hi) {
            atomicMin(first_bad, (unsigned long long)t);
            return;
        }
    }
}

} // namespace

extern "C" cudaError_t dlv_cuk_first_bad_index(cudaStream_t s, const int32_t *idx, int64_t n,
                                               int64_t lo, int64_t hi,
                                               unsigned long long *first_bad)
{
    first_bad_kernel<<<grid_for(n, kBlock), kBlock, 0, s>>>(idx, n, lo, hi, first_bad);
    return cudaGetLastError();
}
