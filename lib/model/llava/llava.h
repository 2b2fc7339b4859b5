/* LLaVA turned discriminative: the embedding sequences of both sides
 * (docs/adapter-format.md, "The embedding sequences") and their forward on
 * device tensors, for encoding and for the trainer.
 *
 *   image: [BOS] + prefix + features(image) + soft prompt + suffix
 *   text:  [BOS] + ids(prefix + caption)    + soft prompt + ids(suffix)
 *
 * (a side without a soft prompt uses its instruction's ids); the embedding
 * is the final-norm hidden state at the last position, L2-normalised. */
#ifndef DLV_MODEL_LLAVA_LLAVA_H
#define DLV_MODEL_LLAVA_LLAVA_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/llava/llava_weights.h"
#include "model/nn/decoder.h"
#include "model/prompts.h"
#include "model/seq.h"

/* What the sequences and the forward read: weights (the model's, or a
 * trainer's view with trained copies), LoRA, soft prompts (device) and
 * the prompt ids (host). */
typedef struct dlv_llava_params {
    const dlv_llava_w *w;
    const dlv_decoder_lora *lora;       /* NULL: none */
    const float *image_prompt;          /* device [n_image_prompt, hidden]; NULL: ids */
    int64_t n_image_prompt;
    const float *text_prompt;           /* device [n_text_prompt, hidden]; NULL: ids */
    int64_t n_text_prompt;
    const dlv_prompts *prompts;
} dlv_llava_params;

/* The parts of one side's sequence (6 entries: BOS, prefix, middle, soft
 * prompt or instruction ids, suffix, continuation ids). The image side's
 * middle is features (rows) between the image prompt's ids; the text side's
 * ids are one caption's (text, from dlv_prompts_text_ids: head, then the soft
 * prompt or the instruction, then tail). cont: the continuation (n 0 for
 * none). soft_grad: where the soft prompt's gradient goes (NULL: nowhere). */
#define DLV_LLAVA_SEQ_PARTS 6
void dlv_llava_side_parts(const dlv_llava_params *p, int image_side, const int32_t *bos,
                          dlv_seq_part features, const dlv_text_ids *text, dlv_seq_part cont,
                          float *soft_grad, dlv_seq_part parts[DLV_LLAVA_SEQ_PARTS]);

/* Position of the embedding (the last prompt position, before any
 * continuation) in a sequence of these parts. */
int64_t dlv_llava_embed_position(const dlv_seq_part parts[DLV_LLAVA_SEQ_PARTS]);

/* The positions of a text side's sequence for t, and of the image side's
 * (n_features image rows) before any continuation. */
int64_t dlv_llava_text_positions(const dlv_llava_params *p, const dlv_text_ids *t);
int64_t dlv_llava_image_positions(const dlv_llava_params *p, int64_t n_features);

/* The image side must fit the model's max_position_embeddings:
 * DLV_E_INVALID_ARG naming both numbers otherwise; *positions (may be NULL)
 * receives its length. */
dlv_status dlv_llava_image_fit(const dlv_model *m, const dlv_llava_params *p,
                               int64_t *positions);

/* Makes t's sequence fit max_positions: nothing when it does; with truncate
 * the caption's last tokens are cut (never the prompt's prefix: *cut says
 * how many); else, or when even that cannot fit, DLV_E_INVALID_ARG naming
 * both numbers. */
dlv_status dlv_llava_text_fit(const dlv_llava_params *p, dlv_text_ids *t, int64_t max_positions,
                              int truncate, int64_t *cut);

/* Inference: the sequences -> out [n, hidden] (device), the final-norm
 * hidden state at each sequence's last position, L2-normalised when
 * normalize. */
dlv_status dlv_llava_run_seqs(const dlv_model *m, dlv_backend *be, const dlv_llava_params *p,
                              const dlv_seq *seqs, int64_t n, int normalize, float *out);

/* n images' features when each image has its own count (LLaVA-NeXT's
 * packed tiles, Qwen2-VL's merged patches): image i's count[i] rows start
 * at row offset[i] of buf ([sum count, hidden] floats, device); grid (NULL
 * but for Qwen2-VL) holds each image's patch grid (t, h, w) for M-RoPE. */
typedef struct dlv_llava_feats {
    dlv_buffer buf;
    int64_t *count, *offset;
    int64_t (*grid)[3];
    size_t n;
} dlv_llava_feats;
void dlv_llava_feats_free(dlv_llava_feats *f);

/* Image features for n preprocessed images pixels [n, C, H, W] (device) ->
 * features [n, F, hidden] (device). */
dlv_status dlv_llava_image_features(const dlv_model *m, dlv_backend *be,
                                    const dlv_llava_params *p, const float *pixels, int64_t n,
                                    float *features);

#endif
