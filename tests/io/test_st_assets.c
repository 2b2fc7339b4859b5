/* Reads the real safetensors files in $DLV_SHARED_ASSETS/safetensors (made
 * by Hugging Face tooling, not by this project). Expected values were read
 * from the same files with Python's struct module. Skips (77) without them. */
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

static char asset_dir[4096];

static dlv_st_file *open_asset(const char *name)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", asset_dir, name);
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
    (void)state;
    dlv_st_file *f = open_asset("tensor-1d-int32.safetensors");
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
    (void)state;
    dlv_st_file *f = open_asset("tensor-2d-float64.safetensors");
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
    (void)state;
    dlv_st_file *f = open_asset("tensor-3d-float32.safetensors");
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
    (void)state;
    dlv_st_file *f = open_asset("tensor-4d-float32.safetensors");
    const int64_t shape[] = {2, 3, 1, 3};
    const dlv_st_tensor *t = only_tensor(f, DLV_DTYPE_F32, 4, shape, 18);
    const float want[18] = {11, 12, 13, 1, 2, 3, 4, 5, 6, 22, 23, 24, 15, 16, 17, 17, 18, 19};
    float out[18];
    assert_int_equal(dlv_st_read_f32(t, 0, 18, out), DLV_OK);
    assert_memory_equal(out, want, sizeof want);
    dlv_st_close(f);
}

int main(void)
{
    const char *root = getenv("DLV_SHARED_ASSETS");
    struct stat sb;
    if (!root || snprintf(asset_dir, sizeof asset_dir, "%s/safetensors", root) >=
                     (int)sizeof asset_dir ||
        stat(asset_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        printf("SKIP: shared safetensors assets not found (DLV_SHARED_ASSETS=%s)\n",
               root ? root : "(unset)");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int32_1d),
        cmocka_unit_test(test_float64_2d),
        cmocka_unit_test(test_float32_3d),
        cmocka_unit_test(test_float32_4d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
