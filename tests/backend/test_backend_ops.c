/* Every backend op on every backend that can be created here, against a
 * plain double-precision reference. The CPU group always runs; the CUDA
 * group runs only where dlv_backend_create("cuda") succeeds and otherwise
 * prints a skip line (as on a machine without a GPU).
 *
 * Matmul tolerance: |got - ref| <= max(1, k) * (1e-5 + 1e-5 * |ref|). F32
 * accumulation error grows with the length k of each dot product, hence the
 * factor; an operand or transpose mix-up is off by O(1), far outside it. */
#include <limits.h>
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

#define PAD_SENTINEL 12345.0f

typedef struct fixture {
    const char *name;
    dlv_backend *be;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    fx->name = *state ? (const char *)*state : "cpu";
    if (dlv_backend_create(fx->name, NULL, &fx->be) != DLV_OK) {
        print_error("cannot create backend '%s': %s\n", fx->name, dlv_last_error());
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

static void assert_error_mentions(const char *needle)
{
    const char *msg = dlv_last_error();
    assert_non_null(msg);
    if (!strstr(msg, needle)) fail_msg("last error '%s' does not mention '%s'", msg, needle);
}

/* Deterministic values in [-1, 1). */
static float next_val(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / (float)(1u << 23) - 1.0f;
}

/* ---- buffers --------------------------------------------------------- */

static void test_roundtrip_offsets(void **state)
{
    fixture *fx = *state;
    enum { N = 1000 };
    unsigned char src[N], got[N];
    for (int i = 0; i < N; i++) src[i] = (unsigned char)(i * 7 + 3);

    dlv_buffer buf = {0};
    assert_int_equal(dlv_buffer_alloc(fx->be, N, &buf), DLV_OK);
    assert_non_null(dlv_buffer_ptr(&buf));
    assert_int_equal(buf.size, N);
    assert_ptr_equal(buf.owner, fx->be);

    assert_int_equal(dlv_buffer_zero(&buf, 0, N), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&buf, 13, src, 100), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&buf, N - 1, src + 500, 1), DLV_OK); /* last byte */
    assert_int_equal(dlv_backend_synchronize(fx->be), DLV_OK);
    assert_int_equal(dlv_buffer_download(got, &buf, 0, N), DLV_OK);
    for (int i = 0; i < N; i++) {
        unsigned char want = i >= 13 && i < 113 ? src[i - 13] : (i == N - 1 ? src[500] : 0);
        if (got[i] != want) fail_msg("byte %d: got %u, want %u", i, got[i], want);
    }

    /* Partial download at an offset, and a partial zero in the middle of
     * the uploaded range. */
    unsigned char part[50];
    assert_int_equal(dlv_buffer_download(part, &buf, 40, sizeof part), DLV_OK);
    assert_memory_equal(part, src + 27, sizeof part);
    assert_int_equal(dlv_buffer_zero(&buf, 20, 10), DLV_OK);
    assert_int_equal(dlv_buffer_download(got, &buf, 13, 100), DLV_OK);
    for (int i = 0; i < 100; i++) {
        unsigned char want = i >= 7 && i < 17 ? 0 : src[i];
        if (got[i] != want) fail_msg("after zero, byte %d: got %u, want %u", 13 + i, got[i], want);
    }

    /* A whole-buffer round trip of a different pattern. */
    for (int i = 0; i < N; i++) src[i] = (unsigned char)(255 - i % 251);
    assert_int_equal(dlv_buffer_upload(&buf, 0, src, N), DLV_OK);
    memset(got, 0, sizeof got);
    assert_int_equal(dlv_buffer_download(got, &buf, 0, N), DLV_OK);
    assert_memory_equal(got, src, N);

    dlv_buffer_free(&buf);
    assert_null(buf.ptr);
    assert_null(buf.owner);
    assert_int_equal(buf.size, 0);
    dlv_buffer_free(&buf); /* idempotent */
}

static void test_zero_size_buffer(void **state)
{
    fixture *fx = *state;
    dlv_buffer a = {0}, b = {0};
    assert_int_equal(dlv_buffer_alloc(fx->be, 0, &a), DLV_OK);
    assert_int_equal(dlv_buffer_alloc(fx->be, 0, &b), DLV_OK);
    assert_non_null(a.ptr);
    assert_true(a.ptr != b.ptr);
    assert_int_equal(a.size, 0);
    unsigned char byte = 1;
    assert_int_equal(dlv_buffer_upload(&a, 0, &byte, 0), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&a, 0, NULL, 0), DLV_OK);
    assert_int_equal(dlv_buffer_download(NULL, &a, 0, 0), DLV_OK);
    assert_int_equal(dlv_buffer_zero(&a, 0, 0), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&a, 0, &byte, 1), DLV_E_INVALID_ARG);
    assert_error_mentions("0-byte buffer");
    dlv_buffer_free(&a);
    dlv_buffer_free(&b);
}

static void test_buffer_errors(void **state)
{
    fixture *fx = *state;
    unsigned char host[64] = {0};
    dlv_buffer buf = {0};
    assert_int_equal(dlv_buffer_alloc(fx->be, 32, &buf), DLV_OK);

    /* Out of range: range end past the size, offset past the size. */
    assert_int_equal(dlv_buffer_upload(&buf, 1, host, 32), DLV_E_INVALID_ARG);
    assert_error_mentions("dlv_buffer_upload");
    assert_error_mentions("32-byte buffer");
    assert_int_equal(dlv_buffer_download(host, &buf, 33, 0), DLV_E_INVALID_ARG);
    assert_error_mentions("offset 33");
    assert_int_equal(dlv_buffer_download(host, &buf, 30, 3), DLV_E_INVALID_ARG);
    assert_error_mentions("dlv_buffer_download");
    assert_int_equal(dlv_buffer_zero(&buf, 16, 17), DLV_E_INVALID_ARG);
    assert_error_mentions("dlv_buffer_zero");
    /* offset + size wraps around SIZE_MAX. */
    assert_int_equal(dlv_buffer_upload(&buf, 8, host, SIZE_MAX - 4), DLV_E_INVALID_ARG);
    assert_error_mentions("overflows");
    assert_int_equal(dlv_buffer_download(host, &buf, SIZE_MAX, 2), DLV_E_INVALID_ARG);
    assert_error_mentions("past the end");
    /* Exactly at the end is fine. */
    assert_int_equal(dlv_buffer_upload(&buf, 32, host, 0), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&buf, 0, host, 32), DLV_OK);

    /* NULLs and unallocated buffers. */
    assert_int_equal(dlv_buffer_upload(&buf, 0, NULL, 4), DLV_E_INVALID_ARG);
    assert_error_mentions("src is NULL");
    assert_int_equal(dlv_buffer_download(NULL, &buf, 0, 4), DLV_E_INVALID_ARG);
    assert_error_mentions("dst is NULL");
    assert_int_equal(dlv_buffer_upload(NULL, 0, host, 4), DLV_E_INVALID_ARG);
    assert_error_mentions("dst is NULL");
    assert_int_equal(dlv_buffer_download(host, NULL, 0, 4), DLV_E_INVALID_ARG);
    assert_error_mentions("src is NULL");
    dlv_buffer none = {0};
    assert_int_equal(dlv_buffer_upload(&none, 0, host, 0), DLV_E_INVALID_ARG);
    assert_error_mentions("not an allocated buffer");
    assert_int_equal(dlv_buffer_zero(NULL, 0, 0), DLV_E_INVALID_ARG);
    dlv_buffer out = {.ptr = host, .size = 5, .owner = fx->be};
    assert_int_equal(dlv_buffer_alloc(NULL, 8, &out), DLV_E_INVALID_ARG);
    assert_error_mentions("backend is NULL");
    assert_null(out.ptr); /* zeroed on failure */
    assert_int_equal(dlv_buffer_alloc(fx->be, 8, NULL), DLV_E_INVALID_ARG);

    /* Freeing NULL, a zero-initialised buffer, and twice, is harmless. */
    dlv_buffer_free(NULL);
    dlv_buffer_free(&none);
    dlv_buffer_free(&buf);
    dlv_buffer_free(&buf);
    assert_int_equal(dlv_buffer_upload(&buf, 0, host, 1), DLV_E_INVALID_ARG);
}

/* ---- matmul ---------------------------------------------------------- */

typedef struct mm_case {
    int64_t m, n, k;
    dlv_transpose ta, tb;
    int64_t pad; /* added to every leading dimension */
    float alpha, beta;
} mm_case;

/* Host copies of a row-major matrix stored rows x cols with leading
 * dimension ld; padding holds the sentinel. */
static float *make_matrix(int64_t rows, int64_t cols, int64_t ld, uint32_t *seed)
{
    size_t n = (size_t)(rows * ld);
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < ld; c++) p[r * ld + c] = c < cols ? next_val(seed) : PAD_SENTINEL;
    return p;
}

static dlv_buffer to_device(dlv_backend *be, const float *host, size_t n_floats)
{
    dlv_buffer b = {0};
    assert_int_equal(dlv_buffer_alloc(be, n_floats * sizeof(float), &b), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&b, 0, host, n_floats * sizeof(float)), DLV_OK);
    return b;
}

static void run_case(dlv_backend *be, const mm_case *t, int nan_c)
{
    uint32_t seed = (uint32_t)(t->m * 7919 + t->n * 104729 + t->k * 31 + t->ta * 2 + t->tb + 1);
    int64_t a_rows = t->ta ? t->k : t->m, a_cols = t->ta ? t->m : t->k;
    int64_t b_rows = t->tb ? t->n : t->k, b_cols = t->tb ? t->k : t->n;
    int64_t lda = (a_cols > 1 ? a_cols : 1) + t->pad;
    int64_t ldb = (b_cols > 1 ? b_cols : 1) + t->pad;
    int64_t ldc = (t->n > 1 ? t->n : 1) + t->pad;
    float *a = make_matrix(a_rows, a_cols, lda, &seed);
    float *b = make_matrix(b_rows, b_cols, ldb, &seed);
    float *c = make_matrix(t->m, t->n, ldc, &seed);
    size_t c_floats = (size_t)(t->m * ldc);
    float *got = malloc((c_floats ? c_floats : 1) * sizeof *got);
    assert_non_null(got);
    if (nan_c)
        for (int64_t i = 0; i < t->m; i++)
            for (int64_t j = 0; j < t->n; j++) c[i * ldc + j] = NAN;

    dlv_buffer da = to_device(be, a, (size_t)(a_rows * lda));
    dlv_buffer db = to_device(be, b, (size_t)(b_rows * ldb));
    dlv_buffer dc = to_device(be, c, c_floats);
    dlv_matmul_args args = {
        .struct_size = sizeof args, .trans_a = t->ta, .trans_b = t->tb,
        .m = t->m, .n = t->n, .k = t->k, .alpha = t->alpha, .beta = t->beta,
        .a = da.ptr, .a_dtype = DLV_DTYPE_F32, .lda = lda,
        .b = db.ptr, .b_dtype = DLV_DTYPE_F32, .ldb = ldb,
        .c = dc.ptr, .ldc = ldc,
    };
    dlv_status st = dlv_matmul(be, &args);
    if (st != DLV_OK) fail_msg("dlv_matmul: %s", dlv_last_error());
    assert_int_equal(dlv_backend_synchronize(be), DLV_OK);
    assert_int_equal(dlv_buffer_download(got, &dc, 0, c_floats * sizeof(float)), DLV_OK);

    for (int64_t i = 0; i < t->m; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            float g = got[i * ldc + j];
            if (j >= t->n) { /* the ldc padding is never written */
                if (g != PAD_SENTINEL)
                    fail_msg("m=%lld n=%lld k=%lld ta=%d tb=%d pad=%lld: C padding [%lld][%lld] "
                             "overwritten with %g",
                             (long long)t->m, (long long)t->n, (long long)t->k, t->ta, t->tb,
                             (long long)t->pad, (long long)i, (long long)j, (double)g);
                continue;
            }
            double ref = 0.0;
            for (int64_t p = 0; p < t->k; p++) {
                double av = (double)(t->ta ? a[p * lda + i] : a[i * lda + p]);
                double bv = (double)(t->tb ? b[j * ldb + p] : b[p * ldb + j]);
                ref += av * bv;
            }
            ref *= (double)t->alpha;
            if (t->beta != 0.0f) ref += (double)t->beta * (double)c[i * ldc + j];
            double tol = (double)(t->k > 1 ? t->k : 1) * (1e-5 + 1e-5 * fabs(ref));
            if (!(fabs((double)g - ref) <= tol))
                fail_msg("m=%lld n=%lld k=%lld ta=%d tb=%d pad=%lld alpha=%g beta=%g nan_c=%d: "
                         "C[%lld][%lld] = %.9g, reference %.9g (tol %.3g)",
                         (long long)t->m, (long long)t->n, (long long)t->k, t->ta, t->tb,
                         (long long)t->pad, (double)t->alpha, (double)t->beta, nan_c,
                         (long long)i, (long long)j, (double)g, ref, tol);
        }
    }
    dlv_buffer_free(&da);
    dlv_buffer_free(&db);
    dlv_buffer_free(&dc);
    free(a);
    free(b);
    free(c);
    free(got);
}

static void test_matmul_reference(void **state)
{
    fixture *fx = *state;
    static const int64_t shapes[][3] = {
        {1, 1, 1},   {1, 7, 3},   {5, 1, 4},   {3, 4, 1},     {17, 13, 29},
        {64, 33, 70}, {2, 3, 0},  {0, 3, 4},   {3, 0, 4},     {128, 96, 257},
        {1, 1, 300},
    };
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, -1.5f}, {-2.0f, 1.0f}};
    int n_cases = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int64_t pad = 0; pad <= 3; pad += 3)
                    for (size_t x = 0; x < sizeof ab / sizeof ab[0]; x++) {
                        mm_case t = {shapes[s][0], shapes[s][1], shapes[s][2],
                                     (dlv_transpose)ta, (dlv_transpose)tb, pad,
                                     ab[x][0], ab[x][1]};
                        run_case(fx->be, &t, 0);
                        n_cases++;
                    }
    print_message("%s: %d matmul cases match the reference\n", fx->name, n_cases);
}

/* beta == 0 must not read C: NaN there (an uninitialised output) vanishes,
 * on the BLAS path and on the k == 0 path. */
static void test_matmul_beta_zero_ignores_c(void **state)
{
    fixture *fx = *state;
    mm_case t1 = {9, 11, 5, DLV_NO_TRANS, DLV_TRANS, 2, 1.0f, 0.0f};
    run_case(fx->be, &t1, 1);
    mm_case t2 = {4, 6, 0, DLV_TRANS, DLV_NO_TRANS, 1, 1.0f, 0.0f};
    run_case(fx->be, &t2, 1);
}

/* With k == 0, A and B may be NULL: nothing is read from them. */
static void test_matmul_k0_null_operands(void **state)
{
    fixture *fx = *state;
    float host[6] = {1, 2, 3, 4, 5, 6};
    dlv_buffer dc = to_device(fx->be, host, 6);
    dlv_matmul_args args = {
        .struct_size = sizeof args, .m = 2, .n = 3, .k = 0, .alpha = 1.0f, .beta = -2.0f,
        .a = NULL, .a_dtype = DLV_DTYPE_F32, .lda = 1,
        .b = NULL, .b_dtype = DLV_DTYPE_F32, .ldb = 3,
        .c = dc.ptr, .ldc = 3,
    };
    assert_int_equal(dlv_matmul(fx->be, &args), DLV_OK);
    float got[6];
    assert_int_equal(dlv_buffer_download(got, &dc, 0, sizeof got), DLV_OK);
    for (int i = 0; i < 6; i++) assert_true(got[i] == -2.0f * host[i]);
    dlv_buffer_free(&dc);
}

static void test_matmul_errors(void **state)
{
    fixture *fx = *state;
    float host[64] = {0};
    dlv_buffer d = to_device(fx->be, host, 64);
    const float *p = d.ptr;
    /* A valid 4x5 . 5x6 product; each check breaks one field. */
    const dlv_matmul_args ok = {
        .struct_size = sizeof ok, .m = 4, .n = 6, .k = 5, .alpha = 1.0f, .beta = 0.0f,
        .a = p, .a_dtype = DLV_DTYPE_F32, .lda = 5,
        .b = p, .b_dtype = DLV_DTYPE_F32, .ldb = 6,
        .c = d.ptr, .ldc = 6,
    };
    assert_int_equal(dlv_matmul(fx->be, &ok), DLV_OK);
    dlv_matmul_args a;

    a = ok; a.struct_size = 0;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("struct_size 0");
    a = ok; a.struct_size = sizeof a + 8;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("struct_size");

    a = ok; a.lda = 4;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("lda = 4");
    a = ok; a.trans_a = DLV_TRANS; /* stored 5 x 4: lda >= 4, so 5 is fine */
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_OK);
    a.lda = 3;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("lda = 3");
    a = ok; a.ldb = 5;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("ldb = 5");
    a = ok; a.trans_b = DLV_TRANS; a.ldb = 4; /* stored 6 x 5: ldb >= 5 */
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("ldb = 4");
    a = ok; a.ldc = 5;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("ldc = 5");
    a = ok; a.m = 0; /* an empty product is fine... */
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_OK);
    a = ok; a.k = 0; a.lda = 0; /* ...but ld >= max(1, cols) holds even then */
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("lda = 0");

    a = ok; a.m = -1;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("m = -1");
    a = ok; a.k = -3;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("k = -3");
    a = ok; a.n = (int64_t)INT_MAX + 1; a.ldb = a.n; a.ldc = a.n;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_UNSUPPORTED);
    assert_error_mentions("INT_MAX");

    a = ok; a.a_dtype = DLV_DTYPE_BF16;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_UNSUPPORTED);
    assert_error_mentions("a_dtype BF16");
    a = ok; a.b_dtype = DLV_DTYPE_I8; /* weights may be F32, BF16 or F16 */
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_UNSUPPORTED);
    assert_error_mentions("b_dtype I8");
    a = ok; a.b_dtype = (dlv_dtype)99;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("b_dtype 99");
    a = ok; a.trans_a = (dlv_transpose)7;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("trans_a 7");

    a = ok; a.a = NULL;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("A is NULL");
    a = ok; a.c = NULL;
    assert_int_equal(dlv_matmul(fx->be, &a), DLV_E_INVALID_ARG);
    assert_error_mentions("C is NULL");
    assert_int_equal(dlv_matmul(fx->be, NULL), DLV_E_INVALID_ARG);
    assert_error_mentions("args is NULL");
    assert_int_equal(dlv_matmul(NULL, &ok), DLV_E_INVALID_ARG);
    assert_error_mentions("backend is NULL");
    dlv_buffer_free(&d);
}

#define OPS_TESTS(prestate)                                                         \
    {                                                                               \
        cmocka_unit_test_prestate_setup_teardown(test_roundtrip_offsets, setup,     \
                                                 teardown, prestate),               \
        cmocka_unit_test_prestate_setup_teardown(test_zero_size_buffer, setup,      \
                                                 teardown, prestate),               \
        cmocka_unit_test_prestate_setup_teardown(test_buffer_errors, setup,         \
                                                 teardown, prestate),               \
        cmocka_unit_test_prestate_setup_teardown(test_matmul_reference, setup,      \
                                                 teardown, prestate),               \
        cmocka_unit_test_prestate_setup_teardown(test_matmul_beta_zero_ignores_c,   \
                                                 setup, teardown, prestate),        \
        cmocka_unit_test_prestate_setup_teardown(test_matmul_k0_null_operands,      \
                                                 setup, teardown, prestate),        \
        cmocka_unit_test_prestate_setup_teardown(test_matmul_errors, setup,         \
                                                 teardown, prestate),               \
    }

int main(void)
{
    static char cpu_name[] = "cpu", cuda_name[] = "cuda";
    const struct CMUnitTest cpu_tests[] = OPS_TESTS(cpu_name);
    int failed = cmocka_run_group_tests_name("backend_ops_cpu", cpu_tests, NULL, NULL);

    dlv_backend *probe = NULL;
    if (dlv_backend_create("cuda", NULL, &probe) != DLV_OK) {
        printf("\n[  SKIPPED ] backend_ops_cuda: %s\n", dlv_last_error());
        fflush(stdout);
        return failed;
    }
    dlv_backend_destroy(probe);
    const struct CMUnitTest cuda_tests[] = OPS_TESTS(cuda_name);
    failed += cmocka_run_group_tests_name("backend_ops_cuda", cuda_tests, NULL, NULL);
    return failed;
}
