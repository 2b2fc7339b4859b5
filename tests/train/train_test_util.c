/* See train_test_util.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "train_test_util.h"

void tt_check(dlv_status st, const char *what)
{
    if (st != DLV_OK) fprintf(stderr, "%s: %s (%s)\n", what, dlv_status_str(st), dlv_last_error());
    assert_int_equal(st, DLV_OK);
}

float tt_golden_at(const dlv_st_file *g, const char *name, size_t i)
{
    const dlv_st_tensor *t = dlv_st_find(g, name);
    if (!t) fprintf(stderr, "golden has no '%s'\n", name);
    assert_non_null(t);
    assert_true((uint64_t)i < t->n_elements);
    float v = 0;
    tt_check(dlv_st_read_f32(t, (int64_t)i, 1, &v), name);
    return v;
}

float tt_golden_scalar(const dlv_st_file *g, const char *name)
{
    return tt_golden_at(g, name, 0);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

void tt_mkdtemp(const char *stem, char *tmp, size_t cap)
{
    const char *root = getenv("TMPDIR");
    snprintf(tmp, cap, "%s/%s-XXXXXX", root ? root : "/tmp", stem);
    assert_non_null(mkdtemp(tmp));
}

static const char *const adapter_files[] = {"adapter_config.json", "adapter_model.safetensors",
                                            "soft_prompts.safetensors", "prompts.json"};

void tt_copy_adapter(const char *from, char *tmp, size_t cap, int set_scale, float scale)
{
    tt_mkdtemp("dlv-train-golden", tmp, cap);
    char a[4096], b[4096];
    for (size_t i = 0; i < sizeof adapter_files / sizeof *adapter_files; i++) {
        snprintf(a, sizeof a, "%s/%s", from, adapter_files[i]);
        snprintf(b, sizeof b, "%s/%s", tmp, adapter_files[i]);
        if (access(a, F_OK) == 0) copy_file(a, b);
    }
    if (!set_scale) return;
    snprintf(a, sizeof a, "%s/soft_prompts.safetensors", from);
    snprintf(b, sizeof b, "%s/soft_prompts.safetensors", tmp);
    dlv_st_file *f = NULL;
    tt_check(dlv_st_open(a, &f), a);
    dlv_st_write_entry e[3];
    size_t n = 0;
    for (size_t i = 0; i < dlv_st_count(f) && n < 3; i++) {
        const dlv_st_tensor *t = dlv_st_at(f, i);
        e[n++] = (dlv_st_write_entry){t->name, t->dtype, t->ndim, t->shape,
                                      strcmp(t->name, "logit_scale") ? t->data : &scale};
    }
    tt_check(dlv_st_write(b, e, n, NULL, NULL, 0), b);
    dlv_st_close(f);
}

void tt_remove_dir(const char *dir)
{
    static const char *const files[] = {
        "adapter_config.json", "adapter_model.safetensors", "soft_prompts.safetensors",
        "prompts.json",        "train_state.safetensors",   "config.json",
        "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
        "tokenizer.model",     "model.safetensors"};
    char p[4096];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(dir), 0);
}

static const char *const short_caps[3] = {"a red circle", "Cat on a mat", "two dogs"};
static const char *const long_caps[3] = {
    "the quick brown fox jumps over the lazy dog",
    "A photo of a cat sitting on a mat near a window.", "sky"};

void tt_golden_batch_make(const char *images_dir, tt_golden_batch *out)
{
    tt_check(dlv_batch_new(&out->batch), "batch");
    for (int i = 0; i < 3; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/img%d.png", images_dir, i);
        tt_check(dlv_image_from_file(p, &out->images[i]), p);
        tt_check(dlv_batch_add(out->batch, out->images[i], short_caps[i], long_caps[i]),
                 "batch add");
    }
}

void tt_golden_batch_free(tt_golden_batch *b)
{
    dlv_batch_free(b->batch);
    for (int i = 0; i < 3; i++) dlv_image_free(b->images[i]);
}
