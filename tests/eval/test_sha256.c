/* lib/core/sha256.c against the FIPS 180-4 / NIST example vectors, the
 * padding boundaries (lengths around 55/56/64 bytes, from Python's hashlib),
 * streaming in uneven pieces, and files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"

static void test_nist_vectors(void **state)
{
    (void)state;
    char hex[65];
    dlv_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    dlv_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    dlv_sha256_hex(m448, strlen(m448), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnop"
                       "qklmnopqrlmnopqrsmnopqrstnopqrstu";
    dlv_sha256_hex(m896, strlen(m896), hex);
    assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state)
{
    (void)state;
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    char hex[65];
    dlv_sha256_hex(a, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* The same in pieces of 1, 2, 3, ... bytes. */
    dlv_sha256 c;
    uint8_t d[32];
    dlv_sha256_init(&c);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t k = 1000000 - off < step ? 1000000 - off : step;
        dlv_sha256_update(&c, a + off, k);
        off += k;
        step = step % 131 + 1;
    }
    dlv_sha256_final(&c, d);
    char hex2[65];
    dlv_sha256_to_hex(d, hex2);
    assert_string_equal(hex2, hex);
    free(a);
}

static void test_padding_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {57, "f13b2d724659eb3bf47f2dd6af1accc87b81f09f59f2b75e5c0bed6589dfe8c6"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    char buf[128], hex[65];
    memset(buf, 'a', sizeof buf);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        dlv_sha256_hex(buf, v[i].n, hex);
        assert_string_equal(hex, v[i].hex);
        /* split at every point */
        for (size_t cut = 0; cut <= v[i].n; cut++) {
            dlv_sha256 c;
            uint8_t d[32];
            dlv_sha256_init(&c);
            dlv_sha256_update(&c, buf, cut);
            dlv_sha256_update(&c, buf + cut, v[i].n - cut);
            dlv_sha256_final(&c, d);
            dlv_sha256_to_hex(d, hex);
            assert_string_equal(hex, v[i].hex);
        }
    }
}

static void test_file(void **state)
{
    (void)state;
    char path[] = "/tmp/dlv-sha-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    /* 200000 bytes of 'a' crosses the reader's 64 KiB chunks. */
    for (int i = 0; i < 200000; i++) fputc('a', f);
    fclose(f);
    char hex[65], want[65];
    assert_int_equal(dlv_sha256_file(path, hex), DLV_OK);
    char *a = malloc(200000);
    assert_non_null(a);
    memset(a, 'a', 200000);
    dlv_sha256_hex(a, 200000, want);
    free(a);
    assert_string_equal(hex, want);
    remove(path);
    assert_int_equal(dlv_sha256_file(path, hex), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nist_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_padding_boundaries),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
