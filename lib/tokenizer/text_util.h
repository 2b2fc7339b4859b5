/* Small building blocks shared by the tokenizer stages: growable byte and id
 * buffers, UTF-8 helpers and the string -> id hash table. */
#ifndef DLV_TOKENIZER_TEXT_UTIL_H
#define DLV_TOKENIZER_TEXT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

/* A growable byte string; always NUL-terminated when p != NULL. */
typedef struct dlv_tbuf {
    char *p;
    size_t len, cap;
} dlv_tbuf;

dlv_status dlv_tbuf_reserve(dlv_tbuf *b, size_t extra);
dlv_status dlv_tbuf_append(dlv_tbuf *b, const char *s, size_t n);
dlv_status dlv_tbuf_append_cp(dlv_tbuf *b, uint32_t cp);
void dlv_tbuf_free(dlv_tbuf *b);

typedef struct dlv_ids {
    int32_t *v;
    size_t n, cap;
} dlv_ids;

dlv_status dlv_ids_push(dlv_ids *ids, int32_t id);
void dlv_ids_free(dlv_ids *ids);

/* Decodes one code point of valid UTF-8 at s (n > 0 bytes left); returns its
 * byte length. The input must have passed dlv_utf8_check. */
size_t dlv_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Length of the UTF-8 sequence starting with lead byte c (1 for others). */
size_t dlv_utf8_len(unsigned char c);
/* 0 if s is well-formed UTF-8 (no surrogates, no overlongs, <= U+10FFFF);
 * otherwise the byte offset of the first bad sequence + 1. */
size_t dlv_utf8_check(const char *s, size_t n);
/* Appends s to out, replacing each maximal ill-formed subsequence with
 * U+FFFD the way Rust's String::from_utf8_lossy does. */
dlv_status dlv_utf8_lossy(dlv_tbuf *out, const char *s, size_t n);
/* The Unicode White_Space property (what Rust's char::is_whitespace uses). */
int dlv_unicode_is_space(uint32_t cp);
/* Letters, numbers (Rust's char::is_alphanumeric) or '_'. */
int dlv_unicode_is_word(uint32_t cp);

/* An open-addressing hash table from byte strings to non-negative ids. The
 * keys are borrowed: they must outlive the table. */
typedef struct dlv_strmap {
    const char **keys;
    uint32_t *lens;
    uint32_t *hashes; /* checked before the keys, which are cache misses */
    int32_t *vals;
    size_t cap, n; /* cap is a power of two */
} dlv_strmap;

dlv_status dlv_strmap_init(dlv_strmap *m, size_t expected);
/* Inserts or overwrites. */
dlv_status dlv_strmap_put(dlv_strmap *m, const char *key, size_t len, int32_t val);
/* The id, or -1 when absent. */
int32_t dlv_strmap_get(const dlv_strmap *m, const char *key, size_t len);
void dlv_strmap_free(dlv_strmap *m);

/* A hash table from an id pair to (rank, merged id), for BPE merges. */
typedef struct dlv_pairmap {
    uint64_t *keys; /* (a << 32 | b) + 1; 0 marks an empty slot */
    int32_t *rank, *merged;
    size_t cap, n;
} dlv_pairmap;

dlv_status dlv_pairmap_init(dlv_pairmap *m, size_t expected);
/* A repeated pair overwrites the earlier entry, as HF's map building does. */
dlv_status dlv_pairmap_put(dlv_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
int dlv_pairmap_get(const dlv_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
void dlv_pairmap_free(dlv_pairmap *m);

#endif
