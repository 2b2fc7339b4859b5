/* The CPU backend: host memory, a GEMM provider (oneDNN or OpenBLAS,
 * cpu_gemm.c) and a worker pool. Buffers are
 * ordinary host allocations, so "device pointers" are host pointers and
 * every op is synchronous. The checked wrappers (backend/buffer.c,
 * backend/matmul.c, backend/ops.c) have validated all arguments before a
 * slot here is called; the compute slots live in the other cpu_*.c files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpu_backward.h"
#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

/* Cache-line alignment, which is also what AVX-512 loads like. */
#define CPU_ALIGN ((size_t)64)

/* ---- the block cache (cpu_internal.h) ---------------------------------- */

static void *cache_take(dlv_cpu_block_cache *c, size_t rounded)
{
    void *p = NULL;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++)
        if (c->size[i] == rounded) {
            p = c->ptr[i];
            c->bytes -= rounded;
            c->n--;
            c->ptr[i] = c->ptr[c->n];
            c->size[i] = c->size[c->n];
            break;
        }
    pthread_mutex_unlock(&c->mu);
    return p;
}

/* Keeps p unless it is small or the cache is full; evicts the oldest blocks
 * to stay under DLV_CPU_CACHE_MAX_BYTES. */
static void cache_put(dlv_cpu_block_cache *c, void *p, size_t rounded)
{
    if (rounded < DLV_CPU_CACHE_MIN || rounded > DLV_CPU_CACHE_MAX_BYTES) {
        free(p);
        return;
    }
    void *evicted[DLV_CPU_CACHE_SLOTS];
    int n_evicted = 0;
    pthread_mutex_lock(&c->mu);
    while (c->n > 0 && (c->n == DLV_CPU_CACHE_SLOTS ||
                        c->bytes + rounded > DLV_CPU_CACHE_MAX_BYTES)) {
        evicted[n_evicted++] = c->ptr[0];
        c->bytes -= c->size[0];
        c->n--;
        for (int i = 0; i < c->n; i++) {
            c->ptr[i] = c->ptr[i + 1];
            c->size[i] = c->size[i + 1];
        }
    }
    c->ptr[c->n] = p;
    c->size[c->n] = rounded;
    c->n++;
    c->bytes += rounded;
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < n_evicted; i++) free(evicted[i]);
}

static void cache_clear(dlv_cpu_block_cache *c)
{
    for (int i = 0; i < c->n; i++) free(c->ptr[i]);
    c->n = 0;
    c->bytes = 0;
}

static void cpu_destroy(dlv_backend *be)
{
    dlv_cpu_backend *cpu = (dlv_cpu_backend *)be;
    cache_clear(&cpu->cache);
    pthread_mutex_destroy(&cpu->cache.mu);
    dlv_cpu_pool_destroy(cpu->pool);
    dlv_cpu_gemm_ctx_destroy(cpu->gemm);
    free(cpu);
}

static const char *cpu_describe(const dlv_backend *be)
{
    /* The backend header is the first member, so this is the inverse of
     * &cpu->base. */
    const dlv_cpu_backend *cpu = (const dlv_cpu_backend *)be;
    return cpu->desc;
}

/* aligned_alloc needs a multiple of the alignment; a zero-byte buffer still
 * gets one block so that its ptr is unique and non-NULL. */
static size_t rounded_size(size_t size)
{
    return size == 0 ? CPU_ALIGN : (size + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
}

void *dlv_cpu_scratch_take(dlv_backend *be, size_t bytes)
{
    if (bytes > SIZE_MAX - (CPU_ALIGN - 1)) return NULL;
    size_t rounded = rounded_size(bytes);
    void *p = cache_take(&((dlv_cpu_backend *)be)->cache, rounded);
    return p ? p : aligned_alloc(CPU_ALIGN, rounded);
}

void dlv_cpu_scratch_give(dlv_backend *be, void *p, size_t bytes)
{
    if (p) cache_put(&((dlv_cpu_backend *)be)->cache, p, rounded_size(bytes));
}

/* Buffers are scratch blocks too: the same cache serves both. */
static dlv_status cpu_buffer_alloc(dlv_backend *be, size_t size, dlv_buffer *out)
{
    void *p = dlv_cpu_scratch_take(be, size);
    if (!p) return dlv_error_nomem("cpu buffer", size);
    out->ptr = p;
    return DLV_OK;
}

static void cpu_buffer_free(dlv_backend *be, dlv_buffer *buf)
{
    dlv_cpu_scratch_give(be, buf->ptr, buf->size);
}

static dlv_status cpu_upload(dlv_backend *be, dlv_buffer *dst, size_t offset,
                             const void *src, size_t size)
{
    (void)be;
    memcpy((char *)dst->ptr + offset, src, size);
    return DLV_OK;
}

static dlv_status cpu_download(dlv_backend *be, void *dst, const dlv_buffer *src,
                               size_t offset, size_t size)
{
    (void)be;
    memcpy(dst, (const char *)src->ptr + offset, size);
    return DLV_OK;
}

static dlv_status cpu_memset_zero(dlv_backend *be, dlv_buffer *buf, size_t offset, size_t size)
{
    (void)be;
    memset((char *)buf->ptr + offset, 0, size);
    return DLV_OK;
}

static dlv_status cpu_buffer_wrap_host(dlv_backend *be, void *host, size_t size,
                                       dlv_buffer *out)
{
    (void)be;
    (void)size;
    out->ptr = host;
    return DLV_OK;
}

static dlv_status cpu_copy(dlv_backend *be, dlv_buffer *dst, size_t dst_offset,
                           const dlv_buffer *src, size_t src_offset, size_t size)
{
    (void)be;
    memcpy((char *)dst->ptr + dst_offset, (const char *)src->ptr + src_offset, size);
    return DLV_OK;
}

static dlv_status cpu_synchronize(dlv_backend *be)
{
    (void)be;
    return DLV_OK;
}

static const dlv_backend_ops cpu_ops = {
    .version = DLV_BACKEND_OPS_VERSION,
    .size = sizeof(dlv_backend_ops),
    .name = "cpu",
    .caps = DLV_BACKEND_CAP_HOST_MEMORY,
    .destroy = cpu_destroy,
    .describe = cpu_describe,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .memset_zero = cpu_memset_zero,
    .synchronize = cpu_synchronize,
    .matmul = dlv_cpu_matmul,
    .add = dlv_cpu_add,
    .layernorm = dlv_cpu_layernorm,
    .rmsnorm = dlv_cpu_rmsnorm,
    .rope = dlv_cpu_rope,
    .attention = dlv_cpu_attention,
    .activation = dlv_cpu_activation,
    .swiglu = dlv_cpu_swiglu,
    .embedding = dlv_cpu_embedding,
    .im2col_patches = dlv_cpu_im2col_patches,
    .l2_normalize = dlv_cpu_l2_normalize,
    .rmsnorm_backward = dlv_cpu_rmsnorm_backward,
    .layernorm_backward = dlv_cpu_layernorm_backward,
    .rope_backward = dlv_cpu_rope_backward,
    .attention_backward = dlv_cpu_attention_backward,
    .activation_backward = dlv_cpu_activation_backward,
    .swiglu_backward = dlv_cpu_swiglu_backward,
    .embedding_backward = dlv_cpu_embedding_backward,
    .bias_backward = dlv_cpu_bias_backward,
    .l2_normalize_backward = dlv_cpu_l2_normalize_backward,
    .softmax_cross_entropy = dlv_cpu_softmax_cross_entropy,
    .buffer_wrap_host = cpu_buffer_wrap_host,
    .copy = cpu_copy,
    .adamw_update = dlv_cpu_adamw_update,
    .sgd_update = dlv_cpu_sgd_update,
    .sum_squares = dlv_cpu_sum_squares,
    .add_layernorm = dlv_cpu_add_layernorm,
    .add_rmsnorm = dlv_cpu_add_rmsnorm,
    .rope_table = dlv_cpu_rope_table,
    .rope_table_backward = dlv_cpu_rope_table_backward,
};

dlv_status dlv_cpu_backend_create(const dlv_backend_config *cfg, dlv_backend **out)
{
    int n_threads = cfg->n_threads;
    if (n_threads < 0)
        return dlv_error(DLV_E_INVALID_ARG, "n_threads %d is negative", n_threads);
    if (n_threads == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = online > 0 && online <= 4096 ? (int)online : 1;
    }
    if (n_threads > 4096)
        return dlv_error(DLV_E_INVALID_ARG, "n_threads %d is more than 4096", n_threads);
    if (cfg->compute != DLV_DTYPE_F32 && cfg->compute != DLV_DTYPE_BF16)
        return dlv_error(DLV_E_INVALID_ARG, "compute dtype %s: the CPU computes in f32 or bf16",
                         dlv_dtype_name(cfg->compute));
    dlv_cpu_backend *cpu = calloc(1, sizeof *cpu);
    if (!cpu) return dlv_error_nomem("cpu backend", sizeof *cpu);
    dlv_status st = dlv_cpu_pool_create(n_threads, &cpu->pool);
    if (st == DLV_OK) st = dlv_cpu_gemm_ctx_create(&cpu->gemm);
    if (st != DLV_OK) {
        dlv_cpu_pool_destroy(cpu->pool);
        free(cpu);
        return st;
    }
    pthread_mutex_init(&cpu->cache.mu, NULL);
    cpu->base.ops = &cpu_ops;
    cpu->base.device = 0;
    cpu->n_threads = n_threads;
    cpu->compute = cfg->compute;
    char provider[200];
    dlv_cpu_gemm_provider(provider, sizeof provider);
    snprintf(cpu->desc, sizeof cpu->desc, "cpu (%s, %d thread%s, %s compute)", provider,
             n_threads, n_threads == 1 ? "" : "s",
             cfg->compute == DLV_DTYPE_BF16 ? "bf16" : "f32");
    *out = &cpu->base;
    return DLV_OK;
}
