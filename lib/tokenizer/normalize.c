/* Normalizers, applied in order to each piece of text outside the
 * non-normalized added tokens. Unicode forms come from utf8proc. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

static dlv_status unicode_form(const dlv_tbuf *in, dlv_norm_kind kind, dlv_tbuf *out)
{
    int opts = UTF8PROC_STABLE;
    if (kind == DLV_NORM_NFC || kind == DLV_NORM_NFKC) opts |= UTF8PROC_COMPOSE;
    else opts |= UTF8PROC_DECOMPOSE;
    if (kind == DLV_NORM_NFKC || kind == DLV_NORM_NFKD) opts |= UTF8PROC_COMPAT;
    if (in->len > (size_t)PTRDIFF_MAX / 8) return dlv_error(DLV_E_INVALID_ARG, "text too long");
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)in->p, (utf8proc_ssize_t)in->len,
                                      &res, (utf8proc_option_t)opts);
    if (n < 0) {
        free(res);
        return dlv_error(n == UTF8PROC_ERROR_NOMEM ? DLV_E_NOMEM : DLV_E_INVALID_ARG,
                         "unicode normalization: %s", utf8proc_errmsg(n));
    }
    dlv_status st = dlv_tbuf_append(out, (const char *)res, (size_t)n);
    free(res);
    return st;
}

static dlv_status replace_all(const dlv_tbuf *in, const char *from, const char *to, dlv_tbuf *out)
{
    size_t fl = strlen(from), tl = strlen(to), i = 0, start = 0;
    dlv_status st = DLV_OK;
    if (!fl) return dlv_tbuf_append(out, in->p, in->len);
    while (st == DLV_OK && i + fl <= in->len) {
        if (memcmp(in->p + i, from, fl) == 0) {
            st = dlv_tbuf_append(out, in->p + start, i - start);
            if (st == DLV_OK) st = dlv_tbuf_append(out, to, tl);
            i += fl;
            start = i;
        } else
            i++;
    }
    if (st == DLV_OK) st = dlv_tbuf_append(out, in->p + start, in->len - start);
    return st;
}

/* Replace with a {"Regex": r} pattern: every non-empty match of r becomes
 * to (for the patterns tokenizer.json files use, such as CLIP's \s+ -> " ",
 * these are exactly the matches Oniguruma finds). */
static dlv_status replace_regex(const dlv_tbuf *in, const void *re, const char *to,
                                dlv_tbuf *out)
{
    dlv_matcher *m = NULL;
    dlv_status st = dlv_regex_matcher(re, &m);
    size_t tl = strlen(to), pos = 0, ms, me;
    int rc = 0;
    while (st == DLV_OK && (rc = dlv_regex_next(m, in->p, in->len, pos, &ms, &me)) == 1) {
        st = dlv_tbuf_append(out, in->p + pos, ms - pos);
        if (st == DLV_OK) st = dlv_tbuf_append(out, to, tl);
        pos = me;
    }
    if (st == DLV_OK && rc < 0) st = DLV_E_UNSUPPORTED;
    if (st == DLV_OK) st = dlv_tbuf_append(out, in->p + pos, in->len - pos);
    dlv_regex_matcher_free(m);
    return st;
}

static dlv_status lowercase(const dlv_tbuf *in, dlv_tbuf *out)
{
    dlv_status st = DLV_OK;
    for (size_t i = 0; st == DLV_OK && i < in->len;) {
        uint32_t cp;
        i += dlv_utf8_next(in->p + i, in->len - i, &cp);
        /* HF's Lowercase is Rust's char::to_lowercase, the full Unicode
         * mapping; utf8proc_tolower is the simple one-to-one mapping. They
         * differ only where the full lowercase is more than one code point,
         * which (SpecialCasing.txt, unconditional) is U+0130 alone:
         * "i" + U+0307 COMBINING DOT ABOVE. */
        if (cp == 0x130) {
            st = dlv_tbuf_append_cp(out, 'i');
            if (st == DLV_OK) st = dlv_tbuf_append_cp(out, 0x307);
            continue;
        }
        st = dlv_tbuf_append_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
    }
    return st;
}

static dlv_status strip(const dlv_tbuf *in, int left, int right, dlv_tbuf *out)
{
    size_t a = 0, b = in->len;
    while (left && a < b) {
        uint32_t cp;
        size_t l = dlv_utf8_next(in->p + a, b - a, &cp);
        if (!dlv_unicode_is_space(cp)) break;
        a += l;
    }
    while (right && b > a) {
        size_t s = b - 1;
        while (s > a && ((unsigned char)in->p[s] & 0xC0) == 0x80) s--;
        uint32_t cp;
        dlv_utf8_next(in->p + s, b - s, &cp);
        if (!dlv_unicode_is_space(cp)) break;
        b = s;
    }
    return dlv_tbuf_append(out, in->p + a, b - a);
}

/* SentencePiece's remove_extra_whitespaces: no leading or trailing spaces,
 * runs of spaces become one. */
static dlv_status spm_spaces(const dlv_tbuf *in, dlv_tbuf *out)
{
    dlv_status st = DLV_OK;
    int pending = 0;
    for (size_t i = 0; st == DLV_OK && i < in->len; i++) {
        if (in->p[i] == ' ') {
            pending = out->len > 0;
            continue;
        }
        if (pending) st = dlv_tbuf_append(out, " ", 1);
        pending = 0;
        if (st == DLV_OK) st = dlv_tbuf_append(out, in->p + i, 1);
    }
    return st;
}

static dlv_status apply(const dlv_normalizer *nm, const dlv_tbuf *in, dlv_tbuf *out)
{
    switch (nm->kind) {
    case DLV_NORM_NFC:
    case DLV_NORM_NFD:
    case DLV_NORM_NFKC:
    case DLV_NORM_NFKD: return unicode_form(in, nm->kind, out);
    case DLV_NORM_PREPEND: {
        dlv_status st = DLV_OK;
        if (in->len) st = dlv_tbuf_append(out, nm->a, strlen(nm->a));
        if (st == DLV_OK) st = dlv_tbuf_append(out, in->p, in->len);
        return st;
    }
    case DLV_NORM_REPLACE:
        return nm->regex ? replace_regex(in, nm->regex, nm->b, out)
                         : replace_all(in, nm->a, nm->b, out);
    case DLV_NORM_LOWERCASE: return lowercase(in, out);
    case DLV_NORM_STRIP: return strip(in, nm->flag1, nm->flag2, out);
    case DLV_NORM_SPM_SPACES: return spm_spaces(in, out);
    }
    return dlv_error(DLV_E_UNSUPPORTED, "unknown normalizer");
}

dlv_status dlv_normalize(const dlv_tokenizer *tok, const char *s, size_t n, dlv_tbuf *out)
{
    dlv_tbuf a = {0}, b = {0};
    dlv_status st = dlv_tbuf_append(&a, s, n);
    for (size_t i = 0; st == DLV_OK && i < tok->n_norms; i++) {
        b.len = 0;
        st = dlv_tbuf_reserve(&b, 0);
        if (st == DLV_OK) st = apply(&tok->norms[i], &a, &b);
        dlv_tbuf t = a;
        a = b;
        b = t;
    }
    if (st == DLV_OK) st = dlv_tbuf_append(out, a.p, a.len);
    dlv_tbuf_free(&a);
    dlv_tbuf_free(&b);
    return st;
}
