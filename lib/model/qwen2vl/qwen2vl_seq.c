/* Qwen2-VL's images and M-RoPE tables on the LLaVA kind's sequences (see
 * qwen2vl_seq.h). */
#include "model/qwen2vl/qwen2vl_seq.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "image/image_source.h"
#include "model/model.h"
#include "model/nn/rope_tables.h"
#include "model/qwen2vl/positions.h"

/* Sequence s as spans (text runs, images) into spans (capacity: its parts). */
static dlv_status seq_spans(const dlv_seq *s, int64_t merge, dlv_qwen2vl_span *spans,
                            int64_t *n_spans)
{
    int64_t k = 0;
    for (size_t i = 0; i < s->n_parts; i++) {
        const dlv_seq_part *p = &s->parts[i];
        if (p->n == 0) continue;
        if (p->grid && !p->ids) {
            const int64_t *g = p->grid;
            /* The grid's own checks are dlv_qwen2vl_span_tokens'; here
             * only that the rows are its tokens. */
            if (g[0] * (g[1] / merge) * (g[2] / merge) != p->n)
                return dlv_error(DLV_E_INVALID_ARG, "an image part of %lld rows does not match "
                                 "its grid %lld x %lld x %lld (merge %lld)", (long long)p->n,
                                 (long long)g[0], (long long)g[1], (long long)g[2],
                                 (long long)merge);
            spans[k++] = (dlv_qwen2vl_span){0, g[0], g[1], g[2]};
        } else if (k > 0 && spans[k - 1].grid_t == 0) {
            spans[k - 1].n_text += p->n;
        } else {
            spans[k++] = (dlv_qwen2vl_span){p->n, 0, 0, 0};
        }
    }
    *n_spans = k;
    return DLV_OK;
}

dlv_status dlv_qwen2vl_seq_rope(dlv_backend *be, const dlv_llava_dims *d, const dlv_seq *seqs,
                                int64_t n, const int32_t *lengths, int64_t len, dlv_buffer *buf,
                                dlv_decoder_rope *rope)
{
    const int64_t half = d->text.head_dim / 2, merge = d->qvit.merge;
    const size_t plane = (size_t)(n * len * half);
    size_t most_parts = 1;
    for (int64_t i = 0; i < n; i++)
        if (seqs[i].n_parts > most_parts) most_parts = seqs[i].n_parts;
    float *host = malloc(2 * plane * sizeof *host);
    int32_t *pos = malloc(3 * (size_t)len * sizeof *pos);
    dlv_qwen2vl_span *spans = malloc(most_parts * sizeof *spans);
    dlv_status st = !host || !pos || !spans
                        ? dlv_error_nomem("rotary tables", 2 * plane * sizeof *host)
                        : DLV_OK;
    for (int64_t i = 0; i < n && !st; i++) {
        float *c = host + (size_t)(i * len * half), *s = c + plane;
        int64_t n_spans = 0, n_tok = 0;
        st = seq_spans(&seqs[i], merge, spans, &n_spans);
        if (!st) st = dlv_qwen2vl_span_tokens(spans, n_spans, merge, &n_tok);
        if (!st && n_tok != lengths[i])
            st = dlv_error(DLV_E_INVALID_ARG, "sequence of %lld positions, %d in the batch",
                           (long long)n_tok, (int)lengths[i]);
        if (!st) st = dlv_qwen2vl_positions(pos, n_tok, spans, n_spans, merge);
        if (!st)
            st = dlv_rope_mrope_tables(c, s, pos, n_tok, d->text.head_dim, d->mrope_section,
                                       d->text.theta);
        /* Padding: angle 0 (the rows are never read). */
        for (int64_t r = n_tok; r < len && !st; r++)
            for (int64_t j = 0; j < half; j++) {
                c[r * half + j] = 1.0f;
                s[r * half + j] = 0.0f;
            }
        if (st) st = dlv_error_prefix(st, "M-RoPE positions of sequence %lld", (long long)i);
    }
    if (!st) st = dlv_buffer_alloc(be, 2 * plane * sizeof(float), buf);
    if (!st) st = dlv_buffer_upload(buf, 0, host, 2 * plane * sizeof(float));
    if (!st) {
        const float *base = dlv_buffer_ptr(buf);
        *rope = (dlv_decoder_rope){base, base + plane};
    }
    free(host);
    free(pos);
    free(spans);
    return st;
}

int64_t dlv_qwen2vl_max_features(const dlv_model *m)
{
    const dlv_preproc_config *pc = dlv_model_preproc(m);
    if (!pc || !pc->qwen2vl.enabled) return 0;
    const int64_t unit = pc->qwen2vl.patch_size * pc->qwen2vl.merge_size;
    return pc->qwen2vl.max_pixels / (unit * unit);
}

dlv_status dlv_qwen2vl_image_features(const dlv_model *m, dlv_backend *be, const dlv_llava_w *w,
                                      const dlv_image *const *images, size_t n,
                                      dlv_llava_feats *out)
{
    memset(out, 0, sizeof *out);
    const dlv_preproc_config *pc = dlv_model_preproc(m);
    if (!pc)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no preprocessor_config.json",
                         dlv_model_dir(m));
    dlv_llava_dims d;
    dlv_llava_dims_of(dlv_model_config(m), &d);
    const int64_t H = d.text.hidden;
    float **px = calloc(n ? n : 1, sizeof *px);
    size_t *px_len = calloc(n ? n : 1, sizeof *px_len);
    dlv_qwen2vl_grid *grids = calloc(n ? n : 1, sizeof *grids);
    out->n = n;
    out->count = calloc(n ? n : 1, sizeof *out->count);
    out->offset = calloc(n ? n : 1, sizeof *out->offset);
    out->grid = calloc(n ? n : 1, sizeof *out->grid);
    dlv_status st = !px || !px_len || !grids || !out->count || !out->offset || !out->grid
                        ? dlv_error_nomem("image batch", n * 64)
                        : DLV_OK;
    /* Every image's patches first: the features' buffer is sized from
     * their grids. */
    int64_t rows = 0;
    size_t most = 0;
    for (size_t i = 0; i < n && !st; i++) {
        st = dlv_image_to_qwen2vl_patches(pc, images[i], NULL, &grids[i], &px[i], &px_len[i]);
        if (!st) st = dlv_qwen2vl_vit_rows(&d.qvit, &grids[i], 1, NULL, &out->count[i]);
        if (st) {
            st = dlv_error_prefix(st, "image %zu", i);
            break;
        }
        out->grid[i][0] = grids[i].t;
        out->grid[i][1] = grids[i].h;
        out->grid[i][2] = grids[i].w;
        out->offset[i] = rows;
        rows += out->count[i];
        if (px_len[i] > most) most = px_len[i];
    }
    dlv_buffer scratch = {0};
    if (!st) st = dlv_buffer_alloc(be, (size_t)(rows > 0 ? rows : 1) * (size_t)H * sizeof(float),
                                   &out->buf);
    if (!st) st = dlv_buffer_alloc(be, (most ? most : 1) * sizeof(float), &scratch);
    float *feats = st ? NULL : dlv_buffer_ptr(&out->buf);
    for (size_t i = 0; i < n && !st; i++) {
        st = dlv_buffer_upload(&scratch, 0, px[i], px_len[i] * sizeof(float));
        if (!st)
            st = dlv_qwen2vl_vit_forward(be, &d.qvit, &w->qvision, dlv_buffer_ptr(&scratch),
                                         &grids[i], 1, 0, NULL, feats + out->offset[i] * H, NULL);
        if (st) st = dlv_error_prefix(st, "%s: image %zu", dlv_model_dir(m), i);
    }
    dlv_buffer_free(&scratch);
    for (size_t i = 0; px && i < n; i++) free(px[i]);
    free(px);
    free(px_len);
    free(grids);
    if (st) dlv_llava_feats_free(out);
    return st;
}
