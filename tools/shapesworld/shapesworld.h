/* ShapesWorld: a synthetic compositional image-text benchmark (docs/shapesworld.md).
 * The scene model, rendering, captions and hard negatives; cmd_shapesworld.c
 * writes the files. Everything is integer arithmetic on a counter-based
 * random stream, so a scene depends only on (seed, split, index, image size)
 * and the output is the same on every platform. */
#ifndef DISCLVLM_SHAPESWORLD_H
#define DISCLVLM_SHAPESWORLD_H

#include <stddef.h>
#include <stdint.h>

enum { SW_N_COLORS = 6, SW_N_SHAPES = 5, SW_N_SIZES = 2, SW_MAX_OBJ = 3, SW_N_HELDOUT = 5 };
enum { SW_LEFT, SW_RIGHT, SW_ABOVE, SW_BELOW };
enum { SW_TRAIN, SW_VAL, SW_TEST };

extern const char *const sw_color_names[SW_N_COLORS];
extern const unsigned char sw_color_rgb[SW_N_COLORS][3];
extern const char *const sw_shape_names[SW_N_SHAPES];
extern const char *const sw_size_names[SW_N_SIZES];
extern const char *const sw_relation_names[4];
/* The (colour, shape) pairs never drawn in train / val images. */
extern const int sw_heldout[SW_N_HELDOUT][2];
extern const unsigned char sw_background_rgb[3];

typedef struct sw_rng {
    uint64_t state;
} sw_rng;

/* The stream of one image (or one purpose within it: `stream`). */
void sw_rng_init(sw_rng *r, uint64_t seed, uint64_t split, uint64_t index, uint64_t stream);
uint64_t sw_rng_next(sw_rng *r);
uint32_t sw_rng_below(sw_rng *r, uint32_t n); /* uniform in [0, n) */

typedef struct sw_object {
    int shape, color, size;
    int x, y;          /* centre, in 1/16 pixel */
    int r;             /* radius, in 1/16 pixel */
    int size_in_short; /* the short caption mentions the size */
} sw_object;

typedef struct sw_scene {
    int n;
    int px; /* the image side */
    sw_object o[SW_MAX_OBJ];
    int heldout; /* some object is a held-out (colour, shape) pair */
} sw_scene;

int sw_is_heldout(int color, int shape);

/* Draws the scene of image `index` of `split`: 1-3 objects of distinct
 * colours, placed without overlap so that every pair has a clear dominant
 * direction. Train / val never use held-out pairs; test images with an even
 * index contain at least one, odd ones none. Returns 0, or -1 if no layout
 * fits (only for absurdly small images). */
int sw_scene_generate(sw_scene *s, uint64_t seed, int split, uint64_t index, int px);

/* The RGB image (px * px * 3 bytes, row-major). */
void sw_render(const sw_scene *s, uint64_t seed, int split, uint64_t index, int px,
               unsigned char *rgb);

/* The relation of object a to object b ("a is LEFT of b"). */
int sw_relation(const sw_scene *s, int a, int b);

#define SW_TEXT_MAX 2048
typedef struct sw_text {
    char s[SW_TEXT_MAX];
    size_t n;
    int overflow;
} sw_text;

/* The captions. Each returns 0, or -1 if the text overflowed (a bug). */
int sw_short_caption(const sw_scene *s, sw_text *t);
int sw_long_caption(const sw_scene *s, sw_text *t);
int sw_count_caption(const sw_scene *s, sw_text *t);
/* Paraphrase k (0..4) of the short caption; 0 is the short caption. */
int sw_paraphrase(const sw_scene *s, int k, sw_text *t);

enum {
    SW_NEG_ATTRIBUTE_SWAP,
    SW_NEG_OBJECT_SWAP,
    SW_NEG_RELATION_FLIP,
    SW_NEG_ATTRIBUTE_REPLACE,
    SW_NEG_COUNT_CHANGE,
    SW_NEG_OBJECT_REPLACE, /* last: the others' streams and files predate it */
    SW_N_NEG
};
extern const char *const sw_negative_names[SW_N_NEG];

/* The positive and negative captions of one hard-negative type. Returns 1
 * when written, 0 when the type does not apply to the scene (e.g. a swap in
 * a one-object scene), -1 on overflow. */
int sw_negative(const sw_scene *s, int type, uint64_t seed, uint64_t index, sw_text *pos,
                sw_text *neg);

#endif
