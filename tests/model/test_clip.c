/* CLIPModel directories against transformers 4.46.3 goldens
 * (tests/reference/clip_reference.py), on every backend this build has.
 *
 *   test_clip GOLDEN IMAGES_DIR CLIP_DIR CLIP_EOS_DIR CLIP_HF_TOKENIZER_DIR
 *
 * CLIP_DIR: tests/gen_tiny_clip.py (compat tokenizer.json, eos_token_id 2);
 * CLIP_EOS_DIR: the same with --eos-token-id 105; CLIP_HF_TOKENIZER_DIR: with
 * CLIPConverter's exact tokenizer.json (--tokenizer hf).
 *
 * Backends: "cpu", and "sim" where built (backend/sim/: device pointers the
 * host cannot dereference). Every test that computes runs once per backend,
 * the model loaded on it (dlv_model_options_set_backend), and the sim
 * results must be bit-identical to the cpu ones (the sim backend runs the
 * CPU kernels behind explicit uploads and downloads).
 *
 * Checked:
 *  - configs: dlv_model_clip's text / vision / projection fields of the
 *    three directories, the model kind, dlv_model_embed_dim
 *    (projection_dim), dlv_model_describe, the typed weights bound at load
 *    (dlv_model_clip_w: layer counts, shapes, every tensor present) and
 *    their memory (host-wrapped on cpu, uploaded on sim);
 *  - CLIP tokenization (BOS/EOS from RobertaProcessing, truncation to
 *    max_position_embeddings) against CLIPTokenizerFast;
 *  - the public API: dlv_encode_images / dlv_encode_text and dlv_score x
 *    dlv_session_logit_scale against get_image_features /
 *    get_text_features / logits_per_image; one image / one text alone;
 *    dlv_embed_tokens does not apply;
 *  - the towers directly (model/clip/clip.h) on device buffers: pixels
 *    uploaded, embeddings downloaded, against the goldens before
 *    normalisation; batches of texts of different lengths; a sub-batch at a
 *    device offset; the tape does not change the result; nothing is
 *    written past the output; the kind's encoders are exactly tower + L2
 *    normalisation;
 *  - both EOS pooling rules: dlv_clip_pool_position on its own, raw id rows
 *    through dlv_clip_text_forward against the goldens, and the pooled
 *    position seen through the causal text tower;
 *  - errors: bad arguments of the tower forwards and the backward, host
 *    memory handed to the sim backend, public-API errors, training sets
 *    that do not apply;
 *  - one SGD step with lr 1 through the public training API: the loss, and
 *    every weight changes by minus the reference gradient; the saved
 *    directory reloads and encodes as the session does; a training
 *    checkpoint resumes bit-identically (the old API had no CLIP
 *    checkpoints and checked DLV_E_UNSUPPORTED; the new trainer saves the
 *    CLIP training state, see train/kind_clip.c);
 *  - the exact CLIPConverter tokenizer.json (normalizer Replace with a
 *    Regex, inverted Split) loads and gives the same ids as the compat form
 *    on the captions and on strings with whitespace runs, tabs, newlines,
 *    punctuation, contractions and digits.
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
#include "backend/backend.h"
#include "backend/tensor.h"
#include "io/safetensors.h"
#include "model/clip/clip.h"
#include "model/clip/clip_model.h"
#include "model/kind.h"
#include "model/model.h"

#define ATOL 1e-5
#define RTOL 1e-4
#define GRAD_ATOL 1e-6
#define GRAD_RTOL 1e-4

#define PDIM 24          /* projection_dim */
#define MAXLEN 16     /* max_position_embeddings */
#define VOCAB 106
#define BOS 104
#define EOS 105
#define N_IMG 5

static const char *g_golden, *g_images, *g_dir, *g_dir_eos, *g_dir_hf;
static dlv_st_file *g_gf;
static const char *g_backends[2];
static int g_n_backends;

static const char *const CAPTIONS[5] = {
    "a red cat", "The  BLUE dog!!", "a green circle of the cat", "it's 42 red",
    "the cat and the dog and the red blue green circle of a cat, then a dog"};

/* ---- helpers ------------------------------------------------------------- */

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

/* got must equal ref bit for bit (a backend against the cpu backend). */
static void same_bits(const char *what, const char *backend, const void *got, const void *ref,
                      size_t n_floats)
{
    if (memcmp(got, ref, n_floats * sizeof(float)) == 0) return;
    const float *g = got, *r = ref;
    for (size_t i = 0; i < n_floats; i++)
        if (memcmp(&g[i], &r[i], sizeof(float)) != 0)
            fail_msg("%s on %s differs from cpu at [%zu]: %.9g vs %.9g", what, backend, i,
                     (double)g[i], (double)r[i]);
}

static void expect_error(dlv_status got, dlv_status want, const char *needle)
{
    if (got != want)
        fail_msg("status %d, want %d (%s)", (int)got, (int)want, got ? dlv_last_error() : "OK");
    if (needle && !strstr(dlv_last_error(), needle))
        fail_msg("error \"%s\" does not mention \"%s\"", dlv_last_error(), needle);
}

static dlv_model *load_on(const char *dir, const char *backend)
{
    dlv_model_options *o = NULL;
    assert_int_equal(dlv_model_options_new(&o), DLV_OK);
    assert_int_equal(dlv_model_options_set_backend(o, backend), DLV_OK);
    dlv_model *m = NULL;
    dlv_status st = dlv_model_load(dir, o, &m);
    dlv_model_options_free(o);
    if (st != DLV_OK) fail_msg("load %s on %s: %s", dir, backend, dlv_last_error());
    return m;
}

/* A compute instance of the model's kind of backend, as a session makes. */
static dlv_backend *backend_for(const char *name)
{
    dlv_backend *be = NULL;
    dlv_backend_config bc = {.device = 0, .n_threads = 2};
    if (dlv_backend_create(name, &bc, &be) != DLV_OK)
        fail_msg("backend %s: %s", name, dlv_last_error());
    return be;
}

static dlv_image *image(int i)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/img%d.png", g_images, i);
    dlv_image *img = NULL;
    assert_int_equal(dlv_image_from_file(path, &img), DLV_OK);
    return img;
}

/* Device buffer of n floats on be, uploaded from host (NULL: left as is). */
static void dev_alloc(dlv_backend *be, size_t n, const float *host, dlv_buffer *out)
{
    assert_int_equal(dlv_buffer_alloc(be, n * sizeof(float), out), DLV_OK);
    if (host) assert_int_equal(dlv_buffer_upload(out, 0, host, n * sizeof(float)), DLV_OK);
}

/* floats [first, first + n) of a device buffer, downloaded into host. */
static void dev_get(const dlv_buffer *b, size_t first, size_t n, float *host)
{
    assert_int_equal(dlv_buffer_download(host, b, first * sizeof(float), n * sizeof(float)),
                     DLV_OK);
}

/* The device address of float `first` of b (an integer offset: device
 * memory is never dereferenced here). */
static float *dev_at(const dlv_buffer *b, size_t first)
{
    return (float *)((uintptr_t)dlv_buffer_ptr(b) + first * sizeof(float));
}

/* A sentinel row after an output: must survive every call. */
static const float SENTINEL = -12345.5f;

static void put_sentinel(dlv_buffer *b, size_t first, size_t n)
{
    float *h = malloc(n * sizeof *h);
    assert_non_null(h);
    for (size_t i = 0; i < n; i++) h[i] = SENTINEL;
    assert_int_equal(dlv_buffer_upload(b, first * sizeof(float), h, n * sizeof(float)), DLV_OK);
    free(h);
}

static void check_sentinel(const char *what, const dlv_buffer *b, size_t first, size_t n)
{
    float *h = malloc(n * sizeof *h);
    assert_non_null(h);
    dev_get(b, first, n, h);
    for (size_t i = 0; i < n; i++)
        if (h[i] != SENTINEL) fail_msg("%s: wrote past its output (float %zu)", what, first + i);
    free(h);
}

/* ---- configs --------------------------------------------------------------- */

static void check_shape(const char *what, const dlv_tensor *t, int64_t d0, int64_t d1)
{
    if (!dlv_tensor_present(t)) fail_msg("%s: not bound", what);
    int64_t n = d1 ? d0 * d1 : d0;
    if (dlv_tensor_nelem(t) != n || t->shape[0] != d0 || (d1 && t->shape[1] != d1))
        fail_msg("%s: shape [%lld, %lld], want [%lld, %lld]", what, (long long)t->shape[0],
                 (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)d0, (long long)d1);
}

static void check_config(const char *dir, int64_t eos, const char *backend)
{
    dlv_model *m = load_on(dir, backend);
    assert_string_equal(dlv_model_kind_name(m), "clip");
    assert_ptr_equal(dlv_model_kind_of(m), &dlv_model_kind_clip);
    size_t dim = 0;
    assert_int_equal(dlv_model_embed_dim(m, &dim), DLV_OK);
    assert_int_equal(dim, PDIM);
    char desc[8192];
    assert_int_equal(dlv_model_describe(m, desc, sizeof desc, NULL), DLV_OK);
    assert_non_null(strstr(desc, "CLIPModel"));

    const dlv_clip_config *c = dlv_model_clip(m);
    assert_non_null(c);
    assert_string_equal(c->architecture, "CLIPModel");
    assert_string_equal(c->torch_dtype, "float32");
    assert_int_equal(c->projection_dim, PDIM);
    assert_true(fabs(c->logit_scale_init_value - 2.6592) < 1e-12);
    const dlv_clip_text_config *t = &c->text;
    assert_int_equal(t->vocab_size, VOCAB);
    assert_int_equal(t->hidden_size, 48);
    assert_int_equal(t->intermediate_size, 96);
    assert_int_equal(t->num_hidden_layers, 2);
    assert_int_equal(t->num_attention_heads, 4);
    assert_int_equal(t->max_position_embeddings, MAXLEN);
    assert_int_equal(t->hidden_act, DLV_ACT_QUICK_GELU);
    assert_true(t->layer_norm_eps == 1e-5);
    assert_int_equal(t->bos_token_id, 0);
    assert_int_equal(t->eos_token_id, eos);
    assert_int_equal(t->pad_token_id, 1);
    const dlv_vision_config *v = &c->vision;
    assert_int_equal(v->kind, DLV_VISION_CLIP);
    assert_int_equal(v->hidden_size, 32);
    assert_int_equal(v->intermediate_size, 64);
    assert_int_equal(v->num_hidden_layers, 2);
    assert_int_equal(v->num_attention_heads, 2);
    assert_int_equal(v->num_channels, 3);
    assert_int_equal(v->image_size, 28);
    assert_int_equal(v->patch_size, 14);
    assert_int_equal(v->hidden_act, DLV_ACT_QUICK_GELU);
    assert_true(v->layer_norm_eps == 1e-5);
    size_t ch = 0, h = 0, w = 0;
    assert_int_equal(dlv_model_image_size(m, &ch, &h, &w), DLV_OK);
    assert_true(ch == 3 && h == 28 && w == 28);

    /* The typed weights bound at load, on the model's backend. */
    const dlv_clip_w *cw = dlv_model_clip_w(m);
    assert_non_null(cw);
    assert_int_equal(cw->n_text_layers, 2);
    assert_int_equal(cw->vision.n_layers, 2);
    check_shape("tok_emb", &cw->tok_emb, VOCAB, 48);
    check_shape("pos_emb", &cw->pos_emb, MAXLEN, 48);
    check_shape("visual_projection", &cw->visual_proj.w, PDIM, 32);
    assert_false(dlv_tensor_present(&cw->visual_proj.b));
    check_shape("text_projection", &cw->text_proj.w, PDIM, 48);
    assert_false(dlv_tensor_present(&cw->text_proj.b));
    check_shape("final_layer_norm", &cw->final_ln.w, 48, 0);
    check_shape("final_layer_norm.bias", &cw->final_ln.b, 48, 0);
    check_shape("class_embedding", &cw->vision.class_emb, 32, 0);
    check_shape("vision position_embedding", &cw->vision.pos_emb, 5, 32);
    check_shape("pre_layrnorm", &cw->vision.pre_ln.w, 32, 0);
    check_shape("post_layernorm", &cw->vision.post_ln.w, 32, 0);
    assert_true(dlv_tensor_present(&cw->vision.patch.w));
    assert_int_equal(dlv_tensor_nelem(&cw->vision.patch.w), 32 * 3 * 14 * 14);
    assert_int_equal(dlv_tensor_nelem(&cw->logit_scale), 1);
    for (int64_t l = 0; l < 2; l++) {
        const dlv_encoder_layer_w *tl = &cw->text_layers[l], *vl = &cw->vision.layers[l];
        check_shape("text ln1", &tl->ln1.w, 48, 0);
        check_shape("text ln2", &tl->ln2.b, 48, 0);
        check_shape("vision ln1", &vl->ln1.w, 32, 0);
        check_shape("vision ln2", &vl->ln2.b, 32, 0);
    }
    /* Where they live: the model's backend; host-wrapped (the mapped
     * checkpoint) only where that backend's memory is the host's. */
    dlv_backend *mbe = dlv_model_backend(m);
    assert_non_null(mbe);
    assert_ptr_equal(cw->tok_emb.buf->owner, mbe);
    const int host = (dlv_backend_caps(mbe) & DLV_BACKEND_CAP_HOST_MEMORY) != 0;
    assert_int_equal(host, strcmp(backend, "cpu") == 0);
    assert_int_equal(cw->tok_emb.buf->borrowed, host);

    /* The model's own logit scale (the kind's), as saved. */
    float ls = 0;
    assert_non_null(dlv_model_kind_clip.model_logit_scale);
    assert_int_equal(dlv_model_kind_clip.model_logit_scale(m, &ls), DLV_OK);
    assert_true(ls == 2.6592f);
    dlv_model_free(m);
}

static void test_config(void **state)
{
    (void)state;
    for (int b = 0; b < g_n_backends; b++) {
        check_config(g_dir, 2, g_backends[b]);
        check_config(g_dir_eos, EOS, g_backends[b]);
        check_config(g_dir_hf, 2, g_backends[b]);
    }
}

/* ---- tokenization ---------------------------------------------------------- */

static void test_tokenize(void **state)
{
    (void)state;
    float *cap_ids = golden("caption_ids", NULL), *cap_len = golden("caption_lengths", NULL);
    const char *dirs[2] = {g_dir, g_dir_hf};
    for (int d = 0; d < 2; d++) {
        dlv_model *m = load_on(dirs[d], "cpu");
        for (int i = 0; i < 5; i++) {
            int32_t *ids = NULL;
            int64_t n = 0;
            assert_int_equal(dlv_clip_tokenize(m, CAPTIONS[i], &ids, &n), DLV_OK);
            assert_int_equal(n, (int64_t)cap_len[i]);
            for (int64_t k = 0; k < n; k++) assert_int_equal(ids[k], (int32_t)cap_ids[i * 16 + k]);
            assert_int_equal(ids[0], BOS);
            assert_int_equal(ids[n - 1], EOS);
            free(ids);
        }
        /* Truncation: the first max - 1 ids, then EOS. */
        char longtext[2048] = "";
        for (int i = 0; i < 60; i++) strcat(longtext, "red cat ");
        int32_t *ids = NULL;
        int64_t n = 0;
        assert_int_equal(dlv_clip_tokenize(m, longtext, &ids, &n), DLV_OK);
        assert_int_equal(n, MAXLEN);
        assert_int_equal(ids[0], BOS);
        assert_int_equal(ids[MAXLEN - 1], EOS);
        for (int64_t k = 1; k < MAXLEN - 1; k++) assert_true(ids[k] != EOS && ids[k] != BOS);
        free(ids);
        /* The empty text: BOS EOS. */
        assert_int_equal(dlv_clip_tokenize(m, "", &ids, &n), DLV_OK);
        assert_int_equal(n, 2);
        assert_true(ids[0] == BOS && ids[1] == EOS);
        free(ids);
        dlv_model_free(m);
    }
    free(cap_ids);
    free(cap_len);
}

/* ---- the public API -------------------------------------------------------- */

static void test_encode(void **state)
{
    (void)state;
    float ref_ie[N_IMG * PDIM], ref_te[5 * PDIM], ref_sc[25];
    float *wi = golden("image_embeds", NULL), *wt = golden("text_embeds", NULL);
    float *wl = golden("logits_per_image", NULL);
    dlv_image *imgs[N_IMG];
    for (int i = 0; i < N_IMG; i++) imgs[i] = image(i);
    for (int b = 0; b < g_n_backends; b++) {
        const char *name = g_backends[b];
        dlv_model *m = load_on(g_dir, name);
        dlv_session *s = NULL;
        assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);
        float ie[N_IMG * PDIM], te[5 * PDIM], sc[25];
        assert_int_equal(dlv_encode_images(s, (const dlv_image *const *)imgs, N_IMG, ie,
                                           N_IMG * PDIM), DLV_OK);
        assert_int_equal(dlv_encode_text(s, CAPTIONS, 5, te, 5 * PDIM), DLV_OK);
        double ei = compare("image_embeds", ie, wi, N_IMG * PDIM, ATOL, RTOL);
        double et = compare("text_embeds", te, wt, 5 * PDIM, ATOL, RTOL);
        assert_int_equal(dlv_score(s, ie, N_IMG, te, 5, PDIM, sc, 25), DLV_OK);
        /* logits = exp(logit_scale) x cosines, the model's own scale */
        float scale = 0;
        assert_int_equal(dlv_session_logit_scale(s, &scale), DLV_OK);
        assert_true(scale == (float)exp((double)2.6592f));
        for (int i = 0; i < 25; i++) sc[i] *= scale;
        double el = compare("logits", sc, wl, 25, 1e-4, RTOL);
        print_message("CLIP encode [%s]: worst relative error image %.2g text %.2g logits %.2g\n",
                      name, ei, et, el);
        /* one image / one text alone */
        float one[PDIM];
        assert_int_equal(dlv_encode_images(s, (const dlv_image *const *)imgs + 3, 1, one, PDIM),
                         DLV_OK);
        compare("image 3 alone", one, wi + 3 * PDIM, PDIM, ATOL, RTOL);
        assert_int_equal(dlv_encode_text(s, CAPTIONS + 4, 1, one, PDIM), DLV_OK);
        compare("text 4 alone", one, wt + 4 * PDIM, PDIM, ATOL, RTOL);
        /* embed_tokens does not apply */
        int32_t id = 5;
        expect_error(dlv_embed_tokens(s, &id, 1, NULL, 0, one, PDIM), DLV_E_UNSUPPORTED, "clip");
        if (b == 0) {
            memcpy(ref_ie, ie, sizeof ie);
            memcpy(ref_te, te, sizeof te);
            memcpy(ref_sc, sc, sizeof sc);
        } else {
            same_bits("dlv_encode_images", name, ie, ref_ie, N_IMG * PDIM);
            same_bits("dlv_encode_text", name, te, ref_te, 5 * PDIM);
            same_bits("logits", name, sc, ref_sc, 25);
            print_message("CLIP encode [%s]: bit-identical to cpu\n", name);
        }
        dlv_session_free(s);
        dlv_model_free(m);
    }
    free(wi);
    free(wt);
    free(wl);
    for (int i = 0; i < N_IMG; i++) dlv_image_free(imgs[i]);
}

/* ---- the towers on device memory ------------------------------------------- */

static void test_towers(void **state)
{
    (void)state;
    const size_t px = 3 * 28 * 28;
    float *wi_raw = golden("image_embeds_raw", NULL), *wt_raw = golden("text_embeds_raw", NULL);
    float *wi = golden("image_embeds", NULL);
    float ref_img[N_IMG * PDIM], ref_txt[5 * PDIM];
    float *pixels = malloc(N_IMG * px * sizeof *pixels);
    assert_non_null(pixels);
    dlv_image *imgs[N_IMG];
    for (int i = 0; i < N_IMG; i++) imgs[i] = image(i);

    for (int b = 0; b < g_n_backends; b++) {
        const char *name = g_backends[b];
        dlv_model *m = load_on(g_dir, name);
        const dlv_clip_config *cfg = dlv_model_clip(m);
        const dlv_clip_w *w = dlv_model_clip_w(m);
        dlv_backend *be = backend_for(name);
        assert_true(dlv_backend_same_memory(be, dlv_model_backend(m)));
        for (int i = 0; i < N_IMG; i++)
            assert_int_equal(dlv_preprocess_image(m, imgs[i], NULL, pixels + i * px, px), DLV_OK);

        /* Image tower: [5, 3, 28, 28] -> [5, PDIM], plus a sentinel row. */
        dlv_buffer dpx = {0}, demb = {0};
        dev_alloc(be, N_IMG * px, pixels, &dpx);
        dev_alloc(be, (N_IMG + 1) * PDIM, NULL, &demb);
        put_sentinel(&demb, N_IMG * PDIM, PDIM);
        float got[N_IMG * PDIM], again[N_IMG * PDIM];
        assert_int_equal(dlv_clip_image_forward(be, cfg, w, dlv_buffer_ptr(&dpx), N_IMG, 1, NULL,
                                                dlv_buffer_ptr(&demb)), DLV_OK);
        check_sentinel("image forward", &demb, N_IMG * PDIM, PDIM);
        dev_get(&demb, 0, N_IMG * PDIM, got);
        double ei = compare("image_embeds_raw", got, wi_raw, N_IMG * PDIM, ATOL, RTOL);
        /* On the model's own backend instance: the same bits. */
        assert_int_equal(dlv_clip_image_forward(dlv_model_backend(m), cfg, w,
                                                dlv_buffer_ptr(&dpx), N_IMG, 1, NULL,
                                                dlv_buffer_ptr(&demb)), DLV_OK);
        dev_get(&demb, 0, N_IMG * PDIM, again);
        same_bits("image forward on the model's backend", name, again, got, N_IMG * PDIM);
        /* With a tape (tower trained or frozen): the same embeddings. */
        for (int frozen = 0; frozen < 2; frozen++) {
            dlv_clip_tape *tape = NULL;
            assert_int_equal(dlv_clip_image_forward(be, cfg, w, dlv_buffer_ptr(&dpx), N_IMG,
                                                    frozen, &tape, dlv_buffer_ptr(&demb)),
                             DLV_OK);
            assert_non_null(tape);
            dev_get(&demb, 0, N_IMG * PDIM, again);
            same_bits("image forward with a tape", name, again, got, N_IMG * PDIM);
            dlv_clip_tape_free(tape);
        }
        /* Images 3..4 from a device offset into the same pixels. */
        float sub[2 * PDIM];
        assert_int_equal(dlv_clip_image_forward(be, cfg, w, dev_at(&dpx, 3 * px), 2, 1, NULL,
                                                dlv_buffer_ptr(&demb)), DLV_OK);
        dev_get(&demb, 0, 2 * PDIM, sub);
        compare("images 3..4", sub, wi_raw + 3 * PDIM, 2 * PDIM, ATOL, RTOL);
        /* The kind's encoder is the tower then L2 normalisation, bit for bit. */
        assert_int_equal(dlv_clip_image_forward(be, cfg, w, dlv_buffer_ptr(&dpx), N_IMG, 1, NULL,
                                                dlv_buffer_ptr(&demb)), DLV_OK);
        assert_int_equal(dlv_l2_normalize(be, dlv_buffer_ptr(&demb), dlv_buffer_ptr(&demb),
                                          N_IMG, PDIM), DLV_OK);
        float norm[N_IMG * PDIM], enc[N_IMG * PDIM];
        dev_get(&demb, 0, N_IMG * PDIM, norm);
        compare("image_embeds", norm, wi, N_IMG * PDIM, ATOL, RTOL);
        dlv_session *s = NULL;
        assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);
        assert_int_equal(dlv_encode_images(s, (const dlv_image *const *)imgs, N_IMG, enc,
                                           N_IMG * PDIM), DLV_OK);
        same_bits("encode_images vs tower + normalize", name, enc, norm, N_IMG * PDIM);
        dlv_session_free(s);

        /* Text tower: the five captions in one batch (lengths 5..16: padded
         * keys masked), each against its own golden computed alone. */
        int32_t *ids[5];
        int64_t lens[5];
        for (int i = 0; i < 5; i++)
            assert_int_equal(dlv_clip_tokenize(m, CAPTIONS[i], &ids[i], &lens[i]), DLV_OK);
        float tgot[5 * PDIM];
        put_sentinel(&demb, 5 * PDIM, PDIM);
        assert_int_equal(dlv_clip_text_forward(be, cfg, w, (const int32_t *const *)ids, lens, 5,
                                               1, NULL, dlv_buffer_ptr(&demb)), DLV_OK);
        check_sentinel("text forward", &demb, 5 * PDIM, PDIM);
        dev_get(&demb, 0, 5 * PDIM, tgot);
        double et = compare("text_embeds_raw", tgot, wt_raw, 5 * PDIM, ATOL, RTOL);
        for (int frozen = 0; frozen < 2; frozen++) {
            dlv_clip_tape *tape = NULL;
            assert_int_equal(dlv_clip_text_forward(be, cfg, w, (const int32_t *const *)ids, lens,
                                                   5, frozen, &tape, dlv_buffer_ptr(&demb)),
                             DLV_OK);
            assert_non_null(tape);
            float t2[5 * PDIM];
            dev_get(&demb, 0, 5 * PDIM, t2);
            same_bits("text forward with a tape", name, t2, tgot, 5 * PDIM);
            dlv_clip_tape_free(tape);
        }
        /* Each caption alone (its own length, no padding). */
        for (int i = 0; i < 5; i++) {
            float one[PDIM];
            assert_int_equal(dlv_clip_text_forward(be, cfg, w, (const int32_t *const *)ids + i,
                                                   lens + i, 1, 1, NULL, dlv_buffer_ptr(&demb)),
                             DLV_OK);
            dev_get(&demb, 0, PDIM, one);
            compare("caption alone", one, wt_raw + i * PDIM, PDIM, ATOL, RTOL);
        }
        print_message("CLIP towers [%s]: worst relative error image %.2g text %.2g\n", name, ei,
                      et);
        if (b == 0) {
            memcpy(ref_img, got, sizeof got);
            memcpy(ref_txt, tgot, sizeof tgot);
        } else {
            same_bits("image tower", name, got, ref_img, N_IMG * PDIM);
            same_bits("text tower", name, tgot, ref_txt, 5 * PDIM);
            print_message("CLIP towers [%s]: bit-identical to cpu\n", name);
        }
        for (int i = 0; i < 5; i++) free(ids[i]);
        dlv_buffer_free(&dpx);
        dlv_buffer_free(&demb);
        dlv_backend_destroy(be);
        dlv_model_free(m);
    }
    for (int i = 0; i < N_IMG; i++) dlv_image_free(imgs[i]);
    free(pixels);
    free(wi_raw);
    free(wt_raw);
    free(wi);
}

/* ---- pooling --------------------------------------------------------------- */

/* The text embedding [PDIM] (before normalisation) of one id row. */
static void text_one(dlv_backend *be, const dlv_model *m, const int32_t *ids, int64_t n,
                     float *out)
{
    dlv_buffer d = {0};
    dev_alloc(be, PDIM, NULL, &d);
    const int32_t *rows[1] = {ids};
    dlv_status st = dlv_clip_text_forward(be, dlv_model_clip(m), dlv_model_clip_w(m), rows, &n, 1,
                                          1, NULL, dlv_buffer_ptr(&d));
    if (st) fail_msg("text forward: %s", dlv_last_error());
    dev_get(&d, 0, PDIM, out);
    dlv_buffer_free(&d);
}

static void raw_case(const char *dir, const char *gname, const char *backend, float *got)
{
    dlv_model *m = load_on(dir, backend);
    dlv_backend *be = backend_for(backend);
    float *raw = golden("raw_ids", NULL), *want = golden(gname, NULL);
    int32_t ids[2][5];
    for (int i = 0; i < 10; i++) ids[i / 5][i % 5] = (int32_t)raw[i];
    const int32_t *rows[2] = {ids[0], ids[1]};
    int64_t lens[2] = {5, 5};
    dlv_buffer d = {0};
    dev_alloc(be, 2 * PDIM, NULL, &d);
    assert_int_equal(dlv_clip_text_forward(be, dlv_model_clip(m), dlv_model_clip_w(m), rows, lens,
                                           2, 1, NULL, dlv_buffer_ptr(&d)), DLV_OK);
    dev_get(&d, 0, 2 * PDIM, got);
    /* Note: both golden rows pool at the same position under either rule
     * (row 0 has no EOS and its largest id, BOS, is at 0; row 1's EOS is its
     * largest id), so raw_text_legacy == raw_text_eos; the [5, 90, 7] rows
     * below are what tell the rules apart. */
    double e = compare(gname, got, want, 2 * PDIM, ATOL, RTOL);
    print_message("%s [%s]: worst relative error %.2g\n", gname, backend, e);

    /* The pooled position through the causal tower: the embedding of a row
     * pooled at p is that of its first p + 1 ids. [5, 90, 7] has no EOS:
     * argmax (legacy) pools position 1, the first-EOS rule position 0; a
     * row pooled elsewhere ([5] under argmax, [5, 90, EOS] under first-EOS)
     * gives another embedding. */
    const int32_t row[3] = {5, 90, 7}, with_eos[3] = {5, 90, EOS};
    const int legacy = dlv_model_clip(m)->text.eos_token_id == 2;
    const int64_t pos = dlv_clip_pool_position(&dlv_model_clip(m)->text, row, 3);
    assert_int_equal(pos, legacy ? 1 : 0);
    assert_int_equal(dlv_clip_pool_position(&dlv_model_clip(m)->text, with_eos, 3), 2);
    float full[PDIM], prefix[PDIM], other[PDIM];
    text_one(be, m, row, 3, full);
    text_one(be, m, row, pos + 1, prefix);
    if (legacy)
        text_one(be, m, row, 1, other);
    else
        text_one(be, m, with_eos, 3, other);
    compare("pooled prefix", full, prefix, PDIM, 1e-6, 1e-5);
    double diff = 0;
    for (int k = 0; k < PDIM; k++) diff = fmax(diff, fabs((double)full[k] - (double)other[k]));
    assert_true(diff > 1e-3);

    free(raw);
    free(want);
    dlv_buffer_free(&d);
    dlv_backend_destroy(be);
    dlv_model_free(m);
}

static void test_pooling(void **state)
{
    (void)state;
    float ref_legacy[2 * PDIM], ref_eos[2 * PDIM];
    for (int b = 0; b < g_n_backends; b++) {
        float legacy[2 * PDIM], eos[2 * PDIM];
        raw_case(g_dir, "raw_text_legacy", g_backends[b], legacy);
        raw_case(g_dir_eos, "raw_text_eos", g_backends[b], eos);
        if (b == 0) {
            memcpy(ref_legacy, legacy, sizeof legacy);
            memcpy(ref_eos, eos, sizeof eos);
        } else {
            same_bits("raw_text_legacy", g_backends[b], legacy, ref_legacy, 2 * PDIM);
            same_bits("raw_text_eos", g_backends[b], eos, ref_eos, 2 * PDIM);
        }
    }
    dlv_clip_text_config c = {0};
    int32_t a[4] = {9, 3, 9, 1};
    c.eos_token_id = 2;
    assert_int_equal(dlv_clip_pool_position(&c, a, 4), 0); /* first maximum */
    c.eos_token_id = 3;
    assert_int_equal(dlv_clip_pool_position(&c, a, 4), 1);
    c.eos_token_id = 7;
    assert_int_equal(dlv_clip_pool_position(&c, a, 4), 0);
    int32_t b2[5] = {1, 4, 8, 8, 2};
    c.eos_token_id = 2;
    assert_int_equal(dlv_clip_pool_position(&c, b2, 5), 2); /* first of two maxima */
    assert_int_equal(dlv_clip_pool_position(&c, b2, 1), 0);
    c.eos_token_id = 8;
    assert_int_equal(dlv_clip_pool_position(&c, b2, 5), 2); /* first EOS of two */
    assert_int_equal(dlv_clip_pool_position(&c, b2, 2), 0); /* none in the first two */
    c.eos_token_id = 2;
    int32_t b3[3] = {105, 2, 2};
    assert_int_equal(dlv_clip_pool_position(&c, b3, 3), 0); /* legacy never looks for id 2 */
}

/* ---- errors ---------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    for (int b = 0; b < g_n_backends; b++) {
        const char *name = g_backends[b];
        dlv_model *m = load_on(g_dir, name);
        const dlv_clip_config *cfg = dlv_model_clip(m);
        const dlv_clip_w *w = dlv_model_clip_w(m);
        dlv_backend *be = backend_for(name);
        const size_t px = 3 * 28 * 28;
        dlv_buffer dpx = {0}, demb = {0};
        dev_alloc(be, px, NULL, &dpx);
        assert_int_equal(dlv_buffer_zero(&dpx, 0, px * sizeof(float)), DLV_OK);
        dev_alloc(be, 2 * PDIM, NULL, &demb);
        put_sentinel(&demb, 0, 2 * PDIM);
        float *dp = dlv_buffer_ptr(&dpx), *de = dlv_buffer_ptr(&demb);

        /* Image tower arguments. */
        dlv_clip_tape *tape = (dlv_clip_tape *)&tape; /* must be reset to NULL */
        expect_error(dlv_clip_image_forward(NULL, cfg, w, dp, 1, 1, NULL, de), DLV_E_INVALID_ARG,
                     "CLIP image forward");
        expect_error(dlv_clip_image_forward(be, NULL, w, dp, 1, 1, NULL, de), DLV_E_INVALID_ARG,
                     NULL);
        expect_error(dlv_clip_image_forward(be, cfg, NULL, dp, 1, 1, NULL, de), DLV_E_INVALID_ARG,
                     NULL);
        expect_error(dlv_clip_image_forward(be, cfg, w, NULL, 1, 1, &tape, de), DLV_E_INVALID_ARG,
                     NULL);
        assert_null(tape);
        expect_error(dlv_clip_image_forward(be, cfg, w, dp, 1, 1, NULL, NULL), DLV_E_INVALID_ARG,
                     NULL);
        expect_error(dlv_clip_image_forward(be, cfg, w, dp, 0, 1, NULL, de), DLV_E_INVALID_ARG,
                     NULL);
        expect_error(dlv_clip_image_forward(be, cfg, w, dp, -1, 1, NULL, de), DLV_E_INVALID_ARG,
                     NULL);

        /* Text tower arguments: ids are checked on the host before upload. */
        int32_t ok[3] = {BOS, 7, EOS}, bad_hi[3] = {BOS, VOCAB, EOS}, bad_lo[3] = {BOS, -1, EOS};
        int32_t many[MAXLEN + 1];
        for (int i = 0; i < MAXLEN + 1; i++) many[i] = 7;
        const int32_t *r_ok[2] = {ok, ok}, *r_hi[2] = {ok, bad_hi}, *r_lo[1] = {bad_lo};
        const int32_t *r_null[2] = {ok, NULL}, *r_many[1] = {many};
        int64_t l3[2] = {3, 3}, l0[2] = {3, 0}, lneg[1] = {-2}, l17[1] = {MAXLEN + 1},
                l16[1] = {MAXLEN};
        expect_error(dlv_clip_text_forward(NULL, cfg, w, r_ok, l3, 2, 1, NULL, de),
                     DLV_E_INVALID_ARG, "CLIP text forward");
        expect_error(dlv_clip_text_forward(be, cfg, w, NULL, l3, 2, 1, NULL, de),
                     DLV_E_INVALID_ARG, NULL);
        expect_error(dlv_clip_text_forward(be, cfg, w, r_ok, NULL, 2, 1, NULL, de),
                     DLV_E_INVALID_ARG, NULL);
        expect_error(dlv_clip_text_forward(be, cfg, w, r_ok, l3, 2, 1, NULL, NULL),
                     DLV_E_INVALID_ARG, NULL);
        expect_error(dlv_clip_text_forward(be, cfg, w, r_ok, l3, 0, 1, NULL, de),
                     DLV_E_INVALID_ARG, NULL);
        tape = (dlv_clip_tape *)&tape;
        expect_error(dlv_clip_text_forward(be, cfg, w, r_hi, l3, 2, 0, &tape, de),
                     DLV_E_INVALID_ARG, "token id 106 is outside the vocabulary [0, 106)");
        assert_null(tape);
        expect_error(dlv_clip_text_forward(be, cfg, w, r_lo, l3, 1, 1, NULL, de),
                     DLV_E_INVALID_ARG, "token id -1");
        expect_error(dlv_clip_text_forward(be, cfg, w, r_null, l3, 2, 1, NULL, de),
                     DLV_E_INVALID_ARG, "text 1");
        expect_error(dlv_clip_text_forward(be, cfg, w, r_ok, l0, 2, 1, NULL, de),
                     DLV_E_INVALID_ARG, "text 1 has 0 ids (1..16 allowed)");
        expect_error(dlv_clip_text_forward(be, cfg, w, r_lo, lneg, 1, 1, NULL, de),
                     DLV_E_INVALID_ARG, "has -2 ids");
        expect_error(dlv_clip_text_forward(be, cfg, w, r_many, l17, 1, 1, NULL, de),
                     DLV_E_INVALID_ARG, "has 17 ids");
        /* Nothing was written by the failed calls. */
        check_sentinel("failed forwards", &demb, 0, 2 * PDIM);
        /* max_position_embeddings ids are fine. */
        assert_int_equal(dlv_clip_text_forward(be, cfg, w, r_many, l16, 1, 1, NULL, de), DLV_OK);

        /* The backward's arguments. */
        assert_int_equal(dlv_clip_text_forward(be, cfg, w, r_ok, l3, 2, 1, &tape, de), DLV_OK);
        expect_error(dlv_clip_backward(NULL, w, NULL, tape, de), DLV_E_INVALID_ARG,
                     "CLIP backward");
        expect_error(dlv_clip_backward(be, NULL, NULL, tape, de), DLV_E_INVALID_ARG, NULL);
        expect_error(dlv_clip_backward(be, w, NULL, NULL, de), DLV_E_INVALID_ARG, NULL);
        expect_error(dlv_clip_backward(be, w, NULL, tape, NULL), DLV_E_INVALID_ARG, NULL);
        /* All weights frozen (gw NULL): runs, accumulates nothing. */
        assert_int_equal(dlv_clip_backward(be, w, NULL, tape, de), DLV_OK);
        dlv_clip_tape_free(tape);
        dlv_clip_tape_free(NULL);

        /* Host memory handed where device memory belongs: the sim backend
         * refuses it (on the cpu backend host memory is device memory). */
        if (!(dlv_backend_caps(be) & DLV_BACKEND_CAP_HOST_MEMORY)) {
            float *host_px = calloc(px, sizeof *host_px), host_emb[2 * PDIM];
            assert_non_null(host_px);
            expect_error(dlv_clip_image_forward(be, cfg, w, host_px, 1, 1, NULL, de),
                         DLV_E_INVALID_ARG, "is host memory");
            expect_error(dlv_clip_image_forward(be, cfg, w, dp, 1, 1, NULL, host_emb),
                         DLV_E_INVALID_ARG, "is host memory");
            expect_error(dlv_clip_text_forward(be, cfg, w, r_ok, l3, 2, 1, NULL, host_emb),
                         DLV_E_INVALID_ARG, "is host memory");
            free(host_px);
        }

        /* The public API. */
        dlv_session *s = NULL;
        assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);
        float out[2 * PDIM];
        expect_error(dlv_encode_text(s, CAPTIONS, 2, out, 2 * PDIM - 1), DLV_E_BUFFER_TOO_SMALL,
                     NULL);
        expect_error(dlv_encode_text(s, CAPTIONS, 0, out, 2 * PDIM), DLV_E_INVALID_ARG, NULL);
        const char *with_null[2] = {"a cat", NULL};
        expect_error(dlv_encode_text(s, with_null, 2, out, 2 * PDIM), DLV_E_INVALID_ARG,
                     "texts[1] is NULL");
        /* A text past max_position_embeddings is truncated, not refused. */
        char longtext[2048] = "";
        for (int i = 0; i < 60; i++) strcat(longtext, "red cat ");
        const char *lt[1] = {longtext};
        assert_int_equal(dlv_encode_text(s, lt, 1, out, PDIM), DLV_OK);
        /* Training sets and options that do not apply to a CLIPModel. */
        static const char *const bad[][2] = {{"train", "lora"},
                                             {"train", "soft"},
                                             {"contrastive", "0"},
                                             {"cache_features", "1"},
                                             {"recompute", "1"}};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            dlv_train_options *o = NULL;
            assert_int_equal(dlv_train_options_new(&o), DLV_OK);
            assert_int_equal(dlv_train_options_set(o, bad[i][0], bad[i][1]), DLV_OK);
            expect_error(dlv_train_begin(s, o), DLV_E_UNSUPPORTED, NULL);
            dlv_train_options_free(o);
        }
        dlv_session_free(s);

        dlv_buffer_free(&dpx);
        dlv_buffer_free(&demb);
        dlv_backend_destroy(be);
        dlv_model_free(m);
    }
}

/* ---- the CLIPConverter tokenizer ------------------------------------------ */

static void test_hf_tokenizer(void **state)
{
    (void)state;
    static const char *const extra[] = {
        "a  red\tcat",     "\n\nThe BLUE\r\ndog !!\n", "it's  it 's IT'S it'll we've",
        "cat,dog;circle...", "  42  7\t\t0 ", "a\u00a0red\u2003cat", "", "   \t\n  ",
        "the\tcat\t\tand\n\tthe dog!?"};
    dlv_model *hf = NULL, *compat = load_on(g_dir, "cpu");
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

/* ---- training -------------------------------------------------------------- */

static dlv_session *train_session(dlv_model *m, const char *micro_batch)
{
    dlv_session *s = NULL;
    assert_int_equal(dlv_session_new(m, NULL, &s), DLV_OK);
    dlv_train_options *o = NULL;
    assert_int_equal(dlv_train_options_new(&o), DLV_OK);
    assert_int_equal(dlv_train_options_set(o, "optimizer", "sgd"), DLV_OK);
    assert_int_equal(dlv_train_options_set(o, "lr", "1"), DLV_OK);
    if (micro_batch)
        assert_int_equal(dlv_train_options_set(o, "micro_batch", micro_batch), DLV_OK);
    assert_int_equal(dlv_train_begin(s, o), DLV_OK);
    dlv_train_options_free(o);
    return s;
}

typedef struct train_result {
    dlv_train_stats st1, st2;
    float e_sess[PDIM], e_step2[PDIM];
} train_result;

static void train_on(const char *backend, const char *root, train_result *r)
{
    dlv_model *m = load_on(g_dir, backend);
    dlv_session *s = train_session(m, NULL);
    dlv_batch *b = NULL;
    assert_int_equal(dlv_batch_new(&b), DLV_OK);
    dlv_image *imgs[4];
    for (int i = 0; i < 4; i++) {
        imgs[i] = image(i);
        assert_int_equal(dlv_batch_add(b, imgs[i], CAPTIONS[i], NULL), DLV_OK);
    }
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;
    assert_int_equal(dlv_train_step(s, b, &st), DLV_OK);
    r->st1 = st;
    float *wloss = golden("train_loss", NULL);
    double lrel = fabs(st.loss - (double)wloss[0]) / fabs((double)wloss[0]);
    print_message("CLIP train [%s]: loss %.9g want %.9g (rel %.2g), grad norm %.4g\n", backend,
                  st.loss, (double)wloss[0], lrel, st.grad_norm);
    assert_true(lrel < 1e-6);
    free(wloss);

    char out[4200], ckpt[4200];
    snprintf(out, sizeof out, "%s/%s-trained", root, backend);
    snprintf(ckpt, sizeof ckpt, "%s/%s-ckpt", root, backend);
    assert_int_equal(dlv_train_save_model(s, out, NULL), DLV_OK);
    /* every weight: new - old == -grad */
    dlv_st_set *after = NULL;
    assert_int_equal(dlv_st_set_open_dir(out, &after), DLV_OK);
    const dlv_weights *W = dlv_model_weights(m);
    double worst = 0;
    size_t checked = 0;
    float ls_trained = 0;
    for (size_t i = 0; i < W->n; i++) {
        const dlv_st_tensor *t0 = W->items[i].tensor;
        const dlv_st_tensor *t1 = dlv_st_set_find(after, W->items[i].canonical);
        assert_non_null(t0);
        assert_non_null(t1);
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", W->items[i].canonical);
        size_t ng = 0;
        float *g = golden(gname, &ng);
        assert_int_equal(ng, t0->n_elements);
        assert_int_equal(ng, t1->n_elements);
        float *a = malloc(ng * sizeof *a), *c = malloc(ng * sizeof *c);
        assert_int_equal(dlv_st_read_f32(t0, 0, ng, a), DLV_OK);
        assert_int_equal(dlv_st_read_f32(t1, 0, ng, c), DLV_OK);
        if (!strcmp(W->items[i].canonical, "logit_scale")) ls_trained = c[0];
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
    assert_int_equal(checked, 78); /* every parameter has its reference gradient */
    print_message("CLIP train [%s]: %zu tensors, worst |step - grad| / max|grad| %.2g (tensors "
                  "with max|grad| > 1e-4)\n", backend, checked, worst);
    dlv_st_set_close(after);
    /* The session's logit scale is the trained one. */
    float scale = 0;
    assert_int_equal(dlv_session_logit_scale(s, &scale), DLV_OK);
    assert_true(scale == (float)exp((double)ls_trained));
    assert_true(fabs(st.logit_scale - (double)scale) <= 1e-6 * (double)scale);

    /* encoding reads the trained weights; the saved directory gives the same */
    float e_saved[PDIM], e_base[PDIM];
    assert_int_equal(dlv_encode_text(s, CAPTIONS, 1, r->e_sess, PDIM), DLV_OK);
    dlv_model *m2 = load_on(out, backend);
    dlv_session *s2 = NULL;
    assert_int_equal(dlv_session_new(m2, NULL, &s2), DLV_OK);
    assert_int_equal(dlv_encode_text(s2, CAPTIONS, 1, e_saved, PDIM), DLV_OK);
    compare("trained text embedding, saved model", e_saved, r->e_sess, PDIM, 1e-6, 1e-5);
    dlv_session *s0 = NULL;
    assert_int_equal(dlv_session_new(m, NULL, &s0), DLV_OK);
    assert_int_equal(dlv_encode_text(s0, CAPTIONS, 1, e_base, PDIM), DLV_OK);
    double moved = 0;
    for (int k = 0; k < PDIM; k++) moved = fmax(moved, fabs((double)(e_base[k] - r->e_sess[k])));
    assert_true(moved > 1e-3);
    dlv_session_free(s0);
    dlv_session_free(s2);
    dlv_model_free(m2);

    /* GradCache: micro-batches of 2 and of 3 (uneven) give the whole-batch
     * step up to float rounding (the trainer core's micro-batching, shared
     * with LLaVA). */
    static const char *const micro[2] = {"2", "3"};
    for (int mb = 0; mb < 2; mb++) {
        dlv_session *sm = train_session(m, micro[mb]);
        dlv_train_stats stm = DLV_TRAIN_STATS_INIT;
        assert_int_equal(dlv_train_step(sm, b, &stm), DLV_OK);
        float e_micro[PDIM];
        assert_int_equal(dlv_encode_text(sm, CAPTIONS, 1, e_micro, PDIM), DLV_OK);
        assert_true(fabs(stm.loss - st.loss) <= 1e-6 * fabs(st.loss));
        assert_true(fabs(stm.grad_norm - st.grad_norm) <= 1e-5 * st.grad_norm);
        double dm = compare("trained text embedding, micro-batched", e_micro, r->e_sess, PDIM,
                            1e-6, 1e-5);
        print_message("CLIP train [%s]: micro_batch %s: loss %.9g, embedding worst rel diff %.2g\n",
                      backend, micro[mb], stm.loss, dm);
        dlv_session_free(sm);
    }

    /* A set that does not apply leaves the running training alone. */
    dlv_train_options *o = NULL;
    assert_int_equal(dlv_train_options_new(&o), DLV_OK);
    assert_int_equal(dlv_train_options_set(o, "train", "lora"), DLV_OK);
    expect_error(dlv_train_begin(s, o), DLV_E_UNSUPPORTED, "do not apply");
    dlv_train_options_free(o);
    float e_still[PDIM];
    assert_int_equal(dlv_encode_text(s, CAPTIONS, 1, e_still, PDIM), DLV_OK);
    same_bits("encoding after a refused dlv_train_begin", backend, e_still, r->e_sess, PDIM);

    /* Checkpoints (the old trainer had none for a CLIPModel): save after
     * step 1, run step 2, then resume a fresh session from the checkpoint
     * and run the same step 2: bit-identical. */
    assert_int_equal(dlv_train_checkpoint_save(s, ckpt), DLV_OK);
    dlv_train_stats sa = DLV_TRAIN_STATS_INIT, sb = DLV_TRAIN_STATS_INIT;
    assert_int_equal(dlv_train_step(s, b, &sa), DLV_OK);
    assert_int_equal(sa.step, 2);
    assert_true(sa.loss < st.loss); /* lr 1 on the same batch: the loss falls */
    float e_resumed[PDIM];
    assert_int_equal(dlv_encode_text(s, CAPTIONS, 1, r->e_step2, PDIM), DLV_OK);
    dlv_session *s3 = NULL;
    assert_int_equal(dlv_session_new(m, NULL, &s3), DLV_OK);
    assert_int_equal(dlv_train_checkpoint_load(s3, ckpt), DLV_OK);
    float e_loaded[PDIM];
    assert_int_equal(dlv_encode_text(s3, CAPTIONS, 1, e_loaded, PDIM), DLV_OK);
    same_bits("encoding right after dlv_train_checkpoint_load", backend, e_loaded, r->e_sess, PDIM);
    assert_int_equal(dlv_train_step(s3, b, &sb), DLV_OK);
    assert_int_equal(sb.step, 2);
    assert_true(sa.loss == sb.loss && sa.grad_norm == sb.grad_norm &&
                sa.logit_scale == sb.logit_scale);
    assert_int_equal(dlv_encode_text(s3, CAPTIONS, 1, e_resumed, PDIM), DLV_OK);
    same_bits("step 2 after resuming", backend, e_resumed, r->e_step2, PDIM);
    r->st2 = sa;
    print_message("CLIP train [%s]: checkpoint resumes bit-identically (step 2 loss %.9g)\n",
                  backend, sa.loss);
    dlv_session_free(s3);

    dlv_batch_free(b);
    for (int i = 0; i < 4; i++) dlv_image_free(imgs[i]);
    dlv_session_free(s);
    dlv_model_free(m);
}

/* The saved model directories of two backends hold the same bits. */
static void same_saved(const char *root, const char *backend)
{
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/cpu-trained", root);
    snprintf(b, sizeof b, "%s/%s-trained", root, backend);
    dlv_st_set *sa = NULL, *sb = NULL;
    assert_int_equal(dlv_st_set_open_dir(a, &sa), DLV_OK);
    assert_int_equal(dlv_st_set_open_dir(b, &sb), DLV_OK);
    assert_int_equal(dlv_st_set_count(sa), dlv_st_set_count(sb));
    for (size_t i = 0; i < dlv_st_set_count(sa); i++) {
        const dlv_st_tensor *x = dlv_st_set_at(sa, i), *y = dlv_st_set_find(sb, x->name);
        assert_non_null(y);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->n_bytes, y->n_bytes);
        if (memcmp(x->data, y->data, x->n_bytes) != 0)
            fail_msg("trained %s on %s differs from cpu", x->name, backend);
    }
    dlv_st_set_close(sa);
    dlv_st_set_close(sb);
}

static void test_train_step(void **state)
{
    (void)state;
    char root[] = "/tmp/dlv-clip-XXXXXX";
    assert_non_null(mkdtemp(root));
    train_result ref, r;
    for (int b = 0; b < g_n_backends; b++) {
        train_on(g_backends[b], root, b == 0 ? &ref : &r);
        if (b == 0) continue;
        assert_true(r.st1.loss == ref.st1.loss && r.st1.grad_norm == ref.st1.grad_norm &&
                    r.st1.logit_scale == ref.st1.logit_scale && r.st1.tokens == ref.st1.tokens);
        assert_true(r.st2.loss == ref.st2.loss && r.st2.grad_norm == ref.st2.grad_norm);
        same_bits("trained encoding", g_backends[b], r.e_sess, ref.e_sess, PDIM);
        same_bits("step 2 encoding", g_backends[b], r.e_step2, ref.e_step2, PDIM);
        same_saved(root, g_backends[b]);
        print_message("CLIP train [%s]: losses, saved weights and encodings bit-identical to "
                      "cpu\n", g_backends[b]);
    }
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
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
    g_backends[g_n_backends++] = "cpu";
    if (dlv_backend_built("sim"))
        g_backends[g_n_backends++] = "sim";
    else
        printf("test_clip: this build has no sim backend; cpu only\n");
    if (dlv_st_open(g_golden, &g_gf) != DLV_OK) {
        fprintf(stderr, "%s\n", dlv_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_towers),
        cmocka_unit_test(test_pooling),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_hf_tokenizer),
        cmocka_unit_test(test_train_step),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dlv_st_close(g_gf);
    return rc;
}
