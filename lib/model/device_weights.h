/* A model's weights as device tensors on its backend (backend/tensor.h),
 * one per entry of its weight table (model/weights.h), made once at load:
 * on a backend with host memory each tensor wraps its bytes in the
 * memory-mapped checkpoint (no copy: bf16 stays bf16 and tensors that are
 * never read are never paged in); on any other backend each is uploaded
 * once. A model loaded with another weight dtype holds a converted copy of
 * each tensor instead (dlv_model_options_set_weight_dtype). Typed per-layer views (model/llava/llava_weights.h, ...) are bound over
 * them, so no forward looks a weight up by name. */
#ifndef DLV_MODEL_DEVICE_WEIGHTS_H
#define DLV_MODEL_DEVICE_WEIGHTS_H

#include <stddef.h>

#include "backend/backend.h"
#include "backend/tensor.h"
#include "model/weights.h"

typedef struct dlv_device_weights {
    const dlv_weights *table;  /* the table the entries follow */
    dlv_buffer *bufs;          /* [n]: one buffer per present tensor */
    dlv_tensor *t;             /* [n]: absent for an absent optional weight */
    size_t n;
} dlv_device_weights;

/* label (the model directory) names the model in messages. as: the dtype
 * every weight is converted to at load (F32, BF16 or F16; a copy on every
 * backend), or DLV_DTYPE_COUNT to keep each tensor's stored dtype. */
dlv_status dlv_device_weights_create(dlv_backend *be, const dlv_weights *table,
                                     const char *label, dlv_dtype as, dlv_device_weights *out);
void dlv_device_weights_free(dlv_device_weights *dw);

/* The tensor of (part, canonical): absent if the model has none. A linear
 * scan: for binding typed views once, never inside a forward. */
dlv_tensor dlv_device_weights_get(const dlv_device_weights *dw, dlv_weight_part part,
                                  const char *canonical);

#endif
