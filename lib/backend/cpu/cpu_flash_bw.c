/* Fused attention backward on the CPU, flash-attention style: nothing of
 * size n_q x n_kv exists. One work item is a (sequence, kv head): it owns
 * that head's dK and dV rows and the dQ rows of its query heads, so items
 * never write the same memory, and visits its query heads and their blocks
 * of FLASH_QB queries in order (the result is the same for any thread
 * count). For each query block:
 *   1. the forward over the block (flash_block) gives the running
 *      maxima m, the sums l and O; D = rowsum(dO . O / l);
 *   2. for each block of FLASH_KB keys (the causal bound skips the rest):
 *      S^T = K Q^T, P^T = exp(scale S^T - m) / l (0 where masked),
 *      dP^T = V dO^T, dS^T = P^T . (dP^T - D),
 *      dV += P dO^T's transpose (P^T dO), dK += scale dS^T Q,
 *      dQ += scale dS K (accumulated over the key blocks, added at the end).
 * P is the forward's function (the same maxima and sums), rounded as the
 * fused forward rounds it. The products are the shared 4-row kernel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backward.h"
#include "backend/cpu/cpu_flash.h"
#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

/* The backward's tiles beside the forward's. */
typedef struct bw_tiles {
    float *dout;  /* [FLASH_QB][dp] the block's dO rows, zero-padded */
    float *doutt; /* [d][FLASH_QB]  dO^T */
    float *q;     /* [FLASH_QB][dp] the block's Q rows, zero-padded */
    float *dq;    /* [FLASH_QB][dp] dQ of the block, summed over key blocks */
    float *dpt;   /* [FLASH_KB][FLASH_QB] dP^T, then dS^T */
    float *tmp;   /* [FLASH_KB][dp] one product's rows before they are added */
    float *kblk;  /* [FLASH_KB][dp] the key block's K rows, when d % 32 != 0 */
    float *dlt;   /* [FLASH_QB]     D */
    float *inv_l; /* [FLASH_QB]     1 / l, 0 for a query with no key */
} bw_tiles;

static size_t bw_floats(int64_t d)
{
    const int64_t dp = flash_pad32(d);
    return (size_t)(4 * FLASH_QB * dp + d * FLASH_QB + FLASH_KB * FLASH_QB + 2 * FLASH_KB * dp +
                    2 * FLASH_QB);
}

static int bw_alloc(bw_tiles *t, int64_t d)
{
    const int64_t dp = flash_pad32(d);
    float *f = malloc(bw_floats(d) * sizeof(float));
    if (!f) return -1;
    t->dout = f;
    t->doutt = t->dout + FLASH_QB * dp;
    t->q = t->doutt + d * FLASH_QB;
    t->dq = t->q + FLASH_QB * dp;
    t->dpt = t->dq + FLASH_QB * dp;
    t->tmp = t->dpt + FLASH_KB * FLASH_QB;
    t->kblk = t->tmp + FLASH_KB * dp;
    t->dlt = t->kblk + FLASH_KB * dp;
    t->inv_l = t->dlt + FLASH_QB;
    return 0;
}

typedef struct bw_job {
    const dlv_attention_bw_args *a;
    dlv_attention_args fa; /* the same tensors as forward arguments */
    int failed;
} bw_job;

/* C rows [0, n) of a 4-row kernel product added (times s) into dst rows
 * (leading dimension ld), d columns. */
static void add_rows(float *dst, int64_t ld, const float *c, int64_t dp, int64_t n, int64_t d,
                     float s)
{
    for (int64_t r = 0; r < n; r++)
        for (int64_t x = 0; x < d; x++) dst[r * ld + x] += s * c[r * dp + x];
}

/* The key block's P^T and dS^T (in t->st and w->dpt) for one query block. */
DLV_CPU_CLONES static void block_grads(const bw_job *j, flash_tiles *t, bw_tiles *w, int64_t b,
                                     int64_t h, int64_t i0, int64_t k0, int64_t nk)
{
    const dlv_attention_bw_args *a = j->a;
    const int64_t d = a->head_dim;
    const int64_t g = h / (a->n_heads / a->n_kv_heads), ldk = a->n_kv_heads * d;
    const int64_t off = a->n_kv - a->n_q;
    const float *ksrc = a->k + (b * a->n_kv + k0) * ldk + g * d;
    const float *vsrc = a->v + (b * a->n_kv + k0) * ldk + g * d;
    const uint8_t *mask = a->key_mask ? a->key_mask + b * a->n_kv : NULL;
    const v16 zero = {0}, ninf = zero - INFINITY;
    v16 lane0, lane1;
    FLASH_LANES(lane0, lane1, i0);
    /* S^T and dP^T, 4 keys at a time (a short last group from a padded
     * copy rather than past the sequence's end). */
    for (int64_t k = 0; k < nk; k += 4) {
        const float *kr = ksrc + k * ldk, *vr = vsrc + k * ldk;
        int64_t lda = ldk;
        if (nk - k < 4) {
            flash_copy_padded(t->kpad, d, 4, kr, ldk, nk - k, d);
            kr = t->kpad;
            lda = d;
        }
        flash_kernel_4xn(t->st + k * FLASH_QB, FLASH_QB, kr, lda, 1, t->qt, FLASH_QB, d,
                             FLASH_QB);
        if (nk - k < 4) {
            flash_copy_padded(t->kpad, d, 4, vr, ldk, nk - k, d);
            vr = t->kpad;
        }
        flash_kernel_4xn(w->dpt + k * FLASH_QB, FLASH_QB, vr, lda, 1, w->doutt, FLASH_QB, d,
                             FLASH_QB);
    }
    v16 m0, m1, il0, il1, d0, d1;
    LOAD16(m0, t->m);
    LOAD16(m1, t->m + 16);
    LOAD16(il0, w->inv_l);
    LOAD16(il1, w->inv_l + 16);
    LOAD16(d0, w->dlt);
    LOAD16(d1, w->dlt + 16);
    /* Lanes past nq, or of a query with no allowed key, have inv_l = 0: P = 0. */
    SELECT16(m0, m0 == ninf, zero, m0);
    SELECT16(m1, m1 == ninf, zero, m1);
    for (int64_t k = 0; k < nk; k++) {
        float *srow = t->st + k * FLASH_QB, *drow = w->dpt + k * FLASH_QB;
        v16 s0, s1, p0, p1, g0, g1;
        LOAD16(s0, srow);
        LOAD16(s1, srow + 16);
        FLASH_SCALE_MASK(s0, s1, a, mask, k0 + k, off, lane0, lane1, ninf);
        EXP16(p0, s0 - m0);
        EXP16(p1, s1 - m1);
        SELECT16(p0, s0 == ninf, zero, p0);
        SELECT16(p1, s1 == ninf, zero, p1);
        p0 *= il0;
        p1 *= il1;
        LOAD16(g0, drow);
        LOAD16(g1, drow + 16);
        g0 = p0 * (g0 - d0);
        g1 = p1 * (g1 - d1);
        STORE16(srow, p0);
        STORE16(srow + 16, p1);
        STORE16(drow, g0);
        STORE16(drow + 16, g1);
    }
}

/* One query block of head h: every key block's contribution to dQ, dK, dV. */
static void bw_block(const bw_job *j, flash_tiles *t, bw_tiles *w, int64_t b, int64_t h,
                     int64_t qb)
{
    const dlv_attention_bw_args *a = j->a;
    const int64_t d = a->head_dim, dp = flash_pad32(d);
    const int64_t g = h / (a->n_heads / a->n_kv_heads);
    const int64_t ldq = a->n_heads * d, ldk = a->n_kv_heads * d;
    const int64_t i0 = qb * FLASH_QB, nq = flash_block_rows(a->n_q, i0);
    const float *qsrc = a->q + (b * a->n_q + i0) * ldq + h * d;
    const float *dosrc = a->dout + (b * a->n_q + i0) * ldq + h * d;

    flash_block(&j->fa, t, b, h, qb);
    flash_copy_padded(w->dout, dp, FLASH_QB, dosrc, ldq, nq, d);
    flash_copy_padded(w->q, dp, FLASH_QB, qsrc, ldq, nq, d);
    for (int64_t p = 0; p < d; p++)
        for (int64_t r = 0; r < FLASH_QB; r++) w->doutt[p * FLASH_QB + r] = w->dout[r * dp + p];
    memset(w->dq, 0, (size_t)(FLASH_QB * dp) * 4);
    for (int64_t r = 0; r < FLASH_QB; r++) {
        w->inv_l[r] = 0.0f;
        w->dlt[r] = 0.0f;
        if (r >= nq || t->l[r] == 0.0) continue;
        float inv = 1.0f / (float)t->l[r];
        double dot = 0.0;
        for (int64_t c = 0; c < d; c++)
            dot += (double)w->dout[r * dp + c] * (double)(t->o[r * dp + c] * inv);
        w->inv_l[r] = inv;
        w->dlt[r] = (float)dot;
    }
    const int64_t k_end = flash_key_end(&j->fa, i0, nq);
    float *dkb = a->dk + b * a->n_kv * ldk + g * d, *dvb = a->dv + b * a->n_kv * ldk + g * d;
    for (int64_t k0 = 0; k0 < k_end; k0 += FLASH_KB) {
        const int64_t nk = k_end - k0 < FLASH_KB ? k_end - k0 : FLASH_KB;
        block_grads(j, t, w, b, h, i0, k0, nk);
        /* dV += P^T dO and dK += scale dS^T Q, 4 keys at a time (rows of
         * P^T, dS^T past nk are never read into the result). */
        for (int64_t k = 0; k < nk; k += 4) {
            int64_t n = nk - k < 4 ? nk - k : 4;
            flash_kernel_4xn(w->tmp, dp, t->st + k * FLASH_QB, FLASH_QB, 1, w->dout, dp,
                             FLASH_QB, dp);
            add_rows(dvb + (k0 + k) * ldk, ldk, w->tmp, dp, n, d, 1.0f);
            flash_kernel_4xn(w->tmp, dp, w->dpt + k * FLASH_QB, FLASH_QB, 1, w->q, dp,
                             FLASH_QB, dp);
            add_rows(dkb + (k0 + k) * ldk, ldk, w->tmp, dp, n, d, a->scale);
        }
        /* dQ += dS K: rows are queries, A(q, k) = dS^T[k][q]. */
        const float *kb = a->k + (b * a->n_kv + k0) * ldk + g * d;
        int64_t ldkb = ldk;
        if (d != dp) {
            flash_copy_padded(w->kblk, dp, nk, kb, ldk, nk, d);
            kb = w->kblk;
            ldkb = dp;
        }
        for (int64_t r = 0; r < nq; r += 4) {
            flash_kernel_4xn(w->tmp, dp, w->dpt + r, 1, FLASH_QB, kb, ldkb, nk, dp);
            for (int64_t x = 0; x < 4 * dp; x++) w->dq[r * dp + x] += w->tmp[x];
        }
    }
    add_rows(a->dq + (b * a->n_q + i0) * ldq + h * d, ldq, w->dq, dp, nq, d, a->scale);
}

static void bw_range(void *ctx, int64_t begin, int64_t end)
{
    bw_job *j = ctx;
    const dlv_attention_bw_args *a = j->a;
    const int64_t d = a->head_dim;
    const int64_t group = a->n_heads / a->n_kv_heads;
    const int64_t n_qblocks = (a->n_q + FLASH_QB - 1) / FLASH_QB;
    flash_tiles t;
    bw_tiles w;
    if (dlv_flash_tiles_alloc(&t, d) != 0) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    if (bw_alloc(&w, d) != 0) {
        free(t.l);
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t item = begin; item < end; item++) {
        int64_t b = item / a->n_kv_heads, g = item % a->n_kv_heads;
        for (int64_t h = g * group; h < (g + 1) * group; h++)
            for (int64_t qb = 0; qb < n_qblocks; qb++) bw_block(j, &t, &w, b, h, qb);
    }
    free(w.dout);
    free(t.l);
}

dlv_status dlv_cpu_attention_backward(dlv_backend *be, const dlv_attention_bw_args *a)
{
    /* No keys or no queries: the output was constant (zeros), no gradient. */
    if (a->batch == 0 || a->n_q == 0 || a->n_kv == 0 || a->head_dim == 0) return DLV_OK;
    bw_job j = {.a = a,
                .fa = {.struct_size = sizeof j.fa, .q = a->q, .k = a->k, .v = a->v,
                       .key_mask = a->key_mask, .batch = a->batch, .n_q = a->n_q,
                       .n_kv = a->n_kv, .n_heads = a->n_heads, .n_kv_heads = a->n_kv_heads,
                       .head_dim = a->head_dim, .scale = a->scale, .causal = a->causal}};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), a->batch * a->n_kv_heads, 1, bw_range, &j);
    if (j.failed)
        return dlv_error_nomem("attention backward tiles",
                               (dlv_flash_tiles_floats(a->head_dim) + bw_floats(a->head_dim)) *
                                   4);
    return DLV_OK;
}
