/* Binding LLaVA's typed weights (see llava_weights.h). */
#include "model/llava/llava_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/weights_bind.h"

void dlv_llava_dims_of(const dlv_llava_config *cfg, dlv_llava_dims *o)
{
    const dlv_vision_config *v = &cfg->vision;
    const dlv_text_config *t = &cfg->text;
    memset(o, 0, sizeof *o);
    o->vision = (dlv_vit_dims){
        .channels = v->num_channels, .image_size = v->image_size, .patch = v->patch_size,
        .enc = {.hidden = v->hidden_size, .inter = v->intermediate_size,
                .n_heads = v->num_attention_heads, .eps = (float)v->layer_norm_eps,
                /* dlv_act and dlv_op_act share their order (backend.h). */
                .act = (dlv_op_act)v->hidden_act, .causal = 0, .per_sequence = 1},
    };
    const int64_t side = v->patch_size > 0 ? v->image_size / v->patch_size : 0;
    o->vision_seq = side * side + (v->kind == DLV_VISION_CLIP ? 1 : 0);
    int64_t k = cfg->vision_feature_layer;
    if (k < 0) k += v->num_hidden_layers + 1;
    o->vision_run = k;
    o->select_full = cfg->vision_feature_select_full;
    o->n_features = o->select_full ? o->vision_seq : o->vision_seq - 1;
    o->projector_act = (dlv_op_act)cfg->projector_hidden_act;
    o->text = (dlv_decoder_dims){
        .hidden = t->hidden_size, .inter = t->intermediate_size,
        .n_heads = t->num_attention_heads, .n_kv_heads = t->num_key_value_heads,
        .head_dim = t->head_dim, .eps = (float)t->rms_norm_eps, .theta = t->rope_theta,
    };
    o->vocab = t->vocab_size;
}

static void bind_text(const dlv_binder *b, dlv_llava_w *w)
{
    const dlv_weight_part T = DLV_PART_TEXT;
    static const char *const mods[DLV_DEC_N_LINEAR] = {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    char n[DLV_WEIGHT_NAME_MAX];
    w->embed_tokens = dlv_bind_get(b, T, "embed_tokens.weight");
    for (int64_t l = 0; l < w->text.n_layers; l++) {
        dlv_decoder_layer_w *lw = &w->text.layers[l];
        snprintf(n, sizeof n, "layers.%lld.input_layernorm.weight", (long long)l);
        lw->ln1 = dlv_bind_get(b, T, n);
        snprintf(n, sizeof n, "layers.%lld.post_attention_layernorm.weight", (long long)l);
        lw->ln2 = dlv_bind_get(b, T, n);
        for (int m = 0; m < DLV_DEC_N_LINEAR; m++) {
            snprintf(n, sizeof n, "layers.%lld.%s", (long long)l, mods[m]);
            lw->lin[m] = dlv_bind_linear(b, T, n);
        }
    }
    w->text.norm = dlv_bind_get(b, T, "norm.weight");
    w->lm_head = dlv_bind_get(b, DLV_PART_LM_HEAD, "lm_head.weight");
}

dlv_status dlv_llava_w_bind(const dlv_llava_config *cfg, const dlv_weights *table,
                            const dlv_tensor *tensors, dlv_llava_w *out)
{
    memset(out, 0, sizeof *out);
    out->vision.n_layers = cfg->vision.num_hidden_layers;
    out->text.n_layers = cfg->text.num_hidden_layers;
    out->vision.layers = calloc((size_t)(out->vision.n_layers > 0 ? out->vision.n_layers : 1),
                                sizeof *out->vision.layers);
    out->text.layers = calloc((size_t)(out->text.n_layers > 0 ? out->text.n_layers : 1),
                              sizeof *out->text.layers);
    if (!out->vision.layers || !out->text.layers) {
        dlv_llava_w_free(out);
        return dlv_error_nomem("layer weights", 64 * sizeof(dlv_decoder_layer_w));
    }
    const dlv_binder b = {table, tensors};
    dlv_bind_vit(&b, DLV_PART_VISION, &cfg->vision, &out->vision);
    out->proj1 = dlv_bind_linear(&b, DLV_PART_PROJECTOR, "linear_1");
    out->proj2 = dlv_bind_linear(&b, DLV_PART_PROJECTOR, "linear_2");
    out->image_newline = dlv_bind_get(&b, DLV_PART_TOP, "image_newline");
    bind_text(&b, out);
    /* Tied embeddings: the LM head reads the embedding table (and a trained
     * table's gradient collects both uses). */
    if (!dlv_tensor_present(&out->lm_head) && cfg->text.tie_word_embeddings)
        out->lm_head = out->embed_tokens;
    return DLV_OK;
}

void dlv_llava_w_free(dlv_llava_w *w)
{
    if (!w) return;
    free(w->vision.layers);
    free(w->text.layers);
    memset(w, 0, sizeof *w);
}
