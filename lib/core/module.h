/* Optional parts of the library that live in their own shared modules
 * (the CUDA backend, the MPI communicator), loaded with dlopen only when
 * asked for, so that the library itself links none of their dependencies.
 *
 * Where a module is looked for: the path in its environment variable if
 * set (then nowhere else); the file name in the directory of libdisclvlm.so
 * (where meson builds and installs modules); the dynamic linker's search
 * path. Modules are opened RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE: runtimes
 * such as CUDA's and MPI's register exit handlers and must never be
 * unmapped under them. Each user holds one reference (dlv_module_close). */
#ifndef DLV_CORE_MODULE_H
#define DLV_CORE_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

typedef struct dlv_module_spec {
    const char *file;   /* "libdisclvlm-cuda.so" */
    const char *env;    /* "DLV_CUDA_MODULE" */
    const char *symbol; /* the entry point, "dlv_cuda_module_get" */
    const char *what;   /* "CUDA backend module", for messages */
    const char *hint;   /* appended to the not-found message */
} dlv_module_spec;

/* Opens the module and returns its handle and entry point (the symbol's
 * address, to be cast by the caller); where (cap bytes) receives the name it
 * was opened by. DLV_E_BACKEND naming where it looked and why it failed. */
dlv_status dlv_module_open(const dlv_module_spec *spec, void **handle, void **entry, char *where,
                           size_t cap);
void dlv_module_close(void *handle);

/* A module shares the library's struct layouts, so it must come from the
 * same build: DLV_OK if its table says so (the library version string, the
 * interface version abi and the table's size), else DLV_E_BACKEND naming
 * file and both builds. lib_version may be NULL (a broken table). */
dlv_status dlv_module_check_build(const char *file, const char *lib_version, uint32_t abi,
                                  uint32_t want_abi, size_t size, size_t want_size);

#endif
