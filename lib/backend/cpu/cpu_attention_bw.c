/* Attention backward on the CPU, one (sequence, head) at a time, without a
 * saved probability matrix: P is recomputed from Q and K (S = scale Q K^T,
 * the masked f32 softmax normalised per row, zeros for a query with no
 * allowed key: the function the fused forward evaluates, which rounds its
 * online softmax within 1e-6 relative of this), then
 *   dV_g += P^T dO_h          dP = dO_h V_g^T
 *   dS    = P . (dP - rowsum(dP . P))     (softmax backward; rows on the pool)
 *   dQ_h += scale dS K_g      dK_g += scale dS^T Q_h
 * with g = h / (n_heads / n_kv_heads), so a kv head's dK, dV sum over its
 * query heads (in head order). The GEMMs (cpu_gemm.c) run straight on the
 * strided head slices, accumulating with beta = 1; the row passes run on the
 * pool between them (never both at once). Scratch: two [n_q, n_kv] f32
 * matrices per call. Masked keys and empty rows have P = 0, hence dS = 0:
 * they receive and pass on no gradient. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_backward.h"
#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

/* The masked softmax of score rows [begin, end) of s, in place (a pool
 * job): P as the forward defines it (cpu_flash.c computes the same
 * function tile by tile). */
typedef struct softmax_job {
    float *s;               /* [n_q, n_kv] scores, replaced by probabilities */
    const uint8_t *mask;    /* [n_kv] or NULL */
    int64_t n_kv;
    int64_t causal_offset;  /* key j allowed for j <= i + offset */
    int causal;
} softmax_job;

static int allowed(const softmax_job *j, int64_t i, int64_t k)
{
    if (j->mask && !j->mask[k]) return 0;
    return !j->causal || k <= i + j->causal_offset;
}

static void softmax_rows(void *ctx, int64_t begin, int64_t end)
{
    const softmax_job *j = ctx;
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

/* dP is replaced by dS here. */
typedef struct attn_bw_job {
    softmax_job p; /* .s: [n_q, n_kv] scores, replaced by P */
    float *dp;     /* [n_q, n_kv] dP, replaced by dS */
} attn_bw_job;

/* dS = P . (dP - sum_k dP_k P_k), the sum in double. */
static void dsoftmax_rows(void *ctx, int64_t begin, int64_t end)
{
    const attn_bw_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        const int64_t n_kv = j->p.n_kv;
        const float *p = j->p.s + i * n_kv;
        float *d = j->dp + i * n_kv;
        double dot = 0.0;
        for (int64_t k = 0; k < n_kv; k++) dot += (double)p[k] * (double)d[k];
        float m = (float)dot;
        for (int64_t k = 0; k < n_kv; k++) d[k] = p[k] * (d[k] - m);
    }
}

dlv_status dlv_cpu_attention_backward(dlv_backend *be, const dlv_attention_bw_args *a)
{
    /* No keys or no queries: the output was constant (zeros), no gradient. */
    if (a->batch == 0 || a->n_q == 0 || a->n_kv == 0) return DLV_OK;
    int64_t d = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int64_t ldq = a->n_heads * d, ldk = a->n_kv_heads * d;
    size_t plane = (size_t)a->n_q * (size_t)a->n_kv;
    float *s = malloc(2 * plane * sizeof(float));
    if (!s) return dlv_error_nomem("attention backward scratch", 2 * plane * sizeof(float));
    float *dp = s + plane;
    dlv_cpu_pool *pool = dlv_cpu_pool_of(be);
    int64_t grain = 8192 / a->n_kv + 1;
    int64_t nq = a->n_q, nkv = a->n_kv;
    dlv_status st = DLV_OK;
    for (int64_t b = 0; b < a->batch && st == DLV_OK; b++) {
        const float *qb = a->q + b * a->n_q * ldq, *dob = a->dout + b * a->n_q * ldq;
        const float *kb = a->k + b * a->n_kv * ldk, *vb = a->v + b * a->n_kv * ldk;
        float *dqb = a->dq + b * a->n_q * ldq;
        float *dkb = a->dk + b * a->n_kv * ldk, *dvb = a->dv + b * a->n_kv * ldk;
        attn_bw_job job = {.p = {.s = s, .mask = a->key_mask ? a->key_mask + b * a->n_kv : NULL,
                                 .n_kv = a->n_kv, .causal_offset = a->n_kv - a->n_q,
                                 .causal = a->causal},
                           .dp = dp};
        for (int64_t h = 0; h < a->n_heads && st == DLV_OK; h++) {
            int64_t g = h / group;
            const float *qh = qb + h * d, *doh = dob + h * d;
            const float *kg = kb + g * d, *vg = vb + g * d;
            /* P, as the forward. */
            st = dlv_cpu_sgemm(be, 0, 1, nq, nkv, d, a->scale, qh, ldq, kg, ldk, 0.0f, s, nkv);
            if (st != DLV_OK) break;
            dlv_cpu_pool_run(pool, a->n_q, grain, softmax_rows, &job.p);
            /* dV_g += P^T dO_h */
            st = dlv_cpu_sgemm(be, 1, 0, nkv, d, nq, 1.0f, s, nkv, doh, ldq, 1.0f, dvb + g * d,
                               ldk);
            /* dP = dO_h V_g^T, then dS in place */
            if (st == DLV_OK)
                st = dlv_cpu_sgemm(be, 0, 1, nq, nkv, d, 1.0f, doh, ldq, vg, ldk, 0.0f, dp, nkv);
            if (st != DLV_OK) break;
            dlv_cpu_pool_run(pool, a->n_q, grain, dsoftmax_rows, &job);
            /* dQ_h += scale dS K_g;  dK_g += scale dS^T Q_h */
            st = dlv_cpu_sgemm(be, 0, 0, nq, d, nkv, a->scale, dp, nkv, kg, ldk, 1.0f,
                               dqb + h * d, ldq);
            if (st == DLV_OK)
                st = dlv_cpu_sgemm(be, 1, 0, nkv, d, nq, a->scale, dp, nkv, qh, ldq, 1.0f,
                                   dkb + g * d, ldk);
        }
    }
    free(s);
    return st;
}
