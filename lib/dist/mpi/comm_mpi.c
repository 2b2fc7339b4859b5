/* The MPI communicator module (libdisclvlm-mpi.so; dist/comm_module.h):
 * MPI_COMM_WORLD, duplicated so that the library's messages never mix with
 * the program's, with MPI_ERRORS_RETURN so that a failure becomes a status
 * and a message instead of MPI's default abort. Links only libmpi.
 *
 * Sums are MPI_Reduce to rank 0 then MPI_Bcast rather than MPI_Allreduce:
 * an all-reduce may add in a different order on different ranks, and the
 * ranks' parameters must stay bit-equal step after step. Counts are int in
 * MPI: large buffers go in pieces of at most 2^30 elements. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm_module.h"
#include "dlv_build_config.h"

#define PIECE ((size_t)1 << 30)

typedef struct mpi_state {
    MPI_Comm comm;
    int initialised_here; /* MPI_Init_thread was ours: MPI_Finalize is too */
    int rank;
    char desc[256];
} mpi_state;

static dlv_status mpi_fail(const dlv_comm_host *h, int code, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", code);
    return h->error(DLV_E_BACKEND, "%s: %s", what, msg);
}

static dlv_status mpi_open(const dlv_comm_host *h, void **state, int *rank, int *size)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) return h->error(DLV_E_BACKEND, "MPI was already finalized in this process");
    mpi_state *s = calloc(1, sizeof *s);
    if (!s) return h->error(DLV_E_NOMEM, "out of memory allocating %zu bytes for MPI", sizeof *s);
    int rc = MPI_SUCCESS;
    if (!inited) {
        /* The library calls MPI from the thread that computes, one call at
         * a time. */
        int provided = 0;
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) {
            free(s);
            return h->error(DLV_E_BACKEND, "MPI_Init_thread failed (code %d)", rc);
        }
        s->initialised_here = 1;
    }
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &s->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(s->comm, rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(s->comm, size);
    if (rc != MPI_SUCCESS) {
        dlv_status st = mpi_fail(h, rc, "MPI_COMM_WORLD");
        if (s->initialised_here) MPI_Finalize();
        free(s);
        return st;
    }
    s->rank = *rank;
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(lib, &len) != MPI_SUCCESS) snprintf(lib, sizeof lib, "MPI");
    char *nl = strchr(lib, '\n');
    if (nl) *nl = '\0';
    char *comma = strchr(lib, ',');
    if (comma) *comma = '\0';
    snprintf(s->desc, sizeof s->desc, "%.200s, %d ranks", lib, *size);
    *state = s;
    return DLV_OK;
}

static void mpi_close(void *state)
{
    mpi_state *s = state;
    if (!s) return;
    MPI_Comm_free(&s->comm);
    if (s->initialised_here) MPI_Finalize();
    free(s);
}

static dlv_status sum_typed(const dlv_comm_host *h, mpi_state *s, void *buf, size_t n,
                            MPI_Datatype type, size_t es)
{
    for (size_t off = 0; off < n; off += PIECE) {
        int count = (int)(n - off < PIECE ? n - off : PIECE);
        char *p = (char *)buf + off * es;
        int rc = s->rank == 0 ? MPI_Reduce(MPI_IN_PLACE, p, count, type, MPI_SUM, 0, s->comm)
                              : MPI_Reduce(p, NULL, count, type, MPI_SUM, 0, s->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(h, rc, "MPI_Reduce (sum)");
        rc = MPI_Bcast(p, count, type, 0, s->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(h, rc, "MPI_Bcast (sum)");
    }
    return DLV_OK;
}

static dlv_status mpi_sum_f32(const dlv_comm_host *h, void *state, float *buf, size_t n)
{
    return sum_typed(h, state, buf, n, MPI_FLOAT, sizeof *buf);
}

static dlv_status mpi_sum_f64(const dlv_comm_host *h, void *state, double *buf, size_t n)
{
    return sum_typed(h, state, buf, n, MPI_DOUBLE, sizeof *buf);
}

static dlv_status mpi_all_gather(const dlv_comm_host *h, void *state, const void *send,
                                 size_t bytes, void *recv)
{
    mpi_state *s = state;
    if (bytes > (size_t)INT_MAX)
        return h->error(DLV_E_INVALID_ARG, "all-gather of %zu bytes per rank: more than MPI's "
                        "int count", bytes);
    int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, s->comm);
    return rc == MPI_SUCCESS ? DLV_OK : mpi_fail(h, rc, "MPI_Allgather");
}

static dlv_status mpi_broadcast(const dlv_comm_host *h, void *state, void *buf, size_t bytes,
                                int root)
{
    mpi_state *s = state;
    for (size_t off = 0; off < bytes; off += PIECE) {
        int count = (int)(bytes - off < PIECE ? bytes - off : PIECE);
        int rc = MPI_Bcast((char *)buf + off, count, MPI_BYTE, root, s->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(h, rc, "MPI_Bcast");
    }
    return DLV_OK;
}

static void mpi_abort(void *state, int code)
{
    mpi_state *s = state;
    MPI_Abort(s ? s->comm : MPI_COMM_WORLD, code);
}

static const char *mpi_describe(void *state)
{
    mpi_state *s = state;
    return s->desc;
}

static const dlv_comm_module table = {
    .abi = DLV_COMM_MODULE_ABI,
    .size = sizeof(dlv_comm_module),
    .lib_version = DLV_VERSION_STRING_BUILD,
    .name = "mpi",
    .open = mpi_open,
    .close = mpi_close,
    .sum_f32 = mpi_sum_f32,
    .sum_f64 = mpi_sum_f64,
    .all_gather = mpi_all_gather,
    .broadcast = mpi_broadcast,
    .abort = mpi_abort,
    .describe = mpi_describe,
};

/* The module's one exported symbol. */
__attribute__((visibility("default"))) const dlv_comm_module *dlv_comm_module_get(void);
const dlv_comm_module *dlv_comm_module_get(void)
{
    return &table;
}
