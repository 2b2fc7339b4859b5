/* config.json of Qwen2VLForConditionalGeneration (transformers 4.46.3's
 * Qwen2VLConfig and Qwen2VLVisionConfig; see config.h). Absent fields take
 * the classes' defaults, because save_pretrained writes only the fields
 * that differ from them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json_util.h"
#include "model/config.h"
#include "model/config_fields.h"

/* A number > 0 (absent or null: def). */
static dlv_status get_positive(const json_t *obj, const char *key, double def, dlv_cfg_where w,
                               double *out)
{
    dlv_status st = dlv_cfg_real(obj, key, def, w, out);
    if (st == DLV_OK && (!(*out > 0.0) || *out > 1e300))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: %g is not a positive finite number", w.label,
                         w.prefix, key, *out);
    return st;
}

/* A string copied into buf (absent or null: def). */
static dlv_status get_str(const json_t *obj, const char *key, const char *def, dlv_cfg_where w,
                          char *buf, size_t cap)
{
    const char *s = def;
    dlv_status st = dlv_cfg_str(obj, key, def, w, &s);
    if (st) return st;
    if (strlen(s) >= cap)
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: '%.40s' is longer than %zu bytes", w.label,
                         w.prefix, key, s, cap - 1);
    snprintf(buf, cap, "%s", s);
    return DLV_OK;
}

/* A token id in [0, vocab): required (absent: an error) or optional (absent
 * or null: -1). Qwen2VLConfig has no defaults for these; the model reads
 * them from the extra fields of config.json. */
static dlv_status get_token(const json_t *obj, const char *key, int required, int64_t vocab,
                            dlv_cfg_where w, int64_t *out)
{
    if (!dlv_cfg_present(obj, key) && required)
        return dlv_error(DLV_E_FORMAT, "%s: %s: missing (Qwen2-VL's prompts need it)", w.label,
                         key);
    return dlv_cfg_range(obj, key, -1, 0, vocab - 1, w, out);
}

/* An activation by its transformers name (config.h's dlv_act names). */
static dlv_status get_act(const json_t *obj, const char *key, dlv_act def, dlv_cfg_where w,
                          dlv_act *out)
{
    char name[32];
    dlv_status st = get_str(obj, key, dlv_act_name(def), w, name, sizeof name);
    if (st) return st;
    for (dlv_act a = DLV_ACT_QUICK_GELU; a <= DLV_ACT_RELU; a++)
        if (!strcmp(name, dlv_act_name(a))) {
            *out = a;
            return DLV_OK;
        }
    return dlv_error(DLV_E_UNSUPPORTED, "%s: %s%s: activation '%s' is not supported", w.label,
                     w.prefix, key, name);
}

/* ---- vision_config ------------------------------------------------------ */
/* The fields both towers name alike, after checking vision_config's
 * model_type (want: the family's). */
static dlv_status parse_vision_common(const json_t *o, const char *label, const char *want,
                                      dlv_qwen2vl_vision_config *v)
{
    const dlv_cfg_where w = {label, "vision_config."};
    char type[32];
    dlv_status st;
    if ((st = get_str(o, "model_type", want, w, type, sizeof type))) return st;
    if (strcmp(type, want) != 0)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: vision_config.model_type: '%s' is not "
                         "supported (expected %s)", label, type, want);
    if ((st = dlv_cfg_size(o, "depth", v->depth, w, &v->depth)) ||
        (st = dlv_cfg_size(o, "num_heads", v->num_heads, w, &v->num_heads)) ||
        (st = dlv_cfg_size(o, "in_channels", v->in_channels, w, &v->in_channels)) ||
        (st = dlv_cfg_size(o, "patch_size", v->patch_size, w, &v->patch_size)) ||
        (st = dlv_cfg_size(o, "spatial_merge_size", v->spatial_merge_size, w,
                           &v->spatial_merge_size)) ||
        (st = dlv_cfg_size(o, "temporal_patch_size", v->temporal_patch_size, w,
                           &v->temporal_patch_size)))
        return st;
    return get_act(o, "hidden_act", v->hidden_act, w, &v->hidden_act);
}

/* Qwen2VLVisionConfig (transformers 4.46.3): its defaults are
 * Qwen2-VL-72B's tower. */
static dlv_status parse_vision2(const json_t *o, const char *label, dlv_qwen2vl_vision_config *v)
{
    const dlv_cfg_where w = {label, "vision_config."};
    *v = (dlv_qwen2vl_vision_config){
        .depth = 32, .embed_dim = 1280, .hidden_size = 3584, .mlp_ratio = 4.0, .num_heads = 16,
        .in_channels = 3, .patch_size = 14, .spatial_merge_size = 2, .temporal_patch_size = 2,
        .hidden_act = DLV_ACT_QUICK_GELU};
    if (!o) return DLV_OK;
    dlv_status st;
    if ((st = parse_vision_common(o, label, "qwen2_vl", v)) ||
        (st = dlv_cfg_size(o, "embed_dim", v->embed_dim, w, &v->embed_dim)) ||
        (st = dlv_cfg_size(o, "hidden_size", v->hidden_size, w, &v->hidden_size)) ||
        (st = get_positive(o, "mlp_ratio", v->mlp_ratio, w, &v->mlp_ratio)))
        return st;
    return DLV_OK;
}

/* fullatt_block_indexes: a list of block indexes in [0, depth). */
static dlv_status parse_fullatt(const json_t *o, const char *label, dlv_qwen2vl_vision_config *v)
{
    const json_t *a = dlv_cfg_present(o, "fullatt_block_indexes");
    if (!a) {
        /* The defaults may name blocks a shallower tower lacks: HF's loop
         * never meets them. */
        int64_t n = 0;
        for (int64_t i = 0; i < v->n_fullatt; i++)
            if (v->fullatt[i] < v->depth) v->fullatt[n++] = v->fullatt[i];
        v->n_fullatt = n;
        return DLV_OK;
    }
    if (!json_is_array(a) || json_array_size(a) > DLV_QWEN2VL_MAX_FULLATT)
        return dlv_error(DLV_E_FORMAT, "%s: vision_config.fullatt_block_indexes: expected a "
                         "list of at most %d block indexes", label, DLV_QWEN2VL_MAX_FULLATT);
    v->n_fullatt = (int64_t)json_array_size(a);
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *x = json_array_get(a, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) >= v->depth)
            return dlv_error(DLV_E_FORMAT, "%s: vision_config.fullatt_block_indexes[%zu]: "
                             "expected a block index in 0..%lld", label, i,
                             (long long)(v->depth - 1));
        v->fullatt[i] = (int64_t)json_integer_value(x);
    }
    return DLV_OK;
}

/* Qwen2_5_VLVisionConfig (transformers 4.51.3): its defaults are
 * Qwen2.5-VL-7B's tower. */
static dlv_status parse_vision25(const json_t *o, const char *label, dlv_qwen2vl_vision_config *v)
{
    const dlv_cfg_where w = {label, "vision_config."};
    *v = (dlv_qwen2vl_vision_config){
        .depth = 32, .embed_dim = 3584, .hidden_size = 3584, .mlp_dim = 3420, .num_heads = 16,
        .in_channels = 3, .patch_size = 14, .spatial_merge_size = 2, .temporal_patch_size = 2,
        .hidden_act = DLV_ACT_SILU, .qwen25 = 1, .window_size = 112, .n_fullatt = 4,
        .fullatt = {7, 15, 23, 31}};
    if (!o) return parse_fullatt(o, label, v);
    dlv_status st;
    if ((st = parse_vision_common(o, label, "qwen2_5_vl", v)) ||
        (st = dlv_cfg_size(o, "hidden_size", v->embed_dim, w, &v->embed_dim)) ||
        (st = dlv_cfg_size(o, "out_hidden_size", v->hidden_size, w, &v->hidden_size)) ||
        (st = dlv_cfg_size(o, "intermediate_size", v->mlp_dim, w, &v->mlp_dim)) ||
        (st = dlv_cfg_size(o, "window_size", v->window_size, w, &v->window_size)) ||
        (st = parse_fullatt(o, label, v)))
        return st;
    /* The gated MLP is SiLU(gate) * up (model/nn/encoder.h's glu). */
    if (v->hidden_act != DLV_ACT_SILU)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: vision_config.hidden_act: '%s' is not "
                         "supported (Qwen2.5-VL's tower is SiLU-gated)", label,
                         dlv_act_name(v->hidden_act));
    const int64_t unit = v->patch_size * v->spatial_merge_size;
    if (v->window_size % unit)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: vision_config.window_size: %lld is not a "
                         "multiple of patch_size * spatial_merge_size (%lld)", label,
                         (long long)v->window_size, (long long)unit);
    return DLV_OK;
}

static dlv_status check_vision(dlv_qwen2vl_vision_config *v, const char *label)
{
    /* VisionMlp's width is int(embed_dim * mlp_ratio): Python's truncation
     * (Qwen2.5-VL gives intermediate_size instead). */
    const double mlp = v->qwen25 ? (double)v->mlp_dim : (double)v->embed_dim * v->mlp_ratio;
    if (!(mlp >= 1.0 && mlp <= (double)DLV_CFG_MAX_DIM))
        return dlv_error(DLV_E_FORMAT, "%s: vision_config.mlp_ratio: %g times embed_dim %lld "
                         "is outside 1..%lld", label, v->mlp_ratio, (long long)v->embed_dim,
                         (long long)DLV_CFG_MAX_DIM);
    v->mlp_dim = (int64_t)mlp;
    if (v->embed_dim % v->num_heads)
        return dlv_error(DLV_E_FORMAT, "%s: vision_config.embed_dim: %lld is not divisible by "
                         "num_heads %lld", label, (long long)v->embed_dim,
                         (long long)v->num_heads);
    /* The tower's 2-D RoPE gives a quarter of each head to the row and a
     * quarter to the column index (model/nn/rope_tables.h). */
    if ((v->embed_dim / v->num_heads) % 4)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: vision_config.num_heads: head size %lld "
                         "(embed_dim / num_heads) is not a multiple of 4", label,
                         (long long)(v->embed_dim / v->num_heads));
    return DLV_OK;
}

/* ---- the language model (top level) -------------------------------------- */

static dlv_status parse_text(const json_t *o, const char *label, dlv_text_config *t)
{
    const dlv_cfg_where w = {label, ""};
    /* Qwen2VLConfig's defaults (Qwen2-VL-72B's language model). */
    memset(t, 0, sizeof *t);
    t->kind = DLV_TEXT_QWEN2;
    t->attention_bias = 1; /* Qwen2VLAttention: q/k/v biases, none on o_proj */
    t->hidden_act = DLV_ACT_SILU;
    t->bos_token_id = t->eos_token_id = t->pad_token_id = -1;
    dlv_status st;
    if ((st = dlv_cfg_size(o, "vocab_size", 152064, w, &t->vocab_size)) ||
        (st = dlv_cfg_size(o, "hidden_size", 8192, w, &t->hidden_size)) ||
        (st = dlv_cfg_size(o, "intermediate_size", 29568, w, &t->intermediate_size)) ||
        (st = dlv_cfg_size(o, "num_hidden_layers", 80, w, &t->num_hidden_layers)) ||
        (st = dlv_cfg_size(o, "num_attention_heads", 64, w, &t->num_attention_heads)) ||
        (st = dlv_cfg_size(o, "max_position_embeddings", 32768, w,
                       &t->max_position_embeddings)) ||
        (st = get_positive(o, "rms_norm_eps", 1e-5, w, &t->rms_norm_eps)) ||
        (st = get_positive(o, "rope_theta", 1000000.0, w, &t->rope_theta)) ||
        (st = dlv_cfg_bool(o, "tie_word_embeddings", 0, w, &t->tie_word_embeddings)) ||
        (st = get_act(o, "hidden_act", DLV_ACT_SILU, w, &t->hidden_act)))
        return st;
    if (t->hidden_act != DLV_ACT_SILU)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: hidden_act: '%s' is not supported (the "
                         "decoder's MLP is SiLU-gated)", label, dlv_act_name(t->hidden_act));
    /* num_key_value_heads: absent takes the default 8; an explicit null
     * means as many as the attention heads (Qwen2VLConfig.__init__). */
    if (!json_object_get(o, "num_key_value_heads")) t->num_key_value_heads = 8;
    else if ((st = dlv_cfg_size(o, "num_key_value_heads", t->num_attention_heads, w,
                            &t->num_key_value_heads)))
        return st;
    if (t->hidden_size % t->num_attention_heads)
        return dlv_error(DLV_E_FORMAT, "%s: hidden_size: %lld is not divisible by "
                         "num_attention_heads %lld", label, (long long)t->hidden_size,
                         (long long)t->num_attention_heads);
    t->head_dim = t->hidden_size / t->num_attention_heads;
    if (t->head_dim % 2)
        return dlv_error(DLV_E_FORMAT, "%s: num_attention_heads: head_dim %lld (hidden_size / "
                         "num_attention_heads) is odd; RoPE needs it even", label,
                         (long long)t->head_dim);
    if (t->num_attention_heads % t->num_key_value_heads)
        return dlv_error(DLV_E_FORMAT, "%s: num_key_value_heads: %lld does not divide "
                         "num_attention_heads %lld", label, (long long)t->num_key_value_heads,
                         (long long)t->num_attention_heads);
    return DLV_OK;
}

/* rope_scaling: {"type": "mrope", "mrope_section": [s0, s1, s2]}. 4.46
 * renames type "mrope" to "default" on load (M-RoPE is the default
 * frequencies, sectioned); other types would scale them, which the tables
 * do not. Qwen2VLAttention indexes mrope_section unconditionally, so the
 * section is required. */
static dlv_status parse_mrope(const json_t *root, const char *label, int64_t head_dim,
                              int64_t section[3])
{
    const json_t *r = dlv_cfg_present(root, "rope_scaling");
    if (!r)
        return dlv_error(DLV_E_FORMAT, "%s: rope_scaling: missing; Qwen2-VL needs "
                         "rope_scaling.mrope_section", label);
    if (!json_is_object(r))
        return dlv_error(DLV_E_FORMAT, "%s: rope_scaling: expected an object", label);
    const json_t *type = json_object_get(r, "rope_type");
    if (!type) type = json_object_get(r, "type");
    if (type && !json_is_string(type))
        return dlv_error(DLV_E_FORMAT, "%s: rope_scaling.type: expected a string", label);
    const char *name = type ? json_string_value(type) : "default";
    if (strcmp(name, "mrope") != 0 && strcmp(name, "default") != 0)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: rope_scaling.type: '%s' is not supported "
                         "(expected mrope)", label, name);
    const json_t *s = json_object_get(r, "mrope_section");
    if (!json_is_array(s) || json_array_size(s) != 3)
        return dlv_error(DLV_E_FORMAT, "%s: rope_scaling.mrope_section: expected a list of 3 "
                         "integers (temporal, height, width)", label);
    int64_t sum = 0;
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_array_get(s, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > DLV_CFG_MAX_DIM)
            return dlv_error(DLV_E_FORMAT, "%s: rope_scaling.mrope_section[%zu]: expected an "
                             "integer in 0..%lld", label, i, (long long)DLV_CFG_MAX_DIM);
        section[i] = (int64_t)json_integer_value(v);
        sum += section[i];
    }
    if (sum != head_dim / 2)
        return dlv_error(DLV_E_FORMAT, "%s: rope_scaling.mrope_section: [%lld, %lld, %lld] "
                         "sums to %lld, not head_dim / 2 = %lld", label, (long long)section[0],
                         (long long)section[1], (long long)section[2], (long long)sum,
                         (long long)(head_dim / 2));
    return DLV_OK;
}

static dlv_status parse_root(const json_t *root, const char *label, void *out_)
{
    memset(out_, 0, sizeof(dlv_qwen2vl_config));
    dlv_qwen2vl_config *c = out_;
    const dlv_cfg_where w = {label, ""};
    if (!json_is_object(root))
        return dlv_error(DLV_E_FORMAT, "%s: expected a JSON object at the top level", label);
    char type[32];
    dlv_status st;
    if ((st = get_str(root, "model_type", "", w, type, sizeof type))) return st;
    c->qwen25 = strcmp(type, "qwen2_5_vl") == 0;
    if (strcmp(type, "qwen2_vl") != 0 && !c->qwen25)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: model_type: '%s' is not qwen2_vl or qwen2_5_vl "
                         "(a Qwen2VLForConditionalGeneration or "
                         "Qwen2_5_VLForConditionalGeneration checkpoint)", label, type);
    const json_t *arch = dlv_cfg_present(root, "architectures");
    if (arch) {
        const json_t *a0 = json_is_array(arch) ? json_array_get(arch, 0) : NULL;
        if (!json_is_array(arch) || (json_array_size(arch) > 0 && !json_is_string(a0)))
            return dlv_error(DLV_E_FORMAT, "%s: architectures: expected a list of strings",
                             label);
        if (a0) snprintf(c->architecture, sizeof c->architecture, "%s", json_string_value(a0));
    }
    if ((st = get_str(root, "torch_dtype", "", w, c->torch_dtype, sizeof c->torch_dtype)))
        return st;
    if ((st = parse_text(root, label, &c->text)) ||
        (st = parse_mrope(root, label, c->text.head_dim, c->mrope_section)))
        return st;

    const json_t *vc = dlv_cfg_present(root, "vision_config");
    if (vc && !json_is_object(vc))
        return dlv_error(DLV_E_FORMAT, "%s: vision_config: expected an object", label);
    if ((st = c->qwen25 ? parse_vision25(vc, label, &c->vision)
                        : parse_vision2(vc, label, &c->vision)) ||
        (st = check_vision(&c->vision, label)))
        return st;
    /* The merger's output replaces the placeholder embeddings. */
    if (c->vision.hidden_size != c->text.hidden_size)
        return dlv_error(DLV_E_FORMAT, "%s: vision_config.hidden_size: %lld differs from "
                         "hidden_size %lld (the merger's output feeds the language model)",
                         label, (long long)c->vision.hidden_size,
                         (long long)c->text.hidden_size);

    const int64_t V = c->text.vocab_size;
    if ((st = get_token(root, "image_token_id", 1, V, w, &c->image_token_id)) ||
        (st = get_token(root, "vision_start_token_id", 1, V, w, &c->vision_start_token_id)) ||
        (st = get_token(root, "vision_end_token_id", 1, V, w, &c->vision_end_token_id)) ||
        (st = get_token(root, "video_token_id", 0, V, w, &c->video_token_id)) ||
        (st = get_token(root, "bos_token_id", 0, V, w, &c->text.bos_token_id)) ||
        (st = get_token(root, "eos_token_id", 0, V, w, &c->text.eos_token_id)) ||
        (st = get_token(root, "pad_token_id", 0, V, w, &c->text.pad_token_id)))
        return st;
    if (c->image_token_id == c->vision_start_token_id ||
        c->image_token_id == c->vision_end_token_id ||
        c->image_token_id == c->video_token_id)
        return dlv_error(DLV_E_FORMAT, "%s: image_token_id: %lld is also another vision "
                         "token's id", label, (long long)c->image_token_id);
    return DLV_OK;
}

dlv_status dlv_qwen2vl_config_parse(const char *json, size_t len, const char *label,
                                    dlv_qwen2vl_config *out)
{
    if (!json || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_qwen2vl_config_parse: NULL argument");
    return dlv_json_config_parse(json, len, label ? label : "config.json", parse_root, out,
                                 sizeof *out);
}

dlv_status dlv_qwen2vl_config_load(const char *path, dlv_qwen2vl_config *out)
{
    if (!path || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_qwen2vl_config_load: NULL argument");
    /* Real configs are a few kB (as dlv_llava_config_load). */
    return dlv_json_config_load(path, (size_t)16 << 20, parse_root, out, sizeof *out);
}

dlv_status dlv_qwen2vl_config_from_json(const json_t *root, const char *label,
                                        dlv_qwen2vl_config *out)
{
    return parse_root(root, label, out);
}
