/* Qwen2-VL's and Qwen2.5-VL's vision tower (model/nn/qwen2vl_vit.c) against
 * transformers: a tiny random Qwen2VisionTransformerPretrainedModel
 * (transformers 4.46.3, tests/reference/qwen2vl_vision_reference.py) or
 * Qwen2_5_VisionTransformerPretrainedModel (4.51.3,
 * tests/reference/qwen25vl_vision_reference.py: RMSNorm, SwiGLU MLP, window
 * attention with block 1 over whole frames), its weights bound by HF name
 * from the golden file itself.
 *
 *   test_qwen2vl_vision [--qwen25] GOLDEN_F32 GOLDEN_BF16
 *
 * Checks (|got - want| <= 1e-5 + 1e-4 |want|; the measured errors are
 * printed):
 *   - Qwen2.5: the window layout against HF's get_window_index for a grid
 *     with partial windows;
 *   - the grids in one call (Qwen2-VL: two images and a two-frame video;
 *     Qwen2.5: an image with partial windows, one tiled exactly, a two-frame
 *     video): patch_embed's output where the golden has it, the hidden state
 *     after block 0 (in the patches' order), the tower's output;
 *   - each grid alone equals its rows of the joint call, bit for bit;
 *   - bf16 weights (widened) against HF's f32 run of the same bf16 values;
 *   - the backward, with and without recompute, against autograd's
 *     gradients of sum(out * dout) for parameters of every stage;
 *   - bad grids, weights of the wrong shape, bad options: DLV_E_INVALID_ARG
 *     naming them. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/test_backend.h"
#include "backend/backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/nn/qwen2vl_vit.h"
#include "model/nn/vision_windows.h"

#define ATOL 1e-5
#define RTOL 1e-4

/* CONFIG in each reference script: what differs, then what is shared. */
typedef struct tower_case {
    int qwen25;
    int depth, embed, inter, window;
    dlv_op_act act;
} tower_case;
static const tower_case QWEN2 = {0, 2, 32, 64, 0, DLV_OP_ACT_QUICK_GELU};
static const tower_case QWEN25 = {1, 3, 24, 48, 8, DLV_OP_ACT_SILU};
static const tower_case *tc = &QWEN2; /* set once by main */
enum { MAX_DEPTH = 3, HEADS = 2, PATCH = 2, TPATCH = 2, MERGE = 2, HIDDEN = 48, CHANNELS = 3,
       K = CHANNELS * TPATCH * PATCH * PATCH };
static const int64_t FULLATT[] = {1};

static const char *golden_f32_path, *golden_bf16_path;

static dlv_qwen2vl_vit_dims tower_dims(void)
{
    dlv_qwen2vl_vit_dims d = {
        .in_channels = CHANNELS, .patch = PATCH, .temporal_patch = TPATCH, .merge = MERGE,
        .out_hidden = HIDDEN, .rope_theta = 10000.0,
        .enc = {.hidden = tc->embed, .inter = tc->inter, .n_heads = HEADS, .eps = 1e-6f,
                .act = tc->act},
    };
    if (tc->qwen25) {
        d.variant = DLV_QWEN2VL_VIT_QWEN25;
        d.window_size = tc->window;
        d.fullatt_blocks = FULLATT;
        d.n_fullatt = 1;
    }
    return d;
}

static dlv_backend *make_backend(void)
{
    dlv_backend *be = NULL;
    dlv_backend_config cfg = {.n_threads = 2};
    if (dlv_backend_create(test_backend_name(), &cfg, &be) != DLV_OK)
        fail_msg("backend %s: %s", test_backend_name(), dlv_last_error());
    return be;
}

/* ---- golden tensors ------------------------------------------------------ */

static const dlv_st_tensor *find(const dlv_st_file *f, const char *name)
{
    const dlv_st_tensor *t = dlv_st_find(f, name);
    if (!t) fail_msg("%s: no tensor '%s'", dlv_st_path(f), name);
    return t;
}

static float *golden_f32(const dlv_st_file *f, const char *name, size_t *n)
{
    const dlv_st_tensor *t = find(f, name);
    float *out = malloc((t->n_elements ? t->n_elements : 1) * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_st_read_f32(t, 0, t->n_elements, out), DLV_OK);
    if (n) *n = (size_t)t->n_elements;
    return out;
}

/* The grids (golden.grid_thw, I32 [G, 3]). */
static int64_t golden_grids(const dlv_st_file *f, dlv_qwen2vl_grid *grids, int64_t max)
{
    const dlv_st_tensor *t = find(f, "golden.grid_thw");
    assert_int_equal(t->dtype, DLV_DTYPE_I32);
    const int64_t n = t->shape[0];
    assert_true(n <= max && t->shape[1] == 3);
    for (int64_t i = 0; i < n; i++) {
        int32_t v[3];
        memcpy(v, (const char *)t->data + (size_t)i * sizeof v, sizeof v);
        grids[i] = (dlv_qwen2vl_grid){.t = (uint32_t)v[0], .h = (uint32_t)v[1],
                                      .w = (uint32_t)v[2]};
    }
    return n;
}

/* Largest |got - want| and the largest excess over the tolerance. */
static void expect_close(const char *what, const float *got, const float *want, size_t n)
{
    double worst = 0.0, ratio = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - (double)want[i]);
        const double tol = ATOL + RTOL * fabs((double)want[i]);
        if (!(d <= worst)) worst = d;
        if (!(d / tol <= ratio)) ratio = d / tol;
    }
    printf("  %-36s max |diff| %.3g (%.2f of the tolerance), %zu values\n", what, worst, ratio,
           n);
    if (!(ratio <= 1.0)) fail_msg("%s: max |diff| %.3g beyond atol %g + rtol %g", what, worst,
                                  ATOL, RTOL);
}

/* ---- binding by HF name -------------------------------------------------- */

/* The tower's tensors in one device buffer: weights as stored (dtype kept)
 * or, for a gradient set, f32 zeros of the same shapes. */
typedef struct bound {
    dlv_buffer buf;
    dlv_encoder_layer_w layers[MAX_DEPTH];
    dlv_qwen2vl_vit_w w;
} bound;

#define ALIGN 64

static size_t tensor_bytes(const dlv_st_tensor *t, int as_grad)
{
    return as_grad ? (size_t)t->n_elements * sizeof(float) : (size_t)t->n_bytes;
}

static int is_weight(const dlv_st_tensor *t) { return strncmp(t->name, "visual.", 7) == 0; }

/* visual.<name> as a device tensor of bound b (laid out in file order). */
static dlv_tensor get(const dlv_st_file *f, const bound *b, int as_grad, const char *name)
{
    char full[160];
    snprintf(full, sizeof full, "visual.%s", name);
    size_t off = 0;
    for (size_t i = 0; i < dlv_st_count(f); i++) {
        const dlv_st_tensor *t = dlv_st_at(f, i);
        if (!is_weight(t)) continue;
        if (strcmp(t->name, full) == 0) {
            dlv_tensor r = {&b->buf, off, as_grad ? DLV_DTYPE_F32 : t->dtype, 0, {0}};
            if (t->ndim > DLV_TENSOR_MAX_DIMS) {
                /* patch_embed's Conv3d weight [D, C, T, P, P]: a linear's [D, C T P P]. */
                r.ndim = 2;
                r.shape[0] = t->shape[0];
                r.shape[1] = (int64_t)(t->n_elements / (uint64_t)t->shape[0]);
            } else {
                r.ndim = t->ndim;
                for (int j = 0; j < t->ndim; j++) r.shape[j] = t->shape[j];
            }
            return r;
        }
        off += (tensor_bytes(t, as_grad) + ALIGN - 1) / ALIGN * ALIGN;
    }
    fail_msg("%s: no tensor '%s'", dlv_st_path(f), full);
    return (dlv_tensor){0};
}

static dlv_linear get_linear(const dlv_st_file *f, const bound *b, int as_grad, const char *name)
{
    char key[128];
    dlv_linear l;
    snprintf(key, sizeof key, "%s.weight", name);
    l.w = get(f, b, as_grad, key);
    snprintf(key, sizeof key, "%s.bias", name);
    l.b = get(f, b, as_grad, key);
    return l;
}

/* LayerNorm (Qwen2-VL), or Qwen2RMSNorm: a weight only (Qwen2.5). */
static dlv_layernorm_w get_ln(const dlv_st_file *f, const bound *b, int as_grad,
                              const char *name)
{
    if (!tc->qwen25) {
        dlv_linear l = get_linear(f, b, as_grad, name);
        return (dlv_layernorm_w){l.w, l.b};
    }
    char key[128];
    snprintf(key, sizeof key, "%s.weight", name);
    dlv_layernorm_w n = {0};
    n.w = get(f, b, as_grad, key);
    return n;
}

static void bind(dlv_backend *be, const dlv_st_file *f, int as_grad, bound *b)
{
    memset(b, 0, sizeof *b);
    size_t total = 0;
    for (size_t i = 0; i < dlv_st_count(f); i++)
        if (is_weight(dlv_st_at(f, i)))
            total += (tensor_bytes(dlv_st_at(f, i), as_grad) + ALIGN - 1) / ALIGN * ALIGN;
    assert_int_equal(dlv_buffer_alloc(be, total, &b->buf), DLV_OK);
    assert_int_equal(dlv_buffer_zero(&b->buf, 0, total), DLV_OK);
    size_t off = 0;
    for (size_t i = 0; i < dlv_st_count(f) && !as_grad; i++) {
        const dlv_st_tensor *t = dlv_st_at(f, i);
        if (!is_weight(t)) continue;
        assert_int_equal(dlv_buffer_upload(&b->buf, off, t->data, (size_t)t->n_bytes), DLV_OK);
        off += ((size_t)t->n_bytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    b->w.patch.w = get(f, b, as_grad, "patch_embed.proj.weight");
    b->w.n_layers = tc->depth;
    b->w.layers = b->layers;
    for (int l = 0; l < tc->depth; l++) {
        char key[64];
        dlv_encoder_layer_w *L = &b->layers[l];
#define NAME(s) (snprintf(key, sizeof key, "blocks.%d.%s", l, s), key)
        L->ln1 = get_ln(f, b, as_grad, NAME("norm1"));
        L->ln2 = get_ln(f, b, as_grad, NAME("norm2"));
        const dlv_linear qkv = get_linear(f, b, as_grad, NAME("attn.qkv"));
        if (dlv_qwen2vl_vit_split_qkv(&qkv, tc->embed, NAME("attn.qkv"), &L->lin[DLV_ENC_Q],
                                      &L->lin[DLV_ENC_K], &L->lin[DLV_ENC_V]) != DLV_OK)
            fail_msg("%s", dlv_last_error());
        L->lin[DLV_ENC_O] = get_linear(f, b, as_grad, NAME("attn.proj"));
        if (tc->qwen25) { /* SwiGLU: gate, up, down */
            L->lin[DLV_ENC_FC1] = get_linear(f, b, as_grad, NAME("mlp.gate_proj"));
            L->up = get_linear(f, b, as_grad, NAME("mlp.up_proj"));
            L->lin[DLV_ENC_FC2] = get_linear(f, b, as_grad, NAME("mlp.down_proj"));
        } else {
            L->lin[DLV_ENC_FC1] = get_linear(f, b, as_grad, NAME("mlp.fc1"));
            L->lin[DLV_ENC_FC2] = get_linear(f, b, as_grad, NAME("mlp.fc2"));
        }
#undef NAME
    }
    b->w.merger_ln = get_ln(f, b, as_grad, "merger.ln_q");
    b->w.merger_fc1 = get_linear(f, b, as_grad, "merger.mlp.0");
    b->w.merger_fc2 = get_linear(f, b, as_grad, "merger.mlp.2");
}

/* ---- running the tower --------------------------------------------------- */

typedef struct run_out {
    float *out, *trace; /* host [M, HIDDEN], [depth + 1, N, embed] (or NULL) */
} run_out;

/* The tower on the host patches [n_patches, K] of grids; a trace if asked. */
static run_out run(dlv_backend *be, const dlv_qwen2vl_vit_w *w, const float *patches,
                   const dlv_qwen2vl_grid *grids, int64_t n_grids, int with_trace)
{
    const dlv_qwen2vl_vit_dims d = tower_dims();
    int64_t N = 0, M = 0;
    assert_int_equal(dlv_qwen2vl_vit_rows(&d, grids, n_grids, &N, &M), DLV_OK);
    const size_t np = (size_t)(N * K), no = (size_t)(M * HIDDEN),
                 nt = with_trace ? (size_t)((tc->depth + 1) * N * tc->embed) : 0;
    dlv_buffer buf = {0};
    assert_int_equal(dlv_buffer_alloc(be, (np + no + nt) * sizeof(float), &buf), DLV_OK);
    float *dp = dlv_buffer_ptr(&buf);
    assert_int_equal(dlv_buffer_upload(&buf, 0, patches, np * sizeof(float)), DLV_OK);
    if (dlv_qwen2vl_vit_forward(be, &d, w, dp, grids, n_grids, 0, NULL, dp + np,
                                with_trace ? dp + np + no : NULL) != DLV_OK)
        fail_msg("forward: %s", dlv_last_error());
    run_out r = {malloc(no * sizeof(float)), with_trace ? malloc(nt * sizeof(float)) : NULL};
    assert_non_null(r.out);
    assert_int_equal(dlv_buffer_download(r.out, &buf, np * sizeof(float), no * sizeof(float)),
                     DLV_OK);
    if (with_trace)
        assert_int_equal(dlv_buffer_download(r.trace, &buf, (np + no) * sizeof(float),
                                             nt * sizeof(float)),
                         DLV_OK);
    dlv_buffer_free(&buf);
    return r;
}

/* ---- tests --------------------------------------------------------------- */

/* HF's get_window_index for grid (1, 6, 10) (3 x 5 units) with windows of
 * 2 units: window_index and the windows' unit counts. */
static void test_window_layout(void **state)
{
    (void)state;
    static const int64_t want_src[15] = {0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14};
    static const int64_t want_lens[6] = {4, 4, 2, 2, 2, 1};
    int64_t src[15], lens[15], n = 0;
    assert_int_equal(dlv_vision_windows(1, 3, 5, 2, src, lens, &n), DLV_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(src, want_src, sizeof want_src);
    assert_memory_equal(lens, want_lens, sizeof want_lens);
    /* Exactly tiled (HF's empty padding windows dropped), two frames. */
    assert_int_equal(dlv_vision_windows(2, 2, 2, 2, src, lens, &n), DLV_OK);
    assert_int_equal(n, 2);
    assert_true(lens[0] == 4 && lens[1] == 4 && src[4] == 4 && src[7] == 7);
    assert_int_equal(dlv_vision_windows(1, 3, 5, 0, src, lens, &n), DLV_E_INVALID_ARG);
}

static void test_forward_f32(void **state)
{
    (void)state;
    dlv_backend *be = make_backend();
    dlv_st_file *f = NULL;
    assert_int_equal(dlv_st_open(golden_f32_path, &f), DLV_OK);
    bound b;
    bind(be, f, 0, &b);
    dlv_qwen2vl_grid grids[8];
    const int64_t G = golden_grids(f, grids, 8);
    size_t np, n_out, n_block0;
    float *patches = golden_f32(f, "golden.patches", &np);
    float *want = golden_f32(f, "golden.out", &n_out);
    float *block0 = golden_f32(f, "golden.block0", &n_block0);
    const int64_t N = (int64_t)(np / K);
    printf("%s: %lld grids, %lld patches, backend %s\n", golden_f32_path, (long long)G,
           (long long)N, test_backend_name());

    run_out all = run(be, &b.w, patches, grids, G, 1);
    if (dlv_st_find(f, "golden.embed")) { /* Qwen2-VL's golden has the patch embedding */
        size_t n_embed;
        float *embed = golden_f32(f, "golden.embed", &n_embed);
        expect_close("patch_embed (trace 0)", all.trace, embed, n_embed);
        free(embed);
    }
    expect_close("after blocks.0 (trace 1)", all.trace + N * tc->embed, block0, n_block0);
    expect_close("output, all grids in one call", all.out, want, n_out);

    /* One grid at a time: its rows of the joint call, bit for bit. */
    int64_t row = 0, orow = 0;
    for (int64_t i = 0; i < G; i++) {
        const int64_t n = (int64_t)grids[i].t * grids[i].h * grids[i].w;
        run_out one = run(be, &b.w, patches + row * K, &grids[i], 1, 0);
        const size_t m = (size_t)(n / (MERGE * MERGE)) * HIDDEN;
        assert_memory_equal(one.out, all.out + orow * HIDDEN, m * sizeof(float));
        free(one.out);
        row += n;
        orow += n / (MERGE * MERGE);
    }
    printf("  each grid alone: bit-identical rows\n");
    free(all.out);
    free(all.trace);
    free(patches);
    free(want);
    free(block0);
    dlv_buffer_free(&b.buf);
    dlv_st_close(f);
    dlv_backend_destroy(be);
}

static void test_forward_bf16(void **state)
{
    (void)state;
    dlv_backend *be = make_backend();
    dlv_st_file *f = NULL, *g = NULL;
    assert_int_equal(dlv_st_open(golden_f32_path, &f), DLV_OK);
    assert_int_equal(dlv_st_open(golden_bf16_path, &g), DLV_OK);
    assert_int_equal(find(g, "visual.blocks.0.attn.qkv.weight")->dtype, DLV_DTYPE_BF16);
    bound b;
    bind(be, g, 0, &b);
    dlv_qwen2vl_grid grids[8];
    const int64_t G = golden_grids(g, grids, 8);
    size_t n_out;
    float *patches = golden_f32(f, "golden.patches", NULL);
    float *want = golden_f32(g, "golden.out", &n_out);
    run_out all = run(be, &b.w, patches, grids, G, 0);
    expect_close("output, bf16 weights widened", all.out, want, n_out);
    free(all.out);
    free(patches);
    free(want);
    dlv_buffer_free(&b.buf);
    dlv_st_close(g);
    dlv_st_close(f);
    dlv_backend_destroy(be);
}

/* The gradients of sum(out * dout) against autograd's (grad.<name>). */
static void backward_case(int recompute)
{
    dlv_backend *be = make_backend();
    dlv_st_file *f = NULL;
    assert_int_equal(dlv_st_open(golden_f32_path, &f), DLV_OK);
    bound b, gb;
    bind(be, f, 0, &b);
    bind(be, f, 1, &gb);
    dlv_qwen2vl_grid grids[8];
    const int64_t G = golden_grids(f, grids, 8);
    size_t np, n_out;
    float *patches = golden_f32(f, "golden.patches", &np);
    float *dout = golden_f32(f, "golden.dout", &n_out);
    float *want_out = golden_f32(f, "golden.out", NULL);
    dlv_buffer buf = {0};
    assert_int_equal(dlv_buffer_alloc(be, (np + 2 * n_out) * sizeof(float), &buf), DLV_OK);
    float *dp = dlv_buffer_ptr(&buf);
    assert_int_equal(dlv_buffer_upload(&buf, 0, patches, np * sizeof(float)), DLV_OK);
    assert_int_equal(dlv_buffer_upload(&buf, (np + n_out) * sizeof(float), dout,
                                       n_out * sizeof(float)),
                     DLV_OK);
    const dlv_qwen2vl_vit_dims d = tower_dims();
    dlv_qwen2vl_vit_tape *tape = NULL;
    if (dlv_qwen2vl_vit_forward(be, &d, &b.w, dp, grids, G, recompute, &tape, dp + np, NULL) !=
        DLV_OK)
        fail_msg("forward (tape): %s", dlv_last_error());
    assert_true(dlv_qwen2vl_vit_tape_bytes(tape) > 0);
    float *out = malloc(n_out * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_buffer_download(out, &buf, np * sizeof(float), n_out * sizeof(float)),
                     DLV_OK);
    expect_close(recompute ? "output with a tape (recompute)" : "output with a tape", out,
                 want_out, n_out);
    if (dlv_qwen2vl_vit_backward(be, &b.w, &gb.w, tape, dp + np + n_out) != DLV_OK)
        fail_msg("backward: %s", dlv_last_error());
    dlv_qwen2vl_vit_tape_free(tape);

    int checked = 0;
    for (size_t i = 0; i < dlv_st_count(f); i++) {
        const dlv_st_tensor *t = dlv_st_at(f, i);
        if (strncmp(t->name, "grad.", 5) != 0) continue;
        size_t n;
        float *want = golden_f32(f, t->name, &n);
        const dlv_tensor gt = get(f, &gb, 1, t->name + 5);
        assert_int_equal((size_t)dlv_tensor_nelem(&gt), n);
        float *got = malloc(n * sizeof *got);
        assert_non_null(got);
        assert_int_equal(dlv_buffer_download(got, &gb.buf, gt.offset, n * sizeof(float)),
                         DLV_OK);
        char what[96];
        snprintf(what, sizeof what, "d %s%s", t->name + 5, recompute ? " (r)" : "");
        expect_close(what, got, want, n);
        free(got);
        free(want);
        checked++;
    }
    assert_true(checked >= 5);
    free(out);
    free(patches);
    free(dout);
    free(want_out);
    dlv_buffer_free(&buf);
    dlv_buffer_free(&gb.buf);
    dlv_buffer_free(&b.buf);
    dlv_st_close(f);
    dlv_backend_destroy(be);
}

static void test_backward(void **state)
{
    (void)state;
    backward_case(0);
}

static void test_backward_recompute(void **state)
{
    (void)state;
    backward_case(1);
}

static void expect_error(dlv_status st, const char *needle)
{
    assert_int_equal(st, DLV_E_INVALID_ARG);
    if (!strstr(dlv_last_error(), needle))
        fail_msg("error '%s' does not name '%s'", dlv_last_error(), needle);
}

static void test_errors(void **state)
{
    (void)state;
    dlv_backend *be = make_backend();
    dlv_st_file *f = NULL;
    assert_int_equal(dlv_st_open(golden_f32_path, &f), DLV_OK);
    bound b;
    bind(be, f, 0, &b);
    const dlv_qwen2vl_vit_dims d = tower_dims();
    dlv_buffer buf = {0};
    assert_int_equal(dlv_buffer_alloc(be, 64 * K * sizeof(float), &buf), DLV_OK);
    float *dp = dlv_buffer_ptr(&buf);

    /* A side that is not a multiple of spatial_merge_size. */
    const dlv_qwen2vl_grid odd = {.t = 1, .h = 3, .w = 4};
    expect_error(dlv_qwen2vl_vit_forward(be, &d, &b.w, dp, &odd, 1, 0, NULL, dp, NULL),
                 "spatial_merge_size");
    const dlv_qwen2vl_grid empty = {.t = 0, .h = 2, .w = 2};
    expect_error(dlv_qwen2vl_vit_rows(&d, &empty, 1, NULL, NULL), "grid 0");

    /* A weight of the wrong shape is named. */
    const dlv_qwen2vl_grid ok = {.t = 1, .h = 2, .w = 2};
    dlv_qwen2vl_vit_w w = b.w;
    dlv_encoder_layer_w layers[MAX_DEPTH];
    memcpy(layers, b.layers, sizeof layers);
    w.layers = layers;
    layers[1].lin[DLV_ENC_FC1] = layers[1].lin[DLV_ENC_FC2];
    expect_error(dlv_qwen2vl_vit_forward(be, &d, &w, dp, &ok, 1, 0, NULL, dp + 4 * K, NULL),
                 tc->qwen25 ? "blocks.1: mlp.gate_proj.weight" : "blocks.1: mlp.fc1.weight");
    if (tc->qwen25) {
        memcpy(layers, b.layers, sizeof layers);
        layers[2].up = layers[2].lin[DLV_ENC_FC2];
        expect_error(dlv_qwen2vl_vit_forward(be, &d, &w, dp, &ok, 1, 0, NULL, dp + 4 * K, NULL),
                     "blocks.2: mlp.up_proj.weight");
    }
    w = b.w;
    w.merger_fc2 = b.w.merger_fc1;
    expect_error(dlv_qwen2vl_vit_forward(be, &d, &w, dp, &ok, 1, 0, NULL, dp + 4 * K, NULL),
                 "merger.mlp.2.weight");

    /* Qwen2.5's options: a block index past the depth, a window smaller
     * than a merged unit, an MLP activation dlv_swiglu does not compute. */
    const int64_t past[] = {1, tc->depth};
    dlv_qwen2vl_vit_dims dd = d;
    if (tc->qwen25) {
    dd.fullatt_blocks = past;
    dd.n_fullatt = 2;
    expect_error(dlv_qwen2vl_vit_forward(be, &dd, &b.w, dp, &ok, 1, 0, NULL, dp + 4 * K, NULL),
                 "fullatt_block_indexes[1]");
    dd = d;
    dd.window_size = MERGE * PATCH - 1;
    expect_error(dlv_qwen2vl_vit_forward(be, &dd, &b.w, dp, &ok, 1, 0, NULL, dp + 4 * K, NULL),
                 "window_size");
    dd = d;
    dd.enc.act = DLV_OP_ACT_GELU;
    expect_error(dlv_qwen2vl_vit_forward(be, &dd, &b.w, dp, &ok, 1, 0, NULL, dp + 4 * K, NULL),
                 "silu");
    }

    /* The fused qkv must be [3 D, D]. */
    dlv_linear l = b.layers[0].lin[DLV_ENC_O], q, k, v;
    expect_error(dlv_qwen2vl_vit_split_qkv(&l, tc->embed, "blocks.0.attn.proj", &q, &k, &v),
                 "blocks.0.attn.proj.weight");

    /* A head_dim the 2-D rotary cannot split (2, from embed / 2 heads). */
    dlv_qwen2vl_vit_dims bad = d;
    bad.enc.n_heads = tc->embed / 2;
    expect_error(dlv_qwen2vl_vit_forward(be, &bad, &b.w, dp, &ok, 1, 0, NULL, dp + 4 * K, NULL),
                 "head_dim");

    /* The encoder refuses windows that do not cover its rows. */
    static const int64_t wl[] = {2, 1};
    dlv_encoder_dims e = d.enc;
    e.rms_norm = e.glu = 1;
    e.act = DLV_OP_ACT_SILU;
    e.window_lens = wl;
    e.n_windows = 2;
    expect_error(dlv_encoder_forward(be, &e, b.layers, tc->depth, dp, 1, 4, NULL, 0, 0, NULL,
                                     dp + 4 * K, NULL),
                 "window_lens sum");
    /* ... and half a pair of rotary tables. */
    e = d.enc;
    e.rope_cos = dp;
    expect_error(dlv_encoder_forward(be, &e, b.layers, tc->depth, dp, 1, 4, NULL, 0, 0, NULL,
                                     dp + 4 * K, NULL),
                 "rope_sin");
    dlv_buffer_free(&buf);
    dlv_buffer_free(&b.buf);
    dlv_st_close(f);
    dlv_backend_destroy(be);
}

int main(int argc, char **argv)
{
    int a = 1;
    if (argc > 1 && strcmp(argv[1], "--qwen25") == 0) {
        tc = &QWEN25;
        a = 2;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: %s [--qwen25] GOLDEN_F32 GOLDEN_BF16\n", argv[0]);
        return 2;
    }
    golden_f32_path = argv[a];
    golden_bf16_path = argv[a + 1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_f32),
        cmocka_unit_test(test_forward_bf16),
        cmocka_unit_test(test_backward),
        cmocka_unit_test(test_backward_recompute),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_window_layout), /* Qwen2.5's only: last, not run for Qwen2-VL */
    };
    const size_t n = sizeof tests / sizeof *tests - (tc->qwen25 ? 0 : 1);
    return _cmocka_run_group_tests("qwen2vl_vision", tests, n, NULL, NULL);
}
