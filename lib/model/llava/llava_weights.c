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
    if (!cfg->qwen2vl) return;
    const dlv_qwen2vl_vision_config *q = &cfg->qv.vision;
    o->qwen2vl = 1;
    memcpy(o->mrope_section, cfg->qv.mrope_section, sizeof o->mrope_section);
    o->qvit = (dlv_qwen2vl_vit_dims){
        .in_channels = q->in_channels, .patch = q->patch_size,
        .temporal_patch = q->temporal_patch_size, .merge = q->spatial_merge_size,
        .out_hidden = q->hidden_size, .rope_theta = 10000.0,
        .enc = {.hidden = q->embed_dim, .inter = q->mlp_dim, .n_heads = q->num_heads,
                .eps = 1e-6f, .act = (dlv_op_act)q->hidden_act, .causal = 0},
        .variant = q->qwen25 ? DLV_QWEN2VL_VIT_QWEN25 : DLV_QWEN2VL_VIT_QWEN2,
        .window_size = q->window_size, .fullatt_blocks = q->fullatt, .n_fullatt = q->n_fullatt,
    };
}

/* Qwen2-VL's tower under "visual." and its merger (qwen2vl_vit.h). */
static dlv_status bind_qwen2vl(const dlv_binder *b, const dlv_llava_config *cfg,
                               dlv_qwen2vl_vit_w *v)
{
    const dlv_weight_part V = DLV_PART_VISION;
    const int q25 = cfg->qv.vision.qwen25;
    char n[DLV_WEIGHT_NAME_MAX];
    v->patch.w = dlv_bind_get(b, V, "patch_embed.proj.weight");
    for (int64_t l = 0; l < v->n_layers; l++) {
        dlv_encoder_layer_w *L = &v->layers[l];
#define NAME(s) (snprintf(n, sizeof n, "blocks.%lld.%s", (long long)l, s), n)
        L->ln1 = dlv_bind_layernorm(b, V, NAME("norm1"));
        L->ln2 = dlv_bind_layernorm(b, V, NAME("norm2"));
        const dlv_linear qkv = dlv_bind_linear(b, V, NAME("attn.qkv"));
        /* A gradient set of a frozen tower has no qkv: nothing to split. */
        if (dlv_tensor_present(&qkv.w)) {
            dlv_status st = dlv_qwen2vl_vit_split_qkv(&qkv, cfg->qv.vision.embed_dim,
                                                      NAME("attn.qkv"),
                                                      &L->lin[DLV_ENC_Q], &L->lin[DLV_ENC_K],
                                                      &L->lin[DLV_ENC_V]);
            if (st) return st;
        }
        L->lin[DLV_ENC_O] = dlv_bind_linear(b, V, NAME("attn.proj"));
        L->lin[DLV_ENC_FC1] = dlv_bind_linear(b, V, NAME(q25 ? "mlp.gate_proj" : "mlp.fc1"));
        if (q25) L->up = dlv_bind_linear(b, V, NAME("mlp.up_proj"));
        L->lin[DLV_ENC_FC2] = dlv_bind_linear(b, V, NAME(q25 ? "mlp.down_proj" : "mlp.fc2"));
#undef NAME
    }
    v->merger_ln = dlv_bind_layernorm(b, DLV_PART_PROJECTOR, "ln_q");
    v->merger_fc1 = dlv_bind_linear(b, DLV_PART_PROJECTOR, "mlp.0");
    v->merger_fc2 = dlv_bind_linear(b, DLV_PART_PROJECTOR, "mlp.2");
    return DLV_OK;
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
    if (cfg->qwen2vl) {
        out->qvision.n_layers = cfg->qv.vision.depth;
        out->qvision.layers = calloc((size_t)cfg->qv.vision.depth, sizeof *out->qvision.layers);
        dlv_status st = out->qvision.layers ? bind_qwen2vl(&b, cfg, &out->qvision)
                                            : dlv_error_nomem("tower weights", 64);
        bind_text(&b, out);
        if (!dlv_tensor_present(&out->lm_head) && cfg->text.tie_word_embeddings)
            out->lm_head = out->embed_tokens;
        if (st) dlv_llava_w_free(out);
        return st;
    }
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
    free(w->qvision.layers);
    memset(w, 0, sizeof *w);
}
