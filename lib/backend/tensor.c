/* Whole-tensor transfers (see tensor.h): thin calls to the checked buffer
 * functions, which validate every range. */
#include "backend/tensor.h"

#include "core/error.h"

/* Buffers are owned elsewhere and handed around as const views; transfers
 * write through them, as ops write through their device pointers. */
static dlv_buffer *mut(const dlv_buffer *b) { return (dlv_buffer *)(uintptr_t)b; }

static dlv_status need(const char *fn, const dlv_tensor *t)
{
    if (!t || !t->buf) return dlv_error(DLV_E_INVALID_ARG, "%s: the tensor is absent", fn);
    return DLV_OK;
}

dlv_status dlv_tensor_upload(const dlv_tensor *t, const void *host)
{
    dlv_status st = need("dlv_tensor_upload", t);
    if (st) return st;
    return dlv_buffer_upload(mut(t->buf), t->offset, host, dlv_tensor_nbytes(t));
}

dlv_status dlv_tensor_download(void *host, const dlv_tensor *t)
{
    dlv_status st = need("dlv_tensor_download", t);
    if (st) return st;
    return dlv_buffer_download(host, t->buf, t->offset, dlv_tensor_nbytes(t));
}

dlv_status dlv_tensor_zero(const dlv_tensor *t)
{
    dlv_status st = need("dlv_tensor_zero", t);
    if (st) return st;
    return dlv_buffer_zero(mut(t->buf), t->offset, dlv_tensor_nbytes(t));
}

dlv_status dlv_tensor_copy(const dlv_tensor *dst, const dlv_tensor *src)
{
    dlv_status st = need("dlv_tensor_copy", dst);
    if (!st) st = need("dlv_tensor_copy", src);
    if (st) return st;
    if (dlv_tensor_nbytes(dst) != dlv_tensor_nbytes(src))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_tensor_copy: %zu bytes into %zu",
                         dlv_tensor_nbytes(src), dlv_tensor_nbytes(dst));
    return dlv_buffer_copy(mut(dst->buf), dst->offset, src->buf, src->offset,
                           dlv_tensor_nbytes(src));
}
