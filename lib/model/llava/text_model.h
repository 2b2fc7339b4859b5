/* The language model (decoder) of a LLaVA checkpoint: Llama / Mistral and
 * Qwen2, run on the backend's compute ops. Internal API (not exported).
 *
 * The forward pass matches Hugging Face's LlamaModel / Qwen2Model in eval
 * mode with an attention_mask (docs/models.md, "Forward pass"): per layer
 * RMSNorm -> q/k/v projections (+ biases where the checkpoint has them) ->
 * RoPE (rotate-half, rope_theta) -> causal grouped-query attention with
 * scale head_dim^-0.5 and padded keys masked -> o_proj -> residual;
 * RMSNorm -> SiLU(gate) * up -> down_proj -> residual; then the final norm.
 *
 * Batches are right-padded: row b holds lengths[b] real tokens at positions
 * 0 .. lengths[b]-1, followed by padding whose values are never attended to,
 * so a sequence's results do not depend on its batch companions or on the
 * amount of padding. All buffers are host memory; in this version the
 * forward pass runs on the CPU backend only (its device pointers are host
 * pointers), other backends give DLV_E_UNSUPPORTED. */
#ifndef DLV_MODEL_LLAVA_TEXT_MODEL_H
#define DLV_MODEL_LLAVA_TEXT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/config.h"

/* Whether the forward pass supports this text config: rope_scaling other
 * than none/"default" and a hidden_act other than silu are DLV_E_UNSUPPORTED
 * naming the field. label (the model directory) prefixes messages. */
dlv_status dlv_text_check_config(const dlv_llava_config *cfg, const char *label);

/* Whether m's language model can run on be: dlv_text_check_config plus the
 * backend check. dlv_text_forward calls it; callers may call it once at
 * set-up time to fail early. */
dlv_status dlv_text_check(const dlv_model *m, const dlv_backend *be);

/* out[t, :] = embed_tokens[ids[t], :] widened to f32, for n ids; out_len
 * (in floats) must be >= n * hidden_size. An id outside the vocabulary is
 * DLV_E_INVALID_ARG naming it and its position. */
dlv_status dlv_text_embed_ids(const dlv_model *m, dlv_backend *be, const int32_t *ids,
                              int64_t n, float *out, size_t out_len);

/* be: the CPU backend to compute on (the model's own or a session's); a
 * backend serves one thread at a time, while the model is only read, so
 * threads with their own backends may share one model.
 *
 * Runs the decoder on embeds [batch, max_len, hidden] (row b's first
 * lengths[b] positions real, 1 <= lengths[b] <= max_len).
 *   last_hidden [batch, hidden] (last_len floats, >= batch * hidden): the
 *       final-norm hidden state at each row's last real position.
 *   all_hidden, optional (NULL, all_len 0): [L + 1, batch, max_len, hidden]
 *       as Hugging Face's hidden_states tuple: index 0 the input embeddings,
 *       index i (1 <= i < L) the output of layer i-1, index L the last
 *       layer's output after the final norm. Padded positions hold what HF
 *       computes there (queries see the real keys); they carry no meaning.
 * Scratch memory is allocated per call and freed on every path. */
dlv_status dlv_text_forward(const dlv_model *m, dlv_backend *be, const float *embeds,
                            const int32_t *lengths, int64_t batch, int64_t max_len,
                            float *last_hidden, size_t last_len, float *all_hidden,
                            size_t all_len);

/* dlv_text_forward with a LoRA adapter on the decoder's linear layers
 * (model/lora.h; NULL for none): every targeted module computes
 * W x + b + scale * B (A x), as PEFT's LoRA layer does in eval mode. */
struct dlv_lora;
dlv_status dlv_text_forward_lora(const dlv_model *m, dlv_backend *be, const struct dlv_lora *lora,
                                 const float *embeds, const int32_t *lengths, int64_t batch,
                                 int64_t max_len, float *last_hidden, size_t last_len,
                                 float *all_hidden, size_t all_len);

#endif
