/* Image and text embeddings (docs/adapter-format.md, "The embedding
 * sequences"): inputs are preprocessed / tokenized here, split into chunks
 * so memory stays bounded for any n, and run through model/embed.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/image.h"
#include "api/session.h"
#include "core/error.h"
#include "model/clip_model.h"
#include "model/embed.h"
#include "model/model.h"
#include "model/vision_tower.h"
#include "train/trainer.h"
#include "train/wview.h"

/* Inputs per forward pass. Results do not depend on it (rows are
 * independent); it only bounds the scratch memory. */
#define IMAGE_CHUNK 8
#define TEXT_CHUNK 16

static dlv_status check_out(dlv_session *s, size_t n, const float *out, size_t out_len,
                            const char *fn)
{
    if (!s) return dlv_error(DLV_E_INVALID_ARG, "%s: session is NULL", fn);
    if (n == 0) return dlv_error(DLV_E_INVALID_ARG, "%s: nothing to encode (n = 0)", fn);
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "%s: out is NULL", fn);
    size_t dim = dlv_session_embed_dim(s);
    if (dim == 0) return dlv_error(DLV_E_INVALID_ARG, "%s: the session's model has no embedding size", fn);
    if (n > SIZE_MAX / dim || out_len < n * dim)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL,
                         "%s: out holds %zu floats, %zu embeddings of %zu need more", fn,
                         out_len, n, dim);
    return DLV_OK;
}

/* The weights being trained, when training changes the model's own weights
 * (projector, language model, vision tower); NULL: the checkpoint's. */
static const dlv_wview *session_view(const dlv_session *s)
{
    return s->trainer ? dlv_trainer_view(s->trainer) : NULL;
}

static const dlv_lora *adapter_lora(const dlv_adapter *a)
{
    return a && a->has_lora ? &a->lora : NULL;
}

/* The five parts [BOS] + prefix + middle + soft prompt + suffix. */
static void side_parts(const dlv_prompts *p, const dlv_prompt_side *side, const int32_t *bos,
                       dlv_seq_part middle, const float *soft, int64_t n_soft,
                       dlv_seq_part parts[5])
{
    parts[0] = (dlv_seq_part){bos, NULL, p->add_bos ? 1 : 0};
    parts[1] = (dlv_seq_part){side->prefix.ids, NULL, (int64_t)side->prefix.n};
    parts[2] = middle;
    if (soft)
        parts[3] = (dlv_seq_part){NULL, soft, n_soft};
    else
        parts[3] = (dlv_seq_part){side->instruction.ids, NULL, (int64_t)side->instruction.n};
    parts[4] = (dlv_seq_part){side->suffix.ids, NULL, (int64_t)side->suffix.n};
}

static dlv_status encode_image_chunk(dlv_session *s, const dlv_adapter *a,
                                     const dlv_image *const *images, size_t n, float *out,
                                     size_t out_len)
{
    float *feats = NULL;
    int64_t n_tokens = 0;
    dlv_status st = dlv_embed_image_features(s->model, s->backend, session_view(s), images, n, &feats, &n_tokens);
    if (st) return st;
    const size_t hidden = (size_t)dlv_model_config(s->model)->text.hidden_size;
    const int32_t bos = a->prompts.bos_id;
    dlv_seq_part parts[IMAGE_CHUNK][5];
    dlv_seq seqs[IMAGE_CHUNK];
    for (size_t i = 0; i < n; i++) {
        dlv_seq_part mid = {NULL, feats + i * (size_t)n_tokens * hidden, n_tokens};
        side_parts(&a->prompts, &a->prompts.image, &bos, mid, a->image_prompt,
                   a->n_image_prompt, parts[i]);
        seqs[i] = (dlv_seq){parts[i], 5};
    }
    st = dlv_embed_sequences(s->model, s->backend, session_view(s), adapter_lora(a), seqs, (int64_t)n, 1, out,
                             out_len);
    free(feats);
    return st;
}

DLV_API dlv_status dlv_encode_images(dlv_session *session, const dlv_image *const *images,
                                     size_t n, float *out, size_t out_len)
{
    static const char fn[] = "dlv_encode_images";
    dlv_status st = check_out(session, n, out, out_len, fn);
    if (st != DLV_OK) return st;
    if (!images) return dlv_error(DLV_E_INVALID_ARG, "%s: images is NULL", fn);
    for (size_t i = 0; i < n; i++)
        if (!images[i]) return dlv_error(DLV_E_INVALID_ARG, "%s: images[%zu] is NULL", fn, i);
    /* CLIPModel: its own towers (api/clip_encode.c). */
    if (dlv_model_clip(session->model)) return dlv_clip_encode_images(session, images, n, out, out_len);
    const dlv_adapter *a;
    if ((st = dlv_session_adapter(session, &a))) return dlv_error_prefix(st, "%s", fn);
    const size_t dim = dlv_session_embed_dim(session);
    for (size_t i = 0; i < n; i += IMAGE_CHUNK) {
        if ((st = dlv_session_check_cancel(session, fn))) return st;
        size_t c = n - i < IMAGE_CHUNK ? n - i : IMAGE_CHUNK;
        st = encode_image_chunk(session, a, images + i, c, out + i * dim, c * dim);
        if (st) return dlv_error_prefix(st, "%s: images %zu..%zu", fn, i, i + c - 1);
    }
    return DLV_OK;
}

static dlv_status encode_one(dlv_session *s, const dlv_image *img, float *out, size_t out_len)
{
    const dlv_image *one[1] = {img};
    return dlv_encode_images(s, one, 1, out, out_len);
}

DLV_API dlv_status dlv_encode_image_file(dlv_session *session, const char *path, float *out,
                                         size_t out_len)
{
    dlv_status st = check_out(session, 1, out, out_len, "dlv_encode_image_file");
    if (st != DLV_OK) return st;
    if (!path) return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_image_file: path is NULL");
    dlv_image *img = NULL;
    if ((st = dlv_image_from_file(path, &img))) return st;
    st = encode_one(session, img, out, out_len);
    dlv_image_free(img);
    return st;
}

DLV_API dlv_status dlv_encode_image_memory(dlv_session *session, const void *data,
                                           size_t n_bytes, float *out, size_t out_len)
{
    dlv_status st = check_out(session, 1, out, out_len, "dlv_encode_image_memory");
    if (st != DLV_OK) return st;
    if (!data || n_bytes == 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_image_memory: no data");
    dlv_image *img = NULL;
    if ((st = dlv_image_from_memory(data, n_bytes, &img))) return st;
    st = encode_one(session, img, out, out_len);
    dlv_image_free(img);
    return st;
}

DLV_API dlv_status dlv_encode_image_rgb(dlv_session *session, const uint8_t *rgb,
                                        uint32_t width, uint32_t height, size_t stride_bytes,
                                        float *out, size_t out_len)
{
    dlv_status st = check_out(session, 1, out, out_len, "dlv_encode_image_rgb");
    if (st != DLV_OK) return st;
    if (!rgb || width == 0 || height == 0 || stride_bytes < (size_t)width * 3u)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_encode_image_rgb: bad image (NULL data, empty, or stride < 3 * width)");
    dlv_image *img = NULL;
    if ((st = dlv_image_from_rgb(rgb, width, height, stride_bytes, &img))) return st;
    st = encode_one(session, img, out, out_len);
    dlv_image_free(img);
    return st;
}

/* Caption ids without special tokens into *ids (caller frees). */
static dlv_status tokenize_caption(const dlv_tokenizer *tok, const char *text, size_t idx,
                                   int32_t **ids, size_t *n)
{
    size_t len = strlen(text);
    *ids = NULL;
    dlv_status st = dlv_tokenize(tok, text, len, 0, NULL, 0, n);
    if (st) return dlv_error_prefix(st, "texts[%zu]", idx);
    if (*n == 0) return DLV_OK;
    *ids = malloc(*n * sizeof **ids);
    if (!*ids) return dlv_error_nomem("caption ids", *n * sizeof **ids);
    st = dlv_tokenize(tok, text, len, 0, *ids, *n, n);
    if (st) {
        free(*ids);
        *ids = NULL;
        return dlv_error_prefix(st, "texts[%zu]", idx);
    }
    return DLV_OK;
}

static dlv_status encode_text_chunk(dlv_session *s, const dlv_adapter *a,
                                    const dlv_tokenizer *tok, const char *const *texts,
                                    size_t first, size_t n, float *out, size_t out_len)
{
    int32_t *ids[TEXT_CHUNK] = {0};
    size_t n_ids[TEXT_CHUNK] = {0};
    dlv_seq_part parts[TEXT_CHUNK][5];
    dlv_seq seqs[TEXT_CHUNK];
    const int32_t bos = a->prompts.bos_id;
    dlv_status st = DLV_OK;
    for (size_t i = 0; i < n && !st; i++) {
        st = tokenize_caption(tok, texts[i], first + i, &ids[i], &n_ids[i]);
        dlv_seq_part mid = {ids[i], NULL, (int64_t)n_ids[i]};
        /* An empty caption is an empty ids part, not a rows part. */
        static const int32_t none[1] = {0};
        if (!ids[i]) mid.ids = none;
        side_parts(&a->prompts, &a->prompts.text, &bos, mid, a->text_prompt, a->n_text_prompt,
                   parts[i]);
        seqs[i] = (dlv_seq){parts[i], 5};
    }
    if (!st)
        st = dlv_embed_sequences(s->model, s->backend, session_view(s), adapter_lora(a), seqs, (int64_t)n, 1, out,
                                 out_len);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    return st;
}

DLV_API dlv_status dlv_encode_text(dlv_session *session, const char *const *texts, size_t n,
                                   float *out, size_t out_len)
{
    static const char fn[] = "dlv_encode_text";
    dlv_status st = check_out(session, n, out, out_len, fn);
    if (st != DLV_OK) return st;
    if (!texts) return dlv_error(DLV_E_INVALID_ARG, "%s: texts is NULL", fn);
    for (size_t i = 0; i < n; i++)
        if (!texts[i]) return dlv_error(DLV_E_INVALID_ARG, "%s: texts[%zu] is NULL", fn, i);
    /* CLIPModel: its own towers (api/clip_encode.c). */
    if (dlv_model_clip(session->model)) return dlv_clip_encode_text(session, texts, n, out, out_len);
    const dlv_tokenizer *tok = dlv_model_get_tokenizer(session->model);
    if (!tok)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %s has no tokenizer (tokenizer.json or "
                         "tokenizer.model) to tokenize texts with", fn,
                         dlv_model_dir(session->model));
    const dlv_adapter *a;
    if ((st = dlv_session_adapter(session, &a))) return dlv_error_prefix(st, "%s", fn);
    const size_t dim = dlv_session_embed_dim(session);
    for (size_t i = 0; i < n; i += TEXT_CHUNK) {
        if ((st = dlv_session_check_cancel(session, fn))) return st;
        size_t c = n - i < TEXT_CHUNK ? n - i : TEXT_CHUNK;
        st = encode_text_chunk(session, a, tok, texts + i, i, c, out + i * dim, c * dim);
        if (st) return dlv_error_prefix(st, "%s", fn);
    }
    return DLV_OK;
}

DLV_API dlv_status dlv_embed_tokens(dlv_session *session, const int32_t *ids, size_t n_ids,
                                    const dlv_image *image, unsigned flags, float *out,
                                    size_t out_len)
{
    static const char fn[] = "dlv_embed_tokens";
    dlv_status st = check_out(session, 1, out, out_len, fn);
    if (st) return st;
    if (!ids || n_ids == 0) return dlv_error(DLV_E_INVALID_ARG, "%s: no token ids", fn);
    if (flags & ~DLV_EMBED_HIDDEN)
        return dlv_error(DLV_E_INVALID_ARG, "%s: unknown flags 0x%x", fn, flags);
    if (n_ids > INT32_MAX) return dlv_error(DLV_E_INVALID_ARG, "%s: too many ids", fn);
    if (dlv_model_clip(session->model))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: not available for a CLIPModel (use "
                         "dlv_encode_text)", fn);
    const dlv_llava_config *cfg = dlv_model_config(session->model);
    size_t at = SIZE_MAX, count = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] == cfg->image_token_index) {
            if (count++ == 0) at = i;
        }
    if (count > 1)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %zu image tokens (id %lld); at most one is "
                         "supported", fn, count, (long long)cfg->image_token_index);
    if (count == 1 && !image)
        return dlv_error(DLV_E_INVALID_ARG, "%s: ids[%zu] is the image token but no image is "
                         "given", fn, at);
    if (count == 0 && image)
        return dlv_error(DLV_E_INVALID_ARG, "%s: an image is given but the ids have no image "
                         "token (%lld)", fn, (long long)cfg->image_token_index);
    const dlv_lora *lora = session->adapter ? adapter_lora(session->adapter) : NULL;
    dlv_seq_part parts[3];
    dlv_seq seq = {parts, 1};
    float *feats = NULL;
    if (count == 0) {
        parts[0] = (dlv_seq_part){ids, NULL, (int64_t)n_ids};
    } else {
        int64_t n_tokens = 0;
        const dlv_image *one[1] = {image};
        if ((st = dlv_embed_image_features(session->model, session->backend, session_view(session), one, 1, &feats, &n_tokens)))
            return dlv_error_prefix(st, "%s", fn);
        parts[0] = (dlv_seq_part){ids, NULL, (int64_t)at};
        parts[1] = (dlv_seq_part){NULL, feats, n_tokens};
        parts[2] = (dlv_seq_part){ids + at + 1, NULL, (int64_t)(n_ids - at - 1)};
        seq.n_parts = 3;
    }
    st = dlv_embed_sequences(session->model, session->backend, session_view(session), lora, &seq, 1,
                             !(flags & DLV_EMBED_HIDDEN), out, out_len);
    free(feats);
    return st ? dlv_error_prefix(st, "%s", fn) : DLV_OK;
}
