/* Qwen2-VL's vision tower, forward and backward (see qwen2vl_vit.h). */
#include "model/nn/qwen2vl_vit.h"

#include <stdlib.h>

#include "core/error.h"
#include "model/nn/rope_tables.h"
#include "model/nn/vision_windows.h"

/* One grid's device state: its rotary tables (read by the blocks' forward
 * and backward), a copy of its patches (patch_embed's weight gradient;
 * QWEN25: in window order, the blocks' order), the last block's output
 * xl, ln_q's output ln [N, D] (= [M, D m^2]) and the merger's fc1 output
 * f [M, D m^2] (before GELU) and g = GELU(f). QWEN25 also keeps, on the
 * host, the window order of its units (unit_src) and its windows' lengths
 * in patch rows (win_lens, n_win of them), which the blocks' tape reads. */
typedef struct grid_state {
    int64_t t, hw, N, M;   /* frames, patches per frame, patches, output rows */
    int64_t row0, out0;    /* the grid's first patch row and output row */
    dlv_buffer buf;
    float *cos, *sin, *patches, *xl, *ln, *f, *g;
    dlv_encoder_tape *enc;
    int64_t *unit_src, *win_lens, n_win;
} grid_state;

/* full[l]: block l attends over whole frames (QWEN25; the blocks' tape
 * reads it). */
struct dlv_qwen2vl_vit_tape {
    dlv_qwen2vl_vit_dims d;
    int64_t n_grids;
    grid_state *grids;
    uint8_t *full;
};

#define PF(b) ((float *)dlv_buffer_ptr(&(b)))

static void grid_free(grid_state *g)
{
    dlv_buffer_free(&g->buf);
    dlv_encoder_tape_free(g->enc);
    g->enc = NULL;
    free(g->unit_src);
    free(g->win_lens);
    g->unit_src = g->win_lens = NULL;
}

void dlv_qwen2vl_vit_tape_free(dlv_qwen2vl_vit_tape *t)
{
    if (!t) return;
    for (int64_t i = 0; i < t->n_grids; i++) grid_free(&t->grids[i]);
    free(t->grids);
    free(t->full);
    free(t);
}

size_t dlv_qwen2vl_vit_tape_bytes(const dlv_qwen2vl_vit_tape *t)
{
    if (!t) return 0;
    size_t n = 0;
    for (int64_t i = 0; i < t->n_grids; i++)
        n += t->grids[i].buf.size + dlv_encoder_tape_bytes(t->grids[i].enc);
    return n;
}

dlv_status dlv_qwen2vl_vit_split_qkv(const dlv_linear *qkv, int64_t hidden, const char *name,
                                     dlv_linear *q, dlv_linear *k, dlv_linear *v)
{
    if (!qkv || !q || !k || !v || !name)
        return dlv_error(DLV_E_INVALID_ARG, "qkv split: NULL argument");
    const dlv_tensor *w = &qkv->w, *b = &qkv->b;
    if (!dlv_tensor_present(w) || w->ndim != 2 || w->shape[0] != 3 * hidden ||
        w->shape[1] != hidden)
        return dlv_error(DLV_E_INVALID_ARG, "%s.weight: expected [%lld, %lld]", name,
                         (long long)(3 * hidden), (long long)hidden);
    if (dlv_tensor_present(b) && (b->ndim != 1 || b->shape[0] != 3 * hidden))
        return dlv_error(DLV_E_INVALID_ARG, "%s.bias: expected [%lld]", name,
                         (long long)(3 * hidden));
    dlv_linear *parts[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        parts[i]->w = dlv_tensor_rows(w, i * hidden, hidden);
        parts[i]->b = dlv_tensor_present(b) ? dlv_tensor_rows(b, i * hidden, hidden) : *b;
    }
    return DLV_OK;
}

dlv_status dlv_qwen2vl_vit_rows(const dlv_qwen2vl_vit_dims *d, const dlv_qwen2vl_grid *grids,
                                int64_t n_grids, int64_t *n_patches, int64_t *n_out)
{
    if (!d || (n_grids > 0 && !grids) || n_grids < 0)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: bad grid arguments");
    if (d->merge < 1)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: spatial_merge_size %lld < 1",
                         (long long)d->merge);
    int64_t n = 0, m = 0;
    for (int64_t i = 0; i < n_grids; i++) {
        const dlv_qwen2vl_grid *g = &grids[i];
        if (!g->t || !g->h || !g->w || g->h % d->merge || g->w % d->merge)
            return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: grid %lld (%u, %u, %u) is "
                             "empty or not a multiple of spatial_merge_size %lld", (long long)i,
                             g->t, g->h, g->w, (long long)d->merge);
        /* Each factor < 2^32: the product is bounded before it is added. */
        const int64_t hw = (int64_t)g->h * g->w;
        if (hw > INT32_MAX || (int64_t)g->t > INT32_MAX / hw || n > INT32_MAX - g->t * hw)
            return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: grid %lld (%u, %u, %u): too "
                             "many patches", (long long)i, g->t, g->h, g->w);
        n += g->t * hw;
        m += g->t * hw / (d->merge * d->merge);
    }
    if (n_patches) *n_patches = n;
    if (n_out) *n_out = m;
    return DLV_OK;
}

/* ---- weights ------------------------------------------------------------- */

static dlv_status check_linear(dlv_backend *be, const dlv_linear *l, int64_t out, int64_t in,
                               const char *name)
{
    if (!dlv_weights_readable(be, &l->w) || l->w.ndim < 1 || dlv_linear_in(l) != in ||
        dlv_linear_out(l) != out)
        return dlv_error(DLV_E_INVALID_ARG, "%s.weight: expected [%lld, %lld] on the backend",
                         name, (long long)out, (long long)in);
    if (dlv_tensor_present(&l->b) &&
        (!dlv_weights_readable(be, &l->b) || dlv_tensor_nelem(&l->b) != out))
        return dlv_error(DLV_E_INVALID_ARG, "%s.bias: expected [%lld] on the backend", name,
                         (long long)out);
    return DLV_OK;
}

static dlv_status check_ln(dlv_backend *be, const dlv_layernorm_w *n, int64_t dim, int rms,
                           const char *name)
{
    if (rms) {
        if (!dlv_weights_readable(be, &n->w) || dlv_tensor_nelem(&n->w) != dim)
            return dlv_error(DLV_E_INVALID_ARG, "%s.weight: expected [%lld] on the backend",
                             name, (long long)dim);
        return DLV_OK;
    }
    if (!dlv_weights_readable(be, &n->w) || dlv_tensor_nelem(&n->w) != dim ||
        !dlv_weights_readable(be, &n->b) || dlv_tensor_nelem(&n->b) != dim ||
        n->b.dtype != n->w.dtype)
        return dlv_error(DLV_E_INVALID_ARG, "%s: weight and bias [%lld] of one dtype expected "
                         "on the backend", name, (long long)dim);
    return DLV_OK;
}

/* Every weight present with its shape (named as HF names it). */
static dlv_status check_weights(dlv_backend *be, const dlv_qwen2vl_vit_dims *d,
                                const dlv_qwen2vl_vit_w *w)
{
    const int64_t D = d->enc.hidden, I = d->enc.inter, C = D * d->merge * d->merge;
    const int64_t K = d->in_channels * d->temporal_patch * d->patch * d->patch;
    const int q25 = d->variant == DLV_QWEN2VL_VIT_QWEN25;
    dlv_status st = check_linear(be, &w->patch, D, K, "patch_embed.proj");
    if (!st && w->n_layers > 0 && !w->layers)
        st = dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: layers is NULL");
    static const char *const lin_names[2][DLV_ENC_N_LINEAR] = {
        {"attn.qkv (q)", "attn.qkv (k)", "attn.qkv (v)", "attn.proj", "mlp.fc1", "mlp.fc2"},
        {"attn.qkv (q)", "attn.qkv (k)", "attn.qkv (v)", "attn.proj", "mlp.gate_proj",
         "mlp.down_proj"}};
    for (int64_t l = 0; !st && l < w->n_layers; l++) {
        const dlv_encoder_layer_w *L = &w->layers[l];
        for (int m = 0; !st && m < DLV_ENC_N_LINEAR; m++)
            st = check_linear(be, &L->lin[m], m == DLV_ENC_FC1 ? I : D,
                              m == DLV_ENC_FC2 ? I : D, lin_names[q25][m]);
        if (!st && q25) st = check_linear(be, &L->up, I, D, "mlp.up_proj");
        if (!st) st = check_ln(be, &L->ln1, D, q25, "norm1");
        if (!st) st = check_ln(be, &L->ln2, D, q25, "norm2");
        if (st) st = dlv_error_prefix(st, "blocks.%lld", (long long)l);
    }
    if (!st) st = check_ln(be, &w->merger_ln, D, q25, "merger.ln_q");
    if (!st) st = check_linear(be, &w->merger_fc1, C, C, "merger.mlp.0");
    if (!st) st = check_linear(be, &w->merger_fc2, d->out_hidden, C, "merger.mlp.2");
    return st;
}

static dlv_status check_dims(const dlv_qwen2vl_vit_dims *d)
{
    const dlv_encoder_dims *e = &d->enc;
    if (d->in_channels < 1 || d->patch < 1 || d->temporal_patch < 1 || d->merge < 1 ||
        d->out_hidden < 1 || e->hidden < 1 || e->inter < 1 || e->n_heads < 1)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: a size in the dims is < 1");
    if (e->hidden % e->n_heads || (e->hidden / e->n_heads) % 4)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: embed_dim %lld over %lld heads "
                         "is not a head_dim multiple of 4 (2-D rotary)", (long long)e->hidden,
                         (long long)e->n_heads);
    if (e->causal)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: the blocks are not causal");
    if (d->variant != DLV_QWEN2VL_VIT_QWEN2 && d->variant != DLV_QWEN2VL_VIT_QWEN25)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision: unknown variant %d",
                         (int)d->variant);
    if (d->variant == DLV_QWEN2VL_VIT_QWEN25) {
        if (e->act != DLV_OP_ACT_SILU)
            return dlv_error(DLV_E_INVALID_ARG, "qwen2.5-vl vision: hidden_act must be silu "
                             "(the SwiGLU MLP)");
        /* HF floors window_size / merge / patch; 0 would divide by zero there. */
        if (d->window_size / d->merge / d->patch < 1)
            return dlv_error(DLV_E_INVALID_ARG, "qwen2.5-vl vision: window_size %lld is less "
                             "than one merged unit (%lld px)", (long long)d->window_size,
                             (long long)(d->merge * d->patch));
        if (d->n_fullatt < 0 || (d->n_fullatt > 0 && !d->fullatt_blocks))
            return dlv_error(DLV_E_INVALID_ARG, "qwen2.5-vl vision: fullatt_block_indexes is "
                             "NULL or has a negative count");
    }
    return DLV_OK;
}

/* Moves the M units of unit_floats floats each between the grid's order
 * and the window order: to_window, dst[j] = src[unit_src[j]]; otherwise
 * dst[unit_src[j]] = src[j]. A window row's units are consecutive in both
 * orders: one copy per run. */
static dlv_status permute_units(dlv_backend *be, float *dst, const float *src,
                                const int64_t *unit_src, int64_t M, int64_t unit_floats,
                                int to_window)
{
    const size_t uf = (size_t)unit_floats;
    for (int64_t j = 0; j < M;) {
        int64_t n = 1;
        while (j + n < M && unit_src[j + n] == unit_src[j] + n) n++;
        const size_t w = (size_t)j * uf, o = (size_t)unit_src[j] * uf;
        dlv_status st = to_window ? dlv_copy(be, dst + w, src + o, (size_t)n * uf * sizeof(float))
                                  : dlv_copy(be, dst + o, src + w, (size_t)n * uf * sizeof(float));
        if (st) return st;
        j += n;
    }
    return DLV_OK;
}

/* QWEN25: the grid's window order and window lengths in patch rows. */
static dlv_status window_layout(const dlv_qwen2vl_vit_dims *d, const dlv_qwen2vl_grid *grid,
                                grid_state *g)
{
    const int64_t m2 = d->merge * d->merge;
    g->unit_src = malloc((size_t)g->M * sizeof *g->unit_src);
    g->win_lens = malloc((size_t)g->M * sizeof *g->win_lens);
    if (!g->unit_src || !g->win_lens)
        return dlv_error_nomem("qwen2.5-vl vision windows", 2 * (size_t)g->M * sizeof(int64_t));
    dlv_status st = dlv_vision_windows(grid->t, grid->h / d->merge, grid->w / d->merge,
                                       d->window_size / d->merge / d->patch, g->unit_src,
                                       g->win_lens, &g->n_win);
    for (int64_t k = 0; !st && k < g->n_win; k++) g->win_lens[k] *= m2;
    return st;
}

/* ---- forward ------------------------------------------------------------- */

/* The grid's rotary tables, built on the host and uploaded. */
static dlv_status upload_tables(dlv_backend *be, const dlv_qwen2vl_vit_dims *d,
                                const dlv_qwen2vl_grid *grid, grid_state *g)
{
    const int64_t hd = d->enc.hidden / d->enc.n_heads;
    const size_t n = (size_t)g->N, tab = n * (size_t)(hd / 2);
    int32_t *pos = malloc(2 * n * sizeof *pos);
    float *cs = malloc(2 * tab * sizeof *cs);
    dlv_status st = DLV_OK;
    if (!pos || !cs) st = dlv_error_nomem("qwen2-vl vision rotary tables", 2 * tab * sizeof *cs);
    if (!st) st = dlv_rope_vision_patch_ids(pos, pos + n, grid->t, grid->h, grid->w, d->merge);
    if (!st && g->unit_src) {
        /* The tables follow the rows into window order: cs as scratch. */
        int32_t *tmp = (int32_t *)cs;
        const int64_t m2 = d->merge * d->merge;
        for (int c = 0; c < 2; c++) {
            for (int64_t j = 0; j < g->M; j++)
                for (int64_t r = 0; r < m2; r++)
                    tmp[j * m2 + r] = pos[(size_t)c * n + (size_t)(g->unit_src[j] * m2 + r)];
            for (size_t i = 0; i < n; i++) pos[(size_t)c * n + i] = tmp[i];
        }
    }
    if (!st)
        st = dlv_rope_vision_tables(cs, cs + tab, pos, pos + n, g->N, hd, d->rope_theta);
    if (!st) st = dlv_copy_to_device(be, g->cos, cs, 2 * tab * sizeof *cs);
    free(pos);
    free(cs);
    return st ? dlv_error_prefix(st, "rotary tables") : DLV_OK;
}

/* The grid's device buffer: cos, sin [N, hd/2] (adjacent: one upload),
 * patches [N, K] (with a tape), xl, ln, f, g [N, D]. */
static dlv_status grid_alloc(dlv_backend *be, const dlv_qwen2vl_vit_dims *d, int with_patches,
                             grid_state *g)
{
    const size_t N = (size_t)g->N, D = (size_t)d->enc.hidden;
    const size_t K = (size_t)(d->in_channels * d->temporal_patch * d->patch * d->patch);
    const size_t half = (size_t)(d->enc.hidden / d->enc.n_heads / 2);
    const size_t floats = 2 * N * half + (with_patches ? N * K : 0) + 4 * N * D;
    dlv_status st = dlv_buffer_alloc(be, floats * sizeof(float), &g->buf);
    if (st) return dlv_error_prefix(st, "qwen2-vl vision activations");
    float *p = PF(g->buf);
    g->cos = p;
    g->sin = p + N * half;
    p += 2 * N * half;
    g->patches = with_patches ? p : NULL;
    p += with_patches ? N * K : 0;
    g->xl = p;
    g->ln = p + N * D;
    g->f = p + 2 * N * D;
    g->g = p + 3 * N * D;
    return DLV_OK;
}

/* ln_q on each patch, merge^2 patches to a row, Linear -> GELU -> Linear. */
static dlv_status merger_forward(dlv_backend *be, const dlv_qwen2vl_vit_dims *d,
                                 const dlv_qwen2vl_vit_w *w, const grid_state *g, float *out)
{
    const dlv_layernorm_w *n = &w->merger_ln;
    dlv_status st =
        d->variant == DLV_QWEN2VL_VIT_QWEN25
            ? dlv_rmsnorm(be, g->ln, g->xl, dlv_tensor_data(&n->w), n->w.dtype, g->N,
                          d->enc.hidden, 1e-6f)
            : dlv_layernorm(be, g->ln, g->xl, dlv_tensor_data(&n->w), dlv_tensor_data(&n->b),
                            n->w.dtype, g->N, d->enc.hidden, 1e-6f);
    if (st) return dlv_error_prefix(st, "merger.ln_q");
    /* [N, D] row-major is [M, D m^2]: each row the merge^2 patches in turn. */
    if ((st = dlv_linear_forward(be, g->f, g->ln, g->M, &w->merger_fc1, NULL, NULL)))
        return dlv_error_prefix(st, "merger.mlp.0");
    if ((st = dlv_activation(be, DLV_OP_ACT_GELU, g->g, g->f, g->N * d->enc.hidden)))
        return dlv_error_prefix(st, "merger GELU");
    if ((st = dlv_linear_forward(be, out, g->g, g->M, &w->merger_fc2, NULL, NULL)))
        return dlv_error_prefix(st, "merger.mlp.2");
    return DLV_OK;
}

/* Copies a grid's encoder trace [L + 1, N, D] into the tower's trace
 * [L + 1, N_total, D] at the grid's rows (QWEN25: back in the patches'
 * order). */
static dlv_status scatter_trace(dlv_backend *be, float *trace, const float *gtrace,
                                int64_t layers, int64_t n_total, const grid_state *g,
                                int64_t D)
{
    const size_t plane = (size_t)(g->N * D);
    dlv_status st = DLV_OK;
    for (int64_t l = 0; !st && l <= layers; l++) {
        float *dst = trace + (size_t)(l * n_total + g->row0) * (size_t)D;
        const float *src = gtrace + (size_t)l * plane;
        st = g->unit_src ? permute_units(be, dst, src, g->unit_src, g->M, g->N / g->M * D, 0)
                         : dlv_copy(be, dst, src, plane * sizeof(float));
    }
    return st;
}

/* One grid from its patches to its output rows. */
static dlv_status grid_forward(dlv_backend *be, const dlv_qwen2vl_vit_dims *d,
                               const dlv_qwen2vl_vit_w *w, const uint8_t *full,
                               const dlv_qwen2vl_grid *grid, const float *patches, int recompute,
                               int with_tape, grid_state *g, float *out, float *gtrace)
{
    const int64_t K = d->in_channels * d->temporal_patch * d->patch * d->patch;
    const int64_t D = d->enc.hidden, unit = g->N / g->M;
    const int q25 = d->variant == DLV_QWEN2VL_VIT_QWEN25;
    /* QWEN25 keeps its patches in window order even without a tape: the
     * rows enter the blocks in that order. */
    dlv_status st = grid_alloc(be, d, with_tape || q25, g);
    if (!st && q25) st = window_layout(d, grid, g);
    if (!st) st = upload_tables(be, d, grid, g);
    if (!st && q25)
        st = permute_units(be, g->patches, patches, g->unit_src, g->M, unit * K, 1);
    else if (!st && with_tape)
        st = dlv_copy(be, g->patches, patches, (size_t)(g->N * K) * sizeof(float));
    if (!st && (st = dlv_linear_forward(be, g->xl, q25 ? g->patches : patches, g->N, &w->patch,
                                        NULL, NULL)))
        st = dlv_error_prefix(st, "patch_embed");
    if (!st) {
        dlv_encoder_dims e = d->enc;
        e.per_sequence = 1;
        e.rope_cos = g->cos;
        e.rope_sin = g->sin;
        e.rms_norm = e.glu = q25;
        e.window_lens = q25 ? g->win_lens : NULL;
        e.n_windows = q25 ? g->n_win : 0;
        e.full_attn = q25 ? full : NULL;
        /* HF's cu_seqlens: each frame is its own sequence of h w patches
         * (QWEN25: windows keep within a frame, so its rows stay together). */
        st = dlv_encoder_forward(be, &e, w->layers, w->n_layers, g->xl, g->t, g->hw, NULL, 0,
                                 recompute, with_tape ? &g->enc : NULL, g->xl, gtrace);
        if (st) st = dlv_error_prefix(st, "blocks");
    }
    /* Back to the patches' order for the merger (f is free until then). */
    if (!st && q25) st = permute_units(be, g->f, g->xl, g->unit_src, g->M, unit * D, 0);
    if (!st && q25) st = dlv_copy(be, g->xl, g->f, (size_t)(g->N * D) * sizeof(float));
    if (!st) st = merger_forward(be, d, w, g, out);
    return st;
}

dlv_status dlv_qwen2vl_vit_forward(dlv_backend *be, const dlv_qwen2vl_vit_dims *d,
                                   const dlv_qwen2vl_vit_w *w, const float *patches,
                                   const dlv_qwen2vl_grid *grids, int64_t n_grids, int recompute,
                                   dlv_qwen2vl_vit_tape **tape, float *out, float *trace)
{
    if (tape) *tape = NULL;
    if (!be || !d || !w || !patches || !grids || !out || n_grids < 1 || w->n_layers < 0)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision forward: bad arguments");
    int64_t n_total = 0;
    dlv_status st = check_dims(d);
    if (!st) st = dlv_qwen2vl_vit_rows(d, grids, n_grids, &n_total, NULL);
    if (!st) st = check_weights(be, d, w);
    if (st) return dlv_error_prefix(st, "qwen2-vl vision forward");

    dlv_qwen2vl_vit_tape *t = calloc(1, sizeof *t);
    if (t) t->grids = calloc((size_t)n_grids, sizeof *t->grids);
    if (!t || !t->grids) {
        free(t);
        return dlv_error_nomem("qwen2-vl vision tape", (size_t)n_grids * sizeof(grid_state));
    }
    t->d = *d;
    t->d.fullatt_blocks = NULL; /* read here only */
    t->n_grids = n_grids;
    if (d->variant == DLV_QWEN2VL_VIT_QWEN25) {
        t->full = calloc(w->n_layers ? (size_t)w->n_layers : 1, 1);
        if (!t->full) st = dlv_error_nomem("qwen2.5-vl full-attention flags", (size_t)w->n_layers);
        for (int64_t i = 0; !st && i < d->n_fullatt; i++) {
            const int64_t l = d->fullatt_blocks[i];
            if (l < 0 || l >= w->n_layers)
                st = dlv_error(DLV_E_INVALID_ARG, "qwen2.5-vl vision forward: "
                               "fullatt_block_indexes[%lld] = %lld is not a block (depth %lld)",
                               (long long)i, (long long)l, (long long)w->n_layers);
            else
                t->full[l] = 1;
        }
    }
    const int64_t D = d->enc.hidden, L = w->n_layers;
    const int64_t K = d->in_channels * d->temporal_patch * d->patch * d->patch;
    dlv_buffer tbuf = {0};
    int64_t row = 0, orow = 0, n_max = 0;
    for (int64_t i = 0; i < n_grids; i++) {
        grid_state *g = &t->grids[i];
        g->t = grids[i].t;
        g->hw = (int64_t)grids[i].h * grids[i].w;
        g->N = g->t * g->hw;
        g->M = g->N / (d->merge * d->merge);
        g->row0 = row;
        g->out0 = orow;
        row += g->N;
        orow += g->M;
        if (g->N > n_max) n_max = g->N;
    }
    /* One grid's trace at a time, scattered into the tower's. */
    if (!st && trace)
        st = dlv_buffer_alloc(be, (size_t)((L + 1) * n_max * D) * sizeof(float), &tbuf);
    for (int64_t i = 0; !st && i < n_grids; i++) {
        grid_state *g = &t->grids[i];
        st = grid_forward(be, d, w, t->full, &grids[i], patches + g->row0 * K, recompute,
                          tape != NULL, g, out + g->out0 * d->out_hidden,
                          trace ? PF(tbuf) : NULL);
        if (!st && trace) st = scatter_trace(be, trace, PF(tbuf), L, n_total, g, D);
        if (st) st = dlv_error_prefix(st, "qwen2-vl vision grid %lld", (long long)i);
        if (!tape) grid_free(g); /* nothing kept: free as we go */
    }
    dlv_buffer_free(&tbuf);
    if (st || !tape) {
        dlv_qwen2vl_vit_tape_free(t);
        return st;
    }
    *tape = t;
    return DLV_OK;
}

/* ---- backward ------------------------------------------------------------ */

/* One grid: the merger, the blocks, patch_embed. scratch: 2 [N, D]. */
static dlv_status grid_backward(dlv_backend *be, const dlv_qwen2vl_vit_dims *d,
                                const dlv_qwen2vl_vit_w *w, const dlv_qwen2vl_vit_w *gw,
                                const grid_state *g, const float *dout, float *s1, float *s2)
{
    const int64_t D = d->enc.hidden, ND = g->N * D;
    const size_t bytes = (size_t)ND * sizeof(float);
    const dlv_layernorm_w *n = &w->merger_ln;
    /* g->g still holds GELU(f): every grid has its own. */
    dlv_status st = dlv_linear_backward(be, s1, 0.0f, dout, g->g, g->M, &w->merger_fc2,
                                      gw ? &gw->merger_fc2 : NULL, NULL, NULL, NULL, NULL);
    if (!st) st = dlv_zero(be, s2, bytes);
    if (!st) st = dlv_activation_backward(be, DLV_OP_ACT_GELU, s2, s1, g->f, ND);
    if (!st) st = dlv_linear_backward(be, s1, 0.0f, s2, g->ln, g->M, &w->merger_fc1,
                                      gw ? &gw->merger_fc1 : NULL, NULL, NULL, NULL, NULL);
    if (!st) st = dlv_zero(be, s2, bytes);
    if (!st && d->variant == DLV_QWEN2VL_VIT_QWEN25)
        st = dlv_rmsnorm_backward(be, s2, gw ? dlv_tensor_f32(&gw->merger_ln.w) : NULL, s1,
                                  g->xl, dlv_tensor_data(&n->w), n->w.dtype, g->N, D, 1e-6f);
    else if (!st)
        st = dlv_layernorm_backward(be, s2, gw ? dlv_tensor_f32(&gw->merger_ln.w) : NULL,
                                    gw ? dlv_tensor_f32(&gw->merger_ln.b) : NULL, s1, g->xl,
                                    dlv_tensor_data(&n->w), n->w.dtype, g->N, D, 1e-6f);
    if (st) return dlv_error_prefix(st, "merger (backward)");
    /* dy: the gradient of the blocks' output; dx that of their input. The
     * blocks ran in window order (QWEN25): dy goes there first. */
    float *dy = s2, *dx = s1;
    if (g->unit_src) {
        if ((st = permute_units(be, s1, s2, g->unit_src, g->M, g->N / g->M * D, 1)))
            return dlv_error_prefix(st, "window order (backward)");
        dy = s1;
        dx = s2;
    }
    const int want_patch = gw && dlv_tensor_present(&gw->patch.w);
    if ((st = dlv_encoder_backward(be, w->layers, gw ? gw->layers : NULL, g->enc, dy,
                                   want_patch ? dx : NULL)))
        return dlv_error_prefix(st, "blocks");
    if (want_patch &&
        (st = dlv_linear_backward(be, NULL, 0.0f, dx, g->patches, g->N, &w->patch, &gw->patch,
                                  NULL, NULL, NULL, NULL)))
        return dlv_error_prefix(st, "patch_embed (backward)");
    return DLV_OK;
}

dlv_status dlv_qwen2vl_vit_backward(dlv_backend *be, const dlv_qwen2vl_vit_w *w,
                                    const dlv_qwen2vl_vit_w *gw, dlv_qwen2vl_vit_tape *t,
                                    const float *dout)
{
    if (!be || !w || !t || !dout)
        return dlv_error(DLV_E_INVALID_ARG, "qwen2-vl vision backward: NULL argument");
    int64_t n_max = 0;
    for (int64_t i = 0; i < t->n_grids; i++)
        if (t->grids[i].N > n_max) n_max = t->grids[i].N;
    const size_t plane = (size_t)(n_max * t->d.enc.hidden);
    dlv_buffer sbuf = {0};
    dlv_status st = dlv_buffer_alloc(be, 2 * plane * sizeof(float), &sbuf);
    for (int64_t i = 0; !st && i < t->n_grids; i++) {
        const grid_state *g = &t->grids[i];
        st = grid_backward(be, &t->d, w, gw, g, dout + g->out0 * t->d.out_hidden, PF(sbuf),
                           PF(sbuf) + plane);
        if (st) st = dlv_error_prefix(st, "qwen2-vl vision grid %lld", (long long)i);
    }
    dlv_buffer_free(&sbuf);
    return st;
}
