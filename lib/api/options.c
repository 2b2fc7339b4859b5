/* Option objects: opaque, with setters that validate their argument. */
#include "api/options.h"

#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"

void dlv_model_options_defaults(dlv_model_options *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->backend, "cpu");
    o->device = 0;
    o->weight_dtype = DLV_DTYPE_COUNT;
}

void dlv_session_options_defaults(dlv_session_options *o)
{
    memset(o, 0, sizeof *o);
    o->n_threads = 0;
    o->truncate = 0;
}

DLV_API dlv_status dlv_model_options_new(dlv_model_options **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_model_options_new: out is NULL");
    *out = malloc(sizeof **out);
    if (!*out) return dlv_error_nomem("model options", sizeof **out);
    dlv_model_options_defaults(*out);
    return DLV_OK;
}

DLV_API void dlv_model_options_free(dlv_model_options *opts) { free(opts); }

DLV_API dlv_status dlv_model_options_set_backend(dlv_model_options *opts, const char *name)
{
    if (!opts || !name)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_model_options_set_backend: NULL argument");
    if (!dlv_backend_name_known(name))
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_model_options_set_backend: unknown backend '%s' "
                         "(expected cpu, cuda, sim or auto)", name);
    strcpy(opts->backend, name);
    return DLV_OK;
}

DLV_API dlv_status dlv_model_options_set_device(dlv_model_options *opts, int device)
{
    if (!opts) return dlv_error(DLV_E_INVALID_ARG, "dlv_model_options_set_device: opts is NULL");
    if (device < 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_model_options_set_device: device %d < 0", device);
    opts->device = device;
    return DLV_OK;
}

DLV_API dlv_status dlv_model_options_set_weight_dtype(dlv_model_options *opts, const char *dtype)
{
    if (!opts || !dtype)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_model_options_set_weight_dtype: NULL argument");
    static const struct {
        const char *name;
        dlv_dtype dt;
    } names[] = {{"auto", DLV_DTYPE_COUNT},
                 {"f32", DLV_DTYPE_F32},
                 {"bf16", DLV_DTYPE_BF16},
                 {"f16", DLV_DTYPE_F16}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(dtype, names[i].name) == 0) {
            opts->weight_dtype = (int)names[i].dt;
            return DLV_OK;
        }
    return dlv_error(DLV_E_INVALID_ARG,
                     "dlv_model_options_set_weight_dtype: unknown dtype '%s' (expected auto, f32, "
                     "bf16 or f16)", dtype);
}

DLV_API dlv_status dlv_session_options_new(dlv_session_options **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_session_options_new: out is NULL");
    *out = malloc(sizeof **out);
    if (!*out) return dlv_error_nomem("session options", sizeof **out);
    dlv_session_options_defaults(*out);
    return DLV_OK;
}

DLV_API void dlv_session_options_free(dlv_session_options *opts) { free(opts); }

DLV_API dlv_status dlv_session_options_set_truncate(dlv_session_options *opts, int truncate)
{
    if (!opts)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_session_options_set_truncate: opts is NULL");
    if (truncate != 0 && truncate != 1)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_session_options_set_truncate: %d is not 0 or 1", truncate);
    opts->truncate = truncate;
    return DLV_OK;
}

DLV_API dlv_status dlv_session_options_set_compute(dlv_session_options *opts, const char *dtype)
{
    if (!opts)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_session_options_set_compute: opts is NULL");
    if (!dtype)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_session_options_set_compute: dtype is NULL");
    if (strcmp(dtype, "f32") == 0)
        opts->compute_bf16 = 0;
    else if (strcmp(dtype, "bf16") == 0)
        opts->compute_bf16 = 1;
    else
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_session_options_set_compute: '%.40s' is not f32 or bf16", dtype);
    return DLV_OK;
}

DLV_API dlv_status dlv_session_options_set_threads(dlv_session_options *opts, int n_threads)
{
    if (!opts)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_session_options_set_threads: opts is NULL");
    if (n_threads < 0 || n_threads > 4096)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_session_options_set_threads: %d threads is outside 0..4096",
                         n_threads);
    opts->n_threads = n_threads;
    return DLV_OK;
}
