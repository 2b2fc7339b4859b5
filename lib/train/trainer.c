/* The trainer core (see trainer.h and kind.h). */
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
#include "model/model.h"
#include "train/kind.h"
#include "train/loss.h"
#include "dist/comm.h"

struct dlv_trainer {
    const dlv_model *m;
    dlv_backend *be;
    dlv_train_config cfg;
    const dlv_train_kind *kind;
    void *ks;                     /* the kind's state */
    size_t n;                     /* floats in each flat buffer */
    dlv_buffer params, grads, m1, m2;
    dlv_param_range *ranges;      /* the trained ranges (host metadata) */
    size_t n_ranges, cap_ranges;
    size_t ls_off;                /* the trained logit scale; SIZE_MAX: not trained */
    uint64_t rng[4];
    int64_t step;
    /* Data-parallel training (docs/training.md "Distributed"): the ranks'
     * communicator, NULL for one process; the world size a loaded
     * checkpoint was written with (1 for one written by a single process). */
    dlv_comm *comm;
    int64_t saved_world;
};

void dlv_train_config_defaults(dlv_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->sets = DLV_TRAIN_DEFAULT_SETS;
    c->optim = (dlv_optim_config){DLV_OPT_ADAMW, 1e-4, 0.0, 0.9, 0.999, 1e-8,
                                  DLV_SCHED_CONSTANT, 0, 0, 0.0};
    c->lora_rank = 16;
    c->lora_alpha = 16;
    c->lora_targets = (1u << 7) - 1u; /* every LoRA module (model/lora.h) */
    c->ntp_weight = 1.0;
    c->contrastive = 1;
}

/* ---- services to the kinds ------------------------------------------------ */

const dlv_model *dlv_trainer_model(const dlv_trainer *t) { return t->m; }
dlv_backend *dlv_trainer_backend(const dlv_trainer *t) { return t->be; }
const dlv_train_config *dlv_trainer_config(const dlv_trainer *t) { return &t->cfg; }

void dlv_trainer_set_truncate(dlv_trainer *t, int truncate) { t->cfg.truncate = truncate; }
int64_t dlv_trainer_steps(const dlv_trainer *t) { return t ? t->step : 0; }

/* xoshiro256** seeded through splitmix64. */
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

float dlv_trainer_rand_sym(dlv_trainer *t)
{
    /* Uniform in [-1, 1) with 24 random bits. */
    return (float)((double)(rng_next(t->rng) >> 40) * (1.0 / 8388608.0) - 1.0);
}

size_t dlv_trainer_reserve(dlv_trainer *t, size_t n, int trained, int decay)
{
    const size_t off = t->n;
    t->n += n;
    if (trained && n > 0) {
        if (t->n_ranges == t->cap_ranges) {
            size_t cap = t->cap_ranges ? 2 * t->cap_ranges : 64;
            dlv_param_range *r = realloc(t->ranges, cap * sizeof *r);
            if (!r) {
                /* Remembered as an overflow: create fails on it. */
                t->n = SIZE_MAX;
                return off;
            }
            t->ranges = r;
            t->cap_ranges = cap;
        }
        t->ranges[t->n_ranges++] = (dlv_param_range){off, n, decay};
    }
    return off;
}

static float *at(const dlv_buffer *b, size_t offset)
{
    return (float *)((uintptr_t)dlv_buffer_ptr(b) + offset * sizeof(float));
}

float *dlv_trainer_params_at(const dlv_trainer *t, size_t offset) { return at(&t->params, offset); }
float *dlv_trainer_grads_at(const dlv_trainer *t, size_t offset) { return at(&t->grads, offset); }

static dlv_tensor tensor_over(const dlv_buffer *b, size_t offset, int ndim, const int64_t *shape)
{
    dlv_tensor x = {b, offset * sizeof(float), DLV_DTYPE_F32, ndim, {0, 0, 0, 0}};
    for (int i = 0; i < ndim && i < DLV_TENSOR_MAX_DIMS; i++) x.shape[i] = shape[i];
    return x;
}

dlv_tensor dlv_trainer_param_tensor(const dlv_trainer *t, size_t offset, int ndim,
                                    const int64_t *shape)
{
    return tensor_over(&t->params, offset, ndim, shape);
}

dlv_tensor dlv_trainer_grad_tensor(const dlv_trainer *t, size_t offset, int ndim,
                                   const int64_t *shape)
{
    return tensor_over(&t->grads, offset, ndim, shape);
}

void dlv_trainer_set_logit_scale_slot(dlv_trainer *t, size_t offset) { t->ls_off = offset; }

size_t dlv_trainer_chunk(const dlv_trainer *t, size_t n)
{
    return t->cfg.micro_batch > 0 && (size_t)t->cfg.micro_batch < n ? (size_t)t->cfg.micro_batch
                                                                      : n;
}

/* ---- set-up ---------------------------------------------------------------- */

void dlv_trainer_free(dlv_trainer *t)
{
    if (!t) return;
    if (t->kind && t->ks) t->kind->destroy(t->ks);
    dlv_buffer_free(&t->params);
    dlv_buffer_free(&t->grads);
    dlv_buffer_free(&t->m1);
    dlv_buffer_free(&t->m2);
    free(t->ranges);
    free(t);
}

/* The kind of the model (model/model.h names it). */
static const dlv_train_kind *kind_of(const dlv_model *m)
{
    static const dlv_train_kind *const kinds[] = {&dlv_train_kind_llava, &dlv_train_kind_clip};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(kinds[i]->name, dlv_model_kind_name(m)) == 0) return kinds[i];
    return NULL;
}

dlv_status dlv_trainer_new(const dlv_model *m, dlv_backend *be, const dlv_train_config *cfg,
                           const dlv_adapter *from, dlv_trainer **out)
{
    *out = NULL;
    const dlv_train_kind *kind = kind_of(m);
    if (!kind)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: training a '%s' model is not supported",
                         dlv_model_dir(m), dlv_model_kind_name(m));
    dlv_trainer *t = calloc(1, sizeof *t);
    if (!t) return dlv_error_nomem("trainer", sizeof *t);
    t->m = m;
    t->be = be;
    t->cfg = *cfg;
    t->kind = kind;
    t->ls_off = SIZE_MAX;
    uint64_t seed = cfg->seed;
    for (int i = 0; i < 4; i++) t->rng[i] = splitmix64(&seed);
    dlv_status st = kind->create(t, from, &t->ks);
    if (!st && t->n == SIZE_MAX) st = dlv_error_nomem("trainable ranges", 64);
    const size_t bytes = (t->n ? t->n : 1) * sizeof(float);
    if (!st && ((st = dlv_buffer_alloc(be, bytes, &t->params)) ||
                (st = dlv_buffer_alloc(be, bytes, &t->grads)) ||
                (st = dlv_buffer_alloc(be, bytes, &t->m1)) ||
                (st = dlv_buffer_alloc(be, bytes, &t->m2))))
        st = dlv_error_prefix(st, "trainable parameters (4 x %zu floats)", t->n);
    if (!st && ((st = dlv_buffer_zero(&t->params, 0, bytes)) ||
                (st = dlv_buffer_zero(&t->grads, 0, bytes)) ||
                (st = dlv_buffer_zero(&t->m1, 0, bytes)) ||
                (st = dlv_buffer_zero(&t->m2, 0, bytes))))
        st = dlv_error_prefix(st, "trainable parameters");
    if (!st) st = kind->init(t->ks, t);
    if (st) {
        dlv_trainer_free(t);
        return st;
    }
    *out = t;
    return DLV_OK;
}

/* ---- the step --------------------------------------------------------------- */

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

/* Phase 2 of the contrastive loss, on the host: from the normalised
 * embeddings of the n_all examples of the (global) batch, v and t [n_all,
 * dim] each, the loss and its gradients, written over v and t; dls: the
 * logit scale's gradient. */
static dlv_status loss_and_grad(dlv_trainer *t, float *v, float *tx, size_t n_all, int64_t dim,
                                double *loss, double *dls)
{
    float ls = 0;
    dlv_status st = t->kind->logit_scale(t->ks, t, &ls);
    if (st) return st;
    const size_t floats = n_all * (size_t)dim;
    float *g = malloc(2 * (floats ? floats : 1) * sizeof *g);
    if (!g) return dlv_error_nomem("contrastive gradients", 2 * floats * sizeof(float));
    dlv_contrastive_loss(v, tx, (int64_t)n_all, dim, (double)ls, loss, g, g + floats, dls);
    memcpy(v, g, floats * sizeof *g);
    memcpy(tx, g + floats, floats * sizeof *g);
    free(g);
    return DLV_OK;
}

/* Data-parallel: every rank's embeddings of both sides, in rank order, as
 * [2, n_all, dim] in *all; *first receives this rank's first row in it. The
 * ranks may hold different numbers of examples (a skipped bad example). */
static dlv_status gather_embeddings(dlv_trainer *t, const float *mine, size_t n, int64_t dim,
                                    float **all, size_t *n_all, size_t *first)
{
    const int world = dlv_comm_size_of(t->comm), rank = dlv_comm_rank_of(t->comm);
    int64_t *counts = malloc((size_t)world * sizeof *counts);
    const int64_t n64 = (int64_t)n;
    if (!counts) return dlv_error_nomem("batch sizes", (size_t)world * 8);
    dlv_status st = dlv_comm_all_gather(t->comm, &n64, sizeof n64, counts);
    size_t max = 0, total = 0;
    for (int r = 0; r < world && !st; r++) {
        if (r == rank) *first = total;
        total += (size_t)counts[r];
        if ((size_t)counts[r] > max) max = (size_t)counts[r];
    }
    /* Fixed-size pieces: [2, max, dim] from every rank, then packed. */
    const size_t piece = 2 * max * (size_t)dim;
    float *send = NULL, *recv = NULL;
    if (!st) {
        send = calloc(piece ? piece : 1, sizeof *send);
        recv = malloc((size_t)world * (piece ? piece : 1) * sizeof *recv);
        *all = malloc(2 * (total ? total : 1) * (size_t)dim * sizeof **all);
        if (!send || !recv || !*all)
            st = dlv_error_nomem("gathered embeddings", (size_t)world * piece * sizeof(float));
    }
    if (!st) {
        for (int side = 0; side < 2; side++)
            memcpy(send + (size_t)side * max * (size_t)dim, mine + (size_t)side * n * (size_t)dim,
                   n * (size_t)dim * sizeof *send);
        st = dlv_comm_all_gather(t->comm, send, piece * sizeof *send, recv);
    }
    for (int side = 0; side < 2 && !st; side++) {
        size_t at = 0;
        for (int r = 0; r < world; r++) {
            memcpy(*all + ((size_t)side * total + at) * (size_t)dim,
                   recv + (size_t)r * piece + (size_t)side * max * (size_t)dim,
                   (size_t)counts[r] * (size_t)dim * sizeof **all);
            at += (size_t)counts[r];
        }
    }
    if (st) {
        free(*all);
        *all = NULL;
    }
    *n_all = total;
    free(counts);
    free(send);
    free(recv);
    return st;
}

/* Phase 2 of the contrastive loss: from the normalised embeddings of both
 * sides in emb [2, n, dim], the loss and its gradient on the host, which
 * goes back to the device as dE [2, n, dim] in emb. Data-parallel, the loss
 * is that of the global batch (every rank's embeddings, all-gathered; each
 * rank computes it whole, identically) and each rank takes its own rows of
 * dE; the logit scale's gradient is counted once, on rank 0, since the
 * ranks' gradients are summed. */
static dlv_status contrastive_grad(dlv_trainer *t, size_t n, int64_t dim, dlv_buffer *emb,
                                   double *loss)
{
    const size_t side_floats = n * (size_t)dim;
    float *host = malloc(2 * (side_floats ? side_floats : 1) * sizeof *host);
    dlv_status st = host ? DLV_OK : dlv_error_nomem("embeddings", 2 * side_floats * 4);
    if (!st) st = dlv_buffer_download(host, emb, 0, 2 * side_floats * sizeof *host);
    double dls = 0;
    if (!st && !t->comm) {
        st = loss_and_grad(t, host, host + side_floats, n, dim, loss, &dls);
    } else if (!st) {
        float *all = NULL;
        size_t n_all = 0, first = 0;
        st = gather_embeddings(t, host, n, dim, &all, &n_all, &first);
        if (!st) st = loss_and_grad(t, all, all + n_all * (size_t)dim, n_all, dim, loss, &dls);
        for (int side = 0; side < 2 && !st; side++)
            memcpy(host + (size_t)side * side_floats,
                   all + ((size_t)side * n_all + first) * (size_t)dim,
                   side_floats * sizeof *host);
        if (dlv_comm_rank_of(t->comm) != 0) dls = 0;
        free(all);
    }
    if (!st) st = dlv_buffer_upload(emb, 0, host, 2 * side_floats * sizeof *host);
    if (!st && t->ls_off != SIZE_MAX) {
        const float g = (float)dls;
        st = dlv_buffer_upload(&t->grads, t->ls_off * sizeof(float), &g, sizeof g);
    }
    free(host);
    return st;
}

/* Data-parallel: the sum of every rank's gradients, in place (staged
 * through the host; identical on every rank, so the optimizer keeps the
 * ranks' parameters equal). */
static dlv_status sum_gradients(dlv_trainer *t)
{
    if (!t->comm || t->n == 0) return DLV_OK;
    float *host = malloc(t->n * sizeof *host);
    dlv_status st = host ? DLV_OK : dlv_error_nomem("gradients", t->n * sizeof(float));
    if (!st) st = dlv_buffer_download(host, &t->grads, 0, t->n * sizeof *host);
    if (!st) st = dlv_comm_sum_f32(t->comm, host, t->n);
    if (!st) st = dlv_buffer_upload(&t->grads, 0, host, t->n * sizeof *host);
    free(host);
    return st;
}

/* sqrt(sum of squares) over the trained ranges, each summed on the device. */
static dlv_status grad_norm(dlv_trainer *t, double *out)
{
    dlv_buffer sums = {0};
    double *host = malloc((t->n_ranges ? t->n_ranges : 1) * sizeof *host);
    dlv_status st = host ? dlv_buffer_alloc(t->be, (t->n_ranges ? t->n_ranges : 1) *
                                                       sizeof(double), &sums)
                         : dlv_error_nomem("gradient norms", t->n_ranges * 8);
    double *dsums = dlv_buffer_ptr(&sums);
    for (size_t r = 0; r < t->n_ranges && !st; r++)
        st = dlv_sum_squares(t->be, dsums + r, at(&t->grads, t->ranges[r].offset),
                             (int64_t)t->ranges[r].n);
    if (!st && t->n_ranges) st = dlv_buffer_download(host, &sums, 0, t->n_ranges * sizeof *host);
    double sq = 0;
    for (size_t r = 0; r < t->n_ranges && !st; r++) sq += host[r];
    *out = sqrt(sq);
    dlv_buffer_free(&sums);
    free(host);
    return st;
}

/* The optimizer over every trained range, as backend ops. */
static dlv_status update(dlv_trainer *t, double lr, double clip)
{
    const dlv_optim_config *c = &t->cfg.optim;
    dlv_status st = DLV_OK;
    if (c->kind == DLV_OPT_SGD) {
        for (size_t r = 0; r < t->n_ranges && !st; r++) {
            const dlv_param_range *pr = &t->ranges[r];
            st = dlv_sgd_update(t->be, at(&t->params, pr->offset), at(&t->grads, pr->offset),
                                (int64_t)pr->n, (float)lr,
                                pr->decay ? (float)c->weight_decay : 0.0f, (float)clip);
        }
        return st;
    }
    /* PyTorch's AdamW: bias corrections in double, the update in float. */
    const double step = (double)(t->step + 1);
    const double bc1 = 1.0 - pow(c->beta1, step), bc2 = 1.0 - pow(c->beta2, step);
    for (size_t r = 0; r < t->n_ranges && !st; r++) {
        const dlv_param_range *pr = &t->ranges[r];
        const int decay = pr->decay && c->weight_decay != 0.0;
        const dlv_adamw_args a = {
            .struct_size = sizeof a,
            .params = at(&t->params, pr->offset), .m = at(&t->m1, pr->offset),
            .v = at(&t->m2, pr->offset), .grads = at(&t->grads, pr->offset),
            .n = (int64_t)pr->n, .step_size = (float)(lr / bc1), .beta1 = (float)c->beta1,
            .beta2 = (float)c->beta2, .eps = (float)c->eps, .bc2_sqrt = (float)sqrt(bc2),
            .decay_mul = decay ? (float)(1.0 - lr * c->weight_decay) : 1.0f,
            .grad_scale = (float)clip,
        };
        st = dlv_adamw_update(t->be, &a);
    }
    return st;
}

/* As OpenCLIP: the stored scale stays at or below log(100). */
static dlv_status clamp_logit_scale(dlv_trainer *t)
{
    if (t->ls_off == SIZE_MAX) return DLV_OK;
    float ls = 0;
    dlv_status st = dlv_buffer_download(&ls, &t->params, t->ls_off * sizeof(float), sizeof ls);
    if (!st && ls > (float)DLV_LOGIT_SCALE_MAX) {
        ls = (float)DLV_LOGIT_SCALE_MAX;
        st = dlv_buffer_upload(&t->params, t->ls_off * sizeof(float), &ls, sizeof ls);
    }
    return st;
}

dlv_status dlv_trainer_step(dlv_trainer *t, const dlv_train_example *ex, size_t n,
                            dlv_train_stats *stats)
{
    const dlv_model *m = t->m;
    size_t dim = 0;
    dlv_status st = dlv_model_embed_dim(m, &dim);
    if (st) return st;
    st = t->kind->prepare(t->ks, t, ex, n);
    /* Data-parallel: the kind's own loss (next-token prediction) is a mean
     * over the global batch's predictions, so its count is summed first. */
    if (!st && t->comm && t->kind->loss_count) {
        double count = (double)t->kind->loss_count(t->ks);
        st = dlv_comm_sum_f64(t->comm, &count, 1);
        if (!st) t->kind->set_loss_count(t->ks, (int64_t)count);
    }
    /* emb: the embeddings of both sides, then their gradients dE [2, n, dim];
     * scratch: the embeddings of one micro-batch in phase 3. */
    dlv_buffer emb = {0}, scratch = {0};
    if (!st) st = dlv_buffer_alloc(t->be, 2 * n * dim * sizeof(float), &emb);
    if (!st) st = dlv_buffer_alloc(t->be, dlv_trainer_chunk(t, n) * dim * sizeof(float), &scratch);
    if (!st) st = dlv_buffer_zero(&t->grads, 0, (t->n ? t->n : 1) * sizeof(float));
    double lc = 0;
    const size_t chunk = dlv_trainer_chunk(t, n), side_floats = n * dim;
    /* GradCache (Gao et al. 2021) when the batch is cut into micro-batches:
     * phase 1 embeds both sides without tapes, phase 2 computes the loss and
     * dE, phase 3 runs each micro-batch again with its tape and backward.
     * When the batch is one micro-batch, phase 1 would repeat phase 3's
     * forwards: both sides run once with their tapes (the kinds keep one
     * per side), then the loss, then both backwards. */
    const int one_pass = t->cfg.contrastive && chunk >= n;
    if (!st && one_pass) {
        for (int side = 0; side < 2 && !st; side++)
            st = t->kind->forward(t->ks, t, side == 0, 0, n, 1, at(&emb, side * side_floats));
        if (!st) st = contrastive_grad(t, n, (int64_t)dim, &emb, &lc);
        for (int side = 0; side < 2 && !st; side++)
            st = t->kind->backward(t->ks, t, side == 0, at(&emb, side * side_floats));
    } else if (!st && t->cfg.contrastive) {
        for (int side = 0; side < 2 && !st; side++)
            for (size_t f = 0; f < n && !st; f += chunk)
                st = t->kind->forward(t->ks, t, side == 0, f, n - f < chunk ? n - f : chunk, 0,
                                      at(&emb, side * side_floats + f * dim));
        if (!st) st = contrastive_grad(t, n, (int64_t)dim, &emb, &lc);
    }
    /* Phase 3: micro-batches with tapes. The image side also carries the
     * kind's own losses, so it runs without the contrastive loss too. */
    for (int side = 0; side < 2 && !st && !one_pass; side++) {
        if (side == 1 && !t->cfg.contrastive) break;
        for (size_t f = 0; f < n && !st; f += chunk) {
            const size_t count = n - f < chunk ? n - f : chunk;
            st = t->kind->forward(t->ks, t, side == 0, f, count, 1, at(&scratch, 0));
            if (!st)
                st = t->kind->backward(t->ks, t, side == 0,
                                       t->cfg.contrastive
                                           ? at(&emb, (size_t)side * n * dim + f * dim)
                                           : NULL);
        }
    }
    double extra = 0, gnorm = 0;
    uint64_t tokens = 0;
    if (!st) t->kind->step_losses(t->ks, &extra, &tokens);
    if (!st && t->comm) {
        /* Each rank's share of the global mean, and its tokens. */
        double v[2] = {extra, (double)tokens};
        st = dlv_comm_sum_f64(t->comm, v, 2);
        extra = v[0];
        tokens = (uint64_t)v[1];
    }
    const double loss = lc + t->cfg.ntp_weight * extra;
    if (!st) st = sum_gradients(t);
    if (!st) st = grad_norm(t, &gnorm);
    if (!st && (!isfinite(loss) || !isfinite(gnorm)))
        st = dlv_error(DLV_E_NUMERIC, "%s: training step %" PRId64 ": the loss (%g) or the "
                       "gradient norm (%g) is not finite; nothing was updated", dlv_model_dir(m),
                       t->step + 1, loss, gnorm);
    double clip = 1.0;
    if (t->cfg.optim.grad_clip > 0 && gnorm > t->cfg.optim.grad_clip)
        clip = t->cfg.optim.grad_clip / (gnorm + 1e-6);
    const double lr = dlv_schedule_lr(&t->cfg.optim, t->step);
    if (!st) st = update(t, lr, clip);
    if (!st) st = clamp_logit_scale(t);
    float ls = 0;
    if (!st) st = t->kind->logit_scale(t->ks, t, &ls);
    if (!st) {
        t->step++;
        dlv_train_stats o = {sizeof o, loss, lc, extra, gnorm, lr, exp((double)ls),
                             (uint64_t)t->step, tokens};
        fill_stats(stats, &o);
    }
    t->kind->end_step(t->ks);
    dlv_buffer_free(&emb);
    dlv_buffer_free(&scratch);
    return st;
}

/* ---- export, checkpoints, saved models --------------------------------------- */

dlv_status dlv_trainer_export(dlv_trainer *t, dlv_adapter *out)
{
    if (!t->kind->export_adapter)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: a %s model has no adapter", dlv_model_dir(t->m),
                         t->kind->name);
    return t->kind->export_adapter(t->ks, t, out);
}

dlv_status dlv_trainer_save_model(dlv_trainer *t, const char *dir, const char *dtype)
{
    return t->kind->save_model(t->ks, t, dir, dtype);
}

static json_t *config_json(const dlv_train_config *c)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
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
                     "seed", seed, "micro_batch", (json_int_t)c->micro_batch,
                     "recompute", c->recompute, "cache_features", c->cache_features);
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
        (st = dlv_json_int(root, "lora_targets", (1 << 7) - 1, label, &targets)) ||
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

#define STATE_FORMAT "disclvlm-train-state-2"

/* train_state.safetensors: the flat parameters and Adam moments, step, RNG
 * state, config and the model kind. */
static dlv_status save_state(const dlv_trainer *t, const char *dir)
{
    json_t *cfg = config_json(&t->cfg);
    char *cfg_text = cfg ? json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(cfg);
    if (!cfg_text) return dlv_error(DLV_E_NOMEM, "%s: cannot build the training state", dir);
    const size_t bytes = t->n * sizeof(float);
    float *host = malloc(3 * (bytes ? bytes : 1));
    dlv_status st = host ? DLV_OK : dlv_error_nomem("training state", 3 * bytes);
    if (!st) st = dlv_buffer_download(host, &t->params, 0, bytes);
    if (!st) st = dlv_buffer_download(host + t->n, &t->m1, 0, bytes);
    if (!st) st = dlv_buffer_download(host + 2 * t->n, &t->m2, 0, bytes);
    char step[32], rng[96], n[32], world[16];
    snprintf(world, sizeof world, "%d", dlv_comm_size_of(t->comm));
    snprintf(step, sizeof step, "%" PRId64, t->step);
    snprintf(rng, sizeof rng, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             t->rng[0], t->rng[1], t->rng[2], t->rng[3]);
    snprintf(n, sizeof n, "%zu", t->n);
    const int64_t shape[1] = {(int64_t)t->n};
    const dlv_st_write_entry e[3] = {{"params", DLV_DTYPE_F32, 1, shape, host},
                                     {"adam_m", DLV_DTYPE_F32, 1, shape, host + t->n},
                                     {"adam_v", DLV_DTYPE_F32, 1, shape, host + 2 * t->n}};
    const char *keys[7] = {"format", "kind", "step", "rng", "n_params", "config", "world_size"};
    const char *vals[7] = {STATE_FORMAT, t->kind->name, step, rng, n, cfg_text, world};
    char *path = st ? NULL : dlv_path_join(dir, "train_state.safetensors");
    if (!st && !path) st = dlv_error_nomem("a path", strlen(dir) + 32);
    if (!st) st = dlv_st_write(path, e, 3, keys, vals, 7);
    free(path);
    free(host);
    free(cfg_text);
    return st;
}

dlv_status dlv_trainer_check_outputs(const dlv_trainer *t, const char *ckpt_dir,
                                     const char *model_dir)
{
    dlv_status st = DLV_OK;
    if (ckpt_dir) st = dlv_dir_save_check(ckpt_dir, t->kind->checkpoint_files);
    if (!st && model_dir) st = dlv_dir_save_check(model_dir, t->kind->model_files);
    return st;
}

dlv_status dlv_trainer_save(dlv_trainer *t, const char *dir)
{
    const char *const *files = t->kind->checkpoint_files;
    char *tmp = NULL;
    dlv_status st = dlv_dir_save_begin(dir, files, &tmp);
    if (!st && t->kind->save_files) st = t->kind->save_files(t->ks, t, tmp);
    if (!st) st = save_state(t, tmp);
    if (!st) st = dlv_dir_save_commit(tmp, dir, files);
    if (st && tmp) dlv_dir_save_abort(tmp, files);
    free(tmp);
    return st;
}

/* Reads tensor `name` [t->n] of the state file into buf. */
static dlv_status load_vector(const dlv_st_file *f, const char *path, const char *name, size_t n,
                              dlv_buffer *buf)
{
    const dlv_st_tensor *x = dlv_st_find(f, name);
    if (!x || x->dtype != DLV_DTYPE_F32 || x->n_elements != n)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s' is missing or does not match the "
                         "trainable set (%zu parameters)", path, name, n);
    return n ? dlv_buffer_upload(buf, 0, x->data, n * sizeof(float)) : DLV_OK;
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
    if (!st && (!fmt || strcmp(fmt, STATE_FORMAT) != 0))
        st = dlv_error(DLV_E_FORMAT, "%s: not a libdisclvlm training state of this version "
                       "(metadata 'format' is not '%s')", path, STATE_FORMAT);
    const char *kind = st ? NULL : dlv_st_metadata(f, "kind");
    const char *step = st ? NULL : dlv_st_metadata(f, "step");
    const char *rng = st ? NULL : dlv_st_metadata(f, "rng");
    const char *n = st ? NULL : dlv_st_metadata(f, "n_params");
    const char *cfg_text = st ? NULL : dlv_st_metadata(f, "config");
    if (!st && (!kind || !step || !rng || strlen(rng) != 64 || !n || !cfg_text))
        st = dlv_error(DLV_E_FORMAT, "%s: metadata 'kind', 'step', 'rng', 'n_params' or "
                       "'config' is missing or malformed", path);
    if (!st && strcmp(kind, dlv_model_kind_name(m)) != 0)
        st = dlv_error(DLV_E_INVALID_ARG, "%s: a checkpoint of a '%s' model, not of this '%s' "
                       "model", path, kind, dlv_model_kind_name(m));
    dlv_train_config cfg;
    if (!st) st = parse_config(cfg_text, path, &cfg);
    /* Kinds with adapters start from the checkpoint's adapter files. */
    const dlv_train_kind *tk = kind_of(m);
    const int has_adapter = !st && tk && tk->export_adapter;
    if (has_adapter) st = dlv_adapter_read(m, dir, &a);
    dlv_trainer *t = NULL;
    if (!st) st = dlv_trainer_new(m, be, &cfg, has_adapter ? &a : NULL, &t);
    if (!st && strtoull(n, NULL, 10) != t->n)
        st = dlv_error(DLV_E_FORMAT, "%s: n_params %s does not match the trainable set (%zu)",
                       path, n, t->n);
    if (!st) st = load_vector(f, path, "params", t->n, &t->params);
    if (!st) st = load_vector(f, path, "adam_m", t->n, &t->m1);
    if (!st) st = load_vector(f, path, "adam_v", t->n, &t->m2);
    if (!st) {
        const char *world = dlv_st_metadata(f, "world_size");
        t->saved_world = world ? strtoll(world, NULL, 10) : 1;
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

dlv_status dlv_trainer_set_comm(dlv_trainer *t, dlv_comm *comm)
{
    const int world = dlv_comm_size_of(comm);
    if (t->saved_world && t->saved_world != world)
        return dlv_error(DLV_E_INVALID_ARG, "the checkpoint was written by a run of %" PRId64
                         " process%s, this one has %d: resume with the same number of ranks "
                         "(the batch split and the data order depend on it)", t->saved_world,
                         t->saved_world == 1 ? "" : "es", world);
    t->comm = comm;
    return DLV_OK;
}

const dlv_tensor *dlv_trainer_tensors(const dlv_trainer *t) { return t->kind->tensors(t->ks); }

const void *dlv_trainer_encode_view(const dlv_trainer *t) { return t->kind->encode_view(t->ks); }

dlv_status dlv_trainer_logit_scale(dlv_trainer *t, float *out)
{
    return t->kind->logit_scale(t->ks, t, out);
}
