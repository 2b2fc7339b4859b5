/* The language model's training pass (lib/train/text_train.c) on tiny
 * generated checkpoints:
 *
 *   test_text_train CKPT_DIR [CKPT_DIR ...]
 *
 * (1) the train forward's hidden states at real positions equal
 *     dlv_text_forward_lora's (|err| <= 1e-6), with and without a LoRA
 *     adapter (random nonzero A and B), right-padded rows of mixed lengths,
 *     with and without recomputation;
 * (2) gradients against central finite differences of the scalar
 *     L = sum over real positions of r . hidden (r fixed random, L summed in
 *     double): for the input embeddings, every LoRA A and B, and every weight
 *     of the language model (norms, q/k/v/o, gate/up/down, biases where the
 *     checkpoint has them) through a weight view of f32 copies with gradient
 *     buffers. Perturbations are in f32 (eps 1e-3; the difference quotient
 *     divides by the step actually taken). Per tensor 24 elements are checked:
 *     the 12 with the largest analytic gradient and 12 uniformly random ones;
 *     per tensor sum |fd - g| <= FD_TOL sum |fd| + 24 FD_ATOL (aggregate
 *     relative error 2e-2 with an absolute floor for the f32 forward's noise,
 *     which makes single small elements unreliable);
 * (3) recompute = 1 gives the same gradients as recompute = 0;
 * (4) padding: other values in the padded embeddings and garbage in dhidden
 *     at padded positions change no gradient, and dembeds stays zero there;
 * plus argument errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "disclvlm.h"
#include "io/safetensors.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/text_model.h"
#include "train/text_train.h"
#include "train/wview.h"

#define FWD_TOL 1e-6
#define FD_EPS 1e-3f
#define FD_TOL 2e-2
/* The f32 noise floor of one difference quotient: L's rounding (~1e-6) over
 * 2 eps; only matters for tensors whose gradients are all small (k_proj's
 * bias: softmax is nearly invariant to it). */
#define FD_ATOL 2e-3
#define N_TOP 12
#define N_RANDOM 12

static char *ckpts[8];
static int n_ckpts;

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Uniform in [-a, a). */
static float urand(float a)
{
    return (float)(((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0) * (double)a);
}

static void check_ok(dlv_status st)
{
    if (st != DLV_OK) fprintf(stderr, "unexpected error: %s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

/* A model with its inputs: a right-padded batch of mixed lengths, a
 * direction r for the loss, a random LoRA (all modules) and its gradient,
 * and a view of f32 copies of every language-model weight (embed_tokens
 * excepted) with gradient buffers. */
typedef struct fixture {
    const char *dir;
    dlv_model *m;
    dlv_backend *be;
    const dlv_text_config *t;
    int64_t batch, len, n, H;
    int32_t lengths[3];
    float *embeds, *r;
    dlv_lora lora, lgrad;
    size_t nw;
    dlv_st_tensor *vt;
    const dlv_st_tensor **vals;
    float **vdata, **grads;
    dlv_wview frozen, trained;
} fixture;

static int is_real(const fixture *f, size_t row)
{
    const size_t b = row / (size_t)f->len, i = row % (size_t)f->len;
    return (int64_t)i < f->lengths[b];
}

static void fixture_init(fixture *f, const char *dir, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    rng_seed(seed);
    f->dir = dir;
    if (dlv_model_load(dir, NULL, &f->m) != DLV_OK) {
        fprintf(stderr, "%s: %s\n", dir, dlv_last_error());
        fail();
    }
    f->be = dlv_model_backend(f->m);
    f->t = &dlv_model_config(f->m)->text;
    f->batch = 3;
    f->len = 6;
    f->n = f->batch * f->len;
    f->H = f->t->hidden_size;
    f->lengths[0] = 6;
    f->lengths[1] = 3;
    f->lengths[2] = 1;
    const size_t plane = (size_t)(f->n * f->H);
    f->embeds = xcalloc(plane, sizeof(float));
    f->r = xcalloc(plane, sizeof(float));
    for (size_t i = 0; i < plane; i++) {
        f->embeds[i] = urand(0.5f);
        f->r[i] = is_real(f, i / (size_t)f->H) ? urand(1.0f) : 0.0f;
    }
    check_ok(dlv_lora_create(f->t, 4, 8.0, 0, DLV_LORA_ALL, &f->lora));
    check_ok(dlv_lora_create(f->t, 4, 8.0, 0, DLV_LORA_ALL, &f->lgrad));
    for (size_t i = 0; i < f->lora.n_params; i++) f->lora.params[i] = urand(0.1f);

    const dlv_weights *w = dlv_model_weights(f->m);
    f->nw = w->n;
    f->vt = xcalloc(w->n, sizeof *f->vt);
    f->vals = xcalloc(w->n, sizeof *f->vals);
    f->vdata = xcalloc(w->n, sizeof *f->vdata);
    f->grads = xcalloc(w->n, sizeof *f->grads);
    for (size_t i = 0; i < w->n; i++) {
        const dlv_weight *it = &w->items[i];
        if (it->part != DLV_PART_TEXT || !it->tensor ||
            strcmp(it->canonical, "embed_tokens.weight") == 0)
            continue;
        const uint64_t ne = it->tensor->n_elements;
        f->vdata[i] = xcalloc(ne, sizeof(float));
        f->grads[i] = xcalloc(ne, sizeof(float));
        check_ok(dlv_st_read_f32(it->tensor, 0, ne, f->vdata[i]));
        f->vt[i] = *it->tensor;
        f->vt[i].dtype = DLV_DTYPE_F32;
        f->vt[i].n_bytes = ne * sizeof(float);
        f->vt[i].data = f->vdata[i];
        f->vals[i] = &f->vt[i];
    }
    f->frozen = dlv_wview_frozen(w);
    f->trained = (dlv_wview){w, f->vals, f->grads};
}

static void fixture_free(fixture *f)
{
    for (size_t i = 0; i < f->nw; i++) {
        free(f->vdata[i]);
        free(f->grads[i]);
    }
    free(f->vt);
    free(f->vals);
    free(f->vdata);
    free(f->grads);
    dlv_lora_free(&f->lora);
    dlv_lora_free(&f->lgrad);
    free(f->embeds);
    free(f->r);
    dlv_model_free(f->m);
}

static void zero_grads(fixture *f)
{
    for (size_t i = 0; i < f->nw; i++)
        if (f->grads[i])
            memset(f->grads[i], 0, f->vt[i].n_elements * sizeof(float));
    memset(f->lgrad.params, 0, f->lgrad.n_params * sizeof(float));
}

/* L = sum over real positions of r . hidden, in double. */
static double loss(fixture *f, const dlv_wview *v, const dlv_lora *l, const float *emb)
{
    const size_t plane = (size_t)(f->n * f->H);
    float *hidden = xcalloc(plane, sizeof(float));
    check_ok(dlv_text_train_forward(f->m, f->be, v, l, emb, f->lengths, f->batch, f->len, 0,
                                    NULL, hidden));
    double s = 0.0;
    for (size_t i = 0; i < plane; i++)
        if (is_real(f, i / (size_t)f->H)) s += (double)f->r[i] * (double)hidden[i];
    free(hidden);
    return s;
}

/* Forward with a tape, then the backward of L (dhidden = dh). */
static void run_grads(fixture *f, const dlv_wview *v, const dlv_lora *l, dlv_lora *lg,
                      int recompute, const float *emb, const float *dh, float *dembeds)
{
    const size_t plane = (size_t)(f->n * f->H);
    float *hidden = xcalloc(plane, sizeof(float));
    dlv_text_tape *tape = NULL;
    check_ok(dlv_text_train_forward(f->m, f->be, v, l, emb, f->lengths, f->batch, f->len,
                                    recompute, &tape, hidden));
    assert_non_null(tape);
    check_ok(dlv_text_train_backward(f->m, f->be, v, l, lg, tape, dh, dembeds));
    dlv_text_tape_free(tape);
    free(hidden);
}

/* ---- finite differences ------------------------------------------------- */

typedef struct fd_stats {
    double sum_err, sum_ref, worst;
    char worst_name[128];
    int n_tensors;
} fd_stats;

typedef struct idx_abs {
    size_t i;
    float a;
} idx_abs;

static int by_abs_desc(const void *x, const void *y)
{
    const idx_abs *a = x, *b = y;
    return (a->a < b->a) - (a->a > b->a);
}

/* Checks grad against central differences of L in param (count elements;
 * only those with allowed[i] != 0 when allowed is set). */
static void fd_check(fixture *f, fd_stats *s, const char *what, float *param,
                     const float *grad, size_t count, const uint8_t *allowed,
                     const dlv_wview *v, const dlv_lora *l, const float *emb)
{
    idx_abs *c = xcalloc(count, sizeof *c);
    size_t nc = 0;
    double gsum = 0.0;
    for (size_t i = 0; i < count; i++) {
        if (allowed && !allowed[i]) continue;
        c[nc].i = i;
        c[nc].a = fabsf(grad[i]);
        gsum += fabs((double)grad[i]);
        nc++;
    }
    assert_true(nc > 0);
    qsort(c, nc, sizeof *c, by_abs_desc);
    size_t pick[N_TOP + N_RANDOM];
    size_t np = 0;
    for (size_t j = 0; j < N_TOP && j < nc; j++) pick[np++] = c[j].i;
    for (size_t j = 0; j < N_RANDOM; j++) pick[np++] = c[rng_next() % nc].i;
    double err = 0.0, ref = 0.0;
    for (size_t j = 0; j < np; j++) {
        const size_t i = pick[j];
        const float orig = param[i];
        const float up = orig + FD_EPS, down = orig - FD_EPS;
        param[i] = up;
        const double lp = loss(f, v, l, emb);
        param[i] = down;
        const double lm = loss(f, v, l, emb);
        param[i] = orig;
        const double fd = (lp - lm) / ((double)up - (double)down);
        err += fabs(fd - (double)grad[i]);
        ref += fabs(fd);
    }
    const double rel = err / (ref > 0 ? ref : 1e-30);
    const int ok = err <= FD_TOL * ref + (double)np * FD_ATOL;
    if (rel > s->worst) {
        s->worst = rel;
        snprintf(s->worst_name, sizeof s->worst_name, "%s", what);
    }
    if (getenv("FD_VERBOSE") || !ok || !(gsum > 0.0))
        fprintf(stderr, "%s: %s: FD aggregate relative error %.3g (sum |fd| %.3g, sum |g| %.3g)\n",
                f->dir, what, rel, ref, gsum);
    s->sum_err += err;
    s->sum_ref += ref;
    s->n_tensors++;
    free(c);
    assert_true(gsum > 0.0);
    assert_true(ok);
}

/* ---- (1) forward ------------------------------------------------------- */

static void test_forward_matches(void **state)
{
    const char *dir = *state;
    fixture f;
    fixture_init(&f, dir, 1);
    const size_t plane = (size_t)(f.n * f.H);
    const size_t n_states = (size_t)f.t->num_hidden_layers + 1;
    float *all = xcalloc(n_states * plane, sizeof(float));
    float *last = xcalloc((size_t)(f.batch * f.H), sizeof(float));
    float *hidden = xcalloc(plane, sizeof(float));
    double max_err = 0.0;
    size_t n_cmp = 0;
    for (int with_lora = 0; with_lora < 2; with_lora++) {
        const dlv_lora *l = with_lora ? &f.lora : NULL;
        check_ok(dlv_text_forward_lora(f.m, f.be, l, f.embeds, f.lengths, f.batch, f.len, last,
                                       (size_t)(f.batch * f.H), all, n_states * plane));
        const float *ref = all + (n_states - 1) * plane;
        for (int mode = 0; mode < 3; mode++) {
            /* 0: tape, 1: tape with recomputation, 2: no tape; frozen view
             * and (mode 1) the view of f32 copies, which must not change the
             * values either (the copies are exact). */
            const dlv_wview *v = mode == 1 ? &f.trained : &f.frozen;
            dlv_text_tape *tape = NULL;
            memset(hidden, 0xff, plane * sizeof(float)); /* NaN */
            check_ok(dlv_text_train_forward(f.m, f.be, v, l, f.embeds, f.lengths, f.batch,
                                            f.len, mode == 1, mode == 2 ? NULL : &tape,
                                            hidden));
            if (mode == 2) assert_null(tape);
            dlv_text_tape_free(tape);
            for (size_t i = 0; i < plane; i++) {
                if (!is_real(&f, i / (size_t)f.H)) continue;
                const double e = fabs((double)hidden[i] - (double)ref[i]);
                if (!(e <= max_err)) max_err = e;
                n_cmp++;
            }
            for (int64_t b = 0; b < f.batch; b++) {
                const float *h = hidden + ((size_t)(b * f.len + f.lengths[b] - 1)) * (size_t)f.H;
                for (int64_t j = 0; j < f.H; j++) {
                    const double e = fabs((double)h[j] - (double)last[b * f.H + j]);
                    if (!(e <= max_err)) max_err = e;
                }
            }
        }
    }
    printf("%s: train forward vs inference forward: %zu values, max |err| %.3g\n", dir, n_cmp,
           max_err);
    assert_true(max_err <= FWD_TOL);
    free(all);
    free(last);
    free(hidden);
    fixture_free(&f);
}

/* ---- (2) finite differences -------------------------------------------- */

static void test_fd_embeds_lora(void **state)
{
    const char *dir = *state;
    fixture f;
    fixture_init(&f, dir, 2);
    const size_t plane = (size_t)(f.n * f.H);
    float *dembeds = xcalloc(plane, sizeof(float));
    uint8_t *real = xcalloc(plane, 1);
    for (size_t i = 0; i < plane; i++) real[i] = (uint8_t)is_real(&f, i / (size_t)f.H);
    zero_grads(&f);
    /* The frozen view: the checkpoint's own dtype (bf16 too) in dx. */
    run_grads(&f, &f.frozen, &f.lora, &f.lgrad, 0, f.embeds, f.r, dembeds);
    for (size_t i = 0; i < plane; i++)
        if (!real[i]) assert_true(dembeds[i] == 0.0f);
    fd_stats s = {0};
    fd_check(&f, &s, "dembeds", f.embeds, dembeds, plane, real, &f.frozen, &f.lora, f.embeds);
    for (int64_t l = 0; l < f.lora.n_layers; l++)
        for (int mo = 0; mo < DLV_LORA_N_MODULES; mo++) {
            int64_t o, in;
            dlv_lora_module_dims(f.t, (dlv_lora_module)mo, &o, &in);
            char what[96];
            snprintf(what, sizeof what, "layer %lld %s lora_A", (long long)l,
                     dlv_lora_module_name((dlv_lora_module)mo));
            fd_check(&f, &s, what, dlv_lora_a(&f.lora, l, (dlv_lora_module)mo),
                     dlv_lora_a(&f.lgrad, l, (dlv_lora_module)mo), (size_t)(f.lora.rank * in),
                     NULL, &f.frozen, &f.lora, f.embeds);
            snprintf(what, sizeof what, "layer %lld %s lora_B", (long long)l,
                     dlv_lora_module_name((dlv_lora_module)mo));
            fd_check(&f, &s, what, dlv_lora_b(&f.lora, l, (dlv_lora_module)mo),
                     dlv_lora_b(&f.lgrad, l, (dlv_lora_module)mo), (size_t)(o * f.lora.rank),
                     NULL, &f.frozen, &f.lora, f.embeds);
        }
    /* A partial adapter (q_proj and down_proj only, rank 2, rsLoRA scale),
     * with recomputation. */
    dlv_lora part, pgrad;
    const unsigned targets = (1u << DLV_LORA_Q) | (1u << DLV_LORA_DOWN);
    check_ok(dlv_lora_create(f.t, 2, 4.0, 1, targets, &part));
    check_ok(dlv_lora_create(f.t, 2, 4.0, 1, targets, &pgrad));
    for (size_t i = 0; i < part.n_params; i++) part.params[i] = urand(0.2f);
    memset(dembeds, 0, plane * sizeof(float));
    run_grads(&f, &f.frozen, &part, &pgrad, 1, f.embeds, f.r, dembeds);
    fd_check(&f, &s, "dembeds (partial LoRA)", f.embeds, dembeds, plane, real, &f.frozen, &part,
             f.embeds);
    int n_part = 0;
    for (int64_t l = 0; l < part.n_layers; l++)
        for (int mo = 0; mo < DLV_LORA_N_MODULES; mo++) {
            float *a = dlv_lora_a(&part, l, (dlv_lora_module)mo);
            if (!a) continue;
            int64_t o, in;
            dlv_lora_module_dims(f.t, (dlv_lora_module)mo, &o, &in);
            fd_check(&f, &s, "partial lora_A", a, dlv_lora_a(&pgrad, l, (dlv_lora_module)mo),
                     (size_t)(part.rank * in), NULL, &f.frozen, &part, f.embeds);
            fd_check(&f, &s, "partial lora_B", dlv_lora_b(&part, l, (dlv_lora_module)mo),
                     dlv_lora_b(&pgrad, l, (dlv_lora_module)mo), (size_t)(o * part.rank), NULL,
                     &f.frozen, &part, f.embeds);
            n_part++;
        }
    assert_int_equal(n_part, 2 * part.n_layers);
    dlv_lora_free(&part);
    dlv_lora_free(&pgrad);
    printf("%s: FD dembeds + LoRA: %d tensors, aggregate rel err %.3g, worst %.3g (%s)\n", dir,
           s.n_tensors, s.sum_err / s.sum_ref, s.worst, s.worst_name);
    free(dembeds);
    free(real);
    fixture_free(&f);
}

static void test_fd_weights(void **state)
{
    const char *dir = *state;
    fixture f;
    fixture_init(&f, dir, 3);
    zero_grads(&f);
    /* Every weight trained, with the LoRA adapter on (its grads not asked). */
    run_grads(&f, &f.trained, &f.lora, NULL, 0, f.embeds, f.r, NULL);
    fd_stats s = {0};
    int n_bias = 0, n_norm = 0;
    const dlv_weights *w = dlv_model_weights(f.m);
    for (size_t i = 0; i < f.nw; i++) {
        if (!f.grads[i]) continue;
        const char *name = w->items[i].canonical;
        if (strstr(name, ".bias")) n_bias++;
        if (strstr(name, "norm")) n_norm++;
        fd_check(&f, &s, name, f.vdata[i], f.grads[i], f.vt[i].n_elements, NULL, &f.trained,
                 &f.lora, f.embeds);
    }
    printf("%s: FD weights: %d tensors (%d norms, %d biases), aggregate rel err %.3g, "
           "worst %.3g (%s)\n", dir, s.n_tensors, n_norm, n_bias, s.sum_err / s.sum_ref,
           s.worst, s.worst_name);
    /* 9 per layer + the final norm (+ 3 biases per layer for qwen2). */
    const int64_t L = f.t->num_hidden_layers;
    assert_int_equal(s.n_tensors - n_bias, 9 * L + 1);
    assert_int_equal(n_norm, 2 * L + 1);
    if (f.t->kind == DLV_TEXT_QWEN2) assert_int_equal(n_bias, 3 * L);
    fixture_free(&f);
}

/* ---- (3) recomputation, (4) padding ----------------------------------- */

/* Every gradient of one backward, copied out. */
typedef struct grads {
    float *w;      /* all trained weights, concatenated */
    size_t nw;
    float *lora;
    float *dembeds;
} grads;

static void collect(fixture *f, int recompute, const float *emb, const float *dh, grads *g)
{
    const size_t plane = (size_t)(f->n * f->H);
    zero_grads(f);
    g->dembeds = xcalloc(plane, sizeof(float));
    run_grads(f, &f->trained, &f->lora, &f->lgrad, recompute, emb, dh, g->dembeds);
    g->nw = 0;
    for (size_t i = 0; i < f->nw; i++)
        if (f->grads[i]) g->nw += f->vt[i].n_elements;
    g->w = xcalloc(g->nw, sizeof(float));
    size_t o = 0;
    for (size_t i = 0; i < f->nw; i++)
        if (f->grads[i]) {
            memcpy(g->w + o, f->grads[i], f->vt[i].n_elements * sizeof(float));
            o += f->vt[i].n_elements;
        }
    g->lora = xcalloc(f->lgrad.n_params, sizeof(float));
    memcpy(g->lora, f->lgrad.params, f->lgrad.n_params * sizeof(float));
}

static void grads_free(grads *g)
{
    free(g->w);
    free(g->lora);
    free(g->dembeds);
}

static double max_diff(const float *a, const float *b, size_t n, int *bitwise)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= m)) m = e;
    }
    if (memcmp(a, b, n * sizeof(float)) != 0) *bitwise = 0;
    return m;
}

static double compare_grads(const fixture *f, const grads *a, const grads *b, int *bitwise,
                            double *gmax)
{
    *bitwise = 1;
    double m = max_diff(a->w, b->w, a->nw, bitwise);
    double e = max_diff(a->lora, b->lora, f->lgrad.n_params, bitwise);
    if (e > m) m = e;
    e = max_diff(a->dembeds, b->dembeds, (size_t)(f->n * f->H), bitwise);
    if (e > m) m = e;
    *gmax = 0.0;
    for (size_t i = 0; i < a->nw; i++)
        if (fabs((double)a->w[i]) > *gmax) *gmax = fabs((double)a->w[i]);
    return m;
}

static void test_recompute(void **state)
{
    const char *dir = *state;
    fixture f;
    fixture_init(&f, dir, 4);
    grads a, b;
    collect(&f, 0, f.embeds, f.r, &a);
    collect(&f, 1, f.embeds, f.r, &b);
    int bitwise;
    double gmax;
    const double m = compare_grads(&f, &a, &b, &bitwise, &gmax);
    printf("%s: recompute 1 vs 0: max |diff| %.3g (%s; max |grad| %.3g)\n", dir, m,
           bitwise ? "bitwise equal" : "not bitwise", gmax);
    assert_true(gmax > 0.0);
    assert_true(m <= 1e-6);
    grads_free(&a);
    grads_free(&b);
    fixture_free(&f);
}

static void test_padding(void **state)
{
    const char *dir = *state;
    fixture f;
    fixture_init(&f, dir, 5);
    const size_t plane = (size_t)(f.n * f.H);
    float *emb2 = xcalloc(plane, sizeof(float));
    float *dh2 = xcalloc(plane, sizeof(float));
    memcpy(emb2, f.embeds, plane * sizeof(float));
    memcpy(dh2, f.r, plane * sizeof(float));
    for (size_t i = 0; i < plane; i++)
        if (!is_real(&f, i / (size_t)f.H)) {
            emb2[i] = urand(3.0f);
            dh2[i] = urand(5.0f);
        }
    grads a, b;
    collect(&f, 0, f.embeds, f.r, &a);
    collect(&f, 1, emb2, dh2, &b);
    int bitwise;
    double gmax;
    const double m = compare_grads(&f, &a, &b, &bitwise, &gmax);
    size_t nonzero_pad = 0;
    for (size_t i = 0; i < plane; i++)
        if (!is_real(&f, i / (size_t)f.H) && (a.dembeds[i] != 0.0f || b.dembeds[i] != 0.0f))
            nonzero_pad++;
    printf("%s: other padding (embeds and dhidden): max |grad diff| %.3g (%s), nonzero "
           "padded dembeds %zu\n", dir, m, bitwise ? "bitwise equal" : "not bitwise",
           nonzero_pad);
    assert_true(gmax > 0.0);
    assert_true(m <= 1e-6);
    assert_int_equal(nonzero_pad, 0);
    grads_free(&a);
    grads_free(&b);
    free(emb2);
    free(dh2);
    fixture_free(&f);
}

/* ---- errors -------------------------------------------------------------- */

static void expect_error(dlv_status got, dlv_status want, const char *needle)
{
    const char *msg = dlv_last_error();
    if (got != want || !strstr(msg, needle))
        fprintf(stderr, "want status %d mentioning '%s'; got %d: %s\n", (int)want, needle,
                (int)got, msg);
    assert_int_equal(got, want);
    assert_non_null(strstr(msg, needle));
}

static void test_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, ckpts[0], 6);
    const size_t plane = (size_t)(f.n * f.H);
    float *hidden = xcalloc(plane, sizeof(float));
    dlv_text_tape *tape = NULL;
    int32_t bad_len[3] = {6, 0, 1};
    expect_error(dlv_text_train_forward(f.m, f.be, &f.frozen, NULL, f.embeds, bad_len, f.batch,
                                        f.len, 0, &tape, hidden),
                 DLV_E_INVALID_ARG, "lengths[1] = 0");
    assert_null(tape);
    expect_error(dlv_text_train_forward(f.m, f.be, NULL, NULL, f.embeds, f.lengths, f.batch,
                                        f.len, 0, &tape, hidden),
                 DLV_E_INVALID_ARG, "weight view");
    expect_error(dlv_text_train_forward(f.m, f.be, &f.frozen, NULL, f.embeds, f.lengths, f.batch,
                                        f.len, 0, &tape, NULL),
                 DLV_E_INVALID_ARG, "hidden");
    check_ok(dlv_text_train_forward(f.m, f.be, &f.frozen, NULL, f.embeds, f.lengths, f.batch,
                                    f.len, 0, &tape, hidden));
    /* The backward's LoRA must be the forward's. */
    expect_error(dlv_text_train_backward(f.m, f.be, &f.frozen, &f.lora, &f.lgrad, tape, f.r,
                                         NULL),
                 DLV_E_INVALID_ARG, "LoRA adapter differs");
    expect_error(dlv_text_train_backward(f.m, f.be, &f.frozen, NULL, &f.lgrad, tape, f.r, NULL),
                 DLV_E_INVALID_ARG, "lora_grad without");
    expect_error(dlv_text_train_backward(f.m, f.be, &f.frozen, NULL, NULL, tape, NULL, NULL),
                 DLV_E_INVALID_ARG, "dhidden");
    dlv_text_tape_free(tape);
    /* A lora_grad of another rank. */
    dlv_lora other;
    check_ok(dlv_lora_create(f.t, 2, 8.0, 0, DLV_LORA_ALL, &other));
    check_ok(dlv_text_train_forward(f.m, f.be, &f.frozen, &f.lora, f.embeds, f.lengths, f.batch,
                                    f.len, 1, &tape, hidden));
    expect_error(dlv_text_train_backward(f.m, f.be, &f.frozen, &f.lora, &other, tape, f.r,
                                         NULL),
                 DLV_E_INVALID_ARG, "lora_grad's layout");
    dlv_text_tape_free(tape);
    dlv_lora_free(&other);
    assert_true(dlv_text_tape_bytes(f.m, NULL, f.batch, f.len, 1) <
                dlv_text_tape_bytes(f.m, NULL, f.batch, f.len, 0));
    dlv_text_tape_free(NULL);
    free(hidden);
    fixture_free(&f);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc - 1 > 8) {
        fprintf(stderr, "usage: test_text_train CKPT_DIR [CKPT_DIR ...] (at most 8)\n");
        return 2;
    }
    n_ckpts = argc - 1;
    struct CMUnitTest tests[8 * 5 + 1];
    static char names[8 * 5][160];
    void (*fns[5])(void **) = {test_forward_matches, test_fd_embeds_lora, test_fd_weights,
                               test_recompute, test_padding};
    const char *labels[5] = {"forward", "fd embeds+lora", "fd weights", "recompute", "padding"};
    size_t n = 0;
    for (int i = 0; i < n_ckpts; i++) {
        ckpts[i] = argv[1 + i];
        const char *base = strrchr(ckpts[i], '/');
        base = base ? base + 1 : ckpts[i];
        for (int j = 0; j < 5; j++) {
            tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(fns[j], ckpts[i]);
            snprintf(names[n], sizeof names[n], "%s %s", labels[j], base);
            tests[n].name = names[n];
            n++;
        }
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_errors);
    return _cmocka_run_group_tests("text_train", tests, n, NULL, NULL);
}
