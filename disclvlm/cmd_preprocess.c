/* disclvlm preprocess: the float32 [3, H, W] tensor the model's vision tower
 * would see for one image, as a NumPy .npy file (format 1.0, little-endian,
 * C order), written atomically (temporary file, fsync, rename). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "disclvlm.h"

static void preprocess_usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm preprocess --model MODEL_DIR [--pad-square] [--exif-rotate]\n"
            "                           [--max-pixels N] IMAGE --out PIXELS.npy\n"
            "\n"
            "Decodes IMAGE (PNG or JPEG) and preprocesses it as the model's Hugging Face\n"
            "image processor does (preprocessor_config.json), writing the float32 tensor\n"
            "[3, H, W] as a NumPy .npy file. --pad-square pads to a square of the mean\n"
            "colour first (LLaVA-1.5 image_aspect_ratio \"pad\"); --exif-rotate applies\n"
            "the EXIF orientation; --max-pixels refuses larger images (default: Pillow's\n"
            "decompression-bomb limit, 178956970).\n");
}

static int write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The .npy header: magic, version 1.0, a little-endian length, and a dict
 * padded with spaces to a multiple of 64 bytes, ending in a newline. */
static size_t npy_header(char *buf, size_t cap, size_t c, size_t h, size_t w)
{
    char dict[160];
    int n = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu, %zu), }", c,
                     h, w);
    if (n < 0 || (size_t)n >= sizeof dict) return 0;
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) / 64 * 64;
    if (total > cap) return 0;
    size_t hlen = total - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
    buf[total - 1] = '\n';
    return total;
}

static int write_npy(const char *path, const float *x, size_t c, size_t h, size_t w)
{
    char header[256];
    size_t hn = npy_header(header, sizeof header, c, h, w);
    size_t n = c * h * w;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    unsigned char *le = malloc(n * 4);
    if (!tmp || !le || hn == 0) {
        free(tmp);
        free(le);
        fprintf(stderr, "disclvlm: preprocess: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        le[4 * i] = (unsigned char)u;
        le[4 * i + 1] = (unsigned char)(u >> 8);
        le[4 * i + 2] = (unsigned char)(u >> 16);
        le[4 * i + 3] = (unsigned char)(u >> 24);
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        fprintf(stderr, "disclvlm: preprocess: %s: cannot create: %s\n", path, strerror(errno));
        rc = 1;
    } else {
        int bad = write_all(fd, header, hn) || write_all(fd, le, n * 4) || fsync(fd) != 0;
        int err = errno;
        bad = close(fd) != 0 || bad;
        if (!bad && rename(tmp, path) != 0) {
            err = errno;
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "disclvlm: preprocess: %s: write failed: %s\n", path, strerror(err));
            remove(tmp);
            rc = 1;
        } else {
            /* Make the rename durable. */
            char *dir = strdup(path);
            char *slash = dir ? strrchr(dir, '/') : NULL;
            const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
            int dfd = open(d, O_RDONLY | O_DIRECTORY);
            if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    free(tmp);
    free(le);
    return rc;
}

int cmd_preprocess(int argc, char **argv)
{
    const char *model_dir = NULL, *image_path = NULL, *out_path = NULL;
    int pad = 0, exif = 0;
    unsigned long long max_pixels = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            preprocess_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model_dir = argv[++i];
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out_path = argv[++i];
        } else if (strcmp(argv[i], "--pad-square") == 0) {
            pad = 1;
        } else if (strcmp(argv[i], "--exif-rotate") == 0) {
            exif = 1;
        } else if (strcmp(argv[i], "--max-pixels") == 0 && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            max_pixels = strtoull(argv[++i], &end, 10);
            if (errno || !end || *end || max_pixels == 0 || argv[i][0] == '-') {
                fprintf(stderr, "disclvlm preprocess: --max-pixels: '%s' is not a positive "
                                "integer\n", argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "disclvlm preprocess: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!image_path) {
            image_path = argv[i];
        } else {
            fprintf(stderr, "disclvlm preprocess: one IMAGE expected, got '%s' too\n", argv[i]);
            return 2;
        }
    }
    if (!model_dir || !image_path || !out_path) {
        preprocess_usage(stderr);
        return 2;
    }

    dlv_model *model = NULL;
    dlv_image *image = NULL;
    dlv_preprocess_options *opts = NULL;
    float *pixels = NULL;
    size_t c = 0, h = 0, w = 0;
    int rc = 0;
    if (dlv_preprocess_options_new(&opts) != DLV_OK ||
        dlv_preprocess_options_set_pad_square(opts, pad) != DLV_OK ||
        dlv_preprocess_options_set_exif_rotate(opts, exif) != DLV_OK ||
        (max_pixels && dlv_preprocess_options_set_max_pixels(opts, max_pixels) != DLV_OK) ||
        dlv_model_load(model_dir, NULL, &model) != DLV_OK ||
        dlv_model_image_size(model, &c, &h, &w) != DLV_OK ||
        dlv_image_from_file(image_path, &image) != DLV_OK) {
        rc = cli_fail("preprocess");
        goto done;
    }
    pixels = malloc(c * h * w * sizeof *pixels);
    if (!pixels) {
        fprintf(stderr, "disclvlm: preprocess: out of memory\n");
        rc = 1;
        goto done;
    }
    if (dlv_preprocess_image(model, image, opts, pixels, c * h * w) != DLV_OK) {
        rc = cli_fail("preprocess");
        goto done;
    }
    rc = write_npy(out_path, pixels, c, h, w);
done:
    free(pixels);
    dlv_image_free(image);
    dlv_model_free(model);
    dlv_preprocess_options_free(opts);
    return rc;
}
