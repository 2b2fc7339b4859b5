/* The interface between libdisclvlm and its CUDA backend module
 * (libdisclvlm-cuda.so), which the library loads with dlopen only when a
 * cuda backend is asked for (backend/cuda_loader.c), so that a process that
 * computes on the CPU never maps the CUDA runtime or cuBLAS.
 *
 * The module exports one symbol, dlv_cuda_module_get, returning a constant
 * table. It does not link against libdisclvlm (whose internal functions are
 * hidden): what it needs from the library, recording an error message in the
 * caller's thread-local last error, comes in the host table passed to every
 * call. Both tables are constant; neither side keeps global state.
 *
 * The module shares the backend's struct layouts (backend/backend.h), so it
 * must come from the same build: the loader checks the library version
 * string, this interface's version and the ops table's version and size. */
#ifndef DLV_BACKEND_CUDA_MODULE_H
#define DLV_BACKEND_CUDA_MODULE_H

#include <stdint.h>

#include "backend/backend.h"
#include "core/error.h"

/* Bumped when either table below changes. */
#define DLV_CUDA_MODULE_ABI 1

/* The file the loader looks for next to libdisclvlm.so, then on the
 * library search path; DLV_CUDA_MODULE (a path) overrides both. */
#define DLV_CUDA_MODULE_FILE "libdisclvlm-cuda.so"
#define DLV_CUDA_MODULE_SYMBOL "dlv_cuda_module_get"

/* What the library lends the module. */
typedef struct dlv_cuda_host {
    uint32_t abi;  /* DLV_CUDA_MODULE_ABI */
    uint32_t size; /* sizeof(dlv_cuda_host) */
    /* The library's dlv_error: records the message for the calling thread
     * and returns status. */
    dlv_status (*error)(dlv_status status, const char *fmt, ...) DLV_PRINTF(2, 3);
    const char *(*dtype_name)(dlv_dtype dt);
} dlv_cuda_host;

/* What the module offers. */
typedef struct dlv_cuda_module {
    uint32_t abi;              /* DLV_CUDA_MODULE_ABI it was built with */
    uint32_t size;             /* sizeof(dlv_cuda_module) it was built with */
    const char *lib_version;   /* the library version it was built with */
    uint32_t ops_version;      /* DLV_BACKEND_OPS_VERSION it was built with */
    uint32_t ops_size;         /* sizeof(dlv_backend_ops) it was built with */
    /* The number of CUDA devices (> 0), or DLV_E_BACKEND with the runtime's
     * reason (no driver, no device). */
    dlv_status (*device_count)(const dlv_cuda_host *host, int *out);
    /* A backend on cfg->device; the host table must outlive it. */
    dlv_status (*create)(const dlv_cuda_host *host, const dlv_backend_config *cfg,
                         dlv_backend **out);
} dlv_cuda_module;

typedef const dlv_cuda_module *(*dlv_cuda_module_get_fn)(void);

#endif
