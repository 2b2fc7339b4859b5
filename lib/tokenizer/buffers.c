/* Growable byte strings and id lists used across the tokenizer pipeline. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/text_util.h"

dlv_status dlv_tbuf_reserve(dlv_tbuf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len - 1) return dlv_error_nomem("a text buffer", SIZE_MAX);
    size_t need = b->len + extra + 1;
    if (b->p && need <= b->cap) return DLV_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return dlv_error_nomem("a text buffer", cap);
    b->p = p;
    b->cap = cap;
    b->p[b->len] = '\0';
    return DLV_OK;
}

dlv_status dlv_tbuf_append(dlv_tbuf *b, const char *s, size_t n)
{
    dlv_status st = dlv_tbuf_reserve(b, n);
    if (st != DLV_OK) return st;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return DLV_OK;
}

dlv_status dlv_tbuf_append_cp(dlv_tbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return dlv_tbuf_append(b, u, n);
}

void dlv_tbuf_free(dlv_tbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

dlv_status dlv_ids_push(dlv_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        int32_t *v = dlv_array_grow(ids->v, &ids->cap, sizeof *v, 64, "an id list");
        if (!v) return DLV_E_NOMEM;
        ids->v = v;
    }
    ids->v[ids->n++] = id;
    return DLV_OK;
}

void dlv_ids_free(dlv_ids *ids)
{
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}
