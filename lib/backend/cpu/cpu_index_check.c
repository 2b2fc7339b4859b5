/* Index arguments (token ids, positions, targets) are device memory, so the
 * checked wrappers cannot read them; each backend checks them inside its op.
 * On the CPU these loops run before any output is written, so a bad index
 * leaves the outputs untouched, as the op contracts promise. */
#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

dlv_status dlv_cpu_check_ids(const char *op, const int32_t *ids, int64_t n, int64_t vocab)
{
    for (int64_t t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= vocab)
            return dlv_error(DLV_E_INVALID_ARG,
                             "%s: token id %d at position %lld is outside the vocabulary "
                             "[0, %lld)", op, (int)ids[t], (long long)t, (long long)vocab);
    return DLV_OK;
}

dlv_status dlv_cpu_check_positions(const char *op, const int32_t *positions, int64_t n)
{
    for (int64_t t = 0; t < n; t++)
        if (positions[t] < 0)
            return dlv_error(DLV_E_INVALID_ARG, "%s: positions[%lld] = %d is negative", op,
                             (long long)t, (int)positions[t]);
    return DLV_OK;
}

dlv_status dlv_cpu_check_targets(const char *op, const int32_t *targets, int64_t n,
                                 int64_t vocab)
{
    for (int64_t i = 0; i < n; i++)
        if (targets[i] < -1 || targets[i] >= vocab)
            return dlv_error(DLV_E_INVALID_ARG,
                             "%s: target %d of row %lld is neither -1 (ignored) nor in "
                             "[0, %lld)", op, (int)targets[i], (long long)i, (long long)vocab);
    return DLV_OK;
}
