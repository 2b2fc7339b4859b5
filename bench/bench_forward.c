/* Times the CPU forward pass on a model directory (meant for the ~100M
 * parameter random checkpoint bench_forward_torch.py writes):
 *   image path: vision tower + projector on a batch of random images, then
 *     the LLM on [BOS + 8 prefix ids + image features + 12 suffix ids]
 *   text path:  the LLM on a batch of 20-token texts (BOS + 19 ids)
 * for batch sizes 1 and 8, median of `reps` after one warm-up. GFLOP/s counts
 * the GEMM FLOPs of the forward analytically (2*M*N*K per GEMM, attention's
 * two products included at full, unmasked size as computed); it is set next
 * to the backend's matmul alone on the largest weight GEMM of the run, with
 * the model's weight dtype (the ceiling the forward can reach).
 *
 * Usage: bench_forward MODEL_DIR [reps] [n_threads] [f32|bf16] [auto|f32|bf16|f16]
 *        (defaults 5, 0 = CPUs, f32: the compute dtype, auto: the weights
 *        held as stored; another dtype converts them at load, as
 *        dlv_model_options_set_weight_dtype) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "model/model.h"
#include "model/weights.h"
#include "model/llava/text_model.h"
#include "model/llava/vision_tower.h"

enum { N_PREFIX = 8, N_SUFFIX = 12, TEXT_LEN = 20, MAX_REPS = 64 };

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

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void fill(float *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
}

static void check(dlv_status st, const char *what)
{
    if (st != DLV_OK) {
        fprintf(stderr, "%s failed: %s\n", what, dlv_last_error());
        exit(1);
    }
}

typedef struct bench {
    const dlv_model *m;
    const dlv_llava_config *c;
    dlv_backend *be;
    int64_t batch;
    int64_t seq;          /* LLM sequence length per row */
    float *pixels, *feats, *embeds, *last;
    int32_t *ids, *lengths;
} bench;

/* ids 1..vocab-1 that are not the image token; deterministic. */
static int32_t token(const dlv_llava_config *c, int64_t i)
{
    int64_t v = 3 + (i * 7919) % (c->text.vocab_size - 3);
    if (v == c->image_token_index) v = 3;
    return (int32_t)v;
}

static int32_t bos(const dlv_llava_config *c)
{
    return c->text.bos_token_id >= 0 ? (int32_t)c->text.bos_token_id : 1;
}

static void run_text(bench *b)
{
    int64_t h = b->c->text.hidden_size;
    check(dlv_text_embed_ids(b->m, b->be, b->ids, b->batch * b->seq, b->embeds,
                             (size_t)(b->batch * b->seq * h)),
          "embed");
    check(dlv_text_forward(b->m, b->be, b->embeds, b->lengths, b->batch, b->seq, b->last,
                           (size_t)(b->batch * h), NULL, 0),
          "text forward");
}

static void run_image(bench *b)
{
    const dlv_llava_config *c = b->c;
    int64_t h = c->text.hidden_size, f = dlv_vision_n_tokens(c);
    int64_t nf = b->batch * f * h;
    check(dlv_vision_features(b->m, b->be, b->pixels, b->batch, b->feats, (size_t)nf),
          "vision");
    for (int64_t i = 0; i < b->batch; i++) {
        float *row = b->embeds + i * b->seq * h;
        const int32_t *ids = b->ids + i * b->seq;
        check(dlv_text_embed_ids(b->m, b->be, ids, 1 + N_PREFIX, row,
                                 (size_t)((1 + N_PREFIX) * h)),
              "embed");
        memcpy(row + (1 + N_PREFIX) * h, b->feats + i * f * h, (size_t)(f * h) * sizeof(float));
        check(dlv_text_embed_ids(b->m, b->be, ids + 1 + N_PREFIX + f, N_SUFFIX,
                                 row + (1 + N_PREFIX + f) * h, (size_t)(N_SUFFIX * h)),
              "embed");
    }
    check(dlv_text_forward(b->m, b->be, b->embeds, b->lengths, b->batch, b->seq, b->last,
                           (size_t)(b->batch * h), NULL, 0),
          "text forward");
}

static double median_ms(void (*fn)(bench *), bench *b, int reps)
{
    double t[MAX_REPS];
    fn(b);
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        fn(b);
        t[r] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return t[reps / 2];
}

static double gemm(double m, double n, double k)
{
    return 2.0 * m * n * k;
}

/* GEMM FLOPs of the LLM on one sequence of n tokens. */
static double text_flops(const dlv_text_config *t, double n)
{
    double h = (double)t->hidden_size, i = (double)t->intermediate_size;
    double hd = (double)t->head_dim, kv = (double)t->num_key_value_heads * hd;
    double q = (double)t->num_attention_heads * hd;
    double layer = gemm(n, q, h) + 2 * gemm(n, kv, h) + gemm(n, h, q) + 3 * gemm(n, i, h) +
                   2 * (double)t->num_attention_heads * gemm(n, n, hd);
    return (double)t->num_hidden_layers * layer;
}

/* GEMM FLOPs of the vision tower (layers that run) + projector, one image. */
static double vision_flops(const dlv_llava_config *c)
{
    const dlv_vision_config *v = &c->vision;
    double s = (double)dlv_vision_seq_len(c), d = (double)v->hidden_size;
    double i = (double)v->intermediate_size, p = (double)v->patch_size;
    double np = (double)(v->image_size / v->patch_size);
    double f = (double)dlv_vision_n_tokens(c), t = (double)c->text.hidden_size;
    double hd = d / (double)v->num_attention_heads;
    double layer = 4 * gemm(s, d, d) + 2 * gemm(s, i, d) +
                   2 * (double)v->num_attention_heads * gemm(s, s, hd);
    return gemm(np * np, d, (double)v->num_channels * p * p) +
           (double)dlv_vision_select_index(c) * layer + gemm(f, t, d) + gemm(f, t, t);
}

typedef struct shape {
    int64_t m, n, k;
    const char *what;
} shape;

/* The backend's matmul alone, C = A * B^T as the weight GEMMs are, B in
 * the checkpoint's dtype; GFLOP/s. */
static double matmul_gflops(dlv_backend *be, shape s, dlv_dtype wdt, int reps)
{
    size_t es = dlv_dtype_size(wdt);
    float *a = xmalloc((size_t)(s.m * s.k) * sizeof(float));
    float *w32 = xmalloc((size_t)(s.n * s.k) * sizeof(float));
    unsigned char *w = xmalloc((size_t)(s.n * s.k) * es);
    float *o = xmalloc((size_t)(s.m * s.n) * sizeof(float));
    double t[MAX_REPS];
    fill(a, (size_t)(s.m * s.k), 1);
    fill(w32, (size_t)(s.n * s.k), 2);
    for (size_t i = 0; i < (size_t)(s.n * s.k); i++) {
        uint16_t h = wdt == DLV_DTYPE_BF16 ? dlv_f32_to_bf16(w32[i]) : dlv_f32_to_f16(w32[i]);
        if (wdt == DLV_DTYPE_F32)
            memcpy(w + 4 * i, &w32[i], 4);
        else
            memcpy(w + 2 * i, &h, 2);
    }
    dlv_matmul_args ma = {.struct_size = sizeof ma, .trans_a = DLV_NO_TRANS,
                          .trans_b = DLV_TRANS, .m = s.m, .n = s.n, .k = s.k, .alpha = 1.0f,
                          .beta = 0.0f, .a = a, .a_dtype = DLV_DTYPE_F32, .lda = s.k, .b = w,
                          .b_dtype = wdt, .ldb = s.k, .c = o, .ldc = s.n};
    for (int r = -1; r < reps; r++) {
        double t0 = now_ms();
        check(dlv_matmul(be, &ma), "matmul");
        if (r >= 0) t[r] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    free(a);
    free(w32);
    free(w);
    free(o);
    return gemm((double)s.m, (double)s.n, (double)s.k) / (t[reps / 2] * 1e6);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [reps] [n_threads] [f32|bf16] [auto|f32|bf16|f16]\n",
                argv[0]);
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    if (reps < 1) reps = 1;
    if (reps > MAX_REPS) reps = MAX_REPS;

    dlv_model *model = NULL;
    const char *weight_dtype = argc > 5 ? argv[5] : "auto";
    dlv_model_options *mo = NULL;
    check(dlv_model_options_new(&mo), "model options");
    check(dlv_model_options_set_weight_dtype(mo, weight_dtype), "weight dtype");
    check(dlv_model_load(argv[1], mo, &model), "load");
    dlv_model_options_free(mo);
    int bf16 = argc > 4 && strcmp(argv[4], "bf16") == 0;
    if (argc > 4 && !bf16 && strcmp(argv[4], "f32") != 0) {
        fprintf(stderr, "compute dtype '%s' is not f32 or bf16\n", argv[4]);
        return 2;
    }
    dlv_backend_config bc = {.device = 0, .n_threads = threads,
                             .compute = bf16 ? DLV_DTYPE_BF16 : DLV_DTYPE_F32};
    dlv_backend *be = NULL;
    check(dlv_backend_create("cpu", &bc, &be), "backend");
    const dlv_llava_config *c = dlv_model_config(model);
    int64_t h = c->text.hidden_size, f = dlv_vision_n_tokens(c);
    int64_t img_seq = 1 + N_PREFIX + f + N_SUFFIX;
    int64_t px = c->vision.num_channels * c->vision.image_size * c->vision.image_size;

    printf("backend %s; weights held %s\n", dlv_backend_describe(be),
           strcmp(weight_dtype, "auto") ? weight_dtype : "as stored");
    printf("image: %lld image tokens, LLM sequence %lld; text: LLM sequence %d\n\n",
           (long long)f, (long long)img_seq, TEXT_LEN);
    printf("%-22s %5s %10s %10s %10s\n", "C (libdisclvlm)", "batch", "ms/batch", "items/s",
           "GFLOP/s");

    const int64_t batches[2] = {1, 8};
    for (int path = 0; path < 2; path++) {
        for (int bi = 0; bi < 2; bi++) {
            bench b = {0};
            b.m = model;
            b.c = c;
            b.be = be;
            b.batch = batches[bi];
            b.seq = path == 0 ? img_seq : TEXT_LEN;
            b.pixels = xmalloc((size_t)(b.batch * px) * sizeof(float));
            b.feats = xmalloc((size_t)(b.batch * f * h) * sizeof(float));
            b.embeds = xmalloc((size_t)(b.batch * b.seq * h) * sizeof(float));
            b.last = xmalloc((size_t)(b.batch * h) * sizeof(float));
            b.ids = xmalloc((size_t)(b.batch * b.seq) * sizeof(int32_t));
            b.lengths = xmalloc((size_t)b.batch * sizeof(int32_t));
            fill(b.pixels, (size_t)(b.batch * px), 7);
            for (int64_t r = 0; r < b.batch; r++) {
                b.lengths[r] = (int32_t)b.seq;
                for (int64_t j = 0; j < b.seq; j++)
                    b.ids[r * b.seq + j] = j == 0 ? bos(c) : token(c, r * b.seq + j);
            }
            double ms = median_ms(path == 0 ? run_image : run_text, &b, reps);
            double fl = (double)b.batch * (path == 0 ? vision_flops(c) + text_flops(&c->text,
                                                                                    (double)img_seq)
                                                     : text_flops(&c->text, TEXT_LEN));
            printf("%-22s %5lld %10.2f %10.2f %10.1f\n", path == 0 ? "images" : "texts",
                   (long long)b.batch, ms, 1e3 * (double)b.batch / ms, fl / (ms * 1e6));
            free(b.pixels);
            free(b.feats);
            free(b.embeds);
            free(b.last);
            free(b.ids);
            free(b.lengths);
        }
    }

    /* The largest weight GEMM at batch 8. */
    int64_t vs = 8 * dlv_vision_seq_len(c), ts = 8 * img_seq;
    shape cand[4] = {
        {vs, c->vision.intermediate_size, c->vision.hidden_size, "vision fc1"},
        {vs, c->vision.hidden_size, c->vision.intermediate_size, "vision fc2"},
        {ts, c->text.intermediate_size, h, "LLM gate/up"},
        {ts, h, c->text.intermediate_size, "LLM down"},
    };
    shape best = cand[0];
    for (int i = 1; i < 4; i++)
        if (gemm((double)cand[i].m, (double)cand[i].n, (double)cand[i].k) >
            gemm((double)best.m, (double)best.n, (double)best.k))
            best = cand[i];
    /* The dtype the weights are held in: converted at load, else the
     * checkpoint's most common one. */
    const dlv_weights *ws = dlv_model_weights(model);
    dlv_dtype wdt = dlv_model_weight_dtype(model);
    if (wdt == DLV_DTYPE_COUNT) {
        wdt = DLV_DTYPE_F32;
        const dlv_dtype floats[3] = {DLV_DTYPE_F32, DLV_DTYPE_BF16, DLV_DTYPE_F16};
        for (int i = 1; i < 3; i++)
            if (ws->dtype_count[floats[i]] > ws->dtype_count[wdt]) wdt = floats[i];
    }
    printf("\nmatmul alone, %s [%lld x %lld] x [%lld x %lld %s]^T: %.1f GFLOP/s\n", best.what,
           (long long)best.m, (long long)best.k, (long long)best.n, (long long)best.k,
           dlv_dtype_name(wdt), matmul_gflops(be, best, wdt, reps));
    dlv_backend_destroy(be);
    dlv_model_free(model);
    return 0;
}
