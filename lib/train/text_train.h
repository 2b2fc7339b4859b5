/* The language model's training pass (design section C): a forward that
 * saves what the backward needs (a "tape"), and the backward from the
 * final-norm hidden states to the input embeddings, the trained weights of a
 * weight view (train/wview.h) and a LoRA adapter's A and B.
 *
 * Semantics are exactly those of model/text_model.c's forward: right-padded
 * rows (row b real at positions 0 .. lengths[b]-1), causal attention with
 * padded keys masked, the same op sequence, so the hidden states at real
 * positions equal dlv_text_forward_lora's. Padded positions hold what the
 * inference forward computes there and carry no meaning: the backward
 * ignores dhidden at padded positions (treats it as zero) and adds nothing to
 * dembeds there, so no gradient flows from or to padding.
 *
 * Gradients are ACCUMULATED (+=) into caller-zeroed buffers: the view's grad
 * buffers (f32, one per trained weight), lora_grad's params (same layout as
 * the adapter: dlv_lora_create with the same rank/alpha/targets), dembeds.
 * LoRA dropout is not applied (PEFT eval semantics; the caller may train
 * with dropout 0). lm_head and embed_tokens are not handled here.
 *
 * The CPU backend only in this version (host pointers), as the inference
 * forward. */
#ifndef DLV_TRAIN_TEXT_TRAIN_H
#define DLV_TRAIN_TEXT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/lora.h"
#include "train/wview.h"

typedef struct dlv_text_tape dlv_text_tape; /* saved activations of one forward */

/* Runs the decoder on embeds [batch * max_len, hidden] and writes the
 * final-norm hidden state of every position to hidden [batch * max_len,
 * hidden]. recompute = 1 keeps only each layer's input (the backward
 * recomputes the layer: activation recomputation); 0 keeps every activation.
 * *tape receives the saved activations (free with dlv_text_tape_free); tape
 * may be NULL for a forward whose backward is not wanted (nothing is kept).
 * The tape refers to m, wv's weights and lora, which must stay unchanged
 * until the backward. */
dlv_status dlv_text_train_forward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                  const dlv_lora *lora /* NULL ok */, const float *embeds,
                                  const int32_t *lengths, int64_t batch, int64_t max_len,
                                  int recompute, dlv_text_tape **tape, float *hidden);

/* The backward of the forward that made tape, from dhidden [batch * max_len,
 * hidden] (only real positions are read). wv and lora must be those of the
 * forward. Accumulates: the grad of every weight wv marks trained, LoRA grads
 * into lora_grad (NULL: not computed), and dembeds [batch * max_len, hidden]
 * (NULL: not computed; padded rows are left untouched). The tape may be used
 * for one or more backwards and is freed by the caller. */
dlv_status dlv_text_train_backward(const dlv_model *m, dlv_backend *be, const dlv_wview *wv,
                                   const dlv_lora *lora, dlv_lora *lora_grad,
                                   dlv_text_tape *tape, const float *dhidden, float *dembeds);

void dlv_text_tape_free(dlv_text_tape *t);

/* Bytes of activations a tape of this shape keeps (for memory planning). */
size_t dlv_text_tape_bytes(const dlv_model *m, const dlv_lora *lora, int64_t batch,
                           int64_t max_len, int recompute);

#endif
