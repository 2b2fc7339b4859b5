/* Image and text embeddings. The arguments are checked now; the forward pass
 * that computes embeddings is not built yet, so the calls say so rather than
 * return made-up numbers. */
#include <stdint.h>

#include "api/session.h"
#include "core/error.h"

static dlv_status check_out(dlv_session *s, size_t n, const float *out, size_t out_len,
                            const char *fn)
{
    if (!s) return dlv_error(DLV_E_INVALID_ARG, "%s: session is NULL", fn);
    if (n == 0) return dlv_error(DLV_E_INVALID_ARG, "%s: nothing to encode (n = 0)", fn);
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "%s: out is NULL", fn);
    size_t dim = dlv_session_embed_dim(s);
    if (dim == 0) return dlv_error(DLV_E_INVALID_ARG, "%s: the session's model has no embedding size", fn);
    if (n > SIZE_MAX / dim || out_len < n * dim)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL,
                         "%s: out holds %zu floats, %zu embeddings of %zu need more", fn,
                         out_len, n, dim);
    return DLV_OK;
}

static dlv_status not_built(const char *fn)
{
    return dlv_error(DLV_E_NOT_IMPLEMENTED,
                     "%s: not implemented in libdisclvlm %s (the forward pass is not built yet)",
                     fn, DLV_VERSION_STRING);
}

DLV_API dlv_status dlv_encode_images(dlv_session *session, const dlv_image *const *images,
                                     size_t n, float *out, size_t out_len)
{
    dlv_status st = check_out(session, n, out, out_len, "dlv_encode_images");
    if (st != DLV_OK) return st;
    if (!images) return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_images: images is NULL");
    for (size_t i = 0; i < n; i++)
        if (!images[i])
            return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_images: images[%zu] is NULL", i);
    return not_built("dlv_encode_images");
}

DLV_API dlv_status dlv_encode_image_file(dlv_session *session, const char *path, float *out,
                                         size_t out_len)
{
    dlv_status st = check_out(session, 1, out, out_len, "dlv_encode_image_file");
    if (st != DLV_OK) return st;
    if (!path) return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_image_file: path is NULL");
    return not_built("dlv_encode_image_file");
}

DLV_API dlv_status dlv_encode_image_memory(dlv_session *session, const void *data,
                                           size_t n_bytes, float *out, size_t out_len)
{
    dlv_status st = check_out(session, 1, out, out_len, "dlv_encode_image_memory");
    if (st != DLV_OK) return st;
    if (!data || n_bytes == 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_image_memory: no data");
    return not_built("dlv_encode_image_memory");
}

DLV_API dlv_status dlv_encode_image_rgb(dlv_session *session, const uint8_t *rgb,
                                        uint32_t width, uint32_t height, size_t stride_bytes,
                                        float *out, size_t out_len)
{
    dlv_status st = check_out(session, 1, out, out_len, "dlv_encode_image_rgb");
    if (st != DLV_OK) return st;
    if (!rgb || width == 0 || height == 0 || stride_bytes < (size_t)width * 3u)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_encode_image_rgb: bad image (NULL data, empty, or stride < 3 * width)");
    return not_built("dlv_encode_image_rgb");
}

DLV_API dlv_status dlv_encode_text(dlv_session *session, const char *const *texts, size_t n,
                                   float *out, size_t out_len)
{
    dlv_status st = check_out(session, n, out, out_len, "dlv_encode_text");
    if (st != DLV_OK) return st;
    if (!texts) return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_text: texts is NULL");
    for (size_t i = 0; i < n; i++)
        if (!texts[i])
            return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_text: texts[%zu] is NULL", i);
    return not_built("dlv_encode_text");
}
