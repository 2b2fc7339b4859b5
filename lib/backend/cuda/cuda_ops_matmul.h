/* The CUDA backend's matmul op (cuda_ops_matmul.c): the vtable slot
 * dlv_backend_ops.matmul. */
#ifndef DLV_BACKEND_CUDA_OPS_MATMUL_H
#define DLV_BACKEND_CUDA_OPS_MATMUL_H

#include "backend/backend.h"

dlv_status dlv_cuda_matmul(dlv_backend *be, const dlv_matmul_args *args);

#endif
