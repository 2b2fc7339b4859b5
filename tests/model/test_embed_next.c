/* Embeddings of models whose images each have their own feature count:
 * LLaVA-NeXT (LlavaNextForConditionalGeneration), Qwen2-VL and Qwen2.5-VL
 * (Qwen2VLForConditionalGeneration, Qwen2_5_VLForConditionalGeneration),
 * base and with a PEFT adapter, through the public API against
 * transformers + peft goldens.
 *
 *   test_embed_next IMAGES_DIR GOLDEN MODEL_DIR ADAPTER_DIR [GOLDEN MODEL_DIR ADAPTER_DIR ...]
 *
 * GOLDEN is tests/model/golden/embed_<V>.safetensors, written by
 * tests/reference/llava_next_reference.py (next_*: anyres tiles, packing
 * with image_newline) or qwen2vl_embed_reference.py (qwen2vl_*, qwen25vl_*:
 * dynamic resolution, M-RoPE), with the adapter directory ADAPTER_DIR and
 * the images IMAGES_DIR/img0.png .. img5.png (40x30, 28x28, 64x48, 17x33,
 * 50x50, 60x40: different tile grids, patch grids and feature counts, and
 * rows or columns cut by unpadding); MODEL_DIR is the tiny checkpoint
 * (tests/gen_tiny_checkpoint.py --family llava_next / qwen2_vl /
 * qwen2_5_vl ...) regenerated at build time.
 *
 * Checked per variant:
 *  - dlv_encode_images (6 images, each with its own feature count) and
 *    dlv_encode_text (5 captions) against base_image_embeds /
 *    base_text_embeds; each image alone equals its row of the batch within
 *    BATCH_TOL;
 *  - dlv_embed_tokens(raw_ids, img0, DLV_EMBED_HIDDEN) against HF's own
 *    forward (raw_hidden: the processor's tiles or patches, the model's
 *    features, the image token expanded to img0's count; Qwen2-VL: with
 *    get_rope_index's positions);
 *  - after dlv_adapter_load: adapter_image_embeds / adapter_text_embeds /
 *    raw_hidden_adapter;
 * (Training: tests/train/test_train_golden.c, grad_next_clip_llama_f32,
 * grad_qwen2vl_f32.) The references check that their default image
 * prompt's ids equal the processor's (LlavaNextProcessor,
 * Qwen2VLProcessor) for the whole prompt string, so matching these
 * embeddings means the library built the processor's sequence.
 *
 * Tolerance: |got - want| <= ATOL + RTOL * |want| (test_embed.c's, for the
 * same reasons: bf16 checkpoints widened to f32 on both sides). */
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
#include "../common/test_backend.h"
#include "io/safetensors.h"

#define ATOL 1e-5
#define RTOL 1e-4
#define BATCH_TOL 1e-5
#define N_IMG 6
#define N_CAP 5
#define MAX_CASES 8

static const char *const CAPTIONS[N_CAP] = {
    "A photo.", "a red circle left of a small blue square", "Cat",
    "the quick brown fox jumps over the lazy dog, twice!", "sky"};

typedef struct golden_case {
    const char *golden, *model_dir, *adapter_dir;
} golden_case;

static const char *images_dir;
static golden_case cases[MAX_CASES];
static int n_cases;

typedef struct golden {
    size_t hidden, n_raw;
    float *base_img, *base_txt, *ad_img, *ad_txt, *raw_hidden, *raw_hidden_ad;
    int32_t *raw_ids;
} golden;

static const dlv_st_tensor *need(const dlv_st_file *f, const char *name)
{
    const dlv_st_tensor *t = dlv_st_find(f, name);
    if (!t) fprintf(stderr, "%s: no tensor %s\n", dlv_st_path(f), name);
    assert_non_null(t);
    return t;
}

static float *read_f32(const dlv_st_file *f, const char *name, size_t rows, size_t cols)
{
    const dlv_st_tensor *t = need(f, name);
    assert_int_equal(t->dtype, DLV_DTYPE_F32);
    assert_int_equal(t->n_elements, rows * cols);
    float *out = malloc(t->n_elements * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_st_read_f32(t, 0, t->n_elements, out), DLV_OK);
    return out;
}

static void golden_load(const golden_case *c, golden *g)
{
    dlv_st_file *f = NULL;
    if (dlv_st_open(c->golden, &f) != DLV_OK) {
        fprintf(stderr, "%s\n", dlv_last_error());
        fail();
    }
    const dlv_st_tensor *b = need(f, "base_image_embeds");
    assert_int_equal(b->ndim, 2);
    g->hidden = (size_t)b->shape[1];
    const size_t H = g->hidden;
    g->base_img = read_f32(f, "base_image_embeds", N_IMG, H);
    g->base_txt = read_f32(f, "base_text_embeds", N_CAP, H);
    g->ad_img = read_f32(f, "adapter_image_embeds", N_IMG, H);
    g->ad_txt = read_f32(f, "adapter_text_embeds", N_CAP, H);
    g->raw_hidden = read_f32(f, "raw_hidden", 1, H);
    g->raw_hidden_ad = read_f32(f, "raw_hidden_adapter", 1, H);
    const dlv_st_tensor *r = need(f, "raw_ids");
    assert_int_equal(r->dtype, DLV_DTYPE_I32);
    g->n_raw = (size_t)r->n_elements;
    g->raw_ids = malloc(g->n_raw * sizeof *g->raw_ids);
    assert_non_null(g->raw_ids);
    memcpy(g->raw_ids, r->data, g->n_raw * sizeof *g->raw_ids);
    dlv_st_close(f);
}

static void golden_free(golden *g)
{
    free(g->base_img);
    free(g->base_txt);
    free(g->ad_img);
    free(g->ad_txt);
    free(g->raw_hidden);
    free(g->raw_hidden_ad);
    free(g->raw_ids);
}

static size_t compare(const char *variant, const char *what, const float *got,
                      const float *want, size_t rows, size_t cols, double atol, double rtol)
{
    size_t bad = 0;
    double max_abs = 0.0;
    for (size_t i = 0; i < rows * cols; i++) {
        const double err = fabs((double)got[i] - (double)want[i]);
        if (err > max_abs) max_abs = err;
        if (!(err <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 5)
                fprintf(stderr, "%s %s[%zu, %zu]: got %.9g, want %.9g\n", variant, what,
                        i / cols, i % cols, (double)got[i], (double)want[i]);
            bad++;
        }
    }
    printf("%-22s %-24s max |diff| %.3g%s\n", variant, what, max_abs, bad ? "  MISMATCH" : "");
    return bad;
}

static void check_ok(dlv_status st, const char *what)
{
    if (st != DLV_OK)
        fprintf(stderr, "%s: unexpected %s: %s\n", what, dlv_status_str(st), dlv_last_error());
    assert_int_equal(st, DLV_OK);
}

static void load_images(dlv_image **imgs)
{
    for (int i = 0; i < N_IMG; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/img%d.png", images_dir, i);
        check_ok(dlv_image_from_file(path, &imgs[i]), path);
    }
}

/* Images (batch and alone), texts and the raw sequence against one set of
 * goldens; returns the number of mismatches. */
static size_t check_side(const char *variant, const char *label, dlv_session *s,
                         dlv_image **imgs, const golden *g, const float *want_img,
                         const float *want_txt, const float *want_raw)
{
    const size_t H = g->hidden;
    float *got = calloc(N_IMG * H, sizeof *got), *one = calloc(H, sizeof *one);
    assert_non_null(got);
    assert_non_null(one);
    char what[64];
    size_t bad = 0;
    check_ok(dlv_encode_images(s, (const dlv_image *const *)imgs, N_IMG, got, N_IMG * H),
             "dlv_encode_images");
    snprintf(what, sizeof what, "%s image embeds", label);
    bad += compare(variant, what, got, want_img, N_IMG, H, ATOL, RTOL);
    for (int i = 0; i < N_IMG; i++) {
        check_ok(dlv_encode_images(s, (const dlv_image *const *)&imgs[i], 1, one, H),
                 "one image");
        snprintf(what, sizeof what, "%s image %d alone", label, i);
        bad += compare(variant, what, one, got + (size_t)i * H, 1, H, BATCH_TOL, 0.0);
    }
    check_ok(dlv_encode_text(s, CAPTIONS, N_CAP, got, N_CAP * H), "dlv_encode_text");
    snprintf(what, sizeof what, "%s text embeds", label);
    bad += compare(variant, what, got, want_txt, N_CAP, H, ATOL, RTOL);
    check_ok(dlv_embed_tokens(s, g->raw_ids, g->n_raw, imgs[0], DLV_EMBED_HIDDEN, one, H),
             "dlv_embed_tokens");
    snprintf(what, sizeof what, "%s raw hidden", label);
    bad += compare(variant, what, one, want_raw, 1, H, ATOL, RTOL);
    free(got);
    free(one);
    return bad;
}

static void test_variants(void **state)
{
    (void)state;
    size_t bad = 0;
    for (int c = 0; c < n_cases; c++) {
        const char *variant = strrchr(cases[c].adapter_dir, '/');
        variant = variant ? variant + 1 : cases[c].adapter_dir;
        golden g = {0};
        golden_load(&cases[c], &g);
        dlv_model *m = NULL;
        dlv_session *s = NULL;
        check_ok(test_model_load(cases[c].model_dir, &m), cases[c].model_dir);
        printf("backend %s\n", test_backend_name());
        dlv_session_options *so = NULL;
        check_ok(dlv_session_options_new(&so), "options");
        check_ok(dlv_session_options_set_threads(so, 1), "threads");
        check_ok(dlv_session_new(m, so, &s), "session");
        dlv_session_options_free(so);
        size_t dim = 0;
        check_ok(dlv_model_embed_dim(m, &dim), "dim");
        assert_int_equal(dim, g.hidden);
        dlv_image *imgs[N_IMG];
        load_images(imgs);
        bad += check_side(variant, "base", s, imgs, &g, g.base_img, g.base_txt, g.raw_hidden);
        check_ok(dlv_adapter_load(s, cases[c].adapter_dir), cases[c].adapter_dir);
        bad += check_side(variant, "adapter", s, imgs, &g, g.ad_img, g.ad_txt,
                          g.raw_hidden_ad);
        for (int i = 0; i < N_IMG; i++) dlv_image_free(imgs[i]);
        dlv_session_free(s);
        dlv_model_free(m);
        golden_free(&g);
    }
    assert_int_equal(bad, 0);
}

int main(int argc, char **argv)
{
    if (argc < 5 || (argc - 2) % 3 != 0 || (argc - 2) / 3 > MAX_CASES) {
        fprintf(stderr, "usage: %s IMAGES_DIR GOLDEN MODEL_DIR ADAPTER_DIR [...]\n", argv[0]);
        return 2;
    }
    images_dir = argv[1];
    for (int i = 2; i + 2 < argc; i += 3)
        cases[n_cases++] = (golden_case){argv[i], argv[i + 1], argv[i + 2]};
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_variants)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
