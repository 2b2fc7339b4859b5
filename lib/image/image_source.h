/* Image sources (a file, encoded bytes in memory, or packed RGB) and their
 * decoding and preprocessing into a model's pixel tensor. Decoding is lazy:
 * the public constructors (api/image.c) only copy and check what they are
 * given, and decoding runs at preprocessing time with that call's limits
 * (max pixels, EXIF rotation). Below the model layer, so that model kinds
 * and the trainer preprocess without calling the public API. */
#ifndef DLV_IMAGE_IMAGE_SOURCE_H
#define DLV_IMAGE_IMAGE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"
#include "image/anyres.h"
#include "image/preproc_config.h"
#include "image/decode.h"
#include "image/qwen2vl.h"

typedef enum dlv_image_kind { DLV_IMAGE_FILE, DLV_IMAGE_MEMORY, DLV_IMAGE_RGB } dlv_image_kind;

struct dlv_image {
    dlv_image_kind kind;
    char *path;             /* FILE */
    unsigned char *bytes;   /* MEMORY: encoded bytes; RGB: packed rows */
    size_t n_bytes;
    uint32_t width, height; /* RGB */
};

/* How messages name a source. */
const char *dlv_image_label(const dlv_image *image);

/* The image as packed 8-bit RGB: decoded (FILE, MEMORY) or copied (RGB). */
dlv_status dlv_image_decode(const dlv_image *image, const dlv_decode_opts *opts, dlv_rgb8 *out);

typedef struct dlv_pixel_opts {
    int pad_square;
    int exif_rotate;
    uint64_t max_pixels;
} dlv_pixel_opts;

#define DLV_PIXEL_OPTS_DEFAULT {0, 0, DLV_DEFAULT_MAX_PIXELS}

/* Decodes and preprocesses one image with the image processor's settings
 * into out [3, H, W] f32 (out_len floats; H, W from dlv_preprocess_fixed_size).
 * An anyres config (LlavaNextImageProcessor) is refused: its images are
 * 1 + N tiles, see dlv_image_to_anyres. */
dlv_status dlv_image_to_pixels(const dlv_preproc_config *cfg, const dlv_image *image,
                               const dlv_pixel_opts *opts, float *out, size_t out_len);

/* Decodes one image and preprocesses it under an anyres config
 * (image/anyres.h): *out gets layout->n_floats floats, [1 + n_tiles, 3,
 * tile_h, tile_w] with the base image first (free()); *layout the tile
 * grid and the decoded size. pad_square is refused (LLaVA-NeXT has its own
 * padding). */
dlv_status dlv_image_to_anyres(const dlv_preproc_config *cfg, const dlv_image *image,
                               const dlv_pixel_opts *opts, dlv_anyres_layout *layout,
                               float **out);
/* Decodes and preprocesses one image with a Qwen2VLImageProcessor config
 * (image/qwen2vl.h): *out (malloc'd, *out_len floats) receives the patches
 * [grid t * h * w, 3 * temporal_patch_size * patch_size^2], *grid the grid.
 * pad_square does not apply (DLV_E_UNSUPPORTED). */
dlv_status dlv_image_to_qwen2vl_patches(const dlv_preproc_config *cfg, const dlv_image *image,
                                        const dlv_pixel_opts *opts, dlv_qwen2vl_grid *grid,
                                        float **out, size_t *out_len);

#endif
