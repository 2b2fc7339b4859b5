/* See serve_api.h. Requests are checked whole before anything is encoded,
 * so a bad item costs no computation and names its index. */
#include "serve_api.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

/* The CLI's chunks (cmd_encode.c), so that the server's embeddings equal the
 * CLI's bit for bit for the same inputs in the same order. */
#define IMAGES_PER_CALL 8
#define TEXTS_PER_CALL 32

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

typedef struct item {
    const char *text;       /* a text, or NULL for an image */
    unsigned char *image;   /* the decoded image file */
    size_t image_len;
} item;

/* The image bytes of "data:image/png;base64,...." or of plain base64. */
static int decode_image(const char *s, item *it, char **err, size_t idx)
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
static int parse_item(json_t *v, size_t idx, item *it, char **err)
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

/* Encodes the images of items (in order) into emb rows; a bad image is
 * found by encoding one at a time and reported by its index. */
static int encode_images(serve_ctx *c, item *items, size_t n, float *emb, char **err)
{
    dlv_image *batch[IMAGES_PER_CALL];
    size_t idx[IMAGES_PER_CALL], k = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && items[i].text) continue;
        if (i < n) {
            if (dlv_image_from_memory(items[i].image, items[i].image_len, &batch[k]) != DLV_OK) {
                *err = serve_error(500, "input[%zu]: %s", i, dlv_last_error());
                break;
            }
            idx[k++] = i;
        }
        if (k == IMAGES_PER_CALL || (i == n && k > 0)) {
            float *tmp = malloc(k * c->dim * sizeof *tmp);
            dlv_status st = tmp ? dlv_encode_images(c->session, (const dlv_image *const *)batch,
                                                    k, tmp, k * c->dim)
                                : DLV_E_NOMEM;
            if (st == DLV_E_FORMAT || st == DLV_E_INVALID_ARG || st == DLV_E_UNSUPPORTED) {
                /* Which one: each alone (the message of the first bad one). */
                for (size_t j = 0; j < k && !*err; j++)
                    if (dlv_encode_images(c->session, (const dlv_image *const *)&batch[j], 1, tmp,
                                          c->dim) != DLV_OK)
                        *err = serve_error(400, "input[%zu]: not a usable PNG or JPEG image: %s",
                                           idx[j], dlv_last_error());
                if (!*err) *err = serve_error(500, "encoding images: %s", dlv_last_error());
            } else if (st != DLV_OK) {
                *err = serve_error(500, "encoding images: %s", dlv_last_error());
            } else {
                for (size_t j = 0; j < k; j++)
                    memcpy(emb + idx[j] * c->dim, tmp + j * c->dim, c->dim * sizeof *tmp);
            }
            free(tmp);
            for (size_t j = 0; j < k; j++) dlv_image_free(batch[j]);
            k = 0;
            if (*err) break;
        }
    }
    for (size_t j = 0; j < k; j++) dlv_image_free(batch[j]);
    return *err ? (strstr(*err, "\"code\":400") ? 400 : 500) : 0;
}

/* Checks every text's length (naming the first too long), counts the
 * tokens (prompt included) and encodes them in order into emb rows. */
static int encode_texts(serve_ctx *c, item *items, size_t n, float *emb, size_t *tokens,
                        char **err)
{
    const char *batch[TEXTS_PER_CALL];
    size_t idx[TEXTS_PER_CALL], k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].text) continue;
        size_t pos = 0, max = 0;
        if (dlv_text_positions(c->session, items[i].text, DLV_POSITIONS_TEXT, &pos, &max) !=
            DLV_OK) {
            *err = serve_error(500, "input[%zu]: %s", i, dlv_last_error());
            return 500;
        }
        if (pos > max) {
            *err = serve_error(400, "input[%zu]: the text needs %zu positions, more than the "
                                    "model's max_position_embeddings (%zu); shorten it", i, pos,
                               max);
            return 400;
        }
        *tokens += pos;
    }
    float *tmp = malloc(TEXTS_PER_CALL * c->dim * sizeof *tmp);
    if (!tmp) {
        *err = serve_error(500, "out of memory");
        return 500;
    }
    for (size_t i = 0; i <= n && !*err; i++) {
        if (i < n && !items[i].text) continue;
        if (i < n) {
            batch[k] = items[i].text;
            idx[k++] = i;
        }
        if (k == TEXTS_PER_CALL || (i == n && k > 0)) {
            if (dlv_encode_text(c->session, batch, k, tmp, k * c->dim) != DLV_OK)
                *err = serve_error(500, "encoding texts: %s", dlv_last_error());
            for (size_t j = 0; j < k && !*err; j++)
                memcpy(emb + idx[j] * c->dim, tmp + j * c->dim, c->dim * sizeof *tmp);
            k = 0;
        }
    }
    free(tmp);
    return *err ? 500 : 0;
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

int serve_embeddings(serve_ctx *c, const char *body, size_t len, char **out)
{
    char *err = NULL;
    json_t *root = load_object(body, len, &err);
    item *items = NULL;
    float *emb = NULL;
    size_t n = 0, tokens = 0;
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
    if (!err) status = encode_texts(c, items, n, emb, &tokens, &err);
    if (!err) status = encode_images(c, items, n, emb, &err);
    if (!err) {
        c->last_texts = c->last_images = 0;
        for (size_t i = 0; i < n; i++) ++*(items[i].text ? &c->last_texts : &c->last_images);
        *out = response(c, model ? json_string_value(model) : c->model_name, emb, n, base64,
                        tokens);
        status = *out ? 200 : 500;
        if (!*out) err = serve_error(500, "out of memory writing the response");
    }
    if (err) {
        *out = err;
        if (status < 400) status = strstr(err, "\"code\":500") ? 500 : 400;
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

int serve_score(serve_ctx *c, const char *body, size_t len, char **out)
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
    item *items = err ? NULL : calloc(n, sizeof *items);
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
    size_t tokens = 0;
    if (!err) status = encode_texts(c, items, n, emb, &tokens, &err);
    if (!err) status = encode_images(c, items, n, emb, &err);
    float scale = 1.0f;
    if (!err && dlv_score(c->session, emb, ni, emb + ni * c->dim, nt, c->dim, sc, ni * nt) != DLV_OK)
        err = serve_error(500, "scoring: %s", dlv_last_error());
    if (!err && json_is_true(logits)) {
        if (dlv_session_logit_scale(c->session, &scale) != DLV_OK)
            err = serve_error(500, "logit scale: %s", dlv_last_error());
        for (size_t k = 0; !err && k < ni * nt; k++) sc[k] *= scale;
    }
    if (!err) {
        c->last_texts = nt;
        c->last_images = ni;
        *out = score_response(model ? json_string_value(model) : c->model_name, sc, ni, nt,
                              json_is_true(logits), scale);
        status = *out ? 200 : 500;
        if (!*out) err = serve_error(500, "out of memory writing the response");
    }
    if (err) {
        *out = err;
        if (status < 400) status = strstr(err, "\"code\":500") ? 500 : 400;
    }
    for (size_t k = 0; items && k < n; k++) free(items[k].image);
    free(items);
    free(emb);
    free(sc);
    json_decref(root);
    return status;
}
