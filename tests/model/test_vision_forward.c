/* The vision tower + projector forward pass against Hugging Face goldens
 * (tests/reference/llava_vision_reference.py).
 *
 *   test_vision_forward GOLDEN DIR [GOLDEN DIR]...
 *
 * Each DIR is a tiny checkpoint regenerated at build time with the
 * generator arguments recorded in GOLDEN; every hidden state up to the
 * selected layer, the selected features and the projector output are
 * compared with |got - want| <= ATOL + RTOL |want|. bf16 checkpoints hold the
 * same tolerance: the reference widens bf16 to f32 exactly, as the ops do,
 * so both sides compute in f32 from identical weights. The first pair also
 * serves the batch, thread-count and error tests. */
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
#include "model/llava/vision_tower.h"

#define ATOL 1e-5
#define RTOL 1e-4

static char **pairs;  /* GOLDEN DIR GOLDEN DIR ... */
static int n_pairs;

/* A golden tensor widened to f32 (caller frees); checks its element count. */
static float *golden(const dlv_st_file *f, const char *name, size_t n_expected)
{
    const dlv_st_tensor *t = dlv_st_find(f, name);
    if (!t) {
        fprintf(stderr, "%s: no tensor '%s'\n", dlv_st_path(f), name);
        fail();
    }
    if (t->n_elements != n_expected) {
        fprintf(stderr, "%s: '%s' has %llu elements, expected %zu\n", dlv_st_path(f), name,
                (unsigned long long)t->n_elements, n_expected);
        fail();
    }
    float *out = malloc((n_expected ? n_expected : 1) * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_st_read_f32(t, 0, n_expected, out), DLV_OK);
    return out;
}

static void compare(const char *what, const char *label, const float *got, const float *want,
                    size_t n)
{
    size_t bad = 0, worst = 0;
    double max_abs = 0, max_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] > want[i] ? (double)got[i] - (double)want[i]
                                    : (double)want[i] - (double)got[i];
        double lim = ATOL + RTOL * (want[i] < 0 ? -(double)want[i] : (double)want[i]);
        if (!(d <= lim)) bad++;
        if (d > max_abs) max_abs = d;
        if (d - lim > max_excess) {
            max_excess = d - lim;
            worst = i;
        }
    }
    printf("  %-14s %6zu values, max |diff| %.3g%s\n", what, n, max_abs, bad ? "  FAIL" : "");
    if (bad) {
        fprintf(stderr, "%s: %s: %zu of %zu values off; worst [%zu] got %.9g want %.9g\n",
                label, what, bad, n, worst, (double)got[worst], (double)want[worst]);
        fail();
    }
}

typedef struct sizes {
    int64_t S, F, D, T, sel, px; /* px: floats per image */
} sizes;

static sizes sizes_of(const dlv_model *m)
{
    const dlv_llava_config *cfg = dlv_model_config(m);
    sizes z = {
        .S = dlv_vision_seq_len(cfg), .F = dlv_vision_n_tokens(cfg),
        .D = cfg->vision.hidden_size, .T = cfg->text.hidden_size,
        .sel = dlv_vision_select_index(cfg),
        .px = cfg->vision.num_channels * cfg->vision.image_size * cfg->vision.image_size,
    };
    assert_true(z.sel >= 0);
    return z;
}

static dlv_backend *cpu(int n_threads)
{
    dlv_backend_config bc = {.device = 0, .n_threads = n_threads};
    dlv_backend *be = NULL;
    assert_int_equal(dlv_backend_create("cpu", &bc, &be), DLV_OK);
    return be;
}

static void check_pair(const char *gpath, const char *dir)
{
    printf("%s vs %s\n", dir, gpath);
    dlv_model *m = NULL;
    dlv_status st = dlv_model_load(dir, NULL, &m);
    if (st != DLV_OK) fprintf(stderr, "%s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
    dlv_st_file *g = NULL;
    st = dlv_st_open(gpath, &g);
    if (st != DLV_OK) fprintf(stderr, "%s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);

    sizes z = sizes_of(m);
    const int64_t n = 2;
    size_t n_hs = (size_t)((z.sel + 1) * n * z.S * z.D), n_sel = (size_t)(n * z.F * z.D);
    size_t n_out = (size_t)(n * z.F * z.T);
    float *pixels = golden(g, "pixel_values", (size_t)(n * z.px));
    float *want_hs = golden(g, "hidden_states", n_hs);
    float *want_sel = golden(g, "selected", n_sel);
    float *want_out = golden(g, "image_features", n_out);
    float *hs = malloc(n_hs * sizeof *hs), *sel = malloc(n_sel * sizeof *sel);
    float *out = malloc(n_out * sizeof *out);
    assert_true(hs && sel && out);

    dlv_backend *be = cpu(2);
    dlv_vision_trace tr = {.hidden_states = hs, .hidden_states_len = n_hs,
                           .selected = sel, .selected_len = n_sel};
    st = dlv_vision_forward(m, be, pixels, n, out, n_out, &tr);
    if (st != DLV_OK) fprintf(stderr, "%s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
    compare("hidden_states", dir, hs, want_hs, n_hs);
    compare("selected", dir, sel, want_sel, n_sel);
    compare("image_features", dir, out, want_out, n_out);

    /* Without a trace the result is the same. */
    memset(out, 0, n_out * sizeof *out);
    assert_int_equal(dlv_vision_features(m, be, pixels, n, out, n_out), DLV_OK);
    compare("no trace", dir, out, want_out, n_out);

    dlv_backend_destroy(be);
    free(hs);
    free(sel);
    free(out);
    free(pixels);
    free(want_hs);
    free(want_sel);
    free(want_out);
    dlv_st_close(g);
    dlv_model_free(m);
}

static void test_goldens(void **state)
{
    (void)state;
    for (int i = 0; i < n_pairs; i++) check_pair(pairs[2 * i], pairs[2 * i + 1]);
}

/* Everything a batch test needs from the first pair. */
typedef struct fixture {
    dlv_model *m;
    sizes z;
    float *pixels; /* [2, px] */
} fixture;

static fixture open_first(void)
{
    fixture fx = {0};
    assert_int_equal(dlv_model_load(pairs[1], NULL, &fx.m), DLV_OK);
    fx.z = sizes_of(fx.m);
    dlv_st_file *g = NULL;
    assert_int_equal(dlv_st_open(pairs[0], &g), DLV_OK);
    fx.pixels = golden(g, "pixel_values", (size_t)(2 * fx.z.px));
    dlv_st_close(g);
    return fx;
}

static void close_fixture(fixture *fx)
{
    free(fx->pixels);
    dlv_model_free(fx->m);
}

/* An image's features do not depend on its batch companions nor on the
 * thread count: image 2 alone equals image 2 of the batch, bit for bit. */
static void test_batch_and_threads(void **state)
{
    (void)state;
    fixture fx = open_first();
    size_t per = (size_t)(fx.z.F * fx.z.T);
    float *both = malloc(2 * per * sizeof(float)), *alone = malloc(per * sizeof(float));
    float *threads1 = malloc(2 * per * sizeof(float));
    assert_true(both && alone && threads1);
    dlv_backend *be = cpu(3), *be1 = cpu(1);
    assert_int_equal(dlv_vision_features(fx.m, be, fx.pixels, 2, both, 2 * per), DLV_OK);
    assert_int_equal(dlv_vision_features(fx.m, be, fx.pixels + fx.z.px, 1, alone, per), DLV_OK);
    assert_memory_equal(alone, both + per, per * sizeof(float));
    assert_int_equal(dlv_vision_features(fx.m, be1, fx.pixels, 2, threads1, 2 * per), DLV_OK);
    assert_memory_equal(threads1, both, 2 * per * sizeof(float));
    /* The two images differ, so the comparison above is not vacuous. */
    assert_true(memcmp(both, both + per, per * sizeof(float)) != 0);
    dlv_backend_destroy(be);
    dlv_backend_destroy(be1);
    free(both);
    free(alone);
    free(threads1);
    close_fixture(&fx);
}

static void expect_error(dlv_status got, dlv_status want, const char *mention)
{
    assert_int_equal(got, want);
    if (!strstr(dlv_last_error(), mention)) {
        fprintf(stderr, "message '%s' does not mention '%s'\n", dlv_last_error(), mention);
        fail();
    }
}

static void test_errors(void **state)
{
    (void)state;
    fixture fx = open_first();
    size_t per = (size_t)(fx.z.F * fx.z.T);
    float *out = calloc(2 * per, sizeof(float));
    assert_non_null(out);
    dlv_backend *be = cpu(1);

    expect_error(dlv_vision_features(fx.m, be, fx.pixels, 2, out, 2 * per - 1),
                 DLV_E_BUFFER_TOO_SMALL, "out holds");
    expect_error(dlv_vision_features(fx.m, be, fx.pixels, -1, out, 2 * per),
                 DLV_E_INVALID_ARG, "n_images");
    expect_error(dlv_vision_features(fx.m, be, NULL, 1, out, per), DLV_E_INVALID_ARG,
                 "pixels");
    expect_error(dlv_vision_features(fx.m, be, fx.pixels, 1, NULL, per), DLV_E_INVALID_ARG,
                 "out");
    expect_error(dlv_vision_features(NULL, be, fx.pixels, 1, out, per), DLV_E_INVALID_ARG,
                 "NULL");
    expect_error(dlv_vision_features(fx.m, NULL, fx.pixels, 1, out, per), DLV_E_INVALID_ARG,
                 "NULL");
    float hs[4];
    dlv_vision_trace tr = {.hidden_states = hs, .hidden_states_len = 4};
    expect_error(dlv_vision_forward(fx.m, be, fx.pixels, 1, out, per, &tr),
                 DLV_E_BUFFER_TOO_SMALL, "hidden_states");
    float sel[4];
    dlv_vision_trace tr2 = {.selected = sel, .selected_len = 4};
    expect_error(dlv_vision_forward(fx.m, be, fx.pixels, 1, out, per, &tr2),
                 DLV_E_BUFFER_TOO_SMALL, "selected");
    /* The error paths wrote nothing. */
    for (size_t i = 0; i < 2 * per; i++) assert_true(out[i] == 0.0f);

    /* Zero images: nothing to do, nothing written, any buffer. */
    assert_int_equal(dlv_vision_features(fx.m, be, NULL, 0, NULL, 0), DLV_OK);

    /* A backend that cannot read the model's weights (a copy of the CPU
     * table: another kind of backend, never dispatched to) is refused up
     * front. */
    dlv_backend_ops other_ops = *be->ops;
    other_ops.name = "other";
    dlv_backend other = {.ops = &other_ops, .device = 0};
    expect_error(dlv_vision_features(fx.m, &other, fx.pixels, 1, out, per),
                 DLV_E_INVALID_ARG, "cannot read the model's weights");

    dlv_backend_destroy(be);
    free(out);
    close_fixture(&fx);
}

int main(int argc, char **argv)
{
    if (argc < 3 || (argc - 1) % 2 != 0) {
        fprintf(stderr, "usage: %s GOLDEN DIR [GOLDEN DIR]...\n", argv[0]);
        return 2;
    }
    pairs = argv + 1;
    n_pairs = (argc - 1) / 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goldens),
        cmocka_unit_test(test_batch_and_threads),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
