/* LoRA adapters: PEFT adapter_config.json + adapter_model.safetensors. */
#include "model/lora.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "model/model.h"

static const char *const module_names[DLV_LORA_N_MODULES] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

const char *dlv_lora_module_name(dlv_lora_module m)
{
    return (unsigned)m < DLV_LORA_N_MODULES ? module_names[m] : "?";
}

const char *dlv_lora_module_parent(dlv_lora_module m)
{
    return m <= DLV_LORA_O ? "self_attn" : "mlp";
}

void dlv_lora_module_dims(const dlv_text_config *t, dlv_lora_module m, int64_t *out, int64_t *in)
{
    const int64_t h = t->hidden_size, qd = t->num_attention_heads * t->head_dim;
    const int64_t kvd = t->num_key_value_heads * t->head_dim, im = t->intermediate_size;
    switch (m) {
    case DLV_LORA_Q: *out = qd; *in = h; break;
    case DLV_LORA_K:
    case DLV_LORA_V: *out = kvd; *in = h; break;
    case DLV_LORA_O: *out = h; *in = qd; break;
    case DLV_LORA_GATE:
    case DLV_LORA_UP: *out = im; *in = h; break;
    default: *out = h; *in = im; break;
    }
}

dlv_lora dlv_lora_view(const dlv_lora *l, float *params)
{
    dlv_lora v = *l;
    v.params = params;
    v.borrowed = 1;
    return v;
}

void dlv_lora_free(dlv_lora *l)
{
    if (!l) return;
    if (l->borrowed) {
        memset(l, 0, sizeof *l);
        return;
    }
    free(l->params);
    free(l->off_a);
    free(l->off_b);
    memset(l, 0, sizeof *l);
}

dlv_status dlv_lora_create(const dlv_text_config *t, int64_t rank, double alpha, int use_rslora,
                           unsigned targets, dlv_lora *out)
{
    memset(out, 0, sizeof *out);
    if (rank < 1 || rank > 65536)
        return dlv_error(DLV_E_INVALID_ARG, "LoRA: rank %lld must be in [1, 65536]",
                         (long long)rank);
    if (!(alpha > 0) || !isfinite(alpha))
        return dlv_error(DLV_E_INVALID_ARG, "LoRA: lora_alpha %g must be > 0", alpha);
    if (targets == 0 || (targets & ~DLV_LORA_ALL))
        return dlv_error(DLV_E_INVALID_ARG, "LoRA: no (or an unknown) target module");
    out->n_layers = t->num_hidden_layers;
    out->rank = rank;
    out->alpha = alpha;
    out->use_rslora = use_rslora;
    out->scale = (float)(use_rslora ? alpha / sqrt((double)rank) : alpha / (double)rank);
    out->targets = targets;
    const size_t slots = (size_t)out->n_layers * DLV_LORA_N_MODULES;
    out->off_a = malloc(slots * sizeof *out->off_a);
    out->off_b = malloc(slots * sizeof *out->off_b);
    if (!out->off_a || !out->off_b) {
        dlv_lora_free(out);
        return dlv_error_nomem("LoRA offsets", 2 * slots * sizeof(size_t));
    }
    size_t n = 0;
    for (int64_t l = 0; l < out->n_layers; l++)
        for (int m = 0; m < DLV_LORA_N_MODULES; m++) {
            size_t slot = (size_t)l * DLV_LORA_N_MODULES + (size_t)m;
            if (!(targets & (1u << m))) {
                out->off_a[slot] = out->off_b[slot] = DLV_LORA_ABSENT;
                continue;
            }
            int64_t o, i;
            dlv_lora_module_dims(t, (dlv_lora_module)m, &o, &i);
            out->off_a[slot] = n;
            n += (size_t)rank * (size_t)i;
            out->off_b[slot] = n;
            n += (size_t)o * (size_t)rank;
        }
    out->n_params = n;
    out->params = calloc(n ? n : 1, sizeof *out->params);
    if (!out->params) {
        dlv_lora_free(out);
        return dlv_error_nomem("LoRA weights", n * sizeof(float));
    }
    return DLV_OK;
}

float *dlv_lora_a(const dlv_lora *l, int64_t layer, dlv_lora_module m)
{
    if (!l || layer < 0 || layer >= l->n_layers || (unsigned)m >= DLV_LORA_N_MODULES)
        return NULL;
    size_t off = l->off_a[(size_t)layer * DLV_LORA_N_MODULES + (size_t)m];
    return off == DLV_LORA_ABSENT ? NULL : l->params + off;
}

float *dlv_lora_b(const dlv_lora *l, int64_t layer, dlv_lora_module m)
{
    if (!l || layer < 0 || layer >= l->n_layers || (unsigned)m >= DLV_LORA_N_MODULES)
        return NULL;
    size_t off = l->off_b[(size_t)layer * DLV_LORA_N_MODULES + (size_t)m];
    return off == DLV_LORA_ABSENT ? NULL : l->params + off;
}

/* params + off floats, formed as an integer: params may be a device
 * address, which is never dereferenced here. */
static float *at(const float *params, size_t off)
{
    return (float *)((uintptr_t)params + off * sizeof(float));
}

void dlv_lora_pairs(const dlv_lora *l, const float *params, dlv_lora_pair *pairs)
{
    for (size_t i = 0; i < (size_t)l->n_layers * DLV_LORA_N_MODULES; i++) {
        const int on = l->off_a[i] != DLV_LORA_ABSENT;
        pairs[i] = (dlv_lora_pair){on ? at(params, l->off_a[i]) : NULL,
                                   on ? at(params, l->off_b[i]) : NULL, l->rank, l->scale};
    }
}

void dlv_lora_pair_grads(const dlv_lora *l, float *grads, dlv_lora_pair_grad *pairs)
{
    for (size_t i = 0; i < (size_t)l->n_layers * DLV_LORA_N_MODULES; i++) {
        const int on = l->off_a[i] != DLV_LORA_ABSENT;
        pairs[i] = (dlv_lora_pair_grad){on ? at(grads, l->off_a[i]) : NULL,
                                        on ? at(grads, l->off_b[i]) : NULL};
    }
}

/* ---- adapter_config.json ---------------------------------------------- */

typedef struct lora_cfg {
    int64_t r;
    double alpha, dropout;
    int use_rslora;
    unsigned targets;
    char base_model[512];
} lora_cfg;

/* A field that must be absent, null, false or empty for PEFT to apply the
 * adapter as we do. */
static dlv_status require_off(const json_t *root, const char *key, const char *path)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v) || json_is_false(v)) return DLV_OK;
    if ((json_is_object(v) && json_object_size(v) == 0) ||
        (json_is_array(v) && json_array_size(v) == 0))
        return DLV_OK;
    return dlv_error(DLV_E_UNSUPPORTED, "%s: field '%s' is set; libdisclvlm applies plain LoRA "
                     "only (docs/adapter-format.md)", path, key);
}

static dlv_status parse_config(const char *path, lora_cfg *c)
{
    memset(c, 0, sizeof *c);
    json_t *root = NULL;
    dlv_status st = dlv_json_load_object(path, (size_t)16 << 20, &root);
    if (st) return st;
    char buf[64];
    if ((st = dlv_json_str(root, "peft_type", "", path, buf, sizeof buf))) goto out;
    if (strcmp(buf, "LORA") != 0) {
        st = dlv_error(buf[0] ? DLV_E_UNSUPPORTED : DLV_E_FORMAT,
                       "%s: field 'peft_type': '%s' (only \"LORA\" adapters are supported)", path,
                       buf);
        goto out;
    }
    if ((st = dlv_json_int(root, "r", 8, path, &c->r))) goto out;
    if (c->r < 1 || c->r > 65536) {
        st = dlv_error(DLV_E_FORMAT, "%s: field 'r': %lld must be in [1, 65536]", path,
                       (long long)c->r);
        goto out;
    }
    if ((st = dlv_json_real(root, "lora_alpha", 8, path, &c->alpha))) goto out;
    if (!(c->alpha > 0) || !isfinite(c->alpha)) {
        st = dlv_error(DLV_E_FORMAT, "%s: field 'lora_alpha': %g must be > 0", path, c->alpha);
        goto out;
    }
    if ((st = dlv_json_real(root, "lora_dropout", 0, path, &c->dropout))) goto out;
    if ((st = dlv_json_bool(root, "use_rslora", 0, path, &c->use_rslora))) goto out;
    if ((st = dlv_json_str(root, "base_model_name_or_path", "", path, c->base_model,
                           sizeof c->base_model)))
        goto out;
    if ((st = dlv_json_str(root, "bias", "none", path, buf, sizeof buf))) goto out;
    if (strcmp(buf, "none") != 0) {
        st = dlv_error(DLV_E_UNSUPPORTED, "%s: field 'bias': '%s' (only \"none\")", path, buf);
        goto out;
    }
    static const char *const off_fields[] = {"fan_in_fan_out", "use_dora", "rank_pattern",
                                             "alpha_pattern", "modules_to_save",
                                             "layers_to_transform", "exclude_modules",
                                             "layer_replication", "lora_bias"};
    for (size_t i = 0; i < sizeof off_fields / sizeof *off_fields; i++)
        if ((st = require_off(root, off_fields[i], path))) goto out;
    const json_t *tm = json_object_get(root, "target_modules");
    if (!tm || json_is_null(tm)) {
        st = dlv_error(DLV_E_FORMAT, "%s: field 'target_modules' is missing", path);
        goto out;
    }
    if (!json_is_array(tm)) {
        st = dlv_error(DLV_E_UNSUPPORTED, "%s: field 'target_modules': only a list of module "
                       "names is supported (not a regular expression)", path);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(tm); i++) {
        const json_t *v = json_array_get(tm, i);
        const char *name = json_is_string(v) ? json_string_value(v) : NULL;
        int found = -1;
        for (int m = 0; name && m < DLV_LORA_N_MODULES; m++)
            if (!strcmp(name, module_names[m])) found = m;
        if (found < 0) {
            st = dlv_error(DLV_E_UNSUPPORTED, "%s: field 'target_modules[%zu]': '%s' is not one "
                           "of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
                           path, i, name ? name : "(not a string)");
            goto out;
        }
        c->targets |= 1u << found;
    }
    if (!c->targets)
        st = dlv_error(DLV_E_FORMAT, "%s: field 'target_modules' is empty", path);
out:
    json_decref(root);
    return st;
}

/* ---- adapter_model.safetensors ---------------------------------------- */

/* Splits "base_model.model.<path>.lora_{A,B}.weight" of a language-model
 * module into layer, module and A/B. Returns 1 on a language-model LoRA
 * tensor, 0 on a LoRA tensor of another module, -1 on a name that is not a
 * LoRA tensor at all. */
static int parse_name(const char *name, int64_t *layer, int *module, int *is_b)
{
    static const char root[] = "base_model.model.";
    if (strncmp(name, root, sizeof root - 1) != 0) return -1;
    const char *p = name + sizeof root - 1;
    size_t n = strlen(p);
    static const char sa[] = ".lora_A.weight", sb[] = ".lora_B.weight";
    if (n > sizeof sa - 1 && !strcmp(p + n - (sizeof sa - 1), sa)) *is_b = 0;
    else if (n > sizeof sb - 1 && !strcmp(p + n - (sizeof sb - 1), sb)) *is_b = 1;
    else return -1;
    size_t path_len = n - (sizeof sa - 1);
    /* LLaVA (transformers < 4.52), LLaVA and Qwen2-VL (>= 4.52), Qwen2-VL
     * (< 4.52: its language model is the top-level "model"). */
    static const char *const prefixes[] = {"language_model.model.layers.",
                                           "model.language_model.layers.", "model.layers."};
    for (int k = 0; k < 3; k++) {
        size_t pl = strlen(prefixes[k]);
        if (path_len <= pl || strncmp(p, prefixes[k], pl) != 0) continue;
        const char *q = p + pl;
        char *end = NULL;
        long long li = strtoll(q, &end, 10);
        if (end == q || *end != '.' || li < 0) return 0;
        q = end + 1;
        for (int m = 0; m < DLV_LORA_N_MODULES; m++) {
            char want[64];
            snprintf(want, sizeof want, "%s.%s", dlv_lora_module_parent((dlv_lora_module)m),
                     module_names[m]);
            size_t wl = strlen(want);
            if ((size_t)(p + path_len - q) == wl && !strncmp(q, want, wl)) {
                *layer = li;
                *module = m;
                return 1;
            }
        }
        return 0;
    }
    return 0;
}

static dlv_status all_zero(const dlv_st_tensor *t, int *zero)
{
    *zero = 1;
    float buf[256];
    for (uint64_t i = 0; i < t->n_elements && *zero; i += 256) {
        uint64_t n = t->n_elements - i < 256 ? t->n_elements - i : 256;
        dlv_status st = dlv_st_read_f32(t, i, n, buf);
        if (st) return st;
        for (uint64_t j = 0; j < n; j++)
            if (buf[j] != 0.0f) *zero = 0;
    }
    return DLV_OK;
}

static dlv_status read_tensors(const dlv_text_config *t, const char *layers, const char *path,
                               dlv_st_file *f, dlv_lora *l)
{
    const size_t slots = (size_t)l->n_layers * DLV_LORA_N_MODULES;
    unsigned char *seen = calloc(slots * 2, 1);
    if (!seen) return dlv_error_nomem("LoRA bookkeeping", slots * 2);
    dlv_status st = DLV_OK;
    for (size_t i = 0; i < dlv_st_count(f) && !st; i++) {
        const dlv_st_tensor *ten = dlv_st_at(f, i);
        int64_t layer = -1;
        int module = -1, is_b = 0;
        int kind = parse_name(ten->name, &layer, &module, &is_b);
        if (kind < 0) {
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s' is not a PEFT LoRA tensor "
                           "(base_model.model.<module>.lora_A/B.weight)", path, ten->name);
            break;
        }
        if (ten->dtype != DLV_DTYPE_F32 && ten->dtype != DLV_DTYPE_BF16 &&
            ten->dtype != DLV_DTYPE_F16) {
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s': dtype %s (F32, BF16 or F16 expected)",
                           path, ten->name, dlv_dtype_name(ten->dtype));
            break;
        }
        if (kind == 0) {
            /* A module outside the decoder (PEFT also wraps the vision
             * tower's q/k/v_proj for short target names) changes nothing
             * when its B A is zero, as PEFT initialises it (B = 0). */
            int zero = 0;
            if ((st = all_zero(ten, &zero))) break;
            if (!zero) {
                char partner[512];
                size_t nl = strlen(ten->name);
                if (nl < sizeof partner) {
                    memcpy(partner, ten->name, nl + 1);
                    char *ab = partner + nl - strlen("A.weight");
                    *ab = *ab == 'A' ? 'B' : 'A';
                    const dlv_st_tensor *other = dlv_st_find(f, partner);
                    if (other && (st = all_zero(other, &zero))) break;
                }
            }
            if (!zero)
                st = dlv_error(DLV_E_UNSUPPORTED, "%s: tensor '%s': LoRA outside the language "
                               "model's decoder layers is not supported", path, ten->name);
            continue;
        }
        if (layer >= l->n_layers) {
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s': layer %lld, the model has %lld",
                           path, ten->name, (long long)layer, (long long)l->n_layers);
            break;
        }
        if (!(l->targets & (1u << module))) {
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s': %s is not in target_modules", path,
                           ten->name, module_names[module]);
            break;
        }
        int64_t o, in;
        dlv_lora_module_dims(t, (dlv_lora_module)module, &o, &in);
        int64_t rows = is_b ? o : l->rank, cols = is_b ? l->rank : in;
        if (ten->ndim != 2 || ten->shape[0] != rows || ten->shape[1] != cols) {
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s': shape [%lld, %lld] expected (r = %lld)",
                           path, ten->name, (long long)rows, (long long)cols,
                           (long long)l->rank);
            break;
        }
        size_t slot = (size_t)layer * DLV_LORA_N_MODULES + (size_t)module;
        seen[slot * 2 + (size_t)is_b] = 1;
        float *dst = is_b ? dlv_lora_b(l, layer, (dlv_lora_module)module)
                          : dlv_lora_a(l, layer, (dlv_lora_module)module);
        st = dlv_st_read_f32(ten, 0, ten->n_elements, dst);
    }
    for (size_t s = 0; s < slots && !st; s++) {
        int m = (int)(s % DLV_LORA_N_MODULES);
        if (!(l->targets & (1u << m))) continue;
        for (int b = 0; b < 2; b++)
            if (!seen[s * 2 + (size_t)b])
                st = dlv_error(DLV_E_FORMAT, "%s: tensor 'base_model.model.%s%zu.%s.%s."
                               "lora_%c.weight' is missing (%s is in target_modules)", path,
                               layers, s / DLV_LORA_N_MODULES,
                               dlv_lora_module_parent((dlv_lora_module)m), module_names[m],
                               b ? 'B' : 'A', module_names[m]);
    }
    free(seen);
    return st;
}

dlv_status dlv_lora_load(const dlv_model *m, const char *dir, dlv_lora *out)
{
    memset(out, 0, sizeof *out);
    char *cpath = dlv_path_join(dir, "adapter_config.json");
    char *wpath = dlv_path_join(dir, "adapter_model.safetensors");
    dlv_status st = DLV_OK;
    lora_cfg c;
    dlv_st_file *f = NULL;
    if (!cpath || !wpath) st = dlv_error_nomem("a path", strlen(dir) + 32);
    if (!st) st = parse_config(cpath, &c);
    if (!st && !dlv_is_file(wpath))
        st = dlv_error(DLV_E_IO, "%s: not found (adapter_config.json needs its "
                       "adapter_model.safetensors)", wpath);
    if (!st) st = dlv_st_open(wpath, &f);
    const dlv_text_config *t = &dlv_model_config(m)->text;
    if (!st) st = dlv_lora_create(t, c.r, c.alpha, c.use_rslora, c.targets, out);
    if (!st) {
        out->dropout = c.dropout;
        memcpy(out->base_model, c.base_model, sizeof out->base_model);
        st = read_tensors(t, dlv_lora_peft_layers(dlv_model_config(m)), wpath, f, out);
        if (st) dlv_lora_free(out);
    }
    if (f) dlv_st_close(f);
    free(cpath);
    free(wpath);
    return st;
}

/* ---- saving ------------------------------------------------------------- */

static dlv_status save_config(const dlv_lora *l, const char *path)
{
    json_t *root = json_object(), *tm = json_array();
    dlv_status st = DLV_OK;
    if (!root || !tm) st = dlv_error(DLV_E_NOMEM, "%s: cannot build the JSON", path);
    for (int m = 0; m < DLV_LORA_N_MODULES && !st; m++)
        if ((l->targets & (1u << m)) && json_array_append_new(tm, json_string(module_names[m])))
            st = dlv_error(DLV_E_NOMEM, "%s: cannot build the JSON", path);
    if (!st) {
        /* The fields PEFT's LoraConfig writes that decide how it applies the
         * adapter, so PeftModel.from_pretrained rebuilds exactly this. */
        int bad = 0;
        bad |= json_object_set_new(root, "peft_type", json_string("LORA"));
        bad |= json_object_set_new(root, "task_type", json_null());
        bad |= json_object_set_new(root, "base_model_name_or_path",
                                   l->base_model[0] ? json_string(l->base_model) : json_null());
        bad |= json_object_set_new(root, "r", json_integer(l->rank));
        bad |= json_object_set_new(root, "lora_alpha", json_real(l->alpha));
        bad |= json_object_set_new(root, "lora_dropout", json_real(l->dropout));
        bad |= json_object_set_new(root, "target_modules", tm);
        tm = NULL;
        bad |= json_object_set_new(root, "bias", json_string("none"));
        bad |= json_object_set_new(root, "fan_in_fan_out", json_false());
        bad |= json_object_set_new(root, "use_rslora", json_boolean(l->use_rslora));
        bad |= json_object_set_new(root, "use_dora", json_false());
        bad |= json_object_set_new(root, "init_lora_weights", json_true());
        bad |= json_object_set_new(root, "inference_mode", json_true());
        bad |= json_object_set_new(root, "modules_to_save", json_null());
        bad |= json_object_set_new(root, "layers_to_transform", json_null());
        bad |= json_object_set_new(root, "layers_pattern", json_null());
        bad |= json_object_set_new(root, "rank_pattern", json_object());
        bad |= json_object_set_new(root, "alpha_pattern", json_object());
        if (bad) st = dlv_error(DLV_E_NOMEM, "%s: cannot build the JSON", path);
    }
    json_decref(tm);
    if (!st) st = dlv_json_save(root, path);
    json_decref(root);
    return st;
}

const char *dlv_lora_peft_layers(const dlv_llava_config *cfg)
{
    return cfg->qwen2vl ? "model.layers." : "language_model.model.layers.";
}

dlv_status dlv_lora_save(const dlv_lora *l, const dlv_llava_config *cfg, const char *dir)
{
    const dlv_text_config *t = &cfg->text;
    const size_t slots = (size_t)l->n_layers * DLV_LORA_N_MODULES;
    dlv_st_write_entry *e = calloc(slots * 2, sizeof *e);
    int64_t (*shapes)[2] = calloc(slots * 2, sizeof *shapes);
    char (*names)[128] = calloc(slots * 2, sizeof *names);
    char *cpath = dlv_path_join(dir, "adapter_config.json");
    char *wpath = dlv_path_join(dir, "adapter_model.safetensors");
    dlv_status st = DLV_OK;
    if (!e || !shapes || !names || !cpath || !wpath)
        st = dlv_error_nomem("LoRA save tables", slots * 2 * (sizeof *e + 144));
    size_t n = 0;
    for (int64_t layer = 0; layer < l->n_layers && !st; layer++)
        for (int m = 0; m < DLV_LORA_N_MODULES; m++) {
            if (!(l->targets & (1u << m))) continue;
            int64_t o, in;
            dlv_lora_module_dims(t, (dlv_lora_module)m, &o, &in);
            for (int b = 0; b < 2; b++, n++) {
                snprintf(names[n], sizeof names[n],
                         "base_model.model.%s%lld.%s.%s.lora_%c.weight",
                         dlv_lora_peft_layers(cfg), (long long)layer,
                         dlv_lora_module_parent((dlv_lora_module)m), module_names[m],
                         b ? 'B' : 'A');
                shapes[n][0] = b ? o : l->rank;
                shapes[n][1] = b ? l->rank : in;
                e[n] = (dlv_st_write_entry){names[n], DLV_DTYPE_F32, 2, shapes[n],
                                            b ? dlv_lora_b(l, layer, (dlv_lora_module)m)
                                              : dlv_lora_a(l, layer, (dlv_lora_module)m)};
            }
        }
    static const char *const mk[] = {"format"}, *const mv[] = {"pt"};
    if (!st) st = dlv_st_write(wpath, e, n, mk, mv, 1);
    if (!st) st = save_config(l, cpath);
    free(e);
    free(shapes);
    free(names);
    free(cpath);
    free(wpath);
    return st;
}
