/* Projected image features cached across steps and epochs while the vision
 * tower and projector are frozen (docs/training.md, "Memory"). Keys are
 * image files (path, size and modification time, so an edited file is not
 * served stale); images from memory or raw pixels are not cached. Entries
 * are never evicted: the cache holds n_images * n_tokens * hidden floats
 * (for a tiny model kilobytes per image; for llava-1.5 9.4 MB per image, so
 * it is off by default). */
#ifndef DLV_TRAIN_FEATURE_CACHE_H
#define DLV_TRAIN_FEATURE_CACHE_H

#include <stddef.h>

#include "disclvlm.h"

typedef struct dlv_feature_cache dlv_feature_cache;

dlv_status dlv_feature_cache_new(size_t floats_per_image, dlv_feature_cache **out);
void dlv_feature_cache_free(dlv_feature_cache *c);

/* The cached features of image (NULL if absent or not cacheable). */
const float *dlv_feature_cache_get(const dlv_feature_cache *c, const dlv_image *image);
/* Stores a copy of feats for image (no-op for images that are not files). */
dlv_status dlv_feature_cache_put(dlv_feature_cache *c, const dlv_image *image, const float *feats);

size_t dlv_feature_cache_count(const dlv_feature_cache *c);

#endif
