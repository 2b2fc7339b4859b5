/* Assembling input embeddings from parts and reading the last position. */
#include "model/embed.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "model/text_model.h"

dlv_status dlv_embed_sequences(const dlv_model *m, dlv_backend *be, const dlv_lora *lora,
                               const dlv_seq *seqs, int64_t n_seq, int normalize, float *out,
                               size_t out_len)
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
                st = dlv_text_embed_ids(m, be, part->ids, part->n, dst, n_floats);
            else if (part->rows)
                memcpy(dst, part->rows, n_floats * sizeof *dst);
            else
                st = dlv_error(DLV_E_INVALID_ARG, "embed: part %zu has neither ids nor rows", p);
            dst += n_floats;
        }
    }
    if (!st)
        st = dlv_text_forward_lora(m, be, lora, embeds, lengths, n_seq, max_len, out, out_len,
                                   NULL, 0);
    if (!st && normalize) st = dlv_l2_normalize(be, out, out, n_seq, hidden);
    free(embeds);
    free(lengths);
    return st;
}
