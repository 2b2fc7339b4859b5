/* Adapter directories: prompts.json, soft_prompts.safetensors and the PEFT
 * LoRA files. */
#include "model/adapter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "io/safetensors.h"
#include "model/model.h"

void dlv_adapter_release(dlv_adapter *a)
{
    if (!a) return;
    dlv_prompts_free(&a->prompts);
    free(a->image_prompt);
    free(a->text_prompt);
    if (a->has_lora) dlv_lora_free(&a->lora);
    memset(a, 0, sizeof *a);
}

dlv_status dlv_adapter_init_default(const dlv_model *m, dlv_adapter *out)
{
    memset(out, 0, sizeof *out);
    out->logit_scale = (float)DLV_DEFAULT_LOGIT_SCALE;
    return dlv_prompts_default(m, &out->prompts);
}

/* A [rows, hidden] soft prompt widened to f32 into *out. */
static dlv_status read_prompt(const dlv_st_tensor *t, int64_t hidden, const char *path,
                              float **out, int64_t *rows)
{
    if (t->ndim == 2 && t->shape[0] >= 1 && t->shape[1] != hidden)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s' has rows of %lld: made for a model with "
                         "hidden_size %lld, this model has %lld (an adapter of another model?)",
                         path, t->name, (long long)t->shape[1], (long long)t->shape[1],
                         (long long)hidden);
    if (t->ndim != 2 || t->shape[0] < 1)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': shape [n >= 1, %lld] expected "
                         "(hidden_size)", path, t->name, (long long)hidden);
    *out = malloc((size_t)t->n_elements * sizeof **out);
    if (!*out) return dlv_error_nomem(t->name, (size_t)t->n_elements * sizeof(float));
    *rows = t->shape[0];
    dlv_status st = dlv_st_read_f32(t, 0, t->n_elements, *out);
    if (st) return dlv_error_prefix(st, "%s", path);
    for (uint64_t i = 0; i < t->n_elements; i++)
        if (!isfinite((*out)[i]))
            return dlv_error(DLV_E_NUMERIC, "%s: tensor '%s': element %llu is not finite", path,
                             t->name, (unsigned long long)i);
    return DLV_OK;
}

static dlv_status read_soft_prompts(const dlv_model *m, const char *path, dlv_adapter *a)
{
    dlv_st_file *f = NULL;
    dlv_status st = dlv_st_open(path, &f);
    if (st) return st;
    const int64_t hidden = dlv_model_config(m)->text.hidden_size;
    for (size_t i = 0; i < dlv_st_count(f) && !st; i++) {
        const dlv_st_tensor *t = dlv_st_at(f, i);
        if (t->dtype != DLV_DTYPE_F32 && t->dtype != DLV_DTYPE_BF16 && t->dtype != DLV_DTYPE_F16)
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s': dtype %s (F32, BF16 or F16 expected)",
                           path, t->name, dlv_dtype_name(t->dtype));
        else if (!strcmp(t->name, "image_prompt"))
            st = read_prompt(t, hidden, path, &a->image_prompt, &a->n_image_prompt);
        else if (!strcmp(t->name, "text_prompt"))
            st = read_prompt(t, hidden, path, &a->text_prompt, &a->n_text_prompt);
        else if (!strcmp(t->name, "logit_scale")) {
            if (t->n_elements != 1 || t->ndim > 1)
                st = dlv_error(DLV_E_FORMAT, "%s: tensor 'logit_scale': shape [1] expected",
                               path);
            else if (!(st = dlv_st_read_f32(t, 0, 1, &a->logit_scale)) &&
                     !isfinite(a->logit_scale))
                st = dlv_error(DLV_E_NUMERIC, "%s: tensor 'logit_scale' is not finite", path);
        } else
            st = dlv_error(DLV_E_FORMAT, "%s: tensor '%s' is not a soft-prompt tensor "
                           "(image_prompt, text_prompt, logit_scale)", path, t->name);
    }
    dlv_st_close(f);
    return st;
}

dlv_status dlv_adapter_read(const dlv_model *m, const char *dir, dlv_adapter *out)
{
    memset(out, 0, sizeof *out);
    out->logit_scale = (float)DLV_DEFAULT_LOGIT_SCALE;
    if (!dlv_is_dir(dir))
        return dlv_error(DLV_E_IO, "%s: not a directory (an adapter directory is expected)", dir);
    char *prompts = dlv_path_join(dir, "prompts.json");
    char *soft = dlv_path_join(dir, "soft_prompts.safetensors");
    char *config = dlv_path_join(dir, "adapter_config.json");
    dlv_status st = DLV_OK;
    if (!prompts || !soft || !config) st = dlv_error_nomem("a path", strlen(dir) + 32);
    int has_prompts = prompts && dlv_is_file(prompts);
    int has_soft = soft && dlv_is_file(soft);
    int has_config = config && dlv_is_file(config);
    if (!st && !has_prompts && !has_soft && !has_config)
        st = dlv_error(DLV_E_FORMAT, "%s: no adapter files (adapter_config.json, "
                       "soft_prompts.safetensors or prompts.json)", dir);
    if (!st) st = has_prompts ? dlv_prompts_load(m, prompts, &out->prompts)
                              : dlv_prompts_default(m, &out->prompts);
    if (!st && has_soft) st = read_soft_prompts(m, soft, out);
    if (!st && has_config) {
        st = dlv_lora_load(m, dir, &out->lora);
        out->has_lora = st == DLV_OK;
    }
    free(prompts);
    free(soft);
    free(config);
    if (st) dlv_adapter_release(out);
    return st;
}

static dlv_status save_soft(const dlv_adapter *a, int64_t hidden, const char *path)
{
    dlv_st_write_entry e[3];
    int64_t shapes[3][2];
    size_t n = 0;
    if (a->image_prompt) {
        shapes[n][0] = a->n_image_prompt;
        shapes[n][1] = hidden;
        e[n] = (dlv_st_write_entry){"image_prompt", DLV_DTYPE_F32, 2, shapes[n], a->image_prompt};
        n++;
    }
    if (a->text_prompt) {
        shapes[n][0] = a->n_text_prompt;
        shapes[n][1] = hidden;
        e[n] = (dlv_st_write_entry){"text_prompt", DLV_DTYPE_F32, 2, shapes[n], a->text_prompt};
        n++;
    }
    shapes[n][0] = 1;
    e[n] = (dlv_st_write_entry){"logit_scale", DLV_DTYPE_F32, 1, shapes[n], &a->logit_scale};
    n++;
    static const char *const mk[] = {"format"}, *const mv[] = {"pt"};
    return dlv_st_write(path, e, n, mk, mv, 1);
}

const char *const dlv_adapter_files[] = {"adapter_config.json", "adapter_model.safetensors",
                                         "soft_prompts.safetensors", "prompts.json",
                                         "train_state.safetensors", NULL};

dlv_status dlv_adapter_write_files(const dlv_model *m, const dlv_adapter *a, const char *dir)
{
    char *prompts = dlv_path_join(dir, "prompts.json");
    char *soft = dlv_path_join(dir, "soft_prompts.safetensors");
    dlv_status st = DLV_OK;
    if (!prompts || !soft) st = dlv_error_nomem("a path", strlen(dir) + 32);
    if (!st) st = dlv_prompts_save(&a->prompts, prompts);
    if (!st) st = save_soft(a, dlv_model_config(m)->text.hidden_size, soft);
    if (!st && a->has_lora) st = dlv_lora_save(&a->lora, dlv_model_config(m), dir);
    free(prompts);
    free(soft);
    return st;
}

dlv_status dlv_adapter_write(const dlv_model *m, const dlv_adapter *a, const char *dir)
{
    char *tmp = NULL;
    dlv_status st = dlv_dir_save_begin(dir, dlv_adapter_files, &tmp);
    if (st) return st;
    st = dlv_adapter_write_files(m, a, tmp);
    if (!st) st = dlv_dir_save_commit(tmp, dir, dlv_adapter_files);
    if (st) dlv_dir_save_abort(tmp, dlv_adapter_files);
    free(tmp);
    return st;
}
