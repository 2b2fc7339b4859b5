/* The compute backend interface. Model code is written once against this
 * vtable; each backend (CPU: oneDNN or OpenBLAS + threads, CUDA: cuBLAS + kernels)
 * fills it. Like sqlite3_io_methods, the table starts with its version and
 * size and new slots are only appended, so code compiled against an older
 * table keeps working: callers check DLV_BACKEND_HAS(ops, slot) before using
 * a slot added after version 1.
 *
 * Device memory is owned through dlv_buffer; ops take device pointers
 * obtained from dlv_buffer_ptr (host pointers on the CPU backend). Code above
 * the backend never dereferences a device pointer: it uploads, downloads and
 * copies through the buffer functions and asks dlv_backend_caps what the
 * memory is, never the backend's name. Every pointer argument of an op is
 * device memory, index arguments (token ids, positions, targets, masks)
 * included; the `sim` backend (backend/sim/) makes any host access to it,
 * or any host pointer handed to an op, fail in tests.
 *
 * Call through the checked wrappers below (dlv_buffer_*, dlv_matmul, ...):
 * they validate every argument once, so the backends' slots may assume
 * well-formed input (ranges inside the buffer, m/n/k and leading dimensions
 * consistent, dtypes among those documented).
 *
 * The compute ops (norms, RoPE, attention, activations, ...) follow llm.c's
 * convention: outputs first, sizes last. Activations are row-major F32;
 * parameters read from a checkpoint (biases, norm weights, embedding tables,
 * matmul B) may be F32, BF16 or F16 and are passed as (const void *, dtype):
 * backends read them at any alignment. Semantics, layouts and tolerances are
 * in docs/backends.md. */
#ifndef DLV_BACKEND_BACKEND_H
#define DLV_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "disclvlm.h"
#include "dlv_build_config.h" /* DLV_HAVE_CUDA */

/* Still 1: nothing has been released, so the compute ops were appended to
 * version 1 in place. The registry requires only the memory slots and
 * matmul; a NULL compute slot makes its wrapper return DLV_E_UNSUPPORTED
 * ("op X is not implemented on backend Y"), so a backend can grow op by op.
 * After the first release, appending slots bumps this number. */
#define DLV_BACKEND_OPS_VERSION 1

typedef struct dlv_backend dlv_backend;

/* A zero-initialised dlv_buffer is "no buffer": dlv_buffer_free accepts it.
 * Zero-byte buffers are allowed (an empty tensor needs no special case); they
 * still get a distinct non-NULL ptr, so ptr != NULL means "allocated". */
typedef struct dlv_buffer {
    void *ptr;            /* device address */
    size_t size;          /* bytes, as requested */
    dlv_backend *owner;
    int borrowed;         /* wraps memory the buffer does not own (dlv_buffer_wrap_host) */
} dlv_buffer;

/* What a backend's memory is (dlv_backend_caps). */
enum {
    /* Device pointers are host addresses: buffers may wrap existing host
     * memory (a memory-mapped checkpoint) with dlv_buffer_wrap_host. */
    DLV_BACKEND_CAP_HOST_MEMORY = 1u << 0,
};

typedef enum dlv_transpose { DLV_NO_TRANS = 0, DLV_TRANS = 1 } dlv_transpose;

/* C[m,n] = alpha * op(A)[m,k] . op(B)[k,n] + beta * C, row-major, with
 * leading dimensions in elements. a_dtype / b_dtype name how A and B are
 * stored: A (activations) is F32; B (the weights) is F32, BF16 or F16, read
 * at any alignment and widened exactly to f32 (on the CPU tile by tile into
 * a per-call scratch, never a whole f32 copy of the weight); C is F32.
 * An nn.Linear weight [out, in] is B with trans_b = DLV_TRANS.
 *
 * As in BLAS: A is stored m x k (k x m when trans_a), so lda >= max(1, k)
 * (max(1, m)); B is stored k x n (n x k when trans_b), so ldb >= max(1, n)
 * (max(1, k)); ldc >= max(1, n). m, n, k and the leading dimensions must be
 * <= INT_MAX (cblas and cuBLAS take int). m == 0 or n == 0 is a no-op;
 * k == 0 gives C = beta * C. beta == 0 means C is not read, so NaN in an
 * uninitialised C does not propagate. Columns of C past n (the ldc padding)
 * are never written. A pointer may be NULL only if its matrix is empty. */
typedef struct dlv_matmul_args {
    size_t struct_size;   /* sizeof(dlv_matmul_args) */
    dlv_transpose trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const void *a; dlv_dtype a_dtype; int64_t lda;
    const void *b; dlv_dtype b_dtype; int64_t ldb;
    float *c; int64_t ldc;
} dlv_matmul_args;

/* Elementwise activations, each exactly PyTorch's formula in f32:
 *   QUICK_GELU  x * sigmoid(1.702 x)             (CLIP's quick_gelu)
 *   GELU        0.5 x (1 + erf(x / sqrt(2)))     (nn.GELU(), exact)
 *   GELU_TANH   0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *                                                (approximate='tanh')
 *   SILU        x / (1 + exp(-x))                (nn.SiLU)
 *   RELU        max(x, 0), NaN kept              (nn.ReLU)
 * The order matches model/config.h's dlv_act, so a config value maps
 * across unchanged (the backend does not include model headers). */
typedef enum dlv_op_act {
    DLV_OP_ACT_QUICK_GELU = 0,
    DLV_OP_ACT_GELU,
    DLV_OP_ACT_GELU_TANH,
    DLV_OP_ACT_SILU,
    DLV_OP_ACT_RELU,
    DLV_OP_ACT_COUNT
} dlv_op_act;

/* Scaled dot-product attention over a batch of equally long (padded)
 * sequences, grouped-query:
 *   q, out   [batch, n_q,  n_heads    * head_dim]  (token rows, heads side by side)
 *   k, v     [batch, n_kv, n_kv_heads * head_dim]
 *   key_mask [batch, n_kv] uint8, or NULL (0 = padding: never attended to)
 * For query i of head h (kv head g = h / (n_heads / n_kv_heads), as HF's
 * repeat_kv): s_j = scale * q_i . k_j over the allowed keys j, p = softmax(s)
 * in f32 with the row maximum subtracted, out_i = sum_j p_j v_j. With causal,
 * key j is allowed only for j <= i + (n_kv - n_q) (bottom-right aligned, as
 * HF's causal mask with a cache; n_q == n_kv gives the usual j <= i). A query
 * row with no allowed key (e.g. a left-padding query under a causal mask)
 * gets zeros, not NaN; its value is meant to be ignored. out must not
 * overlap q, k or v. */
typedef struct dlv_attention_args {
    size_t struct_size;   /* sizeof(dlv_attention_args) */
    float *out;
    const float *q, *k, *v;
    const uint8_t *key_mask;
    int64_t batch, n_q, n_kv, n_heads, n_kv_heads, head_dim;
    float scale;          /* usually 1 / sqrt(head_dim); finite */
    int causal;           /* 0 or 1 */
} dlv_attention_args;

/* The backward of dlv_attention: the same shapes and rules as
 * dlv_attention_args; dq, dk, dv (shaped as q, k, v) are accumulated (+=);
 * the probabilities are recomputed from q and k (nothing is saved). */
typedef struct dlv_attention_bw_args {
    size_t struct_size;   /* sizeof(dlv_attention_bw_args) */
    float *dq, *dk, *dv;
    const float *dout;
    const float *q, *k, *v;
    const uint8_t *key_mask;
    int64_t batch, n_q, n_kv, n_heads, n_kv_heads, head_dim;
    float scale;
    int causal;
} dlv_attention_bw_args;

/* One AdamW step over n elements, PyTorch's single-tensor AdamW in f32:
 *   g = grads[i] * grad_scale                      (gradient clipping)
 *   p *= decay_mul                                 (1 - lr * wd, or 1: no decay)
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
 * with step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t)
 * computed by the caller in double, as PyTorch does. params, m, v are
 * updated in place; grads is read only. */
typedef struct dlv_adamw_args {
    size_t struct_size;   /* sizeof(dlv_adamw_args) */
    float *params, *m, *v;
    const float *grads;
    int64_t n;
    float step_size, beta1, beta2, eps, bc2_sqrt, decay_mul, grad_scale;
} dlv_adamw_args;

typedef struct dlv_backend_ops {
    uint32_t version;     /* DLV_BACKEND_OPS_VERSION the table was built for */
    uint32_t size;        /* sizeof the table it was built with */
    const char *name;     /* "cpu", "sim", "cuda": for messages, never for decisions */
    uint32_t caps;        /* DLV_BACKEND_CAP_* */

    void (*destroy)(dlv_backend *be);
    /* A human description: "cpu (oneDNN 2.6.3, 2 threads, f32 compute)", "cuda: H100". */
    const char *(*describe)(const dlv_backend *be);

    dlv_status (*buffer_alloc)(dlv_backend *be, size_t size, dlv_buffer *out);
    void (*buffer_free)(dlv_backend *be, dlv_buffer *buf);
    dlv_status (*upload)(dlv_backend *be, dlv_buffer *dst, size_t offset,
                         const void *src, size_t size);
    dlv_status (*download)(dlv_backend *be, void *dst, const dlv_buffer *src,
                           size_t offset, size_t size);
    dlv_status (*memset_zero)(dlv_backend *be, dlv_buffer *buf, size_t offset,
                              size_t size);
    /* Waits for all queued work. */
    dlv_status (*synchronize)(dlv_backend *be);

    dlv_status (*matmul)(dlv_backend *be, const dlv_matmul_args *args);

    /* Compute ops, optional (NULL = not implemented on this backend). The
     * semantics are those of the checked wrappers below, which have already
     * validated the arguments. */
    dlv_status (*add)(dlv_backend *be, float *out, const float *a, const void *b,
                      dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols);
    dlv_status (*layernorm)(dlv_backend *be, float *out, const float *inp,
                            const void *weight, const void *bias, dlv_dtype param_dtype,
                            int64_t rows, int64_t cols, float eps);
    dlv_status (*rmsnorm)(dlv_backend *be, float *out, const float *inp, const void *weight,
                          dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps);
    dlv_status (*rope)(dlv_backend *be, float *x, const int32_t *positions, int64_t n_tokens,
                       int64_t n_heads, int64_t head_dim, double theta);
    dlv_status (*attention)(dlv_backend *be, const dlv_attention_args *args);
    dlv_status (*activation)(dlv_backend *be, dlv_op_act act, float *out,
                             const float *inp, int64_t n);
    dlv_status (*swiglu)(dlv_backend *be, float *out, const float *gate, const float *up,
                         int64_t n);
    dlv_status (*embedding)(dlv_backend *be, float *out, const void *table,
                            dlv_dtype table_dtype, const int32_t *ids, int64_t n_ids,
                            int64_t vocab, int64_t dim);
    dlv_status (*im2col_patches)(dlv_backend *be, float *out, const float *pixels, int64_t c,
                                 int64_t h, int64_t w, int64_t patch);
    dlv_status (*l2_normalize)(dlv_backend *be, float *out, const float *inp, int64_t rows,
                               int64_t cols);

    /* Backward ops (training), optional like the compute ops. Gradients are
     * accumulated (+=) into caller-zeroed buffers; see the wrappers below. */
    dlv_status (*rmsnorm_backward)(dlv_backend *be, float *dinp, float *dweight,
                                   const float *dout, const float *inp, const void *weight,
                                   dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps);
    dlv_status (*layernorm_backward)(dlv_backend *be, float *dinp, float *dweight, float *dbias,
                                     const float *dout, const float *inp, const void *weight,
                                     dlv_dtype param_dtype, int64_t rows, int64_t cols,
                                     float eps);
    dlv_status (*rope_backward)(dlv_backend *be, float *dx, const int32_t *positions,
                                int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                                double theta);
    dlv_status (*attention_backward)(dlv_backend *be, const dlv_attention_bw_args *args);
    dlv_status (*activation_backward)(dlv_backend *be, dlv_op_act act, float *dinp,
                                      const float *dout, const float *inp, int64_t n);
    dlv_status (*swiglu_backward)(dlv_backend *be, float *dgate, float *dup, const float *dout,
                                  const float *gate, const float *up, int64_t n);
    dlv_status (*embedding_backward)(dlv_backend *be, float *dtable, const float *dout,
                                     const int32_t *ids, int64_t n_ids, int64_t vocab,
                                     int64_t dim);
    dlv_status (*bias_backward)(dlv_backend *be, float *dbias, const float *dout, int64_t rows,
                                int64_t cols);
    dlv_status (*l2_normalize_backward)(dlv_backend *be, float *dinp, const float *dout,
                                        const float *inp, int64_t rows, int64_t cols);
    dlv_status (*softmax_cross_entropy)(dlv_backend *be, float *losses, float *dlogits,
                                        const float *logits, const int32_t *targets, int64_t n,
                                        int64_t vocab, float dscale);

    /* Memory, optional. buffer_wrap_host: only with CAP_HOST_MEMORY; the
     * buffer's ptr is host (no copy, never freed by the backend). copy:
     * size bytes between two buffers of this backend (ranges validated,
     * possibly the same buffer; overlapping ranges are rejected). */
    dlv_status (*buffer_wrap_host)(dlv_backend *be, void *host, size_t size, dlv_buffer *out);
    dlv_status (*copy)(dlv_backend *be, dlv_buffer *dst, size_t dst_offset,
                       const dlv_buffer *src, size_t src_offset, size_t size);

    /* Optimizer ops (training), optional; see the wrappers below. */
    dlv_status (*adamw_update)(dlv_backend *be, const dlv_adamw_args *args);
    dlv_status (*sgd_update)(dlv_backend *be, float *params, const float *grads, int64_t n,
                             float lr, float weight_decay, float grad_scale);
    dlv_status (*sum_squares)(dlv_backend *be, double *out, const float *x, int64_t n);

    /* Fused residual + norm (optional; the wrappers fall back to dlv_add
     * and the norm): sum = a + b, out = norm(sum), one pass per row. */
    dlv_status (*add_layernorm)(dlv_backend *be, float *sum, float *out, const float *a,
                                const float *b, const void *weight, const void *bias,
                                dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps);
    dlv_status (*add_rmsnorm)(dlv_backend *be, float *sum, float *out, const float *a,
                              const float *b, const void *weight, dlv_dtype weight_dtype,
                              int64_t rows, int64_t cols, float eps);

    /* Rotary embedding from per-token cos/sin tables (M-RoPE, 2-D vision
     * RoPE: the model builds the angles), and its transpose; optional. */
    dlv_status (*rope_table)(dlv_backend *be, float *x, const float *cos, const float *sin,
                             int64_t n_tokens, int64_t n_heads, int64_t head_dim);
    dlv_status (*rope_table_backward)(dlv_backend *be, float *dx, const float *cos,
                                      const float *sin, int64_t n_tokens, int64_t n_heads,
                                      int64_t head_dim);
} dlv_backend_ops;

/* Every backend instance starts with this header. */
struct dlv_backend {
    const dlv_backend_ops *ops;
    int device;           /* the ordinal it was created for (0 on the CPU) */
    /* The loaded module the backend's code lives in (the cuda backend's
     * dlopen handle, released after destroy), or NULL for one built in. */
    void *module;
};

#define DLV_BACKEND_HAS(ops_, slot_)                                           \
    ((ops_)->size >= offsetof(dlv_backend_ops, slot_) + sizeof((ops_)->slot_) && \
     (ops_)->slot_ != NULL)

/* NULL means all defaults (device 0, n_threads 0, f32 compute). */
typedef struct dlv_backend_config {
    int device;           /* device ordinal for device backends; the CPU ignores it */
    /* CPU threads for the backend's own pool, the caller included; 0 =
     * online CPUs; < 0 or > 4096 invalid. In the oneDNN build the GEMMs run
     * on these threads too; OpenBLAS keeps its own setting
     * (docs/backends.md, "Threads"). */
    int n_threads;
    /* What the products compute in (docs/backends.md "Compute dtype"):
     * DLV_DTYPE_F32 (0, the default: exact) or DLV_DTYPE_BF16 (matmul
     * inputs rounded to bf16, f32 accumulation, as PyTorch's bf16
     * autocast). A backend that cannot compute in it refuses to start. */
    dlv_dtype compute;
} dlv_backend_config;

/* The registry. name: "cpu", "sim" (test builds), "cuda" or "auto".
 * DLV_E_BACKEND with a clear message where the backend is unknown, not built,
 * or has no device. */
dlv_status dlv_backend_create(const char *name, const dlv_backend_config *cfg,
                              dlv_backend **out);
void dlv_backend_destroy(dlv_backend *be);
/* 1 if the named backend is compiled into this build. */
int dlv_backend_built(const char *name);
/* 1 if name is a backend this library knows ("cpu", "sim", "cuda", or
 * "auto"), built into this copy or not: option parsing accepts it, and
 * dlv_backend_create says whether it is available. */
int dlv_backend_name_known(const char *name);
/* Comma-separated names of the backends compiled in ("cpu" or "cpu,cuda"). */
const char *dlv_backend_list(void);

/* The backend's DLV_BACKEND_CAP_* flags (0 for NULL). */
uint32_t dlv_backend_caps(const dlv_backend *be);
/* Whether two instances can use each other's buffers (the same kind of
 * memory on the same device): a model's weights serve every session. */
int dlv_backend_same_memory(const dlv_backend *a, const dlv_backend *b);

/* The backend's describe() text; "" for NULL. */
const char *dlv_backend_describe(const dlv_backend *be);
dlv_status dlv_backend_synchronize(dlv_backend *be);

/* Thin checked wrappers: validate arguments, then dispatch. Ranges are
 * [offset, offset + size) in bytes and must lie inside the buffer; size 0 is
 * allowed at any offset <= buf->size. On failure *out of dlv_buffer_alloc is
 * zeroed. */
dlv_status dlv_buffer_alloc(dlv_backend *be, size_t size, dlv_buffer *out);
/* Accepts NULL and a zero-initialised buffer; zeroes *buf, so a second call
 * is a no-op. */
void dlv_buffer_free(dlv_buffer *buf);
dlv_status dlv_buffer_upload(dlv_buffer *dst, size_t offset, const void *src,
                             size_t size);
dlv_status dlv_buffer_download(void *dst, const dlv_buffer *src, size_t offset,
                               size_t size);
dlv_status dlv_buffer_zero(dlv_buffer *buf, size_t offset, size_t size);
/* A buffer over existing host memory, without a copy (a memory-mapped
 * checkpoint): DLV_E_UNSUPPORTED unless the backend has
 * DLV_BACKEND_CAP_HOST_MEMORY. host must outlive the buffer; freeing the
 * buffer leaves it alone. */
dlv_status dlv_buffer_wrap_host(dlv_backend *be, void *host, size_t size, dlv_buffer *out);
/* size bytes from src at src_offset to dst at dst_offset, device to device;
 * both buffers of backends with the same memory; ranges must not overlap. */
dlv_status dlv_buffer_copy(dlv_buffer *dst, size_t dst_offset, const dlv_buffer *src,
                           size_t src_offset, size_t size);
/* The same for code that holds device addresses (tensors, scratch carved
 * from one buffer) rather than buffers: size bytes from src to dst, both
 * device memory of be; the ranges must not overlap. dlv_zero zeroes size
 * bytes at dst. */
dlv_status dlv_copy(dlv_backend *be, void *dst, const void *src, size_t size);
dlv_status dlv_zero(dlv_backend *be, void *dst, size_t size);
/* Uploads / downloads size bytes to / from a device address of be. */
dlv_status dlv_copy_to_device(dlv_backend *be, void *dst, const void *host, size_t size);
dlv_status dlv_copy_to_host(dlv_backend *be, void *host, const void *src, size_t size);
/* The device address of buf (NULL for NULL or an unallocated buffer). */
void *dlv_buffer_ptr(const dlv_buffer *buf);
/* args->struct_size must be sizeof(dlv_matmul_args). */
dlv_status dlv_matmul(dlv_backend *be, const dlv_matmul_args *args);

/* ---- Compute ops (docs/backends.md) ------------------------------------
 * Every wrapper checks be, pointers (NULL only for an empty tensor), sizes
 * (>= 0, byte counts addressable), dtypes and the op's own rules, then
 * returns DLV_E_UNSUPPORTED "op X is not implemented on backend Y" where the
 * backend's slot is NULL. "May alias" below means exactly the same pointer;
 * any other overlap between an output and an input is rejected. */

/* out[r, c] = a[r, c] + b[c] (broadcast_b) or a[r, c] + b[r, c]; b is F32,
 * BF16 or F16. out may alias a (residual adds in place). */
dlv_status dlv_add(dlv_backend *be, float *out, const float *a, const void *b,
                   dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols);
/* x[r, c] += bias[c], bias F32, BF16 or F16 (dlv_add, broadcast, in place). */
dlv_status dlv_add_bias(dlv_backend *be, float *x, const void *bias, dlv_dtype bias_dtype,
                        int64_t rows, int64_t cols);
/* torch.nn.LayerNorm over each row of cols: mean and biased variance, then
 * (x - mean) / sqrt(var + eps) * weight + bias, in f32 (the statistics are
 * accumulated in double and rounded once). weight and bias share
 * param_dtype; either may be NULL (1 and 0). out may alias inp. eps >= 0. */
dlv_status dlv_layernorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                         const void *bias, dlv_dtype param_dtype, int64_t rows, int64_t cols,
                         float eps);
/* Hugging Face LlamaRMSNorm (also Mistral, Qwen2) with f32 activations:
 * var = mean(x^2) over the row, out = weight * (x * rsqrt(var + eps)).
 * weight may be NULL (1). out may alias inp. eps >= 0. */
dlv_status dlv_rmsnorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                       dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps);
/* The residual add and the norm after it, as transformer blocks do them:
 * sum = a + b (f32 rows, the residual stream), then out = layernorm(sum)
 * or rmsnorm(sum) with the rules of dlv_layernorm / dlv_rmsnorm.
 * Bit-identical to dlv_add followed by the norm; one pass over each row
 * where the backend fuses it (the CPU does). sum may be a (in place); out
 * must not overlap sum, a or b. */
dlv_status dlv_add_layernorm(dlv_backend *be, float *sum, float *out, const float *a,
                             const float *b, const void *weight, const void *bias,
                             dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps);
dlv_status dlv_add_rmsnorm(dlv_backend *be, float *sum, float *out, const float *a,
                           const float *b, const void *weight, dlv_dtype weight_dtype,
                           int64_t rows, int64_t cols, float eps);
/* Rotary position embedding in place, Hugging Face's rotate-half layout
 * (LlamaRotaryEmbedding, default rope type): x is [n_tokens, n_heads *
 * head_dim], head_dim even, positions[t] >= 0 per token (so left and right
 * padding need no special case). With d = head_dim and i < d/2, all in f32
 * exactly as HF computes it:
 *   inv_freq[i] = 1 / (float)theta ^ ((float)(2i) / d)
 *   a = (float)positions[t] * inv_freq[i],  c = cos(a), s = sin(a)
 *   x'[i] = x[i] c - x[i + d/2] s,  x'[i + d/2] = x[i + d/2] c + x[i] s
 * theta > 0 and finite. positions are device memory (int32, >= 0; the CPU
 * backend checks inside the op). */
dlv_status dlv_rope(dlv_backend *be, float *x, const int32_t *positions, int64_t n_tokens,
                    int64_t n_heads, int64_t head_dim, double theta);
/* Rotary position embedding in place from precomputed tables, the same
 * rotate-half rotation as dlv_rope with the angles left to the caller:
 * Qwen2-VL's multimodal RoPE (a frequency's position taken from the
 * temporal, height or width index by section) and its vision tower's 2-D
 * RoPE (half the frequencies from the patch row, half from the column) are
 * both a table of per-token angles (model/nn/rope_tables.h builds them).
 * x is [n_tokens, n_heads * head_dim], head_dim even; cos and sin are f32
 * [n_tokens, head_dim / 2] device memory, shared by every head of a token.
 * With d = head_dim, i < d/2, c = cos[t, i], s = sin[t, i]:
 *   x'[i] = x[i] c - x[i + d/2] s,  x'[i + d/2] = x[i + d/2] c + x[i] s
 * (HF's q * cos + rotate_half(q) * sin, whose cos/sin are these d/2 values
 * repeated twice). Tables of cosf/sinf of dlv_rope's angles give dlv_rope's
 * bits. x must not overlap cos or sin (cos and sin may overlap each other). */
dlv_status dlv_rope_table(dlv_backend *be, float *x, const float *cos, const float *sin,
                          int64_t n_tokens, int64_t n_heads, int64_t head_dim);
/* args->struct_size must be sizeof(dlv_attention_args); see the struct. */
dlv_status dlv_attention(dlv_backend *be, const dlv_attention_args *args);
/* out[i] = act(inp[i]) for n elements; out may alias inp. */
dlv_status dlv_activation(dlv_backend *be, dlv_op_act act, float *out, const float *inp,
                   int64_t n);
/* out[i] = silu(gate[i]) * up[i] (the SiLU-gated MLP of Llama/Qwen2); out
 * may alias gate or up. */
dlv_status dlv_swiglu(dlv_backend *be, float *out, const float *gate, const float *up,
                      int64_t n);
/* out[t, :] = table[ids[t], :] widened to f32; table is [vocab, dim] of F32,
 * BF16 or F16. ids are device memory; callers validate them on the host
 * before uploading (the CPU backend also checks inside the op: an id
 * outside [0, vocab) is DLV_E_INVALID_ARG naming the id and its position,
 * and nothing is written then). */
dlv_status dlv_embedding(dlv_backend *be, float *out, const void *table, dlv_dtype table_dtype,
                         const int32_t *ids, int64_t n_ids, int64_t vocab, int64_t dim);
/* Unfolds an image [c, h, w] into non-overlapping patch rows
 * out[(h/patch) * (w/patch), c * patch * patch]: row py * (w/patch) + px,
 * column (ci * patch + ky) * patch + kx holds pixels[ci, py*patch + ky,
 * px*patch + kx]. Remainder rows/columns are dropped (floor), as conv2d with
 * stride = kernel = patch does, so conv2d(pixels, W) with W [hidden, c,
 * patch, patch] (PyTorch's layout, viewed as [hidden, c*patch*patch]) is
 * out . W^T, and its rows come in flatten(2).transpose(1, 2) order. */
dlv_status dlv_im2col_patches(dlv_backend *be, float *out, const float *pixels, int64_t c,
                              int64_t h, int64_t w, int64_t patch);
/* torch.nn.functional.normalize(x, dim=-1): each row divided by
 * max(||row||_2, 1e-12). out may alias inp. */
dlv_status dlv_l2_normalize(dlv_backend *be, float *out, const float *inp, int64_t rows,
                            int64_t cols);

/* ---- Backward ops (training; docs/backends.md "Backward ops") ----------
 * Each accumulates (+=) into its gradient outputs, which the caller zeroes;
 * a NULL optional gradient (dweight, dbias) is not computed. Inputs are the
 * forward's inputs (recomputing what is cheap), never its outputs. */

/* dinp += d rmsnorm / d inp . dout; dweight (f32 [cols]) += sum over rows. */
dlv_status dlv_rmsnorm_backward(dlv_backend *be, float *dinp, float *dweight, const float *dout,
                                const float *inp, const void *weight, dlv_dtype weight_dtype,
                                int64_t rows, int64_t cols, float eps);
/* The same for torch.nn.LayerNorm; dweight, dbias f32 [cols]. */
dlv_status dlv_layernorm_backward(dlv_backend *be, float *dinp, float *dweight, float *dbias,
                                  const float *dout, const float *inp, const void *weight,
                                  dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps);
/* In place: dx <- R^T dx, R the rotation dlv_rope applies (same arguments). */
dlv_status dlv_rope_backward(dlv_backend *be, float *dx, const int32_t *positions,
                             int64_t n_tokens, int64_t n_heads, int64_t head_dim, double theta);
/* In place: dx <- R^T dx, R the rotation dlv_rope_table applies (same
 * arguments): dx1' = g1 c + g2 s, dx2' = g2 c - g1 s. */
dlv_status dlv_rope_table_backward(dlv_backend *be, float *dx, const float *cos,
                                   const float *sin, int64_t n_tokens, int64_t n_heads,
                                   int64_t head_dim);
/* args->struct_size must be sizeof(dlv_attention_bw_args). */
dlv_status dlv_attention_backward(dlv_backend *be, const dlv_attention_bw_args *args);
/* dinp[i] += dout[i] * act'(inp[i]). */
dlv_status dlv_activation_backward(dlv_backend *be, dlv_op_act act, float *dinp,
                                   const float *dout, const float *inp, int64_t n);
/* For out = silu(gate) * up: dgate += dout * up * silu'(gate), dup += dout * silu(gate). */
dlv_status dlv_swiglu_backward(dlv_backend *be, float *dgate, float *dup, const float *dout,
                               const float *gate, const float *up, int64_t n);
/* dtable[ids[t], :] += dout[t, :] (f32 table gradient [vocab, dim]). */
dlv_status dlv_embedding_backward(dlv_backend *be, float *dtable, const float *dout,
                                  const int32_t *ids, int64_t n_ids, int64_t vocab, int64_t dim);
/* dbias[c] += sum_r dout[r, c]. */
dlv_status dlv_bias_backward(dlv_backend *be, float *dbias, const float *dout, int64_t rows,
                             int64_t cols);
/* The backward of dlv_l2_normalize (with its 1e-12 clamp). */
dlv_status dlv_l2_normalize_backward(dlv_backend *be, float *dinp, const float *dout,
                                     const float *inp, int64_t rows, int64_t cols);
/* Per row i of logits [n, vocab]: losses[i] = -log softmax(logits[i])[targets[i]]
 * (max subtracted, sums in double); targets[i] == -1 gives loss 0. If
 * dlogits is non-NULL (it may alias logits) it is SET (not accumulated) to
 * dscale * (softmax - onehot), zero rows for ignored targets. */
dlv_status dlv_softmax_cross_entropy(dlv_backend *be, float *losses, float *dlogits,
                                     const float *logits, const int32_t *targets, int64_t n,
                                     int64_t vocab, float dscale);

/* ---- Optimizer ops (training; docs/backends.md "Optimizer ops") -------- */

/* args->struct_size must be sizeof(dlv_adamw_args); see the struct. params,
 * m, v and grads must not overlap; the scalars must be finite (step_size,
 * eps and bc2_sqrt > 0). */
dlv_status dlv_adamw_update(dlv_backend *be, const dlv_adamw_args *args);
/* Plain SGD in f32: g = grads[i] * grad_scale + weight_decay * params[i];
 * params[i] -= lr * g (weight_decay 0: no decay). */
dlv_status dlv_sgd_update(dlv_backend *be, float *params, const float *grads, int64_t n,
                          float lr, float weight_decay, float grad_scale);
/* *out (device memory, one double) = sum of x[i]^2, each square and the
 * sums in double. The summation order is fixed (blocks of
 * DLV_SUM_SQUARES_BLOCK elements, then the block sums in order), so the
 * result does not depend on the thread count. */
#define DLV_SUM_SQUARES_BLOCK 4096
dlv_status dlv_sum_squares(dlv_backend *be, double *out, const float *x, int64_t n);

/* Backend constructors, used by the registry only. */
dlv_status dlv_cpu_backend_create(const dlv_backend_config *cfg, dlv_backend **out);
#ifdef DLV_HAVE_SIM
dlv_status dlv_sim_backend_create(const dlv_backend_config *cfg, dlv_backend **out);
#endif
/* The cuda backend, from its module loaded on demand (backend/cuda_loader.c):
 * DLV_E_BACKEND naming the reason when the module cannot be loaded, does
 * not match this build, or finds no device. */
dlv_status dlv_cuda_module_backend(const dlv_backend_config *cfg, dlv_backend **out);
/* 1 if the module loads and sees at least one device ("auto"). */
int dlv_cuda_module_has_device(void);
/* Gives back a backend's module reference (dlv_backend.module). */
void dlv_cuda_module_release(void *module);

#endif
