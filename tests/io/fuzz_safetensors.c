/* libFuzzer harness for the safetensors header validator. Not part of the
 * test run. Build with clang, instrumenting the library too:
 *
 *   CC=clang meson setup build-fuzz -Dcuda=disabled -Db_lundef=false \
 *       -Db_sanitize=address,undefined -Dc_args=-fsanitize=fuzzer-no-link
 *   ninja -C build-fuzz tests/io/fuzz_safetensors
 *   mkdir -p corpus && cp ../shared/assets/safetensors/tensor-*.safetensors corpus/
 *   build-fuzz/tests/io/fuzz_safetensors -max_len=4096 corpus
 *
 * Any accepted input must describe bytes inside the input; a crash, a
 * sanitizer report or a failed check below is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dlv_st_file *f = NULL;
    if (dlv_st_open_memory(data, size, "fuzz", &f) != DLV_OK) return 0;
    for (size_t i = 0; i < dlv_st_count(f); i++) {
        const dlv_st_tensor *t = dlv_st_at(f, i);
        const uint8_t *p = t->data;
        if (p < data || t->n_bytes > size || p - data > (ptrdiff_t)(size - t->n_bytes) ||
            dlv_st_find(f, t->name) != t)
            abort(); /* the harness reports a validator bug, not bad input */
        if (dlv_dtype_is_float(t->dtype) && t->n_elements > 0) {
            float v;
            if (dlv_st_read_f32(t, t->n_elements - 1, 1, &v) != DLV_OK) abort();
        }
    }
    dlv_st_close(f);
    return 0;
}
