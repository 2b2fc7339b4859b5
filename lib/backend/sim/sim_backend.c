/* The `sim` backend: a device the host cannot touch, for tests. It runs the
 * CPU backend's kernels, but its device pointers are tagged: bits 48-55 of
 * every address it hands out hold SIM_TAG, which makes the address
 * non-canonical on x86-64 (and a translation fault on AArch64, whose
 * top-byte-ignore covers only bits 56-63), so any dereference outside this
 * file crashes, with or without sanitizers. Inside each op the pointers are
 * untagged and handed to the CPU kernels; a pointer that is not tagged is a
 * host pointer passed where device memory belongs, and the op fails naming
 * it. Uploads, downloads and copies are explicit, as on a GPU.
 *
 * Stateless apart from the inner CPU backend, so it is as thread-safe as
 * the CPU backend: one thread per instance, buffers shared between
 * instances (dlv_backend_same_memory). Built in test builds
 * (meson option `sim`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"

#define SIM_TAG ((uintptr_t)0x5A << 48)
#define SIM_TAG_MASK ((uintptr_t)0xFF << 48)

typedef struct sim_backend {
    dlv_backend base; /* first: the registry sees a dlv_backend */
    dlv_backend *cpu; /* runs the kernels on untagged pointers */
    char desc[300];
} sim_backend;

static dlv_backend *inner(dlv_backend *be) { return ((sim_backend *)be)->cpu; }

static void *tag(void *p) { return (void *)((uintptr_t)p | SIM_TAG); }

static int is_tagged(const void *p) { return ((uintptr_t)p & SIM_TAG_MASK) == SIM_TAG; }

/* The host address behind device pointer p. NULL stays NULL (an empty or
 * optional tensor). A pointer without the tag is refused: it is host memory
 * handed to a device op. */
static dlv_status untag(const char *op, const char *arg, const void *p, void **out)
{
    if (!p) {
        *out = NULL;
        return DLV_OK;
    }
    if (!is_tagged(p))
        return dlv_error(DLV_E_INVALID_ARG, "sim backend: op %s: argument %s (%p) is host "
                         "memory, not a device buffer of this backend", op, arg, p);
    *out = (void *)((uintptr_t)p & ~SIM_TAG_MASK);
    return DLV_OK;
}

#define UNTAG(op, var)                                                             \
    do {                                                                           \
        void *u_ = NULL;                                                               \
        dlv_status st_ = untag(op, #var, var, &u_);                                \
        if (st_ != DLV_OK) return st_;                                             \
        var = u_;                                                                  \
    } while (0)

/* ---- memory ------------------------------------------------------------- */

static void sim_destroy(dlv_backend *be)
{
    dlv_backend_destroy(inner(be));
    free(be);
}

static const char *sim_describe(const dlv_backend *be)
{
    return ((const sim_backend *)be)->desc;
}

static dlv_status sim_buffer_alloc(dlv_backend *be, size_t size, dlv_buffer *out)
{
    dlv_buffer host = {0};
    dlv_status st = dlv_buffer_alloc(inner(be), size, &host);
    if (st != DLV_OK) return st;
    out->ptr = tag(host.ptr);
    return DLV_OK;
}

/* The inner CPU buffer behind a sim buffer or a view of one (same size,
 * untagged). A buffer whose address is not tagged wraps host memory handed
 * to a device function (dlv_copy and friends take raw device addresses):
 * refused, as the ops refuse it. */
static dlv_status host_view(dlv_backend *be, const char *op, const dlv_buffer *b,
                            dlv_buffer *out)
{
    void *p = NULL;
    dlv_status st = untag(op, "buffer", b->ptr, &p);
    if (st) return st;
    *out = (dlv_buffer){p, b->size, inner(be), 0};
    return DLV_OK;
}

static void sim_buffer_free(dlv_backend *be, dlv_buffer *buf)
{
    dlv_buffer host = {0};
    if (host_view(be, "buffer_free", buf, &host) == DLV_OK) dlv_buffer_free(&host);
}

static dlv_status sim_upload(dlv_backend *be, dlv_buffer *dst, size_t offset, const void *src,
                             size_t size)
{
    dlv_buffer host;
    dlv_status st = host_view(be, "upload", dst, &host);
    return st ? st : dlv_buffer_upload(&host, offset, src, size);
}

static dlv_status sim_download(dlv_backend *be, void *dst, const dlv_buffer *src, size_t offset,
                               size_t size)
{
    dlv_buffer host;
    dlv_status st = host_view(be, "download", src, &host);
    return st ? st : dlv_buffer_download(dst, &host, offset, size);
}

static dlv_status sim_memset_zero(dlv_backend *be, dlv_buffer *buf, size_t offset, size_t size)
{
    dlv_buffer host;
    dlv_status st = host_view(be, "zero", buf, &host);
    return st ? st : dlv_buffer_zero(&host, offset, size);
}

static dlv_status sim_copy(dlv_backend *be, dlv_buffer *dst, size_t dst_offset,
                           const dlv_buffer *src, size_t src_offset, size_t size)
{
    /* src may belong to another sim instance (a model's weights): both are
     * plain host memory underneath, and this instance's CPU copies it. */
    dlv_buffer d, s;
    dlv_status st = host_view(be, "copy (destination)", dst, &d);
    if (!st) st = host_view(be, "copy (source)", src, &s);
    return st ? st : dlv_buffer_copy(&d, dst_offset, &s, src_offset, size);
}

static dlv_status sim_synchronize(dlv_backend *be)
{
    return dlv_backend_synchronize(inner(be));
}

/* ---- forward ops ---------------------------------------------------------
 * Each untags its device pointers and calls the CPU kernel through the
 * inner backend's table (the arguments are already validated). */

static dlv_status sim_matmul(dlv_backend *be, const dlv_matmul_args *args)
{
    dlv_matmul_args a = *args;
    const void *pa = a.a, *pb = a.b;
    void *pc = a.c;
    UNTAG("matmul", pa);
    UNTAG("matmul", pb);
    UNTAG("matmul", pc);
    a.a = pa;
    a.b = pb;
    a.c = pc;
    return inner(be)->ops->matmul(inner(be), &a);
}

static dlv_status sim_add(dlv_backend *be, float *out, const float *a, const void *b,
                          dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols)
{
    UNTAG("add", out);
    UNTAG("add", a);
    UNTAG("add", b);
    return inner(be)->ops->add(inner(be), out, a, b, b_dtype, broadcast_b, rows, cols);
}

static dlv_status sim_layernorm(dlv_backend *be, float *out, const float *inp,
                                const void *weight, const void *bias, dlv_dtype param_dtype,
                                int64_t rows, int64_t cols, float eps)
{
    UNTAG("layernorm", out);
    UNTAG("layernorm", inp);
    UNTAG("layernorm", weight);
    UNTAG("layernorm", bias);
    return inner(be)->ops->layernorm(inner(be), out, inp, weight, bias, param_dtype, rows, cols,
                                     eps);
}

static dlv_status sim_rmsnorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                              dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps)
{
    UNTAG("rmsnorm", out);
    UNTAG("rmsnorm", inp);
    UNTAG("rmsnorm", weight);
    return inner(be)->ops->rmsnorm(inner(be), out, inp, weight, weight_dtype, rows, cols, eps);
}

static dlv_status sim_add_layernorm(dlv_backend *be, float *sum, float *out, const float *a,
                                    const float *b, const void *weight, const void *bias,
                                    dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps)
{
    UNTAG("add_layernorm", sum);
    UNTAG("add_layernorm", out);
    UNTAG("add_layernorm", a);
    UNTAG("add_layernorm", b);
    UNTAG("add_layernorm", weight);
    UNTAG("add_layernorm", bias);
    return inner(be)->ops->add_layernorm(inner(be), sum, out, a, b, weight, bias, param_dtype,
                                         rows, cols, eps);
}

static dlv_status sim_add_rmsnorm(dlv_backend *be, float *sum, float *out, const float *a,
                                  const float *b, const void *weight, dlv_dtype weight_dtype,
                                  int64_t rows, int64_t cols, float eps)
{
    UNTAG("add_rmsnorm", sum);
    UNTAG("add_rmsnorm", out);
    UNTAG("add_rmsnorm", a);
    UNTAG("add_rmsnorm", b);
    UNTAG("add_rmsnorm", weight);
    return inner(be)->ops->add_rmsnorm(inner(be), sum, out, a, b, weight, weight_dtype, rows,
                                       cols, eps);
}

static dlv_status sim_rope(dlv_backend *be, float *x, const int32_t *positions,
                           int64_t n_tokens, int64_t n_heads, int64_t head_dim, double theta)
{
    UNTAG("rope", x);
    UNTAG("rope", positions);
    return inner(be)->ops->rope(inner(be), x, positions, n_tokens, n_heads, head_dim, theta);
}

static dlv_status sim_rope_table(dlv_backend *be, float *x, const float *cos,
                                 const float *sin, int64_t n_tokens, int64_t n_heads,
                                 int64_t head_dim)
{
    UNTAG("rope_table", x);
    UNTAG("rope_table", cos);
    UNTAG("rope_table", sin);
    return inner(be)->ops->rope_table(inner(be), x, cos, sin, n_tokens, n_heads,
                                      head_dim);
}

static dlv_status sim_attention(dlv_backend *be, const dlv_attention_args *args)
{
    dlv_attention_args a = *args;
    float *out = a.out;
    const float *q = a.q, *k = a.k, *v = a.v;
    const uint8_t *key_mask = a.key_mask;
    UNTAG("attention", out);
    UNTAG("attention", q);
    UNTAG("attention", k);
    UNTAG("attention", v);
    UNTAG("attention", key_mask);
    a.out = out;
    a.q = q;
    a.k = k;
    a.v = v;
    a.key_mask = key_mask;
    return inner(be)->ops->attention(inner(be), &a);
}

static dlv_status sim_activation(dlv_backend *be, dlv_op_act act, float *out, const float *inp,
                                 int64_t n)
{
    UNTAG("activation", out);
    UNTAG("activation", inp);
    return inner(be)->ops->activation(inner(be), act, out, inp, n);
}

static dlv_status sim_swiglu(dlv_backend *be, float *out, const float *gate, const float *up,
                             int64_t n)
{
    UNTAG("swiglu", out);
    UNTAG("swiglu", gate);
    UNTAG("swiglu", up);
    return inner(be)->ops->swiglu(inner(be), out, gate, up, n);
}

static dlv_status sim_embedding(dlv_backend *be, float *out, const void *table,
                                dlv_dtype table_dtype, const int32_t *ids, int64_t n_ids,
                                int64_t vocab, int64_t dim)
{
    UNTAG("embedding", out);
    UNTAG("embedding", table);
    UNTAG("embedding", ids);
    return inner(be)->ops->embedding(inner(be), out, table, table_dtype, ids, n_ids, vocab,
                                     dim);
}

static dlv_status sim_im2col_patches(dlv_backend *be, float *out, const float *pixels,
                                     int64_t c, int64_t h, int64_t w, int64_t patch)
{
    UNTAG("im2col_patches", out);
    UNTAG("im2col_patches", pixels);
    return inner(be)->ops->im2col_patches(inner(be), out, pixels, c, h, w, patch);
}

static dlv_status sim_l2_normalize(dlv_backend *be, float *out, const float *inp, int64_t rows,
                                   int64_t cols)
{
    UNTAG("l2_normalize", out);
    UNTAG("l2_normalize", inp);
    return inner(be)->ops->l2_normalize(inner(be), out, inp, rows, cols);
}

/* ---- backward ops ------------------------------------------------------- */

static dlv_status sim_rmsnorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                       const float *dout, const float *inp, const void *weight,
                                       dlv_dtype weight_dtype, int64_t rows, int64_t cols,
                                       float eps)
{
    UNTAG("rmsnorm_backward", dinp);
    UNTAG("rmsnorm_backward", dweight);
    UNTAG("rmsnorm_backward", dout);
    UNTAG("rmsnorm_backward", inp);
    UNTAG("rmsnorm_backward", weight);
    return inner(be)->ops->rmsnorm_backward(inner(be), dinp, dweight, dout, inp, weight,
                                            weight_dtype, rows, cols, eps);
}

static dlv_status sim_layernorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                         float *dbias, const float *dout, const float *inp,
                                         const void *weight, dlv_dtype param_dtype,
                                         int64_t rows, int64_t cols, float eps)
{
    UNTAG("layernorm_backward", dinp);
    UNTAG("layernorm_backward", dweight);
    UNTAG("layernorm_backward", dbias);
    UNTAG("layernorm_backward", dout);
    UNTAG("layernorm_backward", inp);
    UNTAG("layernorm_backward", weight);
    return inner(be)->ops->layernorm_backward(inner(be), dinp, dweight, dbias, dout, inp,
                                              weight, param_dtype, rows, cols, eps);
}

static dlv_status sim_rope_backward(dlv_backend *be, float *dx, const int32_t *positions,
                                    int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                                    double theta)
{
    UNTAG("rope_backward", dx);
    UNTAG("rope_backward", positions);
    return inner(be)->ops->rope_backward(inner(be), dx, positions, n_tokens, n_heads, head_dim,
                                         theta);
}

static dlv_status sim_rope_table_backward(dlv_backend *be, float *dx, const float *cos,
                                          const float *sin, int64_t n_tokens,
                                          int64_t n_heads, int64_t head_dim)
{
    UNTAG("rope_table_backward", dx);
    UNTAG("rope_table_backward", cos);
    UNTAG("rope_table_backward", sin);
    return inner(be)->ops->rope_table_backward(inner(be), dx, cos, sin, n_tokens,
                                               n_heads, head_dim);
}

static dlv_status sim_attention_backward(dlv_backend *be, const dlv_attention_bw_args *args)
{
    dlv_attention_bw_args a = *args;
    float *dq = a.dq, *dk = a.dk, *dv = a.dv;
    const float *dout = a.dout, *q = a.q, *k = a.k, *v = a.v;
    const uint8_t *key_mask = a.key_mask;
    UNTAG("attention_backward", dq);
    UNTAG("attention_backward", dk);
    UNTAG("attention_backward", dv);
    UNTAG("attention_backward", dout);
    UNTAG("attention_backward", q);
    UNTAG("attention_backward", k);
    UNTAG("attention_backward", v);
    UNTAG("attention_backward", key_mask);
    a.dq = dq;
    a.dk = dk;
    a.dv = dv;
    a.dout = dout;
    a.q = q;
    a.k = k;
    a.v = v;
    a.key_mask = key_mask;
    return inner(be)->ops->attention_backward(inner(be), &a);
}

static dlv_status sim_activation_backward(dlv_backend *be, dlv_op_act act, float *dinp,
                                          const float *dout, const float *inp, int64_t n)
{
    UNTAG("activation_backward", dinp);
    UNTAG("activation_backward", dout);
    UNTAG("activation_backward", inp);
    return inner(be)->ops->activation_backward(inner(be), act, dinp, dout, inp, n);
}

static dlv_status sim_swiglu_backward(dlv_backend *be, float *dgate, float *dup,
                                      const float *dout, const float *gate, const float *up,
                                      int64_t n)
{
    UNTAG("swiglu_backward", dgate);
    UNTAG("swiglu_backward", dup);
    UNTAG("swiglu_backward", dout);
    UNTAG("swiglu_backward", gate);
    UNTAG("swiglu_backward", up);
    return inner(be)->ops->swiglu_backward(inner(be), dgate, dup, dout, gate, up, n);
}

static dlv_status sim_embedding_backward(dlv_backend *be, float *dtable, const float *dout,
                                         const int32_t *ids, int64_t n_ids, int64_t vocab,
                                         int64_t dim)
{
    UNTAG("embedding_backward", dtable);
    UNTAG("embedding_backward", dout);
    UNTAG("embedding_backward", ids);
    return inner(be)->ops->embedding_backward(inner(be), dtable, dout, ids, n_ids, vocab, dim);
}

static dlv_status sim_bias_backward(dlv_backend *be, float *dbias, const float *dout,
                                    int64_t rows, int64_t cols)
{
    UNTAG("bias_backward", dbias);
    UNTAG("bias_backward", dout);
    return inner(be)->ops->bias_backward(inner(be), dbias, dout, rows, cols);
}

static dlv_status sim_l2_normalize_backward(dlv_backend *be, float *dinp, const float *dout,
                                            const float *inp, int64_t rows, int64_t cols)
{
    UNTAG("l2_normalize_backward", dinp);
    UNTAG("l2_normalize_backward", dout);
    UNTAG("l2_normalize_backward", inp);
    return inner(be)->ops->l2_normalize_backward(inner(be), dinp, dout, inp, rows, cols);
}

static dlv_status sim_softmax_cross_entropy(dlv_backend *be, float *losses, float *dlogits,
                                            const float *logits, const int32_t *targets,
                                            int64_t n, int64_t vocab, float dscale)
{
    UNTAG("softmax_cross_entropy", losses);
    UNTAG("softmax_cross_entropy", dlogits);
    UNTAG("softmax_cross_entropy", logits);
    UNTAG("softmax_cross_entropy", targets);
    return inner(be)->ops->softmax_cross_entropy(inner(be), losses, dlogits, logits, targets, n,
                                                 vocab, dscale);
}

/* ---- optimizer ops ------------------------------------------------------ */

static dlv_status sim_adamw_update(dlv_backend *be, const dlv_adamw_args *args)
{
    dlv_adamw_args a = *args;
    float *params = a.params, *m = a.m, *v = a.v;
    const float *grads = a.grads;
    UNTAG("adamw_update", params);
    UNTAG("adamw_update", m);
    UNTAG("adamw_update", v);
    UNTAG("adamw_update", grads);
    a.params = params;
    a.m = m;
    a.v = v;
    a.grads = grads;
    return inner(be)->ops->adamw_update(inner(be), &a);
}

static dlv_status sim_sgd_update(dlv_backend *be, float *params, const float *grads, int64_t n,
                                 float lr, float weight_decay, float grad_scale)
{
    UNTAG("sgd_update", params);
    UNTAG("sgd_update", grads);
    return inner(be)->ops->sgd_update(inner(be), params, grads, n, lr, weight_decay,
                                      grad_scale);
}

static dlv_status sim_sum_squares(dlv_backend *be, double *out, const float *x, int64_t n)
{
    UNTAG("sum_squares", out);
    UNTAG("sum_squares", x);
    return inner(be)->ops->sum_squares(inner(be), out, x, n);
}

static const dlv_backend_ops sim_ops = {
    .version = DLV_BACKEND_OPS_VERSION,
    .size = sizeof(dlv_backend_ops),
    .name = "sim",
    .caps = 0, /* device memory: never host-addressable */
    .destroy = sim_destroy,
    .describe = sim_describe,
    .buffer_alloc = sim_buffer_alloc,
    .buffer_free = sim_buffer_free,
    .upload = sim_upload,
    .download = sim_download,
    .memset_zero = sim_memset_zero,
    .synchronize = sim_synchronize,
    .matmul = sim_matmul,
    .add = sim_add,
    .layernorm = sim_layernorm,
    .rmsnorm = sim_rmsnorm,
    .rope = sim_rope,
    .attention = sim_attention,
    .activation = sim_activation,
    .swiglu = sim_swiglu,
    .embedding = sim_embedding,
    .im2col_patches = sim_im2col_patches,
    .l2_normalize = sim_l2_normalize,
    .rmsnorm_backward = sim_rmsnorm_backward,
    .layernorm_backward = sim_layernorm_backward,
    .rope_backward = sim_rope_backward,
    .attention_backward = sim_attention_backward,
    .activation_backward = sim_activation_backward,
    .swiglu_backward = sim_swiglu_backward,
    .embedding_backward = sim_embedding_backward,
    .bias_backward = sim_bias_backward,
    .l2_normalize_backward = sim_l2_normalize_backward,
    .softmax_cross_entropy = sim_softmax_cross_entropy,
    .buffer_wrap_host = NULL,
    .copy = sim_copy,
    .adamw_update = sim_adamw_update,
    .sgd_update = sim_sgd_update,
    .sum_squares = sim_sum_squares,
    .add_layernorm = sim_add_layernorm,
    .add_rmsnorm = sim_add_rmsnorm,
    .rope_table = sim_rope_table,
    .rope_table_backward = sim_rope_table_backward,
};

dlv_status dlv_sim_backend_create(const dlv_backend_config *cfg, dlv_backend **out)
{
    sim_backend *s = calloc(1, sizeof *s);
    if (!s) return dlv_error_nomem("sim backend", sizeof *s);
    dlv_status st = dlv_cpu_backend_create(cfg, &s->cpu);
    if (st != DLV_OK) {
        free(s);
        return st;
    }
    s->base.ops = &sim_ops;
    s->base.device = 0;
    snprintf(s->desc, sizeof s->desc, "sim (device memory the host cannot read; kernels of %s)",
             dlv_backend_describe(s->cpu));
    *out = &s->base;
    return DLV_OK;
}
