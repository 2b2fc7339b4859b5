/* Qwen2.5-VL's window layout of a vision grid (transformers 4.51.3's
 * Qwen2_5_VisionTransformerPretrainedModel.get_window_index), host only.
 *
 * A grid of t frames of h x w patches holds t x (h / m) x (w / m) merged
 * units (m = spatial_merge_size; the image processor lists each unit's m^2
 * patches consecutively). Each frame's units are tiled by windows of
 * side units a side from the top left; the last window row and column are
 * cut at the bottom and right edges (HF pads the index grid with -100 and
 * drops those entries, and drops the windows left empty). The window order
 * lists frames in turn, each frame's windows row-major, each window's
 * units row-major. */
#ifndef DLV_MODEL_NN_VISION_WINDOWS_H
#define DLV_MODEL_NN_VISION_WINDOWS_H

#include <stdint.h>

#include "disclvlm.h"

/* For a grid of t frames of uh x uw units and windows of `side` units
 * (all > 0): unit_src[j] (t uh uw entries) = the unit, in the grid's own
 * order, at position j of the window order; lens[k] = the number of units
 * of window k, *n_windows of them (at most t uh uw: size lens so). */
dlv_status dlv_vision_windows(int64_t t, int64_t uh, int64_t uw, int64_t side,
                              int64_t *unit_src, int64_t *lens, int64_t *n_windows);

#endif
