/* Embedding sequences: a sequence is a list of parts, each either token ids
 * (looked up in the language model's embedding table) or ready rows of
 * hidden_size floats (projected image features, soft prompts). The
 * sequences of a call are right-padded into one batch and run through the
 * decoder; the result per sequence is the final-norm hidden state at its last
 * position, L2-normalised or raw. */
#ifndef DLV_MODEL_EMBED_H
#define DLV_MODEL_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/lora.h"

typedef struct dlv_seq_part {
    const int32_t *ids;   /* ids part when non-NULL ... */
    const float *rows;    /* ... else n rows of hidden_size floats */
    int64_t n;            /* ids or rows; 0 is an empty part */
} dlv_seq_part;

typedef struct dlv_seq {
    const dlv_seq_part *parts;
    size_t n_parts;
} dlv_seq;

struct dlv_wview;

/* out [n_seq, hidden] (out_len floats). lora may be NULL. Each sequence
 * must have at least one position. wv NULL reads the checkpoint's weights
 * (the inference forward); a weight view (train/wview.h, weights being
 * trained) runs the training pass without a tape, which gives the same
 * results for the same weights. */
dlv_status dlv_embed_sequences(const dlv_model *m, dlv_backend *be, const struct dlv_wview *wv,
                               const dlv_lora *lora, const dlv_seq *seqs, int64_t n_seq,
                               int normalize, float *out, size_t out_len);

/* Decodes and preprocesses n images (the model's image processor, default
 * options) and runs the vision tower and projector (wv as above): *feats [n, n_tokens,
 * hidden] is the caller's to free. An image's error names its index. */
dlv_status dlv_embed_image_features(const dlv_model *m, dlv_backend *be,
                                    const struct dlv_wview *wv, const dlv_image *const *images,
                                    size_t n, float **feats, int64_t *n_tokens);

#endif
