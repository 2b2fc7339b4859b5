/* Helpers for the tokenizer tests: asset paths, whole-file reads and the
 * llama.cpp-style cases files. */
#ifndef DLV_TESTS_TEXT_UTIL_H
#define DLV_TESTS_TEXT_UTIL_H

#include <stddef.h>
#include <stdint.h>

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

#endif
