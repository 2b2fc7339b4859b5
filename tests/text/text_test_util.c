#include "text_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

char *tt_asset(const char *rel)
{
    const char *root = getenv("DLV_SHARED_ASSETS");
    if (!root) return NULL;
    char *dir = join(root, "tokenizers");
    char *p = dir ? join(dir, rel) : NULL;
    free(dir);
    FILE *f = p ? fopen(p, "rb") : NULL;
    if (!f) {
        free(p);
        return NULL;
    }
    fclose(f);
    return p;
}

char *tt_source(const char *rel)
{
    const char *root = getenv("DLV_SOURCE_ROOT");
    return join(root ? root : ".", rel);
}

char *tt_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n + 1 < cap) break;
        cap *= 2;
        char *b = realloc(buf, cap);
        if (!b) {
            free(buf);
            buf = NULL;
        } else
            buf = b;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

size_t tt_split_cases(char *text, size_t len, char ***starts, size_t **lens)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t sl = sizeof sep - 1, n = 0, cap = 64, pos = 0;
    *starts = malloc(cap * sizeof **starts);
    *lens = malloc(cap * sizeof **lens);
    while (pos <= len) {
        char *hit = NULL;
        for (size_t i = pos; i + sl <= len; i++)
            if (memcmp(text + i, sep, sl) == 0) {
                hit = text + i;
                break;
            }
        if (!hit) break;
        if (n == cap) {
            cap *= 2;
            *starts = realloc(*starts, cap * sizeof **starts);
            *lens = realloc(*lens, cap * sizeof **lens);
        }
        (*starts)[n] = text + pos;
        (*lens)[n] = (size_t)(hit - (text + pos));
        n++;
        pos = (size_t)(hit - text) + sl;
    }
    return n;
}

size_t tt_parse_ids(const char *line, int32_t *ids, size_t cap)
{
    size_t n = 0;
    const char *p = line;
    while (*p && *p != '\n') {
        while (*p == ' ') p++;
        if (!*p || *p == '\n') break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        p = end;
    }
    return n;
}
