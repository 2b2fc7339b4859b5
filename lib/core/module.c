/* See module.h. */
#include "core/module.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "dlv_build_config.h"

enum { PATH_CAP = 4096, ERR_CAP = 512 };

/* A constant object of this file: dladdr on it names the file holding the
 * library's code (libdisclvlm.so, or a program linked statically). */
static const char anchor = 0;

static void copy_dlerror(char *dst, size_t cap)
{
    const char *e = dlerror();
    snprintf(dst, cap, "%s", e ? e : "unknown error");
}

/* dir(this library)/file into path; 0 if unknown. */
static int beside_library(const char *file, char *path, size_t cap)
{
    Dl_info info;
    if (!dladdr(&anchor, &info) || !info.dli_fname) return 0;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return 0;
    int n = snprintf(path, cap, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, file);
    return n > 0 && (size_t)n < cap;
}

static dlv_status open_file(const dlv_module_spec *spec, void **out, char *where, size_t cap)
{
    const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE;
    const char *env = getenv(spec->env);
    char err[ERR_CAP], err2[ERR_CAP], path[PATH_CAP];
    if (env && *env) {
        *out = dlopen(env, flags);
        snprintf(where, cap, "%s", env);
        if (*out) return DLV_OK;
        copy_dlerror(err, sizeof err);
        return dlv_error(DLV_E_BACKEND, "cannot load the %s %s=%s: %s", spec->what, spec->env, env,
                         err);
    }
    int have_path = beside_library(spec->file, path, sizeof path);
    if (have_path) {
        *out = dlopen(path, flags);
        snprintf(where, cap, "%s", path);
        if (*out) return DLV_OK;
        copy_dlerror(err, sizeof err);
    }
    *out = dlopen(spec->file, flags);
    snprintf(where, cap, "%s", spec->file);
    if (*out) return DLV_OK;
    copy_dlerror(err2, sizeof err2);
    return dlv_error(DLV_E_BACKEND, "cannot load the %s %s (%s%s%s); %s", spec->what, spec->file,
                     have_path ? err : "", have_path ? "; " : "", err2, spec->hint);
}

dlv_status dlv_module_open(const dlv_module_spec *spec, void **handle, void **entry, char *where,
                           size_t cap)
{
    *handle = *entry = NULL;
    dlv_status st = open_file(spec, handle, where, cap);
    if (st) return st;
    *entry = dlsym(*handle, spec->symbol);
    if (*entry) return DLV_OK;
    dlclose(*handle);
    *handle = NULL;
    return dlv_error(DLV_E_BACKEND, "%s is not a libdisclvlm %s (no %s)", where, spec->what,
                     spec->symbol);
}

void dlv_module_close(void *handle)
{
    if (handle) dlclose(handle);
}

dlv_status dlv_module_check_build(const char *file, const char *lib_version, uint32_t abi,
                                  uint32_t want_abi, size_t size, size_t want_size)
{
    if (lib_version && strcmp(lib_version, DLV_VERSION_STRING_BUILD) == 0 && abi == want_abi &&
        size == want_size)
        return DLV_OK;
    return dlv_error(DLV_E_BACKEND, "%s was built for libdisclvlm %s (module interface %u, table "
                     "of %zu bytes), not for this library %s (%u, %zu bytes): install the module "
                     "of the same build", file, lib_version ? lib_version : "?", (unsigned)abi,
                     size, DLV_VERSION_STRING_BUILD, (unsigned)want_abi, want_size);
}
