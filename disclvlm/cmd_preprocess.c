/* disclvlm preprocess: the float32 [3, H, W] tensor the model's vision tower
 * would see for one image, as a NumPy .npy file (format 1.0, little-endian,
 * C order), written atomically (temporary file, fsync, rename: npy.c). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "disclvlm.h"
#include "npy.h"

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
            "the EXIF orientation; --max-pixels sets the most pixels an image may have,\n"
            "lower or higher than the default (Pillow's decompression-bomb limit,\n"
            "178956970).\n");
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
                fprintf(stderr, "disclvlm: preprocess: --max-pixels: '%s' is not an integer "
                                "in 1..%llu\n", argv[i], (unsigned long long)ULLONG_MAX);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "disclvlm: preprocess: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!image_path) {
            image_path = argv[i];
        } else {
            fprintf(stderr, "disclvlm: preprocess: one IMAGE expected, got '%s' too\n", argv[i]);
            return 2;
        }
    }
    if (!model_dir || !image_path || !out_path) {
        cli_missing("preprocess", !model_dir    ? "--model MODEL_DIR"
                                  : !image_path ? "IMAGE"
                                                : "--out PIXELS.npy");
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
    size_t shape[3] = {c, h, w};
    rc = npy_write_f32("preprocess", out_path, pixels, shape, 3);
done:
    free(pixels);
    dlv_image_free(image);
    dlv_model_free(model);
    dlv_preprocess_options_free(opts);
    return rc;
}
