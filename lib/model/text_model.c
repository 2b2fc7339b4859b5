/* The decoder forward pass (Llama / Mistral / Qwen2) on the backend ops. */
#include "model/text_model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/lora.h"
#include "model/model.h"

dlv_status dlv_text_check_config(const dlv_llava_config *cfg, const char *label)
{
    if (!cfg) return dlv_error(DLV_E_INVALID_ARG, "text forward: config is NULL");
    const dlv_text_config *t = &cfg->text;
    if (t->has_rope_scaling)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: text_config.rope_scaling: rope type '%s' is not supported "
                         "(only none/default)", label, t->rope_scaling_type);
    /* The gated MLP is fused as SiLU(gate) * up; other activations would need
     * an elementwise product op the backends do not have yet. */
    if (t->hidden_act != DLV_ACT_SILU)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: text_config.hidden_act: '%s' is not supported (only silu)", label,
                         dlv_act_name(t->hidden_act));
    if (t->head_dim <= 0 || t->head_dim % 2 != 0)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: text_config.head_dim: %lld must be even for RoPE", label,
                         (long long)t->head_dim);
    return DLV_OK;
}

dlv_status dlv_text_check(const dlv_model *m, const dlv_backend *be)
{
    if (!m || !be) return dlv_error(DLV_E_INVALID_ARG, "text forward: model or backend is NULL");
    const char *label = dlv_model_dir(m);
    dlv_status st = dlv_text_check_config(dlv_model_config(m), label);
    if (st) return st;
    /* The forward pass hands host pointers (inputs, outputs, mmapped
     * weights) to the ops, which only a backend with host memory can read;
     * device backends need uploads and stay unsupported in this version. */
    if (!(dlv_backend_caps(be) & DLV_BACKEND_CAP_HOST_MEMORY))
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: backend '%s': the forward pass needs host-addressable memory "
                         "(the CPU backend) in this version", label, be->ops->name);
    return DLV_OK;
}

/* The text weight `canonical`, required, with n_elements checked so that no
 * op can read past it (resolution has checked the shape already; this keeps
 * the forward pass safe on its own). */
static dlv_status get_weight(const dlv_model *m, const char *canonical, uint64_t n_elements,
                             const dlv_st_tensor **out)
{
    *out = dlv_weights_get(dlv_model_weights(m), DLV_PART_TEXT, canonical);
    if (!*out)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s' (language model) is missing",
                         dlv_model_dir(m), canonical);
    if ((*out)->n_elements != n_elements)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': %llu elements, expected %llu",
                         dlv_model_dir(m), canonical, (unsigned long long)(*out)->n_elements,
                         (unsigned long long)n_elements);
    return DLV_OK;
}

/* An optional bias: NULL where the checkpoint's table has none. */
static dlv_status get_bias(const dlv_model *m, const char *canonical, uint64_t n_elements,
                           const dlv_st_tensor **out)
{
    *out = dlv_weights_get(dlv_model_weights(m), DLV_PART_TEXT, canonical);
    if (!*out) return DLV_OK;
    return get_weight(m, canonical, n_elements, out);
}

dlv_status dlv_text_embed_ids(const dlv_model *m, dlv_backend *be, const int32_t *ids,
                              int64_t n, float *out, size_t out_len)
{
    dlv_status st = dlv_text_check(m, be);
    if (st) return st;
    const dlv_text_config *t = &dlv_model_config(m)->text;
    if (n < 0 || (n > 0 && (!ids || !out)))
        return dlv_error(DLV_E_INVALID_ARG, "%s: text embedding: bad ids/out (n = %lld)",
                         dlv_model_dir(m), (long long)n);
    if (n > 0 && (uint64_t)n > SIZE_MAX / (uint64_t)t->hidden_size / sizeof(float))
        return dlv_error(DLV_E_INVALID_ARG, "%s: text embedding: %lld ids is too many",
                         dlv_model_dir(m), (long long)n);
    if (out_len < (size_t)n * (size_t)t->hidden_size)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL,
                         "%s: text embedding: out holds %zu floats, %lld ids need %zu",
                         dlv_model_dir(m), out_len, (long long)n,
                         (size_t)n * (size_t)t->hidden_size);
    const dlv_st_tensor *table;
    st = get_weight(m, "embed_tokens.weight",
                    (uint64_t)t->vocab_size * (uint64_t)t->hidden_size, &table);
    if (st) return st;
    st = dlv_embedding(be, out, table->data, table->dtype, ids, n, t->vocab_size,
                       t->hidden_size);
    if (st) return dlv_error_prefix(st, "%s: embed_tokens", dlv_model_dir(m));
    return DLV_OK;
}

/* ---- forward ---------------------------------------------------------- */

/* Per-call scratch: activations for all B * T token rows. */
typedef struct scratch {
    dlv_buffer h, x, q, k, v, att, gate, up, mask, lora_tmp;
    int32_t *positions;
} scratch;

static void scratch_free(scratch *s)
{
    dlv_buffer_free(&s->h);
    dlv_buffer_free(&s->x);
    dlv_buffer_free(&s->q);
    dlv_buffer_free(&s->k);
    dlv_buffer_free(&s->v);
    dlv_buffer_free(&s->att);
    dlv_buffer_free(&s->gate);
    dlv_buffer_free(&s->up);
    dlv_buffer_free(&s->mask);
    dlv_buffer_free(&s->lora_tmp);
    free(s->positions);
    s->positions = NULL;
}

static dlv_status alloc_f32(dlv_backend *be, int64_t rows, int64_t cols, dlv_buffer *out)
{
    return dlv_buffer_alloc(be, (size_t)rows * (size_t)cols * sizeof(float), out);
}

/* A LoRA pair for one module (a NULL: none) and its scratch [rows, rank]. */
typedef struct lora_ref {
    const float *a, *b;
    int64_t rank;
    float scale;
    float *tmp;
} lora_ref;

/* y[rows, n_out] = x[rows, n_in] . W^T (+ b) (+ scale * (x A^T) B^T): an
 * nn.Linear, wrapped by PEFT's LoRA layer when lr->a is set. */
static dlv_status linear(dlv_backend *be, float *y, const float *x, int64_t rows, int64_t n_in,
                         int64_t n_out, const dlv_st_tensor *w, const dlv_st_tensor *b,
                         const lora_ref *lr)
{
    dlv_matmul_args a = {
        .struct_size = sizeof a,
        .trans_a = DLV_NO_TRANS, .trans_b = DLV_TRANS,
        .m = rows, .n = n_out, .k = n_in,
        .alpha = 1.0f, .beta = 0.0f,
        .a = x, .a_dtype = DLV_DTYPE_F32, .lda = n_in,
        .b = w->data, .b_dtype = w->dtype, .ldb = n_in,
        .c = y, .ldc = n_out,
    };
    dlv_status st = dlv_matmul(be, &a);
    if (st) return dlv_error_prefix(st, "%s", w->name);
    if (b) {
        st = dlv_add_bias(be, y, b->data, b->dtype, rows, n_out);
        if (st) return dlv_error_prefix(st, "%s", b->name);
    }
    if (lr && lr->a) {
        /* PEFT: result + lora_B(lora_A(x)) * scaling. */
        dlv_matmul_args la = {
            .struct_size = sizeof la,
            .trans_a = DLV_NO_TRANS, .trans_b = DLV_TRANS,
            .m = rows, .n = lr->rank, .k = n_in,
            .alpha = 1.0f, .beta = 0.0f,
            .a = x, .a_dtype = DLV_DTYPE_F32, .lda = n_in,
            .b = lr->a, .b_dtype = DLV_DTYPE_F32, .ldb = n_in,
            .c = lr->tmp, .ldc = lr->rank,
        };
        dlv_matmul_args lb = {
            .struct_size = sizeof lb,
            .trans_a = DLV_NO_TRANS, .trans_b = DLV_TRANS,
            .m = rows, .n = n_out, .k = lr->rank,
            .alpha = lr->scale, .beta = 1.0f,
            .a = lr->tmp, .a_dtype = DLV_DTYPE_F32, .lda = lr->rank,
            .b = lr->b, .b_dtype = DLV_DTYPE_F32, .ldb = lr->rank,
            .c = y, .ldc = n_out,
        };
        if ((st = dlv_matmul(be, &la)) || (st = dlv_matmul(be, &lb)))
            return dlv_error_prefix(st, "%s (LoRA)", w->name);
    }
    return DLV_OK;
}

/* The tensors of one decoder layer; biases NULL where absent. */
typedef struct layer_w {
    const dlv_st_tensor *ln1, *q, *k, *v, *o, *qb, *kb, *vb, *ob;
    const dlv_st_tensor *ln2, *gate, *up, *down, *gb, *ub, *db;
} layer_w;

static dlv_status layer_weights(const dlv_model *m, int64_t i, layer_w *lw)
{
    const dlv_text_config *t = &dlv_model_config(m)->text;
    const uint64_t h = (uint64_t)t->hidden_size, im = (uint64_t)t->intermediate_size;
    const uint64_t qd = (uint64_t)(t->num_attention_heads * t->head_dim);
    const uint64_t kvd = (uint64_t)(t->num_key_value_heads * t->head_dim);
    char n[DLV_WEIGHT_NAME_MAX];
    dlv_status st = DLV_OK;
#define W(field, suffix, count, getter)                                           \
    do {                                                                          \
        snprintf(n, sizeof n, "layers.%lld.%s", (long long)i, suffix);            \
        if ((st = getter(m, n, count, &lw->field))) return st;                   \
    } while (0)
    W(ln1, "input_layernorm.weight", h, get_weight);
    W(q, "self_attn.q_proj.weight", qd * h, get_weight);
    W(k, "self_attn.k_proj.weight", kvd * h, get_weight);
    W(v, "self_attn.v_proj.weight", kvd * h, get_weight);
    W(o, "self_attn.o_proj.weight", h * qd, get_weight);
    W(qb, "self_attn.q_proj.bias", qd, get_bias);
    W(kb, "self_attn.k_proj.bias", kvd, get_bias);
    W(vb, "self_attn.v_proj.bias", kvd, get_bias);
    W(ob, "self_attn.o_proj.bias", h, get_bias);
    W(ln2, "post_attention_layernorm.weight", h, get_weight);
    W(gate, "mlp.gate_proj.weight", im * h, get_weight);
    W(up, "mlp.up_proj.weight", im * h, get_weight);
    W(down, "mlp.down_proj.weight", h * im, get_weight);
    W(gb, "mlp.gate_proj.bias", im, get_bias);
    W(ub, "mlp.up_proj.bias", im, get_bias);
    W(db, "mlp.down_proj.bias", h, get_bias);
#undef W
    return st;
}

typedef struct dims {
    int64_t batch, len, n, hidden, inter, n_heads, n_kv, head_dim, qd, kvd;
    float eps;
    double theta;
} dims;

static dlv_status run_layer(dlv_backend *be, const dims *d, const layer_w *w, scratch *s,
                            const dlv_lora *lora, int64_t layer)
{
    lora_ref lr[DLV_LORA_N_MODULES];
    for (int m = 0; m < DLV_LORA_N_MODULES; m++) {
        lr[m] = (lora_ref){NULL, NULL, 0, 0.0f, dlv_buffer_ptr(&s->lora_tmp)};
        if (lora) {
            lr[m].a = dlv_lora_a(lora, layer, (dlv_lora_module)m);
            lr[m].b = dlv_lora_b(lora, layer, (dlv_lora_module)m);
            lr[m].rank = lora->rank;
            lr[m].scale = lora->scale;
        }
    }
    float *h = dlv_buffer_ptr(&s->h), *x = dlv_buffer_ptr(&s->x);
    float *q = dlv_buffer_ptr(&s->q), *k = dlv_buffer_ptr(&s->k), *v = dlv_buffer_ptr(&s->v);
    float *att = dlv_buffer_ptr(&s->att);
    float *gate = dlv_buffer_ptr(&s->gate), *up = dlv_buffer_ptr(&s->up);
    dlv_status st;

    if ((st = dlv_rmsnorm(be, x, h, w->ln1->data, w->ln1->dtype, d->n, d->hidden, d->eps)))
        return dlv_error_prefix(st, "%s", w->ln1->name);
    if ((st = linear(be, q, x, d->n, d->hidden, d->qd, w->q, w->qb, &lr[DLV_LORA_Q])) ||
        (st = linear(be, k, x, d->n, d->hidden, d->kvd, w->k, w->kb, &lr[DLV_LORA_K])) ||
        (st = linear(be, v, x, d->n, d->hidden, d->kvd, w->v, w->vb, &lr[DLV_LORA_V])))
        return st;
    if ((st = dlv_rope(be, q, s->positions, d->n, d->n_heads, d->head_dim, d->theta)) ||
        (st = dlv_rope(be, k, s->positions, d->n, d->n_kv, d->head_dim, d->theta)))
        return dlv_error_prefix(st, "rope");

    /* HF's eager attention: softmax(q k^T / sqrt(head_dim) + causal and
     * padding mask) v, with k/v heads repeated (repeat_kv) for GQA. */
    dlv_attention_args aa = {
        .struct_size = sizeof aa,
        .out = att, .q = q, .k = k, .v = v,
        .key_mask = dlv_buffer_ptr(&s->mask),
        .batch = d->batch, .n_q = d->len, .n_kv = d->len,
        .n_heads = d->n_heads, .n_kv_heads = d->n_kv, .head_dim = d->head_dim,
        .scale = (float)(1.0 / sqrt((double)d->head_dim)),
        .causal = 1,
    };
    if ((st = dlv_attention(be, &aa))) return dlv_error_prefix(st, "self_attn");
    /* o_proj into x, then the residual add, in HF's order (h + (o + b)). */
    if ((st = linear(be, x, att, d->n, d->qd, d->hidden, w->o, w->ob, &lr[DLV_LORA_O]))) return st;
    if ((st = dlv_add(be, h, h, x, DLV_DTYPE_F32, 0, d->n, d->hidden)))
        return dlv_error_prefix(st, "attention residual");

    if ((st = dlv_rmsnorm(be, x, h, w->ln2->data, w->ln2->dtype, d->n, d->hidden, d->eps)))
        return dlv_error_prefix(st, "%s", w->ln2->name);
    if ((st = linear(be, gate, x, d->n, d->hidden, d->inter, w->gate, w->gb, &lr[DLV_LORA_GATE])) ||
        (st = linear(be, up, x, d->n, d->hidden, d->inter, w->up, w->ub, &lr[DLV_LORA_UP])))
        return st;
    if ((st = dlv_swiglu(be, gate, gate, up, d->n * d->inter)))
        return dlv_error_prefix(st, "mlp");
    if ((st = linear(be, x, gate, d->n, d->inter, d->hidden, w->down, w->db, &lr[DLV_LORA_DOWN]))) return st;
    if ((st = dlv_add(be, h, h, x, DLV_DTYPE_F32, 0, d->n, d->hidden)))
        return dlv_error_prefix(st, "mlp residual");
    return DLV_OK;
}

static dlv_status check_args(const dlv_model *m, const dlv_text_config *t, const float *embeds,
                             const int32_t *lengths, int64_t batch, int64_t max_len,
                             const float *last_hidden, size_t last_len,
                             const float *all_hidden, size_t all_len)
{
    const char *label = dlv_model_dir(m);
    if (!embeds || !lengths || !last_hidden)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: embeds, lengths or last_hidden "
                         "is NULL", label);
    if (batch < 1 || max_len < 1)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: batch = %lld, max_len = %lld "
                         "must be >= 1", label, (long long)batch, (long long)max_len);
    /* Every scratch buffer is at most n * widest floats; keep that
     * addressable (and n an int for the ops). */
    int64_t widest = t->hidden_size;
    if (t->intermediate_size > widest) widest = t->intermediate_size;
    if (t->num_attention_heads * t->head_dim > widest)
        widest = t->num_attention_heads * t->head_dim;
    const int64_t limit = (int64_t)(PTRDIFF_MAX / 4) / (int64_t)sizeof(float) / widest /
                          (t->num_hidden_layers + 1);
    if (max_len > limit / batch || batch * max_len > INT32_MAX)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: batch %lld x max_len %lld is "
                         "too large", label, (long long)batch, (long long)max_len);
    for (int64_t b = 0; b < batch; b++)
        if (lengths[b] < 1 || lengths[b] > max_len)
            return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: lengths[%lld] = %d is "
                             "outside [1, max_len = %lld]", label, (long long)b,
                             (int)lengths[b], (long long)max_len);
    const size_t need_last = (size_t)batch * (size_t)t->hidden_size;
    if (last_len < need_last)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "%s: text forward: last_hidden holds %zu "
                         "floats, needs %zu", label, last_len, need_last);
    if (all_hidden) {
        const size_t need_all = (size_t)(t->num_hidden_layers + 1) * (size_t)batch *
                                (size_t)max_len * (size_t)t->hidden_size;
        if (all_len < need_all)
            return dlv_error(DLV_E_BUFFER_TOO_SMALL, "%s: text forward: all_hidden holds %zu "
                             "floats, needs %zu", label, all_len, need_all);
    }
    return DLV_OK;
}

static dlv_status alloc_scratch(dlv_backend *be, const dims *d, const int32_t *lengths,
                                const dlv_lora *lora, scratch *s)
{
    dlv_status st;
    if (lora && (st = alloc_f32(be, d->n, lora->rank, &s->lora_tmp))) return st;
    if ((st = alloc_f32(be, d->n, d->hidden, &s->h)) ||
        (st = alloc_f32(be, d->n, d->hidden, &s->x)) ||
        (st = alloc_f32(be, d->n, d->qd, &s->q)) ||
        (st = alloc_f32(be, d->n, d->kvd, &s->k)) ||
        (st = alloc_f32(be, d->n, d->kvd, &s->v)) ||
        (st = alloc_f32(be, d->n, d->qd, &s->att)) ||
        (st = alloc_f32(be, d->n, d->inter, &s->gate)) ||
        (st = alloc_f32(be, d->n, d->inter, &s->up)) ||
        (st = dlv_buffer_alloc(be, (size_t)d->n, &s->mask)))
        return st;
    s->positions = malloc((size_t)d->n * sizeof *s->positions);
    if (!s->positions) return dlv_error_nomem("text positions", (size_t)d->n * sizeof(int32_t));
    uint8_t *mask = dlv_buffer_ptr(&s->mask);
    /* Right padding: position t of every row is t (as HF's cache_position);
     * padded keys are masked out, so padded rows never influence real ones. */
    for (int64_t b = 0; b < d->batch; b++)
        for (int64_t i = 0; i < d->len; i++) {
            s->positions[b * d->len + i] = (int32_t)i;
            mask[b * d->len + i] = i < lengths[b] ? 1 : 0;
        }
    return DLV_OK;
}

static dlv_status forward(const dlv_model *m, dlv_backend *be, const dims *d,
                          const int32_t *lengths, const dlv_lora *lora, scratch *s,
                          float *last_hidden, float *all_hidden)
{
    const dlv_text_config *t = &dlv_model_config(m)->text;
    const size_t plane = (size_t)d->n * (size_t)d->hidden;
    const size_t plane_bytes = plane * sizeof(float);
    float *h = dlv_buffer_ptr(&s->h);
    dlv_status st;
    if (all_hidden && (st = dlv_buffer_download(all_hidden, &s->h, 0, plane_bytes))) return st;
    for (int64_t l = 0; l < t->num_hidden_layers; l++) {
        layer_w w;
        if ((st = layer_weights(m, l, &w))) return st;
        if ((st = run_layer(be, d, &w, s, lora, l)))
            return dlv_error_prefix(st, "%s: language model layer %lld", dlv_model_dir(m),
                                    (long long)l);
        /* HF's tuple skips the last layer's raw output: its last entry is
         * the final-normed state. */
        if (all_hidden && l + 1 < t->num_hidden_layers &&
            (st = dlv_buffer_download(all_hidden + (size_t)(l + 1) * plane, &s->h, 0,
                                      plane_bytes)))
            return st;
    }
    const dlv_st_tensor *norm;
    if ((st = get_weight(m, "norm.weight", (uint64_t)d->hidden, &norm))) return st;
    if ((st = dlv_rmsnorm(be, h, h, norm->data, norm->dtype, d->n, d->hidden, d->eps)))
        return dlv_error_prefix(st, "%s: %s", dlv_model_dir(m), norm->name);
    if (all_hidden &&
        (st = dlv_buffer_download(all_hidden + (size_t)t->num_hidden_layers * plane, &s->h, 0,
                                  plane_bytes)))
        return st;
    const size_t row_bytes = (size_t)d->hidden * sizeof(float);
    for (int64_t b = 0; b < d->batch; b++) {
        const size_t row = (size_t)b * (size_t)d->len + (size_t)lengths[b] - 1;
        if ((st = dlv_buffer_download(last_hidden + (size_t)b * (size_t)d->hidden, &s->h,
                                      row * row_bytes, row_bytes)))
            return st;
    }
    return DLV_OK;
}

dlv_status dlv_text_forward(const dlv_model *m, dlv_backend *be, const float *embeds,
                            const int32_t *lengths, int64_t batch, int64_t max_len,
                            float *last_hidden, size_t last_len, float *all_hidden,
                            size_t all_len)
{
    return dlv_text_forward_lora(m, be, NULL, embeds, lengths, batch, max_len, last_hidden,
                                 last_len, all_hidden, all_len);
}

dlv_status dlv_text_forward_lora(const dlv_model *m, dlv_backend *be, const dlv_lora *lora,
                                 const float *embeds, const int32_t *lengths, int64_t batch,
                                 int64_t max_len, float *last_hidden, size_t last_len,
                                 float *all_hidden, size_t all_len)
{
    dlv_status st = dlv_text_check(m, be);
    if (st) return st;
    const dlv_text_config *t = &dlv_model_config(m)->text;
    if ((st = check_args(m, t, embeds, lengths, batch, max_len, last_hidden, last_len,
                         all_hidden, all_len)))
        return st;
    const dims d = {
        .batch = batch, .len = max_len, .n = batch * max_len,
        .hidden = t->hidden_size, .inter = t->intermediate_size,
        .n_heads = t->num_attention_heads, .n_kv = t->num_key_value_heads,
        .head_dim = t->head_dim,
        .qd = t->num_attention_heads * t->head_dim,
        .kvd = t->num_key_value_heads * t->head_dim,
        .eps = (float)t->rms_norm_eps, .theta = t->rope_theta,
    };
    scratch s = {0};
    if (lora && (lora->n_layers != t->num_hidden_layers || lora->rank < 1))
        return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: the LoRA adapter has %lld layers "
                         "(rank %lld), the model %lld", dlv_model_dir(m),
                         (long long)lora->n_layers, (long long)lora->rank,
                         (long long)t->num_hidden_layers);
    st = alloc_scratch(be, &d, lengths, lora, &s);
    if (!st) st = dlv_buffer_upload(&s.h, 0, embeds, (size_t)d.n * (size_t)d.hidden *
                                    sizeof(float));
    if (!st) st = forward(m, be, &d, lengths, lora, &s, last_hidden, all_hidden);
    scratch_free(&s);
    return st;
}
