/* CLIPModel: config, weight table, forward and backward of both towers
 * (see clip_model.h). The encoder layer is CLIPEncoderLayer for both towers:
 *   x2 = x + out_proj(attn(layer_norm1(x)))   (text: causal, padded keys masked)
 *   x' = x2 + fc2(act(fc1(layer_norm2(x2))))
 * written against the backend's checked ops, llm.c style. */
#include "model/clip_model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "model/model.h"
#include "train/wview.h"

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
    const json_t *v = json_object_get(o, key);
    if (!v) { *out = def; return DLV_OK; }
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

static dlv_status parse_root(const json_t *root, const char *file, dlv_clip_config *c)
{
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
    if (!json || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_clip_config_parse: NULL argument");
    if (!label) label = "config.json";
    memset(out, 0, sizeof *out);
    json_t *root = NULL;
    dlv_status st = dlv_json_parse(json, len, label, &root);
    if (st) return st;
    st = parse_root(root, label, out);
    json_decref(root);
    if (st) memset(out, 0, sizeof *out);
    return st;
}

dlv_status dlv_clip_config_load(const char *path, dlv_clip_config *out)
{
    if (!path || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_clip_config_load: NULL argument");
    char *text = NULL;
    size_t len = 0;
    dlv_status st = dlv_read_file(path, (size_t)16 << 20, &text, &len);
    if (st) return st;
    st = dlv_clip_config_parse(text, len, path, out);
    free(text);
    return st;
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

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *d)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < cap; i++) {
        int k = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)d[i]);
        if (k < 0) break;
        used += (size_t)k;
    }
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
        const char *file = t->file_path ? t->file_path : label;
        if (!dlv_dtype_is_float(t->dtype)) {
            st = dlv_error(DLV_E_UNSUPPORTED, "%s: tensor '%s' has dtype %s; weights must be "
                           "F32, F16 or BF16", file, e->canonical, dlv_dtype_name(t->dtype));
            break;
        }
        int ok = t->ndim == e->ndim;
        for (int d = 0; ok && d < e->ndim; d++) ok = t->shape[d] == e->shape[d];
        /* logit_scale is a 0-d parameter; a [1] copy is accepted too. */
        if (e->ndim == 0 && t->n_elements == 1) ok = 1;
        if (!ok) {
            char want[96], got[96];
            fmt_shape(want, sizeof want, e->ndim, e->shape);
            fmt_shape(got, sizeof got, t->ndim, t->shape);
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s' has shape [%s], expected [%s] from "
                           "config.json", file, e->canonical, got, want);
            break;
        }
        e->tensor = t;
        out->n_present++;
        out->params[e->part == DLV_PART_PROJECTOR ? DLV_PART_PROJECTOR : e->part] +=
            t->n_elements;
    }
    if (st) {
        dlv_weights_free(out);
        return st;
    }
    size_t total = dlv_st_set_count(ckpt);
    out->n_unused = total - out->n_present;
    for (size_t i = 0; i < total; i++) {
        const dlv_st_tensor *t = dlv_st_set_at(ckpt, i);
        if (t && (unsigned)t->dtype < DLV_DTYPE_COUNT) out->dtype_count[t->dtype]++;
    }
    return DLV_OK;
}

/* ---- Forward context -------------------------------------------------------- */

typedef struct wref {
    const void *data;
    dlv_dtype dtype;
    float *grad;
    const dlv_st_tensor *t;
} wref;

typedef struct cctx {
    const dlv_clip_config *cfg;
    const dlv_wview *wv;
    dlv_wview frozen;
    dlv_backend *be;
    const char *label;
    const char *pre;      /* "text_model." / "vision_model." */
    int text;
    int64_t n, S, D, I, L, P, heads, hd, K, Pp; /* K, Pp: patch row size, patches */
    float eps;
    dlv_op_act act;
    float *lnbuf;         /* [2 D] widened LayerNorm weight and bias */
} cctx;

static dlv_status get_w(const cctx *c, const char *name, uint64_t n_expected, wref *out)
{
    memset(out, 0, sizeof *out);
    float *grad = NULL;
    const dlv_st_tensor *t = dlv_wview_get(c->wv, part_of(name), name, &grad);
    if (!t) return dlv_error(DLV_E_FORMAT, "%s: CLIP weight '%s' is missing", c->label, name);
    if (t->n_elements != n_expected)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': %llu elements, expected %llu",
                         c->label, name, (unsigned long long)t->n_elements,
                         (unsigned long long)n_expected);
    out->data = t->data;
    out->dtype = t->dtype;
    out->grad = grad;
    out->t = t;
    return DLV_OK;
}

/* A name under the tower's prefix: "<pre><rest>" (rest may hold %lld). */
static dlv_status tname(const cctx *c, char *buf, size_t cap, const char *rest, int64_t layer,
                        const char *which)
{
    int k = layer >= 0 ? snprintf(buf, cap, "%sencoder.layers.%lld.%s", c->pre,
                                  (long long)layer, which)
                       : snprintf(buf, cap, "%s%s", c->pre, rest);
    if (k < 0 || (size_t)k >= cap)
        return dlv_error(DLV_E_INVALID_ARG, "%s: weight name too long", c->label);
    return DLV_OK;
}

/* A LayerNorm's weight and bias (base "…layer_norm1"), widened to f32 into
 * c->lnbuf (exact), with their gradient buffers. */
static dlv_status ln_get(cctx *c, int64_t layer, const char *base, const float **w,
                         const float **b, float **gw, float **gb)
{
    char nw[DLV_WEIGHT_NAME_MAX + 32], nb[DLV_WEIGHT_NAME_MAX + 32], tmp[64];
    snprintf(tmp, sizeof tmp, "%s.weight", base);
    dlv_status st = tname(c, nw, sizeof nw, tmp, layer, tmp);
    snprintf(tmp, sizeof tmp, "%s.bias", base);
    if (!st) st = tname(c, nb, sizeof nb, tmp, layer, tmp);
    wref rw, rb;
    if (!st) st = get_w(c, nw, (uint64_t)c->D, &rw);
    if (!st) st = get_w(c, nb, (uint64_t)c->D, &rb);
    if (!st) st = dlv_st_read_f32(rw.t, 0, (uint64_t)c->D, c->lnbuf);
    if (!st) st = dlv_st_read_f32(rb.t, 0, (uint64_t)c->D, c->lnbuf + c->D);
    if (st) return st;
    *w = c->lnbuf;
    *b = c->lnbuf + c->D;
    if (gw) *gw = rw.grad;
    if (gb) *gb = rb.grad;
    return DLV_OK;
}

static dlv_status layer_lin(const cctx *c, int64_t l, const char *which, int64_t n_in,
                            int64_t n_out, wref *w, wref *b)
{
    char nw[DLV_WEIGHT_NAME_MAX + 32], tmp[64];
    snprintf(tmp, sizeof tmp, "%s.weight", which);
    dlv_status st = tname(c, nw, sizeof nw, tmp, l, tmp);
    if (!st) st = get_w(c, nw, (uint64_t)(n_in * n_out), w);
    snprintf(tmp, sizeof tmp, "%s.bias", which);
    if (!st) st = tname(c, nw, sizeof nw, tmp, l, tmp);
    if (!st) st = get_w(c, nw, (uint64_t)n_out, b);
    return st;
}

/* y[rows, n_out] = x . W^T (+ b). */
static dlv_status linear(const cctx *c, float *y, const float *x, int64_t rows, int64_t n_in,
                         int64_t n_out, const wref *w, const wref *b)
{
    dlv_matmul_args a = {
        .struct_size = sizeof a, .trans_a = DLV_NO_TRANS, .trans_b = DLV_TRANS,
        .m = rows, .n = n_out, .k = n_in, .alpha = 1.0f, .beta = 0.0f,
        .a = x, .a_dtype = DLV_DTYPE_F32, .lda = n_in, .b = w->data, .b_dtype = w->dtype,
        .ldb = n_in, .c = y, .ldc = n_out,
    };
    dlv_status st = dlv_matmul(c->be, &a);
    if (!st && b && b->data) st = dlv_add_bias(c->be, y, b->data, b->dtype, rows, n_out);
    return st;
}

/* Backward of y = x W^T + b: dW += dy^T x, db += colsum dy (if trained),
 * dx = dy W + beta * dx (if dx). */
static dlv_status linear_bw(const cctx *c, float *dx, float beta, const float *dy,
                            const float *x, int64_t rows, int64_t n_in, int64_t n_out,
                            const wref *w, const wref *b)
{
    dlv_status st = DLV_OK;
    if (w->grad) {
        dlv_matmul_args a = {
            .struct_size = sizeof a, .trans_a = DLV_TRANS, .trans_b = DLV_NO_TRANS,
            .m = n_out, .n = n_in, .k = rows, .alpha = 1.0f, .beta = 1.0f,
            .a = dy, .a_dtype = DLV_DTYPE_F32, .lda = n_out, .b = x, .b_dtype = DLV_DTYPE_F32,
            .ldb = n_in, .c = w->grad, .ldc = n_in,
        };
        st = dlv_matmul(c->be, &a);
    }
    if (!st && b && b->data && b->grad) st = dlv_bias_backward(c->be, b->grad, dy, rows, n_out);
    if (!st && dx) {
        dlv_matmul_args a = {
            .struct_size = sizeof a, .trans_a = DLV_NO_TRANS, .trans_b = DLV_NO_TRANS,
            .m = rows, .n = n_in, .k = n_out, .alpha = 1.0f, .beta = beta,
            .a = dy, .a_dtype = DLV_DTYPE_F32, .lda = n_out, .b = w->data, .b_dtype = w->dtype,
            .ldb = n_in, .c = dx, .ldc = n_in,
        };
        st = dlv_matmul(c->be, &a);
    }
    return st;
}

static dlv_status ctx_init(cctx *c, const char *fn, const dlv_model *m, dlv_backend *be,
                           const dlv_wview *wv, int text, int64_t n, int64_t S)
{
    const dlv_clip_config *cfg = dlv_model_clip(m);
    if (!cfg) return dlv_error(DLV_E_INVALID_ARG, "%s: %s is not a CLIPModel", fn,
                               dlv_model_dir(m));
    const dlv_backend *mbe = dlv_model_backend(m);
    if (!(dlv_backend_caps(be) & DLV_BACKEND_CAP_HOST_MEMORY) ||
        (mbe && !(dlv_backend_caps(mbe) & DLV_BACKEND_CAP_HOST_MEMORY)))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: the CLIP forward pass needs host-addressable "
                         "memory (the CPU backend) in this version", fn);
    c->cfg = cfg;
    c->frozen = dlv_wview_frozen(dlv_model_weights(m));
    c->wv = wv ? wv : &c->frozen;
    if (c->wv->weights != dlv_model_weights(m))
        return dlv_error(DLV_E_INVALID_ARG, "%s: the weight view is not of model '%s'", fn,
                         dlv_model_dir(m));
    c->be = be;
    c->label = dlv_model_dir(m);
    c->text = text;
    c->n = n;
    c->S = S;
    c->P = cfg->projection_dim;
    if (text) {
        c->pre = "text_model.";
        c->D = cfg->text.hidden_size;
        c->I = cfg->text.intermediate_size;
        c->L = cfg->text.num_hidden_layers;
        c->heads = cfg->text.num_attention_heads;
        c->eps = (float)cfg->text.layer_norm_eps;
        c->act = (dlv_op_act)cfg->text.hidden_act;
    } else {
        const dlv_vision_config *v = &cfg->vision;
        c->pre = "vision_model.";
        c->D = v->hidden_size;
        c->I = v->intermediate_size;
        c->L = v->num_hidden_layers;
        c->heads = v->num_attention_heads;
        c->eps = (float)v->layer_norm_eps;
        c->act = (dlv_op_act)v->hidden_act;
        c->K = v->num_channels * v->patch_size * v->patch_size;
        int64_t side = v->image_size / v->patch_size;
        c->Pp = side * side;
    }
    c->hd = c->D / c->heads;
    c->lnbuf = malloc(2 * (size_t)c->D * sizeof(float));
    if (!c->lnbuf) return dlv_error_nomem("layer norm parameters", 2 * (size_t)c->D * 4);
    return DLV_OK;
}

/* ---- Tape ------------------------------------------------------------------- */

void dlv_clip_tape_free(dlv_clip_tape *t)
{
    if (!t) return;
    dlv_buffer_free(&t->buf);
    free(t->layers);
    free(t->ids);
    free(t->mask);
    free(t->pool);
    free(t);
}

/* One buffer: per-layer sets (all L when saving, else one), xL, scratch. */
static dlv_status tape_alloc(const cctx *c, dlv_clip_tape *t, int save, float **g, float **o)
{
    size_t R = (size_t)(c->n * c->S), D = (size_t)c->D, I = (size_t)c->I, n = (size_t)c->n;
    size_t sets = save ? (size_t)c->L : 1;
    size_t set_f = R * (8 * D + I);
    size_t sizes[8] = {
        c->text ? 0 : n * (size_t)c->Pp * (size_t)c->K, /* patches */
        c->text ? 0 : R * D,                            /* x0 */
        sets * set_f, save ? R * D : 0,                 /* sets, xL */
        R * I, R * D,                                   /* g, o */
        n * D, n * D,                                   /* pooled, pooled_ln */
    };
    size_t total = 0;
    for (int i = 0; i < 8; i++) {
        sizes[i] = (sizes[i] + 15) / 16 * 16;
        total += sizes[i];
    }
    t->layers = calloc(sets, sizeof *t->layers);
    if (!t->layers) return dlv_error_nomem("CLIP tape", sets * sizeof *t->layers);
    dlv_status st = dlv_buffer_alloc(c->be, total * sizeof(float), &t->buf);
    if (st) return dlv_error_prefix(st, "CLIP %s tower activations", c->text ? "text" : "vision");
    float *p = dlv_buffer_ptr(&t->buf);
    t->patches = p; p += sizes[0];
    t->x0 = p; p += sizes[1];
    float *setp = p; p += sizes[2];
    t->xL = save ? p : NULL; p += sizes[3];
    *g = p; p += sizes[4];
    *o = p; p += sizes[5];
    t->pooled = p; p += sizes[6];
    t->pooled_ln = p;
    for (size_t s = 0; s < sets; s++) {
        float *q = setp + s * set_f;
        float **parts[8] = {&t->layers[s].x_in, &t->layers[s].h1, &t->layers[s].q,
                            &t->layers[s].k, &t->layers[s].v, &t->layers[s].a,
                            &t->layers[s].x2, &t->layers[s].h2};
        for (int j = 0; j < 8; j++) {
            *parts[j] = q;
            q += R * D;
        }
        t->layers[s].f = q;
    }
    if (!save) t->xL = t->layers[0].x_in;
    return DLV_OK;
}

/* ---- Forward ---------------------------------------------------------------- */

static dlv_status text_embed(cctx *c, dlv_clip_tape *t, float *x)
{
    const dlv_clip_text_config *tc = &c->cfg->text;
    wref tok, pos;
    dlv_status st = get_w(c, "text_model.embeddings.token_embedding.weight",
                          (uint64_t)(tc->vocab_size * c->D), &tok);
    if (!st) st = get_w(c, "text_model.embeddings.position_embedding.weight",
                        (uint64_t)(tc->max_position_embeddings * c->D), &pos);
    if (!st) st = dlv_embedding(c->be, x, tok.data, tok.dtype, t->ids, c->n * c->S,
                                tc->vocab_size, c->D);
    /* position_ids = arange(S): the first S rows of the table. */
    for (int64_t i = 0; i < c->n && !st; i++)
        st = dlv_add(c->be, x + i * c->S * c->D, x + i * c->S * c->D, pos.data, pos.dtype, 0,
                     c->S, c->D);
    return st;
}

static dlv_status vision_embed(cctx *c, dlv_clip_tape *t, const float *pixels, float *x)
{
    const dlv_vision_config *v = &c->cfg->vision;
    int64_t D = c->D, S = c->S;
    wref pw, pos, cls;
    dlv_status st = get_w(c, "vision_model.embeddings.patch_embedding.weight",
                          (uint64_t)(D * c->K), &pw);
    if (!st) st = get_w(c, "vision_model.embeddings.position_embedding.weight",
                        (uint64_t)(S * D), &pos);
    if (!st) st = get_w(c, "vision_model.embeddings.class_embedding", (uint64_t)D, &cls);
    int64_t img_px = v->num_channels * v->image_size * v->image_size;
    const int32_t id0 = 0;
    for (int64_t i = 0; i < c->n && !st; i++) {
        float *xi = t->x0 + i * S * D;
        st = dlv_im2col_patches(c->be, t->patches + i * c->Pp * c->K, pixels + i * img_px,
                                v->num_channels, v->image_size, v->image_size, v->patch_size);
        if (!st) st = dlv_embedding(c->be, xi, cls.data, cls.dtype, &id0, 1, 1, D);
        if (!st) st = linear(c, xi + D, t->patches + i * c->Pp * c->K, c->Pp, c->K, D, &pw, NULL);
        if (!st) st = dlv_add(c->be, xi, xi, pos.data, pos.dtype, 0, S, D);
    }
    const float *lw, *lb;
    if (!st) st = ln_get(c, -1, "pre_layrnorm", &lw, &lb, NULL, NULL);
    if (!st) st = dlv_layernorm(c->be, x, t->x0, lw, lb, DLV_DTYPE_F32, c->n * S, D, c->eps);
    return st;
}

static dlv_attention_args attn_args(const cctx *c, const dlv_clip_tape *t,
                                    const dlv_clip_layer_acts *A)
{
    dlv_attention_args a = {
        .struct_size = sizeof a, .out = A->a, .q = A->q, .k = A->k, .v = A->v,
        .key_mask = c->text ? t->mask : NULL, .batch = c->n, .n_q = c->S, .n_kv = c->S,
        .n_heads = c->heads, .n_kv_heads = c->heads, .head_dim = c->hd,
        .scale = (float)(1.0 / sqrt((double)c->hd)), .causal = c->text,
    };
    return a;
}

/* Layer l from A->x_in into A's internals and x_out (may be A->x_in). */
static dlv_status layer_fw(cctx *c, dlv_clip_tape *t, int64_t l, dlv_clip_layer_acts *A,
                           float *g, float *o, float *x_out)
{
    int64_t R = c->n * c->S, D = c->D, I = c->I;
    const float *lw, *lb;
    wref w, b;
    dlv_status st = ln_get(c, l, "layer_norm1", &lw, &lb, NULL, NULL);
    if (!st) st = dlv_layernorm(c->be, A->h1, A->x_in, lw, lb, DLV_DTYPE_F32, R, D, c->eps);
    static const char *const qkv[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    float *outs[3] = {A->q, A->k, A->v};
    for (int j = 0; j < 3 && !st; j++) {
        st = layer_lin(c, l, qkv[j], D, D, &w, &b);
        if (!st) st = linear(c, outs[j], A->h1, R, D, D, &w, &b);
    }
    if (st) return st;
    dlv_attention_args a = attn_args(c, t, A);
    st = dlv_attention(c->be, &a);
    if (!st) st = layer_lin(c, l, "self_attn.out_proj", D, D, &w, &b);
    if (!st) st = linear(c, o, A->a, R, D, D, &w, &b);
    if (!st) st = dlv_add(c->be, A->x2, A->x_in, o, DLV_DTYPE_F32, 0, R, D);
    if (!st) st = ln_get(c, l, "layer_norm2", &lw, &lb, NULL, NULL);
    if (!st) st = dlv_layernorm(c->be, A->h2, A->x2, lw, lb, DLV_DTYPE_F32, R, D, c->eps);
    if (!st) st = layer_lin(c, l, "mlp.fc1", D, I, &w, &b);
    if (!st) st = linear(c, A->f, A->h2, R, D, I, &w, &b);
    if (!st) st = dlv_activation(c->be, c->act, g, A->f, R * I);
    if (!st) st = layer_lin(c, l, "mlp.fc2", I, D, &w, &b);
    if (!st) st = linear(c, o, g, R, I, D, &w, &b);
    if (!st) st = dlv_add(c->be, x_out, A->x2, o, DLV_DTYPE_F32, 0, R, D);
    return st;
}

static const char *final_norm(const cctx *c)
{
    return c->text ? "final_layer_norm" : "post_layernorm";
}

static const char *proj_name(const cctx *c)
{
    return c->text ? "text_projection.weight" : "visual_projection.weight";
}

static dlv_status tower_forward(cctx *c, dlv_clip_tape *t, int save, const float *pixels,
                                float *embeds)
{
    float *g = NULL, *o = NULL;
    dlv_status st = tape_alloc(c, t, save, &g, &o);
    if (st) return st;
    st = c->text ? text_embed(c, t, t->layers[0].x_in)
                 : vision_embed(c, t, pixels, t->layers[0].x_in);
    if (st) return dlv_error_prefix(st, "%s embeddings", c->text ? "text" : "vision");
    for (int64_t l = 0; l < c->L; l++) {
        dlv_clip_layer_acts *A = &t->layers[save ? l : 0];
        float *x_out = !save ? A->x_in : l + 1 < c->L ? t->layers[l + 1].x_in : t->xL;
        st = layer_fw(c, t, l, A, g, o, x_out);
        if (st) return dlv_error_prefix(st, "%s layer %lld", c->text ? "text" : "vision",
                                        (long long)l);
    }
    size_t D = (size_t)c->D;
    for (int64_t i = 0; i < c->n; i++)
        memcpy(t->pooled + (size_t)i * D, t->xL + ((size_t)(i * c->S + t->pool[i])) * D,
               D * sizeof(float));
    const float *lw, *lb;
    wref pw;
    st = ln_get(c, -1, final_norm(c), &lw, &lb, NULL, NULL);
    if (!st) st = dlv_layernorm(c->be, t->pooled_ln, t->pooled, lw, lb, DLV_DTYPE_F32, c->n,
                                c->D, c->eps);
    if (!st) st = get_w(c, proj_name(c), (uint64_t)(c->P * c->D), &pw);
    if (!st) st = linear(c, embeds, t->pooled_ln, c->n, c->D, c->P, &pw, NULL);
    if (st) return dlv_error_prefix(st, "%s projection", c->text ? "text" : "vision");
    return DLV_OK;
}

static dlv_status new_tape(const cctx *c, dlv_clip_tape **out)
{
    dlv_clip_tape *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("CLIP tape", sizeof *t);
    t->text = c->text;
    t->n = c->n;
    t->S = c->S;
    t->D = c->D;
    t->I = c->I;
    t->L = c->L;
    t->P = c->P;
    t->pool = calloc((size_t)(c->n > 0 ? c->n : 1), sizeof *t->pool);
    if (!t->pool) {
        free(t);
        return dlv_error_nomem("CLIP tape", (size_t)c->n * sizeof *t->pool);
    }
    *out = t;
    return DLV_OK;
}

static dlv_status finish(cctx *c, dlv_status st, dlv_clip_tape *t, dlv_clip_tape **tape)
{
    free(c->lnbuf);
    c->lnbuf = NULL;
    if (st || !tape) {
        dlv_clip_tape_free(t);
        return st;
    }
    *tape = t;
    return DLV_OK;
}

dlv_status dlv_clip_image_forward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                  const float *pixels, int64_t n, float *embeds,
                                  dlv_clip_tape **tape)
{
    static const char fn[] = "dlv_clip_image_forward";
    if (tape) *tape = NULL;
    if (!m || !be || n < 1 || !pixels || !embeds)
        return dlv_error(DLV_E_INVALID_ARG, "%s: NULL argument or n < 1", fn);
    cctx c = {0};
    const dlv_clip_config *cfg = dlv_model_clip(m);
    int64_t S = cfg ? (cfg->vision.image_size / cfg->vision.patch_size) *
                              (cfg->vision.image_size / cfg->vision.patch_size) + 1
                    : 0;
    dlv_status st = ctx_init(&c, fn, m, be, wv, 0, n, S);
    dlv_clip_tape *t = NULL;
    if (!st) st = new_tape(&c, &t);
    if (!st) st = tower_forward(&c, t, tape != NULL, pixels, embeds);
    return finish(&c, st, t, tape);
}

int64_t dlv_clip_pool_position(const dlv_clip_text_config *cfg, const int32_t *ids, int64_t n)
{
    int64_t at = 0;
    if (cfg->eos_token_id == 2) {
        /* torch.argmax: the first position of the maximum. */
        for (int64_t i = 1; i < n; i++)
            if (ids[i] > ids[at]) at = i;
        return at;
    }
    for (int64_t i = 0; i < n; i++)
        if (ids[i] == cfg->eos_token_id) return i;
    return 0;
}

dlv_status dlv_clip_text_forward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                 const int32_t *const *ids, const int64_t *lens, int64_t n,
                                 float *embeds, dlv_clip_tape **tape)
{
    static const char fn[] = "dlv_clip_text_forward";
    if (tape) *tape = NULL;
    if (!m || !be || n < 1 || !ids || !lens || !embeds)
        return dlv_error(DLV_E_INVALID_ARG, "%s: NULL argument or n < 1", fn);
    const dlv_clip_config *cfg = dlv_model_clip(m);
    int64_t S = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!ids[i] || lens[i] < 1 || (cfg && lens[i] > cfg->text.max_position_embeddings))
            return dlv_error(DLV_E_INVALID_ARG, "%s: text %lld has %lld ids (1..%lld allowed)",
                             fn, (long long)i, (long long)lens[i],
                             (long long)(cfg ? cfg->text.max_position_embeddings : 0));
        if (lens[i] > S) S = lens[i];
    }
    cctx c = {0};
    dlv_status st = ctx_init(&c, fn, m, be, wv, 1, n, S);
    dlv_clip_tape *t = NULL;
    if (!st) st = new_tape(&c, &t);
    if (!st) {
        size_t R = (size_t)(n * S);
        t->ids = calloc(R, sizeof *t->ids);
        t->mask = calloc(R, sizeof *t->mask);
        if (!t->ids || !t->mask) st = dlv_error_nomem("text ids", R * 5);
    }
    for (int64_t i = 0; i < n && !st; i++) {
        memcpy(t->ids + i * S, ids[i], (size_t)lens[i] * sizeof(int32_t));
        memset(t->mask + i * S, 1, (size_t)lens[i]);
        t->pool[i] = dlv_clip_pool_position(&cfg->text, ids[i], lens[i]);
    }
    if (!st) st = tower_forward(&c, t, tape != NULL, NULL, embeds);
    return finish(&c, st, t, tape);
}

/* ---- Backward ---------------------------------------------------------------- */

typedef struct grads {
    dlv_buffer buf;
    float *dx, *dh, *da, *dq, *dk, *dv, *dI1, *dI2, *dpl, *dp;
} grads;

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

static dlv_status layer_bw(cctx *c, dlv_clip_tape *t, int64_t l, grads *gr, float *g)
{
    int64_t R = c->n * c->S, D = c->D, I = c->I;
    dlv_clip_layer_acts *A = &t->layers[l];
    const float *lw, *lb;
    float *gw, *gb;
    wref w, b;
    dlv_status st = dlv_activation(c->be, c->act, g, A->f, R * I);
    if (!st) st = layer_lin(c, l, "mlp.fc2", I, D, &w, &b);
    if (!st) st = linear_bw(c, gr->dI1, 0.0f, gr->dx, g, R, I, D, &w, &b);
    if (!st) zero(gr->dI2, (size_t)(R * I));
    if (!st) st = dlv_activation_backward(c->be, c->act, gr->dI2, gr->dI1, A->f, R * I);
    if (!st) st = layer_lin(c, l, "mlp.fc1", D, I, &w, &b);
    if (!st) st = linear_bw(c, gr->dh, 0.0f, gr->dI2, A->h2, R, D, I, &w, &b);
    if (!st) st = ln_get(c, l, "layer_norm2", &lw, &lb, &gw, &gb);
    if (!st) st = dlv_layernorm_backward(c->be, gr->dx, gw, gb, gr->dh, A->x2, lw,
                                         DLV_DTYPE_F32, R, D, c->eps);
    if (!st) st = layer_lin(c, l, "self_attn.out_proj", D, D, &w, &b);
    if (!st) st = linear_bw(c, gr->da, 0.0f, gr->dx, A->a, R, D, D, &w, &b);
    if (!st) {
        size_t nsd = (size_t)(R * D);
        zero(gr->dq, nsd);
        zero(gr->dk, nsd);
        zero(gr->dv, nsd);
        dlv_attention_args f = attn_args(c, t, A);
        dlv_attention_bw_args a = {
            .struct_size = sizeof a, .dq = gr->dq, .dk = gr->dk, .dv = gr->dv, .dout = gr->da,
            .q = A->q, .k = A->k, .v = A->v, .key_mask = f.key_mask, .batch = f.batch,
            .n_q = f.n_q, .n_kv = f.n_kv, .n_heads = f.n_heads, .n_kv_heads = f.n_kv_heads,
            .head_dim = f.head_dim, .scale = f.scale, .causal = f.causal,
        };
        st = dlv_attention_backward(c->be, &a);
    }
    static const char *const qkv[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    const float *dqkv[3] = {gr->dq, gr->dk, gr->dv};
    for (int j = 0; j < 3 && !st; j++) {
        st = layer_lin(c, l, qkv[j], D, D, &w, &b);
        if (!st) st = linear_bw(c, gr->dh, j == 0 ? 0.0f : 1.0f, dqkv[j], A->h1, R, D, D, &w, &b);
    }
    if (!st) st = ln_get(c, l, "layer_norm1", &lw, &lb, &gw, &gb);
    if (!st) st = dlv_layernorm_backward(c->be, gr->dx, gw, gb, gr->dh, A->x_in, lw,
                                         DLV_DTYPE_F32, R, D, c->eps);
    return st;
}

static dlv_status embed_bw(cctx *c, dlv_clip_tape *t, grads *gr)
{
    int64_t D = c->D, S = c->S, R = c->n * S;
    dlv_status st = DLV_OK;
    if (c->text) {
        const dlv_clip_text_config *tc = &c->cfg->text;
        wref tok, pos;
        st = get_w(c, "text_model.embeddings.token_embedding.weight",
                   (uint64_t)(tc->vocab_size * D), &tok);
        if (!st) st = get_w(c, "text_model.embeddings.position_embedding.weight",
                            (uint64_t)(tc->max_position_embeddings * D), &pos);
        /* Padding rows carry no gradient (nothing reads them). */
        if (!st && tok.grad)
            st = dlv_embedding_backward(c->be, tok.grad, gr->dx, t->ids, R, tc->vocab_size, D);
        for (int64_t i = 0; i < c->n && !st && pos.grad; i++)
            st = dlv_add(c->be, pos.grad, pos.grad, gr->dx + i * S * D, DLV_DTYPE_F32, 0, S, D);
        return st;
    }
    const float *lw, *lb;
    float *gw, *gb;
    st = ln_get(c, -1, "pre_layrnorm", &lw, &lb, &gw, &gb);
    if (!st) {
        zero(gr->dh, (size_t)(R * D));
        st = dlv_layernorm_backward(c->be, gr->dh, gw, gb, gr->dx, t->x0, lw, DLV_DTYPE_F32, R,
                                    D, c->eps);
    }
    wref pw, pos, cls;
    if (!st) st = get_w(c, "vision_model.embeddings.patch_embedding.weight",
                        (uint64_t)(D * c->K), &pw);
    if (!st) st = get_w(c, "vision_model.embeddings.position_embedding.weight",
                        (uint64_t)(S * D), &pos);
    if (!st) st = get_w(c, "vision_model.embeddings.class_embedding", (uint64_t)D, &cls);
    for (int64_t i = 0; i < c->n && !st; i++) {
        const float *di = gr->dh + i * S * D;
        if (pos.grad) st = dlv_add(c->be, pos.grad, pos.grad, di, DLV_DTYPE_F32, 0, S, D);
        if (!st && cls.grad) st = dlv_add(c->be, cls.grad, cls.grad, di, DLV_DTYPE_F32, 0, 1, D);
        if (!st)
            st = linear_bw(c, NULL, 0.0f, di + D, t->patches + i * c->Pp * c->K, c->Pp, c->K, D,
                           &pw, NULL);
    }
    return st;
}

dlv_status dlv_clip_tower_backward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                   dlv_clip_tape *t, const float *dembeds)
{
    static const char fn[] = "dlv_clip_tower_backward";
    if (!m || !be || !wv || !t || !dembeds)
        return dlv_error(DLV_E_INVALID_ARG, "%s: NULL argument", fn);
    cctx c = {0};
    dlv_status st = ctx_init(&c, fn, m, be, wv, t->text, t->n, t->S);
    size_t R = (size_t)(t->n * t->S), D = (size_t)c.D, I = (size_t)c.I, n = (size_t)t->n;
    grads gr = {0};
    float *g = NULL;
    if (!st) {
        size_t sizes[11] = {R * D, R * D, R * D, R * D, R * D, R * D, R * I, R * I,
                            n * D, n * D, R * I};
        size_t total = 0;
        for (int i = 0; i < 11; i++) total += (sizes[i] + 15) / 16 * 16;
        st = dlv_buffer_alloc(be, total * sizeof(float), &gr.buf);
        if (!st) {
            float *p = dlv_buffer_ptr(&gr.buf);
            float **dst[11] = {&gr.dx, &gr.dh, &gr.da, &gr.dq, &gr.dk, &gr.dv, &gr.dI1, &gr.dI2,
                               &gr.dpl, &gr.dp, &g};
            for (int i = 0; i < 11; i++) {
                *dst[i] = p;
                p += (sizes[i] + 15) / 16 * 16;
            }
        }
    }
    /* projection: dpl = dE W; dW += dE^T pooled_ln */
    wref pw;
    if (!st) st = get_w(&c, proj_name(&c), (uint64_t)(c.P * c.D), &pw);
    if (!st) st = linear_bw(&c, gr.dpl, 0.0f, dembeds, t->pooled_ln, c.n, c.D, c.P, &pw, NULL);
    const float *lw, *lb;
    float *gw, *gb;
    if (!st) st = ln_get(&c, -1, final_norm(&c), &lw, &lb, &gw, &gb);
    if (!st) {
        zero(gr.dp, n * D);
        st = dlv_layernorm_backward(be, gr.dp, gw, gb, gr.dpl, t->pooled, lw, DLV_DTYPE_F32,
                                    c.n, c.D, c.eps);
    }
    if (!st) {
        zero(gr.dx, R * D);
        for (size_t i = 0; i < n; i++)
            memcpy(gr.dx + ((size_t)i * (size_t)t->S + (size_t)t->pool[i]) * D, gr.dp + i * D,
                   D * sizeof(float));
    }
    if (st) st = dlv_error_prefix(st, "%s projection backward", c.text ? "text" : "vision");
    for (int64_t l = c.L - 1; l >= 0 && !st; l--) {
        st = layer_bw(&c, t, l, &gr, g);
        if (st) st = dlv_error_prefix(st, "%s layer %lld backward", c.text ? "text" : "vision",
                                      (long long)l);
    }
    if (!st) {
        st = embed_bw(&c, t, &gr);
        if (st) st = dlv_error_prefix(st, "%s embeddings backward", c.text ? "text" : "vision");
    }
    dlv_buffer_free(&gr.buf);
    free(c.lnbuf);
    return st;
}
