/* Times the CPU backend's compute ops on LLaVA-1.5 shapes: the weight GEMM
 * with F32 / BF16 / F16 weights (GFLOP/s; BF16/F16 include the on-the-fly
 * widening), vision-tower attention, and the row ops. Median of `reps`
 * calls after one warm-up.
 *
 * Usage: bench_ops [reps] [n_threads]   (defaults 5 and 0 = online CPUs) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "core/dtype.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *make(size_t n, uint32_t seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
    return p;
}

typedef dlv_status (*op_fn)(dlv_backend *be, void *ctx);

static double time_op(dlv_backend *be, op_fn fn, void *ctx, int reps)
{
    double t[64];
    if (reps > 64) reps = 64;
    if (fn(be, ctx) != DLV_OK) {
        fprintf(stderr, "op failed: %s\n", dlv_last_error());
        exit(1);
    }
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        (void)fn(be, ctx);
        t[r] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return t[reps / 2];
}

static dlv_status run_matmul(dlv_backend *be, void *ctx)
{
    return dlv_matmul(be, ctx);
}

static dlv_status run_attention(dlv_backend *be, void *ctx)
{
    return dlv_attention(be, ctx);
}

static dlv_status run_attention_bw(dlv_backend *be, void *ctx)
{
    return dlv_attention_backward(be, ctx);
}

typedef struct rows_ctx {
    float *out, *inp, *w;
    int32_t *pos;
    int64_t rows, cols, heads, head_dim;
} rows_ctx;

static dlv_status run_layernorm(dlv_backend *be, void *ctx)
{
    rows_ctx *c = ctx;
    return dlv_layernorm(be, c->out, c->inp, c->w, c->w, DLV_DTYPE_F32, c->rows, c->cols, 1e-5f);
}

static dlv_status run_rmsnorm(dlv_backend *be, void *ctx)
{
    rows_ctx *c = ctx;
    return dlv_rmsnorm(be, c->out, c->inp, c->w, DLV_DTYPE_F32, c->rows, c->cols, 1e-6f);
}

static dlv_status run_gelu(dlv_backend *be, void *ctx)
{
    rows_ctx *c = ctx;
    return dlv_activation(be, DLV_OP_ACT_QUICK_GELU, c->out, c->inp, c->rows * c->cols);
}

static dlv_status run_rope(dlv_backend *be, void *ctx)
{
    rows_ctx *c = ctx;
    return dlv_rope(be, c->out, c->pos, c->rows, c->heads, c->head_dim, 10000.0);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1) reps = 1;
    dlv_backend_config cfg = {.n_threads = argc > 2 ? atoi(argv[2]) : 0};
    dlv_backend *be = NULL;
    if (dlv_backend_create("cpu", &cfg, &be) != DLV_OK) {
        fprintf(stderr, "%s\n", dlv_last_error());
        return 1;
    }
    printf("backend %s\n\n", dlv_backend_describe(be));

    /* nn.Linear on 577 tokens: the vision MLP (1024 -> 4096) and an LLM
     * projection (4096 -> 4096). */
    static const struct { const char *label; int64_t m, n, k; } mm[] = {
        {"vision fc1 577x4096x1024", 577, 4096, 1024},
        {"llm q_proj 577x4096x4096", 577, 4096, 4096},
    };
    static const dlv_dtype dts[] = {DLV_DTYPE_F32, DLV_DTYPE_BF16, DLV_DTYPE_F16};
    printf("%-28s %6s %10s %10s\n", "matmul (x . W^T)", "W", "ms", "GFLOP/s");
    for (size_t s = 0; s < sizeof mm / sizeof mm[0]; s++) {
        float *x = make((size_t)(mm[s].m * mm[s].k), 1);
        float *w = make((size_t)(mm[s].n * mm[s].k), 2);
        float *c = make((size_t)(mm[s].m * mm[s].n), 3);
        size_t nw = (size_t)(mm[s].n * mm[s].k);
        uint16_t *w16 = malloc(nw * sizeof *w16);
        if (!w16) return 1;
        for (size_t d = 0; d < 3; d++) {
            for (size_t i = 0; d > 0 && i < nw; i++)
                w16[i] = d == 1 ? dlv_f32_to_bf16(w[i]) : dlv_f32_to_f16(w[i]);
            dlv_matmul_args a = {.struct_size = sizeof a, .trans_b = DLV_TRANS, .m = mm[s].m,
                                 .n = mm[s].n, .k = mm[s].k, .alpha = 1.0f, .a = x,
                                 .a_dtype = DLV_DTYPE_F32, .lda = mm[s].k,
                                 .b = d ? (const void *)w16 : (const void *)w, .b_dtype = dts[d],
                                 .ldb = mm[s].k, .c = c, .ldc = mm[s].n};
            double ms = time_op(be, run_matmul, &a, reps);
            double gf = 2.0 * (double)mm[s].m * (double)mm[s].n * (double)mm[s].k / (ms * 1e6);
            printf("%-28s %6s %10.2f %10.1f\n", mm[s].label, dlv_dtype_name(dts[d]), ms, gf);
        }
        free(x); free(w); free(c); free(w16);
    }

    /* CLIP ViT-L/14-336: 577 tokens, 16 heads of 64, bidirectional. */
    {
        int64_t T = 577, H = 16, D = 64;
        float *q = make((size_t)(T * H * D), 4), *k = make((size_t)(T * H * D), 5);
        float *v = make((size_t)(T * H * D), 6), *o = make((size_t)(T * H * D), 7);
        dlv_attention_args a = {.struct_size = sizeof a, .out = o, .q = q, .k = k, .v = v,
                                .batch = 1, .n_q = T, .n_kv = T, .n_heads = H, .n_kv_heads = H,
                                .head_dim = D, .scale = 0.125f, .causal = 0};
        double ms = time_op(be, run_attention, &a, reps);
        double gf = 4.0 * (double)(T * T * H * D) / (ms * 1e6);
        printf("\n%-28s %17.2f ms %8.1f GFLOP/s\n", "attention 577 tok 16x64", ms, gf);
        /* Its backward: five products (S again, dV, dP, dQ, dK) of
         * 2 T^2 D FLOPs per head each. */
        float *dq = make((size_t)(T * H * D), 15), *dk = make((size_t)(T * H * D), 16);
        float *dv = make((size_t)(T * H * D), 17);
        dlv_attention_bw_args ab = {.struct_size = sizeof ab, .dq = dq, .dk = dk, .dv = dv,
                                    .dout = o, .q = q, .k = k, .v = v, .batch = 1, .n_q = T,
                                    .n_kv = T, .n_heads = H, .n_kv_heads = H, .head_dim = D,
                                    .scale = 0.125f, .causal = 0};
        ms = time_op(be, run_attention_bw, &ab, reps);
        printf("%-28s %17.2f ms %8.1f GFLOP/s\n", "attention backward, same", ms,
               10.0 * (double)(T * T * H * D) / (ms * 1e6));
        free(dq); free(dk); free(dv);
        a.n_q = a.n_kv = 512; a.n_heads = 32; a.n_kv_heads = 8; a.head_dim = 128; a.causal = 1;
        free(q); free(k); free(v); free(o);
        q = make(512 * 32 * 128, 8); o = make(512 * 32 * 128, 9);
        k = make(512 * 8 * 128, 10); v = make(512 * 8 * 128, 11);
        a.q = q; a.k = k; a.v = v; a.out = o;
        ms = time_op(be, run_attention, &a, reps);
        printf("%-28s %17.2f ms\n", "attention 512 causal 32/8x128", ms);
        float *dq2 = make(512 * 32 * 128, 18), *dk2 = make(512 * 8 * 128, 19);
        float *dv2 = make(512 * 8 * 128, 20);
        dlv_attention_bw_args cb = {.struct_size = sizeof cb, .dq = dq2, .dk = dk2, .dv = dv2,
                                    .dout = o, .q = q, .k = k, .v = v, .batch = 1, .n_q = 512,
                                    .n_kv = 512, .n_heads = 32, .n_kv_heads = 8,
                                    .head_dim = 128, .scale = 0.088f, .causal = 1};
        ms = time_op(be, run_attention_bw, &cb, reps);
        printf("%-28s %17.2f ms\n", "attention backward, causal", ms);
        free(dq2); free(dk2); free(dv2);
        free(q); free(k); free(v); free(o);
    }

    rows_ctx rc = {.rows = 577, .cols = 4096, .heads = 32, .head_dim = 128};
    rc.inp = make((size_t)(rc.rows * rc.cols), 12);
    rc.out = make((size_t)(rc.rows * rc.cols), 13);
    rc.w = make((size_t)rc.cols, 14);
    rc.pos = malloc((size_t)rc.rows * sizeof *rc.pos);
    if (!rc.pos) return 1;
    for (int64_t i = 0; i < rc.rows; i++) rc.pos[i] = (int32_t)i;
    printf("%-28s %17.2f ms\n", "layernorm 577x4096", time_op(be, run_layernorm, &rc, reps));
    printf("%-28s %17.2f ms\n", "rmsnorm 577x4096", time_op(be, run_rmsnorm, &rc, reps));
    printf("%-28s %17.2f ms\n", "quick_gelu 577x4096", time_op(be, run_gelu, &rc, reps));
    printf("%-28s %17.2f ms\n", "rope 577 tok 32x128", time_op(be, run_rope, &rc, reps));
    free(rc.inp); free(rc.out); free(rc.w); free(rc.pos);
    dlv_backend_destroy(be);
    return 0;
}
