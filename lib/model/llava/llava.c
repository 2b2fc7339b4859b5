/* LLaVA's embedding sequences and inference forward (see llava.h). */
#include "model/llava/llava.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/llava/llava_vision.h"
#include "model/model.h"
#include "model/qwen2vl/qwen2vl_seq.h"

static const int32_t no_ids[1] = {0};

static dlv_seq_part ids_part(const int32_t *ids, size_t n)
{
    return (dlv_seq_part){ids ? ids : no_ids, NULL, (int64_t)n, NULL, NULL};
}

void dlv_llava_side_parts(const dlv_llava_params *p, int image_side, const int32_t *bos,
                          dlv_seq_part features, const dlv_text_ids *text, dlv_seq_part cont,
                          float *soft_grad, dlv_seq_part parts[DLV_LLAVA_SEQ_PARTS])
{
    const dlv_prompts *pr = p->prompts;
    const dlv_prompt_side *side = image_side ? &pr->image : &pr->text;
    const float *soft = image_side ? p->image_prompt : p->text_prompt;
    parts[0] = ids_part(bos, pr->add_bos ? 1 : 0);
    if (image_side) {
        parts[1] = ids_part(side->prefix.ids, side->prefix.n);
        parts[2] = features;
    } else {
        /* The text side's ids are the caption's own (dlv_prompts_text_ids). */
        parts[1] = ids_part(NULL, 0);
        parts[2] = ids_part(text->head.v, text->head.n);
    }
    if (soft)
        parts[3] = (dlv_seq_part){NULL, soft, image_side ? p->n_image_prompt : p->n_text_prompt,
                                  soft_grad, NULL};
    else if (image_side)
        parts[3] = ids_part(side->instruction.ids, side->instruction.n);
    else
        parts[3] = ids_part(text->instr.v, text->instr.n);
    parts[4] = image_side ? ids_part(side->suffix.ids, side->suffix.n)
                          : ids_part(text->tail.v, text->tail.n);
    parts[5] = cont.n ? cont : ids_part(NULL, 0);
}

int64_t dlv_llava_embed_position(const dlv_seq_part parts[DLV_LLAVA_SEQ_PARTS])
{
    int64_t n = 0;
    for (int i = 0; i < DLV_LLAVA_SEQ_PARTS - 1; i++) n += parts[i].n;
    return n - 1;
}

/* A side's length before any continuation, counted over the parts the
 * sequence is built from (so the two cannot disagree). */
static int64_t side_positions(const dlv_llava_params *p, int image_side, int64_t n_features,
                              const dlv_text_ids *t)
{
    static const int32_t bos = 0;
    const dlv_seq_part features = {NULL, NULL, n_features, NULL, NULL}, none = {0};
    dlv_seq_part parts[DLV_LLAVA_SEQ_PARTS];
    dlv_llava_side_parts(p, image_side, &bos, features, t, none, NULL, parts);
    return dlv_llava_embed_position(parts) + 1;
}

int64_t dlv_llava_text_positions(const dlv_llava_params *p, const dlv_text_ids *t)
{
    return side_positions(p, 0, 0, t);
}

int64_t dlv_llava_image_positions(const dlv_llava_params *p, int64_t n_features)
{
    return side_positions(p, 1, n_features, NULL);
}

dlv_status dlv_llava_image_fit(const dlv_model *m, const dlv_llava_params *p,
                               int64_t *positions)
{
    dlv_llava_dims d;
    dlv_llava_dims_of(dlv_model_config(m), &d);
    const int64_t n = dlv_llava_image_positions(p, d.n_features);
    const int64_t max = dlv_model_config(m)->text.max_position_embeddings;
    if (positions) *positions = n;
    if (n > max)
        return dlv_error(DLV_E_INVALID_ARG, "%s: the image prompt has %lld positions (%lld "
                         "image features and the prompt), more than the model's "
                         "max_position_embeddings (%lld)", dlv_model_dir(m), (long long)n,
                         (long long)d.n_features, (long long)max);
    return DLV_OK;
}

dlv_status dlv_llava_text_fit(const dlv_llava_params *p, dlv_text_ids *t, int64_t max_positions,
                              int truncate, int64_t *cut)
{
    *cut = 0;
    const int64_t n = dlv_llava_text_positions(p, t);
    if (n <= max_positions) return DLV_OK;
    const int64_t over = n - max_positions, keep = (int64_t)p->prompts->text.prefix.n;
    if (truncate && (int64_t)t->head.n - over >= keep) {
        t->head.n -= (size_t)over;
        *cut = over;
        return DLV_OK;
    }
    if (truncate)
        return dlv_error(DLV_E_INVALID_ARG, "the text prompt has %lld positions without any "
                         "caption, more than the model's max_position_embeddings (%lld)",
                         (long long)(n - ((int64_t)t->head.n - keep)),
                         (long long)max_positions);
    return dlv_error(DLV_E_INVALID_ARG, "the text prompt has %lld positions, more than the "
                     "model's max_position_embeddings (%lld): shorten the text by %lld "
                     "tokens, or truncate (--truncate, dlv_session_options_set_truncate)",
                     (long long)n, (long long)max_positions, (long long)over);
}

dlv_status dlv_llava_run_seqs(const dlv_model *m, dlv_backend *be, const dlv_llava_params *p,
                              const dlv_seq *seqs, int64_t n, int normalize, float *out)
{
    const dlv_llava_config *cfg = dlv_model_config(m);
    dlv_llava_dims d;
    dlv_llava_dims_of(cfg, &d);
    const int64_t H = d.text.hidden;
    dlv_seq_batch b;
    dlv_status st = dlv_seq_batch_build(be, dlv_model_dir(m), &p->w->embed_tokens, d.vocab, H,
                                        seqs, n, &b);
    dlv_buffer hidden = {0};
    int64_t *at = malloc((size_t)n * sizeof *at);
    if (!st && !at) st = dlv_error_nomem("positions", (size_t)n * sizeof *at);
    if (!st) st = dlv_buffer_alloc(be, (size_t)(n * b.len * H) * sizeof(float), &hidden);
    /* Qwen2-VL: M-RoPE tables from the sequences' images and text. */
    dlv_buffer rbuf = {0};
    dlv_decoder_rope rope = {0};
    if (!st && d.qwen2vl)
        st = dlv_qwen2vl_seq_rope(be, &d, seqs, n, b.lengths, b.len, &rbuf, &rope);
    if (!st)
        st = dlv_decoder_forward_rope(be, &d.text, &p->w->text, p->lora, d.qwen2vl ? &rope : NULL,
                                      dlv_buffer_ptr(&b.x), b.lengths, n, b.len, 0, NULL,
                                      dlv_buffer_ptr(&hidden), NULL);
    dlv_buffer_free(&rbuf);
    if (st) st = dlv_error_prefix(st, "%s: language model", dlv_model_dir(m));
    for (int64_t i = 0; i < n && at; i++) at[i] = b.lengths ? b.lengths[i] - 1 : 0;
    if (!st) st = dlv_seq_gather_rows(be, dlv_buffer_ptr(&hidden), b.len, H, at, n, out);
    if (!st && normalize) st = dlv_l2_normalize(be, out, out, n, H);
    free(at);
    dlv_buffer_free(&hidden);
    dlv_seq_batch_free(&b);
    return st;
}

void dlv_llava_feats_free(dlv_llava_feats *f)
{
    if (!f) return;
    dlv_buffer_free(&f->buf);
    free(f->count);
    free(f->offset);
    free(f->grid);
    memset(f, 0, sizeof *f);
}

dlv_status dlv_llava_image_features(const dlv_model *m, dlv_backend *be,
                                    const dlv_llava_params *p, const float *pixels, int64_t n,
                                    float *features)
{
    dlv_llava_dims d;
    dlv_llava_dims_of(dlv_model_config(m), &d);
    dlv_status st = dlv_llava_vision_forward(be, &d, p->w, pixels, n, 0, 0, NULL, features, NULL);
    return st ? dlv_error_prefix(st, "%s", dlv_model_dir(m)) : DLV_OK;
}
