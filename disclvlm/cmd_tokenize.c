/* disclvlm tokenize / detokenize: text <-> ids with a model directory's,
 * a tokenizer.json's or a tokenizer.model's tokenizer. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "disclvlm.h"

static void tokenize_usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm tokenize --tokenizer PATH [--add-special] [TEXT | -]\n"
            "\n"
            "Prints the token ids of TEXT, separated by spaces, on one line. With '-'\n"
            "or no TEXT the exact bytes of stdin are the text. PATH is a model\n"
            "directory, a tokenizer.json or a tokenizer.model. --add-special adds the\n"
            "special tokens (BOS/EOS) the tokenizer's template asks for.\n");
}

static void detokenize_usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm detokenize --tokenizer PATH [--skip-special] IDS...\n"
            "\n"
            "Prints the text of the token ids (decimal, as separate arguments or\n"
            "space-separated in one) followed by a newline.\n");
}

static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap) break;
        cap *= 2;
        char *b = realloc(buf, cap);
        if (!b) free(buf);
        buf = b;
    }
    if (buf && ferror(stdin)) {
        free(buf);
        buf = NULL;
    }
    *len = n;
    return buf;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL, *text = NULL;
    unsigned flags = 0;
    int from_stdin = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            tokenize_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--add-special") == 0) {
            flags |= DLV_TOKENIZE_ADD_SPECIAL;
        } else if (strcmp(argv[i], "-") == 0 && !text && !from_stdin) {
            from_stdin = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "disclvlm: tokenize: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!text && !from_stdin) {
            text = argv[i];
        } else {
            fprintf(stderr, "disclvlm: tokenize: one TEXT expected, got '%s' too\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        cli_missing("tokenize", "--tokenizer PATH");
        return 2;
    }
    size_t len = 0;
    char *owned = NULL;
    if (!text) {
        owned = read_stdin(&len);
        if (!owned) {
            fprintf(stderr, "disclvlm: tokenize: cannot read stdin: %s\n", strerror(errno));
            return 1;
        }
        text = owned;
    } else
        len = strlen(text);

    dlv_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 0;
    if (dlv_tokenizer_load(path, &tok) != DLV_OK || dlv_tokenize(tok, text, len, flags, NULL, 0,
                                                                 &n) != DLV_OK) {
        rc = cli_fail("tokenize");
        goto done;
    }
    ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "disclvlm: tokenize: out of memory\n");
        rc = 1;
        goto done;
    }
    if (dlv_tokenize(tok, text, len, flags, ids, n, &n) != DLV_OK) {
        rc = cli_fail("tokenize");
        goto done;
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %ld" : "%ld", (long)ids[i]);
    printf("\n");
done:
    free(ids);
    free(owned);
    dlv_tokenizer_free(tok);
    return rc;
}

/* Appends the ids in s (decimal, space-separated); 0 on a bad number. */
static int parse_ids(const char *s, int32_t **ids, size_t *n, size_t *cap)
{
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < INT32_MIN || v > INT32_MAX ||
            (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != ','))
            return 0;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            int32_t *p = realloc(*ids, *cap * sizeof *p);
            if (!p) return 0;
            *ids = p;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return 1;
}

int cmd_detokenize(int argc, char **argv)
{
    const char *path = NULL;
    unsigned flags = 0;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            detokenize_usage(stdout);
            free(ids);
            return 0;
        } else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--skip-special") == 0) {
            flags |= DLV_DETOKENIZE_SKIP_SPECIAL;
        } else if (argv[i][0] == '-' && (argv[i][1] < '0' || argv[i][1] > '9')) {
            fprintf(stderr, "disclvlm: detokenize: unknown option '%s'\n", argv[i]);
            free(ids);
            return 2;
        } else if (!parse_ids(argv[i], &ids, &n, &cap)) {
            fprintf(stderr, "disclvlm: detokenize: '%s' is not a list of token ids\n", argv[i]);
            free(ids);
            return 2;
        }
    }
    if (!path) {
        cli_missing("detokenize", "--tokenizer PATH");
        free(ids);
        return 2;
    }
    dlv_tokenizer *tok = NULL;
    char *buf = NULL;
    size_t needed = 0;
    if (dlv_tokenizer_load(path, &tok) != DLV_OK ||
        dlv_detokenize(tok, ids, n, flags, NULL, 0, &needed) != DLV_OK) {
        rc = cli_fail("detokenize");
        goto done;
    }
    buf = malloc(needed);
    if (!buf || dlv_detokenize(tok, ids, n, flags, buf, needed, &needed) != DLV_OK) {
        rc = buf ? cli_fail("detokenize") : 1;
        goto done;
    }
    fwrite(buf, 1, needed - 1, stdout);
    printf("\n");
done:
    free(buf);
    free(ids);
    dlv_tokenizer_free(tok);
    return rc;
}
