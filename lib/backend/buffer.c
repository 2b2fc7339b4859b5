/* Checked buffer wrappers: every range is validated here, once, so the
 * backends' slots only ever see ranges inside their buffers. */
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"

/* [offset, offset + size) must lie inside a buffer of buf_size bytes; the
 * sum is never formed, so it cannot wrap. */
static dlv_status check_range(const char *fn, size_t buf_size, size_t offset, size_t size)
{
    if (offset > buf_size)
        return dlv_error(DLV_E_INVALID_ARG,
                         "%s: offset %zu is past the end of the %zu-byte buffer", fn,
                         offset, buf_size);
    if (size > buf_size - offset) {
        if (size > SIZE_MAX - offset)
            return dlv_error(DLV_E_INVALID_ARG, "%s: offset %zu + size %zu overflows",
                             fn, offset, size);
        return dlv_error(DLV_E_INVALID_ARG,
                         "%s: range [%zu, %zu + %zu) exceeds the %zu-byte buffer", fn,
                         offset, offset, size, buf_size);
    }
    return DLV_OK;
}

static dlv_status check_buffer(const char *fn, const char *what, const dlv_buffer *buf)
{
    if (!buf) return dlv_error(DLV_E_INVALID_ARG, "%s: %s is NULL", fn, what);
    if (!buf->owner || !buf->ptr)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %s is not an allocated buffer", fn, what);
    return DLV_OK;
}

dlv_status dlv_buffer_alloc(dlv_backend *be, size_t size, dlv_buffer *out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_buffer_alloc: out is NULL");
    memset(out, 0, sizeof *out);
    if (!be) return dlv_error(DLV_E_INVALID_ARG, "dlv_buffer_alloc: backend is NULL");
    dlv_buffer b = {0};
    dlv_status st = be->ops->buffer_alloc(be, size, &b);
    if (st != DLV_OK) return st;
    b.size = size;
    b.owner = be;
    *out = b;
    return DLV_OK;
}

void dlv_buffer_free(dlv_buffer *buf)
{
    if (!buf) return;
    if (buf->owner && buf->ptr) buf->owner->ops->buffer_free(buf->owner, buf);
    memset(buf, 0, sizeof *buf);
}

void *dlv_buffer_ptr(const dlv_buffer *buf)
{
    return buf ? buf->ptr : NULL;
}

dlv_status dlv_buffer_upload(dlv_buffer *dst, size_t offset, const void *src, size_t size)
{
    static const char fn[] = "dlv_buffer_upload";
    dlv_status st = check_buffer(fn, "dst", dst);
    if (st != DLV_OK) return st;
    if (!src && size > 0) return dlv_error(DLV_E_INVALID_ARG, "%s: src is NULL", fn);
    st = check_range(fn, dst->size, offset, size);
    if (st != DLV_OK) return st;
    if (size == 0) return DLV_OK;
    return dst->owner->ops->upload(dst->owner, dst, offset, src, size);
}

dlv_status dlv_buffer_download(void *dst, const dlv_buffer *src, size_t offset, size_t size)
{
    static const char fn[] = "dlv_buffer_download";
    dlv_status st = check_buffer(fn, "src", src);
    if (st != DLV_OK) return st;
    if (!dst && size > 0) return dlv_error(DLV_E_INVALID_ARG, "%s: dst is NULL", fn);
    st = check_range(fn, src->size, offset, size);
    if (st != DLV_OK) return st;
    if (size == 0) return DLV_OK;
    return src->owner->ops->download(src->owner, dst, src, offset, size);
}

dlv_status dlv_buffer_zero(dlv_buffer *buf, size_t offset, size_t size)
{
    static const char fn[] = "dlv_buffer_zero";
    dlv_status st = check_buffer(fn, "buf", buf);
    if (st != DLV_OK) return st;
    st = check_range(fn, buf->size, offset, size);
    if (st != DLV_OK) return st;
    if (size == 0) return DLV_OK;
    return buf->owner->ops->memset_zero(buf->owner, buf, offset, size);
}
