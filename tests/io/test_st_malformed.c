/* Validation of safetensors images: every malformed case must fail with
 * DLV_E_FORMAT (or DLV_E_IO) and a message naming the file and the problem;
 * valid edge cases must load; seeded random mutations must never crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "io_test_util.h"

#define LABEL "bad.safetensors"

typedef struct bad_case {
    const char *header;
    size_t data_len;   /* zero bytes appended after the header */
    const char *want1; /* substrings the message must contain */
    const char *want2;
} bad_case;

static const bad_case bad_cases[] = {
    {"{not json}", 0, "invalid JSON", NULL},
    {"[1, 2]", 0, "start with '{'", NULL},
    {" {}", 0, "start with '{'", NULL},
    {"", 0, "start with '{'", NULL},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate", NULL},
    {"{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'w'", "F33"},
    {"{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'w'", "dtype"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "'w'", "shape"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "'w'", "shape"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "'w'", "shape"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "'w'", "shape"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
     "'w'", "9 dimensions"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "'w'",
     "give 8 bytes"},
    {"{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4, "'w'",
     "span 4"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "'w'", "outside"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "'w'",
     "begin 8 > end 4"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "'w'",
     "data_offsets"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, "'w'",
     "data_offsets"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4, "'w'",
     "data_offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "'b'", "overlap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "'b'", "hole"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a'", "hole"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "4 trailing bytes",
     NULL},
    {"{}", 3, "no tensors but 3 data bytes", NULL},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
     "\"data_offsets\":[0,4]}}", 4, "'w'", "element count overflows"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
     "\"data_offsets\":[0,4]}}", 4, "'w'", "byte size overflows"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],"
     "\"data_offsets\":[0,4]}}", 4, "invalid JSON", NULL},
    {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "'k'"},
    {"{\"__metadata__\":[\"k\"]}", 0, "__metadata__", "object"},
    {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty name", NULL},
    {"{\"w\":[1]}", 0, "'w'", "expected an object"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "'w'", "'data_offsets'"},
    {"{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'w'", "'dtype'"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "'w'",
     "'x'"},
};

static void test_bad_headers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        unsigned char zeros[64] = {0};
        assert_true(c->data_len <= sizeof zeros);
        size_t size;
        unsigned char *img = io_st_image(c->header, zeros, c->data_len, &size);
        assert_non_null(img);
        dlv_st_file *f = (dlv_st_file *)1;
        dlv_clear_error();
        dlv_status st = dlv_st_open_memory(img, size, LABEL, &f);
        const char *msg = dlv_last_error();
        if (st != DLV_E_FORMAT || f != NULL || !strstr(msg, LABEL) ||
            !strstr(msg, c->want1) || (c->want2 && !strstr(msg, c->want2)))
            fail_msg("case %zu (%s): status %d, message '%s', want '%s' and '%s'", i,
                     c->header, (int)st, msg, c->want1, c->want2 ? c->want2 : "");
        free(img);
    }
}

static void expect_format(const unsigned char *img, size_t size, const char *want)
{
    dlv_st_file *f = NULL;
    dlv_clear_error();
    dlv_status st = dlv_st_open_memory(img, size, LABEL, &f);
    if (st != DLV_E_FORMAT || f || !strstr(dlv_last_error(), LABEL) ||
        !strstr(dlv_last_error(), want))
        fail_msg("status %d, message '%s', want '%s'", (int)st, dlv_last_error(), want);
}

static void test_bad_lengths(void **state)
{
    (void)state;
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char data[4] = {0};
    size_t size;
    unsigned char *img = io_st_image(hdr, data, 4, &size);
    assert_non_null(img);

    expect_format(img, 0, "shorter than the 8-byte");
    expect_format(img, 7, "shorter than the 8-byte");
    /* Truncated inside the header, and inside the data. */
    expect_format(img, 8 + strlen(hdr) - 5, "runs past the end");
    expect_format(img, size - 1, "outside");
    free(img);

    static const uint64_t lens[] = {(uint64_t)1 << 63, UINT64_MAX, UINT64_MAX - 7,
                                    DLV_ST_MAX_HEADER + 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        img = io_st_image_len(lens[i], hdr, data, 4, &size);
        assert_non_null(img);
        expect_format(img, size, "exceeds the limit");
        free(img);
    }
    /* Within the limit but beyond the file. */
    img = io_st_image_len(1000, hdr, data, 4, &size);
    expect_format(img, size, "runs past the end");
    free(img);
}

static void test_open_errors(void **state)
{
    (void)state;
    char *dir = io_tmpdir_new();
    assert_non_null(dir);
    dlv_st_file *f = NULL;

    assert_int_equal(dlv_st_open("", &f), DLV_E_IO);
    assert_null(f);
    assert_int_equal(dlv_st_open(dir, &f), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), dir));
    assert_null(f);

    char *missing = io_join(dir, "missing.safetensors");
    assert_int_equal(dlv_st_open(missing, &f), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), "missing.safetensors"));
    free(missing);

    char *small = io_join(dir, "small.safetensors");
    assert_int_equal(io_write_bytes(small, "\x02\0\0\0\0", 5), 0);
    assert_int_equal(dlv_st_open(small, &f), DLV_E_FORMAT);
    assert_non_null(strstr(dlv_last_error(), "small.safetensors"));
    assert_non_null(strstr(dlv_last_error(), "5 bytes"));
    assert_int_equal(io_write_bytes(small, "", 0), 0);
    assert_int_equal(dlv_st_open(small, &f), DLV_E_FORMAT);
    assert_non_null(strstr(dlv_last_error(), "0 bytes"));

    /* Same validation through the mapping. */
    size_t size;
    unsigned char *img = io_st_image("{\"w\":{\"dtype\":\"F33\",\"shape\":[],"
                                     "\"data_offsets\":[0,4]}}", "\0\0\0\0", 4, &size);
    assert_int_equal(io_write_bytes(small, img, size), 0);
    free(img);
    assert_int_equal(dlv_st_open(small, &f), DLV_E_FORMAT);
    assert_non_null(strstr(dlv_last_error(), "'w'"));
    assert_non_null(strstr(dlv_last_error(), "F33"));
    assert_null(f);
    free(small);
    io_tmpdir_remove(dir);
}

static void test_valid_edge_cases(void **state)
{
    (void)state;
    dlv_st_file *f = NULL;
    size_t size;

    /* No tensors at all, with trailing-space padding. */
    unsigned char *img = io_st_image("{}      ", NULL, 0, &size);
    assert_int_equal(dlv_st_open_memory(img, size, NULL, &f), DLV_OK);
    assert_int_equal(dlv_st_count(f), 0);
    assert_null(dlv_st_at(f, 0));
    assert_null(dlv_st_find(f, "x"));
    assert_string_equal(dlv_st_path(f), "<memory>");
    dlv_st_close(f);
    free(img);

    /* Out-of-order header, an empty tensor, a scalar, metadata, odd data
     * alignment (header length 1 mod 8 after the length field). */
    const char *hdr =
        "{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]},"
        "\"__metadata__\":{\"format\":\"pt\",\"note\":\"\"},"
        "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
        "\"c\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[8,10]}}";
    unsigned char data[10];
    const float a = -1.25f;
    const uint16_t b[2] = {0x3c00, 0xc400}; /* 1, -4 */
    const uint16_t c = 0x4040;              /* 3 */
    memcpy(data, &a, 4);
    memcpy(data + 4, b, 4);
    memcpy(data + 8, &c, 2);
    img = io_st_image(hdr, data, sizeof data, &size);
    assert_int_equal(dlv_st_open_memory(img, size, LABEL, &f), DLV_OK);
    assert_int_equal(dlv_st_count(f), 4);
    const char *order[] = {"a", "b", "empty", "c"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(dlv_st_at(f, i)->name, order[i]);
        assert_ptr_equal(dlv_st_find(f, order[i]), dlv_st_at(f, i));
    }
    assert_null(dlv_st_find(f, "__metadata__"));
    assert_string_equal(dlv_st_metadata(f, "format"), "pt");
    assert_string_equal(dlv_st_metadata(f, "note"), "");
    assert_null(dlv_st_metadata(f, "missing"));

    const dlv_st_tensor *t = dlv_st_find(f, "a");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->n_elements, 1);
    assert_ptr_equal(t->data, img + 8 + strlen(hdr));
    float out[2];
    assert_int_equal(dlv_st_read_f32(t, 0, 1, out), DLV_OK);
    assert_memory_equal(&out[0], &a, sizeof a);

    t = dlv_st_find(f, "b");
    assert_int_equal(dlv_st_read_f32(t, 0, 2, out), DLV_OK);
    assert_true(out[0] == 1.0f && out[1] == -4.0f);
    assert_int_equal(dlv_st_read_f32(t, 1, 1, out), DLV_OK);
    assert_true(out[0] == -4.0f);
    assert_int_equal(dlv_st_read_f32(t, 2, 0, NULL), DLV_OK);
    assert_int_equal(dlv_st_read_f32(t, 3, 0, out), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_st_read_f32(t, 1, 2, out), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "'b'"));
    assert_int_equal(dlv_st_read_f32(t, UINT64_MAX, 2, out), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_st_read_f32(t, 1, UINT64_MAX, out), DLV_E_INVALID_ARG);

    t = dlv_st_find(f, "c");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(dlv_st_read_f32(t, 0, 1, out), DLV_OK);
    assert_true(out[0] == 3.0f);

    t = dlv_st_find(f, "empty");
    assert_int_equal(t->n_elements, 0);
    assert_int_equal(t->n_bytes, 0);
    assert_int_equal(t->shape[0], 0);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(dlv_st_read_f32(t, 0, 0, out), DLV_OK);

    /* Alignment is reported from the actual address. */
    const dlv_st_tensor *ta = dlv_st_find(f, "a");
    uintptr_t addr = (uintptr_t)ta->data;
    assert_int_equal(dlv_st_tensor_aligned(ta, 4), (addr % 4) == 0);
    assert_int_equal(dlv_st_tensor_aligned(ta, 1), 1);
    assert_int_equal(dlv_st_tensor_aligned(ta, 3), 0); /* not a power of two */
    dlv_st_close(f);
    free(img);
}

/* Many tensors: lookup by name must find every one (binary search). */
static void test_many_tensors(void **state)
{
    (void)state;
    enum { N = 1000 };
    size_t cap = (size_t)N * 96 + 16, len = 0;
    char *hdr = malloc(cap);
    assert_non_null(hdr);
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    for (int i = 0; i < N; i++) {
        /* Names in an order unrelated to the offsets. */
        int k = (i * 337) % N;
        len += (size_t)snprintf(hdr + len, cap - len,
                                "%s\"layer.%d.w\":{\"dtype\":\"F32\",\"shape\":[1],"
                                "\"data_offsets\":[%d,%d]}", i ? "," : "", k, 4 * i,
                                4 * i + 4);
    }
    snprintf(hdr + len, cap - len, "}");
    float *data = malloc(N * sizeof *data);
    assert_non_null(data);
    for (int i = 0; i < N; i++) data[i] = (float)((i * 337) % N);
    size_t size;
    unsigned char *img = io_st_image(hdr, data, N * sizeof *data, &size);
    dlv_st_file *f = NULL;
    assert_int_equal(dlv_st_open_memory(img, size, LABEL, &f), DLV_OK);
    assert_int_equal(dlv_st_count(f), N);
    for (int k = 0; k < N; k++) {
        char name[32];
        snprintf(name, sizeof name, "layer.%d.w", k);
        const dlv_st_tensor *t = dlv_st_find(f, name);
        assert_non_null(t);
        assert_string_equal(t->name, name);
        float v;
        assert_int_equal(dlv_st_read_f32(t, 0, 1, &v), DLV_OK);
        assert_true(v == (float)k);
    }
    assert_null(dlv_st_find(f, "layer.1000.w"));
    assert_null(dlv_st_find(f, ""));
    dlv_st_close(f);
    free(img);
    free(data);
    free(hdr);
}

/* xorshift64*: deterministic, local state. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void check_any(const unsigned char *img, size_t size)
{
    dlv_st_file *f = NULL;
    dlv_clear_error();
    dlv_status st = dlv_st_open_memory(img, size, "fuzz", &f);
    if (st != DLV_OK) {
        assert_null(f);
        assert_true(st == DLV_E_FORMAT || st == DLV_E_NOMEM);
        assert_true(dlv_last_error()[0] != '\0');
        return;
    }
    /* Whatever was accepted must describe bytes inside the image. */
    uint64_t total = 0;
    for (size_t i = 0; i < dlv_st_count(f); i++) {
        const dlv_st_tensor *t = dlv_st_at(f, i);
        const unsigned char *p = t->data;
        assert_true(p >= img && p + t->n_bytes <= img + size);
        assert_int_equal(t->n_bytes, t->n_elements * dlv_dtype_size(t->dtype));
        assert_ptr_equal(dlv_st_find(f, t->name), t);
        total += t->n_bytes;
        if (dlv_dtype_is_float(t->dtype) && t->n_elements > 0) {
            float v;
            assert_int_equal(dlv_st_read_f32(t, t->n_elements - 1, 1, &v), DLV_OK);
        }
    }
    assert_true(total <= size);
    dlv_st_close(f);
}

static void test_random_garbage(void **state)
{
    (void)state;
    const char *hdr =
        "{\"__metadata__\":{\"k\":\"v\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[8,12]},"
        "\"c\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[12,14]}}  ";
    unsigned char data[14];
    memset(data, 0x3c, sizeof data);
    size_t size;
    unsigned char *base = io_st_image(hdr, data, sizeof data, &size);
    assert_non_null(base);
    check_any(base, size); /* the seed itself is valid */
    unsigned char *img = malloc(size);
    assert_non_null(img);
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    const char alphabet[] = "{}[]\":,0123456789-.eE \\u_abcdefFIUBL";
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(img, base, size);
        int n_mut = 1 + (int)(next_rand(&s) % 4);
        for (int m = 0; m < n_mut; m++) {
            size_t pos = (size_t)(next_rand(&s) % size);
            uint64_t r = next_rand(&s);
            if (r % 3 == 0) img[pos] = (unsigned char)(r >> 8);
            else img[pos] = (unsigned char)alphabet[(r >> 8) % (sizeof alphabet - 1)];
        }
        size_t len = size;
        if (next_rand(&s) % 8 == 0) len = (size_t)(next_rand(&s) % (size + 1));
        /* A fresh heap copy of exactly len bytes so ASan sees overreads. */
        unsigned char *exact = malloc(len ? len : 1);
        assert_non_null(exact);
        memcpy(exact, img, len);
        dlv_st_file *probe = NULL;
        if (dlv_st_open_memory(exact, len, "fuzz", &probe) == DLV_OK) accepted++;
        dlv_st_close(probe);
        check_any(exact, len);
        free(exact);
    }
    /* Pure noise with a plausible header length. */
    for (int it = 0; it < 2000; it++) {
        unsigned char buf[128];
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)next_rand(&s);
        uint64_t hl = next_rand(&s) % 130;
        for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
        buf[8] = '{';
        check_any(buf, sizeof buf);
    }
    /* Some mutations (e.g. inside a metadata value or padding) keep the
     * file valid; most must not. Both paths were exercised. */
    assert_true(accepted > 0 && accepted < 20000);
    free(img);
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_valid_edge_cases),
        cmocka_unit_test(test_many_tensors),
        cmocka_unit_test(test_random_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
