#include "core/json_util.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"

dlv_status dlv_json_parse(const char *text, size_t len, const char *label, json_t **out)
{
    json_error_t jerr;
    *out = NULL;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dlv_error(DLV_E_FORMAT, "%s: invalid JSON at line %d, column %d: %s",
                         label, jerr.line, jerr.column, jerr.text);
    *out = root;
    return DLV_OK;
}

static const json_t *field(const json_t *obj, const char *key)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return (v && !json_is_null(v)) ? v : NULL;
}

dlv_status dlv_json_int(const json_t *obj, const char *key, int64_t def,
                        const char *label, int64_t *out)
{
    const json_t *v = field(obj, key);
    if (!v) { *out = def; return DLV_OK; }
    if (!json_is_integer(v))
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected an integer", label, key);
    *out = (int64_t)json_integer_value(v);
    return DLV_OK;
}

dlv_status dlv_json_real(const json_t *obj, const char *key, double def,
                         const char *label, double *out)
{
    const json_t *v = field(obj, key);
    if (!v) { *out = def; return DLV_OK; }
    if (!json_is_number(v))
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected a number", label, key);
    *out = json_number_value(v);
    return DLV_OK;
}

dlv_status dlv_json_bool(const json_t *obj, const char *key, int def,
                         const char *label, int *out)
{
    const json_t *v = field(obj, key);
    if (!v) { *out = def; return DLV_OK; }
    if (!json_is_boolean(v))
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected true or false", label, key);
    *out = json_is_true(v);
    return DLV_OK;
}

dlv_status dlv_json_str(const json_t *obj, const char *key, const char *def,
                        const char *label, char *buf, size_t cap)
{
    const json_t *v = field(obj, key);
    const char *s = def;
    if (v) {
        if (!json_is_string(v))
            return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected a string", label, key);
        s = json_string_value(v);
    }
    if (!s) s = "";
    size_t n = strlen(s);
    if (n >= cap)
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': string longer than %zu bytes",
                         label, key, cap - 1);
    memcpy(buf, s, n + 1);
    return DLV_OK;
}

dlv_status dlv_json_save(const json_t *root, const char *path)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) return dlv_error(DLV_E_NOMEM, "%s: cannot serialise the JSON", path);
    size_t n = strlen(text);
    /* json_dumps leaves no room for the newline: append it in a copy. */
    char *line = realloc(text, n + 2);
    if (!line) {
        free(text);
        return dlv_error_nomem("JSON text", n + 2);
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    dlv_status st = dlv_write_file_atomic(path, line, n + 1);
    free(line);
    return st;
}

dlv_status dlv_json_load_object(const char *path, size_t max_bytes, json_t **out)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    dlv_status st = dlv_read_file(path, max_bytes, &text, &len);
    if (st) return st;
    json_t *root = NULL;
    st = dlv_json_parse(text, len, path, &root);
    free(text);
    if (st) return st;
    if (!json_is_object(root)) {
        json_decref(root);
        return dlv_error(DLV_E_FORMAT, "%s: expected a JSON object", path);
    }
    *out = root;
    return DLV_OK;
}

dlv_status dlv_json_config_parse(const char *text, size_t len, const char *label,
                                 dlv_json_root_fn from_root, void *out, size_t out_size)
{
    memset(out, 0, out_size);
    json_t *root = NULL;
    dlv_status st = dlv_json_parse(text, len, label, &root);
    if (st) return st;
    st = from_root(root, label, out);
    json_decref(root);
    if (st) memset(out, 0, out_size);
    return st;
}

dlv_status dlv_json_config_load(const char *path, size_t max_bytes, dlv_json_root_fn from_root,
                                void *out, size_t out_size)
{
    char *text = NULL;
    size_t len = 0;
    dlv_status st = dlv_read_file(path, max_bytes, &text, &len);
    if (st) {
        memset(out, 0, out_size);
        return st;
    }
    st = dlv_json_config_parse(text, len, path, from_root, out, out_size);
    free(text);
    return st;
}
