/* The arithmetic follows Pillow's Resample.c step by step (double-precision
 * weights from a float box, the same rounding of bounds and of fixed-point
 * coefficients), since a different but "equivalent" formula would move
 * pixels by one level. */
#include "image/resample.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef double (*filter_fn)(double x);

static double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

static double bilinear_filter(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_filter(double x)
{
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    /* Pillow writes the window's constants as floats. */
    return sin(x) / x * ((double)0.54f + (double)0.46f * cos(x));
}

static double bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc_filter(double x)
{
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_filter(double x)
{
    return (-3.0 <= x && x < 3.0) ? sinc_filter(x) * sinc_filter(x / 3) : 0.0;
}

typedef struct coeffs {
    int ksize;
    int *bounds;   /* [out][2]: first input index, count */
    int32_t *kk;   /* [out][ksize] fixed point */
} coeffs;

static void coeffs_free(coeffs *c)
{
    free(c->bounds);
    free(c->kk);
}

static dlv_status precompute(uint32_t in_size, uint32_t out_size, filter_fn filter,
                             double filter_support, coeffs *c)
{
    memset(c, 0, sizeof *c);
    /* Pillow's box is float (0, 0, w, h): in1 - in0 is a float. */
    float in0 = 0.0f, in1 = (float)in_size;
    double scale = (double)(in1 - in0) / (double)out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filter_support * filterscale;
    double ks = ceil(support) * 2 + 1;
    if (ks > 1e6 || (double)out_size * ks > 1e9)
        return dlv_error(DLV_E_UNSUPPORTED, "resize %u -> %u: filter too wide", (unsigned)in_size,
                         (unsigned)out_size);
    int ksize = (int)ks;
    size_t n = (size_t)out_size * (size_t)ksize;
    double *k = malloc(n * sizeof *k);
    c->kk = malloc(n * sizeof *c->kk);
    c->bounds = malloc((size_t)out_size * 2 * sizeof *c->bounds);
    if (!k || !c->kk || !c->bounds) {
        free(k);
        coeffs_free(c);
        return dlv_error_nomem("resampling coefficients", n * sizeof *k);
    }
    for (uint32_t xx = 0; xx < out_size; xx++) {
        double center = (double)in0 + ((double)xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > (int)in_size) xmax = (int)in_size;
        xmax -= xmin;
        double *kr = k + (size_t)xx * (size_t)ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = filter(((double)x + (double)xmin - center + 0.5) * ss);
            kr[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) kr[x] /= ww;
        for (; x < ksize; x++) kr[x] = 0;
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < n; i++)
        c->kk[i] = k[i] < 0 ? (int32_t)(-0.5 + k[i] * (1 << PRECISION_BITS))
                            : (int32_t)(0.5 + k[i] * (1 << PRECISION_BITS));
    free(k);
    /* Pillow sums in int; prove that 255 * sum |k| + 2^21 fits, so the
     * int32 passes are free of overflow for every filter and scale. */
    for (uint32_t xx = 0; xx < out_size; xx++) {
        int64_t total = 1 << (PRECISION_BITS - 1);
        for (int x = 0; x < ksize; x++) {
            int64_t v = c->kk[(size_t)xx * (size_t)ksize + (size_t)x];
            total += 255 * (v < 0 ? -v : v);
        }
        if (total > INT32_MAX) {
            coeffs_free(c);
            return dlv_error(DLV_E_UNSUPPORTED, "resize %u -> %u: coefficients overflow the "
                             "fixed-point sums", (unsigned)in_size, (unsigned)out_size);
        }
    }
    c->ksize = ksize;
    return DLV_OK;
}

/* Pillow's clip8: the sum's integer part, clamped to 0..255. */
static uint8_t clip8(int32_t ss)
{
    if (ss < 0) return 0;
    ss >>= PRECISION_BITS;
    return (uint8_t)(ss > 255 ? 255 : ss);
}

/* Rows [y0, y0 + out->height) of in, resampled along x into out. The sums
 * stay in int32 as in Pillow; precompute checked that they cannot overflow. */
static void horizontal(const dlv_rgb8 *in, uint32_t y0, const coeffs *c, dlv_rgb8 *out)
{
    for (uint32_t yy = 0; yy < out->height; yy++) {
        const uint8_t *src = in->px + (size_t)(yy + y0) * in->width * 3;
        uint8_t *dst = out->px + (size_t)yy * out->width * 3;
        for (uint32_t xx = 0; xx < out->width; xx++) {
            int xmin = c->bounds[2 * xx], xmax = c->bounds[2 * xx + 1];
            const int32_t *k = c->kk + (size_t)xx * (size_t)c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            const uint8_t *p = src + (size_t)xmin * 3;
            for (int x = 0; x < xmax; x++, p += 3) {
                s0 += (int32_t)p[0] * k[x];
                s1 += (int32_t)p[1] * k[x];
                s2 += (int32_t)p[2] * k[x];
            }
            dst[3 * xx] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
}

/* acc[i] += p[i] * k over a row: contiguous, and vectorizable (restrict)
 * where the target has a 32-bit vector multiply. */
static void accumulate_row(int32_t *restrict acc, const uint8_t *restrict p, int32_t k, size_t n)
{
    for (size_t i = 0; i < n; i++) acc[i] += (int32_t)p[i] * k;
}

/* Resampled along y; bounds are relative to in's first row. Each output row
 * accumulates whole input rows, which vectorizes and reads memory in order. */
static void vertical(const dlv_rgb8 *in, const coeffs *c, int shift, int32_t *acc,
                     dlv_rgb8 *out)
{
    size_t row = (size_t)in->width * 3;
    for (uint32_t yy = 0; yy < out->height; yy++) {
        int ymin = c->bounds[2 * yy] - shift, ymax = c->bounds[2 * yy + 1];
        const int32_t *k = c->kk + (size_t)yy * (size_t)c->ksize;
        for (size_t i = 0; i < row; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < ymax; y++)
            accumulate_row(acc, in->px + (size_t)(ymin + y) * row, k[y], row);
        uint8_t *dst = out->px + (size_t)yy * row;
        for (size_t i = 0; i < row; i++) dst[i] = clip8(acc[i]);
    }
}

dlv_status dlv_resample_rgb8(const dlv_rgb8 *in, uint32_t out_w, uint32_t out_h,
                             dlv_resample filter, dlv_rgb8 *out)
{
    out->px = NULL;
    out->width = out->height = 0;
    filter_fn fn;
    double support;
    switch (filter) {
    case DLV_RESAMPLE_BOX: fn = box_filter; support = 0.5; break;
    case DLV_RESAMPLE_BILINEAR: fn = bilinear_filter; support = 1.0; break;
    case DLV_RESAMPLE_HAMMING: fn = hamming_filter; support = 1.0; break;
    case DLV_RESAMPLE_BICUBIC: fn = bicubic_filter; support = 2.0; break;
    case DLV_RESAMPLE_LANCZOS: fn = lanczos_filter; support = 3.0; break;
    default:
        return dlv_error(DLV_E_UNSUPPORTED, "resample %d (nearest) is not supported; "
                         "use bilinear (2) or bicubic (3)", (int)filter);
    }
    if (!in->px || in->width == 0 || in->height == 0 || out_w == 0 || out_h == 0)
        return dlv_error(DLV_E_INVALID_ARG, "resize of an empty image (%ux%u -> %ux%u)",
                         (unsigned)in->width, (unsigned)in->height, (unsigned)out_w,
                         (unsigned)out_h);
    if (in->width > INT32_MAX || in->height > INT32_MAX || out_w > INT32_MAX ||
        out_h > INT32_MAX)
        return dlv_error(DLV_E_UNSUPPORTED, "resize: sides above 2^31 are not supported");
    if (out_w == in->width && out_h == in->height) {
        dlv_status st = dlv_rgb8_alloc(out, out_w, out_h);
        if (st == DLV_OK) memcpy(out->px, in->px, (size_t)out_w * out_h * 3);
        return st;
    }
    int need_h = out_w != in->width, need_v = out_h != in->height;
    coeffs cv, ch;
    memset(&ch, 0, sizeof ch);
    dlv_status st = precompute(in->height, out_h, fn, support, &cv);
    if (st != DLV_OK) return st;
    int first = cv.bounds[0];
    int last = cv.bounds[2 * out_h - 2] + cv.bounds[2 * out_h - 1];
    dlv_rgb8 tmp = {NULL, 0, 0};
    int32_t *acc = NULL;
    const dlv_rgb8 *src = in;
    int shift = 0;
    if (need_h) {
        st = precompute(in->width, out_w, fn, support, &ch);
        if (st == DLV_OK) st = dlv_rgb8_alloc(&tmp, out_w, (uint32_t)(last - first));
        if (st != DLV_OK) goto done;
        horizontal(in, (uint32_t)first, &ch, &tmp);
        src = &tmp;
        shift = first;
    }
    if (need_v) {
        acc = malloc((size_t)src->width * 3 * sizeof *acc);
        if (!acc) {
            st = dlv_error_nomem("resampling row", (size_t)src->width * 3 * sizeof *acc);
            goto done;
        }
        if ((st = dlv_rgb8_alloc(out, src->width, out_h)) != DLV_OK) goto done;
        vertical(src, &cv, shift, acc, out);
    } else {
        *out = tmp;
        tmp.px = NULL;
    }
done:
    free(acc);
    dlv_rgb8_free(&tmp);
    coeffs_free(&cv);
    coeffs_free(&ch);
    return st;
}
