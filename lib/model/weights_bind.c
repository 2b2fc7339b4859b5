/* See weights_bind.h. */
#include "model/weights_bind.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

dlv_tensor dlv_bind_get(const dlv_binder *b, dlv_weight_part part, const char *name)
{
    for (size_t i = 0; i < b->table->n; i++) {
        const dlv_weight *w = &b->table->items[i];
        if (w->part == part && strcmp(w->canonical, name) == 0) return b->tensors[i];
    }
    return (dlv_tensor){0};
}

dlv_linear dlv_bind_linear(const dlv_binder *b, dlv_weight_part part, const char *base)
{
    char name[DLV_WEIGHT_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.weight", base);
    dlv_linear out = {dlv_bind_get(b, part, name), {0}};
    snprintf(name, sizeof name, "%s.bias", base);
    out.b = dlv_bind_get(b, part, name);
    return out;
}

dlv_layernorm_w dlv_bind_layernorm(const dlv_binder *b, dlv_weight_part part, const char *base)
{
    dlv_linear x = dlv_bind_linear(b, part, base);
    return (dlv_layernorm_w){x.w, x.b};
}

void dlv_bind_encoder(const dlv_binder *b, dlv_weight_part part, const char *prefix,
                      int64_t n_layers, dlv_encoder_layer_w *layers)
{
    static const char *const mods[DLV_ENC_N_LINEAR] = {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
        "mlp.fc1", "mlp.fc2"};
    char n[DLV_WEIGHT_NAME_MAX];
    for (int64_t l = 0; l < n_layers; l++) {
        dlv_encoder_layer_w *lw = &layers[l];
        snprintf(n, sizeof n, "%sencoder.layers.%lld.layer_norm1", prefix, (long long)l);
        lw->ln1 = dlv_bind_layernorm(b, part, n);
        snprintf(n, sizeof n, "%sencoder.layers.%lld.layer_norm2", prefix, (long long)l);
        lw->ln2 = dlv_bind_layernorm(b, part, n);
        for (int m = 0; m < DLV_ENC_N_LINEAR; m++) {
            snprintf(n, sizeof n, "%sencoder.layers.%lld.%s", prefix, (long long)l, mods[m]);
            lw->lin[m] = dlv_bind_linear(b, part, n);
        }
    }
}

void dlv_bind_vit(const dlv_binder *b, dlv_weight_part part, const dlv_vision_config *vc,
                  dlv_vit_w *v)
{
    v->patch = dlv_bind_linear(b, part, "vision_model.embeddings.patch_embedding");
    /* The conv kernel [D, C, p, p] is a linear [D, C p p] over im2col rows. */
    if (dlv_tensor_present(&v->patch.w)) {
        v->patch.w.ndim = 2;
        v->patch.w.shape[1] = vc->num_channels * vc->patch_size * vc->patch_size;
        v->patch.w.shape[2] = v->patch.w.shape[3] = 0;
    }
    v->class_emb = dlv_bind_get(b, part, "vision_model.embeddings.class_embedding");
    v->pos_emb = dlv_bind_get(b, part, "vision_model.embeddings.position_embedding.weight");
    v->pre_ln = dlv_bind_layernorm(b, part, "vision_model.pre_layrnorm");
    v->post_ln = dlv_bind_layernorm(b, part, "vision_model.post_layernorm");
    dlv_bind_encoder(b, part, "vision_model.", v->n_layers, v->layers);
}

dlv_status dlv_bind_check_layernorm(const dlv_layernorm_w *ln, const char *label,
                                    const char *name)
{
    if (dlv_tensor_present(&ln->w) && dlv_tensor_present(&ln->b) && ln->w.dtype != ln->b.dtype)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %s: the weight (%s) and the bias (%s) differ "
                         "in dtype", label, name, dlv_dtype_name(ln->w.dtype),
                         dlv_dtype_name(ln->b.dtype));
    return DLV_OK;
}

dlv_status dlv_bind_check_encoder(const dlv_encoder_layer_w *layers, int64_t n,
                                  const char *label, const char *prefix)
{
    char name[DLV_WEIGHT_NAME_MAX + 32];
    for (int64_t l = 0; l < n; l++) {
        dlv_status st;
        snprintf(name, sizeof name, "%sencoder.layers.%lld.layer_norm1", prefix, (long long)l);
        if ((st = dlv_bind_check_layernorm(&layers[l].ln1, label, name))) return st;
        snprintf(name, sizeof name, "%sencoder.layers.%lld.layer_norm2", prefix, (long long)l);
        if ((st = dlv_bind_check_layernorm(&layers[l].ln2, label, name))) return st;
    }
    return DLV_OK;
}

dlv_status dlv_bind_check_qwen2vl_vit(const dlv_qwen2vl_vit_w *v, const char *label)
{
    char name[64];
    dlv_status st = DLV_OK;
    for (int64_t l = 0; !st && l < v->n_layers; l++) {
        snprintf(name, sizeof name, "visual.blocks.%lld.norm1", (long long)l);
        st = dlv_bind_check_layernorm(&v->layers[l].ln1, label, name);
        snprintf(name, sizeof name, "visual.blocks.%lld.norm2", (long long)l);
        if (!st) st = dlv_bind_check_layernorm(&v->layers[l].ln2, label, name);
    }
    if (!st) st = dlv_bind_check_layernorm(&v->merger_ln, label, "visual.merger.ln_q");
    return st;
}

dlv_status dlv_bind_check_vit(const dlv_vit_w *v, const char *label)
{
    dlv_status st = dlv_bind_check_layernorm(&v->pre_ln, label, "vision_model.pre_layrnorm");
    if (!st) st = dlv_bind_check_layernorm(&v->post_ln, label, "vision_model.post_layernorm");
    if (!st) st = dlv_bind_check_encoder(v->layers, v->n_layers, label, "vision_model.");
    return st;
}
