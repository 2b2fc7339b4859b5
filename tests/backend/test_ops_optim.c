/* The optimizer ops on the CPU backend against scalar references written
 * here from PyTorch's formulas (torch.optim.AdamW single-tensor, SGD without
 * momentum): bit for bit, since both compute the same f32 expressions in
 * the same order; 1 and 4 threads agree bit for bit; sum_squares against a
 * double sum within 1e-12 relative (another summation order). Argument errors name the op. The
 * end-to-end check against torch.optim itself is
 * tests/train/test_optim_golden.c. */
#include "ops_test_util.h"

static dlv_backend *cpu(int threads)
{
    dlv_backend_config cfg = {.device = 0, .n_threads = threads};
    dlv_backend *be = NULL;
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_OK);
    return be;
}

static float *randoms(rng *r, int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = rng_uniform(r, lo, hi);
    return p;
}

static float *copy_of(const float *p, int64_t n)
{
    float *q = malloc((size_t)n * sizeof *q);
    assert_non_null(q);
    memcpy(q, p, (size_t)n * sizeof *q);
    return q;
}

static void test_adamw(void **state)
{
    (void)state;
    const int64_t n = 50021; /* several pool chunks and an odd tail */
    rng r = {0x1234};
    float *p0 = randoms(&r, n, -1, 1), *g = randoms(&r, n, -0.1f, 0.1f);
    float *m0 = randoms(&r, n, -0.01f, 0.01f), *v0 = randoms(&r, n, 0, 1e-4f);
    const double lr = 1e-3, wd = 0.1, b1 = 0.9, b2 = 0.999;
    const double t = 3;
    const float step_size = (float)(lr / (1.0 - pow(b1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    const float decay_mul = (float)(1.0 - lr * wd), scale = 0.5f, eps = 1e-8f;
    /* The reference. */
    float *pr = copy_of(p0, n), *mr = copy_of(m0, n), *vr = copy_of(v0, n);
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * scale;
        pr[i] *= decay_mul;
        mr[i] = (float)b1 * mr[i] + (1.0f - (float)b1) * gi;
        vr[i] = (float)b2 * vr[i] + (1.0f - (float)b2) * gi * gi;
        float denom = sqrtf(vr[i]) / bc2_sqrt + eps;
        pr[i] -= step_size * (mr[i] / denom);
    }
    for (int threads = 1; threads <= 4; threads += 3) {
        dlv_backend *be = cpu(threads);
        float *p = copy_of(p0, n), *m = copy_of(m0, n), *v = copy_of(v0, n);
        dlv_adamw_args a = {sizeof a, p, m, v, g, n, step_size, (float)b1, (float)b2, eps,
                            bc2_sqrt, decay_mul, scale};
        assert_int_equal(dlv_adamw_update(be, &a), DLV_OK);
        assert_memory_equal(p, pr, (size_t)n * sizeof *p);
        assert_memory_equal(m, mr, (size_t)n * sizeof *m);
        assert_memory_equal(v, vr, (size_t)n * sizeof *v);
        /* Errors: overlap, a bad scalar, the struct size. */
        a.grads = p;
        assert_int_equal(dlv_adamw_update(be, &a), DLV_E_INVALID_ARG);
        assert_non_null(strstr(dlv_last_error(), "adamw_update"));
        a.grads = g;
        a.eps = 0.0f;
        assert_int_equal(dlv_adamw_update(be, &a), DLV_E_INVALID_ARG);
        assert_non_null(strstr(dlv_last_error(), "eps"));
        a.eps = eps;
        a.struct_size = 8;
        assert_int_equal(dlv_adamw_update(be, &a), DLV_E_INVALID_ARG);
        free(p);
        free(m);
        free(v);
        dlv_backend_destroy(be);
    }
    free(p0);
    free(g);
    free(m0);
    free(v0);
    free(pr);
    free(mr);
    free(vr);
}

static void test_sgd(void **state)
{
    (void)state;
    const int64_t n = 40000;
    rng r = {0x777};
    float *p0 = randoms(&r, n, -1, 1), *g = randoms(&r, n, -1, 1);
    for (int decay = 0; decay < 2; decay++) {
        const float lr = 0.25f, wd = decay ? 0.05f : 0.0f, scale = 0.3f;
        float *pr = copy_of(p0, n);
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] * scale;
            if (decay) gi += wd * pr[i];
            pr[i] -= lr * gi;
        }
        for (int threads = 1; threads <= 4; threads += 3) {
            dlv_backend *be = cpu(threads);
            float *p = copy_of(p0, n);
            assert_int_equal(dlv_sgd_update(be, p, g, n, lr, wd, scale), DLV_OK);
            assert_memory_equal(p, pr, (size_t)n * sizeof *p);
            assert_int_equal(dlv_sgd_update(be, p, p, n, lr, wd, scale), DLV_E_INVALID_ARG);
            assert_int_equal(dlv_sgd_update(be, p, g, n, NAN, wd, scale), DLV_E_INVALID_ARG);
            free(p);
            dlv_backend_destroy(be);
        }
        free(pr);
    }
    free(p0);
    free(g);
}

static void test_sum_squares(void **state)
{
    (void)state;
    rng r = {0x99};
    const int64_t sizes[] = {0, 1, 4095, 4096, 4097, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int64_t n = sizes[s];
        float *x = randoms(&r, n > 0 ? n : 1, -3, 3);
        double want = 0;
        for (int64_t i = 0; i < n; i++) want += (double)x[i] * (double)x[i];
        double got1 = -1, got4 = -2;
        dlv_backend *b1 = cpu(1), *b4 = cpu(4);
        assert_int_equal(dlv_sum_squares(b1, &got1, x, n), DLV_OK);
        assert_int_equal(dlv_sum_squares(b4, &got4, x, n), DLV_OK);
        assert_memory_equal(&got1, &got4, sizeof got1);
        assert_true(fabs(got1 - want) <= 1e-12 * want);
        assert_int_equal(dlv_sum_squares(b1, NULL, x, n), DLV_E_INVALID_ARG);
        dlv_backend_destroy(b1);
        dlv_backend_destroy(b4);
        free(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_sum_squares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
