/* Data-parallel runs of the CLI's commands (train, eval, encode-image,
 * encode-text) under mpirun or srun: joining the job, splitting work into
 * contiguous shards, gathering rows back in input order. */
#ifndef DLV_CLI_DIST_H
#define DLV_CLI_DIST_H

#include <stddef.h>

#include "disclvlm.h"

typedef struct cli_dist {
    dlv_comm *comm; /* NULL: one process */
    int rank, world;
} cli_dist;

#define CLI_DIST_INIT {NULL, 0, 1}

/* --dist: "auto" (join when started by an MPI launcher), "mpi", "none".
 * 1 if v is one of them. */
int cli_dist_valid(const char *v);
/* Joins the job as --dist says; a world of one is left as one process.
 * 0, or 1 after printing the error. */
int cli_dist_open(const char *cmd, const char *mode, cli_dist *d);
/* Items [*lo, *hi) of n for this rank (contiguous, in rank order). */
void cli_dist_shard(const cli_dist *d, size_t n, size_t *lo, size_t *hi);
/* Each rank filled rows [lo, hi) of rows [n, dim] (cli_dist_shard); after
 * this every rank holds all n rows. 0, or 1 after printing the error. */
int cli_dist_gather_rows(const char *cmd, const cli_dist *d, float *rows, size_t n, size_t dim);
/* After a failure (rc not 0, 2 or 130) on this rank: ends every rank of the
 * job naming this one (its own message was printed). */
void cli_dist_fail(const char *cmd, const cli_dist *d, int rc);
void cli_dist_close(cli_dist *d);

#define CLI_DIST_HELP                                                                     \
    "  --dist auto|mpi|none data-parallel over the ranks of an MPI job (default auto:\n"  \
    "                     when started by mpirun or srun)\n"

#endif
