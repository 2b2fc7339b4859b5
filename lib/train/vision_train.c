/* Vision tower + projector training pass (see vision_train.h). The forward
 * mirrors model/vision_tower.c op for op (so a frozen view gives the same
 * bits as dlv_vision_features); the backward is written llm.c style, one
 * explicit backward per block, gradients accumulated into the view's
 * buffers. */
#include "train/vision_train.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "model/vision_tower.h"
#include "model/weights.h"

#define VM "vision_model."
#define LAYER_PREFIX VM "encoder.layers."

/* A weight as the ops take it, with its gradient buffer (NULL: frozen) and
 * the tensor it came from. data == NULL: an absent optional weight. */
typedef struct wref {
    const void *data;
    dlv_dtype dtype;
    float *grad;
    const dlv_st_tensor *t;
} wref;

/* The internals of one encoder layer's forward, what its backward reads. */
typedef struct layer_acts {
    float *h1;      /* [NS, D] layer_norm1 output */
    float *q, *k, *v; /* [NS, D] projections (biases added) */
    float *a;       /* [NS, D] attention output (out_proj input) */
    float *x2;      /* [NS, D] residual after attention */
    float *h2;      /* [NS, D] layer_norm2 output */
    float *f;       /* [NS, I] fc1 output, before the activation */
} layer_acts;

#define ACT_NSD 7 /* [NS, D] buffers in a layer_acts */

struct dlv_vision_tape {
    const dlv_model *m;
    int64_t n;
    int recompute;
    /* The lowest stage with a trained weight: 0 embeddings, 1 + l encoder
     * layer l, sel + 1 projector, sel + 2 none. */
    int64_t lowest;
    int64_t xfrom;     /* layers [xfrom, sel) keep their input */
    dlv_buffer buf;
    float *patches;    /* [N*P, K] unfolded pixels */
    float *x0;         /* [NS, D] embeddings before pre_layrnorm (CLIP) */
    float *xsaved;     /* [sel - xfrom, NS, D] inputs of layers xfrom.. */
    float *xcur;       /* [NS, D] the residual stream where not saved */
    layer_acts *acts;  /* host array: [0] shared, [1 + l - xfrom] saved */
    int64_t n_acts;
    float *g;          /* [NS, I] act(f) scratch */
    float *o;          /* [NS, D] out_proj / fc2 output scratch */
    float *feat;       /* [N*F, D] the selected tokens */
    float *m1;         /* [N*F, T] linear_1 output */
    float *g1;         /* [N*F, T] act(m1) */
};

typedef struct vctx {
    const dlv_llava_config *cfg;
    const dlv_wview *wv;
    dlv_backend *be;
    const char *label;
    int64_t n, S, D, I, P, K, F, T, sel, heads, hd;
    float eps;
    float *ln_tmp; /* [2 D] host: widened layer-norm params when dtypes differ */
} vctx;

/* ---- Weights -------------------------------------------------------------- */

static dlv_status get_w(const vctx *c, dlv_weight_part part, const char *name,
                        uint64_t n_expected, int required, wref *out)
{
    memset(out, 0, sizeof *out);
    float *grad = NULL;
    const dlv_st_tensor *t = dlv_wview_get(c->wv, part, name, &grad);
    if (!t) {
        if (!required) return DLV_OK;
        return dlv_error(DLV_E_FORMAT, "%s: %s weight '%s' is missing", c->label,
                         dlv_weight_part_name(part), name);
    }
    if (t->n_elements != n_expected)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': %llu elements, expected %llu",
                         c->label, t->name, (unsigned long long)t->n_elements,
                         (unsigned long long)n_expected);
    out->data = t->data;
    out->dtype = t->dtype;
    out->grad = grad;
    out->t = t;
    return DLV_OK;
}

/* "vision_model.encoder.layers.<layer>.<which>.<kind>" into buf. */
static dlv_status layer_name(const vctx *c, char *buf, size_t cap, int64_t layer,
                             const char *which, const char *kind)
{
    int len = snprintf(buf, cap, LAYER_PREFIX "%lld.%s.%s", (long long)layer, which, kind);
    if (len < 0 || (size_t)len >= cap)
        return dlv_error(DLV_E_INVALID_ARG, "%s: vision layer %lld %s: weight name too long",
                         c->label, (long long)layer, which);
    return DLV_OK;
}

/* A layer's Linear `which` (weight + bias). */
static dlv_status layer_linear_w(const vctx *c, int64_t l, const char *which, int64_t n_in,
                                 int64_t n_out, wref *w, wref *b)
{
    char name[DLV_WEIGHT_NAME_MAX];
    dlv_status st = layer_name(c, name, sizeof name, l, which, "weight");
    if (st == DLV_OK)
        st = get_w(c, DLV_PART_VISION, name, (uint64_t)(n_in * n_out), 1, w);
    if (st == DLV_OK) st = layer_name(c, name, sizeof name, l, which, "bias");
    if (st == DLV_OK) st = get_w(c, DLV_PART_VISION, name, (uint64_t)n_out, 1, b);
    return st;
}

/* A LayerNorm's weight and bias by full name. The forward op takes one
 * dtype for both: where they differ (a trained f32 copy next to a frozen
 * bf16 one), both are widened into c->ln_tmp, and *fw / *fb are what the
 * forward reads (w / b keep the view's tensors for the backward). */
static dlv_status ln_params(vctx *c, const char *wname, const char *bname, wref *w, wref *b,
                            wref *fw, wref *fb)
{
    dlv_status st = get_w(c, DLV_PART_VISION, wname, (uint64_t)c->D, 1, w);
    if (st == DLV_OK) st = get_w(c, DLV_PART_VISION, bname, (uint64_t)c->D, 1, b);
    if (st != DLV_OK) return st;
    *fw = *w;
    *fb = *b;
    if (w->dtype == b->dtype) return DLV_OK;
    if (!c->ln_tmp) {
        c->ln_tmp = malloc(2 * (size_t)c->D * sizeof(float));
        if (!c->ln_tmp)
            return dlv_error_nomem("layer norm parameters", 2 * (size_t)c->D * sizeof(float));
    }
    st = dlv_st_read_f32(w->t, 0, (uint64_t)c->D, c->ln_tmp);
    if (st == DLV_OK) st = dlv_st_read_f32(b->t, 0, (uint64_t)c->D, c->ln_tmp + c->D);
    if (st != DLV_OK) return st;
    fw->data = c->ln_tmp;
    fb->data = c->ln_tmp + c->D;
    fw->dtype = fb->dtype = DLV_DTYPE_F32;
    return DLV_OK;
}

static dlv_status layer_ln(vctx *c, int64_t l, const char *which, wref *w, wref *b, wref *fw,
                           wref *fb)
{
    char wn[DLV_WEIGHT_NAME_MAX], bn[DLV_WEIGHT_NAME_MAX];
    dlv_status st = layer_name(c, wn, sizeof wn, l, which, "weight");
    if (st == DLV_OK) st = layer_name(c, bn, sizeof bn, l, which, "bias");
    if (st == DLV_OK) st = ln_params(c, wn, bn, w, b, fw, fb);
    return st;
}

/* ---- Linear layers --------------------------------------------------------- */

/* y[rows, n_out] = x[rows, n_in] . W^T: nn.Linear with W [n_out, n_in]. */
static dlv_status linear(dlv_backend *be, float *y, const float *x, int64_t rows, int64_t n_in,
                         int64_t n_out, const wref *w)
{
    dlv_matmul_args a = {
        .struct_size = sizeof a, .trans_a = DLV_NO_TRANS, .trans_b = DLV_TRANS,
        .m = rows, .n = n_out, .k = n_in, .alpha = 1.0f, .beta = 0.0f,
        .a = x, .a_dtype = DLV_DTYPE_F32, .lda = n_in > 0 ? n_in : 1,
        .b = w->data, .b_dtype = w->dtype, .ldb = n_in > 0 ? n_in : 1,
        .c = y, .ldc = n_out > 0 ? n_out : 1,
    };
    return dlv_matmul(be, &a);
}

/* One GEMM per image of `rows` rows, then the bias over all of them: the
 * order of model/vision_tower.c (an image's result does not depend on its
 * batch), so a frozen view gives its bits. */
static dlv_status linear_fw(const vctx *c, float *y, const float *x, int64_t rows, int64_t n_in,
                            int64_t n_out, const wref *w, const wref *b)
{
    dlv_status st = DLV_OK;
    for (int64_t i = 0; i < c->n && st == DLV_OK; i++)
        st = linear(c->be, y + i * rows * n_out, x + i * rows * n_in, rows, n_in, n_out, w);
    if (st == DLV_OK && b && b->data)
        st = dlv_add_bias(c->be, y, b->data, b->dtype, c->n * rows, n_out);
    return st;
}

/* The backward of y = x W^T + b over `rows` rows:
 *   dW += dy^T x, db += colsum(dy) (each if trained),
 *   dx = dy W + beta_dx * dx (if dx is non-NULL). */
static dlv_status linear_bw(const vctx *c, float *dx, float beta_dx, const float *dy,
                            const float *x, int64_t rows, int64_t n_in, int64_t n_out,
                            const wref *w, const wref *b)
{
    dlv_status st = DLV_OK;
    if (w->grad) {
        dlv_matmul_args a = {
            .struct_size = sizeof a, .trans_a = DLV_TRANS, .trans_b = DLV_NO_TRANS,
            .m = n_out, .n = n_in, .k = rows, .alpha = 1.0f, .beta = 1.0f,
            .a = dy, .a_dtype = DLV_DTYPE_F32, .lda = n_out > 0 ? n_out : 1,
            .b = x, .b_dtype = DLV_DTYPE_F32, .ldb = n_in > 0 ? n_in : 1,
            .c = w->grad, .ldc = n_in > 0 ? n_in : 1,
        };
        st = dlv_matmul(c->be, &a);
    }
    if (st == DLV_OK && b && b->data && b->grad)
        st = dlv_bias_backward(c->be, b->grad, dy, rows, n_out);
    if (st == DLV_OK && dx) {
        dlv_matmul_args a = {
            .struct_size = sizeof a, .trans_a = DLV_NO_TRANS, .trans_b = DLV_NO_TRANS,
            .m = rows, .n = n_in, .k = n_out, .alpha = 1.0f, .beta = beta_dx,
            .a = dy, .a_dtype = DLV_DTYPE_F32, .lda = n_out > 0 ? n_out : 1,
            .b = w->data, .b_dtype = w->dtype, .ldb = n_in > 0 ? n_in : 1,
            .c = dx, .ldc = n_in > 0 ? n_in : 1,
        };
        st = dlv_matmul(c->be, &a);
    }
    return st;
}

/* ---- Stages ------------------------------------------------------------------ */

/* The stage a trained weight belongs to (see the tape's `lowest`), or -1
 * for one the pass never reads (layers after the selected one,
 * post_layernorm, SigLIP's head). */
static int64_t stage_of(const vctx *c, const dlv_weight *w)
{
    if (w->part == DLV_PART_PROJECTOR) return c->sel + 1;
    if (w->part != DLV_PART_VISION) return -1;
    const char *n = w->canonical;
    if (strncmp(n, VM "embeddings.", strlen(VM "embeddings.")) == 0 ||
        strncmp(n, VM "pre_layrnorm.", strlen(VM "pre_layrnorm.")) == 0)
        return 0;
    size_t lp = strlen(LAYER_PREFIX);
    if (strncmp(n, LAYER_PREFIX, lp) == 0) {
        char *end = NULL;
        long long l = strtoll(n + lp, &end, 10);
        if (end != n + lp && *end == '.' && l >= 0 && l < c->sel) return 1 + (int64_t)l;
    }
    return -1;
}

static int64_t lowest_trained(const vctx *c)
{
    int64_t lowest = c->sel + 2;
    const dlv_wview *v = c->wv;
    if (!v->grad) return lowest;
    for (size_t i = 0; i < v->weights->n; i++) {
        if (!v->grad[i]) continue;
        int64_t s = stage_of(c, &v->weights->items[i]);
        if (s >= 0 && s < lowest) lowest = s;
    }
    return lowest;
}

/* ---- Tape layout ---------------------------------------------------------- */

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* Up to 16 parts of one buffer, each rounded up to 16 floats. */
typedef struct layout {
    size_t size[16];
    float **dst[16];
    int n;
    int overflow;
} layout;

static void lay_add(layout *L, float **dst, size_t n_a, size_t n_b)
{
    size_t n;
    if (!mul_ok(n_a, n_b, &n) || n > SIZE_MAX / sizeof(float) - 16) {
        L->overflow = 1;
        n = 0;
    }
    L->size[L->n] = (n + 15) / 16 * 16;
    L->dst[L->n] = dst;
    L->n++;
}

static dlv_status lay_alloc(const vctx *c, layout *L, dlv_buffer *buf, const char *what)
{
    size_t total = 0;
    for (int i = 0; i < L->n && !L->overflow; i++) {
        if (total > SIZE_MAX / sizeof(float) - L->size[i]) L->overflow = 1;
        total += L->size[i];
    }
    if (L->overflow)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %lld images overflow the %s size", c->label,
                         (long long)c->n, what);
    dlv_status st = dlv_buffer_alloc(c->be, total * sizeof(float), buf);
    if (st != DLV_OK) return dlv_error_prefix(st, "%s", what);
    float *base = dlv_buffer_ptr(buf);
    for (int i = 0; i < L->n; i++) {
        *L->dst[i] = base;
        base += L->size[i];
    }
    return DLV_OK;
}

static dlv_status tape_alloc(const vctx *c, dlv_vision_tape *t)
{
    size_t n = (size_t)c->n, ns = n * (size_t)c->S, nf = n * (size_t)c->F;
    size_t D = (size_t)c->D, I = (size_t)c->I;
    /* Layers whose backward runs keep their input: from lowest - 1 (the
     * layer of the lowest trained weight) or all (embeddings trained). */
    t->xfrom = t->lowest == 0 ? 0 : t->lowest <= c->sel ? t->lowest - 1 : c->sel;
    size_t n_saved = (size_t)(c->sel - t->xfrom);
    t->n_acts = (c->sel > 0 ? 1 : 0) + (t->recompute ? 0 : (int64_t)n_saved);
    t->acts = calloc(t->n_acts > 0 ? (size_t)t->n_acts : 1, sizeof *t->acts);
    if (!t->acts) return dlv_error_nomem("vision tape", (size_t)t->n_acts * sizeof *t->acts);

    /* Per-layer activations go in a second layout pass: each set is 7
     * [NS, D] buffers + one [NS, I], laid out as one part. */
    float *acts_base = NULL;
    size_t set_floats = 0, tmp = 0;
    layout L = {0};
    lay_add(&L, &t->patches, n * (size_t)c->P, (size_t)c->K);
    lay_add(&L, &t->x0, ns, D);
    lay_add(&L, &t->xsaved, n_saved, ns * D);
    lay_add(&L, &t->xcur, ns, D);
    lay_add(&L, &t->g, ns, I);
    lay_add(&L, &t->o, ns, D);
    lay_add(&L, &t->feat, nf, D);
    lay_add(&L, &t->m1, nf, (size_t)c->T);
    lay_add(&L, &t->g1, nf, (size_t)c->T);
    if (!mul_ok(ns, ACT_NSD * D + I, &tmp)) L.overflow = 1;
    set_floats = (tmp + 15) / 16 * 16;
    lay_add(&L, &acts_base, (size_t)t->n_acts, set_floats);
    dlv_status st = lay_alloc(c, &L, &t->buf, "vision tape");
    if (st != DLV_OK) return st;
    for (int64_t i = 0; i < t->n_acts; i++) {
        float *p = acts_base + (size_t)i * set_floats;
        float **parts[ACT_NSD] = {&t->acts[i].h1, &t->acts[i].q, &t->acts[i].k,
                                  &t->acts[i].v, &t->acts[i].a, &t->acts[i].x2,
                                  &t->acts[i].h2};
        for (int j = 0; j < ACT_NSD; j++) {
            *parts[j] = p;
            p += ns * D;
        }
        t->acts[i].f = p;
    }
    return DLV_OK;
}

/* The residual stream entering layer l (l == sel: the tower's output). */
static float *x_slot(const vctx *c, const dlv_vision_tape *t, int64_t l)
{
    if (l >= t->xfrom && l < c->sel)
        return t->xsaved + (size_t)(l - t->xfrom) * (size_t)(c->n * c->S * c->D);
    return t->xcur;
}

static layer_acts *acts_of(const dlv_vision_tape *t, int64_t l)
{
    if (!t->recompute && l >= t->xfrom) return &t->acts[1 + l - t->xfrom];
    return &t->acts[0];
}

/* ---- Forward ----------------------------------------------------------------- */

static dlv_status embeddings_fw(vctx *c, dlv_vision_tape *t, const float *pixels, float *x)
{
    const dlv_vision_config *v = &c->cfg->vision;
    int clip = v->kind == DLV_VISION_CLIP;
    int64_t D = c->D, S = c->S;
    wref pw, pb, pos, cls;
    dlv_status st = get_w(c, DLV_PART_VISION, VM "embeddings.patch_embedding.weight",
                          (uint64_t)(D * c->K), 1, &pw);
    if (st == DLV_OK)
        st = get_w(c, DLV_PART_VISION, VM "embeddings.patch_embedding.bias", (uint64_t)D,
                   !clip, &pb);
    if (st == DLV_OK)
        st = get_w(c, DLV_PART_VISION, VM "embeddings.position_embedding.weight",
                   (uint64_t)(S * D), 1, &pos);
    if (st == DLV_OK)
        st = get_w(c, DLV_PART_VISION, VM "embeddings.class_embedding", (uint64_t)D, clip, &cls);
    if (st != DLV_OK) return st;

    int64_t img_px = v->num_channels * v->image_size * v->image_size;
    for (int64_t i = 0; i < c->n && st == DLV_OK; i++)
        st = dlv_im2col_patches(c->be, t->patches + i * c->P * c->K, pixels + i * img_px,
                                v->num_channels, v->image_size, v->image_size, v->patch_size);
    if (st != DLV_OK) return st;

    float *x0 = clip ? t->x0 : x;
    if (clip) {
        const int32_t id0 = 0;
        for (int64_t i = 0; i < c->n && st == DLV_OK; i++) {
            float *xi = x0 + i * S * D;
            st = dlv_embedding(c->be, xi, cls.data, cls.dtype, &id0, 1, 1, D);
            if (st == DLV_OK)
                st = linear(c->be, xi + D, t->patches + i * c->P * c->K, c->P, c->K, D, &pw);
        }
    } else {
        st = linear_fw(c, x0, t->patches, c->P, c->K, D, &pw, &pb);
    }
    for (int64_t i = 0; i < c->n && st == DLV_OK; i++) {
        float *xi = x0 + i * S * D;
        st = dlv_add(c->be, xi, xi, pos.data, pos.dtype, 0, S, D);
    }
    if (st != DLV_OK || !clip) return st;

    wref nw, nb, fw, fb;
    st = ln_params(c, VM "pre_layrnorm.weight", VM "pre_layrnorm.bias", &nw, &nb, &fw, &fb);
    if (st == DLV_OK)
        st = dlv_layernorm(c->be, x, x0, fw.data, fb.data, fw.dtype, c->n * S, D, c->eps);
    return st;
}

/* Encoder layer l from x_in into acts (and x_out = x2 + fc2(...) unless
 * x_out is NULL: the backward's recomputation needs only the internals).
 * x_out may be x_in. */
static dlv_status layer_fw(vctx *c, dlv_vision_tape *t, int64_t l, const float *x_in,
                           layer_acts *A, float *x_out)
{
    int64_t rows = c->n * c->S, D = c->D, I = c->I;
    wref w, b, fw, fb;
    dlv_status st = layer_ln(c, l, "layer_norm1", &w, &b, &fw, &fb);
    if (st == DLV_OK)
        st = dlv_layernorm(c->be, A->h1, x_in, fw.data, fb.data, fw.dtype, rows, D, c->eps);
    static const char *qkv[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    float *outs[3] = {A->q, A->k, A->v};
    for (int j = 0; j < 3 && st == DLV_OK; j++) {
        st = layer_linear_w(c, l, qkv[j], D, D, &w, &b);
        if (st == DLV_OK) st = linear_fw(c, outs[j], A->h1, c->S, D, D, &w, &b);
    }
    if (st != DLV_OK) return st;
    dlv_attention_args a = {
        .struct_size = sizeof a, .out = A->a, .q = A->q, .k = A->k, .v = A->v,
        .key_mask = NULL, .batch = c->n, .n_q = c->S, .n_kv = c->S, .n_heads = c->heads,
        .n_kv_heads = c->heads, .head_dim = c->hd,
        .scale = (float)(1.0 / sqrt((double)c->hd)), .causal = 0,
    };
    st = dlv_attention(c->be, &a);
    if (st == DLV_OK) st = layer_linear_w(c, l, "self_attn.out_proj", D, D, &w, &b);
    if (st == DLV_OK) st = linear_fw(c, t->o, A->a, c->S, D, D, &w, &b);
    if (st == DLV_OK) st = dlv_add(c->be, A->x2, x_in, t->o, DLV_DTYPE_F32, 0, rows, D);
    if (st == DLV_OK) st = layer_ln(c, l, "layer_norm2", &w, &b, &fw, &fb);
    if (st == DLV_OK)
        st = dlv_layernorm(c->be, A->h2, A->x2, fw.data, fb.data, fw.dtype, rows, D, c->eps);
    if (st == DLV_OK) st = layer_linear_w(c, l, "mlp.fc1", D, I, &w, &b);
    if (st == DLV_OK) st = linear_fw(c, A->f, A->h2, c->S, D, I, &w, &b);
    if (st != DLV_OK || !x_out) return st;
    /* dlv_act and dlv_op_act share their order (backend.h). */
    st = dlv_activation(c->be, (dlv_op_act)c->cfg->vision.hidden_act, t->g, A->f, rows * I);
    if (st == DLV_OK) st = layer_linear_w(c, l, "mlp.fc2", I, D, &w, &b);
    if (st == DLV_OK) st = linear_fw(c, t->o, t->g, c->S, I, D, &w, &b);
    if (st == DLV_OK) st = dlv_add(c->be, x_out, A->x2, t->o, DLV_DTYPE_F32, 0, rows, D);
    return st;
}

static dlv_status proj_w(const vctx *c, wref *w1, wref *b1, wref *w2, wref *b2)
{
    int bias = c->cfg->multimodal_projector_bias;
    uint64_t D = (uint64_t)c->D, T = (uint64_t)c->T;
    memset(b1, 0, sizeof *b1);
    memset(b2, 0, sizeof *b2);
    dlv_status st = get_w(c, DLV_PART_PROJECTOR, "linear_1.weight", T * D, 1, w1);
    if (st == DLV_OK && bias) st = get_w(c, DLV_PART_PROJECTOR, "linear_1.bias", T, 1, b1);
    if (st == DLV_OK) st = get_w(c, DLV_PART_PROJECTOR, "linear_2.weight", T * T, 1, w2);
    if (st == DLV_OK && bias) st = get_w(c, DLV_PART_PROJECTOR, "linear_2.bias", T, 1, b2);
    return st;
}

static dlv_status forward(vctx *c, dlv_vision_tape *t, const float *pixels, float *features)
{
    dlv_status st = embeddings_fw(c, t, pixels, x_slot(c, t, 0));
    if (st != DLV_OK) return dlv_error_prefix(st, "vision embeddings");
    for (int64_t l = 0; l < c->sel; l++) {
        st = layer_fw(c, t, l, x_slot(c, t, l), acts_of(t, l), x_slot(c, t, l + 1));
        if (st != DLV_OK) return dlv_error_prefix(st, "vision layer %lld", (long long)l);
    }
    /* "default" drops token 0 of each image. */
    const float *x = x_slot(c, t, c->sel);
    size_t row = (size_t)c->D;
    for (int64_t i = 0; i < c->n; i++)
        memcpy(t->feat + (size_t)(i * c->F) * row,
               x + (size_t)(i * c->S + (c->S - c->F)) * row,
               (size_t)c->F * row * sizeof(float));
    wref w1, b1, w2, b2;
    st = proj_w(c, &w1, &b1, &w2, &b2);
    if (st == DLV_OK) st = linear_fw(c, t->m1, t->feat, c->F, c->D, c->T, &w1, &b1);
    if (st == DLV_OK)
        st = dlv_activation(c->be, (dlv_op_act)c->cfg->projector_hidden_act, t->g1, t->m1,
                            c->n * c->F * c->T);
    if (st == DLV_OK) st = linear_fw(c, features, t->g1, c->F, c->T, c->T, &w2, &b2);
    if (st != DLV_OK) return dlv_error_prefix(st, "projector");
    return DLV_OK;
}

/* ---- Backward ---------------------------------------------------------------- */

typedef struct grads {
    dlv_buffer buf;
    float *dx, *dh, *da, *dq, *dk, *dv; /* [NS, D] */
    float *dI1, *dI2;                   /* [NS, I] */
    float *dT1, *dT2;                   /* [N*F, T] */
} grads;

static dlv_status zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float)); /* host memory: CPU backend only */
    return DLV_OK;
}

/* Encoder layer l: on entry gr->dx holds dL/d x_out, on exit dL/d x_in. */
static dlv_status layer_bw(vctx *c, dlv_vision_tape *t, int64_t l, grads *gr)
{
    int64_t rows = c->n * c->S, D = c->D, I = c->I;
    size_t nsd = (size_t)(rows * D), nsi = (size_t)(rows * I);
    const float *x_in = x_slot(c, t, l);
    layer_acts *A = acts_of(t, l);
    dlv_status st = DLV_OK;
    if (t->recompute) st = layer_fw(c, t, l, x_in, A, NULL);
    dlv_op_act act = (dlv_op_act)c->cfg->vision.hidden_act;
    /* g = act(f) again (not saved: cheap). */
    if (st == DLV_OK) st = dlv_activation(c->be, act, t->g, A->f, rows * I);

    wref w, b, fw, fb;
    /* fc2: dy = dx. */
    if (st == DLV_OK) st = layer_linear_w(c, l, "mlp.fc2", I, D, &w, &b);
    if (st == DLV_OK) st = linear_bw(c, gr->dI1, 0.0f, gr->dx, t->g, rows, I, D, &w, &b);
    if (st == DLV_OK) st = zero(gr->dI2, nsi);
    if (st == DLV_OK) st = dlv_activation_backward(c->be, act, gr->dI2, gr->dI1, A->f, rows * I);
    /* fc1 */
    if (st == DLV_OK) st = layer_linear_w(c, l, "mlp.fc1", D, I, &w, &b);
    if (st == DLV_OK) st = linear_bw(c, gr->dh, 0.0f, gr->dI2, A->h2, rows, D, I, &w, &b);
    /* layer_norm2: dx (= d x2 so far, the residual path) += LN2'(dh). */
    if (st == DLV_OK) st = layer_ln(c, l, "layer_norm2", &w, &b, &fw, &fb);
    if (st == DLV_OK)
        st = dlv_layernorm_backward(c->be, gr->dx, w.grad, b.grad, gr->dh, A->x2, w.data,
                                    w.dtype, rows, D, c->eps);
    /* out_proj: dy = dx (d x2). */
    if (st == DLV_OK) st = layer_linear_w(c, l, "self_attn.out_proj", D, D, &w, &b);
    if (st == DLV_OK) st = linear_bw(c, gr->da, 0.0f, gr->dx, A->a, rows, D, D, &w, &b);
    /* attention */
    if (st == DLV_OK) {
        zero(gr->dq, nsd);
        zero(gr->dk, nsd);
        zero(gr->dv, nsd);
        dlv_attention_bw_args a = {
            .struct_size = sizeof a, .dq = gr->dq, .dk = gr->dk, .dv = gr->dv,
            .dout = gr->da, .q = A->q, .k = A->k, .v = A->v, .key_mask = NULL,
            .batch = c->n, .n_q = c->S, .n_kv = c->S, .n_heads = c->heads,
            .n_kv_heads = c->heads, .head_dim = c->hd,
            .scale = (float)(1.0 / sqrt((double)c->hd)), .causal = 0,
        };
        st = dlv_attention_backward(c->be, &a);
    }
    static const char *qkv[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    const float *dqkv[3] = {gr->dq, gr->dk, gr->dv};
    for (int j = 0; j < 3 && st == DLV_OK; j++) {
        st = layer_linear_w(c, l, qkv[j], D, D, &w, &b);
        if (st == DLV_OK)
            st = linear_bw(c, gr->dh, j == 0 ? 0.0f : 1.0f, dqkv[j], A->h1, rows, D, D, &w, &b);
    }
    /* layer_norm1: dx += LN1'(dh). */
    if (st == DLV_OK) st = layer_ln(c, l, "layer_norm1", &w, &b, &fw, &fb);
    if (st == DLV_OK)
        st = dlv_layernorm_backward(c->be, gr->dx, w.grad, b.grad, gr->dh, x_in, w.data,
                                    w.dtype, rows, D, c->eps);
    return st;
}

/* The embeddings, from gr->dx = dL/d hidden_states[0]. */
static dlv_status embeddings_bw(vctx *c, dlv_vision_tape *t, grads *gr)
{
    int clip = c->cfg->vision.kind == DLV_VISION_CLIP;
    int64_t D = c->D, S = c->S, rows = c->n * S;
    const float *dx0 = gr->dx;
    dlv_status st = DLV_OK;
    if (clip) {
        wref nw, nb, fw, fb;
        st = ln_params(c, VM "pre_layrnorm.weight", VM "pre_layrnorm.bias", &nw, &nb, &fw, &fb);
        if (st == DLV_OK) st = zero(gr->dh, (size_t)(rows * D));
        if (st == DLV_OK)
            st = dlv_layernorm_backward(c->be, gr->dh, nw.grad, nb.grad, gr->dx, t->x0, nw.data,
                                        nw.dtype, rows, D, c->eps);
        dx0 = gr->dh;
    }
    if (st != DLV_OK) return st;
    wref pw, pb, pos, cls;
    st = get_w(c, DLV_PART_VISION, VM "embeddings.patch_embedding.weight",
               (uint64_t)(D * c->K), 1, &pw);
    if (st == DLV_OK)
        st = get_w(c, DLV_PART_VISION, VM "embeddings.patch_embedding.bias", (uint64_t)D,
                   !clip, &pb);
    if (st == DLV_OK)
        st = get_w(c, DLV_PART_VISION, VM "embeddings.position_embedding.weight",
                   (uint64_t)(S * D), 1, &pos);
    if (st == DLV_OK)
        st = get_w(c, DLV_PART_VISION, VM "embeddings.class_embedding", (uint64_t)D, clip, &cls);
    for (int64_t i = 0; i < c->n && st == DLV_OK; i++) {
        const float *di = dx0 + i * S * D;
        if (pos.grad) st = dlv_add(c->be, pos.grad, pos.grad, di, DLV_DTYPE_F32, 0, S, D);
        if (st == DLV_OK && clip && cls.grad)
            st = dlv_add(c->be, cls.grad, cls.grad, di, DLV_DTYPE_F32, 0, 1, D);
    }
    if (st != DLV_OK) return st;
    if (clip) {
        /* Each image's patch rows start one row in (after the class token). */
        for (int64_t i = 0; i < c->n && st == DLV_OK; i++)
            st = linear_bw(c, NULL, 0.0f, dx0 + i * S * D + D, t->patches + i * c->P * c->K,
                           c->P, c->K, D, &pw, NULL);
    } else {
        st = linear_bw(c, NULL, 0.0f, dx0, t->patches, c->n * c->P, c->K, D, &pw, &pb);
    }
    return st;
}

static dlv_status backward(vctx *c, dlv_vision_tape *t, const float *dfeat)
{
    size_t ns = (size_t)(c->n * c->S), nf = (size_t)(c->n * c->F);
    size_t D = (size_t)c->D, I = (size_t)c->I, T = (size_t)c->T;
    int tower = t->lowest <= c->sel;
    grads gr = {0};
    layout L = {0};
    lay_add(&L, &gr.dT1, nf, T);
    lay_add(&L, &gr.dT2, nf, T);
    if (tower) {
        float **nsd[6] = {&gr.dx, &gr.dh, &gr.da, &gr.dq, &gr.dk, &gr.dv};
        for (int i = 0; i < 6; i++) lay_add(&L, nsd[i], ns, D);
        lay_add(&L, &gr.dI1, ns, I);
        lay_add(&L, &gr.dI2, ns, I);
    }
    dlv_status st = lay_alloc(c, &L, &gr.buf, "vision backward scratch");
    if (st != DLV_OK) return st;

    /* Projector. */
    wref w1, b1, w2, b2;
    st = proj_w(c, &w1, &b1, &w2, &b2);
    if (st == DLV_OK)
        st = linear_bw(c, gr.dT1, 0.0f, dfeat, t->g1, (int64_t)nf, c->T, c->T, &w2, &b2);
    if (st == DLV_OK) st = zero(gr.dT2, nf * T);
    if (st == DLV_OK)
        st = dlv_activation_backward(c->be, (dlv_op_act)c->cfg->projector_hidden_act, gr.dT2,
                                     gr.dT1, t->m1, (int64_t)(nf * T));
    float *dfeat_x = NULL; /* dL/d selected tokens, inside dx */
    if (st == DLV_OK && tower) {
        /* Token 0 of each image is dropped by "default": its gradient is 0;
         * dL/d selected goes to dx's other rows, one GEMM per image. */
        zero(gr.dx, ns * D);
        dfeat_x = gr.dx;
    }
    if (st == DLV_OK && (!tower || c->F == c->S))
        st = linear_bw(c, dfeat_x, 0.0f, gr.dT2, t->feat, (int64_t)nf, c->D, c->T, &w1, &b1);
    else if (st == DLV_OK) {
        st = linear_bw(c, NULL, 0.0f, gr.dT2, t->feat, (int64_t)nf, c->D, c->T, &w1, &b1);
        wref w1x = w1;
        w1x.grad = NULL;
        for (int64_t i = 0; i < c->n && st == DLV_OK; i++)
            st = linear_bw(c, gr.dx + (size_t)(i * c->S + (c->S - c->F)) * D, 0.0f,
                           gr.dT2 + (size_t)(i * c->F) * T, NULL, c->F, c->D, c->T, &w1x,
                           NULL);
    }
    if (st != DLV_OK) st = dlv_error_prefix(st, "projector backward");

    int64_t stop = t->lowest == 0 ? 0 : t->lowest - 1;
    for (int64_t l = c->sel - 1; tower && st == DLV_OK && l >= stop; l--) {
        st = layer_bw(c, t, l, &gr);
        if (st != DLV_OK) st = dlv_error_prefix(st, "vision layer %lld backward", (long long)l);
    }
    if (st == DLV_OK && t->lowest == 0) {
        st = embeddings_bw(c, t, &gr);
        if (st != DLV_OK) st = dlv_error_prefix(st, "vision embeddings backward");
    }
    dlv_buffer_free(&gr.buf);
    return st;
}

/* ---- Entry points ------------------------------------------------------------ */

static dlv_status ctx_init(vctx *c, const char *fn, const dlv_model *m, dlv_backend *be,
                           const dlv_wview *wv, int64_t n_images)
{
    if (!m || !be || !wv || !wv->weights)
        return dlv_error(DLV_E_INVALID_ARG, "%s: NULL argument", fn);
    if (n_images < 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: n_images %lld < 0", fn, (long long)n_images);
    const dlv_backend *mbe = dlv_model_backend(m);
    if (!(dlv_backend_caps(be) & DLV_BACKEND_CAP_HOST_MEMORY) ||
        (mbe && !(dlv_backend_caps(mbe) & DLV_BACKEND_CAP_HOST_MEMORY)))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: backend '%s': the vision training pass needs "
                         "host-addressable memory (the CPU backend) in this version", fn,
                         be->ops->name);
    if (wv->weights != dlv_model_weights(m))
        return dlv_error(DLV_E_INVALID_ARG, "%s: the weight view is not of model '%s'", fn,
                         dlv_model_dir(m));
    const dlv_llava_config *cfg = dlv_model_config(m);
    const dlv_vision_config *v = &cfg->vision;
    c->cfg = cfg;
    c->wv = wv;
    c->be = be;
    c->label = dlv_model_dir(m);
    c->n = n_images;
    c->S = dlv_vision_seq_len(cfg);
    c->D = v->hidden_size;
    c->I = v->intermediate_size;
    c->P = (v->image_size / v->patch_size) * (v->image_size / v->patch_size);
    c->K = v->num_channels * v->patch_size * v->patch_size;
    c->F = dlv_vision_n_tokens(cfg);
    c->T = cfg->text.hidden_size;
    c->sel = dlv_vision_select_index(cfg);
    c->heads = v->num_attention_heads;
    c->hd = c->heads > 0 ? c->D / c->heads : 0;
    c->eps = (float)v->layer_norm_eps;
    if (c->sel < 0)
        return dlv_error(DLV_E_FORMAT, "%s: vision_feature_layer %lld is outside the vision "
                         "tower (%lld layers)", c->label, (long long)cfg->vision_feature_layer,
                         (long long)v->num_hidden_layers);
    return DLV_OK;
}

dlv_status dlv_vision_train_forward_ex(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                       const float *pixels, int64_t n_images, int recompute,
                                       dlv_vision_tape **tape, float *features)
{
    static const char fn[] = "dlv_vision_train_forward";
    if (tape) *tape = NULL;
    vctx *c = calloc(1, sizeof *c);
    if (!c) return dlv_error_nomem("vision train context", sizeof *c);
    dlv_status st = ctx_init(c, fn, m, be, wv, n_images);
    if (st == DLV_OK && n_images > 0 && (!pixels || !features))
        st = dlv_error(DLV_E_INVALID_ARG, "%s: %s is NULL", fn, !pixels ? "pixels" : "features");
    if (st == DLV_OK && recompute != 0 && recompute != 1)
        st = dlv_error(DLV_E_INVALID_ARG, "%s: recompute %d is not 0 or 1", fn, recompute);
    dlv_vision_tape *t = NULL;
    if (st == DLV_OK) {
        t = calloc(1, sizeof *t);
        if (!t) st = dlv_error_nomem("vision tape", sizeof *t);
    }
    if (st == DLV_OK) {
        t->m = m;
        t->n = n_images;
        t->recompute = recompute;
        /* Without a tape nothing is saved for a backward. */
        t->lowest = tape ? lowest_trained(c) : c->sel + 2;
        if (n_images > 0) st = tape_alloc(c, t);
    }
    if (st == DLV_OK && n_images > 0) st = forward(c, t, pixels, features);
    free(c->ln_tmp);
    free(c);
    if (st != DLV_OK || !tape) {
        dlv_vision_tape_free(t);
        return st;
    }
    *tape = t;
    return DLV_OK;
}

dlv_status dlv_vision_train_forward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                    const float *pixels, int64_t n_images,
                                    dlv_vision_tape **tape, float *features)
{
    return dlv_vision_train_forward_ex(m, be, wv, pixels, n_images, 0, tape, features);
}

dlv_status dlv_vision_train_backward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                     dlv_vision_tape *tape, const float *dfeatures)
{
    static const char fn[] = "dlv_vision_train_backward";
    if (!tape) return dlv_error(DLV_E_INVALID_ARG, "%s: tape is NULL", fn);
    if (tape->m != m)
        return dlv_error(DLV_E_INVALID_ARG, "%s: the tape is of another model", fn);
    vctx *c = calloc(1, sizeof *c);
    if (!c) return dlv_error_nomem("vision train context", sizeof *c);
    dlv_status st = ctx_init(c, fn, m, be, wv, tape->n);
    if (st == DLV_OK && tape->n > 0 && !dfeatures)
        st = dlv_error(DLV_E_INVALID_ARG, "%s: dfeatures is NULL", fn);
    if (st == DLV_OK && lowest_trained(c) < tape->lowest)
        st = dlv_error(DLV_E_INVALID_ARG, "%s: the view trains weights below what the forward "
                       "saved (stage %lld < %lld): use the forward's view", fn,
                       (long long)lowest_trained(c), (long long)tape->lowest);
    if (st == DLV_OK && tape->n > 0 && tape->lowest <= c->sel + 1)
        st = backward(c, tape, dfeatures);
    free(c->ln_tmp);
    free(c);
    return st;
}

size_t dlv_vision_tape_bytes(const dlv_vision_tape *t)
{
    return t ? t->buf.size : 0;
}

void dlv_vision_tape_free(dlv_vision_tape *t)
{
    if (!t) return;
    dlv_buffer_free(&t->buf);
    free(t->acts);
    free(t);
}
