/* Assembling input embeddings from parts and reading the last position. */
#include "model/embed.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "model/text_model.h"
#include "model/vision_tower.h"
#include "train/text_train.h"
#include "train/vision_train.h"
#include "train/wview.h"

/* ids -> rows through the view's embedding table (trained or not). */
static dlv_status view_embed_ids(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                 const int32_t *ids, int64_t n, float *out)
{
    const dlv_text_config *t = &dlv_model_config(m)->text;
    const dlv_st_tensor *table = dlv_wview_get(wv, DLV_PART_TEXT, "embed_tokens.weight", NULL);
    if (!table || table->n_elements != (uint64_t)t->vocab_size * (uint64_t)t->hidden_size)
        return dlv_error(DLV_E_FORMAT, "%s: embed_tokens.weight is missing or mis-shaped",
                         dlv_model_dir(m));
    dlv_status st = dlv_embedding(be, out, table->data, table->dtype, ids, n, t->vocab_size,
                                  t->hidden_size);
    return st ? dlv_error_prefix(st, "%s: embed_tokens", dlv_model_dir(m)) : DLV_OK;
}

/* The decoder through the training pass (no tape) on a view, then each
 * row's last real position. */
static dlv_status view_text_forward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                    const dlv_lora *lora, const float *embeds,
                                    const int32_t *lengths, int64_t n, int64_t max_len,
                                    float *out)
{
    const size_t H = (size_t)dlv_model_config(m)->text.hidden_size;
    float *hidden = malloc((size_t)n * (size_t)max_len * H * sizeof *hidden);
    if (!hidden) return dlv_error_nomem("hidden states", (size_t)n * (size_t)max_len * H * 4);
    dlv_status st = dlv_text_train_forward(m, be, wv, lora, embeds, lengths, n, max_len, 0, NULL,
                                           hidden);
    for (int64_t s = 0; s < n && !st; s++)
        memcpy(out + (size_t)s * H,
               hidden + ((size_t)s * (size_t)max_len + (size_t)lengths[s] - 1) * H,
               H * sizeof *out);
    free(hidden);
    return st;
}

dlv_status dlv_embed_sequences(const dlv_model *m, dlv_backend *be, const struct dlv_wview *wv,
                               const dlv_lora *lora, const dlv_seq *seqs, int64_t n_seq,
                               int normalize, float *out, size_t out_len)
{
    const int64_t hidden = dlv_model_config(m)->text.hidden_size;
    if (n_seq < 1 || !seqs || !out)
        return dlv_error(DLV_E_INVALID_ARG, "%s: embed: no sequences", dlv_model_dir(m));
    if (out_len < (size_t)n_seq * (size_t)hidden)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "%s: embed: out holds %zu floats, %lld "
                         "embeddings need %zu", dlv_model_dir(m), out_len, (long long)n_seq,
                         (size_t)n_seq * (size_t)hidden);
    int32_t *lengths = malloc((size_t)n_seq * sizeof *lengths);
    if (!lengths) return dlv_error_nomem("sequence lengths", (size_t)n_seq * sizeof(int32_t));
    int64_t max_len = 0;
    for (int64_t s = 0; s < n_seq; s++) {
        int64_t len = 0;
        for (size_t p = 0; p < seqs[s].n_parts; p++) {
            if (seqs[s].parts[p].n < 0 || seqs[s].parts[p].n > INT32_MAX - len) {
                free(lengths);
                return dlv_error(DLV_E_INVALID_ARG, "%s: embed: sequence %lld is too long",
                                 dlv_model_dir(m), (long long)s);
            }
            len += seqs[s].parts[p].n;
        }
        if (len < 1) {
            free(lengths);
            return dlv_error(DLV_E_INVALID_ARG, "%s: embed: sequence %lld is empty (no prompt, "
                             "no tokens)", dlv_model_dir(m), (long long)s);
        }
        lengths[s] = (int32_t)len;
        if (len > max_len) max_len = len;
    }
    const size_t row_floats = (size_t)max_len * (size_t)hidden;
    if ((size_t)n_seq > SIZE_MAX / sizeof(float) / row_floats) {
        free(lengths);
        return dlv_error(DLV_E_INVALID_ARG, "%s: embed: batch too large", dlv_model_dir(m));
    }
    /* Padding positions stay zero; they are masked and never read. */
    float *embeds = calloc((size_t)n_seq * row_floats, sizeof *embeds);
    if (!embeds) {
        free(lengths);
        return dlv_error_nomem("input embeddings", (size_t)n_seq * row_floats * sizeof(float));
    }
    dlv_status st = DLV_OK;
    for (int64_t s = 0; s < n_seq && !st; s++) {
        float *dst = embeds + (size_t)s * row_floats;
        for (size_t p = 0; p < seqs[s].n_parts && !st; p++) {
            const dlv_seq_part *part = &seqs[s].parts[p];
            const size_t n_floats = (size_t)part->n * (size_t)hidden;
            if (part->n == 0) continue;
            if (part->ids)
                st = wv ? view_embed_ids(m, be, wv, part->ids, part->n, dst)
                        : dlv_text_embed_ids(m, be, part->ids, part->n, dst, n_floats);
            else if (part->rows)
                memcpy(dst, part->rows, n_floats * sizeof *dst);
            else
                st = dlv_error(DLV_E_INVALID_ARG, "embed: part %zu has neither ids nor rows", p);
            dst += n_floats;
        }
    }
    if (!st && wv)
        st = view_text_forward(m, be, wv, lora, embeds, lengths, n_seq, max_len, out);
    else if (!st)
        st = dlv_text_forward_lora(m, be, lora, embeds, lengths, n_seq, max_len, out, out_len,
                                   NULL, 0);
    if (!st && normalize) st = dlv_l2_normalize(be, out, out, n_seq, hidden);
    free(embeds);
    free(lengths);
    return st;
}

/* Preprocessed pixels of n images and their projected features
 * [n, n_tokens, hidden]; *feats is the caller's to free. */
dlv_status dlv_embed_image_features(const dlv_model *m, dlv_backend *be,
                                    const struct dlv_wview *wv, const dlv_image *const *images,
                                    size_t n, float **feats, int64_t *n_tokens)
{
    const dlv_llava_config *cfg = dlv_model_config(m);
    size_t c, h, w;
    dlv_status st = dlv_model_image_size(m, &c, &h, &w);
    if (st) return st;
    const size_t per = c * h * w;
    *n_tokens = dlv_vision_n_tokens(cfg);
    const size_t feat_len = n * (size_t)*n_tokens * (size_t)cfg->text.hidden_size;
    float *pixels = malloc(n * per * sizeof *pixels);
    *feats = malloc(feat_len * sizeof **feats);
    if (!pixels || !*feats) {
        free(pixels);
        free(*feats);
        *feats = NULL;
        return dlv_error_nomem("image batch", n * (per + feat_len / n) * sizeof(float));
    }
    for (size_t i = 0; i < n && !st; i++) {
        st = dlv_preprocess_image(m, images[i], NULL, pixels + i * per, per);
        if (st) st = dlv_error_prefix(st, "image %zu", i);
    }
    if (!st && wv)
        st = dlv_vision_train_forward(m, be, wv, pixels, (int64_t)n, NULL, *feats);
    else if (!st)
        st = dlv_vision_features(m, be, pixels, (int64_t)n, *feats, feat_len);
    free(pixels);
    if (st) {
        free(*feats);
        *feats = NULL;
    }
    return st;
}

