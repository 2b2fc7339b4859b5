/* The prompt template of the embedding sequences (docs/adapter-format.md):
 *   image: [BOS] + image.prefix + <image features> + soft prompt + image.suffix
 *   text:  [BOS] + text.prefix  + caption          + soft prompt + text.suffix
 * where the soft prompt defaults to the instruction's tokens.
 *
 * Two ways to turn a side into ids:
 *  - whole (the defaults, and prompts.json with "tokenize": "whole"): the
 *    side is one string, prefix + <image> or the caption + instruction +
 *    suffix, tokenized at once as a Hugging Face processor tokenizes its
 *    prompt (special tokens split out, the rest normalized and merged in
 *    context). The instruction's tokens are the ones between the string's
 *    tokenization up to the instruction and up to its end (see
 *    dlv_prompts_text_ids); the soft prompt replaces those.
 *  - pieces (prompts.json without "tokenize", as written before whole
 *    existed): each piece's ids are authoritative and concatenated, the
 *    caption tokenized on its own. */
#ifndef DLV_MODEL_PROMPTS_H
#define DLV_MODEL_PROMPTS_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"
#include "tokenizer/text_util.h"

typedef struct dlv_prompt_piece {
    char *text;         /* NULL when unknown (ids given without text) */
    int32_t *ids;       /* NULL when n == 0 */
    size_t n;
} dlv_prompt_piece;

typedef struct dlv_prompt_side {
    dlv_prompt_piece prefix, instruction, suffix;
} dlv_prompt_side;

typedef struct dlv_prompts {
    int whole;          /* 1: sides tokenized as one string (above); 0: pieces */
    int64_t vocab_size; /* the vocabulary the ids are for (prompts.json); 0: unknown */
    int add_bos;
    int32_t bos_id;     /* the model's bos_token_id, used when add_bos */
    dlv_prompt_side image, text;
} dlv_prompts;

/* The model family's default prompts, tokenized with the model's
 * tokenizer (DLV_E_UNSUPPORTED if the model has none). */
dlv_status dlv_prompts_default(const dlv_model *m, dlv_prompts *out);

/* The prompt families (their default wording and BOS rule). */
enum { DLV_PROMPT_FAMILY_LLAMA = 0, DLV_PROMPT_FAMILY_QWEN2 = 1, DLV_PROMPT_FAMILY_QWEN2VL = 2 };
struct dlv_llava_config;
int dlv_prompts_family(const struct dlv_llava_config *cfg);

/* The family's default prompts as texts, whole mode, no ids yet (BOS
 * added when has_bos, except for the Qwen families). */
dlv_status dlv_prompts_default_texts(int family, int has_bos, int32_t bos_id, dlv_prompts *out);

/* Whole mode: every piece's ids from the texts of p's sides, tokenized with
 * tok; image_id is the image token (an added token of tok, split out of the
 * image template; without it the image prefix is tokenized on its own).
 * The text side's ids are those around a one-letter caption, for the soft
 * prompt's first value; each caption gets its own (dlv_prompts_text_ids). */
dlv_status dlv_prompts_tokenize_whole(dlv_prompts *p, const dlv_tokenizer *tok,
                                      int32_t image_id);

/* Reads prompts.json at path: ids as given, absent ids tokenized from their
 * texts, absent add_bos from the model family. Validated against the model
 * (ids inside the vocabulary, no image token). */
dlv_status dlv_prompts_load(const dlv_model *m, const char *path, dlv_prompts *out);

/* Writes prompts.json (texts where known, every id) atomically. */
dlv_status dlv_prompts_save(const dlv_prompts *p, const char *path);

/* A deep copy. */
dlv_status dlv_prompts_copy(const dlv_prompts *src, dlv_prompts *dst);

void dlv_prompts_free(dlv_prompts *p);

/* One caption's text side: head (prefix + caption), instruction (what a soft
 * prompt replaces) and tail (suffix) ids. In whole mode the tokens of
 * S = prefix + caption + instruction + suffix are split where S's
 * tokenization stops agreeing with that of prefix + caption (head) and of
 * prefix + caption + instruction (head + instruction): a token that merges
 * across a boundary goes to the later part. In pieces mode head is the
 * prefix's ids then the caption's own, the rest the pieces' ids. */
typedef struct dlv_text_ids {
    dlv_ids head, instr, tail;
} dlv_text_ids;

dlv_status dlv_prompts_text_ids(const dlv_prompts *p, const dlv_tokenizer *tok,
                                const char *caption, size_t len, dlv_text_ids *out);
void dlv_text_ids_free(dlv_text_ids *t);

#endif
