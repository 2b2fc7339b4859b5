/* The language model's training pass, the decoder block
 * (model/nn/decoder.h) with a tape and its backward, on tiny generated
 * checkpoints:
 *
 *   test_text_train CKPT_DIR [CKPT_DIR ...]
 *
 * Every input and output of the block is device memory (uploaded and
 * downloaded through dlv_buffer_*); the weights are the model's device
 * tensors (dlv_model_device_weights), or a table of them in which every
 * language-model weight but embed_tokens is replaced by a trainable f32 copy
 * in one flat device buffer, with gradients in a second flat buffer, both
 * bound with dlv_llava_w_bind as the trainer does (train/kind_llava.c).
 *
 * (1) the decoder's hidden states at real positions equal
 *     dlv_text_forward_lora's (the inference forward; |err| <= 1e-6), with
 *     and without a LoRA adapter (random nonzero A and B), right-padded rows
 *     of mixed lengths: with a tape, with a recomputing tape over the f32
 *     copies, without a tape, and without a tape over the copies with the
 *     hidden-state trace compared at every layer;
 * (2) gradients against central finite differences of the scalar
 *     L = sum over real positions of r . hidden (r fixed random, L summed in
 *     double): for the input embeddings, every LoRA A and B (a full adapter
 *     and a partial rank-2 rsLoRA one, with recomputation), and every weight
 *     of the language model (norms, q/k/v/o, gate/up/down, biases where the
 *     checkpoint has them) through the f32 copies. Perturbations are in f32
 *     on the host, uploaded element by element (eps 1e-3; the difference
 *     quotient divides by the step actually taken). Per tensor 24 elements
 *     are checked: the 12 with the largest analytic gradient and 12
 *     uniformly random ones; per tensor sum |fd - g| <= FD_TOL sum |fd| +
 *     24 FD_ATOL (aggregate relative error 2e-2 with an absolute floor for
 *     the f32 forward's noise, which makes single small elements
 *     unreliable);
 * (3) recompute = 1 gives bit-identical gradients to recompute = 0;
 * (4) padding: other values in the padded embeddings and garbage in dhidden
 *     at padded positions change no gradient, and dx stays zero there;
 * (5) batch sums: the gradients accumulated over each sequence run alone
 *     (a batch of one, unpadded) equal the batch's, and so does each
 *     sequence's dx;
 * (6) cpu vs sim: the model loaded on the `sim` backend (device pointers the
 *     host cannot dereference) gives bit-identical forwards (inference and
 *     decoder) and gradients (weights, LoRA, dx; frozen checkpoint dtype and
 *     f32 copies, with and without recomputation); the forward, recompute
 *     and padding checks also run on sim;
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

#include "backend/backend.h"
#include "backend/tensor.h"
#include "core/error.h"
#include "disclvlm.h"
#include "io/safetensors.h"
#include "model/device_weights.h"
#include "model/llava/llava_weights.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/nn/decoder.h"
#include "model/llava/text_model.h"

#define FWD_TOL 1e-6
#define FD_EPS 1e-3f
#define FD_TOL 2e-2
/* The f32 noise floor of one difference quotient: L's rounding (~1e-6) over
 * 2 eps; only matters for tensors whose gradients are all small (k_proj's
 * bias: softmax is nearly invariant to it). */
#define FD_ATOL 2e-3
#define N_TOP 12
#define N_RANDOM 12
/* Batch sums: the same arithmetic but for the GEMMs' blocking and the order
 * of the row sums, relative to the largest gradient. */
#define BATCH_RTOL 1e-5

#define MAX_CKPTS 8

static char *ckpts[MAX_CKPTS];
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

/* A device buffer of n floats, uploaded from host (zeroed when host is NULL). */
static void dev_f32(dlv_backend *be, const float *host, size_t n, dlv_buffer *out)
{
    check_ok(dlv_buffer_alloc(be, n * sizeof(float), out));
    if (host) check_ok(dlv_buffer_upload(out, 0, host, n * sizeof(float)));
    else check_ok(dlv_buffer_zero(out, 0, n * sizeof(float)));
}

/* n floats of buf downloaded into a fresh host array. */
static float *host_f32(const dlv_buffer *buf, size_t n)
{
    float *h = xcalloc(n, sizeof(float));
    check_ok(dlv_buffer_download(h, buf, 0, n * sizeof(float)));
    return h;
}

/* A LoRA adapter (host params and layout) on the device: its params and a
 * gradient buffer in the same layout, and the decoder's pairs over them. */
typedef struct dev_lora {
    const dlv_lora *l;
    dlv_buffer p, g;
    dlv_lora_pair *pairs;
    dlv_lora_pair_grad *gpairs;
    dlv_decoder_lora dl;
} dev_lora;

static void dev_lora_init(dlv_backend *be, const dlv_lora *l, dev_lora *d)
{
    memset(d, 0, sizeof *d);
    d->l = l;
    dev_f32(be, l->params, l->n_params, &d->p);
    dev_f32(be, NULL, l->n_params, &d->g);
    const size_t np = (size_t)l->n_layers * DLV_LORA_N_MODULES;
    d->pairs = xcalloc(np, sizeof *d->pairs);
    d->gpairs = xcalloc(np, sizeof *d->gpairs);
    dlv_lora_pairs(l, dlv_buffer_ptr(&d->p), d->pairs);
    dlv_lora_pair_grads(l, dlv_buffer_ptr(&d->g), d->gpairs);
    d->dl = (dlv_decoder_lora){d->pairs, l->rank};
}

static void dev_lora_free(dev_lora *d)
{
    dlv_buffer_free(&d->p);
    dlv_buffer_free(&d->g);
    free(d->pairs);
    free(d->gpairs);
    memset(d, 0, sizeof *d);
}

/* A model with its inputs: a right-padded batch of mixed lengths, a
 * direction r for the loss, a random LoRA (all modules) with its gradient,
 * and f32 copies of every language-model weight (embed_tokens excepted) in
 * one flat device buffer with a flat gradient buffer. */
typedef struct fixture {
    const char *dir;
    const char *backend;
    dlv_model *m;
    dlv_backend *be;
    const dlv_text_config *t;
    dlv_llava_dims d;
    int64_t batch, len, n, H, L;
    int32_t lengths[3];
    float *embeds, *r;            /* host [n, H] */
    dlv_buffer demb, dr, dhid;    /* device: embeds, r (dhidden), hidden */
    dlv_lora lora;                /* host params */
    dev_lora dl;
    /* The trained copies. */
    size_t nw;                    /* table entries */
    size_t *woff;                 /* [nw] float offset in the flat buffers, SIZE_MAX: frozen */
    size_t n_flat;
    float *vflat;                 /* host mirror of the values */
    dlv_buffer vbuf, gbuf;
    dlv_tensor *tv, *tg;          /* [nw] */
    const dlv_decoder_w *frozen;  /* the model's own (dlv_model_llava_w) */
    dlv_llava_w wtrained, wgrad;
} fixture;

static int is_real(const fixture *f, size_t row)
{
    const size_t b = row / (size_t)f->len, i = row % (size_t)f->len;
    return (int64_t)i < f->lengths[b];
}

static size_t plane(const fixture *f) { return (size_t)(f->n * f->H); }

static int trained_entry(const dlv_weight *it)
{
    return it->part == DLV_PART_TEXT && it->tensor &&
           strcmp(it->canonical, "embed_tokens.weight") != 0;
}

static int fixture_init(fixture *f, const char *dir, const char *backend, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    if (strcmp(backend, "cpu") != 0 && !dlv_backend_built(backend)) {
        print_message("the %s backend is not in this build\n", backend);
        return 0;
    }
    rng_seed(seed);
    f->dir = dir;
    f->backend = backend;
    dlv_model_options *opts = NULL;
    check_ok(dlv_model_options_new(&opts));
    check_ok(dlv_model_options_set_backend(opts, backend));
    if (dlv_model_load(dir, opts, &f->m) != DLV_OK) {
        fprintf(stderr, "%s (%s): %s\n", dir, backend, dlv_last_error());
        dlv_model_options_free(opts);
        fail();
    }
    dlv_model_options_free(opts);
    f->be = dlv_model_backend(f->m);
    assert_string_equal(f->be->ops->name, backend);
    f->t = &dlv_model_config(f->m)->text;
    dlv_llava_dims_of(dlv_model_config(f->m), &f->d);
    f->batch = 3;
    f->len = 6;
    f->n = f->batch * f->len;
    f->H = f->t->hidden_size;
    f->L = f->t->num_hidden_layers;
    assert_int_equal(f->d.text.hidden, f->H);
    f->lengths[0] = 6;
    f->lengths[1] = 3;
    f->lengths[2] = 1;
    const size_t P = plane(f);
    f->embeds = xcalloc(P, sizeof(float));
    f->r = xcalloc(P, sizeof(float));
    for (size_t i = 0; i < P; i++) {
        f->embeds[i] = urand(0.5f);
        f->r[i] = is_real(f, i / (size_t)f->H) ? urand(1.0f) : 0.0f;
    }
    dev_f32(f->be, f->embeds, P, &f->demb);
    dev_f32(f->be, f->r, P, &f->dr);
    dev_f32(f->be, NULL, P, &f->dhid);
    check_ok(dlv_lora_create(f->t, 4, 8.0, 0, DLV_LORA_ALL, &f->lora));
    for (size_t i = 0; i < f->lora.n_params; i++) f->lora.params[i] = urand(0.1f);
    dev_lora_init(f->be, &f->lora, &f->dl);

    /* Trainable f32 copies, widened on the host from the checkpoint. */
    const dlv_weights *w = dlv_model_weights(f->m);
    const dlv_device_weights *dw = dlv_model_device_weights(f->m);
    assert_non_null(dw);
    assert_int_equal(dw->n, w->n);
    f->nw = w->n;
    f->woff = xcalloc(w->n, sizeof *f->woff);
    for (size_t i = 0; i < w->n; i++) {
        f->woff[i] = SIZE_MAX;
        if (!trained_entry(&w->items[i])) continue;
        f->woff[i] = f->n_flat;
        f->n_flat += (size_t)w->items[i].tensor->n_elements;
    }
    f->vflat = xcalloc(f->n_flat, sizeof(float));
    for (size_t i = 0; i < w->n; i++)
        if (f->woff[i] != SIZE_MAX) {
            const dlv_st_tensor *ten = w->items[i].tensor;
            check_ok(dlv_st_read_f32(ten, 0, ten->n_elements, f->vflat + f->woff[i]));
        }
    dev_f32(f->be, f->vflat, f->n_flat, &f->vbuf);
    dev_f32(f->be, NULL, f->n_flat, &f->gbuf);
    f->tv = xcalloc(w->n, sizeof *f->tv);
    f->tg = xcalloc(w->n, sizeof *f->tg);
    for (size_t i = 0; i < w->n; i++) {
        f->tv[i] = dw->t[i];
        if (f->woff[i] == SIZE_MAX) continue;
        assert_true(dlv_tensor_present(&dw->t[i]));
        assert_int_equal(dlv_tensor_nelem(&dw->t[i]), (int64_t)w->items[i].tensor->n_elements);
        dlv_tensor c = {&f->vbuf, f->woff[i] * sizeof(float), DLV_DTYPE_F32, dw->t[i].ndim,
                        {0}};
        memcpy(c.shape, dw->t[i].shape, sizeof c.shape);
        f->tv[i] = c;
        c.buf = &f->gbuf;
        f->tg[i] = c;
    }
    const dlv_llava_config *cfg = dlv_model_config(f->m);
    check_ok(dlv_llava_w_bind(cfg, w, f->tv, &f->wtrained));
    check_ok(dlv_llava_w_bind(cfg, w, f->tg, &f->wgrad));
    f->frozen = &dlv_model_llava_w(f->m)->text;
    assert_int_equal(f->frozen->n_layers, f->L);
    assert_int_equal(f->wtrained.text.n_layers, f->L);
    return 1;
}

static void fixture_free(fixture *f)
{
    dlv_llava_w_free(&f->wtrained);
    dlv_llava_w_free(&f->wgrad);
    free(f->tv);
    free(f->tg);
    free(f->woff);
    free(f->vflat);
    dlv_buffer_free(&f->vbuf);
    dlv_buffer_free(&f->gbuf);
    dev_lora_free(&f->dl);
    dlv_lora_free(&f->lora);
    dlv_buffer_free(&f->demb);
    dlv_buffer_free(&f->dr);
    dlv_buffer_free(&f->dhid);
    free(f->embeds);
    free(f->r);
    dlv_model_free(f->m);
}

static void zero_grads(fixture *f)
{
    check_ok(dlv_buffer_zero(&f->gbuf, 0, f->gbuf.size));
    check_ok(dlv_buffer_zero(&f->dl.g, 0, f->dl.g.size));
}

/* L = sum over real positions of r . hidden, in double (a forward without
 * a tape on the device embeddings). */
static double loss(fixture *f, const dlv_decoder_w *w, const dlv_decoder_lora *l)
{
    const size_t P = plane(f);
    check_ok(dlv_decoder_forward(f->be, &f->d.text, w, l, dlv_buffer_ptr(&f->demb), f->lengths,
                                 f->batch, f->len, 0, NULL, dlv_buffer_ptr(&f->dhid), NULL));
    float *hidden = host_f32(&f->dhid, P);
    double s = 0.0;
    for (size_t i = 0; i < P; i++)
        if (is_real(f, i / (size_t)f->H)) s += (double)f->r[i] * (double)hidden[i];
    free(hidden);
    return s;
}

/* Forward with a tape, then the backward of L (dhidden = dh; all device). */
static void run_grads(fixture *f, const dlv_decoder_w *w, const dlv_decoder_w *gw,
                      const dlv_decoder_lora *l, const dlv_lora_pair_grad *gl, int recompute,
                      const float *emb, const float *dh, float *dx)
{
    dlv_decoder_tape *tape = NULL;
    check_ok(dlv_decoder_forward(f->be, &f->d.text, w, l, emb, f->lengths, f->batch, f->len,
                                 recompute, &tape, dlv_buffer_ptr(&f->dhid), NULL));
    assert_non_null(tape);
    check_ok(dlv_decoder_backward(f->be, w, gw, l, gl, tape, dh, dx));
    dlv_decoder_tape_free(tape);
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

/* Where a parameter lives: its host mirror (perturbed) and its device copy
 * (dev at float offset off, updated element by element). */
typedef struct fd_param {
    float *host;
    dlv_buffer *dev;
    size_t off;
} fd_param;

static void set_param(const fd_param *p, size_t i, float v)
{
    p->host[i] = v;
    check_ok(dlv_buffer_upload(p->dev, (p->off + i) * sizeof(float), &p->host[i],
                               sizeof(float)));
}

/* Checks grad against central differences of L in the parameter (count
 * elements; only those with allowed[i] != 0 when allowed is set). */
static void fd_check(fixture *f, fd_stats *s, const char *what, fd_param p, const float *grad,
                     size_t count, const uint8_t *allowed, const dlv_decoder_w *w,
                     const dlv_decoder_lora *l)
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
        const float orig = p.host[i];
        const float up = orig + FD_EPS, down = orig - FD_EPS;
        set_param(&p, i, up);
        const double lp = loss(f, w, l);
        set_param(&p, i, down);
        const double lm = loss(f, w, l);
        set_param(&p, i, orig);
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

/* ---- test cases ----------------------------------------------------------- */

typedef struct tcase {
    const char *dir;
    const char *backend;
} tcase;

/* ---- (1) forward ------------------------------------------------------- */

static void test_forward_matches(void **state)
{
    const tcase *tc = *state;
    fixture f;
    if (!fixture_init(&f, tc->dir, tc->backend, 1)) return;
    const size_t P = plane(&f);
    const size_t n_states = (size_t)f.L + 1;
    float *all = xcalloc(n_states * P, sizeof(float));
    float *last = xcalloc((size_t)(f.batch * f.H), sizeof(float));
    float *nan_plane = xcalloc(P, sizeof(float));
    memset(nan_plane, 0xff, P * sizeof(float)); /* NaN */
    dlv_buffer dtrace = {0};
    dev_f32(f.be, NULL, n_states * P, &dtrace);
    double max_err = 0.0;
    size_t n_cmp = 0;
    int bitwise = 1;
#define CMP(a, b)                                                            \
    do {                                                                     \
        const double e_ = fabs((double)(a) - (double)(b));                   \
        if (!(e_ <= max_err)) max_err = e_;                                  \
        if (memcmp(&(a), &(b), sizeof(float)) != 0) bitwise = 0;             \
        n_cmp++;                                                             \
    } while (0)
    for (int with_lora = 0; with_lora < 2; with_lora++) {
        const dlv_lora *hl = with_lora ? &f.lora : NULL;
        const dlv_decoder_lora *l = with_lora ? &f.dl.dl : NULL;
        check_ok(dlv_text_forward_lora(f.m, f.be, hl, f.embeds, f.lengths, f.batch, f.len, last,
                                       (size_t)(f.batch * f.H), all, n_states * P));
        const float *ref = all + (n_states - 1) * P;
        for (int mode = 0; mode < 4; mode++) {
            /* 0: tape; 1: tape with recomputation over the f32 copies (exact
             * copies: the values must not change); 2: no tape; 3: no tape
             * over the copies, with the trace. */
            const dlv_decoder_w *w = mode == 1 || mode == 3 ? &f.wtrained.text : f.frozen;
            dlv_decoder_tape *tape = NULL;
            check_ok(dlv_buffer_upload(&f.dhid, 0, nan_plane, P * sizeof(float)));
            check_ok(dlv_decoder_forward(f.be, &f.d.text, w, l, dlv_buffer_ptr(&f.demb),
                                         f.lengths, f.batch, f.len, mode == 1,
                                         mode >= 2 ? NULL : &tape, dlv_buffer_ptr(&f.dhid),
                                         mode == 3 ? dlv_buffer_ptr(&dtrace) : NULL));
            if (mode >= 2) assert_null(tape);
            else assert_non_null(tape);
            dlv_decoder_tape_free(tape);
            float *hidden = host_f32(&f.dhid, P);
            for (size_t i = 0; i < P; i++)
                if (is_real(&f, i / (size_t)f.H)) CMP(hidden[i], ref[i]);
            for (int64_t b = 0; b < f.batch; b++) {
                const float *h = hidden + ((size_t)(b * f.len + f.lengths[b] - 1)) * (size_t)f.H;
                for (int64_t j = 0; j < f.H; j++) CMP(h[j], last[b * f.H + j]);
            }
            free(hidden);
            if (mode == 3) {
                float *trace = host_f32(&dtrace, n_states * P);
                for (size_t s = 0; s < n_states; s++)
                    for (size_t i = 0; i < P; i++)
                        if (is_real(&f, i / (size_t)f.H)) CMP(trace[s * P + i], all[s * P + i]);
                free(trace);
            }
        }
    }
#undef CMP
    printf("%s (%s): decoder forward vs inference forward: %zu values, max |err| %.3g (%s)\n",
           tc->dir, tc->backend, n_cmp, max_err, bitwise ? "bitwise equal" : "not bitwise");
    assert_true(max_err <= FWD_TOL);
    dlv_buffer_free(&dtrace);
    free(all);
    free(last);
    free(nan_plane);
    fixture_free(&f);
}

/* ---- (2) finite differences -------------------------------------------- */

static void test_fd_embeds_lora(void **state)
{
    const tcase *tc = *state;
    fixture f;
    if (!fixture_init(&f, tc->dir, tc->backend, 2)) return;
    const size_t P = plane(&f);
    uint8_t *real = xcalloc(P, 1);
    for (size_t i = 0; i < P; i++) real[i] = (uint8_t)is_real(&f, i / (size_t)f.H);
    dlv_buffer ddx = {0};
    dev_f32(f.be, NULL, P, &ddx);
    zero_grads(&f);
    /* The model's own weights: the checkpoint's dtype (bf16 too) in dx. */
    run_grads(&f, f.frozen, NULL, &f.dl.dl, f.dl.gpairs, 0, dlv_buffer_ptr(&f.demb),
              dlv_buffer_ptr(&f.dr), dlv_buffer_ptr(&ddx));
    float *dembeds = host_f32(&ddx, P);
    float *lg = host_f32(&f.dl.g, f.lora.n_params);
    const dlv_lora lgrad = dlv_lora_view(&f.lora, lg);
    for (size_t i = 0; i < P; i++)
        if (!real[i]) assert_true(dembeds[i] == 0.0f);
    fd_stats s = {0};
    fd_check(&f, &s, "dembeds", (fd_param){f.embeds, &f.demb, 0}, dembeds, P, real, f.frozen,
             &f.dl.dl);
    for (int64_t l = 0; l < f.lora.n_layers; l++)
        for (int mo = 0; mo < DLV_LORA_N_MODULES; mo++) {
            const size_t k = (size_t)l * DLV_LORA_N_MODULES + (size_t)mo;
            int64_t o, in;
            dlv_lora_module_dims(f.t, (dlv_lora_module)mo, &o, &in);
            char what[96];
            snprintf(what, sizeof what, "layer %lld %s lora_A", (long long)l,
                     dlv_lora_module_name((dlv_lora_module)mo));
            fd_check(&f, &s, what,
                     (fd_param){dlv_lora_a(&f.lora, l, (dlv_lora_module)mo), &f.dl.p,
                                f.lora.off_a[k]},
                     dlv_lora_a(&lgrad, l, (dlv_lora_module)mo), (size_t)(f.lora.rank * in),
                     NULL, f.frozen, &f.dl.dl);
            snprintf(what, sizeof what, "layer %lld %s lora_B", (long long)l,
                     dlv_lora_module_name((dlv_lora_module)mo));
            fd_check(&f, &s, what,
                     (fd_param){dlv_lora_b(&f.lora, l, (dlv_lora_module)mo), &f.dl.p,
                                f.lora.off_b[k]},
                     dlv_lora_b(&lgrad, l, (dlv_lora_module)mo), (size_t)(o * f.lora.rank),
                     NULL, f.frozen, &f.dl.dl);
        }
    /* A partial adapter (q_proj and down_proj only, rank 2, rsLoRA scale),
     * with recomputation. */
    dlv_lora part;
    const unsigned targets = (1u << DLV_LORA_Q) | (1u << DLV_LORA_DOWN);
    check_ok(dlv_lora_create(f.t, 2, 4.0, 1, targets, &part));
    for (size_t i = 0; i < part.n_params; i++) part.params[i] = urand(0.2f);
    dev_lora dp;
    dev_lora_init(f.be, &part, &dp);
    check_ok(dlv_buffer_zero(&ddx, 0, ddx.size));
    run_grads(&f, f.frozen, NULL, &dp.dl, dp.gpairs, 1, dlv_buffer_ptr(&f.demb),
              dlv_buffer_ptr(&f.dr), dlv_buffer_ptr(&ddx));
    free(dembeds);
    dembeds = host_f32(&ddx, P);
    float *pg = host_f32(&dp.g, part.n_params);
    const dlv_lora pgrad = dlv_lora_view(&part, pg);
    for (size_t i = 0; i < P; i++)
        if (!real[i]) assert_true(dembeds[i] == 0.0f);
    fd_check(&f, &s, "dembeds (partial LoRA)", (fd_param){f.embeds, &f.demb, 0}, dembeds, P,
             real, f.frozen, &dp.dl);
    int n_part = 0;
    for (int64_t l = 0; l < part.n_layers; l++)
        for (int mo = 0; mo < DLV_LORA_N_MODULES; mo++) {
            const size_t k = (size_t)l * DLV_LORA_N_MODULES + (size_t)mo;
            float *a = dlv_lora_a(&part, l, (dlv_lora_module)mo);
            if (!a) {
                assert_null(dp.pairs[k].a);
                continue;
            }
            int64_t o, in;
            dlv_lora_module_dims(f.t, (dlv_lora_module)mo, &o, &in);
            fd_check(&f, &s, "partial lora_A", (fd_param){a, &dp.p, part.off_a[k]},
                     dlv_lora_a(&pgrad, l, (dlv_lora_module)mo), (size_t)(part.rank * in), NULL,
                     f.frozen, &dp.dl);
            fd_check(&f, &s, "partial lora_B",
                     (fd_param){dlv_lora_b(&part, l, (dlv_lora_module)mo), &dp.p,
                                part.off_b[k]},
                     dlv_lora_b(&pgrad, l, (dlv_lora_module)mo), (size_t)(o * part.rank), NULL,
                     f.frozen, &dp.dl);
            n_part++;
        }
    assert_int_equal(n_part, 2 * part.n_layers);
    printf("%s (%s): FD dembeds + LoRA: %d tensors, aggregate rel err %.3g, worst %.3g (%s)\n",
           tc->dir, tc->backend, s.n_tensors, s.sum_err / s.sum_ref, s.worst, s.worst_name);
    dev_lora_free(&dp);
    dlv_lora_free(&part);
    free(pg);
    free(lg);
    free(dembeds);
    free(real);
    dlv_buffer_free(&ddx);
    fixture_free(&f);
}

static void test_fd_weights(void **state)
{
    const tcase *tc = *state;
    fixture f;
    if (!fixture_init(&f, tc->dir, tc->backend, 3)) return;
    zero_grads(&f);
    /* Every weight trained, with the LoRA adapter on (its grads not asked)
     * and dx not wanted. */
    run_grads(&f, &f.wtrained.text, &f.wgrad.text, &f.dl.dl, NULL, 0, dlv_buffer_ptr(&f.demb),
              dlv_buffer_ptr(&f.dr), NULL);
    float *g = host_f32(&f.gbuf, f.n_flat);
    /* The LoRA was frozen: its gradient buffer is untouched. */
    float *lg = host_f32(&f.dl.g, f.lora.n_params);
    for (size_t i = 0; i < f.lora.n_params; i++) assert_true(lg[i] == 0.0f);
    free(lg);
    fd_stats s = {0};
    int n_bias = 0, n_norm = 0;
    const dlv_weights *w = dlv_model_weights(f.m);
    for (size_t i = 0; i < f.nw; i++) {
        if (f.woff[i] == SIZE_MAX) continue;
        const char *name = w->items[i].canonical;
        if (strstr(name, ".bias")) n_bias++;
        if (strstr(name, "norm")) n_norm++;
        fd_check(&f, &s, name, (fd_param){f.vflat + f.woff[i], &f.vbuf, f.woff[i]},
                 g + f.woff[i], (size_t)w->items[i].tensor->n_elements, NULL, &f.wtrained.text,
                 &f.dl.dl);
    }
    printf("%s (%s): FD weights: %d tensors (%d norms, %d biases), aggregate rel err %.3g, "
           "worst %.3g (%s)\n", tc->dir, tc->backend, s.n_tensors, n_norm, n_bias,
           s.sum_err / s.sum_ref, s.worst, s.worst_name);
    /* 9 per layer + the final norm (+ 3 biases per layer for qwen2). */
    assert_int_equal(s.n_tensors - n_bias, 9 * f.L + 1);
    assert_int_equal(n_norm, 2 * f.L + 1);
    if (f.t->kind == DLV_TEXT_QWEN2) assert_int_equal(n_bias, 3 * f.L);
    free(g);
    fixture_free(&f);
}

/* ---- (3) recomputation, (4) padding, (5) batch sums -------------------- */

/* Every gradient of one backward, copied out. */
typedef struct grads {
    float *w;      /* all trained weights (the flat buffer) */
    size_t nw;
    float *lora;
    size_t nl;
    float *dx;
    size_t nx;
} grads;

/* The trained copies and the LoRA, both with gradients, and dx. */
static void collect(fixture *f, int recompute, const dlv_buffer *emb, const dlv_buffer *dh,
                    grads *g)
{
    const size_t P = plane(f);
    zero_grads(f);
    dlv_buffer ddx = {0};
    dev_f32(f->be, NULL, P, &ddx);
    run_grads(f, &f->wtrained.text, &f->wgrad.text, &f->dl.dl, f->dl.gpairs, recompute,
              dlv_buffer_ptr(emb), dlv_buffer_ptr(dh), dlv_buffer_ptr(&ddx));
    g->nw = f->n_flat;
    g->w = host_f32(&f->gbuf, f->n_flat);
    g->nl = f->lora.n_params;
    g->lora = host_f32(&f->dl.g, f->lora.n_params);
    g->nx = P;
    g->dx = host_f32(&ddx, P);
    dlv_buffer_free(&ddx);
}

/* The frozen checkpoint weights (their own dtype), LoRA grads and dx. */
static void collect_frozen(fixture *f, int recompute, grads *g)
{
    const size_t P = plane(f);
    zero_grads(f);
    dlv_buffer ddx = {0};
    dev_f32(f->be, NULL, P, &ddx);
    run_grads(f, f->frozen, NULL, &f->dl.dl, f->dl.gpairs, recompute, dlv_buffer_ptr(&f->demb),
              dlv_buffer_ptr(&f->dr), dlv_buffer_ptr(&ddx));
    g->nw = 0;
    g->w = xcalloc(1, sizeof(float));
    g->nl = f->lora.n_params;
    g->lora = host_f32(&f->dl.g, f->lora.n_params);
    g->nx = P;
    g->dx = host_f32(&ddx, P);
    dlv_buffer_free(&ddx);
}

static void grads_free(grads *g)
{
    free(g->w);
    free(g->lora);
    free(g->dx);
    memset(g, 0, sizeof *g);
}

static double max_diff(const float *a, const float *b, size_t n, int *bitwise)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= m)) m = e;
    }
    if (n && memcmp(a, b, n * sizeof(float)) != 0) *bitwise = 0;
    return m;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i]) > m) m = fabs((double)a[i]);
    return m;
}

/* The largest difference over every gradient; *gmax the largest weight or
 * LoRA gradient. */
static double compare_grads(const grads *a, const grads *b, int *bitwise, double *gmax)
{
    assert_int_equal(a->nw, b->nw);
    assert_int_equal(a->nl, b->nl);
    assert_int_equal(a->nx, b->nx);
    *bitwise = 1;
    double m = max_diff(a->w, b->w, a->nw, bitwise);
    double e = max_diff(a->lora, b->lora, a->nl, bitwise);
    if (e > m) m = e;
    e = max_diff(a->dx, b->dx, a->nx, bitwise);
    if (e > m) m = e;
    *gmax = max_abs(a->w, a->nw);
    e = max_abs(a->lora, a->nl);
    if (e > *gmax) *gmax = e;
    return m;
}

static void test_recompute(void **state)
{
    const tcase *tc = *state;
    fixture f;
    if (!fixture_init(&f, tc->dir, tc->backend, 4)) return;
    grads a, b;
    collect(&f, 0, &f.demb, &f.dr, &a);
    collect(&f, 1, &f.demb, &f.dr, &b);
    int bitwise;
    double gmax;
    const double m = compare_grads(&a, &b, &bitwise, &gmax);
    grads fa, fb;
    collect_frozen(&f, 0, &fa);
    collect_frozen(&f, 1, &fb);
    int fbitwise;
    double fgmax;
    const double fm = compare_grads(&fa, &fb, &fbitwise, &fgmax);
    printf("%s (%s): recompute 1 vs 0: f32 copies max |diff| %.3g (%s; max |grad| %.3g), "
           "checkpoint weights max |diff| %.3g (%s)\n", tc->dir, tc->backend, m,
           bitwise ? "bitwise equal" : "not bitwise", gmax, fm,
           fbitwise ? "bitwise equal" : "not bitwise");
    assert_true(gmax > 0.0);
    assert_true(fgmax > 0.0);
    assert_true(bitwise);
    assert_true(fbitwise);
    grads_free(&a);
    grads_free(&b);
    grads_free(&fa);
    grads_free(&fb);
    fixture_free(&f);
}

static void test_padding(void **state)
{
    const tcase *tc = *state;
    fixture f;
    if (!fixture_init(&f, tc->dir, tc->backend, 5)) return;
    const size_t P = plane(&f);
    float *emb2 = xcalloc(P, sizeof(float));
    float *dh2 = xcalloc(P, sizeof(float));
    memcpy(emb2, f.embeds, P * sizeof(float));
    memcpy(dh2, f.r, P * sizeof(float));
    for (size_t i = 0; i < P; i++)
        if (!is_real(&f, i / (size_t)f.H)) {
            emb2[i] = urand(3.0f);
            dh2[i] = urand(5.0f);
        }
    dlv_buffer demb2 = {0}, ddh2 = {0};
    dev_f32(f.be, emb2, P, &demb2);
    dev_f32(f.be, dh2, P, &ddh2);
    grads a, b;
    collect(&f, 0, &f.demb, &f.dr, &a);
    collect(&f, 1, &demb2, &ddh2, &b);
    int bitwise;
    double gmax;
    const double m = compare_grads(&a, &b, &bitwise, &gmax);
    size_t nonzero_pad = 0;
    for (size_t i = 0; i < P; i++)
        if (!is_real(&f, i / (size_t)f.H) && (a.dx[i] != 0.0f || b.dx[i] != 0.0f))
            nonzero_pad++;
    printf("%s (%s): other padding (embeds and dhidden): max |grad diff| %.3g (%s), nonzero "
           "padded dx %zu\n", tc->dir, tc->backend, m,
           bitwise ? "bitwise equal" : "not bitwise", nonzero_pad);
    assert_true(gmax > 0.0);
    assert_true(m <= 1e-6);
    assert_int_equal(nonzero_pad, 0);
    grads_free(&a);
    grads_free(&b);
    dlv_buffer_free(&demb2);
    dlv_buffer_free(&ddh2);
    free(emb2);
    free(dh2);
    fixture_free(&f);
}

static void test_batch_sums(void **state)
{
    const tcase *tc = *state;
    fixture f;
    if (!fixture_init(&f, tc->dir, tc->backend, 6)) return;
    const size_t P = plane(&f), H = (size_t)f.H;
    grads a, b;
    collect(&f, 0, &f.demb, &f.dr, &a);
    /* Each sequence alone, unpadded: the weight and LoRA gradients
     * accumulate over the three backwards. */
    zero_grads(&f);
    b.nx = P;
    b.dx = xcalloc(P, sizeof(float));
    for (int64_t r = 0; r < f.batch; r++) {
        const int32_t len = f.lengths[r];
        const size_t rows = (size_t)len, first = (size_t)(r * f.len);
        dlv_buffer e = {0}, dh = {0}, h = {0}, dx = {0};
        dev_f32(f.be, f.embeds + first * H, rows * H, &e);
        dev_f32(f.be, f.r + first * H, rows * H, &dh);
        dev_f32(f.be, NULL, rows * H, &h);
        dev_f32(f.be, NULL, rows * H, &dx);
        dlv_decoder_tape *tape = NULL;
        check_ok(dlv_decoder_forward(f.be, &f.d.text, &f.wtrained.text, &f.dl.dl,
                                     dlv_buffer_ptr(&e), &len, 1, len, (int)(r % 2), &tape,
                                     dlv_buffer_ptr(&h), NULL));
        check_ok(dlv_decoder_backward(f.be, &f.wtrained.text, &f.wgrad.text, &f.dl.dl,
                                      f.dl.gpairs, tape, dlv_buffer_ptr(&dh),
                                      dlv_buffer_ptr(&dx)));
        dlv_decoder_tape_free(tape);
        check_ok(dlv_buffer_download(b.dx + first * H, &dx, 0, rows * H * sizeof(float)));
        dlv_buffer_free(&e);
        dlv_buffer_free(&dh);
        dlv_buffer_free(&h);
        dlv_buffer_free(&dx);
    }
    b.nw = f.n_flat;
    b.w = host_f32(&f.gbuf, f.n_flat);
    b.nl = f.lora.n_params;
    b.lora = host_f32(&f.dl.g, f.lora.n_params);
    int bitwise;
    double gmax;
    const double m = compare_grads(&a, &b, &bitwise, &gmax);
    const double xmax = max_abs(a.dx, P);
    printf("%s (%s): batch of 3 vs each sequence alone: max |grad diff| %.3g (%s; max |grad| "
           "%.3g, max |dx| %.3g)\n", tc->dir, tc->backend, m,
           bitwise ? "bitwise equal" : "not bitwise", gmax, xmax);
    assert_true(gmax > 0.0 && xmax > 0.0);
    assert_true(m <= BATCH_RTOL * (gmax > xmax ? gmax : xmax));
    grads_free(&a);
    grads_free(&b);
    fixture_free(&f);
}

/* ---- (6) cpu vs sim ------------------------------------------------------ */

static void expect_bitwise(const char *what, const float *a, const float *b, size_t n,
                           int *all_equal)
{
    int bw = 1;
    const double m = max_diff(a, b, n, &bw);
    if (!bw) {
        fprintf(stderr, "cpu vs sim: %s differs (max |diff| %.3g)\n", what, m);
        *all_equal = 0;
    }
}

static void test_cpu_vs_sim(void **state)
{
    const tcase *tc = *state;
    fixture c, s;
    if (!dlv_backend_built("sim")) {
        print_message("the sim backend is not in this build (-Dsim=disabled)\n");
        return;
    }
    fixture_init(&c, tc->dir, "cpu", 7);
    fixture_init(&s, tc->dir, "sim", 7);
    assert_false(dlv_backend_caps(s.be) & DLV_BACKEND_CAP_HOST_MEMORY);
    assert_int_equal(c.n_flat, s.n_flat);
    assert_memory_equal(c.embeds, s.embeds, plane(&c) * sizeof(float));
    assert_memory_equal(c.lora.params, s.lora.params, c.lora.n_params * sizeof(float));
    const size_t P = plane(&c), n_states = (size_t)c.L + 1;
    int equal = 1;
    size_t n_values = 0;
    /* The inference forward (host wrapper), with the LoRA. */
    {
        float *all[2], *last[2];
        fixture *fx[2] = {&c, &s};
        for (int k = 0; k < 2; k++) {
            all[k] = xcalloc(n_states * P, sizeof(float));
            last[k] = xcalloc((size_t)(c.batch * c.H), sizeof(float));
            check_ok(dlv_text_forward_lora(fx[k]->m, fx[k]->be, &fx[k]->lora, fx[k]->embeds,
                                           fx[k]->lengths, fx[k]->batch, fx[k]->len, last[k],
                                           (size_t)(c.batch * c.H), all[k], n_states * P));
        }
        expect_bitwise("inference all_hidden", all[0], all[1], n_states * P, &equal);
        expect_bitwise("inference last_hidden", last[0], last[1], (size_t)(c.batch * c.H),
                       &equal);
        n_values += n_states * P + (size_t)(c.batch * c.H);
        for (int k = 0; k < 2; k++) {
            free(all[k]);
            free(last[k]);
        }
    }
    /* The decoder without a tape over the f32 copies, with the LoRA. */
    {
        float *h[2];
        fixture *fx[2] = {&c, &s};
        for (int k = 0; k < 2; k++) {
            check_ok(dlv_decoder_forward(fx[k]->be, &fx[k]->d.text, &fx[k]->wtrained.text,
                                         &fx[k]->dl.dl, dlv_buffer_ptr(&fx[k]->demb),
                                         fx[k]->lengths, fx[k]->batch, fx[k]->len, 0, NULL,
                                         dlv_buffer_ptr(&fx[k]->dhid), NULL));
            h[k] = host_f32(&fx[k]->dhid, P);
        }
        expect_bitwise("decoder hidden", h[0], h[1], P, &equal);
        n_values += P;
        free(h[0]);
        free(h[1]);
    }
    /* Backwards: every gradient of the f32 copies, the LoRA and dx, with
     * and without recomputation; the checkpoint weights (bf16 too). */
    for (int rc = 0; rc < 2; rc++) {
        grads gc, gs;
        collect(&c, rc, &c.demb, &c.dr, &gc);
        collect(&s, rc, &s.demb, &s.dr, &gs);
        char what[64];
        snprintf(what, sizeof what, "weight grads (recompute %d)", rc);
        expect_bitwise(what, gc.w, gs.w, gc.nw, &equal);
        snprintf(what, sizeof what, "LoRA grads (recompute %d)", rc);
        expect_bitwise(what, gc.lora, gs.lora, gc.nl, &equal);
        snprintf(what, sizeof what, "dx (recompute %d)", rc);
        expect_bitwise(what, gc.dx, gs.dx, gc.nx, &equal);
        n_values += gc.nw + gc.nl + gc.nx;
        assert_true(max_abs(gc.w, gc.nw) > 0.0);
        grads_free(&gc);
        grads_free(&gs);
        collect_frozen(&c, rc, &gc);
        collect_frozen(&s, rc, &gs);
        snprintf(what, sizeof what, "frozen: LoRA grads (recompute %d)", rc);
        expect_bitwise(what, gc.lora, gs.lora, gc.nl, &equal);
        snprintf(what, sizeof what, "frozen: dx (recompute %d)", rc);
        expect_bitwise(what, gc.dx, gs.dx, gc.nx, &equal);
        n_values += gc.nl + gc.nx;
        grads_free(&gc);
        grads_free(&gs);
    }
    /* Host memory where the block wants device memory fails on sim: the
     * output, and a LoRA whose A and B are the host params. (A host x or
     * dhidden is not caught: the block's first use of them is a dlv_copy,
     * which sim does not check.) */
    dlv_status st = dlv_decoder_forward(s.be, &s.d.text, s.frozen, NULL, dlv_buffer_ptr(&s.demb),
                                        s.lengths, s.batch, s.len, 0, NULL, s.r, NULL);
    if (st != DLV_E_INVALID_ARG || !strstr(dlv_last_error(), "host memory"))
        fprintf(stderr, "sim with a host output: status %d: %s\n", (int)st, dlv_last_error());
    assert_int_equal(st, DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "host memory"));
    dlv_lora_pair *hp = xcalloc((size_t)s.lora.n_layers * DLV_LORA_N_MODULES, sizeof *hp);
    dlv_lora_pairs(&s.lora, s.lora.params, hp);
    const dlv_decoder_lora hl = {hp, s.lora.rank};
    st = dlv_decoder_forward(s.be, &s.d.text, s.frozen, &hl, dlv_buffer_ptr(&s.demb), s.lengths,
                             s.batch, s.len, 0, NULL, dlv_buffer_ptr(&s.dhid), NULL);
    if (st != DLV_E_INVALID_ARG || !strstr(dlv_last_error(), "host memory"))
        fprintf(stderr, "sim with a host LoRA: status %d: %s\n", (int)st, dlv_last_error());
    assert_int_equal(st, DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "host memory"));
    free(hp);
    printf("%s: cpu vs sim: %zu values (forwards, gradients), %s\n", tc->dir, n_values,
           equal ? "bitwise equal" : "DIFFERENT");
    assert_true(equal);
    fixture_free(&c);
    fixture_free(&s);
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
    fixture_init(&f, ckpts[0], "cpu", 8);
    dlv_backend *be = f.be;
    const dlv_decoder_dims *d = &f.d.text;
    const float *x = dlv_buffer_ptr(&f.demb), *dh = dlv_buffer_ptr(&f.dr);
    float *hidden = dlv_buffer_ptr(&f.dhid);
    dlv_decoder_tape *const sentinel = (dlv_decoder_tape *)&f;
    dlv_decoder_tape *tape = sentinel;
    int32_t bad_len[3] = {6, 0, 1};
    expect_error(dlv_decoder_forward(be, d, f.frozen, NULL, x, bad_len, f.batch, f.len, 0, &tape,
                                     hidden, NULL),
                 DLV_E_INVALID_ARG, "lengths[1] = 0");
    assert_null(tape);
    bad_len[1] = 7;
    expect_error(dlv_decoder_forward(be, d, f.frozen, NULL, x, bad_len, f.batch, f.len, 0, &tape,
                                     hidden, NULL),
                 DLV_E_INVALID_ARG, "lengths[1] = 7");
    expect_error(dlv_decoder_forward(be, d, f.frozen, NULL, x, f.lengths, 0, f.len, 0, &tape,
                                     hidden, NULL),
                 DLV_E_INVALID_ARG, "batch = 0");
    tape = sentinel;
    expect_error(dlv_decoder_forward(be, d, NULL, NULL, x, f.lengths, f.batch, f.len, 0, &tape,
                                     hidden, NULL),
                 DLV_E_INVALID_ARG, "NULL argument");
    assert_null(tape);
    expect_error(dlv_decoder_forward(be, d, f.frozen, NULL, x, f.lengths, f.batch, f.len, 0,
                                     &tape, NULL, NULL),
                 DLV_E_INVALID_ARG, "NULL argument");
    expect_error(dlv_decoder_forward(be, d, f.frozen, NULL, NULL, f.lengths, f.batch, f.len, 0,
                                     &tape, hidden, NULL),
                 DLV_E_INVALID_ARG, "NULL argument");
    const dlv_decoder_lora rank0 = {f.dl.pairs, 0};
    expect_error(dlv_decoder_forward(be, d, f.frozen, &rank0, x, f.lengths, f.batch, f.len, 0,
                                     &tape, hidden, NULL),
                 DLV_E_INVALID_ARG, "a LoRA of rank 0");
    check_ok(dlv_decoder_forward(be, d, f.frozen, NULL, x, f.lengths, f.batch, f.len, 0, &tape,
                                 hidden, NULL));
    /* The backward's LoRA must be the forward's. */
    expect_error(dlv_decoder_backward(be, f.frozen, NULL, &f.dl.dl, f.dl.gpairs, tape, dh, NULL),
                 DLV_E_INVALID_ARG, "LoRA differ");
    expect_error(dlv_decoder_backward(be, f.frozen, NULL, NULL, f.dl.gpairs, tape, dh, NULL),
                 DLV_E_INVALID_ARG, "LoRA differ");
    expect_error(dlv_decoder_backward(be, f.frozen, NULL, NULL, NULL, tape, NULL, NULL),
                 DLV_E_INVALID_ARG, "NULL argument");
    expect_error(dlv_decoder_backward(be, f.frozen, NULL, NULL, NULL, NULL, dh, NULL),
                 DLV_E_INVALID_ARG, "NULL argument");
    /* Gradients of another shape (a layer short). */
    dlv_decoder_w short_g = f.wgrad.text;
    short_g.n_layers--;
    expect_error(dlv_decoder_backward(be, &f.wtrained.text, &short_g, NULL, NULL, tape, dh, NULL),
                 DLV_E_INVALID_ARG, "weights or the LoRA differ");
    /* The gradient buffers were not touched by the refused calls. */
    float *g = host_f32(&f.gbuf, f.n_flat);
    assert_true(max_abs(g, f.n_flat) == 0.0);
    free(g);
    dlv_decoder_tape_free(tape);
    /* A LoRA of another rank in the backward. */
    dlv_lora other;
    check_ok(dlv_lora_create(f.t, 2, 8.0, 0, DLV_LORA_ALL, &other));
    dev_lora dother;
    dev_lora_init(be, &other, &dother);
    check_ok(dlv_decoder_forward(be, d, f.frozen, &f.dl.dl, x, f.lengths, f.batch, f.len, 1,
                                 &tape, hidden, NULL));
    expect_error(dlv_decoder_backward(be, f.frozen, NULL, &dother.dl, dother.gpairs, tape, dh,
                                      NULL),
                 DLV_E_INVALID_ARG, "LoRA differ");
    /* The right one still works on the same tape. */
    check_ok(dlv_decoder_backward(be, f.frozen, NULL, &f.dl.dl, f.dl.gpairs, tape, dh, NULL));
    dlv_decoder_tape_free(tape);
    dev_lora_free(&dother);
    dlv_lora_free(&other);
    assert_true(dlv_decoder_tape_bytes(d, f.L, 0, f.batch, f.len, 1) <
                dlv_decoder_tape_bytes(d, f.L, 0, f.batch, f.len, 0));
    assert_true(dlv_decoder_tape_bytes(d, f.L, 0, f.batch, f.len, 0) <
                dlv_decoder_tape_bytes(d, f.L, 4, f.batch, f.len, 0));
    dlv_decoder_tape_free(NULL);
    fixture_free(&f);
}

/* ---- main ------------------------------------------------------------------ */

typedef struct test_def {
    void (*fn)(void **);
    const char *label;
    const char *backend;
} test_def;

static const test_def defs[] = {
    {test_forward_matches, "forward", "cpu"},
    {test_fd_embeds_lora, "fd embeds+lora", "cpu"},
    {test_fd_weights, "fd weights", "cpu"},
    {test_recompute, "recompute", "cpu"},
    {test_padding, "padding", "cpu"},
    {test_batch_sums, "batch sums", "cpu"},
    {test_forward_matches, "forward (sim)", "sim"},
    {test_recompute, "recompute (sim)", "sim"},
    {test_padding, "padding (sim)", "sim"},
    {test_cpu_vs_sim, "cpu vs sim", "sim"},
};
#define N_DEFS (sizeof defs / sizeof defs[0])

int main(int argc, char **argv)
{
    if (argc < 2 || argc - 1 > MAX_CKPTS) {
        fprintf(stderr, "usage: test_text_train CKPT_DIR [CKPT_DIR ...] (at most %d)\n",
                MAX_CKPTS);
        return 2;
    }
    n_ckpts = argc - 1;
    static struct CMUnitTest tests[MAX_CKPTS * N_DEFS + 1];
    static char names[MAX_CKPTS * N_DEFS][200];
    static tcase cases[MAX_CKPTS * N_DEFS];
    size_t n = 0;
    for (int i = 0; i < n_ckpts; i++) {
        ckpts[i] = argv[1 + i];
        const char *base = strrchr(ckpts[i], '/');
        base = base ? base + 1 : ckpts[i];
        for (size_t j = 0; j < N_DEFS; j++) {
            cases[n] = (tcase){ckpts[i], defs[j].backend};
            tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(defs[j].fn, &cases[n]);
            snprintf(names[n], sizeof names[n], "%s %s", defs[j].label, base);
            tests[n].name = names[n];
            n++;
        }
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_errors);
    return _cmocka_run_group_tests("text_train", tests, n, NULL, NULL);
}
