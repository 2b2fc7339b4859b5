/* LLaVA-NeXT's image side: each image decoded and tiled by the image layer
 * (image/anyres.h), its tiles through LLaVA's vision pathway one image at a
 * time (so that an image's features do not depend on its batch
 * companions), then packed (llava_next_pack.h). */
#ifndef DLV_MODEL_LLAVA_LLAVA_NEXT_H
#define DLV_MODEL_LLAVA_LLAVA_NEXT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "model/llava/llava.h"
#include "model/llava/llava_next_pack.h"

/* n images decoded and tiled, on the host: image i's pixels[i] are
 * [layout[i].n_tiles, C, S, S] (the base tile first). */
typedef struct dlv_llava_next_tiles {
    size_t n;
    float **pixels;
    dlv_llava_next_layout *layout;
} dlv_llava_next_tiles;

/* Decodes and tiles images[0, n) with the model's image processor;
 * messages name the image. */
dlv_status dlv_llava_next_tile(const dlv_model *m, const dlv_image *const *images, size_t n,
                               dlv_llava_next_tiles *out);
void dlv_llava_next_tiles_free(dlv_llava_next_tiles *t);

/* The packed features of tiled images (no tape), with p's weights. */
dlv_status dlv_llava_next_features(const dlv_model *m, dlv_backend *be,
                                   const dlv_llava_params *p, const dlv_llava_next_tiles *tiles,
                                   dlv_llava_feats *out);
/* Both steps for images[0, n) of an anyres model (m's config anyres). */
dlv_status dlv_llava_next_image_features(const dlv_model *m, dlv_backend *be,
                                         const dlv_llava_params *p,
                                         const dlv_image *const *images, size_t n,
                                         dlv_llava_feats *out);

#endif
