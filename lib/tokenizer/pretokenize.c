/* Pre-tokenizers: each stage turns a list of pieces into a finer list
 * (Split on a regex, ByteLevel's byte alphabet, Metaspace's word marks),
 * with Hugging Face's split behaviours. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

dlv_status dlv_pieces_add_range(dlv_pieces *p, size_t off, size_t n, int at_start)
{
    if (!n) return DLV_OK;
    if (p->n == p->cap) {
        dlv_piece *v = dlv_array_grow(p->v, &p->cap, sizeof *v, 16, "a piece list");
        if (!v) return DLV_E_NOMEM;
        p->v = v;
    }
    p->v[p->n++] = (dlv_piece){off, n, at_start};
    return DLV_OK;
}

dlv_status dlv_pieces_add(dlv_pieces *p, const char *s, size_t n, int at_start)
{
    if (!n) return DLV_OK;
    size_t off = p->text.len;
    dlv_status st = dlv_tbuf_append(&p->text, s, n);
    return st == DLV_OK ? dlv_pieces_add_range(p, off, n, at_start) : st;
}

void dlv_pieces_free(dlv_pieces *p)
{
    dlv_tbuf_free(&p->text);
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* One split point list: [start, end) and whether it is a match. */
typedef struct seg {
    size_t a, b;
    int match;
} seg;

typedef struct segs {
    seg *v;
    size_t n, cap;
} segs;

static dlv_status segs_push(segs *s, size_t a, size_t b, int match)
{
    if (a == b) return DLV_OK;
    if (s->n == s->cap) {
        seg *v = dlv_array_grow(s->v, &s->cap, sizeof *v, 16, "a split list");
        if (!v) return DLV_E_NOMEM;
        s->v = v;
    }
    s->v[s->n++] = (seg){a, b, match};
    return DLV_OK;
}

/* Folds the match/gap list as HF's SplitDelimiterBehavior does, then emits
 * the pieces of text s (which starts the original text when at_start). */
static dlv_status emit(dlv_pieces *out, const char *s, segs *sg, dlv_split_behavior beh,
                       int at_start)
{
    size_t k = 0;
    if (beh == DLV_SPLIT_CONTIGUOUS) {
        /* Runs of adjacent segments with the same match flag become one. */
        int prev_match = 0;
        for (size_t i = 0; i < sg->n; i++) {
            int m = sg->v[i].match;
            if (m == prev_match && k > 0) sg->v[k - 1].b = sg->v[i].b;
            else sg->v[k++] = sg->v[i];
            prev_match = m;
        }
        sg->n = k;
    } else if (beh == DLV_SPLIT_MERGED_PREV) {
        int prev_match = 0;
        for (size_t i = 0; i < sg->n; i++) {
            int m = sg->v[i].match;
            if (m && !prev_match && k > 0) sg->v[k - 1].b = sg->v[i].b;
            else sg->v[k++] = sg->v[i];
            prev_match = m;
        }
        sg->n = k;
    } else if (beh == DLV_SPLIT_MERGED_NEXT) {
        int prev_match = 0;
        size_t w = sg->n;
        for (size_t i = sg->n; i-- > 0;) {
            int m = sg->v[i].match;
            if (m && !prev_match && w < sg->n) sg->v[w].a = sg->v[i].a;
            else sg->v[--w] = sg->v[i];
            prev_match = m;
        }
        memmove(sg->v, sg->v + w, (sg->n - w) * sizeof *sg->v);
        sg->n -= w;
    }
    for (size_t i = 0; i < sg->n; i++) {
        if (beh == DLV_SPLIT_REMOVED && sg->v[i].match) continue;
        dlv_status st = dlv_pieces_add(out, s + sg->v[i].a, sg->v[i].b - sg->v[i].a,
                                       at_start && sg->v[i].a == 0);
        if (st != DLV_OK) return st;
    }
    return DLV_OK;
}

/* The match/gap list of s; with invert (HF's Split "invert": true) the
 * regex matches count as gaps and the text between them as matches, before
 * the behaviour folds them. */
static dlv_status regex_segs(dlv_matcher *m, const char *s, size_t n, int invert, segs *sg)
{
    size_t pos = 0, ms, me;
    dlv_status st = DLV_OK;
    int rc = 0, hit = !invert;
    while (st == DLV_OK && (rc = dlv_regex_next(m, s, n, pos, &ms, &me)) == 1) {
        st = segs_push(sg, pos, ms, !hit);
        if (st == DLV_OK) st = segs_push(sg, ms, me, hit);
        pos = me;
    }
    if (st == DLV_OK && rc < 0) return DLV_E_UNSUPPORTED;
    if (st == DLV_OK) st = segs_push(sg, pos, n, !hit);
    return st;
}

static dlv_status split_stage(const dlv_pretokenizer *pt, const dlv_pieces *in, dlv_pieces *out)
{
    dlv_matcher *m = NULL;
    dlv_status st = dlv_regex_matcher(pt->regex, &m);
    segs sg = {0};
    for (size_t i = 0; st == DLV_OK && i < in->n; i++) {
        const char *s = in->text.p + in->v[i].off;
        sg.n = 0;
        st = regex_segs(m, s, in->v[i].len, pt->invert, &sg);
        if (st == DLV_OK) st = emit(out, s, &sg, pt->behavior, in->v[i].at_start);
    }
    free(sg.v);
    dlv_regex_matcher_free(m);
    return st;
}

static dlv_status byte_level_stage(const dlv_pretokenizer *pt, const dlv_pieces *in,
                                   dlv_pieces *out)
{
    dlv_pieces split = {0};
    dlv_status st = DLV_OK;
    dlv_tbuf tmp = {0};
    for (size_t i = 0; st == DLV_OK && i < in->n; i++) {
        const char *s = in->text.p + in->v[i].off;
        size_t n = in->v[i].len;
        tmp.len = 0;
        if (pt->flag1 && s[0] != ' ') st = dlv_tbuf_append(&tmp, " ", 1);
        if (st == DLV_OK) st = dlv_tbuf_append(&tmp, s, n);
        if (st == DLV_OK) st = dlv_pieces_add(&split, tmp.p, tmp.len, in->v[i].at_start);
    }
    dlv_tbuf_free(&tmp);
    const dlv_pieces *src = &split;
    dlv_pieces re = {0};
    if (st == DLV_OK && pt->regex) {
        dlv_pretokenizer iso = *pt;
        iso.behavior = DLV_SPLIT_ISOLATED;
        st = split_stage(&iso, &split, &re);
        src = &re;
    }
    for (size_t i = 0; st == DLV_OK && i < src->n; i++) {
        const unsigned char *s = (const unsigned char *)src->text.p + src->v[i].off;
        size_t off = out->text.len;
        st = dlv_tbuf_reserve(&out->text, src->v[i].len * 2);
        for (size_t j = 0; st == DLV_OK && j < src->v[i].len; j++)
            st = dlv_tbuf_append_cp(&out->text, dlv_byte_level_char(s[j]));
        if (st == DLV_OK)
            st = dlv_pieces_add_range(out, off, out->text.len - off, src->v[i].at_start);
    }
    dlv_pieces_free(&split);
    dlv_pieces_free(&re);
    return st;
}

static dlv_status metaspace_stage(const dlv_pretokenizer *pt, const dlv_pieces *in,
                                  dlv_pieces *out)
{
    size_t rl = strlen(pt->a);
    dlv_tbuf t = {0};
    segs sg = {0};
    dlv_status st = DLV_OK;
    for (size_t i = 0; st == DLV_OK && i < in->n; i++) {
        const char *s = in->text.p + in->v[i].off;
        size_t n = in->v[i].len;
        t.len = 0;
        int starts = n >= rl && memcmp(s, pt->a, rl) == 0;
        if (s[0] == ' ') starts = 1; /* becomes the replacement below */
        if (!starts && (pt->scheme == DLV_PREPEND_ALWAYS ||
                        (pt->scheme == DLV_PREPEND_FIRST && in->v[i].at_start)))
            st = dlv_tbuf_append(&t, pt->a, rl);
        for (size_t j = 0; st == DLV_OK && j < n; j++)
            st = s[j] == ' ' ? dlv_tbuf_append(&t, pt->a, rl) : dlv_tbuf_append(&t, s + j, 1);
        if (st != DLV_OK) break;
        sg.n = 0;
        if (!pt->flag1) {
            st = dlv_pieces_add(out, t.p, t.len, in->v[i].at_start);
            continue;
        }
        size_t pos = 0;
        for (size_t j = 0; st == DLV_OK && rl && j + rl <= t.len;) {
            if (memcmp(t.p + j, pt->a, rl) == 0) {
                st = segs_push(&sg, pos, j, 0);
                if (st == DLV_OK) st = segs_push(&sg, j, j + rl, 1);
                j += rl;
                pos = j;
            } else
                j++;
        }
        if (st == DLV_OK) st = segs_push(&sg, pos, t.len, 0);
        if (st == DLV_OK) st = emit(out, t.p, &sg, DLV_SPLIT_MERGED_NEXT, in->v[i].at_start);
    }
    dlv_tbuf_free(&t);
    free(sg.v);
    return st;
}

dlv_status dlv_pretokenize(const dlv_tokenizer *tok, dlv_pieces *pieces)
{
    for (size_t i = 0; i < tok->n_pretoks; i++) {
        const dlv_pretokenizer *pt = &tok->pretoks[i];
        dlv_pieces out = {0};
        dlv_status st;
        if (pt->kind == DLV_PRETOK_SPLIT) st = split_stage(pt, pieces, &out);
        else if (pt->kind == DLV_PRETOK_BYTE_LEVEL) st = byte_level_stage(pt, pieces, &out);
        else st = metaspace_stage(pt, pieces, &out);
        if (st != DLV_OK) {
            dlv_pieces_free(&out);
            return st;
        }
        dlv_pieces_free(pieces);
        *pieces = out;
    }
    return DLV_OK;
}
