/* See serve_api.h. Requests are checked whole before anything is encoded,
 * so a bad item costs no computation and names its index; then they go to
 * the batch workers (serve_batch.c) as jobs. */
#include "serve_api.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

char *serve_error(int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    json_t *o = json_pack("{s:{s:s, s:s, s:i}}", "error", "message", msg, "type", type, "code",
                          status);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *serve_models(const serve_ctx *c)
{
    json_t *o = json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "object", "list", "data", "id",
                          c->model_name, "object", "model", "owned_by", "disclvlm");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* The image bytes of "data:image/png;base64,...." or of plain base64. */
static int decode_image(const char *s, serve_item *it, char **err, size_t idx)
{
    const char *b64 = s;
    if (strncmp(s, "data:", 5) == 0) {
        const char *comma = strchr(s, ',');
        if (!comma || (size_t)(comma - s) < 12 || strncmp(comma - 7, ";base64", 7) != 0) {
            *err = serve_error(400, "input[%zu]: a data: URL must be data:<type>;base64,<data>",
                               idx);
            return 400;
        }
        b64 = comma + 1;
    } else if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) {
        *err = serve_error(400, "input[%zu]: remote image URLs are not fetched; send the image "
                                "as base64 or as a data: URL", idx);
        return 400;
    }
    if (base64_decode(b64, strlen(b64), &it->image, &it->image_len) != 0 || it->image_len == 0) {
        *err = serve_error(400, "input[%zu]: the image is not valid base64", idx);
        return 400;
    }
    return 0;
}

/* One element of "input". */
static int parse_item(json_t *v, size_t idx, serve_item *it, char **err)
{
    if (json_is_string(v)) {
        it->text = json_string_value(v);
        if (json_string_length(v) != strlen(it->text)) {
            *err = serve_error(400, "input[%zu]: the text holds a NUL character", idx);
            return 400;
        }
        return 0;
    }
    if (json_is_object(v)) {
        json_t *img = json_object_get(v, "image");
        if (json_is_string(img)) return decode_image(json_string_value(img), it, err, idx);
        json_t *url = json_object_get(json_object_get(v, "image_url"), "url");
        const char *type = json_string_value(json_object_get(v, "type"));
        if (type && strcmp(type, "image_url") == 0 && json_is_string(url))
            return decode_image(json_string_value(url), it, err, idx);
        if (type && strcmp(type, "text") == 0 && json_is_string(json_object_get(v, "text")))
            return parse_item(json_object_get(v, "text"), idx, it, err);
    }
    if (json_is_integer(v) || (json_is_array(v) && json_array_size(v) > 0 &&
                               json_is_integer(json_array_get(v, 0)))) {
        *err = serve_error(400, "input[%zu]: token ids are not supported; send texts", idx);
        return 400;
    }
    *err = serve_error(400, "input[%zu]: expected a string, {\"image\": BASE64} or "
                            "{\"type\": \"image_url\", \"image_url\": {\"url\": ...}}", idx);
    return 400;
}

static char *response(const serve_ctx *c, const char *model, const float *emb, size_t n,
                      int base64, size_t tokens)
{
    json_t *data = json_array();
    for (size_t i = 0; data && i < n; i++) {
        json_t *e;
        if (base64) {
            /* OpenAI's base64: the little-endian float32 bytes. */
            char *b = base64_encode(emb + i * c->dim, c->dim * sizeof *emb);
            e = b ? json_string(b) : NULL;
            free(b);
        } else {
            e = json_array();
            for (size_t k = 0; e && k < c->dim; k++)
                json_array_append_new(e, json_real((double)emb[i * c->dim + k]));
        }
        json_t *row = e ? json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                                    (json_int_t)i, "embedding", e)
                        : NULL;
        if (!row || json_array_append_new(data, row)) {
            json_decref(data);
            data = NULL;
        }
    }
    json_t *o = data ? json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data,
                                 "model", model, "usage", "prompt_tokens", (json_int_t)tokens,
                                 "total_tokens", (json_int_t)tokens)
                     : NULL;
    /* Enough digits that each float reads back exactly (bit for bit). */
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    return s;
}

/* The request body as a JSON object, or NULL with *err set (400). */
static json_t *load_object(const char *body, size_t len, char **err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root)
        *err = serve_error(400, "malformed JSON (line %d, column %d): %s", jerr.line, jerr.column,
                           jerr.text);
    else if (!json_is_object(root))
        *err = serve_error(400, "the body must be a JSON object");
    if (*err) {
        json_decref(root);
        return NULL;
    }
    return root;
}

int serve_embeddings(serve_ctx *c, const char *body, size_t len, char **out, size_t *texts,
                     size_t *images)
{
    char *err = NULL;
    json_t *root = load_object(body, len, &err);
    serve_item *items = NULL;
    float *emb = NULL;
    size_t n = 0;
    int status = 0, base64 = 0;
    json_t *input = root ? json_object_get(root, "input") : NULL;
    json_t *fmt = root ? json_object_get(root, "encoding_format") : NULL;
    json_t *model = root ? json_object_get(root, "model") : NULL;
    if (!root) {
        /* err says why (load_object) */
    } else if (!input) {
        err = serve_error(400, "'input' is required");
    } else if (model && !json_is_string(model)) {
        err = serve_error(400, "'model' must be a string");
    } else if (fmt && (!json_is_string(fmt) || (strcmp(json_string_value(fmt), "float") != 0 &&
                                                 strcmp(json_string_value(fmt), "base64") != 0))) {
        err = serve_error(400, "'encoding_format' must be \"float\" or \"base64\"");
    } else if (!json_is_string(input) && !json_is_array(input)) {
        err = serve_error(400, "'input' must be a string or an array");
    } else {
        base64 = fmt && strcmp(json_string_value(fmt), "base64") == 0;
        n = json_is_array(input) ? json_array_size(input) : 1;
        if (n == 0 || (json_is_string(input) && json_string_length(input) == 0))
            err = serve_error(400, "'input' is empty");
        else if (n > c->max_items)
            err = serve_error(400, "'input' has %zu items, more than this server's --max-items "
                                   "(%zu)", n, c->max_items);
    }
    if (!err) {
        items = calloc(n, sizeof *items);
        emb = malloc(n * c->dim * sizeof *emb);
        if (!items || !emb) err = serve_error(500, "out of memory for %zu items", n);
    }
    for (size_t i = 0; !err && i < n; i++)
        status = parse_item(json_is_array(input) ? json_array_get(input, i) : input, i,
                            &items[i], &err);
    serve_job job = {.items = items, .n = n, .emb = emb};
    if (!err) {
        serve_batcher_run(c->batcher, &job);
        status = job.status;
        err = job.err;
    }
    if (!err && !status) {
        for (size_t i = 0; i < n; i++) ++*(items[i].text ? texts : images);
        *out = response(c, model ? json_string_value(model) : c->model_name, emb, n, base64,
                        job.tokens);
        status = *out ? 200 : 500;
        if (!*out) err = serve_error(500, "out of memory writing the response");
    }
    if (err) {
        *out = err;
        if (status < 400) status = strstr(err, "\"code\":500") ? 500 : 400;
    } else if (status != 200) { /* a job's error without memory for its message */
        *out = NULL;            /* reply() answers 500 */
        status = 500;
    }
    for (size_t i = 0; items && i < n; i++) free(items[i].image);
    free(items);
    free(emb);
    json_decref(root);
    return status;
}

/* Scores as JSON rows (images) of columns (texts), 9 digits (exact float). */
static char *score_response(const char *model, const float *sc, size_t n_img, size_t n_txt,
                            int logits, float scale)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows && i < n_img; i++) {
        json_t *r = json_array();
        for (size_t j = 0; r && j < n_txt; j++)
            json_array_append_new(r, json_real((double)sc[i * n_txt + j]));
        if (!r || json_array_append_new(rows, r)) {
            json_decref(rows);
            rows = NULL;
        }
    }
    json_t *o = rows ? json_pack("{s:s, s:s, s:o, s:s}", "object", "scores", "model", model,
                                 "scores", rows, "kind", logits ? "logits" : "cosine")
                     : NULL;
    if (o && logits) json_object_set_new(o, "logit_scale", json_real((double)scale));
    char *str = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    return str;
}

int serve_score(serve_ctx *c, const char *body, size_t len, char **out, size_t *n_texts,
                size_t *n_images)
{
    char *err = NULL;
    json_t *root = load_object(body, len, &err);
    json_t *texts = root ? json_object_get(root, "texts") : NULL;
    json_t *images = root ? json_object_get(root, "images") : NULL;
    json_t *model = root ? json_object_get(root, "model") : NULL;
    json_t *logits = root ? json_object_get(root, "logits") : NULL;
    int status = 0;
    size_t nt = 0, ni = 0;
    if (!root) {
        /* err says why (load_object) */
    } else if (!json_is_array(texts) || !json_is_array(images))
        err = serve_error(400, "'texts' and 'images' must both be arrays");
    else if (model && !json_is_string(model))
        err = serve_error(400, "'model' must be a string");
    else if (logits && !json_is_boolean(logits))
        err = serve_error(400, "'logits' must be true or false");
    else if ((nt = json_array_size(texts)) == 0 || (ni = json_array_size(images)) == 0)
        err = serve_error(400, "'texts' and 'images' must not be empty");
    else if (nt + ni > c->max_items)
        err = serve_error(400, "%zu texts and images, more than this server's --max-items (%zu)",
                          nt + ni, c->max_items);
    /* One list: the images first, then the texts (input[k] in messages). */
    const size_t n = nt + ni;
    serve_item *items = err ? NULL : calloc(n, sizeof *items);
    float *emb = err ? NULL : malloc(n * c->dim * sizeof *emb);
    float *sc = err ? NULL : malloc(ni * nt * sizeof *sc);
    if (!err && (!items || !emb || !sc)) err = serve_error(500, "out of memory for %zu items", n);
    for (size_t k = 0; !err && k < n; k++) {
        json_t *v = k < ni ? json_array_get(images, k) : json_array_get(texts, k - ni);
        if (k < ni && json_is_string(v)) {
            err = serve_error(400, "images[%zu]: expected {\"image\": BASE64} or an image_url "
                                   "item, not a string", k);
            break;
        }
        if (k >= ni && !json_is_string(v)) {
            err = serve_error(400, "texts[%zu]: expected a string", k - ni);
            break;
        }
        status = parse_item(v, k, &items[k], &err);
        if (!err && k < ni && items[k].text)
            err = serve_error(400, "images[%zu]: expected an image item", k);
    }
    serve_job job = {.items = items, .n = n, .score = 1, .n_images = ni, .emb = emb,
                     .scores = sc};
    if (!err) {
        serve_batcher_run(c->batcher, &job);
        status = job.status;
        err = job.err;
    }
    float scale = job.logit_scale;
    for (size_t k = 0; !err && !status && json_is_true(logits) && k < ni * nt; k++)
        sc[k] *= scale;
    if (!err && !status) {
        *n_texts = nt;
        *n_images = ni;
        *out = score_response(model ? json_string_value(model) : c->model_name, sc, ni, nt,
                              json_is_true(logits), scale);
        status = *out ? 200 : 500;
        if (!*out) err = serve_error(500, "out of memory writing the response");
    }
    if (err) {
        *out = err;
        if (status < 400) status = strstr(err, "\"code\":500") ? 500 : 400;
    } else if (status != 200) { /* a job's error without memory for its message */
        *out = NULL;            /* reply() answers 500 */
        status = 500;
    }
    for (size_t k = 0; items && k < n; k++) free(items[k].image);
    free(items);
    free(emb);
    free(sc);
    json_decref(root);
    return status;
}
