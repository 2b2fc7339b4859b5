/* disclvlm serve's dynamic batching (docs/serve.md, "Batching"): requests
 * parsed by the connection threads wait in one queue as jobs; each worker
 * owns a session on the shared model, takes the queued jobs up to
 * --max-batch items (waiting at most --batch-wait ms for more), encodes
 * their texts and images together, and hands every job its own rows. */
#ifndef DLV_CLI_SERVE_BATCH_H
#define DLV_CLI_SERVE_BATCH_H

#include <stddef.h>

#include "disclvlm.h"
#include "serve_metrics.h"

typedef struct serve_item {
    const char *text;       /* a text, or NULL for an image */
    unsigned char *image;   /* the image file's bytes (PNG or JPEG) */
    size_t image_len;
} serve_item;

/* One request's work. The caller fills the inputs; serve_batcher_run fills
 * the outputs. */
typedef struct serve_job {
    /* in */
    serve_item *items;
    size_t n;
    int score;              /* also score: items[0, n_images) are images, the rest texts */
    size_t n_images;
    /* out */
    float *emb;             /* n x dim rows, allocated by the caller */
    float *scores;          /* score jobs: n_images x (n - n_images), allocated by the caller */
    float logit_scale;      /* score jobs: exp(logit_scale) of the session's adapter */
    size_t tokens;          /* text positions run, prompts included */
    size_t batch_items;     /* items in the model batch this job ran in */
    int status;             /* 0, or the HTTP status of err */
    char *err;              /* serve_error's JSON when status != 0 */
    /* the queue's */
    int done;
    struct serve_job *next;
} serve_job;

typedef struct serve_batcher serve_batcher;

/* Starts one worker thread per session (the batcher takes them and frees
 * them in serve_batcher_stop). max_batch >= 1 items; wait_ms the longest a
 * worker waits for more jobs once it has one and room; each batch is
 * recorded in metrics. Returns 0, or -1 with errno set (then the sessions
 * are still the caller's). */
int serve_batcher_start(serve_batcher **out, dlv_session **sessions, size_t workers, size_t dim,
                        size_t max_batch, unsigned wait_ms, serve_metrics *metrics);
/* Queues job and waits until a worker has run it. */
void serve_batcher_run(serve_batcher *b, serve_job *job);
/* Runs the jobs still queued, joins the workers, frees the sessions. */
void serve_batcher_stop(serve_batcher *b);

#endif
