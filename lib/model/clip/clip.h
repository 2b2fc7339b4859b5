/* Hugging Face CLIPModel's two towers on device tensors, forward and
 * backward (transformers 4.46.3's modeling_clip; docs/models.md,
 * "CLIPModel"):
 *
 *   image embeds = visual_projection(post_layernorm(last_hidden_state[:, 0]))
 *   text embeds  = text_projection(final_layer_norm(last_hidden_state)[pooled])
 *
 * before L2 normalisation. The image tower is the ViT block (model/nn/vit.h)
 * with every layer; the text tower is token + position embeddings and the
 * encoder block (causal, padded keys masked), each text at its own length.
 * The pooled text position follows CLIPTextTransformer.forward
 * (dlv_clip_pool_position). The config and weight table are in
 * model/clip/clip_model.h. */
#ifndef DLV_MODEL_CLIP_CLIP_H
#define DLV_MODEL_CLIP_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"
#include "model/clip/clip_model.h"
#include "model/nn/encoder.h"
#include "model/nn/vit.h"

typedef struct dlv_clip_w {
    dlv_vit_w vision;
    dlv_linear visual_proj;            /* [P, Dv], no bias */
    dlv_tensor tok_emb, pos_emb;       /* [vocab, Dt], [max_positions, Dt] */
    int64_t n_text_layers;
    dlv_encoder_layer_w *text_layers;
    dlv_layernorm_w final_ln;
    dlv_linear text_proj;              /* [P, Dt], no bias */
    dlv_tensor logit_scale;            /* [1] */
} dlv_clip_w;

dlv_status dlv_clip_w_bind(const dlv_clip_config *cfg, const dlv_weights *table,
                           const dlv_tensor *tensors, dlv_clip_w *out);
void dlv_clip_w_free(dlv_clip_w *w);

typedef struct dlv_clip_tape dlv_clip_tape;

/* Image tower: pixels [n, 3, H, W] (device) -> embeds [n, P] (device). tape
 * NULL: nothing kept; otherwise what dlv_clip_backward needs (the whole
 * tower, or with tower_frozen only the projection and post_layernorm). */
dlv_status dlv_clip_image_forward(dlv_backend *be, const dlv_clip_config *cfg,
                                  const dlv_clip_w *w, const float *pixels, int64_t n,
                                  int tower_frozen, dlv_clip_tape **tape, float *embeds);

/* Text tower: n texts of ids (host, text i: lens[i] ids, 1 <= lens[i] <=
 * max_position_embeddings) -> embeds [n, P] (device). */
dlv_status dlv_clip_text_forward(dlv_backend *be, const dlv_clip_config *cfg,
                                 const dlv_clip_w *w, const int32_t *const *ids,
                                 const int64_t *lens, int64_t n, int tower_frozen,
                                 dlv_clip_tape **tape, float *embeds);

/* The backward of either tower's forward for dembeds [n, P] (device):
 * accumulates the gradients gw marks present. */
dlv_status dlv_clip_backward(dlv_backend *be, const dlv_clip_w *w, const dlv_clip_w *gw,
                             dlv_clip_tape *tape, const float *dembeds);

void dlv_clip_tape_free(dlv_clip_tape *t);

/* The pooled position of a text of n ids: text_config.eos_token_id == 2
 * (the legacy openai/clip-vit-* configs): the first position of the
 * largest id; otherwise the first position of eos_token_id, or 0. */
int64_t dlv_clip_pool_position(const dlv_clip_text_config *cfg, const int32_t *ids, int64_t n);

/* CLIP tokenization of one text: the tokenizer's ids with its special
 * tokens (BOS text EOS from the post-processor); a text longer than
 * max_position_embeddings keeps its first max - 1 ids and its last id, as
 * the HF tokenizer with truncation=True, max_length=max does. *ids is the
 * caller's to free. */
dlv_status dlv_clip_tokenize(const dlv_model *m, const char *text, int32_t **ids, int64_t *n);

/* The model's typed CLIP weights (model/model.c binds them at load). */
const dlv_clip_w *dlv_model_clip_w(const dlv_model *m);

#endif
