/* Stand-ins for libdisclvlm-cuda.so (backend/cuda_module.h), built three
 * times for tests/backend/test_cuda_loader.c, which loads them through
 * DLV_CUDA_MODULE on a machine without a GPU:
 *   FAKE_WRONG_VERSION  built for another library version: refused;
 *   FAKE_NO_DEVICE      reports no device: "cuda" fails with the module's
 *                       message, "auto" falls back to the CPU;
 *   FAKE_CREATE_FAILS   one device that cannot be opened: "cuda" and "auto"
 *                       both fail with the module's message (auto hides no
 *                       error once a device exists).
 * The messages go through the host table, so they prove that the module's
 * errors reach the caller's dlv_last_error. */
#include "backend/cuda_module.h"

static dlv_status fake_device_count(const dlv_cuda_host *host, int *out)
{
#ifdef FAKE_NO_DEVICE
    *out = 0;
    return host->error(DLV_E_BACKEND, "fake module: no device (%s)",
                       host->dtype_name(DLV_DTYPE_BF16));
#else
    (void)host;
    *out = 1;
    return DLV_OK;
#endif
}

static dlv_status fake_create(const dlv_cuda_host *host, const dlv_backend_config *cfg,
                              dlv_backend **out)
{
    *out = NULL;
    int n = 0;
    dlv_status st = fake_device_count(host, &n); /* as the real module's create */
    if (st) return st;
    return host->error(DLV_E_BACKEND, "fake module: device %d cannot be opened", cfg->device);
}

static const dlv_cuda_module table = {
    .abi = DLV_CUDA_MODULE_ABI,
    .size = sizeof(dlv_cuda_module),
#ifdef FAKE_WRONG_VERSION
    .lib_version = "0.0.0-other",
#else
    .lib_version = DLV_VERSION_STRING_BUILD,
#endif
    .ops_version = DLV_BACKEND_OPS_VERSION,
    .ops_size = sizeof(dlv_backend_ops),
    .device_count = fake_device_count,
    .create = fake_create,
};

__attribute__((visibility("default"))) const dlv_cuda_module *dlv_cuda_module_get(void);
const dlv_cuda_module *dlv_cuda_module_get(void)
{
    return &table;
}
