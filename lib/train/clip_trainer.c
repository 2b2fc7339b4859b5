/* CLIPModel contrastive training (see clip_trainer.h). One step:
 *   E_i = image tower(pixels), E_t = text tower(caption ids)  (tapes saved)
 *   v = normalize(E_i), t = normalize(E_t)
 *   L = (CE(s v t^T, rows) + CE(columns)) / 2, s = exp(min(logit_scale, log 100))
 *   dL/dE through l2_normalize_backward, then each tower's backward
 *   clip, schedule, AdamW / SGD update, logit_scale clamped to log(100). */
#include "train/clip_trainer.h"

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

static dlv_status write_bytes(const char *to, const char *data, size_t len)
{
    dlv_atomic_file *f = NULL;
    dlv_status st = dlv_atomic_open(to, &f);
    if (!st) st = dlv_atomic_write(f, data, len);
    if (!st) st = dlv_atomic_commit(f);
    else if (f) dlv_atomic_abort(f);
    return st;
}

/* Copies from -> to; config.json gets torch_dtype when one is forced. */
static dlv_status copy_file(const char *from, const char *to, const char *torch_dtype)
{
    char *text = NULL;
    size_t len = 0;
    dlv_status st = dlv_read_file(from, (size_t)1 << 30, &text, &len);
    if (st) return st;
    if (!torch_dtype) {
        st = write_bytes(to, text, len);
        free(text);
        return st;
    }
    json_t *root = NULL;
    st = dlv_json_parse(text, len, from, &root);
    free(text);
    if (st) return st;
    char *out = NULL;
    if (json_object_set_new(root, "torch_dtype", json_string(torch_dtype)) ||
        !(out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER)))
        st = dlv_error(DLV_E_NOMEM, "%s: cannot build the JSON", to);
    json_decref(root);
    if (!st) st = write_bytes(to, out, strlen(out));
    free(out);
    return st;
}

static void *convert_from_f32(const float *src, size_t n, dlv_dtype dt)
{
    void *b = malloc(n * dlv_dtype_size(dt) + 1);
    if (!b) return NULL;
    if (dt == DLV_DTYPE_F32) memcpy(b, src, n * sizeof *src);
    else
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)b)[i] = dt == DLV_DTYPE_BF16 ? dlv_f32_to_bf16(src[i])
                                                      : dlv_f32_to_f16(src[i]);
    return b;
}

dlv_status dlv_clip_trainer_save_model(const dlv_clip_trainer *t, const char *dir,
                                       const char *dtype)
{
    const dlv_model *m = t->m;
    dlv_dtype force = DLV_DTYPE_F32;
    const char *torch_dtype = NULL;
    if (dtype && *dtype) {
        if (!strcmp(dtype, "f32")) { force = DLV_DTYPE_F32; torch_dtype = "float32"; }
        else if (!strcmp(dtype, "bf16")) { force = DLV_DTYPE_BF16; torch_dtype = "bfloat16"; }
        else if (!strcmp(dtype, "f16")) { force = DLV_DTYPE_F16; torch_dtype = "float16"; }
        else return dlv_error(DLV_E_INVALID_ARG, "save model: dtype '%s' (f32, bf16 or f16)",
                              dtype);
    }
    const dlv_st_set *ck = dlv_model_checkpoint(m);
    const size_t n = dlv_st_set_count(ck);
    dlv_st_write_entry *e = calloc(n ? n : 1, sizeof *e);
    void **owned = calloc(n ? n : 1, sizeof *owned);
    char *tmp = NULL;
    dlv_status st = DLV_OK;
    if (!e || !owned) st = dlv_error_nomem("tensor table", n * 64);
    for (size_t i = 0; i < n && !st; i++) {
        const dlv_st_tensor *ten = dlv_st_set_at(ck, i);
        const float *trained = NULL;
        for (size_t w = 0; w < t->W->n && !trained; w++)
            if (t->W->items[w].tensor == ten && t->value[w]) trained = t->value[w]->data;
        dlv_dtype out_dt = torch_dtype && dlv_dtype_is_float(ten->dtype) ? force : ten->dtype;
        e[i] = (dlv_st_write_entry){ten->name, out_dt, ten->ndim, ten->shape, ten->data};
        if (trained || out_dt != ten->dtype) {
            float *widened = NULL;
            const float *src = trained;
            if (!src) {
                widened = malloc((size_t)ten->n_elements * sizeof *widened + 1);
                if (!widened || (st = dlv_st_read_f32(ten, 0, ten->n_elements, widened))) {
                    if (!st) st = dlv_error_nomem(ten->name, (size_t)ten->n_elements * 4);
                    free(widened);
                    break;
                }
                src = widened;
            }
            owned[i] = convert_from_f32(src, (size_t)ten->n_elements, out_dt);
            free(widened);
            if (!owned[i]) st = dlv_error_nomem(ten->name, (size_t)ten->n_elements * 4);
            e[i].data = owned[i];
        }
    }
    if (!st) st = dlv_dir_save_begin(dir, model_files, &tmp);
    for (size_t f = 0; !st && model_files[f]; f++) {
        if (!strcmp(model_files[f], "model.safetensors")) continue;
        char *from = dlv_path_join(dlv_model_dir(m), model_files[f]);
        char *to = dlv_path_join(tmp, model_files[f]);
        if (!from || !to) st = dlv_error_nomem("a path", strlen(dir) + 64);
        else if (dlv_is_file(from))
            st = copy_file(from, to, !strcmp(model_files[f], "config.json") ? torch_dtype : NULL);
        free(from);
        free(to);
    }
    if (!st) {
        char *path = dlv_path_join(tmp, "model.safetensors");
        static const char *const mk[] = {"format"}, *const mv[] = {"pt"};
        if (!path) st = dlv_error_nomem("a path", strlen(tmp) + 32);
        else st = dlv_st_write(path, e, n, mk, mv, 1);
        free(path);
    }
    if (!st) st = dlv_dir_save_commit(tmp, dir, model_files);
    if (st && tmp) dlv_dir_save_abort(tmp, model_files);
    free(tmp);
    for (size_t i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(e);
    return st;
}
