/* dlv_model_options_set_weight_dtype: weights converted once at load.
 *
 *   test_weight_dtype IMAGES_DIR F32_MODEL_DIR BF16_MODEL_DIR
 *
 * The two directories are the same tiny LLaVA (tests/gen_tiny_checkpoint.py,
 * --with-tokenizer) stored in f32 and in bf16; the generator rounds the bf16
 * copy to nearest even from the f32 values, as torch's .to() does. So:
 *  - the f32 checkpoint held as bf16 holds exactly the bf16 checkpoint's
 *    weights: image and text embeddings bit-identical to it;
 *  - the bf16 checkpoint held as f32 computes what f32 compute on bf16
 *    weights computes (each weight widens exactly), only with the widening
 *    done once: equal within the embedding goldens' tolerance (the GEMMs may
 *    be blocked differently);
 *  - f16 is close to f32 (cosine >= 0.9999) and not bit-equal;
 *  - "auto" holds each tensor as stored; dlv_model_describe names the held
 *    dtype ("weight_dtype"), null for auto;
 *  - unknown names and NULL are DLV_E_INVALID_ARG naming the value.
 * Runs on DLV_TEST_BACKEND (cpu, and sim from tests/meson.build). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/test_backend.h"
#include "disclvlm.h"

#define N_IMAGES 2
#define N_TEXTS 2
/* The embedding goldens' tolerance (test_embed.c). */
#define ATOL 1e-5
#define RTOL 1e-4

static const char *images_dir, *f32_dir, *bf16_dir;
static const char *const texts[N_TEXTS] = {"a red square", "two dogs on the grass"};

/* Embeddings of N_IMAGES images then N_TEXTS texts from dir held as dtype
 * (NULL: the default options). *dim receives the width; the caller frees. */
static float *embed_all(const char *dir, const char *dtype, size_t *dim, char *describe,
                        size_t describe_len)
{
    dlv_model_options *o = NULL;
    dlv_model *m = NULL;
    dlv_session *s = NULL;
    assert_int_equal(dlv_model_options_new(&o), DLV_OK);
    assert_int_equal(dlv_model_options_set_backend(o, test_backend_name()), DLV_OK);
    if (dtype) assert_int_equal(dlv_model_options_set_weight_dtype(o, dtype), DLV_OK);
    if (dlv_model_load(dir, o, &m) != DLV_OK) fail_msg("load %s: %s", dir, dlv_last_error());
    dlv_model_options_free(o);
    assert_int_equal(dlv_model_embed_dim(m, dim), DLV_OK);
    if (describe) assert_int_equal(dlv_model_describe(m, describe, describe_len, NULL), DLV_OK);
    assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);

    float *out = calloc((N_IMAGES + N_TEXTS) * *dim, sizeof *out);
    assert_non_null(out);
    dlv_image *im[N_IMAGES] = {0};
    for (int i = 0; i < N_IMAGES; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/img%d.png", images_dir, i);
        assert_int_equal(dlv_image_from_file(path, &im[i]), DLV_OK);
    }
    if (dlv_encode_images(s, (const dlv_image *const *)im, N_IMAGES, out,
                          N_IMAGES * *dim) != DLV_OK)
        fail_msg("encode images: %s", dlv_last_error());
    if (dlv_encode_text(s, texts, N_TEXTS, out + N_IMAGES * *dim, N_TEXTS * *dim) != DLV_OK)
        fail_msg("encode text: %s", dlv_last_error());
    for (int i = 0; i < N_IMAGES; i++) dlv_image_free(im[i]);
    dlv_session_free(s);
    dlv_model_free(m);
    return out;
}

static void test_f32_held_as_bf16_is_the_bf16_checkpoint(void **state)
{
    (void)state;
    size_t d1, d2;
    float *conv = embed_all(f32_dir, "bf16", &d1, NULL, 0);
    float *ref = embed_all(bf16_dir, NULL, &d2, NULL, 0);
    assert_int_equal(d1, d2);
    assert_memory_equal(conv, ref, (N_IMAGES + N_TEXTS) * d1 * sizeof *conv);
    /* and it is not the f32 checkpoint's result */
    float *f32 = embed_all(f32_dir, "auto", &d2, NULL, 0);
    assert_true(memcmp(conv, f32, (N_IMAGES + N_TEXTS) * d1 * sizeof *conv) != 0);
    free(conv);
    free(ref);
    free(f32);
}

static void test_bf16_held_as_f32_matches_widening(void **state)
{
    (void)state;
    size_t dim, d2;
    char desc[16384];
    float *conv = embed_all(bf16_dir, "f32", &dim, desc, sizeof desc);
    assert_non_null(strstr(desc, "\"weight_dtype\": \"F32\""));
    float *ref = embed_all(bf16_dir, NULL, &d2, desc, sizeof desc);
    assert_non_null(strstr(desc, "\"weight_dtype\": null"));
    for (size_t i = 0; i < (N_IMAGES + N_TEXTS) * dim; i++)
        if (fabs((double)conv[i] - (double)ref[i]) > ATOL + RTOL * fabs((double)ref[i]))
            fail_msg("element %zu: %.8g held as f32, %.8g widened per call", i, (double)conv[i],
                     (double)ref[i]);
    free(conv);
    free(ref);
}

static void test_f16_close_to_f32(void **state)
{
    (void)state;
    size_t dim, d2;
    float *h = embed_all(f32_dir, "f16", &dim, NULL, 0);
    float *f = embed_all(f32_dir, NULL, &d2, NULL, 0);
    for (int r = 0; r < N_IMAGES + N_TEXTS; r++) {
        double dot = 0;
        for (size_t i = 0; i < dim; i++) dot += (double)h[r * dim + i] * (double)f[r * dim + i];
        if (dot < 0.9999) fail_msg("row %d: cosine %.6f with f32", r, dot);
    }
    assert_true(memcmp(h, f, (N_IMAGES + N_TEXTS) * dim * sizeof *h) != 0);
    free(h);
    free(f);
}

static void test_bad_names(void **state)
{
    (void)state;
    dlv_model_options *o = NULL;
    assert_int_equal(dlv_model_options_new(&o), DLV_OK);
    assert_int_equal(dlv_model_options_set_weight_dtype(o, "f8"), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "'f8'"));
    assert_int_equal(dlv_model_options_set_weight_dtype(o, "F32"), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_options_set_weight_dtype(o, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_options_set_weight_dtype(NULL, "f32"), DLV_E_INVALID_ARG);
    dlv_model_options_free(o);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test_weight_dtype IMAGES_DIR F32_MODEL_DIR BF16_MODEL_DIR\n");
        return 2;
    }
    images_dir = argv[1];
    f32_dir = argv[2];
    bf16_dir = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_held_as_bf16_is_the_bf16_checkpoint),
        cmocka_unit_test(test_bf16_held_as_f32_matches_widening),
        cmocka_unit_test(test_f16_close_to_f32),
        cmocka_unit_test(test_bad_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
