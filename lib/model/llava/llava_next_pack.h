/* LLaVA-NeXT's "anyres" image features (LlavaNextForConditionalGeneration,
 * docs/models.md): an image is seen as a base tile (the whole image at the
 * tower's size) and a grid of tiles of the best grid resolution for its
 * size; every tile runs through LLaVA's vision pathway (llava_vision.h), and
 * the features are packed as the base tile's, then the grid's feature map
 * with the letterbox padding cut away, each of its rows followed by
 * image_newline. The number of features therefore depends on the image's
 * size. */
#ifndef DLV_MODEL_LLAVA_LLAVA_NEXT_PACK_H
#define DLV_MODEL_LLAVA_LLAVA_NEXT_PACK_H

#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"
#include "model/config.h"

typedef struct dlv_llava_next_layout {
    int64_t orig_h, orig_w;   /* the image's size in pixels */
    int64_t grid_h, grid_w;   /* tiles down and across the best resolution */
    int64_t n_tiles;          /* 1 + grid_h * grid_w (the base first) */
    int64_t side;             /* features per tile side (image_size / patch_size) */
    int64_t row0, rows;       /* the grid feature map's kept rows ... */
    int64_t col0, cols;       /* ... and columns, after unpadding */
    int64_t n_features;       /* side^2 + rows * (cols + 1); side^2 + 1 with one tile */
} dlv_llava_next_layout;

/* The layout of an orig_h x orig_w image whose best grid resolution is
 * grid_h x grid_w tiles (the image layer's choice, image/anyres.h, from the
 * same pinpoints: the model checks at load that config.json and
 * preprocessor_config.json list the same), for cfg (cfg->anyres), as
 * transformers' unpad_image computes it (its floating-point steps included,
 * so that the counts agree exactly). DLV_E_INVALID_ARG for an empty image
 * or grid. */
dlv_status dlv_llava_next_layout_of(const dlv_llava_config *cfg, int64_t orig_h, int64_t orig_w,
                                    int64_t grid_h, int64_t grid_w, dlv_llava_next_layout *out);

/* The most features any image can have under cfg: a full grid of the
 * largest pinpoint (unpadding only removes rows or columns). */
int64_t dlv_llava_next_max_features(const dlv_llava_config *cfg);

/* Packs one image's tile features tiles [n_tiles, side^2, hidden] (device)
 * into out [n_features, hidden] (device). newline is the image_newline
 * weight [hidden] in its stored dtype; zero_id a device int32 holding 0
 * (the newline is read as a one-row embedding table, which widens any
 * stored dtype on any backend). */
dlv_status dlv_llava_next_pack(dlv_backend *be, const dlv_llava_next_layout *l, int64_t hidden,
                               const float *tiles, const dlv_tensor *newline,
                               const int32_t *zero_id, float *out);

/* The backward of dlv_llava_next_pack: dtiles [n_tiles, side^2, hidden]
 * (device, zeroed by the caller) += each packed row's gradient where it came
 * from (rows cut by unpadding get none); dnewline [hidden] (device f32, may
 * be NULL) += the newline rows' gradients. */
dlv_status dlv_llava_next_pack_backward(dlv_backend *be, const dlv_llava_next_layout *l,
                                        int64_t hidden, const float *dpacked, float *dtiles,
                                        float *dnewline);

#endif
