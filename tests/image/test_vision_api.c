/* The public preprocessing API on tiny generated checkpoints (28 x 28
 * vision towers): shapes, the three image sources, options, and errors with
 * their messages. With --dump MODEL IMAGE OUT [--pad-square] it writes the
 * raw float32 output instead, for the CLI test to compare with its .npy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disclvlm.h"

typedef struct vstate {
    const char *clip_dir, *siglip_dir, *data_dir;
} vstate;

static char *data_path(const vstate *s, const char *name)
{
    size_t n = strlen(s->data_dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", s->data_dir, name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void test_sizes_and_sources(void **state)
{
    const vstate *s = *state;
    const char *dirs[2] = {s->clip_dir, s->siglip_dir};
    for (int k = 0; k < 2; k++) {
        dlv_model *m = NULL;
        assert_int_equal(dlv_model_load(dirs[k], NULL, &m), DLV_OK);
        size_t c = 0, h = 0, w = 0;
        assert_int_equal(dlv_model_image_size(m, &c, &h, &w), DLV_OK);
        assert_int_equal(c, 3);
        assert_int_equal(h, 28);
        assert_int_equal(w, 28);
        size_t n = c * h * w;
        float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
        assert_non_null(a);
        assert_non_null(b);

        char *path = data_path(s, "png_rgb8.png");
        dlv_image *from_file = NULL, *from_mem = NULL;
        assert_int_equal(dlv_image_from_file(path, &from_file), DLV_OK);
        size_t len;
        unsigned char *bytes = slurp(path, &len);
        assert_int_equal(dlv_image_from_memory(bytes, len, &from_mem), DLV_OK);
        free(bytes); /* the image keeps its own copy */
        assert_int_equal(dlv_preprocess_image(m, from_file, NULL, a, n), DLV_OK);
        assert_int_equal(dlv_preprocess_image(m, from_mem, NULL, b, n), DLV_OK);
        assert_memory_equal(a, b, n * sizeof *a);
        /* Normalized values lie in [(0 - mean) / std, (1 - mean) / std]. */
        for (size_t i = 0; i < n; i++) assert_true(a[i] > -2.0f && a[i] < 2.7f);

        /* pad-square changes a non-square image's result. */
        dlv_preprocess_options *o = NULL;
        assert_int_equal(dlv_preprocess_options_new(&o), DLV_OK);
        assert_int_equal(dlv_preprocess_options_set_pad_square(o, 1), DLV_OK);
        assert_int_equal(dlv_preprocess_image(m, from_file, o, b, n), DLV_OK);
        assert_true(memcmp(a, b, n * sizeof *a) != 0);

        /* Output buffer one float short. */
        assert_int_equal(dlv_preprocess_image(m, from_file, NULL, a, n - 1),
                         DLV_E_BUFFER_TOO_SMALL);
        assert_non_null(strstr(dlv_last_error(), "[3, 28, 28]"));

        /* The pixel limit, from the options. */
        assert_int_equal(dlv_preprocess_options_set_max_pixels(o, 100), DLV_OK);
        assert_int_equal(dlv_preprocess_image(m, from_file, o, a, n), DLV_E_UNSUPPORTED);
        assert_non_null(strstr(dlv_last_error(), path));
        assert_non_null(strstr(dlv_last_error(), "limit of 100"));

        /* A raw RGB source with a stride: a uniform colour stays uniform. */
        uint8_t rgb[5 * 16];
        for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)((i % 16) < 12 ? 200 : 0xEE);
        dlv_image *from_rgb = NULL;
        assert_int_equal(dlv_image_from_rgb(rgb, 4, 5, 16, &from_rgb), DLV_OK);
        assert_int_equal(dlv_preprocess_image(m, from_rgb, NULL, a, n), DLV_OK);
        for (size_t i = 1; i < n / 3; i++) assert_true(a[i] == a[0]);
        dlv_image_free(from_rgb);

        /* A broken image in memory. */
        static const char junk[] = "\x89PNG\r\n\x1a\nrubbish";
        dlv_image *bad = NULL;
        assert_int_equal(dlv_image_from_memory(junk, sizeof junk - 1, &bad), DLV_OK);
        assert_int_equal(dlv_preprocess_image(m, bad, NULL, a, n), DLV_E_FORMAT);
        assert_non_null(strstr(dlv_last_error(), "image in memory"));
        dlv_image_free(bad);

        dlv_preprocess_options_free(o);
        dlv_image_free(from_file);
        dlv_image_free(from_mem);
        free(path);
        free(a);
        free(b);
        dlv_model_free(m);
    }
}

static void test_exif_option(void **state)
{
    const vstate *s = *state;
    dlv_model *m = NULL;
    assert_int_equal(dlv_model_load(s->siglip_dir, NULL, &m), DLV_OK);
    size_t n = 3 * 28 * 28;
    float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    char *path = data_path(s, "jpeg_exif6.jpg");
    dlv_image *im = NULL;
    assert_int_equal(dlv_image_from_file(path, &im), DLV_OK);
    dlv_preprocess_options *o = NULL;
    assert_int_equal(dlv_preprocess_options_new(&o), DLV_OK);
    assert_int_equal(dlv_preprocess_image(m, im, o, a, n), DLV_OK);
    assert_int_equal(dlv_preprocess_options_set_exif_rotate(o, 1), DLV_OK);
    assert_int_equal(dlv_preprocess_image(m, im, o, b, n), DLV_OK);
    assert_true(memcmp(a, b, n * sizeof *a) != 0);
    dlv_preprocess_options_free(o);
    dlv_image_free(im);
    free(path);
    free(a);
    free(b);
    dlv_model_free(m);
}

static void test_bad_arguments(void **state)
{
    const vstate *s = *state;
    dlv_model *m = NULL;
    assert_int_equal(dlv_model_load(s->clip_dir, NULL, &m), DLV_OK);
    float out[3];
    size_t c, h, w;
    assert_int_equal(dlv_model_image_size(NULL, &c, &h, &w), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_model_image_size(m, NULL, &h, &w), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_preprocess_image(m, NULL, NULL, out, 3), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "image"));
    assert_int_equal(dlv_preprocess_options_new(NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_preprocess_options_set_pad_square(NULL, 1), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_preprocess_options_set_exif_rotate(NULL, 1), DLV_E_INVALID_ARG);
    dlv_preprocess_options *o = NULL;
    assert_int_equal(dlv_preprocess_options_new(&o), DLV_OK);
    assert_int_equal(dlv_preprocess_options_set_max_pixels(o, 0), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "max_pixels"));
    dlv_preprocess_options_free(o);
    dlv_preprocess_options_free(NULL);
    dlv_model_free(m);
}

/* --dump MODEL IMAGE OUT [--pad-square] */
static int dump(int argc, char **argv)
{
    dlv_model *m = NULL;
    dlv_image *im = NULL;
    dlv_preprocess_options *o = NULL;
    size_t c, h, w;
    if (dlv_model_load(argv[2], NULL, &m) != DLV_OK || dlv_model_image_size(m, &c, &h, &w) ||
        dlv_image_from_file(argv[3], &im) || dlv_preprocess_options_new(&o) ||
        dlv_preprocess_options_set_pad_square(o, argc > 5 && !strcmp(argv[5], "--pad-square"))) {
        fprintf(stderr, "dump: %s\n", dlv_last_error());
        return 1;
    }
    size_t n = c * h * w;
    float *x = malloc(n * sizeof *x);
    int rc = 1;
    if (x && dlv_preprocess_image(m, im, o, x, n) == DLV_OK) {
        FILE *f = fopen(argv[4], "wb");
        rc = !(f && fwrite(x, sizeof *x, n, f) == n);
        if (f) fclose(f);
    } else {
        fprintf(stderr, "dump: %s\n", dlv_last_error());
    }
    free(x);
    dlv_preprocess_options_free(o);
    dlv_image_free(im);
    dlv_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--dump") == 0) return dump(argc, argv);
    if (argc != 3) {
        fprintf(stderr, "usage: test_vision_api CLIP_DIR SIGLIP_DIR\n");
        return 2;
    }
    const char *src = getenv("DLV_SOURCE_ROOT");
    char data[4096];
    snprintf(data, sizeof data, "%s/tests/image/data", src ? src : ".");
    vstate s = {argv[1], argv[2], data};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_sizes_and_sources, &s),
        cmocka_unit_test_prestate(test_exif_option, &s),
        cmocka_unit_test_prestate(test_bad_arguments, &s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
