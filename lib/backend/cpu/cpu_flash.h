/* Shared by the fused attention forward (cpu_flash.c) and backward
 * (cpu_flash_bw.c): the vector types and macros, the 4-row kernel, the
 * tiles and the forward over one block of queries. Internal to the CPU
 * backend. */
#ifndef DLV_BACKEND_CPU_FLASH_H
#define DLV_BACKEND_CPU_FLASH_H

#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

/* Query rows per work item (a multiple of the kernels' 4 rows) and keys per
 * block: the tiles then fit in L2 with room for the next block's loads. */
#define FLASH_QB 32
#define FLASH_KB 64

/* 16 floats: one AVX-512 register, two AVX2 ones, four SSE ones. */
typedef float v16 __attribute__((vector_size(64)));

/* Unaligned loads and stores of 16 floats (memcpy: no aliasing or
 * alignment assumption; compilers emit one vector move). Macros, not
 * functions: a function passing a vector by value would change the ABI
 * between the clones. */
#define LOAD16(v, p) memcpy(&(v), (p), sizeof(v16))
#define STORE16(p, v) memcpy((p), &(v), sizeof(v16))

typedef int32_t i16v __attribute__((vector_size(64)));

/* Round up to a multiple of 32 (the kernels' column step). */
static inline int64_t flash_pad32(int64_t n)
{
    return (n + 31) / 32 * 32;
}

/* The query rows of the block starting at row i0 (FLASH_QB, or fewer in
 * the last block). */
static inline int64_t flash_block_rows(int64_t n_q, int64_t i0)
{
    return n_q - i0 < FLASH_QB ? n_q - i0 : FLASH_QB;
}

/* One past the last key any of the nq queries from row i0 may attend to:
 * n_kv, or less under a causal mask (key k allowed for k <= i + n_kv -
 * n_q), so the key blocks past it are skipped. */
static inline int64_t flash_key_end(const dlv_attention_args *a, int64_t i0, int64_t nq)
{
    if (!a->causal) return a->n_kv;
    int64_t last = i0 + nq + (a->n_kv - a->n_q);
    return last < 0 ? 0 : last < a->n_kv ? last : a->n_kv;
}

/* rows x d of src (leading dimension ld) into dst (leading dimension dp),
 * the rest of dst's rows_total rows and every row's tail zero. */
static inline void flash_copy_padded(float *dst, int64_t dp, int64_t rows_total,
                                     const float *src, int64_t ld, int64_t rows, int64_t d)
{
    memset(dst, 0, (size_t)(rows_total * dp) * 4);
    for (int64_t r = 0; r < rows; r++) memcpy(dst + r * dp, src + r * ld, (size_t)d * 4);
}

/* C[4][ncols] = A . B with A(r, p) = a[r * lda + p * astep] (r < 4, p < kdim)
 * and B row-major (leading dimension ldb, ncols a multiple of 32).
 * Overwrites C (leading dimension ldc). This and flash_block are internal
 * (hidden by -fvisibility, outside the dlv_ prefix the version script
 * exports): plain functions that forward to the cloned code. */
void flash_kernel_4xn(float *c, int64_t ldc, const float *a, int64_t lda, int64_t astep,
                      const float *b, int64_t ldb, int64_t kdim, int64_t ncols);

/* out = m ? x : y lane by lane (m from a vector comparison: all ones or
 * zero); C has no vector ?:. */
#define SELECT16(out, m, x, y)                                                        \
    do {                                                                              \
        i16v sm_ = (m), sx_, sy_;                                                     \
        v16 sxv_ = (x), syv_ = (y);                                                   \
        memcpy(&sx_, &sxv_, sizeof sx_);                                              \
        memcpy(&sy_, &syv_, sizeof sy_);                                              \
        sx_ = (sx_ & sm_) | (sy_ & ~sm_);                                             \
        memcpy(&sxv_, &sx_, sizeof sx_);                                              \
        (out) = sxv_;                                                                 \
    } while (0)

/* exp of 16 floats x <= 0 (scores minus their running maximum), Cephes'
 * expf: x = n ln2 + r, |r| <= ln2 / 2, e^r by a degree-7 polynomial, 2^n
 * put in the exponent; about 1 ulp from libm's expf. Below -87 (e^x under
 * f32's normal range) it gives ~1e-38 instead of a denormal or 0: nothing
 * downstream can tell. A macro for the reason LOAD16 is one. */
#define EXP16(out, x_in)                                                              \
    do {                                                                              \
        v16 x_ = (x_in);                                                              \
        SELECT16(x_, x_ < -87.0f, (v16){0} - 87.0f, x_);                              \
        v16 n_ = (x_ * 1.44269504088896341f + 12582912.0f) - 12582912.0f;             \
        v16 r_ = x_ - n_ * 0.693359375f + n_ * 2.12194440e-4f;                        \
        v16 p_ = 1.9875691500e-4f * r_ + 1.3981999507e-3f;                            \
        p_ = p_ * r_ + 8.3334519073e-3f;                                              \
        p_ = p_ * r_ + 4.1665795894e-2f;                                              \
        p_ = p_ * r_ + 1.6666665459e-1f;                                              \
        p_ = p_ * r_ + 5.0000001201e-1f;                                              \
        p_ = p_ * r_ * r_ + r_ + 1.0f;                                                \
        i16v e_ = (__builtin_convertvector(n_, i16v) + 127) << 23;                    \
        v16 s_;                                                                       \
        memcpy(&s_, &e_, sizeof s_);                                                  \
        (out) = p_ * s_;                                                              \
    } while (0)

/* lane0, lane1: the query index of each lane of a block starting at i0,
 * for the causal test. */
#define FLASH_LANES(lane0, lane1, i0)                                                  \
    do {                                                                              \
        for (int r_ = 0; r_ < 16; r_++) {                                             \
            (lane0)[r_] = (float)((i0) + r_);                                         \
            (lane1)[r_] = (float)((i0) + 16 + r_);                                    \
        }                                                                             \
    } while (0)

/* Scales key `key`'s row of 32 scores (s0, s1) and sets to -inf those the
 * key mask or the causal rule forbids (key allowed for query i >= key -
 * off). The forward and the backward both mask with this. */
#define FLASH_SCALE_MASK(s0, s1, a, mask, key, off, lane0, lane1, ninf)               \
    do {                                                                              \
        (s0) *= (a)->scale;                                                           \
        (s1) *= (a)->scale;                                                           \
        if ((mask) && !(mask)[key]) {                                                 \
            (s0) = (ninf);                                                            \
            (s1) = (ninf);                                                            \
        } else if ((a)->causal) {                                                     \
            float first_ = (float)((key) - (off));                                    \
            SELECT16(s0, (lane0) >= first_, s0, ninf);                                \
            SELECT16(s1, (lane1) >= first_, s1, ninf);                                \
        }                                                                             \
    } while (0)

/* Per-thread scratch of one task range. */
typedef struct flash_tiles {
    double *l;   /* [FLASH_QB]           running sums, per query */
    float *qt;   /* [d][FLASH_QB]        the block's queries, transposed */
    float *st;   /* [FLASH_KB][FLASH_QB] S^T, then P^T */
    float *o;    /* [FLASH_QB][dp]       the running output */
    float *pv;   /* [FLASH_QB][dp]       this key block's P V */
    float *kpad; /* [4][d]               a last group of fewer than 4 keys */
    float *vpad; /* [FLASH_KB][dp]       the key block's V, when d % 32 != 0 */
    float *m;    /* [FLASH_QB]           running maxima */
} flash_tiles;

/* Floats of the tiles for head_dim d. */
size_t dlv_flash_tiles_floats(int64_t d);
/* Carves t out of one allocation (free t->l); -1 when out of memory. */
int dlv_flash_tiles_alloc(flash_tiles *t, int64_t d);

/* The forward over query block qb (rows qb * FLASH_QB ...) of sequence b,
 * head h: leaves the unnormalised output in t->o, the maxima in t->m and
 * the sums in t->l (0: no allowed key). */
void flash_block(const dlv_attention_args *a, flash_tiles *t, int64_t b, int64_t h, int64_t qb);

#endif
