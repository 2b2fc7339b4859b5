/* libFuzzer harness for image decoding and preprocessing. Not part of the
 * test run. Build with clang, instrumenting the library too:
 *
 *   CC=clang meson setup build-fuzz -Dcuda=disabled -Db_lundef=false \
 *       -Db_sanitize=address,undefined -Dc_args=-fsanitize=fuzzer-no-link
 *   ninja -C build-fuzz tests/image/fuzz_decode
 *   cp -r tests/image/data corpus-img
 *   build-fuzz/tests/image/fuzz_decode -max_len=65536 -rss_limit_mb=4096 corpus-img
 *
 * (The corpus includes the crafted files of tests/image/data/limits.)
 *
 * Inputs are PNG or JPEG bytes; the first byte's low bit also turns EXIF
 * rotation on. A decoded image must have the size it claims; a crash, a
 * sanitizer report, a leak or a failed check is a bug. The pixel limit is
 * lowered so that the fuzzer explores parsers rather than allocations. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "image/decode.h"
#include "image/preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dlv_decode_opts opts = {(uint64_t)1 << 22, size > 0 && (data[0] & 1)};
    dlv_rgb8 img;
    if (dlv_decode_image(data, size, "fuzz", &opts, &img) != DLV_OK) {
        if (img.px) abort();
        return 0;
    }
    if (!img.px || img.width == 0 || img.height == 0 ||
        (uint64_t)img.width * img.height > opts.max_pixels)
        abort();
    /* Touch every byte so that a short buffer shows up under ASan. */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++) sum += img.px[i];
    (void)sum;
    static const char cfg_json[] =
        "{\"size\": {\"shortest_edge\": 24}, \"crop_size\": {\"height\": 24, \"width\": 24}}";
    dlv_preproc_config cfg;
    if (dlv_preproc_config_parse(cfg_json, sizeof cfg_json - 1, "fuzz", &cfg) != DLV_OK) abort();
    dlv_rgb8 pix;
    if (dlv_preprocess_rgb8(&cfg, &img, size > 1 && (data[1] & 1), opts.max_pixels, &pix) ==
        DLV_OK) {
        float out[3 * 24 * 24];
        if (pix.width != 24 || pix.height != 24 ||
            dlv_preprocess_to_float(&cfg, &pix, out, sizeof out / sizeof out[0]) != DLV_OK)
            abort();
        dlv_rgb8_free(&pix);
    }
    dlv_rgb8_free(&img);
    return 0;
}
