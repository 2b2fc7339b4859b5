/* Tokenizer lifecycle: allocation, the indexes built after loading, token
 * lookup by id, and choosing a loader for a path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "tokenizer/tokenizer.h"

dlv_status dlv_tokenizer_new_empty(const char *source, dlv_tokenizer **out)
{
    dlv_tokenizer *t = calloc(1, sizeof *t);
    size_t n = strlen(source) + 1;
    if (t) t->source = malloc(n);
    if (!t || !t->source) {
        free(t);
        return dlv_error_nomem("a tokenizer", sizeof *t + n);
    }
    memcpy(t->source, source, n);
    t->bpe.unk_id = -1;
    for (int b = 0; b < 256; b++) t->bpe.byte_ids[b] = -1;
    *out = t;
    return DLV_OK;
}

void dlv_tokenizer_destroy(dlv_tokenizer *tok)
{
    if (!tok) return;
    dlv_bpe_free(&tok->bpe);
    for (size_t i = 0; i < tok->n_added; i++) {
        if (tok->added[i].match != tok->added[i].content) free(tok->added[i].match);
        free(tok->added[i].content);
    }
    free(tok->added);
    free(tok->added_order);
    free(tok->added_by_id);
    dlv_strmap_free(&tok->added_map);
    for (size_t i = 0; i < tok->n_norms; i++) {
        free(tok->norms[i].a);
        free(tok->norms[i].b);
        if (tok->norms[i].regex) dlv_regex_free(tok->norms[i].regex);
    }
    free(tok->norms);
    for (size_t i = 0; i < tok->n_pretoks; i++) {
        if (tok->pretoks[i].regex) dlv_regex_free(tok->pretoks[i].regex);
        free(tok->pretoks[i].a);
    }
    free(tok->pretoks);
    for (size_t i = 0; i < tok->n_decs; i++) {
        free(tok->decs[i].a);
        free(tok->decs[i].b);
    }
    free(tok->decs);
    free(tok->tpl);
    free(tok->source);
    free(tok);
}

static int by_first_byte(const void *pa, const void *pb, const dlv_tokenizer *tok)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    unsigned char ca = (unsigned char)tok->added[a].match[0];
    unsigned char cb = (unsigned char)tok->added[b].match[0];
    return ca != cb ? (ca < cb ? -1 : 1) : (a < b ? -1 : a > b);
}

/* a->match: the content, normalized for a normalized token (a token
 * matched in normalized text must be normalized too: "Hello" under a
 * Lowercase normalizer matches "hello"). */
static dlv_status set_match(const dlv_tokenizer *tok, dlv_added_token *a)
{
    if (a->match && a->match != a->content) free(a->match);
    a->match = a->content;
    a->match_len = a->len;
    if (!a->normalized || !a->len) return DLV_OK;
    dlv_tbuf out = {0};
    dlv_status st = dlv_normalize(tok, a->content, a->len, &out);
    if (st == DLV_OK && (out.len != a->len || memcmp(out.p, a->content, a->len) != 0)) {
        char *m = malloc(out.len + 1);
        if (!m) st = dlv_error_nomem("an added token", out.len + 1);
        else {
            memcpy(m, out.p, out.len);
            m[out.len] = '\0';
            a->match = m;
            a->match_len = out.len;
        }
    }
    dlv_tbuf_free(&out);
    return st;
}

dlv_status dlv_tokenizer_finish(dlv_tokenizer *tok)
{
    dlv_bpe *bpe = &tok->bpe;
    char name[8];
    for (int b = 0; b < 256; b++) {
        snprintf(name, sizeof name, "<0x%02X>", b);
        bpe->byte_ids[b] = dlv_strmap_get(&bpe->vocab, name, 6);
    }
    size_t vs = bpe->n_tokens;
    dlv_status st = dlv_strmap_init(&tok->added_map, tok->n_added);
    if (st != DLV_OK) return st;
    tok->added_order = malloc((tok->n_added + 1) * sizeof *tok->added_order);
    if (!tok->added_order) return dlv_error_nomem("the added-token index", tok->n_added * 4);
    size_t k = 0;
    for (size_t i = 0; i < tok->n_added; i++) {
        dlv_added_token *a = &tok->added[i];
        if ((size_t)a->id + 1 > vs) vs = (size_t)a->id + 1;
        st = dlv_strmap_put(&tok->added_map, a->content, a->len, (int32_t)i);
        if (st == DLV_OK) st = set_match(tok, a);
        if (st != DLV_OK) return st;
        if (a->match_len) tok->added_order[k++] = (uint32_t)i; /* an empty one never matches */
    }
    /* Insertion sort: a handful of added tokens, and qsort has no context. */
    for (size_t i = 1; i < k; i++) {
        uint32_t v = tok->added_order[i];
        size_t j = i;
        while (j > 0 && by_first_byte(&tok->added_order[j - 1], &v, tok) > 0) {
            tok->added_order[j] = tok->added_order[j - 1];
            j--;
        }
        tok->added_order[j] = v;
    }
    memset(tok->by_first, 0, sizeof tok->by_first);
    for (size_t i = 0; i < k; i++)
        tok->by_first[(unsigned char)tok->added[tok->added_order[i]].match[0] + 1]++;
    for (int b = 0; b < 256; b++) tok->by_first[b + 1] += tok->by_first[b];
    tok->vocab_size = vs;
    free(tok->added_by_id);
    tok->added_by_id = malloc((vs + 1) * sizeof *tok->added_by_id);
    if (!tok->added_by_id) return dlv_error_nomem("the added-token index", vs * 4);
    for (size_t i = 0; i < vs; i++) tok->added_by_id[i] = -1;
    for (size_t i = 0; i < tok->n_added; i++) tok->added_by_id[tok->added[i].id] = (int32_t)i;
    /* Template ids are written by hand in tokenizer.json; an id with no
     * token would make encode output something decode cannot read. */
    for (size_t i = 0; i < tok->n_tpl; i++) {
        size_t len;
        if (tok->tpl[i] != DLV_TPL_SEQ && !dlv_tokenizer_token(tok, tok->tpl[i], &len))
            return dlv_error(DLV_E_FORMAT, "%s: post_processor: special token id %ld is not in "
                             "the vocabulary", tok->source, (long)tok->tpl[i]);
    }
    return DLV_OK;
}

const dlv_added_token *dlv_tokenizer_added(const dlv_tokenizer *tok, int32_t id)
{
    if (id < 0 || (size_t)id >= tok->vocab_size || !tok->added_by_id) return NULL;
    int32_t k = tok->added_by_id[id];
    return k >= 0 ? &tok->added[k] : NULL;
}

const char *dlv_tokenizer_token(const dlv_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0) return NULL;
    /* Added tokens win, as in HF's AddedVocabulary lookup. */
    const dlv_added_token *a = dlv_tokenizer_added(tok, id);
    if (a) {
        *len = a->len;
        return a->content;
    }
    if ((size_t)id < tok->bpe.n_tokens && tok->bpe.tokens[id]) {
        *len = tok->bpe.lens[id];
        return tok->bpe.tokens[id];
    }
    return NULL;
}

dlv_status dlv_tokenizer_set_bos_eos(dlv_tokenizer *tok, int32_t bos, int32_t eos)
{
    int32_t *t = malloc(3 * sizeof *t);
    if (!t) return dlv_error_nomem("a template", 12);
    size_t n = 0;
    if (bos >= 0) t[n++] = bos;
    t[n++] = DLV_TPL_SEQ;
    if (eos >= 0) t[n++] = eos;
    free(tok->tpl);
    tok->tpl = t;
    tok->n_tpl = n;
    return DLV_OK;
}

/* A SentencePiece model is a protobuf whose first byte is field 1's tag
 * (0x0A); tokenizer.json starts with '{' after optional whitespace. */
static int looks_like_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t') {
    }
    fclose(f);
    return c == '{';
}

dlv_status dlv_tokenizer_open(const char *path, dlv_tokenizer **out)
{
    *out = NULL;
    if (dlv_is_file(path)) {
        if (looks_like_json(path)) return dlv_tokenizer_from_json(path, out);
        return dlv_tokenizer_from_spm(path, out);
    }
    if (!dlv_is_dir(path))
        return dlv_error(DLV_E_IO, "%s: no such file or directory (expected a model directory, "
                         "a tokenizer.json or a tokenizer.model)", path);
    char *json = dlv_path_join(path, "tokenizer.json");
    char *spm = dlv_path_join(path, "tokenizer.model");
    char *cfg = dlv_path_join(path, "tokenizer_config.json");
    dlv_status st;
    if (!json || !spm || !cfg) st = dlv_error_nomem("a path", strlen(path) + 32);
    else if (dlv_is_file(json)) st = dlv_tokenizer_from_json(json, out);
    else if (dlv_is_file(spm)) st = dlv_tokenizer_from_spm(spm, out);
    else
        st = dlv_error(DLV_E_IO, "%s: no tokenizer.json or tokenizer.model in this directory",
                       path);
    if (st == DLV_OK && dlv_is_file(cfg)) st = dlv_tokenizer_apply_config(*out, cfg);
    if (st != DLV_OK && *out) {
        dlv_tokenizer_destroy(*out);
        *out = NULL;
    }
    free(json);
    free(spm);
    free(cfg);
    return st;
}
