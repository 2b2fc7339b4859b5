/* Rotary position embedding, Hugging Face's rotate-half layout, and its
 * backward. The frequencies and angles are computed in f32 exactly as
 * transformers' _compute_default_rope_parameters and
 * LlamaRotaryEmbedding.forward do (torch float32 ops), so angles at large
 * positions carry the same rounding as the reference rather than a more
 * exact but different value.
 *
 * The forward is x1' = x1 c - x2 s, x2' = x2 c + x1 s; the backward is its
 * transpose, dx1 = g1 c + g2 s, dx2 = g2 c - g1 s: the same rotation with
 * the sine negated (exact in f32), so both run the code below with the same
 * f32 angles. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_backward.h"
#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

typedef struct rope_job {
    float *x;
    const int32_t *positions;
    const float *inv_freq; /* [half] */
    int64_t n_heads, head_dim;
    float sin_sign;        /* 1: forward; -1: backward (the transpose) */
} rope_job;

static void rope_tokens(void *ctx, int64_t begin, int64_t end)
{
    const rope_job *j = ctx;
    int64_t d = j->head_dim, half = d / 2;
    for (int64_t t = begin; t < end; t++) {
        float pos = (float)j->positions[t];
        float *row = j->x + t * j->n_heads * d;
        for (int64_t i = 0; i < half; i++) {
            /* freqs = inv_freq @ position (an f32 product), emb = cat(freqs,
             * freqs), cos/sin of it: column i and i + half share the angle. */
            float a = pos * j->inv_freq[i];
            float c = cosf(a), s = j->sin_sign * sinf(a);
            for (int64_t h = 0; h < j->n_heads; h++) {
                float *x = row + h * d;
                float x1 = x[i], x2 = x[i + half];
                /* q * cos + rotate_half(q) * sin, rotate_half = cat(-x2, x1) */
                x[i] = x1 * c + (-x2) * s;
                x[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

static dlv_status rope_run(dlv_backend *be, const char *op, float *x,
                           const int32_t *positions, int64_t n_tokens, int64_t n_heads,
                           int64_t head_dim, double theta, float sin_sign)
{
    dlv_status st = dlv_cpu_check_positions(op, positions, n_tokens);
    if (st) return st;
    if (n_tokens == 0 || n_heads == 0) return DLV_OK;
    int64_t half = head_dim / 2;
    float *inv_freq = malloc((size_t)half * sizeof *inv_freq);
    if (!inv_freq) return dlv_error_nomem("rope frequencies", (size_t)half * sizeof(float));
    /* inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)):
     * an f32 exponent, the base taken to f32 by torch.pow, an f32 divide. */
    float base = (float)theta;
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        inv_freq[i] = 1.0f / powf(base, e);
    }
    rope_job j = {.x = x, .positions = positions, .inv_freq = inv_freq, .n_heads = n_heads,
                  .head_dim = head_dim, .sin_sign = sin_sign};
    int64_t grain = 4096 / (n_heads * head_dim) + 1;
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n_tokens, grain, rope_tokens, &j);
    free(inv_freq);
    return DLV_OK;
}

dlv_status dlv_cpu_rope(dlv_backend *be, float *x, const int32_t *positions, int64_t n_tokens,
                        int64_t n_heads, int64_t head_dim, double theta)
{
    return rope_run(be, "rope", x, positions, n_tokens, n_heads, head_dim, theta, 1.0f);
}

dlv_status dlv_cpu_rope_backward(dlv_backend *be, float *dx, const int32_t *positions,
                                 int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                                 double theta)
{
    return rope_run(be, "rope_backward", dx, positions, n_tokens, n_heads, head_dim, theta,
                    -1.0f);
}
