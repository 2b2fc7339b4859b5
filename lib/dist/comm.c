/* Communicators (dist/comm.h, the public dlv_comm_* functions): a loaded
 * module (dist/comm_module.h) and its state. */
#include "dist/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/module.h"
#include "dist/comm_module.h"
#include "dlv_build_config.h"

struct dlv_comm {
    void *handle; /* the module's dlopen handle */
    const dlv_comm_module *m;
    void *state;
    int rank, size;
};

static const dlv_comm_host host_table = {
    .abi = DLV_COMM_MODULE_ABI,
    .size = sizeof(dlv_comm_host),
    .error = dlv_error,
};

static const dlv_module_spec mpi_spec = {
    .file = DLV_MPI_MODULE_FILE,
    .env = "DLV_MPI_MODULE",
    .symbol = DLV_COMM_MODULE_SYMBOL,
    .what = "MPI module",
#ifdef DLV_HAVE_MPI
    .hint = "it needs Open MPI's libmpi on the library path",
#else
    .hint = "this build of libdisclvlm has no MPI support (install libopenmpi-dev and "
            "configure with -Dmpi=enabled)",
#endif
};

DLV_API dlv_status dlv_comm_open(const char *kind, dlv_comm **out)
{
    if (out) *out = NULL;
    if (!kind || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_comm_open: NULL argument");
    if (strcmp(kind, "mpi") != 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_comm_open: unknown kind '%s' (expected mpi)",
                         kind);
    dlv_comm *c = calloc(1, sizeof *c);
    if (!c) return dlv_error_nomem("a communicator", sizeof *c);
    char file[4096];
    void *sym = NULL;
    dlv_status st = dlv_module_open(&mpi_spec, &c->handle, &sym, file, sizeof file);
    if (!st) {
        dlv_comm_module_get_fn get = NULL;
        memcpy(&get, &sym, sizeof get); /* POSIX: object to function pointer */
        c->m = get();
        st = c->m ? dlv_module_check_build(file, c->m->lib_version, c->m->abi,
                                           DLV_COMM_MODULE_ABI, c->m->size,
                                           sizeof(dlv_comm_module))
                  : dlv_error(DLV_E_BACKEND, "%s returned no module table", file);
    }
    if (!st) st = c->m->open(&host_table, &c->state, &c->rank, &c->size);
    if (st) {
        dlv_module_close(c->handle);
        free(c);
        return dlv_error_prefix(st, "dlv_comm_open(\"%s\")", kind);
    }
    *out = c;
    return DLV_OK;
}

DLV_API void dlv_comm_free(dlv_comm *comm)
{
    if (!comm) return;
    comm->m->close(comm->state);
    dlv_module_close(comm->handle);
    free(comm);
}

DLV_API dlv_status dlv_comm_rank(const dlv_comm *comm, int *rank, int *size)
{
    if (!comm || !rank || !size) return dlv_error(DLV_E_INVALID_ARG, "dlv_comm_rank: NULL argument");
    *rank = comm->rank;
    *size = comm->size;
    return DLV_OK;
}

DLV_API const char *dlv_comm_describe(const dlv_comm *comm)
{
    return comm ? comm->m->describe(comm->state) : "";
}

DLV_API void dlv_comm_abort(dlv_comm *comm, const char *message, int code)
{
    if (message) fprintf(stderr, "%s\n", message);
    fflush(stderr);
    if (comm) comm->m->abort(comm->state, code);
    exit(code); /* not reached with a communicator */
}

int dlv_comm_rank_of(const dlv_comm *c) { return c ? c->rank : 0; }
int dlv_comm_size_of(const dlv_comm *c) { return c ? c->size : 1; }

dlv_status dlv_comm_sum_f32(dlv_comm *c, float *buf, size_t n)
{
    return c->m->sum_f32(&host_table, c->state, buf, n);
}

DLV_API dlv_status dlv_comm_sum_f64(dlv_comm *c, double *buf, size_t n)
{
    if (!c || (!buf && n)) return dlv_error(DLV_E_INVALID_ARG, "dlv_comm_sum_f64: NULL argument");
    return c->m->sum_f64(&host_table, c->state, buf, n);
}

DLV_API dlv_status dlv_comm_all_gather(dlv_comm *c, const void *send, size_t bytes, void *recv)
{
    if (!c || (bytes && (!send || !recv)))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_comm_all_gather: NULL argument");
    return c->m->all_gather(&host_table, c->state, send, bytes, recv);
}

DLV_API dlv_status dlv_comm_broadcast(dlv_comm *c, void *buf, size_t bytes, int root)
{
    if (!c || (bytes && !buf))
        return dlv_error(DLV_E_INVALID_ARG, "dlv_comm_broadcast: NULL argument");
    if (root < 0 || root >= c->size)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_comm_broadcast: root %d is not a rank (0..%d)",
                         root, c->size - 1);
    return c->m->broadcast(&host_table, c->state, buf, bytes, root);
}
