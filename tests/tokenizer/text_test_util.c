#include "text_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "disclvlm.h"

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

char *tt_asset(const char *rel)
{
    const char *root = getenv("DLV_SHARED_ASSETS");
    if (!root) return NULL;
    char *dir = join(root, "tokenizers");
    char *p = dir ? join(dir, rel) : NULL;
    free(dir);
    FILE *f = p ? fopen(p, "rb") : NULL;
    if (!f) {
        free(p);
        return NULL;
    }
    fclose(f);
    return p;
}

char *tt_source(const char *rel)
{
    const char *root = getenv("DLV_SOURCE_ROOT");
    return join(root ? root : ".", rel);
}

char *tt_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n + 1 < cap) break;
        cap *= 2;
        char *b = realloc(buf, cap);
        if (!b) {
            free(buf);
            buf = NULL;
        } else
            buf = b;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

size_t tt_split_cases(char *text, size_t len, char ***starts, size_t **lens)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t sl = sizeof sep - 1, n = 0, cap = 64, pos = 0;
    *starts = malloc(cap * sizeof **starts);
    *lens = malloc(cap * sizeof **lens);
    while (pos <= len) {
        char *hit = NULL;
        for (size_t i = pos; i + sl <= len; i++)
            if (memcmp(text + i, sep, sl) == 0) {
                hit = text + i;
                break;
            }
        if (!hit) break;
        if (n == cap) {
            cap *= 2;
            *starts = realloc(*starts, cap * sizeof **starts);
            *lens = realloc(*lens, cap * sizeof **lens);
        }
        (*starts)[n] = text + pos;
        (*lens)[n] = (size_t)(hit - (text + pos));
        n++;
        pos = (size_t)(hit - text) + sl;
    }
    return n;
}

size_t tt_parse_ids(const char *line, int32_t *ids, size_t cap)
{
    size_t n = 0;
    const char *p = line;
    while (*p && *p != '\n') {
        while (*p == ' ') p++;
        if (!*p || *p == '\n') break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        p = end;
    }
    return n;
}

void tt_show_ids(const char *what, const int32_t *ids, size_t n)
{
    char line[2048];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 16 < sizeof line; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, " %d", ids[i]);
    line[o] = '\0';
    print_message("  %s:%s\n", what, line);
}

static size_t json_ids(const json_t *arr, int32_t *ids, size_t cap)
{
    size_t n = json_array_size(arr);
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return n;
}

/* 1 when detokenizing ids gives exactly the string want. */
static int decode_matches(const dlv_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                          const json_t *want)
{
    enum { CAP = 1 << 16 };
    char *buf = malloc(CAP);
    assert_non_null(buf);
    size_t needed = 0;
    dlv_status st = dlv_detokenize(tok, ids, n, flags, buf, CAP, &needed);
    if (st != DLV_OK) print_error("detokenize: %s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
    int same = needed - 1 == json_string_length(want) &&
               memcmp(buf, json_string_value(want), needed - 1) == 0;
    free(buf);
    return same;
}

tt_golden_stats tt_run_golden(const dlv_tokenizer *tok, const char *golden_path,
                              const char *label)
{
    tt_golden_stats stats = {0};
    json_error_t jerr;
    json_t *doc = json_load_file(golden_path, JSON_ALLOW_NUL, &jerr);
    if (!doc) print_error("%s: %s\n", golden_path, jerr.text);
    assert_non_null(doc);
    size_t vs = 0;
    assert_int_equal(dlv_tokenizer_vocab_size(tok, &vs), DLV_OK);
    assert_int_equal(vs, (size_t)json_integer_value(json_object_get(doc, "vocab_size")));
    const json_t *cases = json_object_get(doc, "cases");
    size_t n = json_array_size(cases), bad = 0, bad_dec = 0, bad_ties = 0;
    enum { MAX_IDS = 8192 };
    int32_t *want = malloc(MAX_IDS * sizeof *want), *got = malloc(MAX_IDS * sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(cases, i);
        const json_t *text = json_object_get(c, "text");
        const char *s = json_string_value(text);
        size_t len = json_string_length(text);
        int tie = json_is_true(json_object_get(c, "tie"));
        stats.ties += (size_t)tie;
        for (int special = 0; special < 2; special++) {
            size_t nw = json_ids(json_object_get(c, special ? "ids_special" : "ids"), want,
                                 MAX_IDS);
            size_t ng = 0;
            dlv_status st = dlv_tokenize(tok, s, len, special ? DLV_TOKENIZE_ADD_SPECIAL : 0, got,
                                         MAX_IDS, &ng);
            if (st != DLV_OK) print_error("%s: tokenize: %s\n", label, dlv_last_error());
            assert_int_equal(st, DLV_OK);
            if (ng != nw || memcmp(got, want, nw * sizeof *got) != 0) {
                bad++;
                bad_ties += (size_t)(tie && !special);
                print_message("%s golden %zu%s%s mismatch: \"%s\"\n", label, i,
                              special ? " (special)" : "", tie ? " (equal-rank tie case)" : "",
                              s);
                tt_show_ids("want", want, nw);
                tt_show_ids("got ", got, ng);
                continue;
            }
            const json_t *dec = json_object_get(c, special ? "decoded_skip_special" : "decoded");
            if (!decode_matches(tok, want, nw, special ? DLV_DETOKENIZE_SKIP_SPECIAL : 0, dec)) {
                bad_dec++;
                print_message("%s golden %zu decode mismatch\n", label, i);
            }
            /* Round trip wherever the reference round-trips. */
            if (!special && json_string_length(dec) == len &&
                memcmp(json_string_value(dec), s, len) == 0) {
                stats.trips++;
                assert_true(decode_matches(tok, got, ng, 0, text));
            }
        }
    }
    free(want);
    free(got);
    stats.cases = n;
    print_message("%s: %zu/%zu encodings exact (%zu/%zu equal-rank tie cases), %zu decode "
                  "mismatches, %zu round trips\n",
                  label, 2 * n - bad, 2 * n, stats.ties - bad_ties, stats.ties, bad_dec,
                  stats.trips);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_dec, 0);
    json_decref(doc);
    return stats;
}

size_t tt_golden_count(const char *golden_path, const char *flag)
{
    json_error_t jerr;
    json_t *doc = json_load_file(golden_path, JSON_ALLOW_NUL, &jerr);
    if (!doc) print_error("%s: %s\n", golden_path, jerr.text);
    assert_non_null(doc);
    const json_t *cases = json_object_get(doc, "cases");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(cases); i++)
        n += (size_t)json_is_true(json_object_get(json_array_get(cases, i), flag));
    json_decref(doc);
    return n;
}
