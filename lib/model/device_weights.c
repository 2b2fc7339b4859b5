/* See device_weights.h. */
#include "model/device_weights.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static dlv_status place(dlv_backend *be, const dlv_weight *w, const char *label,
                        dlv_buffer *buf, dlv_tensor *t)
{
    const dlv_st_tensor *st_t = w->tensor;
    dlv_status st;
    if (dlv_backend_caps(be) & DLV_BACKEND_CAP_HOST_MEMORY) {
        /* The mapping is read-only and ops never write weights. */
        st = dlv_buffer_wrap_host(be, (void *)(uintptr_t)st_t->data, (size_t)st_t->n_bytes, buf);
    } else {
        st = dlv_buffer_alloc(be, (size_t)st_t->n_bytes, buf);
        if (!st) st = dlv_buffer_upload(buf, 0, st_t->data, (size_t)st_t->n_bytes);
    }
    if (st) return dlv_error_prefix(st, "%s: weight '%s' on backend %s", label, st_t->name,
                                    be->ops->name);
    *t = (dlv_tensor){buf, 0, st_t->dtype, w->ndim, {0, 0, 0, 0}};
    for (int i = 0; i < w->ndim && i < DLV_TENSOR_MAX_DIMS; i++) t->shape[i] = w->shape[i];
    /* A scalar (logit_scale stored with shape []) is one element. */
    if (w->ndim == 0) {
        t->ndim = 1;
        t->shape[0] = 1;
    }
    return DLV_OK;
}

dlv_status dlv_device_weights_create(dlv_backend *be, const dlv_weights *table,
                                     const char *label, dlv_device_weights *out)
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
        dlv_status st = place(be, &table->items[i], label, &out->bufs[i], &out->t[i]);
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
