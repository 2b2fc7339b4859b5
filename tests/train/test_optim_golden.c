/* The optimizers through the public API against torch.optim
 * (tests/reference/optim_reference.py: torch 1.13.1, transformers 4.46.3,
 * peft 0.13.2), on the objective of llava_grad_reference.py, training
 * "soft,lora,logit_scale,projector,llm":
 *
 *   - AdamW (lr 1e-2, weight decay 0.5, warmup 2 then cosine to 0 at step 5,
 *     as LambdaLR): four steps on the same batch; each step's lr, loss and
 *     gradient norm, and every trained tensor after steps 1 and 4, against
 *     torch.optim.AdamW with the library's decay rule as parameter groups
 *     (matrices of the model and LoRA decay; soft prompts, the logit scale,
 *     norms and biases do not);
 *   - SGD (lr 0.5, weight decay 0.05) after clip_grad_norm_ to a third of
 *     the gradient norm: every trained tensor after one step.
 *
 *   test_optim_golden IMAGES_DIR GOLDEN MODEL_DIR ADAPTER_DIR
 *
 * Tolerances. Per tensor, the update (after - start) is compared with the
 * reference's: ||u - u_ref|| <= REL_TOL ||u_ref|| + ABS_TOL sqrt(n). The
 * gradients themselves agree to ~1e-5 relative (test_train_golden.c); Adam
 * divides by sqrt(v) + 1e-8, so a gradient element near 1e-8 turns that
 * into a larger relative difference of its own update, hence REL_TOL 2e-3
 * for AdamW (measured worst: printed). Each planted optimizer bug changes
 * some tensor's update by 10% or more (missing bias correction: 10x the
 * first step; decay on a soft prompt: lr wd |p| beside an update of lr). */
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
#include "io/safetensors.h"
#include "train_test_util.h"

#define REL_TOL 2e-3
#define ABS_TOL 1e-6
#define LOSS_TOL 1e-4
#define NORM_TOL 1e-3
#define ADAMW_STEPS 4

static const char *images_dir, *golden_path, *model_dir, *adapter_dir;

static void set_options(dlv_session *s, const char *const (*kv)[2], size_t n)
{
    dlv_train_options *o = NULL;
    tt_check(dlv_train_options_new(&o), "options");
    for (size_t i = 0; i < n; i++) tt_check(dlv_train_options_set(o, kv[i][0], kv[i][1]), kv[i][0]);
    tt_check(dlv_train_begin(s, o), "dlv_train_begin");
    dlv_train_options_free(o);
}

/* ||(after - start) - (want - start)|| against the bound; returns the
 * relative error. */
static double compare_tensor(const char *label, const dlv_st_tensor *start,
                             const dlv_st_tensor *after, const dlv_st_tensor *want)
{
    assert_non_null(start);
    assert_non_null(after);
    assert_non_null(want);
    assert_int_equal(start->n_elements, after->n_elements);
    assert_int_equal(start->n_elements, want->n_elements);
    const size_t n = (size_t)start->n_elements;
    float *s = malloc(n * sizeof *s), *a = malloc(n * sizeof *a), *w = malloc(n * sizeof *w);
    assert_true(s && a && w);
    tt_check(dlv_st_read_f32(start, 0, (int64_t)n, s), label);
    tt_check(dlv_st_read_f32(after, 0, (int64_t)n, a), label);
    tt_check(dlv_st_read_f32(want, 0, (int64_t)n, w), label);
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        const double u = (double)a[i] - (double)s[i], u_ref = (double)w[i] - (double)s[i];
        err += (u - u_ref) * (u - u_ref);
        ref += u_ref * u_ref;
    }
    err = sqrt(err);
    ref = sqrt(ref);
    const double limit = REL_TOL * ref + ABS_TOL * sqrt((double)n);
    if (err > limit)
        fprintf(stderr, "%s: ||update - reference update|| = %.3g > %.3g (||reference "
                "update|| = %.3g)\n", label, err, limit, ref);
    assert_true(err <= limit);
    free(s);
    free(a);
    free(w);
    return ref > 0 ? err / ref : 0.0;
}

/* Every trained tensor of the session against `prefix` + name in the
 * golden: the adapter (soft prompts, logit scale, LoRA) and the saved
 * model's projector and language-model weights. Returns how many were
 * compared; *worst receives the largest relative error. */
static size_t compare_all(dlv_session *s, const dlv_st_file *g, const char *start_adapter,
                          const char *prefix, double *worst)
{
    char saved_adapter[1024], saved_model[1024], name[1024], pb[4096], pa[4096];
    tt_mkdtemp("dlv-optim-adapter", saved_adapter, sizeof saved_adapter);
    tt_check(dlv_adapter_save(s, saved_adapter), "dlv_adapter_save");
    tt_mkdtemp("dlv-optim-model", saved_model, sizeof saved_model);
    tt_remove_dir(saved_model); /* dlv_train_save_model creates it */
    tt_check(dlv_train_save_model(s, saved_model, "f32"), "dlv_train_save_model");

    static const char *const files[][2] = {{"soft_prompts.safetensors", ""},
                                           {"adapter_model.safetensors", ""},
                                           {"model.safetensors", "model"}};
    size_t n = 0;
    *worst = 0;
    for (size_t f = 0; f < 3; f++) {
        const int is_model = files[f][1][0] != '\0';
        snprintf(pb, sizeof pb, "%s/%s", is_model ? model_dir : start_adapter, files[f][0]);
        snprintf(pa, sizeof pa, "%s/%s", is_model ? saved_model : saved_adapter, files[f][0]);
        dlv_st_file *fs = NULL, *fa = NULL;
        tt_check(dlv_st_open(pb, &fs), pb);
        tt_check(dlv_st_open(pa, &fa), pa);
        for (size_t i = 0; i < dlv_st_count(fs); i++) {
            const dlv_st_tensor *ts = dlv_st_at(fs, i);
            snprintf(name, sizeof name, "%s%s", prefix, ts->name);
            const dlv_st_tensor *tw = dlv_st_find(g, name);
            if (!tw) {
                /* Not trained here: the vision tower (and integer buffers).
                 * The saved model must still hold it unchanged. */
                assert_true(is_model);
                assert_true(strncmp(ts->name, "vision_tower.", 13) == 0 ||
                            ts->dtype == DLV_DTYPE_I64);
                continue;
            }
            double e = compare_tensor(name, ts, dlv_st_find(fa, ts->name), tw);
            if (e > *worst) *worst = e;
            n++;
        }
        dlv_st_close(fs);
        dlv_st_close(fa);
    }
    tt_remove_dir(saved_adapter);
    tt_remove_dir(saved_model);
    return n;
}

static void start_session(dlv_model **m, dlv_session **s, char *start, size_t cap)
{
    tt_copy_adapter(adapter_dir, start, cap, 0, 0.0f);
    tt_check(test_model_load(model_dir, m), model_dir);
    tt_check(dlv_session_new(*m, NULL, s), "session");
    tt_check(dlv_adapter_load(*s, start), start);
}

static void test_adamw(void **state)
{
    (void)state;
    dlv_st_file *g = NULL;
    tt_check(dlv_st_open(golden_path, &g), golden_path);
    dlv_model *m = NULL;
    dlv_session *s = NULL;
    char start[1024];
    start_session(&m, &s, start, sizeof start);
    static const char *const kv[][2] = {
        {"train", "soft,lora,logit_scale,projector,llm"},
        {"optimizer", "adamw"}, {"lr", "0.01"}, {"weight_decay", "0.5"},
        {"beta1", "0.9"}, {"beta2", "0.999"}, {"eps", "1e-8"}, {"grad_clip", "0"},
        {"schedule", "cosine"}, {"warmup", "2"}, {"total_steps", "5"}};
    set_options(s, kv, sizeof kv / sizeof *kv);
    tt_golden_batch gb;
    tt_golden_batch_make(images_dir, &gb);
    for (size_t k = 0; k < ADAMW_STEPS; k++) {
        dlv_train_stats st = DLV_TRAIN_STATS_INIT;
        tt_check(dlv_train_step(s, gb.batch, &st), "dlv_train_step");
        const double lr = (double)tt_golden_at(g, "adamw.lr", k),
                     loss = (double)tt_golden_at(g, "adamw.L", k),
                     gn = (double)tt_golden_at(g, "adamw.grad_norm", k);
        printf("adamw step %zu: lr %.6g (ref %.6g)  loss %.6f (ref %.6f)  grad norm %.6g (ref "
               "%.6g)\n", k + 1, st.learning_rate, lr, st.loss, loss, st.grad_norm, gn);
        assert_true(fabs(st.learning_rate - lr) <= 1e-7 * lr);
        assert_true(fabs(st.loss - loss) <= LOSS_TOL * fabs(loss));
        assert_true(fabs(st.grad_norm - gn) <= NORM_TOL * gn);
        if (k + 1 == 1 || k + 1 == ADAMW_STEPS) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "adamw.step%zu.", k + 1);
            double worst = 0;
            size_t n = compare_all(s, g, start, prefix, &worst);
            printf("adamw after step %zu: %zu tensors match torch.optim.AdamW, worst relative "
                   "error of an update %.2e\n", k + 1, n, worst);
            assert_true(n > 30);
        }
    }
    tt_golden_batch_free(&gb);
    tt_remove_dir(start);
    dlv_session_free(s);
    dlv_model_free(m);
    dlv_st_close(g);
}

static void test_sgd_clipped(void **state)
{
    (void)state;
    dlv_st_file *g = NULL;
    tt_check(dlv_st_open(golden_path, &g), golden_path);
    dlv_model *m = NULL;
    dlv_session *s = NULL;
    char start[1024], clip[64];
    start_session(&m, &s, start, sizeof start);
    snprintf(clip, sizeof clip, "%.9g", (double)tt_golden_scalar(g, "sgd.max_norm"));
    const char *const kv[][2] = {
        {"train", "soft,lora,logit_scale,projector,llm"},
        {"optimizer", "sgd"}, {"lr", "0.5"}, {"weight_decay", "0.05"},
        {"grad_clip", clip}, {"schedule", "constant"}, {"warmup", "0"}};
    set_options(s, kv, sizeof kv / sizeof *kv);
    tt_golden_batch gb;
    tt_golden_batch_make(images_dir, &gb);
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;
    tt_check(dlv_train_step(s, gb.batch, &st), "dlv_train_step");
    const double gn = (double)tt_golden_scalar(g, "sgd.grad_norm");
    printf("sgd: loss %.6f (ref %.6f)  grad norm %.6g (ref %.6g), clipped to %s\n", st.loss,
           (double)tt_golden_scalar(g, "sgd.L"), st.grad_norm, gn, clip);
    assert_true(fabs(st.grad_norm - gn) <= NORM_TOL * gn);
    double worst = 0;
    size_t n = compare_all(s, g, start, "sgd.", &worst);
    printf("sgd (clipped): %zu tensors match torch.optim.SGD after clip_grad_norm_, worst "
           "relative error of an update %.2e\n", n, worst);
    assert_true(n > 30);
    tt_golden_batch_free(&gb);
    tt_remove_dir(start);
    dlv_session_free(s);
    dlv_model_free(m);
    dlv_st_close(g);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s IMAGES_DIR GOLDEN MODEL_DIR ADAPTER_DIR\n", argv[0]);
        return 2;
    }
    images_dir = argv[1];
    golden_path = argv[2];
    model_dir = argv[3];
    adapter_dir = argv[4];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_sgd_clipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
