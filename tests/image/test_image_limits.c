/* The decoders' limits on crafted input (docs/images.md "Hostile input"):
 * PNG chunks that declare more bytes than the file holds are refused before
 * libpng allocates for them, and the memory a decode takes stays small
 * (measured in a child process with getrusage); ancillary chunks the
 * decoder does not use may be large; JPEGs are accepted or refused exactly
 * as Pillow 11.0 accepts or refuses them. The crafted files and Pillow's
 * verdicts are tests/image/data/limits (tests/reference/limits_reference.py);
 * the large PNGs are built here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "core/fs.h"
#include "image/decode.h"
#include "image/image_source.h"

/* ASan's allocator and shadow memory make RSS meaningless there; the
 * decodes still run, only the RSS bounds are not checked. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* What a decode of a small file may add to the peak RSS: far below the
 * 2 GiB the 41-byte bombs cost before the chunk-length check. */
#define SMALL_RSS_KIB (16L * 1024)

static const char *label = "limits.png";

static char *data_path(const char *name)
{
    const char *src = getenv("DLV_SOURCE_ROOT");
    size_t len = strlen(src ? src : ".") + strlen(name) + 64;
    char *path = malloc(len);
    assert_non_null(path);
    snprintf(path, len, "%s/tests/image/data/limits/%s", src ? src : ".", name);
    return path;
}

static unsigned char *read_data(const char *name, size_t *n)
{
    char *path = data_path(name);
    char *data = NULL;
    assert_int_equal(dlv_read_file(path, (size_t)1 << 24, &data, n), DLV_OK);
    free(path);
    return (unsigned char *)data;
}

typedef struct probe {
    int status;
    uint32_t width, height;
    long rss_kib; /* growth of the peak RSS over the decode */
    char msg[768];
} probe;

/* Decodes in a child process, so that the peak RSS before the decode is the
 * small one of a fresh process image and not whatever the tests before
 * reached. */
static probe decode_in_child(const unsigned char *data, size_t n, int exif_rotate)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        probe p;
        memset(&p, 0, sizeof p);
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        dlv_rgb8 img = {NULL, 0, 0};
        dlv_decode_opts o = {DLV_DEFAULT_MAX_PIXELS, exif_rotate};
        p.status = (int)dlv_decode_image(data, n, label, &o, &img);
        getrusage(RUSAGE_SELF, &r1);
        p.rss_kib = r1.ru_maxrss - r0.ru_maxrss;
        p.width = img.width;
        p.height = img.height;
        if (p.status != DLV_OK) snprintf(p.msg, sizeof p.msg, "%s", dlv_last_error());
        dlv_rgb8_free(&img);
        const char *b = (const char *)&p;
        size_t left = sizeof p;
        while (left > 0) {
            ssize_t w = write(fds[1], b, left);
            if (w <= 0) _exit(2);
            b += w;
            left -= (size_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    probe p;
    char *b = (char *)&p;
    size_t got = 0;
    while (got < sizeof p) {
        ssize_t r = read(fds[0], b + got, sizeof p - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fds[0]);
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0 || got != sizeof p)
        fail_msg("decoding child died (wait status %d, %zu bytes back)", ws, got);
    return p;
}

/* Returns 1 (and prints why) when the decode took more than limit_kib. */
static int rss_over(const probe *p, long limit_kib, const char *what)
{
    printf("%s: peak RSS +%ld KiB (limit %ld)%s\n", what, p->rss_kib, limit_kib,
           UNDER_ASAN ? ", not checked under ASan" : "");
    if (UNDER_ASAN || p->rss_kib <= limit_kib) return 0;
    printf("FAIL %s: the decode raised the peak RSS by %ld KiB, more than %ld\n", what,
           p->rss_kib, limit_kib);
    return 1;
}

static void check_rss(const probe *p, long limit_kib, const char *what)
{
    if (rss_over(p, limit_kib, what)) fail_msg("%s: too much memory", what);
}

/* The 41-byte PNGs: signature, a 1x1 IHDR and a chunk header declaring
 * 2^31 - 1 bytes (2^31 for tEXt_2gib) with nothing after it. libpng used to
 * allocate and zero the declared length of a text or sPLT chunk (2 GB of
 * RSS) before finding the data missing. */
static void test_png_bombs(void **state)
{
    (void)state;
    static const struct {
        const char *file, *type;
        unsigned long declared;
    } bombs[] = {
        {"png_bomb_tEXt.png", "tEXt", 2147483647ul}, {"png_bomb_zTXt.png", "zTXt", 2147483647ul},
        {"png_bomb_iTXt.png", "iTXt", 2147483647ul}, {"png_bomb_sPLT.png", "sPLT", 2147483647ul},
        {"png_bomb_iCCP.png", "iCCP", 2147483647ul}, {"png_bomb_eXIf.png", "eXIf", 2147483647ul},
        {"png_bomb_prVt.png", "prVt", 2147483647ul}, {"png_bomb_IDAT.png", "IDAT", 2147483647ul},
        {"png_bomb_tEXt_2gib.png", "tEXt", 2147483648ul},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        size_t n = 0;
        unsigned char *data = read_data(bombs[i].file, &n);
        assert_int_equal(n, 41);
        probe p = decode_in_child(data, n, 0);
        printf("%s: status %d: %s\n", bombs[i].file, p.status, p.msg);
        failures += rss_over(&p, SMALL_RSS_KIB, bombs[i].file);
        char want[160];
        snprintf(want, sizeof want, "the %s chunk at offset 33 declares %lu bytes of data, only 0 "
                 "follow its header", bombs[i].type, bombs[i].declared);
        if (p.status != DLV_E_FORMAT || !strstr(p.msg, label) || !strstr(p.msg, want)) {
            printf("FAIL %s: wanted DLV_E_FORMAT naming %s and saying '%s'\n", bombs[i].file,
                   label, want);
            failures++;
        }
        free(data);
    }
    assert_int_equal(failures, 0);
}

/* ---- PNGs built here ---- */

/* A PNG under construction. Its buffer is allocated once at its final size:
 * a large block freed in this process before a child's decode would leave
 * resident heap pages for the child to reuse unseen by its RSS. */
typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    assert_true(n <= b->cap - b->n);
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put32(buf *b, uint32_t v)
{
    unsigned char be[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v};
    put(b, be, 4);
}

/* A chunk of n data bytes: head (head_n bytes) then fill bytes. */
static void put_chunk(buf *b, const char *type, const void *head, size_t head_n, size_t n,
                      unsigned char fill)
{
    put32(b, (uint32_t)n);
    size_t at = b->n;
    put(b, type, 4);
    if (head_n) put(b, head, head_n);
    assert_true(n - head_n <= b->cap - b->n);
    memset(b->p + b->n, fill, n - head_n);
    b->n += n - head_n;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t i = at; i < b->n; i += (size_t)1 << 30) {
        size_t part = b->n - i < ((size_t)1 << 30) ? b->n - i : ((size_t)1 << 30);
        crc = crc32(crc, b->p + i, (uInt)part);
    }
    put32(b, (uint32_t)crc);
}

/* A 5x4 8-bit gray PNG with one extra chunk before IDAT (type NULL: none)
 * of n bytes: head, then fill bytes. */
static buf gray_png(const char *type, const void *head, size_t head_n, size_t n,
                    unsigned char fill)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    buf b = {NULL, 0, n + 512};
    b.p = malloc(b.cap);
    assert_non_null(b.p);
    put(&b, sig, 8);
    static const unsigned char ihdr[13] = {0, 0, 0, 5, 0, 0, 0, 4, 8, 0, 0, 0, 0};
    put_chunk(&b, "IHDR", ihdr, sizeof ihdr, sizeof ihdr, 0);
    if (type) put_chunk(&b, type, head, head_n, n, fill);
    unsigned char raw[4 * 6];
    for (int y = 0; y < 4; y++) {
        raw[y * 6] = 0; /* filter: none */
        for (int x = 0; x < 5; x++) raw[y * 6 + 1 + x] = (unsigned char)(x * 50 + y * 9);
    }
    unsigned char z[128];
    uLongf zn = sizeof z;
    assert_int_equal(compress(z, &zn, raw, sizeof raw), Z_OK);
    put_chunk(&b, "IDAT", z, zn, zn, 0);
    put_chunk(&b, "IEND", NULL, 0, 0, 0);
    return b;
}

static void decode_ok(const buf *b, int exif_rotate, dlv_rgb8 *img)
{
    dlv_decode_opts o = {DLV_DEFAULT_MAX_PIXELS, exif_rotate};
    dlv_status st = dlv_decode_image(b->p, b->n, label, &o, img);
    if (st != DLV_OK) fail_msg("decode failed: %s", dlv_last_error());
}

/* Large but legitimate ancillary chunks decode, to the same pixels, without
 * the memory going up with them: a 16 MiB tEXt (Pillow accepts up to 64 MiB
 * of text) is skipped unread, where libpng used to hold it twice; a 4 MiB
 * eXIf, which is read for the orientation, costs at most twice its size.
 * The child decodes come first, before this process has freed anything
 * large. */
static void test_png_large_ancillary(void **state)
{
    (void)state;
    buf with_text = gray_png("tEXt", "Comment", 8, (size_t)16 << 20, 'x');
    probe p = decode_in_child(with_text.p, with_text.n, 0);
    if (p.status != DLV_OK) fail_msg("16 MiB tEXt: %s", p.msg);
    check_rss(&p, SMALL_RSS_KIB / 2, "16 MiB tEXt");

    /* eXIf: big-endian TIFF, one IFD entry (orientation 6, rotate 90
     * clockwise), then zeros up to 4 MiB. */
    static const unsigned char tiff[] = {'M', 'M', 0, 42, 0, 0, 0, 8, /* header, IFD at 8 */
                                         0, 1,                       /* one entry */
                                         0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, /* SHORT 6 */
                                         0, 0, 0, 0};                /* no next IFD */
    buf with_exif = gray_png("eXIf", tiff, sizeof tiff, (size_t)4 << 20, 0);
    p = decode_in_child(with_exif.p, with_exif.n, 1);
    if (p.status != DLV_OK) fail_msg("4 MiB eXIf: %s", p.msg);
    assert_int_equal(p.width, 4); /* rotated */
    assert_int_equal(p.height, 5);
    check_rss(&p, (long)(2 * with_exif.n / 1024) + SMALL_RSS_KIB, "4 MiB eXIf");

    buf plain = gray_png(NULL, NULL, 0, 0, 0);
    dlv_rgb8 want = {NULL, 0, 0}, got = {NULL, 0, 0};
    decode_ok(&plain, 0, &want);
    decode_ok(&with_text, 0, &got);
    assert_int_equal(got.width, 5);
    assert_int_equal(got.height, 4);
    assert_memory_equal(got.px, want.px, (size_t)5 * 4 * 3);
    dlv_rgb8_free(&got);
    decode_ok(&with_exif, 1, &got);
    assert_int_equal(got.width, 4);
    assert_int_equal(got.height, 5);
    /* Rotated 90 degrees clockwise: out(x, y) = in(y, h - 1 - x). */
    for (uint32_t y = 0; y < 5; y++)
        for (uint32_t x = 0; x < 4; x++)
            assert_int_equal(got.px[(y * 4 + x) * 3], want.px[((3 - x) * 5 + y) * 3]);
    dlv_rgb8_free(&got);
    dlv_rgb8_free(&want);
    free(plain.p);
    free(with_text.p);
    free(with_exif.p);
}

/* ---- The crafted files and Pillow's verdicts ---- */

/* What the message of a refusal must say, beyond the file's path. */
static const struct {
    const char *file, *needle;
} needles[] = {
    {"png_text_over_by_one.png", "the tEXt chunk at offset 33 declares 65 bytes of data, only "
                                 "64 follow its header"},
    {"png_idat_over.png", "the IDAT chunk at offset 33 declares 123 bytes"},
    {"png_after_idat_text_over.png", "the tEXt chunk at offset 68 declares 1000 bytes"},
    {"png_after_idat_private_over.png", "the prVt chunk at offset 68 declares 1000 bytes"},
    {"jpeg_scan_unknown_ff99.jpg", "Unsupported marker type 0x99 (in the markers after the "
                                   "image data; libjpeg had warned: Corrupt JPEG data"},
    {"jpeg_unknown_ff99_before_eoi.jpg", "Unsupported marker type 0x99"},
    {"jpeg_unknown_ff02_before_eoi.jpg", "Unsupported marker type 0x02"},
    {"jpeg_second_sos.jpg", "Didn't expect more than one scan"},
    {"jpeg_scan_dht.jpg", "in the markers after the image data"},
    {"jpeg_no_eoi.jpg", "truncated"},
    {"jpeg_cut_3.jpg", "truncated"},
    {"jpeg_prog_no_eoi.jpg", "truncated"},
    {"jpeg_header_tem.jpg", "TEM marker"},
};

static void test_manifest(void **state)
{
    (void)state;
    char *path = data_path("manifest.tsv");
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    char line[1024];
    int n_files = 0, n_refused = 0, n_differ = 0, failures = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *name = strtok(line, "\t\n");
        char *pillow = strtok(NULL, "\t\n");
        char *ours = strtok(NULL, "\t\n");
        assert_non_null(name);
        assert_non_null(pillow);
        assert_non_null(ours);
        int refuse = strcmp(ours, "refuse") == 0;
        assert_true(refuse || strcmp(ours, "accept") == 0);
        if (strcmp(ours, pillow) != 0) n_differ++;
        char *file = data_path(name);
        dlv_image *im = NULL;
        assert_int_equal(dlv_image_from_file(file, &im), DLV_OK);
        dlv_rgb8 img = {NULL, 0, 0};
        dlv_clear_error();
        dlv_status st = dlv_image_decode(im, NULL, &img);
        if (refuse != (st != DLV_OK)) {
            printf("FAIL %s: Pillow 11.0 %ss it, this decoder must %s it, but %s\n", name,
                   pillow, ours, st == DLV_OK ? "decoded it" : dlv_last_error());
            failures++;
        } else if (refuse) {
            n_refused++;
            assert_int_equal(st, DLV_E_FORMAT);
            assert_null(img.px);
            const char *msg = dlv_last_error();
            if (!strstr(msg, file)) {
                printf("FAIL %s: the message does not name the file: %s\n", name, msg);
                failures++;
            }
            for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
                if (strcmp(needles[i].file, name) == 0 && !strstr(msg, needles[i].needle)) {
                    printf("FAIL %s: message '%s' lacks '%s'\n", name, msg, needles[i].needle);
                    failures++;
                }
        } else {
            assert_non_null(img.px);
        }
        dlv_rgb8_free(&img);
        dlv_image_free(im);
        free(file);
        n_files++;
    }
    fclose(f);
    free(path);
    printf("%d crafted files, %d refused, %d where Pillow differs (see the manifest)\n", n_files,
           n_refused, n_differ);
    assert_int_equal(failures, 0);
    assert_true(n_files >= 50);
    assert_true(n_differ <= 4);
}

/* Warnings about bytes outside the scan data change no pixel: those files
 * decode exactly as the clean one. */
static void test_jpeg_harmless_warnings(void **state)
{
    (void)state;
    const char *names[] = {"jpeg_junk_before_eoi.jpg", "jpeg_header_junk.jpg",
                           "jpeg_header_fill_ff.jpg", "jpeg_junk_after_eoi.jpg",
                           "jpeg_app1_before_eoi.jpg"};
    const char *src = getenv("DLV_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/image/data/jpeg_420.jpg", src ? src : ".");
    char *clean = NULL;
    size_t clean_n = 0;
    assert_int_equal(dlv_read_file(path, (size_t)1 << 24, &clean, &clean_n), DLV_OK);
    dlv_rgb8 want = {NULL, 0, 0};
    assert_int_equal(dlv_decode_image((unsigned char *)clean, clean_n, "clean", NULL, &want),
                     DLV_OK);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t n = 0;
        unsigned char *data = read_data(names[k], &n);
        dlv_rgb8 got = {NULL, 0, 0};
        assert_int_equal(dlv_decode_image(data, n, names[k], NULL, &got), DLV_OK);
        assert_int_equal(got.width, want.width);
        assert_int_equal(got.height, want.height);
        assert_memory_equal(got.px, want.px, (size_t)want.width * want.height * 3);
        dlv_rgb8_free(&got);
        free(data);
    }
    dlv_rgb8_free(&want);
    free(clean);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_bombs),
        cmocka_unit_test(test_png_large_ancillary),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_jpeg_harmless_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
