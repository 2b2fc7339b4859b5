/* LoRA adapters on the language model's linear layers, in Hugging Face
 * PEFT's format (docs/adapter-format.md): for a targeted module with weight
 * W [out, in], y = W x + b + scale * B (A x), A [rank, in], B [out, rank],
 * scale = alpha / rank (alpha / sqrt(rank) with use_rslora).
 *
 * All A and B matrices live in one flat f32 buffer (params), so training can
 * keep gradients and optimizer moments in buffers of the same layout. */
#ifndef DLV_MODEL_LORA_H
#define DLV_MODEL_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"
#include "model/config.h"
#include "model/nn/linear.h"

typedef enum dlv_lora_module {
    DLV_LORA_Q = 0, DLV_LORA_K, DLV_LORA_V, DLV_LORA_O,
    DLV_LORA_GATE, DLV_LORA_UP, DLV_LORA_DOWN,
    DLV_LORA_N_MODULES
} dlv_lora_module;

/* Every module, as a target bit mask. */
#define DLV_LORA_ALL ((1u << DLV_LORA_N_MODULES) - 1u)
/* No offset: the module is not targeted. */
#define DLV_LORA_ABSENT SIZE_MAX

typedef struct dlv_lora {
    int64_t n_layers;
    int64_t rank;
    double alpha;
    int use_rslora;
    double dropout;            /* kept for saving; not used when encoding */
    float scale;               /* alpha / rank or alpha / sqrt(rank) */
    unsigned targets;          /* bit m set: module m targeted in every layer */
    char base_model[512];      /* base_model_name_or_path, "" if unknown */
    float *params;             /* n_params floats */
    size_t n_params;
    /* [layer * DLV_LORA_N_MODULES + module]: float offsets of A and B in
     * params, DLV_LORA_ABSENT where not targeted. */
    size_t *off_a, *off_b;
    /* 1 for a view (dlv_lora_view): params and offsets belong to others and
     * dlv_lora_free frees nothing. */
    int borrowed;
} dlv_lora;

/* "q_proj", ... ; "self_attn" or "mlp" for the parent. */
const char *dlv_lora_module_name(dlv_lora_module m);
const char *dlv_lora_module_parent(dlv_lora_module m);
/* The module's weight shape [out, in] under the text config. */
void dlv_lora_module_dims(const dlv_text_config *t, dlv_lora_module m, int64_t *out,
                          int64_t *in);

/* A LoRA with every targeted matrix zero (allocated). */
dlv_status dlv_lora_create(const dlv_text_config *t, int64_t rank, double alpha,
                           int use_rslora, unsigned targets, dlv_lora *out);
void dlv_lora_free(dlv_lora *l);

/* A view of l with the same shape and offsets whose params are `params`
 * (l->n_params floats owned by the caller): gradients, optimizer moments
 * and trainable copies in flat buffers share the LoRA layout this way. */
dlv_lora dlv_lora_view(const dlv_lora *l, float *params);

/* A (rows rank) and B (rows out) of a module in a layer; NULL if absent. */
float *dlv_lora_a(const dlv_lora *l, int64_t layer, dlv_lora_module m);
float *dlv_lora_b(const dlv_lora *l, int64_t layer, dlv_lora_module m);

/* The pairs of every (layer, module) for the decoder block
 * (model/nn/decoder.h, whose module order is LoRA's), with A and B at their
 * offsets in params: the adapter's floats in l's layout, in device memory
 * (l->params itself on a host-memory backend). pairs has n_layers *
 * DLV_LORA_N_MODULES entries; untargeted modules get a NULL a. */
void dlv_lora_pairs(const dlv_lora *l, const float *params, dlv_lora_pair *pairs);
/* The same for gradients in the same layout. */
void dlv_lora_pair_grads(const dlv_lora *l, float *grads, dlv_lora_pair_grad *pairs);

/* Reads adapter_config.json + adapter_model.safetensors from dir for the
 * model's language model. */
dlv_status dlv_lora_load(const dlv_model *m, const char *dir, dlv_lora *out);

/* Writes adapter_config.json + adapter_model.safetensors (F32, classic
 * module paths) into dir, each file atomically. */
/* PEFT's module path of the decoder layers in cfg's family, after
 * "base_model.model.": "language_model.model.layers." (LLaVA) or
 * "model.layers." (Qwen2-VL), as transformers < 4.52 names them. */
const char *dlv_lora_peft_layers(const dlv_llava_config *cfg);
dlv_status dlv_lora_save(const dlv_lora *l, const dlv_llava_config *cfg, const char *dir);

#endif
