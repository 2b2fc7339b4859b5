/* LLaVA-NeXT's image side (see llava_next.h). */
#include "model/llava/llava_next.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "image/image_source.h"
#include "model/model.h"

void dlv_llava_next_tiles_free(dlv_llava_next_tiles *t)
{
    if (!t) return;
    for (size_t i = 0; t->pixels && i < t->n; i++) free(t->pixels[i]);
    free(t->pixels);
    free(t->layout);
    memset(t, 0, sizeof *t);
}

dlv_status dlv_llava_next_tile(const dlv_model *m, const dlv_image *const *images, size_t n,
                               dlv_llava_next_tiles *out)
{
    memset(out, 0, sizeof *out);
    const dlv_preproc_config *pc = dlv_model_preproc(m);
    if (!pc)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no preprocessor_config.json",
                         dlv_model_dir(m));
    out->n = n;
    out->pixels = calloc(n ? n : 1, sizeof *out->pixels);
    out->layout = calloc(n ? n : 1, sizeof *out->layout);
    dlv_status st = !out->pixels || !out->layout
                        ? dlv_error_nomem("image batch", n * sizeof(dlv_llava_next_layout))
                        : DLV_OK;
    for (size_t i = 0; i < n && !st; i++) {
        dlv_anyres_layout il;
        st = dlv_image_to_anyres(pc, images[i], NULL, &il, &out->pixels[i]);
        if (!st)
            st = dlv_llava_next_layout_of(dlv_model_config(m), il.orig_h, il.orig_w, il.rows,
                                          il.cols, &out->layout[i]);
        if (st) st = dlv_error_prefix(st, "image %zu", i);
    }
    if (st) dlv_llava_next_tiles_free(out);
    return st;
}

/* One image: its tiles' pixels (host) -> packed features at dst (device).
 * scratch holds the tiles' pixels and tower features, grown as needed. */
static dlv_status one_image(const dlv_model *m, dlv_backend *be, const dlv_llava_params *p,
                            const dlv_llava_next_layout *l, const float *pixels,
                            dlv_buffer *scratch, const int32_t *zero_id, float *dst)
{
    dlv_llava_dims d;
    dlv_llava_dims_of(dlv_model_config(m), &d);
    const int64_t H = d.text.hidden, F = d.n_features;
    const size_t px = (size_t)(d.vision.channels * d.vision.image_size * d.vision.image_size);
    const size_t need = ((size_t)l->n_tiles * px + (size_t)(l->n_tiles * F * H)) * sizeof(float);
    dlv_status st = DLV_OK;
    if (scratch->size < need) {
        dlv_buffer_free(scratch);
        st = dlv_buffer_alloc(be, need, scratch);
    }
    float *dpx = dlv_buffer_ptr(scratch), *dfeat = dpx + (size_t)l->n_tiles * px;
    if (!st) st = dlv_buffer_upload(scratch, 0, pixels, (size_t)l->n_tiles * px * sizeof(float));
    if (!st) st = dlv_llava_image_features(m, be, p, dpx, l->n_tiles, dfeat);
    if (!st)
        st = dlv_llava_next_pack(be, l, H, dfeat, &p->w->image_newline, zero_id, dst);
    return st;
}

dlv_status dlv_llava_next_features(const dlv_model *m, dlv_backend *be,
                                   const dlv_llava_params *p, const dlv_llava_next_tiles *tiles,
                                   dlv_llava_feats *out)
{
    memset(out, 0, sizeof *out);
    const size_t n = tiles->n;
    const int64_t H = dlv_model_config(m)->text.hidden_size;
    out->n = n;
    out->count = calloc(n ? n : 1, sizeof *out->count);
    out->offset = calloc(n ? n : 1, sizeof *out->offset);
    dlv_status st = !out->count || !out->offset ? dlv_error_nomem("feature rows", n * 16)
                                                : DLV_OK;
    int64_t rows = 0;
    for (size_t i = 0; i < n && !st; i++) {
        out->offset[i] = rows;
        out->count[i] = tiles->layout[i].n_features;
        rows += tiles->layout[i].n_features;
    }
    /* The packed rows, then one int32 0: image_newline's row index. */
    const size_t feat_bytes = (size_t)(rows * H) * sizeof(float);
    if (!st) st = dlv_buffer_alloc(be, feat_bytes + sizeof(int32_t), &out->buf);
    if (!st) st = dlv_buffer_zero(&out->buf, feat_bytes, sizeof(int32_t));
    float *base = dlv_buffer_ptr(&out->buf);
    const int32_t *zero_id = (const int32_t *)(const void *)((const char *)base + feat_bytes);
    dlv_buffer scratch = {0};
    for (size_t i = 0; i < n && !st; i++) {
        st = one_image(m, be, p, &tiles->layout[i], tiles->pixels[i], &scratch, zero_id,
                       base + out->offset[i] * H);
        if (st) st = dlv_error_prefix(st, "image %zu", i);
    }
    dlv_buffer_free(&scratch);
    if (st) dlv_llava_feats_free(out);
    return st;
}

dlv_status dlv_llava_next_image_features(const dlv_model *m, dlv_backend *be,
                                         const dlv_llava_params *p,
                                         const dlv_image *const *images, size_t n,
                                         dlv_llava_feats *out)
{
    memset(out, 0, sizeof *out);
    dlv_llava_next_tiles tiles;
    dlv_status st = dlv_llava_next_tile(m, images, n, &tiles);
    if (!st) st = dlv_llava_next_features(m, be, p, &tiles, out);
    dlv_llava_next_tiles_free(&tiles);
    return st;
}
