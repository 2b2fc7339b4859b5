/* CLIPModel: the config and the weight table (see clip_model.h; the towers
 * are model/clip/clip.c). */
#include "model/clip/clip_model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "model/model.h"

#define MAX_DIM ((int64_t)1 << 31)
#define MAX_LAYERS 4096

/* ---- Config ----------------------------------------------------------------- */

static dlv_status parse_act(const char *s, const char *label, const char *key, dlv_act *out)
{
    static const struct { const char *name; dlv_act act; } acts[] = {
        {"quick_gelu", DLV_ACT_QUICK_GELU}, {"gelu", DLV_ACT_GELU},
        {"gelu_pytorch_tanh", DLV_ACT_GELU_TANH}, {"gelu_new", DLV_ACT_GELU_TANH},
        {"silu", DLV_ACT_SILU}, {"swish", DLV_ACT_SILU}, {"relu", DLV_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(s, acts[i].name) == 0) { *out = acts[i].act; return DLV_OK; }
    return dlv_error(DLV_E_UNSUPPORTED, "%s: field '%s': activation '%s' is not supported",
                     label, key, s);
}

static dlv_status get_size(const json_t *o, const char *key, int64_t def, const char *label,
                           int64_t *out)
{
    dlv_status st = dlv_json_int(o, key, def, label, out);
    if (st) return st;
    if (*out <= 0 || *out > MAX_DIM)
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': %lld is outside 1..%lld", label, key,
                         (long long)*out, (long long)MAX_DIM);
    return DLV_OK;
}

/* bos/eos/pad: an integer, null (-1) or a list (its first entry). */
static dlv_status get_token(const json_t *o, const char *key, int64_t def, const char *label,
                            int64_t *out)
{
    *out = def; /* also on failure */
    const json_t *v = json_object_get(o, key);
    if (!v) return DLV_OK;
    if (json_is_null(v)) { *out = -1; return DLV_OK; }
    if (json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0);
    if (!json_is_integer(v))
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected an integer or null", label, key);
    *out = (int64_t)json_integer_value(v);
    return DLV_OK;
}

/* CLIPTextConfig's defaults (transformers 4.46.3). */
static dlv_status parse_text(const json_t *o, const char *file, dlv_clip_text_config *t)
{
    char label[512];
    snprintf(label, sizeof label, "%s: text_config", file);
    char act[32];
    dlv_status st;
    if ((st = get_size(o, "vocab_size", 49408, label, &t->vocab_size)) ||
        (st = get_size(o, "hidden_size", 512, label, &t->hidden_size)) ||
        (st = get_size(o, "intermediate_size", 2048, label, &t->intermediate_size)) ||
        (st = get_size(o, "num_hidden_layers", 12, label, &t->num_hidden_layers)) ||
        (st = get_size(o, "num_attention_heads", 8, label, &t->num_attention_heads)) ||
        (st = get_size(o, "max_position_embeddings", 77, label, &t->max_position_embeddings)) ||
        (st = dlv_json_str(o, "hidden_act", "quick_gelu", label, act, sizeof act)) ||
        (st = parse_act(act, label, "hidden_act", &t->hidden_act)) ||
        (st = dlv_json_real(o, "layer_norm_eps", 1e-5, label, &t->layer_norm_eps)) ||
        (st = get_token(o, "bos_token_id", 49406, label, &t->bos_token_id)) ||
        (st = get_token(o, "eos_token_id", 49407, label, &t->eos_token_id)) ||
        (st = get_token(o, "pad_token_id", 1, label, &t->pad_token_id)))
        return st;
    if (t->hidden_size % t->num_attention_heads != 0)
        return dlv_error(DLV_E_FORMAT, "%s: hidden_size %lld is not divisible by "
                         "num_attention_heads %lld", label, (long long)t->hidden_size,
                         (long long)t->num_attention_heads);
    if (!(t->layer_norm_eps > 0.0))
        return dlv_error(DLV_E_FORMAT, "%s: layer_norm_eps %g is not positive", label,
                         t->layer_norm_eps);
    if (t->num_hidden_layers > MAX_LAYERS)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: more than %d layers", label, MAX_LAYERS);
    return DLV_OK;
}

/* CLIPVisionConfig's defaults. */
static dlv_status parse_vision(const json_t *o, const char *file, dlv_vision_config *v)
{
    char label[512];
    snprintf(label, sizeof label, "%s: vision_config", file);
    char act[32], type[64];
    dlv_status st = dlv_json_str(o, "model_type", "clip_vision_model", label, type, sizeof type);
    if (st) return st;
    if (strcmp(type, "clip_vision_model") != 0)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: model_type '%s' (a CLIPModel has a "
                         "clip_vision_model)", label, type);
    memset(v, 0, sizeof *v);
    v->kind = DLV_VISION_CLIP;
    if ((st = get_size(o, "hidden_size", 768, label, &v->hidden_size)) ||
        (st = get_size(o, "intermediate_size", 3072, label, &v->intermediate_size)) ||
        (st = get_size(o, "num_hidden_layers", 12, label, &v->num_hidden_layers)) ||
        (st = get_size(o, "num_attention_heads", 12, label, &v->num_attention_heads)) ||
        (st = get_size(o, "num_channels", 3, label, &v->num_channels)) ||
        (st = get_size(o, "image_size", 224, label, &v->image_size)) ||
        (st = get_size(o, "patch_size", 32, label, &v->patch_size)) ||
        (st = dlv_json_str(o, "hidden_act", "quick_gelu", label, act, sizeof act)) ||
        (st = parse_act(act, label, "hidden_act", &v->hidden_act)) ||
        (st = dlv_json_real(o, "layer_norm_eps", 1e-5, label, &v->layer_norm_eps)) ||
        (st = dlv_json_int(o, "projection_dim", 512, label, &v->projection_dim)))
        return st;
    if (v->hidden_size % v->num_attention_heads != 0)
        return dlv_error(DLV_E_FORMAT, "%s: hidden_size %lld is not divisible by "
                         "num_attention_heads %lld", label, (long long)v->hidden_size,
                         (long long)v->num_attention_heads);
    if (v->patch_size > v->image_size)
        return dlv_error(DLV_E_FORMAT, "%s: patch_size %lld is larger than image_size %lld",
                         label, (long long)v->patch_size, (long long)v->image_size);
    if (!(v->layer_norm_eps > 0.0))
        return dlv_error(DLV_E_FORMAT, "%s: layer_norm_eps %g is not positive", label,
                         v->layer_norm_eps);
    if (v->num_hidden_layers > MAX_LAYERS)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: more than %d layers", label, MAX_LAYERS);
    return DLV_OK;
}

static int is_clip_root(const json_t *root)
{
    const json_t *mt = json_is_object(root) ? json_object_get(root, "model_type") : NULL;
    return mt && json_is_string(mt) && strcmp(json_string_value(mt), "clip") == 0;
}

int dlv_clip_config_detect(const char *json, size_t len)
{
    if (!json) return 0;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    int yes = root && is_clip_root(root);
    json_decref(root);
    return yes;
}

int dlv_clip_config_detect_file(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (!path || dlv_read_file(path, (size_t)16 << 20, &text, &len) != DLV_OK) return 0;
    int yes = dlv_clip_config_detect(text, len);
    free(text);
    return yes;
}

/* The sub-config object: CLIPConfig lets *_config_dict (older saves) replace
 * *_config entirely (it is re-built from its own defaults). NULL: absent. */
static dlv_status sub_config(const json_t *root, const char *key, const char *dict_key,
                             const char *file, const json_t **out)
{
    const json_t *d = json_object_get(root, dict_key);
    const json_t *c = json_object_get(root, key);
    if (d && !json_is_null(d)) c = d, key = dict_key;
    *out = NULL;
    if (!c || json_is_null(c)) return DLV_OK;
    if (!json_is_object(c)) return dlv_error(DLV_E_FORMAT, "%s: %s: expected an object", file, key);
    *out = c;
    return DLV_OK;
}

static dlv_status parse_root(const json_t *root, const char *file, void *out_)
{
    dlv_clip_config *c = out_;
    if (!is_clip_root(root))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: model_type: expected 'clip' (a CLIPModel)", file);
    dlv_status st;
    const json_t *arch = json_object_get(root, "architectures");
    if (arch && json_is_array(arch) && json_array_size(arch) > 0 &&
        json_is_string(json_array_get(arch, 0)))
        snprintf(c->architecture, sizeof c->architecture, "%s",
                 json_string_value(json_array_get(arch, 0)));
    const json_t *dt = json_object_get(root, "torch_dtype");
    if (dt && json_is_string(dt))
        snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", json_string_value(dt));
    if ((st = get_size(root, "projection_dim", 512, file, &c->projection_dim)) ||
        (st = dlv_json_real(root, "logit_scale_init_value", 2.6592, file,
                            &c->logit_scale_init_value)))
        return st;
    json_t *empty = json_object();
    if (!empty) return dlv_error_nomem("a JSON object", 64);
    const json_t *tc, *vc;
    st = sub_config(root, "text_config", "text_config_dict", file, &tc);
    if (!st) st = parse_text(tc ? tc : empty, file, &c->text);
    if (!st) st = sub_config(root, "vision_config", "vision_config_dict", file, &vc);
    if (!st) st = parse_vision(vc ? vc : empty, file, &c->vision);
    json_decref(empty);
    return st;
}

dlv_status dlv_clip_config_parse(const char *json, size_t len, const char *label,
                                 dlv_clip_config *out)
{
    if (!json || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_clip_config_parse: NULL argument");
    return dlv_json_config_parse(json, len, label ? label : "config.json", parse_root, out,
                                 sizeof *out);
}

dlv_status dlv_clip_config_load(const char *path, dlv_clip_config *out)
{
    if (!path || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_clip_config_load: NULL argument");
    return dlv_json_config_load(path, (size_t)16 << 20, parse_root, out, sizeof *out);
}

void dlv_clip_config_llava_view(const dlv_clip_config *c, dlv_llava_config *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->architecture, sizeof out->architecture, "%s",
             c->architecture[0] ? c->architecture : "CLIPModel");
    snprintf(out->torch_dtype, sizeof out->torch_dtype, "%s", c->torch_dtype);
    out->vision = c->vision;
    out->vision.projection_dim = c->projection_dim;
    dlv_text_config *t = &out->text;
    t->kind = DLV_TEXT_LLAMA; /* unused for CLIP: only the sizes below are meaningful */
    t->vocab_size = c->text.vocab_size;
    t->hidden_size = c->text.hidden_size;
    t->intermediate_size = c->text.intermediate_size;
    t->num_hidden_layers = c->text.num_hidden_layers;
    t->num_attention_heads = c->text.num_attention_heads;
    t->num_key_value_heads = c->text.num_attention_heads;
    t->head_dim = c->text.hidden_size / c->text.num_attention_heads;
    t->hidden_act = c->text.hidden_act;
    t->max_position_embeddings = c->text.max_position_embeddings;
    t->rms_norm_eps = c->text.layer_norm_eps;
    t->rope_theta = 10000.0;
    t->bos_token_id = c->text.bos_token_id;
    t->eos_token_id = c->text.eos_token_id;
    t->pad_token_id = c->text.pad_token_id;
    out->image_token_index = -1;
    out->projector_hidden_act = DLV_ACT_GELU;
    out->vision_feature_layer = -1;
    out->vision_feature_select_full = 1;
    int64_t side = c->vision.image_size / c->vision.patch_size;
    out->image_seq_length = side * side + 1;
}

/* ---- Weights ---------------------------------------------------------------- */

static dlv_weight_part part_of(const char *name)
{
    if (strncmp(name, "text_", 5) == 0) return DLV_PART_TEXT;
    if (strcmp(name, "logit_scale") == 0) return DLV_PART_PROJECTOR;
    return DLV_PART_VISION;
}

typedef struct tbl {
    dlv_weights *w;
    size_t cap;
} tbl;

static void add(tbl *b, int ndim, int64_t d0, int64_t d1, const char *fmt, ...) DLV_PRINTF(5, 6);

static void add(tbl *b, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
{
    if (b->w->n >= b->cap) return;
    dlv_weight *e = &b->w->items[b->w->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->canonical, sizeof e->canonical, fmt, ap);
    va_end(ap);
    e->part = part_of(e->canonical);
    e->required = 1;
    e->ndim = ndim;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->shape[2] = e->shape[3] = 0;
    e->tensor = NULL;
}

static void layers_table(tbl *b, const char *pre, int64_t L, int64_t h, int64_t im)
{
    static const char *const proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int64_t i = 0; i < L; i++) {
        char l[64];
        snprintf(l, sizeof l, "%s.encoder.layers.%lld.", pre, (long long)i);
        for (int j = 0; j < 4; j++) {
            add(b, 2, h, h, "%sself_attn.%s.weight", l, proj[j]);
            add(b, 1, h, 0, "%sself_attn.%s.bias", l, proj[j]);
        }
        add(b, 1, h, 0, "%slayer_norm1.weight", l);
        add(b, 1, h, 0, "%slayer_norm1.bias", l);
        add(b, 2, im, h, "%smlp.fc1.weight", l);
        add(b, 1, im, 0, "%smlp.fc1.bias", l);
        add(b, 2, h, im, "%smlp.fc2.weight", l);
        add(b, 1, h, 0, "%smlp.fc2.bias", l);
        add(b, 1, h, 0, "%slayer_norm2.weight", l);
        add(b, 1, h, 0, "%slayer_norm2.bias", l);
    }
}

static dlv_status clip_table(const dlv_clip_config *c, dlv_weights *out)
{
    memset(out, 0, sizeof *out);
    size_t cap = 32 + 16 * (size_t)(c->text.num_hidden_layers + c->vision.num_hidden_layers);
    out->items = calloc(cap, sizeof *out->items);
    if (!out->items) return dlv_error_nomem("the CLIP weight table", cap * sizeof *out->items);
    tbl b = {out, cap};
    const dlv_clip_text_config *t = &c->text;
    const dlv_vision_config *v = &c->vision;
    int64_t th = t->hidden_size, vh = v->hidden_size, p = v->patch_size;
    int64_t side = v->image_size / p;
    add(&b, 2, t->vocab_size, th, "text_model.embeddings.token_embedding.weight");
    add(&b, 2, t->max_position_embeddings, th, "text_model.embeddings.position_embedding.weight");
    layers_table(&b, "text_model", t->num_hidden_layers, th, t->intermediate_size);
    add(&b, 1, th, 0, "text_model.final_layer_norm.weight");
    add(&b, 1, th, 0, "text_model.final_layer_norm.bias");
    add(&b, 1, vh, 0, "vision_model.embeddings.class_embedding");
    /* a 4-d shape: set by hand below */
    add(&b, 4, vh, v->num_channels, "vision_model.embeddings.patch_embedding.weight");
    out->items[out->n - 1].shape[2] = p;
    out->items[out->n - 1].shape[3] = p;
    add(&b, 2, side * side + 1, vh, "vision_model.embeddings.position_embedding.weight");
    add(&b, 1, vh, 0, "vision_model.pre_layrnorm.weight");
    add(&b, 1, vh, 0, "vision_model.pre_layrnorm.bias");
    layers_table(&b, "vision_model", v->num_hidden_layers, vh, v->intermediate_size);
    add(&b, 1, vh, 0, "vision_model.post_layernorm.weight");
    add(&b, 1, vh, 0, "vision_model.post_layernorm.bias");
    add(&b, 2, c->projection_dim, vh, "visual_projection.weight");
    add(&b, 2, c->projection_dim, th, "text_projection.weight");
    add(&b, 0, 0, 0, "logit_scale");
    return DLV_OK;
}

dlv_status dlv_clip_weights_resolve(const dlv_clip_config *cfg, const dlv_st_set *ckpt,
                                    const char *label, dlv_weights *out)
{
    if (!cfg || !ckpt || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_clip_weights_resolve: NULL argument");
    if (!label) label = "model";
    dlv_status st = clip_table(cfg, out);
    if (st) return st;
    out->layout = DLV_LAYOUT_CLASSIC;
    for (size_t i = 0; i < out->n && !st; i++) {
        dlv_weight *e = &out->items[i];
        const dlv_st_tensor *t = dlv_st_set_find(ckpt, e->canonical);
        if (!t) {
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s' is missing from the CLIPModel "
                           "checkpoint", label, e->canonical);
            break;
        }
        if ((st = dlv_weight_check(e, t, e->canonical))) break;
        e->tensor = t;
        out->n_present++;
        out->params[e->part == DLV_PART_PROJECTOR ? DLV_PART_PROJECTOR : e->part] +=
            t->n_elements;
    }
    if (st) {
        dlv_weights_free(out);
        return st;
    }
    dlv_weights_count(out, ckpt);
    return DLV_OK;
}
