/* Safetensors reading (memory-mapped, strictly validated) and writing
 * (atomic). Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {str: str}}, then the byte buffer the offsets index. */
#ifndef DLV_IO_SAFETENSORS_H
#define DLV_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "disclvlm.h"

#define DLV_ST_MAX_DIMS 8
/* Headers larger than this are refused (the reference implementation uses
 * 100 MB). */
#define DLV_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct dlv_st_tensor {
    const char *name;          /* owned by the file */
    dlv_dtype dtype;
    int ndim;                  /* 0 for a scalar */
    int64_t shape[DLV_ST_MAX_DIMS];
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data;          /* inside the mapping; any alignment */
    const char *file_path;     /* the file holding it, for messages */
} dlv_st_tensor;

/* ---- One file ---- */

typedef struct dlv_st_file dlv_st_file;

/* Maps and validates a file: header size limits, JSON shape, known dtypes,
 * shapes, offsets inside the buffer, no overlaps or holes, shape x dtype
 * size == byte length, no duplicate names, no integer overflow. Errors name
 * the file and the tensor or field. */
dlv_status dlv_st_open(const char *path, dlv_st_file **out);
/* Validates a safetensors image already in memory (not copied: data must
 * outlive the result). Used by the fuzzer and by tests. */
dlv_status dlv_st_open_memory(const void *data, size_t size, const char *label,
                              dlv_st_file **out);
void dlv_st_close(dlv_st_file *f);

size_t dlv_st_count(const dlv_st_file *f);
/* Tensors in data-offset order. */
const dlv_st_tensor *dlv_st_at(const dlv_st_file *f, size_t i);
/* NULL if absent. */
const dlv_st_tensor *dlv_st_find(const dlv_st_file *f, const char *name);
/* A __metadata__ value, NULL if absent. */
const char *dlv_st_metadata(const dlv_st_file *f, const char *key);
const char *dlv_st_path(const dlv_st_file *f);

/* 1 if t->data is aligned to `align` bytes (a power of two): check before
 * handing the pointer to code that needs aligned loads. */
int dlv_st_tensor_aligned(const dlv_st_tensor *t, size_t align);

/* Copies elements [start, start + n) of a F32/F16/BF16 tensor into out as
 * f32. DLV_E_UNSUPPORTED naming the tensor for other dtypes;
 * DLV_E_INVALID_ARG if the range is outside the tensor. */
dlv_status dlv_st_read_f32(const dlv_st_tensor *t, uint64_t start, uint64_t n,
                           float *out);

/* ---- A checkpoint: one file or shards ---- */

typedef struct dlv_st_set dlv_st_set;

/* Opens the checkpoint in a model directory: model.safetensors.index.json
 * (its weight_map, every shard listed, every tensor in the shard the map
 * names) if present, else model.safetensors. A tensor name in two files is
 * an error. */
dlv_status dlv_st_set_open_dir(const char *dir, dlv_st_set **out);
void dlv_st_set_close(dlv_st_set *s);
size_t dlv_st_set_count(const dlv_st_set *s);
const dlv_st_tensor *dlv_st_set_at(const dlv_st_set *s, size_t i);
const dlv_st_tensor *dlv_st_set_find(const dlv_st_set *s, const char *name);
size_t dlv_st_set_n_files(const dlv_st_set *s);
/* 1 if the checkpoint came from an index. */
int dlv_st_set_sharded(const dlv_st_set *s);

/* ---- Writing ---- */

typedef struct dlv_st_write_entry {
    const char *name;
    dlv_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;        /* n_elements * dtype size bytes */
} dlv_st_write_entry;

/* Writes tensors (in the order given) and optional metadata pairs
 * (meta_keys[i] -> meta_values[i]) to path atomically: a temporary file in
 * the same directory, fsync, rename, fsync of the directory. The header is
 * padded with spaces to a multiple of 8 so that data starts aligned. */
dlv_status dlv_st_write(const char *path, const dlv_st_write_entry *entries,
                        size_t n, const char *const *meta_keys,
                        const char *const *meta_values, size_t n_meta);

#endif
