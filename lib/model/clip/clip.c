/* CLIPModel's towers on device tensors (see clip.h). */
#include "model/clip/clip.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/weights_bind.h"

dlv_status dlv_clip_w_bind(const dlv_clip_config *cfg, const dlv_weights *table,
                           const dlv_tensor *tensors, dlv_clip_w *out)
{
    memset(out, 0, sizeof *out);
    out->vision.n_layers = cfg->vision.num_hidden_layers;
    out->n_text_layers = cfg->text.num_hidden_layers;
    out->vision.layers = calloc((size_t)(out->vision.n_layers > 0 ? out->vision.n_layers : 1),
                                sizeof *out->vision.layers);
    out->text_layers = calloc((size_t)(out->n_text_layers > 0 ? out->n_text_layers : 1),
                              sizeof *out->text_layers);
    if (!out->vision.layers || !out->text_layers) {
        dlv_clip_w_free(out);
        return dlv_error_nomem("CLIP layer weights", 64 * sizeof(dlv_encoder_layer_w));
    }
    const dlv_binder b = {table, tensors};
    const dlv_weight_part V = DLV_PART_VISION, T = DLV_PART_TEXT;
    dlv_bind_vit(&b, V, &cfg->vision, &out->vision);
    out->visual_proj = dlv_bind_linear(&b, V, "visual_projection");
    out->tok_emb = dlv_bind_get(&b, T, "text_model.embeddings.token_embedding.weight");
    out->pos_emb = dlv_bind_get(&b, T, "text_model.embeddings.position_embedding.weight");
    dlv_bind_encoder(&b, T, "text_model.", out->n_text_layers, out->text_layers);
    out->final_ln = dlv_bind_layernorm(&b, T, "text_model.final_layer_norm");
    out->text_proj = dlv_bind_linear(&b, T, "text_projection");
    out->logit_scale = dlv_bind_get(&b, DLV_PART_PROJECTOR, "logit_scale");
    return DLV_OK;
}

void dlv_clip_w_free(dlv_clip_w *w)
{
    if (!w) return;
    free(w->vision.layers);
    free(w->text_layers);
    memset(w, 0, sizeof *w);
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

struct dlv_clip_tape {
    int text;                  /* which tower */
    int64_t n, S, D, P, vocab;
    float eps;
    int64_t *pool;             /* [n] pooled position of each sequence (host) */
    dlv_buffer buf;            /* x [n S, D] the tower's output, pooled, pooled_ln [n, D];
                                * text: ids [n S] int32, mask [n S] uint8 */
    float *x, *pooled, *pooled_ln;
    int32_t *ids;
    uint8_t *mask;
    dlv_vit_tape *vit;         /* image tower, unless frozen */
    dlv_encoder_tape *enc;     /* text tower, unless frozen */
};

void dlv_clip_tape_free(dlv_clip_tape *t)
{
    if (!t) return;
    dlv_buffer_free(&t->buf);
    dlv_vit_tape_free(t->vit);
    dlv_encoder_tape_free(t->enc);
    free(t->pool);
    free(t);
}

static dlv_status tape_new(int text, int64_t n, int64_t S, int64_t D, int64_t P, float eps,
                           dlv_backend *be, dlv_clip_tape **out)
{
    dlv_clip_tape *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("CLIP tape", sizeof *t);
    *out = t;
    *t = (dlv_clip_tape){.text = text, .n = n, .S = S, .D = D, .P = P, .eps = eps};
    t->pool = calloc((size_t)n, sizeof *t->pool);
    if (!t->pool) return dlv_error_nomem("CLIP tape", (size_t)n * sizeof *t->pool);
    const size_t R = (size_t)(n * S), f = R * (size_t)D + 2 * (size_t)(n * D);
    const size_t ids_bytes = text ? R * sizeof(int32_t) + R : 0;
    dlv_status st = dlv_buffer_alloc(be, f * sizeof(float) + ids_bytes, &t->buf);
    if (st) return dlv_error_prefix(st, "CLIP %s tower activations", text ? "text" : "vision");
    t->x = dlv_buffer_ptr(&t->buf);
    t->pooled = t->x + R * (size_t)D;
    t->pooled_ln = t->pooled + n * D;
    if (text) {
        t->ids = (int32_t *)(t->pooled_ln + n * D);
        t->mask = (uint8_t *)(t->ids + R);
    }
    return DLV_OK;
}

/* pooled rows -> final norm -> projection (the common head of both towers). */
static dlv_status head(dlv_backend *be, dlv_clip_tape *t, const dlv_layernorm_w *ln,
                       const dlv_linear *proj, float *embeds)
{
    dlv_status st = DLV_OK;
    for (int64_t i = 0; i < t->n && !st; i++)
        st = dlv_copy(be, t->pooled + i * t->D, t->x + (i * t->S + t->pool[i]) * t->D,
                      (size_t)t->D * sizeof(float));
    if (!st)
        st = dlv_layernorm(be, t->pooled_ln, t->pooled, dlv_tensor_data(&ln->w),
                           dlv_tensor_data(&ln->b), ln->w.dtype, t->n, t->D, t->eps);
    if (!st) st = dlv_linear_forward(be, embeds, t->pooled_ln, t->n, proj, NULL, NULL);
    return st ? dlv_error_prefix(st, "%s projection", t->text ? "text" : "vision") : DLV_OK;
}

static dlv_status finish(dlv_status st, dlv_clip_tape *t, dlv_clip_tape **tape)
{
    if (st || !tape) {
        dlv_clip_tape_free(t);
        return st;
    }
    *tape = t;
    return DLV_OK;
}

dlv_status dlv_clip_image_forward(dlv_backend *be, const dlv_clip_config *cfg,
                                  const dlv_clip_w *w, const float *pixels, int64_t n,
                                  int tower_frozen, dlv_clip_tape **tape, float *embeds)
{
    if (tape) *tape = NULL;
    if (!be || !cfg || !w || !pixels || !embeds || n < 1)
        return dlv_error(DLV_E_INVALID_ARG, "CLIP image forward: bad arguments");
    if (!dlv_weights_readable(be, &w->vision.pos_emb))
        return dlv_error(DLV_E_INVALID_ARG, "CLIP image forward: backend '%s' cannot read the "
                         "model's weights", be->ops->name);
    const dlv_vision_config *v = &cfg->vision;
    const dlv_vit_dims d = {
        .channels = v->num_channels, .image_size = v->image_size, .patch = v->patch_size,
        .enc = {.hidden = v->hidden_size, .inter = v->intermediate_size,
                .n_heads = v->num_attention_heads, .eps = (float)v->layer_norm_eps,
                .act = (dlv_op_act)v->hidden_act, .causal = 0, .per_sequence = 1},
    };
    dlv_clip_tape *t = NULL;
    dlv_status st = tape_new(0, n, dlv_vit_seq_len(&d, &w->vision), v->hidden_size,
                             cfg->projection_dim, (float)v->layer_norm_eps, be, &t);
    /* The class token (position 0) is pooled. */
    if (!st)
        st = dlv_vit_forward(be, &d, &w->vision, w->vision.n_layers, pixels, n, -1, 0,
                             tape && !tower_frozen ? &t->vit : NULL, t->x, NULL);
    if (!st) st = head(be, t, &w->vision.post_ln, &w->visual_proj, embeds);
    return finish(st, t, tape);
}

dlv_status dlv_clip_text_forward(dlv_backend *be, const dlv_clip_config *cfg,
                                 const dlv_clip_w *w, const int32_t *const *ids,
                                 const int64_t *lens, int64_t n, int tower_frozen,
                                 dlv_clip_tape **tape, float *embeds)
{
    if (tape) *tape = NULL;
    if (!be || !cfg || !w || !ids || !lens || !embeds || n < 1)
        return dlv_error(DLV_E_INVALID_ARG, "CLIP text forward: bad arguments");
    const dlv_clip_text_config *tc = &cfg->text;
    int64_t S = 0;
    if (!dlv_weights_readable(be, &w->tok_emb))
        return dlv_error(DLV_E_INVALID_ARG, "CLIP text forward: backend '%s' cannot read the "
                         "model's weights", be->ops->name);
    for (int64_t i = 0; i < n; i++) {
        if (!ids[i])
            return dlv_error(DLV_E_INVALID_ARG, "CLIP text forward: the ids of text %lld are "
                             "NULL", (long long)i);
        if (lens[i] < 1 || lens[i] > tc->max_position_embeddings)
            return dlv_error(DLV_E_INVALID_ARG, "CLIP text forward: text %lld has %lld ids "
                             "(1..%lld allowed)", (long long)i, (long long)lens[i],
                             (long long)tc->max_position_embeddings);
        for (int64_t j = 0; j < lens[i]; j++)
            if (ids[i][j] < 0 || ids[i][j] >= tc->vocab_size)
                return dlv_error(DLV_E_INVALID_ARG, "CLIP text forward: text %lld: token id %d "
                                 "is outside the vocabulary [0, %lld)", (long long)i,
                                 (int)ids[i][j], (long long)tc->vocab_size);
        if (lens[i] > S) S = lens[i];
    }
    const int64_t D = tc->hidden_size, R = n * S;
    dlv_clip_tape *t = NULL;
    dlv_status st = tape_new(1, n, S, D, cfg->projection_dim, (float)tc->layer_norm_eps, be, &t);
    if (!st) t->vocab = tc->vocab_size;
    /* Ids and mask on the host, padding 0, then one upload each. */
    int32_t *hids = st ? NULL : calloc((size_t)R, sizeof *hids);
    uint8_t *hmask = st ? NULL : calloc((size_t)R, 1);
    if (!st && (!hids || !hmask)) st = dlv_error_nomem("CLIP text ids", (size_t)R * 5);
    for (int64_t i = 0; i < n && !st; i++) {
        memcpy(hids + i * S, ids[i], (size_t)lens[i] * sizeof(int32_t));
        memset(hmask + i * S, 1, (size_t)lens[i]);
        t->pool[i] = dlv_clip_pool_position(tc, ids[i], lens[i]);
    }
    const size_t ids_off = st ? 0 : (size_t)((uintptr_t)t->ids - (uintptr_t)t->x);
    if (!st) st = dlv_buffer_upload(&t->buf, ids_off, hids, (size_t)R * sizeof(int32_t));
    if (!st)
        st = dlv_buffer_upload(&t->buf, ids_off + (size_t)R * sizeof(int32_t), hmask, (size_t)R);
    free(hids);
    free(hmask);
    /* Token embeddings plus positions 0 .. S-1 of every sequence. */
    if (!st)
        st = dlv_embedding(be, t->x, dlv_tensor_data(&w->tok_emb), w->tok_emb.dtype, t->ids, R,
                           tc->vocab_size, D);
    for (int64_t i = 0; i < n && !st; i++)
        st = dlv_add(be, t->x + i * S * D, t->x + i * S * D, dlv_tensor_data(&w->pos_emb),
                     w->pos_emb.dtype, 0, S, D);
    if (st) st = dlv_error_prefix(st, "text embeddings");
    const dlv_encoder_dims ed = {.hidden = D, .inter = tc->intermediate_size,
                                 .n_heads = tc->num_attention_heads,
                                 .eps = (float)tc->layer_norm_eps,
                                 .act = (dlv_op_act)tc->hidden_act, .causal = 1,
                                 .per_sequence = 0};
    if (!st)
        st = dlv_encoder_forward(be, &ed, w->text_layers, w->n_text_layers, t->x, n, S, t->mask,
                                 0, 0, tape && !tower_frozen ? &t->enc : NULL, t->x, NULL);
    if (!st) st = head(be, t, &w->final_ln, &w->text_proj, embeds);
    return finish(st, t, tape);
}

dlv_status dlv_clip_backward(dlv_backend *be, const dlv_clip_w *w, const dlv_clip_w *gw,
                             dlv_clip_tape *t, const float *dembeds)
{
    if (!be || !w || !t || !dembeds)
        return dlv_error(DLV_E_INVALID_ARG, "CLIP backward: NULL argument");
    const int64_t n = t->n, D = t->D, S = t->S, R = n * S;
    const dlv_linear *proj = t->text ? &w->text_proj : &w->visual_proj;
    const dlv_linear *gproj = gw ? (t->text ? &gw->text_proj : &gw->visual_proj) : NULL;
    const dlv_layernorm_w *ln = t->text ? &w->final_ln : &w->vision.post_ln;
    const dlv_layernorm_w *gln = gw ? (t->text ? &gw->final_ln : &gw->vision.post_ln) : NULL;
    const int tower = t->text ? t->enc != NULL : t->vit != NULL;
    dlv_buffer gb = {0};
    /* dpl, dp [n, D]; dx [R, D] (tower). */
    dlv_status st = dlv_buffer_alloc(be, (size_t)(2 * n * D + (tower ? R * D : 0)) *
                                             sizeof(float), &gb);
    float *dpl = dlv_buffer_ptr(&gb), *dp = dpl + n * D, *dx = dp + n * D;
    if (!st) st = dlv_linear_backward(be, dpl, 0.0f, dembeds, t->pooled_ln, n, proj, gproj,
                                      NULL, NULL, NULL, NULL);
    if (!st) st = dlv_zero(be, dp, (size_t)(n * D) * sizeof(float));
    if (!st)
        st = dlv_layernorm_backward(be, dp, gln ? dlv_tensor_f32(&gln->w) : NULL,
                                    gln ? dlv_tensor_f32(&gln->b) : NULL, dpl, t->pooled,
                                    dlv_tensor_data(&ln->w), ln->w.dtype, n, D, t->eps);
    if (st) st = dlv_error_prefix(st, "%s projection (backward)", t->text ? "text" : "vision");
    if (!st && tower) {
        st = dlv_zero(be, dx, (size_t)(R * D) * sizeof(float));
        for (int64_t i = 0; i < n && !st; i++)
            st = dlv_copy(be, dx + (i * S + t->pool[i]) * D, dp + i * D,
                          (size_t)D * sizeof(float));
        if (!st && !t->text) st = dlv_vit_backward(be, &w->vision, gw ? &gw->vision : NULL, t->vit, dx);
        if (!st && t->text) {
            st = dlv_encoder_backward(be, w->text_layers, gw ? gw->text_layers : NULL, t->enc,
                                      dx, dx);
            /* Embeddings; padding rows carry no gradient (nothing reads them). */
            if (!st && gw && dlv_tensor_present(&gw->tok_emb))
                st = dlv_embedding_backward(be, dlv_tensor_f32(&gw->tok_emb), dx, t->ids, R,
                                            t->vocab, D);
            for (int64_t i = 0; i < n && !st && gw && dlv_tensor_present(&gw->pos_emb); i++)
                st = dlv_add(be, dlv_tensor_f32(&gw->pos_emb), dlv_tensor_f32(&gw->pos_emb),
                             dx + i * S * D, DLV_DTYPE_F32, 0, S, D);
            if (st) st = dlv_error_prefix(st, "text tower (backward)");
        }
    }
    dlv_buffer_free(&gb);
    return st;
}
