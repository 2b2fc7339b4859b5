/* The language model's training forward and backward (see text_train.h).
 *
 * Layer l, with per-token rows (n = batch * max_len) and the activations the
 * backward reads (saved, or recomputed from h_in with recompute = 1):
 *   x1    = rmsnorm(h_in, ln1)
 *   q,k,v = linear(x1) (+ biases, + LoRA); q, k rotated in place (saved rotated)
 *   att   = attention(q, k, v)            (causal, padded keys masked)
 *   h_mid = h_in + linear_o(att)
 *   x2    = rmsnorm(h_mid, ln2)
 *   gate, up = linear(x2);  sw = silu(gate) * up
 *   h_out = h_mid + linear_down(sw)       (the next layer's h_in)
 * then hidden = rmsnorm(h_last, norm). The op calls are those of
 * model/text_model.c in the same order, so the values are the same.
 *
 * A linear y = x W^T + b + s (x A^T) B^T with dy gives
 *   dx += dy W + s (dy B) A,  dW += dy^T x,  db += colsum(dy),
 *   dB += s dy^T (x A^T),     dA += s (dy B)^T x. */
#include "train/text_train.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "model/text_model.h"

typedef struct dims {
    int64_t batch, len, n, hidden, inter, n_heads, n_kv, head_dim, qd, kvd, n_layers, rank;
    float eps;
    double theta;
} dims;

/* One layer's activations, [n, width] each. */
typedef struct acts {
    float *h_in, *x1, *q, *k, *v, *att, *h_mid, *x2, *gate, *up, *sw;
} acts;

struct dlv_text_tape {
    const dlv_model *m;
    dims d;
    int recompute;
    int has_lora;
    unsigned lora_targets;
    int32_t *lengths;      /* [batch] */
    int32_t *positions;    /* [n], host (the ops take host positions) */
    dlv_buffer mask;       /* [n] uint8 */
    dlv_buffer store;      /* the saved activations */
    acts *layers;          /* [n_layers]: all fields, or h_in only (recompute) */
    float *h_last;         /* the final norm's input [n, hidden] */
    dlv_buffer work;       /* recompute: the fields of one layer but h_in */
    acts work_acts;
    dlv_buffer tmp;        /* [n, hidden]: o_proj / down_proj outputs, the final norm */
    dlv_buffer lora_tmp;   /* [n, rank] */
};

/* ---- weights through the view ------------------------------------------ */

typedef struct wref {
    const dlv_st_tensor *t;  /* NULL: an absent optional bias */
    float *g;                /* NULL: frozen */
} wref;

typedef struct layer_w {
    wref ln1, q, k, v, o, qb, kb, vb, ob, ln2, gate, up, down, gb, ub, db;
} layer_w;

static dlv_status get_w(const dlv_model *m, const dlv_wview *wv, const char *canonical,
                        uint64_t n_elements, int required, wref *out)
{
    out->t = dlv_wview_get(wv, DLV_PART_TEXT, canonical, &out->g);
    if (!out->t) {
        out->g = NULL;
        if (!required) return DLV_OK;
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s' (language model) is missing",
                         dlv_model_dir(m), canonical);
    }
    if (out->t->n_elements != n_elements)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': %llu elements, expected %llu",
                         dlv_model_dir(m), canonical, (unsigned long long)out->t->n_elements,
                         (unsigned long long)n_elements);
    if (!out->t->data && n_elements)
        return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': the weight view has no data",
                         dlv_model_dir(m), canonical);
    return DLV_OK;
}

static dlv_status layer_weights(const dlv_model *m, const dlv_wview *wv, const dims *d,
                                int64_t i, layer_w *lw)
{
    const uint64_t h = (uint64_t)d->hidden, im = (uint64_t)d->inter;
    const uint64_t qd = (uint64_t)d->qd, kvd = (uint64_t)d->kvd;
    char n[DLV_WEIGHT_NAME_MAX];
    dlv_status st = DLV_OK;
#define W(field, suffix, count, req)                                              \
    do {                                                                          \
        snprintf(n, sizeof n, "layers.%lld.%s", (long long)i, suffix);            \
        if ((st = get_w(m, wv, n, count, req, &lw->field))) return st;           \
    } while (0)
    W(ln1, "input_layernorm.weight", h, 1);
    W(q, "self_attn.q_proj.weight", qd * h, 1);
    W(k, "self_attn.k_proj.weight", kvd * h, 1);
    W(v, "self_attn.v_proj.weight", kvd * h, 1);
    W(o, "self_attn.o_proj.weight", h * qd, 1);
    W(qb, "self_attn.q_proj.bias", qd, 0);
    W(kb, "self_attn.k_proj.bias", kvd, 0);
    W(vb, "self_attn.v_proj.bias", kvd, 0);
    W(ob, "self_attn.o_proj.bias", h, 0);
    W(ln2, "post_attention_layernorm.weight", h, 1);
    W(gate, "mlp.gate_proj.weight", im * h, 1);
    W(up, "mlp.up_proj.weight", im * h, 1);
    W(down, "mlp.down_proj.weight", h * im, 1);
    W(gb, "mlp.gate_proj.bias", im, 0);
    W(ub, "mlp.up_proj.bias", im, 0);
    W(db, "mlp.down_proj.bias", h, 0);
#undef W
    return st;
}

/* ---- linear layers ------------------------------------------------------ */

/* A module's LoRA pair (a NULL: none), its gradients (NULL: not wanted) and
 * scratch [rows, rank]. */
typedef struct lora_ref {
    const float *a, *b;
    float *ga, *gb;
    int64_t rank;
    float scale;
    float *tmp, *tmp2;
} lora_ref;

static lora_ref lora_at(const dlv_lora *lora, dlv_lora *grad, int64_t layer, dlv_lora_module m,
                        float *tmp, float *tmp2)
{
    lora_ref r = {NULL, NULL, NULL, NULL, 0, 0.0f, tmp, tmp2};
    if (lora) {
        r.a = dlv_lora_a(lora, layer, m);
        r.b = dlv_lora_b(lora, layer, m);
        r.rank = lora->rank;
        r.scale = lora->scale;
        if (grad && r.a) {
            r.ga = dlv_lora_a(grad, layer, m);
            r.gb = dlv_lora_b(grad, layer, m);
        }
    }
    return r;
}

static dlv_status mm(dlv_backend *be, dlv_transpose ta, dlv_transpose tb, int64_t m, int64_t n,
                     int64_t k, float alpha, const float *a, int64_t lda, const void *b,
                     dlv_dtype b_dtype, int64_t ldb, float beta, float *c, int64_t ldc)
{
    dlv_matmul_args args = {
        .struct_size = sizeof args,
        .trans_a = ta, .trans_b = tb,
        .m = m, .n = n, .k = k,
        .alpha = alpha, .beta = beta,
        .a = a, .a_dtype = DLV_DTYPE_F32, .lda = lda,
        .b = b, .b_dtype = b_dtype, .ldb = ldb,
        .c = c, .ldc = ldc,
    };
    return dlv_matmul(be, &args);
}

/* y[rows, n_out] = x W^T (+ b) (+ scale (x A^T) B^T), exactly as
 * text_model.c's linear. */
static dlv_status linear(dlv_backend *be, float *y, const float *x, int64_t rows, int64_t n_in,
                         int64_t n_out, const wref *w, const wref *b, const lora_ref *lr)
{
    dlv_status st = mm(be, DLV_NO_TRANS, DLV_TRANS, rows, n_out, n_in, 1.0f, x, n_in,
                       w->t->data, w->t->dtype, n_in, 0.0f, y, n_out);
    if (st) return dlv_error_prefix(st, "%s", w->t->name);
    if (b->t && (st = dlv_add_bias(be, y, b->t->data, b->t->dtype, rows, n_out)))
        return dlv_error_prefix(st, "%s", b->t->name);
    if (lr->a) {
        if ((st = mm(be, DLV_NO_TRANS, DLV_TRANS, rows, lr->rank, n_in, 1.0f, x, n_in, lr->a,
                     DLV_DTYPE_F32, n_in, 0.0f, lr->tmp, lr->rank)) ||
            (st = mm(be, DLV_NO_TRANS, DLV_TRANS, rows, n_out, lr->rank, lr->scale, lr->tmp,
                     lr->rank, lr->b, DLV_DTYPE_F32, lr->rank, 1.0f, y, n_out)))
            return dlv_error_prefix(st, "%s (LoRA)", w->t->name);
    }
    return DLV_OK;
}

/* The backward of linear: dx += dy W (+ LoRA), and the gradients of W, b, A,
 * B where wanted. dy [rows, n_out], x [rows, n_in]. */
static dlv_status linear_backward(dlv_backend *be, float *dx, const float *dy, const float *x,
                                  int64_t rows, int64_t n_in, int64_t n_out, const wref *w,
                                  const wref *b, const lora_ref *lr)
{
    dlv_status st;
    if ((st = mm(be, DLV_NO_TRANS, DLV_NO_TRANS, rows, n_in, n_out, 1.0f, dy, n_out, w->t->data,
                 w->t->dtype, n_in, 1.0f, dx, n_in)))
        return dlv_error_prefix(st, "%s (backward, dx)", w->t->name);
    if (w->g && (st = mm(be, DLV_TRANS, DLV_NO_TRANS, n_out, n_in, rows, 1.0f, dy, n_out, x,
                         DLV_DTYPE_F32, n_in, 1.0f, w->g, n_in)))
        return dlv_error_prefix(st, "%s (backward, dW)", w->t->name);
    if (b->t && b->g && (st = dlv_bias_backward(be, b->g, dy, rows, n_out)))
        return dlv_error_prefix(st, "%s (backward)", b->t->name);
    if (lr->a) {
        const int64_t r = lr->rank;
        /* tmp2 = dy B [rows, r] */
        if ((st = mm(be, DLV_NO_TRANS, DLV_NO_TRANS, rows, r, n_out, 1.0f, dy, n_out, lr->b,
                     DLV_DTYPE_F32, r, 0.0f, lr->tmp2, r)))
            goto fail;
        if (lr->gb) {
            /* tmp = x A^T [rows, r] (recomputed); dB += s dy^T tmp */
            if ((st = mm(be, DLV_NO_TRANS, DLV_TRANS, rows, r, n_in, 1.0f, x, n_in, lr->a,
                         DLV_DTYPE_F32, n_in, 0.0f, lr->tmp, r)) ||
                (st = mm(be, DLV_TRANS, DLV_NO_TRANS, n_out, r, rows, lr->scale, dy, n_out,
                         lr->tmp, DLV_DTYPE_F32, r, 1.0f, lr->gb, r)) ||
                /* dA += s tmp2^T x */
                (st = mm(be, DLV_TRANS, DLV_NO_TRANS, r, n_in, rows, lr->scale, lr->tmp2, r, x,
                         DLV_DTYPE_F32, n_in, 1.0f, lr->ga, n_in)))
                goto fail;
        }
        /* dx += s tmp2 A */
        if ((st = mm(be, DLV_NO_TRANS, DLV_NO_TRANS, rows, n_in, r, lr->scale, lr->tmp2, r,
                     lr->a, DLV_DTYPE_F32, n_in, 1.0f, dx, n_in)))
            goto fail;
    }
    return DLV_OK;
fail:
    return dlv_error_prefix(st, "%s (LoRA backward)", w->t->name);
}

/* ---- one layer ---------------------------------------------------------- */

typedef struct fwd_ctx {
    dlv_backend *be;
    const dims *d;
    const int32_t *positions;
    const uint8_t *mask;
    float *tmp;            /* [n, hidden] */
    float *lora_tmp;       /* [n, rank] or NULL */
} fwd_ctx;

/* Computes A's fields from A->h_in; with h_out, also the layer's output
 * (else the down projection and the last residual, which the backward does
 * not need, are skipped). */
static dlv_status layer_forward(const fwd_ctx *c, const layer_w *w, const dlv_lora *lora,
                                int64_t layer, const acts *A, float *h_out)
{
    dlv_backend *be = c->be;
    const dims *d = c->d;
    lora_ref lr[DLV_LORA_N_MODULES];
    for (int i = 0; i < DLV_LORA_N_MODULES; i++)
        lr[i] = lora_at(lora, NULL, layer, (dlv_lora_module)i, c->lora_tmp, NULL);
    dlv_status st;
    if ((st = dlv_rmsnorm(be, A->x1, A->h_in, w->ln1.t->data, w->ln1.t->dtype, d->n, d->hidden,
                          d->eps)))
        return dlv_error_prefix(st, "%s", w->ln1.t->name);
    if ((st = linear(be, A->q, A->x1, d->n, d->hidden, d->qd, &w->q, &w->qb, &lr[DLV_LORA_Q])) ||
        (st = linear(be, A->k, A->x1, d->n, d->hidden, d->kvd, &w->k, &w->kb,
                     &lr[DLV_LORA_K])) ||
        (st = linear(be, A->v, A->x1, d->n, d->hidden, d->kvd, &w->v, &w->vb,
                     &lr[DLV_LORA_V])))
        return st;
    if ((st = dlv_rope(be, A->q, c->positions, d->n, d->n_heads, d->head_dim, d->theta)) ||
        (st = dlv_rope(be, A->k, c->positions, d->n, d->n_kv, d->head_dim, d->theta)))
        return dlv_error_prefix(st, "rope");
    dlv_attention_args aa = {
        .struct_size = sizeof aa,
        .out = A->att, .q = A->q, .k = A->k, .v = A->v,
        .key_mask = c->mask,
        .batch = d->batch, .n_q = d->len, .n_kv = d->len,
        .n_heads = d->n_heads, .n_kv_heads = d->n_kv, .head_dim = d->head_dim,
        .scale = (float)(1.0 / sqrt((double)d->head_dim)),
        .causal = 1,
    };
    if ((st = dlv_attention(be, &aa))) return dlv_error_prefix(st, "self_attn");
    if ((st = linear(be, c->tmp, A->att, d->n, d->qd, d->hidden, &w->o, &w->ob,
                     &lr[DLV_LORA_O])))
        return st;
    if ((st = dlv_add(be, A->h_mid, A->h_in, c->tmp, DLV_DTYPE_F32, 0, d->n, d->hidden)))
        return dlv_error_prefix(st, "attention residual");
    if ((st = dlv_rmsnorm(be, A->x2, A->h_mid, w->ln2.t->data, w->ln2.t->dtype, d->n,
                          d->hidden, d->eps)))
        return dlv_error_prefix(st, "%s", w->ln2.t->name);
    if ((st = linear(be, A->gate, A->x2, d->n, d->hidden, d->inter, &w->gate, &w->gb,
                     &lr[DLV_LORA_GATE])) ||
        (st = linear(be, A->up, A->x2, d->n, d->hidden, d->inter, &w->up, &w->ub,
                     &lr[DLV_LORA_UP])))
        return st;
    if ((st = dlv_swiglu(be, A->sw, A->gate, A->up, d->n * d->inter)))
        return dlv_error_prefix(st, "mlp");
    if (!h_out) return DLV_OK;
    if ((st = linear(be, c->tmp, A->sw, d->n, d->inter, d->hidden, &w->down, &w->db,
                     &lr[DLV_LORA_DOWN])))
        return st;
    if ((st = dlv_add(be, h_out, A->h_mid, c->tmp, DLV_DTYPE_F32, 0, d->n, d->hidden)))
        return dlv_error_prefix(st, "mlp residual");
    return DLV_OK;
}

/* Backward scratch. */
typedef struct bw_scratch {
    dlv_buffer dh, dx, datt, dq, dk, dv, dsw, dgate, dup, lt, lu;
} bw_scratch;

static void bw_free(bw_scratch *s)
{
    dlv_buffer *all[] = {&s->dh, &s->dx, &s->datt, &s->dq, &s->dk, &s->dv,
                         &s->dsw, &s->dgate, &s->dup, &s->lt, &s->lu};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dlv_buffer_free(all[i]);
}

static dlv_status alloc_f32(dlv_backend *be, int64_t rows, int64_t cols, dlv_buffer *out)
{
    return dlv_buffer_alloc(be, (size_t)rows * (size_t)cols * sizeof(float), out);
}

static dlv_status zero(dlv_buffer *b)
{
    return dlv_buffer_zero(b, 0, b->size);
}

#define P(buf) ((float *)dlv_buffer_ptr(&(buf)))

/* dh [n, hidden]: in, the gradient of the layer's output; out, that of its
 * input. */
static dlv_status layer_backward(const fwd_ctx *c, const layer_w *w, const dlv_lora *lora,
                                 dlv_lora *lora_grad, int64_t layer, const acts *A,
                                 bw_scratch *s)
{
    dlv_backend *be = c->be;
    const dims *d = c->d;
    lora_ref lr[DLV_LORA_N_MODULES];
    for (int i = 0; i < DLV_LORA_N_MODULES; i++)
        lr[i] = lora_at(lora, lora_grad, layer, (dlv_lora_module)i, P(s->lt), P(s->lu));
    float *dh = P(s->dh), *dx = P(s->dx);
    dlv_status st;

    /* MLP: h_out = h_mid + down(sw); dh passes to h_mid unchanged. */
    if ((st = zero(&s->dsw)) ||
        (st = linear_backward(be, P(s->dsw), dh, A->sw, d->n, d->inter, d->hidden, &w->down,
                              &w->db, &lr[DLV_LORA_DOWN])))
        return st;
    if ((st = zero(&s->dgate)) || (st = zero(&s->dup))) return st;
    if ((st = dlv_swiglu_backward(be, P(s->dgate), P(s->dup), P(s->dsw), A->gate, A->up,
                                  d->n * d->inter)))
        return dlv_error_prefix(st, "mlp (backward)");
    if ((st = zero(&s->dx)) ||
        (st = linear_backward(be, dx, P(s->dgate), A->x2, d->n, d->hidden, d->inter, &w->gate,
                              &w->gb, &lr[DLV_LORA_GATE])) ||
        (st = linear_backward(be, dx, P(s->dup), A->x2, d->n, d->hidden, d->inter, &w->up,
                              &w->ub, &lr[DLV_LORA_UP])))
        return st;
    if ((st = dlv_rmsnorm_backward(be, dh, w->ln2.g, dx, A->h_mid, w->ln2.t->data,
                                   w->ln2.t->dtype, d->n, d->hidden, d->eps)))
        return dlv_error_prefix(st, "%s (backward)", w->ln2.t->name);

    /* Attention: h_mid = h_in + o(att). */
    if ((st = zero(&s->datt)) ||
        (st = linear_backward(be, P(s->datt), dh, A->att, d->n, d->qd, d->hidden, &w->o, &w->ob,
                              &lr[DLV_LORA_O])))
        return st;
    if ((st = zero(&s->dq)) || (st = zero(&s->dk)) || (st = zero(&s->dv))) return st;
    dlv_attention_bw_args ab = {
        .struct_size = sizeof ab,
        .dq = P(s->dq), .dk = P(s->dk), .dv = P(s->dv),
        .dout = P(s->datt), .q = A->q, .k = A->k, .v = A->v,
        .key_mask = c->mask,
        .batch = d->batch, .n_q = d->len, .n_kv = d->len,
        .n_heads = d->n_heads, .n_kv_heads = d->n_kv, .head_dim = d->head_dim,
        .scale = (float)(1.0 / sqrt((double)d->head_dim)),
        .causal = 1,
    };
    if ((st = dlv_attention_backward(be, &ab))) return dlv_error_prefix(st, "self_attn (backward)");
    if ((st = dlv_rope_backward(be, P(s->dq), c->positions, d->n, d->n_heads, d->head_dim,
                                d->theta)) ||
        (st = dlv_rope_backward(be, P(s->dk), c->positions, d->n, d->n_kv, d->head_dim,
                                d->theta)))
        return dlv_error_prefix(st, "rope (backward)");
    if ((st = zero(&s->dx)) ||
        (st = linear_backward(be, dx, P(s->dq), A->x1, d->n, d->hidden, d->qd, &w->q, &w->qb,
                              &lr[DLV_LORA_Q])) ||
        (st = linear_backward(be, dx, P(s->dk), A->x1, d->n, d->hidden, d->kvd, &w->k, &w->kb,
                              &lr[DLV_LORA_K])) ||
        (st = linear_backward(be, dx, P(s->dv), A->x1, d->n, d->hidden, d->kvd, &w->v, &w->vb,
                              &lr[DLV_LORA_V])))
        return st;
    if ((st = dlv_rmsnorm_backward(be, dh, w->ln1.g, dx, A->h_in, w->ln1.t->data,
                                   w->ln1.t->dtype, d->n, d->hidden, d->eps)))
        return dlv_error_prefix(st, "%s (backward)", w->ln1.t->name);
    return DLV_OK;
}

/* ---- the tape ----------------------------------------------------------- */

/* Floats per token row of one layer's full activations. */
static size_t layer_width(const dims *d)
{
    return (size_t)(4 * d->hidden + 2 * d->qd + 2 * d->kvd + 3 * d->inter);
}

static dims make_dims(const dlv_text_config *t, const dlv_lora *lora, int64_t batch,
                      int64_t max_len)
{
    dims d = {
        .batch = batch, .len = max_len, .n = batch * max_len,
        .hidden = t->hidden_size, .inter = t->intermediate_size,
        .n_heads = t->num_attention_heads, .n_kv = t->num_key_value_heads,
        .head_dim = t->head_dim,
        .qd = t->num_attention_heads * t->head_dim,
        .kvd = t->num_key_value_heads * t->head_dim,
        .n_layers = t->num_hidden_layers,
        .rank = lora ? lora->rank : 0,
        .eps = (float)t->rms_norm_eps, .theta = t->rope_theta,
    };
    return d;
}

/* Lays out one layer's full activations from p (n rows each); returns the
 * end. h_in is skipped when with_h_in is 0. */
static float *carve(const dims *d, float *p, acts *A, int with_h_in)
{
    const size_t n = (size_t)d->n;
#define TAKE(field, width) do { A->field = p; p += n * (size_t)(width); } while (0)
    if (with_h_in) TAKE(h_in, d->hidden);
    TAKE(x1, d->hidden);
    TAKE(q, d->qd);
    TAKE(k, d->kvd);
    TAKE(v, d->kvd);
    TAKE(att, d->qd);
    TAKE(h_mid, d->hidden);
    TAKE(x2, d->hidden);
    TAKE(gate, d->inter);
    TAKE(up, d->inter);
    TAKE(sw, d->inter);
#undef TAKE
    return p;
}

size_t dlv_text_tape_bytes(const dlv_model *m, const dlv_lora *lora, int64_t batch,
                           int64_t max_len, int recompute)
{
    if (!m || batch < 1 || max_len < 1) return 0;
    const dims d = make_dims(&dlv_model_config(m)->text, lora, batch, max_len);
    const size_t n = (size_t)d.n, full = layer_width(&d);
    size_t floats = recompute ? (size_t)d.n_layers * n * (size_t)d.hidden + n * (full - (size_t)d.hidden)
                              : (size_t)d.n_layers * n * full;
    floats += 2 * n * (size_t)d.hidden + n * (size_t)d.rank;
    return floats * sizeof(float) + n * (sizeof(int32_t) + 1);
}

void dlv_text_tape_free(dlv_text_tape *t)
{
    if (!t) return;
    dlv_buffer_free(&t->mask);
    dlv_buffer_free(&t->store);
    dlv_buffer_free(&t->work);
    dlv_buffer_free(&t->tmp);
    dlv_buffer_free(&t->lora_tmp);
    free(t->layers);
    free(t->lengths);
    free(t->positions);
    free(t);
}

static dlv_status check_lora(const dlv_model *m, const dims *d, const dlv_lora *l,
                             const char *what)
{
    if (!l) return DLV_OK;
    if (l->n_layers != d->n_layers || l->rank < 1 || !l->params || !l->off_a || !l->off_b)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train: %s has %lld layers (rank %lld), "
                         "the model %lld", dlv_model_dir(m), what, (long long)l->n_layers,
                         (long long)l->rank, (long long)d->n_layers);
    return DLV_OK;
}

static dlv_status check_args(const dlv_model *m, const dlv_text_config *t, const float *embeds,
                             const int32_t *lengths, int64_t batch, int64_t max_len,
                             const float *hidden)
{
    const char *label = dlv_model_dir(m);
    if (!embeds || !lengths || !hidden)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train forward: embeds, lengths or hidden "
                         "is NULL", label);
    if (batch < 1 || max_len < 1)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train forward: batch = %lld, max_len = "
                         "%lld must be >= 1", label, (long long)batch, (long long)max_len);
    int64_t widest = t->hidden_size;
    if (t->intermediate_size > widest) widest = t->intermediate_size;
    if (t->num_attention_heads * t->head_dim > widest)
        widest = t->num_attention_heads * t->head_dim;
    /* The tape holds at most (L + 2) * 16 planes of n * widest floats. */
    const int64_t limit = (int64_t)(PTRDIFF_MAX / 4) / (int64_t)sizeof(float) / widest /
                          (16 * (t->num_hidden_layers + 2));
    if (max_len > limit / batch || batch * max_len > INT32_MAX)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train forward: batch %lld x max_len %lld "
                         "is too large", label, (long long)batch, (long long)max_len);
    for (int64_t b = 0; b < batch; b++)
        if (lengths[b] < 1 || lengths[b] > max_len)
            return dlv_error(DLV_E_INVALID_ARG, "%s: text train forward: lengths[%lld] = %d is "
                             "outside [1, max_len = %lld]", label, (long long)b,
                             (int)lengths[b], (long long)max_len);
    return DLV_OK;
}

static dlv_status tape_alloc(dlv_backend *be, const dims *d, const int32_t *lengths,
                             int recompute, dlv_text_tape *t)
{
    const size_t n = (size_t)d->n, H = (size_t)d->hidden, full = layer_width(d);
    const size_t L = (size_t)d->n_layers;
    dlv_status st;
    t->lengths = malloc((size_t)d->batch * sizeof *t->lengths);
    t->positions = malloc(n * sizeof *t->positions);
    t->layers = calloc(L ? L : 1, sizeof *t->layers);
    if (!t->lengths || !t->positions || !t->layers)
        return dlv_error_nomem("text train tape", n * sizeof(int32_t));
    memcpy(t->lengths, lengths, (size_t)d->batch * sizeof *lengths);
    const size_t store = (recompute ? L * n * H : L * n * full) + n * H;
    if ((st = dlv_buffer_alloc(be, store * sizeof(float), &t->store)) ||
        (st = alloc_f32(be, d->n, d->hidden, &t->tmp)) ||
        (st = dlv_buffer_alloc(be, n, &t->mask)))
        return st;
    if (d->rank && (st = alloc_f32(be, d->n, d->rank, &t->lora_tmp))) return st;
    if (recompute) {
        if ((st = dlv_buffer_alloc(be, n * (full - H) * sizeof(float), &t->work))) return st;
        carve(d, P(t->work), &t->work_acts, 0);
    }
    float *p = P(t->store);
    for (size_t l = 0; l < L; l++) {
        if (recompute) {
            t->layers[l].h_in = p;
            p += n * H;
        } else {
            p = carve(d, p, &t->layers[l], 1);
        }
    }
    t->h_last = p;
    uint8_t *mask = dlv_buffer_ptr(&t->mask);
    for (int64_t b = 0; b < d->batch; b++)
        for (int64_t i = 0; i < d->len; i++) {
            t->positions[b * d->len + i] = (int32_t)i;
            mask[b * d->len + i] = i < lengths[b] ? 1 : 0;
        }
    return DLV_OK;
}

/* The activations of layer l: the saved ones, or the work set around the
 * saved input. */
static acts layer_acts(const dlv_text_tape *t, int64_t l)
{
    if (!t->recompute) return t->layers[l];
    acts A = t->work_acts;
    A.h_in = t->layers[l].h_in;
    return A;
}

static fwd_ctx make_ctx(dlv_backend *be, const dlv_text_tape *t)
{
    fwd_ctx c = {be, &t->d, t->positions, dlv_buffer_ptr(&t->mask), P(t->tmp),
                 t->d.rank ? P(t->lora_tmp) : NULL};
    return c;
}

dlv_status dlv_text_train_forward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                  const dlv_lora *lora, const float *embeds,
                                  const int32_t *lengths, int64_t batch, int64_t max_len,
                                  int recompute, dlv_text_tape **tape, float *hidden)
{
    if (tape) *tape = NULL;
    dlv_status st = dlv_text_check(m, be);
    if (st) return st;
    if (!wv || !wv->weights)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train forward: the weight view is NULL",
                         dlv_model_dir(m));
    const dlv_text_config *t = &dlv_model_config(m)->text;
    if ((st = check_args(m, t, embeds, lengths, batch, max_len, hidden))) return st;
    const dims d = make_dims(t, lora, batch, max_len);
    if ((st = check_lora(m, &d, lora, "the LoRA adapter"))) return st;
    /* Without a tape, the recompute layout is the smallest. */
    if (!tape) recompute = 1;

    dlv_text_tape *tp = calloc(1, sizeof *tp);
    if (!tp) return dlv_error_nomem("text train tape", sizeof *tp);
    tp->m = m;
    tp->d = d;
    tp->recompute = recompute ? 1 : 0;
    tp->has_lora = lora != NULL;
    tp->lora_targets = lora ? lora->targets : 0;
    const size_t plane_bytes = (size_t)d.n * (size_t)d.hidden * sizeof(float);
    st = tape_alloc(be, &d, lengths, tp->recompute, tp);
    if (!st) {
        /* The first layer's input (or the final norm's, without layers). */
        const float *first = d.n_layers > 0 ? tp->layers[0].h_in : tp->h_last;
        const size_t off = (size_t)((const char *)first - (const char *)P(tp->store));
        st = dlv_buffer_upload(&tp->store, off, embeds, plane_bytes);
    }
    const fwd_ctx c = make_ctx(be, tp);
    for (int64_t l = 0; !st && l < d.n_layers; l++) {
        layer_w w;
        if ((st = layer_weights(m, wv, &d, l, &w))) break;
        const acts A = layer_acts(tp, l);
        float *out = l + 1 < d.n_layers ? tp->layers[l + 1].h_in : tp->h_last;
        if ((st = layer_forward(&c, &w, lora, l, &A, out)))
            st = dlv_error_prefix(st, "%s: language model layer %lld", dlv_model_dir(m),
                                  (long long)l);
    }
    wref norm;
    if (!st) st = get_w(m, wv, "norm.weight", (uint64_t)d.hidden, 1, &norm);
    if (!st && (st = dlv_rmsnorm(be, P(tp->tmp), tp->h_last, norm.t->data, norm.t->dtype, d.n,
                                 d.hidden, d.eps)))
        st = dlv_error_prefix(st, "%s: %s", dlv_model_dir(m), norm.t->name);
    if (!st) st = dlv_buffer_download(hidden, &tp->tmp, 0, plane_bytes);
    if (st || !tape) {
        dlv_text_tape_free(tp);
        return st;
    }
    *tape = tp;
    return DLV_OK;
}

dlv_status dlv_text_train_backward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                   const dlv_lora *lora, dlv_lora *lora_grad,
                                   dlv_text_tape *tape, const float *dhidden, float *dembeds)
{
    dlv_status st = dlv_text_check(m, be);
    if (st) return st;
    const char *label = dlv_model_dir(m);
    if (!wv || !wv->weights || !tape || !dhidden)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train backward: the weight view, tape or "
                         "dhidden is NULL", label);
    if (tape->m != m)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train backward: the tape was recorded "
                         "on another model", label);
    const dims *d = &tape->d;
    if ((lora != NULL) != tape->has_lora ||
        (lora && (lora->rank != d->rank || lora->targets != tape->lora_targets)))
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train backward: the LoRA adapter differs "
                         "from the forward's", label);
    if ((st = check_lora(m, d, lora, "the LoRA adapter"))) return st;
    if (lora_grad && !lora)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text train backward: lora_grad without a LoRA "
                         "adapter", label);
    if (lora_grad) {
        if ((st = check_lora(m, d, lora_grad, "lora_grad"))) return st;
        if (lora_grad->rank != lora->rank || lora_grad->targets != lora->targets ||
            lora_grad->n_params != lora->n_params)
            return dlv_error(DLV_E_INVALID_ARG, "%s: text train backward: lora_grad's layout "
                             "(rank %lld, %zu params) differs from the adapter's (rank %lld, "
                             "%zu params)", label, (long long)lora_grad->rank,
                             lora_grad->n_params, (long long)lora->rank, lora->n_params);
    }

    const size_t n = (size_t)d->n, H = (size_t)d->hidden;
    const size_t plane_bytes = n * H * sizeof(float), row_bytes = H * sizeof(float);
    bw_scratch s = {0};
    if ((st = alloc_f32(be, d->n, d->hidden, &s.dh)) ||
        (st = alloc_f32(be, d->n, d->hidden, &s.dx)) ||
        (st = alloc_f32(be, d->n, d->qd, &s.datt)) ||
        (st = alloc_f32(be, d->n, d->qd, &s.dq)) ||
        (st = alloc_f32(be, d->n, d->kvd, &s.dk)) ||
        (st = alloc_f32(be, d->n, d->kvd, &s.dv)) ||
        (st = alloc_f32(be, d->n, d->inter, &s.dsw)) ||
        (st = alloc_f32(be, d->n, d->inter, &s.dgate)) ||
        (st = alloc_f32(be, d->n, d->inter, &s.dup)) ||
        (d->rank && ((st = alloc_f32(be, d->n, d->rank, &s.lt)) ||
                     (st = alloc_f32(be, d->n, d->rank, &s.lu)))))
        goto done;

    /* dhidden at real positions only: padding contributes nothing. */
    if ((st = dlv_buffer_upload(&s.dx, 0, dhidden, plane_bytes))) goto done;
    for (int64_t b = 0; b < d->batch; b++) {
        const size_t first = (size_t)b * (size_t)d->len + (size_t)tape->lengths[b];
        const size_t end = (size_t)(b + 1) * (size_t)d->len;
        if (end > first && (st = dlv_buffer_zero(&s.dx, first * row_bytes,
                                                 (end - first) * row_bytes)))
            goto done;
    }
    wref norm;
    if ((st = get_w(m, wv, "norm.weight", (uint64_t)d->hidden, 1, &norm)) ||
        (st = zero(&s.dh)))
        goto done;
    if ((st = dlv_rmsnorm_backward(be, P(s.dh), norm.g, P(s.dx), tape->h_last, norm.t->data,
                                   norm.t->dtype, d->n, d->hidden, d->eps))) {
        st = dlv_error_prefix(st, "%s: %s (backward)", label, norm.t->name);
        goto done;
    }
    const fwd_ctx c = make_ctx(be, tape);
    for (int64_t l = d->n_layers - 1; l >= 0; l--) {
        layer_w w;
        if ((st = layer_weights(m, wv, d, l, &w))) goto done;
        const acts A = layer_acts(tape, l);
        if (tape->recompute && (st = layer_forward(&c, &w, lora, l, &A, NULL))) {
            st = dlv_error_prefix(st, "%s: language model layer %lld (recompute)", label,
                                  (long long)l);
            goto done;
        }
        if ((st = layer_backward(&c, &w, lora, lora_grad, l, &A, &s))) {
            st = dlv_error_prefix(st, "%s: language model layer %lld (backward)", label,
                                  (long long)l);
            goto done;
        }
    }
    if (dembeds) {
        /* dh is host memory on the CPU backend; only real rows are added. */
        const float *dh = P(s.dh);
        for (int64_t b = 0; b < d->batch; b++)
            for (int64_t i = 0; i < tape->lengths[b]; i++) {
                const size_t row = ((size_t)b * (size_t)d->len + (size_t)i) * H;
                for (size_t j = 0; j < H; j++) dembeds[row + j] += dh[row + j];
            }
    }
done:
    bw_free(&s);
    return st;
}
