/* AdamW / SGD, schedules and clipping (see optim.h). */
#include "train/optim.h"

#include <math.h>

double dlv_schedule_lr(const dlv_optim_config *c, int64_t done)
{
    if (c->warmup > 0 && done < c->warmup)
        return c->lr * (double)(done + 1) / (double)c->warmup;
    if (c->schedule == DLV_SCHED_CONSTANT) return c->lr;
    int64_t span = c->total_steps - c->warmup;
    if (span < 1) span = 1;
    double progress = (double)(done - c->warmup) / (double)span;
    if (progress > 1.0) progress = 1.0;
    return c->lr * 0.5 * (1.0 + cos(M_PI * progress));
}
