/* The pre-LN transformer encoder layer stack of CLIP's and SigLIP's towers
 * (vision: CLIPEncoderLayer / SiglipEncoderLayer; text: CLIP's, with its
 * causal mask), forward and backward, on device tensors. One
 * implementation serves encoding (no tape) and training (a tape).
 *
 * Per layer, with n sequences of S rows each (R = n S):
 *   h1 = layernorm(x, ln1);   q, k, v = linear(h1)
 *   q, k = rope(q), rope(k)   (only with rotary tables: Qwen2-VL's tower)
 *   a  = attention(q, k, v)   (scale head_dim^-0.5; causal and masked
 *                              padded keys for text)
 *   x2 = x + linear_o(a);     h2 = layernorm(x2, ln2)
 *   f  = linear_fc1(h2);      x' = x2 + linear_fc2(act(f))
 *
 * per_sequence runs every GEMM on one sequence's S rows, so a sequence's
 * result does not depend on its batch companions bit for bit (the vision
 * towers); otherwise GEMMs span all R rows.
 *
 * Qwen2.5-VL's tower changes three things, as options (dims below): the
 * norms are RMSNorm (rms_norm), the MLP is gated (glu: x' = x2 +
 * down(silu(gate(h2)) * up(h2)), lin[FC1] = gate, up, lin[FC2] = down),
 * and attention may run within windows (runs of rows) instead of over
 * each sequence, layer by layer. */
#ifndef DLV_MODEL_NN_ENCODER_H
#define DLV_MODEL_NN_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"
#include "model/nn/linear.h"

enum { DLV_ENC_Q, DLV_ENC_K, DLV_ENC_V, DLV_ENC_O, DLV_ENC_FC1, DLV_ENC_FC2,
       DLV_ENC_N_LINEAR };

/* torch.nn.LayerNorm's weight and bias [hidden]. */
typedef struct dlv_layernorm_w {
    dlv_tensor w, b;
} dlv_layernorm_w;

typedef struct dlv_encoder_layer_w {
    dlv_layernorm_w ln1, ln2;   /* with rms_norm: w only (b absent) */
    dlv_linear lin[DLV_ENC_N_LINEAR];
    dlv_linear up;              /* glu only: the MLP's up projection */
} dlv_encoder_layer_w;

typedef struct dlv_encoder_dims {
    int64_t hidden, inter, n_heads;
    float eps;            /* layer_norm_eps */
    dlv_op_act act;       /* the MLP's activation */
    int causal;           /* CLIP's text tower */
    int per_sequence;     /* GEMMs per sequence (see above) */
    /* Rotary tables (dlv_rope_table) applied to q and k after their
     * projections, device f32 [n * S, head_dim / 2] each, or both NULL:
     * no rotary (CLIP, SigLIP). Qwen2-VL's vision tower gives each patch
     * its 2-D angles (model/nn/rope_tables.h). Per-call data rather than a
     * shape, kept by the tape like key_mask: they must stay unchanged until
     * the backward. */
    const float *rope_cos, *rope_sin;
    /* Qwen2.5-VL (all 0 / NULL otherwise). rms_norm: ln1, ln2 are RMSNorm
     * (eps above). glu: the SwiGLU MLP (act must be SILU). Windows: when
     * n_windows > 0, window_lens (host, > 0 each, summing to n * S) split
     * the rows into consecutive runs, and a layer l with full_attn[l] == 0
     * (host [n_layers], NULL: none full) attends within each run; the other
     * layers attend over each sequence of S rows. Both arrays are kept by
     * the tape: unchanged until the backward. No key_mask with windows. */
    int rms_norm, glu;
    const int64_t *window_lens;
    int64_t n_windows;
    const uint8_t *full_attn;
} dlv_encoder_dims;

typedef struct dlv_encoder_tape dlv_encoder_tape;

/* Runs layers [0, n_layers) on x [n * S, hidden] (device, read only) into
 * out [n * S, hidden] (device; may be x). key_mask (device [n * S] uint8,
 * 0 = padding) or NULL. tape: NULL keeps nothing; otherwise *tape receives
 * the activations of layers [save_from, n_layers) (all of each, or only
 * each layer's input with recompute), which the backward needs down to
 * layer save_from. trace (device, optional) [n_layers + 1, n * S, hidden]:
 * the input and every layer's output. w must stay unchanged until the
 * backward. */
dlv_status dlv_encoder_forward(dlv_backend *be, const dlv_encoder_dims *d,
                               const dlv_encoder_layer_w *w, int64_t n_layers, const float *x,
                               int64_t n, int64_t S, const uint8_t *key_mask, int64_t save_from,
                               int recompute, dlv_encoder_tape **tape, float *out, float *trace);

/* The backward of that forward for dout [n * S, hidden] (device), from the
 * last layer down to layer save_from: accumulates (+=) the gradients of
 * the weights gw marks present (gw NULL: all frozen; indexed like w) and,
 * if dx is not NULL, sets dx [n * S, hidden] (device) to the gradient of
 * layer save_from's input. */
dlv_status dlv_encoder_backward(dlv_backend *be, const dlv_encoder_layer_w *w,
                                const dlv_encoder_layer_w *gw, dlv_encoder_tape *tape,
                                const float *dout, float *dx);

void dlv_encoder_tape_free(dlv_encoder_tape *t);
/* Bytes of device memory the tape holds (0 for NULL). */
size_t dlv_encoder_tape_bytes(const dlv_encoder_tape *t);

#endif
