/* The LLaVA model kind of the trainer (train/kind.h, docs/training.md).
 *
 * Trainable set, in the flat buffers in this order: image soft prompt,
 * text soft prompt, logit scale, LoRA (model/lora.h layout), then each
 * trained model weight (projector, language model, vision tower sets) as an
 * f32 copy. A side whose soft prompt is neither trained nor given uses its
 * instruction's ids (so training the embedding table moves it too).
 *
 * A chunk of one side: the sequences of model/llava/llava.h (image side:
 * features, recomputed with a tape when the tower or projector is trained;
 * with a long caption, its ids continue the sequence for the next-token
 * loss), the decoder with a tape, the embedding rows. The backward sends
 * dE and the next-token loss's gradient through the decoder, then the
 * rows back to the soft prompts, the embedding table and the features. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/device_weights.h"
#include "model/llava/llava.h"
#include "model/llava/llava_next.h"
#include "model/llava/llava_vision.h"
#include "model/model.h"
#include "model/qwen2vl/qwen2vl_seq.h"
#include "tokenizer/text_util.h"
#include "tokenizer/tokenizer.h"
#include "train/feature_cache.h"
#include "train/kind.h"
#include "train/save_model.h"
#include "image/image_source.h"

typedef struct step_data {
    size_t n;
    dlv_text_ids *caps;           /* [n]: each caption's text-side ids */
    dlv_ids *longs;               /* [n]; longs[k].n == 0: no next-token loss for k */
    int64_t ntp_total;            /* predictions in the batch */
    double ntp_sum;
    uint64_t tokens;
    dlv_buffer feats;             /* the step's features (no tape): example i's fcnt[i]
                                   * rows start at row frow[i] ([n, F, H] but for
                                   * LLaVA-NeXT, whose counts vary) */
    int64_t *frow, *fcnt;
    int64_t (*grid)[3];           /* Qwen2-VL: each image's patch grid (M-RoPE) */
    dlv_llava_next_tiles tiles;   /* LLaVA-NeXT with its tower or projector trained:
                                   * each image's tiles, for the taped pass */
    dlv_buffer pixels;            /* [n, C, S, S] when the tower is trained */
    dlv_buffer selected;          /* [n, F, D] the frozen tower's rows when only the
                                   * projector trains: it does not run again */
} step_data;

/* The tape of the current chunk (forward with_tape -> backward). */
typedef struct chunk_tape {
    int image_side;
    size_t first, count;
    dlv_seq_part (*parts)[DLV_LLAVA_SEQ_PARTS];
    dlv_seq *seqs;
    dlv_seq_batch batch;
    dlv_decoder_tape *dec;
    dlv_llava_vision_tape *vis;
    dlv_buffer vbuf;              /* vision features + their gradient [count, F, H] each */
    dlv_buffer hbuf;              /* hidden [count len, H], E raw [count, H] */
    dlv_buffer rope;              /* Qwen2-VL: the batch's M-RoPE tables */
    float *hidden, *feats, *dfeats, *E;
    int64_t *at;                  /* [count] the embedding row of each sequence */
    /* LLaVA-NeXT, tower or projector trained: per example, its tiles' tape
     * and a buffer of [pixels | tile features | packed | dpacked | id 0]. */
    dlv_llava_vision_tape **ntape;
    dlv_buffer *nbuf;
} chunk_tape;

typedef struct llava_state {
    const dlv_model *m;
    dlv_llava_dims d;
    dlv_prompts prompts;
    int64_t H;
    int64_t n_img, n_txt;         /* soft prompt rows */
    int img_ids, txt_ids;         /* side uses its instruction ids */
    int train_soft, train_ls, train_lora, vision_grad;
    int anyres;                   /* LLaVA-NeXT: a feature count per image */
    int qwen2vl;                  /* Qwen2-VL / Qwen2.5-VL: likewise, and M-RoPE */
    size_t off_img, off_txt, off_ls, off_lora;
    int has_lora;
    dlv_lora shape;               /* offsets and scale (its params are unused) */
    const float *from_img, *from_txt;   /* initial values (the adapter's), host */
    float from_ls;
    const float *from_lora;
    int64_t vision_from;          /* the lowest trained stage of the tower */
    dlv_tensor *tv, *tg;          /* [table n]: values (model's or trained), gradients */
    size_t *woff;                 /* [table n]: offset of a trained weight, SIZE_MAX */
    dlv_llava_w w, gw;
    dlv_lora_pair *pairs;
    dlv_lora_pair_grad *gpairs;
    dlv_decoder_lora dl;
    dlv_llava_params params;      /* the encode view */
    dlv_feature_cache *cache;
    step_data s;
    /* The chunk with its tape, per side ([1]: images): the core may hold
     * both sides' tapes at once (one pass when the batch is one chunk). */
    chunk_tape c[2];
} llava_state;

static const char *const checkpoint_files[] = {
    "adapter_config.json", "adapter_model.safetensors", "soft_prompts.safetensors",
    "prompts.json", "train_state.safetensors", NULL};

/* Whether weight item w is in a trained set. */
static int weight_trained(unsigned sets, const dlv_weight *w)
{
    if (!w->tensor) return 0;
    switch (w->part) {
    case DLV_PART_VISION: return (sets & DLV_TRAIN_VISION) != 0;
    case DLV_PART_PROJECTOR:
    case DLV_PART_TOP: return (sets & DLV_TRAIN_PROJECTOR) != 0;
    case DLV_PART_TEXT:
    case DLV_PART_LM_HEAD: return (sets & DLV_TRAIN_LLM) != 0;
    default: return 0;
    }
}

static void chunk_free(chunk_tape *c)
{
    for (size_t i = 0; i < c->count && c->ntape; i++) dlv_llava_vision_tape_free(c->ntape[i]);
    for (size_t i = 0; i < c->count && c->nbuf; i++) dlv_buffer_free(&c->nbuf[i]);
    free(c->ntape);
    free(c->nbuf);
    dlv_decoder_tape_free(c->dec);
    dlv_llava_vision_tape_free(c->vis);
    dlv_seq_batch_free(&c->batch);
    dlv_buffer_free(&c->vbuf);
    dlv_buffer_free(&c->hbuf);
    dlv_buffer_free(&c->rope);
    free(c->parts);
    free(c->seqs);
    free(c->at);
    memset(c, 0, sizeof *c);
}

static void end_step(void *state)
{
    llava_state *k = state;
    chunk_free(&k->c[0]);
    chunk_free(&k->c[1]);
    for (size_t i = 0; i < k->s.n; i++) {
        if (k->s.caps) dlv_text_ids_free(&k->s.caps[i]);
        if (k->s.longs) dlv_ids_free(&k->s.longs[i]);
    }
    free(k->s.caps);
    free(k->s.longs);
    free(k->s.frow);
    free(k->s.fcnt);
    free(k->s.grid);
    dlv_llava_next_tiles_free(&k->s.tiles);
    dlv_buffer_free(&k->s.feats);
    dlv_buffer_free(&k->s.pixels);
    dlv_buffer_free(&k->s.selected);
    memset(&k->s, 0, sizeof k->s);
}

static void destroy(void *state)
{
    llava_state *k = state;
    if (!k) return;
    end_step(k);
    dlv_prompts_free(&k->prompts);
    if (k->has_lora) dlv_lora_free(&k->shape);
    dlv_llava_w_free(&k->w);
    dlv_llava_w_free(&k->gw);
    free(k->tv);
    free(k->tg);
    free(k->woff);
    free(k->pairs);
    free(k->gpairs);
    dlv_feature_cache_free(k->cache);
    free(k);
}

/* ---- set-up ----------------------------------------------------------------- */

static dlv_status create(dlv_trainer *t, const dlv_adapter *from, void **out)
{
    *out = NULL;
    const dlv_model *m = dlv_trainer_model(t);
    const dlv_train_config *cfg = dlv_trainer_config(t);
    if (!from) return dlv_error(DLV_E_INVALID_ARG, "%s: training starts from an adapter",
                                dlv_model_dir(m));
    llava_state *k = calloc(1, sizeof *k);
    if (!k) return dlv_error_nomem("trainer", sizeof *k);
    *out = k;
    k->m = m;
    k->anyres = dlv_model_config(m)->anyres;
    k->qwen2vl = dlv_model_config(m)->qwen2vl;
    dlv_llava_dims_of(dlv_model_config(m), &k->d);
    k->H = k->d.text.hidden;
    dlv_status st = dlv_prompts_copy(&from->prompts, &k->prompts);
    if (st) return st;
    const unsigned sets = cfg->sets;
    k->train_soft = (sets & DLV_TRAIN_SOFT) != 0;
    k->train_ls = (sets & DLV_TRAIN_LOGIT_SCALE) != 0;
    k->vision_grad = (sets & (DLV_TRAIN_PROJECTOR | DLV_TRAIN_VISION)) != 0;
    if (k->qwen2vl && k->vision_grad)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: training the vision tower or the merger of a "
                         "Qwen2-VL model is not supported yet (train soft prompts, LoRA, the "
                         "logit scale or the language model)", dlv_model_dir(m));
    /* Soft prompts: the adapter's, or the instruction's embeddings. */
    k->n_img = from->image_prompt ? from->n_image_prompt : (int64_t)k->prompts.image.instruction.n;
    k->n_txt = from->text_prompt ? from->n_text_prompt : (int64_t)k->prompts.text.instruction.n;
    k->img_ids = !from->image_prompt && !k->train_soft;
    k->txt_ids = !from->text_prompt && !k->train_soft;
    k->from_img = from->image_prompt;
    k->from_txt = from->text_prompt;
    k->from_ls = from->logit_scale;
    k->off_img = dlv_trainer_reserve(t, k->img_ids ? 0 : (size_t)(k->n_img * k->H),
                                     k->train_soft, 0);
    k->off_txt = dlv_trainer_reserve(t, k->txt_ids ? 0 : (size_t)(k->n_txt * k->H),
                                     k->train_soft, 0);
    k->off_ls = dlv_trainer_reserve(t, 1, k->train_ls, 0);
    if (k->train_ls) dlv_trainer_set_logit_scale_slot(t, k->off_ls);
    /* LoRA: the adapter's, or a new one (trained when the set is on). */
    k->train_lora = (sets & DLV_TRAIN_LORA) != 0;
    const dlv_text_config *tc = &dlv_model_config(m)->text;
    if (from->has_lora) {
        st = dlv_lora_create(tc, from->lora.rank, from->lora.alpha, from->lora.use_rslora,
                             from->lora.targets, &k->shape);
        k->from_lora = from->lora.params;
    } else if (k->train_lora) {
        st = dlv_lora_create(tc, cfg->lora_rank, cfg->lora_alpha, 0, cfg->lora_targets,
                             &k->shape);
    }
    if (st) return st;
    k->has_lora = from->has_lora || k->train_lora;
    if (k->has_lora) {
        k->off_lora = dlv_trainer_reserve(t, k->shape.n_params, k->train_lora, 1);
        /* Only the layout is needed: the values live in the flat buffer. */
        free(k->shape.params);
        k->shape.params = NULL;
    }
    /* Trained model weights, as f32 copies. Matrices decay; vectors (norms,
     * biases, class embedding) do not. */
    const dlv_weights *W = dlv_model_weights(m);
    k->woff = malloc((W->n ? W->n : 1) * sizeof *k->woff);
    if (!k->woff) return dlv_error_nomem("trainer tables", W->n * sizeof *k->woff);
    for (size_t i = 0; i < W->n; i++) {
        k->woff[i] = SIZE_MAX;
        if (weight_trained(sets, &W->items[i]))
            k->woff[i] = dlv_trainer_reserve(t, (size_t)W->items[i].tensor->n_elements, 1,
                                             W->items[i].tensor->ndim >= 2);
    }
    /* The tower's lowest trained stage: the backward stops there. */
    k->vision_from = k->d.vision_run;
    if (sets & DLV_TRAIN_VISION) k->vision_from = -1;
    return DLV_OK;
}

/* The instruction's embeddings (a side's initial soft prompt). */
static dlv_status instruction_rows(llava_state *k, dlv_trainer *t, const dlv_prompt_piece *p,
                                   float *dst)
{
    dlv_backend *be = dlv_trainer_backend(t);
    if (p->n == 0) return DLV_OK;
    dlv_buffer ids = {0};
    dlv_status st = dlv_buffer_alloc(be, p->n * sizeof(int32_t), &ids);
    if (!st) st = dlv_buffer_upload(&ids, 0, p->ids, p->n * sizeof(int32_t));
    const dlv_tensor *table = &dlv_model_llava_w(k->m)->embed_tokens;
    if (!st)
        st = dlv_embedding(be, dst, dlv_tensor_data(table), table->dtype, dlv_buffer_ptr(&ids),
                           (int64_t)p->n, k->d.vocab, k->H);
    dlv_buffer_free(&ids);
    return st;
}

/* Uploads host floats to params at off. */
static dlv_status put(dlv_trainer *t, size_t off, const float *src, size_t n)
{
    if (n == 0) return DLV_OK;
    return dlv_copy_to_device(dlv_trainer_backend(t), dlv_trainer_params_at(t, off), src,
                              n * sizeof(float));
}

static dlv_status init(void *state, dlv_trainer *t)
{
    llava_state *k = state;
    const dlv_model *m = k->m;
    dlv_status st = DLV_OK;
    if (!k->img_ids)
        st = k->from_img ? put(t, k->off_img, k->from_img, (size_t)(k->n_img * k->H))
                         : instruction_rows(k, t, &k->prompts.image.instruction,
                                            dlv_trainer_params_at(t, k->off_img));
    if (!st && !k->txt_ids)
        st = k->from_txt ? put(t, k->off_txt, k->from_txt, (size_t)(k->n_txt * k->H))
                         : instruction_rows(k, t, &k->prompts.text.instruction,
                                            dlv_trainer_params_at(t, k->off_txt));
    if (!st) st = put(t, k->off_ls, &k->from_ls, 1);
    if (!st && k->has_lora) {
        if (k->from_lora) {
            st = put(t, k->off_lora, k->from_lora, k->shape.n_params);
        } else {
            /* PEFT's default init: A ~ kaiming_uniform(a = sqrt(5)), which
             * is U(-1/sqrt(in), 1/sqrt(in)); B = 0 (already). */
            float *init_v = calloc(k->shape.n_params ? k->shape.n_params : 1, sizeof *init_v);
            if (!init_v) st = dlv_error_nomem("LoRA init", k->shape.n_params * sizeof(float));
            const dlv_text_config *tc = &dlv_model_config(m)->text;
            for (int64_t l = 0; !st && l < k->shape.n_layers; l++)
                for (int mod = 0; mod < DLV_LORA_N_MODULES; mod++) {
                    size_t aoff = k->shape.off_a[(size_t)l * DLV_LORA_N_MODULES + (size_t)mod];
                    if (aoff == DLV_LORA_ABSENT) continue;
                    int64_t o, in;
                    dlv_lora_module_dims(tc, (dlv_lora_module)mod, &o, &in);
                    const float bound = (float)(1.0 / sqrt((double)in));
                    for (int64_t i = 0; i < k->shape.rank * in; i++)
                        init_v[aoff + (size_t)i] = bound * dlv_trainer_rand_sym(t);
                }
            if (!st) st = put(t, k->off_lora, init_v, k->shape.n_params);
            free(init_v);
        }
    }
    /* Trained weights: widened from the checkpoint. */
    const dlv_weights *W = dlv_model_weights(m);
    const dlv_device_weights *dw = dlv_model_device_weights(m);
    k->tv = calloc(W->n ? W->n : 1, sizeof *k->tv);
    k->tg = calloc(W->n ? W->n : 1, sizeof *k->tg);
    if (!st && (!k->tv || !k->tg)) st = dlv_error_nomem("trainer tables", W->n * 96);
    for (size_t i = 0; i < W->n && !st; i++) {
        k->tv[i] = dw->t[i];
        if (k->woff[i] == SIZE_MAX) continue;
        const dlv_st_tensor *ten = W->items[i].tensor;
        float *host = malloc((size_t)ten->n_elements * sizeof *host);
        if (!host) st = dlv_error_nomem(ten->name, (size_t)ten->n_elements * sizeof(float));
        if (!st) st = dlv_st_read_f32(ten, 0, ten->n_elements, host);
        if (!st) st = put(t, k->woff[i], host, (size_t)ten->n_elements);
        free(host);
        k->tv[i] = dlv_trainer_param_tensor(t, k->woff[i], dw->t[i].ndim, dw->t[i].shape);
        k->tg[i] = dlv_trainer_grad_tensor(t, k->woff[i], dw->t[i].ndim, dw->t[i].shape);
    }
    const dlv_llava_config *cfg = dlv_model_config(m);
    if (!st) st = dlv_llava_w_bind(cfg, W, k->tv, &k->w);
    if (!st) st = dlv_llava_w_bind(cfg, W, k->tg, &k->gw);
    if (!st && k->has_lora) {
        const size_t np = (size_t)k->shape.n_layers * DLV_LORA_N_MODULES;
        k->pairs = calloc(np, sizeof *k->pairs);
        k->gpairs = calloc(np, sizeof *k->gpairs);
        if (!k->pairs || !k->gpairs) st = dlv_error_nomem("LoRA pairs", np * 64);
        if (!st) {
            dlv_lora_pairs(&k->shape, dlv_trainer_params_at(t, k->off_lora), k->pairs);
            dlv_lora_pair_grads(&k->shape, dlv_trainer_grads_at(t, k->off_lora), k->gpairs);
            k->dl = (dlv_decoder_lora){k->pairs, k->shape.rank};
        }
    }
    k->params = (dlv_llava_params){
        .w = &k->w,
        .lora = k->has_lora ? &k->dl : NULL,
        .image_prompt = k->img_ids ? NULL : dlv_trainer_params_at(t, k->off_img),
        .n_image_prompt = k->n_img,
        .text_prompt = k->txt_ids ? NULL : dlv_trainer_params_at(t, k->off_txt),
        .n_text_prompt = k->n_txt,
        .prompts = &k->prompts,
    };
    return st;
}

/* ---- the step --------------------------------------------------------------- */

static dlv_status tokenize(const dlv_tokenizer *tok, const char *text, int32_t eos,
                           const char *what, dlv_ids *out)
{
    dlv_status st = dlv_tokenizer_encode(tok, text, strlen(text), 0, out);
    if (!st && eos >= 0) st = dlv_ids_push(out, eos);
    return st ? dlv_error_prefix(st, "%s", what) : DLV_OK;
}

/* The batch's features [n, F, H] on the device: with cache_features and a
 * frozen tower + projector, images seen before come from the (host) cache. */
/* The projector trains but no stage of the tower does. */
static int projector_only(const llava_state *k)
{
    /* LLaVA-NeXT keeps its tiles instead and runs the projector on the
     * tower's output again (dlv_llava_vision_forward from vision_run). */
    return !k->anyres && k->vision_grad && k->vision_from >= k->d.vision_run;
}

/* LLaVA-NeXT (packed tiles) and Qwen2-VL (its tower's merged rows): each
 * image's features, counts and rows, and Qwen2-VL's grids. The step takes
 * the buffer and the row tables over. */
static dlv_status features_varied(llava_state *k, dlv_trainer *t, const dlv_train_example *ex,
                                  size_t n)
{
    const dlv_image **imgs = malloc(n * sizeof *imgs);
    if (!imgs) return dlv_error_nomem("images", n * sizeof *imgs);
    for (size_t i = 0; i < n; i++) imgs[i] = ex[i].image;
    const dlv_image *const *list = (const dlv_image *const *)imgs;
    dlv_backend *be = dlv_trainer_backend(t);
    dlv_llava_feats f;
    dlv_status st;
    if (k->qwen2vl) { /* the tower is frozen: no tape */
        st = dlv_qwen2vl_image_features(k->m, be, &k->w, list, n, &f);
    } else {
        st = dlv_llava_next_tile(k->m, list, n, &k->s.tiles);
        if (!st) st = dlv_llava_next_features(k->m, be, &k->params, &k->s.tiles, &f);
        /* The tiles stay for the taped pass only when the tower or
         * projector trains. */
        if (st || !k->vision_grad) dlv_llava_next_tiles_free(&k->s.tiles);
    }
    if (!st) {
        k->s.feats = f.buf;
        k->s.frow = f.offset;
        k->s.fcnt = f.count;
        k->s.grid = f.grid;
    }
    free(imgs);
    return st;
}

static dlv_status features(llava_state *k, dlv_trainer *t, const dlv_train_example *ex,
                           size_t n, const float *host_px, size_t px)
{
    dlv_backend *be = dlv_trainer_backend(t);
    const size_t per = (size_t)(k->d.n_features * k->H);
    k->s.frow = malloc(n * sizeof *k->s.frow);
    k->s.fcnt = malloc(n * sizeof *k->s.fcnt);
    if (!k->s.frow || !k->s.fcnt) return dlv_error_nomem("feature rows", n * 16);
    for (size_t i = 0; i < n; i++) {
        k->s.frow[i] = (int64_t)i * k->d.n_features;
        k->s.fcnt[i] = k->d.n_features;
    }
    dlv_status st = dlv_buffer_alloc(be, n * per * sizeof(float), &k->s.feats);
    float *feats = dlv_buffer_ptr(&k->s.feats);
    const int cache = !k->vision_grad && dlv_trainer_config(t)->cache_features;
    if (!st && cache && !k->cache) st = dlv_feature_cache_new(per, &k->cache);
    float *host = st ? NULL : malloc(per * sizeof *host);
    if (!st && !host) st = dlv_error_nomem("features", per * sizeof(float));
    dlv_buffer one = {0};
    if (!st) st = dlv_buffer_alloc(be, px * sizeof(float), &one);
    /* A frozen tower under a trained projector: its selected rows are kept,
     * so the taped forward runs the projector alone (projector_only). */
    const size_t sel_per = (size_t)(k->d.n_features * k->d.vision.enc.hidden);
    float *sel = NULL;
    if (!st && projector_only(k)) {
        st = dlv_buffer_alloc(be, n * sel_per * sizeof(float), &k->s.selected);
        sel = dlv_buffer_ptr(&k->s.selected);
    }
    for (size_t i = 0; i < n && !st; i++) {
        const float *hit = cache ? dlv_feature_cache_get(k->cache, ex[i].image) : NULL;
        if (hit) {
            st = dlv_copy_to_device(be, feats + i * per, hit, per * sizeof(float));
            continue;
        }
        /* Images run one at a time: every GEMM of the tower is per image
         * anyway, and the scratch stays one image's. */
        st = dlv_buffer_upload(&one, 0, host_px + i * px, px * sizeof(float));
        const dlv_llava_vision_trace trace = {NULL, sel ? sel + i * sel_per : NULL};
        if (!st)
            st = dlv_llava_vision_forward(be, &k->d, &k->w, dlv_buffer_ptr(&one), 1, 0, 0, NULL,
                                          feats + i * per, sel ? &trace : NULL);
        if (!st && cache) {
            st = dlv_buffer_download(host, &k->s.feats, i * per * sizeof(float),
                                     per * sizeof(float));
            if (!st) st = dlv_feature_cache_put(k->cache, ex[i].image, host);
        }
    }
    dlv_buffer_free(&one);
    free(host);
    return st;
}

static dlv_status prepare(void *state, dlv_trainer *t, const dlv_train_example *ex, size_t n)
{
    llava_state *k = state;
    const dlv_model *m = k->m;
    const dlv_train_config *cfg = dlv_trainer_config(t);
    const dlv_text_config *tc = &dlv_model_config(m)->text;
    const dlv_tokenizer *tok = dlv_model_get_tokenizer(m);
    if (!tok)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: has no tokenizer to tokenize captions with",
                         dlv_model_dir(m));
    const int ntp = cfg->ntp_weight != 0.0;
    if (ntp && tc->eos_token_id < 0)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: the next-token loss needs text_config."
                         "eos_token_id", dlv_model_dir(m));
    const dlv_preproc_config *pc = dlv_model_preproc(m);
    if (!pc)
        return dlv_error(DLV_E_UNSUPPORTED, "%s has no preprocessor_config.json",
                         dlv_model_dir(m));
    const int64_t max_pos = tc->max_position_embeddings;
    /* LLaVA-NeXT's and Qwen2-VL's images each have their own count: the
     * features first, whose counts give each image prompt's length. */
    const int varied = k->anyres || k->qwen2vl;
    int64_t img_pos = 0;
    dlv_status fit = varied ? DLV_OK : dlv_llava_image_fit(m, &k->params, &img_pos);
    if (fit) return fit;
    k->s.n = n;
    k->s.caps = calloc(n, sizeof *k->s.caps);
    k->s.longs = calloc(n, sizeof *k->s.longs);
    const size_t px = varied ? 0 : (size_t)(k->d.vision.channels * k->d.vision.image_size *
                                            k->d.vision.image_size);
    float *host_px = varied ? NULL : malloc(n * px * sizeof *host_px);
    dlv_status st = k->s.caps && k->s.longs && (varied || host_px)
                        ? DLV_OK
                        : dlv_error_nomem("batch", n * px * 4);
    if (!st && varied) st = features_varied(k, t, ex, n);
    for (size_t i = 0; i < n && !st; i++) {
        int64_t cut = 0;
        if (varied) {
            img_pos = dlv_llava_image_positions(&k->params, k->s.fcnt[i]);
            if (img_pos > max_pos) {
                st = dlv_error(DLV_E_INVALID_ARG, "example %zu: the image prompt has %lld "
                               "positions (%lld image features and the prompt), more than the "
                               "model's max_position_embeddings (%lld)", i, (long long)img_pos,
                               (long long)k->s.fcnt[i], (long long)max_pos);
                break;
            }
        }
        st = dlv_prompts_text_ids(&k->prompts, tok, ex[i].caption, strlen(ex[i].caption),
                                  &k->s.caps[i]);
        if (!st) st = dlv_llava_text_fit(&k->params, &k->s.caps[i], max_pos, cfg->truncate, &cut);
        if (st) st = dlv_error_prefix(st, "caption");
        if (!st && ntp && ex[i].long_caption) {
            st = tokenize(tok, ex[i].long_caption, (int32_t)tc->eos_token_id, "long caption",
                          &k->s.longs[i]);
            /* The next-token sequence is the image prompt, then the long
             * caption's ids but its EOS (which is only a target). */
            dlv_ids *lc = &k->s.longs[i];
            const int64_t n_seq = img_pos + (int64_t)lc->n - 1;
            if (!st && n_seq > max_pos && cfg->truncate && img_pos + 1 <= max_pos) {
                /* Keep the first ids that fit, then the EOS target. */
                const size_t keep = (size_t)(max_pos - img_pos + 1);
                lc->v[keep - 1] = lc->v[lc->n - 1];
                lc->n = keep;
            } else if (!st && n_seq > max_pos)
                st = dlv_error(DLV_E_INVALID_ARG, "long caption: the next-token sequence "
                               "(image prompt and long caption) has %lld positions, more than "
                               "the model's max_position_embeddings (%lld): shorten it by %lld "
                               "tokens, or truncate (--truncate, "
                               "dlv_session_options_set_truncate)", (long long)n_seq,
                               (long long)max_pos, (long long)(n_seq - max_pos));
            if (!st) k->s.ntp_total += (int64_t)lc->n;
        }
        if (!st && !varied) st = dlv_image_to_pixels(pc, ex[i].image, NULL, host_px + i * px, px);
        if (st) st = dlv_error_prefix(st, "example %zu", i);
    }
    if (!st && !varied) st = features(k, t, ex, n, host_px, px);
    /* The tower is differentiated: its pixels stay on the device. */
    if (!st && k->vision_grad && !projector_only(k)) {
        st = dlv_buffer_alloc(dlv_trainer_backend(t), n * px * sizeof(float), &k->s.pixels);
        if (!st) st = dlv_buffer_upload(&k->s.pixels, 0, host_px, n * px * sizeof(float));
    }
    free(host_px);
    return st;
}

/* LLaVA-NeXT example i of chunk c's buffer: its tiles' pixels, their
 * features, the packed rows and their gradient, then an int32 0 (the
 * newline's row). */
typedef struct next_rows {
    float *pixels, *tiles, *packed, *dpacked;
    int32_t *zero_id;
} next_rows;

static next_rows next_rows_of(const llava_state *k, const chunk_tape *c, size_t i)
{
    const dlv_llava_next_layout *l = &k->s.tiles.layout[c->first + i];
    const size_t px = (size_t)(k->d.vision.channels * k->d.vision.image_size *
                               k->d.vision.image_size);
    next_rows r;
    r.pixels = dlv_buffer_ptr(&c->nbuf[i]);
    r.tiles = r.pixels + (size_t)l->n_tiles * px;
    r.packed = r.tiles + (size_t)(l->n_tiles * k->d.n_features * k->H);
    r.dpacked = r.packed + (size_t)(l->n_features * k->H);
    r.zero_id = (int32_t *)(void *)(r.dpacked + (size_t)(l->n_features * k->H));
    return r;
}

/* LLaVA-NeXT with its tower or projector trained: each example's tiles
 * again, with a tape, packed into rows whose gradient the decoder's
 * backward fills. */
static dlv_status next_taped(llava_state *k, dlv_trainer *t, chunk_tape *c)
{
    dlv_backend *be = dlv_trainer_backend(t);
    const size_t px = (size_t)(k->d.vision.channels * k->d.vision.image_size *
                               k->d.vision.image_size);
    c->ntape = calloc(c->count, sizeof *c->ntape);
    c->nbuf = calloc(c->count, sizeof *c->nbuf);
    if (!c->ntape || !c->nbuf) return dlv_error_nomem("tile tapes", c->count * 64);
    dlv_status st = DLV_OK;
    for (size_t i = 0; i < c->count && !st; i++) {
        const dlv_llava_next_layout *l = &k->s.tiles.layout[c->first + i];
        const size_t nt = (size_t)l->n_tiles, rows = (size_t)l->n_features;
        const size_t tile_floats = nt * px + nt * (size_t)(k->d.n_features * k->H);
        const size_t floats = tile_floats + 2 * rows * (size_t)k->H + 1;
        st = dlv_buffer_alloc(be, floats * sizeof(float), &c->nbuf[i]);
        if (st) break;
        const next_rows r = next_rows_of(k, c, i);
        st = dlv_buffer_upload(&c->nbuf[i], 0, k->s.tiles.pixels[c->first + i],
                               nt * px * sizeof(float));
        /* dpacked and the id 0 after it start at zero. */
        if (!st)
            st = dlv_buffer_zero(&c->nbuf[i], (tile_floats + rows * (size_t)k->H) * sizeof(float),
                                 (rows * (size_t)k->H + 1) * sizeof(float));
        if (!st)
            st = dlv_llava_vision_forward(be, &k->d, &k->w, r.pixels, (int64_t)nt, k->vision_from,
                                          dlv_trainer_config(t)->recompute, &c->ntape[i], r.tiles,
                                          NULL);
        if (!st)
            st = dlv_llava_next_pack(be, l, k->H, r.tiles, &k->w.image_newline, r.zero_id,
                                     r.packed);
        if (st) st = dlv_error_prefix(st, "example %zu", c->first + i);
    }
    return st;
}

/* Their backward: each example's packed rows' gradient back to its tiles
 * (and image_newline), then through the projector and the tower. */
static dlv_status next_backward(llava_state *k, dlv_trainer *t, chunk_tape *c)
{
    dlv_backend *be = dlv_trainer_backend(t);
    float *dnewline = dlv_tensor_present(&k->gw.image_newline)
                          ? dlv_tensor_f32(&k->gw.image_newline) : NULL;
    dlv_status st = DLV_OK;
    for (size_t i = 0; i < c->count && !st; i++) {
        const dlv_llava_next_layout *l = &k->s.tiles.layout[c->first + i];
        const size_t n = (size_t)(l->n_tiles * k->d.n_features * k->H);
        dlv_buffer db = {0};
        st = dlv_buffer_alloc(be, n * sizeof(float), &db);
        if (!st) st = dlv_buffer_zero(&db, 0, n * sizeof(float));
        const next_rows r = next_rows_of(k, c, i);
        if (!st)
            st = dlv_llava_next_pack_backward(be, l, k->H, r.dpacked, dlv_buffer_ptr(&db),
                                              dnewline);
        if (!st)
            st = dlv_llava_vision_backward(be, &k->w, &k->gw, c->ntape[i], dlv_buffer_ptr(&db));
        dlv_buffer_free(&db);
        if (st) st = dlv_error_prefix(st, "example %zu", c->first + i);
    }
    return st;
}

/* The chunk's sequences, features, batch and decoder forward; the
 * embedding rows' positions. */
static dlv_status chunk_forward(llava_state *k, dlv_trainer *t, int image_side, size_t first,
                                size_t count, int with_tape)
{
    chunk_tape *c = &k->c[image_side != 0];
    chunk_free(c);
    dlv_backend *be = dlv_trainer_backend(t);
    const int64_t H = k->H, F = k->d.n_features;
    const size_t per = (size_t)(F * H);
    *c = (chunk_tape){.image_side = image_side, .first = first, .count = count};
    c->parts = calloc(count, sizeof *c->parts);
    c->seqs = calloc(count, sizeof *c->seqs);
    c->at = calloc(count, sizeof *c->at);
    if (!c->parts || !c->seqs || !c->at) return dlv_error_nomem("chunk", count * 256);
    /* Images whose tower is trained: the features again, with a tape. */
    const int vis = image_side && with_tape && k->vision_grad;
    dlv_status st = DLV_OK;
    if (vis && k->anyres) st = next_taped(k, t, c);
    if (vis && !k->anyres) {
        st = dlv_buffer_alloc(be, 2 * count * per * sizeof(float), &c->vbuf);
        c->feats = dlv_buffer_ptr(&c->vbuf);
        c->dfeats = c->feats + count * per;
        const size_t px = (size_t)(k->d.vision.channels * k->d.vision.image_size *
                                   k->d.vision.image_size);
        if (!st) st = dlv_zero(be, c->dfeats, count * per * sizeof(float));
        const size_t sel_per = (size_t)(k->d.n_features * k->d.vision.enc.hidden);
        if (!st && projector_only(k))
            st = dlv_llava_projector_forward(be, &k->d, &k->w,
                                             (const float *)dlv_buffer_ptr(&k->s.selected) +
                                                 first * sel_per,
                                             (int64_t)count, &c->vis, c->feats);
        else if (!st)
            st = dlv_llava_vision_forward(be, &k->d, &k->w,
                                          (const float *)dlv_buffer_ptr(&k->s.pixels) + first * px,
                                          (int64_t)count, k->vision_from,
                                          dlv_trainer_config(t)->recompute, &c->vis, c->feats,
                                          NULL);
    }
    const int32_t bos = k->prompts.bos_id;
    float *soft_grad = with_tape && k->train_soft
                           ? dlv_trainer_grads_at(t, image_side ? k->off_img : k->off_txt)
                           : NULL;
    const float *feats = dlv_buffer_ptr(&k->s.feats);
    for (size_t i = 0; i < count && !st; i++) {
        const size_t e = first + i;
        dlv_seq_part mid = {0}, cont = {0};
        if (image_side) {
            if (vis && k->anyres) {
                const next_rows r = next_rows_of(k, c, i);
                mid = (dlv_seq_part){NULL, r.packed, k->s.fcnt[e], r.dpacked, NULL};
            } else {
                mid = vis ? (dlv_seq_part){NULL, c->feats + i * per, F, c->dfeats + i * per, NULL}
                          : (dlv_seq_part){NULL, feats + k->s.frow[e] * H, k->s.fcnt[e], NULL,
                                           k->s.grid ? k->s.grid[e] : NULL};
            }
            /* The long caption's ids but its final EOS are input; the EOS
             * is only a target. */
            if (with_tape && k->s.longs[e].n)
                cont = (dlv_seq_part){k->s.longs[e].v, NULL, (int64_t)k->s.longs[e].n - 1, NULL,
                                      NULL};
        }
        dlv_llava_side_parts(&k->params, image_side, &bos, mid,
                             image_side ? NULL : &k->s.caps[e], cont, soft_grad, c->parts[i]);
        c->seqs[i] = (dlv_seq){c->parts[i], DLV_LLAVA_SEQ_PARTS};
        c->at[i] = dlv_llava_embed_position(c->parts[i]);
    }
    if (!st)
        st = dlv_seq_batch_build(be, dlv_model_dir(k->m), &k->w.embed_tokens, k->d.vocab, H,
                                 c->seqs, (int64_t)count, &c->batch);
    for (size_t i = 0; i < count && !st; i++) k->s.tokens += with_tape ? (uint64_t)c->batch.lengths[i] : 0;
    const size_t rows = count * (size_t)c->batch.len;
    if (!st) st = dlv_buffer_alloc(be, (rows + count) * (size_t)H * sizeof(float), &c->hbuf);
    if (!st) {
        c->hidden = dlv_buffer_ptr(&c->hbuf);
        c->E = c->hidden + rows * (size_t)H;
        /* Qwen2-VL: M-RoPE tables, kept with the tape (the backward reads them). */
        dlv_decoder_rope rope = {0};
        if (k->qwen2vl)
            st = dlv_qwen2vl_seq_rope(be, &k->d, c->seqs, (int64_t)count, c->batch.lengths,
                                      c->batch.len, &c->rope, &rope);
        if (!st)
            st = dlv_decoder_forward_rope(be, &k->d.text, &k->w.text, k->params.lora,
                                          k->qwen2vl ? &rope : NULL, dlv_buffer_ptr(&c->batch.x),
                                          c->batch.lengths, (int64_t)count, c->batch.len,
                                          dlv_trainer_config(t)->recompute,
                                          with_tape ? &c->dec : NULL, c->hidden, NULL);
    }
    if (!st) st = dlv_seq_gather_rows(be, c->hidden, c->batch.len, H, c->at, (int64_t)count, c->E);
    return st;
}

static dlv_status forward(void *state, dlv_trainer *t, int image_side, size_t first,
                          size_t count, int with_tape, float *out)
{
    llava_state *k = state;
    dlv_status st = chunk_forward(k, t, image_side, first, count, with_tape);
    chunk_tape *c = &k->c[image_side != 0];
    if (!st) st = dlv_copy(dlv_trainer_backend(t), out, c->E, count * (size_t)k->H * sizeof(float));
    if (!st) st = dlv_l2_normalize(dlv_trainer_backend(t), out, out, (int64_t)count, k->H);
    if (!with_tape) chunk_free(c);
    return st;
}

/* The next-token loss of example e, whose caption continues sequence i at
 * rows x (device [kpred, H], positions emb .. emb + kpred - 1): logits by
 * the LM head, cross-entropy against the caption ids and EOS; dx (device,
 * the same rows of dhidden) += dscale dlogits W; the LM head's gradient. */
static dlv_status ntp(llava_state *k, dlv_trainer *t, size_t e, const float *x, float *dx)
{
    dlv_backend *be = dlv_trainer_backend(t);
    const int64_t V = k->d.vocab, H = k->H, kp = (int64_t)k->s.longs[e].n;
    const float dscale = (float)(dlv_trainer_config(t)->ntp_weight / (double)k->s.ntp_total);
    dlv_buffer b = {0};
    /* logits [kp, V], losses [kp], targets [kp], dx part [kp, H] */
    dlv_status st = dlv_buffer_alloc(be, (size_t)(kp * V + kp + kp + kp * H) * sizeof(float), &b);
    float *logits = dlv_buffer_ptr(&b), *losses = logits + kp * V;
    int32_t *targets = (int32_t *)(losses + kp);
    float *dxp = (float *)(targets + kp);
    if (!st)
        st = dlv_buffer_upload(&b, (size_t)(kp * V + kp) * sizeof(float), k->s.longs[e].v,
                               (size_t)kp * sizeof(int32_t));
    const dlv_linear head = {k->w.lm_head, {0}};
    if (!st) st = dlv_linear_forward(be, logits, x, kp, &head, NULL, NULL);
    if (!st) st = dlv_softmax_cross_entropy(be, losses, logits, logits, targets, kp, V, dscale);
    float *host = st ? NULL : malloc((size_t)kp * sizeof *host);
    if (!st && !host) st = dlv_error_nomem("losses", (size_t)kp * sizeof(float));
    if (!st) st = dlv_buffer_download(host, &b, (size_t)(kp * V) * sizeof(float),
                                      (size_t)kp * sizeof(float));
    for (int64_t i = 0; i < kp && !st; i++) k->s.ntp_sum += (double)host[i];
    free(host);
    /* dW += dlogits^T x; dx += dlogits W. */
    const dlv_linear ghead = {k->gw.lm_head, {0}};
    if (!st) st = dlv_linear_backward(be, dxp, 0.0f, logits, x, kp, &head,
                                      dlv_tensor_present(&ghead.w) ? &ghead : NULL, NULL, NULL,
                                      NULL, NULL);
    if (!st) st = dlv_add(be, dx, dx, dxp, DLV_DTYPE_F32, 0, kp, H);
    dlv_buffer_free(&b);
    return st ? dlv_error_prefix(st, "next-token loss, example %zu", e) : DLV_OK;
}

static dlv_status backward(void *state, dlv_trainer *t, int image_side, const float *dEn)
{
    llava_state *k = state;
    chunk_tape *c = &k->c[image_side != 0];
    dlv_backend *be = dlv_trainer_backend(t);
    const int64_t H = k->H, len = c->batch.len;
    const size_t rows = c->count * (size_t)len;
    dlv_buffer gb = {0};
    /* dhidden, dx [rows, H]; dE [count, H] */
    dlv_status st = dlv_buffer_alloc(be, (2 * rows + c->count) * (size_t)H * sizeof(float), &gb);
    float *dh = dlv_buffer_ptr(&gb), *dx = dh + rows * (size_t)H, *dE = dx + rows * (size_t)H;
    if (!st) st = dlv_buffer_zero(&gb, 0, gb.size);
    /* The contrastive gradient through the normalisation, into the
     * embedding rows. */
    if (!st && dEn) {
        st = dlv_l2_normalize_backward(be, dE, dEn, c->E, (int64_t)c->count, H);
        for (size_t i = 0; i < c->count && !st; i++)
            st = dlv_copy(be, dh + ((int64_t)i * len + c->at[i]) * H, dE + (int64_t)i * H,
                          (size_t)H * sizeof(float));
    }
    for (size_t i = 0; i < c->count && !st && image_side; i++) {
        const size_t e = c->first + i;
        if (!k->s.longs[e].n) continue;
        const int64_t row = (int64_t)i * len + c->at[i];
        st = ntp(k, t, e, c->hidden + row * H, dh + row * H);
    }
    if (!st)
        st = dlv_decoder_backward(be, &k->w.text, &k->gw.text, k->params.lora,
                                  k->train_lora ? k->gpairs : NULL, c->dec, dh, dx);
    /* Soft prompts, the embedding table (when trained) and the features. */
    if (!st)
        st = dlv_seq_batch_backward(&c->batch, dx,
                                    dlv_tensor_present(&k->gw.embed_tokens)
                                        ? dlv_tensor_f32(&k->gw.embed_tokens) : NULL);
    if (!st && c->vis) st = dlv_llava_vision_backward(be, &k->w, &k->gw, c->vis, c->dfeats);
    if (!st && c->ntape) st = next_backward(k, t, c);
    dlv_buffer_free(&gb);
    chunk_free(c);
    return st;
}

static int64_t loss_count(void *state)
{
    const llava_state *k = state;
    return k->s.ntp_total;
}

static void set_loss_count(void *state, int64_t count)
{
    llava_state *k = state;
    k->s.ntp_total = count;
}

static void step_losses(void *state, double *extra, uint64_t *tokens)
{
    llava_state *k = state;
    *extra = k->s.ntp_total ? k->s.ntp_sum / (double)k->s.ntp_total : 0.0;
    *tokens = k->s.tokens;
}

static dlv_status logit_scale(void *state, dlv_trainer *t, float *out)
{
    llava_state *k = state;
    return dlv_copy_to_host(dlv_trainer_backend(t), out, dlv_trainer_params_at(t, k->off_ls),
                            sizeof *out);
}

/* ---- adapters, checkpoints, saved models ------------------------------------- */

static dlv_status download(dlv_trainer *t, size_t off, size_t n, float **out)
{
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out) return dlv_error_nomem("adapter copy", n * sizeof(float));
    return n ? dlv_copy_to_host(dlv_trainer_backend(t), *out, dlv_trainer_params_at(t, off),
                                n * sizeof(float))
             : DLV_OK;
}

static dlv_status export_adapter(void *state, dlv_trainer *t, dlv_adapter *out)
{
    llava_state *k = state;
    dlv_adapter a;
    memset(&a, 0, sizeof a);
    dlv_status st = dlv_prompts_copy(&k->prompts, &a.prompts);
    if (!st && !k->img_ids) {
        a.n_image_prompt = k->n_img;
        st = download(t, k->off_img, (size_t)(k->n_img * k->H), &a.image_prompt);
    }
    if (!st && !k->txt_ids) {
        a.n_text_prompt = k->n_txt;
        st = download(t, k->off_txt, (size_t)(k->n_txt * k->H), &a.text_prompt);
    }
    if (!st) st = logit_scale(k, t, &a.logit_scale);
    if (!st && k->has_lora) {
        st = dlv_lora_create(&dlv_model_config(k->m)->text, k->shape.rank, k->shape.alpha,
                             k->shape.use_rslora, k->shape.targets, &a.lora);
        if (!st) {
            a.has_lora = 1;
            st = dlv_copy_to_host(dlv_trainer_backend(t), a.lora.params,
                                  dlv_trainer_params_at(t, k->off_lora),
                                  k->shape.n_params * sizeof(float));
            snprintf(a.lora.base_model, sizeof a.lora.base_model, "%s", dlv_model_dir(k->m));
        }
    }
    if (st) {
        dlv_adapter_release(&a);
        return st;
    }
    dlv_adapter_release(out);
    *out = a;
    return DLV_OK;
}

static dlv_status save_files(void *state, dlv_trainer *t, const char *dir)
{
    llava_state *k = state;
    dlv_adapter a;
    memset(&a, 0, sizeof a);
    dlv_status st = export_adapter(k, t, &a);
    if (!st) st = dlv_adapter_write_files(k->m, &a, dir);
    dlv_adapter_release(&a);
    return st;
}

static const char *const model_files[] = {
    "config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
    "tokenizer.model", "special_tokens_map.json", "generation_config.json",
    "model.safetensors", NULL};

static dlv_status save_model(void *state, dlv_trainer *t, const char *dir, const char *dtype)
{
    (void)t;
    const llava_state *k = state;
    return dlv_save_model_dir(k->m, k->tv, k->woff, model_files, dir, dtype);
}

static const dlv_tensor *tensors(void *state) { return ((llava_state *)state)->tv; }
static const void *encode_view(void *state) { return &((llava_state *)state)->params; }

const dlv_train_kind dlv_train_kind_llava = {
    .name = "llava",
    .checkpoint_files = checkpoint_files,
    .model_files = model_files,
    .create = create,
    .init = init,
    .destroy = destroy,
    .prepare = prepare,
    .forward = forward,
    .backward = backward,
    .step_losses = step_losses,
    .loss_count = loss_count,
    .set_loss_count = set_loss_count,
    .end_step = end_step,
    .logit_scale = logit_scale,
    .export_adapter = export_adapter,
    .save_files = save_files,
    .save_model = save_model,
    .tensors = tensors,
    .encode_view = encode_view,
};
