/* disclvlm serve: an OpenAI-compatible embeddings server for images and
 * texts over libmicrohttpd (docs/serve.md). A thread per connection parses
 * its request and hands it to the batch workers (serve_batch.c), each with
 * its own session on the one model; SIGINT/SIGTERM stop accepting, let the
 * requests in flight finish, then the server exits. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "serve_api.h"
#include "serve_metrics.h"

typedef struct serve_opts {
    cli_run_opts run;
    const char *host, *api_key;
    long port;
    size_t max_body, max_items, workers, max_batch;
    unsigned timeout_s, batch_wait_ms;
} serve_opts;

typedef struct server {
    serve_ctx ctx;
    const serve_opts *o;
    serve_metrics metrics;
    /* Requests begun and not yet answered, for SIGTERM's drain. */
    pthread_mutex_t mu;
    pthread_cond_t idle;
    unsigned in_flight;
    int draining;
} server;

/* Seconds SIGTERM waits for the requests in flight before closing. */
#define DRAIN_SECONDS 120

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A request's body as it arrives. */
typedef struct request {
    char *body;
    size_t len;
    int too_big;
} request;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm serve --model DIR [--adapter DIR] [--host 127.0.0.1] [--port 8080]\n"
            "                      [--api-key KEY] [--max-body BYTES] [--max-items N]\n"
            "                      [--timeout S] [--workers N] [--max-batch N] [--batch-wait MS]\n"
            "                      [--threads N] [--backend NAME]\n"
            "\n"
            "Serves embeddings of texts and images over HTTP, in OpenAI's shapes:\n"
            "  POST /v1/embeddings  {\"input\": \"a text\" | [\"text\", {\"image\": BASE64}, ...],\n"
            "                        \"encoding_format\": \"float\" | \"base64\", \"model\": ...}\n"
            "  POST /v1/score       {\"texts\": [...], \"images\": [{\"image\": BASE64}...],\n"
            "                        \"logits\": false} -> {\"scores\": [[image x text]]}\n"
            "  GET  /v1/models      GET /health      GET /metrics (Prometheus)\n"
            "Embeddings equal encode-text / encode-image's bit for bit. Binds to 127.0.0.1\n"
            "unless --host says otherwise; with --api-key every /v1 request needs\n"
            "'Authorization: Bearer KEY'. No TLS: put it behind a reverse proxy.\n"
            "\n"
            "  --port N           0 picks a free port (printed on start)\n"
            "  --max-body BYTES   request body limit (default 16 MiB)\n"
            "  --max-items N      inputs per request (default 256)\n"
            "  --timeout S        idle connection timeout (default 30)\n"
            "  --workers N        sessions encoding batches in parallel (default 1); each\n"
            "                     gets --threads (default: the CPUs / N)\n"
            "  --max-batch N      items of queued requests run together (default 32;\n"
            "                     1: each request alone, as the CLI would run it)\n"
            "  --batch-wait MS    how long a worker waits for more requests to fill a\n"
            "                     batch (default 1)\n"
            "%s",
            CLI_RUN_OPTS_HELP);
}

static enum MHD_Result reply(struct MHD_Connection *conn, int status, char *json,
                              const char *type, int closing)
{
    if (!json) {
        status = 500;
        json = serve_error(500, "out of memory");
    }
    const char *text = json ? json : "{\"error\":{\"message\":\"out of memory\"}}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
                                                             MHD_RESPMEM_MUST_COPY);
    free(json);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (closing) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static int draining(server *s)
{
    pthread_mutex_lock(&s->mu);
    int d = s->draining;
    pthread_mutex_unlock(&s->mu);
    return d;
}

/* Constant time in the key's length: no timing hint of how much matched. */
static int authorised(struct MHD_Connection *conn, const char *key)
{
    if (!key) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    size_t n = strlen(key), m = strlen(h);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? h[i] : 0);
    return diff == 0;
}

/* The response to a complete request: its status, *body (JSON or the
 * metrics text) and *endpoint for the metrics. */
static int route(server *s, struct MHD_Connection *conn, const char *url, const char *method,
                 const request *rq, int *endpoint, char **body, size_t *texts, size_t *images)
{
    const int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0) {
        *endpoint = SERVE_EP_HEALTH;
        *body = get ? strdup("{\"status\":\"ok\"}") : serve_error(405, "%s %s: use GET", method, url);
        return get ? 200 : 405;
    }
    if (strcmp(url, "/metrics") == 0) { /* like /health: for the operator's scraper */
        *endpoint = SERVE_EP_METRICS;
        *body = get ? serve_metrics_text(&s->metrics)
                    : serve_error(405, "%s %s: use GET", method, url);
        return get ? 200 : 405;
    }
    if (strcmp(url, "/v1/models") == 0) *endpoint = SERVE_EP_MODELS;
    if (strcmp(url, "/v1/embeddings") == 0) *endpoint = SERVE_EP_EMBEDDINGS;
    if (strcmp(url, "/v1/score") == 0) *endpoint = SERVE_EP_SCORE;
    if (strncmp(url, "/v1/", 4) == 0 && !authorised(conn, s->o->api_key)) {
        *body = serve_error(401, "missing or wrong API key (send 'Authorization: Bearer KEY')");
        return 401;
    }
    if (*endpoint == SERVE_EP_MODELS) {
        *body = get ? serve_models(&s->ctx) : serve_error(405, "%s %s: use GET", method, url);
        return get ? 200 : 405;
    }
    if (*endpoint == SERVE_EP_EMBEDDINGS || *endpoint == SERVE_EP_SCORE) {
        if (!post) {
            *body = serve_error(405, "%s %s: use POST", method, url);
            return 405;
        }
        if (rq->too_big) {
            *body = serve_error(413, "the body is larger than this server's --max-body (%zu "
                                     "bytes)", s->o->max_body);
            return 413;
        }
        return (*endpoint == SERVE_EP_SCORE ? serve_score : serve_embeddings)(
            &s->ctx, rq->body ? rq->body : "", rq->len, body, texts, images);
    }
    *body = serve_error(404, "no endpoint %s %s", method, url);
    return 404;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)version;
    server *s = cls;
    request *rq = *state;
    if (!rq) { /* headers only: set up the body */
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *state = rq;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        if (!rq->too_big && rq->len + *upload_size > s->o->max_body) {
            rq->too_big = 1;
            free(rq->body);
            rq->body = NULL;
        }
        if (!rq->too_big) {
            char *b = realloc(rq->body, rq->len + *upload_size + 1);
            if (!b) return MHD_NO;
            memcpy(b + rq->len, upload, *upload_size);
            rq->body = b;
            rq->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    const double t0 = now_s();
    int endpoint = SERVE_EP_OTHER;
    char *body = NULL;
    size_t texts = 0, images = 0;
    const int status = route(s, conn, url, method, rq, &endpoint, &body, &texts, &images);
    serve_metrics_record(&s->metrics, endpoint, status, texts, images, now_s() - t0);
    return reply(conn, status, body,
                 endpoint == SERVE_EP_METRICS && status == 200 ? "text/plain; version=0.0.4"
                                                               : "application/json",
                 draining(s));
}

/* The response is sent (or the connection is gone). */
static void completed(void *cls, struct MHD_Connection *conn, void **state,
                      enum MHD_RequestTerminationCode why)
{
    server *s = cls;
    (void)conn;
    (void)why;
    request *rq = *state;
    if (!rq) return;
    free(rq->body);
    free(rq);
    *state = NULL;
    pthread_mutex_lock(&s->mu);
    if (--s->in_flight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* SIGTERM: no new connections; the requests begun are answered (with
 * "Connection: close"), for at most DRAIN_SECONDS. Returns the listening
 * socket, which the caller closes after MHD_stop_daemon. */
static MHD_socket drain(server *s, struct MHD_Daemon *d)
{
    MHD_socket listener = MHD_quiesce_daemon(d);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DRAIN_SECONDS;
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    while (s->in_flight && pthread_cond_timedwait(&s->idle, &s->mu, &until) == 0) {
    }
    if (s->in_flight)
        fprintf(stderr, "disclvlm serve: %u requests still unanswered after %d s; closing\n",
                s->in_flight, DRAIN_SECONDS);
    pthread_mutex_unlock(&s->mu);
    return listener;
}

static int parse_size(const char *opt, const char *v, size_t lo, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < lo) {
        fprintf(stderr, "disclvlm: serve: %s: '%s' is not an integer >= %zu\n", opt, v, lo);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

static int parse(int argc, char **argv, serve_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_run_opt("serve", argc, argv, &i, &o->run);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        static const char *const valued[] = {"--host",    "--port",      "--api-key",
                                             "--max-body", "--max-items", "--timeout",
                                             "--workers", "--max-batch", "--batch-wait"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= !strcmp(a, valued[k]);
        if (!known) {
            fprintf(stderr, "disclvlm: serve: unknown option '%s' (see 'disclvlm serve --help')\n",
                    a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "disclvlm: serve: option '%s' needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        size_t n = 0;
        if (!strcmp(a, "--host")) o->host = v;
        else if (!strcmp(a, "--api-key")) o->api_key = v;
        else if (!strcmp(a, "--port")) {
            if (parse_size(a, v, 0, &n) || n > 65535) {
                if (n > 65535) fprintf(stderr, "disclvlm: serve: --port: %s is above 65535\n", v);
                return 2;
            }
            o->port = (long)n;
        } else if (!strcmp(a, "--max-body")) {
            if (parse_size(a, v, 1, &o->max_body)) return 2;
        } else if (!strcmp(a, "--max-items")) {
            if (parse_size(a, v, 1, &o->max_items)) return 2;
        } else if (!strcmp(a, "--timeout") || !strcmp(a, "--batch-wait")) {
            if (parse_size(a, v, a[2] == 't', &n)) return 2;
            if (n > 86400) {
                fprintf(stderr, "disclvlm: serve: %s: %s is above 86400\n", a, v);
                return 2;
            }
            *(a[2] == 't' ? &o->timeout_s : &o->batch_wait_ms) = (unsigned)n;
        } else if (!strcmp(a, "--workers")) {
            if (parse_size(a, v, 1, &o->workers)) return 2;
            if (o->workers > 256) {
                fprintf(stderr, "disclvlm: serve: --workers: %s is above 256\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--max-batch")) {
            if (parse_size(a, v, 1, &o->max_batch)) return 2;
            if (o->max_batch > 4096) {
                fprintf(stderr, "disclvlm: serve: --max-batch: %s is above 4096\n", v);
                return 2;
            }
        }
    }
    if (!o->run.model_dir) return cli_missing("serve", "--model DIR");
    if (o->api_key && !*o->api_key) {
        fprintf(stderr, "disclvlm: serve: --api-key: empty\n");
        return 2;
    }
    return 0;
}

/* The workers' sessions: the first from cli_open, the others like it. */
static int open_sessions(serve_opts *o, dlv_model **model, dlv_session **sessions, size_t *dim)
{
    if (o->workers > 1 && o->run.threads < 0) { /* share the CPUs between the workers */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        o->run.threads = cpus > (long)o->workers ? (int)(cpus / (long)o->workers) : 1;
    }
    int rc = cli_open("serve", &o->run, model, &sessions[0], dim);
    for (size_t k = 1; k < o->workers && !rc; k++)
        rc = cli_open_session("serve", &o->run, *model, &sessions[k]);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    serve_opts o = {.run = CLI_RUN_OPTS_INIT, .host = "127.0.0.1", .port = 8080,
                    .max_body = 16u << 20, .max_items = 256, .timeout_s = 30, .workers = 1,
                    .max_batch = 32, .batch_wait_ms = 1};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o.port);
    const char *host = strcmp(o.host, "localhost") == 0 ? "127.0.0.1" : o.host;
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "disclvlm: serve: --host: '%s' is not an IPv4 address\n", o.host);
        return 2;
    }
    server s = {.o = &o};
    if (serve_metrics_init(&s.metrics) != 0 || pthread_mutex_init(&s.mu, NULL) != 0 ||
        pthread_cond_init(&s.idle, NULL) != 0) {
        fprintf(stderr, "disclvlm: serve: cannot set up the server's locks\n");
        return 1;
    }
    dlv_model *model = NULL;
    dlv_session **sessions = calloc(o.workers, sizeof *sessions);
    struct MHD_Daemon *d = NULL;
    if (!sessions) {
        fprintf(stderr, "disclvlm: serve: out of memory\n");
        rc = 1;
        goto done;
    }
    if ((rc = open_sessions(&o, &model, sessions, &s.ctx.dim))) goto done;
    if (serve_batcher_start(&s.ctx.batcher, sessions, o.workers, s.ctx.dim, o.max_batch,
                            o.batch_wait_ms, &s.metrics) != 0) {
        fprintf(stderr, "disclvlm: serve: cannot start %zu workers: %s\n", o.workers,
                strerror(errno));
        rc = 1;
        goto done;
    }
    memset(sessions, 0, o.workers * sizeof *sessions); /* the batcher's now */
    const char *slash = strrchr(o.run.model_dir, '/');
    s.ctx.model_name = slash && slash[1] ? slash + 1 : o.run.model_dir;
    s.ctx.max_items = o.max_items;

    /* The daemon's threads inherit this mask: only the main thread takes
     * SIGINT / SIGTERM, in sigwait below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* A thread per connection: each waits for its batch while the listener
     * goes on accepting, so that concurrent requests can meet in a batch. */
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_ITC | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, handle, &s, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed, &s,
                         MHD_OPTION_CONNECTION_TIMEOUT, o.timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                         64u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "disclvlm: serve: cannot listen on %s:%ld: %s\n", o.host, o.port,
                strerror(errno));
        rc = 1;
        goto done;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "disclvlm serve: listening on http://%s:%u (model %s, %zu dimensions, %zu "
                    "worker%s, batches of up to %zu items%s)\n",
            o.host, info ? (unsigned)info->port : (unsigned)o.port, s.ctx.model_name, s.ctx.dim,
            o.workers, o.workers == 1 ? "" : "s", o.max_batch,
            o.api_key ? ", API key required" : "");
    fflush(stderr);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "disclvlm serve: %s: finishing the requests in flight, then exiting\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* The requests begun are answered while the workers still run; then
     * the connections close and the workers stop. */
    MHD_socket listener = drain(&s, d);
    MHD_stop_daemon(d);
    if (listener != MHD_INVALID_SOCKET) close(listener);
done:
    serve_batcher_stop(s.ctx.batcher);
    for (size_t k = 0; sessions && k < o.workers; k++) dlv_session_free(sessions[k]);
    free(sessions);
    dlv_model_free(model);
    serve_metrics_destroy(&s.metrics);
    pthread_cond_destroy(&s.idle);
    pthread_mutex_destroy(&s.mu);
    return rc;
}
