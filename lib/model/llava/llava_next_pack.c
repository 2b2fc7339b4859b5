/* LLaVA-NeXT's anyres layout and packing (see llava_next_pack.h). */
#include "model/llava/llava_next_pack.h"

#include "core/error.h"

dlv_status dlv_llava_next_layout_of(const dlv_llava_config *cfg, int64_t orig_h, int64_t orig_w,
                                    int64_t grid_h, int64_t grid_w, dlv_llava_next_layout *out)
{
    if (orig_h < 1 || orig_w < 1 || grid_h < 1 || grid_w < 1)
        return dlv_error(DLV_E_INVALID_ARG, "LLaVA-NeXT: an image of %lld x %lld pixels in "
                         "%lld x %lld tiles", (long long)orig_w, (long long)orig_h,
                         (long long)grid_w, (long long)grid_h);
    dlv_llava_next_layout l = {.orig_h = orig_h, .orig_w = orig_w};
    l.grid_h = grid_h;
    l.grid_w = grid_w;
    l.n_tiles = 1 + l.grid_h * l.grid_w;
    l.side = cfg->vision.image_size / cfg->vision.patch_size;
    const int64_t cur_h = l.grid_h * l.side, cur_w = l.grid_w * l.side;
    l.rows = cur_h;
    l.cols = cur_w;
    /* unpad_image: the letterbox bands the processor padded with are cut,
     * measured in feature rows or columns, with its float arithmetic. */
    if ((double)orig_w / (double)orig_h > (double)cur_w / (double)cur_h) {
        const int64_t new_h = (int64_t)((double)orig_h * ((double)cur_w / (double)orig_w));
        l.row0 = (cur_h - new_h) / 2;
        l.rows = cur_h - 2 * l.row0;
    } else {
        const int64_t new_w = (int64_t)((double)orig_w * ((double)cur_h / (double)orig_h));
        l.col0 = (cur_w - new_w) / 2;
        l.cols = cur_w - 2 * l.col0;
    }
    const int64_t base = l.side * l.side;
    l.n_features = l.n_tiles > 1 ? base + l.rows * (l.cols + 1) : base + 1;
    *out = l;
    return DLV_OK;
}

int64_t dlv_llava_next_max_features(const dlv_llava_config *cfg)
{
    const int64_t side = cfg->vision.image_size / cfg->vision.patch_size, base = side * side;
    int64_t most = base + 1;
    for (int64_t i = 0; i < cfg->n_pinpoints; i++) {
        const int64_t gh = cfg->pinpoints[i][0] / cfg->vision.image_size;
        const int64_t gw = cfg->pinpoints[i][1] / cfg->vision.image_size;
        const int64_t n = gh * gw > 1 ? base + gh * side * (gw * side + 1) : base + 1;
        if (n > most) most = n;
    }
    return most;
}

dlv_status dlv_llava_next_pack(dlv_backend *be, const dlv_llava_next_layout *l, int64_t hidden,
                               const float *tiles, const dlv_tensor *newline,
                               const int32_t *zero_id, float *out)
{
    const int64_t s = l->side, F = s * s;
    const size_t row_bytes = (size_t)hidden * sizeof(float);
    /* The base tile's features first, whole. */
    dlv_status st = dlv_copy(be, out, tiles, (size_t)F * row_bytes);
    float *dst = out + F * hidden;
    if (l->n_tiles == 1)
        return st ? st : dlv_embedding(be, dst, dlv_tensor_data(newline), newline->dtype,
                                       zero_id, 1, 1, hidden);
    /* Then the grid's feature map, row by row: feature (Y, X) is feature
     * (Y % s, X % s) of tile (Y / s, X / s); a row's run within one tile is
     * contiguous. */
    for (int64_t r = 0; r < l->rows && !st; r++) {
        const int64_t Y = l->row0 + r, ty = Y / s, y = Y % s;
        for (int64_t X = l->col0; X < l->col0 + l->cols && !st;) {
            const int64_t tx = X / s, x = X % s;
            int64_t run = s - x;
            if (run > l->col0 + l->cols - X) run = l->col0 + l->cols - X;
            const float *src = tiles + ((1 + ty * l->grid_w + tx) * F + y * s + x) * hidden;
            st = dlv_copy(be, dst, src, (size_t)run * row_bytes);
            dst += run * hidden;
            X += run;
        }
        if (!st)
            st = dlv_embedding(be, dst, dlv_tensor_data(newline), newline->dtype, zero_id, 1, 1,
                               hidden);
        dst += hidden;
    }
    return st ? dlv_error_prefix(st, "LLaVA-NeXT: packing the image features") : DLV_OK;
}

/* dst (rows x hidden) += src, on the backend. */
static dlv_status acc(dlv_backend *be, float *dst, const float *src, int64_t rows, int64_t hidden)
{
    return dlv_add(be, dst, dst, src, DLV_DTYPE_F32, 0, rows, hidden);
}

dlv_status dlv_llava_next_pack_backward(dlv_backend *be, const dlv_llava_next_layout *l,
                                        int64_t hidden, const float *dpacked, float *dtiles,
                                        float *dnewline)
{
    const int64_t s = l->side, F = s * s;
    dlv_status st = acc(be, dtiles, dpacked, F, hidden);
    const float *src = dpacked + F * hidden;
    if (l->n_tiles == 1)
        return st || !dnewline ? st : acc(be, dnewline, src, 1, hidden);
    /* The forward's walk, run backwards: each run of a row goes back to its
     * tile, each row's last entry to the newline. */
    for (int64_t r = 0; r < l->rows && !st; r++) {
        const int64_t Y = l->row0 + r, ty = Y / s, y = Y % s;
        for (int64_t X = l->col0; X < l->col0 + l->cols && !st;) {
            const int64_t tx = X / s, x = X % s;
            int64_t run = s - x;
            if (run > l->col0 + l->cols - X) run = l->col0 + l->cols - X;
            st = acc(be, dtiles + ((1 + ty * l->grid_w + tx) * F + y * s + x) * hidden, src, run,
                     hidden);
            src += run * hidden;
            X += run;
        }
        if (!st && dnewline) st = acc(be, dnewline, src, 1, hidden);
        src += hidden;
    }
    return st ? dlv_error_prefix(st, "LLaVA-NeXT: packing the image features (backward)")
              : DLV_OK;
}
