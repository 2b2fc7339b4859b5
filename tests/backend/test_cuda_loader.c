/* The cuda backend's module, loaded on demand (lib/backend/cuda_loader.c),
 * through the public API of the shared library:
 *
 *   test_cuda_loader MODEL_DIR LIBDISCLVLM_SO WRONG_VERSION_SO NO_DEVICE_SO
 *                    CREATE_FAILS_SO [REAL_MODULE_SO]
 *
 *  - a model loaded and run on the cpu maps no CUDA library (the library
 *    does not link them: a CPU-only process pays nothing for CUDA);
 *  - "cuda" with nothing in DLV_CUDA_MODULE: the module beside the library
 *    when the build has one, which on a machine without a GPU fails with
 *    DLV_E_BACKEND "no CUDA device" (with a GPU the load succeeds), else
 *    DLV_E_BACKEND saying the module cannot be loaded; "auto" then runs on
 *    the cpu;
 *  - DLV_CUDA_MODULE naming a missing file, a library that is not a module,
 *    a module of another build: DLV_E_BACKEND naming the file and the cause;
 *  - the fake modules (fake_cuda_module.c): a module's message reaches
 *    dlv_last_error; "auto" falls back to the cpu only when the module
 *    reports no device.
 * No GPU is needed: the fakes stand in for the driver's answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disclvlm.h"

static const char *model_dir, *lib_so, *wrong_so, *nodev_so, *fails_so, *real_so;

/* 1 if a file whose name contains needle is mapped into this process. */
static int mapped(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* dlv_model_load on backend; *msg receives dlv_last_error on failure. */
static dlv_status load_on(const char *backend, dlv_model **m, char *msg, size_t cap)
{
    dlv_model_options *o = NULL;
    assert_int_equal(dlv_model_options_new(&o), DLV_OK);
    assert_int_equal(dlv_model_options_set_backend(o, backend), DLV_OK);
    dlv_status st = dlv_model_load(model_dir, o, m);
    snprintf(msg, cap, "%s", st ? dlv_last_error() : "");
    dlv_model_options_free(o);
    return st;
}

static void test_cpu_maps_no_cuda(void **state)
{
    (void)state;
    unsetenv("DLV_CUDA_MODULE");
    dlv_model *m = NULL;
    dlv_session *s = NULL;
    char msg[1024];
    assert_int_equal(load_on("cpu", &m, msg, sizeof msg), DLV_OK);
    assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);
    const char *texts[1] = {"a red square"};
    size_t dim = 0;
    assert_int_equal(dlv_model_embed_dim(m, &dim), DLV_OK);
    float *e = calloc(dim, sizeof *e);
    assert_non_null(e);
    assert_int_equal(dlv_encode_text(s, texts, 1, e, dim), DLV_OK);
    free(e);
    dlv_session_free(s);
    dlv_model_free(m);
    assert_false(mapped("libcudart"));
    assert_false(mapped("libcublas"));
    assert_false(mapped("libdisclvlm-cuda"));
}

static void test_cuda_beside_library(void **state)
{
    (void)state;
    unsetenv("DLV_CUDA_MODULE");
    dlv_model *m = NULL;
    char msg[1024];
    dlv_status st = load_on("cuda", &m, msg, sizeof msg);
    if (st == DLV_OK) {
        /* A GPU machine with the module: nothing more to check here
         * (tests/backend/test_ops_backends.c runs the ops on it). */
        assert_non_null(real_so);
        print_message("cuda backend loaded (a GPU is present)\n");
        dlv_model_free(m);
        return;
    }
    assert_int_equal(st, DLV_E_BACKEND);
    assert_non_null(strstr(msg, "backend 'cuda'"));
    if (real_so)
        /* Found beside the library; no device here. */
        assert_non_null(strstr(msg, "no CUDA device"));
    else
        assert_non_null(strstr(msg, "cannot load the CUDA backend module libdisclvlm-cuda.so"));
    /* "auto" without a usable device: the cpu. */
    assert_int_equal(load_on("auto", &m, msg, sizeof msg), DLV_OK);
    dlv_model_free(m);
}

static void test_module_errors(void **state)
{
    (void)state;
    dlv_model *m = NULL;
    char msg[1024];
    setenv("DLV_CUDA_MODULE", "/nonexistent/libdisclvlm-cuda.so", 1);
    assert_int_equal(load_on("cuda", &m, msg, sizeof msg), DLV_E_BACKEND);
    assert_non_null(strstr(msg, "DLV_CUDA_MODULE=/nonexistent/libdisclvlm-cuda.so"));
    assert_non_null(strstr(msg, "No such file"));
    /* "auto" when the module cannot be loaded: the cpu. */
    assert_int_equal(load_on("auto", &m, msg, sizeof msg), DLV_OK);
    dlv_model_free(m);

    setenv("DLV_CUDA_MODULE", lib_so, 1);
    assert_int_equal(load_on("cuda", &m, msg, sizeof msg), DLV_E_BACKEND);
    assert_non_null(strstr(msg, lib_so));
    assert_non_null(strstr(msg, "is not a libdisclvlm CUDA backend module (no dlv_cuda_module_get)"));

    setenv("DLV_CUDA_MODULE", wrong_so, 1);
    assert_int_equal(load_on("cuda", &m, msg, sizeof msg), DLV_E_BACKEND);
    assert_non_null(strstr(msg, "was built for libdisclvlm 0.0.0-other"));
    assert_non_null(strstr(msg, dlv_version()));
    unsetenv("DLV_CUDA_MODULE");
}

static void test_module_messages_and_auto(void **state)
{
    (void)state;
    dlv_model *m = NULL;
    char msg[1024];
    setenv("DLV_CUDA_MODULE", nodev_so, 1);
    assert_int_equal(load_on("cuda", &m, msg, sizeof msg), DLV_E_BACKEND);
    /* the module's own message, formatted by the library (dtype name too) */
    assert_non_null(strstr(msg, "fake module: no device (BF16)"));
    assert_int_equal(load_on("auto", &m, msg, sizeof msg), DLV_OK);
    dlv_model_free(m);

    setenv("DLV_CUDA_MODULE", fails_so, 1);
    assert_int_equal(load_on("cuda", &m, msg, sizeof msg), DLV_E_BACKEND);
    assert_non_null(strstr(msg, "fake module: device 0 cannot be opened"));
    /* A device exists: auto reports its error instead of hiding it. */
    assert_int_equal(load_on("auto", &m, msg, sizeof msg), DLV_E_BACKEND);
    assert_non_null(strstr(msg, "fake module: device 0 cannot be opened"));
    unsetenv("DLV_CUDA_MODULE");
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: test_cuda_loader MODEL_DIR LIBDISCLVLM_SO WRONG_VERSION_SO "
                        "NO_DEVICE_SO CREATE_FAILS_SO [REAL_MODULE_SO]\n");
        return 2;
    }
    model_dir = argv[1];
    lib_so = argv[2];
    wrong_so = argv[3];
    nodev_so = argv[4];
    fails_so = argv[5];
    real_so = argc == 7 ? argv[6] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_maps_no_cuda),
        cmocka_unit_test(test_cuda_beside_library),
        cmocka_unit_test(test_module_errors),
        cmocka_unit_test(test_module_messages_and_auto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
