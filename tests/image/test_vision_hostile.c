/* Hostile and broken image data: every case ends in a status and a message
 * naming the source, never a crash, a leak or an out-of-bounds read (the
 * suite also runs under ASan+UBSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "image/image_source.h"
#include "core/fs.h"
#include "model/config.h"
#include "image/decode.h"
#include "image/preprocess.h"

typedef struct blob {
    unsigned char *data;
    size_t n;
} blob;

static blob read_data(const char *name)
{
    const char *src = getenv("DLV_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/image/data/%s", src ? src : ".", name);
    char *data = NULL;
    size_t n = 0;
    assert_int_equal(dlv_read_file(path, (size_t)1 << 24, &data, &n), DLV_OK);
    blob b = {(unsigned char *)data, n};
    return b;
}

static dlv_status decode(const unsigned char *data, size_t n, uint64_t max_pixels, dlv_rgb8 *out)
{
    dlv_decode_opts o = {max_pixels, 0};
    return dlv_decode_image(data, n, "hostile.img", &o, out);
}

static void expect_fail(const unsigned char *data, size_t n, dlv_status want, const char *needle)
{
    dlv_rgb8 img = {NULL, 0, 0};
    dlv_clear_error();
    dlv_status st = decode(data, n, DLV_DEFAULT_MAX_PIXELS, &img);
    if (st != want) printf("status %d (%s), wanted %d\n", (int)st, dlv_last_error(), (int)want);
    assert_int_equal(st, want);
    assert_null(img.px);
    assert_non_null(strstr(dlv_last_error(), "hostile.img"));
    if (needle && !strstr(dlv_last_error(), needle)) printf("message: %s\n", dlv_last_error());
    if (needle) assert_non_null(strstr(dlv_last_error(), needle));
}

static void test_empty_and_not_image(void **state)
{
    (void)state;
    static const unsigned char text[] = "this is not an image, just text\n";
    expect_fail(text, sizeof text - 1, DLV_E_UNSUPPORTED, "not a PNG or JPEG");
    expect_fail(text, 0, DLV_E_FORMAT, "empty");
    static const unsigned char png_sig_only[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    expect_fail(png_sig_only, sizeof png_sig_only, DLV_E_FORMAT, "truncated");
    static const unsigned char soi_only[] = {0xFF, 0xD8, 0xFF};
    expect_fail(soi_only, sizeof soi_only, DLV_E_FORMAT, "invalid JPEG");
}

/* A PNG with the given IHDR and a small IDAT, CRCs correct. */
static size_t make_png(unsigned char *buf, uint32_t w, uint32_t h, int depth, int color)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 0;
    memcpy(buf, sig, 8);
    n = 8;
    unsigned char ihdr[13] = {(unsigned char)(w >> 24), (unsigned char)(w >> 16),
                              (unsigned char)(w >> 8),  (unsigned char)w,
                              (unsigned char)(h >> 24), (unsigned char)(h >> 16),
                              (unsigned char)(h >> 8),  (unsigned char)h,
                              (unsigned char)depth,     (unsigned char)color, 0, 0, 0};
    const struct {
        const char *type;
        const unsigned char *data;
        size_t len;
    } chunks[3] = {{"IHDR", ihdr, 13},
                   {"IDAT", (const unsigned char *)"\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9},
                   {"IEND", NULL, 0}};
    for (int i = 0; i < 3; i++) {
        size_t len = chunks[i].len;
        unsigned char *p = buf + n;
        p[0] = (unsigned char)(len >> 24);
        p[1] = (unsigned char)(len >> 16);
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        memcpy(p + 4, chunks[i].type, 4);
        if (len) memcpy(p + 8, chunks[i].data, len);
        uLong crc = crc32(0L, p + 4, (uInt)(len + 4));
        p[8 + len] = (unsigned char)(crc >> 24);
        p[9 + len] = (unsigned char)(crc >> 16);
        p[10 + len] = (unsigned char)(crc >> 8);
        p[11 + len] = (unsigned char)crc;
        n += 12 + len;
    }
    return n;
}

static void test_png_headers(void **state)
{
    (void)state;
    unsigned char buf[128];
    size_t n = make_png(buf, 100000, 100000, 8, 2);
    expect_fail(buf, n, DLV_E_UNSUPPORTED, "100000x100000");
    n = make_png(buf, 0, 10, 8, 2);
    expect_fail(buf, n, DLV_E_FORMAT, "invalid PNG");
    n = make_png(buf, 10, 0, 8, 2);
    expect_fail(buf, n, DLV_E_FORMAT, "invalid PNG");
    n = make_png(buf, 0x7fffffffu, 0x7fffffffu, 16, 6);
    expect_fail(buf, n, DLV_E_UNSUPPORTED, "limit");
    n = make_png(buf, 4, 4, 3, 2); /* bit depth 3 does not exist */
    expect_fail(buf, n, DLV_E_FORMAT, "invalid PNG");
    n = make_png(buf, 4, 4, 8, 3); /* palette image without PLTE */
    expect_fail(buf, n, DLV_E_FORMAT, "invalid PNG");
    /* Valid header, IDAT far too short for 4x4 pixels. */
    n = make_png(buf, 4, 4, 8, 2);
    expect_fail(buf, n, DLV_E_FORMAT, "invalid PNG");
}

/* Offset of the first SOFn marker's height field in a JPEG. */
static size_t sof_offset(const blob *b)
{
    for (size_t i = 2; i + 9 < b->n; i++)
        if (b->data[i] == 0xFF && (b->data[i + 1] == 0xC0 || b->data[i + 1] == 0xC2)) return i + 5;
    fail_msg("no SOF marker");
    return 0;
}

static void test_jpeg_headers(void **state)
{
    (void)state;
    const char *names[] = {"jpeg_420.jpg", "jpeg_progressive.jpg"};
    for (int k = 0; k < 2; k++) {
        blob b = read_data(names[k]);
        size_t at = sof_offset(&b);
        unsigned char h0 = b.data[at], h1 = b.data[at + 1];
        b.data[at] = b.data[at + 1] = b.data[at + 2] = b.data[at + 3] = 0xFD; /* 65021 x 65021 */
        expect_fail(b.data, b.n, DLV_E_UNSUPPORTED, "limit");
        b.data[at] = b.data[at + 1] = 0; /* height 0 */
        expect_fail(b.data, b.n, DLV_E_FORMAT, "invalid JPEG");
        b.data[at] = h0;
        b.data[at + 1] = h1;
        b.data[at + 2] = b.data[at + 3] = 0; /* width 0 */
        expect_fail(b.data, b.n, DLV_E_FORMAT, "invalid JPEG");
        free(b.data);
    }
}

/* Every prefix of a valid file up to its last chunk / marker fails cleanly. */
static void test_truncated(void **state)
{
    (void)state;
    const char *names[] = {"png_rgb8.png", "png_rgb8_interlaced.png", "png_pal4.png",
                           "jpeg_420.jpg", "jpeg_progressive.jpg", "jpeg_cmyk.jpg"};
    for (int k = 0; k < 6; k++) {
        blob b = read_data(names[k]);
        int png = b.data[0] == 0x89;
        /* PNG: up to the IDAT's CRC (the IEND chunk is 12 bytes, not read);
         * JPEG: up to the EOI marker (2 bytes). */
        size_t end = png ? b.n - 12 - 4 : b.n - 2;
        for (size_t cut = 1; cut < end; cut++) {
            dlv_rgb8 img = {NULL, 0, 0};
            dlv_status st = decode(b.data, cut, DLV_DEFAULT_MAX_PIXELS, &img);
            if (st == DLV_OK) printf("%s cut at %zu of %zu decoded\n", names[k], cut, b.n);
            assert_int_not_equal(st, DLV_OK);
            assert_null(img.px);
            assert_non_null(strstr(dlv_last_error(), "hostile.img"));
            /* Past the signature, the message says what happened. */
            if (cut >= (png ? 8u : 3u) && !strstr(dlv_last_error(), "truncated"))
                fail_msg("%s cut at %zu: %s", names[k], cut, dlv_last_error());
        }
        dlv_rgb8 img;
        assert_int_equal(decode(b.data, b.n, DLV_DEFAULT_MAX_PIXELS, &img), DLV_OK);
        dlv_rgb8_free(&img);
        free(b.data);
    }
}

/* Flipped bytes: any status, a message on failure, never a crash. */
static void test_corrupt(void **state)
{
    (void)state;
    const char *names[] = {"png_rgb8.png", "png_pal8.png", "jpeg_420.jpg",
                           "jpeg_progressive.jpg", "jpeg_gray.jpg"};
    size_t n_fail = 0, n_ok = 0;
    for (int k = 0; k < 5; k++) {
        blob b = read_data(names[k]);
        uint32_t rng = 12345u + (uint32_t)k;
        for (int trial = 0; trial < 300; trial++) {
            unsigned char *copy = malloc(b.n);
            assert_non_null(copy);
            memcpy(copy, b.data, b.n);
            for (int f = 0; f < 1 + trial % 4; f++) {
                rng = rng * 1103515245u + 12345u;
                size_t at = (rng >> 8) % b.n;
                copy[at] ^= (unsigned char)(1u << ((rng >> 4) & 7u));
            }
            dlv_rgb8 img = {NULL, 0, 0};
            dlv_clear_error();
            dlv_status st = decode(copy, b.n, DLV_DEFAULT_MAX_PIXELS, &img);
            if (st == DLV_OK) {
                assert_non_null(img.px);
                n_ok++;
            } else {
                assert_null(img.px);
                assert_non_null(strstr(dlv_last_error(), "hostile.img"));
                n_fail++;
            }
            dlv_rgb8_free(&img);
            free(copy);
        }
        free(b.data);
    }
    printf("corrupt: %zu refused, %zu decoded\n", n_fail, n_ok);
    assert_true(n_fail > 0);
}

static void test_limits(void **state)
{
    (void)state;
    blob b = read_data("png_rgb8.png"); /* 37 x 23 = 851 pixels */
    dlv_rgb8 img = {NULL, 0, 0};
    assert_int_equal(decode(b.data, b.n, 851, &img), DLV_OK);
    dlv_rgb8_free(&img);
    assert_int_equal(decode(b.data, b.n, 850, &img), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "851 pixels"));
    free(b.data);

    /* Raw RGB sources obey the limit too. */
    uint8_t px[12] = {0};
    dlv_image *im = NULL;
    assert_int_equal(dlv_image_from_rgb(px, 2, 2, 6, &im), DLV_OK);
    dlv_decode_opts o = {3, 0};
    assert_int_equal(dlv_image_decode(im, &o, &img), DLV_E_UNSUPPORTED);
    dlv_image_free(im);

    /* A resize whose result would be huge is refused before allocating:
     * 1 x 40000 to shortest edge 336 is 336 x 13440000. */
    static const char cfg_json[] = "{\"size\": {\"shortest_edge\": 336}}";
    dlv_preproc_config cfg;
    assert_int_equal(dlv_preproc_config_parse(cfg_json, strlen(cfg_json), "cfg", &cfg), DLV_OK);
    dlv_rgb8 tall, out;
    assert_int_equal(dlv_rgb8_alloc(&tall, 1, 40000), DLV_OK);
    memset(tall.px, 7, 40000 * 3);
    assert_int_equal(dlv_preprocess_rgb8(&cfg, &tall, 0, DLV_DEFAULT_MAX_PIXELS, &out),
                     DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "13440000"));
    assert_null(out.px);
    /* Padding 1 x 40000 to a square would be 1.6e9 pixels. */
    assert_int_equal(dlv_preprocess_rgb8(&cfg, &tall, 1, DLV_DEFAULT_MAX_PIXELS, &out),
                     DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "square"));
    assert_null(out.px);
    /* A crop size over the limit. */
    static const char crop_json[] =
        "{\"crop_size\": {\"height\": 1048576, \"width\": 1048576}, \"size\": 8}";
    assert_int_equal(dlv_preproc_config_parse(crop_json, strlen(crop_json), "cfg", &cfg), DLV_OK);
    assert_int_equal(dlv_preprocess_rgb8(&cfg, &tall, 0, DLV_DEFAULT_MAX_PIXELS, &out),
                     DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), "crop_size"));
    assert_null(out.px);
    dlv_rgb8_free(&tall);
}

static void test_files(void **state)
{
    (void)state;
    dlv_image *im = NULL;
    assert_int_equal(dlv_image_from_file("/nonexistent/x.png", &im), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), "/nonexistent/x.png"));
    /* An empty file and a text file: the path is named. */
    char path[] = "/tmp/dlv-vision-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(dlv_image_from_file(path, &im), DLV_OK);
    dlv_rgb8 img;
    assert_int_equal(dlv_image_decode(im, NULL, &img), DLV_E_FORMAT);
    assert_non_null(strstr(dlv_last_error(), path));
    dlv_image_free(im);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("GIF89a not supported", f);
    fclose(f);
    assert_int_equal(dlv_image_from_file(path, &im), DLV_OK);
    assert_int_equal(dlv_image_decode(im, NULL, &img), DLV_E_UNSUPPORTED);
    assert_non_null(strstr(dlv_last_error(), path));
    assert_non_null(strstr(dlv_last_error(), "not a PNG or JPEG"));
    dlv_image_free(im);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_not_image),
        cmocka_unit_test(test_png_headers),
        cmocka_unit_test(test_jpeg_headers),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
