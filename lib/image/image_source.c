/* Image sources: decoding and preprocessing (see image_source.h). */
#include "image/image_source.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "image/preprocess.h"

/* Encoded files above this are refused before reading (far above any image
 * within the default pixel limit). */
#define MAX_FILE_BYTES ((size_t)1 << 31)

/* How messages name a source. */
const char *dlv_image_label(const dlv_image *image)
{
    switch (image->kind) {
    case DLV_IMAGE_FILE: return image->path;
    case DLV_IMAGE_MEMORY: return "image in memory";
    case DLV_IMAGE_RGB: return "RGB image";
    }
    return "image";
}

dlv_status dlv_image_decode(const dlv_image *image, const dlv_decode_opts *opts, dlv_rgb8 *out)
{
    out->px = NULL;
    out->width = out->height = 0;
    if (!image) return dlv_error(DLV_E_INVALID_ARG, "image is NULL");
    uint64_t max_pixels = opts ? opts->max_pixels : DLV_DEFAULT_MAX_PIXELS;
    switch (image->kind) {
    case DLV_IMAGE_RGB: {
        dlv_status st = dlv_decode_check_size(dlv_image_label(image), "raw", image->width,
                                              image->height, max_pixels);
        if (st == DLV_OK) st = dlv_rgb8_alloc(out, image->width, image->height);
        if (st == DLV_OK) memcpy(out->px, image->bytes, image->n_bytes);
        return st;
    }
    case DLV_IMAGE_MEMORY:
        return dlv_decode_image(image->bytes, image->n_bytes, dlv_image_label(image), opts, out);
    case DLV_IMAGE_FILE: {
        char *data = NULL;
        size_t len = 0;
        dlv_status st = dlv_read_file(image->path, MAX_FILE_BYTES, &data, &len);
        if (st != DLV_OK) return st;
        st = dlv_decode_image((const unsigned char *)data, len, image->path, opts, out);
        free(data);
        return st;
    }
    }
    return dlv_error(DLV_E_INVALID_ARG, "image: unknown source kind %d", (int)image->kind);
}

dlv_status dlv_image_to_pixels(const dlv_preproc_config *cfg, const dlv_image *image,
                               const dlv_pixel_opts *opts, float *out, size_t out_len)
{
    static const dlv_pixel_opts defaults = DLV_PIXEL_OPTS_DEFAULT;
    if (!image) return dlv_error(DLV_E_INVALID_ARG, "preprocess: image is NULL");
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "preprocess: out is NULL");
    if (!opts) opts = &defaults;
    if (cfg->anyres)
        return dlv_error(DLV_E_UNSUPPORTED, "preprocess: %s makes 1 + N tiles per image, not "
                         "one [3, H, W] image", cfg->processor_class);
    uint32_t h, w;
    dlv_status st = dlv_preprocess_fixed_size(cfg, &h, &w);
    if (st != DLV_OK) return st;
    size_t need = (size_t)3 * h * w;
    if (out_len < need)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "preprocess: out holds %zu floats, [3, %u, %u] "
                         "needs %zu", out_len, (unsigned)h, (unsigned)w, need);
    dlv_decode_opts dopts = {opts->max_pixels, opts->exif_rotate};
    dlv_rgb8 rgb = {NULL, 0, 0}, pix = {NULL, 0, 0};
    st = dlv_image_decode(image, &dopts, &rgb);
    if (st == DLV_OK) {
        st = dlv_preprocess_rgb8(cfg, &rgb, opts->pad_square, opts->max_pixels, &pix);
        if (st != DLV_OK) st = dlv_error_prefix(st, "%s", dlv_image_label(image));
    }
    dlv_rgb8_free(&rgb);
    if (st == DLV_OK && (pix.height != h || pix.width != w))
        st = dlv_error(DLV_E_UNSUPPORTED, "preprocess: the pipeline gave %ux%u, not the "
                       "configured %ux%u", (unsigned)pix.width, (unsigned)pix.height,
                       (unsigned)w, (unsigned)h);
    if (st == DLV_OK) st = dlv_preprocess_to_float(cfg, &pix, out, out_len);
    dlv_rgb8_free(&pix);
    return st;
}

dlv_status dlv_image_to_anyres(const dlv_preproc_config *cfg, const dlv_image *image,
                               const dlv_pixel_opts *opts, dlv_anyres_layout *layout,
                               float **out)
{
    static const dlv_pixel_opts defaults = DLV_PIXEL_OPTS_DEFAULT;
    if (!image || !layout || !out)
        return dlv_error(DLV_E_INVALID_ARG, "anyres: NULL image or output");
    *out = NULL;
    if (!opts) opts = &defaults;
    if (opts->pad_square)
        return dlv_error(DLV_E_UNSUPPORTED, "anyres: pad-square does not apply to %s",
                         cfg ? cfg->processor_class : "this config");
    dlv_decode_opts dopts = {opts->max_pixels, opts->exif_rotate};
    dlv_rgb8 rgb = {NULL, 0, 0};
    dlv_status st = dlv_image_decode(image, &dopts, &rgb);
    /* The size first: the buffer depends on the image's tile count. */
    if (st == DLV_OK) st = dlv_anyres_layout_of(cfg, rgb.width, rgb.height, layout);
    if (st == DLV_OK && !(*out = malloc(layout->n_floats * sizeof **out)))
        st = dlv_error_nomem("anyres pixels", layout->n_floats * sizeof **out);
    if (st == DLV_OK)
        st = dlv_anyres_to_float(cfg, &rgb, opts->max_pixels, layout, *out, layout->n_floats);
    if (st != DLV_OK) {
        free(*out);
        *out = NULL;
        st = dlv_error_prefix(st, "%s", dlv_image_label(image));
    }
    dlv_rgb8_free(&rgb);
    return st;
}

dlv_status dlv_image_to_qwen2vl_patches(const dlv_preproc_config *cfg, const dlv_image *image,
                                        const dlv_pixel_opts *opts, dlv_qwen2vl_grid *grid,
                                        float **out, size_t *out_len)
{
    static const dlv_pixel_opts defaults = DLV_PIXEL_OPTS_DEFAULT;
    if (!cfg || !image || !grid || !out || !out_len)
        return dlv_error(DLV_E_INVALID_ARG, "preprocess: NULL argument");
    *out = NULL;
    *out_len = 0;
    memset(grid, 0, sizeof *grid);
    if (!opts) opts = &defaults;
    if (opts->pad_square)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: pad_square (LLaVA-1.5) does not apply to "
                         "Qwen2VLImageProcessor", dlv_image_label(image));
    dlv_decode_opts dopts = {opts->max_pixels, opts->exif_rotate};
    dlv_rgb8 rgb = {NULL, 0, 0};
    dlv_status st = dlv_image_decode(image, &dopts, &rgb);
    if (st == DLV_OK) {
        st = dlv_qwen2vl_preprocess(cfg, &rgb, opts->max_pixels, grid, out, out_len);
        if (st != DLV_OK) st = dlv_error_prefix(st, "%s", dlv_image_label(image));
    }
    dlv_rgb8_free(&rgb);
    return st;
}
