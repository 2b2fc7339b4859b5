/* The image half of LLaVA: the vision tower (CLIP ViT or SigLIP) up to the
 * layer LLaVA reads, the feature selection, and the multimodal projector.
 * Matches LlavaForConditionalGeneration.get_image_features of transformers
 * 4.46.3 in f32 (docs/models.md, "Forward pass"):
 *
 *   hidden_states[0]   embeddings (CLIP: class token + patches + positions,
 *                      then pre_layrnorm; SigLIP: patches + bias + positions)
 *   hidden_states[i]   after encoder layer i (1-based)
 *   selected           hidden_states[vision_feature_layer] (negative counts
 *                      from the end of the L + 1 entries); strategy "default"
 *                      drops token 0 of every image (also for SigLIP, which
 *                      has no class token: HF does so), "full" keeps all
 *   features           linear_2(act(linear_1(selected))), biases when
 *                      multimodal_projector_bias
 *
 * Only the layers up to the selected one run. Weights are read in place
 * (mmapped, any dtype the ops accept); activations are f32. */
#ifndef DLV_MODEL_LLAVA_VISION_TOWER_H
#define DLV_MODEL_LLAVA_VISION_TOWER_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "model/config.h"

/* Tokens in the tower's sequence per image: patches (+1 for CLIP's class
 * token). */
int64_t dlv_vision_seq_len(const dlv_llava_config *cfg);
/* Index into hidden_states LLaVA reads (0 = embeddings, L = last layer), which
 * is also the number of encoder layers that run; -1 if the config's
 * vision_feature_layer is outside [-(L+1), L]. */
int64_t dlv_vision_select_index(const dlv_llava_config *cfg);
/* Feature tokens per image after selection (what one image token expands
 * to). */
int64_t dlv_vision_n_tokens(const dlv_llava_config *cfg);

/* Optional captures for tests and debugging; any pointer may be NULL. Each
 * buffer's capacity in floats must be at least the size given, else
 * DLV_E_BUFFER_TOO_SMALL:
 *   hidden_states  [select_index + 1, n_images, seq_len, vision_hidden]
 *   selected       [n_images, n_tokens, vision_hidden] */
typedef struct dlv_vision_trace {
    float *hidden_states;
    size_t hidden_states_len;
    float *selected;
    size_t selected_len;
} dlv_vision_trace;

/* Runs the tower and projector on n_images preprocessed images.
 *   pixels  [n_images, num_channels, image_size, image_size] f32, host memory
 *   out     [n_images, n_tokens, text_hidden] f32, host memory; out_len is its
 *           capacity in floats (too small: DLV_E_BUFFER_TOO_SMALL)
 * be computes (a session's backend); for now it and the model's backend must
 * be "cpu" (DLV_E_UNSUPPORTED otherwise). n_images == 0 writes nothing.
 *
 * Scratch, allocated on be per call and freed on every path, in floats with
 * N = n_images, S = seq_len, F = n_tokens, D / I = vision hidden /
 * intermediate, T = text hidden, K = channels * patch^2, P = patches:
 *   5*N*S*D (residual stream, norm/attention output, q, k, v)
 *   + N*S*I (MLP) + N*P*K (unfolded patches) + N*F*T (projector middle),
 * each part rounded up to 16 floats. For llava-1.5 (CLIP ViT-L/336, T =
 * 4096) that is about 32 MB per image.
 * The result for an image does not depend on the other images of the batch
 * (rows are independent; attention is per image). */
dlv_status dlv_vision_forward(const dlv_model *m, dlv_backend *be, const float *pixels,
                              int64_t n_images, float *out, size_t out_len,
                              const dlv_vision_trace *trace);

/* dlv_vision_forward without a trace. */
dlv_status dlv_vision_features(const dlv_model *m, dlv_backend *be, const float *pixels,
                               int64_t n_images, float *out, size_t out_len);

#endif
