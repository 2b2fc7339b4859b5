/* The CPU backend's worker pool in the oneDNN build: an OpenMP team of the
 * backend's n_threads. oneDNN computes the GEMMs on OpenMP too (Debian's
 * build uses libgomp), and libgomp keeps one team per calling thread alive
 * between parallel regions, so the GEMMs and our own loops run on the same
 * threads: none waits idle beside another's, and nothing is oversubscribed.
 *
 * Each run is one parallel region of at most n_threads threads; thread t
 * takes the t-th of a balanced split of [0, n), so which items go together
 * depends only on the team size, never on timing.
 *
 * fork: libgomp's threads do not survive it, and a parallel region in a
 * child forked after the parent used them waits for them forever (Python's
 * multiprocessing forks by default). The pool remembers the process it was
 * made in; in any other process it runs on the calling thread alone, and
 * so do the GEMMs (dlv_cpu_pool_threads). */
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

struct dlv_cpu_pool {
    int n_threads; /* including the caller */
    pid_t pid;     /* the process the threads belong to */
};

dlv_status dlv_cpu_pool_create(int n_threads, dlv_cpu_pool **out)
{
    *out = NULL;
    dlv_cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return dlv_error_nomem("cpu thread pool", sizeof *p);
    p->n_threads = n_threads;
    p->pid = getpid();
    *out = p;
    return DLV_OK;
}

void dlv_cpu_pool_destroy(dlv_cpu_pool *p)
{
    free(p);
}

int dlv_cpu_pool_threads(const dlv_cpu_pool *p)
{
    return getpid() == p->pid ? p->n_threads : 1;
}

void dlv_cpu_pool_run(dlv_cpu_pool *p, int64_t n, int64_t grain, dlv_cpu_task_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = n / grain;
    int threads = dlv_cpu_pool_threads(p);
    if (chunks > threads) chunks = threads;
    if (chunks <= 1) {
        fn(ctx, 0, n);
        return;
    }
#pragma omp parallel num_threads((int)chunks)
    {
        /* The team may be smaller than asked (nested in a caller's own
         * region, or OMP_THREAD_LIMIT): split over the threads there are. */
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t q = n / nt, r = n % nt;
        int64_t begin = t * q + (t < r ? t : r);
        int64_t end = begin + q + (t < r ? 1 : 0);
        if (end > begin) fn(ctx, begin, end);
    }
}
