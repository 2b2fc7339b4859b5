/* Sessions on a tiny generated checkpoint (argv[1]): cosine scores through
 * the backend, and the entry points that this version declares but does not
 * implement yet, which must say so instead of returning numbers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disclvlm.h"

static const char *model_dir;

typedef struct fixture {
    dlv_model *model;
    dlv_session *session;
    size_t dim;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (dlv_model_load(model_dir, NULL, &f->model) != DLV_OK ||
        dlv_model_embed_dim(f->model, &f->dim) != DLV_OK ||
        dlv_session_new(f->model, NULL, &f->session) != DLV_OK) {
        fprintf(stderr, "setup: %s\n", dlv_last_error());
        dlv_model_free(f->model);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    dlv_session_free(f->session);
    dlv_model_free(f->model);
    free(f);
    return 0;
}

static double ref_cos(const float *a, const float *b, size_t dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < dim; i++) {
        ab += (double)a[i] * (double)b[i];
        aa += (double)a[i] * (double)a[i];
        bb += (double)b[i] * (double)b[i];
    }
    double na = fmax(sqrt(aa), 1e-12), nb = fmax(sqrt(bb), 1e-12);
    return ab / (na * nb);
}

static void test_score_matches_reference(void **state)
{
    fixture *f = *state;
    enum { NI = 3, NT = 5, D = 37 };
    float img[NI * D], txt[NT * D], out[NI * NT];
    uint32_t x = 12345;
    for (int i = 0; i < NI * D; i++) { x = x * 1664525u + 1013904223u; img[i] = (float)(x >> 8) / 16777216.0f - 0.5f; }
    for (int i = 0; i < NT * D; i++) { x = x * 1664525u + 1013904223u; txt[i] = (float)(x >> 8) / 16777216.0f - 0.5f; }
    memset(txt + 2 * D, 0, D * sizeof(float)); /* an all-zero row scores 0 */
    memcpy(txt + 4 * D, img + 1 * D, D * sizeof(float)); /* a copy scores 1 */
    for (int j = 0; j < D; j++) txt[4 * D + j] *= 3.0f;

    assert_int_equal(dlv_score(f->session, img, NI, txt, NT, D, out, NI * NT), DLV_OK);
    for (int i = 0; i < NI; i++)
        for (int j = 0; j < NT; j++) {
            double want = ref_cos(img + i * D, txt + j * D, D);
            /* f32 GEMM over 37 terms of unit vectors: 1e-6 is ample. */
            assert_true(fabs((double)out[i * NT + j] - want) <= 1e-6);
        }
    assert_true(fabs((double)out[1 * NT + 4] - 1.0) <= 1e-6);
    assert_true(out[0 * NT + 2] == 0.0f);
}

static void test_score_errors(void **state)
{
    fixture *f = *state;
    float a[4] = {1, 2, 3, 4}, out[4];
    assert_int_equal(dlv_score(f->session, a, 2, a, 2, 2, out, 3), DLV_E_BUFFER_TOO_SMALL);
    assert_int_equal(dlv_score(f->session, a, 0, a, 2, 2, out, 4), DLV_E_INVALID_ARG);
    a[3] = NAN;
    assert_int_equal(dlv_score(f->session, a, 2, a, 2, 2, out, 4), DLV_E_NUMERIC);
    assert_non_null(strstr(dlv_last_error(), "img[1][1]"));
}

/* The fixture's model has no tokenizer: texts cannot be tokenized and the
 * default prompts cannot be made, which must be said, not guessed. */
static void test_needs_tokenizer(void **state)
{
    fixture *f = *state;
    size_t n = f->dim;
    float *out = calloc(2 * n, sizeof(float));
    assert_non_null(out);
    const char *texts[] = {"a dog", "a cat"};
    assert_int_equal(dlv_encode_text(f->session, texts, 2, out, 2 * n), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "dlv_encode_text"));
    assert_non_null(strstr(dlv_last_error(), "no tokenizer"));
    /* Size checks come first: a short buffer is reported as such. */
    assert_int_equal(dlv_encode_text(f->session, texts, 2, out, 2 * n - 1), DLV_E_BUFFER_TOO_SMALL);
    uint8_t px[3] = {0};
    assert_int_equal(dlv_encode_image_rgb(f->session, px, 1, 1, 3, out, n), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "prompts.json"));
    dlv_image *im = NULL;
    assert_int_equal(dlv_image_from_rgb(px, 1, 1, 3, &im), DLV_OK);
    const dlv_image *ims[] = {im};
    assert_int_equal(dlv_encode_images(f->session, ims, 1, out, n), DLV_E_UNSUPPORTED);
    dlv_batch *b = NULL;
    assert_int_equal(dlv_batch_new(&b), DLV_OK);
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;
    assert_int_equal(dlv_train_step(f->session, b, &st), DLV_E_INVALID_ARG); /* empty */
    assert_int_equal(dlv_batch_add(b, im, "a", NULL), DLV_OK);
    /* Training needs the prompts, hence the tokenizer: said, not guessed. */
    assert_int_equal(dlv_train_step(f->session, b, &st), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "no tokenizer"));
    assert_non_null(strstr(dlv_last_error(), "prompts.json"));
    dlv_train_stats unset;
    memset(&unset, 0, sizeof unset);
    assert_int_equal(dlv_train_step(f->session, b, &unset), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "struct_size"));
    assert_int_equal(dlv_adapter_save(f->session, "/tmp/never"), DLV_E_UNSUPPORTED);
    dlv_batch_free(b);
    dlv_image_free(im);
    free(out);
}

static void test_cancel(void **state)
{
    fixture *f = *state;
    assert_int_equal(dlv_session_cancel(f->session), DLV_OK);
}

static void test_threads_option(void **state)
{
    fixture *f = *state;
    dlv_session_options *o = NULL;
    dlv_session *s = NULL;
    assert_int_equal(dlv_session_options_new(&o), DLV_OK);
    assert_int_equal(dlv_session_options_set_threads(o, 1), DLV_OK);
    assert_int_equal(dlv_session_new(f->model, o, &s), DLV_OK);
    dlv_session_options_free(o);
    float a[2] = {1, 0}, b[2] = {0, 1}, out[1] = {5};
    assert_int_equal(dlv_score(s, a, 1, b, 1, 2, out, 1), DLV_OK);
    assert_true(out[0] == 0.0f);
    dlv_session_free(s);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_session MODEL_DIR\n");
        return 2;
    }
    model_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_matches_reference),
        cmocka_unit_test(test_score_errors),
        cmocka_unit_test(test_needs_tokenizer),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_threads_option),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
