/* The vision tower + projector training pass (lib/train/vision_train.c).
 *
 *   test_vision_train DIR [DIR]...
 *
 * Each DIR is a tiny checkpoint generated at build time (CLIP and SigLIP,
 * f32 and bf16). For each, and for several feature selections (the
 * checkpoint's own: CLIP layer -2 + "default", SigLIP -1 + "full"; and the
 * others, set on the loaded config):
 *   - the forward equals dlv_vision_features (frozen view: bit for bit;
 *     a view of f32 copies: within FWD_TOL);
 *   - the weight gradients of L = sum(r * features) match central finite
 *     differences (eps FD_EPS on f32 copies of the weights) for every weight
 *     the pass reads, within FD_RTOL (aggregate relative error over sampled
 *     elements of each tensor), and unread weights get no gradient;
 *   - a batch of two images gives the sum of the single-image gradients;
 *     recompute = 1 gives the gradients of recompute = 0 bit for bit;
 *   - training a subset (the projector, one layer's weight) gives those
 *     weights the same gradients as training everything, with a smaller
 *     tape. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disclvlm.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/vision_tower.h"
#include "model/weights.h"
#include "train/vision_train.h"
#include "train/wview.h"

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

static dlv_backend *cpu(int n_threads)
{
    dlv_backend_config bc = {.device = 0, .n_threads = n_threads};
    dlv_backend *be = NULL;
    assert_int_equal(dlv_backend_create("cpu", &bc, &be), DLV_OK);
    return be;
}

static dlv_model *load(const char *dir)
{
    dlv_model *m = NULL;
    dlv_status st = dlv_model_load(dir, NULL, &m);
    if (st != DLV_OK) fprintf(stderr, "%s: %s\n", dir, dlv_last_error());
    assert_int_equal(st, DLV_OK);
    return m;
}

/* The selections tried: vision_feature_layer, full. The loaded config is
 * the model's own (not const where it lives), so the test may set them. */
typedef struct selection {
    int64_t layer;
    int full;
} selection;
static const selection selections[] = {{-2, 0}, {-1, 1}, {-1, 0}, {0, 1}, {-2, 1}};
#define N_SEL (sizeof selections / sizeof selections[0])

static void set_selection(dlv_model *m, selection s)
{
    const dlv_llava_config *ccfg = dlv_model_config(m);
    dlv_llava_config *cfg;
    memcpy(&cfg, &ccfg, sizeof cfg); /* drop const without a cast-qual warning */
    cfg->vision_feature_layer = s.layer;
    cfg->vision_feature_select_full = s.full;
}

typedef struct dims {
    int64_t px, n_out; /* floats per image: pixels, features */
} dims;

static dims dims_of(const dlv_model *m)
{
    const dlv_llava_config *cfg = dlv_model_config(m);
    dims d = {
        .px = cfg->vision.num_channels * cfg->vision.image_size * cfg->vision.image_size,
        .n_out = dlv_vision_n_tokens(cfg) * cfg->text.hidden_size,
    };
    return d;
}

static float *random_floats(size_t n, float scale)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = scale * urand();
    return p;
}

/* A view with f32 copies of every vision / projector weight (value) and,
 * where trained[i] (NULL: all of them), a zeroed gradient buffer. */
typedef struct copies {
    dlv_wview view;
    const dlv_weights *w;
    dlv_st_tensor *tensors; /* [n] */
    const dlv_st_tensor **value;
    float **data;           /* [n] f32 values */
    float **grad;
} copies;

static int is_vision(const dlv_weight *w)
{
    return w->part == DLV_PART_VISION || w->part == DLV_PART_PROJECTOR;
}

static copies make_copies(const dlv_model *m, const int *trained)
{
    copies c = {0};
    c.w = dlv_model_weights(m);
    size_t n = c.w->n;
    c.tensors = calloc(n, sizeof *c.tensors);
    c.value = calloc(n, sizeof *c.value);
    c.data = calloc(n, sizeof *c.data);
    c.grad = calloc(n, sizeof *c.grad);
    assert_true(c.tensors && c.value && c.data && c.grad);
    for (size_t i = 0; i < n; i++) {
        const dlv_weight *w = &c.w->items[i];
        if (!is_vision(w) || !w->tensor) continue;
        size_t ne = (size_t)w->tensor->n_elements;
        c.data[i] = malloc(ne * sizeof(float));
        assert_non_null(c.data[i]);
        assert_int_equal(dlv_st_read_f32(w->tensor, 0, ne, c.data[i]), DLV_OK);
        c.tensors[i] = *w->tensor;
        c.tensors[i].dtype = DLV_DTYPE_F32;
        c.tensors[i].n_bytes = ne * sizeof(float);
        c.tensors[i].data = c.data[i];
        c.value[i] = &c.tensors[i];
        if (!trained || trained[i]) {
            c.grad[i] = calloc(ne ? ne : 1, sizeof(float));
            assert_non_null(c.grad[i]);
        }
    }
    c.view.weights = c.w;
    c.view.value = c.value;
    c.view.grad = (float *const *)c.grad;
    return c;
}

static void free_copies(copies *c)
{
    for (size_t i = 0; i < c->w->n; i++) {
        free(c->data[i]);
        free(c->grad[i]);
    }
    free(c->tensors);
    free(c->value);
    free(c->data);
    free(c->grad);
}

static void ok(dlv_status st)
{
    if (st != DLV_OK) fprintf(stderr, "%s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
}

/* Forward + backward with dfeatures = r (recompute mode rc). */
static void grads_for(const dlv_model *m, dlv_backend *be, copies *c, const float *pixels,
                      int64_t n, const float *r, int rc, size_t *tape_bytes)
{
    dims d = dims_of(m);
    float *feat = malloc((size_t)(n * d.n_out) * sizeof(float));
    assert_non_null(feat);
    dlv_vision_tape *t = NULL;
    ok(dlv_vision_train_forward_ex(m, be, &c->view, pixels, n, rc, &t, feat));
    ok(dlv_vision_train_backward(m, be, &c->view, t, r));
    if (tape_bytes) *tape_bytes = dlv_vision_tape_bytes(t);
    dlv_vision_tape_free(t);
    free(feat);
}

static double loss(const dlv_model *m, dlv_backend *be, copies *c, const float *pixels,
                   int64_t n, const float *r, float *feat)
{
    dims d = dims_of(m);
    ok(dlv_vision_train_forward(m, be, &c->view, pixels, n, NULL, feat));
    double L = 0;
    for (int64_t i = 0; i < n * d.n_out; i++) L += (double)r[i] * (double)feat[i];
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
    dlv_backend *be = cpu(2);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *m = load(dirs[di]);
        for (size_t s = 0; s < N_SEL; s++) {
            set_selection(m, selections[s]);
            dims d = dims_of(m);
            const int64_t n = 2;
            size_t no = (size_t)(n * d.n_out);
            rng_state = 7;
            float *pixels = random_floats((size_t)(n * d.px), 2.0f);
            float *want = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
            assert_true(want && got);
            ok(dlv_vision_features(m, be, pixels, n, want, no));

            /* Frozen view, with and without a tape: the same bits. */
            dlv_wview fz = dlv_wview_frozen(dlv_model_weights(m));
            for (int rc = 0; rc < 3; rc++) {
                dlv_vision_tape *t = NULL;
                memset(got, 0xff, no * sizeof(float));
                ok(dlv_vision_train_forward_ex(m, be, &fz, pixels, n, rc == 2 ? 0 : rc,
                                               rc == 2 ? NULL : &t, got));
                assert_memory_equal(got, want, no * sizeof(float));
                dlv_vision_tape_free(t);
            }
            /* f32 copies, every weight trained. */
            copies c = make_copies(m, NULL);
            double e = 0;
            for (int rc = 0; rc < 2; rc++) {
                dlv_vision_tape *t = NULL;
                ok(dlv_vision_train_forward_ex(m, be, &c.view, pixels, n, rc, &t, got));
                double er = max_rel_diff(got, want, no);
                if (er > e) e = er;
                dlv_vision_tape_free(t);
            }
            printf("  %s layer %lld %s: forward vs dlv_vision_features: frozen exact, "
                   "f32 copies max rel diff %.3g\n", dirs[di],
                   (long long)selections[s].layer, selections[s].full ? "full" : "default", e);
            assert_true(e <= FWD_TOL);
            free_copies(&c);
            free(pixels);
            free(want);
            free(got);
        }
        dlv_model_free(m);
    }
    dlv_backend_destroy(be);
}

/* ---- Gradients by finite differences ------------------------------------ */

static void fd_check(const dlv_model *m, dlv_backend *be, const char *label)
{
    dims d = dims_of(m);
    const int64_t n = 2;
    rng_state = 11;
    float *pixels = random_floats((size_t)(n * d.px), 2.0f);
    float *r = random_floats((size_t)(n * d.n_out), 1.0f);
    float *feat = malloc((size_t)(n * d.n_out) * sizeof(float));
    assert_non_null(feat);
    copies c = make_copies(m, NULL);
    grads_for(m, be, &c, pixels, n, r, 0, NULL);

    const dlv_llava_config *cfg = dlv_model_config(m);
    int64_t sel = dlv_vision_select_index(cfg);
    double gmax = 0;
    for (size_t i = 0; i < c.w->n; i++)
        for (size_t j = 0; c.grad[i] && j < (size_t)c.w->items[i].tensor->n_elements; j++)
            if (fabs((double)c.grad[i][j]) > gmax) gmax = fabs((double)c.grad[i][j]);
    double floor_abs = NEGLIGIBLE * gmax;
    double worst = 0, worst_abs = 0;
    size_t n_checked = 0, n_zero_ok = 0, n_tiny = 0;
    for (size_t i = 0; i < c.w->n; i++) {
        const dlv_weight *w = &c.w->items[i];
        if (!c.grad[i]) continue;
        size_t ne = (size_t)w->tensor->n_elements;
        /* Weights the pass does not read: layers at or after sel,
         * post_layernorm, a pooling head. Their gradient stays 0. */
        int used = w->part == DLV_PART_PROJECTOR;
        if (w->part == DLV_PART_VISION) {
            long long l = -1;
            if (sscanf(w->canonical, "vision_model.encoder.layers.%lld.", &l) == 1)
                used = l < sel;
            else
                used = strstr(w->canonical, "embeddings.") != NULL ||
                       strstr(w->canonical, "pre_layrnorm.") != NULL;
        }
        double gnorm = 0;
        size_t imax = 0;
        for (size_t j = 0; j < ne; j++) {
            gnorm += (double)c.grad[i][j] * (double)c.grad[i][j];
            if (fabsf(c.grad[i][j]) > fabsf(c.grad[i][imax])) imax = j;
        }
        if (!used) {
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
            float *p = &c.data[i][j], saved = *p;
            *p = saved + FD_EPS;
            double lp = loss(m, be, &c, pixels, n, r, feat);
            *p = saved - FD_EPS;
            double lm = loss(m, be, &c, pixels, n, r, feat);
            *p = saved;
            /* The step actually taken, in f32. */
            double h = (double)(saved + FD_EPS) - (double)(saved - FD_EPS);
            double fd = (lp - lm) / h, an = c.grad[i][j];
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
                   (double)fabsf(c.grad[i][imax]));
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
    free_copies(&c);
    free(pixels);
    free(r);
    free(feat);
}

static void test_gradients(void **state)
{
    (void)state;
    dlv_backend *be = cpu(2);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *m = load(dirs[di]);
        /* The checkpoint's own selection and one other. */
        const dlv_llava_config *cfg = dlv_model_config(m);
        selection own = {cfg->vision_feature_layer, cfg->vision_feature_select_full};
        selection other = {own.layer == -1 ? -2 : -1, !own.full};
        selection sels[2] = {own, other};
        for (int s = 0; s < 2; s++) {
            set_selection(m, sels[s]);
            char label[512];
            snprintf(label, sizeof label, "%s layer %lld %s", dirs[di], (long long)sels[s].layer,
                     sels[s].full ? "full" : "default");
            fd_check(m, be, label);
        }
        dlv_model_free(m);
    }
    dlv_backend_destroy(be);
}

/* ---- Batch sums, recompute, subsets -------------------------------------- */

static void test_batch_and_subsets(void **state)
{
    (void)state;
    dlv_backend *be = cpu(3);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *m = load(dirs[di]);
        dims d = dims_of(m);
        rng_state = 23;
        float *pixels = random_floats((size_t)(2 * d.px), 2.0f);
        float *r = random_floats((size_t)(2 * d.n_out), 1.0f);

        copies both = make_copies(m, NULL), one = make_copies(m, NULL);
        copies rc1 = make_copies(m, NULL);
        size_t bytes_all = 0;
        grads_for(m, be, &both, pixels, 2, r, 0, &bytes_all);
        size_t bytes_rc1 = 0;
        grads_for(m, be, &rc1, pixels, 2, r, 1, &bytes_rc1);
        assert_true(bytes_rc1 < bytes_all);
        grads_for(m, be, &one, pixels, 1, r, 0, NULL);
        grads_for(m, be, &one, pixels + d.px, 1, r + d.n_out, 0, NULL);
        /* A gradient that is zero in exact arithmetic (a key bias: softmax
         * is shift invariant) is float noise in both sums, whose relative
         * difference means nothing; its norm is compared with the largest
         * tensor's instead (NEGLIGIBLE of it, as the finite-difference
         * check does). */
        double gnorm_max = 0;
        for (size_t i = 0; i < both.w->n; i++) {
            if (!both.grad[i]) continue;
            double s2 = 0;
            for (size_t j = 0; j < (size_t)both.w->items[i].tensor->n_elements; j++)
                s2 += (double)both.grad[i][j] * (double)both.grad[i][j];
            if (sqrt(s2) > gnorm_max) gnorm_max = sqrt(s2);
        }
        double worst = 0;
        for (size_t i = 0; i < both.w->n; i++) {
            if (!both.grad[i]) continue;
            size_t ne = (size_t)both.w->items[i].tensor->n_elements;
            assert_memory_equal(both.grad[i], rc1.grad[i], ne * sizeof(float));
            double num = 0, den = 0;
            for (size_t j = 0; j < ne; j++) {
                double e = (double)both.grad[i][j] - (double)one.grad[i][j];
                num += e * e;
                den += (double)both.grad[i][j] * (double)both.grad[i][j];
            }
            const double floor_norm = NEGLIGIBLE * gnorm_max;
            double rel = sqrt(num) / (sqrt(den) > floor_norm ? sqrt(den) : floor_norm);
            if (rel > worst) worst = rel;
            if (rel > BATCH_RTOL)
                fprintf(stderr, "%s: %s: batch vs sum of singles %.3g\n", dirs[di],
                        both.w->items[i].canonical, rel);
            assert_true(rel <= BATCH_RTOL);
        }
        printf("  %s: batch of 2 vs sum of singles: worst relative error %.3g; recompute "
               "bit-identical (tape %zu bytes, %zu without recompute)\n", dirs[di], worst,
               bytes_rc1, bytes_all);

        /* Subsets: the projector only; the last running layer's fc1 weight;
         * the position embedding (everything below the tower's top). */
        const dlv_llava_config *cfg = dlv_model_config(m);
        char fc1[DLV_WEIGHT_NAME_MAX];
        snprintf(fc1, sizeof fc1, "vision_model.encoder.layers.%lld.mlp.fc1.weight",
                 (long long)dlv_vision_select_index(cfg) - 1);
        const char *subsets[3] = {"linear_1.weight", fc1,
                                  "vision_model.embeddings.position_embedding.weight"};
        dlv_weight_part parts[3] = {DLV_PART_PROJECTOR, DLV_PART_VISION, DLV_PART_VISION};
        size_t prev_bytes = 0;
        for (int s = 0; s < 3; s++) {
            ptrdiff_t idx = dlv_wview_index(&both.view, parts[s], subsets[s]);
            assert_true(idx >= 0);
            int *trained = calloc(both.w->n, sizeof *trained);
            assert_non_null(trained);
            trained[idx] = 1;
            copies sub = make_copies(m, trained);
            size_t bytes = 0;
            grads_for(m, be, &sub, pixels, 2, r, 0, &bytes);
            size_t ne = (size_t)both.w->items[idx].tensor->n_elements;
            assert_memory_equal(sub.grad[idx], both.grad[idx], ne * sizeof(float));
            printf("  %s: only %s trained: same gradient, tape %zu bytes (all: %zu)\n",
                   dirs[di], subsets[s], bytes, bytes_all);
            assert_true(bytes <= bytes_all);
            assert_true(bytes >= prev_bytes);
            if (s == 0) assert_true(bytes < bytes_all);
            prev_bytes = bytes;
            /* A backward whose view trains a weight below what the forward
             * saved is refused. */
            if (s == 0) {
                dlv_vision_tape *t = NULL;
                float *feat = malloc((size_t)(2 * d.n_out) * sizeof(float));
                assert_non_null(feat);
                ok(dlv_vision_train_forward(m, be, &sub.view, pixels, 2, &t, feat));
                assert_int_equal(dlv_vision_train_backward(m, be, &both.view, t, r),
                                 DLV_E_INVALID_ARG);
                assert_non_null(strstr(dlv_last_error(), "forward"));
                dlv_vision_tape_free(t);
                free(feat);
            }
            free_copies(&sub);
            free(trained);
        }
        free_copies(&both);
        free_copies(&one);
        free_copies(&rc1);
        free(pixels);
        free(r);
        dlv_model_free(m);
    }
    dlv_backend_destroy(be);
}

/* A trained f32 layer-norm weight next to its frozen bf16 (or f32) bias:
 * the forward still equals dlv_vision_features, and the weight gets a
 * gradient (the FD test covers its value). */
static void test_mixed_dtypes(void **state)
{
    (void)state;
    dlv_backend *be = cpu(2);
    for (int di = 0; di < n_dirs; di++) {
        dlv_model *m = load(dirs[di]);
        dims d = dims_of(m);
        rng_state = 31;
        float *pixels = random_floats((size_t)(2 * d.px), 2.0f);
        float *r = random_floats((size_t)(2 * d.n_out), 1.0f);
        float *want = malloc((size_t)(2 * d.n_out) * sizeof(float));
        float *got = malloc((size_t)(2 * d.n_out) * sizeof(float));
        assert_true(want && got);
        ok(dlv_vision_features(m, be, pixels, 2, want, (size_t)(2 * d.n_out)));
        copies c = make_copies(m, NULL);
        const char *names[2] = {"vision_model.encoder.layers.0.layer_norm1.weight",
                                "vision_model.encoder.layers.0.layer_norm2.bias"};
        ptrdiff_t keep[2];
        for (int k = 0; k < 2; k++) {
            keep[k] = dlv_wview_index(&c.view, DLV_PART_VISION, names[k]);
            assert_true(keep[k] >= 0);
        }
        /* Only the two kept entries stay copies (and trained). */
        for (size_t i = 0; i < c.w->n; i++)
            if ((ptrdiff_t)i != keep[0] && (ptrdiff_t)i != keep[1]) {
                c.value[i] = NULL;
                free(c.grad[i]);
                c.grad[i] = NULL;
            }
        dlv_vision_tape *t = NULL;
        ok(dlv_vision_train_forward(m, be, &c.view, pixels, 2, &t, got));
        assert_memory_equal(got, want, (size_t)(2 * d.n_out) * sizeof(float));
        ok(dlv_vision_train_backward(m, be, &c.view, t, r));
        for (int k = 0; k < 2; k++) {
            double g = 0;
            for (uint64_t j = 0; j < c.w->items[keep[k]].tensor->n_elements; j++)
                g += fabs((double)c.grad[keep[k]][j]);
            assert_true(g > 0 && isfinite(g));
        }
        dlv_vision_tape_free(t);
        free_copies(&c);
        free(pixels);
        free(r);
        free(want);
        free(got);
        dlv_model_free(m);
    }
    dlv_backend_destroy(be);
}

static void test_errors(void **state)
{
    (void)state;
    dlv_backend *be = cpu(1);
    dlv_model *m = load(dirs[0]);
    dims d = dims_of(m);
    dlv_wview fz = dlv_wview_frozen(dlv_model_weights(m));
    float *px = calloc((size_t)d.px, sizeof(float)), *feat = calloc((size_t)d.n_out, 4);
    assert_true(px && feat);
    dlv_vision_tape *t = NULL;
    assert_int_equal(dlv_vision_train_forward(m, be, &fz, NULL, 1, &t, feat),
                     DLV_E_INVALID_ARG);
    assert_null(t);
    assert_int_equal(dlv_vision_train_forward(m, be, &fz, px, -1, &t, feat), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_vision_train_forward(m, be, NULL, px, 1, &t, feat), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_vision_train_forward_ex(m, be, &fz, px, 1, 2, &t, feat),
                     DLV_E_INVALID_ARG);
    assert_int_equal(dlv_vision_train_backward(m, be, &fz, NULL, feat), DLV_E_INVALID_ARG);
    /* A frozen view: the backward is a no-op; zero images: nothing. */
    ok(dlv_vision_train_forward(m, be, &fz, px, 1, &t, feat));
    ok(dlv_vision_train_backward(m, be, &fz, t, feat));
    assert_int_equal(dlv_vision_train_backward(m, be, &fz, t, NULL), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "dfeatures"));
    dlv_vision_tape_free(t);
    ok(dlv_vision_train_forward(m, be, &fz, NULL, 0, &t, NULL));
    ok(dlv_vision_train_backward(m, be, &fz, t, NULL));
    dlv_vision_tape_free(t);
    /* A view of another model. */
    if (n_dirs > 1) {
        dlv_model *m2 = load(dirs[1]);
        dlv_wview fz2 = dlv_wview_frozen(dlv_model_weights(m2));
        assert_int_equal(dlv_vision_train_forward(m, be, &fz2, px, 1, &t, feat),
                         DLV_E_INVALID_ARG);
        assert_non_null(strstr(dlv_last_error(), "view"));
        dlv_model_free(m2);
    }
    dlv_vision_tape_free(NULL);
    free(px);
    free(feat);
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
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
