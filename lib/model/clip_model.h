/* Hugging Face CLIPModel directories (model_type "clip"): the config, the
 * weight table and the forward pass of both towers, matching transformers
 * 4.46.3's modeling_clip (docs/models.md, "CLIPModel"):
 *
 *   image embeds = normalize(visual_projection(post_layernorm(
 *                      last_hidden_state[:, 0])))            (class token)
 *   text embeds  = normalize(text_projection(final_layer_norm(
 *                      last_hidden_state)[pooled position]))
 *   logits       = exp(logit_scale) * text . image^T
 *
 * The text tower is CLIPTextTransformer: token + position embeddings,
 * pre-norm encoder layers with a causal mask, final_layer_norm. The pooled
 * position follows CLIPTextTransformer.forward exactly:
 *   text_config.eos_token_id == 2 (the legacy configs of the openai/clip-vit-*
 *       checkpoints): argmax of the ids (the FIRST position of the largest
 *       id; CLIP's <|endoftext|> is the largest id of its vocabulary);
 *   otherwise: the first position whose id == eos_token_id, or 0 if none.
 * Each text runs at its own length (right-padded batches with masked keys),
 * so the rule is applied to the text's own ids only.
 *
 * The vision tower is CLIPVisionTransformer: patch conv (no bias), class
 * token, positions, pre_layrnorm, every encoder layer, post_layernorm on the
 * class token.
 *
 * Weights are read through a weight view (train/wview.h; NULL: the
 * checkpoint's), so the trainer's f32 copies serve every forward. The
 * forward can save what its backward needs (a tape; the backward is in
 * train/clip_trainer.c). CPU backend only, as the other forward passes. */
#ifndef DLV_MODEL_CLIP_MODEL_H
#define DLV_MODEL_CLIP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

struct dlv_wview;

typedef struct dlv_clip_text_config {
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t max_position_embeddings;
    dlv_act hidden_act;
    double layer_norm_eps;
    int64_t bos_token_id, eos_token_id, pad_token_id; /* -1 if null */
} dlv_clip_text_config;

typedef struct dlv_clip_config {
    char architecture[64];      /* architectures[0], "" if absent */
    char torch_dtype[16];
    dlv_clip_text_config text;
    dlv_vision_config vision;   /* kind DLV_VISION_CLIP */
    int64_t projection_dim;
    double logit_scale_init_value;
} dlv_clip_config;

/* 1 if the JSON text is a CLIPModel config (model_type "clip"); 0 for
 * anything else, including unparsable text (the LLaVA parser then reports
 * it). */
int dlv_clip_config_detect(const char *json, size_t len);
/* The same for a config.json path (0 if it cannot be read). */
int dlv_clip_config_detect_file(const char *path);

/* Parses a CLIPModel config.json with CLIPConfig / CLIPTextConfig /
 * CLIPVisionConfig's defaults for absent fields; text_config_dict /
 * vision_config_dict (older saves) replace text_config / vision_config as
 * CLIPConfig does. Errors name the field. */
dlv_status dlv_clip_config_parse(const char *json, size_t len, const char *label,
                                 dlv_clip_config *out);
dlv_status dlv_clip_config_load(const char *path, dlv_clip_config *out);

/* A LLaVA-shaped view of the config for code that reads dlv_model_config
 * (image preprocessing reads vision; describe): vision as is, text sizes in
 * text, architecture and dtype; image_token_index -1 (none). */
void dlv_clip_config_llava_view(const dlv_clip_config *c, dlv_llava_config *out);

/* The weight table (checkpoint names as canonical names; parts: text_model.*
 * and text_projection TEXT, vision_model.* and visual_projection VISION,
 * logit_scale PROJECTOR), resolved against ckpt: every tensor required, float
 * dtype, exact shape (logit_scale: shape [] or [1]). Other tensors (e.g.
 * position_ids buffers) are counted as unused. */
dlv_status dlv_clip_weights_resolve(const dlv_clip_config *cfg, const dlv_st_set *ckpt,
                                    const char *label, dlv_weights *out);

/* The model's CLIP config, NULL for a LLaVA model (model.c). */
const dlv_clip_config *dlv_model_clip(const dlv_model *m);

/* ---- Forward ---------------------------------------------------------- */

/* What one encoder layer's backward reads ([R, D] / [R, I] f32). */
typedef struct dlv_clip_layer_acts {
    float *x_in, *h1, *q, *k, *v, *a, *x2, *h2, *f;
} dlv_clip_layer_acts;

/* The saved activations of one tower's forward (owns one backend buffer and
 * its host arrays). Rows R = n * S. */
typedef struct dlv_clip_tape {
    int text;                    /* 1: text tower, 0: vision tower */
    int64_t n, S, D, I, L, P;    /* sequences, length, hidden, MLP, layers, projection */
    dlv_buffer buf;
    float *x0;                   /* [R, D] vision: embeddings before pre_layrnorm */
    float *patches;              /* [n * patches, K] vision */
    dlv_clip_layer_acts *layers; /* [L] (x_in of layer 0 is the tower input) */
    float *xL;                   /* [R, D] the last layer's output */
    float *pooled;               /* [n, D] pooled rows before the final norm */
    float *pooled_ln;            /* [n, D] after it (the projection's input) */
    int32_t *ids;                /* text: [R] (padding 0) */
    uint8_t *mask;               /* text: [R] 1 real, 0 padding */
    int64_t *pool;               /* [n] the pooled position of each sequence */
} dlv_clip_tape;

void dlv_clip_tape_free(dlv_clip_tape *t);

/* The pooled position of a text of n ids under cfg's rule (above). */
int64_t dlv_clip_pool_position(const dlv_clip_text_config *cfg, const int32_t *ids, int64_t n);

/* Image tower: pixels [n, 3, H, W] (preprocessed) -> embeds [n, P], the
 * projection before L2 normalisation. tape NULL: nothing saved. wv NULL:
 * the checkpoint's weights. */
dlv_status dlv_clip_image_forward(const dlv_model *m, dlv_backend *be,
                                  const struct dlv_wview *wv, const float *pixels, int64_t n,
                                  float *embeds, dlv_clip_tape **tape);

/* Text tower: n sequences of ids (seq i: ids + offsets[i], lens[i] ids,
 * 1 <= lens[i] <= max_position_embeddings) -> embeds [n, P] before L2
 * normalisation. */
dlv_status dlv_clip_text_forward(const dlv_model *m, dlv_backend *be,
                                 const struct dlv_wview *wv, const int32_t *const *ids,
                                 const int64_t *lens, int64_t n, float *embeds,
                                 dlv_clip_tape **tape);

/* The backward of one tower's forward (tape from it, wv the forward's view,
 * its grad buffers possibly swapped): accumulates (+=) the gradient of every
 * trained weight of the tower and its projection for dL/dembeds = dembeds
 * [n, P] (embeds before normalisation). The tape stays valid. */
dlv_status dlv_clip_tower_backward(const dlv_model *m, dlv_backend *be,
                                   const struct dlv_wview *wv, dlv_clip_tape *t,
                                   const float *dembeds);

/* CLIP tokenization of one text: the tokenizer's ids with its special
 * tokens (BOS text EOS from the post-processor); a text longer than
 * max_position_embeddings keeps its first max - 1 ids and its last id, as
 * the HF tokenizer with truncation=True, max_length=max does. *ids is the
 * caller's to free. */
dlv_status dlv_clip_tokenize(const dlv_model *m, const char *text, int32_t **ids, int64_t *n);

/* The public encode entry points for a CLIPModel session (api/encode.c
 * branches here): L2-normalised [n, projection_dim]. */
dlv_status dlv_clip_encode_images(dlv_session *s, const dlv_image *const *images, size_t n,
                                  float *out, size_t out_len);
dlv_status dlv_clip_encode_text(dlv_session *s, const char *const *texts, size_t n, float *out,
                                size_t out_len);

#endif
