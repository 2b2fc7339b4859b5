/* Loading a SentencePiece tokenizer.model (a protobuf ModelProto) for BPE
 * models, into the same pipeline tokenizer.json gives Llama checkpoints:
 * control and user-defined pieces become added tokens, add_dummy_prefix a
 * Prepend normalizer, and merging follows piece scores. A minimal protobuf
 * reader is enough: only a few fields of three messages are read. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "core/fs.h"
#include "tokenizer/tokenizer.h"

enum { PIECE_NORMAL = 1, PIECE_UNKNOWN = 2, PIECE_CONTROL = 3, PIECE_USER = 4, PIECE_UNUSED = 5,
       PIECE_BYTE = 6 };

typedef struct pb {
    const uint8_t *p, *end;
} pb;

typedef struct pb_field {
    uint32_t num;
    uint32_t wire;
    uint64_t v;      /* varint / fixed value */
    pb sub;          /* length-delimited payload */
} pb_field;

static int pb_varint(pb *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return 0;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* 1 with a field, 0 at the end, -1 on malformed input. */
static int pb_next(pb *r, pb_field *f)
{
    if (r->p >= r->end) return 0;
    uint64_t key;
    if (!pb_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return -1;
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    switch (f->wire) {
    case 0: return pb_varint(r, &f->v) ? 1 : -1;
    case 1:
        if (r->end - r->p < 8) return -1;
        f->v = 0;
        for (int i = 7; i >= 0; i--) f->v = (f->v << 8) | r->p[i];
        r->p += 8;
        return 1;
    case 5:
        if (r->end - r->p < 4) return -1;
        f->v = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 |
               (uint64_t)r->p[3] << 24;
        r->p += 4;
        return 1;
    case 2: {
        uint64_t len;
        if (!pb_varint(r, &len) || len > (uint64_t)(r->end - r->p)) return -1;
        f->sub.p = r->p;
        f->sub.end = r->p + len;
        r->p += len;
        return 1;
    }
    default: return -1; /* groups are not used by sentencepiece_model.proto */
    }
}

typedef struct spm_piece {
    const uint8_t *s;
    size_t len;
    float score;
    int type;
} spm_piece;

typedef struct spm_spec {
    spm_piece *pieces;
    size_t n, cap;
    int model_type, byte_fallback;
    int64_t unk_id, bos_id, eos_id;
    const uint8_t *norm_name;
    size_t norm_name_len, charsmap_len;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
} spm_spec;

static dlv_status bad(const char *label, const char *what)
{
    return dlv_error(DLV_E_FORMAT, "%s: malformed SentencePiece model: %s", label, what);
}

static dlv_status read_piece(pb sub, const char *label, size_t index, spm_piece *out)
{
    pb_field f = {0};
    int rc;
    out->s = NULL;
    out->len = 0;
    out->score = 0.0f;
    out->type = PIECE_NORMAL;
    int have = 0;
    while ((rc = pb_next(&sub, &f)) == 1) {
        if (f.num == 1 && f.wire == 2) {
            out->s = f.sub.p;
            out->len = (size_t)(f.sub.end - f.sub.p);
            have = 1;
        } else if (f.num == 2 && f.wire == 5) {
            uint32_t bits = (uint32_t)f.v;
            memcpy(&out->score, &bits, sizeof out->score);
        } else if (f.num == 3 && f.wire == 0)
            out->type = (int)(f.v & 0xFF);
    }
    if (rc < 0 || !have)
        return dlv_error(DLV_E_FORMAT, "%s: malformed SentencePiece model: piece %zu: %s", label,
                         index, rc < 0 ? "truncated" : "no text");
    if (dlv_utf8_check((const char *)out->s, out->len))
        return dlv_error(DLV_E_FORMAT, "%s: SentencePiece piece %zu is not valid UTF-8", label,
                         index);
    return DLV_OK;
}

static dlv_status read_spec(const uint8_t *data, size_t len, const char *label, spm_spec *sp)
{
    pb r = {data, data + len}, sub;
    pb_field f = {0};
    int rc;
    sp->model_type = 1;
    sp->unk_id = 0;
    sp->bos_id = 1;
    sp->eos_id = 2;
    sp->add_dummy_prefix = sp->remove_extra_ws = sp->escape_ws = 1;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num == 1 && f.wire == 2) {
            if (sp->n == sp->cap) {
                spm_piece *v = dlv_array_grow(sp->pieces, &sp->cap, sizeof *v, 1024,
                                              "SentencePiece pieces");
                if (!v) return DLV_E_NOMEM;
                sp->pieces = v;
            }
            dlv_status st = read_piece(f.sub, label, sp->n, &sp->pieces[sp->n]);
            if (st != DLV_OK) return st;
            sp->n++;
        } else if (f.num == 2 && f.wire == 2) {
            sub = f.sub;
            int r2;
            while ((r2 = pb_next(&sub, &f)) == 1) {
                if (f.wire != 0) continue;
                if (f.num == 3) sp->model_type = (int)f.v;
                else if (f.num == 35) sp->byte_fallback = f.v != 0;
                else if (f.num == 40) sp->unk_id = (int32_t)(uint32_t)f.v;
                else if (f.num == 41) sp->bos_id = (int32_t)(uint32_t)f.v;
                else if (f.num == 42) sp->eos_id = (int32_t)(uint32_t)f.v;
            }
            if (r2 < 0) return bad(label, "trainer_spec is truncated");
        } else if (f.num == 3 && f.wire == 2) {
            sub = f.sub;
            int r2;
            while ((r2 = pb_next(&sub, &f)) == 1) {
                if (f.num == 1 && f.wire == 2) {
                    sp->norm_name = f.sub.p;
                    sp->norm_name_len = (size_t)(f.sub.end - f.sub.p);
                } else if (f.num == 2 && f.wire == 2)
                    sp->charsmap_len = (size_t)(f.sub.end - f.sub.p);
                else if (f.num == 3 && f.wire == 0) sp->add_dummy_prefix = f.v != 0;
                else if (f.num == 4 && f.wire == 0) sp->remove_extra_ws = f.v != 0;
                else if (f.num == 5 && f.wire == 0) sp->escape_ws = f.v != 0;
            }
            if (r2 < 0) return bad(label, "normalizer_spec is truncated");
        }
    }
    if (rc < 0) return bad(label, "truncated or not a protobuf");
    if (!sp->n) return bad(label, "no pieces");
    return DLV_OK;
}

static dlv_status add_norm(dlv_tokenizer *tok, dlv_norm_kind kind, const char *a, const char *b)
{
    dlv_normalizer *v = realloc(tok->norms, (tok->n_norms + 1) * sizeof *v);
    if (!v) return dlv_error_nomem("a normalizer", sizeof *v);
    tok->norms = v;
    dlv_normalizer *nm = &v[tok->n_norms];
    memset(nm, 0, sizeof *nm);
    nm->kind = kind;
    if (a && !(nm->a = strdup(a))) return dlv_error_nomem("a normalizer", strlen(a));
    if (b && !(nm->b = strdup(b))) {
        free(nm->a);
        return dlv_error_nomem("a normalizer", strlen(b));
    }
    tok->n_norms++;
    return DLV_OK;
}

static dlv_status add_dec(dlv_tokenizer *tok, dlv_dec_kind kind, const char *a, const char *b,
                          size_t n1)
{
    dlv_decoder *v = realloc(tok->decs, (tok->n_decs + 1) * sizeof *v);
    if (!v) return dlv_error_nomem("a decoder", sizeof *v);
    tok->decs = v;
    dlv_decoder *d = &v[tok->n_decs];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->n1 = n1;
    if (a && !(d->a = strdup(a))) return dlv_error_nomem("a decoder", strlen(a));
    if (b && !(d->b = strdup(b))) {
        free(d->a);
        return dlv_error_nomem("a decoder", strlen(b));
    }
    tok->n_decs++;
    tok->has_decoder = 1;
    return DLV_OK;
}

static int cmp_score_desc(const void *pa, const void *pb_, const spm_spec *sp)
{
    float a = sp->pieces[*(const int32_t *)pa].score, b = sp->pieces[*(const int32_t *)pb_].score;
    return a > b ? -1 : a < b;
}

/* Merge ranks: denser is better; equal scores share a rank, so the heap then
 * prefers the leftmost pair, as SentencePiece's agenda does. */
static dlv_status score_ranks(dlv_bpe *bpe, const spm_spec *sp)
{
    int32_t *order = malloc(sp->n * sizeof *order);
    bpe->score_rank = malloc(sp->n * sizeof *bpe->score_rank);
    if (!order || !bpe->score_rank) {
        free(order);
        return dlv_error_nomem("SentencePiece ranks", sp->n * 8);
    }
    size_t k = 0;
    for (size_t i = 0; i < sp->n; i++) {
        bpe->score_rank[i] = -1;
        if (sp->pieces[i].type == PIECE_NORMAL || sp->pieces[i].type == PIECE_USER)
            order[k++] = (int32_t)i;
    }
    /* Merge sort by score (stable, no qsort context needed). */
    int32_t *tmp = malloc((k + 1) * sizeof *tmp);
    if (!tmp) {
        free(order);
        return dlv_error_nomem("SentencePiece ranks", k * 4);
    }
    for (size_t w = 1; w < k; w *= 2) {
        for (size_t lo = 0; lo < k; lo += 2 * w) {
            size_t mid = lo + w < k ? lo + w : k, hi = lo + 2 * w < k ? lo + 2 * w : k;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                tmp[o++] = cmp_score_desc(&order[j], &order[i], sp) < 0 ? order[j++] : order[i++];
            while (i < mid) tmp[o++] = order[i++];
            while (j < hi) tmp[o++] = order[j++];
        }
        memcpy(order, tmp, k * sizeof *order);
    }
    int32_t rank = -1;
    for (size_t i = 0; i < k; i++) {
        if (i == 0 || sp->pieces[order[i]].score != sp->pieces[order[i - 1]].score) rank++;
        bpe->score_rank[order[i]] = rank;
    }
    free(tmp);
    free(order);
    return DLV_OK;
}

static dlv_status build(dlv_tokenizer *tok, const spm_spec *sp, const char *label)
{
    if (sp->model_type != 2) {
        const char *names[] = {"?", "Unigram", "BPE", "Word", "Char"};
        return dlv_error(DLV_E_UNSUPPORTED, "%s: SentencePiece model type '%s' is not supported "
                         "(only BPE)", label,
                         sp->model_type >= 1 && sp->model_type <= 4 ? names[sp->model_type]
                                                                   : "unknown");
    }
    if (sp->charsmap_len &&
        !(sp->norm_name_len == 8 && memcmp(sp->norm_name, "identity", 8) == 0))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: SentencePiece normalization rule '%.*s' (a "
                         "precompiled character map) is not supported", label,
                         (int)sp->norm_name_len, (const char *)sp->norm_name);
    dlv_bpe *bpe = &tok->bpe;
    if (sp->n >= DLV_MAX_TOKEN_ID) return bad(label, "too many pieces");
    bpe->n_tokens = sp->n;
    bpe->tokens = calloc(sp->n, sizeof *bpe->tokens);
    bpe->lens = calloc(sp->n, sizeof *bpe->lens);
    tok->added = calloc(sp->n, sizeof *tok->added);
    if (!bpe->tokens || !bpe->lens || !tok->added) return dlv_error_nomem("a vocabulary", sp->n * 24);
    dlv_status st = dlv_strmap_init(&bpe->vocab, sp->n);
    for (size_t i = 0; st == DLV_OK && i < sp->n; i++) {
        const spm_piece *p = &sp->pieces[i];
        if (!(bpe->tokens[i] = malloc(p->len + 1))) return dlv_error_nomem("a piece", p->len);
        memcpy(bpe->tokens[i], p->s, p->len);
        bpe->tokens[i][p->len] = '\0';
        bpe->lens[i] = (uint32_t)p->len;
        if (dlv_strmap_get(&bpe->vocab, bpe->tokens[i], p->len) < 0)
            st = dlv_strmap_put(&bpe->vocab, bpe->tokens[i], p->len, (int32_t)i);
        if (st == DLV_OK && (p->type == PIECE_CONTROL || p->type == PIECE_UNKNOWN ||
                             p->type == PIECE_USER)) {
            dlv_added_token *a = &tok->added[tok->n_added++];
            if (!(a->content = malloc(p->len + 1))) return dlv_error_nomem("a piece", p->len);
            memcpy(a->content, p->s, p->len);
            a->content[p->len] = '\0';
            a->len = p->len;
            a->id = (int32_t)i;
            a->special = p->type != PIECE_USER;
        }
    }
    if (st == DLV_OK) st = score_ranks(bpe, sp);
    if (st != DLV_OK) return st;
    bpe->byte_fallback = sp->byte_fallback;
    bpe->fuse_unk = 1;
    bpe->unk_id = sp->unk_id >= 0 && (size_t)sp->unk_id < sp->n ? (int32_t)sp->unk_id : -1;
    const char *ws = "\xE2\x96\x81";
    if (st == DLV_OK && sp->remove_extra_ws) st = add_norm(tok, DLV_NORM_SPM_SPACES, NULL, NULL);
    if (st == DLV_OK && sp->add_dummy_prefix)
        st = add_norm(tok, DLV_NORM_PREPEND, sp->escape_ws ? ws : " ", NULL);
    if (st == DLV_OK && sp->escape_ws) st = add_norm(tok, DLV_NORM_REPLACE, " ", ws);
    if (st == DLV_OK && sp->escape_ws) st = add_dec(tok, DLV_DEC_REPLACE, ws, " ", 0);
    if (st == DLV_OK) st = add_dec(tok, DLV_DEC_BYTE_FALLBACK, NULL, NULL, 0);
    if (st == DLV_OK) st = add_dec(tok, DLV_DEC_FUSE, NULL, NULL, 0);
    if (st == DLV_OK && sp->add_dummy_prefix) st = add_dec(tok, DLV_DEC_STRIP, " ", NULL, 1);
    int32_t bos = sp->bos_id >= 0 && (size_t)sp->bos_id < sp->n ? (int32_t)sp->bos_id : -1;
    /* LlamaTokenizer's defaults: BOS yes, EOS no (tokenizer_config.json may
     * say otherwise). */
    if (st == DLV_OK) st = dlv_tokenizer_set_bos_eos(tok, bos, -1);
    if (st == DLV_OK) st = dlv_tokenizer_finish(tok);
    return st;
}

dlv_status dlv_tokenizer_from_spm_bytes(const uint8_t *data, size_t len, const char *label,
                                        dlv_tokenizer **out)
{
    *out = NULL;
    spm_spec sp;
    memset(&sp, 0, sizeof sp);
    dlv_tokenizer *tok = NULL;
    dlv_status st = read_spec(data, len, label, &sp);
    if (st == DLV_OK) st = dlv_tokenizer_new_empty(label, &tok);
    if (st == DLV_OK) st = build(tok, &sp, label);
    free(sp.pieces);
    if (st != DLV_OK) {
        dlv_tokenizer_destroy(tok);
        return st;
    }
    *out = tok;
    return DLV_OK;
}

dlv_status dlv_tokenizer_from_spm(const char *path, dlv_tokenizer **out)
{
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    dlv_status st = dlv_read_file(path, (size_t)256 << 20, &data, &len);
    if (st == DLV_OK) st = dlv_tokenizer_from_spm_bytes((const uint8_t *)data, len, path, out);
    free(data);
    return st;
}
