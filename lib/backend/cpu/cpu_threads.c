/* The CPU backend's worker pool. One job at a time: the caller publishes
 * (fn, ctx, n, chunks) under the mutex, bumps the generation, and works on
 * chunks alongside the workers; chunks are handed out under the mutex (there
 * are only a few per job, so the lock is not contended). */
#include <pthread.h>
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

struct dlv_cpu_pool {
    int n_threads;               /* including the caller */
    int n_workers;               /* started successfully */
    pthread_t *workers;
    pthread_mutex_t submit;      /* one job at a time */
    pthread_mutex_t mu;
    pthread_cond_t work;         /* a new generation, or stop */
    pthread_cond_t done;         /* all chunks of the job finished */
    unsigned long generation;
    int stop;
    dlv_cpu_task_fn fn;
    void *ctx;
    int64_t n, n_chunks, next_chunk, chunks_done;
};

/* Takes and runs chunks until none are left. Called with mu held; returns
 * with mu held. */
static void drain(dlv_cpu_pool *p)
{
    while (p->next_chunk < p->n_chunks) {
        int64_t c = p->next_chunk++;
        /* Balanced split without forming n * c (which could overflow). */
        int64_t q = p->n / p->n_chunks, r = p->n % p->n_chunks;
        int64_t begin = c * q + (c < r ? c : r);
        int64_t end = begin + q + (c < r ? 1 : 0);
        dlv_cpu_task_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, begin, end);
        pthread_mutex_lock(&p->mu);
        if (++p->chunks_done == p->n_chunks) pthread_cond_signal(&p->done);
    }
}

static void *worker_main(void *arg)
{
    dlv_cpu_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    unsigned long seen = p->generation;
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        drain(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void stop_workers(dlv_cpu_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->workers[i], NULL);
    p->n_workers = 0;
}

dlv_status dlv_cpu_pool_create(int n_threads, dlv_cpu_pool **out)
{
    *out = NULL;
    dlv_cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return dlv_error_nomem("cpu thread pool", sizeof *p);
    p->n_threads = n_threads;
    if (n_threads > 1) {
        p->workers = calloc((size_t)(n_threads - 1), sizeof *p->workers);
        if (!p->workers) {
            free(p);
            return dlv_error_nomem("cpu thread pool",
                                   (size_t)(n_threads - 1) * sizeof(pthread_t));
        }
    }
    pthread_mutex_init(&p->submit, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < n_threads - 1; i++) {
        int err = pthread_create(&p->workers[i], NULL, worker_main, p);
        if (err != 0) {
            stop_workers(p);
            dlv_cpu_pool_destroy(p);
            return dlv_error(DLV_E_BACKEND, "cpu thread pool: cannot start worker %d of %d "
                             "(pthread_create error %d)", i + 1, n_threads - 1, err);
        }
        p->n_workers++;
    }
    *out = p;
    return DLV_OK;
}

void dlv_cpu_pool_destroy(dlv_cpu_pool *p)
{
    if (!p) return;
    stop_workers(p);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->submit);
    free(p->workers);
    free(p);
}

int dlv_cpu_pool_threads(const dlv_cpu_pool *p)
{
    /* After fork the workers are gone, but the caller drains every chunk
     * itself (drain), so a run still completes; the GEMMs are OpenBLAS's,
     * which handles fork itself. */
    return p->n_threads;
}

void dlv_cpu_pool_run(dlv_cpu_pool *p, int64_t n, int64_t grain, dlv_cpu_task_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = n / grain;
    if (chunks > p->n_workers + 1) chunks = p->n_workers + 1;
    if (chunks <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&p->submit);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->n_chunks = chunks;
    p->next_chunk = 0;
    p->chunks_done = 0;
    p->generation++;
    pthread_cond_broadcast(&p->work);
    drain(p);
    while (p->chunks_done < p->n_chunks) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->submit);
}
