/* The backend registry: names, build flags, the ops-table contract, and the
 * errors for unknown, unbuilt or device-less backends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "core/error.h"
#include "dlv_build_config.h"

static void assert_error_mentions(const char *needle)
{
    const char *msg = dlv_last_error();
    assert_non_null(msg);
    if (!strstr(msg, needle)) fail_msg("last error '%s' does not mention '%s'", msg, needle);
}

static void test_cpu_create(void **state)
{
    (void)state;
    dlv_backend *be = NULL;
    assert_int_equal(dlv_backend_create("cpu", NULL, &be), DLV_OK);
    assert_non_null(be);
    assert_string_equal(be->ops->name, "cpu");
    assert_int_equal(be->ops->version, DLV_BACKEND_OPS_VERSION);
    assert_int_equal(be->ops->size, sizeof(dlv_backend_ops));
    assert_int_equal(be->device, 0);
    const char *d = dlv_backend_describe(be);
    assert_non_null(strstr(d, "cpu ("));
    /* The GEMM provider this build chose (meson option gemm). */
#ifdef DLV_HAVE_ONEDNN
    assert_non_null(strstr(d, "oneDNN"));
#else
    assert_non_null(strstr(d, "OpenBLAS"));
#endif
    assert_non_null(strstr(d, "thread"));
    assert_non_null(strstr(d, "f32 compute"));
    dlv_backend_destroy(be);

    dlv_backend_config cfg = {.device = 0, .n_threads = 3};
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_OK);
    assert_non_null(strstr(dlv_backend_describe(be), ", 3 threads, f32 compute)"));
    dlv_backend_destroy(be);

    /* bf16 compute is a CPU choice; another dtype is refused by name. */
    cfg.compute = DLV_DTYPE_BF16;
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_OK);
    assert_non_null(strstr(dlv_backend_describe(be), "bf16 compute"));
    dlv_backend_destroy(be);
    cfg.compute = DLV_DTYPE_F16;
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_error_message(), "F16"));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    dlv_backend *be = (dlv_backend *)&be; /* must be reset to NULL */
    assert_int_equal(dlv_backend_create(NULL, NULL, &be), DLV_E_INVALID_ARG);
    assert_null(be);
    assert_error_mentions("name");
    assert_int_equal(dlv_backend_create("cpu", NULL, NULL), DLV_E_INVALID_ARG);
    assert_error_mentions("out");

    dlv_backend_config cfg = {.device = 0, .n_threads = -2};
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_E_INVALID_ARG);
    assert_null(be);
    assert_error_mentions("-2");

    dlv_backend_destroy(NULL); /* NULL-safe */
    assert_string_equal(dlv_backend_describe(NULL), "");
    assert_int_equal(dlv_backend_synchronize(NULL), DLV_E_INVALID_ARG);
}

static void test_unknown_name(void **state)
{
    (void)state;
    dlv_backend *be = NULL;
    assert_int_equal(dlv_backend_create("tpu9000", NULL, &be), DLV_E_BACKEND);
    assert_null(be);
    assert_error_mentions("'tpu9000'");
    assert_error_mentions("unknown backend");
    /* Names are exact: no case folding, no prefixes. */
    assert_int_equal(dlv_backend_create("CPU", NULL, &be), DLV_E_BACKEND);
    assert_int_equal(dlv_backend_create("", NULL, &be), DLV_E_BACKEND);
    assert_int_equal(dlv_backend_create("cpux", NULL, &be), DLV_E_BACKEND);
    assert_null(be);
}

/* Where CUDA is not built or has no device, asking for it fails cleanly;
 * where it works, a bad ordinal still fails cleanly. */
static void test_cuda(void **state)
{
    (void)state;
    dlv_backend *be = NULL;
    dlv_status st = dlv_backend_create("cuda", NULL, &be);
    if (st == DLV_OK) {
        assert_string_equal(be->ops->name, "cuda");
        assert_int_equal(be->ops->version, DLV_BACKEND_OPS_VERSION);
        assert_int_equal(be->ops->size, sizeof(dlv_backend_ops));
        print_message("cuda: %s\n", dlv_backend_describe(be));
        dlv_backend_destroy(be);
        dlv_backend_config cfg = {.device = 1 << 20};
        be = NULL;
        assert_int_equal(dlv_backend_create("cuda", &cfg, &be), DLV_E_BACKEND);
        assert_null(be);
        assert_error_mentions("out of range");
        return;
    }
    assert_int_equal(st, DLV_E_BACKEND);
    assert_null(be);
    assert_error_mentions("backend 'cuda'");
    assert_error_mentions("CUDA");
    const char *msg = dlv_last_error();
    print_message("cuda unavailable here: %s\n", msg);
    if (dlv_backend_built("cuda"))
        assert_error_mentions("no CUDA device");
    else
        assert_error_mentions("no CUDA support");
    /* A second attempt behaves the same (no stale state). */
    assert_int_equal(dlv_backend_create("cuda", NULL, &be), DLV_E_BACKEND);
    assert_null(be);
}

static void test_auto(void **state)
{
    (void)state;
    dlv_backend *probe = NULL;
    int have_gpu = dlv_backend_create("cuda", NULL, &probe) == DLV_OK;
    dlv_backend_destroy(probe);

    dlv_backend *be = NULL;
    assert_int_equal(dlv_backend_create("auto", NULL, &be), DLV_OK);
    assert_non_null(be);
    assert_string_equal(be->ops->name, have_gpu ? "cuda" : "cpu");
    dlv_backend_destroy(be);
}

static void test_built_and_list(void **state)
{
    (void)state;
    assert_int_equal(dlv_backend_built("cpu"), 1);
#ifdef DLV_HAVE_SIM
    assert_int_equal(dlv_backend_built("sim"), 1);
#define SIM_LIST ",sim"
#else
    assert_int_equal(dlv_backend_built("sim"), 0);
#define SIM_LIST ""
#endif
#ifdef DLV_HAVE_CUDA
    assert_int_equal(dlv_backend_built("cuda"), 1);
    assert_string_equal(dlv_backend_list(), "cpu" SIM_LIST ",cuda");
#else
    assert_int_equal(dlv_backend_built("cuda"), 0);
    assert_string_equal(dlv_backend_list(), "cpu" SIM_LIST);
#endif
    assert_string_equal(dlv_backend_list(), dlv_build_features());
    assert_int_equal(dlv_backend_built("auto"), 0);
    assert_int_equal(dlv_backend_built("tpu"), 0);
    assert_int_equal(dlv_backend_built(NULL), 0);
    assert_non_null(strstr(dlv_backend_list(), "cpu"));
    /* Names option parsing accepts: every backend the library knows, built
     * here or not, and "auto". */
    static const char *const known[] = {"cpu", "sim", "cuda", "auto"};
    for (size_t i = 0; i < 4; i++) assert_int_equal(dlv_backend_name_known(known[i]), 1);
    assert_int_equal(dlv_backend_name_known("tpu"), 0);
    assert_int_equal(dlv_backend_name_known("CPU"), 0);
    assert_int_equal(dlv_backend_name_known(""), 0);
    assert_int_equal(dlv_backend_name_known(NULL), 0);
}

/* DLV_BACKEND_HAS: a table built with an older, shorter layout must read as
 * lacking the slots past its size, without touching them. */
static dlv_status fake_sync(dlv_backend *be)
{
    (void)be;
    return DLV_OK;
}

static void test_has_macro(void **state)
{
    (void)state;
    dlv_backend_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.version = 1;
    ops.size = (uint32_t)sizeof ops;
    ops.synchronize = fake_sync;
    assert_true(DLV_BACKEND_HAS(&ops, synchronize));
    assert_false(DLV_BACKEND_HAS(&ops, matmul)); /* present in size, but NULL */
    ops.size = (uint32_t)offsetof(dlv_backend_ops, synchronize);
    assert_false(DLV_BACKEND_HAS(&ops, synchronize)); /* past the size */
    ops.size = (uint32_t)(offsetof(dlv_backend_ops, synchronize) + sizeof ops.synchronize);
    assert_true(DLV_BACKEND_HAS(&ops, synchronize));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_create),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_unknown_name),
        cmocka_unit_test(test_cuda),
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_built_and_list),
        cmocka_unit_test(test_has_macro),
    };
    return cmocka_run_group_tests_name("backend_registry", tests, NULL, NULL);
}
