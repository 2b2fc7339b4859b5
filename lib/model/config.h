/* config.json of LlavaForConditionalGeneration and preprocessor_config.json,
 * with the Hugging Face config classes' defaults for absent fields. */
#ifndef DLV_MODEL_CONFIG_H
#define DLV_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"
#include "image/preproc_config.h" /* the image processor's part of a model directory */

typedef enum dlv_vision_kind { DLV_VISION_CLIP = 0, DLV_VISION_SIGLIP } dlv_vision_kind;
typedef enum dlv_text_kind { DLV_TEXT_LLAMA = 0, DLV_TEXT_MISTRAL, DLV_TEXT_QWEN2 } dlv_text_kind;

typedef enum dlv_act {
    DLV_ACT_QUICK_GELU = 0, /* x * sigmoid(1.702 x) */
    DLV_ACT_GELU,           /* exact, erf */
    DLV_ACT_GELU_TANH,      /* "gelu_pytorch_tanh", "gelu_new" */
    DLV_ACT_SILU,
    DLV_ACT_RELU
} dlv_act;

typedef struct dlv_vision_config {
    dlv_vision_kind kind;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t num_channels;
    int64_t image_size;
    int64_t patch_size;
    dlv_act hidden_act;
    double layer_norm_eps;
    int64_t projection_dim;  /* CLIP only; unused by LLaVA */
    int vision_use_head;     /* SigLIP: has the attention-pooling head */
} dlv_vision_config;

typedef struct dlv_text_config {
    dlv_text_kind kind;
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t num_key_value_heads;
    int64_t head_dim;
    dlv_act hidden_act;
    int64_t max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    int has_rope_scaling;        /* rope_scaling present and not null */
    char rope_scaling_type[32];  /* its "rope_type"/"type", "" if none */
    int tie_word_embeddings;
    int attention_bias;          /* q,k,v (and o for Llama) biases */
    int mlp_bias;
    int64_t bos_token_id;        /* -1 if none */
    int64_t eos_token_id;        /* -1 if none (first if a list) */
    int64_t pad_token_id;        /* -1 if none */
} dlv_text_config;

/* ---- Qwen2-VL (model_type "qwen2_vl" / "qwen2_5_vl"; model/config_qwen2vl.c)
 * Qwen2VLConfig of transformers 4.46.3 and Qwen2_5_VLConfig of 4.51.3: the
 * language model's fields at the top level, the vision tower's under
 * vision_config. dlv_llava_config_parse reads such a file into a LLaVA-shaped
 * view (dlv_llava_config.qwen2vl below). */

#define DLV_QWEN2VL_MAX_FULLATT 64

/* Qwen2VLVisionConfig. */
typedef struct dlv_qwen2vl_vision_config {
    int64_t depth;               /* blocks */
    int64_t embed_dim;           /* the blocks' width */
    int64_t hidden_size;         /* the merger's output: the language model's width */
    double mlp_ratio;
    int64_t mlp_dim;             /* int(embed_dim * mlp_ratio), VisionMlp's width */
    int64_t num_heads;
    int64_t in_channels;
    int64_t patch_size;
    int64_t spatial_merge_size;
    int64_t temporal_patch_size;
    dlv_act hidden_act;
    /* Qwen2.5-VL (Qwen2_5_VLVisionConfig): embed_dim is its hidden_size,
     * hidden_size its out_hidden_size, mlp_dim its intermediate_size
     * (mlp_ratio unused); window attention over window_size pixels except
     * in the fullatt blocks. */
    int qwen25;
    int64_t window_size;
    int64_t n_fullatt;
    int64_t fullatt[DLV_QWEN2VL_MAX_FULLATT];
} dlv_qwen2vl_vision_config;

typedef struct dlv_qwen2vl_config {
    int qwen25;                  /* model_type "qwen2_5_vl" */
    char architecture[64];       /* architectures[0], "" if absent */
    char torch_dtype[16];        /* "" if absent */
    /* The language model as a Qwen2 decoder (kind DLV_TEXT_QWEN2: q/k/v
     * biases; head_dim = hidden_size / num_attention_heads). M-RoPE uses the
     * default frequencies, so has_rope_scaling is 0. */
    dlv_text_config text;
    int64_t mrope_section[3];    /* rope_scaling.mrope_section; sums to head_dim / 2 */
    dlv_qwen2vl_vision_config vision;
    int64_t image_token_id, vision_start_token_id, vision_end_token_id; /* in the vocabulary */
    int64_t video_token_id;      /* -1 if absent */
} dlv_qwen2vl_config;

/* Parses a Qwen2-VL config.json (text, label for messages) or the file at
 * path. Absent fields take Qwen2VLConfig / Qwen2VLVisionConfig's defaults,
 * except those without one there: image_token_id, vision_start_token_id,
 * vision_end_token_id and rope_scaling.mrope_section are required.
 * DLV_E_FORMAT names the field for a wrong type or an out-of-range value;
 * DLV_E_UNSUPPORTED for settings this library cannot run. On failure *out
 * is zeroed. */
dlv_status dlv_qwen2vl_config_parse(const char *json, size_t len, const char *label,
                                    dlv_qwen2vl_config *out);
dlv_status dlv_qwen2vl_config_load(const char *path, dlv_qwen2vl_config *out);

typedef struct dlv_llava_config {
    char architecture[64];       /* architectures[0] */
    char torch_dtype[16];        /* "bfloat16", "" if absent */
    dlv_vision_config vision;
    dlv_text_config text;
    int64_t image_token_index;
    dlv_act projector_hidden_act;
    int multimodal_projector_bias;
    int64_t vision_feature_layer;        /* negative counts from the end */
    int vision_feature_select_full;      /* 1 for "full", 0 for "default" */
    int64_t image_seq_length;
    /* LLaVA-NeXT (model_type "llava_next"): anyres tiles over the grid
     * pinpoints, packed with image_newline (docs/models.md). */
    int anyres;
    int64_t n_pinpoints;
    int64_t pinpoints[DLV_MAX_PINPOINTS][2]; /* [height, width] in pixels */
    /* Qwen2-VL / Qwen2.5-VL (model_type "qwen2_vl", "qwen2_5_vl"): the
     * file's own config in qv; text, image_token_index, architecture and
     * torch_dtype above mirror it, vision describes the tower only roughly
     * (hidden_size, layers, patch) and no LLaVA vision field applies. */
    int qwen2vl;
    dlv_qwen2vl_config qv;
} dlv_llava_config;

/* Parses config.json at path. Unknown model types and unsupported settings
 * give DLV_E_UNSUPPORTED naming the field; wrong JSON types DLV_E_FORMAT. */
dlv_status dlv_llava_config_load(const char *path, dlv_llava_config *out);
/* The same from a JSON text (label names it in messages). */
dlv_status dlv_llava_config_parse(const char *json, size_t len, const char *label,
                                  dlv_llava_config *out);

const char *dlv_vision_kind_name(dlv_vision_kind k);  /* "clip_vision_model" */
const char *dlv_text_kind_name(dlv_text_kind k);      /* "llama" */
const char *dlv_act_name(dlv_act a);

#endif
