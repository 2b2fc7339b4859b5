/* bench_recall: retrieval scoring at COCO 5k-test size. Random unit
 * embeddings for N_IMG images and 5 captions each (default 5000 x 25000),
 * the score matrix with one sgemm (OpenBLAS), then the Recall@1/5/10 ranks
 * both ways (tools/eval/metrics.c). Prints the time of each part.
 *
 * usage: bench_recall [N_IMG [DIM [THREADS]]]   (defaults 5000 256 0=all) */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "eval/metrics.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0) - 0.5f;
}

static void random_unit_rows(float *m, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t d = 0; d < dim; d++) {
            m[i * dim + d] = frand();
            s += (double)m[i * dim + d] * (double)m[i * dim + d];
        }
        float inv = (float)(1.0 / sqrt(s));
        for (size_t d = 0; d < dim; d++) m[i * dim + d] *= inv;
    }
}

int main(int argc, char **argv)
{
    size_t n_img = argc > 1 ? strtoul(argv[1], NULL, 10) : 5000;
    size_t dim = argc > 2 ? strtoul(argv[2], NULL, 10) : 256;
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    if (threads > 0) openblas_set_num_threads(threads);
    size_t n_txt = 5 * n_img;
    float *img = malloc(n_img * dim * sizeof *img), *txt = malloc(n_txt * dim * sizeof *txt);
    float *s = malloc(n_img * n_txt * sizeof *s);
    uint32_t *ti = malloc(n_txt * sizeof *ti);
    size_t *i2t = malloc(n_img * sizeof *i2t), *t2i = malloc(n_txt * sizeof *t2i);
    if (!img || !txt || !s || !ti || !i2t || !t2i) {
        fprintf(stderr, "bench_recall: out of memory\n");
        return 1;
    }
    random_unit_rows(img, n_img, dim);
    random_unit_rows(txt, n_txt, dim);
    for (size_t j = 0; j < n_txt; j++) ti[j] = (uint32_t)(j / 5);

    double t0 = now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_img, (int)n_txt, (int)dim, 1.0f,
                img, (int)dim, txt, (int)dim, 0.0f, s, (int)n_txt);
    double t1 = now_s();
    if (dlv_eval_retrieval_ranks(s, n_img, n_txt, ti, i2t, t2i) != DLV_OK) {
        fprintf(stderr, "bench_recall: %s\n", dlv_last_error());
        return 1;
    }
    double r[6];
    for (int k = 0; k < 3; k++) {
        size_t K = k == 0 ? 1 : k == 1 ? 5 : 10;
        r[k] = dlv_eval_recall_at(i2t, n_img, K);
        r[3 + k] = dlv_eval_recall_at(t2i, n_txt, K);
    }
    double t2 = now_s();
    printf("recall: %zu images x %zu captions, dim %zu (random embeddings)\n", n_img, n_txt, dim);
    printf("  score matrix (one sgemm): %8.3f s  (%.1f GFLOP/s)\n", t1 - t0,
           2.0 * (double)n_img * (double)n_txt * (double)dim / (t1 - t0) * 1e-9);
    printf("  ranks + Recall@1/5/10:    %8.3f s\n", t2 - t1);
    printf("  total:                    %8.3f s\n", t2 - t0);
    printf("  (chance level) i2t R@1/5/10 %.2f %.2f %.2f, t2i %.2f %.2f %.2f\n", r[0], r[1], r[2],
           r[3], r[4], r[5]);
    free(img);
    free(txt);
    free(s);
    free(ti);
    free(i2t);
    free(t2i);
    return 0;
}
