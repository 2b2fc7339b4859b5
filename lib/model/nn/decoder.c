/* The decoder stack, forward and backward (see decoder.h). */
#include "model/nn/decoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* One layer's activations, [n, width] each (device). */
typedef struct acts {
    float *h_in, *x1, *q, *k, *v, *att, *h_mid, *x2, *gate, *up, *sw;
} acts;

struct dlv_decoder_tape {
    dlv_decoder_dims d;
    int64_t n_layers, batch, len, n, rank;
    int recompute;
    int32_t *lengths;      /* [batch], host */
    dlv_buffer positions;  /* [n] int32 */
    dlv_buffer mask;       /* [n] uint8 */
    dlv_decoder_rope rope; /* the caller's tables; cos NULL: positions */
    dlv_buffer store;      /* the saved activations */
    acts *layers;          /* [n_layers]: all fields, or h_in only (recompute) */
    float *h_last;         /* the final norm's input [n, hidden] */
    dlv_buffer work;       /* recompute: one layer's fields but h_in */
    acts work_acts;
    dlv_buffer tmp;        /* [n, hidden]: o / down outputs */
    dlv_buffer lora_tmp;   /* [n, rank] */
};

#define P(buf) ((float *)dlv_buffer_ptr(&(buf)))

static size_t qd(const dlv_decoder_dims *d) { return (size_t)(d->n_heads * d->head_dim); }
static size_t kvd(const dlv_decoder_dims *d) { return (size_t)(d->n_kv_heads * d->head_dim); }

/* Floats per token row of one layer's full activations. */
static size_t layer_width(const dlv_decoder_dims *d)
{
    return 4 * (size_t)d->hidden + 2 * qd(d) + 2 * kvd(d) + 3 * (size_t)d->inter;
}

/* Lays out one layer's activations from p (n rows each); returns the end.
 * h_in is skipped when with_h_in is 0. Device addresses: integer offsets. */
static float *carve(const dlv_decoder_dims *d, size_t n, float *p, acts *A, int with_h_in)
{
#define TAKE(field, width)                                                                 \
    do {                                                                                   \
        A->field = p;                                                                      \
        p += n * (size_t)(width);                                                          \
    } while (0)
    if (with_h_in) TAKE(h_in, d->hidden);
    TAKE(x1, d->hidden);
    TAKE(q, qd(d));
    TAKE(k, kvd(d));
    TAKE(v, kvd(d));
    TAKE(att, qd(d));
    TAKE(h_mid, d->hidden);
    TAKE(x2, d->hidden);
    TAKE(gate, d->inter);
    TAKE(up, d->inter);
    TAKE(sw, d->inter);
#undef TAKE
    return p;
}

size_t dlv_decoder_tape_bytes(const dlv_decoder_dims *d, int64_t n_layers, int64_t lora_rank,
                              int64_t batch, int64_t len, int recompute)
{
    if (!d || batch < 1 || len < 1) return 0;
    const size_t n = (size_t)(batch * len), full = layer_width(d), H = (size_t)d->hidden;
    const size_t L = (size_t)n_layers;
    size_t floats = recompute ? L * n * H + n * (full - H) : L * n * full;
    floats += 2 * n * H + n * (size_t)lora_rank;
    return floats * sizeof(float) + n * (sizeof(int32_t) + 1);
}

void dlv_decoder_tape_free(dlv_decoder_tape *t)
{
    if (!t) return;
    dlv_buffer_free(&t->positions);
    dlv_buffer_free(&t->mask);
    dlv_buffer_free(&t->store);
    dlv_buffer_free(&t->work);
    dlv_buffer_free(&t->tmp);
    dlv_buffer_free(&t->lora_tmp);
    free(t->layers);
    free(t->lengths);
    free(t);
}

static dlv_status alloc_f32(dlv_backend *be, size_t rows, size_t cols, dlv_buffer *out)
{
    return dlv_buffer_alloc(be, rows * cols * sizeof(float), out);
}

/* Positions 0 .. len-1 in every row (right padding, as HF's cache_position)
 * and the key mask, built on the host and uploaded. */
static dlv_status upload_positions(dlv_decoder_tape *t)
{
    const size_t n = (size_t)t->n;
    int32_t *pos = malloc(n * sizeof *pos);
    uint8_t *mask = malloc(n);
    dlv_status st = DLV_OK;
    if (!pos || !mask) st = dlv_error_nomem("decoder positions", n * 5);
    for (int64_t b = 0; !st && b < t->batch; b++)
        for (int64_t i = 0; i < t->len; i++) {
            pos[b * t->len + i] = (int32_t)i;
            mask[b * t->len + i] = i < t->lengths[b] ? 1 : 0;
        }
    if (!st) st = dlv_buffer_upload(&t->positions, 0, pos, n * sizeof *pos);
    if (!st) st = dlv_buffer_upload(&t->mask, 0, mask, n);
    free(pos);
    free(mask);
    return st;
}

static dlv_status tape_alloc(dlv_backend *be, dlv_decoder_tape *t)
{
    const dlv_decoder_dims *d = &t->d;
    const size_t n = (size_t)t->n, H = (size_t)d->hidden, full = layer_width(d);
    const size_t L = (size_t)t->n_layers;
    t->layers = calloc(L ? L : 1, sizeof *t->layers);
    if (!t->layers) return dlv_error_nomem("decoder tape", L * sizeof *t->layers);
    const size_t store = (t->recompute ? L * n * H : L * n * full) + n * H;
    dlv_status st;
    if ((st = dlv_buffer_alloc(be, store * sizeof(float), &t->store)) ||
        (st = alloc_f32(be, n, H, &t->tmp)) ||
        (st = dlv_buffer_alloc(be, n * sizeof(int32_t), &t->positions)) ||
        (st = dlv_buffer_alloc(be, n, &t->mask)))
        return st;
    if (t->rank && (st = alloc_f32(be, n, (size_t)t->rank, &t->lora_tmp))) return st;
    if (t->recompute) {
        if ((st = dlv_buffer_alloc(be, n * (full - H) * sizeof(float), &t->work))) return st;
        carve(d, n, P(t->work), &t->work_acts, 0);
    }
    float *p = P(t->store);
    for (size_t l = 0; l < L; l++) {
        if (t->recompute) {
            t->layers[l].h_in = p;
            p += n * H;
        } else {
            p = carve(d, n, p, &t->layers[l], 1);
        }
    }
    t->h_last = p;
    return upload_positions(t);
}

/* The activations of layer l: the saved ones, or the work set around the
 * saved input. */
static acts layer_acts(const dlv_decoder_tape *t, int64_t l)
{
    if (!t->recompute) return t->layers[l];
    acts A = t->work_acts;
    A.h_in = t->layers[l].h_in;
    return A;
}

static const dlv_lora_pair *pairs_of(const dlv_decoder_lora *lora, int64_t layer)
{
    return lora ? lora->pairs + layer * DLV_DEC_N_LINEAR : NULL;
}

static dlv_attention_args attention_args(const dlv_decoder_tape *t, const acts *A)
{
    const dlv_decoder_dims *d = &t->d;
    dlv_attention_args a = {
        .struct_size = sizeof a,
        .out = A->att, .q = A->q, .k = A->k, .v = A->v,
        .key_mask = dlv_buffer_ptr(&t->mask),
        .batch = t->batch, .n_q = t->len, .n_kv = t->len,
        .n_heads = d->n_heads, .n_kv_heads = d->n_kv_heads, .head_dim = d->head_dim,
        .scale = (float)(1.0 / sqrt((double)d->head_dim)),
        .causal = 1,
    };
    return a;
}

/* A's fields from A->h_in; with h_out also the layer's output (the down
 * projection and the last residual, which the backward does not read, are
 * skipped otherwise). */
static dlv_status layer_forward(dlv_backend *be, const dlv_decoder_tape *t,
                                const dlv_decoder_layer_w *w, const dlv_lora_pair *lp,
                                const acts *A, float *h_out)
{
    const dlv_decoder_dims *d = &t->d;
    const int64_t n = t->n;
    float *tmp = P(t->tmp), *lt = t->rank ? P(t->lora_tmp) : NULL;
    const int32_t *pos = dlv_buffer_ptr(&t->positions);
#define LORA(m) (lp ? &lp[m] : NULL)
    dlv_status st;
    if ((st = dlv_rmsnorm(be, A->x1, A->h_in, dlv_tensor_data(&w->ln1), w->ln1.dtype, n,
                          d->hidden, d->eps)))
        return dlv_error_prefix(st, "input_layernorm");
    if ((st = dlv_linear_forward(be, A->q, A->x1, n, &w->lin[DLV_DEC_Q], LORA(DLV_DEC_Q), lt)) ||
        (st = dlv_linear_forward(be, A->k, A->x1, n, &w->lin[DLV_DEC_K], LORA(DLV_DEC_K), lt)) ||
        (st = dlv_linear_forward(be, A->v, A->x1, n, &w->lin[DLV_DEC_V], LORA(DLV_DEC_V), lt)))
        return dlv_error_prefix(st, "self_attn q/k/v");
    const float *cs = t->rope.cos, *sn = t->rope.sin;
    if (cs) {
        if ((st = dlv_rope_table(be, A->q, cs, sn, n, d->n_heads, d->head_dim)) ||
            (st = dlv_rope_table(be, A->k, cs, sn, n, d->n_kv_heads, d->head_dim)))
            return dlv_error_prefix(st, "rope (tables)");
    } else if ((st = dlv_rope(be, A->q, pos, n, d->n_heads, d->head_dim, d->theta)) ||
               (st = dlv_rope(be, A->k, pos, n, d->n_kv_heads, d->head_dim, d->theta))) {
        return dlv_error_prefix(st, "rope");
    }
    /* HF's eager attention: softmax(q k^T / sqrt(head_dim) + causal and
     * padding mask) v, with k/v heads repeated (repeat_kv) for GQA. */
    dlv_attention_args aa = attention_args(t, A);
    if ((st = dlv_attention(be, &aa))) return dlv_error_prefix(st, "self_attn");
    /* o_proj, then the residual add in HF's order (h + (o + b)). */
    if ((st = dlv_linear_forward(be, tmp, A->att, n, &w->lin[DLV_DEC_O], LORA(DLV_DEC_O), lt)))
        return dlv_error_prefix(st, "o_proj");
    if ((st = dlv_add_rmsnorm(be, A->h_mid, A->x2, A->h_in, tmp, dlv_tensor_data(&w->ln2),
                              w->ln2.dtype, n, d->hidden, d->eps)))
        return dlv_error_prefix(st, "attention residual + post_attention_layernorm");
    if ((st = dlv_linear_forward(be, A->gate, A->x2, n, &w->lin[DLV_DEC_GATE],
                                 LORA(DLV_DEC_GATE), lt)) ||
        (st = dlv_linear_forward(be, A->up, A->x2, n, &w->lin[DLV_DEC_UP], LORA(DLV_DEC_UP),
                                 lt)))
        return dlv_error_prefix(st, "mlp gate/up");
    if ((st = dlv_swiglu(be, A->sw, A->gate, A->up, n * d->inter)))
        return dlv_error_prefix(st, "mlp");
    if (!h_out) return DLV_OK;
    if ((st = dlv_linear_forward(be, tmp, A->sw, n, &w->lin[DLV_DEC_DOWN], LORA(DLV_DEC_DOWN),
                                 lt)))
        return dlv_error_prefix(st, "down_proj");
    if ((st = dlv_add(be, h_out, A->h_mid, tmp, DLV_DTYPE_F32, 0, n, d->hidden)))
        return dlv_error_prefix(st, "mlp residual");
#undef LORA
    return DLV_OK;
}

static dlv_status check_forward(const dlv_backend *be, const dlv_decoder_dims *d,
                                const dlv_decoder_w *w,
                                const dlv_decoder_lora *lora, const float *x,
                                const int32_t *lengths, int64_t batch, int64_t len,
                                const float *hidden)
{
    if (!be || !d || !w || !x || !lengths || !hidden)
        return dlv_error(DLV_E_INVALID_ARG, "decoder forward: NULL argument");
    if (!dlv_weights_readable(be, &w->norm))
        return dlv_error(DLV_E_INVALID_ARG, "decoder forward: backend '%s' cannot read the "
                         "weights", be->ops->name);
    if (batch < 1 || len < 1)
        return dlv_error(DLV_E_INVALID_ARG, "decoder forward: batch = %lld, len = %lld must be "
                         ">= 1", (long long)batch, (long long)len);
    if (lora && (lora->rank < 1 || !lora->pairs))
        return dlv_error(DLV_E_INVALID_ARG, "decoder forward: a LoRA of rank %lld",
                         (long long)lora->rank);
    int64_t widest = d->hidden;
    if (d->inter > widest) widest = d->inter;
    if ((int64_t)qd(d) > widest) widest = (int64_t)qd(d);
    /* The tape holds at most (L + 2) * 16 planes of n * widest floats. */
    const int64_t limit = (int64_t)(PTRDIFF_MAX / 4) / (int64_t)sizeof(float) / widest /
                          (16 * (w->n_layers + 2));
    if (len > limit / batch || batch * len > INT32_MAX)
        return dlv_error(DLV_E_INVALID_ARG, "decoder forward: batch %lld x len %lld is too "
                         "large", (long long)batch, (long long)len);
    for (int64_t b = 0; b < batch; b++)
        if (lengths[b] < 1 || lengths[b] > len)
            return dlv_error(DLV_E_INVALID_ARG, "decoder forward: lengths[%lld] = %d is outside "
                             "[1, len = %lld]", (long long)b, (int)lengths[b], (long long)len);
    return DLV_OK;
}

dlv_status dlv_decoder_forward(dlv_backend *be, const dlv_decoder_dims *d,
                               const dlv_decoder_w *w, const dlv_decoder_lora *lora,
                               const float *x, const int32_t *lengths, int64_t batch,
                               int64_t len, int recompute, dlv_decoder_tape **tape,
                               float *hidden, float *trace)
{
    return dlv_decoder_forward_rope(be, d, w, lora, NULL, x, lengths, batch, len, recompute,
                                    tape, hidden, trace);
}

dlv_status dlv_decoder_forward_rope(dlv_backend *be, const dlv_decoder_dims *d,
                                    const dlv_decoder_w *w, const dlv_decoder_lora *lora,
                                    const dlv_decoder_rope *rope, const float *x,
                                    const int32_t *lengths, int64_t batch, int64_t len,
                                    int recompute, dlv_decoder_tape **tape, float *hidden,
                                    float *trace)
{
    if (tape) *tape = NULL;
    dlv_status st = check_forward(be, d, w, lora, x, lengths, batch, len, hidden);
    if (st) return st;
    if (rope && (!rope->cos || !rope->sin))
        return dlv_error(DLV_E_INVALID_ARG, "decoder forward: rope tables: %s is NULL",
                         rope->cos ? "sin" : "cos");
    dlv_decoder_tape *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("decoder tape", sizeof *t);
    t->d = *d;
    if (rope) t->rope = *rope;
    t->n_layers = w->n_layers;
    t->batch = batch;
    t->len = len;
    t->n = batch * len;
    t->rank = lora ? lora->rank : 0;
    /* Without a tape, the recompute layout is the smallest. */
    t->recompute = recompute || !tape;
    t->lengths = malloc((size_t)batch * sizeof *t->lengths);
    if (!t->lengths) st = dlv_error_nomem("decoder lengths", (size_t)batch * sizeof(int32_t));
    else memcpy(t->lengths, lengths, (size_t)batch * sizeof *lengths);
    if (!st) st = tape_alloc(be, t);
    const size_t plane = (size_t)t->n * (size_t)d->hidden, plane_bytes = plane * sizeof(float);
    /* The first layer's input (or the final norm's, without layers). */
    float *first = !st && w->n_layers > 0 ? t->layers[0].h_in : t->h_last;
    if (!st) st = dlv_copy(be, first, x, plane_bytes);
    /* trace: a device-to-device copy of each state into its slot. */
    if (!st && trace) st = dlv_copy(be, trace, first, plane_bytes);
    for (int64_t l = 0; !st && l < w->n_layers; l++) {
        const acts A = layer_acts(t, l);
        float *out = l + 1 < w->n_layers ? t->layers[l + 1].h_in : t->h_last;
        if ((st = layer_forward(be, t, &w->layers[l], pairs_of(lora, l), &A, out))) {
            st = dlv_error_prefix(st, "layer %lld", (long long)l);
            break;
        }
        /* HF's tuple skips the last layer's raw output: its last entry is
         * the final-normed state. */
        if (trace && l + 1 < w->n_layers)
            st = dlv_copy(be, trace + (size_t)(l + 1) * plane, out, plane_bytes);
    }
    if (!st && (st = dlv_rmsnorm(be, hidden, t->h_last, dlv_tensor_data(&w->norm), w->norm.dtype,
                                 t->n, d->hidden, d->eps)))
        st = dlv_error_prefix(st, "norm");
    if (!st && trace) st = dlv_copy(be, trace + (size_t)w->n_layers * plane, hidden, plane_bytes);
    if (st || !tape) {
        dlv_decoder_tape_free(t);
        return st;
    }
    *tape = t;
    return DLV_OK;
}

/* ---- backward ---------------------------------------------------------- */

typedef struct bw_scratch {
    dlv_buffer dh, dx, datt, dq, dk, dv, dsw, dgate, dup, lt, lu;
} bw_scratch;

static void bw_free(bw_scratch *s)
{
    dlv_buffer *all[] = {&s->dh, &s->dx, &s->datt, &s->dq, &s->dk, &s->dv,
                         &s->dsw, &s->dgate, &s->dup, &s->lt, &s->lu};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dlv_buffer_free(all[i]);
}

static dlv_status zero(dlv_buffer *b) { return dlv_buffer_zero(b, 0, b->size); }

static dlv_status bw_alloc(dlv_backend *be, const dlv_decoder_tape *t, bw_scratch *s)
{
    const dlv_decoder_dims *d = &t->d;
    const size_t n = (size_t)t->n, H = (size_t)d->hidden, I = (size_t)d->inter;
    dlv_status st;
    if ((st = alloc_f32(be, n, H, &s->dh)) || (st = alloc_f32(be, n, H, &s->dx)) ||
        (st = alloc_f32(be, n, qd(d), &s->datt)) || (st = alloc_f32(be, n, qd(d), &s->dq)) ||
        (st = alloc_f32(be, n, kvd(d), &s->dk)) || (st = alloc_f32(be, n, kvd(d), &s->dv)) ||
        (st = alloc_f32(be, n, I, &s->dsw)) || (st = alloc_f32(be, n, I, &s->dgate)) ||
        (st = alloc_f32(be, n, I, &s->dup)))
        return st;
    if (t->rank && ((st = alloc_f32(be, n, (size_t)t->rank, &s->lt)) ||
                    (st = alloc_f32(be, n, (size_t)t->rank, &s->lu))))
        return st;
    return DLV_OK;
}

/* dh [n, hidden]: in, the gradient of the layer's output; out, that of its
 * input. */
static dlv_status layer_backward(dlv_backend *be, const dlv_decoder_tape *t,
                                 const dlv_decoder_layer_w *w, const dlv_decoder_layer_w *g,
                                 const dlv_lora_pair *lp, const dlv_lora_pair_grad *gp,
                                 const acts *A, bw_scratch *s)
{
    const dlv_decoder_dims *d = &t->d;
    const int64_t n = t->n;
    float *dh = P(s->dh), *dx = P(s->dx);
    float *lt = t->rank ? P(s->lt) : NULL, *lu = t->rank ? P(s->lu) : NULL;
#define LORA(m) (lp ? &lp[m] : NULL)
#define GLORA(m) (gp ? &gp[m] : NULL)
#define GLIN(m) (g ? &g->lin[m] : NULL)
    dlv_status st;
    /* MLP: h_out = h_mid + down(sw); dh passes to h_mid unchanged. */
    if ((st = dlv_linear_backward(be, P(s->dsw), 0.0f, dh, A->sw, n, &w->lin[DLV_DEC_DOWN],
                                  GLIN(DLV_DEC_DOWN), LORA(DLV_DEC_DOWN), GLORA(DLV_DEC_DOWN),
                                  lt, lu)))
        return dlv_error_prefix(st, "down_proj");
    if ((st = zero(&s->dgate)) || (st = zero(&s->dup))) return st;
    if ((st = dlv_swiglu_backward(be, P(s->dgate), P(s->dup), P(s->dsw), A->gate, A->up,
                                  n * d->inter)))
        return dlv_error_prefix(st, "mlp");
    if ((st = dlv_linear_backward(be, dx, 0.0f, P(s->dgate), A->x2, n, &w->lin[DLV_DEC_GATE],
                                  GLIN(DLV_DEC_GATE), LORA(DLV_DEC_GATE), GLORA(DLV_DEC_GATE),
                                  lt, lu)) ||
        (st = dlv_linear_backward(be, dx, 1.0f, P(s->dup), A->x2, n, &w->lin[DLV_DEC_UP],
                                  GLIN(DLV_DEC_UP), LORA(DLV_DEC_UP), GLORA(DLV_DEC_UP), lt,
                                  lu)))
        return dlv_error_prefix(st, "mlp gate/up");
    if ((st = dlv_rmsnorm_backward(be, dh, g ? dlv_tensor_f32(&g->ln2) : NULL, dx, A->h_mid,
                                   dlv_tensor_data(&w->ln2), w->ln2.dtype, n, d->hidden,
                                   d->eps)))
        return dlv_error_prefix(st, "post_attention_layernorm");
    /* Attention: h_mid = h_in + o(att). */
    if ((st = dlv_linear_backward(be, P(s->datt), 0.0f, dh, A->att, n, &w->lin[DLV_DEC_O],
                                  GLIN(DLV_DEC_O), LORA(DLV_DEC_O), GLORA(DLV_DEC_O), lt, lu)))
        return dlv_error_prefix(st, "o_proj");
    if ((st = zero(&s->dq)) || (st = zero(&s->dk)) || (st = zero(&s->dv))) return st;
    const dlv_attention_args f = attention_args(t, A);
    dlv_attention_bw_args ab = {
        .struct_size = sizeof ab,
        .dq = P(s->dq), .dk = P(s->dk), .dv = P(s->dv), .dout = P(s->datt),
        .q = f.q, .k = f.k, .v = f.v, .key_mask = f.key_mask,
        .batch = f.batch, .n_q = f.n_q, .n_kv = f.n_kv, .n_heads = f.n_heads,
        .n_kv_heads = f.n_kv_heads, .head_dim = f.head_dim, .scale = f.scale,
        .causal = f.causal,
    };
    if ((st = dlv_attention_backward(be, &ab))) return dlv_error_prefix(st, "self_attn");
    const int32_t *pos = dlv_buffer_ptr(&t->positions);
    const float *cs = t->rope.cos, *sn = t->rope.sin;
    if (cs) {
        if ((st = dlv_rope_table_backward(be, P(s->dq), cs, sn, n, d->n_heads, d->head_dim)) ||
            (st = dlv_rope_table_backward(be, P(s->dk), cs, sn, n, d->n_kv_heads,
                                          d->head_dim)))
            return dlv_error_prefix(st, "rope (tables)");
    } else if ((st = dlv_rope_backward(be, P(s->dq), pos, n, d->n_heads, d->head_dim,
                                       d->theta)) ||
               (st = dlv_rope_backward(be, P(s->dk), pos, n, d->n_kv_heads, d->head_dim,
                                       d->theta))) {
        return dlv_error_prefix(st, "rope");
    }
    if ((st = dlv_linear_backward(be, dx, 0.0f, P(s->dq), A->x1, n, &w->lin[DLV_DEC_Q],
                                  GLIN(DLV_DEC_Q), LORA(DLV_DEC_Q), GLORA(DLV_DEC_Q), lt, lu)) ||
        (st = dlv_linear_backward(be, dx, 1.0f, P(s->dk), A->x1, n, &w->lin[DLV_DEC_K],
                                  GLIN(DLV_DEC_K), LORA(DLV_DEC_K), GLORA(DLV_DEC_K), lt, lu)) ||
        (st = dlv_linear_backward(be, dx, 1.0f, P(s->dv), A->x1, n, &w->lin[DLV_DEC_V],
                                  GLIN(DLV_DEC_V), LORA(DLV_DEC_V), GLORA(DLV_DEC_V), lt, lu)))
        return dlv_error_prefix(st, "self_attn q/k/v");
    if ((st = dlv_rmsnorm_backward(be, dh, g ? dlv_tensor_f32(&g->ln1) : NULL, dx, A->h_in,
                                   dlv_tensor_data(&w->ln1), w->ln1.dtype, n, d->hidden,
                                   d->eps)))
        return dlv_error_prefix(st, "input_layernorm");
#undef LORA
#undef GLORA
#undef GLIN
    return DLV_OK;
}

/* Zeroes the padded rows of a [batch * len, hidden] buffer. */
static dlv_status zero_padding(const dlv_decoder_tape *t, dlv_buffer *b)
{
    const size_t row_bytes = (size_t)t->d.hidden * sizeof(float);
    for (int64_t r = 0; r < t->batch; r++) {
        const size_t first = (size_t)(r * t->len + t->lengths[r]);
        const size_t end = (size_t)((r + 1) * t->len);
        dlv_status st = end > first ? dlv_buffer_zero(b, first * row_bytes,
                                                      (end - first) * row_bytes)
                                    : DLV_OK;
        if (st) return st;
    }
    return DLV_OK;
}

dlv_status dlv_decoder_backward(dlv_backend *be, const dlv_decoder_w *w,
                                const dlv_decoder_w *gw, const dlv_decoder_lora *lora,
                                const dlv_lora_pair_grad *glora, dlv_decoder_tape *t,
                                const float *dhidden, float *dx)
{
    if (!w || !t || !dhidden)
        return dlv_error(DLV_E_INVALID_ARG, "decoder backward: NULL argument");
    if (w->n_layers != t->n_layers || (gw && gw->n_layers != w->n_layers) ||
        (lora ? lora->rank : 0) != t->rank || (glora && !lora))
        return dlv_error(DLV_E_INVALID_ARG, "decoder backward: the weights or the LoRA differ "
                         "from the forward's");
    const size_t plane_bytes = (size_t)t->n * (size_t)t->d.hidden * sizeof(float);
    bw_scratch s = {0};
    dlv_status st = bw_alloc(be, t, &s);
    /* dhidden at real positions only: padding contributes nothing. */
    if (!st) st = dlv_copy(be, P(s.dx), dhidden, plane_bytes);
    if (!st) st = zero_padding(t, &s.dx);
    if (!st) st = zero(&s.dh);
    if (!st && (st = dlv_rmsnorm_backward(be, P(s.dh), gw ? dlv_tensor_f32(&gw->norm) : NULL,
                                          P(s.dx), t->h_last, dlv_tensor_data(&w->norm),
                                          w->norm.dtype, t->n, t->d.hidden, t->d.eps)))
        st = dlv_error_prefix(st, "norm (backward)");
    for (int64_t l = t->n_layers - 1; !st && l >= 0; l--) {
        const acts A = layer_acts(t, l);
        const dlv_lora_pair *lp = pairs_of(lora, l);
        if (t->recompute && (st = layer_forward(be, t, &w->layers[l], lp, &A, NULL))) {
            st = dlv_error_prefix(st, "layer %lld (recompute)", (long long)l);
            break;
        }
        const dlv_lora_pair_grad *gp = glora ? glora + l * DLV_DEC_N_LINEAR : NULL;
        if ((st = layer_backward(be, t, &w->layers[l], gw ? &gw->layers[l] : NULL, lp, gp, &A,
                                 &s)))
            st = dlv_error_prefix(st, "layer %lld (backward)", (long long)l);
    }
    if (!st && dx) {
        /* Only real rows are added: the padded rows of dh become zero. */
        st = zero_padding(t, &s.dh);
        if (!st) st = dlv_add(be, dx, dx, P(s.dh), DLV_DTYPE_F32, 0, t->n, t->d.hidden);
    }
    bw_free(&s);
    return st;
}
