/* The backend registry: maps a name to a constructor and checks that the
 * ops table it returns is one this build can call. */
#include <stdbool.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"

/* "cpu", "cpu,sim", "cpu,sim,cuda", ... (meson.build). */
#define DLV_BACKEND_LIST DLV_BACKENDS_BUILT

/* A table built for another version or size, or with a memory slot or
 * matmul missing, would be called out of bounds or through NULL: reject it
 * rather than trust it. The compute slots after matmul are optional: their
 * wrappers (backend/ops.c) report DLV_E_UNSUPPORTED for a NULL one. */
static bool ops_table_ok(const dlv_backend_ops *ops)
{
    return ops && ops->version == DLV_BACKEND_OPS_VERSION &&
           ops->size == sizeof(dlv_backend_ops) && ops->name &&
           DLV_BACKEND_HAS(ops, destroy) && DLV_BACKEND_HAS(ops, describe) &&
           DLV_BACKEND_HAS(ops, buffer_alloc) && DLV_BACKEND_HAS(ops, buffer_free) &&
           DLV_BACKEND_HAS(ops, upload) && DLV_BACKEND_HAS(ops, download) &&
           DLV_BACKEND_HAS(ops, memset_zero) && DLV_BACKEND_HAS(ops, synchronize) &&
           DLV_BACKEND_HAS(ops, matmul);
}

static dlv_status create_named(const char *name, const dlv_backend_config *cfg,
                               dlv_backend **out)
{
    if (strcmp(name, "cpu") == 0) return dlv_cpu_backend_create(cfg, out);
#ifdef DLV_HAVE_SIM
    if (strcmp(name, "sim") == 0) return dlv_sim_backend_create(cfg, out);
#else
    if (strcmp(name, "sim") == 0)
        return dlv_error(DLV_E_BACKEND, "this build has no sim backend (a test backend: "
                                        "configure with -Dsim=enabled or -Dtests=true)");
#endif
    /* Loaded on demand (backend/cuda_loader.c), so "cuda" is tried even in
     * a build without the module: one installed beside the library of the
     * same build works, and otherwise the message says what is missing. */
    if (strcmp(name, "cuda") == 0) return dlv_cuda_module_backend(cfg, out);
    if (strcmp(name, "auto") == 0) {
        /* auto prefers a GPU but never fails for the lack of one; once a
         * device exists, errors on it (bad ordinal, no memory) are reported
         * rather than hidden behind a silent CPU fallback. */
        if (dlv_cuda_module_has_device()) return dlv_cuda_module_backend(cfg, out);
        return dlv_cpu_backend_create(cfg, out);
    }
    return dlv_error(DLV_E_BACKEND, "unknown backend (this build has: %s, auto)",
                     DLV_BACKEND_LIST);
}

dlv_status dlv_backend_create(const char *name, const dlv_backend_config *cfg,
                              dlv_backend **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_backend_create: out is NULL");
    *out = NULL;
    if (!name) return dlv_error(DLV_E_INVALID_ARG, "dlv_backend_create: name is NULL");
    const dlv_backend_config defaults = {.device = 0, .n_threads = 0};
    if (!cfg) cfg = &defaults;
    if (cfg->n_threads < 0)
        return dlv_error(DLV_E_INVALID_ARG, "backend '%s': n_threads %d is negative",
                         name, cfg->n_threads);

    dlv_backend *be = NULL;
    dlv_status st = create_named(name, cfg, &be);
    if (st != DLV_OK) return dlv_error_prefix(st, "backend '%s'", name);
    if (!be || !ops_table_ok(be->ops)) {
        if (be && be->ops && be->ops->destroy) dlv_backend_destroy(be);
        return dlv_error(DLV_E_BACKEND,
                         "backend '%s': ops table does not match this build "
                         "(want version %d, size %zu)",
                         name, DLV_BACKEND_OPS_VERSION, sizeof(dlv_backend_ops));
    }
    *out = be;
    return DLV_OK;
}

void dlv_backend_destroy(dlv_backend *be)
{
    if (!be) return;
    void *module = be->module; /* the code of destroy lives there */
    be->ops->destroy(be);
    dlv_cuda_module_release(module);
}

int dlv_backend_built(const char *name)
{
    if (!name) return 0;
#ifdef DLV_HAVE_CUDA
    if (strcmp(name, "cuda") == 0) return 1;
#endif
#ifdef DLV_HAVE_SIM
    if (strcmp(name, "sim") == 0) return 1;
#endif
    return strcmp(name, "cpu") == 0;
}

int dlv_backend_name_known(const char *name)
{
    static const char *const names[] = {"cpu", "sim", "cuda", "auto"};
    for (size_t i = 0; name && i < sizeof names / sizeof *names; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

uint32_t dlv_backend_caps(const dlv_backend *be)
{
    return be ? be->ops->caps : 0;
}

int dlv_backend_same_memory(const dlv_backend *a, const dlv_backend *b)
{
    /* One ops table per kind of backend: instances of a kind share memory on
     * one device (the CPU's is the host's). */
    return a && b && a->ops == b->ops && a->device == b->device;
}

const char *dlv_backend_list(void)
{
    return DLV_BACKEND_LIST;
}

const char *dlv_backend_describe(const dlv_backend *be)
{
    return be ? be->ops->describe(be) : "";
}

dlv_status dlv_backend_synchronize(dlv_backend *be)
{
    if (!be) return dlv_error(DLV_E_INVALID_ARG, "dlv_backend_synchronize: backend is NULL");
    return be->ops->synchronize(be);
}
