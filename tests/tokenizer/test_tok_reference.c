/* Exact ids against the references: llama.cpp's cases files for llama2
 * (tokenizer.json AND tokenizer.model) and qwen2, and the goldens that
 * tests/reference/tokenizers_reference.py wrote with HF `tokenizers` for a
 * 240-string hard corpus on llama2, qwen2 and mistral (the llama2 goldens
 * also against tokenizer.model). Decoding is checked against the
 * reference's decode, and the round trip where the reference round-trips.
 * Skips (77) without ../shared/assets; test_tok_fixtures.c runs the same
 * comparison on the in-repository fixtures in every build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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
            tt_show_ids("want", want, nw);
            tt_show_ids("got ", got, ng);
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

static void run_golden(const char *name, const char *tokfile)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/tokenizer/golden/%s.json", name);
    char *gpath = tt_source(rel);
    snprintf(rel, sizeof rel, "%s/%s", name, tokfile);
    dlv_tokenizer *tok = load(rel);
    tt_golden_stats stats = tt_run_golden(tok, gpath, rel);
    assert_true(stats.cases >= 200);
    assert_true(stats.trips > stats.cases / 2);
    dlv_tokenizer_free(tok);
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
        printf("SKIPPED: the real Llama-2/Qwen2/Mistral tokenizers are not in "
               "../shared/assets/tokenizers (DLV_SHARED_ASSETS=%s); the in-repository "
               "fixtures are checked by tok_fixtures\n",
               getenv("DLV_SHARED_ASSETS") ? getenv("DLV_SHARED_ASSETS") : "(unset)");
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
