/* One training step through the public API against PyTorch autograd
 * (tests/reference/llava_grad_reference.py, transformers 4.46.3 + peft
 * 0.13.2): with SGD, lr 1, no weight decay, no clipping, constant schedule,
 * the adapter after one step minus the adapter before is minus the
 * reference gradient, for image_prompt, text_prompt, logit_scale and every
 * LoRA A and B; the step's losses equal L_c, L_ntp and L.
 *
 *   test_train_golden IMAGES_DIR GOLDEN MODEL_DIR ADAPTER_DIR [...]
 *
 * Three objectives per variant: the full one (contrastive + next-token),
 * contrastive only (ntp_weight 0, the golden's `c_only.` tensors), and the
 * logit scale above its cap (4.7 > log 100: `clamped.`, whose logit-scale
 * gradient is 0); and every set trained (projector, language model, vision
 * tower too): dlv_train_save_model's weights minus the checkpoint's are
 * minus `grad.<tensor>` for every tensor. LLaVA-NeXT (grad_next_*: packed
 * anyres features, a different count per image) included, its tiles taped
 * and image_newline trained with the projector.
 *
 * Tolerances: the reference and the library both compute in f32 with
 * different summation orders, and (new - old) loses the low bits of old:
 * per tensor, ||(new - old) + grad|| <= REL_TOL * ||grad|| + ABS_TOL *
 * sqrt(n), with REL_TOL 2e-3 and ABS_TOL 1e-6 (losses: 1e-4 relative). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "disclvlm.h"
#include "../common/test_backend.h"
#include "io/safetensors.h"
#include "train_test_util.h"

#define REL_TOL 2e-3
#define ABS_TOL 1e-6
#define LOSS_TOL 1e-4
#define MAX_CASES 10

typedef struct tcase {
    const char *golden, *model, *adapter;
} tcase;

static const char *images_dir;
static tcase cases[MAX_CASES];
static size_t n_cases;

/* Compares (after - before) with -grad for one tensor; returns the relative
 * error. */
static double compare_update(const char *label, const dlv_st_tensor *before,
                             const dlv_st_tensor *after, const dlv_st_tensor *grad)
{
    assert_int_equal(before->n_elements, after->n_elements);
    assert_int_equal(before->n_elements, grad->n_elements);
    const size_t n = (size_t)before->n_elements;
    float *b = malloc(n * sizeof *b), *a = malloc(n * sizeof *a), *g = malloc(n * sizeof *g);
    assert_true(b && a && g);
    tt_check(dlv_st_read_f32(before, 0, n, b), label);
    tt_check(dlv_st_read_f32(after, 0, n, a), label);
    tt_check(dlv_st_read_f32(grad, 0, n, g), label);
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = ((double)a[i] - (double)b[i]) + (double)g[i];
        err += d * d;
        ref += (double)g[i] * (double)g[i];
    }
    err = sqrt(err);
    ref = sqrt(ref);
    const double limit = REL_TOL * ref + ABS_TOL * sqrt((double)n);
    if (getenv("DLV_TEST_VERBOSE") && err > 1e-2 * ref)
        fprintf(stderr, "note: %s: ||update + grad|| = %.3g, ||grad|| = %.3g\n", label, err, ref);
    if (err > limit)
        fprintf(stderr, "%s: ||update + grad|| = %.3g > %.3g (||grad|| = %.3g)\n", label, err,
                limit, ref);
    assert_true(err <= limit);
    free(b);
    free(a);
    free(g);
    /* Gradients that are zero in exact arithmetic (a key bias: softmax is
     * shift invariant) are float noise in both; only the absolute bound
     * applies to them, and they are left out of the worst relative error. */
    return ref > 1e-6 ? err / ref : 0.0;
}

typedef enum { OBJ_FULL, OBJ_C_ONLY, OBJ_CLAMPED, OBJ_ALL_WEIGHTS, OBJ_PROJECTOR } objective;

/* Qwen2-VL / Qwen2.5-VL: the tower and merger cannot train (refused), so
 * "all" trains the language model and the tower's weights stay as they were. */
static int is_qwen2vl(const tcase *c)
{
    return strstr(c->golden, "grad_qwen2vl") || strstr(c->golden, "grad_qwen25vl");
}

static void run_case(const tcase *c, objective obj)
{
    static const char *const names[] = {"full", "c_only", "clamped", "all", "proj"};
    const int qwen2vl = is_qwen2vl(c);
    if (qwen2vl && obj == OBJ_PROJECTOR) return; /* refused: see test_qwen2vl_refusal */
    const char *prefix = obj == OBJ_C_ONLY ? "c_only." : obj == OBJ_CLAMPED ? "clamped." : "";
    dlv_st_file *g = NULL;
    tt_check(dlv_st_open(c->golden, &g), c->golden);
    char start[1024], after[1024];
    tt_copy_adapter(c->adapter, start, sizeof start, obj == OBJ_CLAMPED, 4.7f);

    dlv_model *m = NULL;
    dlv_session *s = NULL;
    tt_check(test_model_load(c->model, &m), c->model);
    tt_check(dlv_session_new(m, NULL, &s), "session");
    tt_check(dlv_adapter_load(s, start), start);
    dlv_train_options *o = NULL;
    tt_check(dlv_train_options_new(&o), "options");
    static const char *const kv[][2] = {{"optimizer", "sgd"}, {"lr", "1"},
                                        {"weight_decay", "0"}, {"grad_clip", "0"},
                                        {"schedule", "constant"}, {"warmup", "0"}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        tt_check(dlv_train_options_set(o, kv[i][0], kv[i][1]), kv[i][0]);
    if (obj == OBJ_C_ONLY) tt_check(dlv_train_options_set(o, "ntp_weight", "0"), "ntp_weight");
    if (obj == OBJ_ALL_WEIGHTS)
        tt_check(dlv_train_options_set(o, "train", qwen2vl ? "soft,lora,logit_scale,llm"
                                                           : "soft,lora,logit_scale,projector,llm,vision"),
              "train");
    /* The projector over a frozen tower: the taped forward runs the
     * projector alone on the rows kept from the step's first pass. */
    if (obj == OBJ_PROJECTOR)
        tt_check(dlv_train_options_set(o, "train", "soft,lora,logit_scale,projector"), "train");
    tt_check(dlv_train_begin(s, o), "dlv_train_begin");
    dlv_train_options_free(o);

    tt_golden_batch gb;
    tt_golden_batch_make(images_dir, &gb);
    dlv_train_stats stats = DLV_TRAIN_STATS_INIT;
    tt_check(dlv_train_step(s, gb.batch, &stats), "dlv_train_step");

    char name[512];
    snprintf(name, sizeof name, "%sL_c", prefix);
    const double want_c = (double)tt_golden_scalar(g, name);
    double want_ntp = 0, want_l = want_c;
    if (obj != OBJ_C_ONLY) {
        snprintf(name, sizeof name, "%sL_ntp", prefix);
        want_ntp = (double)tt_golden_scalar(g, name);
        snprintf(name, sizeof name, "%sL", prefix);
        want_l = (double)tt_golden_scalar(g, name);
    }
    printf("%-40s %-8s L_c %.6f (ref %.6f)  L_ntp %.6f (ref %.6f)  L %.6f (ref %.6f)\n",
           c->golden, names[obj], stats.loss_contrastive, want_c, stats.loss_ntp, want_ntp,
           stats.loss, want_l);
    assert_true(fabs(stats.loss_contrastive - want_c) <= LOSS_TOL * fabs(want_c) + 1e-6);
    assert_true(fabs(stats.loss_ntp - want_ntp) <= LOSS_TOL * fabs(want_ntp) + 1e-6);
    assert_true(fabs(stats.loss - want_l) <= LOSS_TOL * fabs(want_l) + 1e-6);
    assert_int_equal(stats.step, 1);

    tt_mkdtemp("dlv-train-after", after, sizeof after);
    tt_check(dlv_adapter_save(s, after), "dlv_adapter_save");

    /* Soft prompts and the logit scale. */
    char pb[4096], pa[4096];
    snprintf(pb, sizeof pb, "%s/soft_prompts.safetensors", start);
    snprintf(pa, sizeof pa, "%s/soft_prompts.safetensors", after);
    dlv_st_file *fb = NULL, *fa = NULL;
    tt_check(dlv_st_open(pb, &fb), pb);
    tt_check(dlv_st_open(pa, &fa), pa);
    double worst = 0;
    static const char *const soft[] = {"image_prompt", "text_prompt", "logit_scale"};
    for (size_t i = 0; i < 3; i++) {
        if (obj == OBJ_CLAMPED && i == 1) continue; /* the golden has no text grad there */
        if (obj == OBJ_CLAMPED && i == 2) {
            /* Its gradient is 0 above the cap, and the step stores the
             * parameter clamped to log(100), as OpenCLIP does after each
             * step (docs/training.md). */
            assert_true(tt_golden_scalar(g, "clamped.grad.logit_scale") == 0.0f);
            float ls = 0;
            tt_check(dlv_st_read_f32(dlv_st_find(fa, "logit_scale"), 0, 1, &ls), "logit_scale");
            assert_true(ls == (float)4.605170185988092);
            continue;
        }
        snprintf(name, sizeof name, "%sgrad.%s", prefix, soft[i]);
        const dlv_st_tensor *gt = dlv_st_find(g, name);
        if (!gt) fprintf(stderr, "golden has no '%s'\n", name);
        assert_non_null(gt);
        double e = compare_update(name, dlv_st_find(fb, soft[i]), dlv_st_find(fa, soft[i]), gt);
        if (e > worst) worst = e;
    }
    /* LoRA (not in the clamped objective's goldens). */
    size_t n_lora = 0;
    if (obj != OBJ_CLAMPED) {
        snprintf(pb, sizeof pb, "%s/adapter_model.safetensors", start);
        snprintf(pa, sizeof pa, "%s/adapter_model.safetensors", after);
        dlv_st_file *lb = NULL, *la = NULL;
        tt_check(dlv_st_open(pb, &lb), pb);
        tt_check(dlv_st_open(pa, &la), pa);
        for (size_t i = 0; i < dlv_st_count(lb); i++) {
            const dlv_st_tensor *tb = dlv_st_at(lb, i);
            /* The saved file uses classic names; a new-layout input is not
             * among these variants. */
            const dlv_st_tensor *ta = dlv_st_find(la, tb->name);
            if (!ta) fprintf(stderr, "saved adapter lacks '%s'\n", tb->name);
            assert_non_null(ta);
            snprintf(name, sizeof name, "%sgrad.%s", prefix, tb->name);
            const dlv_st_tensor *gt = dlv_st_find(g, name);
            if (!gt) fprintf(stderr, "golden has no '%s'\n", name);
            assert_non_null(gt);
            double e = compare_update(name, tb, ta, gt);
            if (e > worst) worst = e;
            n_lora++;
        }
        dlv_st_close(lb);
        dlv_st_close(la);
    }
    /* Every model weight (projector, language model, vision tower): the
     * saved model's tensors minus the checkpoint's are minus the gradient. */
    size_t n_weights = 0;
    if (obj == OBJ_ALL_WEIGHTS || obj == OBJ_PROJECTOR) {
        char saved[1024];
        tt_mkdtemp("dlv-train-model", saved, sizeof saved);
        assert_int_equal(rmdir(saved), 0); /* dlv_train_save_model creates it */
        tt_check(dlv_train_save_model(s, saved, "f32"), "dlv_train_save_model");
        snprintf(pb, sizeof pb, "%s/model.safetensors", c->model);
        snprintf(pa, sizeof pa, "%s/model.safetensors", saved);
        dlv_st_file *mb = NULL, *ma = NULL;
        tt_check(dlv_st_open(pb, &mb), pb);
        tt_check(dlv_st_open(pa, &ma), pa);
        for (size_t i = 0; i < dlv_st_count(mb); i++) {
            const dlv_st_tensor *tb = dlv_st_at(mb, i);
            snprintf(name, sizeof name, "grad.%s", tb->name);
            const dlv_st_tensor *gt = dlv_st_find(g, name);
            if (!gt) continue; /* an integer buffer (position_ids) */
            const dlv_st_tensor *ta = dlv_st_find(ma, tb->name);
            assert_non_null(ta);
            assert_int_equal(ta->dtype, DLV_DTYPE_F32);
            /* LLaVA-NeXT's image_newline trains with the projector. */
            if ((obj == OBJ_PROJECTOR && !strstr(tb->name, "multi_modal_projector") &&
                 strcmp(tb->name, "image_newline") != 0) ||
                (qwen2vl && !strncmp(tb->name, "visual.", 7))) {
                /* Frozen: written unchanged (widened to f32). */
                float *vb = malloc((size_t)tb->n_elements * sizeof *vb);
                float *va = malloc((size_t)ta->n_elements * sizeof *va);
                assert_true(vb && va && ta->n_elements == tb->n_elements);
                tt_check(dlv_st_read_f32(tb, 0, tb->n_elements, vb), tb->name);
                tt_check(dlv_st_read_f32(ta, 0, ta->n_elements, va), ta->name);
                assert_int_equal(memcmp(va, vb, (size_t)ta->n_elements * sizeof *va), 0);
                free(vb);
                free(va);
                continue;
            }
            double e = compare_update(name, tb, ta, gt);
            if (e > worst) worst = e;
            n_weights++;
        }
        dlv_st_close(mb);
        dlv_st_close(ma);
        /* The saved directory is a model the library loads. */
        dlv_model *m2 = NULL;
        tt_check(test_model_load(saved, &m2), saved);
        dlv_model_free(m2);
        tt_remove_dir(saved);
        assert_true(n_weights >= (obj == OBJ_PROJECTOR ? 4 : 20));
    }
    printf("%-40s %-8s one SGD step = -grad: soft prompts, logit scale, %zu LoRA tensors, %zu "
           "model weights; worst relative error %.2e\n", c->golden, names[obj], n_lora,
           n_weights, worst);
    dlv_st_close(fb);
    dlv_st_close(fa);
    tt_remove_dir(after);
    tt_remove_dir(start);
    tt_golden_batch_free(&gb);
    dlv_session_free(s);
    dlv_model_free(m);
    dlv_st_close(g);
}

static void test_full(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_cases; i++) run_case(&cases[i], OBJ_FULL);
}

static void test_contrastive_only(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_cases; i++) run_case(&cases[i], OBJ_C_ONLY);
}

/* Every set trainable, the model's own weights included. */
static void test_all_weights(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_cases; i++) run_case(&cases[i], OBJ_ALL_WEIGHTS);
}

/* The projector trained over a frozen vision tower. */
static void test_projector(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_cases; i++) run_case(&cases[i], OBJ_PROJECTOR);
}

/* Qwen2-VL: training the tower or the merger is refused, naming why. */
static void test_qwen2vl_refusal(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_cases; i++) {
        if (!is_qwen2vl(&cases[i])) continue;
        static const char *const sets[] = {"soft,projector", "lora,vision"};
        for (size_t k = 0; k < 2; k++) {
            dlv_model *m = NULL;
            dlv_session *s = NULL;
            tt_check(test_model_load(cases[i].model, &m), cases[i].model);
            tt_check(dlv_session_new(m, NULL, &s), "session");
            dlv_train_options *o = NULL;
            tt_check(dlv_train_options_new(&o), "options");
            tt_check(dlv_train_options_set(o, "train", sets[k]), "train");
            assert_int_equal(dlv_train_begin(s, o), DLV_E_UNSUPPORTED);
            assert_non_null(strstr(dlv_last_error(), "vision tower or the merger"));
            dlv_train_options_free(o);
            dlv_session_free(s);
            dlv_model_free(m);
        }
    }
}

static void test_clamped(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_cases; i++) run_case(&cases[i], OBJ_CLAMPED);
}

int main(int argc, char **argv)
{
    if (argc < 5 || (argc - 2) % 3 != 0 || (argc - 2) / 3 > MAX_CASES) {
        fprintf(stderr, "usage: %s IMAGES_DIR GOLDEN MODEL_DIR ADAPTER_DIR [...]\n", argv[0]);
        return 2;
    }
    images_dir = argv[1];
    for (int i = 2; i + 2 < argc; i += 3)
        cases[n_cases++] = (tcase){argv[i], argv[i + 1], argv[i + 2]};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_contrastive_only),
        cmocka_unit_test(test_clamped),
        cmocka_unit_test(test_all_weights),
        cmocka_unit_test(test_projector),
        cmocka_unit_test(test_qwen2vl_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
