/* Qwen2-VL's position ids for multimodal RoPE (transformers 4.46.3,
 * Qwen2VLForConditionalGeneration.get_rope_index), on the host.
 *
 * Every token has three indices (temporal, height, width). A text token has
 * all three equal to a running index. An image whose patch grid is
 * (t, h, w) stands for t * (h / m) * (w / m) placeholder tokens (m the
 * vision tower's spatial_merge_size: the merger fuses m x m patches into
 * one token), in (t, h, w) row-major order; the token at (i, j, k) of the
 * merged grid gets (s + i, s + j, s + k), s the index after the preceding
 * text. Text after an image continues at s + max(t, h / m, w / m), one past
 * the largest index the image used.
 *
 * Positions are [3, n] int32 (component-major), what
 * dlv_rope_mrope_tables (model/nn/rope_tables.h) reads. Videos and the
 * generation-time deltas (mrope_position_deltas) are not covered. */
#ifndef DLV_MODEL_QWEN2VL_POSITIONS_H
#define DLV_MODEL_QWEN2VL_POSITIONS_H

#include <stdint.h>

#include "disclvlm.h"

/* One part of a sequence: n_text text tokens (grid_t == 0), or one image of
 * patch grid (grid_t, grid_h, grid_w) (grid_t > 0; n_text is then unused).
 * grid_h and grid_w must be multiples of the merge size. */
typedef struct dlv_qwen2vl_span {
    int64_t n_text;
    int64_t grid_t, grid_h, grid_w;
} dlv_qwen2vl_span;

/* The number of tokens of the sequence spans[0 .. n_spans) describes, into
 * *n_tokens; DLV_E_INVALID_ARG naming the span and field when a span is
 * malformed or the total exceeds INT32_MAX. */
dlv_status dlv_qwen2vl_span_tokens(const dlv_qwen2vl_span *spans, int64_t n_spans,
                                   int64_t merge_size, int64_t *n_tokens);

/* positions [3, n_tokens] of the sequence; n_tokens must be what
 * dlv_qwen2vl_span_tokens gives. */
dlv_status dlv_qwen2vl_positions(int32_t *positions, int64_t n_tokens,
                                 const dlv_qwen2vl_span *spans, int64_t n_spans,
                                 int64_t merge_size);

/* The ids that mark images in a prompt, and the tower's merge size. */
typedef struct dlv_qwen2vl_marks {
    int32_t image_token_id;
    int64_t merge_size;
} dlv_qwen2vl_marks;

/* get_rope_index for a right-padded batch ids [batch, len] (host), row b
 * holding lengths[b] (in [1, len]) real tokens, the images' patch grids
 * grid_thw [n_images, 3] in order of appearance over the rows. Runs of
 * image_token_id are the images' placeholders, taken image by image: each
 * image takes exactly as many as its grid says, every grid is used and no
 * placeholder is left over (Hugging Face finds images by
 * vision_start_token_id followed by an image token; in a prompt built by
 * Qwen2-VL's processor the two agree). Text is every other token, vision_start/end included.
 * positions [3, batch, len]; padded entries are 1, as Hugging Face fills
 * them. */
dlv_status dlv_qwen2vl_rope_index(int32_t *positions, const int32_t *ids,
                                  const int32_t *lengths, int64_t batch, int64_t len,
                                  const int64_t (*grid_thw)[3], int64_t n_images,
                                  const dlv_qwen2vl_marks *marks);

#endif
