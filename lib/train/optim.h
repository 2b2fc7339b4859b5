/* Optimizer settings, the learning-rate schedule and the trained ranges of
 * the flat buffers (docs/training.md, "Optimizer"). The updates themselves
 * are backend ops (dlv_adamw_update, dlv_sgd_update: backend/backend.h),
 * run by the trainer core per range. */
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

#endif
