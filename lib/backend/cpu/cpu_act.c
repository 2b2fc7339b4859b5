/* Elementwise activations, each PyTorch's f32 formula (see backend.h). */
#include <math.h>

#include "backend/cpu/cpu_internal.h"

/* Elements per chunk handed to a thread. */
#define ACT_GRAIN 16384

static float silu(float x)
{
    return x / (1.0f + expf(-x));
}

static float act_one(dlv_op_act act, float x)
{
    switch (act) {
    case DLV_OP_ACT_QUICK_GELU:
        /* x * torch.sigmoid(1.702 * x) */
        return x * (1.0f / (1.0f + expf(-(1.702f * x))));
    case DLV_OP_ACT_GELU:
        /* ATen: x * 0.5 * (1 + erf(x * M_SQRT1_2)) */
        return x * 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
    case DLV_OP_ACT_GELU_TANH: {
        /* ATen: kBeta = M_SQRT2 * M_2_SQRTPI * 0.5 (= sqrt(2/pi)),
         * 0.5 * x * (1 + tanh(kBeta * (x + 0.044715 * x^3))) */
        const float beta = (float)(M_SQRT2 * M_2_SQRTPI * 0.5);
        const float kappa = 0.044715f;
        float inner = beta * (x + kappa * x * x * x);
        return 0.5f * x * (1.0f + tanhf(inner));
    }
    case DLV_OP_ACT_RELU:
        return x < 0.0f ? 0.0f : x; /* torch.relu keeps NaN */
    default: /* DLV_OP_ACT_SILU; the wrapper admits nothing else */
        return silu(x);
    }
}

typedef struct act_job {
    dlv_op_act act;
    float *out;
    const float *inp, *up;
} act_job;

static void act_range(void *ctx, int64_t begin, int64_t end)
{
    const act_job *j = ctx;
    for (int64_t i = begin; i < end; i++) j->out[i] = act_one(j->act, j->inp[i]);
}

dlv_status dlv_cpu_activation(dlv_backend *be, dlv_op_act act, float *out,
                              const float *inp, int64_t n)
{
    act_job j = {.act = act, .out = out, .inp = inp};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n, ACT_GRAIN, act_range, &j);
    return DLV_OK;
}

static void swiglu_range(void *ctx, int64_t begin, int64_t end)
{
    const act_job *j = ctx;
    for (int64_t i = begin; i < end; i++) j->out[i] = silu(j->inp[i]) * j->up[i];
}

dlv_status dlv_cpu_swiglu(dlv_backend *be, float *out, const float *gate, const float *up,
                          int64_t n)
{
    act_job j = {.out = out, .inp = gate, .up = up};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n, ACT_GRAIN, swiglu_range, &j);
    return DLV_OK;
}
