/* Decoding: ids -> token strings -> the decoder chain (each decoder maps a
 * token list to a token list, like HF's decode_chain) -> joined text. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

typedef struct toklist {
    dlv_tbuf *v;
    size_t n, cap;
} toklist;

static void toklist_free(toklist *l)
{
    for (size_t i = 0; i < l->n; i++) dlv_tbuf_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static dlv_status toklist_add(toklist *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        dlv_tbuf *v = dlv_array_grow(l->v, &l->cap, sizeof *v, 16, "a token list");
        if (!v) return DLV_E_NOMEM;
        l->v = v;
    }
    l->v[l->n] = (dlv_tbuf){0};
    dlv_status st = dlv_tbuf_append(&l->v[l->n], s, n);
    if (st != DLV_OK) {
        dlv_tbuf_free(&l->v[l->n]);
        return st;
    }
    l->n++;
    return DLV_OK;
}

static dlv_status replace_in(const dlv_tbuf *t, const char *from, const char *to, toklist *out)
{
    dlv_tbuf r = {0};
    size_t fl = strlen(from), tl = strlen(to), i = 0, start = 0;
    dlv_status st = dlv_tbuf_reserve(&r, t->len);
    while (st == DLV_OK && fl && i + fl <= t->len) {
        if (memcmp(t->p + i, from, fl) == 0) {
            st = dlv_tbuf_append(&r, t->p + start, i - start);
            if (st == DLV_OK) st = dlv_tbuf_append(&r, to, tl);
            i += fl;
            start = i;
        } else
            i++;
    }
    if (st == DLV_OK) st = dlv_tbuf_append(&r, t->p + start, t->len - start);
    if (st == DLV_OK) st = toklist_add(out, r.p, r.len);
    dlv_tbuf_free(&r);
    return st;
}

/* "<0xAB>" -> 0xAB, or -1. */
static int byte_token(const dlv_tbuf *t)
{
    if (t->len != 6 || memcmp(t->p, "<0x", 3) != 0 || t->p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = t->p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static dlv_status flush_bytes(dlv_tbuf *bytes, toklist *out)
{
    dlv_status st = DLV_OK;
    if (!bytes->len) return st;
    if (dlv_utf8_check(bytes->p, bytes->len) == 0) st = toklist_add(out, bytes->p, bytes->len);
    else
        for (size_t i = 0; st == DLV_OK && i < bytes->len; i++)
            st = toklist_add(out, "\xEF\xBF\xBD", 3);
    bytes->len = 0;
    return st;
}

static dlv_status byte_fallback(const toklist *in, toklist *out)
{
    dlv_tbuf bytes = {0};
    dlv_status st = dlv_tbuf_reserve(&bytes, 16);
    for (size_t i = 0; st == DLV_OK && i < in->n; i++) {
        int b = byte_token(&in->v[i]);
        if (b >= 0) {
            char c = (char)b;
            st = dlv_tbuf_append(&bytes, &c, 1);
            continue;
        }
        st = flush_bytes(&bytes, out);
        if (st == DLV_OK) st = toklist_add(out, in->v[i].p, in->v[i].len);
    }
    if (st == DLV_OK) st = flush_bytes(&bytes, out);
    dlv_tbuf_free(&bytes);
    return st;
}

static dlv_status fuse(const toklist *in, toklist *out)
{
    dlv_tbuf all = {0};
    dlv_status st = dlv_tbuf_reserve(&all, 0);
    for (size_t i = 0; st == DLV_OK && i < in->n; i++)
        st = dlv_tbuf_append(&all, in->v[i].p, in->v[i].len);
    if (st == DLV_OK) st = toklist_add(out, all.p, all.len);
    dlv_tbuf_free(&all);
    return st;
}

static dlv_status strip(const dlv_decoder *d, const toklist *in, toklist *out)
{
    size_t cl = strlen(d->a);
    dlv_status st = DLV_OK;
    for (size_t i = 0; st == DLV_OK && i < in->n; i++) {
        const char *s = in->v[i].p;
        size_t a = 0, b = in->v[i].len;
        for (size_t k = 0; cl && k < d->n1 && b - a >= cl && memcmp(s + a, d->a, cl) == 0; k++)
            a += cl;
        for (size_t k = 0; cl && k < d->n2 && b - a >= cl && memcmp(s + b - cl, d->a, cl) == 0;
             k++)
            b -= cl;
        st = toklist_add(out, s + a, b - a);
    }
    return st;
}

static dlv_status byte_level(const toklist *in, toklist *out)
{
    dlv_tbuf bytes = {0}, text = {0};
    dlv_status st = dlv_tbuf_reserve(&bytes, 0);
    for (size_t i = 0; st == DLV_OK && i < in->n; i++) {
        const char *s = in->v[i].p;
        size_t n = in->v[i].len;
        for (size_t j = 0; st == DLV_OK && j < n;) {
            uint32_t cp;
            size_t l = dlv_utf8_next(s + j, n - j, &cp);
            int b = dlv_byte_level_byte(cp);
            if (b >= 0) {
                char c = (char)b;
                st = dlv_tbuf_append(&bytes, &c, 1);
            } else
                st = dlv_tbuf_append(&bytes, s + j, l);
            j += l;
        }
    }
    if (st == DLV_OK) st = dlv_tbuf_reserve(&text, bytes.len);
    if (st == DLV_OK) st = dlv_utf8_lossy(&text, bytes.p, bytes.len);
    if (st == DLV_OK) st = toklist_add(out, text.p, text.len);
    dlv_tbuf_free(&bytes);
    dlv_tbuf_free(&text);
    return st;
}

static dlv_status metaspace(const dlv_decoder *d, const toklist *in, toklist *out)
{
    dlv_status st = DLV_OK;
    for (size_t i = 0; st == DLV_OK && i < in->n; i++) {
        size_t before = out->n;
        st = replace_in(&in->v[i], d->a, " ", out);
        if (st == DLV_OK && i == 0 && d->flag && out->n > before && out->v[before].len &&
            out->v[before].p[0] == ' ') {
            dlv_tbuf *t = &out->v[before];
            memmove(t->p, t->p + 1, t->len);
            t->len--;
        }
    }
    return st;
}

static dlv_status apply(const dlv_decoder *d, const toklist *in, toklist *out)
{
    switch (d->kind) {
    case DLV_DEC_REPLACE: {
        dlv_status st = DLV_OK;
        for (size_t i = 0; st == DLV_OK && i < in->n; i++)
            st = replace_in(&in->v[i], d->a, d->b, out);
        return st;
    }
    case DLV_DEC_BYTE_FALLBACK: return byte_fallback(in, out);
    case DLV_DEC_FUSE: return fuse(in, out);
    case DLV_DEC_STRIP: return strip(d, in, out);
    case DLV_DEC_BYTE_LEVEL: return byte_level(in, out);
    case DLV_DEC_METASPACE: return metaspace(d, in, out);
    }
    return dlv_error(DLV_E_UNSUPPORTED, "unknown decoder");
}

static int is_special_id(const dlv_tokenizer *tok, int32_t id)
{
    const dlv_added_token *a = dlv_tokenizer_added(tok, id);
    return a && a->special;
}

dlv_status dlv_tokenizer_decode(const dlv_tokenizer *tok, const int32_t *ids, size_t n,
                                int skip_special, dlv_tbuf *out)
{
    toklist a = {0}, b = {0};
    dlv_status st = DLV_OK;
    for (size_t i = 0; st == DLV_OK && i < n; i++) {
        size_t len;
        const char *t = dlv_tokenizer_token(tok, ids[i], &len);
        if (!t) {
            st = dlv_error(DLV_E_INVALID_ARG, "%s: id %ld (at index %zu) is not in the "
                           "vocabulary of %zu ids", tok->source, (long)ids[i], i, tok->vocab_size);
            break;
        }
        if (skip_special && is_special_id(tok, ids[i])) continue;
        st = toklist_add(&a, t, len);
    }
    if (st == DLV_OK && !tok->has_decoder) {
        /* HF joins the tokens with spaces when there is no decoder. */
        for (size_t i = 0; st == DLV_OK && i < a.n; i++) {
            if (i) st = dlv_tbuf_append(out, " ", 1);
            if (st == DLV_OK) st = dlv_tbuf_append(out, a.v[i].p, a.v[i].len);
        }
        toklist_free(&a);
        return st;
    }
    for (size_t k = 0; st == DLV_OK && k < tok->n_decs; k++) {
        st = apply(&tok->decs[k], &a, &b);
        toklist t = a;
        a = b;
        b = t;
        toklist_free(&b);
    }
    for (size_t i = 0; st == DLV_OK && i < a.n; i++) st = dlv_tbuf_append(out, a.v[i].p, a.v[i].len);
    if (st == DLV_OK) st = dlv_tbuf_reserve(out, 0);
    toklist_free(&a);
    toklist_free(&b);
    return st;
}
