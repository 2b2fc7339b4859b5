/* See device_weights.h. */
#include "model/device_weights.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Elements converted per upload: bounds the host staging buffer (256 KiB). */
#define CONVERT_CHUNK ((size_t)1 << 16)

/* n elements of src (dtype from, any alignment) as dtype to at dst, through
 * the f32 scratch wide; narrowing rounds to nearest even (torch's .to()). */
static void convert_chunk(void *dst, dlv_dtype to, const void *src, dlv_dtype from, size_t n,
                          float *wide)
{
    dlv_convert_to_f32(wide, src, from, n); /* from is F32, F16 or BF16 */
    if (to == DLV_DTYPE_F32) {
        memcpy(dst, wide, n * sizeof *wide);
        return;
    }
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++)
        h[i] = to == DLV_DTYPE_BF16 ? dlv_f32_to_bf16(wide[i]) : dlv_f32_to_f16(wide[i]);
}

/* A copy of the stored tensor in dtype to on the device, converted and
 * uploaded CONVERT_CHUNK elements at a time. */
static dlv_status place_converted(dlv_backend *be, const dlv_st_tensor *st_t, dlv_dtype to,
                                  dlv_buffer *buf)
{
    const size_t n = (size_t)st_t->n_elements, es_to = dlv_dtype_size(to);
    const size_t es_from = dlv_dtype_size(st_t->dtype);
    if (st_t->n_elements > SIZE_MAX / es_to)
        return dlv_error(DLV_E_NOMEM, "%" PRIu64 " elements do not fit in memory",
                         st_t->n_elements);
    dlv_status st = dlv_buffer_alloc(be, n * es_to, buf);
    if (st) return st;
    float *wide = malloc(CONVERT_CHUNK * sizeof *wide);
    void *stage = malloc(CONVERT_CHUNK * es_to);
    if (!wide || !stage) st = dlv_error_nomem("weight conversion", CONVERT_CHUNK * 8);
    const unsigned char *src = st_t->data;
    for (size_t i = 0; !st && i < n; i += CONVERT_CHUNK) {
        size_t c = n - i < CONVERT_CHUNK ? n - i : CONVERT_CHUNK;
        convert_chunk(stage, to, src + i * es_from, st_t->dtype, c, wide);
        st = dlv_buffer_upload(buf, i * es_to, stage, c * es_to);
    }
    free(wide);
    free(stage);
    if (st) dlv_buffer_free(buf);
    return st;
}

static dlv_status place(dlv_backend *be, const dlv_weight *w, const char *label, dlv_dtype as,
                        dlv_buffer *buf, dlv_tensor *t)
{
    const dlv_st_tensor *st_t = w->tensor;
    const dlv_dtype dtype = as == DLV_DTYPE_COUNT ? st_t->dtype : as;
    dlv_status st;
    if (dtype != st_t->dtype) {
        st = place_converted(be, st_t, dtype, buf);
    } else if (dlv_backend_caps(be) & DLV_BACKEND_CAP_HOST_MEMORY) {
        /* The mapping is read-only and ops never write weights. */
        st = dlv_buffer_wrap_host(be, (void *)(uintptr_t)st_t->data, (size_t)st_t->n_bytes, buf);
    } else {
        st = dlv_buffer_alloc(be, (size_t)st_t->n_bytes, buf);
        if (!st) st = dlv_buffer_upload(buf, 0, st_t->data, (size_t)st_t->n_bytes);
    }
    if (st) return dlv_error_prefix(st, "%s: weight '%s' on backend %s", label, st_t->name,
                                    be->ops->name);
    *t = (dlv_tensor){buf, 0, dtype, w->ndim, {0, 0, 0, 0}};
    for (int i = 0; i < w->ndim && i < DLV_TENSOR_MAX_DIMS; i++) t->shape[i] = w->shape[i];
    if (w->ndim > DLV_TENSOR_MAX_DIMS) {
        /* A convolution whose kernel equals its stride (Qwen2-VL's Conv3d
         * patch embedding [D, C, T, P, P]) is a linear [D, C T P P] on the
         * flattened patch: the same bytes, viewed 2-D. */
        t->ndim = 2;
        t->shape[1] = 1;
        for (int i = 1; i < w->ndim; i++) t->shape[1] *= w->shape[i];
        t->shape[2] = t->shape[3] = 0;
    }
    /* A scalar (logit_scale stored with shape []) is one element. */
    if (w->ndim == 0) {
        t->ndim = 1;
        t->shape[0] = 1;
    }
    return DLV_OK;
}

dlv_status dlv_device_weights_create(dlv_backend *be, const dlv_weights *table,
                                     const char *label, dlv_dtype as, dlv_device_weights *out)
{
    memset(out, 0, sizeof *out);
    out->table = table;
    out->n = table->n;
    out->bufs = calloc(table->n ? table->n : 1, sizeof *out->bufs);
    out->t = calloc(table->n ? table->n : 1, sizeof *out->t);
    if (!out->bufs || !out->t) {
        dlv_device_weights_free(out);
        return dlv_error_nomem("weight tensors", table->n * sizeof(dlv_tensor));
    }
    for (size_t i = 0; i < table->n; i++) {
        if (!table->items[i].tensor) continue;
        dlv_status st = place(be, &table->items[i], label, as, &out->bufs[i], &out->t[i]);
        if (st) {
            dlv_device_weights_free(out);
            return st;
        }
    }
    return DLV_OK;
}

void dlv_device_weights_free(dlv_device_weights *dw)
{
    if (!dw) return;
    for (size_t i = 0; dw->bufs && i < dw->n; i++) dlv_buffer_free(&dw->bufs[i]);
    free(dw->bufs);
    free(dw->t);
    memset(dw, 0, sizeof *dw);
}

dlv_tensor dlv_device_weights_get(const dlv_device_weights *dw, dlv_weight_part part,
                                  const char *canonical)
{
    for (size_t i = 0; i < dw->n; i++) {
        const dlv_weight *w = &dw->table->items[i];
        if (w->part == part && strcmp(w->canonical, canonical) == 0) return dw->t[i];
    }
    return (dlv_tensor){0};
}
