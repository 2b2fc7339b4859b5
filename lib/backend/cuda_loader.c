/* Loads the CUDA backend module (backend/cuda_module.h) when a cuda backend
 * is asked for: the library itself never links the CUDA runtime or cuBLAS,
 * so a CPU-only process pays nothing for them (they map ~220 MB and take
 * ~0.3 s to load).
 *
 * Where: DLV_CUDA_MODULE (a path) if set; else libdisclvlm-cuda.so in the
 * directory of the file holding this code (libdisclvlm.so, where meson
 * builds and installs the module), then the dynamic linker's search path.
 * Each backend instance holds one reference to the module (dlopen counts
 * them) and gives it back when destroyed. The module is opened with
 * RTLD_NODELETE: the CUDA runtime registers exit handlers and must never be
 * unmapped under them. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda_module.h"
#include "core/dtype.h"
#include "core/error.h"

static const dlv_cuda_host host_table = {
    .abi = DLV_CUDA_MODULE_ABI,
    .size = sizeof(dlv_cuda_host),
    .error = dlv_error,
    .dtype_name = dlv_dtype_name,
};

enum { PATH_CAP = 4096, ERR_CAP = 512 };

static void copy_dlerror(char *dst, size_t cap)
{
    const char *e = dlerror();
    snprintf(dst, cap, "%s", e ? e : "unknown error");
}

/* dir(this library)/DLV_CUDA_MODULE_FILE into path; 0 if unknown. */
static int beside_library(char *path, size_t cap)
{
    Dl_info info;
    if (!dladdr(&host_table, &info) || !info.dli_fname) return 0;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return 0;
    int n = snprintf(path, cap, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname,
                     DLV_CUDA_MODULE_FILE);
    return n > 0 && (size_t)n < cap;
}

/* dlopen's handle of the module and the name it was opened by (where, for
 * messages), or DLV_E_BACKEND saying where it looked. */
static dlv_status open_module(void **out, char *where, size_t where_cap)
{
    const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE;
    const char *env = getenv("DLV_CUDA_MODULE");
    char err[ERR_CAP], err2[ERR_CAP], path[PATH_CAP];
    if (env && *env) {
        *out = dlopen(env, flags);
        snprintf(where, where_cap, "%s", env);
        if (*out) return DLV_OK;
        copy_dlerror(err, sizeof err);
        return dlv_error(DLV_E_BACKEND, "cannot load the CUDA module DLV_CUDA_MODULE=%s: %s", env,
                         err);
    }
    int have_path = beside_library(path, sizeof path);
    if (have_path) {
        *out = dlopen(path, flags);
        snprintf(where, where_cap, "%s", path);
        if (*out) return DLV_OK;
        copy_dlerror(err, sizeof err);
    }
    *out = dlopen(DLV_CUDA_MODULE_FILE, flags);
    snprintf(where, where_cap, "%s", DLV_CUDA_MODULE_FILE);
    if (*out) return DLV_OK;
    copy_dlerror(err2, sizeof err2);
#ifdef DLV_HAVE_CUDA
    const char *hint = "it needs the CUDA 13 runtime and cuBLAS libraries on the library path";
#else
    const char *hint = "this build of libdisclvlm has no CUDA support (configure with "
                       "-Dcuda=enabled)";
#endif
    return dlv_error(DLV_E_BACKEND, "cannot load the CUDA backend module %s (%s%s%s); %s",
                     DLV_CUDA_MODULE_FILE, have_path ? err : "", have_path ? "; " : "", err2,
                     hint);
}

/* The module's table, checked against this build; on failure the handle is
 * released. file names the module in messages. */
static dlv_status module_table(void *h, const char *file, const dlv_cuda_module **out)
{
    void *sym = dlsym(h, DLV_CUDA_MODULE_SYMBOL);
    dlv_cuda_module_get_fn get = NULL;
    if (sym) memcpy(&get, &sym, sizeof get); /* POSIX: object to function pointer */
    const dlv_cuda_module *m = get ? get() : NULL;
    dlv_status st = DLV_OK;
    if (!m)
        st = dlv_error(DLV_E_BACKEND, "%s is not a libdisclvlm CUDA module (no %s)", file,
                       DLV_CUDA_MODULE_SYMBOL);
    else if (m->abi != DLV_CUDA_MODULE_ABI || m->size != sizeof(dlv_cuda_module) ||
             !m->lib_version || strcmp(m->lib_version, DLV_VERSION_STRING_BUILD) != 0 ||
             m->ops_version != DLV_BACKEND_OPS_VERSION || m->ops_size != sizeof(dlv_backend_ops) ||
             !m->device_count || !m->create)
        st = dlv_error(DLV_E_BACKEND,
                       "%s was built for libdisclvlm %s (module interface %u, ops %u/%u), not "
                       "for this library %s (%u, ops %u/%zu): install the module of the same "
                       "build", file, m->lib_version ? m->lib_version : "?", (unsigned)m->abi,
                       (unsigned)m->ops_version, (unsigned)m->ops_size, DLV_VERSION_STRING_BUILD,
                       (unsigned)DLV_CUDA_MODULE_ABI, (unsigned)DLV_BACKEND_OPS_VERSION,
                       sizeof(dlv_backend_ops));
    if (st) {
        dlclose(h);
        return st;
    }
    *out = m;
    return DLV_OK;
}

dlv_status dlv_cuda_module_backend(const dlv_backend_config *cfg, dlv_backend **out)
{
    void *h = NULL;
    const dlv_cuda_module *m = NULL;
    char where[PATH_CAP];
    dlv_status st = open_module(&h, where, sizeof where);
    if (!st) st = module_table(h, where, &m);
    if (st) return st;
    st = m->create(&host_table, cfg, out);
    if (st) {
        dlclose(h);
        return st;
    }
    (*out)->module = h;
    return DLV_OK;
}

int dlv_cuda_module_has_device(void)
{
    void *h = NULL;
    const dlv_cuda_module *m = NULL;
    char where[PATH_CAP];
    if (open_module(&h, where, sizeof where) || module_table(h, where, &m)) return 0;
    int n = 0;
    dlv_status st = m->device_count(&host_table, &n);
    dlclose(h);
    return st == DLV_OK && n > 0;
}

void dlv_cuda_module_release(void *module)
{
    if (module) dlclose(module);
}
