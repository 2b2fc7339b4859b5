/* An LD_PRELOAD shim that counts the GEMM work a program asks OpenBLAS for:
 * every cblas_sgemm call is tallied by (transposes, m, n, k) and passed on.
 * At exit it writes the total GFLOP (2 m n k per call) and one line per
 * shape to $GEMM_COUNT_OUT (default stderr).
 *
 * Timings on a shared VM vary by tens of percent between runs; the GEMM
 * calls do not. Comparing two builds' tables says whether a change altered
 * the work (shapes, counts, FLOPs) or only its speed:
 *
 *   GEMM_COUNT_OUT=a.txt LD_PRELOAD=build/bench/libgemm_count.so \
 *       build/bench/bench_train MODEL 1 2 8
 *   diff <(sort a.txt) <(sort b.txt)
 *
 * A tool, not part of the library: it has its own global table (one
 * process, one thread calling BLAS, as the library's backends do). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
                         const float, const float *, const blasint, const float *,
                         const blasint, const float, float *, const blasint);

#define MAX_SHAPES 4096

typedef struct shape {
    int ta, tb;
    long m, n, k;
    long calls;
    double flops;
} shape;

static shape shapes[MAX_SHAPES];
static int n_shapes;
static double total_flops;
static long other_calls; /* calls past MAX_SHAPES distinct shapes */

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint m, const blasint n,
                 const blasint k, const float alpha, const float *a, const blasint lda,
                 const float *b, const blasint ldb, const float beta, float *c,
                 const blasint ldc)
{
    static sgemm_fn real;
    if (!real) {
        /* POSIX: a void * from dlsym converts to a function pointer. */
        *(void **)(&real) = dlsym(RTLD_NEXT, "cblas_sgemm");
        if (!real) {
            fprintf(stderr, "gemm_count: cblas_sgemm not found after the shim\n");
            abort();
        }
    }
    const double f = 2.0 * (double)m * (double)n * (double)k;
    total_flops += f;
    int i = 0;
    while (i < n_shapes && !(shapes[i].ta == (int)ta && shapes[i].tb == (int)tb &&
                             shapes[i].m == m && shapes[i].n == n && shapes[i].k == k))
        i++;
    if (i == n_shapes && n_shapes < MAX_SHAPES)
        shapes[n_shapes++] = (shape){(int)ta, (int)tb, m, n, k, 0, 0.0};
    if (i < n_shapes) {
        shapes[i].calls++;
        shapes[i].flops += f;
    } else {
        other_calls++;
    }
    real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("GEMM_COUNT_OUT");
    FILE *f = path ? fopen(path, "w") : stderr;
    if (!f) return;
    fprintf(f, "total %.3f GFLOP in %d shapes (%ld calls not tallied by shape)\n",
            total_flops / 1e9, n_shapes, other_calls);
    for (int i = 0; i < n_shapes; i++)
        fprintf(f, "%10.3f GFLOP %7ld calls  %s%s m=%ld n=%ld k=%ld\n", shapes[i].flops / 1e9,
                shapes[i].calls, shapes[i].ta == CblasTrans ? "T" : "N",
                shapes[i].tb == CblasTrans ? "T" : "N", shapes[i].m, shapes[i].n, shapes[i].k);
    if (f != stderr) fclose(f);
}
