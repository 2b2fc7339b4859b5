/* Backward ops on the CPU that are not norms, attention or RoPE (beside
 * their forwards in cpu_norm_bw.c, cpu_attention_bw.c, cpu_rope.c): the
 * activations, SwiGLU, the embedding lookup and the softmax cross-entropy.
 * Each derivative is the formula PyTorch's autograd (ATen's *_backward
 * kernels) evaluates in f32; reductions are in double. Work is split over
 * the backend's pool so that no two threads write the same element and
 * every value is independent of the split. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backward.h"
#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

/* Elements per chunk of the elementwise ops. */
#define ELEM_GRAIN 16384

/* ---- activations -------------------------------------------------------- */

/* act'(x), as ATen's backward kernels compute it in f32. */
static float act_grad(dlv_op_act act, float x)
{
    switch (act) {
    case DLV_OP_ACT_QUICK_GELU: {
        /* x * sigmoid(1.702 x) through autograd: s + x * 1.702 * s (1 - s). */
        float s = 1.0f / (1.0f + expf(-(1.702f * x)));
        return s + x * (1.702f * (s * (1.0f - s)));
    }
    case DLV_OP_ACT_GELU: {
        /* GeluBackward: cdf + x * pdf, pdf = exp(-x^2 / 2) / sqrt(2 pi). */
        const float alpha = (float)M_SQRT1_2;
        const float beta = (float)(M_2_SQRTPI * M_SQRT1_2 * 0.5);
        float cdf = 0.5f * (1.0f + erff(x * alpha));
        float pdf = beta * expf(x * x * -0.5f);
        return cdf + x * pdf;
    }
    case DLV_OP_ACT_GELU_TANH: {
        /* GeluBackward(approximate='tanh'). */
        const float beta = (float)(M_SQRT2 * M_2_SQRTPI * 0.5);
        const float kappa = 0.044715f;
        float x_sq = x * x, x_cube = x_sq * x;
        float inner = beta * (x + kappa * x_cube);
        float t = tanhf(inner);
        float left = 0.5f * x, right = 1.0f + t;
        float left_d = 0.5f * right;
        float right_d = 1.0f - t * t;
        float inner_d = beta * (1.0f + 3.0f * kappa * x_sq);
        return left_d + left * right_d * inner_d;
    }
    case DLV_OP_ACT_RELU:
        /* threshold_backward on the output: zero where relu(x) <= 0, so NaN
         * passes the gradient on, as in torch. */
        return x <= 0.0f ? 0.0f : 1.0f;
    default: { /* DLV_OP_ACT_SILU: silu_backward */
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    }
}

typedef struct elem_bw_job {
    dlv_op_act act;
    float *dinp, *dup;
    const float *dout, *inp, *up;
} elem_bw_job;

static void act_bw_range(void *ctx, int64_t begin, int64_t end)
{
    const elem_bw_job *j = ctx;
    if (j->act == DLV_OP_ACT_RELU) {
        /* Select, not multiply: an infinite gradient times 0 is not 0. */
        for (int64_t i = begin; i < end; i++)
            if (!(j->inp[i] <= 0.0f)) j->dinp[i] += j->dout[i];
        return;
    }
    for (int64_t i = begin; i < end; i++)
        j->dinp[i] += j->dout[i] * act_grad(j->act, j->inp[i]);
}

dlv_status dlv_cpu_activation_backward(dlv_backend *be, dlv_op_act act, float *dinp,
                                       const float *dout, const float *inp, int64_t n)
{
    elem_bw_job j = {.act = act, .dinp = dinp, .dout = dout, .inp = inp};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n, ELEM_GRAIN, act_bw_range, &j);
    return DLV_OK;
}

/* out = silu(gate) * up: dup += dout * silu(gate) (the forward's f32 silu),
 * dgate += silu_backward(dout * up, gate). */
static void swiglu_bw_range(void *ctx, int64_t begin, int64_t end)
{
    const elem_bw_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        float x = j->inp[i], g = j->dout[i];
        float s = 1.0f / (1.0f + expf(-x));
        float silu = x / (1.0f + expf(-x));
        float dy = g * j->up[i];
        j->dinp[i] += dy * s * (1.0f + x * (1.0f - s));
        j->dup[i] += g * silu;
    }
}

dlv_status dlv_cpu_swiglu_backward(dlv_backend *be, float *dgate, float *dup,
                                   const float *dout, const float *gate, const float *up,
                                   int64_t n)
{
    elem_bw_job j = {.dinp = dgate, .dup = dup, .dout = dout, .inp = gate, .up = up};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n, ELEM_GRAIN, swiglu_bw_range, &j);
    return DLV_OK;
}

/* ---- embedding ---------------------------------------------------------- */

typedef struct embed_bw_job {
    float *dtable;
    const float *dout;
    const int32_t *ids;
    int64_t n_ids, dim;
} embed_bw_job;

/* Columns [begin, end) of every token, in token order: repeated ids add up
 * in the same order whatever the split, and no two threads share a column. */
static void embed_bw_cols(void *ctx, int64_t begin, int64_t end)
{
    const embed_bw_job *j = ctx;
    for (int64_t t = 0; t < j->n_ids; t++) {
        float *dst = j->dtable + (int64_t)j->ids[t] * j->dim;
        const float *src = j->dout + t * j->dim;
        for (int64_t c = begin; c < end; c++) dst[c] += src[c];
    }
}

dlv_status dlv_cpu_embedding_backward(dlv_backend *be, float *dtable, const float *dout,
                                      const int32_t *ids, int64_t n_ids, int64_t vocab,
                                      int64_t dim)
{
    dlv_status st = dlv_cpu_check_ids("embedding_backward", ids, n_ids, vocab);
    if (st) return st;
    if (n_ids == 0 || dim == 0) return DLV_OK;
    embed_bw_job j = {.dtable = dtable, .dout = dout, .ids = ids, .n_ids = n_ids, .dim = dim};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), dim, 16384 / n_ids + 1, embed_bw_cols, &j);
    return DLV_OK;
}

/* ---- softmax cross-entropy ---------------------------------------------- */

typedef struct xent_job {
    float *losses, *dlogits;
    const float *logits;
    const int32_t *targets;
    int64_t vocab;
    float dscale;
} xent_job;

/* Per row: m = max, lse = m + log(sum exp(l - m)) with exp and the sum in
 * double; loss = lse - l[t]; dlogits = dscale (exp(l - lse) - onehot), each
 * rounded to f32 once. dlogits may be the logits: every logit of the row is
 * read (max, sum, target) before its slot is overwritten, and the final pass
 * reads each element just before writing it. */
static void xent_rows(void *ctx, int64_t begin, int64_t end)
{
    const xent_job *j = ctx;
    int64_t V = j->vocab;
    for (int64_t r = begin; r < end; r++) {
        const float *l = j->logits + r * V;
        float *dl = j->dlogits ? j->dlogits + r * V : NULL;
        int32_t t = j->targets[r];
        if (t < 0) {
            j->losses[r] = 0.0f;
            if (dl) memset(dl, 0, (size_t)V * sizeof *dl);
            continue;
        }
        /* A NaN logit makes the sum (and so the loss) NaN below. */
        float mx = l[0];
        for (int64_t c = 1; c < V; c++)
            if (l[c] > mx) mx = l[c];
        double m = (double)mx, sum = 0.0;
        for (int64_t c = 0; c < V; c++) sum += exp((double)l[c] - m);
        double lse = m + log(sum);
        j->losses[r] = (float)(lse - (double)l[t]);
        if (dl) {
            double ds = (double)j->dscale;
            for (int64_t c = 0; c < V; c++) {
                double p = exp((double)l[c] - lse);
                dl[c] = (float)(ds * (c == t ? p - 1.0 : p));
            }
        }
    }
}

dlv_status dlv_cpu_softmax_cross_entropy(dlv_backend *be, float *losses, float *dlogits,
                                         const float *logits, const int32_t *targets,
                                         int64_t n, int64_t vocab, float dscale)
{
    dlv_status st = dlv_cpu_check_targets("softmax_cross_entropy", targets, n, vocab);
    if (st) return st;
    xent_job j = {.losses = losses, .dlogits = dlogits, .logits = logits, .targets = targets,
                  .vocab = vocab, .dscale = dscale};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n, 16384 / (vocab > 0 ? vocab : 1) + 1, xent_rows,
                     &j);
    return DLV_OK;
}
