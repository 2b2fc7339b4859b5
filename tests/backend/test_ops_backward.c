/* The backward ops (training) on the CPU backend against central finite
 * differences of double-precision reference forwards written here.
 *
 * For each op, L = sum dout . f(inputs) is evaluated in double on the very
 * values the library sees (f32 inputs, BF16/F16 weights as stored), and
 * dL/dx ~ (L(x + e) - L(x - e)) / 2e with e = 1e-6 (truncation ~e^2, rounding
 * ~1e-16 |L| / e: both far below the tolerance). The library's f32 gradient,
 * accumulated into a buffer that starts at random nonzero values, must
 * satisfy, element by element,
 *     |(got - init) - fd| <= 1e-4 + 1e-3 |fd|            (TOL_ATOL, TOL_RTOL)
 * Large tensors check a random subset of elements. softmax_cross_entropy's
 * losses are compared with a double reference at 1e-6 + 1e-6 |ref|. The
 * training GEMM patterns (dX += dY W, dW += dY^T X) are checked against a
 * double product at k (1e-6 + 1e-6 |ref|) like test_ops_cpu.c. The largest
 * error seen per op is printed at the end. A separate test checks that 1 and
 * 4 threads agree bit for bit on shapes large enough to be split. */
#include "ops_test_util.h"

#define TOL_ATOL 1e-4
#define TOL_RTOL 1e-3
#define FD_EPS 1e-6

static const dlv_dtype param_dtypes[] = {DLV_DTYPE_F32, DLV_DTYPE_BF16, DLV_DTYPE_F16};

/* ---- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
    dlv_backend *be = NULL;
    dlv_backend_config cfg = {.n_threads = 4};
    if (dlv_backend_create("cpu", &cfg, &be) != DLV_OK) {
        print_error("cannot create the cpu backend: %s\n", dlv_last_error());
        return -1;
    }
    *state = be;
    return 0;
}

static int teardown(void **state)
{
    dlv_backend_destroy(*state);
    return 0;
}

/* ---- error statistics ---------------------------------------------------- */

typedef struct err_stat {
    char name[48];
    double max_abs;  /* max |got - ref| */
    double max_frac; /* max |got - ref| / tol */
    size_t n;
} err_stat;

static err_stat stats[64];
static int n_stats;

static err_stat *stat_for(const char *what)
{
    char name[48];
    /* Group by the op name: the text before the first ':' or ' '. */
    size_t len = strcspn(what, ": ");
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, what, len);
    name[len] = '\0';
    for (int i = 0; i < n_stats; i++)
        if (strcmp(stats[i].name, name) == 0) return &stats[i];
    if (n_stats == (int)(sizeof stats / sizeof stats[0])) return &stats[0];
    err_stat *s = &stats[n_stats++];
    memcpy(s->name, name, len + 1);
    return s;
}

static void check_one(err_stat *s, const char *what, size_t i, double got, double ref,
                      double atol, double rtol)
{
    double diff = fabs(got - ref), tol = atol + rtol * fabs(ref);
    if (diff > s->max_abs) s->max_abs = diff;
    if (diff / tol > s->max_frac) s->max_frac = diff / tol;
    s->n++;
    if (!(diff <= tol))
        fail_msg("%s: element %zu = %.9g, reference %.9g (|diff| %.3g > tol %.3g)", what, i,
                 got, ref, diff, tol);
}

static void check_vals(const char *what, const float *got, const double *ref, size_t n,
                       double atol, double rtol)
{
    err_stat *s = stat_for(what);
    for (size_t i = 0; i < n; i++) check_one(s, what, i, (double)got[i], ref[i], atol, rtol);
}

/* ---- finite differences --------------------------------------------------- */

typedef double (*loss_fn)(const void *ctx);

/* Checks the gradient w.r.t. the double array x (which ctx reads) of n
 * elements: got[i] - init[i] (init NULL: 0) against the central difference,
 * at every element, or at max_checks random ones if n is larger. */
static void fd_check(const char *what, loss_fn f, const void *ctx, double *x, size_t n,
                     const float *got, const float *init, size_t max_checks, rng *r)
{
    err_stat *s = stat_for(what);
    size_t checks = n <= max_checks ? n : max_checks;
    for (size_t c = 0; c < checks; c++) {
        size_t i = n <= max_checks ? c : (size_t)rng_u32(r) % n;
        double save = x[i];
        x[i] = save + FD_EPS;
        double lp = f(ctx);
        x[i] = save - FD_EPS;
        double lm = f(ctx);
        x[i] = save;
        double fd = (lp - lm) / (2.0 * FD_EPS);
        double g = (double)got[i] - (init ? (double)init[i] : 0.0);
        check_one(s, what, i, g, fd, TOL_ATOL, TOL_RTOL);
    }
}

static double *to_doubles(const float *x, size_t n)
{
    double *d = alloc_doubles(n);
    for (size_t i = 0; i < n; i++) d[i] = (double)x[i];
    return d;
}

static float *copy_floats(const float *x, size_t n)
{
    float *p = alloc_floats(n, 0.0f);
    memcpy(p, x, n * sizeof *p);
    return p;
}

/* ---- norms ---------------------------------------------------------------- */

typedef struct norm_ctx {
    const double *x, *w, *b, *g; /* w, b: [cols] (ones / zeros when absent) */
    int64_t rows, cols;
    double eps;
    int kind; /* 0 rmsnorm, 1 layernorm, 2 l2 */
} norm_ctx;

static double norm_loss(const void *vctx)
{
    const norm_ctx *c = vctx;
    double L = 0.0;
    int64_t n = c->cols;
    for (int64_t r = 0; r < c->rows; r++) {
        const double *x = c->x + r * n, *g = c->g + r * n;
        double s = 0.0, ss = 0.0;
        for (int64_t i = 0; i < n; i++) s += x[i];
        double mean = c->kind == 1 ? s / (double)n : 0.0;
        for (int64_t i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
        double scale;
        if (c->kind == 2) {
            double norm = sqrt(ss);
            scale = 1.0 / (norm > 1e-12 ? norm : 1e-12);
        } else {
            scale = 1.0 / sqrt(ss / (double)n + c->eps);
        }
        for (int64_t i = 0; i < n; i++) {
            double y = (x[i] - mean) * scale;
            if (c->kind != 2) y = y * c->w[i] + c->b[i];
            L += g[i] * y;
        }
    }
    return L;
}

typedef struct norm_case {
    int64_t rows, cols;
    float eps;
    int has_weight, want_dweight, want_dbias;
    dlv_dtype dt;
} norm_case;

/* kind 0 rmsnorm, 1 layernorm. */
static void run_norm_case(dlv_backend *be, int kind, const norm_case *t, uint64_t seed)
{
    const char *what = kind == 0 ? "rmsnorm_backward" : "layernorm_backward";
    char label[160];
    rng r = {seed};
    int64_t R = t->rows, C = t->cols;
    size_t N = (size_t)(R * C);
    float *x = rand_floats(&r, N, -2.0f, 2.0f);
    /* A shifted row: LayerNorm must see through the mean. */
    if (R > 1)
        for (int64_t c = 0; c < C; c++) x[C + c] += 5.0f;
    float *g = rand_floats(&r, N, -1.0f, 1.0f);
    float *wsrc = rand_floats(&r, (size_t)C, 0.5f, 1.5f);
    unsigned char *wbytes = malloc((size_t)C * 4 + 1);
    assert_non_null(wbytes);
    double *w = alloc_doubles((size_t)C), *b = alloc_doubles((size_t)C);
    /* Misaligned by one byte: the weight is read at any alignment. */
    store_as(t->dt, wsrc, (size_t)C, wbytes + 1, w);
    if (!t->has_weight)
        for (int64_t c = 0; c < C; c++) w[c] = 1.0;
    float *dx_init = rand_floats(&r, N, -1.0f, 1.0f);
    float *dw_init = rand_floats(&r, (size_t)C, -1.0f, 1.0f);
    float *db_init = rand_floats(&r, (size_t)C, -1.0f, 1.0f);
    float *dx = copy_floats(dx_init, N), *dw = copy_floats(dw_init, (size_t)C),
          *db = copy_floats(db_init, (size_t)C);
    const void *wp = t->has_weight ? (const void *)(wbytes + 1) : NULL;
    if (kind == 0)
        assert_int_equal(dlv_rmsnorm_backward(be, dx, t->want_dweight ? dw : NULL, g, x, wp,
                                              t->dt, R, C, t->eps), DLV_OK);
    else
        assert_int_equal(dlv_layernorm_backward(be, dx, t->want_dweight ? dw : NULL,
                                                t->want_dbias ? db : NULL, g, x, wp, t->dt, R,
                                                C, t->eps), DLV_OK);
    double *xd = to_doubles(x, N), *gd = to_doubles(g, N);
    norm_ctx ctx = {.x = xd, .w = w, .b = b, .g = gd, .rows = R, .cols = C,
                    .eps = (double)t->eps, .kind = kind};
    snprintf(label, sizeof label, "%s: dinp (%lldx%lld, %s, weight %d)", what, (long long)R,
             (long long)C, dlv_dtype_name(t->dt), t->has_weight);
    fd_check(label, norm_loss, &ctx, xd, N, dx, dx_init, 400, &r);
    if (t->want_dweight) {
        snprintf(label, sizeof label, "%s: dweight (%lldx%lld, %s)", what, (long long)R,
                 (long long)C, dlv_dtype_name(t->dt));
        fd_check(label, norm_loss, &ctx, w, (size_t)C, dw, dw_init, 400, &r);
    } else {
        assert_memory_equal(dw, dw_init, (size_t)C * sizeof(float));
    }
    if (kind == 1 && t->want_dbias) {
        snprintf(label, sizeof label, "%s: dbias (%lldx%lld)", what, (long long)R,
                 (long long)C);
        fd_check(label, norm_loss, &ctx, b, (size_t)C, db, db_init, 400, &r);
    } else {
        assert_memory_equal(db, db_init, (size_t)C * sizeof(float));
    }
    free(x); free(g); free(wsrc); free(wbytes); free(w); free(b); free(dx_init);
    free(dw_init); free(db_init); free(dx); free(dw); free(db); free(xd); free(gd);
}

static const norm_case norm_cases[] = {
    {1, 1, 1e-5f, 1, 1, 1, DLV_DTYPE_F32},
    {7, 13, 1e-5f, 1, 1, 1, DLV_DTYPE_F32},
    {5, 64, 1e-6f, 1, 1, 1, DLV_DTYPE_BF16},
    {9, 33, 1e-5f, 1, 1, 0, DLV_DTYPE_F16},
    {6, 17, 1e-5f, 0, 1, 1, DLV_DTYPE_F32},  /* no weight: dweight w.r.t. an implicit 1 */
    {4, 10, 1e-5f, 1, 0, 0, DLV_DTYPE_BF16}, /* NULL dweight and dbias */
    {3, 8, 0.0f, 1, 0, 1, DLV_DTYPE_F32},    /* eps 0 */
    {300, 131, 1e-5f, 1, 1, 1, DLV_DTYPE_BF16}, /* split over threads (subset checked) */
};

static void test_rmsnorm_backward(void **state)
{
    for (size_t i = 0; i < sizeof norm_cases / sizeof norm_cases[0]; i++)
        run_norm_case(*state, 0, &norm_cases[i], 100 + i);
}

static void test_layernorm_backward(void **state)
{
    for (size_t i = 0; i < sizeof norm_cases / sizeof norm_cases[0]; i++)
        run_norm_case(*state, 1, &norm_cases[i], 200 + i);
    /* Every weight dtype with both parameter gradients. */
    for (size_t d = 0; d < 3; d++) {
        norm_case t = {5, 21, 1e-5f, 1, 1, 1, param_dtypes[d]};
        run_norm_case(*state, 1, &t, 250 + d);
        run_norm_case(*state, 0, &t, 260 + d);
    }
}

static void test_l2_normalize_backward(void **state)
{
    dlv_backend *be = *state;
    const int64_t shapes[][2] = {{1, 1}, {6, 11}, {3, 64}, {260, 140}};
    for (size_t s = 0; s < 4; s++) {
        rng r = {300 + s};
        int64_t R = shapes[s][0], C = shapes[s][1];
        size_t N = (size_t)(R * C);
        float *x = rand_floats(&r, N, -2.0f, 2.0f), *g = rand_floats(&r, N, -1.0f, 1.0f);
        float *init = rand_floats(&r, N, -1.0f, 1.0f), *dx = copy_floats(init, N);
        assert_int_equal(dlv_l2_normalize_backward(be, dx, g, x, R, C), DLV_OK);
        double *xd = to_doubles(x, N), *gd = to_doubles(g, N);
        norm_ctx ctx = {.x = xd, .g = gd, .rows = R, .cols = C, .kind = 2};
        fd_check("l2_normalize_backward", norm_loss, &ctx, xd, N, dx, init, 400, &r);
        free(x); free(g); free(init); free(dx); free(xd); free(gd);
    }
    /* A zero row: the norm is clamped to 1e-12 and passes no gradient, so
     * dx = dout / 1e-12 (torch's autograd). */
    float x[3] = {0, 0, 0}, g[3] = {1e-6f, -2e-6f, 0}, dx[3] = {0, 0, 0};
    assert_int_equal(dlv_l2_normalize_backward(be, dx, g, x, 1, 3), DLV_OK);
    double ref[3] = {1e6, -2e6, 0};
    check_vals("l2_normalize_backward: zero row", dx, ref, 3, 0.0, 1e-6);
}

/* ---- bias ----------------------------------------------------------------- */

typedef struct bias_ctx {
    const double *b, *g;
    int64_t rows, cols;
} bias_ctx;

static double bias_loss(const void *vctx)
{
    const bias_ctx *c = vctx;
    double L = 0.0;
    for (int64_t r = 0; r < c->rows; r++)
        for (int64_t i = 0; i < c->cols; i++) L += c->g[r * c->cols + i] * c->b[i];
    return L;
}

static void test_bias_backward(void **state)
{
    dlv_backend *be = *state;
    const int64_t shapes[][2] = {{1, 5}, {13, 7}, {400, 97}, {0, 4}};
    for (size_t s = 0; s < 4; s++) {
        rng r = {400 + s};
        int64_t R = shapes[s][0], C = shapes[s][1];
        size_t N = (size_t)(R * C);
        float *g = rand_floats(&r, N, -1.0f, 1.0f);
        float *init = rand_floats(&r, (size_t)C, -1.0f, 1.0f), *db = copy_floats(init, (size_t)C);
        assert_int_equal(dlv_bias_backward(be, db, g, R, C), DLV_OK);
        double *gd = to_doubles(g, N), *b = alloc_doubles((size_t)C);
        bias_ctx ctx = {.b = b, .g = gd, .rows = R, .cols = C};
        fd_check("bias_backward", bias_loss, &ctx, b, (size_t)C, db, init, 200, &r);
        free(g); free(init); free(db); free(gd); free(b);
    }
}

/* ---- rope ----------------------------------------------------------------- */

typedef struct rope_table_ctx {
    const double *x, *g;
    const float *cos_t, *sin_t; /* [T, D/2] */
    int64_t T, H, D;
} rope_table_ctx;

/* L = g . R x with R the rotation by the tables (their f32 values, the
 * products in double). */
static double rope_table_loss(const void *vctx)
{
    const rope_table_ctx *c = vctx;
    int64_t half = c->D / 2;
    double L = 0.0;
    for (int64_t t = 0; t < c->T; t++)
        for (int64_t i = 0; i < half; i++) {
            double cs = (double)c->cos_t[t * half + i], sn = (double)c->sin_t[t * half + i];
            for (int64_t h = 0; h < c->H; h++) {
                int64_t o = (t * c->H + h) * c->D;
                double x1 = c->x[o + i], x2 = c->x[o + i + half];
                L += c->g[o + i] * (x1 * cs - x2 * sn) + c->g[o + i + half] * (x2 * cs + x1 * sn);
            }
        }
    return L;
}

/* rope_table_backward: finite differences of g . R x, the transpose
 * identity <R x, g> = <x, R^T g> (in double over the f32 results, to f32
 * rounding), and R R^T g = g for tables of unit (cos, sin) pairs. */
static void test_rope_table_backward(void **state)
{
    dlv_backend *be = *state;
    const struct { int64_t T, H, D; } cases[] = {{1, 1, 2}, {7, 3, 8}, {5, 2, 64}, {300, 2, 32}};
    for (size_t s = 0; s < 4; s++) {
        rng r = {520 + s};
        int64_t T = cases[s].T, H = cases[s].H, D = cases[s].D, half = D / 2;
        size_t N = (size_t)(T * H * D), NT = (size_t)(T * half);
        float *x = rand_floats(&r, N, -1.0f, 1.0f), *g = rand_floats(&r, N, -1.0f, 1.0f);
        float *ang = rand_floats(&r, NT, -100.0f, 100.0f);
        float *cos_t = alloc_floats(NT, 0.0f), *sin_t = alloc_floats(NT, 0.0f);
        for (size_t i = 0; i < NT; i++) {
            cos_t[i] = cosf(ang[i]);
            sin_t[i] = sinf(ang[i]);
        }
        float *dx = copy_floats(g, N);
        assert_int_equal(dlv_rope_table_backward(be, dx, cos_t, sin_t, T, H, D), DLV_OK);
        double *xd = to_doubles(x, N), *gd = to_doubles(g, N);
        rope_table_ctx ctx = {.x = xd, .g = gd, .cos_t = cos_t, .sin_t = sin_t, .T = T, .H = H,
                              .D = D};
        /* In place, not accumulated: dx is the gradient itself. */
        fd_check("rope_table_backward", rope_table_loss, &ctx, xd, N, dx, NULL, 300, &r);
        float *rx = copy_floats(x, N);
        assert_int_equal(dlv_rope_table(be, rx, cos_t, sin_t, T, H, D), DLV_OK);
        double lhs = 0.0, rhs = 0.0, scale = 0.0;
        for (size_t i = 0; i < N; i++) {
            lhs += (double)rx[i] * (double)g[i];
            rhs += (double)x[i] * (double)dx[i];
            scale += fabs((double)x[i]) + fabs((double)g[i]);
        }
        if (fabs(lhs - rhs) > 1e-6 * scale)
            fail_msg("rope_table_backward: <R x, g> = %.9g, <x, R^T g> = %.9g", lhs, rhs);
        float *y = copy_floats(dx, N);
        assert_int_equal(dlv_rope_table(be, y, cos_t, sin_t, T, H, D), DLV_OK);
        check_vals("rope_table_backward: R R^T g == g", y, gd, N, 2e-6, 0.0);
        free(x); free(g); free(ang); free(cos_t); free(sin_t); free(dx); free(xd); free(gd);
        free(rx); free(y);
    }
}

typedef struct rope_ctx {
    const double *x, *g;
    const int32_t *pos;
    const float *inv_freq;
    int64_t T, H, D;
} rope_ctx;

static double rope_loss(const void *vctx)
{
    const rope_ctx *c = vctx;
    int64_t half = c->D / 2;
    double L = 0.0;
    for (int64_t t = 0; t < c->T; t++)
        for (int64_t i = 0; i < half; i++) {
            /* The forward's f32 angle (HF), cos/sin in double. */
            float a = (float)c->pos[t] * c->inv_freq[i];
            double cs = cos((double)a), sn = sin((double)a);
            for (int64_t h = 0; h < c->H; h++) {
                int64_t o = (t * c->H + h) * c->D;
                double x1 = c->x[o + i], x2 = c->x[o + i + half];
                L += c->g[o + i] * (x1 * cs - x2 * sn) + c->g[o + i + half] * (x2 * cs + x1 * sn);
            }
        }
    return L;
}

static void test_rope_backward(void **state)
{
    dlv_backend *be = *state;
    const struct { int64_t T, H, D; double theta; } cases[] = {
        {1, 1, 2, 10000.0}, {7, 3, 8, 10000.0}, {5, 2, 64, 1e6}, {300, 2, 32, 10000.0}};
    for (size_t s = 0; s < 4; s++) {
        rng r = {500 + s};
        int64_t T = cases[s].T, H = cases[s].H, D = cases[s].D;
        size_t N = (size_t)(T * H * D);
        float *x = rand_floats(&r, N, -1.0f, 1.0f), *g = rand_floats(&r, N, -1.0f, 1.0f);
        int32_t *pos = malloc((size_t)T * sizeof *pos);
        assert_non_null(pos);
        for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t * 13 % 97 + (s == 2 ? 4000 : 0));
        float *inv = malloc((size_t)(D / 2) * sizeof *inv);
        assert_non_null(inv);
        for (int64_t i = 0; i < D / 2; i++)
            inv[i] = 1.0f / powf((float)cases[s].theta, (float)(2 * i) / (float)D);
        float *dx = copy_floats(g, N);
        assert_int_equal(dlv_rope_backward(be, dx, pos, T, H, D, cases[s].theta), DLV_OK);
        double *xd = to_doubles(x, N), *gd = to_doubles(g, N);
        rope_ctx ctx = {.x = xd, .g = gd, .pos = pos, .inv_freq = inv, .T = T, .H = H, .D = D};
        /* In place, not accumulated: dx is the gradient itself. */
        fd_check("rope_backward", rope_loss, &ctx, xd, N, dx, NULL, 300, &r);
        /* R^T undoes R: rope(rope_backward(v)) == v to f32 rounding. */
        float *y = copy_floats(dx, N);
        assert_int_equal(dlv_rope(be, y, pos, T, H, D, cases[s].theta), DLV_OK);
        double *gref = to_doubles(g, N);
        check_vals("rope_backward: rope(rope_backward(g)) == g", y, gref, N, 2e-6, 0.0);
        free(x); free(g); free(pos); free(inv); free(dx); free(xd); free(gd); free(y);
        free(gref);
    }
}

/* ---- attention ------------------------------------------------------------ */

typedef struct attn_ctx {
    const double *q, *k, *v, *g;
    const uint8_t *mask;
    int64_t B, NQ, NKV, H, HKV, D;
    double scale;
    int causal;
} attn_ctx;

static double attn_loss(const void *vctx)
{
    const attn_ctx *c = vctx;
    int64_t ldq = c->H * c->D, ldk = c->HKV * c->D, group = c->H / c->HKV;
    double L = 0.0;
    double *p = alloc_doubles((size_t)c->NKV);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->H; h++) {
            int64_t kh = h / group;
            for (int64_t i = 0; i < c->NQ; i++) {
                const double *q = c->q + (b * c->NQ + i) * ldq + h * c->D;
                double mx = -(double)INFINITY;
                int any = 0;
                for (int64_t j = 0; j < c->NKV; j++) {
                    int ok = (!c->mask || c->mask[b * c->NKV + j]) &&
                             (!c->causal || j <= i + (c->NKV - c->NQ));
                    if (!ok) {
                        p[j] = (double)NAN;
                        continue;
                    }
                    const double *k = c->k + (b * c->NKV + j) * ldk + kh * c->D;
                    double s = 0.0;
                    for (int64_t d = 0; d < c->D; d++) s += q[d] * k[d];
                    p[j] = c->scale * s;
                    if (!any || p[j] > mx) mx = p[j];
                    any = 1;
                }
                if (!any) continue; /* zeros: no contribution */
                double sum = 0.0;
                for (int64_t j = 0; j < c->NKV; j++) {
                    p[j] = isnan(p[j]) ? 0.0 : exp(p[j] - mx);
                    sum += p[j];
                }
                const double *g = c->g + (b * c->NQ + i) * ldq + h * c->D;
                for (int64_t j = 0; j < c->NKV; j++) {
                    if (p[j] == 0.0) continue;
                    const double *v = c->v + (b * c->NKV + j) * ldk + kh * c->D;
                    double gv = 0.0;
                    for (int64_t d = 0; d < c->D; d++) gv += g[d] * v[d];
                    L += p[j] / sum * gv;
                }
            }
        }
    free(p);
    return L;
}

typedef struct attn_case {
    int64_t B, NQ, NKV, H, HKV, D;
    int causal;
    int mask; /* 0 none, 1 right padding, 2 left padding (empty causal rows) */
    int big;  /* scores far outside expf's range (below) */
} attn_case;

/* On a grid of 1/64, so that q.k is exact in f32. */
static void to_grid(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = roundf(x[i] * 64.0f) / 64.0f;
}

static void run_attention_case(dlv_backend *be, const attn_case *t, uint64_t seed)
{
    rng r = {seed};
    int64_t ldq = t->H * t->D, ldk = t->HKV * t->D;
    size_t NQ = (size_t)(t->B * t->NQ * ldq), NK = (size_t)(t->B * t->NKV * ldk);
    float *q = rand_floats(&r, NQ, -1.5f, 1.5f), *k = rand_floats(&r, NK, -1.5f, 1.5f);
    float *v = rand_floats(&r, NK, -1.0f, 1.0f), *g = rand_floats(&r, NQ, -1.0f, 1.0f);
    uint8_t *mask = NULL;
    if (t->mask) {
        mask = malloc((size_t)(t->B * t->NKV));
        assert_non_null(mask);
        for (int64_t b = 0; b < t->B; b++)
            for (int64_t j = 0; j < t->NKV; j++) {
                int64_t pad = b % 2 == 0 ? 0 : (t->NKV + 1) / 3 + 1; /* odd sequences padded */
                if (pad >= t->NKV) pad = t->NKV - 1;
                mask[b * t->NKV + j] = t->mask == 1 ? j < t->NKV - pad : j >= pad;
            }
    }
    float *dq_init = rand_floats(&r, NQ, -1.0f, 1.0f), *dk_init = rand_floats(&r, NK, -1, 1);
    float *dv_init = rand_floats(&r, NK, -1.0f, 1.0f);
    float *dq = copy_floats(dq_init, NQ), *dk = copy_floats(dk_init, NK),
          *dv = copy_floats(dv_init, NK);
    float scale = 1.0f / sqrtf((float)t->D);
    if (t->big) {
        /* Scores of +-120 plus a few units: dimension 0 of every key is 20
         * and of every query +-24 (alternating over tokens and heads), the
         * scale 0.25, so scale q.k is exact in f32 and far outside expf's
         * range (overflow above 88.7, underflow below about -103); the
         * recomputed softmax must subtract each row's maximum. */
        to_grid(q, NQ);
        to_grid(k, NK);
        for (size_t row = 0; row < NQ / (size_t)t->D; row++)
            q[row * (size_t)t->D] = row % 2 ? -24.0f : 24.0f;
        for (size_t row = 0; row < NK / (size_t)t->D; row++) k[row * (size_t)t->D] = 20.0f;
        scale = 0.25f;
    }
    dlv_attention_bw_args a = {.struct_size = sizeof a, .dq = dq, .dk = dk, .dv = dv,
                               .dout = g, .q = q, .k = k, .v = v, .key_mask = mask,
                               .batch = t->B, .n_q = t->NQ, .n_kv = t->NKV, .n_heads = t->H,
                               .n_kv_heads = t->HKV, .head_dim = t->D, .scale = scale,
                               .causal = t->causal};
    assert_int_equal(dlv_attention_backward(be, &a), DLV_OK);
    double *qd = to_doubles(q, NQ), *kd = to_doubles(k, NK), *vd = to_doubles(v, NK),
           *gd = to_doubles(g, NQ);
    attn_ctx ctx = {.q = qd, .k = kd, .v = vd, .g = gd, .mask = mask, .B = t->B, .NQ = t->NQ,
                    .NKV = t->NKV, .H = t->H, .HKV = t->HKV, .D = t->D,
                    .scale = (double)scale, .causal = t->causal};
    char label[160];
    snprintf(label, sizeof label, "attention_backward: %s (B%lld q%lld kv%lld h%lld/%lld "
             "d%lld causal %d mask %d%s)", "dq", (long long)t->B, (long long)t->NQ,
             (long long)t->NKV, (long long)t->H, (long long)t->HKV, (long long)t->D, t->causal,
             t->mask, t->big ? ", scores +-120" : "");
    fd_check(label, attn_loss, &ctx, qd, NQ, dq, dq_init, 300, &r);
    memcpy(label + 20, "dk", 2);
    fd_check(label, attn_loss, &ctx, kd, NK, dk, dk_init, 300, &r);
    memcpy(label + 20, "dv", 2);
    fd_check(label, attn_loss, &ctx, vd, NK, dv, dv_init, 300, &r);
    free(q); free(k); free(v); free(g); free(mask); free(dq_init); free(dk_init);
    free(dv_init); free(dq); free(dk); free(dv); free(qd); free(kd); free(vd); free(gd);
}

static void test_attention_backward(void **state)
{
    static const attn_case cases[] = {
        {1, 1, 1, 1, 1, 1, 0, 0, 0},
        {2, 5, 5, 4, 2, 6, 1, 1, 0},  /* GQA 4/2, causal + right padding */
        {2, 6, 6, 4, 2, 4, 1, 2, 0},  /* left padding: empty causal rows */
        {1, 3, 7, 2, 2, 4, 1, 0, 0},  /* n_q < n_kv: bottom-right causal */
        {3, 4, 5, 3, 1, 5, 0, 1, 0},  /* MQA, bidirectional (vision) with a mask */
        {1, 9, 9, 2, 1, 3, 0, 0, 0},
        {1, 6, 6, 2, 2, 4, 0, 0, 1},  /* scores +-120 */
        {2, 5, 5, 4, 2, 6, 1, 1, 1},  /* scores +-120, GQA, causal + padding */
        /* Two query blocks (32 rows) and two key blocks (64 keys) of the
         * fused kernels, partial last blocks, a padded head size (33) and
         * one that is not (32). */
        {1, 35, 67, 2, 1, 33, 1, 1, 0},
        {2, 34, 66, 2, 2, 32, 0, 2, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_attention_case(*state, &cases[i], 600 + i);
    /* No keys: nothing to add, and nothing read. */
    dlv_attention_bw_args a = {.struct_size = sizeof a, .batch = 2, .n_q = 0, .n_kv = 0,
                               .n_heads = 2, .n_kv_heads = 1, .head_dim = 4, .scale = 0.5f};
    assert_int_equal(dlv_attention_backward(*state, &a), DLV_OK);
    float dq[8] = {1, 2, 3, 4, 5, 6, 7, 8}, q[8] = {0}, g[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    a.batch = 1; a.n_q = 1; a.dq = dq; a.q = q; a.dout = g;
    assert_int_equal(dlv_attention_backward(*state, &a), DLV_OK);
    for (int i = 0; i < 8; i++) assert_true(dq[i] == (float)(i + 1));
}

/* ---- activations and SwiGLU ---------------------------------------------- */

static double act_ref(dlv_op_act act, double x)
{
    switch (act) {
    case DLV_OP_ACT_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    case DLV_OP_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case DLV_OP_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case DLV_OP_ACT_SILU: return x / (1.0 + exp(-x));
    default: return x > 0.0 ? x : 0.0;
    }
}

typedef struct elem_ctx {
    const double *x, *up, *g;
    dlv_op_act act;
    int64_t n;
    int swiglu;
} elem_ctx;

static double elem_loss(const void *vctx)
{
    const elem_ctx *c = vctx;
    double L = 0.0;
    for (int64_t i = 0; i < c->n; i++) {
        double y = c->swiglu ? act_ref(DLV_OP_ACT_SILU, c->x[i]) * c->up[i]
                             : act_ref(c->act, c->x[i]);
        L += c->g[i] * y;
    }
    return L;
}

static void test_activation_backward(void **state)
{
    dlv_backend *be = *state;
    static const char *const names[DLV_OP_ACT_COUNT] = {"quick_gelu", "gelu", "gelu_tanh",
                                                        "silu", "relu"};
    const int64_t sizes[] = {1, 37, 40000};
    for (int act = 0; act < DLV_OP_ACT_COUNT; act++)
        for (size_t s = 0; s < 3; s++) {
            rng r = {700 + (uint64_t)act * 10 + s};
            int64_t n = sizes[s];
            float *x = rand_floats(&r, (size_t)n, -6.0f, 6.0f);
            /* relu: keep away from the kink, where a difference quotient lies. */
            if (act == DLV_OP_ACT_RELU)
                for (int64_t i = 0; i < n; i++)
                    if (fabsf(x[i]) < 1e-3f) x[i] = 0.5f;
            float *g = rand_floats(&r, (size_t)n, -1.0f, 1.0f);
            float *init = rand_floats(&r, (size_t)n, -1.0f, 1.0f);
            float *dx = copy_floats(init, (size_t)n);
            assert_int_equal(dlv_activation_backward(be, (dlv_op_act)act, dx, g, x, n), DLV_OK);
            double *xd = to_doubles(x, (size_t)n), *gd = to_doubles(g, (size_t)n);
            elem_ctx ctx = {.x = xd, .g = gd, .act = (dlv_op_act)act, .n = n};
            char label[96];
            snprintf(label, sizeof label, "activation_backward: %s n=%lld", names[act],
                     (long long)n);
            fd_check(label, elem_loss, &ctx, xd, (size_t)n, dx, init, n > 1000 ? 150 : 1000,
                     &r);
            free(x); free(g); free(init); free(dx); free(xd); free(gd);
        }
    /* relu at the kink and at NaN: torch passes the gradient for NaN, not
     * for 0. */
    float x[3] = {0.0f, NAN, -0.0f}, g[3] = {1, 2, 3}, dx[3] = {0, 0, 0};
    assert_int_equal(dlv_activation_backward(be, DLV_OP_ACT_RELU, dx, g, x, 3), DLV_OK);
    assert_true(dx[0] == 0.0f && dx[1] == 2.0f && dx[2] == 0.0f);
}

static void test_swiglu_backward(void **state)
{
    dlv_backend *be = *state;
    const int64_t sizes[] = {1, 45, 40001};
    for (size_t s = 0; s < 3; s++) {
        rng r = {800 + s};
        int64_t n = sizes[s];
        size_t N = (size_t)n;
        float *gate = rand_floats(&r, N, -6.0f, 6.0f), *up = rand_floats(&r, N, -2.0f, 2.0f);
        float *g = rand_floats(&r, N, -1.0f, 1.0f);
        float *ig = rand_floats(&r, N, -1.0f, 1.0f), *iu = rand_floats(&r, N, -1.0f, 1.0f);
        float *dg = copy_floats(ig, N), *du = copy_floats(iu, N);
        assert_int_equal(dlv_swiglu_backward(be, dg, du, g, gate, up, n), DLV_OK);
        double *gd = to_doubles(gate, N), *ud = to_doubles(up, N), *od = to_doubles(g, N);
        elem_ctx ctx = {.x = gd, .up = ud, .g = od, .n = n, .swiglu = 1};
        fd_check("swiglu_backward: dgate", elem_loss, &ctx, gd, N, dg, ig, 150, &r);
        fd_check("swiglu_backward: dup", elem_loss, &ctx, ud, N, du, iu, 150, &r);
        free(gate); free(up); free(g); free(ig); free(iu); free(dg); free(du); free(gd);
        free(ud); free(od);
    }
}

/* ---- embedding -------------------------------------------------------------- */

typedef struct embed_ctx {
    const double *table, *g;
    const int32_t *ids;
    int64_t n, dim;
} embed_ctx;

static double embed_loss(const void *vctx)
{
    const embed_ctx *c = vctx;
    double L = 0.0;
    for (int64_t t = 0; t < c->n; t++)
        for (int64_t i = 0; i < c->dim; i++)
            L += c->g[t * c->dim + i] * c->table[(int64_t)c->ids[t] * c->dim + i];
    return L;
}

static void test_embedding_backward(void **state)
{
    dlv_backend *be = *state;
    const int64_t cases[][3] = {{1, 1, 1}, {9, 11, 7}, {300, 50, 150}}; /* n_ids, vocab, dim */
    for (size_t s = 0; s < 3; s++) {
        rng r = {900 + s};
        int64_t n = cases[s][0], V = cases[s][1], D = cases[s][2];
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        assert_non_null(ids);
        /* Repeated ids (the vocabulary is small) must add up. */
        for (int64_t t = 0; t < n; t++) ids[t] = (int32_t)(rng_u32(&r) % (uint32_t)V);
        size_t NT = (size_t)(V * D), NO = (size_t)(n * D);
        float *g = rand_floats(&r, NO, -1.0f, 1.0f);
        float *init = rand_floats(&r, NT, -1.0f, 1.0f), *dt = copy_floats(init, NT);
        assert_int_equal(dlv_embedding_backward(be, dt, g, ids, n, V, D), DLV_OK);
        double *table = alloc_doubles(NT), *gd = to_doubles(g, NO);
        embed_ctx ctx = {.table = table, .g = gd, .ids = ids, .n = n, .dim = D};
        fd_check("embedding_backward", embed_loss, &ctx, table, NT, dt, init, 300, &r);
        free(ids); free(g); free(init); free(dt); free(table); free(gd);
    }
}

/* ---- softmax cross-entropy ---------------------------------------------------- */

typedef struct xent_ctx {
    const double *logits;
    const int32_t *targets;
    int64_t n, V;
    double dscale;
} xent_ctx;

static double xent_row(const double *l, int64_t V, int32_t t)
{
    double mx = l[0];
    for (int64_t c = 1; c < V; c++) mx = l[c] > mx ? l[c] : mx;
    double s = 0.0;
    for (int64_t c = 0; c < V; c++) s += exp(l[c] - mx);
    return mx + log(s) - l[t];
}

static double xent_loss(const void *vctx)
{
    const xent_ctx *c = vctx;
    double L = 0.0;
    for (int64_t i = 0; i < c->n; i++)
        if (c->targets[i] >= 0) L += c->dscale * xent_row(c->logits + i * c->V, c->V, c->targets[i]);
    return L;
}

static void test_softmax_cross_entropy(void **state)
{
    dlv_backend *be = *state;
    const int64_t cases[][2] = {{1, 1}, {1, 2}, {7, 13}, {5, 1000}, {200, 300}};
    for (size_t s = 0; s < 5; s++) {
        rng r = {1000 + s};
        int64_t n = cases[s][0], V = cases[s][1];
        size_t N = (size_t)(n * V);
        float *logits = rand_floats(&r, N, -4.0f, 4.0f);
        /* A row far from zero: the max must be subtracted. */
        if (n > 2)
            for (int64_t c = 0; c < V; c++) logits[2 * V + c] += 80.0f;
        int32_t *t = malloc((size_t)n * sizeof *t);
        assert_non_null(t);
        for (int64_t i = 0; i < n; i++)
            t[i] = (i % 3 == 1) ? -1 : (int32_t)(rng_u32(&r) % (uint32_t)V);
        float dscale = 1.0f / (float)n;
        float *losses = alloc_floats((size_t)n, NAN), *dl = alloc_floats(N, NAN);
        assert_int_equal(dlv_softmax_cross_entropy(be, losses, dl, logits, t, n, V, dscale),
                         DLV_OK);
        double *ld = to_doubles(logits, N), *lref = alloc_doubles((size_t)n);
        for (int64_t i = 0; i < n; i++)
            lref[i] = t[i] < 0 ? 0.0 : xent_row(ld + i * V, V, t[i]);
        check_vals("softmax_cross_entropy: losses", losses, lref, (size_t)n, 1e-6, 1e-6);
        xent_ctx ctx = {.logits = ld, .targets = t, .n = n, .V = V, .dscale = (double)dscale};
        /* dlogits is SET: compared without an initial value. */
        fd_check("softmax_cross_entropy: dlogits", xent_loss, &ctx, ld, N, dl, NULL, 400, &r);
        for (int64_t i = 0; i < n; i++)
            if (t[i] < 0)
                for (int64_t c = 0; c < V; c++) assert_true(dl[i * V + c] == 0.0f);
        /* dlogits NULL: the same losses. */
        float *losses2 = alloc_floats((size_t)n, NAN);
        assert_int_equal(dlv_softmax_cross_entropy(be, losses2, NULL, logits, t, n, V, dscale),
                         DLV_OK);
        assert_memory_equal(losses, losses2, (size_t)n * sizeof(float));
        /* dlogits aliasing logits: the same values, bit for bit. */
        float *inplace = copy_floats(logits, N);
        assert_int_equal(dlv_softmax_cross_entropy(be, losses2, inplace, inplace, t, n, V,
                                                   dscale), DLV_OK);
        assert_memory_equal(losses, losses2, (size_t)n * sizeof(float));
        assert_memory_equal(dl, inplace, N * sizeof(float));
        free(logits); free(t); free(losses); free(dl); free(ld); free(lref); free(losses2);
        free(inplace);
    }
    /* Only ignored rows: vocab 0 is fine. */
    int32_t t2[2] = {-1, -1};
    float l2[2] = {NAN, NAN};
    assert_int_equal(dlv_softmax_cross_entropy(be, l2, NULL, NULL, t2, 2, 0, 1.0f), DLV_OK);
    assert_true(l2[0] == 0.0f && l2[1] == 0.0f);
}

/* ---- the training GEMM patterns ---------------------------------------------- */

/* dX[R, I] += dY[R, O] . W[O, I] (W any dtype, NO_TRANS, beta 1), and
 * dW[O, I] += dY^T . X[R, I] (trans_a, beta 1), with leading-dimension
 * padding. */
static void run_linear_grads(dlv_backend *be, int64_t R, int64_t O, int64_t I, int64_t pad,
                             dlv_dtype dt, uint64_t seed)
{
    rng r = {seed};
    int64_t ldy = O + pad, ldx = I + pad, ldw = I + pad;
    size_t es = dlv_dtype_size(dt);
    float *dy = rand_floats(&r, (size_t)(R * ldy), -1.0f, 1.0f);
    float *x = rand_floats(&r, (size_t)(R * ldx), -1.0f, 1.0f);
    float *wsrc = rand_floats(&r, (size_t)(O * ldw), -1.0f, 1.0f);
    unsigned char *wb = malloc((size_t)(O * ldw) * es);
    double *w = alloc_doubles((size_t)(O * ldw));
    assert_non_null(wb);
    store_as(dt, wsrc, (size_t)(O * ldw), wb, w);
    float *dx = rand_floats(&r, (size_t)(R * ldx), -1.0f, 1.0f);
    float *dw = rand_floats(&r, (size_t)(O * ldw), -1.0f, 1.0f);
    double *rx = alloc_doubles((size_t)(R * I)), *rw = alloc_doubles((size_t)(O * I));
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < I; j++) {
            double s = (double)dx[i * ldx + j];
            for (int64_t o = 0; o < O; o++) s += (double)dy[i * ldy + o] * w[o * ldw + j];
            rx[i * I + j] = s;
        }
    for (int64_t o = 0; o < O; o++)
        for (int64_t j = 0; j < I; j++) {
            double s = (double)dw[o * ldw + j];
            for (int64_t i = 0; i < R; i++) s += (double)dy[i * ldy + o] * (double)x[i * ldx + j];
            rw[o * I + j] = s;
        }
    /* The padding columns must survive. */
    float *dx_before = copy_floats(dx, (size_t)(R * ldx));
    dlv_matmul_args a = {.struct_size = sizeof a, .trans_a = DLV_NO_TRANS,
                         .trans_b = DLV_NO_TRANS, .m = R, .n = I, .k = O, .alpha = 1.0f,
                         .beta = 1.0f, .a = dy, .a_dtype = DLV_DTYPE_F32, .lda = ldy, .b = wb,
                         .b_dtype = dt, .ldb = ldw, .c = dx, .ldc = ldx};
    assert_int_equal(dlv_matmul(be, &a), DLV_OK);
    dlv_matmul_args b = {.struct_size = sizeof b, .trans_a = DLV_TRANS,
                         .trans_b = DLV_NO_TRANS, .m = O, .n = I, .k = R, .alpha = 1.0f,
                         .beta = 1.0f, .a = dy, .a_dtype = DLV_DTYPE_F32, .lda = ldy, .b = x,
                         .b_dtype = DLV_DTYPE_F32, .ldb = ldx, .c = dw, .ldc = ldw};
    assert_int_equal(dlv_matmul(be, &b), DLV_OK);
    float *gx = alloc_floats((size_t)(R * I), 0), *gw = alloc_floats((size_t)(O * I), 0);
    for (int64_t i = 0; i < R; i++) {
        memcpy(gx + i * I, dx + i * ldx, (size_t)I * sizeof(float));
        for (int64_t j = I; j < ldx; j++) assert_true(dx[i * ldx + j] == dx_before[i * ldx + j]);
    }
    for (int64_t o = 0; o < O; o++) memcpy(gw + o * I, dw + o * ldw, (size_t)I * sizeof(float));
    char label[128];
    snprintf(label, sizeof label, "matmul: dX += dY W (%s, %lldx%lldx%lld)",
             dlv_dtype_name(dt), (long long)R, (long long)O, (long long)I);
    check_vals(label, gx, rx, (size_t)(R * I), (double)O * 1e-6, (double)O * 1e-6);
    snprintf(label, sizeof label, "matmul: dW += dY^T X (%lldx%lldx%lld)", (long long)R,
             (long long)O, (long long)I);
    check_vals(label, gw, rw, (size_t)(O * I), (double)R * 1e-6 + 1e-6, (double)R * 1e-6);
    free(dy); free(x); free(wsrc); free(wb); free(w); free(dx); free(dw); free(rx); free(rw);
    free(dx_before); free(gx); free(gw);
}

static void test_linear_grads(void **state)
{
    for (size_t d = 0; d < 3; d++) {
        run_linear_grads(*state, 5, 7, 9, 0, param_dtypes[d], 1100 + d);
        run_linear_grads(*state, 13, 33, 17, 3, param_dtypes[d], 1110 + d);
    }
    /* Several weight tiles (2^20 floats / k = 512 columns per tile). */
    run_linear_grads(*state, 3, 2048, 600, 1, DLV_DTYPE_BF16, 1120);
}

/* ---- threads --------------------------------------------------------------- */

/* Shapes large enough for the pool to split (rows, columns), 1 vs 4
 * threads, bit for bit. */
static void test_threads_bitwise(void **state)
{
    (void)state;
    dlv_backend *b1 = NULL, *b4 = NULL;
    dlv_backend_config c1 = {.n_threads = 1}, c4 = {.n_threads = 4};
    assert_int_equal(dlv_backend_create("cpu", &c1, &b1), DLV_OK);
    assert_int_equal(dlv_backend_create("cpu", &c4, &b4), DLV_OK);
    enum { R = 403, C = 257, N = R * C };
    rng r = {1200};
    float *x = rand_floats(&r, N, -2.0f, 2.0f), *g = rand_floats(&r, N, -1.0f, 1.0f);
    float *w = rand_floats(&r, C, 0.5f, 1.5f);
    float *a1 = alloc_floats(N, 0.5f), *a4 = alloc_floats(N, 0.5f);
    float *w1 = alloc_floats(C, 0.25f), *w4 = alloc_floats(C, 0.25f);
    float *v1 = alloc_floats(C, 0.125f), *v4 = alloc_floats(C, 0.125f);
#define BOTH(call1, call4)                                                                 \
    do {                                                                                   \
        assert_int_equal((call1), DLV_OK);                                                 \
        assert_int_equal((call4), DLV_OK);                                                 \
        assert_memory_equal(a1, a4, N * sizeof(float));                                    \
        assert_memory_equal(w1, w4, C * sizeof(float));                                   \
        assert_memory_equal(v1, v4, C * sizeof(float));                                    \
    } while (0)
    BOTH(dlv_rmsnorm_backward(b1, a1, w1, g, x, w, DLV_DTYPE_F32, R, C, 1e-6f),
         dlv_rmsnorm_backward(b4, a4, w4, g, x, w, DLV_DTYPE_F32, R, C, 1e-6f));
    BOTH(dlv_layernorm_backward(b1, a1, w1, v1, g, x, w, DLV_DTYPE_F32, R, C, 1e-5f),
         dlv_layernorm_backward(b4, a4, w4, v4, g, x, w, DLV_DTYPE_F32, R, C, 1e-5f));
    BOTH(dlv_l2_normalize_backward(b1, a1, g, x, R, C),
         dlv_l2_normalize_backward(b4, a4, g, x, R, C));
    BOTH(dlv_bias_backward(b1, v1, g, R, C), dlv_bias_backward(b4, v4, g, R, C));
    BOTH(dlv_activation_backward(b1, DLV_OP_ACT_GELU, a1, g, x, N),
         dlv_activation_backward(b4, DLV_OP_ACT_GELU, a4, g, x, N));
    BOTH(dlv_swiglu_backward(b1, a1, w1, g, x, x, C), dlv_swiglu_backward(b4, a4, w4, g, x, x, C));
    int32_t *ids = malloc(R * sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < R; i++) ids[i] = (i * 7) % 11;
    /* dtable [11, 257] inside a1/a4. */
    BOTH(dlv_embedding_backward(b1, a1, g, ids, R, 11, C),
         dlv_embedding_backward(b4, a4, g, ids, R, 11, C));
    BOTH(dlv_rope_backward(b1, a1, ids, R, 2, 128, 1e4),
         dlv_rope_backward(b4, a4, ids, R, 2, 128, 1e4));
    /* Tables [R, 64]: any values will do for the split. */
    BOTH(dlv_rope_table_backward(b1, a1, x, g, R, 2, 128),
         dlv_rope_table_backward(b4, a4, x, g, R, 2, 128));
    int32_t *t = malloc(R * sizeof *t);
    assert_non_null(t);
    for (int i = 0; i < R; i++) t[i] = i % 5 == 0 ? -1 : (i * 31) % C;
    BOTH(dlv_softmax_cross_entropy(b1, w1, a1, x, t, R > C ? C : R, C, 0.5f),
         dlv_softmax_cross_entropy(b4, w4, a4, x, t, R > C ? C : R, C, 0.5f));
    /* Attention: 1 sequence of 200 tokens, GQA 2/1 heads of 16, causal. */
    int64_t T = 200, ldq = 32, ldk = 16;
    dlv_attention_bw_args a = {.struct_size = sizeof a, .dq = a1, .dk = a1 + T * ldq,
                               .dv = a1 + T * (ldq + ldk), .dout = g, .q = x, .k = x + T * ldq,
                               .v = x + T * (ldq + ldk), .batch = 1, .n_q = T, .n_kv = T,
                               .n_heads = 2, .n_kv_heads = 1, .head_dim = 16, .scale = 0.25f,
                               .causal = 1};
    dlv_attention_bw_args a4s = a;
    a4s.dq = a4; a4s.dk = a4 + T * ldq; a4s.dv = a4 + T * (ldq + ldk);
    BOTH(dlv_attention_backward(b1, &a), dlv_attention_backward(b4, &a4s));
#undef BOTH
    free(x); free(g); free(w); free(a1); free(a4); free(w1); free(w4); free(v1); free(v4);
    free(ids); free(t);
    dlv_backend_destroy(b1);
    dlv_backend_destroy(b4);
}

/* ---- argument errors ---------------------------------------------------------- */

#define EXPECT(call, status, needle)                                                       \
    do {                                                                                   \
        assert_int_equal((call), (status));                                                \
        assert_error_mentions(needle);                                                     \
    } while (0)

static float ea[256], eb[256], ec[256], ed[256];

static void test_norm_backward_errors(void **state)
{
    dlv_backend *be = *state;
    float *dx = ea, *g = eb, *x = ec, *dw = ed, *db = ed + 64, *w = ed + 128;
    memset(ec, 0, sizeof ec);
    assert_int_equal(dlv_rmsnorm_backward(be, dx, dw, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
                     DLV_OK);
    EXPECT(dlv_rmsnorm_backward(NULL, dx, dw, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "rmsnorm_backward: backend is NULL");
    EXPECT(dlv_rmsnorm_backward(be, NULL, dw, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "rmsnorm_backward: dinp is NULL");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, NULL, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "dout is NULL");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, g, NULL, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "inp is NULL");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, g, x, w, DLV_DTYPE_F32, -4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "rows = -4");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, g, x, w, DLV_DTYPE_F32, 4, -1, 1e-5f),
           DLV_E_INVALID_ARG, "cols = -1");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, g, x, w, DLV_DTYPE_F32, 4, 8, -1.0f),
           DLV_E_INVALID_ARG, "eps -1");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, g, x, w, DLV_DTYPE_I32, 4, 8, 1e-5f),
           DLV_E_UNSUPPORTED, "weight_dtype I32");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, g, x, w, (dlv_dtype)77, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "weight_dtype 77");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, g, x, w, DLV_DTYPE_F32, INT64_MAX / 2, 8, 1e-5f),
           DLV_E_INVALID_ARG, "too large");
    EXPECT(dlv_rmsnorm_backward(be, dx, dw, dx, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "dinp overlaps dout");
    EXPECT(dlv_rmsnorm_backward(be, x, dw, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "dinp overlaps inp");
    EXPECT(dlv_rmsnorm_backward(be, dx, w, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "dweight overlaps weight");
    EXPECT(dlv_rmsnorm_backward(be, dx, dx + 3, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "dinp overlaps dweight");
    /* Empty tensors need no storage; weight NULL is 1. */
    assert_int_equal(dlv_rmsnorm_backward(be, NULL, NULL, NULL, NULL, NULL, DLV_DTYPE_F32, 0, 8,
                                          1e-5f), DLV_OK);
    assert_int_equal(dlv_rmsnorm_backward(be, dx, NULL, g, x, NULL, (dlv_dtype)77, 4, 8, 1e-5f),
                     DLV_OK);

    assert_int_equal(dlv_layernorm_backward(be, dx, dw, db, g, x, w, DLV_DTYPE_BF16, 4, 8,
                                            1e-5f), DLV_OK);
    EXPECT(dlv_layernorm_backward(NULL, dx, dw, db, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "layernorm_backward: backend is NULL");
    EXPECT(dlv_layernorm_backward(be, dx, dw, db, g, x, w, DLV_DTYPE_U8, 4, 8, 1e-5f),
           DLV_E_UNSUPPORTED, "param_dtype U8");
    EXPECT(dlv_layernorm_backward(be, dx, dw, db, g, x, w, DLV_DTYPE_F32, 4, 8, NAN),
           DLV_E_INVALID_ARG, "eps");
    EXPECT(dlv_layernorm_backward(be, dx, dw, dw + 4, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "dweight overlaps dbias");
    EXPECT(dlv_layernorm_backward(be, dx, dw, g, g, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "dbias overlaps dout");
    EXPECT(dlv_layernorm_backward(be, dx, dw, db, g, NULL, w, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "layernorm_backward: inp is NULL");

    assert_int_equal(dlv_l2_normalize_backward(be, dx, g, x, 4, 8), DLV_OK);
    EXPECT(dlv_l2_normalize_backward(NULL, dx, g, x, 4, 8), DLV_E_INVALID_ARG,
           "l2_normalize_backward: backend is NULL");
    EXPECT(dlv_l2_normalize_backward(be, dx, g, NULL, 4, 8), DLV_E_INVALID_ARG, "inp is NULL");
    EXPECT(dlv_l2_normalize_backward(be, dx, g, dx + 1, 4, 8), DLV_E_INVALID_ARG,
           "dinp overlaps inp");
    EXPECT(dlv_l2_normalize_backward(be, dx, g, x, 4, -8), DLV_E_INVALID_ARG, "cols = -8");

    assert_int_equal(dlv_bias_backward(be, dw, g, 4, 8), DLV_OK);
    EXPECT(dlv_bias_backward(NULL, dw, g, 4, 8), DLV_E_INVALID_ARG,
           "bias_backward: backend is NULL");
    EXPECT(dlv_bias_backward(be, NULL, g, 4, 8), DLV_E_INVALID_ARG, "dbias is NULL");
    EXPECT(dlv_bias_backward(be, dw, NULL, 4, 8), DLV_E_INVALID_ARG, "dout is NULL");
    EXPECT(dlv_bias_backward(be, g + 8, g, 4, 8), DLV_E_INVALID_ARG, "dbias overlaps dout");
    EXPECT(dlv_bias_backward(be, dw, g, -4, 8), DLV_E_INVALID_ARG, "rows = -4");
    assert_int_equal(dlv_bias_backward(be, dw, NULL, 0, 8), DLV_OK);
}

static void test_rope_backward_errors(void **state)
{
    dlv_backend *be = *state;
    int32_t pos[4] = {0, 1, 2, 3};
    assert_int_equal(dlv_rope_backward(be, ea, pos, 4, 2, 8, 1e4), DLV_OK);
    EXPECT(dlv_rope_backward(NULL, ea, pos, 4, 2, 8, 1e4), DLV_E_INVALID_ARG,
           "rope_backward: backend is NULL");
    EXPECT(dlv_rope_backward(be, NULL, pos, 4, 2, 8, 1e4), DLV_E_INVALID_ARG, "dx is NULL");
    EXPECT(dlv_rope_backward(be, ea, NULL, 4, 2, 8, 1e4), DLV_E_INVALID_ARG,
           "positions is NULL");
    EXPECT(dlv_rope_backward(be, ea, pos, 4, 2, 7, 1e4), DLV_E_INVALID_ARG, "head_dim 7");
    EXPECT(dlv_rope_backward(be, ea, pos, 4, 2, 8, 0.0), DLV_E_INVALID_ARG, "theta 0");
    EXPECT(dlv_rope_backward(be, ea, pos, 4, 2, 8, (double)INFINITY), DLV_E_INVALID_ARG, "theta");
    EXPECT(dlv_rope_backward(be, ea, pos, -1, 2, 8, 1e4), DLV_E_INVALID_ARG, "n_tokens = -1");
    EXPECT(dlv_rope_backward(be, ea, pos, 4, -2, 8, 1e4), DLV_E_INVALID_ARG, "n_heads = -2");
    pos[2] = -5;
    EXPECT(dlv_rope_backward(be, ea, pos, 4, 2, 8, 1e4), DLV_E_INVALID_ARG,
           "positions[2] = -5 is negative");
    EXPECT(dlv_rope_backward(be, (float *)(void *)pos, pos, 1, 1, 2, 1e4), DLV_E_INVALID_ARG,
           "dx overlaps positions");
}

static void test_rope_table_backward_errors(void **state)
{
    dlv_backend *be = *state;
    float *c = eb, *s = ec; /* tables [4, 4] */
    assert_int_equal(dlv_rope_table_backward(be, ea, c, s, 4, 2, 8), DLV_OK);
    EXPECT(dlv_rope_table_backward(NULL, ea, c, s, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table_backward: backend is NULL");
    EXPECT(dlv_rope_table_backward(be, NULL, c, s, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table_backward: dx is NULL");
    EXPECT(dlv_rope_table_backward(be, ea, NULL, s, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table_backward: cos is NULL");
    EXPECT(dlv_rope_table_backward(be, ea, c, NULL, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table_backward: sin is NULL");
    EXPECT(dlv_rope_table_backward(be, ea, c, s, 4, 2, 7), DLV_E_INVALID_ARG, "head_dim 7");
    EXPECT(dlv_rope_table_backward(be, ea, c, s, -1, 2, 8), DLV_E_INVALID_ARG, "n_tokens = -1");
    EXPECT(dlv_rope_table_backward(be, ea, c, s, 4, -2, 8), DLV_E_INVALID_ARG, "n_heads = -2");
    EXPECT(dlv_rope_table_backward(be, ea, ea + 48, s, 4, 2, 8), DLV_E_INVALID_ARG,
           "dx overlaps cos");
    EXPECT(dlv_rope_table_backward(be, ea, c, ea + 60, 4, 2, 8), DLV_E_INVALID_ARG,
           "dx overlaps sin");
    assert_int_equal(dlv_rope_table_backward(be, NULL, NULL, NULL, 0, 2, 8), DLV_OK);
}

static dlv_attention_bw_args good_attention_bw(void)
{
    /* batch 2, n_q 3, n_kv 4, heads 4/2 of 2: q 48 floats, k/v 32. */
    static uint8_t mask[8] = {1, 1, 1, 0, 1, 1, 1, 1};
    dlv_attention_bw_args a = {.struct_size = sizeof a, .dq = ea, .dk = ea + 64,
                               .dv = ea + 128, .dout = eb, .q = ec, .k = ec + 64,
                               .v = ec + 128, .key_mask = mask, .batch = 2, .n_q = 3,
                               .n_kv = 4, .n_heads = 4, .n_kv_heads = 2, .head_dim = 2,
                               .scale = 0.7f, .causal = 1};
    return a;
}

static void test_attention_backward_errors(void **state)
{
    dlv_backend *be = *state;
    memset(eb, 0, sizeof eb);
    memset(ec, 0, sizeof ec);
    dlv_attention_bw_args a = good_attention_bw();
    assert_int_equal(dlv_attention_backward(be, &a), DLV_OK);
    EXPECT(dlv_attention_backward(NULL, &a), DLV_E_INVALID_ARG,
           "attention_backward: backend is NULL");
    EXPECT(dlv_attention_backward(be, NULL), DLV_E_INVALID_ARG, "args is NULL");
    a = good_attention_bw(); a.struct_size = sizeof(dlv_attention_args);
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "struct_size");
    a = good_attention_bw(); a.n_kv_heads = 3;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG,
           "n_heads 4 is not a multiple of n_kv_heads 3");
    a = good_attention_bw(); a.head_dim = 0;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "must be > 0");
    a = good_attention_bw(); a.n_q = -2;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "n_q = -2");
    a = good_attention_bw(); a.causal = 3;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "causal 3");
    a = good_attention_bw(); a.scale = INFINITY;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "scale");
    a = good_attention_bw(); a.dq = NULL;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "dq is NULL");
    a = good_attention_bw(); a.dk = NULL;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "dk is NULL");
    a = good_attention_bw(); a.dv = NULL;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "dv is NULL");
    a = good_attention_bw(); a.dout = NULL;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "dout is NULL");
    a = good_attention_bw(); a.v = NULL;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "v is NULL");
    a = good_attention_bw(); a.dq = ec + 4;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "dq overlaps q");
    a = good_attention_bw(); a.dk = ea + 40;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "dq overlaps dk");
    a = good_attention_bw(); a.dv = (float *)(uintptr_t)a.k;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "dv overlaps k");
    a = good_attention_bw(); a.dv = (float *)(uintptr_t)a.dout;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_INVALID_ARG, "dv overlaps dout");
    a = good_attention_bw(); a.n_kv = (int64_t)INT32_MAX + 1; a.batch = 0;
    EXPECT(dlv_attention_backward(be, &a), DLV_E_UNSUPPORTED, "INT_MAX");
    a = good_attention_bw(); a.batch = 0;
    a.dq = a.dk = a.dv = NULL; a.dout = a.q = a.k = a.v = NULL;
    assert_int_equal(dlv_attention_backward(be, &a), DLV_OK);
}

static void test_elementwise_backward_errors(void **state)
{
    dlv_backend *be = *state;
    float *d = ea, *g = eb, *x = ec, *d2 = ed;
    assert_int_equal(dlv_activation_backward(be, DLV_OP_ACT_SILU, d, g, x, 16), DLV_OK);
    EXPECT(dlv_activation_backward(NULL, DLV_OP_ACT_SILU, d, g, x, 16), DLV_E_INVALID_ARG,
           "activation_backward: backend is NULL");
    EXPECT(dlv_activation_backward(be, (dlv_op_act)9, d, g, x, 16), DLV_E_INVALID_ARG,
           "9 is not a dlv_op_act");
    EXPECT(dlv_activation_backward(be, DLV_OP_ACT_GELU, NULL, g, x, 16), DLV_E_INVALID_ARG,
           "dinp is NULL");
    EXPECT(dlv_activation_backward(be, DLV_OP_ACT_GELU, d, NULL, x, 16), DLV_E_INVALID_ARG,
           "dout is NULL");
    EXPECT(dlv_activation_backward(be, DLV_OP_ACT_GELU, d, g, NULL, 16), DLV_E_INVALID_ARG,
           "inp is NULL");
    EXPECT(dlv_activation_backward(be, DLV_OP_ACT_GELU, d, g, x, -16), DLV_E_INVALID_ARG,
           "n = -16");
    EXPECT(dlv_activation_backward(be, DLV_OP_ACT_GELU, g, g, x, 16), DLV_E_INVALID_ARG,
           "dinp overlaps dout");
    EXPECT(dlv_activation_backward(be, DLV_OP_ACT_GELU, x + 2, g, x, 16), DLV_E_INVALID_ARG,
           "dinp overlaps inp");
    assert_int_equal(dlv_activation_backward(be, DLV_OP_ACT_GELU, NULL, NULL, NULL, 0), DLV_OK);

    assert_int_equal(dlv_swiglu_backward(be, d, d2, g, x, x, 16), DLV_OK);
    EXPECT(dlv_swiglu_backward(NULL, d, d2, g, x, x, 16), DLV_E_INVALID_ARG,
           "swiglu_backward: backend is NULL");
    EXPECT(dlv_swiglu_backward(be, NULL, d2, g, x, x, 16), DLV_E_INVALID_ARG, "dgate is NULL");
    EXPECT(dlv_swiglu_backward(be, d, NULL, g, x, x, 16), DLV_E_INVALID_ARG, "dup is NULL");
    EXPECT(dlv_swiglu_backward(be, d, d2, g, NULL, x, 16), DLV_E_INVALID_ARG, "gate is NULL");
    EXPECT(dlv_swiglu_backward(be, d, d2, g, x, NULL, 16), DLV_E_INVALID_ARG, "up is NULL");
    EXPECT(dlv_swiglu_backward(be, d, d, g, x, x, 16), DLV_E_INVALID_ARG,
           "dgate overlaps dup");
    EXPECT(dlv_swiglu_backward(be, d, x, g, x, x + 32, 16), DLV_E_INVALID_ARG,
           "dup overlaps gate");
    EXPECT(dlv_swiglu_backward(be, d, d2, g, x, d + 8, 16), DLV_E_INVALID_ARG,
           "dgate overlaps up");
    EXPECT(dlv_swiglu_backward(be, d, d2, g, x, x, -1), DLV_E_INVALID_ARG, "n = -1");
}

static void test_embedding_backward_errors(void **state)
{
    dlv_backend *be = *state;
    int32_t ids[3] = {0, 3, 1};
    float *dt = ea, *g = eb;
    assert_int_equal(dlv_embedding_backward(be, dt, g, ids, 3, 4, 8), DLV_OK);
    EXPECT(dlv_embedding_backward(NULL, dt, g, ids, 3, 4, 8), DLV_E_INVALID_ARG,
           "embedding_backward: backend is NULL");
    EXPECT(dlv_embedding_backward(be, NULL, g, ids, 3, 4, 8), DLV_E_INVALID_ARG,
           "dtable is NULL");
    EXPECT(dlv_embedding_backward(be, dt, NULL, ids, 3, 4, 8), DLV_E_INVALID_ARG,
           "dout is NULL");
    EXPECT(dlv_embedding_backward(be, dt, g, NULL, 3, 4, 8), DLV_E_INVALID_ARG, "ids is NULL");
    EXPECT(dlv_embedding_backward(be, dt, g, ids, 3, 3, 8), DLV_E_INVALID_ARG,
           "token id 3 at position 1 is outside the vocabulary [0, 3)");
    ids[2] = -1;
    EXPECT(dlv_embedding_backward(be, dt, g, ids, 3, 4, 8), DLV_E_INVALID_ARG, "token id -1");
    ids[2] = 1;
    EXPECT(dlv_embedding_backward(be, dt, g, ids, -3, 4, 8), DLV_E_INVALID_ARG, "n_ids = -3");
    EXPECT(dlv_embedding_backward(be, dt, g, ids, 3, -4, 8), DLV_E_INVALID_ARG, "vocab = -4");
    EXPECT(dlv_embedding_backward(be, dt, g, ids, 3, 4, -8), DLV_E_INVALID_ARG, "dim = -8");
    EXPECT(dlv_embedding_backward(be, g + 4, g, ids, 3, 4, 8), DLV_E_INVALID_ARG,
           "dtable overlaps dout");
    assert_int_equal(dlv_embedding_backward(be, NULL, NULL, NULL, 0, 4, 8), DLV_OK);
}

static void test_xent_errors(void **state)
{
    dlv_backend *be = *state;
    int32_t t[3] = {0, -1, 4};
    float *loss = ea, *dl = eb, *l = ec;
    assert_int_equal(dlv_softmax_cross_entropy(be, loss, dl, l, t, 3, 5, 1.0f), DLV_OK);
    assert_int_equal(dlv_softmax_cross_entropy(be, loss, l, l, t, 3, 5, 1.0f), DLV_OK);
    EXPECT(dlv_softmax_cross_entropy(NULL, loss, dl, l, t, 3, 5, 1.0f), DLV_E_INVALID_ARG,
           "softmax_cross_entropy: backend is NULL");
    EXPECT(dlv_softmax_cross_entropy(be, NULL, dl, l, t, 3, 5, 1.0f), DLV_E_INVALID_ARG,
           "losses is NULL");
    EXPECT(dlv_softmax_cross_entropy(be, loss, dl, NULL, t, 3, 5, 1.0f), DLV_E_INVALID_ARG,
           "logits is NULL");
    EXPECT(dlv_softmax_cross_entropy(be, loss, dl, l, NULL, 3, 5, 1.0f), DLV_E_INVALID_ARG,
           "targets is NULL");
    EXPECT(dlv_softmax_cross_entropy(be, loss, dl, l, t, 3, 4, 1.0f), DLV_E_INVALID_ARG,
           "target 4 of row 2 is neither -1 (ignored) nor in [0, 4)");
    t[0] = -2;
    EXPECT(dlv_softmax_cross_entropy(be, loss, dl, l, t, 3, 5, 1.0f), DLV_E_INVALID_ARG,
           "target -2 of row 0");
    t[0] = 0;
    EXPECT(dlv_softmax_cross_entropy(be, loss, dl, l, t, -3, 5, 1.0f), DLV_E_INVALID_ARG,
           "n = -3");
    EXPECT(dlv_softmax_cross_entropy(be, loss, dl, l, t, 3, -5, 1.0f), DLV_E_INVALID_ARG,
           "vocab = -5");
    EXPECT(dlv_softmax_cross_entropy(be, loss, dl, l, t, 3, 5, NAN), DLV_E_INVALID_ARG,
           "dscale");
    EXPECT(dlv_softmax_cross_entropy(be, loss, l + 1, l, t, 3, 5, 1.0f), DLV_E_INVALID_ARG,
           "dlogits overlaps logits (only the very same tensor");
    EXPECT(dlv_softmax_cross_entropy(be, l + 2, dl, l, t, 3, 5, 1.0f), DLV_E_INVALID_ARG,
           "losses overlaps logits");
    EXPECT(dlv_softmax_cross_entropy(be, loss, loss, l, t, 3, 5, 1.0f), DLV_E_INVALID_ARG,
           "dlogits overlaps losses");
    assert_int_equal(dlv_softmax_cross_entropy(be, NULL, NULL, NULL, NULL, 0, 5, 1.0f), DLV_OK);
}

/* A backend without the backward slots: DLV_E_UNSUPPORTED naming the op,
 * after the argument checks. */
static void test_backward_slots_unsupported(void **state)
{
    dlv_backend *be = *state;
    dlv_backend_ops ops = *be->ops;
    ops.name = "bare";
    ops.rmsnorm_backward = NULL;
    ops.layernorm_backward = NULL;
    ops.rope_backward = NULL;
    ops.rope_table_backward = NULL;
    ops.attention_backward = NULL;
    ops.activation_backward = NULL;
    ops.swiglu_backward = NULL;
    ops.embedding_backward = NULL;
    ops.bias_backward = NULL;
    ops.l2_normalize_backward = NULL;
    ops.softmax_cross_entropy = NULL;
    dlv_backend bare = {.ops = &ops, .device = 0};
    assert_true(DLV_BACKEND_HAS(be->ops, attention_backward));
    assert_false(DLV_BACKEND_HAS(&ops, attention_backward));
    float *d = ea, *g = eb, *x = ec, *w = ed;
    int32_t ids[2] = {0, 1};
    EXPECT(dlv_rmsnorm_backward(&bare, d, w, g, x, NULL, DLV_DTYPE_F32, 2, 4, 1e-5f),
           DLV_E_UNSUPPORTED, "op rmsnorm_backward is not implemented on backend bare");
    EXPECT(dlv_layernorm_backward(&bare, d, w, w + 8, g, x, NULL, DLV_DTYPE_F32, 2, 4, 1e-5f),
           DLV_E_UNSUPPORTED, "op layernorm_backward is not");
    EXPECT(dlv_rope_backward(&bare, d, ids, 2, 1, 4, 1e4), DLV_E_UNSUPPORTED,
           "op rope_backward is not");
    EXPECT(dlv_rope_table_backward(&bare, d, g, x, 2, 1, 4), DLV_E_UNSUPPORTED,
           "op rope_table_backward is not implemented on backend bare");
    dlv_attention_bw_args a = good_attention_bw();
    EXPECT(dlv_attention_backward(&bare, &a), DLV_E_UNSUPPORTED,
           "op attention_backward is not");
    EXPECT(dlv_activation_backward(&bare, DLV_OP_ACT_QUICK_GELU, d, g, x, 4), DLV_E_UNSUPPORTED,
           "activation_backward: quick_gelu: op quick_gelu is not implemented on backend bare");
    EXPECT(dlv_swiglu_backward(&bare, d, w, g, x, x, 4), DLV_E_UNSUPPORTED,
           "op swiglu_backward is not");
    EXPECT(dlv_embedding_backward(&bare, d, g, ids, 2, 2, 4), DLV_E_UNSUPPORTED,
           "op embedding_backward is not");
    EXPECT(dlv_bias_backward(&bare, w, g, 2, 4), DLV_E_UNSUPPORTED, "op bias_backward is not");
    EXPECT(dlv_l2_normalize_backward(&bare, d, g, x, 2, 4), DLV_E_UNSUPPORTED,
           "op l2_normalize_backward is not");
    EXPECT(dlv_softmax_cross_entropy(&bare, w, d, x, ids, 2, 4, 1.0f), DLV_E_UNSUPPORTED,
           "op softmax_cross_entropy is not");
    /* Argument errors first, the same on every backend. */
    EXPECT(dlv_bias_backward(&bare, w, NULL, 2, 4), DLV_E_INVALID_ARG, "dout is NULL");
}

static int print_stats_teardown(void **state)
{
    teardown(state);
    printf("# largest errors (|got - ref|, and as a fraction of the tolerance):\n");
    for (int i = 0; i < n_stats; i++)
        printf("#   %-24s %9.3g  %6.3f  (%zu values)\n", stats[i].name, stats[i].max_abs,
               stats[i].max_frac, stats[i].n);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm_backward),
        cmocka_unit_test(test_layernorm_backward),
        cmocka_unit_test(test_l2_normalize_backward),
        cmocka_unit_test(test_bias_backward),
        cmocka_unit_test(test_rope_backward),
        cmocka_unit_test(test_rope_table_backward),
        cmocka_unit_test(test_attention_backward),
        cmocka_unit_test(test_activation_backward),
        cmocka_unit_test(test_swiglu_backward),
        cmocka_unit_test(test_embedding_backward),
        cmocka_unit_test(test_softmax_cross_entropy),
        cmocka_unit_test(test_linear_grads),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_norm_backward_errors),
        cmocka_unit_test(test_rope_backward_errors),
        cmocka_unit_test(test_rope_table_backward_errors),
        cmocka_unit_test(test_attention_backward_errors),
        cmocka_unit_test(test_elementwise_backward_errors),
        cmocka_unit_test(test_embedding_backward_errors),
        cmocka_unit_test(test_xent_errors),
        cmocka_unit_test(test_backward_slots_unsupported),
    };
    return cmocka_run_group_tests_name("ops_backward", tests, setup, print_stats_teardown);
}
