/* Model loading through the public API on tiny generated checkpoints.
 *
 *   test_model_load DIR...            each DIR loads; dlv_model_describe
 *                                     matches DIR/tiny_manifest.json
 *   test_model_load --errors DIR...   broken checkpoints fail with messages
 *                                     naming the tensor; plus missing and
 *                                     corrupt config.json
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <zlib.h>

#include "disclvlm.h"
#include "model/model.h"

static char **dirs;
static int n_dirs;

static json_t *load_json(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) fprintf(stderr, "%s: %s\n", path, err.text);
    return j;
}

static json_int_t geti(const json_t *obj, const char *path)
{
    /* "a.b" walks one level down. */
    char key[64];
    const char *dot = strchr(path, '.');
    if (dot) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        obj = json_object_get(obj, key);
        path = dot + 1;
    }
    const json_t *v = json_object_get(obj, path);
    if (!json_is_integer(v)) {
        fprintf(stderr, "field %s missing or not an integer\n", path);
        fail();
    }
    return json_integer_value(v);
}

static char *describe_alloc(const dlv_model *m)
{
    size_t needed = 0;
    assert_int_equal(dlv_model_describe(m, NULL, 0, &needed), DLV_OK);
    assert_true(needed > 2);
    char *buf = malloc(needed);
    assert_non_null(buf);
    size_t again = 0;
    assert_int_equal(dlv_model_describe(m, buf, needed, &again), DLV_OK);
    assert_int_equal(again, needed);
    assert_int_equal(strlen(buf) + 1, needed);
    return buf;
}

/* The generator's values: a 32-bit LCG seeded with the CRC-32 of the name. */
static float expected_value(const char *name, int norm, size_t i)
{
    uint32_t x = (uint32_t)crc32(0L, (const Bytef *)name, (uInt)strlen(name));
    if (x == 0) x = 1;
    float v = 0;
    for (size_t k = 0; k <= i; k++) {
        x = x * 1664525u + 1013904223u;
        double u = (double)(x >> 8) / (double)(1u << 24) - 0.5;
        v = (float)(norm ? 1.0 + 0.1 * u : 0.2 * u);
    }
    return v;
}

static void check_values(const dlv_weights *w, dlv_weight_layout layout, dlv_weight_part part,
                         const char *canonical, int norm)
{
    const dlv_st_tensor *t = dlv_weights_get(w, part, canonical);
    assert_non_null(t);
    char full[160];
    assert_non_null(dlv_weight_full_name(layout, part, canonical, full, sizeof full));
    assert_string_equal(t->name, full);
    float got[4];
    assert_int_equal(dlv_st_read_f32(t, 0, 4, got), DLV_OK);
    for (size_t i = 0; i < 4; i++) {
        float want = expected_value(full, norm, i);
        float tol = t->dtype == DLV_DTYPE_BF16 ? 0.01f : 1e-7f;
        if (!(got[i] - want <= tol && want - got[i] <= tol))
            fprintf(stderr, "%s[%zu]: got %g want %g\n", full, i, (double)got[i], (double)want);
        assert_true(got[i] - want <= tol && want - got[i] <= tol);
    }
}

static void check_dir(const char *dir)
{
    json_t *man = load_json(dir, "tiny_manifest.json");
    assert_non_null(man);
    dlv_model *m = NULL;
    dlv_status st = dlv_model_load(dir, NULL, &m);
    if (st != DLV_OK) fprintf(stderr, "%s: %s\n", dir, dlv_last_error());
    assert_int_equal(st, DLV_OK);
    assert_non_null(m);

    size_t dim = 0;
    assert_int_equal(dlv_model_embed_dim(m, &dim), DLV_OK);
    assert_int_equal(dim, (size_t)geti(man, "embedding_size"));

    char *text = describe_alloc(m);
    json_error_t err;
    json_t *d = json_loads(text, 0, &err);
    if (!d) fprintf(stderr, "describe output is not JSON: %s\n%s\n", err.text, text);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "format")), "llava");
    assert_string_equal(json_string_value(json_object_get(d, "model_dir")), dir);
    assert_int_equal(geti(d, "embedding_size"), geti(man, "embedding_size"));
    assert_int_equal(geti(d, "checkpoint.tensor_count"), geti(man, "tensor_count"));
    assert_int_equal(geti(d, "checkpoint.unused_tensors"), geti(man, "unused_tensors"));
    assert_int_equal(geti(d, "checkpoint.files"), geti(man, "files"));
    const json_t *ck = json_object_get(d, "checkpoint");
    assert_int_equal(json_is_true(json_object_get(ck, "sharded")),
                     json_is_true(json_object_get(man, "sharded")));
    assert_string_equal(json_string_value(json_object_get(ck, "tensor_layout")),
                        json_string_value(json_object_get(man, "layout")));
    static const char *const parts[] = {"vision", "projector", "text", "total"};
    for (size_t i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof key, "parameters.%s", parts[i]);
        assert_int_equal(geti(d, key), geti(man, key));
    }
    /* Same dtype histogram. */
    json_t *want_dt = json_object_get(man, "dtype_count");
    const json_t *got_dt = json_object_get(d, "dtype");
    assert_int_equal(json_object_size(want_dt), json_object_size(got_dt));
    const char *k;
    json_t *v;
    json_object_foreach(want_dt, k, v)
        assert_int_equal(json_integer_value(json_object_get(got_dt, k)), json_integer_value(v));
    const char *vision = json_string_value(json_object_get(man, "vision"));
    const char *textk = json_string_value(json_object_get(man, "text"));
    const json_t *dv = json_object_get(d, "vision");
    const json_t *dtx = json_object_get(d, "text");
    assert_string_equal(json_string_value(json_object_get(dv, "type")),
                        strcmp(vision, "clip") == 0 ? "clip_vision_model" : "siglip_vision_model");
    assert_string_equal(json_string_value(json_object_get(dtx, "type")), textk);
    assert_int_equal(geti(d, "vision.num_patches"), 4);
    assert_int_equal(geti(d, "text.kv_heads"), 2);
    assert_int_equal(geti(d, "text.head_dim"), 16);
    assert_string_equal(json_string_value(json_object_get(d, "backend")), "cpu");

    /* The resolved tensors are the generator's. */
    const dlv_weights *w = dlv_model_weights(m);
    assert_non_null(w);
    dlv_weight_layout layout = strcmp(json_string_value(json_object_get(man, "layout")), "new") == 0
                                   ? DLV_LAYOUT_NEW : DLV_LAYOUT_CLASSIC;
    assert_int_equal(w->layout, layout);
    check_values(w, layout, DLV_PART_TEXT, "embed_tokens.weight", 0);
    check_values(w, layout, DLV_PART_TEXT, "layers.1.post_attention_layernorm.weight", 1);
    check_values(w, layout, DLV_PART_PROJECTOR, "linear_2.bias", 0);
    check_values(w, layout, DLV_PART_VISION, "vision_model.encoder.layers.0.self_attn.q_proj.weight", 0);
    assert_non_null(dlv_model_config(m));
    assert_non_null(dlv_model_checkpoint(m));
    assert_non_null(dlv_model_backend(m));
    assert_non_null(dlv_model_preproc(m));
    assert_string_equal(dlv_model_dir(m), dir);

    json_decref(d);
    free(text);
    dlv_model_free(m);
    json_decref(man);
}

static void test_load_matrix(void **state)
{
    (void)state;
    assert_true(n_dirs >= 8);
    for (int i = 0; i < n_dirs; i++) check_dir(dirs[i]);
}

static void test_describe_buffers(void **state)
{
    (void)state;
    dlv_model *m = NULL;
    assert_int_equal(dlv_model_load(dirs[0], NULL, &m), DLV_OK);
    size_t needed = 0;
    assert_int_equal(dlv_model_describe(m, NULL, 0, &needed), DLV_OK);
    assert_int_equal(dlv_model_describe(m, NULL, 0, NULL), DLV_OK);
    char *buf = malloc(needed);
    assert_non_null(buf);
    memset(buf, 'x', needed);
    size_t n2 = 0;
    assert_int_equal(dlv_model_describe(m, buf, needed - 1, &n2), DLV_E_BUFFER_TOO_SMALL);
    assert_int_equal(n2, needed);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(dlv_model_describe(m, buf, 0, NULL), DLV_E_BUFFER_TOO_SMALL);
    assert_int_equal(dlv_model_describe(m, NULL, 5, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_describe(NULL, buf, needed, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_describe(m, buf, needed, NULL), DLV_OK);
    assert_int_equal(strlen(buf) + 1, needed);
    assert_int_equal(dlv_model_embed_dim(NULL, &n2), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_embed_dim(m, NULL), DLV_E_INVALID_ARG);
    free(buf);
    dlv_model_free(m);
    dlv_model_free(NULL);
}

/* ---- errors ---- */

static const char *find_dir(const char *suffix)
{
    size_t ls = strlen(suffix);
    for (int i = 0; i < n_dirs; i++) {
        size_t ld = strlen(dirs[i]);
        if (ld >= ls && strcmp(dirs[i] + ld - ls, suffix) == 0) return dirs[i];
    }
    fprintf(stderr, "no directory ending in %s among the arguments\n", suffix);
    fail();
    return NULL;
}

static void expect_load_error(const char *dir, dlv_status want, const char *f1, const char *f2)
{
    dlv_model *m = (dlv_model *)(uintptr_t)1;
    dlv_status st = dlv_model_load(dir, NULL, &m);
    const char *msg = dlv_last_error();
    if (st != want || (f1 && !strstr(msg, f1)) || (f2 && !strstr(msg, f2)))
        fprintf(stderr, "%s: status %d, message: %s\n", dir ? dir : "(null)", (int)st, msg);
    assert_int_equal(st, want);
    assert_null(m);
    if (f1) assert_non_null(strstr(msg, f1));
    if (f2) assert_non_null(strstr(msg, f2));
}

static void test_broken_checkpoints(void **state)
{
    (void)state;
    expect_load_error(find_dir("tiny-broken-missing"), DLV_E_FORMAT,
                      "'language_model.model.layers.1.mlp.up_proj.weight' is missing", "classic");
    expect_load_error(find_dir("tiny-broken-missing-new"), DLV_E_FORMAT,
                      "'model.multi_modal_projector.linear_2.bias' is missing", "'new'");
    expect_load_error(find_dir("tiny-broken-shape"), DLV_E_FORMAT,
                      "'multi_modal_projector.linear_1.weight' has shape [65, 32]",
                      "expected [64, 32]");
    expect_load_error(find_dir("tiny-broken-dtype"), DLV_E_UNSUPPORTED,
                      "'language_model.model.layers.0.self_attn.k_proj.bias'", "I32");
}

static void test_optional_tensors(void **state)
{
    (void)state;
    dlv_model *m = NULL;
    dlv_status st = dlv_model_load(find_dir("tiny-pruned-vision"), NULL, &m);
    if (st != DLV_OK) fprintf(stderr, "%s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
    const dlv_weights *w = dlv_model_weights(m);
    assert_null(dlv_weights_get(w, DLV_PART_VISION, "vision_model.post_layernorm.weight"));
    assert_non_null(dlv_weights_get(w, DLV_PART_VISION, "vision_model.post_layernorm.bias"));
    assert_null(dlv_weights_get(w, DLV_PART_VISION, "vision_model.encoder.layers.1.mlp.fc1.weight"));
    assert_non_null(dlv_weights_get(w, DLV_PART_VISION, "vision_model.encoder.layers.0.mlp.fc1.weight"));
    dlv_model_free(m);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_bad_directories(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/dlv-model-test-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    char cfg[256], pre[256];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(pre, sizeof pre, "%s/preprocessor_config.json", dir);

    expect_load_error(dir, DLV_E_IO, cfg, "no such file");
    write_file(cfg, "{\"text_config\": {\"hidden_size\": ");
    expect_load_error(dir, DLV_E_FORMAT, cfg, "invalid JSON");
    write_file(cfg, "{\"text_config\": {\"hidden_size\": true}}");
    expect_load_error(dir, DLV_E_FORMAT, "text_config.hidden_size", NULL);
    /* A valid config but no weights: the checkpoint reader names the dir. */
    write_file(cfg, "{\"model_type\": \"llava\"}");
    expect_load_error(dir, DLV_E_IO, dir, NULL);
    /* A broken preprocessor_config.json is reported, not ignored. */
    write_file(pre, "{\"resample\": \"bicubic\"}");
    expect_load_error(dir, DLV_E_FORMAT, pre, "resample");

    expect_load_error("/nonexistent/model/dir", DLV_E_IO, "/nonexistent/model/dir", NULL);
    expect_load_error(cfg, DLV_E_IO, "not a directory", NULL);
    expect_load_error(NULL, DLV_E_INVALID_ARG, NULL, NULL);
    expect_load_error("", DLV_E_INVALID_ARG, NULL, NULL);
    assert_int_equal(dlv_model_load(dir, NULL, NULL), DLV_E_INVALID_ARG);

    unlink(pre);
    unlink(cfg);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    int errors = argc > 1 && strcmp(argv[1], "--errors") == 0;
    dirs = argv + 1 + errors;
    n_dirs = argc - 1 - errors;
    if (n_dirs < 1) {
        fprintf(stderr, "usage: test_model_load [--errors] DIR...\n");
        return 2;
    }
    if (!errors) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_load_matrix),
            cmocka_unit_test(test_describe_buffers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_checkpoints),
        cmocka_unit_test(test_optional_tensors),
        cmocka_unit_test(test_bad_directories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
