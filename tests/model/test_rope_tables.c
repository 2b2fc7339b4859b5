/* Qwen2-VL's rotary tables (model/nn/rope_tables.c) and the dlv_rope_table
 * op against transformers 4.46.3 (tests/reference/qwen2vl_rope_reference.py,
 * golden tests/model/golden/qwen2vl_rope.safetensors).
 *
 *   test_rope_tables GOLDEN
 *
 * Tolerances (what the committed golden gives is printed by the test):
 *   inv_freq:                  within 1 ulp of HF's buffer. powf (glibc)
 *                              and torch's vectorised pow (Sleef, 1-ulp
 *                              accurate) disagree on 1 of the 64 values for
 *                              theta 1e6 (i = 37); the other cases are
 *                              bit-identical.
 *   cos/sin tables:            |got - want| <= 1e-6. Measured: 9.4e-7 in the
 *                              case with positions up to 32793 (that ulp of
 *                              inv_freq[37] times the position), else one
 *                              ulp (6e-8) where glibc's cosf/sinf and
 *                              torch's round differently.
 *   op on HF's tables:         bit-identical to HF's q_embed (the same f32
 *                              products and sum, no fma): measured so.
 *   op on the built tables:    |got - want| <= 2e-6 (|q| < 1); measured
 *                              7.2e-7.
 *   patch indices:             exact
 * The op runs on cpu and, where built, on sim (device memory the host
 * cannot read), which must agree bit for bit. Then: text positions (all
 * three components equal) through the M-RoPE tables and dlv_rope_table give
 * dlv_rope's bits, the patch order of a small grid spelled out, and the
 * builders' argument errors. */
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
#include "core/error.h"
#include "io/safetensors.h"
#include "model/nn/rope_tables.h"

#define TABLE_ATOL 1e-6
#define OP_ATOL 2e-6

static const char *golden_path;

/* ---- golden tensors ------------------------------------------------------ */

static const dlv_st_tensor *find(const dlv_st_file *f, const char *name, size_t n_expected)
{
    const dlv_st_tensor *t = dlv_st_find(f, name);
    if (!t) fail_msg("%s: no tensor '%s'", dlv_st_path(f), name);
    if (t->n_elements != n_expected)
        fail_msg("%s: '%s' has %llu elements, expected %zu", dlv_st_path(f), name,
                 (unsigned long long)t->n_elements, n_expected);
    return t;
}

static float *golden_f32(const dlv_st_file *f, const char *name, size_t n)
{
    const dlv_st_tensor *t = find(f, name, n);
    assert_int_equal(t->dtype, DLV_DTYPE_F32);
    float *out = malloc((n ? n : 1) * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_st_read_f32(t, 0, n, out), DLV_OK);
    return out;
}

static int32_t *golden_i32(const dlv_st_file *f, const char *name, size_t n)
{
    const dlv_st_tensor *t = find(f, name, n);
    assert_int_equal(t->dtype, DLV_DTYPE_I32);
    int32_t *out = malloc((n ? n : 1) * sizeof *out);
    assert_non_null(out);
    memcpy(out, t->data, n * sizeof *out); /* any alignment in the mapping */
    return out;
}

static int64_t dim0(const dlv_st_file *f, const char *name)
{
    const dlv_st_tensor *t = dlv_st_find(f, name);
    if (!t) fail_msg("%s: no tensor '%s'", dlv_st_path(f), name);
    return t->shape[0];
}

/* Largest |got - want|; the number of entries whose bits differ. */
static double max_diff(const float *got, const float *want, size_t n, size_t *n_diff)
{
    double m = 0.0;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) nd++;
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= m)) m = d; /* NaN counts as the worst */
    }
    *n_diff = nd;
    return m;
}

static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         double atol)
{
    size_t nd;
    double m = max_diff(got, want, n, &nd);
    printf("  %-34s max |diff| %.3g, %zu of %zu values differ in bits\n", what, m, nd, n);
    if (!(m <= atol)) fail_msg("%s: max |diff| %.3g > %.3g", what, m, atol);
}

static void expect_bits(const char *what, const float *got, const float *want, size_t n)
{
    size_t nd;
    double m = max_diff(got, want, n, &nd);
    printf("  %-34s %s\n", what, nd ? "DIFFERS" : "bit-identical");
    if (nd) fail_msg("%s: %zu of %zu values differ (max |diff| %.3g)", what, nd, n, m);
}

/* inv_freq within max_ulp units in the last place of HF's (both positive). */
static void expect_ulps(const char *what, const float *got, const float *want, size_t n,
                        int64_t max_ulp)
{
    int64_t worst = 0;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t a, b;
        memcpy(&a, &got[i], sizeof a);
        memcpy(&b, &want[i], sizeof b);
        int64_t u = a > b ? (int64_t)a - b : (int64_t)b - a;
        if (u) nd++;
        if (u > worst) worst = u;
    }
    printf("  %-34s %zu of %zu values differ, by at most %lld ulp\n", what, nd, n,
           (long long)worst);
    if (worst > max_ulp)
        fail_msg("%s: %lld ulp > %lld", what, (long long)worst, (long long)max_ulp);
}

/* ---- the op on a backend ------------------------------------------------- */

/* x [n_tokens, n_heads * d] rotated by the tables on backend `name`,
 * through device buffers: the result in out (host). */
static void run_op(const char *name, float *out, const float *x, const float *cos_t,
                   const float *sin_t, int64_t n_tokens, int64_t n_heads, int64_t d, int backward)
{
    dlv_backend *be = NULL;
    dlv_backend_config cfg = {.n_threads = 2};
    assert_int_equal(dlv_backend_create(name, &cfg, &be), DLV_OK);
    size_t nx = (size_t)(n_tokens * n_heads * d), nt = (size_t)(n_tokens * (d / 2));
    dlv_buffer bx = {0}, bt = {0};
    /* cos and sin in one buffer, as a model uploads them together. */
    assert_int_equal(dlv_buffer_alloc(be, nx * sizeof(float), &bx), DLV_OK);
    assert_int_equal(dlv_buffer_alloc(be, 2 * nt * sizeof(float), &bt), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&bx, 0, x, nx * sizeof(float)), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&bt, 0, cos_t, nt * sizeof(float)), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&bt, nt * sizeof(float), sin_t, nt * sizeof(float)),
                     DLV_OK);
    const float *dcos = dlv_buffer_ptr(&bt);
    const float *dsin = (const float *)(const void *)((const char *)dcos + nt * sizeof(float));
    dlv_status st = backward
        ? dlv_rope_table_backward(be, dlv_buffer_ptr(&bx), dcos, dsin, n_tokens, n_heads, d)
        : dlv_rope_table(be, dlv_buffer_ptr(&bx), dcos, dsin, n_tokens, n_heads, d);
    if (st != DLV_OK) fail_msg("%s: %s", name, dlv_last_error());
    assert_int_equal(dlv_buffer_download(out, &bx, 0, nx * sizeof(float)), DLV_OK);
    dlv_buffer_free(&bx);
    dlv_buffer_free(&bt);
    dlv_backend_destroy(be);
}

/* The op on cpu and (if built) sim: both results compared with want. */
static void check_op(const char *what, const float *x, const float *cos_t, const float *sin_t,
                     int64_t n_tokens, int64_t n_heads, int64_t d, const float *want,
                     int want_exact)
{
    size_t nx = (size_t)(n_tokens * n_heads * d);
    float *got = malloc(nx * sizeof *got), *got_sim = malloc(nx * sizeof *got_sim);
    assert_non_null(got);
    assert_non_null(got_sim);
    run_op("cpu", got, x, cos_t, sin_t, n_tokens, n_heads, d, 0);
    if (want_exact)
        expect_bits(what, got, want, nx);
    else
        expect_close(what, got, want, nx, OP_ATOL);
    if (dlv_backend_built("sim")) {
        run_op("sim", got_sim, x, cos_t, sin_t, n_tokens, n_heads, d, 0);
        assert_memory_equal(got_sim, got, nx * sizeof(float));
    }
    free(got);
    free(got_sim);
}

/* ---- goldens ------------------------------------------------------------- */

typedef struct mrope_case {
    const char *name;
    int64_t head_dim, n_heads;
    double theta;
} mrope_case;

/* As MROPE_CASES in the reference script. */
static const mrope_case mrope_cases[] = {
    {"a", 128, 1, 1000000.0},
    {"b", 16, 2, 10000.0},
};

static void test_mrope_golden(void **state)
{
    (void)state;
    dlv_st_file *g = NULL;
    assert_int_equal(dlv_st_open(golden_path, &g), DLV_OK);
    for (size_t c = 0; c < sizeof mrope_cases / sizeof mrope_cases[0]; c++) {
        const mrope_case *mc = &mrope_cases[c];
        char key[64];
        const int64_t d = mc->head_dim, half = d / 2, H = mc->n_heads;
#define KEY(s) (snprintf(key, sizeof key, "mrope.%s.%s", mc->name, s), key)
        const int64_t T = dlv_st_find(g, KEY("positions"))->shape[1];
        printf("mrope case %s: head_dim %lld, %lld heads, theta %g, %lld tokens\n", mc->name,
               (long long)d, (long long)H, mc->theta, (long long)T);
        int32_t *pos = golden_i32(g, KEY("positions"), (size_t)(3 * T));
        int32_t *sec32 = golden_i32(g, KEY("section"), 3);
        float *inv_want = golden_f32(g, KEY("inv_freq"), (size_t)half);
        float *cos_want = golden_f32(g, KEY("cos"), (size_t)(T * half));
        float *sin_want = golden_f32(g, KEY("sin"), (size_t)(T * half));
        float *q = golden_f32(g, KEY("q"), (size_t)(T * H * d));
        float *q_embed = golden_f32(g, KEY("q_embed"), (size_t)(T * H * d));
#undef KEY
        int64_t section[3] = {sec32[0], sec32[1], sec32[2]};

        float *inv = malloc((size_t)half * sizeof *inv);
        float *cos_t = malloc((size_t)(T * half) * sizeof *cos_t);
        float *sin_t = malloc((size_t)(T * half) * sizeof *sin_t);
        assert_non_null(inv);
        assert_non_null(cos_t);
        assert_non_null(sin_t);
        assert_int_equal(dlv_rope_inv_freq(inv, d, mc->theta), DLV_OK);
        expect_ulps("inv_freq", inv, inv_want, (size_t)half, 1);
        assert_int_equal(dlv_rope_mrope_tables(cos_t, sin_t, pos, T, d, section, mc->theta),
                         DLV_OK);
        expect_close("cos", cos_t, cos_want, (size_t)(T * half), TABLE_ATOL);
        expect_close("sin", sin_t, sin_want, (size_t)(T * half), TABLE_ATOL);
        check_op("q_embed (HF's tables)", q, cos_want, sin_want, T, H, d, q_embed, 1);
        check_op("q_embed (built tables)", q, cos_t, sin_t, T, H, d, q_embed, 0);
        free(pos);
        free(sec32);
        free(inv_want);
        free(cos_want);
        free(sin_want);
        free(q);
        free(q_embed);
        free(inv);
        free(cos_t);
        free(sin_t);
    }
    dlv_st_close(g);
}

/* As VISION_* in the reference script. */
#define VISION_HEAD_DIM 80
#define VISION_HEADS 1
#define VISION_MERGE 2
#define VISION_THETA 10000.0

static void test_vision_golden(void **state)
{
    (void)state;
    dlv_st_file *g = NULL;
    assert_int_equal(dlv_st_open(golden_path, &g), DLV_OK);
    const int64_t n_grids = dim0(g, "vision.grid_thw"), N = dim0(g, "vision.hpos");
    const int64_t d = VISION_HEAD_DIM, half = d / 2, H = VISION_HEADS;
    printf("vision: head_dim %lld, %lld grids, %lld patches\n", (long long)d,
           (long long)n_grids, (long long)N);
    int32_t *grid = golden_i32(g, "vision.grid_thw", (size_t)(3 * n_grids));
    int32_t *hpos_want = golden_i32(g, "vision.hpos", (size_t)N);
    int32_t *wpos_want = golden_i32(g, "vision.wpos", (size_t)N);
    float *inv_want = golden_f32(g, "vision.inv_freq", (size_t)(d / 4));
    float *cos_want = golden_f32(g, "vision.cos", (size_t)(N * half));
    float *sin_want = golden_f32(g, "vision.sin", (size_t)(N * half));
    float *q = golden_f32(g, "vision.q", (size_t)(N * H * d));
    float *q_embed = golden_f32(g, "vision.q_embed", (size_t)(N * H * d));

    /* The images' index runs, one after another as rot_pos_emb concatenates. */
    int32_t *hpos = malloc((size_t)N * sizeof *hpos), *wpos = malloc((size_t)N * sizeof *wpos);
    assert_non_null(hpos);
    assert_non_null(wpos);
    int64_t at = 0;
    for (int64_t i = 0; i < n_grids; i++) {
        const int64_t t = grid[3 * i], h = grid[3 * i + 1], w = grid[3 * i + 2];
        assert_true(at + t * h * w <= N);
        assert_int_equal(dlv_rope_vision_patch_ids(hpos + at, wpos + at, t, h, w, VISION_MERGE),
                         DLV_OK);
        at += t * h * w;
    }
    assert_int_equal(at, N);
    assert_memory_equal(hpos, hpos_want, (size_t)N * sizeof *hpos);
    assert_memory_equal(wpos, wpos_want, (size_t)N * sizeof *wpos);
    printf("  %-34s exact\n", "patch (h, w) indices");

    float *inv = malloc((size_t)(d / 4) * sizeof *inv);
    float *cos_t = malloc((size_t)(N * half) * sizeof *cos_t);
    float *sin_t = malloc((size_t)(N * half) * sizeof *sin_t);
    assert_non_null(inv);
    assert_non_null(cos_t);
    assert_non_null(sin_t);
    assert_int_equal(dlv_rope_inv_freq(inv, half, VISION_THETA), DLV_OK);
    expect_ulps("inv_freq", inv, inv_want, (size_t)(d / 4), 1);
    assert_int_equal(dlv_rope_vision_tables(cos_t, sin_t, hpos, wpos, N, d, VISION_THETA),
                     DLV_OK);
    expect_close("cos", cos_t, cos_want, (size_t)(N * half), TABLE_ATOL);
    expect_close("sin", sin_t, sin_want, (size_t)(N * half), TABLE_ATOL);
    check_op("q_embed (HF's tables)", q, cos_want, sin_want, N, H, d, q_embed, 1);
    check_op("q_embed (built tables)", q, cos_t, sin_t, N, H, d, q_embed, 0);

    free(grid);
    free(hpos_want);
    free(wpos_want);
    free(inv_want);
    free(cos_want);
    free(sin_want);
    free(q);
    free(q_embed);
    free(hpos);
    free(wpos);
    free(inv);
    free(cos_t);
    free(sin_t);
    dlv_st_close(g);
}

/* ---- text tokens: M-RoPE with equal components is dlv_rope --------------- */

static void test_text_positions_are_rope(void **state)
{
    (void)state;
    static const struct {
        int64_t d, heads;
        double theta;
        int64_t section[3];
    } cases[] = {
        {128, 3, 1000000.0, {16, 24, 24}},
        {64, 2, 10000.0, {8, 12, 12}},
        {18, 1, 500000.0, {3, 3, 3}},
    };
    enum { T = 37 };
    dlv_backend *be = NULL;
    assert_int_equal(dlv_backend_create("cpu", NULL, &be), DLV_OK);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t d = cases[c].d, H = cases[c].heads, n = T * H * d, half = d / 2;
        int32_t pos3[3 * T], pos[T];
        for (int t = 0; t < T; t++) {
            pos[t] = t < 30 ? t * 3 : 32767 - (T - 1 - t) * 1000;
            pos3[t] = pos3[T + t] = pos3[2 * T + t] = pos[t];
        }
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        float *cos_t = malloc((size_t)(T * half) * sizeof *cos_t);
        float *sin_t = malloc((size_t)(T * half) * sizeof *sin_t);
        assert_non_null(x);
        assert_non_null(y);
        assert_non_null(cos_t);
        assert_non_null(sin_t);
        uint32_t r = 12345u + (uint32_t)c;
        for (int64_t i = 0; i < n; i++) {
            r = r * 1664525u + 1013904223u;
            x[i] = y[i] = (float)(r >> 8) / 8388608.0f - 1.0f;
        }
        assert_int_equal(dlv_rope_mrope_tables(cos_t, sin_t, pos3, T, d, cases[c].section,
                                               cases[c].theta),
                         DLV_OK);
        /* The cpu backend's memory is host memory: the arrays go to the ops. */
        assert_int_equal(dlv_rope(be, x, pos, T, H, d, cases[c].theta), DLV_OK);
        assert_int_equal(dlv_rope_table(be, y, cos_t, sin_t, T, H, d), DLV_OK);
        assert_memory_equal(y, x, (size_t)n * sizeof *x);
        free(x);
        free(y);
        free(cos_t);
        free(sin_t);
    }
    dlv_backend_destroy(be);
}

/* ---- the patch order, spelled out ---------------------------------------- */

static void test_patch_order(void **state)
{
    (void)state;
    /* A 4 x 4 grid, merge 2, two frames: 2 x 2 blocks, row-major, then the
     * frame again. */
    static const int32_t want_h[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};
    static const int32_t want_w[16] = {0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3};
    int32_t h[32], w[32];
    assert_int_equal(dlv_rope_vision_patch_ids(h, w, 2, 4, 4, 2), DLV_OK);
    assert_memory_equal(h, want_h, sizeof want_h);
    assert_memory_equal(w, want_w, sizeof want_w);
    assert_memory_equal(h + 16, want_h, sizeof want_h);
    assert_memory_equal(w + 16, want_w, sizeof want_w);
    /* merge 1: plain row-major. */
    assert_int_equal(dlv_rope_vision_patch_ids(h, w, 1, 2, 3, 1), DLV_OK);
    static const int32_t rh[6] = {0, 0, 0, 1, 1, 1}, rw[6] = {0, 1, 2, 0, 1, 2};
    assert_memory_equal(h, rh, sizeof rh);
    assert_memory_equal(w, rw, sizeof rw);
}

/* ---- argument errors ----------------------------------------------------- */

#define EXPECT(call, needle)                                                           \
    do {                                                                               \
        assert_int_equal((call), DLV_E_INVALID_ARG);                                   \
        if (!strstr(dlv_last_error(), needle))                                         \
            fail_msg("message '%s' lacks '%s'", dlv_last_error(), needle);             \
    } while (0)

static void test_errors(void **state)
{
    (void)state;
    float c[64], s[64], inv[8];
    int32_t pos[3 * 2] = {0, 1, 0, 1, 0, 1}, hp[4] = {0}, wp[4] = {0};
    const int64_t sec[3] = {1, 1, 2}, bad_sec[3] = {1, 1, 1}, neg_sec[3] = {-1, 3, 2};
    EXPECT(dlv_rope_inv_freq(inv, 7, 1e4), "dim 7");
    EXPECT(dlv_rope_inv_freq(inv, 8, 0.0), "theta 0");
    EXPECT(dlv_rope_inv_freq(inv, 8, (double)INFINITY), "theta inf");
    EXPECT(dlv_rope_inv_freq(NULL, 8, 1e4), "inv_freq is NULL");

    assert_int_equal(dlv_rope_mrope_tables(c, s, pos, 2, 8, sec, 1e4), DLV_OK);
    EXPECT(dlv_rope_mrope_tables(c, s, pos, 2, 8, bad_sec, 1e4),
           "mrope_section 1 + 1 + 1 = 3, not head_dim / 2 = 4");
    EXPECT(dlv_rope_mrope_tables(c, s, pos, 2, 8, neg_sec, 1e4), "mrope_section[0] = -1");
    EXPECT(dlv_rope_mrope_tables(c, s, pos, 2, 8, NULL, 1e4), "mrope_section is NULL");
    EXPECT(dlv_rope_mrope_tables(c, s, pos, 2, 7, sec, 1e4), "head_dim 7");
    EXPECT(dlv_rope_mrope_tables(c, s, pos, -1, 8, sec, 1e4), "mrope tables: n_tokens = -1");
    EXPECT(dlv_rope_vision_tables(c, s, hp, wp, -2, 8, 1e4), "vision rope tables: n_patches = -2");
    EXPECT(dlv_rope_mrope_tables(c, s, NULL, 2, 8, sec, 1e4), "positions is NULL");
    EXPECT(dlv_rope_mrope_tables(NULL, s, pos, 2, 8, sec, 1e4), "cos_out is NULL");
    EXPECT(dlv_rope_mrope_tables(c, NULL, pos, 2, 8, sec, 1e4), "sin_out is NULL");
    EXPECT(dlv_rope_mrope_tables(c, s, pos, 2, 8, sec, -1.0), "theta -1");
    pos[5] = -3; /* the width component of token 1 */
    EXPECT(dlv_rope_mrope_tables(c, s, pos, 2, 8, sec, 1e4), "positions[5] = -3");
    assert_int_equal(dlv_rope_mrope_tables(NULL, NULL, NULL, 0, 8, sec, 1e4), DLV_OK);

    EXPECT(dlv_rope_vision_patch_ids(hp, wp, 1, 3, 2, 2), "multiples of merge_size 2");
    EXPECT(dlv_rope_vision_patch_ids(hp, wp, 0, 2, 2, 2), "must be > 0");
    EXPECT(dlv_rope_vision_patch_ids(hp, wp, 1, 2, 2, 0), "must be > 0");
    EXPECT(dlv_rope_vision_patch_ids(NULL, wp, 1, 2, 2, 2), "hpos is NULL");
    EXPECT(dlv_rope_vision_patch_ids(hp, wp, 1 << 20, 1 << 10, 1 << 10, 2), "too large");

    assert_int_equal(dlv_rope_vision_tables(c, s, hp, wp, 4, 8, 1e4), DLV_OK);
    EXPECT(dlv_rope_vision_tables(c, s, hp, wp, 4, 6, 1e4), "head_dim 6 is not a positive "
                                                             "multiple of 4");
    EXPECT(dlv_rope_vision_tables(c, s, NULL, wp, 4, 8, 1e4), "hpos is NULL");
    wp[2] = -1;
    EXPECT(dlv_rope_vision_tables(c, s, hp, wp, 4, 8, 1e4), "wpos[2] = -1");
    EXPECT(dlv_rope_vision_tables(c, s, hp, hp, 4, 8, 0.0), "theta 0");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s GOLDEN\n", argv[0]);
        return 2;
    }
    golden_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mrope_golden),
        cmocka_unit_test(test_vision_golden),
        cmocka_unit_test(test_text_positions_are_rope),
        cmocka_unit_test(test_patch_order),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
