/* Writes a random checkpoint with llava-hf/llava-1.5-7b-hf's exact shapes
 * and config (CLIP ViT-L/14-336 + projector + Vicuna-7B, 7,063,427,072
 * parameters) in bf16, for the real-size smoke test (bench/smoke_7b.c).
 * Nothing is downloaded and nothing is committed: the ~14.1 GB are generated
 * here, tensor by tensor, through one small buffer (memory use stays a few
 * MB whatever the size).
 *
 * The directory gets what the published repository has, in its transformers
 * 4.36-era classic layout (vision_tower.vision_model.*,
 * multi_modal_projector.*, language_model.model.*,
 * language_model.lm_head.weight):
 *   config.json                    the published file, torch_dtype bfloat16
 *   preprocessor_config.json       the published CLIPImageProcessor config
 *   model-0000K-of-0000N.safetensors + model.safetensors.index.json
 *                                  (shards cut at 5 GB like save_pretrained's
 *                                  max_shard_size="5GB": 3 shards), or one
 *                                  model.safetensors with --single
 *   tokenizer.json, tokenizer_config.json  copied from the Llama-2 tokenizer
 *                                  in ../shared/assets (32000 tokens; the
 *                                  model's vocabulary is 32064)
 *
 * Values: weights and biases uniform in [-0.02, 0.02], norm weights
 * 1 + uniform [-0.02, 0.02], from a xorshift generator seeded by the tensor
 * name (deterministic), rounded to bf16 (nearest even).
 *
 * With --next it writes llava-hf/llava-v1.6-mistral-7b-hf's shapes instead
 * (LlavaNextForConditionalGeneration: the same tower and projector, the
 * Mistral-7B decoder with 8 KV heads and an intermediate size of 14336,
 * image_newline, the five grid pinpoints; 7,566,747,648 parameters) with a
 * LlavaNextImageProcessor config and, by default, the Mistral tokenizer.
 *
 * With --qwen2vl 2b|7b or --qwen25vl 3b|7b it writes the shapes of
 * Qwen/Qwen2-VL-2B-Instruct, Qwen2-VL-7B-Instruct, Qwen2.5-VL-3B-Instruct
 * or Qwen2.5-VL-7B-Instruct (Qwen2VLForConditionalGeneration /
 * Qwen2_5_VLForConditionalGeneration in the layout of transformers < 4.52:
 * visual.*, model.*, lm_head.weight unless the embeddings are tied) with
 * the published config.json and preprocessor_config.json
 * (Qwen2VLImageProcessor), shards cut at 4 GB as the published ones are,
 * and by default the Qwen2 tokenizer.
 *
 * Usage: gen_llava_7b OUT_DIR [--single] [--next | --qwen2vl 2b|7b |
 *                     --qwen25vl 3b|7b] [--tokenizer-dir DIR]
 *   (default tokenizer dir: ../shared/assets/tokenizers/llama2, .../mistral
 *   with --next, .../qwen2 with --qwen2vl / --qwen25vl, relative to the
 *   current directory, i.e. the repository root) */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* llava-1.5-7b shapes (config.json below gives the same through defaults). */
enum {
    V_HIDDEN = 1024, V_INTER = 4096, V_LAYERS = 24, V_PATCH = 14, V_IMAGE = 336,
    T_HIDDEN = 4096, T_LAYERS = 32, T_HEADS = 32, T_VOCAB = 32064
};

/* What differs between the two decoders (Vicuna-7B, Mistral-7B). */
typedef struct text_shape {
    uint64_t inter, kv;
    int next; /* LLaVA-NeXT: image_newline too */
} text_shape;

#define SHARD_LIMIT 5000000000ull /* save_pretrained's "5GB" (decimal) */
#define QWEN_SHARD_LIMIT 4000000000ull /* the Qwen repositories' "4GB" shards */

/* A published Qwen2-VL / Qwen2.5-VL checkpoint's shapes (config.json). The
 * towers: Qwen2-VL's is 32 blocks of LayerNorm + quick_gelu MLP (embed_dim
 * 1280, mlp_ratio 4), Qwen2.5-VL's 32 blocks of RMSNorm + SiLU-gated MLP
 * (hidden_size 1280, intermediate_size 3420, windowed attention but for
 * blocks 7, 15, 23, 31); both patch 14, temporal patch 2, merge 2, 16
 * heads, and a merger to the decoder's width. */
typedef struct qwen_shape {
    const char *name;                       /* Qwen/<name> on the Hub */
    int q25;                                /* Qwen2.5-VL */
    uint64_t hidden, inter, layers, heads, kv, vocab;
    int tied;                               /* tie_word_embeddings */
    uint64_t max_pos, max_window_layers;
} qwen_shape;

static const qwen_shape qwen_shapes[] = {
    {"Qwen2-VL-2B-Instruct", 0, 1536, 8960, 28, 12, 2, 151936, 1, 32768, 28},
    {"Qwen2-VL-7B-Instruct", 0, 3584, 18944, 28, 28, 4, 152064, 0, 32768, 28},
    {"Qwen2.5-VL-3B-Instruct", 1, 2048, 11008, 36, 16, 2, 151936, 1, 128000, 70},
    {"Qwen2.5-VL-7B-Instruct", 1, 3584, 18944, 28, 28, 4, 152064, 0, 128000, 28},
};

enum { Q_DEPTH = 32, Q_EMBED = 1280, Q_PATCH = 14, Q_TEMPORAL = 2, Q_MERGE = 2,
       Q2_MLP = 4 * Q_EMBED, Q25_MLP = 3420 };

static const char config_json[] =
    "{\n"
    "  \"architectures\": [\n"
    "    \"LlavaForConditionalGeneration\"\n"
    "  ],\n"
    "  \"ignore_index\": -100,\n"
    "  \"image_token_index\": 32000,\n"
    "  \"model_type\": \"llava\",\n"
    "  \"pad_token_id\": 32001,\n"
    "  \"projector_hidden_act\": \"gelu\",\n"
    "  \"text_config\": {\n"
    "    \"_name_or_path\": \"lmsys/vicuna-7b-v1.5\",\n"
    "    \"architectures\": [\n"
    "      \"LlamaForCausalLM\"\n"
    "    ],\n"
    "    \"max_position_embeddings\": 4096,\n"
    "    \"model_type\": \"llama\",\n"
    "    \"rms_norm_eps\": 1e-05,\n"
    "    \"torch_dtype\": \"bfloat16\",\n"
    "    \"vocab_size\": 32064\n"
    "  },\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
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

/* llava-v1.6-mistral-7b-hf's config.json (its fields; torch_dtype bfloat16). */
static const char next_config_json[] =
    "{\n"
    "  \"architectures\": [\n"
    "    \"LlavaNextForConditionalGeneration\"\n"
    "  ],\n"
    "  \"ignore_index\": -100,\n"
    "  \"image_grid_pinpoints\": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],\n"
    "  \"image_token_index\": 32000,\n"
    "  \"model_type\": \"llava_next\",\n"
    "  \"projector_hidden_act\": \"gelu\",\n"
    "  \"text_config\": {\n"
    "    \"_name_or_path\": \"mistralai/Mistral-7B-Instruct-v0.2\",\n"
    "    \"architectures\": [\n"
    "      \"MistralForCausalLM\"\n"
    "    ],\n"
    "    \"intermediate_size\": 14336,\n"
    "    \"max_position_embeddings\": 32768,\n"
    "    \"model_type\": \"mistral\",\n"
    "    \"num_key_value_heads\": 8,\n"
    "    \"rms_norm_eps\": 1e-05,\n"
    "    \"rope_theta\": 1000000.0,\n"
    "    \"sliding_window\": null,\n"
    "    \"torch_dtype\": \"bfloat16\",\n"
    "    \"vocab_size\": 32064\n"
    "  },\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"transformers_version\": \"4.39.0.dev0\",\n"
    "  \"use_image_newline_parameter\": true,\n"
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

static const char next_preproc_json[] =
    "{\n"
    "  \"crop_size\": {\"height\": 336, \"width\": 336},\n"
    "  \"do_center_crop\": true,\n"
    "  \"do_convert_rgb\": true,\n"
    "  \"do_normalize\": true,\n"
    "  \"do_pad\": true,\n"
    "  \"do_rescale\": true,\n"
    "  \"do_resize\": true,\n"
    "  \"image_grid_pinpoints\": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],\n"
    "  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n"
    "  \"image_processor_type\": \"LlavaNextImageProcessor\",\n"
    "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n"
    "  \"processor_class\": \"LlavaNextProcessor\",\n"
    "  \"resample\": 3,\n"
    "  \"rescale_factor\": 0.00392156862745098,\n"
    "  \"size\": {\"shortest_edge\": 336}\n"
    "}\n";

static const char preproc_json[] =
    "{\n"
    "  \"crop_size\": {\n"
    "    \"height\": 336,\n"
    "    \"width\": 336\n"
    "  },\n"
    "  \"do_center_crop\": true,\n"
    "  \"do_convert_rgb\": true,\n"
    "  \"do_normalize\": true,\n"
    "  \"do_rescale\": true,\n"
    "  \"do_resize\": true,\n"
    "  \"image_mean\": [\n"
    "    0.48145466,\n"
    "    0.4578275,\n"
    "    0.40821073\n"
    "  ],\n"
    "  \"image_processor_type\": \"CLIPImageProcessor\",\n"
    "  \"image_std\": [\n"
    "    0.26862954,\n"
    "    0.26130258,\n"
    "    0.27577711\n"
    "  ],\n"
    "  \"processor_class\": \"LlavaProcessor\",\n"
    "  \"resample\": 3,\n"
    "  \"rescale_factor\": 0.00392156862745098,\n"
    "  \"size\": {\n"
    "    \"shortest_edge\": 336\n"
    "  }\n"
    "}\n";

typedef struct tensor {
    char name[96];
    int ndim;
    uint64_t shape[5];
    uint64_t n_bytes;
    int shard;
} tensor;

static tensor g_tensors[2048];
static int g_n;

static void add(const char *name, int ndim, uint64_t d0, uint64_t d1, uint64_t d2, uint64_t d3)
{
    tensor *t = &g_tensors[g_n++];
    uint64_t n = 1;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    t->shape[3] = d3;
    t->shape[4] = 0;
    for (int i = 0; i < ndim; i++) n *= t->shape[i];
    t->n_bytes = 2 * n;
}

/* Qwen2-VL's Conv3d patch embedding is the one 5-D tensor. */
static void add5(const char *name, uint64_t d0, uint64_t d1, uint64_t d2, uint64_t d3, uint64_t d4)
{
    add(name, 4, d0, d1, d2, d3);
    tensor *t = &g_tensors[g_n - 1];
    t->ndim = 5;
    t->shape[4] = d4;
    t->n_bytes *= d4;
}

/* The tensors in the order transformers' state_dict lists them (vision
 * tower, projector, language model), as tests/gen_tiny_checkpoint.py's
 * tensor_specs() for clip + llama, without CLIP's position_ids buffer
 * (not persistent since transformers 4.31, so not in the published files). */
static void build_specs(const text_shape *ts)
{
    char b[96];
    const char *v = "vision_tower.vision_model.";
    const uint64_t np1 = (V_IMAGE / V_PATCH) * (V_IMAGE / V_PATCH) + 1;
    snprintf(b, sizeof b, "%sembeddings.class_embedding", v);
    add(b, 1, V_HIDDEN, 0, 0, 0);
    snprintf(b, sizeof b, "%sembeddings.patch_embedding.weight", v);
    add(b, 4, V_HIDDEN, 3, V_PATCH, V_PATCH);
    snprintf(b, sizeof b, "%sembeddings.position_embedding.weight", v);
    add(b, 2, np1, V_HIDDEN, 0, 0);
    snprintf(b, sizeof b, "%spre_layrnorm.weight", v);
    add(b, 1, V_HIDDEN, 0, 0, 0);
    snprintf(b, sizeof b, "%spre_layrnorm.bias", v);
    add(b, 1, V_HIDDEN, 0, 0, 0);
    for (int i = 0; i < V_LAYERS; i++) {
        static const char *proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int p = 0; p < 4; p++) {
            snprintf(b, sizeof b, "%sencoder.layers.%d.self_attn.%s.weight", v, i, proj[p]);
            add(b, 2, V_HIDDEN, V_HIDDEN, 0, 0);
            snprintf(b, sizeof b, "%sencoder.layers.%d.self_attn.%s.bias", v, i, proj[p]);
            add(b, 1, V_HIDDEN, 0, 0, 0);
        }
        snprintf(b, sizeof b, "%sencoder.layers.%d.layer_norm1.weight", v, i);
        add(b, 1, V_HIDDEN, 0, 0, 0);
        snprintf(b, sizeof b, "%sencoder.layers.%d.layer_norm1.bias", v, i);
        add(b, 1, V_HIDDEN, 0, 0, 0);
        snprintf(b, sizeof b, "%sencoder.layers.%d.mlp.fc1.weight", v, i);
        add(b, 2, V_INTER, V_HIDDEN, 0, 0);
        snprintf(b, sizeof b, "%sencoder.layers.%d.mlp.fc1.bias", v, i);
        add(b, 1, V_INTER, 0, 0, 0);
        snprintf(b, sizeof b, "%sencoder.layers.%d.mlp.fc2.weight", v, i);
        add(b, 2, V_HIDDEN, V_INTER, 0, 0);
        snprintf(b, sizeof b, "%sencoder.layers.%d.mlp.fc2.bias", v, i);
        add(b, 1, V_HIDDEN, 0, 0, 0);
        snprintf(b, sizeof b, "%sencoder.layers.%d.layer_norm2.weight", v, i);
        add(b, 1, V_HIDDEN, 0, 0, 0);
        snprintf(b, sizeof b, "%sencoder.layers.%d.layer_norm2.bias", v, i);
        add(b, 1, V_HIDDEN, 0, 0, 0);
    }
    snprintf(b, sizeof b, "%spost_layernorm.weight", v);
    add(b, 1, V_HIDDEN, 0, 0, 0);
    snprintf(b, sizeof b, "%spost_layernorm.bias", v);
    add(b, 1, V_HIDDEN, 0, 0, 0);

    add("multi_modal_projector.linear_1.weight", 2, T_HIDDEN, V_HIDDEN, 0, 0);
    add("multi_modal_projector.linear_1.bias", 1, T_HIDDEN, 0, 0, 0);
    add("multi_modal_projector.linear_2.weight", 2, T_HIDDEN, T_HIDDEN, 0, 0);
    add("multi_modal_projector.linear_2.bias", 1, T_HIDDEN, 0, 0, 0);
    if (ts->next) add("image_newline", 1, T_HIDDEN, 0, 0, 0);

    const char *l = "language_model.model.";
    const uint64_t hd = T_HIDDEN / T_HEADS, q = T_HEADS * hd, kv = ts->kv * hd;
    snprintf(b, sizeof b, "%sembed_tokens.weight", l);
    add(b, 2, T_VOCAB, T_HIDDEN, 0, 0);
    for (int i = 0; i < T_LAYERS; i++) {
        snprintf(b, sizeof b, "%slayers.%d.self_attn.q_proj.weight", l, i);
        add(b, 2, q, T_HIDDEN, 0, 0);
        snprintf(b, sizeof b, "%slayers.%d.self_attn.k_proj.weight", l, i);
        add(b, 2, kv, T_HIDDEN, 0, 0);
        snprintf(b, sizeof b, "%slayers.%d.self_attn.v_proj.weight", l, i);
        add(b, 2, kv, T_HIDDEN, 0, 0);
        snprintf(b, sizeof b, "%slayers.%d.self_attn.o_proj.weight", l, i);
        add(b, 2, T_HIDDEN, q, 0, 0);
        snprintf(b, sizeof b, "%slayers.%d.mlp.gate_proj.weight", l, i);
        add(b, 2, ts->inter, T_HIDDEN, 0, 0);
        snprintf(b, sizeof b, "%slayers.%d.mlp.up_proj.weight", l, i);
        add(b, 2, ts->inter, T_HIDDEN, 0, 0);
        snprintf(b, sizeof b, "%slayers.%d.mlp.down_proj.weight", l, i);
        add(b, 2, T_HIDDEN, ts->inter, 0, 0);
        snprintf(b, sizeof b, "%slayers.%d.input_layernorm.weight", l, i);
        add(b, 1, T_HIDDEN, 0, 0, 0);
        snprintf(b, sizeof b, "%slayers.%d.post_attention_layernorm.weight", l, i);
        add(b, 1, T_HIDDEN, 0, 0, 0);
    }
    snprintf(b, sizeof b, "%snorm.weight", l);
    add(b, 1, T_HIDDEN, 0, 0, 0);
    add("language_model.lm_head.weight", 2, T_VOCAB, T_HIDDEN, 0, 0);
}

static int is_norm_weight(const char *name)
{
    size_t n = strlen(name);
    if (n < 7 || strcmp(name + n - 7, ".weight") != 0) return 0;
    return strstr(name, "norm") != NULL || strstr(name, "layrnorm") != NULL ||
           strstr(name, ".ln_q.") != NULL; /* Qwen2-VL's merger norm */
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

/* n bf16 values: base + uniform [-0.02, 0.02), nearest-even rounded. */
static void fill(uint16_t *out, size_t n, uint64_t *state, float base)
{
    uint64_t x = *state;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        float u = (float)(uint32_t)(x >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
        float f = base + 0.04f * u - 0.02f;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        out[i] = (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
    *state = x;
}

static int write_all(int fd, const void *buf, size_t n, const char *path)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "gen_llava_7b: writing %s: %s\n", path, strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A growable string for the JSON headers. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *s, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) abort();
        if (s->p && s->len + (size_t)k < s->cap) {
            s->len += (size_t)k;
            return;
        }
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + (size_t)k + 1) cap *= 2;
        char *np = realloc(s->p, cap);
        if (!np) abort();
        s->p = np;
        s->cap = cap;
    }
}

/* A weight and, if bias, its bias ("<name>.weight", "<name>.bias"). */
static void add_linear(const char *name, uint64_t out, uint64_t in, int bias)
{
    char b[96];
    snprintf(b, sizeof b, "%s.weight", name);
    add(b, 2, out, in, 0, 0);
    if (bias) {
        snprintf(b, sizeof b, "%s.bias", name);
        add(b, 1, out, 0, 0, 0);
    }
}

/* A norm's weight and, for a LayerNorm, its bias. */
static void add_norm(const char *name, uint64_t dim, int bias)
{
    char b[96];
    snprintf(b, sizeof b, "%s.weight", name);
    add(b, 1, dim, 0, 0, 0);
    if (bias) {
        snprintf(b, sizeof b, "%s.bias", name);
        add(b, 1, dim, 0, 0, 0);
    }
}

/* Qwen2VLForConditionalGeneration's / Qwen2_5_VLForConditionalGeneration's
 * state_dict in its order (transformers < 4.52): visual (patch_embed,
 * blocks, merger), model (embed_tokens, layers, norm), lm_head unless tied.
 * The rotary embeddings' inv_freq buffers are not persistent. */
static void build_qwen_specs(const qwen_shape *q)
{
    char b[64];
    const int ln_bias = !q->q25; /* Qwen2.5-VL's tower norms are RMSNorms */
    add5("visual.patch_embed.proj.weight", Q_EMBED, 3, Q_TEMPORAL, Q_PATCH, Q_PATCH);
    for (int i = 0; i < Q_DEPTH; i++) {
        snprintf(b, sizeof b, "visual.blocks.%d.norm1", i);
        add_norm(b, Q_EMBED, ln_bias);
        snprintf(b, sizeof b, "visual.blocks.%d.norm2", i);
        add_norm(b, Q_EMBED, ln_bias);
        snprintf(b, sizeof b, "visual.blocks.%d.attn.qkv", i);
        add_linear(b, 3 * Q_EMBED, Q_EMBED, 1);
        snprintf(b, sizeof b, "visual.blocks.%d.attn.proj", i);
        add_linear(b, Q_EMBED, Q_EMBED, 1);
        if (q->q25) {
            snprintf(b, sizeof b, "visual.blocks.%d.mlp.gate_proj", i);
            add_linear(b, Q25_MLP, Q_EMBED, 1);
            snprintf(b, sizeof b, "visual.blocks.%d.mlp.up_proj", i);
            add_linear(b, Q25_MLP, Q_EMBED, 1);
            snprintf(b, sizeof b, "visual.blocks.%d.mlp.down_proj", i);
            add_linear(b, Q_EMBED, Q25_MLP, 1);
        } else {
            snprintf(b, sizeof b, "visual.blocks.%d.mlp.fc1", i);
            add_linear(b, Q2_MLP, Q_EMBED, 1);
            snprintf(b, sizeof b, "visual.blocks.%d.mlp.fc2", i);
            add_linear(b, Q_EMBED, Q2_MLP, 1);
        }
    }
    const uint64_t merged = (uint64_t)Q_EMBED * Q_MERGE * Q_MERGE;
    add_norm("visual.merger.ln_q", Q_EMBED, ln_bias);
    add_linear("visual.merger.mlp.0", merged, merged, 1);
    add_linear("visual.merger.mlp.2", q->hidden, merged, 1);

    const uint64_t hd = q->hidden / q->heads, kv = q->kv * hd;
    add("model.embed_tokens.weight", 2, q->vocab, q->hidden, 0, 0);
    for (uint64_t i = 0; i < q->layers; i++) {
        const unsigned long long n = (unsigned long long)i;
        snprintf(b, sizeof b, "model.layers.%llu.self_attn.q_proj", n);
        add_linear(b, q->heads * hd, q->hidden, 1);
        snprintf(b, sizeof b, "model.layers.%llu.self_attn.k_proj", n);
        add_linear(b, kv, q->hidden, 1);
        snprintf(b, sizeof b, "model.layers.%llu.self_attn.v_proj", n);
        add_linear(b, kv, q->hidden, 1);
        snprintf(b, sizeof b, "model.layers.%llu.self_attn.o_proj", n);
        add_linear(b, q->hidden, q->heads * hd, 0);
        snprintf(b, sizeof b, "model.layers.%llu.mlp.gate_proj", n);
        add_linear(b, q->inter, q->hidden, 0);
        snprintf(b, sizeof b, "model.layers.%llu.mlp.up_proj", n);
        add_linear(b, q->inter, q->hidden, 0);
        snprintf(b, sizeof b, "model.layers.%llu.mlp.down_proj", n);
        add_linear(b, q->hidden, q->inter, 0);
        snprintf(b, sizeof b, "model.layers.%llu.input_layernorm", n);
        add_norm(b, q->hidden, 0);
        snprintf(b, sizeof b, "model.layers.%llu.post_attention_layernorm", n);
        add_norm(b, q->hidden, 0);
    }
    add_norm("model.norm", q->hidden, 0);
    if (!q->tied) add("lm_head.weight", 2, q->vocab, q->hidden, 0, 0);
}

/* The published config.json (as the Qwen repositories have it: written by
 * transformers 4.41.2-era code, the token ids at the top, rope_scaling
 * type "mrope" with sections [16, 24, 24]). */
static void qwen_config(sbuf *s, const qwen_shape *q)
{
    sb_printf(s,
              "{\n"
              "  \"architectures\": [\n"
              "    \"%s\"\n"
              "  ],\n"
              "  \"attention_dropout\": 0.0,\n"
              "  \"bos_token_id\": 151643,\n"
              "  \"eos_token_id\": 151645,\n"
              "  \"vision_start_token_id\": 151652,\n"
              "  \"vision_end_token_id\": 151653,\n"
              "  \"vision_token_id\": 151654,\n"
              "  \"image_token_id\": 151655,\n"
              "  \"video_token_id\": 151656,\n"
              "  \"hidden_act\": \"silu\",\n"
              "  \"hidden_size\": %llu,\n"
              "  \"initializer_range\": 0.02,\n"
              "  \"intermediate_size\": %llu,\n"
              "  \"max_position_embeddings\": %llu,\n"
              "  \"max_window_layers\": %llu,\n"
              "  \"model_type\": \"%s\",\n"
              "  \"num_attention_heads\": %llu,\n"
              "  \"num_hidden_layers\": %llu,\n"
              "  \"num_key_value_heads\": %llu,\n"
              "  \"rms_norm_eps\": 1e-06,\n"
              "  \"rope_theta\": 1000000.0,\n"
              "  \"sliding_window\": 32768,\n"
              "  \"tie_word_embeddings\": %s,\n"
              "  \"torch_dtype\": \"bfloat16\",\n"
              "  \"transformers_version\": \"4.41.2\",\n"
              "  \"use_cache\": true,\n"
              "  \"use_sliding_window\": false,\n"
              "  \"vision_config\": {\n",
              q->q25 ? "Qwen2_5_VLForConditionalGeneration" : "Qwen2VLForConditionalGeneration",
              (unsigned long long)q->hidden, (unsigned long long)q->inter,
              (unsigned long long)q->max_pos, (unsigned long long)q->max_window_layers,
              q->q25 ? "qwen2_5_vl" : "qwen2_vl", (unsigned long long)q->heads,
              (unsigned long long)q->layers, (unsigned long long)q->kv,
              q->tied ? "true" : "false");
    if (q->q25)
        sb_printf(s,
                  "    \"depth\": 32,\n"
                  "    \"hidden_act\": \"silu\",\n"
                  "    \"hidden_size\": 1280,\n"
                  "    \"intermediate_size\": 3420,\n"
                  "    \"num_heads\": 16,\n"
                  "    \"in_chans\": 3,\n"
                  "    \"out_hidden_size\": %llu,\n"
                  "    \"patch_size\": 14,\n"
                  "    \"spatial_merge_size\": 2,\n"
                  "    \"spatial_patch_size\": 14,\n"
                  "    \"window_size\": 112,\n"
                  "    \"fullatt_block_indexes\": [\n"
                  "      7,\n"
                  "      15,\n"
                  "      23,\n"
                  "      31\n"
                  "    ],\n"
                  "    \"tokens_per_second\": 2,\n"
                  "    \"temporal_patch_size\": 2\n",
                  (unsigned long long)q->hidden);
    else
        sb_printf(s,
                  "    \"depth\": 32,\n"
                  "    \"embed_dim\": 1280,\n"
                  "    \"mlp_ratio\": 4,\n"
                  "    \"num_heads\": 16,\n"
                  "    \"in_chans\": 3,\n"
                  "    \"hidden_size\": %llu,\n"
                  "    \"patch_size\": 14,\n"
                  "    \"spatial_merge_size\": 2,\n"
                  "    \"spatial_patch_size\": 14,\n"
                  "    \"temporal_patch_size\": 2\n",
                  (unsigned long long)q->hidden);
    sb_printf(s,
              "  },\n"
              "  \"rope_scaling\": {\n"
              "    \"type\": \"mrope\",\n"
              "    \"mrope_section\": [\n"
              "      16,\n"
              "      24,\n"
              "      24\n"
              "    ]\n"
              "  },\n"
              "  \"vocab_size\": %llu\n"
              "}\n",
              (unsigned long long)q->vocab);
}

/* The published preprocessor_config.json (Qwen2VLImageProcessor; resample
 * and the rescale / normalize switches are left at the class defaults:
 * bicubic, 1/255, on). */
static void qwen_preproc(sbuf *s, const qwen_shape *q)
{
    sb_printf(s,
              "{\n"
              "  \"min_pixels\": 3136,\n"
              "  \"max_pixels\": 12845056,\n"
              "  \"patch_size\": 14,\n"
              "  \"temporal_patch_size\": 2,\n"
              "  \"merge_size\": 2,\n"
              "  \"image_mean\": [\n"
              "    0.48145466,\n"
              "    0.4578275,\n"
              "    0.40821073\n"
              "  ],\n"
              "  \"image_std\": [\n"
              "    0.26862954,\n"
              "    0.26130258,\n"
              "    0.27577711\n"
              "  ],\n"
              "  \"image_processor_type\": \"Qwen2VLImageProcessor\",\n"
              "  \"processor_class\": \"%s\"\n"
              "}\n",
              q->q25 ? "Qwen2_5_VLProcessor" : "Qwen2VLProcessor");
}

enum { CHUNK = 1 << 23 }; /* bf16 values per write: 16 MiB */

static int write_shard(const char *path, int shard)
{
    sbuf h = {0};
    uint64_t off = 0;
    sb_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < g_n; i++) {
        const tensor *t = &g_tensors[i];
        if (t->shard != shard) continue;
        sb_printf(&h, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[", t->name);
        for (int d = 0; d < t->ndim; d++)
            sb_printf(&h, "%s%llu", d ? "," : "", (unsigned long long)t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + t->n_bytes));
        off += t->n_bytes;
    }
    sb_printf(&h, "}");
    while (h.len % 8) sb_printf(&h, " ");

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "gen_llava_7b: cannot create %s: %s\n", path, strerror(errno));
        free(h.p);
        return -1;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    int rc = write_all(fd, len8, 8, path);
    if (!rc) rc = write_all(fd, h.p, h.len, path);
    free(h.p);
    uint16_t *buf = rc ? NULL : malloc((size_t)CHUNK * 2);
    if (!rc && !buf) rc = -1;
    for (int i = 0; i < g_n && !rc; i++) {
        const tensor *t = &g_tensors[i];
        if (t->shard != shard) continue;
        uint64_t state = fnv1a(t->name);
        float base = is_norm_weight(t->name) ? 1.0f : 0.0f;
        for (uint64_t left = t->n_bytes / 2; left > 0 && !rc;) {
            size_t n = left < CHUNK ? (size_t)left : CHUNK;
            fill(buf, n, &state, base);
            rc = write_all(fd, buf, n * 2, path);
            left -= n;
        }
    }
    free(buf);
    if (close(fd) != 0 && !rc) {
        fprintf(stderr, "gen_llava_7b: closing %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "gen_llava_7b: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in) {
        fprintf(stderr, "gen_llava_7b: cannot open %s: %s\n", from, strerror(errno));
        return -1;
    }
    FILE *out = fopen(to, "wb");
    if (!out) {
        fprintf(stderr, "gen_llava_7b: cannot create %s: %s\n", to, strerror(errno));
        fclose(in);
        return -1;
    }
    char b[65536];
    size_t k;
    int rc = 0;
    while ((k = fread(b, 1, sizeof b, in)) > 0)
        if (fwrite(b, 1, k, out) != k) rc = -1;
    if (ferror(in)) rc = -1;
    fclose(in);
    if (fclose(out) != 0) rc = -1;
    if (rc) fprintf(stderr, "gen_llava_7b: copying %s to %s failed\n", from, to);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define USAGE                                                                             \
    "usage: gen_llava_7b OUT_DIR [--single] [--next | --qwen2vl 2b|7b | --qwen25vl 3b|7b] " \
    "[--tokenizer-dir DIR]\n"

int main(int argc, char **argv)
{
    const char *dir = NULL, *tok = NULL;
    int single = 0;
    text_shape ts = {11008, 32, 0};
    const qwen_shape *qs = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--single")) single = 1;
        else if (!strcmp(argv[i], "--next")) ts = (text_shape){14336, 8, 1};
        else if (!strcmp(argv[i], "--qwen2vl") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "2b") || !strcmp(argv[i + 1], "7b")))
            qs = &qwen_shapes[!strcmp(argv[++i], "7b")];
        else if (!strcmp(argv[i], "--qwen25vl") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "3b") || !strcmp(argv[i + 1], "7b")))
            qs = &qwen_shapes[2 + !strcmp(argv[++i], "7b")];
        else if (!strcmp(argv[i], "--tokenizer-dir") && i + 1 < argc) tok = argv[++i];
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, USAGE);
            return 2;
        }
    }
    if (!dir || (qs && ts.next)) {
        fprintf(stderr, USAGE);
        return 2;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_llava_7b: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (!tok) tok = qs        ? "../shared/assets/tokenizers/qwen2"
                    : ts.next ? "../shared/assets/tokenizers/mistral"
                              : "../shared/assets/tokenizers/llama2";
    if (qs) build_qwen_specs(qs);
    else build_specs(&ts);
    const uint64_t shard_limit = qs ? QWEN_SHARD_LIMIT : SHARD_LIMIT;
    if (qs) printf("gen_llava_7b: %s's shapes\n", qs->name);

    /* Shards as save_pretrained cuts them: a new shard when the next tensor
     * would take the current one past the limit. */
    uint64_t total = 0, in_shard = 0, params = 0;
    int n_shards = 1;
    for (int i = 0; i < g_n; i++) {
        tensor *t = &g_tensors[i];
        if (!single && in_shard > 0 && in_shard + t->n_bytes > shard_limit) {
            n_shards++;
            in_shard = 0;
        }
        t->shard = n_shards - 1;
        in_shard += t->n_bytes;
        total += t->n_bytes;
        params += t->n_bytes / 2;
    }
    printf("gen_llava_7b: %d tensors, %llu parameters, %llu bytes in %d file(s)\n", g_n,
           (unsigned long long)params, (unsigned long long)total, n_shards);
    fflush(stdout);

    char path[4096], from[4096];
    double t0 = now_s();
    /* Clear weight files an earlier run may have left (single vs sharded). */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    unlink(path);
    for (int s = 0; s < 16; s++)
        for (int k = 1; k < 16; k++) {
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, k);
            unlink(path);
        }

    sbuf idx = {0};
    sb_printf(&idx, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
              (unsigned long long)total);
    for (int s = 0; s < n_shards; s++) {
        if (single) snprintf(path, sizeof path, "%s/model.safetensors", dir);
        else snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, n_shards);
        if (write_shard(path, s) != 0) return 1;
        printf("  wrote %s (%.1f s)\n", path, now_s() - t0);
        fflush(stdout);
    }
    for (int i = 0; i < g_n; i++)
        sb_printf(&idx, "%s\n    \"%s\": \"model-%05d-of-%05d.safetensors\"", i ? "," : "",
                  g_tensors[i].name, g_tensors[i].shard + 1, n_shards);
    sb_printf(&idx, "\n  }\n}\n");
    int rc = 0;
    if (!single) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        rc |= write_text(path, idx.p);
    }
    free(idx.p);
    sbuf cfg = {0}, pre = {0};
    if (qs) {
        qwen_config(&cfg, qs);
        qwen_preproc(&pre, qs);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    rc |= write_text(path, qs ? cfg.p : ts.next ? next_config_json : config_json);
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    rc |= write_text(path, qs ? pre.p : ts.next ? next_preproc_json : preproc_json);
    free(cfg.p);
    free(pre.p);
    static const char *tok_files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", tok, tok_files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, tok_files[i]);
        rc |= copy_file(from, path);
    }
    if (rc) return 1;
    printf("gen_llava_7b: done in %.1f s\n", now_s() - t0);
    return 0;
}
