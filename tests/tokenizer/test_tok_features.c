/* Pipeline features on small synthetic tokenizer.json files whose ids HF
 * `tokenizers` produced (golden/features.json): Metaspace with each
 * prepend_scheme, merges as "a b" strings and as pairs, added tokens with
 * lstrip / rstrip / single_word / normalized, fuse_unk on and off,
 * Lowercase + NFKC, the post-processor template and skip-special decoding.
 * Also, stage by stage: normalizer Replace with a {"Regex": ...} pattern and
 * pre-tokenizer Split (invert true and false) with each behaviour, against
 * outputs of HF `tokenizers` (0.20.3) committed below as goldens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "tokenizer/tokenizer.h"
#include "text_test_util.h"

static void check_ids(const dlv_tokenizer *tok, const char *name, const json_t *c, int special)
{
    const json_t *text = json_object_get(c, "text");
    const json_t *want = json_object_get(c, special ? "ids_special" : "ids");
    dlv_ids got = {0};
    dlv_status st = dlv_tokenizer_encode(tok, json_string_value(text), json_string_length(text),
                                         special, &got);
    assert_int_equal(st, DLV_OK);
    int same = got.n == json_array_size(want);
    for (size_t i = 0; same && i < got.n; i++)
        same = got.v[i] == json_integer_value(json_array_get(want, i));
    if (!same) {
        print_error("%s: \"%s\"%s: got", name, json_string_value(text), special ? " (special)" : "");
        for (size_t i = 0; i < got.n; i++) print_error(" %d", got.v[i]);
        print_error("\n");
    }
    assert_true(same);
    if (special) {
        dlv_tbuf dec = {0};
        assert_int_equal(dlv_tokenizer_decode(tok, got.v, got.n, 1, &dec), DLV_OK);
        const json_t *wd = json_object_get(c, "decoded_skip_special");
        assert_int_equal(dec.len, json_string_length(wd));
        assert_memory_equal(dec.len ? dec.p : "", json_string_value(wd), dec.len);
        dlv_tbuf_free(&dec);
    }
    dlv_ids_free(&got);
}

static void features(void **state)
{
    (void)state;
    char *path = tt_source("tests/tokenizer/golden/features.json");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    assert_non_null(doc);
    assert_true(json_object_size(doc) >= 4);
    const char *name;
    json_t *entry;
    size_t checked = 0;
    json_object_foreach(doc, name, entry) {
        char *text = json_dumps(json_object_get(entry, "tokenizer"), JSON_COMPACT);
        assert_non_null(text);
        dlv_tokenizer *tok = NULL;
        dlv_status st = dlv_tokenizer_from_json_text(text, strlen(text), name, &tok);
        if (st != DLV_OK) print_error("%s: %s\n", name, dlv_last_error());
        assert_int_equal(st, DLV_OK);
        const json_t *cases = json_object_get(entry, "cases");
        for (size_t i = 0; i < json_array_size(cases); i++) {
            check_ids(tok, name, json_array_get(cases, i), 0);
            check_ids(tok, name, json_array_get(cases, i), 1);
            checked++;
        }
        dlv_tokenizer_destroy(tok);
        free(text);
    }
    assert_true(checked >= 40);
    json_decref(doc);
    free(path);
}

/* ---- Replace {"Regex"} and Split invert / behaviours, stage by stage ---- */

struct norm_case {
    const char *pattern, *content, *text, *want;
};

struct split_case {
    const char *pattern, *behavior;
    int invert;
    const char *text;
    size_t n;
    const char *want[16];
};

/* Goldens from HF tokenizers 0.20.3: normalizers.Replace(Regex(pattern),
 * content).normalize_str(text) and pre_tokenizers.Split(Regex(pattern),
 * behavior, invert).pre_tokenize_str(text) (the pieces). The second Split
 * pattern is CLIP's. */
static const struct norm_case NORM_CASES[] = {
    {"\\s+", " ", "  Hello,\tworld!!  it's 42\n\nok  ", " Hello, world!! it's 42 ok "},
    {"\\s+", " ", "a  b\t\tc\n", "a b c "},
    {"\\s+", " ", "x", "x"},
    {"\\s+", " ", "", ""},
    {"[0-9]+", "<n>", "  Hello,\tworld!!  it's 42\n\nok  ", "  Hello,\tworld!!  it's <n>\n\nok  "},
    {"[0-9]+", "<n>", "a  b\t\tc\n", "a  b\t\tc\n"},
    {"[0-9]+", "<n>", "x", "x"},
    {"[0-9]+", "<n>", "", ""},
};
#define CLIP_PAT                                                                  \
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|"                   \
    "[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"

static const struct split_case SPLIT_CASES[] = {
    {"\\s+", "Removed", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 6, {"  ", "\t", "  ", " ", "\n\n", "  "}},
    {"\\s+", "Removed", 1, "a  b\t\tc\n", 3, {"  ", "\t\t", "\n"}},
    {"\\s+", "Removed", 1, "x", 0, {NULL}},
    {"\\s+", "Removed", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 5, {"Hello,", "world!!", "it's", "42", "ok"}},
    {"\\s+", "Removed", 0, "a  b\t\tc\n", 3, {"a", "b", "c"}},
    {"\\s+", "Removed", 0, "x", 1, {"x"}},
    {"\\s+", "Isolated", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 11, {"  ", "Hello,", "\t", "world!!", "  ", "it's", " ", "42", "\n\n", "ok", "  "}},
    {"\\s+", "Isolated", 1, "a  b\t\tc\n", 6, {"a", "  ", "b", "\t\t", "c", "\n"}},
    {"\\s+", "Isolated", 1, "x", 1, {"x"}},
    {"\\s+", "Isolated", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 11, {"  ", "Hello,", "\t", "world!!", "  ", "it's", " ", "42", "\n\n", "ok", "  "}},
    {"\\s+", "Isolated", 0, "a  b\t\tc\n", 6, {"a", "  ", "b", "\t\t", "c", "\n"}},
    {"\\s+", "Isolated", 0, "x", 1, {"x"}},
    {"\\s+", "MergedWithPrevious", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 6, {"  Hello,", "\tworld!!", "  it's", " 42", "\n\nok", "  "}},
    {"\\s+", "MergedWithPrevious", 1, "a  b\t\tc\n", 4, {"a", "  b", "\t\tc", "\n"}},
    {"\\s+", "MergedWithPrevious", 1, "x", 1, {"x"}},
    {"\\s+", "MergedWithPrevious", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 6, {"  ", "Hello,\t", "world!!  ", "it's ", "42\n\n", "ok  "}},
    {"\\s+", "MergedWithPrevious", 0, "a  b\t\tc\n", 3, {"a  ", "b\t\t", "c\n"}},
    {"\\s+", "MergedWithPrevious", 0, "x", 1, {"x"}},
    {"\\s+", "MergedWithNext", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 6, {"  ", "Hello,\t", "world!!  ", "it's ", "42\n\n", "ok  "}},
    {"\\s+", "MergedWithNext", 1, "a  b\t\tc\n", 3, {"a  ", "b\t\t", "c\n"}},
    {"\\s+", "MergedWithNext", 1, "x", 1, {"x"}},
    {"\\s+", "MergedWithNext", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 6, {"  Hello,", "\tworld!!", "  it's", " 42", "\n\nok", "  "}},
    {"\\s+", "MergedWithNext", 0, "a  b\t\tc\n", 4, {"a", "  b", "\t\tc", "\n"}},
    {"\\s+", "MergedWithNext", 0, "x", 1, {"x"}},
    {"\\s+", "Contiguous", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 11, {"  ", "Hello,", "\t", "world!!", "  ", "it's", " ", "42", "\n\n", "ok", "  "}},
    {"\\s+", "Contiguous", 1, "a  b\t\tc\n", 6, {"a", "  ", "b", "\t\t", "c", "\n"}},
    {"\\s+", "Contiguous", 1, "x", 1, {"x"}},
    {"\\s+", "Contiguous", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 11, {"  ", "Hello,", "\t", "world!!", "  ", "it's", " ", "42", "\n\n", "ok", "  "}},
    {"\\s+", "Contiguous", 0, "a  b\t\tc\n", 6, {"a", "  ", "b", "\t\t", "c", "\n"}},
    {"\\s+", "Contiguous", 0, "x", 1, {"x"}},
    {CLIP_PAT, "Removed", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 9, {"Hello", ",", "world", "!!", "it", "'s", "4", "2", "ok"}},
    {CLIP_PAT, "Removed", 1, "a  b\t\tc\n", 3, {"a", "b", "c"}},
    {CLIP_PAT, "Removed", 1, "x", 1, {"x"}},
    {CLIP_PAT, "Removed", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 6, {"  ", "\t", "  ", " ", "\n\n", "  "}},
    {CLIP_PAT, "Removed", 0, "a  b\t\tc\n", 3, {"  ", "\t\t", "\n"}},
    {CLIP_PAT, "Removed", 0, "x", 0, {NULL}},
    {CLIP_PAT, "Isolated", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 15, {"  ", "Hello", ",", "\t", "world", "!!", "  ", "it", "'s", " ", "4", "2", "\n\n", "ok", "  "}},
    {CLIP_PAT, "Isolated", 1, "a  b\t\tc\n", 6, {"a", "  ", "b", "\t\t", "c", "\n"}},
    {CLIP_PAT, "Isolated", 1, "x", 1, {"x"}},
    {CLIP_PAT, "Isolated", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 15, {"  ", "Hello", ",", "\t", "world", "!!", "  ", "it", "'s", " ", "4", "2", "\n\n", "ok", "  "}},
    {CLIP_PAT, "Isolated", 0, "a  b\t\tc\n", 6, {"a", "  ", "b", "\t\t", "c", "\n"}},
    {CLIP_PAT, "Isolated", 0, "x", 1, {"x"}},
    {CLIP_PAT, "MergedWithPrevious", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 10, {"  ", "Hello", ",\t", "world", "!!  ", "it", "'s ", "4", "2\n\n", "ok  "}},
    {CLIP_PAT, "MergedWithPrevious", 1, "a  b\t\tc\n", 3, {"a  ", "b\t\t", "c\n"}},
    {CLIP_PAT, "MergedWithPrevious", 1, "x", 1, {"x"}},
    {CLIP_PAT, "MergedWithPrevious", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 10, {"  Hello", ",", "\tworld", "!!", "  it", "'s", " 4", "2", "\n\nok", "  "}},
    {CLIP_PAT, "MergedWithPrevious", 0, "a  b\t\tc\n", 4, {"a", "  b", "\t\tc", "\n"}},
    {CLIP_PAT, "MergedWithPrevious", 0, "x", 1, {"x"}},
    {CLIP_PAT, "MergedWithNext", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 10, {"  Hello", ",", "\tworld", "!!", "  it", "'s", " 4", "2", "\n\nok", "  "}},
    {CLIP_PAT, "MergedWithNext", 1, "a  b\t\tc\n", 4, {"a", "  b", "\t\tc", "\n"}},
    {CLIP_PAT, "MergedWithNext", 1, "x", 1, {"x"}},
    {CLIP_PAT, "MergedWithNext", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 10, {"  ", "Hello", ",\t", "world", "!!  ", "it", "'s ", "4", "2\n\n", "ok  "}},
    {CLIP_PAT, "MergedWithNext", 0, "a  b\t\tc\n", 3, {"a  ", "b\t\t", "c\n"}},
    {CLIP_PAT, "MergedWithNext", 0, "x", 1, {"x"}},
    {CLIP_PAT, "Contiguous", 1, "  Hello,\tworld!!  it's 42\n\nok  ", 11, {"  ", "Hello,", "\t", "world!!", "  ", "it's", " ", "42", "\n\n", "ok", "  "}},
    {CLIP_PAT, "Contiguous", 1, "a  b\t\tc\n", 6, {"a", "  ", "b", "\t\t", "c", "\n"}},
    {CLIP_PAT, "Contiguous", 1, "x", 1, {"x"}},
    {CLIP_PAT, "Contiguous", 0, "  Hello,\tworld!!  it's 42\n\nok  ", 11, {"  ", "Hello,", "\t", "world!!", "  ", "it's", " ", "42", "\n\n", "ok", "  "}},
    {CLIP_PAT, "Contiguous", 0, "a  b\t\tc\n", 6, {"a", "  ", "b", "\t\t", "c", "\n"}},
    {CLIP_PAT, "Contiguous", 0, "x", 1, {"x"}},
};

static dlv_tokenizer *stage_tokenizer(const char *field, json_t *stage)
{
    json_t *root = json_pack("{s:{s:s, s:{s:i}, s:[]}}", "model", "type", "BPE", "vocab", "a", 0,
                             "merges");
    assert_non_null(root);
    assert_int_equal(json_object_set_new(root, field, stage), 0);
    char *text = json_dumps(root, JSON_COMPACT);
    assert_non_null(text);
    dlv_tokenizer *tok = NULL;
    dlv_status st = dlv_tokenizer_from_json_text(text, strlen(text), field, &tok);
    if (st != DLV_OK) print_error("%s: %s\n", text, dlv_last_error());
    assert_int_equal(st, DLV_OK);
    free(text);
    json_decref(root);
    return tok;
}

static void replace_regex(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof NORM_CASES / sizeof *NORM_CASES; i++) {
        const struct norm_case *c = &NORM_CASES[i];
        /* Inside a Sequence, as CLIPConverter writes it. */
        dlv_tokenizer *tok = stage_tokenizer(
            "normalizer", json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}]}", "type", "Sequence",
                                    "normalizers", "type", "Replace", "pattern", "Regex",
                                    c->pattern, "content", c->content));
        dlv_tbuf out = {0};
        assert_int_equal(dlv_normalize(tok, c->text, strlen(c->text), &out), DLV_OK);
        const char *got = out.len ? out.p : "";
        int same = out.len == strlen(c->want) && memcmp(got, c->want, out.len) == 0;
        if (!same)
            print_error("Replace /%s/ on \"%s\": got \"%.*s\", want \"%s\"\n", c->pattern,
                        c->text, (int)out.len, got, c->want);
        assert_true(same);
        dlv_tbuf_free(&out);
        dlv_tokenizer_destroy(tok);
    }
}

static void split_invert(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof SPLIT_CASES / sizeof *SPLIT_CASES; i++) {
        const struct split_case *c = &SPLIT_CASES[i];
        dlv_tokenizer *tok = stage_tokenizer(
            "pre_tokenizer", json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern",
                                       "Regex", c->pattern, "behavior", c->behavior, "invert",
                                       c->invert));
        dlv_pieces p = {0};
        assert_int_equal(dlv_pieces_add(&p, c->text, strlen(c->text), 1), DLV_OK);
        assert_int_equal(dlv_pretokenize(tok, &p), DLV_OK);
        int same = p.n == c->n;
        for (size_t k = 0; same && k < p.n; k++)
            same = p.v[k].len == strlen(c->want[k]) &&
                   memcmp(p.text.p + p.v[k].off, c->want[k], p.v[k].len) == 0;
        if (!same) {
            print_error("Split /%s/ %s invert=%d on \"%s\": got", c->pattern, c->behavior,
                        c->invert, c->text);
            for (size_t k = 0; k < p.n; k++)
                print_error(" [%.*s]", (int)p.v[k].len, p.text.p + p.v[k].off);
            print_error("\n");
        }
        assert_true(same);
        dlv_pieces_free(&p);
        dlv_tokenizer_destroy(tok);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(features), cmocka_unit_test(replace_regex),
                                       cmocka_unit_test(split_invert)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
