/* Qwen2-VL's vision tower (Qwen2VisionTransformerPretrainedModel,
 * transformers 4.46.3) and Qwen2.5-VL's (Qwen2_5_VisionTransformer-
 * PretrainedModel, transformers 4.51.3, variant QWEN25 below), forward and
 * backward on device tensors. For each
 * grid (an image, or a video of t frames) of t x h x w patches, N = t h w:
 *   x     = patches W_patch^T       PatchEmbed: a Conv3d with kernel = stride
 *                                   = (T, P, P), no bias, on the flattened
 *                                   patch [N, C T P P] (image/qwen2vl.h)
 *   x     = blocks(x)               the pre-LN encoder (model/nn/encoder.h):
 *                                   LayerNorm eps 1e-6, fused qkv split into
 *                                   q, k, v, 2-D rotary on q and k, full
 *                                   attention within each frame (HF's
 *                                   cu_seqlens: t sequences of h w patches),
 *                                   QuickGELU MLP
 *   out   = merger(x)               PatchMerger: ln_q on each patch, then
 *                                   merge^2 consecutive patches as one row
 *                                   [N / merge^2, D merge^2] (the image
 *                                   processor lists them in merge x merge
 *                                   blocks), Linear -> GELU (erf) -> Linear
 *                                   to the language model's hidden size
 * The blocks are the shared encoder with rotary tables rather than a copy
 * of it: Qwen2-VL's block is CLIP's layer plus the rotation of q and k.
 *
 * Qwen2.5-VL's tower is the same pipeline with three changes, options of
 * the same code: RMSNorm (eps 1e-6, weight only) for norm1, norm2 and
 * ln_q; a SwiGLU MLP with biases, down(silu(gate(x)) * up(x)); and window
 * attention. For the latter the merged units (merge x merge patches) of
 * each frame are tiled by windows of window_size / merge / patch units a
 * side, the last row and column of windows cut short at the bottom and
 * right edges; the patch rows and the rotary tables are put in window
 * order (frame by frame, windows row-major, units row-major inside a
 * window: HF's get_window_index), every block not in fullatt_blocks
 * attends within each window, those in it over each whole frame, and
 * the merger's input goes back to the patches' order (HF reorders its
 * output instead; the merger is row-wise, so it is the same).
 * Every GEMM and attention call covers one grid, so a grid's features do
 * not depend on its batch companions, bit for bit. */
#ifndef DLV_MODEL_NN_QWEN2VL_VIT_H
#define DLV_MODEL_NN_QWEN2VL_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"
#include "image/qwen2vl.h"
#include "model/nn/encoder.h"
#include "model/nn/linear.h"

/* The tower's weights, HF names under "visual.":
 *   patch       patch_embed.proj.weight [D, C, T, P, P] viewed [D, C T P P]
 *   layers[i]   blocks.i: ln1 = norm1, ln2 = norm2, lin[Q, K, V] = rows
 *               [0, D), [D, 2D), [2D, 3D) of attn.qkv (dlv_qwen2vl_vit_split_qkv),
 *               lin[O] = attn.proj, lin[FC1] = mlp.fc1, lin[FC2] = mlp.fc2;
 *               QWEN25: ln1, ln2 weight only, lin[FC1] = mlp.gate_proj,
 *               up = mlp.up_proj, lin[FC2] = mlp.down_proj
 *   merger_ln   merger.ln_q [D] (QWEN25: weight only)
 *   merger_fc1  merger.mlp.0 [D m^2, D m^2] (+ bias)
 *   merger_fc2  merger.mlp.2 [hidden_size, D m^2] (+ bias)
 * A gradient set has the same layout (f32; absent tensors are frozen). */
typedef struct dlv_qwen2vl_vit_w {
    dlv_linear patch;
    int64_t n_layers;
    dlv_encoder_layer_w *layers;
    dlv_layernorm_w merger_ln;
    dlv_linear merger_fc1, merger_fc2;
} dlv_qwen2vl_vit_w;

/* Qwen2VLVisionConfig: in_channels, patch_size, temporal_patch_size,
 * spatial_merge_size, hidden_size (the merger's output), the rotary base
 * (10000: VisionRotaryEmbedding's default, not in the config), and the
 * blocks: enc.hidden = embed_dim, enc.inter = embed_dim * mlp_ratio,
 * enc.n_heads = num_heads, enc.eps = 1e-6, enc.act = QUICK_GELU (hidden_act),
 * enc.causal = 0; enc.per_sequence and enc.rope_* are the tower's own (set
 * per call, whatever the caller gives). */
typedef enum dlv_qwen2vl_vit_variant {
    DLV_QWEN2VL_VIT_QWEN2 = 0,   /* Qwen2-VL */
    DLV_QWEN2VL_VIT_QWEN25,      /* Qwen2.5-VL */
} dlv_qwen2vl_vit_variant;

/* QWEN25 (Qwen2_5_VLVisionConfig): enc.hidden = hidden_size (the embed
 * dim), enc.inter = intermediate_size, enc.act = SILU (hidden_act),
 * out_hidden = out_hidden_size; window_size in pixels (112), a multiple of
 * merge * patch; fullatt_blocks (host, n_fullatt entries, read during the
 * forward only) = fullatt_block_indexes. The tower sets enc.rms_norm,
 * enc.glu and the windows itself (whatever the caller gives). */
typedef struct dlv_qwen2vl_vit_dims {
    int64_t in_channels, patch, temporal_patch, merge, out_hidden;
    double rope_theta;
    dlv_encoder_dims enc;
    dlv_qwen2vl_vit_variant variant;
    int64_t window_size;
    const int64_t *fullatt_blocks;
    int64_t n_fullatt;
} dlv_qwen2vl_vit_dims;

/* q, k, v: views of rows [0, D), [D, 2D), [2D, 3D) of the fused qkv linear
 * (weight [3 D, D], optional bias [3 D]), as HF's reshape(N, 3, heads,
 * head_dim) reads its output. DLV_E_INVALID_ARG naming `name` when the
 * shape is not that. Works for a gradient set as well. */
dlv_status dlv_qwen2vl_vit_split_qkv(const dlv_linear *qkv, int64_t hidden, const char *name,
                                     dlv_linear *q, dlv_linear *k, dlv_linear *v);

/* Checks the grids against the dims (t, h, w > 0; h, w multiples of
 * merge) and returns the number of patch rows they hold and of output rows
 * (N / merge^2 summed). Either count pointer may be NULL. */
dlv_status dlv_qwen2vl_vit_rows(const dlv_qwen2vl_vit_dims *d, const dlv_qwen2vl_grid *grids,
                                int64_t n_grids, int64_t *n_patches, int64_t *n_out);

typedef struct dlv_qwen2vl_vit_tape dlv_qwen2vl_vit_tape;

/* Runs the tower on patches [N, C T P P] (device; the grids' rows one
 * after another, N = sum of t h w) and writes out [N / merge^2,
 * out_hidden] (device). tape: NULL keeps nothing; otherwise *tape receives
 * what the backward needs (with recompute, each block's input only). trace
 * (device, optional) [n_layers + 1, N, D]: patch_embed's output, then each
 * block's output (the merger's input last), in the patches' order for
 * QWEN25 too. w must stay unchanged until the backward. */
dlv_status dlv_qwen2vl_vit_forward(dlv_backend *be, const dlv_qwen2vl_vit_dims *d,
                                   const dlv_qwen2vl_vit_w *w, const float *patches,
                                   const dlv_qwen2vl_grid *grids, int64_t n_grids, int recompute,
                                   dlv_qwen2vl_vit_tape **tape, float *out, float *trace);

/* Accumulates (+=) the gradients of the weights gw marks present for dout
 * [N / merge^2, out_hidden] (device). */
dlv_status dlv_qwen2vl_vit_backward(dlv_backend *be, const dlv_qwen2vl_vit_w *w,
                                    const dlv_qwen2vl_vit_w *gw, dlv_qwen2vl_vit_tape *tape,
                                    const float *dout);

void dlv_qwen2vl_vit_tape_free(dlv_qwen2vl_vit_tape *t);
/* Bytes of device memory the tape holds (0 for NULL). */
size_t dlv_qwen2vl_vit_tape_bytes(const dlv_qwen2vl_vit_tape *t);

#endif
