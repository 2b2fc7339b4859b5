/* disclvlm score: the cosine (or logit) matrix of images against texts, as
 * an aligned table or as JSON. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "disclvlm.h"

/* Table labels longer than this many characters are cut, ending in "...". */
#define IMAGE_LABEL_MAX 24
#define TEXT_LABEL_MAX 20

static void score_usage(FILE *to)
{
    fprintf(to, "usage: disclvlm score --model DIR [--adapter DIR] --image IMAGE... --text TEXT...\n"
                "                      [--json] [--logits] [--backend NAME] [--threads N]\n"
                "                      [--compute DTYPE]\n"
                "\n"
                "Embeds the images and the texts and prints their cosine similarities: one\n"
                "row per IMAGE, one column per TEXT, labelled with the image's file name and\n"
                "the text (both cut short when long). Each of --image and --text takes the\n"
                "arguments that follow it up to the next option, and may be repeated; '--'\n"
                "makes every remaining argument a text. --logits multiplies the cosines by\n"
                "the adapter's contrastive scale, exp(logit_scale) (1/0.07 without one).\n"
                "--json prints {\"images\": [...], \"texts\": [...], \"scores\": [[...]]}\n"
                "instead, with the image paths and texts in full and scores[i][j] for image i\n"
                "and text j.\n"
                "\n" CLI_RUN_OPTS_HELP);
}

/* The number of characters (UTF-8 lead bytes) in the first n bytes of s. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* A table label: s with control characters as spaces, cut to max
 * characters (the last three "...") at a character boundary. Heap. */
static char *make_label(const char *s, size_t max)
{
    size_t len = strlen(s);
    char *l = malloc(len + 4);
    if (!l) return NULL;
    size_t n = 0, chars = 0, cut = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        if ((b & 0xc0) != 0x80) {
            if (chars == max - 3) cut = n;
            if (++chars > max) {
                memcpy(l + cut, "...", 4);
                return l;
            }
        }
        l[n++] = (char)(b < 0x20 || b == 0x7f ? ' ' : b);
    }
    l[n] = '\0';
    return l;
}

/* Prints s padded to width characters, right-aligned. */
static void print_right(const char *s, size_t width)
{
    size_t w = utf8_chars(s, strlen(s));
    for (; w < width; w++) putchar(' ');
    fputs(s, stdout);
}

/* Prints s as a JSON string: quotes, backslashes and control characters
 * escaped, bytes that are not UTF-8 as U+FFFD. */
static void print_json_string(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    putchar('"');
    while (*p) {
        unsigned char b = *p;
        if (b == '"' || b == '\\') {
            printf("\\%c", b);
            p++;
        } else if (b < 0x20) {
            printf("\\u%04x", b);
            p++;
        } else if (b < 0x80) {
            putchar(b);
            p++;
        } else {
            /* The length of a well-formed sequence starting here, else 0. */
            size_t k = 0;
            uint32_t cp = 0, min = 0;
            if ((b & 0xe0) == 0xc0) k = 2, cp = b & 0x1f, min = 0x80;
            else if ((b & 0xf0) == 0xe0) k = 3, cp = b & 0x0f, min = 0x800;
            else if ((b & 0xf8) == 0xf0) k = 4, cp = b & 0x07, min = 0x10000;
            for (size_t j = 1; j < k; j++) {
                if ((p[j] & 0xc0) != 0x80) {
                    k = 0;
                    break;
                }
                cp = cp << 6 | (p[j] & 0x3f);
            }
            if (k && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) k = 0;
            if (k) {
                fwrite(p, 1, k, stdout);
                p += k;
            } else {
                fputs("\\ufffd", stdout);
                p++;
            }
        }
    }
    putchar('"');
}

static void print_json(const char *const *images, size_t n_img, const char *const *texts,
                       size_t n_txt, const float *s)
{
    fputs("{\"images\": [", stdout);
    for (size_t i = 0; i < n_img; i++) {
        if (i) fputs(", ", stdout);
        print_json_string(images[i]);
    }
    fputs("], \"texts\": [", stdout);
    for (size_t j = 0; j < n_txt; j++) {
        if (j) fputs(", ", stdout);
        print_json_string(texts[j]);
    }
    fputs("], \"scores\": [", stdout);
    for (size_t i = 0; i < n_img; i++) {
        fputs(i ? ", [" : "[", stdout);
        for (size_t j = 0; j < n_txt; j++) {
            float v = s[i * n_txt + j];
            if (j) fputs(", ", stdout);
            if (isfinite(v))
                printf("%.9g", (double)v);
            else
                fputs("null", stdout);
        }
        putchar(']');
    }
    fputs("]}\n", stdout);
}

static int print_table(const char *const *images, size_t n_img, const char *const *texts,
                       size_t n_txt, const float *s)
{
    char **row = calloc(n_img, sizeof *row), **col = calloc(n_txt, sizeof *col);
    size_t *colw = calloc(n_txt, sizeof *colw);
    size_t roww = 0;
    int rc = 0;
    if (!row || !col || !colw) goto oom;
    for (size_t i = 0; i < n_img; i++) {
        const char *slash = strrchr(images[i], '/');
        if (!(row[i] = make_label(slash && slash[1] ? slash + 1 : images[i], IMAGE_LABEL_MAX)))
            goto oom;
        size_t w = utf8_chars(row[i], strlen(row[i]));
        if (w > roww) roww = w;
    }
    for (size_t j = 0; j < n_txt; j++) {
        /* An empty text would leave its column unlabelled. */
        if (!(col[j] = make_label(texts[j][0] ? texts[j] : "\"\"", TEXT_LABEL_MAX))) goto oom;
        colw[j] = utf8_chars(col[j], strlen(col[j]));
        for (size_t i = 0; i < n_img; i++) {
            int w = snprintf(NULL, 0, "%.4f", (double)s[i * n_txt + j]);
            if (w > 0 && (size_t)w > colw[j]) colw[j] = (size_t)w;
        }
    }
    for (size_t w = 0; w < roww; w++) putchar(' ');
    for (size_t j = 0; j < n_txt; j++) {
        fputs("  ", stdout);
        print_right(col[j], colw[j]);
    }
    putchar('\n');
    for (size_t i = 0; i < n_img; i++) {
        fputs(row[i], stdout);
        for (size_t w = utf8_chars(row[i], strlen(row[i])); w < roww; w++) putchar(' ');
        for (size_t j = 0; j < n_txt; j++) {
            char num[64];
            snprintf(num, sizeof num, "%.4f", (double)s[i * n_txt + j]);
            fputs("  ", stdout);
            print_right(num, colw[j]);
        }
        putchar('\n');
    }
    goto done;
oom:
    fprintf(stderr, "disclvlm: score: out of memory\n");
    rc = 1;
done:
    for (size_t i = 0; row && i < n_img; i++) free(row[i]);
    for (size_t j = 0; col && j < n_txt; j++) free(col[j]);
    free(row);
    free(col);
    free(colw);
    return rc;
}

int cmd_score(int argc, char **argv)
{
    cli_run_opts o = CLI_RUN_OPTS_INIT;
    const char **images = calloc((size_t)argc, sizeof *images);
    const char **texts = calloc((size_t)argc, sizeof *texts);
    size_t n_img = 0, n_txt = 0;
    int json = 0, logits = 0, options_done = 0;
    const char ***list = NULL; /* where plain arguments go: after --image or --text */
    size_t *list_n = NULL;
    if (!images || !texts) {
        fprintf(stderr, "disclvlm: score: out of memory\n");
        free(images);
        free(texts);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (!list) {
                fprintf(stderr, "disclvlm: score: '%s': give images after --image and texts "
                                "after --text\n", a);
                goto usage_error;
            }
            (*list)[(*list_n)++] = a;
            continue;
        }
        int r = cli_run_opt("score", argc, argv, &i, &o);
        if (r < 0) goto usage_error;
        if (r > 0) {
            list = NULL;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            score_usage(stdout);
            free(images);
            free(texts);
            return 0;
        } else if (strcmp(a, "--image") == 0) {
            list = &images;
            list_n = &n_img;
        } else if (strcmp(a, "--text") == 0) {
            list = &texts;
            list_n = &n_txt;
        } else if (strcmp(a, "--") == 0) {
            options_done = 1;
            list = &texts;
            list_n = &n_txt;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
            list = NULL;
        } else if (strcmp(a, "--logits") == 0) {
            logits = 1;
            list = NULL;
        } else {
            fprintf(stderr, "disclvlm: score: unknown option '%s'\n", a);
            goto usage_error;
        }
    }
    if (!o.model_dir || n_img == 0 || n_txt == 0) {
        cli_missing("score", !o.model_dir ? "--model DIR"
                             : !n_img     ? "--image IMAGE..."
                                          : "--text TEXT...");
        goto usage_error;
    }

    dlv_model *model = NULL;
    dlv_session *session = NULL;
    float *img = NULL, *txt = NULL, *s = NULL;
    size_t dim = 0;
    int rc = cli_open("score", &o, &model, &session, &dim);
    if (rc) goto done;
    if (n_img > SIZE_MAX / sizeof(float) / (dim ? dim : 1) ||
        n_txt > SIZE_MAX / sizeof(float) / (dim ? dim : 1) ||
        n_img > SIZE_MAX / sizeof(float) / n_txt ||
        !(img = malloc(n_img * dim * sizeof *img)) || !(txt = malloc(n_txt * dim * sizeof *txt)) ||
        !(s = malloc(n_img * n_txt * sizeof *s))) {
        fprintf(stderr, "disclvlm: score: out of memory\n");
        rc = 1;
        goto done;
    }
    if ((rc = cli_check_texts("score", session, texts, n_txt, o.truncate, NULL)) ||
        (rc = cli_encode_image_files("score", session, images, n_img, dim, img)) ||
        (rc = cli_encode_texts("score", session, texts, n_txt, dim, txt)))
        goto done;
    if (dlv_score(session, img, n_img, txt, n_txt, dim, s, n_img * n_txt) != DLV_OK) {
        rc = cli_fail("score");
        goto done;
    }
    if (logits) {
        float scale = 0;
        if (dlv_session_logit_scale(session, &scale) != DLV_OK) {
            rc = cli_fail("score");
            goto done;
        }
        for (size_t k = 0; k < n_img * n_txt; k++) s[k] *= scale;
    }
    if (json)
        print_json(images, n_img, texts, n_txt, s);
    else
        rc = print_table(images, n_img, texts, n_txt, s);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "disclvlm: score: cannot write to standard output\n");
        rc = 1;
    }
done:
    free(s);
    free(txt);
    free(img);
    dlv_session_free(session);
    dlv_model_free(model);
    free(images);
    free(texts);
    return rc;
usage_error:
    free(images);
    free(texts);
    return 2;
}
