/* Placeholder: being written. */
#include "backend/backend.h"
#include "core/error.h"
dlv_status dlv_backend_create(const char *name, const dlv_backend_config *cfg, dlv_backend **out)
{ (void)name; (void)cfg; (void)out; return dlv_error(DLV_E_NOT_IMPLEMENTED, "placeholder"); }
void dlv_backend_destroy(dlv_backend *be) { (void)be; }
dlv_status dlv_matmul(dlv_backend *be, const dlv_matmul_args *args)
{ (void)be; (void)args; return dlv_error(DLV_E_NOT_IMPLEMENTED, "placeholder"); }
