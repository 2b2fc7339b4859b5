/* Optimizers, learning-rate schedules and gradient clipping over flat f32
 * buffers (docs/training.md, "Optimizer"). Parameters, gradients and the
 * moments of the trainable set each live in one flat buffer; a list of
 * groups says which ranges get weight decay. */
#ifndef DLV_TRAIN_OPTIM_H
#define DLV_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum dlv_optimizer { DLV_OPT_ADAMW = 0, DLV_OPT_SGD } dlv_optimizer;
typedef enum dlv_schedule { DLV_SCHED_CONSTANT = 0, DLV_SCHED_COSINE } dlv_schedule;

typedef struct dlv_optim_config {
    dlv_optimizer kind;
    double lr, weight_decay, beta1, beta2, eps;
    dlv_schedule schedule;
    int64_t warmup, total_steps;  /* total_steps 0: cosine needs it; checked by the caller */
    double grad_clip;             /* global-norm clip; 0 = off */
} dlv_optim_config;

/* A range [offset, offset + n) of the flat buffers and whether it decays. */
typedef struct dlv_param_range {
    size_t offset, n;
    int decay;
} dlv_param_range;

/* The learning rate of the step that follows `done` completed steps:
 * linear warmup over `warmup` steps ((done + 1) / warmup of lr), then
 * constant, or cosine from lr to 0 at total_steps. */
double dlv_schedule_lr(const dlv_optim_config *c, int64_t done);

/* sqrt(sum g^2) over n floats, summed in double. */
double dlv_grad_norm(const float *g, size_t n);

/* One update of params in place. done = steps completed before this one
 * (Adam's bias correction uses done + 1). g is scaled by clip_scale (1 when
 * no clipping) as it is read. m and v are the Adam moments (unused by
 * SGD, may be NULL then). AdamW is PyTorch's: p *= 1 - lr * wd (decoupled,
 * only in decaying ranges), then p -= lr * mhat / (sqrt(vhat) + eps). SGD:
 * p -= lr * (g + wd * p) in decaying ranges (plain SGD, no momentum). */
void dlv_optim_update(const dlv_optim_config *c, double lr, int64_t done, float *params,
                      const float *g, float *m, float *v, const dlv_param_range *ranges,
                      size_t n_ranges, double clip_scale);

#endif
