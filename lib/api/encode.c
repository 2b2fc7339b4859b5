/* Image and text embeddings through the model kind's encoders
 * (model/kind.h), in chunks so that memory stays bounded for any n, with
 * cancellation checked between chunks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "core/error.h"
#include "model/kind.h"
#include "model/model.h"

/* Inputs per forward pass. Results do not depend on it (rows are
 * independent); it only bounds the scratch memory. */
#define IMAGE_CHUNK 8
#define TEXT_CHUNK 16

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

DLV_API dlv_status dlv_encode_images(dlv_session *session, const dlv_image *const *images,
                                     size_t n, float *out, size_t out_len)
{
    static const char fn[] = "dlv_encode_images";
    dlv_status st = check_out(session, n, out, out_len, fn);
    if (st != DLV_OK) return st;
    if (!images) return dlv_error(DLV_E_INVALID_ARG, "%s: images is NULL", fn);
    for (size_t i = 0; i < n; i++)
        if (!images[i]) return dlv_error(DLV_E_INVALID_ARG, "%s: images[%zu] is NULL", fn, i);
    const void *view;
    if ((st = dlv_session_view(session, &view))) return dlv_error_prefix(st, "%s", fn);
    const dlv_model_kind *kind = dlv_model_kind_of(session->model);
    const size_t dim = dlv_session_embed_dim(session);
    for (size_t i = 0; i < n; i += IMAGE_CHUNK) {
        if ((st = dlv_session_check_cancel(session, fn))) return st;
        size_t c = n - i < IMAGE_CHUNK ? n - i : IMAGE_CHUNK;
        st = kind->encode_images(session->model, session->backend, view, images + i, c,
                                 out + i * dim);
        if (st) return dlv_error_prefix(st, "%s: images %zu..%zu", fn, i, i + c - 1);
    }
    return DLV_OK;
}

static dlv_status encode_one(dlv_session *s, const dlv_image *img, float *out, size_t out_len)
{
    const dlv_image *one[1] = {img};
    return dlv_encode_images(s, one, 1, out, out_len);
}

DLV_API dlv_status dlv_encode_image_file(dlv_session *session, const char *path, float *out,
                                         size_t out_len)
{
    dlv_status st = check_out(session, 1, out, out_len, "dlv_encode_image_file");
    if (st != DLV_OK) return st;
    if (!path) return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_image_file: path is NULL");
    dlv_image *img = NULL;
    if ((st = dlv_image_from_file(path, &img))) return st;
    st = encode_one(session, img, out, out_len);
    dlv_image_free(img);
    return st;
}

DLV_API dlv_status dlv_encode_image_memory(dlv_session *session, const void *data,
                                           size_t n_bytes, float *out, size_t out_len)
{
    dlv_status st = check_out(session, 1, out, out_len, "dlv_encode_image_memory");
    if (st != DLV_OK) return st;
    if (!data || n_bytes == 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_encode_image_memory: no data");
    dlv_image *img = NULL;
    if ((st = dlv_image_from_memory(data, n_bytes, &img))) return st;
    st = encode_one(session, img, out, out_len);
    dlv_image_free(img);
    return st;
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
    dlv_image *img = NULL;
    if ((st = dlv_image_from_rgb(rgb, width, height, stride_bytes, &img))) return st;
    st = encode_one(session, img, out, out_len);
    dlv_image_free(img);
    return st;
}

DLV_API dlv_status dlv_encode_text(dlv_session *session, const char *const *texts, size_t n,
                                   float *out, size_t out_len)
{
    static const char fn[] = "dlv_encode_text";
    dlv_status st = check_out(session, n, out, out_len, fn);
    if (st != DLV_OK) return st;
    if (!texts) return dlv_error(DLV_E_INVALID_ARG, "%s: texts is NULL", fn);
    for (size_t i = 0; i < n; i++)
        if (!texts[i]) return dlv_error(DLV_E_INVALID_ARG, "%s: texts[%zu] is NULL", fn, i);
    const void *view;
    if ((st = dlv_session_view(session, &view))) return dlv_error_prefix(st, "%s", fn);
    const dlv_model_kind *kind = dlv_model_kind_of(session->model);
    const size_t dim = dlv_session_embed_dim(session);
    for (size_t i = 0; i < n; i += TEXT_CHUNK) {
        if ((st = dlv_session_check_cancel(session, fn))) return st;
        size_t c = n - i < TEXT_CHUNK ? n - i : TEXT_CHUNK;
        /* Messages name texts by their index in the caller's array. */
        st = kind->encode_texts(session->model, session->backend, view, texts + i, c, i,
                                session->opts.truncate, out + i * dim);
        if (st) return dlv_error_prefix(st, "%s", fn);
    }
    return DLV_OK;
}

DLV_API dlv_status dlv_text_positions(dlv_session *session, const char *text, int what,
                                      size_t *positions, size_t *max_positions)
{
    static const char fn[] = "dlv_text_positions";
    if (!session || !text || !positions || !max_positions)
        return dlv_error(DLV_E_INVALID_ARG, "%s: session, text, positions and max_positions "
                         "must not be NULL", fn);
    if (what != DLV_POSITIONS_TEXT && what != DLV_POSITIONS_AFTER_IMAGE)
        return dlv_error(DLV_E_INVALID_ARG, "%s: what = %d is not DLV_POSITIONS_TEXT (0) or "
                         "DLV_POSITIONS_AFTER_IMAGE (1)", fn, what);
    const void *view;
    dlv_status st = dlv_session_view(session, &view);
    if (!st)
        st = dlv_model_kind_of(session->model)->text_positions(session->model, view, text, what,
                                                               positions, max_positions);
    return st ? dlv_error_prefix(st, "%s", fn) : DLV_OK;
}

DLV_API dlv_status dlv_embed_tokens(dlv_session *session, const int32_t *ids, size_t n_ids,
                                    const dlv_image *image, unsigned flags, float *out,
                                    size_t out_len)
{
    static const char fn[] = "dlv_embed_tokens";
    dlv_status st = check_out(session, 1, out, out_len, fn);
    if (st) return st;
    if (!ids || n_ids == 0) return dlv_error(DLV_E_INVALID_ARG, "%s: no token ids", fn);
    if (flags & ~DLV_EMBED_HIDDEN)
        return dlv_error(DLV_E_INVALID_ARG, "%s: unknown flags 0x%x", fn, flags);
    if (n_ids > INT32_MAX) return dlv_error(DLV_E_INVALID_ARG, "%s: too many ids", fn);
    const dlv_model_kind *kind = dlv_model_kind_of(session->model);
    if (!kind->embed_tokens)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: not available for a '%s' model (use "
                         "dlv_encode_text)", fn, kind->name);
    const dlv_llava_config *cfg = dlv_model_config(session->model);
    size_t at = SIZE_MAX, count = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] == cfg->image_token_index) {
            if (count++ == 0) at = i;
        }
    if (count > 1)
        return dlv_error(DLV_E_INVALID_ARG, "%s: %zu image tokens (id %lld); at most one is "
                         "supported", fn, count, (long long)cfg->image_token_index);
    if (count == 1 && !image)
        return dlv_error(DLV_E_INVALID_ARG, "%s: ids[%zu] is the image token but no image is "
                         "given", fn, at);
    if (count == 0 && image)
        return dlv_error(DLV_E_INVALID_ARG, "%s: an image is given but the ids have no image "
                         "token (%lld)", fn, (long long)cfg->image_token_index);
    const void *view;
    if ((st = dlv_session_view(session, &view))) return dlv_error_prefix(st, "%s", fn);
    st = kind->embed_tokens(session->model, session->backend, view, ids, n_ids, at,
                            count ? image : NULL, !(flags & DLV_EMBED_HIDDEN), out);
    return st ? dlv_error_prefix(st, "%s", fn) : DLV_OK;
}
