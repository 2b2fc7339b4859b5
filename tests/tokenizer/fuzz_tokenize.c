/* libFuzzer harness for the tokenizer: the input's first byte picks a mode,
 * the rest is either text to tokenize (with a small synthetic tokenizer that
 * has byte-level BPE, a Split regex, NFKC, Metaspace and added tokens with
 * lstrip/rstrip/single_word) or a tokenizer file to load (tokenizer.json or
 * a SentencePiece protobuf). Not part of the test run. Build with clang,
 * instrumenting the library too:
 *
 *   CC=clang meson setup build-fuzz -Dcuda=disabled -Db_lundef=false \
 *       -Db_sanitize=address,undefined -Dc_args=-fsanitize=fuzzer-no-link
 *   ninja -C build-fuzz tests/tokenizer/fuzz_tokenize
 *   mkdir -p fuzz-corpus && build-fuzz/tests/tokenizer/fuzz_tokenize -max_len=4096 \
 *       -max_total_time=300 fuzz-corpus
 *
 * Invalid input must fail with a status; a crash, a sanitizer report, a
 * leak or a failed check below (ids in range, decode of any valid ids
 * succeeds) is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char TOKENIZER[] =
    "{\"added_tokens\":["
    "{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"lstrip\":true,\"rstrip\":true},"
    "{\"id\":2,\"content\":\"ab\",\"single_word\":true,\"normalized\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},"
    "{\"type\":\"Lowercase\"},{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+(?!\\\\S)|\\\\p{L}+|\\\\p{N}\"},"
    "\"behavior\":\"MergedWithPrevious\"},"
    "{\"type\":\"Metaspace\",\"prepend_scheme\":\"first\"},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}]},"
    "\"post_processor\":{\"type\":\"RobertaProcessing\",\"cls\":[\"<s>\",1],\"sep\":[\"<s>\",1]},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteLevel\"},"
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
    "\"start\":1,\"stop\":1}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"ab\":2,\"a\":3,\"b\":4,\"\\u0120\":5,\"\\u0120a\":6,"
    "\"<0x41>\":7,\"<0xC3>\":8,\"\\u00e2\":9,\"\\u0122\":10,\"\\u0121\":11},"
    "\"merges\":[\"a b\",[\"\\u0120\",\"a\"]]}}";

static void check_ids(const dlv_tokenizer *tok, const dlv_ids *ids)
{
    for (size_t i = 0; i < ids->n; i++)
        if (ids->v[i] < 0 || (size_t)ids->v[i] >= tok->vocab_size) abort();
    dlv_tbuf text = {0};
    if (dlv_tokenizer_decode(tok, ids->v, ids->n, (int)(ids->n & 1), &text) != DLV_OK) abort();
    dlv_tbuf_free(&text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0] % 3;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    dlv_tokenizer *tok = NULL;
    dlv_status st;
    if (mode == 0) st = dlv_tokenizer_from_json_text(TOKENIZER, sizeof TOKENIZER - 1, "fuzz", &tok);
    else if (mode == 1) st = dlv_tokenizer_from_json_text(rest, n, "fuzz", &tok);
    else st = dlv_tokenizer_from_spm_bytes(data + 1, n, "fuzz", &tok);
    if (st != DLV_OK) {
        if (mode == 0) abort(); /* the built-in tokenizer must load */
        return 0;
    }
    const char *text = mode == 0 ? rest : "a ab <s>\xC3\xA9 12\n";
    size_t len = mode == 0 ? n : strlen(text);
    dlv_ids ids = {0};
    if (dlv_tokenizer_encode(tok, text, len, 1, &ids) == DLV_OK) check_ids(tok, &ids);
    dlv_ids_free(&ids);
    dlv_tokenizer_destroy(tok);
    return 0;
}
