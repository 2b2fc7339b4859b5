/* Qwen2-VL's M-RoPE position ids (see positions.h). */
#include "model/qwen2vl/positions.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Tokens of an image span (merged grid), validated; -1 after an error. */
static int64_t image_tokens(const dlv_qwen2vl_span *s, int64_t merge, const char *what,
                            long long index)
{
    if (s->grid_t < 1 || s->grid_h < 1 || s->grid_w < 1 || s->grid_t > INT32_MAX ||
        s->grid_h > INT32_MAX || s->grid_w > INT32_MAX) {
        dlv_error(DLV_E_INVALID_ARG, "qwen2vl positions: %s %lld: grid (%lld, %lld, %lld) "
                  "must be >= 1 and fit int32", what, index, (long long)s->grid_t,
                  (long long)s->grid_h, (long long)s->grid_w);
        return -1;
    }
    if (s->grid_h % merge || s->grid_w % merge) {
        dlv_error(DLV_E_INVALID_ARG, "qwen2vl positions: %s %lld: grid h = %lld, w = %lld "
                  "are not multiples of spatial_merge_size %lld", what, index,
                  (long long)s->grid_h, (long long)s->grid_w, (long long)merge);
        return -1;
    }
    /* Each factor < 2^31: the product of the first two fits, and the third
     * is checked against the int32 bound of the whole sequence. */
    const int64_t hw = (s->grid_h / merge) * (s->grid_w / merge);
    if (hw > INT32_MAX / s->grid_t) {
        dlv_error(DLV_E_INVALID_ARG, "qwen2vl positions: %s %lld: grid (%lld, %lld, %lld) "
                  "has more than INT32_MAX tokens", what, index, (long long)s->grid_t,
                  (long long)s->grid_h, (long long)s->grid_w);
        return -1;
    }
    return s->grid_t * hw;
}

dlv_status dlv_qwen2vl_span_tokens(const dlv_qwen2vl_span *spans, int64_t n_spans,
                                   int64_t merge_size, int64_t *n_tokens)
{
    if (!n_tokens || (!spans && n_spans > 0) || n_spans < 0)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2vl positions: NULL argument or n_spans = "
                         "%lld < 0", (long long)n_spans);
    *n_tokens = 0;
    if (merge_size < 1)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2vl positions: spatial_merge_size = %lld "
                         "must be >= 1", (long long)merge_size);
    int64_t total = 0;
    for (int64_t i = 0; i < n_spans; i++) {
        const dlv_qwen2vl_span *s = &spans[i];
        int64_t k;
        if (s->grid_t == 0) {
            if (s->n_text < 0 || s->n_text > INT32_MAX)
                return dlv_error(DLV_E_INVALID_ARG, "qwen2vl positions: span %lld: n_text = "
                                 "%lld is outside [0, INT32_MAX]", (long long)i,
                                 (long long)s->n_text);
            k = s->n_text;
        } else if ((k = image_tokens(s, merge_size, "span", (long long)i)) < 0) {
            return DLV_E_INVALID_ARG;
        }
        if (k > INT32_MAX - total)
            return dlv_error(DLV_E_INVALID_ARG, "qwen2vl positions: the sequence has more "
                             "than INT32_MAX tokens (at span %lld)", (long long)i);
        total += k;
    }
    *n_tokens = total;
    return DLV_OK;
}

dlv_status dlv_qwen2vl_positions(int32_t *positions, int64_t n_tokens,
                                 const dlv_qwen2vl_span *spans, int64_t n_spans,
                                 int64_t merge_size)
{
    int64_t want = 0;
    dlv_status st = dlv_qwen2vl_span_tokens(spans, n_spans, merge_size, &want);
    if (st) return st;
    if (!positions || n_tokens != want)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2vl positions: n_tokens = %lld, the spans "
                         "hold %lld%s", (long long)n_tokens, (long long)want,
                         positions ? "" : " (positions NULL)");
    int32_t *pt = positions, *ph = positions + n_tokens, *pw = positions + 2 * n_tokens;
    /* next: one past the largest index so far. Indices never exceed the
     * token count (an image's extent is at most its token count), so they
     * fit int32. */
    int64_t next = 0, k = 0;
    for (int64_t i = 0; i < n_spans; i++) {
        const dlv_qwen2vl_span *s = &spans[i];
        if (s->grid_t == 0) {
            for (int64_t j = 0; j < s->n_text; j++, k++)
                pt[k] = ph[k] = pw[k] = (int32_t)(next + j);
            next += s->n_text;
            continue;
        }
        const int64_t gt = s->grid_t, gh = s->grid_h / merge_size, gw = s->grid_w / merge_size;
        for (int64_t a = 0; a < gt; a++)
            for (int64_t b = 0; b < gh; b++)
                for (int64_t c = 0; c < gw; c++, k++) {
                    pt[k] = (int32_t)(next + a);
                    ph[k] = (int32_t)(next + b);
                    pw[k] = (int32_t)(next + c);
                }
        int64_t extent = gt > gh ? gt : gh;
        if (gw > extent) extent = gw;
        next += extent;
    }
    return DLV_OK;
}

/* The spans of row ids[0 .. n): text runs and images, taking grids from
 * *image onwards; spans has room for 2 n + 1 entries. */
static dlv_status row_spans(const int32_t *ids, int64_t n, int64_t row,
                            const int64_t (*grid_thw)[3], int64_t n_images, int64_t *image,
                            const dlv_qwen2vl_marks *mk, dlv_qwen2vl_span *spans,
                            int64_t *n_spans)
{
    int64_t ns = 0, i = 0;
    while (i < n) {
        if (ids[i] != mk->image_token_id) {
            int64_t j = i;
            while (j < n && ids[j] != mk->image_token_id) j++;
            spans[ns++] = (dlv_qwen2vl_span){.n_text = j - i};
            i = j;
            continue;
        }
        if (*image >= n_images)
            return dlv_error(DLV_E_INVALID_ARG, "qwen2vl rope index: row %lld, position %lld: "
                             "an image placeholder beyond the n_images = %lld grids",
                             (long long)row, (long long)i, (long long)n_images);
        const int64_t *g = grid_thw[*image];
        const dlv_qwen2vl_span s = {.grid_t = g[0], .grid_h = g[1], .grid_w = g[2]};
        const int64_t k = image_tokens(&s, mk->merge_size, "grid_thw", (long long)*image);
        if (k < 0) return DLV_E_INVALID_ARG;
        int64_t run = 0;
        while (run < k && i + run < n && ids[i + run] == mk->image_token_id) run++;
        if (run < k)
            return dlv_error(DLV_E_INVALID_ARG, "qwen2vl rope index: row %lld, position %lld: "
                             "image %lld has %lld placeholder tokens, its grid_thw (%lld, "
                             "%lld, %lld) needs %lld", (long long)row, (long long)i,
                             (long long)*image, (long long)run, (long long)g[0],
                             (long long)g[1], (long long)g[2], (long long)k);
        spans[ns++] = s;
        (*image)++;
        i += k;
    }
    *n_spans = ns;
    return DLV_OK;
}

dlv_status dlv_qwen2vl_rope_index(int32_t *positions, const int32_t *ids,
                                  const int32_t *lengths, int64_t batch, int64_t len,
                                  const int64_t (*grid_thw)[3], int64_t n_images,
                                  const dlv_qwen2vl_marks *marks)
{
    if (!positions || !ids || !lengths || !marks || (n_images > 0 && !grid_thw))
        return dlv_error(DLV_E_INVALID_ARG, "qwen2vl rope index: NULL argument");
    if (batch < 1 || len < 1 || n_images < 0 || len > INT32_MAX || batch > INT64_MAX / 3 / len)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2vl rope index: batch = %lld, len = %lld, "
                         "n_images = %lld", (long long)batch, (long long)len,
                         (long long)n_images);
    if (marks->merge_size < 1)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2vl rope index: spatial_merge_size = %lld "
                         "must be >= 1", (long long)marks->merge_size);
    for (int64_t b = 0; b < batch; b++)
        if (lengths[b] < 1 || lengths[b] > len)
            return dlv_error(DLV_E_INVALID_ARG, "qwen2vl rope index: lengths[%lld] = %d is "
                             "outside [1, len = %lld]", (long long)b, (int)lengths[b],
                             (long long)len);
    dlv_qwen2vl_span *spans = malloc((size_t)(2 * len + 1) * sizeof *spans);
    int32_t *row = malloc((size_t)(3 * len) * sizeof *row);
    dlv_status st = DLV_OK;
    if (!spans || !row)
        st = dlv_error_nomem("qwen2vl rope index", (size_t)len * (3 * sizeof *row +
                                                              2 * sizeof *spans));
    const size_t plane = (size_t)(batch * len);
    int64_t image = 0;
    for (int64_t b = 0; !st && b < batch; b++) {
        const int64_t n = lengths[b];
        int64_t ns = 0;
        st = row_spans(ids + b * len, n, b, grid_thw, n_images, &image, marks, spans, &ns);
        if (!st) st = dlv_qwen2vl_positions(row, n, spans, ns, marks->merge_size);
        for (int c = 0; !st && c < 3; c++) {
            int32_t *dst = positions + (size_t)c * plane + (size_t)(b * len);
            memcpy(dst, row + c * n, (size_t)n * sizeof *row);
            for (int64_t i = n; i < len; i++) dst[i] = 1; /* HF's fill for padding */
        }
    }
    if (!st && image != n_images)
        st = dlv_error(DLV_E_INVALID_ARG, "qwen2vl rope index: n_images = %lld grids, the "
                       "ids hold %lld images", (long long)n_images, (long long)image);
    free(spans);
    free(row);
    return st;
}
