/* The tensors a LLaVA model needs, derived from its config, and their
 * resolution against a checkpoint.
 *
 * Each weight has a canonical name relative to its part ("vision_model.
 * encoder.layers.0.mlp.fc1.weight", "linear_1.bias", "layers.3.self_attn.
 * q_proj.weight", "lm_head.weight"). Checkpoints store them under one of two
 * layouts:
 *   classic (transformers < 4.52): vision_tower.*, multi_modal_projector.*,
 *       language_model.model.*, language_model.lm_head.weight
 *   new (transformers >= 4.52): model.vision_tower.*,
 *       model.multi_modal_projector.*, model.language_model.*, lm_head.weight
 *
 * Required vs optional: LLaVA reads the vision tower's hidden state after
 * layer k (vision_feature_layer), never the later layers nor post_layernorm
 * (hidden_states are taken before it), nor SigLIP's pooling head. Pruned
 * checkpoints drop them, so they are optional: checked (dtype, shape) when
 * present, not required. lm_head.weight is optional when the embeddings are
 * tied. Every other weight is required. */
#ifndef DLV_MODEL_WEIGHTS_H
#define DLV_MODEL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "model/config.h"

/* Qwen2-VL / Qwen2.5-VL checkpoints (canonical names: the tower's under
 * "visual." without it, the merger's under "visual.merger." without it):
 *   qwen2vl (transformers < 4.52): visual.*, visual.merger.*, model.*, lm_head.weight
 *   qwen2vl-new (>= 4.52): model.visual.*, model.visual.merger.*,
 *       model.language_model.*, lm_head.weight */
typedef enum dlv_weight_layout {
    DLV_LAYOUT_CLASSIC = 0,
    DLV_LAYOUT_NEW,
    DLV_LAYOUT_QWEN2VL,
    DLV_LAYOUT_QWEN2VL_NEW,
    DLV_LAYOUT_COUNT
} dlv_weight_layout;

typedef enum dlv_weight_part {
    DLV_PART_VISION = 0,
    DLV_PART_PROJECTOR,
    DLV_PART_TEXT,      /* the language model's body */
    DLV_PART_LM_HEAD,   /* counted with the text part */
    DLV_PART_TOP,       /* the model's own (LLaVA-NeXT's image_newline), counted as projector */
    DLV_PART_COUNT
} dlv_weight_part;

#define DLV_WEIGHT_NAME_MAX 96

typedef struct dlv_weight {
    char canonical[DLV_WEIGHT_NAME_MAX];
    dlv_weight_part part;
    int required;
    int ndim;
    int64_t shape[5];            /* 5-D: Qwen2-VL's Conv3d patch embedding */
    const dlv_st_tensor *tensor; /* after resolution; NULL if optional and absent */
} dlv_weight;

typedef struct dlv_weights {
    dlv_weight_layout layout;
    dlv_weight *items;
    size_t n;
    size_t n_present;          /* table entries found in the checkpoint */
    size_t n_unused;           /* checkpoint tensors the table does not name */
    uint64_t params[3];        /* elements found: vision, projector, text (+lm_head) */
    size_t dtype_count[DLV_DTYPE_COUNT]; /* over every tensor in the checkpoint */
} dlv_weights;

/* The expected table for cfg (tensor pointers NULL). Free with
 * dlv_weights_free. */
dlv_status dlv_weights_table(const dlv_llava_config *cfg, dlv_weights *out);

/* Builds the table, picks the layout the checkpoint uses, and checks every
 * weight: required ones present, all float (F32/F16/BF16), exact shapes.
 * label (the model directory) prefixes messages. On failure *out is empty. */
dlv_status dlv_weights_resolve(const dlv_llava_config *cfg, const dlv_st_set *ckpt,
                               const char *label, dlv_weights *out);

void dlv_weights_free(dlv_weights *w);

/* The checks every family's resolver makes on a tensor found for entry e
 * (name: its checkpoint name): a float dtype and e's exact shape (a 0-d
 * entry also takes a one-element tensor). Messages name the tensor's file. */
dlv_status dlv_weight_check(const dlv_weight *e, const dlv_st_tensor *t, const char *name);

/* Fills n_unused and dtype_count from the checkpoint once every entry is
 * resolved. */
void dlv_weights_count(dlv_weights *w, const dlv_st_set *ckpt);

/* The resolved tensor for a canonical name and part; NULL if absent. */
const dlv_st_tensor *dlv_weights_get(const dlv_weights *w, dlv_weight_part part,
                                     const char *canonical);

/* The checkpoint name of a weight under a layout, into buf. Returns buf, or
 * NULL if it does not fit. */
char *dlv_weight_full_name(dlv_weight_layout layout, dlv_weight_part part,
                           const char *canonical, char *buf, size_t cap);

const char *dlv_weight_layout_name(dlv_weight_layout l); /* "classic", "new", "qwen2vl", ... */
const char *dlv_weight_part_name(dlv_weight_part p);     /* "vision", ... */

#endif
