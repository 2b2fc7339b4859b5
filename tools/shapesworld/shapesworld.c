/* ShapesWorld scenes, rendering, captions and hard negatives
 * (shapesworld.h, docs/shapesworld.md). Integer arithmetic only. */
#include "shapesworld/shapesworld.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* No colour starts with a vowel, so the article is always "a" and a colour
 * or size swap keeps the caption's multiset of words exactly. */
const char *const sw_color_names[SW_N_COLORS] = {"red", "green", "blue", "yellow", "purple",
                                                 "black"};
const unsigned char sw_color_rgb[SW_N_COLORS][3] = {
    {220, 30, 30}, {30, 160, 50}, {30, 70, 220}, {235, 195, 20}, {140, 40, 180}, {25, 25, 25}};
const char *const sw_shape_names[SW_N_SHAPES] = {"circle", "square", "triangle", "star",
                                                 "diamond"};
static const char *const shape_plurals[SW_N_SHAPES] = {"circles", "squares", "triangles", "stars",
                                                       "diamonds"};
const char *const sw_size_names[SW_N_SIZES] = {"small", "large"};
const char *const sw_relation_names[4] = {"left of", "right of", "above", "below"};
static const char *const relation_synonyms[4] = {"to the left of", "to the right of", "over",
                                                 "under"};
static const char *const count_words[5] = {"zero", "one", "two", "three", "four"};
/* red triangle, green star, blue diamond, yellow circle, purple square */
const int sw_heldout[SW_N_HELDOUT][2] = {{0, 2}, {1, 3}, {2, 4}, {3, 0}, {4, 1}};
const unsigned char sw_background_rgb[3] = {232, 232, 228};
const char *const sw_negative_names[SW_N_NEG] = {"attribute_swap", "object_swap", "relation_flip",
                                                 "attribute_replace", "count_change",
                                                 "object_replace"};

/* Radii (thousandths of the image side) and the placement extent (5/4 r
 * covers every shape). */
#define SMALL_R 75
#define LARGE_R 130
#define GAP 32 /* 2 px between objects' extents */

/* ---- random stream: splitmix64 ------------------------------------------ */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sw_rng_init(sw_rng *r, uint64_t seed, uint64_t split, uint64_t index, uint64_t stream)
{
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ (split + 1) * 0xd1b54a32d192ed03ULL);
    h = mix64(h ^ (index + 1) * 0xaef17502108ef2d9ULL);
    r->state = mix64(h ^ (stream + 1) * 0x9e3779b97f4a7c15ULL);
}

uint64_t sw_rng_next(sw_rng *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return mix64(r->state);
}

uint32_t sw_rng_below(sw_rng *r, uint32_t n)
{
    return (uint32_t)(((sw_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* ---- scenes --------------------------------------------------------------- */

int sw_is_heldout(int color, int shape)
{
    for (int h = 0; h < SW_N_HELDOUT; h++)
        if (sw_heldout[h][0] == color && sw_heldout[h][1] == shape) return 1;
    return 0;
}

static int radius(int size, int px)
{
    return px * 16 * (size ? LARGE_R : SMALL_R) / 1000;
}

static int iabs(int v)
{
    return v < 0 ? -v : v;
}

static int try_layout(sw_scene *s, sw_rng *r, int px)
{
    for (int i = 0; i < s->n; i++) {
        sw_object *o = &s->o[i];
        o->r = radius(o->size, px);
        int e = o->r * 5 / 4, lo = e + 16, hi = px * 16 - e - 16;
        if (hi < lo) return 0;
        o->x = lo + (int)sw_rng_below(r, (uint32_t)(hi - lo + 1));
        o->y = lo + (int)sw_rng_below(r, (uint32_t)(hi - lo + 1));
        for (int j = 0; j < i; j++) {
            const sw_object *p = &s->o[j];
            int dx = iabs(o->x - p->x), dy = iabs(o->y - p->y);
            int big = dx > dy ? dx : dy, small = dx > dy ? dy : dx;
            if (big < o->r * 5 / 4 + p->r * 5 / 4 + GAP || big < 2 * small) return 0;
        }
    }
    return 1;
}

int sw_scene_generate(sw_scene *s, uint64_t seed, int split, uint64_t index, int px)
{
    sw_rng r;
    sw_rng_init(&r, seed, (uint64_t)split, index, 0);
    memset(s, 0, sizeof *s);
    s->px = px;
    uint32_t u = sw_rng_below(&r, 10);
    s->n = u < 2 ? 1 : u < 6 ? 2 : 3;
    int force = split == SW_TEST && index % 2 == 0;
    int used[SW_N_COLORS] = {0};
    int forced = force ? (int)sw_rng_below(&r, (uint32_t)s->n) : -1;
    if (force) {
        int h = (int)sw_rng_below(&r, SW_N_HELDOUT);
        s->o[forced].color = sw_heldout[h][0];
        s->o[forced].shape = sw_heldout[h][1];
        used[sw_heldout[h][0]] = 1;
    }
    for (int i = 0; i < s->n; i++) {
        if (i == forced) continue;
        int free_n = 0;
        for (int c = 0; c < SW_N_COLORS; c++) free_n += !used[c];
        int k = (int)sw_rng_below(&r, (uint32_t)free_n), c = 0;
        for (;; c++)
            if (!used[c] && k-- == 0) break;
        used[c] = 1;
        s->o[i].color = c;
        do s->o[i].shape = (int)sw_rng_below(&r, SW_N_SHAPES);
        while (!force && sw_is_heldout(c, s->o[i].shape));
    }
    for (int i = 0; i < s->n; i++) {
        s->o[i].size = (int)sw_rng_below(&r, 2);
        s->o[i].size_in_short = (int)sw_rng_below(&r, 2);
        s->heldout |= sw_is_heldout(s->o[i].color, s->o[i].shape);
    }
    /* Placement by rejection; every 200 failures the sizes are redrawn, and
     * after 2000 every object is small. */
    for (int attempt = 1;; attempt++) {
        if (try_layout(s, &r, px)) return 0;
        if (attempt >= 4000) return -1;
        if (attempt % 200 == 0)
            for (int i = 0; i < s->n; i++)
                s->o[i].size = attempt >= 2000 ? 0 : (int)sw_rng_below(&r, 2);
    }
}

int sw_relation(const sw_scene *s, int a, int b)
{
    int dx = s->o[b].x - s->o[a].x, dy = s->o[b].y - s->o[a].y;
    if (iabs(dx) >= iabs(dy)) return dx > 0 ? SW_LEFT : SW_RIGHT;
    return dy > 0 ? SW_ABOVE : SW_BELOW;
}

static int inverse(int rel)
{
    return rel ^ 1;
}

/* ---- rendering ------------------------------------------------------------ */

typedef struct poly {
    int n;
    long long x[10], y[10];
} poly;

/* cos / sin of -90 + 36k degrees, times 10000 (the star's vertices). */
static const int star_cos[10] = {0, 5878, 9511, 9511, 5878, 0, -5878, -9511, -9511, -5878};
static const int star_sin[10] = {-10000, -8090, -3090, 3090, 8090,
                                 10000,  8090,  3090,  -3090, -8090};

static void make_poly(const sw_object *o, poly *p)
{
    long long r = o->r;
    if (o->shape == 2) { /* triangle, pointing up, centred on its box */
        p->n = 3;
        p->x[0] = 0, p->y[0] = -975 * r / 1000;
        p->x[1] = 1126 * r / 1000, p->y[1] = 975 * r / 1000;
        p->x[2] = -1126 * r / 1000, p->y[2] = 975 * r / 1000;
    } else { /* star: outer radius 1.25 r, inner 0.625 r */
        p->n = 10;
        for (int k = 0; k < 10; k++) {
            long long rad = (k % 2 ? 625 : 1250) * r;
            p->x[k] = rad * star_cos[k] / 10000000;
            p->y[k] = rad * star_sin[k] / 10000000;
        }
    }
}

static int in_poly(const poly *p, long long x, long long y)
{
    int in = 0;
    for (int i = 0, j = p->n - 1; i < p->n; j = i++) {
        long long xi = p->x[i], yi = p->y[i], xj = p->x[j], yj = p->y[j];
        if ((yi > y) == (yj > y)) continue;
        /* x < xi + (y - yi) (xj - xi) / (yj - yi) */
        long long lhs = (x - xi) * (yj - yi), rhs = (y - yi) * (xj - xi);
        if (yj > yi ? lhs < rhs : lhs > rhs) in = !in;
    }
    return in;
}

static int inside(const sw_object *o, const poly *p, long long dx, long long dy)
{
    long long r = o->r, ax = dx < 0 ? -dx : dx, ay = dy < 0 ? -dy : dy;
    switch (o->shape) {
    case 0: return dx * dx + dy * dy <= r * r;
    case 1: return 20 * ax <= 17 * r && 20 * ay <= 17 * r;
    case 4: return 10 * (ax + ay) <= 12 * r;
    default: return in_poly(p, dx, dy);
    }
}

void sw_render(const sw_scene *s, uint64_t seed, int split, uint64_t index, int px,
               unsigned char *rgb)
{
    sw_rng r;
    sw_rng_init(&r, seed, (uint64_t)split, index, 1);
    for (int i = 0; i < px * px; i++) {
        int d = (int)sw_rng_below(&r, 9) - 4;
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = (unsigned char)(sw_background_rgb[c] + d);
    }
    for (int k = 0; k < s->n; k++) {
        const sw_object *o = &s->o[k];
        poly p = {0};
        if (o->shape == 2 || o->shape == 3) make_poly(o, &p);
        int e = o->r * 5 / 4;
        int x0 = (o->x - e) / 16 - 1, x1 = (o->x + e) / 16 + 1;
        int y0 = (o->y - e) / 16 - 1, y1 = (o->y + e) / 16 + 1;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > px - 1) x1 = px - 1;
        if (y1 > px - 1) y1 = px - 1;
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++) {
                int cover = 0; /* 4 x 4 samples at 2, 6, 10, 14 sixteenths */
                for (int sy = 0; sy < 4; sy++)
                    for (int sx = 0; sx < 4; sx++)
                        cover += inside(o, &p, (long long)x * 16 + 2 + 4 * sx - o->x,
                                        (long long)y * 16 + 2 + 4 * sy - o->y);
                if (!cover) continue;
                unsigned char *q = rgb + 3 * ((size_t)y * (size_t)px + (size_t)x);
                const unsigned char *col = sw_color_rgb[o->color];
                for (int c = 0; c < 3; c++)
                    q[c] = (unsigned char)((q[c] * (16 - cover) + col[c] * cover + 8) / 16);
            }
    }
}

/* ---- text ----------------------------------------------------------------- */

/* printf-checked at every call site (format attribute). */
__attribute__((format(printf, 2, 3))) static void put(sw_text *t, const char *fmt, ...)
{
    if (t->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->s + t->n, SW_TEXT_MAX - t->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= SW_TEXT_MAX - t->n)
        t->overflow = 1;
    else
        t->n += (size_t)k;
}

static int done(sw_text *t)
{
    return t->overflow ? -1 : 0;
}

static void clear(sw_text *t)
{
    t->s[0] = '\0';
    t->n = 0;
    t->overflow = 0;
}

/* A caption as structure: noun phrases and the relations between
 * consecutive ones, or (one object) its place in the image. */
typedef struct np {
    int color, shape, size; /* size -1: not mentioned */
} np;

typedef struct cap {
    int n;
    np np[SW_MAX_OBJ];
    int rel[SW_MAX_OBJ - 1];
    int cell; /* n == 1: 3 x 3 grid cell, row-major */
} cap;

enum { ST_NO_ARTICLE = 1, ST_SYNONYM = 2, ST_PICTURE = 4, ST_THERE_IS = 8, ST_PLACE_FIRST = 16 };

static const char *const cell_names[9] = {
    "in the top left corner",    "at the top",    "in the top right corner",
    "on the left",               "in the center", "on the right",
    "in the bottom left corner", "at the bottom", "in the bottom right corner"};

static int cell_of(const sw_object *o, int px)
{
    int col = o->x * 3 / (px * 16), row = o->y * 3 / (px * 16);
    if (col > 2) col = 2;
    if (row > 2) row = 2;
    return row * 3 + col;
}

static cap cap_of(const sw_scene *s)
{
    cap c;
    memset(&c, 0, sizeof c);
    c.n = s->n;
    for (int i = 0; i < s->n; i++) {
        c.np[i].color = s->o[i].color;
        c.np[i].shape = s->o[i].shape;
        c.np[i].size = s->o[i].size_in_short ? s->o[i].size : -1;
    }
    for (int i = 0; i + 1 < s->n; i++) c.rel[i] = sw_relation(s, i, i + 1);
    c.cell = cell_of(&s->o[0], s->px);
    return c;
}

static void put_np(sw_text *t, const np *p, int style)
{
    if (!(style & ST_NO_ARTICLE)) put(t, "a ");
    if (p->size >= 0) put(t, "%s ", sw_size_names[p->size]);
    put(t, "%s %s", sw_color_names[p->color], sw_shape_names[p->shape]);
}

static void put_cap(sw_text *t, const cap *c, int style)
{
    clear(t);
    if (style & ST_PICTURE) put(t, "a picture of ");
    if (c->n == 1) {
        if (style & ST_PLACE_FIRST) {
            put(t, "%s, ", cell_names[c->cell]);
            put_np(t, &c->np[0], style);
        } else {
            if (style & ST_THERE_IS) put(t, "there is ");
            put_np(t, &c->np[0], style);
            put(t, " %s", cell_names[c->cell]);
        }
        return;
    }
    const char *const *rel = style & ST_SYNONYM ? relation_synonyms : sw_relation_names;
    put_np(t, &c->np[0], style);
    put(t, " %s ", rel[c->rel[0]]);
    put_np(t, &c->np[1], style);
    if (c->n == 3) {
        put(t, ", which is %s ", rel[c->rel[1]]);
        put_np(t, &c->np[2], style);
    }
}

static cap reversed(const cap *c)
{
    cap r = *c;
    for (int i = 0; i < c->n; i++) r.np[i] = c->np[c->n - 1 - i];
    for (int i = 0; i + 1 < c->n; i++) r.rel[i] = inverse(c->rel[c->n - 2 - i]);
    return r;
}

int sw_short_caption(const sw_scene *s, sw_text *t)
{
    cap c = cap_of(s);
    put_cap(t, &c, 0);
    return done(t);
}

int sw_paraphrase(const sw_scene *s, int k, sw_text *t)
{
    cap c = cap_of(s), r = reversed(&c);
    switch (k) {
    case 0: put_cap(t, &c, 0); break;
    case 1: put_cap(t, &c, c.n == 1 ? ST_THERE_IS : ST_SYNONYM); break;
    case 2:
        if (c.n == 1)
            put_cap(t, &c, ST_PLACE_FIRST);
        else
            put_cap(t, &r, 0);
        break;
    case 3: put_cap(t, &c, ST_NO_ARTICLE); break;
    default: put_cap(t, &c, ST_PICTURE); break;
    }
    return done(t);
}

/* Objects grouped by shape, in order of first appearance. */
typedef struct counts {
    int n;
    int shape[SW_MAX_OBJ], count[SW_MAX_OBJ];
} counts;

static counts counts_of(const sw_scene *s)
{
    counts g;
    memset(&g, 0, sizeof g);
    for (int i = 0; i < s->n; i++) {
        int k = 0;
        while (k < g.n && g.shape[k] != s->o[i].shape) k++;
        if (k == g.n) g.shape[g.n++] = s->o[i].shape;
        g.count[k]++;
    }
    return g;
}

static void put_counts(sw_text *t, const counts *g)
{
    for (int k = 0; k < g->n; k++) {
        if (k > 0) put(t, k == g->n - 1 ? " and " : ", ");
        put(t, "%s %s", count_words[g->count[k]],
            g->count[k] == 1 ? sw_shape_names[g->shape[k]] : shape_plurals[g->shape[k]]);
    }
}

int sw_count_caption(const sw_scene *s, sw_text *t)
{
    counts g = counts_of(s);
    clear(t);
    put_counts(t, &g);
    return done(t);
}

int sw_long_caption(const sw_scene *s, sw_text *t)
{
    counts g = counts_of(s);
    clear(t);
    put(t, "The image shows %s %s on a light gray background: ", count_words[s->n],
        s->n == 1 ? "shape" : "shapes");
    put_counts(t, &g);
    put(t, ".");
    for (int i = 0; i < s->n; i++) {
        const sw_object *o = &s->o[i];
        put(t, " A %s %s %s is %s.", sw_size_names[o->size], sw_color_names[o->color],
            sw_shape_names[o->shape], cell_names[cell_of(o, s->px)]);
    }
    if (s->n == 1) put(t, " There is nothing else in the image.");
    for (int i = 0; i < s->n; i++)
        for (int j = i + 1; j < s->n; j++)
            put(t, " The %s %s is %s the %s %s.", sw_color_names[s->o[i].color],
                sw_shape_names[s->o[i].shape], sw_relation_names[sw_relation(s, i, j)],
                sw_color_names[s->o[j].color], sw_shape_names[s->o[j].shape]);
    return done(t);
}

static void swap_int(int *a, int *b)
{
    int t = *a;
    *a = *b;
    *b = t;
}

/* A colour (shape 0) or shape (shape 1) of [0, n) that no object in the scene
 * has, drawn uniformly from those; the replace negatives use it. */
static int absent_value(const sw_scene *s, int shape, int n, sw_rng *r)
{
    _Static_assert(SW_N_SHAPES <= SW_N_COLORS, "absent[] holds every value");
    int absent[SW_N_COLORS], n_abs = 0;
    for (int v = 0; v < n; v++) {
        int in = 0;
        for (int j = 0; j < s->n; j++) in |= (shape ? s->o[j].shape : s->o[j].color) == v;
        if (!in) absent[n_abs++] = v;
    }
    return absent[sw_rng_below(r, (uint32_t)n_abs)];
}

int sw_negative(const sw_scene *s, int type, uint64_t seed, uint64_t index, sw_text *pos,
                sw_text *neg)
{
    sw_rng r;
    sw_rng_init(&r, seed, SW_TEST, index, 16 + (uint64_t)type);
    static const int pairs[3][2] = {{0, 1}, {0, 2}, {1, 2}};
    int n_pairs = s->n == 3 ? 3 : s->n - 1;
    cap c = cap_of(s), d = c;
    switch (type) {
    case SW_NEG_ATTRIBUTE_SWAP: {
        if (s->n < 2) return 0;
        const int *p = pairs[sw_rng_below(&r, (uint32_t)n_pairs)];
        np *a = &d.np[p[0]], *b = &d.np[p[1]];
        /* Sizes when both are mentioned and differ, half of the time. */
        if (a->size >= 0 && b->size >= 0 && a->size != b->size && sw_rng_below(&r, 2))
            swap_int(&a->size, &b->size);
        else
            swap_int(&a->color, &b->color);
        break;
    }
    case SW_NEG_OBJECT_SWAP: {
        int ok[3], n_ok = 0;
        for (int k = 0; k < n_pairs; k++)
            if (c.np[pairs[k][0]].shape != c.np[pairs[k][1]].shape) ok[n_ok++] = k;
        if (n_ok == 0) return 0;
        const int *p = pairs[ok[sw_rng_below(&r, (uint32_t)n_ok)]];
        swap_int(&d.np[p[0]].shape, &d.np[p[1]].shape);
        break;
    }
    case SW_NEG_RELATION_FLIP: {
        if (s->n < 2) return 0;
        int k = (int)sw_rng_below(&r, (uint32_t)(s->n - 1));
        d.rel[k] = inverse(d.rel[k]);
        break;
    }
    case SW_NEG_ATTRIBUTE_REPLACE: {
        int i = (int)sw_rng_below(&r, (uint32_t)s->n);
        d.np[i].color = absent_value(s, 0, SW_N_COLORS, &r);
        break;
    }
    case SW_NEG_OBJECT_REPLACE: {
        /* SugarCrepe's replace-obj: a shape the image does not hold (at most 3
         * of the 5 are present, so one always exists). */
        int i = (int)sw_rng_below(&r, (uint32_t)s->n);
        d.np[i].shape = absent_value(s, 1, SW_N_SHAPES, &r);
        break;
    }
    case SW_NEG_COUNT_CHANGE: {
        counts g = counts_of(s), h = g;
        int k = (int)sw_rng_below(&r, (uint32_t)g.n), v = g.count[k];
        h.count[k] = v == 1 ? 2 : v == 3 ? 2 : (sw_rng_below(&r, 2) ? 3 : 1);
        clear(pos);
        put_counts(pos, &g);
        clear(neg);
        put_counts(neg, &h);
        return done(pos) || done(neg) ? -1 : 1;
    }
    default: return 0;
    }
    put_cap(pos, &c, 0);
    put_cap(neg, &d, 0);
    return done(pos) || done(neg) ? -1 : 1;
}
