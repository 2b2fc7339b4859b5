/* Device tensors: what model/ and train/ pass around. A tensor is a view of
 * a backend buffer (dlv_buffer) at a byte offset, with a dtype and a
 * row-major shape. Its data is device memory: code above the backend hands
 * dlv_tensor_data() to ops and never dereferences it (the sim backend makes
 * sure). Values are small structs, copied freely; the buffer is owned
 * elsewhere (a model's weights, a trainer's flat buffers, a pass's scratch). */
#ifndef DLV_BACKEND_TENSOR_H
#define DLV_BACKEND_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/dtype.h"

#define DLV_TENSOR_MAX_DIMS 4

typedef struct dlv_tensor {
    const dlv_buffer *buf; /* NULL: absent (an optional weight such as a bias) */
    size_t offset;         /* bytes from the start of buf */
    dlv_dtype dtype;
    int ndim;
    int64_t shape[DLV_TENSOR_MAX_DIMS];
} dlv_tensor;

static inline int dlv_tensor_present(const dlv_tensor *t) { return t->buf != NULL; }

/* The number of elements (1 for ndim 0; 0 for an absent tensor). */
static inline int64_t dlv_tensor_nelem(const dlv_tensor *t)
{
    if (!t->buf) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static inline size_t dlv_tensor_nbytes(const dlv_tensor *t)
{
    return (size_t)dlv_tensor_nelem(t) * dlv_dtype_size(t->dtype);
}

/* The device address of element 0, for op arguments; NULL when absent.
 * Formed as an integer so that no host pointer arithmetic touches it. */
static inline void *dlv_tensor_data(const dlv_tensor *t)
{
    if (!t->buf) return NULL;
    return (void *)((uintptr_t)t->buf->ptr + t->offset);
}

/* The same for f32 tensors (activations, gradients, trained copies). */
static inline float *dlv_tensor_f32(const dlv_tensor *t) { return (float *)dlv_tensor_data(t); }

/* A 2-D f32 view [rows, cols] of buf at a float offset. */
static inline dlv_tensor dlv_tensor_f32_2d(const dlv_buffer *buf, size_t float_offset,
                                           int64_t rows, int64_t cols)
{
    dlv_tensor t = {buf, float_offset * sizeof(float), DLV_DTYPE_F32, 2, {rows, cols, 0, 0}};
    return t;
}

/* Rows [first, first + n) of a tensor whose first dimension is rows (the
 * remaining dimensions kept). */
static inline dlv_tensor dlv_tensor_rows(const dlv_tensor *t, int64_t first, int64_t n)
{
    dlv_tensor r = *t;
    size_t row_bytes = dlv_dtype_size(t->dtype);
    for (int i = 1; i < t->ndim; i++) row_bytes *= (size_t)t->shape[i];
    r.offset += (size_t)first * row_bytes;
    r.shape[0] = n;
    return r;
}

/* Whether ops on be can read t (present, and in memory be shares): the
 * guard of the blocks' entry points against a backend of another kind. */
static inline int dlv_weights_readable(const dlv_backend *be, const dlv_tensor *t)
{
    return t->buf && dlv_backend_same_memory(be, t->buf->owner);
}

/* Host <-> device copies of a whole tensor (the tensor's own byte size). */
dlv_status dlv_tensor_upload(const dlv_tensor *t, const void *host);
dlv_status dlv_tensor_download(void *host, const dlv_tensor *t);
dlv_status dlv_tensor_zero(const dlv_tensor *t);
/* Device to device, dst and src of the same byte size. */
dlv_status dlv_tensor_copy(const dlv_tensor *dst, const dlv_tensor *src);

#endif
