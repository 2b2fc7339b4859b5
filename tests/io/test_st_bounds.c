/* The data-section bounds of a safetensors file and their messages: when the
 * data section is longer than the tensors claim (trailing bytes) or shorter
 * (a tensor reaches past its end), the file is refused with a message that
 * names both sizes with the right numbers. A slip in these checks once
 * showed up only as "18446744073709551615 trailing bytes" (an unsigned
 * difference wrapped around), so no message may contain a wrapped count. */
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

#define LABEL "bounds.safetensors"

/* Any count near 2^64 is a wrapped-around difference. */
#define WRAPPED "1844674407370955"

static const char one_f32[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
static const char two_f32[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
static const char a_then_b[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";

/* Opens header + data_len zero bytes from memory; returns the status and
 * copies the message into msg. */
static dlv_status open_image(const char *header, size_t data_len, char *msg, size_t cap)
{
    unsigned char zeros[64] = {0};
    assert_true(data_len <= sizeof zeros);
    size_t size;
    unsigned char *img = io_st_image(header, zeros, data_len, &size);
    assert_non_null(img);
    dlv_st_file *f = NULL;
    dlv_clear_error();
    dlv_status st = dlv_st_open_memory(img, size, LABEL, &f);
    snprintf(msg, cap, "%s", dlv_last_error());
    if (st == DLV_OK) {
        assert_non_null(f);
        dlv_st_close(f);
    } else {
        assert_null(f);
    }
    free(img);
    return st;
}

/* msg contains every printf-formatted want (NULL-terminated list). */
static void expect_parts(const char *msg, const char *const *wants)
{
    if (strstr(msg, WRAPPED)) fail_msg("wrapped-around count in '%s'", msg);
    if (!strstr(msg, LABEL)) fail_msg("no file name in '%s'", msg);
    for (size_t i = 0; wants[i]; i++)
        if (!strstr(msg, wants[i])) fail_msg("'%s' not in '%s'", wants[i], msg);
}

/* The data section is longer than the tensors claim: 4 bytes of tensor,
 * 4 + extra bytes of data. */
static void data_section_longer(void **state)
{
    (void)state;
    char msg[1024], trailing[64], section[128];
    assert_int_equal(open_image(one_f32, 4, msg, sizeof msg), DLV_OK);
    for (size_t extra = 1; extra <= 9; extra++) {
        assert_int_equal(open_image(one_f32, 4 + extra, msg, sizeof msg), DLV_E_FORMAT);
        snprintf(trailing, sizeof trailing, "%zu trailing bytes", extra);
        snprintf(section, sizeof section, "data section (after the %zu-byte JSON header) has "
                 "%zu bytes", strlen(one_f32), 4 + extra);
        const char *const wants[] = {trailing, "tensor data ends at byte 4", section, NULL};
        expect_parts(msg, wants);
    }
    /* Two tensors: the last one's end counts. */
    assert_int_equal(open_image(a_then_b, 12, msg, sizeof msg), DLV_OK);
    assert_int_equal(open_image(a_then_b, 15, msg, sizeof msg), DLV_E_FORMAT);
    const char *const wants[] = {"3 trailing bytes", "ends at byte 12", "has 15 bytes", NULL};
    expect_parts(msg, wants);
}

/* The data section is shorter than the tensors claim. */
static void data_section_shorter(void **state)
{
    (void)state;
    char msg[1024], section[128];
    assert_int_equal(open_image(two_f32, 8, msg, sizeof msg), DLV_OK);
    for (size_t len = 0; len < 8; len++) {
        assert_int_equal(open_image(two_f32, len, msg, sizeof msg), DLV_E_FORMAT);
        snprintf(section, sizeof section, "data section, which has %zu bytes (after the "
                 "%zu-byte JSON header)", len, strlen(two_f32));
        const char *const wants[] = {"'a'", "data_offsets [0, 8]", "outside", section, NULL};
        expect_parts(msg, wants);
    }
    /* The second tensor reaches past the end; the first fits. */
    for (size_t len = 4; len < 12; len++) {
        assert_int_equal(open_image(a_then_b, len, msg, sizeof msg), DLV_E_FORMAT);
        snprintf(section, sizeof section, "which has %zu bytes", len);
        const char *const wants[] = {"'b'", "data_offsets [4, 12]", section, NULL};
        expect_parts(msg, wants);
    }
}

/* Every size around the right one, with one and two tensors: refused
 * unless exact, and never a wrapped-around number. */
static void no_wrapped_counts(void **state)
{
    (void)state;
    const char *headers[] = {one_f32, two_f32, a_then_b};
    const size_t exact[] = {4, 8, 12};
    char msg[1024];
    for (size_t h = 0; h < 3; h++)
        for (size_t len = 0; len <= 24; len++) {
            dlv_status st = open_image(headers[h], len, msg, sizeof msg);
            assert_int_equal(st, len == exact[h] ? DLV_OK : DLV_E_FORMAT);
            if (st != DLV_OK && strstr(msg, WRAPPED))
                fail_msg("header %zu, %zu data bytes: '%s'", h, len, msg);
        }
}

/* The same through a file on disk: the path is in the message. */
static void on_disk(void **state)
{
    (void)state;
    char *dir = io_tmpdir_new();
    assert_non_null(dir);
    char *path = io_join(dir, "long.safetensors");
    unsigned char zeros[16] = {0};
    size_t size;
    unsigned char *img = io_st_image(one_f32, zeros, 10, &size);
    assert_int_equal(io_write_bytes(path, img, size), 0);
    dlv_st_file *f = NULL;
    assert_int_equal(dlv_st_open(path, &f), DLV_E_FORMAT);
    assert_null(f);
    const char *msg = dlv_last_error();
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "6 trailing bytes"));
    assert_non_null(strstr(msg, "has 10 bytes"));
    assert_null(strstr(msg, WRAPPED));
    free(img);
    img = io_st_image(two_f32, zeros, 5, &size);
    assert_int_equal(io_write_bytes(path, img, size), 0);
    assert_int_equal(dlv_st_open(path, &f), DLV_E_FORMAT);
    msg = dlv_last_error();
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "data_offsets [0, 8]"));
    assert_non_null(strstr(msg, "which has 5 bytes"));
    free(img);
    free(path);
    io_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_section_longer),
        cmocka_unit_test(data_section_shorter),
        cmocka_unit_test(no_wrapped_counts),
        cmocka_unit_test(on_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
