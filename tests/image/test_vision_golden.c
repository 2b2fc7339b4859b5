/* The image pipeline against goldens from the real Pillow and Hugging Face
 * processors (tests/reference/images_reference.py): decoded RGB bytes, the
 * 8-bit image after pad / resize / crop (equal, or at most 1 level off in
 * under 0.1% of values), and the float tensor (within 1e-5 of HF's
 * rescale/normalize recomputed from the golden, HF's own sum and samples,
 * and bit-identical to HF's tensor where float math is IEEE single).
 * LLaVA-NeXT (anyres): the chosen resolution and tile count, the 8-bit base
 * and tiles (same rule), the whole [1 + n, 3, h, w] tensor bit-identical to
 * LlavaNextImageProcessor's pixel_values (with its sum and samples within
 * 1e-6), and select_best_resolution / fit / pad sizes for 300 image sizes
 * per config, exactly.
 * Arguments: --synthetic (committed and generated inputs) or --assets
 * (../shared/assets/images; exit 77 when absent). */
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

#include "image/image_source.h"
#include "core/fs.h"
#include "model/config.h"
#include "common/sha256.h"
#include "image/anyres.h"
#include "image/decode.h"
#include "image/preprocess.h"

typedef struct gstate {
    json_t *manifest;
    char golden_dir[4096];
    char data_dir[4096];
    char assets_dir[4096];
    int assets_mode;
} gstate;

/* Mirrors gen_pattern in images_reference.py. */
static dlv_status gen_pattern(uint32_t w, uint32_t h, dlv_rgb8 *out)
{
    dlv_status st = dlv_rgb8_alloc(out, w, h);
    if (st != DLV_OK) return st;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = out->px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)((x * x + 3 * y) % 256);
            p[1] = (uint8_t)((5 * x + y * y) % 256);
            p[2] = (uint8_t)((x * y + 7 * x + 11 * y) % 256);
        }
    return DLV_OK;
}

static int is_mine(const gstate *s, const char *id)
{
    return s->assets_mode == (strncmp(id, "assets:", 7) == 0);
}

/* Decodes an input through the public image sources and dlv_image_decode. */
static dlv_status load_input(const gstate *s, const char *id, int exif_rotate, dlv_rgb8 *out)
{
    unsigned w, h;
    dlv_image *im = NULL;
    dlv_status st;
    if (sscanf(id, "gen:%u:%u", &w, &h) == 2) {
        dlv_rgb8 raw;
        if ((st = gen_pattern(w, h, &raw)) != DLV_OK) return st;
        st = dlv_image_from_rgb(raw.px, w, h, (size_t)w * 3, &im);
        dlv_rgb8_free(&raw);
    } else {
        char path[8192];
        if (strncmp(id, "assets:", 7) == 0)
            snprintf(path, sizeof path, "%s/%s", s->assets_dir, id + 7);
        else
            snprintf(path, sizeof path, "%s/%s", s->data_dir, id + 5);
        st = dlv_image_from_file(path, &im);
    }
    if (st != DLV_OK) return st;
    dlv_decode_opts opts = {DLV_DEFAULT_MAX_PIXELS, exif_rotate};
    st = dlv_image_decode(im, &opts, out);
    dlv_image_free(im);
    return st;
}

static int sha_equal(const dlv_rgb8 *img, const char *want)
{
    char hex[65];
    dlv_sha256_hex(img->px, (size_t)img->width * img->height * 3, hex);
    return strcmp(hex, want) == 0;
}

static void test_decode(void **state)
{
    const gstate *s = *state;
    const json_t *list = json_object_get(s->manifest, "decode");
    size_t i, n_checked = 0, n_bad = 0;
    const json_t *e;
    json_array_foreach(list, i, e) {
        const char *id = json_string_value(json_object_get(e, "input"));
        if (!is_mine(s, id)) continue;
        int rot = json_is_true(json_object_get(e, "exif_rotate"));
        dlv_rgb8 img;
        dlv_status st = load_input(s, id, rot, &img);
        if (st != DLV_OK) {
            printf("decode %s: %s\n", id, dlv_last_error());
            n_bad++;
            continue;
        }
        n_checked++;
        int ok = img.width == json_integer_value(json_object_get(e, "width")) &&
                 img.height == json_integer_value(json_object_get(e, "height")) &&
                 sha_equal(&img, json_string_value(json_object_get(e, "sha256")));
        if (!ok) {
            printf("decode %s (exif_rotate %d): %ux%u differs from Pillow's\n", id, rot,
                   (unsigned)img.width, (unsigned)img.height);
            n_bad++;
        }
        dlv_rgb8_free(&img);
    }
    printf("decode: %zu inputs decoded, %zu failed or differ from Pillow's bytes\n", n_checked,
           n_bad);
    assert_int_equal(n_bad, 0);
    assert_true(n_checked > 0);
}

/* Counts of values off by one / by more, against a golden 8-bit image. */
static int compare_golden(const gstate *s, const char *rel, const dlv_rgb8 *got, size_t *off1,
                          size_t *off_more, dlv_rgb8 *golden)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", s->golden_dir, rel + strlen("golden/"));
    char *data = NULL;
    size_t len = 0;
    int orientation;
    if (dlv_read_file(path, (size_t)64 << 20, &data, &len) != DLV_OK ||
        dlv_decode_png((const unsigned char *)data, len, path, DLV_DEFAULT_MAX_PIXELS, golden,
                       &orientation) != DLV_OK) {
        free(data);
        printf("%s: %s\n", rel, dlv_last_error());
        return 0;
    }
    free(data);
    if (golden->width != got->width || golden->height != got->height) return 0;
    size_t n = (size_t)got->width * got->height * 3;
    *off1 = *off_more = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got->px[i] - (int)golden->px[i]);
        if (d == 1) (*off1)++;
        if (d > 1) (*off_more)++;
    }
    return 1;
}

static int check_float(const dlv_preproc_config *cfg, const dlv_rgb8 *ref, const dlv_rgb8 *pix,
                       const json_t *c, const char *what)
{
    size_t plane = (size_t)pix->width * pix->height, n = 3 * plane;
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_preprocess_to_float(cfg, pix, out, n), DLV_OK);
    /* A too-small buffer is refused. */
    assert_int_equal(dlv_preprocess_to_float(cfg, pix, out, n - 1), DLV_E_BUFFER_TOO_SMALL);
    double max_err = 0, sum = 0;
    for (int ch = 0; ch < 3; ch++)
        for (size_t i = 0; i < plane; i++) {
            double v = ref->px[3 * i + (size_t)ch];
            double want = (v * cfg->rescale_factor - cfg->image_mean[ch]) / cfg->image_std[ch];
            double got = (double)out[(size_t)ch * plane + i];
            sum += got;
            if (fabs(got - want) > max_err) max_err = fabs(got - want);
        }
    int ok = max_err <= 1e-5;
    double hf_sum = json_real_value(json_object_get(c, "hf_sum"));
    if (fabs(sum - hf_sum) > 1e-6 * (double)n) ok = 0;
    size_t i;
    const json_t *smp;
    json_array_foreach(json_object_get(c, "hf_samples"), i, smp) {
        size_t ch = (size_t)json_integer_value(json_array_get(smp, 0));
        size_t y = (size_t)json_integer_value(json_array_get(smp, 1));
        size_t x = (size_t)json_integer_value(json_array_get(smp, 2));
        double want = json_real_value(json_array_get(smp, 3));
        if (fabs((double)out[ch * plane + y * pix->width + x] - want) > 1e-6) ok = 0;
    }
    /* Where float arithmetic is IEEE single precision (FLT_EVAL_METHOD 0),
     * the tensor is bit-identical to HF's pixel_values (little-endian). */
#if FLT_EVAL_METHOD == 0
    unsigned char *le = malloc(n * 4);
    assert_non_null(le);
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &out[k], 4);
        for (int b = 0; b < 4; b++) le[4 * k + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    char hex[65];
    dlv_sha256_hex(le, n * 4, hex);
    free(le);
    if (strcmp(hex, json_string_value(json_object_get(c, "hf_sha256"))) != 0) {
        printf("%s: float tensor is not bit-identical to HF's\n", what);
        ok = 0;
    }
#endif
    if (!ok)
        printf("%s: float tensor: max error %.3g vs formula, sum %.9g vs HF %.9g\n", what,
               max_err, sum, hf_sum);
    free(out);
    return ok;
}

static void test_preprocess(void **state)
{
    const gstate *s = *state;
    const json_t *configs = json_object_get(s->manifest, "configs");
    size_t i, n_cases = 0, n_exact = 0, n_close = 0, n_bad = 0, n_golden = 0;
    const json_t *c;
    json_array_foreach(json_object_get(s->manifest, "cases"), i, c) {
        const char *id = json_string_value(json_object_get(c, "input"));
        if (!is_mine(s, id)) continue;
        const char *cname = json_string_value(json_object_get(c, "config"));
        int pad = json_is_true(json_object_get(c, "pad"));
        char what[512];
        snprintf(what, sizeof what, "%s %s%s", id, cname, pad ? " pad" : "");
        const char *cjson = json_string_value(json_object_get(configs, cname));
        dlv_preproc_config cfg;
        assert_int_equal(dlv_preproc_config_parse(cjson, strlen(cjson), cname, &cfg), DLV_OK);

        dlv_rgb8 img, pix, golden = {NULL, 0, 0};
        assert_int_equal(load_input(s, id, 0, &img), DLV_OK);
        dlv_status st = dlv_preprocess_rgb8(&cfg, &img, pad, DLV_DEFAULT_MAX_PIXELS, &pix);
        dlv_rgb8_free(&img);
        if (st != DLV_OK) {
            printf("%s: %s\n", what, dlv_last_error());
            n_bad++;
            continue;
        }
        n_cases++;
        uint32_t eh, ew;
        assert_int_equal(dlv_preprocess_output_size(&cfg, img.width, img.height, pad, &eh, &ew),
                         DLV_OK);
        int ok = pix.width == json_integer_value(json_object_get(c, "width")) &&
                 pix.height == json_integer_value(json_object_get(c, "height"));
        int exact = ok && sha_equal(&pix, json_string_value(json_object_get(c, "sha256")));
        const dlv_rgb8 *ref = &pix;
        const char *rel = json_string_value(json_object_get(c, "golden"));
        if (ok && rel) {
            size_t off1 = 0, more = 0, n = (size_t)pix.width * pix.height * 3;
            n_golden++;
            ok = compare_golden(s, rel, &pix, &off1, &more, &golden);
            if (ok && !exact) {
                printf("%s: %zu values off by 1, %zu by more (of %zu)\n", what, off1, more, n);
                ok = more == 0 && off1 * 1000 < n;
            }
            if (ok) ref = &golden;
        } else if (ok && !exact) {
            printf("%s: differs from the golden digest\n", what);
            ok = 0;
        }
        if (ok && !check_float(&cfg, ref, &pix, c, what)) ok = 0;
        if (!ok) {
            printf("%s: FAILED (%ux%u)\n", what, (unsigned)pix.width, (unsigned)pix.height);
            n_bad++;
        } else if (exact) {
            n_exact++;
        } else {
            n_close++;
        }
        dlv_rgb8_free(&golden);
        dlv_rgb8_free(&pix);
    }
    printf("preprocess: %zu cases (%zu with golden images): %zu exact, %zu within 1 level, "
           "%zu failed\n", n_cases, n_golden, n_exact, n_close, n_bad);
    assert_int_equal(n_bad, 0);
    assert_true(n_cases > 0);
}

/* The float tensor of one anyres case against HF's digest, sum and samples. */
static int check_anyres_float(const dlv_preproc_config *cfg, const dlv_rgb8 *img,
                              const dlv_anyres_layout *lay, const json_t *c, const char *what)
{
    float *out = malloc(lay->n_floats * sizeof *out);
    assert_non_null(out);
    dlv_anyres_layout l2;
    assert_int_equal(dlv_anyres_to_float(cfg, img, DLV_DEFAULT_MAX_PIXELS, &l2, out,
                                         lay->n_floats), DLV_OK);
    assert_memory_equal(&l2, lay, sizeof l2);
    assert_int_equal(dlv_anyres_to_float(cfg, img, DLV_DEFAULT_MAX_PIXELS, NULL, out,
                                         lay->n_floats - 1), DLV_E_BUFFER_TOO_SMALL);
    int ok = 1;
    double sum = 0;
    for (size_t k = 0; k < lay->n_floats; k++) sum += (double)out[k];
    double hf_sum = json_real_value(json_object_get(c, "hf_sum"));
    if (fabs(sum - hf_sum) > 1e-6 * (double)lay->n_floats) ok = 0;
    size_t plane = (size_t)lay->tile_h * lay->tile_w, i;
    const json_t *smp;
    json_array_foreach(json_object_get(c, "hf_samples"), i, smp) {
        size_t at[4];
        for (size_t j = 0; j < 4; j++) at[j] = (size_t)json_integer_value(json_array_get(smp, j));
        double want = json_real_value(json_array_get(smp, 4));
        float got = out[(at[0] * 3 + at[1]) * plane + at[2] * lay->tile_w + at[3]];
        if (fabs((double)got - want) > 1e-6) ok = 0;
    }
#if FLT_EVAL_METHOD == 0
    unsigned char *le = malloc(lay->n_floats * 4);
    assert_non_null(le);
    for (size_t k = 0; k < lay->n_floats; k++) {
        uint32_t u;
        memcpy(&u, &out[k], 4);
        for (int b = 0; b < 4; b++) le[4 * k + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    char hex[65];
    dlv_sha256_hex(le, lay->n_floats * 4, hex);
    free(le);
    if (strcmp(hex, json_string_value(json_object_get(c, "hf_sha256"))) != 0) {
        printf("%s: float tensor is not bit-identical to HF's\n", what);
        ok = 0;
    }
#endif
    if (!ok) printf("%s: float tensor: sum %.9g vs HF %.9g\n", what, sum, hf_sum);
    free(out);
    return ok;
}

/* The 8-bit base and tiles, stacked top to bottom as the golden PNG is. */
static int stack_tiles(const dlv_rgb8 *tiles, size_t n, dlv_rgb8 *out)
{
    if (dlv_rgb8_alloc(out, tiles[0].width, tiles[0].height * (uint32_t)n) != DLV_OK) return 0;
    size_t one = (size_t)tiles[0].width * tiles[0].height * 3;
    for (size_t t = 0; t < n; t++) {
        if (tiles[t].width != tiles[0].width || tiles[t].height != tiles[0].height) return 0;
        memcpy(out->px + t * one, tiles[t].px, one);
    }
    return 1;
}

static void test_anyres(void **state)
{
    const gstate *s = *state;
    const json_t *configs = json_object_get(s->manifest, "anyres_configs");
    size_t i, n_cases = 0, n_exact = 0, n_bad = 0, n_golden = 0;
    const json_t *c;
    json_array_foreach(json_object_get(s->manifest, "anyres_cases"), i, c) {
        const char *id = json_string_value(json_object_get(c, "input"));
        if (!is_mine(s, id)) continue;
        const char *cname = json_string_value(json_object_get(c, "config"));
        char what[512];
        snprintf(what, sizeof what, "anyres %s %s", id, cname);
        const char *cjson = json_string_value(json_object_get(configs, cname));
        dlv_preproc_config cfg;
        assert_int_equal(dlv_preproc_config_parse(cjson, strlen(cjson), cname, &cfg), DLV_OK);
        assert_true(cfg.anyres);

        dlv_rgb8 img, stacked = {NULL, 0, 0}, golden = {NULL, 0, 0}, *tiles = NULL;
        assert_int_equal(load_input(s, id, 0, &img), DLV_OK);
        dlv_anyres_layout lay, planned;
        dlv_status st = dlv_anyres_rgb8(&cfg, &img, DLV_DEFAULT_MAX_PIXELS, &lay, &tiles);
        if (st != DLV_OK) {
            printf("%s: %s\n", what, dlv_last_error());
            n_bad++;
            dlv_rgb8_free(&img);
            continue;
        }
        n_cases++;
        /* The layout a model asks for up front is the one the pixels get. */
        assert_int_equal(dlv_anyres_layout_of(&cfg, img.width, img.height, &planned), DLV_OK);
        assert_memory_equal(&planned, &lay, sizeof lay);
        const json_t *size = json_object_get(c, "image_size"), *tgt = json_object_get(c, "target");
        int ok = lay.orig_h == json_integer_value(json_array_get(size, 0)) &&
                 lay.orig_w == json_integer_value(json_array_get(size, 1)) &&
                 lay.target_h == json_integer_value(json_array_get(tgt, 0)) &&
                 lay.target_w == json_integer_value(json_array_get(tgt, 1)) &&
                 lay.n_tiles == json_integer_value(json_object_get(c, "n_tiles")) &&
                 lay.tile_h == json_integer_value(json_object_get(c, "tile_height")) &&
                 lay.tile_w == json_integer_value(json_object_get(c, "tile_width")) &&
                 lay.n_floats == (1 + (size_t)lay.n_tiles) * 3 * lay.tile_h * lay.tile_w;
        if (!ok)
            printf("%s: layout %ux%u -> %ux%u, %u tiles of %ux%u differs from HF's\n", what,
                   (unsigned)lay.orig_w, (unsigned)lay.orig_h, (unsigned)lay.target_w,
                   (unsigned)lay.target_h, (unsigned)lay.n_tiles, (unsigned)lay.tile_w,
                   (unsigned)lay.tile_h);
        ok = ok && stack_tiles(tiles, 1 + (size_t)lay.n_tiles, &stacked);
        int exact = ok && sha_equal(&stacked, json_string_value(json_object_get(c, "sha256")));
        const char *rel = json_string_value(json_object_get(c, "golden"));
        if (ok && rel) {
            size_t off1 = 0, more = 0, n = (size_t)stacked.width * stacked.height * 3;
            n_golden++;
            ok = compare_golden(s, rel, &stacked, &off1, &more, &golden);
            if (ok && !exact) {
                printf("%s: %zu values off by 1, %zu by more (of %zu)\n", what, off1, more, n);
                ok = 0;
            }
        } else if (ok && !exact) {
            printf("%s: 8-bit tiles differ from the golden digest\n", what);
            ok = 0;
        }
        if (ok && !check_anyres_float(&cfg, &img, &lay, c, what)) ok = 0;
        if (!ok) {
            printf("%s: FAILED\n", what);
            n_bad++;
        } else {
            n_exact++;
        }
        dlv_anyres_tiles_free(tiles, 1 + (size_t)lay.n_tiles);
        dlv_rgb8_free(&stacked);
        dlv_rgb8_free(&golden);
        dlv_rgb8_free(&img);
    }
    printf("anyres: %zu cases (%zu with golden images): %zu exact, %zu failed\n", n_cases,
           n_golden, n_exact, n_bad);
    assert_int_equal(n_bad, 0);
    assert_true(n_cases > 0);
}

/* select_best_resolution and the fit / pad sizes, "W,H:TH,TW:NH,NW:PH,PW". */
static void test_anyres_layouts(void **state)
{
    const gstate *s = *state;
    if (s->assets_mode) return;
    const json_t *configs = json_object_get(s->manifest, "anyres_configs");
    const char *cname;
    const json_t *rows;
    size_t n = 0, n_bad = 0, n_short = 0;
    json_object_foreach(json_object_get(s->manifest, "anyres_layouts"), cname, rows) {
        const char *cjson = json_string_value(json_object_get(configs, cname));
        dlv_preproc_config cfg;
        assert_int_equal(dlv_preproc_config_parse(cjson, strlen(cjson), cname, &cfg), DLV_OK);
        size_t i;
        const json_t *r;
        json_array_foreach(rows, i, r) {
            unsigned w, h, th, tw, nh, nw, ph, pw;
            assert_int_equal(sscanf(json_string_value(r), "%u,%u:%u,%u:%u,%u:%u,%u", &w, &h, &th,
                                    &tw, &nh, &nw, &ph, &pw), 8);
            dlv_anyres_layout l;
            dlv_status st = dlv_anyres_layout_of(&cfg, w, h, &l);
            n++;
            n_short += ph != th || pw != tw;
            if (st != DLV_OK || l.target_h != th || l.target_w != tw || l.resized_h != nh ||
                l.resized_w != nw || l.padded_h != ph || l.padded_w != pw ||
                l.rows != (ph + cfg.crop_height - 1) / cfg.crop_height ||
                l.cols != (pw + cfg.crop_height - 1) / cfg.crop_height) {
                printf("%s %ux%u: got %u,%u:%u,%u:%u,%u, HF %s\n", cname, w, h,
                       (unsigned)l.target_h, (unsigned)l.target_w, (unsigned)l.resized_h,
                       (unsigned)l.resized_w, (unsigned)l.padded_h, (unsigned)l.padded_w,
                       json_string_value(r));
                n_bad++;
            }
        }
    }
    printf("anyres layouts: %zu sizes (%zu with a padded area one pixel short), %zu differ\n",
           n, n_short, n_bad);
    assert_int_equal(n_bad, 0);
    assert_true(n > 0);
}

static gstate *load_state(int assets_mode)
{
    gstate *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->assets_mode = assets_mode;
    const char *src = getenv("DLV_SOURCE_ROOT");
    if (!src) src = ".";
    snprintf(s->golden_dir, sizeof s->golden_dir, "%s/tests/image/golden", src);
    snprintf(s->data_dir, sizeof s->data_dir, "%s/tests/image/data", src);
    const char *assets = getenv("DLV_SHARED_ASSETS");
    snprintf(s->assets_dir, sizeof s->assets_dir, "%s/images", assets ? assets : "");
    char path[8192];
    snprintf(path, sizeof path, "%s/manifest.json", s->golden_dir);
    json_error_t err;
    s->manifest = json_load_file(path, 0, &err);
    if (!s->manifest) {
        fprintf(stderr, "%s: %s\n", path, err.text);
        free(s);
        return NULL;
    }
    return s;
}

int main(int argc, char **argv)
{
    int assets_mode = argc > 1 && strcmp(argv[1], "--assets") == 0;
    if (assets_mode) {
        const char *a = getenv("DLV_SHARED_ASSETS");
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/images", a ? a : "");
        if (!a || !dlv_is_dir(dir)) {
            printf("SKIP: DLV_SHARED_ASSETS/images not found\n");
            return 77;
        }
    }
    gstate *s = load_state(assets_mode);
    if (!s) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_decode, s),
        cmocka_unit_test_prestate(test_preprocess, s),
        cmocka_unit_test_prestate(test_anyres, s),
        cmocka_unit_test_prestate(test_anyres_layouts, s),
    };
    int rc = cmocka_run_group_tests_name(assets_mode ? "golden-assets" : "golden-synthetic",
                                         tests, NULL, NULL);
    json_decref(s->manifest);
    free(s);
    return rc;
}
