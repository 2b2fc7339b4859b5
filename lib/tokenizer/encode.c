/* The encoding pipeline: added tokens that match the raw text, normalizers
 * on the rest, added tokens that match normalized text, pre-tokenizers, the
 * BPE model on every word, then the post-processor template. */
#include <stdlib.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

static dlv_status encode_words(const dlv_tokenizer *tok, const char *s, size_t n, int at_start,
                               dlv_ids *out)
{
    dlv_pieces pieces = {0};
    dlv_status st = dlv_pieces_add(&pieces, s, n, at_start);
    if (st == DLV_OK) st = dlv_pretokenize(tok, &pieces);
    for (size_t i = 0; st == DLV_OK && i < pieces.n; i++)
        st = dlv_bpe_word(&tok->bpe, pieces.text.p + pieces.v[i].off, pieces.v[i].len, out);
    dlv_pieces_free(&pieces);
    return st;
}

static dlv_status encode_plain(const dlv_tokenizer *tok, const char *s, size_t n, int at_start,
                               dlv_ids *out)
{
    dlv_tbuf norm = {0};
    dlv_segment *segs = NULL;
    size_t n_segs = 0;
    dlv_status st = dlv_normalize(tok, s, n, &norm);
    if (st == DLV_OK) st = dlv_added_split(tok, 1, norm.p, norm.len, &segs, &n_segs);
    for (size_t i = 0; st == DLV_OK && i < n_segs; i++) {
        if (segs[i].id >= 0) st = dlv_ids_push(out, segs[i].id);
        else
            st = encode_words(tok, norm.p + segs[i].off, segs[i].len,
                              at_start && segs[i].off == 0, out);
    }
    free(segs);
    dlv_tbuf_free(&norm);
    return st;
}

dlv_status dlv_tokenizer_encode(const dlv_tokenizer *tok, const char *text, size_t len,
                                int add_special, dlv_ids *out)
{
    size_t bad = dlv_utf8_check(text, len);
    if (bad)
        return dlv_error(DLV_E_INVALID_ARG, "%s: the text is not valid UTF-8 (bad byte 0x%02X "
                         "at offset %zu)", tok->source, (unsigned)(unsigned char)text[bad - 1],
                         bad - 1);
    dlv_ids body = {0};
    dlv_segment *segs = NULL;
    size_t n_segs = 0;
    dlv_status st = dlv_added_split(tok, 0, text, len, &segs, &n_segs);
    for (size_t i = 0; st == DLV_OK && i < n_segs; i++) {
        if (segs[i].id >= 0) st = dlv_ids_push(&body, segs[i].id);
        else st = encode_plain(tok, text + segs[i].off, segs[i].len, segs[i].off == 0, &body);
    }
    free(segs);
    for (size_t i = 0; st == DLV_OK && i < (add_special ? tok->n_tpl : 0); i++) {
        if (tok->tpl[i] != DLV_TPL_SEQ) {
            st = dlv_ids_push(out, tok->tpl[i]);
            continue;
        }
        for (size_t k = 0; st == DLV_OK && k < body.n; k++) st = dlv_ids_push(out, body.v[k]);
    }
    if (!add_special || !tok->n_tpl) {
        for (size_t k = 0; st == DLV_OK && k < body.n; k++) st = dlv_ids_push(out, body.v[k]);
    }
    dlv_ids_free(&body);
    return st;
}
