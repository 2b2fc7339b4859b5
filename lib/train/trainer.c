/* The training step (see trainer.h and docs/training.md). */
#include "train/trainer.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "model/embed.h"
#include "model/model.h"
#include "model/text_model.h"
#include "model/vision_tower.h"
#include "train/feature_cache.h"
#include "train/loss.h"
#include "train/save_model.h"
#include "train/text_train.h"
#include "train/vision_train.h"
#include "train/wview.h"

struct dlv_trainer {
    const dlv_model *m;
    dlv_train_config cfg;
    dlv_prompts prompts;
    int64_t hidden, n_img, n_txt;
    /* A side whose soft prompt is neither trained nor given uses the
     * instruction's ids, so training the embedding table moves it too. */
    int img_ids, txt_ids;
    size_t n;                     /* floats in each flat buffer */
    float *params, *grads, *m1, *m2;
    size_t off_img, off_txt, off_ls, off_lora;
    int has_lora;
    dlv_lora shape;               /* LoRA offsets (its params are unused) */
    dlv_param_range *ranges;      /* the trained ranges of the flat buffers */
    size_t n_ranges;
    /* Trained model weights (projector, LLM, vision sets): f32 copies in
     * the flat buffers from off_w on, seen through wv by every pass. */
    size_t off_w;
    int has_weights;
    dlv_st_tensor *wcopy;              /* [weights->n] */
    const dlv_st_tensor **wvalue;      /* [weights->n]: &wcopy[i] or NULL */
    float **wgrad;                     /* [weights->n]: gradient or NULL */
    dlv_wview wv;
    uint64_t rng[4];
    int64_t step;
    dlv_feature_cache *cache;          /* frozen image features (cache_features) */
};

void dlv_train_config_defaults(dlv_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->sets = DLV_TRAIN_DEFAULT_SETS;
    c->optim = (dlv_optim_config){DLV_OPT_ADAMW, 1e-4, 0.0, 0.9, 0.999, 1e-8,
                                  DLV_SCHED_CONSTANT, 0, 0, 0.0};
    c->lora_rank = 16;
    c->lora_alpha = 16;
    c->lora_targets = DLV_LORA_ALL;
    c->ntp_weight = 1.0;
    c->contrastive = 1;
    c->seed = 0;
    c->micro_batch = 0;
    c->recompute = 0;
}

/* ---- RNG: xoshiro256** seeded through splitmix64 ----------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [-1, 1) with 24 random bits. */
static float rng_sym(uint64_t s[4])
{
    return (float)((double)(rng_next(s) >> 40) * (1.0 / 8388608.0) - 1.0);
}

/* ---- set-up ----------------------------------------------------------- */

void dlv_trainer_free(dlv_trainer *t)
{
    if (!t) return;
    dlv_prompts_free(&t->prompts);
    if (t->has_lora) dlv_lora_free(&t->shape);
    free(t->params);
    free(t->grads);
    free(t->m1);
    free(t->m2);
    free(t->ranges);
    free(t->wcopy);
    free(t->wvalue);
    free(t->wgrad);
    dlv_feature_cache_free(t->cache);
    free(t);
}

const dlv_wview *dlv_trainer_view(const dlv_trainer *t)
{
    return t && t->has_weights ? &t->wv : NULL;
}

/* Whether weight item w is in a trained set. */
static int weight_trained(unsigned sets, const dlv_weight *w)
{
    if (!w->tensor) return 0;
    switch (w->part) {
    case DLV_PART_VISION: return (sets & DLV_TRAIN_VISION) != 0;
    case DLV_PART_PROJECTOR: return (sets & DLV_TRAIN_PROJECTOR) != 0;
    case DLV_PART_TEXT:
    case DLV_PART_LM_HEAD: return (sets & DLV_TRAIN_LLM) != 0;
    default: return 0;
    }
}

int64_t dlv_trainer_steps(const dlv_trainer *t) { return t ? t->step : 0; }

static dlv_status init_soft(dlv_trainer *t, dlv_backend *be, const float *given, int64_t rows,
                            const dlv_prompt_piece *instr, size_t off)
{
    const size_t len = (size_t)rows * (size_t)t->hidden;
    if (given) {
        memcpy(t->params + off, given, len * sizeof(float));
        return DLV_OK;
    }
    return dlv_text_embed_ids(t->m, be, instr->ids, (int64_t)instr->n, t->params + off, len);
}

dlv_status dlv_trainer_new(const dlv_model *m, dlv_backend *be, const dlv_train_config *cfg,
                           const dlv_adapter *from, dlv_trainer **out)
{
    *out = NULL;
    const char *label = dlv_model_dir(m);
    if (!cfg->sets) return dlv_error(DLV_E_INVALID_ARG, "%s: nothing to train", label);
    dlv_trainer *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("trainer", sizeof *t);
    t->m = m;
    t->cfg = *cfg;
    t->hidden = dlv_model_config(m)->text.hidden_size;
    uint64_t seed = cfg->seed;
    for (int i = 0; i < 4; i++) t->rng[i] = splitmix64(&seed);
    dlv_status st = dlv_prompts_copy(&from->prompts, &t->prompts);
    if (st) goto fail;
    t->img_ids = !(cfg->sets & DLV_TRAIN_SOFT) && !from->image_prompt;
    t->txt_ids = !(cfg->sets & DLV_TRAIN_SOFT) && !from->text_prompt;
    t->n_img = from->image_prompt ? from->n_image_prompt : (int64_t)t->prompts.image.instruction.n;
    t->n_txt = from->text_prompt ? from->n_text_prompt : (int64_t)t->prompts.text.instruction.n;
    if (t->n_img < 1 || t->n_txt < 1) {
        st = dlv_error(DLV_E_INVALID_ARG, "%s: the %s instruction is empty, so there is no soft "
                       "prompt to train (give instruction ids in prompts.json)", label,
                       t->n_img < 1 ? "image" : "text");
        goto fail;
    }
    if (from->has_lora) {
        st = dlv_lora_create(&dlv_model_config(m)->text, from->lora.rank, from->lora.alpha,
                             from->lora.use_rslora, from->lora.targets, &t->shape);
        t->has_lora = st == DLV_OK;
    } else if (cfg->sets & DLV_TRAIN_LORA) {
        st = dlv_lora_create(&dlv_model_config(m)->text, cfg->lora_rank, cfg->lora_alpha, 0,
                             cfg->lora_targets, &t->shape);
        t->has_lora = st == DLV_OK;
    }
    if (st) goto fail;
    t->off_img = 0;
    t->off_txt = t->off_img + (size_t)t->n_img * (size_t)t->hidden;
    t->off_ls = t->off_txt + (size_t)t->n_txt * (size_t)t->hidden;
    t->off_lora = t->off_ls + 1;
    t->off_w = t->off_lora + (t->has_lora ? t->shape.n_params : 0);
    const dlv_weights *W = dlv_model_weights(m);
    t->wcopy = calloc(W->n ? W->n : 1, sizeof *t->wcopy);
    t->wvalue = calloc(W->n ? W->n : 1, sizeof *t->wvalue);
    t->wgrad = calloc(W->n ? W->n : 1, sizeof *t->wgrad);
    t->ranges = calloc(4 + W->n, sizeof *t->ranges);
    if (!t->wcopy || !t->wvalue || !t->wgrad || !t->ranges) {
        st = dlv_error_nomem("weight table", W->n * 96);
        goto fail;
    }
    size_t off = t->off_w;
    for (size_t i = 0; i < W->n; i++) {
        if (!weight_trained(cfg->sets, &W->items[i])) continue;
        t->wcopy[i] = *W->items[i].tensor;
        t->wcopy[i].dtype = DLV_DTYPE_F32;
        t->wcopy[i].n_bytes = t->wcopy[i].n_elements * sizeof(float);
        t->wcopy[i].data = (const void *)(uintptr_t)off; /* an offset until allocation */
        off += (size_t)W->items[i].tensor->n_elements;
        t->has_weights = 1;
    }
    t->n = off;
    t->params = calloc(t->n, sizeof(float));
    t->grads = calloc(t->n, sizeof(float));
    t->m1 = calloc(t->n, sizeof(float));
    t->m2 = calloc(t->n, sizeof(float));
    if (!t->params || !t->grads || !t->m1 || !t->m2) {
        st = dlv_error_nomem("trainable parameters", 4 * t->n * sizeof(float));
        goto fail;
    }
    for (size_t i = 0; i < W->n; i++) {
        if (!weight_trained(cfg->sets, &W->items[i])) continue;
        size_t woff = (size_t)(uintptr_t)t->wcopy[i].data;
        t->wcopy[i].data = t->params + woff;
        t->wvalue[i] = &t->wcopy[i];
        t->wgrad[i] = t->grads + woff;
        if ((st = dlv_st_read_f32(W->items[i].tensor, 0, W->items[i].tensor->n_elements,
                                  t->params + woff)))
            goto fail;
        /* Matrices decay; vectors (norms, biases, class embedding) do not. */
        t->ranges[t->n_ranges++] = (dlv_param_range){woff, (size_t)W->items[i].tensor->n_elements,
                                                     W->items[i].tensor->ndim >= 2};
    }
    t->wv = (dlv_wview){W, t->wvalue, t->wgrad};
    if ((st = init_soft(t, be, from->image_prompt, t->n_img, &t->prompts.image.instruction,
                        t->off_img)) ||
        (st = init_soft(t, be, from->text_prompt, t->n_txt, &t->prompts.text.instruction,
                        t->off_txt)))
        goto fail;
    t->params[t->off_ls] = from->logit_scale;
    if (t->has_lora) {
        float *dst = t->params + t->off_lora;
        if (from->has_lora) {
            memcpy(dst, from->lora.params, t->shape.n_params * sizeof(float));
        } else {
            /* PEFT's default init: A ~ kaiming_uniform(a = sqrt(5)), which is
             * U(-1/sqrt(in), 1/sqrt(in)); B = 0 (already). */
            const dlv_text_config *tc = &dlv_model_config(m)->text;
            for (int64_t l = 0; l < t->shape.n_layers; l++)
                for (int mod = 0; mod < DLV_LORA_N_MODULES; mod++) {
                    size_t aoff = t->shape.off_a[(size_t)l * DLV_LORA_N_MODULES + (size_t)mod];
                    if (aoff == DLV_LORA_ABSENT) continue;
                    int64_t o, in;
                    dlv_lora_module_dims(tc, (dlv_lora_module)mod, &o, &in);
                    const float bound = (float)(1.0 / sqrt((double)in));
                    float *a = dst + aoff;
                    for (int64_t i = 0; i < t->shape.rank * in; i++) a[i] = bound * rng_sym(t->rng);
                }
        }
        free(t->shape.params);
        t->shape.params = NULL;
    }
    if (cfg->sets & DLV_TRAIN_SOFT)
        t->ranges[t->n_ranges++] = (dlv_param_range){t->off_img, t->off_ls - t->off_img, 0};
    if (cfg->sets & DLV_TRAIN_LOGIT_SCALE)
        t->ranges[t->n_ranges++] = (dlv_param_range){t->off_ls, 1, 0};
    if (t->has_lora && (cfg->sets & DLV_TRAIN_LORA))
        t->ranges[t->n_ranges++] = (dlv_param_range){t->off_lora, t->shape.n_params, 1};
    *out = t;
    return DLV_OK;
fail:
    dlv_trainer_free(t);
    return st;
}

/* ---- the step ---------------------------------------------------------- */

typedef struct ids_list {
    int32_t *ids;
    size_t n;
} ids_list;

static dlv_status tokenize(const dlv_tokenizer *tok, const char *text, int32_t eos,
                           const char *what, size_t idx, ids_list *out)
{
    size_t len = strlen(text), n = 0;
    out->ids = NULL;
    out->n = 0;
    dlv_status st = dlv_tokenize(tok, text, len, 0, NULL, 0, &n);
    if (st) return dlv_error_prefix(st, "example %zu: %s", idx, what);
    out->ids = malloc((n + 1) * sizeof *out->ids);
    if (!out->ids) return dlv_error_nomem("token ids", (n + 1) * sizeof(int32_t));
    if (n && (st = dlv_tokenize(tok, text, len, 0, out->ids, n, &n)))
        return dlv_error_prefix(st, "example %zu: %s", idx, what);
    out->n = n;
    if (eos >= 0) out->ids[out->n++] = eos;
    return DLV_OK;
}

/* Lengths of the pieces of an embedding sequence. */
typedef struct seq_layout {
    int64_t bos, prefix, middle, soft, suffix;
} seq_layout;

static int64_t seq_len(const seq_layout *l)
{
    return l->bos + l->prefix + l->middle + l->soft + l->suffix;
}

static seq_layout layout_of(const dlv_prompts *p, const dlv_prompt_side *side, int64_t middle,
                            int64_t soft)
{
    return (seq_layout){p->add_bos ? 1 : 0, (int64_t)side->prefix.n, middle, soft,
                        (int64_t)side->suffix.n};
}

/* Parts of one sequence: BOS, prefix, middle (ids or rows), soft rows,
 * suffix, then an optional continuation of ids (the long caption). */
static void make_parts(const dlv_prompts *p, const dlv_prompt_side *side, const int32_t *bos,
                       dlv_seq_part middle, const float *soft, int64_t n_soft,
                       const int32_t *cont, int64_t n_cont, dlv_seq_part parts[6])
{
    static const int32_t none[1] = {0};
    parts[0] = (dlv_seq_part){bos, NULL, p->add_bos ? 1 : 0};
    parts[1] = (dlv_seq_part){side->prefix.ids ? side->prefix.ids : none, NULL,
                              (int64_t)side->prefix.n};
    parts[2] = middle;
    /* No soft prompt: the instruction's ids (looked up in the possibly
     * trained embedding table). */
    if (soft)
        parts[3] = (dlv_seq_part){NULL, soft, n_soft};
    else
        parts[3] = (dlv_seq_part){side->instruction.ids ? side->instruction.ids : none, NULL,
                                  (int64_t)side->instruction.n};
    parts[4] = (dlv_seq_part){side->suffix.ids ? side->suffix.ids : none, NULL,
                              (int64_t)side->suffix.n};
    parts[5] = (dlv_seq_part){cont ? cont : none, NULL, n_cont};
}

/* Writes the input embeddings of n sequences into embeds [n, max_len, H]
 * (zero padding). */
static dlv_status fill_embeds(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                              dlv_seq_part (*parts)[6], int64_t n, int64_t max_len,
                              int64_t hidden, float *embeds)
{
    const dlv_text_config *tc = &dlv_model_config(m)->text;
    const dlv_st_tensor *table = dlv_wview_get(wv, DLV_PART_TEXT, "embed_tokens.weight", NULL);
    if (!table) return dlv_error(DLV_E_FORMAT, "%s: embed_tokens.weight is missing",
                                 dlv_model_dir(m));
    const size_t row = (size_t)max_len * (size_t)hidden;
    memset(embeds, 0, (size_t)n * row * sizeof *embeds);
    for (int64_t s = 0; s < n; s++) {
        float *dst = embeds + (size_t)s * row;
        for (int p = 0; p < 6; p++) {
            const dlv_seq_part *part = &parts[s][p];
            const size_t nf = (size_t)part->n * (size_t)hidden;
            if (part->n == 0) continue;
            if (part->ids) {
                dlv_status st = dlv_embedding(be, dst, table->data, table->dtype, part->ids,
                                              part->n, tc->vocab_size, hidden);
                if (st) return dlv_error_prefix(st, "%s: embed_tokens", dlv_model_dir(m));
            } else {
                memcpy(dst, part->rows, nf * sizeof *dst);
            }
            dst += nf;
        }
    }
    return DLV_OK;
}

typedef struct step_ctx {
    dlv_trainer *t;
    dlv_backend *be;
    const dlv_train_example *ex;
    size_t n;
    const dlv_tokenizer *tok;
    ids_list *caps, *longs;       /* [n]; longs[k].n == 0: no NTP for k */
    float *feats;                 /* [n, F, H] */
    float *pixels;                /* [n, C, S, S] when the vision side is trained */
    size_t pix_floats;
    int64_t n_feat;
    float *dv, *dt;               /* [n, H] d L_c / d embedding */
    dlv_lora lora, lora_grad;
    const dlv_st_tensor *lm_head;
    float *lm_head_grad;          /* NULL when the LM head is frozen */
    double ntp_sum;               /* sum of NTP token losses */
    int64_t ntp_total;            /* NTP predictions in the batch */
    uint64_t tokens;
} step_ctx;

/* The LM head's logits for rows X [k, H], their cross-entropy against
 * targets, and dX (SET) = dscale * dlogits . W. */
static dlv_status ntp_head(step_ctx *c, const float *x, const int32_t *targets, int64_t k,
                           float dscale, float *dx)
{
    const dlv_text_config *tc = &dlv_model_config(c->t->m)->text;
    const int64_t V = tc->vocab_size, H = c->t->hidden;
    float *logits = malloc((size_t)k * (size_t)V * sizeof *logits);
    float *losses = malloc((size_t)k * sizeof *losses);
    dlv_status st = DLV_OK;
    if (!logits || !losses) st = dlv_error_nomem("NTP logits", (size_t)k * (size_t)V * 4);
    dlv_matmul_args a = {
        .struct_size = sizeof a, .trans_a = DLV_NO_TRANS, .trans_b = DLV_TRANS,
        .m = k, .n = V, .k = H, .alpha = 1.0f, .beta = 0.0f,
        .a = x, .a_dtype = DLV_DTYPE_F32, .lda = H,
        .b = c->lm_head->data, .b_dtype = c->lm_head->dtype, .ldb = H,
        .c = logits, .ldc = V,
    };
    if (!st) st = dlv_matmul(c->be, &a);
    if (!st) st = dlv_softmax_cross_entropy(c->be, losses, logits, logits, targets, k, V, dscale);
    if (!st && c->lm_head_grad) {
        /* dW += dlogits^T X. */
        dlv_matmul_args gw = {
            .struct_size = sizeof gw, .trans_a = DLV_TRANS, .trans_b = DLV_NO_TRANS,
            .m = V, .n = H, .k = k, .alpha = 1.0f, .beta = 1.0f,
            .a = logits, .a_dtype = DLV_DTYPE_F32, .lda = V,
            .b = x, .b_dtype = DLV_DTYPE_F32, .ldb = H,
            .c = c->lm_head_grad, .ldc = H,
        };
        st = dlv_matmul(c->be, &gw);
    }
    if (!st) {
        for (int64_t i = 0; i < k; i++) c->ntp_sum += (double)losses[i];
        dlv_matmul_args b = {
            .struct_size = sizeof b, .trans_a = DLV_NO_TRANS, .trans_b = DLV_NO_TRANS,
            .m = k, .n = H, .k = V, .alpha = 1.0f, .beta = 0.0f,
            .a = logits, .a_dtype = DLV_DTYPE_F32, .lda = V,
            .b = c->lm_head->data, .b_dtype = c->lm_head->dtype, .ldb = H,
            .c = dx, .ldc = H,
        };
        st = dlv_matmul(c->be, &b);
    }
    free(logits);
    free(losses);
    return st;
}

/* Forward + backward of sequences [first, first + count) of one side;
 * images carry their long captions for the NTP loss. */
static dlv_status run_chunk(step_ctx *c, int images, size_t first, size_t count)
{
    dlv_trainer *t = c->t;
    const int64_t H = t->hidden;
    const dlv_prompt_side *side = images ? &t->prompts.image : &t->prompts.text;
    const int soft_ids = images ? t->img_ids : t->txt_ids;
    const float *soft = soft_ids ? NULL : t->params + (images ? t->off_img : t->off_txt);
    const int64_t n_soft = images ? t->n_img : t->n_txt;
    const int32_t bos = t->prompts.bos_id;
    dlv_seq_part (*parts)[6] = calloc(count, sizeof *parts);
    int32_t *lengths = calloc(count, sizeof *lengths);
    int64_t *emb_len = calloc(count, sizeof *emb_len); /* where the embedding is read */
    dlv_status st = DLV_OK;
    if (!parts || !lengths || !emb_len) st = dlv_error_nomem("training chunk", count * 64);
    int64_t max_len = 0, soft_at = 0;
    for (size_t i = 0; i < count && !st; i++) {
        size_t k = first + i;
        dlv_seq_part mid;
        if (images)
            mid = (dlv_seq_part){NULL, c->feats + k * (size_t)c->n_feat * (size_t)H, c->n_feat};
        else
            mid = (dlv_seq_part){c->caps[k].ids, NULL, (int64_t)c->caps[k].n};
        /* The long caption's ids without its final EOS are input; the EOS
         * is only a target. */
        int64_t n_cont = images && c->longs[k].n ? (int64_t)c->longs[k].n - 1 : 0;
        make_parts(&t->prompts, side, &bos, mid, soft, n_soft, images ? c->longs[k].ids : NULL,
                   n_cont, parts[i]);
        seq_layout lay = layout_of(&t->prompts, side, mid.n, n_soft);
        soft_at = lay.bos + lay.prefix; /* + mid.n per sequence below */
        emb_len[i] = seq_len(&lay);
        lengths[i] = (int32_t)(emb_len[i] + n_cont);
        if (lengths[i] > max_len) max_len = lengths[i];
    }
    const size_t rows = count * (size_t)max_len;
    float *embeds = NULL, *hidden = NULL, *dhidden = NULL, *dembeds = NULL;
    dlv_text_tape *tape = NULL;
    if (!st) {
        embeds = malloc(rows * (size_t)H * sizeof *embeds);
        hidden = malloc(rows * (size_t)H * sizeof *hidden);
        dhidden = calloc(rows * (size_t)H, sizeof *dhidden);
        dembeds = calloc(rows * (size_t)H, sizeof *dembeds);
        if (!embeds || !hidden || !dhidden || !dembeds)
            st = dlv_error_nomem("training activations", 4 * rows * (size_t)H * sizeof(float));
    }
    /* Images with a trained tower or projector: their features again, now
     * with a tape for the backward. */
    dlv_vision_tape *vtape = NULL;
    float *feats = NULL, *dfeats = NULL;
    const int vision_grad = images && (t->cfg.sets & (DLV_TRAIN_PROJECTOR | DLV_TRAIN_VISION));
    const size_t feat_floats = (size_t)c->n_feat * (size_t)H;
    if (!st && vision_grad) {
        feats = malloc(count * feat_floats * sizeof *feats);
        dfeats = calloc(count * feat_floats, sizeof *dfeats);
        if (!feats || !dfeats) st = dlv_error_nomem("image features", 2 * count * feat_floats * 4);
        if (!st)
            st = dlv_vision_train_forward(t->m, c->be, &t->wv, c->pixels + first * c->pix_floats,
                                          (int64_t)count, &vtape, feats);
        for (size_t i = 0; i < count && !st; i++) parts[i][2].rows = feats + i * feat_floats;
    }
    if (!st) st = fill_embeds(t->m, c->be, &t->wv, parts, (int64_t)count, max_len, H, embeds);
    const dlv_wview wv = t->wv;
    if (!st)
        st = dlv_text_train_forward(t->m, c->be, &wv, t->has_lora ? &c->lora : NULL, embeds,
                                    lengths, (int64_t)count, max_len, t->cfg.recompute, &tape,
                                    hidden);
    for (size_t i = 0; i < count && !st; i++) {
        size_t k = first + i;
        c->tokens += (uint64_t)lengths[i];
        const size_t at = (i * (size_t)max_len + (size_t)emb_len[i] - 1) * (size_t)H;
        if (t->cfg.contrastive && c->n > 0)
            st = dlv_l2_normalize_backward(c->be, dhidden + at,
                                           (images ? c->dv : c->dt) + k * (size_t)H,
                                           hidden + at, 1, H);
        if (!st && images && c->longs[k].n) {
            /* Positions emb_len-1 ... predict the caption ids and EOS. */
            const int64_t kpred = (int64_t)c->longs[k].n;
            float *dx = malloc((size_t)kpred * (size_t)H * sizeof *dx);
            if (!dx) {
                st = dlv_error_nomem("NTP gradients", (size_t)kpred * (size_t)H * 4);
                break;
            }
            st = ntp_head(c, hidden + at, c->longs[k].ids, kpred,
                          (float)(t->cfg.ntp_weight / (double)c->ntp_total), dx);
            for (size_t e = 0; !st && e < (size_t)kpred * (size_t)H; e++) dhidden[at + e] += dx[e];
            free(dx);
        }
    }
    if (!st)
        st = dlv_text_train_backward(t->m, c->be, &wv, t->has_lora ? &c->lora : NULL,
                                     t->has_lora ? &c->lora_grad : NULL, tape, dhidden, dembeds);
    /* The soft prompt's rows of each sequence collect its gradient. */
    float *gsoft = t->grads + (images ? t->off_img : t->off_txt);
    for (size_t i = 0; i < count && !st && !soft_ids; i++) {
        const int64_t mid_n = parts[i][2].n;
        const float *src = dembeds + (i * (size_t)max_len + (size_t)(soft_at + mid_n)) * (size_t)H;
        for (size_t e = 0; e < (size_t)n_soft * (size_t)H; e++) gsoft[e] += src[e];
    }
    /* A trained embedding table: every id part's rows scatter into it. */
    float *gemb = NULL;
    dlv_wview_get(&t->wv, DLV_PART_TEXT, "embed_tokens.weight", &gemb);
    const int64_t V = dlv_model_config(t->m)->text.vocab_size;
    for (size_t i = 0; i < count && !st && gemb; i++) {
        size_t at = i * (size_t)max_len;
        for (int p = 0; p < 6 && !st; p++) {
            const dlv_seq_part *part = &parts[i][p];
            if (part->n && part->ids)
                st = dlv_embedding_backward(c->be, gemb, dembeds + at * (size_t)H, part->ids,
                                            part->n, V, H);
            at += (size_t)part->n;
        }
    }
    /* The image features' rows go back through the projector and tower. */
    if (!st && vision_grad) {
        for (size_t i = 0; i < count; i++)
            memcpy(dfeats + i * feat_floats,
                   dembeds + (i * (size_t)max_len + (size_t)soft_at) * (size_t)H,
                   feat_floats * sizeof *dfeats);
        st = dlv_vision_train_backward(t->m, c->be, &t->wv, vtape, dfeats);
    }
    dlv_vision_tape_free(vtape);
    free(feats);
    free(dfeats);
    dlv_text_tape_free(tape);
    free(embeds);
    free(hidden);
    free(dhidden);
    free(dembeds);
    free(parts);
    free(lengths);
    free(emb_len);
    return st;
}

/* Phase 1: the batch's normalised embeddings without gradients. */
static dlv_status embed_all(step_ctx *c, int images, float *out)
{
    dlv_trainer *t = c->t;
    const int64_t H = t->hidden;
    const dlv_prompt_side *side = images ? &t->prompts.image : &t->prompts.text;
    const float *soft = (images ? t->img_ids : t->txt_ids)
                            ? NULL : t->params + (images ? t->off_img : t->off_txt);
    const int64_t n_soft = images ? t->n_img : t->n_txt;
    const int32_t bos = t->prompts.bos_id;
    const size_t chunk = t->cfg.micro_batch > 0 ? (size_t)t->cfg.micro_batch : c->n;
    dlv_status st = DLV_OK;
    for (size_t first = 0; first < c->n && !st; first += chunk) {
        size_t count = c->n - first < chunk ? c->n - first : chunk;
        dlv_seq_part (*parts)[6] = calloc(count, sizeof *parts);
        dlv_seq *seqs = calloc(count, sizeof *seqs);
        if (!parts || !seqs) st = dlv_error_nomem("sequences", count * 200);
        for (size_t i = 0; i < count && !st; i++) {
            size_t k = first + i;
            dlv_seq_part mid = images
                ? (dlv_seq_part){NULL, c->feats + k * (size_t)c->n_feat * (size_t)H, c->n_feat}
                : (dlv_seq_part){c->caps[k].ids, NULL, (int64_t)c->caps[k].n};
            make_parts(&t->prompts, side, &bos, mid, soft, n_soft, NULL, 0, parts[i]);
            seqs[i] = (dlv_seq){parts[i], 6};
        }
        if (!st)
            st = dlv_embed_sequences(t->m, c->be, dlv_trainer_view(t),
                                     t->has_lora ? &c->lora : NULL, seqs,
                                     (int64_t)count, 1, out + first * (size_t)H,
                                     count * (size_t)H);
        free(parts);
        free(seqs);
    }
    return st;
}

/* The batch's projected image features; with cache_features and a frozen
 * tower + projector, images seen before are served from the cache. */
static dlv_status step_features(dlv_trainer *t, dlv_backend *be, const dlv_image **imgs,
                                size_t n, float **feats, int64_t *n_feat)
{
    const int frozen = !(t->cfg.sets & (DLV_TRAIN_PROJECTOR | DLV_TRAIN_VISION));
    if (!frozen || !t->cfg.cache_features)
        return dlv_embed_image_features(t->m, be, dlv_trainer_view(t), imgs, n, feats, n_feat);
    const dlv_llava_config *cfg = dlv_model_config(t->m);
    *n_feat = dlv_vision_n_tokens(cfg);
    const size_t per = (size_t)*n_feat * (size_t)cfg->text.hidden_size;
    dlv_status st = DLV_OK;
    if (!t->cache && (st = dlv_feature_cache_new(per, &t->cache))) return st;
    *feats = malloc(n * per * sizeof **feats);
    const dlv_image **miss = malloc(n * sizeof *miss);
    size_t *miss_at = malloc(n * sizeof *miss_at), n_miss = 0;
    if (!*feats || !miss || !miss_at) st = dlv_error_nomem("image features", n * per * 4);
    for (size_t k = 0; k < n && !st; k++) {
        const float *hit = dlv_feature_cache_get(t->cache, imgs[k]);
        if (hit) memcpy(*feats + k * per, hit, per * sizeof(float));
        else {
            miss[n_miss] = imgs[k];
            miss_at[n_miss++] = k;
        }
    }
    float *fresh = NULL;
    int64_t nf = 0;
    if (!st && n_miss) st = dlv_embed_image_features(t->m, be, NULL, miss, n_miss, &fresh, &nf);
    for (size_t i = 0; i < n_miss && !st; i++) {
        memcpy(*feats + miss_at[i] * per, fresh + i * per, per * sizeof(float));
        st = dlv_feature_cache_put(t->cache, miss[i], fresh + i * per);
    }
    free(fresh);
    free(miss);
    free(miss_at);
    if (st) {
        free(*feats);
        *feats = NULL;
    }
    return st;
}

static void fill_stats(dlv_train_stats *s, const dlv_train_stats *v)
{
    /* Only the fields that fit in the caller's struct_size. */
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

dlv_status dlv_trainer_step(dlv_trainer *t, dlv_backend *be, const dlv_train_example *ex,
                            size_t n, dlv_train_stats *stats)
{
    const dlv_model *m = t->m;
    const dlv_text_config *tc = &dlv_model_config(m)->text;
    const int64_t H = t->hidden;
    step_ctx c = {.t = t, .be = be, .ex = ex, .n = n};
    c.tok = dlv_model_get_tokenizer(m);
    if (!c.tok)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: has no tokenizer to tokenize captions with",
                         dlv_model_dir(m));
    const int ntp = t->cfg.ntp_weight != 0.0;
    if (ntp && tc->eos_token_id < 0)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: the next-token loss needs text_config."
                         "eos_token_id", dlv_model_dir(m));
    c.lm_head = dlv_wview_get(&t->wv, DLV_PART_LM_HEAD, "lm_head.weight", &c.lm_head_grad);
    if (!c.lm_head)
        c.lm_head = dlv_wview_get(&t->wv, DLV_PART_TEXT, "embed_tokens.weight", &c.lm_head_grad);
    c.caps = calloc(n, sizeof *c.caps);
    c.longs = calloc(n, sizeof *c.longs);
    c.dv = calloc(n * (size_t)H, sizeof(float));
    c.dt = calloc(n * (size_t)H, sizeof(float));
    float *v = calloc(n * (size_t)H, sizeof(float)), *tx = calloc(n * (size_t)H, sizeof(float));
    const dlv_image **imgs = calloc(n, sizeof *imgs);
    dlv_status st = DLV_OK;
    if (!c.caps || !c.longs || !c.dv || !c.dt || !v || !tx || !imgs)
        st = dlv_error_nomem("training batch", n * (size_t)H * 16);
    for (size_t k = 0; k < n && !st; k++) {
        imgs[k] = ex[k].image;
        st = tokenize(c.tok, ex[k].caption, -1, "caption", k, &c.caps[k]);
        if (!st && ntp && ex[k].long_caption) {
            st = tokenize(c.tok, ex[k].long_caption, (int32_t)tc->eos_token_id, "long caption",
                          k, &c.longs[k]);
            c.ntp_total += (int64_t)c.longs[k].n;
        }
    }
    if (!st) st = step_features(t, be, imgs, n, &c.feats, &c.n_feat);
    if (!st && (t->cfg.sets & (DLV_TRAIN_PROJECTOR | DLV_TRAIN_VISION))) {
        size_t ch, hh, ww;
        st = dlv_model_image_size(m, &ch, &hh, &ww);
        c.pix_floats = ch * hh * ww;
        if (!st && !(c.pixels = malloc(n * c.pix_floats * sizeof(float))))
            st = dlv_error_nomem("pixels", n * c.pix_floats * sizeof(float));
        for (size_t k = 0; k < n && !st; k++)
            st = dlv_preprocess_image(m, imgs[k], NULL, c.pixels + k * c.pix_floats,
                                      c.pix_floats);
    }
    if (t->has_lora) {
        c.lora = dlv_lora_view(&t->shape, t->params + t->off_lora);
        c.lora_grad = dlv_lora_view(&t->shape, t->grads + t->off_lora);
    }
    double lc = 0, dls = 0;
    if (!st && t->cfg.contrastive) {
        if ((st = embed_all(&c, 1, v)) || (st = embed_all(&c, 0, tx))) goto done;
        dlv_contrastive_loss(v, tx, (int64_t)n, H, (double)t->params[t->off_ls], &lc, c.dv, c.dt,
                             &dls);
    }
    if (!st) {
        memset(t->grads, 0, t->n * sizeof(float));
        t->grads[t->off_ls] = (float)dls;
        const size_t chunk = t->cfg.micro_batch > 0 ? (size_t)t->cfg.micro_batch : n;
        const int image_pass = t->cfg.contrastive || c.ntp_total > 0;
        for (size_t f = 0; f < n && !st && image_pass; f += chunk)
            st = run_chunk(&c, 1, f, n - f < chunk ? n - f : chunk);
        for (size_t f = 0; f < n && !st && t->cfg.contrastive; f += chunk)
            st = run_chunk(&c, 0, f, n - f < chunk ? n - f : chunk);
    }
    if (st) goto done;
    const double lntp = c.ntp_total ? c.ntp_sum / (double)c.ntp_total : 0.0;
    const double loss = lc + t->cfg.ntp_weight * lntp;
    double sq = 0;
    for (size_t r = 0; r < t->n_ranges; r++) {
        double g = dlv_grad_norm(t->grads + t->ranges[r].offset, t->ranges[r].n);
        sq += g * g;
    }
    const double gnorm = sqrt(sq);
    if (!isfinite(loss) || !isfinite(gnorm)) {
        st = dlv_error(DLV_E_NUMERIC, "%s: training step %" PRId64 ": the loss (%g) or the "
                       "gradient norm (%g) is not finite; nothing was updated", dlv_model_dir(m),
                       t->step + 1, loss, gnorm);
        goto done;
    }
    double clip = 1.0;
    if (t->cfg.optim.grad_clip > 0 && gnorm > t->cfg.optim.grad_clip)
        clip = t->cfg.optim.grad_clip / (gnorm + 1e-6);
    const double lr = dlv_schedule_lr(&t->cfg.optim, t->step);
    dlv_optim_update(&t->cfg.optim, lr, t->step, t->params, t->grads, t->m1, t->m2, t->ranges,
                     t->n_ranges, clip);
    /* As OpenCLIP: the stored scale stays at or below log(100). */
    if (t->params[t->off_ls] > (float)DLV_LOGIT_SCALE_MAX)
        t->params[t->off_ls] = (float)DLV_LOGIT_SCALE_MAX;
    t->step++;
    dlv_train_stats out = {sizeof out, loss, lc, lntp, gnorm, lr,
                           exp((double)t->params[t->off_ls]), (uint64_t)t->step, c.tokens};
    fill_stats(stats, &out);
done:
    for (size_t k = 0; c.caps && k < n; k++) free(c.caps[k].ids);
    for (size_t k = 0; c.longs && k < n; k++) free(c.longs[k].ids);
    free(c.caps);
    free(c.longs);
    free(c.dv);
    free(c.dt);
    free(c.feats);
    free(c.pixels);
    free(v);
    free(tx);
    free(imgs);
    return st;
}

/* ---- export, save, load ------------------------------------------------ */

static float *copy_floats(const float *src, size_t n)
{
    float *d = malloc(n * sizeof *d);
    if (d) memcpy(d, src, n * sizeof *d);
    return d;
}

dlv_status dlv_trainer_export(const dlv_trainer *t, dlv_adapter *out)
{
    dlv_adapter a;
    memset(&a, 0, sizeof a);
    dlv_status st = dlv_prompts_copy(&t->prompts, &a.prompts);
    if (st) return st;
    a.n_image_prompt = t->img_ids ? 0 : t->n_img;
    a.n_text_prompt = t->txt_ids ? 0 : t->n_txt;
    a.image_prompt = t->img_ids ? NULL
                                : copy_floats(t->params + t->off_img,
                                              (size_t)t->n_img * (size_t)t->hidden);
    a.text_prompt = t->txt_ids ? NULL
                               : copy_floats(t->params + t->off_txt,
                                             (size_t)t->n_txt * (size_t)t->hidden);
    a.logit_scale = t->params[t->off_ls];
    if ((!t->img_ids && !a.image_prompt) || (!t->txt_ids && !a.text_prompt))
        st = dlv_error_nomem("adapter copy", t->n * 4);
    if (!st && t->has_lora) {
        st = dlv_lora_create(&dlv_model_config(t->m)->text, t->shape.rank, t->shape.alpha,
                             t->shape.use_rslora, t->shape.targets, &a.lora);
        if (!st) {
            a.has_lora = 1;
            memcpy(a.lora.params, t->params + t->off_lora, t->shape.n_params * sizeof(float));
            snprintf(a.lora.base_model, sizeof a.lora.base_model, "%s", dlv_model_dir(t->m));
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

static json_t *config_json(const dlv_train_config *c)
{
    return json_pack("{s:I, s:i, s:f, s:f, s:f, s:f, s:f, s:i, s:I, s:I, s:f, s:I, s:f, s:I, "
                     "s:f, s:b, s:s, s:I, s:b, s:b}",
                     "sets", (json_int_t)c->sets, "optimizer", (int)c->optim.kind,
                     "lr", c->optim.lr, "weight_decay", c->optim.weight_decay,
                     "beta1", c->optim.beta1, "beta2", c->optim.beta2, "eps", c->optim.eps,
                     "schedule", (int)c->optim.schedule, "warmup", (json_int_t)c->optim.warmup,
                     "total_steps", (json_int_t)c->optim.total_steps,
                     "grad_clip", c->optim.grad_clip, "lora_rank", (json_int_t)c->lora_rank,
                     "lora_alpha", c->lora_alpha, "lora_targets", (json_int_t)c->lora_targets,
                     "ntp_weight", c->ntp_weight, "contrastive", c->contrastive,
                     "seed", "", "micro_batch", (json_int_t)c->micro_batch,
                     "recompute", c->recompute, "cache_features", c->cache_features);
}

static dlv_status save_state(const dlv_trainer *t, const char *dir);

dlv_status dlv_trainer_save(const dlv_trainer *t, const char *dir)
{
    dlv_adapter a;
    memset(&a, 0, sizeof a);
    char *tmp = NULL;
    dlv_status st = dlv_trainer_export(t, &a);
    if (!st) st = dlv_dir_save_begin(dir, dlv_adapter_files, &tmp);
    if (!st) st = dlv_adapter_write_files(t->m, &a, tmp);
    if (!st) st = save_state(t, tmp);
    if (!st) st = dlv_dir_save_commit(tmp, dir, dlv_adapter_files);
    if (st && tmp) dlv_dir_save_abort(tmp, dlv_adapter_files);
    free(tmp);
    dlv_adapter_release(&a);
    return st;
}

/* train_state.safetensors: Adam moments, step, RNG state, config. */
static dlv_status save_state(const dlv_trainer *t, const char *dir)
{
    dlv_status st = DLV_OK;
    json_t *cfg = config_json(&t->cfg);
    if (!cfg) return dlv_error(DLV_E_NOMEM, "%s: cannot build the training state", dir);
    char seed[32], step[32], rng[96], n[32];
    snprintf(seed, sizeof seed, "%" PRIu64, t->cfg.seed);
    json_object_set_new(cfg, "seed", json_string(seed));
    char *cfg_text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(cfg);
    if (!cfg_text) return dlv_error(DLV_E_NOMEM, "%s: cannot build the training state", dir);
    snprintf(step, sizeof step, "%" PRId64, t->step);
    snprintf(rng, sizeof rng, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             t->rng[0], t->rng[1], t->rng[2], t->rng[3]);
    snprintf(n, sizeof n, "%zu", t->n);
    const int64_t shape[1] = {(int64_t)t->n};
    const int64_t wshape[1] = {(int64_t)(t->n - t->off_w)};
    /* The trained model weights are not adapter files: they live here. */
    dlv_st_write_entry e[3] = {{"adam_m", DLV_DTYPE_F32, 1, shape, t->m1},
                               {"adam_v", DLV_DTYPE_F32, 1, shape, t->m2},
                               {"weights", DLV_DTYPE_F32, 1, wshape, t->params + t->off_w}};
    const char *keys[5] = {"format", "step", "rng", "n_params", "config"};
    const char *vals[5] = {"disclvlm-train-state-1", step, rng, n, cfg_text};
    char *path = dlv_path_join(dir, "train_state.safetensors");
    if (!path) st = dlv_error_nomem("a path", strlen(dir) + 32);
    else st = dlv_st_write(path, e, t->has_weights ? 3 : 2, keys, vals, 5);
    free(path);
    free(cfg_text);
    return st;
}

static dlv_status parse_config(const char *text, const char *label, dlv_train_config *c)
{
    json_t *root = NULL;
    dlv_status st = dlv_json_parse(text, strlen(text), label, &root);
    if (st) return st;
    dlv_train_config_defaults(c);
    int64_t sets = 0, opt = 0, sched = 0, warm = 0, total = 0, rank = 0, targets = 0,
            micro = 0;
    char seed[32] = "0";
    if ((st = dlv_json_int(root, "sets", DLV_TRAIN_DEFAULT_SETS, label, &sets)) ||
        (st = dlv_json_int(root, "optimizer", 0, label, &opt)) ||
        (st = dlv_json_real(root, "lr", c->optim.lr, label, &c->optim.lr)) ||
        (st = dlv_json_real(root, "weight_decay", 0, label, &c->optim.weight_decay)) ||
        (st = dlv_json_real(root, "beta1", 0.9, label, &c->optim.beta1)) ||
        (st = dlv_json_real(root, "beta2", 0.999, label, &c->optim.beta2)) ||
        (st = dlv_json_real(root, "eps", 1e-8, label, &c->optim.eps)) ||
        (st = dlv_json_int(root, "schedule", 0, label, &sched)) ||
        (st = dlv_json_int(root, "warmup", 0, label, &warm)) ||
        (st = dlv_json_int(root, "total_steps", 0, label, &total)) ||
        (st = dlv_json_real(root, "grad_clip", 0, label, &c->optim.grad_clip)) ||
        (st = dlv_json_int(root, "lora_rank", 16, label, &rank)) ||
        (st = dlv_json_real(root, "lora_alpha", 16, label, &c->lora_alpha)) ||
        (st = dlv_json_int(root, "lora_targets", DLV_LORA_ALL, label, &targets)) ||
        (st = dlv_json_real(root, "ntp_weight", 1, label, &c->ntp_weight)) ||
        (st = dlv_json_bool(root, "contrastive", 1, label, &c->contrastive)) ||
        (st = dlv_json_str(root, "seed", "0", label, seed, sizeof seed)) ||
        (st = dlv_json_int(root, "micro_batch", 0, label, &micro)) ||
        (st = dlv_json_bool(root, "recompute", 0, label, &c->recompute)) ||
        (st = dlv_json_bool(root, "cache_features", 0, label, &c->cache_features)))
        goto out;
    c->sets = (unsigned)sets;
    c->optim.kind = opt ? DLV_OPT_SGD : DLV_OPT_ADAMW;
    c->optim.schedule = sched ? DLV_SCHED_COSINE : DLV_SCHED_CONSTANT;
    c->optim.warmup = warm;
    c->optim.total_steps = total;
    c->lora_rank = rank;
    c->lora_targets = (unsigned)targets;
    c->seed = strtoull(seed, NULL, 10);
    c->micro_batch = micro;
out:
    json_decref(root);
    return st;
}

dlv_status dlv_trainer_load(const dlv_model *m, dlv_backend *be, const char *dir,
                            dlv_trainer **out)
{
    *out = NULL;
    char *path = dlv_path_join(dir, "train_state.safetensors");
    if (!path) return dlv_error_nomem("a path", strlen(dir) + 32);
    dlv_st_file *f = NULL;
    dlv_adapter a;
    memset(&a, 0, sizeof a);
    dlv_status st = dlv_st_open(path, &f);
    const char *fmt = st ? NULL : dlv_st_metadata(f, "format");
    if (!st && (!fmt || strcmp(fmt, "disclvlm-train-state-1") != 0))
        st = dlv_error(DLV_E_FORMAT, "%s: not a libdisclvlm training state (metadata 'format')",
                       path);
    const char *step = st ? NULL : dlv_st_metadata(f, "step");
    const char *rng = st ? NULL : dlv_st_metadata(f, "rng");
    const char *n = st ? NULL : dlv_st_metadata(f, "n_params");
    const char *cfg_text = st ? NULL : dlv_st_metadata(f, "config");
    if (!st && (!step || !rng || strlen(rng) != 64 || !n || !cfg_text))
        st = dlv_error(DLV_E_FORMAT, "%s: metadata 'step', 'rng', 'n_params' or 'config' is "
                       "missing or malformed", path);
    dlv_train_config cfg;
    if (!st) st = parse_config(cfg_text, path, &cfg);
    if (!st) st = dlv_adapter_read(m, dir, &a);
    dlv_trainer *t = NULL;
    if (!st) st = dlv_trainer_new(m, be, &cfg, &a, &t);
    const dlv_st_tensor *mt = st ? NULL : dlv_st_find(f, "adam_m");
    const dlv_st_tensor *vt = st ? NULL : dlv_st_find(f, "adam_v");
    if (!st && (!mt || !vt || mt->dtype != DLV_DTYPE_F32 || vt->dtype != DLV_DTYPE_F32 ||
                mt->n_elements != t->n || vt->n_elements != t->n ||
                strtoull(n, NULL, 10) != t->n))
        st = dlv_error(DLV_E_FORMAT, "%s: adam_m / adam_v do not match the adapter (%zu "
                       "parameters)", path, t->n);
    if (!st) st = dlv_st_read_f32(mt, 0, t->n, t->m1);
    if (!st) st = dlv_st_read_f32(vt, 0, t->n, t->m2);
    if (!st && t->has_weights) {
        const dlv_st_tensor *wt = dlv_st_find(f, "weights");
        if (!wt || wt->dtype != DLV_DTYPE_F32 || wt->n_elements != t->n - t->off_w)
            st = dlv_error(DLV_E_FORMAT, "%s: tensor 'weights' is missing or does not match the "
                           "trained sets", path);
        else
            st = dlv_st_read_f32(wt, 0, wt->n_elements, t->params + t->off_w);
    }
    if (!st) {
        t->step = strtoll(step, NULL, 10);
        for (int i = 0; i < 4; i++) {
            char part[17];
            memcpy(part, rng + 16 * i, 16);
            part[16] = '\0';
            t->rng[i] = strtoull(part, NULL, 16);
        }
        *out = t;
        t = NULL;
    }
    dlv_trainer_free(t);
    dlv_adapter_release(&a);
    if (f) dlv_st_close(f);
    free(path);
    return st;
}

/* ---- saving the trained model ----------------------------------------- */

static const char *const model_files[] = {
    "config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
    "tokenizer.model", "special_tokens_map.json", "generation_config.json",
    "model.safetensors", NULL};

dlv_status dlv_trainer_save_model(const dlv_trainer *t, const char *dir, const char *dtype)
{
    return dlv_save_model_dir(t->m, &t->wv, model_files, dir, dtype);
}
