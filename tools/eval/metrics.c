/* Evaluation metrics; the tie rule is in metrics.h. */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static dlv_status nan_error(const char *what, size_t i, size_t j)
{
    return dlv_error(DLV_E_NUMERIC, "%s: score [%zu, %zu] is NaN", what, i, j);
}

dlv_status dlv_eval_retrieval_ranks(const float *scores, size_t n_img, size_t n_txt,
                                    const uint32_t *txt_img, size_t *i2t_rank,
                                    size_t *t2i_rank)
{
    static const char fn[] = "retrieval ranks";
    if ((!scores && n_img && n_txt) || (!txt_img && n_txt))
        return dlv_error(DLV_E_INVALID_ARG, "%s: NULL scores or text-to-image map", fn);
    if (n_txt > UINT32_MAX || n_img > UINT32_MAX)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %zu x %zu is too large", fn, n_img, n_txt);
    for (size_t j = 0; j < n_txt; j++)
        if (txt_img[j] >= n_img)
            return dlv_error(DLV_E_INVALID_ARG, "%s: text %zu refers to image %u of %zu", fn, j,
                             (unsigned)txt_img[j], n_img);

    /* One pass over the matrix, row by row (contiguous, vectorisable):
     * per image, the texts at or above its best right score; per text, the
     * images at or above its right score; NaNs. The right ones are
     * subtracted afterwards from the texts of each image (a CSR list). */
    float *best = malloc((n_img ? n_img : 1) * sizeof *best);
    float *right = malloc((n_txt ? n_txt : 1) * sizeof *right);
    uint32_t *cnt = calloc(n_txt ? n_txt : 1, sizeof *cnt);
    size_t *start = calloc(n_img + 1, sizeof *start);
    uint32_t *list = malloc((n_txt ? n_txt : 1) * sizeof *list);
    dlv_status st = DLV_OK;
    if (!best || !right || !cnt || !start || !list) {
        st = dlv_error_nomem(fn, (n_img + n_txt) * 16);
        goto done;
    }
    for (size_t j = 0; j < n_txt; j++) start[txt_img[j] + 1]++;
    for (size_t i = 0; i < n_img; i++) start[i + 1] += start[i];
    {
        size_t *fill = malloc((n_img ? n_img : 1) * sizeof *fill);
        if (!fill) {
            st = dlv_error_nomem(fn, n_img * sizeof *fill);
            goto done;
        }
        memcpy(fill, start, n_img * sizeof *fill);
        for (size_t j = 0; j < n_txt; j++) list[fill[txt_img[j]]++] = (uint32_t)j;
        free(fill);
    }
    for (size_t j = 0; j < n_txt; j++) right[j] = scores[(size_t)txt_img[j] * n_txt + j];
    for (size_t i = 0; i < n_img; i++) {
        if (start[i] == start[i + 1]) {
            if (!i2t_rank) {
                best[i] = INFINITY; /* unused */
                continue;
            }
            st = dlv_error(DLV_E_INVALID_ARG, "%s: image %zu has no caption", fn, i);
            goto done;
        }
        float b = -INFINITY;
        for (size_t k = start[i]; k < start[i + 1]; k++) {
            float v = scores[i * n_txt + list[k]];
            if (v > b) b = v;
        }
        best[i] = b;
    }
    for (size_t i = 0; i < n_img; i++) {
        const float *row = scores + i * n_txt;
        const float b = best[i];
        uint32_t above = 0, nan = 0;
        for (size_t j = 0; j < n_txt; j++) {
            const float v = row[j];
            nan |= v != v;
            above += v >= b;
            cnt[j] += v >= right[j];
        }
        if (nan) {
            for (size_t j = 0; j < n_txt; j++)
                if (isnan(row[j])) {
                    st = nan_error(fn, i, j);
                    goto done;
                }
        }
        if (i2t_rank) {
            size_t right_above = 0;
            for (size_t k = start[i]; k < start[i + 1]; k++) right_above += row[list[k]] >= b;
            i2t_rank[i] = above - right_above;
        }
    }
    if (t2i_rank)
        for (size_t j = 0; j < n_txt; j++) t2i_rank[j] = cnt[j] - 1; /* less the right image */
done:
    free(best);
    free(right);
    free(cnt);
    free(start);
    free(list);
    return st;
}

double dlv_eval_recall_at(const size_t *ranks, size_t n, size_t k)
{
    if (n == 0) return 0.0;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) hits += ranks[i] < k;
    return 100.0 * (double)hits / (double)n;
}

dlv_status dlv_eval_pair_wins(const float *pos, const float *neg, size_t n, size_t *wins)
{
    if ((!pos || !neg) && n)
        return dlv_error(DLV_E_INVALID_ARG, "pair accuracy: NULL scores");
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(pos[i]) || isnan(neg[i]))
            return dlv_error(DLV_E_NUMERIC, "pair accuracy: item %zu: a score is NaN", i);
        w += pos[i] > neg[i];
    }
    *wins = w;
    return DLV_OK;
}

dlv_status dlv_eval_winoground(const dlv_wino_item *items, size_t n, dlv_wino_result *out)
{
    if (!items && n) return dlv_error(DLV_E_INVALID_ARG, "winoground: NULL items");
    dlv_wino_result r = {0, 0, 0, n};
    for (size_t k = 0; k < n; k++) {
        const float(*s)[2] = items[k].s;
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 2; i++)
                if (isnan(s[c][i]))
                    return dlv_error(DLV_E_NUMERIC, "winoground: item %zu: s(c%d, i%d) is NaN",
                                     k, c, i);
        int text = s[0][0] > s[1][0] && s[1][1] > s[0][1];
        int image = s[0][0] > s[0][1] && s[1][1] > s[1][0];
        r.text += (size_t)text;
        r.image += (size_t)image;
        r.group += (size_t)(text && image);
    }
    *out = r;
    return DLV_OK;
}

dlv_status dlv_eval_class_embeddings(const float *text_emb, size_t n_cls, size_t n_tpl,
                                     size_t dim, float *out)
{
    if (n_tpl == 0 || dim == 0 || (!text_emb && n_cls) || (!out && n_cls))
        return dlv_error(DLV_E_INVALID_ARG,
                         "class embeddings: %zu templates, dimension %zu, or NULL buffers",
                         n_tpl, dim);
    for (size_t c = 0; c < n_cls; c++) {
        double *acc = calloc(dim, sizeof *acc);
        if (!acc) return dlv_error_nomem("class embeddings", dim * sizeof *acc);
        for (size_t t = 0; t < n_tpl; t++) {
            const float *e = text_emb + (c * n_tpl + t) * dim;
            double nn = 0;
            for (size_t d = 0; d < dim; d++) nn += (double)e[d] * (double)e[d];
            if (!(nn > 0) || !isfinite(nn)) {
                free(acc);
                return dlv_error(DLV_E_NUMERIC,
                                 "class embeddings: class %zu, template %zu: zero or non-finite "
                                 "embedding",
                                 c, t);
            }
            double inv = 1.0 / sqrt(nn);
            for (size_t d = 0; d < dim; d++) acc[d] += (double)e[d] * inv;
        }
        double nn = 0;
        for (size_t d = 0; d < dim; d++) nn += acc[d] * acc[d];
        if (!(nn > 0)) {
            free(acc);
            return dlv_error(DLV_E_NUMERIC, "class embeddings: class %zu: the templates' mean is zero",
                             c);
        }
        double inv = 1.0 / sqrt(nn);
        for (size_t d = 0; d < dim; d++) out[c * dim + d] = (float)(acc[d] * inv);
        free(acc);
    }
    return DLV_OK;
}

dlv_status dlv_eval_class_ranks(const float *logits, size_t n, size_t n_cls,
                                const uint32_t *label, size_t *rank)
{
    if ((!logits || !label || !rank) && n)
        return dlv_error(DLV_E_INVALID_ARG, "class ranks: NULL buffers");
    for (size_t i = 0; i < n; i++) {
        if (label[i] >= n_cls)
            return dlv_error(DLV_E_INVALID_ARG, "class ranks: example %zu has label %u of %zu",
                             i, (unsigned)label[i], n_cls);
        const float *row = logits + i * n_cls;
        for (size_t c = 0; c < n_cls; c++)
            if (isnan(row[c])) return nan_error("class ranks", i, c);
        float t = row[label[i]];
        size_t r = 0;
        for (size_t c = 0; c < n_cls; c++) r += c != label[i] && row[c] >= t;
        rank[i] = r;
    }
    return DLV_OK;
}
