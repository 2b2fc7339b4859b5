/* The CPU backend's GEMM provider: every matrix product of the backend (the
 * matmul op, attention's score and value products, their backward) ends
 * here. Two builds (meson option gemm, docs/backends.md):
 *
 * - oneDNN: a matmul primitive per shape, found again in oneDNN's own
 *   primitive cache (about a microsecond on a hit). oneDNN picks its kernels
 *   from the CPU's features at run time (AVX2, AVX-512, AVX512-BF16, AMX),
 *   so OPENBLAS_CORETYPE no longer decides the speed, and it multiplies bf16
 *   operands with f32 accumulation natively. Its threads are OpenMP's, which
 *   in this build are also the backend's pool (cpu_threads_omp.c).
 * - OpenBLAS: cblas_sgemm; bf16 operands are widened to f32 first (exact:
 *   bf16 -> f32 loses nothing), so the result equals the oneDNN build's up
 *   to summation order, only slower. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"
#include "dlv_build_config.h"

/* Widens rows x cols values, stored from src with leading dimension ld in
 * dtype dt (F32 or BF16), into a dense f32 matrix. */
static void widen_block(float *dst, const void *src, dlv_dtype dt, int64_t rows, int64_t cols,
                        int64_t ld)
{
    size_t es = dlv_dtype_size(dt);
    for (int64_t r = 0; r < rows; r++)
        dlv_cpu_widen(dst + r * cols, (const unsigned char *)src + (size_t)(r * ld) * es, dt,
                      cols);
}

/* Output columns per widened block of B: 16 MiB of f32, as the matmul op's
 * tiles (cpu_matmul.c), so a bf16 weight is never widened whole. */
#define WIDEN_TILE_ELEMS ((int64_t)1 << 22)

/* The same product with bf16 operands widened to f32 (the OpenBLAS build,
 * and oneDNN on a CPU without bf16 kernels): A whole (activations), B a
 * block of output columns at a time. bf16 -> f32 is exact, so this computes
 * what a bf16 kernel with f32 accumulation does, up to summation order. */
static dlv_status gemm_widened(dlv_backend *be, const dlv_cpu_gemm_args *g)
{
    int64_t a_rows = g->trans_a ? g->k : g->m, a_cols = g->trans_a ? g->m : g->k;
    int64_t nb = WIDEN_TILE_ELEMS / g->k;
    if (nb < 1) nb = 1;
    if (nb > g->n) nb = g->n;
    size_t a_elems = (size_t)a_rows * (size_t)a_cols, b_elems = (size_t)nb * (size_t)g->k;
    float *a = malloc((a_elems + b_elems) * sizeof(float));
    if (!a) return dlv_error_nomem("matmul: widened bf16 operands",
                                   (a_elems + b_elems) * sizeof(float));
    float *b = a + a_elems;
    widen_block(a, g->a, g->dt, a_rows, a_cols, g->lda);
    dlv_cpu_gemm_args w = *g;
    w.a = a;
    w.lda = a_cols;
    w.b = b;
    w.dt = DLV_DTYPE_F32;
    const uint16_t *src = g->b;
    dlv_status st = DLV_OK;
    for (int64_t j0 = 0; j0 < g->n && st == DLV_OK; j0 += nb) {
        int64_t jn = g->n - j0 < nb ? g->n - j0 : nb;
        if (g->trans_b) /* stored n x k: whole stored rows */
            widen_block(b, src + j0 * g->ldb, g->dt, jn, g->k, g->ldb);
        else            /* stored k x n: a column block of every row */
            widen_block(b, src + j0, g->dt, g->k, jn, g->ldb);
        w.n = jn;
        w.ldb = g->trans_b ? g->k : jn;
        w.c = g->c + j0;
        st = dlv_cpu_gemm(be, &w);
    }
    free(a);
    return st;
}

dlv_status dlv_cpu_sgemm(dlv_backend *be, int trans_a, int trans_b, int64_t m, int64_t n,
                         int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                         int64_t ldb, float beta, float *c, int64_t ldc)
{
    dlv_cpu_gemm_args g = {.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k,
                           .alpha = alpha, .beta = beta, .a = a, .lda = lda, .b = b, .ldb = ldb,
                           .dt = DLV_DTYPE_F32, .c = c, .ldc = ldc};
    return dlv_cpu_gemm(be, &g);
}

#ifdef DLV_HAVE_ONEDNN

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <omp.h>
#include <stdint.h>

struct dlv_cpu_gemm_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
};

static dlv_status dnnl_fail(dnnl_status_t s, const char *what)
{
    return dlv_error(s == dnnl_out_of_memory ? DLV_E_NOMEM : DLV_E_BACKEND,
                     "matmul: oneDNN %s: %s", what, dnnl_status2str(s));
}

dlv_status dlv_cpu_gemm_ctx_create(dlv_cpu_gemm_ctx **out)
{
    *out = NULL;
    dlv_cpu_gemm_ctx *c = calloc(1, sizeof *c);
    if (!c) return dlv_error_nomem("oneDNN context", sizeof *c);
    dnnl_status_t s = dnnl_engine_create(&c->engine, dnnl_cpu, 0);
    if (s == dnnl_success) s = dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        dlv_cpu_gemm_ctx_destroy(c);
        return dnnl_fail(s, "engine");
    }
    *out = c;
    return DLV_OK;
}

void dlv_cpu_gemm_ctx_destroy(dlv_cpu_gemm_ctx *c)
{
    if (!c) return;
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->engine) dnnl_engine_destroy(c->engine);
    free(c);
}

void dlv_cpu_gemm_provider(char *buf, size_t cap)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, cap, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
}

/* A matrix of logical shape rows x cols stored row-major with leading
 * dimension ld, or transposed (stored cols x rows). */
static dnnl_status_t plain_desc(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int trans,
                                int64_t ld, dnnl_data_type_t dt)
{
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

/* oneDNN takes non-const handles for inputs it only reads. */
static void *unconst(const void *p)
{
    return (void *)(uintptr_t)p;
}

static dlv_status gemm_onednn(dlv_backend *be, const dlv_cpu_gemm_args *g, int *unimplemented)
{
    dlv_cpu_backend *cpu = (dlv_cpu_backend *)be;
    dnnl_data_type_t in = g->dt == DLV_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t ad, bd, cd;
    dnnl_matmul_desc_t mm;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL;
    const char *what = "descriptor";
    dnnl_status_t s = plain_desc(&ad, g->m, g->k, g->trans_a, g->lda, in);
    if (s == dnnl_success) s = plain_desc(&bd, g->k, g->n, g->trans_b, g->ldb, in);
    if (s == dnnl_success) s = plain_desc(&cd, g->m, g->n, 0, g->ldc, dnnl_f32);
    if (s == dnnl_success) s = dnnl_matmul_desc_init(&mm, &ad, &bd, NULL, &cd);
    if (s == dnnl_success) s = dnnl_primitive_attr_create(&attr);
    /* alpha scales the product, then the sum post-op adds beta * C. */
    if (s == dnnl_success && g->alpha != 1.0f)
        s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &g->alpha);
    if (s == dnnl_success && g->beta != 0.0f) {
        s = dnnl_post_ops_create(&po);
        if (s == dnnl_success) s = dnnl_post_ops_append_sum(po, g->beta);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (s == dnnl_success) {
        what = "primitive";
        s = dnnl_primitive_desc_create(&pd, &mm, attr, cpu->gemm->engine, NULL);
        if (s == dnnl_unimplemented) *unimplemented = 1;
    }
    if (s == dnnl_success) s = dnnl_primitive_create(&prim, pd);
    if (s == dnnl_success) {
        what = "memory";
        s = dnnl_memory_create(&am, &ad, cpu->gemm->engine, unconst(g->a));
    }
    if (s == dnnl_success) s = dnnl_memory_create(&bm, &bd, cpu->gemm->engine, unconst(g->b));
    if (s == dnnl_success) s = dnnl_memory_create(&cm, &cd, cpu->gemm->engine, g->c);
    if (s == dnnl_success) {
        what = "execution";
        dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
        /* oneDNN sizes its OpenMP team from the calling thread's setting:
         * the session's thread count for this call, the caller's own
         * setting restored after it. */
        int prev = omp_get_max_threads();
        omp_set_num_threads(dlv_cpu_pool_threads(cpu->pool));
        s = dnnl_primitive_execute(prim, cpu->gemm->stream, 3, args);
        if (s == dnnl_success) s = dnnl_stream_wait(cpu->gemm->stream);
        omp_set_num_threads(prev);
    }
    if (cm) dnnl_memory_destroy(cm);
    if (bm) dnnl_memory_destroy(bm);
    if (am) dnnl_memory_destroy(am);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return s == dnnl_success || *unimplemented ? DLV_OK : dnnl_fail(s, what);
}

dlv_status dlv_cpu_gemm(dlv_backend *be, const dlv_cpu_gemm_args *g)
{
    int unimplemented = 0;
    dlv_status st = gemm_onednn(be, g, &unimplemented);
    if (st != DLV_OK || !unimplemented) return st;
    /* oneDNN has no kernel for bf16 on this CPU (no AVX-512): the same
     * numbers through f32 (bf16 widens exactly). */
    if (g->dt == DLV_DTYPE_BF16) return gemm_widened(be, g);
    return dlv_error(DLV_E_BACKEND, "matmul: oneDNN has no f32 kernel for %lld x %lld x %lld",
                     (long long)g->m, (long long)g->n, (long long)g->k);
}

#else /* OpenBLAS */

#include <cblas.h>

struct dlv_cpu_gemm_ctx {
    int unused;
};

dlv_status dlv_cpu_gemm_ctx_create(dlv_cpu_gemm_ctx **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? DLV_OK : dlv_error_nomem("gemm context", sizeof **out);
}

void dlv_cpu_gemm_ctx_destroy(dlv_cpu_gemm_ctx *c)
{
    free(c);
}

void dlv_cpu_gemm_provider(char *buf, size_t cap)
{
    /* openblas_get_config() begins with "OpenBLAS <version>". */
    snprintf(buf, cap, "%s", openblas_get_config());
}

dlv_status dlv_cpu_gemm(dlv_backend *be, const dlv_cpu_gemm_args *g)
{
    if (g->dt == DLV_DTYPE_BF16) return gemm_widened(be, g);
    /* The wrappers bounded every dimension to INT_MAX. */
    cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                g->trans_b ? CblasTrans : CblasNoTrans, (blasint)g->m, (blasint)g->n,
                (blasint)g->k, g->alpha, (const float *)g->a, (blasint)g->lda,
                (const float *)g->b, (blasint)g->ldb, g->beta, g->c, (blasint)g->ldc);
    return DLV_OK;
}

#endif
