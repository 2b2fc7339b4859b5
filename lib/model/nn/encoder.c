/* The pre-LN encoder layer stack, forward and backward (see encoder.h). */
#include "model/nn/encoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* One layer's activations (device): x_in [R, D], h1, q, k, v, a, x2, h2
 * [R, D], f [R, I] (fc1's or gate_proj's output, before the activation),
 * u [R, I] (up_proj's output; glu only). */
typedef struct acts {
    float *x_in, *h1, *q, *k, *v, *a, *x2, *h2, *f, *u;
} acts;

struct dlv_encoder_tape {
    dlv_encoder_dims d;
    int64_t n_layers, save_from, n, S, R;
    int recompute;
    const uint8_t *key_mask;
    dlv_buffer store;      /* the saved sets, then the work set and scratch */
    size_t store_bytes;
    acts *layers;          /* [n_layers - save_from]: full sets, or x_in only */
    acts work;             /* recompute: one layer's set but x_in */
    float *g, *o;          /* scratch: act(f) [R, I], projections' outputs [R, D] */
};

#define PF(buf) ((float *)dlv_buffer_ptr(&(buf)))

static float *carve(size_t R, size_t D, size_t I, int glu, float *p, acts *A, int with_x_in)
{
    float **parts[8] = {&A->x_in, &A->h1, &A->q, &A->k, &A->v, &A->a, &A->x2, &A->h2};
    for (int j = with_x_in ? 0 : 1; j < 8; j++) {
        *parts[j] = p;
        p += R * D;
    }
    A->f = p;
    p += R * I;
    A->u = glu ? p : NULL;
    return glu ? p + R * I : p;
}

void dlv_encoder_tape_free(dlv_encoder_tape *t)
{
    if (!t) return;
    dlv_buffer_free(&t->store);
    free(t->layers);
    free(t);
}

size_t dlv_encoder_tape_bytes(const dlv_encoder_tape *t) { return t ? t->store_bytes : 0; }

/* The store: the saved layers (full sets, or inputs with recompute), a
 * work set (recompute, or for the unsaved layers below save_from), then
 * the scratch g [R, I] and o [R, D]. */
static dlv_status tape_alloc(dlv_backend *be, dlv_encoder_tape *t)
{
    const size_t R = (size_t)t->R, D = (size_t)t->d.hidden, I = (size_t)t->d.inter;
    const size_t n_saved = (size_t)(t->n_layers - t->save_from);
    const size_t set = 8 * R * D + (t->d.glu ? 2 : 1) * R * I;
    const int need_work = t->recompute || t->save_from > 0;
    const size_t floats = (t->recompute ? n_saved * R * D : n_saved * set) +
                          (need_work ? set - R * D : 0) + R * I + R * D;
    t->layers = calloc(n_saved ? n_saved : 1, sizeof *t->layers);
    if (!t->layers) return dlv_error_nomem("encoder tape", n_saved * sizeof *t->layers);
    t->store_bytes = floats * sizeof(float);
    dlv_status st = dlv_buffer_alloc(be, t->store_bytes, &t->store);
    if (st) return dlv_error_prefix(st, "encoder activations");
    float *p = PF(t->store);
    for (size_t l = 0; l < n_saved; l++) {
        if (t->recompute) {
            t->layers[l].x_in = p;
            p += R * D;
        } else {
            p = carve(R, D, I, t->d.glu, p, &t->layers[l], 1);
        }
    }
    if (need_work) p = carve(R, D, I, t->d.glu, p, &t->work, 0);
    t->g = p;
    t->o = p + R * I;
    return DLV_OK;
}

/* The activations of layer l (l >= save_from). */
static acts layer_acts(const dlv_encoder_tape *t, int64_t l)
{
    const acts *saved = &t->layers[l - t->save_from];
    if (!t->recompute) return *saved;
    acts A = t->work;
    A.x_in = saved->x_in;
    return A;
}

static dlv_status ln(dlv_backend *be, float *out, const float *in, const dlv_layernorm_w *w,
                     int64_t rows, const dlv_encoder_dims *d)
{
    if (d->rms_norm)
        return dlv_rmsnorm(be, out, in, dlv_tensor_data(&w->w), w->w.dtype, rows, d->hidden,
                           d->eps);
    return dlv_layernorm(be, out, in, dlv_tensor_data(&w->w), dlv_tensor_data(&w->b), w->w.dtype,
                         rows, d->hidden, d->eps);
}

/* sum = a + b, out = norm(sum) (the attention residual and ln2). */
static dlv_status add_ln(dlv_backend *be, float *sum, float *out, const float *a, const float *b,
                         const dlv_layernorm_w *w, int64_t rows, const dlv_encoder_dims *d)
{
    if (d->rms_norm)
        return dlv_add_rmsnorm(be, sum, out, a, b, dlv_tensor_data(&w->w), w->w.dtype, rows,
                               d->hidden, d->eps);
    return dlv_add_layernorm(be, sum, out, a, b, dlv_tensor_data(&w->w),
                             dlv_tensor_data(&w->b), w->w.dtype, rows, d->hidden, d->eps);
}

/* y = linear(x) over all rows, or per sequence of S rows. */
static dlv_status lin_fw(dlv_backend *be, const dlv_encoder_tape *t, float *y, const float *x,
                         const dlv_linear *w)
{
    if (!t->d.per_sequence) return dlv_linear_forward(be, y, x, t->R, w, NULL, NULL);
    const int64_t in = dlv_linear_in(w), out = dlv_linear_out(w);
    for (int64_t i = 0; i < t->n; i++) {
        dlv_status st = dlv_linear_forward(be, y + i * t->S * out, x + i * t->S * in, t->S, w,
                                           NULL, NULL);
        if (st) return st;
    }
    return DLV_OK;
}

typedef struct grads grads;

/* Attention (gr NULL) or its backward (into gr's dq, dk, dv from gr's da)
 * over `batch` sequences of `len` rows from row row0. */
static dlv_status attn_group(dlv_backend *be, const dlv_encoder_tape *t, const acts *A,
                             const grads *gr, int64_t row0, int64_t batch, int64_t len,
                             const uint8_t *key_mask);

/* Layer l attends within windows (rather than over each sequence). */
static int windowed(const dlv_encoder_tape *t, int64_t l)
{
    return t->d.n_windows > 0 && !(t->d.full_attn && t->d.full_attn[l]);
}

/* Layer l's attention or its backward: one call over the n sequences, or
 * with windows one call per run of equal-length windows (batched: a full
 * window grid is one call, its partial edge windows a few more). */
static dlv_status attention(dlv_backend *be, const dlv_encoder_tape *t, const acts *A,
                            const grads *gr, int64_t l)
{
    if (!windowed(t, l)) return attn_group(be, t, A, gr, 0, t->n, t->S, t->key_mask);
    const int64_t *lens = t->d.window_lens;
    int64_t row = 0;
    for (int64_t i = 0; i < t->d.n_windows;) {
        int64_t k = 1;
        while (i + k < t->d.n_windows && lens[i + k] == lens[i]) k++;
        dlv_status st = attn_group(be, t, A, gr, row, k, lens[i], NULL);
        if (st) return dlv_error_prefix(st, "window %lld", (long long)i);
        row += k * lens[i];
        i += k;
    }
    return DLV_OK;
}

/* Layer l from A->x_in into A's fields and, with x_out, its output (x_out
 * may be A->x_in). */
static dlv_status layer_forward(dlv_backend *be, const dlv_encoder_tape *t,
                                const dlv_encoder_layer_w *w, int64_t l, const acts *A,
                                float *x_out)
{
    const dlv_encoder_dims *d = &t->d;
    const int64_t R = t->R;
    dlv_status st;
    if ((st = ln(be, A->h1, A->x_in, &w->ln1, R, d))) return dlv_error_prefix(st, "layer_norm1");
    if ((st = lin_fw(be, t, A->q, A->h1, &w->lin[DLV_ENC_Q])) ||
        (st = lin_fw(be, t, A->k, A->h1, &w->lin[DLV_ENC_K])) ||
        (st = lin_fw(be, t, A->v, A->h1, &w->lin[DLV_ENC_V])))
        return dlv_error_prefix(st, "self_attn q/k/v");
    if (d->rope_cos) {
        const int64_t hd = d->hidden / d->n_heads;
        if ((st = dlv_rope_table(be, A->q, d->rope_cos, d->rope_sin, R, d->n_heads, hd)) ||
            (st = dlv_rope_table(be, A->k, d->rope_cos, d->rope_sin, R, d->n_heads, hd)))
            return dlv_error_prefix(st, "self_attn rotary");
    }
    if ((st = attention(be, t, A, NULL, l))) return dlv_error_prefix(st, "self_attn");
    if ((st = lin_fw(be, t, t->o, A->a, &w->lin[DLV_ENC_O])))
        return dlv_error_prefix(st, "out_proj");
    if ((st = add_ln(be, A->x2, A->h2, A->x_in, t->o, &w->ln2, R, d)))
        return dlv_error_prefix(st, "attention residual + layer_norm2");
    if ((st = lin_fw(be, t, A->f, A->h2, &w->lin[DLV_ENC_FC1])))
        return dlv_error_prefix(st, d->glu ? "mlp.gate_proj" : "fc1");
    if (d->glu && (st = lin_fw(be, t, A->u, A->h2, &w->up)))
        return dlv_error_prefix(st, "mlp.up_proj");
    if (!x_out) return DLV_OK;
    st = d->glu ? dlv_swiglu(be, t->g, A->f, A->u, R * d->inter)
                : dlv_activation(be, d->act, t->g, A->f, R * d->inter);
    if (st) return dlv_error_prefix(st, "mlp activation");
    if ((st = lin_fw(be, t, t->o, t->g, &w->lin[DLV_ENC_FC2]))) return dlv_error_prefix(st, "fc2");
    if ((st = dlv_add(be, x_out, A->x2, t->o, DLV_DTYPE_F32, 0, R, d->hidden)))
        return dlv_error_prefix(st, "mlp residual");
    return DLV_OK;
}

dlv_status dlv_encoder_forward(dlv_backend *be, const dlv_encoder_dims *d,
                               const dlv_encoder_layer_w *w, int64_t n_layers, const float *x,
                               int64_t n, int64_t S, const uint8_t *key_mask, int64_t save_from,
                               int recompute, dlv_encoder_tape **tape, float *out, float *trace)
{
    if (tape) *tape = NULL;
    if (!be || !d || (n_layers > 0 && !w) || !x || !out || n < 1 || S < 1 || n_layers < 0)
        return dlv_error(DLV_E_INVALID_ARG, "encoder forward: bad arguments");
    if (d->n_heads < 1 || d->hidden % d->n_heads)
        return dlv_error(DLV_E_INVALID_ARG, "encoder forward: hidden %lld is not a multiple of "
                         "%lld heads", (long long)d->hidden, (long long)d->n_heads);
    if (!d->rope_cos != !d->rope_sin)
        return dlv_error(DLV_E_INVALID_ARG, "encoder forward: rope_%s is NULL but rope_%s is "
                         "not", d->rope_cos ? "sin" : "cos", d->rope_cos ? "cos" : "sin");
    if (n > INT32_MAX / S)
        return dlv_error(DLV_E_INVALID_ARG, "encoder forward: %lld x %lld rows is too many",
                         (long long)n, (long long)S);
    if (d->glu && d->act != DLV_OP_ACT_SILU)
        return dlv_error(DLV_E_INVALID_ARG, "encoder forward: glu needs act SILU (dlv_swiglu)");
    if (d->n_windows < 0 || (d->n_windows > 0 && (!d->window_lens || key_mask)))
        return dlv_error(DLV_E_INVALID_ARG, "encoder forward: window_lens NULL, n_windows < 0 "
                         "or windows with a key_mask");
    int64_t rows = 0;
    for (int64_t i = 0; i < d->n_windows; i++) {
        if (d->window_lens[i] < 1 || d->window_lens[i] > n * S - rows)
            return dlv_error(DLV_E_INVALID_ARG, "encoder forward: window_lens[%lld] = %lld is "
                             "< 1 or past the %lld rows", (long long)i,
                             (long long)d->window_lens[i], (long long)(n * S));
        rows += d->window_lens[i];
    }
    if (d->n_windows > 0 && rows != n * S)
        return dlv_error(DLV_E_INVALID_ARG, "encoder forward: window_lens sum to %lld, not the "
                         "%lld rows", (long long)rows, (long long)(n * S));
    dlv_encoder_tape *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("encoder tape", sizeof *t);
    t->d = *d;
    t->n_layers = n_layers;
    /* Without a tape: one recomputed work set serves every layer. */
    t->save_from = tape ? (save_from < 0 ? 0 : save_from > n_layers ? n_layers : save_from)
                        : n_layers;
    t->recompute = recompute || !tape;
    t->n = n;
    t->S = S;
    t->R = n * S;
    t->key_mask = key_mask;
    dlv_status st = tape_alloc(be, t);
    const size_t plane = (size_t)t->R * (size_t)d->hidden, plane_bytes = plane * sizeof(float);
    if (!st && x != out) st = dlv_copy(be, out, x, plane_bytes);
    if (!st && trace) st = dlv_copy(be, trace, out, plane_bytes);
    for (int64_t l = 0; !st && l < n_layers; l++) {
        acts A;
        if (l >= t->save_from) {
            A = layer_acts(t, l);
            st = dlv_copy(be, A.x_in, out, plane_bytes);
        } else {
            /* Not saved: the work set, in place on out. */
            A = t->work;
            A.x_in = out;
        }
        if (!st) st = layer_forward(be, t, &w[l], l, &A, out);
        if (st) st = dlv_error_prefix(st, "layer %lld", (long long)l);
        if (!st && trace)
            st = dlv_copy(be, trace + (size_t)(l + 1) * plane, out, plane_bytes);
    }
    if (st || !tape) {
        dlv_encoder_tape_free(t);
        return st;
    }
    *tape = t;
    return DLV_OK;
}

/* ---- backward ---------------------------------------------------------- */

/* dU [R, I]: the gradient of up_proj's output (glu only). */
struct grads {
    dlv_buffer buf;
    float *dx, *dh, *da, *dq, *dk, *dv, *dI1, *dI2, *dU;
};

static dlv_status attn_group(dlv_backend *be, const dlv_encoder_tape *t, const acts *A,
                             const grads *gr, int64_t row0, int64_t batch, int64_t len,
                             const uint8_t *key_mask)
{
    const dlv_encoder_dims *d = &t->d;
    const int64_t hd = d->hidden / d->n_heads;
    const size_t o = (size_t)(row0 * d->hidden);
    const float scale = (float)(1.0 / sqrt((double)hd));
    if (!gr) {
        dlv_attention_args a = {
            .struct_size = sizeof a, .out = A->a + o, .q = A->q + o, .k = A->k + o,
            .v = A->v + o, .key_mask = key_mask, .batch = batch, .n_q = len, .n_kv = len,
            .n_heads = d->n_heads, .n_kv_heads = d->n_heads, .head_dim = hd, .scale = scale,
            .causal = d->causal,
        };
        return dlv_attention(be, &a);
    }
    dlv_attention_bw_args ab = {
        .struct_size = sizeof ab, .dq = gr->dq + o, .dk = gr->dk + o, .dv = gr->dv + o,
        .dout = gr->da + o, .q = A->q + o, .k = A->k + o, .v = A->v + o, .key_mask = key_mask,
        .batch = batch, .n_q = len, .n_kv = len, .n_heads = d->n_heads,
        .n_kv_heads = d->n_heads, .head_dim = hd, .scale = scale, .causal = d->causal,
    };
    return dlv_attention_backward(be, &ab);
}

static dlv_status lin_bw(dlv_backend *be, const dlv_encoder_tape *t, float *dx, float beta,
                         const float *dy, const float *x, const dlv_linear *w,
                         const dlv_linear *gw)
{
    if (!t->d.per_sequence)
        return dlv_linear_backward(be, dx, beta, dy, x, t->R, w, gw, NULL, NULL, NULL, NULL);
    const int64_t in = dlv_linear_in(w), out = dlv_linear_out(w);
    for (int64_t i = 0; i < t->n; i++) {
        dlv_status st = dlv_linear_backward(be, dx ? dx + i * t->S * in : NULL, beta,
                                            dy + i * t->S * out, x + i * t->S * in, t->S, w, gw,
                                            NULL, NULL, NULL, NULL);
        if (st) return st;
    }
    return DLV_OK;
}

static dlv_status ln_bw(dlv_backend *be, float *dinp, const float *dout, const float *inp,
                        const dlv_layernorm_w *w, const dlv_layernorm_w *g, int64_t rows,
                        const dlv_encoder_dims *d)
{
    if (d->rms_norm)
        return dlv_rmsnorm_backward(be, dinp, g ? dlv_tensor_f32(&g->w) : NULL, dout, inp,
                                    dlv_tensor_data(&w->w), w->w.dtype, rows, d->hidden, d->eps);
    return dlv_layernorm_backward(be, dinp, g ? dlv_tensor_f32(&g->w) : NULL,
                                  g ? dlv_tensor_f32(&g->b) : NULL, dout, inp,
                                  dlv_tensor_data(&w->w), w->w.dtype, rows, d->hidden, d->eps);
}

/* gr->dx: in, the gradient of the layer's output; out, of its input. */
static dlv_status layer_backward(dlv_backend *be, const dlv_encoder_tape *t,
                                 const dlv_encoder_layer_w *w, const dlv_encoder_layer_w *g,
                                 int64_t l, const acts *A, grads *gr)
{
    const dlv_encoder_dims *d = &t->d;
    const int64_t R = t->R, D = d->hidden, I = d->inter;
    const size_t RD = (size_t)(R * D) * sizeof(float), RI = (size_t)(R * I) * sizeof(float);
#define GLIN(m) (g ? &g->lin[m] : NULL)
    dlv_status st = d->glu ? dlv_swiglu(be, t->g, A->f, A->u, R * I)
                           : dlv_activation(be, d->act, t->g, A->f, R * I);
    if (!st) st = lin_bw(be, t, gr->dI1, 0.0f, gr->dx, t->g, &w->lin[DLV_ENC_FC2], GLIN(DLV_ENC_FC2));
    if (!st) st = dlv_zero(be, gr->dI2, RI);
    if (!st && d->glu) st = dlv_zero(be, gr->dU, RI);
    if (!st)
        st = d->glu ? dlv_swiglu_backward(be, gr->dI2, gr->dU, gr->dI1, A->f, A->u, R * I)
                    : dlv_activation_backward(be, d->act, gr->dI2, gr->dI1, A->f, R * I);
    if (!st) st = lin_bw(be, t, gr->dh, 0.0f, gr->dI2, A->h2, &w->lin[DLV_ENC_FC1], GLIN(DLV_ENC_FC1));
    if (!st && d->glu)
        st = lin_bw(be, t, gr->dh, 1.0f, gr->dU, A->h2, &w->up, g ? &g->up : NULL);
    if (st) return dlv_error_prefix(st, "mlp");
    /* x' = x2 + mlp(x2): dx2 = dx' + ln2'(dh); the layernorm backward adds. */
    if ((st = ln_bw(be, gr->dx, gr->dh, A->x2, &w->ln2, g ? &g->ln2 : NULL, R, d)))
        return dlv_error_prefix(st, "layer_norm2");
    if ((st = lin_bw(be, t, gr->da, 0.0f, gr->dx, A->a, &w->lin[DLV_ENC_O], GLIN(DLV_ENC_O))))
        return dlv_error_prefix(st, "out_proj");
    if ((st = dlv_zero(be, gr->dq, RD)) || (st = dlv_zero(be, gr->dk, RD)) ||
        (st = dlv_zero(be, gr->dv, RD)))
        return st;
    if ((st = attention(be, t, A, gr, l))) return dlv_error_prefix(st, "self_attn");
    if (d->rope_cos) {
        /* The tape holds the rotated q and k; the projections' gradients
         * need the rotation undone. */
        const int64_t hd = D / d->n_heads;
        if ((st = dlv_rope_table_backward(be, gr->dq, d->rope_cos, d->rope_sin, R, d->n_heads,
                                          hd)) ||
            (st = dlv_rope_table_backward(be, gr->dk, d->rope_cos, d->rope_sin, R, d->n_heads,
                                          hd)))
            return dlv_error_prefix(st, "self_attn rotary");
    }
    if ((st = lin_bw(be, t, gr->dh, 0.0f, gr->dq, A->h1, &w->lin[DLV_ENC_Q], GLIN(DLV_ENC_Q))) ||
        (st = lin_bw(be, t, gr->dh, 1.0f, gr->dk, A->h1, &w->lin[DLV_ENC_K], GLIN(DLV_ENC_K))) ||
        (st = lin_bw(be, t, gr->dh, 1.0f, gr->dv, A->h1, &w->lin[DLV_ENC_V], GLIN(DLV_ENC_V))))
        return dlv_error_prefix(st, "self_attn q/k/v");
    if ((st = ln_bw(be, gr->dx, gr->dh, A->x_in, &w->ln1, g ? &g->ln1 : NULL, R, d)))
        return dlv_error_prefix(st, "layer_norm1");
#undef GLIN
    return DLV_OK;
}

dlv_status dlv_encoder_backward(dlv_backend *be, const dlv_encoder_layer_w *w,
                                const dlv_encoder_layer_w *gw, dlv_encoder_tape *t,
                                const float *dout, float *dx)
{
    if (!be || !t || !dout || (t->n_layers > 0 && !w))
        return dlv_error(DLV_E_INVALID_ARG, "encoder backward: NULL argument");
    const size_t R = (size_t)t->R, D = (size_t)t->d.hidden, I = (size_t)t->d.inter;
    grads gr = {0};
    const size_t sizes[9] = {R * D, R * D, R * D, R * D, R * D, R * D, R * I, R * I,
                             t->d.glu ? R * I : 0};
    size_t total = 0;
    for (int i = 0; i < 9; i++) total += sizes[i];
    dlv_status st = dlv_buffer_alloc(be, total * sizeof(float), &gr.buf);
    if (!st) {
        float *p = PF(gr.buf);
        float **dst[9] = {&gr.dx, &gr.dh, &gr.da, &gr.dq, &gr.dk, &gr.dv, &gr.dI1, &gr.dI2,
                          &gr.dU};
        for (int i = 0; i < 9; i++) {
            *dst[i] = p;
            p += sizes[i];
        }
        st = dlv_copy(be, gr.dx, dout, R * D * sizeof(float));
    }
    for (int64_t l = t->n_layers - 1; !st && l >= t->save_from; l--) {
        const acts A = layer_acts(t, l);
        if (t->recompute && (st = layer_forward(be, t, &w[l], l, &A, NULL))) {
            st = dlv_error_prefix(st, "layer %lld (recompute)", (long long)l);
            break;
        }
        if ((st = layer_backward(be, t, &w[l], gw ? &gw[l] : NULL, l, &A, &gr)))
            st = dlv_error_prefix(st, "layer %lld (backward)", (long long)l);
    }
    if (!st && dx) st = dlv_copy(be, dx, gr.dx, R * D * sizeof(float));
    dlv_buffer_free(&gr.buf);
    return st;
}
