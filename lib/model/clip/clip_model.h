/* Hugging Face CLIPModel directories (model_type "clip"): the config and the
 * weight table (the towers are in model/clip/clip.h), matching transformers
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
 */
#ifndef DLV_MODEL_CLIP_CLIP_MODEL_H
#define DLV_MODEL_CLIP_CLIP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

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

#endif
