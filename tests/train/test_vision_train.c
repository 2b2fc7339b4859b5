/* LLaVA's image pathway trained: dlv_llava_vision_forward (with a tape and
 * a `from` stage) and dlv_llava_vision_backward (lib/model/llava/llava_vision.c
 * over the ViT and encoder blocks, model/nn/vit.h, model/nn/encoder.h).
 *
 *   test_vision_train DIR [DIR]...
 *
 * Each DIR is a tiny checkpoint generated at build time (CLIP and SigLIP,
 * f32 and bf16). Every input and output of the blocks is device memory
 * (uploaded / downloaded; never dereferenced). Trainable weights are f32
 * copies in one flat device buffer, widened on the host from the
 * checkpoint (dlv_st_read_f32) and uploaded; a copy of the model's tensor
 * array (dlv_model_device_weights) with the trained entries pointing into
 * it, and a gradient array (tensors only for trained weights), are bound
 * with dlv_llava_w_bind, as the trainer (lib/train/kind_llava.c) does.
 * Feature selections other than the checkpoint's own (CLIP layer -2 +
 * "default", SigLIP -1 + "full") are the test's own dlv_llava_dims; only
 * the reference dlv_vision_features, which reads them from the config,
 * sees them set on the loaded config for the call. For each checkpoint:
 *   - the forward equals dlv_vision_features for five selections (the
 *     model's own weights: bit for bit, with and without a tape, from any
 *     stage, recompute or not; f32 copies: within FWD_TOL);
 * and for the checkpoint's own selection and one other:
 *   - the weight gradients of L = sum(r * features) match central finite
 *     differences (eps FD_EPS on the f32 copies) for every weight the pass
 *     reads, within FD_RTOL (aggregate relative error over sampled elements
 *     of each tensor), and unread weights get no gradient;
 *   - a batch of two images gives the sum of the single-image gradients;
 *     recompute = 1 gives the gradients of recompute = 0 bit for bit, with
 *     a tape no larger (smaller from two layers on);
 *   - training a subset (the projector; the last running layer's fc1; the
 *     position embedding), with `from` its lowest stage and gradient
 *     tensors only for it, gives it the gradient of training everything,
 *     bit for bit, nothing else, with a tape no larger (the projector's:
 *     smaller); a backward asked for gradients below the forward's `from`
 *     gives the stages above their full gradients and nothing below (or
 *     refuses);
 *   - trained f32 copies next to frozen checkpoint-dtype weights of the
 *     same module (linears; LayerNorm pairs are never mixed, see below);
 *   - argument errors (the blocks; the host wrapper);
 *   - the sim backend (device memory the host cannot read) gives the cpu
 *     backend's features and gradients bit for bit, and refuses host
 *     pixels. */
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
#include "disclvlm.h"
#include "io/safetensors.h"
#include "model/device_weights.h"
#include "model/llava/llava_vision.h"
#include "model/llava/llava_weights.h"
#include "model/model.h"
#include "model/llava/vision_tower.h"
#include "model/weights.h"

#define FWD_TOL 1e-6    /* |diff| <= FWD_TOL * (1 + |want|) */
#define FD_EPS 1e-2f
#define FD_RTOL 1e-2   /* ||fd - an|| / ||an|| over a tensor's samples */
#define BATCH_RTOL 1e-5 /* batch gradient vs the sum of single ones */
#define N_SAMPLES 8
/* An element's gradient below NEGLIGIBLE * (the largest |gradient| of the
 * model) is left out of the relative aggregate (f32 rounding in L dominates
 * its finite difference); a tensor with only such samples (k_proj.bias,
 * whose exact gradient is 0: softmax is shift-invariant) must instead have
 * |fd - an| <= NEGLIGIBLE * that maximum. */
#define NEGLIGIBLE 1e-3

static char **dirs;
static int n_dirs;

static uint32_t rng_state;
static float urand(void) /* [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) / (double)(1 << 24) * 2.0 - 1.0);
}

static void ok(dlv_status st)
{
    if (st != DLV_OK) fprintf(stderr, "%s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
}

static dlv_backend *backend(const char *name, int n_threads)
{
    dlv_backend_config bc = {.device = 0, .n_threads = n_threads};
    dlv_backend *be = NULL;
    ok(dlv_backend_create(name, &bc, &be));
    return be;
}

static int have_sim(void)
{
    if (dlv_backend_built("sim")) return 1;
    print_message("the sim backend is not in this build (-Dsim=disabled)\n");
    return 0;
}

/* The model in dir with its weights on backend be_name. */
static dlv_model *load(const char *dir, const char *be_name)
{
    dlv_model_options *o = NULL;
    ok(dlv_model_options_new(&o));
    ok(dlv_model_options_set_backend(o, be_name));
    dlv_model *m = NULL;
    dlv_status st = dlv_model_load(dir, o, &m);
    if (st != DLV_OK) fprintf(stderr, "%s: %s\n", dir, dlv_last_error());
    assert_int_equal(st, DLV_OK);
    dlv_model_options_free(o);
    return m;
}

/* ---- Feature selections -------------------------------------------------- */

/* vision_feature_layer, full. */
typedef struct selection {
    int64_t layer;
    int full;
} selection;
static const selection selections[] = {{-2, 0}, {-1, 1}, {-1, 0}, {0, 1}, {-2, 1}};
#define N_SEL (sizeof selections / sizeof selections[0])

static selection own_selection(const dlv_model *m)
{
    const dlv_llava_config *cfg = dlv_model_config(m);
    selection s = {cfg->vision_feature_layer, cfg->vision_feature_select_full};
    return s;
}

/* The checkpoint's own and one other. */
static void two_selections(const dlv_model *m, selection out[2])
{
    out[0] = own_selection(m);
    out[1] = (selection){out[0].layer == -1 ? -2 : -1, !out[0].full};
}

static const char *strategy(selection s) { return s.full ? "full" : "default"; }

/* m's network dimensions with selection s (the config untouched). */
static dlv_llava_dims dims_sel(const dlv_model *m, selection s)
{
    const dlv_llava_config *cfg = dlv_model_config(m);
    dlv_llava_dims d;
    dlv_llava_dims_of(cfg, &d);
    const int64_t L = cfg->vision.num_hidden_layers;
    d.vision_run = s.layer < 0 ? s.layer + L + 1 : s.layer;
    d.select_full = s.full;
    d.n_features = s.full ? d.vision_seq : d.vision_seq - 1;
    assert_true(d.vision_run >= 0 && d.vision_run <= L);
    return d;
}

static size_t px_floats(const dlv_llava_dims *d) /* per image */
{
    return (size_t)(d->vision.channels * d->vision.image_size * d->vision.image_size);
}

static size_t out_floats(const dlv_llava_dims *d) /* per image */
{
    return (size_t)(d->n_features * d->text.hidden);
}

/* The reference: dlv_vision_features, which reads the selection from the
 * model's config. The loaded config is the model's own (not const where it
 * lives): s is set for the call and the checkpoint's restored after; the
 * dimensions the library derives from it must be the test's. */
static void reference(dlv_model *m, dlv_backend *be, selection s, const float *pixels,
                      int64_t n, float *out, size_t out_len)
{
    const dlv_llava_config *ccfg = dlv_model_config(m);
    dlv_llava_config *cfg;
    memcpy(&cfg, &ccfg, sizeof cfg); /* drop const without a cast-qual warning */
    const selection saved = own_selection(m);
    cfg->vision_feature_layer = s.layer;
    cfg->vision_feature_select_full = s.full;
    dlv_llava_dims lib, mine = dims_sel(m, s);
    dlv_llava_dims_of(cfg, &lib);
    assert_int_equal(lib.vision_run, mine.vision_run);
    assert_int_equal(lib.n_features, mine.n_features);
    assert_int_equal(lib.select_full, mine.select_full);
    assert_int_equal(dlv_vision_n_tokens(cfg), mine.n_features);
    assert_int_equal(dlv_vision_select_index(cfg), mine.vision_run);
    dlv_status st = dlv_vision_features(m, be, pixels, n, out, out_len);
    cfg->vision_feature_layer = saved.layer;
    cfg->vision_feature_select_full = saved.full;
    ok(st);
}

static float *random_floats(size_t n, float scale)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = scale * urand();
    return p;
}

/* ---- Device memory -------------------------------------------------------- */

/* n floats on be: host's values uploaded (host NULL: zeroed). */
typedef struct dev {
    dlv_buffer b;
    float *p;     /* device address, never dereferenced */
    size_t n;
} dev;

static dev dev_new(dlv_backend *be, size_t n, const float *host)
{
    dev d = {.n = n};
    ok(dlv_buffer_alloc(be, n * sizeof(float), &d.b));
    if (host) ok(dlv_buffer_upload(&d.b, 0, host, n * sizeof(float)));
    else ok(dlv_buffer_zero(&d.b, 0, n * sizeof(float)));
    d.p = dlv_buffer_ptr(&d.b);
    return d;
}

static void dev_get(float *host, const dev *d)
{
    ok(dlv_buffer_download(host, &d->b, 0, d->n * sizeof(float)));
}

static void dev_free(dev *d) { dlv_buffer_free(&d->b); }

/* Device address of image i of a device array with `per` floats each
 * (integer arithmetic only: nothing is dereferenced). */
static const float *img(const dev *d, size_t per, int64_t i) { return d->p + (size_t)i * per; }

/* ---- Trainable copies ------------------------------------------------------ */

static int is_vision(const dlv_weight *w)
{
    return (w->part == DLV_PART_VISION || w->part == DLV_PART_PROJECTOR) && w->tensor;
}

/* The model's tensor array with some vision / projector weights replaced by
 * f32 copies in `vals` (flat, one device buffer) and the gradients of the
 * trained ones in `grads` (same layout); bound into w and gw. */
typedef struct copies {
    const dlv_weights *W;
    size_t n_floats;
    size_t *off;       /* [W->n] float offset of a copy, SIZE_MAX: the model's tensor */
    int *trained;      /* [W->n] */
    dlv_buffer vals, grads;
    dlv_tensor *tv, *tg;
    dlv_llava_w w, gw;
} copies;

/* copy NULL: every present vision / projector weight is an f32 copy;
 * train NULL: every copy is trained (a trained weight is always a copy). */
static copies *make_copies(const dlv_model *m, dlv_backend *be, const int *copy,
                           const int *train)
{
    copies *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->W = dlv_model_weights(m);
    const dlv_device_weights *dw = dlv_model_device_weights(m);
    const size_t n = c->W->n;
    assert_int_equal(dw->n, n);
    c->off = malloc(n * sizeof *c->off);
    c->trained = calloc(n, sizeof *c->trained);
    c->tv = calloc(n, sizeof *c->tv);
    c->tg = calloc(n, sizeof *c->tg);
    assert_true(c->off && c->trained && c->tv && c->tg);
    for (size_t i = 0; i < n; i++) {
        const dlv_weight *w = &c->W->items[i];
        c->off[i] = SIZE_MAX;
        c->trained[i] = is_vision(w) && (train ? train[i] : 1);
        if (!is_vision(w) || !(c->trained[i] || (copy ? copy[i] : 1))) continue;
        c->off[i] = c->n_floats;
        c->n_floats += (size_t)w->tensor->n_elements;
    }
    ok(dlv_buffer_alloc(be, c->n_floats * sizeof(float), &c->vals));
    ok(dlv_buffer_alloc(be, c->n_floats * sizeof(float), &c->grads));
    ok(dlv_buffer_zero(&c->grads, 0, c->n_floats * sizeof(float)));
    for (size_t i = 0; i < n; i++) {
        c->tv[i] = dw->t[i];
        if (c->off[i] == SIZE_MAX) continue;
        const dlv_st_tensor *ten = c->W->items[i].tensor;
        const size_t ne = (size_t)ten->n_elements;
        assert_int_equal(dlv_tensor_nelem(&dw->t[i]), (int64_t)ne);
        float *host = malloc((ne ? ne : 1) * sizeof *host);
        assert_non_null(host);
        ok(dlv_st_read_f32(ten, 0, ne, host));
        ok(dlv_buffer_upload(&c->vals, c->off[i] * sizeof(float), host, ne * sizeof(float)));
        free(host);
        dlv_tensor t = dw->t[i];
        t.dtype = DLV_DTYPE_F32;
        t.offset = c->off[i] * sizeof(float);
        t.buf = &c->vals;
        c->tv[i] = t;
        if (c->trained[i]) {
            t.buf = &c->grads;
            c->tg[i] = t;
        }
    }
    const dlv_llava_config *cfg = dlv_model_config(m);
    ok(dlv_llava_w_bind(cfg, c->W, c->tv, &c->w));
    ok(dlv_llava_w_bind(cfg, c->W, c->tg, &c->gw));
    return c;
}

static void free_copies(copies *c)
{
    if (!c) return;
    dlv_llava_w_free(&c->w);
    dlv_llava_w_free(&c->gw);
    dlv_buffer_free(&c->vals);
    dlv_buffer_free(&c->grads);
    free(c->off);
    free(c->trained);
    free(c->tv);
    free(c->tg);
    free(c);
}

/* Every gradient, downloaded: weight i's at [off[i], off[i] + n). */
static float *grads_host(const copies *c)
{
    float *g = malloc((c->n_floats ? c->n_floats : 1) * sizeof *g);
    assert_non_null(g);
    ok(dlv_buffer_download(g, &c->grads, 0, c->n_floats * sizeof(float)));
    return g;
}

static float get_value(const copies *c, size_t i, size_t j)
{
    float v;
    ok(dlv_buffer_download(&v, &c->vals, (c->off[i] + j) * sizeof(float), sizeof v));
    return v;
}

static void set_value(copies *c, size_t i, size_t j, float v)
{
    ok(dlv_buffer_upload(&c->vals, (c->off[i] + j) * sizeof(float), &v, sizeof v));
}

static size_t n_elem(const copies *c, size_t i) { return (size_t)c->W->items[i].tensor->n_elements; }

static ptrdiff_t index_of(const dlv_weights *W, dlv_weight_part part, const char *canonical)
{
    for (size_t i = 0; i < W->n; i++)
        if (W->items[i].part == part && strcmp(W->items[i].canonical, canonical) == 0)
            return (ptrdiff_t)i;
    return -1;
}

/* ---- Passes ---------------------------------------------------------------- */

/* The features of n images (device pixels px) into host feat (NULL: not
 * wanted); *tape as dlv_llava_vision_forward's. */
static void forward(dlv_backend *be, const dlv_llava_dims *d, const dlv_llava_w *w,
                    const float *px, int64_t n, int64_t from, int rc,
                    dlv_llava_vision_tape **tape, float *feat)
{
    dev f = dev_new(be, (size_t)n * out_floats(d), NULL);
    ok(dlv_llava_vision_forward(be, d, w, px, n, from, rc, tape, f.p, NULL));
    if (feat) dev_get(feat, &f);
    dev_free(&f);
}

/* Forward with a tape from stage `from`, then the backward for dfeatures
 * r (device): c's gradients accumulate. */
static void grads_for(dlv_backend *be, const dlv_llava_dims *d, copies *c, const float *px,
                      int64_t n, const float *r, int64_t from, int rc, size_t *tape_bytes)
{
    dlv_llava_vision_tape *t = NULL;
    forward(be, d, &c->w, px, n, from, rc, &t, NULL);
    assert_non_null(t);
    ok(dlv_llava_vision_backward(be, &c->w, &c->gw, t, r));
    if (tape_bytes) *tape_bytes = dlv_llava_vision_tape_bytes(t);
    dlv_llava_vision_tape_free(t);
}

static double loss(dlv_backend *be, const dlv_llava_dims *d, const copies *c, const float *px,
                   int64_t n, const float *r, float *feat)
{
    forward(be, d, &c->w, px, n, -1, 0, NULL, feat);
    double L = 0;
    for (size_t i = 0; i < (size_t)n * out_floats(d); i++) L += (double)r[i] * (double)feat[i];
    return L;
}

/* ---- Forward ----------------------------------------------------------- */

static double max_rel_diff(const float *got, const float *want, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]) / (1.0 + fabs((double)want[i]));
        if (!(e <= worst)) worst = e; /* NaN sticks */
    }
    return worst;
}

static void test_forward(void **state)
{
    (void)state;
    dlv_backend *be = backend("cpu", 2);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *m = load(dirs[di], "cpu");
        const dlv_llava_w *mw = dlv_model_llava_w(m);
        for (size_t s = 0; s < N_SEL; s++) {
            const selection sel = selections[s];
            const dlv_llava_dims d = dims_sel(m, sel);
            const int64_t n = 2;
            const size_t no = (size_t)n * out_floats(&d);
            rng_state = 7;
            float *pixels = random_floats((size_t)n * px_floats(&d), 2.0f);
            float *want = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
            assert_true(want && got);
            reference(m, be, sel, pixels, n, want, no);
            dev px = dev_new(be, (size_t)n * px_floats(&d), pixels);

            /* The model's weights, with and without a tape, the tape from
             * every stage (embeddings, each layer, the projector only),
             * recompute or not: the same bits. */
            for (int64_t from = -2; from <= d.vision_run; from++)
                for (int rc = 0; rc < 2; rc++) {
                    dlv_llava_vision_tape *t = NULL;
                    memset(got, 0xff, no * sizeof(float));
                    forward(be, &d, mw, px.p, n, from < -1 ? -1 : from, rc,
                            from == -2 ? NULL : &t, got);
                    assert_memory_equal(got, want, no * sizeof(float));
                    if (from == -2) assert_null(t);
                    else assert_non_null(t);
                    dlv_llava_vision_tape_free(t);
                }
            /* f32 copies, every weight trained. */
            copies *c = make_copies(m, be, NULL, NULL);
            double e = 0;
            for (int rc = 0; rc < 2; rc++) {
                dlv_llava_vision_tape *t = NULL;
                forward(be, &d, &c->w, px.p, n, -1, rc, &t, got);
                double er = max_rel_diff(got, want, no);
                if (er > e) e = er;
                dlv_llava_vision_tape_free(t);
            }
            printf("  %s layer %lld %s: forward vs dlv_vision_features: model weights exact "
                   "(every from, recompute or not), f32 copies max rel diff %.3g\n", dirs[di],
                   (long long)sel.layer, strategy(sel), e);
            assert_true(e <= FWD_TOL);
            free_copies(c);
            dev_free(&px);
            free(pixels);
            free(want);
            free(got);
        }
        dlv_model_free(m);
    }
    dlv_backend_destroy(be);
}

/* ---- Gradients by finite differences ------------------------------------ */

/* Whether the pass reads weight w: the projector, the embeddings, CLIP's
 * pre_layrnorm and the layers below the selected hidden state (not the
 * later layers, post_layernorm or a pooling head). */
static int is_read(const dlv_weight *w, const dlv_llava_dims *d)
{
    if (w->part == DLV_PART_PROJECTOR) return 1;
    long long l = -1;
    if (sscanf(w->canonical, "vision_model.encoder.layers.%lld.", &l) == 1)
        return l < d->vision_run;
    return strstr(w->canonical, "embeddings.") != NULL ||
           strstr(w->canonical, "pre_layrnorm.") != NULL;
}

static void fd_check(const dlv_model *m, dlv_backend *be, selection sel, const char *label)
{
    const dlv_llava_dims d = dims_sel(m, sel);
    const int64_t n = 2;
    const size_t no = (size_t)n * out_floats(&d);
    rng_state = 11;
    float *pixels = random_floats((size_t)n * px_floats(&d), 2.0f);
    float *r = random_floats(no, 1.0f);
    float *feat = malloc(no * sizeof(float));
    assert_non_null(feat);
    dev px = dev_new(be, (size_t)n * px_floats(&d), pixels), dr = dev_new(be, no, r);
    copies *c = make_copies(m, be, NULL, NULL);
    grads_for(be, &d, c, px.p, n, dr.p, -1, 0, NULL);
    float *g = grads_host(c);

    double gmax = 0;
    for (size_t j = 0; j < c->n_floats; j++)
        if (fabs((double)g[j]) > gmax) gmax = fabs((double)g[j]);
    const double floor_abs = NEGLIGIBLE * gmax;
    double worst = 0, worst_abs = 0;
    size_t n_checked = 0, n_zero_ok = 0, n_tiny = 0;
    for (size_t i = 0; i < c->W->n; i++) {
        const dlv_weight *w = &c->W->items[i];
        if (!c->trained[i]) continue;
        const size_t ne = n_elem(c, i);
        const float *gi = g + c->off[i];
        double gnorm = 0;
        size_t imax = 0;
        for (size_t j = 0; j < ne; j++) {
            gnorm += (double)gi[j] * (double)gi[j];
            if (fabsf(gi[j]) > fabsf(gi[imax])) imax = j;
        }
        if (!is_read(w, &d)) { /* its gradient stays 0 */
            if (gnorm != 0) fprintf(stderr, "%s: %s: unread weight has a gradient\n", label,
                                    w->canonical);
            assert_true(gnorm == 0);
            n_zero_ok++;
            continue;
        }
        if (!(gnorm > 0)) fprintf(stderr, "%s: %s: zero gradient\n", label, w->canonical);
        assert_true(gnorm > 0);
        /* Samples: the largest element and N_SAMPLES - 1 random ones. */
        double num = 0, den = 0, max_abs = 0;
        for (int k = 0; k < N_SAMPLES; k++) {
            size_t j = k == 0 ? imax : (size_t)((urand() + 1.0f) * 0.5f * (float)ne) % ne;
            const float saved = get_value(c, i, j);
            set_value(c, i, j, saved + FD_EPS);
            double lp = loss(be, &d, c, px.p, n, r, feat);
            set_value(c, i, j, saved - FD_EPS);
            double lm = loss(be, &d, c, px.p, n, r, feat);
            set_value(c, i, j, saved);
            /* The step actually taken, in f32. */
            double h = (double)(saved + FD_EPS) - (double)(saved - FD_EPS);
            double fd = (lp - lm) / h, an = (double)gi[j];
            if (fabs(fd - an) > max_abs) max_abs = fabs(fd - an);
            if (fabs(an) < floor_abs) continue;
            num += (fd - an) * (fd - an);
            den += an * an;
        }
        if (den == 0) { /* only negligible gradients: an absolute check */
            if (getenv("VT_VERBOSE"))
                printf("    %-60s negligible, |fd - an| max %.3g (floor %.3g)\n",
                       w->canonical, max_abs, floor_abs);
            if (max_abs > worst_abs) worst_abs = max_abs;
            if (max_abs > floor_abs)
                fprintf(stderr, "%s: %s: negligible gradient but |fd - an| %.3g > %.3g\n",
                        label, w->canonical, max_abs, floor_abs);
            assert_true(max_abs <= floor_abs);
            n_tiny++;
            continue;
        }
        double rel = sqrt(num / den);
        if (getenv("VT_VERBOSE"))
            printf("    %-60s rel %.3g  |g| max %.3g\n", w->canonical, rel,
                   (double)fabsf(gi[imax]));
        if (rel > worst) worst = rel;
        if (rel > FD_RTOL)
            fprintf(stderr, "%s: %s: FD relative error %.3g > %.3g\n", label, w->canonical,
                    rel, FD_RTOL);
        assert_true(rel <= FD_RTOL);
        n_checked++;
    }
    printf("  %s: %zu tensors FD-checked, worst aggregate relative error %.3g; %zu with "
           "only negligible gradients (worst |fd - an| %.2g, floor %.2g); %zu unread "
           "tensors with zero gradient\n", label, n_checked, worst, n_tiny, worst_abs,
           floor_abs, n_zero_ok);
    assert_true(n_checked > 0);
    free(g);
    free_copies(c);
    dev_free(&px);
    dev_free(&dr);
    free(pixels);
    free(r);
    free(feat);
}

static void test_gradients(void **state)
{
    (void)state;
    dlv_backend *be = backend("cpu", 2);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *m = load(dirs[di], "cpu");
        selection sels[2];
        two_selections(m, sels);
        for (int s = 0; s < 2; s++) {
            char label[512];
            snprintf(label, sizeof label, "%s layer %lld %s", dirs[di], (long long)sels[s].layer,
                     strategy(sels[s]));
            fd_check(m, be, sels[s], label);
        }
        dlv_model_free(m);
    }
    dlv_backend_destroy(be);
}

/* ---- Batch sums, recompute, subsets -------------------------------------- */

/* The stage of the pathway weight w belongs to, as `from` counts them: -1
 * the embeddings (and CLIP's pre_layrnorm), l encoder layer l, INT64_MAX
 * the rest (the projector; post_layernorm, which nothing reads). */
static int64_t stage_of(const dlv_weight *w)
{
    long long l = -1;
    if (w->part != DLV_PART_VISION) return INT64_MAX;
    if (sscanf(w->canonical, "vision_model.encoder.layers.%lld.", &l) == 1) return l;
    if (strstr(w->canonical, "embeddings.") || strstr(w->canonical, "pre_layrnorm."))
        return -1;
    return INT64_MAX;
}

static void batch_and_subsets(dlv_model *m, dlv_backend *be, selection sel, const char *label)
{
    const dlv_llava_dims d = dims_sel(m, sel);
    const size_t P = px_floats(&d), O = out_floats(&d);
    rng_state = 23;
    float *pixels = random_floats(2 * P, 2.0f);
    float *r = random_floats(2 * O, 1.0f);
    dev px = dev_new(be, 2 * P, pixels), dr = dev_new(be, 2 * O, r);

    copies *both = make_copies(m, be, NULL, NULL), *one = make_copies(m, be, NULL, NULL);
    copies *rc1 = make_copies(m, be, NULL, NULL);
    size_t bytes_all = 0;
    grads_for(be, &d, both, px.p, 2, dr.p, -1, 0, &bytes_all);
    size_t bytes_rc1 = 0;
    grads_for(be, &d, rc1, px.p, 2, dr.p, -1, 1, &bytes_rc1);
    /* Recompute keeps each layer's input and one work set: smaller
     * once the tape covers two layers or more. */
    assert_true(bytes_rc1 <= bytes_all);
    if (d.vision_run >= 2) assert_true(bytes_rc1 < bytes_all);
    grads_for(be, &d, one, img(&px, P, 0), 1, img(&dr, O, 0), -1, 0, NULL);
    grads_for(be, &d, one, img(&px, P, 1), 1, img(&dr, O, 1), -1, 0, NULL);
    float *g_both = grads_host(both), *g_one = grads_host(one), *g_rc1 = grads_host(rc1);
    assert_memory_equal(g_both, g_rc1, both->n_floats * sizeof(float));
    /* A gradient that is zero in exact arithmetic (a key bias: softmax
     * is shift invariant) is float noise in both sums, whose relative
     * difference means nothing; its norm is compared with the largest
     * tensor's instead (NEGLIGIBLE of it, as the finite-difference
     * check does). */
    double gnorm_max = 0;
    for (size_t i = 0; i < both->W->n; i++) {
        if (!both->trained[i]) continue;
        double s2 = 0;
        for (size_t j = 0; j < n_elem(both, i); j++) {
            const double v = (double)g_both[both->off[i] + j];
            s2 += v * v;
        }
        if (sqrt(s2) > gnorm_max) gnorm_max = sqrt(s2);
    }
    double worst = 0;
    for (size_t i = 0; i < both->W->n; i++) {
        if (!both->trained[i]) continue;
        double num = 0, den = 0;
        for (size_t j = 0; j < n_elem(both, i); j++) {
            const double b = (double)g_both[both->off[i] + j], o = (double)g_one[both->off[i] + j];
            num += (b - o) * (b - o);
            den += b * b;
        }
        const double floor_norm = NEGLIGIBLE * gnorm_max;
        double rel = sqrt(num) / (sqrt(den) > floor_norm ? sqrt(den) : floor_norm);
        if (rel > worst) worst = rel;
        if (rel > BATCH_RTOL)
            fprintf(stderr, "%s: %s: batch vs sum of singles %.3g\n", label,
                    both->W->items[i].canonical, rel);
        assert_true(rel <= BATCH_RTOL);
    }
    printf("  %s: batch of 2 vs sum of singles: worst relative error %.3g; recompute "
           "bit-identical (tape %zu bytes, %zu without recompute)\n", label, worst,
           bytes_rc1, bytes_all);

    /* Subsets, each trained alone from its own lowest stage: the
     * projector's linear_1 (from vision_run: no tower tape); the last
     * running layer's fc1 weight (from that layer); the position
     * embedding (from the embeddings). Every vision weight stays an f32
     * copy, so the values are those `both` trained with. */
    char fc1[DLV_WEIGHT_NAME_MAX];
    snprintf(fc1, sizeof fc1, "vision_model.encoder.layers.%lld.mlp.fc1.weight",
             (long long)d.vision_run - 1);
    const char *subsets[3] = {"linear_1.weight", fc1,
                              "vision_model.embeddings.position_embedding.weight"};
    const dlv_weight_part parts[3] = {DLV_PART_PROJECTOR, DLV_PART_VISION, DLV_PART_VISION};
    const int64_t froms[3] = {d.vision_run, d.vision_run - 1, -1};
    size_t prev_bytes = 0;
    for (int s = 0; s < 3; s++) {
        ptrdiff_t idx = index_of(both->W, parts[s], subsets[s]);
        assert_true(idx >= 0);
        int *trained = calloc(both->W->n, sizeof *trained);
        assert_non_null(trained);
        trained[idx] = 1;
        copies *sub = make_copies(m, be, NULL, trained);
        /* Gradient tensors only for the subset. */
        for (size_t i = 0; i < sub->W->n; i++)
            assert_int_equal(dlv_tensor_present(&sub->tg[i]), (ptrdiff_t)i == idx);
        size_t bytes = 0;
        grads_for(be, &d, sub, px.p, 2, dr.p, froms[s], 0, &bytes);
        float *g_sub = grads_host(sub);
        assert_memory_equal(g_sub + sub->off[idx], g_both + both->off[idx],
                            n_elem(both, idx) * sizeof(float));
        /* Nothing else was written. */
        for (size_t j = 0; j < sub->n_floats; j++)
            if (j < sub->off[idx] || j >= sub->off[idx] + n_elem(sub, idx))
                assert_true(g_sub[j] == 0.0f);
        printf("  %s: only %s trained (from %lld): same gradient, tape %zu bytes "
               "(all: %zu)\n", label, subsets[s], (long long)froms[s], bytes, bytes_all);
        assert_true(bytes <= bytes_all);
        assert_true(bytes >= prev_bytes);
        if (s == 0) assert_true(bytes < bytes_all);
        prev_bytes = bytes;
        free(g_sub);
        free_copies(sub);
        free(trained);
    }

    /* A backward whose gradients reach below the forward's `from` (the
     * projector only; the last running layer up): the stages the tape
     * covers get the full gradients bit for bit, those below nothing (or
     * the call is refused). */
    for (int64_t from = d.vision_run; from >= d.vision_run - 1 && from >= 0; from--) {
        copies *all = make_copies(m, be, NULL, NULL);
        dlv_llava_vision_tape *t = NULL;
        forward(be, &d, &all->w, px.p, 2, from, 0, &t, NULL);
        dlv_status st = dlv_llava_vision_backward(be, &all->w, &all->gw, t, dr.p);
        size_t n_full = 0, n_none = 0;
        if (st == DLV_OK) {
            float *g_all = grads_host(all);
            for (size_t i = 0; i < all->W->n; i++) {
                if (!all->trained[i]) continue;
                const float *gi = g_all + all->off[i];
                const size_t ne = n_elem(all, i);
                if (stage_of(&all->W->items[i]) >= from) {
                    assert_memory_equal(gi, g_both + both->off[i], ne * sizeof(float));
                    n_full++;
                } else {
                    for (size_t j = 0; j < ne; j++) assert_true(gi[j] == 0.0f);
                    n_none++;
                }
            }
            free(g_all);
            printf("  %s: every weight's gradient wanted, tape from %lld: %zu tensors get "
                   "the full gradient, %zu below get none\n", label, (long long)from, n_full,
                   n_none);
        } else {
            assert_int_equal(st, DLV_E_INVALID_ARG);
        }
        dlv_llava_vision_tape_free(t);
        free_copies(all);
    }
    free(g_both);
    free(g_one);
    free(g_rc1);
    free_copies(both);
    free_copies(one);
    free_copies(rc1);
    dev_free(&px);
    dev_free(&dr);
    free(pixels);
    free(r);
}

static void test_batch_and_subsets(void **state)
{
    (void)state;
    dlv_backend *be = backend("cpu", 3);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *m = load(dirs[di], "cpu");
        selection sels[2];
        two_selections(m, sels);
        for (int s = 0; s < 2; s++) {
            char label[512];
            snprintf(label, sizeof label, "%s layer %lld %s", dirs[di], (long long)sels[s].layer,
                     strategy(sels[s]));
            batch_and_subsets(m, be, sels[s], label);
        }
        dlv_model_free(m);
    }
    dlv_backend_destroy(be);
}

/* Trained f32 copies next to frozen weights of the checkpoint's dtype (bf16
 * or f32) in one module: the forward still equals dlv_vision_features, and
 * the trained ones get a finite, nonzero gradient (the FD test covers its
 * value). Pairs of a linear (weight trained, bias frozen, and the reverse;
 * the projector's linear_1) and of a layer norm (layer 0: layer_norm1's
 * weight trained with its bias frozen, layer_norm2's bias trained with its
 * weight frozen).
 *
 * A LayerNorm's weight and bias are not mixed: the ops read both with one
 * dtype, a checkpoint whose pair differs is refused at load
 * (model/weights_bind.c), and the trainer trains whole parts, so a pair is
 * trained or frozen together. */

typedef struct mixed_case {
    const char *what;
    const char *names[3]; /* trained; NULL-terminated */
} mixed_case;

static const mixed_case mixed_cases[] = {
    {"linears: f32 fc1.weight + frozen fc1.bias, frozen q_proj.weight + f32 q_proj.bias, "
     "f32 linear_1.weight + frozen linear_1.bias",
     {"vision_model.encoder.layers.0.mlp.fc1.weight",
      "vision_model.encoder.layers.0.self_attn.q_proj.bias", "linear_1.weight"}},
};

static void test_mixed_dtypes(void **state)
{
    (void)state;
    dlv_backend *be = backend("cpu", 2);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *m = load(dirs[di], "cpu");
        const selection sel = own_selection(m);
        const dlv_llava_dims d = dims_sel(m, sel);
        const size_t no = 2 * out_floats(&d);
        rng_state = 31;
        float *pixels = random_floats(2 * px_floats(&d), 2.0f);
        float *r = random_floats(no, 1.0f);
        float *want = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
        assert_true(want && got);
        reference(m, be, sel, pixels, 2, want, no);
        dev px = dev_new(be, 2 * px_floats(&d), pixels), dr = dev_new(be, no, r);
        const dlv_weights *W = dlv_model_weights(m);
        for (size_t mc = 0; mc < sizeof mixed_cases / sizeof mixed_cases[0]; mc++) {
            const mixed_case *mx = &mixed_cases[mc];
            int *keep = calloc(W->n, sizeof *keep);
            assert_non_null(keep);
            ptrdiff_t idx[3];
            int n_keep = 0;
            for (int k = 0; k < 3 && mx->names[k]; k++) {
                const dlv_weight_part part = strncmp(mx->names[k], "linear_", 7) == 0
                                                 ? DLV_PART_PROJECTOR : DLV_PART_VISION;
                idx[n_keep] = index_of(W, part, mx->names[k]);
                assert_true(idx[n_keep] >= 0);
                assert_non_null(W->items[idx[n_keep]].tensor);
                keep[idx[n_keep]] = 1;
                n_keep++;
            }
            /* Only the listed entries are copies (and trained). */
            copies *c = make_copies(m, be, keep, keep);
            dlv_llava_vision_tape *t = NULL;
            forward(be, &d, &c->w, px.p, 2, -1, 0, &t, got);
            const int same = memcmp(got, want, no * sizeof(float)) == 0;
            if (!same)
                fprintf(stderr, "%s: mixed dtypes (%s): features differ, max rel diff %.3g\n",
                        dirs[di], mx->what, max_rel_diff(got, want, no));
            assert_memory_equal(got, want, no * sizeof(float));
            ok(dlv_llava_vision_backward(be, &c->w, &c->gw, t, dr.p));
            float *g = grads_host(c);
            for (int k = 0; k < n_keep; k++) {
                double sum = 0;
                for (size_t j = 0; j < n_elem(c, (size_t)idx[k]); j++)
                    sum += fabs((double)g[c->off[idx[k]] + j]);
                assert_true(sum > 0 && isfinite(sum));
            }
            printf("  %s: %s (frozen ones %s): forward exact, gradients present\n", dirs[di],
                   mx->what, dlv_dtype_name(W->items[idx[0]].tensor->dtype));
            free(g);
            dlv_llava_vision_tape_free(t);
            free_copies(c);
            free(keep);
        }
        dev_free(&px);
        dev_free(&dr);
        free(pixels);
        free(r);
        free(want);
        free(got);
        dlv_model_free(m);
    }
    dlv_backend_destroy(be);
}

/* ---- The sim backend --------------------------------------------------------- */

/* Features and every gradient on sim equal the cpu backend's bit for bit:
 * the model's weights (forward, and dlv_vision_features), f32 copies with
 * every weight trained (recompute or not) and the projector alone (no
 * tower tape). */
static void test_sim_equals_cpu(void **state)
{
    (void)state;
    if (!have_sim()) skip();
    dlv_backend *bc = backend("cpu", 2), *bs = backend("sim", 2);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *mc = load(dirs[di], "cpu"), *ms = load(dirs[di], "sim");
        assert_false(dlv_backend_caps(dlv_model_backend(ms)) & DLV_BACKEND_CAP_HOST_MEMORY);
        const dlv_weights *W = dlv_model_weights(mc);
        selection sels[2];
        two_selections(mc, sels);
        for (int s = 0; s < 2; s++) {
            const dlv_llava_dims d = dims_sel(mc, sels[s]);
            const int64_t n = 2;
            const size_t np = (size_t)n * px_floats(&d), no = (size_t)n * out_floats(&d);
            rng_state = 41;
            float *pixels = random_floats(np, 2.0f), *r = random_floats(no, 1.0f);
            float *fc = malloc(no * sizeof(float)), *fs = malloc(no * sizeof(float));
            assert_true(fc && fs);
            dev pxc = dev_new(bc, np, pixels), pxs = dev_new(bs, np, pixels);
            dev rc_ = dev_new(bc, no, r), rs = dev_new(bs, no, r);

            reference(mc, bc, sels[s], pixels, n, fc, no);
            reference(ms, bs, sels[s], pixels, n, fs, no);
            assert_memory_equal(fc, fs, no * sizeof(float));
            forward(bs, &d, dlv_model_llava_w(ms), pxs.p, n, -1, 0, NULL, fs);
            assert_memory_equal(fc, fs, no * sizeof(float));

            size_t n_floats = 0;
            for (int v = 0; v < 3; v++) { /* all (recompute 0, 1); the projector alone */
                int *trained = NULL;
                int64_t from = -1;
                if (v == 2) {
                    trained = calloc(W->n, sizeof *trained);
                    assert_non_null(trained);
                    for (size_t i = 0; i < W->n; i++)
                        trained[i] = W->items[i].part == DLV_PART_PROJECTOR;
                    from = d.vision_run;
                }
                copies *cc = make_copies(mc, bc, NULL, trained);
                copies *cs = make_copies(ms, bs, NULL, trained);
                assert_int_equal(cc->n_floats, cs->n_floats);
                dlv_llava_vision_tape *tc = NULL, *ts = NULL;
                forward(bc, &d, &cc->w, pxc.p, n, from, v == 1, &tc, fc);
                forward(bs, &d, &cs->w, pxs.p, n, from, v == 1, &ts, fs);
                assert_memory_equal(fc, fs, no * sizeof(float));
                assert_int_equal(dlv_llava_vision_tape_bytes(tc), dlv_llava_vision_tape_bytes(ts));
                ok(dlv_llava_vision_backward(bc, &cc->w, &cc->gw, tc, rc_.p));
                ok(dlv_llava_vision_backward(bs, &cs->w, &cs->gw, ts, rs.p));
                float *gc = grads_host(cc), *gs = grads_host(cs);
                assert_memory_equal(gc, gs, cc->n_floats * sizeof(float));
                double a = 0;
                for (size_t j = 0; j < cc->n_floats; j++) a += fabs((double)gc[j]);
                assert_true(a > 0);
                n_floats += cc->n_floats;
                free(gc);
                free(gs);
                dlv_llava_vision_tape_free(tc);
                dlv_llava_vision_tape_free(ts);
                free_copies(cc);
                free_copies(cs);
                free(trained);
            }
            printf("  %s layer %lld %s: sim == cpu bit for bit: features (model weights, "
                   "dlv_vision_features, f32 copies) and %zu gradient floats (all trained, "
                   "recompute 0 and 1; projector only)\n", dirs[di], (long long)sels[s].layer,
                   strategy(sels[s]), n_floats);
            dev_free(&pxc);
            dev_free(&pxs);
            dev_free(&rc_);
            dev_free(&rs);
            free(pixels);
            free(r);
            free(fc);
            free(fs);
        }
        dlv_model_free(mc);
        dlv_model_free(ms);
    }
    dlv_backend_destroy(bc);
    dlv_backend_destroy(bs);
}

/* ---- Errors --------------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    dlv_backend *be = backend("cpu", 1);
    dlv_model *m = load(dirs[0], "cpu");
    const dlv_llava_w *w = dlv_model_llava_w(m);
    const dlv_llava_dims d = dims_sel(m, own_selection(m));
    const size_t P = px_floats(&d), O = out_floats(&d);
    dev px = dev_new(be, P, NULL), feat = dev_new(be, O, NULL);
    int sentinel = 0;
    dlv_llava_vision_tape *const bogus = (dlv_llava_vision_tape *)(void *)&sentinel;
    dlv_llava_vision_tape *t = bogus;
#define FW(be_, d_, w_, px_, n_, out_) \
    dlv_llava_vision_forward(be_, d_, w_, px_, n_, -1, 0, &t, out_, NULL)
    assert_int_equal(FW(be, &d, w, NULL, 1, feat.p), DLV_E_INVALID_ARG);
    assert_null(t); /* cleared on failure */
    assert_int_equal(FW(be, &d, w, px.p, 0, feat.p), DLV_E_INVALID_ARG);
    assert_int_equal(FW(be, &d, w, px.p, -1, feat.p), DLV_E_INVALID_ARG);
    assert_int_equal(FW(be, &d, NULL, px.p, 1, feat.p), DLV_E_INVALID_ARG);
    assert_int_equal(FW(be, NULL, w, px.p, 1, feat.p), DLV_E_INVALID_ARG);
    assert_int_equal(FW(NULL, &d, w, px.p, 1, feat.p), DLV_E_INVALID_ARG);
    assert_int_equal(FW(be, &d, w, px.p, 1, NULL), DLV_E_INVALID_ARG);
    assert_null(t);
    /* A selection outside the tower. */
    dlv_llava_dims bad = d;
    bad.vision_run = w->vision.n_layers + 1;
    t = bogus;
    assert_int_equal(FW(be, &bad, w, px.p, 1, feat.p), DLV_E_FORMAT);
    assert_null(t);
    assert_non_null(strstr(dlv_last_error(), "vision_feature_layer"));
    bad.vision_run = -1;
    assert_int_equal(FW(be, &bad, w, px.p, 1, feat.p), DLV_E_FORMAT);
    /* The backward: no tape, no dfeatures, no weights. */
    ok(FW(be, &d, w, px.p, 1, feat.p));
    assert_non_null(t);
    assert_true(dlv_llava_vision_tape_bytes(t) > 0);
#undef FW
    assert_int_equal(dlv_llava_vision_backward(be, w, NULL, NULL, feat.p), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_llava_vision_backward(be, w, NULL, t, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_llava_vision_backward(be, NULL, NULL, t, feat.p), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_llava_vision_backward(NULL, w, NULL, t, feat.p), DLV_E_INVALID_ARG);
    /* No gradients (all frozen): nothing to do, and it works. */
    ok(dlv_llava_vision_backward(be, w, NULL, t, feat.p));
    dlv_llava_vision_tape_free(t);
    dlv_llava_vision_tape_free(NULL);
    assert_int_equal(dlv_llava_vision_tape_bytes(NULL), 0);
    /* The host wrapper: zero images write nothing; a too small output; a
     * backend that cannot read the model's weights. */
    float host_px[1] = {0}, host_out[1] = {42.0f};
    ok(dlv_vision_features(m, be, NULL, 0, NULL, 0));
    ok(dlv_vision_features(m, be, host_px, 0, host_out, 1));
    assert_true(host_out[0] == 42.0f);
    float *hp = calloc(P, sizeof(float)), *ho = calloc(O, sizeof(float));
    assert_true(hp && ho);
    assert_int_equal(dlv_vision_features(m, be, hp, 1, ho, O - 1), DLV_E_BUFFER_TOO_SMALL);
    if (dlv_backend_built("sim")) {
        dlv_backend *sim = backend("sim", 1);
        assert_int_equal(dlv_vision_features(m, sim, hp, 1, ho, O), DLV_E_INVALID_ARG);
        assert_non_null(strstr(dlv_last_error(), "cannot read"));
        /* On sim, host pixels handed to the device forward are refused. */
        dlv_model *ms = load(dirs[0], "sim");
        dev fs = dev_new(sim, O, NULL);
        assert_int_equal(dlv_llava_vision_forward(sim, &d, dlv_model_llava_w(ms), hp, 1, -1, 0,
                                                  NULL, fs.p, NULL),
                         DLV_E_INVALID_ARG);
        assert_non_null(strstr(dlv_last_error(), "host memory"));
        dev_free(&fs);
        dlv_model_free(ms);
        dlv_backend_destroy(sim);
    }
    free(hp);
    free(ho);
    dev_free(&px);
    dev_free(&feat);
    dlv_model_free(m);
    dlv_backend_destroy(be);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [DIR]...\n", argv[0]);
        return 2;
    }
    dirs = argv + 1;
    n_dirs = argc - 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_batch_and_subsets),
        cmocka_unit_test(test_mixed_dtypes),
        cmocka_unit_test(test_sim_equals_cpu),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
