/* ViT embeddings + encoder, forward and backward (see vit.h). */
#include "model/nn/vit.h"

#include <stdlib.h>

#include "core/error.h"

struct dlv_vit_tape {
    dlv_vit_dims d;
    int64_t n, S, P, K, n_run, from;
    dlv_buffer buf;            /* patches [n P, K], x0 [n S, D] (from == -1) */
    float *patches, *x0;
    dlv_encoder_tape *enc;
};

#define PF(b) ((float *)dlv_buffer_ptr(&(b)))

static int has_class(const dlv_vit_w *w) { return dlv_tensor_present(&w->class_emb); }

int64_t dlv_vit_seq_len(const dlv_vit_dims *d, const dlv_vit_w *w)
{
    const int64_t side = d->image_size / d->patch;
    return side * side + (has_class(w) ? 1 : 0);
}

void dlv_vit_tape_free(dlv_vit_tape *t)
{
    if (!t) return;
    dlv_buffer_free(&t->buf);
    dlv_encoder_tape_free(t->enc);
    free(t);
}

size_t dlv_vit_tape_bytes(const dlv_vit_tape *t)
{
    return t ? t->buf.size + dlv_encoder_tape_bytes(t->enc) : 0;
}

/* x0 = [class] + patches W^T (+ b) + positions, per image. */
static dlv_status embed(dlv_backend *be, const dlv_vit_tape *t, const dlv_vit_w *w,
                        const float *pixels, float *x0)
{
    const dlv_vit_dims *d = &t->d;
    const int64_t D = d->enc.hidden, S = t->S, P = t->P, K = t->K;
    const int64_t img_px = d->channels * d->image_size * d->image_size;
    const int cls = has_class(w);
    dlv_status st = DLV_OK;
    for (int64_t i = 0; i < t->n && !st; i++) {
        float *xi = x0 + i * S * D, *pi = t->patches + i * P * K;
        st = dlv_im2col_patches(be, pi, pixels + i * img_px, d->channels, d->image_size,
                                d->image_size, d->patch);
        /* The class row: 0 + class_embedding, widened exactly by add. */
        if (!st && cls) st = dlv_zero(be, xi, (size_t)D * sizeof(float));
        if (!st && cls)
            st = dlv_add(be, xi, xi, dlv_tensor_data(&w->class_emb), w->class_emb.dtype, 1, 1, D);
        /* One GEMM per image, so an image's features do not depend on its
         * batch companions. */
        if (!st) st = dlv_linear_forward(be, cls ? xi + D : xi, pi, P, &w->patch, NULL, NULL);
        if (!st)
            st = dlv_add(be, xi, xi, dlv_tensor_data(&w->pos_emb), w->pos_emb.dtype, 0, S, D);
    }
    return st;
}

dlv_status dlv_vit_forward(dlv_backend *be, const dlv_vit_dims *d, const dlv_vit_w *w,
                           int64_t n_run, const float *pixels, int64_t n, int64_t from,
                           int recompute, dlv_vit_tape **tape, float *out, float *trace)
{
    if (tape) *tape = NULL;
    if (!be || !d || !w || !pixels || !out || n < 1 || n_run < 0 || n_run > w->n_layers)
        return dlv_error(DLV_E_INVALID_ARG, "vision tower forward: bad arguments");
    dlv_vit_tape *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("vision tape", sizeof *t);
    t->d = *d;
    t->n = n;
    t->S = dlv_vit_seq_len(d, w);
    t->P = (d->image_size / d->patch) * (d->image_size / d->patch);
    t->K = d->channels * d->patch * d->patch;
    t->n_run = n_run;
    t->from = !tape ? n_run : from < -1 ? -1 : from > n_run ? n_run : from;
    const size_t D = (size_t)d->enc.hidden, R = (size_t)(n * t->S);
    const size_t np = (size_t)(n * t->P) * (size_t)t->K;
    dlv_status st = dlv_buffer_alloc(be, (np + R * D) * sizeof(float), &t->buf);
    if (!st) {
        t->patches = PF(t->buf);
        t->x0 = t->patches + np;
    }
    if (!st) st = embed(be, t, w, pixels, t->x0);
    if (!st) {
        if (dlv_tensor_present(&w->pre_ln.w))
            st = dlv_layernorm(be, out, t->x0, dlv_tensor_data(&w->pre_ln.w),
                               dlv_tensor_data(&w->pre_ln.b), w->pre_ln.w.dtype, (int64_t)R,
                               (int64_t)D, d->enc.eps);
        else
            st = dlv_copy(be, out, t->x0, R * D * sizeof(float));
    }
    if (st) st = dlv_error_prefix(st, "vision embeddings");
    if (!st)
        st = dlv_encoder_forward(be, &d->enc, w->layers, n_run, out, n, t->S, NULL,
                                 t->from < 0 ? 0 : t->from, recompute, tape ? &t->enc : NULL,
                                 out, trace);
    if (st || !tape) {
        dlv_vit_tape_free(t);
        return st;
    }
    *tape = t;
    return DLV_OK;
}

dlv_status dlv_vit_backward(dlv_backend *be, const dlv_vit_w *w, const dlv_vit_w *gw,
                            dlv_vit_tape *t, const float *dout)
{
    if (!be || !w || !t || !dout)
        return dlv_error(DLV_E_INVALID_ARG, "vision tower backward: NULL argument");
    if (t->from >= t->n_run) return DLV_OK; /* nothing below the output is trained */
    const dlv_vit_dims *d = &t->d;
    const int64_t D = d->enc.hidden, S = t->S, R = t->n * S;
    dlv_buffer gbuf = {0};
    float *dx = NULL, *dx0 = NULL;
    dlv_status st = DLV_OK;
    if (t->from < 0) {
        st = dlv_buffer_alloc(be, 2 * (size_t)(R * D) * sizeof(float), &gbuf);
        if (!st) {
            dx = PF(gbuf);
            dx0 = dx + R * D;
        }
    }
    if (!st)
        st = dlv_encoder_backward(be, w->layers, gw ? gw->layers : NULL, t->enc, dout, dx);
    if (st || t->from >= 0) {
        dlv_buffer_free(&gbuf);
        return st;
    }
    /* The embeddings: pre_layrnorm (CLIP), then positions, class, patches. */
    if (dlv_tensor_present(&w->pre_ln.w)) {
        st = dlv_zero(be, dx0, (size_t)(R * D) * sizeof(float));
        if (!st)
            st = dlv_layernorm_backward(be, dx0, gw ? dlv_tensor_f32(&gw->pre_ln.w) : NULL,
                                        gw ? dlv_tensor_f32(&gw->pre_ln.b) : NULL, dx, t->x0,
                                        dlv_tensor_data(&w->pre_ln.w), w->pre_ln.w.dtype, R, D,
                                        d->enc.eps);
    } else {
        dx0 = dx;
    }
    const int cls = has_class(w);
    for (int64_t i = 0; i < t->n && !st && gw; i++) {
        const float *di = dx0 + i * S * D;
        if (dlv_tensor_present(&gw->pos_emb))
            st = dlv_add(be, dlv_tensor_f32(&gw->pos_emb), dlv_tensor_f32(&gw->pos_emb), di,
                         DLV_DTYPE_F32, 0, S, D);
        if (!st && cls && dlv_tensor_present(&gw->class_emb))
            st = dlv_add(be, dlv_tensor_f32(&gw->class_emb), dlv_tensor_f32(&gw->class_emb), di,
                         DLV_DTYPE_F32, 0, 1, D);
        if (!st)
            st = dlv_linear_backward(be, NULL, 0.0f, cls ? di + D : di,
                                     t->patches + i * t->P * t->K, t->P, &w->patch, &gw->patch,
                                     NULL, NULL, NULL, NULL);
    }
    if (st) st = dlv_error_prefix(st, "vision embeddings (backward)");
    dlv_buffer_free(&gbuf);
    return st;
}
