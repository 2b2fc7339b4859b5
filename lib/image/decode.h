/* Image decoding to packed 8-bit RGB, converting the way Pillow's
 * Image.open(...).convert("RGB") does (docs/images.md): alpha is dropped
 * without compositing, gray is replicated, palettes are applied, 16-bit
 * samples keep their high byte except 16-bit gray, which Pillow opens as
 * mode I;16 and clips to 255, and CMYK JPEGs are read as Adobe-inverted CMYK
 * and converted with Pillow's formula. libpng and libjpeg errors are caught
 * inside the decoders; no longjmp leaves them. */
#ifndef DLV_IMAGE_DECODE_H
#define DLV_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

/* Pillow's decompression-bomb error threshold: 2 * Image.MAX_IMAGE_PIXELS,
 * 2 * (1024 * 1024 * 1024 // 4 // 3). Pillow refuses images with more. */
#define DLV_DEFAULT_MAX_PIXELS ((uint64_t)178956970)

/* Packed RGB rows (stride 3 * width), owned by the struct. */
typedef struct dlv_rgb8 {
    uint8_t *px;
    uint32_t width, height;
} dlv_rgb8;

/* Allocates px for width x height (both > 0); DLV_E_NOMEM on failure. */
dlv_status dlv_rgb8_alloc(dlv_rgb8 *img, uint32_t width, uint32_t height);
void dlv_rgb8_free(dlv_rgb8 *img);

typedef struct dlv_decode_opts {
    uint64_t max_pixels; /* width * height above this is refused before allocating */
    int exif_rotate;     /* apply the EXIF orientation (Pillow's exif_transpose) */
} dlv_decode_opts;

/* Decodes PNG or JPEG bytes (by signature); label names the source in
 * messages. On failure *out is left empty. */
dlv_status dlv_decode_image(const unsigned char *data, size_t n, const char *label,
                            const dlv_decode_opts *opts, dlv_rgb8 *out);

/* The formats, for the dispatcher and the tests. *orientation receives the
 * EXIF orientation 1..8 (1 when absent or unreadable). */
dlv_status dlv_decode_png(const unsigned char *data, size_t n, const char *label,
                          uint64_t max_pixels, dlv_rgb8 *out, int *orientation);
dlv_status dlv_decode_jpeg(const unsigned char *data, size_t n, const char *label,
                           uint64_t max_pixels, dlv_rgb8 *out, int *orientation);

/* The orientation tag (0x0112) of a TIFF-structured EXIF block (starting at
 * the byte order mark); 1 when absent or malformed. */
int dlv_exif_orientation(const unsigned char *tiff, size_t n);

/* Rearranges img for EXIF orientation 2..8 as ImageOps.exif_transpose does
 * (1 and unknown values leave it as is). */
dlv_status dlv_rgb8_orient(dlv_rgb8 *img, int orientation);

/* The pixel-count check shared by the decoders. */
dlv_status dlv_decode_check_size(const char *label, const char *format, uint64_t width,
                                 uint64_t height, uint64_t max_pixels);

#endif
