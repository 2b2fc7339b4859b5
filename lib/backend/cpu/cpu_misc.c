/* Data-movement ops: parameter widening, elementwise add (residuals, biases,
 * position embeddings), embedding lookup and patch unfolding. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

/* Rows per chunk so that a chunk is worth handing to another thread. */
static int64_t grain_for(int64_t cols, int64_t work_per_elem)
{
    int64_t per_row = (cols > 0 ? cols : 1) * work_per_elem;
    return 32768 / per_row + 1;
}

void dlv_cpu_widen(float *dst, const void *src, dlv_dtype dt, int64_t n)
{
    const unsigned char *p = src;
    switch (dt) {
    case DLV_DTYPE_BF16:
        /* bf16 is the top half of an f32: widening is a shift. */
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&dst[i], &u, 4);
        }
        break;
    case DLV_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = dlv_f16_to_f32(h);
        }
        break;
    default: /* F32 (the wrappers admit nothing else) */
        memcpy(dst, p, (size_t)n * sizeof(float));
        break;
    }
}

/* f32 -> bf16, round to nearest even, NaN kept (quieted): the rule of
 * dlv_f32_to_bf16, written out over a row so that the compiler vectorises
 * it (DLV_CPU_CLONES). It rounds every activation entering a bf16 matmul,
 * so it is on the hot path. */
DLV_CPU_CLONES static void f32_to_bf16_row(uint16_t *restrict dst,
                                           const unsigned char *restrict src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, src + 4 * i, 4);
        uint16_t rounded = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        uint16_t quiet_nan = (uint16_t)((u >> 16) | 0x40u);
        dst[i] = (u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
    }
}

void dlv_cpu_to_bf16(uint16_t *dst, const void *src, dlv_dtype dt, int64_t n)
{
    const unsigned char *p = src;
    if (dt == DLV_DTYPE_BF16) {
        memcpy(dst, p, (size_t)n * 2);
    } else if (dt == DLV_DTYPE_F16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = dlv_f32_to_bf16(dlv_f16_to_f32(h));
        }
    } else {
        f32_to_bf16_row(dst, p, n);
    }
}

/* ---- add --------------------------------------------------------------- */

typedef struct add_job {
    float *out;
    const float *a;
    const unsigned char *b;   /* [rows, cols] in dt, or NULL when broadcasting */
    const float *b_row;       /* broadcast: the row, widened once */
    dlv_dtype dt;
    int64_t cols;
} add_job;

/* One element of a parameter tensor at any alignment. */
static float load_param(const unsigned char *p, dlv_dtype dt, int64_t i)
{
    uint16_t h;
    float f;
    switch (dt) {
    case DLV_DTYPE_BF16: {
        memcpy(&h, p + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(&f, &u, 4);
        return f;
    }
    case DLV_DTYPE_F16:
        memcpy(&h, p + 2 * i, 2);
        return dlv_f16_to_f32(h);
    default:
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
}

static void add_rows(void *ctx, int64_t begin, int64_t end)
{
    const add_job *j = ctx;
    size_t es = dlv_dtype_size(j->dt);
    for (int64_t r = begin; r < end; r++) {
        const float *a = j->a + r * j->cols;
        float *o = j->out + r * j->cols;
        if (j->b_row) {
            for (int64_t c = 0; c < j->cols; c++) o[c] = a[c] + j->b_row[c];
        } else {
            const unsigned char *b = j->b + (size_t)r * (size_t)j->cols * es;
            for (int64_t c = 0; c < j->cols; c++) o[c] = a[c] + load_param(b, j->dt, c);
        }
    }
}

dlv_status dlv_cpu_add(dlv_backend *be, float *out, const float *a, const void *b,
                       dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols)
{
    if (rows == 0 || cols == 0) return DLV_OK;
    add_job j = {.out = out, .a = a, .dt = b_dtype, .cols = cols};
    float *row = NULL;
    if (broadcast_b) {
        row = malloc((size_t)cols * sizeof *row);
        if (!row) return dlv_error_nomem("add: widened row", (size_t)cols * sizeof(float));
        dlv_cpu_widen(row, b, b_dtype, cols);
        j.b_row = row;
    } else {
        j.b = b;
    }
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), rows, grain_for(cols, 1), add_rows, &j);
    free(row);
    return DLV_OK;
}

/* ---- embedding ---------------------------------------------------------- */

typedef struct embed_job {
    float *out;
    const unsigned char *table;
    dlv_dtype dt;
    const int32_t *ids;
    int64_t dim;
} embed_job;

static void embed_rows(void *ctx, int64_t begin, int64_t end)
{
    const embed_job *j = ctx;
    size_t row_bytes = (size_t)j->dim * dlv_dtype_size(j->dt);
    for (int64_t t = begin; t < end; t++)
        dlv_cpu_widen(j->out + t * j->dim, j->table + (size_t)j->ids[t] * row_bytes, j->dt,
                      j->dim);
}

dlv_status dlv_cpu_embedding(dlv_backend *be, float *out, const void *table,
                             dlv_dtype table_dtype, const int32_t *ids, int64_t n_ids,
                             int64_t vocab, int64_t dim)
{
    dlv_status st = dlv_cpu_check_ids("embedding", ids, n_ids, vocab);
    if (st) return st;
    if (n_ids == 0 || dim == 0) return DLV_OK; /* out and table may be NULL */
    embed_job j = {.out = out, .table = table, .dt = table_dtype, .ids = ids, .dim = dim};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n_ids, grain_for(dim, 1), embed_rows, &j);
    return DLV_OK;
}

/* ---- im2col ------------------------------------------------------------- */

typedef struct im2col_job {
    float *out;
    const float *pixels;
    int64_t c, h, w, patch, n_px;
} im2col_job;

static void im2col_rows(void *ctx, int64_t begin, int64_t end)
{
    const im2col_job *j = ctx;
    int64_t p = j->patch, row_len = j->c * p * p;
    for (int64_t r = begin; r < end; r++) {
        int64_t py = r / j->n_px, px = r % j->n_px;
        float *o = j->out + r * row_len;
        for (int64_t ci = 0; ci < j->c; ci++)
            for (int64_t ky = 0; ky < p; ky++) {
                const float *src = j->pixels + (ci * j->h + py * p + ky) * j->w + px * p;
                memcpy(o + (ci * p + ky) * p, src, (size_t)p * sizeof *o);
            }
    }
}

dlv_status dlv_cpu_im2col_patches(dlv_backend *be, float *out, const float *pixels, int64_t c,
                                  int64_t h, int64_t w, int64_t patch)
{
    int64_t n_py = h / patch, n_px = w / patch;
    if (c == 0 || n_py == 0 || n_px == 0) return DLV_OK; /* out may be NULL */
    im2col_job j = {.out = out, .pixels = pixels, .c = c, .h = h, .w = w, .patch = patch,
                    .n_px = n_px};
    dlv_cpu_pool_run(dlv_cpu_pool_of(be), n_py * n_px, grain_for(c * patch * patch, 1),
                     im2col_rows, &j);
    return DLV_OK;
}
