/* The BPE model on one word: characters (or byte-fallback bytes, or unk) to
 * symbols, then merges by a binary heap ordered by (rank, position), which
 * is what HF's Word::merge_all does; O(n log n) in the word length. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    size_t len;         /* 0 once merged away */
} sym;

typedef struct cand {
    int32_t rank;
    int32_t pos;
    int32_t merged;
} cand;

static int cand_less(cand a, cand b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static dlv_status heap_push(heap *h, cand c)
{
    if (h->n == h->cap) {
        cand *v = dlv_array_grow(h->v, &h->cap, sizeof *v, 32, "a merge queue");
        if (!v) return DLV_E_NOMEM;
        h->v = v;
    }
    size_t i = h->n++;
    while (i > 0 && cand_less(c, h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = c;
    return DLV_OK;
}

static cand heap_pop(heap *h)
{
    cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        cand best = last;
        if (l < h->n && cand_less(h->v[l], best)) {
            m = l;
            best = h->v[l];
        }
        if (r < h->n && cand_less(h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* The merge of (a, b): its rank and the merged id. */
static int lookup_pair(const dlv_bpe *bpe, int32_t a, int32_t b, int32_t *rank, int32_t *merged,
                       dlv_tbuf *scratch)
{
    if (!bpe->score_rank) return dlv_pairmap_get(&bpe->merges, a, b, rank, merged);
    /* SentencePiece: the concatenation must itself be a mergeable piece. */
    scratch->len = 0;
    if (dlv_tbuf_append(scratch, bpe->tokens[a], bpe->lens[a]) != DLV_OK ||
        dlv_tbuf_append(scratch, bpe->tokens[b], bpe->lens[b]) != DLV_OK)
        return 0;
    int32_t id = dlv_strmap_get(&bpe->vocab, scratch->p, scratch->len);
    if (id < 0 || bpe->score_rank[id] < 0) return 0;
    *rank = bpe->score_rank[id];
    *merged = id;
    return 1;
}

typedef struct word {
    sym *v;
    size_t n, cap;
} word;

static dlv_status word_add(word *w, int32_t id, size_t len)
{
    if (w->n == w->cap) {
        sym *v = dlv_array_grow(w->v, &w->cap, sizeof *v, 32, "a BPE word");
        if (!v) return DLV_E_NOMEM;
        w->v = v;
    }
    if (w->n >= INT32_MAX - 1) return dlv_error(DLV_E_INVALID_ARG, "a word is too long for BPE");
    int32_t i = (int32_t)w->n;
    w->v[w->n++] = (sym){id, i - 1, i + 1, len};
    return DLV_OK;
}

/* Characters to initial symbols, as HF's BPE::merge_word does. */
static dlv_status initial_symbols(const dlv_bpe *bpe, const char *s, size_t n, word *w,
                                  dlv_tbuf *scratch)
{
    int32_t unk_id = -1;
    size_t unk_len = 0;
    dlv_status st = DLV_OK;
    for (size_t i = 0; st == DLV_OK && i < n;) {
        size_t cl = dlv_utf8_len((unsigned char)s[i]);
        if (cl > n - i) cl = n - i;
        int first = i == 0, last = i + cl == n;
        scratch->len = 0;
        if (!first && bpe->prefix) st = dlv_tbuf_append(scratch, bpe->prefix, strlen(bpe->prefix));
        if (st == DLV_OK) st = dlv_tbuf_append(scratch, s + i, cl);
        if (st == DLV_OK && last && bpe->suffix)
            st = dlv_tbuf_append(scratch, bpe->suffix, strlen(bpe->suffix));
        if (st != DLV_OK) break;
        int32_t id = dlv_strmap_get(&bpe->vocab, scratch->p, scratch->len);
        if (id >= 0) {
            if (unk_id >= 0) st = word_add(w, unk_id, unk_len);
            unk_id = -1;
            if (st == DLV_OK) st = word_add(w, id, cl);
        } else {
            int have_bytes = bpe->byte_fallback;
            for (size_t k = 0; have_bytes && k < scratch->len; k++)
                if (bpe->byte_ids[(unsigned char)scratch->p[k]] < 0) have_bytes = 0;
            if (have_bytes) {
                for (size_t k = 0; st == DLV_OK && k < scratch->len; k++)
                    st = word_add(w, bpe->byte_ids[(unsigned char)scratch->p[k]], 1);
            } else if (bpe->unk_id >= 0) {
                if (unk_id >= 0 && bpe->fuse_unk) {
                    unk_len += cl;
                } else {
                    if (unk_id >= 0) st = word_add(w, unk_id, unk_len);
                    unk_id = bpe->unk_id;
                    unk_len = cl;
                }
            }
            /* Without unk or byte fallback the character is dropped, as in HF. */
        }
        i += cl;
    }
    if (st == DLV_OK && unk_id >= 0) st = word_add(w, unk_id, unk_len);
    return st;
}

dlv_status dlv_bpe_word(const dlv_bpe *bpe, const char *s, size_t n, dlv_ids *out)
{
    if (!n) return DLV_OK;
    if (bpe->ignore_merges) {
        int32_t id = dlv_strmap_get(&bpe->vocab, s, n);
        if (id >= 0) return dlv_ids_push(out, id);
    }
    word w = {0};
    heap h = {0};
    dlv_tbuf scratch = {0};
    dlv_status st = initial_symbols(bpe, s, n, &w, &scratch);
    if (st == DLV_OK && w.n) w.v[w.n - 1].next = -1;
    int32_t rank, merged;
    for (size_t i = 0; st == DLV_OK && i + 1 < w.n; i++)
        if (lookup_pair(bpe, w.v[i].id, w.v[i + 1].id, &rank, &merged, &scratch))
            st = heap_push(&h, (cand){rank, (int32_t)i, merged});
    while (st == DLV_OK && h.n) {
        cand top = heap_pop(&h);
        sym *cur = &w.v[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        sym right = w.v[cur->next];
        /* Stale entries: the pair at pos changed since it was queued. */
        if (!lookup_pair(bpe, cur->id, right.id, &rank, &merged, &scratch) || merged != top.merged)
            continue;
        cur->id = top.merged;
        cur->len += right.len;
        w.v[cur->next].len = 0;
        cur->next = right.next;
        if (right.next >= 0) w.v[right.next].prev = top.pos;
        if (cur->prev >= 0 &&
            lookup_pair(bpe, w.v[cur->prev].id, cur->id, &rank, &merged, &scratch))
            st = heap_push(&h, (cand){rank, cur->prev, merged});
        if (st == DLV_OK && cur->next >= 0 &&
            lookup_pair(bpe, cur->id, w.v[cur->next].id, &rank, &merged, &scratch))
            st = heap_push(&h, (cand){rank, top.pos, merged});
    }
    for (size_t i = 0; st == DLV_OK && i < w.n; i++)
        if (w.v[i].len) st = dlv_ids_push(out, w.v[i].id);
    free(w.v);
    free(h.v);
    dlv_tbuf_free(&scratch);
    return st;
}

void dlv_bpe_free(dlv_bpe *bpe)
{
    if (bpe->tokens)
        for (size_t i = 0; i < bpe->n_tokens; i++) free(bpe->tokens[i]);
    free(bpe->tokens);
    free(bpe->lens);
    free(bpe->score_rank);
    free(bpe->prefix);
    free(bpe->suffix);
    dlv_strmap_free(&bpe->vocab);
    dlv_pairmap_free(&bpe->merges);
    memset(bpe, 0, sizeof *bpe);
}
