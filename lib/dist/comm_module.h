/* The interface between libdisclvlm and a communicator module (today
 * libdisclvlm-mpi.so, lib/dist/mpi/), loaded on demand (core/module.h) so
 * that the library links no MPI. Like the CUDA module (backend/
 * cuda_module.h), the module exports one symbol returning a constant table,
 * does not link libdisclvlm, and records errors through the host table. */
#ifndef DLV_DIST_COMM_MODULE_H
#define DLV_DIST_COMM_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define DLV_COMM_MODULE_ABI 1
#define DLV_MPI_MODULE_FILE "libdisclvlm-mpi.so"
#define DLV_COMM_MODULE_SYMBOL "dlv_comm_module_get"

typedef struct dlv_comm_host {
    uint32_t abi, size;
    dlv_status (*error)(dlv_status status, const char *fmt, ...) DLV_PRINTF(2, 3);
} dlv_comm_host;

/* Every collective is called by every rank in the same order, with the
 * same sizes; buffers are host memory. Results are identical on every rank
 * (the sums are reduced to rank 0 in one order, then broadcast), so ranks
 * that start equal stay bit-equal. */
typedef struct dlv_comm_module {
    uint32_t abi, size;
    const char *lib_version;
    const char *name; /* "mpi" */
    /* Joins the world (initialising the runtime if the program has not):
     * *state, this rank and the number of ranks. */
    dlv_status (*open)(const dlv_comm_host *h, void **state, int *rank, int *size);
    void (*close)(void *state);
    dlv_status (*sum_f32)(const dlv_comm_host *h, void *state, float *buf, size_t n);
    dlv_status (*sum_f64)(const dlv_comm_host *h, void *state, double *buf, size_t n);
    /* recv [size * bytes] = every rank's send [bytes], in rank order. */
    dlv_status (*all_gather)(const dlv_comm_host *h, void *state, const void *send, size_t bytes,
                             void *recv);
    dlv_status (*broadcast)(const dlv_comm_host *h, void *state, void *buf, size_t bytes,
                            int root);
    /* Ends every rank's process with code, after this rank's message went
     * to stderr: what a failing rank does so that no other rank waits. */
    void (*abort)(void *state, int code);
    /* The library the module was built against ("Open MPI v4.1.4, ..."). */
    const char *(*describe)(void *state);
} dlv_comm_module;

typedef const dlv_comm_module *(*dlv_comm_module_get_fn)(void);

#endif
