/* UTF-8 validation, decoding and lossy repair, and the two Unicode
 * properties the added-token rules need. */
#include <utf8proc.h>

#include "tokenizer/text_util.h"

size_t dlv_utf8_len(unsigned char c)
{
    if (c >= 0xF0) return 4;
    if (c >= 0xE0) return 3;
    if (c >= 0xC0) return 2;
    return 1;
}

size_t dlv_utf8_next(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = dlv_utf8_len(u[0]);
    if (len > n) len = 1; /* cannot happen on checked input; stay in bounds */
    uint32_t c = len == 1 ? u[0] : len == 2 ? (u[0] & 0x1Fu) : len == 3 ? (u[0] & 0x0Fu) : (u[0] & 0x07u);
    for (size_t i = 1; i < len; i++) c = (c << 6) | (u[i] & 0x3Fu);
    *cp = c;
    return len;
}

/* Length of the well-formed sequence at s, or 0 if ill-formed; *bad gets the
 * length of the maximal ill-formed prefix (at least 1) in that case. */
static size_t valid_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    *bad = 1;
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (i >= n) return 0;
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (s[i] < l || s[i] > h) return 0;
        *bad = i + 1;
    }
    return len;
}

size_t dlv_utf8_check(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = valid_seq(u + i, n - i, &bad);
        if (!len) return i + 1;
        i += len;
    }
    return 0;
}

dlv_status dlv_utf8_lossy(dlv_tbuf *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, start = 0, bad;
    while (i < n) {
        size_t len = valid_seq(u + i, n - i, &bad);
        if (len) {
            i += len;
            continue;
        }
        dlv_status st = dlv_tbuf_append(out, s + start, i - start);
        if (st == DLV_OK) st = dlv_tbuf_append(out, "\xEF\xBF\xBD", 3);
        if (st != DLV_OK) return st;
        /* A lead byte and its good continuation bytes form one error,
         * replaced as a unit. */
        i += bad;
        start = i;
    }
    return dlv_tbuf_append(out, s + start, n - start);
}

int dlv_unicode_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int dlv_unicode_is_word(uint32_t cp)
{
    if (cp == '_') return 1;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}
