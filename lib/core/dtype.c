#include "core/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[DLV_DTYPE_COUNT] = {
    [DLV_DTYPE_F32] = {"F32", 4},     [DLV_DTYPE_F16] = {"F16", 2},
    [DLV_DTYPE_BF16] = {"BF16", 2},   [DLV_DTYPE_F64] = {"F64", 8},
    [DLV_DTYPE_I64] = {"I64", 8},     [DLV_DTYPE_I32] = {"I32", 4},
    [DLV_DTYPE_I16] = {"I16", 2},     [DLV_DTYPE_I8] = {"I8", 1},
    [DLV_DTYPE_U64] = {"U64", 8},     [DLV_DTYPE_U32] = {"U32", 4},
    [DLV_DTYPE_U16] = {"U16", 2},     [DLV_DTYPE_U8] = {"U8", 1},
    [DLV_DTYPE_BOOL] = {"BOOL", 1},   [DLV_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [DLV_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
};

size_t dlv_dtype_size(dlv_dtype dt)
{
    return (unsigned)dt < DLV_DTYPE_COUNT ? dtype_info[dt].size : 0;
}

const char *dlv_dtype_name(dlv_dtype dt)
{
    return (unsigned)dt < DLV_DTYPE_COUNT ? dtype_info[dt].name : "?";
}

int dlv_dtype_parse(const char *name, dlv_dtype *out)
{
    for (int i = 0; i < DLV_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (dlv_dtype)i;
            return 0;
        }
    }
    return -1;
}

int dlv_dtype_is_float(dlv_dtype dt)
{
    return dt == DLV_DTYPE_F32 || dt == DLV_DTYPE_F16 || dt == DLV_DTYPE_BF16;
}

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float dlv_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

float dlv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);           /* Inf / NaN */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);  /* normal */
    } else if (man == 0) {
        bits = sign;                                       /* +-0 */
    } else {
        /* Subnormal: value = man * 2^-24, exact in f32. */
        float v = (float)man * bits_to_f32(0x33800000u);
        bits = sign | f32_to_bits(v);
    }
    return bits_to_f32(bits);
}

uint16_t dlv_f32_to_bf16(float f)
{
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

uint16_t dlv_f32_to_f16(float f)
{
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;            /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;           /* overflow -> Inf */
    if (a < 0x38800000u) {
        /* Subnormal or zero in f16: round man * 2^24 to nearest even. */
        float v = bits_to_f32(a) * bits_to_f32(0x4b800000u); /* * 2^24 */
        uint32_t q = (uint32_t)v;
        float rem = v - (float)q;
        if (rem > 0.5f || (rem == 0.5f && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    /* Normal: rebias exponent, round mantissa to nearest even. */
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    r -= 0x38000000u;  /* exponent bias 127 -> 15, in place */
    return (uint16_t)(sign | (r >> 13));
}

int dlv_convert_to_f32(float *dst, const void *src, dlv_dtype src_dtype, size_t n)
{
    const unsigned char *p = src;
    switch (src_dtype) {
    case DLV_DTYPE_F32:
        memcpy(dst, p, n * sizeof(float));
        return 0;
    case DLV_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = dlv_bf16_to_f32(h);
        }
        return 0;
    case DLV_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = dlv_f16_to_f32(h);
        }
        return 0;
    default:
        return -1;
    }
}
