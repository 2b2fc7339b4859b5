/* Image sources: the public constructors (they validate and copy what the
 * caller gives) and preprocessing entry points; decoding and the pipeline
 * are in vision/image_source.c. */
#include "image/image_source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fs.h"
#include "model/model.h"
#include "image/preprocess.h"

DLV_API dlv_status dlv_image_from_file(const char *path, dlv_image **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_file: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_file: path is NULL or empty");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dlv_error(DLV_E_IO, "%s: %s", path,
                         errno == ENOENT ? "no such image file" : strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return dlv_error(DLV_E_IO, "%s: is a directory, not an image file", path);
    if (!S_ISREG(sb.st_mode))
        return dlv_error(DLV_E_IO, "%s: is not a regular file (an image must be a file)", path);
    dlv_image *im = calloc(1, sizeof *im);
    if (im) im->path = strdup(path);
    if (!im || !im->path) {
        free(im);
        return dlv_error_nomem("image path", strlen(path) + 1);
    }
    im->kind = DLV_IMAGE_FILE;
    *out = im;
    return DLV_OK;
}

DLV_API dlv_status dlv_image_from_memory(const void *data, size_t n_bytes, dlv_image **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_memory: out is NULL");
    *out = NULL;
    if (!data || n_bytes == 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_memory: no data (NULL or 0 bytes)");
    dlv_image *im = calloc(1, sizeof *im);
    if (im) im->bytes = malloc(n_bytes);
    if (!im || !im->bytes) {
        free(im);
        return dlv_error_nomem("encoded image", n_bytes);
    }
    memcpy(im->bytes, data, n_bytes);
    im->n_bytes = n_bytes;
    im->kind = DLV_IMAGE_MEMORY;
    *out = im;
    return DLV_OK;
}

DLV_API dlv_status dlv_image_from_rgb(const uint8_t *rgb, uint32_t width, uint32_t height,
                                      size_t stride_bytes, dlv_image **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_rgb: out is NULL");
    *out = NULL;
    if (!rgb) return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_rgb: rgb is NULL");
    if (width == 0 || height == 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_rgb: empty image (%ux%u)",
                         (unsigned)width, (unsigned)height);
    size_t row = (size_t)width * 3u;  /* no overflow: width < 2^32 on a 64-bit size_t */
    if (row / 3u != width)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_rgb: width %u too large",
                         (unsigned)width);
    if (stride_bytes < row)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_image_from_rgb: stride %zu is less than 3 * width = %zu",
                         stride_bytes, row);
    if (height > SIZE_MAX / row)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_rgb: %ux%u image is too large",
                         (unsigned)width, (unsigned)height);
    size_t total = row * height;
    dlv_image *im = calloc(1, sizeof *im);
    if (im) im->bytes = malloc(total);
    if (!im || !im->bytes) {
        free(im);
        return dlv_error_nomem("RGB image", total);
    }
    for (uint32_t y = 0; y < height; y++)
        memcpy(im->bytes + (size_t)y * row, rgb + (size_t)y * stride_bytes, row);
    im->n_bytes = total;
    im->width = width;
    im->height = height;
    im->kind = DLV_IMAGE_RGB;
    *out = im;
    return DLV_OK;
}

DLV_API void dlv_image_free(dlv_image *image)
{
    if (!image) return;
    free(image->path);
    free(image->bytes);
    free(image);
}

/* ---- Preprocessing ---- */

struct dlv_preprocess_options {
    int pad_square;
    int exif_rotate;
    uint64_t max_pixels;
};

static const dlv_preprocess_options default_options = {0, 0, DLV_DEFAULT_MAX_PIXELS};

DLV_API dlv_status dlv_preprocess_options_new(dlv_preprocess_options **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_preprocess_options_new: out is NULL");
    *out = malloc(sizeof **out);
    if (!*out) return dlv_error_nomem("preprocess options", sizeof **out);
    **out = default_options;
    return DLV_OK;
}

DLV_API void dlv_preprocess_options_free(dlv_preprocess_options *o) { free(o); }

DLV_API dlv_status dlv_preprocess_options_set_pad_square(dlv_preprocess_options *o, int on)
{
    if (!o)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_preprocess_options_set_pad_square: NULL options");
    o->pad_square = on != 0;
    return DLV_OK;
}

DLV_API dlv_status dlv_preprocess_options_set_exif_rotate(dlv_preprocess_options *o, int on)
{
    if (!o)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_preprocess_options_set_exif_rotate: NULL options");
    o->exif_rotate = on != 0;
    return DLV_OK;
}

DLV_API dlv_status dlv_preprocess_options_set_max_pixels(dlv_preprocess_options *o,
                                                         uint64_t max_pixels)
{
    if (!o)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_preprocess_options_set_max_pixels: NULL options");
    if (max_pixels == 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_preprocess_options_set_max_pixels: 0 pixels");
    o->max_pixels = max_pixels;
    return DLV_OK;
}

static dlv_status model_preproc(const dlv_model *model, const char *fn,
                                const dlv_preproc_config **cfg)
{
    if (!model) return dlv_error(DLV_E_INVALID_ARG, "%s: model is NULL", fn);
    *cfg = dlv_model_preproc(model);
    if (!*cfg)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %s has no preprocessor_config.json", fn,
                         dlv_model_dir(model));
    return DLV_OK;
}

DLV_API dlv_status dlv_model_image_size(const dlv_model *model, size_t *channels, size_t *height,
                                        size_t *width)
{
    if (!channels || !height || !width)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_model_image_size: NULL output");
    const dlv_preproc_config *cfg;
    dlv_status st = model_preproc(model, "dlv_model_image_size", &cfg);
    uint32_t h = 0, w = 0;
    if (st == DLV_OK) st = dlv_preprocess_fixed_size(cfg, &h, &w);
    if (st != DLV_OK) return dlv_error_prefix(st, "dlv_model_image_size");
    *channels = 3;
    *height = h;
    *width = w;
    return DLV_OK;
}

DLV_API dlv_status dlv_preprocess_image(const dlv_model *model, const dlv_image *image,
                                        const dlv_preprocess_options *opts, float *out,
                                        size_t out_len)
{
    static const char fn[] = "dlv_preprocess_image";
    if (!image) return dlv_error(DLV_E_INVALID_ARG, "%s: image is NULL", fn);
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "%s: out is NULL", fn);
    if (!opts) opts = &default_options;
    const dlv_preproc_config *cfg;
    dlv_status st = model_preproc(model, fn, &cfg);
    if (st != DLV_OK) return st;
    const dlv_pixel_opts po = {opts->pad_square, opts->exif_rotate, opts->max_pixels};
    st = dlv_image_to_pixels(cfg, image, &po, out, out_len);
    return st ? dlv_error_prefix(st, "%s", fn) : DLV_OK;
}

DLV_API dlv_status dlv_image_check(const dlv_model *model, const dlv_image *image,
                                   const dlv_preprocess_options *opts)
{
    static const char fn[] = "dlv_image_check";
    if (!image) return dlv_error(DLV_E_INVALID_ARG, "%s: image is NULL", fn);
    if (!opts) opts = &default_options;
    const dlv_preproc_config *cfg = NULL;
    dlv_status st = model_preproc(model, fn, &cfg);
    if (st != DLV_OK) return st;
    if (!cfg) /* model_preproc says so first; this tells the compiler */
        return dlv_error(DLV_E_UNSUPPORTED, "%s: the model has no image processor", fn);
    const dlv_pixel_opts po = {opts->pad_square, opts->exif_rotate, opts->max_pixels};
    float *px = NULL;
    if (cfg->anyres) { /* LLaVA-NeXT: the tiles its encoder would make */
        dlv_anyres_layout layout;
        st = dlv_image_to_anyres(cfg, image, &po, &layout, &px);
    } else if (cfg->qwen2vl.enabled) { /* Qwen2-VL: its patches */
        dlv_qwen2vl_grid grid;
        size_t n = 0;
        st = dlv_image_to_qwen2vl_patches(cfg, image, &po, &grid, &px, &n);
    } else {
        uint32_t h = 0, w = 0;
        st = dlv_preprocess_fixed_size(cfg, &h, &w);
        const size_t n = 3 * (size_t)h * w;
        if (st == DLV_OK && !(px = malloc(n * sizeof *px)))
            st = dlv_error_nomem("pixels", n * sizeof *px);
        if (st == DLV_OK) st = dlv_image_to_pixels(cfg, image, &po, px, n);
    }
    free(px);
    return st ? dlv_error_prefix(st, "%s", fn) : DLV_OK;
}
