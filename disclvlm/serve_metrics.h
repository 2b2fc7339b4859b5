/* disclvlm serve's /metrics in Prometheus' text format: requests by
 * endpoint and status, items embedded by kind, items per request, items
 * and requests per model batch, and request latency as histograms.
 * Updated by the connection threads and the batch workers under its own
 * mutex. */
#ifndef DLV_CLI_SERVE_METRICS_H
#define DLV_CLI_SERVE_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum { SERVE_EP_EMBEDDINGS, SERVE_EP_SCORE, SERVE_EP_MODELS, SERVE_EP_HEALTH, SERVE_EP_METRICS,
       SERVE_EP_OTHER, SERVE_EP_COUNT };
enum { SERVE_ITEM_BUCKETS = 10, SERVE_LATENCY_BUCKETS = 12, SERVE_CODES = 600 };

typedef struct serve_metrics {
    pthread_mutex_t mu;
    uint64_t requests[SERVE_EP_COUNT][SERVE_CODES]; /* by endpoint and HTTP status */
    uint64_t texts, images;                          /* items embedded */
    uint64_t items_bucket[SERVE_ITEM_BUCKETS + 1];   /* items per embedding request */
    uint64_t items_sum, items_count;
    uint64_t latency_bucket[SERVE_LATENCY_BUCKETS + 1];
    double latency_sum;
    uint64_t latency_count;
    uint64_t batch_bucket[SERVE_ITEM_BUCKETS + 1];   /* items per model batch */
    uint64_t batch_items, batches, batch_requests;
} serve_metrics;

/* Zeroes m and sets up its mutex; 0 or -1. */
int serve_metrics_init(serve_metrics *m);
void serve_metrics_destroy(serve_metrics *m);

/* One finished request: its endpoint and status; for a successful
 * embedding or score request also its texts, images and latency in
 * seconds. */
void serve_metrics_record(serve_metrics *m, int endpoint, int status, size_t texts,
                          size_t images, double seconds);
/* One batch a worker ran: its items and the requests they came from. */
void serve_metrics_record_batch(serve_metrics *m, size_t items, size_t requests);
/* The exposition text (malloc'd), or NULL. */
char *serve_metrics_text(serve_metrics *m);

#endif
