/* The CLIPModel kind of the trainer (train/kind.h, docs/training.md): its own
 * weights by set (vision: vision_model.* and visual_projection; llm: the
 * text tower and text_projection; projector: both projections;
 * logit_scale), f32 copies in the flat buffers, matrices decaying. No
 * adapters and no next-token loss; checkpoints hold the training state
 * (the trained weights included). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/clip/clip.h"
#include "model/device_weights.h"
#include "model/model.h"
#include "train/kind.h"
#include "train/save_model.h"
#include "image/image_source.h"

typedef struct clip_state {
    const dlv_model *m;
    const dlv_clip_config *cfg;
    int train_text, train_vision;   /* a tower has a trained weight */
    size_t *woff;                   /* [table n]: offset of a trained weight, SIZE_MAX */
    size_t ls_off;                  /* SIZE_MAX: the logit scale is frozen */
    float ls_frozen;
    dlv_tensor *tv, *tg;
    dlv_clip_w w, gw;
    /* the step */
    size_t n;
    int32_t **ids;
    int64_t *lens;
    uint64_t tokens;
    dlv_buffer pixels;
    /* the chunk, per side ([1]: images): both tapes may be held at once */
    struct clip_chunk {
        dlv_clip_tape *tape;
        dlv_buffer ebuf;            /* E raw [count, P] */
        size_t count;
    } c[2];
} clip_state;

static const char *const checkpoint_files[] = {"train_state.safetensors", NULL};

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

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

static void chunk_free(struct clip_chunk *c)
{
    dlv_clip_tape_free(c->tape);
    c->tape = NULL;
    dlv_buffer_free(&c->ebuf);
}

static void end_step(void *state)
{
    clip_state *k = state;
    chunk_free(&k->c[0]);
    chunk_free(&k->c[1]);
    for (size_t i = 0; k->ids && i < k->n; i++) free(k->ids[i]);
    free(k->ids);
    free(k->lens);
    dlv_buffer_free(&k->pixels);
    k->ids = NULL;
    k->lens = NULL;
    k->n = 0;
    k->tokens = 0;
}

static void destroy(void *state)
{
    clip_state *k = state;
    if (!k) return;
    end_step(k);
    dlv_clip_w_free(&k->w);
    dlv_clip_w_free(&k->gw);
    free(k->woff);
    free(k->tv);
    free(k->tg);
    free(k);
}

static dlv_status create(dlv_trainer *t, const dlv_adapter *from, void **out)
{
    (void)from; /* a CLIPModel has no adapter */
    *out = NULL;
    const dlv_model *m = dlv_trainer_model(t);
    const dlv_train_config *cfg = dlv_trainer_config(t);
    const char *dir = dlv_model_dir(m);
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
    if (cfg->cache_features)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: cache_features does not apply to a CLIPModel",
                         dir);
    /* The CLIP towers keep every layer's activations; refusing says so
     * rather than accepting an option that would change nothing. */
    if (cfg->recompute)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: recompute is not implemented for a CLIPModel "
                         "(every tower layer's activations are kept)", dir);
    clip_state *k = calloc(1, sizeof *k);
    if (!k) return dlv_error_nomem("CLIP trainer", sizeof *k);
    *out = k;
    k->m = m;
    k->cfg = dlv_model_clip(m);
    k->ls_off = SIZE_MAX;
    const dlv_weights *W = dlv_model_weights(m);
    k->woff = malloc((W->n ? W->n : 1) * sizeof *k->woff);
    if (!k->woff) return dlv_error_nomem("CLIP trainer tables", W->n * sizeof *k->woff);
    for (size_t i = 0; i < W->n; i++) {
        const dlv_weight *w = &W->items[i];
        k->woff[i] = SIZE_MAX;
        if (!w->tensor || !in_sets(sets, w->canonical)) continue;
        k->woff[i] = dlv_trainer_reserve(t, (size_t)w->tensor->n_elements, 1,
                                         w->tensor->ndim >= 2);
        if (!strcmp(w->canonical, "logit_scale")) {
            k->ls_off = k->woff[i];
            dlv_trainer_set_logit_scale_slot(t, k->ls_off);
        } else if (starts(w->canonical, "text_")) {
            k->train_text = 1;
        } else {
            k->train_vision = 1;
        }
    }
    return DLV_OK;
}

static dlv_status init(void *state, dlv_trainer *t)
{
    clip_state *k = state;
    const dlv_weights *W = dlv_model_weights(k->m);
    const dlv_device_weights *dw = dlv_model_device_weights(k->m);
    k->tv = calloc(W->n ? W->n : 1, sizeof *k->tv);
    k->tg = calloc(W->n ? W->n : 1, sizeof *k->tg);
    dlv_status st = k->tv && k->tg ? DLV_OK : dlv_error_nomem("CLIP trainer tables", W->n * 96);
    for (size_t i = 0; i < W->n && !st; i++) {
        k->tv[i] = dw->t[i];
        const dlv_st_tensor *ten = W->items[i].tensor;
        if (ten && !strcmp(W->items[i].canonical, "logit_scale"))
            st = dlv_st_read_f32(ten, 0, 1, &k->ls_frozen);
        if (k->woff[i] == SIZE_MAX || st) continue;
        float *host = malloc((size_t)ten->n_elements * sizeof *host);
        if (!host) st = dlv_error_nomem(ten->name, (size_t)ten->n_elements * sizeof(float));
        if (!st) st = dlv_st_read_f32(ten, 0, ten->n_elements, host);
        if (!st)
            st = dlv_copy_to_device(dlv_trainer_backend(t), dlv_trainer_params_at(t, k->woff[i]),
                                    host, (size_t)ten->n_elements * sizeof(float));
        free(host);
        k->tv[i] = dlv_trainer_param_tensor(t, k->woff[i], dw->t[i].ndim, dw->t[i].shape);
        k->tg[i] = dlv_trainer_grad_tensor(t, k->woff[i], dw->t[i].ndim, dw->t[i].shape);
    }
    if (!st) st = dlv_clip_w_bind(k->cfg, W, k->tv, &k->w);
    if (!st) st = dlv_clip_w_bind(k->cfg, W, k->tg, &k->gw);
    return st;
}

static dlv_status prepare(void *state, dlv_trainer *t, const dlv_train_example *ex, size_t n)
{
    clip_state *k = state;
    const dlv_preproc_config *pc = dlv_model_preproc(k->m);
    if (!pc)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no preprocessor_config.json",
                         dlv_model_dir(k->m));
    const dlv_vision_config *v = &k->cfg->vision;
    const size_t px = (size_t)(v->num_channels * v->image_size * v->image_size);
    k->n = n;
    k->ids = calloc(n, sizeof *k->ids);
    k->lens = calloc(n, sizeof *k->lens);
    float *host = malloc(n * px * sizeof *host);
    dlv_status st = k->ids && k->lens && host ? DLV_OK : dlv_error_nomem("batch", n * px * 4);
    for (size_t i = 0; i < n && !st; i++) {
        st = dlv_image_to_pixels(pc, ex[i].image, NULL, host + i * px, px);
        if (!st) st = dlv_clip_tokenize(k->m, ex[i].caption, &k->ids[i], &k->lens[i]);
        if (st) st = dlv_error_prefix(st, "example %zu", i);
        else k->tokens += (uint64_t)k->lens[i];
    }
    if (!st) st = dlv_buffer_alloc(dlv_trainer_backend(t), n * px * sizeof(float), &k->pixels);
    if (!st) st = dlv_buffer_upload(&k->pixels, 0, host, n * px * sizeof(float));
    free(host);
    return st;
}

static dlv_status forward(void *state, dlv_trainer *t, int image_side, size_t first,
                          size_t count, int with_tape, float *out)
{
    clip_state *k = state;
    dlv_backend *be = dlv_trainer_backend(t);
    const int64_t P = k->cfg->projection_dim;
    struct clip_chunk *c = &k->c[image_side != 0];
    chunk_free(c);
    c->count = count;
    dlv_status st = dlv_buffer_alloc(be, count * (size_t)P * sizeof(float), &c->ebuf);
    float *E = dlv_buffer_ptr(&c->ebuf);
    const dlv_vision_config *v = &k->cfg->vision;
    const size_t px = (size_t)(v->num_channels * v->image_size * v->image_size);
    /* A frozen tower keeps only its head's tape (nothing else to
     * differentiate). */
    if (!st && image_side)
        st = dlv_clip_image_forward(be, k->cfg, &k->w,
                                    (const float *)dlv_buffer_ptr(&k->pixels) + first * px,
                                    (int64_t)count, !k->train_vision,
                                    with_tape ? &c->tape : NULL, E);
    if (!st && !image_side)
        st = dlv_clip_text_forward(be, k->cfg, &k->w, (const int32_t *const *)k->ids + first,
                                   k->lens + first, (int64_t)count, !k->train_text,
                                   with_tape ? &c->tape : NULL, E);
    if (!st) st = dlv_copy(be, out, E, count * (size_t)P * sizeof(float));
    if (!st) st = dlv_l2_normalize(be, out, out, (int64_t)count, P);
    if (!with_tape) chunk_free(c);
    return st;
}

static dlv_status backward(void *state, dlv_trainer *t, int image_side, const float *dEn)
{
    clip_state *k = state;
    struct clip_chunk *c = &k->c[image_side != 0];
    dlv_backend *be = dlv_trainer_backend(t);
    const int64_t P = k->cfg->projection_dim;
    dlv_buffer gb = {0};
    dlv_status st = dlv_buffer_alloc(be, c->count * (size_t)P * sizeof(float), &gb);
    float *dE = dlv_buffer_ptr(&gb);
    if (!st) st = dlv_buffer_zero(&gb, 0, gb.size);
    if (!st && dEn)
        st = dlv_l2_normalize_backward(be, dE, dEn, dlv_buffer_ptr(&c->ebuf), (int64_t)c->count,
                                       P);
    if (!st) st = dlv_clip_backward(be, &k->w, &k->gw, c->tape, dE);
    dlv_buffer_free(&gb);
    chunk_free(c);
    return st;
}

static void step_losses(void *state, double *extra, uint64_t *tokens)
{
    clip_state *k = state;
    *extra = 0.0;
    *tokens = k->tokens;
}

static dlv_status logit_scale(void *state, dlv_trainer *t, float *out)
{
    clip_state *k = state;
    if (k->ls_off == SIZE_MAX) {
        *out = k->ls_frozen;
        return DLV_OK;
    }
    return dlv_copy_to_host(dlv_trainer_backend(t), out, dlv_trainer_params_at(t, k->ls_off),
                            sizeof *out);
}

static const char *const model_files[] = {
    "config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.json", "merges.txt", "model.safetensors", NULL};

static dlv_status save_model(void *state, dlv_trainer *t, const char *dir, const char *dtype)
{
    (void)t;
    const clip_state *k = state;
    return dlv_save_model_dir(k->m, k->tv, k->woff, model_files, dir, dtype);
}

static const dlv_tensor *tensors(void *state) { return ((clip_state *)state)->tv; }
static const void *encode_view(void *state) { return &((clip_state *)state)->w; }

const dlv_train_kind dlv_train_kind_clip = {
    .name = "clip",
    .checkpoint_files = checkpoint_files,
    .model_files = model_files,
    .create = create,
    .init = init,
    .destroy = destroy,
    .prepare = prepare,
    .forward = forward,
    .backward = backward,
    .step_losses = step_losses,
    .end_step = end_step,
    .logit_scale = logit_scale,
    .export_adapter = NULL,
    .save_files = NULL,
    .save_model = save_model,
    .tensors = tensors,
    .encode_view = encode_view,
};
