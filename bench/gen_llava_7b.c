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
 * Usage: gen_llava_7b OUT_DIR [--single] [--next] [--tokenizer-dir DIR]
 *   (default tokenizer dir: ../shared/assets/tokenizers/llama2, or
 *   .../mistral with --next, relative to the current directory, i.e. the
 *   repository root) */
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
    uint64_t shape[4];
    uint64_t n_bytes;
    int shard;
} tensor;

static tensor g_tensors[1024];
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
    for (int i = 0; i < ndim; i++) n *= t->shape[i];
    t->n_bytes = 2 * n;
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
    return strstr(name, "norm") != NULL || strstr(name, "layrnorm") != NULL;
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

int main(int argc, char **argv)
{
    const char *dir = NULL, *tok = NULL;
    int single = 0;
    text_shape ts = {11008, 32, 0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--single")) single = 1;
        else if (!strcmp(argv[i], "--next")) ts = (text_shape){14336, 8, 1};
        else if (!strcmp(argv[i], "--tokenizer-dir") && i + 1 < argc) tok = argv[++i];
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, "usage: gen_llava_7b OUT_DIR [--single] [--next] "
                            "[--tokenizer-dir DIR]\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: gen_llava_7b OUT_DIR [--single] [--next] [--tokenizer-dir DIR]\n");
        return 2;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_llava_7b: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (!tok) tok = ts.next ? "../shared/assets/tokenizers/mistral"
                            : "../shared/assets/tokenizers/llama2";
    build_specs(&ts);

    /* Shards as save_pretrained cuts them: a new shard when the next tensor
     * would take the current one past the limit. */
    uint64_t total = 0, in_shard = 0, params = 0;
    int n_shards = 1;
    for (int i = 0; i < g_n; i++) {
        tensor *t = &g_tensors[i];
        if (!single && in_shard > 0 && in_shard + t->n_bytes > SHARD_LIMIT) {
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
    snprintf(path, sizeof path, "%s/config.json", dir);
    rc |= write_text(path, ts.next ? next_config_json : config_json);
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    rc |= write_text(path, ts.next ? next_preproc_json : preproc_json);
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
