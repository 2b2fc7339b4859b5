/* Cosine scores between embeddings: normalise on the host, then one GEMM on
 * the session's backend (out = I . T^T). Like torch.nn.functional.normalize,
 * a norm below 1e-12 is clamped, so an all-zero embedding scores 0. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "api/session.h"
#include "core/error.h"

#define NORM_EPS 1e-12

/* Copies n rows of dim floats, L2-normalised; NaN/Inf -> DLV_E_NUMERIC. */
static dlv_status normalise_rows(float *dst, const float *src, size_t n, size_t dim,
                                 const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double ss = 0.0;
        for (size_t j = 0; j < dim; j++) {
            float v = src[i * dim + j];
            if (!isfinite(v))
                return dlv_error(DLV_E_NUMERIC, "dlv_score: %s[%zu][%zu] is not finite", what,
                                 i, j);
            ss += (double)v * (double)v;
        }
        double norm = sqrt(ss);
        float inv = (float)(1.0 / (norm > NORM_EPS ? norm : NORM_EPS));
        for (size_t j = 0; j < dim; j++) dst[i * dim + j] = src[i * dim + j] * inv;
    }
    return DLV_OK;
}

DLV_API dlv_status dlv_score(dlv_session *session, const float *img, size_t n_img,
                             const float *txt, size_t n_txt, size_t dim, float *out,
                             size_t out_len)
{
    if (!session || !img || !txt || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_score: NULL argument");
    if (n_img == 0 || n_txt == 0 || dim == 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_score: empty input (n_img %zu, n_txt %zu, dim %zu)",
                         n_img, n_txt, dim);
    if (n_img > SIZE_MAX / n_txt || out_len < n_img * n_txt)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "dlv_score: out holds %zu floats, %zu x %zu needed",
                         out_len, n_img, n_txt);
    if (n_img > SIZE_MAX / sizeof(float) / dim || n_txt > SIZE_MAX / sizeof(float) / dim ||
        n_img > INT64_MAX / dim || n_txt > INT64_MAX / dim)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_score: inputs too large");

    size_t img_bytes = n_img * dim * sizeof(float);
    size_t txt_bytes = n_txt * dim * sizeof(float);
    size_t out_bytes = n_img * n_txt * sizeof(float);
    float *ni = malloc(img_bytes);
    float *nt = malloc(txt_bytes);
    dlv_buffer bi = {0}, bt = {0}, bo = {0};
    dlv_status st = (ni && nt) ? DLV_OK : dlv_error_nomem("dlv_score", img_bytes + txt_bytes);
    if (st == DLV_OK) st = normalise_rows(ni, img, n_img, dim, "img");
    if (st == DLV_OK) st = normalise_rows(nt, txt, n_txt, dim, "txt");
    if (st == DLV_OK) st = dlv_buffer_alloc(session->backend, img_bytes, &bi);
    if (st == DLV_OK) st = dlv_buffer_alloc(session->backend, txt_bytes, &bt);
    if (st == DLV_OK) st = dlv_buffer_alloc(session->backend, out_bytes, &bo);
    if (st == DLV_OK) st = dlv_buffer_upload(&bi, 0, ni, img_bytes);
    if (st == DLV_OK) st = dlv_buffer_upload(&bt, 0, nt, txt_bytes);
    if (st == DLV_OK) {
        dlv_matmul_args a = {
            .struct_size = sizeof a, .trans_a = DLV_NO_TRANS, .trans_b = DLV_TRANS,
            .m = (int64_t)n_img, .n = (int64_t)n_txt, .k = (int64_t)dim,
            .alpha = 1.0f, .beta = 0.0f,
            .a = bi.ptr, .a_dtype = DLV_DTYPE_F32, .lda = (int64_t)dim,
            .b = bt.ptr, .b_dtype = DLV_DTYPE_F32, .ldb = (int64_t)dim,
            .c = bo.ptr, .ldc = (int64_t)n_txt,
        };
        st = dlv_matmul(session->backend, &a);
    }
    if (st == DLV_OK) st = dlv_buffer_download(out, &bo, 0, out_bytes);
    dlv_buffer_free(&bi);
    dlv_buffer_free(&bt);
    dlv_buffer_free(&bo);
    free(ni);
    free(nt);
    return st;
}
