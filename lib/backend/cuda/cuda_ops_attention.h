/* The CUDA backend's fused attention ops (cuda_ops_attention.c): the vtable
 * slots dlv_backend_ops.attention and .attention_backward. */
#ifndef DLV_BACKEND_CUDA_OPS_ATTENTION_H
#define DLV_BACKEND_CUDA_OPS_ATTENTION_H

#include "backend/backend.h"

dlv_status dlv_cuda_attention(dlv_backend *be, const dlv_attention_args *args);
dlv_status dlv_cuda_attention_backward(dlv_backend *be, const dlv_attention_bw_args *args);

#endif
