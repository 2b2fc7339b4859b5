/* Qwen2-VL's rotary tables on the host (rope_tables.h). The arithmetic is
 * torch's f32 arithmetic, not a more exact one: at position 30000 an ulp
 * of inv_freq[0] moves the angle by ~2e-3 rad, so a double angle would
 * disagree with the reference model by far more than the tables' rounding.
 * tests/model/test_rope_tables.c checks every table against transformers
 * (tests/reference/qwen2vl_rope_reference.py). */
#include "model/nn/rope_tables.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

dlv_status dlv_rope_inv_freq(float *inv_freq, int64_t dim, double theta)
{
    if (dim <= 0 || dim % 2 != 0)
        return dlv_error(DLV_E_INVALID_ARG, "rope inv_freq: dim %lld is not a positive even "
                         "number", (long long)dim);
    if (!(theta > 0.0) || !isfinite(theta) || !isfinite((float)theta))
        return dlv_error(DLV_E_INVALID_ARG, "rope inv_freq: theta %g is not a finite value > 0",
                         theta);
    if (!inv_freq)
        return dlv_error(DLV_E_INVALID_ARG, "rope inv_freq: inv_freq is NULL");
    /* 1.0 / (base ** (arange(0, dim, 2).float() / dim)): the exponent an f32
     * divide, the base converted to f32 by torch.pow, then an f32 divide. */
    const float base = (float)theta;
    for (int64_t i = 0; i < dim / 2; i++) {
        const float e = (float)(2 * i) / (float)dim;
        inv_freq[i] = 1.0f / powf(base, e);
    }
    return DLV_OK;
}

/* A table of n rows (named n_name) of `half` floats is addressable. */
static dlv_status check_rows(const char *what, const char *n_name, int64_t n, int64_t half)
{
    if (n < 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s = %lld is negative", what, n_name,
                         (long long)n);
    if (half > 0 && n > (int64_t)(PTRDIFF_MAX / (ptrdiff_t)sizeof(float)) / half)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %lld x %lld table is too large", what,
                         (long long)n, (long long)half);
    return DLV_OK;
}

static dlv_status check_tables(const char *what, const float *cos_out, const float *sin_out,
                               int64_t n)
{
    if (n > 0 && (!cos_out || !sin_out))
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s is NULL", what,
                         !cos_out ? "cos_out" : "sin_out");
    return DLV_OK;
}

/* A position array of n values (>= 0), named for the message. */
static dlv_status check_positions(const char *what, const char *name, const int32_t *pos,
                                  int64_t n)
{
    if (n > 0 && !pos) return dlv_error(DLV_E_INVALID_ARG, "%s: %s is NULL", what, name);
    for (int64_t i = 0; i < n; i++)
        if (pos[i] < 0)
            return dlv_error(DLV_E_INVALID_ARG, "%s: %s[%lld] = %d is negative", what, name,
                             (long long)i, (int)pos[i]);
    return DLV_OK;
}

dlv_status dlv_rope_mrope_tables(float *cos_out, float *sin_out, const int32_t *positions,
                                 int64_t n_tokens, int64_t head_dim,
                                 const int64_t mrope_section[3], double theta)
{
    static const char what[] = "mrope tables";
    if (head_dim <= 0 || head_dim % 2 != 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: head_dim %lld is not a positive even number",
                         what, (long long)head_dim);
    const int64_t half = head_dim / 2;
    if (!mrope_section) return dlv_error(DLV_E_INVALID_ARG, "%s: mrope_section is NULL", what);
    int64_t sum = 0;
    for (int k = 0; k < 3; k++) {
        if (mrope_section[k] < 0 || mrope_section[k] > half)
            return dlv_error(DLV_E_INVALID_ARG, "%s: mrope_section[%d] = %lld is outside [0, %lld]",
                             what, k, (long long)mrope_section[k], (long long)half);
        sum += mrope_section[k];
    }
    if (sum != half)
        return dlv_error(DLV_E_INVALID_ARG, "%s: mrope_section %lld + %lld + %lld = %lld, not "
                         "head_dim / 2 = %lld", what, (long long)mrope_section[0],
                         (long long)mrope_section[1], (long long)mrope_section[2],
                         (long long)sum, (long long)half);
    dlv_status st = check_rows(what, "n_tokens", n_tokens, half);
    if (st == DLV_OK && n_tokens > 3 && n_tokens > INT64_MAX / 3)
        st = dlv_error(DLV_E_INVALID_ARG, "%s: n_tokens %lld is too large", what,
                       (long long)n_tokens);
    if (st == DLV_OK) st = check_positions(what, "positions", positions, 3 * n_tokens);
    if (st == DLV_OK) st = check_tables(what, cos_out, sin_out, n_tokens);
    if (st != DLV_OK) return st;
    if (n_tokens == 0) return DLV_OK;

    float *inv_freq = malloc((size_t)half * sizeof *inv_freq);
    if (!inv_freq) return dlv_error_nomem("mrope frequencies", (size_t)half * sizeof(float));
    st = dlv_rope_inv_freq(inv_freq, head_dim, theta);
    if (st != DLV_OK) {
        free(inv_freq);
        return dlv_error_prefix(st, what);
    }
    /* HF computes cos/sin for all three components over the whole head,
     * then keeps, section by section, the component the section belongs to
     * (cos.split(mrope_section * 2)[i][i % 3]); the same section pattern
     * repeats over the second half, so the d/2 table holds it once. */
    for (int64_t i = 0; i < half; i++) {
        const int c = i < mrope_section[0] ? 0 : i < mrope_section[0] + mrope_section[1] ? 1 : 2;
        const int32_t *pos = positions + c * n_tokens;
        for (int64_t t = 0; t < n_tokens; t++) {
            const float a = (float)pos[t] * inv_freq[i];
            cos_out[t * half + i] = cosf(a);
            sin_out[t * half + i] = sinf(a);
        }
    }
    free(inv_freq);
    return DLV_OK;
}

dlv_status dlv_rope_vision_patch_ids(int32_t *hpos, int32_t *wpos, int64_t t, int64_t h,
                                     int64_t w, int64_t merge_size)
{
    static const char what[] = "vision patch ids";
    if (t <= 0 || h <= 0 || w <= 0 || merge_size <= 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: grid %lld x %lld x %lld and merge_size %lld "
                         "must be > 0", what, (long long)t, (long long)h, (long long)w,
                         (long long)merge_size);
    if (h % merge_size != 0 || w % merge_size != 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: grid height %lld and width %lld must be "
                         "multiples of merge_size %lld", what, (long long)h, (long long)w,
                         (long long)merge_size);
    if (h > INT32_MAX || w > INT32_MAX || h * w > INT32_MAX / t)
        return dlv_error(DLV_E_INVALID_ARG, "%s: grid %lld x %lld x %lld is too large", what,
                         (long long)t, (long long)h, (long long)w);
    if (!hpos || !wpos)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s is NULL", what, !hpos ? "hpos" : "wpos");
    /* rot_pos_emb reshapes the (h, w) index grids to
     * [h/m, m, w/m, m] and permutes to [h/m, w/m, m, m] before flattening:
     * block row, block column, row in block, column in block. */
    const int64_t m = merge_size, frame = h * w;
    int64_t p = 0;
    for (int64_t bh = 0; bh < h / m; bh++)
        for (int64_t bw = 0; bw < w / m; bw++)
            for (int64_t ih = 0; ih < m; ih++)
                for (int64_t iw = 0; iw < m; iw++, p++) {
                    hpos[p] = (int32_t)(bh * m + ih);
                    wpos[p] = (int32_t)(bw * m + iw);
                }
    /* .repeat(t, 1): every frame of a video has the same spatial indices. */
    for (int64_t f = 1; f < t; f++)
        for (int64_t q = 0; q < frame; q++) {
            hpos[f * frame + q] = hpos[q];
            wpos[f * frame + q] = wpos[q];
        }
    return DLV_OK;
}

dlv_status dlv_rope_vision_tables(float *cos_out, float *sin_out, const int32_t *hpos,
                                  const int32_t *wpos, int64_t n_patches, int64_t head_dim,
                                  double theta)
{
    static const char what[] = "vision rope tables";
    if (head_dim <= 0 || head_dim % 4 != 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: head_dim %lld is not a positive multiple of 4",
                         what, (long long)head_dim);
    const int64_t half = head_dim / 2, q = head_dim / 4;
    dlv_status st = check_rows(what, "n_patches", n_patches, half);
    if (st == DLV_OK) st = check_positions(what, "hpos", hpos, n_patches);
    if (st == DLV_OK) st = check_positions(what, "wpos", wpos, n_patches);
    if (st == DLV_OK) st = check_tables(what, cos_out, sin_out, n_patches);
    if (st != DLV_OK) return st;
    if (n_patches == 0) return DLV_OK;

    float *inv_freq = malloc((size_t)q * sizeof *inv_freq);
    if (!inv_freq) return dlv_error_nomem("vision rope frequencies", (size_t)q * sizeof(float));
    /* VisionRotaryEmbedding(head_dim / 2): head_dim / 4 frequencies. */
    st = dlv_rope_inv_freq(inv_freq, half, theta);
    if (st != DLV_OK) {
        free(inv_freq);
        return dlv_error_prefix(st, what);
    }
    for (int64_t p = 0; p < n_patches; p++) {
        /* freqs = outer(arange(max_grid).float(), inv_freq), gathered at
         * the patch's row and column and flattened: rows first. */
        const float hp = (float)hpos[p], wp = (float)wpos[p];
        float *c = cos_out + p * half, *s = sin_out + p * half;
        for (int64_t j = 0; j < q; j++) {
            const float ah = hp * inv_freq[j], aw = wp * inv_freq[j];
            c[j] = cosf(ah);
            s[j] = sinf(ah);
            c[q + j] = cosf(aw);
            s[q + j] = sinf(aw);
        }
    }
    free(inv_freq);
    return DLV_OK;
}
