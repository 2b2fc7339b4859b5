/* Fused attention forward on the CPU, flash-attention style: for a block of
 * FLASH_QB query rows of one (sequence, head), the keys are visited in
 * blocks of FLASH_KB; each block's scores S = scale * Q K^T live only in a
 * FLASH_QB x FLASH_KB tile, the softmax is kept online (the running row
 * maximum m, the running sum l of exp(s - m), the output rescaled by
 * exp(m_old - m_new) when the maximum grows), and O = sum p V accumulates in
 * a FLASH_QB x head_dim tile. Nothing of size n_q x n_kv exists; the working
 * set (the Q, K^T, V, S and O tiles: ~100 KB at head_dim 128) stays in L2.
 *
 * The products are small register-blocked kernels (4 query rows x 32
 * columns per step) written with GCC/clang vector extensions and cloned for
 * AVX-512 and AVX2, so they reach a good part of the FMA peak without a
 * BLAS call per tile. Work items (sequence, head, query block) are split
 * over the backend's pool; each item writes only its own rows of `out`, so
 * the result does not depend on the thread count.
 *
 * Numerics: s, m, p and O in f32, l in double; a row with no allowed key
 * gets zeros (documented); out = O / l. This rounds differently from a
 * softmax normalised before P V (within 1e-6 relative here). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

#include "backend/cpu/cpu_flash.h"

/* C[4][ncols] = A . B with A(r, p) = a[r * lda + p * astep] (r < 4, p < kdim)
 * and B row-major (leading dimension ldb, ncols a multiple of 32).
 * Overwrites C (leading dimension ldc). */
DLV_CPU_CLONES static void kernel_4xn(float *c, int64_t ldc, const float *a, int64_t lda,
                                    int64_t astep, const float *b, int64_t ldb, int64_t kdim,
                                    int64_t ncols)
{
    for (int64_t col = 0; col < ncols; col += 32) {
        v16 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0};
        v16 c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
        const float *bp = b + col, *ap = a;
        for (int64_t p = 0; p < kdim; p++, bp += ldb, ap += astep) {
            v16 b0, b1;
            LOAD16(b0, bp);
            LOAD16(b1, bp + 16);
            float a0 = ap[0], a1 = ap[lda], a2 = ap[2 * lda], a3 = ap[3 * lda];
            c00 += a0 * b0;
            c01 += a0 * b1;
            c10 += a1 * b0;
            c11 += a1 * b1;
            c20 += a2 * b0;
            c21 += a2 * b1;
            c30 += a3 * b0;
            c31 += a3 * b1;
        }
        STORE16(c + col, c00);
        STORE16(c + col + 16, c01);
        STORE16(c + ldc + col, c10);
        STORE16(c + ldc + col + 16, c11);
        STORE16(c + 2 * ldc + col, c20);
        STORE16(c + 2 * ldc + col + 16, c21);
        STORE16(c + 3 * ldc + col, c30);
        STORE16(c + 3 * ldc + col + 16, c31);
    }
}

typedef struct flash_job {
    const dlv_attention_args *a;
    int64_t n_qblocks; /* per (sequence, head) */
    int failed;        /* a worker could not allocate its tiles */
} flash_job;

size_t dlv_flash_tiles_floats(int64_t d)
{
    const int64_t dp = flash_pad32(d);
    return (size_t)(2 * FLASH_QB + d * FLASH_QB + FLASH_KB * FLASH_QB + 2 * FLASH_QB * dp +
                    4 * d + FLASH_KB * dp + FLASH_QB);
}

int dlv_flash_tiles_alloc(flash_tiles *t, int64_t d)
{
    const int64_t dp = flash_pad32(d);
    float *f = malloc(dlv_flash_tiles_floats(d) * sizeof(float));
    if (!f) return -1;
    t->l = (double *)f; /* first: doubles need the stronger alignment */
    t->qt = f + 2 * FLASH_QB;
    t->st = t->qt + d * FLASH_QB;
    t->o = t->st + FLASH_KB * FLASH_QB;
    t->pv = t->o + FLASH_QB * dp;
    t->kpad = t->pv + FLASH_QB * dp;
    t->vpad = t->kpad + 4 * d;
    t->m = t->vpad + FLASH_KB * dp;
    return 0;
}

/* One (sequence b, head h, query block qb) up to O, l and m. The scores
 * are computed transposed (S^T = K Q^T: keys in rows, the block's 32
 * queries across two vectors), so the softmax's per-query maxima, exps and sums run 16 queries
 * per instruction, and K is read in place. Cloned too: its row loops
 * vectorise as the kernels do. */
DLV_CPU_CLONES static void block_forward(const dlv_attention_args *a, flash_tiles *t, int64_t b,
                                       int64_t h, int64_t qb)
{
    const int64_t d = a->head_dim, dp = flash_pad32(d);
    const int64_t g = h / (a->n_heads / a->n_kv_heads);
    const int64_t ldq = a->n_heads * d, ldk = a->n_kv_heads * d;
    const int64_t i0 = qb * FLASH_QB, nq = flash_block_rows(a->n_q, i0);
    const int64_t off = a->n_kv - a->n_q; /* causal: key k allowed for k <= i + off */
    const float *qsrc = a->q + (b * a->n_q + i0) * ldq + h * d;
    const float *ksrc = a->k + b * a->n_kv * ldk + g * d;
    const float *vsrc = a->v + b * a->n_kv * ldk + g * d;
    const uint8_t *mask = a->key_mask ? a->key_mask + b * a->n_kv : NULL;
    const int v_in_place = d == dp;

    /* Q^T, queries past nq zero (their scores are computed and ignored). */
    for (int64_t p = 0; p < d; p++)
        for (int64_t r = 0; r < FLASH_QB; r++)
            t->qt[p * FLASH_QB + r] = r < nq ? qsrc[r * ldq + p] : 0.0f;
    memset(t->o, 0, (size_t)(FLASH_QB * dp) * sizeof(float));
    if (!v_in_place)
        for (int64_t k = 0; k < FLASH_KB; k++)
            memset(t->vpad + k * dp + d, 0, (size_t)(dp - d) * 4);
    for (int64_t r = 0; r < FLASH_QB; r++) {
        t->m[r] = -INFINITY;
        t->l[r] = 0.0;
    }
    const v16 zero = {0}, ninf = zero - INFINITY;
    /* Query index of each lane, for the causal test. */
    v16 lane0, lane1;
    FLASH_LANES(lane0, lane1, i0);
    const int64_t k_end = flash_key_end(a, i0, nq);
    for (int64_t k0 = 0; k0 < k_end; k0 += FLASH_KB) {
        const int64_t nk = k_end - k0 < FLASH_KB ? k_end - k0 : FLASH_KB;
        /* S^T, 4 keys at a time; a last group of fewer keys is copied to a
         * zero-padded tile rather than read past the sequence. */
        for (int64_t k = 0; k < nk; k += 4) {
            const float *kr = ksrc + (k0 + k) * ldk;
            int64_t lda = ldk;
            if (nk - k < 4) {
                flash_copy_padded(t->kpad, d, 4, kr, ldk, nk - k, d);
                kr = t->kpad;
                lda = d;
            }
            kernel_4xn(t->st + k * FLASH_QB, FLASH_QB, kr, lda, 1, t->qt, FLASH_QB, d,
                       FLASH_QB);
        }
        /* Scale, mask (-inf), and the block's maximum per query. */
        v16 mx0 = ninf, mx1 = ninf;
        for (int64_t k = 0; k < nk; k++) {
            float *row = t->st + k * FLASH_QB;
            v16 s0, s1;
            LOAD16(s0, row);
            LOAD16(s1, row + 16);
            FLASH_SCALE_MASK(s0, s1, a, mask, k0 + k, off, lane0, lane1, ninf);
            STORE16(row, s0);
            STORE16(row + 16, s1);
            SELECT16(mx0, s0 > mx0, s0, mx0);
            SELECT16(mx1, s1 > mx1, s1, mx1);
        }
        v16 m0, m1;
        LOAD16(m0, t->m);
        LOAD16(m1, t->m + 16);
        v16 n0, n1;
        SELECT16(n0, mx0 > m0, mx0, m0);
        SELECT16(n1, mx1 > m1, mx1, m1);
        /* A query with nothing allowed so far keeps m = -inf: subtract 0
         * there so that its (all -inf) scores give exp = 0, not NaN. */
        v16 sub0, sub1;
        SELECT16(sub0, n0 == ninf, zero, n0);
        SELECT16(sub1, n1 == ninf, zero, n1);
        v16 sum0 = {0}, sum1 = {0};
        for (int64_t k = 0; k < nk; k++) {
            float *row = t->st + k * FLASH_QB;
            v16 s0, s1, e0, e1;
            LOAD16(s0, row);
            LOAD16(s1, row + 16);
            EXP16(e0, s0 - sub0);
            EXP16(e1, s1 - sub1);
            SELECT16(e0, s0 == ninf, zero, e0);
            SELECT16(e1, s1 == ninf, zero, e1);
            STORE16(row, e0);
            STORE16(row + 16, e1);
            sum0 += e0;
            sum1 += e1;
        }
        /* Rescale the running output and sums where the maximum grew. */
        v16 c0, c1;
        EXP16(c0, m0 - sub0);
        EXP16(c1, m1 - sub1);
        SELECT16(c0, m0 == ninf, zero, c0);
        SELECT16(c1, m1 == ninf, zero, c1);
        STORE16(t->m, n0);
        STORE16(t->m + 16, n1);
        float corr[FLASH_QB], sums[FLASH_QB];
        STORE16(corr, c0);
        STORE16(corr + 16, c1);
        STORE16(sums, sum0);
        STORE16(sums + 16, sum1);
        for (int64_t r = 0; r < nq; r++) {
            t->l[r] = t->l[r] * (double)corr[r] + (double)sums[r];
            if (corr[r] != 1.0f) {
                float *o = t->o + r * dp;
                for (int64_t c = 0; c < dp; c++) o[c] *= corr[r];
            }
        }
        /* P V: O's rows are queries; A(q, k) = P^T[k][q]. */
        const float *vb = vsrc + k0 * ldk;
        int64_t ldv = ldk;
        if (!v_in_place) {
            for (int64_t k = 0; k < nk; k++) memcpy(t->vpad + k * dp, vb + k * ldk, (size_t)d * 4);
            vb = t->vpad;
            ldv = dp;
        }
        for (int64_t r = 0; r < nq; r += 4)
            kernel_4xn(t->pv + r * dp, dp, t->st + r, 1, FLASH_QB, vb, ldv, nk, dp);
        for (int64_t r = 0; r < nq; r++) {
            float *o = t->o + r * dp;
            const float *pv = t->pv + r * dp;
            for (int64_t c = 0; c < dp; c++) o[c] += pv[c];
        }
    }
}

/* The entry points the backward (another file) calls. Plain functions:
 * clang resolves a target_clones function only inside its own translation
 * unit, so the clones stay static here and these forward to them. */
void flash_kernel_4xn(float *c, int64_t ldc, const float *a, int64_t lda, int64_t astep,
                      const float *b, int64_t ldb, int64_t kdim, int64_t ncols)
{
    kernel_4xn(c, ldc, a, lda, astep, b, ldb, kdim, ncols);
}

void flash_block(const dlv_attention_args *a, flash_tiles *t, int64_t b, int64_t h, int64_t qb)
{
    block_forward(a, t, b, h, qb);
}

/* The block's rows of out = O / l. */
static void flash_item(const flash_job *j, flash_tiles *t, int64_t b, int64_t h, int64_t qb)
{
    const dlv_attention_args *a = j->a;
    const int64_t d = a->head_dim, dp = flash_pad32(d), ldq = a->n_heads * d;
    const int64_t i0 = qb * FLASH_QB, nq = flash_block_rows(a->n_q, i0);
    block_forward(a, t, b, h, qb);
    float *dst = a->out + (b * a->n_q + i0) * ldq + h * d;
    for (int64_t r = 0; r < nq; r++) {
        float *row = dst + r * ldq;
        if (t->l[r] == 0.0) { /* no key to attend to: zeros (documented) */
            memset(row, 0, (size_t)d * 4);
            continue;
        }
        float l = (float)t->l[r];
        for (int64_t c = 0; c < d; c++) row[c] = t->o[r * dp + c] / l;
    }
}

static void flash_range(void *ctx, int64_t begin, int64_t end)
{
    flash_job *j = ctx;
    flash_tiles t;
    if (dlv_flash_tiles_alloc(&t, j->a->head_dim) != 0) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t item = begin; item < end; item++) {
        int64_t qb = item % j->n_qblocks;
        int64_t bh = item / j->n_qblocks;
        flash_item(j, &t, bh / j->a->n_heads, bh % j->a->n_heads, qb);
    }
    free(t.l);
}

dlv_status dlv_cpu_attention(dlv_backend *be, const dlv_attention_args *a)
{
    if (a->batch == 0 || a->n_q == 0 || a->n_heads == 0) return DLV_OK;
    if (a->n_kv == 0 || a->head_dim == 0) {
        /* Nothing to attend to (every row fully masked), or empty heads. */
        int64_t ldq = a->n_heads * a->head_dim;
        for (int64_t r = 0; r < a->batch * a->n_q; r++)
            for (int64_t c = 0; c < ldq; c++) a->out[r * ldq + c] = 0.0f;
        return DLV_OK;
    }
    flash_job j = {.a = a, .n_qblocks = (a->n_q + FLASH_QB - 1) / FLASH_QB};
    int64_t items = a->batch * a->n_heads * j.n_qblocks;
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), items, 1, flash_range, &j);
    if (j.failed)
        return dlv_error_nomem("attention tiles", dlv_flash_tiles_floats(a->head_dim) * 4);
    return DLV_OK;
}
