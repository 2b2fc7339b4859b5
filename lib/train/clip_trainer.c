/* CLIPModel contrastive training (see clip_trainer.h). One step:
 *   E_i = image tower(pixels), E_t = text tower(caption ids)  (tapes saved)
 *   v = normalize(E_i), t = normalize(E_t)
 *   L = (CE(s v t^T, rows) + CE(columns)) / 2, s = exp(min(logit_scale, log 100))
 *   dL/dE through l2_normalize_backward, then each tower's backward
 *   clip, schedule, AdamW / SGD update, logit_scale clamped to log(100). */
#include "train/clip_trainer.h"
#include "train/save_model.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "model/clip_model.h"
#include "model/model.h"
#include "train/loss.h"
#include "train/optim.h"

struct dlv_clip_trainer {
    const dlv_model *m;
    dlv_train_config cfg;
    const dlv_weights *W;
    size_t total;                 /* floats in each flat buffer */
    float *params, *grads, *m1, *m2;
    dlv_st_tensor *copy;          /* [W->n] f32 tensors over params */
    const dlv_st_tensor **value;  /* [W->n] &copy[i] or NULL */
    float **grad;                 /* [W->n] */
    dlv_param_range *ranges;
    size_t n_ranges;
    dlv_wview wv;
    int train_text, train_vision; /* a tower has a trained weight */
    int64_t step;
};

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Whether weight name is in the trained sets. */
static int in_sets(unsigned sets, const char *name)
{
    if (starts(name, "vision_model.")) return (sets & DLV_TRAIN_VISION) != 0;
    if (starts(name, "text_model.")) return (sets & DLV_TRAIN_LLM) != 0;
    if (!strcmp(name, "visual_projection.weight"))
        return (sets & (DLV_TRAIN_VISION | DLV_TRAIN_PROJECTOR)) != 0;
    if (!strcmp(name, "text_projection.weight"))
        return (sets & (DLV_TRAIN_LLM | DLV_TRAIN_PROJECTOR)) != 0;
    if (!strcmp(name, "logit_scale")) return (sets & DLV_TRAIN_LOGIT_SCALE) != 0;
    return 0;
}

void dlv_clip_trainer_free(dlv_clip_trainer *t)
{
    if (!t) return;
    free(t->params);
    free(t->grads);
    free(t->m1);
    free(t->m2);
    free(t->copy);
    free(t->value);
    free(t->grad);
    free(t->ranges);
    free(t);
}

dlv_status dlv_clip_trainer_new(const dlv_model *m, dlv_backend *be, const dlv_train_config *cfg,
                                dlv_clip_trainer **out)
{
    (void)be;
    *out = NULL;
    const char *dir = dlv_model_dir(m);
    if (!dlv_model_clip(m)) return dlv_error(DLV_E_INVALID_ARG, "%s is not a CLIPModel", dir);
    unsigned sets = cfg->sets;
    if (sets == DLV_TRAIN_DEFAULT_SETS)
        sets = DLV_TRAIN_VISION | DLV_TRAIN_LLM | DLV_TRAIN_PROJECTOR | DLV_TRAIN_LOGIT_SCALE;
    if (sets & (DLV_TRAIN_SOFT | DLV_TRAIN_LORA))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: a CLIPModel trains its own weights: train "
                         "sets 'soft' and 'lora' do not apply (use vision, llm, projector, "
                         "logit_scale)", dir);
    if (!cfg->contrastive)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: a CLIPModel trains with the contrastive loss "
                         "only (contrastive 0)", dir);
    if (cfg->micro_batch || cfg->recompute || cfg->cache_features)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: micro_batch, recompute and cache_features are "
                         "not supported for a CLIPModel", dir);
    dlv_clip_trainer *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("CLIP trainer", sizeof *t);
    t->m = m;
    t->cfg = *cfg;
    t->cfg.sets = sets;
    t->W = dlv_model_weights(m);
    const size_t nw = t->W->n;
    t->copy = calloc(nw, sizeof *t->copy);
    t->value = calloc(nw, sizeof *t->value);
    t->grad = calloc(nw, sizeof *t->grad);
    t->ranges = calloc(nw, sizeof *t->ranges);
    dlv_status st = DLV_OK;
    if (!t->copy || !t->value || !t->grad || !t->ranges)
        st = dlv_error_nomem("CLIP trainer tables", nw * 64);
    for (size_t i = 0; i < nw && !st; i++) {
        const dlv_weight *w = &t->W->items[i];
        if (!w->tensor || !in_sets(sets, w->canonical)) continue;
        t->ranges[t->n_ranges++] = (dlv_param_range){t->total, (size_t)w->tensor->n_elements,
                                                     w->tensor->ndim >= 2};
        t->total += (size_t)w->tensor->n_elements;
        if (starts(w->canonical, "text_")) t->train_text = 1;
        else if (strcmp(w->canonical, "logit_scale") != 0) t->train_vision = 1;
    }
    size_t bytes = (t->total ? t->total : 1) * sizeof(float);
    if (!st) {
        t->params = malloc(bytes);
        t->grads = calloc(1, bytes);
        t->m1 = calloc(1, bytes);
        t->m2 = calloc(1, bytes);
        if (!t->params || !t->grads || !t->m1 || !t->m2)
            st = dlv_error_nomem("CLIP trainable weights (4 f32 copies)", 4 * bytes);
    }
    for (size_t i = 0, r = 0; i < nw && !st; i++) {
        const dlv_weight *w = &t->W->items[i];
        if (!w->tensor || !in_sets(sets, w->canonical)) continue;
        const dlv_param_range *pr = &t->ranges[r++];
        float *p = t->params + pr->offset;
        st = dlv_st_read_f32(w->tensor, 0, w->tensor->n_elements, p);
        dlv_st_tensor *c = &t->copy[i];
        *c = *w->tensor;
        c->dtype = DLV_DTYPE_F32;
        c->n_bytes = c->n_elements * sizeof(float);
        c->data = p;
        t->value[i] = c;
        t->grad[i] = t->grads + pr->offset;
    }
    if (st) {
        dlv_clip_trainer_free(t);
        return st;
    }
    t->wv = (dlv_wview){t->W, t->value, t->grad};
    *out = t;
    return DLV_OK;
}

const dlv_wview *dlv_clip_trainer_view(const dlv_clip_trainer *t) { return t ? &t->wv : NULL; }

static void fill_stats(dlv_train_stats *s, const dlv_train_stats *v)
{
#define PUT(field)                                                                   \
    if (s->struct_size >= offsetof(dlv_train_stats, field) + sizeof s->field) s->field = v->field
    PUT(loss);
    PUT(loss_contrastive);
    PUT(loss_ntp);
    PUT(grad_norm);
    PUT(learning_rate);
    PUT(logit_scale);
    PUT(step);
    PUT(tokens);
#undef PUT
}

dlv_status dlv_clip_trainer_step(dlv_clip_trainer *t, dlv_backend *be,
                                 const dlv_train_example *ex, size_t n, dlv_train_stats *stats)
{
    const dlv_model *m = t->m;
    const int64_t P = dlv_model_clip(m)->projection_dim;
    size_t ch, hh, ww;
    dlv_status st = dlv_model_image_size(m, &ch, &hh, &ww);
    if (st) return st;
    const size_t per = ch * hh * ww, np = n * (size_t)P;
    float *pixels = malloc(n * per * sizeof(float));
    float *buf = calloc(6 * np, sizeof(float));
    int32_t **ids = calloc(n, sizeof *ids);
    int64_t *lens = calloc(n, sizeof *lens);
    dlv_clip_tape *ti = NULL, *tt = NULL;
    if (!pixels || !buf || !ids || !lens) {
        st = dlv_error_nomem("CLIP training batch", n * (per + 6 * (size_t)P) * sizeof(float));
        goto done;
    }
    float *Ei = buf, *Et = buf + np, *v = buf + 2 * np, *tx = buf + 3 * np;
    float *dv = buf + 4 * np, *dt = buf + 5 * np;
    uint64_t tokens = 0;
    for (size_t k = 0; k < n && !st; k++) {
        st = dlv_preprocess_image(m, ex[k].image, NULL, pixels + k * per, per);
        if (!st) st = dlv_clip_tokenize(m, ex[k].caption, &ids[k], &lens[k]);
        if (st) st = dlv_error_prefix(st, "example %zu", k);
        else tokens += (uint64_t)lens[k];
    }
    /* A frozen tower runs without a tape (nothing to differentiate). */
    if (!st) st = dlv_clip_image_forward(m, be, &t->wv, pixels, (int64_t)n, Ei,
                                         t->train_vision ? &ti : NULL);
    if (!st) st = dlv_clip_text_forward(m, be, &t->wv, (const int32_t *const *)ids, lens,
                                        (int64_t)n, Et, t->train_text ? &tt : NULL);
    if (!st) st = dlv_l2_normalize(be, v, Ei, (int64_t)n, P);
    if (!st) st = dlv_l2_normalize(be, tx, Et, (int64_t)n, P);
    if (st) goto done;
    float *dls_grad = NULL;
    const dlv_st_tensor *ls = dlv_wview_get(&t->wv, DLV_PART_PROJECTOR, "logit_scale", &dls_grad);
    float ls_val = 0;
    if (!ls || (st = dlv_st_read_f32(ls, 0, 1, &ls_val))) {
        if (!st) st = dlv_error(DLV_E_FORMAT, "%s: no logit_scale", dlv_model_dir(m));
        goto done;
    }
    double lc = 0, dls = 0;
    dlv_contrastive_loss(v, tx, (int64_t)n, P, (double)ls_val, &lc, dv, dt, &dls);
    memset(t->grads, 0, (t->total ? t->total : 1) * sizeof(float));
    if (dls_grad) *dls_grad = (float)dls;
    /* dL/dE = normalize'(dL/dv); Ei/Et's slots are free after this. */
    float *dEi = v, *dEt = tx;
    if (ti) {
        memset(dEi, 0, np * sizeof(float));
        st = dlv_l2_normalize_backward(be, dEi, dv, Ei, (int64_t)n, P);
        if (!st) st = dlv_clip_tower_backward(m, be, &t->wv, ti, dEi);
    }
    if (!st && tt) {
        memset(dEt, 0, np * sizeof(float));
        st = dlv_l2_normalize_backward(be, dEt, dt, Et, (int64_t)n, P);
        if (!st) st = dlv_clip_tower_backward(m, be, &t->wv, tt, dEt);
    }
    if (st) goto done;
    const double gnorm = dlv_grad_norm(t->grads, t->total);
    if (!isfinite(lc) || !isfinite(gnorm)) {
        st = dlv_error(DLV_E_NUMERIC, "%s: training step %" PRId64 ": the loss (%g) or the "
                       "gradient norm (%g) is not finite; nothing was updated", dlv_model_dir(m),
                       t->step + 1, lc, gnorm);
        goto done;
    }
    double clip = 1.0;
    if (t->cfg.optim.grad_clip > 0 && gnorm > t->cfg.optim.grad_clip)
        clip = t->cfg.optim.grad_clip / (gnorm + 1e-6);
    const double lr = dlv_schedule_lr(&t->cfg.optim, t->step);
    dlv_optim_update(&t->cfg.optim, lr, t->step, t->params, t->grads, t->m1, t->m2, t->ranges,
                     t->n_ranges, clip);
    /* As OpenCLIP: the stored scale stays at or below log(100). */
    float *lsp = dls_grad ? t->params + (dls_grad - t->grads) : NULL;
    if (lsp && *lsp > (float)DLV_LOGIT_SCALE_MAX) *lsp = (float)DLV_LOGIT_SCALE_MAX;
    if (lsp) ls_val = *lsp;
    t->step++;
    dlv_train_stats o = {sizeof o, lc, lc, 0.0, gnorm, lr, exp((double)ls_val),
                         (uint64_t)t->step, tokens};
    fill_stats(stats, &o);
done:
    dlv_clip_tape_free(ti);
    dlv_clip_tape_free(tt);
    for (size_t k = 0; ids && k < n; k++) free(ids[k]);
    free(ids);
    free(lens);
    free(buf);
    free(pixels);
    return st;
}

/* ---- saving the trained model ------------------------------------------- */

static const char *const model_files[] = {
    "config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.json", "merges.txt", "model.safetensors", NULL};

dlv_status dlv_clip_trainer_save_model(const dlv_clip_trainer *t, const char *dir,
                                       const char *dtype)
{
    return dlv_save_model_dir(t->m, &t->wv, model_files, dir, dtype);
}
