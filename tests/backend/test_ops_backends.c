/* Every op of the backend vtable on every backend this build has, against
 * the CPU backend on the same random inputs: the spirit of ggml's
 * test-backend-ops. The CPU backend itself is checked against independent
 * double-precision references (test_ops_cpu.c, test_ops_backward.c); this
 * file checks that the other backends agree with it, so a new backend (or a
 * new kernel of one) is tested by every case below with no new code.
 *
 * Table-driven: one op_case per (op, shape, variant). Its run function
 * generates the inputs on the host from the case's seed (the same bytes on
 * every backend), allocates dlv_buffers on the backend under test, uploads,
 * runs the op through its checked wrapper and downloads the outputs. It never
 * dereferences a device pointer: device addresses only go to ops, offset with
 * integer arithmetic to address a sub-tensor. Index arguments (token ids,
 * positions, targets, key masks) are device memory like everything else.
 * Adding an op is one run function and a few table entries.
 *
 * For each case the outputs of every backend named in dlv_backend_list() are
 * compared with those of a separate reference CPU instance:
 *   - cpu and sim run the same kernels (sim wraps the CPU's), so their results
 *     must be bit-identical to the reference, NaN payloads and all;
 *   - any other backend (cuda) passes if, for every element,
 *       |got - ref| <= (atol + rtol |ref|) * sqrt(max(1, L))
 *     with L the length of the reduction behind that element (the dot length
 *     k of a matmul, cols of a norm, n_kv + head_dim of attention, rows of a
 *     parameter gradient, vocab of a loss): f32 rounding error of a sum grows
 *     about like sqrt(L). atol/rtol per op:
 *       every arithmetic op, forward and backward:  atol 1e-5, rtol 1e-4
 *       embedding, im2col_patches, buffer, copy:   exact (copies and exact
 *                                                    widening)
 *     Both NaN (or the same infinity) counts as equal.
 * A backend whose wrapper returns DLV_E_UNSUPPORTED for a case (a NULL slot,
 * or a dtype it does not take yet) gets "op X: not implemented on backend Y"
 * once per op and the case counts as unsupported, not failed; a backend that
 * cannot be created here (cuda without a GPU) is skipped with a line. At the
 * end a table gives, per op and backend, passed/unsupported/failed cases,
 * and the test fails on any mismatch or error. DLV_OPS_VERBOSE=1 prints one
 * line per case and backend.
 *
 * Sub-tensors: matmul's B and attention's k, v sit at offsets inside one
 * buffer, so a kernel that assumes an operand starts at a buffer's
 * (over-aligned) start fails. The offsets keep each element aligned to its
 * own size (cuBLAS reads f32 at 4-byte alignment); reads at odd byte offsets
 * are covered on the CPU by test_ops_cpu.c.
 *
 * Then three tests of the sim backend itself: an op refuses a host pointer
 * (DLV_E_INVALID_ARG, "host memory"), its buffers round-trip data through
 * upload/copy/download, and dereferencing one of its device pointers on the
 * host crashes (a forked child). */
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops_test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define OPS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OPS_UNDER_ASAN 1
#endif
#endif
#ifndef OPS_UNDER_ASAN
#define OPS_UNDER_ASAN 0
#endif

/* ---- the case table's types --------------------------------------------- */

typedef struct tol {
    double atol, rtol;
} tol;

/* Variant bits of a case (each op reads the ones it documents). */
enum {
    V_BROADCAST = 1 << 0,   /* add: b is one row */
    V_INPLACE = 1 << 1,     /* out is the first input (add: a, norms/activation/l2: inp,
                             * swiglu: gate, softmax_cross_entropy: dlogits = logits) */
    V_NO_WEIGHT = 1 << 2,   /* norms: weight (and layernorm's bias) NULL */
    V_NO_BIAS = 1 << 3,     /* layernorm: bias NULL, weight given */
    V_NO_PGRAD = 1 << 4,    /* norm backwards: dweight/dbias NULL; xent: dlogits NULL */
    V_ZERO_ROW = 1 << 5,    /* l2: row 0 is all zeros (the 1e-12 clamp) */
    V_UP_ALIAS = 1 << 6,    /* swiglu: out is up */
    V_RESIDUAL = 1 << 7,    /* norms: the fused add_layernorm / add_rmsnorm, with
                             * V_INPLACE the sum over the first input */
};

typedef struct mm_p {
    int64_t m, n, k, pad; /* pad: added to every leading dimension */
    dlv_transpose ta, tb;
    float alpha, beta;    /* beta 0: C starts as NaN, which must not leak */
} mm_p;
typedef struct rows_p {
    int64_t rows, cols;
    int variant;
} rows_p;
typedef struct rope_p {
    int64_t n_tokens, n_heads, head_dim, max_pos;
    double theta;
} rope_p;
typedef struct attn_p {
    int64_t batch, n_q, n_kv, n_heads, n_kv_heads, head_dim;
    int causal, mask;
} attn_p;
typedef struct vec_p {
    int64_t n;
    dlv_op_act act;
    int variant;
} vec_p;
typedef struct emb_p {
    int64_t n_ids, vocab, dim;
} emb_p;
typedef struct img_p {
    int64_t c, h, w, patch;
} img_p;
typedef struct mem_p {
    size_t bytes;
} mem_p;

struct run_ctx;
struct op_case;
/* Sets up the inputs on x->be, runs the op, downloads the outputs into
 * x->res. Returns the first failing status (DLV_E_UNSUPPORTED: the backend
 * lacks the op); the caller frees every buffer and host array. */
typedef dlv_status (*op_run_fn)(struct run_ctx *x, const struct op_case *c);

typedef struct op_case {
    const char *op;    /* the wrapper's name without dlv_: a row of the summary */
    const char *label; /* the parameters, for messages */
    op_run_fn run;
    tol tol;           /* for backends other than cpu and sim */
    dlv_dtype dt;      /* the parameter dtype where the op has one */
    union {
        mm_p mm;
        rows_p rc;
        rope_p rope;
        attn_p at;
        vec_p vec;
        emb_p emb;
        img_p img;
        mem_p mem;
    } u;
} op_case;

/* ---- one run: buffers, host arrays and outputs --------------------------- */

enum { MAX_BUFS = 16, MAX_HOST = 24, MAX_OUT = 4 };

typedef struct op_out {
    const char *name;
    unsigned char *data; /* host copy, owned */
    size_t bytes;
    int is_f32;          /* compared with the tolerance; else byte for byte */
    double red;          /* reduction length L behind each value */
} op_out;

typedef struct op_result {
    op_out out[MAX_OUT];
    int n_out;
} op_result;

typedef struct run_ctx {
    dlv_backend *be;
    rng r; /* seeded per case: the same inputs on every backend */
    dlv_buffer bufs[MAX_BUFS];
    int n_bufs;
    void *host[MAX_HOST];
    int n_host;
    op_result *res;
} run_ctx;

#define CK(expr)                                                                   \
    do {                                                                           \
        dlv_status ck_ = (expr);                                                   \
        if (ck_ != DLV_OK) return ck_;                                             \
    } while (0)

static void *host_alloc(run_ctx *x, size_t bytes)
{
    assert_true(x->n_host < MAX_HOST);
    void *p = malloc(bytes ? bytes : 1);
    assert_non_null(p);
    x->host[x->n_host++] = p;
    return p;
}

static float *host_rand(run_ctx *x, size_t n, float lo, float hi)
{
    float *p = host_alloc(x, n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(&x->r, lo, hi);
    return p;
}

/* n random parameters stored as dt (a checkpoint's weights). */
static void *host_param(run_ctx *x, dlv_dtype dt, size_t n, float lo, float hi)
{
    float *f = host_rand(x, n, lo, hi);
    unsigned char *bytes = host_alloc(x, n * dlv_dtype_size(dt));
    store_as(dt, f, n, bytes, NULL);
    return bytes;
}

static int32_t *host_ints(run_ctx *x, size_t n, int32_t lo, int32_t hi_incl)
{
    int32_t *p = host_alloc(x, n * sizeof *p);
    uint32_t span = (uint32_t)(hi_incl - lo) + 1u;
    for (size_t i = 0; i < n; i++) p[i] = lo + (int32_t)(rng_u32(&x->r) % span);
    return p;
}

static dlv_status dev_alloc(run_ctx *x, size_t bytes, dlv_buffer **out)
{
    assert_true(x->n_bufs < MAX_BUFS);
    dlv_buffer *b = &x->bufs[x->n_bufs];
    CK(dlv_buffer_alloc(x->be, bytes, b));
    x->n_bufs++;
    *out = b;
    return DLV_OK;
}

/* A buffer holding a copy of host[0, bytes). */
static dlv_status dev_in(run_ctx *x, const void *host, size_t bytes, dlv_buffer **out)
{
    CK(dev_alloc(x, bytes, out));
    return dlv_buffer_upload(*out, 0, host, bytes);
}

/* An output buffer holding garbage the op must overwrite (a kernel that
 * skips an element leaves a value no other backend has). */
static dlv_status dev_garbage(run_ctx *x, size_t n_floats, dlv_buffer **out)
{
    return dev_in(x, host_rand(x, n_floats, -99.0f, 99.0f), n_floats * sizeof(float), out);
}

/* Device addresses, to hand to ops only: never read through them. */
static float *dptr(const dlv_buffer *b)
{
    return dlv_buffer_ptr(b);
}

static void *dptr_at(const dlv_buffer *b, size_t byte_offset)
{
    return (char *)dlv_buffer_ptr(b) + byte_offset;
}

/* Downloads [off, off + bytes) of b as the next output. */
static dlv_status dev_out_kind(run_ctx *x, const char *name, const dlv_buffer *b, size_t off,
                               size_t bytes, int is_f32, double red)
{
    op_result *res = x->res;
    assert_true(res->n_out < MAX_OUT);
    CK(dlv_backend_synchronize(x->be));
    unsigned char *data = malloc(bytes ? bytes : 1);
    assert_non_null(data);
    dlv_status st = dlv_buffer_download(data, b, off, bytes);
    if (st != DLV_OK) {
        free(data);
        return st;
    }
    res->out[res->n_out++] = (op_out){name, data, bytes, is_f32, red};
    return DLV_OK;
}

static dlv_status dev_out(run_ctx *x, const char *name, const dlv_buffer *b, size_t n_floats,
                          double red)
{
    return dev_out_kind(x, name, b, 0, n_floats * sizeof(float), 1, red);
}

static void result_free(op_result *res)
{
    for (int i = 0; i < res->n_out; i++) free(res->out[i].data);
    memset(res, 0, sizeof *res);
}

static uint64_t case_seed(size_t index)
{
    return 0x9E3779B97F4A7C15ULL ^ ((uint64_t)index * 7919u + 17u);
}

/* Runs case c on be into res (empty on failure); frees everything else. */
static dlv_status run_case(dlv_backend *be, const op_case *c, uint64_t seed, op_result *res)
{
    run_ctx x = {.be = be, .r = {seed}, .res = res};
    memset(res, 0, sizeof *res);
    dlv_status st = c->run(&x, c);
    for (int i = 0; i < x.n_bufs; i++) dlv_buffer_free(&x.bufs[i]);
    for (int i = 0; i < x.n_host; i++) free(x.host[i]);
    if (st != DLV_OK) result_free(res);
    return st;
}

static int64_t max1(int64_t v)
{
    return v > 1 ? v : 1;
}

/* ---- forward ops -------------------------------------------------------- */

static dlv_status run_matmul(run_ctx *x, const op_case *c)
{
    const mm_p *p = &c->u.mm;
    int64_t a_rows = p->ta ? p->k : p->m, a_cols = p->ta ? p->m : p->k;
    int64_t b_rows = p->tb ? p->n : p->k, b_cols = p->tb ? p->k : p->n;
    int64_t lda = max1(a_cols) + p->pad, ldb = max1(b_cols) + p->pad;
    int64_t ldc = max1(p->n) + p->pad;
    size_t na = (size_t)(a_rows * lda), nb = (size_t)(b_rows * ldb), nc = (size_t)(p->m * ldc);
    size_t es = dlv_dtype_size(c->dt);
    /* Random padding in A and B: a kernel that reads it differs. */
    float *a = host_rand(x, na, -1.0f, 1.0f);
    void *b = host_param(x, c->dt, nb, -1.0f, 1.0f);
    float *c0 = host_rand(x, nc, -1.0f, 1.0f);
    if (p->beta == 0.0f) /* C is not read: NaN there must not propagate */
        for (int64_t i = 0; i < p->m; i++)
            for (int64_t j = 0; j < p->n; j++) c0[i * ldc + j] = NAN;

    dlv_buffer *da, *db, *dc;
    CK(dev_in(x, a, na * sizeof(float), &da));
    /* B one element into its buffer: a sub-tensor, not the buffer's start. */
    CK(dev_alloc(x, es + nb * es, &db));
    CK(dlv_buffer_zero(db, 0, es));
    CK(dlv_buffer_upload(db, es, b, nb * es));
    CK(dev_in(x, c0, nc * sizeof(float), &dc));
    dlv_matmul_args args = {
        .struct_size = sizeof args, .trans_a = p->ta, .trans_b = p->tb,
        .m = p->m, .n = p->n, .k = p->k, .alpha = p->alpha, .beta = p->beta,
        .a = dptr(da), .a_dtype = DLV_DTYPE_F32, .lda = lda,
        .b = dptr_at(db, es), .b_dtype = c->dt, .ldb = ldb,
        .c = dptr(dc), .ldc = ldc,
    };
    CK(dlv_matmul(x->be, &args));
    /* All of C, ldc padding included: it must keep its values. */
    return dev_out(x, "C", dc, nc, (double)p->k);
}

static dlv_status run_add(run_ctx *x, const op_case *c)
{
    const rows_p *p = &c->u.rc;
    size_t n = (size_t)(p->rows * p->cols);
    int bc = (p->variant & V_BROADCAST) != 0;
    size_t nb = bc ? (size_t)p->cols : n, es = dlv_dtype_size(c->dt);
    dlv_buffer *da, *db, *dout;
    CK(dev_in(x, host_rand(x, n, -2.0f, 2.0f), n * sizeof(float), &da));
    CK(dev_in(x, host_param(x, c->dt, nb, -2.0f, 2.0f), nb * es, &db));
    if (p->variant & V_INPLACE)
        dout = da; /* a residual add in place */
    else
        CK(dev_garbage(x, n, &dout));
    CK(dlv_add(x->be, dptr(dout), dptr(da), dptr(db), c->dt, bc, p->rows, p->cols));
    return dev_out(x, "out", dout, n, 1.0);
}

/* layernorm and rmsnorm: out = norm(inp) with optional parameters. */
static dlv_status run_norm(run_ctx *x, const op_case *c, int layer)
{
    const rows_p *p = &c->u.rc;
    size_t n = (size_t)(p->rows * p->cols), pb = (size_t)p->cols * dlv_dtype_size(c->dt);
    dlv_buffer *din, *dw, *dbias, *dout;
    /* An offset per row, as real activations have: the mean matters. */
    float *inp = host_rand(x, n, -2.0f, 2.0f);
    for (int64_t r = 0; r < p->rows; r++)
        for (int64_t j = 0; j < p->cols; j++) inp[r * p->cols + j] += (float)(r % 5) - 2.0f;
    CK(dev_in(x, inp, n * sizeof(float), &din));
    CK(dev_in(x, host_param(x, c->dt, (size_t)p->cols, 0.5f, 1.5f), pb, &dw));
    CK(dev_in(x, host_param(x, c->dt, (size_t)p->cols, -1.0f, 1.0f), pb, &dbias));
    if (p->variant & V_INPLACE)
        dout = din;
    else
        CK(dev_garbage(x, n, &dout));
    const void *w = (p->variant & V_NO_WEIGHT) ? NULL : dptr(dw);
    const void *bias = (p->variant & (V_NO_WEIGHT | V_NO_BIAS)) ? NULL : dptr(dbias);
    if (p->variant & V_RESIDUAL) { /* sum = inp + res, out = norm(sum) */
        dlv_buffer *dres, *dsum;
        CK(dev_in(x, host_rand(x, n, -2.0f, 2.0f), n * sizeof(float), &dres));
        if (p->variant & V_INPLACE)
            dsum = din;
        else
            CK(dev_garbage(x, n, &dsum));
        CK(dev_garbage(x, n, &dout));
        if (layer)
            CK(dlv_add_layernorm(x->be, dptr(dsum), dptr(dout), dptr(din), dptr(dres), w, bias,
                                 c->dt, p->rows, p->cols, 1e-5f));
        else
            CK(dlv_add_rmsnorm(x->be, dptr(dsum), dptr(dout), dptr(din), dptr(dres), w, c->dt,
                               p->rows, p->cols, 1e-6f));
        CK(dev_out(x, "sum", dsum, n, 1.0));
        return dev_out(x, "out", dout, n, (double)p->cols);
    }
    if (layer)
        CK(dlv_layernorm(x->be, dptr(dout), dptr(din), w, bias, c->dt, p->rows, p->cols,
                         1e-5f));
    else
        CK(dlv_rmsnorm(x->be, dptr(dout), dptr(din), w, c->dt, p->rows, p->cols, 1e-6f));
    return dev_out(x, "out", dout, n, (double)p->cols);
}

static dlv_status run_layernorm(run_ctx *x, const op_case *c)
{
    return run_norm(x, c, 1);
}

static dlv_status run_rmsnorm(run_ctx *x, const op_case *c)
{
    return run_norm(x, c, 0);
}

static float *l2_input(run_ctx *x, const rows_p *p)
{
    size_t n = (size_t)(p->rows * p->cols);
    float *inp = host_rand(x, n, -1.0f, 1.0f);
    if (p->variant & V_ZERO_ROW)
        for (int64_t j = 0; j < p->cols; j++) inp[j] = 0.0f;
    return inp;
}

static dlv_status run_l2_normalize(run_ctx *x, const op_case *c)
{
    const rows_p *p = &c->u.rc;
    size_t n = (size_t)(p->rows * p->cols);
    dlv_buffer *din, *dout;
    CK(dev_in(x, l2_input(x, p), n * sizeof(float), &din));
    if (p->variant & V_INPLACE)
        dout = din;
    else
        CK(dev_garbage(x, n, &dout));
    CK(dlv_l2_normalize(x->be, dptr(dout), dptr(din), p->rows, p->cols));
    return dev_out(x, "out", dout, n, (double)p->cols);
}

/* Positions in [0, max_pos], the first 0 and the last max_pos. */
static int32_t *rope_positions(run_ctx *x, const rope_p *p)
{
    int32_t *pos = host_ints(x, (size_t)p->n_tokens, 0, (int32_t)p->max_pos);
    pos[0] = 0;
    if (p->n_tokens > 1) pos[p->n_tokens - 1] = (int32_t)p->max_pos;
    return pos;
}

/* rope and rope_backward: in place on x (dx). */
static dlv_status run_rope_dir(run_ctx *x, const op_case *c, int backward)
{
    const rope_p *p = &c->u.rope;
    size_t n = (size_t)(p->n_tokens * p->n_heads * p->head_dim);
    dlv_buffer *dx, *dpos;
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &dx));
    CK(dev_in(x, rope_positions(x, p), (size_t)p->n_tokens * sizeof(int32_t), &dpos));
    const int32_t *pos = dlv_buffer_ptr(dpos);
    if (backward)
        CK(dlv_rope_backward(x->be, dptr(dx), pos, p->n_tokens, p->n_heads, p->head_dim,
                             p->theta));
    else
        CK(dlv_rope(x->be, dptr(dx), pos, p->n_tokens, p->n_heads, p->head_dim, p->theta));
    return dev_out(x, backward ? "dx" : "x", dx, n, 1.0);
}

static dlv_status run_rope(run_ctx *x, const op_case *c)
{
    return run_rope_dir(x, c, 0);
}

/* rope_table and rope_table_backward: in place on x (dx), tables of the
 * cosines and sines of random angles in [-max_pos, max_pos] (theta unused),
 * both inside one buffer one float past its start (sub-tensors, as a model
 * holds them). */
static dlv_status run_rope_table_dir(run_ctx *x, const op_case *c, int backward)
{
    const rope_p *p = &c->u.rope;
    size_t n = (size_t)(p->n_tokens * p->n_heads * p->head_dim);
    size_t nt = (size_t)(p->n_tokens * (p->head_dim / 2));
    float *ang = host_rand(x, nt, -(float)p->max_pos, (float)p->max_pos);
    float *tabs = host_alloc(x, (1 + 2 * nt) * sizeof *tabs);
    tabs[0] = 0.0f;
    for (size_t i = 0; i < nt; i++) {
        tabs[1 + i] = cosf(ang[i]);
        tabs[1 + nt + i] = sinf(ang[i]);
    }
    dlv_buffer *dx, *dtab;
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &dx));
    CK(dev_in(x, tabs, (1 + 2 * nt) * sizeof(float), &dtab));
    const float *dcos = dptr_at(dtab, sizeof(float));
    const float *dsin = dptr_at(dtab, (1 + nt) * sizeof(float));
    if (backward)
        CK(dlv_rope_table_backward(x->be, dptr(dx), dcos, dsin, p->n_tokens, p->n_heads,
                                   p->head_dim));
    else
        CK(dlv_rope_table(x->be, dptr(dx), dcos, dsin, p->n_tokens, p->n_heads, p->head_dim));
    return dev_out(x, backward ? "dx" : "x", dx, n, 1.0);
}

static dlv_status run_rope_table(run_ctx *x, const op_case *c)
{
    return run_rope_table_dir(x, c, 0);
}

static dlv_status run_rope_table_backward(run_ctx *x, const op_case *c)
{
    return run_rope_table_dir(x, c, 1);
}

/* The key mask [batch, n_kv]: sequence b % 3 == 0 is left-padded (with a
 * causal mask its first queries see no key: zero rows), 1 right-padded, 2
 * has random holes and, when short, no key at all. */
static uint8_t *attention_mask(run_ctx *x, const attn_p *p)
{
    uint8_t *m = host_alloc(x, (size_t)(p->batch * p->n_kv));
    for (int64_t b = 0; b < p->batch; b++) {
        uint8_t *row = m + b * p->n_kv;
        for (int64_t j = 0; j < p->n_kv; j++) {
            int keep = 1;
            switch (b % 3) {
            case 0: keep = j >= (1 + b / 3) % max1(p->n_kv); break;
            case 1: keep = j < p->n_kv - p->n_kv / 3; break;
            default: keep = p->n_kv > 3 && rng_u32(&x->r) % 4 != 0; break;
            }
            row[j] = (uint8_t)keep;
        }
    }
    return m;
}

/* The inputs of attention and its backward. q, k and v share one buffer
 * (q at 0, k after q, v after k), so k and v are sub-tensors. */
typedef struct attn_dev {
    dlv_buffer *qkv, *mask;
    size_t q_n, kv_n; /* floats */
} attn_dev;

static dlv_status attention_inputs(run_ctx *x, const attn_p *p, attn_dev *d)
{
    d->q_n = (size_t)(p->batch * p->n_q * p->n_heads * p->head_dim);
    d->kv_n = (size_t)(p->batch * p->n_kv * p->n_kv_heads * p->head_dim);
    size_t n = d->q_n + 2 * d->kv_n;
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &d->qkv));
    d->mask = NULL;
    if (p->mask)
        CK(dev_in(x, attention_mask(x, p), (size_t)(p->batch * p->n_kv), &d->mask));
    return DLV_OK;
}

static double attention_red(const attn_p *p)
{
    return (double)(p->n_q * (p->n_heads / p->n_kv_heads) + p->n_kv + p->head_dim);
}

static dlv_status run_attention(run_ctx *x, const op_case *c)
{
    const attn_p *p = &c->u.at;
    attn_dev d;
    dlv_buffer *dout;
    CK(attention_inputs(x, p, &d));
    CK(dev_garbage(x, d.q_n, &dout));
    dlv_attention_args a = {
        .struct_size = sizeof a, .out = dptr(dout), .q = dptr(d.qkv),
        .k = dptr_at(d.qkv, d.q_n * sizeof(float)),
        .v = dptr_at(d.qkv, (d.q_n + d.kv_n) * sizeof(float)),
        .key_mask = d.mask ? dlv_buffer_ptr(d.mask) : NULL,
        .batch = p->batch, .n_q = p->n_q, .n_kv = p->n_kv, .n_heads = p->n_heads,
        .n_kv_heads = p->n_kv_heads, .head_dim = p->head_dim,
        .scale = 1.0f / sqrtf((float)p->head_dim), .causal = p->causal,
    };
    CK(dlv_attention(x->be, &a));
    return dev_out(x, "out", dout, d.q_n, (double)(p->n_kv + p->head_dim));
}

/* Activation inputs: random in [-6, 6] with the values where the formulas
 * turn (0, -0, tiny, saturated) first. */
static float *act_input(run_ctx *x, size_t n)
{
    static const float special[] = {0.0f, -0.0f, 1e-4f, -1e-4f, 10.0f, -10.0f, 30.0f, -30.0f};
    float *v = host_rand(x, n, -6.0f, 6.0f);
    for (size_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++) v[i] = special[i];
    return v;
}

static dlv_status run_activation(run_ctx *x, const op_case *c)
{
    const vec_p *p = &c->u.vec;
    size_t n = (size_t)p->n;
    dlv_buffer *din, *dout;
    CK(dev_in(x, act_input(x, n), n * sizeof(float), &din));
    if (p->variant & V_INPLACE)
        dout = din;
    else
        CK(dev_garbage(x, n, &dout));
    CK(dlv_activation(x->be, p->act, dptr(dout), dptr(din), p->n));
    return dev_out(x, "out", dout, n, 1.0);
}

static dlv_status run_swiglu(run_ctx *x, const op_case *c)
{
    const vec_p *p = &c->u.vec;
    size_t n = (size_t)p->n;
    dlv_buffer *dg, *du, *dout;
    CK(dev_in(x, act_input(x, n), n * sizeof(float), &dg));
    CK(dev_in(x, host_rand(x, n, -2.0f, 2.0f), n * sizeof(float), &du));
    if (p->variant & V_INPLACE)
        dout = dg;
    else if (p->variant & V_UP_ALIAS)
        dout = du;
    else
        CK(dev_garbage(x, n, &dout));
    CK(dlv_swiglu(x->be, dptr(dout), dptr(dg), dptr(du), p->n));
    return dev_out(x, "out", dout, n, 1.0);
}

/* Ids in [0, vocab) with 0 and vocab - 1 among them; repeats when
 * n_ids > vocab. */
static int32_t *token_ids(run_ctx *x, const emb_p *p)
{
    int32_t *ids = host_ints(x, (size_t)p->n_ids, 0, (int32_t)p->vocab - 1);
    ids[0] = (int32_t)p->vocab - 1;
    if (p->n_ids > 1) ids[p->n_ids - 1] = 0;
    return ids;
}

static dlv_status run_embedding(run_ctx *x, const op_case *c)
{
    const emb_p *p = &c->u.emb;
    size_t nt = (size_t)(p->vocab * p->dim), no = (size_t)(p->n_ids * p->dim);
    dlv_buffer *dt, *dids, *dout;
    CK(dev_in(x, host_param(x, c->dt, nt, -1.0f, 1.0f), nt * dlv_dtype_size(c->dt), &dt));
    CK(dev_in(x, token_ids(x, p), (size_t)p->n_ids * sizeof(int32_t), &dids));
    CK(dev_garbage(x, no, &dout));
    CK(dlv_embedding(x->be, dptr(dout), dptr(dt), c->dt, dlv_buffer_ptr(dids), p->n_ids,
                     p->vocab, p->dim));
    return dev_out(x, "out", dout, no, 1.0);
}

static dlv_status run_im2col(run_ctx *x, const op_case *c)
{
    const img_p *p = &c->u.img;
    size_t npx = (size_t)(p->c * p->h * p->w);
    size_t no = (size_t)((p->h / p->patch) * (p->w / p->patch) * p->c * p->patch * p->patch);
    dlv_buffer *dpx, *dout;
    CK(dev_in(x, host_rand(x, npx, -1.0f, 1.0f), npx * sizeof(float), &dpx));
    CK(dev_garbage(x, no, &dout));
    CK(dlv_im2col_patches(x->be, dptr(dout), dptr(dpx), p->c, p->h, p->w, p->patch));
    return dev_out(x, "out", dout, no, 1.0);
}

/* ---- backward ops ------------------------------------------------------- *
 * Gradients start at random nonzero values: the ops accumulate (+=). */

static dlv_status run_norm_backward(run_ctx *x, const op_case *c, int layer)
{
    const rows_p *p = &c->u.rc;
    size_t n = (size_t)(p->rows * p->cols), cols = (size_t)p->cols;
    dlv_buffer *din, *ddout, *dw, *ddinp, *ddw, *ddb;
    float *inp = host_rand(x, n, -2.0f, 2.0f);
    for (int64_t r = 0; r < p->rows; r++)
        for (int64_t j = 0; j < p->cols; j++) inp[r * p->cols + j] += (float)(r % 3) - 1.0f;
    CK(dev_in(x, inp, n * sizeof(float), &din));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddout));
    CK(dev_in(x, host_param(x, c->dt, cols, 0.5f, 1.5f), cols * dlv_dtype_size(c->dt), &dw));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddinp));
    CK(dev_in(x, host_rand(x, cols, -1.0f, 1.0f), cols * sizeof(float), &ddw));
    CK(dev_in(x, host_rand(x, cols, -1.0f, 1.0f), cols * sizeof(float), &ddb));
    const void *w = (p->variant & V_NO_WEIGHT) ? NULL : dptr(dw);
    int pgrad = !(p->variant & V_NO_PGRAD);
    float *gw = pgrad ? dptr(ddw) : NULL, *gb = pgrad ? dptr(ddb) : NULL;
    if (layer)
        CK(dlv_layernorm_backward(x->be, dptr(ddinp), gw, gb, dptr(ddout), dptr(din), w, c->dt,
                                  p->rows, p->cols, 1e-5f));
    else
        CK(dlv_rmsnorm_backward(x->be, dptr(ddinp), gw, dptr(ddout), dptr(din), w, c->dt,
                                p->rows, p->cols, 1e-6f));
    CK(dev_out(x, "dinp", ddinp, n, (double)p->cols));
    if (pgrad) {
        CK(dev_out(x, "dweight", ddw, cols, (double)p->rows));
        if (layer) CK(dev_out(x, "dbias", ddb, cols, (double)p->rows));
    }
    return DLV_OK;
}

static dlv_status run_rmsnorm_backward(run_ctx *x, const op_case *c)
{
    return run_norm_backward(x, c, 0);
}

static dlv_status run_layernorm_backward(run_ctx *x, const op_case *c)
{
    return run_norm_backward(x, c, 1);
}

static dlv_status run_rope_backward(run_ctx *x, const op_case *c)
{
    return run_rope_dir(x, c, 1);
}

static dlv_status run_attention_backward(run_ctx *x, const op_case *c)
{
    const attn_p *p = &c->u.at;
    attn_dev d;
    dlv_buffer *ddout, *dq, *dk, *dv;
    CK(attention_inputs(x, p, &d));
    CK(dev_in(x, host_rand(x, d.q_n, -1.0f, 1.0f), d.q_n * sizeof(float), &ddout));
    CK(dev_in(x, host_rand(x, d.q_n, -1.0f, 1.0f), d.q_n * sizeof(float), &dq));
    CK(dev_in(x, host_rand(x, d.kv_n, -1.0f, 1.0f), d.kv_n * sizeof(float), &dk));
    CK(dev_in(x, host_rand(x, d.kv_n, -1.0f, 1.0f), d.kv_n * sizeof(float), &dv));
    dlv_attention_bw_args a = {
        .struct_size = sizeof a, .dq = dptr(dq), .dk = dptr(dk), .dv = dptr(dv),
        .dout = dptr(ddout), .q = dptr(d.qkv),
        .k = dptr_at(d.qkv, d.q_n * sizeof(float)),
        .v = dptr_at(d.qkv, (d.q_n + d.kv_n) * sizeof(float)),
        .key_mask = d.mask ? dlv_buffer_ptr(d.mask) : NULL,
        .batch = p->batch, .n_q = p->n_q, .n_kv = p->n_kv, .n_heads = p->n_heads,
        .n_kv_heads = p->n_kv_heads, .head_dim = p->head_dim,
        .scale = 1.0f / sqrtf((float)p->head_dim), .causal = p->causal,
    };
    CK(dlv_attention_backward(x->be, &a));
    double red = attention_red(p);
    CK(dev_out(x, "dq", dq, d.q_n, red));
    CK(dev_out(x, "dk", dk, d.kv_n, red));
    return dev_out(x, "dv", dv, d.kv_n, red);
}

static dlv_status run_activation_backward(run_ctx *x, const op_case *c)
{
    const vec_p *p = &c->u.vec;
    size_t n = (size_t)p->n;
    dlv_buffer *din, *ddout, *ddinp;
    CK(dev_in(x, act_input(x, n), n * sizeof(float), &din));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddout));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddinp));
    CK(dlv_activation_backward(x->be, p->act, dptr(ddinp), dptr(ddout), dptr(din), p->n));
    return dev_out(x, "dinp", ddinp, n, 1.0);
}

static dlv_status run_swiglu_backward(run_ctx *x, const op_case *c)
{
    const vec_p *p = &c->u.vec;
    size_t n = (size_t)p->n;
    dlv_buffer *dg, *du, *ddout, *ddg, *ddu;
    CK(dev_in(x, act_input(x, n), n * sizeof(float), &dg));
    CK(dev_in(x, host_rand(x, n, -2.0f, 2.0f), n * sizeof(float), &du));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddout));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddg));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddu));
    CK(dlv_swiglu_backward(x->be, dptr(ddg), dptr(ddu), dptr(ddout), dptr(dg), dptr(du), p->n));
    CK(dev_out(x, "dgate", ddg, n, 1.0));
    return dev_out(x, "dup", ddu, n, 1.0);
}

static dlv_status run_embedding_backward(run_ctx *x, const op_case *c)
{
    const emb_p *p = &c->u.emb;
    size_t nt = (size_t)(p->vocab * p->dim), no = (size_t)(p->n_ids * p->dim);
    dlv_buffer *dtab, *ddout, *dids;
    CK(dev_in(x, host_rand(x, nt, -1.0f, 1.0f), nt * sizeof(float), &dtab));
    CK(dev_in(x, host_rand(x, no, -1.0f, 1.0f), no * sizeof(float), &ddout));
    CK(dev_in(x, token_ids(x, p), (size_t)p->n_ids * sizeof(int32_t), &dids));
    CK(dlv_embedding_backward(x->be, dptr(dtab), dptr(ddout), dlv_buffer_ptr(dids), p->n_ids,
                              p->vocab, p->dim));
    /* A row sums its token's repeats: at most n_ids terms. */
    return dev_out(x, "dtable", dtab, nt, (double)p->n_ids);
}

static dlv_status run_bias_backward(run_ctx *x, const op_case *c)
{
    const rows_p *p = &c->u.rc;
    size_t n = (size_t)(p->rows * p->cols), cols = (size_t)p->cols;
    dlv_buffer *ddout, *ddb;
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddout));
    CK(dev_in(x, host_rand(x, cols, -1.0f, 1.0f), cols * sizeof(float), &ddb));
    CK(dlv_bias_backward(x->be, dptr(ddb), dptr(ddout), p->rows, p->cols));
    return dev_out(x, "dbias", ddb, cols, (double)p->rows);
}

static dlv_status run_l2_normalize_backward(run_ctx *x, const op_case *c)
{
    const rows_p *p = &c->u.rc;
    size_t n = (size_t)(p->rows * p->cols);
    dlv_buffer *din, *ddout, *ddinp;
    CK(dev_in(x, l2_input(x, p), n * sizeof(float), &din));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddout));
    CK(dev_in(x, host_rand(x, n, -1.0f, 1.0f), n * sizeof(float), &ddinp));
    CK(dlv_l2_normalize_backward(x->be, dptr(ddinp), dptr(ddout), dptr(din), p->rows,
                                 p->cols));
    return dev_out(x, "dinp", ddinp, n, (double)p->cols);
}

static dlv_status run_softmax_cross_entropy(run_ctx *x, const op_case *c)
{
    const rows_p *p = &c->u.rc;
    size_t n = (size_t)(p->rows * p->cols), rows = (size_t)p->rows;
    int32_t *t = host_ints(x, rows, 0, (int32_t)p->cols - 1);
    for (size_t i = 2; i < rows; i += 3) t[i] = -1; /* ignored (padding) */
    dlv_buffer *dlog, *dt, *dloss, *ddlog;
    CK(dev_in(x, host_rand(x, n, -5.0f, 5.0f), n * sizeof(float), &dlog));
    CK(dev_in(x, t, rows * sizeof(int32_t), &dt));
    CK(dev_garbage(x, rows, &dloss));
    if (p->variant & V_INPLACE)
        ddlog = dlog;
    else
        CK(dev_garbage(x, n, &ddlog));
    float *g = (p->variant & V_NO_PGRAD) ? NULL : dptr(ddlog);
    CK(dlv_softmax_cross_entropy(x->be, dptr(dloss), g, dptr(dlog), dlv_buffer_ptr(dt),
                                 p->rows, p->cols, 1.0f / (float)max1(p->rows)));
    CK(dev_out(x, "losses", dloss, rows, (double)p->cols));
    if (g) CK(dev_out(x, "dlogits", ddlog, n, (double)p->cols));
    return DLV_OK;
}

/* ---- memory functions --------------------------------------------------- */

/* Uploads at an odd offset, zeroes a middle range, downloads the whole
 * buffer and an inner range at another offset. */
static dlv_status run_buffer(run_ctx *x, const op_case *c)
{
    size_t n = c->u.mem.bytes;
    unsigned char *src = host_alloc(x, n);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)rng_u32(&x->r);
    dlv_buffer *b;
    CK(dev_alloc(x, n + 3, &b));
    CK(dlv_buffer_zero(b, 0, n + 3));
    CK(dlv_buffer_upload(b, 3, src, n));
    CK(dlv_buffer_zero(b, 3 + n / 3, n / 4));
    CK(dlv_buffer_upload(b, 0, src + n / 2, n < 3 ? n : 3));
    CK(dev_out_kind(x, "bytes", b, 0, n + 3, 0, 1.0));
    return dev_out_kind(x, "inner range", b, 1 + n / 5, n / 2, 0, 1.0);
}

/* Copies between two buffers at odd offsets, then inside one buffer. */
static dlv_status run_buffer_copy(run_ctx *x, const op_case *c)
{
    size_t n = c->u.mem.bytes, dn = 2 * n + 16, off = n / 3, len = n - n / 3;
    unsigned char *src = host_alloc(x, n);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)rng_u32(&x->r);
    dlv_buffer *bs, *bd;
    CK(dev_in(x, src, n, &bs));
    CK(dev_alloc(x, dn, &bd));
    CK(dlv_buffer_zero(bd, 0, dn));
    CK(dlv_buffer_copy(bd, 5, bs, off, len));
    /* [5, 5 + len) and [dn - len - 1, dn - 1) are disjoint: len <= n. */
    CK(dlv_buffer_copy(bd, dn - len - 1, bd, 5, len));
    return dev_out_kind(x, "dst", bd, 0, dn, 0, 1.0);
}

/* ---- the table ---------------------------------------------------------- */

#define TOL_F32 {1e-5, 1e-4}
#define TOL_EXACT {0.0, 0.0}
#define F32 DLV_DTYPE_F32
#define BF16 DLV_DTYPE_BF16
#define F16 DLV_DTYPE_F16
#define N DLV_NO_TRANS
#define T DLV_TRANS

#define MM(m_, n_, k_, ta_, tb_, dt_, pad_, alpha_, beta_)                                \
    {.op = "matmul", .run = run_matmul, .tol = TOL_F32, .dt = dt_,                       \
     .label = "m=" #m_ " n=" #n_ " k=" #k_ " trans_a=" #ta_ " trans_b=" #tb_ " B=" #dt_  \
              " pad=" #pad_ " alpha=" #alpha_ " beta=" #beta_,                           \
     .u.mm = {.m = m_, .n = n_, .k = k_, .pad = pad_, .ta = ta_, .tb = tb_,              \
              .alpha = alpha_, .beta = beta_}}
#define ROWS(op_, fn_, tol_, rows_, cols_, dt_, variant_)                                 \
    {.op = op_, .run = fn_, .tol = tol_, .dt = dt_,                                       \
     .label = "rows=" #rows_ " cols=" #cols_ " dtype=" #dt_ " variant=" #variant_,        \
     .u.rc = {.rows = rows_, .cols = cols_, .variant = variant_}}
#define ROPE(op_, fn_, n_tokens_, n_heads_, head_dim_, max_pos_, theta_)                  \
    {.op = op_, .run = fn_, .tol = TOL_F32, .dt = F32,                                    \
     .label = "n_tokens=" #n_tokens_ " n_heads=" #n_heads_ " head_dim=" #head_dim_        \
              " max_pos=" #max_pos_ " theta=" #theta_,                                    \
     .u.rope = {.n_tokens = n_tokens_, .n_heads = n_heads_, .head_dim = head_dim_,        \
                .max_pos = max_pos_, .theta = theta_}}
#define ATTN(op_, fn_, batch_, n_q_, n_kv_, n_heads_, n_kv_heads_, head_dim_, causal_,    \
             mask_)                                                                       \
    {.op = op_, .run = fn_, .tol = TOL_F32, .dt = F32,                                    \
     .label = "batch=" #batch_ " n_q=" #n_q_ " n_kv=" #n_kv_ " n_heads=" #n_heads_        \
              " n_kv_heads=" #n_kv_heads_ " head_dim=" #head_dim_ " causal=" #causal_     \
              " mask=" #mask_,                                                            \
     .u.at = {.batch = batch_, .n_q = n_q_, .n_kv = n_kv_, .n_heads = n_heads_,           \
              .n_kv_heads = n_kv_heads_, .head_dim = head_dim_, .causal = causal_,        \
              .mask = mask_}}
#define VEC(op_, fn_, n_, act_, variant_)                                                 \
    {.op = op_, .run = fn_, .tol = TOL_F32, .dt = F32,                                    \
     .label = "n=" #n_ " act=" #act_ " variant=" #variant_,                               \
     .u.vec = {.n = n_, .act = act_, .variant = variant_}}
#define EMB(op_, fn_, tol_, n_ids_, vocab_, dim_, dt_)                                    \
    {.op = op_, .run = fn_, .tol = tol_, .dt = dt_,                                       \
     .label = "n_ids=" #n_ids_ " vocab=" #vocab_ " dim=" #dim_ " dtype=" #dt_,            \
     .u.emb = {.n_ids = n_ids_, .vocab = vocab_, .dim = dim_}}
#define IMG(c_, h_, w_, patch_)                                                           \
    {.op = "im2col_patches", .run = run_im2col, .tol = TOL_EXACT, .dt = F32,             \
     .label = "c=" #c_ " h=" #h_ " w=" #w_ " patch=" #patch_,                             \
     .u.img = {.c = c_, .h = h_, .w = w_, .patch = patch_}}
#define MEM(op_, fn_, bytes_)                                                             \
    {.op = op_, .run = fn_, .tol = TOL_EXACT, .dt = F32, .label = "bytes=" #bytes_,       \
     .u.mem = {.bytes = bytes_}}

#define QG DLV_OP_ACT_QUICK_GELU
#define GELU DLV_OP_ACT_GELU
#define GT DLV_OP_ACT_GELU_TANH
#define SILU DLV_OP_ACT_SILU
#define RELU DLV_OP_ACT_RELU
#define ALL_ACTS(op_, fn_, n_)                                                            \
    VEC(op_, fn_, n_, QG, 0), VEC(op_, fn_, n_, GELU, 0), VEC(op_, fn_, n_, GT, 0),       \
    VEC(op_, fn_, n_, SILU, 0), VEC(op_, fn_, n_, RELU, 0)

/* Shapes: odd sizes, one row (or token, or element), and one larger case
 * per op (more rows than threads, several weight tiles for matmul). */
static const op_case op_cases[] = {
    /* matmul: F32/BF16/F16 B, all four transposes, beta 0 (C NaN) and 1,
     * padded leading dimensions, k = 0 (C = beta C). */
    MM(1, 1, 1, N, N, F32, 0, 1.0f, 0.0f),
    MM(1, 7, 3, N, T, F32, 3, 1.0f, 1.0f),
    MM(5, 1, 4, T, N, BF16, 0, 0.5f, 1.0f),
    MM(3, 4, 1, T, T, F16, 1, 1.0f, 0.0f),
    MM(17, 13, 29, N, N, F32, 0, 1.0f, 0.0f),
    MM(17, 13, 29, N, T, BF16, 3, 1.0f, 0.0f),
    MM(17, 13, 29, T, T, F16, 0, -1.5f, 1.0f),
    MM(17, 13, 29, T, N, BF16, 3, 1.0f, 1.0f),
    MM(17, 13, 29, N, N, F16, 3, 1.0f, 0.0f),
    MM(64, 33, 70, T, N, F32, 3, 1.0f, 1.0f),
    MM(64, 33, 70, N, T, F16, 3, 1.0f, 1.0f),
    MM(64, 33, 70, T, T, BF16, 0, 1.0f, 0.0f),
    MM(128, 96, 257, N, T, F32, 0, 1.0f, 1.0f),
    MM(128, 96, 257, T, N, BF16, 3, 0.5f, 0.0f),
    MM(5, 1000, 1100, N, T, BF16, 0, 1.0f, 0.0f), /* spans two CPU weight tiles */
    MM(5, 1000, 1100, N, T, F16, 2, 1.0f, 1.0f),
    MM(2, 3, 0, N, N, F32, 1, 1.0f, 1.0f),
    MM(4, 6, 0, T, T, BF16, 0, 1.0f, 0.0f),

    /* add: broadcast and not, F32/BF16/F16 b, in place (out = a). */
    ROWS("add", run_add, TOL_F32, 1, 1, F32, 0),
    ROWS("add", run_add, TOL_F32, 1, 37, BF16, V_BROADCAST),
    ROWS("add", run_add, TOL_F32, 7, 33, F16, 0),
    ROWS("add", run_add, TOL_F32, 7, 33, F32, V_BROADCAST | V_INPLACE),
    ROWS("add", run_add, TOL_F32, 13, 257, BF16, 0),
    ROWS("add", run_add, TOL_F32, 3, 5, F16, V_INPLACE),
    ROWS("add", run_add, TOL_F32, 64, 1000, F16, V_BROADCAST),
    ROWS("add", run_add, TOL_F32, 65, 129, F32, 0),

    ROWS("layernorm", run_layernorm, TOL_F32, 1, 1, F32, 0),
    ROWS("layernorm", run_layernorm, TOL_F32, 1, 768, BF16, 0),
    ROWS("layernorm", run_layernorm, TOL_F32, 7, 33, F16, 0),
    ROWS("layernorm", run_layernorm, TOL_F32, 5, 31, F32, V_NO_WEIGHT),
    ROWS("layernorm", run_layernorm, TOL_F32, 3, 17, BF16, V_NO_BIAS | V_INPLACE),
    ROWS("layernorm", run_layernorm, TOL_F32, 64, 1024, F32, 0),
    ROWS("add_layernorm", run_layernorm, TOL_F32, 7, 33, BF16, V_RESIDUAL),
    ROWS("add_layernorm", run_layernorm, TOL_F32, 5, 31, F32, V_RESIDUAL | V_INPLACE),

    ROWS("rmsnorm", run_rmsnorm, TOL_F32, 1, 1, F32, 0),
    ROWS("rmsnorm", run_rmsnorm, TOL_F32, 1, 4096, BF16, 0),
    ROWS("rmsnorm", run_rmsnorm, TOL_F32, 7, 33, F16, 0),
    ROWS("rmsnorm", run_rmsnorm, TOL_F32, 5, 31, F32, V_NO_WEIGHT | V_INPLACE),
    ROWS("rmsnorm", run_rmsnorm, TOL_F32, 64, 1000, F32, 0),
    ROWS("add_rmsnorm", run_rmsnorm, TOL_F32, 7, 33, F16, V_RESIDUAL),
    ROWS("add_rmsnorm", run_rmsnorm, TOL_F32, 64, 1000, F32, V_RESIDUAL | V_INPLACE),

    ROWS("l2_normalize", run_l2_normalize, TOL_F32, 1, 1, F32, 0),
    ROWS("l2_normalize", run_l2_normalize, TOL_F32, 1, 512, F32, 0),
    ROWS("l2_normalize", run_l2_normalize, TOL_F32, 7, 33, F32, V_ZERO_ROW),
    ROWS("l2_normalize", run_l2_normalize, TOL_F32, 5, 17, F32, V_INPLACE),
    ROWS("l2_normalize", run_l2_normalize, TOL_F32, 64, 768, F32, 0),

    ROPE("rope", run_rope, 1, 1, 2, 0, 1e4),
    ROPE("rope", run_rope, 7, 3, 64, 100, 1e4),
    ROPE("rope", run_rope, 5, 2, 128, 4095, 1e6),
    ROPE("rope", run_rope, 33, 5, 18, 2047, 5e5),
    ROPE("rope", run_rope, 128, 8, 64, 4095, 1e4),

    /* rope_table: max_pos is the angles' range. Qwen2-VL's shapes: the
     * language model's head_dim 128, the vision tower's 80. */
    ROPE("rope_table", run_rope_table, 1, 1, 2, 1, 0.0),
    ROPE("rope_table", run_rope_table, 7, 3, 64, 100, 0.0),
    ROPE("rope_table", run_rope_table, 33, 5, 18, 3000, 0.0),
    ROPE("rope_table", run_rope_table, 40, 16, 80, 50, 0.0),
    ROPE("rope_table", run_rope_table, 128, 4, 128, 30000, 0.0),

    /* attention: causal and not, key masks (left/right padding, holes, a
     * fully masked sequence), GQA ratios 1, 2, 3 (6/2), 4 (4/1), 8 (8/1),
     * n_q < n_kv (a cache) and n_q > n_kv (queries with no key). */
    ATTN("attention", run_attention, 1, 1, 1, 1, 1, 1, 0, 0),
    ATTN("attention", run_attention, 1, 1, 9, 4, 2, 16, 1, 0),
    ATTN("attention", run_attention, 3, 7, 7, 4, 4, 8, 1, 1),
    ATTN("attention", run_attention, 3, 5, 11, 6, 2, 16, 0, 1),
    ATTN("attention", run_attention, 3, 5, 11, 6, 2, 16, 1, 1),
    ATTN("attention", run_attention, 2, 13, 13, 8, 1, 32, 1, 0),
    ATTN("attention", run_attention, 1, 8, 5, 4, 1, 8, 1, 0),
    ATTN("attention", run_attention, 1, 9, 9, 3, 3, 24, 0, 0),
    ATTN("attention", run_attention, 3, 4, 3, 2, 1, 8, 0, 1), /* sequence 2: no key at all */
    ATTN("attention", run_attention, 2, 64, 80, 12, 4, 64, 1, 1),

    ALL_ACTS("activation", run_activation, 1),
    ALL_ACTS("activation", run_activation, 37),
    ALL_ACTS("activation", run_activation, 4099),
    VEC("activation", run_activation, 33, GT, V_INPLACE),

    VEC("swiglu", run_swiglu, 1, SILU, 0),
    VEC("swiglu", run_swiglu, 37, SILU, V_INPLACE),
    VEC("swiglu", run_swiglu, 37, SILU, V_UP_ALIAS),
    VEC("swiglu", run_swiglu, 4099, SILU, 0),

    EMB("embedding", run_embedding, TOL_EXACT, 1, 1, 1, F32),
    EMB("embedding", run_embedding, TOL_EXACT, 7, 50, 33, BF16),
    EMB("embedding", run_embedding, TOL_EXACT, 13, 1000, 64, F16),
    EMB("embedding", run_embedding, TOL_EXACT, 100, 5000, 128, F32),
    EMB("embedding", run_embedding, TOL_EXACT, 40, 3, 5, BF16), /* repeats */

    IMG(1, 1, 1, 1),
    IMG(3, 7, 9, 2), /* remainders dropped */
    IMG(4, 17, 13, 4),
    IMG(1, 5, 5, 5),
    IMG(3, 224, 224, 14),

    /* ---- backward ---- */
    ROWS("rmsnorm_backward", run_rmsnorm_backward, TOL_F32, 1, 1, F32, 0),
    ROWS("rmsnorm_backward", run_rmsnorm_backward, TOL_F32, 1, 768, BF16, 0),
    ROWS("rmsnorm_backward", run_rmsnorm_backward, TOL_F32, 7, 33, F16, 0),
    ROWS("rmsnorm_backward", run_rmsnorm_backward, TOL_F32, 5, 31, F32, V_NO_WEIGHT),
    ROWS("rmsnorm_backward", run_rmsnorm_backward, TOL_F32, 9, 17, BF16, V_NO_PGRAD),
    ROWS("rmsnorm_backward", run_rmsnorm_backward, TOL_F32, 64, 1000, F32, 0),

    ROWS("layernorm_backward", run_layernorm_backward, TOL_F32, 1, 1, F32, 0),
    ROWS("layernorm_backward", run_layernorm_backward, TOL_F32, 1, 768, BF16, 0),
    ROWS("layernorm_backward", run_layernorm_backward, TOL_F32, 7, 33, F16, 0),
    ROWS("layernorm_backward", run_layernorm_backward, TOL_F32, 5, 31, F32, V_NO_WEIGHT),
    ROWS("layernorm_backward", run_layernorm_backward, TOL_F32, 9, 17, F16, V_NO_PGRAD),
    ROWS("layernorm_backward", run_layernorm_backward, TOL_F32, 64, 1024, F32, 0),

    ROPE("rope_backward", run_rope_backward, 1, 1, 2, 0, 1e4),
    ROPE("rope_backward", run_rope_backward, 7, 3, 64, 100, 1e4),
    ROPE("rope_backward", run_rope_backward, 33, 5, 18, 2047, 5e5),
    ROPE("rope_backward", run_rope_backward, 128, 8, 64, 4095, 1e6),

    ROPE("rope_table_backward", run_rope_table_backward, 1, 1, 2, 1, 0.0),
    ROPE("rope_table_backward", run_rope_table_backward, 7, 3, 64, 100, 0.0),
    ROPE("rope_table_backward", run_rope_table_backward, 33, 5, 18, 3000, 0.0),
    ROPE("rope_table_backward", run_rope_table_backward, 128, 4, 128, 30000, 0.0),

    ATTN("attention_backward", run_attention_backward, 1, 1, 1, 1, 1, 1, 0, 0),
    ATTN("attention_backward", run_attention_backward, 1, 1, 9, 4, 2, 16, 1, 0),
    ATTN("attention_backward", run_attention_backward, 3, 7, 7, 4, 4, 8, 1, 1),
    ATTN("attention_backward", run_attention_backward, 3, 5, 11, 6, 2, 16, 1, 1),
    ATTN("attention_backward", run_attention_backward, 2, 13, 13, 8, 1, 32, 0, 1),
    ATTN("attention_backward", run_attention_backward, 1, 8, 5, 4, 1, 8, 1, 0),
    ATTN("attention_backward", run_attention_backward, 3, 4, 3, 2, 1, 8, 1, 1),
    ATTN("attention_backward", run_attention_backward, 2, 48, 64, 12, 4, 32, 1, 1),

    ALL_ACTS("activation_backward", run_activation_backward, 1),
    ALL_ACTS("activation_backward", run_activation_backward, 37),
    ALL_ACTS("activation_backward", run_activation_backward, 4099),

    VEC("swiglu_backward", run_swiglu_backward, 1, SILU, 0),
    VEC("swiglu_backward", run_swiglu_backward, 37, SILU, 0),
    VEC("swiglu_backward", run_swiglu_backward, 4099, SILU, 0),

    EMB("embedding_backward", run_embedding_backward, TOL_F32, 1, 1, 1, F32),
    EMB("embedding_backward", run_embedding_backward, TOL_F32, 7, 50, 33, F32),
    EMB("embedding_backward", run_embedding_backward, TOL_F32, 40, 3, 5, F32), /* repeats */
    EMB("embedding_backward", run_embedding_backward, TOL_F32, 200, 1000, 64, F32),

    ROWS("bias_backward", run_bias_backward, TOL_F32, 1, 1, F32, 0),
    ROWS("bias_backward", run_bias_backward, TOL_F32, 1, 37, F32, 0),
    ROWS("bias_backward", run_bias_backward, TOL_F32, 7, 33, F32, 0),
    ROWS("bias_backward", run_bias_backward, TOL_F32, 300, 257, F32, 0),

    ROWS("l2_normalize_backward", run_l2_normalize_backward, TOL_F32, 1, 1, F32, 0),
    ROWS("l2_normalize_backward", run_l2_normalize_backward, TOL_F32, 1, 512, F32, 0),
    ROWS("l2_normalize_backward", run_l2_normalize_backward, TOL_F32, 7, 33, F32, V_ZERO_ROW),
    ROWS("l2_normalize_backward", run_l2_normalize_backward, TOL_F32, 64, 768, F32, 0),

    ROWS("softmax_cross_entropy", run_softmax_cross_entropy, TOL_F32, 1, 1, F32, 0),
    ROWS("softmax_cross_entropy", run_softmax_cross_entropy, TOL_F32, 1, 37, F32, 0),
    ROWS("softmax_cross_entropy", run_softmax_cross_entropy, TOL_F32, 7, 33, F32, 0),
    ROWS("softmax_cross_entropy", run_softmax_cross_entropy, TOL_F32, 9, 50, F32, V_INPLACE),
    ROWS("softmax_cross_entropy", run_softmax_cross_entropy, TOL_F32, 3, 17, F32, V_NO_PGRAD),
    ROWS("softmax_cross_entropy", run_softmax_cross_entropy, TOL_F32, 5, 32000, F32, 0),

    /* ---- memory ---- */
    MEM("buffer", run_buffer, 1),
    MEM("buffer", run_buffer, 1000),
    MEM("buffer", run_buffer, 4099),
    MEM("buffer", run_buffer, (1 << 20) + 3),
    MEM("buffer_copy", run_buffer_copy, 1),
    MEM("buffer_copy", run_buffer_copy, 1000),
    MEM("buffer_copy", run_buffer_copy, 4099),
    MEM("buffer_copy", run_buffer_copy, (1 << 20) + 3),
};

#undef TOL_F32
#undef TOL_EXACT
#undef F32
#undef BF16
#undef F16
#undef N
#undef T
#undef QG
#undef GELU
#undef GT
#undef SILU
#undef RELU
#undef ALL_ACTS

enum { N_CASES = sizeof op_cases / sizeof op_cases[0] };

/* ---- comparison --------------------------------------------------------- */

/* Whether a and b agree for this case; writes the first disagreement into
 * why. exact: bit for bit. */
static int outputs_agree(const op_case *c, const op_out *got, const op_out *ref, int exact,
                         char *why, size_t why_size)
{
    if (got->bytes != ref->bytes) {
        snprintf(why, why_size, "%s: %zu bytes, reference %zu", ref->name, got->bytes,
                 ref->bytes);
        return 0;
    }
    if (exact || !ref->is_f32 || (c->tol.atol == 0.0 && c->tol.rtol == 0.0)) {
        if (memcmp(got->data, ref->data, ref->bytes) == 0) return 1;
        size_t i = 0;
        while (got->data[i] == ref->data[i]) i++;
        if (ref->is_f32) {
            float g, r;
            size_t e = i / sizeof(float);
            memcpy(&g, got->data + e * sizeof(float), sizeof g);
            memcpy(&r, ref->data + e * sizeof(float), sizeof r);
            snprintf(why, why_size, "%s[%zu] = %.9g, reference %.9g (must be bit-identical)",
                     ref->name, e, (double)g, (double)r);
        } else {
            snprintf(why, why_size, "%s byte %zu = %u, reference %u (must be identical)",
                     ref->name, i, got->data[i], ref->data[i]);
        }
        return 0;
    }
    size_t n = ref->bytes / sizeof(float), bad = 0, first = 0;
    double worst = 0.0, scale = sqrt(ref->red > 1.0 ? ref->red : 1.0);
    for (size_t i = 0; i < n; i++) {
        float g, r;
        memcpy(&g, got->data + i * sizeof(float), sizeof g);
        memcpy(&r, ref->data + i * sizeof(float), sizeof r);
        if (g == r || (isnan(g) && isnan(r))) continue;
        double d = fabs((double)g - (double)r);
        double t = (c->tol.atol + c->tol.rtol * fabs((double)r)) * scale;
        if (d <= t) continue; /* NaN d (one side NaN or inf) falls through */
        if (bad++ == 0) first = i;
        if (!(d <= worst)) worst = d;
    }
    if (bad == 0) return 1;
    float g, r;
    memcpy(&g, got->data + first * sizeof(float), sizeof g);
    memcpy(&r, ref->data + first * sizeof(float), sizeof r);
    snprintf(why, why_size,
             "%s: %zu of %zu elements outside tolerance; first [%zu] = %.9g, reference %.9g "
             "(tol %.3g); max |diff| %.3g",
             ref->name, bad, n, first, (double)g, (double)r,
             (c->tol.atol + c->tol.rtol * fabs((double)r)) * scale, worst);
    return 0;
}

/* ---- the backend-parametric test ---------------------------------------- */

enum { MAX_BACKENDS = 8, MAX_OPS = 40, ST_PASS = 0, ST_UNSUP = 1, ST_FAIL = 2 };

typedef struct be_slot {
    char name[32];
    dlv_backend *be;     /* NULL: could not be created here (skipped) */
    int exact;           /* must match the reference bit for bit */
    char skip_why[200];
} be_slot;

typedef struct suite {
    dlv_backend *ref;    /* the reference: a CPU instance of its own */
    be_slot b[MAX_BACKENDS];
    int n_b;
} suite;

/* cpu and sim run the CPU kernels on the same inputs: identical results.
 * A decision by name is right here: it is this test's expectation of a
 * backend, not behaviour of one. */
static int backend_is_exact(const char *name)
{
    return strcmp(name, "cpu") == 0 || strcmp(name, "sim") == 0;
}

static int suite_setup(void **state)
{
    suite *s = calloc(1, sizeof *s);
    if (!s) return -1;
    if (dlv_backend_create("cpu", NULL, &s->ref) != DLV_OK) {
        print_error("cannot create the reference cpu backend: %s\n", dlv_last_error());
        free(s);
        return -1;
    }
    const char *list = dlv_backend_list();
    while (*list && s->n_b < MAX_BACKENDS) {
        size_t len = strcspn(list, ",");
        be_slot *b = &s->b[s->n_b++];
        snprintf(b->name, sizeof b->name, "%.*s", (int)len, list);
        b->exact = backend_is_exact(b->name);
        if (dlv_backend_create(b->name, NULL, &b->be) != DLV_OK) {
            snprintf(b->skip_why, sizeof b->skip_why, "%s", dlv_last_error());
            b->be = NULL;
            printf("backend %s: skipped, cannot be created here: %s\n", b->name, b->skip_why);
        } else {
            printf("backend %s: %s\n", b->name, dlv_backend_describe(b->be));
        }
        list += len;
        if (*list == ',') list++;
    }
    fflush(stdout);
    *state = s;
    return 0;
}

static int suite_teardown(void **state)
{
    suite *s = *state;
    for (int i = 0; i < s->n_b; i++) dlv_backend_destroy(s->b[i].be);
    dlv_backend_destroy(s->ref);
    free(s);
    return 0;
}

typedef struct tally {
    const char *ops[MAX_OPS];
    int n_ops;
    int cell[MAX_OPS][MAX_BACKENDS][3]; /* [op][backend][ST_*] cases */
} tally;

static int op_index(tally *t, const char *op)
{
    for (int i = 0; i < t->n_ops; i++)
        if (strcmp(t->ops[i], op) == 0) return i;
    assert_true(t->n_ops < MAX_OPS);
    t->ops[t->n_ops] = op;
    return t->n_ops++;
}

static void print_summary(const suite *s, const tally *t)
{
    printf("\nops on every backend vs the cpu reference: passed/unsupported/failed cases\n");
    printf("%-24s", "op");
    for (int b = 0; b < s->n_b; b++) printf(" %14s", s->b[b].name);
    printf("\n");
    int total[MAX_BACKENDS][3] = {{0}};
    for (int o = 0; o < t->n_ops; o++) {
        printf("%-24s", t->ops[o]);
        for (int b = 0; b < s->n_b; b++) {
            const int *c = t->cell[o][b];
            char cellbuf[32];
            if (!s->b[b].be)
                snprintf(cellbuf, sizeof cellbuf, "skipped");
            else
                snprintf(cellbuf, sizeof cellbuf, "%d/%d/%d", c[ST_PASS], c[ST_UNSUP], c[ST_FAIL]);
            printf(" %14s", cellbuf);
            for (int k = 0; k < 3; k++) total[b][k] += c[k];
        }
        printf("\n");
    }
    printf("\n%-10s %8s %12s %8s\n", "backend", "passed", "unsupported", "failed");
    for (int b = 0; b < s->n_b; b++) {
        if (!s->b[b].be)
            printf("%-10s %8s %12s %8s  (skipped: %s)\n", s->b[b].name, "-", "-", "-",
                   s->b[b].skip_why);
        else
            printf("%-10s %8d %12d %8d\n", s->b[b].name, total[b][ST_PASS], total[b][ST_UNSUP],
                   total[b][ST_FAIL]);
    }
    fflush(stdout);
}

static void test_ops_on_every_backend(void **state)
{
    suite *s = *state;
    const int verbose = getenv("DLV_OPS_VERBOSE") != NULL;
    tally *t = calloc(1, sizeof *t);
    assert_non_null(t);
    int failures = 0;
    char why[512];

    for (size_t i = 0; i < N_CASES; i++) {
        const op_case *c = &op_cases[i];
        int o = op_index(t, c->op);
        op_result ref;
        if (run_case(s->ref, c, case_seed(i), &ref) != DLV_OK)
            fail_msg("reference cpu: %s(%s): %s", c->op, c->label, dlv_last_error());
        for (int b = 0; b < s->n_b; b++) {
            be_slot *slot = &s->b[b];
            if (!slot->be) continue;
            op_result got;
            dlv_status st = run_case(slot->be, c, case_seed(i), &got);
            int verdict = ST_PASS;
            if (st == DLV_E_UNSUPPORTED) {
                verdict = ST_UNSUP;
                /* Once per op and backend: the table has the counts. */
                if (t->cell[o][b][ST_UNSUP] == 0)
                    printf("op %s: not implemented on backend %s (%s)\n", c->op, slot->name,
                           dlv_last_error());
            } else if (st != DLV_OK) {
                verdict = ST_FAIL;
                printf("FAIL %s %s(%s): %s: %s\n", slot->name, c->op, c->label,
                       dlv_status_str(st), dlv_last_error());
            } else {
                for (int k = 0; k < ref.n_out && verdict == ST_PASS; k++) {
                    if (k >= got.n_out ||
                        !outputs_agree(c, &got.out[k], &ref.out[k], slot->exact, why,
                                       sizeof why)) {
                        if (k >= got.n_out) snprintf(why, sizeof why, "missing output");
                        verdict = ST_FAIL;
                        printf("FAIL %s %s(%s): %s\n", slot->name, c->op, c->label, why);
                    }
                }
            }
            if (verbose)
                printf("%-8s %-22s %-6s %s\n", slot->name, c->op,
                       verdict == ST_PASS ? "OK" : verdict == ST_UNSUP ? "unsup" : "FAIL",
                       c->label);
            t->cell[o][b][verdict]++;
            failures += verdict == ST_FAIL;
            result_free(&got);
        }
        result_free(&ref);
        fflush(stdout);
    }
    print_summary(s, t);
    free(t);
    if (failures) fail_msg("%d op case(s) disagree with the cpu reference (see above)", failures);
}

/* ---- the sim backend itself --------------------------------------------- */

static dlv_backend *create_sim(void)
{
    dlv_backend *sim = NULL;
    if (dlv_backend_create("sim", NULL, &sim) != DLV_OK)
        fail_msg("cannot create the sim backend: %s", dlv_last_error());
    return sim;
}

/* A host pointer where device memory belongs is refused, naming it, and
 * nothing is written; the same op on device buffers works. */
static void test_sim_refuses_host_pointer(void **state)
{
    (void)state;
    if (!dlv_backend_built("sim")) {
        print_message("the sim backend is not in this build (-Dsim=disabled)\n");
        skip();
    }
    dlv_backend *sim = create_sim();
    enum { R = 3, C = 5, NF = R * C };
    float a[NF], b[NF], sentinel[NF], got[NF];
    for (int i = 0; i < NF; i++) {
        a[i] = (float)i * 0.5f;
        b[i] = 100.0f - (float)i;
        sentinel[i] = -7.0f;
    }
    dlv_buffer da = {0}, db = {0}, dout = {0}, dids = {0};
    assert_int_equal(dlv_buffer_alloc(sim, sizeof a, &da), DLV_OK);
    assert_int_equal(dlv_buffer_alloc(sim, sizeof b, &db), DLV_OK);
    assert_int_equal(dlv_buffer_alloc(sim, sizeof sentinel, &dout), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&da, 0, a, sizeof a), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&db, 0, b, sizeof b), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&dout, 0, sentinel, sizeof sentinel), DLV_OK);

    float *host_out = malloc(sizeof sentinel);
    assert_non_null(host_out);
    memcpy(host_out, sentinel, sizeof sentinel);
    assert_int_equal(dlv_add(sim, host_out, dptr(&da), dptr(&db), DLV_DTYPE_F32, 0, R, C),
                     DLV_E_INVALID_ARG);
    assert_error_mentions("host memory");
    assert_error_mentions("out");
    assert_memory_equal(host_out, sentinel, sizeof sentinel);

    /* A host input, and a host index argument (token ids). */
    assert_int_equal(dlv_add(sim, dptr(&dout), a, dptr(&db), DLV_DTYPE_F32, 0, R, C),
                     DLV_E_INVALID_ARG);
    assert_error_mentions("host memory");
    const int32_t ids[2] = {0, 2};
    assert_int_equal(dlv_embedding(sim, dptr(&dout), dptr(&db), DLV_DTYPE_F32, ids, 2, R, C),
                     DLV_E_INVALID_ARG);
    assert_error_mentions("host memory");
    assert_error_mentions("ids");
    assert_int_equal(dlv_buffer_download(got, &dout, 0, sizeof got), DLV_OK);
    assert_memory_equal(got, sentinel, sizeof sentinel);

    /* With device memory throughout, the same calls work. */
    assert_int_equal(dlv_add(sim, dptr(&dout), dptr(&da), dptr(&db), DLV_DTYPE_F32, 0, R, C),
                     DLV_OK);
    assert_int_equal(dlv_buffer_download(got, &dout, 0, sizeof got), DLV_OK);
    for (int i = 0; i < NF; i++) assert_true(got[i] == a[i] + b[i]);
    assert_int_equal(dlv_buffer_alloc(sim, sizeof ids, &dids), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&dids, 0, ids, sizeof ids), DLV_OK);
    assert_int_equal(dlv_embedding(sim, dptr(&dout), dptr(&db), DLV_DTYPE_F32,
                                   dlv_buffer_ptr(&dids), 2, R, C),
                     DLV_OK);
    assert_int_equal(dlv_buffer_download(got, &dout, 0, 2 * C * sizeof(float)), DLV_OK);
    assert_memory_equal(got, b, C * sizeof(float));
    assert_memory_equal(got + C, b + 2 * C, C * sizeof(float));

    /* The device-address memory functions refuse host memory too (a host
     * pointer handed to dlv_copy would fault on a GPU); the host array is
     * left alone. */
    memcpy(host_out, sentinel, sizeof sentinel);
    assert_int_equal(dlv_copy(sim, dptr(&dout), host_out, sizeof sentinel), DLV_E_INVALID_ARG);
    assert_error_mentions("host memory");
    assert_int_equal(dlv_copy(sim, host_out, dptr(&da), sizeof a), DLV_E_INVALID_ARG);
    assert_error_mentions("host memory");
    assert_int_equal(dlv_zero(sim, host_out, sizeof sentinel), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_copy_to_device(sim, host_out, a, sizeof a), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_copy_to_host(sim, got, host_out, sizeof got), DLV_E_INVALID_ARG);
    assert_memory_equal(host_out, sentinel, sizeof sentinel);

    free(host_out);
    dlv_buffer_free(&da);
    dlv_buffer_free(&db);
    dlv_buffer_free(&dout);
    dlv_buffer_free(&dids);
    dlv_backend_destroy(sim);
}

/* Data survives upload, copy (within an instance and across two, which
 * share memory) and download; host memory cannot be wrapped. */
static void test_sim_buffer_roundtrip(void **state)
{
    (void)state;
    if (!dlv_backend_built("sim")) {
        print_message("the sim backend is not in this build (-Dsim=disabled)\n");
        skip();
    }
    dlv_backend *sim = create_sim(), *sim2 = create_sim();
    assert_false(dlv_backend_caps(sim) & DLV_BACKEND_CAP_HOST_MEMORY);
    assert_true(dlv_backend_same_memory(sim, sim2));

    enum { NB = 777 };
    unsigned char src[NB], got[NB + 20], want[NB + 20];
    for (int i = 0; i < NB; i++) src[i] = (unsigned char)(i * 31 + 7);
    dlv_buffer a = {0}, b = {0}, c = {0}, w = {0};
    assert_int_equal(dlv_buffer_wrap_host(sim, src, sizeof src, &w), DLV_E_UNSUPPORTED);
    assert_null(dlv_buffer_ptr(&w));

    assert_int_equal(dlv_buffer_alloc(sim, NB, &a), DLV_OK);
    assert_int_equal(dlv_buffer_alloc(sim, NB + 20, &b), DLV_OK);
    assert_int_equal(dlv_buffer_alloc(sim2, NB, &c), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&a, 0, src, NB), DLV_OK);
    assert_int_equal(dlv_buffer_zero(&b, 0, NB + 20), DLV_OK);
    assert_int_equal(dlv_buffer_copy(&b, 11, &a, 0, NB), DLV_OK);
    assert_int_equal(dlv_buffer_copy(&b, 0, &b, 11 + 100, 10), DLV_OK); /* same buffer */
    assert_int_equal(dlv_buffer_copy(&c, 0, &b, 11, NB), DLV_OK);      /* across instances */
    assert_int_equal(dlv_backend_synchronize(sim), DLV_OK);

    memset(want, 0, sizeof want);
    memcpy(want + 11, src, NB);
    memcpy(want, src + 100, 10);
    assert_int_equal(dlv_buffer_download(got, &b, 0, NB + 20), DLV_OK);
    assert_memory_equal(got, want, NB + 20);
    assert_int_equal(dlv_buffer_download(got, &c, 0, NB), DLV_OK);
    assert_memory_equal(got, src, NB);
    assert_int_equal(dlv_buffer_download(got, &a, 5, 50), DLV_OK);
    assert_memory_equal(got, src + 5, 50);

    dlv_buffer_free(&a);
    dlv_buffer_free(&b);
    dlv_buffer_free(&c);
    dlv_backend_destroy(sim2);
    dlv_backend_destroy(sim);
}

/* Reading a sim device pointer on the host crashes: the property that makes
 * the sim backend catch code that touches device memory. In a forked child,
 * with the default SIGSEGV/SIGBUS action (cmocka catches them to report a
 * failure, which in a child would go on running tests). Under
 * AddressSanitizer the child may instead print ASan's SEGV report and exit
 * non-zero; either is a crash, a clean exit 0 never is. */
static void test_sim_device_pointer_crashes(void **state)
{
    (void)state;
    if (!dlv_backend_built("sim")) {
        print_message("the sim backend is not in this build (-Dsim=disabled)\n");
        skip();
    }
    dlv_backend *sim = create_sim();
    dlv_buffer buf = {0};
    const float one = 1.0f;
    assert_int_equal(dlv_buffer_alloc(sim, sizeof one, &buf), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&buf, 0, &one, sizeof one), DLV_OK);
    fflush(NULL); /* nothing buffered is written twice */

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        /* The expected crash report (ASan's) is noise in the test log. */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDERR_FILENO);
        volatile float v = *(volatile float *)dlv_buffer_ptr(&buf);
        (void)v;
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        print_message("the child reading a sim device pointer died of signal %d\n", sig);
        if (sig != SIGSEGV && sig != SIGBUS)
            fail_msg("the child was killed by signal %d, not SIGSEGV or SIGBUS", sig);
    } else {
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 0)
            fail_msg("reading a sim device pointer on the host did not crash");
        print_message("the child reading a sim device pointer exited with status %d\n",
                      WEXITSTATUS(status));
        if (!OPS_UNDER_ASAN)
            fail_msg("the child exited with status %d instead of dying of SIGSEGV/SIGBUS",
                     WEXITSTATUS(status));
    }
    dlv_buffer_free(&buf);
    dlv_backend_destroy(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_on_every_backend),
        cmocka_unit_test(test_sim_refuses_host_pointer),
        cmocka_unit_test(test_sim_buffer_roundtrip),
        cmocka_unit_test(test_sim_device_pointer_crashes),
    };
    return cmocka_run_group_tests_name("ops_backends", tests, suite_setup, suite_teardown);
}
