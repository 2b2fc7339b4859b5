/* dlv_model_load: the public options, then model/model.c. */
#include "api/options.h"
#include "core/error.h"
#include "model/model.h"

DLV_API dlv_status dlv_model_load(const char *dir, const dlv_model_options *opts,
                                  dlv_model **out)
{
    if (out) *out = NULL;
    if (!dir || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_model_load: NULL argument");
    if (!*dir) return dlv_error(DLV_E_INVALID_ARG, "dlv_model_load: empty directory name");
    dlv_model_options defaults;
    if (!opts) {
        dlv_model_options_defaults(&defaults);
        opts = &defaults;
    }
    return dlv_model_open(dir, opts->backend, opts->device, (dlv_dtype)opts->weight_dtype, out);
}
