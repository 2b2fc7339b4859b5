/* dlv_st_write: round trips through the reader, header layout (aligned,
 * space-padded, metadata first), atomic replacement, argument validation,
 * and that no temporary file survives success or failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/safetensors.h"
#include "io_test_util.h"

static int setup(void **state)
{
    char *dir = io_tmpdir_new();
    if (!dir) return -1;
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    io_tmpdir_remove(*state);
    return 0;
}

static uint64_t u64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void test_round_trip(void **state)
{
    const char *dir = *state;
    char *path = io_join(dir, "model.safetensors");

    float w[2][3] = {{1.5f, -2.0f, 3.25f}, {0.0f, -0.0f, 1e-30f}};
    float scalar = 42.0f;
    uint16_t h[5], bh[2 * 2 * 2];
    const float hv[5] = {1.0f, -0.5f, 65504.0f, 0x1p-24f, -3.0f};
    for (int i = 0; i < 5; i++) h[i] = dlv_f32_to_f16(hv[i]);
    for (int i = 0; i < 8; i++) bh[i] = dlv_f32_to_bf16((float)(i - 4) * 0.5f);
    const int64_t s_w[] = {2, 3}, s_h[] = {5}, s_b[] = {2, 2, 2}, s_e[] = {0, 7};
    int32_t ints[3] = {7, -8, 9};
    const int64_t s_i[] = {3};
    const dlv_st_write_entry e[] = {
        {"weight", DLV_DTYPE_F32, 2, s_w, w},
        {"half", DLV_DTYPE_F16, 1, s_h, h},
        {"scalar", DLV_DTYPE_F32, 0, NULL, &scalar},
        {"empty", DLV_DTYPE_F32, 2, s_e, NULL},
        {"bf", DLV_DTYPE_BF16, 3, s_b, bh},
        {"ids", DLV_DTYPE_I32, 1, s_i, ints},
    };
    const char *keys[] = {"format", "quote\"key"};
    const char *vals[] = {"pt", "a \"quoted\" value"};
    assert_int_equal(dlv_st_write(path, e, 6, keys, vals, 2), DLV_OK);
    assert_int_equal(io_count_matching(dir, ".tmp."), 0);

    /* Raw layout. */
    char *raw = NULL;
    size_t len = 0;
    assert_int_equal(dlv_read_file(path, 1 << 20, &raw, &len), DLV_OK);
    uint64_t n = u64_le((const unsigned char *)raw);
    assert_int_equal((8 + n) % 8, 0);
    assert_true(8 + n <= len);
    assert_int_equal(raw[8], '{');
    assert_memory_equal(raw + 8, "{\"__metadata__\":", 16);
    size_t data_bytes = sizeof w + sizeof h + sizeof scalar + sizeof bh + sizeof ints;
    assert_int_equal(len, 8 + n + data_bytes);
    /* Padding is spaces after the closing brace. */
    size_t end = 8 + (size_t)n;
    while (raw[end - 1] == ' ') end--;
    assert_int_equal(raw[end - 1], '}');
    assert_true(8 + n - end < 8);
    free(raw);

    dlv_st_file *f = NULL;
    assert_int_equal(dlv_st_open(path, &f), DLV_OK);
    assert_int_equal(dlv_st_count(f), 6);
    for (size_t i = 0; i < 6; i++) {
        const dlv_st_tensor *t = dlv_st_at(f, i);
        assert_string_equal(t->name, e[i].name); /* laid out in the order given */
        assert_int_equal(t->dtype, e[i].dtype);
        assert_int_equal(t->ndim, e[i].ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], e[i].shape[d]);
        if (t->n_bytes) assert_memory_equal(t->data, e[i].data, t->n_bytes);
    }
    /* The buffer starts 8-aligned in the file, hence in the mapping. */
    assert_true(dlv_st_tensor_aligned(dlv_st_at(f, 0), 8));
    assert_string_equal(dlv_st_metadata(f, "format"), "pt");
    assert_string_equal(dlv_st_metadata(f, "quote\"key"), "a \"quoted\" value");

    float out[8];
    assert_int_equal(dlv_st_read_f32(dlv_st_find(f, "weight"), 0, 6, out), DLV_OK);
    assert_memory_equal(out, w, sizeof w);
    assert_int_equal(dlv_st_read_f32(dlv_st_find(f, "half"), 0, 5, out), DLV_OK);
    assert_memory_equal(out, hv, sizeof hv);
    assert_int_equal(dlv_st_read_f32(dlv_st_find(f, "bf"), 0, 8, out), DLV_OK);
    for (int i = 0; i < 8; i++) assert_true(out[i] == (float)(i - 4) * 0.5f);
    assert_int_equal(dlv_st_read_f32(dlv_st_find(f, "scalar"), 0, 1, out), DLV_OK);
    assert_true(out[0] == 42.0f);
    assert_int_equal(dlv_st_find(f, "empty")->n_elements, 0);
    assert_int_equal(dlv_st_read_f32(dlv_st_find(f, "ids"), 0, 1, out), DLV_E_UNSUPPORTED);
    dlv_st_close(f);
    free(path);
}

static void test_header_padding_all_lengths(void **state)
{
    const char *dir = *state;
    char *path = io_join(dir, "pad.safetensors");
    /* Names of lengths 1..16 move the header length through every residue
     * mod 8. */
    for (int k = 1; k <= 16; k++) {
        char name[17];
        memset(name, 'x', (size_t)k);
        name[k] = '\0';
        uint16_t v = 0x3c00;
        const int64_t shape[] = {1};
        const dlv_st_write_entry e = {name, DLV_DTYPE_F16, 1, shape, &v};
        assert_int_equal(dlv_st_write(path, &e, 1, NULL, NULL, 0), DLV_OK);
        dlv_st_file *f = NULL;
        assert_int_equal(dlv_st_open(path, &f), DLV_OK);
        const dlv_st_tensor *t = dlv_st_find(f, name);
        assert_non_null(t);
        assert_true(dlv_st_tensor_aligned(t, 8));
        dlv_st_close(f);
    }
    free(path);
}

static void test_no_tensors_and_replace(void **state)
{
    const char *dir = *state;
    char *path = io_join(dir, "x.safetensors");
    assert_int_equal(io_write_text(path, "old contents that are not safetensors"), 0);
    assert_int_equal(dlv_st_write(path, NULL, 0, NULL, NULL, 0), DLV_OK);
    dlv_st_file *f = NULL;
    assert_int_equal(dlv_st_open(path, &f), DLV_OK);
    assert_int_equal(dlv_st_count(f), 0);
    dlv_st_close(f);

    /* Replacing an existing (valid) file. */
    float v = 5.0f;
    const dlv_st_write_entry e = {"v", DLV_DTYPE_F32, 0, NULL, &v};
    assert_int_equal(dlv_st_write(path, &e, 1, NULL, NULL, 0), DLV_OK);
    assert_int_equal(dlv_st_open(path, &f), DLV_OK);
    assert_int_equal(dlv_st_count(f), 1);
    assert_non_null(dlv_st_find(f, "v"));
    dlv_st_close(f);
    assert_int_equal(io_count_matching(dir, ".tmp."), 0);
    free(path);
}

/* Each bad call fails, names the problem, leaves no temporary file and
 * leaves an existing file untouched. */
static void expect_bad(const char *dir, const char *path, const dlv_st_write_entry *e,
                       size_t n, const char *const *k, const char *const *v, size_t n_meta,
                       const char *want)
{
    dlv_clear_error();
    dlv_status st = dlv_st_write(path, e, n, k, v, n_meta);
    if (st == DLV_OK || !strstr(dlv_last_error(), want))
        fail_msg("status %d, message '%s', want '%s'", (int)st, dlv_last_error(), want);
    assert_int_equal(io_count_matching(dir, ".tmp."), 0);
    dlv_st_file *f = NULL;
    assert_int_equal(dlv_st_open(path, &f), DLV_OK);
    assert_non_null(dlv_st_find(f, "keep"));
    dlv_st_close(f);
}

static void test_bad_arguments(void **state)
{
    const char *dir = *state;
    char *path = io_join(dir, "keep.safetensors");
    float v[4] = {1, 2, 3, 4};
    const dlv_st_write_entry keep = {"keep", DLV_DTYPE_F32, 0, NULL, v};
    assert_int_equal(dlv_st_write(path, &keep, 1, NULL, NULL, 0), DLV_OK);

    const int64_t s2[] = {2}, sneg[] = {-1}, sbig[] = {INT64_MAX, INT64_MAX};
    const int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    dlv_st_write_entry dup[] = {{"a", DLV_DTYPE_F32, 1, s2, v}, {"a", DLV_DTYPE_F32, 1, s2, v}};
    expect_bad(dir, path, dup, 2, NULL, NULL, 0, "'a' given twice");
    dlv_st_write_entry e = {"", DLV_DTYPE_F32, 1, s2, v};
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "empty tensor name");
    e.name = NULL;
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "empty tensor name");
    e.name = "__metadata__";
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "reserved");
    e.name = "t";
    e.ndim = 9;
    e.shape = s9;
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "9 dimensions");
    e.ndim = -1;
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "-1 dimensions");
    e.ndim = 1;
    e.shape = sneg;
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "negative");
    e.shape = NULL;
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "shape is NULL");
    e.ndim = 2;
    e.shape = sbig;
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "overflows");
    e.ndim = 1;
    e.shape = s2;
    e.data = NULL;
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "data is NULL");
    e.data = v;
    e.dtype = DLV_DTYPE_COUNT;
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "invalid dtype");
    e.dtype = DLV_DTYPE_F32;
    e.name = "bad\xff utf8";
    expect_bad(dir, path, &e, 1, NULL, NULL, 0, "UTF-8");
    e.name = "t";
    const char *k2[] = {"k", "k"}, *v2[] = {"1", "2"};
    expect_bad(dir, path, &e, 1, k2, v2, 2, "metadata key 'k' given twice");
    const char *vnull[] = {"1", NULL};
    expect_bad(dir, path, &e, 1, k2, vnull, 2, "metadata entry 1");
    expect_bad(dir, path, &e, 1, NULL, NULL, 1, "metadata keys or values are NULL");
    /* A directory that does not exist: the temporary cannot be created. */
    char *nowhere = io_join(dir, "no/such/dir.safetensors");
    assert_int_equal(dlv_st_write(nowhere, &e, 1, NULL, NULL, 0), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), "no/such/dir.safetensors"));
    free(nowhere);
    assert_int_equal(dlv_st_write("", &e, 1, NULL, NULL, 0), DLV_E_INVALID_ARG);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_padding_all_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_tensors_and_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
