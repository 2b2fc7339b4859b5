/* Qwen2VLImageProcessor (image/qwen2vl.h) against goldens from the real
 * processor (tests/reference/qwen2vl_reference.py,
 * tests/image/golden/qwen2vl/): the grid and the refusals of every case,
 * the 8-bit resized image (bit-exact, SHA-256, and the PNG where there is
 * one), and the patches (bit-identical to HF's pixel_values where float
 * arithmetic is IEEE single; HF's samples exactly, its sum within 1e-6 per
 * value); then the config parser's defaults and bounds, and the refusals of
 * the [3, H, W] pipeline, of bad arguments and of sizes over the limits. */
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"
#include "core/fs.h"
#include "image/decode.h"
#include "image/image_source.h"
#include "image/preprocess.h"
#include "image/qwen2vl.h"

static char golden_dir[4096], data_dir[4096];

/* Mirrors gen_pattern in images_reference.py. */
static void gen_pattern(uint32_t w, uint32_t h, dlv_rgb8 *out)
{
    assert_int_equal(dlv_rgb8_alloc(out, w, h), DLV_OK);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = out->px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)((x * x + 3 * y) % 256);
            p[1] = (uint8_t)((5 * x + y * y) % 256);
            p[2] = (uint8_t)((x * y + 7 * x + 11 * y) % 256);
        }
}

static dlv_image *open_input(const char *id)
{
    unsigned w, h;
    dlv_image *im = NULL;
    if (sscanf(id, "gen:%u:%u", &w, &h) == 2) {
        dlv_rgb8 raw;
        gen_pattern(w, h, &raw);
        assert_int_equal(dlv_image_from_rgb(raw.px, w, h, (size_t)w * 3, &im), DLV_OK);
        dlv_rgb8_free(&raw);
    } else {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", data_dir, id + strlen("data/"));
        assert_int_equal(dlv_image_from_file(path, &im), DLV_OK);
    }
    return im;
}

static int sha_equal(const void *data, size_t n, const char *want)
{
    char hex[65];
    dlv_sha256_hex(data, n, hex);
    return strcmp(hex, want) == 0;
}

static int64_t jint(const json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

/* Off-by-one / more counts against the golden PNG, for the message. */
static void diff_golden(const char *name, const dlv_rgb8 *got)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/qwen2vl/%s", golden_dir, name);
    char *data = NULL;
    size_t len = 0;
    dlv_rgb8 g = {NULL, 0, 0};
    int orientation;
    if (dlv_read_file(path, (size_t)16 << 20, &data, &len) == DLV_OK &&
        dlv_decode_png((const unsigned char *)data, len, path, DLV_DEFAULT_MAX_PIXELS, &g,
                       &orientation) == DLV_OK &&
        g.width == got->width && g.height == got->height) {
        size_t n = (size_t)g.width * g.height * 3, off1 = 0, more = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)g.px[i] - (int)got->px[i]);
            off1 += d == 1;
            more += d > 1;
        }
        printf("  vs %s: %zu values off by 1, %zu by more (of %zu)\n", name, off1, more, n);
    }
    free(data);
    dlv_rgb8_free(&g);
}

/* The patches of one accepted case; returns 1 when they match. */
static int check_patches(const dlv_preproc_config *cfg, const json_t *c, const float *px,
                         size_t n, const char *what)
{
    size_t rows = (size_t)jint(c, "rows"), dim = (size_t)jint(c, "dim");
    if (n != rows * dim || dim != dlv_qwen2vl_patch_dim(cfg)) {
        printf("%s: %zu floats, expected %zu x %zu\n", what, n, rows, dim);
        return 0;
    }
    int ok = 1;
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)px[i];
    double hf_sum = json_real_value(json_object_get(c, "hf_sum"));
    if (fabs(sum - hf_sum) > 1e-6 * (double)n) {
        printf("%s: sum %.9g, HF %.9g\n", what, sum, hf_sum);
        ok = 0;
    }
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(c, "hf_samples"), i, s) {
        size_t r = (size_t)json_integer_value(json_array_get(s, 0));
        size_t k = (size_t)json_integer_value(json_array_get(s, 1));
        double want = json_real_value(json_array_get(s, 2));
        if ((double)px[r * dim + k] != want) {
            printf("%s: patch %zu [%zu] = %.9g, HF %.9g\n", what, r, k, (double)px[r * dim + k],
                   want);
            ok = 0;
        }
    }
#if FLT_EVAL_METHOD == 0
    unsigned char *le = malloc(n * 4);
    assert_non_null(le);
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &px[k], 4);
        for (int b = 0; b < 4; b++) le[4 * k + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    if (!sha_equal(le, n * 4, json_string_value(json_object_get(c, "hf_sha256")))) {
        printf("%s: patches are not bit-identical to HF's pixel_values\n", what);
        ok = 0;
    }
    free(le);
#endif
    return ok;
}

static int run_case(const json_t *configs, const json_t *c, int *refused)
{
    const char *id = json_string_value(json_object_get(c, "input"));
    const char *cname = json_string_value(json_object_get(c, "config"));
    const char *cjson = json_string_value(json_object_get(configs, cname));
    char what[256];
    snprintf(what, sizeof what, "%s %s", id, cname);
    dlv_preproc_config cfg;
    assert_int_equal(dlv_preproc_config_parse(cjson, strlen(cjson), cname, &cfg), DLV_OK);
    assert_true(cfg.qwen2vl.enabled);
    uint32_t w = (uint32_t)jint(c, "width"), h = (uint32_t)jint(c, "height");
    int hf_refuses = json_is_string(json_object_get(c, "error"));
    *refused = hf_refuses;

    dlv_qwen2vl_grid g, g2;
    dlv_status st = dlv_qwen2vl_grid_for(&cfg, w, h, &g);
    dlv_image *im = open_input(id);
    float *px = NULL;
    size_t n = 0;
    dlv_status st2 = dlv_image_to_qwen2vl_patches(&cfg, im, NULL, &g2, &px, &n);
    int ok = 1;
    if (hf_refuses) {
        ok = st == DLV_E_UNSUPPORTED && st2 == DLV_E_UNSUPPORTED && !px && n == 0;
        printf("%s: refused (HF: %.60s; here: %s)\n", what,
               json_string_value(json_object_get(c, "error")), dlv_last_error());
        if (!ok) printf("%s: HF refuses it, here %d / %d\n", what, (int)st, (int)st2);
        dlv_image_free(im);
        free(px);
        return ok;
    }
    if (st != DLV_OK || st2 != DLV_OK) {
        printf("%s: %s\n", what, dlv_last_error());
        dlv_image_free(im);
        free(px);
        return 0;
    }
    const json_t *grid = json_object_get(c, "grid");
    uint32_t want[3];
    for (size_t k = 0; k < 3; k++) want[k] = (uint32_t)json_integer_value(json_array_get(grid, k));
    if (g.t != want[0] || g.h != want[1] || g.w != want[2] || memcmp(&g, &g2, sizeof g) != 0 ||
        g.resized_h != (uint32_t)jint(c, "resized_height") ||
        g.resized_w != (uint32_t)jint(c, "resized_width")) {
        printf("%s: grid %u %u %u (%ux%u), HF %u %u %u\n", what, (unsigned)g.t, (unsigned)g.h,
               (unsigned)g.w, (unsigned)g.resized_w, (unsigned)g.resized_h, (unsigned)want[0],
               (unsigned)want[1], (unsigned)want[2]);
        ok = 0;
    }
    size_t m = (size_t)cfg.qwen2vl.merge_size;
    assert_int_equal(dlv_qwen2vl_tokens(&cfg, &g), (size_t)g.t * (g.h / m) * (g.w / m));
    if (ok) ok = check_patches(&cfg, c, px, n, what);

    /* The 8-bit image before rescaling. */
    dlv_rgb8 rgb, resized;
    dlv_decode_opts dopts = {DLV_DEFAULT_MAX_PIXELS, 0};
    assert_int_equal(dlv_image_decode(im, &dopts, &rgb), DLV_OK);
    assert_int_equal(dlv_qwen2vl_resize_rgb8(&cfg, &rgb, DLV_DEFAULT_MAX_PIXELS, &resized, &g2),
                     DLV_OK);
    if (!sha_equal(resized.px, (size_t)resized.width * resized.height * 3,
                   json_string_value(json_object_get(c, "sha256")))) {
        printf("%s: resized image differs from HF's\n", what);
        const char *gname = json_string_value(json_object_get(c, "golden"));
        if (gname) diff_golden(gname, &resized);
        ok = 0;
    }
    /* A buffer one float short is refused. */
    assert_int_equal(dlv_qwen2vl_patchify(&cfg, &resized, px, n - 1), DLV_E_BUFFER_TOO_SMALL);
    dlv_rgb8_free(&rgb);
    dlv_rgb8_free(&resized);
    dlv_image_free(im);
    free(px);
    return ok;
}

static void test_golden(void **state)
{
    (void)state;
    char path[8192];
    snprintf(path, sizeof path, "%s/qwen2vl/manifest.json", golden_dir);
    json_error_t err;
    json_t *man = json_load_file(path, 0, &err);
    if (!man) fprintf(stderr, "%s: %s\n", path, err.text);
    assert_non_null(man);
    const json_t *configs = json_object_get(man, "configs");
    size_t i, n_ok = 0, n_refused = 0, n_bad = 0;
    const json_t *c;
    json_array_foreach(json_object_get(man, "cases"), i, c) {
        int refused = 0;
        if (run_case(configs, c, &refused)) {
            n_ok++;
            n_refused += (size_t)refused;
        } else {
            n_bad++;
        }
    }
    printf("qwen2vl: %zu cases as HF (%zu refused as HF refuses them), %zu failed\n", n_ok,
           n_refused, n_bad);
    json_decref(man);
    assert_int_equal(n_bad, 0);
    assert_true(n_ok >= 50 && n_refused >= 20 && n_ok - n_refused >= 30);
}

static dlv_status parse(const char *json, dlv_preproc_config *p)
{
    return dlv_preproc_config_parse(json, strlen(json), "preprocessor_config.json", p);
}

#define QWEN "\"image_processor_type\": \"Qwen2VLImageProcessor\""

static void expect_error(const char *json, dlv_status want, const char *frag)
{
    dlv_preproc_config p;
    dlv_status st = parse(json, &p);
    if (st != want || !strstr(dlv_last_error(), frag))
        printf("for %s\n  got %d: %s\n", json, (int)st, dlv_last_error());
    assert_int_equal(st, want);
    assert_non_null(strstr(dlv_last_error(), frag));
    assert_int_equal(p.qwen2vl.enabled, 0); /* zeroed on failure */
}

static void test_config(void **state)
{
    (void)state;
    dlv_preproc_config p;
    /* Qwen2VLImageProcessor()'s defaults. */
    assert_int_equal(parse("{" QWEN "}", &p), DLV_OK);
    assert_int_equal(p.qwen2vl.enabled, 1);
    assert_int_equal(p.qwen2vl.min_pixels, 3136);
    assert_int_equal(p.qwen2vl.max_pixels, 1003520);
    assert_int_equal(p.qwen2vl.patch_size, 14);
    assert_int_equal(p.qwen2vl.temporal_patch_size, 2);
    assert_int_equal(p.qwen2vl.merge_size, 2);
    assert_int_equal(p.resample, DLV_RESAMPLE_BICUBIC);
    assert_int_equal(p.do_resize, 1);
    assert_int_equal(p.do_convert_rgb, 1);
    assert_true(p.image_mean[0] == 0.48145466 && p.image_std[2] == 0.27577711);
    assert_true(fabs(p.rescale_factor - 1.0 / 255.0) < 1e-15);
    assert_int_equal(dlv_qwen2vl_patch_dim(&p), 3 * 2 * 14 * 14);
    /* Other processors leave the block off. */
    assert_int_equal(parse("{}", &p), DLV_OK);
    assert_int_equal(p.qwen2vl.enabled, 0);

    /* `size` (newer transformers) only where min/max_pixels are absent. */
    assert_int_equal(parse("{" QWEN ", \"size\": {\"shortest_edge\": 100, \"longest_edge\": 5000}}",
                           &p), DLV_OK);
    assert_int_equal(p.qwen2vl.min_pixels, 100);
    assert_int_equal(p.qwen2vl.max_pixels, 5000);
    assert_int_equal(parse("{" QWEN ", \"min_pixels\": 10, \"max_pixels\": 200704, \"size\": "
                           "{\"shortest_edge\": 100, \"longest_edge\": 5000}}", &p), DLV_OK);
    assert_int_equal(p.qwen2vl.min_pixels, 10);
    assert_int_equal(p.qwen2vl.max_pixels, 200704);
    assert_int_equal(parse("{" QWEN ", \"size\": {\"min_pixels\": 50, \"max_pixels\": 6000}}",
                           &p), DLV_OK);
    assert_int_equal(p.qwen2vl.min_pixels, 50);
    assert_int_equal(p.qwen2vl.max_pixels, 6000);
    /* min_pixels 0 is allowed (the min branch never runs). */
    assert_int_equal(parse("{" QWEN ", \"min_pixels\": 0, \"patch_size\": 16, "
                           "\"temporal_patch_size\": 1, \"merge_size\": 1}", &p), DLV_OK);
    assert_int_equal(dlv_qwen2vl_patch_dim(&p), 3 * 16 * 16);

    expect_error("{" QWEN ", \"max_pixels\": 67108865}", DLV_E_FORMAT, "'max_pixels'");
    expect_error("{" QWEN ", \"max_pixels\": -1}", DLV_E_FORMAT, "'max_pixels'");
    expect_error("{" QWEN ", \"min_pixels\": -5}", DLV_E_FORMAT, "'min_pixels'");
    expect_error("{" QWEN ", \"min_pixels\": 5000, \"max_pixels\": 4000}", DLV_E_FORMAT,
                 "'min_pixels': 5000 is above max_pixels 4000");
    expect_error("{" QWEN ", \"min_pixels\": 0, \"max_pixels\": 783}", DLV_E_FORMAT, "'max_pixels': 783 is below");
    expect_error("{" QWEN ", \"patch_size\": 0}", DLV_E_FORMAT, "'patch_size'");
    expect_error("{" QWEN ", \"patch_size\": 513}", DLV_E_FORMAT, "'patch_size'");
    expect_error("{" QWEN ", \"patch_size\": \"14\"}", DLV_E_FORMAT, "'patch_size': expected");
    expect_error("{" QWEN ", \"merge_size\": 0}", DLV_E_FORMAT, "'merge_size'");
    expect_error("{" QWEN ", \"temporal_patch_size\": 0}", DLV_E_FORMAT, "'temporal_patch_size'");
    expect_error("{" QWEN ", \"temporal_patch_size\": 9}", DLV_E_FORMAT, "'temporal_patch_size'");
    expect_error("{" QWEN ", \"size\": {\"longest_edge\": 1e9}}", DLV_E_FORMAT,
                 "'size.longest_edge'");
    expect_error("{" QWEN ", \"size\": {\"shortest_edge\": 999999999999}}", DLV_E_FORMAT,
                 "'size.shortest_edge'");
    expect_error("{" QWEN ", \"resample\": 7}", DLV_E_FORMAT, "resample");
    expect_error("{\"image_processor_type\": \"Qwen2VLImageProcessorFast\"}", DLV_E_UNSUPPORTED,
                 "Qwen2VLImageProcessorFast");
}

static void test_smart_resize(void **state)
{
    (void)state;
    uint32_t h, w;
    /* The goldens' cases by hand, and the branches' edges. */
    assert_int_equal(dlv_qwen2vl_smart_resize(480, 640, 28, 3136, 12845056, &h, &w), DLV_OK);
    assert_true(h == 476 && w == 644);
    assert_int_equal(dlv_qwen2vl_smart_resize(70, 126, 28, 3136, 12845056, &h, &w), DLV_OK);
    assert_true(h == 56 && w == 112); /* 2.5 -> 2, 4.5 -> 4 */
    assert_int_equal(dlv_qwen2vl_smart_resize(98, 42, 28, 0, 12845056, &h, &w), DLV_OK);
    assert_true(h == 112 && w == 56); /* 3.5 -> 4, 1.5 -> 2 */
    assert_int_equal(dlv_qwen2vl_smart_resize(30, 40, 28, 3136, 12845056, &h, &w), DLV_OK);
    assert_true(h == 56 && w == 84);
    assert_int_equal(dlv_qwen2vl_smart_resize(28, 5600, 28, 3136, 200704, &h, &w), DLV_OK);
    assert_true(h == 28 && w == 5600);
    assert_int_equal(dlv_qwen2vl_smart_resize(28, 5628, 28, 3136, 200704, &h, &w),
                     DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "aspect ratio"));
    assert_int_equal(dlv_qwen2vl_smart_resize(27, 100, 28, 3136, 200704, &h, &w),
                     DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "smaller than"));
    assert_int_equal(dlv_qwen2vl_smart_resize(24, 4000, 24, 1000, 50000, &h, &w),
                     DLV_E_UNSUPPORTED);
    assert_true(h == 0 && w == 0);
    /* The largest sides: no overflow, refused or bounded. */
    assert_int_equal(dlv_qwen2vl_smart_resize(UINT32_MAX, UINT32_MAX, 28, 3136, 12845056, &h,
                                              &w), DLV_E_UNSUPPORTED);
    assert_int_equal(dlv_qwen2vl_smart_resize(100000000, 1000000, 28, 0, 12845056, &h, &w),
                     DLV_OK);
    assert_true((uint64_t)h * w <= 12845056 && h % 28 == 0 && w % 28 == 0);
    assert_int_equal(dlv_qwen2vl_smart_resize(28, 28, 0, 0, 1, &h, &w), DLV_E_INVALID_ARG);
}

static void test_refusals(void **state)
{
    (void)state;
    dlv_preproc_config q, clip;
    assert_int_equal(parse("{" QWEN ", \"max_pixels\": 200704}", &q), DLV_OK);
    assert_int_equal(parse("{}", &clip), DLV_OK);
    dlv_rgb8 img, out;
    gen_pattern(64, 48, &img);

    /* The [3, H, W] pipeline refuses a patch config. */
    uint32_t h, w;
    assert_int_equal(dlv_preprocess_fixed_size(&q, &h, &w), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "patches"));
    assert_int_equal(dlv_preprocess_output_size(&q, 64, 48, 0, &h, &w), DLV_E_UNSUPPORTED);
    assert_int_equal(dlv_preprocess_rgb8(&q, &img, 0, DLV_DEFAULT_MAX_PIXELS, &out),
                     DLV_E_UNSUPPORTED);
    assert_null(out.px);
    dlv_image *im = NULL;
    assert_int_equal(dlv_image_from_rgb(img.px, 64, 48, 64 * 3, &im), DLV_OK);
    float buf[16];
    assert_int_equal(dlv_image_to_pixels(&q, im, NULL, buf, 16), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "Qwen2VLImageProcessor"));

    /* And the patch pipeline a CLIP config. */
    dlv_qwen2vl_grid g;
    float *px = NULL;
    size_t n = 0;
    assert_int_equal(dlv_qwen2vl_grid_for(&clip, 64, 48, &g), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_image_to_qwen2vl_patches(&clip, im, NULL, &g, &px, &n),
                     DLV_E_INVALID_ARG);
    assert_null(px);

    /* pad_square, the caller's pixel limit (on the decode and on the
     * resized size), NULL arguments. */
    dlv_pixel_opts o = DLV_PIXEL_OPTS_DEFAULT;
    o.pad_square = 1;
    assert_int_equal(dlv_image_to_qwen2vl_patches(&q, im, &o, &g, &px, &n), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "pad_square"));
    o.pad_square = 0;
    o.max_pixels = 3000; /* the input has 3072 */
    assert_int_equal(dlv_image_to_qwen2vl_patches(&q, im, &o, &g, &px, &n), DLV_E_UNSUPPORTED);
    assert_null(px);
    o.max_pixels = 3100; /* decodes; resized to 56 x 56 = 3136 */
    assert_int_equal(dlv_image_to_qwen2vl_patches(&q, im, &o, &g, &px, &n), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "3136 pixels, more than the limit of 3100"));
    assert_true(g.t == 0 && !px && n == 0);
    o.max_pixels = 3136;
    assert_int_equal(dlv_image_to_qwen2vl_patches(&q, im, &o, &g, &px, &n), DLV_OK);
    assert_true(g.t == 1 && g.h == 4 && g.w == 4 && n == 16 * dlv_qwen2vl_patch_dim(&q));
    assert_int_equal(dlv_qwen2vl_tokens(&q, &g), 4);
    free(px);
    assert_int_equal(dlv_image_to_qwen2vl_patches(&q, NULL, NULL, &g, &px, &n), DLV_E_INVALID_ARG);
    dlv_rgb8 empty = {NULL, 0, 0};
    assert_int_equal(dlv_qwen2vl_preprocess(&q, &empty, DLV_DEFAULT_MAX_PIXELS, &g, &px, &n),
                     DLV_E_INVALID_ARG);
    assert_null(px);
    dlv_image_free(im);

    /* Patches need sides that are multiples of patch_size * merge_size. */
    float small[3 * 2 * 14 * 14 * 8];
    assert_int_equal(dlv_qwen2vl_patchify(&q, &img, small, sizeof small / sizeof *small),
                     DLV_E_INVALID_ARG);

    /* Without do_resize: a side that is not a multiple of the factor, or a
     * huge image, is refused from its size alone. */
    dlv_preproc_config nr;
    assert_int_equal(parse("{" QWEN ", \"do_resize\": false}", &nr), DLV_OK);
    assert_int_equal(dlv_qwen2vl_grid_for(&nr, 64, 56, &g), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "multiples"));
    assert_int_equal(dlv_qwen2vl_grid_for(&nr, 56, 84, &g), DLV_OK);
    assert_true(g.h == 6 && g.w == 4);
    assert_int_equal(dlv_qwen2vl_grid_for(&nr, 28 * 20000, 28 * 20000, &g), DLV_E_UNSUPPORTED);
    assert_int_equal(dlv_qwen2vl_grid_for(&nr, 0, 28, &g), DLV_E_UNSUPPORTED);

    /* A config built by hand outside the parser's bounds. */
    dlv_preproc_config bad = q;
    bad.qwen2vl.merge_size = 0;
    assert_int_equal(dlv_qwen2vl_grid_for(&bad, 64, 48, &g), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_qwen2vl_tokens(&bad, &g), 0);
    dlv_rgb8_free(&img);
}

int main(void)
{
    const char *src = getenv("DLV_SOURCE_ROOT");
    if (!src) src = ".";
    snprintf(golden_dir, sizeof golden_dir, "%s/tests/image/golden", src);
    snprintf(data_dir, sizeof data_dir, "%s/tests/image/data", src);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_smart_resize),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("qwen2vl", tests, NULL, NULL);
}
