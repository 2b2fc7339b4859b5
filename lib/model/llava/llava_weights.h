/* A LLaVA model's weights as typed device tensors (LlavaForConditionalGeneration:
 * vision tower, projector, language model), bound once from the weight table
 * (model/weights.h) and a tensor per entry (model/device_weights.h), and the
 * network dimensions from its config. The same binding serves the frozen
 * checkpoint, a trainer's view with trained copies in its own buffers, and
 * that trainer's gradients (absent entries: frozen). */
#ifndef DLV_MODEL_LLAVA_LLAVA_WEIGHTS_H
#define DLV_MODEL_LLAVA_LLAVA_WEIGHTS_H

#include "backend/tensor.h"
#include "model/config.h"
#include "model/nn/decoder.h"
#include "model/nn/qwen2vl_vit.h"
#include "model/nn/vit.h"
#include "model/weights.h"

typedef struct dlv_llava_w {
    dlv_vit_w vision;
    dlv_linear proj1, proj2;        /* multi_modal_projector.linear_1 / linear_2 */
    dlv_tensor embed_tokens;        /* [vocab, hidden] */
    dlv_decoder_w text;
    dlv_tensor lm_head;             /* [vocab, hidden]; embed_tokens when tied */
    dlv_tensor image_newline;       /* [hidden], LLaVA-NeXT only */
    dlv_qwen2vl_vit_w qvision;      /* Qwen2-VL / Qwen2.5-VL: the tower and its merger
                                     * (vision, proj1, proj2 absent) */
} dlv_llava_w;

typedef struct dlv_llava_dims {
    dlv_vit_dims vision;
    int64_t vision_seq;             /* S: patches (+ class token) */
    int64_t vision_run;             /* layers that run: hidden_states[k] is selected */
    int64_t n_features;             /* F: S, or S - 1 without the class token */
    int select_full;
    dlv_op_act projector_act;
    dlv_decoder_dims text;
    int64_t vocab;
    /* Qwen2-VL / Qwen2.5-VL: its tower, and M-RoPE's sections in the
     * decoder (the vision fields above do not apply). qvit.fullatt_blocks
     * points into the config. */
    int qwen2vl;
    dlv_qwen2vl_vit_dims qvit;
    int64_t mrope_section[3];
} dlv_llava_dims;

void dlv_llava_dims_of(const dlv_llava_config *cfg, dlv_llava_dims *out);

/* Binds out over tensors[i] for table->items[i] (absent tensors stay
 * absent). layers arrays are allocated: free with dlv_llava_w_free. */
dlv_status dlv_llava_w_bind(const dlv_llava_config *cfg, const dlv_weights *table,
                            const dlv_tensor *tensors, dlv_llava_w *out);
void dlv_llava_w_free(dlv_llava_w *w);

#endif
