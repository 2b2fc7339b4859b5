/* Checkpoint directories: a single model.safetensors, or shards listed by
 * model.safetensors.index.json, and every way the two can disagree. */
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
#include "io_test_util.h"

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
#define INDEX "model.safetensors.index.json"

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

/* Writes dir/file with tensors named names[0..n), tensor i = {value + i}. */
static void write_shard(const char *dir, const char *file, const char *const *names, size_t n,
                        float value)
{
    float vals[8];
    dlv_st_write_entry e[8];
    static const int64_t shape[] = {1};
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        vals[i] = value + (float)i;
        e[i] = (dlv_st_write_entry){names[i], DLV_DTYPE_F32, 1, shape, &vals[i]};
    }
    char *p = io_join(dir, file);
    assert_int_equal(dlv_st_write(p, e, n, NULL, NULL, 0), DLV_OK);
    free(p);
}

static void write_index(const char *dir, const char *weight_map)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"metadata\": {\"total_size\": 16}, \"weight_map\": {%s}}", weight_map);
    char *p = io_join(dir, INDEX);
    assert_int_equal(io_write_text(p, text), 0);
    free(p);
}

static const char *const s1_names[] = {"a.weight", "b.weight"};
static const char *const s2_names[] = {"c.weight", "d.bias"};
#define GOOD_MAP                                                                    \
    "\"a.weight\": \"" SHARD1 "\", \"b.weight\": \"" SHARD1 "\", \"c.weight\": \"" \
    SHARD2 "\", \"d.bias\": \"" SHARD2 "\""

static void make_sharded(const char *dir)
{
    write_shard(dir, SHARD1, s1_names, 2, 10.0f);
    write_shard(dir, SHARD2, s2_names, 2, 20.0f);
    write_index(dir, GOOD_MAP);
}

static void test_sharded(void **state)
{
    const char *dir = *state;
    make_sharded(dir);
    dlv_st_set *s = NULL;
    dlv_status st = dlv_st_set_open_dir(dir, &s);
    if (st != DLV_OK) fail_msg("%s", dlv_last_error());
    assert_int_equal(dlv_st_set_sharded(s), 1);
    assert_int_equal(dlv_st_set_n_files(s), 2);
    assert_int_equal(dlv_st_set_count(s), 4);
    const struct { const char *name, *file; float v; } want[] = {
        {"a.weight", SHARD1, 10.0f}, {"b.weight", SHARD1, 11.0f},
        {"c.weight", SHARD2, 20.0f}, {"d.bias", SHARD2, 21.0f},
    };
    for (size_t i = 0; i < 4; i++) {
        const dlv_st_tensor *t = dlv_st_set_find(s, want[i].name);
        assert_non_null(t);
        assert_string_equal(t->name, want[i].name);
        const char *slash = strrchr(t->file_path, '/');
        assert_non_null(slash);
        assert_string_equal(slash + 1, want[i].file);
        float v;
        assert_int_equal(dlv_st_read_f32(t, 0, 1, &v), DLV_OK);
        assert_true(v == want[i].v);
        assert_ptr_equal(dlv_st_set_at(s, i), t); /* shard order, then offsets */
    }
    assert_null(dlv_st_set_at(s, 4));
    assert_null(dlv_st_set_find(s, "e"));
    dlv_st_set_close(s);
}

static void test_single_file(void **state)
{
    const char *dir = *state;
    write_shard(dir, "model.safetensors", s1_names, 2, 1.0f);
    dlv_st_set *s = NULL;
    assert_int_equal(dlv_st_set_open_dir(dir, &s), DLV_OK);
    assert_int_equal(dlv_st_set_sharded(s), 0);
    assert_int_equal(dlv_st_set_n_files(s), 1);
    assert_int_equal(dlv_st_set_count(s), 2);
    assert_non_null(dlv_st_set_find(s, "b.weight"));
    dlv_st_set_close(s);

    /* A present index takes precedence over model.safetensors. */
    write_shard(dir, SHARD1, s1_names, 2, 10.0f);
    write_shard(dir, SHARD2, s2_names, 2, 20.0f);
    write_index(dir, GOOD_MAP);
    assert_int_equal(dlv_st_set_open_dir(dir, &s), DLV_OK);
    assert_int_equal(dlv_st_set_sharded(s), 1);
    assert_int_equal(dlv_st_set_count(s), 4);
    dlv_st_set_close(s);
}

static void expect_fail(const char *dir, dlv_status want, const char *w1, const char *w2)
{
    dlv_st_set *s = (dlv_st_set *)1;
    dlv_clear_error();
    dlv_status st = dlv_st_set_open_dir(dir, &s);
    const char *msg = dlv_last_error();
    if (st != want || s != NULL || !strstr(msg, w1) || (w2 && !strstr(msg, w2)))
        fail_msg("status %d, message '%s', want %d with '%s' and '%s'", (int)st, msg,
                 (int)want, w1, w2 ? w2 : "");
}

static void test_missing_everything(void **state)
{
    const char *dir = *state;
    expect_fail(dir, DLV_E_IO, INDEX, "model.safetensors");
    assert_non_null(strstr(dlv_last_error(), dir));
    char *nodir = io_join(dir, "absent");
    expect_fail(nodir, DLV_E_IO, nodir, INDEX);
    free(nodir);
    expect_fail("", DLV_E_IO, "empty", NULL);
}

static void test_missing_shard_file(void **state)
{
    const char *dir = *state;
    write_shard(dir, SHARD1, s1_names, 2, 10.0f);
    write_index(dir, GOOD_MAP);
    expect_fail(dir, DLV_E_IO, SHARD2, "cannot open");
}

static void test_tensor_absent_from_shard(void **state)
{
    const char *dir = *state;
    make_sharded(dir);
    write_index(dir, GOOD_MAP ", \"e.weight\": \"" SHARD2 "\"");
    expect_fail(dir, DLV_E_FORMAT, "'e.weight'", SHARD2);
    assert_non_null(strstr(dlv_last_error(), "missing"));
}

static void test_tensor_in_two_shards(void **state)
{
    const char *dir = *state;
    static const char *const dup[] = {"c.weight", "d.bias", "a.weight"};
    write_shard(dir, SHARD1, s1_names, 2, 10.0f);
    write_shard(dir, SHARD2, dup, 3, 20.0f);
    write_index(dir, GOOD_MAP);
    expect_fail(dir, DLV_E_FORMAT, "'a.weight'", "two files");
    assert_non_null(strstr(dlv_last_error(), SHARD1));
    assert_non_null(strstr(dlv_last_error(), SHARD2));
}

static void test_unmapped_and_mismapped(void **state)
{
    const char *dir = *state;
    make_sharded(dir);
    /* d.bias exists in shard 2 but the index does not list it. */
    write_index(dir, "\"a.weight\": \"" SHARD1 "\", \"b.weight\": \"" SHARD1
                     "\", \"c.weight\": \"" SHARD2 "\"");
    expect_fail(dir, DLV_E_FORMAT, "'d.bias'", "not in the index");
    /* The index names the wrong shard for b.weight. */
    write_index(dir, "\"a.weight\": \"" SHARD1 "\", \"b.weight\": \"" SHARD2
                     "\", \"c.weight\": \"" SHARD2 "\", \"d.bias\": \"" SHARD2 "\"");
    expect_fail(dir, DLV_E_FORMAT, "'b.weight'", "maps it to " SHARD2);
}

/* Every tensor of every shard is checked against weight_map, wherever it
 * lies in its shard (the first by data offset, one in the middle, the
 * last): an index that maps any one of them to the other shard, or leaves
 * it out, fails naming it, and the correct index loads. */
static void test_every_tensor_checked(void **state)
{
    const char *dir = *state;
    static const char *const n1[] = {"m.first", "m.middle", "m.last"};
    static const char *const n2[] = {"n.first", "n.middle", "n.last"};
    const char *const *names[2] = {n1, n2};
    const char *files[2] = {SHARD1, SHARD2};
    write_shard(dir, SHARD1, n1, 3, 1.0f);
    write_shard(dir, SHARD2, n2, 3, 2.0f);
    /* wrong = -1: the correct index; else tensor wrong % 3 of shard
     * wrong / 3, mapped to the other shard (mode 0) or left out (mode 1). */
    for (int wrong = -1; wrong < 6; wrong++)
        for (int mode = 0; mode < (wrong < 0 ? 1 : 2); mode++) {
            char map[1024] = "";
            size_t o = 0;
            for (int f = 0; f < 2; f++)
                for (int t = 0; t < 3; t++) {
                    int here = f * 3 + t == wrong;
                    if (here && mode == 1) continue;
                    o += (size_t)snprintf(map + o, sizeof map - o, "%s\"%s\": \"%s\"",
                                          o ? ", " : "", names[f][t],
                                          files[here ? 1 - f : f]);
                    assert_true(o < sizeof map);
                }
            write_index(dir, map);
            if (wrong < 0) {
                dlv_st_set *s = NULL;
                dlv_status st = dlv_st_set_open_dir(dir, &s);
                if (st != DLV_OK) fail_msg("%s", dlv_last_error());
                assert_int_equal(dlv_st_set_count(s), 6);
                /* The names say where each tensor lies: shard order, then offsets. */
                for (size_t i = 0; i < 6; i++)
                    assert_string_equal(dlv_st_set_at(s, i)->name, names[i / 3][i % 3]);
                dlv_st_set_close(s);
                continue;
            }
            const char *name = names[wrong / 3][wrong % 3];
            char quoted[64], why[128];
            snprintf(quoted, sizeof quoted, "'%s'", name);
            if (mode == 0)
                snprintf(why, sizeof why, "is in shard %s but the index maps it to %s",
                         files[wrong / 3], files[1 - wrong / 3]);
            else
                snprintf(why, sizeof why, "is in shard %s but not in the index",
                         files[wrong / 3]);
            expect_fail(dir, DLV_E_FORMAT, quoted, why);
        }
}

static void test_bad_shard_names(void **state)
{
    const char *dir = *state;
    make_sharded(dir);
    write_index(dir, "\"a.weight\": \"../" SHARD1 "\"");
    expect_fail(dir, DLV_E_FORMAT, "'a.weight'", "not a plain file name");
    write_index(dir, "\"a.weight\": \"..\"");
    expect_fail(dir, DLV_E_FORMAT, "'a.weight'", "not a plain file name");
    write_index(dir, "\"a.weight\": \"/etc/passwd\"");
    expect_fail(dir, DLV_E_FORMAT, "'a.weight'", "not a plain file name");
    write_index(dir, "\"a.weight\": \"\"");
    expect_fail(dir, DLV_E_FORMAT, "'a.weight'", "not a plain file name");
    write_index(dir, "\"a.weight\": 3");
    expect_fail(dir, DLV_E_FORMAT, "'a.weight'", "file name string");
}

static void test_bad_index_json(void **state)
{
    const char *dir = *state;
    make_sharded(dir);
    char *p = io_join(dir, INDEX);
    assert_int_equal(io_write_text(p, "{\"weight_map\": {\"a\": "), 0);
    expect_fail(dir, DLV_E_FORMAT, INDEX, "invalid JSON");
    assert_int_equal(io_write_text(p, "[]"), 0);
    expect_fail(dir, DLV_E_FORMAT, INDEX, "object");
    assert_int_equal(io_write_text(p, "{\"metadata\": {}}"), 0);
    expect_fail(dir, DLV_E_FORMAT, INDEX, "'weight_map'");
    assert_int_equal(io_write_text(p, "{\"weight_map\": {}}"), 0);
    expect_fail(dir, DLV_E_FORMAT, "'weight_map'", "no tensors");
    assert_int_equal(io_write_text(p, "{\"weight_map\": {\"a.weight\": \"" SHARD1
                                      "\", \"a.weight\": \"" SHARD1 "\"}}"), 0);
    expect_fail(dir, DLV_E_FORMAT, INDEX, "duplicate");
    assert_int_equal(io_write_text(p, "{\"metadata\": 1, \"weight_map\": {" GOOD_MAP "}}"), 0);
    expect_fail(dir, DLV_E_FORMAT, INDEX, "'metadata'");
    free(p);
}

static void test_corrupt_shard(void **state)
{
    const char *dir = *state;
    make_sharded(dir);
    char *p = io_join(dir, SHARD2);
    assert_int_equal(io_write_bytes(p, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10), 0);
    free(p);
    expect_fail(dir, DLV_E_FORMAT, SHARD2, "exceeds the limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sharded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_shard_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tensor_absent_from_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tensor_in_two_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmapped_and_mismapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_tensor_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_shard_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_index_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_shard, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
