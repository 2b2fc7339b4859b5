/* The image pipeline of Qwen2VLImageProcessor (transformers 4.46.3; the
 * processor of Qwen2-VL and Qwen2.5-VL), for one still image:
 *   smart_resize (a multiple of patch_size * merge_size within
 *   [min_pixels, max_pixels]) -> resize (Pillow) -> rescale (float64, then
 *   float32) -> normalize (float32) -> the frame repeated to
 *   temporal_patch_size frames -> patches
 *   [grid_t * grid_h * grid_w, 3 * temporal_patch_size * patch_size^2],
 * rows in merge_size x merge_size blocks (docs/images.md, "Qwen2-VL").
 * Unlike the CLIP / SigLIP pipeline (image/preprocess.h) the output size
 * depends on the image. */
#ifndef DLV_IMAGE_QWEN2VL_H
#define DLV_IMAGE_QWEN2VL_H

#include <stddef.h>
#include <stdint.h>

#include "image/decode.h"
#include "image/preproc_config.h"

typedef struct dlv_qwen2vl_grid {
    uint32_t t, h, w;              /* image_grid_thw, in patches */
    uint32_t resized_h, resized_w; /* the image the patches are cut from */
} dlv_qwen2vl_grid;

/* HF's smart_resize: the (height, width) an image is resized to. Refuses
 * (DLV_E_UNSUPPORTED) what HF refuses: a side below factor, an aspect ratio
 * above 200; and a result with a zero side. */
dlv_status dlv_qwen2vl_smart_resize(uint32_t height, uint32_t width, uint32_t factor,
                                    uint64_t min_pixels, uint64_t max_pixels, uint32_t *out_h,
                                    uint32_t *out_w);

/* The grid of an image of width x height, without its pixels (so that a
 * model can count its tokens first). cfg must be a Qwen2VLImageProcessor
 * config. */
dlv_status dlv_qwen2vl_grid_for(const dlv_preproc_config *cfg, uint32_t width, uint32_t height,
                                dlv_qwen2vl_grid *grid);

/* Tokens the language model sees for a grid: t * (h / merge) * (w / merge). */
size_t dlv_qwen2vl_tokens(const dlv_preproc_config *cfg, const dlv_qwen2vl_grid *grid);

/* The length of one patch row, 3 * temporal_patch_size * patch_size^2, and
 * the number of floats of a grid's patches. */
size_t dlv_qwen2vl_patch_dim(const dlv_preproc_config *cfg);
size_t dlv_qwen2vl_patch_floats(const dlv_preproc_config *cfg, const dlv_qwen2vl_grid *grid);

/* The 8-bit image right before rescaling, and its grid. A resized image
 * above max_pixels (the caller's pixel limit) is refused before it is
 * allocated. */
dlv_status dlv_qwen2vl_resize_rgb8(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                                   uint64_t max_pixels, dlv_rgb8 *out, dlv_qwen2vl_grid *grid);

/* Rescales, normalizes and cuts the resized image (sides multiples of
 * patch_size * merge_size) into out (out_len floats at least
 * dlv_qwen2vl_patch_floats). */
dlv_status dlv_qwen2vl_patchify(const dlv_preproc_config *cfg, const dlv_rgb8 *resized,
                                float *out, size_t out_len);

/* Both steps: *out (malloc'd, *out_len floats) holds the patches. */
dlv_status dlv_qwen2vl_preprocess(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                                  uint64_t max_pixels, dlv_qwen2vl_grid *grid, float **out,
                                  size_t *out_len);

#endif
