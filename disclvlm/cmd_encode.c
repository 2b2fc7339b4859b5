/* disclvlm embed / encode-image / encode-text: embeddings as float32 .npy
 * files, and the model-running helpers that cmd_score.c shares
 * (commands.h). Inputs are encoded in bounded chunks so that memory does
 * not grow with the batch the library sees. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "dist.h"
#include "disclvlm.h"
#include "npy.h"

/* Inputs per library call: bounds the activations the library holds. */
#define IMAGES_PER_CALL 8
#define TEXTS_PER_CALL 32

/* ---- Shared helpers ---------------------------------------------------- */

int cli_run_opt(const char *cmd, int argc, char **argv, int *i, cli_run_opts *o)
{
    const char *a = argv[*i];
    const char **slot = NULL;
    if (strcmp(a, "--truncate") == 0) {
        o->truncate = 1;
        return 1;
    }
    if (strcmp(a, "--model") == 0)
        slot = &o->model_dir;
    else if (strcmp(a, "--adapter") == 0)
        slot = &o->adapter_dir;
    else if (strcmp(a, "--backend") == 0)
        slot = &o->backend;
    else if (strcmp(a, "--compute") == 0)
        slot = &o->compute;
    else if (strcmp(a, "--weight-dtype") == 0)
        slot = &o->weight_dtype;
    else if (strcmp(a, "--threads") != 0)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "disclvlm: %s: option '%s' needs a value\n", cmd, a);
        return -1;
    }
    const char *v = argv[++*i];
    if (slot == &o->compute && strcmp(v, "f32") != 0 && strcmp(v, "bf16") != 0) {
        fprintf(stderr, "disclvlm: %s: --compute: '%s' is not f32 or bf16\n", cmd, v);
        return -1;
    }
    if (slot == &o->weight_dtype && strcmp(v, "auto") != 0 && strcmp(v, "f32") != 0 &&
        strcmp(v, "bf16") != 0 && strcmp(v, "f16") != 0) {
        fprintf(stderr, "disclvlm: %s: --weight-dtype: '%s' is not auto, f32, bf16 or f16\n", cmd,
                v);
        return -1;
    }
    if (slot) {
        *slot = v;
        return 1;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 0 || n > 4096) {
        fprintf(stderr, "disclvlm: %s: --threads: '%s' is not an integer in 0..4096 (0: one "
                        "per online CPU)\n", cmd, v);
        return -1;
    }
    o->threads = (int)n;
    return 1;
}

int cli_open_session(const char *cmd, const cli_run_opts *o, dlv_model *model,
                     dlv_session **session)
{
    dlv_session_options *sopts = NULL;
    int rc = 0;
    if (dlv_session_options_new(&sopts) != DLV_OK ||
        (o->threads >= 0 && dlv_session_options_set_threads(sopts, o->threads) != DLV_OK) ||
        dlv_session_options_set_truncate(sopts, o->truncate) != DLV_OK ||
        dlv_session_options_set_compute(sopts, o->compute) != DLV_OK ||
        dlv_session_new(model, sopts, session) != DLV_OK ||
        (o->adapter_dir && dlv_adapter_load(*session, o->adapter_dir) != DLV_OK))
        rc = cli_fail(cmd);
    dlv_session_options_free(sopts);
    return rc;
}

int cli_open(const char *cmd, const cli_run_opts *o, dlv_model **model, dlv_session **session,
             size_t *dim)
{
    dlv_model_options *mopts = NULL;
    int rc = 0;
    if (dlv_model_options_new(&mopts) != DLV_OK ||
        dlv_model_options_set_backend(mopts, o->backend) != DLV_OK ||
        dlv_model_options_set_weight_dtype(mopts, o->weight_dtype) != DLV_OK ||
        dlv_model_load(o->model_dir, mopts, model) != DLV_OK ||
        dlv_model_embed_dim(*model, dim) != DLV_OK)
        rc = cli_fail(cmd);
    dlv_model_options_free(mopts);
    return rc ? rc : cli_open_session(cmd, o, *model, session);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A "\r"-updated progress line on stderr, only when it is a terminal. */
typedef struct progress {
    int on, shown;
    double t0;
    const char *cmd, *what;
} progress;

static void progress_start(progress *p, const char *cmd, const char *what)
{
    p->on = isatty(2);
    p->shown = 0;
    p->t0 = now_seconds();
    p->cmd = cmd;
    p->what = what;
}

static void progress_update(progress *p, size_t done, size_t total)
{
    if (!p->on) return;
    double dt = now_seconds() - p->t0;
    fprintf(stderr, "\rdisclvlm: %s: encoded %zu/%zu %s, %.1f %s/s\033[K", p->cmd, done, total,
            p->what, dt > 0 ? (double)done / dt : 0.0, p->what);
    fflush(stderr);
    p->shown = 1;
}

/* Ends the progress line, so that what follows starts a line of its own. */
static void progress_end(progress *p)
{
    if (p->shown) fputc('\n', stderr);
    p->shown = 0;
}

int cli_encode_image_files(const char *cmd, dlv_session *session, const char *const *paths,
                           size_t n, size_t dim, float *out)
{
    dlv_image *imgs[IMAGES_PER_CALL] = {NULL};
    progress pr;
    progress_start(&pr, cmd, "images");
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += IMAGES_PER_CALL) {
        size_t k = n - off < IMAGES_PER_CALL ? n - off : IMAGES_PER_CALL;
        size_t made = 0;
        while (made < k && dlv_image_from_file(paths[off + made], &imgs[made]) == DLV_OK) made++;
        if (made < k ||
            dlv_encode_images(session, (const dlv_image *const *)imgs, k, out + off * dim,
                              k * dim) != DLV_OK) {
            progress_end(&pr);
            rc = cli_fail(cmd);
        } else
            progress_update(&pr, off + k, n);
        for (size_t j = 0; j < made; j++) {
            dlv_image_free(imgs[j]);
            imgs[j] = NULL;
        }
    }
    progress_end(&pr);
    return rc;
}

int cli_encode_texts(const char *cmd, dlv_session *session, const char *const *texts, size_t n,
                     size_t dim, float *out)
{
    progress pr;
    progress_start(&pr, cmd, "texts");
    for (size_t off = 0; off < n; off += TEXTS_PER_CALL) {
        size_t k = n - off < TEXTS_PER_CALL ? n - off : TEXTS_PER_CALL;
        if (dlv_encode_text(session, texts + off, k, out + off * dim, k * dim) != DLV_OK) {
            progress_end(&pr);
            return cli_fail(cmd);
        }
        progress_update(&pr, off + k, n);
    }
    progress_end(&pr);
    return 0;
}

int cli_text_fits(const char *cmd, dlv_session *session, const char *text, int what,
                  char *why, size_t cap)
{
    size_t pos = 0, max = 0;
    dlv_status st = dlv_text_positions(session, text, what, &pos, &max);
    if (st != DLV_OK) {
        if (st == DLV_E_UNSUPPORTED && what == DLV_POSITIONS_AFTER_IMAGE) return 0;
        cli_fail(cmd);
        return -1;
    }
    if (pos <= max) return 0;
    snprintf(why, cap, "the sequence has %zu positions, more than the model's "
                       "max_position_embeddings (%zu); shorten it, or --truncate", pos, max);
    return 1;
}

int cli_check_texts(const char *cmd, dlv_session *session, const char *const *texts, size_t n,
                    int truncate, const char *file)
{
    size_t cut = 0;
    char first[4200] = "", why[256];
    for (size_t i = 0; i < n; i++) {
        const int r = cli_text_fits(cmd, session, texts[i], DLV_POSITIONS_TEXT, why, sizeof why);
        if (r < 0) return 1;
        if (r == 0 || cut++ > 0) continue;
        /* The first text that does not fit: "FILE:LINE" (text i is line i + 1) or "text N". */
        if (file) snprintf(first, sizeof first, "%s:%zu", file, i + 1);
        else snprintf(first, sizeof first, "text %zu", i + 1);
        if (!truncate) {
            fprintf(stderr, "disclvlm: %s: %s: %s\n", cmd, first, why);
            return 1;
        }
    }
    if (cut)
        fprintf(stderr, "disclvlm: %s: note: %zu text(s) longer than the model's positions are "
                        "truncated (the first: %s)\n", cmd, cut, first);
    return 0;
}

/* n x dim floats, or NULL (with a message) when that does not fit. */
static float *alloc_rows(const char *cmd, size_t n, size_t dim)
{
    if (dim && n > SIZE_MAX / sizeof(float) / dim) {
        fprintf(stderr, "disclvlm: %s: too many inputs\n", cmd);
        return NULL;
    }
    size_t count = n * dim;
    float *p = malloc((count ? count : 1) * sizeof *p);
    if (!p) fprintf(stderr, "disclvlm: %s: out of memory\n", cmd);
    return p;
}

/* ---- embed ------------------------------------------------------------- */

static void embed_usage(FILE *to)
{
    fprintf(to, "usage: disclvlm embed --model DIR [--adapter DIR] --tokens IDS [--image IMAGE]\n"
                "                      [--hidden] [--backend NAME] [--threads N] [--compute DTYPE]\n"
                "                      --out E.npy\n"
                "\n"
                "Runs exactly the token ids IDS (decimal, separated by commas or spaces; no\n"
                "BOS, prompt or soft prompt is added; the adapter's LoRA applies) and writes\n"
                "the final hidden state at the last position, L2-normalised, as float32\n"
                "[1, D] in a .npy file. One id equal to the model's image_token_index expands\n"
                "to the projected features of IMAGE, which must then be given (and only then).\n"
                "--hidden writes the raw hidden state (after the final norm) instead.\n"
                "\n" CLI_RUN_OPTS_HELP);
}

/* Appends the ids in s (decimal, separated by commas or white space);
 * 0 on a bad number or an allocation failure. */
static int parse_ids(const char *s, int32_t **ids, size_t *n, size_t *cap)
{
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',') s++;
        if (!*s) return 1;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < INT32_MIN || v > INT32_MAX ||
            (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != ','))
            return 0;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 64;
            int32_t *p = realloc(*ids, c * sizeof *p);
            if (!p) return 0;
            *ids = p;
            *cap = c;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
}

int cmd_embed(int argc, char **argv)
{
    cli_run_opts o = CLI_RUN_OPTS_INIT;
    const char *image_path = NULL, *out_path = NULL;
    unsigned flags = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    int have_tokens = 0;
    for (int i = 1; i < argc; i++) {
        int r = cli_run_opt("embed", argc, argv, &i, &o);
        if (r < 0) goto usage_error;
        if (r > 0) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            embed_usage(stdout);
            free(ids);
            return 0;
        } else if (strcmp(argv[i], "--hidden") == 0) {
            flags |= DLV_EMBED_HIDDEN;
        } else if ((strcmp(argv[i], "--tokens") == 0 || strcmp(argv[i], "--image") == 0 ||
                    strcmp(argv[i], "--out") == 0) &&
                   i + 1 >= argc) {
            fprintf(stderr, "disclvlm: embed: option '%s' needs a value\n", argv[i]);
            goto usage_error;
        } else if (strcmp(argv[i], "--tokens") == 0) {
            have_tokens = 1;
            if (!parse_ids(argv[++i], &ids, &n_ids, &cap)) {
                fprintf(stderr, "disclvlm: embed: --tokens: '%s' is not a list of token ids\n",
                        argv[i]);
                goto usage_error;
            }
        } else if (strcmp(argv[i], "--image") == 0) {
            image_path = argv[++i];
        } else if (strcmp(argv[i], "--out") == 0) {
            out_path = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "disclvlm: embed: unknown option '%s'\n", argv[i]);
            goto usage_error;
        } else {
            fprintf(stderr, "disclvlm: embed: unexpected argument '%s'\n", argv[i]);
            goto usage_error;
        }
    }
    if (!o.model_dir || !have_tokens || !out_path) {
        cli_missing("embed", !o.model_dir ? "--model DIR" : !have_tokens ? "--tokens IDS"
                                                                         : "--out E.npy");
        goto usage_error;
    }
    if (n_ids == 0) {
        fprintf(stderr, "disclvlm: embed: --tokens: no token ids given\n");
        goto usage_error;
    }

    dlv_model *model = NULL;
    dlv_session *session = NULL;
    dlv_image *image = NULL;
    float *e = NULL;
    size_t dim = 0;
    int rc = cli_open("embed", &o, &model, &session, &dim);
    if (rc) goto done;
    if (!(e = alloc_rows("embed", 1, dim))) {
        rc = 1;
        goto done;
    }
    if ((image_path && dlv_image_from_file(image_path, &image) != DLV_OK) ||
        dlv_embed_tokens(session, ids, n_ids, image, flags, e, dim) != DLV_OK) {
        rc = cli_fail("embed");
        goto done;
    }
    size_t shape[2] = {1, dim};
    rc = npy_write_f32("embed", out_path, e, shape, 2);
done:
    free(e);
    dlv_image_free(image);
    dlv_session_free(session);
    dlv_model_free(model);
    free(ids);
    return rc;
usage_error:
    free(ids);
    return 2;
}

/* ---- encode-image ------------------------------------------------------ */

static void encode_image_usage(FILE *to)
{
    fprintf(to, "usage: disclvlm encode-image --model DIR [--adapter DIR] [--backend NAME]\n"
                "                             [--threads N] [--compute DTYPE] IMAGE... --out E.npy\n"
                "\n"
                "Embeds each IMAGE (PNG or JPEG) with the model's (or the adapter's) image\n"
                "prompt and writes the L2-normalised embeddings as float32 [N, D] in a .npy\n"
                "file, one row per IMAGE in order. Images are encoded " "8 at a time; on a\n"
                "terminal a progress line is shown. '--' ends the options (for file names\n"
                "that start with '-').\n"
                "\n" CLI_RUN_OPTS_HELP CLI_DIST_HELP);
}

int cmd_encode_image(int argc, char **argv)
{
    cli_run_opts o = CLI_RUN_OPTS_INIT;
    const char *out_path = NULL, *dist = "auto";
    cli_dist d = CLI_DIST_INIT;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    size_t n = 0;
    int options_done = 0;
    if (!paths) {
        fprintf(stderr, "disclvlm: encode-image: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (!options_done) {
            int r = cli_run_opt("encode-image", argc, argv, &i, &o);
            if (r < 0) goto usage_error;
            if (r > 0) continue;
        }
        if (options_done || argv[i][0] != '-' || argv[i][1] == '\0') {
            paths[n++] = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            options_done = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            encode_image_usage(stdout);
            free(paths);
            return 0;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out_path = argv[++i];
        } else if (strcmp(argv[i], "--dist") == 0 && i + 1 < argc) {
            dist = argv[++i];
            if (!cli_dist_valid(dist)) {
                fprintf(stderr, "disclvlm: encode-image: --dist: '%s' is not auto, mpi or none\n",
                        dist);
                goto usage_error;
            }
        } else if (strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "--dist") == 0) {
            fprintf(stderr, "disclvlm: encode-image: option '%s' needs a value\n", argv[i]);
            goto usage_error;
        } else {
            fprintf(stderr, "disclvlm: encode-image: unknown option '%s'\n", argv[i]);
            goto usage_error;
        }
    }
    if (!o.model_dir || !out_path || n == 0) {
        cli_missing("encode-image", !o.model_dir ? "--model DIR" : !out_path ? "--out E.npy"
                                                                              : "an IMAGE");
        goto usage_error;
    }

    dlv_model *model = NULL;
    dlv_session *session = NULL;
    float *e = NULL;
    size_t dim = 0;
    int rc = cli_dist_open("encode-image", dist, &d);
    if (!rc) rc = cli_open("encode-image", &o, &model, &session, &dim);
    if (rc) goto done;
    if (!(e = alloc_rows("encode-image", n, dim))) {
        rc = 1;
        goto done;
    }
    /* Data-parallel: each rank encodes its shard; rank 0 writes them all. */
    size_t lo = 0, hi = n;
    cli_dist_shard(&d, n, &lo, &hi);
    rc = cli_encode_image_files("encode-image", session, paths + lo, hi - lo, dim, e + lo * dim);
    if (!rc) rc = cli_dist_gather_rows("encode-image", &d, e, n, dim);
    if (rc || d.rank != 0) goto done;
    size_t shape[2] = {n, dim};
    rc = npy_write_f32("encode-image", out_path, e, shape, 2);
done:
    cli_dist_fail("encode-image", &d, rc);
    cli_dist_close(&d);
    free(e);
    dlv_session_free(session);
    dlv_model_free(model);
    free(paths);
    return rc;
usage_error:
    free(paths);
    return 2;
}

/* ---- encode-text ------------------------------------------------------- */

static void encode_text_usage(FILE *to)
{
    fprintf(to, "usage: disclvlm encode-text --model DIR [--adapter DIR] [--backend NAME]\n"
                "                            [--threads N] [--compute DTYPE] (TEXT... | --file LINES)\n"
                "                            --out E.npy\n"
                "\n"
                "Embeds each TEXT (UTF-8) with the model's (or the adapter's) text prompt and\n"
                "writes the L2-normalised embeddings as float32 [N, D] in a .npy file, one row\n"
                "per text in order. Texts are encoded 32 at a time; on a terminal a progress\n"
                "line is shown. '--' ends the options (for texts that start with '-').\n"
                "\n"
                "--file LINES reads the texts from a file ('-': standard input), one per line:\n"
                "every line is a text, empty lines included (they give the embedding of the\n"
                "empty text); a final newline ends the last line and does not add an empty\n"
                "text; a carriage return before a newline (CRLF files) is dropped. A file\n"
                "with no lines, or a NUL byte, is an error.\n"
                "\n" CLI_RUN_OPTS_HELP CLI_DIST_HELP);
}

/* The whole of path ("-": stdin) in a NUL-terminated buffer; NULL with a
 * message on failure. */
static char *slurp(const char *cmd, const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "disclvlm: %s: %s: cannot open: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        cap *= 2;
        char *b = realloc(buf, cap);
        if (!b) free(buf);
        buf = b;
    }
    int bad = ferror(f);
    int err = errno;
    if (f != stdin) fclose(f);
    if (!buf) {
        fprintf(stderr, "disclvlm: %s: %s: out of memory\n", cmd, path);
        return NULL;
    }
    if (bad) {
        fprintf(stderr, "disclvlm: %s: %s: read failed: %s\n", cmd, path, strerror(err));
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Splits buf (len bytes) into lines in place, as encode-text's --help
 * says. Returns the lines (free() it; they point into buf), or NULL with a
 * message. */
static const char **split_lines(const char *cmd, const char *path, char *buf, size_t len,
                                size_t *n_out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\0') {
            size_t line = 1;
            for (size_t j = 0; j < i; j++) line += buf[j] == '\n';
            fprintf(stderr, "disclvlm: %s: %s: line %zu contains a NUL byte\n", cmd, path, line);
            return NULL;
        }
        n += buf[i] == '\n';
    }
    if (len > 0 && buf[len - 1] != '\n') n++; /* a last line without its newline */
    if (n == 0) {
        fprintf(stderr, "disclvlm: %s: %s: no lines (no texts to encode)\n", cmd, path);
        return NULL;
    }
    const char **lines = malloc(n * sizeof *lines);
    if (!lines) {
        fprintf(stderr, "disclvlm: %s: out of memory\n", cmd);
        return NULL;
    }
    size_t k = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        if (stop > p && stop[-1] == '\r') stop--;
        *stop = '\0';
        lines[k++] = p;
        p = nl ? nl + 1 : end;
    }
    *n_out = k;
    return lines;
}

int cmd_encode_text(int argc, char **argv)
{
    cli_run_opts o = CLI_RUN_OPTS_INIT;
    const char *out_path = NULL, *file = NULL, *dist = "auto";
    cli_dist d = CLI_DIST_INIT;
    const char **texts = calloc((size_t)argc, sizeof *texts);
    char *buf = NULL;
    size_t n = 0;
    int options_done = 0;
    if (!texts) {
        fprintf(stderr, "disclvlm: encode-text: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (!options_done) {
            int r = cli_run_opt("encode-text", argc, argv, &i, &o);
            if (r < 0) goto usage_error;
            if (r > 0) continue;
        }
        if (options_done || argv[i][0] != '-' || argv[i][1] == '\0') {
            texts[n++] = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            options_done = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            encode_text_usage(stdout);
            free(texts);
            return 0;
        } else if ((strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "--file") == 0 ||
                    strcmp(argv[i], "--dist") == 0) &&
                   i + 1 >= argc) {
            fprintf(stderr, "disclvlm: encode-text: option '%s' needs a value\n", argv[i]);
            goto usage_error;
        } else if (strcmp(argv[i], "--out") == 0) {
            out_path = argv[++i];
        } else if (strcmp(argv[i], "--file") == 0) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--dist") == 0) {
            dist = argv[++i];
            if (!cli_dist_valid(dist)) {
                fprintf(stderr, "disclvlm: encode-text: --dist: '%s' is not auto, mpi or none\n",
                        dist);
                goto usage_error;
            }
        } else {
            fprintf(stderr, "disclvlm: encode-text: unknown option '%s'\n", argv[i]);
            goto usage_error;
        }
    }
    if (file && n > 0) {
        fprintf(stderr, "disclvlm: encode-text: give TEXT arguments or --file, not both\n");
        goto usage_error;
    }
    if (!o.model_dir || !out_path || (n == 0 && !file)) {
        cli_missing("encode-text", !o.model_dir ? "--model DIR"
                                   : !out_path  ? "--out E.npy"
                                                : "a TEXT or --file LINES");
        goto usage_error;
    }

    dlv_model *model = NULL;
    dlv_session *session = NULL;
    float *e = NULL;
    size_t dim = 0;
    int rc = 0;
    if (file) {
        size_t len = 0;
        const char **lines = NULL;
        if (!(buf = slurp("encode-text", file, &len)) ||
            !(lines = split_lines("encode-text", file, buf, len, &n))) {
            rc = 1;
            goto done;
        }
        free(texts);
        texts = lines;
    }
    rc = cli_dist_open("encode-text", dist, &d);
    if (!rc) rc = cli_open("encode-text", &o, &model, &session, &dim);
    if (rc) goto done;
    if (!(e = alloc_rows("encode-text", n, dim))) {
        rc = 1;
        goto done;
    }
    rc = cli_check_texts("encode-text", session, texts, n, o.truncate, file);
    /* Data-parallel: each rank encodes its shard; rank 0 writes them all. */
    size_t lo = 0, hi = n;
    cli_dist_shard(&d, n, &lo, &hi);
    if (!rc) rc = cli_encode_texts("encode-text", session, texts + lo, hi - lo, dim, e + lo * dim);
    if (!rc) rc = cli_dist_gather_rows("encode-text", &d, e, n, dim);
    if (rc || d.rank != 0) goto done;
    size_t shape[2] = {n, dim};
    rc = npy_write_f32("encode-text", out_path, e, shape, 2);
done:
    cli_dist_fail("encode-text", &d, rc);
    cli_dist_close(&d);
    free(e);
    dlv_session_free(session);
    dlv_model_free(model);
    free(texts);
    free(buf);
    return rc;
usage_error:
    free(texts);
    return 2;
}
