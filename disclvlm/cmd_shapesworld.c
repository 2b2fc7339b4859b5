/* disclvlm shapesworld: writes the ShapesWorld benchmark (docs/shapesworld.md):
 * PNG images, JSONL caption files, SugarCrepe-style hard negatives and a
 * Karpathy-style retrieval file. The scenes, captions and negatives are in
 * shapesworld.c; this file writes them. Same options and seed: byte-identical
 * output (no timestamps, no hash-order iteration). */
#include <errno.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "disclvlm.h"
#include "shapesworld/shapesworld.h"

#define SW_CMD "disclvlm: shapesworld"

static void shapesworld_usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm shapesworld --out DIR [--seed S] [--train N] [--val N]\n"
            "                            [--test N] [--size PX]\n"
            "\n"
            "Generates the ShapesWorld benchmark (docs/shapesworld.md): PX x PX PNG images of\n"
            "1-3 coloured shapes, short and long captions, hard negatives (attribute swap,\n"
            "object swap, relation flip, attribute replace, count change, object replace)\n"
            "and held-out colour-shape pairs for a compositional test split. Writes\n"
            "  DIR/images/{train,val,test}/NNNNN.png\n"
            "  DIR/{train,val,test}.jsonl       {\"image\", \"caption\", \"long_caption\"}\n"
            "  DIR/sugarcrepe/TYPE.json         test negatives (eval sugarcrepe --images DIR)\n"
            "  DIR/retrieval_test.json          Karpathy format, 5 captions an image\n"
            "  DIR/scenes.jsonl, DIR/info.json  the scenes and the generator's settings\n"
            "\n"
            "  --seed S     random seed (default 0); the same seed and options give\n"
            "               byte-identical files\n"
            "  --train N    training images (default 4000)\n"
            "  --val N      validation images (default 500)\n"
            "  --test N     test images (default 500)\n"
            "  --size PX    image side in pixels, 32 to 1024 (default 64)\n"
            "\n"
            "Image I of a split depends only on the seed, the split, I and PX, so a smaller\n"
            "N gives a prefix of a larger one.\n");
}

static int parse_u64(const char *opt, const char *v, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || !end || *end || v[0] == '-' || v[0] == '\0' || x > max) {
        fprintf(stderr, SW_CMD ": %s: '%s' is not an integer in 0..%llu\n", opt, v,
                (unsigned long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        fprintf(stderr, SW_CMD ": %s: exists and is not a directory\n", path);
        return -1;
    }
    fprintf(stderr, SW_CMD ": %s: cannot create the directory: %s\n", path, strerror(errno));
    return -1;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p) {
        fprintf(stderr, SW_CMD ": out of memory\n");
        return -1;
    }
    int rc = 0;
    for (char *q = p + 1; *q && rc == 0; q++)
        if (*q == '/') {
            *q = '\0';
            rc = make_dir(p);
            *q = '/';
        }
    if (rc == 0) rc = make_dir(p);
    free(p);
    return rc;
}

/* ---- output files --------------------------------------------------------- */

typedef struct out_file {
    char path[4096];
    FILE *f;
} out_file;

static int out_open(out_file *o, const char *dir, const char *name)
{
    int k = snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= sizeof o->path) {
        fprintf(stderr, SW_CMD ": %s/%s: path too long\n", dir, name);
        o->f = NULL;
        return -1;
    }
    o->f = fopen(o->path, "wb");
    if (!o->f) {
        fprintf(stderr, SW_CMD ": %s: cannot open for writing: %s\n", o->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Closes; reports a write error (ENOSPC...) naming the file. */
static int out_close(out_file *o)
{
    if (!o->f) return 0;
    int bad = ferror(o->f);
    int e = errno;
    if (fclose(o->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    o->f = NULL;
    if (bad) {
        fprintf(stderr, SW_CMD ": %s: write failed: %s\n", o->path, strerror(e));
        return -1;
    }
    return 0;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* A 1/16-pixel coordinate as an exact decimal number of pixels. */
static void json_coord(FILE *f, int v)
{
    fprintf(f, "%d.%04d", v / 16, (v % 16) * 625);
}

/* 8-bit RGB PNG, no ancillary chunks (no tIME): deterministic. */
static int write_png(const char *path, const unsigned char *rgb, int px)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, SW_CMD ": %s: cannot open for writing: %s\n", path, strerror(errno));
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        fclose(f);
        fprintf(stderr, SW_CMD ": %s: out of memory (libpng)\n", path);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        fprintf(stderr, SW_CMD ": %s: PNG write failed\n", path);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)px, (png_uint_32)px, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    for (int y = 0; y < px; y++) png_write_row(png, rgb + (size_t)y * (size_t)px * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    out_file o = {{0}, f};
    snprintf(o.path, sizeof o.path, "%s", path);
    return out_close(&o);
}

/* ---- generation ------------------------------------------------------------ */

static const char *const split_names[3] = {"train", "val", "test"};

typedef struct gen {
    const char *dir;
    uint64_t seed;
    int px;
    uint64_t n[3];
    out_file scenes, neg[SW_N_NEG], retrieval;
    uint64_t n_neg[SW_N_NEG], n_heldout[3];
    unsigned char *rgb;
} gen;

static int text_bug(const char *what)
{
    fprintf(stderr, SW_CMD ": internal error: the %s overflowed\n", what);
    return -1;
}

static void write_scene(gen *g, int split, const char *image, const sw_scene *s)
{
    FILE *f = g->scenes.f;
    fprintf(f, "{\"image\": ");
    json_str(f, image);
    fprintf(f, ", \"split\": \"%s\", \"heldout\": %s, \"objects\": [", split_names[split],
            s->heldout ? "true" : "false");
    for (int i = 0; i < s->n; i++) {
        const sw_object *o = &s->o[i];
        fprintf(f, "%s{\"shape\": \"%s\", \"color\": \"%s\", \"size\": \"%s\", \"x\": ",
                i ? ", " : "", sw_shape_names[o->shape], sw_color_names[o->color],
                sw_size_names[o->size]);
        json_coord(f, o->x);
        fprintf(f, ", \"y\": ");
        json_coord(f, o->y);
        fprintf(f, ", \"radius\": ");
        json_coord(f, o->r);
        fprintf(f, "}");
    }
    fprintf(f, "]}\n");
}

static int write_test_extras(gen *g, uint64_t i, const char *image, const sw_scene *s)
{
    static sw_text pos, neg;
    char id[32];
    snprintf(id, sizeof id, "%05llu", (unsigned long long)i);
    for (int t = 0; t < SW_N_NEG; t++) {
        int rc = sw_negative(s, t, g->seed, i, &pos, &neg);
        if (rc < 0) return text_bug("negative caption");
        if (rc == 0) continue;
        FILE *f = g->neg[t].f;
        fprintf(f, "%s", g->n_neg[t]++ ? ",\n" : "{\n");
        fprintf(f, "  \"%s\": {\"filename\": ", id);
        json_str(f, image);
        fprintf(f, ", \"caption\": ");
        json_str(f, pos.s);
        fprintf(f, ", \"negative_caption\": ");
        json_str(f, neg.s);
        fprintf(f, "}");
    }
    FILE *f = g->retrieval.f;
    fprintf(f, "%s    {\"filepath\": \"images/test\", \"filename\": \"%s.png\", \"imgid\": %llu, "
               "\"split\": \"test\", \"sentids\": [",
            i ? ",\n" : "", id, (unsigned long long)i);
    for (int k = 0; k < 5; k++)
        fprintf(f, "%s%llu", k ? ", " : "", (unsigned long long)(5 * i + (uint64_t)k));
    fprintf(f, "], \"sentences\": [");
    for (int k = 0; k < 5; k++) {
        if (sw_paraphrase(s, k, &pos) < 0) return text_bug("paraphrase");
        fprintf(f, "%s{\"raw\": ", k ? ", " : "");
        json_str(f, pos.s);
        fprintf(f, ", \"tokens\": [");
        /* Karpathy's tokens: the words, lower case, without punctuation. */
        int first = 1;
        for (const char *p = pos.s; *p;) {
            while (*p == ' ' || *p == ',') p++;
            const char *q = p;
            while (*q && *q != ' ' && *q != ',') q++;
            if (q > p) {
                fprintf(f, "%s\"%.*s\"", first ? "" : ", ", (int)(q - p), p);
                first = 0;
            }
            p = q;
        }
        fprintf(f, "], \"imgid\": %llu, \"sentid\": %llu}", (unsigned long long)i,
                (unsigned long long)(5 * i + (uint64_t)k));
    }
    fprintf(f, "]}");
    return 0;
}

static int gen_split(gen *g, int split)
{
    char sub[4096], jsonl_name[32];
    snprintf(sub, sizeof sub, "%s/images/%s", g->dir, split_names[split]);
    if (make_dirs(sub)) return -1;
    snprintf(jsonl_name, sizeof jsonl_name, "%s.jsonl", split_names[split]);
    out_file jl;
    if (out_open(&jl, g->dir, jsonl_name)) return -1;
    static sw_text short_cap, long_cap;
    int rc = 0;
    for (uint64_t i = 0; i < g->n[split] && rc == 0; i++) {
        sw_scene s;
        if (sw_scene_generate(&s, g->seed, split, i, g->px) != 0) {
            fprintf(stderr, SW_CMD ": %s image %llu: no layout fits in %d pixels\n",
                    split_names[split], (unsigned long long)i, g->px);
            rc = -1;
            break;
        }
        g->n_heldout[split] += (uint64_t)s.heldout;
        char image[64], png_path[4200];
        snprintf(image, sizeof image, "images/%s/%05llu.png", split_names[split],
                 (unsigned long long)i);
        snprintf(png_path, sizeof png_path, "%s/%s", g->dir, image);
        sw_render(&s, g->seed, split, i, g->px, g->rgb);
        if (write_png(png_path, g->rgb, g->px)) {
            rc = -1;
            break;
        }
        if (sw_short_caption(&s, &short_cap) || sw_long_caption(&s, &long_cap)) {
            rc = text_bug("caption");
            break;
        }
        fprintf(jl.f, "{\"image\": ");
        json_str(jl.f, image);
        fprintf(jl.f, ", \"caption\": ");
        json_str(jl.f, short_cap.s);
        fprintf(jl.f, ", \"long_caption\": ");
        json_str(jl.f, long_cap.s);
        fprintf(jl.f, "}\n");
        write_scene(g, split, image, &s);
        if (split == SW_TEST) rc = write_test_extras(g, i, image, &s);
    }
    if (out_close(&jl)) rc = -1;
    return rc;
}

static void json_names(FILE *f, const char *const *names, int n)
{
    fprintf(f, "[");
    for (int i = 0; i < n; i++) fprintf(f, "%s\"%s\"", i ? ", " : "", names[i]);
    fprintf(f, "]");
}

static int write_info(const gen *g)
{
    out_file o;
    if (out_open(&o, g->dir, "info.json")) return -1;
    FILE *f = o.f;
    fprintf(f, "{\n  \"generator\": \"disclvlm shapesworld %s\",\n", dlv_version());
    fprintf(f, "  \"seed\": %llu,\n  \"size\": %d,\n", (unsigned long long)g->seed, g->px);
    fprintf(f, "  \"images\": {\"train\": %llu, \"val\": %llu, \"test\": %llu},\n",
            (unsigned long long)g->n[0], (unsigned long long)g->n[1],
            (unsigned long long)g->n[2]);
    fprintf(f,
            "  \"images_with_heldout_pairs\": {\"train\": %llu, \"val\": %llu, "
            "\"test\": %llu},\n",
            (unsigned long long)g->n_heldout[0], (unsigned long long)g->n_heldout[1],
            (unsigned long long)g->n_heldout[2]);
    fprintf(f, "  \"colors\": ");
    json_names(f, sw_color_names, SW_N_COLORS);
    fprintf(f, ",\n  \"shapes\": ");
    json_names(f, sw_shape_names, SW_N_SHAPES);
    fprintf(f, ",\n  \"sizes\": ");
    json_names(f, sw_size_names, SW_N_SIZES);
    fprintf(f, ",\n  \"relations\": ");
    json_names(f, sw_relation_names, 4);
    fprintf(f, ",\n  \"heldout_pairs\": [");
    for (int h = 0; h < SW_N_HELDOUT; h++)
        fprintf(f, "%s[\"%s\", \"%s\"]", h ? ", " : "", sw_color_names[sw_heldout[h][0]],
                sw_shape_names[sw_heldout[h][1]]);
    fprintf(f, "],\n  \"negatives\": {");
    for (int t = 0; t < SW_N_NEG; t++)
        fprintf(f, "%s\"%s\": %llu", t ? ", " : "", sw_negative_names[t],
                (unsigned long long)g->n_neg[t]);
    fprintf(f, "}\n}\n");
    return out_close(&o);
}

static int generate(gen *g)
{
    char sc[4096];
    snprintf(sc, sizeof sc, "%s/sugarcrepe", g->dir);
    if (make_dirs(g->dir) || make_dirs(sc)) return -1;
    g->rgb = malloc((size_t)g->px * (size_t)g->px * 3);
    if (!g->rgb) {
        fprintf(stderr, SW_CMD ": out of memory (%d x %d image)\n", g->px, g->px);
        return -1;
    }
    int rc = out_open(&g->scenes, g->dir, "scenes.jsonl");
    for (int t = 0; t < SW_N_NEG && rc == 0; t++) {
        char name[64];
        snprintf(name, sizeof name, "sugarcrepe/%s.json", sw_negative_names[t]);
        rc = out_open(&g->neg[t], g->dir, name);
    }
    if (rc == 0) rc = out_open(&g->retrieval, g->dir, "retrieval_test.json");
    if (rc == 0)
        fprintf(g->retrieval.f, "{\"dataset\": \"shapesworld\", \"images\": [\n");
    for (int split = 0; split < 3 && rc == 0; split++) rc = gen_split(g, split);
    if (rc == 0) {
        for (int t = 0; t < SW_N_NEG; t++) fprintf(g->neg[t].f, g->n_neg[t] ? "\n}\n" : "{}\n");
        fprintf(g->retrieval.f, "\n]}\n");
    }
    for (int t = 0; t < SW_N_NEG; t++)
        if (out_close(&g->neg[t])) rc = -1;
    if (out_close(&g->retrieval)) rc = -1;
    if (out_close(&g->scenes)) rc = -1;
    if (rc == 0) rc = write_info(g);
    free(g->rgb);
    return rc;
}

int cmd_shapesworld(int argc, char **argv)
{
    gen g;
    memset(&g, 0, sizeof g);
    g.px = 64;
    g.n[0] = 4000, g.n[1] = 500, g.n[2] = 500;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            shapesworld_usage(stdout);
            return 0;
        }
        int known = strcmp(a, "--out") == 0 || strcmp(a, "--seed") == 0 ||
                    strcmp(a, "--train") == 0 || strcmp(a, "--val") == 0 ||
                    strcmp(a, "--test") == 0 || strcmp(a, "--size") == 0;
        if (!known) {
            fprintf(stderr, SW_CMD ": unknown argument '%s' (see '" SW_CMD " --help')\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, SW_CMD ": %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        uint64_t x = 0;
        if (strcmp(a, "--out") == 0) {
            if (!*v) {
                fprintf(stderr, SW_CMD ": --out: empty path\n");
                return 2;
            }
            g.dir = v;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_u64(a, v, UINT64_MAX, &g.seed)) return 2;
        } else if (strcmp(a, "--size") == 0) {
            if (parse_u64(a, v, 1024, &x)) return 2;
            if (x < 32) {
                fprintf(stderr, SW_CMD ": --size: %llu is below 32 pixels\n",
                        (unsigned long long)x);
                return 2;
            }
            g.px = (int)x;
        } else {
            if (parse_u64(a, v, 99999, &x)) return 2; /* five-digit file names */
            g.n[strcmp(a, "--train") == 0 ? 0 : strcmp(a, "--val") == 0 ? 1 : 2] = x;
        }
    }
    if (!g.dir) return cli_missing("shapesworld", "--out DIR");
    if (generate(&g)) return 1;
    printf("shapesworld: %llu train, %llu val, %llu test images (%d px, seed %llu) in %s\n",
           (unsigned long long)g.n[0], (unsigned long long)g.n[1], (unsigned long long)g.n[2],
           g.px, (unsigned long long)g.seed, g.dir);
    return 0;
}
