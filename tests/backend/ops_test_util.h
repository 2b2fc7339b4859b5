/* Shared helpers of the compute-op tests: a seeded generator, tolerance
 * checks that name the failing element, and bf16/f16 rounding. Header-only
 * (static functions) so each test executable stays one translation unit. */
#ifndef DLV_TESTS_OPS_TEST_UTIL_H
#define DLV_TESTS_OPS_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "core/dtype.h"

/* xorshift64*: reproducible across platforms (no rand()). */
typedef struct rng {
    uint64_t s;
} rng;

static inline uint32_t rng_u32(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1DULL) >> 32);
}

/* Uniform in [lo, hi). */
static inline float rng_uniform(rng *r, float lo, float hi)
{
    double u = (double)(rng_u32(r) >> 8) / (double)(1u << 24);
    return (float)((double)lo + u * (double)(hi - lo));
}

static inline float *rand_floats(rng *r, size_t n, float lo, float hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(r, lo, hi);
    return p;
}

static inline float *alloc_floats(size_t n, float fill)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = fill;
    return p;
}

/* |got - ref| <= atol + rtol * |ref| for every element, else a failure
 * naming the element. */
static inline void check_close(const char *what, const float *got, const double *ref, size_t n,
                               double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double g = (double)got[i];
        double tol = atol + rtol * fabs(ref[i]);
        if (!(fabs(g - ref[i]) <= tol))
            fail_msg("%s: element %zu = %.9g, reference %.9g (|diff| %.3g > tol %.3g)", what, i,
                     g, ref[i], fabs(g - ref[i]), tol);
    }
}

static inline void assert_error_mentions(const char *needle)
{
    const char *msg = dlv_last_error();
    assert_non_null(msg);
    if (!strstr(msg, needle)) fail_msg("last error '%s' does not mention '%s'", msg, needle);
}

/* Stores n floats as dt (rounding to nearest even) into bytes; returns the
 * values as stored, widened back, for the reference. */
static inline void store_as(dlv_dtype dt, const float *src, size_t n, unsigned char *bytes,
                            double *widened)
{
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        if (dt == DLV_DTYPE_BF16) {
            uint16_t h = dlv_f32_to_bf16(v);
            memcpy(bytes + 2 * i, &h, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&v, &u, 4);
        } else if (dt == DLV_DTYPE_F16) {
            uint16_t h = dlv_f32_to_f16(v);
            memcpy(bytes + 2 * i, &h, 2);
            v = dlv_f16_to_f32(h);
        } else {
            memcpy(bytes + 4 * i, &v, 4);
        }
        if (widened) widened[i] = (double)v;
    }
}

static inline double *alloc_doubles(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

#endif
