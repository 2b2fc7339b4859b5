/* Helpers for the tokenizer tests: asset and fixture paths, whole-file
 * reads, the llama.cpp-style cases files and the golden-file comparison. */
#ifndef DLV_TESTS_TEXT_UTIL_H
#define DLV_TESTS_TEXT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

/* $DLV_SHARED_ASSETS/tokenizers/<rel>, or NULL when the assets are absent
 * (the caller skips with 77). Free with free(). */
char *tt_asset(const char *rel);
/* $DLV_SOURCE_ROOT/<rel>. Free with free(). */
char *tt_source(const char *rel);
/* The whole file, NUL-terminated; NULL on failure. */
char *tt_read(const char *path, size_t *len);
/* Splits cases.inp on "\n__ggml_vocab_test__\n" in place; returns the count
 * (the empty tail after the last separator is not a case). */
size_t tt_split_cases(char *text, size_t len, char ***starts, size_t **lens);
/* Parses one line of space-separated ids; returns the count. */
size_t tt_parse_ids(const char *line, int32_t *ids, size_t cap);

/* Prints "  what: id id ..." (cmocka's print_message). */
void tt_show_ids(const char *what, const int32_t *ids, size_t n);

typedef struct tt_golden_stats {
    size_t cases;      /* strings in the golden file */
    size_t trips;      /* decode(tokenize(s)) == s checked, where the reference round-trips */
    size_t ties;       /* cases marked "tie" (ids depend on the equal-rank tie-break) */
} tt_golden_stats;

/* Compares tok with a golden file in the format of
 * tests/reference/tokenizers_reference.py and tokenizer_fixtures.py: the
 * vocabulary size, then for every case the ids without and with special
 * tokens, decode(ids) and decode(ids_special, skip special), and the round
 * trip where the reference round-trips. Prints every mismatch, then fails
 * (cmocka) if there was any. label names the tokenizer in messages. */
tt_golden_stats tt_run_golden(const dlv_tokenizer *tok, const char *golden_path,
                              const char *label);

/* The number of cases of a golden file whose key flag is true (such as
 * "score_tie" or "added_overlap": what the cases exercise, marked by the
 * script that wrote them). */
size_t tt_golden_count(const char *golden_path, const char *flag);

#endif
