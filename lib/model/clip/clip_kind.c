/* The CLIPModel kind (model/kind.h): its own towers (model/clip/clip.h), CLIP
 * tokenization, no adapters. A view is the model's typed weights (or a
 * trainer's, train/kind_clip.c). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/clip/clip.h"
#include "model/kind.h"
#include "model/model.h"
#include "tokenizer/text_util.h"
#include "tokenizer/tokenizer.h"
#include "image/image_source.h"

/* The text's ids with the post-processor's special tokens, untruncated. */
static dlv_status clip_ids(const dlv_model *m, const char *text, dlv_ids *out)
{
    memset(out, 0, sizeof *out);
    const dlv_tokenizer *tok = dlv_model_get_tokenizer(m);
    if (!dlv_model_clip(m))
        return dlv_error(DLV_E_INVALID_ARG, "%s is not a CLIPModel", dlv_model_dir(m));
    if (!tok)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no tokenizer (tokenizer.json) to tokenize "
                         "texts with", dlv_model_dir(m));
    dlv_status st = dlv_tokenizer_encode(tok, text, strlen(text), 1, out);
    if (!st && out->n == 0)
        st = dlv_error(DLV_E_FORMAT, "%s: the tokenizer gives no ids for a text (CLIP needs "
                       "its post-processor's <|startoftext|> / <|endoftext|>)", dlv_model_dir(m));
    if (st) dlv_ids_free(out);
    return st;
}

dlv_status dlv_clip_tokenize(const dlv_model *m, const char *text, int32_t **ids, int64_t *n)
{
    *ids = NULL;
    *n = 0;
    dlv_ids out;
    dlv_status st = clip_ids(m, text, &out);
    if (st) return st;
    const dlv_clip_config *cfg = dlv_model_clip(m);
    /* truncation=True, max_length=max: the first max - 1 ids, then the
     * last one (the post-processor's EOS). */
    size_t cnt = out.n, max = (size_t)cfg->text.max_position_embeddings;
    if (cnt > max) {
        out.v[max - 1] = out.v[cnt - 1];
        cnt = max;
    }
    *ids = out.v;
    *n = (int64_t)cnt;
    return DLV_OK;
}

static dlv_status view_new(const dlv_model *m, dlv_backend *be, const dlv_adapter *a, void **out)
{
    (void)be;
    (void)a; /* a CLIPModel has no adapter */
    *out = (void *)(uintptr_t)dlv_model_clip_w(m);
    return DLV_OK;
}

static void view_free(void *v) { (void)v; }

static dlv_status encode_images(const dlv_model *m, dlv_backend *be, const void *view,
                                const dlv_image *const *images, size_t n, float *out)
{
    const dlv_clip_config *cfg = dlv_model_clip(m);
    const dlv_preproc_config *pc = dlv_model_preproc(m);
    if (!pc)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no preprocessor_config.json",
                         dlv_model_dir(m));
    const dlv_vision_config *v = &cfg->vision;
    const size_t px = (size_t)(v->num_channels * v->image_size * v->image_size);
    const size_t P = (size_t)cfg->projection_dim;
    float *host = malloc(n * px * sizeof *host);
    dlv_buffer buf = {0};
    dlv_status st = host ? DLV_OK : dlv_error_nomem("image batch", n * px * sizeof(float));
    for (size_t i = 0; i < n && !st; i++) {
        st = dlv_image_to_pixels(pc, images[i], NULL, host + i * px, px);
        if (st) st = dlv_error_prefix(st, "image %zu", i);
    }
    if (!st) st = dlv_buffer_alloc(be, (n * px + n * P) * sizeof(float), &buf);
    float *dpx = dlv_buffer_ptr(&buf), *demb = dpx + n * px;
    if (!st) st = dlv_buffer_upload(&buf, 0, host, n * px * sizeof *host);
    if (!st) st = dlv_clip_image_forward(be, cfg, view, dpx, (int64_t)n, 1, NULL, demb);
    if (!st) st = dlv_l2_normalize(be, demb, demb, (int64_t)n, (int64_t)P);
    if (!st) st = dlv_buffer_download(out, &buf, n * px * sizeof(float), n * P * sizeof(float));
    dlv_buffer_free(&buf);
    free(host);
    return st ? dlv_error_prefix(st, "%s", dlv_model_dir(m)) : DLV_OK;
}

static dlv_status encode_texts(const dlv_model *m, dlv_backend *be, const void *view,
                               const char *const *texts, size_t n, size_t first, int truncate,
                               float *out)
{
    (void)truncate; /* CLIP always truncates (dlv_clip_tokenize) */
    const dlv_clip_config *cfg = dlv_model_clip(m);
    const size_t P = (size_t)cfg->projection_dim;
    int32_t **ids = calloc(n, sizeof *ids);
    int64_t *lens = calloc(n, sizeof *lens);
    dlv_buffer buf = {0};
    dlv_status st = ids && lens ? DLV_OK : dlv_error_nomem("text batch", n * 16);
    for (size_t i = 0; i < n && !st; i++) {
        st = dlv_clip_tokenize(m, texts[i], &ids[i], &lens[i]);
        if (st) st = dlv_error_prefix(st, "texts[%zu]", first + i);
    }
    if (!st) st = dlv_buffer_alloc(be, n * P * sizeof(float), &buf);
    float *demb = dlv_buffer_ptr(&buf);
    if (!st)
        st = dlv_clip_text_forward(be, cfg, view, (const int32_t *const *)ids, lens, (int64_t)n,
                                   1, NULL, demb);
    if (!st) st = dlv_l2_normalize(be, demb, demb, (int64_t)n, (int64_t)P);
    if (!st) st = dlv_buffer_download(out, &buf, 0, n * P * sizeof(float));
    dlv_buffer_free(&buf);
    for (size_t i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
    return st ? dlv_error_prefix(st, "%s", dlv_model_dir(m)) : DLV_OK;
}

static dlv_status text_positions(const dlv_model *m, const void *view, const char *text,
                                 int what, size_t *positions, size_t *max_positions)
{
    (void)view;
    if (what != DLV_POSITIONS_TEXT)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: a CLIPModel has no image-then-text sequences",
                         dlv_model_dir(m));
    dlv_ids ids;
    dlv_status st = clip_ids(m, text, &ids);
    *positions = ids.n;
    *max_positions = (size_t)dlv_model_clip(m)->text.max_position_embeddings;
    dlv_ids_free(&ids);
    return st;
}

static dlv_status model_logit_scale(const dlv_model *m, float *out)
{
    const dlv_st_tensor *t =
        dlv_weights_get(dlv_model_weights(m), DLV_PART_PROJECTOR, "logit_scale");
    if (!t) return dlv_error(DLV_E_FORMAT, "%s: no logit_scale", dlv_model_dir(m));
    return dlv_st_read_f32(t, 0, 1, out);
}

const dlv_model_kind dlv_model_kind_clip = {
    .name = "clip",
    .has_adapters = 0,
    .view_new = view_new,
    .view_free = view_free,
    .encode_images = encode_images,
    .encode_texts = encode_texts,
    .text_positions = text_positions,
    .embed_tokens = NULL,
    .model_logit_scale = model_logit_scale,
};
