/* The LLaVA model kind (model/kind.h): views with the adapter on the device,
 * and the encoders of both sides (model/llava/llava.h's sequences). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/kind.h"
#include "model/llava/llava.h"
#include "model/llava/llava_next.h"
#include "model/llava/llava_next_pack.h"
#include "model/model.h"
#include "model/qwen2vl/qwen2vl_seq.h"
#include "tokenizer/text_util.h"
#include "tokenizer/tokenizer.h"
#include "image/image_source.h"

/* A session's view: the model's weights, its adapter uploaded once. */
typedef struct llava_view {
    dlv_llava_params p;        /* first: what the encoders read */
    dlv_prompts prompts;
    dlv_buffer buf;            /* LoRA params, image prompt, text prompt */
    dlv_lora_pair *pairs;
    dlv_decoder_lora dl;
} llava_view;

static void view_free(void *v)
{
    llava_view *lv = v;
    if (!lv) return;
    dlv_prompts_free(&lv->prompts);
    dlv_buffer_free(&lv->buf);
    free(lv->pairs);
    free(lv);
}

static dlv_status view_new(const dlv_model *m, dlv_backend *be, const dlv_adapter *a, void **out)
{
    *out = NULL;
    if (!a) return dlv_error(DLV_E_INVALID_ARG, "%s: a LLaVA view needs an adapter (or the "
                             "model's defaults)", dlv_model_dir(m));
    llava_view *v = calloc(1, sizeof *v);
    if (!v) return dlv_error_nomem("adapter view", sizeof *v);
    const int64_t H = dlv_model_config(m)->text.hidden_size;
    const size_t n_lora = a->has_lora ? a->lora.n_params : 0;
    const size_t n_img = a->image_prompt ? (size_t)(a->n_image_prompt * H) : 0;
    const size_t n_txt = a->text_prompt ? (size_t)(a->n_text_prompt * H) : 0;
    dlv_status st = dlv_prompts_copy(&a->prompts, &v->prompts);
    if (!st) st = dlv_buffer_alloc(be, (n_lora + n_img + n_txt + 1) * sizeof(float), &v->buf);
    float *base = dlv_buffer_ptr(&v->buf);
    if (!st && n_lora) st = dlv_buffer_upload(&v->buf, 0, a->lora.params, n_lora * sizeof(float));
    if (!st && n_img)
        st = dlv_buffer_upload(&v->buf, n_lora * sizeof(float), a->image_prompt,
                               n_img * sizeof(float));
    if (!st && n_txt)
        st = dlv_buffer_upload(&v->buf, (n_lora + n_img) * sizeof(float), a->text_prompt,
                               n_txt * sizeof(float));
    if (!st && n_lora) {
        v->pairs = calloc((size_t)a->lora.n_layers * DLV_LORA_N_MODULES, sizeof *v->pairs);
        if (!v->pairs) st = dlv_error_nomem("LoRA pairs", 64);
        else {
            dlv_lora_pairs(&a->lora, base, v->pairs);
            v->dl = (dlv_decoder_lora){v->pairs, a->lora.rank};
        }
    }
    if (st) {
        view_free(v);
        return st;
    }
    v->p = (dlv_llava_params){
        .w = dlv_model_llava_w(m),
        .lora = n_lora ? &v->dl : NULL,
        .image_prompt = n_img ? base + n_lora : NULL, .n_image_prompt = a->n_image_prompt,
        .text_prompt = n_txt ? base + n_lora + n_img : NULL, .n_text_prompt = a->n_text_prompt,
        .prompts = &v->prompts,
    };
    *out = v;
    return DLV_OK;
}

/* Device [n, H] -> host out, then the scratch is freed. */
static dlv_status finish_out(dlv_buffer *buf, size_t off_floats, size_t n_floats, float *out,
                             dlv_status st)
{
    if (!st) st = dlv_buffer_download(out, buf, off_floats * sizeof(float),
                                      n_floats * sizeof(float));
    dlv_buffer_free(buf);
    return st;
}

/* The image side's positions for an image of n_features rows must fit. */
static dlv_status image_fits(const dlv_model *m, const dlv_llava_params *p, size_t i,
                             int64_t n_features)
{
    const int64_t n = dlv_llava_image_positions(p, n_features);
    const int64_t max = dlv_model_config(m)->text.max_position_embeddings;
    if (n > max)
        return dlv_error(DLV_E_INVALID_ARG, "image %zu: its prompt has %lld positions (%lld "
                         "image features and the prompt), more than the model's "
                         "max_position_embeddings (%lld)", i, (long long)n,
                         (long long)n_features, (long long)max);
    return DLV_OK;
}

/* Images with a feature count each (LLaVA-NeXT, Qwen2-VL): image i's
 * count[i] rows start at row offset[i] of feats (device); grid[i] is its
 * patch grid for M-RoPE (NULL: none). */
static dlv_status encode_varied(const dlv_model *m, dlv_backend *be, const dlv_llava_params *p,
                                const float *feats, const int64_t *count, const int64_t *offset,
                                const int64_t (*grid)[3], size_t n, float *out)
{
    const int64_t H = dlv_model_config(m)->text.hidden_size;
    dlv_seq_part (*parts)[DLV_LLAVA_SEQ_PARTS] = calloc(n, sizeof *parts);
    dlv_seq *seqs = calloc(n, sizeof *seqs);
    dlv_buffer buf = {0};
    dlv_status st = !parts || !seqs ? dlv_error_nomem("image batch", n * sizeof *parts) : DLV_OK;
    const int32_t bos = p->prompts->bos_id;
    for (size_t i = 0; i < n && !st; i++) {
        st = image_fits(m, p, i, count[i]);
        const dlv_seq_part mid = {NULL, feats + offset[i] * H, count[i], NULL,
                                  grid ? grid[i] : NULL},
                           none = {0};
        dlv_llava_side_parts(p, 1, &bos, mid, NULL, none, NULL, parts[i]);
        seqs[i] = (dlv_seq){parts[i], DLV_LLAVA_SEQ_PARTS};
    }
    if (!st) st = dlv_buffer_alloc(be, n * (size_t)H * sizeof(float), &buf);
    if (!st) st = dlv_llava_run_seqs(m, be, p, seqs, (int64_t)n, 1, dlv_buffer_ptr(&buf));
    free(parts);
    free(seqs);
    return finish_out(&buf, 0, n * (size_t)H, out, st);
}

/* The features of images that each have their own count: LLaVA-NeXT's
 * packed tiles or Qwen2-VL's merged patches (with their grids). */
static dlv_status varied_features(const dlv_model *m, dlv_backend *be, const dlv_llava_params *p,
                                  const dlv_image *const *images, size_t n, dlv_llava_feats *f)
{
    return dlv_model_config(m)->qwen2vl ? dlv_qwen2vl_image_features(m, be, p->w, images, n, f)
                                        : dlv_llava_next_image_features(m, be, p, images, n, f);
}

static dlv_status encode_images_varied(const dlv_model *m, dlv_backend *be,
                                       const dlv_llava_params *p,
                                       const dlv_image *const *images, size_t n, float *out)
{
    dlv_llava_feats f;
    dlv_status st = varied_features(m, be, p, images, n, &f);
    if (!st)
        st = encode_varied(m, be, p, dlv_buffer_ptr(&f.buf), f.count, f.offset,
                           (const int64_t(*)[3])f.grid, n, out);
    dlv_llava_feats_free(&f);
    return st;
}

static dlv_status encode_images(const dlv_model *m, dlv_backend *be, const void *view,
                                const dlv_image *const *images, size_t n, float *out)
{
    const dlv_llava_params *p = view;
    if (dlv_model_config(m)->anyres || dlv_model_config(m)->qwen2vl)
        return encode_images_varied(m, be, p, images, n, out);
    const dlv_preproc_config *pc = dlv_model_preproc(m);
    if (!pc)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no preprocessor_config.json",
                         dlv_model_dir(m));
    dlv_status pst = dlv_llava_image_fit(m, p, NULL);
    if (pst) return pst;
    dlv_llava_dims d;
    dlv_llava_dims_of(dlv_model_config(m), &d);
    const int64_t H = d.text.hidden, F = d.n_features;
    const size_t px = (size_t)(d.vision.channels * d.vision.image_size * d.vision.image_size);
    const size_t feat = (size_t)(F * H);
    float *host = malloc(n * px * sizeof *host);
    dlv_seq_part (*parts)[DLV_LLAVA_SEQ_PARTS] = calloc(n, sizeof *parts);
    dlv_seq *seqs = calloc(n, sizeof *seqs);
    dlv_buffer buf = {0};
    dlv_status st = !host || !parts || !seqs ? dlv_error_nomem("image batch", n * px * 4)
                                             : DLV_OK;
    for (size_t i = 0; i < n && !st; i++) {
        st = dlv_image_to_pixels(pc, images[i], NULL, host + i * px, px);
        if (st) st = dlv_error_prefix(st, "image %zu", i);
    }
    /* pixels [n, px], features [n, F, H], embeddings [n, H] */
    if (!st) st = dlv_buffer_alloc(be, (n * px + n * feat + n * (size_t)H) * sizeof(float), &buf);
    float *dpx = dlv_buffer_ptr(&buf), *dfeat = dpx + n * px, *demb = dfeat + n * feat;
    if (!st) st = dlv_buffer_upload(&buf, 0, host, n * px * sizeof *host);
    if (!st) st = dlv_llava_image_features(m, be, p, dpx, (int64_t)n, dfeat);
    const int32_t bos = p->prompts->bos_id;
    for (size_t i = 0; i < n && !st; i++) {
        const dlv_seq_part mid = {NULL, dfeat + i * feat, F, NULL, NULL}, none = {0};
        dlv_llava_side_parts(p, 1, &bos, mid, NULL, none, NULL, parts[i]);
        seqs[i] = (dlv_seq){parts[i], DLV_LLAVA_SEQ_PARTS};
    }
    if (!st) st = dlv_llava_run_seqs(m, be, p, seqs, (int64_t)n, 1, demb);
    free(host);
    free(parts);
    free(seqs);
    return finish_out(&buf, n * px + n * feat, n * (size_t)H, out, st);
}

/* The model's tokenizer, or DLV_E_UNSUPPORTED saying texts need one. */
static dlv_status text_tokenizer(const dlv_model *m, const dlv_tokenizer **out)
{
    *out = dlv_model_get_tokenizer(m);
    if (!*out)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no tokenizer (tokenizer.json or "
                         "tokenizer.model) to tokenize texts with", dlv_model_dir(m));
    return DLV_OK;
}

static dlv_status encode_texts(const dlv_model *m, dlv_backend *be, const void *view,
                               const char *const *texts, size_t n, size_t first, int truncate,
                               float *out)
{
    const dlv_llava_params *p = view;
    const dlv_tokenizer *tok = NULL;
    dlv_status tst = text_tokenizer(m, &tok);
    if (tst) return tst;
    const int64_t H = dlv_model_config(m)->text.hidden_size;
    dlv_text_ids *ids = calloc(n, sizeof *ids);
    dlv_seq_part (*parts)[DLV_LLAVA_SEQ_PARTS] = calloc(n, sizeof *parts);
    dlv_seq *seqs = calloc(n, sizeof *seqs);
    dlv_buffer buf = {0};
    dlv_status st = !ids || !parts || !seqs ? dlv_error_nomem("text batch", n * 64) : DLV_OK;
    const int32_t bos = p->prompts->bos_id;
    for (size_t i = 0; i < n && !st; i++) {
        /* The caption inside the text prompt, tokenized as one string. */
        st = dlv_prompts_text_ids(p->prompts, tok, texts[i], strlen(texts[i]), &ids[i]);
        int64_t cut = 0;
        if (!st)
            st = dlv_llava_text_fit(p, &ids[i], dlv_model_config(m)->text.max_position_embeddings,
                                    truncate, &cut);
        if (st) {
            st = dlv_error_prefix(st, "texts[%zu]", first + i);
            break;
        }
        const dlv_seq_part none = {0};
        dlv_llava_side_parts(p, 0, &bos, none, &ids[i], none, NULL, parts[i]);
        seqs[i] = (dlv_seq){parts[i], DLV_LLAVA_SEQ_PARTS};
    }
    if (!st) st = dlv_buffer_alloc(be, n * (size_t)H * sizeof(float), &buf);
    if (!st) st = dlv_llava_run_seqs(m, be, p, seqs, (int64_t)n, 1, dlv_buffer_ptr(&buf));
    for (size_t i = 0; ids && i < n; i++) dlv_text_ids_free(&ids[i]);
    free(ids);
    free(parts);
    free(seqs);
    return finish_out(&buf, 0, n * (size_t)H, out, st);
}

static dlv_status text_positions(const dlv_model *m, const void *view, const char *text,
                                 int what, size_t *positions, size_t *max_positions)
{
    const dlv_llava_params *p = view;
    const dlv_tokenizer *tok = NULL;
    dlv_status tst = text_tokenizer(m, &tok);
    if (tst) return tst;
    *max_positions = (size_t)dlv_model_config(m)->text.max_position_embeddings;
    dlv_status st;
    if (what == DLV_POSITIONS_TEXT) {
        dlv_text_ids t;
        st = dlv_prompts_text_ids(p->prompts, tok, text, strlen(text), &t);
        if (!st) *positions = (size_t)dlv_llava_text_positions(p, &t);
        dlv_text_ids_free(&t);
        return st;
    }
    /* Training's next-token sequence: the image prompt, then the long
     * caption's ids (its EOS is only a target). */
    dlv_llava_dims d;
    dlv_llava_dims_of(dlv_model_config(m), &d);
    dlv_ids ids = {0};
    st = dlv_tokenizer_encode(tok, text, strlen(text), 0, &ids);
    /* LLaVA-NeXT, Qwen2-VL: the image's count is not known here; the
     * largest any image can have bounds it (docs/models.md). */
    const dlv_llava_config *cfg = dlv_model_config(m);
    const int64_t f = cfg->anyres    ? dlv_llava_next_max_features(cfg)
                      : cfg->qwen2vl ? dlv_qwen2vl_max_features(m)
                                     : d.n_features;
    if (!st) *positions = (size_t)dlv_llava_image_positions(p, f) + ids.n;
    dlv_ids_free(&ids);
    return st;
}

/* embed_tokens with an image of its own feature count (LLaVA-NeXT,
 * Qwen2-VL): its features at image_at. */
static dlv_status embed_tokens_varied(const dlv_model *m, dlv_backend *be,
                                      const dlv_llava_params *p, const int32_t *ids,
                                      size_t n_ids, size_t image_at, const dlv_image *image,
                                      int normalize, float *out)
{
    const int64_t H = dlv_model_config(m)->text.hidden_size;
    dlv_llava_feats f;
    dlv_status st = varied_features(m, be, p, &image, 1, &f);
    dlv_buffer buf = {0};
    if (!st) st = dlv_buffer_alloc(be, (size_t)H * sizeof(float), &buf);
    if (!st) {
        dlv_seq_part parts[3] = {
            {ids, NULL, (int64_t)image_at, NULL, NULL},
            {NULL, dlv_buffer_ptr(&f.buf), f.count[0], NULL, f.grid ? f.grid[0] : NULL},
            {ids + image_at + 1, NULL, (int64_t)(n_ids - image_at - 1), NULL, NULL}};
        dlv_seq seq = {parts, 3};
        st = dlv_llava_run_seqs(m, be, p, &seq, 1, normalize, dlv_buffer_ptr(&buf));
    }
    dlv_llava_feats_free(&f);
    return finish_out(&buf, 0, (size_t)H, out, st);
}

static dlv_status embed_tokens(const dlv_model *m, dlv_backend *be, const void *view,
                               const int32_t *ids, size_t n_ids, size_t image_at,
                               const dlv_image *image, int normalize, float *out)
{
    const dlv_llava_params *p = view;
    if (image && (dlv_model_config(m)->anyres || dlv_model_config(m)->qwen2vl))
        return embed_tokens_varied(m, be, p, ids, n_ids, image_at, image, normalize, out);
    dlv_llava_dims d;
    dlv_llava_dims_of(dlv_model_config(m), &d);
    const int64_t H = d.text.hidden, F = image ? d.n_features : 0;
    const size_t px = (size_t)(d.vision.channels * d.vision.image_size * d.vision.image_size);
    float *host = image ? malloc(px * sizeof *host) : NULL;
    dlv_buffer buf = {0};
    dlv_status st = image && !host ? dlv_error_nomem("pixels", px * sizeof(float)) : DLV_OK;
    const dlv_preproc_config *pc = dlv_model_preproc(m);
    if (!st && image && !pc)
        st = dlv_error(DLV_E_UNSUPPORTED, "%s has no preprocessor_config.json", dlv_model_dir(m));
    if (!st && image) st = dlv_image_to_pixels(pc, image, NULL, host, px);
    /* [pixels, features] (with an image), then the embedding [H]. */
    const size_t off_emb = image ? px + (size_t)(F * H) : 0;
    if (!st) st = dlv_buffer_alloc(be, (off_emb + (size_t)H) * sizeof(float), &buf);
    float *base = dlv_buffer_ptr(&buf);
    if (!st && image) st = dlv_buffer_upload(&buf, 0, host, px * sizeof *host);
    if (!st && image) st = dlv_llava_image_features(m, be, p, base, 1, base + px);
    dlv_seq_part parts[3];
    dlv_seq seq = {parts, 1};
    if (image) {
        parts[0] = (dlv_seq_part){ids, NULL, (int64_t)image_at, NULL, NULL};
        parts[1] = (dlv_seq_part){NULL, base + px, F, NULL, NULL};
        parts[2] = (dlv_seq_part){ids + image_at + 1, NULL, (int64_t)(n_ids - image_at - 1), NULL,
                                  NULL};
        seq.n_parts = 3;
    } else {
        parts[0] = (dlv_seq_part){ids, NULL, (int64_t)n_ids, NULL, NULL};
    }
    if (!st) st = dlv_llava_run_seqs(m, be, p, &seq, 1, normalize, base + off_emb);
    free(host);
    return finish_out(&buf, off_emb, (size_t)H, out, st);
}

const dlv_model_kind dlv_model_kind_llava = {
    .name = "llava",
    .has_adapters = 1,
    .view_new = view_new,
    .view_free = view_free,
    .encode_images = encode_images,
    .encode_texts = encode_texts,
    .text_positions = text_positions,
    .embed_tokens = embed_tokens,
};
