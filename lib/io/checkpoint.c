/* A checkpoint directory: one model.safetensors, or shards listed by
 * model.safetensors.index.json (the Hugging Face layout). The index and the
 * shards must agree exactly; any disagreement means the directory was
 * assembled from different saves, so loading it would mix weights. */
#include "io/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
/* Real indexes are ~100 KB; this only stops absurd inputs. */
#define INDEX_MAX_BYTES ((size_t)64 << 20)

struct dlv_st_set {
    dlv_st_file **files;
    size_t n_files;
    const dlv_st_tensor **tensors;  /* file order, then data-offset order */
    const dlv_st_tensor **by_name;  /* sorted by name */
    size_t n;
    int sharded;
};

void dlv_st_set_close(dlv_st_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_files; i++) dlv_st_close(s->files[i]);
    free(s->files);
    free(s->tensors);
    free(s->by_name);
    free(s);
}

static int cmp_tensor_names(const void *a, const void *b)
{
    const dlv_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int cmp_strings(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Gathers the tensors of every file and rejects a name held by two. */
static dlv_status build_tables(dlv_st_set *s, const char *dir)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_files; i++) n += dlv_st_count(s->files[i]);
    if (n == 0) return DLV_OK;
    s->tensors = calloc(n, sizeof *s->tensors);
    s->by_name = calloc(n, sizeof *s->by_name);
    if (!s->tensors || !s->by_name) return dlv_error_nomem(dir, 2 * n * sizeof *s->tensors);
    size_t k = 0;
    for (size_t i = 0; i < s->n_files; i++)
        for (size_t j = 0; j < dlv_st_count(s->files[i]); j++)
            s->tensors[k++] = dlv_st_at(s->files[i], j);
    memcpy(s->by_name, s->tensors, n * sizeof *s->tensors);
    qsort(s->by_name, n, sizeof *s->by_name, cmp_tensor_names);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(s->by_name[i - 1]->name, s->by_name[i]->name) == 0)
            return dlv_error(DLV_E_FORMAT, "%s: tensor '%s' is in two files: %s and %s", dir,
                             s->by_name[i]->name, s->by_name[i - 1]->file_path,
                             s->by_name[i]->file_path);
    }
    s->n = n;
    return DLV_OK;
}

static dlv_status open_single(dlv_st_set *s, const char *path)
{
    s->files = calloc(1, sizeof *s->files);
    if (!s->files) return dlv_error_nomem(path, sizeof *s->files);
    dlv_status st = dlv_st_open(path, &s->files[0]);
    if (st != DLV_OK) return st;
    s->n_files = 1;
    return DLV_OK;
}

/* Shard names come from a file we do not control: keep them inside dir. */
static int plain_file_name(const char *name)
{
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

/* The distinct shard names of weight_map, sorted (borrowed from the map). */
static dlv_status shard_names(json_t *map, const char *ipath, const char ***out,
                              size_t *n_out)
{
    size_t n = json_object_size(map);
    const char **names = calloc(n, sizeof *names);
    if (!names) return dlv_error_nomem(ipath, n * sizeof *names);
    size_t k = 0;
    const char *tensor;
    json_t *val;
    json_object_foreach(map, tensor, val) {
        if (!json_is_string(val)) {
            free(names);
            return dlv_error(DLV_E_FORMAT,
                             "%s: field 'weight_map': tensor '%s': expected a file name string",
                             ipath, tensor);
        }
        const char *shard = json_string_value(val);
        if (!plain_file_name(shard)) {
            free(names);
            return dlv_error(DLV_E_FORMAT,
                             "%s: field 'weight_map': tensor '%s': shard '%s' is not a plain "
                             "file name in the checkpoint directory", ipath, tensor, shard);
        }
        names[k++] = shard;
    }
    qsort(names, k, sizeof *names, cmp_strings);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (m == 0 || strcmp(names[m - 1], names[i]) != 0) names[m++] = names[i];
    *out = names;
    *n_out = m;
    return DLV_OK;
}

/* Every tensor of a shard must be mapped to that shard. A tensor the index
 * does not list is refused rather than loaded: the index is what transformers
 * reads, so a tensor missing from it means the index is stale and the
 * directory does not hold one consistent save. */
static dlv_status check_shard(json_t *map, const char *ipath, const char *shard,
                              const dlv_st_file *f)
{
    for (size_t j = 0; j < dlv_st_count(f); j++) {
        const dlv_st_tensor *t = dlv_st_at(f, j);
        const char *want = json_string_value(json_object_get(map, t->name));
        if (!want)
            return dlv_error(DLV_E_FORMAT,
                             "%s: tensor '%s' is in shard %s but not in the index's "
                             "weight_map", ipath, t->name, shard);
        if (strcmp(want, shard) != 0)
            return dlv_error(DLV_E_FORMAT,
                             "%s: tensor '%s' is in shard %s but the index maps it to %s",
                             ipath, t->name, shard, want);
    }
    return DLV_OK;
}

static dlv_status open_sharded(dlv_st_set *s, const char *dir, const char *ipath)
{
    char *text = NULL;
    size_t len = 0;
    dlv_status st = dlv_read_file(ipath, INDEX_MAX_BYTES, &text, &len);
    if (st != DLV_OK) return st;
    json_t *root = NULL;
    st = dlv_json_parse(text, len, ipath, &root);
    free(text);
    if (st != DLV_OK) return st;

    json_t *map = json_object_get(root, "weight_map");
    json_t *meta = json_object_get(root, "metadata");
    const char **names = NULL;
    size_t n_names = 0;
    if (!json_is_object(root))
        st = dlv_error(DLV_E_FORMAT, "%s: expected a JSON object", ipath);
    else if (!json_is_object(map))
        st = dlv_error(DLV_E_FORMAT, "%s: field 'weight_map': expected an object", ipath);
    else if (json_object_size(map) == 0)
        st = dlv_error(DLV_E_FORMAT, "%s: field 'weight_map': lists no tensors", ipath);
    else if (meta && !json_is_object(meta) && !json_is_null(meta))
        st = dlv_error(DLV_E_FORMAT, "%s: field 'metadata': expected an object", ipath);
    else
        st = shard_names(map, ipath, &names, &n_names);

    if (st == DLV_OK) {
        s->files = calloc(n_names, sizeof *s->files);
        if (!s->files) st = dlv_error_nomem(ipath, n_names * sizeof *s->files);
    }
    for (size_t i = 0; st == DLV_OK && i < n_names; i++) {
        char *spath = dlv_path_join(dir, names[i]);
        if (!spath) {
            st = dlv_error_nomem(dir, strlen(dir) + strlen(names[i]) + 2);
            break;
        }
        st = dlv_st_open(spath, &s->files[i]);
        free(spath);
        if (st != DLV_OK) {
            st = dlv_error_prefix(st, "%s: shard %s", ipath, names[i]);
            break;
        }
        s->n_files = i + 1;
    }
    /* Duplicates first: their message is clearer than the mismatch one. */
    if (st == DLV_OK) st = build_tables(s, dir);
    for (size_t i = 0; st == DLV_OK && i < n_names; i++)
        st = check_shard(map, ipath, names[i], s->files[i]);
    if (st == DLV_OK) {
        /* Every mapped tensor must be found, and in the shard named. */
        const char *tensor;
        json_t *val;
        json_object_foreach(map, tensor, val) {
            const dlv_st_tensor *t = dlv_st_set_find(s, tensor);
            if (!t) {
                st = dlv_error(DLV_E_FORMAT,
                               "%s: tensor '%s' is listed in weight_map but missing from "
                               "shard %s", ipath, tensor, json_string_value(val));
                break;
            }
        }
    }
    free(names);
    json_decref(root);
    return st;
}

dlv_status dlv_st_set_open_dir(const char *dir, dlv_st_set **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_st_set_open_dir: out is NULL");
    *out = NULL;
    if (!dir || !dir[0]) return dlv_error(DLV_E_IO, "checkpoint: empty directory name");
    dlv_st_set *s = calloc(1, sizeof *s);
    char *ipath = dlv_path_join(dir, INDEX_NAME);
    char *spath = dlv_path_join(dir, SINGLE_NAME);
    dlv_status st = DLV_OK;
    if (!s || !ipath || !spath) {
        st = dlv_error_nomem(dir, sizeof *s + 2 * strlen(dir) + sizeof INDEX_NAME);
    } else if (dlv_is_file(ipath)) {
        s->sharded = 1;
        st = open_sharded(s, dir, ipath);
    } else if (dlv_is_file(spath)) {
        st = open_single(s, spath);
        if (st == DLV_OK) st = build_tables(s, dir);
    } else {
        st = dlv_error(DLV_E_IO, "%s: no checkpoint: neither %s nor %s is there", dir,
                       INDEX_NAME, SINGLE_NAME);
    }
    free(ipath);
    free(spath);
    if (st != DLV_OK) {
        dlv_st_set_close(s);
        return st;
    }
    *out = s;
    return DLV_OK;
}

size_t dlv_st_set_count(const dlv_st_set *s) { return s ? s->n : 0; }

const dlv_st_tensor *dlv_st_set_at(const dlv_st_set *s, size_t i)
{
    return s && i < s->n ? s->tensors[i] : NULL;
}

const dlv_st_tensor *dlv_st_set_find(const dlv_st_set *s, const char *name)
{
    if (!s || !name) return NULL;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->by_name[mid]->name);
        if (c == 0) return s->by_name[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

size_t dlv_st_set_n_files(const dlv_st_set *s) { return s ? s->n_files : 0; }

int dlv_st_set_sharded(const dlv_st_set *s) { return s ? s->sharded : 0; }
