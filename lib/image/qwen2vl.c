/* Qwen2VLImageProcessor for one still image (see qwen2vl.h). Each step
 * mirrors transformers 4.46.3 (models/qwen2_vl/image_processing_qwen2_vl.py)
 * where it rounds: smart_resize rounds half to even (Python's round) and
 * takes floor / ceil of the same double expressions; the resize is Pillow's
 * on the 8-bit image, rescale and normalize are those of the CLIP pipeline,
 * so every float is a function of one byte and its channel. */
#include "image/qwen2vl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "image/preprocess.h"
#include "image/resample.h"

/* Resized images above this many pixels are refused whatever the caller's
 * limit: twice the config's max_pixels cap (smart_resize's min_pixels
 * branch may exceed max_pixels by a row and a column of blocks). */
#define QWEN2VL_MAX_RESIZED ((uint64_t)1 << 27)

/* Python's round(n / d) for integers below 2^53: the double quotient is
 * within far less than 1 / (2d) of n / d, so its rounding (half to even)
 * is the exact quotient's, which integers give without a rounding mode. */
static uint64_t round_div(uint64_t n, uint64_t d)
{
    uint64_t q = n / d, r = n % d;
    if (2 * r > d || (2 * r == d && (q & 1))) q++;
    return q;
}

dlv_status dlv_qwen2vl_smart_resize(uint32_t height, uint32_t width, uint32_t factor,
                                    uint64_t min_pixels, uint64_t max_pixels, uint32_t *out_h,
                                    uint32_t *out_w)
{
    *out_h = *out_w = 0;
    if (factor == 0) return dlv_error(DLV_E_INVALID_ARG, "smart_resize: factor 0");
    if (height < factor || width < factor)
        return dlv_error(DLV_E_UNSUPPORTED, "Qwen2VLImageProcessor: a %ux%u image is smaller "
                         "than patch_size * merge_size = %u on a side (transformers refuses it)",
                         (unsigned)width, (unsigned)height, (unsigned)factor);
    uint64_t lo = height < width ? height : width, hi = height < width ? width : height;
    /* max / min > 200 in doubles, as Python divides. */
    if ((double)hi / (double)lo > 200.0)
        return dlv_error(DLV_E_UNSUPPORTED, "Qwen2VLImageProcessor: a %ux%u image has an "
                         "aspect ratio of %.6g, above 200 (transformers refuses it)",
                         (unsigned)width, (unsigned)height, (double)hi / (double)lo);
    uint64_t h = height, w = width, f = factor, area = h * w;
    /* Python divides the exact integers; the doubles below are exact only
     * while the area is (so are the image sizes allowed here, by far). */
    if (area > ((uint64_t)1 << 53))
        return dlv_error(DLV_E_UNSUPPORTED, "Qwen2VLImageProcessor: a %ux%u image is too large",
                         (unsigned)width, (unsigned)height);
    uint64_t hb = round_div(h, f) * f, wb = round_div(w, f) * f;
    double rh = (double)hb, rw = (double)wb;
    if (hb * wb > max_pixels) {
        double beta = sqrt((double)area / (double)max_pixels);
        rh = floor((double)h / beta / (double)f) * (double)f;
        rw = floor((double)w / beta / (double)f) * (double)f;
    } else if (hb * wb < min_pixels) {
        double beta = sqrt((double)min_pixels / (double)area);
        rh = ceil((double)h * beta / (double)f) * (double)f;
        rw = ceil((double)w * beta / (double)f) * (double)f;
    }
    /* The floor of a thin image's short side can be 0, where Pillow would
     * refuse the resize; the ceil stays near sqrt(min_pixels * 200). */
    if (!(rh >= 1.0 && rw >= 1.0 && rh <= 4294967295.0 && rw <= 4294967295.0))
        return dlv_error(DLV_E_UNSUPPORTED, "Qwen2VLImageProcessor: smart_resize of %ux%u gives "
                         "%.17gx%.17g (min_pixels %llu, max_pixels %llu)", (unsigned)width,
                         (unsigned)height, rw, rh, (unsigned long long)min_pixels,
                         (unsigned long long)max_pixels);
    *out_h = (uint32_t)rh;
    *out_w = (uint32_t)rw;
    return DLV_OK;
}

static dlv_status check_cfg(const dlv_preproc_config *cfg)
{
    if (!cfg || !cfg->qwen2vl.enabled)
        return dlv_error(DLV_E_INVALID_ARG, "%s: not a Qwen2VLImageProcessor config",
                         cfg ? cfg->processor_class : "preprocess");
    const dlv_qwen2vl_params *q = &cfg->qwen2vl;
    /* The parser's bounds; checked again for configs built by hand. */
    if (q->patch_size < 1 || q->patch_size > 512 || q->merge_size < 1 || q->merge_size > 16 ||
        q->temporal_patch_size < 1 || q->temporal_patch_size > 8 || q->min_pixels < 0 ||
        q->max_pixels < q->min_pixels || q->max_pixels > ((int64_t)1 << 26))
        return dlv_error(DLV_E_INVALID_ARG, "%s: patch_size, merge_size, temporal_patch_size "
                         "or min/max_pixels out of range", cfg->processor_class);
    return DLV_OK;
}

dlv_status dlv_qwen2vl_grid_for(const dlv_preproc_config *cfg, uint32_t width, uint32_t height,
                                dlv_qwen2vl_grid *grid)
{
    memset(grid, 0, sizeof *grid);
    dlv_status st = check_cfg(cfg);
    if (st != DLV_OK) return st;
    const dlv_qwen2vl_params *q = &cfg->qwen2vl;
    uint32_t p = (uint32_t)q->patch_size, factor = p * (uint32_t)q->merge_size;
    uint32_t rh = height, rw = width;
    if (cfg->do_resize) {
        st = dlv_qwen2vl_smart_resize(height, width, factor, (uint64_t)q->min_pixels,
                                      (uint64_t)q->max_pixels, &rh, &rw);
        if (st != DLV_OK) return st;
    } else if (height == 0 || width == 0 || height % factor || width % factor) {
        /* HF's reshape into merge blocks fails on such an image. */
        return dlv_error(DLV_E_UNSUPPORTED, "Qwen2VLImageProcessor: without do_resize a %ux%u "
                         "image must have sides that are multiples of patch_size * merge_size "
                         "= %u", (unsigned)width, (unsigned)height, (unsigned)factor);
    }
    if ((uint64_t)rh * rw > QWEN2VL_MAX_RESIZED)
        return dlv_error(DLV_E_UNSUPPORTED, "Qwen2VLImageProcessor: a %ux%u image would be "
                         "resized to %ux%u, more than %llu pixels", (unsigned)width,
                         (unsigned)height, (unsigned)rw, (unsigned)rh,
                         (unsigned long long)QWEN2VL_MAX_RESIZED);
    /* A still image is repeated to temporal_patch_size frames: one
     * temporal patch. */
    grid->t = 1;
    grid->h = rh / p;
    grid->w = rw / p;
    grid->resized_h = rh;
    grid->resized_w = rw;
    return DLV_OK;
}

size_t dlv_qwen2vl_tokens(const dlv_preproc_config *cfg, const dlv_qwen2vl_grid *grid)
{
    size_t m = (size_t)cfg->qwen2vl.merge_size;
    return m ? (size_t)grid->t * (grid->h / m) * (grid->w / m) : 0;
}

size_t dlv_qwen2vl_patch_dim(const dlv_preproc_config *cfg)
{
    size_t p = (size_t)cfg->qwen2vl.patch_size;
    return 3 * (size_t)cfg->qwen2vl.temporal_patch_size * p * p;
}

size_t dlv_qwen2vl_patch_floats(const dlv_preproc_config *cfg, const dlv_qwen2vl_grid *grid)
{
    /* At most 2^27 pixels x 3 x 8 frames: no overflow in 64 bits. */
    return (size_t)grid->t * grid->h * grid->w * dlv_qwen2vl_patch_dim(cfg);
}

dlv_status dlv_qwen2vl_resize_rgb8(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                                   uint64_t max_pixels, dlv_rgb8 *out, dlv_qwen2vl_grid *grid)
{
    out->px = NULL;
    out->width = out->height = 0;
    memset(grid, 0, sizeof *grid);
    if (!in || !in->px || in->width == 0 || in->height == 0)
        return dlv_error(DLV_E_INVALID_ARG, "preprocess: no image");
    dlv_status st = dlv_qwen2vl_grid_for(cfg, in->width, in->height, grid);
    if (st != DLV_OK) return st;
    uint64_t n = (uint64_t)grid->resized_h * grid->resized_w;
    if (n > max_pixels) {
        st = dlv_error(DLV_E_UNSUPPORTED, "resize of %ux%u gives %ux%u = %llu pixels, more than "
                       "the limit of %llu", (unsigned)in->width, (unsigned)in->height,
                       (unsigned)grid->resized_w, (unsigned)grid->resized_h,
                       (unsigned long long)n, (unsigned long long)max_pixels);
        memset(grid, 0, sizeof *grid);
        return st;
    }
    if (cfg->do_resize)
        st = dlv_resample_rgb8(in, grid->resized_w, grid->resized_h, cfg->resample, out);
    else if ((st = dlv_rgb8_alloc(out, in->width, in->height)) == DLV_OK)
        memcpy(out->px, in->px, (size_t)in->width * in->height * 3);
    if (st != DLV_OK) memset(grid, 0, sizeof *grid);
    return st;
}

dlv_status dlv_qwen2vl_patchify(const dlv_preproc_config *cfg, const dlv_rgb8 *resized,
                                float *out, size_t out_len)
{
    dlv_status st = check_cfg(cfg);
    if (st != DLV_OK) return st;
    const dlv_qwen2vl_params *q = &cfg->qwen2vl;
    size_t p = (size_t)q->patch_size, m = (size_t)q->merge_size;
    size_t tp = (size_t)q->temporal_patch_size, block = p * m;
    if (!resized || !resized->px || resized->width == 0 || resized->height == 0 ||
        resized->width % block || resized->height % block)
        return dlv_error(DLV_E_INVALID_ARG, "Qwen2VLImageProcessor: patches need an image whose "
                         "sides are multiples of %zu", block);
    size_t gh = resized->height / p, gw = resized->width / p, dim = dlv_qwen2vl_patch_dim(cfg);
    if (!out || out_len / dim < gh * gw)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "Qwen2VLImageProcessor: output holds %zu "
                         "floats, %zu patches of %zu need %zu", out_len, gh * gw, dim,
                         gh * gw * dim);

    /* The CLIP pipeline's rescale + normalize, applied to the 256 byte
     * values at once: a 256 x 1 image of gray levels gives the table, so
     * both pipelines round identically by construction. */
    uint8_t ramp_px[256 * 3];
    float lut[3 * 256];
    for (int v = 0; v < 256; v++) ramp_px[3 * v] = ramp_px[3 * v + 1] = ramp_px[3 * v + 2] = (uint8_t)v;
    const dlv_rgb8 ramp = {ramp_px, 256, 1};
    if ((st = dlv_preprocess_to_float(cfg, &ramp, lut, 3 * 256)) != DLV_OK) return st;

    /* Row (by, bx, my, mx): the patch at grid row by * m + my, column
     * bx * m + mx; within a row, (channel, frame, y, x). Every frame is the
     * same image, so frame 0 is computed and copied. */
    size_t row_bytes = (size_t)resized->width * 3, pp = p * p;
    float *dst = out;
    for (size_t by = 0; by < gh / m; by++)
        for (size_t bx = 0; bx < gw / m; bx++)
            for (size_t my = 0; my < m; my++)
                for (size_t mx = 0; mx < m; mx++) {
                    const uint8_t *src = resized->px + (by * m + my) * p * row_bytes +
                                         (bx * m + mx) * p * 3;
                    for (size_t c = 0; c < 3; c++) {
                        float *frame0 = dst + c * tp * pp;
                        const float *tab = lut + c * 256;
                        for (size_t y = 0; y < p; y++)
                            for (size_t x = 0; x < p; x++)
                                frame0[y * p + x] = tab[src[y * row_bytes + 3 * x + c]];
                        for (size_t t = 1; t < tp; t++)
                            memcpy(frame0 + t * pp, frame0, pp * sizeof *frame0);
                    }
                    dst += dim;
                }
    return DLV_OK;
}

dlv_status dlv_qwen2vl_preprocess(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                                  uint64_t max_pixels, dlv_qwen2vl_grid *grid, float **out,
                                  size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    dlv_rgb8 resized = {NULL, 0, 0};
    dlv_status st = dlv_qwen2vl_resize_rgb8(cfg, in, max_pixels, &resized, grid);
    if (st != DLV_OK) return st;
    size_t n = dlv_qwen2vl_patch_floats(cfg, grid);
    float *buf = malloc(n * sizeof *buf);
    if (!buf) st = dlv_error_nomem("Qwen2-VL patches", n * sizeof *buf);
    if (st == DLV_OK) st = dlv_qwen2vl_patchify(cfg, &resized, buf, n);
    dlv_rgb8_free(&resized);
    if (st != DLV_OK) {
        free(buf);
        memset(grid, 0, sizeof *grid);
        return st;
    }
    *out = buf;
    *out_len = n;
    return DLV_OK;
}
