/* config.json and preprocessor_config.json parsing: real published files,
 * the Hugging Face class defaults for absent fields, and every error. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/config.h"
#include "model/weights.h"

/* llava-hf/llava-1.5-7b-hf config.json as published (transformers
 * 4.36.0.dev0): most text fields are absent and come from LlamaConfig. */
static const char llava15_7b[] =
    "{\n"
    "  \"architectures\": [\"LlavaForConditionalGeneration\"],\n"
    "  \"ignore_index\": -100,\n"
    "  \"image_token_index\": 32000,\n"
    "  \"model_type\": \"llava\",\n"
    "  \"pad_token_id\": 32001,\n"
    "  \"projector_hidden_act\": \"gelu\",\n"
    "  \"text_config\": {\n"
    "    \"_name_or_path\": \"lmsys/vicuna-7b-v1.5\",\n"
    "    \"architectures\": [\"LlamaForCausalLM\"],\n"
    "    \"max_position_embeddings\": 4096,\n"
    "    \"model_type\": \"llama\",\n"
    "    \"rms_norm_eps\": 1e-05,\n"
    "    \"torch_dtype\": \"float16\",\n"
    "    \"vocab_size\": 32064\n"
    "  },\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"float16\",\n"
    "  \"transformers_version\": \"4.36.0.dev0\",\n"
    "  \"vision_config\": {\n"
    "    \"hidden_size\": 1024,\n"
    "    \"image_size\": 336,\n"
    "    \"intermediate_size\": 4096,\n"
    "    \"model_type\": \"clip_vision_model\",\n"
    "    \"num_attention_heads\": 16,\n"
    "    \"num_hidden_layers\": 24,\n"
    "    \"patch_size\": 14,\n"
    "    \"projection_dim\": 768,\n"
    "    \"vocab_size\": 32000\n"
    "  },\n"
    "  \"vision_feature_layer\": -2,\n"
    "  \"vision_feature_select_strategy\": \"default\",\n"
    "  \"vocab_size\": 32064\n"
    "}\n";

/* llava-hf/llava-interleave-qwen-0.5b-hf config.json (SigLIP-so400m at
 * 384 px + Qwen1.5-0.5B-Chat), reconstructed from the published model. */
static const char interleave_qwen[] =
    "{\n"
    "  \"architectures\": [\"LlavaForConditionalGeneration\"],\n"
    "  \"ignore_index\": -100,\n"
    "  \"image_token_index\": 151646,\n"
    "  \"model_type\": \"llava\",\n"
    "  \"projector_hidden_act\": \"gelu\",\n"
    "  \"text_config\": {\n"
    "    \"_name_or_path\": \"Qwen/Qwen1.5-0.5B-Chat\",\n"
    "    \"architectures\": [\"Qwen2ForCausalLM\"],\n"
    "    \"bos_token_id\": 151643,\n"
    "    \"eos_token_id\": 151645,\n"
    "    \"hidden_size\": 1024,\n"
    "    \"intermediate_size\": 2816,\n"
    "    \"max_position_embeddings\": 32768,\n"
    "    \"max_window_layers\": 21,\n"
    "    \"model_type\": \"qwen2\",\n"
    "    \"num_attention_heads\": 16,\n"
    "    \"num_hidden_layers\": 24,\n"
    "    \"num_key_value_heads\": 16,\n"
    "    \"rope_theta\": 1000000.0,\n"
    "    \"sliding_window\": 32768,\n"
    "    \"tie_word_embeddings\": true,\n"
    "    \"torch_dtype\": \"bfloat16\",\n"
    "    \"use_sliding_window\": false,\n"
    "    \"vocab_size\": 152000\n"
    "  },\n"
    "  \"torch_dtype\": \"float16\",\n"
    "  \"transformers_version\": \"4.41.0.dev0\",\n"
    "  \"vision_config\": {\n"
    "    \"hidden_act\": \"gelu_pytorch_tanh\",\n"
    "    \"hidden_size\": 1152,\n"
    "    \"image_size\": 384,\n"
    "    \"intermediate_size\": 4304,\n"
    "    \"layer_norm_eps\": 1e-06,\n"
    "    \"model_type\": \"siglip_vision_model\",\n"
    "    \"num_attention_heads\": 16,\n"
    "    \"num_hidden_layers\": 26,\n"
    "    \"patch_size\": 14,\n"
    "    \"vision_use_head\": false\n"
    "  },\n"
    "  \"vision_feature_layer\": -1,\n"
    "  \"vision_feature_select_strategy\": \"full\"\n"
    "}\n";

static dlv_status parse(const char *json, dlv_llava_config *c)
{
    return dlv_llava_config_parse(json, strlen(json), "config.json", c);
}

/* Expects status st and a message containing every given fragment. */
static void expect_error(const char *json, dlv_status st, const char *frag1, const char *frag2)
{
    dlv_llava_config c;
    dlv_status got = parse(json, &c);
    if (got != st) fprintf(stderr, "for %s\n  got %d: %s\n", json, (int)got, dlv_last_error());
    assert_int_equal(got, st);
    if (frag1 && !strstr(dlv_last_error(), frag1)) fprintf(stderr, "message: %s\n", dlv_last_error());
    if (frag1) assert_non_null(strstr(dlv_last_error(), frag1));
    if (frag2 && !strstr(dlv_last_error(), frag2)) fprintf(stderr, "message: %s\n", dlv_last_error());
    if (frag2) assert_non_null(strstr(dlv_last_error(), frag2));
}

static void test_llava15_7b(void **state)
{
    (void)state;
    dlv_llava_config c;
    assert_int_equal(parse(llava15_7b, &c), DLV_OK);
    assert_string_equal(c.architecture, "LlavaForConditionalGeneration");
    assert_string_equal(c.torch_dtype, "float16");
    assert_int_equal(c.vision.kind, DLV_VISION_CLIP);
    assert_int_equal(c.vision.hidden_size, 1024);
    assert_int_equal(c.vision.intermediate_size, 4096);
    assert_int_equal(c.vision.num_hidden_layers, 24);
    assert_int_equal(c.vision.num_attention_heads, 16);
    assert_int_equal(c.vision.num_channels, 3);
    assert_int_equal(c.vision.image_size, 336);
    assert_int_equal(c.vision.patch_size, 14);
    assert_int_equal(c.vision.projection_dim, 768);
    assert_int_equal(c.vision.hidden_act, DLV_ACT_QUICK_GELU); /* CLIPVisionConfig default */
    assert_true(c.vision.layer_norm_eps == 1e-5);

    assert_int_equal(c.text.kind, DLV_TEXT_LLAMA);
    assert_int_equal(c.text.vocab_size, 32064);
    assert_int_equal(c.text.hidden_size, 4096);       /* LlamaConfig defaults from here */
    assert_int_equal(c.text.intermediate_size, 11008);
    assert_int_equal(c.text.num_hidden_layers, 32);
    assert_int_equal(c.text.num_attention_heads, 32);
    assert_int_equal(c.text.num_key_value_heads, 32);
    assert_int_equal(c.text.head_dim, 128);
    assert_int_equal(c.text.hidden_act, DLV_ACT_SILU);
    assert_int_equal(c.text.max_position_embeddings, 4096);
    assert_true(c.text.rms_norm_eps == 1e-5);
    assert_true(c.text.rope_theta == 10000.0);
    assert_int_equal(c.text.has_rope_scaling, 0);
    assert_int_equal(c.text.tie_word_embeddings, 0);
    assert_int_equal(c.text.attention_bias, 0);
    assert_int_equal(c.text.mlp_bias, 0);
    assert_int_equal(c.text.bos_token_id, 1);
    assert_int_equal(c.text.eos_token_id, 2);
    assert_int_equal(c.text.pad_token_id, -1);

    assert_int_equal(c.image_token_index, 32000);
    assert_int_equal(c.projector_hidden_act, DLV_ACT_GELU);
    assert_int_equal(c.multimodal_projector_bias, 1);
    assert_int_equal(c.vision_feature_layer, -2);
    assert_int_equal(c.vision_feature_select_full, 0);
    assert_int_equal(c.image_seq_length, 576);
}

static void test_interleave_qwen(void **state)
{
    (void)state;
    dlv_llava_config c;
    assert_int_equal(parse(interleave_qwen, &c), DLV_OK);
    assert_int_equal(c.vision.kind, DLV_VISION_SIGLIP);
    assert_int_equal(c.vision.hidden_size, 1152);
    assert_int_equal(c.vision.intermediate_size, 4304);
    assert_int_equal(c.vision.num_hidden_layers, 26);
    assert_int_equal(c.vision.image_size, 384);
    assert_int_equal(c.vision.patch_size, 14);
    assert_int_equal(c.vision.hidden_act, DLV_ACT_GELU_TANH);
    assert_true(c.vision.layer_norm_eps == 1e-6);
    assert_int_equal(c.vision.vision_use_head, 0);

    assert_int_equal(c.text.kind, DLV_TEXT_QWEN2);
    assert_int_equal(c.text.vocab_size, 152000);
    assert_int_equal(c.text.hidden_size, 1024);
    assert_int_equal(c.text.intermediate_size, 2816);
    assert_int_equal(c.text.num_hidden_layers, 24);
    assert_int_equal(c.text.num_attention_heads, 16);
    assert_int_equal(c.text.num_key_value_heads, 16);
    assert_int_equal(c.text.head_dim, 64);
    assert_true(c.text.rope_theta == 1e6);
    assert_true(c.text.rms_norm_eps == 1e-6); /* Qwen2Config default */
    assert_int_equal(c.text.tie_word_embeddings, 1);
    assert_int_equal(c.text.attention_bias, 1); /* Qwen2 always has q/k/v biases */
    assert_int_equal(c.text.bos_token_id, 151643);
    assert_int_equal(c.text.eos_token_id, 151645);

    assert_int_equal(c.image_token_index, 151646);
    assert_int_equal(c.vision_feature_layer, -1);
    assert_int_equal(c.vision_feature_select_full, 1);
}

/* LlavaConfig() with nothing given: CLIP ViT-L/14-336 and LlamaConfig(). */
/* LlavaNextConfig: llava-v1.6's pinpoints by default; the grid must be
 * whole tower tiles and the tower CLIP with the default selection. */
static void test_llava_next(void **state)
{
    (void)state;
    dlv_llava_config c;
    assert_int_equal(parse("{\"model_type\": \"llava_next\"}", &c), DLV_OK);
    assert_true(c.anyres);
    assert_int_equal(c.n_pinpoints, 5);
    assert_int_equal(c.pinpoints[0][0], 336);
    assert_int_equal(c.pinpoints[0][1], 672);
    assert_int_equal(c.pinpoints[4][0], 336);
    assert_int_equal(c.pinpoints[4][1], 1008);
    assert_int_equal(parse("{\"model_type\": \"llava_next\", \"image_grid_pinpoints\": "
                           "[[336, 336], [1344, 672]]}", &c), DLV_OK);
    assert_int_equal(c.n_pinpoints, 2);
    assert_int_equal(c.pinpoints[1][0], 1344);
    assert_int_equal(parse("{}", &c), DLV_OK);
    assert_false(c.anyres);
    expect_error("{\"model_type\": \"llava_next\", \"image_grid_pinpoints\": [[336, 500]]}",
                 DLV_E_FORMAT, "image_grid_pinpoints[0]", "multiple of vision_config.image_size");
    expect_error("{\"model_type\": \"llava_next\", \"image_grid_pinpoints\": [[336]]}",
                 DLV_E_FORMAT, "image_grid_pinpoints[0]", "[height, width]");
    expect_error("{\"model_type\": \"llava_next\", \"image_grid_pinpoints\": []}",
                 DLV_E_FORMAT, "image_grid_pinpoints", NULL);
    expect_error("{\"model_type\": \"llava_next\", \"image_grid_pinpoints\": "
                 "[[336, -336]]}", DLV_E_FORMAT, "image_grid_pinpoints[0]", NULL);
    expect_error("{\"model_type\": \"llava_next\", \"vision_feature_select_strategy\": "
                 "\"full\"}", DLV_E_UNSUPPORTED, "LLaVA-NeXT", "default");
    expect_error("{\"model_type\": \"llava_next\", \"vision_config\": {\"model_type\": "
                 "\"siglip_vision_model\", \"image_size\": 384, \"patch_size\": 16}, "
                 "\"image_grid_pinpoints\": [[384, 768]]}", DLV_E_UNSUPPORTED, "CLIP", NULL);
}

static void test_empty_defaults(void **state)
{
    (void)state;
    dlv_llava_config c;
    assert_int_equal(parse("{}", &c), DLV_OK);
    assert_string_equal(c.architecture, "");
    assert_int_equal(c.vision.kind, DLV_VISION_CLIP);
    assert_int_equal(c.vision.hidden_size, 1024);
    assert_int_equal(c.vision.intermediate_size, 4096);
    assert_int_equal(c.vision.num_hidden_layers, 24);
    assert_int_equal(c.vision.num_attention_heads, 16);
    assert_int_equal(c.vision.image_size, 336);
    assert_int_equal(c.vision.patch_size, 14);
    assert_int_equal(c.vision.projection_dim, 768);
    assert_int_equal(c.text.kind, DLV_TEXT_LLAMA);
    assert_int_equal(c.text.vocab_size, 32000);
    assert_int_equal(c.text.hidden_size, 4096);
    assert_int_equal(c.text.max_position_embeddings, 2048);
    assert_true(c.text.rms_norm_eps == 1e-6);
    assert_int_equal(c.text.num_key_value_heads, 32);
    assert_int_equal(c.image_token_index, 32000);
    assert_int_equal(c.vision_feature_layer, -2);
    assert_int_equal(c.multimodal_projector_bias, 1);

    /* null sub-configs mean the same as absent ones */
    assert_int_equal(parse("{\"vision_config\": null, \"text_config\": null}", &c), DLV_OK);
    assert_int_equal(c.vision.hidden_size, 1024);
    assert_int_equal(c.text.hidden_size, 4096);
}

/* A sub-config dict without model_type: clip_vision_model and llama, with
 * their class defaults (not LlavaConfig's CLIP-L ones). */
static void test_subconfig_without_model_type(void **state)
{
    (void)state;
    dlv_llava_config c;
    assert_int_equal(parse("{\"vision_config\": {\"hidden_size\": 64, \"num_attention_heads\": 4},"
                           " \"text_config\": {\"hidden_size\": 256, \"num_attention_heads\": 8}}",
                           &c), DLV_OK);
    assert_int_equal(c.vision.kind, DLV_VISION_CLIP);
    assert_int_equal(c.vision.hidden_size, 64);
    assert_int_equal(c.vision.patch_size, 32);
    assert_int_equal(c.vision.image_size, 224);
    assert_int_equal(c.vision.num_hidden_layers, 12);
    assert_int_equal(c.vision.hidden_act, DLV_ACT_QUICK_GELU);
    assert_int_equal(c.vision.projection_dim, 512);
    assert_int_equal(c.text.kind, DLV_TEXT_LLAMA);
    assert_int_equal(c.text.head_dim, 32);
    assert_int_equal(c.text.num_key_value_heads, 8);

    assert_int_equal(parse("{\"vision_config\": {\"model_type\": \"siglip_vision_model\"}}", &c),
                     DLV_OK);
    assert_int_equal(c.vision.kind, DLV_VISION_SIGLIP);
    assert_int_equal(c.vision.patch_size, 16);
    assert_int_equal(c.vision.image_size, 224);
    assert_int_equal(c.vision.hidden_act, DLV_ACT_GELU_TANH);
    assert_true(c.vision.layer_norm_eps == 1e-6);
    assert_int_equal(c.vision.vision_use_head, 1);
}

static void test_kv_heads_and_head_dim(void **state)
{
    (void)state;
    dlv_llava_config c;
    /* Mistral: absent -> 8, null -> num_attention_heads. */
    assert_int_equal(parse("{\"text_config\": {\"model_type\": \"mistral\"}}", &c), DLV_OK);
    assert_int_equal(c.text.kind, DLV_TEXT_MISTRAL);
    assert_int_equal(c.text.num_key_value_heads, 8);
    assert_int_equal(c.text.intermediate_size, 14336);
    assert_int_equal(c.text.max_position_embeddings, 131072);
    assert_int_equal(c.text.attention_bias, 0);
    assert_int_equal(parse("{\"text_config\": {\"model_type\": \"mistral\", "
                           "\"num_key_value_heads\": null}}", &c), DLV_OK);
    assert_int_equal(c.text.num_key_value_heads, 32);
    /* Qwen2: absent -> 32; attention_bias cannot switch the biases off. */
    assert_int_equal(parse("{\"text_config\": {\"model_type\": \"qwen2\", \"num_attention_heads\": 64,"
                           " \"attention_bias\": false}}", &c), DLV_OK);
    assert_int_equal(c.text.num_key_value_heads, 32);
    assert_int_equal(c.text.head_dim, 64);
    assert_int_equal(c.text.vocab_size, 151936);
    assert_int_equal(c.text.attention_bias, 1);
    assert_int_equal(c.text.eos_token_id, -1);
    /* Llama: absent -> heads; explicit head_dim lifts the divisibility rule. */
    assert_int_equal(parse("{\"text_config\": {\"hidden_size\": 100, \"num_attention_heads\": 4,"
                           " \"num_key_value_heads\": 2, \"head_dim\": 32, \"attention_bias\": true,"
                           " \"mlp_bias\": true, \"eos_token_id\": [7, 8], \"pad_token_id\": null}}",
                           &c), DLV_OK);
    assert_int_equal(c.text.head_dim, 32);
    assert_int_equal(c.text.num_key_value_heads, 2);
    assert_int_equal(c.text.attention_bias, 1);
    assert_int_equal(c.text.mlp_bias, 1);
    assert_int_equal(c.text.eos_token_id, 7);
    assert_int_equal(c.text.pad_token_id, -1);
}

static void test_rope_and_tie(void **state)
{
    (void)state;
    dlv_llava_config c;
    assert_int_equal(parse("{\"text_config\": {\"rope_scaling\": null}}", &c), DLV_OK);
    assert_int_equal(c.text.has_rope_scaling, 0);
    assert_int_equal(parse("{\"text_config\": {\"rope_scaling\": {\"type\": \"linear\", "
                           "\"factor\": 2.0}}}", &c), DLV_OK);
    assert_int_equal(c.text.has_rope_scaling, 1);
    assert_string_equal(c.text.rope_scaling_type, "linear");
    assert_int_equal(parse("{\"text_config\": {\"rope_scaling\": {\"rope_type\": \"llama3\", "
                           "\"factor\": 8.0}}}", &c), DLV_OK);
    assert_string_equal(c.text.rope_scaling_type, "llama3");
    /* transformers 5 spelling */
    assert_int_equal(parse("{\"text_config\": {\"rope_parameters\": {\"rope_type\": \"default\", "
                           "\"rope_theta\": 500000.0}}}", &c), DLV_OK);
    assert_int_equal(c.text.has_rope_scaling, 0);
    assert_true(c.text.rope_theta == 500000.0);
    /* LlavaConfig ties when either level says so */
    assert_int_equal(parse("{\"tie_word_embeddings\": true}", &c), DLV_OK);
    assert_int_equal(c.text.tie_word_embeddings, 1);
    assert_int_equal(parse("{\"tie_word_embeddings\": false, \"text_config\": "
                           "{\"tie_word_embeddings\": true}}", &c), DLV_OK);
    assert_int_equal(c.text.tie_word_embeddings, 1);
    assert_int_equal(parse("{\"multimodal_projector_bias\": false, \"vision_feature_layer\": 3,"
                           " \"image_seq_length\": 10, \"torch_dtype\": \"bfloat16\"}", &c), DLV_OK);
    assert_int_equal(c.multimodal_projector_bias, 0);
    assert_int_equal(c.vision_feature_layer, 3);
    assert_int_equal(c.image_seq_length, 10);
    assert_string_equal(c.torch_dtype, "bfloat16");
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_error("{\"text_config\": {\"hidden_size\": \"4096\"}}", DLV_E_FORMAT,
                 "config.json: text_config.hidden_size: expected an integer", NULL);
    expect_error("{\"text_config\": {\"model_type\": \"gemma\"}}", DLV_E_UNSUPPORTED,
                 "text_config.model_type", "gemma");
    expect_error("{\"vision_config\": {\"model_type\": \"pixtral\"}}", DLV_E_UNSUPPORTED,
                 "vision_config.model_type", "pixtral");
    expect_error("{\"model_type\": \"qwen2_audio\"}", DLV_E_UNSUPPORTED, "model_type", "qwen2_audio");
    expect_error("{\"vision_config\": {\"image_size\": 0}}", DLV_E_FORMAT,
                 "vision_config.image_size", NULL);
    expect_error("{\"text_config\": {\"vocab_size\": -5}}", DLV_E_FORMAT, "text_config.vocab_size",
                 NULL);
    expect_error("{\"vision_config\": {\"image_size\": 16}}", DLV_E_FORMAT,
                 "vision_config.patch_size", "16");
    expect_error("{\"vision_config\": {\"hidden_size\": 1000}}", DLV_E_FORMAT,
                 "vision_config.hidden_size", NULL);
    expect_error("{\"text_config\": {\"hidden_size\": 100, \"num_attention_heads\": 3}}",
                 DLV_E_FORMAT, "text_config.hidden_size", NULL);
    expect_error("{\"text_config\": {\"num_key_value_heads\": 5}}", DLV_E_FORMAT,
                 "text_config.num_key_value_heads", NULL);
    expect_error("{\"vision_feature_select_strategy\": \"cls\"}", DLV_E_FORMAT,
                 "vision_feature_select_strategy", "cls");
    expect_error("{\"vision_feature_layer\": [-2, -5]}", DLV_E_UNSUPPORTED, "vision_feature_layer",
                 NULL);
    expect_error("{\"vision_feature_layer\": -26}", DLV_E_FORMAT, "vision_feature_layer", "-26");
    expect_error("{\"vision_feature_layer\": 25}", DLV_E_FORMAT, "vision_feature_layer", NULL);
    expect_error("{\"vision_feature_layer\": 1.5}", DLV_E_FORMAT, "vision_feature_layer", NULL);
    expect_error("{\"vision_config\": {\"hidden_act\": \"mish\"}}", DLV_E_UNSUPPORTED,
                 "vision_config.hidden_act", "mish");
    expect_error("{\"projector_hidden_act\": 3}", DLV_E_FORMAT, "projector_hidden_act", NULL);
    expect_error("{\"text_config\": \"llama\"}", DLV_E_FORMAT, "text_config", NULL);
    expect_error("{\"vision_config\": []}", DLV_E_FORMAT, "vision_config", NULL);
    expect_error("{\"tie_word_embeddings\": \"yes\"}", DLV_E_FORMAT, "tie_word_embeddings", NULL);
    expect_error("{\"text_config\": {\"rope_scaling\": \"linear\"}}", DLV_E_FORMAT,
                 "text_config.rope_scaling", NULL);
    expect_error("{\"text_config\": {\"rope_theta\": 0}}", DLV_E_FORMAT, "text_config.rope_theta",
                 NULL);
    expect_error("{\"text_config\": {\"eos_token_id\": \"x\"}}", DLV_E_FORMAT,
                 "text_config.eos_token_id", NULL);
    expect_error("{\"architectures\": \"Llava\"}", DLV_E_FORMAT, "architectures", NULL);
    expect_error("{\"image_token_index\": -1}", DLV_E_FORMAT, "image_token_index", NULL);
    expect_error("[1, 2]", DLV_E_FORMAT, "config.json", NULL);
    expect_error("{\"a\": 1, \"a\": 2}", DLV_E_FORMAT, "config.json", NULL);
    expect_error("{\"text_config\": {", DLV_E_FORMAT, "config.json", NULL);
    expect_error("", DLV_E_FORMAT, "config.json", NULL);
    dlv_llava_config c;
    assert_int_equal(dlv_llava_config_parse(NULL, 0, "x", &c), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_llava_config_load("/nonexistent/dir/config.json", &c), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), "/nonexistent/dir/config.json"));
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(dlv_vision_kind_name(DLV_VISION_SIGLIP), "siglip_vision_model");
    assert_string_equal(dlv_text_kind_name(DLV_TEXT_QWEN2), "qwen2");
    assert_string_equal(dlv_act_name(DLV_ACT_GELU_TANH), "gelu_pytorch_tanh");
}

/* ---- the expected weight table ---- */

static int has(const dlv_weights *w, dlv_weight_part part, const char *name)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->items[i].part == part && strcmp(w->items[i].canonical, name) == 0) return 1;
    return 0;
}

/* The entry, which must exist (a failed check otherwise; never NULL, so
 * that callers may dereference it). */
static const dlv_weight *entry(const dlv_weights *w, dlv_weight_part part, const char *name)
{
    static const dlv_weight none;
    for (size_t i = 0; i < w->n; i++)
        if (w->items[i].part == part && strcmp(w->items[i].canonical, name) == 0)
            return &w->items[i];
    fprintf(stderr, "no table entry %s\n", name);
    fail();
    return &none;
}

static uint64_t table_params(const dlv_weights *w)
{
    uint64_t total = 0;
    for (size_t i = 0; i < w->n; i++) {
        uint64_t n = 1;
        for (int d = 0; d < w->items[i].ndim; d++) n *= (uint64_t)w->items[i].shape[d];
        total += n;
    }
    return total;
}

static void test_weight_table_llava15(void **state)
{
    (void)state;
    dlv_llava_config c;
    dlv_weights w;
    assert_int_equal(parse(llava15_7b, &c), DLV_OK);
    assert_int_equal(dlv_weights_table(&c, &w), DLV_OK);
    /* llava-1.5-7b-hf has 7,063,427,072 parameters. */
    assert_true(table_params(&w) == 7063427072ull);
    /* CLIP: 6 embedding/pre-norm tensors, 16 per layer, 2 post-norm; projector
     * 4; Llama 1 + 9 per layer + norm + lm_head. */
    assert_int_equal(w.n, 5 + 24 * 16 + 2 + 4 + 1 + 32 * 9 + 1 + 1);
    const dlv_weight *e = entry(&w, DLV_PART_VISION, "vision_model.embeddings.position_embedding.weight");
    assert_int_equal(e->shape[0], 577);
    assert_int_equal(e->shape[1], 1024);
    e = entry(&w, DLV_PART_VISION, "vision_model.embeddings.patch_embedding.weight");
    assert_int_equal(e->ndim, 4);
    assert_int_equal(e->shape[1], 3);
    assert_int_equal(e->shape[3], 14);
    assert_false(has(&w, DLV_PART_VISION, "vision_model.embeddings.patch_embedding.bias"));
    assert_true(has(&w, DLV_PART_VISION, "vision_model.pre_layrnorm.weight"));
    /* vision_feature_layer -2: layers 0..22 required, 23 and post_layernorm not */
    assert_int_equal(entry(&w, DLV_PART_VISION, "vision_model.encoder.layers.22.mlp.fc2.bias")->required, 1);
    assert_int_equal(entry(&w, DLV_PART_VISION, "vision_model.encoder.layers.23.mlp.fc2.bias")->required, 0);
    assert_int_equal(entry(&w, DLV_PART_VISION, "vision_model.post_layernorm.weight")->required, 0);
    e = entry(&w, DLV_PART_PROJECTOR, "linear_1.weight");
    assert_int_equal(e->shape[0], 4096);
    assert_int_equal(e->shape[1], 1024);
    e = entry(&w, DLV_PART_LM_HEAD, "lm_head.weight");
    assert_int_equal(e->required, 1);
    assert_int_equal(e->shape[0], 32064);
    assert_false(has(&w, DLV_PART_TEXT, "layers.0.self_attn.q_proj.bias"));

    char buf[160];
    assert_string_equal(dlv_weight_full_name(DLV_LAYOUT_CLASSIC, DLV_PART_TEXT, "norm.weight", buf,
                                             sizeof buf), "language_model.model.norm.weight");
    assert_string_equal(dlv_weight_full_name(DLV_LAYOUT_NEW, DLV_PART_TEXT, "norm.weight", buf,
                                             sizeof buf), "model.language_model.norm.weight");
    assert_string_equal(dlv_weight_full_name(DLV_LAYOUT_CLASSIC, DLV_PART_LM_HEAD, "lm_head.weight",
                                             buf, sizeof buf), "language_model.lm_head.weight");
    assert_string_equal(dlv_weight_full_name(DLV_LAYOUT_NEW, DLV_PART_LM_HEAD, "lm_head.weight", buf,
                                             sizeof buf), "lm_head.weight");
    assert_string_equal(dlv_weight_full_name(DLV_LAYOUT_NEW, DLV_PART_VISION, "x", buf, sizeof buf),
                        "model.vision_tower.x");
    assert_null(dlv_weight_full_name(DLV_LAYOUT_NEW, DLV_PART_VISION, "x", buf, 8));
    dlv_weights_free(&w);
}

static void test_weight_table_interleave(void **state)
{
    (void)state;
    dlv_llava_config c;
    dlv_weights w;
    assert_int_equal(parse(interleave_qwen, &c), DLV_OK);
    assert_int_equal(dlv_weights_table(&c, &w), DLV_OK);
    /* 384 px in patches of 14: 27 x 27 positions, no class token */
    const dlv_weight *e = entry(&w, DLV_PART_VISION, "vision_model.embeddings.position_embedding.weight");
    assert_int_equal(e->shape[0], 729);
    assert_int_equal(e->shape[1], 1152);
    assert_true(has(&w, DLV_PART_VISION, "vision_model.embeddings.patch_embedding.bias"));
    assert_false(has(&w, DLV_PART_VISION, "vision_model.embeddings.class_embedding"));
    assert_false(has(&w, DLV_PART_VISION, "vision_model.head.probe")); /* vision_use_head false */
    /* feature layer -1: every layer is required */
    assert_int_equal(entry(&w, DLV_PART_VISION, "vision_model.encoder.layers.25.mlp.fc2.bias")->required, 1);
    e = entry(&w, DLV_PART_TEXT, "layers.3.self_attn.k_proj.bias");
    assert_int_equal(e->shape[0], 1024);
    assert_false(has(&w, DLV_PART_TEXT, "layers.3.self_attn.o_proj.bias"));
    assert_int_equal(entry(&w, DLV_PART_LM_HEAD, "lm_head.weight")->required, 0); /* tied */
    dlv_weights_free(&w);

    /* SigLIP with its pooling head: optional entries */
    assert_int_equal(parse("{\"vision_config\": {\"model_type\": \"siglip_vision_model\"}}", &c),
                     DLV_OK);
    assert_int_equal(dlv_weights_table(&c, &w), DLV_OK);
    e = entry(&w, DLV_PART_VISION, "vision_model.head.attention.in_proj_weight");
    assert_int_equal(e->required, 0);
    assert_int_equal(e->shape[0], 3 * 768);
    dlv_weights_free(&w);
}

/* ---- preprocessor_config.json ---- */

static const char llava15_preproc[] =
    "{\n"
    "  \"crop_size\": {\"height\": 336, \"width\": 336},\n"
    "  \"do_center_crop\": true, \"do_convert_rgb\": true, \"do_normalize\": true,\n"
    "  \"do_rescale\": true, \"do_resize\": true,\n"
    "  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n"
    "  \"image_processor_type\": \"CLIPImageProcessor\",\n"
    "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n"
    "  \"processor_class\": \"LlavaProcessor\", \"resample\": 3,\n"
    "  \"rescale_factor\": 0.00392156862745098,\n"
    "  \"size\": {\"shortest_edge\": 336}\n"
    "}\n";

static const char interleave_preproc[] =
    "{\n"
    "  \"do_convert_rgb\": null, \"do_normalize\": true, \"do_rescale\": true,\n"
    "  \"do_resize\": true, \"image_mean\": [0.5, 0.5, 0.5],\n"
    "  \"image_processor_type\": \"SiglipImageProcessor\",\n"
    "  \"image_std\": [0.5, 0.5, 0.5], \"processor_class\": \"LlavaProcessor\",\n"
    "  \"resample\": 3, \"rescale_factor\": 0.00392156862745098,\n"
    "  \"size\": {\"height\": 384, \"width\": 384}\n"
    "}\n";

static dlv_status pparse(const char *json, dlv_preproc_config *p)
{
    return dlv_preproc_config_parse(json, strlen(json), "preprocessor_config.json", p);
}

static void test_preproc_clip(void **state)
{
    (void)state;
    dlv_preproc_config p;
    assert_int_equal(pparse(llava15_preproc, &p), DLV_OK);
    assert_string_equal(p.processor_class, "CLIPImageProcessor");
    assert_int_equal(p.do_resize, 1);
    assert_int_equal(p.shortest_edge, 336);
    assert_int_equal(p.size_height, -1);
    assert_int_equal(p.resample, DLV_RESAMPLE_BICUBIC);
    assert_int_equal(p.do_center_crop, 1);
    assert_int_equal(p.crop_height, 336);
    assert_int_equal(p.crop_width, 336);
    assert_true(fabs(p.rescale_factor - 1.0 / 255.0) < 1e-15);
    assert_true(p.image_mean[1] == 0.4578275);
    assert_true(p.image_std[2] == 0.27577711);
    assert_int_equal(p.do_convert_rgb, 1);

    /* Defaults of CLIPImageProcessor(); integers for size and crop_size. */
    assert_int_equal(pparse("{}", &p), DLV_OK);
    assert_int_equal(p.shortest_edge, 224);
    assert_int_equal(p.crop_height, 224);
    assert_int_equal(p.resample, DLV_RESAMPLE_BICUBIC);
    assert_true(p.image_mean[0] == 0.48145466);
    assert_int_equal(pparse("{\"size\": 256, \"crop_size\": 240, \"resample\": 2,"
                            " \"do_center_crop\": false, \"image_mean\": 0.25}", &p), DLV_OK);
    assert_int_equal(p.shortest_edge, 256);
    assert_int_equal(p.crop_height, 240);
    assert_int_equal(p.crop_width, 240);
    assert_int_equal(p.resample, DLV_RESAMPLE_BILINEAR);
    assert_int_equal(p.do_center_crop, 0);
    assert_true(p.image_mean[2] == 0.25);
    assert_int_equal(pparse("{\"size\": {\"height\": 300, \"width\": 200}}", &p), DLV_OK);
    assert_int_equal(p.shortest_edge, -1);
    assert_int_equal(p.size_height, 300);
    assert_int_equal(p.size_width, 200);
}

static void test_preproc_siglip(void **state)
{
    (void)state;
    dlv_preproc_config p;
    assert_int_equal(pparse(interleave_preproc, &p), DLV_OK);
    assert_string_equal(p.processor_class, "SiglipImageProcessor");
    assert_int_equal(p.shortest_edge, -1);
    assert_int_equal(p.size_height, 384);
    assert_int_equal(p.size_width, 384);
    assert_int_equal(p.do_center_crop, 0);
    assert_true(p.image_mean[0] == 0.5 && p.image_std[1] == 0.5);
    assert_int_equal(p.do_convert_rgb, 0);
    assert_int_equal(pparse("{\"image_processor_type\": \"SiglipImageProcessor\","
                            " \"do_center_crop\": true}", &p), DLV_OK);
    assert_int_equal(p.size_height, 224);
    assert_int_equal(p.size_width, 224);
    assert_int_equal(p.do_center_crop, 0); /* SigLIP has no crop */
    assert_int_equal(p.resample, DLV_RESAMPLE_BICUBIC);
    assert_true(p.image_std[0] == 0.5);
}

static void expect_perror(const char *json, dlv_status st, const char *frag)
{
    dlv_preproc_config p;
    dlv_status got = pparse(json, &p);
    if (got != st || !strstr(dlv_last_error(), frag))
        fprintf(stderr, "for %s\n  got %d: %s\n", json, (int)got, dlv_last_error());
    assert_int_equal(got, st);
    assert_non_null(strstr(dlv_last_error(), frag));
}

static void test_preproc_errors(void **state)
{
    (void)state;
    expect_perror("{\"image_processor_type\": \"Idefics2ImageProcessor\"}", DLV_E_UNSUPPORTED,
                  "Idefics2ImageProcessor");
    expect_perror("{\"resample\": 9}", DLV_E_FORMAT, "resample");
    expect_perror("{\"image_mean\": [0.5, 0.5]}", DLV_E_FORMAT, "image_mean");
    expect_perror("{\"image_std\": [0.5, 0, 0.5]}", DLV_E_FORMAT, "image_std");
    expect_perror("{\"size\": {\"longest_edge\": 3}}", DLV_E_FORMAT, "size");
    expect_perror("{\"size\": {\"shortest_edge\": 0}}", DLV_E_FORMAT, "size.shortest_edge");
    expect_perror("{\"crop_size\": {\"height\": 3, \"width\": \"3\"}}", DLV_E_FORMAT,
                  "crop_size.width");
    expect_perror("{\"do_resize\": 1}", DLV_E_FORMAT, "do_resize");
    expect_perror("{\"do_pad\": true}", DLV_E_UNSUPPORTED, "do_pad");
    expect_perror("[]", DLV_E_FORMAT, "preprocessor_config.json");
    dlv_preproc_config p;
    assert_int_equal(dlv_preproc_config_load("/nonexistent/preprocessor_config.json", &p), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), "/nonexistent/preprocessor_config.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llava15_7b),
        cmocka_unit_test(test_interleave_qwen),
        cmocka_unit_test(test_empty_defaults),
        cmocka_unit_test(test_llava_next),
        cmocka_unit_test(test_subconfig_without_model_type),
        cmocka_unit_test(test_kv_heads_and_head_dim),
        cmocka_unit_test(test_rope_and_tie),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_weight_table_llava15),
        cmocka_unit_test(test_weight_table_interleave),
        cmocka_unit_test(test_preproc_clip),
        cmocka_unit_test(test_preproc_siglip),
        cmocka_unit_test(test_preproc_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
