/* The tokenizer pipeline, as Hugging Face `tokenizers` defines it:
 * added tokens split out -> normalizers -> pre-tokenizers -> BPE model ->
 * post-processor template; decoding runs the decoder chain on the tokens.
 * Loaders (tokenizer.json, SentencePiece tokenizer.model) fill this struct;
 * after loading it is immutable and may be shared by threads. */
#ifndef DLV_TOKENIZER_TOKENIZER_H
#define DLV_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"
#include "tokenizer/text_util.h"

typedef enum dlv_norm_kind {
    DLV_NORM_NFC,
    DLV_NORM_NFD,
    DLV_NORM_NFKC,
    DLV_NORM_NFKD,
    DLV_NORM_PREPEND,   /* a: the prefix, added to non-empty strings */
    DLV_NORM_REPLACE,   /* a -> b, literal; regex (PCRE2) instead of a when set */
    DLV_NORM_LOWERCASE,
    DLV_NORM_STRIP,     /* flag1: left, flag2: right (White_Space) */
    DLV_NORM_SPM_SPACES /* SentencePiece remove_extra_whitespaces on ' ' */
} dlv_norm_kind;

typedef struct dlv_normalizer {
    dlv_norm_kind kind;
    char *a, *b;
    int flag1, flag2;
    void *regex; /* pcre2_code_8 *: Replace with a {"Regex": ...} pattern */
} dlv_normalizer;

typedef enum dlv_pretok_kind {
    DLV_PRETOK_SPLIT,      /* regex + behavior */
    DLV_PRETOK_BYTE_LEVEL, /* flag1: add_prefix_space; regex when use_regex */
    DLV_PRETOK_METASPACE   /* a: replacement; scheme; flag1: split */
} dlv_pretok_kind;

typedef enum dlv_split_behavior {
    DLV_SPLIT_REMOVED,
    DLV_SPLIT_ISOLATED,
    DLV_SPLIT_MERGED_PREV,
    DLV_SPLIT_MERGED_NEXT,
    DLV_SPLIT_CONTIGUOUS
} dlv_split_behavior;

typedef enum dlv_prepend_scheme {
    DLV_PREPEND_ALWAYS,
    DLV_PREPEND_FIRST,
    DLV_PREPEND_NEVER
} dlv_prepend_scheme;

typedef struct dlv_pretokenizer {
    dlv_pretok_kind kind;
    void *regex; /* pcre2_code_8 *, NULL when unused */
    dlv_split_behavior behavior;
    dlv_prepend_scheme scheme;
    char *a;
    int flag1;
    int invert; /* Split: the regex matches are the gaps, the text between them the matches */
} dlv_pretokenizer;

typedef enum dlv_dec_kind {
    DLV_DEC_REPLACE,       /* a -> b in each token */
    DLV_DEC_BYTE_FALLBACK, /* <0xXX> runs -> bytes */
    DLV_DEC_FUSE,          /* all tokens into one */
    DLV_DEC_STRIP,         /* a: the char; n1 from the start, n2 from the end */
    DLV_DEC_BYTE_LEVEL,    /* GPT-2 alphabet -> bytes, lossy UTF-8 */
    DLV_DEC_METASPACE      /* a: replacement; flag: strip the first space */
} dlv_dec_kind;

typedef struct dlv_decoder {
    dlv_dec_kind kind;
    char *a, *b;
    size_t n1, n2;
    int flag;
} dlv_decoder;

typedef struct dlv_added_token {
    char *content;
    size_t len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
    /* What the text is matched against: content, or for a normalized token
     * content run through the normalizer (as HF's AddedVocabulary does), so
     * that it meets the normalized text it is looked for in. Owned when it
     * differs from content (dlv_tokenizer_finish). */
    char *match;
    size_t match_len;
} dlv_added_token;

/* The BPE model. Merges come either from a pair table (tokenizer.json) or
 * from SentencePiece scores (tokenizer.model), where a pair merges when the
 * concatenation is a piece, higher scores first. */
typedef struct dlv_bpe {
    char **tokens;   /* id -> token (NUL-terminated), NULL for holes */
    uint32_t *lens;
    size_t n_tokens; /* 1 + the largest model id */
    dlv_strmap vocab;
    dlv_pairmap merges;
    int32_t *score_rank; /* SentencePiece mode: merge rank of each id, -1 none */
    int32_t unk_id;      /* -1 when there is none */
    int32_t byte_ids[256];
    int byte_fallback, fuse_unk, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix */
} dlv_bpe;

/* A post-processor template for one sequence: ids, with DLV_TPL_SEQ where
 * the text's ids go. */
#define DLV_TPL_SEQ INT32_MIN

/* Ids are table indexes; real vocabularies are < 300k, so a larger id is
 * a malformed file, not a reason to allocate gigabytes. */
#define DLV_MAX_TOKEN_ID (1 << 24)

struct dlv_tokenizer {
    char *source; /* the path it came from, for messages */
    dlv_bpe bpe;
    dlv_added_token *added;
    size_t n_added;
    dlv_strmap added_map; /* content -> index into added */
    /* added indices sorted by first byte; by_first[b]..by_first[b+1] */
    uint32_t *added_order;
    int32_t *added_by_id; /* id -> index into added, -1; vocab_size entries */
    uint32_t by_first[257];
    dlv_normalizer *norms;
    size_t n_norms;
    dlv_pretokenizer *pretoks;
    size_t n_pretoks;
    dlv_decoder *decs;
    size_t n_decs;
    int has_decoder;
    int32_t *tpl;
    size_t n_tpl;
    size_t vocab_size;
};

/* Lifecycle (tokenizer.c). */
dlv_status dlv_tokenizer_new_empty(const char *source, dlv_tokenizer **out);
void dlv_tokenizer_destroy(dlv_tokenizer *tok);
/* Builds added_map, vocab_size and the byte-fallback ids after loading. */
dlv_status dlv_tokenizer_finish(dlv_tokenizer *tok);
/* The token string of id (model or added), NULL when out of range. */
/* The added token with this id, or NULL. */
const dlv_added_token *dlv_tokenizer_added(const dlv_tokenizer *tok, int32_t id);
const char *dlv_tokenizer_token(const dlv_tokenizer *tok, int32_t id, size_t *len);
/* Loads a directory, tokenizer.json or tokenizer.model (by content). */
dlv_status dlv_tokenizer_open(const char *path, dlv_tokenizer **out);

/* Loaders. */
dlv_status dlv_tokenizer_from_json(const char *path, dlv_tokenizer **out);
dlv_status dlv_tokenizer_from_json_text(const char *text, size_t len, const char *label,
                                        dlv_tokenizer **out);
dlv_status dlv_tokenizer_from_spm(const char *path, dlv_tokenizer **out);
dlv_status dlv_tokenizer_from_spm_bytes(const uint8_t *data, size_t len, const char *label,
                                        dlv_tokenizer **out);
/* Applies add_bos_token / add_eos_token of a tokenizer_config.json. */
dlv_status dlv_tokenizer_apply_config(dlv_tokenizer *tok, const char *path);
/* Sets the template to [bos] SEQ [eos]; an id < 0 is left out. */
dlv_status dlv_tokenizer_set_bos_eos(dlv_tokenizer *tok, int32_t bos, int32_t eos);

/* Stages. */
dlv_status dlv_normalize(const dlv_tokenizer *tok, const char *s, size_t n, dlv_tbuf *out);

/* A list of pieces over one buffer, the pre-tokenizers' currency. */
typedef struct dlv_piece {
    size_t off, len;
    int at_start; /* begins at offset 0 of the original text */
} dlv_piece;

typedef struct dlv_pieces {
    dlv_tbuf text;
    dlv_piece *v;
    size_t n, cap;
} dlv_pieces;

dlv_status dlv_pieces_add(dlv_pieces *p, const char *s, size_t n, int at_start);
/* Adds a piece over bytes already in p->text. */
dlv_status dlv_pieces_add_range(dlv_pieces *p, size_t off, size_t n, int at_start);
void dlv_pieces_free(dlv_pieces *p);
dlv_status dlv_pretokenize(const dlv_tokenizer *tok, dlv_pieces *pieces);

/* The BPE model on one pre-tokenized word; appends ids. */
dlv_status dlv_bpe_word(const dlv_bpe *bpe, const char *w, size_t n, dlv_ids *out);
void dlv_bpe_free(dlv_bpe *bpe);

/* GPT-2's byte <-> printable code point map. */
uint32_t dlv_byte_level_char(unsigned char b);
/* The byte of a mapped code point, or -1 if cp is not in the alphabet. */
int dlv_byte_level_byte(uint32_t cp);

/* Added tokens: one segment of the input, either plain text (id < 0) or an
 * added token. normalized selects the tokens matched at this stage. */
typedef struct dlv_segment {
    size_t off, len;
    int32_t id;
} dlv_segment;

dlv_status dlv_added_split(const dlv_tokenizer *tok, int normalized, const char *s, size_t n,
                           dlv_segment **segs, size_t *n_segs);

/* The whole pipeline. */
dlv_status dlv_tokenizer_encode(const dlv_tokenizer *tok, const char *text, size_t len,
                                int add_special, dlv_ids *out);
dlv_status dlv_tokenizer_decode(const dlv_tokenizer *tok, const int32_t *ids, size_t n,
                                int skip_special, dlv_tbuf *out);

/* Regex helpers (regex.c): PCRE2 with UTF + UCP (+ JIT when available).
 * A matcher holds per-call match state, so a compiled regex can be shared by
 * threads. dlv_regex_next finds the next non-empty match at or after start:
 * 1 with [*mstart, *mend), 0 for none, -1 with an error recorded. */
/* literal: match the pattern text as is (HF's String patterns). */
dlv_status dlv_regex_compile(const char *pattern, size_t len, int literal, const char *label,
                             void **out);
void dlv_regex_free(void *re);
typedef struct dlv_matcher dlv_matcher;
dlv_status dlv_regex_matcher(const void *re, dlv_matcher **out);
void dlv_regex_matcher_free(dlv_matcher *m);
int dlv_regex_next(dlv_matcher *m, const char *s, size_t n, size_t start, size_t *mstart,
                   size_t *mend);

#endif
