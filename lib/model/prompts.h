/* The prompt template of the embedding sequences (docs/adapter-format.md):
 *   image: [BOS] + image.prefix + <image features> + soft prompt + image.suffix
 *   text:  [BOS] + text.prefix  + caption ids      + soft prompt + text.suffix
 * where the soft prompt defaults to the embeddings of instruction ids.
 * Token ids are authoritative; the texts are kept for people and for
 * prompts.json. */
#ifndef DLV_MODEL_PROMPTS_H
#define DLV_MODEL_PROMPTS_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

typedef struct dlv_prompt_piece {
    char *text;         /* NULL when unknown (ids given without text) */
    int32_t *ids;       /* NULL when n == 0 */
    size_t n;
} dlv_prompt_piece;

typedef struct dlv_prompt_side {
    dlv_prompt_piece prefix, instruction, suffix;
} dlv_prompt_side;

typedef struct dlv_prompts {
    int add_bos;
    int32_t bos_id;     /* the model's bos_token_id, used when add_bos */
    dlv_prompt_side image, text;
} dlv_prompts;

/* The model family's default prompts, tokenized with the model's
 * tokenizer (DLV_E_UNSUPPORTED if the model has none). */
dlv_status dlv_prompts_default(const dlv_model *m, dlv_prompts *out);

/* Reads prompts.json at path: ids as given, absent ids tokenized from their
 * texts, absent add_bos from the model family. Validated against the model
 * (ids inside the vocabulary, no image token). */
dlv_status dlv_prompts_load(const dlv_model *m, const char *path, dlv_prompts *out);

/* Writes prompts.json (texts where known, every id) atomically. */
dlv_status dlv_prompts_save(const dlv_prompts *p, const char *path);

/* A deep copy. */
dlv_status dlv_prompts_copy(const dlv_prompts *src, dlv_prompts *dst);

void dlv_prompts_free(dlv_prompts *p);

#endif
