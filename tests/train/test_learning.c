/* Does training learn? (issue 6)
 *
 * A synthetic image-caption set made here: 16 images of 28 x 28 RGB, each one
 * of 4 shapes (square, circle, cross, stripes) in one of 4 colours (red,
 * green, blue, yellow) on a grey background, with a short caption naming
 * both ("a red square") and a long caption describing more ("a red square
 * on a grey background, in the middle of the image."). The model is the
 * tiny CLIP + Llama checkpoint of tests/gen_tiny_checkpoint.py
 * --with-tokenizer (random weights: the model knows nothing).
 *
 *   test_learning MODEL_DIR
 *
 * 200 AdamW steps (lr 1e-3, constant, LoRA rank 8 on every target, soft
 * prompts, logit scale; batches of 8 drawn from the 16 examples by a fixed
 * seeded shuffle, two batches per epoch) must:
 *   - bring the contrastive loss (mean of the last 10 steps) below
 *     0.5 * log(8) = 1.04 (chance: log(8) = 2.08);
 *   - raise whole-set image -> text R@1 over the 16 examples (dlv_encode_images
 *     / dlv_encode_text before and after) from its zero-shot value to at least
 *     0.75 and by at least 0.5;
 *   - lower the next-token loss: mean of the last 10 steps below 0.8 x the mean
 *     of the first 10.
 * Every run gives the same numbers (fixed seed, fixed thread count 1). It
 * prints them. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disclvlm.h"
#include "../common/test_backend.h"

#define N_EX 16
#define BATCH 8
#define STEPS 200
#define SIDE 28
#define WINDOW 10

static const char *model_dir;

static const char *const colour_names[4] = {"red", "green", "blue", "yellow"};
static const uint8_t colours[4][3] = {{220, 30, 30}, {30, 190, 40}, {30, 60, 220}, {230, 215, 30}};
static const char *const shape_names[4] = {"square", "circle", "cross", "stripes"};

static void check(dlv_status st, const char *what)
{
    if (st != DLV_OK) fprintf(stderr, "%s: %s (%s)\n", what, dlv_status_str(st), dlv_last_error());
    assert_int_equal(st, DLV_OK);
}

/* Whether pixel (x, y) belongs to shape s. */
static int inside(int s, int x, int y)
{
    const int c = SIDE / 2;
    const int dx = x - c, dy = y - c;
    switch (s) {
    case 0: return x >= 6 && x < SIDE - 6 && y >= 6 && y < SIDE - 6;
    case 1: return dx * dx + dy * dy <= 10 * 10;
    case 2: return (abs(dx) <= 3 && abs(dy) <= 11) || (abs(dy) <= 3 && abs(dx) <= 11);
    default: return (y / 4) % 2 == 0;
    }
}

static dlv_image *make_image(int colour, int shape)
{
    uint8_t px[SIDE * SIDE * 3];
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            uint8_t *p = px + (y * SIDE + x) * 3;
            const int in = inside(shape, x, y);
            for (int k = 0; k < 3; k++) p[k] = in ? colours[colour][k] : 128;
        }
    dlv_image *img = NULL;
    check(dlv_image_from_rgb(px, SIDE, SIDE, SIDE * 3, &img), "dlv_image_from_rgb");
    return img;
}

typedef struct dataset {
    dlv_image *img[N_EX];
    char cap[N_EX][64];
    char long_cap[N_EX][128];
} dataset;

static void make_dataset(dataset *d)
{
    static const char *const where[4] = {"in the middle of the image", "filling the centre",
                                         "drawn with thick bars", "across the whole image"};
    for (int i = 0; i < N_EX; i++) {
        const int col = i % 4, sh = i / 4;
        d->img[i] = make_image(col, sh);
        snprintf(d->cap[i], sizeof d->cap[i], "a %s %s", colour_names[col], shape_names[sh]);
        snprintf(d->long_cap[i], sizeof d->long_cap[i], "a %s %s on a grey background, %s.",
                 colour_names[col], shape_names[sh], where[sh]);
    }
}

/* Image -> text R@1 over the whole set: the fraction of images whose most
 * similar caption (cosine) is their own. */
static double recall_at_1(dlv_session *s, const dataset *d, size_t dim)
{
    float *iv = malloc(N_EX * dim * sizeof *iv), *tv = malloc(N_EX * dim * sizeof *tv);
    float *sc = malloc(N_EX * N_EX * sizeof *sc);
    assert_true(iv && tv && sc);
    const char *caps[N_EX];
    for (int i = 0; i < N_EX; i++) caps[i] = d->cap[i];
    check(dlv_encode_images(s, (const dlv_image *const *)d->img, N_EX, iv, N_EX * dim),
          "dlv_encode_images");
    check(dlv_encode_text(s, caps, N_EX, tv, N_EX * dim), "dlv_encode_text");
    check(dlv_score(s, iv, N_EX, tv, N_EX, dim, sc, N_EX * N_EX), "dlv_score");
    int hits = 0;
    for (int i = 0; i < N_EX; i++) {
        int best = 0;
        for (int j = 1; j < N_EX; j++)
            if (sc[i * N_EX + j] > sc[i * N_EX + best]) best = j;
        hits += best == i;
    }
    free(iv);
    free(tv);
    free(sc);
    return (double)hits / N_EX;
}

/* A fixed-seed Fisher-Yates shuffle (xorshift64). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void shuffle(int *v, int n)
{
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)(rng_next() % (uint64_t)(i + 1));
        const int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static void test_learning(void **state)
{
    (void)state;
    dataset d;
    make_dataset(&d);

    dlv_model *m = NULL;
    dlv_session *s = NULL;
    dlv_session_options *so = NULL;
    check(test_model_load(model_dir, &m), model_dir);
    check(dlv_session_options_new(&so), "session options");
    check(dlv_session_options_set_threads(so, 1), "threads");
    check(dlv_session_new(m, so, &s), "session");
    dlv_session_options_free(so);
    size_t dim = 0;
    check(dlv_model_embed_dim(m, &dim), "embed_dim");

    const double r1_before = recall_at_1(s, &d, dim);

    dlv_train_options *o = NULL;
    check(dlv_train_options_new(&o), "options");
    static const char *const kv[][2] = {
        {"train", "soft,lora,logit_scale"}, {"optimizer", "adamw"}, {"lr", "1e-3"},
        {"weight_decay", "0"}, {"schedule", "constant"}, {"lora_rank", "8"},
        {"lora_alpha", "16"}, {"seed", "1"}, {"ntp_weight", "1"}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        check(dlv_train_options_set(o, kv[i][0], kv[i][1]), kv[i][0]);
    check(dlv_train_begin(s, o), "dlv_train_begin");
    dlv_train_options_free(o);

    int order[N_EX];
    for (int i = 0; i < N_EX; i++) order[i] = i;
    double lc[STEPS], ln[STEPS];
    for (int step = 0; step < STEPS; step++) {
        const int part = step % (N_EX / BATCH);
        if (part == 0) shuffle(order, N_EX);
        dlv_batch *b = NULL;
        check(dlv_batch_new(&b), "batch");
        for (int k = 0; k < BATCH; k++) {
            const int i = order[part * BATCH + k];
            check(dlv_batch_add(b, d.img[i], d.cap[i], d.long_cap[i]), "batch add");
        }
        dlv_train_stats st = DLV_TRAIN_STATS_INIT;
        check(dlv_train_step(s, b, &st), "dlv_train_step");
        dlv_batch_free(b);
        assert_int_equal(st.step, (uint64_t)step + 1);
        assert_true(isfinite(st.loss));
        lc[step] = st.loss_contrastive;
        ln[step] = st.loss_ntp;
        if (step % 20 == 0 || step == STEPS - 1)
            printf("step %3d  L_c %.4f  L_ntp %.4f  |g| %.4f  scale %.2f\n", step + 1,
                   st.loss_contrastive, st.loss_ntp, st.grad_norm, st.logit_scale);
    }

    const double r1_after = recall_at_1(s, &d, dim);

    double c_first = 0, c_last = 0, n_first = 0, n_last = 0;
    for (int i = 0; i < WINDOW; i++) {
        c_first += lc[i] / WINDOW;
        c_last += lc[STEPS - WINDOW + i] / WINDOW;
        n_first += ln[i] / WINDOW;
        n_last += ln[STEPS - WINDOW + i] / WINDOW;
    }
    const double c_limit = 0.5 * log((double)BATCH);
    printf("contrastive loss: first-10 mean %.4f, last-10 mean %.4f (limit %.4f = 0.5 log %d)\n",
           c_first, c_last, c_limit, BATCH);
    printf("next-token loss:  first-10 mean %.4f, last-10 mean %.4f (limit 0.8 x first)\n",
           n_first, n_last);
    printf("image->text R@1 over %d examples: before %.4f, after %.4f\n", N_EX, r1_before,
           r1_after);
    assert_true(c_last < c_limit);
    assert_true(n_last < 0.8 * n_first);
    assert_true(r1_after >= 0.75);
    assert_true(r1_after >= r1_before + 0.5);

    for (int i = 0; i < N_EX; i++) dlv_image_free(d.img[i]);
    dlv_session_free(s);
    dlv_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    model_dir = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_learning)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
