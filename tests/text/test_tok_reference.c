/* Exact ids against the references: llama.cpp's cases files for llama2
 * (tokenizer.json AND tokenizer.model) and qwen2, and the goldens that
 * tests/reference/tokenizers_reference.py wrote with HF `tokenizers` for a
 * 240-string hard corpus on llama2, qwen2 and mistral (the llama2 goldens
 * also against tokenizer.model). Decoding is checked against the
 * reference's decode, and the round trip where the reference round-trips.
 * Skips (77) without ../shared/assets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "disclvlm.h"
#include "text_test_util.h"

static dlv_tokenizer *load(const char *rel)
{
    char *path = tt_asset(rel);
    assert_non_null(path);
    dlv_tokenizer *tok = NULL;
    dlv_status st = dlv_tokenizer_load(path, &tok);
    if (st != DLV_OK) print_error("%s: %s\n", path, dlv_last_error());
    assert_int_equal(st, DLV_OK);
    free(path);
    return tok;
}

static size_t encode(const dlv_tokenizer *tok, const char *s, size_t n, unsigned flags,
                     int32_t *ids, size_t cap)
{
    size_t got = 0;
    dlv_status st = dlv_tokenize(tok, s, n, flags, ids, cap, &got);
    if (st != DLV_OK) print_error("tokenize: %s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
    return got;
}

static void show_ids(const char *what, const int32_t *ids, size_t n)
{
    char line[2048];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 16 < sizeof line; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, " %d", ids[i]);
    line[o] = '\0';
    print_message("  %s:%s\n", what, line);
}

static void run_cases(const char *name, const char *tokfile)
{
    char rel[128];
    snprintf(rel, sizeof rel, "%s/cases.inp", name);
    char *inp_path = tt_asset(rel);
    snprintf(rel, sizeof rel, "%s/cases.out", name);
    char *out_path = tt_asset(rel);
    assert_non_null(inp_path);
    assert_non_null(out_path);
    size_t inp_len, out_len;
    char *inp = tt_read(inp_path, &inp_len), *out = tt_read(out_path, &out_len);
    assert_non_null(inp);
    assert_non_null(out);
    char **starts;
    size_t *lens;
    size_t n = tt_split_cases(inp, inp_len, &starts, &lens);
    assert_true(n >= 40);
    snprintf(rel, sizeof rel, "%s/%s", name, tokfile);
    dlv_tokenizer *tok = load(rel);
    size_t bad = 0;
    const char *line = out;
    static int32_t want[8192], got[8192];
    for (size_t i = 0; i < n; i++) {
        assert_non_null(line);
        size_t nw = tt_parse_ids(line, want, 8192);
        size_t ng = encode(tok, starts[i], lens[i], 0, got, 8192);
        if (ng != nw || memcmp(got, want, nw * sizeof *got) != 0) {
            bad++;
            print_message("%s/%s case %zu mismatch\n", name, tokfile, i);
            show_ids("want", want, nw);
            show_ids("got ", got, ng);
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    print_message("%s/%s: %zu/%zu cases exact\n", name, tokfile, n - bad, n);
    assert_int_equal(bad, 0);
    dlv_tokenizer_free(tok);
    free(starts);
    free(lens);
    free(inp);
    free(out);
    free(inp_path);
    free(out_path);
}

static void cases_llama2_json(void **state)
{
    (void)state;
    run_cases("llama2", "tokenizer.json");
}

static void cases_llama2_model(void **state)
{
    (void)state;
    run_cases("llama2", "tokenizer.model");
}

static void cases_qwen2_json(void **state)
{
    (void)state;
    run_cases("qwen2", "tokenizer.json");
}

static size_t json_ids(const json_t *arr, int32_t *ids, size_t cap)
{
    size_t n = json_array_size(arr);
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return n;
}

static int decode_matches(const dlv_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                          const json_t *want)
{
    static char buf[1 << 16];
    size_t needed = 0;
    dlv_status st = dlv_detokenize(tok, ids, n, flags, buf, sizeof buf, &needed);
    if (st != DLV_OK) print_error("detokenize: %s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
    return needed - 1 == json_string_length(want) &&
           memcmp(buf, json_string_value(want), needed - 1) == 0;
}

static void run_golden(const char *name, const char *tokfile)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/text/golden/%s.json", name);
    char *gpath = tt_source(rel);
    json_error_t jerr;
    json_t *doc = json_load_file(gpath, JSON_ALLOW_NUL, &jerr);
    if (!doc) print_error("%s: %s\n", gpath, jerr.text);
    assert_non_null(doc);
    snprintf(rel, sizeof rel, "%s/%s", name, tokfile);
    dlv_tokenizer *tok = load(rel);
    size_t vs = 0;
    assert_int_equal(dlv_tokenizer_vocab_size(tok, &vs), DLV_OK);
    assert_int_equal(vs, (size_t)json_integer_value(json_object_get(doc, "vocab_size")));
    const json_t *cases = json_object_get(doc, "cases");
    size_t n = json_array_size(cases), bad = 0, bad_dec = 0, trips = 0;
    assert_true(n >= 200);
    static int32_t want[8192], got[8192];
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(cases, i);
        const json_t *text = json_object_get(c, "text");
        const char *s = json_string_value(text);
        size_t len = json_string_length(text);
        for (int special = 0; special < 2; special++) {
            size_t nw = json_ids(json_object_get(c, special ? "ids_special" : "ids"), want, 8192);
            size_t ng = encode(tok, s, len, special ? DLV_TOKENIZE_ADD_SPECIAL : 0, got, 8192);
            if (ng != nw || memcmp(got, want, nw * sizeof *got) != 0) {
                bad++;
                print_message("%s/%s golden %zu%s mismatch: \"%s\"\n", name, tokfile, i,
                              special ? " (special)" : "", s);
                show_ids("want", want, nw);
                show_ids("got ", got, ng);
                continue;
            }
            const json_t *dec = json_object_get(c, special ? "decoded_skip_special" : "decoded");
            if (!decode_matches(tok, want, nw, special ? DLV_DETOKENIZE_SKIP_SPECIAL : 0, dec)) {
                bad_dec++;
                print_message("%s/%s golden %zu decode mismatch\n", name, tokfile, i);
            }
            /* Round trip wherever the reference round-trips. */
            if (!special && json_string_length(dec) == len &&
                memcmp(json_string_value(dec), s, len) == 0) {
                trips++;
                assert_true(decode_matches(tok, got, ng, 0, text));
            }
        }
    }
    print_message("%s/%s: %zu/%zu encodings exact, %zu decode mismatches, %zu round trips\n",
                  name, tokfile, 2 * n - bad, 2 * n, bad_dec, trips);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_dec, 0);
    assert_true(trips > n / 2);
    dlv_tokenizer_free(tok);
    json_decref(doc);
    free(gpath);
}

static void golden_llama2_json(void **state)
{
    (void)state;
    run_golden("llama2", "tokenizer.json");
}

static void golden_llama2_model(void **state)
{
    (void)state;
    run_golden("llama2", "tokenizer.model");
}

static void golden_qwen2(void **state)
{
    (void)state;
    run_golden("qwen2", "tokenizer.json");
}

static void golden_mistral(void **state)
{
    (void)state;
    run_golden("mistral", "tokenizer.json");
}

int main(void)
{
    char *probe = tt_asset("qwen2/tokenizer.json");
    if (!probe) {
        printf("skipping: ../shared/assets/tokenizers not found (DLV_SHARED_ASSETS)\n");
        return 77;
    }
    free(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cases_llama2_json),   cmocka_unit_test(cases_llama2_model),
        cmocka_unit_test(cases_qwen2_json),    cmocka_unit_test(golden_llama2_json),
        cmocka_unit_test(golden_llama2_model), cmocka_unit_test(golden_qwen2),
        cmocka_unit_test(golden_mistral),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
