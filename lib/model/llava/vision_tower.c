/* The LLaVA image pathway on host memory (see vision_tower.h): pixels are
 * uploaded, model/llava/llava_vision.c runs on the device, features come back. */
#include "model/llava/vision_tower.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/llava/llava_vision.h"
#include "model/model.h"

/* The shapes of one call, for argument checks. */
typedef struct vt_ctx {
    const dlv_llava_config *cfg;
    const char *label; /* the model directory, for messages */
    int64_t n, S, D, F, T;
} vt_ctx;

int64_t dlv_vision_seq_len(const dlv_llava_config *cfg)
{
    const dlv_vision_config *v = &cfg->vision;
    int64_t side = v->image_size / v->patch_size;
    return side * side + (v->kind == DLV_VISION_CLIP ? 1 : 0);
}

int64_t dlv_vision_select_index(const dlv_llava_config *cfg)
{
    int64_t L = cfg->vision.num_hidden_layers;
    int64_t idx = cfg->vision_feature_layer;
    if (idx < 0) idx += L + 1;
    return idx < 0 || idx > L ? -1 : idx;
}

int64_t dlv_vision_n_tokens(const dlv_llava_config *cfg)
{
    int64_t s = dlv_vision_seq_len(cfg);
    return cfg->vision_feature_select_full ? s : s - 1;
}

/* a * b into *out unless it overflows SIZE_MAX. */
static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static dlv_status check_args(const vt_ctx *c, const float *pixels, const float *out,
                             size_t out_len, const dlv_vision_trace *trace, int64_t sel)
{
    uint64_t n = (uint64_t)c->n;
    if (sel < 0)
        return dlv_error(DLV_E_FORMAT, "%s: vision_feature_layer %lld is outside the vision "
                         "tower (%lld layers)", c->label, (long long)c->cfg->vision_feature_layer,
                         (long long)c->cfg->vision.num_hidden_layers);
    if (c->n > 0 && !pixels)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: pixels is NULL");
    size_t need;
    if (!mul_ok((size_t)n * (size_t)c->F, (size_t)c->T, &need))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: %lld images overflow",
                         (long long)c->n);
    if (need > 0 && !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: out is NULL");
    if (out_len < need)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "dlv_vision_forward: out holds %zu floats, "
                         "%lld images need %zu", out_len, (long long)c->n, need);
    if (!trace) return DLV_OK;
    size_t hs, selected;
    if (!mul_ok((size_t)(sel + 1) * (size_t)n * (size_t)c->S, (size_t)c->D, &hs) ||
        !mul_ok((size_t)n * (size_t)c->F, (size_t)c->D, &selected))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: trace sizes overflow");
    if (trace->hidden_states && trace->hidden_states_len < hs)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "dlv_vision_forward: trace hidden_states "
                         "holds %zu floats, needs %zu", trace->hidden_states_len, hs);
    if (trace->selected && trace->selected_len < selected)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "dlv_vision_forward: trace selected holds "
                         "%zu floats, needs %zu", trace->selected_len, selected);
    return DLV_OK;
}

dlv_status dlv_vision_forward(const dlv_model *m, dlv_backend *be, const float *pixels,
                              int64_t n_images, float *out, size_t out_len,
                              const dlv_vision_trace *trace)
{
    if (!m || !be) return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: NULL argument");
    if (n_images < 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: n_images %lld < 0",
                         (long long)n_images);
    if (!dlv_backend_same_memory(be, dlv_model_backend(m)))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: backend '%s' cannot read the "
                         "model's weights (they live on backend '%s')", be->ops->name,
                         dlv_model_backend(m)->ops->name);
    const dlv_llava_config *cfg = dlv_model_config(m);
    const dlv_vision_config *v = &cfg->vision;
    const vt_ctx c = {
        .cfg = cfg, .label = dlv_model_dir(m), .n = n_images, .S = dlv_vision_seq_len(cfg),
        .D = v->hidden_size, .F = dlv_vision_n_tokens(cfg), .T = cfg->text.hidden_size,
    };
    const int64_t sel = dlv_vision_select_index(cfg);
    dlv_status st = check_args(&c, pixels, out, out_len, trace, sel);
    if (st != DLV_OK || n_images == 0) return st;

    const size_t px = (size_t)(n_images * v->num_channels * v->image_size * v->image_size);
    const size_t feat = (size_t)(n_images * c.F * c.T);
    const size_t hs = trace && trace->hidden_states
                          ? (size_t)((sel + 1) * n_images * c.S * c.D) : 0;
    const size_t selected = trace && trace->selected ? (size_t)(n_images * c.F * c.D) : 0;
    dlv_buffer buf = {0};
    st = dlv_buffer_alloc(be, (px + feat + hs + selected) * sizeof(float), &buf);
    float *dpx = dlv_buffer_ptr(&buf), *dfeat = dpx + px, *dhs = dfeat + feat;
    const dlv_llava_vision_trace dt = {hs ? dhs : NULL, selected ? dhs + hs : NULL};
    if (!st) st = dlv_buffer_upload(&buf, 0, pixels, px * sizeof(float));
    dlv_llava_dims d;
    dlv_llava_dims_of(cfg, &d);
    if (!st)
        st = dlv_llava_vision_forward(be, &d, dlv_model_llava_w(m), dpx,
                                      n_images, 0, 0, NULL, dfeat, trace ? &dt : NULL);
    if (st) st = dlv_error_prefix(st, "%s", c.label);
    if (!st) st = dlv_buffer_download(out, &buf, px * sizeof(float), feat * sizeof(float));
    if (!st && hs)
        st = dlv_buffer_download(trace->hidden_states, &buf, (px + feat) * sizeof(float),
                                 hs * sizeof(float));
    if (!st && selected)
        st = dlv_buffer_download(trace->selected, &buf, (px + feat + hs) * sizeof(float),
                                 selected * sizeof(float));
    dlv_buffer_free(&buf);
    return st;
}

dlv_status dlv_vision_features(const dlv_model *m, dlv_backend *be, const float *pixels,
                               int64_t n_images, float *out, size_t out_len)
{
    return dlv_vision_forward(m, be, pixels, n_images, out, out_len, NULL);
}
