/* disclvlm serve's /metrics in Prometheus' text format: requests by
 * endpoint and status, items embedded by kind, items per request and
 * request latency as histograms. Updated and read by the server's one
 * polling thread only, so plain counters suffice. */
#ifndef DLV_CLI_SERVE_METRICS_H
#define DLV_CLI_SERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum { SERVE_EP_EMBEDDINGS, SERVE_EP_SCORE, SERVE_EP_MODELS, SERVE_EP_HEALTH, SERVE_EP_METRICS,
       SERVE_EP_OTHER, SERVE_EP_COUNT };
enum { SERVE_ITEM_BUCKETS = 10, SERVE_LATENCY_BUCKETS = 12, SERVE_CODES = 600 };

typedef struct serve_metrics {
    uint64_t requests[SERVE_EP_COUNT][SERVE_CODES]; /* by endpoint and HTTP status */
    uint64_t texts, images;                          /* items embedded */
    uint64_t items_bucket[SERVE_ITEM_BUCKETS + 1];   /* items per embedding request */
    uint64_t items_sum, items_count;
    uint64_t latency_bucket[SERVE_LATENCY_BUCKETS + 1];
    double latency_sum;
    uint64_t latency_count;
} serve_metrics;

/* One finished request: its endpoint and status; for the embedding
 * endpoints (items > 0) also its item count and latency in seconds. */
void serve_metrics_record(serve_metrics *m, int endpoint, int status, size_t items,
                          double seconds);
/* The exposition text (malloc'd), or NULL. */
char *serve_metrics_text(const serve_metrics *m);

#endif
