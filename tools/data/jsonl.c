/* JSONL image-caption datasets: one object per line,
 * {"image": "...", "caption": "...", "long_caption": "..."}. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "data/dataset.h"

#define JSONL_MAX_BYTES ((size_t)4 << 30)

/* The string member key of obj: DLV_OK with *out NULL when absent (and not
 * required); a heap copy otherwise. */
static dlv_status get_str(const char *path, size_t line, json_t *obj, const char *key,
                          int required, char **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return dlv_error(DLV_E_FORMAT, "%s:%zu: no \"%s\"", path, line, key);
        return DLV_OK;
    }
    if (!json_is_string(v))
        return dlv_error(DLV_E_FORMAT, "%s:%zu: \"%s\" is not a string", path, line, key);
    size_t n = json_string_length(v);
    if (memchr(json_string_value(v), '\0', n))
        return dlv_error(DLV_E_FORMAT, "%s:%zu: \"%s\" contains a NUL character", path, line,
                         key);
    *out = strdup(json_string_value(v));
    if (!*out) return dlv_error_nomem(key, n + 1);
    return DLV_OK;
}

dlv_status dlv_dataset_read_jsonl(const char *path, const dlv_dataset_options *o,
                                  dlv_dataset *ds)
{
    dlv_dataset_options d = DLV_DATASET_OPTIONS_INIT;
    if (!o) o = &d;
    char *text = NULL;
    size_t len = 0;
    dlv_status st = dlv_read_file(path, JSONL_MAX_BYTES, &text, &len);
    if (st != DLV_OK) return st;
    char *base = o->base_dir ? strdup(o->base_dir) : dlv_dirname(path);
    if (!base) {
        free(text);
        return dlv_error_nomem("path", strlen(path));
    }
    size_t line = 0;
    char *p = text, *end = text + len;
    while (p < end && (!o->limit || ds->n < o->limit)) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        size_t n = (size_t)(stop - p);
        int blank = 1;
        for (size_t i = 0; i < n && blank; i++)
            blank = p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
        if (blank) {
            p = next;
            continue;
        }
        json_error_t jerr;
        json_t *obj = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        p = next;
        if (!obj) {
            st = dlv_error(DLV_E_FORMAT, "%s:%zu: column %d: %s", path, line, jerr.column,
                           jerr.text);
            break;
        }
        if (!json_is_object(obj)) {
            json_decref(obj);
            st = dlv_error(DLV_E_FORMAT, "%s:%zu: not a JSON object", path, line);
            break;
        }
        dlv_sample s = {0};
        char *rel = NULL;
        if ((st = get_str(path, line, obj, "image", 1, &rel)) != DLV_OK ||
            (st = get_str(path, line, obj, "caption", 0, &s.caption)) != DLV_OK ||
            (st = get_str(path, line, obj, "long_caption", 0, &s.long_caption)) != DLV_OK) {
            json_decref(obj);
            free(rel);
            dlv_sample_clear(&s);
            break;
        }
        json_decref(obj);
        if (!*rel || (!s.caption && !s.long_caption)) {
            st = dlv_error(DLV_E_FORMAT, "%s:%zu: %s", path, line,
                           !*rel ? "empty \"image\""
                                 : "neither \"caption\" nor \"long_caption\"");
            free(rel);
            dlv_sample_clear(&s);
            break;
        }
        s.image = dlv_resolve_path(base, rel);
        free(rel);
        size_t wn = strlen(path) + 24;
        s.where = malloc(wn);
        if (!s.image || !s.where) {
            dlv_sample_clear(&s);
            st = dlv_error_nomem("JSONL sample", wn);
            break;
        }
        snprintf(s.where, wn, "%s:%zu", path, line);
        if ((st = dlv_dataset_push(ds, &s)) != DLV_OK) break;
    }
    free(base);
    free(text);
    return st;
}
