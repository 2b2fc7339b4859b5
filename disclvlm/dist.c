/* See dist.h. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_dist_valid(const char *v)
{
    return !strcmp(v, "auto") || !strcmp(v, "mpi") || !strcmp(v, "none");
}

/* Started by an MPI launcher (Open MPI's mpirun, MPICH's or Slurm's PMI)? */
static int under_mpi_launcher(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                       "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int cli_dist_open(const char *cmd, const char *mode, cli_dist *d)
{
    if (!strcmp(mode, "none") || (!strcmp(mode, "auto") && !under_mpi_launcher())) return 0;
    if (dlv_comm_open("mpi", &d->comm) != DLV_OK ||
        dlv_comm_rank(d->comm, &d->rank, &d->world) != DLV_OK) {
        fprintf(stderr, "disclvlm: %s: --dist: %s\n", cmd, dlv_last_error());
        return 1;
    }
    if (d->world == 1) { /* one rank: exactly the single-process path */
        cli_dist_close(d);
        *d = (cli_dist)CLI_DIST_INIT;
    }
    return 0;
}

void cli_dist_shard(const cli_dist *d, size_t n, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)d->rank / (size_t)d->world;
    *hi = n * (size_t)(d->rank + 1) / (size_t)d->world;
}

int cli_dist_gather_rows(const char *cmd, const cli_dist *d, float *rows, size_t n, size_t dim)
{
    if (!d->comm) return 0;
    /* Fixed-size pieces (the largest shard) from every rank, then packed. */
    const size_t max = (n + (size_t)d->world - 1) / (size_t)d->world, piece = max * dim;
    size_t lo, hi;
    cli_dist_shard(d, n, &lo, &hi);
    float *send = calloc(piece ? piece : 1, sizeof *send);
    float *recv = malloc((size_t)d->world * (piece ? piece : 1) * sizeof *recv);
    int rc = 0;
    if (!send || !recv) {
        fprintf(stderr, "disclvlm: %s: out of memory gathering %zu rows\n", cmd, n);
        rc = 1;
    } else {
        memcpy(send, rows + lo * dim, (hi - lo) * dim * sizeof *send);
        if (dlv_comm_all_gather(d->comm, send, piece * sizeof *send, recv) != DLV_OK) {
            fprintf(stderr, "disclvlm: %s: %s\n", cmd, dlv_last_error());
            rc = 1;
        }
        for (int r = 0; r < d->world && !rc; r++) {
            const cli_dist other = {d->comm, r, d->world};
            cli_dist_shard(&other, n, &lo, &hi);
            memcpy(rows + lo * dim, recv + (size_t)r * piece, (hi - lo) * dim * sizeof *rows);
        }
    }
    free(send);
    free(recv);
    return rc;
}

void cli_dist_fail(const char *cmd, const cli_dist *d, int rc)
{
    if (!d->comm || rc == 0 || rc == 2 || rc == 130) return;
    char msg[200];
    snprintf(msg, sizeof msg, "disclvlm: %s: rank %d of %d stopped (exit %d); ending every rank "
                              "of the job", cmd, d->rank, d->world, rc);
    dlv_comm_abort(d->comm, msg, rc);
}

void cli_dist_close(cli_dist *d)
{
    dlv_comm_free(d->comm);
    d->comm = NULL;
}
