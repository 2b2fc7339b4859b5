/* Public API behaviour that needs no model: versions, statuses, the
 * thread-local last error, option objects, image sources, batches, and the
 * argument checks of the entry points. Links the shared library, so it also
 * proves these symbols are exported. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disclvlm.h"

#define assert_error_mentions(needle) \
    assert_non_null(strstr(dlv_last_error(), (needle)))

static void test_version(void **state)
{
    (void)state;
    assert_string_equal(dlv_version(), DLV_VERSION_STRING);
    int major = -1, minor = -1, patch = -1;
    dlv_version_numbers(&major, &minor, &patch);
    assert_int_equal(major, DLV_VERSION_MAJOR);
    assert_int_equal(minor, DLV_VERSION_MINOR);
    assert_int_equal(patch, DLV_VERSION_PATCH);
    dlv_version_numbers(NULL, NULL, NULL); /* NULLs allowed */
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", major, minor, patch);
    assert_string_equal(buf, dlv_version());
    assert_non_null(strstr(dlv_build_features(), "cpu"));
}

static void test_status_strings(void **state)
{
    (void)state;
    /* Every code has its own non-empty name; unknown values are named so. */
    const char *seen[DLV_E_BUFFER_TOO_SMALL + 1];
    for (int s = DLV_OK; s <= DLV_E_BUFFER_TOO_SMALL; s++) {
        seen[s] = dlv_status_str((dlv_status)s);
        assert_true(strlen(seen[s]) > 0);
        assert_string_not_equal(seen[s], "unknown status");
        for (int t = 0; t < s; t++) assert_string_not_equal(seen[s], seen[t]);
    }
    assert_string_equal(dlv_status_str((dlv_status)9999), "unknown status");
    /* Codes are part of the ABI: their values never change. */
    assert_int_equal(DLV_E_NOT_IMPLEMENTED, 7);
    assert_int_equal(DLV_E_BUFFER_TOO_SMALL, 10);
}

static void *fail_in_thread(void *arg)
{
    (void)arg;
    dlv_model_options *o = NULL;
    if (dlv_model_options_new(&o) != DLV_OK) return NULL;
    (void)dlv_model_options_set_backend(o, "from-another-thread");
    dlv_model_options_free(o);
    return strstr(dlv_last_error(), "from-another-thread") ? (void *)1 : NULL;
}

static void test_last_error_is_thread_local(void **state)
{
    (void)state;
    dlv_clear_error();
    assert_string_equal(dlv_last_error(), "");
    assert_int_equal(dlv_model_load(NULL, NULL, NULL), DLV_E_INVALID_ARG);
    assert_true(strlen(dlv_last_error()) > 0);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", dlv_last_error());

    pthread_t t;
    void *ret = NULL;
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_ptr_equal(ret, (void *)1);          /* the thread saw its own error */
    assert_string_equal(dlv_last_error(), mine); /* ours is untouched */
    dlv_clear_error();
    assert_string_equal(dlv_last_error(), "");
}

static void test_model_options(void **state)
{
    (void)state;
    dlv_model_options *o = NULL;
    assert_int_equal(dlv_model_options_new(NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_options_new(&o), DLV_OK);
    assert_int_equal(dlv_model_options_set_backend(o, "cpu"), DLV_OK);
    assert_int_equal(dlv_model_options_set_backend(o, "auto"), DLV_OK);
    assert_int_equal(dlv_model_options_set_backend(o, "cuda"), DLV_OK);
    assert_int_equal(dlv_model_options_set_backend(o, "tpu"), DLV_E_INVALID_ARG);
    assert_error_mentions("'tpu'");
    assert_int_equal(dlv_model_options_set_backend(o, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_options_set_backend(NULL, "cpu"), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_options_set_device(o, 3), DLV_OK);
    assert_int_equal(dlv_model_options_set_device(o, -1), DLV_E_INVALID_ARG);
    dlv_model_options_free(o);
    dlv_model_options_free(NULL);

    dlv_session_options *so = NULL;
    assert_int_equal(dlv_session_options_new(&so), DLV_OK);
    assert_int_equal(dlv_session_options_set_threads(so, 0), DLV_OK);
    assert_int_equal(dlv_session_options_set_threads(so, 8), DLV_OK);
    assert_int_equal(dlv_session_options_set_threads(so, -2), DLV_E_INVALID_ARG);
    assert_error_mentions("-2");
    dlv_session_options_free(so);
    dlv_session_options_free(NULL);
}

static void test_image_sources(void **state)
{
    (void)state;
    dlv_image *im = NULL;
    uint8_t px[2 * 3 * 3 + 4] = {0};

    assert_int_equal(dlv_image_from_rgb(px, 3, 2, 9, &im), DLV_OK);
    dlv_image_free(im);
    assert_int_equal(dlv_image_from_rgb(px, 3, 2, 11, &im), DLV_OK); /* padded rows */
    dlv_image_free(im);
    im = NULL;
    assert_int_equal(dlv_image_from_rgb(px, 3, 2, 8, &im), DLV_E_INVALID_ARG);
    assert_error_mentions("stride");
    assert_null(im);
    assert_int_equal(dlv_image_from_rgb(px, 0, 2, 9, &im), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_image_from_rgb(NULL, 3, 2, 9, &im), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_image_from_rgb(px, 3, 2, 9, NULL), DLV_E_INVALID_ARG);

    assert_int_equal(dlv_image_from_memory(px, sizeof px, &im), DLV_OK);
    dlv_image_free(im);
    assert_int_equal(dlv_image_from_memory(px, 0, &im), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_image_from_memory(NULL, 4, &im), DLV_E_INVALID_ARG);

    assert_int_equal(dlv_image_from_file("/nonexistent/dir/cat.png", &im), DLV_E_IO);
    assert_error_mentions("/nonexistent/dir/cat.png");
    assert_int_equal(dlv_image_from_file("", &im), DLV_E_INVALID_ARG);
    dlv_image_free(NULL);
}

static void test_batch(void **state)
{
    (void)state;
    dlv_batch *b = NULL;
    dlv_image *im = NULL;
    uint8_t px[3] = {1, 2, 3};
    assert_int_equal(dlv_image_from_rgb(px, 1, 1, 3, &im), DLV_OK);
    assert_int_equal(dlv_batch_new(&b), DLV_OK);
    for (int i = 0; i < 40; i++) /* past the first growth */
        assert_int_equal(dlv_batch_add(b, im, "a cat", i % 2 ? "a long caption" : NULL), DLV_OK);
    assert_int_equal(dlv_batch_add(b, im, NULL, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_batch_add(b, NULL, "x", NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_batch_add(NULL, im, "x", NULL), DLV_E_INVALID_ARG);
    dlv_batch_free(b);
    dlv_batch_free(NULL);
    dlv_image_free(im);
}

static void test_null_handles(void **state)
{
    (void)state;
    float out[4];
    size_t dim = 0;
    const char *texts[] = {"a"};
    dlv_model *m = (dlv_model *)0; /* never dereferenced: calls must check */
    dlv_session *s = NULL;

    assert_int_equal(dlv_model_load("/nonexistent-model-dir", NULL, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_embed_dim(NULL, &dim), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_describe(NULL, NULL, 0, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_session_new(m, NULL, &s), DLV_E_INVALID_ARG);
    assert_null(s);
    assert_int_equal(dlv_session_new(m, NULL, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_session_cancel(NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_encode_text(NULL, texts, 1, out, 4), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_encode_images(NULL, NULL, 1, out, 4), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_encode_image_file(NULL, "x.png", out, 4), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_score(NULL, out, 1, out, 1, 4, out, 4), DLV_E_INVALID_ARG);
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;
    assert_int_equal(st.struct_size, sizeof(dlv_train_stats));
    assert_int_equal(dlv_train_step(NULL, NULL, &st), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_adapter_load(NULL, "dir"), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_adapter_save(NULL, "dir"), DLV_E_INVALID_ARG);
    dlv_session_free(NULL);
    dlv_model_free(NULL);
}

static void test_model_load_missing_dir(void **state)
{
    (void)state;
    dlv_model *m = (dlv_model *)&m; /* must be reset to NULL on failure */
    dlv_status st = dlv_model_load("/nonexistent-model-dir", NULL, &m);
    assert_int_not_equal(st, DLV_OK);
    assert_null(m);
    assert_error_mentions("/nonexistent-model-dir");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_last_error_is_thread_local),
        cmocka_unit_test(test_model_options),
        cmocka_unit_test(test_image_sources),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_null_handles),
        cmocka_unit_test(test_model_load_missing_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
