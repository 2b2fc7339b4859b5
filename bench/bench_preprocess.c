/* Decode + preprocess throughput: a JPEG to the CLIP-336 tensor of
 * llava-1.5 (shortest edge 336, bicubic, center crop 336, rescale,
 * normalize), one thread, the whole image held in memory. Also reports the
 * decode and the resize alone. bench/bench_preprocess_pillow.py writes the
 * 1000x872 input and times Pillow + NumPy on the same work.
 *
 * Usage: bench_preprocess IMAGE.jpg [seconds]   (default 2 per row) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image/image_source.h"
#include "core/fs.h"
#include "model/config.h"
#include "image/decode.h"
#include "image/preprocess.h"

static const char clip336[] =
    "{\"crop_size\": {\"height\": 336, \"width\": 336}, \"do_center_crop\": true,"
    " \"image_mean\": [0.48145466, 0.4578275, 0.40821073],"
    " \"image_std\": [0.26862954, 0.26130258, 0.27577711], \"resample\": 3,"
    " \"size\": {\"shortest_edge\": 336}, \"image_processor_type\": \"CLIPImageProcessor\"}";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef enum stage { DECODE, RESIZE, ALL } stage;

static int run_once(stage s, const dlv_image *im, const dlv_rgb8 *decoded,
                    const dlv_preproc_config *cfg, float *out)
{
    dlv_rgb8 rgb = {NULL, 0, 0}, pix = {NULL, 0, 0};
    dlv_status st = DLV_OK;
    if (s != RESIZE) st = dlv_image_decode(im, NULL, &rgb);
    if (st == DLV_OK && s != DECODE)
        st = dlv_preprocess_rgb8(cfg, s == RESIZE ? decoded : &rgb, 0, DLV_DEFAULT_MAX_PIXELS,
                                 &pix);
    if (st == DLV_OK && s == ALL) st = dlv_preprocess_to_float(cfg, &pix, out, 3 * 336 * 336);
    dlv_rgb8_free(&rgb);
    dlv_rgb8_free(&pix);
    if (st != DLV_OK) fprintf(stderr, "bench_preprocess: %s\n", dlv_last_error());
    return st == DLV_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_preprocess IMAGE.jpg [seconds]\n");
        return 2;
    }
    double budget = argc > 2 ? atof(argv[2]) : 2.0;
    char *bytes = NULL;
    size_t n = 0;
    dlv_image *im = NULL;
    dlv_preproc_config cfg;
    dlv_rgb8 decoded = {NULL, 0, 0};
    float *out = malloc(3 * 336 * 336 * sizeof *out);
    if (!out || dlv_read_file(argv[1], (size_t)1 << 30, &bytes, &n) != DLV_OK ||
        dlv_image_from_memory(bytes, n, &im) != DLV_OK ||
        dlv_preproc_config_parse(clip336, sizeof clip336 - 1, "clip336", &cfg) != DLV_OK ||
        dlv_image_decode(im, NULL, &decoded) != DLV_OK) {
        fprintf(stderr, "bench_preprocess: %s\n", dlv_last_error());
        return 1;
    }
    printf("input %s: %ux%u JPEG, %zu bytes -> [3, 336, 336] (CLIP-336, bicubic)\n", argv[1],
           (unsigned)decoded.width, (unsigned)decoded.height, n);
    printf("%-28s %10s %12s\n", "stage (libdisclvlm, 1 thread)", "ms/image", "images/s");
    const char *names[3] = {"decode (libjpeg-turbo)", "resize + crop (8-bit)",
                            "decode + preprocess"};
    for (int s = 0; s < 3; s++) {
        if (run_once((stage)s, im, &decoded, &cfg, out) != 0) return 1; /* warm-up */
        int iters = 0;
        double t0 = now_s(), t;
        do {
            if (run_once((stage)s, im, &decoded, &cfg, out) != 0) return 1;
            iters++;
            t = now_s() - t0;
        } while (t < budget);
        printf("%-28s %10.2f %12.1f\n", names[s], 1e3 * t / iters, iters / t);
    }
    dlv_rgb8_free(&decoded);
    dlv_image_free(im);
    free(bytes);
    free(out);
    return 0;
}
