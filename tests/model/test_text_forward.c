/* The language model's forward pass against Hugging Face goldens.
 *
 *   test_text_forward GOLDEN_DIR NAME CKPT_DIR [NAME CKPT_DIR ...]
 *
 * For each NAME, GOLDEN_DIR/text_NAME.safetensors (written by
 * tests/reference/llava_text_reference.py) holds the input ids of a
 * right-padded batch, HF's hidden_states for every layer and position, and
 * the final-norm state at each row's last real position; CKPT_DIR is the
 * same tiny checkpoint regenerated at build time. Every tensor is compared
 * with |a - b| <= ATOL + RTOL * |b|. bf16 checkpoints are widened exactly to
 * f32 on both sides, so they share the f32 tolerance.
 *
 * Also: a sequence's result does not depend on its batch companions, the
 * batch order or the amount of padding, and not a bit on the thread count;
 * bad arguments, unsupported configs and a non-CPU backend fail with
 * messages naming what is wrong. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/error.h"
#include "disclvlm.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/llava/text_model.h"

#define ATOL 1e-5
#define RTOL 1e-4
/* Same sequence, different batch: the same arithmetic up to the GEMM's
 * blocking, so far tighter than the golden tolerance. */
#define BATCH_TOL 1e-6

typedef struct golden_case {
    const char *name;
    const char *ckpt;
} golden_case;

static const char *golden_dir;
static golden_case cases[8];
static int n_cases;

/* One golden file, decoded. */
typedef struct golden {
    int64_t batch, len, hidden, n_states;
    int32_t *ids, *lengths;
    float *states, *last;
} golden;

static void golden_free(golden *g)
{
    free(g->ids);
    free(g->lengths);
    free(g->states);
    free(g->last);
    memset(g, 0, sizeof *g);
}

static int32_t *read_i32(const dlv_st_tensor *t)
{
    assert_non_null(t);
    assert_int_equal(t->dtype, DLV_DTYPE_I32);
    int32_t *out = malloc(t->n_elements * sizeof *out);
    assert_non_null(out);
    memcpy(out, t->data, t->n_elements * sizeof *out);
    return out;
}

static float *read_f32(const dlv_st_tensor *t)
{
    assert_non_null(t);
    float *out = malloc(t->n_elements * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_st_read_f32(t, 0, t->n_elements, out), DLV_OK);
    return out;
}

static void golden_load(const char *name, golden *g)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/text_%s.safetensors", golden_dir, name);
    dlv_st_file *f = NULL;
    if (dlv_st_open(path, &f) != DLV_OK) {
        fprintf(stderr, "%s\n", dlv_last_error());
        fail();
    }
    const dlv_st_tensor *ids = dlv_st_find(f, "input_ids");
    const dlv_st_tensor *hs = dlv_st_find(f, "hidden_states");
    assert_non_null(ids);
    assert_non_null(hs);
    assert_int_equal(ids->ndim, 2);
    assert_int_equal(hs->ndim, 4);
    g->batch = ids->shape[0];
    g->len = ids->shape[1];
    g->n_states = hs->shape[0];
    g->hidden = hs->shape[3];
    assert_int_equal(hs->shape[1], g->batch);
    assert_int_equal(hs->shape[2], g->len);
    g->ids = read_i32(ids);
    g->lengths = read_i32(dlv_st_find(f, "lengths"));
    g->states = read_f32(hs);
    g->last = read_f32(dlv_st_find(f, "last_hidden"));
    dlv_st_close(f);
}

/* Counts elements outside tolerance, printing the first few. */
static size_t compare(const char *what, const float *got, const float *want, size_t n,
                      double atol, double rtol, double *max_err)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - (double)want[i]);
        if (err > *max_err) *max_err = err;
        if (!(err <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 5)
                fprintf(stderr, "%s[%zu]: got %.9g, want %.9g\n", what, i, (double)got[i],
                        (double)want[i]);
            bad++;
        }
    }
    return bad;
}

static dlv_model *load_model(const char *dir)
{
    dlv_model *m = NULL;
    if (dlv_model_load(dir, NULL, &m) != DLV_OK) {
        fprintf(stderr, "%s: %s\n", dir, dlv_last_error());
        fail();
    }
    return m;
}

static void check_ok(dlv_status st)
{
    if (st != DLV_OK) fprintf(stderr, "unexpected error: %s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
}

/* Embeddings of rows of ids [batch, len] through dlv_text_embed_ids. */
static float *embed(dlv_model *m, const int32_t *ids, int64_t n, int64_t hidden)
{
    float *e = malloc((size_t)(n * hidden) * sizeof *e);
    assert_non_null(e);
    check_ok(dlv_text_embed_ids(m, dlv_model_backend(m), ids, n, e, (size_t)(n * hidden)));
    return e;
}

static void test_golden(void **state)
{
    const golden_case *c = *state;
    golden g = {0};
    golden_load(c->name, &g);
    dlv_model *m = load_model(c->ckpt);
    const dlv_text_config *t = &dlv_model_config(m)->text;
    assert_int_equal(g.hidden, t->hidden_size);
    assert_int_equal(g.n_states, t->num_hidden_layers + 1);

    const size_t plane = (size_t)(g.batch * g.len * g.hidden);
    float *emb = embed(m, g.ids, g.batch * g.len, g.hidden);
    float *all = malloc((size_t)g.n_states * plane * sizeof *all);
    float *last = malloc((size_t)(g.batch * g.hidden) * sizeof *last);
    assert_non_null(all);
    assert_non_null(last);
    check_ok(dlv_text_forward(m, dlv_model_backend(m), emb, g.lengths, g.batch, g.len, last,
                              (size_t)(g.batch * g.hidden), all,
                              (size_t)g.n_states * plane));

    double max_err = 0.0;
    size_t bad = compare("embeddings", emb, g.states, plane, ATOL, RTOL, &max_err);
    for (int64_t s = 0; s < g.n_states; s++) {
        char what[64];
        snprintf(what, sizeof what, "%s hidden_states[%lld]", c->name, (long long)s);
        bad += compare(what, all + (size_t)s * plane, g.states + (size_t)s * plane, plane,
                       ATOL, RTOL, &max_err);
    }
    bad += compare("last_hidden", last, g.last, (size_t)(g.batch * g.hidden), ATOL, RTOL,
                   &max_err);
    printf("%s: %lld hidden-state planes + last_hidden, max |err| %.3g\n", c->name,
           (long long)g.n_states, max_err);
    assert_int_equal(bad, 0);

    free(all);
    free(last);
    free(emb);
    dlv_model_free(m);
    golden_free(&g);
}

/* Runs rows (each a copy of golden row src[i]) padded to len, returns the
 * last hidden states [n, hidden]. */
static float *run_rows(dlv_model *m, const golden *g, const int *src, int64_t n, int64_t len)
{
    int32_t *ids = calloc((size_t)(n * len), sizeof *ids);
    int32_t *lengths = malloc((size_t)n * sizeof *lengths);
    assert_non_null(ids);
    assert_non_null(lengths);
    for (int64_t i = 0; i < n; i++) {
        lengths[i] = g->lengths[src[i]];
        memcpy(ids + i * len, g->ids + src[i] * g->len, (size_t)lengths[i] * sizeof *ids);
        /* Padding ids differ from the golden's (0) on purpose. */
        for (int64_t j = lengths[i]; j < len; j++) ids[i * len + j] = (int32_t)(7 + j + i);
    }
    float *emb = embed(m, ids, n * len, g->hidden);
    float *last = malloc((size_t)(n * g->hidden) * sizeof *last);
    assert_non_null(last);
    check_ok(dlv_text_forward(m, dlv_model_backend(m), emb, lengths, n, len, last,
                              (size_t)(n * g->hidden), NULL, 0));
    free(emb);
    free(ids);
    free(lengths);
    return last;
}

static void test_batch_independence(void **state)
{
    const golden_case *c = *state;
    golden g = {0};
    golden_load(c->name, &g);
    dlv_model *m = load_model(c->ckpt);
    const size_t h = (size_t)g.hidden;
    const int order[] = {0, 1, 2};
    float *batched = run_rows(m, &g, order, g.batch, g.len);
    double max_err = 0.0;
    size_t bad = 0;
    for (int64_t b = 0; b < g.batch; b++) {
        const int one[] = {(int)b};
        /* Alone, without padding. */
        float *alone = run_rows(m, &g, one, 1, g.lengths[b]);
        bad += compare("alone vs batch", alone, batched + (size_t)b * h, h, BATCH_TOL,
                       BATCH_TOL, &max_err);
        free(alone);
        /* Alone, with much more padding than the batch had. */
        float *padded = run_rows(m, &g, one, 1, g.len + 5);
        bad += compare("extra padding vs batch", padded, batched + (size_t)b * h, h,
                       BATCH_TOL, BATCH_TOL, &max_err);
        free(padded);
    }
    /* Other companions and order: rows 2, 0, 0, 1. */
    const int mixed[] = {2, 0, 0, 1};
    float *other = run_rows(m, &g, mixed, 4, g.len + 2);
    for (int i = 0; i < 4; i++)
        bad += compare("reordered batch", other + (size_t)i * h,
                       batched + (size_t)mixed[i] * h, h, BATCH_TOL, BATCH_TOL, &max_err);
    free(other);
    /* And the batched result is the golden's. */
    double golden_err = 0.0;
    bad += compare("batch vs golden", batched, g.last, (size_t)g.batch * h, ATOL, RTOL,
                   &golden_err);
    printf("%s: batch independence, max |err| %.3g\n", c->name, max_err);
    assert_int_equal(bad, 0);
    free(batched);
    dlv_model_free(m);
    golden_free(&g);
}

/* The pool splits work into contiguous chunks (docs/backends.md), so the
 * thread count must not change a single bit. */
static void test_thread_count(void **state)
{
    (void)state;
    golden g = {0};
    golden_load(cases[0].name, &g);
    dlv_model *m = load_model(cases[0].ckpt);
    float *emb = embed(m, g.ids, g.batch * g.len, g.hidden);
    const size_t n_last = (size_t)(g.batch * g.hidden);
    float *out[2];
    const int threads[2] = {1, 4};
    for (int i = 0; i < 2; i++) {
        dlv_backend_config cfg = {.device = 0, .n_threads = threads[i]};
        dlv_backend *be = NULL;
        check_ok(dlv_backend_create("cpu", &cfg, &be));
        out[i] = malloc(n_last * sizeof(float));
        assert_non_null(out[i]);
        check_ok(dlv_text_forward(m, be, emb, g.lengths, g.batch, g.len, out[i], n_last, NULL,
                                  0));
        dlv_backend_destroy(be);
    }
    assert_memory_equal(out[0], out[1], n_last * sizeof(float));
    double max_err = 0.0;
    assert_int_equal(compare("threads", out[0], g.last, n_last, ATOL, RTOL, &max_err), 0);
    free(out[0]);
    free(out[1]);
    free(emb);
    dlv_model_free(m);
    golden_free(&g);
}

static void expect_error(dlv_status got, dlv_status want, const char *needle)
{
    const char *msg = dlv_last_error();
    if (got != want || !strstr(msg, needle))
        fprintf(stderr, "want status %d mentioning '%s'; got %d: %s\n", (int)want, needle,
                (int)got, msg);
    assert_int_equal(got, want);
    assert_non_null(strstr(msg, needle));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    dlv_model *m = load_model(cases[0].ckpt);
    dlv_backend *be = dlv_model_backend(m);
    const int64_t h = dlv_model_config(m)->text.hidden_size;
    const int64_t vocab = dlv_model_config(m)->text.vocab_size;
    float emb[2 * 4 * 64];
    float last[2 * 64];
    assert_true(h <= 64);
    memset(emb, 0, sizeof emb);
    int32_t lengths[2] = {4, 0};
    expect_error(dlv_text_forward(m, be, emb, lengths, 2, 4, last, 2 * (size_t)h, NULL, 0),
                 DLV_E_INVALID_ARG, "lengths[1]");
    lengths[1] = 5;
    expect_error(dlv_text_forward(m, be, emb, lengths, 2, 4, last, 2 * (size_t)h, NULL, 0),
                 DLV_E_INVALID_ARG, "lengths[1] = 5");
    lengths[1] = 3;
    expect_error(dlv_text_forward(m, be, emb, lengths, 2, 4, last, 2 * (size_t)h - 1, NULL, 0),
                 DLV_E_BUFFER_TOO_SMALL, "last_hidden");
    expect_error(dlv_text_forward(m, be, emb, lengths, 2, 4, last, 2 * (size_t)h, last, 5),
                 DLV_E_BUFFER_TOO_SMALL, "all_hidden");
    expect_error(dlv_text_forward(m, be, NULL, lengths, 2, 4, last, 2 * (size_t)h, NULL, 0),
                 DLV_E_INVALID_ARG, "NULL");
    expect_error(dlv_text_forward(m, be, emb, lengths, 0, 4, last, 2 * (size_t)h, NULL, 0),
                 DLV_E_INVALID_ARG, "batch = 0");
    expect_error(dlv_text_forward(m, be, emb, lengths, INT64_MAX / 2, 4, last, 2 * (size_t)h,
                                  NULL, 0),
                 DLV_E_INVALID_ARG, "too large");
    expect_error(dlv_text_forward(NULL, be, emb, lengths, 2, 4, last, 2 * (size_t)h, NULL, 0),
                 DLV_E_INVALID_ARG, "NULL");
    /* And the arguments above run once corrected. */
    check_ok(dlv_text_forward(m, be, emb, lengths, 2, 4, last, 2 * (size_t)h, NULL, 0));

    const int32_t ids[3] = {1, (int32_t)vocab, 2};
    expect_error(dlv_text_embed_ids(m, be, ids, 3, emb, 3 * (size_t)h), DLV_E_INVALID_ARG,
                 "128");
    expect_error(dlv_text_embed_ids(m, be, ids, 3, emb, 3 * (size_t)h - 1),
                 DLV_E_BUFFER_TOO_SMALL, "out holds");

    /* A backend that cannot read the model's weights (another kind of
     * memory) is refused before any op runs (only its identity is read, so
     * a table with no slots suffices). */
    const dlv_backend_ops other_ops = {
        .version = DLV_BACKEND_OPS_VERSION, .size = sizeof other_ops, .name = "cuda",
    };
    dlv_backend other = {.ops = &other_ops, .device = 0};
    expect_error(dlv_text_forward(m, &other, emb, lengths, 2, 4, last, 2 * (size_t)h, NULL, 0),
                 DLV_E_INVALID_ARG, "cannot read the model's weights");
    assert_non_null(strstr(dlv_last_error(), "'cuda'"));
    expect_error(dlv_text_embed_ids(m, &other, ids, 1, emb, (size_t)h), DLV_E_INVALID_ARG,
                 "cannot read the model's weights");
    dlv_model_free(m);
}

/* config.json of the first checkpoint with text_config[key] = value. */
static dlv_status parse_with(const char *dir, const char *key, json_t *value,
                             dlv_llava_config *cfg)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    assert_non_null(root);
    assert_int_equal(json_object_set_new(json_object_get(root, "text_config"), key, value), 0);
    char *text = json_dumps(root, 0);
    assert_non_null(text);
    dlv_status st = dlv_llava_config_parse(text, strlen(text), "cfg.json", cfg);
    free(text);
    json_decref(root);
    return st;
}

static void test_unsupported_configs(void **state)
{
    (void)state;
    dlv_llava_config cfg;
    check_ok(parse_with(cases[0].ckpt, "rope_scaling", json_null(), &cfg));
    check_ok(dlv_text_check_config(&cfg, "cfg.json"));
    check_ok(parse_with(cases[0].ckpt, "rope_scaling",
                        json_pack("{s:s}", "rope_type", "default"), &cfg));
    check_ok(dlv_text_check_config(&cfg, "cfg.json"));

    check_ok(parse_with(cases[0].ckpt, "rope_scaling",
                        json_pack("{s:s, s:f}", "type", "linear", "factor", 2.0), &cfg));
    expect_error(dlv_text_check_config(&cfg, "cfg.json"), DLV_E_UNSUPPORTED,
                 "text_config.rope_scaling");
    assert_non_null(strstr(dlv_last_error(), "linear"));
    check_ok(parse_with(cases[0].ckpt, "rope_scaling",
                        json_pack("{s:s, s:f}", "rope_type", "llama3", "factor", 8.0), &cfg));
    expect_error(dlv_text_check_config(&cfg, "cfg.json"), DLV_E_UNSUPPORTED, "llama3");

    check_ok(parse_with(cases[0].ckpt, "hidden_act", json_string("gelu"), &cfg));
    expect_error(dlv_text_check_config(&cfg, "cfg.json"), DLV_E_UNSUPPORTED,
                 "text_config.hidden_act");
}

int main(int argc, char **argv)
{
    if (argc < 4 || (argc - 2) % 2 != 0 || (argc - 2) / 2 > 8) {
        fprintf(stderr, "usage: test_text_forward GOLDEN_DIR NAME CKPT_DIR [NAME CKPT_DIR ...]\n");
        return 2;
    }
    golden_dir = argv[1];
    n_cases = (argc - 2) / 2;
    struct CMUnitTest tests[2 * 8 + 3];
    static char names[2 * 8][80];
    size_t n = 0;
    for (int i = 0; i < n_cases; i++) {
        cases[i].name = argv[2 + 2 * i];
        cases[i].ckpt = argv[3 + 2 * i];
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_golden, &cases[i]);
        snprintf(names[n], sizeof names[n], "golden %s", cases[i].name);
        tests[n].name = names[n];
        n++;
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_batch_independence,
                                                                &cases[i]);
        snprintf(names[n], sizeof names[n], "batch independence %s", cases[i].name);
        tests[n].name = names[n];
        n++;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_thread_count);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_arguments);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_unsupported_configs);
    return _cmocka_run_group_tests("text_forward", tests, n, NULL, NULL);
}
