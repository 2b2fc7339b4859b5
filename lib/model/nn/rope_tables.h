/* The cos/sin tables of Qwen2-VL's rotary embeddings, built on the host
 * for dlv_rope_table (backend/backend.h), which rotates q and k by them.
 * Each builder reproduces transformers 4.46.3's f32 arithmetic:
 *
 *   inv_freq[i] = 1 / theta^((float)(2i) / dim)   (i < dim/2; an f32 exponent,
 *                 theta taken to f32, powf, an f32 divide: as
 *                 _compute_default_rope_parameters and VisionRotaryEmbedding)
 *   angle       = (float)position * inv_freq[i]   (one f32 product: the k = 1
 *                 matmul of Qwen2VLRotaryEmbedding, torch.outer in the tower)
 *   cos, sin    = cosf(angle), sinf(angle)
 *
 * Tables are [n, head_dim / 2] f32: HF's cos/sin are these values repeated
 * twice along the head (cat(freqs, freqs) and repeat(1, 1, 2)), which the
 * rotate-half rotation reads once per pair (i, i + d/2).
 *
 * Host memory only; the caller uploads the tables (dlv_copy_to_device). */
#ifndef DLV_MODEL_NN_ROPE_TABLES_H
#define DLV_MODEL_NN_ROPE_TABLES_H

#include <stdint.h>

#include "disclvlm.h"

/* inv_freq[0, dim / 2) for a rotary dimension dim (even, > 0) and base
 * theta (finite, > 0). */
dlv_status dlv_rope_inv_freq(float *inv_freq, int64_t dim, double theta);

/* Qwen2-VL's multimodal RoPE (Qwen2VLRotaryEmbedding followed by
 * apply_multimodal_rotary_pos_emb): positions is [3, n_tokens] int32 >= 0,
 * the temporal, height and width index of each token (equal for text
 * tokens, which then get plain RoPE); mrope_section [3] >= 0 sums to
 * head_dim / 2 (Qwen2-VL: 16, 24, 24 for head_dim 128). Frequency i takes
 * its position from component 0 for i < s0, 1 for i < s0 + s1, else 2:
 *   cos_out[t, i] = cos(positions[c(i), t] * inv_freq[i]), sin_out likewise,
 * inv_freq over head_dim with base theta (rope_theta). cos_out, sin_out:
 * [n_tokens, head_dim / 2]. */
dlv_status dlv_rope_mrope_tables(float *cos_out, float *sin_out, const int32_t *positions,
                                 int64_t n_tokens, int64_t head_dim,
                                 const int64_t mrope_section[3], double theta);

/* The (row, column) index of each patch of one image or video grid of
 * t x h x w patches, in the order Qwen2VisionTransformerPretrainedModel
 * .rot_pos_emb lists them: the patches come in merge_size x merge_size
 * blocks (the ones the merger fuses into one token), blocks in row-major
 * order, patches row-major inside a block, and the whole frame repeated t
 * times. hpos, wpos: [t * h * w]. h and w must be multiples of merge_size
 * (> 0); t, h, w > 0. Several grids (images) are consecutive runs. */
dlv_status dlv_rope_vision_patch_ids(int32_t *hpos, int32_t *wpos, int64_t t, int64_t h,
                                     int64_t w, int64_t merge_size);

/* The vision tower's 2-D RoPE (VisionRotaryEmbedding(head_dim / 2) and
 * apply_rotary_pos_emb_vision): with q = head_dim / 4 frequencies
 * inv_freq over dim head_dim / 2 (base theta, 10000 in Qwen2-VL), the
 * angles of patch p are cat(hpos[p] * inv_freq, wpos[p] * inv_freq), i.e.
 *   angle[p, j] = hpos[p] * inv_freq[j], angle[p, q + j] = wpos[p] * inv_freq[j]
 * cos_out, sin_out: [n_patches, head_dim / 2]. head_dim a multiple of 4;
 * hpos, wpos >= 0 (from dlv_rope_vision_patch_ids). */
dlv_status dlv_rope_vision_tables(float *cos_out, float *sin_out, const int32_t *hpos,
                                  const int32_t *wpos, int64_t n_patches, int64_t head_dim,
                                  double theta);

#endif
