/* Safetensors writing: the header is built with jansson (which escapes
 * names correctly and keeps insertion order), padded with spaces so that
 * the data buffer starts 8-byte aligned, and the whole file goes through
 * the atomic writer so that a reader never sees a half-written file. */
#include "io/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"

#define METADATA_KEY "__metadata__"

/* Validates e and returns its byte size in *bytes. */
static dlv_status entry_bytes(const char *path, size_t i, const dlv_st_write_entry *e,
                              uint64_t *bytes)
{
    if (!e->name || !e->name[0])
        return dlv_error(DLV_E_INVALID_ARG, "%s: entry %zu: empty tensor name", path, i);
    if (strcmp(e->name, METADATA_KEY) == 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': name is reserved", path,
                         e->name);
    if ((unsigned)e->dtype >= DLV_DTYPE_COUNT)
        return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': invalid dtype %d", path,
                         e->name, (int)e->dtype);
    if (e->ndim < 0 || e->ndim > DLV_ST_MAX_DIMS)
        return dlv_error(DLV_E_INVALID_ARG,
                         "%s: tensor '%s': %d dimensions, expected 0 to %d", path, e->name,
                         e->ndim, DLV_ST_MAX_DIMS);
    if (e->ndim > 0 && !e->shape)
        return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': shape is NULL", path, e->name);
    uint64_t count = 1;
    for (int d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0)
            return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': dimension %d is negative",
                             path, e->name, d);
        uint64_t v = (uint64_t)e->shape[d];
        if (v != 0 && count > UINT64_MAX / v)
            return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': element count overflows",
                             path, e->name);
        count *= v;
    }
    uint64_t esize = dlv_dtype_size(e->dtype);
    /* Offsets are stored as JSON integers (signed 64-bit) and written in one
     * size_t call: keep the size within both. */
    uint64_t limit = (uint64_t)INT64_MAX < (uint64_t)SIZE_MAX ? (uint64_t)INT64_MAX
                                                               : (uint64_t)SIZE_MAX;
    if (count > limit / esize)
        return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': byte size overflows", path,
                         e->name);
    *bytes = count * esize;
    if (*bytes > 0 && !e->data)
        return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': data is NULL", path, e->name);
    return DLV_OK;
}

static json_t *tensor_json(const dlv_st_write_entry *e, uint64_t begin, uint64_t end)
{
    json_t *obj = json_object();
    json_t *shape = json_array();
    json_t *offs = json_array();
    int bad = !obj || !shape || !offs;
    for (int d = 0; !bad && d < e->ndim; d++)
        bad = json_array_append_new(shape, json_integer((json_int_t)e->shape[d])) != 0;
    if (!bad)
        bad = json_array_append_new(offs, json_integer((json_int_t)begin)) != 0 ||
              json_array_append_new(offs, json_integer((json_int_t)end)) != 0;
    if (!bad)
        bad = json_object_set_new(obj, "dtype", json_string(dlv_dtype_name(e->dtype))) != 0;
    /* set_new takes the reference even on failure. */
    if (!bad) {
        bad = json_object_set_new(obj, "shape", shape) != 0;
        shape = NULL;
    }
    if (!bad) {
        bad = json_object_set_new(obj, "data_offsets", offs) != 0;
        offs = NULL;
    }
    json_decref(shape);
    json_decref(offs);
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static dlv_status build_metadata(const char *path, json_t *root,
                                 const char *const *keys, const char *const *values,
                                 size_t n_meta)
{
    if (n_meta == 0) return DLV_OK;
    if (!keys || !values)
        return dlv_error(DLV_E_INVALID_ARG, "%s: metadata keys or values are NULL", path);
    json_t *meta = json_object();
    if (!meta || json_object_set_new(root, METADATA_KEY, meta) != 0)
        return dlv_error_nomem("safetensors metadata", 0);
    for (size_t i = 0; i < n_meta; i++) {
        if (!keys[i] || !values[i])
            return dlv_error(DLV_E_INVALID_ARG, "%s: metadata entry %zu is NULL", path, i);
        if (json_object_get(meta, keys[i]))
            return dlv_error(DLV_E_INVALID_ARG, "%s: metadata key '%s' given twice", path,
                             keys[i]);
        json_t *v = json_string(values[i]);
        /* json_string and set_new fail on invalid UTF-8 (or no memory). */
        if (!v || json_object_set_new(meta, keys[i], v) != 0)
            return dlv_error(DLV_E_INVALID_ARG,
                             "%s: metadata key '%s': not valid UTF-8 (or out of memory)", path,
                             keys[i]);
    }
    return DLV_OK;
}

/* Builds the header object, checking every entry. */
static dlv_status build_header(const char *path, const dlv_st_write_entry *entries, size_t n,
                               const char *const *keys, const char *const *values,
                               size_t n_meta, json_t *root)
{
    dlv_status st = build_metadata(path, root, keys, values, n_meta);
    if (st != DLV_OK) return st;
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const dlv_st_write_entry *e = &entries[i];
        uint64_t bytes = 0;
        st = entry_bytes(path, i, e, &bytes);
        if (st != DLV_OK) return st;
        if (json_object_get(root, e->name))
            return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s' given twice", path, e->name);
        if (bytes > (uint64_t)INT64_MAX - off)
            return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': total size overflows", path,
                             e->name);
        json_t *t = tensor_json(e, off, off + bytes);
        if (!t) return dlv_error_nomem("safetensors header", 0);
        if (json_object_set_new(root, e->name, t) != 0)
            return dlv_error(DLV_E_INVALID_ARG,
                             "%s: tensor '%s': name is not valid UTF-8 (or out of memory)",
                             path, e->name);
        off += bytes;
    }
    return DLV_OK;
}

static dlv_status write_all(dlv_atomic_file *af, const char *header, size_t hlen,
                            const dlv_st_write_entry *entries, size_t n)
{
    size_t padded = (hlen + 7) & ~(size_t)7;
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    dlv_status st = dlv_atomic_write(af, len_le, sizeof len_le);
    if (st == DLV_OK) st = dlv_atomic_write(af, header, hlen);
    if (st == DLV_OK) st = dlv_atomic_write(af, spaces, padded - hlen);
    for (size_t i = 0; i < n && st == DLV_OK; i++) {
        const dlv_st_write_entry *e = &entries[i];
        uint64_t count = 1;
        for (int d = 0; d < e->ndim; d++) count *= (uint64_t)e->shape[d];
        size_t bytes = (size_t)(count * dlv_dtype_size(e->dtype));
        if (bytes > 0) st = dlv_atomic_write(af, e->data, bytes);
    }
    return st;
}

dlv_status dlv_st_write(const char *path, const dlv_st_write_entry *entries, size_t n,
                        const char *const *meta_keys, const char *const *meta_values,
                        size_t n_meta)
{
    if (!path || !path[0]) return dlv_error(DLV_E_INVALID_ARG, "dlv_st_write: empty path");
    if (n > 0 && !entries)
        return dlv_error(DLV_E_INVALID_ARG, "%s: entries is NULL", path);

    json_t *root = json_object();
    if (!root) return dlv_error_nomem("safetensors header", 0);
    dlv_status st = build_header(path, entries, n, meta_keys, meta_values, n_meta, root);
    char *header = NULL;
    if (st == DLV_OK) {
        header = json_dumps(root, JSON_COMPACT);
        if (!header) st = dlv_error_nomem("safetensors header text", 0);
    }
    json_decref(root);
    if (st != DLV_OK) return st;

    size_t hlen = strlen(header);
    /* Readers (this one and the reference) refuse larger headers. */
    if ((uint64_t)hlen + 7 > DLV_ST_MAX_HEADER) {
        free(header);
        return dlv_error(DLV_E_INVALID_ARG, "%s: header of %zu bytes exceeds the limit of %llu",
                         path, hlen, (unsigned long long)DLV_ST_MAX_HEADER);
    }
    dlv_atomic_file *af = NULL;
    st = dlv_atomic_open(path, &af);
    if (st == DLV_OK) {
        st = write_all(af, header, hlen, entries, n);
        if (st == DLV_OK) st = dlv_atomic_commit(af);
        else dlv_atomic_abort(af);
    }
    free(header);
    return st;
}
