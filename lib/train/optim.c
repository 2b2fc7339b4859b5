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

double dlv_grad_norm(const float *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    return sqrt(s);
}

void dlv_optim_update(const dlv_optim_config *c, double lr, int64_t done, float *params,
                      const float *g, float *m, float *v, const dlv_param_range *ranges,
                      size_t n_ranges, double clip_scale)
{
    const float flr = (float)lr, fscale = (float)clip_scale;
    if (c->kind == DLV_OPT_SGD) {
        const float wd = (float)c->weight_decay;
        for (size_t r = 0; r < n_ranges; r++) {
            float *p = params + ranges[r].offset;
            const float *gr = g + ranges[r].offset;
            const int decay = ranges[r].decay && wd != 0.0f;
            for (size_t i = 0; i < ranges[r].n; i++) {
                float gi = gr[i] * fscale;
                if (decay) gi += wd * p[i];
                p[i] -= flr * gi;
            }
        }
        return;
    }
    /* PyTorch's AdamW (foreach=False), in float as it computes. */
    const double t = (double)(done + 1);
    const float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    const double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
    const float step_size = (float)(lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float decay_mul = (float)(1.0 - lr * c->weight_decay);
    for (size_t r = 0; r < n_ranges; r++) {
        float *p = params + ranges[r].offset, *mr = m + ranges[r].offset, *vr = v + ranges[r].offset;
        const float *gr = g + ranges[r].offset;
        const int decay = ranges[r].decay && c->weight_decay != 0.0;
        for (size_t i = 0; i < ranges[r].n; i++) {
            float gi = gr[i] * fscale;
            if (decay) p[i] *= decay_mul;
            mr[i] = b1 * mr[i] + (1.0f - b1) * gi;
            vr[i] = b2 * vr[i] + (1.0f - b2) * gi * gi;
            float denom = sqrtf(vr[i]) / bc2_sqrt + eps;
            p[i] -= step_size * (mr[i] / denom);
        }
    }
}
