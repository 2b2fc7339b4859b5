/* Input-embedding sequences on the device: a sequence is a list of parts,
 * each token ids (host, looked up in the embedding table on the device) or
 * rows of hidden floats already on the device (projected image features, a
 * soft prompt). A batch right-pads the sequences into [n, len, hidden] for
 * the decoder (model/nn/decoder.h); its backward sends the gradient of each
 * position back to where it came from: the embedding table's gradient for
 * ids, a part's own gradient buffer for rows. */
#ifndef DLV_MODEL_SEQ_H
#define DLV_MODEL_SEQ_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"

typedef struct dlv_seq_part {
    const int32_t *ids;   /* host ids when non-NULL ... */
    const float *rows;    /* ... else n rows of hidden floats, device memory */
    int64_t n;            /* ids or rows; 0 is an empty part */
    float *grad;          /* rows only: device [n, hidden] that the backward adds
                           * the rows' gradient into; NULL: not wanted */
    const int64_t *grid;  /* rows only: an image's patch grid (t, h, w) for
                           * Qwen2-VL's M-RoPE positions (model/qwen2vl/
                           * qwen2vl_seq.h); NULL: the rows count as text */
} dlv_seq_part;

typedef struct dlv_seq {
    const dlv_seq_part *parts;
    size_t n_parts;
} dlv_seq;

typedef struct dlv_seq_batch {
    dlv_backend *be;
    int64_t n, len, hidden, vocab;
    int32_t *lengths;         /* [n] host: each sequence's length */
    const dlv_seq *seqs;      /* the caller's, valid until the backward */
    dlv_buffer ids;           /* every id part's ids, in order, device int32 */
    dlv_buffer x;             /* [n len, hidden] device: the embeddings, padding 0 */
} dlv_seq_batch;

/* Builds the batch: validates every id against vocab (naming the sequence
 * and position), uploads the ids, and writes x from table (the embedding
 * table [vocab, hidden], any float dtype) and the row parts. label names the
 * model in messages. Free with dlv_seq_batch_free (also after a failure). */
dlv_status dlv_seq_batch_build(dlv_backend *be, const char *label, const dlv_tensor *table,
                               int64_t vocab, int64_t hidden, const dlv_seq *seqs, int64_t n,
                               dlv_seq_batch *out);
void dlv_seq_batch_free(dlv_seq_batch *b);

/* The backward of the assembly for dx [n len, hidden] (device): each row
 * part's rows are added into its grad; id rows are added into dtable (f32
 * [vocab, hidden] device; NULL: the table is frozen). Padding is ignored. */
dlv_status dlv_seq_batch_backward(const dlv_seq_batch *b, const float *dx, float *dtable);

/* out [n, hidden] (device) = the rows of hidden [n len, hidden] at
 * positions at[i] of sequence i (device copies). */
dlv_status dlv_seq_gather_rows(dlv_backend *be, const float *hidden, int64_t len,
                               int64_t width, const int64_t *at, int64_t n, float *out);

#endif
