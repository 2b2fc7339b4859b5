/* The decoder stack of Llama / Mistral / Qwen2 (Hugging Face's LlamaModel /
 * Qwen2Model in eval mode, docs/models.md "Forward pass"), forward and
 * backward, on device tensors. One implementation serves encoding (no
 * tape) and training (a tape of what the backward reads).
 *
 * Per layer, with n = batch * len token rows:
 *   x1    = rmsnorm(h_in, ln1)
 *   q,k,v = linear(x1) (+ biases, + LoRA); q, k rotated (RoPE, rotate-half;
 *           by the token's position, or by caller tables: M-RoPE)
 *   att   = attention(q, k, v)        causal, padded keys masked, GQA,
 *                                     scale head_dim^-0.5
 *   h_mid = h_in + linear_o(att)
 *   x2    = rmsnorm(h_mid, ln2)
 *   h_out = h_mid + linear_down(silu(linear_gate(x2)) * linear_up(x2))
 * then hidden = rmsnorm(h_last, norm).
 *
 * Rows are right-padded: row b holds lengths[b] real tokens at positions
 * 0 .. lengths[b]-1; padded keys are never attended to, so a sequence's
 * results do not depend on its companions. The backward reads dhidden only
 * at real positions and adds nothing to dx at padded ones. */
#ifndef DLV_MODEL_NN_DECODER_H
#define DLV_MODEL_NN_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/tensor.h"
#include "model/nn/linear.h"

/* The linear modules of a layer, in LoRA's module order (model/lora.h). */
enum { DLV_DEC_Q, DLV_DEC_K, DLV_DEC_V, DLV_DEC_O, DLV_DEC_GATE, DLV_DEC_UP, DLV_DEC_DOWN,
       DLV_DEC_N_LINEAR };

typedef struct dlv_decoder_layer_w {
    dlv_tensor ln1, ln2;                   /* RMSNorm weights [hidden] */
    dlv_linear lin[DLV_DEC_N_LINEAR];
} dlv_decoder_layer_w;

typedef struct dlv_decoder_w {
    int64_t n_layers;
    dlv_decoder_layer_w *layers;           /* [n_layers] */
    dlv_tensor norm;                       /* the final RMSNorm [hidden] */
} dlv_decoder_w;

typedef struct dlv_decoder_dims {
    int64_t hidden, inter, n_heads, n_kv_heads, head_dim;
    float eps;                             /* rms_norm_eps */
    double theta;                          /* rope_theta */
} dlv_decoder_dims;

/* LoRA on the decoder: pairs[layer * DLV_DEC_N_LINEAR + module] (pairs with
 * a NULL: not targeted), all of one rank. NULL: none. */
typedef struct dlv_decoder_lora {
    const dlv_lora_pair *pairs;
    int64_t rank;
} dlv_decoder_lora;

typedef struct dlv_decoder_tape dlv_decoder_tape;

/* Rotary tables that replace the 1-D positions (Qwen2-VL's multimodal RoPE,
 * where a token's angle per frequency comes from its temporal, height or
 * width index): cos, sin [batch * len, head_dim / 2] f32 device memory, one
 * row per token of the padded batch (model/nn/rope_tables.h builds them;
 * padded rows may hold anything finite). q and k of every layer are rotated
 * by dlv_rope_table; d->theta is then unused. */
typedef struct dlv_decoder_rope {
    const float *cos, *sin;
} dlv_decoder_rope;

/* Runs the decoder on x [batch * len, hidden] (device; read only) and writes
 * the final-norm hidden state of every row to hidden [batch * len, hidden]
 * (device). lengths (host) [batch], each in [1, len].
 * tape: NULL keeps nothing (the least memory); otherwise *tape receives what
 * the backward reads: every activation, or with recompute only each layer's
 * input (the backward recomputes the layer). The tape refers to w and lora,
 * which must stay unchanged until the backward.
 * trace (device, optional): [n_layers + 1, batch * len, hidden] as Hugging
 * Face's hidden_states: the input, each layer's output but the last, and the
 * final-norm output. */
dlv_status dlv_decoder_forward(dlv_backend *be, const dlv_decoder_dims *d,
                               const dlv_decoder_w *w, const dlv_decoder_lora *lora,
                               const float *x, const int32_t *lengths, int64_t batch,
                               int64_t len, int recompute, dlv_decoder_tape **tape,
                               float *hidden, float *trace);

/* dlv_decoder_forward with rotary tables (rope non-NULL) in place of the
 * positions 0 .. len-1; rope NULL is dlv_decoder_forward. The tape refers
 * to the tables too: they must stay unchanged until the backward. */
dlv_status dlv_decoder_forward_rope(dlv_backend *be, const dlv_decoder_dims *d,
                                    const dlv_decoder_w *w, const dlv_decoder_lora *lora,
                                    const dlv_decoder_rope *rope, const float *x,
                                    const int32_t *lengths, int64_t batch, int64_t len,
                                    int recompute, dlv_decoder_tape **tape, float *hidden,
                                    float *trace);

/* The backward of the forward that made tape, for dhidden [batch * len,
 * hidden] (device; only real rows are read). Accumulates (+=) the gradients
 * of the weights gw marks present (gw NULL: all frozen), of the LoRA pairs
 * in glora (NULL: frozen; same layout as lora), and dx [batch * len, hidden]
 * at real rows (NULL: not wanted). w and lora must be the forward's. */
dlv_status dlv_decoder_backward(dlv_backend *be, const dlv_decoder_w *w,
                                const dlv_decoder_w *gw, const dlv_decoder_lora *lora,
                                const dlv_lora_pair_grad *glora, dlv_decoder_tape *tape,
                                const float *dhidden, float *dx);

void dlv_decoder_tape_free(dlv_decoder_tape *t);

/* Bytes of device memory a tape of this shape holds. */
size_t dlv_decoder_tape_bytes(const dlv_decoder_dims *d, int64_t n_layers, int64_t lora_rank,
                              int64_t batch, int64_t len, int recompute);

#endif
