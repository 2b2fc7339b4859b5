/* Symmetric InfoNCE (see loss.h). */
#include "train/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dlv_contrastive_loss(const float *v, const float *t, int64_t n, int64_t dim,
                          double logit_scale, double *loss, float *dv, float *dt,
                          double *dlogit_scale)
{
    const int clamped = logit_scale > DLV_LOGIT_SCALE_MAX;
    const double s = exp(clamped ? DLV_LOGIT_SCALE_MAX : logit_scale);
    const size_t nn = (size_t)n * (size_t)n;
    double *cos_ = malloc(nn * sizeof *cos_), *dz = calloc(nn, sizeof *dz);
    if (!cos_ || !dz) {
        /* n is a batch size (small): this only fails when memory is gone;
         * report a NaN loss, which the caller turns into DLV_E_NUMERIC. */
        free(cos_);
        free(dz);
        *loss = (double)NAN;
        *dlogit_scale = 0;
        return;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double d = 0;
            for (int64_t k = 0; k < dim; k++)
                d += (double)v[i * dim + k] * (double)t[j * dim + k];
            cos_[i * n + j] = d;
        }
    /* Rows: image i against all texts; columns: text j against all images.
     * dz = d L / d z with z = s * cos. */
    double total = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < n; i++) {
            double mx = -(double)INFINITY;
            for (int64_t j = 0; j < n; j++) {
                double z = s * (pass ? cos_[j * n + i] : cos_[i * n + j]);
                if (z > mx) mx = z;
            }
            double sum = 0;
            for (int64_t j = 0; j < n; j++)
                sum += exp(s * (pass ? cos_[j * n + i] : cos_[i * n + j]) - mx);
            double lse = mx + log(sum);
            total += lse - s * cos_[i * n + i];
            for (int64_t j = 0; j < n; j++) {
                size_t at = pass ? (size_t)(j * n + i) : (size_t)(i * n + j);
                double p = exp(s * cos_[at] - lse);
                dz[at] += (p - (i == j ? 1.0 : 0.0)) / (2.0 * (double)n);
            }
        }
    *loss = total / (2.0 * (double)n);
    double dls = 0;
    for (size_t a = 0; a < nn; a++) dls += dz[a] * cos_[a];
    /* d z / d logit_scale = s * cos. */
    *dlogit_scale = clamped ? 0.0 : dls * s;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < dim; k++) {
            double gv = 0, gt = 0;
            for (int64_t j = 0; j < n; j++) {
                gv += dz[i * n + j] * (double)t[j * dim + k];
                gt += dz[j * n + i] * (double)v[j * dim + k];
            }
            dv[i * dim + k] = (float)(s * gv);
            dt[i * dim + k] = (float)(s * gt);
        }
    free(cos_);
    free(dz);
}
