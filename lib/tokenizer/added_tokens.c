/* Splitting added tokens out of the text before anything else touches it:
 * leftmost-longest matching (what HF's Aho-Corasick automaton does), then
 * the single_word, lstrip and rstrip rules. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

static int last_char_is_word(const char *s, size_t n)
{
    if (!n) return 0;
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    uint32_t cp;
    dlv_utf8_next(s + i, n - i, &cp);
    return dlv_unicode_is_word(cp);
}

static int first_char_is_word(const char *s, size_t n)
{
    if (!n) return 0;
    uint32_t cp;
    dlv_utf8_next(s, n, &cp);
    return dlv_unicode_is_word(cp);
}

/* Start of the run of whitespace that ends at n. */
static size_t space_run_start(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
        uint32_t cp;
        dlv_utf8_next(s + j, i - j, &cp);
        if (!dlv_unicode_is_space(cp)) break;
        i = j;
    }
    return i;
}

static size_t space_run_len(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = dlv_utf8_next(s + i, n - i, &cp);
        if (!dlv_unicode_is_space(cp)) break;
        i += l;
    }
    return i;
}

static dlv_status push(dlv_segment **v, size_t *n, size_t *cap, size_t off, size_t len, int32_t id)
{
    if (!len && id < 0) return DLV_OK;
    if (*n == *cap) {
        dlv_segment *p = dlv_array_grow(*v, cap, sizeof *p, 8, "a segment list");
        if (!p) return DLV_E_NOMEM;
        *v = p;
    }
    (*v)[(*n)++] = (dlv_segment){off, len, id};
    return DLV_OK;
}

/* The longest token of this stage matching at s[i], or NULL. */
static const dlv_added_token *match_at(const dlv_tokenizer *tok, int normalized, const char *s,
                                       size_t n, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    const dlv_added_token *best = NULL;
    for (uint32_t k = tok->by_first[c]; k < tok->by_first[c + 1]; k++) {
        const dlv_added_token *t = &tok->added[tok->added_order[k]];
        if ((t->normalized != 0) != (normalized != 0)) continue;
        if (t->match_len > n - i || (best && t->match_len <= best->match_len)) continue;
        if (memcmp(s + i, t->match, t->match_len) == 0) best = t;
    }
    return best;
}

dlv_status dlv_added_split(const dlv_tokenizer *tok, int normalized, const char *s, size_t n,
                           dlv_segment **segs, size_t *n_segs)
{
    dlv_segment *v = NULL;
    size_t nv = 0, cap = 0, done = 0, i = 0;
    dlv_status st = DLV_OK;
    while (st == DLV_OK && i < n) {
        const dlv_added_token *t = tok->n_added ? match_at(tok, normalized, s, n, i) : NULL;
        if (!t) {
            i++;
            continue;
        }
        size_t start = i, stop = i + t->match_len;
        i = stop;
        if (t->single_word && (last_char_is_word(s, start) ||
                               first_char_is_word(s + stop, n - stop)))
            continue;
        if (t->lstrip) {
            size_t ns = space_run_start(s, start);
            start = ns > done ? ns : done;
        }
        if (t->rstrip) stop += space_run_len(s + stop, n - stop);
        st = push(&v, &nv, &cap, done, start - done, -1);
        if (st == DLV_OK) st = push(&v, &nv, &cap, start, stop - start, t->id);
        done = i = stop;
    }
    if (st == DLV_OK) st = push(&v, &nv, &cap, done, n - done, -1);
    if (st != DLV_OK) {
        free(v);
        return st;
    }
    *segs = v;
    *n_segs = nv;
    return DLV_OK;
}
