/* Adapter directories (PEFT LoRA + soft prompts): arrive with training. */
#include "api/session.h"
#include "core/error.h"

DLV_API dlv_status dlv_adapter_load(dlv_session *session, const char *dir)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_adapter_load: NULL argument");
    return dlv_error(DLV_E_NOT_IMPLEMENTED,
                     "dlv_adapter_load: %s: adapters are not implemented in libdisclvlm %s",
                     dir, DLV_VERSION_STRING);
}

DLV_API dlv_status dlv_adapter_save(dlv_session *session, const char *dir)
{
    if (!session || !dir)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_adapter_save: NULL argument");
    return dlv_error(DLV_E_NOT_IMPLEMENTED,
                     "dlv_adapter_save: %s: adapters are not implemented in libdisclvlm %s",
                     dir, DLV_VERSION_STRING);
}
