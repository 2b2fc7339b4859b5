/* Model kinds: where a model family plugs into encoding (docs/architecture.md).
 * A kind is detected at load from config.json (model/model.c) and binds its
 * typed weights there; encoding goes through its encoders, which read a
 * "view": what the weights and adapter are now. A session makes one view
 * from the model and its adapter (view_new uploads the adapter's LoRA and
 * soft prompts once); a trainer gives its own (train/kind.h encode_view),
 * over the parameters being trained. The view's type is the kind's
 * (LLaVA: dlv_llava_params, model/llava/llava.h; CLIP: dlv_clip_w, model/clip/clip.h). */
#ifndef DLV_MODEL_KIND_H
#define DLV_MODEL_KIND_H

#include <stddef.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "model/adapter.h"

typedef struct dlv_model_kind {
    const char *name;              /* "llava", "clip" */
    int has_adapters;              /* adapters (LoRA, soft prompts, prompts) apply */

    /* A view of the model's weights with adapter a (NULL: none), on be. */
    dlv_status (*view_new)(const dlv_model *m, dlv_backend *be, const dlv_adapter *a,
                           void **view);
    void (*view_free)(void *view);

    /* The L2-normalised embeddings of n images / texts into out (host
     * [n, embed dim]), in micro-batches so that memory stays bounded. */
    dlv_status (*encode_images)(const dlv_model *m, dlv_backend *be, const void *view,
                                const dlv_image *const *images, size_t n, float *out);
    /* first: the index of texts[0] in the caller's array (for messages);
     * truncate: cut captions that do not fit (dlv_session_options_set_truncate). */
    dlv_status (*encode_texts)(const dlv_model *m, dlv_backend *be, const void *view,
                               const char *const *texts, size_t n, size_t first,
                               int truncate, float *out);
    /* dlv_text_positions: the positions of text's sequence (what: a
     * DLV_POSITIONS_* value) and the limit. */
    dlv_status (*text_positions)(const dlv_model *m, const void *view, const char *text,
                                 int what, size_t *positions, size_t *max_positions);
    /* dlv_embed_tokens: one sequence of raw ids with at most one image
     * token, whose position takes the image's features (ids and image
     * validated by the caller); out host [embed dim], L2-normalised when
     * normalize. NULL: the kind has no such sequences. */
    dlv_status (*embed_tokens)(const dlv_model *m, dlv_backend *be, const void *view,
                               const int32_t *ids, size_t n_ids, size_t image_at,
                               const dlv_image *image, int normalize, float *out);
    /* The model's own logit scale (log of 1/temperature) when it has one
     * (a CLIPModel's); NULL: adapters carry it. */
    dlv_status (*model_logit_scale)(const dlv_model *m, float *out);
} dlv_model_kind;

extern const dlv_model_kind dlv_model_kind_llava;
extern const dlv_model_kind dlv_model_kind_clip;

/* The model's kind (set at load). */
const dlv_model_kind *dlv_model_kind_of(const dlv_model *m);

#endif
