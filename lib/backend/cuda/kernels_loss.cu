/* The softmax cross-entropy of the language-model head, forward and
 * gradient in one pass per row (cpu/cpu_backward.c's xent_rows).
 *
 * Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks
 * it against the CPU where one exists.
 *
 * One block per row: m = max (exact, order-free), then exp(l - m) summed
 * in double, lse = m + log(sum) in double, loss = lse - l[t] rounded once,
 * dlogits = dscale * (exp(l - lse) - onehot) in double rounded once, as the
 * CPU. The reductions have a fixed order (block_sum), so results are
 * reproducible. dlogits may be the logits themselves: l[t] is read before
 * the first barrier, and in the last pass each thread reads an element just
 * before overwriting it, after every other read of the row (the barriers
 * of the reductions lie between). */
#include "backend/cuda/cuda_device.cuh"
#include "backend/cuda/cuda_kernels_loss.h"

using namespace dlv_cuk;

namespace {

__global__ void __launch_bounds__(kBlock)
    xent_kernel(float *losses, float *dlogits, const float *logits, const int32_t *targets,
                int64_t n, int64_t V, float dscale)
{
    __shared__ double red[32];
    __shared__ float redf[32];
    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        const float *l = logits + r * V;
        float *dl = dlogits ? dlogits + r * V : NULL;
        const int32_t t = targets[r]; /* the same for the whole block */
        if (t < 0) {
            if (threadIdx.x == 0) losses[r] = 0.0f;
            if (dl)
                for (int64_t c = threadIdx.x; c < V; c += blockDim.x) dl[c] = 0.0f;
            continue;
        }
        const float lt = l[t]; /* before any thread can overwrite it */
        float mx = -__int_as_float(0x7f800000);
        for (int64_t c = threadIdx.x; c < V; c += blockDim.x) mx = max_nan(mx, l[c]);
        /* A NaN logit makes the maximum, the sum and so the loss NaN, as
         * on the CPU (whose sum goes NaN). */
        const double m = (double)block_max(mx, redf);
        double sum = 0.0;
        for (int64_t c = threadIdx.x; c < V; c += blockDim.x) sum += exp((double)l[c] - m);
        const double lse = m + log(block_sum(sum, red));
        if (threadIdx.x == 0) losses[r] = (float)(lse - (double)lt);
        if (dl) {
            const double ds = (double)dscale;
            for (int64_t c = threadIdx.x; c < V; c += blockDim.x) {
                const double p = exp((double)l[c] - lse);
                dl[c] = (float)(ds * (c == t ? p - 1.0 : p));
            }
        }
    }
}

} // namespace

extern "C" cudaError_t dlv_cuk_softmax_cross_entropy(cudaStream_t s, float *losses,
                                                     float *dlogits, const float *logits,
                                                     const int32_t *targets, int64_t n,
                                                     int64_t vocab, float dscale)
{
    xent_kernel<<<grid_for(n, 1), kBlock, 0, s>>>(losses, dlogits, logits, targets, n, vocab,
                                                  dscale);
    return cudaGetLastError();
}
