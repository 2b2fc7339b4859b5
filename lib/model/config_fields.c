/* See config_fields.h. */
#include "model/config_fields.h"

#include "core/error.h"

const json_t *dlv_cfg_present(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

dlv_status dlv_cfg_int(const json_t *obj, const char *key, int64_t def, dlv_cfg_where w,
                       int64_t *out)
{
    *out = def;
    const json_t *v = dlv_cfg_present(obj, key);
    if (!v) return DLV_OK;
    if (!json_is_integer(v))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: expected an integer", w.label, w.prefix, key);
    *out = (int64_t)json_integer_value(v);
    return DLV_OK;
}

dlv_status dlv_cfg_range(const json_t *obj, const char *key, int64_t def, int64_t lo,
                         int64_t hi, dlv_cfg_where w, int64_t *out)
{
    dlv_status st = dlv_cfg_int(obj, key, def, w, out);
    /* The default is the caller's: only a value from the file is checked. */
    if (st == DLV_OK && dlv_cfg_present(obj, key) && (*out < lo || *out > hi))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: %lld is outside %lld..%lld", w.label, w.prefix,
                         key, (long long)*out, (long long)lo, (long long)hi);
    return st;
}

dlv_status dlv_cfg_size(const json_t *obj, const char *key, int64_t def, dlv_cfg_where w,
                        int64_t *out)
{
    return dlv_cfg_range(obj, key, def, 1, DLV_CFG_MAX_DIM, w, out);
}

dlv_status dlv_cfg_real(const json_t *obj, const char *key, double def, dlv_cfg_where w,
                        double *out)
{
    *out = def;
    const json_t *v = dlv_cfg_present(obj, key);
    if (!v) return DLV_OK;
    if (!json_is_number(v))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: expected a number", w.label, w.prefix, key);
    *out = json_number_value(v);
    return DLV_OK;
}

dlv_status dlv_cfg_bool(const json_t *obj, const char *key, int def, dlv_cfg_where w, int *out)
{
    *out = def;
    const json_t *v = dlv_cfg_present(obj, key);
    if (!v) return DLV_OK;
    if (!json_is_boolean(v))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: expected true or false", w.label, w.prefix,
                         key);
    *out = json_is_true(v);
    return DLV_OK;
}

dlv_status dlv_cfg_str(const json_t *obj, const char *key, const char *def, dlv_cfg_where w,
                       const char **out)
{
    *out = def;
    const json_t *v = dlv_cfg_present(obj, key);
    if (!v) return DLV_OK;
    if (!json_is_string(v))
        return dlv_error(DLV_E_FORMAT, "%s: %s%s: expected a string", w.label, w.prefix, key);
    *out = json_string_value(v);
    return DLV_OK;
}
