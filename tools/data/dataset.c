/* Dataset container, format dispatch, brace patterns and path helpers. */
#include "data/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void dlv_sample_clear(dlv_sample *s)
{
    free(s->image);
    free(s->image_data);
    free(s->caption);
    free(s->long_caption);
    free(s->where);
    memset(s, 0, sizeof *s);
}

dlv_status dlv_dataset_push(dlv_dataset *ds, dlv_sample *s)
{
    if (ds->n == ds->cap) {
        size_t c = ds->cap ? ds->cap * 2 : 256;
        dlv_sample *p = realloc(ds->items, c * sizeof *p);
        if (!p) {
            dlv_sample_clear(s);
            return dlv_error_nomem("dataset samples", c * sizeof *p);
        }
        ds->items = p;
        ds->cap = c;
    }
    ds->items[ds->n++] = *s;
    memset(s, 0, sizeof *s);
    return DLV_OK;
}

void dlv_dataset_free(dlv_dataset *ds)
{
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) dlv_sample_clear(&ds->items[i]);
    free(ds->items);
    ds->items = NULL;
    ds->n = ds->cap = 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

dlv_status dlv_dataset_read(const char *path, const dlv_dataset_options *o, dlv_dataset *ds)
{
    if (!path || !ds) return dlv_error(DLV_E_INVALID_ARG, "dataset: NULL path or dataset");
    if (ends_with(path, ".jsonl")) return dlv_dataset_read_jsonl(path, o, ds);
    if (ends_with(path, ".csv") || ends_with(path, ".tsv")) return dlv_dataset_read_csv(path, o, ds);
    if (ends_with(path, ".tar") || strchr(path, '{')) return dlv_dataset_read_wds(path, o, ds);
    return dlv_error(DLV_E_UNSUPPORTED,
                     "%s: unknown dataset format (expected .jsonl, .csv, .tsv, .tar or a "
                     "{...} shard pattern)",
                     path);
}

void dlv_free_strings(char **s, size_t n)
{
    if (!s) return;
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

char *dlv_resolve_path(const char *base, const char *path)
{
    if (path[0] == '/' || !base || !*base) return strdup(path);
    size_t a = strlen(base), b = strlen(path);
    char *r = malloc(a + b + 2);
    if (!r) return NULL;
    memcpy(r, base, a);
    size_t k = a;
    if (a && base[a - 1] != '/') r[k++] = '/';
    memcpy(r + k, path, b + 1);
    return r;
}

char *dlv_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, path, n);
    r[n] = '\0';
    return r;
}

/* ---- Brace expansion --------------------------------------------------- */

typedef struct strvec {
    char **v;
    size_t n, cap, max;
} strvec;

static dlv_status strvec_add(strvec *sv, const char *pattern, char *s)
{
    if (sv->n == sv->max) {
        free(s);
        return dlv_error(DLV_E_INVALID_ARG, "%s: expands to more than %zu names", pattern,
                         sv->max);
    }
    if (sv->n == sv->cap) {
        size_t c = sv->cap ? sv->cap * 2 : 16;
        char **p = realloc(sv->v, c * sizeof *p);
        if (!p) {
            free(s);
            return dlv_error_nomem("shard names", c * sizeof *p);
        }
        sv->v = p;
        sv->cap = c;
    }
    sv->v[sv->n++] = s;
    return DLV_OK;
}

static char *concat3(const char *a, size_t na, const char *b, size_t nb, const char *c)
{
    size_t nc = strlen(c);
    char *r = malloc(na + nb + nc + 1);
    if (!r) return NULL;
    memcpy(r, a, na);
    memcpy(r + na, b, nb);
    memcpy(r + na + nb, c, nc + 1);
    return r;
}

static int parse_uint(const char *s, size_t n, unsigned long long *v)
{
    if (n == 0 || n > 18) return 0;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        x = x * 10 + (unsigned long long)(s[i] - '0');
    }
    *v = x;
    return 1;
}

/* Expands the first {...} of s (recursively the rest) into sv. */
static dlv_status expand(const char *pattern, const char *s, strvec *sv)
{
    const char *open = strchr(s, '{');
    if (!open) {
        if (strchr(s, '}'))
            return dlv_error(DLV_E_INVALID_ARG, "%s: unbalanced '}'", pattern);
        char *d = strdup(s);
        if (!d) return dlv_error_nomem("shard name", strlen(s) + 1);
        return strvec_add(sv, pattern, d);
    }
    const char *close = strchr(open, '}');
    if (!close) return dlv_error(DLV_E_INVALID_ARG, "%s: unbalanced '{'", pattern);
    const char *body = open + 1;
    size_t blen = (size_t)(close - body);
    if (memchr(body, '{', blen))
        return dlv_error(DLV_E_INVALID_ARG, "%s: nested braces are not supported", pattern);
    size_t pre = (size_t)(open - s);
    const char *dots = NULL;
    for (size_t i = 0; i + 1 < blen; i++)
        if (body[i] == '.' && body[i + 1] == '.') {
            dots = body + i;
            break;
        }
    dlv_status st = DLV_OK;
    if (dots) {
        unsigned long long a, b;
        size_t na = (size_t)(dots - body), nb = blen - na - 2;
        if (!parse_uint(body, na, &a) || !parse_uint(dots + 2, nb, &b) || a > b)
            return dlv_error(DLV_E_INVALID_ARG,
                             "%s: bad range {%.*s} (expected {A..B}, decimal, A <= B)", pattern,
                             (int)blen, body);
        if (b - a >= sv->max)
            return dlv_error(DLV_E_INVALID_ARG, "%s: expands to more than %zu names", pattern,
                             sv->max);
        for (unsigned long long x = a; x <= b && st == DLV_OK; x++) {
            char num[32];
            int w = snprintf(num, sizeof num, "%0*llu", (int)na, x);
            char *full = concat3(s, pre, num, (size_t)w, close + 1);
            if (!full) return dlv_error_nomem("shard name", strlen(s) + 32);
            st = expand(pattern, full, sv);
            free(full);
        }
        return st;
    }
    const char *p = body, *end = close;
    while (st == DLV_OK) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        char *head = concat3(s, pre, p, (size_t)(stop - p), close + 1);
        if (!head) return dlv_error_nomem("shard name", strlen(s) + 1);
        st = expand(pattern, head, sv);
        free(head);
        if (!comma) break;
        p = comma + 1;
    }
    return st;
}

dlv_status dlv_expand_braces(const char *pattern, size_t max_out, char ***out, size_t *n)
{
    strvec sv = {NULL, 0, 0, max_out};
    dlv_status st = expand(pattern, pattern, &sv);
    if (st != DLV_OK) {
        dlv_free_strings(sv.v, sv.n);
        return st;
    }
    *out = sv.v;
    *n = sv.n;
    return DLV_OK;
}
