/* Training through the public API beyond one step's gradients
 * (test_train_golden.c): equivalences that must hold exactly or nearly,
 * checkpoints, and crashes during a save.
 *
 *   test_train_api MODEL_DIR IMAGES_DIR
 *
 * MODEL_DIR is a tiny checkpoint with a tokenizer; IMAGES_DIR holds
 * img0.png .. img3.png.
 *  - resume: 2 steps, checkpoint, 2 more steps == a fresh session that loads
 *    the checkpoint and takes the same 2 steps, bit for bit (AdamW with
 *    weight decay, cosine schedule with warmup, clipping, all sets);
 *  - GradCache: micro_batch 1 and 3 give the whole batch's step (1e-5);
 *  - recompute 1 gives the same step as 0 (bit for bit); cached frozen image
 *    features (cache_features 1) change nothing (bit for bit);
 *  - a process killed (SIGKILL) at random moments while it saves
 *    checkpoints over the same directory never leaves it unloadable (the
 *    directory is replaced in one rename, so it is always one whole save);
 *  - errors: unknown option keys and bad values, cosine without
 *    total_steps, saving over a directory with foreign files. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "disclvlm.h"
#include "../common/test_backend.h"

static const char *model_dir, *images_dir;
static dlv_model *model;
static size_t dim;

static void check(dlv_status st, const char *what)
{
    if (st != DLV_OK) fprintf(stderr, "%s: %s (%s)\n", what, dlv_status_str(st), dlv_last_error());
    assert_int_equal(st, DLV_OK);
}

typedef struct batch_set {
    dlv_image *img[4];
    dlv_batch *b;
} batch_set;

static void batch_open(batch_set *bs)
{
    static const char *const caps[4] = {"a red circle", "Cat on a mat", "two dogs", "sky"};
    static const char *const longs[4] = {"the quick brown fox", NULL, "a long caption here.",
                                         "blue sky over hills"};
    check(dlv_batch_new(&bs->b), "batch");
    for (int i = 0; i < 4; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/img%d.png", images_dir, i);
        check(dlv_image_from_file(p, &bs->img[i]), p);
        check(dlv_batch_add(bs->b, bs->img[i], caps[i], longs[i]), "batch add");
    }
}

static void batch_close(batch_set *bs)
{
    dlv_batch_free(bs->b);
    for (int i = 0; i < 4; i++) dlv_image_free(bs->img[i]);
}

static dlv_session *session_with(const char *const (*kv)[2], size_t n)
{
    dlv_session *s = NULL;
    check(dlv_session_new(model, NULL, &s), "session");
    dlv_train_options *o = NULL;
    check(dlv_train_options_new(&o), "options");
    for (size_t i = 0; i < n; i++) check(dlv_train_options_set(o, kv[i][0], kv[i][1]), kv[i][0]);
    check(dlv_train_begin(s, o), "dlv_train_begin");
    dlv_train_options_free(o);
    return s;
}

/* The session's embeddings of the test images and captions. */
static float *embeddings(dlv_session *s, batch_set *bs)
{
    float *e = malloc(8 * dim * sizeof *e);
    assert_non_null(e);
    const dlv_image *imgs[4] = {bs->img[0], bs->img[1], bs->img[2], bs->img[3]};
    const char *texts[4] = {"a red circle", "Cat on a mat", "two dogs", "sky"};
    check(dlv_encode_images(s, imgs, 4, e, 4 * dim), "encode images");
    check(dlv_encode_text(s, texts, 4, e + 4 * dim, 4 * dim), "encode text");
    return e;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static const char *const rich[][2] = {
    {"optimizer", "adamw"}, {"lr", "0.01"}, {"weight_decay", "0.1"}, {"schedule", "cosine"},
    {"warmup", "1"}, {"total_steps", "6"}, {"grad_clip", "0.5"}, {"lora_rank", "4"},
    {"seed", "7"}, {"train", "soft,lora,logit_scale,projector,llm,vision"}};

static void tmpdir(char *buf, size_t cap, const char *tag)
{
    const char *root = getenv("TMPDIR");
    snprintf(buf, cap, "%s/dlv-%s-XXXXXX", root ? root : "/tmp", tag);
    assert_non_null(mkdtemp(buf));
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void test_resume_is_bit_identical(void **state)
{
    (void)state;
    batch_set bs;
    batch_open(&bs);
    char root[1024], ckpt[1200];
    tmpdir(root, sizeof root, "resume");
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", root);
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;

    dlv_session *a = session_with(rich, sizeof rich / sizeof *rich);
    for (int i = 0; i < 2; i++) check(dlv_train_step(a, bs.b, &st), "step");
    check(dlv_train_checkpoint_save(a, ckpt), "checkpoint save");
    dlv_train_stats sa[2] = {DLV_TRAIN_STATS_INIT, DLV_TRAIN_STATS_INIT};
    for (int i = 0; i < 2; i++) check(dlv_train_step(a, bs.b, &sa[i]), "step");
    float *ea = embeddings(a, &bs);

    dlv_session *b = NULL;
    check(dlv_session_new(model, NULL, &b), "session");
    check(dlv_train_checkpoint_load(b, ckpt), "checkpoint load");
    dlv_train_stats sb[2] = {DLV_TRAIN_STATS_INIT, DLV_TRAIN_STATS_INIT};
    for (int i = 0; i < 2; i++) check(dlv_train_step(b, bs.b, &sb[i]), "step");
    float *eb = embeddings(b, &bs);
    for (int i = 0; i < 2; i++) {
        assert_true(sa[i].loss == sb[i].loss);
        assert_true(sa[i].grad_norm == sb[i].grad_norm);
        assert_true(sa[i].learning_rate == sb[i].learning_rate);
        assert_int_equal(sa[i].step, sb[i].step);
    }
    assert_int_equal(sb[1].step, 4);
    assert_int_equal(memcmp(ea, eb, 8 * dim * sizeof *ea), 0);
    printf("resume: steps 3-4 losses %.9g %.9g, identical after a checkpoint round trip\n",
           sb[0].loss, sb[1].loss);
    free(ea);
    free(eb);
    dlv_session_free(a);
    dlv_session_free(b);
    rm_tree(root);
    batch_close(&bs);
}

/* One step's embeddings afterwards with extra options. */
static float *one_step(batch_set *bs, const char *key, const char *value, double *loss)
{
    const char *const kv[3][2] = {{"optimizer", "sgd"}, {"lr", "0.5"}, {key, value}};
    dlv_session *s = session_with(kv, key ? 3 : 2);
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;
    check(dlv_train_step(s, bs->b, &st), "step");
    *loss = st.loss;
    float *e = embeddings(s, bs);
    dlv_session_free(s);
    return e;
}

static void test_micro_batches_and_recompute(void **state)
{
    (void)state;
    batch_set bs;
    batch_open(&bs);
    double l0, l1, l3, lr;
    float *e0 = one_step(&bs, NULL, NULL, &l0);
    float *e1 = one_step(&bs, "micro_batch", "1", &l1);
    float *e3 = one_step(&bs, "micro_batch", "3", &l3);
    float *er = one_step(&bs, "recompute", "1", &lr);
    printf("GradCache: max |diff| micro 1 %.2e, micro 3 %.2e; recompute %.2e; losses %.9g %.9g "
           "%.9g %.9g\n", max_diff(e0, e1, 8 * dim), max_diff(e0, e3, 8 * dim),
           max_diff(e0, er, 8 * dim), l0, l1, l3, lr);
    assert_true(max_diff(e0, e1, 8 * dim) <= 1e-5);
    assert_true(max_diff(e0, e3, 8 * dim) <= 1e-5);
    assert_true(fabs(l0 - l1) <= 1e-5 * fabs(l0));
    assert_int_equal(memcmp(e0, er, 8 * dim * sizeof *e0), 0);
    assert_true(l0 == lr);
    free(e0);
    free(e1);
    free(e3);
    free(er);
    /* The projector over a frozen tower (the taped pass runs the projector
     * alone on the kept tower rows): micro-batches slice those rows. */
    const char *const pw[3][2] = {{"optimizer", "sgd"}, {"lr", "0.5"},
                                  {"train", "soft,lora,logit_scale,projector"}};
    const char *const pm[4][2] = {{"optimizer", "sgd"}, {"lr", "0.5"},
                                  {"train", "soft,lora,logit_scale,projector"},
                                  {"micro_batch", "1"}};
    float *ep[2];
    double lp[2];
    for (int k = 0; k < 2; k++) {
        dlv_session *s = k ? session_with(pm, 4) : session_with(pw, 3);
        dlv_train_stats st = DLV_TRAIN_STATS_INIT;
        check(dlv_train_step(s, bs.b, &st), "projector step");
        lp[k] = st.loss;
        ep[k] = embeddings(s, &bs);
        dlv_session_free(s);
    }
    printf("projector over a frozen tower: micro 1 vs whole max |diff| %.2e\n",
           max_diff(ep[0], ep[1], 8 * dim));
    assert_true(max_diff(ep[0], ep[1], 8 * dim) <= 1e-5);
    assert_true(fabs(lp[0] - lp[1]) <= 1e-5 * fabs(lp[0]));
    free(ep[0]);
    free(ep[1]);
    batch_close(&bs);
}

/* Cached frozen features (second step served from the cache) change
 * nothing. */
static void test_feature_cache(void **state)
{
    (void)state;
    batch_set bs;
    batch_open(&bs);
    float *e[2];
    for (int cached = 0; cached < 2; cached++) {
        const char *const kv[2][2] = {{"lr", "0.01"}, {"cache_features", cached ? "1" : "0"}};
        dlv_session *s = session_with(kv, 2);
        dlv_train_stats st = DLV_TRAIN_STATS_INIT;
        for (int i = 0; i < 3; i++) check(dlv_train_step(s, bs.b, &st), "step");
        e[cached] = embeddings(s, &bs);
        dlv_session_free(s);
    }
    assert_int_equal(memcmp(e[0], e[1], 8 * dim * sizeof *e[0]), 0);
    free(e[0]);
    free(e[1]);
    batch_close(&bs);
}

/* A child saves checkpoints of successive steps over one directory; it is
 * killed at a random moment; the directory must then load, and its step
 * must be one the child reached. */
static void test_kill_during_save(void **state)
{
    (void)state;
    char root[1024], ckpt[1200];
    tmpdir(root, sizeof root, "kill");
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", root);
    {
        /* A first checkpoint exists before any kill. */
        static const char *const kv[1][2] = {{"lr", "0.001"}};
        dlv_session *s = session_with(kv, 1);
        check(dlv_train_checkpoint_save(s, ckpt), "first save");
        dlv_session_free(s);
    }
    srand(12345);
    int kills = 0;
    for (int round = 0; round < 6; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            batch_set bs;
            batch_open(&bs);
            static const char *const kv[1][2] = {{"lr", "0.001"}};
            dlv_session *s = session_with(kv, 1);
            dlv_train_stats st = DLV_TRAIN_STATS_INIT;
            for (;;) {
                if (dlv_train_step(s, bs.b, &st) != DLV_OK) _exit(3);
                if (dlv_train_checkpoint_save(s, ckpt) != DLV_OK) _exit(4);
            }
        }
        struct timespec ts = {0, (long)(20 + rand() % 180) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        kills++;
        dlv_session *s = NULL;
        check(dlv_session_new(model, NULL, &s), "session");
        dlv_status st = dlv_train_checkpoint_load(s, ckpt);
        if (st) fprintf(stderr, "after kill %d: %s\n", round, dlv_last_error());
        assert_int_equal(st, DLV_OK);
        dlv_session_free(s);
    }
    printf("killed a saving process %d times; the checkpoint loaded every time\n", kills);
    rm_tree(root);
}

static void test_errors(void **state)
{
    (void)state;
    dlv_train_options *o = NULL;
    check(dlv_train_options_new(&o), "options");
    assert_int_equal(dlv_train_options_set(o, "no_such_key", "1"), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "no_such_key"));
    assert_int_equal(dlv_train_options_set(o, "lr", "fast"), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "lr"));
    assert_int_equal(dlv_train_options_set(o, "train", "soft,everything"), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_train_options_set(o, "lora_targets", "q_proj,fc1"), DLV_E_INVALID_ARG);
    assert_int_equal(dlv_train_options_set(o, "optimizer", "adam"), DLV_E_INVALID_ARG);
    check(dlv_train_options_set(o, "schedule", "cosine"), "schedule");
    dlv_session *s = NULL;
    check(dlv_session_new(model, NULL, &s), "session");
    assert_int_equal(dlv_train_begin(s, o), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "total_steps"));
    dlv_train_options_free(o);
    /* Saving over a directory that holds something else is refused and
     * leaves it alone. */
    char root[1024], keep[1200];
    tmpdir(root, sizeof root, "foreign");
    snprintf(keep, sizeof keep, "%s/notes.txt", root);
    FILE *f = fopen(keep, "w");
    assert_non_null(f);
    fputs("mine\n", f);
    fclose(f);
    assert_int_equal(dlv_train_checkpoint_save(s, root), DLV_E_IO);
    assert_non_null(strstr(dlv_last_error(), "notes.txt"));
    assert_int_equal(access(keep, F_OK), 0);
    assert_int_equal(dlv_adapter_save(s, root), DLV_E_IO);
    assert_int_equal(access(keep, F_OK), 0);
    dlv_session_free(s);
    rm_tree(root);
}

/* A caption of about n tokens (the tiny tokenizer has few merges). */
static char *long_text(size_t words, const char *tail)
{
    size_t cap = words * 6 + strlen(tail) + 1;
    char *t = malloc(cap);
    assert_non_null(t);
    t[0] = '\0';
    for (size_t i = 0; i < words; i++) strcat(t, i ? " word" : "word");
    strcat(t, tail);
    return t;
}

static dlv_session *truncating_session(int truncate)
{
    dlv_session_options *so = NULL;
    check(dlv_session_options_new(&so), "session options");
    check(dlv_session_options_set_truncate(so, truncate), "truncate");
    dlv_session *s = NULL;
    check(dlv_session_new(model, so, &s), "session");
    dlv_session_options_free(so);
    return s;
}

/* Issue 15: a text whose sequence is longer than max_position_embeddings
 * (256 here) is refused naming it and the limit, or cut from its end with
 * the truncate option; the same in training, for short and long captions;
 * dlv_text_positions tells before anything runs. */
static void test_sequence_limits(void **state)
{
    (void)state;
    char *longer = long_text(200, ""), *other = long_text(200, " and then something else");
    dlv_session *s = truncating_session(0);
    size_t pos = 0, max = 0;
    check(dlv_text_positions(s, "sky", DLV_POSITIONS_TEXT, &pos, &max), "positions");
    assert_int_equal(max, 256);
    assert_true(pos > 3 && pos < 64);
    check(dlv_text_positions(s, longer, DLV_POSITIONS_TEXT, &pos, &max), "positions");
    assert_true(pos > max);
    size_t after = 0;
    check(dlv_text_positions(s, "sky", DLV_POSITIONS_AFTER_IMAGE, &after, &max), "positions");
    assert_true(after > 3);
    assert_int_equal(dlv_text_positions(s, "sky", 7, &pos, &max), DLV_E_INVALID_ARG);

    float *e = malloc(3 * dim * sizeof *e);
    assert_non_null(e);
    const char *texts[3] = {"sky", longer, other};
    assert_int_equal(dlv_encode_text(s, texts, 2, e, 2 * dim), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "texts[1]"));
    assert_non_null(strstr(dlv_last_error(), "max_position_embeddings (256)"));

    /* Training refuses it too, naming the example, before any compute. */
    dlv_train_options *o = NULL;
    check(dlv_train_options_new(&o), "options");
    check(dlv_train_begin(s, o), "dlv_train_begin");
    dlv_image *img = NULL;
    char p[4096];
    snprintf(p, sizeof p, "%s/img0.png", images_dir);
    check(dlv_image_from_file(p, &img), p);
    dlv_batch *b = NULL;
    check(dlv_batch_new(&b), "batch");
    check(dlv_batch_add(b, img, "sky", NULL), "add");
    check(dlv_batch_add(b, img, longer, NULL), "add");
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;
    assert_int_equal(dlv_train_step(s, b, &st), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "example 1: caption"));
    assert_non_null(strstr(dlv_last_error(), "(256)"));
    dlv_batch_free(b);
    check(dlv_batch_new(&b), "batch");
    check(dlv_batch_add(b, img, "sky", longer), "add");
    check(dlv_batch_add(b, img, "a cat", NULL), "add");
    assert_int_equal(dlv_train_step(s, b, &st), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "example 0: long caption"));
    dlv_session_free(s);

    /* With truncate: the caption is cut from its end, so texts that agree
     * up to the limit have one embedding; training runs. */
    s = truncating_session(1);
    check(dlv_encode_text(s, texts, 3, e, 3 * dim), "encode with truncate");
    /* (rows of one batch agree to rounding: GEMM blocking differs by row) */
    const double same = max_diff(e + dim, e + 2 * dim, dim);
    assert_true(same < 1e-5);
    assert_true(max_diff(e, e + dim, dim) > 1e-3);
    check(dlv_train_begin(s, o), "dlv_train_begin");
    check(dlv_batch_add(b, img, longer, other), "add");
    check(dlv_train_step(s, b, &st), "a step with truncated captions");
    assert_true(isfinite(st.loss));
    printf("sequence limits: a %zu-position text refused at 256 (encode, caption, long caption); "
           "truncated, two texts equal up to the limit embed alike (|diff| %.1e)\n", pos, same);
    dlv_batch_free(b);
    dlv_image_free(img);
    dlv_train_options_free(o);
    dlv_session_free(s);
    free(e);
    free(longer);
    free(other);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGES_DIR\n", argv[0]);
        return 2;
    }
    model_dir = argv[1];
    images_dir = argv[2];
    if (test_model_load(model_dir, &model) != DLV_OK) {
        fprintf(stderr, "%s\n", dlv_last_error());
        return 1;
    }
    dlv_model_embed_dim(model, &dim);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_is_bit_identical),
        cmocka_unit_test(test_micro_batches_and_recompute),
        cmocka_unit_test(test_feature_cache),
        cmocka_unit_test(test_kill_during_save),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_sequence_limits),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dlv_model_free(model);
    return rc;
}
