/* Tokenizer throughput: load time of each tokenizer in
 * ../shared/assets/tokenizers and encode time of 1 MiB of mixed text
 * (English, code, CJK, digits, emoji) and of 1 MiB without any whitespace
 * (one huge pre-tokenized word: the worst case for BPE merging).
 *
 *   bench_tokenize [ASSETS_DIR] [--write-text FILE]
 *
 * --write-text also saves the mixed text, so that the Python reference can
 * time the same bytes (tests/reference/tokenizers_reference.py --bench). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "disclvlm.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Deterministic mixed text of n bytes (cut at a character boundary). */
static char *mixed_text(size_t n, size_t *len)
{
    static const char *parts[] = {
        "The quick brown fox jumps over the lazy dog. ", "It's 2024-01-01 and we've got 3.14159 ",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }\n", "日本語のテキストと中文文本。",
        "Привет, мир! ", "🙂👍🏽 emoji ", "   spaces\t\ttabs\n\n", "https://example.com/a?b=c ",
        "supercalifragilisticexpialidocious ", "naïve café ",
    };
    char *t = malloc(n + 64);
    if (!t) return NULL;
    size_t o = 0;
    unsigned seed = 12345;
    while (o < n) {
        seed = seed * 1103515245u + 12345u;
        const char *p = parts[(seed >> 16) % (sizeof parts / sizeof parts[0])];
        size_t l = strlen(p);
        if (o + l > n) break;
        memcpy(t + o, p, l);
        o += l;
    }
    *len = o;
    return t;
}

static char *no_space_text(size_t n, size_t *len)
{
    char *t = malloc(n);
    if (!t) return NULL;
    unsigned seed = 7;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        t[i] = (char)('a' + (seed >> 16) % 26);
    }
    *len = n;
    return t;
}

static double time_encode(const dlv_tokenizer *tok, const char *t, size_t len, size_t *n_ids)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (dlv_tokenize(tok, t, len, 0, NULL, 0, n_ids) != DLV_OK) {
            fprintf(stderr, "tokenize: %s\n", dlv_last_error());
            return -1;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *assets = "../shared/assets/tokenizers", *write_to = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--write-text") == 0 && i + 1 < argc) write_to = argv[++i];
        else assets = argv[i];
    }
    size_t mlen, slen;
    char *mixed = mixed_text((size_t)1 << 20, &mlen), *nospace = no_space_text((size_t)1 << 20, &slen);
    if (!mixed || !nospace) return 1;
    if (write_to) {
        FILE *f = fopen(write_to, "wb");
        if (!f || fwrite(mixed, 1, mlen, f) != mlen) return 1;
        fclose(f);
    }
    static const char *names[] = {"llama2/tokenizer.json", "llama2/tokenizer.model",
                                  "qwen2/tokenizer.json", "mistral/tokenizer.json"};
    printf("%-24s %9s %12s %10s %12s %10s\n", "tokenizer", "load s", "1MiB mixed s", "ids",
           "1MiB nospace", "ids");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", assets, names[i]);
        dlv_tokenizer *tok = NULL;
        double t0 = now();
        if (dlv_tokenizer_load(path, &tok) != DLV_OK) {
            fprintf(stderr, "%s: %s\n", path, dlv_last_error());
            continue;
        }
        double load = now() - t0;
        size_t n1 = 0, n2 = 0;
        double e1 = time_encode(tok, mixed, mlen, &n1), e2 = time_encode(tok, nospace, slen, &n2);
        printf("%-24s %9.3f %12.3f %10zu %12.3f %10zu\n", names[i], load, e1, n1, e2, n2);
        dlv_tokenizer_free(tok);
    }
    free(mixed);
    free(nospace);
    return 0;
}
