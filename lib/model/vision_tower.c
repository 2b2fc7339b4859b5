/* Vision tower + projector forward pass (see vision_tower.h), written
 * against the backend's checked ops. */
#include "model/vision_tower.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "model/weights.h"

/* A weight as the ops take it: the mapped bytes and their dtype. */
typedef struct wref {
    const void *data;
    dlv_dtype dtype;
} wref;

/* Per-call scratch; every pointer lies inside one backend buffer. */
typedef struct scratch {
    dlv_buffer buf;
    float *x;       /* [N*S, D] the residual stream */
    float *ln;      /* [N*S, D] norm output, then attention output */
    float *q, *k, *v; /* [N*S, D] each; q also takes o_proj / fc2 output */
    float *mlp;     /* [N*S, I] */
    float *patches; /* [N*P, K] */
    float *mid;     /* [N*F, T] projector middle */
} scratch;

typedef struct vt_ctx {
    const dlv_llava_config *cfg;
    const dlv_weights *w;
    dlv_backend *be;
    const char *label; /* the model directory, for messages */
    int64_t n, S, D, I, P, K, F, T;
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

/* Looks up a weight and checks its element count (the loader checked the
 * exact shape; this guards the arithmetic below against a table change). */
static dlv_status get_w(const vt_ctx *c, dlv_weight_part part, uint64_t n_expected, wref *out,
                        const char *name)
{
    const dlv_st_tensor *t = dlv_weights_get(c->w, part, name);
    if (!t)
        return dlv_error(DLV_E_FORMAT, "%s: %s weight '%s' is missing", c->label,
                         dlv_weight_part_name(part), name);
    if (t->n_elements != n_expected)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': %llu elements, expected %llu",
                         c->label, t->name, (unsigned long long)t->n_elements,
                         (unsigned long long)n_expected);
    out->data = t->data;
    out->dtype = t->dtype;
    return DLV_OK;
}

/* y[rows, n_out] = x[rows, n_in] . W^T (+ b): nn.Linear with W [n_out, n_in]. */
static dlv_status linear(dlv_backend *be, float *y, const float *x, int64_t rows, int64_t n_in,
                         int64_t n_out, const wref *w, const wref *b)
{
    dlv_matmul_args a = {
        .struct_size = sizeof a, .trans_a = DLV_NO_TRANS, .trans_b = DLV_TRANS,
        .m = rows, .n = n_out, .k = n_in, .alpha = 1.0f, .beta = 0.0f,
        .a = x, .a_dtype = DLV_DTYPE_F32, .lda = n_in > 0 ? n_in : 1,
        .b = w->data, .b_dtype = w->dtype, .ldb = n_in > 0 ? n_in : 1,
        .c = y, .ldc = n_out > 0 ? n_out : 1,
    };
    dlv_status st = dlv_matmul(be, &a);
    if (st == DLV_OK && b && b->data) st = dlv_add_bias(be, y, b->data, b->dtype, rows, n_out);
    return st;
}

/* linear() over n_images blocks of `rows` rows, one GEMM per image: BLAS
 * may pick other kernels (another summation order) for another m, so a
 * GEMM over the whole batch would make an image's result depend, in the last
 * bits, on how many images came with it. Per image it is bit for bit the
 * same in any batch; at real sizes (577 rows) each GEMM is still large. */
static dlv_status linear_per_image(const vt_ctx *c, float *y, const float *x, int64_t rows,
                                   int64_t n_in, int64_t n_out, const wref *w, const wref *b)
{
    dlv_status st = DLV_OK;
    for (int64_t i = 0; i < c->n && st == DLV_OK; i++)
        st = linear(c->be, y + i * rows * n_out, x + i * rows * n_in, rows, n_in, n_out, w,
                    NULL);
    if (st == DLV_OK && b && b->data)
        st = dlv_add_bias(c->be, y, b->data, b->dtype, c->n * rows, n_out);
    return st;
}

#define VM "vision_model."

/* hidden_states[0]: patch conv, class token (CLIP), positions, pre-norm
 * (CLIP). */
static dlv_status embeddings(const vt_ctx *c, scratch *s, const float *pixels)
{
    const dlv_vision_config *v = &c->cfg->vision;
    int clip = v->kind == DLV_VISION_CLIP;
    int64_t ch = v->num_channels, hw = v->image_size, p = v->patch_size, D = c->D;
    wref pw, pb = {0}, pos, cls = {0};
    dlv_status st = get_w(c, DLV_PART_VISION, (uint64_t)(D * c->K), &pw,
                          VM "embeddings.patch_embedding.weight");
    if (st == DLV_OK && !clip)
        st = get_w(c, DLV_PART_VISION, (uint64_t)D, &pb, VM "embeddings.patch_embedding.bias");
    if (st == DLV_OK)
        st = get_w(c, DLV_PART_VISION, (uint64_t)(c->S * D), &pos,
                   VM "embeddings.position_embedding.weight");
    if (st == DLV_OK && clip)
        st = get_w(c, DLV_PART_VISION, (uint64_t)D, &cls, VM "embeddings.class_embedding");
    if (st != DLV_OK) return st;

    int64_t img_px = ch * hw * hw;
    for (int64_t i = 0; i < c->n && st == DLV_OK; i++)
        st = dlv_im2col_patches(c->be, s->patches + i * c->P * c->K, pixels + i * img_px,
                                ch, hw, hw, p);
    if (st != DLV_OK) return st;

    if (clip) {
        /* The class token comes first, so each image's patch rows start one
         * row in: one GEMM per image writes them in place. The class row is
         * an embedding lookup of a one-row table, which widens it. */
        const int32_t id0 = 0;
        for (int64_t i = 0; i < c->n && st == DLV_OK; i++) {
            float *xi = s->x + i * c->S * D;
            st = dlv_embedding(c->be, xi, cls.data, cls.dtype, &id0, 1, 1, D);
            if (st == DLV_OK)
                st = linear(c->be, xi + D, s->patches + i * c->P * c->K, c->P, c->K, D, &pw,
                            NULL);
        }
    } else {
        st = linear_per_image(c, s->x, s->patches, c->P, c->K, D, &pw, &pb);
    }
    for (int64_t i = 0; i < c->n && st == DLV_OK; i++) {
        float *xi = s->x + i * c->S * D;
        st = dlv_add(c->be, xi, xi, pos.data, pos.dtype, 0, c->S, D);
    }
    if (st != DLV_OK || !clip) return st;

    wref nw, nb;
    st = get_w(c, DLV_PART_VISION, (uint64_t)D, &nw, VM "pre_layrnorm.weight");
    if (st == DLV_OK) st = get_w(c, DLV_PART_VISION, (uint64_t)D, &nb, VM "pre_layrnorm.bias");
    if (st == DLV_OK) {
        if (nw.dtype != nb.dtype)
            return dlv_error(DLV_E_UNSUPPORTED, "%s: pre_layrnorm weight and bias differ in "
                             "dtype", c->label);
        st = dlv_layernorm(c->be, s->x, s->x, nw.data, nb.data, nw.dtype, c->n * c->S, D,
                           (float)v->layer_norm_eps);
    }
    return st;
}

/* "vision_model.encoder.layers.<layer>.<which>.<kind>" into buf. */
static dlv_status layer_name(const vt_ctx *c, char *buf, size_t cap, int64_t layer,
                             const char *which, const char *kind)
{
    int len = snprintf(buf, cap, VM "encoder.layers.%lld.%s.%s", (long long)layer, which, kind);
    if (len < 0 || (size_t)len >= cap)
        return dlv_error(DLV_E_INVALID_ARG, "%s: vision layer %lld %s: weight name too long",
                         c->label, (long long)layer, which);
    return DLV_OK;
}

static dlv_status layer_norm(const vt_ctx *c, float *out, const float *in, int64_t layer,
                             const char *which)
{
    char name[DLV_WEIGHT_NAME_MAX];
    wref w, b;
    dlv_status st = layer_name(c, name, sizeof name, layer, which, "weight");
    if (st == DLV_OK) st = get_w(c, DLV_PART_VISION, (uint64_t)c->D, &w, name);
    if (st == DLV_OK) st = layer_name(c, name, sizeof name, layer, which, "bias");
    if (st == DLV_OK) st = get_w(c, DLV_PART_VISION, (uint64_t)c->D, &b, name);
    if (st != DLV_OK) return st;
    if (w.dtype != b.dtype)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: vision layer %lld %s: weight and bias differ "
                         "in dtype", c->label, (long long)layer, which);
    return dlv_layernorm(c->be, out, in, w.data, b.data, w.dtype, c->n * c->S, c->D,
                         (float)c->cfg->vision.layer_norm_eps);
}

/* A Linear of encoder layer `layer` named e.g. "self_attn.q_proj". */
static dlv_status layer_linear(const vt_ctx *c, float *y, const float *x, int64_t layer,
                               const char *which, int64_t n_in, int64_t n_out)
{
    char name[DLV_WEIGHT_NAME_MAX];
    wref w, b;
    dlv_status st = layer_name(c, name, sizeof name, layer, which, "weight");
    if (st == DLV_OK) st = get_w(c, DLV_PART_VISION, (uint64_t)(n_in * n_out), &w, name);
    if (st == DLV_OK) st = layer_name(c, name, sizeof name, layer, which, "bias");
    if (st == DLV_OK) st = get_w(c, DLV_PART_VISION, (uint64_t)n_out, &b, name);
    if (st != DLV_OK) return st;
    return linear_per_image(c, y, x, c->S, n_in, n_out, &w, &b);
}

/* One pre-norm encoder layer (CLIPEncoderLayer / SiglipEncoderLayer):
 * x += out_proj(attn(ln1(x))); x += fc2(act(fc1(ln2(x)))). */
static dlv_status encoder_layer(const vt_ctx *c, scratch *s, int64_t l)
{
    const dlv_vision_config *v = &c->cfg->vision;
    int64_t rows = c->n * c->S, D = c->D, heads = v->num_attention_heads;
    int64_t hd = D / heads;
    dlv_status st = layer_norm(c, s->ln, s->x, l, "layer_norm1");
    if (st == DLV_OK) st = layer_linear(c, s->q, s->ln, l, "self_attn.q_proj", D, D);
    if (st == DLV_OK) st = layer_linear(c, s->k, s->ln, l, "self_attn.k_proj", D, D);
    if (st == DLV_OK) st = layer_linear(c, s->v, s->ln, l, "self_attn.v_proj", D, D);
    if (st != DLV_OK) return st;
    /* Bidirectional, no mask: each image is its own sequence, so images of
     * a batch never see each other. */
    dlv_attention_args a = {
        .struct_size = sizeof a, .out = s->ln, .q = s->q, .k = s->k, .v = s->v,
        .key_mask = NULL, .batch = c->n, .n_q = c->S, .n_kv = c->S, .n_heads = heads,
        .n_kv_heads = heads, .head_dim = hd, .scale = (float)(1.0 / sqrt((double)hd)),
        .causal = 0,
    };
    st = dlv_attention(c->be, &a);
    if (st == DLV_OK) st = layer_linear(c, s->q, s->ln, l, "self_attn.out_proj", D, D);
    if (st == DLV_OK) st = dlv_add(c->be, s->x, s->x, s->q, DLV_DTYPE_F32, 0, rows, D);
    if (st == DLV_OK) st = layer_norm(c, s->ln, s->x, l, "layer_norm2");
    if (st == DLV_OK) st = layer_linear(c, s->mlp, s->ln, l, "mlp.fc1", D, c->I);
    /* dlv_act and dlv_op_act share their order (backend.h). */
    if (st == DLV_OK)
        st = dlv_activation(c->be, (dlv_op_act)v->hidden_act, s->mlp, s->mlp, rows * c->I);
    if (st == DLV_OK) st = layer_linear(c, s->q, s->mlp, l, "mlp.fc2", c->I, D);
    if (st == DLV_OK) st = dlv_add(c->be, s->x, s->x, s->q, DLV_DTYPE_F32, 0, rows, D);
    if (st != DLV_OK) return dlv_error_prefix(st, "vision layer %lld", (long long)l);
    return DLV_OK;
}

/* linear_1 -> projector_hidden_act -> linear_2 on [N*F, D] rows. */
static dlv_status projector(const vt_ctx *c, scratch *s, const float *feat, float *out)
{
    int bias = c->cfg->multimodal_projector_bias;
    int64_t rows = c->n * c->F, D = c->D, T = c->T;
    wref w1, b1 = {0}, w2, b2 = {0};
    dlv_status st = get_w(c, DLV_PART_PROJECTOR, (uint64_t)(T * D), &w1, "linear_1.weight");
    if (st == DLV_OK && bias)
        st = get_w(c, DLV_PART_PROJECTOR, (uint64_t)T, &b1, "linear_1.bias");
    if (st == DLV_OK) st = get_w(c, DLV_PART_PROJECTOR, (uint64_t)(T * T), &w2, "linear_2.weight");
    if (st == DLV_OK && bias)
        st = get_w(c, DLV_PART_PROJECTOR, (uint64_t)T, &b2, "linear_2.bias");
    if (st == DLV_OK) st = linear_per_image(c, s->mid, feat, c->F, D, T, &w1, &b1);
    if (st == DLV_OK)
        st = dlv_activation(c->be, (dlv_op_act)c->cfg->projector_hidden_act, s->mid, s->mid,
                            rows * T);
    if (st == DLV_OK) st = linear_per_image(c, out, s->mid, c->F, T, T, &w2, &b2);
    if (st != DLV_OK) return dlv_error_prefix(st, "projector");
    return DLV_OK;
}

/* a * b into *out unless it overflows SIZE_MAX. */
static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* Lays the scratch out in one buffer, each part rounded up to 16 floats so
 * that every part starts 64-byte aligned. */
static dlv_status scratch_alloc(const vt_ctx *c, scratch *s)
{
    size_t n = (size_t)c->n;
    size_t sizes[8], total = 0;
    size_t nsd, nsi, npk, nft;
    if (!mul_ok(n * (size_t)c->S, (size_t)c->D, &nsd) ||
        !mul_ok(n * (size_t)c->S, (size_t)c->I, &nsi) ||
        !mul_ok(n * (size_t)c->P, (size_t)c->K, &npk) ||
        !mul_ok(n * (size_t)c->F, (size_t)c->T, &nft))
        return dlv_error(DLV_E_INVALID_ARG, "%s: %lld images overflow the vision scratch size",
                         c->label, (long long)c->n);
    sizes[0] = sizes[1] = sizes[2] = sizes[3] = sizes[4] = nsd;
    sizes[5] = nsi;
    sizes[6] = npk;
    sizes[7] = nft;
    for (int i = 0; i < 8; i++) {
        size_t r = (sizes[i] + 15) / 16 * 16;
        if (r < sizes[i] || total > SIZE_MAX / sizeof(float) - r)
            return dlv_error(DLV_E_INVALID_ARG, "%s: %lld images overflow the vision scratch "
                             "size", c->label, (long long)c->n);
        sizes[i] = r;
        total += r;
    }
    dlv_status st = dlv_buffer_alloc(c->be, total * sizeof(float), &s->buf);
    if (st != DLV_OK) return dlv_error_prefix(st, "vision tower scratch");
    float *base = dlv_buffer_ptr(&s->buf);
    float **parts[8] = {&s->x, &s->ln, &s->q, &s->k, &s->v, &s->mlp, &s->patches, &s->mid};
    for (int i = 0; i < 8; i++) {
        *parts[i] = base;
        base += sizes[i];
    }
    return DLV_OK;
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

/* Copies the residual stream into trace slot `idx` (host memory: CPU only). */
static void trace_hidden(const vt_ctx *c, const scratch *s, const dlv_vision_trace *trace,
                         int64_t idx)
{
    if (!trace || !trace->hidden_states) return;
    size_t nsd = (size_t)(c->n * c->S * c->D);
    memcpy(trace->hidden_states + (size_t)idx * nsd, s->x, nsd * sizeof(float));
}

static dlv_status run(const vt_ctx *c, scratch *s, const float *pixels, float *out,
                      const dlv_vision_trace *trace, int64_t sel)
{
    dlv_status st = embeddings(c, s, pixels);
    if (st != DLV_OK) return dlv_error_prefix(st, "vision embeddings");
    trace_hidden(c, s, trace, 0);
    for (int64_t l = 0; l < sel; l++) {
        st = encoder_layer(c, s, l);
        if (st != DLV_OK) return st;
        trace_hidden(c, s, trace, l + 1);
    }
    /* "default" drops token 0 of each image: gather the rest into ln. */
    const float *feat = s->x;
    if (c->F != c->S) {
        size_t row = (size_t)c->D;
        for (int64_t i = 0; i < c->n; i++)
            memcpy(s->ln + (size_t)(i * c->F) * row, s->x + (size_t)(i * c->S + 1) * row,
                   (size_t)c->F * row * sizeof(float));
        feat = s->ln;
    }
    if (trace && trace->selected)
        memcpy(trace->selected, feat, (size_t)(c->n * c->F * c->D) * sizeof(float));
    return projector(c, s, feat, out);
}

dlv_status dlv_vision_forward(const dlv_model *m, dlv_backend *be, const float *pixels,
                              int64_t n_images, float *out, size_t out_len,
                              const dlv_vision_trace *trace)
{
    if (!m || !be) return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: NULL argument");
    if (n_images < 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_vision_forward: n_images %lld < 0",
                         (long long)n_images);
    /* The forward pass runs on the CPU backend only in this version: it
     * reads pixels, writes out and traces as host memory, and the CUDA
     * backend has no compute kernels yet. */
    const dlv_backend *mbe = dlv_model_backend(m);
    if (!(dlv_backend_caps(be) & DLV_BACKEND_CAP_HOST_MEMORY) ||
        (mbe && !(dlv_backend_caps(mbe) & DLV_BACKEND_CAP_HOST_MEMORY)))
        return dlv_error(DLV_E_UNSUPPORTED, "dlv_vision_forward: backend '%s': the forward "
                         "pass needs host-addressable memory (the CPU backend) in this version",
                         be->ops->name);
    const dlv_llava_config *cfg = dlv_model_config(m);
    const dlv_vision_config *v = &cfg->vision;
    vt_ctx c = {
        .cfg = cfg, .w = dlv_model_weights(m), .be = be, .label = dlv_model_dir(m),
        .n = n_images, .S = dlv_vision_seq_len(cfg), .D = v->hidden_size,
        .I = v->intermediate_size, .K = v->num_channels * v->patch_size * v->patch_size,
        .F = dlv_vision_n_tokens(cfg), .T = cfg->text.hidden_size,
    };
    c.P = (v->image_size / v->patch_size) * (v->image_size / v->patch_size);
    int64_t sel = dlv_vision_select_index(cfg);
    dlv_status st = check_args(&c, pixels, out, out_len, trace, sel);
    if (st != DLV_OK || n_images == 0) return st;

    scratch s = {0};
    st = scratch_alloc(&c, &s);
    if (st == DLV_OK) st = run(&c, &s, pixels, out, trace, sel);
    dlv_buffer_free(&s.buf);
    return st;
}

dlv_status dlv_vision_features(const dlv_model *m, dlv_backend *be, const float *pixels,
                               int64_t n_images, float *out, size_t out_len)
{
    return dlv_vision_forward(m, be, pixels, n_images, out, out_len, NULL);
}
