/* Pipeline features on small synthetic tokenizer.json files whose ids HF
 * `tokenizers` produced (golden/features.json): Metaspace with each
 * prepend_scheme, merges as "a b" strings and as pairs, added tokens with
 * lstrip / rstrip / single_word / normalized, fuse_unk on and off,
 * Lowercase + NFKC, the post-processor template and skip-special decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "text/tokenizer.h"
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
    char *path = tt_source("tests/text/golden/features.json");
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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(features)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
