/* `disclvlm serve`'s endpoints as functions from a request body to a status
 * and a JSON response (docs/serve.md); cmd_serve.c does the HTTP and
 * serve_batch.c the encoding. Called from any connection thread. */
#ifndef DLV_CLI_SERVE_API_H
#define DLV_CLI_SERVE_API_H

#include <stddef.h>

#include "disclvlm.h"
#include "serve_batch.h"

typedef struct serve_ctx {
    serve_batcher *batcher; /* runs the jobs */
    size_t dim;
    const char *model_name; /* echoed when a request names none; /v1/models */
    size_t max_items;       /* items per /v1/embeddings request */
} serve_ctx;

/* POST /v1/embeddings (OpenAI's request and response). Returns the HTTP
 * status; *out is the response body (malloc'd JSON), an error object for a
 * status >= 400; *texts and *images count what a successful request
 * embedded (left alone otherwise). */
int serve_embeddings(serve_ctx *c, const char *body, size_t len, char **out, size_t *texts,
                     size_t *images);
/* POST /v1/score: {"texts": [...], "images": [image items], "logits": false}
 * -> {"scores": [[s(image i, text j)]], ...}, `disclvlm score`'s matrix. */
int serve_score(serve_ctx *c, const char *body, size_t len, char **out, size_t *texts,
                size_t *images);
/* GET /v1/models. */
char *serve_models(const serve_ctx *c);
/* {"error": {"message": ..., "type": ..., "code": status}} */
char *serve_error(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
