/* Attention on the CPU, one (sequence, head) at a time: the scores
 * S = scale * Q K^T and the output P V are GEMMs (cpu_gemm.c) straight on
 * the strided head slices (no transposed copies), and the masked softmax of
 * S's rows runs on the worker pool between them. The scratch is one [n_q, n_kv] score matrix per call. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

static int allowed(const dlv_cpu_softmax_job *j, int64_t i, int64_t k)
{
    if (j->mask && !j->mask[k]) return 0;
    return !j->causal || k <= i + j->causal_offset;
}

void dlv_cpu_softmax_rows(void *ctx, int64_t begin, int64_t end)
{
    const dlv_cpu_softmax_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        float *row = j->s + i * j->n_kv;
        float mx = -INFINITY;
        int any = 0;
        for (int64_t k = 0; k < j->n_kv; k++)
            if (allowed(j, i, k)) {
                if (!any || row[k] > mx) mx = row[k];
                any = 1;
            }
        if (!any) {
            /* No key to attend to: zeros (documented), not 0/0. */
            for (int64_t k = 0; k < j->n_kv; k++) row[k] = 0.0f;
            continue;
        }
        double sum = 0.0;
        for (int64_t k = 0; k < j->n_kv; k++) {
            float e = allowed(j, i, k) ? expf(row[k] - mx) : 0.0f;
            row[k] = e;
            sum += (double)e;
        }
        float inv = (float)sum;
        for (int64_t k = 0; k < j->n_kv; k++) row[k] = row[k] / inv;
    }
}

dlv_status dlv_cpu_attention(dlv_backend *be, const dlv_attention_args *a)
{
    if (a->batch == 0 || a->n_q == 0 || a->n_heads == 0) return DLV_OK;
    int64_t d = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int64_t ldq = a->n_heads * d, ldk = a->n_kv_heads * d;
    if (a->n_kv == 0 || d == 0) {
        /* Nothing to attend to (every row fully masked), or empty heads. */
        for (int64_t r = 0; r < a->batch * a->n_q; r++)
            for (int64_t c = 0; c < ldq; c++) a->out[r * ldq + c] = 0.0f;
        return DLV_OK;
    }
    size_t bytes = (size_t)a->n_q * (size_t)a->n_kv * sizeof(float);
    float *s = malloc(bytes);
    if (!s) return dlv_error_nomem("attention scores", bytes);
    dlv_cpu_pool *pool = dlv_cpu_pool_of(be);
    int64_t grain = 8192 / a->n_kv + 1;
    dlv_status st = DLV_OK;
    for (int64_t b = 0; b < a->batch && st == DLV_OK; b++) {
        const float *qb = a->q + b * a->n_q * ldq;
        const float *kb = a->k + b * a->n_kv * ldk;
        const float *vb = a->v + b * a->n_kv * ldk;
        float *ob = a->out + b * a->n_q * ldq;
        dlv_cpu_softmax_job job = {.s = s, .mask = a->key_mask ? a->key_mask + b * a->n_kv : NULL,
                                   .n_kv = a->n_kv, .causal_offset = a->n_kv - a->n_q,
                                   .causal = a->causal};
        for (int64_t h = 0; h < a->n_heads && st == DLV_OK; h++) {
            int64_t g = h / group;
            st = dlv_cpu_sgemm(be, 0, 1, a->n_q, a->n_kv, d, a->scale, qb + h * d, ldq,
                               kb + g * d, ldk, 0.0f, s, a->n_kv);
            if (st != DLV_OK) break;
            dlv_cpu_pool_run(pool, a->n_q, grain, dlv_cpu_softmax_rows, &job);
            st = dlv_cpu_sgemm(be, 0, 0, a->n_q, d, a->n_kv, 1.0f, s, a->n_kv, vb + g * d, ldk,
                               0.0f, ob + h * d, ldq);
        }
    }
    free(s);
    return st;
}
