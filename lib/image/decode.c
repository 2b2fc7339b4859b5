/* Format dispatch by signature, the RGB buffer and the pixel-count limit. */
#include "image/decode.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

dlv_status dlv_rgb8_alloc(dlv_rgb8 *img, uint32_t width, uint32_t height)
{
    img->px = NULL;
    img->width = img->height = 0;
    if (width == 0 || height == 0)
        return dlv_error(DLV_E_INVALID_ARG, "empty image (%ux%u)", (unsigned)width,
                         (unsigned)height);
    size_t row = (size_t)width * 3u;
    if (row / 3u != width || height > SIZE_MAX / row)
        return dlv_error(DLV_E_NOMEM, "a %ux%u RGB image does not fit in memory",
                         (unsigned)width, (unsigned)height);
    img->px = malloc(row * height);
    if (!img->px) return dlv_error_nomem("RGB pixels", row * height);
    img->width = width;
    img->height = height;
    return DLV_OK;
}

void dlv_rgb8_free(dlv_rgb8 *img)
{
    if (!img) return;
    free(img->px);
    img->px = NULL;
    img->width = img->height = 0;
}

dlv_status dlv_decode_check_size(const char *label, const char *format, uint64_t width,
                                 uint64_t height, uint64_t max_pixels)
{
    if (width == 0 || height == 0)
        return dlv_error(DLV_E_FORMAT, "%s: %s image has zero size (%llux%llu)", label, format,
                         (unsigned long long)width, (unsigned long long)height);
    /* width and height are below 2^32, so the product cannot overflow. */
    uint64_t pixels = width * height;
    if (pixels > max_pixels)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: %s image is %llux%llu = %llu pixels, more than the limit of %llu "
                         "(a possible decompression bomb; see "
                         "dlv_preprocess_options_set_max_pixels)",
                         label, format, (unsigned long long)width, (unsigned long long)height,
                         (unsigned long long)pixels, (unsigned long long)max_pixels);
    return DLV_OK;
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

dlv_status dlv_decode_image(const unsigned char *data, size_t n, const char *label,
                            const dlv_decode_opts *opts, dlv_rgb8 *out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_decode_image: out is NULL");
    out->px = NULL;
    out->width = out->height = 0;
    if (!label) label = "image";
    if (!data || n == 0) return dlv_error(DLV_E_FORMAT, "%s: empty image data", label);
    uint64_t max_pixels = opts ? opts->max_pixels : DLV_DEFAULT_MAX_PIXELS;
    int orientation = 1;
    dlv_status st;
    if (n >= sizeof png_sig && memcmp(data, png_sig, sizeof png_sig) == 0)
        st = dlv_decode_png(data, n, label, max_pixels, out, &orientation);
    else if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        st = dlv_decode_jpeg(data, n, label, max_pixels, out, &orientation);
    else
        return dlv_error(DLV_E_UNSUPPORTED, "%s: not a PNG or JPEG image (%zu bytes, unknown "
                         "signature)", label, n);
    if (st != DLV_OK) return st;
    if (opts && opts->exif_rotate && orientation != 1) {
        st = dlv_rgb8_orient(out, orientation);
        if (st != DLV_OK) {
            dlv_rgb8_free(out);
            return dlv_error_prefix(st, "%s: EXIF orientation %d", label, orientation);
        }
    }
    return DLV_OK;
}
