/* The default prompts' token ids against Hugging Face (issue 15, item 8):
 * each side's template tokenized as one string, as an HF processor does, and
 * split into head / instruction / tail, for the tokenizers of
 * golden/prompt_ids.json (tests/reference/prompt_ids_reference.py): the
 * in-repository Llama (legacy and Metaspace) and Qwen2 fixtures always, the
 * real Llama-2 (legacy and non-legacy) and Qwen2 files of ../shared/assets
 * when present. It also counts the tokens the old defaults (each piece
 * tokenized alone) got wrong, which the real Llama-2 files must show.
 *
 * Usage: test_prompt_ids GOLDEN.json SOURCE_ROOT [ASSETS_DIR] */
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "disclvlm.h"
#include "model/prompts.h"
#include "tokenizer/tokenizer.h"

static const char *golden_path, *source_root, *assets_dir;

/* The tokenizer.json of an entry, edited as the reference edited it. */
static char *edited_json(const char *path, const char *edits)
{
    json_error_t err;
    json_t *js = json_load_file(path, 0, &err);
    if (!js) {
        fprintf(stderr, "%s: %s\n", path, err.text);
        return NULL;
    }
    if (strstr(edits, "nonlegacy")) {
        json_object_set_new(js, "normalizer", json_null());
        json_object_set_new(js, "pre_tokenizer",
                            json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
                                      "\xe2\x96\x81", "prepend_scheme", "first", "split", 0));
    }
    if (strstr(edits, "image")) {
        json_t *added = json_object_get(js, "added_tokens");
        json_int_t n = (json_int_t)json_object_size(
            json_object_get(json_object_get(js, "model"), "vocab"));
        size_t i;
        json_t *t;
        json_array_foreach(added, i, t) {
            json_int_t id = json_integer_value(json_object_get(t, "id"));
            if (id + 1 > n) n = id + 1;
        }
        json_array_append_new(added, json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id", n,
                                               "content", "<image>", "single_word", 0, "lstrip",
                                               0, "rstrip", 0, "normalized", 0, "special", 1));
    }
    char *text = json_dumps(js, JSON_COMPACT);
    json_decref(js);
    return text;
}

static int same(const json_t *want, const int32_t *ids, size_t n)
{
    if (json_array_size(want) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != ids[i]) return 0;
    return 1;
}

static void show(const char *what, const json_t *want, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s: got", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n  %*s  want", (int)strlen(what), "");
    size_t i;
    json_t *v;
    json_array_foreach(want, i, v) fprintf(stderr, " %lld", (long long)json_integer_value(v));
    fprintf(stderr, "\n");
}

/* Ids of the pieces tokenized alone, the old defaults, minus the whole
 * string's: the extra tokens they had. */
static long pieces_extra(const dlv_tokenizer *tok, const char *const pieces[], size_t n_pieces,
                         size_t whole_n)
{
    long total = 0;
    for (size_t i = 0; i < n_pieces; i++) {
        dlv_ids ids = {0};
        assert_int_equal(dlv_tokenizer_encode(tok, pieces[i], strlen(pieces[i]), 0, &ids), DLV_OK);
        total += (long)ids.n;
        dlv_ids_free(&ids);
    }
    return total - (long)whole_n;
}

static void test_golden(void **state)
{
    (void)state;
    json_error_t err;
    json_t *g = json_load_file(golden_path, 0, &err);
    if (!g) fprintf(stderr, "%s: %s\n", golden_path, err.text);
    assert_non_null(g);
    const json_t *caps = json_object_get(g, "captions");
    size_t k, bad = 0, ran = 0;
    json_t *e;
    json_array_foreach(json_object_get(g, "tokenizers"), k, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *rel = json_string_value(json_object_get(e, "path"));
        char path[4096];
        if (!strncmp(rel, "$ASSETS/", 8)) {
            if (!assets_dir) {
                printf("%-24s skipped: no ../shared/assets\n", name);
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", assets_dir, rel + 8);
        } else
            snprintf(path, sizeof path, "%s/%s", source_root, rel);
        char *text = edited_json(path, json_string_value(json_object_get(e, "edit")));
        assert_non_null(text);
        dlv_tokenizer *tok = NULL;
        assert_int_equal(dlv_tokenizer_from_json_text(text, strlen(text), name, &tok), DLV_OK);
        free(text);
        const char *fam = json_string_value(json_object_get(e, "family"));
        const int family = !strcmp(fam, "qwen2vl") ? DLV_PROMPT_FAMILY_QWEN2VL
                           : !strcmp(fam, "qwen2") ? DLV_PROMPT_FAMILY_QWEN2
                                                   : DLV_PROMPT_FAMILY_LLAMA;
        const int32_t image_id = (int32_t)json_integer_value(json_object_get(e, "image_id"));
        dlv_prompts p;
        assert_int_equal(dlv_prompts_default_texts(family, 1, 1, &p), DLV_OK);
        assert_int_equal(dlv_prompts_tokenize_whole(&p, tok, image_id), DLV_OK);
        const json_t *img = json_object_get(e, "image");
        const dlv_prompt_piece *ip[3] = {&p.image.prefix, &p.image.instruction, &p.image.suffix};
        static const char *const keys[3] = {"prefix", "instruction", "suffix"};
        size_t whole_n = 1;
        for (int i = 0; i < 3; i++) {
            whole_n += ip[i]->n;
            if (!same(json_object_get(img, keys[i]), ip[i]->ids, ip[i]->n)) {
                fprintf(stderr, "%s: image %s differs\n", name, keys[i]);
                show(keys[i], json_object_get(img, keys[i]), ip[i]->ids, ip[i]->n);
                bad++;
            }
        }
        const char *img_pieces[3] = {p.image.prefix.text, p.image.instruction.text,
                                     p.image.suffix.text};
        const long img_extra = pieces_extra(tok, img_pieces, 3, whole_n - 1);
        long txt_extra = 0;
        size_t c;
        json_t *want;
        json_array_foreach(json_object_get(e, "text"), c, want) {
            const char *cap = json_string_value(json_array_get(caps, c));
            dlv_text_ids t;
            assert_int_equal(dlv_prompts_text_ids(&p, tok, cap, strlen(cap), &t), DLV_OK);
            const dlv_ids *got[3] = {&t.head, &t.instr, &t.tail};
            static const char *const tkeys[3] = {"head", "instruction", "tail"};
            for (int i = 0; i < 3; i++)
                if (!same(json_object_get(want, tkeys[i]), got[i]->v, got[i]->n)) {
                    fprintf(stderr, "%s: caption %zu \"%s\": %s differs\n", name, c, cap,
                            tkeys[i]);
                    show(tkeys[i], json_object_get(want, tkeys[i]), got[i]->v, got[i]->n);
                    bad++;
                }
            if (c == 0) {
                const char *txt_pieces[4] = {p.text.prefix.text, cap, p.text.instruction.text,
                                             p.text.suffix.text};
                txt_extra = pieces_extra(tok, txt_pieces, 4, t.head.n + t.instr.n + t.tail.n);
            }
            dlv_text_ids_free(&t);
        }
        printf("%-24s image %zu+%zu+%zu ids and %zu captions as HF; the old pieces had "
               "%+ld (image) %+ld (\"%s\")\n", name, p.image.prefix.n, p.image.instruction.n,
               p.image.suffix.n, json_array_size(json_object_get(e, "text")), img_extra,
               txt_extra, json_string_value(json_array_get(caps, 0)));
        /* The bug this replaces (issue 15): LLaVA-1.5's Llama-2 tokenizer
         * gained a "\xe2\x96\x81" token on the image side and three around a
         * caption. */
        if (!strcmp(name, "llama2-legacy")) {
            assert_int_equal(img_extra, 1);
            assert_int_equal(txt_extra, 3);
        }
        dlv_prompts_free(&p);
        dlv_tokenizer_destroy(tok);
        ran++;
    }
    json_decref(g);
    assert_true(ran >= 3);
    assert_int_equal(bad, 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s GOLDEN.json SOURCE_ROOT [ASSETS_DIR]\n", argv[0]);
        return 2;
    }
    golden_path = argv[1];
    source_root = argv[2];
    if (argc > 3) {
        char probe[4096];
        snprintf(probe, sizeof probe, "%s/tokenizers/llama2/tokenizer.json", argv[3]);
        FILE *f = fopen(probe, "rb");
        if (f) {
            fclose(f);
            assets_dir = argv[3];
        }
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
