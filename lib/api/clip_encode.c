/* dlv_encode_images / dlv_encode_text for CLIPModel sessions (api/encode.c
 * branches here): the model's image processor, CLIP tokenization
 * (dlv_clip_tokenize), the two towers of model/clip_model.c, L2
 * normalisation. Weights come from the session's CLIP trainer when one is
 * training them. */
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "core/error.h"
#include "model/clip_model.h"
#include "model/model.h"
#include "train/clip_trainer.h"
#include "train/wview.h"

#define IMAGE_CHUNK 8
#define TEXT_CHUNK 16

static const dlv_wview *view(const dlv_session *s)
{
    return s->clip_trainer ? dlv_clip_trainer_view(s->clip_trainer) : NULL;
}

dlv_status dlv_clip_tokenize(const dlv_model *m, const char *text, int32_t **ids, int64_t *n)
{
    *ids = NULL;
    *n = 0;
    const dlv_clip_config *cfg = dlv_model_clip(m);
    const dlv_tokenizer *tok = dlv_model_get_tokenizer(m);
    if (!cfg) return dlv_error(DLV_E_INVALID_ARG, "%s is not a CLIPModel", dlv_model_dir(m));
    if (!tok)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no tokenizer (tokenizer.json) to tokenize "
                         "texts with", dlv_model_dir(m));
    size_t len = strlen(text), cnt = 0;
    dlv_status st = dlv_tokenize(tok, text, len, DLV_TOKENIZE_ADD_SPECIAL, NULL, 0, &cnt);
    if (st) return st;
    if (cnt == 0)
        return dlv_error(DLV_E_FORMAT, "%s: the tokenizer gives no ids for a text (CLIP needs "
                         "its post-processor's <|startoftext|> / <|endoftext|>)",
                         dlv_model_dir(m));
    int32_t *buf = malloc(cnt * sizeof *buf);
    if (!buf) return dlv_error_nomem("text ids", cnt * sizeof *buf);
    st = dlv_tokenize(tok, text, len, DLV_TOKENIZE_ADD_SPECIAL, buf, cnt, &cnt);
    if (st) {
        free(buf);
        return st;
    }
    /* truncation=True, max_length=max: the first max - 1 ids, then the
     * last one (the post-processor's EOS). */
    size_t max = (size_t)cfg->text.max_position_embeddings;
    if (cnt > max) {
        buf[max - 1] = buf[cnt - 1];
        cnt = max;
    }
    *ids = buf;
    *n = (int64_t)cnt;
    return DLV_OK;
}

static dlv_status out_ok(const dlv_session *s, size_t n, const float *out, size_t out_len,
                         const char *fn)
{
    size_t dim = (size_t)dlv_model_clip(s->model)->projection_dim;
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "%s: out is NULL", fn);
    if (n == 0) return dlv_error(DLV_E_INVALID_ARG, "%s: nothing to encode (n = 0)", fn);
    if (n > SIZE_MAX / dim || out_len < n * dim)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "%s: out holds %zu floats, %zu embeddings of "
                         "%zu need more", fn, out_len, n, dim);
    return DLV_OK;
}

dlv_status dlv_clip_encode_images(dlv_session *s, const dlv_image *const *images, size_t n,
                                  float *out, size_t out_len)
{
    static const char fn[] = "dlv_encode_images";
    dlv_status st = out_ok(s, n, out, out_len, fn);
    if (st) return st;
    const size_t dim = (size_t)dlv_model_clip(s->model)->projection_dim;
    size_t ch, h, w;
    if ((st = dlv_model_image_size(s->model, &ch, &h, &w))) return dlv_error_prefix(st, "%s", fn);
    const size_t per = ch * h * w;
    float *pixels = malloc(IMAGE_CHUNK * per * sizeof *pixels);
    if (!pixels) return dlv_error_nomem("image batch", IMAGE_CHUNK * per * sizeof(float));
    for (size_t i = 0; i < n && !st; i += IMAGE_CHUNK) {
        size_t c = n - i < IMAGE_CHUNK ? n - i : IMAGE_CHUNK;
        if ((st = dlv_session_check_cancel(s, fn))) break;
        for (size_t k = 0; k < c && !st; k++) {
            if (!images[i + k]) {
                st = dlv_error(DLV_E_INVALID_ARG, "%s: images[%zu] is NULL", fn, i + k);
                break;
            }
            st = dlv_preprocess_image(s->model, images[i + k], NULL, pixels + k * per, per);
            if (st) st = dlv_error_prefix(st, "%s: image %zu", fn, i + k);
        }
        float *o = out + i * dim;
        if (!st) st = dlv_clip_image_forward(s->model, s->backend, view(s), pixels,
                                             (int64_t)c, o, NULL);
        if (!st) st = dlv_l2_normalize(s->backend, o, o, (int64_t)c, (int64_t)dim);
        if (st) st = dlv_error_prefix(st, "%s: images %zu..%zu", fn, i, i + c - 1);
    }
    free(pixels);
    return st;
}

dlv_status dlv_clip_encode_text(dlv_session *s, const char *const *texts, size_t n, float *out,
                                size_t out_len)
{
    static const char fn[] = "dlv_encode_text";
    dlv_status st = out_ok(s, n, out, out_len, fn);
    if (st) return st;
    const size_t dim = (size_t)dlv_model_clip(s->model)->projection_dim;
    for (size_t i = 0; i < n && !st; i += TEXT_CHUNK) {
        size_t c = n - i < TEXT_CHUNK ? n - i : TEXT_CHUNK;
        int32_t *ids[TEXT_CHUNK] = {0};
        int64_t lens[TEXT_CHUNK] = {0};
        if ((st = dlv_session_check_cancel(s, fn))) break;
        for (size_t k = 0; k < c && !st; k++) {
            if (!texts[i + k]) st = dlv_error(DLV_E_INVALID_ARG, "%s: texts[%zu] is NULL", fn, i + k);
            else st = dlv_clip_tokenize(s->model, texts[i + k], &ids[k], &lens[k]);
            if (st) st = dlv_error_prefix(st, "%s: texts[%zu]", fn, i + k);
        }
        float *o = out + i * dim;
        if (!st)
            st = dlv_clip_text_forward(s->model, s->backend, view(s),
                                       (const int32_t *const *)ids, lens, (int64_t)c, o, NULL);
        if (!st) st = dlv_l2_normalize(s->backend, o, o, (int64_t)c, (int64_t)dim);
        for (size_t k = 0; k < c; k++) free(ids[k]);
    }
    return st;
}
