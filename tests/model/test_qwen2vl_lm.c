/* Qwen2-VL's language model against transformers 4.46.3
 * (tests/reference/qwen2vl_lm_reference.py): the M-RoPE position ids
 * (model/qwen2vl/positions.c), and the decoder (model/nn/decoder.c) driven
 * by M-RoPE tables (dlv_decoder_forward_rope), forward and backward.
 *
 *   test_qwen2vl_lm GOLDEN WEIGHTS
 *
 * GOLDEN holds a right-padded batch of three rows mixing text and image
 * placeholders (one image of temporal extent 2), its image_grid_thw, HF's
 * position_ids [3, B, T], the inputs_embeds the language model receives
 * (image rows random, as if from the vision tower), the final-norm hidden
 * states, and the gradients of sum(hidden * probe) (probe zero at padding)
 * w.r.t. inputs_embeds and a few weights. WEIGHTS: the decoder's weights by
 * Hugging Face name, bound here to the decoder's weight view.
 *
 * Tolerances:
 *   position ids     exact
 *   hidden (real rows)   |got - want| <= 1e-5 + 1e-4 |want|
 *   gradients        max |got - want| <= 1e-4 max |want|, per tensor
 * (the measured errors are printed). Runs on DLV_TEST_BACKEND (cpu, and sim
 * from tests/model/meson.build). Also: text-only positions through the
 * tables give the 1-D decoder's result, and the position builders refuse
 * malformed input with messages naming what is wrong. */
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
#include "backend/tensor.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/nn/decoder.h"
#include "model/nn/rope_tables.h"
#include "model/qwen2vl/positions.h"

#define ATOL 1e-5
#define RTOL 1e-4
#define GRAD_RTOL 1e-4

/* The reference's model (qwen2vl_lm_reference.py TEXT, VISION). */
enum { HIDDEN = 64, INTER = 96, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 16, LAYERS = 2,
       IMAGE_TOKEN = 120, MERGE = 2 };
static const int64_t SECTION[3] = {2, 3, 3};
#define EPS 1e-6f
#define THETA 1000000.0

static const char *golden_path, *weights_path;

/* ---- files --------------------------------------------------------------- */

static const dlv_st_tensor *find(const dlv_st_file *f, const char *name)
{
    const dlv_st_tensor *t = dlv_st_find(f, name);
    if (!t) fail_msg("%s: no tensor '%s'", dlv_st_path(f), name);
    return t;
}

static float *read_f32(const dlv_st_file *f, const char *name, size_t n)
{
    const dlv_st_tensor *t = find(f, name);
    if (t->n_elements != n)
        fail_msg("'%s' has %llu elements, expected %zu", name,
                 (unsigned long long)t->n_elements, n);
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    assert_int_equal(dlv_st_read_f32(t, 0, n, out), DLV_OK);
    return out;
}

static int32_t *read_i32(const dlv_st_file *f, const char *name, size_t *n)
{
    const dlv_st_tensor *t = find(f, name);
    assert_int_equal(t->dtype, DLV_DTYPE_I32);
    int32_t *out = malloc((t->n_elements ? t->n_elements : 1) * sizeof *out);
    assert_non_null(out);
    memcpy(out, t->data, t->n_elements * sizeof *out); /* any alignment */
    *n = t->n_elements;
    return out;
}

static dlv_st_file *open_st(const char *path)
{
    dlv_st_file *f = NULL;
    if (dlv_st_open(path, &f) != DLV_OK) fail_msg("%s", dlv_last_error());
    return f;
}

static void check_ok(dlv_status st)
{
    if (st != DLV_OK) fail_msg("unexpected error: %s", dlv_last_error());
}

/* ---- the golden batch ------------------------------------------------------ */

typedef struct golden {
    dlv_st_file *f;
    int64_t batch, len, n_images;
    int32_t *ids, *lengths, *positions; /* [B, T], [B], [3, B, T] */
    int64_t (*grids)[3];
} golden;

static void golden_load(golden *g)
{
    memset(g, 0, sizeof *g);
    g->f = open_st(golden_path);
    const dlv_st_tensor *ids = find(g->f, "input_ids");
    assert_int_equal(ids->ndim, 2);
    g->batch = ids->shape[0];
    g->len = ids->shape[1];
    size_t n;
    g->ids = read_i32(g->f, "input_ids", &n);
    g->lengths = read_i32(g->f, "lengths", &n);
    assert_int_equal(n, g->batch);
    g->positions = read_i32(g->f, "position_ids", &n);
    assert_int_equal(n, 3 * g->batch * g->len);
    int32_t *grid = read_i32(g->f, "image_grid_thw", &n);
    g->n_images = (int64_t)n / 3;
    g->grids = malloc((n ? n : 1) * sizeof(int64_t));
    assert_non_null(g->grids);
    for (size_t i = 0; i < n; i++) g->grids[i / 3][i % 3] = grid[i];
    free(grid);
}

static void golden_free(golden *g)
{
    free(g->ids);
    free(g->lengths);
    free(g->positions);
    free(g->grids);
    dlv_st_close(g->f);
}

/* ---- the decoder's weights, bound by Hugging Face name ---------------------- */

#define MAX_BUFS 64

typedef struct model {
    dlv_backend *be;
    dlv_st_file *f;
    dlv_buffer bufs[MAX_BUFS];
    int n_bufs;
    dlv_decoder_layer_w layers[LAYERS], glayers[LAYERS];
    dlv_decoder_w w, gw;
    dlv_decoder_dims d;
} model;

/* A device f32 tensor of the weight `name` (shape as stored), and its
 * gradient (zeroed) into *grad. */
static dlv_tensor bind(model *m, const char *name, dlv_tensor *grad)
{
    const dlv_st_tensor *t = find(m->f, name);
    assert_true(m->n_bufs + 2 <= MAX_BUFS);
    assert_true(t->ndim >= 1 && t->ndim <= 2);
    float *host = read_f32(m->f, name, (size_t)t->n_elements);
    const size_t bytes = (size_t)t->n_elements * sizeof(float);
    dlv_buffer *b = &m->bufs[m->n_bufs++], *gb = &m->bufs[m->n_bufs++];
    check_ok(dlv_buffer_alloc(m->be, bytes, b));
    check_ok(dlv_buffer_upload(b, 0, host, bytes));
    check_ok(dlv_buffer_alloc(m->be, bytes, gb));
    check_ok(dlv_buffer_zero(gb, 0, bytes));
    free(host);
    dlv_tensor w = {.buf = b, .dtype = DLV_DTYPE_F32, .ndim = t->ndim};
    for (int i = 0; i < t->ndim; i++) w.shape[i] = t->shape[i];
    *grad = w;
    grad->buf = gb;
    return w;
}

static void model_load(model *m)
{
    memset(m, 0, sizeof *m);
    dlv_backend_config cfg = {.n_threads = 2};
    if (dlv_backend_create(test_backend_name(), &cfg, &m->be) != DLV_OK)
        fail_msg("backend %s: %s", test_backend_name(), dlv_last_error());
    m->f = open_st(weights_path);
    assert_null(dlv_st_find(m->f, "model.layers.2.input_layernorm.weight"));
    static const char *const mods[DLV_DEC_N_LINEAR] = {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    char n[256];
    for (int l = 0; l < LAYERS; l++) {
        dlv_decoder_layer_w *lw = &m->layers[l], *gl = &m->glayers[l];
        snprintf(n, sizeof n, "model.layers.%d.input_layernorm.weight", l);
        lw->ln1 = bind(m, n, &gl->ln1);
        snprintf(n, sizeof n, "model.layers.%d.post_attention_layernorm.weight", l);
        lw->ln2 = bind(m, n, &gl->ln2);
        for (int k = 0; k < DLV_DEC_N_LINEAR; k++) {
            snprintf(n, sizeof n, "model.layers.%d.%s.weight", l, mods[k]);
            lw->lin[k].w = bind(m, n, &gl->lin[k].w);
            /* Qwen2: q, k, v carry biases, the others none. */
            snprintf(n, sizeof n, "model.layers.%d.%s.bias", l, mods[k]);
            if (dlv_st_find(m->f, n)) lw->lin[k].b = bind(m, n, &gl->lin[k].b);
        }
    }
    dlv_tensor gnorm;
    m->w = (dlv_decoder_w){.n_layers = LAYERS, .layers = m->layers,
                           .norm = bind(m, "model.norm.weight", &gnorm)};
    m->gw = (dlv_decoder_w){.n_layers = LAYERS, .layers = m->glayers, .norm = gnorm};
    assert_int_equal(m->layers[0].lin[DLV_DEC_Q].w.shape[0], HEADS * HEAD_DIM);
    assert_int_equal(m->layers[0].lin[DLV_DEC_K].w.shape[0], KV_HEADS * HEAD_DIM);
    assert_int_equal(m->layers[0].lin[DLV_DEC_GATE].w.shape[0], INTER);
    assert_int_equal(m->layers[0].ln1.shape[0], HIDDEN);
    m->d = (dlv_decoder_dims){.hidden = HIDDEN, .inter = INTER, .n_heads = HEADS,
                              .n_kv_heads = KV_HEADS, .head_dim = HEAD_DIM, .eps = EPS,
                              .theta = THETA};
}

static void model_free(model *m)
{
    for (int i = 0; i < m->n_bufs; i++) dlv_buffer_free(&m->bufs[i]);
    dlv_st_close(m->f);
    dlv_backend_destroy(m->be);
}

static dlv_tensor grad_of(const model *m, const char *name)
{
    if (!strcmp(name, "model.norm.weight")) return m->gw.norm;
    if (!strcmp(name, "model.layers.0.self_attn.q_proj.weight"))
        return m->glayers[0].lin[DLV_DEC_Q].w;
    if (!strcmp(name, "model.layers.0.self_attn.k_proj.bias"))
        return m->glayers[0].lin[DLV_DEC_K].b;
    if (!strcmp(name, "model.layers.0.input_layernorm.weight")) return m->glayers[0].ln1;
    if (!strcmp(name, "model.layers.1.mlp.down_proj.weight"))
        return m->glayers[1].lin[DLV_DEC_DOWN].w;
    fail_msg("no gradient for %s", name);
    return (dlv_tensor){0};
}

/* ---- device helpers ----------------------------------------------------------- */

static void upload(dlv_backend *be, dlv_buffer *b, const float *host, size_t n)
{
    check_ok(dlv_buffer_alloc(be, (n ? n : 1) * sizeof(float), b));
    if (host) check_ok(dlv_buffer_upload(b, 0, host, n * sizeof(float)));
    else check_ok(dlv_buffer_zero(b, 0, n * sizeof(float)));
}

static float *download(const dlv_buffer *b, size_t n)
{
    float *h = malloc(n * sizeof *h);
    assert_non_null(h);
    check_ok(dlv_buffer_download(h, b, 0, n * sizeof *h));
    return h;
}

/* M-RoPE tables [n, HEAD_DIM / 2] each, cos then sin, in one device buffer. */
static void mrope_tables(dlv_backend *be, const int32_t *positions, int64_t n, dlv_buffer *b)
{
    const size_t half = (size_t)n * (HEAD_DIM / 2);
    float *host = malloc(2 * half * sizeof *host);
    assert_non_null(host);
    check_ok(dlv_rope_mrope_tables(host, host + half, positions, n, HEAD_DIM, SECTION, THETA));
    upload(be, b, host, 2 * half);
    free(host);
}

static dlv_decoder_rope rope_of(const dlv_buffer *b, int64_t n)
{
    const float *base = dlv_buffer_ptr(b);
    /* Device addresses: integer offsets, never dereferenced here. */
    const float *sin_t = (const float *)((uintptr_t)base +
                                         (size_t)n * (HEAD_DIM / 2) * sizeof(float));
    return (dlv_decoder_rope){.cos = base, .sin = sin_t};
}

/* ---- tests ------------------------------------------------------------------ */

static void test_positions_golden(void **state)
{
    (void)state;
    golden g;
    golden_load(&g);
    const size_t n = (size_t)(3 * g.batch * g.len);
    int32_t *got = malloc(n * sizeof *got);
    assert_non_null(got);
    const dlv_qwen2vl_marks mk = {.image_token_id = IMAGE_TOKEN, .merge_size = MERGE};
    check_ok(dlv_qwen2vl_rope_index(got, g.ids, g.lengths, g.batch, g.len,
                                    (const int64_t(*)[3])g.grids, g.n_images, &mk));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != g.positions[i]) {
            if (bad++ < 5)
                fprintf(stderr, "position_ids[%zu]: got %d, want %d\n", i, got[i],
                        g.positions[i]);
        }
    printf("  position_ids [3, %lld, %lld], %lld images: %zu of %zu differ\n",
           (long long)g.batch, (long long)g.len, (long long)g.n_images, bad, n);
    assert_int_equal(bad, 0);
    free(got);
    golden_free(&g);
}

/* Hand-made spans: text 2, an image (2, 4, 6) / merge 2 = 2 x 2 x 3, text 1. */
static void test_positions_spans(void **state)
{
    (void)state;
    const dlv_qwen2vl_span spans[] = {{.n_text = 2}, {.grid_t = 2, .grid_h = 4, .grid_w = 6},
                                      {.n_text = 1}, {.n_text = 0}};
    int64_t n = 0;
    check_ok(dlv_qwen2vl_span_tokens(spans, 4, 2, &n));
    assert_int_equal(n, 15);
    int32_t p[45];
    check_ok(dlv_qwen2vl_positions(p, n, spans, 4, 2));
    const int32_t want[3][15] = {
        {0, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 5},
        {0, 1, 2, 2, 2, 3, 3, 3, 2, 2, 2, 3, 3, 3, 5},
        {0, 1, 2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3, 4, 5},
    };
    assert_memory_equal(p, want, sizeof want);
}

static void expect_error(dlv_status st, const char *needle)
{
    assert_int_equal(st, DLV_E_INVALID_ARG);
    if (!strstr(dlv_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", dlv_last_error(), needle);
}

static void test_positions_errors(void **state)
{
    (void)state;
    int64_t n = 0;
    int32_t p[64];
    const dlv_qwen2vl_span odd[] = {{.n_text = 1}, {.grid_t = 1, .grid_h = 3, .grid_w = 4}};
    expect_error(dlv_qwen2vl_span_tokens(odd, 2, 2, &n), "span 1: grid h = 3");
    const dlv_qwen2vl_span neg[] = {{.n_text = -1}};
    expect_error(dlv_qwen2vl_span_tokens(neg, 1, 2, &n), "span 0: n_text = -1");
    const dlv_qwen2vl_span zero[] = {{.grid_t = 1, .grid_h = 0, .grid_w = 2}};
    expect_error(dlv_qwen2vl_span_tokens(zero, 1, 2, &n), "span 0: grid (1, 0, 2)");
    expect_error(dlv_qwen2vl_span_tokens(neg, 1, 0, &n), "spatial_merge_size = 0");
    const dlv_qwen2vl_span ok[] = {{.n_text = 3}};
    expect_error(dlv_qwen2vl_positions(p, 4, ok, 1, 2), "n_tokens = 4, the spans hold 3");

    const dlv_qwen2vl_marks mk = {.image_token_id = 9, .merge_size = 2};
    const int64_t grid[2][3] = {{1, 2, 4}, {1, 4, 2}};
    /* Row 0: text, 2 placeholders (grid 0), text; row 1: 1 placeholder. */
    const int32_t ids[2][6] = {{1, 9, 9, 2, 0, 0}, {3, 9, 4, 5, 0, 0}};
    const int32_t lengths[2] = {4, 4};
    check_ok(dlv_qwen2vl_rope_index(p, &ids[0][0], lengths, 1, 6, grid, 1, &mk));
    const int32_t want[3][6] = {{0, 1, 1, 3, 1, 1}, {0, 1, 1, 3, 1, 1}, {0, 1, 2, 3, 1, 1}};
    assert_memory_equal(p, want, sizeof want);
    expect_error(dlv_qwen2vl_rope_index(p, &ids[0][0], lengths, 2, 6, grid, 2, &mk),
                 "row 1, position 1: image 1 has 1 placeholder tokens, its grid_thw "
                 "(1, 4, 2) needs 2");
    expect_error(dlv_qwen2vl_rope_index(p, &ids[0][0], lengths, 1, 6, grid, 0, &mk),
                 "beyond the n_images = 0 grids");
    expect_error(dlv_qwen2vl_rope_index(p, &ids[0][0], lengths, 1, 6, grid, 2, &mk),
                 "n_images = 2 grids, the ids hold 1 images");
    const int32_t bad_len[1] = {7};
    expect_error(dlv_qwen2vl_rope_index(p, &ids[0][0], bad_len, 1, 6, grid, 1, &mk),
                 "lengths[0] = 7");
}

/* The gradient check of one tensor: max |got - want| against GRAD_RTOL
 * times the largest |want|. */
static int grad_close(const char *what, const float *got, const float *want, size_t n)
{
    double err = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= err)) err = e; /* NaN counts as the worst */
        if (fabs((double)want[i]) > scale) scale = fabs((double)want[i]);
    }
    const double rel = err / (scale > 0.0 ? scale : 1.0);
    printf("  grad %-42s max |diff| %.3g, relative %.3g\n", what, err, rel);
    return rel <= GRAD_RTOL;
}

static void test_decoder_golden(void **state)
{
    (void)state;
    golden g;
    golden_load(&g);
    model m;
    model_load(&m);
    const int64_t n = g.batch * g.len;
    const size_t plane = (size_t)n * HIDDEN;
    float *x = read_f32(g.f, "inputs_embeds", plane);
    float *want = read_f32(g.f, "hidden", plane);
    float *probe = read_f32(g.f, "probe", plane);
    dlv_buffer bx = {0}, bh = {0}, bd = {0}, bdx = {0}, bt = {0};
    upload(m.be, &bx, x, plane);
    upload(m.be, &bh, NULL, plane);
    upload(m.be, &bd, probe, plane);
    upload(m.be, &bdx, NULL, plane);
    mrope_tables(m.be, g.positions, n, &bt);
    const dlv_decoder_rope rope = rope_of(&bt, n);

    dlv_decoder_tape *tape = NULL;
    check_ok(dlv_decoder_forward_rope(m.be, &m.d, &m.w, NULL, &rope, dlv_buffer_ptr(&bx),
                                      g.lengths, g.batch, g.len, 0, &tape,
                                      dlv_buffer_ptr(&bh), NULL));
    float *got = download(&bh, plane);
    size_t bad = 0, checked = 0;
    double max_err = 0.0;
    for (int64_t b = 0; b < g.batch; b++)
        for (int64_t i = 0; i < g.lengths[b]; i++)
            for (int64_t c = 0; c < HIDDEN; c++) {
                const size_t k = (size_t)((b * g.len + i) * HIDDEN + c);
                const double e = fabs((double)got[k] - (double)want[k]);
                if (!(e <= max_err)) max_err = e;
                checked++;
                if (!(e <= ATOL + RTOL * fabs((double)want[k])) && bad++ < 5)
                    fprintf(stderr, "hidden[%lld, %lld, %lld]: got %.9g, want %.9g\n",
                            (long long)b, (long long)i, (long long)c, (double)got[k],
                            (double)want[k]);
            }
    printf("  hidden: %zu real values, max |diff| %.3g, %zu outside tolerance\n", checked,
           max_err, bad);
    assert_int_equal(bad, 0);

    /* dhidden = probe: d sum(hidden * probe). */
    check_ok(dlv_decoder_backward(m.be, &m.w, &m.gw, NULL, NULL, tape, dlv_buffer_ptr(&bd),
                                  dlv_buffer_ptr(&bdx)));
    dlv_decoder_tape_free(tape);
    float *dx = download(&bdx, plane), *wdx = read_f32(g.f, "grad.inputs_embeds", plane);
    int ok = grad_close("inputs_embeds", dx, wdx, plane);
    static const char *const names[] = {
        "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.bias",
        "model.layers.0.input_layernorm.weight", "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const dlv_tensor gt = grad_of(&m, names[i]);
        const size_t ne = (size_t)dlv_tensor_nelem(&gt);
        char key[128];
        snprintf(key, sizeof key, "grad.%s", names[i]);
        float *w = read_f32(g.f, key, ne), *h = malloc(ne * sizeof *h);
        assert_non_null(h);
        check_ok(dlv_tensor_download(h, &gt));
        ok &= grad_close(names[i], h, w, ne);
        free(w);
        free(h);
    }
    assert_true(ok);

    free(dx);
    free(wdx);
    free(got);
    free(x);
    free(want);
    free(probe);
    dlv_buffer *bufs[] = {&bx, &bh, &bd, &bdx, &bt};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dlv_buffer_free(bufs[i]);
    model_free(&m);
    golden_free(&g);
}

/* Text positions (t = h = w = i) through the tables against the 1-D path
 * (positions 0 .. len-1): the same rotation, computed from the same f32
 * angles, so the results agree to rounding. */
static void test_text_is_1d(void **state)
{
    (void)state;
    golden g;
    golden_load(&g);
    model m;
    model_load(&m);
    const int64_t n = g.batch * g.len;
    const size_t plane = (size_t)n * HIDDEN;
    float *x = read_f32(g.f, "inputs_embeds", plane);
    int32_t *pos = malloc((size_t)(3 * n) * sizeof *pos);
    assert_non_null(pos);
    for (int c = 0; c < 3; c++)
        for (int64_t k = 0; k < n; k++) pos[c * n + k] = (int32_t)(k % g.len);
    dlv_buffer bx = {0}, h1 = {0}, h2 = {0}, bt = {0};
    upload(m.be, &bx, x, plane);
    upload(m.be, &h1, NULL, plane);
    upload(m.be, &h2, NULL, plane);
    mrope_tables(m.be, pos, n, &bt);
    const dlv_decoder_rope rope = rope_of(&bt, n);
    check_ok(dlv_decoder_forward(m.be, &m.d, &m.w, NULL, dlv_buffer_ptr(&bx), g.lengths,
                                 g.batch, g.len, 0, NULL, dlv_buffer_ptr(&h1), NULL));
    check_ok(dlv_decoder_forward_rope(m.be, &m.d, &m.w, NULL, &rope, dlv_buffer_ptr(&bx),
                                      g.lengths, g.batch, g.len, 0, NULL, dlv_buffer_ptr(&h2),
                                      NULL));
    float *a = download(&h1, plane), *b = download(&h2, plane);
    double m_err = 0.0;
    for (int64_t r = 0; r < g.batch; r++)
        for (int64_t k = r * g.len * HIDDEN; k < (r * g.len + g.lengths[r]) * HIDDEN; k++) {
            const double e = fabs((double)a[k] - (double)b[k]);
            if (!(e <= m_err)) m_err = e;
        }
    printf("  text positions, tables vs 1-D: max |diff| %.3g\n", m_err);
    assert_true(m_err <= 1e-6);

    /* A rope with one table missing is refused, naming it. */
    const dlv_decoder_rope half = {.cos = rope.cos};
    assert_int_equal(dlv_decoder_forward_rope(m.be, &m.d, &m.w, NULL, &half,
                                              dlv_buffer_ptr(&bx), g.lengths, g.batch, g.len,
                                              0, NULL, dlv_buffer_ptr(&h2), NULL),
                     DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "rope tables: sin is NULL"));

    free(a);
    free(b);
    free(x);
    free(pos);
    dlv_buffer *bufs[] = {&bx, &h1, &h2, &bt};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dlv_buffer_free(bufs[i]);
    model_free(&m);
    golden_free(&g);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s GOLDEN WEIGHTS\n", argv[0]);
        return 2;
    }
    golden_path = argv[1];
    weights_path = argv[2];
    printf("backend %s\n", test_backend_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions_golden),
        cmocka_unit_test(test_positions_spans),
        cmocka_unit_test(test_positions_errors),
        cmocka_unit_test(test_decoder_golden),
        cmocka_unit_test(test_text_is_1d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
