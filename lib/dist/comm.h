/* Collective communication between the processes of a data-parallel job
 * (docs/training.md, "Distributed"): the ranks of one MPI world, through a
 * module loaded on demand (dist/comm_module.h). Buffers are host memory;
 * the trainer stages device buffers through the host. */
#ifndef DLV_DIST_COMM_H
#define DLV_DIST_COMM_H

#include <stddef.h>

#include "disclvlm.h"

/* struct dlv_comm is the public opaque type (disclvlm.h). */

int dlv_comm_rank_of(const dlv_comm *c);
int dlv_comm_size_of(const dlv_comm *c);
/* In place: buf = the sum of every rank's buf, identical on every rank
 * (the f64 sum, all-gather and broadcast are public: disclvlm.h). */
dlv_status dlv_comm_sum_f32(dlv_comm *c, float *buf, size_t n);

#endif
