/* Element types of stored tensors and conversions between them. Conversions
 * read through memcpy, so they are safe on unaligned memory-mapped data. */
#ifndef DLV_CORE_DTYPE_H
#define DLV_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/* Every dtype the safetensors format names. Only F32, F16 and BF16 are
 * computed with; the others are read and listed so that a file holding them
 * still validates and an error can name them. */
typedef enum dlv_dtype {
    DLV_DTYPE_F32 = 0,
    DLV_DTYPE_F16,
    DLV_DTYPE_BF16,
    DLV_DTYPE_F64,
    DLV_DTYPE_I64,
    DLV_DTYPE_I32,
    DLV_DTYPE_I16,
    DLV_DTYPE_I8,
    DLV_DTYPE_U64,
    DLV_DTYPE_U32,
    DLV_DTYPE_U16,
    DLV_DTYPE_U8,
    DLV_DTYPE_BOOL,
    DLV_DTYPE_F8_E4M3,
    DLV_DTYPE_F8_E5M2,
    DLV_DTYPE_COUNT
} dlv_dtype;

/* Bytes per element. */
size_t dlv_dtype_size(dlv_dtype dt);
/* The safetensors spelling ("F32", "BF16", ...). */
const char *dlv_dtype_name(dlv_dtype dt);
/* Parses a safetensors dtype string; returns 0 and sets *out, or -1. */
int dlv_dtype_parse(const char *name, dlv_dtype *out);
/* 1 for F32, F16 and BF16: the dtypes weights may have. */
int dlv_dtype_is_float(dlv_dtype dt);

float dlv_bf16_to_f32(uint16_t h);
float dlv_f16_to_f32(uint16_t h);
/* Round to nearest even; NaN stays NaN. */
uint16_t dlv_f32_to_bf16(float f);
uint16_t dlv_f32_to_f16(float f);

/* Widens n elements of a float dtype (F32, F16, BF16) at src (any alignment)
 * to f32. Returns -1 for another dtype. */
int dlv_convert_to_f32(float *dst, const void *src, dlv_dtype src_dtype, size_t n);

#endif
