/* Writing a model being trained as a Hugging Face model directory (see
 * save_model.h), shared by the LLaVA and the CLIPModel trainers. */
#include "train/save_model.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "model/model.h"

/* Copies from -> to; config.json gets torch_dtype when one is forced. */
static dlv_status copy_file(const char *from, const char *to, const char *torch_dtype)
{
    char *text = NULL;
    size_t len = 0;
    dlv_status st = dlv_read_file(from, (size_t)1 << 30, &text, &len);
    if (st) return st;
    if (!torch_dtype) {
        st = dlv_write_file_atomic(to, text, len);
        free(text);
        return st;
    }
    json_t *root = NULL;
    st = dlv_json_parse(text, len, from, &root);
    free(text);
    if (st) return st;
    char *out = NULL;
    if (json_object_set_new(root, "torch_dtype", json_string(torch_dtype)) ||
        !(out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER)))
        st = dlv_error(DLV_E_NOMEM, "%s: cannot build the JSON", to);
    json_decref(root);
    if (!st) st = dlv_write_file_atomic(to, out, strlen(out));
    free(out);
    return st;
}

static void *convert_from_f32(const float *src, size_t n, dlv_dtype dt)
{
    void *b = malloc(n * dlv_dtype_size(dt) + 1);
    if (!b) return NULL;
    if (dt == DLV_DTYPE_F32) memcpy(b, src, n * sizeof *src);
    else
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)b)[i] = dt == DLV_DTYPE_BF16 ? dlv_f32_to_bf16(src[i])
                                                      : dlv_f32_to_f16(src[i]);
    return b;
}

dlv_status dlv_save_model_dir(const dlv_model *m, const dlv_tensor *tv, const size_t *woff,
                              const char *const *model_files, const char *dir, const char *dtype)
{
    dlv_dtype force = DLV_DTYPE_F32;
    const char *torch_dtype = NULL;
    if (dtype && *dtype) {
        if (!strcmp(dtype, "f32")) { force = DLV_DTYPE_F32; torch_dtype = "float32"; }
        else if (!strcmp(dtype, "bf16")) { force = DLV_DTYPE_BF16; torch_dtype = "bfloat16"; }
        else if (!strcmp(dtype, "f16")) { force = DLV_DTYPE_F16; torch_dtype = "float16"; }
        else return dlv_error(DLV_E_INVALID_ARG, "save model: dtype '%s' (f32, bf16 or f16)",
                              dtype);
    }
    const dlv_st_set *ck = dlv_model_checkpoint(m);
    const size_t n = dlv_st_set_count(ck);
    dlv_st_write_entry *e = calloc(n ? n : 1, sizeof *e);
    void **owned = calloc(n ? n : 1, sizeof *owned);
    char *tmp = NULL;
    dlv_status st = DLV_OK;
    if (!e || !owned) st = dlv_error_nomem("tensor table", n * 64);
    for (size_t i = 0; i < n && !st; i++) {
        const dlv_st_tensor *ten = dlv_st_set_at(ck, i);
        /* A trained weight: its f32 copy on the device. */
        const dlv_tensor *trained = NULL;
        const dlv_weights *table = dlv_model_weights(m);
        for (size_t w = 0; w < table->n && !trained; w++)
            if (table->items[w].tensor == ten && woff[w] != SIZE_MAX) trained = &tv[w];
        dlv_dtype out_dt = torch_dtype && dlv_dtype_is_float(ten->dtype) ? force : ten->dtype;
        e[i] = (dlv_st_write_entry){ten->name, out_dt, ten->ndim, ten->shape, ten->data};
        if (trained || out_dt != ten->dtype) {
            float *widened = malloc((size_t)ten->n_elements * sizeof *widened + 1);
            if (!widened) st = dlv_error_nomem(ten->name, (size_t)ten->n_elements * 4);
            else if (trained) st = dlv_tensor_download(widened, trained);
            else st = dlv_st_read_f32(ten, 0, ten->n_elements, widened);
            if (!st) {
                owned[i] = convert_from_f32(widened, (size_t)ten->n_elements, out_dt);
                if (!owned[i]) st = dlv_error_nomem(ten->name, (size_t)ten->n_elements * 4);
                e[i].data = owned[i];
            }
            free(widened);
        }
    }
    if (!st) st = dlv_dir_save_begin(dir, model_files, &tmp);
    for (size_t f = 0; !st && model_files[f]; f++) {
        if (!strcmp(model_files[f], "model.safetensors")) continue;
        char *from = dlv_path_join(dlv_model_dir(m), model_files[f]);
        char *to = dlv_path_join(tmp, model_files[f]);
        if (!from || !to) st = dlv_error_nomem("a path", strlen(dir) + 64);
        else if (dlv_is_file(from))
            st = copy_file(from, to, !strcmp(model_files[f], "config.json") ? torch_dtype : NULL);
        free(from);
        free(to);
    }
    if (!st) {
        char *path = dlv_path_join(tmp, "model.safetensors");
        static const char *const mk[] = {"format"}, *const mv[] = {"pt"};
        if (!path) st = dlv_error_nomem("a path", strlen(tmp) + 32);
        else st = dlv_st_write(path, e, n, mk, mv, 1);
        free(path);
    }
    if (!st) st = dlv_dir_save_commit(tmp, dir, model_files);
    if (st && tmp) dlv_dir_save_abort(tmp, model_files);
    free(tmp);
    for (size_t i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    free(e);
    return st;
}
