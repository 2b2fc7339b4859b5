/* Loads the CUDA backend module (backend/cuda_module.h) when a cuda backend
 * is asked for: the library itself never links the CUDA runtime or cuBLAS,
 * so a CPU-only process pays nothing for them (they map ~220 MB and take
 * ~0.3 s to load).
 *
 * Where it is looked for and how it is opened: core/module.h
 * (DLV_CUDA_MODULE, then beside libdisclvlm.so, then the search path). Each
 * backend instance holds one reference to the module and gives it back when
 * destroyed. */
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda_module.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/module.h"

static const dlv_cuda_host host_table = {
    .abi = DLV_CUDA_MODULE_ABI,
    .size = sizeof(dlv_cuda_host),
    .error = dlv_error,
    .dtype_name = dlv_dtype_name,
};

static const dlv_module_spec spec = {
    .file = DLV_CUDA_MODULE_FILE,
    .env = "DLV_CUDA_MODULE",
    .symbol = DLV_CUDA_MODULE_SYMBOL,
    .what = "CUDA backend module",
#ifdef DLV_HAVE_CUDA
    .hint = "it needs the CUDA 13 runtime and cuBLAS libraries on the library path",
#else
    .hint = "this build of libdisclvlm has no CUDA support (configure with -Dcuda=enabled)",
#endif
};

enum { PATH_CAP = 4096 };

/* The module's handle and table, checked against this build. file names
 * the module in messages. */
static dlv_status open_module(void **h, const dlv_cuda_module **out)
{
    char file[PATH_CAP];
    void *sym = NULL;
    dlv_status st = dlv_module_open(&spec, h, &sym, file, sizeof file);
    if (st) return st;
    dlv_cuda_module_get_fn get = NULL;
    memcpy(&get, &sym, sizeof get); /* POSIX: object to function pointer */
    const dlv_cuda_module *m = get();
    if (!m)
        st = dlv_error(DLV_E_BACKEND, "%s returned no module table", file);
    else
        st = dlv_module_check_build(file, m->lib_version, m->abi, DLV_CUDA_MODULE_ABI, m->size,
                                    sizeof(dlv_cuda_module));
    /* The backend's own table too (it is what the registry calls). */
    if (!st && (m->ops_version != DLV_BACKEND_OPS_VERSION ||
                m->ops_size != sizeof(dlv_backend_ops) || !m->device_count || !m->create))
        st = dlv_error(DLV_E_BACKEND, "%s was built for backend ops %u/%u, not for this library's "
                       "%u/%zu: install the module of the same build", file,
                       (unsigned)m->ops_version, (unsigned)m->ops_size,
                       (unsigned)DLV_BACKEND_OPS_VERSION, sizeof(dlv_backend_ops));
    if (st) {
        dlv_module_close(*h);
        return st;
    }
    *out = m;
    return DLV_OK;
}

dlv_status dlv_cuda_module_backend(const dlv_backend_config *cfg, dlv_backend **out)
{
    void *h = NULL;
    const dlv_cuda_module *m = NULL;
    dlv_status st = open_module(&h, &m);
    if (st) return st;
    st = m->create(&host_table, cfg, out);
    if (st) {
        dlv_module_close(h);
        return st;
    }
    (*out)->module = h;
    return DLV_OK;
}

int dlv_cuda_module_has_device(void)
{
    void *h = NULL;
    const dlv_cuda_module *m = NULL;
    if (open_module(&h, &m)) return 0;
    int n = 0;
    dlv_status st = m->device_count(&host_table, &n);
    dlv_module_close(h);
    return st == DLV_OK && n > 0;
}

void dlv_cuda_module_release(void *module)
{
    dlv_module_close(module);
}
