/* Image sources: constructors validate and copy what the caller gives. */
#include "api/image.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"

DLV_API dlv_status dlv_image_from_file(const char *path, dlv_image **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_file: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_image_from_file: path is NULL or empty");
    if (!dlv_is_file(path))
        return dlv_error(DLV_E_IO, "%s: no such image file", path);
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
