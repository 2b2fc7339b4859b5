/* Safetensors reading: the file is mapped read-only and every header field
 * is validated before any tensor is exposed, so that later code can trust
 * shapes, dtypes and byte ranges without re-checking them. The rules match
 * the reference implementation (huggingface/safetensors): tensors must tile
 * the data buffer exactly, in offset order, with no holes. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json_util.h"

struct dlv_st_file {
    char *path;                 /* label used in every message */
    void *map;                  /* NULL for dlv_st_open_memory */
    size_t map_size;
    json_t *header;             /* owns the tensor names */
    json_t *metadata;           /* inside header; NULL if absent */
    dlv_st_tensor *tensors;     /* data-offset order */
    size_t n;
    size_t *by_name;            /* indices into tensors, sorted by name */
};

#define METADATA_KEY "__metadata__"

static uint64_t read_u64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A non-negative JSON integer; 0 on success. */
static int json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (uint64_t)x;
    return 0;
}

static dlv_status parse_shape(const json_t *shape, const char *label, const char *name,
                              dlv_st_tensor *t)
{
    if (!json_is_array(shape))
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': field 'shape': expected an array",
                         label, name);
    size_t nd = json_array_size(shape);
    if (nd > DLV_ST_MAX_DIMS)
        return dlv_error(DLV_E_FORMAT,
                         "%s: tensor '%s': field 'shape': %zu dimensions, at most %d supported",
                         label, name, nd, DLV_ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t count = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(json_array_get(shape, i), &d) != 0)
            return dlv_error(DLV_E_FORMAT,
                             "%s: tensor '%s': field 'shape': dimension %zu is not a "
                             "non-negative integer", label, name, i);
        t->shape[i] = (int64_t)d;
        /* Overflow is checked in the order the dimensions come, as the
         * reference does: [2^40, 2^40, 0] is refused too. */
        if (d != 0 && count > UINT64_MAX / d)
            return dlv_error(DLV_E_FORMAT,
                             "%s: tensor '%s': field 'shape': element count overflows",
                             label, name);
        count *= d;
    }
    t->n_elements = count;
    return DLV_OK;
}

static dlv_status parse_entry(json_t *entry, const char *label, const char *name,
                              dlv_st_tensor *t, uint64_t *begin, uint64_t *end)
{
    if (!json_is_object(entry))
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': expected an object", label, name);
    const char *key;
    json_t *val;
    json_object_foreach(entry, key, val) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': unexpected field '%s'", label,
                             name, key);
    }
    const json_t *dtype = json_object_get(entry, "dtype");
    const json_t *shape = json_object_get(entry, "shape");
    const json_t *offs = json_object_get(entry, "data_offsets");
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
    if (missing)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': missing field '%s'", label, name,
                         missing);

    if (!json_is_string(dtype))
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': field 'dtype': expected a string",
                         label, name);
    if (dlv_dtype_parse(json_string_value(dtype), &t->dtype) != 0)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': unknown dtype '%s'", label, name,
                         json_string_value(dtype));

    dlv_status st = parse_shape(shape, label, name, t);
    if (st != DLV_OK) return st;

    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        json_u64(json_array_get(offs, 0), begin) != 0 ||
        json_u64(json_array_get(offs, 1), end) != 0)
        return dlv_error(DLV_E_FORMAT,
                         "%s: tensor '%s': field 'data_offsets': expected [begin, end] of "
                         "non-negative integers", label, name);
    if (*begin > *end)
        return dlv_error(DLV_E_FORMAT,
                         "%s: tensor '%s': field 'data_offsets': begin %llu > end %llu",
                         label, name, (unsigned long long)*begin, (unsigned long long)*end);

    uint64_t esize = dlv_dtype_size(t->dtype);
    if (t->n_elements > UINT64_MAX / esize)
        return dlv_error(DLV_E_FORMAT, "%s: tensor '%s': byte size overflows", label, name);
    t->n_bytes = t->n_elements * esize;
    if (t->n_bytes != *end - *begin)
        return dlv_error(DLV_E_FORMAT,
                         "%s: tensor '%s': shape and dtype %s give %llu bytes but "
                         "data_offsets span %llu", label, name, dlv_dtype_name(t->dtype),
                         (unsigned long long)t->n_bytes, (unsigned long long)(*end - *begin));
    return DLV_OK;
}

static dlv_status check_metadata(json_t *meta, const char *label)
{
    if (!json_is_object(meta))
        return dlv_error(DLV_E_FORMAT, "%s: field '" METADATA_KEY "': expected an object",
                         label);
    const char *key;
    json_t *val;
    json_object_foreach(meta, key, val) {
        if (!json_is_string(val))
            return dlv_error(DLV_E_FORMAT,
                             "%s: field '" METADATA_KEY "': value of '%s' is not a string",
                             label, key);
    }
    return DLV_OK;
}

/* qsort has no context argument; the comparators see pairs that carry
 * what they compare. */
typedef struct order_item {
    uint64_t begin, end;
    const char *name;
    size_t idx;
} order_item;

static int cmp_offsets(const void *a, const void *b)
{
    const order_item *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_names(const void *a, const void *b)
{
    const order_item *x = a, *y = b;
    return strcmp(x->name, y->name);
}

void dlv_st_close(dlv_st_file *f)
{
    if (!f) return;
    if (f->map) munmap(f->map, f->map_size);
    json_decref(f->header);
    free(f->tensors);
    free(f->by_name);
    free(f->path);
    free(f);
}

/* Parses and validates the header of the image data[0, size); fills f. */
static dlv_status load(dlv_st_file *f, const unsigned char *data, size_t size)
{
    const char *label = f->path;
    if (size < 8)
        return dlv_error(DLV_E_FORMAT,
                         "%s: file is %zu bytes, shorter than the 8-byte header length",
                         label, size);
    uint64_t hlen = read_u64_le(data);
    if (hlen > DLV_ST_MAX_HEADER)
        return dlv_error(DLV_E_FORMAT,
                         "%s: header length %llu exceeds the limit of %llu bytes", label,
                         (unsigned long long)hlen, (unsigned long long)DLV_ST_MAX_HEADER);
    if (hlen > (uint64_t)(size - 8))
        return dlv_error(DLV_E_FORMAT,
                         "%s: header length %llu runs past the end of the %zu-byte file",
                         label, (unsigned long long)hlen, size);
    const char *text = (const char *)data + 8;
    if (hlen == 0 || text[0] != '{')
        return dlv_error(DLV_E_FORMAT, "%s: header does not start with '{'", label);

    dlv_status st = dlv_json_parse(text, (size_t)hlen, label, &f->header);
    if (st != DLV_OK) return st;
    if (!json_is_object(f->header))
        return dlv_error(DLV_E_FORMAT, "%s: header is not a JSON object", label);

    const unsigned char *buf = data + 8 + hlen;
    uint64_t buf_size = (uint64_t)(size - 8) - hlen;

    size_t n = json_object_size(f->header);
    f->metadata = json_object_get(f->header, METADATA_KEY);
    if (f->metadata) {
        st = check_metadata(f->metadata, label);
        if (st != DLV_OK) return st;
        n--;
    }
    if (n == 0) return buf_size == 0 ? DLV_OK
                                     : dlv_error(DLV_E_FORMAT,
                                                 "%s: no tensors but %llu data bytes",
                                                 label, (unsigned long long)buf_size);

    dlv_st_tensor *raw = calloc(n, sizeof *raw);
    order_item *items = calloc(n, sizeof *items);
    f->tensors = calloc(n, sizeof *f->tensors);
    f->by_name = calloc(n, sizeof *f->by_name);
    if (!raw || !items || !f->tensors || !f->by_name) {
        free(raw);
        free(items);
        return dlv_error_nomem(label, n * (2 * sizeof *raw + sizeof *items));
    }

    size_t k = 0;
    const char *name;
    json_t *entry;
    json_object_foreach(f->header, name, entry) {
        if (strcmp(name, METADATA_KEY) == 0) continue;
        if (name[0] == '\0') {
            st = dlv_error(DLV_E_FORMAT, "%s: a tensor has an empty name", label);
            break;
        }
        raw[k].name = name;
        raw[k].file_path = f->path;
        st = parse_entry(entry, label, name, &raw[k], &items[k].begin, &items[k].end);
        if (st != DLV_OK) break;
        items[k].name = name;
        items[k].idx = k;
        k++;
    }

    if (st == DLV_OK) {
        qsort(items, n, sizeof *items, cmp_offsets);
        /* The tensors must tile [0, buf_size): each begins where the previous
         * one ended. This rejects overlaps, holes and trailing bytes. Sizes
         * are compared before any difference is printed, so that a slip in
         * one check cannot surface as a wrapped-around unsigned count. */
        uint64_t expect = 0;
        for (size_t i = 0; i < n && st == DLV_OK; i++) {
            const order_item *it = &items[i];
            if (it->end > buf_size)
                st = dlv_error(DLV_E_FORMAT,
                               "%s: tensor '%s': data_offsets [%llu, %llu] reach outside the "
                               "file's data section, which has %llu bytes (after the "
                               "%llu-byte JSON header)", label, it->name,
                               (unsigned long long)it->begin, (unsigned long long)it->end,
                               (unsigned long long)buf_size, (unsigned long long)hlen);
            else if (it->begin < expect)
                st = dlv_error(DLV_E_FORMAT,
                               "%s: tensor '%s': data_offsets [%llu, %llu] overlap the "
                               "previous tensor, which ends at %llu", label, it->name,
                               (unsigned long long)it->begin, (unsigned long long)it->end,
                               (unsigned long long)expect);
            else if (it->begin > expect)
                st = dlv_error(DLV_E_FORMAT,
                               "%s: tensor '%s': hole in the data buffer: bytes [%llu, "
                               "%llu) belong to no tensor", label, it->name,
                               (unsigned long long)expect, (unsigned long long)it->begin);
            expect = it->end;
        }
        /* expect > buf_size cannot pass the loop; it is still reported in
         * plain words rather than left to the subtraction below. */
        if (st == DLV_OK && expect > buf_size)
            st = dlv_error(DLV_E_FORMAT,
                           "%s: the tensor data ends at byte %llu but the file's data section "
                           "(after the %llu-byte JSON header) has only %llu bytes", label,
                           (unsigned long long)expect, (unsigned long long)hlen,
                           (unsigned long long)buf_size);
        else if (st == DLV_OK && expect < buf_size)
            st = dlv_error(DLV_E_FORMAT,
                           "%s: %llu trailing bytes after the last tensor's data: the tensor "
                           "data ends at byte %llu but the file's data section (after the "
                           "%llu-byte JSON header) has %llu bytes", label,
                           (unsigned long long)(buf_size - expect), (unsigned long long)expect,
                           (unsigned long long)hlen, (unsigned long long)buf_size);
    }

    if (st == DLV_OK) {
        for (size_t i = 0; i < n; i++) {
            f->tensors[i] = raw[items[i].idx];
            f->tensors[i].data = buf + items[i].begin;
            items[i].idx = i;
        }
        qsort(items, n, sizeof *items, cmp_names);
        for (size_t i = 0; i < n; i++) f->by_name[i] = items[i].idx;
        f->n = n;
    }
    free(raw);
    free(items);
    return st;
}

static dlv_st_file *file_new(const char *label)
{
    dlv_st_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = strdup(label);
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

dlv_status dlv_st_open_memory(const void *data, size_t size, const char *label,
                              dlv_st_file **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_st_open_memory: out is NULL");
    *out = NULL;
    if (!label) label = "<memory>";
    if (!data && size > 0)
        return dlv_error(DLV_E_INVALID_ARG, "%s: data is NULL", label);
    dlv_st_file *f = file_new(label);
    if (!f) return dlv_error_nomem(label, strlen(label) + sizeof *f);
    dlv_status st = load(f, data, size);
    if (st != DLV_OK) {
        dlv_st_close(f);
        return st;
    }
    *out = f;
    return DLV_OK;
}

dlv_status dlv_st_open(const char *path, dlv_st_file **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_st_open: out is NULL");
    *out = NULL;
    if (!path || !path[0])
        return dlv_error(DLV_E_IO, "safetensors: empty file name");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dlv_error(DLV_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return dlv_error(DLV_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return dlv_error(DLV_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return dlv_error(DLV_E_IO, "%s: file too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return dlv_error(DLV_E_FORMAT,
                         "%s: file is %zu bytes, shorter than the 8-byte header length",
                         path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping stays valid */
    if (map == MAP_FAILED) return dlv_error(DLV_E_IO, "%s: mmap failed: %s", path, strerror(e));

    dlv_st_file *f = file_new(path);
    if (!f) {
        munmap(map, size);
        return dlv_error_nomem(path, strlen(path) + sizeof *f);
    }
    f->map = map;
    f->map_size = size;
    dlv_status st = load(f, map, size);
    if (st != DLV_OK) {
        dlv_st_close(f);
        return st;
    }
    *out = f;
    return DLV_OK;
}

size_t dlv_st_count(const dlv_st_file *f) { return f ? f->n : 0; }

const dlv_st_tensor *dlv_st_at(const dlv_st_file *f, size_t i)
{
    return f && i < f->n ? &f->tensors[i] : NULL;
}

const dlv_st_tensor *dlv_st_find(const dlv_st_file *f, const char *name)
{
    if (!f || !name) return NULL;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const dlv_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *dlv_st_metadata(const dlv_st_file *f, const char *key)
{
    if (!f || !f->metadata || !key) return NULL;
    return json_string_value(json_object_get(f->metadata, key));
}

const char *dlv_st_path(const dlv_st_file *f) { return f ? f->path : NULL; }

int dlv_st_tensor_aligned(const dlv_st_tensor *t, size_t align)
{
    if (!t || align == 0 || (align & (align - 1)) != 0) return 0;
    return ((uintptr_t)t->data & (uintptr_t)(align - 1)) == 0;
}

dlv_status dlv_st_read_f32(const dlv_st_tensor *t, uint64_t start, uint64_t n, float *out)
{
    if (!t) return dlv_error(DLV_E_INVALID_ARG, "dlv_st_read_f32: tensor is NULL");
    if (!dlv_dtype_is_float(t->dtype))
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: tensor '%s': dtype %s cannot be read as f32 (supported: F32, "
                         "F16, BF16)", t->file_path ? t->file_path : "?", t->name,
                         dlv_dtype_name(t->dtype));
    if (start > t->n_elements || n > t->n_elements - start)
        return dlv_error(DLV_E_INVALID_ARG,
                         "%s: tensor '%s': elements [%llu, +%llu) outside its %llu elements",
                         t->file_path ? t->file_path : "?", t->name,
                         (unsigned long long)start, (unsigned long long)n,
                         (unsigned long long)t->n_elements);
    if (n == 0) return DLV_OK;
    if (!out)
        return dlv_error(DLV_E_INVALID_ARG, "%s: tensor '%s': output buffer is NULL",
                         t->file_path ? t->file_path : "?", t->name);
    /* In range, so start * size and n * size fit: both are within n_bytes. */
    const unsigned char *src = (const unsigned char *)t->data + start * dlv_dtype_size(t->dtype);
    if (dlv_convert_to_f32(out, src, t->dtype, (size_t)n) != 0)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: tensor '%s': conversion from %s failed",
                         t->file_path ? t->file_path : "?", t->name, dlv_dtype_name(t->dtype));
    return DLV_OK;
}
