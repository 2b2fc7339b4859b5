/* See serve_metrics.h. */
#include "serve_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ENDPOINT[SERVE_EP_COUNT] = {"/v1/embeddings", "/v1/score",
                                                     "/v1/models",     "/health",
                                                     "/metrics",       "other"};
static const double ITEM_LE[SERVE_ITEM_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024};
static const double LATENCY_LE[SERVE_LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                         0.5,   1,    2.5,   5,    10,  30};

int serve_metrics_init(serve_metrics *m)
{
    memset(m, 0, sizeof *m);
    return pthread_mutex_init(&m->mu, NULL) == 0 ? 0 : -1;
}

void serve_metrics_destroy(serve_metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

static int bucket(const double *le, int n, double v)
{
    int b = 0;
    while (b < n && v > le[b]) b++;
    return b;
}

void serve_metrics_record_batch(serve_metrics *m, size_t items, size_t requests)
{
    pthread_mutex_lock(&m->mu);
    m->batch_bucket[bucket(ITEM_LE, SERVE_ITEM_BUCKETS, (double)items)]++;
    m->batch_items += items;
    m->batches++;
    m->batch_requests += requests;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_record(serve_metrics *m, int endpoint, int status, size_t texts,
                          size_t images, double seconds)
{
    if (endpoint < 0 || endpoint >= SERVE_EP_COUNT) endpoint = SERVE_EP_OTHER;
    const size_t items = texts + images;
    pthread_mutex_lock(&m->mu);
    if (status >= 0 && status < SERVE_CODES) m->requests[endpoint][status]++;
    if (items) {
        m->texts += texts;
        m->images += images;
        m->items_bucket[bucket(ITEM_LE, SERVE_ITEM_BUCKETS, (double)items)]++;
        m->items_sum += items;
        m->items_count++;
        m->latency_bucket[bucket(LATENCY_LE, SERVE_LATENCY_BUCKETS, seconds)]++;
        m->latency_sum += seconds;
        m->latency_count++;
    }
    pthread_mutex_unlock(&m->mu);
}

typedef struct out {
    char *s;
    size_t len, cap;
    int failed;
} out;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    for (int pass = 0; pass < 2 && !o->failed; pass++) {
        va_start(ap, fmt);
        int n = vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
        } else if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        } else {
            size_t cap = (o->cap + (size_t)n) * 2;
            char *s = realloc(o->s, cap);
            if (!s) o->failed = 1;
            else {
                o->s = s;
                o->cap = cap;
            }
        }
    }
}

static void histogram(out *o, const char *name, const char *help, const double *le, int n,
                      const uint64_t *bucket, double sum, uint64_t count)
{
    put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < n; b++) {
        cum += bucket[b];
        put(o, "%s_bucket{le=\"%g\"} %llu\n", name, le[b], (unsigned long long)cum);
    }
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
        (unsigned long long)count, name, sum, name, (unsigned long long)count);
}

char *serve_metrics_text(serve_metrics *m)
{
    out o = {malloc(4096), 0, 4096, 0};
    if (!o.s) return NULL;
    pthread_mutex_lock(&m->mu);
    o.s[0] = '\0';
    put(&o, "# HELP disclvlm_requests_total HTTP requests by endpoint and status.\n"
            "# TYPE disclvlm_requests_total counter\n");
    for (int e = 0; e < SERVE_EP_COUNT; e++)
        for (int c = 0; c < SERVE_CODES; c++)
            if (m->requests[e][c])
                put(&o, "disclvlm_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
                    ENDPOINT[e], c, (unsigned long long)m->requests[e][c]);
    put(&o, "# HELP disclvlm_items_total Inputs embedded, by kind.\n"
            "# TYPE disclvlm_items_total counter\n"
            "disclvlm_items_total{kind=\"text\"} %llu\ndisclvlm_items_total{kind=\"image\"} %llu\n",
        (unsigned long long)m->texts, (unsigned long long)m->images);
    histogram(&o, "disclvlm_request_items", "Inputs per successful embedding or score "
              "request.", ITEM_LE, SERVE_ITEM_BUCKETS, m->items_bucket,
              (double)m->items_sum, m->items_count);
    histogram(&o, "disclvlm_request_seconds", "Time to answer a successful embedding or score "
              "request.", LATENCY_LE, SERVE_LATENCY_BUCKETS, m->latency_bucket, m->latency_sum,
              m->latency_count);
    histogram(&o, "disclvlm_batch_items", "Inputs per batch the model ran (several requests' "
              "when --max-batch lets the workers merge them).", ITEM_LE, SERVE_ITEM_BUCKETS,
              m->batch_bucket, (double)m->batch_items, m->batches);
    put(&o, "# HELP disclvlm_batch_requests_total Requests served by the batches.\n"
            "# TYPE disclvlm_batch_requests_total counter\n"
            "disclvlm_batch_requests_total %llu\n", (unsigned long long)m->batch_requests);
    pthread_mutex_unlock(&m->mu);
    if (o.failed) {
        free(o.s);
        return NULL;
    }
    return o.s;
}
