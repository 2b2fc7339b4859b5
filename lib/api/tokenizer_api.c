/* Public tokenizer entry points: argument checks and the caller-owned
 * buffer contract around the internal pipeline (lib/tokenizer). */
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

DLV_API dlv_status dlv_tokenizer_load(const char *path, dlv_tokenizer **out)
{
    if (out) *out = NULL;
    if (!path || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_tokenizer_load: NULL argument");
    if (!*path) return dlv_error(DLV_E_INVALID_ARG, "dlv_tokenizer_load: empty path");
    return dlv_tokenizer_open(path, out);
}

DLV_API void dlv_tokenizer_free(dlv_tokenizer *tok) { dlv_tokenizer_destroy(tok); }

DLV_API dlv_status dlv_tokenize(const dlv_tokenizer *tok, const char *text, size_t len,
                                unsigned flags, int32_t *ids, size_t cap, size_t *n_ids)
{
    if (n_ids) *n_ids = 0;
    if (!tok || !n_ids || (!text && len))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_tokenize: NULL argument");
    if (!ids && cap) return dlv_error(DLV_E_INVALID_ARG, "dlv_tokenize: ids is NULL but cap is %zu",
                                      cap);
    if (flags & ~DLV_TOKENIZE_ADD_SPECIAL)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_tokenize: unknown flags 0x%x", flags);
    dlv_ids out = {0};
    dlv_status st = dlv_tokenizer_encode(tok, text ? text : "", len,
                                         (flags & DLV_TOKENIZE_ADD_SPECIAL) != 0, &out);
    if (st == DLV_OK) {
        *n_ids = out.n;
        if (ids && out.n > cap)
            st = dlv_error(DLV_E_BUFFER_TOO_SMALL, "dlv_tokenize: the text needs %zu ids, the "
                           "buffer holds %zu", out.n, cap);
        else if (ids && out.n)
            memcpy(ids, out.v, out.n * sizeof *ids);
    }
    dlv_ids_free(&out);
    return st;
}

DLV_API dlv_status dlv_detokenize(const dlv_tokenizer *tok, const int32_t *ids, size_t n,
                                  unsigned flags, char *buf, size_t cap, size_t *needed)
{
    if (needed) *needed = 0;
    if (buf && cap) buf[0] = '\0';
    if (!tok || (!ids && n)) return dlv_error(DLV_E_INVALID_ARG, "dlv_detokenize: NULL argument");
    if (!buf && cap)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_detokenize: buf is NULL but cap is %zu", cap);
    if (flags & ~DLV_DETOKENIZE_SKIP_SPECIAL)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_detokenize: unknown flags 0x%x", flags);
    dlv_tbuf text = {0};
    dlv_status st = dlv_tokenizer_decode(tok, ids, n, (flags & DLV_DETOKENIZE_SKIP_SPECIAL) != 0,
                                         &text);
    if (st == DLV_OK) {
        if (needed) *needed = text.len + 1;
        if (buf && text.len + 1 > cap)
            st = dlv_error(DLV_E_BUFFER_TOO_SMALL, "dlv_detokenize: the text needs %zu bytes, "
                           "the buffer holds %zu", text.len + 1, cap);
        else if (buf) {
            if (text.len) memcpy(buf, text.p, text.len);
            buf[text.len] = '\0';
        }
    }
    dlv_tbuf_free(&text);
    return st;
}

DLV_API dlv_status dlv_tokenizer_vocab_size(const dlv_tokenizer *tok, size_t *out)
{
    if (!tok || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_tokenizer_vocab_size: NULL argument");
    *out = tok->vocab_size;
    return DLV_OK;
}

DLV_API dlv_status dlv_model_tokenizer(const dlv_model *model, const dlv_tokenizer **out)
{
    if (out) *out = NULL;
    if (!model || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_model_tokenizer: NULL argument");
    *out = dlv_model_get_tokenizer(model);
    if (!*out)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: the model has no tokenizer (no tokenizer.json "
                         "or tokenizer.model in its directory)", dlv_model_dir(model));
    return DLV_OK;
}
