/* dtype names and sizes, and the f16/bf16 <-> f32 conversions: exhaustive
 * round trips over every 16-bit pattern and round-to-nearest-even checked
 * at every midpoint between neighbouring representable values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/dtype.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_names_and_sizes(void **state)
{
    (void)state;
    static const struct { const char *name; size_t size; } want[] = {
        {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4},
        {"I16", 2}, {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},
        {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    assert_int_equal(sizeof want / sizeof want[0], DLV_DTYPE_COUNT);
    for (int i = 0; i < DLV_DTYPE_COUNT; i++) {
        dlv_dtype dt;
        assert_int_equal(dlv_dtype_parse(want[i].name, &dt), 0);
        assert_int_equal(dt, i);
        assert_string_equal(dlv_dtype_name(dt), want[i].name);
        assert_int_equal(dlv_dtype_size(dt), want[i].size);
        assert_int_equal(dlv_dtype_is_float(dt),
                         dt == DLV_DTYPE_F32 || dt == DLV_DTYPE_F16 || dt == DLV_DTYPE_BF16);
    }
    dlv_dtype dt = DLV_DTYPE_F32;
    assert_int_equal(dlv_dtype_parse("F33", &dt), -1);
    assert_int_equal(dlv_dtype_parse("f32", &dt), -1);
    assert_int_equal(dlv_dtype_parse("", &dt), -1);
    assert_int_equal(dlv_dtype_size(DLV_DTYPE_COUNT), 0);
}

static void test_f16_known_values(void **state)
{
    (void)state;
    static const struct { uint16_t h; uint32_t f; } cases[] = {
        {0x0000, 0x00000000u}, {0x8000, 0x80000000u},       /* +-0 */
        {0x3c00, 0x3f800000u}, {0xc000, 0xc0000000u},       /* 1, -2 */
        {0x7bff, 0x477fe000u},                              /* 65504 */
        {0x0400, 0x38800000u},                              /* 2^-14 */
        {0x0001, 0x33800000u},                              /* 2^-24 */
        {0x03ff, 0x387fc000u},                              /* largest subnormal */
        {0x8001, 0xb3800000u},
        {0x7c00, 0x7f800000u}, {0xfc00, 0xff800000u},       /* +-Inf */
        {0x3555, 0x3eaaa000u},                              /* ~1/3 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(bits(dlv_f16_to_f32(cases[i].h)), cases[i].f);
        assert_int_equal(dlv_f32_to_f16(from_bits(cases[i].f)), cases[i].h);
    }
    assert_true(isnan(dlv_f16_to_f32(0x7e00)));
    assert_true(isnan(dlv_f16_to_f32(0x7c01))); /* signalling pattern */
    assert_true(isnan(dlv_f16_to_f32(0xfe00)));
}

static void test_f16_exhaustive_round_trip(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = dlv_f16_to_f32((uint16_t)h);
        uint16_t back = dlv_f32_to_f16(f);
        int is_nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
        if (is_nan) {
            assert_true(isnan(f));
            assert_int_equal(back & 0x7c00u, 0x7c00u);
            assert_int_not_equal(back & 0x3ffu, 0);
            assert_int_equal(back & 0x8000u, h & 0x8000u);
        } else {
            if (back != h) fail_msg("f16 0x%04x -> f32 0x%08x -> 0x%04x", (unsigned)h,
                                    (unsigned)bits(f), (unsigned)back);
        }
    }
}

/* At the midpoint of neighbours a < b, ties go to the even one; a hair
 * below goes to a, a hair above to b. Both signs. */
static void check_f16_midpoints(uint16_t lo)
{
    for (int neg = 0; neg < 2; neg++) {
        uint16_t s = neg ? 0x8000u : 0;
        float a = dlv_f16_to_f32(lo), b = dlv_f16_to_f32((uint16_t)(lo + 1));
        float mid = (a + b) / 2.0f; /* exact: at most 12 significant bits */
        if (neg) mid = -mid;
        uint16_t even = (lo & 1u) ? (uint16_t)(lo + 1) : lo;
        uint16_t got = dlv_f32_to_f16(mid);
        if (got != (s | even))
            fail_msg("f32 %a: got f16 0x%04x, want 0x%04x", (double)mid, (unsigned)got,
                     (unsigned)(s | even));
        assert_int_equal(dlv_f32_to_f16(nextafterf(mid, 0.0f)), s | lo);
        assert_int_equal(dlv_f32_to_f16(nextafterf(mid, neg ? -INFINITY : INFINITY)),
                         s | (uint16_t)(lo + 1));
    }
}

static void test_f16_round_to_nearest_even(void **state)
{
    (void)state;
    /* Every pair of finite neighbours: covers subnormals and the
     * subnormal/normal boundary. Overflow separately: 65520 is the
     * midpoint of 65504 and "65536" = Inf, and ties to the even Inf. */
    for (uint32_t lo = 0; lo < 0x7bffu; lo++) check_f16_midpoints((uint16_t)lo);
    assert_int_equal(dlv_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(dlv_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(dlv_f32_to_f16(1e10f), 0x7c00);
    assert_int_equal(dlv_f32_to_f16(-1e10f), 0xfc00);
    assert_int_equal(dlv_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(dlv_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(dlv_f32_to_f16(from_bits(0x00000001u)), 0x0000); /* f32 subnormal */
    assert_int_equal(dlv_f32_to_f16(from_bits(0x80000001u)), 0x8000);
    assert_int_equal(dlv_f32_to_f16(0x1p-25f), 0x0000);           /* tie -> even 0 */
    assert_int_equal(dlv_f32_to_f16(0x1.8p-24f), 0x0002);         /* 1.5 units -> 2 */
    assert_int_equal(dlv_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);    /* tie -> even */
    assert_int_equal(dlv_f32_to_f16(1.0f + 0x3p-11f), 0x3c02);
    uint16_t n = dlv_f32_to_f16(NAN);
    assert_int_equal(n & 0x7c00u, 0x7c00u);
    assert_int_not_equal(n & 0x3ffu, 0);
    n = dlv_f32_to_f16(from_bits(0xff800001u)); /* negative signalling NaN */
    assert_int_equal(n & 0xfc00u, 0xfc00u);
    assert_int_not_equal(n & 0x3ffu, 0);
}

static void test_bf16(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = dlv_bf16_to_f32((uint16_t)h);
        assert_int_equal(bits(f), h << 16);
        uint16_t back = dlv_f32_to_bf16(f);
        int is_nan = (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0;
        if (is_nan) {
            assert_int_equal(back & 0xff80u, h & 0xff80u);
            assert_int_not_equal(back & 0x7fu, 0);
        } else if (back != h) {
            fail_msg("bf16 0x%04x -> 0x%04x", (unsigned)h, (unsigned)back);
        }
    }
    /* Midpoints: the f32 pattern with the dropped half exactly 0x8000. */
    for (uint32_t lo = 0; lo < 0x7f80u; lo++) {
        for (uint32_t s = 0; s < 2; s++) {
            uint32_t sign = s << 31, hs = s << 15;
            uint32_t mid = sign | (lo << 16) | 0x8000u;
            uint16_t even = (uint16_t)(hs | ((lo & 1u) ? lo + 1 : lo));
            assert_int_equal(dlv_f32_to_bf16(from_bits(mid)), even);
            assert_int_equal(dlv_f32_to_bf16(from_bits(mid - 1)), hs | lo);
            assert_int_equal(dlv_f32_to_bf16(from_bits(mid + 1)), hs | (lo + 1));
        }
    }
    assert_int_equal(dlv_f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* FLT_MAX -> Inf */
    assert_int_equal(dlv_f32_to_bf16(1.0f), 0x3f80);
    /* A NaN whose payload sits only in the dropped bits must stay NaN. */
    uint16_t n = dlv_f32_to_bf16(from_bits(0x7f800001u));
    assert_int_equal(n & 0x7f80u, 0x7f80u);
    assert_int_not_equal(n & 0x7fu, 0);
    n = dlv_f32_to_bf16(from_bits(0xffc00000u));
    assert_int_equal(n & 0xff80u, 0xff80u);
    assert_int_not_equal(n & 0x7fu, 0);
}

static void test_convert_unaligned(void **state)
{
    (void)state;
    unsigned char buf[1 + 4 * 4];
    float out[4];
    const float f32[4] = {1.5f, -2.0f, 0.0f, 65504.0f};
    const uint16_t f16[4] = {0x3e00, 0xc000, 0x0000, 0x7bff};
    const uint16_t b16[4] = {0x3fc0, 0xc000, 0x0000, 0x477f};
    const float want_b16[4] = {1.5f, -2.0f, 0.0f, 65280.0f};

    memcpy(buf + 1, f32, sizeof f32);
    assert_int_equal(dlv_convert_to_f32(out, buf + 1, DLV_DTYPE_F32, 4), 0);
    assert_memory_equal(out, f32, sizeof f32);

    memcpy(buf + 1, f16, sizeof f16);
    assert_int_equal(dlv_convert_to_f32(out, buf + 1, DLV_DTYPE_F16, 4), 0);
    assert_memory_equal(out, f32, sizeof f32);

    memcpy(buf + 1, b16, sizeof b16);
    assert_int_equal(dlv_convert_to_f32(out, buf + 1, DLV_DTYPE_BF16, 4), 0);
    assert_memory_equal(out, want_b16, sizeof want_b16);

    assert_int_equal(dlv_convert_to_f32(out, buf + 1, DLV_DTYPE_I32, 4), -1);
    assert_int_equal(dlv_convert_to_f32(out, buf + 1, DLV_DTYPE_F64, 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_sizes),
        cmocka_unit_test(test_f16_known_values),
        cmocka_unit_test(test_f16_exhaustive_round_trip),
        cmocka_unit_test(test_f16_round_to_nearest_even),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_convert_unaligned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
