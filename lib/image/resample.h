/* Pillow's Image.resize for 8-bit RGB (src/libImaging/Resample.c): separable
 * convolution with the filter's support widened by the scale on downscale
 * (antialiasing), coefficients rounded to fixed point with 22 fractional
 * bits, horizontal pass first over the rows the vertical pass needs, each
 * pass rounding and clipping to 8 bits. Bit-exact with Pillow. */
#ifndef DLV_IMAGE_RESAMPLE_H
#define DLV_IMAGE_RESAMPLE_H

#include "image/preproc_config.h"
#include "image/decode.h"

/* Resizes in to out_w x out_h into *out (allocated here). Nearest is
 * DLV_E_UNSUPPORTED (Pillow routes it through an affine transform); the
 * other PIL filters (bilinear, bicubic, lanczos, box, hamming) are exact. */
dlv_status dlv_resample_rgb8(const dlv_rgb8 *in, uint32_t out_w, uint32_t out_h,
                             dlv_resample filter, dlv_rgb8 *out);

#endif
