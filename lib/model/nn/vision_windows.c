/* Qwen2.5-VL's window layout (see vision_windows.h). */
#include "model/nn/vision_windows.h"

#include "core/error.h"

dlv_status dlv_vision_windows(int64_t t, int64_t uh, int64_t uw, int64_t side,
                              int64_t *unit_src, int64_t *lens, int64_t *n_windows)
{
    if (t < 1 || uh < 1 || uw < 1 || side < 1 || !unit_src || !lens || !n_windows)
        return dlv_error(DLV_E_INVALID_ARG, "vision windows: bad arguments (t %lld, units "
                         "%lld x %lld, side %lld)", (long long)t, (long long)uh, (long long)uw,
                         (long long)side);
    int64_t j = 0, k = 0;
    for (int64_t f = 0; f < t; f++)
        for (int64_t r0 = 0; r0 < uh; r0 += side)
            for (int64_t c0 = 0; c0 < uw; c0 += side) {
                /* Cut at the edges: HF's padded entries never reach the order. */
                const int64_t r1 = r0 + side < uh ? r0 + side : uh;
                const int64_t c1 = c0 + side < uw ? c0 + side : uw;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t c = c0; c < c1; c++) unit_src[j++] = (f * uh + r) * uw + c;
                lens[k++] = (r1 - r0) * (c1 - c0);
            }
    *n_windows = k;
    return DLV_OK;
}
