/* LLaVA's image pathway (see llava_vision.h). */
#include "model/llava/llava_vision.h"

#include <stdlib.h>

#include "core/error.h"

struct dlv_llava_vision_tape {
    dlv_llava_dims d;
    int64_t n;
    dlv_buffer buf;        /* tower output [n S, D], sel [n F, D], mid, g [n F, T] */
    float *tower, *sel, *mid, *g;
    dlv_vit_tape *vit;
};

#define PF(b) ((float *)dlv_buffer_ptr(&(b)))

void dlv_llava_vision_tape_free(dlv_llava_vision_tape *t)
{
    if (!t) return;
    dlv_buffer_free(&t->buf);
    dlv_vit_tape_free(t->vit);
    free(t);
}

size_t dlv_llava_vision_tape_bytes(const dlv_llava_vision_tape *t)
{
    return t ? t->buf.size + dlv_vit_tape_bytes(t->vit) : 0;
}

/* y_i = linear(x_i) for each image's `rows` rows. */
static dlv_status per_image(dlv_backend *be, float *y, const float *x, int64_t n, int64_t rows,
                            const dlv_linear *w)
{
    const int64_t in = dlv_linear_in(w), out = dlv_linear_out(w);
    for (int64_t i = 0; i < n; i++) {
        dlv_status st = dlv_linear_forward(be, y + i * rows * out, x + i * rows * in, rows, w,
                                           NULL, NULL);
        if (st) return st;
    }
    return DLV_OK;
}

static dlv_status per_image_bw(dlv_backend *be, float *dx, const float *dy, const float *x,
                               int64_t n, int64_t rows, const dlv_linear *w, const dlv_linear *gw)
{
    const int64_t in = dlv_linear_in(w), out = dlv_linear_out(w);
    for (int64_t i = 0; i < n; i++) {
        dlv_status st = dlv_linear_backward(be, dx ? dx + i * rows * in : NULL, 0.0f,
                                            dy + i * rows * out, x + i * rows * in, rows, w, gw,
                                            NULL, NULL, NULL, NULL);
        if (st) return st;
    }
    return DLV_OK;
}

static dlv_status projector(dlv_backend *be, const dlv_llava_dims *d, const dlv_llava_w *w,
                            dlv_llava_vision_tape *t, dlv_llava_vision_tape **tape,
                            float *features);

dlv_status dlv_llava_vision_forward(dlv_backend *be, const dlv_llava_dims *d,
                                    const dlv_llava_w *w, const float *pixels, int64_t n,
                                    int64_t from, int recompute, dlv_llava_vision_tape **tape,
                                    float *features, const dlv_llava_vision_trace *trace)
{
    if (tape) *tape = NULL;
    if (!be || !d || !w || !pixels || !features || n < 1)
        return dlv_error(DLV_E_INVALID_ARG, "vision features: bad arguments");
    if (!dlv_weights_readable(be, &w->proj1.w))
        return dlv_error(DLV_E_INVALID_ARG, "vision features: backend '%s' cannot read the "
                         "model's weights", be->ops->name);
    if (d->vision_run < 0 || d->vision_run > w->vision.n_layers)
        return dlv_error(DLV_E_FORMAT, "vision_feature_layer selects hidden state %lld of a "
                         "tower with %lld layers", (long long)d->vision_run,
                         (long long)w->vision.n_layers);
    dlv_llava_vision_tape *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("vision tape", sizeof *t);
    t->d = *d;
    t->n = n;
    const int64_t S = d->vision_seq, F = d->n_features, D = d->vision.enc.hidden;
    const int64_t T = d->text.hidden;
    const size_t floats = (size_t)(n * S * D + n * F * D + 2 * n * F * T);
    dlv_status st = dlv_buffer_alloc(be, floats * sizeof(float), &t->buf);
    if (!st) {
        t->tower = PF(t->buf);
        t->sel = t->tower + n * S * D;
        t->mid = t->sel + n * F * D;
        t->g = t->mid + n * F * T;
        /* The tower keeps a tape only when some stage of it is trained. */
        const int tower_tape = tape && from < d->vision_run;
        st = dlv_vit_forward(be, &d->vision, &w->vision, d->vision_run, pixels, n, from,
                             recompute, tower_tape ? &t->vit : NULL, t->tower,
                             trace ? trace->hidden_states : NULL);
    }
    /* "default" drops token 0 of each image. */
    for (int64_t i = 0; i < n && !st; i++)
        st = dlv_copy(be, t->sel + i * F * D, t->tower + (i * S + S - F) * D,
                      (size_t)(F * D) * sizeof(float));
    if (!st && trace && trace->selected)
        st = dlv_copy(be, trace->selected, t->sel, (size_t)(n * F * D) * sizeof(float));
    if (st) {
        dlv_llava_vision_tape_free(t);
        return dlv_error_prefix(st, "vision features");
    }
    return projector(be, d, w, t, tape, features);
}

/* The projector from t->sel into features; hands t over to *tape (or frees
 * it), and frees it on failure. */
static dlv_status projector(dlv_backend *be, const dlv_llava_dims *d, const dlv_llava_w *w,
                            dlv_llava_vision_tape *t, dlv_llava_vision_tape **tape,
                            float *features)
{
    const int64_t n = t->n, F = d->n_features, T = d->text.hidden;
    dlv_status st = per_image(be, t->mid, t->sel, n, F, &w->proj1);
    if (!st) st = dlv_activation(be, d->projector_act, t->g, t->mid, n * F * T);
    if (!st) st = per_image(be, features, t->g, n, F, &w->proj2);
    if (st) st = dlv_error_prefix(st, "vision features");
    if (st || !tape) {
        dlv_llava_vision_tape_free(t);
        return st;
    }
    *tape = t;
    return DLV_OK;
}

dlv_status dlv_llava_projector_forward(dlv_backend *be, const dlv_llava_dims *d,
                                       const dlv_llava_w *w, const float *selected, int64_t n,
                                       dlv_llava_vision_tape **tape, float *features)
{
    if (tape) *tape = NULL;
    if (!be || !d || !w || !selected || !features || n < 1)
        return dlv_error(DLV_E_INVALID_ARG, "projector: bad arguments");
    dlv_llava_vision_tape *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("vision tape", sizeof *t);
    t->d = *d;
    t->n = n;
    const int64_t F = d->n_features, D = d->vision.enc.hidden, T = d->text.hidden;
    /* No tower rows: the backward stops at the projector (t->vit is NULL). */
    dlv_status st = dlv_buffer_alloc(be, (size_t)(n * F * D + 2 * n * F * T) * sizeof(float),
                                     &t->buf);
    if (!st) {
        t->sel = PF(t->buf);
        t->mid = t->sel + n * F * D;
        t->g = t->mid + n * F * T;
        st = dlv_copy(be, t->sel, selected, (size_t)(n * F * D) * sizeof(float));
    }
    if (st) {
        dlv_llava_vision_tape_free(t);
        return dlv_error_prefix(st, "projector");
    }
    return projector(be, d, w, t, tape, features);
}

dlv_status dlv_llava_vision_backward(dlv_backend *be, const dlv_llava_w *w, const dlv_llava_w *gw,
                                     dlv_llava_vision_tape *t, const float *dfeatures)
{
    if (!be || !w || !t || !dfeatures)
        return dlv_error(DLV_E_INVALID_ARG, "vision features backward: NULL argument");
    const dlv_llava_dims *d = &t->d;
    const int64_t n = t->n, S = d->vision_seq, F = d->n_features, D = d->vision.enc.hidden;
    const int64_t T = d->text.hidden;
    const int tower = t->vit != NULL;
    dlv_buffer gb = {0};
    /* dg, dmid [n F, T]; dsel [n F, D]; dtower [n S, D]. */
    const size_t floats = (size_t)(2 * n * F * T + n * F * D + (tower ? n * S * D : 0));
    dlv_status st = dlv_buffer_alloc(be, floats * sizeof(float), &gb);
    float *dg = PF(gb), *dmid = dg + n * F * T, *dsel = dmid + n * F * T;
    float *dtower = dsel + n * F * D;
    if (!st)
        st = per_image_bw(be, dg, dfeatures, t->g, n, F, &w->proj2, gw ? &gw->proj2 : NULL);
    if (!st) st = dlv_zero(be, dmid, (size_t)(n * F * T) * sizeof(float));
    if (!st) st = dlv_activation_backward(be, d->projector_act, dmid, dg, t->mid, n * F * T);
    if (!st)
        st = per_image_bw(be, tower ? dsel : NULL, dmid, t->sel, n, F, &w->proj1,
                          gw ? &gw->proj1 : NULL);
    if (st) st = dlv_error_prefix(st, "projector (backward)");
    if (!st && tower) {
        /* The selected rows go back into place; a dropped class row gets 0. */
        st = dlv_zero(be, dtower, (size_t)(n * S * D) * sizeof(float));
        for (int64_t i = 0; i < n && !st; i++)
            st = dlv_copy(be, dtower + (i * S + S - F) * D, dsel + i * F * D,
                          (size_t)(F * D) * sizeof(float));
        if (!st) st = dlv_vit_backward(be, &w->vision, gw ? &gw->vision : NULL, t->vit, dtower);
    }
    dlv_buffer_free(&gb);
    return st;
}
