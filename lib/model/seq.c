/* Input-embedding sequences on the device (see seq.h). */
#include "model/seq.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void dlv_seq_batch_free(dlv_seq_batch *b)
{
    if (!b) return;
    dlv_buffer_free(&b->ids);
    dlv_buffer_free(&b->x);
    free(b->lengths);
    memset(b, 0, sizeof *b);
}

/* Lengths, the padded length and the number of ids; checks every part. */
static dlv_status measure(dlv_seq_batch *b, const char *label, int64_t *n_ids)
{
    *n_ids = 0;
    for (int64_t s = 0; s < b->n; s++) {
        int64_t len = 0;
        for (size_t p = 0; p < b->seqs[s].n_parts; p++) {
            const dlv_seq_part *part = &b->seqs[s].parts[p];
            if (part->n < 0 || part->n > INT32_MAX - len)
                return dlv_error(DLV_E_INVALID_ARG, "%s: sequence %lld is too long", label,
                                 (long long)s);
            if (part->n > 0 && !part->ids && !part->rows)
                return dlv_error(DLV_E_INVALID_ARG, "%s: sequence %lld: part %zu has neither "
                                 "ids nor rows", label, (long long)s, p);
            if (part->ids) {
                for (int64_t i = 0; i < part->n; i++)
                    if (part->ids[i] < 0 || part->ids[i] >= b->vocab)
                        return dlv_error(DLV_E_INVALID_ARG, "%s: sequence %lld: token id %d at "
                                         "position %lld is outside the vocabulary [0, %lld)",
                                         label, (long long)s, (int)part->ids[i],
                                         (long long)(len + i), (long long)b->vocab);
                *n_ids += part->n;
            }
            len += part->n;
        }
        if (len < 1)
            return dlv_error(DLV_E_INVALID_ARG, "%s: sequence %lld is empty (no prompt, no "
                             "tokens)", label, (long long)s);
        b->lengths[s] = (int32_t)len;
        if (len > b->len) b->len = len;
    }
    if (b->len > (int64_t)(SIZE_MAX / sizeof(float)) / b->hidden / b->n)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %lld sequences of %lld positions are too many",
                         label, (long long)b->n, (long long)b->len);
    return DLV_OK;
}

dlv_status dlv_seq_batch_build(dlv_backend *be, const char *label, const dlv_tensor *table,
                               int64_t vocab, int64_t hidden, const dlv_seq *seqs, int64_t n,
                               dlv_seq_batch *out)
{
    memset(out, 0, sizeof *out);
    if (!be || !table || !seqs || n < 1 || hidden < 1)
        return dlv_error(DLV_E_INVALID_ARG, "%s: embed: no sequences", label);
    *out = (dlv_seq_batch){.be = be, .n = n, .hidden = hidden, .vocab = vocab, .seqs = seqs};
    out->lengths = malloc((size_t)n * sizeof *out->lengths);
    if (!out->lengths) return dlv_error_nomem("sequence lengths", (size_t)n * sizeof(int32_t));
    int64_t n_ids = 0;
    dlv_status st = measure(out, label, &n_ids);
    if (st) return st;
    /* The ids of every part, in order, in one upload. */
    int32_t *ids = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof *ids);
    if (!ids) return dlv_error_nomem("token ids", (size_t)n_ids * sizeof(int32_t));
    int64_t k = 0;
    for (int64_t s = 0; s < n; s++)
        for (size_t p = 0; p < seqs[s].n_parts; p++)
            if (seqs[s].parts[p].ids && seqs[s].parts[p].n > 0) {
                memcpy(ids + k, seqs[s].parts[p].ids, (size_t)seqs[s].parts[p].n * sizeof *ids);
                k += seqs[s].parts[p].n;
            }
    const size_t x_bytes = (size_t)(n * out->len * hidden) * sizeof(float);
    st = dlv_buffer_alloc(be, (size_t)(n_ids > 0 ? n_ids : 1) * sizeof *ids, &out->ids);
    if (!st && n_ids) st = dlv_buffer_upload(&out->ids, 0, ids, (size_t)n_ids * sizeof *ids);
    free(ids);
    if (!st) st = dlv_buffer_alloc(be, x_bytes, &out->x);
    /* Padding positions stay zero; they are masked and never read. */
    if (!st) st = dlv_buffer_zero(&out->x, 0, x_bytes);
    const int32_t *dids = dlv_buffer_ptr(&out->ids);
    float *x = dlv_buffer_ptr(&out->x);
    k = 0;
    for (int64_t s = 0; s < n && !st; s++) {
        float *dst = x + s * out->len * hidden;
        for (size_t p = 0; p < seqs[s].n_parts && !st; p++) {
            const dlv_seq_part *part = &seqs[s].parts[p];
            if (part->n == 0) continue;
            if (part->ids) {
                st = dlv_embedding(be, dst, dlv_tensor_data(table), table->dtype, dids + k,
                                   part->n, vocab, hidden);
                k += part->n;
            } else {
                st = dlv_copy(be, dst, part->rows, (size_t)(part->n * hidden) * sizeof(float));
            }
            dst += part->n * hidden;
        }
    }
    if (st) st = dlv_error_prefix(st, "%s: input embeddings", label);
    return st;
}

dlv_status dlv_seq_batch_backward(const dlv_seq_batch *b, const float *dx, float *dtable)
{
    const int32_t *dids = dlv_buffer_ptr(&b->ids);
    int64_t k = 0;
    dlv_status st = DLV_OK;
    for (int64_t s = 0; s < b->n && !st; s++) {
        const float *src = dx + s * b->len * b->hidden;
        for (size_t p = 0; p < b->seqs[s].n_parts && !st; p++) {
            const dlv_seq_part *part = &b->seqs[s].parts[p];
            if (part->n == 0) continue;
            if (part->ids) {
                if (dtable)
                    st = dlv_embedding_backward(b->be, dtable, src, dids + k, part->n, b->vocab,
                                                b->hidden);
                k += part->n;
            } else if (part->grad) {
                st = dlv_add(b->be, part->grad, part->grad, src, DLV_DTYPE_F32, 0, part->n,
                             b->hidden);
            }
            src += part->n * b->hidden;
        }
    }
    return st;
}

dlv_status dlv_seq_gather_rows(dlv_backend *be, const float *hidden, int64_t len,
                               int64_t width, const int64_t *at, int64_t n, float *out)
{
    dlv_status st = DLV_OK;
    for (int64_t i = 0; i < n && !st; i++)
        st = dlv_copy(be, out + i * width, hidden + (i * len + at[i]) * width,
                      (size_t)width * sizeof(float));
    return st;
}
