/* Qwen2-VL config.json parsing (model/config_qwen2vl.c): Qwen2-VL-2B's
 * fields, the transformers 4.46.3 class defaults for absent fields
 * (Qwen2VLConfig, Qwen2VLVisionConfig), and the errors, each naming its
 * field. The LLaVA parser keeps refusing model_type qwen2_vl (test_config). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/config.h"

/* The fields of Qwen/Qwen2-VL-2B-Instruct's config.json (written by
 * transformers 4.41.2: vision_config has in_chans and spatial_patch_size,
 * which Qwen2VLVisionConfig ignores, and no hidden_act). */
static const char qwen2vl_2b[] =
    "{\n"
    "  \"architectures\": [\"Qwen2VLForConditionalGeneration\"],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 151643,\n"
    "  \"eos_token_id\": 151645,\n"
    "  \"vision_start_token_id\": 151652,\n"
    "  \"vision_end_token_id\": 151653,\n"
    "  \"vision_token_id\": 151654,\n"
    "  \"image_token_id\": 151655,\n"
    "  \"video_token_id\": 151656,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 1536,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": 8960,\n"
    "  \"max_position_embeddings\": 32768,\n"
    "  \"max_window_layers\": 28,\n"
    "  \"model_type\": \"qwen2_vl\",\n"
    "  \"num_attention_heads\": 12,\n"
    "  \"num_hidden_layers\": 28,\n"
    "  \"num_key_value_heads\": 2,\n"
    "  \"rms_norm_eps\": 1e-06,\n"
    "  \"rope_theta\": 1000000.0,\n"
    "  \"sliding_window\": 32768,\n"
    "  \"tie_word_embeddings\": true,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.41.2\",\n"
    "  \"use_cache\": true,\n"
    "  \"use_sliding_window\": false,\n"
    "  \"vision_config\": {\n"
    "    \"depth\": 32,\n"
    "    \"embed_dim\": 1280,\n"
    "    \"mlp_ratio\": 4,\n"
    "    \"num_heads\": 16,\n"
    "    \"in_chans\": 3,\n"
    "    \"hidden_size\": 1536,\n"
    "    \"patch_size\": 14,\n"
    "    \"spatial_merge_size\": 2,\n"
    "    \"spatial_patch_size\": 14,\n"
    "    \"temporal_patch_size\": 2\n"
    "  },\n"
    "  \"rope_scaling\": {\"type\": \"mrope\", \"mrope_section\": [16, 24, 24]},\n"
    "  \"vocab_size\": 151936\n"
    "}\n";

/* The least a config needs: everything else from the class defaults. The
 * default towers disagree on the width (vision hidden_size 3584, text 8192),
 * so the vision one is given. */
static const char *const minimal_fields[][2] = {
    {"model_type", "\"qwen2_vl\""},
    {"image_token_id", "7"},
    {"vision_start_token_id", "5"},
    {"vision_end_token_id", "6"},
    {"rope_scaling", "{\"type\": \"mrope\", \"mrope_section\": [16, 24, 24]}"},
    {"vision_config", "{\"hidden_size\": 8192}"},
};

/* The minimal config without the top-level field skip (NULL: none), with
 * extra fields (a JSON fragment "\"k\": v, ...", or "") appended. */
static void minimal(char *buf, size_t cap, const char *skip, const char *extra)
{
    size_t n = (size_t)snprintf(buf, cap, "{");
    for (size_t i = 0; i < sizeof minimal_fields / sizeof minimal_fields[0]; i++)
        if (!skip || strcmp(skip, minimal_fields[i][0]))
            n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\": %s", n > 1 ? ", " : "",
                                  minimal_fields[i][0], minimal_fields[i][1]);
    n += (size_t)snprintf(buf + n, cap - n, "%s%s}", *extra ? ", " : "", extra);
    assert_true(n < cap);
}

static dlv_status parse(const char *json, dlv_qwen2vl_config *c)
{
    return dlv_qwen2vl_config_parse(json, strlen(json), "config.json", c);
}

static dlv_status parse_min(const char *skip, const char *extra, dlv_qwen2vl_config *c)
{
    char buf[1024];
    minimal(buf, sizeof buf, skip, extra);
    return parse(buf, c);
}

static void test_2b(void **state)
{
    (void)state;
    dlv_qwen2vl_config c;
    if (parse(qwen2vl_2b, &c)) fail_msg("%s", dlv_last_error());
    assert_string_equal(c.architecture, "Qwen2VLForConditionalGeneration");
    assert_string_equal(c.torch_dtype, "bfloat16");
    const dlv_text_config *t = &c.text;
    assert_int_equal(t->kind, DLV_TEXT_QWEN2);
    assert_int_equal(t->vocab_size, 151936);
    assert_int_equal(t->hidden_size, 1536);
    assert_int_equal(t->intermediate_size, 8960);
    assert_int_equal(t->num_hidden_layers, 28);
    assert_int_equal(t->num_attention_heads, 12);
    assert_int_equal(t->num_key_value_heads, 2);
    assert_int_equal(t->head_dim, 128);
    assert_int_equal(t->max_position_embeddings, 32768);
    assert_true(t->rms_norm_eps == 1e-6);
    assert_true(t->rope_theta == 1e6);
    assert_int_equal(t->tie_word_embeddings, 1);
    assert_int_equal(t->attention_bias, 1);
    assert_int_equal(t->has_rope_scaling, 0);
    assert_int_equal(t->bos_token_id, 151643);
    assert_int_equal(t->eos_token_id, 151645);
    assert_int_equal(t->pad_token_id, -1);
    assert_int_equal(c.mrope_section[0], 16);
    assert_int_equal(c.mrope_section[1], 24);
    assert_int_equal(c.mrope_section[2], 24);
    assert_int_equal(c.image_token_id, 151655);
    assert_int_equal(c.video_token_id, 151656);
    assert_int_equal(c.vision_start_token_id, 151652);
    assert_int_equal(c.vision_end_token_id, 151653);
    const dlv_qwen2vl_vision_config *v = &c.vision;
    assert_int_equal(v->depth, 32);
    assert_int_equal(v->embed_dim, 1280);
    assert_int_equal(v->hidden_size, 1536);
    assert_true(v->mlp_ratio == 4.0);
    assert_int_equal(v->mlp_dim, 5120);
    assert_int_equal(v->num_heads, 16);
    assert_int_equal(v->in_channels, 3);
    assert_int_equal(v->patch_size, 14);
    assert_int_equal(v->spatial_merge_size, 2);
    assert_int_equal(v->temporal_patch_size, 2);
    assert_int_equal(v->hidden_act, DLV_ACT_QUICK_GELU);
}

static void test_defaults(void **state)
{
    (void)state;
    dlv_qwen2vl_config c;
    if (parse_min(NULL, "", &c)) fail_msg("%s", dlv_last_error());
    assert_string_equal(c.architecture, "");
    assert_string_equal(c.torch_dtype, "");
    const dlv_text_config *t = &c.text;
    assert_int_equal(t->vocab_size, 152064);
    assert_int_equal(t->hidden_size, 8192);
    assert_int_equal(t->intermediate_size, 29568);
    assert_int_equal(t->num_hidden_layers, 80);
    assert_int_equal(t->num_attention_heads, 64);
    assert_int_equal(t->num_key_value_heads, 8);
    assert_int_equal(t->head_dim, 128);
    assert_int_equal(t->max_position_embeddings, 32768);
    assert_true(t->rms_norm_eps == 1e-5);
    assert_true(t->rope_theta == 1e6);
    assert_int_equal(t->tie_word_embeddings, 0);
    assert_int_equal(t->hidden_act, DLV_ACT_SILU);
    assert_int_equal(t->bos_token_id, -1);
    assert_int_equal(c.video_token_id, -1);
    const dlv_qwen2vl_vision_config *v = &c.vision;
    assert_int_equal(v->depth, 32);
    assert_int_equal(v->embed_dim, 1280);
    assert_int_equal(v->mlp_dim, 5120);
    assert_int_equal(v->num_heads, 16);
    assert_int_equal(v->in_channels, 3);
    assert_int_equal(v->patch_size, 14);
    assert_int_equal(v->spatial_merge_size, 2);
    assert_int_equal(v->temporal_patch_size, 2);
    assert_int_equal(v->hidden_act, DLV_ACT_QUICK_GELU);

    /* num_key_value_heads null: as many as the attention heads; the 4.46
     * spelling rope_type "default" is M-RoPE too; mlp_ratio truncates. */
    if (parse_min("rope_scaling", "\"num_key_value_heads\": null, \"num_attention_heads\": "
                  "64, \"rope_scaling\": {\"rope_type\": \"default\", \"mrope_section\": "
                  "[16, 16, 32]}", &c))
        fail_msg("%s", dlv_last_error());
    assert_int_equal(c.text.num_key_value_heads, 64);
    assert_int_equal(c.mrope_section[2], 32);
    if (parse("{\"model_type\": \"qwen2_vl\", \"image_token_id\": 7, \"vision_start_token_id\": "
              "5, \"vision_end_token_id\": 6, \"hidden_size\": 64, \"num_attention_heads\": 4, "
              "\"num_key_value_heads\": 2, \"rope_scaling\": {\"type\": \"mrope\", "
              "\"mrope_section\": [2, 3, 3]}, \"vision_config\": {\"hidden_size\": 64, "
              "\"embed_dim\": 16, \"num_heads\": 2, \"mlp_ratio\": 2.7}}", &c))
        fail_msg("%s", dlv_last_error());
    assert_int_equal(c.vision.mlp_dim, 43); /* int(16 * 2.7) */
}

/* Expects status st and a message containing both fragments. */
static void expect_error(const char *json, dlv_status st, const char *frag1, const char *frag2)
{
    dlv_qwen2vl_config c;
    memset(&c, 0x5a, sizeof c);
    const dlv_status got = parse(json, &c);
    if (got != st) fail_msg("for %s\n  got %d: %s", json, (int)got, dlv_last_error());
    if (frag1 && !strstr(dlv_last_error(), frag1))
        fail_msg("message '%s' lacks '%s'", dlv_last_error(), frag1);
    if (frag2 && !strstr(dlv_last_error(), frag2))
        fail_msg("message '%s' lacks '%s'", dlv_last_error(), frag2);
    /* *out is zeroed on failure. */
    assert_int_equal(c.text.hidden_size, 0);
    assert_int_equal(c.vision.depth, 0);
}

/* expect_error on the minimal config without skip, with extra. */
static void expect_min(const char *skip, const char *extra, dlv_status st, const char *frag1,
                       const char *frag2)
{
    char buf[1024];
    minimal(buf, sizeof buf, skip, extra);
    expect_error(buf, st, frag1, frag2);
}

#define MROPE(sec) "\"rope_scaling\": {\"type\": \"mrope\", \"mrope_section\": " sec "}"

static void test_errors(void **state)
{
    (void)state;
    const dlv_status F = DLV_E_FORMAT, U = DLV_E_UNSUPPORTED;
    expect_min("model_type", "\"model_type\": \"llava\"", U, "model_type", "'llava'");
    expect_min("model_type", "", U, "model_type", "qwen2_vl");
    expect_error("[]", F, "top level", NULL);
    expect_min(NULL, "\"hidden_size\": \"1536\"", F,
               "config.json: hidden_size: expected an integer", NULL);
    expect_min(NULL, "\"vocab_size\": 0", F, "vocab_size: 0 is outside", NULL);
    expect_min(NULL, "\"num_attention_heads\": 48", F,
               "hidden_size: 8192 is not divisible by num_attention_heads 48", NULL);
    expect_min(NULL, "\"num_key_value_heads\": 7", F, "num_key_value_heads: 7 does not divide",
               NULL);
    expect_min(NULL, "\"rms_norm_eps\": 0", F, "rms_norm_eps", NULL);
    expect_min(NULL, "\"rope_theta\": -1", F, "rope_theta", NULL);
    expect_min(NULL, "\"hidden_act\": \"gelu\"", U, "hidden_act", "'gelu'");
    expect_min(NULL, "\"tie_word_embeddings\": 1", F,
               "tie_word_embeddings: expected true or false", NULL);
    expect_min(NULL, "\"architectures\": \"Qwen2VLForConditionalGeneration\"", F,
               "architectures", NULL);
    /* rope_scaling */
    expect_min("rope_scaling", "", F, "rope_scaling: missing", NULL);
    expect_min("rope_scaling", MROPE("[16, 24, 16]"), F,
               "rope_scaling.mrope_section: [16, 24, 16] sums to 56, not head_dim / 2 = 64", NULL);
    expect_min("rope_scaling", MROPE("[32, 32]"), F,
               "rope_scaling.mrope_section: expected a list of 3", NULL);
    expect_min("rope_scaling", MROPE("[32, -8, 40]"), F, "rope_scaling.mrope_section[1]", NULL);
    expect_min("rope_scaling", "\"rope_scaling\": {\"type\": \"yarn\", \"mrope_section\": "
               "[16, 24, 24]}", U, "rope_scaling.type", "'yarn'");
    expect_min("rope_scaling", "\"rope_scaling\": [16, 24, 24]", F,
               "rope_scaling: expected an object", NULL);
    /* token ids */
    expect_min("image_token_id", "", F, "image_token_id: missing", NULL);
    expect_min("vision_end_token_id", "", F, "vision_end_token_id: missing", NULL);
    expect_min("image_token_id", "\"vocab_size\": 100, \"image_token_id\": 100", F,
               "image_token_id: 100 is outside 0..99", NULL);
    expect_min(NULL, "\"video_token_id\": -3", F, "video_token_id", NULL);
    expect_min("vision_start_token_id", "\"vision_start_token_id\": 7", F,
               "image_token_id: 7 is also another vision token's id", NULL);
    /* vision_config */
    expect_min("vision_config", "\"vision_config\": 3", F, "vision_config: expected an object",
               NULL);
    expect_min("vision_config", "\"vision_config\": {\"hidden_size\": 8192, \"model_type\": "
               "\"clip_vision_model\"}", U, "vision_config.model_type", "clip_vision_model");
    expect_min("vision_config", "\"vision_config\": {\"hidden_size\": 1536}", F,
               "vision_config.hidden_size: 1536 differs from hidden_size 8192", NULL);
    expect_min("vision_config", "\"vision_config\": {\"hidden_size\": 8192, \"depth\": 0}", F,
               "vision_config.depth: 0 is outside", NULL);
    expect_min("vision_config", "\"vision_config\": {\"hidden_size\": 8192, \"num_heads\": 3}",
               F, "vision_config.embed_dim: 1280 is not divisible by num_heads 3", NULL);
    expect_min("vision_config", "\"vision_config\": {\"hidden_size\": 8192, \"embed_dim\": 24, "
               "\"num_heads\": 4}", U, "vision_config.num_heads: head size 6", NULL);
    expect_min("vision_config", "\"vision_config\": {\"hidden_size\": 8192, \"mlp_ratio\": 0}",
               F, "vision_config.mlp_ratio", NULL);
    expect_min("vision_config", "\"vision_config\": {\"hidden_size\": 8192, \"hidden_act\": "
               "\"tanh\"}", U, "vision_config.hidden_act", "'tanh'");
    expect_min("vision_config", "\"vision_config\": {\"hidden_size\": 8192, "
               "\"spatial_merge_size\": \"2\"}", F,
               "vision_config.spatial_merge_size: expected an integer", NULL);
    /* Duplicate keys are refused by the JSON layer. */
    expect_min(NULL, "\"hidden_size\": 64, \"hidden_size\": 64", F, NULL, NULL);
}

/* The LLaVA parser (what model loading uses) reads a Qwen2-VL file into
 * its view: the language model and image token mirrored, the file's own
 * config kept. */
static void test_llava_view(void **state)
{
    (void)state;
    dlv_llava_config c;
    dlv_status st = dlv_llava_config_parse(qwen2vl_2b, strlen(qwen2vl_2b), "config.json", &c);
    if (st) fprintf(stderr, "%s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
    assert_int_equal(c.qwen2vl, 1);
    assert_int_equal(c.qv.qwen25, 0);
    assert_int_equal(c.text.hidden_size, 1536);
    assert_int_equal(c.text.kind, DLV_TEXT_QWEN2);
    assert_int_equal(c.image_token_index, 151655);
    assert_int_equal(c.qv.vision.embed_dim, 1280);
    assert_string_equal(c.architecture, "Qwen2VLForConditionalGeneration");
    assert_int_equal(c.anyres, 0);
    assert_int_equal(dlv_qwen2vl_config_parse(NULL, 0, NULL, NULL), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_qwen2vl_config_load(NULL, NULL), DLV_E_INVALID_ARG);
}

/* Qwen2.5-VL-3B-Instruct's config.json (Qwen2_5_VLConfig, transformers
 * 4.51.3): the tower's hidden_size is its width, out_hidden_size the
 * merger's output; window attention but in fullatt_block_indexes. */
static const char qwen25vl_3b[] =
    "{\"architectures\": [\"Qwen2_5_VLForConditionalGeneration\"], \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"vision_start_token_id\": 151652,"
    " \"vision_end_token_id\": 151653, \"vision_token_id\": 151654, \"image_token_id\": 151655,"
    " \"video_token_id\": 151656, \"hidden_act\": \"silu\", \"hidden_size\": 2048,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 11008,"
    " \"max_position_embeddings\": 128000, \"max_window_layers\": 70,"
    " \"model_type\": \"qwen2_5_vl\", \"num_attention_heads\": 16, \"num_hidden_layers\": 36,"
    " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,"
    " \"sliding_window\": 32768, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.41.2\", \"use_cache\": true, \"use_sliding_window\": false,"
    " \"vision_config\": {\"depth\": 32, \"hidden_act\": \"silu\", \"hidden_size\": 1280,"
    " \"intermediate_size\": 3420, \"num_heads\": 16, \"in_chans\": 3, \"out_hidden_size\": 2048,"
    " \"patch_size\": 14, \"spatial_merge_size\": 2, \"spatial_patch_size\": 14,"
    " \"window_size\": 112, \"fullatt_block_indexes\": [7, 15, 23, 31],"
    " \"tokens_per_second\": 2, \"temporal_patch_size\": 2},"
    " \"rope_scaling\": {\"type\": \"mrope\", \"mrope_section\": [16, 24, 24]},"
    " \"vocab_size\": 151936}";

static void test_qwen25(void **state)
{
    (void)state;
    dlv_llava_config c;
    dlv_status st = dlv_llava_config_parse(qwen25vl_3b, strlen(qwen25vl_3b), "config.json", &c);
    if (st) fprintf(stderr, "%s\n", dlv_last_error());
    assert_int_equal(st, DLV_OK);
    const dlv_qwen2vl_vision_config *v = &c.qv.vision;
    assert_int_equal(c.qwen2vl, 1);
    assert_int_equal(c.qv.qwen25, 1);
    assert_int_equal(v->qwen25, 1);
    assert_int_equal(v->embed_dim, 1280);
    assert_int_equal(v->hidden_size, 2048);
    assert_int_equal(v->mlp_dim, 3420);
    assert_int_equal(v->window_size, 112);
    assert_int_equal(v->n_fullatt, 4);
    assert_int_equal(v->fullatt[3], 31);
    assert_int_equal(v->hidden_act, DLV_ACT_SILU);
    assert_int_equal(c.text.head_dim, 128);
    assert_int_equal(c.qv.mrope_section[2], 24);
    /* Refusals name the field. */
    static const char *const bad[][2] = {
        {"\"window_size\": 112", "\"window_size\": 100"},
        {"\"fullatt_block_indexes\": [7, 15, 23, 31]", "\"fullatt_block_indexes\": [7, 32]"},
        {"\"hidden_act\": \"silu\", \"hidden_size\": 1280", "\"hidden_act\": \"gelu\", \"hidden_size\": 1280"},
        {"\"out_hidden_size\": 2048", "\"out_hidden_size\": 1024"},
    };
    static const char *const field[] = {"window_size", "fullatt_block_indexes[1]",
                                        "vision_config.hidden_act", "vision_config.hidden_size"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *at = strstr(qwen25vl_3b, bad[i][0]);
        assert_non_null(at);
        char buf[sizeof qwen25vl_3b + 64];
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - qwen25vl_3b), qwen25vl_3b, bad[i][1],
                 at + strlen(bad[i][0]));
        st = dlv_llava_config_parse(buf, strlen(buf), "config.json", &c);
        assert_int_not_equal(st, DLV_OK);
        if (!strstr(dlv_last_error(), field[i]))
            fprintf(stderr, "case %zu: %s\n", i, dlv_last_error());
        assert_non_null(strstr(dlv_last_error(), field[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_2b),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_llava_view),
        cmocka_unit_test(test_qwen25),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
