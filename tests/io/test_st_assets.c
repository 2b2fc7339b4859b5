/* Reads small safetensors files made by Hugging Face tooling, not by this
 * project: always the committed tests/io/fixtures/ (written by the reference
 * `safetensors` package, tests/reference/st_fixtures.py), and in addition
 * the real files in $DLV_SHARED_ASSETS/safetensors when they exist (the same
 * tensors, from huggingface/swift-transformers' test data). Expected values
 * were read from the shared files with Python's struct module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/error.h"
#include "io/safetensors.h"

/* Each test's state is the directory to read (no global: the same tests run
 * on two directories). */
static dlv_st_file *open_asset(void **state, const char *name)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", (const char *)*state, name);
    dlv_st_file *f = NULL;
    dlv_status st = dlv_st_open(path, &f);
    if (st != DLV_OK) fail_msg("%s: %s", path, dlv_last_error());
    assert_non_null(f);
    assert_string_equal(dlv_st_path(f), path);
    return f;
}

static const dlv_st_tensor *only_tensor(const dlv_st_file *f, dlv_dtype dt, int ndim,
                                        const int64_t *shape, uint64_t n_elements)
{
    assert_int_equal(dlv_st_count(f), 1);
    const dlv_st_tensor *t = dlv_st_at(f, 0);
    assert_non_null(t);
    assert_ptr_equal(dlv_st_find(f, "embedding"), t);
    assert_null(dlv_st_find(f, "embeddings"));
    assert_null(dlv_st_at(f, 1));
    assert_string_equal(t->name, "embedding");
    assert_int_equal(t->dtype, dt);
    assert_int_equal(t->ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(t->shape[i], shape[i]);
    assert_int_equal(t->n_elements, n_elements);
    assert_int_equal(t->n_bytes, n_elements * dlv_dtype_size(dt));
    assert_string_equal(t->file_path, dlv_st_path(f));
    assert_null(dlv_st_metadata(f, "format"));
    return t;
}

static void test_int32_1d(void **state)
{
    dlv_st_file *f = open_asset(state, "tensor-1d-int32.safetensors");
    const int64_t shape[] = {3};
    const dlv_st_tensor *t = only_tensor(f, DLV_DTYPE_I32, 1, shape, 3);
    int32_t v[3];
    memcpy(v, t->data, sizeof v);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 2);
    assert_int_equal(v[2], 3);

    float out[3];
    dlv_clear_error();
    assert_int_equal(dlv_st_read_f32(t, 0, 3, out), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "'embedding'"));
    assert_non_null(strstr(dlv_last_error(), "I32"));
    assert_non_null(strstr(dlv_last_error(), "BF16"));
    assert_non_null(strstr(dlv_last_error(), "tensor-1d-int32.safetensors"));
    dlv_st_close(f);
}

static void test_float64_2d(void **state)
{
    dlv_st_file *f = open_asset(state, "tensor-2d-float64.safetensors");
    const int64_t shape[] = {2, 3};
    const dlv_st_tensor *t = only_tensor(f, DLV_DTYPE_F64, 2, shape, 6);
    double v[6];
    memcpy(v, t->data, sizeof v);
    const double want[6] = {1.0, 2.0, 3.0, 24.0, 25.0, 26.0};
    assert_memory_equal(v, want, sizeof want);
    float out[1];
    assert_int_equal(dlv_st_read_f32(t, 0, 1, out), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "F64"));
    dlv_st_close(f);
}

static void test_float32_3d(void **state)
{
    dlv_st_file *f = open_asset(state, "tensor-3d-float32.safetensors");
    const int64_t shape[] = {2, 2, 3};
    const dlv_st_tensor *t = only_tensor(f, DLV_DTYPE_F32, 3, shape, 12);
    const float want[12] = {22, 23, 24, 11, 12, 13, 2, 3, 4, 1, 2, 3};
    float out[12];
    assert_int_equal(dlv_st_read_f32(t, 0, 12, out), DLV_OK);
    assert_memory_equal(out, want, sizeof want);
    /* A sub-range. */
    float part[3];
    assert_int_equal(dlv_st_read_f32(t, 9, 3, part), DLV_OK);
    assert_memory_equal(part, want + 9, sizeof part);
    assert_int_equal(dlv_st_read_f32(t, 10, 3, part), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "'embedding'"));
    /* Header is 72 bytes, so data starts at 80: 8-aligned in the map. */
    assert_true(dlv_st_tensor_aligned(t, 8));
    dlv_st_close(f);
}

static void test_float32_4d(void **state)
{
    dlv_st_file *f = open_asset(state, "tensor-4d-float32.safetensors");
    const int64_t shape[] = {2, 3, 1, 3};
    const dlv_st_tensor *t = only_tensor(f, DLV_DTYPE_F32, 4, shape, 18);
    const float want[18] = {11, 12, 13, 1, 2, 3, 4, 5, 6, 22, 23, 24, 15, 16, 17, 17, 18, 19};
    float out[18];
    assert_int_equal(dlv_st_read_f32(t, 0, 18, out), DLV_OK);
    assert_memory_equal(out, want, sizeof want);
    dlv_st_close(f);
}

#define ST_TESTS(dir)                                                                    \
    {                                                                                    \
        cmocka_unit_test_prestate(test_int32_1d, dir),                                   \
        cmocka_unit_test_prestate(test_float64_2d, dir),                                 \
        cmocka_unit_test_prestate(test_float32_3d, dir),                                 \
        cmocka_unit_test_prestate(test_float32_4d, dir),                                 \
    }

int main(void)
{
    const char *src = getenv("DLV_SOURCE_ROOT");
    char fixtures[4096], shared[4096];
    snprintf(fixtures, sizeof fixtures, "%s/tests/io/fixtures", src ? src : ".");
    const struct CMUnitTest in_repo[] = ST_TESTS(fixtures);
    printf("committed fixtures: %s\n", fixtures);
    int failed = cmocka_run_group_tests_name("committed fixtures (tests/io/fixtures)", in_repo,
                                             NULL, NULL);

    const char *root = getenv("DLV_SHARED_ASSETS");
    struct stat sb;
    if (!root || snprintf(shared, sizeof shared, "%s/safetensors", root) >= (int)sizeof shared ||
        stat(shared, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        printf("SKIPPED: the shared safetensors assets (DLV_SHARED_ASSETS=%s); the committed "
               "fixtures above were checked\n", root ? root : "(unset)");
        return failed;
    }
    const struct CMUnitTest real[] = ST_TESTS(shared);
    printf("shared assets: %s\n", shared);
    return failed + cmocka_run_group_tests_name("shared assets (DLV_SHARED_ASSETS/safetensors)",
                                                real, NULL, NULL);
}
