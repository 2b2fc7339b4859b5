/* The expected tensor table of a LLaVA model and its checks against a
 * checkpoint. Names and shapes follow transformers' modeling_clip,
 * modeling_siglip, modeling_llama, modeling_mistral, modeling_qwen2 and
 * modeling_llava (see weights.h for the layouts and what is optional). */
#include "model/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Far above any real model (Llama 3 405B has 126 layers); keeps the table
 * small enough that its size cannot overflow. */
#define MAX_LAYERS 4096

static const char *const prefixes[DLV_LAYOUT_COUNT][DLV_PART_COUNT] = {
    [DLV_LAYOUT_CLASSIC] = {"vision_tower.", "multi_modal_projector.", "language_model.model.",
                            "language_model.", ""},
    [DLV_LAYOUT_NEW] = {"model.vision_tower.", "model.multi_modal_projector.",
                        "model.language_model.", "", "model."},
    [DLV_LAYOUT_QWEN2VL] = {"visual.", "visual.merger.", "model.", "", ""},
    [DLV_LAYOUT_QWEN2VL_NEW] = {"model.visual.", "model.visual.merger.", "model.language_model.",
                                "", "model."},
};

const char *dlv_weight_layout_name(dlv_weight_layout l)
{
    switch (l) {
    case DLV_LAYOUT_NEW: return "new";
    case DLV_LAYOUT_QWEN2VL: return "qwen2vl";
    case DLV_LAYOUT_QWEN2VL_NEW: return "qwen2vl-new";
    default: return "classic";
    }
}

const char *dlv_weight_part_name(dlv_weight_part p)
{
    switch (p) {
    case DLV_PART_VISION: return "vision";
    case DLV_PART_PROJECTOR: return "projector";
    case DLV_PART_TEXT: return "text";
    case DLV_PART_LM_HEAD: return "lm_head";
    case DLV_PART_TOP: return "top";
    case DLV_PART_COUNT: break;
    }
    return "unknown";
}

char *dlv_weight_full_name(dlv_weight_layout layout, dlv_weight_part part,
                           const char *canonical, char *buf, size_t cap)
{
    if ((unsigned)layout >= DLV_LAYOUT_COUNT || (unsigned)part >= DLV_PART_COUNT) return NULL;
    int n = snprintf(buf, cap, "%s%s", prefixes[layout][part], canonical);
    return (n < 0 || (size_t)n >= cap) ? NULL : buf;
}

/* ---- building the table ---- */

typedef struct builder {
    dlv_weights *w;
    size_t cap;
    dlv_weight_part part;
    int required;
} builder;

/* Adds one entry. The table is sized for the worst case by
 * dlv_weights_table, so the overflow guard only protects against a future
 * miscount. */
static void add(builder *b, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                int64_t d4, const char *fmt, ...) DLV_PRINTF(8, 9);

static void add(builder *b, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                int64_t d4, const char *fmt, ...)
{
    if (b->w->n >= b->cap) return;
    dlv_weight *e = &b->w->items[b->w->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->canonical, sizeof e->canonical, fmt, ap);
    va_end(ap);
    e->part = b->part;
    e->required = b->required;
    e->ndim = ndim;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->shape[2] = d2;
    e->shape[3] = d3;
    e->shape[4] = d4;
    e->tensor = NULL;
}

#define W1(b, d0, ...) add((b), 1, (d0), 0, 0, 0, 0, __VA_ARGS__)
#define W2(b, d0, d1, ...) add((b), 2, (d0), (d1), 0, 0, 0, __VA_ARGS__)
#define W3(b, d0, d1, d2, ...) add((b), 3, (d0), (d1), (d2), 0, 0, __VA_ARGS__)
#define W4(b, d0, d1, d2, d3, ...) add((b), 4, (d0), (d1), (d2), (d3), 0, __VA_ARGS__)
#define W5(b, d0, d1, d2, d3, d4, ...) add((b), 5, (d0), (d1), (d2), (d3), (d4), __VA_ARGS__)

/* Entries per vision / text layer at most, and outside the layers. */
#define VISION_PER_LAYER 16
#define TEXT_PER_LAYER 16
#define FIXED_ENTRIES 64

static void vision_table(builder *b, const dlv_llava_config *cfg)
{
    const dlv_vision_config *v = &cfg->vision;
    const int64_t h = v->hidden_size, im = v->intermediate_size, p = v->patch_size;
    const int64_t side = v->image_size / p, n_patches = side * side;
    const char *pre = "vision_model.";
    const int clip = v->kind == DLV_VISION_CLIP;

    /* LLaVA takes hidden_states[k]: the output after k encoder layers. */
    int64_t k = cfg->vision_feature_layer >= 0
                    ? cfg->vision_feature_layer
                    : v->num_hidden_layers + 1 + cfg->vision_feature_layer;

    b->part = DLV_PART_VISION;
    b->required = 1;
    if (clip) W1(b, h, "%sembeddings.class_embedding", pre);
    W4(b, h, v->num_channels, p, p, "%sembeddings.patch_embedding.weight", pre);
    if (!clip) W1(b, h, "%sembeddings.patch_embedding.bias", pre);
    W2(b, clip ? n_patches + 1 : n_patches, h, "%sembeddings.position_embedding.weight", pre);
    if (clip) {
        /* sic: the attribute is spelled "pre_layrnorm" in modeling_clip. */
        W1(b, h, "%spre_layrnorm.weight", pre);
        W1(b, h, "%spre_layrnorm.bias", pre);
    }
    static const char *const proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int64_t i = 0; i < v->num_hidden_layers; i++) {
        b->required = i < k;
        char l[64];
        snprintf(l, sizeof l, "%sencoder.layers.%lld.", pre, (long long)i);
        for (int j = 0; j < 4; j++) {
            W2(b, h, h, "%sself_attn.%s.weight", l, proj[j]);
            W1(b, h, "%sself_attn.%s.bias", l, proj[j]);
        }
        W1(b, h, "%slayer_norm1.weight", l);
        W1(b, h, "%slayer_norm1.bias", l);
        W2(b, im, h, "%smlp.fc1.weight", l);
        W1(b, im, "%smlp.fc1.bias", l);
        W2(b, h, im, "%smlp.fc2.weight", l);
        W1(b, h, "%smlp.fc2.bias", l);
        W1(b, h, "%slayer_norm2.weight", l);
        W1(b, h, "%slayer_norm2.bias", l);
    }
    b->required = 0;
    W1(b, h, "%spost_layernorm.weight", pre);
    W1(b, h, "%spost_layernorm.bias", pre);
    if (!clip && v->vision_use_head) {
        W3(b, 1, 1, h, "%shead.probe", pre);
        W2(b, 3 * h, h, "%shead.attention.in_proj_weight", pre);
        W1(b, 3 * h, "%shead.attention.in_proj_bias", pre);
        W2(b, h, h, "%shead.attention.out_proj.weight", pre);
        W1(b, h, "%shead.attention.out_proj.bias", pre);
        W1(b, h, "%shead.layernorm.weight", pre);
        W1(b, h, "%shead.layernorm.bias", pre);
        W2(b, im, h, "%shead.mlp.fc1.weight", pre);
        W1(b, im, "%shead.mlp.fc1.bias", pre);
        W2(b, h, im, "%shead.mlp.fc2.weight", pre);
        W1(b, h, "%shead.mlp.fc2.bias", pre);
    }
}

static void projector_table(builder *b, const dlv_llava_config *cfg)
{
    const int64_t vh = cfg->vision.hidden_size, th = cfg->text.hidden_size;
    b->part = DLV_PART_PROJECTOR;
    b->required = 1;
    W2(b, th, vh, "linear_1.weight");
    if (cfg->multimodal_projector_bias) W1(b, th, "linear_1.bias");
    W2(b, th, th, "linear_2.weight");
    if (cfg->multimodal_projector_bias) W1(b, th, "linear_2.bias");
    /* LLaVA-NeXT's row separator of the packed tile features. */
    b->part = DLV_PART_TOP;
    if (cfg->anyres) W1(b, th, "image_newline");
}

/* Qwen2-VL's tower (Qwen2VisionTransformerPretrainedModel) and Qwen2.5-VL's
 * (RMSNorm without biases, a gated MLP with biases); every block is
 * required (the merger reads the last). */
static void qwen2vl_vision_table(builder *b, const dlv_llava_config *cfg)
{
    const dlv_qwen2vl_vision_config *v = &cfg->qv.vision;
    const int64_t d = v->embed_dim, im = v->mlp_dim, p = v->patch_size;
    const int64_t dm = d * v->spatial_merge_size * v->spatial_merge_size;
    const int q25 = v->qwen25;
    b->part = DLV_PART_VISION;
    b->required = 1;
    W5(b, d, v->in_channels, v->temporal_patch_size, p, p, "patch_embed.proj.weight");
    for (int64_t i = 0; i < v->depth; i++) {
        char l[48];
        snprintf(l, sizeof l, "blocks.%lld.", (long long)i);
        W1(b, d, "%snorm1.weight", l);
        if (!q25) W1(b, d, "%snorm1.bias", l);
        W1(b, d, "%snorm2.weight", l);
        if (!q25) W1(b, d, "%snorm2.bias", l);
        W2(b, 3 * d, d, "%sattn.qkv.weight", l);
        W1(b, 3 * d, "%sattn.qkv.bias", l);
        W2(b, d, d, "%sattn.proj.weight", l);
        W1(b, d, "%sattn.proj.bias", l);
        static const char *const mlp2[2] = {"fc1", "fc2"};
        static const char *const mlp25[3] = {"gate_proj", "up_proj", "down_proj"};
        for (int j = 0; j < (q25 ? 3 : 2); j++) {
            const int down = q25 ? j == 2 : j == 1;
            const char *name = q25 ? mlp25[j] : mlp2[j];
            W2(b, down ? d : im, down ? im : d, "%smlp.%s.weight", l, name);
            W1(b, down ? d : im, "%smlp.%s.bias", l, name);
        }
    }
    b->part = DLV_PART_PROJECTOR;
    W1(b, d, "ln_q.weight");
    if (!q25) W1(b, d, "ln_q.bias");
    W2(b, dm, dm, "mlp.0.weight");
    W1(b, dm, "mlp.0.bias");
    W2(b, v->hidden_size, dm, "mlp.2.weight");
    W1(b, v->hidden_size, "mlp.2.bias");
}

static void text_table(builder *b, const dlv_llava_config *cfg)
{
    const dlv_text_config *t = &cfg->text;
    const int64_t h = t->hidden_size, im = t->intermediate_size;
    const int64_t q = t->num_attention_heads * t->head_dim, kv = t->num_key_value_heads * t->head_dim;
    /* Qwen2 biases q/k/v only; Llama's attention_bias covers o_proj too. */
    const int qkv_bias = t->attention_bias;
    const int o_bias = t->attention_bias && t->kind == DLV_TEXT_LLAMA;
    b->part = DLV_PART_TEXT;
    b->required = 1;
    W2(b, t->vocab_size, h, "embed_tokens.weight");
    for (int64_t i = 0; i < t->num_hidden_layers; i++) {
        char l[48];
        snprintf(l, sizeof l, "layers.%lld.", (long long)i);
        W2(b, q, h, "%sself_attn.q_proj.weight", l);
        W2(b, kv, h, "%sself_attn.k_proj.weight", l);
        W2(b, kv, h, "%sself_attn.v_proj.weight", l);
        W2(b, h, q, "%sself_attn.o_proj.weight", l);
        if (qkv_bias) {
            W1(b, q, "%sself_attn.q_proj.bias", l);
            W1(b, kv, "%sself_attn.k_proj.bias", l);
            W1(b, kv, "%sself_attn.v_proj.bias", l);
        }
        if (o_bias) W1(b, h, "%sself_attn.o_proj.bias", l);
        W2(b, im, h, "%smlp.gate_proj.weight", l);
        W2(b, im, h, "%smlp.up_proj.weight", l);
        W2(b, h, im, "%smlp.down_proj.weight", l);
        if (t->mlp_bias) {
            W1(b, im, "%smlp.gate_proj.bias", l);
            W1(b, im, "%smlp.up_proj.bias", l);
            W1(b, h, "%smlp.down_proj.bias", l);
        }
        W1(b, h, "%sinput_layernorm.weight", l);
        W1(b, h, "%spost_attention_layernorm.weight", l);
    }
    W1(b, h, "norm.weight");
    b->part = DLV_PART_LM_HEAD;
    b->required = !t->tie_word_embeddings;
    W2(b, t->vocab_size, h, "lm_head.weight");
}

void dlv_weights_free(dlv_weights *w)
{
    if (!w) return;
    free(w->items);
    memset(w, 0, sizeof *w);
}

dlv_status dlv_weights_table(const dlv_llava_config *cfg, dlv_weights *out)
{
    if (!cfg || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_weights_table: NULL argument");
    memset(out, 0, sizeof *out);
    if (cfg->vision.num_hidden_layers > MAX_LAYERS || cfg->text.num_hidden_layers > MAX_LAYERS)
        return dlv_error(DLV_E_UNSUPPORTED, "config: more than %d layers in a tower (%lld vision, "
                         "%lld text)", MAX_LAYERS, (long long)cfg->vision.num_hidden_layers,
                         (long long)cfg->text.num_hidden_layers);
    size_t cap = FIXED_ENTRIES + (size_t)cfg->vision.num_hidden_layers * VISION_PER_LAYER +
                 (size_t)cfg->text.num_hidden_layers * TEXT_PER_LAYER;
    out->items = calloc(cap, sizeof *out->items);
    if (!out->items) return dlv_error_nomem("the weight table", cap * sizeof *out->items);
    builder b = {out, cap, DLV_PART_VISION, 1};
    if (cfg->qwen2vl) {
        qwen2vl_vision_table(&b, cfg);
    } else {
        vision_table(&b, cfg);
        projector_table(&b, cfg);
    }
    text_table(&b, cfg);
    return DLV_OK;
}

/* ---- resolution ---- */

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *dims)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)dims[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
}

dlv_status dlv_weight_check(const dlv_weight *e, const dlv_st_tensor *t, const char *name)
{
    const char *file = t->file_path ? t->file_path : "checkpoint";
    if (!dlv_dtype_is_float(t->dtype))
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", file,
                         name, dlv_dtype_name(t->dtype));
    int same = t->ndim == e->ndim;
    for (int i = 0; same && i < e->ndim; i++) same = t->shape[i] == e->shape[i];
    /* A 0-d parameter (CLIP's logit_scale) saved as a [1] tensor. */
    if (e->ndim == 0 && t->n_elements == 1) same = 1;
    if (!same) {
        char want[96], got[96];
        format_shape(want, sizeof want, e->ndim, e->shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s' has shape [%s], expected [%s] from config.json",
                         file, name, got, want);
    }
    return DLV_OK;
}

void dlv_weights_count(dlv_weights *w, const dlv_st_set *ckpt)
{
    size_t total = dlv_st_set_count(ckpt);
    w->n_unused = total - w->n_present;
    for (size_t i = 0; i < total; i++) {
        const dlv_st_tensor *t = dlv_st_set_at(ckpt, i);
        if (t && (unsigned)t->dtype < DLV_DTYPE_COUNT) w->dtype_count[t->dtype]++;
    }
}

static size_t count_present(const dlv_weights *w, dlv_weight_layout layout,
                            const dlv_st_set *ckpt)
{
    size_t n = 0;
    char name[160];
    for (size_t i = 0; i < w->n; i++) {
        const dlv_weight *e = &w->items[i];
        if (dlv_weight_full_name(layout, e->part, e->canonical, name, sizeof name) &&
            dlv_st_set_find(ckpt, name))
            n++;
    }
    return n;
}

static dlv_status check_one(dlv_weights *w, dlv_weight *e, const dlv_st_set *ckpt,
                            const char *label)
{
    char name[160];
    if (!dlv_weight_full_name(w->layout, e->part, e->canonical, name, sizeof name))
        return dlv_error(DLV_E_FORMAT, "%s: tensor name '%s' too long", label, e->canonical);
    const dlv_st_tensor *t = dlv_st_set_find(ckpt, name);
    if (!t) {
        if (!e->required) return DLV_OK;
        const char *const *p = prefixes[w->layout];
        return dlv_error(DLV_E_FORMAT,
                         "%s: tensor '%s' is missing from the checkpoint (layout '%s': %s*, "
                         "%s*, %s*, %slm_head.weight)", label, name,
                         dlv_weight_layout_name(w->layout), p[DLV_PART_VISION],
                         p[DLV_PART_PROJECTOR], p[DLV_PART_TEXT], p[DLV_PART_LM_HEAD]);
    }
    dlv_status st = dlv_weight_check(e, t, name);
    if (st) return st;
    e->tensor = t;
    w->n_present++;
    /* The LM head counts as text, image_newline as the connector. */
    w->params[e->part == DLV_PART_LM_HEAD ? DLV_PART_TEXT
              : e->part == DLV_PART_TOP   ? DLV_PART_PROJECTOR
                                          : e->part] += t->n_elements;
    return DLV_OK;
}

dlv_status dlv_weights_resolve(const dlv_llava_config *cfg, const dlv_st_set *ckpt,
                               const char *label, dlv_weights *out)
{
    if (!cfg || !ckpt || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_weights_resolve: NULL argument");
    if (!label) label = "model";
    dlv_status st = dlv_weights_table(cfg, out);
    if (st != DLV_OK) return st;

    /* Whichever of the family's layouts names more of the table wins; a tie
     * (nothing found) reports missing tensors under the older names. */
    const dlv_weight_layout older = cfg->qwen2vl ? DLV_LAYOUT_QWEN2VL : DLV_LAYOUT_CLASSIC;
    const dlv_weight_layout newer = cfg->qwen2vl ? DLV_LAYOUT_QWEN2VL_NEW : DLV_LAYOUT_NEW;
    size_t n_older = count_present(out, older, ckpt);
    size_t n_newer = count_present(out, newer, ckpt);
    out->layout = n_newer > n_older ? newer : older;

    for (size_t i = 0; i < out->n; i++) {
        st = check_one(out, &out->items[i], ckpt, label);
        if (st != DLV_OK) {
            dlv_weights_free(out);
            return st;
        }
    }
    dlv_weights_count(out, ckpt);
    return DLV_OK;
}

const dlv_st_tensor *dlv_weights_get(const dlv_weights *w, dlv_weight_part part,
                                     const char *canonical)
{
    if (!w || !canonical) return NULL;
    for (size_t i = 0; i < w->n; i++)
        if (w->items[i].part == part && strcmp(w->items[i].canonical, canonical) == 0)
            return w->items[i].tensor;
    return NULL;
}
