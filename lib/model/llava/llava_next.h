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

/* n images' packed features: image i's count[i] rows start at row
 * offset[i] of buf ([sum count, hidden] floats, device). */
typedef struct dlv_llava_next_feats {
    dlv_buffer buf;
    int64_t *count, *offset;
    size_t n;
} dlv_llava_next_feats;

/* Decodes, tiles and encodes images[0, n) of an anyres model (m's config
 * anyres); messages name the image. */
dlv_status dlv_llava_next_image_features(const dlv_model *m, dlv_backend *be,
                                         const dlv_llava_params *p,
                                         const dlv_image *const *images, size_t n,
                                         dlv_llava_next_feats *out);
void dlv_llava_next_feats_free(dlv_llava_next_feats *f);

#endif
