/* The public tokenizer API: loading by directory / file (with
 * tokenizer_config.json's add_bos_token / add_eos_token), the caller-owned
 * buffer contract of dlv_tokenize / dlv_detokenize, invalid UTF-8, bad
 * arguments and ids, and the model's tokenizer (argv[1]: a tiny checkpoint
 * without tokenizer files; the test links a tokenizer into a copy). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "disclvlm.h"

/* Vocabulary: <unk> <s> </s> then a..e, ▁, "ab", "▁ab"; Metaspace. */
static const char TOKENIZER[] =
    "{\"version\":\"1.0\",\"added_tokens\":["
    "{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false}],"
    "\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
    "\"prepend_scheme\":\"always\",\"split\":true},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
    "{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
    "\"pair\":[],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"always\"},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":false,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"a\":3,\"b\":4,\"c\":5,\"d\":6,\"e\":7,"
    "\"\\u2581\":8,\"ab\":9,\"\\u2581ab\":10},"
    "\"merges\":[\"a b\",\"\\u2581 ab\"]}}";

static char tmpdir[256];

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/dlv-tok-api-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR")
                                                                                : "/tmp");
    if (!mkdtemp(tmpdir)) return -1;
    mkdir(tmp_path("dir"), 0700);
    mkdir(tmp_path("empty"), 0700);
    write_file(tmp_path("tokenizer.json"), TOKENIZER);
    write_file(tmp_path("dir/tokenizer.json"), TOKENIZER);
    write_file(tmp_path("dir/tokenizer_config.json"),
               "{\"add_bos_token\":false,\"add_eos_token\":true,\"bos_token\":\"<s>\","
               "\"eos_token\":{\"content\":\"</s>\"},\"model_max_length\":"
               "1000000000000000019884624838656}");
    return 0;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    (void)state;
    rm_tree(tmpdir);
    return 0;
}

static dlv_tokenizer *load(const char *path)
{
    dlv_tokenizer *tok = NULL;
    dlv_status st = dlv_tokenizer_load(path, &tok);
    if (st != DLV_OK) print_error("%s: %s\n", path, dlv_last_error());
    assert_int_equal(st, DLV_OK);
    return tok;
}

static void buffer_contract(void **state)
{
    (void)state;
    dlv_tokenizer *tok = load(tmp_path("tokenizer.json"));
    size_t n = 99, vs = 0;
    assert_int_equal(dlv_tokenizer_vocab_size(tok, &vs), DLV_OK);
    assert_int_equal(vs, 11);
    /* "ab abc": <s> ▁ab ▁ab c */
    assert_int_equal(dlv_tokenize(tok, "ab abc", 6, DLV_TOKENIZE_ADD_SPECIAL, NULL, 0, &n), DLV_OK);
    assert_int_equal(n, 4);
    int32_t ids[8] = {-7, -7, -7, -7, -7, -7, -7, -7};
    assert_int_equal(dlv_tokenize(tok, "ab abc", 6, DLV_TOKENIZE_ADD_SPECIAL, ids, 3, &n),
                     DLV_E_BUFFER_TOO_SMALL);
    assert_int_equal(n, 4);
    assert_non_null(strstr(dlv_last_error(), "4 ids"));
    assert_int_equal(ids[3], -7);
    assert_int_equal(dlv_tokenize(tok, "ab abc", 6, DLV_TOKENIZE_ADD_SPECIAL, ids, 4, &n), DLV_OK);
    const int32_t want[] = {1, 10, 10, 5};
    assert_memory_equal(ids, want, sizeof want);
    assert_int_equal(ids[4], -7);
    /* Empty text, NULL text with len 0. */
    assert_int_equal(dlv_tokenize(tok, NULL, 0, 0, ids, 8, &n), DLV_OK);
    assert_int_equal(n, 0);
    assert_int_equal(dlv_tokenize(tok, "", 0, DLV_TOKENIZE_ADD_SPECIAL, ids, 8, &n), DLV_OK);
    assert_int_equal(n, 1);

    char buf[64];
    size_t needed = 0;
    assert_int_equal(dlv_detokenize(tok, want, 4, 0, NULL, 0, &needed), DLV_OK);
    assert_int_equal(needed, strlen("<s> ab abc") + 1);
    memset(buf, 'x', sizeof buf);
    assert_int_equal(dlv_detokenize(tok, want, 4, 0, buf, needed - 1, &needed),
                     DLV_E_BUFFER_TOO_SMALL);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[needed - 1], 'x');
    assert_int_equal(dlv_detokenize(tok, want, 4, 0, buf, needed, &needed), DLV_OK);
    assert_string_equal(buf, "<s> ab abc");
    assert_int_equal(dlv_detokenize(tok, want, 4, DLV_DETOKENIZE_SKIP_SPECIAL, buf, sizeof buf,
                                    &needed),
                     DLV_OK);
    assert_string_equal(buf, "ab abc");
    dlv_tokenizer_free(tok);
}

static void invalid_input(void **state)
{
    (void)state;
    dlv_tokenizer *tok = load(tmp_path("tokenizer.json"));
    const char *bad[] = {"\xFF", "ab\xC3", "\xC0\xAF", "\xED\xA0\x80", "a\xF4\x90\x80\x80",
                         "\x80x", "ok\xE2\x82"};
    int32_t ids[16];
    size_t n = 5;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(dlv_tokenize(tok, bad[i], strlen(bad[i]), 0, ids, 16, &n),
                         DLV_E_INVALID_ARG);
        assert_non_null(strstr(dlv_last_error(), "UTF-8"));
        assert_non_null(strstr(dlv_last_error(), "offset"));
    }
    /* NUL bytes are text like any other. */
    assert_int_equal(dlv_tokenize(tok, "a\0b", 3, 0, ids, 16, &n), DLV_OK);
    assert_int_equal(n, 4); /* ▁ a <unk> b */
    assert_int_equal(dlv_tokenize(NULL, "a", 1, 0, ids, 16, &n), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_tokenize(tok, NULL, 3, 0, ids, 16, &n), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_tokenize(tok, "a", 1, 0, NULL, 16, &n), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_tokenize(tok, "a", 1, 0, ids, 16, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_tokenize(tok, "a", 1, 0x80, ids, 16, &n), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "flags"));
    char buf[16];
    const int32_t out_of_range[] = {3, 11};
    assert_int_equal(dlv_detokenize(tok, out_of_range, 2, 0, buf, sizeof buf, &n),
                     DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "id 11"));
    const int32_t negative[] = {-1};
    assert_int_equal(dlv_detokenize(tok, negative, 1, 0, buf, sizeof buf, &n), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_detokenize(tok, NULL, 1, 0, buf, sizeof buf, &n), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_tokenizer_vocab_size(NULL, &n), DLV_E_INVALID_ARG);
    dlv_tokenizer_free(tok);
    dlv_tokenizer_free(NULL);
}

static void loading(void **state)
{
    (void)state;
    /* The directory's tokenizer_config.json: no BOS, EOS. */
    dlv_tokenizer *tok = load(tmp_path("dir"));
    int32_t ids[8];
    size_t n = 0;
    assert_int_equal(dlv_tokenize(tok, "ab", 2, DLV_TOKENIZE_ADD_SPECIAL, ids, 8, &n), DLV_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 10);
    assert_int_equal(ids[1], 2);
    dlv_tokenizer_free(tok);

    dlv_tokenizer *none = (dlv_tokenizer *)&n;
    assert_int_equal(dlv_tokenizer_load(tmp_path("empty"), &none), DLV_E_IO);
    assert_null(none);
    assert_non_null(strstr(dlv_last_error(), "no tokenizer.json or tokenizer.model"));
    assert_int_equal(dlv_tokenizer_load(tmp_path("missing.json"), &none), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), "missing.json"));
    assert_int_equal(dlv_tokenizer_load(NULL, &none), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_tokenizer_load("", &none), DLV_E_INVALID_ARG);
    write_file(tmp_path("broken.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
    assert_int_equal(dlv_tokenizer_load(tmp_path("broken.json"), &none), DLV_E_FORMAT);
    assert_non_null(strstr(dlv_last_error(), "broken.json"));
    write_file(tmp_path("broken.model"), "\x0a\x40\x0a");
    assert_int_equal(dlv_tokenizer_load(tmp_path("broken.model"), &none), DLV_E_FORMAT);
    assert_non_null(strstr(dlv_last_error(), "broken.model"));
}

static const char *tiny_dir;

static void model_tokenizer(void **state)
{
    (void)state;
    if (!tiny_dir) skip();
    dlv_model *model = NULL;
    assert_int_equal(dlv_model_load(tiny_dir, NULL, &model), DLV_OK);
    const dlv_tokenizer *tok = (const dlv_tokenizer *)tiny_dir;
    assert_int_equal(dlv_model_tokenizer(model, &tok), DLV_E_UNSUPPORTED);
    assert_null(tok);
    assert_non_null(strstr(dlv_last_error(), "no tokenizer"));
    dlv_model_free(model);

    /* The same checkpoint with a tokenizer linked in. */
    mkdir(tmp_path("model"), 0700);
    DIR *d = opendir(tiny_dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/%s", tiny_dir, e->d_name);
        snprintf(dst, sizeof dst, "%s/model/%s", tmpdir, e->d_name);
        char *abs = realpath(src, NULL);
        assert_non_null(abs);
        assert_int_equal(symlink(abs, dst), 0);
        free(abs);
    }
    closedir(d);
    write_file(tmp_path("model/tokenizer.json"), TOKENIZER);
    assert_int_equal(dlv_model_load(tmp_path("model"), NULL, &model), DLV_OK);
    assert_int_equal(dlv_model_tokenizer(model, &tok), DLV_OK);
    int32_t ids[8];
    size_t n = 0;
    assert_int_equal(dlv_tokenize(tok, "ab", 2, DLV_TOKENIZE_ADD_SPECIAL, ids, 8, &n), DLV_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], 10);
    dlv_model_free(model);

    /* A broken tokenizer file fails the model load, naming the file. */
    write_file(tmp_path("model/tokenizer.json"), "{\"model\":{\"type\":\"WordPiece\"}}");
    assert_int_equal(dlv_model_load(tmp_path("model"), NULL, &model), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "WordPiece"));
    assert_null(model);
    assert_int_equal(dlv_model_tokenizer(NULL, &tok), DLV_E_INVALID_ARG);
}

int main(int argc, char **argv)
{
    tiny_dir = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buffer_contract),
        cmocka_unit_test(invalid_input),
        cmocka_unit_test(loading),
        cmocka_unit_test(model_tokenizer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
