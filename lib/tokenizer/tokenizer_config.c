/* tokenizer_config.json from a model directory: transformers rebuilds the
 * Llama-style template from add_bos_token / add_eos_token, so when either is
 * given it overrides the tokenizer file's template. Other keys are not
 * needed for ids. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "tokenizer/tokenizer.h"

/* bos_token / eos_token: a string or an AddedToken object with "content". */
static dlv_status special_id(const dlv_tokenizer *tok, const json_t *cfg, const char *key,
                             const char *path, int32_t *out)
{
    const json_t *v = json_object_get(cfg, key);
    *out = -1;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!v || json_is_null(v)) return DLV_OK;
    if (!json_is_string(v))
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected a string or an object with "
                         "'content'", path, key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    int32_t k = dlv_strmap_get(&tok->added_map, s, n);
    *out = k >= 0 ? tok->added[k].id : dlv_strmap_get(&tok->bpe.vocab, s, n);
    if (*out < 0)
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': token '%s' is not in the vocabulary", path,
                         key, s);
    return DLV_OK;
}

dlv_status dlv_tokenizer_apply_config(dlv_tokenizer *tok, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    json_t *cfg = NULL;
    dlv_status st = dlv_read_file(path, (size_t)16 << 20, &text, &len);
    if (st == DLV_OK) {
        /* model_max_length is often 1e30 written as an integer, beyond
         * int64: read integers as reals rather than refuse the file. */
        json_error_t jerr;
        cfg = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &jerr);
        if (!cfg)
            st = dlv_error(DLV_E_FORMAT, "%s: invalid JSON at line %d, column %d: %s", path,
                           jerr.line, jerr.column, jerr.text);
    }
    free(text);
    if (st == DLV_OK && !json_is_object(cfg))
        st = dlv_error(DLV_E_FORMAT, "%s: expected a JSON object", path);
    int has_bos = cfg && json_object_get(cfg, "add_bos_token") != NULL;
    int has_eos = cfg && json_object_get(cfg, "add_eos_token") != NULL;
    int add_bos = 0, add_eos = 0;
    int32_t bos = -1, eos = -1;
    if (st == DLV_OK) st = dlv_json_bool(cfg, "add_bos_token", 0, path, &add_bos);
    if (st == DLV_OK) st = dlv_json_bool(cfg, "add_eos_token", 0, path, &add_eos);
    if (st == DLV_OK && add_bos) st = special_id(tok, cfg, "bos_token", path, &bos);
    if (st == DLV_OK && add_eos) st = special_id(tok, cfg, "eos_token", path, &eos);
    if (st == DLV_OK && (has_bos || has_eos))
        st = dlv_tokenizer_set_bos_eos(tok, bos, eos);
    json_decref(cfg);
    return st;
}
