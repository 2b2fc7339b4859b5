/* Loading a model directory: config.json (+ preprocessor_config.json when
 * present), the safetensors checkpoint (memory-mapped, never copied), the
 * weight table checked against it, and the compute backend. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "model/clip/clip.h"
#include "model/clip/clip_model.h"
#include "model/device_weights.h"
#include "model/kind.h"
#include "model/llava/llava_weights.h"
#include "model/weights_bind.h"
#include "tokenizer/tokenizer.h"

struct dlv_model {
    char *dir;
    dlv_llava_config config;
    int has_preproc;
    dlv_preproc_config preproc;
    dlv_st_set *checkpoint;
    dlv_weights weights;
    dlv_backend *backend;
    dlv_dtype weight_dtype; /* converted to at load; DLV_DTYPE_COUNT: as stored */
    /* The weights on the backend, and LLaVA's typed view of them (bound
     * once here: no forward looks a weight up by name). */
    dlv_device_weights dweights;
    const dlv_model_kind *kind;
    dlv_llava_w llava_w;      /* LLaVA models */
    dlv_clip_w clip_w;        /* CLIPModel directories */
    dlv_tokenizer *tokenizer; /* NULL when the directory has none */
    /* CLIPModel directories (model/clip/clip_model.h): their config; `config`
     * then holds a LLaVA-shaped view of it. NULL for LLaVA. */
    dlv_clip_config *clip;
};

DLV_API void dlv_model_free(dlv_model *model)
{
    if (!model) return;
    dlv_tokenizer_destroy(model->tokenizer);
    dlv_llava_w_free(&model->llava_w);
    dlv_clip_w_free(&model->clip_w);
    dlv_device_weights_free(&model->dweights);
    dlv_backend_destroy(model->backend);
    dlv_weights_free(&model->weights);
    if (model->checkpoint) dlv_st_set_close(model->checkpoint);
    free(model->clip);
    free(model->dir);
    free(model);
}

/* LLaVA-NeXT: the model packs the tiles its image processor cut, so both
 * files must describe the same grids and tile size (transformers reads
 * each from its own file and would silently disagree). */
static dlv_status check_anyres(const dlv_model *m, const char *path)
{
    const dlv_llava_config *c = &m->config;
    const dlv_preproc_config *p = &m->preproc;
    if (!c->anyres && !p->anyres) return DLV_OK;
    if (c->anyres != p->anyres)
        return dlv_error(DLV_E_FORMAT, "%s: image_processor_type '%s' does not go with "
                         "config.json's model_type '%s'", path, p->processor_class,
                         c->anyres ? "llava_next" : "llava");
    if (p->crop_height != c->vision.image_size || p->crop_width != c->vision.image_size)
        return dlv_error(DLV_E_FORMAT, "%s: crop_size %lld x %lld is not the vision tower's "
                         "image_size %lld", path, (long long)p->crop_width,
                         (long long)p->crop_height, (long long)c->vision.image_size);
    int same = (int64_t)p->n_pinpoints == c->n_pinpoints;
    for (int64_t i = 0; same && i < c->n_pinpoints; i++)
        same = p->pinpoints[i][0] == c->pinpoints[i][0] &&
               p->pinpoints[i][1] == c->pinpoints[i][1];
    if (!same)
        return dlv_error(DLV_E_FORMAT, "%s: image_grid_pinpoints differ from config.json's "
                         "(the model would pack other grids than the processor cuts)", path);
    return DLV_OK;
}

/* Qwen2-VL: the processor cuts the patches the tower embeds, so patch,
 * temporal patch and merge sizes must agree between the two files. */
static dlv_status check_qwen2vl(const dlv_model *m, const char *path)
{
    const dlv_llava_config *c = &m->config;
    const dlv_qwen2vl_params *p = &m->preproc.qwen2vl;
    if (!c->qwen2vl && !p->enabled) return DLV_OK;
    if (c->qwen2vl != p->enabled)
        return dlv_error(DLV_E_FORMAT, "%s: image_processor_type '%s' does not go with "
                         "config.json's model_type '%s'", path, m->preproc.processor_class,
                         c->qwen2vl ? (c->qv.qwen25 ? "qwen2_5_vl" : "qwen2_vl")
                                    : c->anyres ? "llava_next" : "llava");
    const dlv_qwen2vl_vision_config *v = &c->qv.vision;
    const char *field = p->patch_size != v->patch_size ? "patch_size"
                        : p->temporal_patch_size != v->temporal_patch_size ? "temporal_patch_size"
                        : p->merge_size != v->spatial_merge_size ? "merge_size" : NULL;
    if (field)
        return dlv_error(DLV_E_FORMAT, "%s: %s differs from config.json's vision_config (the "
                         "tower would embed other patches than the processor cuts)", path,
                         field);
    if (v->in_channels != 3)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: vision_config.in_channels is %lld; images "
                         "have 3 channels", path, (long long)v->in_channels);
    return DLV_OK;
}

static dlv_status load_configs(dlv_model *m)
{
    char *path = dlv_path_join(m->dir, "config.json");
    if (!path) return dlv_error_nomem("a path", strlen(m->dir) + 16);
    dlv_status st;
    if (!dlv_is_file(path))
        st = dlv_error(DLV_E_IO, "%s: no such file (a Hugging Face model directory has a "
                       "config.json)", path);
    else if (dlv_clip_config_detect_file(path)) { /* CLIPModel (model_type "clip") */
        m->clip = calloc(1, sizeof *m->clip);
        st = !m->clip ? dlv_error_nomem("a CLIP config", sizeof *m->clip)
                      : dlv_clip_config_load(path, m->clip);
        if (st == DLV_OK) dlv_clip_config_llava_view(m->clip, &m->config);
    } else
        st = dlv_llava_config_load(path, &m->config);
    free(path);
    if (st != DLV_OK) return st;

    /* The image processor's settings are optional: a checkpoint saved
     * without its processor still loads; encoding images then needs them
     * from elsewhere. */
    path = dlv_path_join(m->dir, "preprocessor_config.json");
    if (!path) return dlv_error_nomem("a path", strlen(m->dir) + 32);
    if (dlv_is_file(path)) {
        st = dlv_preproc_config_load(path, &m->preproc);
        m->has_preproc = st == DLV_OK;
    }
    if (st == DLV_OK && m->has_preproc) st = check_anyres(m, path);
    if (st == DLV_OK && m->has_preproc) st = check_qwen2vl(m, path);
    free(path);
    return st;
}

/* The tokenizer is optional (image-only use needs none), but a tokenizer
 * file that is present and broken fails the load rather than surfacing at
 * the first text call. */
static dlv_status load_tokenizer(dlv_model *m)
{
    char *json = dlv_path_join(m->dir, "tokenizer.json");
    char *spm = dlv_path_join(m->dir, "tokenizer.model");
    dlv_status st = DLV_OK;
    if (!json || !spm) st = dlv_error_nomem("a path", strlen(m->dir) + 32);
    else if (dlv_is_file(json) || dlv_is_file(spm))
        st = dlv_tokenizer_open(m->dir, &m->tokenizer);
    free(json);
    free(spm);
    return st;
}

dlv_dtype dlv_model_weight_dtype(const dlv_model *model) { return model->weight_dtype; }

dlv_status dlv_model_open(const char *dir, const char *backend, int device,
                          dlv_dtype weight_dtype, dlv_model **out)
{
    *out = NULL;
    if (!dlv_is_dir(dir)) return dlv_error(DLV_E_IO, "%s: not a directory", dir);

    dlv_model *m = calloc(1, sizeof *m);
    if (!m) return dlv_error_nomem("a model", sizeof *m);
    size_t n = strlen(dir) + 1;
    m->dir = malloc(n);
    if (!m->dir) {
        free(m);
        return dlv_error_nomem("the model directory name", n);
    }
    memcpy(m->dir, dir, n);
    m->weight_dtype = weight_dtype;

    dlv_status st = load_configs(m);
    if (st == DLV_OK) st = dlv_st_set_open_dir(dir, &m->checkpoint);
    if (st == DLV_OK)
        st = m->clip ? dlv_clip_weights_resolve(m->clip, m->checkpoint, dir, &m->weights)
                     : dlv_weights_resolve(&m->config, m->checkpoint, dir, &m->weights);
    if (st == DLV_OK) st = load_tokenizer(m);
    if (st == DLV_OK) {
        dlv_backend_config cfg = {.device = device, .n_threads = 0};
        st = dlv_backend_create(backend, &cfg, &m->backend);
    }
    if (st == DLV_OK) st = dlv_device_weights_create(m->backend, &m->weights, dir, weight_dtype,
                                                       &m->dweights);
    if (st == DLV_OK) {
        m->kind = m->clip ? &dlv_model_kind_clip : &dlv_model_kind_llava;
        st = m->clip ? dlv_clip_w_bind(m->clip, &m->weights, m->dweights.t, &m->clip_w)
                     : dlv_llava_w_bind(&m->config, &m->weights, m->dweights.t, &m->llava_w);
    }
    /* The LayerNorm ops read weight and bias with one dtype. */
    if (st == DLV_OK) st = dlv_bind_check_vit(m->clip ? &m->clip_w.vision : &m->llava_w.vision,
                                              dir);
    if (st == DLV_OK && m->config.qwen2vl) st = dlv_bind_check_qwen2vl_vit(&m->llava_w.qvision, dir);
    if (st == DLV_OK && m->clip)
        st = dlv_bind_check_encoder(m->clip_w.text_layers, m->clip_w.n_text_layers, dir,
                                    "text_model.");
    if (st == DLV_OK && m->clip)
        st = dlv_bind_check_layernorm(&m->clip_w.final_ln, dir, "text_model.final_layer_norm");
    if (st != DLV_OK) {
        dlv_model_free(m);
        return st;
    }
    *out = m;
    return DLV_OK;
}

DLV_API dlv_status dlv_model_embed_dim(const dlv_model *model, size_t *out)
{
    if (!model || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_model_embed_dim: NULL argument");
    /* CLIPModel: the shared projection space. */
    *out = (size_t)(model->clip ? model->clip->projection_dim : model->config.text.hidden_size);
    return DLV_OK;
}

const dlv_clip_config *dlv_model_clip(const dlv_model *model)
{
    return model ? model->clip : NULL;
}

dlv_backend *dlv_model_backend(const dlv_model *model) { return model ? model->backend : NULL; }
const dlv_device_weights *dlv_model_device_weights(const dlv_model *m) { return &m->dweights; }
const dlv_llava_w *dlv_model_llava_w(const dlv_model *m) { return &m->llava_w; }
const dlv_clip_w *dlv_model_clip_w(const dlv_model *m) { return &m->clip_w; }
const dlv_model_kind *dlv_model_kind_of(const dlv_model *m) { return m->kind; }
const char *dlv_model_kind_name(const dlv_model *m) { return m->kind ? m->kind->name : "?"; }


const dlv_llava_config *dlv_model_config(const dlv_model *model)
{
    return model ? &model->config : NULL;
}

const dlv_st_set *dlv_model_checkpoint(const dlv_model *model)
{
    return model ? model->checkpoint : NULL;
}

const char *dlv_model_dir(const dlv_model *model) { return model ? model->dir : NULL; }

const dlv_weights *dlv_model_weights(const dlv_model *model)
{
    return model ? &model->weights : NULL;
}

const dlv_preproc_config *dlv_model_preproc(const dlv_model *model)
{
    return model && model->has_preproc ? &model->preproc : NULL;
}

const dlv_tokenizer *dlv_model_get_tokenizer(const dlv_model *model)
{
    return model ? model->tokenizer : NULL;
}
