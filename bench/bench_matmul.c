/* Times dlv_matmul on each backend that can be created here (cpu always,
 * cuda where a device exists) against a plain triple loop, on square shapes
 * and the LLaVA vision tower's MLP shapes. Operands stay on the device; a
 * timed call includes the backend's synchronize, not the transfers.
 *
 * Usage: bench_matmul [reps]   (default 5; one extra warm-up call each) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"

/* The naive loop runs only up to this many flops (512^3 * 2); beyond that
 * it takes seconds per call and tells us nothing new. */
#define NAIVE_MAX_FLOP (2.0 * 512 * 512 * 512)
#define N_SAMPLES 64

typedef struct shape {
    const char *label;
    int m, n, k;
} shape;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
}

/* The textbook loop, row-major, no transposes. */
static void naive_matmul(const float *a, const float *b, float *c, int m, int n, int k)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int p = 0; p < k; p++) s += a[(size_t)i * (size_t)k + (size_t)p] *
                                             b[(size_t)p * (size_t)n + (size_t)j];
            c[(size_t)i * (size_t)n + (size_t)j] = s;
        }
}

/* Max relative error of c against double dot products at sampled entries. */
static double sample_error(const float *a, const float *b, const float *c, int m, int n, int k)
{
    double worst = 0.0;
    uint32_t s = 12345u;
    for (int t = 0; t < N_SAMPLES; t++) {
        s = s * 1664525u + 1013904223u;
        size_t i = (size_t)(s % (uint32_t)m);
        s = s * 1664525u + 1013904223u;
        size_t j = (size_t)(s % (uint32_t)n);
        double ref = 0.0, mag = 0.0;
        for (size_t p = 0; p < (size_t)k; p++) {
            double x = (double)a[i * (size_t)k + p] * (double)b[p * (size_t)n + j];
            ref += x;
            mag += x < 0 ? -x : x;
        }
        double err = (double)c[i * (size_t)n + j] - ref;
        err = (err < 0 ? -err : err) / (mag > 0 ? mag : 1.0);
        if (err > worst) worst = err;
    }
    return worst;
}

/* Median ms of reps calls through dlv_matmul, or a negative value on error. */
static double time_backend(dlv_backend *be, const float *a, const float *b, float *c,
                           const shape *s, int reps, double *err)
{
    size_t na = (size_t)s->m * (size_t)s->k, nb = (size_t)s->k * (size_t)s->n,
           nc = (size_t)s->m * (size_t)s->n;
    dlv_buffer da = {0}, db = {0}, dc = {0};
    double *t = calloc((size_t)reps, sizeof *t);
    double result = -1.0;
    if (!t) return -1.0;
    if (dlv_buffer_alloc(be, na * sizeof(float), &da) != DLV_OK ||
        dlv_buffer_alloc(be, nb * sizeof(float), &db) != DLV_OK ||
        dlv_buffer_alloc(be, nc * sizeof(float), &dc) != DLV_OK ||
        dlv_buffer_upload(&da, 0, a, na * sizeof(float)) != DLV_OK ||
        dlv_buffer_upload(&db, 0, b, nb * sizeof(float)) != DLV_OK)
        goto done;
    dlv_matmul_args args = {
        .struct_size = sizeof args, .trans_a = DLV_NO_TRANS, .trans_b = DLV_NO_TRANS,
        .m = s->m, .n = s->n, .k = s->k, .alpha = 1.0f, .beta = 0.0f,
        .a = da.ptr, .a_dtype = DLV_DTYPE_F32, .lda = s->k,
        .b = db.ptr, .b_dtype = DLV_DTYPE_F32, .ldb = s->n,
        .c = dc.ptr, .ldc = s->n,
    };
    for (int r = -1; r < reps; r++) { /* r == -1: warm-up */
        double t0 = now_ms();
        if (dlv_matmul(be, &args) != DLV_OK || dlv_backend_synchronize(be) != DLV_OK)
            goto done;
        if (r >= 0) t[r] = now_ms() - t0;
    }
    if (dlv_buffer_download(c, &dc, 0, nc * sizeof(float)) != DLV_OK) goto done;
    *err = sample_error(a, b, c, s->m, s->n, s->k);
    result = median(t, reps);
done:
    if (result < 0) fprintf(stderr, "bench_matmul: %s\n", dlv_last_error());
    dlv_buffer_free(&da);
    dlv_buffer_free(&db);
    dlv_buffer_free(&dc);
    free(t);
    return result;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: %s [reps 1..1000]\n", argv[0]);
        return 2;
    }
    static const shape shapes[] = {
        {"64x64x64", 64, 64, 64},
        {"256x256x256", 256, 256, 256},
        {"512x512x512", 512, 512, 512},
        {"1024x1024x1024", 1024, 1024, 1024},
        {"577x1024 . 1024x4096 (CLIP MLP up)", 577, 4096, 1024},
        {"577x4096 . 4096x1024 (CLIP MLP down)", 577, 1024, 4096},
    };
    static const char *const names[] = {"cpu", "cuda"};
    dlv_backend *bes[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        if (dlv_backend_create(names[i], NULL, &bes[i]) == DLV_OK)
            printf("backend %-4s: %s\n", names[i], dlv_backend_describe(bes[i]));
        else
            printf("backend %-4s: skipped (%s)\n", names[i], dlv_last_error());
    }
    printf("reps: %d (median of reps after 1 warm-up); naive loop up to 512^3\n\n", reps);
    printf("%-38s %-6s %10s %10s %10s %10s\n", "shape (m x k . k x n)", "impl", "ms", "GFLOP/s",
           "vs naive", "max rel err");

    int status = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        size_t na = (size_t)s->m * (size_t)s->k, nb = (size_t)s->k * (size_t)s->n,
               nc = (size_t)s->m * (size_t)s->n;
        float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
        if (!a || !b || !c) {
            fprintf(stderr, "bench_matmul: out of memory\n");
            free(a); free(b); free(c);
            return 1;
        }
        fill(a, na, 1u + (uint32_t)si);
        fill(b, nb, 1000u + (uint32_t)si);
        double flop = 2.0 * s->m * s->n * s->k;

        double naive_ms = -1.0;
        if (flop <= NAIVE_MAX_FLOP) {
            int nreps = reps < 3 ? reps : 3;
            double t[3];
            naive_matmul(a, b, c, s->m, s->n, s->k); /* warm-up */
            for (int r = 0; r < nreps; r++) {
                double t0 = now_ms();
                naive_matmul(a, b, c, s->m, s->n, s->k);
                t[r] = now_ms() - t0;
            }
            naive_ms = median(t, nreps);
            printf("%-38s %-6s %10.3f %10.2f %10s %10.1e\n", s->label, "naive", naive_ms,
                   flop / naive_ms / 1e6, "1.0x", sample_error(a, b, c, s->m, s->n, s->k));
        }
        for (int i = 0; i < 2; i++) {
            if (!bes[i]) continue;
            double err = 0.0;
            double ms = time_backend(bes[i], a, b, c, s, reps, &err);
            if (ms < 0) {
                status = 1;
                continue;
            }
            char speedup[32] = "-";
            if (naive_ms > 0) snprintf(speedup, sizeof speedup, "%.1fx", naive_ms / ms);
            printf("%-38s %-6s %10.3f %10.2f %10s %10.1e\n", s->label, names[i], ms,
                   flop / ms / 1e6, speedup, err);
        }
        free(a);
        free(b);
        free(c);
    }
    for (int i = 0; i < 2; i++) dlv_backend_destroy(bes[i]);
    return status;
}
