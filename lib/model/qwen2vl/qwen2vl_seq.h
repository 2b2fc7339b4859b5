/* Qwen2-VL / Qwen2.5-VL on the LLaVA kind's sequences (model/seq.h): the
 * images' features, and the multimodal RoPE tables of a padded batch.
 *
 * An image part of a sequence (rows with a grid) takes M-RoPE positions
 * from its patch grid, every other part (ids, soft prompt rows) counts as
 * text: model/qwen2vl/positions.h, which is get_rope_index of transformers
 * 4.46.3 on the same sequence. A text-only sequence gets positions
 * 0 .. n-1 in all three components, i.e. plain RoPE. */
#ifndef DLV_MODEL_QWEN2VL_QWEN2VL_SEQ_H
#define DLV_MODEL_QWEN2VL_QWEN2VL_SEQ_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "model/llava/llava.h"
#include "model/nn/decoder.h"
#include "model/seq.h"

/* The rotary tables of n sequences right-padded to len (lengths [n], as
 * dlv_seq_batch_build gives them): *buf (device) holds cos then sin
 * [n len, head_dim / 2] each, *rope points into it. Padded rows are angle 0.
 * DLV_E_INVALID_ARG when an image part's row count is not its grid's
 * token count. */
dlv_status dlv_qwen2vl_seq_rope(dlv_backend *be, const dlv_llava_dims *d, const dlv_seq *seqs,
                                int64_t n, const int32_t *lengths, int64_t len, dlv_buffer *buf,
                                dlv_decoder_rope *rope);

/* Decodes and preprocesses images[0, n) with the model's image processor
 * (image/qwen2vl.h) and runs the tower and merger one image at a time with
 * weights w (the model's, or a trainer's), so that an image's features do
 * not depend on its batch companions. Messages name the image. */
dlv_status dlv_qwen2vl_image_features(const dlv_model *m, dlv_backend *be, const dlv_llava_w *w,
                                      const dlv_image *const *images, size_t n,
                                      dlv_llava_feats *out);

/* The most features one image can give under the model's image processor
 * (max_pixels), for bounds that must hold before the image is seen. */
int64_t dlv_qwen2vl_max_features(const dlv_model *m);

#endif
