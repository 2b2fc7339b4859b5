/* See serve_batch.h. One mutex guards the queue; a worker holds it only to
 * take jobs and to mark them done, never while the model runs. */
#include "serve_batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve_api.h"

/* The CLI's chunks (cmd_encode.c): a request run alone (--max-batch 1, or
 * no other request waiting) is encoded in the calls `encode-text` /
 * `encode-image` make for the same inputs, so its embeddings are theirs
 * bit for bit. */
#define IMAGES_PER_CALL 8
#define TEXTS_PER_CALL 32

typedef struct worker {
    serve_batcher *b;
    dlv_session *session;
    float *tmp;              /* TEXTS_PER_CALL rows */
    pthread_t thread;
    int started;
} worker;

struct serve_batcher {
    pthread_mutex_t mu;
    pthread_cond_t queued, finished;
    serve_job *head, *tail;
    int stopping;
    size_t dim, max_batch;
    unsigned wait_ms;
    serve_metrics *metrics;
    size_t n_workers;
    worker *workers;
};

/* An item of a job in a batch. */
typedef struct ref {
    serve_job *job;
    size_t i;
} ref;

static void fail(serve_job *j, int status, char *err)
{
    if (j->status) { /* the job's first error is the one reported */
        free(err);
        return;
    }
    j->status = err ? status : 500;
    j->err = err;
}

/* One library call on refs[0, k), all texts or all images; rows into their
 * jobs. */
static dlv_status encode_call(worker *w, const ref *refs, size_t k, int images)
{
    const size_t dim = w->b->dim;
    dlv_status st = DLV_OK;
    if (images) {
        dlv_image *batch[IMAGES_PER_CALL] = {0};
        for (size_t j = 0; j < k && st == DLV_OK; j++) {
            const serve_item *it = &refs[j].job->items[refs[j].i];
            st = dlv_image_from_memory(it->image, it->image_len, &batch[j]);
        }
        if (st == DLV_OK)
            st = dlv_encode_images(w->session, (const dlv_image *const *)batch, k, w->tmp,
                                   k * dim);
        for (size_t j = 0; j < k; j++) dlv_image_free(batch[j]);
    } else {
        const char *batch[TEXTS_PER_CALL];
        for (size_t j = 0; j < k; j++) batch[j] = refs[j].job->items[refs[j].i].text;
        st = dlv_encode_text(w->session, batch, k, w->tmp, k * dim);
    }
    for (size_t j = 0; j < k && st == DLV_OK; j++)
        memcpy(refs[j].job->emb + refs[j].i * dim, w->tmp + j * dim, dim * sizeof *w->tmp);
    return st;
}

/* Encodes refs[0, n) in calls of the CLI's size. A failed call is redone
 * item by item, so that only the jobs holding a bad item fail, each with
 * its first bad item's message (a bad image is the client's error: 400). */
static void encode_refs(worker *w, const ref *refs, size_t n, int images)
{
    const size_t chunk = images ? IMAGES_PER_CALL : TEXTS_PER_CALL;
    for (size_t s = 0; s < n; s += chunk) {
        const size_t k = n - s < chunk ? n - s : chunk;
        if (encode_call(w, refs + s, k, images) == DLV_OK) continue;
        for (size_t j = s; j < s + k; j++) {
            if (refs[j].job->status) continue;
            dlv_status st = encode_call(w, refs + j, 1, images);
            if (st == DLV_OK) continue;
            const int client = images && (st == DLV_E_FORMAT || st == DLV_E_INVALID_ARG ||
                                          st == DLV_E_UNSUPPORTED);
            fail(refs[j].job, client ? 400 : 500,
                 client ? serve_error(400, "input[%zu]: not a usable PNG or JPEG image: %s",
                                      refs[j].i, dlv_last_error())
                        : serve_error(500, "input[%zu]: encoding the %s: %s", refs[j].i,
                                      images ? "image" : "text", dlv_last_error()));
        }
    }
}

/* Every text of the job must fit the model: the first one too long is
 * named (400) before anything runs; the positions are the usage count. */
static void check_texts(worker *w, serve_job *j)
{
    for (size_t i = 0; i < j->n && !j->status; i++) {
        if (!j->items[i].text) continue;
        size_t pos = 0, max = 0;
        if (dlv_text_positions(w->session, j->items[i].text, DLV_POSITIONS_TEXT, &pos, &max) !=
            DLV_OK)
            fail(j, 500, serve_error(500, "input[%zu]: %s", i, dlv_last_error()));
        else if (pos > max)
            fail(j, 400, serve_error(400, "input[%zu]: the text needs %zu positions, more than "
                                          "the model's max_position_embeddings (%zu); shorten "
                                          "it", i, pos, max));
        else
            j->tokens += pos;
    }
}

static void score(worker *w, serve_job *j)
{
    const size_t ni = j->n_images, nt = j->n - j->n_images, dim = w->b->dim;
    if (dlv_score(w->session, j->emb, ni, j->emb + ni * dim, nt, dim, j->scores, ni * nt) !=
        DLV_OK)
        fail(j, 500, serve_error(500, "scoring: %s", dlv_last_error()));
    else if (dlv_session_logit_scale(w->session, &j->logit_scale) != DLV_OK)
        fail(j, 500, serve_error(500, "logit scale: %s", dlv_last_error()));
}

/* Runs jobs[0, n): texts of all of them together, then images, in job
 * order; then each score job's matrix. */
static void run_batch(worker *w, serve_job *const *jobs, size_t n_jobs, size_t items)
{
    ref *refs = malloc(items * sizeof *refs);
    if (!refs) {
        for (size_t k = 0; k < n_jobs; k++)
            fail(jobs[k], 500, serve_error(500, "out of memory batching %zu items", items));
        return;
    }
    for (size_t k = 0; k < n_jobs; k++) check_texts(w, jobs[k]);
    for (int images = 0; images < 2; images++) {
        size_t n = 0;
        for (size_t k = 0; k < n_jobs; k++)
            for (size_t i = 0; i < jobs[k]->n && !jobs[k]->status; i++)
                if ((jobs[k]->items[i].text == NULL) == images) refs[n++] = (ref){jobs[k], i};
        encode_refs(w, refs, n, images);
    }
    free(refs);
    for (size_t k = 0; k < n_jobs; k++)
        if (jobs[k]->score && !jobs[k]->status) score(w, jobs[k]);
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Takes the first queued job and those after it that fit in max_batch
 * items, waiting up to wait_ms for more while there is room. Called with
 * the lock held; returns the number taken (0: stop). */
static size_t take(serve_batcher *b, serve_job **jobs, size_t cap, size_t *items)
{
    while (!b->head && !b->stopping) pthread_cond_wait(&b->queued, &b->mu);
    if (!b->head) return 0;
    struct timespec deadline;
    deadline_in(&deadline, b->wait_ms);
    size_t n = 0;
    *items = 0;
    for (;;) {
        while (b->head && n < cap && (n == 0 || *items + b->head->n <= b->max_batch)) {
            serve_job *j = b->head;
            b->head = j->next;
            if (!b->head) b->tail = NULL;
            jobs[n++] = j;
            *items += j->n;
        }
        /* Full, the next job does not fit, or no wait: run what we have. */
        if (n == cap || *items >= b->max_batch || b->head || b->wait_ms == 0 || b->stopping)
            break;
        if (pthread_cond_timedwait(&b->queued, &b->mu, &deadline) == ETIMEDOUT && !b->head) break;
    }
    return n;
}

static void *work(void *arg)
{
    worker *w = arg;
    serve_batcher *b = w->b;
    /* At most max_batch jobs: every job has at least one item. */
    serve_job **jobs = malloc(b->max_batch * sizeof *jobs);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        size_t items = 0, n = jobs ? take(b, jobs, b->max_batch, &items) : 0;
        if (!n) break;
        pthread_mutex_unlock(&b->mu);
        run_batch(w, jobs, n, items);
        if (b->metrics) serve_metrics_record_batch(b->metrics, items, n);
        pthread_mutex_lock(&b->mu);
        for (size_t k = 0; k < n; k++) {
            jobs[k]->batch_items = items;
            jobs[k]->done = 1;
        }
        pthread_cond_broadcast(&b->finished);
    }
    /* Without the job array (out of memory) the worker still drains the
     * queue, failing each job, so that no caller waits forever. */
    while (!jobs && b->head) {
        serve_job *j = b->head;
        b->head = j->next;
        fail(j, 500, serve_error(500, "out of memory in the batch worker"));
        j->done = 1;
        pthread_cond_broadcast(&b->finished);
    }
    pthread_mutex_unlock(&b->mu);
    free(jobs);
    return NULL;
}

void serve_batcher_run(serve_batcher *b, serve_job *job)
{
    job->done = 0;
    job->next = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->tail) b->tail->next = job;
    else b->head = job;
    b->tail = job;
    pthread_cond_signal(&b->queued);
    while (!job->done) pthread_cond_wait(&b->finished, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

int serve_batcher_start(serve_batcher **out, dlv_session **sessions, size_t workers, size_t dim,
                        size_t max_batch, unsigned wait_ms, serve_metrics *metrics)
{
    *out = NULL;
    if (!workers || !max_batch) {
        errno = EINVAL;
        return -1;
    }
    serve_batcher *b = calloc(1, sizeof *b);
    worker *w = calloc(workers, sizeof *w);
    pthread_condattr_t ca;
    int ok = b && w && pthread_condattr_init(&ca) == 0;
    if (ok) {
        /* The batch deadline must not jump with the wall clock. */
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        ok = pthread_mutex_init(&b->mu, NULL) == 0 && pthread_cond_init(&b->queued, &ca) == 0 &&
             pthread_cond_init(&b->finished, NULL) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!ok) {
        free(b);
        free(w);
        errno = ENOMEM;
        return -1;
    }
    b->dim = dim;
    b->max_batch = max_batch;
    b->wait_ms = wait_ms;
    b->metrics = metrics;
    b->n_workers = workers;
    b->workers = w;
    int err = 0;
    for (size_t k = 0; k < workers && !err; k++) {
        w[k] = (worker){.b = b, .session = sessions[k]};
        w[k].tmp = malloc(TEXTS_PER_CALL * dim * sizeof *w[k].tmp);
        if (!w[k].tmp) err = ENOMEM;
        else if ((err = pthread_create(&w[k].thread, NULL, work, &w[k])) == 0) w[k].started = 1;
    }
    if (err) {
        /* Give the sessions back: stop what started, then forget them. */
        for (size_t k = 0; k < workers; k++) w[k].session = NULL;
        serve_batcher_stop(b);
        errno = err;
        return -1;
    }
    *out = b;
    return 0;
}

void serve_batcher_stop(serve_batcher *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_cond_broadcast(&b->queued);
    pthread_mutex_unlock(&b->mu);
    for (size_t k = 0; k < b->n_workers; k++) {
        if (b->workers[k].started) pthread_join(b->workers[k].thread, NULL);
        free(b->workers[k].tmp);
        dlv_session_free(b->workers[k].session);
    }
    pthread_cond_destroy(&b->queued);
    pthread_cond_destroy(&b->finished);
    pthread_mutex_destroy(&b->mu);
    free(b->workers);
    free(b);
}
