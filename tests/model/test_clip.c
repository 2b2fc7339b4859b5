/* CLIPModel directories against transformers 4.46.3 goldens
 * (tests/reference/clip_reference.py).
 *
 *   test_clip GOLDEN IMAGES_DIR CLIP_DIR CLIP_EOS_DIR CLIP_HF_TOKENIZER_DIR
 *
 * CLIP_DIR: tests/gen_tiny_clip.py (compat tokenizer.json, eos_token_id 2);
 * CLIP_EOS_DIR: the same with --eos-token-id 105; CLIP_HF_TOKENIZER_DIR: with
 * CLIPConverter's exact tokenizer.json (--tokenizer hf).
 *
 * Checked: load + dlv_model_embed_dim (projection_dim); CLIP tokenization
 * (BOS/EOS from RobertaProcessing, truncation to max_position_embeddings)
 * against CLIPTokenizerFast; dlv_encode_images / dlv_encode_text and
 * dlv_score x exp(logit_scale) against get_image_features /
 * get_text_features / logits_per_image; both EOS pooling rules on raw ids;
 * one SGD step with lr 1 through the public training API: every weight
 * changes by minus the reference gradient, and the saved directory reloads;
 * the exact CLIPConverter tokenizer.json (normalizer Replace with a Regex,
 * inverted Split) loads and gives the same ids as the compat form on the
 * captions and on strings with whitespace runs, tabs, newlines,
 * punctuation, contractions and digits.
 * Tolerance |got - want| <= ATOL + RTOL |want|. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "disclvlm.h"
#include "api/session.h"
#include "io/safetensors.h"
#include "model/clip_model.h"
#include "model/model.h"

#define ATOL 1e-5
#define RTOL 1e-4
#define GRAD_ATOL 1e-6
#define GRAD_RTOL 1e-4

static const char *g_golden, *g_images, *g_dir, *g_dir_eos, *g_dir_hf;
static dlv_st_file *g_gf;

static const char *const CAPTIONS[5] = {
    "a red cat", "The  BLUE dog!!", "a green circle of the cat", "it's 42 red",
    "the cat and the dog and the red blue green circle of a cat, then a dog"};

static float *golden(const char *name, size_t *n)
{
    const dlv_st_tensor *t = dlv_st_find(g_gf, name);
    if (!t) fail_msg("golden tensor %s missing", name);
    float *v = malloc(t->n_elements * sizeof *v);
    assert_non_null(v);
    if (t->dtype == DLV_DTYPE_I32) {
        const int32_t *p = t->data;
        for (uint64_t i = 0; i < t->n_elements; i++) v[i] = (float)p[i];
    } else {
        assert_int_equal(dlv_st_read_f32(t, 0, t->n_elements, v), DLV_OK);
    }
    if (n) *n = (size_t)t->n_elements;
    return v;
}

static double compare(const char *what, const float *got, const float *want, size_t n,
                      double atol, double rtol)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double lim = atol + rtol * fabs((double)want[i]);
        if (!(d <= lim)) fail_msg("%s[%zu]: got %.9g want %.9g (diff %.3g)", what, i, (double)got[i],
                                  (double)want[i], d);
        double rel = d / (fabs((double)want[i]) + 1e-6);
        if (rel > worst) worst = rel;
    }
    return worst;
}

static dlv_model *load(const char *dir)
{
    dlv_model *m = NULL;
    if (dlv_model_load(dir, NULL, &m) != DLV_OK) fail_msg("load %s: %s", dir, dlv_last_error());
    return m;
}

static dlv_image *image(int i)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/img%d.png", g_images, i);
    dlv_image *img = NULL;
    assert_int_equal(dlv_image_from_file(path, &img), DLV_OK);
    return img;
}

static void test_encode(void **state)
{
    (void)state;
    dlv_model *m = load(g_dir);
    size_t dim = 0;
    assert_int_equal(dlv_model_embed_dim(m, &dim), DLV_OK);
    assert_int_equal(dim, 24);
    char desc[8192];
    assert_int_equal(dlv_model_describe(m, desc, sizeof desc, NULL), DLV_OK);

    /* tokenization */
    float *cap_ids = golden("caption_ids", NULL), *cap_len = golden("caption_lengths", NULL);
    for (int i = 0; i < 5; i++) {
        int32_t *ids = NULL;
        int64_t n = 0;
        assert_int_equal(dlv_clip_tokenize(m, CAPTIONS[i], &ids, &n), DLV_OK);
        assert_int_equal(n, (int64_t)cap_len[i]);
        for (int64_t k = 0; k < n; k++) assert_int_equal(ids[k], (int32_t)cap_ids[i * 16 + k]);
        free(ids);
    }
    free(cap_ids);
    free(cap_len);

    dlv_session *s = NULL;
    assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);
    dlv_image *imgs[5];
    for (int i = 0; i < 5; i++) imgs[i] = image(i);
    float ie[5 * 24], te[5 * 24], sc[25];
    assert_int_equal(dlv_encode_images(s, (const dlv_image *const *)imgs, 5, ie, 5 * 24),
                     DLV_OK);
    assert_int_equal(dlv_encode_text(s, CAPTIONS, 5, te, 5 * 24), DLV_OK);
    float *wi = golden("image_embeds", NULL), *wt = golden("text_embeds", NULL);
    double ei = compare("image_embeds", ie, wi, 5 * 24, ATOL, RTOL);
    double et = compare("text_embeds", te, wt, 5 * 24, ATOL, RTOL);
    assert_int_equal(dlv_score(s, ie, 5, te, 5, 24, sc, 25), DLV_OK);
    float *wl = golden("logits_per_image", NULL);
    for (int i = 0; i < 25; i++) sc[i] *= expf(2.6592f);
    double el = compare("logits", sc, wl, 25, 1e-4, RTOL);
    print_message("CLIP encode: worst relative error image %.2g text %.2g logits %.2g\n", ei,
                  et, el);
    /* one image / one text alone */
    float one[24];
    assert_int_equal(dlv_encode_images(s, (const dlv_image *const *)imgs + 3, 1, one, 24), DLV_OK);
    compare("image 3 alone", one, wi + 3 * 24, 24, ATOL, RTOL);
    assert_int_equal(dlv_encode_text(s, CAPTIONS + 4, 1, one, 24), DLV_OK);
    compare("text 4 alone", one, wt + 4 * 24, 24, ATOL, RTOL);
    /* embed_tokens does not apply */
    int32_t id = 5;
    assert_int_equal(dlv_embed_tokens(s, &id, 1, NULL, 0, one, 24), DLV_E_UNSUPPORTED);
    free(wi);
    free(wt);
    free(wl);
    for (int i = 0; i < 5; i++) dlv_image_free(imgs[i]);
    dlv_session_free(s);
    dlv_model_free(m);
}

static void raw_case(const char *dir, const char *name)
{
    dlv_model *m = load(dir);
    float *raw = golden("raw_ids", NULL), *want = golden(name, NULL);
    int32_t ids[2][5];
    for (int i = 0; i < 10; i++) ids[i / 5][i % 5] = (int32_t)raw[i];
    const int32_t *rows[2] = {ids[0], ids[1]};
    int64_t lens[2] = {5, 5};
    float got[2 * 24];
    dlv_session *s = NULL;
    assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);
    assert_int_equal(dlv_clip_text_forward(m, s->backend, NULL, rows, lens, 2, got, NULL),
                     DLV_OK);
    double e = compare(name, got, want, 2 * 24, ATOL, RTOL);
    print_message("%s: worst relative error %.2g\n", name, e);
    free(raw);
    free(want);
    dlv_session_free(s);
    dlv_model_free(m);
}

static void test_pooling(void **state)
{
    (void)state;
    raw_case(g_dir, "raw_text_legacy");
    raw_case(g_dir_eos, "raw_text_eos");
    dlv_clip_text_config c = {0};
    int32_t a[4] = {9, 3, 9, 1};
    c.eos_token_id = 2;
    assert_int_equal(dlv_clip_pool_position(&c, a, 4), 0); /* first maximum */
    c.eos_token_id = 3;
    assert_int_equal(dlv_clip_pool_position(&c, a, 4), 1);
    c.eos_token_id = 7;
    assert_int_equal(dlv_clip_pool_position(&c, a, 4), 0);
}

static void test_hf_tokenizer(void **state)
{
    (void)state;
    static const char *const extra[] = {
        "a  red\tcat",     "\n\nThe BLUE\r\ndog !!\n", "it's  it 's IT'S it'll we've",
        "cat,dog;circle...", "  42  7\t\t0 ", "a\u00a0red\u2003cat", "", "   \t\n  ",
        "the\tcat\t\tand\n\tthe dog!?"};
    dlv_model *hf = NULL, *compat = load(g_dir);
    dlv_status st = dlv_model_load(g_dir_hf, NULL, &hf);
    print_message("exact CLIPConverter tokenizer.json: %s\n",
                  st ? dlv_last_error() : "loads");
    assert_int_equal(st, DLV_OK);
    size_t n_cap = sizeof CAPTIONS / sizeof *CAPTIONS, n_all = n_cap + sizeof extra / sizeof *extra;
    for (size_t i = 0; i < n_all; i++) {
        const char *text = i < n_cap ? CAPTIONS[i] : extra[i - n_cap];
        int32_t *a = NULL, *b = NULL;
        int64_t na = 0, nb = 0;
        assert_int_equal(dlv_clip_tokenize(hf, text, &a, &na), DLV_OK);
        assert_int_equal(dlv_clip_tokenize(compat, text, &b, &nb), DLV_OK);
        int same = na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
        if (!same) {
            print_error("\"%s\": hf", text);
            for (int64_t k = 0; k < na; k++) print_error(" %d", a[k]);
            print_error(" / compat");
            for (int64_t k = 0; k < nb; k++) print_error(" %d", b[k]);
            print_error("\n");
        }
        assert_true(same);
        assert_true(na >= 2); /* BOS ... EOS */
        free(a);
        free(b);
    }
    dlv_model_free(hf);
    dlv_model_free(compat);
}

static void test_train_step(void **state)
{
    (void)state;
    dlv_model *m = load(g_dir);
    dlv_session *s = NULL;
    assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);
    dlv_train_options *o = NULL;
    assert_int_equal(dlv_train_options_new(&o), DLV_OK);
    assert_int_equal(dlv_train_options_set(o, "optimizer", "sgd"), DLV_OK);
    assert_int_equal(dlv_train_options_set(o, "lr", "1"), DLV_OK);
    assert_int_equal(dlv_train_begin(s, o), DLV_OK);
    dlv_train_options_free(o);
    dlv_batch *b = NULL;
    assert_int_equal(dlv_batch_new(&b), DLV_OK);
    dlv_image *imgs[4];
    for (int i = 0; i < 4; i++) {
        imgs[i] = image(i);
        assert_int_equal(dlv_batch_add(b, imgs[i], CAPTIONS[i], NULL), DLV_OK);
    }
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;
    assert_int_equal(dlv_train_step(s, b, &st), DLV_OK);
    float *wloss = golden("train_loss", NULL);
    double lrel = fabs(st.loss - (double)wloss[0]) / fabs((double)wloss[0]);
    print_message("CLIP train: loss %.9g want %.9g (rel %.2g), grad norm %.4g\n", st.loss,
                  (double)wloss[0], lrel, st.grad_norm);
    assert_true(lrel < 1e-6);
    free(wloss);

    char tmpl[] = "/tmp/dlv-clip-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char out[4200];
    snprintf(out, sizeof out, "%s/trained", tmpl);
    assert_int_equal(dlv_train_save_model(s, out, NULL), DLV_OK);
    /* every weight: new - old == -grad */
    dlv_st_set *after = NULL;
    assert_int_equal(dlv_st_set_open_dir(out, &after), DLV_OK);
    const dlv_weights *W = dlv_model_weights(m);
    double worst = 0;
    size_t checked = 0;
    for (size_t i = 0; i < W->n; i++) {
        const dlv_st_tensor *t0 = W->items[i].tensor;
        const dlv_st_tensor *t1 = dlv_st_set_find(after, W->items[i].canonical);
        assert_non_null(t1);
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", W->items[i].canonical);
        size_t ng = 0;
        float *g = golden(gname, &ng);
        assert_int_equal(ng, t0->n_elements);
        float *a = malloc(ng * sizeof *a), *c = malloc(ng * sizeof *c);
        assert_int_equal(dlv_st_read_f32(t0, 0, ng, a), DLV_OK);
        assert_int_equal(dlv_st_read_f32(t1, 0, ng, c), DLV_OK);
        double gmax = 0, tworst = 0;
        for (size_t k = 0; k < ng; k++) gmax = fmax(gmax, fabs((double)g[k]));
        for (size_t k = 0; k < ng; k++) {
            double step = (double)a[k] - (double)c[k]; /* = lr * grad */
            double d = fabs(step - (double)g[k]);
            /* the difference of two f32 values near |a| carries ~|a| 2^-24 */
            double lim = GRAD_ATOL + GRAD_RTOL * gmax + 1.2e-7 * fabs((double)a[k]);
            if (!(d <= lim))
                fail_msg("%s[%zu]: step %.9g grad %.9g (diff %.3g)", W->items[i].canonical, k,
                         step, (double)g[k], d);
            if (d > tworst) tworst = d;
        }
        if (gmax > 1e-4 && tworst / gmax > worst) worst = tworst / gmax;
        if (getenv("CLIP_TEST_VERBOSE"))
            print_message("  %-60s max|grad| %.3g max|step - grad| %.3g\n",
                          W->items[i].canonical, gmax, tworst);
        checked++;
        free(a);
        free(c);
        free(g);
    }
    print_message("CLIP train: %zu tensors, worst |step - grad| / max|grad| %.2g (tensors with max|grad| > 1e-4)\n", checked,
                  worst);
    dlv_st_set_close(after);
    /* encoding reads the trained weights; the saved directory gives the same */
    float e_sess[24], e_saved[24], e_base[24];
    assert_int_equal(dlv_encode_text(s, CAPTIONS, 1, e_sess, 24), DLV_OK);
    dlv_model *m2 = load(out);
    dlv_session *s2 = NULL;
    assert_int_equal(dlv_session_new(m2, NULL, &s2), DLV_OK);
    assert_int_equal(dlv_encode_text(s2, CAPTIONS, 1, e_saved, 24), DLV_OK);
    compare("trained text embedding, saved model", e_saved, e_sess, 24, 1e-6, 1e-5);
    dlv_session *s0 = NULL;
    assert_int_equal(dlv_session_new(m, NULL, &s0), DLV_OK);
    assert_int_equal(dlv_encode_text(s0, CAPTIONS, 1, e_base, 24), DLV_OK);
    double moved = 0;
    for (int k = 0; k < 24; k++) moved = fmax(moved, fabs((double)(e_base[k] - e_sess[k])));
    assert_true(moved > 1e-3);
    dlv_session_free(s0);
    dlv_session_free(s2);
    dlv_model_free(m2);
    /* sets that do not apply */
    assert_int_equal(dlv_train_options_new(&o), DLV_OK);
    assert_int_equal(dlv_train_options_set(o, "train", "lora"), DLV_OK);
    assert_int_equal(dlv_train_begin(s, o), DLV_E_UNSUPPORTED);
    dlv_train_options_free(o);
    assert_int_equal(dlv_train_checkpoint_save(s, tmpl), DLV_E_UNSUPPORTED);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    assert_int_equal(system(cmd), 0);
    dlv_batch_free(b);
    for (int i = 0; i < 4; i++) dlv_image_free(imgs[i]);
    dlv_session_free(s);
    dlv_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s GOLDEN IMAGES CLIP_DIR CLIP_EOS_DIR CLIP_HF_DIR\n", argv[0]);
        return 2;
    }
    g_golden = argv[1];
    g_images = argv[2];
    g_dir = argv[3];
    g_dir_eos = argv[4];
    g_dir_hf = argv[5];
    if (dlv_st_open(g_golden, &g_gf) != DLV_OK) {
        fprintf(stderr, "%s\n", dlv_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_pooling),
        cmocka_unit_test(test_hf_tokenizer),
        cmocka_unit_test(test_train_step),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dlv_st_close(g_gf);
    return rc;
}
