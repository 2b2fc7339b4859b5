/* Rotary position embedding from per-token cos/sin tables, and its
 * backward. The rotation is cpu_rope.c's, term for term (x1 c + (-x2) s,
 * x2 c + x1 s), so tables holding cosf/sinf of dlv_rope's f32 angles give
 * dlv_rope's bits; only where the angles come from differs (the model
 * builds them: Qwen2-VL's sectioned M-RoPE, the vision tower's 2-D RoPE).
 * The backward is the transpose, the same rotation with the sine negated
 * (exact in f32). Tokens are split over the pool; each token's arithmetic
 * does not depend on the split, so any thread count gives the same bits. */
#include "backend/cpu/cpu_backward.h"
#include "backend/cpu/cpu_internal.h"

typedef struct rope_table_job {
    float *x;
    const float *cos_tab, *sin_tab; /* [n_tokens, head_dim / 2] */
    int64_t n_heads, head_dim;
    float sin_sign;                 /* 1: forward; -1: backward (the transpose) */
} rope_table_job;

static void rope_table_tokens(void *ctx, int64_t begin, int64_t end)
{
    const rope_table_job *j = ctx;
    const int64_t d = j->head_dim, half = d / 2;
    for (int64_t t = begin; t < end; t++) {
        float *row = j->x + t * j->n_heads * d;
        const float *ct = j->cos_tab + t * half, *st = j->sin_tab + t * half;
        for (int64_t i = 0; i < half; i++) {
            const float c = ct[i], s = j->sin_sign * st[i];
            for (int64_t h = 0; h < j->n_heads; h++) {
                float *x = row + h * d;
                const float x1 = x[i], x2 = x[i + half];
                /* q * cos + rotate_half(q) * sin, rotate_half = cat(-x2, x1) */
                x[i] = x1 * c + (-x2) * s;
                x[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

static dlv_status rope_table_run(dlv_backend *be, float *x, const float *cos_tab,
                                 const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                                 int64_t head_dim, float sin_sign)
{
    if (n_tokens == 0 || n_heads == 0) return DLV_OK;
    rope_table_job j = {.x = x, .cos_tab = cos_tab, .sin_tab = sin_tab, .n_heads = n_heads,
                        .head_dim = head_dim, .sin_sign = sin_sign};
    /* As cpu_rope.c: a chunk worth a thread holds about 4096 values. */
    const int64_t grain = 4096 / (n_heads * head_dim) + 1;
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n_tokens, grain, rope_table_tokens, &j);
    return DLV_OK;
}

dlv_status dlv_cpu_rope_table(dlv_backend *be, float *x, const float *cos_tab,
                              const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                              int64_t head_dim)
{
    return rope_table_run(be, x, cos_tab, sin_tab, n_tokens, n_heads, head_dim, 1.0f);
}

dlv_status dlv_cpu_rope_table_backward(dlv_backend *be, float *dx, const float *cos_tab,
                                       const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                                       int64_t head_dim)
{
    return rope_table_run(be, dx, cos_tab, sin_tab, n_tokens, n_heads, head_dim, -1.0f);
}
