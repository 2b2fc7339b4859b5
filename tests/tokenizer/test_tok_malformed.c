/* Malformed and unsupported tokenizer files: every one fails with a status
 * and a message naming the file and the offending field or component,
 * never a crash or a leak (the suite runs under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tokenizer/tokenizer.h"
#include "text_test_util.h"

/* A small valid tokenizer.json; %s slots: model type, merges, normalizer,
 * pre_tokenizer, decoder. */
#define TEMPLATE                                                                               \
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true}]," \
    "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":null,\"decoder\":%s,"          \
    "\"model\":{\"type\":%s,\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,"   \
    "\"ab\":3},\"merges\":%s}}"

static dlv_status load_with(const char *norm, const char *pre, const char *dec, const char *type,
                            const char *merges)
{
    char text[2048];
    snprintf(text, sizeof text, TEMPLATE, norm, pre, dec, type, merges);
    dlv_tokenizer *tok = NULL;
    dlv_status st = dlv_tokenizer_from_json_text(text, strlen(text), "t.json", &tok);
    if (st == DLV_OK) {
        /* The valid variants also tokenize. */
        dlv_ids ids = {0};
        assert_int_equal(dlv_tokenizer_encode(tok, "abba", 4, 1, &ids), DLV_OK);
        assert_true(ids.n >= 1);
        dlv_ids_free(&ids);
        dlv_tokenizer_destroy(tok);
    } else
        assert_null(tok);
    return st;
}

static void expect(dlv_status got, dlv_status want, const char *needle)
{
    assert_int_equal(got, want);
    const char *msg = dlv_last_error();
    if (!strstr(msg, needle)) print_error("message \"%s\" lacks \"%s\"\n", msg, needle);
    assert_non_null(strstr(msg, needle));
    assert_non_null(strstr(msg, "t.json"));
}

static void valid_baseline(void **state)
{
    (void)state;
    assert_int_equal(load_with("null", "null", "null", "\"BPE\"", "[\"a b\"]"), DLV_OK);
    assert_int_equal(load_with("{\"type\":\"NFKC\"}", "{\"type\":\"ByteLevel\"}",
                               "{\"type\":\"ByteLevel\"}", "\"BPE\"", "[[\"a\",\"b\"]]"),
                     DLV_OK);
}

static void unsupported_components(void **state)
{
    (void)state;
    expect(load_with("null", "null", "null", "\"WordPiece\"", "[]"), DLV_E_UNSUPPORTED,
           "WordPiece");
    expect(load_with("null", "null", "null", "\"Unigram\"", "[]"), DLV_E_UNSUPPORTED, "Unigram");
    expect(load_with("{\"type\":\"BertNormalizer\"}", "null", "null", "\"BPE\"", "[]"),
           DLV_E_UNSUPPORTED, "BertNormalizer");
    expect(load_with("null", "{\"type\":\"Whitespace\"}", "null", "\"BPE\"", "[]"),
           DLV_E_UNSUPPORTED, "Whitespace");
    expect(load_with("null", "null", "{\"type\":\"WordPiece\"}", "\"BPE\"", "[]"),
           DLV_E_UNSUPPORTED, "WordPiece");
    /* Regex Replace is a normalizer feature only: the decoder refuses it. */
    expect(load_with("null", "null",
                     "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"a+\"},\"content\":\"b\"}",
                     "\"BPE\"", "[]"),
           DLV_E_UNSUPPORTED, "Regex");
}

static void bad_merges(void **state)
{
    (void)state;
    expect(load_with("null", "null", "null", "\"BPE\"", "[\"a zz\"]"), DLV_E_FORMAT, "'zz'");
    expect(load_with("null", "null", "null", "\"BPE\"", "[\"ab\"]"), DLV_E_FORMAT, "merge 0");
    expect(load_with("null", "null", "null", "\"BPE\"", "[\"a b\", \"b a\"]"), DLV_E_FORMAT,
           "'ba'");
    expect(load_with("null", "null", "null", "\"BPE\"", "[\"a b\", 7]"), DLV_E_FORMAT,
           "merge 1");
    expect(load_with("null", "null", "null", "\"BPE\"", "{}"), DLV_E_FORMAT, "merges");
}

static void bad_fields(void **state)
{
    (void)state;
    expect(load_with("null", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},"
                             "\"behavior\":\"Isolated\"}",
                     "null", "\"BPE\"", "[]"),
           DLV_E_FORMAT, "regex");
    expect(load_with("null", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
                             "\"behavior\":\"Sideways\"}",
                     "null", "\"BPE\"", "[]"),
           DLV_E_UNSUPPORTED, "Sideways");
    expect(load_with("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(a\"},\"content\":\"b\"}",
                     "null", "null", "\"BPE\"", "[]"),
           DLV_E_FORMAT, "regex");
    expect(load_with("{\"type\":\"Replace\",\"pattern\":{\"Nope\":\"a\"},\"content\":\"b\"}",
                     "null", "null", "\"BPE\"", "[]"),
           DLV_E_FORMAT, "pattern");
    expect(load_with("{\"type\":\"Prepend\"}", "null", "null", "\"BPE\"", "[]"), DLV_E_FORMAT,
           "prepend");
    expect(load_with("{\"oops\":1}", "null", "null", "\"BPE\"", "[]"), DLV_E_FORMAT, "type");
    expect(load_with("null", "null", "null", "7", "[]"), DLV_E_FORMAT, "model");

    const char *cases[][2] = {
        {"{\"added_tokens\":[]}", "'model'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]}}", "'a'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "id 0"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", "'a'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}", "vocab"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"added_tokens\":[{\"id\":1}]}",
         "added_tokens[0]"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[],\"dropout\":0.1}}", "dropout"},
        {"[1,2]", "object"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}", "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dlv_tokenizer *tok = NULL;
        dlv_status st = dlv_tokenizer_from_json_text(cases[i][0], strlen(cases[i][0]), "t.json",
                                                     &tok);
        if (st == DLV_OK || !strstr(dlv_last_error(), cases[i][1]))
            print_error("case %zu: status %d, \"%s\"\n", i, st, dlv_last_error());
        assert_int_not_equal(st, DLV_OK);
        assert_null(tok);
        expect(st, st, cases[i][1]);
    }
}

/* Every prefix of a valid file is refused cleanly or (at a boundary where
 * the prefix is itself valid) accepted. */
static void truncated_json(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof text, TEMPLATE, "{\"type\":\"NFC\"}",
             "{\"type\":\"Metaspace\",\"prepend_scheme\":\"first\"}", "{\"type\":\"Fuse\"}",
             "\"BPE\"", "[\"a b\"]");
    size_t n = strlen(text);
    for (size_t cut = 0; cut < n; cut++) {
        dlv_tokenizer *tok = NULL;
        dlv_status st = dlv_tokenizer_from_json_text(text, cut, "t.json", &tok);
        assert_int_equal(st, DLV_E_FORMAT);
        assert_non_null(strstr(dlv_last_error(), "t.json"));
        assert_null(tok);
    }
}

/* ---- SentencePiece protobuf ---------------------------------------------- */

typedef struct pbw {
    uint8_t b[4096];
    size_t n;
} pbw;

static void put_varint(pbw *w, uint64_t v)
{
    do {
        uint8_t c = v & 0x7F;
        v >>= 7;
        w->b[w->n++] = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
}

static void put_bytes(pbw *w, uint32_t field, const void *p, size_t n)
{
    put_varint(w, (uint64_t)field << 3 | 2);
    put_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void put_piece(pbw *w, const char *s, float score, int type)
{
    pbw p = {{0}, 0};
    put_bytes(&p, 1, s, strlen(s));
    put_varint(&p, 2 << 3 | 5);
    uint32_t bits;
    memcpy(&bits, &score, 4);
    for (int i = 0; i < 4; i++) p.b[p.n++] = (uint8_t)(bits >> (8 * i));
    put_varint(&p, 3 << 3 | 0);
    put_varint(&p, (uint64_t)type);
    put_bytes(w, 1, p.b, p.n);
}

static void make_spm(pbw *w, int model_type)
{
    w->n = 0;
    put_piece(w, "<unk>", 0.0f, 2);
    put_piece(w, "<s>", 0.0f, 3);
    put_piece(w, "</s>", 0.0f, 3);
    put_piece(w, "\xE2\x96\x81", -1.0f, 1);
    put_piece(w, "a", -2.0f, 1);
    put_piece(w, "b", -3.0f, 1);
    put_piece(w, "ab", -0.5f, 1);
    put_piece(w, "\xE2\x96\x81" "ab", -0.25f, 1);
    pbw t = {{0}, 0};
    put_varint(&t, 3 << 3 | 0);
    put_varint(&t, (uint64_t)model_type);
    put_bytes(w, 2, t.b, t.n);
    pbw ns = {{0}, 0};
    put_bytes(&ns, 1, "identity", 8);
    put_varint(&ns, 4 << 3 | 0);
    put_varint(&ns, 0); /* remove_extra_whitespaces off */
    put_bytes(w, 3, ns.b, ns.n);
}

static void spm_small(void **state)
{
    (void)state;
    pbw w;
    make_spm(&w, 2);
    dlv_tokenizer *tok = NULL;
    assert_int_equal(dlv_tokenizer_from_spm_bytes(w.b, w.n, "t.model", &tok), DLV_OK);
    dlv_ids ids = {0};
    assert_int_equal(dlv_tokenizer_encode(tok, "ab ab<s>b", 9, 1, &ids), DLV_OK);
    /* <s> ▁ab ▁ab <s> ▁b? no: the text after <s> gets its own dummy prefix */
    const int32_t want[] = {1, 7, 7, 1, 3, 5};
    assert_int_equal(ids.n, 6);
    assert_memory_equal(ids.v, want, sizeof want);
    dlv_tbuf text = {0};
    assert_int_equal(dlv_tokenizer_decode(tok, ids.v, ids.n, 1, &text), DLV_OK);
    assert_string_equal(text.p, "ab ab b");
    dlv_tbuf_free(&text);
    dlv_ids_free(&ids);
    dlv_tokenizer_destroy(tok);

    make_spm(&w, 1);
    assert_int_equal(dlv_tokenizer_from_spm_bytes(w.b, w.n, "t.model", &tok), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "Unigram"));
    assert_null(tok);
}

static void spm_truncated(void **state)
{
    (void)state;
    pbw w;
    make_spm(&w, 2);
    size_t refused = 0;
    for (size_t cut = 0; cut < w.n; cut++) {
        dlv_tokenizer *tok = NULL;
        dlv_status st = dlv_tokenizer_from_spm_bytes(w.b, cut, "t.model", &tok);
        if (st == DLV_OK) {
            dlv_tokenizer_destroy(tok);
            continue;
        }
        refused++;
        assert_true(st == DLV_E_FORMAT || st == DLV_E_UNSUPPORTED);
        assert_non_null(strstr(dlv_last_error(), "t.model"));
        assert_null(tok);
    }
    assert_true(refused > w.n / 2);
    /* A cut inside the first piece is a truncation. */
    dlv_tokenizer *tok = NULL;
    assert_int_equal(dlv_tokenizer_from_spm_bytes(w.b, 5, "t.model", &tok), DLV_E_FORMAT);
    assert_non_null(strstr(dlv_last_error(), "truncated"));
    const uint8_t garbage[] = {0xFF, 0xFF, 0xFF};
    assert_int_equal(dlv_tokenizer_from_spm_bytes(garbage, 3, "t.model", &tok), DLV_E_FORMAT);
}

/* A real (trained) tokenizer.model cut short at several places: refused
 * with the label in the message, or loaded when the cut falls between
 * top-level fields. */
static void spm_cut(const char *path)
{
    size_t len;
    char *data = tt_read(path, &len);
    assert_non_null(data);
    const size_t cuts[] = {1, 2, 100, 1001, len / 2 + 3, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        dlv_tokenizer *tok = NULL;
        dlv_status st = dlv_tokenizer_from_spm_bytes((const uint8_t *)data, cuts[i], "t.model",
                                                     &tok);
        if (st == DLV_OK) dlv_tokenizer_destroy(tok);
        else
            assert_non_null(strstr(dlv_last_error(), "t.model"));
    }
    free(data);
}

/* The committed fixture (tests/tokenizer/fixtures/llama), always. */
static void spm_fixture_truncated(void **state)
{
    (void)state;
    char *path = tt_source("tests/tokenizer/fixtures/llama/tokenizer.model");
    spm_cut(path);
    free(path);
}

/* The real llama2 tokenizer.model, cut short, when the assets exist. */
static void spm_real_truncated(void **state)
{
    (void)state;
    char *path = tt_asset("llama2/tokenizer.model");
    if (!path) {
        print_message("SKIPPED: ../shared/assets/tokenizers/llama2 not found\n");
        skip();
    }
    spm_cut(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_baseline), cmocka_unit_test(unsupported_components),
        cmocka_unit_test(bad_merges),     cmocka_unit_test(bad_fields),
        cmocka_unit_test(truncated_json), cmocka_unit_test(spm_small),
        cmocka_unit_test(spm_truncated),  cmocka_unit_test(spm_fixture_truncated),
        cmocka_unit_test(spm_real_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
