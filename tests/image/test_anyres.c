/* LlavaNextImageProcessor ("anyres") below the goldens: the config's fields,
 * defaults and bounds (each refusal names its field), select_best_resolution's
 * order of ties, the layout's invariants over random sizes up to 2^32 - 1
 * (no overflow under UBSan), the pixel limit, short buffers, and the
 * decode-and-tile entry point against the in-memory one. The pixels
 * themselves are checked against transformers in test_vision_golden.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image/anyres.h"
#include "image/image_source.h"
#include "image/preproc_config.h"

/* llava-hf/llava-v1.6-mistral-7b-hf's preprocessor_config.json. */
static const char v16[] =
    "{\"aspect_ratio_setting\": \"anyres\", \"crop_size\": {\"height\": 336, \"width\": 336},"
    " \"do_center_crop\": true, \"do_convert_rgb\": true, \"do_normalize\": true,"
    " \"do_pad\": true, \"do_rescale\": true, \"do_resize\": true,"
    " \"image_grid_pinpoints\": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],"
    " \"image_mean\": [0.48145466, 0.4578275, 0.40821073],"
    " \"image_processor_type\": \"LlavaNextImageProcessor\","
    " \"image_std\": [0.26862954, 0.26130258, 0.27577711],"
    " \"processor_class\": \"LlavaNextProcessor\", \"resample\": 3,"
    " \"rescale_factor\": 0.00392156862745098, \"size\": {\"shortest_edge\": 336}}";

static dlv_status parse(const char *json, dlv_preproc_config *p)
{
    return dlv_preproc_config_parse(json, strlen(json), "preprocessor_config.json", p);
}

/* A LlavaNext config with the given extra fields. */
static dlv_status parse_next(const char *fields, dlv_preproc_config *p)
{
    char json[4096];
    snprintf(json, sizeof json, "{\"image_processor_type\": \"LlavaNextImageProcessor\"%s%s}",
             *fields ? ", " : "", fields);
    return parse(json, p);
}

static void expect_refused(const char *fields, dlv_status want, const char *frag)
{
    dlv_preproc_config p;
    dlv_status got = parse_next(fields, &p);
    if (got != want || !strstr(dlv_last_error(), frag))
        fprintf(stderr, "for %s\n  got %d: %s\n", fields, (int)got, dlv_last_error());
    assert_int_equal(got, want);
    assert_non_null(strstr(dlv_last_error(), frag));
}

static void test_config(void **state)
{
    (void)state;
    dlv_preproc_config p;
    assert_int_equal(parse(v16, &p), DLV_OK);
    assert_string_equal(p.processor_class, "LlavaNextImageProcessor");
    assert_int_equal(p.anyres, 1);
    assert_int_equal(p.n_pinpoints, 5);
    assert_int_equal(p.pinpoints[3][0], 1008);
    assert_int_equal(p.pinpoints[3][1], 336);
    assert_int_equal(p.shortest_edge, 336);
    assert_int_equal(p.crop_height, 336);
    assert_int_equal(p.do_center_crop, 1);
    assert_int_equal(p.resample, DLV_RESAMPLE_BICUBIC);

    /* Defaults: CLIP's, the default pinpoints, a bare size is the shortest
     * edge; the default pinpoints need a crop that divides them. */
    expect_refused("", DLV_E_FORMAT, "image_grid_pinpoints");
    assert_int_equal(parse_next("\"crop_size\": 336, \"size\": 300", &p), DLV_OK);
    assert_int_equal(p.n_pinpoints, 5);
    assert_int_equal(p.pinpoints[0][0], 336);
    assert_int_equal(p.pinpoints[0][1], 672);
    assert_int_equal(p.shortest_edge, 300);
    assert_int_equal(p.crop_width, 336);
    assert_true(p.image_mean[0] == 0.48145466);
    assert_int_equal(p.do_convert_rgb, 1);
    /* null pinpoints mean the default, as in transformers. */
    assert_int_equal(parse_next("\"crop_size\": 168, \"image_grid_pinpoints\": null", &p), DLV_OK);
    assert_int_equal(p.n_pinpoints, 5);

    /* The other processors stay as they were. */
    assert_int_equal(parse("{}", &p), DLV_OK);
    assert_int_equal(p.anyres, 0);
    assert_int_equal(parse("{\"do_pad\": true}", &p), DLV_E_UNSUPPORTED);
    assert_int_equal(parse("{\"image_processor_type\": \"LlavaOnevisionImageProcessor\"}", &p),
                     DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "LlavaNextImageProcessor"));
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_refused("\"crop_size\": 28, \"image_grid_pinpoints\": []", DLV_E_FORMAT,
                   "'image_grid_pinpoints'");
    expect_refused("\"crop_size\": 28, \"image_grid_pinpoints\": \"[[28, 56]]\"", DLV_E_FORMAT,
                   "'image_grid_pinpoints'");
    expect_refused("\"crop_size\": 28, \"image_grid_pinpoints\": [[28, 56], [28]]", DLV_E_FORMAT,
                   "'image_grid_pinpoints'[1]");
    expect_refused("\"crop_size\": 28, \"image_grid_pinpoints\": [[28, 0]]", DLV_E_FORMAT,
                   "'image_grid_pinpoints'[0][1]");
    expect_refused("\"crop_size\": 28, \"image_grid_pinpoints\": [[28, 56.0]]", DLV_E_FORMAT,
                   "'image_grid_pinpoints'[0][1]");
    expect_refused("\"crop_size\": 28, \"image_grid_pinpoints\": [[-28, 56]]", DLV_E_FORMAT,
                   "'image_grid_pinpoints'[0][0]");
    expect_refused("\"crop_size\": 28, \"image_grid_pinpoints\": [[28, 56], [8204, 28]]",
                   DLV_E_FORMAT, "'image_grid_pinpoints'[1][0]");
    expect_refused("\"crop_size\": 28, \"image_grid_pinpoints\": [[28, 56], [56, 30]]",
                   DLV_E_FORMAT, "not a multiple of crop_size.height 28");
    /* The tile side is crop_size.height; the width only crops. */
    expect_refused("\"crop_size\": {\"height\": 28, \"width\": 56}, "
                   "\"image_grid_pinpoints\": [[56, 56], [56, 84]]", DLV_OK, "");
    expect_refused("\"crop_size\": 32, \"image_grid_pinpoints\": [[256, 256], [512, 256]]",
                   DLV_E_UNSUPPORTED, "128 tiles");
    char many[4096] = "\"crop_size\": 28, \"image_grid_pinpoints\": [";
    for (int i = 0; i <= DLV_MAX_PINPOINTS; i++)
        strcat(many, i ? ", [28, 28]" : "[28, 28]");
    strcat(many, "]");
    expect_refused(many, DLV_E_FORMAT, "'image_grid_pinpoints': expected a list of 1 to 64");
}

static dlv_preproc_config small_config(void)
{
    dlv_preproc_config p;
    assert_int_equal(parse_next("\"crop_size\": 28, \"size\": 28, "
                                "\"image_grid_pinpoints\": [[28, 56], [56, 28], [56, 56]]", &p),
                     DLV_OK);
    return p;
}

static void test_select(void **state)
{
    (void)state;
    dlv_preproc_config p;
    assert_int_equal(parse(v16, &p), DLV_OK);
    size_t best = 99;
    /* Wide images keep most at 336 x 1008; square ones at 672 x 672. */
    assert_int_equal(dlv_anyres_select(&p, 3000, 1000, &best), DLV_OK);
    assert_int_equal(best, 4);
    assert_int_equal(dlv_anyres_select(&p, 1000, 1000, &best), DLV_OK);
    assert_int_equal(best, 2);
    /* An image smaller than every resolution is kept whole by all of them;
     * the least waste (336 x 672 before 672 x 336: the first) wins. */
    assert_int_equal(dlv_anyres_select(&p, 10, 10, &best), DLV_OK);
    assert_int_equal(best, 0);
    /* When no resolution keeps a pixel (int() truncates to 0), the first. */
    assert_int_equal(dlv_anyres_select(&p, 1, 4000000000u, &best), DLV_OK);
    assert_int_equal(best, 0);
    assert_int_equal(dlv_anyres_select(&p, 4294967295u, 4294967295u, &best), DLV_OK);
    assert_int_equal(best, 2);
    assert_int_equal(dlv_anyres_select(&p, 0, 10, &best), DLV_E_INVALID_ARG);
    dlv_preproc_config clip;
    assert_int_equal(parse("{}", &clip), DLV_OK);
    assert_int_equal(dlv_anyres_select(&clip, 10, 10, &best), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "anyres"));
}

/* Invariants of the layout over random sizes, including extreme ones. */
static void test_layout(void **state)
{
    (void)state;
    dlv_preproc_config cfgs[2];
    assert_int_equal(parse(v16, &cfgs[0]), DLV_OK);
    cfgs[1] = small_config();
    uint64_t x = 12345;
    for (int k = 0; k < 20000; k++) {
        const dlv_preproc_config *p = &cfgs[k & 1];
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint32_t w = (uint32_t)(x >> 33), h = (uint32_t)(x >> 1);
        if (k % 3 == 0) w = w % 5000 + 1;
        if (k % 5 == 0) h = h % 5000 + 1;
        if (w == 0) w = 1;
        if (h == 0) h = 1;
        dlv_anyres_layout l;
        assert_int_equal(dlv_anyres_layout_of(p, w, h, &l), DLV_OK);
        uint32_t side = (uint32_t)p->crop_height;
        assert_true(l.resized_h >= 1 && l.resized_h <= l.target_h);
        assert_true(l.resized_w >= 1 && l.resized_w <= l.target_w);
        assert_true(l.resized_h == l.target_h || l.resized_w == l.target_w);
        assert_true(l.padded_h + 1 >= l.target_h && l.padded_h <= l.target_h);
        assert_true(l.padded_w + 1 >= l.target_w && l.padded_w <= l.target_w);
        /* Short by a pixel or not, the grid is what the model counts. */
        assert_int_equal(l.rows, l.target_h / side);
        assert_int_equal(l.cols, l.target_w / side);
        assert_int_equal(l.n_floats, (1 + (size_t)l.n_tiles) * 3 * side * side);
    }
    /* One short row of tiles: 1x100 at 28 x 56 becomes 1 pixel high. */
    dlv_anyres_layout l;
    assert_int_equal(dlv_anyres_layout_of(&cfgs[1], 100, 1, &l), DLV_OK);
    assert_int_equal(l.resized_h, 1);
    assert_int_equal(l.pad_top, 13);
    assert_int_equal(l.padded_h, 27);
    assert_int_equal(l.n_tiles, 2);

    /* A hand-made config cannot bypass the tile bound. */
    dlv_preproc_config big = cfgs[1];
    big.crop_height = 1;
    assert_int_equal(dlv_anyres_layout_of(&big, 100, 100, &l), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "tiles"));
    /* Tiles of different sizes cannot be stacked: no crop, shortest edge. */
    dlv_preproc_config nocrop = cfgs[1];
    nocrop.do_center_crop = 0;
    assert_int_equal(dlv_anyres_layout_of(&nocrop, 100, 100, &l), DLV_E_UNSUPPORTED);
    nocrop.shortest_edge = -1;
    nocrop.size_height = nocrop.size_width = 20;
    assert_int_equal(dlv_anyres_layout_of(&nocrop, 100, 100, &l), DLV_OK);
    assert_int_equal(l.tile_h, 20);
    assert_int_equal(l.base_side, 20);
}

static dlv_rgb8 pattern(uint32_t w, uint32_t h)
{
    dlv_rgb8 img;
    assert_int_equal(dlv_rgb8_alloc(&img, w, h), DLV_OK);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) img.px[i] = (uint8_t)(i * 7 + i / 5);
    return img;
}

static void test_limits_and_buffers(void **state)
{
    (void)state;
    dlv_preproc_config p;
    assert_int_equal(parse(v16, &p), DLV_OK);
    dlv_rgb8 img = pattern(50, 20), *tiles = NULL;
    dlv_anyres_layout l;
    /* The base and two tiles, 3 x 336 x 336 pixels, are over a limit of
     * 200,000 (the resized image, 672 x 269, is not). */
    float one = 0;
    assert_int_equal(dlv_anyres_layout_of(&p, 50, 20, &l), DLV_OK);
    float *out = malloc(l.n_floats * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_anyres_to_float(&p, &img, 200000, &l, out, l.n_floats),
                     DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "limit"));
    assert_int_equal(dlv_anyres_rgb8(&p, &img, 200000, &l, &tiles), DLV_E_UNSUPPORTED);
    assert_null(tiles);
    assert_int_equal(dlv_anyres_to_float(&p, &img, DLV_DEFAULT_MAX_PIXELS, &l, &one, 1),
                     DLV_E_BUFFER_TOO_SMALL);
    assert_int_equal(dlv_anyres_to_float(&p, &img, DLV_DEFAULT_MAX_PIXELS, &l, NULL, 0),
                     DLV_E_BUFFER_TOO_SMALL);
    dlv_preproc_config clip;
    assert_int_equal(parse("{}", &clip), DLV_OK);
    assert_int_equal(dlv_anyres_to_float(&clip, &img, DLV_DEFAULT_MAX_PIXELS, NULL, out,
                                         l.n_floats), DLV_E_INVALID_ARG);

    /* The decode-and-tile entry point equals the in-memory one; the plain
     * one refuses an anyres config. */
    assert_int_equal(dlv_anyres_to_float(&p, &img, DLV_DEFAULT_MAX_PIXELS, &l, out, l.n_floats),
                     DLV_OK);
    dlv_image *im = NULL;
    assert_int_equal(dlv_image_from_rgb(img.px, img.width, img.height, (size_t)img.width * 3, &im),
                     DLV_OK);
    dlv_anyres_layout l2;
    float *got = NULL;
    assert_int_equal(dlv_image_to_anyres(&p, im, NULL, &l2, &got), DLV_OK);
    assert_memory_equal(&l, &l2, sizeof l);
    assert_memory_equal(out, got, l.n_floats * sizeof *out);
    free(got);
    dlv_pixel_opts small = {0, 0, 200000}, pad = {1, 0, DLV_DEFAULT_MAX_PIXELS};
    assert_int_equal(dlv_image_to_anyres(&p, im, &small, &l2, &got), DLV_E_UNSUPPORTED);
    assert_null(got);
    assert_non_null(strstr(dlv_last_error(), "RGB image"));
    assert_int_equal(dlv_image_to_anyres(&p, im, &pad, &l2, &got), DLV_E_UNSUPPORTED);
    assert_int_equal(dlv_image_to_pixels(&p, im, NULL, out, l.n_floats), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "LlavaNextImageProcessor"));
    dlv_image_free(im);
    free(out);
    dlv_rgb8_free(&img);
}

/* 1 x N and N x 1 images, where transformers itself goes wrong (its pad()
 * takes a 1-pixel-high image for channels-first): tiles are still cut from
 * the correctly padded image, and the 8-bit tiles are those of the layout. */
static void test_thin(void **state)
{
    (void)state;
    dlv_preproc_config p = small_config();
    uint32_t sizes[][2] = {{100, 1}, {1, 100}, {500, 3}, {1, 1}, {3, 1}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        dlv_rgb8 img = pattern(sizes[k][0], sizes[k][1]), *tiles = NULL;
        dlv_anyres_layout l;
        assert_int_equal(dlv_anyres_rgb8(&p, &img, DLV_DEFAULT_MAX_PIXELS, &l, &tiles), DLV_OK);
        for (size_t t = 0; t <= l.n_tiles; t++) {
            assert_int_equal(tiles[t].width, 28);
            assert_int_equal(tiles[t].height, 28);
        }
        dlv_anyres_tiles_free(tiles, 1 + (size_t)l.n_tiles);
        dlv_rgb8_free(&img);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_limits_and_buffers),
        cmocka_unit_test(test_thin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
