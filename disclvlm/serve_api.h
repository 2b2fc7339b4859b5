/* `disclvlm serve`'s endpoints as functions from a request body to a status
 * and a JSON response (docs/serve.md); serve_http.c does the HTTP. */
#ifndef DLV_CLI_SERVE_API_H
#define DLV_CLI_SERVE_API_H

#include <stddef.h>

#include "disclvlm.h"

typedef struct serve_ctx {
    dlv_session *session;   /* used by one request at a time */
    size_t dim;
    const char *model_name; /* echoed when a request names none; /v1/models */
    size_t max_items;       /* items per /v1/embeddings request */
    size_t last_texts, last_images; /* what the last successful request embedded */
} serve_ctx;

/* POST /v1/embeddings (OpenAI's request and response). Returns the HTTP
 * status; *out is the response body (malloc'd JSON), an error object for a
 * status >= 400. */
int serve_embeddings(serve_ctx *c, const char *body, size_t len, char **out);
/* POST /v1/score: {"texts": [...], "images": [image items], "logits": false}
 * -> {"scores": [[s(image i, text j)]], ...}, `disclvlm score`'s matrix. */
int serve_score(serve_ctx *c, const char *body, size_t len, char **out);
/* GET /v1/models. */
char *serve_models(const serve_ctx *c);
/* {"error": {"message": ..., "type": ..., "code": status}} */
char *serve_error(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
