/* LLaVA-NeXT "anyres" preprocessing: the pixel pipeline of
 * LlavaNextImageProcessor (transformers 4.46.3, NumPy + Pillow), bit-exact.
 * For one image of w x h:
 *   1. the best resolution th x tw of cfg->pinpoints for it (the one that
 *      keeps the most of the image's pixels, then wastes the fewest);
 *   2. the image resized (Pillow, cfg->resample) to fit th x tw with its
 *      aspect ratio, then zero-padded (black) by the same amount on both
 *      sides, which leaves it one row or column short of th x tw when the
 *      difference is odd, as in transformers;
 *   3. that cut into square tiles of crop_height, row-major (a short last
 *      row or column of tiles stays short);
 *   4. a base image: the whole image resized to S x S, S = size.shortest_edge
 *      (or min(size.height, size.width)), whatever its aspect ratio;
 *   5. the base and each tile through the CLIP pipeline of preprocess.h
 *      (resize, center crop, rescale, normalize) to [3, tile_h, tile_w].
 * Output: [1 + n_tiles, 3, tile_h, tile_w] floats, the base first, which is
 * pixel_values[i] of one image; image_sizes[i] is (orig_h, orig_w).
 *
 * A model that needs the feature count before the pixels calls
 * dlv_anyres_layout_of with the image's size (cheap, nothing allocated);
 * dlv_anyres_to_float then fills a caller buffer of layout.n_floats, and
 * dlv_image_to_anyres (image_source.h) decodes and allocates in one call.
 * Memory: the resized image (at most th x tw), one 8-bit tile at a time, and
 * the output; the resized image, the base and the tiles' total are held to
 * max_pixels like every other intermediate. */
#ifndef DLV_IMAGE_ANYRES_H
#define DLV_IMAGE_ANYRES_H

#include <stddef.h>
#include <stdint.h>

#include "image/decode.h"
#include "image/preproc_config.h"

typedef struct dlv_anyres_layout {
    uint32_t orig_h, orig_w;       /* the input image (image_sizes) */
    uint32_t target_h, target_w;   /* the chosen pinpoint */
    uint32_t resized_h, resized_w; /* the image scaled to fit the target */
    uint32_t pad_top, pad_left;    /* zero rows / columns on each side of it */
    uint32_t padded_h, padded_w;   /* resized + 2 * pad: the area cut into tiles */
    uint32_t rows, cols;           /* the tile grid; tile i is row i / cols */
    uint32_t n_tiles;              /* rows * cols, the base not counted */
    uint32_t base_side;            /* the base image before the CLIP pipeline */
    uint32_t tile_h, tile_w;       /* each output image is [3, tile_h, tile_w] */
    size_t n_floats;               /* (1 + n_tiles) * 3 * tile_h * tile_w */
} dlv_anyres_layout;

/* transformers' select_best_resolution on (h, w) with cfg's pinpoints, in
 * the same double arithmetic and order of ties: *best is an index into
 * cfg->pinpoints. */
dlv_status dlv_anyres_select(const dlv_preproc_config *cfg, uint32_t w, uint32_t h,
                             size_t *best);

/* The layout of an image of w x h under an anyres config (cfg->anyres); no
 * pixels are touched. DLV_E_UNSUPPORTED when the config's tiles would not
 * all come out the same size (no center crop and a shortest-edge resize). */
dlv_status dlv_anyres_layout_of(const dlv_preproc_config *cfg, uint32_t w, uint32_t h,
                                dlv_anyres_layout *out);

/* The 8-bit images right before rescaling: *tiles gets 1 + n_tiles images
 * (the base first), freed with dlv_anyres_tiles_free. For the tests and
 * tools; a model wants dlv_anyres_to_float. */
dlv_status dlv_anyres_rgb8(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                           uint64_t max_pixels, dlv_anyres_layout *layout, dlv_rgb8 **tiles);
void dlv_anyres_tiles_free(dlv_rgb8 *tiles, size_t n);

/* The float tensor [1 + n_tiles, 3, tile_h, tile_w] into out (out_len
 * floats, at least layout->n_floats; DLV_E_BUFFER_TOO_SMALL otherwise).
 * *layout (may be NULL) receives the layout. */
dlv_status dlv_anyres_to_float(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                               uint64_t max_pixels, dlv_anyres_layout *layout, float *out,
                               size_t out_len);

#endif
