/* Attention on the CPU: the empty cases here, everything else in the fused
 * kernel (cpu_flash.c), which never forms an n_q x n_kv score matrix. */
#include "backend/cpu/cpu_internal.h"
#include "core/error.h"

dlv_status dlv_cpu_attention(dlv_backend *be, const dlv_attention_args *a)
{
    if (a->batch == 0 || a->n_q == 0 || a->n_heads == 0) return DLV_OK;
    int64_t d = a->head_dim, ldq = a->n_heads * d;
    if (a->n_kv == 0 || d == 0) {
        /* Nothing to attend to (every row fully masked), or empty heads. */
        for (int64_t r = 0; r < a->batch * a->n_q; r++)
            for (int64_t c = 0; c < ldq; c++) a->out[r * ldq + c] = 0.0f;
        return DLV_OK;
    }
    return dlv_cpu_flash_attention(be, a);
}
