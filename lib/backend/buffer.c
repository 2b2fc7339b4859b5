/* Checked buffer wrappers: every range is validated here, once, so the
 * backends' slots only ever see ranges inside their buffers. */
#include <stdint.h>
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
    if (buf->owner && buf->ptr && !buf->borrowed) buf->owner->ops->buffer_free(buf->owner, buf);
    memset(buf, 0, sizeof *buf);
}

dlv_status dlv_buffer_wrap_host(dlv_backend *be, void *host, size_t size, dlv_buffer *out)
{
    static const char fn[] = "dlv_buffer_wrap_host";
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    if (!be) return dlv_error(DLV_E_INVALID_ARG, "%s: backend is NULL", fn);
    /* Even an empty range needs an address: ptr != NULL means "allocated". */
    if (!host) return dlv_error(DLV_E_INVALID_ARG, "%s: host is NULL", fn);
    if (!(be->ops->caps & DLV_BACKEND_CAP_HOST_MEMORY) ||
        !DLV_BACKEND_HAS(be->ops, buffer_wrap_host))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: backend %s cannot use host memory in place",
                         fn, be->ops->name);
    dlv_buffer b = {0};
    dlv_status st = be->ops->buffer_wrap_host(be, host, size, &b);
    if (st != DLV_OK) return st;
    b.size = size;
    b.owner = be;
    b.borrowed = 1;
    *out = b;
    return DLV_OK;
}

dlv_status dlv_buffer_copy(dlv_buffer *dst, size_t dst_offset, const dlv_buffer *src,
                           size_t src_offset, size_t size)
{
    static const char fn[] = "dlv_buffer_copy";
    dlv_status st = check_buffer(fn, "dst", dst);
    if (st == DLV_OK) st = check_buffer(fn, "src", src);
    if (st == DLV_OK) st = check_range(fn, dst->size, dst_offset, size);
    if (st == DLV_OK) st = check_range(fn, src->size, src_offset, size);
    if (st != DLV_OK) return st;
    if (!dlv_backend_same_memory(dst->owner, src->owner))
        return dlv_error(DLV_E_INVALID_ARG, "%s: the buffers belong to backends %s and %s, "
                         "which do not share memory", fn, dst->owner->ops->name,
                         src->owner->ops->name);
    if (size == 0) return DLV_OK;
    /* Offsets as integers: device addresses are never dereferenced here. */
    const uintptr_t d = (uintptr_t)dst->ptr + dst_offset, s = (uintptr_t)src->ptr + src_offset;
    if (d < s + size && s < d + size)
        return dlv_error(DLV_E_INVALID_ARG, "%s: the source and destination ranges overlap", fn);
    if (!DLV_BACKEND_HAS(dst->owner->ops, copy))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: not implemented on backend %s", fn,
                         dst->owner->ops->name);
    return dst->owner->ops->copy(dst->owner, dst, dst_offset, src, src_offset, size);
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

/* A borrowed view of size bytes at a device address: the slots take buffers
 * and offsets, and the address may lie inside a larger allocation. */
static dlv_buffer view_at(dlv_backend *be, const void *p, size_t size)
{
    return (dlv_buffer){(void *)(uintptr_t)p, size, be, 1};
}

dlv_status dlv_copy(dlv_backend *be, void *dst, const void *src, size_t size)
{
    if (!be) return dlv_error(DLV_E_INVALID_ARG, "dlv_copy: backend is NULL");
    if (size == 0) return DLV_OK;
    if (!dst || !src) return dlv_error(DLV_E_INVALID_ARG, "dlv_copy: NULL address");
    dlv_buffer d = view_at(be, dst, size);
    const dlv_buffer s = view_at(be, src, size);
    return dlv_buffer_copy(&d, 0, &s, 0, size);
}

dlv_status dlv_zero(dlv_backend *be, void *dst, size_t size)
{
    if (!be) return dlv_error(DLV_E_INVALID_ARG, "dlv_zero: backend is NULL");
    if (size == 0) return DLV_OK;
    if (!dst) return dlv_error(DLV_E_INVALID_ARG, "dlv_zero: NULL address");
    dlv_buffer d = view_at(be, dst, size);
    return dlv_buffer_zero(&d, 0, size);
}

dlv_status dlv_copy_to_device(dlv_backend *be, void *dst, const void *host, size_t size)
{
    if (!be) return dlv_error(DLV_E_INVALID_ARG, "dlv_copy_to_device: backend is NULL");
    if (size == 0) return DLV_OK;
    if (!dst) return dlv_error(DLV_E_INVALID_ARG, "dlv_copy_to_device: NULL address");
    dlv_buffer d = view_at(be, dst, size);
    return dlv_buffer_upload(&d, 0, host, size);
}

dlv_status dlv_copy_to_host(dlv_backend *be, void *host, const void *src, size_t size)
{
    if (!be) return dlv_error(DLV_E_INVALID_ARG, "dlv_copy_to_host: backend is NULL");
    if (size == 0) return DLV_OK;
    if (!src) return dlv_error(DLV_E_INVALID_ARG, "dlv_copy_to_host: NULL address");
    const dlv_buffer s = view_at(be, src, size);
    return dlv_buffer_download(host, &s, 0, size);
}
