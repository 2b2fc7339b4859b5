/* Internal view of an image source. Decoding is lazy: constructors only copy
 * (and check) what they are given, and dlv_image_decode runs at
 * preprocessing time with that call's limits (max pixels, EXIF rotation). */
#ifndef DLV_API_IMAGE_H
#define DLV_API_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"
#include "vision/decode.h"

typedef enum dlv_image_kind { DLV_IMAGE_FILE, DLV_IMAGE_MEMORY, DLV_IMAGE_RGB } dlv_image_kind;

struct dlv_image {
    dlv_image_kind kind;
    char *path;             /* FILE */
    unsigned char *bytes;   /* MEMORY: encoded bytes; RGB: packed rows */
    size_t n_bytes;
    uint32_t width, height; /* RGB */
};

/* The image as packed 8-bit RGB: decoded (FILE, MEMORY) or copied (RGB). */
dlv_status dlv_image_decode(const dlv_image *image, const dlv_decode_opts *opts, dlv_rgb8 *out);

#endif
