/* Internal view of an image source; decoding comes with the image pipeline. */
#ifndef DLV_API_IMAGE_H
#define DLV_API_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

typedef enum dlv_image_kind { DLV_IMAGE_FILE, DLV_IMAGE_MEMORY, DLV_IMAGE_RGB } dlv_image_kind;

struct dlv_image {
    dlv_image_kind kind;
    char *path;             /* FILE */
    unsigned char *bytes;   /* MEMORY: encoded bytes; RGB: packed rows */
    size_t n_bytes;
    uint32_t width, height; /* RGB */
};

#endif
