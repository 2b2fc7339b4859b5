/* The pixel pipeline of CLIPImageProcessor / SiglipImageProcessor (the
 * "slow" NumPy + Pillow processors), plus LLaVA-1.5's expand2square:
 *   [pad to square with int(mean * 255)] -> resize (Pillow) -> center crop
 *   (CLIP; zero padding when smaller) -> rescale (float64, then float32)
 *   -> normalize (float32) -> channels first.
 * See docs/images.md for the exact rounding rules. */
#ifndef DLV_IMAGE_PREPROCESS_H
#define DLV_IMAGE_PREPROCESS_H

#include <stddef.h>

#include "image/preproc_config.h"
#include "image/decode.h"

/* The output size (height, width) the config gives for an input of
 * in_w x in_h, after the optional square padding. */
dlv_status dlv_preprocess_output_size(const dlv_preproc_config *cfg, uint32_t in_w,
                                      uint32_t in_h, int pad_square, uint32_t *out_h,
                                      uint32_t *out_w);

/* The fixed output size of a config, when it does not depend on the input
 * (crop size, or resize to height x width); DLV_E_UNSUPPORTED otherwise. */
dlv_status dlv_preprocess_fixed_size(const dlv_preproc_config *cfg, uint32_t *out_h,
                                     uint32_t *out_w);

/* The 8-bit image right before rescaling: pad, resize, crop. Resized
 * intermediates above max_pixels are refused. */
dlv_status dlv_preprocess_rgb8(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                               int pad_square, uint64_t max_pixels, dlv_rgb8 *out);

/* Rescale and normalize an 8-bit image into out [3, H, W] (out_len floats
 * at least 3 * H * W). */
dlv_status dlv_preprocess_to_float(const dlv_preproc_config *cfg, const dlv_rgb8 *img,
                                   float *out, size_t out_len);

#endif
