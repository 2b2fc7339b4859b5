/* Each step mirrors one Hugging Face function (transformers 4.46,
 * image_transforms.py and image_processing_clip/siglip.py), including where
 * it rounds: get_resize_output_image_size truncates with int(), center_crop
 * offsets with floor division and pads with ceil, rescale multiplies in
 * float64 and casts to float32, normalize subtracts and divides in float32
 * with mean and std cast to float32. */
#include "image/preprocess.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "image/resample.h"

/* Qwen2VLImageProcessor's output is a variable number of patches, not one
 * [3, H, W] image: image/qwen2vl.h handles it, this pipeline refuses it. */
static dlv_status refuse_patches(const dlv_preproc_config *cfg)
{
    return dlv_error(DLV_E_UNSUPPORTED, "%s: its output is patches (Qwen2-VL), not one "
                     "[3, H, W] image", cfg->processor_class);
}

static dlv_status resize_size(const dlv_preproc_config *cfg, uint32_t w, uint32_t h,
                              uint32_t *rh, uint32_t *rw)
{
    *rh = h;
    *rw = w;
    if (!cfg->do_resize) return DLV_OK;
    if (cfg->shortest_edge > 0) {
        uint64_t s = (uint64_t)cfg->shortest_edge;
        uint64_t shorter = w <= h ? w : h, longer = w <= h ? h : w;
        /* int(size * long / short): an exact product, one correctly rounded
         * division, truncation, as in Python. */
        double q = (double)(s * longer) / (double)shorter;
        if (q >= 4294967295.0)
            return dlv_error(DLV_E_UNSUPPORTED, "resize of %ux%u to shortest edge %llu: the long "
                             "side would exceed 2^32", (unsigned)w, (unsigned)h,
                             (unsigned long long)s);
        uint32_t nl = (uint32_t)q;
        if (nl == 0) nl = 1;
        if (w <= h) {
            *rw = (uint32_t)s;
            *rh = nl;
        } else {
            *rh = (uint32_t)s;
            *rw = nl;
        }
    } else {
        *rh = (uint32_t)cfg->size_height;
        *rw = (uint32_t)cfg->size_width;
    }
    return DLV_OK;
}

dlv_status dlv_preprocess_output_size(const dlv_preproc_config *cfg, uint32_t in_w,
                                      uint32_t in_h, int pad_square, uint32_t *out_h,
                                      uint32_t *out_w)
{
    if (cfg->qwen2vl.enabled) return refuse_patches(cfg);
    if (pad_square) in_w = in_h = in_w > in_h ? in_w : in_h;
    dlv_status st = resize_size(cfg, in_w, in_h, out_h, out_w);
    if (st != DLV_OK) return st;
    if (cfg->do_center_crop) {
        *out_h = (uint32_t)cfg->crop_height;
        *out_w = (uint32_t)cfg->crop_width;
    }
    return DLV_OK;
}

dlv_status dlv_preprocess_fixed_size(const dlv_preproc_config *cfg, uint32_t *out_h,
                                     uint32_t *out_w)
{
    if (cfg->qwen2vl.enabled) return refuse_patches(cfg);
    if (cfg->do_center_crop) {
        *out_h = (uint32_t)cfg->crop_height;
        *out_w = (uint32_t)cfg->crop_width;
        return DLV_OK;
    }
    if (cfg->do_resize && cfg->shortest_edge <= 0) {
        *out_h = (uint32_t)cfg->size_height;
        *out_w = (uint32_t)cfg->size_width;
        return DLV_OK;
    }
    return dlv_error(DLV_E_UNSUPPORTED, "%s: the output size depends on the image (no center "
                     "crop and no fixed resize size)", cfg->processor_class);
}

/* LLaVA-1.5 expand2square: the image pasted centred (floor) on a square of
 * the background colour tuple(int(x * 255) for x in image_mean). */
static dlv_status pad_to_square(const dlv_preproc_config *cfg, const dlv_rgb8 *in, dlv_rgb8 *out)
{
    uint32_t side = in->width > in->height ? in->width : in->height;
    dlv_status st = dlv_rgb8_alloc(out, side, side);
    if (st != DLV_OK) return st;
    uint8_t bg[3];
    for (int c = 0; c < 3; c++) {
        double v = cfg->image_mean[c] * 255.0;
        bg[c] = (uint8_t)(v <= 0.0 ? 0.0 : v >= 255.0 ? 255.0 : v);
    }
    size_t n = (size_t)side * side;
    for (size_t i = 0; i < n; i++) memcpy(out->px + 3 * i, bg, 3);
    uint32_t x0 = (side - in->width) / 2, y0 = (side - in->height) / 2;
    for (uint32_t y = 0; y < in->height; y++)
        memcpy(out->px + ((size_t)(y + y0) * side + x0) * 3, in->px + (size_t)y * in->width * 3,
               (size_t)in->width * 3);
    return DLV_OK;
}

/* image_transforms.center_crop: offsets (orig - crop) // 2; a side smaller
 * than the crop is zero-padded with the image at ceil((crop - orig) / 2). */
static dlv_status center_crop(const dlv_rgb8 *in, uint32_t ch, uint32_t cw, dlv_rgb8 *out)
{
    dlv_status st = dlv_rgb8_alloc(out, cw, ch);
    if (st != DLV_OK) return st;
    memset(out->px, 0, (size_t)cw * ch * 3);
    /* For each axis: the first source index and destination index, and the count. */
    int64_t sy, dy, ny, sx, dx, nx;
    if (in->height >= ch) {
        sy = ((int64_t)in->height - ch) / 2;
        dy = 0;
        ny = ch;
    } else {
        sy = 0;
        dy = ((int64_t)ch - in->height + 1) / 2;
        ny = in->height;
    }
    if (in->width >= cw) {
        sx = ((int64_t)in->width - cw) / 2;
        dx = 0;
        nx = cw;
    } else {
        sx = 0;
        dx = ((int64_t)cw - in->width + 1) / 2;
        nx = in->width;
    }
    for (int64_t y = 0; y < ny; y++)
        memcpy(out->px + ((size_t)(y + dy) * cw + (size_t)dx) * 3,
               in->px + ((size_t)(y + sy) * in->width + (size_t)sx) * 3, (size_t)nx * 3);
    return DLV_OK;
}

static dlv_status check_config(const dlv_preproc_config *cfg)
{
    if (cfg->qwen2vl.enabled) return refuse_patches(cfg);
    if (cfg->do_resize && cfg->shortest_edge <= 0 &&
        (cfg->size_height <= 0 || cfg->size_width <= 0))
        return dlv_error(DLV_E_FORMAT, "%s: do_resize without a size", cfg->processor_class);
    if (cfg->do_center_crop && (cfg->crop_height <= 0 || cfg->crop_width <= 0))
        return dlv_error(DLV_E_FORMAT, "%s: do_center_crop without a crop_size",
                         cfg->processor_class);
    return DLV_OK;
}

dlv_status dlv_preprocess_rgb8(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                               int pad_square, uint64_t max_pixels, dlv_rgb8 *out)
{
    out->px = NULL;
    out->width = out->height = 0;
    if (!cfg || !in || !in->px || in->width == 0 || in->height == 0)
        return dlv_error(DLV_E_INVALID_ARG, "preprocess: no image or no config");
    dlv_status st = check_config(cfg);
    if (st != DLV_OK) return st;

    /* Intermediates obey the pixel limit like decoded images do. */
    uint64_t side = in->width > in->height ? in->width : in->height;
    if (pad_square && side * side > max_pixels)
        return dlv_error(DLV_E_UNSUPPORTED, "padding %ux%u to a square gives %llu pixels, more "
                         "than the limit of %llu", (unsigned)in->width, (unsigned)in->height,
                         (unsigned long long)(side * side), (unsigned long long)max_pixels);
    if (cfg->do_center_crop && (uint64_t)cfg->crop_height * (uint64_t)cfg->crop_width > max_pixels)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: crop_size %lldx%lld is more than the limit of "
                         "%llu pixels", cfg->processor_class, (long long)cfg->crop_width,
                         (long long)cfg->crop_height, (unsigned long long)max_pixels);

    dlv_rgb8 padded = {NULL, 0, 0}, resized = {NULL, 0, 0};
    const dlv_rgb8 *cur = in;
    if (pad_square && in->width != in->height) {
        if ((st = pad_to_square(cfg, in, &padded)) != DLV_OK) return st;
        cur = &padded;
    }
    uint32_t rh, rw;
    if ((st = resize_size(cfg, cur->width, cur->height, &rh, &rw)) != DLV_OK) goto done;
    if ((uint64_t)rh * rw > max_pixels) {
        st = dlv_error(DLV_E_UNSUPPORTED, "resize of %ux%u gives %ux%u = %llu pixels, more than "
                       "the limit of %llu", (unsigned)cur->width, (unsigned)cur->height,
                       (unsigned)rw, (unsigned)rh, (unsigned long long)rh * rw,
                       (unsigned long long)max_pixels);
        goto done;
    }
    if (cfg->do_resize) {
        if ((st = dlv_resample_rgb8(cur, rw, rh, cfg->resample, &resized)) != DLV_OK) goto done;
        cur = &resized;
    }
    if (cfg->do_center_crop)
        st = center_crop(cur, (uint32_t)cfg->crop_height, (uint32_t)cfg->crop_width, out);
    else if ((st = dlv_rgb8_alloc(out, cur->width, cur->height)) == DLV_OK)
        memcpy(out->px, cur->px, (size_t)cur->width * cur->height * 3);
done:
    dlv_rgb8_free(&padded);
    dlv_rgb8_free(&resized);
    return st;
}

dlv_status dlv_preprocess_to_float(const dlv_preproc_config *cfg, const dlv_rgb8 *img,
                                   float *out, size_t out_len)
{
    size_t plane = (size_t)img->width * img->height;
    if (!out || out_len / 3 < plane)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "preprocess: output holds %zu floats, "
                         "[3, %u, %u] needs %zu", out_len, (unsigned)img->height,
                         (unsigned)img->width, 3 * plane);
    /* One table per channel: the result depends only on the byte value. */
    float lut[3][256];
    for (int c = 0; c < 3; c++) {
        float mean = (float)cfg->image_mean[c], std = (float)cfg->image_std[c];
        for (int v = 0; v < 256; v++) {
            float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
            lut[c][v] = cfg->do_normalize ? (x - mean) / std : x;
        }
    }
    for (int c = 0; c < 3; c++) {
        float *dst = out + (size_t)c * plane;
        const uint8_t *src = img->px + c;
        for (size_t i = 0; i < plane; i++) dst[i] = lut[c][src[3 * i]];
    }
    return DLV_OK;
}
