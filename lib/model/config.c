/* config.json of LlavaForConditionalGeneration. Absent fields take the
 * defaults of the Hugging Face config classes (LlavaConfig, CLIPVisionConfig,
 * SiglipVisionConfig, LlamaConfig, MistralConfig, Qwen2Config), because
 * save_pretrained only writes the fields that differ from them: the real
 * llava-1.5-7b-hf config.json has no text_config.hidden_size at all. */
#include "model/config.h"
#include "model/config_fields.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"

static dlv_status copy_str(const char *s, char *buf, size_t cap, dlv_cfg_where w, const char *key)
{
    size_t n = strlen(s);
    if (n >= cap)
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: '%.40s...' is longer than %zu bytes",
                         w.label, w.prefix, key, s, cap - 1);
    memcpy(buf, s, n + 1);
    return DLV_OK;
}

/* Token ids: an integer, null (-1), or for eos a list whose first entry is
 * kept (generation stops on any of them; one is enough to describe it). */
static dlv_status get_token(const json_t *obj, const char *key, int64_t def, dlv_cfg_where w,
                            int64_t *out)
{
    *out = def; /* also on failure */
    const json_t *v = json_object_get(obj, key);
    if (!v) return DLV_OK;
    if (json_is_null(v)) { *out = -1; return DLV_OK; }
    if (json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0);
    if (!json_is_integer(v))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: expected an integer, null or a list of integers",
                         w.label, w.prefix, key);
    *out = (int64_t)json_integer_value(v);
    return DLV_OK;
}

static dlv_status parse_act(const char *name, dlv_cfg_where w, const char *key, dlv_act *out)
{
    static const struct { const char *name; dlv_act act; } acts[] = {
        {"quick_gelu", DLV_ACT_QUICK_GELU}, {"gelu", DLV_ACT_GELU},
        {"gelu_pytorch_tanh", DLV_ACT_GELU_TANH}, {"gelu_new", DLV_ACT_GELU_TANH},
        {"silu", DLV_ACT_SILU}, {"swish", DLV_ACT_SILU}, {"relu", DLV_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(name, acts[i].name) == 0) { *out = acts[i].act; return DLV_OK; }
    return dlv_error(DLV_E_UNSUPPORTED, "%s: %s%s: activation '%s' is not supported", w.label,
                     w.prefix, key, name);
}

static dlv_status get_act(const json_t *obj, const char *key, const char *def, dlv_cfg_where w,
                          dlv_act *out)
{
    const char *s;
    dlv_status st = dlv_cfg_str(obj, key, def, w, &s);
    if (st != DLV_OK) return st;
    return parse_act(s, w, key, out);
}

const char *dlv_vision_kind_name(dlv_vision_kind k)
{
    return k == DLV_VISION_SIGLIP ? "siglip_vision_model" : "clip_vision_model";
}

const char *dlv_text_kind_name(dlv_text_kind k)
{
    switch (k) {
    case DLV_TEXT_MISTRAL: return "mistral";
    case DLV_TEXT_QWEN2: return "qwen2";
    case DLV_TEXT_LLAMA: break;
    }
    return "llama";
}

const char *dlv_act_name(dlv_act a)
{
    switch (a) {
    case DLV_ACT_QUICK_GELU: return "quick_gelu";
    case DLV_ACT_GELU: return "gelu";
    case DLV_ACT_GELU_TANH: return "gelu_pytorch_tanh";
    case DLV_ACT_SILU: return "silu";
    case DLV_ACT_RELU: return "relu";
    }
    return "unknown";
}

/* ---- vision_config ---- */

/* The class defaults of CLIPVisionConfig / SiglipVisionConfig. */
static void vision_defaults(dlv_vision_kind kind, dlv_vision_config *v)
{
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->hidden_size = 768;
    v->intermediate_size = 3072;
    v->num_hidden_layers = 12;
    v->num_attention_heads = 12;
    v->num_channels = 3;
    v->image_size = 224;
    if (kind == DLV_VISION_CLIP) {
        v->patch_size = 32;
        v->hidden_act = DLV_ACT_QUICK_GELU;
        v->layer_norm_eps = 1e-5;
        v->projection_dim = 512;
        v->vision_use_head = 0;
    } else {
        v->patch_size = 16;
        v->hidden_act = DLV_ACT_GELU_TANH;
        v->layer_norm_eps = 1e-6;
        v->projection_dim = 0;
        /* SiglipVisionTransformer builds the pooling head unless the config
         * says vision_use_head: false. */
        v->vision_use_head = 1;
    }
}

/* LlavaConfig with vision_config None: CLIP ViT-L/14 at 336 px. */
static void vision_llava_default(dlv_vision_config *v)
{
    vision_defaults(DLV_VISION_CLIP, v);
    v->intermediate_size = 4096;
    v->hidden_size = 1024;
    v->patch_size = 14;
    v->image_size = 336;
    v->num_hidden_layers = 24;
    v->num_attention_heads = 16;
    v->projection_dim = 768;
}

static dlv_status parse_vision(const json_t *o, const char *label, dlv_vision_config *v)
{
    dlv_cfg_where w = {label, "vision_config."};
    const char *type;
    dlv_status st = dlv_cfg_str(o, "model_type", "clip_vision_model", w, &type);
    if (st != DLV_OK) return st;
    dlv_vision_kind kind;
    if (strcmp(type, "clip_vision_model") == 0) kind = DLV_VISION_CLIP;
    else if (strcmp(type, "siglip_vision_model") == 0) kind = DLV_VISION_SIGLIP;
    else
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: vision_config.model_type: '%s' is not supported "
                         "(expected clip_vision_model or siglip_vision_model)", label, type);
    vision_defaults(kind, v);
    const char *act_def = dlv_act_name(v->hidden_act);
    if ((st = dlv_cfg_size(o, "hidden_size", v->hidden_size, w, &v->hidden_size)) ||
        (st = dlv_cfg_size(o, "intermediate_size", v->intermediate_size, w, &v->intermediate_size)) ||
        (st = dlv_cfg_size(o, "num_hidden_layers", v->num_hidden_layers, w, &v->num_hidden_layers)) ||
        (st = dlv_cfg_size(o, "num_attention_heads", v->num_attention_heads, w,
                       &v->num_attention_heads)) ||
        (st = dlv_cfg_size(o, "num_channels", v->num_channels, w, &v->num_channels)) ||
        (st = dlv_cfg_size(o, "image_size", v->image_size, w, &v->image_size)) ||
        (st = dlv_cfg_size(o, "patch_size", v->patch_size, w, &v->patch_size)) ||
        (st = get_act(o, "hidden_act", act_def, w, &v->hidden_act)) ||
        (st = dlv_cfg_real(o, "layer_norm_eps", v->layer_norm_eps, w, &v->layer_norm_eps)))
        return st;
    if (kind == DLV_VISION_CLIP) {
        if ((st = dlv_cfg_int(o, "projection_dim", v->projection_dim, w, &v->projection_dim)))
            return st;
    } else if ((st = dlv_cfg_bool(o, "vision_use_head", v->vision_use_head, w, &v->vision_use_head))) {
        return st;
    }
    return DLV_OK;
}

/* ---- text_config ---- */

static void text_defaults(dlv_text_kind kind, dlv_text_config *t)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->hidden_act = DLV_ACT_SILU;
    t->rms_norm_eps = 1e-6;
    t->rope_theta = 10000.0;
    t->hidden_size = 4096;
    t->num_hidden_layers = 32;
    t->num_attention_heads = 32;
    t->pad_token_id = -1;
    switch (kind) {
    case DLV_TEXT_LLAMA:
        t->vocab_size = 32000;
        t->intermediate_size = 11008;
        t->max_position_embeddings = 2048;
        t->bos_token_id = 1;
        t->eos_token_id = 2;
        break;
    case DLV_TEXT_MISTRAL:
        t->vocab_size = 32000;
        t->intermediate_size = 14336;
        t->max_position_embeddings = 4096 * 32;
        t->bos_token_id = 1;
        t->eos_token_id = 2;
        break;
    case DLV_TEXT_QWEN2:
        t->vocab_size = 151936;
        t->intermediate_size = 22016;
        t->max_position_embeddings = 32768;
        t->bos_token_id = -1;
        t->eos_token_id = -1;
        /* Qwen2Attention always has q/k/v biases (and no o_proj bias). */
        t->attention_bias = 1;
        break;
    }
}

/* rope_scaling (transformers 4.x) or rope_parameters (5.x): an object whose
 * "rope_type" (or legacy "type") names the scaling; "default" means none. */
static dlv_status parse_rope_obj(const json_t *r, const char *key, dlv_cfg_where w, dlv_text_config *t)
{
    if (!r || json_is_null(r)) return DLV_OK;
    if (!json_is_object(r))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: expected an object or null", w.label,
                         w.prefix, key);
    const json_t *type = json_object_get(r, "rope_type");
    if (!type) type = json_object_get(r, "type");
    if (type && !json_is_string(type))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s.rope_type: expected a string", w.label,
                         w.prefix, key);
    const char *name = type ? json_string_value(type) : "unknown";
    if (strcmp(name, "default") != 0) {
        t->has_rope_scaling = 1;
        snprintf(t->rope_scaling_type, sizeof t->rope_scaling_type, "%s", name);
    }
    const json_t *theta = json_object_get(r, "rope_theta");
    if (theta && !json_is_null(theta)) {
        if (!json_is_number(theta))
            return dlv_error(DLV_E_FORMAT, "%s: %s%s.rope_theta: expected a number", w.label,
                             w.prefix, key);
        t->rope_theta = json_number_value(theta);
    }
    return DLV_OK;
}

static dlv_status parse_text(const json_t *o, const char *label, dlv_text_config *t)
{
    dlv_cfg_where w = {label, "text_config."};
    const char *type;
    dlv_status st = dlv_cfg_str(o, "model_type", "llama", w, &type);
    if (st != DLV_OK) return st;
    dlv_text_kind kind;
    if (strcmp(type, "llama") == 0) kind = DLV_TEXT_LLAMA;
    else if (strcmp(type, "mistral") == 0) kind = DLV_TEXT_MISTRAL;
    else if (strcmp(type, "qwen2") == 0) kind = DLV_TEXT_QWEN2;
    else
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: text_config.model_type: '%s' is not supported "
                         "(expected llama, mistral or qwen2)", label, type);
    text_defaults(kind, t);

    if ((st = dlv_cfg_size(o, "vocab_size", t->vocab_size, w, &t->vocab_size)) ||
        (st = dlv_cfg_size(o, "hidden_size", t->hidden_size, w, &t->hidden_size)) ||
        (st = dlv_cfg_size(o, "intermediate_size", t->intermediate_size, w, &t->intermediate_size)) ||
        (st = dlv_cfg_size(o, "num_hidden_layers", t->num_hidden_layers, w, &t->num_hidden_layers)) ||
        (st = dlv_cfg_size(o, "num_attention_heads", t->num_attention_heads, w,
                       &t->num_attention_heads)) ||
        (st = get_act(o, "hidden_act", "silu", w, &t->hidden_act)) ||
        (st = dlv_cfg_size(o, "max_position_embeddings", t->max_position_embeddings, w,
                       &t->max_position_embeddings)) ||
        (st = dlv_cfg_real(o, "rms_norm_eps", t->rms_norm_eps, w, &t->rms_norm_eps)) ||
        (st = dlv_cfg_bool(o, "tie_word_embeddings", 0, w, &t->tie_word_embeddings)) ||
        (st = get_token(o, "bos_token_id", t->bos_token_id, w, &t->bos_token_id)) ||
        (st = get_token(o, "eos_token_id", t->eos_token_id, w, &t->eos_token_id)) ||
        (st = get_token(o, "pad_token_id", t->pad_token_id, w, &t->pad_token_id)))
        return st;

    /* num_key_value_heads: an absent field takes the class default (None
     * for Llama, 8 for Mistral, 32 for Qwen2); an explicit null means "as
     * many as attention heads" in all three. */
    int64_t kv_absent = kind == DLV_TEXT_MISTRAL ? 8
                        : kind == DLV_TEXT_QWEN2 ? 32 : t->num_attention_heads;
    const json_t *kv = json_object_get(o, "num_key_value_heads");
    if (!kv) t->num_key_value_heads = kv_absent;
    else if ((st = dlv_cfg_size(o, "num_key_value_heads", t->num_attention_heads, w,
                            &t->num_key_value_heads)))
        return st;

    int have_head_dim = dlv_cfg_present(o, "head_dim") != NULL;
    if ((st = dlv_cfg_size(o, "head_dim", 1, w, &t->head_dim))) return st;
    if (!have_head_dim) {
        if (t->hidden_size % t->num_attention_heads != 0)
            return dlv_error(DLV_E_FORMAT,
                             "%s: text_config.hidden_size: %lld is not divisible by "
                             "num_attention_heads %lld", label, (long long)t->hidden_size,
                             (long long)t->num_attention_heads);
        t->head_dim = t->hidden_size / t->num_attention_heads;
    }
    if (t->num_attention_heads % t->num_key_value_heads != 0)
        return dlv_error(DLV_E_FORMAT,
                         "%s: text_config.num_key_value_heads: %lld does not divide "
                         "num_attention_heads %lld", label, (long long)t->num_key_value_heads,
                         (long long)t->num_attention_heads);

    if (kind == DLV_TEXT_LLAMA) {
        if ((st = dlv_cfg_bool(o, "attention_bias", 0, w, &t->attention_bias)) ||
            (st = dlv_cfg_bool(o, "mlp_bias", 0, w, &t->mlp_bias)))
            return st;
    }

    if ((st = dlv_cfg_real(o, "rope_theta", t->rope_theta, w, &t->rope_theta)) ||
        (st = parse_rope_obj(json_object_get(o, "rope_scaling"), "rope_scaling", w, t)) ||
        (st = parse_rope_obj(json_object_get(o, "rope_parameters"), "rope_parameters", w, t)))
        return st;
    if (!(t->rope_theta > 0.0))
        return dlv_error(DLV_E_FORMAT, "%s: text_config.rope_theta: %g is not positive", label,
                         t->rope_theta);
    if (!(t->rms_norm_eps > 0.0))
        return dlv_error(DLV_E_FORMAT, "%s: text_config.rms_norm_eps: %g is not positive", label,
                         t->rms_norm_eps);
    return DLV_OK;
}

/* ---- the whole file ---- */

static dlv_status check_vision(const dlv_vision_config *v, const char *label)
{
    if (v->hidden_size % v->num_attention_heads != 0)
        return dlv_error(DLV_E_FORMAT,
                         "%s: vision_config.hidden_size: %lld is not divisible by "
                         "num_attention_heads %lld", label, (long long)v->hidden_size,
                         (long long)v->num_attention_heads);
    /* The patch convolution drops a remainder (SigLIP-so400m: 384 px in
     * patches of 14 gives 27 x 27), so divisibility is not required. */
    if (v->patch_size > v->image_size)
        return dlv_error(DLV_E_FORMAT,
                         "%s: vision_config.patch_size: %lld is larger than image_size %lld",
                         label, (long long)v->patch_size, (long long)v->image_size);
    if (!(v->layer_norm_eps > 0.0))
        return dlv_error(DLV_E_FORMAT, "%s: vision_config.layer_norm_eps: %g is not positive",
                         label, v->layer_norm_eps);
    return DLV_OK;
}

/* LlavaNextConfig's image_grid_pinpoints: [[height, width], ...], each a
 * positive multiple of nothing in particular (the image processor checks
 * them against its crop size); absent or null: llava-v1.6's five. */
static dlv_status parse_pinpoints(const json_t *root, const char *label, dlv_llava_config *c)
{
    static const int64_t v16[5][2] = {{336, 672}, {672, 336}, {672, 672}, {1008, 336},
                                      {336, 1008}};
    const json_t *g = json_object_get(root, "image_grid_pinpoints");
    if (!g || json_is_null(g)) {
        c->n_pinpoints = 5;
        memcpy(c->pinpoints, v16, sizeof v16);
        return DLV_OK;
    }
    if (!json_is_array(g) || json_array_size(g) == 0 ||
        json_array_size(g) > DLV_MAX_PINPOINTS)
        return dlv_error(DLV_E_FORMAT, "%s: image_grid_pinpoints: expected a list of 1 to %d "
                         "[height, width] pairs", label, DLV_MAX_PINPOINTS);
    c->n_pinpoints = (int64_t)json_array_size(g);
    for (size_t i = 0; i < json_array_size(g); i++) {
        const json_t *pair = json_array_get(g, i);
        for (size_t k = 0; k < 2; k++) {
            const json_t *v = json_is_array(pair) && json_array_size(pair) == 2
                                  ? json_array_get(pair, k)
                                  : NULL;
            /* The image processor's bound (image/preproc_config.h): far
             * beyond any published grid, small enough that tile and
             * feature counts stay small. */
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > DLV_MAX_PINPOINT_SIDE)
                return dlv_error(DLV_E_FORMAT, "%s: image_grid_pinpoints[%zu]: expected "
                                 "[height, width], integers in 1..%d", label, i,
                                 DLV_MAX_PINPOINT_SIDE);
            c->pinpoints[i][k] = (int64_t)json_integer_value(v);
        }
    }
    return DLV_OK;
}

/* Qwen2-VL / Qwen2.5-VL: the file's own config, mirrored into the fields
 * the LLaVA kind's shared code reads (config.h). */
static dlv_status qwen2vl_view(const json_t *root, const char *label, dlv_llava_config *c)
{
    dlv_status st = dlv_qwen2vl_config_from_json(root, label, &c->qv);
    if (st) return st;
    const dlv_qwen2vl_config *q = &c->qv;
    c->qwen2vl = 1;
    memcpy(c->architecture, q->architecture, sizeof c->architecture);
    memcpy(c->torch_dtype, q->torch_dtype, sizeof c->torch_dtype);
    c->text = q->text;
    c->image_token_index = q->image_token_id;
    /* A consistent stand-in for the code that reads the LLaVA vision fields
     * of every model (the weight table's size from num_hidden_layers, the
     * dims): one merged unit's patches per "image". No LLaVA vision code
     * runs on it; disclvlm info describes the tower from qv. */
    c->vision = (dlv_vision_config){
        .kind = DLV_VISION_CLIP, .hidden_size = q->vision.embed_dim,
        .intermediate_size = q->vision.mlp_dim, .num_hidden_layers = q->vision.depth,
        .num_attention_heads = q->vision.num_heads, .num_channels = q->vision.in_channels,
        .image_size = q->vision.patch_size * q->vision.spatial_merge_size,
        .patch_size = q->vision.patch_size, .hidden_act = q->vision.hidden_act,
        .layer_norm_eps = 1e-6};
    c->vision_feature_layer = -1;
    c->vision_feature_select_full = 1;
    c->image_seq_length = q->vision.spatial_merge_size * q->vision.spatial_merge_size;
    return DLV_OK;
}

static dlv_status parse_root(const json_t *root, const char *label, void *out_)
{
    dlv_llava_config *c = out_;
    dlv_cfg_where w = {label, ""};
    dlv_status st;
    if (!json_is_object(root))
        return dlv_error(DLV_E_FORMAT, "%s: expected a JSON object at the top level", label);

    const char *model_type;
    if ((st = dlv_cfg_str(root, "model_type", "llava", w, &model_type))) return st;
    if (!strcmp(model_type, "qwen2_vl") || !strcmp(model_type, "qwen2_5_vl"))
        return qwen2vl_view(root, label, c);
    c->anyres = strcmp(model_type, "llava_next") == 0;
    if (strcmp(model_type, "llava") != 0 && !c->anyres)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: model_type: '%s' is not supported (expected 'llava', "
                         "'llava_next', 'qwen2_vl' or 'qwen2_5_vl': a "
                         "LlavaForConditionalGeneration, LlavaNextForConditionalGeneration, "
                         "Qwen2VLForConditionalGeneration or "
                         "Qwen2_5_VLForConditionalGeneration checkpoint)", label, model_type);
    if (c->anyres && (st = parse_pinpoints(root, label, c))) return st;

    const json_t *arch = json_object_get(root, "architectures");
    if (arch && !json_is_null(arch)) {
        if (!json_is_array(arch))
            return dlv_error(DLV_E_FORMAT, "%s: architectures: expected a list of strings", label);
        if (json_array_size(arch) > 0) {
            const json_t *a0 = json_array_get(arch, 0);
            if (!json_is_string(a0))
                return dlv_error(DLV_E_FORMAT, "%s: architectures[0]: expected a string", label);
            if ((st = copy_str(json_string_value(a0), c->architecture, sizeof c->architecture,
                               w, "architectures")))
                return st;
        }
    }
    const char *dtype;
    if ((st = dlv_cfg_str(root, "torch_dtype", NULL, w, &dtype))) return st;
    if (!dtype && (st = dlv_cfg_str(root, "dtype", "", w, &dtype))) return st;
    if ((st = copy_str(dtype, c->torch_dtype, sizeof c->torch_dtype, w, "torch_dtype")))
        return st;

    const json_t *vc = json_object_get(root, "vision_config");
    if (!vc || json_is_null(vc)) {
        vision_llava_default(&c->vision);
    } else if (!json_is_object(vc)) {
        return dlv_error(DLV_E_FORMAT, "%s: vision_config: expected an object", label);
    } else if ((st = parse_vision(vc, label, &c->vision))) {
        return st;
    }
    if ((st = check_vision(&c->vision, label))) return st;
    /* A grid resolution is a whole number of tower-sized tiles: the model
     * counts them by floor division, the image processor by stepping, so
     * anything else would give the two different counts. */
    for (int64_t i = 0; c->anyres && i < c->n_pinpoints; i++)
        if (c->pinpoints[i][0] % c->vision.image_size || c->pinpoints[i][1] % c->vision.image_size)
            return dlv_error(DLV_E_FORMAT, "%s: image_grid_pinpoints[%lld]: [%lld, %lld] is not "
                             "a multiple of vision_config.image_size %lld", label, (long long)i,
                             (long long)c->pinpoints[i][0], (long long)c->pinpoints[i][1],
                             (long long)c->vision.image_size);

    /* An empty object stands for LlamaConfig() just like an absent one. */
    static const char empty_json[] = "{}";
    const json_t *tc = json_object_get(root, "text_config");
    json_t *empty = NULL;
    if (!tc || json_is_null(tc)) {
        empty = json_loads(empty_json, 0, NULL);
        if (!empty) return dlv_error_nomem("an empty JSON object", sizeof empty_json);
        tc = empty;
    } else if (!json_is_object(tc)) {
        return dlv_error(DLV_E_FORMAT, "%s: text_config: expected an object", label);
    }
    st = parse_text(tc, label, &c->text);
    json_decref(empty);
    if (st != DLV_OK) return st;

    /* LlavaConfig ties the embeddings if either level asks for it. */
    int tie_top;
    if ((st = dlv_cfg_bool(root, "tie_word_embeddings", 0, w, &tie_top))) return st;
    c->text.tie_word_embeddings = c->text.tie_word_embeddings || tie_top;

    const char *select;
    if ((st = dlv_cfg_int(root, "image_token_index", 32000, w, &c->image_token_index)) ||
        (st = get_act(root, "projector_hidden_act", "gelu", w, &c->projector_hidden_act)) ||
        (st = dlv_cfg_bool(root, "multimodal_projector_bias", 1, w, &c->multimodal_projector_bias)) ||
        (st = dlv_cfg_size(root, "image_seq_length", 576, w, &c->image_seq_length)) ||
        (st = dlv_cfg_str(root, "vision_feature_select_strategy", "default", w, &select)))
        return st;
    if (c->image_token_index < 0)
        return dlv_error(DLV_E_FORMAT, "%s: image_token_index: %lld is negative", label,
                         (long long)c->image_token_index);
    if (strcmp(select, "default") == 0) c->vision_feature_select_full = 0;
    else if (strcmp(select, "full") == 0) c->vision_feature_select_full = 1;
    else
        return dlv_error(DLV_E_FORMAT,
                         "%s: vision_feature_select_strategy: '%s' (expected 'default' or 'full')",
                         label, select);

    /* transformers packs side x side features per tile: a class token the
     * default strategy drops, i.e. a CLIP tower (a SigLIP one, or "full",
     * fails its shape check). */
    if (c->anyres && (c->vision.kind != DLV_VISION_CLIP || c->vision_feature_select_full))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: a LLaVA-NeXT model needs a CLIP vision tower "
                         "(vision_config.model_type 'clip_vision_model') and "
                         "vision_feature_select_strategy 'default', as transformers does", label);
    const json_t *vfl = json_object_get(root, "vision_feature_layer");
    if (vfl && json_is_array(vfl))
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: vision_feature_layer: a list of layers is not supported yet", label);
    if ((st = dlv_cfg_int(root, "vision_feature_layer", -2, w, &c->vision_feature_layer))) return st;
    /* hidden_states holds the embeddings and each layer's output: L + 1
     * entries, indexed from either end. */
    int64_t n_states = c->vision.num_hidden_layers + 1;
    if (c->vision_feature_layer < -n_states || c->vision_feature_layer >= n_states)
        return dlv_error(DLV_E_FORMAT,
                         "%s: vision_feature_layer: %lld is outside -%lld..%lld for %lld "
                         "vision layers", label, (long long)c->vision_feature_layer,
                         (long long)n_states, (long long)(n_states - 1),
                         (long long)c->vision.num_hidden_layers);
    return DLV_OK;
}

dlv_status dlv_llava_config_parse(const char *json, size_t len, const char *label,
                                  dlv_llava_config *out)
{
    if (!json || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_llava_config_parse: NULL argument");
    return dlv_json_config_parse(json, len, label ? label : "config.json", parse_root, out,
                                 sizeof *out);
}

dlv_status dlv_llava_config_load(const char *path, dlv_llava_config *out)
{
    if (!path || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_llava_config_load: NULL argument");
    /* Real configs are a few kB; 16 MiB leaves room for huge id2label maps. */
    return dlv_json_config_load(path, (size_t)16 << 20, parse_root, out, sizeof *out);
}
