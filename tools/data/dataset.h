/* Image-caption datasets for evaluation and training, read whole into
 * memory (up to a limit):
 *  - JSONL: one object per line, {"image": "path relative to the file",
 *    "caption": "short", "long_caption": "long"} (either caption may be
 *    absent, not both);
 *  - CSV / TSV with a header row (RFC 4180 quoting): the image path and
 *    caption columns are "filepath" and "title" by default, as in
 *    open_clip;
 *  - WebDataset tar shards (NNN.jpg / .jpeg / .png / .webp with NNN.txt
 *    and/or NNN.json), read with libarchive; a shard pattern may hold brace
 *    ranges and lists, e.g. shards/{00000..00099}.tar or {a,b}.tar.
 * Relative image paths are resolved against the options' base directory,
 * or else the directory of the file that names them. Every error names the
 * file and the line (text formats) or the shard and sample key (tar). */
#ifndef DLV_DATA_DATASET_H
#define DLV_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

typedef struct dlv_sample {
    char *image;          /* the image file's path; NULL when the bytes are in memory */
    uint8_t *image_data;  /* WebDataset: the encoded image (PNG/JPEG/...); else NULL */
    size_t image_size;
    char *caption;        /* NULL when absent */
    char *long_caption;   /* NULL when absent */
    char *where;          /* "file:line" or "shard.tar:key", for messages */
} dlv_sample;

typedef struct dlv_dataset {
    dlv_sample *items;
    size_t n, cap;
} dlv_dataset;

typedef struct dlv_dataset_options {
    size_t limit;            /* read at most this many samples; 0 = all */
    const char *base_dir;    /* for relative image paths; NULL = the data file's folder */
    const char *image_col;   /* CSV/TSV: NULL = "filepath" */
    const char *caption_col; /* CSV/TSV: NULL = "title" */
    const char *long_col;    /* CSV/TSV: NULL = none */
    char sep;                /* CSV/TSV: 0 = by extension (.tsv: tab, else comma) */
} dlv_dataset_options;

#define DLV_DATASET_OPTIONS_INIT {0, NULL, NULL, NULL, NULL, 0}

/* Reads a dataset, choosing the format from the name: *.jsonl, *.csv,
 * *.tsv, *.tar or a pattern with '{' (WebDataset). o may be NULL. The
 * dataset starts empty (DLV_DATASET_INIT) and is freed with
 * dlv_dataset_free even on failure. */
#define DLV_DATASET_INIT {NULL, 0, 0}
dlv_status dlv_dataset_read(const char *path, const dlv_dataset_options *o, dlv_dataset *ds);
dlv_status dlv_dataset_read_jsonl(const char *path, const dlv_dataset_options *o,
                                  dlv_dataset *ds);
dlv_status dlv_dataset_read_csv(const char *path, const dlv_dataset_options *o,
                                dlv_dataset *ds);
dlv_status dlv_dataset_read_wds(const char *pattern, const dlv_dataset_options *o,
                                dlv_dataset *ds);
void dlv_dataset_free(dlv_dataset *ds);

/* Appends a sample; takes ownership of its strings and buffer (freed here
 * on failure too). */
dlv_status dlv_dataset_push(dlv_dataset *ds, dlv_sample *s);
void dlv_sample_clear(dlv_sample *s);

/* ---- Building blocks, also used by the evaluation formats ---- */

/* A CSV/TSV table: a header and rows of equal width, fields unquoted
 * (RFC 4180: "..." quoting with "" for a quote, separators and newlines
 * inside quotes, LF or CRLF line ends, a UTF-8 BOM skipped, a final line
 * end optional, empty lines skipped). */
typedef struct dlv_table {
    size_t n_cols, n_rows;
    char **header;  /* n_cols */
    char **cells;   /* n_rows * n_cols, row-major */
    size_t *line;   /* n_rows: the line each row starts on (1-based) */
} dlv_table;

/* Parses len bytes; name is for messages. sep is ',' or '\t'. */
dlv_status dlv_table_parse(const char *name, const char *text, size_t len, char sep,
                           dlv_table *t);
dlv_status dlv_table_read(const char *path, char sep, dlv_table *t);
void dlv_table_free(dlv_table *t);
/* The index of a header column, or -1. */
long dlv_table_column(const dlv_table *t, const char *name);

/* Expands brace ranges {A..B} (decimal, zero-padded to A's width) and lists
 * {x,y,z} in pattern, in order, into a heap array of heap strings. At most
 * max_out names (DLV_E_INVALID_ARG past that). */
dlv_status dlv_expand_braces(const char *pattern, size_t max_out, char ***out, size_t *n);
void dlv_free_strings(char **s, size_t n);

/* path itself when absolute or when base is NULL/""; else base/path.
 * Heap; NULL on allocation failure. */
char *dlv_resolve_path(const char *base, const char *path);
/* The folder of path ("." when it has none). Heap; NULL on failure. */
char *dlv_dirname(const char *path);

#endif
