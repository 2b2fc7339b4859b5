/* Direct readers for tokenizer.json's model.vocab and model.merges (see
 * vocab_fast.c for why jansson is bypassed for these two members). */
#ifndef DLV_TOKENIZER_VOCAB_FAST_H
#define DLV_TOKENIZER_VOCAB_FAST_H

#include <stddef.h>

#include "tokenizer/tokenizer.h"

typedef struct dlv_span {
    size_t off, len;
    int found;
} dlv_span;

/* The byte ranges of the values of model.vocab and model.merges (found = 0
 * when absent). Malformed JSON on the way is DLV_E_FORMAT. */
dlv_status dlv_tokjson_locate(const char *text, size_t len, const char *label, dlv_span *vocab,
                              dlv_span *merges);
/* Fills bpe->tokens, lens, n_tokens and vocab from the vocab object. */
dlv_status dlv_tokjson_vocab(dlv_bpe *bpe, const char *text, dlv_span sp, const char *label);

typedef dlv_status (*dlv_merge_fn)(void *ctx, const char *a, size_t na, const char *b, size_t nb,
                                   size_t rank);
/* Calls add for each merge, in order, in either JSON form. */
dlv_status dlv_tokjson_merges(const char *text, dlv_span sp, const char *label, dlv_merge_fn add,
                              void *ctx);

#endif
