/* Placeholder: being written. */
#include "model/model.h"
#include "core/error.h"
DLV_API dlv_status dlv_model_load(const char *dir, const dlv_model_options *opts, dlv_model **out)
{ (void)dir; (void)opts; (void)out; return dlv_error(DLV_E_NOT_IMPLEMENTED, "placeholder"); }
DLV_API void dlv_model_free(dlv_model *model) { (void)model; }
DLV_API dlv_status dlv_model_embed_dim(const dlv_model *model, size_t *out)
{ (void)model; (void)out; return dlv_error(DLV_E_NOT_IMPLEMENTED, "placeholder"); }
DLV_API dlv_status dlv_model_describe(const dlv_model *model, char *buf, size_t cap, size_t *needed)
{ (void)model; (void)buf; (void)cap; (void)needed; return dlv_error(DLV_E_NOT_IMPLEMENTED, "placeholder"); }
dlv_backend *dlv_model_backend(const dlv_model *model) { (void)model; return NULL; }
const dlv_llava_config *dlv_model_config(const dlv_model *model) { (void)model; return NULL; }
