/* The CPU backend's compute ops against independent double-precision
 * references written here, on seeded random inputs with odd sizes. The
 * whole group runs twice: with 1 thread and with 4 (more threads than some
 * row counts), and a separate test checks the two agree bit for bit.
 *
 * Tolerances (|got - ref| <= atol + rtol |ref|), all from f32 rounding of a
 * few operations per element:
 *   norms, activations, add, l2:  atol 1e-6, rtol 1e-5
 *   RoPE:                         atol 2e-6 (values in [-1, 1]); rope_table
 *                                 with dlv_rope's angles: dlv_rope's bits
 *   attention:                    atol 1e-5, rtol 1e-5
 *   GEMMs (matmul, conv):         k * (1e-6 + 1e-6 |ref|), k the dot length
 * Embedding lookup and im2col are copies and must be exact. */
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops_test_util.h"

#include "backend/cpu/cpu_internal.h"

typedef struct fixture {
    dlv_backend *be;
    int n_threads;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    fx->n_threads = *state ? *(const int *)*state : 1;
    dlv_backend_config cfg = {.device = 0, .n_threads = fx->n_threads};
    if (dlv_backend_create("cpu", &cfg, &fx->be) != DLV_OK) {
        print_error("cannot create the cpu backend: %s\n", dlv_last_error());
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    dlv_backend_destroy(fx->be);
    free(fx);
    return 0;
}

static const dlv_dtype param_dtypes[] = {DLV_DTYPE_F32, DLV_DTYPE_BF16, DLV_DTYPE_F16};

/* ---- matmul with BF16/F16 weights --------------------------------------- */

typedef struct wmm_case {
    int64_t m, n, k, pad;
    dlv_transpose tb;
    dlv_dtype dt;
    size_t misalign; /* bytes B is offset from an aligned address */
    float alpha, beta;
    dlv_transpose ta; /* A stored k x m (lda >= m) when DLV_TRANS */
    int bf16;         /* the backend computes in bf16: the reference rounds A and B */
} wmm_case;

/* x rounded to bf16 (round to nearest even), as bf16 compute sees it. */
static double as_bf16(double x)
{
    return (double)dlv_bf16_to_f32(dlv_f32_to_bf16((float)x));
}

static void run_weight_matmul(dlv_backend *be, const wmm_case *t, uint64_t seed)
{
    rng r = {seed};
    int64_t b_rows = t->tb ? t->n : t->k, b_cols = t->tb ? t->k : t->n;
    int64_t a_rows = t->ta ? t->k : t->m, a_cols = t->ta ? t->m : t->k;
    int64_t ldb = b_cols + t->pad, lda = a_cols + t->pad, ldc = t->n + t->pad;
    size_t es = dlv_dtype_size(t->dt);
    size_t nb = (size_t)(b_rows * ldb);
    float *bf = rand_floats(&r, nb, -1.0f, 1.0f);
    unsigned char *braw = malloc(nb * es + t->misalign + 1);
    double *bw = alloc_doubles(nb);
    assert_non_null(braw);
    store_as(t->dt, bf, nb, braw + t->misalign, bw);
    float *a = rand_floats(&r, (size_t)(a_rows * lda), -1.0f, 1.0f);
    float *c0 = rand_floats(&r, (size_t)(t->m * ldc), -1.0f, 1.0f);
    float *c = malloc((size_t)(t->m * ldc) * sizeof *c);
    assert_non_null(c);
    memcpy(c, c0, (size_t)(t->m * ldc) * sizeof *c);
    for (int64_t i = 0; i < t->m; i++)
        for (int64_t j = t->n; j < ldc; j++) c[i * ldc + j] = 777.0f; /* padding sentinel */

    dlv_matmul_args args = {
        .struct_size = sizeof args, .trans_a = t->ta, .trans_b = t->tb,
        .m = t->m, .n = t->n, .k = t->k, .alpha = t->alpha, .beta = t->beta,
        .a = a, .a_dtype = DLV_DTYPE_F32, .lda = lda,
        .b = braw + t->misalign, .b_dtype = t->dt, .ldb = ldb, .c = c, .ldc = ldc,
    };
    if (dlv_matmul(be, &args) != DLV_OK) fail_msg("dlv_matmul: %s", dlv_last_error());

    for (int64_t i = 0; i < t->m; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float g = c[i * ldc + j];
            if (j >= t->n) {
                if (g != 777.0f)
                    fail_msg("C padding [%lld][%lld] overwritten", (long long)i, (long long)j);
                continue;
            }
            double ref = 0.0;
            for (int64_t p = 0; p < t->k; p++) {
                double x = (double)(t->ta ? a[p * lda + i] : a[i * lda + p]);
                double y = t->tb ? bw[j * ldb + p] : bw[p * ldb + j];
                ref += t->bf16 ? as_bf16(x) * as_bf16(y) : x * y;
            }
            ref = (double)t->alpha * ref + (double)t->beta * (double)c0[i * ldc + j];
            double tol = (double)t->k * (1e-6 + 1e-6 * fabs(ref));
            if (!(fabs((double)g - ref) <= tol))
                fail_msg("%s B%s m=%lld n=%lld k=%lld ta=%d tb=%d misalign=%zu: C[%lld][%lld] = "
                         "%.9g, reference %.9g", dlv_dtype_name(t->dt),
                         t->bf16 ? " (bf16 compute)" : "", (long long)t->m,
                         (long long)t->n, (long long)t->k, t->ta, t->tb, t->misalign,
                         (long long)i, (long long)j, (double)g, ref);
        }
    free(bf);
    free(braw);
    free(bw);
    free(a);
    free(c0);
    free(c);
}

static void test_matmul_weight_dtypes(void **state)
{
    fixture *fx = *state;
    /* 5 x 2000 x 2200 spans two weight tiles (2^22 elements each). */
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 33, 29}, {5, 2000, 2200}};
    int n = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t d = 0; d < 3; d++)
            for (int tb = 0; tb < 2; tb++) {
                wmm_case t = {shapes[s][0], shapes[s][1], shapes[s][2], s % 2 ? 3 : 0,
                              (dlv_transpose)tb, param_dtypes[d], (size_t)(s + d) % 3,
                              tb ? 1.0f : 0.5f, tb ? 0.0f : -1.25f, DLV_NO_TRANS, 0};
                run_weight_matmul(fx->be, &t, 1000 + s * 10 + d * 2 + (uint64_t)tb);
                n++;
            }
    print_message("%d weight-dtype matmul cases match\n", n);
}

/* A transposed A (stored k x m, as the training GEMMs dW = dY^T X use it)
 * with a BF16/F16 B, and with an F32 B at an address not aligned for float:
 * those take the widened path (B converted a tile of columns at a time),
 * which must honour trans_a like the plain sgemm path does. Square and
 * non-square shapes (a transpose mix-up cannot hide behind m == k), both
 * trans_b, padded leading dimensions, and one shape spanning two tiles. */
static void test_matmul_weight_trans_a(void **state)
{
    fixture *fx = *state;
    static const int64_t shapes[][3] = {{1, 1, 1}, {2, 3, 1}, {4, 5, 4}, {3, 7, 5},
                                        {17, 33, 29}, {29, 6, 2}, {6, 2000, 2200}};
    static const size_t misaligns[] = {0, 2};
    int n = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t d = 0; d < 3; d++)
            for (size_t mi = 0; mi < 2; mi++)
                for (int tb = 0; tb < 2; tb++) {
                    wmm_case t = {shapes[s][0], shapes[s][1], shapes[s][2], s % 2 ? 0 : 3,
                                  (dlv_transpose)tb, param_dtypes[d], misaligns[mi],
                                  tb ? 0.75f : 1.0f, tb ? 0.5f : 0.0f, DLV_TRANS, 0};
                    run_weight_matmul(fx->be, &t, 1200 + s * 20 + d * 4 + mi * 2 + (uint64_t)tb);
                    n++;
                }
    print_message("%d trans_a weight-dtype matmul cases match\n", n);
}

/* A backend computing in bf16: every weight dtype, both transposes of A and
 * B, misaligned weights, alpha and beta, against a double product of the
 * bf16-rounded operands (what an f32-accumulating bf16 kernel computes); and
 * the result is not the f32 one (the rounding happened). */
static void test_matmul_bf16_compute(void **state)
{
    fixture *fx = *state;
    dlv_backend_config cfg = {.n_threads = fx->n_threads, .compute = DLV_DTYPE_BF16};
    dlv_backend *be = NULL;
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_OK);
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 33, 29}, {5, 2000, 2200}};
    int n = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t d = 0; d < 3; d++)
            for (int tb = 0; tb < 2; tb++)
                for (int ta = 0; ta < 2; ta++) {
                    wmm_case t = {shapes[s][0], shapes[s][1], shapes[s][2], s % 2 ? 3 : 0,
                                  (dlv_transpose)tb, param_dtypes[d], (size_t)(s + d + ta) % 3,
                                  tb ? 1.0f : 0.5f, tb ? 0.0f : -1.25f, (dlv_transpose)ta, 1};
                    run_weight_matmul(be, &t, 3000 + s * 20 + d * 4 + (uint64_t)(tb * 2 + ta));
                    n++;
                }
    /* The same product in f32 differs: bf16 keeps 8 significant bits. */
    rng r = {99};
    enum { M = 4, N = 8, K = 64 };
    float *x = rand_floats(&r, M * K, -1.0f, 1.0f), *w = rand_floats(&r, N * K, -1.0f, 1.0f);
    float *c16 = alloc_floats(M * N, 0.0f), *c32 = alloc_floats(M * N, 0.0f);
    dlv_matmul_args a = {.struct_size = sizeof a, .trans_b = DLV_TRANS, .m = M, .n = N, .k = K,
                         .alpha = 1.0f, .a = x, .a_dtype = DLV_DTYPE_F32, .lda = K, .b = w,
                         .b_dtype = DLV_DTYPE_F32, .ldb = K, .c = c16, .ldc = N};
    assert_int_equal(dlv_matmul(be, &a), DLV_OK);
    a.c = c32;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_OK);
    double diff = 0.0;
    for (int i = 0; i < M * N; i++) diff = fmax(diff, fabs((double)c16[i] - (double)c32[i]));
    assert_true(diff > 1e-4 && diff < 0.1);
    print_message("%d bf16-compute matmul cases match; f32 differs by up to %.2g\n", n, diff);
    free(x); free(w); free(c16); free(c32);
    dlv_backend_destroy(be);
}

/* A BF16 weight gives the same product as its exact f32 widening through the
 * plain F32 path: the tiles only change where the values come from. */
static void test_matmul_bf16_equals_widened(void **state)
{
    fixture *fx = *state;
    rng r = {77};
    enum { M = 9, N = 1100, K = 4001 }; /* K * N > one tile (2^22 elements) */
    float *w = rand_floats(&r, (size_t)N * K, -1.0f, 1.0f);
    unsigned char *wb = malloc((size_t)N * K * 2);
    double *wd = alloc_doubles((size_t)N * K);
    assert_non_null(wb);
    store_as(DLV_DTYPE_BF16, w, (size_t)N * K, wb, wd);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = (float)wd[i];
    float *x = rand_floats(&r, (size_t)M * K, -1.0f, 1.0f);
    float *c1 = alloc_floats((size_t)M * N, 0.0f), *c2 = alloc_floats((size_t)M * N, 0.0f);
    dlv_matmul_args a = {.struct_size = sizeof a, .trans_b = DLV_TRANS, .m = M, .n = N, .k = K,
                         .alpha = 1.0f, .a = x, .a_dtype = DLV_DTYPE_F32, .lda = K,
                         .b = wb, .b_dtype = DLV_DTYPE_BF16, .ldb = K, .c = c1, .ldc = N};
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_OK);
    a.b = w;
    a.b_dtype = DLV_DTYPE_F32;
    a.c = c2;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_OK);
    double *ref = alloc_doubles((size_t)M * N);
    for (size_t i = 0; i < (size_t)M * N; i++) ref[i] = (double)c2[i];
    check_close("bf16 vs widened f32", c1, ref, (size_t)M * N, 1e-4, 1e-5);
    free(w); free(wb); free(wd); free(x); free(c1); free(c2); free(ref);
}

/* ---- add ---------------------------------------------------------------- */

static void test_add(void **state)
{
    fixture *fx = *state;
    enum { R = 7, C = 45 };
    for (size_t d = 0; d < 3; d++)
        for (int bc = 0; bc < 2; bc++)
            for (int inplace = 0; inplace < 2; inplace++) {
                rng r = {300 + d * 4 + (uint64_t)bc * 2 + (uint64_t)inplace};
                size_t nb = bc ? C : (size_t)R * C;
                float *a = rand_floats(&r, (size_t)R * C, -2.0f, 2.0f);
                float *bsrc = rand_floats(&r, nb, -2.0f, 2.0f);
                unsigned char *b = malloc(nb * 4 + 1);
                double *bw = alloc_doubles(nb), *ref = alloc_doubles((size_t)R * C);
                assert_non_null(b);
                store_as(param_dtypes[d], bsrc, nb, b + 1, bw); /* odd address */
                for (int i = 0; i < R; i++)
                    for (int j = 0; j < C; j++)
                        ref[i * C + j] = (double)a[i * C + j] + bw[bc ? j : i * C + j];
                float *out = inplace ? a : alloc_floats((size_t)R * C, NAN);
                dlv_status st = bc && inplace
                                    ? dlv_add_bias(fx->be, a, b + 1, param_dtypes[d], R, C)
                                    : dlv_add(fx->be, out, a, b + 1, param_dtypes[d], bc, R, C);
                if (st != DLV_OK) fail_msg("add: %s", dlv_last_error());
                check_close("add", out, ref, (size_t)R * C, 1e-6, 1e-6);
                if (!inplace) free(out);
                free(a); free(bsrc); free(b); free(bw); free(ref);
            }
}

/* ---- norms -------------------------------------------------------------- */

static void test_layernorm(void **state)
{
    fixture *fx = *state;
    static const int64_t shapes[][2] = {{1, 1}, {5, 37}, {3, 769}, {64, 8}};
    const float eps = 1e-5f;
    for (size_t s = 0; s < 4; s++)
        for (size_t d = 0; d < 3; d++)
            for (int variant = 0; variant < 3; variant++) { /* 0 w+b, 1 w only, 2 none */
                int64_t R = shapes[s][0], C = shapes[s][1];
                rng r = {500 + s * 16 + d * 4 + (uint64_t)variant};
                /* Offset mean, unit-ish spread: the mean must really be removed. */
                float *x = rand_floats(&r, (size_t)(R * C), 2.0f, 5.0f);
                float *wf = rand_floats(&r, (size_t)C, 0.5f, 1.5f);
                float *bf = rand_floats(&r, (size_t)C, -0.5f, 0.5f);
                unsigned char *w = malloc((size_t)C * 4), *b = malloc((size_t)C * 4);
                double *ww = alloc_doubles((size_t)C), *bw = alloc_doubles((size_t)C);
                assert_non_null(w);
                assert_non_null(b);
                store_as(param_dtypes[d], wf, (size_t)C, w, ww);
                store_as(param_dtypes[d], bf, (size_t)C, b, bw);
                double *ref = alloc_doubles((size_t)(R * C));
                for (int64_t i = 0; i < R; i++) {
                    double mean = 0, var = 0;
                    for (int64_t j = 0; j < C; j++) mean += (double)x[i * C + j];
                    mean /= (double)C;
                    for (int64_t j = 0; j < C; j++)
                        var += ((double)x[i * C + j] - mean) * ((double)x[i * C + j] - mean);
                    var /= (double)C;
                    for (int64_t j = 0; j < C; j++) {
                        double y = ((double)x[i * C + j] - mean) / sqrt(var + (double)eps);
                        if (variant < 2) y *= ww[j];
                        if (variant == 0) y += bw[j];
                        ref[i * C + j] = y;
                    }
                }
                float *out = alloc_floats((size_t)(R * C), NAN);
                dlv_status st = dlv_layernorm(fx->be, out, x, variant < 2 ? w : NULL,
                                              variant == 0 ? b : NULL, param_dtypes[d], R, C, eps);
                if (st != DLV_OK) fail_msg("layernorm: %s", dlv_last_error());
                check_close("layernorm", out, ref, (size_t)(R * C), 1e-6, 1e-5);
                /* In place gives the same. */
                assert_int_equal(dlv_layernorm(fx->be, x, x, variant < 2 ? w : NULL,
                                               variant == 0 ? b : NULL, param_dtypes[d], R, C,
                                               eps),
                                 DLV_OK);
                assert_memory_equal(x, out, (size_t)(R * C) * sizeof(float));
                free(x); free(wf); free(bf); free(w); free(b); free(ww); free(bw); free(ref);
                free(out);
            }
}

static void test_rmsnorm(void **state)
{
    fixture *fx = *state;
    static const int64_t shapes[][2] = {{1, 1}, {5, 37}, {3, 1031}, {70, 4}};
    for (size_t s = 0; s < 4; s++)
        for (size_t d = 0; d < 3; d++)
            for (int with_w = 0; with_w < 2; with_w++) {
                int64_t R = shapes[s][0], C = shapes[s][1];
                /* A model's tiny eps, and a large one where adding it to the
                 * RMS instead of the mean square would show. */
                const float eps = s % 2 ? 0.25f : 1e-6f;
                rng r = {700 + s * 8 + d * 2 + (uint64_t)with_w};
                float *x = rand_floats(&r, (size_t)(R * C), -3.0f, 3.0f);
                float *wf = rand_floats(&r, (size_t)C, -2.0f, 2.0f);
                unsigned char *w = malloc((size_t)C * 4);
                double *ww = alloc_doubles((size_t)C), *ref = alloc_doubles((size_t)(R * C));
                assert_non_null(w);
                store_as(param_dtypes[d], wf, (size_t)C, w, ww);
                for (int64_t i = 0; i < R; i++) {
                    double ms = 0;
                    for (int64_t j = 0; j < C; j++)
                        ms += (double)x[i * C + j] * (double)x[i * C + j];
                    ms /= (double)C;
                    for (int64_t j = 0; j < C; j++)
                        ref[i * C + j] = (with_w ? ww[j] : 1.0) * (double)x[i * C + j] /
                                         sqrt(ms + (double)eps);
                }
                float *out = alloc_floats((size_t)(R * C), NAN);
                dlv_status st = dlv_rmsnorm(fx->be, out, x, with_w ? w : NULL, param_dtypes[d],
                                            R, C, eps);
                if (st != DLV_OK) fail_msg("rmsnorm: %s", dlv_last_error());
                check_close("rmsnorm", out, ref, (size_t)(R * C), 1e-6, 1e-5);
                free(x); free(wf); free(w); free(ww); free(ref); free(out);
            }
}

static void test_l2_normalize(void **state)
{
    fixture *fx = *state;
    enum { R = 6, C = 33 };
    rng r = {900};
    float *x = rand_floats(&r, R * C, -1.0f, 1.0f);
    for (int j = 0; j < C; j++) {
        x[1 * C + j] = 0.0f;               /* zero row: 0 / 1e-12 = 0, not NaN */
        x[2 * C + j] = j == 4 ? 3e-14f : 0.0f; /* norm below the clamp */
        x[3 * C + j] = 1e5f * (float)(j % 3 - 1);
    }
    double *ref = alloc_doubles(R * C);
    for (int i = 0; i < R; i++) {
        double ss = 0;
        for (int j = 0; j < C; j++) ss += (double)x[i * C + j] * (double)x[i * C + j];
        double den = fmax(sqrt(ss), 1e-12);
        for (int j = 0; j < C; j++) ref[i * C + j] = (double)x[i * C + j] / den;
    }
    float *out = alloc_floats(R * C, NAN);
    assert_int_equal(dlv_l2_normalize(fx->be, out, x, R, C), DLV_OK);
    check_close("l2_normalize", out, ref, R * C, 1e-6, 1e-5);
    assert_true(out[2 * C + 4] > 0.029f && out[2 * C + 4] < 0.031f); /* 3e-14 / 1e-12 */
    assert_int_equal(dlv_l2_normalize(fx->be, x, x, R, C), DLV_OK);
    assert_memory_equal(x, out, R * C * sizeof(float));
    free(x); free(ref); free(out);
}

/* ---- activations -------------------------------------------------------- */

static double act_ref(dlv_op_act act, double x)
{
    switch (act) {
    case DLV_OP_ACT_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    case DLV_OP_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case DLV_OP_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case DLV_OP_ACT_SILU: return x / (1.0 + exp(-x));
    default: return x > 0 ? x : 0.0;
    }
}

static void test_activations(void **state)
{
    fixture *fx = *state;
    enum { N = 40011 }; /* above one thread chunk, odd */
    rng r = {1100};
    float *x = rand_floats(&r, N, -8.0f, 8.0f);
    static const float specials[] = {0.0f, -0.0f, 100.0f, -100.0f, 1e-30f, -88.0f, 89.0f};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) x[i] = specials[i];
    double *ref = alloc_doubles(N);
    float *out = alloc_floats(N, NAN);
    static const char *names[] = {"quick_gelu", "gelu", "gelu_tanh", "silu", "relu"};
    for (int act = 0; act < DLV_OP_ACT_COUNT; act++) {
        for (int i = 0; i < N; i++) ref[i] = act_ref((dlv_op_act)act, (double)x[i]);
        assert_int_equal(dlv_activation(fx->be, (dlv_op_act)act, out, x, N), DLV_OK);
        check_close(names[act], out, ref, N, 1e-6, 1e-5);
    }
    /* swiglu: silu(gate) * up, in place on gate. */
    float *up = rand_floats(&r, N, -3.0f, 3.0f);
    for (int i = 0; i < N; i++) ref[i] = act_ref(DLV_OP_ACT_SILU, (double)x[i]) * (double)up[i];
    assert_int_equal(dlv_swiglu(fx->be, x, x, up, N), DLV_OK);
    check_close("swiglu", x, ref, N, 1e-6, 1e-5);
    free(x); free(ref); free(out); free(up);
}

/* ---- RoPE --------------------------------------------------------------- */

/* Rotates x [n_tokens, n_heads * d] by the closed form: pair (i, i + d/2)
 * of a head turns by angle a = position * inv_freq[i]. The angle is the
 * one HF forms in f32 (inv_freq = 1 / theta^(2i/d) in torch float32, the
 * product in float32): at position 4095 one f32 ulp of inv_freq moves the
 * angle by ~2e-4, so a reference with exact angles would test a different
 * function. Everything after the angle is double. */
static void rope_ref(double *out, const float *x, const int32_t *pos, int64_t n_tokens,
                     int64_t n_heads, int64_t d, double theta, int exact_angles)
{
    int64_t half = d / 2;
    for (int64_t t = 0; t < n_tokens; t++)
        for (int64_t h = 0; h < n_heads; h++)
            for (int64_t i = 0; i < half; i++) {
                double a;
                if (exact_angles) {
                    a = (double)pos[t] / pow(theta, (double)(2 * i) / (double)d);
                } else {
                    float inv = 1.0f / powf((float)theta, (float)(2 * i) / (float)d);
                    a = (double)((float)pos[t] * inv);
                }
                const float *xv = x + (t * n_heads + h) * d;
                double x1 = (double)xv[i], x2 = (double)xv[i + half];
                double *o = out + (t * n_heads + h) * d;
                o[i] = x1 * cos(a) - x2 * sin(a);
                o[i + half] = x2 * cos(a) + x1 * sin(a);
            }
}

static void test_rope(void **state)
{
    fixture *fx = *state;
    static const int32_t positions[] = {0, 1, 2, 7, 100, 1000, 4095, 3};
    enum { T = sizeof positions / sizeof positions[0] };
    static const double thetas[] = {10000.0, 1e6};
    static const int64_t dims[] = {2, 8, 64, 128};
    for (int ti = 0; ti < 2; ti++)
        for (int di = 0; di < 4; di++) {
            int64_t d = dims[di], H = 3;
            size_t n = (size_t)(T * H * d);
            rng r = {1300 + (uint64_t)ti * 8 + (uint64_t)di};
            float *x = rand_floats(&r, n, -1.0f, 1.0f);
            float *orig = malloc(n * sizeof *orig);
            assert_non_null(orig);
            memcpy(orig, x, n * sizeof *x);
            double *ref = alloc_doubles(n);
            rope_ref(ref, orig, positions, T, H, d, thetas[ti], 0);
            assert_int_equal(dlv_rope(fx->be, x, positions, T, H, d, thetas[ti]), DLV_OK);
            check_close("rope", x, ref, n, 2e-6, 0.0);
            /* Position 0 is the identity, exactly. */
            assert_memory_equal(x, orig, (size_t)(H * d) * sizeof(float));
            /* Small positions also match exact angles (the f32 angle error
             * is position * ulp there). */
            rope_ref(ref, orig, positions, 4, H, d, thetas[ti], 1);
            check_close("rope (exact angles, positions < 8)", x, ref, (size_t)(4 * H * d), 1e-5,
                        0.0);
            /* A rotation keeps each pair's length. */
            for (int64_t row = 0; row < T * H; row++)
                for (int64_t i = 0; i < d / 2; i++) {
                    const float *a = x + row * d, *b = orig + row * d;
                    double a1 = (double)a[i], a2 = (double)a[i + d / 2];
                    double b1 = (double)b[i], b2 = (double)b[i + d / 2];
                    double l1 = a1 * a1 + a2 * a2, l0 = b1 * b1 + b2 * b2;
                    if (fabs(l1 - l0) > 1e-5) fail_msg("rope changed a pair's length");
                }
            free(x); free(orig); free(ref);
        }
}

/* rope_table with the tables of dlv_rope's own angles (cosf and sinf of
 * (float)position * inv_freq[i], inv_freq = 1 / powf(theta, 2i/d) as HF's
 * default RoPE computes it) gives dlv_rope's result bit for bit: the same
 * rotation, only the angles' source differs. Then the backward against
 * rope_backward the same way, and the closed-form reference. */
static void test_rope_table(void **state)
{
    fixture *fx = *state;
    static const int32_t positions[] = {0, 1, 2, 7, 100, 1000, 4095, 3, 32767, 12345, 5};
    enum { T = sizeof positions / sizeof positions[0] };
    static const double thetas[] = {10000.0, 1e6, 5e5};
    static const int64_t dims[] = {2, 8, 18, 64, 80, 128};
    for (int ti = 0; ti < 3; ti++)
        for (int di = 0; di < 6; di++) {
            int64_t d = dims[di], half = d / 2, H = 3;
            size_t n = (size_t)(T * H * d), nt = (size_t)(T * half);
            rng r = {1400 + (uint64_t)ti * 8 + (uint64_t)di};
            float *x = rand_floats(&r, n, -1.0f, 1.0f);
            float *y = malloc(n * sizeof *y), *cos_t = malloc(nt * sizeof *cos_t);
            float *sin_t = malloc(nt * sizeof *sin_t);
            assert_non_null(y);
            assert_non_null(cos_t);
            assert_non_null(sin_t);
            for (int64_t i = 0; i < half; i++) {
                float inv = 1.0f / powf((float)thetas[ti], (float)(2 * i) / (float)d);
                for (int t = 0; t < T; t++) {
                    float a = (float)positions[t] * inv;
                    cos_t[t * half + i] = cosf(a);
                    sin_t[t * half + i] = sinf(a);
                }
            }
            double *ref = alloc_doubles(n);
            rope_ref(ref, x, positions, T, H, d, thetas[ti], 0);
            memcpy(y, x, n * sizeof *x);
            assert_int_equal(dlv_rope(fx->be, x, positions, T, H, d, thetas[ti]), DLV_OK);
            assert_int_equal(dlv_rope_table(fx->be, y, cos_t, sin_t, T, H, d), DLV_OK);
            assert_memory_equal(y, x, n * sizeof *x);
            check_close("rope_table", y, ref, n, 2e-6, 0.0);
            assert_int_equal(dlv_rope_backward(fx->be, x, positions, T, H, d, thetas[ti]),
                             DLV_OK);
            assert_int_equal(dlv_rope_table_backward(fx->be, y, cos_t, sin_t, T, H, d), DLV_OK);
            assert_memory_equal(y, x, n * sizeof *x);
            free(x); free(y); free(cos_t); free(sin_t); free(ref);
        }
}

/* ---- attention ---------------------------------------------------------- */

static void attention_ref(double *out, const dlv_attention_args *a)
{
    int64_t d = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int64_t ldq = a->n_heads * d, ldk = a->n_kv_heads * d;
    double *s = alloc_doubles((size_t)a->n_kv);
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t h = 0; h < a->n_heads; h++) {
            int64_t g = h / group;
            for (int64_t i = 0; i < a->n_q; i++) {
                const float *q = a->q + (b * a->n_q + i) * ldq + h * d;
                double mx = -(double)INFINITY;
                int any = 0;
                for (int64_t j = 0; j < a->n_kv; j++) {
                    int ok = (!a->key_mask || a->key_mask[b * a->n_kv + j]) &&
                             (!a->causal || j - i <= a->n_kv - a->n_q);
                    if (!ok) { s[j] = (double)NAN; continue; }
                    const float *k = a->k + (b * a->n_kv + j) * ldk + g * d;
                    double dot = 0;
                    for (int64_t c = 0; c < d; c++) dot += (double)q[c] * (double)k[c];
                    s[j] = dot * (double)a->scale;
                    if (s[j] > mx) mx = s[j];
                    any = 1;
                }
                double *o = out + (b * a->n_q + i) * ldq + h * d;
                for (int64_t c = 0; c < d; c++) o[c] = 0.0;
                if (!any) continue;
                double sum = 0;
                for (int64_t j = 0; j < a->n_kv; j++)
                    if (!isnan(s[j])) sum += exp(s[j] - mx);
                for (int64_t j = 0; j < a->n_kv; j++) {
                    if (isnan(s[j])) continue;
                    double p = exp(s[j] - mx) / sum;
                    const float *v = a->v + (b * a->n_kv + j) * ldk + g * d;
                    for (int64_t c = 0; c < d; c++) o[c] += p * (double)v[c];
                }
            }
        }
    free(s);
}

typedef struct attn_case {
    int64_t batch, n_q, n_kv, heads, kv_heads, d;
    int causal;
    int mask; /* 0 none, 1 left padding in sequence 1, 2 everything masked in sequence 0,
               * 3 every third key */
} attn_case;

static void run_attention(dlv_backend *be, const attn_case *t, uint64_t seed)
{
    rng r = {seed};
    size_t nq = (size_t)(t->batch * t->n_q * t->heads * t->d);
    size_t nk = (size_t)(t->batch * t->n_kv * t->kv_heads * t->d);
    float *q = rand_floats(&r, nq, -2.0f, 2.0f), *k = rand_floats(&r, nk, -2.0f, 2.0f);
    float *v = rand_floats(&r, nk, -1.0f, 1.0f), *out = alloc_floats(nq, NAN);
    uint8_t *mask = NULL;
    if (t->mask) {
        mask = malloc((size_t)(t->batch * t->n_kv));
        assert_non_null(mask);
        memset(mask, 1, (size_t)(t->batch * t->n_kv));
        if (t->mask == 1 && t->batch > 1) {
            mask[1 * t->n_kv + 0] = 0; /* left padding: 2 keys */
            mask[1 * t->n_kv + 1] = 0;
        }
        if (t->mask == 2) memset(mask, 0, (size_t)t->n_kv);
        if (t->mask == 3) /* every third key, in every sequence and key block */
            for (int64_t i = 0; i < t->batch * t->n_kv; i++) mask[i] = i % 3 != 1;
    }
    dlv_attention_args a = {.struct_size = sizeof a, .out = out, .q = q, .k = k, .v = v,
                            .key_mask = mask, .batch = t->batch, .n_q = t->n_q,
                            .n_kv = t->n_kv, .n_heads = t->heads, .n_kv_heads = t->kv_heads,
                            .head_dim = t->d, .scale = 1.0f / sqrtf((float)t->d),
                            .causal = t->causal};
    double *ref = alloc_doubles(nq);
    attention_ref(ref, &a);
    if (dlv_attention(be, &a) != DLV_OK) fail_msg("attention: %s", dlv_last_error());
    char what[160];
    snprintf(what, sizeof what,
             "attention b=%lld nq=%lld nkv=%lld heads=%lld/%lld d=%lld causal=%d mask=%d",
             (long long)t->batch, (long long)t->n_q, (long long)t->n_kv, (long long)t->heads,
             (long long)t->kv_heads, (long long)t->d, t->causal, t->mask);
    check_close(what, out, ref, nq, 1e-5, 1e-5);
    free(q); free(k); free(v); free(out); free(mask); free(ref);
}

static void test_attention(void **state)
{
    fixture *fx = *state;
    static const attn_case cases[] = {
        {1, 1, 1, 1, 1, 1, 0, 0},
        {2, 7, 7, 4, 2, 5, 0, 0},   /* GQA, bidirectional (vision tower) */
        {2, 7, 7, 4, 2, 5, 1, 0},   /* causal */
        {2, 7, 7, 4, 2, 5, 1, 1},   /* causal + left padding: row 0 of seq 1 fully masked */
        {2, 9, 9, 4, 2, 16, 0, 1},  /* padding, bidirectional */
        {3, 13, 13, 6, 1, 8, 1, 1}, /* MQA */
        {2, 11, 11, 3, 3, 7, 0, 2}, /* every key of sequence 0 masked: zeros */
        {2, 3, 9, 4, 2, 5, 1, 1},   /* n_q < n_kv: bottom-right causal */
        {1, 3, 9, 2, 2, 4, 0, 0},
        {1, 65, 65, 2, 1, 64, 1, 0},
        /* Several query blocks (32 rows) and key blocks (64 keys) of the
         * fused kernel, partial last blocks, head sizes that are not a
         * multiple of its 32 columns, masks across block boundaries. */
        {2, 70, 150, 4, 2, 40, 1, 1},
        {2, 100, 100, 2, 2, 128, 0, 1},
        {2, 33, 70, 2, 1, 72, 0, 3},
        {1, 90, 200, 3, 1, 64, 1, 3},
        {1, 129, 129, 1, 1, 3, 1, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_attention(fx->be, &cases[i], 1500 + i);
}

/* Scores far outside expf's range: |scale q.k| well above 88.7, where
 * expf(s) overflows to inf (or underflows to 0 for s below about -103).
 * The softmax must still be finite and equal the double reference, which
 * subtracts each row's maximum. q and k are on a grid (1/64, or 1/4 for
 * spread) and the scale is 0.25, so every score is exact in f32 and the
 * usual tolerance holds.
 *   offset: dimension 0 of every key is 20 and of every query +-24 (the
 *           sign alternating over queries and heads), so each row's scores
 *           are +-120 plus a spread of a few units; softmax ignores a
 *           constant per row, so the output must also equal the one with
 *           dimension 0 zeroed (ordinary scores);
 *   spread: values up to 32 in every dimension: scores hundreds apart
 *           within a row (nearly one-hot rows). */
static float on_grid(rng *r, float lim, float step)
{
    return roundf(rng_uniform(r, -lim, lim) / step) * step;
}

static void run_attention_large(dlv_backend *be, const attn_case *t, int spread, uint64_t seed)
{
    rng r = {seed};
    size_t nq = (size_t)(t->batch * t->n_q * t->heads * t->d);
    size_t nk = (size_t)(t->batch * t->n_kv * t->kv_heads * t->d);
    float lim = spread ? 32.0f : 2.0f, step = spread ? 0.25f : 1.0f / 64.0f;
    float *q = alloc_floats(nq, 0.0f), *k = alloc_floats(nk, 0.0f);
    for (size_t i = 0; i < nq; i++) q[i] = on_grid(&r, lim, step);
    for (size_t i = 0; i < nk; i++) k[i] = on_grid(&r, lim, step);
    float *v = rand_floats(&r, nk, -1.0f, 1.0f), *out = alloc_floats(nq, NAN);
    if (!spread) {
        for (size_t row = 0; row < nq / (size_t)t->d; row++)
            q[row * (size_t)t->d] = row % 2 ? -24.0f : 24.0f; /* row = (token, head) */
        for (size_t row = 0; row < nk / (size_t)t->d; row++) k[row * (size_t)t->d] = 20.0f;
    }
    uint8_t *mask = NULL;
    if (t->mask) {
        mask = malloc((size_t)(t->batch * t->n_kv));
        assert_non_null(mask);
        memset(mask, 1, (size_t)(t->batch * t->n_kv));
        if (t->batch > 1) mask[1 * t->n_kv + 0] = mask[1 * t->n_kv + 1] = 0;
    }
    dlv_attention_args a = {.struct_size = sizeof a, .out = out, .q = q, .k = k, .v = v,
                            .key_mask = mask, .batch = t->batch, .n_q = t->n_q,
                            .n_kv = t->n_kv, .n_heads = t->heads, .n_kv_heads = t->kv_heads,
                            .head_dim = t->d, .scale = 0.25f, .causal = t->causal};
    double *ref = alloc_doubles(nq);
    attention_ref(ref, &a);
    /* The premise: some scores (here of sequence 0, head 0) are out of
     * expf's range. */
    double big = 0.0;
    for (int64_t i = 0; i < t->n_q; i++)
        for (int64_t j = 0; j < t->n_kv; j++) {
            double dot = 0.0;
            for (int64_t c = 0; c < t->d; c++)
                dot += (double)q[i * t->heads * t->d + c] * (double)k[j * t->kv_heads * t->d + c];
            if (fabs(0.25 * dot) > big) big = fabs(0.25 * dot);
        }
    assert_true(big > 100.0);
    if (dlv_attention(be, &a) != DLV_OK) fail_msg("attention: %s", dlv_last_error());
    char what[160];
    snprintf(what, sizeof what,
             "attention, %s scores b=%lld nq=%lld nkv=%lld heads=%lld/%lld d=%lld causal=%d "
             "mask=%d", spread ? "spread" : "offset", (long long)t->batch, (long long)t->n_q,
             (long long)t->n_kv, (long long)t->heads, (long long)t->kv_heads, (long long)t->d,
             t->causal, t->mask);
    check_close(what, out, ref, nq, 1e-5, 1e-5);
    if (!spread) {
        /* Without the per-row constant: ordinary scores, the same output. */
        for (size_t row = 0; row < nq / (size_t)t->d; row++) q[row * (size_t)t->d] = 0.0f;
        for (size_t row = 0; row < nk / (size_t)t->d; row++) k[row * (size_t)t->d] = 0.0f;
        float *plain = alloc_floats(nq, NAN);
        a.out = plain;
        if (dlv_attention(be, &a) != DLV_OK) fail_msg("attention: %s", dlv_last_error());
        double *pd = alloc_doubles(nq);
        for (size_t i = 0; i < nq; i++) pd[i] = (double)plain[i];
        check_close("attention: offset scores vs the same without the offset", out, pd, nq,
                    2e-6, 1e-5);
        free(plain);
        free(pd);
    }
    free(q); free(k); free(v); free(out); free(mask); free(ref);
}

static void test_attention_large_scores(void **state)
{
    fixture *fx = *state;
    static const attn_case cases[] = {
        {1, 1, 1, 1, 1, 4, 0, 0},   /* one key: p = 1 */
        {1, 5, 5, 2, 2, 4, 0, 0},
        {2, 7, 7, 4, 2, 5, 1, 1},   /* GQA, causal, left padding */
        {2, 3, 9, 4, 1, 8, 1, 0},   /* MQA, n_q < n_kv */
        {1, 33, 33, 2, 1, 16, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int spread = 0; spread < (cases[i].n_kv > 1 ? 2 : 1); spread++)
            run_attention_large(fx->be, &cases[i], spread, 1550 + 2 * i + (uint64_t)spread);
}

/* A fully masked row is zeros, not NaN, and does not disturb its
 * neighbours. */
static void test_attention_fully_masked_row(void **state)
{
    fixture *fx = *state;
    enum { T = 4, H = 2, D = 3 };
    rng r = {1600};
    float *q = rand_floats(&r, T * H * D, -1, 1), *k = rand_floats(&r, T * H * D, -1, 1);
    float *v = rand_floats(&r, T * H * D, -1, 1), *out = alloc_floats(T * H * D, NAN);
    uint8_t mask[T] = {0, 1, 1, 1}; /* causal: query 0 sees only key 0, which is masked */
    dlv_attention_args a = {.struct_size = sizeof a, .out = out, .q = q, .k = k, .v = v,
                            .key_mask = mask, .batch = 1, .n_q = T, .n_kv = T, .n_heads = H,
                            .n_kv_heads = H, .head_dim = D, .scale = 0.5f, .causal = 1};
    assert_int_equal(dlv_attention(fx->be, &a), DLV_OK);
    for (int c = 0; c < H * D; c++) assert_true(out[c] == 0.0f);
    /* Query 1 sees only key 1: its output is exactly v[1]. */
    for (int c = 0; c < H * D; c++)
        if (fabsf(out[H * D + c] - v[H * D + c]) > 1e-6f) fail_msg("query 1 != v[1]");
    free(q); free(k); free(v); free(out);
}

/* ---- embedding ---------------------------------------------------------- */

static void test_embedding(void **state)
{
    fixture *fx = *state;
    enum { V = 11, D = 13, N = 9 };
    static const int32_t ids[N] = {0, 10, 3, 3, 7, 10, 1, 0, 5};
    for (size_t d = 0; d < 3; d++) {
        rng r = {1700 + d};
        float *src = rand_floats(&r, V * D, -1.0f, 1.0f);
        unsigned char *table = malloc(V * D * 4 + 3);
        double *tw = alloc_doubles(V * D), *ref = alloc_doubles(N * D);
        assert_non_null(table);
        store_as(param_dtypes[d], src, V * D, table + 3, tw); /* misaligned on purpose */
        for (int t = 0; t < N; t++)
            for (int c = 0; c < D; c++) ref[t * D + c] = tw[ids[t] * D + c];
        float *out = alloc_floats(N * D, NAN);
        assert_int_equal(dlv_embedding(fx->be, out, table + 3, param_dtypes[d], ids, N, V, D),
                         DLV_OK);
        check_close("embedding", out, ref, N * D, 0.0, 0.0);

        /* A bad id: error naming it and its position; out untouched. */
        float *out2 = alloc_floats(N * D, 42.0f);
        int32_t bad[3] = {2, 4, V};
        assert_int_equal(dlv_embedding(fx->be, out2, table + 3, param_dtypes[d], bad, 3, V, D),
                         DLV_E_INVALID_ARG);
        assert_error_mentions("token id 11 at position 2");
        bad[2] = 0;
        bad[1] = -5;
        assert_int_equal(dlv_embedding(fx->be, out2, table + 3, param_dtypes[d], bad, 3, V, D),
                         DLV_E_INVALID_ARG);
        assert_error_mentions("token id -5 at position 1");
        for (int i = 0; i < N * D; i++) assert_true(out2[i] == 42.0f);
        free(src); free(table); free(tw); free(ref); free(out); free(out2);
    }
}

/* ---- patches: im2col + GEMM == conv2d(stride = kernel) ------------------ */

static void test_im2col_conv(void **state)
{
    fixture *fx = *state;
    /* 13 x 11 with patch 4: 3 x 2 patches, a remainder row and columns
     * dropped as conv2d does. */
    enum { C = 3, H = 13, W = 11, P = 4, HID = 5, NPY = H / P, NPX = W / P, K = C * P * P };
    rng r = {1900};
    float *pix = rand_floats(&r, C * H * W, -1.0f, 1.0f);
    float *wsrc = rand_floats(&r, HID * K, -1.0f, 1.0f); /* [HID, C, P, P] */
    for (size_t d = 0; d < 3; d++) {
        unsigned char *w = malloc(HID * K * 4);
        double *ww = alloc_doubles(HID * K);
        assert_non_null(w);
        store_as(param_dtypes[d], wsrc, HID * K, w, ww);
        float *cols = alloc_floats(NPY * NPX * K, NAN);
        assert_int_equal(dlv_im2col_patches(fx->be, cols, pix, C, H, W, P), DLV_OK);
        float *emb = alloc_floats(NPY * NPX * HID, NAN);
        dlv_matmul_args a = {.struct_size = sizeof a, .trans_b = DLV_TRANS, .m = NPY * NPX,
                             .n = HID, .k = K, .alpha = 1.0f, .a = cols,
                             .a_dtype = DLV_DTYPE_F32, .lda = K, .b = w,
                             .b_dtype = param_dtypes[d], .ldb = K, .c = emb, .ldc = HID};
        assert_int_equal(dlv_matmul(fx->be, &a), DLV_OK);
        /* Direct conv; output [HID, NPY, NPX] flattened and transposed. */
        double *ref = alloc_doubles(NPY * NPX * HID);
        for (int o = 0; o < HID; o++)
            for (int py = 0; py < NPY; py++)
                for (int px = 0; px < NPX; px++) {
                    double s = 0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < P; ky++)
                            for (int kx = 0; kx < P; kx++)
                                s += ww[((o * C + c) * P + ky) * P + kx] *
                                     (double)pix[(c * H + py * P + ky) * W + px * P + kx];
                    ref[(py * NPX + px) * HID + o] = s;
                }
        check_close("im2col + GEMM vs conv2d", emb, ref, NPY * NPX * HID, K * 1e-6, K * 1e-6);
        /* One element by hand: patch (1, 1), channel 2, ky 3, kx 1. */
        assert_true(cols[(1 * NPX + 1) * K + (2 * P + 3) * P + 1] ==
                    pix[(2 * H + 1 * P + 3) * W + 1 * P + 1]);
        free(w); free(ww); free(cols); free(emb); free(ref);
    }
    free(pix);
    free(wsrc);
}

/* ---- fused residual + norm ----------------------------------------------- */

/* add_rmsnorm / add_layernorm give, bit for bit, dlv_add followed by the
 * norm (F32 and BF16 parameters, sum in place over a), and refuse an out
 * that overlaps sum. */
static void test_add_norm_fused(void **state)
{
    fixture *fx = *state;
    enum { R = 37, C = 300, N = R * C };
    rng r = {4242};
    float *a = rand_floats(&r, N, -3.0f, 3.0f), *b = rand_floats(&r, N, -3.0f, 3.0f);
    float *wf = rand_floats(&r, 2 * C, 0.5f, 1.5f);
    uint16_t *wb = malloc(2 * C * sizeof *wb);
    assert_non_null(wb);
    for (int i = 0; i < 2 * C; i++) wb[i] = dlv_f32_to_bf16(wf[i]);
    float *sum1 = alloc_floats(N, 0), *out1 = alloc_floats(N, 0);
    float *sum2 = alloc_floats(N, 0), *out2 = alloc_floats(N, 0);
    for (int dt = 0; dt < 2; dt++) {
        const void *w = dt ? (const void *)wb : (const void *)wf;
        const void *bias = dt ? (const void *)(wb + C) : (const void *)(wf + C);
        dlv_dtype d = dt ? DLV_DTYPE_BF16 : DLV_DTYPE_F32;
        for (int ln = 0; ln < 2; ln++) {
            assert_int_equal(dlv_add(fx->be, sum1, a, b, DLV_DTYPE_F32, 0, R, C), DLV_OK);
            if (ln)
                assert_int_equal(dlv_layernorm(fx->be, out1, sum1, w, bias, d, R, C, 1e-5f),
                                 DLV_OK);
            else
                assert_int_equal(dlv_rmsnorm(fx->be, out1, sum1, w, d, R, C, 1e-6f), DLV_OK);
            /* In place: sum is a copy of a, overwritten with a + b. */
            memcpy(sum2, a, N * sizeof(float));
            if (ln)
                assert_int_equal(dlv_add_layernorm(fx->be, sum2, out2, sum2, b, w, bias, d, R, C,
                                                   1e-5f),
                                 DLV_OK);
            else
                assert_int_equal(dlv_add_rmsnorm(fx->be, sum2, out2, sum2, b, w, d, R, C, 1e-6f),
                                 DLV_OK);
            assert_memory_equal(sum1, sum2, N * sizeof(float));
            assert_memory_equal(out1, out2, N * sizeof(float));
        }
    }
    assert_int_equal(dlv_add_rmsnorm(fx->be, sum2, sum2 + 5, a, b, wf, DLV_DTYPE_F32, R, C, 1e-6f),
                     DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "add_rmsnorm"));
    assert_non_null(strstr(dlv_last_error(), "out"));
    free(a); free(b); free(wf); free(wb); free(sum1); free(out1); free(sum2); free(out2);
}

/* ---- fork --------------------------------------------------------------- */

/* A process forked after the backend computed with threads (Python's
 * multiprocessing does this) must still compute: OpenMP's threads do not
 * survive fork, and waiting on them hung the child. The child repeats a
 * pool op and a GEMM and must give the parent's bits; the parent gives it
 * 60 s. */
static void test_fork_child_computes(void **state)
{
    (void)state;
    dlv_backend *be = NULL;
    dlv_backend_config cfg = {.n_threads = 2};
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_OK);
    enum { R = 2000, C = 300, M = 128 };
    rng r = {777};
    float *x = rand_floats(&r, R * C, -1.0f, 1.0f), *o = alloc_floats(R * C, 0);
    float *a = rand_floats(&r, M * M, -1.0f, 1.0f), *c = alloc_floats(M * M, 0);
    dlv_matmul_args mm = {.struct_size = sizeof mm, .trans_b = DLV_TRANS, .m = M, .n = M, .k = M,
                          .alpha = 1.0f, .a = a, .a_dtype = DLV_DTYPE_F32, .lda = M, .b = a,
                          .b_dtype = DLV_DTYPE_F32, .ldb = M, .c = c, .ldc = M};
    assert_int_equal(dlv_layernorm(be, o, x, NULL, NULL, DLV_DTYPE_F32, R, C, 1e-5f), DLV_OK);
    assert_int_equal(dlv_matmul(be, &mm), DLV_OK);
    float *o2 = alloc_floats(R * C, 0), *c2 = alloc_floats(M * M, 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);
        mm.c = c2;
        int ok = dlv_layernorm(be, o2, x, NULL, NULL, DLV_DTYPE_F32, R, C, 1e-5f) == DLV_OK &&
                 dlv_matmul(be, &mm) == DLV_OK && !memcmp(o, o2, sizeof(float) * R * C) &&
                 !memcmp(c, c2, sizeof(float) * M * M);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    int waited = 0;
    while (waitpid(pid, &status, WNOHANG) == 0 && waited < 600) {
        usleep(100000);
        waited++;
    }
    if (waited >= 600) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the forked child hung computing");
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(x); free(o); free(a); free(c); free(o2); free(c2);
    dlv_backend_destroy(be);
}

/* ---- the block cache ---------------------------------------------------- */

/* Freed large buffers are kept (up to DLV_CPU_CACHE_SLOTS blocks and
 * DLV_CPU_CACHE_MAX_BYTES) and handed back for the same size; small ones go
 * back to malloc; destroying the backend frees them (ASan checks). */
static void test_block_cache(void **state)
{
    (void)state;
    dlv_backend *be = NULL;
    dlv_backend_config cfg = {.n_threads = 1};
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_OK);
    const dlv_cpu_block_cache *c = &((dlv_cpu_backend *)be)->cache;
    dlv_buffer a, b, small;
    assert_int_equal(dlv_buffer_alloc(be, (1u << 20) + 3, &a), DLV_OK);
    void *pa = a.ptr;
    memset(a.ptr, 1, a.size);
    dlv_buffer_free(&a);
    assert_int_equal(c->n, 1);
    assert_int_equal(c->bytes, (1u << 20) + 64);
    assert_int_equal(dlv_buffer_alloc(be, (1u << 20) + 1, &b), DLV_OK); /* same rounded size */
    assert_ptr_equal(b.ptr, pa);
    assert_int_equal(c->n, 0);
    assert_int_equal(dlv_buffer_alloc(be, 100, &small), DLV_OK);
    dlv_buffer_free(&small);
    assert_int_equal(c->n, 0);
    /* More blocks than slots: the oldest go. */
    dlv_buffer many[DLV_CPU_CACHE_SLOTS + 3];
    for (int i = 0; i < DLV_CPU_CACHE_SLOTS + 3; i++)
        assert_int_equal(dlv_buffer_alloc(be, DLV_CPU_CACHE_MIN * (size_t)(i + 1), &many[i]),
                         DLV_OK);
    for (int i = 0; i < DLV_CPU_CACHE_SLOTS + 3; i++) dlv_buffer_free(&many[i]);
    assert_int_equal(c->n, DLV_CPU_CACHE_SLOTS);
    assert_int_equal(c->size[0], DLV_CPU_CACHE_MIN * 4);
    /* The byte bound: two blocks of 300 MiB are never kept together. */
    dlv_buffer big[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(dlv_buffer_alloc(be, (size_t)300 << 20, &big[i]), DLV_OK);
    for (int i = 0; i < 2; i++) dlv_buffer_free(&big[i]);
    assert_true(c->bytes <= DLV_CPU_CACHE_MAX_BYTES);
    assert_int_equal(c->size[c->n - 1], (size_t)300 << 20);
    dlv_buffer_free(&b);
    dlv_backend_destroy(be);
}

/* ---- threads ------------------------------------------------------------ */

/* Row splitting must not change any row's arithmetic: 1 and 4 threads
 * agree bit for bit. */
static void test_threads_bitwise(void **state)
{
    (void)state;
    dlv_backend *b1 = NULL, *b4 = NULL;
    dlv_backend_config c1 = {.n_threads = 1}, c4 = {.n_threads = 4};
    assert_int_equal(dlv_backend_create("cpu", &c1, &b1), DLV_OK);
    assert_int_equal(dlv_backend_create("cpu", &c4, &b4), DLV_OK);
    assert_non_null(strstr(dlv_backend_describe(b4), "4 threads"));
    enum { R = 203, C = 129, N = R * C };
    rng r = {2100};
    float *x = rand_floats(&r, N, -3.0f, 3.0f);
    float *o1 = alloc_floats(N, 0), *o4 = alloc_floats(N, 0);
    float *w = rand_floats(&r, C, 0.5f, 1.5f);
    assert_int_equal(dlv_layernorm(b1, o1, x, w, w, DLV_DTYPE_F32, R, C, 1e-5f), DLV_OK);
    assert_int_equal(dlv_layernorm(b4, o4, x, w, w, DLV_DTYPE_F32, R, C, 1e-5f), DLV_OK);
    assert_memory_equal(o1, o4, N * sizeof(float));
    assert_int_equal(dlv_rmsnorm(b1, o1, x, w, DLV_DTYPE_F32, R, C, 1e-6f), DLV_OK);
    assert_int_equal(dlv_rmsnorm(b4, o4, x, w, DLV_DTYPE_F32, R, C, 1e-6f), DLV_OK);
    assert_memory_equal(o1, o4, N * sizeof(float));
    assert_int_equal(dlv_activation(b1, DLV_OP_ACT_GELU, o1, x, N), DLV_OK);
    assert_int_equal(dlv_activation(b4, DLV_OP_ACT_GELU, o4, x, N), DLV_OK);
    assert_memory_equal(o1, o4, N * sizeof(float));
    int32_t *pos = malloc(R * sizeof *pos);
    assert_non_null(pos);
    for (int i = 0; i < R; i++) pos[i] = i * 7;
    memcpy(o1, x, N * sizeof(float));
    memcpy(o4, x, N * sizeof(float));
    /* The same floats seen as 203 tokens x 1 head of 128 (plus an untouched
     * tail). */
    assert_int_equal(dlv_rope(b1, o1, pos, R, 1, 128, 10000.0), DLV_OK);
    assert_int_equal(dlv_rope(b4, o4, pos, R, 1, 128, 10000.0), DLV_OK);
    assert_memory_equal(o1, o4, N * sizeof(float));
    /* Attention: 2 sequences of 101 tokens, 2 heads of 32. */
    float *k = rand_floats(&r, 2 * 101 * 64, -1, 1), *v = rand_floats(&r, 2 * 101 * 64, -1, 1);
    dlv_attention_args a = {.struct_size = sizeof a, .out = o1, .q = x, .k = k, .v = v,
                            .batch = 2, .n_q = 101, .n_kv = 101, .n_heads = 2,
                            .n_kv_heads = 2, .head_dim = 32, .scale = 0.2f, .causal = 1};
    assert_int_equal(dlv_attention(b1, &a), DLV_OK);
    a.out = o4;
    assert_int_equal(dlv_attention(b4, &a), DLV_OK);
    /* The fused kernel splits whole (sequence, head, query block) items
     * between threads: no GEMM library blocking by team size. */
    assert_memory_equal(o1, o4, 2 * 101 * 64 * sizeof(float));
    free(x); free(o1); free(o4); free(w); free(pos); free(k); free(v);
    dlv_backend_destroy(b1);
    dlv_backend_destroy(b4);
}

#define OP_TESTS(prestate)                                                                  \
    {                                                                                       \
        cmocka_unit_test_prestate_setup_teardown(test_matmul_weight_dtypes, setup, teardown, \
                                                 prestate),                                 \
        cmocka_unit_test_prestate_setup_teardown(test_matmul_bf16_equals_widened, setup,    \
                                                 teardown, prestate),                       \
        cmocka_unit_test_prestate_setup_teardown(test_matmul_weight_trans_a, setup,         \
                                                 teardown, prestate),                       \
        cmocka_unit_test_prestate_setup_teardown(test_matmul_bf16_compute, setup,           \
                                                 teardown, prestate),                       \
        cmocka_unit_test_prestate_setup_teardown(test_add_norm_fused, setup, teardown,      \
                                                 prestate),                                 \
        cmocka_unit_test_prestate_setup_teardown(test_add, setup, teardown, prestate),      \
        cmocka_unit_test_prestate_setup_teardown(test_layernorm, setup, teardown, prestate), \
        cmocka_unit_test_prestate_setup_teardown(test_rmsnorm, setup, teardown, prestate),  \
        cmocka_unit_test_prestate_setup_teardown(test_l2_normalize, setup, teardown,        \
                                                 prestate),                                 \
        cmocka_unit_test_prestate_setup_teardown(test_activations, setup, teardown,         \
                                                 prestate),                                 \
        cmocka_unit_test_prestate_setup_teardown(test_rope, setup, teardown, prestate),     \
        cmocka_unit_test_prestate_setup_teardown(test_rope_table, setup, teardown, prestate), \
        cmocka_unit_test_prestate_setup_teardown(test_attention, setup, teardown, prestate), \
        cmocka_unit_test_prestate_setup_teardown(test_attention_large_scores, setup,        \
                                                 teardown, prestate),                       \
        cmocka_unit_test_prestate_setup_teardown(test_attention_fully_masked_row, setup,    \
                                                 teardown, prestate),                       \
        cmocka_unit_test_prestate_setup_teardown(test_embedding, setup, teardown, prestate), \
        cmocka_unit_test_prestate_setup_teardown(test_im2col_conv, setup, teardown,         \
                                                 prestate),                                 \
    }

int main(void)
{
    static int one = 1, four = 4;
    const struct CMUnitTest t1[] = OP_TESTS(&one);
    const struct CMUnitTest t4[] = OP_TESTS(&four);
    const struct CMUnitTest shared[] = {cmocka_unit_test(test_threads_bitwise),
                                        cmocka_unit_test(test_block_cache),
                                        cmocka_unit_test(test_fork_child_computes)};
    int failed = cmocka_run_group_tests_name("ops_cpu_1_thread", t1, NULL, NULL);
    failed += cmocka_run_group_tests_name("ops_cpu_4_threads", t4, NULL, NULL);
    failed += cmocka_run_group_tests_name("ops_cpu_threads", shared, NULL, NULL);
    return failed;
}
